//! Byte sources: one trait for everything the monitor's reader thread and
//! the CLI read probe bytes from (serial port, pseudo-terminal, recording
//! replay), so the decode path is the same for all of them.
//!
//! A reader loop looks like this:
//!
//! ```no_run
//! use odm_device_io::{ByteSource, Decoder, SerialSource, SourceRead};
//!
//! let mut src = SerialSource::open("/dev/ttyACM0", odm_device_io::DEFAULT_BAUD)?;
//! let mut dec = Decoder::new();
//! let mut buf = [0u8; 4096];
//! loop {
//!     match src.read_chunk(&mut buf)? {
//!         SourceRead::Bytes(n) => {
//!             dec.feed(&buf[..n]);
//!             while let Some(item) = dec.next_item() { /* hand on */ }
//!         }
//!         SourceRead::Idle => { /* nothing within the timeout: update "no signal" */ }
//!         SourceRead::Disconnected => {
//!             // The partial frame in flight is lost; count it as damaged.
//!             dec.finish();
//!             while let Some(item) = dec.next_item() { /* hand on */ }
//!         }
//!         SourceRead::Reconnected => { /* the link is back; keep feeding */ }
//!         SourceRead::End => break,
//!     }
//! }
//! # Ok::<(), odm_device_io::SourceError>(())
//! ```

use std::time::Duration;

/// What one [`ByteSource::read_chunk`] call gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceRead {
    /// `n > 0` bytes were written to the start of the buffer.
    Bytes(usize),
    /// Nothing arrived within the source's short timeout (about
    /// [`READ_TIMEOUT`]); call again. Also returned while a disconnected
    /// source waits to reconnect, and while a replay is paused or pacing.
    Idle,
    /// The link just went away (cable pulled, device node gone). Reported
    /// once; the source then keeps trying to reconnect on each call
    /// (returning [`SourceRead::Idle`] meanwhile).
    Disconnected,
    /// The link is back after a [`SourceRead::Disconnected`]; bytes follow
    /// on the next calls.
    Reconnected,
    /// The source is exhausted for good (end of a file replay). Never
    /// returned by a serial source.
    End,
}

/// How long a source blocks at most in one [`ByteSource::read_chunk`] call,
/// so a reader thread stays responsive to shutdown requests.
pub const READ_TIMEOUT: Duration = Duration::from_millis(50);

/// Errors a source cannot recover from by itself.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The source could not be opened in the first place.
    #[error("cannot open {path}: {reason}")]
    Open {
        /// The port or file.
        path: String,
        /// Why.
        reason: String,
    },
    /// Reading failed (for a file replay; serial errors become
    /// [`SourceRead::Disconnected`]).
    #[error("reading {path} at byte {offset}")]
    Read {
        /// The port or file.
        path: String,
        /// Bytes read before the failure.
        offset: u64,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// Anything probe bytes can be read from.
///
/// Contract: `read_chunk` blocks for at most about [`READ_TIMEOUT`] (a paced
/// replay may return [`SourceRead::Idle`] sooner), never panics, and after
/// [`SourceRead::End`] keeps returning `End`. Sources are `Send` so they can
/// be moved into a reader thread.
pub trait ByteSource: Send {
    /// Reads the next bytes into `buf` (which must not be empty).
    fn read_chunk(&mut self, buf: &mut [u8]) -> Result<SourceRead, SourceError>;

    /// A short human-readable name for the source (port path, file name).
    fn describe(&self) -> String;
}

impl<S: ByteSource + ?Sized> ByteSource for Box<S> {
    fn read_chunk(&mut self, buf: &mut [u8]) -> Result<SourceRead, SourceError> {
        (**self).read_chunk(buf)
    }
    fn describe(&self) -> String {
        (**self).describe()
    }
}

/// Any [`std::io::Read`] (a FIFO, a regular file, standard input) as a byte
/// source: every byte as it is (no magic handling), [`SourceRead::End`] at
/// end of input. Reads block as the underlying reader does.
#[derive(Debug)]
pub struct ReaderSource<R> {
    reader: R,
    name: String,
    offset: u64,
    ended: bool,
}

impl<R: std::io::Read + Send> ReaderSource<R> {
    /// Wraps `reader`, naming it `name` in messages.
    pub fn new(reader: R, name: &str) -> Self {
        Self {
            reader,
            name: name.to_owned(),
            offset: 0,
            ended: false,
        }
    }
}

impl<R: std::io::Read + Send> ByteSource for ReaderSource<R> {
    fn read_chunk(&mut self, buf: &mut [u8]) -> Result<SourceRead, SourceError> {
        if self.ended {
            return Ok(SourceRead::End);
        }
        loop {
            match self.reader.read(buf) {
                Ok(0) => {
                    self.ended = true;
                    return Ok(SourceRead::End);
                }
                Ok(n) => {
                    self.offset += n as u64;
                    return Ok(SourceRead::Bytes(n));
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(SourceError::Read {
                        path: self.name.clone(),
                        offset: self.offset,
                        source,
                    });
                }
            }
        }
    }

    fn describe(&self) -> String {
        self.name.clone()
    }
}
