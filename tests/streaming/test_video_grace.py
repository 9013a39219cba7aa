"""The video sender waits a little for a late frame (bounded) before repeating the previous one."""
import asyncio
import types

import numpy as np

from engine.frame_slot import FrameSlot
from engine.scheduler import AVScheduler
from engine.session import scheduler_config_for
from streaming.tracks import VideoOutTrack
from virtual_time import LoopClock, run


def _runner(grace, clock):
    sched = AVScheduler(scheduler_config_for(0.04), clock)
    sent = []
    r = types.SimpleNamespace(scheduler=sched, slot=FrameSlot(capacity=3), frame_put=asyncio.Event(),
                              blank_frame=np.zeros((24, 16), np.uint8),
                              config=types.SimpleNamespace(late_frame_grace_s=grace),
                              on_video_sent=lambda k, shown: sent.append((k, shown)))
    return r, sent


def _frame(k):
    return np.full((24, 16), k % 200, np.uint8)


async def _late_render(r, k, delay):
    """Frame k is put `delay` seconds after its due time."""
    await asyncio.sleep(max(0.0, r.scheduler.video_deadline(k) - r.scheduler.clock.now()) + delay)
    r.slot.put(k, _frame(k))
    r.frame_put.set()


def _run(grace, delay):
    async def main(loop):
        r, sent = _runner(grace, LoopClock(loop))
        r.scheduler.start()
        track = VideoOutTrack(r)
        k0 = r.scheduler.video_index_due()
        r.slot.put(k0, _frame(k0))
        await track.recv()  # frame k0, on time
        k = k0 + 1
        render = asyncio.ensure_future(_late_render(r, k, delay))
        await track.recv()
        await render
        return sent[-1], r.slot.repeats, k
    return run(main)


# On virtual time (tests/virtual_time.py) the sender and the late render wake exactly when due, so the
# verdicts do not depend on how loaded the machine is; margins of a few ms are exact.
def test_a_frame_a_few_ms_late_is_sent_not_repeated():
    (k_sent, shown), repeats, k = _run(grace=0.015, delay=0.01)
    assert (k_sent, shown) == (k, k) and repeats == 0


def test_beyond_the_grace_the_previous_frame_is_repeated():
    (k_sent, shown), repeats, k = _run(grace=0.005, delay=0.01)
    assert k_sent == k and shown == k - 1 and repeats == 1


def test_no_grace_repeats_at_once():
    (k_sent, shown), repeats, k = _run(grace=0.0, delay=0.001)
    assert shown == k - 1 and repeats == 1
