"""The bench's audio marks: placed exactly on the timeline, found to within 1 ms after Opus with speech under them."""
import fractions

import av
import numpy as np
import pytest

from audio_helpers import speechlike
from streaming.audio_marks import RATE, MarkPlan, detect, marker

SPF = RATE // 25  # samples per video frame at 25 fps
OPUS_LOOKAHEAD = 312  # libopus delays its output by 6.5 ms (2.5 ms CELT look-ahead + 4 ms SILK resampler)


def opus_round_trip(pcm: np.ndarray, bitrate: int) -> np.ndarray:
    """Encode as aiortc does (libopus, voip, stereo s16, 20 ms frames) and decode; the first channel."""
    enc = av.CodecContext.create("libopus", "w")
    enc.bit_rate, enc.format, enc.layout, enc.sample_rate = bitrate, "s16", "stereo", RATE
    enc.options = {"application": "voip"}
    enc.time_base = fractions.Fraction(1, RATE)
    dec = av.CodecContext.create("libopus", "r")
    dec.format, dec.layout, dec.sample_rate = "s16", "stereo", RATE
    s16 = (np.clip(pcm, -1, 1) * 32767).astype(np.int16)
    out = []
    for i in range(0, len(s16) - 959, 960):
        frame = av.AudioFrame.from_ndarray(np.repeat(s16[i:i + 960], 2).reshape(1, -1), format="s16", layout="stereo")
        frame.sample_rate, frame.pts, frame.time_base = RATE, i, fractions.Fraction(1, RATE)
        for packet in enc.encode(frame):
            for d in dec.decode(av.Packet(bytes(packet))):
                out.append(d.to_ndarray().reshape(-1, 2)[:, 0])
    return np.concatenate(out).astype(np.float32) / 32767


def loud_speech(seconds: float) -> np.ndarray:
    s = speechlike(seconds, sr=RATE, seed=3)
    return s * (0.1 / np.sqrt(np.mean(s * s)))  # -20 dBFS RMS: a loud voice under the marks


def test_mix_places_marks_at_frame_starts_whatever_the_chunking():
    plan = MarkPlan(SPF, every=5, late=700)
    whole = plan.mix(np.zeros(10 * plan.period, np.float32), 0)
    chunks = np.concatenate([plan.mix(np.zeros(960, np.float32), s) for s in range(0, 10 * plan.period, 960)])
    odd = np.concatenate([plan.mix(np.zeros(n, np.float32), s) for s, n in
                          zip(np.cumsum([0, 333, 1000, 77]), (333, 1000, 77, 10 * plan.period - 1410))])
    np.testing.assert_array_equal(whole, chunks)
    np.testing.assert_array_equal(whole, odd)
    mk = marker()
    for m in range(10):  # even marks at frame m*every's first sample, odd ones `late` samples after it
        p = m * 5 * SPF + (700 if m % 2 else 0)
        assert plan.position(m) == p and plan.frame(m) == 5 * m
        np.testing.assert_array_equal(whole[p:p + len(mk)], mk)
        assert not whole[p - 10:p].any()
    assert plan.mix(np.zeros(960, np.float32), 5 * SPF * 2 + 960).sum() == 0  # between marks: untouched


@pytest.mark.parametrize("bitrate", [96_000, 24_000])
def test_onsets_within_1ms_after_opus_with_speech_under(bitrate):
    plan = MarkPlan(SPF, every=5, late=0)
    speech = loud_speech(6.0)
    lead = 4800  # the marks start 0.1 s into the stream: the codec's first frame is its start-up
    sent = plan.mix(speech, -lead)
    got = detect(opus_round_trip(sent, bitrate))
    expected = [lead + plan.position(m) for m in range(len(sent) // plan.period + 1)
                if lead + plan.position(m) + 480 < len(sent)]
    assert len(got) == len(expected), (got, expected)
    err = np.array([t for t, _ in got]) - OPUS_LOOKAHEAD - np.array(expected)
    assert np.abs(err).max() <= RATE / 1000, err  # 1 ms
    assert min(s for _, s in got) > 0.7
    print(f"{bitrate} bit/s: onset error {np.abs(err).max():.2f} samples max, scores >= {min(s for _, s in got):.2f}")


def test_speech_alone_and_silence_have_no_marks():
    speech = loud_speech(6.0)
    assert detect(opus_round_trip(speech, 96_000)) == []
    assert detect(np.zeros(RATE, np.float32)) == []
    assert detect(np.zeros(100, np.float32)) == []


def test_real_speech_under_marks(shared):
    from engine.audio.io import read_audio_file

    pcm, rate = read_audio_file(f"{shared}/data/speech/librispeech/198-209-0000_F_HeatherBarnett.wav")
    resampler = av.AudioResampler(format="flt", layout="mono", rate=RATE)
    frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1).astype(np.float32), format="flt", layout="mono")
    frame.sample_rate = rate
    speech = np.concatenate([f.to_ndarray().reshape(-1) for f in resampler.resample(frame) + resampler.resample(None)])
    plan = MarkPlan(SPF, every=25, late=0)
    got = detect(opus_round_trip(plan.mix(speech * 3.0, 0), 96_000))  # * 3: as loud as a close microphone
    expected = [plan.position(m) for m in range(len(speech) // plan.period + 1) if plan.position(m) + 480 < len(speech)]
    assert len(got) == len(expected) >= 10
    err = np.array([t for t, _ in got]) - OPUS_LOOKAHEAD - np.array(expected)
    assert np.abs(err).max() <= RATE / 1000, err
