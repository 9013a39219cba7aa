"""Proof of the neural mouth on people it never saw: every figure rendered without and with it.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/mouth/evaluate.py [--proof 1 2 3 4 5] [--limit N]
        [--frames 150] [--out out/mouth/eval.json] [--images docs/design/images]

Held out from the generator's training (scripts/mouth/build_data.py): London people whose
number is a multiple of 5, the talking videos wda_hill and wda_swalwell, GRID lrwp9a and
swiz3n. Each avatar gets two renderers, `renderers.create("meshwarp", avatar,
neural_mouth=False|True)`; everything else about them is the same.

1. Smile -> neutral: the avatar of a held-out person's smiling photo rendered at the
   neutral state, against the same person's real neutral photo: re-detected smile
   (mean of mouthSmileLeft/Right, Face Landmarker), FER-2013 happy probability, and
   PSNR / SSIM of the mouth region after the real photo is moved onto the render by a
   similarity fitted on the eye corners and nose bridge.
2. Neutral -> smile: the avatar of the neutral photo rendered happy at k = 1 against the
   real smiling photo: mouth width, mouth opening and teeth visibility, render vs real.
3. Every emotion: FER-2013 top-1 at k = 1 on held-out smiling and neutral portraits, and
   monotonicity of the intended class over k.
4. Speech: held-out speakers' videos re-rendered from the face states tracked on each
   frame (engine/diffusion/track.py), mouth-region PSNR / SSIM against the real frames,
   the inner-lip gap where the real mouth is most closed, and the frame-to-frame change
   of a repeated neutral state.
5. Contact sheets in docs/design/images/ (neural-mouth-*.jpg).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts" / "emotion"))

from engine.diffusion.metrics import psnr, ssim_map  # noqa: E402
from engine.face_geometry import (FACE_OVAL, LIPS_INNER, LIPS_OUTER, MOUTH_CORNER_L, MOUTH_CORNER_R,  # noqa: E402
                                  STABLE_LANDMARKS, eye_distance, mouth_opening)
from engine.types import BLENDSHAPE_NAMES, NUM_COEFFS, FaceState  # noqa: E402

SMILE = (BLENDSHAPE_NAMES.index("mouthSmileLeft"), BLENDSHAPE_NAMES.index("mouthSmileRight"))
SMILE_TOL = 0.15  # re-detected smile within this of the real neutral photo's counts as "as neutral as the person"
HAPPY_MAX = 0.4  # FER happy probability below this: the render no longer reads as smiling
MOUTH_EXPAND = 1.5  # mouth region: the outer lips' box, grown by this factor about its centre
# Teeth: bright, nearly grey pixels inside the inner lips (lips and the mouth's shadow are saturated or dark).
TEETH_MIN_VALUE = 120
TEETH_MAX_SAT = 80
KS = (0.0, 0.25, 0.5, 0.75, 1.0)
MONO_TOL = 0.05
FER_EMOTIONS = ("angry", "disgusted", "fear", "happy", "sad", "surprised")
HELD_OUT_VIDEOS = {"wda_hill": "data/talking/wda_hill.mp4", "wda_swalwell": "data/talking/wda_swalwell.mp4",
                   "lrwp9a": "data/grid/multi_speaker/lrwp9a.mp4", "swiz3n": "data/grid/multi_speaker/swiz3n.mp4"}
HELD_OUT_GRID_PORTRAITS = ("grid_lrwp9a", "grid_swiz3n")  # the other GRID speakers trained the generator
SHEET_EMOTIONS = ("neutral", "happy", "sad", "angry", "surprised", "disgusted")
CELL = 160
SHEET_MAX_BYTES = 150_000
MODES = (("without", False), ("with", True))


# ---------------------------------------------------------------- measuring helpers (pure, tested)

def region_scores(a: np.ndarray, b: np.ndarray, box: tuple[int, int, int, int], pad: int = 8) -> dict[str, float]:
    """PSNR and SSIM of two same-size images inside box (x0, y0, x1, y1). SSIM is computed on the box plus
    `pad` pixels of context, so its window sees real neighbours at the box edge rather than a mirror."""
    x0, y0, x1, y1 = box
    h, w = a.shape[:2]
    px0, py0, px1, py1 = max(x0 - pad, 0), max(y0 - pad, 0), min(x1 + pad, w), min(y1 + pad, h)
    s = ssim_map(a[py0:py1, px0:px1], b[py0:py1, px0:px1])[y0 - py0:y1 - py0, x0 - px0:x1 - px0]
    return {"psnr": psnr(a[y0:y1, x0:x1], b[y0:y1, x0:x1]), "ssim": float(s.mean())}


def expanded_box(pts: np.ndarray, shape: tuple[int, ...], factor: float = MOUTH_EXPAND) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1): the points' box grown by `factor` about its centre, clipped to an image of `shape`."""
    p = np.asarray(pts, np.float64)[:, :2]
    c, half = (p.min(0) + p.max(0)) / 2, (p.max(0) - p.min(0)) / 2 * factor
    h, w = shape[:2]
    x0, y0 = np.floor(c - half).astype(int)
    x1, y1 = np.ceil(c + half).astype(int) + 1
    return max(int(x0), 0), max(int(y0), 0), min(int(x1), w), min(int(y1), h)


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """2x3 least-squares similarity (rotation, uniform scale, translation; no reflection) taking src onto dst."""
    s, d = np.asarray(src, np.float64)[:, :2], np.asarray(dst, np.float64)[:, :2]
    cs, cd = s.mean(0), d.mean(0)
    s0, d0 = s - cs, d - cd
    u, sig, vt = np.linalg.svd(d0.T @ s0)
    e = np.diag([1.0, np.sign(np.linalg.det(u @ vt))])
    r = u @ e @ vt
    k = float(np.trace(np.diag(sig) @ e) / max((s0 ** 2).sum(), 1e-12))
    return np.c_[k * r, cd - k * r @ cs]


def mouth_width(lm: np.ndarray) -> float:
    """Lip-corner distance over outer-eye distance."""
    return float(np.linalg.norm(np.asarray(lm[MOUTH_CORNER_R, :2], np.float64) - lm[MOUTH_CORNER_L, :2])
                 / max(eye_distance(lm), 1e-9))


def polygon_mask(shape: tuple[int, ...], pts: np.ndarray) -> np.ndarray:
    """Pixels whose centres lie inside the polygon. Unlike cv2.fillPoly, which always draws the outline,
    a closed mouth (inner lips on one line) covers no pixel."""
    from matplotlib.path import Path as PolyPath

    p = np.asarray(pts, np.float64)[:, :2]
    h, w = shape[:2]
    out = np.zeros((h, w), bool)
    x0, y0 = np.clip(np.floor(p.min(0)).astype(int), 0, (w, h))
    x1, y1 = np.clip(np.ceil(p.max(0)).astype(int) + 1, 0, (w, h))
    if x0 >= x1 or y0 >= y1:
        return out
    yy, xx = np.mgrid[y0:y1, x0:x1]
    inside = PolyPath(p).contains_points(np.c_[xx.ravel(), yy.ravel()])
    out[y0:y1, x0:x1] = inside.reshape(yy.shape)
    return out


def teeth_fraction(rgb: np.ndarray, lm: np.ndarray) -> float:
    """Fraction of the inner-lip polygon that is bright and unsaturated (teeth), 0 for a closed mouth;
    relative to the outer-lip area, so a thin slit of teeth counts as little."""
    inner = polygon_mask(rgb.shape, lm[list(LIPS_INNER)])
    outer = polygon_mask(rgb.shape, lm[list(LIPS_OUTER)])
    if not outer.any():
        return 0.0
    hsv = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2HSV)
    teeth = inner & (hsv[..., 2] >= TEETH_MIN_VALUE) & (hsv[..., 1] <= TEETH_MAX_SAT)
    return float(teeth.sum() / outer.sum())


def smile(blendshapes: np.ndarray) -> float:
    return float(np.mean([blendshapes[i] for i in SMILE]))


def monotone(values, tol: float = MONO_TOL) -> bool:
    v = [x for x in values if x is not None and np.isfinite(x)]
    return len(v) == len(values) and all(b >= a - tol for a, b in zip(v, v[1:]))


def mean_abs_change(frames: list[np.ndarray]) -> float:
    """Mean absolute change between consecutive frames, grey levels (0 for a still, repeatable render)."""
    if len(frames) < 2:
        return 0.0
    return float(np.mean([np.abs(a.astype(np.int16) - b.astype(np.int16)).mean() for a, b in zip(frames, frames[1:])]))


def face_cell(rgb: np.ndarray, lm: np.ndarray, side: int = CELL, grow: float = 1.2) -> np.ndarray:
    """A square cell of the face: the face oval's box grown by `grow`, resized to side x side."""
    p = np.asarray(lm, np.float64)[list(FACE_OVAL), :2]
    c, half = (p.min(0) + p.max(0)) / 2, (p.max(0) - p.min(0)).max() / 2 * grow
    k = side / (2 * half)
    m = np.array([[k, 0, side / 2 - k * c[0]], [0, k, side / 2 - k * c[1]]])
    return cv2.warpAffine(rgb, m, (side, side), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)


def label(cell: np.ndarray, text: str) -> np.ndarray:
    out = cell.copy()
    for colour, width in (((0, 0, 0), 3), ((255, 255, 255), 1)):
        cv2.putText(out, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.42, colour, width, cv2.LINE_AA)
    return out


def save_sheet(rgb: np.ndarray, path: Path, quality: int = 85, max_bytes: int = SHEET_MAX_BYTES) -> int:
    """Write a JPEG of at most max_bytes: lower quality first (down to 60), then a smaller picture."""
    img = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    while True:
        for q in range(quality, 59, -5):
            ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, q])
            if ok and len(buf) <= max_bytes:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(buf.tobytes())
                return len(buf)
        img = cv2.resize(img, None, fx=0.85, fy=0.85, interpolation=cv2.INTER_AREA)


# ---------------------------------------------------------------- renderers and data

def make_renderers(avatar, **options) -> dict[bool, object]:
    """The avatar's meshwarp renderer without (False) and with (True) the neural mouth."""
    from engine.renderers import create

    return {flag: create("meshwarp", avatar, neural_mouth=flag, **options) for _, flag in MODES}


def mouth_status(renderers: dict[bool, object]) -> str:
    nm = getattr(renderers[True], "neural_mouth", None)
    if nm is None:
        return "absent"
    return "on" if nm.enabled else f"off: {nm.reason}"


def read_rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def london_pairs(limit: int | None) -> list[tuple[str, Path, Path]]:
    """(person, neutral photo, smiling photo) of every held-out London person with both photos."""
    from make_neutral_reference import london

    smiling = {p.name[:3]: p for p in london("smiling", held_out=True)}
    pairs = [(p.name[:3], p, smiling[p.name[:3]]) for p in london("neutral", held_out=True) if p.name[:3] in smiling]
    return pairs[:limit] if limit else pairs


class Measure:
    """Face Landmarker (still images) and the FER-2013 classifier, created once."""

    def __init__(self, fer: bool = True):
        from engine.measure import Landmarker

        self.lm = Landmarker(mode="image")
        self._fer = None
        if fer:
            from engine.emotion.fer_eval import FerClassifier

            self._fer = FerClassifier(crop="mesh")

    def detect(self, rgb: np.ndarray):
        return self.lm.detect(np.ascontiguousarray(rgb))

    def fer(self, rgb: np.ndarray) -> dict[str, float] | None:
        return self._fer.classify(rgb)


def onto(real: np.ndarray, real_lm: np.ndarray, ref_lm: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The real photo moved onto a render by the similarity of their stable landmarks."""
    m = similarity(real_lm[list(STABLE_LANDMARKS)], ref_lm[list(STABLE_LANDMARKS)])
    return cv2.warpAffine(real, m, (shape[1], shape[0]), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)


def status_line(statuses: list[str]) -> str:
    """How many avatars the neural mouth served, and why it refused the others."""
    off = sorted({s for s in statuses if s != "on"})
    return (f"Neural mouth on for {sum(s == 'on' for s in statuses)}/{len(statuses)} avatars"
            + (f" ({'; '.join(off)})" if off else "") + ".")


def _fmt(x, spec=".3f") -> str:
    return "–" if x is None or (isinstance(x, float) and not np.isfinite(x)) else format(x, spec)


def _mean(xs) -> float:
    v = [x for x in xs if x is not None and np.isfinite(x)]
    return float(np.mean(v)) if v else float("nan")


def _frac(flags) -> tuple[int, int]:
    v = [f for f in flags if f is not None]
    return sum(bool(f) for f in v), len(v)


# ---------------------------------------------------------------- proofs

def paired_people(meas: Measure, limit: int | None, source: str):
    """Per held-out London person: (person, avatar of the `source` photo, its renderers without / with,
    the other photo, its detection); people whose other photo shows no face are left out."""
    from engine.avatar import create_avatar

    for person, neutral_path, smiling_path in london_pairs(limit):
        photo, other = (smiling_path, neutral_path) if source == "smiling" else (neutral_path, smiling_path)
        av = create_avatar(photo, size=512)
        rs = make_renderers(av)
        real = read_rgb(other)
        real_m = meas.detect(real)
        if real_m is not None:
            yield person, av, rs, real, real_m


def proof_smile_to_neutral(meas: Measure, limit: int | None) -> tuple[dict, str]:
    rows = []
    for person, av, rs, real, real_m in paired_people(meas, limit, "smiling"):
        row = {"person": person, "neural_mouth": mouth_status(rs), "smile_real": smile(real_m.blendshapes)}
        renders = {"photo": av.image}
        renders.update({name: rs[flag].render(FaceState.neutral()) for name, flag in MODES})
        for name, img in renders.items():
            m = meas.detect(img)
            if m is None:
                row[name] = None
                continue
            aligned = onto(real, real_m.landmarks, m.landmarks, img.shape)
            box = expanded_box(m.landmarks[list(LIPS_OUTER)], img.shape)
            p = meas.fer(img)
            row[name] = {"smile": smile(m.blendshapes), "happy": None if p is None else p["happy"],
                         **region_scores(img, aligned, box)}
        rows.append(row)
        print(f"proof 1: {person} ({row['neural_mouth']})", file=sys.stderr)
    summary = {}
    lines = ["### 1. Smile → neutral (held-out London people: smiling photo rendered neutral vs real neutral photo)",
             "", f"{len(rows)} people; smile = mean mouthSmileLeft/Right re-detected; mouth region = outer-lip box "
             f"×{MOUTH_EXPAND} of the render, the real photo aligned onto it by a similarity on the eye corners and "
             "nose bridge. " + status_line([r["neural_mouth"] for r in rows]), "",
             f"| frame | smile (real neutral {_fmt(_mean(r['smile_real'] for r in rows))}) | within {SMILE_TOL} of real "
             f"| FER happy | happy < {HAPPY_MAX} | mouth PSNR dB | mouth SSIM |", "|---|---|---|---|---|---|---|"]
    for name, title in (("photo", "smiling photo itself"), ("without", "render without neural mouth"),
                        ("with", "render with neural mouth")):
        ok = [r for r in rows if r.get(name)]
        within = _frac(abs(r[name]["smile"] - r["smile_real"]) <= SMILE_TOL for r in ok)
        calm = _frac(None if r[name]["happy"] is None else r[name]["happy"] < HAPPY_MAX for r in ok)
        s = {"smile": _mean(r[name]["smile"] for r in ok), "smile_within": within, "happy": _mean(r[name]["happy"] for r in ok),
             "happy_below": calm, "psnr": _mean(r[name]["psnr"] for r in ok), "ssim": _mean(r[name]["ssim"] for r in ok)}
        summary[name] = s
        lines.append(f"| {title} | {_fmt(s['smile'])} | {within[0]}/{within[1]} | {_fmt(s['happy'])} | {calm[0]}/{calm[1]} "
                     f"| {_fmt(s['psnr'], '.2f')} | {_fmt(s['ssim'])} |")
    return {"summary": summary, "people": rows}, "\n".join(lines)


def proof_neutral_to_smile(meas: Measure, limit: int | None) -> tuple[dict, str]:
    from engine.emotion.mixing import apply_emotion

    happy = apply_emotion(FaceState.neutral(), {"happy": 1.0}, 1.0)
    rows = []
    for person, _, rs, real, real_m in paired_people(meas, limit, "neutral"):
        lm = real_m.landmarks
        row = {"person": person, "neural_mouth": mouth_status(rs),
               "real": {"width": mouth_width(lm), "opening": mouth_opening(lm), "teeth": teeth_fraction(real, lm)}}
        for name, flag in MODES:
            img = rs[flag].render(happy)
            m = meas.detect(img)
            row[name] = None if m is None else {"width": mouth_width(m.landmarks), "opening": mouth_opening(m.landmarks),
                                                "teeth": teeth_fraction(img, m.landmarks)}
        rows.append(row)
        print(f"proof 2: {person} ({row['neural_mouth']})", file=sys.stderr)
    lines = ["### 2. Neutral → smile (held-out London people: neutral photo rendered happy k=1 vs real smiling photo)", "",
             f"{len(rows)} people; width = lip-corner distance / outer-eye distance; opening = inner-lip gap / "
             f"outer-eye distance; teeth = bright (V ≥ {TEETH_MIN_VALUE}), grey (S ≤ {TEETH_MAX_SAT}) pixels inside the "
             "inner lips / outer-lip area. Mean values, and mean |render − real| per person. "
             + status_line([r["neural_mouth"] for r in rows]), "",
             "| frame | width | \\|Δ width\\| | opening | \\|Δ opening\\| | teeth | \\|Δ teeth\\| |", "|---|---|---|---|---|---|---|"]
    summary = {"real": {k: _mean(r["real"][k] for r in rows) for k in ("width", "opening", "teeth")}}
    lines.append(f"| real smiling photo | {_fmt(summary['real']['width'])} | – | {_fmt(summary['real']['opening'])} | – "
                 f"| {_fmt(summary['real']['teeth'])} | – |")
    for name, _ in MODES:
        ok = [r for r in rows if r.get(name)]
        s = {}
        for k in ("width", "opening", "teeth"):
            s[k] = _mean(r[name][k] for r in ok)
            s["abs_diff_" + k] = _mean(abs(r[name][k] - r["real"][k]) for r in ok)
        summary[name] = s
        lines.append(f"| render {name} neural mouth | {_fmt(s['width'])} | {_fmt(s['abs_diff_width'])} | {_fmt(s['opening'])} "
                     f"| {_fmt(s['abs_diff_opening'])} | {_fmt(s['teeth'])} | {_fmt(s['abs_diff_teeth'])} |")
    return {"summary": summary, "people": rows}, "\n".join(lines)


def emotion_sources(limit: int | None) -> dict[str, dict[str, Path | None]]:
    """Held-out portraits by kind: smiling (London smiling photos, the default avatar) and neutral."""
    from eval_fer import portrait_paths
    from engine.measure import shared_dir
    from make_neutral_reference import london

    sd = shared_dir()
    smiling = {"default": None, **{f"london_{p.name[:3]}_smiling": p for p in london("smiling", held_out=True)}}
    neutral = {}
    for s in ("neutral", "fresh"):
        for n, p in portrait_paths(s, sd).items():
            if not n.startswith("grid_") or n in HELD_OUT_GRID_PORTRAITS:
                neutral[n] = p
    if limit:
        smiling = dict(list(smiling.items())[:limit])
        neutral = dict(list(neutral.items())[:limit])
    return {"smiling": smiling, "neutral": neutral}


def proof_emotions(meas: Measure, limit: int | None) -> tuple[dict, str]:
    from engine.avatar import create_avatar, load_avatar
    from engine.emotion.fer_eval import TO_FER
    from engine.emotion.mixing import apply_emotion

    probs: dict = {}
    status: dict = {}
    for group, paths in emotion_sources(limit).items():
        probs[group] = {}
        for name, path in paths.items():
            av = load_avatar(None, size=512) if path is None else create_avatar(path, size=512)
            rs = make_renderers(av)
            status[name] = mouth_status(rs)
            probs[group][name] = {mode: {e: [meas.fer(rs[flag].render(apply_emotion(FaceState.neutral(), {e: 1.0}, k)))
                                             for k in KS] for e in FER_EMOTIONS} for mode, flag in MODES}
            print(f"proof 3: {group} {name} ({status[name]})", file=sys.stderr)

    def top1(p, e):
        return None if p is None else max(p, key=p.get) == TO_FER[e]

    lines = ["### 3. Every emotion at k = 1 (FER-2013 top-1) and monotonicity over k = " + ", ".join(f"{k:g}" for k in KS), "",
             f"Monotone: the intended class's probability never falls by more than {MONO_TOL} from one k to the next. "
             + status_line(list(status.values())), "",
             "| sources | neural mouth | " + " | ".join(FER_EMOTIONS) + " | top-1 all | monotone all |",
             "|---|---|" + "---|" * (len(FER_EMOTIONS) + 2)]
    summary: dict = {}
    for group in probs:
        names = list(probs[group])
        for mode, _ in MODES:
            cells, wins_all, mono_all = [], [0, 0], [0, 0]
            per: dict = {}
            for e in FER_EMOTIONS:
                w = _frac(top1(probs[group][n][mode][e][-1], e) for n in names)
                mono = _frac(monotone([None if p is None else p[TO_FER[e]] for p in probs[group][n][mode][e]]) for n in names)
                per[e] = {"top1": w, "monotone": mono}
                cells.append(f"{w[0]}/{w[1]}")
                wins_all = [wins_all[0] + w[0], wins_all[1] + w[1]]
                mono_all = [mono_all[0] + mono[0], mono_all[1] + mono[1]]
            summary.setdefault(group, {})[mode] = {"per_emotion": per, "top1": wins_all, "monotone": mono_all}
            lines.append(f"| {group} ({len(names)}) | {mode} | " + " | ".join(cells)
                         + f" | {wins_all[0]}/{wins_all[1]} ({wins_all[0] / max(wins_all[1], 1):.0%}) "
                         f"| {mono_all[0]}/{mono_all[1]} ({mono_all[0] / max(mono_all[1], 1):.0%}) |")
    lines.append("\nPortraits: " + "; ".join(f"{g}: {', '.join(probs[g])}" for g in probs))
    return {"summary": summary, "neural_mouth": status, "probs": probs}, "\n".join(lines)


def proof_speech(meas: Measure, limit: int | None, frames_per: int, keep: dict) -> tuple[dict, str]:
    from engine.avatar import avatar_from_image
    from engine.diffusion.track import pick_reference, track_frames
    from engine.measure import read_video_rgb, shared_dir

    sd = shared_dir()
    speakers = list(HELD_OUT_VIDEOS.items())[:limit] if limit else list(HELD_OUT_VIDEOS.items())
    out = {}
    for name, rel in speakers:
        frames, fps = read_video_rgb(sd / rel)
        frames = frames[:frames_per]
        ref = pick_reference(frames)
        av = avatar_from_image(frames[ref], size=512, source=name)
        # Tracked states are rig fits relative to the reference frame's own face: rendered with the photo as the
        # neutral state (rest=False) and the rig as fitted (no emotion render gain), as the tracking assumes.
        rs = make_renderers(av, rest=False, gain=np.ones(NUM_COEFFS))
        clip = track_frames(frames, av, rs[False], fps=fps)
        states, real, idx = clip.states, clip.frames, np.flatnonzero(clip.found)
        res = {"neural_mouth": mouth_status(rs), "frames": int(len(idx)), "reference_frame": int(ref)}
        scores = {mode: [] for mode, _ in MODES}
        renders = {mode: {} for mode, _ in MODES}
        for i in idx:
            st = states[i]
            box = expanded_box(rs[False].deform(st)[list(LIPS_OUTER)], real[i].shape)
            for mode, flag in MODES:
                img = rs[flag].render(st)
                renders[mode][int(i)] = img
                scores[mode].append(region_scores(img, real[i], box))
        for mode, _ in MODES:
            res[mode] = {k: _mean(s[k] for s in scores[mode]) for k in ("psnr", "ssim")}
        # Where the real mouth is most closed (bilabials, pauses): the render's lips should meet as the real ones do.
        n_closed = max(1, len(idx) // 10)
        closed = idx[np.argsort(clip.mouth_open[idx])[:n_closed]]
        gaps = {"real": [], "without": [], "with": []}
        for i in closed:
            for key, img in (("real", real[i]), ("without", renders["without"][int(i)]),
                             ("with", renders["with"][int(i)])):
                m = meas.detect(img)
                gaps[key].append(np.nan if m is None else mouth_opening(m.landmarks))
        res["closed"] = {"frames": int(n_closed), **{k: _mean(v) for k, v in gaps.items()},
                         **{f"abs_diff_{k}": _mean(np.abs(np.array(gaps[k]) - np.array(gaps["real"])))
                            for k in ("without", "with")}}
        still = {mode: mean_abs_change([rs[flag].render(FaceState.neutral()) for _ in range(8)]) for mode, flag in MODES}
        res["silence_change"] = still
        out[name] = res
        if name not in keep.get("speech", {}):
            keep.setdefault("speech", {})[name] = (av, real, renders)
        print(f"proof 4: {name} ({res['neural_mouth']}, {res['frames']} frames)", file=sys.stderr)
    lines = ["### 4. Speech reconstruction (held-out speakers, tracked face states)", "",
             f"Avatar = the most closed-mouth of the first 15 frames; states and stabilised real frames from "
             "engine/diffusion/track.py (track_frames); up to "
             f"{frames_per} frames per speaker, rendered with rest=False and the rig as fitted.", "",
             f"Mouth region = outer-lip box ×{MOUTH_EXPAND} of the tracked state; closed = the 10 % of frames with the "
             "smallest real inner-lip gap, gap re-detected on real and rendered frames (inner-lip gap / outer-eye "
             "distance); silence = mean |change| between 8 renders of the neutral state (grey levels).", "",
             "| speaker | frames | neural mouth | mouth PSNR dB without / with | mouth SSIM without / with "
             "| closed gap real | without | with | silence change without / with |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, r in out.items():
        c = r["closed"]
        lines.append(f"| {name} | {r['frames']} | {r['neural_mouth']} | {_fmt(r['without']['psnr'], '.2f')} / "
                     f"{_fmt(r['with']['psnr'], '.2f')} | {_fmt(r['without']['ssim'])} / {_fmt(r['with']['ssim'])} "
                     f"| {_fmt(c['real'])} | {_fmt(c['without'])} | {_fmt(c['with'])} "
                     f"| {_fmt(r['silence_change']['without'], '.2f')} / {_fmt(r['silence_change']['with'], '.2f')} |")
    if out:
        m = {mode: {k: _mean(out[n][mode][k] for n in out) for k in ("psnr", "ssim")} for mode, _ in MODES}
        lines.append(f"| **mean** | {sum(r['frames'] for r in out.values())} | | {_fmt(m['without']['psnr'], '.2f')} / "
                     f"{_fmt(m['with']['psnr'], '.2f')} | {_fmt(m['without']['ssim'])} / {_fmt(m['with']['ssim'])} "
                     f"| {_fmt(_mean(r['closed']['real'] for r in out.values()))} "
                     f"| {_fmt(_mean(r['closed']['without'] for r in out.values()))} "
                     f"| {_fmt(_mean(r['closed']['with'] for r in out.values()))} | |")
        out["mean"] = m
    return out, "\n".join(lines)


# ---------------------------------------------------------------- contact sheets

def _grid(rows: list[list[np.ndarray]]) -> np.ndarray:
    width = max(len(r) for r in rows)
    blank = np.full((CELL, CELL, 3), 255, np.uint8)
    return np.vstack([np.hstack(r + [blank] * (width - len(r))) for r in rows])


def sheets(meas: Measure, images: Path, keep: dict) -> tuple[dict, str]:
    from engine.avatar import create_avatar, load_avatar
    from engine.emotion.mixing import apply_emotion

    written = {}
    # Emotions: 2 smiling sources (default avatar, a held-out London smile) and 1 neutral source.
    src = emotion_sources(None)
    smiling = list(src["smiling"].items())
    taken = {smiling[1][0].split("_")[1]}
    faces = [smiling[0], smiling[1],
             next((n, p) for n, p in src["neutral"].items() if not (n.startswith("london_") and n.split("_")[1] in taken))]
    rows = []
    for name, path in faces:
        av = load_avatar(None, size=512) if path is None else create_avatar(path, size=512)
        rs = make_renderers(av)
        lm = av.landmarks
        for mode, flag in MODES:
            row = [label(face_cell(av.image, lm), f"{name[:18]}" if flag is False else f"{mode} NM")]
            for e in SHEET_EMOTIONS:
                st = FaceState.neutral() if e == "neutral" else apply_emotion(FaceState.neutral(), {e: 1.0}, 1.0)
                row.append(label(face_cell(rs[flag].render(st), lm), f"{e} {mode}"))
            rows.append(row)
    path = images / "neural-mouth-emotions.jpg"
    written[path.name] = save_sheet(_grid(rows), path)

    # Smile -> neutral: smiling photo | without | with | real neutral photo (aligned onto the render).
    rows = []
    people = london_pairs(4)
    for person, neutral_path, smiling_path in people:
        av = create_avatar(smiling_path, size=512)
        rs = make_renderers(av)
        lm = av.landmarks
        real = read_rgb(neutral_path)
        real_m = meas.detect(real)
        row = [label(face_cell(av.image, lm), f"{person} smiling photo")]
        for mode, flag in MODES:
            row.append(label(face_cell(rs[flag].render(FaceState.neutral()), lm), f"neutral {mode}"))
        if real_m is not None:
            row.append(label(face_cell(onto(real, real_m.landmarks, lm, av.image.shape), lm), "real neutral"))
        rows.append(row)
    path = images / "neural-mouth-smile-to-neutral.jpg"
    written[path.name] = save_sheet(_grid(rows), path)

    # Speech: ~8 frames spread over one held-out speaker's clip, real | without | with.
    speech = keep.get("speech") or {}
    if not speech:
        proof_speech(meas, 1, 150, keep)
        speech = keep["speech"]
    name, (av, real, renders) = next(iter(speech.items()))
    idx = sorted(renders["with"])
    pick = [idx[int(round(j))] for j in np.linspace(0, len(idx) - 1, 8)]
    lm = av.landmarks
    rows = [[label(face_cell(real[i], lm), f"{name} real" if c == 0 else "real") for c, i in enumerate(pick)]]
    for mode, _ in MODES:
        rows.append([label(face_cell(renders[mode][i], lm), mode) for i in pick])
    path = images / "neural-mouth-speech.jpg"
    written[path.name] = save_sheet(_grid(rows), path)
    lines = ["### 5. Contact sheets", ""] + [f"- {images / n}: {b / 1000:.0f} KB" for n, b in written.items()]
    return {"bytes": written}, "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--proof", type=int, nargs="+", choices=(1, 2, 3, 4, 5), default=[1, 2, 3, 4, 5])
    ap.add_argument("--limit", type=int, default=None, help="at most N people / portraits / speakers per proof")
    ap.add_argument("--frames", type=int, default=150, help="frames per speaker in proof 4")
    ap.add_argument("--out", default=str(ROOT / "out" / "mouth" / "eval.json"))
    ap.add_argument("--images", default=str(ROOT / "docs" / "design" / "images"), help="contact sheets (proof 5)")
    args = ap.parse_args(argv)
    from engine.measure import shared_dir
    from engine.neural_mouth.runtime import ONNX_PATH

    if shared_dir() is None:
        print("../shared not present", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    meas = Measure(fer=bool({1, 3} & set(args.proof)))
    res: dict = {"model": str(ONNX_PATH.relative_to(ROOT)), "limit": args.limit, "proofs": {}}
    keep: dict = {}
    out = []
    for n in sorted(set(args.proof)):
        t = time.perf_counter()
        if n == 1:
            r, text = proof_smile_to_neutral(meas, args.limit)
        elif n == 2:
            r, text = proof_neutral_to_smile(meas, args.limit)
        elif n == 3:
            r, text = proof_emotions(meas, args.limit)
        elif n == 4:
            r, text = proof_speech(meas, args.limit, args.frames, keep)
        else:
            r, text = sheets(meas, Path(args.images), keep)
        r["seconds"] = round(time.perf_counter() - t, 1)
        res["proofs"][str(n)] = r
        out.append(text)
        print(text + "\n", flush=True)
    res["seconds"] = round(time.perf_counter() - t0, 1)
    p = Path(args.out)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(res, indent=1, default=float) + "\n")
    print(f"wrote {p} ({res['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
