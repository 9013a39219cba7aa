// The receive chart: twice a second, RTCPeerConnection.getStats() of the avatar's video gives the frames per
// second received (framesPerSecond, else the framesDecoded delta), the jitter-buffer delay (the delta of
// jitterBufferDelay over jitterBufferEmittedCount) and the round-trip time of the selected candidate pair;
// the last minute of them is drawn on a <canvas>, the newest figures written under it.
"use strict";
(function () {
  const PERIOD_MS = 500, KEEP = 120;
  const LINES = { fps: "#4c4", jitterBufferMs: "#59f", rttMs: "#f93" };
  let samples = [], prev = null, pcSeen = null;

  function measure(report, last) {
    let video = null, pair = null, transport = null;
    report.forEach((s) => {
      if (s.type === "inbound-rtp" && s.kind === "video") video = s;
      else if (s.type === "transport") transport = s;
    });
    if (transport && transport.selectedCandidatePairId) pair = report.get(transport.selectedCandidatePairId);
    if (!pair) report.forEach((s) => { if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded") pair = s; });
    if (!video) return null;
    const out = { t: video.timestamp, decoded: video.framesDecoded || 0, jbDelay: video.jitterBufferDelay || 0,
      jbCount: video.jitterBufferEmittedCount || 0, fps: null, jitterBufferMs: null, rttMs: null };
    if (last) {
      const dt = (out.t - last.t) / 1000, dn = out.jbCount - last.jbCount;
      if (dt > 0) out.fps = video.framesPerSecond !== undefined ? video.framesPerSecond : (out.decoded - last.decoded) / dt;
      if (dn > 0) out.jitterBufferMs = 1000 * (out.jbDelay - last.jbDelay) / dn;
    }
    if (pair && pair.currentRoundTripTime !== undefined) out.rttMs = 1000 * pair.currentRoundTripTime;
    return out;
  }

  function draw() {
    const c = $("chart"), g = c.getContext("2d"), w = c.width, h = c.height;
    g.clearRect(0, 0, w, h);
    g.strokeStyle = "#2a2a2a";
    g.lineWidth = 1;
    for (let i = 1; i < 4; i++) { g.beginPath(); g.moveTo(0, (h * i) / 4 + 0.5); g.lineTo(w, (h * i) / 4 + 0.5); g.stroke(); }
    // fps on 0..30 (or its own maximum); the two delays share 0..100 ms (or their maximum).
    const top = (keys, floor) => Math.max(floor, ...samples.flatMap((s) => keys.map((k) => s[k] || 0)));
    const scales = { fps: top(["fps"], 30), jitterBufferMs: top(["jitterBufferMs", "rttMs"], 100) };
    scales.rttMs = scales.jitterBufferMs;
    for (const [key, colour] of Object.entries(LINES)) {
      g.strokeStyle = colour;
      g.lineWidth = 2;
      g.beginPath();
      let on = false;
      samples.forEach((s, i) => {
        if (s[key] === null || s[key] === undefined) { on = false; return; }
        const x = (w * (KEEP - samples.length + i)) / (KEEP - 1), y = h - 2 - ((h - 4) * s[key]) / scales[key];
        if (on) g.lineTo(x, y); else g.moveTo(x, y);
        on = true;
      });
      g.stroke();
    }
    const last = samples[samples.length - 1] || {};
    const fmt = (x, d) => (x === null || x === undefined ? "-" : x.toFixed(d));
    $("chartText").textContent = `fps ${fmt(last.fps, 1)}  jitter buffer ${fmt(last.jitterBufferMs, 0)} ms  ` +
      `RTT ${fmt(last.rttMs, 1)} ms  (scale: ${scales.fps.toFixed(0)} fps, ${scales.jitterBufferMs.toFixed(0)} ms)`;
    emolive.received = last;
  }

  async function tick() {
    const pc = emolive.pc;
    if (pc !== pcSeen) { pcSeen = pc; prev = null; if (pc) samples = []; }  // a new session: a new chart
    if (!pc) return;
    try {
      const now = measure(await pc.getStats(), prev);
      if (!now) return;
      if (prev) { samples.push(now); if (samples.length > KEEP) samples.shift(); draw(); }
      prev = now;
    } catch (e) { /* the connection closed under the call: the next tick sees it */ }
  }

  const legend = document.createElement("div");
  legend.className = "note";
  legend.innerHTML = Object.entries({ fps: "received fps", jitterBufferMs: "jitter-buffer delay", rttMs: "round-trip time" })
    .map(([k, label]) => `<span style="color:${LINES[k]}">&#9632;</span> ${label}`).join("  ");
  $("chartText").after(legend);
  setInterval(tick, PERIOD_MS);
})();
