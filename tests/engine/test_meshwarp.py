"""meshwarp, judged by re-detecting the face on rendered frames with MediaPipe's face mesh.

The detector is independent of the renderer: it never sees the state that was
asked for, only pixels. Runs on the default avatar and four real portraits.
"""
from __future__ import annotations

import numpy as np
import pytest

from engine.avatar import create_avatar
from engine.face_geometry import FACE_OVAL, eye_aspect_ratio, face_frame, head_pose, mouth_opening
from engine.renderers import create
from engine.types import FaceState

PORTRAITS = ["einstein.jpg", "biden.jpg", "grid_lrwp9a.png", "grid_sbwe5n.png"]


@pytest.fixture(scope="module", params=["default"] + PORTRAITS)
def avatar(request, default_avatar):
    if request.param == "default":
        return default_avatar
    from engine.measure import shared_dir

    if shared_dir() is None:
        pytest.skip("../shared not present")
    return create_avatar(shared_dir() / "data" / "portraits" / request.param, size=384)


@pytest.fixture(scope="module")
def renderer(avatar):
    r = create("meshwarp", avatar)
    yield r
    r.close()


def _render(r, **values):
    return r.render(FaceState.from_dict(values))


def _face_mask(av) -> np.ndarray:
    import cv2

    m = np.zeros(av.size, np.uint8)
    cv2.fillPoly(m, [np.round(av.landmarks[list(FACE_OVAL), :2]).astype(np.int32)], 1)
    return m.astype(bool)


def _psnr(a, b, mask) -> float:
    err = np.mean((a[mask].astype(np.float64) - b[mask].astype(np.float64)) ** 2)
    return float("inf") if err == 0 else 10 * np.log10(255.0 ** 2 / err)


def test_neutral_matches_photo(avatar):
    """With the photo's rest expression kept (rest=False, as the diffusion hint uses it), neutral is the photo."""
    from engine.renderers.meshwarp import MeshWarpRenderer

    plain = MeshWarpRenderer(avatar, rest=False)
    mask = _face_mask(avatar)
    assert _psnr(_render(plain), avatar.image, mask) >= 35.0
    # A head turn of 0.1 deg (vertices move < 0.3 px) sends every face triangle through the
    # warp kernel: resampling alone must not degrade the photo.
    assert _psnr(_render(plain, headYaw=0.1), avatar.image, mask) >= 35.0


def _mouth_shape(pts) -> np.ndarray:
    """(mouth width, corner height above the lips' mid-line, inner-lip opening) in face units."""
    q = face_frame(pts).to_face(pts)
    mid = 0.5 * (q[13, 1] + q[14, 1])
    return np.array([q[291, 0] - q[61, 0], mid - 0.5 * (q[61, 1] + q[291, 1]), q[14, 1] - q[13, 1]])


def test_rest_expression_neutralises_a_smiling_photo(default_avatar, redetect):
    """The default avatar smiles with teeth in its photo: rendered at neutral with its rest expression
    undone, the re-detected mouth is closer to the population-neutral face's (rig mean face) than the
    photo's is: narrower, corners lower, lips closed; and speech still opens it from there."""
    from engine.rig import load_rig
    from engine.renderers.meshwarp import MeshWarpRenderer

    neutral = _mouth_shape(load_rig().mean_face)
    photo = _mouth_shape(redetect(default_avatar.image))
    r = MeshWarpRenderer(default_avatar, rest=True)
    rest = _mouth_shape(redetect(_render(r)))
    assert rest[0] < photo[0] - 0.03, (photo, rest)  # narrower (measured 0.71 -> 0.55 inter-ocular)
    assert rest[1] < photo[1] - 0.015, (photo, rest)  # corners come down
    assert rest[2] < 0.6 * photo[2], (photo, rest)  # lips close over the teeth (0.12 -> 0.04)
    assert np.linalg.norm(rest[:2] - neutral[:2]) < 0.6 * np.linalg.norm(photo[:2] - neutral[:2])
    opened = _mouth_shape(redetect(_render(r, jawOpen=0.6)))
    assert opened[2] > rest[2] + 0.08, (rest, opened)


def test_jaw_opens_lips(renderer, redetect):
    rest = mouth_opening(redetect(_render(renderer)))
    open_ = mouth_opening(redetect(_render(renderer, jawOpen=1.0)))
    half = mouth_opening(redetect(_render(renderer, jawOpen=0.5)))
    assert open_ > rest + 0.12, (rest, open_)
    assert rest < half < open_


def test_mouth_close_seals_lips_over_an_open_jaw(renderer, redetect):
    """ARKit's mouthClose (lips meet over an open jaw: m, b, p mid-word) closes the re-detected lips."""
    rest = mouth_opening(redetect(_render(renderer)))
    opened = mouth_opening(redetect(_render(renderer, jawOpen=0.15)))
    closed = mouth_opening(redetect(_render(renderer, jawOpen=0.15, mouthClose=0.15)))
    half = mouth_opening(redetect(_render(renderer, jawOpen=0.15, mouthClose=0.075)))
    assert opened > rest + 0.01, (rest, opened)
    # as closed as the sealed mouth at rest, give or take a quarter of what the jaw opened
    assert closed < rest + 0.25 * (opened - rest), (rest, closed, opened)
    assert closed < half + 0.002 and half < opened, (closed, half, opened)  # a half share: between


def test_smile_raises_and_widens_corners(renderer, redetect):
    def corners(img):
        p = redetect(img)
        f = face_frame(p)
        q = f.to_face(p)
        return q[61], q[291]

    (l0, r0), (l1, r1) = corners(_render(renderer)), corners(_render(renderer, mouthSmileLeft=1, mouthSmileRight=1))
    assert (r1[0] - l1[0]) > (r0[0] - l0[0]) * 1.04  # wider
    assert l1[1] < l0[1] - 0.015 and r1[1] < r0[1] - 0.015  # higher (y grows down)


def test_blink_closes_eyes(renderer, shared):
    """Measured with the Face Landmarker (.task): the face mesh of the wheel barely sees closed lids."""
    from engine.measure import Landmarker
    from engine.types import COEFF_INDEX

    with Landmarker("image") as lm:
        m0 = lm.detect(_render(renderer))
        m1 = lm.detect(_render(renderer, eyeBlinkLeft=1, eyeBlinkRight=1))
        m2 = lm.detect(_render(renderer, eyeBlinkLeft=1))
    for side, name in (("left", "eyeBlinkLeft"), ("right", "eyeBlinkRight")):
        assert eye_aspect_ratio(m1.landmarks, side) < 0.5 * eye_aspect_ratio(m0.landmarks, side), side
        assert m1.blendshapes[COEFF_INDEX[name]] > m0.blendshapes[COEFF_INDEX[name]] + 0.25, side
    # One eye only: "Left" is the subject's left eye.
    assert eye_aspect_ratio(m2.landmarks, "left") < 0.6 * eye_aspect_ratio(m0.landmarks, "left")
    assert eye_aspect_ratio(m2.landmarks, "right") > 0.75 * eye_aspect_ratio(m0.landmarks, "right")


def test_yaw_turns_head_the_right_way(renderer, redetect):
    yaw0 = head_pose(face_frame(redetect(_render(renderer))))[1]
    plus = head_pose(face_frame(redetect(_render(renderer, headYaw=15))))[1]
    minus = head_pose(face_frame(redetect(_render(renderer, headYaw=-15))))[1]
    assert plus > yaw0 + 5 and minus < yaw0 - 5, (yaw0, plus, minus)


def test_background_stays_still_when_head_turns(renderer, avatar):
    import cv2

    state = FaceState.from_dict({"headYaw": 12, "headPitch": 6, "jawOpen": 0.7})
    img = renderer.render(state)
    m = avatar.mesh
    dst = renderer.deform(state)[:, :2]
    # Vertices that follow neither the head nor the expression...
    still_v = (m.head_weight == 0) & (m.follow == 0)
    still_v[:478] = False
    still_t = still_v[m.triangles].all(axis=1)

    def raster(tris, verts):
        out = np.zeros(avatar.size, np.uint8)
        for t in tris:
            cv2.fillConvexPoly(out, np.round(verts[t] * 16).astype(np.int32), 1, shift=4)
        return out

    # ...keep the photo's pixels wherever the moving head does not pass over them.
    covered = cv2.dilate(raster(m.triangles[~still_t], dst), np.ones((5, 5), np.uint8)).astype(bool)
    still = raster(m.triangles[still_t], m.vertices[:, :2]).astype(bool) & ~covered
    assert np.array_equal(img[still], avatar.image[still])
    # And such still triangles hold most of the background the segmentation saw.
    background = avatar.masks["person"] < 25
    assert (still & background).sum() > 0.5 * background.sum()
