"""One BLAS thread per process, set before numpy loads.

The engine's matrix work is small (face states of 52 coefficients against the rig, mel frames through a
small network): a multi-threaded BLAS gains nothing on it, and numpy's OpenBLAS keeps its worker threads
spinning (sched_yield) between calls: one session without viewers cost 106-110 % of a core in the server
process with OpenBLAS's default threads and 33 % with one (`benchmarks/bench_whep.py`, figures and command
in docs/design/performance.md, "One BLAS thread per process"). Sessions get their parallelism from their own threads and worker processes instead. Variables already set
by the user are kept.
"""
from __future__ import annotations

import os

BLAS_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def pin_blas_threads() -> None:
    """Call before numpy is imported (later calls change nothing for this process, only for its children)."""
    for var in BLAS_THREAD_VARS:
        os.environ.setdefault(var, "1")
