"""benchmarks/bench_fuzz.py at CI size: floods and bad input against `python -m streaming.server --workers 2`
while a witness session streams. No server process exits, every message, offer, push stream and image
gets its documented answer, no session is lost or left open, and the witness keeps receiving frames.
Timing (the witness's fps) is the benchmark's to report, not asserted here: a loaded machine breaks it."""
import asyncio
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def test_fuzz_campaign_breaks_nothing(tmp_path):
    import bench_fuzz

    args = bench_fuzz.build_parser().parse_args([
        "--workers", "2", "--ws", "300", "--sdp", "50", "--push", "6", "--images", "6", "--seed", "7",
        "--baseline", "1", "--settle", "1", "--witness-seconds", "90", "--log", str(tmp_path / "server.log")])
    r = asyncio.run(bench_fuzz.main_async(args))
    problems = {c: t["unexpected_examples"] for c, t in r["categories"].items() if t["unexpected"]}
    assert r["unexpected"] == 0, problems
    assert r["crashes"] == 0, r["watch"]
    assert r["server_log"]["tracebacks"] == 0, r["server_log"]
    sent = {c: t["sent"] for c, t in r["categories"].items()}
    assert sent["ws"] >= 300 and sent["sdp"] == 50 and sent["push"] == 6 and sent["images"] == 6, sent
    codes = r["categories"]["sdp"]["codes"]
    assert codes.get("400 bad_offer", 0) > 0 and not any(c.startswith("5") and "server_full" not in c for c in codes)
    assert r["sessions_disturbed"] == 0 and r["sessions_after"] == r["sessions_expected_after"], r["sessions_alive"]
    w = r["witness"]  # the witness's video went on through the campaign and after it, in order
    assert w["frames"] > 0 and w["frames_after"] > 0 and w["rtp_steps_back"] == 0, w
    assert all(t["frames"] > 0 for t in r["targets"]), r["targets"]
