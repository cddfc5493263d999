// The audionode mixing desk: one WebSocket gives the state, every change
// from any client, and meters; moves are sent back over the same socket.
"use strict";

const token = new URLSearchParams(location.search).get("token");
const strips = new Map(); // id -> {el, controls, dragging}
const $ = (sel, root = document) => root.querySelector(sel);
let ws = null;
let retry = 500;
let master = { volume: 1, dragging: false };

// Fader positions are tenths of a dB from -60.0 to +6.0; the bottom is silence.
const FADER_MIN = -600;
function faderToVolume(v) { v = Number(v); return v <= FADER_MIN ? 0 : Math.pow(10, v / 200); }
function volumeToFader(vol) { return vol <= 0 ? FADER_MIN : Math.max(FADER_MIN, Math.min(60, Math.round(200 * Math.log10(vol)))); }
function dbText(vol) { return vol <= 0 ? "−∞ dB" : `${(20 * Math.log10(vol)).toFixed(1)} dB`; }
function meterHeight(peak) { // -60 dB .. 0 dB mapped onto the meter
  if (peak <= 0) return 0;
  const db = 20 * Math.log10(peak);
  return Math.max(0, Math.min(100, (db + 60) / 60 * 100));
}

function send(msg) { if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(msg)); }

// Coalesce a stream of slider events into at most one message per frame.
function coalesced(fn) {
  let pending = null;
  return (arg) => {
    const first = pending === null;
    pending = arg;
    if (first) requestAnimationFrame(() => { const a = pending; pending = null; fn(a); });
  };
}

function toast(text) {
  const t = $("#toast");
  t.textContent = text;
  t.classList.add("show");
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => t.classList.remove("show"), 3000);
}

function setStatus(online) {
  const s = $("#status");
  s.classList.toggle("online", online);
  s.classList.toggle("offline", !online);
  $("span", s).textContent = online ? "live" : "reconnecting…";
}

function updateMeter(meter, peak, clipped) {
  const bar = $(".bar", meter);
  const shown = Math.max(meterHeight(peak), (meter.shown || 0) * 0.85); // decay
  meter.shown = shown;
  bar.style.height = `${shown.toFixed(1)}%`;
  if (clipped) meter.clipUntil = performance.now() + 1500;
  $(".clip", meter).classList.toggle("on", (meter.clipUntil || 0) > performance.now());
}

function health(stats) {
  if (stats.loss_percent >= 5 || stats.late > 0 && stats.late * 20 > stats.received || stats.jitter_ms >= 20) return ["bad", "poor"];
  if (stats.loss_percent >= 1 || stats.jitter_ms >= 5 || stats.late > 0) return ["warn", "fair"];
  return ["", "good"];
}

function renderStats(dl, stats) {
  const rows = [
    ["loss", `${stats.lost} (${stats.loss_percent.toFixed(1)}%)`],
    ["late", stats.late], ["reord", stats.reordered], ["dup", stats.duplicates],
    ["jitter", `${stats.jitter_ms.toFixed(1)} ms`], ["buffer", `${stats.buffered_ms.toFixed(0)} ms`],
  ];
  dl.innerHTML = rows.map(([k, v]) => `<dt>${k}</dt><dd>${v}</dd>`).join("");
}

function applyControls(strip, c) {
  strip.controls = c;
  const el = strip.el;
  el.dataset.volume = c.volume;
  el.dataset.balance = c.balance;
  el.dataset.mute = c.mute;
  el.dataset.solo = c.solo;
  if (!strip.dragging) $(".fader", el).value = volumeToFader(c.volume);
  if (!strip.balanceDragging) $(".balance", el).value = Math.round(c.balance * 100);
  $(".db", el).textContent = dbText(c.volume);
  $(".mute", el).setAttribute("aria-pressed", c.mute);
  $(".solo", el).setAttribute("aria-pressed", c.solo);
  el.classList.toggle("muted", c.mute);
  refreshSolo();
}

function refreshSolo() {
  const anySolo = [...strips.values()].some((s) => s.controls.solo);
  for (const s of strips.values()) s.el.classList.toggle("silenced", anySolo && !s.controls.solo);
}

function addStrip(source) {
  if (strips.has(source.id)) { applyControls(strips.get(source.id), source); return; }
  const el = $("#strip-template").content.firstElementChild.cloneNode(true);
  el.dataset.id = source.id;
  $(".name", el).textContent = source.id;
  const strip = { el, controls: source, dragging: false, balanceDragging: false };
  const fader = $(".fader", el);
  const sendVolume = coalesced((v) => send({ type: "set_source", id: source.id, volume: v }));
  fader.addEventListener("input", () => {
    const v = faderToVolume(fader.value);
    $(".db", el).textContent = dbText(v);
    sendVolume(v);
  });
  fader.addEventListener("pointerdown", () => { strip.dragging = true; });
  fader.addEventListener("pointerup", () => { strip.dragging = false; });
  fader.addEventListener("dblclick", () => { fader.value = 0; sendVolume(1); });
  const balance = $(".balance", el);
  const sendBalance = coalesced((b) => send({ type: "set_source", id: source.id, balance: b }));
  balance.addEventListener("input", () => sendBalance(Number(balance.value) / 100));
  balance.addEventListener("pointerdown", () => { strip.balanceDragging = true; });
  balance.addEventListener("pointerup", () => { strip.balanceDragging = false; });
  balance.addEventListener("dblclick", () => { balance.value = 0; sendBalance(0); });
  $(".mute", el).addEventListener("click", () => send({ type: "set_source", id: source.id, mute: !strip.controls.mute }));
  $(".solo", el).addEventListener("click", () => send({ type: "set_source", id: source.id, solo: !strip.controls.solo }));
  strips.set(source.id, strip);
  $("#strips").appendChild(el);
  $("#empty").hidden = true;
  applyControls(strip, source);
  if (source.stats) renderStats($(".stats", el), source.stats);
}

function removeStrip(id) {
  const s = strips.get(id);
  if (!s) return;
  s.el.remove();
  strips.delete(id);
  $("#empty").hidden = strips.size > 0;
  refreshSolo();
}

function setMaster(volume) {
  master.volume = volume;
  document.body.dataset.master = volume;
  if (!master.dragging) $("#master-fader").value = volumeToFader(volume);
  $("#master-db").textContent = dbText(volume);
}

function onMessage(msg) {
  switch (msg.type) {
    case "state":
      for (const id of [...strips.keys()]) removeStrip(id);
      setMaster(msg.master);
      msg.sources.forEach(addStrip);
      break;
    case "master": setMaster(msg.volume); break;
    case "source": { const s = strips.get(msg.id); if (s) applyControls(s, msg); break; }
    case "joined": addStrip(msg.source); break;
    case "left": removeStrip(msg.id); break;
    case "meters":
      updateMeter($("#meter-left"), msg.left, msg.clipped);
      updateMeter($("#meter-right"), msg.right, msg.clipped);
      for (const m of msg.sources) {
        const s = strips.get(m.id);
        if (!s) continue;
        updateMeter($(".meter", s.el), m.peak, m.peak >= 0.999);
        const [cls, label] = health(m.stats);
        const h = $(".health", s.el);
        h.className = `health ${cls}`;
        h.textContent = label;
        renderStats($(".stats", s.el), m.stats);
      }
      break;
    case "error": toast(msg.message); break;
  }
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const query = token ? `?token=${encodeURIComponent(token)}` : "";
  ws = new WebSocket(`${scheme}//${location.host}/ws${query}`);
  ws.onopen = () => { setStatus(true); retry = 500; };
  ws.onmessage = (e) => onMessage(JSON.parse(e.data));
  ws.onclose = () => {
    setStatus(false);
    setTimeout(connect, retry);
    retry = Math.min(retry * 2, 5000); // back off while the node is away
  };
}

const masterFader = $("#master-fader");
const sendMaster = coalesced((v) => send({ type: "set_master", volume: v }));
masterFader.addEventListener("input", () => {
  const v = faderToVolume(masterFader.value);
  $("#master-db").textContent = dbText(v);
  sendMaster(v);
});
masterFader.addEventListener("pointerdown", () => { master.dragging = true; });
masterFader.addEventListener("pointerup", () => { master.dragging = false; });
connect();
