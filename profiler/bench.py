"""`emolive bench`: per-stage costs, server-added latency, first frame, fps, capacity, A/V offset at the receiver.

Runs unattended on the real code path: the real server app (streaming.server.
create_app with the real audio model, renderer and default avatar) serves on
loopback in this process; K aiortc client peers in a child process
(profiler/client.py) send real speech and receive video and audio.
After a warm-up the server's windows are reset and the bench measures for N
seconds; with --runs R it does that R times and reports the median run.

    python -m profiler.bench --seconds 20 --sessions 1 --json out/bench.json \
        [--trace out/trace.json] [--markdown out/bench.md] [--plots out/plots] [--runs 3]
    python -m profiler.bench --find-max-sessions --seconds 15 --json out/capacity.json
    python -m profiler.bench --browser --seconds 20 --json out/browser.json   (the receiver: headless Chromium)

What each figure is: profiler/figures.py and docs/design/performance.md.
"""
from __future__ import annotations

# first, before numpy loads: it pins the numeric libraries to one thread and quiets the logs
from .environment import ROOT, BenchError, git_rev, machine_info, speech_file

import argparse
import asyncio
import json
import logging
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from engine.profiling import GcWatch, Profiler, start_trace, stop_trace

from .figures import round_figures
from .window import Round
from .summary import holds, median_run, targets, without_samples


class Bench:
    """The real server app on loopback in this process, and one measured round against it at a time."""

    def __init__(self, args, cfg, audio: str, workdir: Path) -> None:
        self.args = args
        self.cfg = cfg
        self.audio = audio
        self.workdir = workdir
        self.app = None
        self.url = ""
        self.gc = Profiler("process", window=10_000, trace=None)

    async def __aenter__(self):
        from aiohttp import web

        from streaming.server import PARTS, create_app

        self.app = create_app(self.cfg)
        if self.args.audio_rx_buffer == "stock":  # measure aiortc's own 4-packet audio hold (before the patch)
            from streaming.rtp_tuning import uninstall

            uninstall()
        self.app[PARTS].renderer_factory(self.cfg.avatar).close()  # as `serve` does before serving
        from engine.profiling import current_trace

        self.gc.trace = current_trace()
        self._gc_watch = GcWatch(self.gc).__enter__()
        self._runner = web.AppRunner(self.app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc) -> None:
        self._gc_watch.__exit__()
        await self._runner.cleanup()

    @property
    def lookahead_ms(self) -> float:
        from streaming.server import PARTS

        return 1000.0 * self.app[PARTS].model_latency_s

    async def round(self, k: int) -> dict[str, Any]:
        from streaming.server import SESSIONS

        out = self.workdir / f"client-{k}-{time.monotonic_ns()}.json"
        cmd = [sys.executable, "-m", "profiler.client", "--url", self.url, "--sessions", str(k),
               "--audio", self.audio, "--warmup", str(self.args.warmup), "--seconds", str(self.args.seconds),
               "--out", str(out)]
        proc = await asyncio.create_subprocess_exec(*cmd, cwd=ROOT, stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.PIPE)
        rnd = Round(self.app[SESSIONS], k, self.gc)
        errors = []
        try:
            while True:
                line = await asyncio.wait_for(proc.stdout.readline(),
                                              60 + self.args.warmup + self.args.seconds + 10 * k)
                if not line:
                    break
                word, _, rest = line.decode().strip().partition(" ")
                if word == "SESSION":
                    rnd.adopt(rest)
                elif word == "MEASURE_START":
                    rnd.begin()
                elif word == "MEASURE_END":
                    rnd.finish()
                elif word == "ERROR":
                    errors.append(rest)
            await proc.wait()
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
            raise BenchError(f"the client peers stopped answering ({k} sessions)") from None
        if errors or proc.returncode != 0 or not rnd.end:
            err = (await proc.stderr.read()).decode()[-2000:]
            raise BenchError(f"client peers failed ({k} sessions): {'; '.join(errors) or err}")
        client = json.loads(out.read_text())
        out.unlink()
        for _ in range(100):  # let the closed sessions leave before the next round
            if not self.app[SESSIONS]:
                break
            await asyncio.sleep(0.1)
        return round_figures(rnd, client, self.cfg, self.lookahead_ms)


async def bench(args) -> dict[str, Any]:
    from streaming.config import load_config

    overrides = {"fps": args.fps, "render_budget_s": args.render_budget, "jitter_s": args.jitter,
                 "render_threads": args.render_threads, "avatar": args.avatar}
    max_k = args.max_sessions if args.find_max_sessions else args.sessions
    cfg = load_config(args.config, ice_loopback=True, port=0, max_sessions=max_k,
                      session_idle_timeout_s=120.0, **overrides)
    workdir = Path(tempfile.mkdtemp(prefix="emolive-bench-"))
    audio, audio_desc = speech_file(args.audio, workdir)
    if args.trace:
        start_trace(args.trace_capacity)
    machine = machine_info()
    load_start = [round(x, 2) for x in os.getloadavg()]
    result: dict[str, Any] = {}
    try:
        async with Bench(args, cfg, audio, workdir) as b:
            settings = {"fps": cfg.fps, "render_budget_s": cfg.render_budget_s, "jitter_s": cfg.jitter_s,
                        "render_threads": cfg.render_threads, "renderer": cfg.renderer,
                        "avatar": cfg.avatar or "(default)", "model_lookahead_ms": round(b.lookahead_ms, 2),
                        # with an auto budget each session measures its own (per-session "render_budget")
                        "voice_delay_ms": None if cfg.render_budget_s == "auto" else
                        round(b.lookahead_ms + 1000 * (cfg.render_budget_s + cfg.jitter_s), 1),
                        "audio_rx_buffer": args.audio_rx_buffer}
            if args.find_max_sessions:
                rounds = []
                for k in range(1, args.max_sessions + 1):
                    fig = await b.round(k)
                    held = holds(fig, cfg.fps, args.max_drop_pct)
                    rounds.append({"sessions": k, "fps_min": fig["fps_detail"]["min"], "fps_median": fig["fps"],
                                   "drop_pct": fig["drops"]["pct"], "e2e_p95_ms": fig["e2e_ms"]["p95"],
                                   "cpu_pct": fig["cpu"]["process_pct"], "held": held, "figures": fig})
                    print(f"{k} sessions: fps min {fig['fps_detail']['min']}, drops {fig['drops']['pct']}%, "
                          f"e2e p95 {fig['e2e_ms']['p95']} ms -> {'held' if held else 'NOT held'}", flush=True)
                    if not held:
                        break
                held_ks = [r["sessions"] for r in rounds if r["held"]]
                best = max(held_ks) if held_ks else 0
                main_fig = next((r["figures"] for r in rounds if r["sessions"] == best), rounds[-1]["figures"])
                result = dict(main_fig)
                result["capacity"] = {"target_fps": cfg.fps, "max_drop_pct": args.max_drop_pct,
                                      "max_sessions": best, "rounds": rounds}
            else:
                runs = []
                for i in range(args.runs):
                    if args.browser:  # the receiver is the real client page in headless Chromium
                        from .browser import browser_round
                        from streaming.server import SESSIONS

                        rnd, page = await browser_round(b, lambda: Round(b.app[SESSIONS], 1, b.gc), args.seconds,
                                                        args.warmup, args.mark_late_ms / 1000.0)
                        runs.append(round_figures(rnd, {"peers": []}, cfg, b.lookahead_ms))
                        runs[-1]["receiver_browser"] = page
                        print(f"run {i + 1}/{args.runs}: browser A/V offset "
                              f"{(page.get('av_offset_ms') or {}).get('p50')} ms (p50), "
                              f"presented fps {page.get('fps_presented')}", flush=True)
                        continue
                    runs.append(await b.round(args.sessions))
                    print(f"run {i + 1}/{args.runs}: e2e p95 {runs[-1]['e2e_ms']['p95']} ms, "
                          f"fps {runs[-1]['fps']}, first frame {runs[-1]['first_frame_ms']} ms", flush=True)
                result = median_run(runs) if len(runs) > 1 else runs[0]
    finally:
        ring = stop_trace()
    machine["load_average_start"] = load_start
    machine["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    result.update({"version": 1, "command": "emolive bench " + " ".join(shlex.quote(a) for a in args.argv),
                   "git_rev": git_rev(), "machine": machine, "input": audio_desc, "settings": settings,
                   "warmup_s": args.warmup, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    result["targets"] = targets(result)
    if ring is not None:
        ring.write(args.trace, {"command": result["command"], "git_rev": result["git_rev"]})
        result["trace"] = {"path": str(args.trace), "spans": len(ring), "spans_dropped": ring.dropped}
    return result


def _budget(v: str):
    return v if v == "auto" else float(v)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="emolive bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=20.0, help="measured seconds per run (after the warm-up)")
    p.add_argument("--sessions", type=int, default=1, help="concurrent sessions")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds of streaming before measuring")
    p.add_argument("--runs", type=int, default=1, help="repeat the measurement; the median run is reported")
    p.add_argument("--json", help="write the figures here (JSON)")
    p.add_argument("--markdown", help="write a markdown report here")
    p.add_argument("--plots", help="write PNG plots into this folder")
    p.add_argument("--trace", help="write a Chrome trace-event JSON of the pipeline here (opens in Perfetto)")
    p.add_argument("--trace-capacity", type=int, default=300_000, help="spans kept in the trace (newest)")
    p.add_argument("--find-max-sessions", action="store_true",
                   help="step the sessions up from 1 until the target fps is no longer held")
    p.add_argument("--max-sessions", type=int, default=8, help="upper bound for --find-max-sessions")
    p.add_argument("--max-drop-pct", type=float, default=1.0, help="dropped + repeated frames allowed (percent)")
    p.add_argument("--audio", help="speech file the client peers send (default: LibriSpeech from ../shared)")
    p.add_argument("--config", help="server settings YAML (as for `emolive serve`)")
    p.add_argument("--avatar")
    p.add_argument("--fps", type=int)
    p.add_argument("--render-budget", type=_budget, help="render_budget_s: seconds or auto (render lead, part of the voice delay)")
    p.add_argument("--jitter", type=float, help="jitter_s (input jitter headroom, part of the voice delay)")
    p.add_argument("--render-threads", type=int)
    p.add_argument("--audio-rx-buffer", choices=("shallow", "stock"), default="shallow",
                   help="inbound audio buffer: the server's (streaming/rtp_tuning.py) or aiortc's own (4 packets)")
    p.add_argument("--browser", action="store_true",
                   help="receive with the client page in headless Chromium (1 session): A/V offset and frame "
                        "timing as the page presents them")
    p.add_argument("--mark-late-ms", type=float, default=0.0,
                   help="--browser, instrument check: place every other audio mark this much late")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.seconds <= 0 or args.sessions < 1 or args.runs < 1 or args.warmup < 0:
        print("emolive bench: --seconds must be > 0, --sessions and --runs >= 1, --warmup >= 0", file=sys.stderr)
        return 2
    if args.browser and (args.sessions != 1 or args.find_max_sessions or args.mark_late_ms < 0):
        print("emolive bench: --browser measures one session (no --sessions K, no --find-max-sessions), "
              "--mark-late-ms >= 0", file=sys.stderr)
        return 2
    try:
        result = asyncio.run(bench(args))
    except (BenchError, OSError, ValueError) as e:
        print(f"emolive bench: {e}", file=sys.stderr)
        return 1
    except RuntimeError as e:  # the browser bench's errors (BrowserBenchError, selenium's WebDriverException)
        if not args.browser:
            raise
        print(f"emolive bench --browser: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}",
              file=sys.stderr)
        return 1
    from .report import browser_markdown, plots
    from .report import markdown as _markdown

    def markdown(r):
        text = _markdown(r)
        if r.get("receiver_browser"):
            text += "\n" + browser_markdown(r["receiver_browser"])
        return text

    text = json.dumps(without_samples(result), indent=1)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(text + "\n", encoding="utf-8")
    if args.markdown:
        Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(args.markdown).write_text(markdown(result), encoding="utf-8")
    if args.plots:
        plots(result, Path(args.plots))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
