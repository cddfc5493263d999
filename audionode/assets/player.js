// The Listen player, shared by the Listen page and the desk: opens
// /ws/listen (with the page's token), reads the header, creates an
// AudioContext at the node's rate (the browser may pick another; the
// worklet resamples) and hands every PCM message to the worklet
// (listen-worklet.js), whose state it passes on to `onstats`.
"use strict";

class MixPlayer {
  // onstats(stats): the worklet's state plus latency_ms, about 5 times a second.
  // onstate(text, error): "connecting", "playing", "stopped", or why it stopped.
  constructor({ onstats = () => {}, onstate = () => {} } = {}) {
    this.onstats = onstats;
    this.onstate = onstate;
    this.ws = null;
    this.context = null;
    this.node = null;
    this.stats = null;
    this.header = null;
  }

  get active() { return this.ws !== null; }

  url() {
    const token = new URLSearchParams(location.search).get("token");
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const query = token ? `?token=${encodeURIComponent(token)}` : "";
    return `${scheme}//${location.host}/ws/listen${query}`;
  }

  // Must be called from a user gesture (a click) where autoplay needs one:
  // the context is created here, before any await, and resumed later.
  start() {
    if (this.ws) return;
    this.onstate("connecting", false);
    this.stats = null;
    const ws = new WebSocket(this.url());
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    let queued = [];
    ws.onmessage = async (e) => {
      if (typeof e.data === "string") {
        try {
          this.header = JSON.parse(e.data);
        } catch (_) {
          this.fail("the node sent a header that is not JSON");
          return;
        }
        if (this.header.format !== "s16le" || this.header.channels !== 2) {
          this.fail(`unsupported stream format ${e.data}`);
          return;
        }
        try {
          await this.open(this.header.rate);
        } catch (err) {
          this.fail(`cannot start audio: ${err.message || err}`);
          return;
        }
        if (this.ws !== ws) return;
        for (const buf of queued) this.node.port.postMessage(buf, [buf]);
        queued = null;
        this.onstate("playing", false);
      } else if (this.node && queued === null) {
        this.node.port.postMessage(e.data, [e.data]);
      } else if (queued) {
        queued.push(e.data);
      }
    };
    ws.onclose = (e) => {
      if (this.ws !== ws) return;
      const why = e.code === 1000 || e.code === 1005 ? "the node closed the stream" :
        e.code === 1006 ? "connection lost (refused, or too slow and dropped)" :
        `closed (${e.code}${e.reason ? `: ${e.reason}` : ""})`;
      this.fail(why);
    };
  }

  async open(rate) {
    if (!this.context) {
      try {
        this.context = new AudioContext({ sampleRate: rate, latencyHint: "interactive" });
      } catch (_) {
        // Some browsers refuse a rate they do not run at: resample instead.
        this.context = new AudioContext({ latencyHint: "interactive" });
      }
    }
    await this.context.audioWorklet.addModule("listen-worklet.js");
    this.node = new AudioWorkletNode(this.context, "audiomix-listener", {
      numberOfInputs: 0,
      outputChannelCount: [2],
      processorOptions: { rate },
    });
    this.node.port.onmessage = (e) => {
      if (e.data.type !== "stats") return;
      const c = this.context;
      const device = c ? ((c.baseLatency || 0) + (c.outputLatency || 0)) * 1000 : 0;
      this.stats = {
        ...e.data,
        node_rate: rate,
        context_rate: c ? c.sampleRate : 0,
        latency_ms: e.data.buffered_ms + device,
      };
      this.onstats(this.stats);
    };
    this.node.connect(this.context.destination);
    await this.context.resume();
  }

  fail(why) {
    this.stop();
    this.onstate(why, true);
  }

  stop() {
    const ws = this.ws;
    this.ws = null;
    if (ws) ws.close();
    if (this.node) this.node.disconnect();
    this.node = null;
    if (this.context) this.context.close();
    this.context = null;
    this.onstate("stopped", false);
  }
}

window.MixPlayer = MixPlayer;
