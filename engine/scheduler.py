"""Sans-I/O audio/video scheduler: audio sample positions are the master clock.

One timeline, counted in output audio samples, orders everything in a session:

* Input audio (the presenter's voice) is written into a bounded delay line at a
  write position W; the outbound audio reads it back at a read position R that
  advances by exactly `frame_samples` per audio frame, paced by a monotonic
  clock and never waiting for input (missing input reads as silence).
* W - R is the pipeline latency, counted from the sample playing now (the
  clock's timeline position; R runs up to one audio frame ahead of it). It is
  kept inside [min_latency, latency + max_backlog]: input that arrives after its slot was played (gap, loss,
  start) is placed at R + latency with silence before it, input that would
  overfill the line is dropped. Either way the audio model is told, so the
  model's time and the timeline never disagree.
* Latency is given back (drain): a stall followed by a burst leaves W - R
  above the target for good, since playback never runs faster than real time.
  When the smallest W - R over the last `drain_window_s` of input exceeds the
  target by more than `drain_above_s`, quiet input (a pause: this chunk and
  the `quiet_hold_s` before it below the quiet level) is dropped, whole or
  from its start, with a short crossfade over the splice. Speech is never
  dropped: only chunks whose level is under the quiet threshold, after at
  least quiet_hold_s of quiet, are. The model is fed only what was kept, so
  its time stays the timeline's (as with the other drops).
* The outbound audio never waits for input, and never lags the clock for
  long: a sender more than max_audio_lag_s behind (an overloaded loop) skips
  ahead to the frame playing now, as video skips to the frame due now.
* Video frame k shows timeline sample k * samples_per_frame; its pts is derived
  from that sample position, and it is due when the audio at that position is.
  So lips and voice share one clock and cannot drift apart, whatever the
  wall clock or the input clock do.

No method sleeps or touches the event loop; the streaming shell calls them.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from .clock import Clock, MonotonicClock

VIDEO_CLOCK_RATE = 90_000  # RTP clock of video streams


@dataclass(frozen=True)
class SchedulerConfig:
    sample_rate: int = 48_000
    fps: int = 25
    frame_samples: int = 960  # one outbound audio frame (20 ms at 48 kHz, the Opus frame)
    min_latency_s: float = 0.12  # model look-ahead + render budget: below this video would be late
    jitter_s: float = 0.06  # headroom over the minimum so that late packets do not open gaps
    max_backlog_s: float = 0.30  # input beyond latency + this is dropped (bounded delay line)
    resync_gap_s: float = 1.0  # longer gaps restart the audio model instead of feeding it silence
    render_lead_s: float = 0.04  # a frame is rendered this long before it is due
    # The renderer's typical render time (measured, render_budget_s: auto; 0: unknown). A renderer
    # that fell behind skips to the next frame it can still finish before it is due, rather than
    # to the next one not yet due (which a render slower than the frame interval would miss).
    render_expected_s: float = 0.0
    # Drain: give back latency above the target, in pauses only (see the module docstring).
    drain: bool = True
    drain_above_s: float = 0.005  # tolerated excess over the target latency
    drain_window_s: float = 0.5  # the excess must hold this long (input time): transients are not drained
    quiet_dbfs: float = -40.0  # a chunk is never quiet above this RMS level
    quiet_over_floor_db: float = 12.0  # ... nor more than this above the tracked noise floor
    quiet_hold_s: float = 0.08  # quiet input must have lasted this long before any is dropped
    crossfade_samples: int = 64  # over each splice (1.3 ms at 48 kHz): no click
    # An outbound audio sender further behind the clock than this (an overloaded event loop) skips
    # ahead to it: its voice is lost, but lips and voice stay together and input keeps its place.
    max_audio_lag_s: float = 0.2

    def __post_init__(self) -> None:
        if self.sample_rate % self.fps:
            raise ValueError("sample_rate must be a multiple of fps so frames sit on whole samples")
        if self.min_latency_s < 0 or self.jitter_s < 0 or self.max_backlog_s <= 0:
            raise ValueError("latencies must be non-negative and the backlog positive")
        if self.render_lead_s < 0 or self.render_expected_s < 0:
            raise ValueError("render lead and expected render time must be non-negative")
        if self.drain_above_s < 0 or self.drain_window_s <= 0 or self.quiet_hold_s < 0 or self.crossfade_samples < 0:
            raise ValueError("drain settings must be non-negative (the window positive)")

    @property
    def samples_per_video_frame(self) -> int:
        return self.sample_rate // self.fps

    @property
    def latency_s(self) -> float:
        return self.min_latency_s + self.jitter_s


@dataclass(frozen=True)
class Placement:
    """Where an input chunk went on the timeline."""

    accepted: bool
    position: int  # timeline sample of its first sample
    gap: int = 0  # silence inserted before it; feed the model the same silence
    restart: bool = False  # the model must restart with its time 0 at `position`
    skip: int = 0  # samples dropped from the chunk's start (drain); feed the model only pcm[skip:]
    drained: bool = False  # not accepted because the whole chunk was a pause given back (drain)


class AVScheduler:
    def __init__(self, config: SchedulerConfig | None = None, clock: Clock | None = None) -> None:
        self.clock = clock or MonotonicClock()
        self._configure(config or SchedulerConfig())

    def reconfigure(self, config: SchedulerConfig) -> None:
        """Take new settings (a render budget measured after construction) before anything ran: not once
        started or written to. The rate and frame sizes stay (the session's pipeline counts in them)."""
        if self.started or self.write_pos is not None or self.read_pos:
            raise RuntimeError("the scheduler can be reconfigured only before it starts")
        old = self.config
        if (config.sample_rate, config.fps, config.frame_samples) != (old.sample_rate, old.fps, old.frame_samples):
            raise ValueError("reconfigure cannot change sample_rate, fps or frame_samples")
        self._configure(config)

    def _configure(self, c: SchedulerConfig) -> None:
        self.config = c
        self._rate = c.sample_rate
        self._min_lat = round(c.min_latency_s * self._rate)
        self._lat = round(c.latency_s * self._rate)
        self._max = self._lat + round(c.max_backlog_s * self._rate)
        self._resync = round(c.resync_gap_s * self._rate)
        self._spf = c.samples_per_video_frame
        self._ring = np.zeros(self._max + c.frame_samples, np.float32)
        self._t0: float | None = None
        self.read_pos = 0
        self.write_pos: int | None = None  # None: nothing written since the start
        self.stats = {"input_dropped_samples": 0, "gap_samples": 0, "restarts": 0, "silent_audio_frames": 0,
                      "drained_samples": 0, "audio_skipped_samples": 0}
        # Drain state: pre-write excess over the target (samples) with the input length it held for,
        # the tracked noise floor (dBFS) and how much quiet input came just before.
        self._excess: deque[tuple[int, int]] = deque()
        self._excess_span = 0
        self._window = round(c.drain_window_s * self._rate)
        self._above = round(c.drain_above_s * self._rate)
        self._hold = round(c.quiet_hold_s * self._rate)
        self._max_audio_lag = round(c.max_audio_lag_s * self._rate)
        self._floor_db = -60.0
        self._quiet_run = 0

    # -- clock -------------------------------------------------------------
    @property
    def started(self) -> bool:
        return self._t0 is not None

    def start(self) -> None:
        """Anchor timeline sample 0 at the clock's now; later calls do nothing."""
        if self._t0 is None:
            self._t0 = self.clock.now()

    def wall_time(self, position: int) -> float:
        """When timeline sample `position` is due, on the scheduler's clock."""
        self.start()
        return self._t0 + position / self._rate

    def timeline_now(self) -> int:
        """The timeline sample due now according to the clock."""
        self.start()
        # A thousandth of a sample of tolerance absorbs float rounding of the clock.
        return math.floor((self.clock.now() - self._t0) * self._rate + 1e-3)

    # -- input -------------------------------------------------------------
    def input_room(self) -> int:
        """Samples of input `write` takes now without dropping any (the delay line ends at the sample last
        pulled, so a late audio sender leaves less room). Buffered sources wait for it instead of losing
        input; live ones cannot wait and are dropped beyond it."""
        if self.write_pos is None:
            return self._max
        return max(0, self.read_pos + self._max - self.write_pos)

    def write(self, pcm: np.ndarray) -> Placement:
        """Place one chunk of mono float32 input at the engine rate on the timeline."""
        pcm = np.asarray(pcm, np.float32).reshape(-1)
        n = len(pcm)
        w, r = self.write_pos, self.read_pos
        quiet = self._quiet(pcm)
        if w is not None and w + n > r + self._max:
            self.stats["input_dropped_samples"] += n
            return Placement(False, w)
        gap, restart = 0, False
        ref = self._reference()
        if w is not None and w >= ref + self._min_lat:
            drop = self._drain_amount(w - ref - self._lat, n, quiet)
            if drop:
                self._splice(w, pcm[:drop])
                self.stats["drained_samples"] += drop
                if drop == n:
                    return Placement(False, w, drained=True)
                pcm = pcm[drop:]
                self._store(w, pcm)
                self.write_pos = w + len(pcm)
                return Placement(True, w, skip=drop)
        if w is None or w < ref + self._min_lat:
            self._excess.clear()  # placed at the target: the excess history no longer applies
            self._excess_span = 0
            target = max(ref + self._lat, r)
            if w is None or target - w > self._resync:
                # Start of the model's time: on a video frame boundary, so that
                # model frame k is exactly timeline frame origin/spf + k.
                target = -(-target // self._spf) * self._spf
                restart = True
                self.stats["restarts"] += 1
                w = target
            else:
                gap = target - w
                self._zero(w, target)
                self.stats["gap_samples"] += gap
                w = target
        self._store(w, pcm)
        self.write_pos = w + n
        return Placement(True, w, gap, restart)

    def _reference(self) -> int:
        """The timeline sample playing now, which the latency is counted from: the clock's (the audio
        sender pulls each frame at its start, so R runs up to a frame ahead of it), kept within the frame
        last pulled, [R - frame, R]: a clock that stands still (tests) follows the pulls, and when the
        audio sender is late (R behind the clock) the delay line, which ends at R, stays the bound."""
        r = self.read_pos
        if self._t0 is None:
            return r
        return min(max(self.timeline_now(), r - self.config.frame_samples), r)

    # -- drain -------------------------------------------------------------
    def _quiet(self, pcm: np.ndarray) -> bool:
        """Track the noise floor and the quiet run; True if this chunk ends a long enough pause."""
        n = len(pcm)
        if not n:
            return False
        level = 10.0 * math.log10(float(np.mean(pcm.astype(np.float64) ** 2)) + 1e-10)  # dBFS (-100 for zeros)
        # Minimum tracking: down at once, up slowly (6 dB per second of input), so speech never lifts it far.
        # Not below -70 dBFS: digital silence must not make a later room noise look loud for seconds.
        self._floor_db = max(min(level, self._floor_db + 6.0 * n / self._rate), -70.0)
        c = self.config
        is_quiet = level <= min(c.quiet_dbfs, self._floor_db + c.quiet_over_floor_db)
        held = self._quiet_run >= self._hold
        self._quiet_run = self._quiet_run + n if is_quiet else 0
        return is_quiet and held

    def _drain_amount(self, excess: int, n: int, quiet: bool) -> int:
        """Samples of this chunk to drop (from its start) to give back latency; 0 to keep it whole."""
        if not self.config.drain:
            return 0
        self._excess.append((excess, n))
        self._excess_span += n
        while self._excess_span - self._excess[0][1] >= self._window:
            self._excess_span -= self._excess.popleft()[1]
        if not quiet or self._excess_span < self._window:
            return 0
        lasting = min(e for e, _ in self._excess) - self._above  # what held above the target all window long
        drop = min(n, lasting)
        if drop <= 0:
            return 0
        # The history now reads as if the drop had always been there.
        self._excess = deque((e - drop, m) for e, m in self._excess)
        return drop

    def _splice(self, w: int, dropped: np.ndarray) -> None:
        """Crossfade the written (not yet played) tail into the end of what is dropped, so the next
        sample written continues it without a click."""
        m = min(self.config.crossfade_samples, len(dropped), w - self.read_pos)
        if m <= 0:
            return
        idx = np.arange(w - m, w) % len(self._ring)
        fade = (np.arange(1, m + 1, dtype=np.float32) / (m + 1))
        self._ring[idx] = self._ring[idx] * (1.0 - fade) + dropped[-m:] * fade

    def clear_input(self) -> None:
        """Forget buffered input (interrupt): the next write restarts the model."""
        if self.write_pos is not None:
            self._zero(self.read_pos, max(self.write_pos, self.read_pos))
        self.write_pos = None
        self._excess.clear()
        self._excess_span = 0

    @property
    def buffered_latency_s(self) -> float:
        """How long input written now waits before it is played: the pipeline latency."""
        if self.write_pos is None:
            return self.config.latency_s
        return max(self.write_pos - self.read_pos, 0) / self._rate

    # -- audio out -----------------------------------------------------------
    def audio_deadline(self) -> float:
        """Wall time at which the next outbound audio frame is due."""
        return self.wall_time(self.read_pos)

    def pull_audio(self) -> tuple[np.ndarray, int]:
        """The next outbound audio frame and its pts in samples; never waits for input. A sender that
        fell more than max_audio_lag_s behind the clock skips ahead to it (pts jump, as after a loss)."""
        n = self.config.frame_samples
        r = self.read_pos
        if self._t0 is not None and self.timeline_now() - r > self._max_audio_lag:
            # Skip to the frame playing now (on the frame grid); the voice in between is dropped.
            to = self.timeline_now() // n * n
            self._zero(r, min(to, r + len(self._ring)))
            self.stats["audio_skipped_samples"] += to - r
            r = self.read_pos = to
        out = np.zeros(n, np.float32)
        avail = 0 if self.write_pos is None else min(max(self.write_pos - r, 0), n)
        if avail:
            out[:avail] = self._take(r, avail)
        else:
            self.stats["silent_audio_frames"] += 1
        self._zero(r, r + n)  # played samples must not reappear one ring lap later
        self.read_pos = r + n
        return out, r

    # -- video -------------------------------------------------------------
    def video_position(self, k: int) -> int:
        return k * self._spf

    def video_pts(self, k: int) -> int:
        """pts of video frame k in the 90 kHz video clock, from its audio sample position."""
        return self.video_position(k) * VIDEO_CLOCK_RATE // self._rate

    def video_deadline(self, k: int) -> float:
        return self.wall_time(self.video_position(k))

    def video_index_due(self) -> int:
        """The video frame whose time has come (the one to send now)."""
        return max(self.timeline_now(), 0) // self._spf

    def next_render_index(self, last_rendered: int, expected_s: float | None = None) -> tuple[int, int]:
        """(frame to render next, frames skipped because they could no longer be on time). expected_s: the
        render time seen lately (None: the config's render_expected_s; 0: unknown, skip only frames due)."""
        k = last_rendered + 1
        now = self.clock.now()
        expected = self.config.render_expected_s if expected_s is None else expected_s
        if expected > 0:
            # A frame due sooner than a typical render cannot be on time: the first that still can.
            target = now + expected - 1e-9
            if self.video_deadline(k) >= target:
                return k, 0
            j = max(k, math.ceil((target - self.wall_time(0)) * self._rate / self._spf) - 1)
            while self.video_deadline(j) < target:  # from just below: float rounding
                j += 1
            return j, j - k
        due = self.video_index_due()
        if self.video_deadline(k) < now - 1e-9 and k <= due:
            skipped = due + 1 - k
            return due + 1, skipped
        return k, 0

    def render_start_time(self, k: int) -> float:
        return self.video_deadline(k) - self.config.render_lead_s

    # -- ring buffer -------------------------------------------------------
    def _store(self, pos: int, pcm: np.ndarray) -> None:
        size = len(self._ring)
        i = pos % size
        first = min(len(pcm), size - i)
        self._ring[i:i + first] = pcm[:first]
        self._ring[:len(pcm) - first] = pcm[first:]

    def _take(self, pos: int, n: int) -> np.ndarray:
        idx = (np.arange(pos, pos + n)) % len(self._ring)
        return self._ring[idx]

    def _zero(self, start: int, end: int) -> None:
        if end > start:
            self._ring[np.arange(start, end) % len(self._ring)] = 0.0
