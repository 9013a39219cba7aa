"""One worker process of `emolive serve --workers N`: the full server app on a private unix socket.

The front process (streaming/front.py) starts it as
`python -m streaming.worker SOCKET` with the settings as JSON on stdin's first
line, forwards offers, websockets and metrics to it, and watches it. WebRTC
media goes straight between the viewer and this process (its own ICE
candidates are in the SDP answer), so a session's media never crosses the
front. The worker ends when its stdin closes: the front is gone, whatever
killed it.
"""
from __future__ import annotations

import logging
import os
import signal
import sys
import threading

from aiohttp import web

from .app_common import GOVERNOR, SESSIONS
from .config import ServerConfig
from .heap import freeze_startup_heap
from .parts import EngineUnavailable
from .server import create_app, prepare_default_avatar
from .sources import InputUnavailable
from .warm_up import warm_up

log = logging.getLogger("emolive.worker")


async def _sessions(request: web.Request) -> web.Response:
    """Live session ids (the socket is private to the front, which routes by them) and the process's load
    (streaming/load_governor.py), which the front places new sessions by."""
    return web.json_response({"sessions": list(request.app[SESSIONS]), "load": request.app[GOVERNOR].report()})


def _watch_front() -> None:
    """A daemon thread: at EOF on stdin (the front has gone), stop like on SIGTERM (sessions closed cleanly)."""
    def watch() -> None:
        sys.stdin.buffer.read()
        log.info("the front closed the pipe; stopping")
        os.kill(os.getpid(), signal.SIGTERM)
    threading.Thread(target=watch, name="front-watch", daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m streaming.worker SOCKET  (settings as JSON on stdin's first line)")
        return 2
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s %(levelname)s worker{os.getpid()} %(name)s: "
                        "%(message)s")
    try:
        config = ServerConfig.model_validate_json(sys.stdin.buffer.readline())
        app = create_app(config)
        prepare_default_avatar(app)
        try:
            warm_up(app)
        except Exception:  # noqa: BLE001 - the process can serve; its first session pays the first calls
            log.warning("the warm-up failed; serving without it", exc_info=True)
        freeze_startup_heap()  # what the process keeps for good is built: closed sessions are collected cheaply
    except (ValueError, OSError, EngineUnavailable, InputUnavailable) as e:  # the front reports the exit
        print(f"emolive worker: {e}", file=sys.stderr)
        return 2
    app.router.add_get("/internal/sessions", _sessions)
    _watch_front()
    web.run_app(app, path=argv[0], print=None, access_log=None)  # the front logs the requests; polls are not news
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
