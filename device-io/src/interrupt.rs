//! Ctrl-C / SIGTERM as a flag, for headless commands (`odm record`) that
//! must stop cleanly: finish the last frame, flush the file, print counters.
//!
//! Uses the `ctrlc` crate's handler (a self-pipe read by a watcher thread),
//! not a blocked signal mask: the serial port's `ppoll` unblocks every
//! signal while it waits, so a masked SIGINT would still kill the process.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Why the handler could not be installed.
#[derive(Debug, thiserror::Error)]
#[error("cannot install the Ctrl-C handler: {0}")]
pub struct InterruptError(String);

/// Installs a SIGINT/SIGTERM handler and returns a flag that becomes `true`
/// when one arrives. Only one handler per process: a second call fails.
pub fn stop_flag_on_interrupt() -> Result<Arc<AtomicBool>, InterruptError> {
    let flag = Arc::new(AtomicBool::new(false));
    let seen = Arc::clone(&flag);
    ctrlc::set_handler(move || seen.store(true, Ordering::SeqCst))
        .map_err(|e| InterruptError(e.to_string()))?;
    Ok(flag)
}
