"""Sclera and skin colour of real neutral faces, as EyePainter measures them (the fallback sclera's ratio).

    OMP_NUM_THREADS=1 .venv/bin/python scripts/emotion/eye_stats.py [--size 512] [--out out/eye_stats.json]

For each London neutral portrait (../shared/data/expressions/london/neutral, 102 people) an avatar is made and
engine/renderers/eyes.py measures each eye: visible sclera pixels, the sclera colour (the lit part of the
visible white), the skin just below the lower lid and the iris radius. Prints the least-squares line
sclera luminance = a + b * skin luminance over the eyes with enough visible white (EyePainter's
SCLERA_FROM_SKIN, its fallback when a photo shows no white), its residual, the plain ratio's, and how many
eyes had too little white to measure.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--out", default=None, help="write the per-eye figures as JSON here")
    args = ap.parse_args(argv)
    from engine.avatar import AvatarError, create_avatar
    from engine.face_geometry import face_frame
    from engine.measure import shared_dir
    from engine.renderers.eyes import MIN_SCLERA_PX, _Eye, _luma, _SIDES

    sd = shared_dir()
    if sd is None:
        print("needs ../shared", file=sys.stderr)
        return 2
    rows = []
    for p in sorted((sd / "data" / "expressions" / "london" / "neutral").glob("*_03.jpg")):
        try:
            av = create_avatar(p, size=args.size)
        except AvatarError as e:
            print(f"{p.name}: {e}", file=sys.stderr)
            continue
        lm = av.landmarks
        scale = face_frame(lm).scale
        for side, spec in zip(("right", "left"), _SIDES):
            e = _Eye(av.image, lm, lm, *spec)
            rows.append({"photo": p.name, "eye": side, "sclera_px": e.sclera_px, "iris_radius": e.radius / scale,
                         "sclera": None if e.sclera is None else [float(v) for v in e.sclera],
                         "skin": [float(v) for v in e.skin]})
    ok = [r for r in rows if r["sclera"] is not None and r["sclera_px"] >= MIN_SCLERA_PX]
    print(f"eyes: {len(rows)}; with >= {MIN_SCLERA_PX} visible sclera px: {len(ok)}")
    if len(ok) >= 2:
        sc = np.array([_luma(np.array(r["sclera"])) for r in ok])
        sk = np.array([_luma(np.array(r["skin"])) for r in ok])
        (a, b), *_ = np.linalg.lstsq(np.c_[np.ones_like(sk), sk], sc, rcond=None)
        ratio = np.median(sc / np.maximum(sk, 1.0))
        print(f"sclera luminance = {a:.1f} + {b:.3f} * skin luminance (residual sd {np.std(sc - a - b * sk):.1f}); "
              f"median ratio {ratio:.2f} (residual sd {np.std(sc - ratio * sk):.1f})")
        print(f"sclera luminance 10/50/90 %: {' / '.join(f'{v:.0f}' for v in np.percentile(sc, [10, 50, 90]))}; "
              f"skin: {' / '.join(f'{v:.0f}' for v in np.percentile(sk, [10, 50, 90]))}")
    rad = np.array([r["iris_radius"] for r in rows])
    print(f"iris radius (inter-ocular units): median {np.median(rad):.4f}, 10-90 % {np.percentile(rad, 10):.4f}"
          f" - {np.percentile(rad, 90):.4f}")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
