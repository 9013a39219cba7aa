// emolive bench, receiver side (loaded into the client page by profiler/browser.py; the normal
// client never loads it). Records, on the page's clock (performance.now, ms):
// * each presented video frame (requestVideoFrameCallback): its display and presentation times,
//   receive time, RTP timestamp, and the frame id stamped into its top-left luma blocks by the server
//   (streaming/frame_marks.py: 20 blocks of 16x16 px, white, black, 16 id bits, 2 check bits);
// * the received audio through WebAudio (an AudioWorklet, or a ScriptProcessor where the worklet
//   cannot load), in blocks tagged with their context frame, and getOutputTimestamp() pairs that map
//   context time to the time the audio leaves the output device;
// * getSynchronizationSources() of both receivers (a cross-check of the audio playout) and getStats()
//   inbound-rtp counters, once a second.
// Everything is held in bounded buffers that take() drains.
"use strict";
(() => {
  const BLOCK = 16, BITS = 16, NBLOCKS = 2 + BITS + 2, WIDTH = BLOCK * NBLOCKS;
  const MAX_ROWS = 20000, MAX_AUDIO_BLOCKS = 2000;  // ~13 min of video, ~170 s of audio between take()s
  const bench = { video: [], audio: [], ots: [], ssrc: [], stats: [], errors: [], info: {}, dropped: 0 };
  window.emoliveBench = bench;

  function push(list, row, cap) {
    if (list.length >= cap) { list.shift(); bench.dropped++; }
    list.push(row);
  }

  function readId(ctx) {
    // luma (BT.601, limited range as the decoder wrote it) of the centre of each block
    const rgba = ctx.getImageData(0, 0, WIDTH, BLOCK).data, c = BLOCK / 4, means = [];
    for (let b = 0; b < NBLOCKS; b++) {
      let sum = 0;
      for (let y = c; y < BLOCK - c; y++) {
        for (let x = b * BLOCK + c; x < (b + 1) * BLOCK - c; x++) {
          const i = 4 * (y * WIDTH + x);
          sum += 16 + (65.481 * rgba[i] + 128.553 * rgba[i + 1] + 24.966 * rgba[i + 2]) / 255;
        }
      }
      means.push(sum / ((BLOCK - 2 * c) * (BLOCK - 2 * c)));
    }
    const hi = means[0], lo = means[1];
    if (hi - lo < 60) return -1;
    const bits = means.map((m) => (m > (hi + lo) / 2 ? 1 : 0));
    let id = 0, ones = 0;
    for (let i = 0; i < BITS; i++) { id += bits[2 + i] << i; ones += bits[2 + i]; }
    const check = bits[2 + BITS] | (bits[3 + BITS] << 1);
    return check === ones % 4 ? id : -1;
  }

  function watchVideo(v) {
    const canvas = document.createElement("canvas");
    canvas.width = WIDTH; canvas.height = BLOCK;
    const ctx = canvas.getContext("2d", { willReadFrequently: true });
    const onFrame = (now, meta) => {
      ctx.drawImage(v, 0, 0, WIDTH, BLOCK, 0, 0, WIDTH, BLOCK);  // source rect in the video's own pixels
      push(bench.video, [now, meta.expectedDisplayTime, meta.presentationTime, meta.receiveTime ?? null,
        meta.rtpTimestamp ?? null, meta.presentedFrames, readId(ctx)], MAX_ROWS);
      v.requestVideoFrameCallback(onFrame);
    };
    v.requestVideoFrameCallback(onFrame);
  }

  async function watchAudio(track) {
    const ctx = new AudioContext({ sampleRate: 48000, latencyHint: "interactive" });
    bench.audioContext = ctx;
    const src = ctx.createMediaStreamSource(new MediaStream([track]));
    const mute = ctx.createGain();  // the page's <video> plays the voice; this path only listens
    mute.gain.value = 0;
    mute.connect(ctx.destination);
    const keep = (frame, data) => {
      const s16 = new Int16Array(data.length);
      for (let i = 0; i < data.length; i++) s16[i] = Math.max(-32768, Math.min(32767, Math.round(data[i] * 32767)));
      push(bench.audio, [frame, s16], MAX_AUDIO_BLOCKS);
    };
    try {
      await ctx.audioWorklet.addModule("/static/bench.worklet.js");
      const node = new AudioWorkletNode(ctx, "emolive-capture", { numberOfInputs: 1, numberOfOutputs: 1,
        channelCount: 1, channelCountMode: "explicit" });
      node.port.onmessage = (e) => keep(e.data.frame, e.data.data);
      src.connect(node); node.connect(mute);
      bench.info.capture = "audioworklet";
    } catch (err) {
      // ScriptProcessor: its input block is the one rendered just before playbackTime - its length,
      // a guess good to one block (bufferSize / sampleRate); the JSON says which one ran.
      bench.errors.push("audioworklet: " + err);
      const sp = ctx.createScriptProcessor(1024, 1, 1);
      sp.onaudioprocess = (e) => keep(Math.round(e.playbackTime * ctx.sampleRate) - 1024,
        e.inputBuffer.getChannelData(0).slice());
      src.connect(sp); sp.connect(mute);
      bench.info.capture = "scriptprocessor";
    }
    await ctx.resume();
    bench.info.sampleRate = ctx.sampleRate;
    bench.info.timeOrigin = performance.timeOrigin;  // getSynchronizationSources' times are epoch ms
    bench.info.baseLatency = ctx.baseLatency;
    setInterval(() => {
      const ts = ctx.getOutputTimestamp();
      bench.info.outputLatency = ctx.outputLatency;
      if (ts.performanceTime > 0) push(bench.ots, [performance.now(), ts.contextTime, ts.performanceTime,
        ctx.currentTime], MAX_ROWS);
    }, 50);
  }

  function watchRtc(pc) {
    const last = {};
    setInterval(() => {  // the sources' (time, RTP timestamp) of the media last delivered for playout
      for (const r of pc.getReceivers()) {
        for (const s of r.getSynchronizationSources()) {
          const key = r.track.kind;
          if (last[key] === s.timestamp) continue;
          last[key] = s.timestamp;
          push(bench.ssrc, [key, performance.now(), s.timestamp, s.rtpTimestamp], MAX_ROWS);
        }
      }
    }, 10);
    setInterval(async () => {
      const row = { t: performance.now() };
      (await pc.getStats()).forEach((s) => { if (s.type === "inbound-rtp") row[s.kind] = JSON.parse(JSON.stringify(s)); });
      push(bench.stats, row, MAX_ROWS);
    }, 1000);
  }

  bench.arm = async () => {
    const pc = window.emolive.pc, v = document.getElementById("avatar");
    const audio = pc.getReceivers().map((r) => r.track).find((t) => t && t.kind === "audio");
    if (!audio) throw new Error("no remote audio track");
    // Chromium lip-syncs only tracks of one stream (the msid's first word)
    bench.info.msid = (pc.remoteDescription.sdp.match(/^a=msid:.*$/gm) || []).map((l) => l.slice(7).trim());
    watchVideo(v);
    watchRtc(pc);
    await watchAudio(audio);
    return bench.info;
  };

  bench.take = () => {
    const b64 = (s16) => {
      const u8 = new Uint8Array(s16.buffer), parts = [];
      for (let i = 0; i < u8.length; i += 0x8000) parts.push(String.fromCharCode.apply(null, u8.subarray(i, i + 0x8000)));
      return btoa(parts.join(""));
    };
    const out = { video: bench.video, audio: bench.audio.map(([f, s]) => [f, b64(s)]), ots: bench.ots,
      ssrc: bench.ssrc, stats: bench.stats, errors: bench.errors, info: bench.info, dropped: bench.dropped,
      now: performance.now() };
    bench.video = []; bench.audio = []; bench.ots = []; bench.ssrc = []; bench.stats = []; bench.errors = [];
    return out;
  };
})();
