"""AvatarSession: an emolive avatar for a LiveKit agent, rendered in the agent's own process.

The LiveKit plugin shape (`await avatar.start(agent_session, room)` before `agent_session.start`): the
agent's voice goes to a QueueAudioOutput, a local AvatarRunner takes it from there through
EmoliveVideoGenerator and publishes `avatar_video` and `avatar_audio` from the agent's participant through
LiveKit's A/V synchroniser, and reports playback finished (or interrupted) back to the agent as for any
avatar provider. The emotion follows `set_emotion` and the `emolive.emotion` participant attribute.
"""
from __future__ import annotations

import asyncio
import logging

from livekit import rtc
from livekit.agents.voice.avatar import AvatarOptions, AvatarRunner, QueueAudioOutput

from engine.emotion.controller import DEFAULT_TRANSITION_MS

from .emotion_specs import EMOTION_ATTRIBUTE
from .generator import EmoliveVideoGenerator

log = logging.getLogger("emolive.livekit")


class AvatarSession:
    def __init__(self, *, avatar: str | None = None, size: int = 512, fps: int = 25, sample_rate: int = 24_000,
                 emotion: str | None = None, renderer: str = "meshwarp", neural_mouth: bool = False,
                 parts=None) -> None:
        """avatar: a bundle directory or a photo (None: the built-in avatar); size: frame side in pixels;
        sample_rate: the voice's rate between the agent and the avatar (the agent resamples its TTS to it);
        emotion: the initial spec; parts: engine parts (streaming.parts.EngineParts) instead of the real
        engine."""
        self._options = dict(avatar=avatar, emotion=emotion, fps=fps, sample_rate=sample_rate)
        self._build = dict(renderer=renderer, neural_mouth=neural_mouth, size=size, fps=fps)
        self._parts = parts
        self.generator: EmoliveVideoGenerator | None = None
        self.audio_output: QueueAudioOutput | None = None
        self.runner: AvatarRunner | None = None
        self._room: rtc.Room | None = None
        self._tasks: set[asyncio.Task] = set()

    def _make_generator(self) -> EmoliveVideoGenerator:
        parts = self._parts
        if parts is None:
            from streaming.parts import real_parts

            b = self._build
            parts = real_parts(b["renderer"], fps=b["fps"], neural_mouth=b["neural_mouth"], size=b["size"])
        return EmoliveVideoGenerator(parts, **self._options)

    async def start(self, agent_session, room: rtc.Room) -> None:
        """Route the agent's voice to the avatar and publish it in `room` (the agent's room)."""
        # Loading the audio model and the avatar takes seconds: not on the event loop.
        self.generator = await asyncio.get_running_loop().run_in_executor(None, self._make_generator)
        width, height = self.generator.size
        self.audio_output = QueueAudioOutput(sample_rate=self.generator.sample_rate)
        options = AvatarOptions(video_width=width, video_height=height, video_fps=self.generator.fps,
                                audio_sample_rate=self.generator.sample_rate, audio_channels=1)
        self.runner = AvatarRunner(room, audio_recv=self.audio_output, video_gen=self.generator, options=options)
        await self.runner.start()
        agent_session.output.audio = self.audio_output
        self._room = room
        room.on("participant_attributes_changed", self._on_attributes)
        agent_session.on("close", self._on_close)

    async def set_emotion(self, spec: str, transition_ms: float = DEFAULT_TRANSITION_MS) -> bool:
        """See EmoliveVideoGenerator.set_emotion (False, logged, when the spec names no emotion)."""
        if self.generator is None:
            raise RuntimeError("AvatarSession.set_emotion before start()")
        return await self.generator.set_emotion(spec, transition_ms)

    def _on_attributes(self, changed: dict[str, str], participant: rtc.Participant) -> None:
        spec = changed.get(EMOTION_ATTRIBUTE)
        if spec:  # an attribute set to "" was deleted: the emotion stays
            log.info("emolive avatar: %s sets the emotion to %r", participant.identity, spec)
            self._spawn(self.set_emotion(spec))

    def _on_close(self, _event) -> None:
        self._spawn(self.aclose())

    def _spawn(self, coro) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def aclose(self) -> None:
        if self._room is not None:
            self._room.off("participant_attributes_changed", self._on_attributes)
            self._room = None
        if self.runner is not None:
            runner, self.runner = self.runner, None
            await runner.aclose()
        if self.generator is not None:
            await self.generator.aclose()
