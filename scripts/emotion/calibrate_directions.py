"""Calibrate the eight emotion directions on real faces and write the committed asset.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/emotion/calibrate_directions.py [--out engine/assets/emotion_directions.json]

Measurements (MediaPipe Face Landmarker blendshapes, see engine/measure.py):
* London set: 102 neutral/smiling pairs of the same person -> happy (paired).
* CREMA-D actor 1001: mean over all frames of each emotion clip minus the mean
  over his neutral clips (same sentence, so speech roughly cancels): EMOdiffhead's
  d_y = e_y - e_n for angry, disgusted, fear, happy, sad. Frames are upscaled 3x
  because the faces are ~60 px wide.
* Pexels stills angry/surprised minus the London neutral population mean
  (unpaired, different people: weaker evidence, used for surprised only).
* Pexels video (sad -> laughing, no neutral): frames in the top quartile of smile
  minus the bottom quartile, a check of the (happy - sad) contrast.

Combination rule per emotion (measured mean m over its paired sources, FACS
prototype p with support S, engine/emotion/facs.py):
1. coefficients outside the emotion layer (blinks, gaze, jaw sideways, tongue,
   jawOpen / mouthClose which speech owns) are taken from p only;
2. keep m_i on S; off S keep only a positive m_i >= 0.10 (0.20 when all the
   evidence is unpaired) on a coefficient that no other emotion's prototype uses:
   calibration may reshape an emotion but not import another one's defining AU
   (actor 1001 smiles through his disgust and fear takes, for instance);
3. on S, each AU keeps at least half its prototype value (the measure can miss
   an AU on small or talking faces);
4. rescale so the apex (largest coefficient) is APEX = 1.0 (FACS E, maximum):
   the data give the shape; k = 1 is a full, posed-strength expression (as in
   FER-2013 or MEAD's level 3), k ~ 0.55 the prototype's C/D letters. The
   coefficients outside the emotion layer (rule 1) are the prototype's, scaled
   by APEX / its apex (e.g. surprise's jawOpen 0.55 / 0.8). Was: the apex of the
   prototype (0.55-0.8); the rendered emotions were too faint to read
   (docs/design/emotion.md).
5. anger's AU10: RENDERED_AU10 below, added after the rescale.
6. posed levels: the action units of each emotion's prototypes set to the levels in
   scripts/emotion/posed_levels.json, written by scripts/emotion/tune_directions.py (FER-2013 in the loop
   on a development split; both sides of a pair alike). `--posed-only` applies this step alone to the
   committed asset (steps 1-5 re-measure everything). The file's "reader" table lists levels the
   reference-photo reader (engine/emotion/reference.py) keeps where the render levels moved on:
   it fits photos against the directions it was validated with.
Contempt has no data here and is the prototype alone.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from engine.emotion import facs  # noqa: E402
from engine.emotion.directions import ASSET, EMOTIONS, EmotionSpace  # noqa: E402
from engine.measure import Landmarker, read_video_rgb, shared_dir  # noqa: E402
from engine.types import BLENDSHAPE_NAMES, COEFF_INDEX, NUM_COEFFS  # noqa: E402

SPEECH_OWNED = ("jawOpen", "mouthClose")
NOT_EMOTION = ("eyeBlinkLeft", "eyeBlinkRight", "eyeLookDownLeft", "eyeLookDownRight", "eyeLookInLeft",
               "eyeLookInRight", "eyeLookOutLeft", "eyeLookOutRight", "eyeLookUpLeft", "eyeLookUpRight",
               "jawLeft", "jawRight", "jawForward", "mouthLeft", "mouthRight", "tongueOut") + SPEECH_OWNED
APEX = 1.0
# Contempt is unilateral and slight (R12A+R14A in the source; the prototype already uses C):
# at full apex the one-sided pull distorts the lower face, and no classifier here can check it.
KEEP_PROTOTYPE_APEX = ("contempt",)
# Step 5: AU10 for anger, drawn through noseSneer. EMFACS predicts anger also as 4+5+7+10+22+23+25 and
# 4+5+7+10+23+25; actor 1001's angry takes and the Pexels angry still both raise the upper lip (Landmarker
# mouthUpperUp: in the calibrated direction, and 0.31 on the still, whose nose is also wrinkled). The rig's
# mouthUpperUp is a speech column that lifts both lips, so nothing parts them; the only emotion-only column
# with an upper-lip-only raise is noseSneer (AU9+10 in engine/renderers/meshwarp.py), which also pushes the
# lower lids up by SNEER_LID of its value: eyeSquint is lowered by as much, keeping the calibrated eye
# aperture. Level D (0.8) was picked on a development split with the FER-2013 classifier in the loop
# (0.4 / 0.6 / 0.8 / 1.0 tried; docs/design/emotion.md, Decisions), checked on the held-out neutral set.
RENDERED_AU10 = {"angry": 0.8}
POSED = Path(__file__).resolve().parent / "posed_levels.json"
CREMAD = {"angry": "ANG", "disgusted": "DIS", "fear": "FEA", "happy": "HAP", "sad": "SAD"}


def _rgb(path: Path) -> np.ndarray:
    import cv2

    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def measure_london(lm: Landmarker, root: Path) -> tuple[np.ndarray, np.ndarray]:
    """(paired smiling - neutral deltas (N, 52), neutral blendshapes (N, 52))."""
    deltas, neutrals = [], []
    for n in sorted((root / "neutral").glob("*_03.jpg")):
        s = root / "smiling" / n.name.replace("_03", "_08")
        a, b = lm.detect(_rgb(n)), lm.detect(_rgb(s)) if s.exists() else None
        if a is None or b is None:
            continue
        deltas.append(b.blendshapes - a.blendshapes)
        neutrals.append(a.blendshapes)
    return np.array(deltas), np.array(neutrals)


def measure_clip(path: Path, upscale: int = 3) -> np.ndarray:
    """Blendshapes of every frame of a clip where a face is found, (T, 52)."""
    import cv2

    frames, fps = read_video_rgb(path)
    out = []
    with Landmarker(mode="video") as lm:
        for i, f in enumerate(frames):
            if upscale > 1:
                f = cv2.resize(f, None, fx=upscale, fy=upscale, interpolation=cv2.INTER_CUBIC)
            m = lm.detect(f, timestamp_ms=int(round(i * 1000 / fps)))
            if m is not None:
                out.append(m.blendshapes)
    return np.array(out)


def combine(emotion: str, measured: np.ndarray | None, paired: bool) -> np.ndarray:
    p = facs.prototype(emotion)
    if measured is None:
        return p
    S = facs.support(emotion)
    m = measured.copy()
    thr = 0.10 if paired else 0.20
    others = np.zeros_like(S)
    for e in facs.PROTOTYPES:
        if e != emotion:
            others |= facs.support(e)
    keep = S | ((m >= thr) & ~others)
    d = np.where(keep, m, 0.0)
    d = np.where(S, np.maximum(d, 0.5 * p), d)
    fixed = np.zeros(NUM_COEFFS, bool)
    fixed[[COEFF_INDEX[n] for n in NOT_EMOTION]] = True
    apex = np.max(np.abs(np.where(fixed, 0.0, d)))
    target = p.max() if emotion in KEEP_PROTOTYPE_APEX else APEX
    d = d * (target / apex) if apex > 1e-6 else d
    return np.where(fixed, p * (target / max(p.max(), 1e-6)), d)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))


def top(v: np.ndarray, n: int = 6) -> str:
    idx = np.argsort(-np.abs(v))[:n]
    return ", ".join(f"{BLENDSHAPE_NAMES[i]} {v[i]:+.2f}" for i in idx if abs(v[i]) >= 0.01)


def set_levels(coeffs: np.ndarray, table: dict) -> np.ndarray:
    """Each listed action unit set to its level (a "...Left" name stands for the pair)."""
    out = coeffs.copy()
    for e, levels in table.items():
        i = EMOTIONS.index(e)
        for name, v in levels.items():
            for n in (name, name[:-4] + "Right") if name.endswith("Left") else (name,):
                out[i, COEFF_INDEX[n]] = float(v)
    return out


def apply_posed(space: EmotionSpace, table: dict) -> EmotionSpace:
    """Step 6: the posed render levels, and the levels the reference-photo reader keeps ("reader")."""
    coeffs = set_levels(space.coeffs, table["levels"])
    sources = dict(space.sources)
    for e in table["levels"]:
        sources[e] = sources[e].split(" + posed levels")[0] + " + posed levels (tuned on a development split)"
    read = set_levels(coeffs, table.get("reader", {}))
    return EmotionSpace(coeffs=coeffs, head=space.head, sources=sources,
                        read_coeffs=None if np.array_equal(read, coeffs) else read)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(ASSET))
    ap.add_argument("--report", default=None, help="also write the measurements as JSON here")
    ap.add_argument("--posed-only", action="store_true", help="apply step 6 to the committed asset and stop")
    args = ap.parse_args()
    if args.posed_only:
        space = apply_posed(EmotionSpace.from_json(json.loads(ASSET.read_text())), json.loads(POSED.read_text()))
        Path(args.out).write_text(json.dumps(space.to_json(), indent=1) + "\n")
        print(f"wrote {args.out}")
        return 0
    sd = shared_dir()
    if sd is None:
        print("../shared not present", file=sys.stderr)
        return 2
    ex = sd / "data" / "expressions"
    with Landmarker(mode="image") as lm:
        london_d, london_n = measure_london(lm, ex / "london")
        still = {k: lm.detect(_rgb(ex / "pexels" / f)) for k, f in
                 (("angry", "angry.jpg"), ("surprised", "surprised.jpeg"), ("neutral", "neutral.jpeg"))}
    print(f"London: {len(london_d)} pairs measured")
    crem = {code: measure_clip(ex / "cremad" / f"1001_DFA_{code}_XX.flv") for code in list(CREMAD.values()) + ["NEU"]}
    crem_neu = np.concatenate([crem["NEU"], measure_clip(ex / "cremad" / "1001_IWL_NEU_XX.mp4")])
    e_n = crem_neu.mean(0)
    for code, v in crem.items():
        print(f"CREMA-D {code}: {len(v)} frames with a face")
    pex = measure_clip(ex / "pexels" / "WolfgangLanger_Pexels.mp4", upscale=1)
    smile = pex[:, [COEFF_INDEX["mouthSmileLeft"], COEFF_INDEX["mouthSmileRight"]]].mean(1)
    q1, q3 = np.quantile(smile, [0.25, 0.75])
    pex_contrast = pex[smile >= q3].mean(0) - pex[smile <= q1].mean(0)
    pop_neutral = london_n.mean(0)

    meas: dict[str, dict[str, np.ndarray]] = {e: {} for e in EMOTIONS}
    meas["happy"]["london"] = london_d.mean(0)
    for e, code in CREMAD.items():
        meas[e]["cremad"] = crem[code].mean(0) - e_n
    unpaired = {e: still[e].blendshapes - pop_neutral for e in ("angry", "surprised") if still[e] is not None}

    coeffs = np.zeros((len(EMOTIONS), NUM_COEFFS))
    head = np.zeros((len(EMOTIONS), 3))
    sources: dict[str, str] = {}
    report: dict[str, dict] = {}
    for i, e in enumerate(EMOTIONS):
        head[i] = facs.HEAD_PRIORS[e]
        if e == "neutral":
            sources[e] = "zero by definition"
            continue
        aus = "+".join(a for a, _ in facs.PROTOTYPES[e])
        paired = [v for v in meas[e].values()]
        if paired:
            # Unpaired stills count as one more source when paired data exist too.
            m = np.mean(paired + ([unpaired[e]] if e in unpaired else []), 0)
            coeffs[i] = combine(e, m, paired=True)
            src = f"FACS AU{aus} calibrated on " + " + ".join(
                {"london": f"London {len(london_d)} pairs", "cremad": "CREMA-D 1001 vs neutral"}[k] for k in meas[e])
            if e in unpaired:
                src += " + Pexels still (unpaired)"
        elif e in unpaired:
            m = unpaired[e]
            coeffs[i] = combine(e, m, paired=False)
            src = f"FACS AU{aus} calibrated on Pexels still minus London neutral mean (unpaired)"
        else:
            m = None
            coeffs[i] = combine(e, facs.prototype(e), paired=True)
            src = f"FACS AU{aus} prototype (no data in ../shared)"
        sources[e] = src
        report[e] = {"source": src, "cos_final_vs_prototype": cosine(coeffs[i], facs.prototype(e))}
        for k, v in meas[e].items():
            report[e][f"measured_{k}"] = top(v)
            report[e][f"cos_{k}_vs_prototype"] = cosine(v, facs.prototype(e))
        if e in unpaired:
            report[e]["measured_unpaired_still"] = top(unpaired[e])
            report[e]["cos_unpaired_vs_prototype"] = cosine(unpaired[e], facs.prototype(e))
        report[e]["final"] = top(coeffs[i], 8)
    hs = coeffs[EMOTIONS.index("happy")] - coeffs[EMOTIONS.index("sad")]
    report["check_pexels_happy_minus_sad"] = {
        "measured": top(pex_contrast), "frames": int(len(pex)), "cos_vs_final_happy_minus_sad": cosine(pex_contrast, hs)}
    if "cremad" in meas["happy"]:
        report["check_london_vs_cremad_happy_cos"] = cosine(meas["happy"]["london"], meas["happy"]["cremad"])

    from engine.renderers.meshwarp import SNEER_LID

    for e, v in RENDERED_AU10.items():
        i = EMOTIONS.index(e)
        for side in ("Left", "Right"):
            coeffs[i, COEFF_INDEX["noseSneer" + side]] = max(coeffs[i, COEFF_INDEX["noseSneer" + side]], v)
            sq = COEFF_INDEX["eyeSquint" + side]
            coeffs[i, sq] = max(coeffs[i, sq] - SNEER_LID * v, 0.0)
        sources[e] += f" + AU10 (EMFACS variant) drawn through noseSneer {v}"
        report[e]["final"] = top(coeffs[i], 8)
    space = EmotionSpace(coeffs=coeffs, head=head, sources=sources)
    if POSED.exists():
        space = apply_posed(space, json.loads(POSED.read_text()))
    Path(args.out).write_text(json.dumps(space.to_json(), indent=1) + "\n")
    print(json.dumps(report, indent=1))
    if args.report:
        Path(args.report).write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
