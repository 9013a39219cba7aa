"""Proof for docs/design/diffusion.md: a diffusion bundle against meshwarp on held-out GRID s1 clips.

1. Reconstruction: each held-out clip's tracked face states are rendered by the
   `diffusion` renderer (the product path: ONNX Runtime, full frame, crop pasted
   back) and by meshwarp; PSNR, SSIM and mouth PSNR against the real frames in
   the model's face crop.
2. Audio-driven: each clip's own audio -> engine.speech_render.speech_states ->
   both renderers; the mouth opening re-detected on the rendered frames (wheel
   face mesh, static mode) is correlated with the one re-detected on the real video.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/diffusion/evaluate.py build/diffusion/s1_small
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from engine.diffusion.bundle import load_diffusion_bundle  # noqa: E402
from engine.diffusion.data import cache_key, clip_data  # noqa: E402
from engine.diffusion.metrics import mean_scores, scores  # noqa: E402
from engine.diffusion.runtime import OrtRunner  # noqa: E402
from engine.face_geometry import mouth_opening  # noqa: E402
from engine.measure import read_video_rgb, shared_dir  # noqa: E402
from engine.renderers.diffusion import DiffusionRenderer  # noqa: E402
from engine.renderers.meshwarp import MeshWarpRenderer  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


class Redetect:
    def __init__(self):
        import mediapipe as mp

        self._fm = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=True)

    def mouth(self, rgb: np.ndarray) -> float:
        res = self._fm.process(np.ascontiguousarray(rgb))
        if not res.multi_face_landmarks:
            return np.nan
        h, w = rgb.shape[:2]
        return mouth_opening(np.array([[p.x * w, p.y * h, p.z * w] for p in res.multi_face_landmarks[0].landmark]))


def corr(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 10 or a[ok].std() == 0 or b[ok].std() == 0:
        return float("nan")
    return float(np.corrcoef(a[ok], b[ok])[0, 1])


def reconstruction(bundle, renderer, product_mw, clips, steps_list):
    box, mouth = bundle.box, bundle.mouth
    cache = REPO / "build" / "diffusion" / "cache" / cache_key(bundle.avatar, box)
    rows = {"meshwarp": [], "meshwarp_plain": [], **{f"diffusion_{s}": [] for s in steps_list},
            **{f"diffusion_{s}_crop": [] for s in steps_list}}
    for v in tqdm(clips, desc="reconstruction"):
        c = clip_data(v, bundle.avatar, renderer._mw, box, cache)
        for k, st in zip(np.flatnonzero(c.found), [s for s, f in zip(c.states(), c.found) if f]):
            real = c.target[k]
            rows["meshwarp"].append(scores(box.cut(product_mw.render(st)), real, mouth))
            frame = renderer._mw.render(st)
            rows["meshwarp_plain"].append(scores(box.cut(frame), real, mouth))
            for s in steps_list:
                renderer.steps = s
                crop = renderer.crop(st, frame)
                rows[f"diffusion_{s}_crop"].append(scores(crop, real, mouth))
                rows[f"diffusion_{s}"].append(scores(box.cut(box.paste(frame, crop)), real, mouth))
    return {k: mean_scores(v) for k, v in rows.items()} | {"frames": len(rows["meshwarp"])}


def audio_driven(renderer, product_mw, clips, steps):
    from engine.audio import read_audio_file
    from engine.speech_render import speech_states

    det = Redetect()
    renderer.steps = steps
    out = {"diffusion": [], "meshwarp": [], "clips": []}
    for v in tqdm(clips, desc="audio-driven"):
        samples, rate = read_audio_file(v)
        samples = samples[: 3 * rate]
        states = list(speech_states(samples, rate))
        frames, _ = read_video_rgb(v)
        n = min(len(states), len(frames))
        real = [det.mouth(f) for f in frames[:n]]
        diff = [det.mouth(renderer.render(s)) for s in states[:n]]
        mw = [det.mouth(product_mw.render(s)) for s in states[:n]]
        out["diffusion"].append(corr(diff, real))
        out["meshwarp"].append(corr(mw, real))
        out["clips"].append(v.stem)
    out["mean"] = {k: float(np.nanmean(out[k])) for k in ("diffusion", "meshwarp")}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle")
    ap.add_argument("--steps", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--clips", nargs="*", default=None, help="GRID s1 clip names (default: the bundle's held-out)")
    ap.add_argument("--audio-clips", type=int, default=8, help="how many clips to drive from audio (0: skip)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None, help="JSON output (default BUNDLE/proof.json)")
    a = ap.parse_args(argv)
    sd = shared_dir()
    if sd is None:
        raise SystemExit("../shared not present")
    b = load_diffusion_bundle(a.bundle)
    names = a.clips or b.meta["training"]["heldout_clips"]
    clips = [sd / "data" / "grid" / "s1" / f"{n}.mp4" for n in names]
    renderer = DiffusionRenderer(b, OrtRunner(b.onnx_path, device="cpu", threads=a.threads))
    product_mw = MeshWarpRenderer(b.avatar)
    t0 = time.perf_counter()
    res = {"bundle": str(a.bundle), "clips": names, "crop": b.box.to_dict(), "mouth_box": list(b.mouth)}
    res["reconstruction"] = reconstruction(b, renderer, product_mw, clips, a.steps)
    if a.audio_clips:
        res["audio_driven"] = audio_driven(renderer, product_mw, clips[: a.audio_clips], b.steps)
    res["seconds"] = round(time.perf_counter() - t0)
    out = Path(a.out) if a.out else Path(a.bundle) / "proof.json"
    out.write_text(json.dumps(res, indent=2) + "\n")
    r = res["reconstruction"]
    print(f"held-out frames: {r['frames']} ({len(names)} clips), crop {b.box.res}x{b.box.res}")
    print("| renderer | PSNR dB | SSIM | mouth PSNR dB |\n|---|---|---|---|")
    for k, v in r.items():
        if isinstance(v, dict):
            print(f"| {k} | {v['psnr']:.2f} | {v['ssim']:.4f} | {v['mouth_psnr']:.2f} |")
    if "audio_driven" in res:
        m = res["audio_driven"]["mean"]
        print(f"audio-driven mouth-opening correlation with the real video: diffusion {m['diffusion']:.3f}, "
              f"meshwarp {m['meshwarp']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
