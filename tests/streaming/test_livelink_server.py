"""`serve --livelink HOST:PORT`: a session's rendered faces reach a UDP receiver as Live Link Face packets."""
from __future__ import annotations

import asyncio
import socket

import numpy as np
import pytest

from engine.io.livelink import decode_livelink
from streaming.config import ServerConfig, livelink_target
from streaming.livelink_out import subject_for
from streaming.server import build_parser
from server_harness import Server, connect

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


def test_the_flag_and_the_setting():
    assert build_parser().parse_args(["--livelink", "10.0.0.5:11111"]).livelink == "10.0.0.5:11111"
    assert livelink_target("10.0.0.5:7000") == ("10.0.0.5", 7000)
    assert livelink_target("unreal.local") == ("unreal.local", 11111)
    assert livelink_target("[::1]:7000") == ("::1", 7000)
    for bad in ("host:0", "host:99999", "host:port", ":11111", "[::1"):
        with pytest.raises(ValueError):
            ServerConfig(livelink=bad)


def test_a_host_that_does_not_resolve_fails_at_start(parts):  # noqa: F811
    from streaming.server import create_app

    with pytest.raises(ValueError, match="does not resolve"):
        create_app(ServerConfig(livelink="no-such-host.invalid:11111"), parts)


def test_speech_reaches_unreal_as_live_link_packets(parts, speech_wav):  # noqa: F811
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.setblocking(False)
    packets: list[dict] = []

    async def scenario():
        loop = asyncio.get_running_loop()
        target = f"127.0.0.1:{rx.getsockname()[1]}"
        async with Server(parts, audio=str(speech_wav), livelink=target) as server:
            pc, tracks, answer, _ = await connect(server)  # the server plays the file once connected
            assert answer["status"] == 200, answer
            # The 4.8 s file (0.6 s silence, speech, 1 s silence) is over by frame 150 of the timeline;
            # counted in frames received, however slowly a loaded machine renders them.
            while not packets or packets[-1]["frame_number"] - packets[0]["frame_number"] < 150:
                data = await asyncio.wait_for(loop.sock_recv(rx, 2048), 60)
                packets.append(decode_livelink(data))
            async with server.http.get(server.url + "/metrics") as r:
                metrics = await r.text()
            await pc.close()
            return answer["session_id"], metrics

    try:
        sid, metrics = asyncio.run(scenario())
    finally:
        rx.close()
    assert {p["subject"] for p in packets} == {subject_for(sid)} == {f"emolive-{sid[:8]}"}
    assert {(p["device_id"], p["fps"]) for p in packets} == {("emolive", 25)}
    frames = np.array([p["frame_number"] for p in packets])
    assert np.all(np.diff(frames) > 0), "frame numbers go up (UDP on loopback keeps the order)"
    jaw = np.array([p["values"]["jawOpen"] for p in packets])
    assert jaw.max() > 0.2 and np.sum(jaw < 0.05) > 10, (jaw.max(), np.sum(jaw < 0.05))  # speech, and silence
    assert np.std(jaw) > 0.05
    sent = int(next(line.split()[-1] for line in metrics.splitlines()
                    if line.startswith("emolive_livelink_packets_sent_total")))
    assert sent >= len(packets) and "emolive_livelink_packets_dropped_total 0" in metrics
