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
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import cv2
import numpy as np

from engine.clock import Clock, MonotonicClock
from engine.frame_slot import FrameSlot
from engine.profiling import Profiler, current_trace, percentiles, rss_bytes, thread_cpu_s
from engine.render_budget import AUTO, RenderBudget, choose_budget, fixed_budget, time_renders
from engine.scheduler import AVScheduler
from engine.session import Session, scheduler_config_for
from engine.types import BLENDSHAPE_NAMES, FaceState

from .config import ServerConfig
from .encoders import install_tuned_encoder
from .heap import collect_closed_session
from .instruments import PacketArrivals, decode_times, install_decode_timing, instrument_receiver, instrument_sender
from .parts import EngineParts
from .tracks import AudioOutTrack, VideoOutTrack, sleep_until

log = logging.getLogger(__name__)

MAX_FEED_BACKLOG = 25  # chunks (0.5 s of 20 ms packets) queued for the model before input is shed
DEFAULT_RENDER_BUDGET_S = 0.02  # auto mode, until open() has measured the renderer
MAX_IN_FLIGHT = 400  # input chunks (8 s) waiting for the frame that shows them; beyond, the oldest go


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
        # render_budget_s "auto": the scheduler runs with the default budget until open() has measured
        # the renderer and reconfigured it (before start(): nothing is on the timeline yet).
        budget = config.render_budget_s
        self.render_budget = RenderBudget(DEFAULT_RENDER_BUDGET_S, AUTO) if budget == AUTO else fixed_budget(budget)
        self.scheduler = AVScheduler(self._scheduler_config(self.render_budget), clock or MonotonicClock())
        # Stage timers (always on, bounded) and, when a trace ring is running, spans.
        self.profiler = Profiler(f"session {session_id[:6]}", self.scheduler.clock, window=2000,
                                 trace=current_trace())
        self.created_at = self.scheduler.clock.now()  # in the /offer handler, just after the body is read
        self.first_frame_at: float | None = None
        self.emotion = parts.emotion_factory(emotion)  # may raise EmotionError: a bad request
        self.session = Session(self.scheduler, self._timed_model, self.emotion, idle=self.emotion.idle)
        self.slot = FrameSlot(capacity=3)
        self.frame_put = asyncio.Event()  # set at each rendered frame: the sender may wait a little for one
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
        self._encoders: list = []  # tuned video encoders made for this session's sender (closed with it)
        # Measurements (bounded windows) for stats and /metrics.
        self.latency_ms: deque[float] = deque(maxlen=500)
        self.render_ms: deque[float] = deque(maxlen=100)
        self._frame_s: deque[float] = deque(maxlen=25)  # face state + render of the last frames (s)
        self.sent_times: deque[float] = deque(maxlen=200)
        self.counters = {"frames_rendered": 0, "frames_late": 0, "frames_sent": 0, "frames_dropped": 0,
                         "audio_chunks_in": 0, "audio_chunks_shed": 0, "errors": 0}
        self.last_state: FaceState | None = None
        self.failure: str | None = None
        # Server-added latency: input chunks (timeline position, arrival, packet arrival) wait here for
        # the departure of the frame that shows their first sample: the frame whose display interval
        # [k, k + 1) x samples_per_frame contains it (frame k is on screen while those samples play).
        self._in_flight: deque[tuple[int, float, float | None]] = deque(maxlen=MAX_IN_FLIGHT)
        self.e2e_ms: deque[float] = deque(maxlen=2000)
        self.e2e_packet_ms: deque[float] = deque(maxlen=2000)  # the same from the RTP packet's arrival
        # where the sample sits in that frame's interval (ms from its start; negative: its own frame was
        # skipped and a later one shows it): the floor of e2e is look-ahead - this + encode
        self.e2e_offset_ms: deque[float] = deque(maxlen=2000)
        self._inbound: tuple[float, float | None] | None = None  # (recv returned, packet arrived) of the frame
        self._packets = PacketArrivals()
        self._video_recv: tuple[int, int | None, float] | None = None  # (k, shown, t) of the frame being sent
        self._video_encoded: tuple[int, int | None, float] | None = None
        self.send_hooked = False  # departure = packets sent (hooked sender) rather than recv returning
        self.stream_origin: dict[str, int | None] = {"audio": None, "video": None}  # first pts sent
        self.audio_first_sent_at: float | None = None
        self.audio_first_rtp_ts: int | None = None
        self._a2e_ms = 0.0
        self._worker_tid: int | None = None
        self.render_busy_s = 0.0  # render pool time spent on this session (its threads are shared)
        self.mark_frames = config.bench_marks  # bench: stamp each frame's timeline index into its pixels
        self.mark_audio = config.bench_marks  # bench: chirps at known frames (streaming/audio_marks.py)

    # -- lifecycle -----------------------------------------------------------
    async def open(self) -> None:
        """Build the renderer (slow: avatar loading, kernel warm-up) off the loop."""
        loop = asyncio.get_running_loop()
        self.renderer = await loop.run_in_executor(self.worker, self._parts.renderer_factory, self.avatar)
        self._worker_tid = await loop.run_in_executor(self.worker, threading.get_native_id)
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
        self._instrument_peer()
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
        if self.renderer is not None and hasattr(self.renderer, "close"):
            await loop.run_in_executor(self.worker, self.renderer.close)
        await loop.run_in_executor(None, self.worker.shutdown, True)
        self.slot.clear()  # the rendered frames go now, whoever still holds the runner
        self.broadcast({"type": "closed", "reason": reason})
        self.listeners.clear()
        self.face_listeners.clear()
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
        inbound, self._inbound = self._inbound, None
        if inbound is not None:
            self.profiler.add("resample", inbound[0], now, "audio-in")
        self.counters["audio_chunks_in"] += 1
        placed = self.session.place(pcm)
        if placed is None or not placed.accepted:
            return
        sched = self.scheduler
        self.latency_ms.append(1000.0 * (placed.position - sched.timeline_now()) / sched.config.sample_rate)
        self._in_flight.append((placed.position, now, inbound[1] if inbound is not None else None))
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
        self.render_busy_s += t2 - t0
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
            await sleep_until(clock, sched.render_start_time(k))
            start = clock.now()
            state = await loop.run_in_executor(self.worker, self._state_for, k)
            t0 = clock.now()
            yuv = await loop.run_in_executor(self._render_pool, self._draw, state, k)
            done = clock.now()
            self._frame_s.append(done - start)
            self.render_ms.append(1000.0 * (done - t0))
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

    def _expected_frame_s(self) -> float | None:
        """Auto budget: a frame takes (face state + render) what the last ones took in the stream (with the
        other sessions, the encoders and the loop sharing the cores: slower than the probe at open), so a
        renderer behind picks frames it can still finish. Fixed budget: None, the scheduler's own rule."""
        if self.render_budget.mode != AUTO or len(self._frame_s) < 5:
            return None
        return float(np.median(self._frame_s))

    def on_video_sent(self, k: int, shown: int | None) -> None:
        """VideoOutTrack.recv hands frame k (showing rendered frame `shown`, None: blank) to the sender."""
        now = self.scheduler.clock.now()
        self.counters["frames_sent"] += 1
        self.sent_times.append(now)
        if self.send_hooked:
            self._video_recv = (k, shown, now)
        else:
            self._departed(shown, now)  # no sender hook: the frame leaves when recv returns it

    # -- departure and server-added latency -------------------------------------------------
    def _departed(self, shown: int | None, t: float) -> None:
        if self.first_frame_at is None:
            self.first_frame_at = t
        if shown is None:
            return  # a blank frame shows no input
        sched = self.scheduler
        pos = sched.video_position(shown)
        end = pos + sched.config.samples_per_video_frame
        rate = sched.config.sample_rate
        fl = self._in_flight
        while fl and fl[0][0] < end:
            first, arrived, packet = fl.popleft()
            self.e2e_ms.append(1000.0 * (t - arrived))
            self.e2e_offset_ms.append(1000.0 * (first - pos) / rate)
            if packet is not None:
                self.e2e_packet_ms.append(1000.0 * (t - packet))

    def _instrument_peer(self) -> None:
        """Hook aiortc's senders (encode, send) and the inbound audio receiver (packet arrival, decode)."""
        pc, now = self.pc, self.scheduler.clock.now
        if pc is None:
            return
        for sender in pc.getSenders():
            if sender.track is self.video_out:
                if self.config.video_encoder == "tuned":
                    install_tuned_encoder(sender, max_bitrate=self.config.video_max_bitrate, owned=self._encoders)
                self.send_hooked = instrument_sender(sender, self._video_next, self._video_encoded_cb,
                                                     self._encode_span("encode", "video-out"), now)
            elif sender.track is self.audio_out:
                instrument_sender(sender, lambda s=sender: self._audio_next(s), lambda enc: None,
                                  self._encode_span("audio_encode", "audio-out"), now)
        if not isinstance(self.scheduler.clock, MonotonicClock):
            return  # decode times are stamped on time.monotonic
        for receiver in pc.getReceivers():
            track = receiver.track
            if track is None or track.kind != "audio":
                continue
            install_decode_timing()
            instrument_receiver(receiver, self._packets, now)
            recv = track.recv

            async def timed_recv(_recv=recv):
                frame = await _recv()
                self._on_inbound_frame(frame)
                return frame
            track.recv = timed_recv  # whoever consumes the track (the server's input switch) calls this

    def _on_inbound_frame(self, frame) -> None:
        now = self.scheduler.clock.now()
        packet = self._packets.pop(getattr(frame, "pts", None))
        dec = decode_times(frame)
        if dec is not None:
            self.profiler.add("decode", dec[0], dec[1], "audio-decode")
            if packet is not None:
                self.profiler.value("rx_buffer", 1000.0 * (dec[0] - packet))  # aiortc's audio jitter buffer
        # consume_audio resamples and calls on_audio_in in the same loop step as this recv returns; a
        # frame nobody feeds to the session (the server has another input) must not lend its times
        # to that input's chunks, so the mark lives for this step only.
        self._inbound = mark = (now, packet)
        asyncio.get_running_loop().call_soon(self._forget_inbound, mark)

    def _forget_inbound(self, mark) -> None:
        if self._inbound is mark:
            self._inbound = None

    def _encode_span(self, stage: str, lane: str):
        def record(t0: float, t1: float, frame) -> None:
            args = {"pts": frame.pts} if self.profiler.trace is not None else None
            self.profiler.add(stage, t0, t1, lane, args)
        return record

    def _video_next(self) -> None:
        """The video sender asks for its next frame: the previous one's packets are all sent."""
        done, self._video_encoded = self._video_encoded, None
        if done is not None:
            now = self.scheduler.clock.now()
            self.profiler.add("send", done[2], now, "video-out")
            self._departed(done[1], now)

    def _video_encoded_cb(self, encoded) -> None:
        if self._video_recv is not None:
            k, shown, _ = self._video_recv
            self._video_recv = None
            self._video_encoded = (k, shown, self.scheduler.clock.now())
            if self.stream_origin["video"] is None:
                self.stream_origin["video"] = self.scheduler.video_pts(k)

    def _audio_next(self, sender=None) -> None:
        if self.stream_origin["audio"] is None:
            # The first frame the audio sender takes starts at the read position (only it pulls audio).
            self.stream_origin["audio"] = self.scheduler.read_pos
        elif self.audio_first_sent_at is None:
            self.audio_first_sent_at = self.scheduler.clock.now()  # the first audio frame's packets are out
            # ... and the RTP timestamp they carried (aiortc keeps the last one sent): a receiver maps its
            # packets to timeline samples exactly from it
            self.audio_first_rtp_ts = getattr(sender, "_RTCRtpSender__rtp_timestamp", None)

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
        e2e = percentiles(self.e2e_ms) or {}
        cpu = thread_cpu_s(self._worker_tid) if self._worker_tid is not None else None
        rss = rss_bytes()
        return {
            # measured: input chunk at the server -> departure of the first frame showing it
            "e2e_ms_p50": _round(e2e.get(50)), "e2e_ms_p95": _round(e2e.get(95)), "e2e_ms_p99": _round(e2e.get(99)),
            "first_frame_ms": None if self.first_frame_at is None
            else round(1000.0 * (self.first_frame_at - self.created_at), 1),
            "session_cpu_s": None if cpu is None else round(cpu + self.render_busy_s, 3),
            "process_rss_mb": None if rss is None else round(rss / 2**20, 1),
            "stages": {name: {"p50_ms": w["p50_ms"], "p95_ms": w["p95_ms"], "p99_ms": w["p99_ms"]}
                       for name, w in self.profiler.summary().items()},
            "fps": len(recent),
            "latency_ms_p50": _percentile(self.latency_ms, 50),
            "latency_ms_p95": _percentile(self.latency_ms, 95),
            "pipeline_latency_ms": round(1000 * self.scheduler.buffered_latency_s, 1),
            "render_ms_p95": _percentile(self.render_ms, 95),
            # the render lead the scheduler runs with (part of the voice delay) and how it was chosen
            "render_budget_ms": round(1000.0 * self.scheduler.config.render_lead_s, 2),
            "render_budget": self.render_budget.as_stats(),
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


    def reset_measurements(self) -> None:
        """Start the latency windows afresh (after a warm-up); counters go on."""
        self.profiler.reset()
        self.e2e_ms.clear()
        self.e2e_packet_ms.clear()
        self.e2e_offset_ms.clear()
        self.latency_ms.clear()
        self.render_ms.clear()


def _round(v: float | None, nd: int = 1) -> float | None:
    return None if v is None else round(v, nd)


def face_state_event(state: FaceState, k: int) -> dict[str, Any]:
    return {"type": "face_state", "frame": k, "t": state.t,
            "coeffs": {n: round(float(v), 4) for n, v in zip(BLENDSHAPE_NAMES, state.coeffs)},
            "head": [round(float(v), 3) for v in state.head], "gaze": [round(float(v), 3) for v in state.gaze]}
