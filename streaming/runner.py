"""One streaming session's asyncio shell: owns its tasks, threads, peer connection and renderer.

Threads, and why: the session pipeline (audio model, emotion, face state) runs
on the session's own single worker thread, so its calls are ordered without
locks and a slow model never blocks the event loop; renders run on the
server's shared render pool (numba kernels release the GIL). The scheduler
(delay line, clocks) stays on the event loop thread with the media tracks.
"""
from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from fractions import Fraction
from pathlib import Path
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import cv2
import numpy as np

from engine.clock import Clock, MonotonicClock
from engine.frame_slot import FrameSlot
from engine.overload import next_shown
from engine.profiling import Profiler, current_trace
from engine.render_budget import AUTO, RenderBudget, choose_budget, fixed_budget, time_renders
from engine.scheduler import AVScheduler
from engine.session import Session, scheduler_config_for
from engine.types import FaceState

from .config import ServerConfig
from .encoders import install_tuned_encoder
from .face_events import face_state_event
from .heap import collect_closed_session
from .parts import EngineParts
from .session_timing import SessionTiming
from .tracks import AudioOutTrack, VideoOutTrack, sleep_until

log = logging.getLogger(__name__)

MAX_FEED_BACKLOG = 25  # chunks (0.5 s of 20 ms packets) queued for the model before input is shed
DEFAULT_RENDER_BUDGET_S = 0.02  # auto mode, until open() has measured the renderer


class SessionRunner:
    def __init__(self, session_id: str, parts: EngineParts, config: ServerConfig, render_pool: ThreadPoolExecutor,
                 avatar: str | None = None, emotion: str | None = None, clock: Clock | None = None,
                 on_closed: Callable[["SessionRunner"], None] | None = None) -> None:
        self.id = session_id
        self.config = config
        self.avatar = avatar
        self._parts = parts
        self._render_pool = render_pool
        self._on_closed = on_closed
        # render_budget_s "auto": the scheduler runs with the default budget until open() has measured
        # the renderer and reconfigured it (before start(): nothing is on the timeline yet).
        budget = config.render_budget_s
        self.render_budget = RenderBudget(DEFAULT_RENDER_BUDGET_S, AUTO) if budget == AUTO else fixed_budget(budget)
        self.scheduler = AVScheduler(self._scheduler_config(self.render_budget), clock or MonotonicClock())
        # Stage timers (always on, bounded) and, when a trace ring is running, spans.
        self.profiler = Profiler(f"session {session_id[:6]}", self.scheduler.clock, window=2000,
                                 trace=current_trace())
        self.slot = FrameSlot(capacity=3)
        # Latency measurement (bounded windows) for stats and /metrics; its clock starts now, in the
        # /offer handler just after the body is read.
        self.timing = SessionTiming(self.scheduler, self.profiler, self.slot)
        self.emotion = parts.emotion_factory(emotion)  # may raise EmotionError: a bad request
        self.session = Session(self.scheduler, self._timed_model, self.emotion, idle=self.emotion.idle)
        self.frame_put = asyncio.Event()  # set at each rendered frame: the sender may wait a little for one
        self.worker = ThreadPoolExecutor(1, thread_name_prefix=f"emolive-session-{session_id[:6]}")
        self.renderer = None
        self.blank_frame: np.ndarray | None = None
        # A new avatar from a photo (streaming/avatar_swap.py), taken by the render loop between two frames.
        self._next_avatar = None
        self.avatar_info: dict[str, Any] = {"source": Path(avatar).name if avatar else "default"}
        self.audio_out = AudioOutTrack(self)
        self.video_out = VideoOutTrack(self)
        self.pc = None
        self.tasks: set[asyncio.Task] = set()
        self.listeners: set[Callable[[dict], None]] = set()  # control connections' event sinks
        self.face_listeners: set[Callable[[dict], None]] = set()
        # (frame index, face state) of each rendered frame: the talkinghead stream, Live Link. On the loop;
        # each must return at once and never raise (the render loop does not wait for or survive them).
        self.frame_listeners: set[Callable[[int, FaceState], None]] = set()
        self.closed = asyncio.Event()
        self._closing = False
        self._closer: asyncio.Task | None = None  # owns a close started from a callback
        self._feed_backlog = 0
        self._encoders: list = []  # tuned video encoders made for this session's sender (closed with it)
        self._frame_s: deque[float] = deque(maxlen=25)  # face state + render of the last frames (s)
        self.counters = {"frames_rendered": 0, "frames_late": 0, "frames_sent": 0, "frames_dropped": 0,
                         "frames_missed": 0, "frames_unsent": 0, "audio_chunks_in": 0, "audio_chunks_shed": 0,
                         "errors": 0}
        # The share of timeline frames shown (engine/overload.py): below 1 when the process is overloaded; the
        # render loop and the video sender both skip the frames left out. Set by streaming/load_governor.py.
        self.frame_share = Fraction(1)
        self.last_state: FaceState | None = None
        self.failure: str | None = None
        self._a2e_ms = 0.0
        self.mark_frames = config.bench_marks  # bench: stamp each frame's timeline index into its pixels
        self.mark_audio = config.bench_marks  # bench: chirps at known frames (streaming/audio_marks.py)

    # -- lifecycle -----------------------------------------------------------
    async def open(self) -> None:
        """Build the renderer (slow: avatar loading, kernel warm-up) off the loop."""
        loop = asyncio.get_running_loop()
        self.renderer = await loop.run_in_executor(self.worker, self._parts.renderer_factory, self.avatar)
        self.timing.worker_tid = await loop.run_in_executor(self.worker, threading.get_native_id)
        if self.render_budget.mode == AUTO:
            await self._measure_render_budget()
        else:
            self.blank_frame = self._draw(FaceState.neutral())  # also warms the render path before the first frame

    async def _measure_render_budget(self) -> None:
        """render_budget_s auto: time warm renders on the session worker (the first, neutral, is the blank
        frame), choose the budget and give the scheduler its lead and voice delay before start()."""
        loop = asyncio.get_running_loop()
        self.blank_frame, times = await loop.run_in_executor(self.worker, time_renders, self._draw,
                                                             self.scheduler.clock.now)
        budget = choose_budget(times, self.config.fps)
        self.scheduler.reconfigure(self._scheduler_config(budget))
        self.render_budget = budget
        log.info("session %s: render budget %.1f ms (auto: warm renders p50 %.1f ms, p95 %.1f ms, n=%d)",
                 self.id[:6], 1000 * budget.budget_s, 1000 * budget.p50_s, 1000 * budget.p95_s, budget.n)
        if budget.warning is not None:
            log.warning("session %s: %s", self.id[:6], budget.warning)

    def _scheduler_config(self, budget: RenderBudget):
        c = self.config
        return scheduler_config_for(self._parts.model_latency_s, render_budget_s=budget.budget_s,
                                    jitter_s=c.jitter_s, sample_rate=c.sample_rate, fps=c.fps,
                                    render_expected_s=budget.p50_s or 0.0)

    def start(self) -> None:
        self.scheduler.start()
        self._prepare_peer()
        self.spawn(self._render_loop(), "render")
        self.spawn(self._stats_loop(), "stats")

    def spawn(self, coro, name: str) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro, name=f"{self.id[:6]}-{name}")
        self.tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        self.tasks.discard(task)
        if task.cancelled() or self._closing:
            return
        exc = task.exception()
        if exc is not None:
            # A crash ends this session only; the server and other sessions go on.
            log.error("session %s: task %s failed", self.id[:6], task.get_name(), exc_info=exc)
            self.failure = f"{task.get_name()}: {exc}"
            self.broadcast({"type": "error", "code": "internal", "message": f"session failed: {exc}"})
            self.close_soon("internal error")

    @property
    def closing(self) -> bool:
        """Closing or closed: the session takes no more work (its worker may already be shut down)."""
        return self._closing

    def close_soon(self, reason: str) -> None:
        """Close from a callback: the closing task is kept here (asyncio holds tasks only weakly)."""
        if self._closer is None and not self._closing:
            self._closer = asyncio.get_running_loop().create_task(self.close(reason), name=f"{self.id[:6]}-close")

    async def close(self, reason: str = "closed") -> None:
        if self._closing:
            await self.closed.wait()
            return
        self._closing = True
        me = asyncio.current_task()
        tasks = [t for t in self.tasks if t is not me]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.audio_out.stop()
        self.video_out.stop()
        if self.pc is not None:
            await self.pc.close()
            self.pc.remove_all_listeners()  # the server's callbacks hold the app's objects; the pc is done
        loop = asyncio.get_running_loop()
        for encoder in self._encoders:  # their own threads end with the session, not at a collection
            await loop.run_in_executor(None, encoder.close)
        self._encoders.clear()
        for renderer in (self.renderer, getattr(self._next_avatar, "renderer", None)):
            if renderer is not None and hasattr(renderer, "close"):
                await loop.run_in_executor(self.worker, renderer.close)
        self._next_avatar = None
        await loop.run_in_executor(None, self.worker.shutdown, True)
        self.slot.clear()  # the rendered frames go now, whoever still holds the runner
        self.broadcast({"type": "closed", "reason": reason})
        self.listeners.clear()
        self.face_listeners.clear()
        self.frame_listeners.clear()
        self.closed.set()
        if self._on_closed is not None:
            self._on_closed(self)
        # The server has let go of it: its cycles (peer connection, tracks) are freed now, once this
        # close's callers have returned (streaming/heap.py).
        loop.call_soon(collect_closed_session)
        log.info("session %s closed: %s", self.id[:6], reason)

    # -- pipeline --------------------------------------------------------------
    def on_audio_in(self, pcm: np.ndarray) -> None:
        """Inbound PCM (loop thread): onto the timeline now, to the model on the session worker."""
        if self._closing:
            return
        now = self.scheduler.clock.now()
        inbound = self.timing.take_inbound(now)
        self.counters["audio_chunks_in"] += 1
        placed = self.session.place(pcm)
        if placed is None or not placed.accepted:
            return
        self.timing.input_placed(placed.position, now, inbound)
        if self._feed_backlog >= MAX_FEED_BACKLOG:
            # The model cannot keep up: shed this chunk (its voice still plays) and
            # restart the model on the next one, so its time stays on the timeline.
            self.counters["audio_chunks_shed"] += 1
            self._submit(self.session.forget_speech)
            return
        self._submit(self._feed, placed, pcm)

    def _submit(self, fn, *args) -> None:
        self._feed_backlog += 1
        fut = self.worker.submit(fn, *args)
        loop = asyncio.get_running_loop()
        fut.add_done_callback(lambda f: loop.call_soon_threadsafe(self._fed, f))

    def _fed(self, fut) -> None:
        self._feed_backlog -= 1
        if not fut.cancelled() and fut.exception() is not None and not self._closing:
            self.counters["errors"] += 1
            log.error("session %s: audio model failed", self.id[:6], exc_info=fut.exception())

    # -- timed pipeline calls (session worker) -------------------------------------
    def _timed_model(self):
        """The audio model, with its network step timed apart from the features around it."""
        model = self._parts.model_factory()
        net = getattr(model, "model", None)
        step = getattr(net, "step", None)
        if step is not None:
            def timed_step(feats, _step=step):
                t0 = self.profiler.now()
                try:
                    return _step(feats)
                finally:
                    t1 = self.profiler.now()
                    self._a2e_ms += 1000.0 * (t1 - t0)
                    self.profiler.add("a2e", t0, t1, "model")
            net.step = timed_step
        return model

    def _feed(self, placed, pcm) -> int:
        self._a2e_ms = 0.0
        t0 = self.profiler.now()
        try:
            return self.session.feed(placed, pcm)
        finally:
            t1 = self.profiler.now()
            self.profiler.add("audio_model", t0, t1, "model")
            # resampling to 16 kHz, log-mel and frame interpolation: the model call minus the network
            self.profiler.value("features", max(1000.0 * (t1 - t0) - self._a2e_ms, 0.0))

    def _state_for(self, k: int) -> FaceState:
        return self.profiler.call("emotion", "model", self.session.state_for, k)

    async def run_in_session(self, fn, *args):
        """Run a pipeline call on the session worker (ordered with the model and the face states)."""
        return await asyncio.get_running_loop().run_in_executor(self.worker, fn, *args)

    def _draw(self, state: FaceState, k: int | None = None) -> np.ndarray:
        p = self.profiler
        t0 = p.now()
        rgb = self.renderer.render(state)
        t1 = p.now()
        yuv = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2YUV_I420)
        if self.mark_frames and k is not None:
            from .frame_marks import stamp

            stamp(yuv, k)
        t2 = p.now()
        self.timing.render_busy_s += t2 - t0
        args = {"frame": k} if k is not None and p.trace is not None else None
        p.add("render", t0, t1, "render", args)
        p.add("convert", t1, t2, "render", args)
        return yuv

    async def _render_loop(self) -> None:
        loop = asyncio.get_running_loop()
        sched = self.scheduler
        clock = sched.clock
        k = sched.video_index_due() - 1
        while True:
            k, skipped = sched.next_render_index(k, self._expected_frame_s())
            self.counters["frames_dropped"] += skipped
            k = next_shown(k, self.frame_share)  # frames left out at a reduced rate are not drops
            await sleep_until(clock, sched.render_start_time(k))
            start = clock.now()
            state = await loop.run_in_executor(self.worker, self._state_for, k)
            if self._next_avatar is not None:
                self._take_avatar()
            t0 = clock.now()
            yuv = await loop.run_in_executor(self._render_pool, self._draw, state, k)
            done = clock.now()
            self._frame_s.append(done - start)
            self.timing.render_ms.append(1000.0 * (done - t0))
            self.counters["frames_rendered"] += 1
            if done > sched.video_deadline(k):  # the sender waits up to late_frame_grace_s, then repeats
                self.counters["frames_late"] += 1
            if not self.slot.put(k, yuv):
                self.counters["frames_dropped"] += 1
            self.frame_put.set()
            self.last_state = state
            if self.face_listeners:
                msg = face_state_event(state, k)
                for send in list(self.face_listeners):
                    send(msg)
            for listener in list(self.frame_listeners):
                listener(k, state)

    # -- a new avatar (streaming/avatar_swap.py) -----------------------------------------------------
    @property
    def renderer_factory(self):
        return self._parts.renderer_factory

    def frame_side(self) -> int:
        """The width of the session's frames (a new avatar is built at it: the encoder keeps its size)."""
        return int(self.blank_frame.shape[1]) if self.blank_frame is not None else 512

    def swap_avatar(self, new) -> None:
        """Show `new` (a NewAvatar) from the next frame on; `state` reports it at once. A newer photo sent
        before the render loop took this one replaces it."""
        if self._closing:
            if hasattr(new.renderer, "close"):
                new.renderer.close()
            raise RuntimeError("the session closed while the avatar was built")
        old, self._next_avatar = self._next_avatar, new
        self.avatar_info = new.info
        if old is not None and hasattr(old.renderer, "close"):
            self.worker.submit(old.renderer.close)

    def _take_avatar(self) -> None:
        """Between two renders (the render loop is the renderer's one user): the new renderer in, the old
        one closed on the session worker."""
        new, self._next_avatar = self._next_avatar, None
        old, self.renderer = self.renderer, new.renderer
        self.blank_frame = new.blank_frame
        if old is not None and hasattr(old, "close"):
            self.worker.submit(old.close)

    def _expected_frame_s(self) -> float | None:
        """Auto budget: a frame takes (face state + render) what the last ones took in the stream (with the
        other sessions, the encoders and the loop sharing the cores: slower than the probe at open), so a
        renderer behind picks frames it can still finish. Fixed budget: None, the scheduler's own rule."""
        if self.render_budget.mode != AUTO or len(self._frame_s) < 5:
            return None
        return float(np.median(self._frame_s))

    def on_video_unsent(self, n: int) -> None:
        """VideoOutTrack.recv, behind the clock, skips n frames that were due at the session's rate."""
        self.counters["frames_unsent"] += n

    def on_video_sent(self, k: int, shown: int | None) -> None:
        """VideoOutTrack.recv hands frame k (showing rendered frame `shown`, None: blank) to the sender."""
        self.counters["frames_sent"] += 1
        if shown is None or shown < k:  # a repeat or a blank: what the load governor counts as missed
            self.counters["frames_missed"] += 1
        self.timing.frame_sent(k, shown)

    def _prepare_peer(self) -> None:
        """The tuned video encoder (config video_encoder), then the timing hooks on the senders and the
        inbound audio receiver (streaming/session_timing.py): the sender's frame call is wrapped by the
        encoder's chooser first, then by the timing hook around it."""
        pc = self.pc
        if pc is None:
            return
        if self.config.video_encoder == "tuned":
            for sender in pc.getSenders():
                if sender.track is self.video_out:
                    install_tuned_encoder(sender, max_bitrate=self.config.video_max_bitrate, owned=self._encoders)
        self.timing.instrument(pc, self.video_out, self.audio_out)

    async def _stats_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.stats_interval_s)
            if self.listeners:
                self.broadcast({"type": "stats", **self.stats()})

    def broadcast(self, msg: dict) -> None:
        for send in list(self.listeners):
            send(msg)

    # -- reports -------------------------------------------------------------
    def set_frame_share(self, share: Fraction, reason: str | None = None) -> None:
        """Show this share of the timeline's frames from the next one on (engine/overload.py); with a reason,
        the control connections are told (a `video_rate` event)."""
        if share == self.frame_share:
            return
        self.frame_share = share
        if reason is not None:
            self.broadcast({"type": "video_rate", "fps": self.video_fps, "reason": reason})

    @property
    def video_fps(self) -> float:
        return round(float(self.config.fps * self.frame_share), 2)

    def stats(self) -> dict[str, Any]:
        """The measured figures (streaming/session_timing.py), then the pipeline's counters."""
        return {
            "video_fps": self.video_fps,
            **self.timing.stats(self.render_budget),
            "vad": self.session.vad,
            **self.counters,
            **self.session.stats,
            **self.scheduler.stats,
        }

    def state(self) -> dict[str, Any]:
        return {"session_id": self.id, "t": self.scheduler.read_pos / self.scheduler.config.sample_rate,
                "speaking": self.session.vad > 0.5, "emotion": self.emotion.describe(),
                "avatar": self.avatar_info, "connection": getattr(self.pc, "connectionState", None)}

    def reset_measurements(self) -> None:
        """Start the latency windows afresh (after a warm-up); counters go on."""
        self.timing.reset()

    # -- measured figures read by the profiler and the tests (kept by self.timing) ------------------
    @property
    def first_frame_at(self) -> float | None:
        return self.timing.first_frame_at

    @property
    def e2e_ms(self) -> deque[float]:
        return self.timing.e2e_ms

    @property
    def e2e_packet_ms(self) -> deque[float]:
        return self.timing.e2e_packet_ms

    @property
    def e2e_offset_ms(self) -> deque[float]:
        return self.timing.e2e_offset_ms

    @property
    def stream_origin(self) -> dict[str, int | None]:
        return self.timing.stream_origin

    @property
    def audio_first_sent_at(self) -> float | None:
        return self.timing.audio_first_sent_at

    @property
    def audio_first_rtp_ts(self) -> int | None:
        return self.timing.audio_first_rtp_ts
