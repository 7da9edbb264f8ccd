//! A probe interface with I and Q swapped delivers the aorta's forward flow
//! as a negative Doppler shift. The envelope looks only at the forward half,
//! so no beat is found and the monitor said only "signal lost" with a strong
//! pulsatile signal in front of it. The pipeline now says the flow is
//! reversed (`odm_dsp::direction`) — and never says so of a normal probe.

mod common;

use common::{Collect, sim};
use odm_dsp::{Pipeline, PipelineConfig};
use odm_simulator::{SimConfig, VirtualProbe};

/// Runs `cfg` through the pipeline; per column-ish step (every payload) the
/// stream time and whether the flow is reported reversed, the highest
/// reverse share seen, and the beats.
fn run(cfg: SimConfig) -> (Vec<(f64, bool)>, f64, Collect) {
    let fs = f64::from(cfg.sample_rate_hz);
    let mut probe = VirtualProbe::new(cfg).expect("sim");
    let mut pipe: Option<Pipeline> = None;
    let mut out = Collect::default();
    let mut states = Vec::new();
    let mut highest_share = 0.0f64;
    while let Some(p) = probe.next_payload() {
        let end_s = match &p {
            odm_device_io::frame::Payload::Iq(b) => {
                Some((b.first_sample + b.samples.len() as u64) as f64 / fs)
            }
            _ => None,
        };
        common::feed(&mut pipe, PipelineConfig::default(), p, &mut out);
        if let (Some(t_s), Some(pl)) = (end_s, pipe.as_ref()) {
            states.push((t_s, pl.flow_reversed()));
            highest_share = highest_share.max(pl.reverse_flow_share().unwrap_or(0.0));
        }
    }
    (states, highest_share, out)
}

#[test]
fn a_swapped_interface_is_reported_as_reversed_flow() {
    for (rate_hz, snr_db, hr) in [
        (8000, 30.0, 60.0),
        (20_000, 8.0, 140.0),
        (48_000, 15.0, 45.0),
    ] {
        let label = format!("{rate_hz} Hz, {snr_db} dB, {hr}/min");
        let mut cfg = sim(2, 20.0, snr_db, hr);
        cfg.sample_rate_hz = rate_hz;
        cfg.iq_swapped = true;
        let (states, share, out) = run(cfg);
        let first = states
            .iter()
            .find(|s| s.1)
            .unwrap_or_else(|| panic!("{label}: never reported"));
        assert!(first.0 < 4.5, "{label}: first reported at {} s", first.0);
        assert!(
            states.iter().filter(|s| s.0 > first.0).all(|s| s.1),
            "{label}: the report comes and goes"
        );
        assert!(share > 0.9, "{label}: reverse share {share}");
        assert!(
            out.beats.iter().all(|b| !b.accepted),
            "{label}: a beat accepted from the noise of the forward half"
        );
    }
}

/// The aorta's own reverse flow, clutter, ectopics and every impairment:
/// a probe wired right is never reported reversed.
#[test]
fn a_normal_probe_is_never_reported_reversed() {
    let cases = common::normal_probes();
    for (label, cfg) in cases {
        let (states, share, _) = run(cfg);
        println!("{label}: highest reverse share {share:.3}");
        assert!(states.iter().all(|s| !s.1), "{label}: reported reversed");
        assert!(share < 0.4, "{label}: reverse share {share:.3}");
    }
}
