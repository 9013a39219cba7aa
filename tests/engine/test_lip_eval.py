"""Metrics and baselines of the lip-sync evaluation (scripts/audio/eval_lips.py, phoneme_baseline.py)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from scripts.audio.eval_lips import (  # noqa: E402
    best_lag, closure_accuracy, detrend, lagged, pearson, rms_envelope, scores)
from scripts.audio.phoneme_baseline import (  # noqa: E402
    BILABIALS, VOWELS, load_table, norm_phone, phone_at, phones_to_series)


def _mouth(n=200, seed=0):
    rng = np.random.default_rng(seed)
    x = np.convolve(rng.standard_normal(n + 10), np.ones(4) / 4, mode="same")[:n]  # syllable-rate wiggle
    return x


@pytest.mark.parametrize("shift", [-7, -1, 0, 1, 3, 10])
def test_shifted_copy_gives_r_one_at_its_lag(shift):
    real = _mouth()
    x = np.roll(real, -shift)  # real[k + shift] == x[k]: the real mouth moves `shift` frames after x
    lag, r = best_lag(x, real, 10)
    assert lag == shift
    assert r == pytest.approx(1.0, abs=1e-9)
    if shift != 0:
        assert lagged(x, real, 0) < 0.9
    if abs(shift) > 1:
        l1, r1 = best_lag(x, real, 1)
        assert abs(l1) <= 1 and r1 < 0.99


def test_best_lag_prefers_zero_on_ties_and_respects_mask():
    real = _mouth()
    assert best_lag(real, real, 10) == (0, pytest.approx(1.0))
    x = real.copy()
    ok = np.ones(len(real), bool)
    x[50:60] += 100.0  # garbage where the face was not found
    ok[50:60] = False
    assert lagged(x, real, 0) < 0.5
    assert lagged(x, real, 0, ok) == pytest.approx(1.0)


def test_pearson_known_values():
    a = np.arange(10.0)
    assert pearson(a, 2 * a + 3) == pytest.approx(1.0)
    assert pearson(a, -a) == pytest.approx(-1.0)
    assert pearson(a, np.ones(10)) == 0.0


def test_envelope_removal_kills_a_slow_ramp_and_keeps_fast_motion():
    fps = 25.0
    t = np.arange(250) / fps
    ramp = 0.05 * t
    fast = 0.02 * np.sin(2 * np.pi * 4.0 * t)  # 4 Hz, syllable rate
    d_ramp = detrend(ramp, fps)
    inner = slice(10, -10)  # the window reaches past the ends there
    assert np.max(np.abs(d_ramp[inner])) < 1e-9
    assert pearson(detrend(ramp + fast, fps)[inner], fast[inner]) > 0.97
    # a ramp shared by two otherwise unrelated series: raw r is high, envelope removed r is ~0
    rng = np.random.default_rng(1)
    a, b = ramp + 0.002 * rng.standard_normal(250), ramp + 0.002 * rng.standard_normal(250)
    s = scores(a, b, fps, np.ones(250, bool))
    assert s["raw"]["r0"] > 0.95
    assert abs(s["env"]["r0"]) < 0.25


def test_rms_envelope_follows_loudness():
    sr = 16000
    x = np.zeros(sr)
    x[sr // 2:] = 0.5 * np.sin(2 * np.pi * 200 * np.arange(sr // 2) / sr)
    env = rms_envelope(x, sr, np.array([0.1, 0.25, 0.75, 0.9]))
    assert env[0] == env[1] == 0.0
    assert env[2] == pytest.approx(0.5 / np.sqrt(2), rel=0.02)


def test_closure_accuracy():
    fps = 25.0
    times = np.arange(50) / fps
    gap = np.full(50, 0.1)
    gap[10] = 0.0  # closed at 0.40 s
    segs = [("M", 0.39, 0.45), ("AA", 0.45, 0.6), ("B", 0.8, 0.86), ("P", 1.5, 1.52)]
    share, n = closure_accuracy(segs, gap, times, threshold=0.02)
    assert n == 3 and share == pytest.approx(1 / 3)
    gap[32] = 0.01  # t = 1.28 s: outside P's span (+- half a frame) -> still open
    assert closure_accuracy(segs, gap, times, 0.02)[0] == pytest.approx(1 / 3)
    gap[38] = 0.01  # t = 1.52 s: the frame whose interval overlaps P's end
    assert closure_accuracy(segs, gap, times, 0.02)[0] == pytest.approx(2 / 3)
    ok = np.ones(50, bool)
    ok[10] = False  # M's only closed frame has no face: M still counts (frame 11), now open
    share, n = closure_accuracy(segs, gap, times, 0.02, ok)
    assert n == 3 and share == pytest.approx(1 / 3)


def test_phone_labels_and_series():
    assert norm_phone("AH1") == "AH" and norm_phone("+NSN+") == "SIL" and norm_phone("<sil>") == "SIL"
    segs = [("SIL", 0.0, 0.2), ("M", 0.2, 0.3), ("AA", 0.3, 0.5)]
    assert phone_at(segs, np.array([0.1, 0.25, 0.4, 0.7])) == ["SIL", "M", "AA", "SIL"]
    table = {"SIL": 0.0, "M": 0.0, "AA": 1.0, "_speech": 0.5}
    v = phones_to_series(segs, table, np.arange(20) / 25.0)
    assert v.tolist() == [0] * 8 + [1] * 5 + [0] * 7
    sm = phones_to_series(segs, table, np.arange(20) / 25.0, sigma_frames=1.0)
    assert 0 < sm.max() < 1 and sm.argmax() == 10


def test_calibrated_table_closes_bilabials_and_opens_vowels():
    table, sigma = load_table()
    assert 0 <= sigma <= 3
    bil = [table[p] for p in BILABIALS]
    open_vowels = [table[p] for p in ("AA", "AE", "AW", "AY", "EH", "EY")]  # GRID has AO only in "four" (rounded)
    assert max(bil) < min(open_vowels)
    assert max(bil) < np.median([table[p] for p in VOWELS if p in table]) * 0.6
    assert max(bil) < 0.6 * table["_speech"]
    for p in ("AA", "AE", "AW", "AY"):
        assert table[p] > 2 * max(bil)
    series = phones_to_series([("M", 0.0, 0.2), ("AA", 0.2, 0.4), ("P", 0.4, 0.6)], table, np.arange(15) / 25.0)
    assert series[2] < series[7] and series[12] < series[7]


def test_pocketsphinx_aligns_a_grid_sentence():
    from engine.measure import shared_dir

    sd = shared_dir()
    if sd is None:
        pytest.skip("../shared not present")
    pytest.importorskip("pocketsphinx")
    from engine.audio import read_audio_file
    from scripts.audio.phoneme_baseline import PhoneRecogniser, to_pcm16

    x, sr = read_audio_file(sd / "data/grid/multi_speaker/lbax4n.mp4")
    pcm = to_pcm16(x, sr)
    rec = PhoneRecogniser()
    al = rec.align(pcm, "lay blue at x four now")
    phones = [p for p, _, _ in al if p != "SIL"]
    assert phones[:3] == ["L", "EY", "B"] and "AW" in phones
    assert all(b > a for _, a, b in al)
    speech = [a for p, a, _ in al if p != "SIL"]
    assert 0.2 < speech[0] < 1.0 and speech[-1] < 2.98  # GRID: silence first, speech within the clip
    recog = rec.recognise(pcm)
    assert len([p for p, _, _ in recog if p != "SIL"]) >= 8
