"""Judging and combining bench results: a capacity step held or not, the median of several runs, the
performance targets, and the result as written to the JSON (without the raw samples kept for the plots)."""
from __future__ import annotations

from typing import Any

import numpy as np


def holds(fig: dict, target_fps: float, max_drop_pct: float) -> bool:
    """Target fps held without sustained drops: every session >= 95% of the target, drops under the limit."""
    return fig["sessions"] > 0 and fig["fps_detail"]["min"] >= 0.95 * target_fps and \
        fig["drops"]["pct"] <= max_drop_pct


SCALARS = (("e2e_ms", "p50"), ("e2e_ms", "p95"), ("e2e_ms", "p99"), ("first_frame_ms",), ("fps",),
           ("dropped_frames",), ("av_offset_ms", "p50"), ("cpu", "process_pct"),
           ("receiver_browser", "av_offset_ms", "p50"), ("receiver_browser", "fps_presented"))


def _dig(d, path):
    for key in path:
        if not isinstance(d, dict):
            return None
        d = d.get(key)
    return d


def median_run(runs: list[dict]) -> dict:
    """The run whose e2e p95 is the median one, with the medians of the headline figures over all runs."""
    order = sorted(runs, key=lambda r: (_dig(r, ("e2e_ms", "p95")) or 0.0))
    chosen = dict(order[(len(order) - 1) // 2])
    med = {}
    for path in SCALARS:
        vals = [v for r in runs if isinstance(v := _dig(r, path), (int, float))]
        med[".".join(path)] = round(float(np.median(vals)), 2) if vals else None
    chosen["runs"] = [{".".join(p): _dig(r, p) for p in SCALARS} for r in runs]
    chosen["medians_over_runs"] = med
    return chosen


def targets(r: dict) -> dict[str, Any]:
    """The performance targets (server-added latency p95 <= 120 ms, first frame <= 500 ms, 4 sessions at 25 fps),
    and whether this run met them."""
    med = r.get("medians_over_runs") or {}  # several runs: judge the medians, not one run
    e2e95 = med.get("e2e_ms.p95", _dig(r, ("e2e_ms", "p95")))
    first = med.get("first_frame_ms", r.get("first_frame_ms"))
    out = {"e2e_p95_le_120ms": {"value": e2e95, "met": e2e95 is not None and e2e95 <= 120.0},
           "first_frame_le_500ms": {"value": first, "met": first is not None and first <= 500.0}}
    cap = r.get("capacity")
    if cap is not None:
        out["sessions_ge_4_at_25fps"] = {"value": cap["max_sessions"], "met": cap["max_sessions"] >= 4
                                         and cap["target_fps"] >= 25}
    return out


def without_samples(obj):
    """The result without the raw samples kept for the plots."""
    if isinstance(obj, dict):
        return {k: without_samples(v) for k, v in obj.items() if k != "_samples"}
    if isinstance(obj, list):
        return [without_samples(v) for v in obj]
    return obj
