"""One streaming session's latency measurement: what it costs in time and where, for stats and /metrics.

Server-added latency (e2e): each input chunk placed on the timeline waits here
for the departure of the frame that shows its first sample. Departure is the
moment the frame's packets are sent when aiortc's video sender could be
hooked, else the moment the video track hands the frame over. The hooks on
the peer connection (streaming/instruments.py) also time the codec calls, the
send and the inbound audio path (packet arrival, jitter buffer, decode,
resample) into the session's profiler, and note where each outbound stream
starts on the timeline. Bounded windows only; the session runner owns one and
feeds it (streaming/runner.py).
"""
from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

import numpy as np

from engine.clock import MonotonicClock
from engine.frame_slot import FrameSlot
from engine.profiling import Profiler, percentiles, rss_bytes, thread_cpu_s
from engine.render_budget import RenderBudget
from engine.scheduler import AVScheduler

from .instruments import PacketArrivals, decode_times, install_decode_timing, instrument_receiver, instrument_sender

MAX_IN_FLIGHT = 400  # input chunks (8 s) waiting for the frame that shows them; beyond, the oldest go


def _percentile(values, q: float) -> float | None:
    return float(np.percentile(np.fromiter(values, float), q)) if values else None


def _round(v: float | None, nd: int = 1) -> float | None:
    return None if v is None else round(v, nd)


class SessionTiming:
    """A session's measurement windows, frame departures and peer timing hooks.

    The runner reports to it: chunks placed (`take_inbound`, `input_placed`),
    frames rendered (`render_ms`, `render_busy_s`) and handed to the sender
    (`frame_sent`); `instrument` hooks the peer connection once it is set up.
    """

    def __init__(self, scheduler: AVScheduler, profiler: Profiler, slot: FrameSlot) -> None:
        self.scheduler = scheduler
        self.profiler = profiler
        self.slot = slot
        self.created_at = scheduler.clock.now()  # in the /offer handler, just after the body is read
        self.first_frame_at: float | None = None
        # Measurements (bounded windows) for stats and /metrics.
        self.latency_ms: deque[float] = deque(maxlen=500)
        self.render_ms: deque[float] = deque(maxlen=100)
        self.sent_times: deque[float] = deque(maxlen=200)
        # Server-added latency: input chunks (timeline position, arrival, packet arrival) wait here for
        # the departure of the frame that shows their first sample: the frame whose display interval
        # [k, k + 1) x samples_per_frame contains it (frame k is on screen while those samples play).
        self.in_flight: deque[tuple[int, float, float | None]] = deque(maxlen=MAX_IN_FLIGHT)
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
        self.worker_tid: int | None = None  # the session worker's native thread id (its CPU time)
        self.render_busy_s = 0.0  # render pool time spent on this session (its threads are shared)

    # -- input -----------------------------------------------------------------
    def take_inbound(self, now: float) -> tuple[float, float | None] | None:
        """The (recv returned, packet arrived) marks of the inbound frame being fed now, if it came
        through the hooked track (its resampling is timed up to `now`); None otherwise."""
        inbound, self._inbound = self._inbound, None
        if inbound is not None:
            self.profiler.add("resample", inbound[0], now, "audio-in")
        return inbound

    def input_placed(self, position: int, now: float, inbound: tuple[float, float | None] | None) -> None:
        """An input chunk that arrived at `now` was placed at timeline `position`: it waits for its frame."""
        sched = self.scheduler
        self.latency_ms.append(1000.0 * (position - sched.timeline_now()) / sched.config.sample_rate)
        self.in_flight.append((position, now, inbound[1] if inbound is not None else None))

    # -- departure and server-added latency -------------------------------------------------
    def frame_sent(self, k: int, shown: int | None) -> None:
        """The video track handed frame k (showing rendered frame `shown`, None: blank) to the sender."""
        now = self.scheduler.clock.now()
        self.sent_times.append(now)
        if self.send_hooked:
            self._video_recv = (k, shown, now)
        else:
            self._departed(shown, now)  # no sender hook: the frame leaves when recv returns it

    def _departed(self, shown: int | None, t: float) -> None:
        if self.first_frame_at is None:
            self.first_frame_at = t
        if shown is None:
            return  # a blank frame shows no input
        sched = self.scheduler
        pos = sched.video_position(shown)
        end = pos + sched.config.samples_per_video_frame
        rate = sched.config.sample_rate
        fl = self.in_flight
        while fl and fl[0][0] < end:
            first, arrived, packet = fl.popleft()
            self.e2e_ms.append(1000.0 * (t - arrived))
            self.e2e_offset_ms.append(1000.0 * (first - pos) / rate)
            if packet is not None:
                self.e2e_packet_ms.append(1000.0 * (t - packet))

    # -- hooks on the peer connection -------------------------------------------------------
    def instrument(self, pc, video_out, audio_out) -> None:
        """Hook aiortc's senders (encode, send) and the inbound audio receiver (packet arrival, decode)."""
        now = self.scheduler.clock.now
        for sender in pc.getSenders():
            if sender.track is video_out:
                self.send_hooked = instrument_sender(sender, self._video_next, self._video_encoded_cb,
                                                     self._encode_span("encode", "video-out"), now)
            elif sender.track is audio_out:
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

    # -- reports -------------------------------------------------------------
    def stats(self, render_budget: RenderBudget) -> dict[str, Any]:
        """The measured figures of the session's stats (the runner adds its counters after them)."""
        now = self.scheduler.clock.now()
        recent = [t for t in self.sent_times if now - t <= 1.0]
        lag = self.slot.lag_frames
        fps = self.scheduler.config.fps
        e2e = percentiles(self.e2e_ms) or {}
        cpu = thread_cpu_s(self.worker_tid) if self.worker_tid is not None else None
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
            "render_budget": render_budget.as_stats(),
            "av_offset_ms": round(1000.0 * float(np.mean(lag)) / fps, 1) if lag else 0.0,
            "frames_repeated": self.slot.repeats,
        }

    def reset(self) -> None:
        """Start the latency windows afresh (after a warm-up); counters go on."""
        self.profiler.reset()
        self.e2e_ms.clear()
        self.e2e_packet_ms.clear()
        self.e2e_offset_ms.clear()
        self.latency_ms.clear()
        self.render_ms.clear()
