"""Safe photo loading: any common format, clear errors for bad files and decompression bombs."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from .errors import AvatarError

MAX_PIXELS = 40_000_000  # 40 MP: larger is a bomb or a scan, not a portrait
MAX_FILE_BYTES = 100 * 1024 * 1024
MIN_SIDE = 32


def read_photo(path: str | Path) -> np.ndarray:
    """An RGB uint8 image from a file, EXIF orientation applied."""
    p = Path(path)
    if not p.exists():
        raise AvatarError(f"photo not found: {p}")
    if not p.is_file():
        raise AvatarError(f"not a file: {p}")
    _check_file_size(p.stat().st_size, p)
    return _decode(p, p)


def read_photo_bytes(data: bytes, name: str = "photo") -> np.ndarray:
    """An RGB uint8 image from a photo's bytes (an upload), with the same checks and messages as read_photo;
    `name` stands for the file in the messages."""
    import io

    _check_file_size(len(data), name)
    return _decode(io.BytesIO(data), name)


def _check_file_size(size: int, label) -> None:
    if size == 0:
        raise AvatarError(f"empty file: {label}")
    if size > MAX_FILE_BYTES:
        raise AvatarError(f"file too large ({size / 1e6:.0f} MB > {MAX_FILE_BYTES / 1e6:.0f} MB): {label}")


def _decode(source, p) -> np.ndarray:
    """Decode `source` (a path or a binary file object); `p` names it in the messages."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source) as im:
                w, h = im.size
                if w * h > MAX_PIXELS:
                    raise AvatarError(f"image too large: {w}x{h} pixels (limit {MAX_PIXELS // 1_000_000} MP): {p}")
                im.load()
                im = ImageOps.exif_transpose(im)
                rgb = np.asarray(im.convert("RGB"))
    except AvatarError:
        raise
    except UnidentifiedImageError:
        raise AvatarError(f"not an image (unrecognised format): {p}") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise AvatarError(f"image too large (decompression bomb guard): {p}") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise AvatarError(f"cannot decode image {p}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    if min(rgb.shape[:2]) < MIN_SIDE:
        raise AvatarError(f"image too small: {rgb.shape[1]}x{rgb.shape[0]} pixels: {p}")
    return np.ascontiguousarray(rgb)
