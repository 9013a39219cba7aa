// emolive bench: hands the received audio to the page in blocks, each with the context frame of its
// first sample (the page maps context time to performance.now() with getOutputTimestamp).
"use strict";
class EmoliveCapture extends AudioWorkletProcessor {
  constructor() {
    super();
    this.buf = new Float32Array(4096);
    this.n = 0;
    this.start = 0;
  }

  flush() {
    if (this.n) this.port.postMessage({ frame: this.start, data: this.buf.slice(0, this.n) });
    this.n = 0;
  }

  process(inputs) {
    const ch = inputs[0] && inputs[0][0];
    const len = ch ? ch.length : 128;
    if (this.n && currentFrame !== this.start + this.n) this.flush();  // a gap: keep blocks contiguous
    if (this.n === 0) this.start = currentFrame;
    if (ch) this.buf.set(ch, this.n); else this.buf.fill(0, this.n, this.n + len);  // no input: silence
    this.n += len;
    if (this.n + 128 > this.buf.length) this.flush();
    return true;
  }
}
registerProcessor("emolive-capture", EmoliveCapture);
