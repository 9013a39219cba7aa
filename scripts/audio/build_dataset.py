"""Build the training set for the audio->expression model under build/audio/.

1. Real: GRID s1 clips measured by measure_targets.py (`--measured image`: every
   frame detected on its own; `video`: tracked, about half a frame late). Audio
   decoded with PyAV, resampled to 16 kHz, trimmed to 3.0 s; targets = speech
   blendshapes minus the speaker's rest pose (median over `sil` frames),
   interpolated from 25 fps to the 100 Hz feature rate; voice activity from the
   .align word timings. mouthClose is not the landmarker's (near 0 on these
   frames): inside words it is the lips' measured closure (1 at an inner-lip gap
   below CLOSED_GAP, fading to 0 by OPEN_GAP) times CLOSE_LABEL; 0 in silence.
   In ARKit terms mouthClose cancels as much jaw opening: CLOSE_LABEL is more
   than a closure's jaw drop, so a renderer seals the lips (meshwarp closes the
   share mouthClose / opening of the gap).
2. Calibration: every GRID word is synthesised with espeak-ng to get its phonemes
   and relative durations, which are stretched over the real word's aligned span;
   averaging the real targets over each phoneme's frames gives a phoneme->mouth table.
3. Synthetic: random English sentences spoken by ~100 espeak-ng voice variants
   (accent x variant x rate x pitch); targets from the phoneme table at the
   phoneme-event times, smoothed for coarticulation; silence = rest.
4. Phone labels for the training-only phoneme head: each 10 ms step's espeak-ng
   phoneme (stress and length marks dropped; 0 = silence), on the real clips from
   the word spans of step 2, on the synthetic ones from the phoneme events.

    .venv/bin/python scripts/audio/build_dataset.py --synthetic 1200
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.signal import resample_poly
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from espeak import Espeak  # noqa: E402

from engine.audio.io import read_audio_file  # noqa: E402
from engine.audio.spec import N_SPEECH, SPEECH_COEFFS, SPEECH_INDEX  # noqa: E402
from engine.measure import shared_dir  # noqa: E402

BUILD = ROOT / "build" / "audio"
SR, RATE = 16000, 100  # audio rate, target rate (= feature frames per second)
CLIP_S = 3.0
# Inner-lip gap (inter-ocular units) at or below which s1's lips are closed, and above
# which they are open: the closed value is the 90 % quantile of s1's smallest gap within
# force-aligned m/b/p phones (docs/design/audio-model.md, "Lips on unseen voices").
CLOSED_GAP, OPEN_GAP = 0.0072, 0.015
CLOSE = SPEECH_COEFFS.index("mouthClose")
CLOSE_LABEL = 0.2  # mouthClose of lips closed mid-word (s1's jawOpen is below it in 99 % of such frames)

ACCENTS = ["en-us", "en", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029", "en-us-nyc"]
VARIANTS = ["m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "klatt", "klatt2", "klatt3",
            "klatt4", "croak", "whisper", "whisperf", "grandpa", "grandma", "Alex", "Andy", "Annie", "belinda",
            "benjamin", "david", "ed", "edward", "john", "linda", "max", "Mike", "paul", "quincy", "rob",
            "robert", "steph", "travis", "victor", "zac", "norbert", "shelby", "anika", "aunty", "iven", "Lee"]
WORDS = ("the a and of to in is it that was he for on are as with his they at be this from have or by one had "
         "not but what all were when we there can an your which their said if do will each about how up out them "
         "then she many some so these would other into has more her two like him see time could no make than first "
         "been its who now people my made over did down only way find use may water long little very after words "
         "called just where most know get through back much before go good new write our used me man too any day "
         "same right look think also around another came come work three word must because does part even place "
         "well such here take why things help put years different away again off went old number great tell men "
         "say small every found still between name should home big give air line set own under read last never us "
         "left end along while might next sound below saw something thought both few those always looked show large "
         "often together asked house world going want school important until form food keep children feet land side "
         "without boy once animals life enough took sometimes four head above kind began almost live page got earth "
         "need far hand high year mother light parts country father let night following picture being study second "
         "eyes soon times story boys since white days ever paper hard near sentence better best across during today "
         "others however sure means knew it's try told young miles sun ways thing whole hear example heard several "
         "change answer room sea against top turned learn point city play toward five using himself usually money "
         "seen didn't car morning i'm body upon family later turn move face door cut done group true leave color red "
         "blue green bin lay zero nine six eight seven please forget jacket maybe happy sorry really thanks hello").split()


def grid_words() -> dict[str, str]:
    cmd = dict(b="bin", l="lay", p="place", s="set")
    col = dict(b="blue", g="green", r="red", w="white")
    prep = dict(a="at", b="by", i="in", w="with")
    dig = {"z": "zero", "1": "one", "2": "two", "3": "three", "4": "four", "5": "five", "6": "six",
           "7": "seven", "8": "eight", "9": "nine"}
    adv = dict(a="again", n="now", p="please", s="soon")
    return {"cmd": cmd, "col": col, "prep": prep, "dig": dig, "adv": adv}


def read_align(path: Path) -> list[tuple[float, float, str]]:
    out = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 3:
            out.append((int(parts[0]) / 25000.0, int(parts[1]) / 25000.0, parts[2]))
    return out


def to_rate(values: np.ndarray, fps: float, n_out: int) -> np.ndarray:
    """Video-frame series (frame k at t = k/fps) -> n_out samples at RATE Hz, linear interpolation."""
    t = np.arange(n_out) / RATE
    src = np.arange(values.shape[0]) / fps
    if values.ndim == 1:
        return np.interp(t, src, values).astype(np.float32)
    return np.stack([np.interp(t, src, values[:, j]) for j in range(values.shape[1])], 1).astype(np.float32)


def load_audio16(path: Path, seconds: float | None) -> np.ndarray:
    x, sr = read_audio_file(path)
    from math import gcd
    g = gcd(sr, SR)
    y = resample_poly(x, SR // g, sr // g).astype(np.float32)
    if seconds is not None:
        n = int(round(seconds * SR))
        y = np.pad(y, (0, max(0, n - y.size)))[:n]
    return y


def build_real(sd: Path, measured: Path, closure: bool = True):
    n = int(CLIP_S * RATE)
    clips = sorted(measured.glob("*.npz"))
    audio, targ, vad, mask, names, raw, gaps = [], [], [], [], [], [], []
    sil_frames = []
    for f in tqdm(clips, desc="real s1"):
        m = np.load(f)
        align = read_align(sd / "data/grid/s1_align" / f"{f.stem}.align")
        bs = m["blendshapes"][:, SPEECH_INDEX]
        tt = np.arange(bs.shape[0]) / float(m["fps"])
        sil = np.zeros(bs.shape[0], bool)
        for a, b, w in align:
            if w == "sil":
                sil |= (tt >= a) & (tt < b)
        sil_frames.append(bs[sil & m["found"]])
        audio.append(load_audio16(sd / "data/grid/s1" / f"{f.stem}.mp4", CLIP_S))
        raw.append(to_rate(bs, float(m["fps"]), n))
        gaps.append(to_rate(m["mouth_open"], float(m["fps"]), n))
        mask.append(to_rate(m["found"].astype(np.float32), float(m["fps"]), n) > 0.999)
        t = np.arange(n) / RATE
        v = np.zeros(n, np.float32)
        for a, b, w in align:
            if w not in ("sil", "sp"):
                v[(t >= a) & (t < b)] = 1.0
        vad.append(v)
        names.append(f.stem)
    rest = np.median(np.concatenate(sil_frames), axis=0).astype(np.float32)
    targ = [np.clip(r - rest, 0.0, 1.0) for r in raw]
    if closure:
        for tg, gap, v in zip(targ, gaps, vad):
            tg[:, CLOSE] = CLOSE_LABEL * np.clip((OPEN_GAP - gap) / (OPEN_GAP - CLOSED_GAP), 0.0, 1.0) * v
    return dict(audio=np.stack(audio), target=np.stack(targ), vad=np.stack(vad), mask=np.stack(mask),
                names=np.array(names), rest=rest)


def word_phonemes(es: Espeak, word: str) -> list[tuple[float, str]]:
    """(relative duration, phoneme) of one word as espeak says it, pauses dropped."""
    _, _, segs = es.synth(word, "en-us", 170, 50)
    segs = [(b - a, p) for a, b, p in segs if not p.startswith("_")]
    tot = sum(d for d, _ in segs) or 1.0
    return [(d / tot, p) for d, p in segs]


def phone_key(p: str) -> str:
    """An espeak phoneme without stress and length marks: the label of the training's phone head."""
    q = p.rstrip(":;#")
    return q.rstrip("0123456789") or q or p


def calibrate(es: Espeak, real: dict, sd: Path) -> dict[str, np.ndarray]:
    """Phoneme -> mean real target vector, from espeak phonemes stretched over GRID word spans.

    Also writes real["phone_names"] (N, T) object array: each 10 ms step's phoneme key ("" in silence)."""
    cache: dict[str, list] = {}
    phone_names = np.full(real["target"].shape[:2], "", dtype=object)
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    for i, name in enumerate(tqdm(real["names"], desc="calibrate")):
        tg, mk = real["target"][i], real["mask"][i]
        for a, b, w in read_align(sd / "data/grid/s1_align" / f"{name}.align"):
            if w in ("sil", "sp"):
                continue
            if w not in cache:
                cache[w] = word_phonemes(es, w)
            t0 = a
            for frac, p in cache[w]:
                t1 = t0 + frac * (b - a)
                lo, hi = int(np.floor(t0 * RATE)), int(np.ceil(t1 * RATE))
                phone_names[i, int(round(t0 * RATE)):int(round(t1 * RATE))] = phone_key(p)
                sel = np.arange(lo, max(hi, lo + 1))
                sel = sel[(sel < tg.shape[0]) & mk[np.clip(sel, 0, tg.shape[0] - 1)]]
                if sel.size:
                    sums[p] = sums.get(p, 0) + tg[sel].sum(0)
                    counts[p] = counts.get(p, 0) + sel.size
                t0 = t1
    table = {p: (sums[p] / counts[p]).astype(np.float32) for p in sums}
    allv = sum(sums.values()) / sum(counts.values())
    table["*"] = allv.astype(np.float32)  # unseen phonemes: the average speaking mouth
    real["phone_names"] = phone_names
    return table


def lookup(table: dict[str, np.ndarray], p: str) -> np.ndarray:
    if p in table:
        return table[p]
    q = p.rstrip(":;#0123456789")
    for cand in (q, q[:2], q[:1]):
        if cand and cand in table:
            return table[cand]
    return table["*"]


def build_synthetic(es: Espeak, table: dict[str, np.ndarray], count: int, seed: int):
    rng = np.random.default_rng(seed)
    voices = sorted({(a, v) for a in ACCENTS for v in VARIANTS})
    rng.shuffle(voices)
    voices = voices[:100]  # ~100 voice variants
    audio, targ, vad, vid, phones = [], [], [], [], []
    for i in tqdm(range(count), desc="synthetic"):
        vi = int(rng.integers(len(voices)))
        acc, var = voices[vi]
        words = list(rng.choice(WORDS, size=int(rng.integers(3, 11))))
        if rng.random() < 0.4:
            words.insert(int(rng.integers(1, len(words))), ",")
        text = " ".join(words).replace(" ,", ",")
        try:
            wav, sr, segs = es.synth(text, f"{acc}+{var}", int(rng.integers(120, 230)), int(rng.integers(20, 85)),
                                     int(rng.integers(20, 90)))
        except ValueError:
            continue
        x = resample_poly(wav.astype(np.float32) / 32768.0, 320, 441).astype(np.float32)
        # random leading/trailing silence so onsets are not always at the same place
        pre, post = int(rng.uniform(0.05, 0.6) * SR), int(rng.uniform(0.1, 0.6) * SR)
        x = np.concatenate([np.zeros(pre, np.float32), x, np.zeros(post, np.float32)])
        n = x.size // (SR // RATE) + 1
        tg = np.zeros((n, N_SPEECH), np.float32)
        v = np.zeros(n, np.float32)
        ph = np.full(n, "", dtype=object)
        for a, b, p in segs:
            lo, hi = int(round((a + pre / SR) * RATE)), int(round((b + pre / SR) * RATE))
            if p.startswith("_"):
                continue
            tg[lo:hi] = lookup(table, p)
            v[lo:hi] = 1.0
            ph[lo:hi] = phone_key(p)
        tg = gaussian_filter1d(tg, 3.0, axis=0)  # ~30 ms coarticulation
        audio.append(x)
        targ.append(tg)
        vad.append(v)
        vid.append(vi)
        phones.append(ph)
    return audio, targ, vad, np.array(vid), voices, phones


def phone_ids(real_names: np.ndarray, synth_names: list[np.ndarray]):
    """Phoneme keys -> indices (0 = silence), over the real and synthetic labels together."""
    keys = sorted({k for a in [real_names, *synth_names] for k in np.unique(a) if k})
    index = {k: i + 1 for i, k in enumerate(keys)}
    def ids(a):
        return np.vectorize(lambda k: index.get(k, 0), otypes=[np.int16])(a)
    return np.array([""] + keys), ids(real_names), [ids(a) for a in synth_names]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--synthetic", type=int, default=1200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--measured", choices=["image", "video"], default="image",
                    help="targets measured frame by frame (image) or tracked (video); measure_targets.py --mode")
    ap.add_argument("--no-closure", dest="closure", action="store_false",
                    help="keep the landmarker's mouthClose instead of the measured lip closure")
    args = ap.parse_args()
    sd = shared_dir()
    if sd is None:
        raise SystemExit("../shared not present")
    es = Espeak()
    real = build_real(sd, BUILD / ("measure_image" if args.measured == "image" else "measure") / "s1", args.closure)
    table = calibrate(es, real, sd)
    np.savez(BUILD / "phoneme_table.npz", **{k: v for k, v in table.items()})
    audio, targ, vad, vid, voices, phones = build_synthetic(es, table, args.synthetic, args.seed)
    phone_list, real["phone"], synth_phone = phone_ids(real.pop("phone_names"), phones)
    real["phones"] = phone_list
    np.savez(BUILD / "real_s1.npz", **real)
    lens = np.array([a.size for a in audio])
    tl = np.array([t.shape[0] for t in targ])
    np.savez(BUILD / "synthetic.npz", audio=np.concatenate(audio), audio_len=lens, target=np.concatenate(targ),
             vad=np.concatenate(vad), target_len=tl, voice=vid, phone=np.concatenate(synth_phone), phones=phone_list,
             voices=np.array([f"{a}+{v}" for a, v in voices]))
    print(f"real clips {len(real['names'])}, synthetic {len(audio)} ({lens.sum() / SR / 60:.1f} min), "
          f"phonemes {len(table) - 1}, phone classes {len(phone_list)}")


if __name__ == "__main__":
    main()
