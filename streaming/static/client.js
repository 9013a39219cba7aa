// emolive browser client: microphone -> server over WebRTC; avatar video + voice back; the control
// websocket carries commands and events (docs/reference/protocol.md). This file: Start / Stop, the session's
// events, the shown state, the WHEP link. The page's other parts: controls.js (emotions), photo.js (avatar
// from a photo), devices.js (microphone, speaker), chart.js (receive chart).
"use strict";
const $ = (id) => document.getElementById(id);
const emolive = {
  pc: null, ws: null, mic: null, sessionId: null, stats: {}, lastState: null, errors: [], input: null,
  micUsed: false, maxImageBytes: null, whepUrl: null, stopping: false,
  handlers: [],        // (msg) => void: the other parts' share of the session's events
  onSession: [],       // () => void: called once a session's control websocket is open
  micConstraints: () => ({}),  // devices.js: the chosen microphone
};
window.emolive = emolive;  // for automation (tests) and the console

// A server started with --token: open the page as /?token=TOKEN; the page sends it with the offer (Bearer)
// and on the control websocket and the WHEP link (?token=, as browsers' websockets carry no headers).
const TOKEN = new URLSearchParams(location.search).get("token");

function log(text) { $("log").textContent = text; emolive.errors.push(text); }

function send(msg) {
  if (emolive.ws && emolive.ws.readyState === WebSocket.OPEN) { emolive.ws.send(JSON.stringify(msg)); return true; }
  return false;
}

function authHeaders() { return TOKEN ? { Authorization: `Bearer ${TOKEN}` } : {}; }

function showStats() {
  const s = emolive.stats, v = $("avatar");
  if (!emolive.pc) { $("overlay").textContent = "not connected"; return; }
  const q = v.getVideoPlaybackQuality ? v.getVideoPlaybackQuality() : null;
  const fmt = (x) => (x === null || x === undefined ? "-" : (+x).toFixed(0));
  $("overlay").textContent =
    `fps ${fmt(s.fps)}  latency p50 ${fmt(s.latency_ms_p50)} p95 ${fmt(s.latency_ms_p95)} ms\n` +
    `A/V ${fmt(s.av_offset_ms)} ms  dropped ${fmt(s.frames_dropped)}  repeated ${fmt(s.frames_repeated)}\n` +
    (q ? `decoded ${q.totalVideoFrames}  lost ${q.droppedVideoFrames}` : "");
}

function showState(msg) {
  // The answer to a command leaves as its transition starts: show where the emotion is going.
  emolive.lastState = msg;
  const e = msg.emotion.target || msg.emotion;
  $("status").textContent = "emotion: " + Object.entries(e.mixture).map(([k, w]) => `${k} ${(+w).toFixed(2)}`).join(" + ") +
    ` at ${(+e.intensity).toFixed(2)}` + (e.custom ? " (from a photo)" : "");
  if (msg.avatar) $("avatarName").textContent = `avatar: ${msg.avatar.source}`;
}

function onEvent(msg) {
  if (msg.type === "stats") { emolive.stats = msg; showStats(); }
  else if (msg.type === "state") showState(msg);
  else if (msg.type === "hello") emolive.maxImageBytes = msg.max_image_bytes || null;
  else if (msg.type === "error") log(`${msg.code}: ${msg.message}`);
  else if (msg.type === "closed") {
    if (!emolive.stopping) { log("session closed: " + msg.reason); teardown("closed: " + msg.reason); }
  }
  for (const handle of emolive.handlers) handle(msg);
}

function waitIce(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    pc.addEventListener("icegatheringstatechange", () => { if (pc.iceGatheringState === "complete") resolve(); });
  });
}

async function serverInput() {
  // "browser": this page's microphone is the voice; "file" / "mic": the server has its own input.
  try { const r = await fetch("/health"); return (await r.json()).input || "browser"; } catch (e) { return "browser"; }
}

function showWhep(sid) {
  // Any WHEP player (OBS, a second browser, emolive camera) can play this session's avatar.
  emolive.whepUrl = sid ? `${location.origin}/whep/${encodeURIComponent(sid)}` +
    (TOKEN ? `?token=${encodeURIComponent(TOKEN)}` : "") : null;
  $("whepUrl").textContent = emolive.whepUrl || "";
  // The same session in a plain player page (a second screen, an OBS browser source).
  const player = $("playerLink");
  player.href = sid ? `/static/player.html?session=${encodeURIComponent(sid)}` +
    (TOKEN ? `&token=${encodeURIComponent(TOKEN)}` : "") : "";
  player.hidden = !sid;
  $("copyWhep").disabled = !sid;
  $("copied").textContent = "";
}

async function copyWhep() {
  const url = emolive.whepUrl;
  if (!url) return;
  try {
    await navigator.clipboard.writeText(url);
    $("copied").textContent = "copied";
  } catch (e) {  // no clipboard permission (or no secure context): the selected text and the copy command
    const range = document.createRange();
    range.selectNodeContents($("whepUrl"));
    getSelection().removeAllRanges();
    getSelection().addRange(range);
    $("copied").textContent = document.execCommand("copy") ? "copied" : "select the link and copy it";
  }
}

async function start() {
  $("start").disabled = true;
  emolive.stopping = false;
  $("log").textContent = "";
  try {
    emolive.input = emolive.input || await serverInput();
    const pc = new RTCPeerConnection({ iceServers: [] });
    emolive.pc = pc;
    if (emolive.input === "browser") {
      const audio = { echoCancellation: true, noiseSuppression: false, autoGainControl: false, ...emolive.micConstraints() };
      const mic = await navigator.mediaDevices.getUserMedia({ audio, video: false });
      emolive.mic = mic;
      mic.getTracks().forEach((t) => pc.addTrack(t, mic));
      emolive.micUsed = true;
    } else {
      pc.addTransceiver("audio", { direction: "recvonly" });  // no microphone asked for
    }
    pc.addTransceiver("video", { direction: "recvonly" });
    const remote = new MediaStream();
    pc.ontrack = (e) => { remote.addTrack(e.track); $("avatar").srcObject = remote; };
    pc.onconnectionstatechange = () => { $("conn").textContent = "connection: " + pc.connectionState; };
    await pc.setLocalDescription(await pc.createOffer());
    await waitIce(pc);  // the server does not trickle: send the offer with all candidates
    const resp = await fetch("/offer", { method: "POST", headers: { "Content-Type": "application/json", ...authHeaders() },
      body: JSON.stringify({ sdp: pc.localDescription.sdp, type: "offer" }) });
    const answer = await resp.json();
    if (!resp.ok) throw new Error(`${answer.error}: ${answer.reason}`);
    if (emolive.pc !== pc) return;  // stopped meanwhile
    emolive.sessionId = answer.session_id;
    $("session").textContent = `session ${answer.session_id}`;  // for emolive ctl --session ID
    showWhep(answer.session_id);
    await pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
    const proto = location.protocol === "https:" ? "wss" : "ws";
    const auth = TOKEN ? `&token=${encodeURIComponent(TOKEN)}` : "";
    const ws = new WebSocket(`${proto}://${location.host}/ws?session=${encodeURIComponent(answer.session_id)}${auth}`);
    emolive.ws = ws;
    ws.onmessage = (e) => onEvent(JSON.parse(e.data));
    ws.onopen = () => {
      send({ type: "get_state" });  // the page shows the server's state from the start
      for (const fn of emolive.onSession) fn();
    };
    ws.onclose = (e) => { if (e.code !== 1000 && !emolive.stopping) log(`control connection closed (${e.code} ${e.reason})`); };
    $("stop").disabled = false;
  } catch (err) {
    log(String(err && err.message ? err.message : err));
    teardown("failed");
  }
}

function teardown(why) {
  // The page's side of a session's end: websocket, peer connection and microphone closed, Start again possible.
  const ws = emolive.ws, pc = emolive.pc;
  emolive.ws = null; emolive.pc = null; emolive.sessionId = null;
  if (ws && ws.readyState <= WebSocket.OPEN) ws.close(1000, "stopped");
  if (pc) pc.close();
  if (emolive.mic) { emolive.mic.getTracks().forEach((t) => t.stop()); emolive.mic = null; }
  $("avatar").srcObject = null;
  $("session").textContent = "";
  $("conn").textContent = why;
  showWhep(null);
  showStats();
  $("stop").disabled = true;
  $("start").disabled = false;
}

async function stop() {
  // The server is told first (DELETE /session/ID): it ends the session at once, not when it notices the peer gone.
  const sid = emolive.sessionId;
  emolive.stopping = true;
  $("stop").disabled = true;
  if (sid) {
    try {
      const r = await fetch(`/session/${encodeURIComponent(sid)}`, { method: "DELETE", headers: authHeaders() });
      if (!r.ok && r.status !== 404) log(`stop: the server answered ${r.status}`);
    } catch (e) { log(`stop: ${e.message}`); }
  }
  teardown("stopped");
}

$("start").onclick = start;
$("stop").onclick = stop;
$("copyWhep").onclick = copyWhep;
setInterval(showStats, 500);
serverInput().then((input) => {
  emolive.input = input;
  if (input !== "browser") $("start").textContent = `Start (voice: server ${input})`;
});
emolive.start = start;
emolive.stop = stop;
emolive.send = send;
emolive.log = log;
