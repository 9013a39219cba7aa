"""bench_neural_mouth runs end to end on a few frames and writes every measure it prints.

In a child process: the benchmark pins itself to one core and sets one-thread
environment variables, which must not leak into the test process.
"""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_neural_mouth_smoke(tmp_path):
    out = tmp_path / "nm.json"
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_neural_mouth.py"), "--frames", "6",
                          "--repeats", "2", "--json", str(out)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    result = json.loads(out.read_text())
    assert result["size"] == [512, 512]
    for key in ("apply", "render_with_neural_mouth", "render_without_neural_mouth"):
        m = result[key]
        assert m["n"] == 6 and len(m["runs_median_ms"]) == 2
        assert 0 < m["min_run_median_ms"] <= m["median_ms"] <= m["p95_ms"]
    assert len(result["load_avg"]["start"]) == 3
    assert "apply median" in run.stdout
