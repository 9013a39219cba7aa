"""Floods and bad input against `emolive serve` as deployed, counted: the server must answer every one with a
clear error, lose nothing, not crash, and keep a live session streaming at 25 fps.

    .venv/bin/python benchmarks/bench_fuzz.py --workers 2 --ws 10000 --sdp 500 --push 40 --images 40 --seed 1 \
        --json out/reliability/fuzz.json

It starts `python -m streaming.server --workers W` as its own process tree
(as benchmarks/bench_capacity.py does), opens a "witness" session in another
process (benchmarks/light_peers.py's peer: sends speech, counts the video
frames it receives without decoding them) and two target sessions (aiortc
peers that receive and count), then runs four seeded campaigns at once:

* ws: control websocket messages (malformed JSON, wrong types, huge values,
  unknown types and versions, binary frames, invalid UTF-8, oversize frames,
  floods) on several connections to the targets and to the witness's own
  session; each message must get exactly one `state` or `error` answer
  (never `internal`), or the documented close (1009 over the hard size limit,
  1007 for invalid UTF-8);
* sdp: POST /offer with malformed or hostile bodies and SDP (truncated,
  lines dropped or mangled, bad fingerprints, wrong or missing media, many
  m-lines, many candidates, huge, not JSON); the answer must be a JSON
  error with a 4xx status, or a 200 with a session (closed again at once);
* push: /push streams (audio before start, bad rates, odd bytes, frames over
  1 s and over the hard limit, floods, overfilled buffers, a second pusher);
* images: reference_image with bad images (not base64, random bytes,
  truncated and bit-flipped photos, tiny, blank, decompression bombs, odd
  formats, over the size limit) and real portraits from ../shared.

It reports per category what was sent, the status / error codes seen, the
unexpected outcomes (a 5xx, a dropped connection where an answer was due, no
answer within the deadline, an `internal` error), the server processes that
exited or were replaced (their pids and /health), sessions left open, the
witness's received fps per second (min, median) and its longest gap between
frames, the RSS of every server process before and after, the load average
and the git revision.

The parts, beside this file: fuzz_cases.py (the seeded cases), fuzz_clients.py
(the control websocket client, the tallies), fuzz_campaigns.py (each category
run against the server), fuzz_watch.py (the server's processes, /health,
/metrics and log), fuzz_peers.py (the witness and targets, in their own
process), fuzz_report.py (the witness's figures, the summary).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from profiler.environment import BenchError, git_rev, machine_info, speech_file  # noqa: E402
from bench_capacity import _cpu_s, _free_port, _tree, start_server, stop_server, write_outputs  # noqa: E402
from fuzz_campaigns import image_campaign, push_campaign, sdp_campaign, ws_campaign  # noqa: E402
from fuzz_cases import base_offers, generate  # noqa: E402
from fuzz_clients import Tally  # noqa: E402
from fuzz_peers import peers_child  # noqa: E402
from fuzz_report import sent_stats, summary, witness_stats  # noqa: E402
from fuzz_watch import Watch, log_errors, rss_mb, session_alive  # noqa: E402


async def campaign(args, audio: str, workdir: Path) -> dict:
    import aiohttp

    from engine.measure import shared_dir

    shared = shared_dir()
    portraits = sorted((Path(shared) / "data" / "portraits").glob("*.*")) if shared else []
    counts = {"ws": args.ws, "sdp": args.sdp, "push": args.push, "images": args.images}
    cases = generate(counts, args.seed, await base_offers(), [p.read_bytes() for p in portraits])
    log_path = Path(args.log) if args.log else workdir / "server.log"
    url = f"http://127.0.0.1:{_free_port()}"
    with open(log_path, "wb") as log:
        server = await start_server(url, args.workers, args.max_sessions, args.config, args.start_timeout, log)
    peers = None
    try:
        async with aiohttp.ClientSession() as http:
            watch = Watch(server, url, http)
            peers = await asyncio.create_subprocess_exec(
                sys.executable, str(Path(__file__).resolve()), "--peers-child", "--url", url, "--audio", audio,
                "--out", str(workdir / "peers.json"), "--witness-seconds", str(args.witness_seconds), cwd=ROOT,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
            witness_sid, sids = None, []
            while True:
                line = (await asyncio.wait_for(peers.stdout.readline(), 180)).decode().strip()
                if not line:
                    raise BenchError(f"the peers ended before streaming (exit {await peers.wait()})")
                word, _, rest = line.partition(" ")
                if word == "WITNESS":
                    witness_sid = watch.witness = rest
                elif word == "TARGET":
                    sids.append(rest)
                elif word == "READY":
                    break
            await asyncio.sleep(args.settle)
            tb = time.monotonic()
            await asyncio.sleep(args.baseline)  # the witness with the targets streaming, before any bad input
            pids = _tree(server.pid)
            rss_before = rss_mb(pids)
            load_before = os.getloadavg()
            cpu_before = _cpu_s(pids)
            tallies = {c: Tally() for c in ("ws", "sdp", "push", "images")}
            t0 = time.monotonic()
            print(f"campaign: ws {args.ws}, sdp {args.sdp}, push {args.push}, images {args.images} "
                  f"(seed {args.seed}) against {url}, {len(pids)} server process(es)", flush=True)

            async def timed(name, coro):
                start = time.monotonic()
                await coro
                print(f"  {name}: {tallies[name].sent} sent in {time.monotonic() - start:.1f} s, "
                      f"{tallies[name].unexpected_n} unexpected", flush=True)
                return round(time.monotonic() - start, 1)

            durations = await asyncio.gather(
                timed("ws", ws_campaign(http, url, sids, witness_sid, cases["ws"], tallies["ws"])),
                timed("sdp", sdp_campaign(http, url, cases["sdp"], tallies["sdp"])),
                timed("push", push_campaign(http, url, sids, cases["push"], tallies["push"])),
                timed("images", image_campaign(http, url, sids, cases["images"], tallies["images"])))
            t1 = time.monotonic()
            load_after = os.getloadavg()
            cpu_pct = round(100.0 * (_cpu_s(_tree(server.pid)) - cpu_before) / (t1 - t0), 1)
            await asyncio.sleep(POLL_SETTLE_S)  # the front's session poll catches up with the closed offers
            async with http.get(url + "/health") as r:
                health = await r.json()
            alive = {sid[:8]: await session_alive(http, url, sid) for sid in [witness_sid] + sids}
            rss_after = rss_mb(_tree(server.pid))
            watched = await watch.stop()
            peers.stdin.write(b"STOP\n")
            await peers.stdin.drain()
            await asyncio.wait_for(peers.wait(), 60)
            peers = None
            seen = json.loads((workdir / "peers.json").read_text())
    finally:
        if peers is not None and peers.returncode is None:
            peers.kill()
        await stop_server(server)
    return {
        "categories": {c: t.report() for c, t in tallies.items()},
        "durations_s": dict(zip(tallies, durations)), "campaign_s": round(t1 - t0, 1),
        "unexpected": sum(t.unexpected_n for t in tallies.values()),
        "crashes": len(watched["processes_gone"]) + watched["worker_replacements"] + int(watched["server_exited"]),
        "watch": watched, "server_log": log_errors(log_path),
        "sessions_after": health.get("sessions"), "sessions_expected_after": 1 + len(sids),
        "sessions_alive": alive, "sessions_disturbed": sum(not a for a in alive.values()),
        "witness": witness_stats([tuple(v) for v in seen["witness"]["video"]], t0, t1),
        "witness_baseline": witness_stats([tuple(v) for v in seen["witness"]["video"]], tb, t0),
        "witness_sent": sent_stats(watch.witness_sent, t0, t1),
        "witness_sent_baseline": sent_stats(watch.witness_sent, tb, t0),
        "targets": [witness_stats([tuple(v) for v in t["video"]], t0, t1) for t in seen["targets"]],
        "rss_mb": {"before": rss_before, "after": rss_after,
                   "before_total": round(sum(rss_before.values()), 1), "after_total": round(sum(rss_after.values()), 1)},
        "load_average": {"before": load_before, "after": load_after},
        "server_cpu_pct": cpu_pct,
    }


POLL_SETTLE_S = 3.0


async def main_async(args) -> dict:
    with tempfile.TemporaryDirectory(prefix="emolive-fuzz-") as tmp:
        audio, described = speech_file(args.audio, Path(tmp))
        result = await campaign(args, audio, Path(tmp))
    result.update({"workers": args.workers, "seed": args.seed, "counts": {"ws": args.ws, "sdp": args.sdp,
                                                                          "push": args.push, "images": args.images},
                   "input": described, "command": " ".join(sys.argv), "git_rev": git_rev(),
                   "machine": machine_info(), "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    return result


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workers", default="2", help="as for emolive serve (2 as deployed on this machine; 1: one process)")
    p.add_argument("--ws", type=int, default=10_000, help="control websocket messages")
    p.add_argument("--sdp", type=int, default=500, help="offers")
    p.add_argument("--push", type=int, default=40, help="/push streams")
    p.add_argument("--images", type=int, default=40, help="reference_image messages")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--max-sessions", type=int, default=12)
    p.add_argument("--config", help="server settings YAML")
    p.add_argument("--audio", help="the witness's speech (default: LibriSpeech from ../shared, else espeak-ng)")
    p.add_argument("--settle", type=float, default=2.0, help="seconds between the sessions' start and the campaign")
    p.add_argument("--baseline", type=float, default=10.0, help="seconds the witness is measured before the campaign")
    p.add_argument("--start-timeout", type=float, default=180.0)
    p.add_argument("--witness-seconds", type=float, default=400.0, help="speech the witness has to send (looped)")
    p.add_argument("--json")
    p.add_argument("--markdown", help="the summary table and figures, as printed")
    p.add_argument("--log", help="keep the server's log in this file")
    p.add_argument("--peers-child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--targets", type=int, default=2, help=argparse.SUPPRESS)
    p.add_argument("--url", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.peers_child:
        return asyncio.run(peers_child(args))
    try:
        result = asyncio.run(main_async(args))
    except BenchError as e:
        print(f"bench_fuzz: {e}", file=sys.stderr)
        return 2
    write_outputs(result, summary(result), args.json, args.markdown)  # and prints the summary
    return 0 if result["crashes"] == 0 and result["unexpected"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
