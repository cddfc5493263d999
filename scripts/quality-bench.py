#!/usr/bin/env python3
"""Sound through loss, measured: the real release streamer, impairment
proxy, node and recorder on loopback, for each loss condition and each way
of dealing with loss, scored against the clean mix.

For every stem (music from `audiostreamer --generate`, speech from
espeak-ng) it records a reference (no loss) and then, per condition
(Bernoulli loss of 1, 5 and 10 %, Gilbert-Elliott bursts of mean length 3
at 5 %) and per mode:

  silence    audionode --plc off       (a lost packet plays as silence)
  repeat     audionode --plc repeat
  predict    audionode --plc predict   (the default)
  red1       audiostreamer --rtp --redundancy 1 into audionode --rtp-listen
             (with the default concealment for what redundancy cannot
             restore)
  opus64     audiostreamer --rtp --codec opus --bitrate 64k into audionode
             --rtp-listen (Opus's in-band FEC, the default concealment for
             what it cannot recover)

and, once per stem, `opus64` without loss: what the codec alone costs.
Every mode also gets its bandwidth per source: the UDP payload bytes the
streamer sends per second of audio (counted on a socket of this script,
sent faster than real time), plus 28 bytes of IP and UDP header per packet.

The proxy (`audioimpair --seed`) makes the same decisions for every mode of
a condition, so the modes without redundancy are compared on the same lost
packets; redundancy sends 5 ms packets (a 10 ms packet and its copy would
not fit one datagram), so it meets the same loss rate on other packets. Each
recording is aligned with the reference (first audio, refined by
cross-correlation) and scored
with PESQ (ITU-T P.862.2 wide band, MOS-LQO, on the left channel resampled
to 16 kHz, from the `pesq` package) and a segmental SNR (20 ms frames,
each clamped to -10..35 dB).

Needs the release binaries (`cargo build --release`), ffmpeg, espeak-ng and
the Python packages numpy and pesq. Not part of scripts/test.sh.

    scripts/quality-bench.py --out bench-out/quality      # about 10 minutes
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import wave
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from pesq import pesq

ROOT = Path(__file__).resolve().parent.parent
RATE = 44100
CONDITIONS = [
    ("bernoulli 1 %", ["--loss", "0.01"]),
    ("bernoulli 5 %", ["--loss", "0.05"]),
    ("bernoulli 10 %", ["--loss", "0.10"]),
    ("bursts 5 % (mean 3)", ["--loss", "0.05", "--burst-loss", "--burst-len", "3"]),
]
MODES = ["silence", "repeat", "predict", "red1", "opus64"]
# What each mode adds to the streamer's command line.
STREAMER_FLAGS = {
    "silence": [], "repeat": [], "predict": [], "reference": [],
    "red1": ["--rtp", "--redundancy", "1"],
    "opus64": ["--rtp", "--codec", "opus", "--bitrate", "64k"],
}


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_wav(path):
    with wave.open(str(path)) as w:
        frames = w.readframes(w.getnframes())
        data = np.frombuffer(frames, dtype="<i2").astype(np.float64)
        return data.reshape(-1, w.getnchannels())


def write_mono_wav(path, samples, rate):
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.clip(samples, -32768, 32767).astype("<i2").tobytes())


def stems(work, seconds):
    """The music and speech stems, mono 16-bit at 44.1 kHz, `seconds` long."""
    out = {}
    gen = work / "generated"
    subprocess.run([str(ROOT / "target/release/audiostreamer"), "--generate", str(gen)],
                   check=True, stdout=subprocess.DEVNULL)
    # The demo's drum and bass stems together: rhythm and pitch.
    drums = read_wav(gen / "drums.wav")[:, 0]
    bass = read_wav(gen / "bass.wav")[:, 0]
    n = min(len(drums), len(bass), int(seconds * RATE))
    music = (drums[:n] + bass[:n]) * 0.5
    out["music"] = work / "music.wav"
    write_mono_wav(out["music"], music, RATE)
    text = ("The quick brown fox jumps over the lazy dog. A network drops packets, "
            "and the listener hears what the receiver makes of the gaps. "
            "Concealment repeats the voice's pitch; silence leaves holes.")
    raw = work / "speech-raw.wav"
    subprocess.run(["espeak-ng", "-v", "en", "-s", "150", "-w", str(raw), text], check=True)
    speech = work / "speech.wav"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(raw), "-ac", "1", "-ar",
                    str(RATE), "-c:a", "pcm_s16le", "-t", str(seconds), str(speech)], check=True)
    out["speech"] = speech
    return out


def record(stem, mode, impair_args, seed, out_wav, log_dir):
    """One pass of `stem` through proxy and node into a recording; returns
    the proxy's ground truth and the node's final counters line."""
    bin_dir = ROOT / "target/release"
    rec_port, node_port, rtp_port, imp_port = (free_port() for _ in range(4))
    red = "--rtp" in STREAMER_FLAGS[mode]
    plc = {"silence": "off", "repeat": "repeat", "predict": "predict", "red1": "predict",
           "opus64": "predict", "reference": "off"}[mode]
    logs = []
    # The recorder appends to an existing WAV: start each recording afresh.
    out_wav.unlink(missing_ok=True)

    def start(args, name):
        log = open(log_dir / f"{out_wav.stem}-{name}.log", "w")
        logs.append(log)
        return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)

    recorder = start([str(bin_dir / "audiorecorder"), str(out_wav), str(rec_port),
                      "--no-playback"], "recorder")
    node_args = [str(bin_dir / "audionode"), "--listen", f"127.0.0.1:{node_port}",
                 "--dest", f"127.0.0.1:{rec_port}", "--plc", plc,
                 "--log-file", str(log_dir / f"{out_wav.stem}-events.log")]
    if red:
        node_args += ["--rtp-listen", f"127.0.0.1:{rtp_port}"]
    node = start(node_args, "node")
    summary = log_dir / f"{out_wav.stem}-truth.json"
    impair = start([str(bin_dir / "audioimpair"), "--listen", f"127.0.0.1:{imp_port}",
                    "--forward", f"127.0.0.1:{rtp_port if red else node_port}",
                    "--seed", str(seed), "--summary", str(summary)] + impair_args, "impair")
    time.sleep(0.7)
    streamer_args = [str(bin_dir / "audiostreamer"), str(stem), f"127.0.0.1:{imp_port}"]
    streamer_args += STREAMER_FLAGS[mode]
    subprocess.run(streamer_args, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # the jitter buffer plays out
    for p in (impair, node, recorder):
        p.send_signal(signal.SIGINT)
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
    for log in logs:
        log.close()
    truth = json.loads(summary.read_text()) if summary.exists() else {}
    return truth


def bandwidth(stem, mode):
    """kbit/s per source on the wire (UDP payload + 28 bytes of IP/UDP
    header per packet) of `mode` sending `stem`, counted here."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(1.0)
    port = sock.getsockname()[1]
    args = [str(ROOT / "target/release/audiostreamer"), str(stem), f"127.0.0.1:{port}",
            "--speed", "20"] + STREAMER_FLAGS[mode]
    streamer = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    total, packets = 0, 0
    while True:
        try:
            total += len(sock.recv(65536))
            packets += 1
        except socket.timeout:
            if streamer.poll() is not None:
                break
    sock.close()
    with wave.open(str(stem)) as w:
        seconds = w.getnframes() / w.getframerate()
    return round((total + 28 * packets) * 8 / seconds / 1000, 1)


def onset(x, threshold=64):
    loud = np.nonzero(np.abs(x) > threshold)[0]
    return int(loud[0]) if len(loud) else 0


def align(reference, recording):
    """`recording` shifted onto `reference`, cut to the same length: by the
    first sample of audio in each (a whole-signal correlation of a
    repetitive stem can lock a bar off), refined by the best correlation
    within 300 samples of that over 2 s of audio."""
    start = onset(reference)
    guess = onset(recording) - start
    n = 2 * RATE
    ref = reference[start:start + n]
    best, lag = -np.inf, guess
    for candidate in range(guess - 300, guess + 301):
        k = start + candidate
        if k < 0 or k + len(ref) > len(recording):
            continue
        c = float(np.dot(ref, recording[k:k + len(ref)]))
        if c > best:
            best, lag = c, candidate
    if lag >= 0:
        shifted = recording[lag:]
    else:
        shifted = np.concatenate([np.zeros(-lag), recording])
    m = min(len(reference), len(shifted))
    return reference[:m], shifted[:m], lag


def active_span(reference):
    """First and last sample of the reference's audio (the stem, not the
    silence the pipeline adds around it)."""
    loud = np.nonzero(np.abs(reference) > 64)[0]
    return (int(loud[0]), int(loud[-1]) + 1) if len(loud) else (0, len(reference))


def seg_snr(reference, test, frame=int(0.02 * RATE)):
    values = []
    for k in range(0, len(reference) - frame, frame):
        r = reference[k:k + frame]
        e = r - test[k:k + frame]
        signal_power = np.sum(r * r)
        if signal_power < 1e3 * frame:  # skip silent frames
            continue
        snr = 10 * np.log10(signal_power / max(np.sum(e * e), 1e-9))
        values.append(min(max(snr, -10.0), 35.0))
    return float(np.mean(values)) if values else None


def to_16k(samples, work, name):
    src = work / f"{name}-44k.wav"
    dst = work / f"{name}-16k.wav"
    write_mono_wav(src, samples, RATE)
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(src), "-ar", "16000",
                    str(dst)], check=True)
    return read_wav(dst)[:, 0]


def score(reference, recording, work, name):
    ref, rec, lag = align(reference, recording)
    start, end = active_span(ref)
    ref, rec = ref[start:end], rec[start:end]
    exact = float(np.mean(ref == rec) * 100)
    mos = pesq(16000, to_16k(ref, work, name + "-ref"), to_16k(rec, work, name), "wb")
    snr = seg_snr(ref, rec)  # None when no frame has audio (JSON has no NaN)
    return {"pesq_wb": round(float(mos), 3), "seg_snr_db": None if snr is None else round(snr, 2),
            "samples_exact_percent": round(exact, 3), "lag": lag}


def cell(row):
    """A table cell: PESQ / segmental SNR."""
    snr = "-" if row["seg_snr_db"] is None else f"{row['seg_snr_db']:.1f}"
    return f"{row['pesq_wb']:.2f} / {snr}"


def condition_key(condition):
    """The short name `--conditions` selects a condition by: "5" for
    "bernoulli 5 %", "bursts" for the Gilbert-Elliott one."""
    return "bursts" if condition.startswith("bursts") else condition.split()[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="bench-out/quality")
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each stem")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--stems", default="music,speech",
                        help="comma-separated stems to run (music, speech)")
    parser.add_argument("--modes", default=",".join(MODES),
                        help="comma-separated modes to run (" + ", ".join(MODES) + ")")
    parser.add_argument("--conditions", default="1,5,10,bursts",
                        help="comma-separated loss conditions to run: 1, 5, 10 (Bernoulli "
                             "loss in %%) and bursts")
    parser.add_argument("--keep", action="store_true",
                        help="keep every recording (STEM-CONDITION-MODE.wav) in --out")
    args = parser.parse_args()
    stems_wanted = args.stems.split(",")
    modes = [m for m in args.modes.split(",") if m]
    conditions = [c for c in CONDITIONS if condition_key(c[0]) in args.conditions.split(",")]
    for mode in modes:
        if mode not in MODES:
            sys.exit(f"quality-bench: unknown mode {mode!r} (one of {', '.join(MODES)})")
    for tool in ("ffmpeg", "espeak-ng"):
        if shutil.which(tool) is None:
            sys.exit(f"quality-bench: {tool} is not installed (apt-get install {tool})")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for stem_name, stem in stems(work, args.seconds).items():
            if stem_name not in stems_wanted:
                continue
            ref_wav = out / f"{stem_name}-reference.wav"
            record(stem, "reference", [], args.seed, ref_wav, out)
            reference = read_wav(ref_wav)[:, 0]
            rates = {mode: bandwidth(stem, mode) for mode in modes}
            if "opus64" in modes:
                wav = out / f"{stem_name}-opus64-clean.wav"
                record(stem, "opus64", [], args.seed, wav, out)
                row = {"stem": stem_name, "condition": "no loss", "mode": "opus64",
                       "kbit_per_s": rates["opus64"]}
                row.update(score(reference, read_wav(wav)[:, 0], work,
                                 f"{stem_name}-opus64-clean"))
                results.append(row)
                print(json.dumps(row), flush=True)
                if not args.keep:
                    wav.unlink()
            for condition, impair_args in conditions:
                for mode in modes:
                    tag = f"{stem_name}-{condition.split()[0]}{impair_args[1]}-{mode}"
                    wav = out / f"{tag}.wav"
                    truth = record(stem, mode, impair_args, args.seed, wav, out)
                    source = (truth.get("sources") or [{}])[0]
                    row = {"stem": stem_name, "condition": condition, "mode": mode,
                           "dropped_datagrams": source.get("dropped"),
                           "sent_datagrams": source.get("received"),
                           "kbit_per_s": rates[mode]}
                    row.update(score(reference, read_wav(wav)[:, 0], work, tag))
                    results.append(row)
                    print(json.dumps(row), flush=True)
                    if not args.keep:
                        wav.unlink()
    (out / "quality.json").write_text(json.dumps(
        {"started": started, "commit": commit, "results": results}, indent=1))
    print(f"\nQuality through loss, {started}, commit {commit}: PESQ WB MOS-LQO / segmental SNR dB\n")
    print("| stem | condition | " + " | ".join(modes) + " |")
    print("|---|---|" + "---|" * len(modes))
    for stem_name in stems_wanted:
        rates = [next((f"{r['kbit_per_s']} kbit/s" for r in results if r["stem"] == stem_name
                       and r["mode"] == mode and "kbit_per_s" in r), "-") for mode in modes]
        print(f"| {stem_name} | bandwidth per source | " + " | ".join(rates) + " |")
        clean = next((r for r in results if r["stem"] == stem_name
                      and r["condition"] == "no loss"), None)
        if clean:
            cells = [cell(clean) if m == "opus64"
                     else "-" for m in modes]
            print(f"| {stem_name} | no loss | " + " | ".join(cells) + " |")
        for condition, _ in conditions:
            cells = []
            for mode in modes:
                r = next((r for r in results if r["stem"] == stem_name
                          and r["condition"] == condition and r["mode"] == mode), None)
                cells.append(cell(r) if r else "-")
            print(f"| {stem_name} | {condition} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
