"""The figures of one bench round (JSON-ready), from a finished Round and what the client peers received.

What each figure is (docs/design/performance.md has the details):
* stages: p50/p95/p99 of each stage's duration over all sessions.
* e2e_ms: server-added latency, from an input chunk's arrival at the server
  (the session's on_audio_in) to the departure (all RTP packets handed to the
  transport) of the video frame showing the chunk's first sample: the frame
  whose display interval (from its due time to the next frame's) contains the
  sample's play time. The frame is found from the scheduler's sample
  positions, the times are measured. Its floor: look-ahead - the sample's
  mean offset into that interval + encode (p50).
* first_frame_ms: from the session's creation in the /offer handler to its
  first video frame's departure (server); the client's view (offer sent ->
  first frame received, ICE and DTLS included) is next to it.
* av_offset_ms: at the receiver, arrival of a video frame (its stamped frame id
  gives the timeline position it shows) minus the arrival of the audio sample
  at that position; resolution about 1 ms (the client's event loop).
* receiver_browser (--browser: profiler/browser.py drives the page, profiler/browser_analysis.py computes
  the figures): one session from the real client page in
  headless Chromium; A/V offset = the display time of frame k minus the play
  time of the audio mark mixed in at frame k's first sample, frame timing as
  presented.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from engine.profiling import percentiles

from .window import TIMELINE_STATS, Round

STAGE_ORDER = ("gc", "rx_buffer", "decode", "resample", "features", "a2e", "audio_model", "emotion", "render", "convert",
               "encode", "send", "audio_encode")
STAGE_HELP = {
    "gc": "garbage-collector pause (process-wide: every Python thread waits)",
    "rx_buffer": "RTP packet arrival -> Opus decode start (aiortc's audio jitter buffer)",
    "decode": "Opus decode of one inbound packet (aiortc decoder thread)",
    "resample": "inbound frame -> 48 kHz mono float (consume_audio)",
    "features": "resample to 16 kHz + log-mel + frame interpolation (per 20 ms chunk)",
    "a2e": "audio-to-expression network step (per chunk)",
    "audio_model": "whole audio-model call per chunk (features + a2e)",
    "emotion": "face state of a frame: speech frame + idle life + emotion",
    "render": "meshwarp render, FaceState -> 512x512 RGB",
    "convert": "RGB -> I420 colour conversion",
    "encode": "VP8 encode of one frame (aiortc encoder, executor thread)",
    "send": "RTP packetize + hand to the transport, per frame",
    "audio_encode": "Opus encode of one 20 ms outbound audio frame",
}


def _pct(values, nd: int = 2) -> dict[str, float | int | None]:
    p = percentiles(values)
    if p is None:
        return {"p50": None, "p95": None, "p99": None, "n": 0}
    return {"p50": round(p[50], nd), "p95": round(p[95], nd), "p99": round(p[99], nd), "n": len(list(values))}


def _rtp_times(packets: list, last_of_frame: bool) -> dict[int, float]:
    """pts (as aiortc's receiver numbers them: from the first timestamp) -> arrival of the frame's packets."""
    if not packets:
        return {}
    first = packets[0][1]
    out: dict[int, float] = {}
    for t, ts, marker in packets:
        pts = (ts - first) % (1 << 32)
        if last_of_frame:
            if marker:
                out[pts] = t  # the marker packet completes a video frame
        else:
            out.setdefault(pts, t)
    return out


def _receiver_figures(peer: dict, runner, t0: float, t1: float) -> dict[str, Any]:
    """Frame timing and the A/V offset measured on what the client peer received (RTP arrival, frame ids)."""
    sched = runner.scheduler
    rate, spf, fs = sched.config.sample_rate, sched.config.samples_per_video_frame, sched.config.frame_samples
    video = [v for v in peer["video"] if t0 <= v[0] <= t1]
    out: dict[str, Any] = {"frames_received": len(video), "fps_received": round(len(video) / (t1 - t0), 2)}
    rtp = peer.get("rtp", {})
    vt = _rtp_times(rtp.get("video", []), last_of_frame=True)
    at = _rtp_times(rtp.get("audio", []), last_of_frame=False)
    arrivals = np.array(sorted(t for t in vt.values() if t0 <= t <= t1))
    if len(arrivals) > 2:
        out["frame_interval_ms"] = _pct(1000.0 * np.diff(arrivals))  # at the transport, before the jitter buffer
    decoded = np.array([v[0] for v in video])
    if len(decoded) > 2:
        out["decoded_interval_ms"] = _pct(1000.0 * np.diff(decoded))
    late = [1000.0 * (v[0] - vt[v[1]]) for v in video if v[1] in vt]
    if late:
        out["aiortc_video_buffer_ms"] = _pct(late)  # marker packet in -> decoded frame out (client side)
    marked = [v for v in video if v[2] >= 0]
    out["frames_with_id"] = len(marked)
    r0, sent0 = runner.stream_origin.get("audio"), runner.audio_first_sent_at
    if r0 is None or sent0 is None or not at or not marked:
        out["av_offset_ms"] = None
        return out
    # The receiver's audio pts count from the first packet it got; packets lost before it (while the
    # connection settled) are counted from the RTP timestamps (the server noted its first one), else
    # estimated as whole 20 ms frames between the first send and the first arrival.
    first_t, first_ts = rtp["audio"][0][0], rtp["audio"][0][1]
    ts0 = getattr(runner, "audio_first_rtp_ts", None)
    if ts0 is not None and ((first_ts - ts0) % (1 << 32)) % fs == 0 and (first_ts - ts0) % (1 << 32) < 1 << 31:
        lost = ((first_ts - ts0) % (1 << 32)) // fs
        out["audio_start_from"] = "rtp timestamps"
    else:
        lost = max(0, round((first_t - sent0) * rate / fs))
        out["audio_start_from"] = "arrival times"

    out["audio_frames_lost_at_start"] = lost
    a0 = r0 + lost * fs  # timeline sample of received audio pts 0
    apts = np.array(sorted(at))
    offsets = []
    for t_dec, pts, fid in marked:
        t_v = vt.get(pts)
        if t_v is None:
            continue
        x = fid * spf - a0  # the received audio pts of the timeline sample this frame shows
        i = int(np.searchsorted(apts, x, side="right")) - 1
        if i < 0 or x >= apts[i] + fs:
            continue  # that audio packet was not received
        t_a = at[int(apts[i])] + (x - apts[i]) / rate  # its packet's arrival + its place in the packet
        offsets.append(1000.0 * (t_v - t_a))
    out["av_offset_ms"] = _pct(offsets) if offsets else None
    if offsets:
        out["av_offset_ms"]["mean"] = round(float(np.mean(offsets)), 2)
    out["av_offset_marks_ms"] = _marks_offset(peer.get("audio_marks") or [], marked, spf, fs, rate, t0, t1)
    return out


def _marks_offset(marks: list, marked: list, spf: int, fs: int, rate: int, t0: float, t1: float) -> dict | None:
    """A/V offset from the audio marks (bench_audio_marks): the decoded frame k's return time minus the
    return time of the decoded audio holding the mark at frame k's first sample (+ its place in it)."""
    offsets = [1000.0 * (frame[0] - mark[0]) for mark, frame in mark_frames(marks, marked, spf, rate, t0, t1)]
    if not offsets:
        return None
    out = _pct(offsets)
    out["mean"] = round(float(np.mean(offsets)), 2)
    return out


def mark_frames(marks: list, marked: list, spf: int, rate: int, t0: float, t1: float,
                every: int = 25) -> list[tuple]:
    """Each audio mark (decode time, pts, score) decoded in [t0, t1] with the first decoded video frame
    (decode time, pts, id) carrying the id of the frame the mark was mixed in at: (mark, frame) pairs.
    `every`: the frames between two marks (the MarkPlan the server mixed them in with)."""
    from streaming.audio_marks import MarkPlan

    if not marks or not marked:
        return []
    plan = MarkPlan(spf, every=every)
    period = spf / rate
    shown: dict[int, Any] = {}
    for v in marked:
        shown.setdefault(v[2], v)
    vline = float(np.median([t - fid * period for t, _, fid in marked]))
    pairs = []
    for mark in marks:
        t_a = mark[0]
        if not t0 <= t_a <= t1:
            continue
        m = round((t_a - vline) / (plan.every * period))  # the nearest mark: |offset| < half a mark period
        frame = shown.get(plan.frame(m) % 65536)
        if m >= 0 and frame is not None:
            pairs.append((mark, frame))
    return pairs


def round_figures(rnd: Round, client: dict, cfg, lookahead_ms: float) -> dict[str, Any]:
    """The figures of one round (JSON-ready)."""
    t0, t1 = rnd.start["t"], rnd.end["t"]
    dur = t1 - t0
    fps_target = cfg.fps
    peers = {p["session_id"]: p for p in client.get("peers", []) if p.get("session_id")}
    stage_vals: dict[str, list[float]] = {}
    per_session = []
    for sid, r in rnd.runners.items():
        vals = rnd.values.get(sid, {})
        for name, v in vals.items():
            stage_vals.setdefault(name, []).extend(v)
        a, b = rnd.start["per"].get(sid), rnd.end["per"].get(sid)
        if a is None or b is None:
            continue
        sent = b["frames_sent"] - a["frames_sent"]
        dropped = b["dropped"] - a["dropped"]
        repeated = b["repeated"] - a["repeated"]
        cpu = None
        if a["session_cpu_s"] is not None and b["session_cpu_s"] is not None:
            cpu = round(100.0 * (b["session_cpu_s"] - a["session_cpu_s"]) / dur, 1)
        st = r.stats()
        rate = r.scheduler.config.sample_rate
        timeline = {f"{k[:-len('_samples')]}_ms": round(1000.0 * (b["timeline"][k] - a["timeline"][k]) / rate, 1)
                    for k in TIMELINE_STATS}
        entry = {"session": sid[:8], "fps": round(sent / dur, 2), "frames_sent": sent, "frames_skipped": dropped,
                 "frames_repeated": repeated, "frames_late": b["late"] - a["late"],
                 "render_budget": st["render_budget"], "e2e_ms": _pct(vals.get("e2e", [])),
                 "first_frame_ms": st["first_frame_ms"], "worker_and_render_cpu_pct": cpu,
                 "input_timeline_ms": timeline,
                 # frames drawn without a speech frame from the model (it was late, or there was no input)
                 "frames_without_speech_frame": b["idle_frames"] - a["idle_frames"],
                 "audio_sender_lag_ms_at_end": b["audio_lag_ms"],
                 # placed position - the timeline's now, at placement: the voice delay each chunk gets
                 "voice_delay_at_placement_ms": {"p50": _round2(st["latency_ms_p50"]),
                                                 "p95": _round2(st["latency_ms_p95"])}}
        peer = peers.get(sid)
        if peer is not None:
            entry["receiver"] = _receiver_figures(peer, r, t0, t1)
            if r.first_frame_at is not None and peer["video"]:
                entry["client_first_frame_ms"] = round(1000.0 * (peer["video"][0][0] - peer["offer_at"]), 1)
        per_session.append(entry)
    for name, v in rnd.values.get("(process)", {}).items():
        stage_vals.setdefault(name, []).extend(v)
    stages = {}
    for name in sorted(stage_vals, key=lambda n: (STAGE_ORDER.index(n) if n in STAGE_ORDER else 99, n)):
        if name in ("e2e", "e2e_packet", "e2e_offset"):
            continue
        p = percentiles(stage_vals[name])
        if p is not None:
            stages[name] = {"p50_ms": round(p[50], 3), "p95_ms": round(p[95], 3), "p99_ms": round(p[99], 3),
                            "n": len(stage_vals[name]), "what": STAGE_HELP.get(name, "")}
    e2e = _pct(stage_vals.get("e2e", []))
    encode_p50 = stages.get("encode", {}).get("p50_ms") or 0.0
    period = 1000.0 / fps_target
    # The frame showing a sample at offset d into its display interval cannot leave before the audio
    # up to its own time + look-ahead is in: look-ahead - d after the sample arrived, plus the encode.
    offsets = [max(o, 0.0) for o in stage_vals.get("e2e_offset", [])]
    mean_offset = float(np.mean(offsets)) if offsets else period / 2
    floor = round(lookahead_ms - mean_offset + encode_p50, 2)
    e2e.update({"floor_ms": floor, "ratio_p50": _ratio(e2e["p50"], floor), "ratio_p95": _ratio(e2e["p95"], floor),
                "mean_offset_in_frame_ms": round(mean_offset, 2)})
    first = [s["first_frame_ms"] for s in per_session if s["first_frame_ms"] is not None]
    client_first = [s["client_first_frame_ms"] for s in per_session if s.get("client_first_frame_ms") is not None]
    fps_vals = [s["fps"] for s in per_session]
    recv = [s["receiver"] for s in per_session if "receiver" in s]
    av = [o for s in recv if s.get("av_offset_ms") for o in [s["av_offset_ms"]]]
    intervals = [s["frame_interval_ms"] for s in recv if s.get("frame_interval_ms")]
    cpu_pct = 100.0 * (rnd.end["cpu"] - rnd.start["cpu"]) / dur
    rss0, rss1 = rnd.start["rss"], rnd.end["rss"]
    skipped = sum(s["frames_skipped"] for s in per_session)
    repeated = sum(s["frames_repeated"] for s in per_session)
    expected = fps_target * dur * max(len(per_session), 1)
    first_floor = round(period + encode_p50, 2)
    return {
        "sessions": len(per_session),
        "seconds": round(dur, 2),
        "stages": stages,
        "e2e_ms": e2e,
        "e2e_from_packet_ms": _pct(stage_vals.get("e2e_packet", [])),
        "first_frame_ms": float(np.median(first)) if first else None,
        "first_frame": {"server_ms": first, "client_ms": client_first, "floor_ms": first_floor,
                        "ratio": _ratio(float(np.median(first)) if first else None, first_floor)},
        "fps": float(np.median(fps_vals)) if fps_vals else 0.0,
        "fps_detail": {"target": fps_target, "min": min(fps_vals) if fps_vals else 0.0,
                       "received_min": min((s["fps_received"] for s in recv), default=None),
                       "frame_period_ms": period},
        # a render skipped because it could no longer be on time is a dropped frame; the sender then
        # repeats the previous one, so the two overlap: the share counts the larger of them
        "dropped_frames": skipped,
        "drops": {"skipped": skipped, "repeated": repeated,
                  "pct": round(100.0 * max(skipped, repeated) / expected, 2)},
        "frame_timing_ms": {"p50_max": max((i["p50"] for i in intervals), default=None),
                            "p95_max": max((i["p95"] for i in intervals), default=None),
                            "p99_max": max((i["p99"] for i in intervals), default=None), "floor_ms": period},
        "av_offset_ms": _merge_av(av),
        "cpu": {"process_pct": round(cpu_pct, 1), "per_session_pct": round(cpu_pct / max(len(per_session), 1), 1),
                "cores": os.cpu_count(), "note": "server process only (the client peers run in a child process)"},
        "memory": {"rss_start_mb": _mb(rss0), "rss_end_mb": _mb(rss1)},
        "load_average": {"start": [round(x, 2) for x in rnd.start["load"]],
                         "end": [round(x, 2) for x in rnd.end["load"]]},
        "per_session": per_session,
        # raw durations for the plots (not written to the JSON)
        "_samples": {name: [round(x, 3) for x in v[-4000:]] for name, v in stage_vals.items() if v},
    }


def _merge_av(av: list[dict]) -> dict | None:
    if not av:
        return None
    return {"p50": round(float(np.median([a["p50"] for a in av])), 2), "p95": max(a["p95"] for a in av),
            "mean": round(float(np.mean([a["mean"] for a in av])), 2),
            "sign": "positive: video arrives after its audio", "resolution_ms": 1.0}


def _round2(v) -> float | None:
    return None if v is None else round(v, 2)


def _ratio(value, floor) -> float | None:
    return None if value is None or not floor else round(value / floor, 2)


def _mb(b) -> float | None:
    return None if b is None else round(b / 2**20, 1)
