"""Sessions per client address: a budget of tokens, refused offers given back, a bounded table; on loopback,
429 with Retry-After once a client has used its burst, while cheap refusals (bad SDP) never count."""
import asyncio

import pytest

from engine.clock import FakeClock
from server_harness import Server, connect
from streaming.admission import SessionBudget, retry_after_s

pytestmark = pytest.mark.timeout(180)


def test_a_burst_then_one_token_per_interval():
    clock = FakeClock()
    b = SessionBudget(0.5, 3, now=clock.now)
    assert [b.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = b.take("a")
    assert wait == pytest.approx(2.0)  # one token every 2 s
    assert b.take("b") == 0.0  # another client has its own burst
    clock.advance(1.0)
    assert b.take("a") == pytest.approx(1.0)
    clock.advance(1.0)
    assert b.take("a") == 0.0
    assert b.take("a") > 0


def test_a_token_given_back_is_available_again_and_the_burst_is_a_ceiling():
    clock = FakeClock()
    b = SessionBudget(1.0, 2, now=clock.now)
    assert b.take("a") == 0.0 and b.take("a") == 0.0 and b.take("a") > 0
    b.give_back("a")
    assert b.take("a") == 0.0
    clock.advance(100.0)
    b.give_back("a")
    assert [b.take("a") == 0.0 for _ in range(3)] == [True, True, False]


def test_no_limit_when_disabled_and_the_table_is_bounded():
    off = SessionBudget(None, 1)
    assert all(off.take("a") == 0.0 for _ in range(100)) and len(off) == 0
    clock = FakeClock()
    b = SessionBudget(1.0, 1, now=clock.now, max_clients=10)
    for i in range(1000):
        b.take(f"10.0.{i // 256}.{i % 256}")
    assert len(b) == 10
    assert b.take("10.0.3.231") > 0  # the most recent clients are the ones remembered
    assert b.take("10.0.0.0") == 0.0  # forgotten: a fresh burst


def test_retry_after_is_whole_seconds_at_least_one():
    assert retry_after_s(0.01) == "1" and retry_after_s(1.0) == "1" and retry_after_s(1.2) == "2"


def test_a_client_over_its_budget_gets_429_and_bad_offers_do_not_count(parts):  # noqa: F811
    async def scenario():
        # 1e-6/s: no token comes back during the test, however slowly a loaded machine runs it
        async with Server(parts, client_session_rate_per_s=1e-6, client_session_burst=2, max_sessions=4) as server:
            bad = []
            for _ in range(5):  # refused for what they are: cheap, not counted
                async with server.http.post(server.url + "/offer", json={"sdp": "v=0\r\n", "type": "offer"}) as r:
                    bad.append(r.status)
            pcs, answers = [], []
            for _ in range(2):
                pc, _, answer, _ = await connect(server)
                pcs.append(pc)
                answers.append(answer)
            pc3, _, third, _ = await connect(server)
            pcs.append(pc3)
            async with server.http.post(server.url + "/offer", json={"sdp": pc3.localDescription.sdp,
                                                                     "type": "offer"}) as r:
                fourth = (r.status, r.headers.get("Retry-After"), await r.json())
            async with server.http.get(server.url + "/metrics") as r:
                metrics = await r.text()
            sessions = len(server.sessions)
            for pc in pcs:
                await pc.close()
            return bad, answers, third, fourth, metrics, sessions

    bad, answers, third, fourth, metrics, sessions = asyncio.run(scenario())
    assert bad == [400] * 5
    assert [a["status"] for a in answers] == [200, 200]
    assert third["status"] == 429 and third["error"] == "rate_limited" and "a second" in third["reason"]
    status, retry_after, body = fourth
    assert status == 429 and body["error"] == "rate_limited" and int(retry_after) >= 1
    assert sessions == 2  # nothing was allocated for the refused offers
    assert "rejected_rate_total 2" in metrics
