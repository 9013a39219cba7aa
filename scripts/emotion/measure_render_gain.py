"""How much of each expression coefficient survives the renderer, measured on the rendered pixels.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/emotion/measure_render_gain.py [--json out/gain.json]

For each portrait (default avatar + real portraits from ../shared) and each
emotion-related coefficient (Left/Right pairs together), the coefficient is set
to 1 alone, rendered with meshwarp, and the frame is measured with MediaPipe's
Face Landmarker (independent of the rig: it was trained on real faces). The
gain is the Landmarker's blendshape score on the render minus on the neutral
render. A coefficient whose rendered unit reads as, say, 0.2 shows only a fifth
of what a real face with that blendshape shows. Printed as a table; needs ../shared.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from engine.measure import Landmarker, shared_dir  # noqa: E402
from engine.types import COEFF_INDEX, FaceState  # noqa: E402

PORTRAITS = ("biden.jpg", "einstein.jpg", "grid_bbaf2n.png", "grid_brbk7n.png", "grid_lrwp9a.png")
GROUPS = ("browDown", "browInnerUp", "browOuterUp", "cheekSquint", "eyeSquint", "eyeWide", "noseSneer",
          "mouthFrown", "mouthSmile", "mouthDimple", "mouthStretch", "mouthUpperUp", "mouthLowerDown",
          "mouthPress", "jawOpen")


def names_of(group: str) -> list[str]:
    return [n for n in (group, group + "Left", group + "Right") if n in COEFF_INDEX]


def measure(renderer, lm: Landmarker, groups=GROUPS, value: float = 1.0) -> dict[str, float]:
    """Landmarker blendshape gain per group on one renderer (None entries when no face is found)."""
    base = lm.detect(renderer.render(FaceState.neutral()))
    out = {}
    for g in groups:
        names = names_of(g)
        st = FaceState.from_dict({n: value for n in names})
        m = lm.detect(renderer.render(st))
        if m is None or base is None:
            out[g] = float("nan")
            continue
        idx = [COEFF_INDEX[n] for n in names]
        out[g] = float(np.mean(m.blendshapes[idx] - base.blendshapes[idx]) / value)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", default=None)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--value", type=float, default=1.0, help="coefficient value rendered")
    args = ap.parse_args(argv)
    from engine.avatar import create_avatar, load_avatar
    from engine.renderers import create

    sd = shared_dir()
    if sd is None:
        print("../shared not present", file=sys.stderr)
        return 2
    avatars = {"default": load_avatar(None, size=args.size)}
    for p in PORTRAITS:
        avatars[Path(p).stem] = create_avatar(sd / "data" / "portraits" / p, size=args.size)
    res = {}
    with Landmarker() as lm:
        for name, av in avatars.items():
            res[name] = measure(create("meshwarp", av), lm, value=args.value)
    print("| coefficient | " + " | ".join(res) + " | mean |")
    print("|---|" + "---|" * (len(res) + 1))
    for g in GROUPS:
        vals = [res[n][g] for n in res]
        print(f"| {g} | " + " | ".join(f"{v:+.2f}" for v in vals) + f" | {np.nanmean(vals):+.2f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
