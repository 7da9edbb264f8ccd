//! An anaesthetist turns the probe interface's receive gain up for a
//! better signal: everything received, noise included, steps up with it.
//! The interference detector, whose baseline rises at 1 dB/s, took a step
//! of more than its 6 dB margin for diathermy and rejected the beats until
//! it caught up. An interface reports the change (EVENT code 2), and the
//! pipeline then moves the detector's baseline by the step
//! (`Pipeline::receive_gain_changed`).

mod common;

use common::{Collect, feed, reasons, run_sim, sim};
use odm_device_io::frame::{FLAG_CLIPPED, Payload};
use odm_dsp::{Pipeline, PipelineConfig, RejectReason};
use odm_simulator::{ImpairmentSchedule, VirtualProbe};

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
                    .receive_gain_changed(STEP_SAMPLE, 300 + (step_db * 10.0).round() as i32);
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

/// A clipping episode inside diathermy (the virtual probe reports each
/// episode's gain steps, up and back): the detector's baseline must come
/// out of it where it went in. An external check found seeds where, once
/// the two overlapped, every beat of the next 20–60 s was rejected as
/// `interference`: the pending step was measured against the burst's
/// floors before it, and the baseline moved 20–60 dB down. `odm simulate
/// --duration 120 --seed 44 --diathermy --clipping` is seed 44 here. Seeds
/// 41, 44 and 46 need the reported gains' difference (the episode's first
/// report comes in clean signal); 4 and 16 also the hold after a step
/// measured out of a burst (53/57, 45/83, 59/75, 22/61, 47/88 clear beats
/// accepted before; over seeds 1–100 now, 93–100 %, and never a beat
/// inside an impairment). `ODM_SEEDS=1,2,…` runs others.
#[test]
fn clipping_inside_diathermy_leaves_the_beats_after_both_accepted() {
    let seeds: Vec<u64> = std::env::var("ODM_SEEDS").map_or(vec![4, 16, 41, 44, 46], |s| {
        s.split(',').map(|x| x.parse().expect("seed")).collect()
    });
    let mut failed = Vec::new();
    for seed in seeds {
        let mut c = sim(seed, 120.0, 20.0, 75.0);
        c.diathermy = ImpairmentSchedule::Random {
            mean_interval_s: 20.0,
            min_duration_s: 2.0,
            max_duration_s: 5.0,
        };
        c.clipping = ImpairmentSchedule::Random {
            mean_interval_s: 20.0,
            min_duration_s: 0.5,
            max_duration_s: 2.0,
        };
        let r = run_sim(c, PipelineConfig::default(), false);
        assert_eq!(r.score.accepted_in_impairment, 0, "seed {seed}");
        // Beats whose whole cycle is 2 s clear of every impairment.
        let clear: Vec<_> = r
            .out
            .beats
            .iter()
            .filter(|b| {
                r.impairments
                    .iter()
                    .all(|&(a, e)| b.next_onset_s < a - 2.0 || b.onset_s > e + 2.0)
            })
            .cloned()
            .collect();
        let accepted = clear.iter().filter(|b| b.accepted).count();
        let line = format!(
            "seed {seed}: {accepted} of {} clear beats accepted; {}",
            clear.len(),
            reasons(&clear)
        );
        eprintln!("{line}");
        // The hold after a step measured out of a burst costs up to 5 s.
        if clear.len() < 20 || (accepted as f64) < 0.9 * clear.len() as f64 {
            failed.push(line);
        }
    }
    assert!(failed.is_empty(), "{failed:#?}");
}
