//! A clean signal must not be rejected as interference: the live demo once
//! rejected ~10% of clean beats because single columns whose noise crossed
//! the threshold near the top of the band were taken for diathermy.

use odm_device_io::Payload;
use odm_dsp::{Beat, Pipeline, PipelineConfig, PipelineSink, RejectReason, StreamParams};
use odm_simulator::{ScheduleSegment, SimConfig, VirtualProbe};

#[derive(Default)]
struct Beats(Vec<Beat>);

impl PipelineSink for Beats {
    fn beat(&mut self, beat: &Beat) {
        self.0.push(beat.clone());
    }
}

fn beats_of(seed: u64, snr_db: f64) -> Vec<Beat> {
    beats_with(SimConfig {
        seed,
        duration_s: Some(40.0),
        snr_db: Some(snr_db),
        ..SimConfig::default()
    })
}

fn beats_with(cfg: SimConfig) -> Vec<Beat> {
    beats_and_truth(cfg).0
}

/// Beats rejected as `interference`.
fn interference_count(beats: &[Beat]) -> usize {
    beats
        .iter()
        .filter(|b| b.reject_reason == Some(RejectReason::Interference))
        .count()
}

#[test]
fn clean_beats_are_not_rejected_as_interference() {
    for snr_db in [15.0, 30.0] {
        let mut total = 0;
        for seed in 1..=4 {
            let beats = beats_of(seed, snr_db);
            let interference = interference_count(&beats);
            assert_eq!(
                interference,
                0,
                "seed {seed}, {snr_db} dB: {interference} of {} clean beats called interference",
                beats.len()
            );
            let accepted = beats.iter().filter(|b| b.accepted).count();
            // 40 s at ~75/min: ~48 complete cycles; the first may be lost to start-up.
            assert!(
                accepted >= 44,
                "seed {seed}, {snr_db} dB: {accepted} accepted"
            );
            total += beats.len();
        }
        assert!(total > 170, "{total} beats at {snr_db} dB");
    }
}

/// At 8 kHz the band ends at ±109 cm/s (4 MHz, 45°) and the simulator caps
/// the edge at 0.45 × the sample rate (98 cm/s): at 120/min the peaks sit
/// at that cap, a few bins under the top of the band, and speckle carries
/// columns to the top. Those are flow, not interference: an external check
/// found 11–14 of ~119 clean beats rejected as `interference` (seeds 1–3).
/// Interference is broadband and lifts the noise floor with it.
#[test]
fn flow_near_the_top_of_a_narrow_band_is_not_interference() {
    for seed in 1..=3 {
        let beats = beats_with(SimConfig {
            seed,
            duration_s: Some(40.0),
            sample_rate_hz: 8_000,
            block_len: 80,
            hr_bpm: 120.0,
            ..SimConfig::default()
        });
        let interference = interference_count(&beats);
        assert_eq!(
            interference,
            0,
            "seed {seed}: {interference} of {}",
            beats.len()
        );
        assert!(
            beats.iter().filter(|b| b.accepted).count() >= 70,
            "seed {seed}"
        );
    }
}

#[test]
fn a_step_in_heart_rate_is_a_new_rhythm_not_a_run_of_ectopic_beats() {
    let segment = |start_s: f64, hr_bpm: f64| ScheduleSegment {
        start_s,
        hr_bpm: Some(hr_bpm),
        sv_ml: None,
        ftc_ms: None,
        pv_cm_s: None,
    };
    let beats = beats_with(SimConfig {
        seed: 5,
        duration_s: Some(50.0),
        snr_db: Some(20.0),
        schedule: vec![segment(0.0, 60.0), segment(20.0, 110.0)],
        ..SimConfig::default()
    });
    let after_step: Vec<&Beat> = beats.iter().filter(|b| b.onset_s > 21.0).collect();
    // A change of rate is not an irregular rhythm.
    let irregular: Vec<f64> = beats
        .iter()
        .filter(|b| b.irregular_rhythm)
        .map(|b| b.onset_s)
        .collect();
    assert!(irregular.is_empty(), "irregular rhythm at {irregular:?}");
    assert!(
        after_step.len() > 40,
        "{} beats after the step",
        after_step.len()
    );
    let ectopic = after_step
        .iter()
        .filter(|b| b.reject_reason == Some(RejectReason::Ectopic))
        .count();
    // At most the first beats of the new rate, before it is recognised.
    assert!(
        ectopic <= 2,
        "{ectopic} of {} beats after a 60 → 110/min step called ectopic",
        after_step.len()
    );
}

/// Atrial-fibrillation-like cycles (CV 20 %) are the rhythm, not ectopy:
/// once the detector has seen it (the first 12 beats: half its 16-cycle
/// history, then 3 beats in a row), the detected beats are accepted but
/// for the rare run of cycles that happens to look regular (seed 4: from
/// 10.8 s eight cycles of 0.54–0.61 s and one of 0.75 s, then one of
/// 0.43 s, taken for a premature beat). Measured over seeds 3–22: 11 of
/// ≈ 1 700 beats rejected (9 before the envelope kept out of the wall band,
/// 2026-12-03), at most 4 in one run. With extrasystoles in sinus rhythm
/// each true premature beat is still rejected as ectopic, and nothing else
/// is.
#[test]
fn an_irregular_rhythm_is_accepted_and_extrasystoles_in_sinus_rhythm_are_not() {
    let (mut rejected, mut counted) = (Vec::new(), 0);
    for seed in 3..=8 {
        let (beats, truth) = beats_and_truth(SimConfig {
            seed,
            duration_s: Some(60.0),
            snr_db: Some(20.0),
            hr_bpm: 100.0,
            hr_variability: 0.2,
            ..SimConfig::default()
        });
        let (_, sens) = hr_errors(&beats, &truth, 60.0);
        assert!(sens >= 0.99, "seed {seed}: sensitivity {sens:.4}");
        counted += beats.len() - 12;
        rejected.extend(
            beats[12..]
                .iter()
                .filter(|b| !b.accepted)
                .map(|b| (seed, b.onset_s, b.reject_reason)),
        );
    }
    // 1 %: about 5 of the ≈ 520 beats.
    assert!(
        rejected.len() * 100 <= counted,
        "{} of {counted} rejected: {rejected:?}",
        rejected.len()
    );
    let (beats, truth) = beats_and_truth(SimConfig {
        seed: 5,
        duration_s: Some(60.0),
        snr_db: Some(20.0),
        hr_bpm: 100.0,
        ectopic_rate: 0.08,
        ..SimConfig::default()
    });
    let premature: Vec<f64> = truth
        .iter()
        .filter(|t| t.ectopic && t.onset_s > 10.0 && t.next_onset_s < 59.5)
        .map(|t| t.onset_s)
        .collect();
    assert!(premature.len() >= 4, "{} premature beats", premature.len());
    for b in beats.iter().filter(|b| b.onset_s > 10.0) {
        let is_premature = premature.iter().any(|&t| (t - b.onset_s).abs() < 0.05);
        let ectopic = b.reject_reason == Some(RejectReason::Ectopic);
        assert_eq!(
            is_premature, ectopic,
            "beat at {:.2} s: premature {is_premature}, {:?}",
            b.onset_s, b.reject_reason
        );
    }
}

/// Beats and the simulator's exact truth beats of one clean run.
fn beats_and_truth(cfg: SimConfig) -> (Vec<Beat>, Vec<odm_simulator::TruthBeat>) {
    let mut probe = VirtualProbe::new(cfg).expect("valid config");
    let info = probe.probe_info();
    let params = StreamParams {
        sample_rate_hz: info.sample_rate_hz,
        carrier_hz: info.carrier_hz,
        beam_angle_deg: info.beam_angle_deg(),
    };
    let mut pipeline = Pipeline::new(PipelineConfig::default(), params).expect("pipeline");
    let mut sink = Beats::default();
    let mut truth = Vec::new();
    while let Some(payload) = probe.next_payload() {
        if let Payload::Iq(b) = payload {
            pipeline.push(b.first_sample, &b.samples, b.clipped(), &mut sink);
        }
        truth.extend(probe.take_truth_beats());
    }
    pipeline.finish(&mut sink);
    truth.extend(probe.take_truth_beats());
    (sink.0, truth)
}

/// |detected − truth| HR of every detected beat whose onset is within 50 ms
/// of a truth onset, sorted; and the fraction of truth beats (away from the
/// ends) so matched.
fn hr_errors(beats: &[Beat], truth: &[odm_simulator::TruthBeat], end_s: f64) -> (Vec<f64>, f64) {
    let mut errs = Vec::new();
    let mut eligible = 0;
    let mut matched = 0;
    for t in truth
        .iter()
        .filter(|t| t.onset_s > 0.5 && t.next_onset_s < end_s - 0.5)
    {
        eligible += 1;
        if let Some(b) = beats.iter().find(|b| (b.onset_s - t.onset_s).abs() < 0.05) {
            matched += 1;
            errs.push((b.hr_bpm - t.hr_bpm).abs());
        }
    }
    errs.sort_by(f64::total_cmp);
    (errs, f64::from(matched) / f64::from(eligible.max(1)))
}

/// At 140/min a 1/min HR error is a 3 ms error of the onset-to-onset
/// interval. The 20–60 % line/parabola onset fit had a p95 HR error of
/// 4.5–6.3/min on this profile (docs/validation.md before the wide robust
/// fit); the 10–85 % robust line with the pooled curvature correction and
/// the concave-rise bound measures 1.6–2.2/min with the step-corrected
/// envelope and 0.9–1.4/min with the shape-fit one (goal 1/min: the rest is
/// the envelope's speckle error, correlated over the whole edge).
#[test]
fn onset_to_onset_intervals_are_consistent_at_140_per_min() {
    for seed in [7, 8] {
        let (beats, truth) = beats_and_truth(SimConfig {
            seed,
            duration_s: Some(30.0),
            snr_db: Some(30.0),
            hr_bpm: 140.0,
            ..SimConfig::default()
        });
        let (errs, sens) = hr_errors(&beats, &truth, 30.0);
        assert!(sens >= 0.99, "seed {seed}: sensitivity {sens:.4}");
        let p95 = errs[(0.95 * (errs.len() - 1) as f64).round() as usize];
        assert!(
            p95 <= 2.5,
            "seed {seed}: p95 |HR error| {p95:.2}/min over {} beats",
            errs.len()
        );
    }
}

/// The parabolic, low-PV profile (PV ≈ 50–65 cm/s, a flat spectrum) lost
/// 4–6 % of its beats at 75/min and 24 % at 45/min: short envelope spikes set
/// the peak, a fade inside the fit band flattened the onset line (onsets
/// 50–90 ms early: a missed and a false beat each), and a falling edge
/// whose band points did not fall dropped the beat altogether.
#[test]
fn low_pv_parabolic_beats_are_found_and_timed() {
    for (hr_bpm, min_sens) in [(75.0, 0.97), (45.0, 0.96)] {
        let (beats, truth) = beats_and_truth(SimConfig {
            seed: 7,
            duration_s: Some(40.0),
            snr_db: Some(30.0),
            hr_bpm,
            profile_exponent: 2.0,
            peak_frac: 0.38,
            ftc_ms: 320.0,
            sv_ml: 50.0,
            ..SimConfig::default()
        });
        let (_, sens) = hr_errors(&beats, &truth, 40.0);
        assert!(sens >= min_sens, "{hr_bpm}/min: sensitivity {sens:.4}");
        let false_beats = beats
            .iter()
            .filter(|b| b.onset_s > 0.5 && b.next_onset_s < 39.5)
            .filter(|b| !truth.iter().any(|t| (t.onset_s - b.onset_s).abs() < 0.05))
            .count();
        assert!(
            false_beats as f64 <= (1.0 - min_sens) * beats.len() as f64,
            "{hr_bpm}/min: {false_beats} false beats of {}",
            beats.len()
        );
    }
}

/// At 45/min the falling edge is long and shallow. Median |FT error| on
/// this run: 25.7 ms with the first detector, 13.3 with the wide onset fit
/// and the 20–60 % end parabola, 10.1 with the end's pooled curvature
/// correction and valve-closure bound (goal 5 ms; the rest is the
/// envelope's low-velocity tail).
#[test]
fn flow_time_of_slow_falling_edges_at_45_per_min() {
    let (beats, truth) = beats_and_truth(SimConfig {
        seed: 7,
        duration_s: Some(40.0),
        snr_db: Some(30.0),
        hr_bpm: 45.0,
        ..SimConfig::default()
    });
    let mut errs: Vec<f64> = truth
        .iter()
        .filter(|t| t.onset_s > 0.5 && t.next_onset_s < 39.5)
        .filter_map(|t| {
            let b = beats
                .iter()
                .find(|b| (b.onset_s - t.onset_s).abs() < 0.05)?;
            Some((b.ft_ms - t.ft_ms).abs())
        })
        .collect();
    assert!(errs.len() >= 25, "{} beats matched", errs.len());
    errs.sort_by(f64::total_cmp);
    let median = errs[errs.len() / 2];
    assert!(median <= 12.0, "median |FT error| {median:.1} ms");
}
