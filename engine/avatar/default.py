"""The embedded default avatar: NASA's public-domain astronaut portrait shipped in scikit-image.

Built on first use and cached on disk, keyed by the avatar code's hash so a
changed builder never serves a stale bundle.
"""
from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from pathlib import Path

from .bundle import Avatar, load_bundle, save_avatar
from .errors import AvatarError


def _code_key(size: int) -> str:
    h = hashlib.sha256(str(size).encode())
    for f in sorted(Path(__file__).parent.glob("*.py")):
        h.update(f.read_bytes())
    return h.hexdigest()[:12]


def cache_dir() -> Path:
    base = os.environ.get("EMOLIVE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "emolive")
    return Path(base)


@lru_cache(maxsize=4)
def default_avatar(size: int = 512) -> Avatar:
    from skimage import data

    d = cache_dir() / "avatars" / f"default-{size}-{_code_key(size)}"
    if (d / "avatar.json").exists():
        try:
            return load_bundle(d)
        except AvatarError:
            pass  # rebuild a damaged cache entry
    from .create import avatar_from_image

    av = avatar_from_image(data.astronaut(), size=size, source="skimage.data.astronaut (NASA, public domain)")
    try:
        save_avatar(av, d)
    except OSError:
        pass  # a read-only cache only costs a rebuild next time
    return av
