//! The envelope against stationary Gaussian noise shaped to a known Doppler
//! spectrum — the primer's second ground-truth method ("shaped Gaussian
//! noise whose power follows the target Doppler spectrum"), independent of
//! the virtual probe's scatterer model. The edge of the target spectrum is
//! the true maximum velocity. The whole table:
//! `cargo test -p odm-dsp --test shaped_noise -- --ignored --nocapture`.
use odm_dsp::{EnvelopePoint, Pipeline, PipelineConfig, PipelineSink, StreamParams};
use rustfft::FftPlanner;
use rustfft::num_complex::Complex32;

const FS: f64 = 20_000.0;

fn params() -> StreamParams {
    StreamParams {
        sample_rate_hz: FS as u32,
        carrier_hz: 4_000_000,
        beam_angle_deg: 45.0,
    }
}

/// Deterministic standard normal pairs (xorshift + Box–Muller).
struct Gauss(u64);
impl Gauss {
    fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    fn pair(&mut self) -> (f64, f64) {
        let r = (-2.0 * self.uniform().ln()).sqrt();
        let a = std::f64::consts::TAU * self.uniform();
        (r * a.cos(), r * a.sin())
    }
}

/// `n` samples of complex Gaussian noise with power density `∝ (1 − f/f_e)^β`
/// on `(0, f_e)` and 0 elsewhere, total power `signal_power`, plus white
/// noise of total power `noise_power`; quantised to i16 I/Q.
fn shaped(
    n: usize,
    edge_hz: f64,
    beta: f64,
    signal_power: f64,
    noise_power: f64,
    seed: u64,
) -> Vec<[i16; 2]> {
    let mut g = Gauss(seed | 1);
    let mut x: Vec<Complex32> = (0..n)
        .map(|_| {
            let (a, b) = g.pair();
            Complex32::new(a as f32, b as f32)
        })
        .collect();
    let mut planner = FftPlanner::new();
    planner.plan_fft_forward(n).process(&mut x);
    let df = FS / n as f64;
    let mut shape: Vec<f64> = (0..n)
        .map(|k| {
            let f = k as f64 * df;
            // Mean density over the bin, exact for the power law near the edge.
            let (a, b) = (f.min(edge_hz), (f + df).min(edge_hz));
            if b <= a {
                return 0.0;
            }
            let p = beta + 1.0;
            let cum = |v: f64| -(1.0 - v / edge_hz).powf(p) * edge_hz / p;
            (cum(b) - cum(a)) / df
        })
        .collect();
    let total: f64 = shape.iter().sum();
    shape.iter_mut().for_each(|s| *s /= total);
    for (v, s) in x.iter_mut().zip(&shape) {
        *v *= s.sqrt() as f32;
    }
    planner.plan_fft_inverse(n).process(&mut x);
    // Each output sample now has E|x|² = Σ shape = 1 (unnormalised FFTs: n·n/n²·…).
    let scale_sig = (signal_power / n as f64).sqrt() as f32;
    let sigma_n = (noise_power / 2.0).sqrt();
    x.iter()
        .map(|v| {
            let (a, b) = g.pair();
            let i = v.re * scale_sig + (a * sigma_n) as f32;
            let q = v.im * scale_sig + (b * sigma_n) as f32;
            [
                i.round().clamp(-32768.0, 32767.0) as i16,
                q.round().clamp(-32768.0, 32767.0) as i16,
            ]
        })
        .collect()
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
    median_error_with(None, edge_cm_s, beta, snr_db, seed)
}

fn median_error_with(
    method: Option<odm_dsp::envelope::EnvelopeMethod>,
    edge_cm_s: f64,
    beta: f64,
    snr_db: f64,
    seed: u64,
) -> (f64, f64) {
    let p = params();
    let edge_hz = p.shift_hz_from_velocity_cm_s(edge_cm_s);
    let n = 1 << 17; // 6.5 s
    let noise_power = 200.0_f64.powi(2);
    let signal_power = noise_power * 10f64.powf(snr_db / 10.0);
    let iq = shaped(n, edge_hz, beta, signal_power, noise_power, seed);
    let mut cfg = PipelineConfig::default();
    if let Some(m) = method {
        cfg.envelope.method = m;
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
    (med, a[a.len() * 95 / 100])
}

#[test]
#[ignore]
fn print_shaped_noise_envelope_error() {
    for beta in [0.0, -0.5, -2.0 / 3.0, -7.0 / 9.0] {
        for snr in [30.0, 15.0, 8.0] {
            for v in [40.0, 80.0, 120.0] {
                let (med, p95) = median_error_cm_s(v, beta, snr, 7);
                println!(
                    "beta {beta:+.2} snr {snr:>2} v {v:>3}: median {med:+.2} p95 |e| {p95:.2}"
                );
            }
        }
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
    let (plateau, _) = median_error_with(
        Some(odm_dsp::envelope::EnvelopeMethod::PlateauThreshold),
        80.0,
        -2.0 / 3.0,
        15.0,
        3,
    );
    assert!(
        plateau > 2.0,
        "the step correction was expected to read high on a blunt spectrum: {plateau:+.2}"
    );
}
