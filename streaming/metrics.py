"""/metrics: the server's counters and each session's live stats in the Prometheus text format."""
from __future__ import annotations

from aiohttp import web

from .app_common import COUNTERS, GOVERNOR, RECORDERS, SESSIONS
from .whip_publish import PUBLISH

RECORDER_COUNTERS = ("video_frames", "video_dropped", "audio_frames", "audio_dropped")


async def metrics(request: web.Request) -> web.Response:
    app = request.app
    lines = ["# TYPE emolive_sessions gauge", f"emolive_sessions {len(app[SESSIONS])}"]
    load = app[GOVERNOR].report()  # the process's overload level (engine/overload.py) and CPU
    lines += ["# TYPE emolive_video_fps gauge", f"emolive_video_fps {load['fps']}",
              "# TYPE emolive_overload_level gauge", f"emolive_overload_level {load['level']}",
              "# TYPE emolive_process_cpu_cores gauge", f"emolive_process_cpu_cores {load['cpu']}"]
    counters = dict(app[COUNTERS])
    for name in RECORDER_COUNTERS:  # --record: finished recordings (folded in) + the live ones
        live = sum(rec.counters.get(name, 0) for rec in list(app[RECORDERS]))
        if app[RECORDERS] or f"recorded_{name}" in counters:
            counters[f"recorded_{name}"] = counters.get(f"recorded_{name}", 0) + live
    for name, value in counters.items():
        lines += [f"# TYPE emolive_{name}_total counter", f"emolive_{name}_total {value}"]
    if (publishing := app.get(PUBLISH)) is not None:  # --publish-whip and control clients' publishes
        lines += ["# TYPE emolive_whip_publishing gauge", f"emolive_whip_publishing {publishing.live}"]
        for name, value in publishing.counters.items():
            lines += [f"# TYPE emolive_whip_publish_{name}_total counter", f"emolive_whip_publish_{name}_total {value}"]
        lines.append("# TYPE emolive_whip_publish_errors_total counter")
        lines += [f'emolive_whip_publish_errors_total{{category="{c}"}} {n}' for c, n in publishing.errors.items()]
    per_session = ("fps", "latency_ms_p50", "latency_ms_p95", "e2e_ms_p50", "e2e_ms_p95", "e2e_ms_p99",
                   "first_frame_ms", "av_offset_ms", "frames_sent", "frames_dropped", "frames_late",
                   "frames_repeated", "frames_missed", "video_fps", "render_ms_p95", "render_budget_ms",
                   "session_cpu_s", "process_rss_mb")
    stats = {sid[:8]: runner.stats() for sid, runner in list(app[SESSIONS].items())}
    for key in per_session:
        lines.append(f"# TYPE emolive_session_{key} gauge")
        for sid, st in stats.items():
            value = st.get(key)
            if value is not None:
                lines.append(f'emolive_session_{key}{{session="{sid}"}} {value}')
    # render_budget_s auto: the warm renders timed when the session opened, which chose its render budget
    probes = {sid: st["render_budget"] for sid, st in stats.items() if (st.get("render_budget") or {}).get("probe_n")}
    lines.append("# TYPE emolive_session_render_probe_ms gauge")
    for sid, rb in probes.items():
        for name, quantile in (("probe_p50_ms", "0.5"), ("probe_p95_ms", "0.95")):
            lines.append(f'emolive_session_render_probe_ms{{session="{sid}",quantile="{quantile}"}} {rb[name]}')
    lines.append("# TYPE emolive_session_render_probe_count gauge")
    lines += [f'emolive_session_render_probe_count{{session="{sid}"}} {rb["probe_n"]}' for sid, rb in probes.items()]
    lines.append("# TYPE emolive_session_stage_ms gauge")  # per pipeline stage (docs/design/performance.md)
    for sid, st in stats.items():
        for stage, q in st.get("stages", {}).items():
            for name, quantile in (("p50_ms", "0.5"), ("p95_ms", "0.95"), ("p99_ms", "0.99")):
                if q.get(name) is not None:
                    lines.append(f'emolive_session_stage_ms{{session="{sid}",stage="{stage}",quantile="{quantile}"}} '
                                 f'{q[name]}')
    return web.Response(text="\n".join(lines) + "\n", content_type="text/plain", charset="utf-8",
                        headers={"X-Content-Type-Options": "nosniff"})

