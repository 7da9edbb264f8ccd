//! Beats against a reference independent of the virtual probe: shaped
//! Gaussian noise time-warped so that its edge follows a beat train of a
//! different waveform family (`odm_simulator::{WarpedShapedNoise,
//! SineBeats}`): quarter-sine systoles against the probe's `1 − (1 − u)^k`
//! rise and `1 − y^k` fall, a spectral continuum instead of 48 scatterer
//! groups. Between systoles the blood is still and its echo sits at 0 Hz,
//! under the wall filter. The truth is exact: onset and end where the
//! rate leaves and returns to zero, SD = PV·FT·2/π.
mod common;

use odm_dsp::validation::{RefBeat, Score, score};
use odm_dsp::{Beat, Pipeline, PipelineConfig, PipelineSink, StreamParams};
use odm_simulator::{SineBeats, WarpedShapedNoise};

/// Largest edge (rate 1), cm/s.
const V_MAX_CM_S: f64 = 100.0;

fn params() -> StreamParams {
    StreamParams {
        sample_rate_hz: 20_000,
        carrier_hz: 4_000_000,
        beam_angle_deg: 45.0,
    }
}

#[derive(Default)]
struct Beats(Vec<Beat>);
impl PipelineSink for Beats {
    fn beat(&mut self, b: &Beat) {
        self.0.push(b.clone());
    }
}

/// Runs `seconds` of the warped beat train (shape `beta`) through a
/// pipeline with `cfg` and scores its beats.
fn run(cfg: PipelineConfig, seconds: f64, hr_bpm: f64, beta: f64, snr_db: f64, seed: u64) -> Score {
    let train = SineBeats::new(seconds, hr_bpm, seed);
    let iq = WarpedShapedNoise {
        sample_rate_hz: f64::from(params().sample_rate_hz),
        edge_hz: params().shift_hz_from_velocity_cm_s(V_MAX_CM_S),
        beta,
        snr_db,
        seed,
    }
    .generate(seconds, |t| train.rate(t));
    let truth: Vec<RefBeat> = train
        .beats
        .iter()
        .map(|b| RefBeat {
            onset_s: b.onset_s,
            peak_s: b.peak_s(),
            end_s: b.end_s(),
            next_onset_s: b.next_onset_s(),
            sd_cm: b.sd_cm(V_MAX_CM_S),
            pv_cm_s: V_MAX_CM_S * b.amplitude,
            hr_bpm: 60.0 / b.cycle_s,
        })
        .collect();
    let mut pipe = Pipeline::new(cfg, params()).unwrap();
    let mut out = Beats::default();
    for (i, chunk) in iq.chunks(200).enumerate() {
        pipe.push((i * 200) as u64, chunk, false, &mut out);
    }
    pipe.finish(&mut out);
    score(&truth, &out.0, &[], (0.0, seconds), 0.05)
}

/// Prints the scores over heart rate, shape and SNR (`ODM_SECS`, default
/// 30; the detector's fit bands from `ODM_FIT_LO`, `ODM_FIT_HI`,
/// `ODM_RISE_LO`, `ODM_RISE_HI`).
#[test]
#[ignore]
fn print_warped_beat_scores() {
    let secs: f64 = std::env::var("ODM_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30.0);
    let mut cfg = PipelineConfig::default();
    let env = |k: &str| std::env::var(k).ok().and_then(|s| s.parse::<f32>().ok());
    for (key, field) in [
        ("ODM_FIT_LO", &mut cfg.detector.fit_lo),
        ("ODM_FIT_HI", &mut cfg.detector.fit_hi),
        ("ODM_RISE_LO", &mut cfg.detector.rise_fit_lo),
        ("ODM_RISE_HI", &mut cfg.detector.rise_fit_hi),
    ] {
        if let Some(x) = env(key) {
            *field = x;
        }
    }
    for beta in [-0.67, 0.0] {
        for snr in [15.0, 30.0] {
            for hr in [45.0, 75.0, 140.0] {
                let s = run(cfg, secs, hr, beta, snr, 11);
                println!("β {beta:+.2} {snr} dB {hr}/min: {}", common::describe(&s));
            }
        }
    }
}

/// The goals (issue 3) on this reference, where they are met: detection,
/// onset, FT, SD and PV at 45–140/min on a blunt and a flat spectrum, HR at
/// 75/min. Measured (30 s, seed 11): onset 0.6–2.3 ms, FT 3.0–4.2 ms, SD
/// ≤ 1.7 %, PV ≤ 0.9 %, HR p95 0.46–0.54/min at 75/min.
#[test]
fn quarter_sine_beats_on_warped_shaped_noise_meet_the_goals() {
    for (beta, snr_db, hr) in [
        (-0.67, 15.0, 45.0),
        (-0.67, 15.0, 75.0),
        (-0.67, 15.0, 140.0),
        (0.0, 30.0, 75.0),
    ] {
        let s = run(PipelineConfig::default(), 30.0, hr, beta, snr_db, 11);
        let what = format!("β {beta} {snr_db} dB {hr}/min: {}", common::describe(&s));
        assert!(s.sensitivity() >= 0.995 && s.ppv() >= 0.995, "{what}");
        assert!(s.onset_ms.median_abs <= 5.0, "{what}");
        assert!(s.ft_ms.median_abs <= 5.0, "{what}");
        assert!(s.sd_pct.median_abs <= 3.0, "{what}");
        assert!(s.pv_pct.median_abs <= 3.0, "{what}");
        if hr < 100.0 {
            assert!(s.hr_bpm.p95_abs <= 1.0, "{what}");
        } else {
            // Not the goal: at 140/min HR p95 reads 1.4–1.7/min here
            // (docs/dsp.md, "Known limits"); held at a regression bound.
            assert!(s.hr_bpm.p95_abs <= 2.0, "{what}");
        }
    }
}
