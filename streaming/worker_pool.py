"""The front's worker processes: starting each one, knowing its sessions, replacing it when it dies.

A worker (streaming/worker.py) is the whole server app on a private unix socket; the front talks to it
over HTTP on that socket. The pool picks the worker with the least measured load for a new offer (`pick`),
polls each worker's live sessions and load every second, and restarts a slot whose process exited (at most
MAX_RESTARTS within RESTART_WINDOW_S; beyond, the slot stays down and /health says so).
"""
from __future__ import annotations

import asyncio
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from .admission import SessionBudget
from .app_common import WorkerStartError
from engine.overload import OverloadPolicy

from .config import ServerConfig

log = logging.getLogger("emolive.front")
START_TIMEOUT_S = 180.0  # a worker loads the models and builds the default avatar before it answers
POLL_S = 1.0
STARVED_MISS = OverloadPolicy().down_miss  # judged also where a worker's policy is off
DEFAULT_SESSION_CPU = 0.45  # cores a 512 x 512 25 fps meshwarp session takes (docs/design/performance.md)

MAX_RESTARTS = 5  # per worker slot within RESTART_WINDOW_S; beyond, the slot stays down
RESTART_WINDOW_S = 60.0


class Worker:
    def __init__(self, slot: int, socket: str) -> None:
        self.slot = slot
        self.socket = socket
        self.proc: asyncio.subprocess.Process | None = None
        self.http: aiohttp.ClientSession | None = None
        self.sessions: set[str] = set()
        self._given: dict[str, float] = {}  # session id -> when its offer was answered (for the poll race)
        self.pending = 0  # offers forwarded and not answered yet (admission counts them)
        self.ready = False
        self.restarts: list[float] = []
        self._polled = 0  # sessions it had at the last poll
        self.input_kind = "browser"
        self.report: dict = {}  # its load governor's report at the last poll (streaming/load_governor.py)

    @property
    def load(self) -> int:
        return len(self.sessions) + self.pending

    def refusing(self) -> bool:
        return bool(self.report.get("refusing"))

    def starved(self) -> bool:
        """Its sessions missed STARVED_MISS of their frames in the last window. Such a process gets less CPU
        than it needs, so its CPU reads low: by CPU alone it would be given more sessions, and miss more."""
        return float(self.report.get("missed", 0.0)) >= STARVED_MISS

    def weight(self) -> float:
        """Its load in sessions of the usual cost: its expected CPU over DEFAULT_SESSION_CPU, and at least its
        count. A worker whose sessions cost more (a slower renderer, a larger frame) weighs more; cheap ones
        still count whole, because one second's CPU reading moves by a few tenths of a core with a session's
        start and with the machine's other processes, and on a saturated machine reads what a process got,
        not what it needed."""
        return max(float(self.load), self.expected_cpu() / DEFAULT_SESSION_CPU)

    def expected_cpu(self) -> float:
        """Its CPU at the last poll (cores), plus what the sessions given to it since would add: the measured
        cost per session there, or DEFAULT_SESSION_CPU before it has any."""
        cpu = float(self.report.get("cpu", 0.0))
        polled = self._polled
        per = cpu / polled if polled else DEFAULT_SESSION_CPU
        return cpu + max(self.load - polled, 0) * per

    def url(self, path: str) -> str:
        return f"http://worker{path}"  # the host is a placeholder: the connector goes to the socket

    async def start(self, config: ServerConfig) -> None:
        if os.path.exists(self.socket):
            os.unlink(self.socket)
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "streaming.worker", self.socket, stdin=asyncio.subprocess.PIPE,
            cwd=str(Path(__file__).resolve().parents[1]))
        # Every request reaches a worker from the front's own socket: the front keeps the per-client budget.
        settings = config.model_copy(update={"workers": 1, "client_session_rate_per_s": None})
        self.proc.stdin.write(settings.model_dump_json().encode() + b"\n")
        await self.proc.stdin.drain()  # stdin stays open: its EOF tells the worker the front is gone
        self.http = aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=self.socket))
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.returncode is not None:
                raise WorkerStartError(f"worker {self.slot} exited with code {self.proc.returncode} while starting")
            try:
                async with self.http.get(self.url("/health")) as r:
                    if r.status == 200:
                        self.input_kind = (await r.json()).get("input", "browser")
                        self.ready = True
                        log.info("worker %d ready (pid %d)", self.slot, self.proc.pid)
                        return
            except (aiohttp.ClientError, OSError):
                pass
            await asyncio.sleep(0.2)
        raise WorkerStartError(f"worker {self.slot} did not start within {START_TIMEOUT_S:.0f} s")

    async def stop(self) -> None:
        self.ready = False
        if self.proc is not None and self.proc.returncode is None:
            self.proc.stdin.close()  # EOF: the worker closes its sessions and exits
            try:
                await asyncio.wait_for(self.proc.wait(), 15)
            except asyncio.TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        if self.http is not None:
            await self.http.close()
            self.http = None

    def adopt(self, sid: str) -> None:
        self.sessions.add(sid)
        self._given[sid] = time.monotonic()

    async def poll(self) -> None:
        """The worker's live sessions. One answered while the poll was on its way is kept: the
        worker's list may predate it."""
        asked = time.monotonic()
        async with self.http.get(self.url("/internal/sessions"), timeout=aiohttp.ClientTimeout(total=5)) as r:
            answer = await r.json()
        live = set(answer["sessions"])
        self.report = answer.get("load") or {}
        self._polled = len(live)
        self._given = {s: t for s, t in self._given.items() if t >= asked - 10.0}
        self.sessions = live | {s for s, t in self._given.items() if t >= asked}


class WorkerPool:
    def __init__(self, config: ServerConfig, count: int) -> None:
        self.config = config
        self._dir = tempfile.mkdtemp(prefix="emolive-workers-")
        self.workers = [Worker(i, os.path.join(self._dir, f"w{i}.sock")) for i in range(count)]
        self.routes: dict[str, Worker] = {}
        self.counters = {"sessions_started": 0, "rejected_full": 0, "rejected_rate": 0, "rejected_busy": 0,
                         "worker_restarts": 0, "worker_exits": 0}
        self.budget = SessionBudget(config.client_session_rate_per_s, config.client_session_burst)
        self._monitor: asyncio.Task | None = None

    async def start(self) -> None:
        results = await asyncio.gather(*(w.start(self.config) for w in self.workers), return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            await asyncio.gather(*(w.stop() for w in self.workers), return_exceptions=True)
            raise failed[0]
        self._monitor = asyncio.get_running_loop().create_task(self._watch(), name="workers-watch")

    async def stop(self) -> None:
        if self._monitor is not None:
            self._monitor.cancel()
            await asyncio.gather(self._monitor, return_exceptions=True)
        await asyncio.gather(*(w.stop() for w in self.workers), return_exceptions=True)
        try:
            os.rmdir(self._dir)
        except OSError:
            pass

    def sessions(self) -> int:
        return sum(w.load for w in self.workers if w.ready)

    def pick(self) -> Worker | None:
        """The worker a new session goes to: by measured load (engine/overload.py level, then whether its
        sessions miss frames, then its weight in half sessions: `weight`), then by count; None when none is
        ready or every ready one refuses (busy())."""
        ready = [w for w in self.workers if w.ready and not w.refusing()]
        return min(ready, key=lambda w: (w.report.get("level", 0), w.starved(), round(2 * w.weight()), w.load, w.slot),
                   default=None)

    def busy(self) -> bool:
        """Workers are running and every one refuses new sessions (overloaded at its floor)."""
        ready = [w for w in self.workers if w.ready]
        return bool(ready) and all(w.refusing() for w in ready)

    def forget(self, worker: Worker) -> None:
        for sid in [s for s, w in self.routes.items() if w is worker]:
            del self.routes[sid]
        worker.sessions.clear()
        worker.report, worker._polled = {}, 0  # the next process measures its own load

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(POLL_S)
            for w in self.workers:
                if w.proc is not None and w.proc.returncode is not None and w.ready:
                    # Its sessions are gone with it; the others are untouched.
                    log.error("worker %d (pid %d) exited with code %s; its %d session(s) ended",
                              w.slot, w.proc.pid, w.proc.returncode, len(w.sessions))
                    self.counters["worker_exits"] += 1
                    w.ready = False
                    self.forget(w)
                    await self._restart(w)
                elif w.ready:
                    try:
                        await w.poll()
                    except (aiohttp.ClientError, OSError, asyncio.TimeoutError, ValueError, KeyError):
                        continue  # busy or going down: the next round tells
                    for sid in [s for s, x in self.routes.items() if x is w and s not in w.sessions]:
                        del self.routes[sid]  # closed there

    async def _restart(self, w: Worker) -> None:
        now = time.monotonic()
        w.restarts = [t for t in w.restarts if now - t < RESTART_WINDOW_S] + [now]
        if len(w.restarts) > MAX_RESTARTS:
            log.error("worker %d failed %d times in %.0f s; not restarting it", w.slot, len(w.restarts),
                      RESTART_WINDOW_S)
            return
        await w.stop()
        try:
            await w.start(self.config)
            self.counters["worker_restarts"] += 1
        except WorkerStartError as e:
            log.error("%s", e)
