"""EmoliveVideoGenerator: emolive's engine behind LiveKit Agents' avatar seam (VideoGenerator).

AvatarRunner pushes the agent's voice in (push_audio: rtc.AudioFrame, then AudioSegmentEnd after each
segment) and iterates the generator for what to publish: rtc.VideoFrame at the configured size and fps,
interleaved in timeline order with the same voice as rtc.AudioFrame, and AudioSegmentEnd once a segment's
voice is all out; while nobody speaks, idle frames (blinks, sway, the emotion). The runner's AVSynchronizer
paces the output: the generator makes each item when asked, so it runs at most the runner's queue ahead,
and the audio is the clock (timeline.py).

Threads: one worker thread runs the audio model, the face state (idle life, emotion) and the renderer, in
order and off the event loop (the renderer is synchronous and CPU-bound); reading an emotion sentence has a
thread of its own so that frames keep flowing meanwhile.
"""
from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
from livekit import rtc
from livekit.agents.voice.avatar import AudioSegmentEnd, VideoGenerator

from engine.audio.errors import AudioInputError
from engine.emotion import EmotionError
from engine.emotion.controller import DEFAULT_TRANSITION_MS
from engine.emotion.request import read_emotion
from engine.types import FaceState

from .timeline import Timeline
from .voice_intake import VoiceIntake

log = logging.getLogger("emolive.livekit")

# Voice frames waiting for the worker (10-20 ms each from the agent); push_audio waits beyond, which holds
# the rest back in the agent's own output queue.
INPUT_FRAMES = 32
READ_AHEAD_S = 0.5  # voice taken into the timeline ahead of the frames yielded (the model needs ~0.1 s)
_END, _WAKE = object(), object()


class EmoliveVideoGenerator(VideoGenerator):
    """Build it off the event loop (it loads the audio model and the avatar: seconds); see AvatarSession."""

    def __init__(self, parts, *, avatar: str | None = None, emotion: str | None = None, fps: int = 25,
                 sample_rate: int = 24_000) -> None:
        self.fps, self.sample_rate = int(fps), int(sample_rate)
        self._emotion = parts.emotion_factory(emotion)
        self._renderer = parts.renderer_factory(avatar)
        size = self._renderer.size
        self.size = tuple(size) if isinstance(size, tuple) else (int(size), int(size))  # (width, height)
        self._timeline = Timeline(parts.model_factory(), self.sample_rate, self.fps)
        self._intake = VoiceIntake(self.sample_rate)
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="emolive-avatar")
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="emolive-emotion")
        self._queue: asyncio.Queue = asyncio.Queue(INPUT_FRAMES)
        self._epoch = 0  # bumped by clear_buffer: voice from before it is dropped wherever it is
        self._cleared = 0  # the epoch the timeline was last cleared for
        self._next_k = 0  # the first video frame not yet yielded
        self._closed = False
        self.timestamp = 0.0  # timeline time (s) of the item last yielded: video frame k or its voice
        self.stats = {"speech_frames": 0, "idle_frames": 0, "segments": 0, "interruptions": 0, "bad_audio_frames": 0}

    # -- input (AvatarRunner's audio task) ------------------------------------------------------------
    async def push_audio(self, frame: rtc.AudioFrame | AudioSegmentEnd) -> None:
        epoch = self._epoch
        if isinstance(frame, AudioSegmentEnd):
            tail = self._intake.finish()
            if len(tail):
                await self._queue.put((epoch, tail))
            await self._queue.put((epoch, _END))
            return
        try:
            voice = self._intake.take(frame)
        except AudioInputError as e:
            self.stats["bad_audio_frames"] += 1
            log.error("emolive avatar: audio frame dropped: %s", e)
            return
        if len(voice):
            await self._queue.put((epoch, voice))

    def clear_buffer(self) -> None:
        """Stop the speech now: voice queued, held or in the frame being made is dropped; idle frames follow."""
        self._epoch += 1
        self.stats["interruptions"] += 1
        while not self._queue.empty():
            self._queue.get_nowait()
        self._intake.reset()
        self._queue.put_nowait((self._epoch, _WAKE))  # an iterator waiting for voice looks again

    async def set_emotion(self, spec: str, transition_ms: float = DEFAULT_TRANSITION_MS) -> bool:
        """Change the emotion from the next frame made ("happy:0.8", "happy:0.7+surprised:0.3@0.9", or a
        sentence). A spec that names no emotion is logged and leaves the emotion as it was: False."""
        loop = asyncio.get_running_loop()
        try:
            target = await loop.run_in_executor(self._reader, read_emotion, spec)
        except EmotionError as e:
            log.error("emolive avatar: emotion %r not applied, the emotion stays as it was: %s", spec, e)
            return False
        await loop.run_in_executor(self._worker, self._emotion.controller.set, target, None, transition_ms)
        return True

    @property
    def emotion(self) -> dict:
        """The emotion now and its target, as the control websocket's state reports them."""
        return self._emotion.describe()

    # -- output (AvatarRunner's video task) -----------------------------------------------------------
    def __aiter__(self):
        return self._run()

    async def _run(self):
        loop = asyncio.get_running_loop()
        while not self._closed:
            if self._cleared != self._epoch:
                self._cleared = self._epoch
                await loop.run_in_executor(self._worker, self._timeline.clear, self._next_k)
            for _ in range(await self._take(wait=False)):
                yield AudioSegmentEnd()  # a segment without voice: ended as soon as it began
            epoch = self._epoch
            made = await loop.run_in_executor(self._worker, self._make)
            if epoch != self._epoch:
                continue  # cleared while it was made: its voice must not play, its frame is made again
            if made is None:
                for _ in range(await self._take(wait=True)):
                    yield AudioSegmentEnd()
                continue
            step, rgba = made
            self._next_k = step.k + 1
            self.timestamp = self._timeline.position(step.k) / self.sample_rate
            yield rtc.VideoFrame(self.size[0], self.size[1], rtc.VideoBufferType.RGBA, rgba.tobytes())
            if epoch != self._epoch:
                continue
            if step.voice is not None and len(step.voice):
                yield self._audio_frame(step.voice)  # it starts at the video frame's instant
            if step.segment_end and epoch == self._epoch:
                self.stats["segments"] += 1
                yield AudioSegmentEnd()

    async def _take(self, wait: bool) -> int:
        """Move queued voice into the timeline (up to the read-ahead; with `wait`, at least one item);
        returns the number of segment ends that found no segment open."""
        loop = asyncio.get_running_loop()
        bare_ends = 0
        while self._timeline.takes_voice and not self._closed:
            if not wait and (self._queue.empty() or self._timeline.held_samples >= READ_AHEAD_S * self.sample_rate):
                break
            epoch, item = await self._queue.get()
            wait = False
            if epoch != self._epoch or item is _WAKE:
                continue
            if item is _END:
                if not await loop.run_in_executor(self._worker, self._timeline.end_segment):
                    bare_ends += 1
            else:
                await loop.run_in_executor(self._worker, self._timeline.feed, item)
        return bare_ends

    def _make(self):
        """Worker thread: the next step of the timeline, its face and its picture (RGBA); None: needs voice."""
        step = self._timeline.next_step()
        if step is None:
            return None
        t = step.k / self.fps
        if step.speech is None:
            state, vad = FaceState.neutral(t), 0.0
            self.stats["idle_frames"] += 1
        else:
            state, vad = step.speech.state.replace(t=t), float(step.speech.vad)
            self.stats["speech_frames"] += 1
        face = self._emotion.face(state, vad)
        rgb = np.ascontiguousarray(self._renderer.render(face), dtype=np.uint8)
        return step, cv2.cvtColor(rgb, cv2.COLOR_RGB2RGBA)

    def _audio_frame(self, voice: np.ndarray) -> rtc.AudioFrame:
        pcm = np.clip(np.round(voice * 32768.0), -32768, 32767).astype(np.int16)
        return rtc.AudioFrame(pcm.tobytes(), self.sample_rate, 1, len(pcm))

    async def aclose(self) -> None:
        """Stop the output and release the renderer (after the frame in progress, on its own thread)."""
        self._closed = True
        try:
            self._queue.put_nowait((self._epoch, _WAKE))
        except asyncio.QueueFull:
            pass  # a full queue means nobody waits on it
        if hasattr(self._renderer, "close"):
            self._worker.submit(self._renderer.close)
        self._worker.shutdown(wait=False)
        self._reader.shutdown(wait=False)
