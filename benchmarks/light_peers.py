"""Viewer peers that cost the machine little, for capacity runs where the viewers stand in for remote ones.

    python benchmarks/light_peers.py --url URL --sessions K --audio SPEECH.wav --warmup W --seconds N --out OUT.json

Same protocol as profiler/client.py (stdout lines `SESSION <id>`,
`MEASURE_START <t>`, `MEASURE_END <t>`, `DONE`; times on time.monotonic),
but each peer sends speech that was Opus-encoded once before the run (ffmpeg,
20 ms frames: no per-peer encoder) and does not decode what it receives: the
receivers' decoders are replaced by ones that only count frames, so the
peers still take every RTP packet (SRTP, jitter buffers, RTCP feedback) but
not the VP8 and Opus decoding a remote viewer's machine would do. OUT.json
holds each peer's received video and audio frames (arrival time, RTP
timestamp) and, with --allow-refused, which offers the server refused.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from profiler.client import say  # noqa: E402  (one line per event on stdout, flushed for the parent)


class CountingDecoder:
    """Stands in for aiortc's decoders: notes each encoded frame, decodes nothing."""

    def __init__(self, sink: list) -> None:
        self.sink = sink

    def decode(self, encoded_frame) -> list:
        self.sink.append((time.monotonic(), encoded_frame.timestamp))
        return []


def install_counting_decoders(counts: dict[str, list]) -> None:
    import aiortc.rtcrtpreceiver as receiver

    def get_decoder(codec):
        return CountingDecoder(counts["video" if codec.mimeType.lower().startswith("video") else "audio"])
    receiver.get_decoder = get_decoder


def opus_file(wav: str, seconds: float, out: Path) -> Path:
    """The speech, looped to `seconds`, as Ogg Opus in 20 ms frames (encoded once, sent by every peer)."""
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-stream_loop", "-1", "-i", wav, "-t", f"{seconds:.1f}",
                    "-ac", "1", "-ar", "48000", "-c:a", "libopus", "-b:a", "32k", "-frame_duration", "20",
                    "-application", "voip", str(out)], check=True)
    return out


class Refused(RuntimeError):
    def __init__(self, message: str, status: int, code: str | None) -> None:
        super().__init__(message)
        self.status, self.code = status, code


class Peer:
    def __init__(self, index: int) -> None:
        self.index = index
        self.counts: dict[str, list] = {"video": [], "audio": []}
        self.session_id: str | None = None
        self.pc = None
        self.player = None
        self.connected = asyncio.Event()
        self.refused: str | None = None  # --allow-refused: the server's error code for a refused offer

    async def connect(self, http, url: str, audio: Path) -> None:
        from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
        from aiortc.contrib.media import MediaPlayer

        self.pc = pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.player = MediaPlayer(str(audio), decode=False)
        pc.addTrack(self.player.audio)
        pc.addTransceiver("video", direction="recvonly")

        @pc.on("connectionstatechange")
        def _state():
            if pc.connectionState == "connected":
                self.connected.set()

        install_counting_decoders(self.counts)  # receivers take their decoder when the first packet comes
        await pc.setLocalDescription(await pc.createOffer())
        async with http.post(url + "/offer", json={"sdp": pc.localDescription.sdp, "type": "offer"}) as r:
            answer = await r.json()
            if r.status != 200:
                raise Refused(f"offer refused: {r.status} {answer}", r.status, answer.get("error"))
        self.session_id = answer["session_id"]
        say(f"SESSION {self.session_id}")
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))

    async def close(self) -> None:
        if self.pc is not None:
            await self.pc.close()


async def run(args) -> int:
    import tempfile

    import aiohttp

    from streaming.loopback import include_loopback_candidates

    include_loopback_candidates()
    with tempfile.TemporaryDirectory(prefix="emolive-peers-") as tmp:
        audio = opus_file(args.audio, args.warmup + args.seconds + 30.0, Path(tmp) / "speech.ogg")
        peers = [Peer(i) for i in range(args.sessions)]
        async with aiohttp.ClientSession() as http:
            try:
                for p in peers:
                    # The counting decoders are per process: one peer connects (and takes its decoders) at a time.
                    try:
                        await p.connect(http, args.url, audio)
                    except Refused as e:
                        if not args.allow_refused:
                            raise
                        p.refused = e.code or str(e.status)
                        say(f"REFUSED {p.refused}")
                        await asyncio.sleep(args.stagger)
                        continue
                    await asyncio.wait_for(p.connected.wait(), args.connect_timeout)
                    while not (p.counts["video"] and p.counts["audio"]):
                        await asyncio.sleep(0.05)
                    await asyncio.sleep(args.stagger)
                await asyncio.sleep(args.warmup)
                t0 = time.monotonic()
                say(f"MEASURE_START {t0:.6f}")
                await asyncio.sleep(args.seconds)
                t1 = time.monotonic()
                say(f"MEASURE_END {t1:.6f}")
            finally:
                await asyncio.gather(*(p.close() for p in peers), return_exceptions=True)
    Path(args.out).write_text(json.dumps({"peers": [
        {"session_id": p.session_id, "refused": p.refused, "video": [[t, ts] for t, ts in p.counts["video"]],
         "audio": [[t, ts] for t, ts in p.counts["audio"]], "audio_frames": len(p.counts["audio"])}
        for p in peers]}), encoding="utf-8")
    say("DONE")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", required=True)
    p.add_argument("--sessions", type=int, default=1)
    p.add_argument("--audio", required=True)
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--stagger", type=float, default=0.3)
    p.add_argument("--connect-timeout", type=float, default=30.0)
    p.add_argument("--allow-refused", action="store_true",
                   help="a refused offer (503 server_full / server_busy) is noted, not an error: past capacity")
    p.add_argument("--out", required=True)
    return asyncio.run(run(p.parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
