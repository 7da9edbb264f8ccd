//! `odm-monitor`: the theatre display of the oesophageal Doppler monitor.
//!
//! Guarantees:
//! - the DSP thread never waits for the UI: display data crosses bounded
//!   lock-free queues ([`handoff`]) that drop their oldest item when the UI
//!   falls behind, and count it;
//! - no signal processing in the UI: every number on screen comes from the
//!   `odm-dsp` pipeline's beats (averaged for display in [`readings`]);
//! - nothing from outside (ports, files, arguments) can panic the app;
//! - a value from a poor signal is never shown as if good.
//!
//! Threads: reader (serial / file / virtual probe) → rtrb SPSC ring → DSP
//! thread running the pipeline → [`handoff::Handoff`] → UI; recorder thread
//! for recordings; audio callback for Doppler sound (feature `audio`).
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod alarms;
pub mod app;
pub mod audio;
pub mod audio_split;
pub mod calibrations;
pub mod challenge;
pub mod control;
pub mod engine;
pub mod handoff;
pub mod live;
pub mod readings;
pub mod spectrogram;
pub mod state;
pub mod uptake;

pub use app::MonitorApp;

/// A new recording's file name in the current directory:
/// `odm-<unix seconds>.odmrec` (no patient identifiers, serial-stream.md).
pub fn default_recording_path() -> std::path::PathBuf {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    std::path::PathBuf::from(format!("odm-{secs}.odmrec"))
}

/// The machine's serial ports, by path; empty when they cannot be listed.
pub fn list_port_names() -> Vec<String> {
    serialport::available_ports()
        .map(|ports| ports.into_iter().map(|p| p.port_name).collect())
        .unwrap_or_default()
}
