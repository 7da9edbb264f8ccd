//! Virtual oesophageal Doppler probe with exact ground truth.
//!
//! A [`VirtualProbe`] turns a [`SimConfig`] into the payloads a probe
//! interface sends (`shared/spec/serial-stream.md`): PROBE_INFO first and at
//! least once per second, IQ_SAMPLES blocks with continuous `first_sample`
//! (except simulated gaps), and EVENTs. Beside the stream it reports the
//! exact truth: one [`TruthBeat`] per complete cardiac cycle, with the field
//! names of `shared/spec/analysis-output.md`, the exact envelope
//! ([`VirtualProbe::true_velocity_cm_s`]) and every impairment interval.
//!
//! Guarantees:
//! - **Deterministic**: the same configuration gives the same payloads, bit
//!   for bit. Physiology, scatterers, noise and each impairment schedule draw
//!   from separate random streams of the seed, so changing the SNR or adding
//!   diathermy does not change the beats.
//! - **Lazy and bounded**: nothing is precomputed for the whole duration; a
//!   probe with `duration_s: None` runs for ever in bounded memory (30 s of
//!   past beats kept for envelope queries; at most 100 000 undrained truth
//!   beats or impairments, oldest dropped).
//! - **Exact truth**: the highest frequency present at every sample is the
//!   Doppler shift of the true envelope (times the configured miscalibration);
//!   onset and end are where the closed-form envelope leaves and returns to
//!   zero; stroke distance is its exact integral.
//! - Never panics on any configuration: [`VirtualProbe::new`] validates it
//!   and names the offending field.
//!
//! The model, its sources and measured speed: `docs/simulator.md`.
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod config;
pub mod doppler;
pub mod physiology;
pub mod probe;
pub mod shaped;
pub mod truth;
pub mod warped;

pub use config::{
    ImpairmentSchedule, Interval, SPEED_OF_SOUND_M_S, ScheduleSegment, SimConfig,
    doppler_shift_hz_from_velocity_cm_s, velocity_cm_s_from_doppler_shift_hz,
};
pub use physiology::{BeatPlan, BeatShape, BeatTimeline, Physiology};
pub use probe::{VirtualProbe, is_simulator_firmware};
pub use shaped::ShapedNoise;
pub use truth::{Impairment, ImpairmentKind, TruthBeat};
pub use warped::{SineBeat, SineBeats, WarpedShapedNoise};

/// Random stream of the seed used by the beat generator.
pub(crate) const STREAM_PHYSIOLOGY: u64 = 1;
/// Random stream of the scatterer groups.
pub(crate) const STREAM_SCATTERERS: u64 = 2;
/// Random stream of the white noise.
pub(crate) const STREAM_NOISE: u64 = 3;
/// Random stream of the diathermy noise.
pub(crate) const STREAM_DIATHERMY_NOISE: u64 = 4;
/// Random stream of the diathermy schedule.
pub(crate) const STREAM_DIATHERMY_SCHEDULE: u64 = 5;
/// Random stream of the gap schedule.
pub(crate) const STREAM_GAP_SCHEDULE: u64 = 6;
/// Random stream of the clipping schedule.
pub(crate) const STREAM_CLIP_SCHEDULE: u64 = 7;

/// Errors of the simulator.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum SimError {
    /// A configuration field is out of range or inconsistent.
    #[error("simulator configuration: {field}: {reason}")]
    InvalidConfig {
        /// The field, as named in [`SimConfig`].
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}
