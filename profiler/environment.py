"""What a bench run stands on: its process settings, its speech input, the machine and the code revision.

Used by `emolive bench` (profiler/bench.py) and benchmarks/bench_capacity.py.
Importing it pins the numeric libraries to one thread and quiets
mediapipe's logs in this process and in the servers it starts (children
inherit the environment), so import it before numpy.
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import platform  # noqa: E402
import subprocess  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SPEECH = "data/speech/librispeech/198-209-0000_F_HeatherBarnett.wav"  # in ../shared: 13.9 s, read speech
SYNTH_TEXT = ("The quick brown fox jumps over the lazy dog. She sells sea shells by the sea shore. "
              "How much wood would a woodchuck chuck if a woodchuck could chuck wood?")


class BenchError(RuntimeError):
    """The bench cannot run (no speech file, server setup failed, the client peers failed)."""


def speech_file(explicit: str | None, workdir: Path) -> tuple[str, str]:
    """(path, description): --audio, else a fixed LibriSpeech file from ../shared, else espeak-ng speech."""
    if explicit:
        if not Path(explicit).is_file():
            raise BenchError(f"--audio {explicit}: no such file")
        return explicit, explicit
    from engine.measure import shared_dir

    shared = shared_dir()
    if shared is not None and (Path(shared) / SPEECH).is_file():
        return str(Path(shared) / SPEECH), f"../shared/{SPEECH}"
    out = workdir / "speech.wav"
    try:  # espeak-ng is deterministic for a given text and voice
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "160", "-w", str(out), SYNTH_TEXT], check=True,
                       capture_output=True)
    except (OSError, subprocess.CalledProcessError) as e:
        raise BenchError(f"no speech input: ../shared is absent and espeak-ng failed ({e}); pass --audio FILE") from e
    return str(out), "espeak-ng -v en-us -s 160 (fixed text in profiler/environment.py)"


def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    versions = {}
    for mod in ("aiortc", "av", "numpy", "onnxruntime", "numba", "cv2"):
        try:
            versions[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001 - a missing optional module is just not listed
            pass
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": mem, "python": platform.python_version(),
            "os": f"{platform.system()} {platform.release()}", "libraries": versions}


def git_rev() -> str | None:
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return rev.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
