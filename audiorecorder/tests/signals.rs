//! The real binary under signals: SIGKILL mid-stream leaves a WAV that
//! opens and holds all but at most the last second (and appending to it keeps
//! the frames the header did not count yet); SIGTERM and SIGINT
//! finalise the file and print the one-line summary.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use common::*;

const RATE: u32 = 44_100;

/// Starts the binary on an ephemeral port; returns it and the bound address
/// read from its stderr (the rest of stderr is drained in the background).
fn spawn_recorder(wav: &Path) -> (Child, SocketAddr) {
    let (child, addr, _) = spawn_with(wav, &["--no-playback"], &[]);
    (child, addr)
}

/// Like [`spawn_recorder`] with extra flags and environment; also returns
/// the stderr lines (collected in the background).
fn spawn_with(
    wav: &Path,
    flags: &[&str],
    env: &[(&str, &str)],
) -> (Child, SocketAddr, Arc<Mutex<Vec<String>>>) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_audiorecorder"));
    cmd.args([wav.to_str().unwrap(), "0", "--bind", "127.0.0.1"])
        .args(flags)
        .env("RUST_LOG", "info")
        .env_remove("PULSE_SERVER");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let collected = Arc::clone(&lines);
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(addr) = line.strip_prefix("audiorecorder: listening on UDP ") {
                let _ = tx.send(addr.parse::<SocketAddr>().unwrap());
            }
            collected.lock().unwrap().push(line);
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the recorder printed its port");
    (child, addr, lines)
}

fn signal(child: &Child, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn sigkill_mid_stream_leaves_a_valid_wav_missing_at_most_the_last_second() {
    let dir = temp_dir("sigkill");
    let path = dir.join("rec.wav");
    let (mut child, addr) = spawn_recorder(&path);
    // 2.25 s of audio in real time (not a multiple of the 0.5 s header
    // refresh), then the kill right after the last datagram.
    let signal_samples = stereo_signal(RATE as usize * 9 / 4, 11);
    send_stereo(&sender(), addr, &signal_samples, 441, Some(RATE));
    signal(&child, "-KILL");
    child.wait().unwrap();
    let (spec, samples) = read_wav(&path);
    assert_eq!((spec.channels, spec.sample_rate), (2, RATE));
    let frames = samples.len() / 2;
    let sent = signal_samples.len() / 2;
    eprintln!(
        "SIGKILL: the WAV holds {frames} of {sent} frames ({:.0} ms lost)",
        (sent - frames.min(sent)) as f64 * 1000.0 / f64::from(RATE)
    );
    assert!(
        frames + RATE as usize >= sent && frames <= sent,
        "WAV holds {frames} of {sent} frames"
    );
    assert!(
        samples[..] == signal_samples[..samples.len()],
        "not a prefix of the signal"
    );

    // Appending to the killed recording keeps the frames written after the
    // last header refresh (the header does not count them yet) and
    // continues right after them. hound writes a 44-byte header.
    let on_disk = ((std::fs::metadata(&path).unwrap().len() - 44) / 4) as usize;
    assert!(
        on_disk >= frames && on_disk <= sent,
        "{on_disk} frames on disk"
    );
    eprintln!(
        "SIGKILL: {} frames after the last header refresh kept on append",
        on_disk - frames
    );
    let (mut child, addr) = spawn_recorder(&path);
    let more = stereo_signal(1000, 12);
    send_stereo(&sender(), addr, &more, 250, None);
    wait_until(
        "the header to count the appended frames",
        Duration::from_secs(10),
        || hound::WavReader::open(&path).is_ok_and(|r| r.duration() as usize == on_disk + 1000),
    );
    signal(&child, "-TERM");
    assert!(child.wait().unwrap().success());
    let (_, after) = read_wav(&path);
    assert!(after[..2 * on_disk] == signal_samples[..2 * on_disk]);
    assert!(after[2 * on_disk..] == more[..]);
}

#[test]
fn sigterm_and_sigint_finalise_and_print_a_summary() {
    for sig in ["-TERM", "-INT"] {
        let dir = temp_dir(&format!("sig{sig}"));
        let path = dir.join("rec.wav");
        let (child, addr) = spawn_recorder(&path);
        let signal_samples = stereo_signal(22_050, 13);
        send_stereo(&sender(), addr, &signal_samples, 441, None);
        // The header is refreshed twice a second: wait until it counts everything.
        wait_until("header update", Duration::from_secs(10), || {
            hound::WavReader::open(&path).is_ok_and(|r| r.duration() == 22_050)
        });
        signal(&child, sig);
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{sig}: {:?}", out.status);
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert_eq!(stdout.lines().count(), 1, "{stdout}");
        assert!(
            stdout.starts_with(
                "audiorecorder: received 0.50 s (22050 frames), recorded 22050 frames, underruns 0"
            ),
            "{stdout}"
        );
        assert!(
            stdout.contains("0 from other senders, 0 malformed datagrams"),
            "{stdout}"
        );
        assert!(read_wav(&path).1 == signal_samples);
    }
}

#[test]
fn user_mistakes_exit_1_with_one_line() {
    let dir = temp_dir("mistakes");
    let missing = dir.join("nope/rec.wav");
    let out = Command::new(env!("CARGO_BIN_EXE_audiorecorder"))
        .args([missing.to_str().unwrap(), "0", "--no-playback"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("audiorecorder: cannot write"),
        "{stderr}"
    );

    let out = Command::new(env!("CARGO_BIN_EXE_audiorecorder"))
        .args(["rec.wav"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8(out.stderr)
        .unwrap()
        .contains("missing the UDP port"));
}

#[test]
fn without_an_audio_device_it_warns_once_and_keeps_recording() {
    let dir = temp_dir("nodevice");
    let path = dir.join("rec.wav");
    // An ALSA configuration whose default device is a sound card that does
    // not exist: what a machine without a sound card looks like to cpal.
    let alsa = dir.join("asound.conf");
    std::fs::write(
        &alsa,
        "pcm.!default { type hw card 77 }\nctl.!default { type hw card 77 }\n",
    )
    .unwrap();
    let (child, addr, lines) =
        spawn_with(&path, &[], &[("ALSA_CONFIG_PATH", alsa.to_str().unwrap())]);
    let signal_samples = stereo_signal(4_410, 14);
    send_stereo(&sender(), addr, &signal_samples, 441, None);
    wait_until("header update", Duration::from_secs(10), || {
        hound::WavReader::open(&path).is_ok_and(|r| r.duration() == 4_410)
    });
    signal(&child, "-TERM");
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let lines = lines.lock().unwrap();
    let warnings: Vec<_> = lines
        .iter()
        .filter(|l| l.contains("recording without playback"))
        .collect();
    assert_eq!(warnings.len(), 1, "{lines:#?}");
    assert!(read_wav(&path).1 == signal_samples);
}

#[test]
fn a_write_error_mid_recording_is_one_line_and_keeps_the_file_readable() {
    // The disk "fills" after 300 KiB (1.7 s): a file-size limit (bash counts
    // `ulimit -f` in KiB, POSIX sh in 512-byte blocks) with SIGXFSZ ignored,
    // so the write fails with EFBIG as a full disk would with ENOSPC.
    let dir = temp_dir("fsize");
    let path = dir.join("rec.wav");
    let mut child = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "ulimit -f 300 && trap '' XFSZ && exec '{}' '{}' 0 --bind 127.0.0.1 --no-playback",
            env!("CARGO_BIN_EXE_audiorecorder"),
            path.display()
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let addr: SocketAddr = loop {
        let mut line = String::new();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "no port line");
        if let Some(addr) = line.trim().strip_prefix("audiorecorder: listening on UDP ") {
            break addr.parse().unwrap();
        }
    };
    // 2.5 s of audio in real time: 430 KiB, more than the limit allows.
    let signal_samples = stereo_signal(RATE as usize * 5 / 2, 15);
    send_stereo(&sender(), addr, &signal_samples, 441, Some(RATE));
    let status = child.wait().unwrap();
    let rest: Vec<String> = stderr.lines().map_while(Result::ok).collect();
    assert_eq!(status.code(), Some(1), "{rest:#?}");
    let last = rest.last().expect("an error line");
    assert!(
        last.starts_with("audiorecorder: writing") && last.contains("File too large"),
        "{last}"
    );
    // What was recorded up to the last header refresh (at least the first
    // 1.5 s: refreshes come every 0.5 s) is there and exact.
    let (_, samples) = read_wav(&path);
    assert!(
        samples.len() >= 2 * RATE as usize * 3 / 2,
        "{} frames",
        samples.len() / 2
    );
    assert!(samples.len() < signal_samples.len());
    assert!(samples[..] == signal_samples[..samples.len()]);
}
