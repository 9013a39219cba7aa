"""Photo -> avatar: detect, align to a portrait frame, re-measure, segment, mesh, masks."""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import cv2
import numpy as np

from ..face_geometry import EYE_L, EYE_OUTER_L, EYE_OUTER_R, EYE_R, LIPS_INNER, face_frame, head_pose
from .bundle import Avatar
from .detect import detect_face
from .errors import AvatarError
from .image_io import read_photo, read_photo_bytes
from .mesh import build_mesh
from .rest import META_KEY, measure_rest, to_meta

log = logging.getLogger(__name__)

# Portrait framing of the aligned frame, as fractions of its side.
EYE_CENTRE = (0.5, 0.42)
EYE_DISTANCE = 0.2  # outer eye corners; the face spans ~0.45 of the frame, leaving hair and neck
MIN_SIZE, MAX_SIZE = 128, 2048


def _alignment(landmarks: np.ndarray, size: int) -> np.ndarray:
    """2x3 similarity that levels the eyes and frames the face."""
    r, l = landmarks[EYE_OUTER_R, :2], landmarks[EYE_OUTER_L, :2]
    d = l - r
    angle = np.arctan2(d[1], d[0])
    s = EYE_DISTANCE * size / np.hypot(*d)
    c, si = np.cos(-angle) * s, np.sin(-angle) * s
    mid = (r + l) / 2
    tx = EYE_CENTRE[0] * size - (c * mid[0] - si * mid[1])
    ty = EYE_CENTRE[1] * size - (si * mid[0] + c * mid[1])
    return np.array([[c, -si, tx], [si, c, ty]], np.float64)


def _person_mask(rgb: np.ndarray) -> np.ndarray:
    import mediapipe as mp

    with mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0) as seg:
        m = seg.process(rgb).segmentation_mask
    if m is None:
        return np.ones(rgb.shape[:2], np.float32)
    return cv2.GaussianBlur(np.clip(m, 0, 1).astype(np.float32), (0, 0), 3)


def _polygon_mask(shape, pts: np.ndarray) -> np.ndarray:
    m = np.zeros(shape, np.uint8)
    cv2.fillPoly(m, [np.round(pts[:, :2] * 16).astype(np.int32)], 255, lineType=cv2.LINE_AA, shift=4)
    return m


def avatar_from_image(rgb: np.ndarray, size: int = 512, source: str = "image") -> Avatar:
    if not (MIN_SIZE <= size <= MAX_SIZE):
        raise AvatarError(f"avatar size must be between {MIN_SIZE} and {MAX_SIZE} px, got {size}")
    found = detect_face(rgb)
    m = _alignment(found.landmarks, size)
    aligned = cv2.warpAffine(rgb, m, (size, size), flags=cv2.INTER_AREA if m[0, 0] < 1 else cv2.INTER_CUBIC,
                             borderMode=cv2.BORDER_REPLICATE)
    # Measure again on the aligned frame: the mesh must sit exactly on the pixels we animate.
    again = detect_face(aligned)
    lm = again.landmarks
    person = _person_mask(aligned)
    mesh = build_mesh(lm, size, size, person)
    masks = {
        "mouth": _polygon_mask((size, size), lm[list(LIPS_INNER)]),
        "eye_right": _polygon_mask((size, size), lm[list(EYE_R)]),
        "eye_left": _polygon_mask((size, size), lm[list(EYE_L)]),
        "person": np.round(person * 255).astype(np.uint8),
    }
    pose = head_pose(face_frame(lm))
    face_px = float(np.ptp(found.landmarks[:, 0]))
    meta = {
        "source": source,
        "faces_found": found.faces_found,
        "source_face_width_px": round(face_px, 1),
        "upscale": round(float(np.hypot(m[0, 0], m[1, 0])), 3),
        "alignment": m.round(6).tolist(),
        # The photo's own expression (rest.py): renderers subtract it so emotions start from neutral.
        META_KEY: to_meta(measure_rest(lm)),
    }
    for note in creation_warnings(meta, faces=False):  # several faces: detect_face has said so
        log.warning(note)
    return Avatar(image=aligned, landmarks=lm, pose=pose, mesh=mesh, masks=masks, meta=meta)


UPSCALE_WARNING = 3.0  # a face enlarged more than this looks soft


def creation_warnings(meta: dict, faces: bool = True) -> list[str]:
    """What is worth telling about an avatar made from a photo: several faces (the largest was used), a small
    face enlarged a lot. `meta`: the avatar's meta as avatar_from_image writes it."""
    notes = []
    found = int(meta.get("faces_found", 1))
    if faces and found > 1:
        notes.append(f"{found} faces found; using the largest")
    upscale = float(meta.get("upscale", 1.0))
    if upscale > UPSCALE_WARNING:
        notes.append(f"the face is small in the photo ({meta.get('source_face_width_px', 0):.0f} px wide): the "
                     f"avatar is upscaled {upscale:.1f}x and will look soft")
    return notes


def create_avatar(photo: str | Path, size: int = 512) -> Avatar:
    """An avatar from a portrait photo file (AvatarError with a one-line reason on bad input)."""
    rgb = read_photo(photo)
    digest = hashlib.sha256(Path(photo).read_bytes()).hexdigest()[:16]
    av = avatar_from_image(rgb, size=size, source=Path(photo).name)
    av.meta["source_sha256_16"] = digest
    return av


def avatar_from_photo_bytes(data: bytes, name: str = "photo", size: int = 512) -> Avatar:
    """An avatar from a photo's bytes (an upload): the same checks, messages and build as create_avatar,
    with `name` standing for the file."""
    rgb = read_photo_bytes(data, name)
    av = avatar_from_image(rgb, size=size, source=name)
    av.meta["source_sha256_16"] = hashlib.sha256(data).hexdigest()[:16]
    return av
