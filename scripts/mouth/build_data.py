"""Training pairs for the neural mouth, from real faces of many people in ../shared.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/mouth/build_data.py [--out out/mouth/pairs.npz] [--seed 0]

A pair is (source photo A, target frame B) of one person. A is aligned to the
avatar frame and warped onto B's landmarks exactly as the meshwarp renderer
warps an avatar (same mesh, same far-first triangle order, same painted mouth
interior); the generator learns to turn that warp into the real B. Sources:

* London set: each person's neutral and smiling photos, in both directions and
  onto themselves (the smile -> neutral change the renderer must draw);
* talking videos, GRID speakers, a Pexels clip and a CREMA-D clip: frames paired
  within one recording.

Held out by identity (split "val", never trained on): London people whose number
is a multiple of 5, the talking videos of Hill and Swalwell, GRID lrwp9a and swiz3n.
Saved: X (warped crops), M (lip masks of B), Y (real B crops), all uint8, with
the identity and split of each pair.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from engine.avatar.create import _alignment  # noqa: E402
from engine.avatar.detect import detect_face  # noqa: E402
from engine.avatar.image_io import read_photo  # noqa: E402
from engine.avatar.mesh import GROUP_OUTER, build_mesh  # noqa: E402
from engine.face_geometry import NUM_LANDMARKS, STABLE_LANDMARKS, face_frame  # noqa: E402
from engine.measure import read_video_rgb, shared_dir  # noqa: E402
from engine.neural_mouth.crop import RES, crop_matrix, cut, lip_masks, mouth_offset, to_crop  # noqa: E402
from engine.renderers.mouth import MouthPainter  # noqa: E402
from kernels.warp import warp_triangles  # noqa: E402

SIZE = 512  # the avatar frame, as `emolive avatar create` makes it
VAL_VIDEOS = ("wda_hill", "wda_swalwell", "lrwp9a", "swiz3n")


def video_landmarks(frames: list[np.ndarray]) -> list[np.ndarray | None]:
    import mediapipe as mp

    out = []
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=False, max_num_faces=1, refine_landmarks=True,
                                         min_detection_confidence=0.5, min_tracking_confidence=0.5) as fm:
        for f in frames:
            h, w = f.shape[:2]
            res = fm.process(np.ascontiguousarray(f))
            if not res.multi_face_landmarks:
                out.append(None)
                continue
            out.append(np.array([[p.x * w, p.y * h, p.z * w] for p in res.multi_face_landmarks[0].landmark]))
    return out


class Source:
    """Photo A in the avatar frame with its warp mesh: warps itself onto any landmarks of the same person."""

    def __init__(self, rgb: np.ndarray, lm: np.ndarray):
        m = _alignment(lm, SIZE)
        self.image = cv2.warpAffine(rgb, m, (SIZE, SIZE), flags=cv2.INTER_AREA if m[0, 0] < 1 else cv2.INTER_CUBIC,
                                    borderMode=cv2.BORDER_REPLICATE)
        self.lm = _apply(m, lm)
        mesh = build_mesh(self.lm, SIZE, SIZE)
        self.v0 = mesh.vertices.astype(np.float64)
        self.tris = np.ascontiguousarray(mesh.triangles, np.int32)
        self.outer = np.flatnonzero(mesh.groups == GROUP_OUTER)
        self.inner = np.flatnonzero(mesh.groups != GROUP_OUTER)
        self.ring = np.flatnonzero(mesh.parent >= 0)
        self.parent = mesh.parent[self.ring]
        self.follow = mesh.follow[self.ring].astype(np.float64)[:, None]
        self.mouth = MouthPainter(self.v0, face_frame(self.lm).scale)
        self.offset = mouth_offset(self.lm)

    def align(self, rgb: np.ndarray, lm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Frame B and its landmarks moved onto this photo's eyes and nose (a similarity)."""
        m, _ = cv2.estimateAffinePartial2D(lm[list(STABLE_LANDMARKS), :2].astype(np.float32),
                                           self.lm[list(STABLE_LANDMARKS), :2].astype(np.float32), method=cv2.LMEDS)
        img = cv2.warpAffine(rgb, m, (SIZE, SIZE), flags=cv2.INTER_AREA if m[0, 0] < 1 else cv2.INTER_CUBIC,
                             borderMode=cv2.BORDER_REPLICATE)
        return img, _apply(m, lm)

    def warp_to(self, lm_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The meshwarp frame of A with its landmarks moved to `lm_b` (the renderer's drawing), and all vertices."""
        p = self.v0.copy()
        d = lm_b - self.lm
        p[:NUM_LANDMARKS] = lm_b
        p[self.ring] += self.follow * d[self.parent]
        dst = np.ascontiguousarray(p[:, :2], np.float32)
        depth = p[self.tris[self.inner], 2].sum(axis=1)
        draw = np.concatenate([self.outer, self.inner[np.argsort(-depth, kind="stable")]]).astype(np.int32)
        out = self.image.copy()
        warp_triangles(self.image, np.ascontiguousarray(self.v0[:, :2], np.float32), dst, self.tris, out, draw)
        self.mouth.paint(out, dst)
        return out, dst


def _apply(m: np.ndarray, lm: np.ndarray) -> np.ndarray:
    out = np.asarray(lm, np.float64).copy()
    out[:, :2] = lm[:, :2] @ m[:, :2].T + m[:, 2]
    out[:, 2] = lm[:, 2] * np.hypot(m[0, 0], m[1, 0])
    return out


def jittered(m: np.ndarray, rng: np.random.Generator, amount: float) -> np.ndarray:
    """The crop moved by a small random similarity about its centre (scale, rotation, shift)."""
    if amount <= 0:
        return m
    c = RES / 2.0 - 0.5
    s = 1.0 + rng.uniform(-0.06, 0.06) * amount
    a = np.radians(rng.uniform(-4, 4) * amount)
    t = rng.uniform(-0.04, 0.04, 2) * RES * amount
    j = np.array([[s * np.cos(a), -s * np.sin(a), 0], [s * np.sin(a), s * np.cos(a), 0]])
    j[:, 2] = c - j[:, :2] @ np.array([c, c]) + t
    return np.c_[j[:, :2] @ m[:, :2], j[:, :2] @ m[:, 2] + j[:, 2]]


def make_pair(src: Source, rgb_b: np.ndarray, lm_b: np.ndarray, rng, jitter: float):
    img_b, lm_b = src.align(rgb_b, lm_b)
    warped, dst = src.warp_to(lm_b)
    m = jittered(crop_matrix(dst, src.offset), rng, jitter)
    return cut(warped, m), (lip_masks(to_crop(m, dst)) * 255).astype(np.uint8), cut(img_b, m)


def london_pairs(sd: Path, rng, variants: int):
    for p in sorted((sd / "data/expressions/london/neutral").glob("*_03.jpg")):
        person = p.name[:3]
        s = sd / "data/expressions/london/smiling" / f"{person}_08.jpg"
        if not s.exists():
            continue
        faces = []
        for q in (p, s):
            rgb = read_photo(q)
            try:
                faces.append((rgb, detect_face(rgb).landmarks.astype(np.float64)))
            except Exception as e:  # noqa: BLE001 - a photo the detector rejects is left out, and said
                print(f"  skip {q.name}: {e}", flush=True)
        if len(faces) < 2:
            continue
        split = "val" if int(person) % 5 == 0 else "train"
        for a in faces:
            src = Source(*a)
            for b in faces:
                for v in range(variants if split == "train" else 1):
                    yield f"london_{person}", split, make_pair(src, *b, rng, 1.0 if v else 0.0)


def video_pairs(name: str, path: Path, rng, n_src: int, per_src: int, trim_s: float | None = None):
    frames, _ = read_video_rgb(path)
    lms = video_landmarks(frames)
    ok = [i for i, lm in enumerate(lms) if lm is not None]
    if len(ok) < 2:
        return
    split = "val" if any(v in name for v in VAL_VIDEOS) else "train"
    for i in rng.choice(ok, size=min(n_src, len(ok)), replace=False):
        src = Source(frames[i], lms[i])
        for j in rng.choice(ok, size=min(per_src, len(ok)), replace=False):
            yield name, split, make_pair(src, frames[j], lms[j], rng, 0.0 if split == "val" else 1.0)


def all_pairs(sd: Path, rng, grid_clips: int):
    yield from london_pairs(sd, rng, variants=4)
    talk = sorted((sd / "data/talking").glob("*.mp4"))
    for p in talk:
        yield from video_pairs(p.stem, p, rng, n_src=8, per_src=45)
    for p in sorted((sd / "data/grid/multi_speaker").glob("*.mp4")):
        if p.stem != "bbaf2n":  # the same recording as s1's
            yield from video_pairs("grid_" + p.stem, p, rng, n_src=4, per_src=40)
    s1 = sorted((sd / "data/grid/s1").glob("*.mp4"))
    for p in s1[:: max(1, len(s1) // grid_clips)][:grid_clips]:
        yield from video_pairs("grid_s1", p, rng, n_src=1, per_src=30)
    yield from video_pairs("pexels_langer", sd / "data/expressions/pexels/WolfgangLanger_Pexels.mp4", rng, 8, 40)
    yield from video_pairs("cremad_1009", sd / "data/expressions/cremad/1009_ITH_HAP_XX.mp4", rng, 4, 30)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("out/mouth/pairs.npz"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--grid-clips", type=int, default=60)
    args = ap.parse_args(argv)
    sd = shared_dir()
    if sd is None:
        print("../shared not found: it holds the training faces", file=sys.stderr)
        return 2
    rng = np.random.default_rng(args.seed)
    xs, ms, ys, ids, splits = [], [], [], [], []
    t0 = time.time()
    for ident, split, (x, m, y) in all_pairs(sd, rng, args.grid_clips):
        xs.append(x), ms.append(m), ys.append(y), ids.append(ident), splits.append(split)
        if len(xs) % 500 == 0:
            print(f"{len(xs)} pairs, {time.time() - t0:.0f} s, last {ident}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(args.out, X=np.stack(xs), M=np.stack(ms), Y=np.stack(ys), identity=np.array(ids), split=np.array(splits))
    n_val = sum(s == "val" for s in splits)
    print(f"wrote {args.out}: {len(xs)} pairs ({n_val} held out), {len(set(ids))} identities, {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
