//! Helpers shared by the integration tests.
#![allow(dead_code)]

use odm_device_io::{IqBlock, Payload, ProbeInfo};

/// A plausible probe description (values from the spec's PROBE_INFO table).
pub fn probe_info() -> ProbeInfo {
    ProbeInfo {
        sample_rate_hz: 20_000,
        carrier_hz: 4_000_000,
        beam_angle_cdeg: 4500,
        probe_model: 1,
        minutes_used: 37,
        minutes_limit: 720,
        probe_serial: ProbeInfo::pad("TEST-PROBE-0042"),
        firmware: ProbeInfo::pad("2.3.1"),
    }
}

/// An IQ block of `count` samples starting at `first`, with a recognisable ramp.
pub fn iq(first: u64, count: usize) -> Payload {
    Payload::Iq(IqBlock {
        first_sample: first,
        flags: 0,
        samples: (0..count)
            .map(|i| {
                let v = (first as usize + i) as i16;
                [v, v.wrapping_neg()]
            })
            .collect(),
    })
}
