//! Accuracy against the virtual probe's exact truth: the SNR × HR × profile
//! grid, impairments (no accepted beat inside diathermy, gaps or clipping),
//! signal lost/regained, calibration and determinism.
//!
//! Goals (issue 3): at SNR ≥ 15 dB sensitivity and PPV ≥ 99.5%, median
//! |onset error| ≤ 5 ms, median |FT error| ≤ 5 ms, median SD and PV error
//! ≤ 3%, HR p95 ≤ 1/min; at 8 dB sensitivity ≥ 95%, PPV ≥ 99%; zero accepted
//! beats inside impairments. Met goals are asserted at the goal; the rest
//! (FT, the parabolic SD, HR p95 at 140/min, the parabolic onset) at bounds
//! marked "regression bound" just above today's measurement
//! (docs/validation.md lists the gap), so they cannot silently get worse.
mod common;
use common::*;
use odm_dsp::validation::{GRID_PROFILES, Score};
use odm_dsp::{PipelineConfig, ProbeCalibration, Status};
use odm_simulator::{ImpairmentSchedule, Interval, SimConfig};

const SECONDS: f64 = 40.0;

fn merged(scores: &[Score]) -> (f64, f64, usize) {
    let (mut te, mut tm, mut dc, mut dm, mut imp) = (0, 0, 0, 0, 0);
    for s in scores {
        te += s.truth_eligible;
        tm += s.truth_matched;
        dc += s.detected_clean;
        dm += s.detected_matched;
        imp += s.accepted_in_impairment;
    }
    (
        tm as f64 / te.max(1) as f64,
        dm as f64 / dc.max(1) as f64,
        imp,
    )
}

fn grid_cell(snr_db: f64, hr_bpm: f64, profile: usize, seed: u64) -> Score {
    let s = with_profile(sim(seed, SECONDS, snr_db, hr_bpm), &GRID_PROFILES[profile]);
    run_sim(s, PipelineConfig::default(), false).score
}

/// Whether `profile` has the blunt, edge-peaked spectrum of the aorta (the
/// parabolic, low-PV profile is held to looser per-beat bounds: its slow,
/// low edges end near the envelope's floor set by the wall band).
fn blunt(profile: usize) -> bool {
    GRID_PROFILES[profile].is_blunt()
}

/// Every cell of the grid at `snr_db`, all three profiles. What meets the
/// issue's goal is asserted at the goal; what does not yet is held at a
/// regression bound just above today's measurement (docs/validation.md,
/// "Against the goals"), labelled as such, so it cannot silently get worse.
fn check_clean(snr_db: f64) {
    let mut all = Vec::new();
    for (p, profile) in GRID_PROFILES.iter().enumerate() {
        let name = profile.name;
        for hr in [45.0, 75.0, 140.0] {
            let s = grid_cell(snr_db, hr, p, 7);
            eprintln!("{snr_db} dB {hr}/min {name}: {}", describe(&s));
            // Goal 5 ms over the grid (asserted below on the mean of the
            // cells' medians); regression bound per cell.
            let onset_bound = if blunt(p) { 5.0 } else { 7.0 };
            assert!(
                s.onset_ms.median_abs <= onset_bound,
                "{name} {hr}/min: median |onset error| {:.2} ms",
                s.onset_ms.median_abs
            );
            // Goal 3%: met in every cell of the grid (docs/validation.md,
            // 60 s × 2 seeds). In this 40 s cell of one seed the parabolic
            // profile at 30 dB 75/min reads 3.01 % since the envelope's
            // leakage floor (1.85 % before; seed 8 reads 1.09 %), so the
            // parabolic profile is held at a regression bound of 3.5 %.
            let pv_bound = if blunt(p) { 3.0 } else { 3.5 };
            assert!(
                s.pv_pct.median_abs <= pv_bound,
                "{name} {hr}/min: median |PV error| {:.2}% (goal 3%)",
                s.pv_pct.median_abs
            );
            // Goal 3%: met on the blunt profiles; regression bound on the
            // parabolic one (its flat spectrum reads low on the virtual
            // probe, docs/dsp.md "Known limits").
            let sd_bound = if blunt(p) { 3.0 } else { 5.0 };
            assert!(
                s.sd_pct.median_abs <= sd_bound,
                "{name} {hr}/min: median |SD error| {:.2}%",
                s.sd_pct.median_abs
            );
            // Goal 5 ms: regression bound (blunt 45/min: 5–6 ms over the
            // 60 s × 2 grid, 7.4 ms in this 40 s cell).
            let ft_bound = if blunt(p) { 9.0 } else { 20.0 };
            assert!(
                s.ft_ms.median_abs <= ft_bound,
                "{name} {hr}/min: median |FT error| {:.2} ms",
                s.ft_ms.median_abs
            );
            // Goal p95 1/min: regression bound (met at 45 and 75/min on the
            // blunt profiles; onset jitter of ~1 ms is 1/min at 140/min).
            assert!(
                s.hr_bpm.p95_abs <= 3.0,
                "{name} {hr}/min: p95 |HR error| {:.2}/min",
                s.hr_bpm.p95_abs
            );
            if blunt(p) && hr < 100.0 {
                assert!(
                    s.hr_bpm.p95_abs <= 1.0,
                    "{name} {hr}/min: p95 |HR error| {:.2}/min (goal 1)",
                    s.hr_bpm.p95_abs
                );
            }
            all.push(s);
        }
    }
    let mean_onset = all.iter().map(|s| s.onset_ms.median_abs).sum::<f64>() / all.len() as f64;
    assert!(
        mean_onset <= 5.0,
        "mean of median |onset error| {mean_onset:.2} ms (goal 5)"
    );
    let (sens, ppv, imp) = merged(&all);
    assert_eq!(imp, 0);
    assert!(
        sens >= 0.995,
        "sensitivity {sens:.4} at {snr_db} dB (goal 0.995)"
    );
    assert!(ppv >= 0.995, "PPV {ppv:.4} at {snr_db} dB (goal 0.995)");
}

#[test]
fn detects_beats_and_times_onsets_at_30_db() {
    check_clean(30.0);
}

#[test]
fn detects_beats_and_times_onsets_at_15_db() {
    check_clean(15.0);
}

#[test]
fn keeps_sensitivity_and_ppv_at_8_db() {
    let mut all = Vec::new();
    for (p, profile) in GRID_PROFILES.iter().enumerate() {
        for hr in [45.0, 75.0, 140.0] {
            let s = grid_cell(8.0, hr, p, 11);
            eprintln!("8 dB {hr}/min {}: {}", profile.name, describe(&s));
            all.push(s);
        }
    }
    let (sens, ppv, imp) = merged(&all);
    assert_eq!(imp, 0);
    assert!(sens >= 0.95, "sensitivity {sens:.4} at 8 dB");
    assert!(ppv >= 0.99, "PPV {ppv:.4} at 8 dB (goal 0.99)");
}

#[test]
fn never_accepts_beats_inside_diathermy_gaps_or_clipping() {
    for seed in 1..=3 {
        let s = SimConfig {
            seed,
            duration_s: Some(60.0),
            snr_db: Some(15.0),
            hr_bpm: 60.0 + 20.0 * seed as f64,
            diathermy: ImpairmentSchedule::Random {
                mean_interval_s: 8.0,
                min_duration_s: 0.5,
                max_duration_s: 3.0,
            },
            gaps: ImpairmentSchedule::Random {
                mean_interval_s: 9.0,
                min_duration_s: 0.01,
                max_duration_s: 0.3,
            },
            clipping: ImpairmentSchedule::Random {
                mean_interval_s: 10.0,
                min_duration_s: 0.05,
                max_duration_s: 0.5,
            },
            ..SimConfig::default()
        };
        let r = run_sim(s, PipelineConfig::default(), false);
        eprintln!(
            "seed {seed}: {} impairments, {}",
            r.impairments.len(),
            describe(&r.score)
        );
        assert!(
            r.impairments.len() >= 5,
            "the schedule must produce impairments"
        );
        assert_eq!(r.score.accepted_in_impairment, 0);
        // Every emitted beat overlapping an impairment carries a reason.
        for b in &r.out.beats {
            let hit = r
                .impairments
                .iter()
                .any(|&(a, e)| b.onset_s < e && b.next_onset_s > a);
            if hit {
                assert!(
                    !b.accepted,
                    "accepted beat at {:.3} s overlaps an impairment",
                    b.onset_s
                );
            }
        }
        // Clean beats are still found between the impairments.
        assert!(
            r.score.sensitivity() > 0.9,
            "sensitivity {:.3}",
            r.score.sensitivity()
        );
    }
}

#[test]
fn reports_gap_then_signal_lost_and_regained_around_an_unplug() {
    let s = SimConfig {
        seed: 3,
        duration_s: Some(40.0),
        snr_db: Some(20.0),
        unplug: Some(Interval {
            start_s: 10.0,
            end_s: 24.0,
        }),
        ..SimConfig::default()
    };
    let r = run_sim(s, PipelineConfig::default(), false);
    let gap = r
        .out
        .statuses
        .iter()
        .position(|s| matches!(s, Status::Gap { .. }));
    let lost = r
        .out
        .statuses
        .iter()
        .position(|s| matches!(s, Status::SignalLost { .. }));
    let back = r
        .out
        .statuses
        .iter()
        .position(|s| matches!(s, Status::SignalRegained { .. }));
    let (Some(gap), Some(lost), Some(back)) = (gap, lost, back) else {
        panic!("statuses: {:?}", r.out.statuses);
    };
    assert!(gap < back && lost < back, "{:?}", r.out.statuses);
    if let Status::Gap { t_s, lost_samples } = r.out.statuses[gap] {
        assert!((t_s - 10.0).abs() < 0.02, "gap at {t_s}");
        assert!((lost_samples as f64 / 20_000.0 - 14.0).abs() < 0.02);
    }
    if let Status::SignalLost { t_s } = r.out.statuses[lost] {
        // 10 s after the last accepted beat before the unplug.
        assert!(t_s > 19.0 && t_s < 26.0, "lost at {t_s}");
    }
    assert_eq!(r.score.accepted_in_impairment, 0);
}

/// A gap longer than any cycle (the probe unplugged for 5 s) cuts a
/// systole whose onset already closed the beat before it, or leaves one
/// pending. Either way that systole is still a beat, emitted at the first
/// onset after the gap and rejected as `gap`, so that every beat's
/// `next_onset_s` is the next beat's `onset_s` (analysis-output.md). Found
/// by an external check of `odm analyse` (the beat before an unplug
/// pointed at an onset no beat had). Unplug times across a cycle, so both
/// the pending and the in-progress case occur.
#[test]
fn a_long_gap_keeps_every_next_onset_a_beat_onset() {
    for k in 0..4 {
        let start_s = 10.0 + 0.2 * f64::from(k);
        let s = SimConfig {
            seed: 11,
            duration_s: Some(25.0),
            snr_db: Some(20.0),
            unplug: Some(Interval {
                start_s,
                end_s: start_s + 5.0,
            }),
            ..SimConfig::default()
        };
        let r = run_sim(s, PipelineConfig::default(), false);
        let beats = &r.out.beats;
        for w in beats.windows(2) {
            assert_eq!(
                w[0].next_onset_s, w[1].onset_s,
                "unplug at {start_s}: beat {}",
                w[0].index
            );
        }
        // The beat whose cycle the unplugging cuts. (The next onset can
        // sit a hair before the replug: a rise the data resumes on is
        // extrapolated back to its foot.)
        let across: Vec<_> = beats
            .iter()
            .filter(|b| b.onset_s < start_s && b.next_onset_s > start_s)
            .collect();
        assert_eq!(across.len(), 1, "unplug at {start_s}: {beats:?}");
        assert_eq!(
            across[0].reject_reason,
            Some(odm_dsp::RejectReason::Gap),
            "{:?}",
            across[0]
        );
        assert_eq!(r.score.accepted_in_impairment, 0);
        assert!(
            beats.len() >= 20,
            "unplug at {start_s}: {} beats",
            beats.len()
        );
    }
}

#[test]
fn calibration_hook_removes_a_probe_gain_error() {
    let base = SimConfig {
        seed: 5,
        duration_s: Some(30.0),
        snr_db: Some(25.0),
        ..SimConfig::default()
    };
    let reference = run_sim(base.clone(), PipelineConfig::default(), false)
        .score
        .pv_pct
        .median;
    let miscal = SimConfig {
        probe_gain_error: 0.10,
        ..base
    };
    let raw = run_sim(miscal.clone(), PipelineConfig::default(), false)
        .score
        .pv_pct
        .median;
    let cfg = PipelineConfig {
        calibration: ProbeCalibration {
            gain: 1.10,
            ..ProbeCalibration::default()
        },
        ..PipelineConfig::default()
    };
    let fixed = run_sim(miscal, cfg, false).score.pv_pct.median;
    assert!(
        (raw - reference - 10.0).abs() < 2.5,
        "10% gain error shows as {:.2}% − {:.2}%",
        raw,
        reference
    );
    assert!(
        (fixed - reference).abs() < 1.5,
        "calibrated {fixed:.2}% vs reference {reference:.2}%"
    );
}

/// Low flow (blunt profile, SV 30 ml, peak ≈ 36 cm/s): the edges' fit bands
/// start at the envelope's floor (16 cm/s, 44 % of the peak), so the
/// onset and end are extrapolated a long way. FT read 22 ms long here
/// before the curvature correction was allowed to grow with that
/// extrapolation (beat.rs, `edge_roots`); regression bound, the goal is 5 ms.
/// Nearly every such beat says its FT is less certain (`Beat::ft_low_flow`),
/// and no beat of the usual SV 70 ml (peak ≈ 83 cm/s) does.
#[test]
fn low_flow_keeps_its_beats_and_flow_time() {
    let mut s = sim(7, SECONDS, 15.0, 75.0);
    s.sv_ml = 30.0;
    let run = run_sim(s, PipelineConfig::default(), false);
    let flagged = run.out.beats.iter().filter(|b| b.ft_low_flow).count();
    // (A beat whose peak a speckle lifts over 48 cm/s is not: 99 % in
    // docs/validation.md, "Low flow".)
    let n = run.out.beats.len();
    assert!(
        20 * flagged >= 19 * n,
        "{flagged} of {n} low flow beats flagged"
    );
    let usual = run_sim(
        sim(7, SECONDS, 15.0, 75.0),
        PipelineConfig::default(),
        false,
    );
    assert!(!usual.out.beats.is_empty());
    assert!(usual.out.beats.iter().all(|b| !b.ft_low_flow));
    let r = run.score;
    eprintln!("{}", describe(&r));
    assert!(
        r.sensitivity() >= 0.995 && r.ppv() >= 0.995,
        "{}",
        describe(&r)
    );
    assert!(
        r.ft_ms.median_abs <= 15.0,
        "median |FT error| {:.1} ms",
        r.ft_ms.median_abs
    );
    assert!(
        r.sd_pct.median_abs <= 5.0,
        "median |SD error| {:.1}%",
        r.sd_pct.median_abs
    );
}

/// The goals hold over the stream parameters the serial spec allows, not
/// only the default 20 kHz / 4 MHz / 45°: every stage is sized from the
/// sample rate, and velocities from the carrier and angle (blunt profile,
/// 15 dB, 75/min). Measured (30 s): onset ≤ 1.9 ms, FT ≤ 3.9 ms, SD ≤ 1.3 %,
/// PV ≤ 0.9 %, HR p95 ≤ 0.5/min. At a 2 MHz carrier (not an oesophageal
/// Doppler probe's) the same velocities span half the bins and the wall band
/// is twice as fast: FT 5.9 ms, HR p95 0.8/min (docs/validation.md, "Stream
/// parameters"), so it is not held to the goals here.
#[test]
fn meets_the_goals_across_sample_rates_carriers_and_beam_angles() {
    for (fs, f0, angle_cdeg) in [
        (8_000, 4_000_000, 4500),
        (10_000, 4_000_000, 4500),
        (48_000, 4_000_000, 4500),
        (20_000, 8_000_000, 4500),
        (20_000, 4_000_000, 6000),
        (20_000, 4_000_000, 3000),
    ] {
        let mut s = sim(7, 30.0, 15.0, 75.0);
        (s.sample_rate_hz, s.carrier_hz, s.beam_angle_cdeg) = (fs, f0, angle_cdeg);
        let r = run_sim(s, PipelineConfig::default(), false).score;
        let what = format!("{fs} Hz, {f0} Hz, {angle_cdeg} cdeg: {}", describe(&r));
        assert!(r.sensitivity() >= 0.995 && r.ppv() >= 0.995, "{what}");
        assert!(r.onset_ms.median_abs <= 5.0, "{what}");
        assert!(r.ft_ms.median_abs <= 5.0, "{what}");
        assert!(r.sd_pct.median_abs <= 3.0, "{what}");
        assert!(r.pv_pct.median_abs <= 3.0, "{what}");
        assert!(r.hr_bpm.p95_abs <= 1.0, "{what}");
    }
}

/// The analysis window's time smear (dsp/src/ramp.rs, dsp/src/dechirp.rs):
/// without the correction and the dechirped columns the envelope leads the
/// blunt profile's rising edge and lags its falling one at high SNR, so
/// onsets come early and SD reads high; with them both biases are gone.
/// Dechirping alone (steep edges only) takes off part of it.
#[test]
fn the_window_smear_correction_removes_the_early_onset_and_high_sd() {
    let cell = |ramp_correction: bool, dechirp: bool| {
        let mut s = sim(7, SECONDS, 30.0, 75.0);
        s.profile_exponent = 6.0;
        s.peak_frac = 0.3;
        let cfg = PipelineConfig {
            ramp_correction,
            dechirp,
            ..PipelineConfig::default()
        };
        run_sim(s, cfg, false).score
    };
    let (off, dechirp, on) = (cell(false, false), cell(false, true), cell(true, true));
    eprintln!(
        "off: {}\ndechirp only: {}\non: {}",
        describe(&off),
        describe(&dechirp),
        describe(&on)
    );
    assert!(dechirp.onset_ms.median > off.onset_ms.median + 0.3);
    assert!(dechirp.sd_pct.median < off.sd_pct.median - 0.5);
    // The problem, as measured before the correction existed (−1.6 ms then;
    // −1.4 since the virtual probe's clutter lost its spurs, 2026-12-01;
    // −2.0 ms and SD +1.9 % since the envelope's leakage floor, which keeps
    // the threshold over the side lobes of these 30 dB columns: −2.3 ms,
    // +2.5 % without it).
    assert!(off.onset_ms.median < -1.0, "{}", off.onset_ms.median);
    assert!(off.sd_pct.median > 1.5, "{}", off.sd_pct.median);
    // Corrected.
    assert!(on.onset_ms.median.abs() < 1.0, "{}", on.onset_ms.median);
    assert!(on.sd_pct.median.abs() < 1.5, "{}", on.sd_pct.median);
    assert!(on.ft_ms.median_abs < off.ft_ms.median_abs);
}

#[test]
fn same_input_gives_bit_identical_beats() {
    let a = run_sim(sim(9, 15.0, 12.0, 80.0), PipelineConfig::default(), true);
    let b = run_sim(sim(9, 15.0, 12.0, 80.0), PipelineConfig::default(), true);
    assert!(!a.out.beats.is_empty());
    assert_eq!(a.out.beats, b.out.beats);
    assert_eq!(a.out.envelope, b.out.envelope);
}
