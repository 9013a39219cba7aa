"""The video sender waits a little for a late frame (bounded) before repeating the previous one; at a reduced
rate (engine/overload.py) it sends only the frames shown, each at its own time."""
import asyncio
import types
from fractions import Fraction

import numpy as np
import pytest

from engine.frame_slot import FrameSlot
from engine.overload import shown as is_shown
from engine.scheduler import AVScheduler
from engine.session import scheduler_config_for
from streaming.tracks import VideoOutTrack
from virtual_time import LoopClock, run


def _runner(grace, clock, share=Fraction(1)):
    sched = AVScheduler(scheduler_config_for(0.04), clock)
    sent = []
    r = types.SimpleNamespace(scheduler=sched, slot=FrameSlot(capacity=3), frame_put=asyncio.Event(), frame_share=share,
                              blank_frame=np.zeros((24, 16), np.uint8),
                              config=types.SimpleNamespace(late_frame_grace_s=grace),
                              on_video_sent=lambda k, shown: sent.append((k, shown)),
                              on_video_unsent=lambda n: sent.append(("unsent", n)))
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


def _started(grace, loop, share):
    """A sender on virtual time over a started scheduler: (runner double, what it was told, scheduler, track)."""
    r, sent = _runner(grace, LoopClock(loop), share)
    r.scheduler.start()
    return r, sent, r.scheduler, VideoOutTrack(r)


@pytest.mark.parametrize("share", [Fraction(4, 5), Fraction(2, 3), Fraction(1, 2)])
def test_at_a_reduced_rate_only_the_frames_shown_are_sent_each_at_its_time(share):
    async def main(loop):
        r, sent, sched, track = _started(0.012, loop, share)
        out = []
        for _ in range(40):
            k = sched.video_index_due()
            for j in range(k, k + 3):  # renders ahead of the sender, as the render loop does
                if is_shown(j, share):
                    r.slot.put(j, _frame(j))
            frame = await track.recv()
            out.append((frame.pts, sched.clock.now()))
        return sched, sent, out, r.slot.repeats

    sched, sent, out, repeats = run(main)
    ks = [k for k, _ in sent]
    assert all(is_shown(k, share) for k in ks) and [shown for _, shown in sent] == ks and repeats == 0
    assert ks == [k for k in range(ks[0], ks[-1] + 1) if is_shown(k, share)]  # none of them left out
    for (pts, t), k in zip(out, ks):
        assert pts == sched.video_pts(k) and t == pytest.approx(sched.video_deadline(k), abs=1e-6)


@pytest.mark.parametrize("share", [Fraction(1), Fraction(1, 2)])
def test_a_sender_behind_the_clock_skips_to_the_frame_due_and_counts_the_frames_it_never_sent(share):
    async def main(loop):
        _, sent, _, track = _started(0.0, loop, share)
        await track.recv()
        await asyncio.sleep(0.2)  # a stalled loop: five frame periods pass before the next call
        await track.recv()
        return sent

    sent = run(main)
    (k0, _), unsent, (k1, _) = sent
    assert unsent[0] == "unsent" and k1 > k0 + 4
    assert unsent[1] == sum(is_shown(k, share) for k in range(k0 + 1, k1)) > 0
