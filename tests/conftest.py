"""Shared fixtures: ../shared data (skipped cleanly when absent), avatars, an independent face re-detector."""
from __future__ import annotations

import os

os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from engine.measure import shared_dir  # noqa: E402


@pytest.fixture(scope="session")
def shared():
    d = shared_dir()
    if d is None:
        pytest.skip("../shared not present")
    return d


@pytest.fixture(scope="session")
def default_avatar():
    from engine.avatar import load_avatar

    return load_avatar(None)


class FaceMeshDetector:
    """MediaPipe face mesh (from the wheel) re-detecting landmarks on rendered frames."""

    def __init__(self):
        import mediapipe as mp

        self._fm = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=True)

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        res = self._fm.process(np.ascontiguousarray(rgb))
        assert res.multi_face_landmarks, "no face re-detected on the rendered frame"
        h, w = rgb.shape[:2]
        return np.array([[p.x * w, p.y * h, p.z * w] for p in res.multi_face_landmarks[0].landmark])


@pytest.fixture(scope="session")
def redetect():
    return FaceMeshDetector()


@pytest.fixture(scope="session")
def grid_speech(shared):
    """(samples, rate, speech mask per 25 fps frame) of 3 s of GRID s1/bbaf2n, per its word alignment."""
    from engine.audio import read_audio_file

    clip = "bbaf2n"
    samples, rate = read_audio_file(shared / "data" / "grid" / "s1" / f"{clip}.mp4")
    samples = samples[: 3 * rate]
    speech = np.zeros(75, bool)
    for line in (shared / "data" / "grid" / "s1_align" / f"{clip}.align").read_text().split("\n"):
        parts = line.split()
        if len(parts) == 3 and parts[2] not in ("sil", "sp"):
            speech[int(parts[0]) // 1000: int(parts[1]) // 1000] = True
    return samples, rate, speech
