//! At a low sample rate a fast systole's top wraps round the band's edge
//! (aliasing): at 8 kHz, 4 MHz and 45° any velocity above 109 cm/s. Before
//! `odm_dsp::alias`, beats peaking at 120 cm/s were accepted with PV cut to
//! the band's top, and beats peaking at 155 cm/s were all rejected as
//! `interference`; neither said why. Now the pipeline says the stream is
//! aliasing, follows the edge across +fs/2 up to 1.75 × the limit, and
//! rejects as `aliased` the beats past that — and never says any of this
//! of flow under the limit.

mod common;

use common::{Collect, sim};
use odm_dsp::{Pipeline, PipelineConfig, RejectReason};
use odm_simulator::{SimConfig, TruthBeat, VirtualProbe};

struct Outcome {
    out: Collect,
    truth: Vec<TruthBeat>,
    aliased_s: f64,
    /// The pipeline said "aliasing" after some payload.
    ever_aliasing: bool,
    max_velocity_cm_s: f64,
}

fn run(cfg: SimConfig) -> Outcome {
    let mut probe = VirtualProbe::new(cfg).expect("sim");
    let mut pipe: Option<Pipeline> = None;
    let mut out = Collect::default();
    let mut truth = Vec::new();
    let mut ever_aliasing = false;
    while let Some(p) = probe.next_payload() {
        common::feed(&mut pipe, PipelineConfig::default(), p, &mut out);
        ever_aliasing |= pipe.as_ref().is_some_and(Pipeline::aliasing);
        truth.extend(probe.take_truth_beats());
    }
    let mut pl = pipe.expect("pipeline");
    pl.finish(&mut out);
    truth.extend(probe.take_truth_beats());
    Outcome {
        out,
        truth,
        aliased_s: pl.aliased_s(),
        ever_aliasing,
        max_velocity_cm_s: pl.max_velocity_cm_s(),
    }
}

/// The virtual probe at 8 kHz, 30 dB, 75/min, with `sv_ml` setting the
/// peak velocity and wrapping allowed or not.
fn at_8_khz(seed: u64, sv_ml: f64, allow_aliasing: bool) -> SimConfig {
    let mut c = sim(seed, 30.0, 30.0, 75.0);
    c.sample_rate_hz = 8000;
    c.sv_ml = sv_ml;
    c.allow_aliasing = allow_aliasing;
    c
}

/// Peaks of about 120 and 155 cm/s at 8 kHz (1.1 and 1.4 × the 109 cm/s
/// limit) are followed across +fs/2 and measured; peaks of about 200 cm/s
/// (1.9 ×, past the widest unwrapping, 1.75 ×) are rejected as `aliased`.
/// No beat is called interference.
#[test]
fn beats_above_the_limit_are_measured_and_beyond_the_unwrapping_rejected() {
    for (sv_ml, measured) in [(100.0, true), (130.0, true), (170.0, false)] {
        let o = run(at_8_khz(4, sv_ml, true));
        let limit = o.max_velocity_cm_s;
        assert!((limit - 108.9).abs() < 0.5, "limit {limit} cm/s");
        let mut above = 0;
        for b in &o.out.beats {
            assert_ne!(
                b.reject_reason,
                Some(RejectReason::Interference),
                "SV {sv_ml}: aliasing taken for interference at {} s",
                b.onset_s
            );
            // The envelope of a wrapped systole past the unwrapping is not
            // the flow's: an onset may be misplaced, but such a beat must
            // not be accepted either.
            let Some(t) = o
                .truth
                .iter()
                .find(|t| (t.onset_s - b.onset_s).abs() < 0.05)
            else {
                assert!(!b.accepted, "SV {sv_ml}: false beat at {} s", b.onset_s);
                continue;
            };
            if t.pv_cm_s <= 1.05 * limit {
                continue;
            }
            above += 1;
            if measured {
                assert!(
                    b.accepted,
                    "SV {sv_ml}: {:?} at {} s",
                    b.reject_reason, b.onset_s
                );
                let pv_err = (b.pv_cm_s - t.pv_cm_s) / t.pv_cm_s;
                let sd_err = (b.sd_cm - t.sd_cm) / t.sd_cm;
                assert!(
                    pv_err.abs() < 0.05 && sd_err.abs() < 0.05,
                    "SV {sv_ml}: beat at {} s, PV {:.1} for {:.1}, SD {:.2} for {:.2}",
                    b.onset_s,
                    b.pv_cm_s,
                    t.pv_cm_s,
                    b.sd_cm,
                    t.sd_cm
                );
            } else {
                assert_eq!(
                    b.reject_reason,
                    Some(RejectReason::Aliased),
                    "SV {sv_ml}: beat at {} s, true PV {:.0} cm/s",
                    b.onset_s,
                    t.pv_cm_s
                );
            }
        }
        assert!(
            above >= 30,
            "SV {sv_ml}: only {above} beats above the limit"
        );
        assert!(
            o.ever_aliasing && o.aliased_s > 1.0,
            "SV {sv_ml}: not reported"
        );
    }
}

/// Beats peaking at 0.83–0.90 of the limit (the top of their spectrum
/// within a few bins of the band's edge), and every normal probe: never
/// aliasing, and the same beats as before.
#[test]
fn flow_under_the_limit_is_never_aliasing() {
    let mut cases = common::normal_probes();
    // The virtual probe caps every edge at 0.45 × the sample rate (98 cm/s
    // at 8 kHz) unless wrapping is allowed.
    cases.push(("8 kHz, capped at 98 cm/s", at_8_khz(4, 130.0, false)));
    cases.push(("8 kHz, PV 90 cm/s", {
        let mut c = at_8_khz(5, 70.0, true);
        c.pv_cm_s = Some(90.0);
        c
    }));
    for (label, cfg) in cases {
        let o = run(cfg);
        assert_eq!(o.aliased_s, 0.0, "{label}");
        assert!(!o.ever_aliasing, "{label}");
        assert!(
            o.out
                .beats
                .iter()
                .all(|b| b.reject_reason != Some(RejectReason::Aliased)),
            "{label}"
        );
    }
}
