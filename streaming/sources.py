"""Server-side voice inputs: a file played as the presenter (--audio), the local microphone (--mic),
and the paced feeder that puts buffered PCM on a session's timeline at real-time pace.

A file or a TTS can deliver audio much faster than real time, so it is
buffered and fed by `feed_paced`, which counts the samples it has fed and
sleeps until the session's audio timeline reaches them: the pace is the
outbound audio clock itself (no accumulated sleep error, no drift from the
voice that goes out). The microphone is paced by its own hardware clock and is
fed as it arrives, like WebRTC packets.
"""
from __future__ import annotations

import asyncio
import logging
from collections import deque
from pathlib import Path
from typing import Callable, Protocol

import av
import numpy as np

from engine.audio.errors import AudioInputError
from engine.audio.io import read_audio_file

from .tracks import sleep_until

log = logging.getLogger(__name__)

CHUNK_SAMPLES = 960  # 20 ms at 48 kHz: fed like one WebRTC audio packet
MAX_FILE_SECONDS = 1800.0  # --audio files are decoded whole into memory (30 min = 346 MB at 48 kHz)


class InputUnavailable(RuntimeError):
    """A configured input cannot be used; the message is one line for the operator."""


def resample(pcm: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Whole-signal resampling of mono float32 (FFmpeg's resampler, as for WebRTC input)."""
    if rate == target or not len(pcm):
        return np.asarray(pcm, np.float32)
    return StreamResampler(rate, target).push(pcm, final=True)


class StreamResampler:
    """Chunk-by-chunk mono float32 resampling that keeps its filter state across chunks."""

    def __init__(self, rate: int, target: int) -> None:
        self.rate, self.target = int(rate), int(target)
        self._r = av.AudioResampler(format="flt", layout="mono", rate=self.target) if rate != target else None
        self._pts = 0

    def push(self, pcm: np.ndarray, final: bool = False) -> np.ndarray:
        pcm = np.ascontiguousarray(pcm, np.float32).reshape(-1)
        if self._r is None:
            return pcm
        outs = []
        if len(pcm):
            frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="flt", layout="mono")
            frame.sample_rate = self.rate
            frame.pts = self._pts
            self._pts += len(pcm)
            outs += self._r.resample(frame)
        if final:
            outs += self._r.resample(None)
        if not outs:
            return np.zeros(0, np.float32)
        return np.concatenate([o.to_ndarray().reshape(-1) for o in outs]).astype(np.float32)


class PcmBuffer:
    """A bounded FIFO of float32 samples: a push is taken whole or refused whole."""

    def __init__(self, max_samples: int) -> None:
        self.max_samples = int(max_samples)
        self._parts: deque[np.ndarray] = deque()
        self._head = 0  # samples already taken from _parts[0]
        self._size = 0

    def __len__(self) -> int:
        return self._size

    @property
    def free(self) -> int:
        return self.max_samples - self._size

    def push(self, pcm: np.ndarray) -> bool:
        if len(pcm) > self.free:
            return False
        if len(pcm):
            self._parts.append(np.asarray(pcm, np.float32))
            self._size += len(pcm)
        return True

    def take(self, n: int) -> np.ndarray:
        """Up to n samples (fewer when fewer are buffered)."""
        out = []
        need = min(n, self._size)
        while need:
            head = self._parts[0]
            piece = head[self._head:self._head + need]
            out.append(piece)
            self._head += len(piece)
            need -= len(piece)
            self._size -= len(piece)
            if self._head == len(head):
                self._parts.popleft()
                self._head = 0
        return np.concatenate(out) if out else np.zeros(0, np.float32)

    def clear(self) -> int:
        dropped = self._size
        self._parts.clear()
        self._head = self._size = 0
        return dropped


class PacedSource(Protocol):
    def take(self, n: int) -> np.ndarray | None:
        """Up to n samples now; empty: nothing yet (pacing restarts when data comes); None: finished."""

    async def wait(self) -> bool:
        """Until data is available (True) or the source is finished (False)."""


async def feed_paced(scheduler, source: PacedSource, on_pcm: Callable[[np.ndarray], None],
                     chunk: int = CHUNK_SAMPLES) -> None:
    """Feed `source` to on_pcm at the pace of the scheduler's audio timeline.

    The n-th fed sample is handed over when the timeline reaches origin + n, so
    the voice reaches the delay line exactly as fast as it is played out; an
    underrun (a TTS between sentences) restarts the count when data returns.
    """
    origin: int | None = None
    fed = 0
    while True:
        if origin is None:
            if not await source.wait():
                return
            origin, fed = scheduler.timeline_now(), 0
        else:
            await sleep_until(scheduler.clock, scheduler.wall_time(origin + fed))
        # An overloaded loop pulls the outbound audio late, so the delay line has not moved on: hold
        # the input back (it is buffered, nothing is lost) rather than write past the line's end,
        # where it would be dropped. The count of fed samples keeps the pace once it has room.
        while scheduler.input_room() < chunk:
            await asyncio.sleep(chunk / scheduler.config.sample_rate)
        pcm = source.take(chunk)
        if pcm is None:
            return
        if not len(pcm):
            origin = None
            continue
        on_pcm(pcm)
        fed += len(pcm)


class FilePlayback:
    """One session's playback of a decoded file (shared, read-only samples), once or looping."""

    def __init__(self, pcm: np.ndarray, loop: bool) -> None:
        self._pcm, self._loop, self._pos = pcm, loop, 0
        self.loops = 0

    def take(self, n: int) -> np.ndarray | None:
        if self._pos >= len(self._pcm):
            if not self._loop or not len(self._pcm):
                return None
            self._pos = 0
            self.loops += 1
        out = self._pcm[self._pos:self._pos + n]
        self._pos += len(out)
        return out

    async def wait(self) -> bool:
        return bool(len(self._pcm)) and (self._loop or self._pos < len(self._pcm))


def load_audio_input(path: str | Path, sample_rate: int) -> np.ndarray:
    """Decode --audio FILE to mono float32 at the engine rate; InputUnavailable with a clear message."""
    try:
        pcm, rate = read_audio_file(path, max_seconds=MAX_FILE_SECONDS)
    except AudioInputError as e:
        raise InputUnavailable(f"--audio: {e}") from None
    if len(pcm) < rate // 50:
        raise InputUnavailable(f"--audio: {path} holds less than 20 ms of audio")
    if len(pcm) >= int(MAX_FILE_SECONDS * rate):
        log.warning("--audio: %s is longer than %.0f s; only the start is played", path, MAX_FILE_SECONDS)
    return resample(pcm, rate, sample_rate)


class Microphone:
    """The local microphone (PortAudio via sounddevice), fanned out to every session.

    The PortAudio callback thread only appends blocks to a bounded deque (the
    oldest block goes first when the loop falls behind, counted in `dropped`);
    the loop task drains it, resamples to the engine rate and hands the PCM to
    each subscriber, as inbound WebRTC audio is handed over.
    """

    def __init__(self, sample_rate: int, device: int | str | None = None, block_s: float = 0.02,
                 max_blocks: int = 50, stream_factory: Callable[..., object] | None = None,
                 device_rate: int | None = None) -> None:
        self.sample_rate = sample_rate
        self.device = device
        self.block_s = block_s
        self._blocks: deque[np.ndarray] = deque(maxlen=max_blocks)
        self._factory = stream_factory  # sounddevice.InputStream unless injected (tests)
        self._factory_rate = device_rate or sample_rate  # the injected stream's rate
        self._stream = None
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.subscribers: set[Callable[[np.ndarray], None]] = set()
        self.dropped = 0
        self.blocks_in = 0
        self.status_flags = 0  # PortAudio over/underflow reports

    def open(self) -> int:
        """Check the device and open the stream (not started); InputUnavailable if there is no input."""
        if self._stream is not None:
            return self.device_rate
        factory, rate = self._factory, self._factory_rate
        if factory is None:
            factory, rate = _sounddevice_stream(self.device)
        self.device_rate = int(rate)
        self._resampler = StreamResampler(self.device_rate, self.sample_rate)
        try:
            self._stream = factory(samplerate=self.device_rate, channels=1, dtype="float32",
                                   blocksize=int(self.device_rate * self.block_s), device=self.device,
                                   callback=self._callback)
        except Exception as e:  # PortAudioError, ValueError for a bad device: the operator's to fix
            raise InputUnavailable(f"--mic: cannot open the input device {self.device!r}: {e}") from None
        return self.device_rate

    def _callback(self, indata, frames, time_info, status) -> None:  # PortAudio's thread
        if status:
            self.status_flags += 1
        if len(self._blocks) == self._blocks.maxlen:
            self.dropped += 1
        self._blocks.append(np.array(indata[:, 0] if np.ndim(indata) == 2 else indata, np.float32))
        self.blocks_in += 1
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            try:
                loop.call_soon_threadsafe(wake.set)
            except RuntimeError:  # the loop closed under us (shutdown)
                pass

    async def run(self) -> None:
        """Start capturing and distribute blocks until cancelled."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._stream.start()
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while self._blocks:
                    pcm = self._resampler.push(self._blocks.popleft())
                    if not len(pcm):
                        continue
                    for sink in list(self.subscribers):
                        sink(pcm)
        finally:
            self.close()

    def close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.stop()
            stream.close()


def _sounddevice_stream(device):
    """sounddevice's InputStream and the device's default rate; InputUnavailable when there is no input."""
    try:
        import sounddevice as sd
    except OSError as e:  # libportaudio2 missing
        raise InputUnavailable(f"--mic: PortAudio is not available ({e}); install libportaudio2") from None
    try:
        info = sd.query_devices(device, kind="input")
    except (sd.PortAudioError, ValueError) as e:
        raise InputUnavailable(f"--mic: no audio input device{'' if device is None else f' {device!r}'} "
                               f"({e}); list them with: python -m sounddevice") from None
    if int(info.get("max_input_channels", 0)) < 1:
        raise InputUnavailable(f"--mic: device {info.get('name', device)!r} has no input channels")
    return sd.InputStream, info["default_samplerate"]


class ServerInput:
    """Where sessions get the presenter's voice: the browser (WebRTC), a file, or the local microphone."""

    kind = "browser"

    def attach(self, runner) -> Callable[[], None] | None:
        """Start feeding a new session; returns a detach callback (or None)."""
        return None

    async def start(self) -> None:
        """Server start-up (inside the loop)."""

    async def stop(self) -> None:
        """Server shutdown."""


class FileInput(ServerInput):
    """--audio FILE [--loop]: every session hears the file from its start, paced on its own timeline."""

    kind = "file"

    def __init__(self, pcm: np.ndarray, loop: bool, name: str = "") -> None:
        self.pcm, self.loop, self.name = pcm, loop, name
        self.pcm.flags.writeable = False  # shared by all sessions

    def attach(self, runner):
        runner.spawn(feed_paced(runner.scheduler, FilePlayback(self.pcm, self.loop), runner.on_audio_in),
                     "audio-file")
        return None


class MicInput(ServerInput):
    """--mic: one capture stream, fanned out to every session."""

    kind = "mic"

    def __init__(self, mic: Microphone) -> None:
        self.mic = mic
        self._task: asyncio.Task | None = None

    def attach(self, runner):
        sink = runner.on_audio_in
        self.mic.subscribers.add(sink)
        return lambda: self.mic.subscribers.discard(sink)

    async def start(self) -> None:
        self.mic.open()
        self._task = asyncio.get_running_loop().create_task(self.mic.run(), name="emolive-mic")
        self._task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("microphone capture stopped", exc_info=task.exception())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self.mic.close()
