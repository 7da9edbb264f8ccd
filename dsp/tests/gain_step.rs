//! An anaesthetist turns the probe interface's receive gain up for a
//! better signal: everything received, noise included, steps up with it.
//! The interference detector, whose baseline rises at 1 dB/s, took a step
//! of more than its 6 dB margin for diathermy and rejected the beats until
//! it caught up. An interface reports the change (EVENT code 2), and the
//! pipeline then moves the detector's baseline by the step
//! (`Pipeline::receive_gain_changed`).

mod common;

use common::{Collect, feed, reasons, sim};
use odm_device_io::frame::{FLAG_CLIPPED, Payload};
use odm_dsp::{Pipeline, PipelineConfig, RejectReason};
use odm_simulator::VirtualProbe;

/// The gain steps at 20 s (20 kHz).
const STEP_SAMPLE: u64 = 400_000;

/// Runs 60 s at 75/min, 30 dB, the samples from [`STEP_SAMPLE`] on
/// multiplied by `step_db` (saturating, flagged clipped where they
/// saturate), the pipeline told of the change when `reported`; the beats
/// with their onset 19–40 s.
fn run(step_db: f64, reported: bool) -> Vec<odm_dsp::Beat> {
    let gain = 10_f64.powf(step_db / 20.0);
    let mut probe = VirtualProbe::new(sim(21, 60.0, 30.0, 75.0)).expect("sim");
    let mut pipe: Option<Pipeline> = None;
    let mut out = Collect::default();
    let mut told = false;
    while let Some(mut p) = probe.next_payload() {
        if let Payload::Iq(b) = &mut p
            && b.first_sample >= STEP_SAMPLE
        {
            let mut saturated = false;
            for x in b.samples.iter_mut().flatten() {
                let v = (f64::from(*x) * gain).round();
                saturated |= v.abs() > f64::from(i16::MAX);
                *x = v.clamp(f64::from(i16::MIN), f64::from(i16::MAX)) as i16;
            }
            if saturated {
                b.flags |= FLAG_CLIPPED;
            }
            if reported && !told {
                pipe.as_mut()
                    .expect("pipeline")
                    .receive_gain_changed(STEP_SAMPLE);
                told = true;
            }
        }
        feed(&mut pipe, PipelineConfig::default(), p, &mut out);
    }
    out.beats
        .into_iter()
        .filter(|b| b.onset_s > 19.0 && b.onset_s < 40.0)
        .collect()
}

#[test]
fn a_reported_gain_change_is_not_taken_for_interference() {
    for step_db in [10.0, 16.0, -10.0] {
        let told = run(step_db, true);
        let interference = told
            .iter()
            .filter(|b| b.reject_reason == Some(RejectReason::Interference))
            .count();
        assert_eq!(
            interference,
            0,
            "{step_db:+} dB, reported: {}",
            reasons(&told)
        );
        assert!(
            told.iter().filter(|b| b.accepted).count() + 1 >= told.len(),
            "{step_db:+} dB, reported: {}",
            reasons(&told)
        );
    }
    // Unreported, a 16 dB step is taken for diathermy for seconds (a
    // receiver cannot tell it from the broadband noise diathermy adds).
    let untold = run(16.0, false);
    let interference = untold
        .iter()
        .filter(|b| b.reject_reason == Some(RejectReason::Interference))
        .count();
    assert!(interference >= 5, "16 dB unreported: {}", reasons(&untold));
}
