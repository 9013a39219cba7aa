"""The shallow inbound audio buffer: packet order rules, and on a real aiortc loopback call it is the one used."""
import asyncio

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection
from aiortc.mediastreams import AudioStreamTrack
from aiortc.rtp import RtpPacket

from streaming import rtp_tuning
from streaming.rtp_tuning import SLOT, AudioJitterBuffer

pytestmark = pytest.mark.timeout(120)


def pkt(seq):
    p = RtpPacket(sequence_number=seq & 0xFFFF, timestamp=(seq * 960) & 0xFFFFFFFF)
    p._data = bytes([seq & 0xFF])
    return p


def released(buf, seqs):
    out = []
    for s in seqs:
        _, frame = buf.add(pkt(s))
        out.append(None if frame is None else frame.data[0])
    return out


def test_in_order_packets_leave_at_once():
    buf = AudioJitterBuffer()
    assert released(buf, range(65530, 65545)) == [s & 0xFF for s in range(65530, 65545)]  # across the wrap


def test_a_reordered_packet_is_waited_for_then_a_lost_one_given_up():
    buf = AudioJitterBuffer(reorder_packets=2)
    assert released(buf, [10, 12, 11]) == [10, None, 11]  # 11 came late but within the window
    assert released(buf, [13]) == [12]  # one packet out per packet in: 12 waits one packet
    assert released(buf, [15, 16]) == [13, 15]  # 14 never comes: given up, nothing waits for it
    assert buf.stats["lost"] == 1
    assert released(buf, [14]) == [None] and buf.stats["late"] == 1  # too late: dropped
    assert released(buf, [17]) == [16]


def test_a_long_jump_restarts_the_buffer():
    buf = AudioJitterBuffer(capacity=16)
    assert released(buf, [1, 2, 100, 101]) == [1, 2, 100, 101]
    assert released(buf, [5000 - 200 + 100]) == [(4900) & 0xFF] and buf.stats["resets"] == 2


def test_stock_aiortc_holds_four_packets():
    """What the patch replaces: aiortc's audio buffer releases a packet once four later ones are in."""
    from aiortc.jitterbuffer import JitterBuffer

    buf = JitterBuffer(capacity=16, prefetch=4)
    out = [buf.add(pkt(s))[1] for s in range(10)]
    assert [f is not None for f in out] == [False] * 4 + [True] * 6


def test_installed_buffer_is_used_and_audio_flows_on_a_real_call():
    from streaming.loopback import include_loopback_candidates

    include_loopback_candidates()

    async def call():
        a = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        b = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        got = asyncio.get_running_loop().create_future()
        b.on("track", lambda t: got.done() or got.set_result(t))
        a.addTrack(AudioStreamTrack())
        await a.setLocalDescription(await a.createOffer())
        await b.setRemoteDescription(a.localDescription)
        await b.setLocalDescription(await b.createAnswer())
        await a.setRemoteDescription(b.localDescription)
        track = await asyncio.wait_for(got, 20)
        receiver = next(r for r in b.getReceivers() if r.track is track)
        buf = getattr(receiver, SLOT)
        calls = []
        add = buf.add

        def counted(packet):
            result = add(packet)
            calls.append(result[1] is not None)
            return result
        buf.add = counted
        frames = [await asyncio.wait_for(track.recv(), 10) for _ in range(50)]
        await a.close()
        await b.close()
        return buf, calls, frames

    rtp_tuning.install()
    try:
        buf, calls, frames = asyncio.run(call())
    finally:
        rtp_tuning.uninstall()
    assert isinstance(buf, AudioJitterBuffer)
    assert len(frames) == 50 and all(f.samples > 0 for f in frames)
    # every packet that came in left in the same call (no loss on loopback): nothing is held
    assert len(calls) >= 50 and all(calls)
    assert buf.stats["lost"] == 0 and buf.stats["released"] == len(calls)
    assert not rtp_tuning.installed()


def test_uninstalled_receivers_keep_aiortc_buffer():
    from aiortc.jitterbuffer import JitterBuffer

    async def make():
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.addTransceiver("audio", direction="recvonly")
        buf = getattr(pc.getReceivers()[0], SLOT)
        await pc.close()
        return buf

    rtp_tuning.install()
    rtp_tuning.install()  # idempotent
    try:
        assert isinstance(asyncio.run(make()), AudioJitterBuffer)
    finally:
        rtp_tuning.uninstall()
    assert type(asyncio.run(make())) is JitterBuffer
