"""emolive avatars for LiveKit Agents (`pip install "emolive[livekit]"`); see docs/getting-started/livekit.md.

Only this package imports LiveKit: the rest of emolive runs without it.
"""
from .avatar import AvatarSession
from .emotion_specs import EMOTION_ATTRIBUTE
from .generator import EmoliveVideoGenerator
from .load import avatar_load

__all__ = ["EMOTION_ATTRIBUTE", "AvatarSession", "EmoliveVideoGenerator", "avatar_load"]
