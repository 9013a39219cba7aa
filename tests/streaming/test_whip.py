"""WHIP in, WHEP out, with aiortc as the clients: a publisher sends its voice (and video, as OBS does) to
/whip, two viewers play the avatar from /whep, rendered once; DELETE, PATCH, OPTIONS and the refusals."""
import asyncio

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection

from server_harness import SDP, Server, WhepViewer, publish
from streaming import whip

pytestmark = pytest.mark.timeout(180)


async def until(predicate, what: str, viewers, timeout: float = 60.0):
    """Wait, frame by frame as the viewers receive them, for an outcome (a loaded machine only makes it
    slower); the timeout turns a hang into a failure."""
    async def frames_until():
        while not predicate():
            for v in viewers:
                v.progress.clear()
            waits = [asyncio.ensure_future(v.progress.wait()) for v in viewers]
            _, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for w in pending:
                w.cancel()

    try:
        await asyncio.wait_for(frames_until(), timeout)
    except asyncio.TimeoutError:
        raise AssertionError(f"not within {timeout:.0f} s: {what}") from None


def test_whip_voice_in_and_two_whep_viewers_of_one_render(parts, speech_wav):  # noqa: F811
    async def scenario():
        async with Server(parts) as server:
            pc, (status, headers, links), answer, _ = await publish(server, speech_wav)
            assert status == 201, answer
            assert headers["Content-Type"].startswith("application/sdp")
            sid = headers["Location"].rsplit("/", 1)[1]
            assert headers["Location"] == f"/whip/{sid}" and len(sid) >= 22 and headers["ETag"].startswith('"')
            rels = " ".join(links)
            assert f'</whep/{sid}>; rel="urn:emolive:whep"' in rels and f"</ws?session={sid}>" in rels
            video = answer.split("m=video", 1)[1]
            assert "a=inactive" in video  # the publisher's video is accepted and not wanted

            viewers = [await WhepViewer().play(server, sid), await WhepViewer().play(server, sid)]
            assert [v.status for v in viewers] == [201, 201]
            assert all(v.location.startswith(f"/whep/{sid}/") for v in viewers)
            assert viewers[0].location != viewers[1].location
            await until(lambda: all(v.frames["video"] >= 25 and v.frames["audio"] >= 50 for v in viewers),
                        "both viewers receive video and audio", viewers)
            await until(lambda: all(v.loudest > 0.05 for v in viewers), "the publisher's voice reaches the viewers",
                        viewers)
            runner = server.sessions[sid]
            entry = server.app[whip.WHIP][sid]
            rendered_once = (entry.hub.frames_read["video"], runner.counters["frames_sent"])

            async with server.http.delete(server.url + viewers[0].location) as r:
                first_gone = r.status
            still = viewers[1].frames["video"]
            await until(lambda: viewers[1].frames["video"] >= still + 10, "the other viewer keeps playing", viewers[1:])
            viewers_left = entry.hub.viewers
            async with server.http.delete(f"{server.url}/whip/{sid}") as r:
                ended = r.status
            await asyncio.gather(*server.app[whip.CLOSING])  # the viewers' peer connections are closed
            async with server.http.delete(f"{server.url}/whip/{sid}") as r:
                again = r.status
            left = len(server.sessions)
            for v in viewers:
                await v.close()
            await pc.close()
            return rendered_once, first_gone, viewers_left, ended, again, left

    rendered_once, first_gone, viewers_left, ended, again, left = asyncio.run(scenario())
    frames_read, frames_sent = rendered_once
    assert frames_read == frames_sent  # one reader of the session's video, however many viewers
    assert first_gone == 200 and viewers_left == 1
    assert ended == 200 and again == 404 and left == 0


def test_whip_refusals_and_the_resource_methods(parts):  # noqa: F811
    async def scenario():
        out = {}
        async with Server(parts, max_sessions=1) as server:
            h = server.http
            async with h.options(server.url + "/whip", headers={"Origin": server.url}) as r:
                out["options"] = (r.status, r.headers.get("Accept-Post"), r.headers.get("Access-Control-Allow-Origin"))
            async with h.post(server.url + "/whip", data="v=0\r\n", headers={"Content-Type": "application/json"}) as r:
                out["json"] = r.status
            async with h.post(server.url + "/whip", data="v=0\r\n", headers=SDP) as r:
                out["bad_sdp"] = (r.status, (await r.json())["error"])
            async with h.post(server.url + "/whip?emotion=", data="v=0\r\n", headers=SDP) as r:
                out["bad_query"] = r.status
            async with h.post(server.url + "/whep/nope", data="v=0\r\n", headers=SDP) as r:
                out["whep_unknown"] = r.status
            listener = RTCPeerConnection(RTCConfiguration(iceServers=[]))  # an offer that sends no voice
            listener.addTransceiver("audio", direction="recvonly")
            listener.addTransceiver("video", direction="recvonly")
            await listener.setLocalDescription(await listener.createOffer())
            async with h.post(server.url + "/whip", data=listener.localDescription.sdp, headers=SDP) as r:
                out["no_voice"] = (r.status, (await r.json())["reason"])
            await listener.close()
            pc, (status, headers, _), _, _ = await publish(server, video=False)
            sid = headers["Location"].rsplit("/", 1)[1]
            pc2, (full, full_headers, _), body, _ = await publish(server, video=False)
            out["full"] = (full, full_headers.get("Retry-After"), body)
            resource = f"{server.url}/whip/{sid}"
            async with h.patch(resource, data="a=ice-ufrag:zzzz\r\n", headers={"Content-Type": "text/plain"}) as r:
                out["patch_type"] = r.status
            frag = {"Content-Type": "application/trickle-ice-sdpfrag"}
            async with h.patch(resource, data="a=ice-ufrag:zzzz\r\na=ice-pwd:" + "p" * 22 + "\r\n", headers=frag) as r:
                out["restart"] = r.status
            async with h.patch(resource, data="a=mid:0\r\n", headers={**frag, "If-Match": '"nope"'}) as r:
                out["if_match"] = r.status
            cand = "a=mid:0\r\na=candidate:1 1 udp 2130706431 127.0.0.1 9 typ host\r\na=end-of-candidates\r\n"
            async with h.patch(resource, data=cand, headers={**frag, "If-Match": headers["ETag"]}) as r:
                out["trickle"] = r.status
            async with h.head(f"{server.url}/whep/{sid}") as r:
                out["head"] = (r.status, r.headers.get("Content-Type", ""))
            async with h.delete(f"{server.url}/whep/{sid}/nope") as r:
                out["viewer_unknown"] = r.status
            async with h.delete(resource) as r:
                out["delete"] = r.status
            await pc.close()
            await pc2.close()
            out["status"] = status
        return out

    out = asyncio.run(scenario())
    assert out["options"] == (204, "application/sdp", out["options"][2]) and out["options"][2]
    assert out["json"] == 415 and out["bad_sdp"] == (400, "bad_offer") and out["bad_query"] == 400
    assert out["no_voice"][0] == 400 and "sends no voice" in out["no_voice"][1]
    assert out["whep_unknown"] == 404 and out["status"] == 201
    full, retry_after, body = out["full"]
    assert full == 503 and int(retry_after) >= 1 and "server_full" in body
    assert out["patch_type"] == 415 and out["restart"] == 422 and out["if_match"] == 412 and out["trickle"] == 204
    assert out["head"][0] == 200 and out["head"][1].startswith("application/sdp")
    assert out["viewer_unknown"] == 404 and out["delete"] == 200


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_whip_and_whep_through_the_front():
    """As deployed (`serve --workers 2`): the front admits the WHIP offer, and the session's resources reach
    the worker that holds it."""
    from server_harness import AUTH, Front

    async def scenario():
        async with Front(workers=2, max_sessions=2) as front:
            pc, (status, headers, links), answer, _ = await publish(front, headers=AUTH)
            assert status == 201, answer
            sid = headers["Location"].rsplit("/", 1)[1]
            assert any(f"</whep/{sid}>" in link for link in links)
            async with front.http.post(front.url + "/whip", data="v=0", headers=SDP) as r:
                unauthorised = r.status
            viewer = await WhepViewer().play(front, sid, headers=AUTH)
            assert viewer.status == 201 and viewer.location.startswith(f"/whep/{sid}/")
            await until(lambda: viewer.frames["video"] >= 10, "the viewer receives the avatar through the front", [viewer])
            async with front.http.delete(front.url + viewer.location, headers=AUTH) as r:
                viewer_gone = r.status
            async with front.http.delete(f"{front.url}/whip/{sid}", headers=AUTH) as r:
                ended = r.status
            await viewer.close()
            await pc.close()
            return unauthorised, viewer_gone, ended

    unauthorised, viewer_gone, ended = asyncio.run(scenario())
    assert unauthorised == 401 and viewer_gone == 200 and ended == 200


def test_whep_viewers_draw_on_the_clients_session_budget(parts, speech_wav):  # noqa: F811
    async def scenario():
        # 1e-6/s: no token comes back during the test, however slowly a loaded machine runs it
        async with Server(parts, client_session_rate_per_s=1e-6, client_session_burst=3) as server:
            pc, (status, headers, _), _, _ = await publish(server, speech_wav)
            sid = headers["Location"].rsplit("/", 1)[1]
            viewers = [await WhepViewer().play(server, sid) for _ in range(3)]
            statuses = [v.status for v in viewers]
            for v in viewers:
                await v.close()
            await pc.close()
            return status, statuses

    status, statuses = asyncio.run(scenario())
    assert status == 201 and statuses == [201, 201, 429]  # the publisher's session took the first token


def test_whep_alone_plays_a_session_voiced_by_the_servers_own_input(parts, speech_wav):  # noqa: F811
    """POST /whep (no session): with --audio, a session voiced by the file opens for the player, others watch
    it at /whep/ID, DELETE on its Location ends it; a server whose voices come from its clients says why not."""
    async def scenario():
        out = {}
        async with Server(parts) as browser_input:
            v = await WhepViewer().play(browser_input, None)
            out["browser"] = (v.status, v.answer, len(browser_input.sessions))
            await v.close()
        async with Server(parts, audio=str(speech_wav), audio_loop=True) as server:
            first = await WhepViewer().play(server, None)
            out["first"] = (first.status, first.location, " ".join(first.links))
            sid = first.location.rsplit("/", 1)[1]
            await until(lambda: first.frames["video"] >= 25 and first.loudest > 0.05,
                        "the player gets the avatar and the server's voice", [first])
            second = await WhepViewer().play(server, sid)
            out["second"] = (second.status, second.location)
            await until(lambda: second.frames["video"] >= 10, "another player watches the same session", [second])
            out["sessions"] = len(server.sessions)
            async with server.http.delete(server.url + first.location) as r:
                out["deleted"] = r.status
            await asyncio.gather(*server.app[whip.CLOSING])
            out["left"] = len(server.sessions)
            for v in (first, second):
                await v.close()
        return out

    out = asyncio.run(scenario())
    status, answer, opened = out["browser"]
    assert status == 404 and "no_session" in answer and "--audio" in answer and opened == 0
    status, location, links = out["first"]
    assert status == 201 and location.startswith("/session/"), out["first"]
    sid = location.rsplit("/", 1)[1]
    assert f'</whep/{sid}>; rel="urn:emolive:whep"' in links and f"</ws?session={sid}>" in links
    assert out["second"][0] == 201 and out["second"][1].startswith(f"/whep/{sid}/")
    assert out["sessions"] == 1  # the second player watches the first's session, rendered once
    assert out["deleted"] == 200 and out["left"] == 0
