//! The envelope against stationary Gaussian noise shaped to a known Doppler
//! spectrum (`odm_simulator::ShapedNoise`: the primer's second ground-truth
//! method, independent of the virtual probe's scatterer model). The edge of
//! the target spectrum is the true maximum velocity. The whole table:
//! `cargo test -p odm-dsp --test shaped_noise -- --ignored --nocapture`.
use odm_dsp::{EnvelopePoint, Pipeline, PipelineConfig, PipelineSink, StreamParams};
use odm_simulator::ShapedNoise;

const FS: f64 = 20_000.0;

fn params() -> StreamParams {
    StreamParams {
        sample_rate_hz: FS as u32,
        carrier_hz: 4_000_000,
        beam_angle_deg: 45.0,
    }
}

struct Points(Vec<f64>);
impl PipelineSink for Points {
    fn envelope_point(&mut self, p: &EnvelopePoint) {
        self.0.push(p.velocity_cm_s);
    }
}

/// Median envelope error (cm/s) after the first second, for a stationary
/// spectrum with edge `edge_cm_s` and shape `beta` at `snr_db`.
fn median_error_cm_s(edge_cm_s: f64, beta: f64, snr_db: f64, seed: u64) -> (f64, f64) {
    let (med, p95, _) = median_error_with(None, edge_cm_s, beta, 0.0, snr_db, seed);
    (med, p95)
}

/// As [`median_error_cm_s`], for a density tilted by `(f/f_e)^gamma` and
/// with the given envelope configuration (`None`: the default); also the
/// pooled shape exponent at the end.
fn median_error_with(
    envelope: Option<odm_dsp::envelope::EnvelopeConfig>,
    edge_cm_s: f64,
    beta: f64,
    gamma: f64,
    snr_db: f64,
    seed: u64,
) -> (f64, f64, f64) {
    let p = params();
    let edge_hz = p.shift_hz_from_velocity_cm_s(edge_cm_s);
    let iq = ShapedNoise {
        sample_rate_hz: FS,
        edge_hz,
        beta,
        gamma,
        snr_db,
        noise_rms_counts: 150.0,
        seed,
    }
    .generate(1 << 17); // 6.5 s
    let mut cfg = PipelineConfig::default();
    if let Some(e) = envelope {
        cfg.envelope = e;
    } else if let Ok(name) = std::env::var("ODM_ENV_METHOD") {
        cfg.envelope.method = odm_dsp::envelope::EnvelopeMethod::ALL
            .into_iter()
            .find(|m| m.name() == name)
            .unwrap();
    }
    let mut pipe = Pipeline::new(cfg, p).unwrap();
    let mut pts = Points(Vec::new());
    for (i, chunk) in iq.chunks(200).enumerate() {
        pipe.push((i * 200) as u64, chunk, false, &mut pts);
    }
    let mut e: Vec<f64> = pts.0[200..].iter().map(|v| v - edge_cm_s).collect();
    e.sort_by(f64::total_cmp);
    let med = e[e.len() / 2];
    let mut a: Vec<f64> = e.iter().map(|x| x.abs()).collect();
    a.sort_by(f64::total_cmp);
    (med, a[a.len() * 95 / 100], pipe.envelope_shape_beta())
}

#[test]
#[ignore]
fn print_shaped_noise_envelope_error() {
    for beta in [0.5, 0.25, 0.0, -0.25, -0.5, -2.0 / 3.0, -7.0 / 9.0] {
        for snr in [30.0, 15.0, 8.0] {
            for v in [15.0, 20.0, 25.0, 30.0, 40.0, 80.0, 150.0] {
                let (med, p95) = median_error_cm_s(v, beta, snr, 7);
                println!(
                    "beta {beta:+.2} snr {snr:>2} v {v:>3}: median {med:+.2} p95 |e| {p95:.2}"
                );
            }
        }
    }
}

/// On flat (β = 0) and edge-vanishing (β > 0) spectra the shape fit's own
/// reading has a heavy tail (p95 6–11 cm/s at 15 dB), so the envelope
/// takes the noise-threshold crossing there (`crossing_weight` in
/// envelope.rs); with the two readings' mean it was 4–5 cm/s at p95.
#[test]
fn flat_and_edge_vanishing_spectra_keep_a_light_tail() {
    for (i, &(beta, v, snr)) in [(0.0, 40.0, 15.0), (0.0, 120.0, 15.0), (0.25, 80.0, 15.0)]
        .iter()
        .enumerate()
    {
        let (med, p95) = median_error_cm_s(v, beta, snr, 21 + i as u64);
        assert!(
            p95 <= 3.0 && med.abs() <= 1.0,
            "β {beta:+.2}, {v} cm/s, {snr} dB: median {med:+.2}, p95 |error| {p95:.2} cm/s"
        );
    }
}

/// The default envelope is unbiased to within 1 cm/s (about half an FFT bin)
/// on flat and edge-peaked spectra alike, at 40–120 cm/s and 8–30 dB; the
/// step-corrected plateau threshold is not (it reads the half-height of the
/// edge peak, above the edge), which shows this check can fail.
#[test]
fn default_envelope_is_unbiased_on_shaped_gaussian_noise() {
    let cases = [
        (0.0, 40.0, 15.0),
        (0.0, 120.0, 8.0),
        (-0.5, 80.0, 15.0),
        (-2.0 / 3.0, 40.0, 8.0),
        (-2.0 / 3.0, 120.0, 30.0),
        (-7.0 / 9.0, 80.0, 15.0),
    ];
    for (i, &(beta, v, snr)) in cases.iter().enumerate() {
        let (med, _) = median_error_cm_s(v, beta, snr, 11 + i as u64);
        let limit = if snr < 10.0 { 1.5 } else { 1.0 };
        assert!(
            med.abs() <= limit,
            "β {beta:+.2}, {v} cm/s, {snr} dB: median envelope error {med:+.2} cm/s"
        );
    }
    let (plateau, _, _) = median_error_with(
        Some(odm_dsp::envelope::EnvelopeConfig {
            method: odm_dsp::envelope::EnvelopeMethod::PlateauThreshold,
            ..Default::default()
        }),
        80.0,
        -2.0 / 3.0,
        0.0,
        15.0,
        3,
    );
    assert!(
        plateau > 2.0,
        "the step correction was expected to read high on a blunt spectrum: {plateau:+.2}"
    );
}

/// The envelope's error at low stationary edges once the pooled shape has
/// been learnt: 3 s at 80 cm/s, then `v` for 6.5 s (the first second of it
/// not scored). At edges under 16 bins (34 cm/s) the shape is not pooled,
/// so a stationary low edge alone would be read with the blunt prior.
#[test]
#[ignore]
fn print_low_edge_error_after_the_shape_is_learnt() {
    let p = params();
    for beta in [0.0, -2.0 / 3.0] {
        for snr in [30.0, 15.0] {
            for v in [15.0, 20.0, 25.0, 30.0, 40.0] {
                let make = |edge_cm_s: f64, n: usize, seed: u64| {
                    ShapedNoise {
                        sample_rate_hz: FS,
                        edge_hz: p.shift_hz_from_velocity_cm_s(edge_cm_s),
                        beta,
                        gamma: 0.0,
                        snr_db: snr,
                        noise_rms_counts: 150.0,
                        seed,
                    }
                    .generate(n)
                };
                let mut iq = make(80.0, 60_000, 5);
                iq.extend(make(v, 1 << 17, 6));
                let mut pipe = Pipeline::new(PipelineConfig::default(), p).unwrap();
                let mut pts = Points(Vec::new());
                for (i, chunk) in iq.chunks(200).enumerate() {
                    pipe.push((i * 200) as u64, chunk, false, &mut pts);
                }
                let mut e: Vec<f64> = pts.0[800..].iter().map(|x| x - v).collect();
                e.sort_by(f64::total_cmp);
                let n = e.len();
                println!(
                    "beta {beta:+.2} snr {snr:>2} v {v:>3}: median {:+.2} mean {:+.2} p10 {:+.2} p90 {:+.2}",
                    e[n / 2],
                    e.iter().sum::<f64>() / n as f64,
                    e[n / 10],
                    e[9 * n / 10]
                );
            }
        }
    }
}

/// A velocity distribution beyond the power-law family's reach: `3q²`
/// (γ = 2, β = 0: few slow cells, most of the blood near the maximum,
/// level at the edge). Its lower bands balance like no member of the family
/// (their ratio 2.5 against at most 1.67), and read as the family's most
/// edge-peaked member (β = −0.85) its edge came 1–3 cm/s low — 3–6 % of SD
/// on independent generators at 3–15 dB (docs/dsp.md, "Shape beyond the
/// family"). Read with the two-parameter model, the edge is read at least
/// 0.5 cm/s closer everywhere; from 80 cm/s the pooled exponent is within
/// 0.2 of the −0.19 that balances like `3q²` over the top quarter and the
/// envelope within 1 cm/s (at 50–60 cm/s it pools −0.4…−0.5). Without the
/// model, the check fails.
#[test]
fn a_density_rising_from_slow_flow_is_read_at_its_edge() {
    let tilt_off = odm_dsp::envelope::EnvelopeConfig {
        shape_tilt: false,
        ..Default::default()
    };
    for (i, &(v, snr)) in [(80.0, 15.0), (120.0, 8.0), (60.0, 15.0), (50.0, 15.0)]
        .iter()
        .enumerate()
    {
        let seed = 31 + i as u64;
        let (med, p95, beta) = median_error_with(None, v, 0.0, 2.0, snr, seed);
        let (med_off, _, beta_off) = median_error_with(Some(tilt_off), v, 0.0, 2.0, snr, seed);
        println!(
            "{v} cm/s {snr} dB: median {med:+.2} p95 {p95:.2} β {beta:+.3}; family only {med_off:+.2} β {beta_off:+.3}"
        );
        assert!(
            beta_off < -0.8 && med_off.abs() > med.abs() + 0.5,
            "{v} cm/s, {snr} dB: family only β {beta_off:+.3}, median {med_off:+.2} (with the tilt {med:+.2}, β {beta:+.3})"
        );
        if v >= 80.0 {
            assert!(
                (beta + 0.19).abs() < 0.2 && med.abs() <= 1.0,
                "{v} cm/s, {snr} dB: pooled β {beta:+.3}, median envelope error {med:+.2} cm/s"
            );
        }
    }
}
