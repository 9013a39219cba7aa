"""`emolive render`: expressions files, speech files, and bad input (one line, exit 2)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from emolive.cli import main


def _frames(path):
    import av

    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def _run(capsys, *args) -> tuple[int, str]:
    code = main(list(args))
    return code, capsys.readouterr().err


def test_render_expressions_minimal_form(tmp_path, capsys):
    doc = {"fps": 25, "frames": [{"jawOpen": 0.4, "mouthSmileLeft": 0.2, "headYaw": 5.0}, {}, {"jawOpen": 1.0}]}
    (tmp_path / "e.json").write_text(json.dumps(doc))
    code, err = _run(capsys, "render", "--expressions", str(tmp_path / "e.json"), "--out", str(tmp_path / "o.mp4"))
    assert code == 0, err
    frames = _frames(tmp_path / "o.mp4")
    assert len(frames) == 3 and frames[0].shape == (512, 512, 3)
    assert np.abs(frames[2].astype(int) - frames[1].astype(int)).mean() > 0.5  # jaw open differs from rest


@pytest.mark.parametrize("content,expect", [
    ({"fps": 25, "frames": [{"jawOpen": 0.3, "smileBig": 1, "eyeBlinkLeft": 0.1, "jawWide": 2}]},
     "frame 0: unknown face-state keys: jawWide, smileBig"),
    ({"fps": 25, "frames": []}, "non-empty list"),
    ({"fps": 0, "frames": [{}]}, "fps must be"),
    ({"fps": 25, "frames": [{"jawOpen": "wide"}]}, "not a number"),
    ({"fps": 25, "frames": [{"jawOpen": True}]}, "must be numbers"),
    ([1, 2], "must be a JSON object"),
    ("{broken", "not valid JSON"),
])
def test_render_expressions_bad_input(tmp_path, capsys, content, expect):
    p = tmp_path / "bad.json"
    p.write_text(content if isinstance(content, str) else json.dumps(content))
    code, err = _run(capsys, "render", "--expressions", str(p), "--out", str(tmp_path / "o.mp4"))
    assert code == 2
    assert expect in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o.mp4").exists()


def test_render_bad_paths(tmp_path, capsys):
    (tmp_path / "e.json").write_text(json.dumps({"frames": [{}]}))
    code, err = _run(capsys, "render", "--expressions", str(tmp_path / "missing.json"), "--out", str(tmp_path / "o.mp4"))
    assert code == 2 and "not found" in err
    code, err = _run(capsys, "render", "--expressions", str(tmp_path / "e.json"), "--out", str(tmp_path / "o.avi"))
    assert code == 2 and ".mp4" in err
    code, err = _run(capsys, "render", "--expressions", str(tmp_path / "e.json"), "--out", str(tmp_path / "o.mp4"),
                     "--avatar", str(tmp_path / "nope"))
    assert code == 2 and "avatar not found" in err
    code, err = _run(capsys, "render", "--expressions", str(tmp_path / "e.json"), "--out", str(tmp_path / "o.mp4"),
                     "--avatar", "")
    assert code == 2 and "avatar path is empty" in err
    with pytest.raises(SystemExit) as e:
        main(["render", "--out", str(tmp_path / "o.mp4")])  # neither --expressions nor --audio
    assert e.value.code == 2


def test_render_audio_mouth_follows_real_speech(shared, grid_speech, tmp_path, capsys, redetect):
    from engine.face_geometry import mouth_opening

    samples, rate, speech = grid_speech
    wav = tmp_path / "speech.wav"
    import scipy.io.wavfile

    scipy.io.wavfile.write(wav, rate, (samples * 32767).astype(np.int16))
    code, err = _run(capsys, "render", "--audio", str(wav), "--out", str(tmp_path / "s.mp4"))
    assert code == 0, err
    frames = _frames(tmp_path / "s.mp4")
    assert abs(len(frames) - 75) <= 1
    opening = np.array([mouth_opening(redetect(f)) for f in frames[:75]])
    # Open while speaking, on average: the lips also close mid-word (m, b, p), so the mean stays well below
    # the vowels' opening.
    assert opening[speech[: len(opening)]].mean() > opening[~speech[: len(opening)]].mean() + 0.015
    assert np.percentile(opening[speech[: len(opening)]], 90) > opening[~speech[: len(opening)]].mean() + 0.04
    # Lip sync: the rendered mouth opens and closes with the real speaker's mouth in the clip's video.
    from engine.measure import read_video_rgb

    real = np.array([mouth_opening(redetect(f)) for f in read_video_rgb(shared / "data" / "grid" / "s1" / "bbaf2n.mp4")[0]])
    n = min(len(real), len(opening))
    assert np.corrcoef(opening[:n], real[:n])[0, 1] > 0.5
    # The voice is muxed: the audio stream is as long as the video.
    import av

    with av.open(str(tmp_path / "s.mp4")) as c:
        a = c.streams.audio[0]
        assert abs(float(a.duration * a.time_base) - 3.0) < 0.1


def test_render_with_a_nerf_bundle_on_the_cpu(default_avatar, tmp_path, capsys):
    from nerf_bundles import untrained_nerf_bundle

    b = untrained_nerf_bundle(default_avatar, tmp_path / "nerf")
    doc = {"fps": 25, "frames": [{}, {"jawOpen": 0.9, "headYaw": 8}]}
    (tmp_path / "e.json").write_text(json.dumps(doc))
    code, err = _run(capsys, "render", "--renderer", "nerf", "--device", "cpu", "--avatar", str(b),
                     "--expressions", str(tmp_path / "e.json"), "--out", str(tmp_path / "o.mp4"))
    assert code == 0, err
    frames = _frames(tmp_path / "o.mp4")
    assert len(frames) == 2 and frames[0].shape == (*default_avatar.size, 3)
    # The head box is the field's drawing: it changes with the state (an untrained field, but state-dependent).
    assert np.abs(frames[1].astype(int) - frames[0].astype(int)).mean() > 0.5
    # No bundle, or a folder that is not one: one line, exit 2, nothing written.
    for extra, expect in (([], "needs --avatar DIR"), (["--avatar", str(tmp_path)], "not a NeRF bundle")):
        code, err = _run(capsys, "render", "--renderer", "nerf", "--expressions", str(tmp_path / "e.json"),
                         "--out", str(tmp_path / "x.mp4"), *extra)
        assert code == 2 and expect in err and len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / "x.mp4").exists()
