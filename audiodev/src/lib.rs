//! Sound-card helpers shared by audiostreamer and audiorecorder: one
//! `--list-devices` layout for input and output devices ([`list`]) and
//! alsa-lib's stderr diagnostics routed to the log ([`install_quiet_alsa`]).

pub mod list;

#[cfg(target_os = "linux")]
mod alsa_quiet;

pub use list::{list_devices, DeviceInfo, Direction};

/// Sends alsa-lib's own diagnostics (which it prints straight to stderr,
/// many lines on a machine without a sound card) to `log::debug!` with
/// target `alsa`. Call once, before the first cpal call; a no-op where
/// there is no ALSA.
pub fn install_quiet_alsa() {
    #[cfg(target_os = "linux")]
    alsa_quiet::install();
}
