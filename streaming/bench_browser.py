"""The bench's receiver in a real headless Chromium: A/V offset and frame timing as the page presents them.

`python -m streaming.bench --browser --seconds 20 --json OUT.json` serves the
real engine on loopback (as the aiortc bench does), opens the normal client
page in headless Chromium with a fake microphone playing the bench's speech,
loads streaming/static/bench.js into it and measures:

* av_offset_ms: for every 25th frame k, the time the page expects frame k on
  screen (requestVideoFrameCallback's expectedDisplayTime; the frame's id is
  read from its pixels, streaming/bench_marks.py) minus the time the audio
  mark that the server mixed in at frame k's first timeline sample leaves
  the output device (found in the audio captured through WebAudio by
  streaming/bench_audio_marks.py, its context time mapped to the page clock
  with AudioContext.getOutputTimestamp). Positive: the picture is late.
* frame timing: presented fps, the interval between presented frames
  (p50/p95/p99/max), ids skipped or repeated, and Chromium's own inbound-rtp
  counters (decoded, dropped, freezes, jitter buffer, audio concealment).

Resolution: the audio onset ~0.03 ms (the detector, after Opus); the display
time is a vsync of the headless compositor (60 Hz: the true time is within
16.7 ms, in steps); the output timestamp mapping is as good as Chromium's
audio clock (its spread is reported). `analyse` is pure (raw page data in,
figures out) so tests can check it on what a run recorded.
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

from .bench_audio_marks import MarkPlan, detect

# video rows from bench.js: [now, expectedDisplayTime, presentationTime, receiveTime, rtpTimestamp,
#                            presentedFrames, frame id (-1: unreadable)]
NOW, EDT, PT, RX, RTP, PRESENTED, FID = range(7)


class BrowserBenchError(RuntimeError):
    """The browser bench cannot run (no chromium/chromedriver, the page failed, no marks found)."""


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


# -- analysis ---------------------------------------------------------------------------------------

def _pct(values, nd: int = 2) -> dict[str, Any] | None:
    v = np.asarray(list(values), float)
    if not len(v):
        return None
    return {"p50": round(float(np.percentile(v, 50)), nd), "p95": round(float(np.percentile(v, 95)), nd),
            "p99": round(float(np.percentile(v, 99)), nd), "max": round(float(v.max()), nd),
            "min": round(float(v.min()), nd), "mean": round(float(v.mean()), nd), "n": int(len(v))}


def audio_segments(blocks: list[tuple[int, np.ndarray]]) -> list[tuple[int, np.ndarray]]:
    """Contiguous runs of captured audio: [(context frame of the first sample, float samples)]."""
    out: list[tuple[int, list[np.ndarray]]] = []
    end = None
    for frame, s16 in sorted(blocks, key=lambda b: b[0]):
        if end is not None and frame == end:
            out[-1][1].append(s16)
        elif end is None or frame > end:
            out.append((frame, [s16]))
        else:
            continue  # overlaps what is there (should not happen): keep the first
        end = frame + len(s16)
    return [(f, np.concatenate(parts).astype(np.float32) / 32767.0) for f, parts in out]


def output_clock(ots: list, rate: float) -> dict[str, Any]:
    """Context time -> page time of output: performanceTime - contextTime (ms), its spread and drift."""
    if len(ots) < 3:
        raise BrowserBenchError("no AudioContext output timestamps (the audio context did not run)")
    a = np.asarray(ots, float)
    ctx_s, perf = a[:, 1], a[:, 2]
    d = perf - 1000.0 * ctx_s
    slope = float(np.polyfit(ctx_s, perf, 1)[0]) if np.ptp(ctx_s) > 1.0 else None
    return {"offset_ms": float(np.median(d)), "ctx_s": ctx_s, "d": d,
            "spread_ms": round(float(np.percentile(d, 95) - np.percentile(d, 5)), 2),
            "drift_ppm": None if slope is None else round(1e6 * (slope / 1000.0 - 1.0), 1),
            # how far the context renders ahead of what leaves the output (the device latency it reports)
            "render_ahead_ms": round(float(np.median(1000.0 * (a[:, 3] - ctx_s))), 2),
            "n": int(len(a))}


def mark_play_times(segments, clock: dict, rate: float) -> list[tuple[float, float]]:
    """[(page time the mark starts leaving the output, score)] for every mark found in the capture.

    The context -> page time offset is the median of the output timestamps within 1 s of the mark
    (not of the whole run): an overloaded renderer that glitches moves it, and only its neighbours
    know by how much."""
    out = []
    for frame0, pcm in segments:
        for onset, score in detect(pcm, int(rate)):
            c = (frame0 + onset) / rate
            near = np.abs(clock["ctx_s"] - c) <= 1.0
            off = float(np.median(clock["d"][near])) if near.sum() >= 3 else clock["offset_ms"]
            out.append((1000.0 * c + off, score))
    return out


OPUS_LOOKAHEAD = 312  # samples: libopus output lags its input by 6.5 ms (part of the offset a receiver sees)


def delivery_line(ssrc: list, time_origin: float | None, rate: float) -> list[tuple[float, float]]:
    """[(page time, page time - rtp / rate)] from getSynchronizationSources' audio rows: when Chromium
    handed each RTP timestamp's audio to its playout (NetEq -> the <video> element's audio renderer)."""
    if time_origin is None:
        return []
    rows = [(t - time_origin, int(rtp)) for kind, _, t, rtp in ssrc if kind == "audio"]
    if len(rows) < 10:
        return []
    base = rows[0][1]
    unwrapped = [(t, base + ((rtp - base + (1 << 31)) % (1 << 32)) - (1 << 31)) for t, rtp in rows]
    return [(t, t - 1000.0 * rtp / rate) for t, rtp in unwrapped]


def delivered_at(line: list[tuple[float, float]], rtp: float, near: float, span_ms: float = 1500.0) -> float | None:
    """Page time the audio of RTP timestamp `rtp` (unwrapped like the line) was delivered for playout:
    the median of the line's offsets within span_ms of `near` (its rows come in 10 ms pulls of 20 ms
    packets, in whole ms: one row is +-10 ms, the median of a second of them a few ms)."""
    vals = [d for t, d in line if abs(t - near) <= span_ms]
    return None if len(vals) < 10 else float(np.median(vals)) + 1000.0 * rtp / 48_000


def analyse(raw: dict, plan: MarkPlan, fps: float, window: tuple[float, float] | None = None,
            rtp_origin: tuple[int, int] | None = None) -> dict[str, Any]:
    """Figures from what the page recorded; `window` (page ms) limits them to the measured seconds.

    rtp_origin (the first audio RTP timestamp the server sent, the timeline sample it carried)
    enables the cross-check with getSynchronizationSources (when each mark was handed to playout)."""
    period = 1000.0 / fps
    rows = [r for r in raw["video"] if window is None or window[0] <= r[EDT] <= window[1]]
    if len(rows) < 3:
        raise BrowserBenchError("the page presented fewer than 3 video frames in the window")
    info = raw.get("info", {})
    rate = float(info.get("sampleRate") or 48_000)
    out: dict[str, Any] = {"capture": info.get("capture"), "sample_rate": rate}
    streams = {m.split()[0] for m in info.get("msid") or []}
    out["one_stream"] = len(streams) == 1 if streams else None  # Chromium syncs audio and video only if so

    # -- frame timing: presented frames, their intervals, the ids they show
    t0, t1 = rows[0][EDT], rows[-1][EDT]
    presented = rows[-1][PRESENTED] - rows[0][PRESENTED]
    out["fps_presented"] = round(1000.0 * presented / (t1 - t0), 2) if t1 > t0 else None
    steps = np.diff([r[PRESENTED] for r in rows])
    edt = np.array([r[EDT] for r in rows])
    out["frame_interval_ms"] = _pct(np.diff(edt)[steps == 1])  # between frames presented one after the other
    out["frame_interval_ms"]["floor_ms"] = round(period, 2)
    out["callbacks_missed"] = int(np.sum(np.maximum(steps - 1, 0)))  # presented, but the page was busy
    ids = [r[FID] for r in rows]
    read = [i for i in ids if i >= 0]
    dif = np.diff(read)
    out["frame_ids"] = {"read": len(read), "unreadable": len(ids) - len(read),
                        "consecutive": int(np.sum(dif == 1)), "repeated": int(np.sum(dif == 0)),
                        "skipped": int(np.sum(np.maximum(dif - 1, 0))), "backwards": int(np.sum(dif < 0)),
                        "first": read[0] if read else None, "last": read[-1] if read else None}
    rx = [r[EDT] - r[RX] for r in rows if r[RX] is not None]
    out["receive_to_display_ms"] = _pct(rx)  # last packet in -> expected on screen (jitter buffer, decode)
    out["stats"] = rtc_stats(raw.get("stats", []), window)

    # -- A/V offset at the marks
    clock = output_clock([o for o in raw["ots"]], rate)
    out["output_clock"] = {k: v for k, v in clock.items() if k not in ("offset_ms", "ctx_s", "d")}
    out["output_latency_s"] = {"base": info.get("baseLatency"), "output": info.get("outputLatency")}
    marks = [(t, sc) for t, sc in mark_play_times(audio_segments(raw["audio"]), clock, rate)
             if window is None or window[0] <= t <= window[1]]
    shown: dict[int, list] = {}
    for r in raw["video"]:
        if r[FID] >= 0:
            shown.setdefault(r[FID], r)  # first presentation of each id
    # which frame each shown id belongs to: ids carry 16 bits; the presented ones give the id -> time line
    with_id = [(r[FID], r[EDT]) for r in rows if r[FID] >= 0]
    if not with_id:
        raise BrowserBenchError("no frame id could be read in the page (is runner.mark_frames set?)")
    vline = float(np.median([t - k * period for k, t in with_id]))  # page time ~ vline + k * period
    line = delivery_line(raw.get("ssrc", []), info.get("timeOrigin"), rate) if rtp_origin else []
    if line:
        first_rtp = next(rtp for kind, _, _, rtp in raw["ssrc"] if kind == "audio")
    offsets, per_mark, unmatched = [], [], 0
    for t_a, score in marks:
        # the mark nearest in time (unambiguous while |offset| < half the mark period)
        m = round((t_a - vline) / (plan.every * period))
        k = plan.frame(m) % 65536
        row = shown.get(k)
        if m < 0 or row is None:
            unmatched += 1
            continue
        off = row[EDT] - t_a
        offsets.append(off)
        entry = {"mark": m, "frame": plan.frame(m), "offset_ms": round(off, 2),
                 "presented_offset_ms": round(row[PT] - t_a, 2), "score": round(score, 3)}
        if line:
            # the mark's RTP timestamp as the page unwrapped them: sent at ts0 for timeline sample p0
            ts = rtp_origin[0] + plan.position(m) - rtp_origin[1] + OPUS_LOOKAHEAD
            rel = ((ts - first_rtp + (1 << 31)) % (1 << 32)) - (1 << 31)
            t_d = delivered_at(line, first_rtp + rel, t_a)
            if t_d is not None:
                entry["delivered_to_output_ms"] = round(t_a - t_d, 2)
                entry["offset_at_delivery_ms"] = round(row[EDT] - t_d, 2)
        per_mark.append(entry)
    out["marks"] = {"found": len(marks), "matched": len(offsets), "unmatched": unmatched, "every": plan.every}
    out["av_offset_ms"] = _pct(offsets)
    if out["av_offset_ms"] is not None:
        out["av_offset_ms"].update({"sign": "positive: the picture is shown after its sound",
                                    "thresholds_ms": {"audio_early": 45, "audio_late": -125, "target_abs": 20}})
        out["av_offset_presented_ms"] = _pct(p["presented_offset_ms"] for p in per_mark)
        x = [p for p in per_mark if "delivered_to_output_ms" in p]
        if x:  # cross-check: the audio's hand-over to playout as Chromium reports it, a few ms resolution
            out["cross_check"] = {
                "what": "getSynchronizationSources: when each mark's RTP timestamp was handed to playout",
                "delivered_to_webaudio_output_ms": _pct(p["delivered_to_output_ms"] for p in x),
                "av_offset_at_delivery_ms": _pct(p["offset_at_delivery_ms"] for p in x)}
    out["per_mark"] = per_mark
    return out


STAT_KEYS = {"video": ("framesReceived", "framesDecoded", "framesDropped", "framesPerSecond", "freezeCount",
                       "totalFreezesDuration", "pauseCount", "totalPausesDuration", "jitterBufferDelay",
                       "jitterBufferEmittedCount", "jitterBufferTargetDelay", "packetsLost", "totalDecodeTime",
                       "keyFramesDecoded", "nackCount"),
             "audio": ("totalSamplesReceived", "concealedSamples", "silentConcealedSamples", "concealmentEvents",
                       "insertedSamplesForDeceleration", "removedSamplesForAcceleration", "jitterBufferDelay",
                       "jitterBufferEmittedCount", "jitterBufferTargetDelay", "packetsLost")}


def rtc_stats(rows: list[dict], window: tuple[float, float] | None) -> dict[str, Any]:
    """Chromium's inbound-rtp counters over the window (differences of the first and last poll)."""
    rows = [r for r in rows if window is None or window[0] - 1000 <= r["t"] <= window[1] + 1000]
    if len(rows) < 2:
        return {}
    a, b = rows[0], rows[-1]
    out: dict[str, Any] = {"seconds": round((b["t"] - a["t"]) / 1000.0, 2)}
    for kind, keys in STAT_KEYS.items():
        if kind not in a or kind not in b:
            continue
        d = {k: round(b[kind][k] - a[kind].get(k, 0), 4) for k in keys if k in b[kind]}
        if "framesPerSecond" in b[kind]:
            d["framesPerSecond"] = b[kind]["framesPerSecond"]  # a rate, not a counter
        n = d.get("jitterBufferEmittedCount")
        if n:
            d["jitter_buffer_ms"] = round(1000.0 * d["jitterBufferDelay"] / n, 2)
            if "jitterBufferTargetDelay" in d:
                d["jitter_buffer_target_ms"] = round(1000.0 * d["jitterBufferTargetDelay"] / n, 2)
        if kind == "audio" and d.get("totalSamplesReceived"):
            d["concealed_pct"] = round(100.0 * d.get("concealedSamples", 0) / d["totalSamplesReceived"], 3)
        if kind == "video" and d.get("framesDecoded"):
            d["decode_ms"] = round(1000.0 * d.get("totalDecodeTime", 0) / d["framesDecoded"], 2)
        out[kind] = d
    return out


# -- in the bench -----------------------------------------------------------------------------------

async def browser_round(b, rnd_factory, seconds: float, warmup: float, plan_late_s: float = 0.0,
                        every: int = 25) -> tuple[Any, dict[str, Any]]:
    """One session from headless Chromium against the bench's server `b` (streaming.bench.Bench).

    Returns the server-side Round (measured over the same window) and the page's figures.
    """
    from .server import SESSIONS

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


def _f(v, nd: int = 1) -> str:
    return "-" if v is None else f"{v:.{nd}f}" if isinstance(v, float) else str(v)


def markdown_section(fig: dict[str, Any]) -> str:
    """The page's figures as a markdown table (appended to the bench report)."""
    av, avp = fig.get("av_offset_ms") or {}, fig.get("av_offset_presented_ms") or {}
    fi, ids, mk = fig.get("frame_interval_ms") or {}, fig.get("frame_ids") or {}, fig.get("marks") or {}
    st = fig.get("stats") or {}
    v, a = st.get("video", {}), st.get("audio", {})
    oc = fig.get("output_clock") or {}
    xc = fig.get("cross_check") or {}
    xd, xo = xc.get("av_offset_at_delivery_ms") or {}, xc.get("delivered_to_webaudio_output_ms") or {}
    rows = [
        ("A/V offset at display p50 / p95 / min / max (ms, + = picture after its sound; target within +-20, "
         "noticed beyond +45 / -125)",
         f"{_f(av.get('p50'))} / {_f(av.get('p95'))} / {_f(av.get('min'))} / {_f(av.get('max'))} "
         f"({av.get('n', 0)} marks)"),
        ("the same from the presentation time (frame handed to the compositor) p50 (ms)", _f(avp.get("p50"))),
        ("marks found / matched to a presented frame", f"{mk.get('found')} / {mk.get('matched')}"),
        ("presented fps", _f(fig.get("fps_presented"), 2)),
        ("interval between presented frames p50 / p95 / p99 / max (ms)",
         f"{_f(fi.get('p50'))} / {_f(fi.get('p95'))} / {_f(fi.get('p99'))} / {_f(fi.get('max'))} "
         f"(floor {_f(fi.get('floor_ms'))})"),
        ("frame ids read: consecutive / repeated / skipped / unreadable",
         f"{ids.get('consecutive')} / {ids.get('repeated')} / {ids.get('skipped')} / {ids.get('unreadable')}"),
        ("last packet received -> display p50 / p95 (ms)",
         f"{_f((fig.get('receive_to_display_ms') or {}).get('p50'))} / "
         f"{_f((fig.get('receive_to_display_ms') or {}).get('p95'))}"),
        ("Chromium video: decoded / dropped / freezes (total s) / jitter buffer (ms)",
         f"{v.get('framesDecoded')} / {v.get('framesDropped')} / {v.get('freezeCount')} "
         f"({_f(v.get('totalFreezesDuration'), 2)}) / {_f(v.get('jitter_buffer_ms'))}"),
        ("Chromium audio: jitter buffer (ms) / concealed (%) / accelerate, decelerate (samples)",
         f"{_f(a.get('jitter_buffer_ms'))} / {_f(a.get('concealed_pct'), 3)} / "
         f"{a.get('removedSamplesForAcceleration')}, {a.get('insertedSamplesForDeceleration')}"),
        ("cross-check, A/V offset against the audio's hand-over to playout (getSynchronizationSources) "
         "p50 / min / max (ms)", f"{_f(xd.get('p50'))} / {_f(xd.get('min'))} / {_f(xd.get('max'))}"),
        ("hand-over to playout -> WebAudio output p50 (ms): the capture path's own delay",
         _f(xo.get("p50"))),
        ("audio and video in one stream (Chromium lip-syncs them)", _f(fig.get("one_stream"))),
        ("audio output clock: spread (ms) / drift (ppm) / rendered ahead of output (ms)",
         f"{_f(oc.get('spread_ms'), 2)} / {_f(oc.get('drift_ppm'))} / {_f(oc.get('render_ahead_ms'))}"),
    ]
    lines = ["## Receiver: the client page in headless Chromium", "", "| figure | measured |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in rows]
    return "\n".join(lines) + "\n"
