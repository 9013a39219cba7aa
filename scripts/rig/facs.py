"""Face anatomy of the rig units: where each coefficient may move landmarks, and FACS displacements.

Regions (anatomical area + side) restrict the ridge fit; the landmark groups and FACS action-unit
descriptions give hand-built displacements on the mean face to coefficients with too little
measured variance.
"""
from __future__ import annotations

import numpy as np

from engine import face_geometry as fg
from engine.rig import RIGID_LANDMARKS
from engine.types import BLENDSHAPE_NAMES, NUM_COEFFS

NL = fg.NUM_LANDMARKS


def side_sign(name: str) -> int:
    """+1 for the subject's-left coefficients (face x > 0: MediaPipe 'Left' = subject's left), -1 right, 0 both."""
    if name.endswith("Left") and name not in ("jawLeft", "mouthLeft"):
        return 1
    if name.endswith("Right") and name not in ("jawRight", "mouthRight"):
        return -1
    return 0


def regions(mf: np.ndarray) -> np.ndarray:
    """(52, 478) bool: where each coefficient may move landmarks (anatomy + side)."""
    x, y = mf[:, 0], mf[:, 1]
    eye_c = {1: mf[list(fg.EYE_L)].mean(0), -1: mf[list(fg.EYE_R)].mean(0)}
    iris = {1: list(fg.IRIS_L), -1: list(fg.IRIS_R)}
    out = np.zeros((NUM_COEFFS, NL), bool)
    for k, n in enumerate(BLENDSHAPE_NAMES):
        sg = side_sign(n)
        side = np.ones(NL, bool) if sg == 0 else (sg * x > -0.06)
        if n.startswith("brow"):
            m = y < 0.1
        elif n.startswith("eye"):
            rad = 0.25 if n.startswith("eyeLook") else 0.4 if n.startswith("eyeSquint") else 0.3
            m = np.linalg.norm(mf[:, :2] - eye_c[sg][:2], axis=1) < rad
            m[iris[sg]] = True
            m[iris[-sg]] = False
        elif n.startswith("cheekSquint"):
            m = (y > -0.1) & (y < 0.8)
        elif n.startswith("noseSneer"):
            m = (y > -0.3) & (y < 0.95)
        else:  # jaw*, mouth*, cheekPuff, tongueOut: lower face
            m = y > 0.3
        out[k] = m & side
    # Frames are rigidly aligned on these, so the data holds no motion for them: keep them still.
    out[:, list(RIGID_LANDMARKS)] = False
    return out


# Lip and lid landmark groups (MediaPipe mesh; subject's right = image-left = face x < 0).
UPPER_OUT = (185, 40, 39, 37, 0, 267, 269, 270, 409)
UPPER_IN = (191, 80, 81, 82, 13, 312, 311, 310, 415)
LOWER_OUT = (146, 91, 181, 84, 17, 314, 405, 321, 375)
LOWER_IN = (95, 88, 178, 87, 14, 317, 402, 318, 324)
LIPS = UPPER_OUT + UPPER_IN + LOWER_OUT + LOWER_IN + (61, 291, 78, 308)
# Subject's-right anchors; the subject's-left ones are their mirror images.
R_BROW_INNER, R_BROW_OUTER = (107, 66, 105, 55, 65, 52), (70, 63, 46, 53)
R_UPPER_LID = tuple(u for u, _ in fg.EYE_R_LIDS)
R_LOWER_LID = tuple(d for _, d in fg.EYE_R_LIDS)
R_CHEEK = (50, 117, 118, 101, 205, 36, 187)
R_ALA = (98, 64, 129, 49, 102, 48)
R_CORNER = (61, 78)


def mirror_map(mf: np.ndarray) -> np.ndarray:
    """Index of each landmark's mirror image across the face's midline (nearest neighbour)."""
    flipped = mf * np.array([-1.0, 1.0, 1.0])
    return np.argmin(((mf[:, None] - flipped[None]) ** 2).sum(-1), axis=0)


def _spread(mf, anchors, vectors, radius, mask=None) -> np.ndarray:
    """Each landmark takes its nearest anchor's vector, fading with distance (Gaussian, radius)."""
    a = np.asarray(anchors)
    v = np.broadcast_to(np.asarray(vectors, np.float64), (len(a), 3))
    d = np.linalg.norm(mf[:, None, :2] - mf[None, a, :2], axis=-1)
    near = d.argmin(1)
    wgt = np.exp(-0.5 * (d.min(1) / radius) ** 2)
    if mask is not None:
        wgt = wgt * mask
    return wgt[:, None] * v[near]


def _jaw_weight(mf) -> np.ndarray:
    """How much a landmark rides on the mandible: 0 above the lip line, 1 from the lower lip's base down."""
    return np.clip((mf[:, 1] - mf[13, 1]) / (mf[17, 1] - mf[13, 1]), 0.0, 1.0)


def facs_displacement(name: str, mf: np.ndarray, mirror: np.ndarray) -> np.ndarray:
    """Hand-derived (478, 3) displacement at coefficient 1 from the FACS action unit(s) behind `name`.

    Magnitudes are in face units (1 unit ~ 9 cm between the outer eye corners, so 0.03 ~ 3 mm)."""
    sg = side_sign(name)
    o = sg if sg else 1  # outward x direction of the coefficient's side
    side = np.ones(NL) if sg == 0 else (sg * mf[:, 0] > -0.06).astype(float)

    def ids(r_ids):  # anchors of this side
        return tuple(mirror[list(r_ids)]) if sg > 0 else tuple(r_ids)

    base = name[:-4] if sg > 0 else name[:-5] if sg < 0 else name
    upper_lid, lower_lid = ids(R_UPPER_LID), ids(R_LOWER_LID)
    corner = ids(R_CORNER)
    iris = list(fg.IRIS_L if sg > 0 else fg.IRIS_R)
    jaw = _jaw_weight(mf)
    d = np.zeros((NL, 3))
    if base == "browDown":  # AU4: brows lowered and drawn together
        d = _spread(mf, ids(R_BROW_INNER), (-o * 0.02, 0.045, 0), 0.1, side)
    elif base == "browInnerUp":  # AU1
        d = _spread(mf, R_BROW_INNER + tuple(mirror[list(R_BROW_INNER)]), (0, -0.05, 0), 0.1)
    elif base == "browOuterUp":  # AU2
        d = _spread(mf, ids(R_BROW_OUTER), (0, -0.05, 0), 0.1, side)
    elif base == "cheekPuff":  # AU34: cheeks blown out sideways and forward
        cheeks = R_CHEEK + tuple(mirror[list(R_CHEEK)])
        d = _spread(mf, cheeks, (0, 0, -0.03), 0.15)
        d[:, 0] = np.sign(mf[:, 0]) * 0.05 * np.abs(d[:, 2]) / 0.03
    elif base == "cheekSquint":  # AU6: cheeks raised, lower lid pushed up
        d = _spread(mf, ids(R_CHEEK), (0, -0.035, -0.01), 0.12, side) + _spread(mf, lower_lid, (0, -0.015, 0), 0.05, side)
    elif base == "eyeBlink":  # AU45: upper lid onto the lower lid
        vec = mf[list(lower_lid)] - mf[list(upper_lid)]
        d = _spread(mf, upper_lid, vec, 0.06, side)
        d[list(lower_lid)] = 0
    elif base.startswith("eyeLook"):  # eyeball rotation: iris moves, the upper lid follows vertically
        v = {"eyeLookIn": (-o * 0.09, 0, 0), "eyeLookOut": (o * 0.09, 0, 0),
             "eyeLookUp": (0, -0.06, 0), "eyeLookDown": (0, 0.06, 0)}[base]
        d[iris] = v
        d += _spread(mf, upper_lid, (0, 0.4 * v[1], 0), 0.05, side)
    elif base == "eyeSquint":  # AU7: lids tightened, mostly the lower lid rising
        d = _spread(mf, lower_lid, (0, -0.03, 0), 0.05, side) + _spread(mf, upper_lid, (0, 0.01, 0), 0.04, side)
    elif base == "eyeWide":  # AU5: upper lid raised
        d = _spread(mf, upper_lid, (0, -0.035, 0), 0.06, side)
        d[iris] = 0
    elif base == "jawForward":  # AU29
        d = jaw[:, None] * np.array([0, 0.01, -0.07])
    elif name in ("jawLeft", "jawRight"):  # AU30: mandible slides sideways
        d = jaw[:, None] * np.array([(1 if name == "jawLeft" else -1) * 0.06, 0, 0])
    elif base == "jawOpen":  # AU26/27: mandible drops and swings back
        d = jaw[:, None] * np.array([0, 0.3, 0.08])
    elif base == "mouthClose":  # lips meet over an open jaw
        d = _spread(mf, UPPER_OUT + UPPER_IN, (0, 0.02, 0), 0.05) + _spread(mf, LOWER_OUT + LOWER_IN, (0, -0.04, 0), 0.05)
    elif base == "mouthDimple":  # AU14: corners pulled back and in
        d = _spread(mf, corner, (o * 0.015, 0, 0.03), 0.08, side)
    elif base == "mouthFrown":  # AU15: corners pulled down
        d = _spread(mf, corner, (0, 0.04, 0), 0.09, side)
    elif base == "mouthFunnel":  # AU22: lips flared forward, mouth narrowed and slightly open
        d = _spread(mf, LIPS, (0, 0, -0.04), 0.05) + _spread(mf, (61, 78), (0.03, 0, 0), 0.06) \
            + _spread(mf, (291, 308), (-0.03, 0, 0), 0.06) + _spread(mf, LOWER_IN + LOWER_OUT, (0, 0.02, 0), 0.04)
    elif name in ("mouthLeft", "mouthRight"):  # whole mouth pulled sideways
        d = _spread(mf, LIPS, ((1 if name == "mouthLeft" else -1) * 0.06, 0, 0), 0.12)
    elif base == "mouthLowerDown":  # AU16: lower lip pulled down on one side
        lo = tuple(i for i in LOWER_OUT + LOWER_IN if sg * mf[i, 0] > -0.06)
        d = _spread(mf, lo, (0, 0.04, 0), 0.06, side)
    elif base == "mouthPress":  # AU24: lips pressed together and thinned
        d = _spread(mf, UPPER_OUT, (0, 0.015, 0), 0.04, side) + _spread(mf, LOWER_OUT, (0, -0.015, 0), 0.04, side)
    elif base == "mouthPucker":  # AU18: lips pushed forward, corners drawn in
        d = _spread(mf, LIPS, (0, 0, -0.04), 0.05) + _spread(mf, (61, 78), (0.06, 0, 0), 0.07) \
            + _spread(mf, (291, 308), (-0.06, 0, 0), 0.07)
    elif base == "mouthRollLower":  # AU28: lower lip rolled in over the teeth
        d = _spread(mf, LOWER_OUT, (0, -0.03, 0.03), 0.04)
    elif base == "mouthRollUpper":
        d = _spread(mf, UPPER_OUT, (0, 0.03, 0.03), 0.04)
    elif base == "mouthShrugLower":  # AU17: chin boss and lower lip pushed up
        d = jaw[:, None] * np.array([0, -0.03, -0.01])
    elif base == "mouthShrugUpper":
        d = _spread(mf, UPPER_OUT + UPPER_IN, (0, -0.02, -0.005), 0.05)
    elif base == "mouthSmile":  # AU12: corners pulled up and out, cheek lifted
        d = _spread(mf, corner, (o * 0.05, -0.05, 0.02), 0.1, side) + _spread(mf, ids(R_CHEEK), (0, -0.02, 0), 0.1, side)
    elif base == "mouthStretch":  # AU20: corners pulled straight out
        d = _spread(mf, corner, (o * 0.05, 0.02, 0), 0.1, side)
    elif base == "mouthUpperUp":  # AU10: upper lip raised on one side
        up = tuple(i for i in UPPER_OUT + UPPER_IN if sg * mf[i, 0] > -0.06)
        d = _spread(mf, up, (0, -0.035, 0), 0.06, side)
    elif base == "noseSneer":  # AU9: nose wings and upper lip up, brow slightly down
        d = _spread(mf, ids(R_ALA), (0, -0.03, 0), 0.07, side) + _spread(mf, ids(R_BROW_INNER), (0, 0.015, 0), 0.08, side) \
            + _spread(mf, lower_lid, (0, -0.01, 0), 0.04, side)
    elif base == "tongueOut":  # AU19 with AU25/26: lips part and the jaw drops a little
        d = jaw[:, None] * np.array([0, 0.04, 0]) + _spread(mf, LOWER_IN + LOWER_OUT, (0, 0.03, -0.02), 0.05)
    else:
        raise KeyError(f"no FACS description for {name}")
    return d
