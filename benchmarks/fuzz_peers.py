"""The fuzz campaign's media peers, run in a child process of benchmarks/bench_fuzz.py (`--peers-child`): the
witness session that sends speech and counts the video it receives, and the target sessions that receive
and count.
"""
from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # imported on its own, not through bench_fuzz.py
    sys.path.insert(0, str(ROOT))

from profiler.environment import BenchError  # noqa: E402


class Target:
    """An aiortc peer that receives a session's video and audio and counts the frames (no decoding)."""

    def __init__(self) -> None:
        self.counts: dict[str, list] = {"video": [], "audio": []}
        self.pc = None
        self.session_id: str | None = None

    async def connect(self, http, url: str) -> None:
        from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
        from light_peers import install_counting_decoders

        self.pc = pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.addTransceiver("audio", direction="recvonly")
        pc.addTransceiver("video", direction="recvonly")
        install_counting_decoders(self.counts)  # receivers take their decoder when the first packet comes
        await pc.setLocalDescription(await pc.createOffer())
        async with http.post(url + "/offer", json={"sdp": pc.localDescription.sdp, "type": "offer"}) as r:
            answer = await r.json()
            if r.status != 200:
                raise BenchError(f"target offer refused: {r.status} {answer}")
        self.session_id = answer["session_id"]
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))

    async def close(self) -> None:
        if self.pc is not None:
            await self.pc.close()


async def _first_video(counts: dict, timeout: float = 60.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if counts["video"]:
            return
        await asyncio.sleep(0.05)
    raise BenchError(f"no video within {timeout:.0f} s")


async def peers_child(args) -> int:
    """The media peers, in their own process (the campaign's work cannot starve them): the witness (sends
    speech, receives) and the targets (receive). Prints WITNESS <id>, TARGET <id>..., READY; runs until
    STOP (or EOF) on stdin; writes their received frames to --out."""
    import aiohttp

    from light_peers import Peer, opus_file
    from profiler.client import say
    from streaming.loopback import include_loopback_candidates

    include_loopback_candidates()
    with tempfile.TemporaryDirectory(prefix="emolive-witness-") as tmp:
        audio = opus_file(args.audio, args.witness_seconds, Path(tmp) / "speech.ogg")
        witness = Peer(0)
        targets = [Target() for _ in range(args.targets)]
        async with aiohttp.ClientSession() as http:
            try:
                await witness.connect(http, args.url, audio)
                await _first_video(witness.counts)
                say(f"WITNESS {witness.session_id}")
                for t in targets:  # one at a time: the counting decoders are taken per process
                    await t.connect(http, args.url)
                    await _first_video(t.counts)
                    say(f"TARGET {t.session_id}")
                say("READY")
                await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)  # STOP, or EOF
            finally:
                await asyncio.gather(witness.close(), *(t.close() for t in targets), return_exceptions=True)
    Path(args.out).write_text(json.dumps({
        "witness": {"session_id": witness.session_id, "video": witness.counts["video"],
                    "audio_frames": len(witness.counts["audio"])},
        "targets": [{"session_id": t.session_id, "video": t.counts["video"], "audio_frames": len(t.counts["audio"])}
                    for t in targets]}), encoding="utf-8")
    say("DONE")
    return 0
