//! The ODM probe serial stream, version 1 (`shared/spec/serial-stream.md`):
//! typed frames, the streaming decoder and encoder, byte sources (serial
//! port, file replay) and crash-safe recordings.
//!
//! Guarantees: no byte sequence can make the decoder panic, allocate without
//! bound or stop; every receiver counter of the spec is kept.
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod frame;

pub use frame::*;
