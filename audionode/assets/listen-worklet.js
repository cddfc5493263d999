// The Listen player's audio end, an AudioWorkletProcessor: a ring of the
// node's stereo frames with its own adaptive jitter buffer, a linear
// resampler for a browser that runs at another rate than the node, and
// drift held by dropping or repeating single frames at zero crossings.
// Used by the Listen page and the desk's Listen button.
//
// The main thread posts each binary WebSocket message (s16le stereo) as an
// ArrayBuffer; the processor posts its state back about five times a second,
// with the times of its latest corrections (for tests and the curious).
"use strict";

const START_TARGET_MS = 40;  // the jitter buffer's first target
const MIN_TARGET_MS = 20;
const MAX_TARGET_MS = 1000;
const GROW_MS = 20;          // added on each underrun
const SHRINK_MS = 5;         // taken off after a stable spell
const STABLE_S = 10;         // how long without an underrun before shrinking
// Drift is steered on the buffer's low-water mark over a second: WebSocket
// messages arrive in bursts, which raise the average level but not the
// margin the buffer really has. One window's mark also swings with every
// stall of the browser's main thread, so drops and repeats follow the
// median of the last few windows: a real clock difference (well under
// 0.1 % between two crystals, none between two clocks of one machine)
// moves it for good, a stall for one window only.
const LEVEL_WINDOW_S = 1.0;
const LEVEL_WINDOWS = 3;
const MAX_CORRECTIONS = 10;  // frames dropped or repeated per window (0.02 % at 48 kHz)
// A frame is dropped or repeated where the signal crosses zero (or is
// quiet), so the seam has no step; past this many frames without one
// (a low hum), anywhere.
const SEAM_WAIT = 4800;
const QUIET = 0.002;         // |left| + |right| below which any frame will do
const REPORT_S = 0.2;
// The latest corrections, for the stats: each the context frame it was
// made at and its kind.
const LOG_SIZE = 64;
const KINDS = ["drop", "repeat", "skip", "underrun", "overflow"];
const DROP = 0, REPEAT = 1, SKIP = 2, UNDERRUN = 3, OVERFLOW = 4;

class ListenProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const rate = options.processorOptions.rate;
    this.inRate = rate;
    // Input frames per output frame (1 when the browser runs at the node's rate).
    this.step = rate / sampleRate;
    this.capacity = 1 << Math.ceil(Math.log2(rate * 4)); // 4 s of frames
    this.mask = this.capacity - 1;
    this.left = new Float32Array(this.capacity);
    this.right = new Float32Array(this.capacity);
    this.written = 0;       // input frames written, ever
    this.pos = 0;           // read position in input frames (fractional)
    this.target = START_TARGET_MS;
    this.playing = false;
    this.underruns = 0;
    this.drops = 0;
    this.repeats = 0;
    this.overflows = 0;
    this.pending = 0;       // > 0: frames to drop soon, < 0: frames to repeat
    this.skips = 0;
    this.pendingAge = 0;    // frames played since a correction became due
    this.lastSum = 0;       // left + right of the frame played last
    this.levelMin = 0;
    this.levelCount = 0;
    this.lows = new Float64Array(LEVEL_WINDOWS); // the last windows' marks, ms
    this.lowCount = 0;
    this.sorted = new Float64Array(LEVEL_WINDOWS);
    this.window = LEVEL_WINDOW_S;
    this.stableFrames = 0;
    this.sinceReport = 0;
    this.lastLevel = 0;
    this.logFrame = new Float64Array(LOG_SIZE);
    this.logKind = new Uint8Array(LOG_SIZE);
    this.logged = 0;
    this.port.onmessage = (e) => this.receive(e.data);
  }

  ms(frames) { return frames * 1000 / this.inRate; }
  frames(ms) { return ms * this.inRate / 1000; }
  buffered() { return this.written - this.pos; }

  log(kind, frame) {
    const i = this.logged % LOG_SIZE;
    this.logFrame[i] = frame;
    this.logKind[i] = kind;
    this.logged++;
  }

  receive(buffer) {
    if (!(buffer instanceof ArrayBuffer)) return;
    const pcm = new Int16Array(buffer);
    const n = pcm.length >> 1;
    for (let k = 0; k < n; k++) {
      const i = (this.written + k) & this.mask;
      this.left[i] = pcm[2 * k] / 32768;
      this.right[i] = pcm[2 * k + 1] / 32768;
    }
    this.written += n;
    // Far more than the ring holds (the tab slept): keep the newest.
    if (this.buffered() > this.capacity - 1024) {
      this.pos = this.written - this.frames(this.target);
      this.overflows++;
      this.log(OVERFLOW, currentFrame);
    }
  }

  process(_inputs, outputs) {
    const out = outputs[0];
    const l = out[0];
    const r = out[1] || out[0];
    const n = l.length;
    if (!this.playing && this.buffered() >= this.frames(this.target)) {
      // Start (again) with the target buffered, not with whatever piled up
      // while the player was starting or waiting.
      this.pos = Math.max(this.pos, this.written - this.frames(this.target));
      this.playing = true;
      this.levelCount = 0;
      this.lowCount = 0;
      // The first look comes soon: messages queued while the player was
      // starting may still be arriving, and are best jumped over at once.
      this.window = 0.1;
    }
    let k = 0;
    if (this.playing) {
      let corrected = false; // at most one dropped or repeated frame a quantum
      for (; k < n; k++) {
        const i = Math.floor(this.pos);
        if (i + 1 >= this.written) {
          this.underrun(currentFrame + k);
          break;
        }
        const f = this.pos - i;
        const a = i & this.mask;
        const b = (i + 1) & this.mask;
        const lv = f === 0 ? this.left[a] : this.left[a] + (this.left[b] - this.left[a]) * f;
        const rv = f === 0 ? this.right[a] : this.right[a] + (this.right[b] - this.right[a]) * f;
        l[k] = lv;
        if (r !== l) r[k] = rv;
        let advance = this.step;
        const sum = lv + rv;
        if (this.pending !== 0 && !corrected &&
            ((sum >= 0) !== (this.lastSum >= 0) || Math.abs(lv) + Math.abs(rv) < QUIET ||
             this.pendingAge > SEAM_WAIT)) {
          // Drop: skip a frame. Repeat: stay on this one for one more frame.
          if (this.pending > 0) {
            advance += 1; this.drops++; this.pending--;
            this.log(DROP, currentFrame + k);
          } else {
            advance = 0; this.repeats++; this.pending++;
            this.log(REPEAT, currentFrame + k);
          }
          corrected = true;
          this.pendingAge = 0;
        }
        this.lastSum = sum;
        this.pos += advance;
      }
      if (this.pending !== 0) this.pendingAge += n;
    }
    for (; k < n; k++) {
      l[k] = 0;
      if (r !== l) r[k] = 0;
    }
    if (this.playing) this.steer(n);
    this.sinceReport += n;
    if (this.sinceReport >= REPORT_S * sampleRate) {
      this.sinceReport = 0;
      this.report();
    }
    return true;
  }

  report() {
    const corrections = [];
    for (let j = Math.max(0, this.logged - LOG_SIZE); j < this.logged; j++) {
      corrections.push([this.logFrame[j % LOG_SIZE], KINDS[this.logKind[j % LOG_SIZE]]]);
    }
    this.port.postMessage({
      type: "stats",
      buffered_ms: this.ms(Math.max(0, this.buffered())),
      level_ms: this.lastLevel,
      target_ms: this.target,
      underruns: this.underruns,
      drops: this.drops,
      repeats: this.repeats,
      overflows: this.overflows,
      skips: this.skips,
      received_frames: this.written,
      rendered_frames: currentFrame,
      playing: this.playing,
      corrections,
    });
  }

  // Out of frames: silence until the buffer holds the (larger) target again.
  underrun(frame) {
    this.underruns++;
    this.log(UNDERRUN, frame);
    this.playing = false;
    this.pending = 0;
    this.target = Math.min(MAX_TARGET_MS, this.target + GROW_MS);
    this.stableFrames = 0;
    // Start again from the last whole frame received.
    this.pos = Math.max(Math.floor(this.pos), this.written - 1);
  }

  // The median of the last LEVEL_WINDOWS windows' low-water marks.
  medianLow() {
    const m = this.sorted;
    m.set(this.lows);
    m.sort();
    return m[LEVEL_WINDOWS >> 1];
  }

  // Holds the buffer's level within a band about the target (drift
  // between the node's and the sound card's clocks), and lowers the target
  // after a stable spell.
  steer(n) {
    const now = this.buffered();
    this.levelMin = this.levelCount === 0 ? now : Math.min(this.levelMin, now);
    this.levelCount++;
    this.stableFrames += n;
    if (this.stableFrames >= STABLE_S * sampleRate && this.target > MIN_TARGET_MS) {
      this.target = Math.max(MIN_TARGET_MS, this.target - SHRINK_MS);
      this.stableFrames = 0;
    }
    if (this.levelCount * n < this.window * sampleRate) return;
    this.window = LEVEL_WINDOW_S;
    const level = this.ms(this.levelMin);
    this.lastLevel = level;
    this.levelCount = 0;
    if (level > this.target + Math.max(50, this.target)) {
      // Far too much even at its lowest (what piled up while starting, a
      // burst after a stall): one jump to the newest audio, rather than
      // minutes of extra latency worked off a frame at a time.
      this.pos = this.written - this.frames(this.target);
      this.pending = 0;
      this.skips++;
      this.log(SKIP, currentFrame);
      this.lowCount = 0;
      return;
    }
    this.lows[this.lowCount % LEVEL_WINDOWS] = level;
    this.lowCount++;
    if (this.lowCount < LEVEL_WINDOWS) return;
    const low = this.medianLow();
    const band = Math.max(10, this.target / 2);
    if (low > this.target + band) {
      this.pending = Math.min(MAX_CORRECTIONS, Math.ceil(this.frames(low - this.target - band)));
      this.pendingAge = 0;
    } else if (low < this.target / 4 && low > 0) {
      // The low-water mark sits below the start level by the arrival
      // jitter and the sound card's bursts (20 ms and more measured);
      // only a margin under a quarter of the target is worth a correction.
      this.pending = -Math.min(MAX_CORRECTIONS, Math.ceil(this.frames(this.target / 4 - low)));
      this.pendingAge = 0;
    } else {
      this.pending = 0;
    }
  }
}

registerProcessor("audiomix-listener", ListenProcessor);
