"""Protocol fuzzing against the live control websocket: nothing crashes, the stream goes on."""
import asyncio
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server_harness import Server, connect, more_frames_sent

pytestmark = pytest.mark.timeout(240)

json_values = st.recursive(st.none() | st.booleans() | st.floats(allow_nan=True) | st.integers() | st.text(max_size=20),
                           lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=10), kids,
                                                                                      max_size=4), max_leaves=12)
messages = st.one_of(
    st.text(max_size=200),
    json_values.map(json.dumps),
    st.fixed_dictionaries({"type": st.sampled_from(["set_emotion", "prompt", "subscribe", "set_idle", "get_state",
                                                    "interrupt", "reference_image", "nope"])},
                          optional={"emotion": json_values, "mixture": json_values, "intensity": json_values,
                                    "transition_ms": json_values, "text": json_values, "stream": json_values,
                                    "at_t": json_values, "v": json_values, "id": json_values}).map(json.dumps),
)


def test_fuzzed_messages_never_break_the_session(parts):  # noqa: F811
    batches = []

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(st.lists(messages, min_size=1, max_size=8))
    def collect(batch):
        batches.append(batch)

    collect()

    async def scenario():
        async with Server(parts, ws_rate_per_s=1000, ws_burst=1000) as server:
            pc, tracks, answer, _ = await connect(server)
            sid = answer["session_id"]
            runner = server.sessions[sid]
            async with server.http.ws_connect(f"{server.url}/ws?session={sid}") as ws:
                for batch in batches:
                    for text in batch:
                        await ws.send_str(text)
                        while True:  # every message is answered by a state or an error
                            msg = json.loads((await ws.receive(timeout=10)).data)
                            if msg["type"] in ("state", "error"):
                                assert msg["type"] == "state" or msg["code"] != "internal", (text, msg)
                                break
                await ws.send_json({"type": "get_state"})
                alive = json.loads((await ws.receive(timeout=10)).data)
            sent = runner.counters["frames_sent"]
            still = await more_frames_sent(runner.counters)
            await pc.close()
            return alive, sent, still, runner.failure

    alive, sent, still, failure = asyncio.run(scenario())
    assert alive["type"] in ("state", "stats", "face_state")
    assert still > sent and failure is None
