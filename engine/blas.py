"""One BLAS thread per process, set before numpy loads.

The engine's matrix work is small (face states of 52 coefficients against the rig, mel frames through a
small network): a multi-threaded BLAS gains nothing on it, and numpy's OpenBLAS keeps its worker threads
spinning (sched_yield) between calls. Measured on this 2-core machine, one session of the in-process
server fed by a WHIP publisher and watched by no one: 102 % of a core with OpenBLAS's default threads,
18 % with one; an /offer session with its receiving client in the same process: 105-133 % against 38 %.
Sessions get their parallelism from their own threads and worker processes instead. Variables already set
by the user are kept.
"""
from __future__ import annotations

import os

BLAS_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def pin_blas_threads() -> None:
    """Call before numpy is imported (later calls change nothing for this process, only for its children)."""
    for var in BLAS_THREAD_VARS:
        os.environ.setdefault(var, "1")
