"""The product's processes run numpy with one BLAS thread (engine/blas.py): no spinning BLAS workers."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(code: str, **env_over) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    env.update(env_over)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120, check=True)
    return out.stdout.strip().splitlines()[-1]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="threads counted in /proc")
def test_importing_the_transport_first_leaves_numpy_one_thread():
    threads = _run("import streaming, numpy, os; numpy.ones((64, 64)) @ numpy.ones((64, 64)); "
                   "print(len(os.listdir('/proc/self/task')))")
    assert threads == "1"


def test_the_command_line_pins_before_its_commands_load_numpy():
    code = ("import os\nfrom emolive.cli import main\ntry:\n    main(['demo', '--help'])\nexcept SystemExit:\n"
            "    pass\nprint(os.environ.get('OPENBLAS_NUM_THREADS'), 'numpy' in __import__('sys').modules)")
    assert _run(code) == "1 False"


def test_a_users_setting_is_kept():
    assert _run("import streaming, os; print(os.environ['OPENBLAS_NUM_THREADS'])", OPENBLAS_NUM_THREADS="2") == "2"
