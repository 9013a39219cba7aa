"""Proof for docs/design/nerf.md: a NeRF bundle against meshwarp on its held-out GRID s1 clip(s).

1. Reconstruction (EmoHead's Table I protocol): the held-out frames' tracked face
   states drawn by the `nerf` renderer (the product path: CPU kernel, full
   frame, head crop pasted back) and by meshwarp, cut with the NeRF's head box
   and with the diffusion renderer's tighter face box (96 px, as in
   docs/design/diffusion.md); PSNR, SSIM, mouth PSNR against the real,
   stabilised frames, and the lip landmark distance (LMD, engine/nerf/evaluate.py).
2. Driven from audio: each held-out clip's own audio -> speech_states -> both
   renderers; the mouth opening re-detected on the rendered frames is correlated
   with the one re-detected on the real video (as scripts/diffusion/evaluate.py).
3. Emotions outside the training video: each emotion direction at k = 0.5 and 1
   on the neutral state, rendered by both; FER-2013 probability of the intended
   class, and the Face Landmarker's blendshapes re-detected on the frame
   (../shared's .task, for measuring only) for the coefficients each emotion moves most.

With `--diffusion DIR` (a diffusion bundle of the same person, trained on the same clips), the `diffusion`
renderer (product path, its default steps) is scored in 1 and 2 on the same frames and states.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/nerf/proof.py build/nerf/grid_s1_small [--diffusion DIR] [--out FILE]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts" / "diffusion"))
from evaluate import Redetect, corr  # noqa: E402  (scripts/diffusion/evaluate.py)

from engine.diffusion.crop import face_box, mouth_box  # noqa: E402
from engine.diffusion.data import cache_key, clip_data  # noqa: E402
from engine.diffusion.hint import hint_renderer  # noqa: E402
from engine.diffusion.metrics import mean_scores, scores  # noqa: E402
from engine.measure import shared_dir  # noqa: E402
from engine.nerf.bundle import load_nerf_bundle  # noqa: E402
from engine.renderers import create  # noqa: E402
from engine.types import FaceState  # noqa: E402

FACE_RES = 96  # the diffusion renderer's `small` crop


def reconstruction(b, renderers: dict, clips) -> dict:
    """Scores in the diffusion renderer's face box, on the stabilised real frames of the held-out clips, for
    each renderer (name -> renderer) on the same tracked states."""
    box = face_box(b.avatar.landmarks, b.avatar.size, FACE_RES)
    mouth = mouth_box(b.avatar.landmarks, box)
    cache = REPO / "build" / "diffusion" / "cache" / cache_key(b.avatar, box)
    rows = {name: [] for name in renderers}
    for v in tqdm(clips, desc="reconstruction"):
        c = clip_data(v, b.avatar, hint_renderer(b.avatar), box, cache)
        for k, st in zip(np.flatnonzero(c.found), [s for s, f in zip(c.states(), c.found) if f]):
            real = c.target[k]
            for name, r in renderers.items():
                rows[name].append(scores(box.cut(r.render(st)), real, mouth))
    return {k: mean_scores(v) for k, v in rows.items()} | {"frames": len(rows["nerf"]), "crop": box.to_dict()}


def audio_driven(renderers: dict, clips) -> dict:
    from engine.audio import read_audio_file
    from engine.measure import read_video_rgb
    from engine.speech_render import speech_states

    det = Redetect()
    out = {name: [] for name in renderers} | {"clips": []}
    for v in tqdm(clips, desc="audio-driven"):
        samples, rate = read_audio_file(v)
        states = list(speech_states(samples[: 3 * rate], rate))
        frames, _ = read_video_rgb(v)
        n = min(len(states), len(frames))
        real = [det.mouth(f) for f in frames[:n]]
        for name, r in renderers.items():
            out[name].append(corr([det.mouth(r.render(s)) for s in states[:n]], real))
        out["clips"].append(v.stem)
    out["mean"] = {k: float(np.nanmean(out[k])) for k in renderers}
    return out


def emotions(nerf, mw, ks=(0.5, 1.0)) -> dict:
    from engine.emotion.directions import EMOTIONS, load_directions
    from engine.emotion.fer_eval import TO_FER, FerClassifier
    from engine.emotion.mixing import apply_emotion
    from engine.measure import Landmarker
    from engine.types import BLENDSHAPE_NAMES

    clf = FerClassifier()
    space = load_directions()
    out = {}
    with Landmarker() as lm:
        rest = {}
        for name, r in (("nerf", nerf), ("meshwarp", mw)):
            m = lm.detect(r.render(FaceState.neutral()))
            rest[name] = None if m is None else m.blendshapes
        for e in EMOTIONS:
            if e == "neutral":
                continue
            top = [int(i) for i in np.argsort(-np.abs(space.direction(e)))[:3]]  # what the emotion moves most
            out[e] = {"fer_class": TO_FER.get(e), "coefficients": [BLENDSHAPE_NAMES[i] for i in top]}
            for name, r in (("nerf", nerf), ("meshwarp", mw)):
                for k in ks:
                    st = apply_emotion(FaceState.neutral(), {e: 1.0}, k, space=space)
                    frame = r.render(st)
                    p = clf.classify(frame)
                    m = lm.detect(frame)
                    row = {"fer": None if p is None or e not in TO_FER else round(float(p[TO_FER[e]]), 3),
                           "fer_top": None if p is None else max(p, key=p.get),
                           "asked": [round(float(st.coeffs[i]), 3) for i in top],
                           "measured_change": None if m is None or rest[name] is None else
                           [round(float(m.blendshapes[i] - rest[name][i]), 3) for i in top]}
                    out[e][f"{name}@{k}"] = row
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle")
    ap.add_argument("--clips", nargs="*", default=None, help="GRID s1 clip names (default: the bundle's held-out)")
    ap.add_argument("--skip", nargs="*", default=[], choices=("reconstruction", "audio", "emotions"))
    ap.add_argument("--out", default=None, help="JSON output (default BUNDLE/proof.json)")
    ap.add_argument("--diffusion", default=None, help="a diffusion bundle of the same person, scored on the same "
                    "frames and states (reconstruction and audio-driven)")
    a = ap.parse_args(argv)
    sd = shared_dir()
    if sd is None:
        raise SystemExit("../shared not present")
    b = load_nerf_bundle(a.bundle)
    names = a.clips or [n.split("#")[0] for n in b.meta["training"]["heldout_clips"]]
    clips = [sd / "data" / "grid" / "s1" / f"{n}.mp4" for n in names]
    nerf = create("nerf", None, bundle=a.bundle, device="cpu")
    mw = create("meshwarp", b.avatar)
    renderers = {"nerf": nerf, "meshwarp": mw}
    if a.diffusion:
        renderers["diffusion"] = create("diffusion", None, bundle=a.diffusion, device="cpu")
    if any(r.name != name for name, r in renderers.items()):  # a renderer that fell back would score meshwarp
        raise SystemExit(f"a renderer fell back: {[(n, r.name) for n, r in renderers.items()]}")
    t0 = time.perf_counter()
    res = {"bundle": str(a.bundle), "clips": names, "report": json.loads((Path(a.bundle) / "report.json").read_text())
           .get("heldout")}
    if "reconstruction" not in a.skip:
        res["reconstruction_face_box"] = reconstruction(b, renderers, clips)
    if "audio" not in a.skip:
        res["audio_driven"] = audio_driven(renderers, clips)
    if "emotions" not in a.skip:
        res["emotions"] = emotions(nerf, mw)
    res["seconds"] = round(time.perf_counter() - t0)
    out = Path(a.out) if a.out else Path(a.bundle) / "proof.json"
    out.write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
