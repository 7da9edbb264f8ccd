//! Narrowband interference: a steady tone (a switching supply, another
//! machine's oscillator) added to the probe's signal must not be read as
//! flow. Before the line canceller, a tone above the flow was integrated
//! into the envelope up to its frequency: diastole read as the tone's
//! velocity and beats were lost or accepted with wrong values.

mod common;

use common::{Run, describe, reasons, run_sim, run_sim_altered, sim};
use odm_device_io::frame::Payload;
use odm_dsp::{Pipeline, PipelineConfig, PipelineSink, SpectrumColumn};
use odm_simulator::{ImpairmentSchedule, SimConfig, VirtualProbe};

/// Median noise power per bin the pipeline measures on `sim`'s signal
/// (the spectrum's units: complex noise of variance σ² reads σ² per bin).
fn noise_power_per_bin(sim: SimConfig) -> f64 {
    #[derive(Default)]
    struct Noise(Vec<f64>);
    impl PipelineSink for Noise {
        fn spectrum_column(&mut self, c: &SpectrumColumn<'_>) {
            self.0.push(f64::from(c.noise_power));
        }
    }
    let mut probe = VirtualProbe::new(SimConfig {
        duration_s: Some(5.0),
        ..sim
    })
    .expect("sim");
    let mut pipe: Option<Pipeline> = None;
    let mut sink = Noise::default();
    while let Some(p) = probe.next_payload() {
        common::feed(&mut pipe, PipelineConfig::default(), p, &mut sink);
    }
    sink.0.sort_by(f64::total_cmp);
    sink.0[sink.0.len() / 2]
}

/// Runs `sim` with a complex tone at `tone_hz` whose power in its
/// spectrum bin stands `peak_over_noise` times over the noise floor.
fn run_with_tone(sim: SimConfig, tone_hz: f64, peak_over_noise: f64) -> Run {
    run_tone(sim, tone_hz, peak_over_noise, false)
}

fn run_with_tone_kept(sim: SimConfig, tone_hz: f64, peak_over_noise: f64) -> Run {
    run_tone(sim, tone_hz, peak_over_noise, true)
}

fn run_tone(sim: SimConfig, tone_hz: f64, peak_over_noise: f64, keep_envelope: bool) -> Run {
    let add = tone_adder(&sim, tone_hz, peak_over_noise);
    run_sim_altered(sim, PipelineConfig::default(), keep_envelope, add)
}

/// Adds to every I/Q block of `sim`'s stream a complex tone at `tone_hz`
/// whose power in its spectrum bin stands `peak_over_noise` times over the
/// noise floor.
fn tone_adder(
    sim: &SimConfig,
    tone_hz: f64,
    peak_over_noise: f64,
) -> impl FnMut(&mut Payload) + use<> {
    let fs = f64::from(sim.sample_rate_hz);
    let noise = noise_power_per_bin(sim.clone());
    // A tone of amplitude A reads A²·(Σw)²/Σw² in its bin; for the 10 ms
    // Hann window (200 samples at 20 kHz) (Σw)²/Σw² = 100²/75.
    let window_len = (0.010 * fs).round();
    let gain = (window_len / 2.0).powi(2) / (3.0 * window_len / 8.0);
    let amplitude = (peak_over_noise * noise / gain).sqrt();
    let step = 2.0 * std::f64::consts::PI * tone_hz / fs;
    move |p| {
        if let Payload::Iq(b) = p {
            for (k, s) in b.samples.iter_mut().enumerate() {
                let phase = step * (b.first_sample + k as u64) as f64;
                let (sin, cos) = phase.sin_cos();
                let add =
                    |x: i16, d: f64| (f64::from(x) + d).round().clamp(-32768.0, 32767.0) as i16;
                s[0] = add(s[0], amplitude * cos);
                s[1] = add(s[1], amplitude * sin);
            }
        }
    }
}

/// The beat-level checks every tone case must pass: every beat found,
/// and the accepted ones measured as on a clean signal.
fn assert_beats_as_clean(r: &Run, what: &str) {
    let s = &r.score;
    let line = format!("{what}: {} {}", describe(s), reasons(&r.out.beats));
    assert!(s.sensitivity() >= 0.99 && s.ppv() >= 0.99, "{line}");
    assert!(s.accepted >= 40, "{line}");
    assert!(s.onset_ms.median_abs <= 3.0, "{line}");
    assert!(s.ft_ms.median_abs <= 5.0, "{line}");
    assert!(s.sd_pct.median_abs <= 3.0, "{line}");
    assert!(
        s.pv_pct.median_abs <= 3.0 && s.pv_pct.p95_abs <= 6.0,
        "{line}"
    );
    assert!(s.hr_bpm.p95_abs <= 1.0, "{line}");
}

/// A tone above the systolic peak (5 kHz ≈ 137 cm/s against peaks of
/// ≈ 90): before the canceller, at 40× the noise in its bin, no beat at
/// all was found; at 10×, accepted beats read PV 25–30 % high.
#[test]
fn a_steady_tone_above_the_flow_is_not_read_as_flow() {
    for level in [10.0, 40.0] {
        let r = run_with_tone(sim(1, 40.0, 15.0, 75.0), 5_040.0, level);
        assert_beats_as_clean(&r, &format!("5040 Hz ×{level}"));
    }
}

/// A tone inside the flow's range (2 kHz ≈ 55 cm/s, mid-way up the rise):
/// the rising and falling edges cross it. Before the edge points there
/// were left out of the fits, onsets were 5 ms late.
#[test]
fn a_tone_inside_the_flows_range_leaves_the_beats_as_they_were() {
    for seed in [1, 2] {
        let r = run_with_tone(sim(seed, 40.0, 15.0, 75.0), 2_040.0, 40.0);
        assert_beats_as_clean(&r, &format!("seed {seed}, 2040 Hz ×40"));
    }
}

/// A tone 400× the noise in its bin (26 dB) is over the strong-tone
/// notch's level (100×) and still weak enough for the line canceller,
/// whose side bins stay under 2.5× the floor: the canceller holds it from
/// about 0.4 s, the notch declares it at 1.5–2 s. The beats before the
/// notch's declaration and during its acquisition were measured on a
/// spectrum with the tone interpolated out, and are kept (before, the
/// first 2.5–3 s of beats were rejected as `interference`: refgen's 2 kHz
/// tone 20 dB under the blood read sensitivity 0.936).
#[test]
fn a_tone_the_line_canceller_already_holds_costs_no_beat_when_notched() {
    for (seed, hz) in [(1, 2_040.0), (2, 5_040.0)] {
        let r = run_with_tone(sim(seed, 40.0, 15.0, 75.0), hz, 400.0);
        let what = format!("seed {seed}, {hz} Hz ×400");
        assert_beats_as_clean(&r, &what);
        assert_eq!(false_accepted(&r), 0, "{what}");
        assert!(
            r.out
                .beats
                .iter()
                .all(|b| b.reject_reason != Some(odm_dsp::RejectReason::Interference)),
            "{what}: {}",
            reasons(&r.out.beats)
        );
    }
}

/// Each spectrum column says how many tones are being cancelled in it (the
/// monitor shows it): none before the tone has been seen for a while, one
/// once it has.
#[test]
fn spectrum_columns_report_the_cancelled_tone() {
    #[derive(Default)]
    struct Lines(Vec<(f64, usize)>);
    impl PipelineSink for Lines {
        fn spectrum_column(&mut self, c: &SpectrumColumn<'_>) {
            self.0.push((c.t_s, c.narrowband_lines));
        }
    }
    let base = sim(3, 10.0, 15.0, 75.0);
    let mut add_tone = tone_adder(&base, 5_040.0, 40.0);
    let mut probe = VirtualProbe::new(base).expect("sim");
    let mut pipe: Option<Pipeline> = None;
    let mut sink = Lines::default();
    while let Some(mut p) = probe.next_payload() {
        add_tone(&mut p);
        common::feed(&mut pipe, PipelineConfig::default(), p, &mut sink);
    }
    let early = sink.0.iter().filter(|c| c.0 < 0.2).map(|c| c.1).max();
    let late: Vec<usize> = sink.0.iter().filter(|c| c.0 > 3.0).map(|c| c.1).collect();
    assert_eq!(early, Some(0));
    assert!(!late.is_empty() && late.iter().all(|&n| n == 1), "{late:?}");
}

/// The canceller must be inert on signals without tones: any line it
/// declared there would change measurements on real flow. Profiles,
/// rates, SNRs, steady phantoms, sample rates, clutter and impairments.
#[test]
fn signals_without_tones_declare_no_line() {
    let base = |seed: u64| SimConfig {
        seed,
        duration_s: Some(20.0),
        snr_db: Some(15.0),
        ..SimConfig::default()
    };
    let cases: Vec<(&str, SimConfig)> = vec![
        ("blunt 75/min", base(1)),
        (
            "parabolic 45/min 30 dB",
            SimConfig {
                profile_exponent: 2.0,
                hr_bpm: 45.0,
                snr_db: Some(30.0),
                ..base(2)
            },
        ),
        (
            "blunter 140/min 8 dB",
            SimConfig {
                profile_exponent: 9.0,
                hr_bpm: 140.0,
                snr_db: Some(8.0),
                ..base(3)
            },
        ),
        (
            "no added noise",
            SimConfig {
                snr_db: None,
                ..base(4)
            },
        ),
        (
            "phantom 20 cm/s",
            SimConfig {
                phantom_cm_s: Some(20.0),
                ..base(5)
            },
        ),
        (
            "phantom 80 cm/s, no noise",
            SimConfig {
                phantom_cm_s: Some(80.0),
                snr_db: None,
                ..base(6)
            },
        ),
        (
            "phantom 150 cm/s, plug-like",
            SimConfig {
                phantom_cm_s: Some(150.0),
                profile_exponent: 9.0,
                ..base(7)
            },
        ),
        (
            "8 kHz 120/min",
            SimConfig {
                sample_rate_hz: 8_000,
                block_len: 80,
                hr_bpm: 120.0,
                ..base(8)
            },
        ),
        (
            "48 kHz, clutter 45 dB",
            SimConfig {
                sample_rate_hz: 48_000,
                clutter_db: Some(45.0),
                ..base(9)
            },
        ),
        (
            "diastolic and reverse flow, ectopics",
            SimConfig {
                diastolic_flow_cm_s: 15.0,
                reverse_flow_cm_s: 20.0,
                ectopic_rate: 0.1,
                ..base(10)
            },
        ),
        (
            "diathermy",
            SimConfig {
                diathermy: ImpairmentSchedule::Random {
                    mean_interval_s: 5.0,
                    min_duration_s: 0.5,
                    max_duration_s: 3.0,
                },
                ..base(11)
            },
        ),
    ];
    // The strong-tone notch (on by default) must declare nothing either,
    // on the steady phantoms too: their spectra peak near the edge, high
    // over the bins 5 out like a tone, but the peak's power fades as
    // speckle does (`notch::DECLARE_STEADY_FRACTION`).
    let notching = PipelineConfig::default();
    assert!(notching.notch_strong_tones);
    for (what, cfg) in cases {
        let mut probe = VirtualProbe::new(cfg).expect("sim");
        let mut pipe: Option<Pipeline> = None;
        let (mut pushes, mut with_lines) = (0, 0);
        while let Some(p) = probe.next_payload() {
            let iq = matches!(p, Payload::Iq(_));
            let cfg = notching;
            common::feed(&mut pipe, cfg, p, &mut odm_dsp::NullSink);
            if let (true, Some(pl)) = (iq, pipe.as_ref()) {
                pushes += 1;
                with_lines += usize::from(
                    !pl.narrowband_lines().is_empty() || pl.notched_tones_hz().count() > 0,
                );
            }
        }
        assert!(pushes > 100, "{what}: {pushes} blocks");
        assert_eq!(
            with_lines, 0,
            "{what}: lines declared after {with_lines} of {pushes} blocks"
        );
    }
}

#[test]
#[ignore = "exploration: prints the damage a tone does"]
fn print_tone_damage() {
    for seed in 1..=2 {
        let base = sim(seed, 60.0, 15.0, 75.0);
        let clean = run_sim(base.clone(), PipelineConfig::default(), false);
        println!("seed {seed} clean: {}", common::outcome(&clean));
        for tone_hz in [1_040.0, 2_040.0, 5_040.0, -3_040.0] {
            for level in [10.0, 40.0, 160.0] {
                let r = run_with_tone(base.clone(), tone_hz, level);
                println!(
                    "seed {seed} tone {tone_hz} Hz ×{level}: {} {}",
                    describe(&r.score),
                    reasons(&r.out.beats)
                );
            }
        }
    }
}

#[test]
#[ignore = "exploration: where a cancelled tone moves the envelope"]
fn print_envelope_change_under_a_tone() {
    let base = sim(1, 20.0, 15.0, 75.0);
    let clean = common::run_sim(base.clone(), PipelineConfig::default(), true);
    let fs = f64::from(base.sample_rate_hz);
    let noise = noise_power_per_bin(base.clone());
    let _ = (fs, noise);
    let toned = run_with_tone_kept(base, 2_040.0, 40.0);
    let mut by_band = [(0.0_f64, 0usize); 12];
    for (a, b) in clean.out.envelope.iter().zip(&toned.out.envelope) {
        if a.0 < 3.0 {
            continue;
        }
        let band = ((a.1 / 10.0) as usize).min(11);
        by_band[band].0 += b.1 - a.1;
        by_band[band].1 += 1;
    }
    for (i, (s, n)) in by_band.iter().enumerate() {
        if *n > 0 {
            println!(
                "clean {:>3}–{:>3} cm/s: mean change {:+.2} (n {n})",
                i * 10,
                i * 10 + 10,
                s / *n as f64
            );
        }
    }
}

/// A tone as strong as the blood's whole signal (10⁴× the noise in its
/// bin), inside the flow's range: its Hann side lobes stand over the floor
/// for bins around it, so the line canceller never declares it. The
/// strong-tone notch ([`odm_dsp::notch`], the default) subtracts it from
/// the samples once seen (the low followers need ≈ 1.5 s, the beats around
/// that are rejected as `interference`), and the beats after are measured
/// as on a clean signal. Without the notch no beat is found (the tone is
/// read as flow and the signal reported lost): the safe failure, which the
/// second half holds.
#[test]
fn a_tone_as_strong_as_the_blood_is_notched_and_without_the_notch_no_beat_is_invented() {
    for (seed, hz) in [(1, 1_013.0), (2, 2_040.0)] {
        let base = sim(seed, 40.0, 15.0, 75.0);
        let add = tone_adder(&base, hz, 1.0e4);
        let r = run_sim_altered(base.clone(), PipelineConfig::default(), false, add);
        let s = &r.score;
        let line = format!(
            "{hz} Hz ×10⁴, default: {} {}",
            describe(s),
            reasons(&r.out.beats)
        );
        assert_eq!(false_accepted(&r), 0, "{line}");
        assert!(s.sensitivity() >= 0.9 && s.ppv() >= 0.95, "{line}");
        assert!(s.accepted >= 40, "{line}");
        assert!(s.onset_ms.median_abs <= 3.0, "{line}");
        assert!(s.ft_ms.median_abs <= 5.0, "{line}");
        assert!(s.sd_pct.median_abs <= 3.0, "{line}");
        assert!(s.pv_pct.median_abs <= 3.0, "{line}");

        let add = tone_adder(&base, hz, 1.0e4);
        let cfg = PipelineConfig {
            notch_strong_tones: false,
            ..PipelineConfig::default()
        };
        let r = run_sim_altered(base, cfg, false, add);
        let line = format!(
            "{hz} Hz ×10⁴, no notch: {} {}",
            describe(&r.score),
            reasons(&r.out.beats)
        );
        assert_eq!(false_accepted(&r), 0, "{line}");
    }
}

/// Accepted beats whose onset is not within 50 ms of a truth beat's.
fn false_accepted(r: &Run) -> usize {
    r.out
        .beats
        .iter()
        .filter(|b| b.accepted)
        .filter(|b| !r.truth.iter().any(|t| (t.onset_s - b.onset_s).abs() < 0.05))
        .count()
}
