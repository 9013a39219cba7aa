"""How does an open mouth look inside? Real GRID frames of speaker s1 vs meshwarp renders of his portrait.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/render/measure_mouth_interior.py [--clips 40] [--out out/mouth.json]
        [--speakers]

The painted mouth interior (engine/renderers/mouth.py) is an invention of the renderer; this measures it
against real mouths of the same person in the same light. Real: every frame of `--clips` GRID s1 sentences
(../shared/data/grid/s1). Rendered: grid_bbaf2n.png (a frame of s1) through meshwarp with jawOpen swept
0..1 (speech's own columns, no emotion). On both, MediaPipe's Face Landmarker finds the lips (it sees only
pixels), and inside the inner-lip contour (shrunk by a pixel) the luminance relative to the same frame's
cheek skin is measured: mean, 10th/90th percentiles, the share brighter than skin (teeth), the share darker
than a third of skin (the shadowed cavity), and a top-to-bottom profile in four bands; frames are binned by the
inner-lip opening (gap / outer inter-ocular distance). `--speakers` adds the six GRID multi-speaker clips
(real) and their portraits (rendered), people the painter was not matched on. `--london N` adds smiles with
teeth: the first N London people's real smiling photos vs their neutral photos rendered "happy" at k = 1.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("GLOG_minloglevel", "2")

from engine.face_geometry import LIPS_INNER, mouth_opening  # noqa: E402
from engine.measure import Landmarker, read_video_rgb, shared_dir  # noqa: E402

BINS = (0.06, 0.10, 0.15, 0.22, 0.32, 1.0)
CHEEKS = (205, 425)  # mid-cheek points, below the cheekbones
BANDS = 4
KEYS = ("mean", "p10", "p90", "bright", "dark", "red") + tuple(f"band{i}" for i in range(BANDS))


def luma(rgb: np.ndarray) -> np.ndarray:
    return rgb[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def interior_stats(rgb: np.ndarray, pts: np.ndarray) -> dict[str, float] | None:
    """Luminance statistics inside the inner lips, relative to the cheeks; None when too small to measure."""
    import cv2

    h, w = rgb.shape[:2]
    iod = float(np.linalg.norm(pts[33, :2] - pts[263, :2]))
    r = max(2, int(round(0.04 * iod)))
    skin = []
    for c in CHEEKS:
        x, y = np.round(pts[c, :2]).astype(int)
        patch = rgb[max(y - r, 0):y + r + 1, max(x - r, 0):x + r + 1]
        if patch.size:
            skin.append(patch.reshape(-1, 3))
    if not skin:
        return None
    skin = np.concatenate(skin).astype(np.float64)
    skin_y = float(np.median(luma(skin)))
    skin_rg = float(np.median(skin[:, 0] - skin[:, 1]))
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, [np.round(pts[list(LIPS_INNER), :2] * 16).astype(np.int32)], 255, shift=4)
    mask = cv2.erode(mask, np.ones((3, 3), np.uint8))
    ys, xs = np.nonzero(mask)
    if len(ys) < 12 or skin_y < 1.0:
        return None
    px = rgb[ys, xs].astype(np.float64)
    rel = luma(px) / skin_y
    top, bot = ys.min(), ys.max()
    t = (ys - top) / max(bot - top, 1)
    out = {"mean": float(rel.mean()), "p10": float(np.percentile(rel, 10)), "p90": float(np.percentile(rel, 90)),
           "bright": float((rel > 1.0).mean()), "dark": float((rel < 1 / 3).mean()),
           "red": float(np.mean(px[:, 0] - px[:, 1]) / max(skin_rg, 1.0))}
    for i in range(BANDS):
        sel = (t >= i / BANDS) & (t <= (i + 1) / BANDS)
        out[f"band{i}"] = float(rel[sel].mean()) if sel.any() else float("nan")
    return out


def binned(rows: list[tuple[float, dict]]) -> list[dict]:
    table = []
    for lo, hi in zip(BINS, BINS[1:]):
        sel = [s for o, s in rows if lo <= o < hi]
        if not sel:
            continue
        entry = {"bin": [lo, hi], "n": len(sel)}
        for k in KEYS:
            entry[k] = float(np.nanmean([s[k] for s in sel]))
        table.append(entry)
    return table


def measure(lm: Landmarker, frames, rows: list[tuple[float, dict]]) -> list[tuple[float, dict]]:
    """Append (opening, interior statistics) of every frame where the face and its mouth are measurable."""
    for f in frames:
        m = lm.detect(f)
        s = None if m is None else interior_stats(f, m.landmarks)
        if s is not None:
            rows.append((mouth_opening(m.landmarks), s))
    return rows


def measure_real(lm: Landmarker, clips: list[Path]) -> list[tuple[float, dict]]:
    rows: list[tuple[float, dict]] = []
    for clip in clips:
        measure(lm, read_video_rgb(clip)[0], rows)
    return rows


def measure_rendered(lm: Landmarker, portrait: Path, jaws=np.linspace(0.05, 1.0, 20)) -> list[tuple[float, dict]]:
    from engine.avatar import create_avatar
    from engine.renderers import create
    from engine.types import COEFF_INDEX, NUM_COEFFS, FaceState

    r = create("meshwarp", create_avatar(portrait, size=512))

    def frames():
        for j in jaws:
            c = np.zeros(NUM_COEFFS)
            c[COEFF_INDEX["jawOpen"]] = j
            yield r.render(FaceState(coeffs=tuple(c)))

    return measure(lm, frames(), [])


def measure_london(lm: Landmarker, sd: Path, n: int) -> tuple[list, list]:
    from engine.avatar import create_avatar
    from engine.emotion.mixing import apply_emotion
    from engine.renderers import create
    from engine.types import FaceState

    real, rendered = [], []
    for smile in sorted((sd / "data" / "expressions" / "london" / "smiling").glob("*_08.jpg"))[:n]:
        neutral = sd / "data" / "expressions" / "london" / "neutral" / f"{smile.name[:3]}_03.jpg"
        if not neutral.exists():
            continue
        measure(lm, [_read_rgb(smile)], real)
        happy = apply_emotion(FaceState.neutral(), {"happy": 1.0}, 1.0)
        measure(lm, [create("meshwarp", create_avatar(neutral, size=512)).render(happy)], rendered)
    return real, rendered


def _read_rgb(path: Path) -> np.ndarray:
    import cv2

    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def fmt(table: list[dict]) -> str:
    lines = ["| opening | n | " + " | ".join(KEYS) + " |", "|---|---|" + "---|" * len(KEYS)]
    for e in table:
        lines.append(f"| {e['bin'][0]:.2f}-{e['bin'][1]:.2f} | {e['n']} | "
                     + " | ".join(f"{e[k]:.2f}" for k in KEYS) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clips", type=int, default=40)
    ap.add_argument("--speakers", action="store_true")
    ap.add_argument("--london", type=int, default=0, metavar="N")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    sd = shared_dir()
    if sd is None:
        print("needs ../shared (GRID clips and portraits)", file=sys.stderr)
        return 2
    clips = sorted((sd / "data" / "grid" / "s1").glob("*.mp4"))[:: max(1, 1000 // max(args.clips, 1))][: args.clips]
    result = {}
    with Landmarker() as lm:
        result["s1 real"] = binned(measure_real(lm, clips))
        result["s1 rendered"] = binned(measure_rendered(lm, sd / "data" / "portraits" / "grid_bbaf2n.png"))
        if args.speakers:
            multi = sorted((sd / "data" / "grid" / "multi_speaker").glob("*.mp4"))
            result["others real"] = binned(measure_real(lm, multi))
            rows = []
            for clip in multi:
                portrait = sd / "data" / "portraits" / f"grid_{clip.stem}.png"
                if portrait.exists():
                    rows += measure_rendered(lm, portrait)
            result["others rendered"] = binned(rows)
        if args.london:
            real, rendered = measure_london(lm, sd, args.london)
            result["london smiles real"], result["london happy rendered"] = binned(real), binned(rendered)
    for name, table in result.items():
        print(f"\n### {name}\n\n{fmt(table)}")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
