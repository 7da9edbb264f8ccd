//! Oesophageal Doppler signal processing: complex I/Q samples in; spectrum
//! columns, the maximum-velocity envelope, beats and haemodynamic numbers out.
//!
//! Guarantees:
//! - pure computation: no files, threads, clocks, printing or locks;
//! - deterministic: the same input gives the same output, bit for bit, with
//!   or without the hot stages' AVX2 copies ([`cpu`]);
//! - after [`Pipeline::new`] the hot path ([`Pipeline::push`]) does not allocate.
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod alias;
pub mod area;
pub mod beat;
pub mod calfit;
pub mod cpu;
pub mod dechirp;
pub mod direction;
pub mod envelope;
pub mod error;
pub mod fluid;
pub mod haemo;
pub mod iq;
pub mod lines;
pub mod noise;
pub mod notch;
pub mod pipeline;
pub mod ramp;
mod shape;
pub mod stft;
#[cfg(test)]
mod testing;
pub mod trend;
pub mod types;
pub mod validation;
pub mod wall;

pub use error::DspError;
pub use pipeline::{
    EnvelopePoint, NullSink, Pipeline, PipelineConfig, PipelineSink, ProbeCalibration,
    SpectrumColumn,
};
pub use types::*;
