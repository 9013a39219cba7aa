"""Print the GRID s1 split of docs/design/diffusion.md as arguments of engine.diffusion.train.

Training: every 10th s1 clip in name order (100 clips); held out: clip 7 + 125 k (8 clips, none trained on).

    .venv/bin/python -m engine.diffusion.train $(.venv/bin/python scripts/diffusion/grid_s1_args.py) --out DIR
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from engine.measure import shared_dir  # noqa: E402


def split(s1: Path) -> tuple[list[Path], list[Path]]:
    clips = sorted(s1.glob("*.mp4"))
    train, held = clips[::10], [clips[7 + 125 * k] for k in range(8)]
    assert not set(train) & set(held)
    return train, held


if __name__ == "__main__":
    sd = shared_dir()
    if sd is None:
        raise SystemExit("../shared not present")
    train, held = split(sd / "data" / "grid" / "s1")
    print(" ".join(map(str, train + held)), "--heldout-names", " ".join(c.stem for c in held))
