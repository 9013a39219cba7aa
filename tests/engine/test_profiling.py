"""The latency instruments themselves: windows, percentiles, injected delays, the trace file, server-added latency."""
import asyncio
import json
import time

import numpy as np
import pytest

from engine.clock import FakeClock, MonotonicClock
from engine.profiling import GcWatch, Profiler, TraceRing, Window, percentiles, rss_bytes, thread_cpu_s
from trace_checks import check_well_nested


def test_percentiles_on_known_data():
    p = percentiles(range(1, 101))
    assert p == pytest.approx({50: 50.5, 95: 95.05, 99: 99.01})
    assert percentiles([]) is None
    w = Window(size=1000)
    for v in range(1500):
        w.add(float(v))
    s = w.summary()
    assert s["n"] == 1500 and len(w.values) == 1000  # bounded window, full count
    assert s["p50_ms"] == pytest.approx(np.percentile(np.arange(500, 1500), 50))
    assert s["max_ms"] == 1499 and s["total_ms"] == pytest.approx(sum(range(1500)))
    w.clear()
    assert w.summary()["p50_ms"] is None


def test_injected_delay_is_reported_exactly_on_a_fake_clock():
    clock = FakeClock()
    prof = Profiler("s", clock)
    for delay_ms in (10, 20, 30, 40, 50):
        with prof.span("render"):
            clock.advance(delay_ms / 1000)
        clock.advance(0.005)  # time between stages is not counted
    assert prof.call("emotion", None, lambda: clock.advance(0.002) or 7) == 7
    s = prof.summary()
    assert s["render"]["p50_ms"] == pytest.approx(30.0)
    assert s["render"]["max_ms"] == pytest.approx(50.0) and s["render"]["n"] == 5
    assert s["emotion"]["p50_ms"] == pytest.approx(2.0)
    prof.reset()
    assert prof.summary()["render"]["n"] == 0


def test_injected_sleep_is_reported_within_tolerance_on_the_real_clock():
    prof = Profiler("s", MonotonicClock())
    for _ in range(3):
        with prof.span("stage"):
            time.sleep(0.03)
    s = prof.summary()["stage"]
    # a sleep never returns early; the upper bound only rules out a wrong unit (s vs ms)
    assert 30.0 <= s["p50_ms"] < 1000.0


def test_trace_file_is_valid_chrome_json_with_nested_spans(tmp_path):
    clock = FakeClock()
    ring = TraceRing(capacity=1000, clock=clock)
    a, b = Profiler("session a", clock, trace=ring), Profiler("session b", clock, trace=ring)
    for k in range(5):
        with a.span("frame", lane="render", args={"frame": k}):
            with a.span("render", lane="render"):
                clock.advance(0.004)
            with a.span("convert", lane="render"):
                clock.advance(0.001)
        t0 = clock.now()
        clock.advance(0.003)
        b.add("encode", t0, clock.now(), "video-out")  # recorded after the fact
        a.add("encode", t0, clock.now(), "video-out")  # same times, other session: other pid
        clock.advance(0.0321)
    path = ring.write(tmp_path / "trace.json", {"command": "test"})
    data = json.loads(path.read_text())
    events = data["traceEvents"]
    spans = [e for e in events if e["ph"] == "X"]
    assert len(spans) == 5 * 5
    for e in spans:
        assert {"name", "cat", "ph", "ts", "dur", "pid", "tid", "args"} <= set(e)
        assert isinstance(e["ts"], int) and e["dur"] >= 0
    renders = [e for e in spans if e["name"] == "render"]
    assert all(e["dur"] == 4000 for e in renders)  # microseconds
    assert [e["args"]["frame"] for e in spans if e["name"] == "frame"] == list(range(5))
    lanes = check_well_nested(events)
    assert len({pid for pid, _ in lanes}) == 2 and len(lanes) == 3
    names = {(e["pid"], e["tid"]): e["args"]["name"] for e in events if e["name"] == "thread_name"}
    assert sorted(set(names.values())) == ["render", "video-out"]
    assert {e["args"]["name"] for e in events if e["name"] == "process_name"} == {"session a", "session b"}
    assert data["otherData"]["command"] == "test" and data["otherData"]["spans_dropped"] == 0


def test_trace_ring_is_bounded_and_keeps_the_newest():
    clock = FakeClock()
    ring = TraceRing(capacity=10, clock=clock)
    prof = Profiler("s", clock, trace=ring)
    for k in range(25):
        with prof.span("x", args={"k": k}):
            clock.advance(0.001)
    assert len(ring) == 10 and ring.dropped == 15
    assert [e["args"]["k"] for e in ring.events() if e["ph"] == "X"] == list(range(15, 25))
    assert prof.summary()["x"]["n"] == 25  # the windows do not depend on the ring


def test_gc_pauses_are_a_stage():
    import gc

    prof = Profiler("process", MonotonicClock())
    with GcWatch(prof):
        gc.collect()
    after = len(gc.callbacks)
    s = prof.summary()["gc"]
    assert s["n"] >= 1 and s["p50_ms"] >= 0
    gc.collect()
    assert prof.summary()["gc"]["n"] == s["n"] and len(gc.callbacks) == after  # unhooked


def test_process_measurements():
    import threading

    assert rss_bytes() > 10 * 2**20
    cpu = thread_cpu_s(threading.get_native_id())
    t0 = time.thread_time()
    while time.thread_time() - t0 < 0.05:
        pass
    assert thread_cpu_s(threading.get_native_id()) > cpu
    assert thread_cpu_s(2**31 - 1) is None  # no such thread


def test_server_added_latency_is_input_arrival_to_the_departure_of_the_frame_showing_it():
    """SessionRunner's e2e: the frame whose display interval holds the chunk's first sample (found from
    sample positions, not the next frame after it); the delay is the clock's."""
    from concurrent.futures import ThreadPoolExecutor

    from speech_doubles import RmsLoudnessModel
    from streaming.config import ServerConfig
    from streaming.parts import EngineParts, default_emotion_factory
    from streaming.runner import SessionRunner

    async def scenario():
        clock = FakeClock()
        parts = EngineParts(RmsLoudnessModel, default_emotion_factory, lambda avatar: None, 0.04)
        pool = ThreadPoolExecutor(1)
        runner = SessionRunner("test-session-id-000000", parts, ServerConfig(), pool, clock=clock)
        sched = runner.scheduler
        sched.start()
        spf = sched.config.samples_per_video_frame
        runner.on_audio_in(np.zeros(960, np.float32))  # arrives at t; placed at position P (a frame start)
        clock.advance(0.020)
        runner.on_audio_in(np.zeros(960, np.float32))  # at t + 20 ms; placed at P + 960, mid-frame
        first, second = runner.timing.in_flight[0][0], runner.timing.in_flight[1][0]
        assert first % spf == 0 and second == first + 960
        shows = first // spf  # frame `shows` is on screen while samples [P, P + spf) play: it shows both
        clock.advance(0.080)
        runner.on_video_sent(shows - 1, shows - 1)  # an earlier frame: does not show them
        assert len(runner.e2e_ms) == 0
        clock.advance(0.037)
        runner.on_video_sent(shows + 1, None)  # a blank frame shows nothing
        runner.on_video_sent(shows, shows)
        e2e, offsets = list(runner.e2e_ms), list(runner.e2e_offset_ms)
        runner.worker.shutdown(wait=True)
        pool.shutdown()
        return e2e, offsets, runner.stats()

    e2e, offsets, stats = asyncio.run(scenario())
    assert e2e == [pytest.approx(137.0), pytest.approx(117.0)]
    assert offsets == [pytest.approx(0.0), pytest.approx(20.0)]
    assert stats["e2e_ms_p50"] == pytest.approx(127.0) and stats["first_frame_ms"] == pytest.approx(100.0)
    assert "resample" not in stats["stages"]  # no inbound track: nothing invented
