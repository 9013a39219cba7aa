"""Errors raised by the audio intake, so callers can tell bad input from bugs."""
from __future__ import annotations


class AudioInputError(ValueError):
    """PCM given to the engine is unusable (wrong dtype/shape, absurd rate, unreadable file)."""
