"""benchmarks/bench_soak.py, CI-sized: two sessions against the real server process tree (front + two workers)
for 40 s, speech looping, frame ids in the pixels and audio marks in the voice.

Asserted: what the design makes independent of load. Audio and video are counted on one sample timeline,
so at the receiver every audio mark's frame carries the video pts of the mark's own tick, or of a whole
number of ticks later when rendering was late: the timeline offset never drifts by a fraction of a frame,
however starved the machine (the offset as decoded and at RTP arrival move with the load: reported by the
benchmark, not asserted). Frame ids keep advancing in every window; the server holds exactly the
sessions the peers opened in every window, its worker processes stay the same, and it is back at 0
sessions once the peers have closed. fps, drops and RSS are the benchmark's to report, not asserted.
"""
import importlib.util
import json
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]


def _bench_soak():
    spec = importlib.util.spec_from_file_location("bench_soak", ROOT / "benchmarks" / "bench_soak.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_short_soak_keeps_one_timeline_and_its_sessions(tmp_path):
    pytest.importorskip("aiortc")
    soak = _bench_soak()
    out = tmp_path / "soak.json"
    rc = soak.main(["--minutes", "0.67", "--sessions", "2", "--workers", "2", "--window", "10", "--warmup", "3",
                    "--json", str(out)])
    assert rc in (0, 1), rc  # 1: a benchmark target missed (fps, RSS, drops: load-dependent, not asserted)
    r = json.loads(out.read_text())
    s, book, windows = r["summary"], r["bookkeeping"], r["windows"]
    assert len(windows) == 4 and all(len(w["sessions"]) == 2 for w in windows)

    # the session bookkeeping: the two sessions the peers opened, held in every window, closed after
    assert book["client_sessions"] == 2 and book["sessions_in_metrics"] == 2
    assert book["sessions_per_window"] == [2] * (len(windows) + 1)
    assert book["worker_processes_unchanged"] and book["sessions_after_close"] == 0
    assert s["checks"]["bookkeeping"]

    # frame ids keep advancing: every window brings frames with newer ids, for both sessions
    for n in range(2):
        ids = [w["sessions"][n]["last_id"] for w in windows]
        assert all(i is not None for i in ids), ids
        assert all(0 < (b - a) % 65536 < 32768 for a, b in zip(ids, ids[1:])), ids
        assert all(w["sessions"][n]["ids_back"] == 0 for w in windows)

    # one timeline: each mark's frame went out at its own tick or whole ticks later, nothing in between
    for sid, t in s["timeline"].items():
        assert t["marks"] >= 10, (sid, t)  # ~1 mark a second for 40 s; a starved client loses some
        assert t["window_slip_max_ms"] <= soak.SLIP_MAX_MS, (sid, t)  # the median of every window
        assert t["slipped_marks"] <= 2, (sid, t)  # single marks misread by a starved receiver, at most
    assert all(d["timeline"]["drift_ms"] is not None for d in s["offset"].values()), s["offset"]
    assert s["checks"]["timeline"]
