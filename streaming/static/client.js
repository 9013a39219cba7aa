// emolive browser client: microphone -> server over WebRTC; avatar video + voice back;
// emotion commands and live stats over the control websocket (docs/reference/protocol.md).
"use strict";
const EMOTIONS = ["neutral", "happy", "sad", "angry", "surprised", "fear", "disgusted", "contempt"];
const $ = (id) => document.getElementById(id);
const emolive = { pc: null, ws: null, sessionId: null, stats: {}, lastState: null, errors: [], input: null, micUsed: false };
window.emolive = emolive;  // for automation (tests) and the console

// A server started with --token: open the page as /?token=TOKEN; the page sends it with the offer (Bearer)
// and on the control websocket (?token=, as browsers' websockets carry no headers).
const TOKEN = new URLSearchParams(location.search).get("token");

function log(text) { $("log").textContent = text; emolive.errors.push(text); }

function send(msg) {
  if (emolive.ws && emolive.ws.readyState === WebSocket.OPEN) emolive.ws.send(JSON.stringify(msg));
}

function setEmotion(name) {
  send({ type: "set_emotion", emotion: name, intensity: parseFloat($("intensity").value), transition_ms: 250 });
  for (const b of document.querySelectorAll("#emotions button")) b.classList.toggle("on", b.dataset.emotion === name);
}

function showStats() {
  const s = emolive.stats, v = $("avatar");
  const q = v.getVideoPlaybackQuality ? v.getVideoPlaybackQuality() : null;
  const fmt = (x) => (x === null || x === undefined ? "-" : (+x).toFixed(0));
  $("overlay").textContent =
    `fps ${fmt(s.fps)}  latency p50 ${fmt(s.latency_ms_p50)} p95 ${fmt(s.latency_ms_p95)} ms\n` +
    `A/V ${fmt(s.av_offset_ms)} ms  dropped ${fmt(s.frames_dropped)}  repeated ${fmt(s.frames_repeated)}\n` +
    (q ? `decoded ${q.totalVideoFrames}  lost ${q.droppedVideoFrames}` : "");
}

function onEvent(msg) {
  if (msg.type === "stats") { emolive.stats = msg; showStats(); }
  else if (msg.type === "state") {
    // The answer to a command leaves as its transition starts: show where the emotion is going.
    emolive.lastState = msg;
    const e = msg.emotion.target || msg.emotion;
    $("status").textContent = "emotion: " + Object.entries(e.mixture).map(([k, w]) => `${k} ${(+w).toFixed(2)}`).join(" + ") +
      ` at ${(+e.intensity).toFixed(2)}` + (e.custom ? " (from a photo)" : "");
  }
  else if (msg.type === "error") log(`${msg.code}: ${msg.message}`);
  else if (msg.type === "closed") log("session closed: " + msg.reason);
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

async function start() {
  $("start").disabled = true;
  try {
    emolive.input = emolive.input || await serverInput();
    const pc = new RTCPeerConnection({ iceServers: [] });
    emolive.pc = pc;
    if (emolive.input === "browser") {
      const mic = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: true, noiseSuppression: false, autoGainControl: false }, video: false });
      mic.getTracks().forEach((t) => pc.addTrack(t, mic));
      emolive.micUsed = true;
    } else {
      pc.addTransceiver("audio", { direction: "recvonly" });  // no microphone asked for
    }
    pc.addTransceiver("video", { direction: "recvonly" });
    const remote = new MediaStream();
    pc.ontrack = (e) => { remote.addTrack(e.track); $("avatar").srcObject = remote; };
    pc.onconnectionstatechange = () => { $("status").textContent = "connection: " + pc.connectionState; };
    await pc.setLocalDescription(await pc.createOffer());
    await waitIce(pc);  // the server does not trickle: send the offer with all candidates
    const headers = { "Content-Type": "application/json" };
    if (TOKEN) headers.Authorization = `Bearer ${TOKEN}`;
    const resp = await fetch("/offer", { method: "POST", headers,
      body: JSON.stringify({ sdp: pc.localDescription.sdp, type: "offer" }) });
    const answer = await resp.json();
    if (!resp.ok) throw new Error(`${answer.error}: ${answer.reason}`);
    emolive.sessionId = answer.session_id;
    $("session").textContent = `session ${answer.session_id}`;  // for emolive ctl --session ID
    await pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
    const proto = location.protocol === "https:" ? "wss" : "ws";
    const auth = TOKEN ? `&token=${encodeURIComponent(TOKEN)}` : "";
    const ws = new WebSocket(`${proto}://${location.host}/ws?session=${encodeURIComponent(answer.session_id)}${auth}`);
    emolive.ws = ws;
    ws.onmessage = (e) => onEvent(JSON.parse(e.data));
    ws.onclose = (e) => { if (e.code !== 1000) log(`control connection closed (${e.code} ${e.reason})`); };
    setInterval(showStats, 500);
  } catch (err) {
    log(String(err && err.message ? err.message : err));
    $("start").disabled = false;
  }
}

for (const name of EMOTIONS) {
  const b = document.createElement("button");
  b.textContent = name; b.dataset.emotion = name;
  b.onclick = () => setEmotion(name);
  $("emotions").appendChild(b);
}
$("intensity").oninput = () => { $("ival").textContent = $("intensity").value; };
$("intensity").onchange = () => { const on = document.querySelector("#emotions button.on"); if (on) setEmotion(on.dataset.emotion); };
$("promptForm").onsubmit = (e) => { e.preventDefault(); send({ type: "prompt", text: $("prompt").value, transition_ms: 400 }); };
$("interrupt").onclick = () => send({ type: "interrupt" });
$("start").onclick = start;
serverInput().then((input) => {
  emolive.input = input;
  if (input !== "browser") $("start").textContent = `Start (voice: server ${input})`;
});
emolive.start = start;
emolive.send = send;
