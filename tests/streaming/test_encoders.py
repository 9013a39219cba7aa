"""The tuned video encoders: bitrate policy, decodable output, installed on a real aiortc sender."""
import asyncio

import av
import numpy as np
import pytest
from aiortc import RTCPeerConnection, RTCRtpCodecParameters, VideoStreamTrack
from aiortc.codecs import get_decoder
from aiortc.jitterbuffer import JitterFrame

from streaming.encoders import (MAX_BITRATE, MIN_BITRATE, RISE_INTERVAL_S, BitratePolicy, TunedH264Encoder,
                                TunedVp8Encoder, install_tuned_encoder)

VP8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)
H264 = RTCRtpCodecParameters(mimeType="video/H264", clockRate=90000, payloadType=102,
                             parameters={"packetization-mode": "1", "level-asymmetry-allowed": "1",
                                         "profile-level-id": "42001f"})


class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_bitrate_falls_at_once_and_rises_in_spaced_steps():
    clock = FakeClock()
    p = BitratePolicy(now=clock, start=500_000)
    assert p.offer(480_000) == 500_000  # within 10 %: no rebuild
    assert p.offer(300_000) == 300_000  # congestion: follow at once
    assert p.offer(360_000) == 300_000  # +20 %: too small a step
    assert p.offer(900_000) == 300_000  # too soon after the last change
    clock.t += RISE_INTERVAL_S
    assert p.offer(900_000) == 900_000
    clock.t += RISE_INTERVAL_S
    assert p.offer(5_000_000) == MAX_BITRATE  # capped
    assert p.offer(1) == MIN_BITRATE



def _video_frame(yuv, i):
    import fractions
    f = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
    f.pts = i * 3600
    f.time_base = fractions.Fraction(1, 90000)
    return f


@pytest.mark.parametrize("make,codec,depayload", [
    (TunedVp8Encoder, VP8, "vp8"), (TunedH264Encoder, H264, "h264")])
def test_tuned_encoder_output_decodes_to_the_picture(make, codec, depayload):
    from aiortc.codecs.h264 import h264_depayload
    from aiortc.codecs.vpx import vp8_depayload
    unpack = vp8_depayload if depayload == "vp8" else h264_depayload
    enc, dec = make(), get_decoder(codec)
    rng = np.random.default_rng(0)
    y0 = rng.integers(40, 200, (256, 256)).astype(np.uint8)
    y0 = np.repeat(np.repeat(y0[::16, ::16], 16, 0), 16, 1)  # blocks: compressible, still a picture
    errors = []
    for i in range(10):
        y = np.roll(y0, 2 * i, axis=1)
        yuv = np.concatenate([y, np.full((128, 256), 128, np.uint8)])
        payloads, ts = enc.encode(_video_frame(yuv, i), force_keyframe=i == 0)
        assert ts == i * 3600
        data = b"".join(unpack(p) for p in payloads)
        for out in dec.decode(JitterFrame(data=data, timestamp=ts)):
            got = out.to_ndarray(format="yuv420p")[:256]
            errors.append(np.abs(got.astype(int) - y).mean())
    assert len(errors) >= 8
    assert max(errors) < 12, errors  # the decoded luma is the picture (mean abs error in 0..255)


def test_small_bitrate_moves_keep_the_codec_and_a_fall_rebuilds_it():
    enc = TunedVp8Encoder()
    yuv = np.full((384, 256), 128, np.uint8)
    enc.encode(_video_frame(yuv, 0))
    codec = enc.codec
    enc.target_bitrate = int(enc.target_bitrate * 1.15)  # REMB jitter: ignored
    enc.encode(_video_frame(yuv, 1))
    assert enc.codec is codec
    enc.target_bitrate = MIN_BITRATE  # congestion
    enc.encode(_video_frame(yuv, 2))
    assert enc.codec is not codec and enc.codec.bit_rate == MIN_BITRATE


@pytest.mark.parametrize("make", [TunedVp8Encoder, TunedH264Encoder])
def test_codec_calls_stay_on_one_thread_whoever_calls_encode(make, monkeypatch):
    """aiortc calls encode from its executor's threads in turn; the codec (and its rebuilds) stays on one."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import streaming.encoders as encoders

    built_on = []
    for name in ("_vp8_codec", "_x264_codec"):
        original = getattr(encoders, name)
        monkeypatch.setattr(encoders, name, lambda *a, _f=original: built_on.append(threading.get_ident()) or _f(*a))
    enc = make()
    yuv = np.full((384, 256), 128, np.uint8)
    callers = [ThreadPoolExecutor(1) for _ in range(3)]
    called_on = set()

    def call(frame):
        called_on.add(threading.get_ident())
        return enc.encode(frame)
    try:
        for i in range(6):
            if i == 3:
                enc.target_bitrate = MIN_BITRATE  # congestion: the codec is rebuilt
            callers[i % 3].submit(call, _video_frame(yuv, i)).result()
    finally:
        for c in callers:
            c.shutdown()
    assert len(called_on) == 3
    assert len(built_on) == 2 and len(set(built_on)) == 1  # built and rebuilt on the encoder's own thread
    assert built_on[0] not in called_on
    enc.close()  # its owner (the session) ends the thread: gone at once, not when the encoder is collected
    assert not any(t.ident == built_on[0] for t in threading.enumerate())


@pytest.mark.parametrize("codec,kind", [(VP8, TunedVp8Encoder), (H264, TunedH264Encoder)])
def test_installed_on_a_real_sender_for_the_negotiated_codec(codec, kind):
    async def main():
        pc = RTCPeerConnection()
        try:
            sender = pc.addTrack(VideoStreamTrack())
            assert install_tuned_encoder(sender, max_bitrate=600_000)
            encoded = await sender._next_encoded_frame(codec)
            assert encoded is not None and encoded.payloads
            enc = sender._RTCRtpSender__encoder
            assert isinstance(enc, kind) and enc.policy.high == 600_000
        finally:
            await pc.close()
    asyncio.run(main())
