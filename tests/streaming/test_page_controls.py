"""The page's controls in a real headless Chromium (fake microphone), each checked against what the server saw
or sent: Start / Stop, the devices, the emotion mixture and intensity, the receive chart, the WHEP link and
the avatar from a photo. One browser and one server for the module; each test starts a session if none runs."""
import asyncio
import json
import shutil
import urllib.error
import urllib.request
from urllib.parse import urlparse

import numpy as np
import pytest

from streaming.server import SESSIONS
from server_harness import ThreadedServer, chromium, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240),
              pytest.mark.skipif(not shutil.which("chromedriver"), reason="needs Debian chromium-driver")]

# The avatar video, drawn to a 64x64 canvas, as grey levels.
GREY_JS = """
const v = document.getElementById('avatar');
if (!v.videoWidth) return null;
const c = document.createElement('canvas'); c.width = 64; c.height = 64;
const g = c.getContext('2d', {willReadFrequently: true}); g.drawImage(v, 0, 0, 64, 64);
const d = g.getImageData(0, 0, 64, 64).data, out = [];
for (let i = 0; i < d.length; i += 4) out.push((d[i] + 2 * d[i + 1] + d[i + 2]) >> 2);
return out;
"""


@pytest.fixture(scope="module")
def page(parts, speech_wav):  # noqa: F811
    with ThreadedServer(parts) as server:
        driver = chromium(speech_wav)
        try:
            driver.get(server.url)
            wait_for(lambda: driver.execute_script("return emolive.input") == "browser")
            yield server, driver
        finally:
            driver.quit()


def js(driver, script, *args):
    return driver.execute_script(script, *args)


def text(driver, element_id):
    return js(driver, "return document.getElementById(arguments[0]).textContent", element_id)


def click(driver, element_id):
    js(driver, "document.getElementById(arguments[0]).click()", element_id)


def health(server):
    with urllib.request.urlopen(server.url + "health", timeout=10) as r:
        return json.loads(r.read())


def head_status(url):
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def connected(driver):
    return js(driver, "return !!(emolive.ws && emolive.ws.readyState === 1 && emolive.lastState && "
                      "emolive.pc && emolive.pc.connectionState === 'connected')")


@pytest.fixture
def session(page):
    """The page's running session (started with the Start button when none runs): (sid, its runner)."""
    server, driver = page
    if not js(driver, "return emolive.sessionId"):
        click(driver, "start")
    wait_for(lambda: connected(driver), timeout=60)
    sid = js(driver, "return emolive.sessionId")
    return sid, server.call(lambda: server.app[SESSIONS][sid])


def frames_sent(server, runner):
    return server.call(lambda: runner.counters["frames_sent"])


def test_start_shows_the_server_state_and_lists_the_fake_devices(page, session):
    server, driver = page
    sid, runner = session
    assert text(driver, "session") == f"session {sid}"
    target = server.call(lambda: runner.emotion.describe()["target"])
    assert text(driver, "status").startswith("emotion: " + " + ".join(f"{k} {w:.2f}" for k, w in target["mixture"].items()))
    assert text(driver, "avatarName") == "avatar: default"
    # Chromium's fake devices, named once the microphone is allowed (after Start).
    wait_for(lambda: any("Fake" in o for o in js(driver, "return [...document.querySelectorAll('#mic option')]"
                                                         ".map((o) => o.textContent)")))
    mics = js(driver, "return [...document.querySelectorAll('#mic option')].map((o) => o.value)")
    speakers = js(driver, "return [...document.querySelectorAll('#speaker option')].map((o) => o.value)")
    assert len(mics) >= 2 and all(mics) and len(speakers) >= 2 and all(speakers), (mics, speakers)
    # The chosen speaker plays the avatar's voice (setSinkId), and nothing says it is unsupported.
    js(driver, "const s = document.getElementById('speaker'); s.value = arguments[0];"
               "s.dispatchEvent(new Event('change'))", speakers[-1])
    wait_for(lambda: js(driver, "return document.getElementById('avatar').sinkId") == speakers[-1])
    assert text(driver, "deviceNote") == ""


def test_mixture_and_intensity_reach_the_session(page, session):
    server, driver = page
    _, runner = session

    def target():
        t = server.call(lambda: runner.emotion.describe()["target"])
        return {k: round(w, 3) for k, w in t["mixture"].items()}, round(t["intensity"], 3)

    js(driver, "const set = (id, v) => { const e = document.getElementById(id); e.value = v;"
               "  e.dispatchEvent(new Event('input')); };"
               "set('mixA', 'sad'); set('mixB', 'surprised'); set('mixW', '0.4'); set('intensity', '0.6');"
               "document.getElementById('mixApply').click();")
    wait_for(lambda: target() == ({"sad": 0.6, "surprised": 0.4}, 0.6))
    wait_for(lambda: text(driver, "status") == "emotion: sad 0.60 + surprised 0.40 at 0.60")
    # The intensity slider re-sends the mixture at its new value.
    js(driver, "const e = document.getElementById('intensity'); e.value = '0.25';"
               "e.dispatchEvent(new Event('input')); e.dispatchEvent(new Event('change'))")
    wait_for(lambda: target() == ({"sad": 0.6, "surprised": 0.4}, 0.25))
    wait_for(lambda: text(driver, "status") == "emotion: sad 0.60 + surprised 0.40 at 0.25")
    # Moving the share slider sends the new mixture by itself.
    js(driver, "const e = document.getElementById('mixW'); e.value = '1';"
               "e.dispatchEvent(new Event('input')); e.dispatchEvent(new Event('change'))")
    wait_for(lambda: target() == ({"surprised": 1.0}, 0.25))
    wait_for(lambda: text(driver, "status") == "emotion: surprised 1.00 at 0.25")
    assert not js(driver, "return emolive.errors")


def test_the_chart_draws_the_received_frames(page, session):
    server, driver = page
    _, runner = session
    wait_for(lambda: (js(driver, "return emolive.received && emolive.received.fps") or 0) > 0, timeout=30)
    shown = text(driver, "chartText")
    print("chart:", shown)
    assert float(shown.split()[1]) > 0, shown
    assert frames_sent(server, runner) > 0
    # The fps line (green) is drawn on the canvas once there are two samples to join.
    wait_for(lambda: js(driver, """
        const c = document.getElementById('chart'), d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 0; i < d.length; i += 4) if (d[i + 3] > 0 && d[i + 1] > 150 && d[i] < 140 && d[i + 2] < 140) n++;
        return n;""") > 10)


async def _play(url):
    """A WHEP viewer: a receive-only offer POSTed to the link; (status, Location)."""
    import aiohttp
    from aiortc import RTCConfiguration, RTCPeerConnection

    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        pc.addTransceiver("audio", direction="recvonly")
        pc.addTransceiver("video", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        async with aiohttp.ClientSession() as http:
            async with http.post(url, data=pc.localDescription.sdp, headers={"Content-Type": "application/sdp"}) as r:
                status, location, answer = r.status, r.headers.get("Location"), await r.text()
            if status == 201:
                assert answer.startswith("v=0")
                async with http.delete(urlparse(url)._replace(path=location).geturl()) as r:
                    assert r.status == 200
        return status, location
    finally:
        await pc.close()


def test_the_whep_link_plays_the_session(page, session):
    server, driver = page
    sid, runner = session
    origin = server.url.rstrip("/")
    driver.execute_cdp_cmd("Browser.grantPermissions", {"origin": origin,
                                                        "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]})
    click(driver, "copyWhep")
    wait_for(lambda: text(driver, "copied") == "copied")
    link = text(driver, "whepUrl")
    assert link == f"{origin}/whep/{sid}" and urlparse(link).path == f"/whep/{sid}"
    clipboard = driver.execute_async_script("navigator.clipboard.readText().then(arguments[0], "
                                            "(e) => arguments[0]('unreadable: ' + e))")
    assert clipboard == link
    assert head_status(link) == 200
    status, location = asyncio.run(_play(link))
    assert status == 201 and location.startswith(f"/whep/{sid}/"), (status, location)
    assert not server.call(lambda: runner.closing)


def test_an_uploaded_photo_becomes_the_avatar_and_bad_ones_are_refused(page, session, shared, tmp_path):
    server, driver = page
    sid, runner = session
    portrait = shared / "data" / "portraits" / "grid_lbax4n.png"
    before = np.array(wait_for(lambda: js(driver, GREY_JS)), np.float32)
    driver.find_element("id", "photo").send_keys(str(portrait))
    wait_for(lambda: text(driver, "avatarStatus").startswith("avatar made from grid_lbax4n.png"), timeout=60)
    info = server.call(lambda: runner.avatar_info)
    assert info["source"] == "grid_lbax4n.png" and info["faces_found"] == 1
    assert text(driver, "avatarName") == "avatar: grid_lbax4n.png"
    # The frames the browser decodes now show the other face (the astronaut before, a man on blue after).
    wait_for(lambda: np.abs(np.array(js(driver, GREY_JS), np.float32) - before).mean() > 20, timeout=30)
    after = np.array(js(driver, GREY_JS), np.float32)

    # Not an image, then an image without a face: the command line's messages, the avatar kept, the stream on.
    notes = tmp_path / "notes.txt"
    notes.write_text("this is not a photo\n")
    blank = tmp_path / "blank.png"
    from PIL import Image

    Image.new("RGB", (240, 240), (128, 128, 128)).save(blank)
    for path, message in ((notes, "bad_image: not an image (unrecognised format): notes.txt"),
                          (blank, "bad_image: no face found in the photo")):
        sent = frames_sent(server, runner)
        driver.find_element("id", "photo").send_keys(str(path))
        wait_for(lambda: text(driver, "avatarStatus") == message, timeout=60)
        assert server.call(lambda: runner.avatar_info["source"]) == "grid_lbax4n.png"
        wait_for(lambda: frames_sent(server, runner) > sent + 25)
    assert js(driver, "return emolive.sessionId") == sid and connected(driver)
    assert np.abs(np.array(js(driver, GREY_JS), np.float32) - after).mean() < 20  # still the uploaded face


def test_stop_ends_the_session_and_start_opens_a_new_one_with_the_chosen_microphone(page, session):
    server, driver = page
    sid, _ = session
    click(driver, "stop")
    wait_for(lambda: health(server)["sessions"] == 0)
    assert js(driver, "return [emolive.sessionId, emolive.pc, emolive.ws]") == [None, None, None]
    assert head_status(f"{server.url}whep/{sid}") == 404
    assert text(driver, "whepUrl") == "" and not js(driver, "return document.getElementById('start').disabled")
    # Another microphone for the next session.
    mics = js(driver, "return [...document.querySelectorAll('#mic option')].map((o) => o.value)")
    chosen = mics[-1]
    js(driver, "document.getElementById('mic').value = arguments[0]", chosen)
    click(driver, "start")
    wait_for(lambda: connected(driver), timeout=60)
    new = js(driver, "return emolive.sessionId")
    assert new and new != sid and health(server)["sessions"] == 1
    assert js(driver, "return emolive.mic.getAudioTracks()[0].getSettings().deviceId") == chosen
    assert text(driver, "whepUrl").endswith(f"/whep/{new}")


def test_the_page_through_the_front_with_a_token(speech_wav, shared):  # noqa: F811
    """serve --workers N --token T: the photo travels over the relayed control websocket to the session's
    worker, the WHEP link (with the token) plays the session through the front, Stop ends it there."""
    from server_harness import ThreadedFront

    with ThreadedFront(workers=1, token="page-token", render_budget_s=0.06, jitter_s=0.04) as front:
        driver = chromium(speech_wav)
        try:
            driver.get(front.url + "?token=page-token")
            click(driver, "start")
            wait_for(lambda: connected(driver), timeout=60)
            sid = js(driver, "return emolive.sessionId")
            before = np.array(wait_for(lambda: js(driver, GREY_JS)), np.float32)
            driver.find_element("id", "photo").send_keys(str(shared / "data" / "portraits" / "grid_lbax4n.png"))
            wait_for(lambda: text(driver, "avatarStatus").startswith("avatar made from grid_lbax4n.png"), timeout=60)
            wait_for(lambda: np.abs(np.array(js(driver, GREY_JS), np.float32) - before).mean() > 20, timeout=30)
            link = text(driver, "whepUrl")
            assert link == f"{front.url}whep/{sid}?token=page-token"
            assert head_status(link) == 200
            status, location = asyncio.run(_play(link))
            assert status == 201 and location.startswith(f"/whep/{sid}/"), (status, location)
            click(driver, "stop")
            wait_for(lambda: health(front)["sessions"] == 0)
            assert head_status(link) == 404
            errors = js(driver, "return emolive.errors")
        finally:
            driver.quit()
    assert not errors
