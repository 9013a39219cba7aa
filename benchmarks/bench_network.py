"""Bad networks: one streaming session through loss, jitter, an outage and a vanished peer, measured at the receiver.

    .venv/bin/python benchmarks/bench_network.py --seconds 10 --json out/bench_network.json [--scenarios clean loss5 ...]

The real server app (real audio model, meshwarp, default avatar) serves on loopback in this process, with
frame ids in the pixels and audio marks in the voice (streaming/frame_marks.py, bench_audio_marks.py). For
each scenario one aiortc client peer (profiler/client.Peer: sends LibriSpeech speech, receives video
and audio) connects on a clean link; once video flows its sockets are impaired (benchmarks/netsim.py, both
directions, seeded) and the receiver measures for --seconds of live video:

* clean, loss5 / loss10 (random loss), jitter30 (0-30 ms random delay, reordering), outage2s (nothing passes
  either way for 2 s, then a clean link: the same session must recover, no new offer), gone (nothing passes
  ever, no DTLS close: the server must clean the session up by itself).
* video: live frames decoded per second once the window starts (after the outage: from the first live
  frame), the share of the frames the server sent (by frame id) that were decoded at all and in time, frame
  gaps, frames without a readable id; "stale" frames are those decoded more than STALE_S after their time
  on the line of the clean link (retransmitted after an outage: a player drops them).
* A/V offset from the audio marks, frame k against the mark mixed in at frame k's first sample: at the
  transport (`at_arrival`: the frame's last RTP packet in, minus the arrival of the audio packet the mark
  was decoded from + the mark's place in it) and out of aiortc's decoders (`at_decode`; aiortc holds each
  frame until the next one's first packet, one frame period, and has no lip sync). Positive: video after
  its audio.
* audio: frames received, missing at the receiver (pts gaps a player conceals; `concealed`: packets the
  receiver's buffer gave up as lost or got too late), and the server's side: inbound voice bridged with
  silence (`gap_ms`), model restarts, outbound voice skipped by an overloaded loop.
* outage: time from the link's return to the first live video frame and the first audio frame.
* gone: time from the cut to the session's close, and the reason.

The client peer runs in this process, so its audio receiver uses the server's shallow jitter buffer
(streaming/rtp_tuning.py, installed by create_app) rather than aiortc's 4-packet one. Used by
tests/benchmarks/test_network_impairment.py (test engine parts, short windows); figures in docs/design/reliability.md.
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# first, before numpy loads: one thread for the numeric libraries, quiet logs
from profiler.environment import BenchError, git_rev, machine_info, speech_file  # noqa: E402

import argparse  # noqa: E402
import asyncio  # noqa: E402
import os  # noqa: E402
import shlex  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from bench_capacity import write_outputs  # noqa: E402
from netsim import CLEAN, ImpairedPeer, Profile  # noqa: E402
from streaming.audio_marks import MarkPlan  # noqa: E402
from profiler.client import Peer  # noqa: E402
from profiler.figures import _pct, _rtp_times, mark_frames  # noqa: E402
from streaming.frame_marks import read as read_mark  # noqa: E402
from streaming.rtp_tuning import SLOT  # noqa: E402

STALE_S = 0.2  # a frame decoded this much after its time is stale (a player would drop it)
# an audio mark every 10 frames (400 ms at 25 fps: 10 in a 4 s window; offsets within +-200 ms pair
# unambiguously); a mark whose frame the server skipped (a late render under load) finds no frame
MARK_EVERY = 10
WARMUP_FRAMES = 25  # live frames before the link is impaired (the video line for "live" comes from them)


@dataclass(frozen=True)
class Scenario:
    name: str
    what: str
    profile: Profile = CLEAN
    outage_s: float = 0.0  # nothing passes for this long when the window starts
    gone: bool = False  # nothing passes, ever


SCENARIOS = {s.name: s for s in (
    Scenario("clean", "no impairment"),
    Scenario("loss5", "5 % random loss, both ways", Profile(loss=0.05)),
    Scenario("loss10", "10 % random loss, both ways", Profile(loss=0.10)),
    Scenario("jitter30", "0-30 ms random delay, both ways (reorders)", Profile(jitter_s=0.03)),
    Scenario("outage2s", "nothing passes for 2 s, then a clean link", outage_s=2.0),
    Scenario("gone", "the peer vanishes: nothing passes, no DTLS close", gone=True),
)}


async def until(cond, timeout: float, what: str, step: float = 0.05) -> None:
    """Wait for cond() (checked every `step` s); BenchError after `timeout` s (a failure, not a measurement)."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(step)


class Receiver:
    """What the client peer got, read against the video line: frame id k is live at line + k * period."""

    def __init__(self, peer: Peer, fps: int, sample_rate: int = 48_000) -> None:
        self.peer = peer
        self.period = 1.0 / fps
        self.spf = sample_rate // fps
        self.rate = sample_rate
        self.line: float | None = None

    def fix_line(self) -> None:
        """The video line from the frames decoded so far on the clean link: arrival - id * period, its 10th
        percentile (the frames on time; the first ones after connecting come late)."""
        v = [(t, k) for t, _, k in self.peer.video if k >= 0]
        self.line = float(np.percentile([t - k * self.period for t, k in v], 10))

    def live(self, after: float) -> list[tuple[float, int, int]]:
        """Frames with an id decoded after `after`, at most STALE_S behind their time on the line."""
        return [v for v in self.peer.video if v[0] > after and v[2] >= 0
                and v[0] - (self.line + v[2] * self.period) <= STALE_S]

    def stale(self, after: float) -> int:
        return sum(1 for v in self.peer.video if v[0] > after and v[2] >= 0) - len(self.live(after))

    def video_figures(self, t0: float, t1: float, sent_ids: set[int]) -> dict[str, Any]:
        """Live frames decoded in [t0, t1]; `sent_ids`: the ids of the frames the server sent."""
        got = [v for v in self.peer.video if t0 <= v[0] <= t1]
        live = [v for v in self.live(t0) if v[0] <= t1]
        out: dict[str, Any] = {"frames": len(got), "live": len(live), "stale": self.stale(t0) - self.stale(t1),
                               "no_id": sum(1 for v in got if v[2] < 0)}
        if len(live) < 2:
            return out
        times = np.array([v[0] for v in live])
        ids = [v[2] for v in live]
        sent = {k for k in sent_ids if k is not None and ids[0] <= k <= ids[-1]}
        decoded = {v[2] for v in self.peer.video if v[2] >= 0}  # live or late
        gaps = 1000.0 * np.diff(times)
        out.update({
            "fps": round((len(live) - 1) / (times[-1] - times[0]), 2),
            # of the frames the server sent in the window (repeats count once), those decoded here, and
            # those decoded in time (live)
            "received_share": round(len(sent & decoded) / max(len(sent), 1), 3),
            "live_share": round(len(sent & set(ids)) / max(len(sent), 1), 3),
            # the timeline's frames in the window that were sent (the rest were skipped by a late renderer)
            "sent_share": round(len(sent) / (ids[-1] - ids[0] + 1), 3),
            # the timeline's order: never an older frame after a newer one (a repeated frame has the same id)
            "ids_in_order": bool(all(b >= a for a, b in zip(ids, ids[1:]))),
            "first_id": ids[0], "last_id": ids[-1],
            "gap_ms": {**_pct(gaps, 1), "max": round(float(gaps.max()), 1)},
            "gaps_over_2_periods": int(np.sum(gaps > 2000.0 * self.period)),
        })
        return out

    def av_offsets(self, t0: float, t1: float) -> dict[str, Any]:
        """A/V offsets (ms) of the marks decoded in [t0, t1] against the live frames (a stale one, held up by
        an outage, is not shown by a player): at the transport (the frame's last RTP packet in, minus the
        arrival of the audio packet the mark was decoded from + the mark's place in it) and at aiortc's
        decoders."""
        marks = self.peer.marks()
        decoded = self.live(float("-inf"))
        vt = _rtp_times(self.peer.rtp["video"], last_of_frame=True)
        at = _rtp_times(self.peer.rtp["audio"], last_of_frame=False)
        apts = np.array(sorted(at))
        complete = [(vt[pts], pts, k) for _, pts, k in decoded if pts in vt]
        heard = []  # (arrival of the packet the mark came in + its place in it, pts, score)
        for t, pts, score in marks:
            i = int(np.searchsorted(apts, pts, side="right")) - 1
            if i >= 0:
                heard.append((at[int(apts[i])] + (pts - apts[i]) / self.rate, pts, score))
        out: dict[str, Any] = {"marks": sum(1 for m in marks if t0 <= m[0] <= t1)}
        # each pairing on one kind of time (marks and frames both at arrival, or both decoded), so that a
        # decoder running late under load does not pair a mark with the frame a mark period away
        for name, frames, found in (("at_arrival", complete, heard), ("at_decode", decoded, marks)):
            pairs = mark_frames(found, frames, self.spf, self.rate, t0, t1, every=MARK_EVERY)
            out[name] = _offset_figures([1000.0 * (f[0] - m[0]) for m, f in pairs])
        return out

    def audio_figures(self, t0: float, t1: float) -> dict[str, Any]:
        got = [a for a in self.peer.audio if t0 <= a[0] <= t1]
        out: dict[str, Any] = {"frames": len(got)}
        if len(got) < 2:
            return out
        pts = np.array([a[1] for a in got])
        steps = np.diff(pts) // got[0][2]
        out.update({
            # 20 ms frames that never came out of the decoder (lost, given up by the jitter buffer, or skipped
            # by the server): a player conceals them
            "missing_frames": int(np.sum(steps[steps > 1] - 1)),
            "received_share": round(len(got) / (int((pts[-1] - pts[0]) // got[0][2]) + 1), 3),
            "max_gap_ms": round(1000.0 * float(np.diff([a[0] for a in got]).max()), 1),
        })
        return out


def _offset_figures(offsets: list[float]) -> dict[str, Any] | None:
    if not offsets:
        return None
    a = np.array(offsets)
    return {**_pct(a, 1), "max_abs": round(float(np.abs(a).max()), 1), "mean": round(float(a.mean()), 1)}


def _server_snapshot(runner) -> dict[str, float]:
    sched = runner.scheduler
    return {"frames_sent": runner.counters["frames_sent"], "frames_dropped": runner.counters["frames_dropped"],
            "frames_repeated": runner.slot.repeats, "audio_chunks_in": runner.counters["audio_chunks_in"],
            "gap_ms": 1000.0 * sched.stats.get("gap_samples", 0) / sched.config.sample_rate,
            "restarts": sched.stats.get("restarts", 0),
            # outbound voice skipped by an overloaded loop (a pts jump at the receiver that is not the network's)
            "audio_skipped_ms": 1000.0 * sched.stats.get("audio_skipped_samples", 0) / sched.config.sample_rate}


def _audio_buffer(pc) -> dict[str, int]:
    """The receiving peer's audio jitter buffer counters (rtp_tuning.AudioJitterBuffer: packets given up
    as lost, arrived too late), zeros with another buffer."""
    for r in pc.getReceivers():
        stats = getattr(getattr(r, SLOT, None), "stats", None)
        if r.track is not None and r.track.kind == "audio" and isinstance(stats, dict):
            return {"lost": stats["lost"], "late": stats["late"]}
    return {"lost": 0, "late": 0}


def _delta(a: dict, b: dict) -> dict[str, float]:
    return {k: round(b[k] - a[k], 1) for k in a}


async def run_scenario(http, url: str, sessions: dict, scenario: Scenario, audio: str, *, frames: int, fps: int,
                       seed: int = 1, connect_timeout: float = 30.0, cleanup_timeout: float = 60.0) -> dict[str, Any]:
    """One session through `scenario`: measured until `frames` live video frames have arrived after the
    impairment started (after the outage: after the link's return). BenchError on a failure timeout."""
    peer = Peer(0)
    link = None
    closed_reason: list[str] = []
    try:
        await peer.connect(http, url, audio)
        runner = sessions[peer.session_id]
        runner.mark_frames = True
        runner.mark_audio = MarkPlan(runner.scheduler.config.samples_per_video_frame, every=MARK_EVERY)
        runner.listeners.add(lambda msg: msg.get("type") == "closed" and closed_reason.append(msg.get("reason")))
        link = ImpairedPeer(peer.pc, seed=seed)
        rx = Receiver(peer, fps, runner.scheduler.config.sample_rate)
        sent_ids: set[int] = set()
        runner.video_out.tap = lambda pts, yuv: sent_ids.add(read_mark(yuv))  # the id stamped in its luma rows
        await asyncio.wait_for(peer.first_video.wait(), connect_timeout)
        t_first = peer.video[0][0]
        await until(lambda: sum(1 for v in peer.video if v[0] > t_first and v[2] >= 0) >= WARMUP_FRAMES,
                    connect_timeout, "the warm-up frames")
        rx.fix_line()
        before, buffer_before = _server_snapshot(runner), _audio_buffer(peer.pc)
        t_start = time.monotonic()
        link.set_profile(scenario.profile)
        result: dict[str, Any] = {"scenario": scenario.name, "what": scenario.what, "profile": str(scenario.profile),
                                  "session": peer.session_id[:8],
                                  "last_id_before": max(v[2] for v in peer.video if v[0] <= t_start)}
        if scenario.gone:
            link.outage(None)
            states: list[tuple[float, str]] = []
            pc = runner.pc
            pc.on("connectionstatechange", lambda: states.append((round(time.monotonic() - t_start, 2),
                                                                   pc.connectionState)))
            try:
                await asyncio.wait_for(runner.closed.wait(), cleanup_timeout)
            except asyncio.TimeoutError:
                raise BenchError(f"the vanished peer's session was not closed within {cleanup_timeout:g} s") from None
            result.update({"cleanup_s": round(time.monotonic() - t_start, 2), "reason": closed_reason[-1:] or None,
                           "server_states": states, "session_gone": peer.session_id not in sessions})
            return result
        t_clear = t_start
        if scenario.outage_s:
            link.outage(scenario.outage_s)
            t_clear = t_start + scenario.outage_s
        await until(lambda: time.monotonic() >= t_clear and len(rx.live(t_clear)) >= 1,
                    scenario.outage_s + connect_timeout, "video after the impairment started")
        t0 = rx.live(t_clear)[0][0]
        await until(lambda: len(rx.live(t0)) >= frames, frames / fps * 4 + connect_timeout, f"{frames} live frames")
        t1 = rx.live(t0)[frames - 1][0]
        # taken now: the figures below hold the loop a while (the mark search)
        after, buffer_after = _server_snapshot(runner), _audio_buffer(peer.pc)
        if closed_reason or runner.closed.is_set():
            raise BenchError(f"the session closed during the scenario: {closed_reason}")
        result.update({
            "window_s": round(t1 - t0, 2),
            "video": rx.video_figures(t0, t1, sent_ids),
            "av_offset_ms": rx.av_offsets(t0, t1),
            "audio": {**rx.audio_figures(t0, t1), "concealed": _delta(buffer_before, buffer_after)},
            "server": _delta(before, after),
            "same_session": sessions.get(peer.session_id) is runner,
            "link": link.counters(),
        })
        if scenario.outage_s:
            audio_after = [a for a in peer.audio if a[0] > t_clear]
            result["recovery"] = {
                "video_s": round(t0 - t_clear, 3),  # to the first live frame
                "audio_s": round(audio_after[0][0] - t_clear, 3) if audio_after else None,
                "stale_frames": rx.stale(t_clear),  # sent during the outage, retransmitted after it
            }
        return result
    finally:
        if link is not None:
            link.restore()
            link.set_profile(CLEAN)  # so that the DTLS close reaches the server
        await peer.close()
        if link is not None:
            link.close()
        await until(lambda: peer.session_id not in sessions, cleanup_timeout, "the session to close")


async def bench(args) -> dict[str, Any]:
    from types import SimpleNamespace

    import aiohttp

    from profiler.bench import Bench
    from streaming.config import load_config
    from streaming.server import SESSIONS

    cfg = load_config(args.config, ice_loopback=True, port=0, max_sessions=2)
    workdir = Path(tempfile.mkdtemp(prefix="emolive-bench-network-"))
    audio, audio_desc = speech_file(args.audio, workdir)
    load_start = [round(x, 2) for x in os.getloadavg()]
    results = []
    async with Bench(SimpleNamespace(audio_rx_buffer="shallow"), cfg, audio, workdir) as b:
        async with aiohttp.ClientSession() as http:
            for name in args.scenarios:
                r = await run_scenario(http, b.url, b.app[SESSIONS], SCENARIOS[name], audio,
                                       frames=round(args.seconds * cfg.fps), fps=cfg.fps, seed=args.seed,
                                       cleanup_timeout=args.cleanup_timeout)
                r["load_average"] = [round(x, 2) for x in os.getloadavg()]
                print(summary_line(r), flush=True)
                results.append(r)
    return {"version": 1, "command": "benchmarks/bench_network.py " + " ".join(shlex.quote(a) for a in args.argv),
            "git_rev": git_rev(), "machine": {**machine_info(), "load_average_start": load_start,
                                               "load_average_end": [round(x, 2) for x in os.getloadavg()]},
            "input": audio_desc, "settings": {"fps": cfg.fps, "peer_timeout_s": getattr(cfg, "peer_timeout_s", None),
                                               "seconds": args.seconds, "seed": args.seed},
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "scenarios": results}


def summary_line(r: dict) -> str:
    if "cleanup_s" in r:
        return f"{r['scenario']}: session closed after {r['cleanup_s']} s ({r['reason']})"
    v, av, a = r["video"], r["av_offset_ms"]["at_arrival"] or {}, r["audio"]
    rec = f", video back after {r['recovery']['video_s']} s" if "recovery" in r else ""
    return (f"{r['scenario']}: {v.get('fps')} fps, {100 * v.get('received_share', 0):.0f} % of frames, "
            f"A/V p50 {av.get('p50')} / p95 {av.get('p95')} / max |{av.get('max_abs')}| ms, "
            f"audio missing {a.get('missing_frames')} frames{rec}")


def markdown(result: dict) -> str:
    rows = ["| scenario | fps (live) | frames sent: decoded / in time | max gap, ms | A/V offset at arrival p50 / p95 / "
            "max abs, ms (marks) | at aiortc's decoders p50, ms | audio packets concealed (receiver) | "
            "outbound voice skipped (loaded loop), ms | inbound voice bridged, ms | recovery / cleanup | load |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in result["scenarios"]:
        load = r["load_average"][0]
        if "cleanup_s" in r:
            rows.append(f"| {r['scenario']} | | | | | | | | | closed after {r['cleanup_s']} s: {r['reason'][0]} "
                        f"| {load} |")
            continue
        v, a, srv = r["video"], r["audio"], r["server"]
        c, d = r["av_offset_ms"]["at_arrival"] or {}, r["av_offset_ms"]["at_decode"] or {}
        rec = f"video {r['recovery']['video_s']} s, audio {r['recovery']['audio_s']} s" if "recovery" in r else ""
        rows.append(f"| {r['scenario']} | {v.get('fps')} | {100 * v.get('received_share', 0):.0f} / "
                    f"{100 * v.get('live_share', 0):.0f} % | {(v.get('gap_ms') or {}).get('max')} | "
                    f"{c.get('p50')} / {c.get('p95')} / {c.get('max_abs')} ({c.get('n')}) | {d.get('p50')} | "
                    f"{a['concealed']['lost']} | {srv['audio_skipped_ms']} | {srv['gap_ms']} | {rec} | {load} |")
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="bench_network.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=10.0, help="live video measured per scenario (seconds of frames)")
    p.add_argument("--scenarios", nargs="+", choices=list(SCENARIOS), default=list(SCENARIOS))
    p.add_argument("--seed", type=int, default=1, help="seed of the impairment's random draws")
    p.add_argument("--cleanup-timeout", type=float, default=90.0, help="gone: give up waiting for the close after this")
    p.add_argument("--audio", help="speech the client sends (default: LibriSpeech from ../shared)")
    p.add_argument("--config", help="server settings YAML (as for `emolive serve`)")
    p.add_argument("--json", help="write the figures here")
    p.add_argument("--markdown", help="write the table here")
    args = p.parse_args(argv)
    args.argv = argv
    try:
        result = asyncio.run(bench(args))
    except (BenchError, OSError, ValueError) as e:
        print(f"bench_network: {e}", file=sys.stderr)
        return 1
    write_outputs(result, markdown(result), args.json, args.markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
