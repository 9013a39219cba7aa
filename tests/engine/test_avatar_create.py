"""Avatar creation from photos: real portraits, the bundle round trip, and bad input."""
from __future__ import annotations

import io
import logging
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image
from skimage import data

from engine.avatar import (AvatarError, avatar_from_image, avatar_from_photo_bytes, create_avatar, load_avatar,
                           load_bundle, save_avatar)
from engine.avatar.mesh import GROUP_OUTER
from emolive.cli import main
from engine.face_geometry import face_frame


def _write_jpeg(path, rgb):
    Image.fromarray(rgb).save(path, format="JPEG", quality=92)
    return path


def _covered(av) -> float:
    """Fraction of the frame covered by the warp mesh triangles (must be all of it)."""
    m = np.zeros(av.size, np.uint8)
    v = av.mesh.vertices[:, :2]
    for t in av.mesh.triangles:
        cv2.fillConvexPoly(m, np.round(v[t] * 16).astype(np.int32), 1, shift=4)
    return float(m.mean())


def test_default_avatar_bundle(default_avatar, tmp_path):
    av = default_avatar
    assert av.size == (512, 512)
    assert av.landmarks.shape == (478, 3)
    # Eyes levelled and the face framed where the aligner put it.
    f = face_frame(av.landmarks)
    assert abs(av.pose[2]) < 3.0
    assert 0.17 * 512 < f.scale < 0.23 * 512
    assert _covered(av) > 0.999
    assert (av.mesh.groups == GROUP_OUTER).any() and av.masks["mouth"].any() and av.masks["eye_left"].any()
    # Border vertices never follow the head: the frame edges stay put.
    border = (av.mesh.vertices[:, 0] <= 0) | (av.mesh.vertices[:, 0] >= 511)
    assert border.any() and np.all(av.mesh.head_weight[border] == 0)
    out = save_avatar(av, tmp_path / "bundle")
    back = load_bundle(out)
    assert np.array_equal(back.image, av.image)
    assert np.allclose(back.landmarks, av.landmarks)
    assert np.array_equal(back.mesh.triangles, av.mesh.triangles)


@pytest.mark.parametrize("name", ["einstein.jpg", "biden.jpg", "grid_brbk7n.png", "grid_lbax4n.png", "grid_swiz3n.png"])
def test_real_portraits(shared, name):
    av = create_avatar(shared / "data" / "portraits" / name, size=384)
    assert av.size == (384, 384)
    assert _covered(av) > 0.999
    # The face sits where the framing puts it, whatever the source layout.
    f = face_frame(av.landmarks)
    assert abs(f.origin[0] - 0.5 * 384) < 6 and abs(f.origin[1] - 0.42 * 384) < 6


def test_off_centre_face_in_large_image():
    canvas = np.full((1400, 1800, 3), 90, np.uint8)
    canvas[800:1312, 1200:1712] = data.astronaut()
    av = avatar_from_image(canvas)
    assert av.meta["faces_found"] == 1
    ref = avatar_from_image(data.astronaut())
    assert np.abs(av.landmarks[:, :2] - ref.landmarks[:, :2]).mean() < 3.0


def test_several_faces_picks_largest(caplog):
    a = data.astronaut()
    b = cv2.resize(a, None, fx=0.6, fy=0.6)
    two = np.concatenate([np.pad(b, ((0, 512 - b.shape[0]), (0, 0), (0, 0)), constant_values=255), a], axis=1)
    with caplog.at_level(logging.WARNING):
        av = avatar_from_image(two)
    assert av.meta["faces_found"] == 2
    assert "largest" in caplog.text
    assert av.meta["source_face_width_px"] > 80  # the big face, not the 0.6x one


def test_no_face():
    with pytest.raises(AvatarError, match="no face"):
        avatar_from_image(data.coffee())


def test_face_too_small():
    small = cv2.resize(data.astronaut(), None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    canvas = np.full((900, 900, 3), 200, np.uint8)
    canvas[300:300 + small.shape[0], 400:400 + small.shape[1]] = small
    with pytest.raises(AvatarError, match="too small"):
        avatar_from_image(canvas)


def _png_header_only(w, h) -> bytes:
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("case,expect", [
    ("text", "not an image"),
    ("truncated", "cannot decode"),
    ("bomb", "too large"),
    ("empty", "empty file"),
    ("missing", "not found"),
])
def test_bad_photo_files(tmp_path, case, expect):
    p = tmp_path / "photo.jpg"
    if case == "text":
        p.write_text("hello, I am not a picture\n")
    elif case == "truncated":
        buf = io.BytesIO()
        Image.fromarray(data.astronaut()).save(buf, format="JPEG")
        p.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    elif case == "bomb":
        p = tmp_path / "bomb.png"
        p.write_bytes(_png_header_only(100_000, 100_000))
    elif case == "empty":
        p.write_bytes(b"")
    with pytest.raises(AvatarError, match=expect) as from_file:
        create_avatar(p)
    if p.exists():  # an upload (the page's set_avatar) gets the same message, naming the file
        with pytest.raises(AvatarError) as from_bytes:
            avatar_from_photo_bytes(p.read_bytes(), name=str(p))
        assert str(from_bytes.value) == str(from_file.value)


def test_cli_avatar_create_and_bad_input(tmp_path, capsys):
    photo = _write_jpeg(tmp_path / "astro.jpg", data.astronaut())
    assert main(["avatar", "create", str(photo), "--out", str(tmp_path / "av"), "--size", "256"]) == 0
    assert load_avatar(tmp_path / "av").size == (256, 256)
    capsys.readouterr()

    bad = tmp_path / "notes.png"
    bad.write_text("not a png")
    assert main(["avatar", "create", str(bad), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("emolive: error:") and "Traceback" not in err and len(err.strip().splitlines()) == 1

    with pytest.raises(SystemExit) as e:
        main(["avatar", "create", str(photo), "--out", str(tmp_path / "y"), "--size", "99999"])
    assert e.value.code == 2


def test_corrupt_bundle(tmp_path, default_avatar):
    d = save_avatar(default_avatar, tmp_path / "b")
    (d / "avatar.json").write_text("{not json")
    with pytest.raises(AvatarError, match="corrupt"):
        load_bundle(d)
    with pytest.raises(AvatarError, match="no avatar.json"):
        load_bundle(tmp_path)


def test_rest_expression_stored_and_old_bundles_measured(default_avatar, tmp_path):
    """The photo's own expression is measured at creation and kept in avatar.json; a bundle written
    before the field existed loads, and its rest expression is measured from its stored landmarks."""
    import json

    from engine.avatar.rest import META_KEY, measure_rest, rest_expression
    from engine.types import COEFF_INDEX

    rest = rest_expression(default_avatar)
    # The astronaut smiles with teeth: smile and cheek raise well above a neutral face's.
    assert rest[COEFF_INDEX["mouthSmileLeft"]] > 0.4 and rest[COEFF_INDEX["mouthSmileRight"]] > 0.4
    assert rest[COEFF_INDEX["cheekSquintLeft"]] > 0.3
    assert rest[COEFF_INDEX["eyeBlinkLeft"]] == 0.0 and rest[COEFF_INDEX["tongueOut"]] == 0.0
    d = save_avatar(default_avatar, tmp_path / "b")
    assert np.allclose(rest_expression(load_bundle(d)), rest, atol=1e-4)
    meta = json.loads((d / "avatar.json").read_text())
    del meta[META_KEY]
    (d / "avatar.json").write_text(json.dumps(meta))
    old = load_bundle(d)
    assert META_KEY not in old.meta
    assert np.allclose(rest_expression(old), measure_rest(old.landmarks))
    assert np.allclose(rest_expression(old), rest, atol=2e-3)


def test_rest_expression_of_neutral_and_smiling_photos(shared):
    """Held-out London people (not in the neutral reference): a smiling photo shows more rest expression
    than the same person's neutral photo, and neutral photos show little. Measured on these 8: smiling >
    neutral for 7 (one subtle smile reads 0.07 vs 0.40), neutral totals median 0.3 (one 2.1: 025's lips)."""
    from engine.avatar.rest import rest_expression

    root = shared / "data" / "expressions" / "london"
    neutral, smiling = [], []
    for n in ("005", "010", "020", "025", "030", "045", "070", "090"):
        neutral.append(rest_expression(create_avatar(root / "neutral" / f"{n}_03.jpg", size=256)).sum())
        smiling.append(rest_expression(create_avatar(root / "smiling" / f"{n}_08.jpg", size=256)).sum())
    assert sum(s > n for n, s in zip(neutral, smiling)) >= 6, (neutral, smiling)
    assert np.median(neutral) < 0.5 and np.median(smiling) > 3 * np.median(neutral), (neutral, smiling)
