"""Do rendered emotions show their FACS action units? Re-detect the face on rendered frames and measure.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/emotion/measure_facs.py [--k 1.0] [--set current|neutral]

Each emotion at intensity k is rendered by meshwarp on the portraits of
scripts/emotion/eval_fer.py and compared with the same portrait rendered at
neutral. The face mesh (mediapipe wheel, independent of the renderer: it only
sees pixels) is re-detected on both frames, put in the face frame (unit = outer
inter-ocular distance, y down), and these geometric signs of the action units
are measured (change from neutral, in 1/1000 inter-ocular units):

  inner_brow_up   AU1   height of the inner brow heads above the eye line
  outer_brow_up   AU2   height of the brow tails
  brow_gap        AU4-  distance between the two brow heads (AU4 draws them together: negative)
  eye_open        AU5/7 vertical lid opening (mean of both eyes)
  mouth_width     AU20  distance between the lip corners (AU20 stretches: positive; AU18/O-mouth: negative)
  corner_drop     AU15  lip corners below the lips' mid-line (AU15 depresses: positive; AU12: negative)
  lip_open        AU26  inner-lip opening
  upper_lip_up    AU10  upper lip raised (towards the eye line)
  chin_up         AU17  lower lip pushed up by the chin boss (its lower edge rising: positive)
  lip_red         AU23/24 height of the red of both lips, outer minus inner contour (pressed, tightened lips
                        thin: negative)

Prints one Markdown table (mean over portraits) and what FACS expects for each emotion.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("GLOG_minloglevel", "2")

from engine.emotion.mixing import apply_emotion  # noqa: E402
from engine.face_geometry import face_frame, mouth_opening  # noqa: E402
from engine.types import FaceState  # noqa: E402

MEASURES = ("inner_brow_up", "outer_brow_up", "brow_gap", "eye_open", "mouth_width", "corner_drop", "lip_open",
            "upper_lip_up", "chin_up", "lip_red")
# Expected signs (FACS): + rises, - falls, 0 not part of the prototype.
EXPECT = {
    # Anger with EMFACS's AU10 (4+5+7+10+23+25): the upper lip rises and the lips part.
    "angry": {"brow_gap": -1, "inner_brow_up": -1, "upper_lip_up": +1, "lip_red": -1},
    "disgusted": {"upper_lip_up": +1, "corner_drop": +1},
    "fear": {"inner_brow_up": +1, "outer_brow_up": +1, "brow_gap": -1, "eye_open": +1, "mouth_width": +1},
    "happy": {"mouth_width": +1, "corner_drop": -1},
    "sad": {"inner_brow_up": +1, "brow_gap": -1, "corner_drop": +1, "chin_up": +1},
    "surprised": {"inner_brow_up": +1, "outer_brow_up": +1, "eye_open": +1, "lip_open": +1, "mouth_width": -1},
}
EMOTIONS = tuple(EXPECT)


def measures(pts: np.ndarray) -> np.ndarray:
    """The measures of one set of re-detected landmarks, in face units."""
    q = face_frame(pts).to_face(pts)
    eye_y = 0.5 * (q[33, 1] + q[263, 1])
    inner = eye_y - 0.5 * (q[107, 1] + q[336, 1])
    outer = eye_y - 0.5 * (q[70, 1] + q[300, 1])
    gap = abs(q[336, 0] - q[107, 0])
    eye = 0.5 * ((q[145, 1] - q[159, 1]) + (q[374, 1] - q[386, 1]))
    width = float(np.hypot(*(q[291, :2] - q[61, :2])))
    mid = 0.5 * (q[13, 1] + q[14, 1])
    drop = 0.5 * (q[61, 1] + q[291, 1]) - mid
    upper = -q[0, 1]  # upper lip top below the eye line (AU9 lifts the nose base too: not a reference)
    chin = -q[17, 1]  # lower edge of the lower lip below the eye line
    red = (q[13, 1] - q[0, 1]) + (q[17, 1] - q[14, 1])
    return np.array([inner, outer, gap, eye, width, drop, mouth_opening(pts), upper, chin, red])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--k", type=float, default=1.0)
    ap.add_argument("--set", choices=("current", "neutral"), default="current")
    ap.add_argument("--no-rest", action="store_true")
    args = ap.parse_args(argv)
    import mediapipe as mp

    from engine.avatar import create_avatar, load_avatar
    from engine.measure import shared_dir
    from engine.renderers import create

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from eval_fer import portrait_paths

    avatars = [load_avatar(None) if p is None else create_avatar(p)
               for p in portrait_paths(args.set, shared_dir()).values()]
    fm = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=True)

    def detect(rgb):
        r = fm.process(np.ascontiguousarray(rgb))
        h, w = rgb.shape[:2]
        return np.array([[p.x * w, p.y * h, p.z * w] for p in r.multi_face_landmarks[0].landmark])

    deltas = {e: [] for e in EMOTIONS}
    for av in avatars:
        r = create("meshwarp", av, rest=not args.no_rest)
        m0 = measures(detect(r.render(FaceState.neutral())))
        for e in EMOTIONS:
            deltas[e].append(measures(detect(r.render(apply_emotion(FaceState.neutral(), {e: 1.0}, args.k)))) - m0)
    print("| emotion | " + " | ".join(MEASURES) + " | FACS signs shown |")
    print("|---|" + "---|" * (len(MEASURES) + 1))
    for e in EMOTIONS:
        d = 1000 * np.mean(deltas[e], axis=0)
        # A sign counts when the change is at least 5/1000 inter-ocular (about half a pixel at 512 px).
        ok = [d[MEASURES.index(m)] * s >= 5 if s else abs(d[MEASURES.index(m)]) < 30 for m, s in EXPECT[e].items()]
        cells = []
        for m, v in zip(MEASURES, d):
            mark = "" if m not in EXPECT[e] else ("*" if ok[list(EXPECT[e]).index(m)] else " (!)")
            cells.append(f"{v:+.0f}{mark}")
        print(f"| {e} | " + " | ".join(cells) + f" | {sum(ok)}/{len(ok)} |")
    print(f"\n{len(avatars)} portraits, k = {args.k:g}; * = the sign FACS expects, (!) = not shown")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
