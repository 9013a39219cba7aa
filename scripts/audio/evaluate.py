"""Evaluate the shipped audio model on held-out speakers against the mouth measured on real video.

Per clip: Pearson r between the predicted mouth opening (engine.audio.spec.
mouth_open_proxy of the streamed coefficients: jaw drop + lower-lip drop - lip
closure; full streaming path, 20 ms chunks) and the landmark mouth opening
measured on the video (measure_targets.py), at lag 0 and at the best lag in
+-5 frames; the same for a naive loudness baseline (RMS envelope of the audio
over each frame's 40 ms). On GRID both series first lose their slow sentence
envelope (a centred 0.5 s moving average is subtracted); the null figure pairs
each clip's measured mouth with other clips' series (unsynchronised).

    .venv/bin/python scripts/audio/evaluate.py [--onnx PATH] [--json OUT]
"""
from __future__ import annotations

import argparse
import json
import sys
from itertools import permutations
from pathlib import Path

import numpy as np
from scipy.ndimage import uniform_filter1d

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from engine.audio import AudioToExpression, read_audio_file, run_samples  # noqa: E402
from engine.audio.model import ONNX_PATH, ExpressionModel, onnx_predictor  # noqa: E402
from engine.audio.spec import mouth_open_proxy  # noqa: E402
from engine.measure import shared_dir  # noqa: E402

MEASURED = {"image": ROOT / "build" / "audio" / "measure_image", "video": ROOT / "build" / "audio" / "measure"}
MAX_LAG = 5


def pearson(a, b) -> float:
    a, b = np.asarray(a, float) - np.mean(a), np.asarray(b, float) - np.mean(b)
    d = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / d) if d > 0 else 0.0


def lagged(pred, meas, lag: int) -> float:
    """r between pred[k] and meas[k + lag] (lag > 0: the real mouth moves after the prediction)."""
    if lag >= 0:
        return pearson(pred[: len(pred) - lag], meas[lag:])
    return pearson(pred[-lag:], meas[: len(meas) + lag])


def best_lag(pred, meas) -> tuple[int, float]:
    rs = {lag: lagged(pred, meas, lag) for lag in range(-MAX_LAG, MAX_LAG + 1)}
    lag = max(rs, key=rs.get)
    return lag, rs[lag]


def detrend(x, fps: float) -> np.ndarray:
    w = int(round(0.5 * fps)) | 1  # odd window of ~0.5 s
    return np.asarray(x, float) - uniform_filter1d(np.asarray(x, float), w, mode="nearest")


def rms_envelope(x: np.ndarray, sr: int, fps: float, n: int) -> np.ndarray:
    half = int(0.02 * sr)
    out = np.zeros(n)
    for k in range(n):
        c = int(round(k / fps * sr))
        seg = x[max(0, c - half): c + half]
        out[k] = np.sqrt(np.mean(seg ** 2)) if seg.size else 0.0
    return out


def video_offset_s(path: Path) -> float:
    """Start of the video stream relative to the audio stream (CREMA-D FLVs: 27 ms; GRID: 0)."""
    import av

    with av.open(str(path)) as c:
        def start(s):
            return float(s.start_time * s.time_base) if s.start_time is not None else 0.0
        return start(c.streams.video[0]) - start(c.streams.audio[0])


def clip_series(video: Path, meas: Path, onnx: str):
    m = np.load(meas)
    fps = float(m["fps"])
    x, sr = read_audio_file(video)
    eng = AudioToExpression(fps=fps, model=ExpressionModel(onnx_predictor(onnx)), max_lookahead_ms=90)
    frames = run_samples(x, sr, chunk_ms=20, engine=eng)
    n = min(len(frames), len(m["mouth_open"]))
    pred = np.array([mouth_open_proxy(f.state) for f in frames])
    # measured frame k shows stream time off + k / fps: sample the prediction there
    off = video_offset_s(video)
    tk = np.arange(len(frames)) / fps
    pred = np.interp(np.arange(n) / fps + off, tk, pred)
    loud = np.interp(np.arange(n) / fps + off, tk, rms_envelope(x, sr, fps, len(frames)))
    return dict(pred=pred, loud=loud, meas=m["mouth_open"][:n].astype(float), found=m["found"][:n], fps=fps)


def score(s: dict, envelope: bool) -> dict:
    ok = s["found"]
    f = (lambda v: detrend(v, s["fps"])) if envelope else (lambda v: np.asarray(v, float))
    pred, loud, meas = f(s["pred"])[ok], f(s["loud"])[ok], f(s["meas"])[ok]
    lag, rbest = best_lag(pred, meas)
    llag, lbest = best_lag(loud, meas)
    return dict(r=lagged(pred, meas, 0), best_lag=lag, r_best=rbest, loud_r=lagged(loud, meas, 0),
                loud_best_lag=llag, loud_r_best=lbest)


def null(series: list[dict], envelope: bool) -> dict:
    """Unsynchronised pairs: clip j's prediction / real mouth against clip i's real mouth."""
    rp, rm = [], []
    for i, j in permutations(range(len(series)), 2):
        a, b = series[i], series[j]
        n = min(len(a["meas"]), len(b["meas"]))
        f = (lambda v: detrend(v, a["fps"])) if envelope else (lambda v: np.asarray(v, float))
        ok = a["found"][:n] & b["found"][:n]
        rp.append(pearson(f(b["pred"][:n])[ok], f(a["meas"][:n])[ok]))
        rm.append(pearson(f(b["meas"][:n])[ok], f(a["meas"][:n])[ok]))
    return dict(null_pred=float(np.mean(rp)), null_real_mouth=float(np.mean(rm)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--onnx", default=str(ONNX_PATH))
    ap.add_argument("--json", default=None)
    ap.add_argument("--s1-val", type=int, default=50, help="also score this many held-out s1 clips (same speaker)")
    ap.add_argument("--measured", choices=sorted(MEASURED), default="image",
                    help="real mouths measured frame by frame (image) or tracked (video): measure_targets.py --mode")
    args = ap.parse_args()
    MEASURE = MEASURED[args.measured]
    sd = shared_dir()
    if sd is None:
        raise SystemExit("../shared not present")
    sets = {
        "grid_heldout_speakers": [(sd / "data/grid/multi_speaker" / f"{c}.mp4", MEASURE / "multi" / f"{c}.npz")
                                  for c in ("brbk7n", "lbax4n", "lrwp9a", "sbwe5n", "swiz3n")],
        "cremad_1001": [(p, MEASURE / "cremad" / f"{p.stem}.npz")
                        for p in sorted((sd / "data/expressions/cremad").glob("1001_DFA_*.flv"))],
    }
    s1 = sorted(p.stem for p in (MEASURE / "s1").glob("*.npz"))
    val = [c for i, c in enumerate(s1) if i % 20 == 0][: args.s1_val]  # the clips train.py never trains on
    if val:
        sets["grid_s1_val_same_speaker"] = [(sd / "data/grid/s1" / f"{c}.mp4", MEASURE / "s1" / f"{c}.npz") for c in val]
    report = {}
    for name, clips in sets.items():
        series = [clip_series(v, m, args.onnx) for v, m in clips]
        report[name] = {}
        for env in (True, False):
            key = "envelope_removed" if env else "raw"
            per = [dict(clip=v.stem, **score(s, env)) for (v, _), s in zip(clips, series)]
            agg = {k: float(np.mean([p[k] for p in per])) for k in per[0] if k != "clip"}
            agg["ratio_vs_loudness"] = agg["r"] / agg["loud_r"] if agg["loud_r"] > 0 else float("inf")
            agg.update(null(series, env))
            report[name][key] = dict(mean=agg, clips=per)
    for name, r in report.items():
        for key, d in r.items():
            a = d["mean"]
            print(f"\n## {name} ({key})\n| clip | r lag0 | best lag | r best | loud r lag0 | loud best lag | loud r best |\n"
                  "|---|---|---|---|---|---|---|")
            for p in d["clips"] if name != "grid_s1_val_same_speaker" else []:
                print(f"| {p['clip']} | {p['r']:.3f} | {p['best_lag']:+d} | {p['r_best']:.3f} | {p['loud_r']:.3f} | "
                      f"{p['loud_best_lag']:+d} | {p['loud_r_best']:.3f} |")
            print(f"| **mean** | **{a['r']:.3f}** | {a['best_lag']:+.1f} | {a['r_best']:.3f} | {a['loud_r']:.3f} | "
                  f"{a['loud_best_lag']:+.1f} | {a['loud_r_best']:.3f} |")
            print(f"ratio model/loudness at lag 0: {a['ratio_vs_loudness']:.2f}; unsynchronised null: "
                  f"prediction {a['null_pred']:.3f}, real mouth {a['null_real_mouth']:.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
