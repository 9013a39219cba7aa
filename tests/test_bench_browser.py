"""The browser bench's instrument: its analysis on a synthetic page record with a known offset, and in a
real headless Chromium, frame ids read in the page and audio marks placed a known 80 ms late reported
80 ms later (checks the instrument, not the speed)."""
import shutil
import time

import numpy as np
import pytest

from audio_helpers import speechlike
from streaming.bench_audio_marks import MarkPlan
from streaming.bench_browser import BrowserProbe
from streaming.bench_report import browser_markdown
from streaming.browser_analysis import analyse
from streaming.server import SESSIONS
from test_server_browser import ThreadedServer
from test_server_loopback import parts, speech_wav  # noqa: F401  (shared fixtures)


LATE_MS = 80.0
VSYNC_MS = 1000.0 / 60  # headless Chromium composites at 60 Hz: display times come in these steps


def synthetic_record(offset_ms: float, ctx_to_page_ms: float = 512.3, seconds: float = 12.0):
    """What bench.js would record if frame k were displayed at 1000 + 40 k ms and the audio at frame
    k's first sample left the output offset_ms before that (context time c leaves at c + ctx_to_page)."""
    rate, plan = 48_000, MarkPlan(1920, every=25)
    n = int(seconds * 25)
    video = [[0, 1000.0 + 40 * k, 1000.0 + 40 * k - 8, 1000.0 + 40 * k - 30, None, k, k] for k in range(n)]
    # context sample of timeline sample 0: it leaves at 1000 - offset_ms (page) = c * 1000 + ctx_to_page
    c0 = (1000.0 - offset_ms - ctx_to_page_ms) / 1000 * rate
    speech = speechlike(seconds + 1, sr=rate, seed=1) * 0.5
    timeline0 = -round(c0)  # the capture starts at context sample 0
    pcm = plan.mix(speech, timeline0)
    frac = c0 - round(c0)  # sub-sample remainder, kept small: the marks sit on whole samples
    blocks = [(i, (np.clip(pcm[i:i + 4096], -1, 1) * 32767).astype(np.int16)) for i in range(0, len(pcm), 4096)]
    ots = [[0, t, t * 1000 + ctx_to_page_ms, t + 0.041] for t in np.arange(0.1, seconds, 0.05)]
    raw = {"video": video, "audio": blocks, "ots": ots, "ssrc": [], "stats": [], "errors": [],
           "info": {"sampleRate": rate, "capture": "audioworklet"}}
    return raw, plan, frac * 1000 / rate


@pytest.mark.parametrize("offset_ms", [37.0, -112.5, 0.0])
def test_analysis_reports_a_known_offset(offset_ms):
    raw, plan, rounding_ms = synthetic_record(offset_ms)
    fig = analyse(raw, plan, 25, (1200.0, 11_000.0))
    av = fig["av_offset_ms"]
    assert fig["marks"]["matched"] >= 8 and fig["marks"]["unmatched"] == 0, fig["marks"]
    assert abs(av["p50"] - offset_ms - rounding_ms) <= 0.1 and av["max"] - av["min"] <= 0.1, av
    assert fig["frame_ids"]["consecutive"] == fig["frame_ids"]["read"] - 1 and fig["fps_presented"] == 25.0
    assert fig["frame_interval_ms"]["p50"] == 40.0 and fig["callbacks_missed"] == 0


@pytest.mark.slow
@pytest.mark.timeout(180)
@pytest.mark.skipif(not shutil.which("chromedriver"), reason="needs Debian chromium-driver")
def test_marks_placed_late_are_reported_late_and_frame_ids_are_read(parts, speech_wav):  # noqa: F811
    with ThreadedServer(parts) as server:
        probe = BrowserProbe(str(speech_wav))
        try:
            sid = probe.open(server.url)
            runner = server.call(lambda: server.app[SESSIONS][sid])
            cfg = runner.scheduler.config
            # every other mark (odd m) LATE_MS after the first sample of its frame; even ones on it
            plan = MarkPlan(cfg.samples_per_video_frame, every=25, late=round(LATE_MS / 1000 * cfg.sample_rate))

            def mark():
                runner.mark_frames = True
                runner.mark_audio = plan
            server.call(mark)
            assert "error" not in probe.arm()
            time.sleep(1.0)
            p0 = probe.now()
            for _ in range(4):
                time.sleep(4.0)
                probe.take()
            p1 = probe.now()
            time.sleep(0.5)  # the window's last marks are still in the jitter buffers
            probe.take()
            sent = server.call(lambda: runner.counters["frames_sent"])
        finally:
            probe.close()
    fig = analyse(probe.raw, plan, cfg.fps, (p0, p1))
    print(browser_markdown(fig))
    print([(p["mark"], p["offset_ms"]) for p in fig["per_mark"]])

    # Frame ids read from the pixels in the page: increasing, nearly all consecutive, the frames sent.
    ids = fig["frame_ids"]
    assert ids["backwards"] == 0 and ids["unreadable"] <= 0.02 * (ids["read"] + ids["unreadable"]), ids
    assert ids["read"] >= 0.5 * cfg.fps * (p1 - p0) / 1000, ids
    # Mostly consecutive: on a loaded machine (the whole suite on two cores) the page's compositor skips
    # presenting some frames (73 % consecutive seen in a clean-clone CI run); the ids' order and
    # readability, asserted above, are what the instrument itself must get right.
    assert ids["consecutive"] >= 0.5 * ids["read"], ids
    assert ids["last"] <= sent, (ids, sent)

    # Each odd mark against the mean of its even neighbours, or the one that was matched (the receiver's
    # buffers drift slowly, so neighbours share their state): 80 ms more audio delay, so the offset
    # (picture - sound) is 80 ms smaller. Each offset is exact to ~0.1 ms on the audio side and quantised to the 60 Hz vsync on
    # the picture side, so the median of the differences is within one vsync of -80 ms.
    off = {p["mark"]: p["offset_ms"] for p in fig["per_mark"]}
    # A mark is unmatched when the page never presented its frame: the same compositor skips as above
    # (2 of 16 seen in a clean-clone CI run beside other jobs), not a misread; matched ones must be right.
    marks = fig["marks"]
    assert marks["matched"] >= 10 and marks["unmatched"] <= 0.25 * marks["found"], marks
    near = {m: [off[n] for n in (m - 1, m + 1) if n in off] for m in off if m % 2}
    d = [off[m] - float(np.mean(v)) for m, v in near.items() if v]
    assert len(d) >= 4, off
    assert abs(float(np.median(d)) + LATE_MS) <= VSYNC_MS, (d, off)
