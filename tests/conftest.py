"""Shared fixtures: ../shared data (skipped cleanly when absent), avatars, an independent face re-detector."""
from __future__ import annotations

import os

os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
from engine.blas import pin_blas_threads  # noqa: E402

pin_blas_threads()  # the tests run the engine as the product does (engine/blas.py)

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


# -- for the server tests (tests/server_harness.py has the rest) --

@pytest.fixture(scope="module")
def parts():
    """Engine parts for server tests: the loudness double as the audio model, the real emotion and meshwarp."""
    from speech_doubles import RmsLoudnessModel
    from streaming.parts import EngineParts, default_emotion_factory, renderer_factory_for

    return EngineParts(RmsLoudnessModel, default_emotion_factory, renderer_factory_for("meshwarp"), 0.04)


@pytest.fixture(scope="module")
def speech_wav(tmp_path_factory):
    """Speech with silence before and after (as a browser's fake microphone needs)."""
    import subprocess

    d = tmp_path_factory.mktemp("wav")
    raw, out = d / "raw.wav", d / "speech.wav"
    subprocess.run(["espeak-ng", "-w", str(raw), "Hello there, this is a streaming test of the avatar."],
                   check=True)
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "anullsrc=r=48000:cl=mono", "-i", str(raw),
                    "-filter_complex", "[0]atrim=0:0.6[a];[1]aresample=48000[b];[0]atrim=0:1.0[c];"
                    "[a][b][c]concat=n=3:v=0:a=1", "-ar", "48000", "-ac", "1", str(out)], check=True)
    return out
