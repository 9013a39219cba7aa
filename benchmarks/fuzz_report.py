"""The fuzz campaign's figures and summary: the witness's fps as received and as the server sent it, and
the printed table (benchmarks/bench_fuzz.py).
"""
from __future__ import annotations

import statistics


def sent_stats(samples: list[tuple[float, int]], t0: float, t1: float) -> dict:
    """The server's frames_sent counter sampled (time, count): fps over each span of about a second."""
    inside = [s for s in samples if t0 <= s[0] <= t1]
    rates, i = [], 0
    for j in range(1, len(inside)):
        if inside[j][0] - inside[i][0] >= 0.95:
            rates.append((inside[j][1] - inside[i][1]) / (inside[j][0] - inside[i][0]))
            i = j
    return {"samples": len(inside), "fps_per_span": [round(r, 1) for r in rates],
            "fps_min": round(min(rates), 1) if rates else None,
            "fps_median": round(statistics.median(rates), 1) if rates else None}


def witness_stats(video: list, t0: float, t1: float) -> dict:
    """Received video of the witness between t0 and t1: frames per whole second, longest gap, RTP order."""
    times = [t for t, _ in video if t0 <= t <= t1]
    secs = int(t1 - t0)
    per_s = [0] * max(secs, 0)
    for t in times:
        i = int(t - t0)
        if i < secs:
            per_s[i] += 1
    stamps = [ts for t, ts in video if t0 <= t <= t1]
    back = sum(1 for a, b in zip(stamps, stamps[1:]) if ((b - a) % 2**32) > 2**31)  # RTP time going back
    gaps = [b - a for a, b in zip(times, times[1:])]
    return {"seconds": round(t1 - t0, 1), "frames": len(times), "fps_mean": round(len(times) / max(t1 - t0, 1e-9), 2),
            "fps_min": min(per_s, default=0), "fps_median": statistics.median(per_s) if per_s else 0,
            "fps_per_s": per_s, "gap_max_ms": round(1000 * max(gaps, default=t1 - t0), 1),
            "rtp_steps_back": back, "frames_after": sum(1 for t, _ in video if t > t1)}


def summary(r: dict) -> str:
    w = r["witness"]
    rows = ["| category | sent | codes seen | unexpected |", "|---|---|---|---|"]
    for c, t in r["categories"].items():
        codes = ", ".join(f"{k} {v}" for k, v in sorted(t["codes"].items(), key=lambda kv: -kv[1]))
        rows.append(f"| {c} | {t['sent']} | {codes} | {t['unexpected']} |")
    lb, la = r["load_average"]["before"], r["load_average"]["after"]
    return ("\n".join(rows) + "\n\n"
            f"crashes {r['crashes']} (server processes gone {r['watch']['processes_gone']}, worker replacements "
            f"{r['watch']['worker_replacements']}, /health failures {r['watch']['health_failures']} of "
            f"{r['watch']['health_polls']}); unexpected outcomes {r['unexpected']}; sessions disturbed "
            f"{r['sessions_disturbed']}; sessions open after {r['sessions_after']} (expected "
            f"{r['sessions_expected_after']}); server log: {r['server_log']['tracebacks']} tracebacks\n"
            f"witness over {w['seconds']} s: {w['frames']} frames, fps per second min {w['fps_min']} median "
            f"{w['fps_median']}, mean {w['fps_mean']}, longest gap {w['gap_max_ms']} ms (before the campaign, "
            f"{r['witness_baseline']['seconds']} s: min {r['witness_baseline']['fps_min']} median "
            f"{r['witness_baseline']['fps_median']}, longest gap {r['witness_baseline']['gap_max_ms']} ms)\n"
            f"witness as the server sent it: fps per second min {r['witness_sent']['fps_min']} median "
            f"{r['witness_sent']['fps_median']} (before the campaign: min {r['witness_sent_baseline']['fps_min']} "
            f"median {r['witness_sent_baseline']['fps_median']})\n"
            f"RSS (MB) before {r['rss_mb']['before']} = {r['rss_mb']['before_total']}, after {r['rss_mb']['after']} = "
            f"{r['rss_mb']['after_total']}; load average before {lb[0]:.2f} {lb[1]:.2f} {lb[2]:.2f}, after "
            f"{la[0]:.2f} {la[1]:.2f} {la[2]:.2f}; server CPU {r['server_cpu_pct']} % of one core over the campaign "
            f"({r['campaign_s']} s); {r['git_rev']}\n")
