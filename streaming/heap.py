"""The server process's heap: a closed session is freed when it closes, not at the collector's next full pass.

A session's objects are cyclic (aiortc's peer connection, transports and
senders refer to each other; the runner and its tracks too), so reference
counting never frees them: the cyclic collector does, in a full collection.
At startup the process holds ~170k long-lived objects (models, numba kernels,
avatars); a full collection traverses them all (0.3-0.5 s here, on the event
loop) and runs only after ~40k objects have been promoted, i.e. every ten or
so sessions. Meanwhile the closed sessions' buffers (rendered frames, renderer
and codec state: ~2.5 MiB each) stay allocated, and the heap, grown around
them, does not shrink when they go: 1.6-2.5 MiB of RSS per session, for good.

So each serving process freezes its startup heap once it is built (the
collector skips frozen objects: a full collection then takes milliseconds),
and the runner collects right after a session has closed: the next session
reuses the memory the last one left.
"""
from __future__ import annotations

import gc


def freeze_startup_heap() -> None:
    """Call once the process has built what it keeps for its lifetime (parts, default avatar), before serving."""
    gc.collect()
    gc.freeze()


def collect_closed_session() -> None:
    """Free what a closed session left in reference cycles. Only where the startup heap is frozen: elsewhere
    (an app inside tests or a bench) a full collection would hold the loop for as long as the heap is big."""
    if gc.get_freeze_count():
        gc.collect()
