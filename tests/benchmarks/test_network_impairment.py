"""Bad networks between a real aiortc client and the server: loss, jitter, an outage, a vanished peer.

The impairment (benchmarks/netsim.py) wraps the client peer's sockets, both directions; the scenarios and
the receiver's measurements (frame ids in the pixels, audio marks in the voice) are the network bench's
(benchmarks/bench_network.py), here with the test engine parts and short windows. Every assertion is on
what the receiver or the server measured; waits are on frames and state changes, with deadlines only as
failure timeouts.
"""
import asyncio
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from bench_network import SCENARIOS, run_scenario, until  # noqa: E402
from netsim import Direction, Profile  # noqa: E402
from server_harness import Server, connect
from virtual_time import run as run_virtual  # noqa: E402

pytestmark = pytest.mark.timeout(240)

FPS = 25
WINDOW = 100  # live video frames measured per scenario: 4 s of video, 10 audio marks
AV_LIMIT_MS = 40.0


# -- the impairment itself ----------------------------------------------------------------------------------

def _through(profile, n, seed=0, max_queue=256, between=None):
    """Push datagrams 0..n-1 through a Direction; (delivered in order of delivery, the direction)."""
    async def go():
        got = []
        d = Direction(got.append, profile, seed=seed, max_queue=max_queue)
        for i in range(n):
            d.push(i)
            if between is not None:
                between(d, i)
        await until(lambda: d.queued == 0, 10, "held datagrams", step=0.005)
        return got, d
    return asyncio.run(go())


def test_seeded_loss_repeats_and_keeps_its_rate():
    a, da = _through(Profile(loss=0.1), 5000, seed=7)
    b, _ = _through(Profile(loss=0.1), 5000, seed=7)
    c, _ = _through(Profile(loss=0.1), 5000, seed=8)
    assert a == b and a != c  # the seed fixes which datagrams go
    assert abs(da.counters["lost"] / 5000 - 0.1) < 0.02  # 5 standard deviations
    assert a == sorted(a) and da.counters["passed"] == len(a)  # no delay: order kept


def test_jitter_reorders_but_loses_and_duplicates_nothing():
    got, d = _through(Profile(delay_s=0.005, jitter_s=0.02), 200, seed=1)  # 200: within the queue's bound
    assert sorted(got) == list(range(200))
    assert got != list(range(200))  # independent delays reorder datagrams sent close together
    assert d.counters["delayed"] == 200 and d.counters["lost"] == d.counters["overflow"] == 0
    clean, _ = _through(Profile(), 200)
    assert clean == list(range(200))


def test_held_datagrams_are_bounded():
    peak = []
    got, d = _through(Profile(delay_s=0.05), 100, max_queue=10, between=lambda d, i: peak.append(d.queued))
    assert max(peak) == 10 and d.counters["overflow"] == 90 and got == list(range(10))


def test_an_outage_drops_what_is_held_and_what_comes():
    """On virtual time (tests/virtual_time.py): the outage's end is exact, whatever the machine's load."""
    async def go(loop):
        got = []
        d = Direction(got.append, Profile(delay_s=0.05))
        for i in range(5):
            d.push(i)
        d.down(None)  # for ever: until up()
        for i in range(5, 10):
            d.push(i)
        assert d.queued == 0 and d.counters["outage"] == 10 and d.is_down()
        d.up()
        d.down(0.05)
        assert d.is_down()
        await asyncio.sleep(0.06)  # virtual time: exactly past the outage's end
        d.push(10)
        await until(lambda: d.queued == 0, 10, "the last datagram")
        return got, d
    got, d = run_virtual(go)
    assert got == [10] and not d.is_down()


# -- one session through a bad network -------------------------------------------------------------------------

def _run(parts, speech_wav, name, **settings):  # noqa: F811 - fixtures passed on
    async def go():
        async with Server(parts, **settings) as server:
            r = await run_scenario(server.http, server.url, server.sessions, SCENARIOS[name], str(speech_wav),
                                   frames=WINDOW, fps=FPS, connect_timeout=60, cleanup_timeout=60)
            return r, dict(server.sessions)
    result, left = asyncio.run(go())
    print(name, result)
    assert left == {}  # the client's close (or the timeout) ended the session
    return result


def _check_stream(r, min_received):
    """Video resumed and advanced in the timeline's order, in sync with the voice, in the same session."""
    v, a, av = r["video"], r["audio"], r["av_offset_ms"]["at_arrival"]
    assert r["same_session"], "the session must carry on without a new offer"
    # (a frame the server repeated because its render was late carries the same id twice)
    assert v["live"] == WINDOW and v["ids_in_order"] and v["last_id"] - v["first_id"] >= WINDOW // 2, v
    # of the frames the server sent in the window, the share the receiver decoded (NACK repairs video loss)
    assert v["received_share"] >= min_received, v
    # lips and voice arrive together: the frame showing timeline position P and the audio mark at P
    assert av is not None and av["n"] >= 2, r["av_offset_ms"]
    assert abs(av["p50"]) <= AV_LIMIT_MS, av
    assert a["frames"] >= 0.5 * WINDOW * 2, a  # 20 ms audio frames kept coming (2 per video frame)


def test_clean_link(parts, speech_wav):  # noqa: F811
    r = _run(parts, speech_wav, "clean")
    _check_stream(r, min_received=0.95)
    assert r["link"]["sent"]["lost"] == r["link"]["received"]["lost"] == 0


@pytest.mark.slow
@pytest.mark.parametrize("name", ["loss5", "loss10"])
def test_random_loss(parts, speech_wav, name):  # noqa: F811
    r = _run(parts, speech_wav, name)
    _check_stream(r, min_received=0.8)
    assert r["link"]["sent"]["lost"] > 0 and r["link"]["received"]["lost"] > 0
    # lost voice packets were given up by the receiver's buffer (a player conceals them), not waited for
    assert r["audio"]["concealed"]["lost"] > 0


@pytest.mark.slow
def test_jitter(parts, speech_wav):  # noqa: F811
    r = _run(parts, speech_wav, "jitter30")
    _check_stream(r, min_received=0.9)
    assert r["link"]["received"]["delayed"] > WINDOW


@pytest.mark.slow
def test_outage_recovers_in_the_same_session(parts, speech_wav):  # noqa: F811
    r = _run(parts, speech_wav, "outage2s")
    assert r["link"]["received"]["outage"] > 0 and r["link"]["sent"]["outage"] > 0
    _check_stream(r, min_received=0.8)
    # video went on with the present, not the frames the outage held up: the first live frame after the
    # link came back shows the timeline (nearly) 2 s past the last one before the outage
    assert r["recovery"]["video_s"] is not None and r["recovery"]["audio_s"] is not None
    assert r["video"]["first_id"] >= r["last_id_before"] + 0.8 * 2 * FPS, r["video"]


@pytest.mark.slow
def test_a_vanished_peer_is_closed_after_peer_timeout(parts, speech_wav):  # noqa: F811
    r = _run(parts, speech_wav, "gone", peer_timeout_s=2.0)
    assert r["session_gone"]
    assert r["reason"] == ["peer gone (nothing received for 2 s)"]  # not ICE consent's ~30 s


@pytest.mark.slow
def test_a_quiet_but_present_peer_is_kept(parts):  # noqa: F811
    """A viewer that sends no voice still answers (RTCP receiver reports, consent checks): not closed."""
    async def go():
        async with Server(parts, peer_timeout_s=3.0) as server:
            pc, tracks, answer, _ = await connect(server)
            runner = server.sessions[answer["session_id"]]
            await until(lambda: "video" in tracks, 60, "the video track")
            for _ in range(5 * FPS):  # 5 s of video: longer than the timeout
                await asyncio.wait_for(tracks["video"].recv(), 30)
            closed = runner.closed.is_set()
            await pc.close()
            return closed
    assert asyncio.run(go()) is False
