"""The bench's receiver in a real headless Chromium: the browser driver and one browser round.

`python -m profiler.bench --browser --seconds 20 --json OUT.json` serves the
real engine on loopback (as the aiortc bench does), opens the normal client
page in headless Chromium with a fake microphone playing the bench's speech,
loads streaming/static/bench.js into it and collects what the page records:
presented frames with their ids, the audio leaving WebAudio, output
timestamps, RTP sources and inbound-rtp stats. profiler/browser_analysis.py
turns that into the A/V offset and frame timing figures (what they mean and
how exact they are is written there); profiler/report.py formats them.
"""
from __future__ import annotations

import asyncio
import base64
import shutil
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np

from streaming.audio_marks import MarkPlan
from .browser_analysis import BrowserBenchError, analyse

# -- the browser ------------------------------------------------------------------------------------

def chromium(wav: str | None, loop: bool = True):
    """Headless Chromium (selenium + Debian chromedriver); with `wav`, a fake microphone playing it
    (looping, or once: then the wav must start and end with silence)."""
    if not shutil.which("chromedriver") or not (shutil.which("chromium") or shutil.which("chromium-browser")):
        raise BrowserBenchError("the browser bench needs chromium and chromedriver (apt: chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium") or shutil.which("chromium-browser")
    flags = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run",
             "--autoplay-policy=no-user-gesture-required"]
    if wav is not None:
        flags += ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                  f"--use-file-for-fake-audio-capture={wav}" + ("" if loop else "%noloop")]
    for flag in flags:
        opts.add_argument(flag)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)


def microphone_wav(speech: str, out: Path) -> str:
    """The speech as 48 kHz mono 16-bit WAV (what Chromium's fake microphone plays)."""
    import av

    from engine.audio.io import read_audio_file

    pcm, rate = read_audio_file(speech)
    frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1).astype(np.float32), format="flt", layout="mono")
    frame.sample_rate = rate
    rs = av.AudioResampler(format="s16", layout="mono", rate=48_000)
    s16 = np.concatenate([f.to_ndarray().reshape(-1) for f in rs.resample(frame) + rs.resample(None)])
    with wave.open(str(out), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(48_000)
        w.writeframes(s16.astype("<i2").tobytes())
    return str(out)


def wait_until(predicate, timeout: float, step: float = 0.1, fail=None):
    """Poll predicate() until it returns something true (returned); on timeout raise fail()."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise (fail or (lambda: TimeoutError(f"not within {timeout:.0f} s")))()


def _wait(predicate, timeout: float, what: str, step: float = 0.1):
    return wait_until(predicate, timeout, step,
                      lambda: BrowserBenchError(f"the page did not {what} within {timeout:.0f} s"))


class BrowserProbe:
    """One client page in headless Chromium with bench.js loaded (blocking calls: run them in a thread)."""

    def __init__(self, wav: str | None) -> None:
        self.driver = chromium(wav)
        self.raw: dict[str, Any] = {"video": [], "audio": [], "ots": [], "ssrc": [], "stats": [], "errors": [],
                                    "info": {}, "dropped": 0}

    def open(self, url: str, timeout: float = 30.0) -> str:
        """Load the client page, add bench.js, start the session; its id."""
        d = self.driver
        d.get(url)
        d.execute_script("const s = document.createElement('script'); s.src = '/static/bench.js';"
                         "document.head.appendChild(s);")
        _wait(lambda: d.execute_script("return !!window.emoliveBench && !!window.emolive"), timeout, "load bench.js")
        d.execute_script("emolive.start()")
        sid = _wait(lambda: d.execute_script("return emolive.sessionId || (emolive.errors.length ? "
                                             "'!' + emolive.errors.join('; ') : null)"), timeout, "start a session")
        if sid.startswith("!"):
            raise BrowserBenchError(f"the client page failed: {sid[1:]}")
        return sid

    def arm(self, timeout: float = 30.0) -> dict:
        """Once video plays: start recording frames, audio, timestamps and stats."""
        d = self.driver
        _wait(lambda: d.execute_script("return document.getElementById('avatar').videoWidth > 0"), timeout,
              "show video")
        d.set_script_timeout(timeout)
        return d.execute_async_script("const done = arguments[arguments.length - 1];"
                                      "emoliveBench.arm().then(done, (e) => done({error: String(e)}))")

    def now(self) -> float:
        """The page's clock (performance.now, ms)."""
        return float(self.driver.execute_script("return performance.now()"))

    def take(self) -> None:
        """Move what the page recorded since the last call into self.raw (keeps the page's buffers small)."""
        got = self.driver.execute_script("return emoliveBench.take()")
        for key in ("video", "ots", "ssrc", "stats", "errors"):
            self.raw[key].extend(got[key])
        self.raw["audio"].extend((int(f), np.frombuffer(base64.b64decode(b), "<i2")) for f, b in got["audio"])
        self.raw["info"] = got["info"]
        self.raw["dropped"] = got["dropped"]

    def close(self) -> None:
        try:
            self.driver.quit()
        except Exception:  # noqa: BLE001 - the browser may already be gone; nothing to keep
            pass


# -- in the bench -----------------------------------------------------------------------------------

async def browser_round(b, rnd_factory, seconds: float, warmup: float, plan_late_s: float = 0.0,
                        every: int = 25) -> tuple[Any, dict[str, Any]]:
    """One session from headless Chromium against the bench's server `b` (profiler.bench.Bench).

    Returns the server-side Round (measured over the same window) and the page's figures.
    """
    from streaming.server import SESSIONS

    from selenium.common.exceptions import WebDriverException

    wav = microphone_wav(b.audio, b.workdir / "microphone.wav")
    try:
        probe = await asyncio.to_thread(BrowserProbe, wav)
    except WebDriverException as e:
        raise BrowserBenchError(f"chromium did not start: {e.msg}") from e
    try:
        sid = await asyncio.to_thread(probe.open, b.url)
        runner = b.app[SESSIONS].get(sid)
        if runner is None:
            raise BrowserBenchError("the page's session is not on the server")
        rnd = rnd_factory()
        rnd.adopt(sid)  # stamps frame ids into the pixels
        sched = runner.scheduler.config
        plan = MarkPlan(sched.samples_per_video_frame, every=every, late=round(plan_late_s * sched.sample_rate))
        runner.mark_audio = plan
        armed = await asyncio.to_thread(probe.arm)
        if isinstance(armed, dict) and armed.get("error"):
            raise BrowserBenchError(f"bench.js could not start: {armed['error']}")
        await asyncio.sleep(warmup)
        await asyncio.to_thread(probe.take)  # the warm-up's data is not needed
        rnd.begin()
        p0 = await asyncio.to_thread(probe.now)
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            await asyncio.sleep(min(left, 4.0))
            await asyncio.to_thread(probe.take)
        p1 = await asyncio.to_thread(probe.now)
        rnd.finish()
        await asyncio.sleep(0.5)  # the window's last marks are still in the jitter buffers
        await asyncio.to_thread(probe.take)
        # aiortc's audio RTP timestamps follow the frames' pts (an audio skip jumps both)
        origin = (runner.audio_first_rtp_ts, runner.stream_origin.get("audio"))
        fig = analyse(probe.raw, plan, runner.scheduler.config.fps, (p0, p1),
                      rtp_origin=origin if None not in origin else None)
    except WebDriverException as e:
        raise BrowserBenchError(f"the browser failed: {e.msg}") from e
    finally:
        await asyncio.to_thread(probe.close)
    for _ in range(100):  # let the closed session leave before the next round
        if not b.app[SESSIONS]:
            break
        await asyncio.sleep(0.1)
    fig["window_s"] = round((p1 - p0) / 1000.0, 2)
    fig["page_errors"] = probe.raw["errors"]
    return rnd, fig
