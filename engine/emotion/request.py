"""An emotion as a caller asks for it: a spec or a sentence, read into an emotion target.

"happy:0.8" and mixtures "happy:0.7+surprised:0.3@0.9" go through the spec parser (target.py); a
sentence ("very happy with a little surprised") goes through the text-prompt reader (prompt.py), which
may load the sentence encoder (seconds, once per process), so asynchronous callers read sentences off
their event loop.
"""
from __future__ import annotations

from .directions import EmotionError
from .target import EmotionTarget, parse_spec

# The prompt reader never raises: text that names no emotion comes back neutral with this confidence or
# less (prompt.py); for a request that means "not understood", not "be neutral".
UNDERSTOOD_ABOVE = 0.1


def is_sentence(spec: str) -> bool:
    """Specs never hold spaces between words; sentences do."""
    return len(str(spec).split()) > 1


def read_emotion(spec: str) -> EmotionTarget:
    """The target a spec or sentence names; EmotionError (with the reason) when it names none."""
    text = str(spec).strip()
    if not is_sentence(text):
        return parse_spec(text)
    from .prompt import parse_prompt

    target = parse_prompt(text)
    if target.confidence <= UNDERSTOOD_ABOVE:
        raise EmotionError(f"emotion not understood: {text!r} ({target.reason})")
    return target
