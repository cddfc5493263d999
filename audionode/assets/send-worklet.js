// The Send page's capture: mono audio at the AudioContext's rate in,
// 16-bit packets of 10 ms at the node's rate out (to the page, which sends
// them). When the browser runs the context at another rate than the
// node's, the samples are resampled here by linear interpolation.
//
// Packets travel to the page in buffers that the page hands back once it
// has sent them, so in steady state the audio thread allocates nothing
// (a buffer is made only while all of the pool is with the page).
const POOL = 8;

class SendCapture extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const o = options.processorOptions;
    this.step = o.inRate / o.outRate; // input samples per output sample
    this.size = o.samples;
    this.free = [];
    for (let i = 0; i < POOL; i++) this.free.push(new Int16Array(this.size));
    this.packet = this.free.pop();
    this.port.onmessage = (e) => {
      if (e.data instanceof Int16Array && e.data.length === this.size) this.free.push(e.data);
    };
    this.fill = 0;
    this.pos = 0; // next output's position in the current block (-1: the last block's last sample)
    this.prev = 0;
    this.peak = 0;
  }

  push(x) {
    const s = x > 1 ? 1 : x < -1 ? -1 : x;
    const a = s < 0 ? -s : s;
    if (a > this.peak) this.peak = a;
    this.packet[this.fill++] = Math.round(s < 0 ? s * 32768 : s * 32767);
    if (this.fill === this.size) {
      const samples = this.packet;
      // The buffer moves to the page (and is empty here afterwards); the
      // page sends it back.
      this.port.postMessage({ samples, peak: this.peak }, [samples.buffer]);
      this.packet = this.free.pop() || new Int16Array(this.size);
      this.fill = 0;
      this.peak = 0;
    }
  }

  process(inputs) {
    const block = inputs[0] && inputs[0][0];
    if (!block) return true;
    const n = block.length;
    if (this.step === 1) {
      for (let i = 0; i < n; i++) this.push(block[i]);
      return true;
    }
    let p = this.pos;
    while (p < n - 1) {
      const i = Math.floor(p);
      const frac = p - i;
      const a = i < 0 ? this.prev : block[i];
      const b = block[i + 1];
      this.push(a + (b - a) * frac);
      p += this.step;
    }
    this.pos = p - n;
    this.prev = block[n - 1];
    return true;
  }
}

registerProcessor("send-capture", SendCapture);
