"""`emolive bench` end to end, tiny: one session for a few seconds on the real engine; keys and sanity, no speeds."""
import json
import math

import pytest

from trace_checks import check_well_nested

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def _finite_positive(x):
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def test_tiny_bench_run_writes_every_figure(tmp_path):
    pytest.importorskip("aiortc")
    from profiler.bench import main

    out, trace, md, plots = tmp_path / "b.json", tmp_path / "t.json", tmp_path / "b.md", tmp_path / "plots"
    rc = main(["--seconds", "3", "--warmup", "1", "--sessions", "1", "--json", str(out), "--trace", str(trace),
               "--markdown", str(md), "--plots", str(plots)])
    assert rc == 0
    r = json.loads(out.read_text())
    for key in ("stages", "e2e_ms", "first_frame_ms", "fps", "sessions", "dropped_frames", "machine", "git_rev"):
        assert key in r, key
    assert r["sessions"] == 1
    for stage in ("resample", "features", "a2e", "emotion", "render", "convert", "encode", "send"):
        st = r["stages"][stage]
        assert all(_finite_positive(st[q]) for q in ("p50_ms", "p95_ms", "p99_ms")), (stage, st)
        assert st["p50_ms"] <= st["p95_ms"] <= st["p99_ms"]
    e = r["e2e_ms"]
    assert all(_finite_positive(e[q]) for q in ("p50", "p95", "p99")) and e["n"] > 0
    assert _finite_positive(e["floor_ms"]) and _finite_positive(e["ratio_p95"])
    # the frame showing a sample cannot leave before the model's look-ahead past the frame's start is in;
    # the sample sits at most one frame period into that frame
    assert e["p50"] >= r["settings"]["model_lookahead_ms"] - 1000.0 / r["settings"]["fps"]
    assert 0 <= e["mean_offset_in_frame_ms"] < 1000.0 / r["settings"]["fps"]
    assert set(r["per_session"][0]["input_timeline_ms"]) == {"gap_ms", "drained_ms", "input_dropped_ms",
                                                                   "audio_skipped_ms"}
    assert _finite_positive(r["first_frame_ms"]) and _finite_positive(r["fps"])
    assert isinstance(r["dropped_frames"], int) and r["dropped_frames"] >= 0
    m = r["machine"]
    assert m["cores"] >= 1 and m["cpu"] and m["python"] and len(m["load_average_start"]) == 3
    assert r["cpu"]["process_pct"] > 0 and r["memory"]["rss_end_mb"] > 0
    rx = r["per_session"][0]["receiver"]
    assert rx["frames_received"] > 0 and rx["frames_with_id"] > 0  # the frame ids survive VP8
    assert r["av_offset_ms"] is not None and math.isfinite(r["av_offset_ms"]["p50"])
    # the trace opens: Chrome trace events, spans well nested on every lane
    data = json.loads(trace.read_text())
    spans = [ev for ev in data["traceEvents"] if ev["ph"] == "X"]
    assert {"render", "encode", "send", "a2e"} <= {ev["name"] for ev in spans}
    check_well_nested(data["traceEvents"])
    assert "| render |" in md.read_text()
    assert {p.name for p in plots.iterdir()} >= {"stages_cdf.png", "e2e_hist.png"}


def test_bad_arguments_get_a_clear_error(capsys):
    from profiler.bench import main

    assert main(["--seconds", "0"]) == 2
    assert "--seconds" in capsys.readouterr().err
    assert main(["--audio", "/nonexistent.wav", "--seconds", "1"]) == 1
    assert "no such file" in capsys.readouterr().err
