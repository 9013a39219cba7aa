"""bench_overload: each run offers the same sessions with the overload policy and without it, and reports what
every session got (the server runs are bench_capacity's steps, faked here)."""
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_overload  # noqa: E402


def _session(i, shown):
    return {"session": f"s{i}", "fps_sent": 20.0, "fps_shown": shown, "video_fps": 20.0,
            "audio_frames_per_s": 49.5 + i / 10, "e2e_ms_p95": 200.0 + i}


def test_each_run_offers_the_sessions_with_and_without_the_policy(monkeypatch, tmp_path):
    calls = []

    async def fake_step(args, k, audio, workdir, client_args=()):
        policy = Path(args.config).read_text()
        calls.append((k, policy, client_args, args.client))
        refused = ["server_busy"] if "frame_rate" in policy else []
        return {"per_session": [_session(i, 10.0 + i) for i in range(k - len(refused))], "refused": refused,
                "server_cpu_pct": 160.0, "load_average": {"start": [5.0, 1, 1], "end": [6.5, 1, 1]}}

    monkeypatch.setattr(bench_overload, "step", fake_step)
    monkeypatch.setattr(bench_overload, "speech_file", lambda audio, tmp: ("speech.wav", {"file": "speech.wav"}))
    out_json, out_md = tmp_path / "o.json", tmp_path / "o.md"
    assert bench_overload.main(["--sessions", "3", "--runs", "2", "--stagger", "2", "--json", str(out_json),
                                "--markdown", str(out_md)]) == 0
    assert [c[1].splitlines()[0] for c in calls] == ["overload_policy: frame_rate", "overload_policy: none"] * 2
    assert all(c[0] == 3 and c[2] == ("--allow-refused", "--stagger", "2.0") and c[3] == "light" for c in calls)
    result = json.loads(out_json.read_text())
    assert [(r["run"], r["policy"]) for r in result["rows"]] == [(1, "frame_rate"), (1, "none"),
                                                                 (2, "frame_rate"), (2, "none")]
    lines = out_md.read_text().splitlines()
    rows = [line for line in lines if line.startswith("| 1 |") or line.startswith("| 2 |")]
    assert rows[0].startswith("| 1 | frame_rate | 2 (1) | 20.0 / 10.0 / 20.0; 20.0 / 11.0 / 20.0 | 10.0-11.0 | 49.5 |")
    assert rows[1].startswith("| 1 | none | 3 (0) |") and rows[1].endswith("| 160.0 | 5.0-6.5 |")
