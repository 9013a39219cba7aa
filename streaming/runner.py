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
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import cv2
import numpy as np

from engine.clock import Clock, MonotonicClock
from engine.scheduler import AVScheduler, FrameSlot
from engine.session import Session, scheduler_config_for
from engine.types import BLENDSHAPE_NAMES, FaceState

from .config import ServerConfig
from .parts import EngineParts
from .tracks import AudioOutTrack, VideoOutTrack, consume_audio, sleep_until

log = logging.getLogger(__name__)

MAX_FEED_BACKLOG = 25  # chunks (0.5 s of 20 ms packets) queued for the model before input is shed


def _percentile(values, q: float) -> float | None:
    return float(np.percentile(np.fromiter(values, float), q)) if values else None


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
        cfg = scheduler_config_for(parts.model_latency_s, render_budget_s=config.render_budget_s,
                                   jitter_s=config.jitter_s, sample_rate=config.sample_rate, fps=config.fps)
        self.scheduler = AVScheduler(cfg, clock or MonotonicClock())
        self.emotion = parts.emotion_factory(emotion)  # may raise EmotionError: a bad request
        self.session = Session(self.scheduler, parts.model_factory, self.emotion, idle=self.emotion.idle)
        self.slot = FrameSlot(capacity=3)
        self.worker = ThreadPoolExecutor(1, thread_name_prefix=f"emolive-session-{session_id[:6]}")
        self.renderer = None
        self.blank_frame: np.ndarray | None = None
        self.audio_out = AudioOutTrack(self)
        self.video_out = VideoOutTrack(self)
        self.pc = None
        self.tasks: set[asyncio.Task] = set()
        self.listeners: set[Callable[[dict], None]] = set()  # control connections' event sinks
        self.face_listeners: set[Callable[[dict], None]] = set()
        self.closed = asyncio.Event()
        self._closing = False
        self._closer: asyncio.Task | None = None  # owns a close started from a callback
        self._feed_backlog = 0
        # Measurements (bounded windows) for stats and /metrics.
        self.latency_ms: deque[float] = deque(maxlen=500)
        self.render_ms: deque[float] = deque(maxlen=100)
        self.sent_times: deque[float] = deque(maxlen=200)
        self.counters = {"frames_rendered": 0, "frames_sent": 0, "frames_dropped": 0, "audio_chunks_in": 0,
                         "audio_chunks_shed": 0, "errors": 0}
        self.last_state: FaceState | None = None
        self.failure: str | None = None

    # -- lifecycle -----------------------------------------------------------
    async def open(self) -> None:
        """Build the renderer (slow: avatar loading, kernel warm-up) off the loop."""
        loop = asyncio.get_running_loop()
        self.renderer = await loop.run_in_executor(self.worker, self._parts.renderer_factory, self.avatar)
        h, w = self.renderer.size
        self.blank_frame = self._draw(FaceState.neutral())  # also warms the render path before the first frame

    def start(self) -> None:
        self.scheduler.start()
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
        loop = asyncio.get_running_loop()
        if self.renderer is not None and hasattr(self.renderer, "close"):
            await loop.run_in_executor(self.worker, self.renderer.close)
        await loop.run_in_executor(None, self.worker.shutdown, True)
        self.broadcast({"type": "closed", "reason": reason})
        self.listeners.clear()
        self.face_listeners.clear()
        self.closed.set()
        if self._on_closed is not None:
            self._on_closed(self)
        log.info("session %s closed: %s", self.id[:6], reason)

    def attach_inbound_audio(self, track) -> None:
        self.spawn(consume_audio(track, self.on_audio_in, self.config.sample_rate), "audio-in")

    # -- pipeline --------------------------------------------------------------
    def on_audio_in(self, pcm: np.ndarray) -> None:
        """Inbound PCM (loop thread): onto the timeline now, to the model on the session worker."""
        if self._closing:
            return
        self.counters["audio_chunks_in"] += 1
        placed = self.session.place(pcm)
        if placed is None or not placed.accepted:
            return
        sched = self.scheduler
        self.latency_ms.append(1000.0 * (placed.position - sched.timeline_now()) / sched.config.sample_rate)
        if self._feed_backlog >= MAX_FEED_BACKLOG:
            # The model cannot keep up: shed this chunk (its voice still plays) and
            # restart the model on the next one, so its time stays on the timeline.
            self.counters["audio_chunks_shed"] += 1
            self._submit(self.session.forget_speech)
            return
        self._submit(self.session.feed, placed, pcm)

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

    async def run_in_session(self, fn, *args):
        """Run a pipeline call on the session worker (ordered with the model and the face states)."""
        return await asyncio.get_running_loop().run_in_executor(self.worker, fn, *args)

    def _draw(self, state: FaceState) -> np.ndarray:
        rgb = self.renderer.render(state)
        return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2YUV_I420)

    async def _render_loop(self) -> None:
        loop = asyncio.get_running_loop()
        sched = self.scheduler
        clock = sched.clock
        k = sched.video_index_due() - 1
        while True:
            k, skipped = sched.next_render_index(k)
            self.counters["frames_dropped"] += skipped
            await sleep_until(clock, sched.render_start_time(k))
            state = await loop.run_in_executor(self.worker, self.session.state_for, k)
            t0 = clock.now()
            yuv = await loop.run_in_executor(self._render_pool, self._draw, state)
            self.render_ms.append(1000.0 * (clock.now() - t0))
            self.counters["frames_rendered"] += 1
            if not self.slot.put(k, yuv):
                self.counters["frames_dropped"] += 1
            self.last_state = state
            if self.face_listeners:
                msg = face_state_event(state, k)
                for send in list(self.face_listeners):
                    send(msg)

    def on_video_sent(self, k: int, shown: int | None) -> None:
        self.counters["frames_sent"] += 1
        self.sent_times.append(self.scheduler.clock.now())

    async def _stats_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.stats_interval_s)
            if self.listeners:
                self.broadcast({"type": "stats", **self.stats()})

    def broadcast(self, msg: dict) -> None:
        for send in list(self.listeners):
            send(msg)

    # -- reports -------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        now = self.scheduler.clock.now()
        recent = [t for t in self.sent_times if now - t <= 1.0]
        lag = self.slot.lag_frames
        fps = self.scheduler.config.fps
        return {
            "fps": len(recent),
            "latency_ms_p50": _percentile(self.latency_ms, 50),
            "latency_ms_p95": _percentile(self.latency_ms, 95),
            "pipeline_latency_ms": round(1000 * self.scheduler.buffered_latency_s, 1),
            "render_ms_p95": _percentile(self.render_ms, 95),
            "av_offset_ms": round(1000.0 * float(np.mean(lag)) / fps, 1) if lag else 0.0,
            "frames_repeated": self.slot.repeats,
            "vad": self.session.vad,
            **self.counters,
            **self.session.stats,
            **self.scheduler.stats,
        }

    def state(self) -> dict[str, Any]:
        return {"session_id": self.id, "t": self.scheduler.read_pos / self.scheduler.config.sample_rate,
                "speaking": self.session.vad > 0.5, "emotion": self.emotion.describe(),
                "connection": getattr(self.pc, "connectionState", None)}


def face_state_event(state: FaceState, k: int) -> dict[str, Any]:
    return {"type": "face_state", "frame": k, "t": state.t,
            "coeffs": {n: round(float(v), 4) for n, v in zip(BLENDSHAPE_NAMES, state.coeffs)},
            "head": [round(float(v), 3) for v in state.head], "gaze": [round(float(v), 3) for v in state.gaze]}
