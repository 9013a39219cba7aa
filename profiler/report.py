"""The bench's human-readable outputs: a markdown report (with --browser, the page's table too) and PNG plots
(stage CDFs, latency histogram, capacity)."""
from __future__ import annotations

from pathlib import Path
from typing import Any


def _f(v, nd: int = 1) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def markdown(r: dict[str, Any]) -> str:
    m = r.get("machine", {})
    s = r.get("settings", {})
    lines = [f"# emolive bench ({r.get('created', '')})", "",
             f"Command: `{r.get('command', '')}`  ",
             f"git {r.get('git_rev')}; {m.get('cpu')} x{m.get('cores')}, Python {m.get('python')}, {m.get('os')}; "
             f"load average {m.get('load_average_start')} -> {m.get('load_average_end')}  ",
             f"Input: {r.get('input')}; {r.get('sessions')} session(s), {r.get('seconds')} s measured after "
             f"{r.get('warmup_s')} s warm-up; fps {s.get('fps')}, render budget {s.get('render_budget_s')} s, "
             f"jitter {s.get('jitter_s')} s, model look-ahead {s.get('model_lookahead_ms')} ms, "
             f"voice delay {s.get('voice_delay_ms')} ms", "",
             "| stage | p50 ms | p95 ms | p99 ms | n | what |", "|---|---|---|---|---|---|"]
    for name, st in r.get("stages", {}).items():
        lines.append(f"| {name} | {_f(st['p50_ms'], 2)} | {_f(st['p95_ms'], 2)} | {_f(st['p99_ms'], 2)} | "
                     f"{st['n']} | {st.get('what', '')} |")
    e = r.get("e2e_ms", {})
    ep = r.get("e2e_from_packet_ms", {})
    ff = r.get("first_frame", {})
    fd = r.get("fps_detail", {})
    ft = r.get("frame_timing_ms", {})
    av = r.get("av_offset_ms") or {}
    cpu, mem, dr = r.get("cpu", {}), r.get("memory", {}), r.get("drops", {})
    lines += ["", "| figure | measured | floor | measured / floor |", "|---|---|---|---|",
              f"| server-added latency p50 / p95 / p99 (ms) | {_f(e.get('p50'))} / {_f(e.get('p95'))} / "
              f"{_f(e.get('p99'))} | {_f(e.get('floor_ms'))} | {_f(e.get('ratio_p50'), 2)} / "
              f"{_f(e.get('ratio_p95'), 2)} |",
              f"| sample's mean offset into the frame showing it (ms; floor = look-ahead - it + encode) | "
              f"{_f(e.get('mean_offset_in_frame_ms'))} | | |",
              f"| the same from the RTP packet's arrival p50 / p95 (ms) | {_f(ep.get('p50'))} / {_f(ep.get('p95'))} "
              f"| | |",
              f"| offer -> first frame sent, median (ms) | {_f(r.get('first_frame_ms'))} | {_f(ff.get('floor_ms'))} "
              f"| {_f(ff.get('ratio'), 2)} |",
              f"| client: offer sent -> first frame received (ms) | {', '.join(_f(x) for x in ff.get('client_ms', []))}"
              f" | | |",
              f"| fps sent, median / min (target {fd.get('target')}) | {_f(r.get('fps'))} / {_f(fd.get('min'))} | "
              f"{fd.get('target')} | |",
              f"| frame interval at the receiver, worst session p50 / p95 / p99 (ms) | {_f(ft.get('p50_max'))} / "
              f"{_f(ft.get('p95_max'))} / {_f(ft.get('p99_max'))} | {_f(ft.get('floor_ms'))} | |",
              f"| A/V offset at the receiver p50 / worst p95 (ms, + = video later) | {_f(av.get('p50'))} / "
              f"{_f(av.get('p95'))} | 0 | |",
              f"| frames dropped (render skipped) / repeated | {dr.get('skipped')} / {dr.get('repeated')} "
              f"({_f(dr.get('pct'), 2)} % of frames) | 0 | |",
              f"| server CPU, process / per session (% of one core) | {_f(cpu.get('process_pct'))} / "
              f"{_f(cpu.get('per_session_pct'))} | | |",
              f"| server RSS start -> end (MiB) | {_f(mem.get('rss_start_mb'))} -> {_f(mem.get('rss_end_mb'))} | | |"]
    tl = [s.get("input_timeline_ms") or {} for s in r.get("per_session", [])]
    if tl:
        tot = {k: sum(t.get(k, 0.0) for t in tl) for k in ("gap_ms", "drained_ms", "input_dropped_ms",
                                                             "audio_skipped_ms")}
        lines.append(f"| input timeline, all sessions: silence inserted for late input / quiet input drained / "
                     f"input dropped (overflow) (ms) | {_f(tot['gap_ms'])} / {_f(tot['drained_ms'])} / "
                     f"{_f(tot['input_dropped_ms'])} | 0 | |")
        lines.append(f"| outbound audio skipped (its sender fell behind the clock), all sessions (ms) | "
                     f"{_f(tot['audio_skipped_ms'])} | 0 | |")
        idle = sum(s.get("frames_without_speech_frame", 0) for s in r.get("per_session", []))
        lines.append(f"| frames drawn without their speech frame (model late or no input), all sessions | {idle} | 0 | |")
        lag = max((s.get("audio_sender_lag_ms_at_end") or 0.0 for s in r.get("per_session", [])), default=0.0)
        lines.append(f"| outbound audio behind the clock at the end, worst session (ms; > 20: its sender fell "
                     f"behind, an overloaded loop) | {_f(lag)} | 0 | |")
    cap = r.get("capacity")
    if cap:
        lines += ["", f"Capacity at {cap['target_fps']} fps (drops <= {cap['max_drop_pct']} %): "
                  f"**{cap['max_sessions']} sessions**", "",
                  "| sessions | fps min | fps median | dropped/repeated % | e2e p95 ms | server CPU % | held |",
                  "|---|---|---|---|---|---|---|"]
        for x in cap["rounds"]:
            lines.append(f"| {x['sessions']} | {_f(x['fps_min'])} | {_f(x['fps_median'])} | {_f(x['drop_pct'], 2)} | "
                         f"{_f(x['e2e_p95_ms'])} | {_f(x['cpu_pct'])} | {_f(x['held'])} |")
    if r.get("runs"):
        lines += ["", f"Runs: {len(r['runs'])}; medians over runs: " +
                  ", ".join(f"{k} {_f(v)}" for k, v in r.get("medians_over_runs", {}).items())]
    t = r.get("targets", {})
    if t:
        lines += ["", "Targets: " + "; ".join(f"{k}: {_f(v['value'])} -> {'met' if v['met'] else 'NOT met'}"
                                                       for k, v in t.items())]
    return "\n".join(lines) + "\n"


def browser_markdown(fig: dict[str, Any]) -> str:
    """The page's figures as a markdown table (appended to the bench report)."""
    av, avp = fig.get("av_offset_ms") or {}, fig.get("av_offset_presented_ms") or {}
    fi, ids, mk = fig.get("frame_interval_ms") or {}, fig.get("frame_ids") or {}, fig.get("marks") or {}
    st = fig.get("stats") or {}
    v, a = st.get("video", {}), st.get("audio", {})
    oc = fig.get("output_clock") or {}
    xc = fig.get("cross_check") or {}
    xd, xo = xc.get("av_offset_at_delivery_ms") or {}, xc.get("delivered_to_webaudio_output_ms") or {}
    rows = [
        ("A/V offset at display p50 / p95 / min / max (ms, + = picture after its sound; target within +-20, "
         "noticed beyond +45 / -125)",
         f"{_f(av.get('p50'))} / {_f(av.get('p95'))} / "
         f"{_f(av.get('min'))} / {_f(av.get('max'))} "
         f"({av.get('n', 0)} marks)"),
        ("the same from the presentation time (frame handed to the compositor) p50 (ms)", _f(avp.get("p50"))),
        ("marks found / matched to a presented frame", f"{mk.get('found')} / {mk.get('matched')}"),
        ("presented fps", _f(fig.get("fps_presented"), 2)),
        ("interval between presented frames p50 / p95 / p99 / max (ms)",
         f"{_f(fi.get('p50'))} / {_f(fi.get('p95'))} / "
         f"{_f(fi.get('p99'))} / {_f(fi.get('max'))} "
         f"(floor {_f(fi.get('floor_ms'))})"),
        ("frame ids read: consecutive / repeated / skipped / unreadable",
         f"{ids.get('consecutive')} / {ids.get('repeated')} / {ids.get('skipped')} / {ids.get('unreadable')}"),
        ("last packet received -> display p50 / p95 (ms)",
         f"{_f((fig.get('receive_to_display_ms') or {}).get('p50'))} / "
         f"{_f((fig.get('receive_to_display_ms') or {}).get('p95'))}"),
        ("Chromium video: decoded / dropped / freezes (total s) / jitter buffer (ms)",
         f"{v.get('framesDecoded')} / {v.get('framesDropped')} / {v.get('freezeCount')} "
         f"({_f(v.get('totalFreezesDuration'), 2)}) / {_f(v.get('jitter_buffer_ms'))}"),
        ("Chromium audio: jitter buffer (ms) / concealed (%) / accelerate, decelerate (samples)",
         f"{_f(a.get('jitter_buffer_ms'))} / {_f(a.get('concealed_pct'), 3)} / "
         f"{a.get('removedSamplesForAcceleration')}, {a.get('insertedSamplesForDeceleration')}"),
        ("cross-check, A/V offset against the audio's hand-over to playout (getSynchronizationSources) "
         "p50 / min / max (ms)",
         f"{_f(xd.get('p50'))} / {_f(xd.get('min'))} / {_f(xd.get('max'))}"),
        ("hand-over to playout -> WebAudio output p50 (ms): the capture path's own delay",
         _f(xo.get("p50"))),
        ("audio and video in one stream (Chromium lip-syncs them)", _f(fig.get("one_stream"))),
        ("audio output clock: spread (ms) / drift (ppm) / rendered ahead of output (ms)",
         f"{_f(oc.get('spread_ms'), 2)} / {_f(oc.get('drift_ppm'))} / "
         f"{_f(oc.get('render_ahead_ms'))}"),
    ]
    lines = ["## Receiver: the client page in headless Chromium", "", "| figure | measured |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in rows]
    return "\n".join(lines) + "\n"


def plots(r: dict[str, Any], folder: Path) -> list[Path]:
    """stages_cdf.png, e2e_hist.png and, after --find-max-sessions, sessions_fps.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    samples = r.get("_samples", {})
    stages = [n for n in r.get("stages", {}) if samples.get(n)]
    if stages:
        fig, ax = plt.subplots(figsize=(8, 5))
        for name in stages:
            v = np.sort(np.asarray(samples[name], float))
            v = np.maximum(v, 1e-3)
            ax.plot(v, np.arange(1, len(v) + 1) / len(v), label=name)
        ax.set_xscale("log")
        ax.set_xlabel("duration (ms, log scale)")
        ax.set_ylabel("fraction of calls")
        ax.set_title(f"Stage durations, {r.get('sessions')} session(s)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        out.append(folder / "stages_cdf.png")
        fig.savefig(out[-1], dpi=110)
        plt.close(fig)
    if samples.get("e2e"):
        e = r["e2e_ms"]
        fig, ax = plt.subplots(figsize=(8, 4))
        ax.hist(samples["e2e"], bins=60, color="tab:blue", alpha=0.8, label="input chunk -> frame sent")
        if samples.get("e2e_packet"):
            ax.hist(samples["e2e_packet"], bins=60, color="tab:orange", alpha=0.5, label="RTP packet -> frame sent")
        for q, style in (("p50", "-"), ("p95", "--")):
            if e.get(q) is not None:
                ax.axvline(e[q], color="k", ls=style, lw=1, label=f"{q} {e[q]:.0f} ms")
        ax.axvline(e["floor_ms"], color="tab:red", lw=1.5, label=f"floor {e['floor_ms']:.0f} ms")
        ax.set_xlabel("server-added latency (ms)")
        ax.set_ylabel("input chunks")
        ax.legend(fontsize=8)
        fig.tight_layout()
        out.append(folder / "e2e_hist.png")
        fig.savefig(out[-1], dpi=110)
        plt.close(fig)
    cap = r.get("capacity")
    if cap:
        ks = [x["sessions"] for x in cap["rounds"]]
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot(ks, [x["fps_median"] for x in cap["rounds"]], "o-", label="median session")
        ax.plot(ks, [x["fps_min"] for x in cap["rounds"]], "s--", label="slowest session")
        ax.axhline(cap["target_fps"], color="tab:red", lw=1, label=f"target {cap['target_fps']} fps")
        ax.axhline(0.95 * cap["target_fps"], color="tab:red", lw=0.8, ls=":", label="95 % of target")
        ax.set_xlabel("concurrent sessions")
        ax.set_ylabel("frames sent per second")
        ax.set_xticks(ks)
        ax.legend(fontsize=8)
        ax.grid(True, alpha=0.3)
        fig.tight_layout()
        out.append(folder / "sessions_fps.png")
        fig.savefig(out[-1], dpi=110)
        plt.close(fig)
    return out
