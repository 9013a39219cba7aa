"""One measured round of the bench: the server's sessions snapshotted at the start and the end of the measuring window.

Round adopts the sessions the client peers open, resets their measurement
windows when measuring starts, and at the end keeps every stage duration they
recorded in the window; profiler/figures.py turns that into figures.
"""
from __future__ import annotations

import os
import time
from typing import Any

from engine.profiling import Profiler, rss_bytes

TIMELINE_STATS = ("gap_samples", "drained_samples", "input_dropped_samples", "audio_skipped_samples")  # scheduler counters, per session


class Round:
    """K sessions against the running server: snapshots at the window's start and end, and the window's durations."""

    def __init__(self, sessions: dict, k: int, gc_profiler: Profiler | None = None) -> None:
        self._sessions = sessions
        self.gc = gc_profiler
        self.k = k
        self.runners: dict[str, Any] = {}
        self.start: dict[str, Any] = {}
        self.end: dict[str, Any] = {}
        self.values: dict[str, dict[str, list[float]]] = {}  # runner id -> stage -> durations (window)

    def adopt(self, sid: str) -> None:
        runner = self._sessions.get(sid)
        if runner is not None:
            runner.mark_frames = True
            runner.mark_audio = True  # chirps at known frames (streaming/audio_marks.py)
            self.runners[sid] = runner

    @staticmethod
    def _snapshot(runners: dict) -> dict[str, Any]:
        per = {}
        for sid, r in runners.items():
            st = r.stats()
            per[sid] = {"frames_sent": r.counters["frames_sent"], "dropped": r.counters["frames_dropped"],
                        "repeated": r.slot.repeats, "late": r.counters["frames_late"],
                        "session_cpu_s": st["session_cpu_s"],
                        "timeline": {k: r.scheduler.stats.get(k, 0) for k in TIMELINE_STATS},
                        "idle_frames": r.session.stats["idle_frames"],
                        # how far the outbound audio (R) is behind the clock: > 20 ms means its sender
                        # could not keep up (an overloaded event loop), and lips and voice part
                        "audio_lag_ms": round(1000.0 * (r.scheduler.timeline_now() - r.scheduler.read_pos)
                                              / r.scheduler.config.sample_rate, 1)}
        return {"t": time.monotonic(), "cpu": time.process_time(), "rss": rss_bytes(), "load": os.getloadavg(),
                "per": per}

    def begin(self) -> None:
        for r in self.runners.values():
            r.reset_measurements()
        if self.gc is not None:
            self.gc.reset()
        self.start = self._snapshot(self.runners)

    def finish(self) -> None:
        self.end = self._snapshot(self.runners)
        for sid, r in self.runners.items():
            self.values[sid] = {name: list(w.values) for name, w in r.profiler.stages.items()}
            self.values[sid]["e2e"] = list(r.e2e_ms)
            self.values[sid]["e2e_packet"] = list(r.e2e_packet_ms)
            self.values[sid]["e2e_offset"] = list(r.e2e_offset_ms)
        if self.gc is not None and "gc" in self.gc.stages:
            self.values["(process)"] = {"gc": list(self.gc.stages["gc"].values)}
