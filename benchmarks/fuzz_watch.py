"""The server under the fuzz campaign, watched: its processes (RSS, any that exit or are replaced), /health,
the witness's frames as the server sends them (/metrics), the tracebacks in its log, and whether a session
still answers (benchmarks/bench_fuzz.py).
"""
from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from pathlib import Path

from bench_capacity import _tree


def rss_mb(pids: list[int]) -> dict[str, float]:
    out = {}
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    out[str(p)] = round(int(line.split()[1]) / 1024, 1)
        except OSError:
            pass
    return out


class Watch:
    """Polls /health and the process tree: any server process that goes away, or a worker that is replaced."""

    def __init__(self, server, url: str, http) -> None:
        self.server, self.url, self.http = server, url, http
        self.first_pids = set(_tree(server.pid))
        self.seen_pids = set(self.first_pids)
        self.health_failures = 0
        self.health_polls = 0
        self.worker_pids: dict[int, set[int]] = {}
        self.sessions_max = 0
        # The witness's frames as the server counts them sending (/metrics), beside what its receiver got:
        # on one machine the receiver shares the cores with the attacker and may fall behind on its own.
        self.witness: str | None = None
        self.witness_sent: list[tuple[float, int]] = []
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        import aiohttp

        while True:
            self.seen_pids |= set(_tree(self.server.pid))
            self.health_polls += 1
            try:
                async with self.http.get(self.url + "/health", timeout=aiohttp.ClientTimeout(total=5)) as r:
                    h = await r.json()
                    if r.status != 200:
                        self.health_failures += 1
                for w in h.get("workers", []):
                    if w.get("pid"):
                        self.worker_pids.setdefault(w["slot"], set()).add(w["pid"])
                self.sessions_max = max(self.sessions_max, h.get("sessions", 0))
            except Exception:  # noqa: BLE001 - counted: /health did not answer
                self.health_failures += 1
            if self.witness:
                await self._witness_sent()
            await asyncio.sleep(0.5)

    async def _witness_sent(self) -> None:
        import aiohttp

        name, label = "emolive_session_frames_sent{", f'session="{self.witness[:8]}"'  # the front adds worker=
        try:
            async with self.http.get(self.url + "/metrics", timeout=aiohttp.ClientTimeout(total=5)) as r:
                text = await r.text()
        except Exception:  # noqa: BLE001 - a missed sample; /health failures are what count
            return
        for line in text.splitlines():
            if line.startswith(name) and label in line:
                self.witness_sent.append((time.monotonic(), int(float(line.rsplit(" ", 1)[1]))))
                return

    async def stop(self) -> dict:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        alive = set(_tree(self.server.pid)) if self.server.returncode is None else set()
        # The front and its workers as they were when serving began; a short-lived child a process
        # spawns later (a library probing the system) is not a server process ending.
        gone = sorted(p for p in self.first_pids if p not in alive)
        return {"server_exited": self.server.returncode is not None, "processes_gone": gone,
                "transient_children": len(self.seen_pids - self.first_pids - alive),
                "worker_replacements": sum(len(p) - 1 for p in self.worker_pids.values()),
                "health_polls": self.health_polls, "health_failures": self.health_failures}


def log_errors(path: Path) -> dict:
    """Tracebacks and ERROR lines in the server's log, the distinct last lines of each traceback."""
    text = path.read_text(errors="replace") if path.exists() else ""
    lines = text.splitlines()
    last_lines, in_tb = Counter(), False
    for i, line in enumerate(lines):
        if line.startswith("Traceback"):
            in_tb = True
        elif in_tb and line and not line.startswith((" ", "Traceback")) and not line.startswith("During handling"):
            last_lines[line[:200]] += 1
            in_tb = False
    return {"tracebacks": sum(last_lines.values()), "error_lines": sum(" ERROR " in x for x in lines),
            "exceptions": dict(last_lines.most_common(20))}


async def session_alive(http, url: str, sid: str) -> bool:
    import aiohttp

    try:
        async with http.ws_connect(f"{url}/ws?session={sid}") as ws:
            await ws.send_str(json.dumps({"type": "get_state"}))
            for _ in range(10):
                msg = await ws.receive(timeout=10)
                if msg.type != aiohttp.WSMsgType.TEXT:
                    return False
                if json.loads(msg.data)["type"] == "state":
                    return True
    except (aiohttp.ClientError, asyncio.TimeoutError):
        return False
    return False
