"""Proof of reference-photo emotions on labelled real faces (confusion of the dominant emotion).

    OMP_NUM_THREADS=1 .venv/bin/python scripts/emotion/eval_reference.py [--json out/reference.json]

Faces (../shared/data/expressions), none used to build the neutral reference:
* London held-out people (number a multiple of 5): neutral photo -> expected neutral,
  smiling photo -> expected happy;
* CREMA-D actor 1001, six clips (ANG, DIS, FEA, HAP, NEU, SAD): every 4th frame of the
  middle half, upscaled 3x (faces ~60 px); a clip's label is the dominant emotion of
  the summed amounts over its frames (frame-level counts are printed too);
* Pexels stills angry.jpg, surprised.jpeg, neutral.jpeg (three different people).
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from make_neutral_reference import london, read_rgb  # noqa: E402

from engine.emotion.directions import EMOTIONS  # noqa: E402
from engine.emotion.reference import EmotionError, target_from_image  # noqa: E402
from engine.measure import read_video_rgb, shared_dir  # noqa: E402

CREMAD = {"ANG": "angry", "DIS": "disgusted", "FEA": "fear", "HAP": "happy", "NEU": "neutral", "SAD": "sad"}


def dominant(t) -> str:
    return "neutral" if t.intensity <= 0 else t.dominant()


def main(argv=None) -> int:
    import cv2

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    sd = shared_dir()
    if sd is None:
        print("../shared not present", file=sys.stderr)
        return 2
    ex = sd / "data" / "expressions"
    rows: list[tuple[str, str, str, float]] = []  # (item, expected, got, intensity)
    for kind, want in (("neutral", "neutral"), ("smiling", "happy")):
        for p in london(kind, held_out=True):
            t = target_from_image(read_rgb(p))
            rows.append((f"london/{p.name}", want, dominant(t), t.intensity))
    for f, want in (("angry.jpg", "angry"), ("surprised.jpeg", "surprised"), ("neutral.jpeg", "neutral")):
        t = target_from_image(read_rgb(ex / "pexels" / f))
        rows.append((f"pexels/{f}", want, dominant(t), t.intensity))
    frame_counts: dict[str, Counter] = {}
    for code, want in CREMAD.items():
        frames, _ = read_video_rgb(ex / "cremad" / f"1001_DFA_{code}_XX.flv")
        n = len(frames)
        total = np.zeros(len(EMOTIONS))
        frame_counts[code] = Counter()
        for fr in frames[n // 4: 3 * n // 4: 4]:
            try:
                t = target_from_image(cv2.resize(fr, None, fx=3, fy=3, interpolation=cv2.INTER_CUBIC))
            except EmotionError:
                continue
            total += t.amounts()
            frame_counts[code][dominant(t)] += 1
        total[EMOTIONS.index("neutral")] = 0
        got = EMOTIONS[int(np.argmax(total))] if total.sum() > 0 else "neutral"
        rows.append((f"cremad/1001_DFA_{code}", want, got, float(total.sum() / max(sum(frame_counts[code].values()), 1))))
    groups = {"london neutral": [r for r in rows if r[0].startswith("london") and r[1] == "neutral"],
              "london smiling": [r for r in rows if r[0].startswith("london") and r[1] == "happy"],
              "pexels stills": [r for r in rows if r[0].startswith("pexels")],
              "cremad clips": [r for r in rows if r[0].startswith("cremad")]}
    for g, rs in groups.items():
        ok = sum(r[1] == r[2] for r in rs)
        print(f"{g}: {ok}/{len(rs)} right; got " + ", ".join(f"{k} {v}" for k, v in Counter(r[2] for r in rs).items()))
    for r in rows:
        if not r[0].startswith("london"):
            print(f"  {r[0]}: expected {r[1]}, got {r[2]} (intensity {r[3]:.2f})")
    for code, c in frame_counts.items():
        print(f"  cremad {code} frames: " + ", ".join(f"{k} {v}" for k, v in c.most_common()))
    # Smiling vs neutral of the same held-out person: does the happy amount rise?
    lon = {r[0].split("/")[1][:3] + r[1]: r for r in rows if r[0].startswith("london")}
    total = sum(1 for r in rows if r[0].startswith("london") and r[1] == "happy")
    right = sum(r[1] == r[2] for r in rows)
    print(f"all: {right}/{len(rows)} right ({right / len(rows):.0%}); london pairs: {total}")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "cremad_frames": {k: dict(v) for k, v in frame_counts.items()},
                                               "pairs": len(lon)}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
