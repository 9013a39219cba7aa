"""The eye painter (engine/renderers/eyes.py), judged on rendered pixels: eyes=True against eyes=False.

At rest, in blinks and in speech the painter must leave the frame exactly as the warp made it; with the eyes
widened (eyeWide, AU5) the warp alone stretches the iris into a tall dark oval with no white above it, the
painter shows a round iris with sclera between it and the upper lid, and gaze still moves that iris.
"""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from engine.face_geometry import EYE_L, EYE_R, IRIS_L, IRIS_R, face_frame
from engine.renderers.eyes import EyePainter, _luma
from engine.renderers.meshwarp import MeshWarpRenderer
from engine.types import FaceState

WIDE = {"eyeWideLeft": 1.0, "eyeWideRight": 1.0}
SIDES = ((EYE_R, IRIS_R), (EYE_L, IRIS_L))


@pytest.fixture(scope="module")
def pair(default_avatar):
    return MeshWarpRenderer(default_avatar, rest=True), MeshWarpRenderer(default_avatar, rest=True, eyes=False)


@pytest.fixture(scope="module")
def london_pair(shared):
    from engine.avatar import create_avatar

    av = create_avatar(shared / "data" / "expressions" / "london" / "neutral" / "010_03.jpg", size=512)
    return MeshWarpRenderer(av, rest=True), MeshWarpRenderer(av, rest=True, eyes=False)


def _both(pair, **values):
    state = FaceState.from_dict(values)
    return pair[0].render(state), pair[1].render(state), pair[0].deform(state)


@pytest.mark.parametrize("values", [{}, {"eyeBlinkLeft": 1.0, "eyeBlinkRight": 1.0},
                                    {"eyeBlinkLeft": 0.5, "eyeBlinkRight": 0.3},
                                    {"eyeBlinkLeft": 1.0, "eyeBlinkRight": 1.0, **WIDE},
                                    {"eyeSquintLeft": 1.0, "eyeSquintRight": 1.0},
                                    {"jawOpen": 0.6, "mouthFunnel": 0.4, "headYaw": 8.0, "gazeYaw": 15.0}])
def test_rest_blink_and_speech_frames_are_untouched(pair, values):
    on, off, _ = _both(pair, **values)
    assert np.array_equal(on, off), f"the eye painter changed a frame whose lids are not wider than at rest: {values}"


def _eye_pixels(frame, xy, contour):
    """The pixels inside the deformed eye contour (shrunk by a pixel: the lid margins), their coordinates."""
    h, w = frame.shape[:2]
    m = np.zeros((h, w), np.uint8)
    cv2.fillPoly(m, [np.round(xy[list(contour), :2]).astype(np.int32)], 1)
    m = cv2.erode(m, np.ones((3, 3), np.uint8)).astype(bool)
    ys, xs = np.nonzero(m)
    return frame[ys, xs].astype(np.float64), xs, ys, m


def _dark_blob(frame, xy, contour, iris):
    """(upper height / half width, centroid x) of the dark blob (the iris as seen) inside the eye.

    Dark = below the midpoint between the darkest and brightest tenth of the eye's pixels; the blob is the
    connected dark region holding most of the pixels near the iris landmark, its holes (catch-light) filled.
    Its extents are taken through the iris centre (a bounding box would take in the dark lid shadow and
    corners the blob touches): upwards from the centre along its column (the lower lid covers the bottom of a
    widened eye's iris, so only the upper half tells a disc, ~1, from a stretched oval), and across along its
    row.
    """
    px, xs, ys, m = _eye_pixels(frame, xy, contour)
    lum = _luma(px)
    lo, hi = np.percentile(lum, [10, 90])
    dark = np.zeros(m.shape, np.uint8)
    sel = lum < 0.5 * (lo + hi)
    dark[ys[sel], xs[sel]] = 1
    _, lab = cv2.connectedComponents(dark, connectivity=4)
    cx, cy = xy[iris[0], :2]
    near = lab[int(round(cy)) - 2:int(round(cy)) + 3, int(round(cx)) - 2:int(round(cx)) + 3].ravel()
    near = near[near > 0]
    assert len(near), "no dark pixels at the iris centre"
    blob = (lab == np.bincount(near).argmax()).astype(np.uint8)
    outline, _ = cv2.findContours(blob, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(blob, outline, -1, 1, thickness=cv2.FILLED)
    x, y = int(round(cx)), int(round(cy))
    tops = [np.flatnonzero(blob[: y + 1, c]) for c in (x - 1, x, x + 1)]
    upper = cy - (np.median([t.min() if len(t) else y for t in tops]) - 0.5)
    spans = [np.flatnonzero(blob[r]) for r in range(y - 2, y + 3)]
    half_width = 0.5 * max((sp.max() - sp.min() + 1) if len(sp) else 0 for sp in spans)
    yy, xx = np.nonzero(blob)
    return upper / max(half_width, 0.5), float(xx.mean())


@pytest.mark.parametrize("which", ["default", "london"])
def test_widened_eyes_show_a_round_iris(request, which):
    pair = request.getfixturevalue("pair" if which == "default" else "london_pair")
    on, off, xy = _both(pair, **WIDE)
    assert not np.array_equal(on, off), "nothing painted with the eyes widened"
    for contour, iris in SIDES:
        ratio_on, _ = _dark_blob(on, xy, contour, iris)
        ratio_off, _ = _dark_blob(off, xy, contour, iris)
        # The warp stretches the iris up to the raised lid; the painted one is a disc (upper half ~ radius).
        assert ratio_off > 1.25, f"expected the warp alone to stretch the iris (upper/half width {ratio_off:.2f})"
        assert 0.85 <= ratio_on <= 1.15, f"painted iris not round: {ratio_on:.2f} (warp alone {ratio_off:.2f})"


def _mean(frame, y0, y1, x0, x1):
    return frame[y0:y1, x0:x1].reshape(-1, 3).astype(np.float64).mean(axis=0)


def _chroma(rgb):
    return float((rgb.max() - rgb.min()) / max(rgb.max(), 1.0))


@pytest.mark.parametrize("which", ["default", "london"])
def test_sclera_shows_between_upper_lid_and_iris(request, which):
    """White between the raised lid and the iris: brighter than the iris and the warp's stretched one, and
    eye-white coloured: closer to the photo's own whitest eye pixels than to its iris, greyer than the skin."""
    pair = request.getfixturevalue("pair" if which == "default" else "london_pair")
    on, off, xy = _both(pair, **WIDE)
    av = pair[0].avatar
    scale = face_frame(av.landmarks).scale
    for (contour, iris), upper_mid in zip(SIDES, (159, 386)):
        c = xy[iris[0], :2]
        r = float(np.mean([np.hypot(*(av.landmarks[i, :2] - av.landmarks[iris[0], :2])) for i in iris[1::2]]))
        top = c[1] - r  # where a round iris of the photo's radius ends
        lid = xy[upper_mid, 1]
        assert top - lid >= 2.0, "test premise: the widened lid clears the iris top by 2 px"
        # The band between the lid (plus a pixel of lashes) and the iris top, over the iris's middle third.
        y0, y1 = int(np.ceil(lid + 1.5)), int(np.floor(top - 0.5)) + 1
        x0, x1 = int(round(c[0] - r / 3)), int(round(c[0] + r / 3)) + 1
        band_on, band_off = _mean(on, y0, y1, x0, x1), _mean(off, y0, y1, x0, x1)
        # The photo's whitest eye pixels (top fifth inside its eye contour) and its iris middle.
        px, *_ = _eye_pixels(av.image, av.landmarks, contour)
        white = px[_luma(px) >= np.percentile(_luma(px), 80)].mean(axis=0)
        p = av.landmarks[iris[0], :2]
        iris_rgb = _mean(av.image, int(p[1]) - 1, int(p[1]) + 2, int(p[0] - r / 2), int(p[0] + r / 2) + 1)
        low = int(round(xy[list(contour), 1].max() + 0.12 * scale))
        skin = _mean(on, low, low + 3, x0, x1)
        assert _luma(band_on) > _luma(band_off) + 25, f"no white above the iris: {band_on} vs warp alone {band_off}"
        assert _luma(band_on) > _luma(iris_rgb) + 40, f"band {band_on} not brighter than the iris {iris_rgb}"
        assert np.linalg.norm(band_on - white) < np.linalg.norm(band_on - iris_rgb), (band_on, white, iris_rgb)
        assert _chroma(band_on) < _chroma(skin), f"band {band_on} not greyer than the skin {skin}"


def test_gaze_moves_the_painted_iris(pair):
    xs = {}
    for g in (-20.0, 20.0):
        on, off, xy = _both(pair, **WIDE, gazeYaw=g)
        xs[g] = [_dark_blob(on, xy, contour, iris)[1] for contour, iris in SIDES]
    scale = face_frame(pair[0].avatar.landmarks).scale
    for a, b in zip(xs[-20.0], xs[20.0]):
        # Positive gaze yaw looks towards image-left (engine/types.py): the iris moves left.
        assert a - b > 0.05 * scale, f"painted iris moved {a - b:.1f} px between gaze yaw -20 and +20"


def test_partial_opening_fades_in(pair):
    """Between rest and full widening the painter's share grows with the opening (never jumps in)."""
    painter = pair[0]._eyes
    s = [min(painter.strength(pair[0].deform(FaceState.from_dict({"eyeWideLeft": k, "eyeWideRight": k}))[:, :2]))
         for k in (0.0, 0.1, 0.3, 0.6, 1.0)]
    assert s[0] == 0.0 and s[-1] == 1.0
    assert all(b >= a for a, b in zip(s, s[1:])) and 0.0 < s[2] < 1.0, s


def test_narrow_eyed_photo_gets_a_sclera_that_is_not_white_on_dark_skin(default_avatar):
    """A photo whose lids almost touch shows no white to measure: the sclera falls back to one from the skin
    below the eye - lighter than that skin, not glowing white on a darkened copy of the photo."""
    lm = default_avatar.landmarks.copy()
    for contour in (EYE_R, EYE_L):
        up, lo = list(contour[1:8]), list(contour[9:])
        lm[up, 1] = lm[lo[::-1], 1] - 0.5  # upper lid onto the lower one
    dark = (default_avatar.image.astype(np.float64) * 0.35).astype(np.uint8)
    scale = face_frame(lm).scale
    painter = EyePainter(dark, lm, lm, scale)
    for eye in painter._eyes:
        assert eye.sclera_px < 5
        skin, sclera = _luma(eye.skin), _luma(eye.sclera)
        assert skin < sclera < 160, (skin, sclera)
