"""Where the front sends a new session (streaming/worker_pool.py): by each worker's measured load, and nowhere
when every worker is overloaded at its floor (503 server_busy)."""
import os

import pytest

from streaming.config import ServerConfig
from streaming.worker_pool import DEFAULT_SESSION_CPU, WorkerPool

_made = []


@pytest.fixture(autouse=True)
def _remove_socket_dirs():
    yield
    while _made:
        os.rmdir(_made.pop()._dir)  # no worker was started: the pool's socket folder is empty


def _pool(reports, sessions):
    pool = WorkerPool(ServerConfig(), len(reports))
    _made.append(pool)
    for w, report, n in zip(pool.workers, reports, sessions):
        w.ready = True
        w.report = report
        w.sessions = {f"s{w.slot}-{i}" for i in range(n)}
        w._polled = n
    return pool


def _load(level=0, cpu=0.0, refusing=False, missed=0.0):
    return {"level": level, "fps": 25.0, "cpu": cpu, "missed": missed, "refusing": refusing}


def test_a_worker_at_full_rate_goes_before_a_degraded_one_whatever_the_counts():
    pool = _pool([_load(level=1, cpu=0.5), _load(level=0, cpu=0.9)], [1, 2])
    assert pool.pick().slot == 1


def test_a_worker_whose_sessions_cost_more_weighs_more_than_its_count():
    pool = _pool([_load(cpu=1.4), _load(cpu=0.5)], [1, 2])  # one session of a slower renderer: ~3 usual ones
    assert pool.workers[0].weight() > 3 and pool.workers[1].weight() == 2 and pool.pick().slot == 1


def test_cheap_sessions_still_count_whole():
    pool = _pool([_load(cpu=0.55), _load(cpu=0.6)], [3, 2])
    assert pool.pick().slot == 1


def test_a_worker_whose_sessions_miss_frames_reads_low_cpu_and_is_not_given_more():
    pool = _pool([_load(cpu=0.7, missed=0.3), _load(cpu=0.9)], [3, 2])  # starved: its CPU is what it got
    assert pool.pick().slot == 1


def test_sessions_given_since_the_last_poll_count_at_the_measured_cost_per_session():
    pool = _pool([_load(cpu=0.4), _load(cpu=0.9)], [1, 3])  # 0.4 and 0.3 cores a session
    assert pool.pick().slot == 0
    pool.workers[0].pending = 1  # an offer on its way there: two sessions (0.8 cores expected) against three
    assert pool.workers[0].expected_cpu() == 0.8 and pool.pick().slot == 0
    pool.workers[0].pending = 3  # three: four sessions against three
    assert pool.pick().slot == 1
    fresh = _pool([_load(cpu=0.02), _load(cpu=0.02)], [0, 0])
    fresh.workers[0].pending = 1  # no session measured yet: the default cost
    assert fresh.workers[0].expected_cpu() == 0.02 + DEFAULT_SESSION_CPU and fresh.pick().slot == 1


def test_refusing_workers_are_skipped_and_when_all_refuse_the_server_is_busy():
    pool = _pool([_load(level=3, refusing=True), _load(cpu=1.2)], [3, 3])
    assert pool.pick().slot == 1 and not pool.busy()
    pool.workers[1].report = _load(level=3, refusing=True)
    assert pool.pick() is None and pool.busy()
    pool.workers[0].ready = pool.workers[1].ready = False
    assert pool.pick() is None and not pool.busy()  # none running: no_worker, not busy


def test_a_worker_not_polled_yet_is_picked_by_count():
    pool = _pool([{}, {}], [1, 0])
    assert pool.pick().slot == 1
