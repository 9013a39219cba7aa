"""The avatar bundle: an in-memory Avatar and its on-disk directory format (docs/reference/avatar-format.md)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..io.manifest import read_manifest
from .errors import AvatarError
from .mesh import WarpMesh

FORMAT = "emolive-avatar"
VERSION = 1
MASK_NAMES = ("mouth", "eye_right", "eye_left", "person")


@dataclass(frozen=True, eq=False)
class Avatar:
    image: np.ndarray  # (S, S, 3) uint8 RGB: the aligned frame the renderer animates
    landmarks: np.ndarray  # (478, 3) float32 px in `image` (z scaled like x)
    pose: tuple[float, float, float]  # (pitch, yaw, roll) degrees of the face in `image`
    mesh: WarpMesh
    masks: dict[str, np.ndarray]  # MASK_NAMES -> (S, S) uint8 0..255
    meta: dict = field(default_factory=dict)

    @property
    def size(self) -> tuple[int, int]:
        return self.image.shape[0], self.image.shape[1]


def save_avatar(avatar: Avatar, out_dir: str | Path) -> Path:
    from PIL import Image

    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    Image.fromarray(avatar.image).save(d / "image.png")
    m = avatar.mesh
    np.savez_compressed(
        d / "geometry.npz", landmarks=avatar.landmarks.astype(np.float32), vertices=m.vertices,
        triangles=m.triangles, groups=m.groups, head_weight=m.head_weight, parent=m.parent, follow=m.follow)
    np.savez_compressed(d / "masks.npz", **{k: avatar.masks[k] for k in MASK_NAMES})
    meta = dict(avatar.meta)
    meta.update({
        "format": FORMAT, "version": VERSION, "size": list(avatar.size),
        "pose": {"pitch": avatar.pose[0], "yaw": avatar.pose[1], "roll": avatar.pose[2]},
        "counts": {"landmarks": int(len(avatar.landmarks)), "vertices": int(len(m.vertices)),
                   "triangles": int(len(m.triangles))},
    })
    (d / "avatar.json").write_text(json.dumps(meta, indent=2) + "\n")
    return d


def load_bundle(path: str | Path) -> Avatar:
    """Load an avatar directory written by save_avatar; AvatarError on anything malformed."""
    from PIL import Image

    d = Path(path)
    meta = read_manifest(d, "avatar.json", FORMAT, VERSION, AvatarError, "an avatar bundle",
                         "; re-create it with `emolive avatar create`")
    try:
        image = np.asarray(Image.open(d / "image.png").convert("RGB"))
        g = np.load(d / "geometry.npz")
        mk = np.load(d / "masks.npz")
        mesh = WarpMesh(vertices=g["vertices"].astype(np.float32), triangles=g["triangles"].astype(np.int32),
                        groups=g["groups"].astype(np.uint8), head_weight=g["head_weight"].astype(np.float32),
                        parent=g["parent"].astype(np.int32), follow=g["follow"].astype(np.float32))
        landmarks = g["landmarks"].astype(np.float32)
        masks = {k: mk[k] for k in MASK_NAMES}
    except (OSError, KeyError, ValueError) as e:
        raise AvatarError(f"corrupt avatar bundle {d}: {e}") from None
    h, w = image.shape[:2]
    if landmarks.shape != (478, 3) or mesh.triangles.max(initial=0) >= len(mesh.vertices) or \
            list(meta.get("size", [])) != [h, w]:
        raise AvatarError(f"inconsistent avatar bundle: {d}")
    p = meta.get("pose", {})
    pose = (float(p.get("pitch", 0.0)), float(p.get("yaw", 0.0)), float(p.get("roll", 0.0)))
    return Avatar(image=image, landmarks=landmarks, pose=pose, mesh=mesh, masks=masks, meta=meta)
