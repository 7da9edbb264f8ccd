//! The ODM probe serial stream, version 1 (`shared/spec/serial-stream.md`):
//! typed frames, the streaming decoder and encoder, byte sources (serial
//! port, file replay) and crash-safe recordings.
//!
//! Guarantees: no byte sequence can make the decoder panic, allocate without
//! bound or stop; every receiver counter of the spec is kept; a recording
//! cut short loses at most its last second.
//!
//! Where to start:
//! - decoding bytes: [`Decoder`] (feed chunks, pull [`DecodedItem`]s);
//! - writing bytes: [`encode_frame`], [`Encoder`];
//! - files and standard input: [`RecordingWriter`], [`RecordingReader`];
//! - live and replayed input: [`ByteSource`], [`SerialSource`],
//!   [`ReplaySource`], [`list_ports`].
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod calibration;
pub mod decoder;
pub mod encoder;
pub mod frame;
pub mod interrupt;
pub mod recording;
pub mod replay;
pub mod sched;
pub mod serial;
pub mod source;

pub use decoder::{Counters, DecodedItem, Decoder, SkipReason, parse_payload};
pub use encoder::{EncodeError, Encoder, encode_frame, encode_payload, encode_raw_frame};
pub use frame::*;
pub use recording::{
    DamagedTail, FileSink, MAGIC, MagicStatus, RecordingError, RecordingReader, RecordingStart,
    RecordingWriter, Sex,
};
pub use replay::{Pace, ReplayControl, ReplaySource};
pub use serial::{
    DEFAULT_BAUD, PortInfo, SerialSource, WRITE_TIMEOUT, list_ports, open_serial_writer,
};
pub use source::{ByteSource, READ_TIMEOUT, ReaderSource, SourceError, SourceRead};
