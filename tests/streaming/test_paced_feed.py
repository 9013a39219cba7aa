"""A buffered voice (--audio FILE, /push) fed at the pace of the outbound audio clock loses nothing when the
audio sender runs late (an overloaded loop): it waits for room in the delay line instead. Virtual time
(tests/virtual_time.py) makes the stall exact and the verdict independent of the machine's load."""
import asyncio

import numpy as np

from engine.scheduler import AVScheduler
from engine.session import scheduler_config_for
from streaming.sources import FilePlayback, feed_paced
from streaming.tracks import sleep_until
from virtual_time import LoopClock, run

RATE = 48_000


async def _sender(sched, stall_at_s: float, stall_s: float, until_s: float, out: list) -> None:
    """The outbound audio: pulls each 20 ms frame when due, except that it stops for stall_s once."""
    stalled = False
    while sched.read_pos < until_s * RATE:
        await sleep_until(sched.clock, sched.audio_deadline())
        if not stalled and sched.read_pos >= stall_at_s * RATE:
            stalled = True
            await asyncio.sleep(stall_s)
        out.append(sched.pull_audio()[0])


def _play(stall_s: float, wait_for_room: bool = True):
    voice = (0.1 + 0.8 * (np.arange(3 * RATE) % 997) / 997).astype(np.float32)  # 3 s, never zero

    async def main(loop):
        sched = AVScheduler(scheduler_config_for(0.04), LoopClock(loop))
        sched.start()
        if not wait_for_room:
            sched.input_room = lambda: 1 << 30  # as a feed that does not look
        written, out = [], []

        def on_pcm(pcm):
            if sched.write(pcm).accepted:
                written.append(len(pcm))

        feed = asyncio.ensure_future(feed_paced(sched, FilePlayback(voice, loop=False), on_pcm))
        await _sender(sched, 1.0, stall_s, 4.0, out)
        await feed
        return sched.stats, sum(written), np.concatenate(out)
    return voice, run(main)


def test_a_late_sender_makes_the_feed_wait_not_drop():
    voice, (stats, written, out) = _play(stall_s=0.45)
    assert stats["input_dropped_samples"] == 0 and written == len(voice)
    # The stall happened: the sender skipped what it could no longer play on time (counted as such).
    assert stats["audio_skipped_samples"] > 0


def test_without_waiting_the_same_stall_drops_input():
    """The counterfactual: what the wait prevents (so the test above can fail)."""
    _, (stats, written, _) = _play(stall_s=0.45, wait_for_room=False)
    assert stats["input_dropped_samples"] > 0


def test_on_time_sender_feeds_every_sample_in_order():
    voice, (stats, written, out) = _play(stall_s=0.0)
    assert stats["input_dropped_samples"] == 0 and stats["audio_skipped_samples"] == 0
    played = out[out > 0]
    np.testing.assert_array_equal(played, voice)
