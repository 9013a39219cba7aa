"""The neural mouth in meshwarp: where it draws, that it is stable, when it steps aside, and the switches."""
from __future__ import annotations

import dataclasses
import functools
import json

import numpy as np
import pytest

from engine.neural_mouth import runtime
from engine.neural_mouth.runtime import NeuralMouth
from engine.renderers import create
from engine.types import FaceState

SPEECH = FaceState.from_dict({"jawOpen": 0.6, "mouthFunnel": 0.3, "mouthSmileLeft": 0.2, "headYaw": 4.0})
LIFT = 0.04  # the test generator's change, in the network's -1..1 units (5 grey levels: passes the self-check)


def _lifting_model(path) -> None:
    """A generator of the shipped model's signature that lightens the crop by LIFT, so every drawn pixel shows
    (the model in engine/assets may leave a face unchanged)."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    c = runtime.crop
    x = helper.make_tensor_value_info(runtime.INPUT_NAME, TensorProto.FLOAT, [1, c.CHANNELS, c.RES, c.RES])
    y = helper.make_tensor_value_info(runtime.OUTPUT_NAME, TensorProto.FLOAT, [1, 3, c.RES, c.RES])
    consts = [numpy_helper.from_array(np.array(v, np.int64), n) for n, v in
              (("starts", [0]), ("ends", [3]), ("axes", [1]))] + [numpy_helper.from_array(np.array(LIFT, np.float32),
                                                                                          "lift")]
    nodes = [helper.make_node("Slice", [runtime.INPUT_NAME, "starts", "ends", "axes"], ["rgb"]),
             helper.make_node("Add", ["rgb", "lift"], [runtime.OUTPUT_NAME])]
    graph = helper.make_graph(nodes, "lift", [x], [y], initializer=consts)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


@pytest.fixture(scope="module")
def lifting_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("neural_mouth") / "lift.onnx"
    _lifting_model(path)
    return path


def _lifting_renderer(avatar, model):
    with pytest.MonkeyPatch.context() as mp:  # the renderer builds its NeuralMouth from the test generator
        mp.setattr(runtime, "NeuralMouth", functools.partial(NeuralMouth, onnx_path=model))
        r = create("meshwarp", avatar, neural_mouth=True)
    assert r.neural_mouth is not None and r.neural_mouth.enabled, r.neural_mouth.reason
    return r


@pytest.fixture(scope="module")
def with_mouth(default_avatar, lifting_model):
    r = _lifting_renderer(default_avatar, lifting_model)
    yield r
    r.close()


def test_shipped_model_runs_on_the_default_avatar(default_avatar):
    r = create("meshwarp", default_avatar, neural_mouth=True)
    assert r.neural_mouth is not None and r.neural_mouth.enabled, r.neural_mouth.reason
    frame = r.render(SPEECH)
    assert frame.shape == (*r.size, 3) and frame.dtype == np.uint8


@pytest.fixture(scope="module")
def plain(default_avatar):
    r = create("meshwarp", default_avatar, neural_mouth=False)
    assert r.neural_mouth is None
    yield r
    r.close()


def _xy(renderer, state: FaceState) -> np.ndarray:
    return np.ascontiguousarray(renderer.deform(state)[:, :2], np.float32)


def _box(nm: NeuralMouth, xy: np.ndarray, size: tuple[int, int]):
    m = nm._matrix(np.asarray(xy, np.float64))
    assert m is not None
    return runtime._frame_box(m, size[1], size[0])


def test_only_the_crop_box_changes(with_mouth, plain):
    a, b = with_mouth.render(SPEECH), plain.render(SPEECH)
    x0, y0, x1, y1 = _box(with_mouth.neural_mouth, _xy(with_mouth, SPEECH), a.shape[:2])
    outside = np.ones(a.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    assert np.array_equal(a[outside], b[outside])
    assert not np.array_equal(a[y0:y1, x0:x1], b[y0:y1, x0:x1])  # it did draw


def test_same_state_same_frame(with_mouth, default_avatar, lifting_model):
    first = with_mouth.render(SPEECH)
    assert np.array_equal(first, with_mouth.render(SPEECH))
    other = _lifting_renderer(default_avatar, lifting_model)  # shares the ONNX Runtime session, not the buffers
    other.render(FaceState.from_dict({"jawOpen": 1.0}))
    assert np.array_equal(first, other.render(SPEECH))


def test_still_face_does_not_flicker(with_mouth):
    """Frames of a held state are identical whatever was rendered between them (no state carried over)."""
    still = FaceState.neutral()
    a = with_mouth.render(still)
    with_mouth.render(FaceState.from_dict({"jawOpen": 1.0, "mouthPucker": 0.8}))
    b = with_mouth.render(still)
    c = with_mouth.render(still)
    assert np.array_equal(a, b) and np.array_equal(b, c)


def _refused_matches_plain(avatar, plain_renderer_of_avatar=None):
    on = create("meshwarp", avatar, neural_mouth=True)
    assert on.neural_mouth is not None and not on.neural_mouth.enabled
    off = plain_renderer_of_avatar or create("meshwarp", avatar, neural_mouth=False)
    for s in (FaceState.neutral(), SPEECH):
        assert np.array_equal(on.render(s), off.render(s))
    return on.neural_mouth.reason


def test_turned_head_gets_plain_meshwarp(default_avatar):
    turned = dataclasses.replace(default_avatar, pose=(0.0, 40.0, 0.0))
    reason = _refused_matches_plain(turned)
    assert "turned 40 degrees" in reason


def test_missing_or_broken_model_gets_plain_meshwarp(default_avatar, plain, tmp_path, monkeypatch):
    missing = tmp_path / "none.onnx"
    nm = NeuralMouth(default_avatar, onnx_path=missing)
    assert not nm.enabled and "missing" in nm.reason
    monkeypatch.setattr(runtime, "NeuralMouth", functools.partial(NeuralMouth, onnx_path=missing))
    assert "missing" in _refused_matches_plain(default_avatar, plain)

    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    nm = NeuralMouth(default_avatar, onnx_path=broken)
    assert not nm.enabled and "cannot be loaded" in nm.reason
    frame = plain.render(SPEECH)
    before = frame.copy()
    nm.apply(frame, _xy(plain, SPEECH))
    assert np.array_equal(frame, before)


@pytest.mark.parametrize("where", ["left", "right", "bottom", "top-left", "far"])
def test_crop_at_the_frame_edge(with_mouth, where):
    """The mouth moved partly (or wholly) out of the frame: no error, and nothing written outside the frame.
    The frame is a view into a larger canvas, so a write past its edge would show in the margin."""
    nm = with_mouth.neural_mouth
    frame0 = with_mouth.render(SPEECH)
    h, w = frame0.shape[:2]
    xy = _xy(with_mouth, SPEECH)
    mouth = xy[list(runtime.crop.MOUTH_POINTS)].mean(axis=0)
    target = {"left": (0, mouth[1]), "right": (w, mouth[1]), "bottom": (mouth[0], h), "top-left": (0, 0),
              "far": (-10 * w, mouth[1])}[where]
    moved = (xy + (np.array(target, np.float32) - mouth)).astype(np.float32)
    pad = 40
    canvas = np.full((h + 2 * pad, w + 2 * pad, 3), 7, np.uint8)
    canvas[pad:pad + h, pad:pad + w] = frame0
    before = canvas.copy()
    nm.apply(canvas[pad:pad + h, pad:pad + w], moved)
    margin = np.ones(canvas.shape[:2], bool)
    margin[pad:pad + h, pad:pad + w] = False
    assert np.array_equal(canvas[margin], before[margin])
    changed = np.any(canvas != before, axis=2)
    m = nm._matrix(moved.astype(np.float64))
    box = runtime._frame_box(m, w, h)
    if box is None:
        assert not changed.any()
    else:
        x0, y0, x1, y1 = box
        assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
        assert (x1 - x0) * (y1 - y0) < _full_box_area(nm, xy, (h, w))  # the crop was clipped
        inside = np.zeros(canvas.shape[:2], bool)
        inside[pad + y0:pad + y1, pad + x0:pad + x1] = True
        assert changed.any() and not (changed & ~inside).any()


def _full_box_area(nm, xy, size) -> int:
    x0, y0, x1, y1 = _box(nm, xy, size)
    return (x1 - x0) * (y1 - y0)


def test_render_flag_reaches_the_renderer(tmp_path, capsys, monkeypatch):
    import engine.offline
    from emolive.cli import main

    made = []

    def spy(name, avatar, **options):
        r = create(name, avatar, **options)
        made.append(r)
        return r

    monkeypatch.setattr(engine.offline, "create", spy)
    (tmp_path / "e.json").write_text(json.dumps({"fps": 25, "frames": [{"jawOpen": 0.5}]}))
    for flags, expect_on in (([], False), (["--neural-mouth"], True), (["--no-neural-mouth"], False)):
        out = tmp_path / f"o{len(made)}.mp4"
        assert main(["render", "--expressions", str(tmp_path / "e.json"), "--out", str(out), *flags]) == 0
        assert (made[-1].neural_mouth is not None) == expect_on
    capsys.readouterr()


def test_serve_flag_and_config_reach_the_renderer(tmp_path, monkeypatch):
    from streaming import server
    from streaming.config import load_config
    from streaming.parts import renderer_factory_for

    seen = []
    monkeypatch.setattr(server, "run", lambda config: seen.append(config))
    assert server.main(["--workers", "1", "--neural-mouth"]) == 0
    assert seen[-1].neural_mouth is True
    assert server.main(["--workers", "1"]) == 0
    assert seen[-1].neural_mouth is False
    y = tmp_path / "s.yaml"
    y.write_text("neural_mouth: true\n")
    assert load_config(y).neural_mouth is True
    assert server.main(["--workers", "1", "--config", str(y), "--no-neural-mouth"]) == 0
    assert seen[-1].neural_mouth is False

    got = []
    monkeypatch.setattr(server, "real_parts", lambda *a, **kw: got.append(kw) or None)
    app = server.create_app(seen[-1])
    app[server.POOL].shutdown(wait=True)
    assert got[-1]["neural_mouth"] is False

    assert renderer_factory_for("meshwarp", neural_mouth=False)(None).neural_mouth is None
    assert renderer_factory_for("meshwarp", neural_mouth=True)(None).neural_mouth.enabled
    assert renderer_factory_for("meshwarp")(None).neural_mouth is None
