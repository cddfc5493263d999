//! Quiet ALSA diagnostics: alsa-lib prints its own lines to stderr
//! ("ALSA lib pcm.c:2722:(snd_pcm_open_noupdate) Unknown PCM …", a dozen of
//! them when a machine has no sound card) whenever cpal probes a device.
//! [`install`] replaces that printer by one that sends each message to
//! `log::debug!` (target `alsa`), so `RUST_LOG=alsa=debug` still shows them,
//! one line each, and the programs' own messages say what matters.

use std::ffi::{c_char, c_int, CStr};

// alsa-sys links libasound (cpal needs it anyway); the shim calls into it.
use alsa_sys as _;

extern "C" {
    /// The C shim (`alsa_quiet.c`): sets alsa-lib's global error handler.
    fn audiodev_alsa_quiet() -> c_int;
}

/// Called by the C shim for every alsa-lib diagnostic, with the message
/// already formatted. It may run on any thread that calls into alsa-lib,
/// including cpal's audio thread: at the default log level `log::debug!`
/// is one atomic load and nothing else.
#[no_mangle]
extern "C" fn audiodev_alsa_message(function: *const c_char, err: c_int, message: *const c_char) {
    if !log::log_enabled!(target: "alsa", log::Level::Debug) {
        return;
    }
    // SAFETY: alsa-lib passes a NUL-terminated function name (or null), and
    // the shim a NUL-terminated buffer it owns for the duration of the call.
    let text = |p: *const c_char| {
        if p.is_null() {
            String::new()
        } else {
            unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
        }
    };
    log::debug!(target: "alsa", "{}", line(&text(function), err, &text(message)));
}

/// One diagnostic as one line: `function: message (error)`.
fn line(function: &str, err: c_int, message: &str) -> String {
    let message = message.trim().replace('\n', " ");
    let mut out = if function.is_empty() {
        message
    } else {
        format!("{function}: {message}")
    };
    if err != 0 {
        out.push_str(&format!(
            " ({})",
            std::io::Error::from_raw_os_error(err.abs())
        ));
    }
    out
}

/// Routes alsa-lib's diagnostics to `log::debug!` instead of stderr; call
/// it before the first cpal call. Idempotent.
pub fn install() {
    // SAFETY: the shim only calls snd_lib_error_set_handler, which sets a
    // global pointer; the handler it sets is valid for the whole program.
    let rc = unsafe { audiodev_alsa_quiet() };
    if rc < 0 {
        log::debug!("cannot set alsa-lib's error handler (error {rc})");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_message() {
        assert_eq!(
            line("snd_pcm_open_noupdate", -2, "Unknown PCM cards.pcm.front\n"),
            "snd_pcm_open_noupdate: Unknown PCM cards.pcm.front (No such file or directory (os error 2))"
        );
        assert_eq!(line("", 0, "a\nb"), "a b");
    }
}
