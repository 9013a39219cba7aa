"""The soak's printed rows and its markdown: a line per window as it runs, the per-minute table and the
summary against the targets (benchmarks/bench_soak.py).
"""
from __future__ import annotations

from soak_figures import DRIFT_MAX_MS, DROP_PCT, KINDS, RSS_GROWTH_MAX_MIB
from soak_received import SLIP_MAX_MS


def _row(w: dict) -> str:
    per = "; ".join(f"{s['session']}: offset {_ms(s['offset_ms'])} ({s['marks']} marks), rx {s['fps_received']} fps, "
                    f"sent {s['fps_sent']} fps, dropped {s['dropped']}, repeated {s['repeated']}, gaps {s['id_gaps']}"
                    for s in w["sessions"])
    return (f"{w['t_s']:7.1f} s | {per} | RSS {w['rss_total_mib']:.1f} MiB "
            f"({', '.join(f'{r} {v:.1f}' for r, v in w['rss_mib'].items())}) | load {w['load1']}")


def _ms(v) -> str:
    return "-" if v is None else f"{v:+.1f} ms"


def markdown(result: dict) -> str:
    """Per-minute table and the summary, for docs/design/reliability.md."""
    s = result["summary"]
    rows = ["| minute | A/V offset p50 per session: decoded / at RTP arrival / timeline | marks | fps received "
            "| fps sent | dropped / repeated "
            "| frame-id gaps | server RSS (MiB) | server CPU (% of a core) | load 1 min |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for k, m in enumerate(result["minutes"], 1):
        ss = m["sessions"]
        offsets = ", ".join(" / ".join(_ms(x[kind]) for kind in ("offset_ms", "offset_rtp_ms", "offset_timeline_ms"))
                            for x in ss)
        rows.append(f"| {k} | {offsets} | {', '.join(str(x['marks']) for x in ss)} "
                    f"| {', '.join(str(x['fps_received']) for x in ss)} | {', '.join(str(x['fps_sent']) for x in ss)} "
                    f"| {', '.join(str(x['dropped']) + ' / ' + str(x['repeated']) for x in ss)} "
                    f"| {', '.join(str(x['id_gaps']) for x in ss)} | {m['rss_total_mib']} | {m['server_cpu_pct']} "
                    f"| {m['load1']} |")
    drift = "; ".join(f"{sid} {kind}: {_ms(d[kind]['first_ms'])} -> {_ms(d[kind]['last_ms'])} = "
                      f"{_ms(d[kind]['drift_ms'])}" for sid, d in s["offset"].items() for kind in KINDS)
    c = s["checks"]
    verdict = lambda ok: "met" if ok else "NOT met"  # noqa: E731
    return ("\n".join(rows) + "\n\n"
            f"* offset drift (median over the first {s['compare_span_s']:.0f} s against the last): {drift}: "
            f"target |drift| <= {DRIFT_MAX_MS:.0f} ms {verdict(c['drift'])}\n"
            f"* server RSS after {s['rss_reference_t_s']:.0f} s: {s['rss_reference_mib']}, at the end: "
            f"{s['rss_end_mib']}; growth {s['rss_growth_total_mib']} MiB in all: target <= "
            f"{RSS_GROWTH_MAX_MIB:.0f} MiB {verdict(c['rss'])}\n"
            f"* timeline: each mark's frame sent at its own tick or whole ticks later, the median slip of a window "
            f"at most {max((t['window_slip_max_ms'] or 0.0) for t in s['timeline'].values())} ms (target <= "
            f"{SLIP_MAX_MS} ms: {verdict(c['timeline'])}); marks whose frame went out late, off the frame grid: "
            + "; ".join(f"{t['late_marks']}, {t['slipped_marks']} of {t['marks']}" for t in s["timeline"].values())
            + "\n"
            f"* windows with drops (> {DROP_PCT} % of a session's frames): {s['drop_windows']}, longest run "
            f"{s['longest_drop_run_windows']}: no sustained drops {verdict(c['drops'])}\n"
            f"* sessions: {result['bookkeeping']['sessions_per_window'][0]} held in every window: "
            f"{verdict(c['bookkeeping'])}; 0 sessions {result['bookkeeping']['closed_after_s']} s after the peers "
            f"closed\n"
            f"* load average {result['load_average']['start']} -> {result['load_average']['end']}, "
            f"git {result['git_rev']}\n"
            f"* **{'PASS' if s['pass'] else 'FAIL'}**\n")
