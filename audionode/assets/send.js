"use strict";
// The Send page: a microphone in this browser as a source of the node.
// The stream goes over the WebSocket /ws/send (its format is in
// docs/control-api.md): a JSON header, then binary packets of 10 ms,
// [u32 LE sequence number][i16 LE samples] at the node's rate.

const token = new URLSearchParams(location.search).get("token");
const nodeRate = Number(document.body.dataset.rate);
const $ = (id) => document.getElementById(id);
const form = $("send-form"), nameInput = $("name"), deviceSelect = $("device");
const sendButton = $("send"), stopButton = $("stop"), message = $("message");
const levelBar = $("level"), levelText = $("level-text"), meter = document.querySelector(".send-meter");
const status = $("status");

// What a running stream holds, to stop it.
let session = null;

function setState(state, text) {
  document.body.dataset.state = state;
  status.classList.toggle("online", state === "sending");
  status.querySelector("span").textContent = text;
  const busy = state === "starting" || state === "sending";
  sendButton.disabled = busy;
  stopButton.disabled = !busy;
  for (const el of form.querySelectorAll("input, select")) el.disabled = busy;
}

function say(text, error) {
  message.textContent = text;
  message.classList.toggle("error", !!error);
}

async function listDevices() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.enumerateDevices) return;
  const chosen = deviceSelect.value;
  const devices = (await navigator.mediaDevices.enumerateDevices()).filter((d) => d.kind === "audioinput");
  deviceSelect.replaceChildren(new Option("default microphone", ""));
  devices.forEach((d, i) => {
    if (d.deviceId === "default" || d.deviceId === "") return;
    deviceSelect.append(new Option(d.label || `microphone ${i + 1}`, d.deviceId));
  });
  deviceSelect.value = [...deviceSelect.options].some((o) => o.value === chosen) ? chosen : "";
}

function showLevel(peak) {
  const db = peak > 0 ? Math.max(-60, 20 * Math.log10(peak)) : -60;
  levelBar.style.width = `${((db + 60) / 60) * 100}%`;
  levelText.textContent = peak > 0 ? `${db.toFixed(1)} dBFS` : "silence";
  meter.setAttribute("aria-valuenow", db.toFixed(1));
  document.body.dataset.peak = peak.toFixed(4);
}

function socketUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const query = token ? `?token=${encodeURIComponent(token)}` : "";
  return `${scheme}//${location.host}/ws/send${query}`;
}

async function start() {
  const name = nameInput.value.trim();
  if (!name) {
    say("Type your name first: it is what the desk shows.", true);
    nameInput.focus();
    return;
  }
  if (!navigator.mediaDevices || !window.AudioWorkletNode) {
    say("This browser cannot capture audio here (it needs a secure page: https or localhost).", true);
    return;
  }
  setState("starting", "starting…");
  say("");
  const s = { stream: null, ctx: null, ws: null, seq: 0, sent: 0, stopping: false };
  session = s;
  try {
    const audio = {
      echoCancellation: $("echo").checked,
      noiseSuppression: $("noise").checked,
      autoGainControl: $("agc").checked,
      channelCount: 1,
    };
    if (deviceSelect.value) audio.deviceId = { exact: deviceSelect.value };
    s.stream = await navigator.mediaDevices.getUserMedia({ audio });
    listDevices().catch(() => {}); // labels are known once allowed
    try {
      s.ctx = new AudioContext({ sampleRate: nodeRate, latencyHint: "interactive" });
    } catch (e) {
      // The browser runs at its own rate: the worklet resamples.
      s.ctx = new AudioContext({ latencyHint: "interactive" });
    }
    await s.ctx.audioWorklet.addModule("send-worklet.js");
    await openSocket(s, name);
    if (s.stopping) return;
    const source = s.ctx.createMediaStreamSource(s.stream);
    const capture = new AudioWorkletNode(s.ctx, "send-capture", {
      channelCount: 1,
      channelCountMode: "explicit",
      channelInterpretation: "speakers",
      numberOfOutputs: 1,
      processorOptions: { inRate: s.ctx.sampleRate, outRate: nodeRate, samples: s.packetSamples },
    });
    capture.port.onmessage = (e) => {
      sendPacket(s, e.data);
      // The buffer goes back to the worklet's pool.
      capture.port.postMessage(e.data.samples, [e.data.samples.buffer]);
    };
    source.connect(capture);
    // Pulled by the destination; it outputs silence.
    capture.connect(s.ctx.destination);
    await s.ctx.resume();
    document.body.dataset.contextRate = String(s.ctx.sampleRate);
    setState("sending", `sending as ${name}`);
    say(s.ctx.sampleRate === nodeRate ? "" : `Resampling ${s.ctx.sampleRate} Hz to the node's ${nodeRate} Hz.`);
  } catch (e) {
    if (session === s) {
      stop();
      say(`Cannot send: ${e && e.message ? e.message : e}`, true);
    }
  }
}

// Opens the WebSocket, sends the header and waits for the node's "ready".
function openSocket(s, name) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(socketUrl());
    ws.binaryType = "arraybuffer";
    s.ws = ws;
    ws.onopen = () => ws.send(JSON.stringify({ name, rate: nodeRate, channels: 1 }));
    ws.onmessage = (e) => {
      if (typeof e.data !== "string") return;
      const m = JSON.parse(e.data);
      if (m.type === "ready") {
        s.packetSamples = m.samples;
        document.body.dataset.sourceId = m.id;
        resolve();
      }
    };
    ws.onclose = (e) => {
      reject(new Error(e.reason || `the node closed the connection (code ${e.code})`));
      if (session === s && !s.stopping) {
        stop();
        say(e.reason ? `The node ended the stream: ${e.reason}` : `Connection lost (code ${e.code}).`, true);
      }
    };
  });
}

function sendPacket(s, { samples, peak }) {
  showLevel(peak);
  const ws = s.ws;
  if (!ws || ws.readyState !== WebSocket.OPEN) return;
  const bytes = new ArrayBuffer(4 + 2 * samples.length);
  const view = new DataView(bytes);
  view.setUint32(0, s.seq >>> 0, true);
  for (let i = 0; i < samples.length; i++) view.setInt16(4 + 2 * i, samples[i], true);
  ws.send(bytes);
  s.seq = (s.seq + 1) >>> 0;
  s.sent++;
  document.body.dataset.sent = String(s.sent);
}

function stop() {
  const s = session;
  session = null;
  if (s) {
    s.stopping = true;
    if (s.ws && s.ws.readyState <= WebSocket.OPEN) s.ws.close(1000, "stopped");
    if (s.stream) s.stream.getTracks().forEach((t) => t.stop());
    if (s.ctx) s.ctx.close().catch(() => {});
  }
  showLevel(0);
  levelText.textContent = "–";
  setState("idle", "not sending");
}

form.addEventListener("submit", (e) => {
  e.preventDefault();
  start();
});
stopButton.addEventListener("click", () => {
  stop();
  say("Stopped.");
});
// Closing the page ends the stream at once, not at the node's timeout.
window.addEventListener("pagehide", () => {
  if (session && session.ws) session.ws.close(1000, "page closed");
});
if (navigator.mediaDevices && navigator.mediaDevices.addEventListener) {
  navigator.mediaDevices.addEventListener("devicechange", () => listDevices().catch(() => {}));
}
nameInput.value = localStorage.getItem("audionode-send-name") || "";
nameInput.addEventListener("change", () => localStorage.setItem("audionode-send-name", nameInput.value.trim()));
listDevices().catch(() => {});
