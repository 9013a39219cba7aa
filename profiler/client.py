"""The bench's client peers, in their own process so that the server's CPU figures are the server's.

`python -m profiler.client --url URL --sessions K --audio WAV --warmup W --seconds N --out OUT.json`
opens K aiortc peers on loopback (each sends the speech file, looping, and
receives video + audio), waits until every peer has video, lets the warm-up
pass, then measures for N seconds. It talks to the parent on stdout, one
line per event: `SESSION <id>`, `MEASURE_START <t>`, `MEASURE_END <t>`,
`DONE`, and with `--window S` a line `WINDOW <t> <json>` every S seconds of the
measurement (what each peer received since the last one: its new video frames
and the audio marks found since, for long runs that report as they go); times
are time.monotonic (CLOCK_MONOTONIC, shared by the processes of
one machine), so the parent can line them up with its own. OUT.json holds,
per peer, the arrival time, pts and stamped frame id of each video frame,
the arrival time and pts of each audio frame, and the audio marks found in
the decoded audio (streaming/audio_marks.py; the server mixes them in
when the bench sets runner.mark_audio): (time the decoded frame holding the
mark's first sample was returned + the onset's place in it, its pts, score).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

import numpy as np

from streaming.audio_marks import detect
from streaming.frame_marks import read as read_mark

AUDIO_KEEP_S = 120.0  # decoded audio kept per peer for the mark search (mono int16: 11.5 MB)
MARK_SAME = 480  # samples: a mark found again in the frames kept after a scan (marks are 1 s apart)
SCAN_KEEP_FRAMES = 3  # audio frames (60 ms) kept after a scan for marks: a 10 ms mark may straddle its end
SCAN_EVERY_S = 1.0  # with --window: marks searched this often (10 s at once would hold the loop ~0.2 s)


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class Peer:
    def __init__(self, index: int) -> None:
        self.index = index
        self.session_id: str | None = None
        self.pc = None
        self.player = None
        self.offer_at = 0.0
        self.answer_at: float | None = None
        self.video: list[tuple[float, int, int]] = []  # (arrival, pts, frame id or -1)
        self.audio: list[tuple[float, int, int]] = []  # (arrival, pts, samples)
        self.pcm: list[np.ndarray] = []  # decoded mono int16 of each audio frame (bounded, for the marks)
        self.pcm_samples = 0
        # RTP packets as they arrive, before aiortc's jitter buffers (audio holds 4 packets, video a frame):
        # (arrival, timestamp, marker) per kind
        self.rtp: dict[str, list[tuple[float, int, int]]] = {"audio": [], "video": []}
        self.found_marks: list[tuple[float, int, float]] = []  # marks taken by scan_marks, in order
        self.video_reported = 0  # video frames and marks already given in a WINDOW line
        self.marks_reported = 0
        self.first_video = asyncio.Event()
        self.tasks: list[asyncio.Task] = []
        self.error: str | None = None

    async def connect(self, http, url: str, audio: str) -> None:
        from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
        from aiortc.contrib.media import MediaPlayer

        self.pc = pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.on("track", self._on_track)
        self.player = MediaPlayer(audio, loop=True)
        pc.addTrack(self.player.audio)
        pc.addTransceiver("video", direction="recvonly")
        self.offer_at = time.monotonic()
        await pc.setLocalDescription(await pc.createOffer())
        async with http.post(url + "/offer", json={"sdp": pc.localDescription.sdp, "type": "offer"}) as resp:
            body = await resp.json()
            if resp.status != 200:
                raise RuntimeError(f"offer refused ({resp.status}): {body}")
        self.answer_at = time.monotonic()
        self.session_id = body["session_id"]
        say(f"SESSION {self.session_id}")
        await pc.setRemoteDescription(RTCSessionDescription(sdp=body["sdp"], type="answer"))
        for t in pc.getTransceivers():
            self._watch_rtp(t.receiver, t.kind)

    def _watch_rtp(self, receiver, kind: str) -> None:
        original = getattr(receiver, "_handle_rtp_packet", None)
        if original is None or kind not in self.rtp:
            return
        log = self.rtp[kind]

        async def watched(packet, arrival_time_ms: int):
            log.append((time.monotonic(), int(packet.timestamp), int(packet.marker)))
            return await original(packet, arrival_time_ms=arrival_time_ms)

        receiver._handle_rtp_packet = watched

    def _on_track(self, track) -> None:
        on_frame = self._on_video if track.kind == "video" else self._on_audio
        self.tasks.append(asyncio.get_running_loop().create_task(self._receive(track, on_frame)))

    @staticmethod
    async def _receive(track, on_frame) -> None:
        """Each received frame with its arrival time (taken as recv returns) to on_frame, until the track ends."""
        from aiortc.mediastreams import MediaStreamError

        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            on_frame(time.monotonic(), frame)

    def _on_video(self, t: float, frame) -> None:
        plane = frame.planes[0]
        luma = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)[:frame.height, :frame.width]
        mark = read_mark(luma)
        self.video.append((t, int(frame.pts), -1 if mark is None else mark))
        self.first_video.set()

    def _on_audio(self, t: float, frame) -> None:
        self.audio.append((t, int(frame.pts), int(frame.samples)))
        a = frame.to_ndarray()
        mono = a.reshape(-1, len(frame.layout.channels))[:, 0] if frame.format.is_packed else a[0]
        self.pcm.append(mono.astype(np.int16, copy=True))
        self.pcm_samples += len(mono)
        while self.pcm_samples > AUDIO_KEEP_S * frame.sample_rate:  # the oldest first
            self.pcm_samples -= len(self.pcm[0])
            del self.pcm[0]

    def marks(self) -> list[tuple[float, int, float]]:
        """Audio marks in what was decoded: (return time of the frame with the onset + its offset in
        the frame, mark pts, score). Searched in runs of frames with contiguous pts."""
        frames = self.audio[len(self.audio) - len(self.pcm):]
        out: list[tuple[float, int, float]] = []
        i = 0
        while i < len(frames):
            j = i + 1
            while j < len(frames) and frames[j][1] == frames[j - 1][1] + frames[j - 1][2]:
                j += 1
            pcm = np.concatenate(self.pcm[i:j]).astype(np.float32) / 32767.0
            starts = np.cumsum([0] + [f[2] for f in frames[i:j]])
            for onset, score in detect(pcm):
                n = int(np.searchsorted(starts, onset, side="right")) - 1
                t, pts, _ = frames[i + n]
                out.append((t + (onset - starts[n]) / 48_000, int(round(pts + onset - starts[n])), score))
            i = j
        return out

    def scan_marks(self) -> list[tuple[float, int, float]]:
        """The marks in the audio decoded since the last scan (added to found_marks), then that audio is
        let go but for its last frames, where a mark may not be complete yet. Scanning as it goes, a long
        run finds every mark (marks() alone sees the last AUDIO_KEEP_S)."""
        last = self.found_marks[-1][1] if self.found_marks else None
        new = [m for m in self.marks() if last is None or m[1] > last + MARK_SAME]
        self.found_marks += new
        while len(self.pcm) > SCAN_KEEP_FRAMES:
            self.pcm_samples -= len(self.pcm[0])
            del self.pcm[0]
        return new

    def window(self) -> dict:
        """What came in since the last window: new video frames (arrival, pts, id) and new audio marks."""
        self.scan_marks()
        video, marks = self.video[self.video_reported:], self.found_marks[self.marks_reported:]
        self.video_reported, self.marks_reported = len(self.video), len(self.found_marks)
        return {"session_id": self.session_id, "video": video, "audio_marks": marks,
                "audio_frames": len(self.audio), "error": self.error}

    async def close(self) -> None:
        if self.player is not None and self.player.audio is not None:
            self.player.audio.stop()
        if self.pc is not None:
            await self.pc.close()
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    def record(self) -> dict:
        self.scan_marks()
        return {"session_id": self.session_id, "offer_at": self.offer_at, "answer_at": self.answer_at,
                "video": self.video, "audio": self.audio, "rtp": self.rtp, "error": self.error,
                "audio_marks": self.found_marks}


async def windows(peers: list[Peer], t0: float, window: float, seconds: float) -> None:
    """A WINDOW line at t0 + n * window while that is within the measurement, the marks searched every
    SCAN_EVERY_S in between; deadlines are absolute (a late wake-up does not creep into the next)."""
    per = max(1, round(window / SCAN_EVERY_S))
    tick = window / per
    i = 1
    while i * tick <= seconds + 1e-6:
        await asyncio.sleep(max(0.0, t0 + i * tick - time.monotonic()))
        if i % per:
            for p in peers:
                p.scan_marks()
        else:
            say(f"WINDOW {time.monotonic():.6f} " + json.dumps({"peers": [p.window() for p in peers]}))
        i += 1


async def run(args) -> int:
    import aiohttp

    from streaming.loopback import include_loopback_candidates

    include_loopback_candidates()
    peers = [Peer(i) for i in range(args.sessions)]
    async with aiohttp.ClientSession() as http:
        try:
            for p in peers:
                await p.connect(http, args.url, args.audio)
                await asyncio.sleep(args.stagger)
            await asyncio.wait_for(asyncio.gather(*(p.first_video.wait() for p in peers)), args.connect_timeout)
            await asyncio.sleep(args.warmup)
            t0 = time.monotonic()
            say(f"MEASURE_START {t0:.6f}")
            if args.window > 0:
                await windows(peers, t0, args.window, args.seconds)
            await asyncio.sleep(max(0.0, t0 + args.seconds - time.monotonic()))
            say(f"MEASURE_END {time.monotonic():.6f}")
        except Exception as e:  # noqa: BLE001 - reported to the parent, which decides
            say(f"ERROR {type(e).__name__}: {e}".replace("\n", " "))
            status = 1
        else:
            status = 0
        finally:
            await asyncio.gather(*(p.close() for p in peers), return_exceptions=True)
    Path(args.out).write_text(json.dumps({"peers": [p.record() for p in peers]}), encoding="utf-8")
    say("DONE")
    return status


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m profiler.client")
    p.add_argument("--url", required=True)
    p.add_argument("--sessions", type=int, default=1)
    p.add_argument("--audio", required=True)
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--stagger", type=float, default=0.3, help="seconds between two peers' offers")
    p.add_argument("--window", type=float, default=0.0,
                   help="print a WINDOW line every this many seconds of the measurement (0: none)")
    p.add_argument("--connect-timeout", type=float, default=30.0)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    return asyncio.run(run(args))


if __name__ == "__main__":
    raise SystemExit(main())
