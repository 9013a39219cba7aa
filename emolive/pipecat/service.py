"""EmoliveVideoService: a Pipecat frame processor that turns the TTS voice into emolive avatar video.

Put it right after the TTS. It takes the TTSAudioRawFrames of each TTSStartedFrame .. TTSStoppedFrame
segment, runs emolive's audio model, emotion layer and renderer on them, and sends downstream, in one
ordered stream, the same audio frames interleaved with OutputImageRawFrames (RGB, the configured size,
one per 1 / fps of voice). The images carry `sync_with_audio`, so the output transport shows each one
once the voice before it has played: the audio is the clock, and a frame's pts comes from its sample
position on the service's timeline. Between segments it sends idle frames (blinks, sway) at the frame
rate. An interruption drops the segment at once; EmoliveEmotionFrame sets the emotion, and so do the
expressive tags in the text frames that pass it (`<<cheerful>>`, `[[laugh]]`, `[excited]`,
`<emotion value="sad"/>`: tags.py), from the next video frame it renders.
"""
from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

from loguru import logger
from pipecat.frames.frames import (CancelFrame, EndFrame, Frame, InterruptionFrame, OutputImageRawFrame,
                                   StartFrame, TextFrame, TTSAudioRawFrame, TTSStartedFrame, TTSStoppedFrame)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from engine.emotion import EmotionError

from .avatar_engine import AvatarEngine
from engine.emotion.request import is_sentence, read_emotion
from .frames import EmoliveEmotionFrame
from .segment import SpeechSegment
from .tags import TAGS, tag_names, target_of

NS = 1_000_000_000


class EmoliveVideoService(FrameProcessor):
    def __init__(self, *, avatar: str | None = None, size: int = 512, fps: int = 25, emotion: str | None = None,
                 renderer: str = "meshwarp", neural_mouth: bool = False, idle_frames: bool = True,
                 engine: AvatarEngine | None = None, expressive_tags: bool = True,
                 tag_transition_ms: float = 250.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self._options = dict(avatar=avatar, size=size, fps=fps, emotion=emotion, renderer=renderer,
                             neural_mouth=neural_mouth)
        self._fps = fps
        self._engine = engine
        self._owns_engine = engine is None  # an engine passed in stays its owner's to close
        self._idle_frames = idle_frames
        self._expressive_tags = expressive_tags  # read emotions from tags in passing text frames
        self._tag_transition_ms = tag_transition_ms
        # One thread renders: the renderer is synchronous and not thread-safe, and the loop must not wait.
        self._render_thread = ThreadPoolExecutor(1, thread_name_prefix="emolive-render")
        self._segment: SpeechSegment | None = None
        self._origin = 0  # timeline frame of the current segment's frame 0
        self._next_k = 0  # next timeline video frame
        self._playing_until = 0.0  # wall time at which the voice sent so far has played out (estimate)
        self._last_image: OutputImageRawFrame | None = None
        self._voice_sent = False
        self._emit = asyncio.Lock()  # speech and idle frames leave in timeline order
        self._idle_task: asyncio.Task | None = None
        self.stats = {"speech_frames": 0, "idle_frames": 0, "repeated_frames": 0, "interruptions": 0, "tags": 0}

    # -- pipeline ------------------------------------------------------------
    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, StartFrame):
            await self._start()
            await self.push_frame(frame, direction)
        elif isinstance(frame, (EndFrame, CancelFrame)):
            if isinstance(frame, EndFrame):
                await self._end_segment()  # an EndFrame lets the last words finish
            await self._stop()
            await self.push_frame(frame, direction)
        elif isinstance(frame, InterruptionFrame):
            self._interrupt()
            await self.push_frame(frame, direction)
        elif isinstance(frame, EmoliveEmotionFrame):
            await self._set_emotion(frame.spec, frame.transition_ms)
        elif direction is FrameDirection.DOWNSTREAM and isinstance(frame, TTSStartedFrame):
            await self._end_segment()  # a start without a stop: the previous segment ends here
            await self.push_frame(frame, direction)
        elif direction is FrameDirection.DOWNSTREAM and isinstance(frame, TTSAudioRawFrame):
            await self._speak(frame)
        elif direction is FrameDirection.DOWNSTREAM and isinstance(frame, TTSStoppedFrame):
            await self._end_segment()
            await self.push_frame(frame, direction)
        elif self._expressive_tags and direction is FrameDirection.DOWNSTREAM and isinstance(frame, TextFrame):
            self._read_tags(frame)
            await self.push_frame(frame, direction)
        else:
            await self.push_frame(frame, direction)

    async def _start(self) -> None:
        if self._engine is None:
            self._engine = await asyncio.to_thread(AvatarEngine.build, **self._options)
        if self._idle_frames and self._idle_task is None:
            self._idle_task = self.create_task(self._idle_loop())

    async def _stop(self) -> None:
        if self._idle_task is not None:
            await self.cancel_task(self._idle_task)
            self._idle_task = None

    async def cleanup(self) -> None:
        await super().cleanup()
        await self._stop()
        if self._engine is not None and self._owns_engine:
            engine, self._engine = self._engine, None
            await asyncio.get_running_loop().run_in_executor(self._render_thread, engine.close)
        self._render_thread.shutdown(wait=False)

    # -- speech --------------------------------------------------------------
    async def _speak(self, frame: TTSAudioRawFrame) -> None:
        if self._engine is None:
            await self.push_frame(frame)  # not started: nothing to render with
            return
        async with self._emit:
            if self._segment is None:
                self._segment = SpeechSegment(self._engine.model, self._fps)
                self._origin = self._next_k
                self._voice_sent = False  # until some plays, no frame of the segment can be late
            steps = self._segment.push(frame.audio, frame.sample_rate, frame.num_channels, frame)
            await self._run(steps)

    async def _end_segment(self) -> None:
        if self._segment is None:
            return
        async with self._emit:
            segment, self._segment = self._segment, None
            await self._run(segment.finish())

    def _interrupt(self) -> None:
        """Speech stops now: the voice held for the model's look-ahead and the segment's frames go, and
        the transport (which sees the same interruption) drops what it had queued."""
        if self._segment is not None:
            self.stats["interruptions"] += 1
        self._segment = None
        self._playing_until = time.monotonic()

    async def _run(self, steps: list[tuple]) -> None:
        for step in steps:
            if step[0] == "audio":
                audio = step[1]
                now = time.monotonic()
                self._playing_until = max(self._playing_until, now) + audio.num_frames / audio.sample_rate
                self._voice_sent = True
                await self.push_frame(audio)
            else:
                _, k, speech = step
                await self._video(self._origin + k, speech)

    async def _video(self, k: int, speech) -> None:
        """Render frame k, unless the voice before it has already played out (the renderer fell behind
        the transport): then the newest image stands in for it, so the voice never waits for video."""
        self._next_k = k + 1
        behind = speech is not None and self._voice_sent and self._last_image is not None \
            and self._playing_until <= time.monotonic()
        if behind:
            self.stats["repeated_frames"] += 1
            image = self._last_image.image
        else:
            state = self._engine.face(k, speech)
            rgb = await asyncio.get_running_loop().run_in_executor(self._render_thread, self._engine.render, state)
            image = rgb.tobytes()
        self.stats["speech_frames" if speech is not None else "idle_frames"] += 1
        out = OutputImageRawFrame(image=image, size=self._engine.size, format="RGB")
        out.sync_with_audio = True
        out.pts = k * NS // self._fps  # sample position k * rate / fps, in nanoseconds
        out.metadata["emolive"] = {"frame": k, "speech": speech is not None}
        self._last_image = out
        await self.push_frame(out)

    # -- idle ----------------------------------------------------------------
    async def _idle_loop(self) -> None:
        """Idle life while silent, paced by the wall clock (no voice to pace it), and only once the
        voice already sent has played out, so idle frames never queue up behind the speech."""
        period = 1.0 / self._fps
        due = time.monotonic()
        while True:
            now = time.monotonic()
            if self._segment is not None or now < self._playing_until:
                due = max(self._playing_until, now + period)
                await asyncio.sleep(due - now)
                continue
            if now < due:
                await asyncio.sleep(due - now)
                continue
            async with self._emit:
                if self._segment is None:
                    await self._video(self._next_k, None)
            due = max(due + period, time.monotonic() - period)  # late ticks are dropped, not bunched

    # -- emotion -------------------------------------------------------------
    async def _set_emotion(self, spec: str, transition_ms: float) -> None:
        """A bad spec is logged and the current emotion stays. Sentences may load the sentence encoder
        (seconds, once per process): read off the loop, in a task, so the voice does not wait for it."""
        if is_sentence(spec):
            self.create_task(self._apply_sentence(spec, transition_ms))
            return
        try:
            target = read_emotion(spec)
        except EmotionError as e:
            logger.error(f"{self}: emotion {spec!r} ignored, the current emotion stays: {e}")
            return
        self._apply(target, transition_ms)

    async def _apply_sentence(self, spec: str, transition_ms: float) -> None:
        try:
            target = await asyncio.to_thread(read_emotion, spec)
        except EmotionError as e:
            logger.error(f"{self}: emotion {spec!r} ignored, the current emotion stays: {e}")
            return
        self._apply(target, transition_ms)

    def _read_tags(self, frame: TextFrame) -> None:
        """The frame's expressive tags, in order: names of TAGS apply now; other names go to the prompt
        reader off the loop (it may load the sentence encoder), and apply when read."""
        text = getattr(frame, "raw_text", None) or frame.text or ""  # raw_text: a pattern match's whole text
        for name, open_vocabulary in tag_names(text):
            if name in TAGS:
                self._apply_tag(target_of(name, False))
            elif open_vocabulary:
                self.create_task(self._read_tag(name))

    async def _read_tag(self, name: str) -> None:
        target = await asyncio.to_thread(target_of, name, True)
        if target is None:
            logger.debug(f"{self}: tag {name!r} names no emotion; ignored")
            return
        self._apply_tag(target)

    def _apply_tag(self, target) -> None:
        self.stats["tags"] += 1
        self._apply(target, self._tag_transition_ms)

    def _apply(self, target, transition_ms: float) -> None:
        if self._engine is not None:  # frames reach a processor only once it has started
            self._engine.emotion.controller.set(target, transition_ms=transition_ms)

    @property
    def emotion(self) -> dict:
        """The current and target emotion, as the control websocket's `state` reports them."""
        return self._engine.emotion.describe() if self._engine is not None else {}
