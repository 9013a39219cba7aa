"""Emotion specs as the control websocket and `emolive ctl` take them, read into an emotion target.

"happy:0.8" and mixtures "happy:0.7+surprised:0.3@0.9" go through the spec parser; anything else that
reads as a sentence ("very happy with a little surprised") goes through the text-prompt reader, which
may load the sentence encoder (seconds, once per process): callers run it off the event loop.
"""
from __future__ import annotations

from engine.emotion import EmotionError, EmotionTarget, parse_spec

# The prompt reader never raises: text that names no emotion comes back neutral with this confidence
# or less (engine/emotion/prompt.py), which for a request means "not understood".
UNDERSTOOD_ABOVE = 0.1


def is_sentence(spec: str) -> bool:
    """Specs never contain spaces between words; a prompt does."""
    return len(str(spec).split()) > 1


def read_spec(spec: str) -> EmotionTarget:
    """The target a spec or sentence names; EmotionError (with the reason) when it names none."""
    if not is_sentence(spec):
        return parse_spec(spec)
    from engine.emotion.prompt import parse_prompt

    target = parse_prompt(str(spec))
    if target.confidence <= UNDERSTOOD_ABOVE:
        raise EmotionError(f"emotion not understood: {spec!r} ({target.reason})")
    return target
