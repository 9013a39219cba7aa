"""Live Link Face packets (Unreal MetaHuman): layout, name mapping, round trip and a real UDP loopback."""
from __future__ import annotations

import math
import socket
import struct

import numpy as np
import pytest

from engine.io.livelink import (LIVELINK_BLENDSHAPES, LIVELINK_NAMES, LiveLinkError,
                                decode_livelink, encode_livelink)
from engine.types import BLENDSHAPE_NAMES, FaceState
from streaming.livelink import LiveLinkSender


def _state(**values) -> FaceState:
    return FaceState.from_dict(values)


def test_apple_order_is_a_permutation_of_the_engine_names():
    assert len(LIVELINK_NAMES) == 61
    assert sorted(LIVELINK_BLENDSHAPES) == sorted(BLENDSHAPE_NAMES)
    assert LIVELINK_BLENDSHAPES[:1] == ("eyeBlinkLeft",) and LIVELINK_BLENDSHAPES[17] == "jawOpen"
    assert LIVELINK_BLENDSHAPES[-1] == "tongueOut"


def test_bytes_follow_the_version_6_layout():
    packet = encode_livelink(_state(jawOpen=0.7, headYaw=10.0), subject="iPhone",
                             device_id="5904AA4B-AD9D-43E5-98AB-89AAEB8AB277", frame_number=671705, fps=60)
    # Same header as a captured iPhone packet: version 6, 36-byte device id, 6-byte subject,
    # frame 671705, fps 60/1, 61 values; 1 + 4 + 36 + 4 + 6 + 16 + 1 + 61 * 4 = 312 bytes.
    assert len(packet) == 312
    assert packet[:5] == bytes.fromhex("0600000024")
    assert packet[5:41] == b"5904AA4B-AD9D-43E5-98AB-89AAEB8AB277"
    assert packet[41:51] == bytes.fromhex("00000006") + b"iPhone"
    assert packet[51:55] == bytes.fromhex("000a3fd9")  # frame number, big-endian
    assert packet[55:59] == struct.pack(">f", 0.0)  # sub-frame
    assert packet[59:68] == bytes.fromhex("0000003c" "00000001" "3d")  # 60/1 fps, 61 values
    values = struct.unpack(">61f", packet[68:])
    assert values[17] == pytest.approx(0.7)  # jawOpen at Apple's index 17
    assert values[52] == pytest.approx(math.radians(10.0))  # head yaw, radians


def test_only_jaw_open_decodes_at_apples_index_and_nothing_else():
    decoded = decode_livelink(encode_livelink(_state(jawOpen=0.7), frame_number=3))
    floats = list(decoded["values"].values())
    nonzero = [i for i, v in enumerate(floats) if v != 0.0]
    assert nonzero == [LIVELINK_NAMES.index("jawOpen")] == [17]
    assert floats[17] == pytest.approx(0.7)
    assert decoded["state"]["jawOpen"] == pytest.approx(0.7)


def test_round_trip_of_a_full_state():
    rng = np.random.default_rng(7)
    coeffs = rng.uniform(0, 1, len(BLENDSHAPE_NAMES))
    state = FaceState(coeffs=coeffs, head=(5.0, -12.0, 3.5), gaze=(8.0, -4.0))
    d = decode_livelink(encode_livelink(state, subject="avatar", device_id="dev-1", frame_number=42, fps=30))
    assert (d["version"], d["subject"], d["device_id"]) == (6, "avatar", "dev-1")
    assert (d["frame_number"], d["sub_frame"], d["fps"], d["fps_denominator"]) == (42, 0.0, 30, 1)
    for name in BLENDSHAPE_NAMES:
        assert d["values"][name] == pytest.approx(state[name], abs=1e-6)
    v = d["values"]
    assert (v["headYaw"], v["headPitch"], v["headRoll"]) == pytest.approx(
        tuple(math.radians(a) for a in (-12.0, 5.0, 3.5)), abs=1e-6)
    for eye in ("leftEye", "rightEye"):
        assert (v[eye + "Yaw"], v[eye + "Pitch"], v[eye + "Roll"]) == pytest.approx(
            (math.radians(8.0), math.radians(-4.0), 0.0), abs=1e-6)
    back = d["state"]
    np.testing.assert_allclose(back.coeffs, state.coeffs, atol=1e-6)
    np.testing.assert_allclose(back.head, state.head, atol=1e-4)
    np.testing.assert_allclose(back.gaze, state.gaze, atol=1e-4)


@pytest.mark.parametrize("data", [b"", b"\x05" + bytes(400), b"\x06\x00\x00\x10\x00abc",
                                  encode_livelink(FaceState())[:-4], encode_livelink(FaceState()) + b"\0"])
def test_malformed_packets_are_refused(data):
    with pytest.raises(LiveLinkError):
        decode_livelink(data)


@pytest.mark.parametrize("host,port", [("127.0.0.1", 0), ("127.0.0.1", 70000), ("127.0.0.1", "11111"),
                                       ("", 11111), ("no such host.invalid", 11111), ("0.0.0.0", 11111)])
def test_bad_host_or_port_is_a_value_error(host, port):
    with pytest.raises(ValueError):
        LiveLinkSender(host, port)


def test_udp_loopback_delivers_three_frames():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx:
        rx.bind(("127.0.0.1", 0))
        rx.settimeout(5.0)  # the failure bound; a datagram normally arrives at once
        states = [_state(jawOpen=0.1 * (i + 1), mouthSmileLeft=0.2 * i, headYaw=3.0 * i, gazePitch=-2.0 * i)
                  for i in range(3)]
        with LiveLinkSender("127.0.0.1", rx.getsockname()[1], subject="metahuman") as sender:
            assert sender._sock.getblocking() is False
            for i, s in enumerate(states):
                assert sender.send(s, frame_number=100 + i)
            got = [decode_livelink(rx.recvfrom(2048)[0]) for _ in states]
        assert sender.closed and sender.sent == 3 and sender.dropped == 0
    assert [g["frame_number"] for g in got] == [100, 101, 102]
    for g, s in zip(got, states):
        assert g["subject"] == "metahuman" and g["fps"] == 25
        assert g["values"]["jawOpen"] == pytest.approx(s["jawOpen"])
        assert g["values"]["mouthSmileLeft"] == pytest.approx(s["mouthSmileLeft"])
        assert g["values"]["headYaw"] == pytest.approx(math.radians(s["headYaw"]))
        assert g["state"]["gazePitch"] == pytest.approx(s["gazePitch"], abs=1e-4)
    with pytest.raises(ValueError):
        sender.send(states[0], 0)
