"""A live session's new avatar from an uploaded photo (the control message `set_avatar`).

The photo is turned into an avatar by the same code, with the same checks and messages, as
`emolive avatar create` (engine/avatar), at the session's frame size; a renderer is made for it by the
session's renderer factory and draws its neutral face once (which warms it and gives the frame shown
until the first new one). The session's render loop then takes it between two frames
(SessionRunner.swap_avatar): the stream does not stop, and a photo that cannot be used changes nothing.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import cv2
import numpy as np

from engine.types import FaceState

from .protocol import ErrorCode, ProtocolError

@dataclass
class NewAvatar:
    renderer: Any
    blank_frame: np.ndarray  # the neutral face, I420, shown until the first rendered frame of the new avatar
    info: dict[str, Any] = field(default_factory=dict)  # what `state` reports as `avatar`


def describe(avatar) -> dict[str, Any]:
    """The avatar as a session's `state` reports it: its source, the faces found in the photo and the
    warnings `emolive avatar create` would log for it."""
    from engine.avatar.create import creation_warnings

    meta = avatar.meta
    return {"source": str(meta.get("source", "photo")), "faces_found": int(meta.get("faces_found", 1)),
            "size": list(avatar.size), "warnings": creation_warnings(meta)}


def build_avatar(renderer_factory: Callable[[Any], Any], photo: bytes, name: str, size: int) -> NewAvatar:
    """CPU for a second or two (face detection, segmentation, mesh): run it off the event loop and off the
    session's pipeline thread. A photo that cannot become an avatar is `bad_image` with the message
    `emolive avatar create` prints; a renderer that cannot take a photo avatar is `unsupported`."""
    from engine.avatar import AvatarError, avatar_from_photo_bytes
    from engine.renderers import RendererError

    try:
        avatar = avatar_from_photo_bytes(photo, name=name, size=size)
    except AvatarError as e:
        raise ProtocolError(ErrorCode.bad_image, str(e)) from None
    try:
        renderer = renderer_factory(avatar)
    except (RendererError, TypeError, ValueError) as e:
        raise ProtocolError(ErrorCode.unsupported, f"this server's renderer cannot use a photo avatar: {e}") from None
    try:
        rgb = renderer.render(FaceState.neutral())
        blank = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2YUV_I420)
    except Exception:
        if hasattr(renderer, "close"):
            renderer.close()
        raise
    return NewAvatar(renderer, blank, describe(avatar))
