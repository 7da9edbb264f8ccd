//! Ctrl-C / SIGTERM as a flag, for headless commands (`odm record`) that
//! must stop cleanly: finish the last frame, flush the file, print counters.
//!
//! Implemented without `unsafe` and without a signal handler: the signals
//! are blocked in the calling thread (and so in every thread it spawns
//! afterwards) and a small thread waits for them with `sigwait`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use nix::sys::signal::{SigSet, Signal};

/// Blocks SIGINT and SIGTERM and returns a flag that becomes `true` when
/// one arrives. Call it at the start of `main`/`run`, before spawning
/// threads, so that no other thread receives the signals.
pub fn stop_flag_on_interrupt() -> std::io::Result<Arc<AtomicBool>> {
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    set.add(Signal::SIGTERM);
    set.thread_block().map_err(std::io::Error::from)?;
    let flag = Arc::new(AtomicBool::new(false));
    let seen = Arc::clone(&flag);
    std::thread::Builder::new()
        .name("odm-interrupt".into())
        .spawn(move || {
            // A failing sigwait cannot recover; leave the flag as it is.
            if set.wait().is_ok() {
                seen.store(true, Ordering::SeqCst);
            }
        })?;
    Ok(flag)
}
