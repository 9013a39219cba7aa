"""aiortc media edges: outbound tracks pull from the session (recv), inbound audio pushes into it.

Both outbound tracks pace themselves on the scheduler's deadlines, which come
from one audio-sample timeline: aiortc stamps RTCP sender reports with the
send time, so frames sent at their due time keep lips and voice in sync at the
receiver.
"""
from __future__ import annotations

import asyncio
import fractions
import logging

import av
import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

from engine.overload import next_shown, shown_between

log = logging.getLogger(__name__)


async def sleep_until(clock, deadline: float) -> None:
    delay = deadline - clock.now()
    if delay > 0:
        await asyncio.sleep(delay)


class AudioOutTrack(MediaStreamTrack):
    """The presenter's voice, delayed by the pipeline latency; silence when there is none."""

    kind = "audio"

    def __init__(self, runner) -> None:
        super().__init__()
        self._runner = runner
        self._time_base = fractions.Fraction(1, runner.scheduler.config.sample_rate)
        self.tap = None  # called with (pts, int16 samples) for each frame sent (recording)
        self.mirrors: list = []  # called with each frame sent (WHEP viewers of a browser session, fanout.py)
        self._default_plan = None

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        sched = self._runner.scheduler
        await sleep_until(sched.clock, sched.audio_deadline())
        pcm, pts = sched.pull_audio()
        plan = getattr(self._runner, "mark_audio", False)
        if plan:  # bench: chirps at known timeline positions (streaming/audio_marks.py)
            pcm = self._marks(plan).mix(pcm, pts, sched.config.sample_rate)
        s16 = (np.clip(pcm, -1.0, 1.0) * 32767.0).astype(np.int16).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(s16, format="s16", layout="mono")
        frame.sample_rate = sched.config.sample_rate
        frame.pts = pts
        frame.time_base = self._time_base
        if self.tap is not None:
            self.tap(pts, s16)
        for mirror in self.mirrors:
            mirror(frame)
        return frame

    def _marks(self, plan):
        """`runner.mark_audio`: True (the default plan for this timeline) or a MarkPlan."""
        if plan is True:
            if self._default_plan is None:
                from .audio_marks import MarkPlan

                self._default_plan = MarkPlan(self._runner.scheduler.config.samples_per_video_frame)
            return self._default_plan
        return plan


class VideoOutTrack(MediaStreamTrack):
    """The avatar: at each frame's due time, the newest rendered frame not newer than it."""

    kind = "video"
    _time_base = fractions.Fraction(1, 90_000)

    def __init__(self, runner) -> None:
        super().__init__()
        self._runner = runner
        self._next: int | None = None
        self.tap = None  # called with (pts, I420 planes) for each frame sent (recording)
        self.mirrors: list = []  # called with each frame sent (WHEP viewers of a browser session, fanout.py)

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        r = self._runner
        sched = r.scheduler
        due = sched.video_index_due()
        # After a stall, skip to the frame due now rather than bursting stale ones; at a reduced rate
        # (engine/overload.py) to the next frame shown.
        k = next_shown(due if self._next is None or self._next < due else self._next, r.frame_share)
        if self._next is not None and k > self._next:
            if unsent := shown_between(self._next - 1, k - 1, r.frame_share):
                r.on_video_unsent(unsent)  # due at the session's rate, never sent
        await sleep_until(sched.clock, sched.video_deadline(k))
        self._next = k + 1
        await self._grace(k)
        item = r.slot.take(k)
        yuv = item[1] if item is not None else r.blank_frame
        frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
        frame.pts = sched.video_pts(k)
        frame.time_base = self._time_base
        r.on_video_sent(k, item[0] if item is not None else None)
        if self.tap is not None:
            self.tap(frame.pts, yuv)
        for mirror in self.mirrors:
            mirror(frame)
        return frame

    async def _grace(self, k: int) -> None:
        """A frame a few ms late is still worth sending late rather than repeating the previous one: its
        RTP timestamp (from the audio clock) tells the receiver when to show it, and the receiver's
        jitter buffer is deeper than the grace. Bounded by the config's late_frame_grace_s."""
        r = self._runner
        grace = r.config.late_frame_grace_s
        newest = r.slot.newest_index()
        if grace <= 0 or (newest is not None and newest >= k):
            return
        clock = r.scheduler.clock
        end = clock.now() + grace
        while (newest is None or newest < k) and (left := end - clock.now()) > 0:
            r.frame_put.clear()
            try:
                await asyncio.wait_for(r.frame_put.wait(), left)
            except asyncio.TimeoutError:
                return
            newest = r.slot.newest_index()


async def discard_audio(track) -> None:
    """Read and drop an inbound track (aiortc queues unread packets without bound)."""
    while True:
        try:
            await track.recv()
        except MediaStreamError:
            return


async def consume_audio(track, on_pcm, sample_rate: int) -> None:
    """Read the presenter's audio until the track ends; hand mono float32 PCM at the engine rate to on_pcm."""
    resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
    while True:
        try:
            frame = await track.recv()
        except MediaStreamError:
            return
        for out in resampler.resample(frame):
            on_pcm(out.to_ndarray().reshape(-1))
