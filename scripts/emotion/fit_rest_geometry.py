"""Fit the lower face's rest geometry (engine/avatar/rest_geometry.py) on paired smiling / neutral photos.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/emotion/fit_rest_geometry.py   # ~30 s

London set (../shared/data/expressions/london): each person photographed neutral
(*_03) and smiling (*_08). Training people: number not a multiple of 5 (the
multiples of 5 are held out, as for the population neutral fit and every London
evaluation). Landmarks come from the runtime's detector (wheel face mesh), in
face units; the neutral photo's landmarks are aligned onto the smiling photo's by
a 3D similarity on the eye corners and nose bridge. Samples: smiling photo ->
(neutral - smiling) displacement, and neutral photo -> zero. Ridge regression
without bias. Prints the held-out lip-landmark error of no undo, the rig's undo
and the learned displacement, and writes engine/assets/rest_geometry.npz.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from make_neutral_reference import london, read_rgb  # noqa: E402

from engine.avatar.rest import measure_rest  # noqa: E402
from engine.avatar.rest_geometry import ASSET, RestGeometry, features_of, save  # noqa: E402
from engine.emotion.reference import EXPRESSION, detect_landmarks, fit_face  # noqa: E402
from engine.face_geometry import LIPS_INNER, LIPS_OUTER, STABLE_LANDMARKS, face_frame  # noqa: E402
from engine.rig import load_rig, rigid_align  # noqa: E402

LAMBDA = 0.1
LIPS = np.array(sorted(set(LIPS_OUTER + LIPS_INNER)))


def to_face(lm: np.ndarray) -> np.ndarray:
    return face_frame(lm).to_face(lm)


def lip_error(pred: np.ndarray, true: np.ndarray) -> float:
    """Mean 2D distance (eye distances) of the lip landmarks between predicted and real displacements."""
    p = pred.reshape(-1, 478, 3)[:, LIPS, :2]
    t = true.reshape(-1, 478, 3)[:, LIPS, :2]
    return float(np.sqrt(((p - t) ** 2).sum(-1)).mean())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lam", type=float, default=LAMBDA, help="ridge penalty")
    ap.add_argument("--out", type=Path, default=ASSET)
    args = ap.parse_args(argv)
    photos = {kind: {p.name[:3]: p for p in london(kind)} for kind in ("neutral", "smiling")}
    people = sorted(set(photos["neutral"]) & set(photos["smiling"]))
    if not people:
        print("../shared not present", file=sys.stderr)
        return 2
    rig, rows = load_rig(), []
    for i, person in enumerate(people):
        n = detect_landmarks(read_rgb(photos["neutral"][person]))
        s = detect_landmarks(read_rgb(photos["smiling"][person]))
        disp = (rigid_align(to_face(n), to_face(s), STABLE_LANDMARKS, scale=True) - to_face(s)).reshape(-1)
        fs, fn = fit_face(s), fit_face(n)
        undo = -rig.displacements(measure_rest(s)).reshape(-1)
        rows.append((person, features_of(fs, EXPRESSION), features_of(fn, EXPRESSION), disp, undo))
        print(f"\r{i + 1}/{len(people)} people", end="", file=sys.stderr)
    print(file=sys.stderr)
    held = np.array([int(p) % 5 == 0 for p, *_ in rows])
    fs = np.stack([r[1] for r in rows])
    fn = np.stack([r[2] for r in rows])
    disp = np.stack([r[3] for r in rows])
    rig = np.stack([r[4] for r in rows])
    tr = ~held
    x = np.vstack([fs[tr], fn[tr]])
    y = np.vstack([disp[tr], np.zeros_like(disp[tr])])
    w = np.linalg.solve(x.T @ x + args.lam * np.eye(x.shape[1]), x.T @ y)
    model = RestGeometry(features=EXPRESSION, weights=w, lo=x.min(0), hi=x.max(0))
    pred = np.stack([model.displacement(f).reshape(-1) for f in fs[held]])
    moved = np.stack([model.displacement(f).reshape(-1) for f in fn[held]])
    print(f"{tr.sum()} training people, {held.sum()} held out; lip landmarks' error on held-out smiles "
          f"(eye distances): no undo {lip_error(0 * disp[held], disp[held]):.4f}, rig's undo "
          f"{lip_error(rig[held], disp[held]):.4f}, learned {lip_error(pred, disp[held]):.4f}; "
          f"learned move of held-out neutral photos {lip_error(moved, 0 * moved):.4f}")
    save(args.out, model, meta=f"London set people not multiple of 5 ({tr.sum()}), ridge lambda {args.lam}; "
                              "scripts/emotion/fit_rest_geometry.py")
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
