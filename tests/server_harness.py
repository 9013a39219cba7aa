"""What the server tests share: engine parts with a loudness double, a speech wav, the server in-process
(on this loop or its own thread), an aiortc client, waits on what was sent, received-audio helpers, Chromium."""
import asyncio
import threading

import aiohttp
import numpy as np
from aiohttp import web
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription, VideoStreamTrack
from aiortc.contrib.media import MediaPlayer
from multidict import CIMultiDict

from streaming.config import ServerConfig
from streaming.front import create_front
from streaming.server import SESSIONS, create_app


class Server:
    def __init__(self, parts, source=None, **settings):
        # These tests check behaviour, not latency (benchmarks/ measure that): the
        # serve defaults' tight budgets would drop frames on a loaded machine.
        settings.setdefault("render_budget_s", 0.06)
        settings.setdefault("jitter_s", 0.04)
        self.config = ServerConfig(ice_loopback=True, port=0, **settings)
        self.parts = parts
        self.source = source

    def make_app(self):
        return create_app(self.config, self.parts, self.source)

    async def __aenter__(self):
        self.app = self.make_app()
        self.runner = web.AppRunner(self.app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
        self.http = aiohttp.ClientSession()
        return self

    async def __aexit__(self, *exc):
        await self.http.close()
        await self.runner.cleanup()

    @property
    def sessions(self):
        return self.app[SESSIONS]


async def connect(server, audio_path=None, headers=None):
    """A WebRTC client: sends audio_path (or nothing), receives video + audio. Returns (pc, tracks, answer)."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    tracks = Tracks()
    pc.on("track", tracks.add)
    player = None
    if audio_path is not None:
        player = MediaPlayer(str(audio_path))
        pc.addTrack(player.audio)
    else:
        pc.addTransceiver("audio", direction="recvonly")
    pc.addTransceiver("video", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    async with server.http.post(server.url + "/offer", headers=headers,
                                json={"sdp": pc.localDescription.sdp, "type": "offer"}) as resp:
        answer = await resp.json()
        answer["status"] = resp.status
    if answer["status"] == 200:
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
    return pc, tracks, answer, player


async def until(predicate, what: str, timeout: float = 60.0) -> None:
    """Wait for a condition on state the server or a client keeps (a counter, frames received) that has no
    event of its own: checked every 20 ms; a loaded machine only makes it slower, and the timeout only turns
    a hang into a failure."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"not within {timeout:.0f} s: {what}")
        await asyncio.sleep(0.02)


async def more_frames_sent(counters, n: int = 1, timeout: float = 60.0) -> int:
    """Wait until the server has sent n more video frames than it had now (the media goes on), however
    slowly a loaded machine sends them; the count then."""
    target = counters["frames_sent"] + n
    await until(lambda: counters["frames_sent"] >= target, f"{n} more video frames sent: {counters}", timeout)
    return counters["frames_sent"]


class WhepViewer:
    """A WHEP client: receive-only audio and video, counting what arrives (`frames`, `progress` set at every
    frame), the loudest audio sample, and, with `keep_audio`, the audio as mono float frames."""

    def __init__(self, keep_audio: bool = False):
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.frames = {"audio": 0, "video": 0}
        self.loudest = 0.0
        self.audio: list[np.ndarray] = []
        self.keep_audio = keep_audio
        self.tasks = []
        self.progress = asyncio.Event()
        self.pc.on("track", lambda t: self.tasks.append(asyncio.ensure_future(self._read(t))))

    async def _read(self, track):
        from aiortc.mediastreams import MediaStreamError

        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            self.frames[track.kind] += 1
            self.progress.set()
            if track.kind == "audio":
                pcm = frame.to_ndarray()
                self.loudest = max(self.loudest, float(np.abs(pcm).max()) / 32768)
                if self.keep_audio:
                    chans = len(frame.layout.channels)
                    self.audio.append(pcm.reshape(-1, chans).mean(axis=1).astype(np.float32) / 32768)

    async def play(self, server, sid, headers=None):
        """POST a receive-only offer to /whep/SID (sid None: /whep); `status`, `location` and `links` say how it
        was answered."""
        self.pc.addTransceiver("audio", direction="recvonly")
        self.pc.addTransceiver("video", direction="recvonly")
        await self.pc.setLocalDescription(await self.pc.createOffer())
        path = "/whep" if sid is None else f"/whep/{sid}"
        async with server.http.post(f"{server.url}{path}", data=self.pc.localDescription.sdp,
                                    headers={**SDP, **(headers or {})}) as r:
            self.answer = await r.text()
            self.status, self.location = r.status, r.headers.get("Location")
            self.links = r.headers.getall("Link", [])
        if self.status == 201:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=self.answer, type="answer"))
        return self

    async def close(self):
        await self.pc.close()
        for t in self.tasks:
            t.cancel()



class Tracks(dict):
    """The client's received tracks by kind; `arrived` is set whenever one comes."""

    def __init__(self):
        super().__init__()
        self.arrived = asyncio.Event()

    def add(self, track):
        self[track.kind] = track
        self.arrived.set()


async def tracks_ready(tracks: Tracks, kinds=("video", "audio"), timeout: float = 60.0):
    """Wait for the tracks' arrival (an event, however slowly a loaded machine gets there); the timeout only
    turns a hang into a failure."""
    async def arrived():
        while not all(k in tracks for k in kinds):
            tracks.arrived.clear()
            await tracks.arrived.wait()

    try:
        await asyncio.wait_for(arrived(), timeout)
    except asyncio.TimeoutError:
        raise AssertionError(f"tracks {kinds} never arrived: {list(tracks)}") from None


def received_pcm(frames):
    """Mono float32 of received audio frames (aiortc decodes Opus to interleaved stereo s16)."""
    chans = len(frames[0].layout.channels)
    return np.concatenate([f.to_ndarray().reshape(-1, chans).mean(axis=1) for f in frames]).astype(np.float32) / 32768


def envelope(pcm, rate, fps=25):
    n = rate // fps
    m = len(pcm) // n
    return np.sqrt(np.mean(pcm[:m * n].reshape(m, n).astype(np.float64) ** 2, axis=1))


def best_lag(a, b, max_lag):
    """Lag (in samples of a/b) maximising the correlation of b shifted against a; and that correlation."""
    best = (0, -1.0)
    for lag in range(-max_lag, max_lag + 1):
        x, y = (a[lag:], b[:len(b) - lag]) if lag >= 0 else (a[:lag], b[-lag:])
        n = min(len(x), len(y))
        if n > 10 and np.std(x[:n]) > 0 and np.std(y[:n]) > 0:
            r = float(np.corrcoef(x[:n], y[:n])[0, 1])
            if r > best[1]:
                best = (lag, r)
    return best


def aligned_r(got, sent, max_lag: int = 50, band: int = 5, skew: float = 1.0) -> float:
    """Correlation of two envelopes after a dynamic time warping that may shift any frame of `got` by up to
    `band` frames around their best common lag, keeping their order, each frame of shift costing `skew` (in
    squared standard deviations); -1 when the warped path misses a tenth of the sent frames that carry speech.

    A loaded machine may deliver a voice late in places: the output clock never waits, so a late packet
    leaves a gap and the rest of the utterance shifts. This compares what arrived, in order, with what was
    sent, and tolerates those shifts; another utterance, silence or noise still score low."""
    lag, _ = best_lag(got, sent, max_lag)
    a = np.asarray(got, np.float64)
    b = np.asarray(sent, np.float64)
    za, zb = (a - a.mean()) / (a.std() or 1.0), (b - b.mean()) / (b.std() or 1.0)
    n, m = len(za), len(zb)
    cost = np.full((n + 1, m + 1), np.inf)
    cost[0, :] = 0.0  # either signal may begin with frames the other lacks (silence of other lengths)
    cost[:, 0] = 0.0
    for i in range(1, n + 1):  # got[i - 1] against sent[j - 1], with j - 1 near i - 1 - lag
        for j in range(max(1, i - lag - band), min(m, i - lag + band) + 1):
            d = (za[i - 1] - zb[j - 1]) ** 2
            cost[i, j] = d + min(cost[i - 1, j - 1], cost[i - 1, j] + skew, cost[i, j - 1] + skew)
    ends = [(n, j) for j in range(1, m + 1)] + [(i, m) for i in range(1, n + 1)]
    i, j = min(ends, key=lambda e: cost[e])
    if not np.isfinite(cost[i, j]):
        return -1.0
    pairs = []
    while i > 0 and j > 0:
        pairs.append((i - 1, j - 1))
        steps = {(i - 1, j - 1): cost[i - 1, j - 1], (i - 1, j): cost[i - 1, j] + skew,
                 (i, j - 1): cost[i, j - 1] + skew}
        i, j = min(steps, key=steps.get)
    covered = {q for _, q in pairs}
    speech = np.flatnonzero(b > 0.1 * b.max())
    if np.mean([q in covered for q in speech]) < 0.9:
        return -1.0
    x = a[[p for p, _ in pairs]]
    y = b[[q for _, q in pairs]]
    return float(np.corrcoef(x, y)[0, 1]) if x.std() > 0 and y.std() > 0 else -1.0


class ThreadedServer:
    """The server on its own event loop thread, so that selenium's blocking calls can run here."""

    def __init__(self, parts, **settings):
        self.loop = asyncio.new_event_loop()
        self.app = create_app(ServerConfig(ice_loopback=True, port=0, **settings), parts)
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.runner = web.AppRunner(self.app)
        self.loop.run_until_complete(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/"
        self.ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(self.runner.cleanup())

    def __enter__(self):
        self.thread.start()
        self.ready.wait(30)
        return self

    def __exit__(self, *exc):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)

    def call(self, fn):
        """Run fn() on the server's loop thread and return its result."""
        async def wrap():
            return fn()
        return asyncio.run_coroutine_threadsafe(wrap(), self.loop).result(10)


class ThreadedFront(ThreadedServer):
    """The front with real worker processes (serve --workers N) on its own loop thread, for selenium."""

    def __init__(self, workers=1, **settings):
        self.loop = asyncio.new_event_loop()
        self.app = create_front(ServerConfig(ice_loopback=True, port=0, **settings), workers)
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self.thread.start()
        if not self.ready.wait(150):  # each worker loads the engine and warms up first
            raise AssertionError("the front's workers did not start")
        return self


def chromium(wav=None):
    """Headless Chromium; with `wav`, a fake microphone playing it once (without, no microphone at all)."""
    from profiler.browser import chromium as launch

    return launch(None if wav is None else str(wav), loop=False)


def wait_for(predicate, timeout=30.0, step=0.2):
    from profiler.browser import wait_until

    return wait_until(predicate, timeout, step, lambda: AssertionError("condition not met in time"))


# -- the front with real worker processes (serve --workers N) --
TOKEN = "front-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class Front(Server):
    """The front with real worker processes (each loads the real engine) instead of the in-process app."""

    def __init__(self, workers=2, **settings):
        super().__init__(None, token=TOKEN, **settings)
        self.workers = workers

    def make_app(self):
        return create_front(self.config, self.workers)

    async def get(self, path):
        async with self.http.get(self.url + path) as r:
            return r.status, await r.text()


# -- WHIP --
SDP = {"Content-Type": "application/sdp"}


async def publish(server, audio_path=None, video=True, query="", headers=None):
    """A WHIP client: its voice (and a test pattern, as OBS always sends video). (pc, response, answer text)."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    player = None
    if audio_path is not None:
        player = MediaPlayer(str(audio_path))
        pc.addTransceiver(player.audio, direction="sendonly")
    else:
        pc.addTransceiver("audio", direction="sendonly")
    if video:
        pc.addTransceiver(VideoStreamTrack(), direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    async with server.http.post(server.url + "/whip" + query, data=pc.localDescription.sdp,
                                headers={**SDP, **(headers or {})}) as r:
        text = await r.text()
        resp = (r.status, CIMultiDict(r.headers), r.headers.getall("Link", []))
    if resp[0] == 201:
        await pc.setRemoteDescription(RTCSessionDescription(sdp=text, type="answer"))
    return pc, resp, text, player
