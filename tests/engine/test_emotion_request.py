"""Emotion requests as callers send them: specs, mixtures and sentences, and what is refused."""
from __future__ import annotations

import pytest


def test_emotion_specs_and_sentences():
    from engine.emotion import EmotionError
    from engine.emotion.request import read_emotion

    assert read_emotion("happy:0.8").mixture == {"happy": 1.0}
    mix = read_emotion("happy:0.7+surprised:0.3@0.9")
    assert mix.mixture == pytest.approx({"happy": 0.7, "surprised": 0.3}) and mix.intensity == pytest.approx(0.9)
    sentence = read_emotion("very happy with a little surprised")
    assert sentence.dominant() == "happy" and "surprised" in sentence.mixture
    with pytest.raises(EmotionError):
        read_emotion("hapy:0.8")
