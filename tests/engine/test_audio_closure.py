"""The speech model closes the lips on bilabials (mouthClose, ARKit's "lips meet over an open jaw").

GRID s1 clips that training keeps out (every 20th in name order), with the corpus's word
timings: the share of the lip opening that mouthClose cancels (what meshwarp closes) must
reach the full opening at the b/p that starts a word, and stay small mid-word where no lip
sound is (at, a, eight, red, in, six, two, now).
"""
from __future__ import annotations

import numpy as np

from engine.audio import AudioToExpression, read_audio_file
from engine.types import COEFF_INDEX

CLIPS = ("bbaf2n", "bgaa8p", "bbbm1s", "briz6n")
NO_LIP_SOUND = {"at", "a", "eight", "red", "in", "six", "two", "now"}


def _share(samples, rate) -> np.ndarray:
    eng = AudioToExpression(fps=25)
    frames = (eng.push(samples[: 3 * rate], rate) + eng.flush())[:75]

    def c(name):
        return np.array([f.state.coeffs[COEFF_INDEX[name]] for f in frames])
    opening = c("jawOpen") + 0.5 * (c("mouthLowerDownLeft") + c("mouthLowerDownRight"))
    return c("mouthClose") / np.maximum(opening, 0.02)


def test_lips_close_on_word_initial_bilabials_and_not_mid_vowel(shared):
    onsets, middles = [], []
    for clip in CLIPS:
        samples, rate = read_audio_file(shared / "data" / "grid" / "s1" / f"{clip}.mp4")
        share = _share(samples, rate)
        for line in (shared / "data" / "grid" / "s1_align" / f"{clip}.align").read_text().splitlines():
            parts = line.split()
            if len(parts) != 3:
                continue
            a, b, word = int(parts[0]) / 25000, int(parts[1]) / 25000, parts[2]
            if word[0] in "bp":
                k = int(a * 25)
                onsets.append(share[k:k + 3].max())  # the closure lasts about a frame, at the word's start
            elif word in NO_LIP_SOUND:
                k = int((a + b) / 2 * 25)
                middles.append(share[k - 1:k + 2].mean())
    onsets, middles = np.array(onsets), np.array(middles)
    assert len(onsets) >= 6 and len(middles) >= 10
    assert (onsets >= 0.75).mean() >= 0.7, onsets.round(2)
    assert middles.mean() < 0.15, middles.round(2)
