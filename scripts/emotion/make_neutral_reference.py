"""Population neutral face for reference-photo emotions: mean/std of the rig fit over real neutral faces.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/emotion/make_neutral_reference.py

London set neutral photos (../shared/data/expressions/london/neutral), people whose
number is not a multiple of 5 (multiples of 5 are held out for the evaluation in
scripts/emotion/eval_reference.py, as in scripts/fit_rig.py). Each photo goes through
exactly the runtime path (engine/emotion/reference.py: wheel face mesh -> face units
-> Rig.fit_coefficients); the asset keeps the mean and std per coefficient.
Writes engine/assets/emotion_neutral_fit.json (computed numbers only, no media).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from engine.emotion.reference import NEUTRAL_ASSET, detect_landmarks, fit_face  # noqa: E402
from engine.measure import shared_dir  # noqa: E402
from engine.types import BLENDSHAPE_NAMES  # noqa: E402


def london(kind: str, held_out: bool | None = None) -> list[Path]:
    """London photos ('neutral' *_03 or 'smiling' *_08), optionally only held-out / only training people."""
    sd = shared_dir()
    if sd is None:
        return []
    suffix = "_03.jpg" if kind == "neutral" else "_08.jpg"
    out = []
    for p in sorted((sd / "data" / "expressions" / "london" / kind).glob("*" + suffix)):
        person = int(p.name[:3])
        if held_out is None or (person % 5 == 0) == held_out:
            out.append(p)
    return out


def read_rgb(path: Path) -> np.ndarray:
    import cv2

    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def main() -> int:
    paths = london("neutral", held_out=False)
    if not paths:
        print("../shared not present", file=sys.stderr)
        return 2
    fits, people = [], []
    for p in paths:
        fits.append(fit_face(detect_landmarks(read_rgb(p))))
        people.append(p.name[:3])
    f = np.array(fits)
    mean, std = f.mean(0), f.std(0)
    NEUTRAL_ASSET.write_text(json.dumps({
        "format": "emolive-neutral-fit/1",
        "source": "London set neutral photos (DeBruine & Jones 2017, CC BY 4.0), people not multiple of 5; "
                  "scripts/emotion/make_neutral_reference.py",
        "n": len(f), "people": people,
        "mean": {n: round(float(v), 4) for n, v in zip(BLENDSHAPE_NAMES, mean)},
        "std": {n: round(float(v), 4) for n, v in zip(BLENDSHAPE_NAMES, std)},
    }, indent=1) + "\n")
    top = np.argsort(-mean)[:8]
    print(f"{len(f)} neutral faces; largest mean fits: " +
          ", ".join(f"{BLENDSHAPE_NAMES[i]} {mean[i]:.2f}±{std[i]:.2f}" for i in top))
    print(f"wrote {NEUTRAL_ASSET}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
