"""Server-side voice inputs on loopback: --audio FILE drives the avatar (mouth re-detected on received
frames), is recorded in sync by --record; --mic captures through a bounded buffer (fake stream injected)
and fails with one clear line where there is no input device (as on this machine)."""
import asyncio
import subprocess
import threading
import time

import numpy as np
import pytest

from engine.audio.io import read_audio_file
from engine.face_geometry import mouth_opening
from streaming.frame_marks import read as read_frame_id
from streaming.config import ServerConfig
from streaming.server import RECORDERS, build_input, main
from streaming.sources import InputUnavailable, Microphone, MicInput
from server_harness import Server, connect, received_pcm, tracks_ready

pytestmark = pytest.mark.timeout(240)


def _keep_what_is_recorded(runner, sent: dict) -> None:
    """Keep a copy of every frame the recorder took from the outbound tracks: video luma by pts (90 kHz),
    audio samples by pts (samples). Wraps the recording taps (installed before the offer's answer); a
    frame handed over once the recording is finishing, or dropped by its bounded queue, is not kept."""
    video_tap, audio_tap = runner.video_out.tap, runner.audio_out.tap
    rec = video_tap.__self__
    sent["video"], sent["audio"] = {}, {}

    def taken(tap, kind, pts, frame):
        open_, dropped = not rec._finishing, rec.counters[f"{kind}_dropped"]
        tap(pts, frame)
        if open_ and rec.counters[f"{kind}_dropped"] == dropped:
            data = frame[:frame.shape[0] * 2 // 3] if kind == "video" else frame.reshape(-1)  # luma / mono
            sent[kind][pts] = data.astype(np.float32)
    runner.video_out.tap = lambda pts, yuv: taken(video_tap, "video", pts, yuv)
    runner.audio_out.tap = lambda pts, s16: taken(audio_tap, "audio", pts, s16)


def _received_matches_sent(frames, sent_audio: dict) -> float:
    """Correlation of the 20 ms loudness of the received audio frames with that of the sent frames at the
    same RTP time. The receiver counts pts from its first packet, so the sent frame it started at is
    searched among the first sent ones."""
    got = {f.pts: float(np.sqrt(np.mean(received_pcm([f]).astype(np.float64) ** 2))) * 32768 for f in frames}
    ref = {pts: float(np.sqrt(np.mean(x.astype(np.float64) ** 2))) for pts, x in sent_audio.items()}
    best = -1.0
    for origin in sorted(ref)[:150]:
        pairs = [(g, ref[origin + p]) for p, g in got.items() if origin + p in ref]
        if len(pairs) > 100:
            a, b = np.array(pairs).T
            if a.std() > 0 and b.std() > 0:
                best = max(best, float(np.corrcoef(a, b)[0, 1]))
    return best


def _recorded_offsets(path, sent: dict, rate: int, frame_pts: int) -> tuple[int, int]:
    """Where the file's content sits against what was sent, in video frames and in audio samples: the
    shift that best matches each decoded frame to the sent frame at its own pts (mean luma difference,
    over shifts of +-3 frames), and the lag of the decoded audio against the sent audio at the same
    sample positions (cross-correlation, +-1 frame). 0 and 0 (or AAC's priming) when the file keeps the
    timing that was sent, whatever the machine's load did to the stream itself."""
    import av

    with av.open(str(path)) as c:
        vids = [(round(f.time * 90_000), f.to_ndarray(format="gray").astype(np.float32)) for f in c.decode(video=0)]
    with av.open(str(path)) as c:
        auds = [(round(f.time * rate), f.to_ndarray().reshape(-1)) for f in c.decode(audio=0)]
    cost = {}
    for shift in range(-3, 4):
        d = [np.abs(y - sent["video"][pts + shift * frame_pts]).mean() for pts, y in vids
             if pts + shift * frame_pts in sent["video"]]
        cost[shift] = float(np.mean(d)) if len(d) > 50 else np.inf
    video_shift = min(cost, key=cost.get)

    def line(pieces):
        start = min(p for p, _ in pieces)
        out = np.zeros(max(p + len(x) for p, x in pieces) - start, np.float32)
        for p, x in pieces:
            out[p - start:p - start + len(x)] = x
        return start, out
    (s0, ref), (r0, rec) = line(list(sent["audio"].items())), line(auds)
    lo, hi = max(s0, r0), min(s0 + len(ref), r0 + len(rec))
    a, b = ref[lo - s0:hi - s0], rec[lo - r0:hi - r0] * 32768.0
    n = 1 << int(np.ceil(np.log2(2 * len(a))))
    xc = np.fft.irfft(np.fft.rfft(b, n) * np.conj(np.fft.rfft(a, n)), n)
    lags = np.r_[np.arange(0, 1921), np.arange(-1920, 0)]
    audio_lag = int(lags[np.argmax(np.r_[xc[:1921], xc[-1920:]])])
    return video_shift, audio_lag


def test_audio_file_drives_the_mouth_and_is_recorded_in_sync(parts, speech_wav, redetect, tmp_path):  # noqa: F811
    out = tmp_path / "rec.mp4"
    sent: dict = {}
    jaw_rendered: dict[int, float] = {}  # timeline frame -> the jawOpen it was rendered with

    async def scenario():
        async with Server(parts, audio=str(speech_wav), record=str(out)) as server:
            async with server.http.get(server.url + "/health") as r:
                health = await r.json()
            pc, tracks, answer, _ = await connect(server)  # no microphone: a recvonly audio transceiver
            runner = server.sessions[answer["session_id"]]
            _keep_what_is_recorded(runner, sent)
            runner.mark_frames = True  # each frame's timeline index in its top-left pixels
            runner.face_listeners.add(lambda m: jaw_rendered.__setitem__(m["frame"], m["coeffs"]["jawOpen"]))
            await tracks_ready(tracks)
            # The 4.8 s file (0.6 s silence, speech, 1 s silence) plays once from the connection.
            video, audio = await asyncio.gather(asyncio.gather(*[tracks["video"].recv() for _ in range(150)]),
                                                asyncio.gather(*[tracks["audio"].recv() for _ in range(300)]))
            stats = runner.stats()
            await pc.close()
            await asyncio.wait_for(runner.closed.wait(), 30)
            recorder = server.app[RECORDERS][0]
            await asyncio.get_running_loop().run_in_executor(None, recorder.join, 30)
            async with server.http.get(server.url + "/metrics") as r:
                metrics = await r.text()
            return health, video, audio, stats, recorder, metrics

    health, video, audio, stats, recorder, metrics = asyncio.run(scenario())
    assert health["input"] == "file"
    written = recorder.counters["video_frames"]
    assert written > 100 and f"emolive_recorded_video_frames_total {written}" in metrics
    # Paced on the session clock: never faster than played (nothing dropped), never starved mid-file.
    assert stats["input_dropped_samples"] == 0 and stats["speech_frames"] > 100
    # The file's speech moved the mouth, and the frames the client received show it: the mouth re-detected
    # on each received frame follows the jaw that frame was rendered with (its id read from its pixels).
    # A loaded machine renders fewer frames with speech (late model output is not waited for), so the
    # pairing, not the amount of movement, is what is judged.
    pairs = []
    for f in video:
        k = read_frame_id(f.to_ndarray(format="yuv420p")[:f.height])
        if k is not None and k in jaw_rendered:
            pairs.append((mouth_opening(redetect(f.to_ndarray(format="rgb24"))), jaw_rendered[k]))
    opening, jaw = np.array(pairs).T
    assert len(pairs) > 50 and jaw.max() > 0.2 and jaw.min() < 0.05, (len(pairs), jaw.max(), jaw.min())
    assert np.corrcoef(opening, jaw)[0, 1] > 0.8, np.corrcoef(opening, jaw)[0, 1]
    # The voice comes back: the audio received is the audio sent (the file's speech, delayed), frame by
    # frame at its RTP time; skips of a late sender are gaps in both, so a loaded machine cannot bend it.
    assert max(np.abs(x).max() for x in sent["audio"].values()) > 3000  # the speech was sent
    assert _received_matches_sent(audio, sent["audio"]) > 0.8

    # The recording: a valid mp4 with H.264 + AAC, as long as what was sent, lips on the voice.
    probe = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_name,start_time,duration",
                            "-of", "csv=p=0", str(out)], capture_output=True, text=True, check=True).stdout.split()
    starts = {line.split(",")[0]: float(line.split(",")[1]) for line in probe}
    streams = {line.split(",")[0]: line.split(",")[2] for line in probe}
    assert set(streams) == {"h264", "aac"}, probe
    sent_s = stats["frames_sent"] / 25
    # Audio starts with the stream, video with the first frame sent after the connection (frame k0); each
    # ends where what was sent ended (a loaded loop sends the last video frames late, so the two ends
    # differ in the file as they did on the wire).
    k0 = round((starts["h264"] - starts["aac"]) * 25)
    assert 0 <= k0 < 50, probe
    v_end, a_end = (max(sent["video"]) + 3600) / 90_000, (max(sent["audio"]) + 960) / 48_000
    assert abs(starts["h264"] + float(streams["h264"]) - v_end) <= 0.041, (probe, v_end)
    assert abs(starts["aac"] + float(streams["aac"]) - a_end) <= 0.03, (probe, a_end)
    assert float(streams["h264"]) >= sent_s - 0.1 and recorder.counters["audio_dropped"] == 0
    # Lips on the voice in the file: each recorded frame is the frame sent at its pts, each recorded
    # sample the sample sent at its position (AAC's priming at most, under 1024 samples). Checked against
    # what was sent, so it holds whatever a loaded machine did to the stream itself (repeated frames,
    # skipped audio are in both).
    video_shift, audio_lag = _recorded_offsets(out, sent, 48_000, 3600)
    assert video_shift == 0 and abs(audio_lag) <= 1024, (video_shift, audio_lag)


def test_second_session_gets_its_own_recording_and_shutdown_finalises_it(parts, tmp_path):  # noqa: F811
    out = tmp_path / "rec.mp4"

    async def scenario():
        async with Server(parts, record=str(out)) as server:
            pcs = []
            for _ in range(2):
                pc, tracks, answer, _ = await connect(server)
                await tracks_ready(tracks, ("video",))
                for _ in range(25):
                    await tracks["video"].recv()
                pcs.append((pc, answer["session_id"]))
            # The server shuts down with both sessions open: both files are finalised.
        for pc, _ in pcs:
            await pc.close()
        return [sid for _, sid in pcs]

    sids = asyncio.run(scenario())
    second = tmp_path / f"rec-{sids[1][:8]}.mp4"
    for path in (out, second):
        probe = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_name,duration",
                                "-of", "csv=p=0", str(path)], capture_output=True, text=True, check=True).stdout
        codecs = {line.split(",")[0]: float(line.split(",")[1]) for line in probe.split()}
        assert set(codecs) == {"h264", "aac"} and codecs["h264"] >= 0.9, (path, probe)


def test_no_input_device_is_one_clear_line_and_exit_2(capsys):
    import sounddevice as sd

    try:
        sd.query_devices(kind="input")
        pytest.skip("this machine has an audio input device")
    except sd.PortAudioError:
        pass
    with pytest.raises(InputUnavailable, match="no audio input device"):
        build_input(ServerConfig(mic=True))
    assert main(["--mic", "--port", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("emolive serve: --mic: no audio input device")
    assert main(["--audio", "/nonexistent/voice.wav"]) == 2
    assert "audio file not found" in capsys.readouterr().err


class FakeStream:
    """Stands in for sounddevice.InputStream: a thread calls the callback with blocks of a signal."""

    def __init__(self, signal, realtime=True, **kw):
        self.kw, self.signal, self.realtime = kw, signal, realtime
        self.started = self.closed = False
        self._stop = threading.Event()

    def start(self):
        self.started = True
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        n = self.kw["blocksize"]
        t0 = time.monotonic()
        for i in range(0, len(self.signal) - n + 1, n):
            if self._stop.is_set():
                return
            self.kw["callback"](self.signal[i:i + n].reshape(-1, 1), n, None, None)
            if self.realtime:
                time.sleep(max(0.0, t0 + (i + n) / self.kw["samplerate"] - time.monotonic()))

    def stop(self):
        self._stop.set()

    def close(self):
        self.closed = True


def test_mic_buffer_is_bounded_and_drops_the_oldest():
    stream = {}

    def factory(**kw):
        stream["s"] = FakeStream(np.arange(48_000 * 2, dtype=np.float32), realtime=False, **kw)
        return stream["s"]

    mic = Microphone(48_000, max_blocks=10, stream_factory=factory)
    mic.open()
    stream["s"].start()  # 100 blocks arrive while nobody drains
    stream["s"]._thread.join(5)
    assert mic.blocks_in == 100 and mic.dropped == 90 and len(mic._blocks) == 10
    assert mic._blocks[0][0] == 90 * 960  # the newest ten are kept


def test_mic_capture_drives_a_session(parts, speech_wav):  # noqa: F811
    pcm, rate = read_audio_file(speech_wav)
    pcm16 = pcm[::3]  # a 16 kHz "device" (speech_wav is 48 kHz), so the capture path resamples
    made = []

    def factory(**kw):
        made.append(FakeStream(pcm16, **kw))
        return made[-1]

    mic = Microphone(48_000, stream_factory=factory, device_rate=16_000)

    async def scenario():
        async with Server(parts, source=MicInput(mic)) as server:
            pc, tracks, answer, _ = await connect(server)
            runner = server.sessions[answer["session_id"]]
            await tracks_ready(tracks)
            audio = await asyncio.gather(*[tracks["audio"].recv() for _ in range(220)])
            stats = runner.stats()
            await pc.close()
            return audio, stats

    audio, stats = asyncio.run(scenario())
    assert made and made[0].started and made[0].closed and made[0].kw["samplerate"] == 16_000
    assert stats["audio_chunks_in"] > 100 and stats["speech_frames"] > 50
    got = received_pcm(audio)
    assert np.abs(got).max() > 0.05  # the captured voice is what the session sends back


def test_file_playback_once_or_looping():
    from streaming.sources import FilePlayback

    pcm = np.arange(2500, dtype=np.float32)
    once = FilePlayback(pcm, loop=False)
    got = [once.take(960) for _ in range(4)]
    assert [len(g) for g in got[:3]] == [960, 960, 580] and got[3] is None
    looped = FilePlayback(pcm, loop=True)
    out = np.concatenate([looped.take(960) for _ in range(8)])
    assert looped.loops == 2 and np.array_equal(out[:5000], np.concatenate([pcm, pcm]))
    assert asyncio.run(looped.wait()) and not asyncio.run(once.wait())
