"""Fit the linear expression rig (engine/assets/rig.npz) from real faces.

Pipeline:
1. measure: run MediaPipe's Face Landmarker on real frames (GRID s1 subset, GRID
   multi-speaker, London neutral/smiling, CREMA-D, Pexels) and cache raw pixels
   landmarks + 52 blendshapes per source file under build/rig_cache/.
2. normalize: face_frame() every face into face units, then a small rigid
   refinement onto the subject's reference on bony landmarks (so jaw motion,
   which moves the chin that face_frame uses, does not tilt the upper face).
3. fit: ridge least squares of landmark displacement (vs the subject's
   reference face) on blendshape values (vs the reference's), each coefficient
   restricted to its anatomical region and side, datasets weighted equally.
4. FACS: coefficients with too little measured variance get displacements
   built by hand from FACS action-unit descriptions on the mean face.
5. calibrate: blink scaled so lids meet at 1 (ARKit's definition of a closed eye).

This file runs the pipeline and writes the rig; its parts live in scripts/rig/
(measure, samples, facs, fit).

Run:  OMP_NUM_THREADS=1 .venv/bin/python scripts/fit_rig.py
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))  # the fit's parts: scripts/rig/

from rig.facs import facs_displacement, mirror_map, regions  # noqa: E402
from rig.fit import calibrate_blink, fit_basis, pair_mean, r2  # noqa: E402
from rig.measure import measure_all  # noqa: E402
from rig.samples import HOLDOUT_CLIPS, HOLDOUT_EVERY, build_samples, is_holdout, mean_neutral, stack  # noqa: E402

from engine import face_geometry as fg  # noqa: E402
from engine.measure import shared_dir  # noqa: E402
from engine.rig import RIGID_LANDMARKS  # noqa: E402
from engine.types import BLENDSHAPE_NAMES, COEFF_INDEX, NUM_COEFFS  # noqa: E402

OUT = ROOT / "engine" / "assets" / "rig.npz"
# Fit/FACS decision (docs/design/rig.md): a coefficient is fitted when its value (minus the reference's)
# exceeds ACTIVE in >= MIN_ACTIVE training samples, its dataset-weighted std is >= MIN_STD, and
# the bases fitted on two disjoint halves of the data agree (cosine >= MIN_COS). Left/Right
# pairs are judged on the pair's mean figures so that both sides come from the same source.
# Finally a fitted coefficient whose column lowers the held-out R^2 (GRID + London) goes to FACS.
ACTIVE, MIN_STD, MIN_ACTIVE, MIN_COS = 0.15, 0.03, 50, 0.6
ALPHAS = (1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--measure-only", action="store_true", help="only fill build/rig_cache/")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    sd = shared_dir()
    if sd is None:
        sys.exit("../shared not present: the rig is fitted from its real faces")
    recs = measure_all(sd)
    if args.measure_only:
        return
    s1 = sorted(r["name"] for r in recs if r["dataset"] == "grid_s1")
    HOLDOUT_CLIPS.update(s1[::HOLDOUT_EVERY])
    samples, neutrals = build_samples(recs)
    mf = mean_neutral(neutrals)
    region = regions(mf)
    train = [s for s in samples if not is_holdout(s)]
    x, y, w = stack(train)
    grid_ho = [s for s in samples if is_holdout(s) and s["dataset"] == "grid_s1"]
    lon_ho = [s for s in samples if is_holdout(s) and s["dataset"] == "london"]
    xg, yg, _ = stack(grid_ho)
    xl, yl, _ = stack(lon_ho)

    # 1. Variance screen: enough clearly active samples and spread, pooled over the datasets.
    wn = w / w.sum()
    std = np.sqrt((wn[:, None] * (x - (wn[:, None] * x).sum(0)) ** 2).sum(0))
    n_active = (np.abs(x) > ACTIVE).sum(0)
    cand = [k for k in range(NUM_COEFFS) if pair_mean(std, k) >= MIN_STD and pair_mean(n_active, k) >= MIN_ACTIVE]

    # 2. Ridge strength by held-out R^2 (GRID clips + London people).
    scores = {}
    for alpha in tqdm(ALPHAS, desc="ridge", unit="alpha"):
        b = fit_basis(x, y, w, cand, region, alpha)
        scores[alpha] = 0.5 * (r2(xg, yg, b) + r2(xl, yl, b))
    alpha = max(scores, key=scores.get)

    # 3. Stability: the same coefficient fitted on two disjoint halves of the clips/people must agree.
    half = [i % 2 for i, _ in enumerate(train)]
    bh = []
    for hv in (0, 1):
        xs, ys, ws = stack([s for s, h in zip(train, half) if h == hv])
        bh.append(fit_basis(xs, ys, ws, cand, region, alpha))
    cos = np.zeros(NUM_COEFFS)
    for k in cand:
        a, b = bh[0][k].ravel(), bh[1][k].ravel()
        cos[k] = a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12)
    fit_idx = [k for k in cand if pair_mean(cos, k) >= MIN_COS]

    basis = fit_basis(x, y, w, fit_idx, region, alpha)
    r2_grid, r2_london = r2(xg, yg, basis), r2(xl, yl, basis)
    # Per-coefficient held-out gain: R^2 lost when that coefficient's column is zeroed.
    xa, ya = np.concatenate([xg, xl]), np.concatenate([yg, yl])
    full = r2(xa, ya, basis)
    gain = np.zeros(NUM_COEFFS)
    for k in fit_idx:
        bk = basis.copy()
        bk[k] = 0
        gain[k] = full - r2(xa, ya, bk)

    # Coefficients whose fitted column makes held-out prediction worse go to FACS, then refit.
    keep = [k for k in fit_idx if pair_mean(gain, k) >= 0.0]
    if len(keep) < len(fit_idx):
        fit_idx = keep
        basis = fit_basis(x, y, w, fit_idx, region, alpha)
        r2_grid, r2_london = r2(xg, yg, basis), r2(xl, yl, basis)

    # 4. FACS for the rest; 5. blink calibration on fitted blinks.
    mirror = mirror_map(mf)
    source = np.array(["fit" if k in fit_idx else "facs" for k in range(NUM_COEFFS)])
    for k in range(NUM_COEFFS):
        if source[k] == "facs":
            basis[k] = facs_displacement(BLENDSHAPE_NAMES[k], mf, mirror)
            basis[k, list(RIGID_LANDMARKS)] = 0.0
    blink_close = np.full(2, np.nan)
    for i, (n, lids) in enumerate((("eyeBlinkLeft", fg.EYE_L_LIDS), ("eyeBlinkRight", fg.EYE_R_LIDS))):
        if source[COEFF_INDEX[n]] == "fit":
            blink_close[i] = calibrate_blink(basis, mf, COEFF_INDEX[n], lids)

    jaw_k = COEFF_INDEX["jawOpen"]
    gx = np.concatenate([s["dx"] for s in samples if s["dataset"] == "grid_s1"])
    n_train = {d: int(sum(len(s["dx"]) for s in train if s["dataset"] == d)) for d in sorted({s["dataset"] for s in train})}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        args.out,
        basis=basis.astype(np.float32), mean_face=mf.astype(np.float32), source=source,
        names=np.array(BLENDSHAPE_NAMES), sample_std=std.astype(np.float32), n_active=n_active.astype(np.int32),
        split_half_cos=cos.astype(np.float32), heldout_r2_gain=gain.astype(np.float32),
        heldout_r2_grid=np.float32(r2_grid), heldout_r2_london=np.float32(r2_london),
        ridge_alpha=np.float32(alpha), ridge_scores=np.array([[a, scores[a]] for a in ALPHAS], np.float32),
        blink_close_value=blink_close.astype(np.float32),
        jawopen_max_measured=np.float32(np.abs(gx[:, jaw_k]).max()),
        train_frames=np.array([f"{d}:{n}" for d, n in n_train.items()]),
        heldout_grid_clips=np.array(sorted(HOLDOUT_CLIPS)),
        thresholds=np.array([ACTIVE, MIN_STD, MIN_ACTIVE, MIN_COS], np.float32),
    )
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KiB): alpha={alpha:g}, "
          f"held-out R2 GRID={r2_grid:.3f} London={r2_london:.3f}, blink closes at {blink_close}")
    print(f"{'coefficient':22s} src   std    n>{ACTIVE}  cos   dR2")
    for k, n in enumerate(BLENDSHAPE_NAMES):
        print(f"{n:22s} {source[k]:5s} {std[k]:.3f} {n_active[k]:6d} {cos[k]:5.2f} {gain[k]:+.4f}")


if __name__ == "__main__":
    main()
