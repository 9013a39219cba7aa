"""The `talkinghead` stream of a session: the voice it plays and the face of the frames rendered for it, in
chunks a 3D client lip-syncs from locally (TalkingHead's `streamAudio({audio, anims})`, three.js).

Audio is the clock. A chunk is the run of timeline samples [a, e) that the session's outbound audio track
sent (read where it leaves, so it is exactly the voice the session plays, silence included); its frames are
the video frames whose time falls in it (frame k shows sample k * samples_per_frame), and each frame's `dt`
is the part of [a, e) it covers, in ms: the durations add up to the chunk's audio, and a client that plays
the audio and steps through the frames by `dt` stays in sync without any clock of its own. A chunk closes
on a chunk boundary of the timeline (CHUNK_FRAMES frames), or early when the audio jumps (a sender that fell
behind skips ahead): the next chunk then starts where the audio resumed.

A frame that was not rendered (skipped as late) repeats the state before it, as the video does. Building a
chunk is a few hundred microseconds on the event loop, done once per chunk for every subscriber; each
connection holds its own bounded backlog (streaming/control.py), so a slow subscriber loses its oldest
chunks and never holds up the session.
"""
from __future__ import annotations

import base64
import logging
import weakref
from typing import Callable

import numpy as np

from engine.types import BLENDSHAPE_NAMES, FaceState

from .protocol import TalkingHeadAnim, TalkingHeadChunk

log = logging.getLogger(__name__)

CHUNK_FRAMES = 5  # video frames per chunk: 200 ms at 25 fps
KEEP_FRAMES = 50  # rendered face states waiting for their chunk's audio (2 s at 25 fps); older ones go

_STREAMS: "weakref.WeakKeyDictionary[object, TalkingHeadStream]" = weakref.WeakKeyDictionary()


def stream_of(runner) -> "TalkingHeadStream":
    """The session's talkinghead stream (made on the first subscriber)."""
    stream = _STREAMS.get(runner)
    if stream is None:
        stream = _STREAMS[runner] = TalkingHeadStream(runner)
    return stream


class TalkingHeadStream:
    """Pairs a session's outbound audio with its rendered face states, chunk by chunk, for its subscribers."""

    def __init__(self, runner) -> None:
        config = runner.scheduler.config
        self.rate = config.sample_rate
        self.spf = config.samples_per_video_frame
        self.chunk_samples = CHUNK_FRAMES * self.spf
        self._runner = runner
        self.subscribers: set[Callable[[dict], None]] = set()
        self._states: dict[int, FaceState] = {}  # frame index -> rendered state, at most KEEP_FRAMES
        self._last: FaceState | None = None  # the state of the last frame put in a chunk
        self._pcm: list[np.ndarray] = []
        self._start: int | None = None  # timeline sample of the first buffered audio sample
        self._end = 0  # one past the last buffered sample
        self.chunks = 0
        self._failed = False

    # -- subscribers ---------------------------------------------------------------
    def add(self, send: Callable[[dict], None]) -> None:
        if not self.subscribers:
            self._runner.frame_listeners.add(self.on_frame)
            self._runner.audio_out.mirrors.append(self.on_audio)
        self.subscribers.add(send)

    def discard(self, send: Callable[[dict], None]) -> None:
        self.subscribers.discard(send)
        if not self.subscribers:
            self._runner.frame_listeners.discard(self.on_frame)
            mirrors = self._runner.audio_out.mirrors
            if self.on_audio in mirrors:
                mirrors.remove(self.on_audio)
            self._states.clear()
            self._pcm, self._start = [], None

    # -- the session's media (event loop) -----------------------------------------
    def on_frame(self, k: int, state: FaceState) -> None:
        """A rendered frame (the render loop)."""
        self._states[k] = state
        while len(self._states) > KEEP_FRAMES:
            del self._states[next(iter(self._states))]

    def on_audio(self, frame) -> None:
        """An outbound audio frame (AudioOutTrack.recv: the voice as it is sent). Never raises: a failure here
        would end the session's audio; it is logged once and the stream goes on with the next chunk."""
        try:
            self._take(int(frame.pts), frame.to_ndarray().reshape(-1))
        except Exception:  # noqa: BLE001 - the media path must not fail for a subscriber's stream
            self._pcm, self._start = [], None
            if not self._failed:
                self._failed = True
                log.exception("session %s: talkinghead chunk failed", self._runner.id[:6])

    def _take(self, pts: int, s16: np.ndarray) -> None:
        if self._start is not None and pts != self._end:  # the audio jumped: close what came before
            self._emit()
        if self._start is None:
            self._start = self._end = pts
        self._pcm.append(np.array(s16, dtype=np.int16))
        self._end += len(s16)
        if self._end % self.chunk_samples == 0 or self._end - self._start >= self.chunk_samples:
            self._emit()

    # -- a chunk ----------------------------------------------------------------------
    def _emit(self) -> None:
        a, e = self._start, self._end
        pcm = np.concatenate(self._pcm) if self._pcm else np.zeros(0, np.int16)
        self._pcm, self._start = [], None
        if e <= a:
            return
        first, last = a // self.spf, (e - 1) // self.spf
        dt, rows = [], []
        for k in range(first, last + 1):
            state = self._states.get(k)
            if state is None:  # not rendered (skipped as late): the state before it, as the video repeats it
                state = self._last if self._last is not None else FaceState.neutral()
            self._last = state
            span = min(e, (k + 1) * self.spf) - max(a, k * self.spf)
            dt.append(round(1000.0 * span / self.rate, 3))
            rows.append(np.asarray(state.coeffs, dtype=np.float64))
        for k in [k for k in self._states if k < e // self.spf]:
            del self._states[k]
        coeffs = np.round(np.clip(np.stack(rows), 0.0, 1.0), 4)
        vs = {name: coeffs[:, i].tolist() for i, name in enumerate(BLENDSHAPE_NAMES)}
        msg = TalkingHeadChunk(sample=a, t=a / self.rate, sample_rate=self.rate, frame=first,
                               audio=base64.b64encode(pcm.astype("<i2").tobytes()).decode("ascii"),
                               anims=[TalkingHeadAnim(dt=dt, vs=vs)]).model_dump()
        self.chunks += 1
        for send in list(self.subscribers):
            send(msg)
