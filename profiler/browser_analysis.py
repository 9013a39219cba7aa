"""The browser bench's figures from what the page recorded: A/V offset and frame timing as the page presents them.

profiler/browser.py drives the client page in headless Chromium with
streaming/static/bench.js loaded; what that records (presented frames, the
audio captured through WebAudio, output timestamps, RTP sources, inbound-rtp
stats) comes here as `raw`, and `analyse` turns it into:

* av_offset_ms: for every 25th frame k, the time the page expects frame k on
  screen (requestVideoFrameCallback's expectedDisplayTime; the frame's id is
  read from its pixels, streaming/frame_marks.py) minus the time the audio
  mark that the server mixed in at frame k's first timeline sample leaves
  the output device (found in the audio captured through WebAudio by
  streaming/audio_marks.py, its context time mapped to the page clock
  with AudioContext.getOutputTimestamp). Positive: the picture is late.
* frame timing: presented fps, the interval between presented frames
  (p50/p95/p99/max), ids skipped or repeated, and Chromium's own inbound-rtp
  counters (decoded, dropped, freezes, jitter buffer, audio concealment).

Resolution: the audio onset ~0.03 ms (the detector, after Opus); the display
time is a vsync of the headless compositor (60 Hz: the true time is within
16.7 ms, in steps); the output timestamp mapping is as good as Chromium's
audio clock (its spread is reported). Everything here is pure (raw page data
in, figures out; no browser) so tests can check it on what a run recorded.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from streaming.audio_marks import MarkPlan, detect

# video rows from bench.js: [now, expectedDisplayTime, presentationTime, receiveTime, rtpTimestamp,
#                            presentedFrames, frame id (-1: unreadable)]
NOW, EDT, PT, RX, RTP, PRESENTED, FID = range(7)


class BrowserBenchError(RuntimeError):
    """The browser bench cannot run (no chromium/chromedriver, the page failed, no marks found)."""


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
