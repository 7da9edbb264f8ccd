//! Benchmarks and the latency harness for odm (see `docs/performance.md`).
//!
//! Shared helpers: simulated I/Q blocks from the virtual probe.
#![deny(missing_docs)]

use odm_device_io::frame::{IqBlock, Payload};
use odm_dsp::StreamParams;
use odm_simulator::{SimConfig, VirtualProbe};

/// Stream parameters of a probe's PROBE_INFO.
pub fn stream_params(probe: &VirtualProbe) -> StreamParams {
    let i = probe.probe_info();
    StreamParams {
        sample_rate_hz: i.sample_rate_hz,
        carrier_hz: i.carrier_hz,
        beam_angle_deg: f64::from(i.beam_angle_cdeg) / 100.0,
    }
}

/// `seconds` of the default virtual probe at `snr_db` and `hr_bpm`, in
/// blocks of `block_len` samples. Panics only on an invalid configuration
/// (a bench setup error).
pub fn simulated_blocks(
    seconds: f64,
    snr_db: f64,
    hr_bpm: f64,
    block_len: u16,
) -> (StreamParams, Vec<IqBlock>) {
    let cfg = SimConfig {
        seed: 1,
        duration_s: Some(seconds),
        snr_db: Some(snr_db),
        hr_bpm,
        block_len,
        ..SimConfig::default()
    };
    let mut probe = match VirtualProbe::new(cfg) {
        Ok(p) => p,
        Err(e) => panic!("simulator configuration: {e}"),
    };
    let params = stream_params(&probe);
    let mut blocks = Vec::new();
    while let Some(p) = probe.next_payload() {
        if let Payload::Iq(b) = p {
            blocks.push(b);
        }
    }
    (params, blocks)
}
