"""The streaming benchmark (`emolive bench`) as a script: see profiler/bench.py and docs/design/performance.md.

Run:  .venv/bin/python benchmarks/bench_stream.py --seconds 20 --sessions 1 --runs 3 --json out/bench_stream.json
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from profiler.bench import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
