"""The frame a Pipecat pipeline sends to set the avatar's emotion."""
from __future__ import annotations

from dataclasses import dataclass

from pipecat.frames.frames import DataFrame


@dataclass
class EmoliveEmotionFrame(DataFrame):
    """Set the avatar's emotion: "happy:0.8", "happy:0.7+surprised:0.3@0.9" or a sentence such as
    "very happy with a little surprised". A data frame, so it takes effect in order with the speech
    around it (from the next video frame the service renders after it)."""

    spec: str
    transition_ms: float = 250.0
