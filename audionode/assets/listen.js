// The Listen page: one Play/Stop button for the node's live mix, with the
// player's latency and underrun count (see player.js).
"use strict";

const play = document.getElementById("play");
const state = document.getElementById("state");
const latency = document.getElementById("latency");
const underruns = document.getElementById("underruns");
const rate = document.getElementById("rate");

const player = new MixPlayer({
  onstats(s) {
    latency.textContent = `${Math.round(s.latency_ms)} ms`;
    underruns.textContent = String(s.underruns);
    rate.textContent = s.context_rate === s.node_rate
      ? `${s.node_rate} Hz`
      : `${s.node_rate} Hz → ${s.context_rate} Hz`;
  },
  onstate(text, error) {
    state.textContent = text;
    state.classList.toggle("error", error);
    const on = player.active;
    play.textContent = on ? "■ Stop" : "▶ Play";
    play.setAttribute("aria-pressed", String(on));
  },
});

play.addEventListener("click", () => {
  if (player.active) player.stop(); else player.start();
});

// For tests and the curious: the player's latest state.
window.listenPlayer = player;
