"""The JSON manifest that names a bundle directory's format and version (avatar and diffusion bundles)."""
from __future__ import annotations

import json
from pathlib import Path


def read_manifest(directory: str | Path, filename: str, fmt: str, version: int, error: type[Exception],
                  kind: str, hint: str = "") -> dict:
    """The manifest's dict; `error` with a one-line reason when it is missing, corrupt, foreign or too new/old."""
    d = Path(directory)
    try:
        meta = json.loads((d / filename).read_text())
    except FileNotFoundError:
        raise error(f"not {kind} (no {filename}): {d}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise error(f"corrupt {filename} in {d}: {e}") from None
    if not isinstance(meta, dict) or meta.get("format") != fmt:
        raise error(f"not an emolive {kind.split(' ', 1)[-1]}: {d}")
    if meta.get("version") != version:
        raise error(f"{kind.split(' ', 1)[-1]} version {meta.get('version')} not supported (need {version}){hint}")
    return meta
