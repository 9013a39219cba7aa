"""Emotion specs as the control websocket and `emolive ctl` take them, read into an emotion target.

"happy:0.8" and mixtures "happy:0.7+surprised:0.3@0.9" go through the spec parser; a sentence ("very
happy with a little surprised") goes through the text-prompt reader, which may load the sentence encoder
(seconds, once per process), so callers read specs off the event loop.
"""
from __future__ import annotations

from engine.emotion import EmotionError, EmotionTarget, parse_spec

# The participant attribute a room's participants set to change the avatar's emotion (same specs).
EMOTION_ATTRIBUTE = "emolive.emotion"
# The prompt reader never raises: text that names no emotion comes back neutral with this confidence or
# less (engine/emotion/prompt.py); for a request that means "not understood", not "be neutral".
UNDERSTOOD_ABOVE = 0.1


def read_emotion(spec: str) -> EmotionTarget:
    """The target a spec or sentence names; EmotionError (with the reason) when it names none."""
    text = str(spec).strip()
    if len(text.split()) <= 1:  # specs never hold spaces between words; sentences do
        return parse_spec(text)
    from engine.emotion.prompt import parse_prompt

    target = parse_prompt(text)
    if target.confidence <= UNDERSTOOD_ABOVE:
        raise EmotionError(f"emotion not understood: {text!r} ({target.reason})")
    return target
