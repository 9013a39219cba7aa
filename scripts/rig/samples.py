"""Turn measured faces into rig training samples: face units, per-subject references, the held-out split.

Every face goes through face_frame() into face units, then a small rigid refinement onto the
subject's reference on bony landmarks (so jaw motion, which moves the chin that face_frame uses,
does not tilt the upper face).
"""
from __future__ import annotations

import numpy as np
from tqdm import tqdm

from engine import face_geometry as fg
from engine.rig import rigid_align

HOLDOUT_EVERY = 5  # every 5th chosen s1 clip and London person is held out for the R^2 check
HOLDOUT_CLIPS: set[str] = set()  # filled by the entry point from the measured s1 clips


def _face_units(rec: dict) -> tuple[np.ndarray, np.ndarray]:
    ok = rec["ok"]
    pts = rec["landmarks"][ok].astype(np.float64)
    return np.array([fg.face_frame(p).to_face(p) for p in pts]), rec["blendshapes"][ok].astype(np.float64)


def _reference(faces: np.ndarray, bs: np.ndarray, k: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Mean of the k frames with the lowest total blendshape activation (rigidly aligned)."""
    order = np.argsort(bs.sum(1))[:k]
    ref0 = faces[order[0]]
    ref = np.mean([rigid_align(faces[i], ref0) for i in order], axis=0)
    return ref, bs[order].mean(0)


def build_samples(recs: list[dict]) -> tuple[list[dict], list[np.ndarray]]:
    """Displacement samples (dX vs reference blendshapes, dY vs reference face) and per-subject neutral faces.

    References: GRID, per clip (every clip starts and ends in silence with a neutral face);
    London, the person's neutral photo; CREMA-D actor 1001, his NEU clips; other videos, the clip.
    """
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in recs:
        groups.setdefault((r["dataset"], r["subject"]), []).append(r)
    samples, neutrals = [], []
    for (dataset, subject), rs in tqdm(sorted(groups.items()), desc="normalize", unit="subject"):
        if dataset == "london":
            neu = [r for r in rs if r["folder"] == "neutral" and r["ok"].all()]
            smi = [r for r in rs if r["folder"] == "smiling" and r["ok"].all()]
            if not neu or not smi:
                continue
            ref, rbs = _face_units(neu[0])
            ref, rbs = ref[0], rbs[0]
            fs, bs = _face_units(smi[0])
            units = [(subject, ref, rbs, fs, bs)]
        elif dataset.startswith("grid"):
            units = []
            for r in rs:
                fs, bs = _face_units(r)
                ref, rbs = _reference(fs, bs)
                units.append((r["name"], ref, rbs, fs, bs))
        else:
            pool = [r for r in rs if "NEU" in r["name"]] or rs
            pf, pb = zip(*[_face_units(r) for r in pool])
            ref, rbs = _reference(np.concatenate(pf), np.concatenate(pb))
            units = []
            for r in rs:
                fs, bs = _face_units(r)
                units.append((r["name"], ref, rbs, fs, bs))
        seen = set()
        for name, ref, rbs, fs, bs in units:
            if len(fs) == 0:
                continue
            dy = np.array([rigid_align(f, ref) - ref for f in fs]).reshape(len(fs), -1)
            samples.append({"dataset": dataset, "subject": subject, "clip": name,
                            "dx": bs - rbs, "dy": dy})
            if id(ref) not in seen:
                seen.add(id(ref))
                neutrals.append((dataset, subject, ref))
    return samples, neutrals


def mean_neutral(neutrals: list) -> np.ndarray:
    """Mean of per-subject neutral faces (one per subject), Procrustes-aligned (rigid) twice."""
    by_subject: dict = {}
    for dataset, subject, ref in neutrals:
        by_subject.setdefault((dataset, subject), []).append(ref)
    faces = [np.mean(v, axis=0) for v in by_subject.values()]
    mean = faces[0]
    for _ in range(2):
        mean = np.mean([rigid_align(f, mean) for f in faces], axis=0)
    # Re-express in face units so the eye corners sit at (+-0.5, 0, 0) like any face_frame output.
    return fg.face_frame(mean).to_face(mean)


def is_holdout(s: dict) -> bool:
    if s["dataset"] == "grid_s1":
        return s["clip"] in HOLDOUT_CLIPS
    if s["dataset"] == "london":
        return int(s["subject"]) % HOLDOUT_EVERY == 0
    return False


def stack(samples: list[dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """X (N, 52), Y (N, 1434) and weights giving every dataset the same total weight."""
    x = np.concatenate([s["dx"] for s in samples])
    y = np.concatenate([s["dy"] for s in samples])
    ds = np.concatenate([[s["dataset"]] * len(s["dx"]) for s in samples])
    w = np.zeros(len(x))
    names = np.unique(ds)
    for d in names:
        w[ds == d] = 1.0 / ((ds == d).sum() * len(names))
    return x, y, w
