"""Janus (the SFU, Debian's `janus`) with simple-whip-server (its WHIP frontend) on loopback, for interop tests.

The configuration is written into a temporary folder, the ports are chosen free, and both processes belong
to the `JanusWhip` context and are ended by it. A subscriber reads a VideoRoom publisher through Janus's own
HTTP API (create a session, attach the VideoRoom plugin, join as a subscriber, answer Janus's offer with
aiortc). `missing()` says why the test cannot run here (the test skips then); scripts/setup.sh installs both.
"""
from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import socket
import subprocess
from pathlib import Path

import aiohttp
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

ROOT = Path(__file__).resolve().parents[1]
WHIP_SERVER = ROOT / "build" / "simple-whip-server"  # src/ from Debian's package, node_modules/ from npm
JANUS_LIBS = Path("/usr/lib/x86_64-linux-gnu/janus")
ROOM = 1234


def missing() -> str | None:
    if shutil.which("janus") is None or not (JANUS_LIBS / "plugins" / "libjanus_videoroom.so").exists():
        return "janus is not installed (scripts/setup.sh installs it)"
    if shutil.which("node") is None:
        return "node is not installed"
    if not (WHIP_SERVER / "src" / "server.js").exists() or not (WHIP_SERVER / "node_modules" / "express").exists():
        return f"simple-whip-server is not in {WHIP_SERVER} (scripts/setup.sh puts it there)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _janus_configs(folder: Path, http_port: int, ws_port: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "janus.jcfg").write_text(f"""
general: {{
    configs_folder = "{folder}"
    plugins_folder = "{JANUS_LIBS / 'plugins'}"
    transports_folder = "{JANUS_LIBS / 'transports'}"
    events_folder = "{JANUS_LIBS / 'events'}"
    loggers_folder = "{JANUS_LIBS / 'loggers'}"
    debug_level = 4
    session_timeout = 0  # the test's subscriber sends no keepalives
    admin_secret = "{secrets.token_hex(8)}"
    protected_folders = []
}}
certificates: {{}}
media: {{}}
nat: {{
    ice_ignore_list = "vmnet"
}}
plugins: {{
    disable = "libjanus_audiobridge.so,libjanus_duktape.so,libjanus_echotest.so,libjanus_lua.so,libjanus_nosip.so,libjanus_recordplay.so,libjanus_sip.so,libjanus_streaming.so,libjanus_textroom.so,libjanus_videocall.so,libjanus_voicemail.so"
}}
transports: {{
    disable = "libjanus_mqtt.so,libjanus_nanomsg.so,libjanus_pfunix.so,libjanus_rabbitmq.so"
}}
loggers: {{
    disable = "libjanus_jsonlog.so"
}}
events: {{
    broadcast = false
}}
""")
    (folder / "janus.transport.http.jcfg").write_text(f"""
general: {{
    json = "compact"
    base_path = "/janus"
    http = true
    port = {http_port}
    ip = "127.0.0.1"
    https = false
}}
admin: {{
    admin_http = false
}}
cors: {{}}
""")
    (folder / "janus.transport.websockets.jcfg").write_text(f"""
general: {{
    json = "compact"
    ws = true
    ws_port = {ws_port}
    ws_ip = "127.0.0.1"
    wss = false
}}
admin: {{
    admin_ws = false
}}
""")
    (folder / "janus.plugin.videoroom.jcfg").write_text(f"""
general: {{}}
room-{ROOM}: {{
    description = "emolive"
    publishers = 4
    bitrate = 1000000
    audiocodec = "opus"
    videocodec = "vp8,h264"
}}
""")


def _whip_config(src: Path, ws_port: int, whip_port: int) -> None:
    (src / "config.js").write_text(f"""module.exports = {{
    janus: {{ address: 'ws://127.0.0.1:{ws_port}' }},
    port: {whip_port},
    rest: '/whip',
    allowTrickle: true,
    strictETags: false,
    iceServers: []
}};
""")


class JanusWhip:
    """Janus + simple-whip-server, owned by this context; `endpoint(id, token)` creates a WHIP endpoint."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.http_port, self.ws_port, self.whip_port = free_port(), free_port(), free_port()
        self.janus_url = f"http://127.0.0.1:{self.http_port}/janus"
        self.whip_url = f"http://127.0.0.1:{self.whip_port}/whip"
        self.procs: list[subprocess.Popen] = []
        self.logs: list[Path] = []

    def _start(self, name: str, argv: list[str], cwd: Path, env=None) -> None:
        log = self.folder / f"{name}.log"
        self.logs.append(log)
        with open(log, "wb") as out:
            self.procs.append(subprocess.Popen(argv, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=env))

    def log_tail(self, n: int = 3000) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-n:]}" for p in self.logs if p.exists())

    async def _until_answers(self, http, url: str, what: str, timeout: float = 60.0) -> None:
        """Wait for a process to answer HTTP (it exits: fail at once, with its log)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for p in self.procs:
                if p.poll() is not None:
                    raise AssertionError(f"{what}: a process exited ({p.args[0]}: {p.returncode})\n{self.log_tail()}")
            try:
                async with http.get(url) as r:
                    if r.status < 500:
                        return
            except (aiohttp.ClientError, OSError):
                pass
            if loop.time() > deadline:
                raise AssertionError(f"{what} did not start in {timeout:.0f} s\n{self.log_tail()}")
            await asyncio.sleep(0.1)

    async def __aenter__(self) -> "JanusWhip":
        conf = self.folder / "janus"
        _janus_configs(conf, self.http_port, self.ws_port)
        self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        try:
            self._start("janus", ["janus", "-F", str(conf), "-C", str(conf / "janus.jcfg"), "-o"], self.folder)
            await self._until_answers(self.http, self.janus_url + "/info", "janus")
            src = self.folder / "simple-whip-server"
            shutil.copytree(WHIP_SERVER / "src", src, ignore=shutil.ignore_patterns("config.js"))  # written below
            _whip_config(src, self.ws_port, self.whip_port)
            env = {**os.environ, "NODE_PATH": str(WHIP_SERVER / "node_modules")}
            self._start("simple-whip-server", ["node", "server.js"], src, env)
            await self._until_answers(self.http, self.whip_url + "/healthcheck", "simple-whip-server")
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def __aexit__(self, *exc) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
        for p in reversed(self.procs):
            try:
                await asyncio.get_running_loop().run_in_executor(None, p.wait, 10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        await self.http.close()

    async def endpoint(self, eid: str, token: str | None = None) -> str:
        """A WHIP endpoint publishing into the room; its URL."""
        body = {"id": eid, "room": ROOM, **({"token": token} if token else {})}
        async with self.http.post(self.whip_url + "/create", json=body) as r:
            assert r.status == 200, await r.text()
        return f"{self.whip_url}/endpoint/{eid}"


class JanusSubscriber:
    """A VideoRoom subscriber through Janus's HTTP API, answered by aiortc; `tracks` by kind once they arrive."""

    def __init__(self, janus: JanusWhip) -> None:
        self.janus = janus
        self.http = janus.http
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.tracks: dict = {}
        self.arrived = asyncio.Event()
        self.pc.on("track", self._on_track)
        self.session = self.handle = None

    def _on_track(self, track) -> None:
        self.tracks[track.kind] = track
        self.arrived.set()

    async def _post(self, path: str, body: dict) -> dict:
        async with self.http.post(self.janus.janus_url + path, json={**body, "transaction": secrets.token_hex(6)}) as r:
            return await r.json(content_type=None)

    async def _event(self, timeout: float = 30.0) -> dict:
        """The next asynchronous event of this session (long poll; keeps the session alive too)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            async with self.http.get(f"{self.janus.janus_url}/{self.session}?maxev=1") as r:
                msg = await r.json(content_type=None)
            if msg.get("janus") != "keepalive":
                return msg
        raise AssertionError("no event from janus")

    async def publishers(self) -> list[dict]:
        if self.session is None:
            self.session = (await self._post("", {"janus": "create"}))["data"]["id"]
            self.handle = (await self._post(f"/{self.session}", {"janus": "attach",
                                                                 "plugin": "janus.plugin.videoroom"}))["data"]["id"]
        msg = await self._post(f"/{self.session}/{self.handle}",
                               {"janus": "message", "body": {"request": "listparticipants", "room": ROOM}})
        return [p for p in msg["plugindata"]["data"]["participants"] if p.get("publisher")]

    async def subscribe(self, feed: int) -> None:
        ack = await self._post(f"/{self.session}/{self.handle}", {"janus": "message", "body": {
            "request": "join", "ptype": "subscriber", "room": ROOM, "streams": [{"feed": feed}]}})
        assert ack.get("janus") == "ack", ack
        while True:
            event = await self._event()
            if "jsep" in event:
                break
            assert event.get("janus") != "error", event
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=event["jsep"]["sdp"], type="offer"))
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        ack = await self._post(f"/{self.session}/{self.handle}", {
            "janus": "message", "body": {"request": "start", "room": ROOM},
            "jsep": {"type": "answer", "sdp": self.pc.localDescription.sdp}})
        assert ack.get("janus") in ("ack", "success"), ack

    async def close(self) -> None:
        await self.pc.close()
        if self.session is not None:
            try:
                await self._post(f"/{self.session}", {"janus": "destroy"})
            except (aiohttp.ClientError, OSError):
                pass
