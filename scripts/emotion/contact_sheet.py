"""Look at rendered emotions: a contact sheet of the face, and of what FER-2013 sees (its 64x64 gray crop).

    OMP_NUM_THREADS=1 .venv/bin/python scripts/emotion/contact_sheet.py --out out/emotions.png
        [--set current|neutral|dev] [--portraits london_005,grid_lbax4n] [--k 1.0] [--no-fer] [--no-eyes]

One row per portrait, one column per emotion (neutral first) at intensity k, each
cell the face region of the meshwarp render (rest expression undone); with FER,
the cell also shows the classifier's own input crop and its top class and the
intended class's probability. `--set dev` shows the development faces that
tune_directions.py tunes on (every 6th, `--portraits` picks others), so looking
never touches the held-out ones. For looking at the frames (plausible faces?), not a
measure: eval_fer.py and measure_facs.py measure.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

EMOTIONS = ("neutral", "angry", "disgusted", "fear", "happy", "sad", "surprised")
CELL = 192


def load_portraits(set_name: str, only: list[str] | None):
    from eval_fer import portrait_paths

    from engine.avatar import create_avatar, load_avatar
    from engine.measure import shared_dir

    names = portrait_paths(set_name, shared_dir())
    if set_name == "dev" and not only:  # all 89 would make a huge sheet
        keys = list(names)
        names = {k: names[k] for k in keys[:-3:6] + keys[-3:]}
    if only:
        unknown = [n for n in only if n not in names]
        if unknown:
            raise SystemExit(f"unknown portrait(s) {unknown}; known: {', '.join(names)}")
        names = {n: names[n] for n in only}
    return {n: (load_avatar(None) if p is None else create_avatar(p)) for n, p in names.items()}


def face_box(frame: np.ndarray, av) -> np.ndarray:
    import cv2

    pts = av.landmarks[:, :2]
    (x0, y0), (x1, y1) = pts.min(0), pts.max(0)
    c, s = (pts.min(0) + pts.max(0)) / 2, 1.15 * max(x1 - x0, y1 - y0)
    m = np.float32([[CELL / s, 0, CELL / 2 - c[0] * CELL / s], [0, CELL / s, CELL / 2 - c[1] * CELL / s]])
    return cv2.warpAffine(frame, m, (CELL, CELL), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--set", choices=("current", "neutral", "dev"), default="neutral")
    ap.add_argument("--portraits", default="", help="comma-separated names (default: the whole set)")
    ap.add_argument("--k", type=float, default=1.0)
    ap.add_argument("--no-fer", action="store_true")
    ap.add_argument("--no-eyes", action="store_true", help="without the painted eyeballs (engine/renderers/eyes.py)")
    args = ap.parse_args(argv)
    import cv2

    from engine.emotion.mixing import apply_emotion
    from engine.renderers import create
    from engine.types import FaceState

    avatars = load_portraits(args.set, [p for p in args.portraits.split(",") if p] or None)
    clf = None
    if not args.no_fer:
        from engine.emotion.fer_eval import TO_FER, FerClassifier

        clf = FerClassifier()
    h = CELL + (CELL // 2 if clf else 0)
    sheet = np.full((len(avatars) * h + 24, len(EMOTIONS) * CELL, 3), 255, np.uint8)
    for j, e in enumerate(EMOTIONS):
        cv2.putText(sheet, f"{e} {args.k:g}", (j * CELL + 6, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1)
    for i, (name, av) in enumerate(avatars.items()):
        r = create("meshwarp", av, eyes=not args.no_eyes)
        y = 24 + i * h
        for j, e in enumerate(EMOTIONS):
            frame = r.render(apply_emotion(FaceState.neutral(), {e: 1.0}, args.k))
            sheet[y:y + CELL, j * CELL:(j + 1) * CELL] = face_box(frame, av)
            if clf is not None:
                crop = clf.crop(frame)
                if crop is None:
                    continue
                p = dict(zip(("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"),
                             clf.probs_of_crop(crop)))
                big = cv2.resize(crop, (CELL // 2, CELL // 2), interpolation=cv2.INTER_NEAREST)
                sheet[y + CELL:y + h, j * CELL:j * CELL + CELL // 2] = big[..., None]
                top = max(p, key=p.get)
                want = TO_FER[e]
                colour = (0, 130, 0) if top == want else (200, 0, 0)
                tx, ty = j * CELL + CELL // 2 + 4, y + CELL + 18
                cv2.putText(sheet, f"{top} {p[top]:.2f}", (tx, ty), cv2.FONT_HERSHEY_SIMPLEX, 0.42, colour, 1)
                cv2.putText(sheet, f"{want} {p[want]:.2f}", (tx, ty + 20), cv2.FONT_HERSHEY_SIMPLEX, 0.42,
                            (0, 0, 0), 1)
        cv2.putText(sheet, name, (4, y + 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 0), 1)
        print(f"rendered {name}", file=sys.stderr)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(args.out, cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
