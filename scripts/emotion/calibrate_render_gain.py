"""Render gain of the emotion-only coefficients, measured by re-detecting rendered frames.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/emotion/calibrate_render_gain.py [--write]

Why: a rig column says how real faces' landmarks move per unit coefficient, but a
2D warp of a photo keeps the neutral skin texture and the re-detected face moves
less than the vertices did; and the FACS-built columns (cheekSquint, noseSneer,
mouthFrown, eyeWide) were guessed a few mm small. Measured with MediaPipe's Face
Landmarker (trained on real faces, independent of the rig), such a column at 1 reads
as 0.0-0.4 on the rendered face (scripts/emotion/measure_render_gain.py).

How: for each group of emotion-only coefficients (speech never drives them, so
lip-sync is untouched) and each scale s in SCALES, render the group at 1 with
its column multiplied by s on the default avatar + real portraits, and measure
the Landmarker's blendshape score minus the neutral render's. The gain is the
smallest s whose mean score reaches TARGET (the largest scale when none does),
limited so that no landmark moves more than the group's anatomical travel
MAX_MM (approximate largest travel in posed apex expressions, converted at
MM_PER_UNIT = 90 mm outer inter-ocular distance). The Landmarker's blendshape
head barely ever scores cheekSquint and noseSneer (0.00 on every render, also at
x3) and scores mouthFrown weakly: those groups end at their travel limit.
`--write` stores engine/assets/render_gain.json, read by the meshwarp renderer.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure_render_gain import PORTRAITS, measure, names_of  # noqa: E402

from engine.measure import Landmarker, shared_dir  # noqa: E402
from engine.rig import load_rig  # noqa: E402
from engine.types import COEFF_INDEX, NUM_COEFFS  # noqa: E402

GROUPS = ("browDown", "browInnerUp", "browOuterUp", "cheekSquint", "eyeSquint", "eyeWide", "noseSneer",
          "mouthFrown", "mouthSmile")
SCALES = (1.0, 1.5, 2.0, 2.5, 3.0)
TARGET = 0.5
MM_PER_UNIT = 90.0
# Largest landmark travel allowed per group, in mm: brows (AU1/2/4) ~11, upper lid raise
# (AU5) ~4, lower lid / cheek tightening (AU7) ~9, cheek raise (AU6) ~6, nose wing raise
# (AU9) ~6, lip-corner depression (AU15) ~7. Smiles are data-fitted and need no gain.
MAX_MM = {"browDown": 11, "browInnerUp": 11, "browOuterUp": 11, "cheekSquint": 6, "eyeSquint": 9, "eyeWide": 4,
          "noseSneer": 6, "mouthFrown": 7, "mouthSmile": 16}
ASSET = Path(__file__).resolve().parents[2] / "engine" / "assets" / "render_gain.json"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--write", action="store_true", help="write engine/assets/render_gain.json")
    ap.add_argument("--size", type=int, default=512)
    args = ap.parse_args(argv)
    from engine.avatar import create_avatar, load_avatar
    from engine.renderers.meshwarp import MeshWarpRenderer

    sd = shared_dir()
    if sd is None:
        print("../shared not present", file=sys.stderr)
        return 2
    avatars = [load_avatar(None, size=args.size)]
    avatars += [create_avatar(sd / "data" / "portraits" / p, size=args.size) for p in PORTRAITS]
    rig = load_rig()
    curve = {g: [] for g in GROUPS}
    with Landmarker() as lm:
        for s in SCALES:
            gain = np.full(NUM_COEFFS, s)
            per = [measure(MeshWarpRenderer(av, rig=rig, gain=gain), lm, GROUPS) for av in avatars]
            for g in GROUPS:
                curve[g].append(float(np.nanmean([p[g] for p in per])))
            print(f"scale {s}: " + " ".join(f"{g} {curve[g][-1]:+.2f}" for g in GROUPS), file=sys.stderr)
    out, rows = {}, []
    for g in GROUPS:
        idx = [COEFF_INDEX[n] for n in names_of(g)]
        disp = float(np.linalg.norm(rig.basis[idx], axis=2).max())
        cap = max(1.0, MAX_MM[g] / MM_PER_UNIT / disp)
        reach = [s for s, v in zip(SCALES, curve[g]) if v >= TARGET]
        s = min(reach[0] if reach else SCALES[-1], cap)
        for n in names_of(g):
            out[n] = round(float(s), 3)
        rows.append(f"| {g} | " + " | ".join(f"{v:+.2f}" for v in curve[g]) + f" | {disp:.3f} | {s:.2f} |")
    print("| group | " + " | ".join(f"score @ x{s:g}" for s in SCALES) + " | max disp (face units) | gain |")
    print("|---|" + "---|" * (len(SCALES) + 2))
    print("\n".join(rows))
    if args.write:
        ASSET.write_text(json.dumps({
            "format": "emolive-render-gain/1",
            "note": "meshwarp multiplier per rig column; scripts/emotion/calibrate_render_gain.py (docs/design/emotion.md)",
            "target_score": TARGET, "max_travel_mm": MAX_MM, "mm_per_face_unit": MM_PER_UNIT, "scales": SCALES,
            "measured_score": {g: [round(v, 3) for v in curve[g]] for g in GROUPS},
            "gain": out}, indent=1) + "\n")
        print(f"wrote {ASSET}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
