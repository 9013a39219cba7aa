"""bench_capacity --runs: the whole search repeated, every run reported, the capacity the minimum over runs."""
import asyncio
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_capacity  # noqa: E402


def _step(k, holds, load=2.0):
    return {"sessions": k, "holds": holds, "fps_sent_min": 25.0 if holds else 20.0,
            "drop_pct_max": 0.0 if holds else 12.5, "fps_received": [25.0] * k, "seconds": 15.0,
            "server_cpu_pct": 30.0 * k, "client_cpu_pct": 5.0 * k, "server_processes": 3,
            "load_average": {"start": [load, 2.0, 2.0], "end": [load + 1, 2.0, 2.0]},
            "per_session": [{"session": f"s{i}", "e2e_ms_p95": 120.0} for i in range(k)]}


def test_runs_repeat_the_search_and_the_capacity_is_the_minimum(monkeypatch, tmp_path, capsys):
    held_per_run = iter([3, 2, 4])
    started = []

    async def fake_step(args, k, audio, workdir):
        if k == 1:
            started.append(held := next(held_per_run))
            fake_step.held = held
        return _step(k, k <= fake_step.held)

    monkeypatch.setattr(bench_capacity, "step", fake_step)
    monkeypatch.setattr(bench_capacity, "speech_file", lambda audio, tmp: ("speech.wav", {"file": "speech.wav"}))
    out_json, out_md = tmp_path / "c.json", tmp_path / "c.md"
    assert bench_capacity.main(["--max-sessions", "6", "--runs", "3", "--json", str(out_json),
                                "--markdown", str(out_md)]) == 0
    result = json.loads(out_json.read_text())
    assert started == [3, 2, 4]
    assert result["capacity"] == 2 and result["capacity_per_run"] == [3, 2, 4]
    assert [len(r["steps"]) for r in result["runs"]] == [4, 3, 5]  # each run steps up to the first that fails
    assert result["steps"] == result["runs"][1]["steps"]  # the table of the run that gave the minimum
    text = out_md.read_text()
    assert "Capacity: 2 session(s)" in text and "the minimum over 3 runs: 3, 2, 4" in text
    assert "Run 1: 3 session(s) held (load average 2.0-3.0)" in text and "Run 3: 4 session(s) held" in text


def test_one_run_reports_as_before(monkeypatch, tmp_path):
    async def fake_step(args, k, audio, workdir):
        return _step(k, k <= 2)

    monkeypatch.setattr(bench_capacity, "step", fake_step)
    monkeypatch.setattr(bench_capacity, "speech_file", lambda audio, tmp: ("speech.wav", {"file": "speech.wav"}))
    args = bench_capacity.argparse.Namespace(sessions=None, max_sessions=6, runs=1)
    result = asyncio.run(bench_capacity.main_async(args_with_defaults(args)))
    assert result["capacity"] == 2 and result["capacity_per_run"] == [2] and len(result["runs"]) == 1
    text = bench_capacity.markdown(result)
    assert text.startswith("Capacity: 2 session(s)") and "Run 1" not in text


def args_with_defaults(args):
    for name, value in (("workers", "2"), ("client", "light"), ("fps", 25), ("audio", None)):
        setattr(args, name, value)
    return args
