"""The expressions JSON file: {"fps": 25, "frames": [{"jawOpen": 0.4, "headYaw": 5.0}, ...]}.

ARKit coefficient names take 0..1, head angles (headPitch/headYaw/headRoll) and
gaze (gazeYaw/gazePitch) take degrees; missing keys are 0; unknown keys are an
error that names them. See docs/reference/expressions-format.md.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..types import FaceState, FaceStateError

MAX_FRAMES = 25 * 60 * 60  # one hour at 25 fps
MAX_BYTES = 200 * 1024 * 1024


class TimelineError(ValueError):
    pass


def parse_expressions(doc) -> tuple[float, list[FaceState]]:
    if not isinstance(doc, dict):
        raise TimelineError('expressions file must be a JSON object like {"fps": 25, "frames": [...]}')
    unknown = sorted(set(doc) - {"fps", "frames"})
    if unknown:
        raise TimelineError(f"unknown top-level keys: {', '.join(unknown)}")
    fps = doc.get("fps", 25)
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not (1 <= fps <= 120):
        raise TimelineError(f"fps must be a number between 1 and 120, got {fps!r}")
    frames = doc.get("frames")
    if not isinstance(frames, list) or not frames:
        raise TimelineError('"frames" must be a non-empty list of objects')
    if len(frames) > MAX_FRAMES:
        raise TimelineError(f"too many frames ({len(frames)} > {MAX_FRAMES})")
    states = []
    for i, f in enumerate(frames):
        if not isinstance(f, dict):
            raise TimelineError(f"frame {i} is not an object")
        if any(isinstance(v, bool) for v in f.values()):
            raise TimelineError(f"frame {i}: values must be numbers")
        try:
            states.append(FaceState.from_dict(f, t=i / fps))
        except FaceStateError as e:
            raise TimelineError(f"frame {i}: {e}") from None
    return float(fps), states


def load_expressions(path: str | Path) -> tuple[float, list[FaceState]]:
    p = Path(path)
    try:
        if p.stat().st_size > MAX_BYTES:
            raise TimelineError(f"expressions file too large: {p}")
        doc = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TimelineError(f"expressions file not found: {p}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise TimelineError(f"expressions file is not valid JSON ({p}): {e}") from None
    except IsADirectoryError:
        raise TimelineError(f"expressions path is a directory: {p}") from None
    return parse_expressions(doc)
