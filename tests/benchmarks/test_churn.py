"""Session churn: 40 sessions opened and closed one after another leave nothing behind in the server.

Real aiortc peers on loopback send speech and receive video, then close their
peer connection (as a closed browser tab does); the server sees the peer leave
and closes the session. After the last one: open fds and threads are back to
their value after the warm-up session (the lazily grown pools are filled
first), the server's own per-session bookkeeping is empty, and no closed
session, nor its peer connection, is still reachable (streaming/heap.py,
docs/design/streaming.md "Threads and tasks"). RSS is the benchmark's
(benchmarks/bench_churn.py, docs/design/reliability.md "Session churn").
"""
import asyncio
import gc
import os
import threading
import weakref

import aiohttp
import pytest

from streaming.app_common import COUNTERS, POOL, PUSHES, RECORDERS
from server_harness import Server, connect
from server_harness import tracks_ready
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

SESSIONS = 40
CLOSE_TIMEOUT_S = 60.0  # the server sees the DTLS close at once; ICE consent would take 30 s


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def _fill_pool(loop, pool, size: int) -> None:
    """Start every thread a lazily grown pool may have, so that later sessions cannot add any."""
    barrier = threading.Barrier(size)
    await asyncio.gather(*(loop.run_in_executor(pool, barrier.wait, 30) for _ in range(size)))


async def _session(server, speech) -> tuple[weakref.ref, weakref.ref]:
    """One session: speech out, video in (first frame), the peer closed; returns weakrefs to the server's
    runner and peer connection, once the runner has closed."""
    pc, tracks, answer, player = await connect(server, speech)
    assert answer["status"] == 200, answer
    runner = server.sessions[answer["session_id"]]
    try:
        await tracks_ready(tracks, ("video",))
        frame = await asyncio.wait_for(tracks["video"].recv(), 30)
        assert frame.width > 0
    finally:
        player.audio.stop()
        await pc.close()
    await asyncio.wait_for(runner.closed.wait(), CLOSE_TIMEOUT_S)
    return weakref.ref(runner), weakref.ref(runner.pc)


async def _still_reachable(closed: list[tuple[weakref.ref, weakref.ref]], deadline_s: float = 10.0) -> list[str]:
    """What of the closed sessions survives a full collection, once the callbacks the loop still had queued
    at their close (aiortc's and pyee's last tasks) have run: polled up to a generous deadline."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    while True:
        gc.collect()
        alive = [f"{name} <- {sorted({type(r).__name__ for r in gc.get_referrers(ref())})}"
                 for refs in closed for name, ref in zip(("runner", "pc"), refs) if ref() is not None]
        if not alive or loop.time() > end:
            return alive
        await asyncio.sleep(0.05)


def test_sessions_opened_and_closed_leave_nothing_behind(parts, speech_wav):  # noqa: F811
    async def scenario():
        loop = asyncio.get_running_loop()
        # back to back, as fast as the machine allows: no per-client budget (tests/streaming/test_admission.py)
        server = Server(parts, client_session_rate_per_s=None)
        async with server:
            await server.http.close()  # one connection per request: no keep-alive socket in the fd count
            server.http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True))
            await _fill_pool(loop, None, min(32, (os.cpu_count() or 1) + 4))  # asyncio's default executor
            await _fill_pool(loop, server.app[POOL], server.config.render_threads)
            await _session(server, speech_wav)  # warm-up: codecs, kernels, aiortc's first-use state
            gc.collect()
            fds, threads, tasks = _fds(), sorted(t.name for t in threading.enumerate()), len(asyncio.all_tasks())
            counters = set(server.app[COUNTERS])
            closed = [await _session(server, speech_wav) for _ in range(SESSIONS)]

            # fds and threads first: the HTTP requests below open sockets of their own
            assert sorted(t.name for t in threading.enumerate()) == threads
            assert _fds() == fds
            assert len(asyncio.all_tasks()) == tasks
            assert server.sessions == {}
            assert server.app[PUSHES] == {} and server.app[RECORDERS] == []
            assert set(server.app[COUNTERS]) == counters  # totals, not per-session entries
            assert server.app[COUNTERS]["sessions_started"] == SESSIONS + 1
            alive = await _still_reachable(closed)
            assert alive == [], f"closed sessions still reachable: {alive}"
            async with server.http.get(server.url + "/health") as r:
                assert (await r.json())["sessions"] == 0
            async with server.http.get(server.url + "/metrics") as r:
                assert 'session="' not in await r.text()
            await server.http.close()

    asyncio.run(scenario())
