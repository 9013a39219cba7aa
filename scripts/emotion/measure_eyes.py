"""Does the eye painter make widened eyes read as widened? Re-detect rendered faces, eyes painted and not.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/emotion/measure_eyes.py [--out out/s5/eyes_redetect.json]

On the held-out neutral portraits of scripts/emotion/eval_fer.py (--set neutral: 8 London faces, 3 GRID
speakers), meshwarp renders a few states with the eye painter on and off (engine/renderers/eyes.py): neutral,
eyeWide L + R = 1 alone (a FaceState with only those two coefficients), and fear and surprised at k = 1.
MediaPipe's Face Landmarker (../shared/models, engine/measure.py: it sees only pixels) re-detects each frame:

  eyeWide     its eyeWideLeft/Right blendshape (mean of both eyes)
  eyeBlink    its eyeBlinkLeft/Right blendshape (a stretched dark iris can read as a half-closed lid)
  open        lid gap over eye width from its landmarks (face_geometry.eye_aspect_ratio)
  iris_lm     its iris rim: vertical over horizontal diameter (470-472 over 469-471, and the left eye's)
  iris_px     on the pixels, around the re-detected iris centre: the dark blob's extent above the centre
              over its half width (a disc whose top shows ~1, a lid-covered top < 1)
  iris_dy     re-detected iris centre minus where the renderer put the iris (y, px, both eyes; negative:
              higher). The detector centres its iris in what it sees: a stretched iris reads as raised
  lookUp      its eyeLookUpLeft/Right blendshape (mean)

Prints one Markdown table (means over portraits and both eyes) and, for eyeWide, the number of portraits
whose re-detected eyeWide rose with the painter.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("GLOG_minloglevel", "2")

from engine.face_geometry import EYE_L, EYE_R, IRIS_L, IRIS_R, eye_aspect_ratio  # noqa: E402
from engine.types import COEFF_INDEX, FaceState  # noqa: E402

STATES = ("neutral", "eyeWide", "fear", "surprised")
MEASURES = ("eyeWide", "eyeBlink", "open", "iris_lm", "iris_px", "iris_dy", "lookUp")


def _state(name: str) -> FaceState:
    from engine.emotion.mixing import apply_emotion

    if name == "neutral":
        return FaceState.neutral()
    if name == "eyeWide":
        return FaceState.from_dict({"eyeWideLeft": 1.0, "eyeWideRight": 1.0})
    return apply_emotion(FaceState.neutral(), {name: 1.0}, 1.0)


def iris_px(frame: np.ndarray, pts: np.ndarray, contour, iris) -> float:
    """Upper extent over half width of the dark blob at the iris centre, inside the eye contour (pixels)."""
    import cv2

    h, w = frame.shape[:2]
    m = np.zeros((h, w), np.uint8)
    cv2.fillPoly(m, [np.round(pts[list(contour), :2]).astype(np.int32)], 1)
    m = cv2.erode(m, np.ones((3, 3), np.uint8)).astype(bool)
    lum = frame.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    lo, hi = np.percentile(lum[m], [10, 90])
    dark = (m & (lum < 0.5 * (lo + hi))).astype(np.uint8)
    _, lab = cv2.connectedComponents(dark, connectivity=4)
    x, y = (int(round(v)) for v in pts[iris[0], :2])
    near = lab[y - 2:y + 3, x - 2:x + 3].ravel()
    near = near[near > 0]
    if not len(near):
        return float("nan")
    blob = (lab == np.bincount(near).argmax()).astype(np.uint8)
    outline, _ = cv2.findContours(blob, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(blob, outline, -1, 1, thickness=cv2.FILLED)  # fill the catch-light
    tops = [np.flatnonzero(blob[: y + 1, c]) for c in (x - 1, x, x + 1)]
    upper = pts[iris[0], 1] - (np.median([t.min() if len(t) else y for t in tops]) - 0.5)
    spans = [np.flatnonzero(blob[r]) for r in range(y - 2, y + 3)]
    half = 0.5 * max((s.max() - s.min() + 1) if len(s) else 0 for s in spans)
    return float(upper / max(half, 0.5))


def measure(frame: np.ndarray, placed: np.ndarray, lm) -> dict[str, float] | None:
    """The measures of one rendered frame; `placed`: the renderer's vertices for it (where the iris went)."""
    m = lm.detect(frame)
    if m is None:
        return None
    bs, p = m.blendshapes, m.landmarks.astype(np.float64)
    iris_lm = [np.hypot(*(p[i[2], :2] - p[i[4], :2])) / max(np.hypot(*(p[i[1], :2] - p[i[3], :2])), 1e-6)
               for i in (IRIS_R, IRIS_L)]
    return {
        "eyeWide": float(0.5 * (bs[COEFF_INDEX["eyeWideLeft"]] + bs[COEFF_INDEX["eyeWideRight"]])),
        "eyeBlink": float(0.5 * (bs[COEFF_INDEX["eyeBlinkLeft"]] + bs[COEFF_INDEX["eyeBlinkRight"]])),
        "open": 0.5 * (eye_aspect_ratio(p, "right") + eye_aspect_ratio(p, "left")),
        "iris_lm": float(np.mean(iris_lm)),
        "iris_px": float(np.nanmean([iris_px(frame, p, c, i) for c, i in ((EYE_R, IRIS_R), (EYE_L, IRIS_L))])),
        "iris_dy": float(np.mean([p[i[0], 1] - placed[i[0], 1] for i in (IRIS_R, IRIS_L)])),
        "lookUp": float(0.5 * (bs[COEFF_INDEX["eyeLookUpLeft"]] + bs[COEFF_INDEX["eyeLookUpRight"]])),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=None, help="write every measurement as JSON here")
    ap.add_argument("--size", type=int, default=512)
    args = ap.parse_args(argv)
    from eval_fer import portrait_paths

    from engine.avatar import create_avatar
    from engine.measure import Landmarker, shared_dir
    from engine.renderers import create

    sd = shared_dir()
    if sd is None:
        print("needs ../shared (portraits and the Face Landmarker)", file=sys.stderr)
        return 2
    paths = portrait_paths("neutral", sd)
    res: dict[str, dict[str, dict[str, dict | None]]] = {}
    with Landmarker("image") as lm:
        for name, path in paths.items():
            av = create_avatar(path, size=args.size)
            res[name] = {}
            for painted in (False, True):
                r = create("meshwarp", av, eyes=painted)
                res[name]["on" if painted else "off"] = {s: measure(r.render(_state(s)), r.deform(_state(s)), lm)
                                                         for s in STATES}
            print(f"measured {name}", file=sys.stderr)
    lines = ["| state | painter | " + " | ".join(MEASURES) + " |", "|---|---|" + "---|" * len(MEASURES)]
    for s in STATES:
        for cond in ("off", "on"):
            rows = [res[n][cond][s] for n in res if res[n][cond][s] is not None]
            cells = [f"{np.nanmean([r[k] for r in rows]):.3f}" for k in MEASURES]
            lines.append(f"| {s} | {cond} | " + " | ".join(cells) + f" |" + ("" if len(rows) == len(res) else
                                                                              f" ({len(res) - len(rows)} not found)"))
    print("\n".join(lines))
    for s in STATES[1:]:
        pairs = [(res[n]["off"][s], res[n]["on"][s]) for n in res if res[n]["off"][s] and res[n]["on"][s]]
        up = sum(1 for a, b in pairs if b["eyeWide"] > a["eyeWide"])
        print(f"- {s}: re-detected eyeWide higher with the painter on {up}/{len(pairs)} portraits")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
