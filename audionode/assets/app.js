// The audionode mixing desk: one WebSocket gives the state, every change
// from any client, and meters; moves are sent back over the same socket.
// The operation (taper, drag, keys) is documented in docs/control-api.md.
"use strict";

const token = new URLSearchParams(location.search).get("token");
const strips = new Map(); // id -> strip
const $ = (sel, root = document) => root.querySelector(sel);
let ws = null;
let online = false;
let retry = 500;
let attempt = 0;
let latestMeters = null;
let metersAt = 0;

// ---- Taper: fader position 0..1 <-> dB, piecewise linear like a console's.
// 0 dB sits at 3/4 of the travel; the top is +6.02 dB (linear 2); the very
// bottom is −∞ (silence).
const MAX_DB = 20 * Math.log10(2);
const TAPER = [[0, -90], [0.0625, -60], [0.25, -30], [0.5, -10], [0.75, 0], [1, MAX_DB]];
function posToDb(p) {
  if (!(p > 0)) return -Infinity;
  for (let i = 1; i < TAPER.length; i++) {
    const [p0, d0] = TAPER[i - 1], [p1, d1] = TAPER[i];
    if (p <= p1) return d0 + (p - p0) / (p1 - p0) * (d1 - d0);
  }
  return MAX_DB;
}
function dbToPos(db) {
  if (!(db > -90)) return 0;
  for (let i = 1; i < TAPER.length; i++) {
    const [p0, d0] = TAPER[i - 1], [p1, d1] = TAPER[i];
    if (db <= d1) return p0 + (db - d0) / (d1 - d0) * (p1 - p0);
  }
  return 1;
}
const dbToVol = (db) => (db === -Infinity ? 0 : Math.min(2, Math.pow(10, db / 20)));
const volToDb = (v) => (v > 0 ? 20 * Math.log10(v) : -Infinity);
const minus = (s) => s.replace("-", "\u2212");
function dbNumber(db) {
  if (db === -Infinity) return "\u2212\u221e";
  const r = Math.round(db * 10) / 10;
  return minus(`${r > 0 ? "+" : ""}${(r === 0 ? 0 : r).toFixed(1)}`);
}
const dbText = (db) => `${dbNumber(db)} dB`;
// What an operator types: "-6", "−6 dB", "+3", "0", "-inf", "off".
function parseDb(text) {
  const t = text.trim().toLowerCase().replace(/\u2212/g, "-").replace(/db$/, "").trim();
  if (["-inf", "-\u221e", "inf", "off", "-infinity"].includes(t)) return -Infinity;
  if (!/^[+-]?(\d+([.,]\d*)?|[.,]\d+)$/.test(t)) return null;
  return Number(t.replace(",", "."));
}

// ---- Meters: −60 .. 0 dBFS over the height.
const METER_FLOOR = -60;
function meterLevel(peak) {
  if (!(peak > 0)) return 0;
  return Math.max(0, Math.min(1, (20 * Math.log10(peak) - METER_FLOOR) / -METER_FLOOR));
}
const HOLD_MS = 1500;
const FALL_PER_S = 0.6; // of the meter's height per second
function setMeter(m, peak, now) {
  const target = meterLevel(peak);
  const dt = m.at ? (now - m.at) / 1000 : 0;
  m.at = now;
  m.shown = Math.max(target, (m.shown || 0) - FALL_PER_S * dt);
  if (target >= (m.hold || 0) || now - (m.holdAt || 0) > HOLD_MS) {
    if (target >= (m.hold || 0)) { m.hold = target; m.holdAt = now; } else m.hold = Math.max(target, m.hold - FALL_PER_S * dt);
  }
  if (peak >= 0.999) m.clipUntil = now + HOLD_MS;
  m.el.style.setProperty("--level", m.shown.toFixed(3));
  m.el.style.setProperty("--hold", m.hold.toFixed(3));
  m.el.classList.toggle("clipping", (m.clipUntil || 0) > now);
}
function newMeter(el) { return { el, shown: 0, hold: 0, holdAt: 0, at: 0, clipUntil: 0 }; }

function scaleHtml(marks, pos) {
  return marks.map(([db, label]) => `<span class="tick" style="--p:${pos(db).toFixed(4)}">${label}</span>`).join("");
}
const FADER_MARKS = [[MAX_DB, "+6"], [0, "0"], [-5, "5"], [-10, "10"], [-20, "20"], [-30, "30"], [-50, "50"], [-Infinity, "\u221e"]];
const METER_MARKS = [[0, "0"], [-6, "6"], [-12, "12"], [-20, "20"], [-30, "30"], [-40, "40"], [-60, "60"]];
const faderScale = scaleHtml(FADER_MARKS, dbToPos);
const meterScale = scaleHtml(METER_MARKS, (db) => (db - METER_FLOOR) / -METER_FLOOR);

function send(msg) { if (online && ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(msg)); }

// Coalesce a stream of moves into at most one message per frame.
function coalesced(fn) {
  let pending, waiting = false;
  return (arg) => {
    pending = arg;
    if (waiting) return;
    waiting = true;
    requestAnimationFrame(() => { waiting = false; fn(pending); });
  };
}

function toast(text) {
  const t = $("#toast");
  t.textContent = text;
  t.classList.add("show");
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => t.classList.remove("show"), 3000);
}

// ---- A fader: relative drag from the grab point (a click never jumps),
// Shift for fine moves, double-click for 0 dB, keys in dB steps.
const KEY_STEP = 1, FINE_KEY_STEP = 0.1, PAGE_STEP = 6, HOME_DB = -20, FINE_DRAG = 0.1;
class Fader {
  constructor(el, label, onMove) {
    this.el = el;
    this.cap = $(".cap", el);
    this.onMove = onMove;
    this.volume = 1;
    this.drag = null;
    el.setAttribute("aria-valuemin", "-90");
    el.setAttribute("aria-valuemax", MAX_DB.toFixed(2));
    this.label(label);
    el.addEventListener("pointerdown", (e) => this.down(e));
    el.addEventListener("pointermove", (e) => this.move(e));
    el.addEventListener("pointerup", () => this.up());
    el.addEventListener("pointercancel", () => this.up());
    el.addEventListener("lostpointercapture", () => this.up());
    el.addEventListener("dblclick", () => { if (online) this.user(0); });
    el.addEventListener("keydown", (e) => this.key(e));
    this.show(1);
  }
  label(text) { this.el.setAttribute("aria-label", text); }
  get horizontal() { const r = this.el.getBoundingClientRect(); return r.width > r.height; }
  travel() {
    const r = this.el.getBoundingClientRect(), c = this.cap.getBoundingClientRect();
    return Math.max(1, this.horizontal ? r.width - c.width : r.height - c.height);
  }
  // From the node: shown unless the operator is holding this fader.
  set(volume) { this.volume = volume; if (!this.drag) this.show(volume); }
  show(volume) {
    const db = volToDb(volume);
    this.pos = dbToPos(db);
    this.el.style.setProperty("--pos", this.pos.toFixed(4));
    this.el.setAttribute("aria-valuenow", Math.max(-90, db).toFixed(1));
    this.el.setAttribute("aria-valuetext", dbText(db));
    this.shownDb = db;
    if (this.onShow) this.onShow(db);
  }
  // The operator asks for `db`.
  user(db) {
    const v = dbToVol(db);
    this.show(v);
    this.shownDb = db;
    this.onMove(v);
  }
  down(e) {
    if (!online || e.button !== 0) return;
    e.preventDefault();
    this.el.focus();
    try { this.el.setPointerCapture(e.pointerId); } catch (_) { /* synthetic pointer */ }
    this.drag = { last: this.horizontal ? e.clientX : e.clientY, pos: this.pos };
  }
  move(e) {
    if (!this.drag) return;
    if (!online) { this.up(); return; }
    const c = this.horizontal ? e.clientX : e.clientY;
    const px = this.horizontal ? c - this.drag.last : this.drag.last - c;
    this.drag.last = c;
    if (px === 0) return;
    this.drag.pos = Math.max(0, Math.min(1, this.drag.pos + px / this.travel() * (e.shiftKey ? FINE_DRAG : 1)));
    const db = posToDb(this.drag.pos);
    this.user(db === -Infinity ? db : Math.round(db * 100) / 100);
    this.pos = this.drag.pos;
  }
  up() {
    if (!this.drag) return;
    this.drag = null;
    // The node echoes each move; offline, show what it last had.
    if (!online) this.show(this.volume);
  }
  key(e) {
    if (!online) return;
    const db = this.shownDb;
    const step = e.shiftKey ? FINE_KEY_STEP : KEY_STEP;
    let next;
    switch (e.key) {
      case "ArrowUp": case "ArrowRight": next = stepDb(db, step); break;
      case "ArrowDown": case "ArrowLeft": next = stepDb(db, -step); break;
      case "PageUp": next = stepDb(db, PAGE_STEP); break;
      case "PageDown": next = stepDb(db, -PAGE_STEP); break;
      case "Home": next = Math.min(db, HOME_DB); break; // never louder, never straight to −∞
      case "End": next = Math.min(db, 0); break; // back to unity if louder; never louder
      default: return;
    }
    e.preventDefault();
    if (next !== db) this.user(next);
  }
}
// One key step from `db`: up from −∞ starts at −60 dB, down from −60 dB or below is −∞.
function stepDb(db, step) {
  if (db === -Infinity) return step > 0 ? -60 : db;
  const next = Math.round((db + step) * 10) / 10;
  if (step < 0 && next < -60) return db <= -60 ? -Infinity : -60;
  return Math.min(MAX_DB, next);
}

// A dB entry box tied to a fader: type "-6" and Enter; Escape reverts.
function dbEntry(input, fader) {
  fader.onShow = (db) => { if (document.activeElement !== input) input.value = dbNumber(db); };
  input.addEventListener("keydown", (e) => {
    if (e.key === "Escape") { input.value = dbNumber(fader.shownDb); input.blur(); return; }
    if (e.key !== "Enter") return;
    const db = parseDb(input.value);
    if (db === null) { toast(`“${input.value}” is not a level in dB (e.g. -6, 0, +3, -inf)`); return; }
    if (db > MAX_DB + 0.005) toast(`+6 dB at most`);
    fader.user(db === -Infinity || db <= -100 ? -Infinity : Math.min(db, MAX_DB));
    input.value = dbNumber(fader.shownDb);
    input.select();
  });
  input.addEventListener("blur", () => { input.value = dbNumber(fader.shownDb); });
  // A click selects the whole value, so typing replaces it.
  let fresh = false;
  input.addEventListener("focus", () => { input.select(); fresh = true; });
  input.addEventListener("mouseup", (e) => { if (fresh) { e.preventDefault(); fresh = false; } });
}

// ---- Health and counters.
const STAT_ROWS = [
  ["received", "received"], ["lost", "lost"], ["loss_percent", "loss %"], ["recovered", "recovered"],
  ["late", "late"], ["overflow", "overflow"], ["reordered", "reordered"], ["duplicates", "duplicates"],
  ["malformed", "malformed"], ["stray", "stray"], ["restarts", "restarts"], ["reanchors", "reanchors"],
  ["size_changes", "size changes"], ["drift_drops", "drift drops"], ["drift_repeats", "drift repeats"],
  ["jitter_ms", "jitter ms"], ["buffered_ms", "buffered ms"], ["target_ms", "target ms"],
];
const NODE_ROWS = [
  ["streams", "streams"], ["packets", "packets"], ["blocks", "blocks"], ["deadline_misses", "deadline misses"],
  ["clipped", "clipped"], ["skipped_blocks", "skipped blocks"], ["streams_started", "started"],
  ["streams_dropped", "dropped"], ["refused", "refused"], ["malformed_unknown", "malformed, unknown"],
  ["blocks_dropped", "blocks dropped"], ["events_dropped", "events dropped"],
  ["listeners", "listeners"], ["listeners_dropped", "listeners dropped"],
];
function fillStats(dl, rows, values) {
  if (!dl.cells) {
    dl.cells = {};
    for (const [key, label] of rows) {
      const dt = document.createElement("dt"), dd = document.createElement("dd");
      dt.textContent = label;
      dl.append(dt, dd);
      dl.cells[key] = dd;
    }
  }
  for (const [key] of rows) {
    const v = values[key];
    const text = typeof v === "number" && !Number.isInteger(v) ? v.toFixed(1) : String(v ?? "–");
    if (dl.cells[key].textContent !== text) dl.cells[key].textContent = text;
  }
}
const LEVEL_TEXT = { good: "good", fair: "fair", bad: "bad" };
function setHealth(strip, health) {
  if (!health) return;
  const key = health.level + "|" + health.reasons.join("|");
  if (strip.healthKey === key) return;
  strip.healthKey = key;
  const b = $(".health", strip.el);
  b.className = `health ${health.level}`;
  b.textContent = LEVEL_TEXT[health.level] || health.level;
  const why = health.reasons.length ? health.reasons.join("\n") : "no lost audio in the last 10 s";
  b.title = why;
  b.setAttribute("aria-label", `${strip.label} health: ${health.level}. ${why.replace(/\n/g, "; ")}`);
  strip.el.dataset.health = health.level;
  const ul = $(".reasons", strip.el);
  ul.replaceChildren(...(health.reasons.length ? health.reasons : ["no lost audio in the last 10 s"]).map((r) => {
    const li = document.createElement("li");
    li.textContent = r;
    return li;
  }));
}

// ---- Strips.
// A source's name, or its id; the id is shown so that it breaks only after
// its last ':' (between address and port), never inside a word.
function setName(strip, source) {
  if ("name" in source) strip.name = source.name || null;
  if (source.from) strip.from = source.from;
  if ("channels" in source) strip.channels = source.channels;
  const label = strip.name || strip.id;
  strip.label = label;
  const el = $(".name", strip.el);
  const cut = label.lastIndexOf(":");
  const parts = cut > 0 && cut < label.length - 1 ? [label.slice(0, cut + 1), label.slice(cut + 1)] : [label];
  el.replaceChildren(...parts.map((p) => { const s = document.createElement("span"); s.textContent = p; return s; }));
  el.title = strip.name ? `${strip.name} (${strip.id})` : strip.id;
  strip.el.setAttribute("aria-label", label);
  strip.fader.label(`${label} volume`);
  $(".db-entry", strip.el).setAttribute("aria-label", `${label} volume in dB`);
  $(".balance", strip.el).setAttribute("aria-label", `${label} balance`);
  $(".mute", strip.el).setAttribute("aria-label", `mute ${label}`);
  $(".solo", strip.el).setAttribute("aria-label", `solo ${label}`);
  $(".pre", strip.el).setAttribute("aria-label", `pre-fader meter ${label}`);
  $(".rename", strip.el).setAttribute("aria-label", `rename ${label}`);
  // Secondary text: the id under a name, and where packets come from when
  // that is not the id (RTP sources are known by their SSRC).
  const sub = [strip.name ? strip.id : "", strip.from && strip.from !== strip.id ? `from ${strip.from}` : ""].filter(Boolean).join(" \u00b7 ");
  const subEl = $(".sub", strip.el);
  subEl.textContent = sub;
  subEl.title = sub;
  const stereo = strip.channels === 2;
  $(".stereo", strip.el).hidden = !stereo;
  strip.el.dataset.channels = strip.channels || 1;
  strip.healthKey = null;
  strip.search = `${label} ${strip.id} ${strip.from || ""}`.toLowerCase();
}

// ---- Renaming: the ✎ button (or a double-click on the name) turns the
// name into a field; Enter or leaving it renames, Escape cancels, an empty
// field removes the operator's name. Names are only ever set as text.
const MAX_NAME_BYTES = 64;
const nameBytes = (text) => new TextEncoder().encode(text).length;
function startRename(strip) {
  if (!online || strip.cancelRename) return;
  const nameEl = $(".name", strip.el);
  const input = document.createElement("input");
  input.className = "name-edit";
  input.value = strip.name || "";
  input.placeholder = strip.id;
  input.autocomplete = "off";
  input.spellcheck = false;
  input.setAttribute("aria-label", `name of ${strip.id} (empty: none; Enter renames, Escape cancels)`);
  nameEl.hidden = true;
  nameEl.after(input);
  let done = false;
  const finish = (commit, refocus) => {
    if (done) return;
    const name = input.value.trim();
    if (commit && nameBytes(name) > MAX_NAME_BYTES) {
      toast(`A name has at most ${MAX_NAME_BYTES} bytes; this one has ${nameBytes(name)}`);
      input.setAttribute("aria-invalid", "true");
      if (refocus) return; // Enter: stay in the field to shorten it
      commit = false;
    }
    done = true;
    strip.cancelRename = null;
    if (commit && name !== (strip.name || "")) send({ type: "set_source", id: strip.id, name });
    input.remove();
    nameEl.hidden = false;
    if (refocus) $(".rename", strip.el).focus();
  };
  strip.cancelRename = () => finish(false, false);
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter") { e.preventDefault(); finish(true, true); }
    else if (e.key === "Escape") { e.preventDefault(); finish(false, true); }
  });
  // Leaving the field renames; a blur from the strip being moved (sorted)
  // while the field keeps the focus does not.
  input.addEventListener("blur", () => setTimeout(() => { if (document.activeElement !== input) finish(true, false); }, 0));
  input.focus();
  input.select();
}

function balanceText(b) {
  const n = Math.round(b * 100);
  return n === 0 ? "centre" : n < 0 ? `left ${-n}` : `right ${n}`;
}

function applyControls(strip, c) {
  strip.controls = { volume: c.volume, balance: c.balance, mute: c.mute, solo: c.solo };
  const el = strip.el;
  el.dataset.volume = c.volume;
  el.dataset.mute = c.mute;
  el.dataset.solo = c.solo;
  strip.fader.set(c.volume);
  const bal = $(".balance", el);
  if (!strip.balanceDragging) bal.value = Math.round(c.balance * 100);
  bal.setAttribute("aria-valuetext", balanceText(c.balance));
  $(".mute", el).setAttribute("aria-pressed", c.mute);
  $(".solo", el).setAttribute("aria-pressed", c.solo);
  el.classList.toggle("muted", c.mute);
  refreshSolo();
}

function refreshSolo() {
  const anySolo = [...strips.values()].some((s) => s.controls.solo);
  for (const s of strips.values()) s.el.classList.toggle("silenced", anySolo && !s.controls.solo);
}

const template = $("#strip-template");
for (const s of template.content.querySelectorAll(".fader-scale")) s.innerHTML = faderScale;
for (const s of template.content.querySelectorAll(".meter-scale")) s.innerHTML = meterScale;
for (const s of document.querySelectorAll("#master .fader-scale")) s.innerHTML = faderScale;
for (const s of document.querySelectorAll("#master .meter-scale")) s.innerHTML = meterScale;

// Only strips on screen are drawn: with hundreds of sources, most are
// scrolled out of view.
const onScreen = new IntersectionObserver((entries) => {
  for (const e of entries) if (e.target.strip) e.target.strip.visible = e.isIntersecting;
}, { root: null, rootMargin: "0px 200px" });

function preKey(id) { return `audionode.pre.${id}`; }
function addStrip(source) {
  if (strips.has(source.id)) {
    const s = strips.get(source.id);
    if ("name" in source && source.name !== s.name) { setName(s, source); scheduleSort(); }
    applyControls(s, source);
    setHealth(s, source.health);
    return;
  }
  const el = template.content.firstElementChild.cloneNode(true);
  el.dataset.id = source.id;
  const id = source.id;
  const strip = { id, el, name: null, label: id, from: null, channels: 1, cancelRename: null, controls: source, balanceDragging: false, meter: newMeter($(".meter", el)), pre: false };
  const sendVolume = coalesced((v) => send({ type: "set_source", id, volume: v }));
  strip.fader = new Fader($(".fader", el), `${id} volume`, sendVolume);
  dbEntry($(".db-entry", el), strip.fader);
  const balance = $(".balance", el);
  const sendBalance = coalesced((b) => send({ type: "set_source", id, balance: b }));
  balance.addEventListener("input", () => {
    const b = Number(balance.value) / 100;
    balance.setAttribute("aria-valuetext", balanceText(b));
    sendBalance(b);
  });
  balance.addEventListener("pointerdown", () => { strip.balanceDragging = true; });
  balance.addEventListener("pointerup", () => { strip.balanceDragging = false; });
  balance.addEventListener("dblclick", () => { balance.value = 0; sendBalance(0); });
  $(".mute", el).addEventListener("click", () => send({ type: "set_source", id, mute: !strip.controls.mute }));
  $(".solo", el).addEventListener("click", () => send({ type: "set_source", id, solo: !strip.controls.solo }));
  const pre = $(".pre", el);
  const setPre = (on) => {
    strip.pre = on;
    pre.setAttribute("aria-pressed", on);
    el.classList.toggle("pre-meter", on);
    try { on ? localStorage.setItem(preKey(id), "1") : localStorage.removeItem(preKey(id)); } catch (_) { /* private mode */ }
  };
  try { if (localStorage.getItem(preKey(id))) setPre(true); } catch (_) { /* private mode */ }
  pre.addEventListener("click", () => setPre(!strip.pre));
  $(".rename", el).addEventListener("click", () => startRename(strip));
  $(".name", el).addEventListener("dblclick", () => startRename(strip));
  const healthButton = $(".health", el);
  healthButton.addEventListener("click", () => {
    const details = $(".details", el);
    details.hidden = !details.hidden;
    healthButton.setAttribute("aria-expanded", !details.hidden);
    if (!details.hidden && strip.stats) fillStats($(".details .stats", el), STAT_ROWS, strip.stats);
  });
  strips.set(id, strip);
  el.strip = strip;
  strip.visible = true;
  onScreen.observe(el);
  setName(strip, source);
  applyControls(strip, source);
  setHealth(strip, source.health);
  if (source.stats) updateStats(strip, source.stats);
  el.toggleAttribute("hidden", !matches(strip));
  setEnabled(el, online);
  $("#strips").appendChild(el);
  scheduleSort();
  refreshEmpty();
}

function updateStats(strip, stats) {
  strip.stats = stats;
  const mini = $(".mini", strip.el);
  const loss = `loss ${stats.loss_percent.toFixed(1)}%`, buffered = `buffer ${Math.round(stats.buffered_ms)} ms`;
  if (!mini.firstChild) {
    mini.append(document.createElement("span"), document.createElement("span"));
    mini.title = "packets lost since the stream started; audio buffered ahead of playout";
  }
  if (mini.children[0].textContent !== loss) mini.children[0].textContent = loss;
  if (mini.children[1].textContent !== buffered) mini.children[1].textContent = buffered;
  const details = $(".details", strip.el);
  if (!details.hidden) fillStats($(".stats", details), STAT_ROWS, stats);
}

function removeStrip(id) {
  const s = strips.get(id);
  if (!s) return;
  if (s.cancelRename) s.cancelRename();
  onScreen.unobserve(s.el);
  s.el.remove();
  strips.delete(id);
  refreshEmpty();
  refreshSolo();
}

// ---- Filter and sort.
const filterBox = $("#filter"), sortBox = $("#sort");
function matches(strip) {
  const q = filterBox.value.trim().toLowerCase();
  return !q || strip.search.includes(q);
}
const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: "base" });
let sortPending = false;
function scheduleSort() {
  if (sortPending) return;
  sortPending = true;
  requestAnimationFrame(() => {
    sortPending = false;
    const key = sortBox.value === "id" ? (s) => s.id : (s) => s.label;
    const list = [...strips.values()].sort((a, b) => collator.compare(key(a), key(b)) || collator.compare(a.id, b.id));
    const box = $("#strips");
    // Moving a strip takes the focus from its controls: give it back.
    const focused = document.activeElement;
    list.forEach((s, i) => { if (box.children[i + 1] !== s.el) box.insertBefore(s.el, box.children[i + 1] || null); });
    if (focused && focused !== document.activeElement && focused.isConnected) focused.focus({ preventScroll: true });
  });
}
function refilter() {
  for (const s of strips.values()) s.el.toggleAttribute("hidden", !matches(s));
  refreshEmpty();
}
function refreshEmpty() {
  $("#empty").hidden = strips.size > 0;
  const shown = [...strips.values()].filter((s) => !s.el.hidden).length;
  $("#count").textContent = strips.size === 0 ? "" : shown === strips.size ? `${strips.size} sources` : `${shown} of ${strips.size} sources`;
}
filterBox.addEventListener("input", refilter);
sortBox.addEventListener("change", scheduleSort);

// ---- Master.
const sendMaster = coalesced((v) => send({ type: "set_master", volume: v }));
const masterFader = new Fader($("#master-fader"), "master volume", sendMaster);
dbEntry($("#master-db"), masterFader);
const masterMeters = [newMeter($("#meter-left")), newMeter($("#meter-right"))];
function setMaster(volume) {
  document.body.dataset.master = volume;
  masterFader.set(volume);
}

function setListen(listen) {
  if (!listen) return;
  // A wildcard address means "any of this machine's": name the one the page came from.
  const m = /^(?:0\.0\.0\.0|\[::\]):(\d+)$/.exec(listen);
  const where = m ? `${location.hostname.includes(":") ? `[${location.hostname}]` : location.hostname}:${m[1]}` : listen;
  $("#listen").textContent = where;
  $("#listen-example").textContent = `audiostreamer track.wav ${where}`;
  document.body.dataset.listen = where;
}

// ---- REST calls, with the page's token as the WebSocket has it. Every
// call says it sends JSON (the node refuses changes that do not).
async function api(method, path, body) {
  const headers = { "Content-Type": "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  const res = await fetch(path, { method, headers, cache: "no-store", body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { /* a plain-text refusal */ }
  if (!res.ok) throw new Error((data && data.error) || text.trim() || `${res.status} ${res.statusText}`);
  return data;
}

// ---- Outputs: where the mix is sent. Listed, added and removed over
// REST; every page hears each change over its WebSocket.
const KIND_TEXT = { rtp: "RTP", "udp-stereo": "UDP stereo" };
// What the panel calls an output: its kind, and its codec when not 16-bit PCM.
const outputLabel = (o) => (KIND_TEXT[o.kind] || o.kind) + (o.codec && o.codec !== "l16" ? ` ${o.codec === "opus" ? "Opus" : o.codec}` : "");
const outputForm = $("#output-form"), outputAddr = $("#output-addr"), outputKind = $("#output-kind");
const outputError = $("#output-error");
function sdpHref(addr) {
  return `/mix.sdp?dest=${encodeURIComponent(addr)}${token ? `&token=${encodeURIComponent(token)}` : ""}`;
}
function showOutputError(text) {
  outputError.textContent = text;
  outputError.hidden = !text;
  if (text) outputAddr.setAttribute("aria-invalid", "true"); else outputAddr.removeAttribute("aria-invalid");
}
function setOutputs(list) {
  document.body.dataset.outputs = list.length;
  $("#output-count").textContent = `(${list.length})`;
  $("#output-none").hidden = list.length > 0;
  $("#output-list").replaceChildren(...list.map((o) => {
    const kindText = outputLabel(o);
    const li = document.createElement("li");
    li.dataset.kind = o.kind;
    li.dataset.codec = o.codec || "l16";
    li.dataset.addr = o.addr;
    const kind = document.createElement("span");
    kind.className = "kind";
    kind.textContent = kindText;
    const addr = document.createElement("span");
    addr.className = "addr";
    addr.textContent = o.addr;
    li.append(kind);
    if (o.kind === "rtp") {
      const a = document.createElement("a");
      a.className = "sdp";
      a.href = sdpHref(o.addr);
      a.textContent = "SDP";
      a.title = "the session description a receiver (ffplay, VLC, GStreamer) opens";
      a.setAttribute("aria-label", `SDP of the RTP output to ${o.addr}`);
      li.append(a);
    }
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "remove";
    remove.textContent = "\u00d7";
    remove.title = "stop sending the mix here";
    remove.setAttribute("aria-label", `remove the ${kindText} output to ${o.addr}`);
    remove.disabled = !online;
    remove.addEventListener("click", async () => {
      remove.disabled = true;
      try {
        setOutputs((await api("DELETE", `/api/outputs/${encodeURIComponent(o.kind)}/${encodeURIComponent(o.addr)}`)).outputs);
        showOutputError("");
      } catch (e) {
        showOutputError(`Not removed: ${e.message}`);
        remove.disabled = !online;
      }
    });
    li.append(remove, addr);
    return li;
  }));
}
async function loadOutputs() {
  try { setOutputs((await api("GET", "/api/outputs")).outputs); } catch (e) { showOutputError(`Outputs unknown: ${e.message}`); }
}
outputForm.addEventListener("submit", async (e) => {
  e.preventDefault();
  const addr = outputAddr.value.trim();
  if (!addr) { showOutputError("Type where to send the mix, e.g. 127.0.0.1:5004."); outputAddr.focus(); return; }
  const add = $("#output-add");
  add.disabled = true;
  try {
    // The choice is the kind, then the codec when it is not 16-bit PCM.
    const [kind, codec] = outputKind.value.split(" ");
    setOutputs((await api("POST", "/api/outputs", codec ? { kind, codec, addr } : { kind, addr })).outputs);
    showOutputError("");
    outputAddr.value = "";
  } catch (err) {
    showOutputError(`Not added: ${err.message}`);
    outputAddr.focus();
  } finally {
    add.disabled = !online;
  }
});
outputAddr.addEventListener("input", () => { if (!outputError.hidden) showOutputError(""); });
const outputsBox = $("#outputs");
try { outputsBox.open = localStorage.getItem("audionode.outputs.open") === "1"; } catch (_) { /* private mode */ }
outputsBox.addEventListener("toggle", () => {
  try { outputsBox.open ? localStorage.setItem("audionode.outputs.open", "1") : localStorage.removeItem("audionode.outputs.open"); } catch (_) { /* private mode */ }
});

// ---- Online / offline.
function setEnabled(root, on) {
  for (const c of root.querySelectorAll("button, input.db-entry, input.balance, #outputs input, #outputs select")) c.disabled = !on;
  for (const f of root.querySelectorAll(".fader")) {
    f.setAttribute("aria-disabled", String(!on));
    f.tabIndex = on ? 0 : -1;
  }
}
function setOnline(on, text) {
  online = on;
  document.body.classList.toggle("offline", !on);
  document.body.classList.toggle("online", on);
  const s = $("#status");
  s.classList.toggle("online", on);
  $("span", s).textContent = text;
  const banner = $("#offline");
  banner.hidden = on;
  if (!on) banner.textContent = `${text} The controls are disabled until the node answers again.`;
  setEnabled(document, on);
  if (!on) {
    for (const st of strips.values()) if (st.cancelRename) st.cancelRename();
    masterFader.up();
    for (const st of strips.values()) st.fader.up();
    latestMeters = null;
    const now = performance.now();
    for (const m of [...masterMeters, ...[...strips.values()].map((st) => st.meter)]) { m.hold = 0; setMeter(m, 0, now); }
  }
}

function onMessage(msg) {
  switch (msg.type) {
    case "state": {
      const ids = new Set(msg.sources.map((x) => x.id));
      for (const id of [...strips.keys()]) if (!ids.has(id)) removeStrip(id);
      setMaster(msg.master);
      setListen(msg.listen);
      if (msg.node) fillStats($("#node-stats"), NODE_ROWS, msg.node);
      msg.sources.forEach(addStrip);
      refreshEmpty();
      loadOutputs();
      break;
    }
    case "outputs": setOutputs(msg.outputs); break;
    case "master": setMaster(msg.volume); break;
    case "source": {
      const s = strips.get(msg.id);
      if (!s) break;
      if ("name" in msg && msg.name !== s.name) { setName(s, msg); s.el.toggleAttribute("hidden", !matches(s)); scheduleSort(); }
      applyControls(s, msg);
      break;
    }
    case "joined": addStrip(msg.source); break;
    case "left": removeStrip(msg.id); break;
    case "meters":
      latestMeters = msg;
      metersAt = performance.now();
      break;
    case "error": toast(msg.message); break;
  }
}

// Meters are drawn once per frame from the latest message, however many came.
function draw(now) {
  const msg = latestMeters;
  if (msg) {
    latestMeters = null;
    setMeter(masterMeters[0], msg.clipped ? Math.max(1, msg.left) : msg.left, now);
    setMeter(masterMeters[1], msg.clipped ? Math.max(1, msg.right) : msg.right, now);
    if (msg.node && now - (draw.nodeAt || 0) >= 500) { draw.nodeAt = now; fillStats($("#node-stats"), NODE_ROWS, msg.node); }
    for (const m of msg.sources) {
      const s = strips.get(m.id);
      if (!s) continue;
      setHealth(s, m.health);
      s.stats = m.stats;
      if (!s.visible) continue;
      setMeter(s.meter, s.pre ? m.input_peak : m.peak, now);
      // Counters as text at most twice a second: text changes cost layout.
      if (now - (s.statsAt || 0) >= 500) { s.statsAt = now; updateStats(s, m.stats); }
    }
  } else if (now - metersAt > 200) {
    // No meters for a while: let every meter fall.
    for (const m of masterMeters) setMeter(m, 0, now);
    for (const s of strips.values()) if (s.visible) setMeter(s.meter, 0, now);
  }
  requestAnimationFrame(draw);
}
requestAnimationFrame(draw);

function connect() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const query = token ? `?token=${encodeURIComponent(token)}` : "";
  attempt += 1;
  ws = new WebSocket(`${scheme}//${location.host}/ws${query}`);
  ws.onopen = () => { retry = 500; attempt = 0; setOnline(true, "live"); };
  ws.onmessage = (e) => onMessage(JSON.parse(e.data));
  ws.onclose = () => {
    ws = null;
    // Back off while the node is away: 0.5 s, 1 s, 2 s … 5 s, with jitter.
    const wait = Math.round(retry * (0.8 + 0.4 * Math.random()));
    retry = Math.min(retry * 2, 5000);
    setOnline(false, `Node unreachable — reconnecting (attempt ${attempt}, next in ${(wait / 1000).toFixed(1)} s)…`);
    setTimeout(connect, wait);
  };
}

// ---- Listen: the mix played in this page (player.js, the Listen page's player).
{
  const button = $("#listen-toggle");
  const info = $("#listen-info");
  const player = new MixPlayer({
    onstats(s) { info.textContent = `${Math.round(s.latency_ms)} ms · ${s.underruns} underruns`; },
    onstate(text, error) {
      const on = player.active;
      button.setAttribute("aria-pressed", String(on));
      button.textContent = on ? "Stop listening" : "Listen";
      if (error || !on) info.textContent = error ? text : "";
      info.classList.toggle("error", error);
    },
  });
  button.addEventListener("click", () => { if (player.active) player.stop(); else player.start(); });
  window.deskListener = player;
}

setOnline(false, "connecting…");
connect();
