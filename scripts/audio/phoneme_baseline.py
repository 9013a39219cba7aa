"""Phoneme -> mouth baseline for lip-sync evaluation, in the style of Rhubarb Lip Sync.

Offline, whole-utterance: pocketsphinx (PyPI `pocketsphinx`, its bundled US-English
acoustic model) either recognises phones with no transcript (allphone mode with the
bundled phone language model) or force-aligns a known transcript; each phone maps to
one mouth-opening value; the per-frame series is Gaussian-smoothed (coarticulation).

The phone -> opening table and the smoothing width are calibrated on GRID speaker s1
(training data of the audio model): the mean landmark mouth opening
(engine.face_geometry.mouth_opening: inner-lip gap / outer inter-ocular distance,
measured with MediaPipe's Face Landmarker) over the frames inside each force-aligned
phone. The committed table (phoneme_mouth_table.json beside this file) is small
derived data from the GRID corpus (Cooke et al. 2006, CC BY 4.0) measured with
MediaPipe (Apache-2.0).

    .venv/bin/python scripts/audio/phoneme_baseline.py --clips 150   # recalibrate, writes the table
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter1d

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

TABLE_PATH = Path(__file__).with_name("phoneme_mouth_table.json")
BUILD = ROOT / "build" / "lipeval"
RATE = 16000
PS_FRAME_S = 0.01  # pocketsphinx frame shift

# CMU / pocketsphinx en-us phone set (39 phones) plus silence.
VOWELS = ("AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW")
CONSONANTS = ("B", "CH", "D", "DH", "F", "G", "HH", "JH", "K", "L", "M", "N", "NG", "P", "R", "S", "SH",
              "T", "TH", "V", "W", "Y", "Z", "ZH")
PHONES = VOWELS + CONSONANTS + ("SIL",)
BILABIALS = frozenset({"M", "B", "P"})  # lips closed


def norm_phone(name: str) -> str:
    """Pocketsphinx phone label -> one of PHONES ('SIL' for silence and noise fillers like +NSN+)."""
    n = name.strip().upper()
    if n in ("<SIL>", "<S>", "</S>", "SIL", "SP") or n.startswith("+") or n.startswith("["):
        return "SIL"
    n = "".join(c for c in n if c.isalpha())  # stress digits
    return n if n in PHONES else "SIL"


def to_pcm16(x: np.ndarray, sr: int) -> bytes:
    """Mono float audio at any rate -> 16 kHz int16 bytes, peak-normalised to 0.9."""
    from engine.audio.resample import resample

    y = resample(np.asarray(x, np.float32), int(sr), RATE) if sr != RATE else np.asarray(x, np.float32)
    peak = float(np.max(np.abs(y))) if y.size else 0.0
    if peak > 0:
        y = y * (0.9 / peak)
    return (np.clip(y, -1, 1) * 32767).astype(np.int16).tobytes()


class PhoneRecogniser:
    """Pocketsphinx decoders, created once: allphone recognition and transcript forced alignment."""

    def __init__(self):
        import pocketsphinx as ps

        self._ps = ps
        self._allphone = None
        self.even_split_words = 0

    def recognise(self, pcm: bytes) -> list[tuple[str, float, float]]:
        """Phones with no transcript: [(phone, start_s, end_s)]."""
        if self._allphone is None:
            ps = self._ps
            cfg = ps.Config(allphone=ps.get_model_path("en-us/en-us-phone.lm.bin"), lm=None, loglevel="FATAL",
                            beam=1e-20, pbeam=1e-20, lw=2.0)
            self._allphone = ps.Decoder(cfg)
        d = self._allphone
        d.start_utt()
        d.process_raw(pcm, full_utt=True)
        d.end_utt()
        return [(norm_phone(s.word), s.start_frame * PS_FRAME_S, (s.end_frame + 1) * PS_FRAME_S) for s in d.seg()]

    def align(self, pcm: bytes, text: str) -> list[tuple[str, float, float]]:
        """Phones of a known transcript, force-aligned: [(phone, start_s, end_s)].

        Word alignment first; then pocketsphinx's phone-level pass. When that pass finds no
        complete path (it happens on some clips), each aligned word's dictionary phones share
        the word's span evenly; `self.even_split_words` counts those words."""
        ps = self._ps
        words, d = None, None
        for beams in ({}, dict(beam=1e-80, pbeam=1e-80, wbeam=1e-60)):
            d = ps.Decoder(loglevel="FATAL", **beams)  # fresh: no search state leaks between clips
            try:
                d.set_align_text(text.lower())
                d.start_utt()
                d.process_raw(pcm, full_utt=True)
                d.end_utt()
                words = [(s.word, s.start_frame, s.end_frame + 1) for s in d.seg()]
                d.set_alignment()
                d.start_utt()
                d.process_raw(pcm, full_utt=True)
                d.end_utt()
                out = []
                for w in d.get_alignment():
                    for p in w:
                        out.append((norm_phone(p.name), p.start * PS_FRAME_S, (p.start + p.duration) * PS_FRAME_S))
                return out
            except RuntimeError:
                continue
        if not words:
            raise RuntimeError(f"pocketsphinx could not align {text!r}")
        out = []
        for w, a, b in words:
            if w.startswith("<") or w.startswith("["):
                if b > a:
                    out.append(("SIL", a * PS_FRAME_S, b * PS_FRAME_S))
                continue
            phones = (d.lookup_word(w.split("(")[0]) or "SIL").split()
            self.even_split_words += 1
            edges = np.linspace(a, b, len(phones) + 1) * PS_FRAME_S
            out += [(norm_phone(p), float(edges[i]), float(edges[i + 1])) for i, p in enumerate(phones)]
        return out


def phone_at(segs, times: np.ndarray) -> list[str]:
    """The phone covering each time (SIL outside every segment)."""
    starts = np.array([s[1] for s in segs]) if segs else np.zeros(0)
    out = []
    for t in times:
        i = int(np.searchsorted(starts, t, side="right")) - 1
        out.append(segs[i][0] if i >= 0 and segs[i][1] <= t < segs[i][2] else "SIL")
    return out


def phones_to_series(segs, table: dict[str, float], times: np.ndarray, sigma_frames: float = 0.0) -> np.ndarray:
    """Mouth opening at each time from the phone covering it, Gaussian-smoothed over frames."""
    default = table.get("_speech", float(np.mean([v for k, v in table.items() if not k.startswith("_")])))
    v = np.array([table.get(p, default) for p in phone_at(segs, np.asarray(times, float))], float)
    return gaussian_filter1d(v, sigma_frames, mode="nearest") if sigma_frames > 0 else v


def load_table(path: Path = TABLE_PATH) -> tuple[dict[str, float], float]:
    """(phone -> opening, smoothing sigma in frames at 25 fps) from the committed calibration."""
    doc = json.loads(Path(path).read_text())
    return {k: float(v) for k, v in doc["table"].items()}, float(doc["sigma_frames_25fps"])


# ---------------------------------------------------------------------------------------------
# Calibration on GRID s1


def s1_clips(sd: Path, n: int) -> list[Path]:
    """n s1 clips evenly spaced in name order, skipping every 20th clip (those train.py keeps out of
    training; eval_lips.py scores some of them as the same-speaker reference)."""
    clips = [c for i, c in enumerate(sorted((sd / "data/grid/s1").glob("*.mp4"))) if i % 20 != 0]
    step = max(1, len(clips) // n)
    return clips[::step][:n]


def s1_val_clips(sd: Path, n: int) -> list[Path]:
    """The first n of the s1 clips that train.py never trains on (every 20th in name order)."""
    return [c for i, c in enumerate(sorted((sd / "data/grid/s1").glob("*.mp4"))) if i % 20 == 0][:n]


def grid_transcripts(sd: Path) -> dict[tuple[str, str], str]:
    out = {}
    for line in (sd / "data/grid/index.tsv").read_text().splitlines()[1:]:
        f = line.split("\t")
        out[(f[0], f[1])] = f[4]
    return out


def clip_phones(rec: PhoneRecogniser, video: Path, text: str | None, cache: Path) -> dict:
    """Recognised (and, with a transcript, aligned) phones of a clip's audio, cached as JSON."""
    if cache.exists():
        return json.loads(cache.read_text())
    from engine.audio import read_audio_file

    x, sr = read_audio_file(video)
    pcm = to_pcm16(x, sr)
    res = {"recognised": rec.recognise(pcm)}
    if text:
        before = rec.even_split_words
        res["aligned"] = rec.align(pcm, text)
        res["aligned_even_split"] = rec.even_split_words > before  # phone pass failed: even split per word
        res["transcript"] = text
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(res))
    return res


def calibrate(clips: list[dict], sigmas=(0.0, 0.5, 1.0, 1.5, 2.0, 3.0)) -> dict:
    """clips: dicts with mouth_open, found, fps, aligned, recognised. Returns the table document."""
    sums: dict[str, list[float]] = {}
    speech = []
    for c in clips:
        t = np.arange(len(c["mouth_open"])) / c["fps"]
        for p, m, ok in zip(phone_at(c["aligned"], t), c["mouth_open"], c["found"]):
            if ok:
                sums.setdefault(p, []).append(float(m))
                if p != "SIL":
                    speech.append(float(m))
    table = {p: float(np.mean(v)) for p, v in sums.items()}
    table["_speech"] = float(np.mean(speech))
    counts = {p: len(v) for p, v in sums.items()}
    # smoothing width: best mean r (envelope removed, lag 0) of the recognised-phone series on these clips
    from scripts.audio.eval_lips import detrend, pearson

    score = {}
    for s in sigmas:
        rs = []
        for c in clips:
            t = np.arange(len(c["mouth_open"])) / c["fps"]
            v = phones_to_series(c["recognised"], table, t, s)
            ok = c["found"]
            rs.append(pearson(detrend(v, c["fps"])[ok], detrend(c["mouth_open"], c["fps"])[ok]))
        score[s] = float(np.mean(rs))
    sigma = max(score, key=score.get)
    from scripts.audio.eval_lips import DETECTOR

    return {"detector": DETECTOR, "table": table, "frames_per_phone": counts, "sigma_frames_25fps": sigma,
            "sigma_scores_envelope_removed_r": {str(k): v for k, v in score.items()},
            "clips": len(clips),
            "source": "GRID s1 (Cooke et al. 2006, CC BY 4.0), force-aligned with pocketsphinx en-us, "
                      "mouth opening measured with MediaPipe Face Landmarker (Apache-2.0)"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=120, help="GRID s1 clips to calibrate on (evenly spaced)")
    ap.add_argument("--out", default=str(TABLE_PATH))
    args = ap.parse_args()
    from engine.measure import shared_dir
    from scripts.audio.eval_lips import measure_real

    sd = shared_dir()
    if sd is None:
        raise SystemExit("../shared not present")
    texts = grid_transcripts(sd)
    rec = PhoneRecogniser()
    data = []
    from tqdm import tqdm

    for v in tqdm(s1_clips(sd, args.clips), desc="calibrate s1"):
        m = measure_real(v, "s1")
        ph = clip_phones(rec, v, texts[("s1", v.stem)], BUILD / "phones" / "s1" / f"{v.stem}.json")
        data.append(dict(mouth_open=m["mouth_open"].astype(float), found=m["found"], fps=float(m["fps"]),
                         aligned=ph["aligned"], recognised=ph["recognised"]))
    doc = calibrate(data)
    Path(args.out).write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    t = doc["table"]
    print("sigma", doc["sigma_frames_25fps"], doc["sigma_scores_envelope_removed_r"])
    print(" ".join(f"{p}={t[p]:.3f}" for p in sorted(t, key=t.get)))


if __name__ == "__main__":
    main()
