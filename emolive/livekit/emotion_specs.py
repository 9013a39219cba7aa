"""The participant attribute a room's participants set to change the avatar's emotion.

It takes the same specs and sentences as the control websocket (engine/emotion/request.py).
"""
from __future__ import annotations

EMOTION_ATTRIBUTE = "emolive.emotion"
