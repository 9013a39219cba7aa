"""Avatars: one portrait photo turned into an animatable bundle (see docs/reference/avatar-format.md)."""
from __future__ import annotations

from pathlib import Path

from .bundle import Avatar, load_bundle, save_avatar
from .create import avatar_from_image, avatar_from_photo_bytes, create_avatar
from .default import default_avatar
from .errors import AvatarError


def load_avatar(source: str | Path | None = None, size: int = 512) -> Avatar:
    """An avatar from a bundle directory, a photo file, or None for the default avatar."""
    if source is None or str(source) == "default":
        return default_avatar(size)
    if not str(source).strip():
        raise AvatarError("avatar path is empty (leave --avatar out for the built-in avatar)")
    p = Path(source)
    if p.is_dir():
        return load_bundle(p)
    if not p.exists():
        raise AvatarError(f"avatar not found: {p}")
    return create_avatar(p, size=size)


__all__ = ["Avatar", "AvatarError", "avatar_from_image", "avatar_from_photo_bytes", "create_avatar",
           "default_avatar", "load_avatar", "load_bundle", "save_avatar"]
