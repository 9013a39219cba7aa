"use strict";
// A WHEP player (draft-ietf-wish-whep): plays one session's avatar and voice in any browser, e.g. as an
// OBS browser source or on a second screen. No build step, no library: one RTCPeerConnection.
//   /static/player.html?session=ID[&token=T][&clean=1]   a session of this server
//   /static/player.html?url=WHEP_URL[&token=T]           any WHEP endpoint that allows this origin (CORS)
// The offer is sent whole (every ICE candidate in it), the answer read whole, as this server gives it.
// Leaving the page DELETEs the viewer resource, so the server frees its encoder at once.

const params = new URLSearchParams(location.search);
const TOKEN = params.get("token");
const player = { state: "idle", pc: null, resource: null, frames: 0, error: null, fps: null };
const $ = (id) => document.getElementById(id);

function endpoint() {
  if (params.get("url")) return new URL(params.get("url"), location.href).href;
  const sid = params.get("session");
  return sid ? `${location.origin}/whep/${encodeURIComponent(sid)}` : null;
}

function show(state, error) {
  player.state = state;
  player.error = error || null;
  $("state").textContent = error ? `${state}: ${error}` : state;
  $("retry").hidden = !["failed", "ended"].includes(state);
}

function headers(extra) {
  const h = Object.assign({}, extra);
  if (TOKEN) h.Authorization = `Bearer ${TOKEN}`;
  return h;
}

function iceGathered(pc, ms) {
  // The offer goes out with its candidates; a host without any gathering end still plays after `ms`.
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") { clearTimeout(t); resolve(); }
    });
  });
}

async function reason(r) {
  // The server's JSON error ({error, reason}) or the first line of another body.
  const text = await r.text();
  try { const j = JSON.parse(text); return `${r.status} ${j.error}: ${j.reason}`; } catch (e) {
    return `${r.status} ${text.split("\n")[0].slice(0, 200)}`;
  }
}

async function play() {
  const url = endpoint();
  if (!url) { show("failed", "give ?session=ID or ?url=WHEP_URL"); return; }
  await stop();
  show("connecting");
  const pc = player.pc = new RTCPeerConnection();
  pc.addTransceiver("video", { direction: "recvonly" });
  pc.addTransceiver("audio", { direction: "recvonly" });
  const stream = new MediaStream();
  pc.ontrack = (e) => { stream.addTrack(e.track); $("avatar").srcObject = stream; };
  pc.onconnectionstatechange = () => {
    if (pc !== player.pc) return;
    if (pc.connectionState === "connected") show("playing");
    else if (pc.connectionState === "failed") show("failed", "the connection was lost");
    else if (pc.connectionState === "closed") show("ended");
  };
  try {
    await pc.setLocalDescription(await pc.createOffer());
    await iceGathered(pc, 2000);
    const r = await fetch(url, { method: "POST", headers: headers({ "Content-Type": "application/sdp" }),
                                 body: pc.localDescription.sdp });
    if (r.status !== 201) { show("failed", await reason(r)); pc.close(); return; }
    const where = r.headers.get("Location");
    player.resource = where ? new URL(where, url).href : null;
    await pc.setRemoteDescription({ type: "answer", sdp: await r.text() });
  } catch (e) {
    show("failed", String(e && e.message || e));
    pc.close();
  }
}

async function stop() {
  const pc = player.pc, resource = player.resource;
  player.pc = null;
  player.resource = null;
  if (pc) pc.close();
  if (resource) {
    try { await fetch(resource, { method: "DELETE", headers: headers(), keepalive: true }); } catch (e) { /* gone */ }
  }
}

function countFrames() {
  // Every frame the browser presents (its own count, independent of the server's).
  const v = $("avatar");
  if (!v.requestVideoFrameCallback) return;
  const tick = () => { player.frames++; v.requestVideoFrameCallback(tick); };
  v.requestVideoFrameCallback(tick);
}

async function sampleStats() {
  if (!player.pc) return;
  let fps = null;
  (await player.pc.getStats()).forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "video" && s.framesPerSecond !== undefined) fps = s.framesPerSecond;
  });
  player.fps = fps;
  const v = $("avatar");
  $("stats").textContent = v.videoWidth ? `${v.videoWidth}x${v.videoHeight} ${fps === null ? "-" : fps} fps` : "";
}

async function startAudio() {
  // Browsers may refuse sound before the viewer has interacted with the page: play muted, offer Unmute.
  const v = $("avatar");
  try { await v.play(); } catch (e) {
    v.muted = true;
    $("unmute").hidden = false;
    try { await v.play(); } catch (e2) { /* no frame yet */ }
  }
}

$("unmute").onclick = () => { const v = $("avatar"); v.muted = false; v.play(); $("unmute").hidden = true; };
$("retry").onclick = play;
$("avatar").addEventListener("loadedmetadata", startAudio);
window.addEventListener("pagehide", () => {
  if (player.resource) fetch(player.resource, { method: "DELETE", headers: headers(), keepalive: true });
});
if (params.get("clean")) document.body.classList.add("clean");
countFrames();
setInterval(sampleStats, 1000);
play();
