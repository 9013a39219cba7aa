"""Latency instruments: named stage timers over bounded windows, spans in a bounded trace ring, Chrome trace JSON.

Sans-I/O: every time is read from an injected clock (seconds on a monotonic
scale, `engine.clock`), nothing here sleeps or starts threads. A stage window
keeps the last `window` durations, so percentiles follow the recent past and
memory stays fixed however long a session runs. Tracing is off unless a
`TraceRing` is attached; then each span is also kept (newest `capacity` spans)
and can be written as Chrome trace-event JSON, which Perfetto and
chrome://tracing open. With tracing off a span costs two clock reads and an
append.

Trace layout: one trace "process" per owner (a streaming session), one
"thread" per lane (audio-in, model, render, video-out, ...). Each lane is fed
by work that runs one piece at a time, so its spans nest or follow each other.
"""
from __future__ import annotations

import json
import math
import os
import threading
from collections import deque
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from .clock import Clock, MonotonicClock

PERCENTILES = (50, 95, 99)


def percentiles(values: Iterable[float], qs: Iterable[float] = PERCENTILES) -> dict[int, float] | None:
    """Linear-interpolated percentiles (numpy's default), or None when there are no values."""
    arr = np.fromiter(values, float)
    if not arr.size:
        return None
    return {int(q): float(v) for q, v in zip(qs, np.percentile(arr, list(qs)))}


class Window:
    """The last `size` durations of one stage (milliseconds), with running totals over all of them."""

    def __init__(self, size: int = 1000) -> None:
        if size < 1:
            raise ValueError("a window holds at least one value")
        self.values: deque[float] = deque(maxlen=size)
        self.count = 0
        self.total_ms = 0.0

    def add(self, ms: float) -> None:
        self.values.append(ms)
        self.count += 1
        self.total_ms += ms

    def summary(self) -> dict[str, float | int | None]:
        p = percentiles(self.values)
        if p is None:
            return {"n": self.count, "p50_ms": None, "p95_ms": None, "p99_ms": None, "mean_ms": None,
                    "max_ms": None, "total_ms": 0.0}
        vals = np.fromiter(self.values, float)
        return {"n": self.count, "p50_ms": round(p[50], 3), "p95_ms": round(p[95], 3), "p99_ms": round(p[99], 3),
                "mean_ms": round(float(vals.mean()), 3), "max_ms": round(float(vals.max()), 3),
                "total_ms": round(self.total_ms, 3)}

    def clear(self) -> None:
        self.values.clear()
        self.count = 0
        self.total_ms = 0.0


class TraceRing:
    """Spans of many owners in one bounded ring (the oldest fall out), exportable as Chrome trace events."""

    def __init__(self, capacity: int = 200_000, clock: Clock | None = None) -> None:
        if capacity < 1:
            raise ValueError("a trace ring holds at least one span")
        self.clock = clock or MonotonicClock()
        self.origin = self.clock.now()  # ts 0 of the trace
        self._spans: deque[tuple] = deque(maxlen=capacity)
        self.recorded = 0
        self._lock = threading.Lock()  # lane registration only; deque.append is atomic
        self._processes: dict[str, int] = {}
        self._lanes: dict[tuple[int, str], int] = {}

    def lane(self, owner: str, lane: str) -> tuple[int, int]:
        """(pid, tid) of an owner's lane, registered once (their names go into the trace's metadata)."""
        with self._lock:
            pid = self._processes.setdefault(owner, len(self._processes) + 1)
            tid = self._lanes.setdefault((pid, lane), len(self._lanes) + 1)
        return pid, tid

    def add(self, name: str, cat: str, start_s: float, end_s: float, pid: int, tid: int,
            args: dict[str, Any] | None = None) -> None:
        self._spans.append((name, cat, start_s, max(end_s, start_s), pid, tid, args))
        self.recorded += 1

    @property
    def dropped(self) -> int:
        """Spans that fell out of the ring (it keeps the newest)."""
        return self.recorded - len(self._spans)

    def __len__(self) -> int:
        return len(self._spans)

    def events(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        with self._lock:
            processes, lanes = dict(self._processes), dict(self._lanes)
        for owner, pid in processes.items():
            out.append({"name": "process_name", "ph": "M", "pid": pid, "tid": 0, "args": {"name": owner}})
        for (pid, lane), tid in lanes.items():
            out.append({"name": "thread_name", "ph": "M", "pid": pid, "tid": tid, "args": {"name": lane}})
            out.append({"name": "thread_sort_index", "ph": "M", "pid": pid, "tid": tid, "args": {"sort_index": tid}})
        for name, cat, start, end, pid, tid, args in list(self._spans):
            # Whole microseconds: the end is rounded the same way, so a span that ends
            # where its successor starts still does not overlap it.
            ts = math.floor((start - self.origin) * 1e6)
            out.append({"name": name, "cat": cat, "ph": "X", "ts": ts,
                        "dur": max(math.floor((end - self.origin) * 1e6) - ts, 0),
                        "pid": pid, "tid": tid, "args": args or {}})
        return out

    def to_chrome(self, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
        return {"traceEvents": self.events(), "displayTimeUnit": "ms",
                "otherData": {"spans_dropped": self.dropped, **(metadata or {})}}

    def write(self, path: str | Path, metadata: dict[str, Any] | None = None) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_chrome(metadata)), encoding="utf-8")
        os.replace(tmp, path)
        return path


_trace: TraceRing | None = None


def start_trace(capacity: int = 200_000, clock: Clock | None = None) -> TraceRing:
    """Start the process-wide trace ring that profilers created from now on record into."""
    global _trace
    _trace = TraceRing(capacity, clock)
    return _trace


def stop_trace() -> TraceRing | None:
    global _trace
    ring, _trace = _trace, None
    return ring


def current_trace() -> TraceRing | None:
    return _trace


class Profiler:
    """One owner's stage windows (always on) and, when a trace ring is given, its spans."""

    def __init__(self, owner: str = "emolive", clock: Clock | None = None, window: int = 1000,
                 trace: TraceRing | None = None) -> None:
        self.owner = owner
        self.clock = clock or MonotonicClock()
        self.trace = trace
        self._window = window
        self.stages: dict[str, Window] = {}
        self._lanes: dict[str, tuple[int, int]] = {}

    def now(self) -> float:
        return self.clock.now()

    def window(self, stage: str) -> Window:
        w = self.stages.get(stage)
        if w is None:
            w = self.stages.setdefault(stage, Window(self._window))
        return w

    def add(self, stage: str, start: float, end: float, lane: str | None = None,
            args: dict[str, Any] | None = None, cat: str = "stage") -> None:
        """Record a stage that ran from `start` to `end` (seconds on this profiler's clock)."""
        self.window(stage).add(1000.0 * (end - start))
        if self.trace is not None:
            pid_tid = self._lanes.get(lane or stage)
            if pid_tid is None:
                pid_tid = self._lanes[lane or stage] = self.trace.lane(self.owner, lane or stage)
            self.trace.add(stage, cat, start, end, *pid_tid, args)

    def value(self, stage: str, ms: float) -> None:
        """A duration measured elsewhere (not a span of this owner's lanes): windows only."""
        self.window(stage).add(ms)

    @contextmanager
    def span(self, stage: str, lane: str | None = None, args: dict[str, Any] | None = None) -> Iterator[None]:
        start = self.clock.now()
        try:
            yield
        finally:
            self.add(stage, start, self.clock.now(), lane, args)

    def call(self, stage: str, lane: str | None, fn, *args):
        """fn(*args), timed as `stage`."""
        start = self.clock.now()
        try:
            return fn(*args)
        finally:
            self.add(stage, start, self.clock.now(), lane)

    def summary(self) -> dict[str, dict[str, float | int | None]]:
        return {name: w.summary() for name, w in list(self.stages.items())}

    def reset(self) -> None:
        """Forget the durations so far (e.g. after a warm-up); the trace keeps its spans."""
        for w in list(self.stages.values()):
            w.clear()


# -- process measurements (Linux /proc; None elsewhere) ------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def thread_cpu_s(native_id: int) -> float | None:
    """CPU seconds (user + system) used so far by one thread of this process."""
    try:
        with open(f"/proc/self/task/{native_id}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime (fields 14, 15 of stat)


def rss_bytes() -> int | None:
    """Resident memory of this process now."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * _PAGE
    except OSError:
        return None


class GcWatch:
    """Garbage-collector pauses as a stage ("gc", lane "gc") of a profiler: they stop every Python thread."""

    def __init__(self, profiler: Profiler) -> None:
        self.profiler = profiler
        self._start: float | None = None

    def _callback(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._start = self.profiler.now()
        elif self._start is not None:
            self.profiler.add("gc", self._start, self.profiler.now(), "gc", {"generation": info.get("generation")})
            self._start = None

    def __enter__(self) -> "GcWatch":
        import gc

        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc) -> None:
        import gc

        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)
