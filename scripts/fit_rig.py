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

from engine import face_geometry as fg  # noqa: E402
from engine.measure import Landmarker, read_video_rgb, shared_dir  # noqa: E402
from engine.rig import RIGID_LANDMARKS, rigid_align  # noqa: E402
from engine.types import BLENDSHAPE_NAMES, COEFF_INDEX, NUM_COEFFS  # noqa: E402

CACHE = ROOT / "build" / "rig_cache"
OUT = ROOT / "engine" / "assets" / "rig.npz"
NL = fg.NUM_LANDMARKS
GRID_STEP = 8  # every 8th s1 clip in name order -> 125 clips
HOLDOUT_EVERY = 5  # every 5th chosen s1 clip and London person is held out for the R^2 check
# Fit/FACS decision (docs/design/rig.md): a coefficient is fitted when its value (minus the reference's)
# exceeds ACTIVE in >= MIN_ACTIVE training samples, its dataset-weighted std is >= MIN_STD, and
# the bases fitted on two disjoint halves of the data agree (cosine >= MIN_COS). Left/Right
# pairs are judged on the pair's mean figures so that both sides come from the same source.
# Finally a fitted coefficient whose column lowers the held-out R^2 (GRID + London) goes to FACS.
ACTIVE, MIN_STD, MIN_ACTIVE, MIN_COS = 0.15, 0.03, 50, 0.6
ALPHAS = (1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3)


# ----------------------------------------------------------------------------- measurement
def _sources(sd: Path) -> list[tuple[str, str, Path, str]]:
    """(dataset, subject, path, kind) for every file measured. kind: video | image | video_up."""
    d = sd / "data"
    out = []
    s1 = sorted((d / "grid" / "s1").glob("*.mp4"))[::GRID_STEP]
    out += [("grid_s1", "s1", p, "video") for p in s1]
    for p in sorted((d / "grid" / "multi_speaker").glob("*.mp4")):
        if p.stem != "bbaf2n":  # byte-identical to s1/bbaf2n
            out.append(("grid_multi", p.stem, p, "video"))
    for p in sorted((d / "expressions" / "london" / "neutral").glob("*.jpg")):
        out.append(("london", p.stem.split("_")[0], p, "image"))
    for p in sorted((d / "expressions" / "london" / "smiling").glob("*.jpg")):
        out.append(("london", p.stem.split("_")[0], p, "image"))
    for p in sorted((d / "expressions" / "cremad").iterdir()):
        if p.suffix in (".flv", ".mp4"):
            out.append(("cremad", p.stem.split("_")[0], p, "video_up"))
    out.append(("pexels", "wolfganglanger", d / "expressions" / "pexels" / "WolfgangLanger_Pexels.mp4", "video"))
    return out


def _cache_path(dataset: str, path: Path) -> Path:
    return CACHE / dataset / f"{path.parent.name}_{path.stem}.npz"


def _measure_file(path: Path, kind: str, image_lm) -> dict:
    import cv2

    if kind == "image":
        frames = [cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)]
        lm, scale = image_lm(), 1.0
    else:
        frames, _ = read_video_rgb(path)
        # CREMA-D faces are ~60 px wide: upscale 3x so the detector and mesh see them.
        scale = 3.0 if kind == "video_up" else 1.0
        lm = Landmarker(mode="video")
    pts = np.zeros((len(frames), NL, 3), np.float32)
    bs = np.zeros((len(frames), NUM_COEFFS), np.float32)
    ok = np.zeros(len(frames), bool)
    try:
        for i, rgb in enumerate(frames):
            if scale != 1.0:
                rgb = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
            m = lm.detect(rgb) if kind == "image" else lm.detect(rgb, timestamp_ms=i * 40)
            if m is not None:
                pts[i], bs[i], ok[i] = m.landmarks / scale, m.blendshapes, True
    finally:
        if kind != "image":
            lm.close()
    return {"landmarks": pts, "blendshapes": bs, "ok": ok}


def measure_all(sd: Path) -> list[dict]:
    """Measure (or load from cache) every source; one record per file."""
    srcs = _sources(sd)
    recs = []
    still: list[Landmarker] = []

    def image_lm() -> Landmarker:  # created only when a still is not cached yet
        if not still:
            still.append(Landmarker(mode="image"))
        return still[0]

    try:
        for dataset, subject, path, kind in tqdm(srcs, desc="measure", unit="file"):
            cp = _cache_path(dataset, path)
            if cp.exists():
                z = dict(np.load(cp))
            else:
                z = _measure_file(path, kind, image_lm)
                cp.parent.mkdir(parents=True, exist_ok=True)
                np.savez_compressed(cp, **z)
            recs.append({"dataset": dataset, "subject": subject, "name": path.stem,
                         "folder": path.parent.name, **z})
    finally:
        for lm in still:
            lm.close()
    return recs


# ----------------------------------------------------------------------------- samples
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


HOLDOUT_CLIPS: set[str] = set()


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


# ----------------------------------------------------------------------------- regions
def side_sign(name: str) -> int:
    """+1 for the subject's-left coefficients (face x > 0: MediaPipe 'Left' = subject's left), -1 right, 0 both."""
    if name.endswith("Left") and name not in ("jawLeft", "mouthLeft"):
        return 1
    if name.endswith("Right") and name not in ("jawRight", "mouthRight"):
        return -1
    return 0


def regions(mf: np.ndarray) -> np.ndarray:
    """(52, 478) bool: where each coefficient may move landmarks (anatomy + side)."""
    x, y = mf[:, 0], mf[:, 1]
    eye_c = {1: mf[list(fg.EYE_L)].mean(0), -1: mf[list(fg.EYE_R)].mean(0)}
    iris = {1: list(fg.IRIS_L), -1: list(fg.IRIS_R)}
    out = np.zeros((NUM_COEFFS, NL), bool)
    for k, n in enumerate(BLENDSHAPE_NAMES):
        sg = side_sign(n)
        side = np.ones(NL, bool) if sg == 0 else (sg * x > -0.06)
        if n.startswith("brow"):
            m = y < 0.1
        elif n.startswith("eye"):
            rad = 0.25 if n.startswith("eyeLook") else 0.4 if n.startswith("eyeSquint") else 0.3
            m = np.linalg.norm(mf[:, :2] - eye_c[sg][:2], axis=1) < rad
            m[iris[sg]] = True
            m[iris[-sg]] = False
        elif n.startswith("cheekSquint"):
            m = (y > -0.1) & (y < 0.8)
        elif n.startswith("noseSneer"):
            m = (y > -0.3) & (y < 0.95)
        else:  # jaw*, mouth*, cheekPuff, tongueOut: lower face
            m = y > 0.3
        out[k] = m & side
    # Frames are rigidly aligned on these, so the data holds no motion for them: keep them still.
    out[:, list(RIGID_LANDMARKS)] = False
    return out


# ----------------------------------------------------------------------------- ridge fit
def fit_basis(x, y, w, fit_idx, region, alpha: float) -> np.ndarray:
    """Ridge fit per landmark over the coefficients whose region holds it. -> (52, 478, 3).

    lambda = alpha * mean weighted second moment of the fitted coefficients, so alpha is
    scale-free across datasets and weightings.
    """
    xw = x * w[:, None]
    g = xw.T @ x
    h = xw.T @ y
    lam = alpha * float(np.mean(np.diag(g)[fit_idx]))
    basis = np.zeros((NUM_COEFFS, NL, 3))
    fit_set = np.zeros(NUM_COEFFS, bool)
    fit_set[fit_idx] = True
    for j in range(NL):
        a = np.flatnonzero(region[:, j] & fit_set)
        if len(a) == 0:
            continue
        basis[a, j] = np.linalg.solve(g[np.ix_(a, a)] + lam * np.eye(len(a)), h[a, 3 * j:3 * j + 3])
    return basis


def r2(x, y, basis) -> float:
    """1 - SSE / SS of the displacements (baseline: predicting no displacement)."""
    pred = x @ basis.reshape(NUM_COEFFS, -1)
    return float(1.0 - ((y - pred) ** 2).sum() / (y ** 2).sum())


# ----------------------------------------------------------------------------- FACS
# Lip and lid landmark groups (MediaPipe mesh; subject's right = image-left = face x < 0).
UPPER_OUT = (185, 40, 39, 37, 0, 267, 269, 270, 409)
UPPER_IN = (191, 80, 81, 82, 13, 312, 311, 310, 415)
LOWER_OUT = (146, 91, 181, 84, 17, 314, 405, 321, 375)
LOWER_IN = (95, 88, 178, 87, 14, 317, 402, 318, 324)
LIPS = UPPER_OUT + UPPER_IN + LOWER_OUT + LOWER_IN + (61, 291, 78, 308)
# Subject's-right anchors; the subject's-left ones are their mirror images.
R_BROW_INNER, R_BROW_OUTER = (107, 66, 105, 55, 65, 52), (70, 63, 46, 53)
R_UPPER_LID = tuple(u for u, _ in fg.EYE_R_LIDS)
R_LOWER_LID = tuple(d for _, d in fg.EYE_R_LIDS)
R_CHEEK = (50, 117, 118, 101, 205, 36, 187)
R_ALA = (98, 64, 129, 49, 102, 48)
R_CORNER = (61, 78)


def mirror_map(mf: np.ndarray) -> np.ndarray:
    """Index of each landmark's mirror image across the face's midline (nearest neighbour)."""
    flipped = mf * np.array([-1.0, 1.0, 1.0])
    return np.argmin(((mf[:, None] - flipped[None]) ** 2).sum(-1), axis=0)


def _spread(mf, anchors, vectors, radius, mask=None) -> np.ndarray:
    """Each landmark takes its nearest anchor's vector, fading with distance (Gaussian, radius)."""
    a = np.asarray(anchors)
    v = np.broadcast_to(np.asarray(vectors, np.float64), (len(a), 3))
    d = np.linalg.norm(mf[:, None, :2] - mf[None, a, :2], axis=-1)
    near = d.argmin(1)
    wgt = np.exp(-0.5 * (d.min(1) / radius) ** 2)
    if mask is not None:
        wgt = wgt * mask
    return wgt[:, None] * v[near]


def _jaw_weight(mf) -> np.ndarray:
    """How much a landmark rides on the mandible: 0 above the lip line, 1 from the lower lip's base down."""
    return np.clip((mf[:, 1] - mf[13, 1]) / (mf[17, 1] - mf[13, 1]), 0.0, 1.0)


def facs_displacement(name: str, mf: np.ndarray, mirror: np.ndarray) -> np.ndarray:
    """Hand-derived (478, 3) displacement at coefficient 1 from the FACS action unit(s) behind `name`.

    Magnitudes are in face units (1 unit ~ 9 cm between the outer eye corners, so 0.03 ~ 3 mm)."""
    sg = side_sign(name)
    o = sg if sg else 1  # outward x direction of the coefficient's side
    side = np.ones(NL) if sg == 0 else (sg * mf[:, 0] > -0.06).astype(float)

    def ids(r_ids):  # anchors of this side
        return tuple(mirror[list(r_ids)]) if sg > 0 else tuple(r_ids)

    base = name[:-4] if sg > 0 else name[:-5] if sg < 0 else name
    upper_lid, lower_lid = ids(R_UPPER_LID), ids(R_LOWER_LID)
    corner = ids(R_CORNER)
    iris = list(fg.IRIS_L if sg > 0 else fg.IRIS_R)
    jaw = _jaw_weight(mf)
    d = np.zeros((NL, 3))
    if base == "browDown":  # AU4: brows lowered and drawn together
        d = _spread(mf, ids(R_BROW_INNER), (-o * 0.02, 0.045, 0), 0.1, side)
    elif base == "browInnerUp":  # AU1
        d = _spread(mf, R_BROW_INNER + tuple(mirror[list(R_BROW_INNER)]), (0, -0.05, 0), 0.1)
    elif base == "browOuterUp":  # AU2
        d = _spread(mf, ids(R_BROW_OUTER), (0, -0.05, 0), 0.1, side)
    elif base == "cheekPuff":  # AU34: cheeks blown out sideways and forward
        cheeks = R_CHEEK + tuple(mirror[list(R_CHEEK)])
        d = _spread(mf, cheeks, (0, 0, -0.03), 0.15)
        d[:, 0] = np.sign(mf[:, 0]) * 0.05 * np.abs(d[:, 2]) / 0.03
    elif base == "cheekSquint":  # AU6: cheeks raised, lower lid pushed up
        d = _spread(mf, ids(R_CHEEK), (0, -0.035, -0.01), 0.12, side) + _spread(mf, lower_lid, (0, -0.015, 0), 0.05, side)
    elif base == "eyeBlink":  # AU45: upper lid onto the lower lid
        vec = mf[list(lower_lid)] - mf[list(upper_lid)]
        d = _spread(mf, upper_lid, vec, 0.06, side)
        d[list(lower_lid)] = 0
    elif base.startswith("eyeLook"):  # eyeball rotation: iris moves, the upper lid follows vertically
        v = {"eyeLookIn": (-o * 0.09, 0, 0), "eyeLookOut": (o * 0.09, 0, 0),
             "eyeLookUp": (0, -0.06, 0), "eyeLookDown": (0, 0.06, 0)}[base]
        d[iris] = v
        d += _spread(mf, upper_lid, (0, 0.4 * v[1], 0), 0.05, side)
    elif base == "eyeSquint":  # AU7: lids tightened, mostly the lower lid rising
        d = _spread(mf, lower_lid, (0, -0.03, 0), 0.05, side) + _spread(mf, upper_lid, (0, 0.01, 0), 0.04, side)
    elif base == "eyeWide":  # AU5: upper lid raised
        d = _spread(mf, upper_lid, (0, -0.035, 0), 0.06, side)
        d[iris] = 0
    elif base == "jawForward":  # AU29
        d = jaw[:, None] * np.array([0, 0.01, -0.07])
    elif name in ("jawLeft", "jawRight"):  # AU30: mandible slides sideways
        d = jaw[:, None] * np.array([(1 if name == "jawLeft" else -1) * 0.06, 0, 0])
    elif base == "jawOpen":  # AU26/27: mandible drops and swings back
        d = jaw[:, None] * np.array([0, 0.3, 0.08])
    elif base == "mouthClose":  # lips meet over an open jaw
        d = _spread(mf, UPPER_OUT + UPPER_IN, (0, 0.02, 0), 0.05) + _spread(mf, LOWER_OUT + LOWER_IN, (0, -0.04, 0), 0.05)
    elif base == "mouthDimple":  # AU14: corners pulled back and in
        d = _spread(mf, corner, (o * 0.015, 0, 0.03), 0.08, side)
    elif base == "mouthFrown":  # AU15: corners pulled down
        d = _spread(mf, corner, (0, 0.04, 0), 0.09, side)
    elif base == "mouthFunnel":  # AU22: lips flared forward, mouth narrowed and slightly open
        d = _spread(mf, LIPS, (0, 0, -0.04), 0.05) + _spread(mf, (61, 78), (0.03, 0, 0), 0.06) \
            + _spread(mf, (291, 308), (-0.03, 0, 0), 0.06) + _spread(mf, LOWER_IN + LOWER_OUT, (0, 0.02, 0), 0.04)
    elif name in ("mouthLeft", "mouthRight"):  # whole mouth pulled sideways
        d = _spread(mf, LIPS, ((1 if name == "mouthLeft" else -1) * 0.06, 0, 0), 0.12)
    elif base == "mouthLowerDown":  # AU16: lower lip pulled down on one side
        lo = tuple(i for i in LOWER_OUT + LOWER_IN if sg * mf[i, 0] > -0.06)
        d = _spread(mf, lo, (0, 0.04, 0), 0.06, side)
    elif base == "mouthPress":  # AU24: lips pressed together and thinned
        d = _spread(mf, UPPER_OUT, (0, 0.015, 0), 0.04, side) + _spread(mf, LOWER_OUT, (0, -0.015, 0), 0.04, side)
    elif base == "mouthPucker":  # AU18: lips pushed forward, corners drawn in
        d = _spread(mf, LIPS, (0, 0, -0.04), 0.05) + _spread(mf, (61, 78), (0.06, 0, 0), 0.07) \
            + _spread(mf, (291, 308), (-0.06, 0, 0), 0.07)
    elif base == "mouthRollLower":  # AU28: lower lip rolled in over the teeth
        d = _spread(mf, LOWER_OUT, (0, -0.03, 0.03), 0.04)
    elif base == "mouthRollUpper":
        d = _spread(mf, UPPER_OUT, (0, 0.03, 0.03), 0.04)
    elif base == "mouthShrugLower":  # AU17: chin boss and lower lip pushed up
        d = jaw[:, None] * np.array([0, -0.03, -0.01])
    elif base == "mouthShrugUpper":
        d = _spread(mf, UPPER_OUT + UPPER_IN, (0, -0.02, -0.005), 0.05)
    elif base == "mouthSmile":  # AU12: corners pulled up and out, cheek lifted
        d = _spread(mf, corner, (o * 0.05, -0.05, 0.02), 0.1, side) + _spread(mf, ids(R_CHEEK), (0, -0.02, 0), 0.1, side)
    elif base == "mouthStretch":  # AU20: corners pulled straight out
        d = _spread(mf, corner, (o * 0.05, 0.02, 0), 0.1, side)
    elif base == "mouthUpperUp":  # AU10: upper lip raised on one side
        up = tuple(i for i in UPPER_OUT + UPPER_IN if sg * mf[i, 0] > -0.06)
        d = _spread(mf, up, (0, -0.035, 0), 0.06, side)
    elif base == "noseSneer":  # AU9: nose wings and upper lip up, brow slightly down
        d = _spread(mf, ids(R_ALA), (0, -0.03, 0), 0.07, side) + _spread(mf, ids(R_BROW_INNER), (0, 0.015, 0), 0.08, side) \
            + _spread(mf, lower_lid, (0, -0.01, 0), 0.04, side)
    elif base == "tongueOut":  # AU19 with AU25/26: lips part and the jaw drops a little
        d = jaw[:, None] * np.array([0, 0.04, 0]) + _spread(mf, LOWER_IN + LOWER_OUT, (0, 0.03, -0.02), 0.05)
    else:
        raise KeyError(f"no FACS description for {name}")
    return d


# ----------------------------------------------------------------------------- calibration
def calibrate_blink(basis: np.ndarray, mf: np.ndarray, k: int, lids) -> float:
    """Scale a fitted blink so the lids meet at 1 (ARKit: eyeBlink=1 is a closed eye), then put
    every upper-lid point exactly on its lower-lid partner. Returns the coefficient value at which
    the raw fit closed the eye (MediaPipe's scale)."""
    up, lo = [u for u, _ in lids], [d for _, d in lids]
    gap0 = (mf[lo, 1] - mf[up, 1])[2:5].mean()
    dgap = (basis[k, lo, 1] - basis[k, up, 1])[2:5].mean()
    if dgap >= 0:
        raise RuntimeError(f"fitted {BLENDSHAPE_NAMES[k]} does not close the eye")
    s = -gap0 / dgap
    basis[k] *= s
    basis[k, up] = (mf[lo] + basis[k, lo]) - mf[up]
    return 1.0 / s


def _pair_mean(v: np.ndarray, k: int) -> float:
    """v[k], averaged with the mirror coefficient's value for Left/Right pairs."""
    n = BLENDSHAPE_NAMES[k]
    for a, b in (("Left", "Right"), ("Right", "Left")):
        if n.endswith(a) and n[: -len(a)] + b in COEFF_INDEX:
            return 0.5 * float(v[k] + v[COEFF_INDEX[n[: -len(a)] + b]])
    return float(v[k])


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
    cand = [k for k in range(NUM_COEFFS) if _pair_mean(std, k) >= MIN_STD and _pair_mean(n_active, k) >= MIN_ACTIVE]

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
    fit_idx = [k for k in cand if _pair_mean(cos, k) >= MIN_COS]

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
    keep = [k for k in fit_idx if _pair_mean(gain, k) >= 0.0]
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
