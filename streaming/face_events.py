"""The `face_state` event: one rendered frame's face state as the control websocket sends it to the
connections subscribed to the face stream."""
from __future__ import annotations

from typing import Any

from engine.types import BLENDSHAPE_NAMES, FaceState


def face_state_event(state: FaceState, k: int) -> dict[str, Any]:
    return {"type": "face_state", "frame": k, "t": state.t,
            "coeffs": {n: round(float(v), 4) for n, v in zip(BLENDSHAPE_NAMES, state.coeffs)},
            "head": [round(float(v), 3) for v in state.head], "gaze": [round(float(v), 3) for v in state.gaze]}
