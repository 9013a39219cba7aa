"""One session's avatar to several viewers: the outbound tracks are read once, each viewer gets a copy.

The session's own tracks pace themselves on the audio timeline (streaming/tracks.py); here one task per
track reads them at that pace, whether or not anyone is watching, so the session's clock runs the same
with no viewer or ten. Each viewer has bounded buffers of its own: the newest video frame (a viewer that
falls behind skips to it) and the last AUDIO_DEPTH audio frames (beyond, the oldest go: a slow viewer
loses a little of its audio, never delays the others). Frames are shared, not copied: each viewer's
encoder reads the same picture.

A browser session (POST /offer) already has a reader: its own peer connection. Its viewers get `mirror()`ed
copies of the frames that connection sends instead, at its pace; the browser's media path is unchanged.
"""
from __future__ import annotations

import asyncio
from collections import deque

from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

AUDIO_DEPTH = 10  # 20 ms frames a viewer may lag behind the session's voice (200 ms)


class ViewerTrack(MediaStreamTrack):
    """A viewer's copy of one outbound track."""

    def __init__(self, kind: str, depth: int) -> None:
        super().__init__()
        self.kind = kind
        self._frames: deque = deque(maxlen=depth)
        self._ready = asyncio.Event()
        self._ended = False

    def put(self, frame) -> None:
        self._frames.append(frame)  # beyond the bound the oldest goes
        self._ready.set()

    def end(self) -> None:
        self._ended = True
        self._ready.set()

    async def recv(self):
        while not self._frames:
            if self._ended or self.readyState != "live":
                raise MediaStreamError
            self._ready.clear()
            await self._ready.wait()
        return self._frames.popleft()


class Fanout:
    """Reads a session's audio and video tracks once; `viewer()` gives a pair of tracks that copy them."""

    def __init__(self, audio: MediaStreamTrack, video: MediaStreamTrack) -> None:
        self._sources = {"audio": audio, "video": video}
        self._viewers: list[dict[str, ViewerTrack]] = []
        self.frames_read = {"audio": 0, "video": 0}

    async def pump(self, kind: str) -> None:
        """Run for the session's lifetime (its runner owns the task): read the track, hand every frame on."""
        source = self._sources[kind]
        try:
            while True:
                try:
                    frame = await source.recv()
                except MediaStreamError:
                    return
                self.deliver(kind, frame)
        finally:
            for v in self._viewers:
                v[kind].end()

    def deliver(self, kind: str, frame) -> None:
        self.frames_read[kind] += 1
        for v in self._viewers:
            v[kind].put(frame)

    def mirror(self) -> None:
        """Copy what the tracks' own reader takes (instead of pump): every frame sent goes to the viewers too."""
        for kind, source in self._sources.items():
            source.mirrors.append(lambda frame, kind=kind: self.deliver(kind, frame))

    def viewer(self) -> dict[str, ViewerTrack]:
        v = {"audio": ViewerTrack("audio", AUDIO_DEPTH), "video": ViewerTrack("video", 1)}
        self._viewers.append(v)
        return v

    def remove(self, viewer: dict[str, ViewerTrack]) -> None:
        if viewer in self._viewers:
            self._viewers.remove(viewer)
        for track in viewer.values():
            track.end()
            track.stop()

    @property
    def viewers(self) -> int:
        return len(self._viewers)
