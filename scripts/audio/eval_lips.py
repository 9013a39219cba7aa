"""Lip-sync on real, unseen voices: the rendered, re-detected mouth against the real speaker's mouth.

For every real talking clip with audio that the audio model never trained on
(data/talking: 6 free-speech clips of 5 people; the 5 GRID multi_speaker speakers
other than s1; the 6 CREMA-D 1001_DFA clips with audio):

* real mouth: MediaPipe Face Landmarker on every video frame (image mode: each frame
  on its own, see measure_frames), engine.face_geometry.mouth_opening = inner-lip gap /
  outer inter-ocular distance;
* product: the clip's audio rendered with the product's speech path
  (engine.speech_render.render_speech, what `emolive render --audio` runs: default
  avatar, neutral emotion, 25 fps), the rendered frames re-detected with the same
  landmarker and measured the same way, sampled at the real frames' times;
* loudness baseline: RMS of the audio over each frame's +-20 ms;
* phoneme baseline (scripts/audio/phoneme_baseline.py): pocketsphinx phone
  recognition (no transcript) -> calibrated phone -> opening table -> Gaussian
  smoothing; on GRID and CREMA-D also from the transcript force-aligned.

Metrics per clip, on raw series and with the slow envelope removed (a centred 0.5 s
moving average subtracted from both): Pearson r at lag 0, and the best r within
+-1 and +-10 frames with its lag (lag > 0: the real mouth moves after the series);
std_ratio = std of the rendered mouth / std of the real mouth; closure = share of
m/b/p phones (force-aligned where a transcript exists, else recognised) in which the
lips are closed (inner-lip gap below a threshold in some frame within the phone). The real
mouths' threshold comes from s1's force-aligned m/b/p (closed_gap_threshold). A rendered face
is also scored against its own closed mouth: the median re-detected gap of the clip's frames
whose state is at rest (silence: jaw shut, lips sealed), plus REST_CLOSED_MARGIN, because the
landmarker reads the default avatar's sealed lips, video-encoded, at about 0.03 where s1's
read 0.003.

Diagnostics: "model_output" = mouth_open_proxy of the rendered face states (before rendering);
an unsynchronised null per set; and, as a reference outside the unseen-voice means, ten GRID
s1 clips that train.py keeps out of training (set "s1ref").

Heavy steps are cached under build/lipeval/ (renders keyed by the ONNX model's, the warp's and the rest shape's
hashes).

    .venv/bin/python scripts/audio/eval_lips.py [--clips talking grid cremad s1ref] [--json OUT] [--markdown OUT]
        [--neural-mouth]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np
from scipy.ndimage import uniform_filter1d

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

BUILD = ROOT / "build" / "lipeval"
GRID_HELDOUT = ("brbk7n", "lbax4n", "lrwp9a", "sbwe5n", "swiz3n")  # multi_speaker/bbaf2n is s1: trained on
CREMAD_TEXT = {"DFA": "don't forget a jacket"}
SETS = ("talking", "grid", "cremad", "s1ref")
METHODS = ("product", "loudness", "phoneme", "phoneme_aligned", "model_output")
RENDER_FPS = 25.0


# ---------------------------------------------------------------------------------------------
# metrics


def pearson(a, b) -> float:
    a = np.asarray(a, float)
    b = np.asarray(b, float)
    if a.size < 3:
        return float("nan")
    a, b = a - a.mean(), b - b.mean()
    d = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / d) if d > 0 else 0.0


def lagged(x, real, lag: int, ok=None) -> float:
    """r between x[k] and real[k + lag] (lag > 0: the real mouth moves after x), over frames where ok."""
    x, real = np.asarray(x, float), np.asarray(real, float)
    ok = np.ones(len(real), bool) if ok is None else np.asarray(ok, bool)
    n = min(len(x), len(real))
    x, real, ok = x[:n], real[:n], ok[:n]
    if lag >= 0:
        a, b, m = x[: n - lag], real[lag:], ok[lag:]
    else:
        a, b, m = x[-lag:], real[: n + lag], ok[: n + lag]
    return pearson(a[m], b[m])


def best_lag(x, real, max_lag: int, ok=None) -> tuple[int, float]:
    """(lag, r) with the highest r for lags in [-max_lag, max_lag]; ties go to the smaller |lag|."""
    best = (0, lagged(x, real, 0, ok))
    for lag in sorted(range(-max_lag, max_lag + 1), key=abs):
        r = lagged(x, real, lag, ok)
        if r > best[1] + 1e-12:
            best = (lag, r)
    return best


def detrend(x, fps: float) -> np.ndarray:
    """Subtract a centred ~0.5 s moving average (odd window), as scripts/audio/evaluate.py does."""
    w = int(round(0.5 * fps)) | 1
    x = np.asarray(x, float)
    return x - uniform_filter1d(x, w, mode="nearest")


def rms_envelope(x: np.ndarray, sr: int, times: np.ndarray) -> np.ndarray:
    """RMS of the audio over +-20 ms around each time."""
    half = int(0.02 * sr)
    out = np.zeros(len(times))
    for k, t in enumerate(times):
        c = int(round(t * sr))
        seg = x[max(0, c - half): max(0, c + half)]
        out[k] = np.sqrt(np.mean(seg.astype(float) ** 2)) if seg.size else 0.0
    return out


def closure_accuracy(segs, gap: np.ndarray, times: np.ndarray, threshold: float, ok=None,
                     phones=frozenset({"M", "B", "P"})) -> tuple[float, int]:
    """Share of the m/b/p phones in which the gap drops below threshold in some frame.

    A frame at time t belongs to a phone [s, e) when t lies in [s - h, e + h), h = half a frame
    (the frame's own 1/fps interval overlaps the phone). Frames where ok is False are skipped;
    phones with no usable frame are not counted. Returns (share, phones counted)."""
    gap = np.asarray(gap, float)
    ok = np.ones(len(gap), bool) if ok is None else np.asarray(ok, bool)
    times = np.asarray(times, float)
    h = 0.5 * (times[1] - times[0]) if len(times) > 1 else 0.02
    hits = n = 0
    for p, s, e in segs:
        if p not in phones:
            continue
        sel = (times >= s - h) & (times < e + h) & ok
        if not sel.any():
            continue
        n += 1
        hits += bool(gap[sel].min() < threshold)
    return (hits / n if n else float("nan")), n


def scores(x, real, fps: float, ok) -> dict:
    """r at lag 0, best within +-1 and +-10 frames, raw and envelope removed."""
    out = {}
    for key, f in (("raw", lambda v: np.asarray(v, float)), ("env", lambda v: detrend(v, fps))):
        a, b = f(x), f(real)
        l1, r1 = best_lag(a, b, 1, ok)
        l10, r10 = best_lag(a, b, 10, ok)
        out[key] = dict(r0=lagged(a, b, 0, ok), lag1=l1, r1=r1, lag10=l10, r10=r10)
    return out


# ---------------------------------------------------------------------------------------------
# measuring (cached)


DETECTOR = "image"  # Face Landmarker mode for every measurement; see measure_frames


def measure_frames(frames, fps: float, mode: str = DETECTOR) -> dict:
    """Mouth opening per frame. mode "image" (default) detects every frame on its own; "video"
    tracks, and its landmark smoothing delays fast mouth motion by about half a frame, so a
    rendered clip re-detected in video mode carries that delay twice (once through the model's
    video-mode training targets, once through the re-detection)."""
    from engine.face_geometry import mouth_opening
    from engine.measure import Landmarker

    n = len(frames)
    mo = np.zeros(n, np.float32)
    found = np.zeros(n, bool)
    with Landmarker(mode=mode) as lm:  # a fresh detector per clip
        for i, rgb in enumerate(frames):
            m = lm.detect(rgb, timestamp_ms=int(round(i * 1000.0 / fps)))
            if m is not None:
                found[i] = True
                mo[i] = mouth_opening(m.landmarks)
    return {"mouth_open": mo, "found": found, "fps": np.float32(fps)}


def _cached(path: Path, make) -> dict:
    if path.exists():
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    res = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, **res)
    tmp.rename(path)
    return res


def measure_real(video: Path, subset: str, mode: str = DETECTOR) -> dict:
    """Mouth opening per frame of a real video (cached as build/lipeval/real/<mode>/<subset>/<clip>.npz)."""
    from engine.measure import read_video_rgb

    def make():
        frames, fps = read_video_rgb(video)
        return measure_frames(frames, fps, mode)
    return _cached(BUILD / "real" / mode / subset / f"{Path(video).stem}.npz", make)


REST_CLOSED_MARGIN = 0.005  # inter-ocular units above the clip's rendered rest gap that still count as closed


def model_hash() -> str:
    from engine.audio.model import ONNX_PATH

    return hashlib.sha256(Path(ONNX_PATH).read_bytes()).hexdigest()[:12]


def render_key(neural_mouth: bool) -> str:
    """The render cache's folder: the audio model's hash, the warp's source and the avatar's rest shape model,
    and the neural mouth's when it draws the frames."""
    import engine.renderers.meshwarp as warp
    from engine.avatar.rest_geometry import ASSET as REST_ASSET

    warp_bytes = Path(warp.__file__).read_bytes() + Path(REST_ASSET).read_bytes()
    key = f"{model_hash()}+warp{hashlib.sha256(warp_bytes).hexdigest()[:8]}"
    if not neural_mouth:
        return key
    from engine.neural_mouth.runtime import ONNX_PATH as MOUTH_ONNX

    return f"{key}+mouth{hashlib.sha256(Path(MOUTH_ONNX).read_bytes()).hexdigest()[:12]}"


def measure_render(video: Path, cache_dir: Path, mode: str = DETECTOR, neural_mouth: bool = False) -> dict:
    """Render the clip's audio with the product's speech path; measure the rendered mouth (cached)."""
    from engine.measure import read_video_rgb
    from engine.speech_render import render_speech

    mp4 = cache_dir / f"{video.stem}.mp4"

    def make():
        if not mp4.exists():
            tmp = mp4.with_name(mp4.stem + ".tmp.mp4")
            render_speech(tmp, video, fps=RENDER_FPS, neural_mouth=neural_mouth)  # default avatar, neutral
            tmp.rename(mp4)
        frames, fps = read_video_rgb(mp4)
        return measure_frames(frames, fps, mode)
    return _cached(cache_dir / f"{video.stem}.{mode}.npz", make)


def video_offset_s(path: Path) -> float:
    """Start of the video stream relative to the audio stream (CREMA-D FLVs: 27 ms; others 0)."""
    import av

    with av.open(str(path)) as c:
        def start(s):
            return float(s.start_time * s.time_base) if s.start_time is not None else 0.0
        return start(c.streams.video[0]) - start(c.streams.audio[0])


def fill_missing(v: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Linear interpolation over frames with no detection."""
    v = np.asarray(v, float).copy()
    if ok.any() and not ok.all():
        idx = np.arange(len(v))
        v[~ok] = np.interp(idx[~ok], idx[ok], v[ok])
    return v


# ---------------------------------------------------------------------------------------------
# clips


def clip_list(sd: Path, sets, s1ref: int = 10) -> list[dict]:
    from scripts.audio.phoneme_baseline import grid_transcripts, s1_val_clips

    out = []
    if "talking" in sets:
        for p in sorted((sd / "data/talking").glob("*.mp4")):
            out.append(dict(set="talking", video=p, text=None))
    if "grid" in sets:
        texts = grid_transcripts(sd)
        for c in GRID_HELDOUT:
            out.append(dict(set="grid", video=sd / "data/grid/multi_speaker" / f"{c}.mp4",
                            text=texts[("multi_speaker", c)]))
    if "cremad" in sets:
        for p in sorted((sd / "data/expressions/cremad").glob("*.flv")):  # the .mp4 ones have no audio
            out.append(dict(set="cremad", video=p, text=CREMAD_TEXT.get(p.stem.split("_")[1])))
    if "s1ref" in sets:  # reference only: the training speaker, clips kept out of training and calibration
        texts = grid_transcripts(sd)
        for p in s1_val_clips(sd, s1ref):
            out.append(dict(set="s1ref", video=p, text=texts[("s1", p.stem)]))
    return out


def evaluate_clip(c: dict, rec, table, sigma25: float, closed_gap: float, render_dir: Path,
                  mode: str = DETECTOR, neural_mouth: bool = False) -> dict:
    from engine.audio import read_audio_file
    from scripts.audio.phoneme_baseline import clip_phones, phones_to_series

    video, name = c["video"], c["video"].stem
    real = measure_real(video, c["set"], mode)
    fps = float(real["fps"])
    ok = real["found"].astype(bool)
    meas = real["mouth_open"].astype(float)
    n = len(meas)
    times = np.arange(n) / fps + video_offset_s(video)  # audio-stream time each real frame shows

    rend = measure_render(video, render_dir, mode, neural_mouth)
    rok = rend["found"].astype(bool)
    rt = np.arange(len(rend["mouth_open"])) / float(rend["fps"])
    product = np.interp(times, rt, fill_missing(rend["mouth_open"], rok))

    x, sr = read_audio_file(video)
    loud = rms_envelope(x, sr, times)
    # diagnostic: the states that were rendered, as the mouth-opening proxy (before rendering + re-detection)
    from engine.audio.spec import mouth_open_proxy
    from engine.speech_render import speech_states

    prox = np.array([mouth_open_proxy(st) for st in speech_states(x, sr, fps=RENDER_FPS)])
    model_output = np.interp(times, np.arange(len(prox)) / RENDER_FPS, prox)

    ph = clip_phones(rec, video, c["text"], BUILD / "phones" / c["set"] / f"{name}.json")
    sigma = sigma25 * fps / 25.0
    series = {"product": product, "loudness": loud, "model_output": model_output,
              "phoneme": phones_to_series(ph["recognised"], table, times, sigma)}
    if "aligned" in ph:
        series["phoneme_aligned"] = phones_to_series(ph["aligned"], table, times, sigma)

    res = dict(set=c["set"], clip=name, fps=fps, frames=n, real_found=float(ok.mean()),
               render_found=float(rok.mean()), transcript=c["text"])
    for k, v in series.items():
        res[k] = scores(v, meas, fps, ok)
    sd_real = float(np.std(meas[ok]))
    res["std_ratio"] = float(np.std(product[ok]) / sd_real) if sd_real > 0 else float("nan")
    res["std_ratio_env"] = float(np.std(detrend(product, fps)[ok]) / np.std(detrend(meas, fps)[ok]))
    segs = ph.get("aligned", ph["recognised"])
    res["closure_phones_from"] = "aligned" if "aligned" in ph else "recognised"
    res["closure_product"], res["closure_phones"] = closure_accuracy(segs, product, times, closed_gap, ok)
    res["closure_real"], _ = closure_accuracy(segs, meas, times, closed_gap, ok)
    at_rest = np.abs(model_output) < 1e-4  # silence: every speech coefficient relaxed to exactly 0
    if at_rest.sum() >= 3:
        res["render_rest_gap"] = float(np.median(product[at_rest]))
        res["closure_product_rest"], _ = closure_accuracy(segs, product, times,
                                                          res["render_rest_gap"] + REST_CLOSED_MARGIN, ok)
    res["render_gap_min"] = float(np.min(rend["mouth_open"][rok])) if rok.any() else float("nan")
    res["render_gap_p05"] = float(np.percentile(rend["mouth_open"][rok], 5)) if rok.any() else float("nan")
    res["real_gap_p05"] = float(np.percentile(meas[ok], 5)) if ok.any() else float("nan")
    res["_series"] = {k: np.round(v, 5).tolist() for k, v in series.items()} | {"real": np.round(meas, 5).tolist(),
                                                                              "real_found": ok.tolist()}
    return res


def closed_gap_threshold(sd: Path, rec, n_clips: int, quantile: float, mode: str = DETECTOR) -> tuple[float, dict]:
    """Gap below which lips count as closed: the `quantile` of GRID s1's smallest gap within each
    force-aligned m/b/p phone (training speaker; the real mouths of the clips scored are not used)."""
    from scripts.audio.phoneme_baseline import clip_phones, grid_transcripts, s1_clips

    texts = grid_transcripts(sd)
    mins = []
    for v in s1_clips(sd, n_clips):
        m = measure_real(v, "s1", mode)
        ph = clip_phones(rec, v, texts[("s1", v.stem)], BUILD / "phones" / "s1" / f"{v.stem}.json")
        t = np.arange(len(m["mouth_open"])) / float(m["fps"])
        ok = m["found"].astype(bool)
        h = 0.5 / float(m["fps"])
        for p, s, e in ph["aligned"]:
            sel = (t >= s - h) & (t < e + h) & ok
            if p in ("M", "B", "P") and sel.any():
                mins.append(float(m["mouth_open"][sel].min()))
    mins = np.array(mins)
    thr = float(np.quantile(mins, quantile))
    return thr, dict(clips=n_clips, phones=int(mins.size), quantile=quantile, threshold=thr,
                     median=float(np.median(mins)))


# ---------------------------------------------------------------------------------------------
# report


def mean_of(rows: list[dict], path: tuple) -> float:
    vals = []
    for r in rows:
        v = r
        for k in path:
            v = v.get(k) if isinstance(v, dict) else None
        if v is not None and np.isfinite(v):
            vals.append(float(v))
    return float(np.mean(vals)) if vals else float("nan")


def null_scores(rows: list[dict]) -> dict:
    """Unsynchronised null: clip j's series against clip i's real mouth (i != j, same set, truncated to
    the shorter clip); mean r at lag 0 and best within +-10 frames, per method, raw and envelope removed."""
    out = {}
    for m in METHODS:
        acc = {}
        for i, a in enumerate(rows):
            for j, b in enumerate(rows):
                if i == j or m not in b["_series"]:
                    continue
                n = min(len(a["_series"]["real"]), len(b["_series"][m]))
                ok = np.asarray(a["_series"]["real_found"][:n], bool)
                sc = scores(np.asarray(b["_series"][m][:n]), np.asarray(a["_series"]["real"][:n]), a["fps"], ok)
                for key in ("raw", "env"):
                    for f in ("r0", "r10"):
                        acc.setdefault(f"{m}.{key}.{f}", []).append(sc[key][f])
        out.update({k: float(np.mean(v)) for k, v in acc.items()})
    return out


def summarise(rows: list[dict]) -> dict:
    out = {}
    for s in SETS + ("all",):
        rs = [r for r in rows if (s == "all" and r["set"] != "s1ref") or r["set"] == s]
        if not rs:
            continue
        d = {"clips": len(rs)}
        for m in METHODS:
            for key in ("raw", "env"):
                for f in ("r0", "r1", "lag1", "r10", "lag10"):
                    d[f"{m}.{key}.{f}"] = mean_of(rs, (m, key, f))
        for f in ("std_ratio", "std_ratio_env", "closure_product", "closure_product_rest", "closure_real",
                  "render_rest_gap", "real_found", "render_found"):
            d[f] = mean_of(rs, (f,))
        if s != "all":
            d["null"] = null_scores(rs)
        out[s] = d
    return out


def fmt(v, spec=".2f") -> str:
    return "–" if v is None or (isinstance(v, float) and not np.isfinite(v)) else format(v, spec)


def markdown(rows: list[dict], summary: dict, meta: dict) -> str:
    names = {"talking": "Free speech (data/talking, 5 people)", "grid": "GRID, 5 held-out speakers",
             "cremad": "CREMA-D actor 1001 (6 emotions, ~60 px face)",
             "s1ref": "Reference: GRID s1, the training speaker (clips kept out of training)",
             "all": "All unseen-voice clips"}
    L = []
    L.append("Summary, means over clips. r0 = Pearson r at lag 0; r±1 / r±10 = best r within ±1 / ±10 frames "
             "(mean best lag in brackets; + = the real mouth moves after the series).\n")
    L.append("| clips | series | product r0 | r±1 | r±10 | loudness r0 | r±1 | r±10 | phoneme r0 | r±1 | r±10 "
             "| phoneme (aligned) r0 | model output r0 | std_ratio | closure m/b/p rendered | "
             "rendered (against its rest) | real |")
    L.append("|---|---|" + "---|" * 15)
    for s, d in summary.items():
        for key, label in (("env", "envelope removed"), ("raw", "raw")):
            c = [f"**{fmt(d[f'product.{key}.r0'])}**",
                 f"{fmt(d[f'product.{key}.r1'])} ({fmt(d[f'product.{key}.lag1'], '+.1f')})",
                 f"{fmt(d[f'product.{key}.r10'])} ({fmt(d[f'product.{key}.lag10'], '+.1f')})"]
            for m in ("loudness", "phoneme"):
                c += [fmt(d[f"{m}.{key}.r0"]), f"{fmt(d[f'{m}.{key}.r1'])} ({fmt(d[f'{m}.{key}.lag1'], '+.1f')})",
                      f"{fmt(d[f'{m}.{key}.r10'])} ({fmt(d[f'{m}.{key}.lag10'], '+.1f')})"]
            c.append(fmt(d[f"phoneme_aligned.{key}.r0"]))
            c.append(fmt(d[f"model_output.{key}.r0"]))
            extra = [fmt(d["std_ratio"]), fmt(d["closure_product"]), fmt(d.get("closure_product_rest")),
                     fmt(d["closure_real"])] if key == "env" else [fmt(d["std_ratio"]), "", "", ""]
            L.append(f"| {names[s]} ({d['clips']}) | {label} | " + " | ".join(c + extra) + " |")
    L.append("\nUnsynchronised null (each clip's series against every other clip's real mouth of the same set, "
             "same lags searched): mean r, envelope removed / raw.\n")
    L.append("| clips | product r0 | r±10 | loudness r0 | r±10 | phoneme r0 | r±10 |")
    L.append("|---|---|---|---|---|---|---|")
    for s, d in summary.items():
        if "null" not in d:
            continue
        nd = d["null"]
        L.append(f"| {names[s]} | " + " | ".join(
            f"{fmt(nd.get(f'{m}.env.{f}'))} / {fmt(nd.get(f'{m}.raw.{f}'))}"
            for m in ("product", "loudness", "phoneme") for f in ("r0", "r10")) + " |")
    for s in SETS:
        rs = [r for r in rows if r["set"] == s]
        if not rs:
            continue
        L.append(f"\n**{names[s]}**, per clip, envelope removed (raw in brackets):\n")
        L.append("| clip | product r0 | r±1 (lag) | r±10 (lag) | loudness r0 | r±10 (lag) | phoneme r0 | r±10 (lag) "
                 "| phoneme aligned r0 | std_ratio | closure rendered / real (n) | face found real / rendered |")
        L.append("|---|" + "---|" * 11)
        for r in rs:
            def cell(m, f):
                if m not in r:
                    return "–"
                e, w = r[m]["env"], r[m]["raw"]
                if f == "r0":
                    return f"{fmt(e['r0'])} ({fmt(w['r0'])})"
                lag = "lag1" if f == "r1" else "lag10"
                return f"{fmt(e[f])} ({e[lag]:+d}) ({fmt(w[f])} ({w[lag]:+d}))"
            L.append(f"| {r['clip']} | {cell('product', 'r0')} | {cell('product', 'r1')} | {cell('product', 'r10')} | "
                     f"{cell('loudness', 'r0')} | {cell('loudness', 'r10')} | {cell('phoneme', 'r0')} | "
                     f"{cell('phoneme', 'r10')} | {cell('phoneme_aligned', 'r0')} | {fmt(r['std_ratio'])} | "
                     f"{fmt(r['closure_product'])} ({fmt(r.get('closure_product_rest'))}) / "
                     f"{fmt(r['closure_real'])} ({r['closure_phones']}, "
                     f"{r['closure_phones_from'][:5]}) | {fmt(r['real_found'])} / {fmt(r['render_found'])} |")
    t = meta["closed_gap"]
    L.append(f"\nClosed lips: inner-lip gap / inter-ocular < {t['threshold']:.4f} (the {t['quantile']:.0%} quantile "
             f"of GRID s1's smallest gap within each of {t['phones']} force-aligned m/b/p phones in {t['clips']} "
             f"clips; median {t['median']:.4f}). Rendered avatar's gap: smallest {fmt(meta['render_gap_min'], '.4f')}, "
             f"5th percentile {fmt(meta['render_gap_p05'], '.4f')}, at rest {fmt(meta['render_rest_gap'], '.4f')} "
             f"(means over clips); closed against its rest (in brackets): gap < the clip's rendered rest gap + "
             f"{REST_CLOSED_MARGIN}. "
             f"Phoneme smoothing σ = {meta['sigma_frames_25fps']} frames at 25 fps. Face Landmarker mode: "
             f"{meta['detector']}. Model {meta['model_sha256_12']}.")
    return "\n".join(L) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", nargs="+", default=list(SETS), choices=SETS, help="which sets to score")
    ap.add_argument("--json", default=str(BUILD / "eval_lips.json"))
    ap.add_argument("--markdown", default=str(BUILD / "eval_lips.md"))
    ap.add_argument("--s1-ref", type=int, default=10, help="s1 clips kept out of training, as a reference")
    ap.add_argument("--closure-clips", type=int, default=120, help="GRID s1 clips for the closed-lips threshold")
    ap.add_argument("--closure-quantile", type=float, default=0.9)
    ap.add_argument("--detector", choices=("image", "video"), default=DETECTOR,
                    help="Face Landmarker mode for real and rendered frames (the phoneme table is calibrated in "
                         "image mode)")
    ap.add_argument("--neural-mouth", action="store_true", help="render with the neural mouth")
    args = ap.parse_args()
    from engine.measure import shared_dir
    from scripts.audio.phoneme_baseline import PhoneRecogniser, load_table

    sd = shared_dir()
    if sd is None:
        raise SystemExit("../shared not present")
    table, sigma25 = load_table()
    rec = PhoneRecogniser()
    thr, thr_info = closed_gap_threshold(sd, rec, args.closure_clips, args.closure_quantile, args.detector)
    mh = model_hash()
    render_dir = BUILD / "render" / render_key(args.neural_mouth)
    rows = []
    for c in clip_list(sd, args.clips, args.s1_ref):
        r = evaluate_clip(c, rec, table, sigma25, thr, render_dir, args.detector, args.neural_mouth)
        rows.append(r)
        print(f"{r['set']:8s} {r['clip']:24s} product r0 env {r['product']['env']['r0']:+.3f} "
              f"loud {r['loudness']['env']['r0']:+.3f} phon {r['phoneme']['env']['r0']:+.3f} "
              f"std {r['std_ratio']:.2f} closure {fmt(r['closure_product'])} "
              f"({fmt(r.get('closure_product_rest'))})/{fmt(r['closure_real'])}", flush=True)
    summary = summarise(rows)
    meta = dict(model_sha256_12=mh, neural_mouth=args.neural_mouth, detector=args.detector, closed_gap=thr_info, sigma_frames_25fps=sigma25,
                render_rest_gap=mean_of(rows, ("render_rest_gap",)),
                render_gap_min=mean_of(rows, ("render_gap_min",)), render_gap_p05=mean_of(rows, ("render_gap_p05",)),
                load_average=os.getloadavg())
    md = markdown(rows, summary, meta)
    print(md)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(dict(meta=meta, summary=summary, clips=rows), indent=1))
    Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
    Path(args.markdown).write_text(md)


if __name__ == "__main__":
    main()
