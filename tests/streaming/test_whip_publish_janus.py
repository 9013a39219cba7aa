"""`serve --publish-whip` into a real SFU: Janus's VideoRoom through simple-whip-server (its WHIP frontend),
both on loopback (tests/janus_harness.py). A session's voice is pushed in as PCM; a subscriber reads the
published feed through Janus's own API and sees the mouth move with the speech it hears; the session's
end DELETEs the WHIP resource and the feed leaves the room. Skipped where janus or simple-whip-server is not
installed (scripts/setup.sh installs them)."""
import asyncio
import time

import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamError

from engine.audio.io import read_audio_file
from engine.face_geometry import LIPS_OUTER, pixel_box
from janus_harness import JanusSubscriber, JanusWhip, missing
from server_harness import Server, aligned_r, best_lag, envelope, publish, until
from streaming import whip_publish
from streaming.whip_publish import PUBLISH

pytestmark = pytest.mark.timeout(300)
TOKEN = "sfu-token"


class Received:
    """What the subscriber gets: (arrival, mouth-region pixels) per video frame, (arrival, pcm) per audio frame."""

    def __init__(self, box):
        self.box = box
        self.video: list[tuple[float, np.ndarray]] = []
        self.audio: list[tuple[float, np.ndarray]] = []

    async def read(self, track):
        x0, y0, x1, y1 = self.box
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            t = time.monotonic()
            if track.kind == "video":
                rgb = frame.to_ndarray(format="rgb24")
                self.video.append((t, rgb[y0:y1, x0:x1].astype(np.float32).mean(axis=2)))
            else:
                chans = len(frame.layout.channels)
                self.audio.append((t, frame.to_ndarray().reshape(-1, chans).mean(axis=1).astype(np.float32) / 32768))


def mouth_motion(received: Received) -> tuple[np.ndarray, np.ndarray]:
    """Frame-to-frame change of the mouth region, and the loudness heard around each frame (+-100 ms)."""
    times = np.array([t for t, _ in received.audio])
    rms = np.array([float(np.sqrt(np.mean(p ** 2))) for _, p in received.audio])
    motion, loud = [], []
    for (_, prev), (t, cur) in zip(received.video, received.video[1:]):
        near = rms[(times > t - 0.1) & (times < t + 0.1)]
        motion.append(float(np.abs(cur - prev).mean()))
        loud.append(float(near.max()) if len(near) else 0.0)
    return np.array(motion), np.array(loud)


def test_published_into_janus_videoroom_through_simple_whip_server(parts, speech_wav, default_avatar, tmp_path):  # noqa: F811
    if (why := missing()) is not None:
        pytest.skip(why)
    pcm, rate = read_audio_file(speech_wav)
    s16 = (np.clip(pcm, -1, 1) * 32767).astype("<i2").tobytes()
    lips = np.asarray(default_avatar.landmarks)[list(LIPS_OUTER), :2]
    x0, y0, x1, y1 = pixel_box(lips, default_avatar.image.shape)
    box = (x0 - 10, y0 - 10, x1 + 10, y1 + 30)  # the lips and the chin below them: the jaw opens downwards

    async def scenario():
        async with JanusWhip(tmp_path) as janus:
            url = await janus.endpoint("emolive", token=TOKEN)
            async with Server(parts, publish_whip=url, publish_whip_token=TOKEN) as a:
                publishing = a.app[PUBLISH]
                pc, (status, headers, _), _, _ = await publish(a, video=False)  # the voice comes from /push
                assert status == 201
                sid = headers["Location"].rsplit("/", 1)[1]
                await until(lambda: publishing.live == 1, f"published to janus: {publishing.errors}")
                sub = JanusSubscriber(janus)
                feeds = await sub.publishers()
                assert len(feeds) == 1, feeds
                await sub.subscribe(feeds[0]["id"])
                await until(lambda: len(sub.tracks) == 2, "janus's tracks")
                received = Received(box)
                readers = [asyncio.ensure_future(received.read(t)) for t in sub.tracks.values()]
                await until(lambda: len(received.video) >= 50, "2 s of the silent avatar through janus")
                silent_until = len(received.audio)
                async with a.http.ws_connect(f"{a.url}/push?session={sid}&sample_rate=48000") as ws:
                    for i in range(0, len(s16), 2 * 4800):
                        await ws.send_bytes(s16[i:i + 2 * 4800])
                    await until(lambda: sum(len(p) for _, p in received.audio[silent_until:]) >= len(pcm) + rate,
                                "the utterance through janus", timeout=120)
                async with a.http.delete(f"{a.url}/whip/{sid}") as r:
                    ended = r.status
                loop = asyncio.get_running_loop()
                deadline = loop.time() + 30
                while (left := await sub.publishers()) and loop.time() < deadline:  # janus lets the feed go
                    await asyncio.sleep(0.1)
                for task in readers:
                    task.cancel()
                await sub.close()
                await pc.close()
                return received, silent_until, ended, left, dict(publishing.errors)

    received, silent_until, ended, left, errors = asyncio.run(scenario())
    heard = np.concatenate([p for _, p in received.audio[silent_until:]])
    env, speech_env = envelope(heard, 48_000), envelope(pcm, 48_000)
    r = aligned_r(env, speech_env)  # in order, with the gaps a loaded machine may leave (test_whip_publish.py)
    assert r > 0.8, (r, best_lag(env, speech_env, max_lag=50))  # the voice through janus is the session's
    motion, loud = mouth_motion(received)
    speaking, quiet = motion[loud > 0.05], motion[loud < 0.005]
    assert len(speaking) >= 25 and len(quiet) >= 25, (len(speaking), len(quiet))
    assert speaking.mean() > 3 * quiet.mean(), (speaking.mean(), quiet.mean())  # the mouth moves with the speech
    assert ended == 200 and left == []  # the DELETE took the feed out of the room
    assert errors == {c: 0 for c in whip_publish.CATEGORIES}
