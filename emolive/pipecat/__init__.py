"""emolive avatars in Pipecat pipelines (`pip install "emolive[pipecat]"`); see docs/getting-started/pipecat.md.

Only this package imports Pipecat: the rest of emolive runs without it.
"""
from .frames import EmoliveEmotionFrame
from .service import EmoliveVideoService

__all__ = ["EmoliveEmotionFrame", "EmoliveVideoService"]
