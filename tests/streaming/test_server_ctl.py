"""`emolive ctl` against a live session."""
import asyncio
import io
import json

import pytest

from engine.emotion import EmotionError
from streaming.ctl import build_parser, command_message, run
from server_harness import Server, connect


def test_spec_becomes_a_protocol_message(monkeypatch):
    p = build_parser()
    monkeypatch.delenv("EMOLIVE_PUBLISH_WHIP_TOKEN", raising=False)
    assert command_message(p.parse_args(["--session", "x", "publish", "https://sfu.example/whip/{session}"])) == {
        "type": "publish", "url": "https://sfu.example/whip/{session}"}
    monkeypatch.setenv("EMOLIVE_PUBLISH_WHIP_TOKEN", "from-env")
    assert command_message(p.parse_args(["--session", "x", "publish", "https://sfu.example/whip"]))["token"] == \
        "from-env"
    assert command_message(p.parse_args(["--session", "x", "publish", "https://sfu.example/whip",
                                         "--whip-token", "t"]))["token"] == "t"
    assert command_message(p.parse_args(["--session", "x", "unpublish"])) == {"type": "unpublish"}
    assert command_message(p.parse_args(["--session", "x", "set-emotion", "happy:0.8"])) == {
        "type": "set_emotion", "emotion": "happy", "intensity": 0.8, "transition_ms": 250.0}
    with pytest.raises(EmotionError):  # a bad spec is refused before anything is sent
        command_message(p.parse_args(["--session", "x", "set-emotion", "grumpy"]))
    mix = command_message(p.parse_args(["--session", "x", "set-emotion", "happy:0.7+surprised:0.3@0.9"]))
    assert mix["mixture"] == {"happy": 0.7, "surprised": 0.3} and mix["intensity"] == 0.9


def test_ctl_sets_the_emotion_of_a_live_session(parts):  # noqa: F811
    async def scenario():
        async with Server(parts) as server:
            pc, _, answer, _ = await connect(server)
            out = io.StringIO()
            args = build_parser().parse_args(["--url", server.url, "--session", answer["session_id"],
                                              "set-emotion", "sad:0.9"])
            rc = await run(args, out)
            # The server's own check answers an error event: exit status 1.
            bad = await run(build_parser().parse_args(["--url", server.url, "--session", answer["session_id"],
                                                       "prompt", "x" * 600]), io.StringIO())
            await pc.close()
            return rc, json.loads(out.getvalue()), bad

    rc, state, bad = asyncio.run(scenario())
    assert rc == 0 and state["type"] == "state" and bad == 1


def test_ctl_push_speaks_a_file_through_the_session(parts, speech_wav):  # noqa: F811
    async def scenario():
        async with Server(parts) as server:
            pc, _, answer, _ = await connect(server)
            runner = server.sessions[answer["session_id"]]
            out = io.StringIO()
            rc = await run(build_parser().parse_args(["--url", server.url, "--session", answer["session_id"],
                                                      "push", str(speech_wav), "--ahead", "1"]), out)
            stats = runner.stats()
            await pc.close()
            return rc, out.getvalue(), stats

    rc, out, stats = asyncio.run(scenario())
    summary = json.loads(out.strip().splitlines()[-1])
    assert rc == 0 and summary["frames_refused"] == 0 and 4.0 < summary["pushed_s"] < 6.0
    assert stats["speech_frames"] > 80 and stats["input_dropped_samples"] == 0
