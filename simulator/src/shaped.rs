//! Stationary complex Gaussian noise shaped to a known Doppler spectrum: the
//! primer's second ground-truth method ("shaped Gaussian noise whose power
//! follows the target Doppler spectrum"), independent of the virtual
//! probe's scatterer model. The spectrum's edge is the true maximum
//! velocity; white receiver noise is added at a set SNR.
//!
//! The target density is `∝ (1 − f/f_e)^β` on `(0, f_e)` — the power-law
//! family of velocity distributions (`β = 2/n − 1` for the profile
//! `v(r) = v_max(1 − (r/R)^n)`: 0 is parabolic, flat; −2/3 and −7/9 are the
//! blunt n = 6 and n = 9). It is imposed on white noise in the frequency
//! domain (one long FFT, each bin scaled by the square root of the density
//! integrated over it), so the signal is exactly stationary and Gaussian.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use rustfft::FftPlanner;
use rustfft::num_complex::Complex32;

/// A stationary shaped-noise test signal.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ShapedNoise {
    /// Sample rate, Hz.
    pub sample_rate_hz: f64,
    /// Edge of the spectrum (the maximum Doppler shift), Hz; positive.
    pub edge_hz: f64,
    /// Shape exponent β (> −1): density `∝ (1 − f/f_e)^β` below the edge.
    pub beta: f64,
    /// Tilt exponent γ (> −1): the density is also multiplied by
    /// `(f/f_e)^γ`. 0 is the power-law family; γ = 2 with β = 0 is `3q²`,
    /// a distribution with fewer slow cells than any profile of the family
    /// (most of the blood near the maximum velocity, level at the edge).
    pub gamma: f64,
    /// Signal power over noise power, dB (total powers, not per bin).
    pub snr_db: f64,
    /// RMS of the white noise per I/Q component, ADC counts.
    pub noise_rms_counts: f64,
    /// Seed of the noise.
    pub seed: u64,
}

impl ShapedNoise {
    /// `n` samples (rounded up to a power of two internally, truncated back),
    /// quantised to 16-bit I/Q and clamped at full scale.
    pub fn generate(&self, n: usize) -> Vec<[i16; 2]> {
        let len = n.next_power_of_two().max(2);
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let mut gauss = || -> f32 { StandardNormal.sample(&mut rng) };
        let mut x: Vec<Complex32> = (0..len).map(|_| Complex32::new(gauss(), gauss())).collect();
        let mut planner = FftPlanner::new();
        planner.plan_fft_forward(len).process(&mut x);
        let df = self.sample_rate_hz / len as f64;
        let p = self.beta + 1.0;
        let edge = self.edge_hz;
        // Integral of the density from 0 to v (≤ edge).
        let cum = |v: f64| (1.0 - (1.0 - v / edge).powf(p)) * edge / p;
        let mut total = 0.0;
        let shape: Vec<f64> = (0..len)
            .map(|k| {
                // Bin k holds [k·df, (k+1)·df) of the positive half only.
                let (a, b) = ((k as f64 * df).min(edge), ((k + 1) as f64 * df).min(edge));
                let m = if b > a && k < len / 2 {
                    let m = cum(b) - cum(a);
                    // The tilt at the bin's middle: bins are ~1e-4 of the
                    // edge wide, so this is the integral to ~1e-8.
                    if self.gamma == 0.0 {
                        m
                    } else {
                        m * (0.5 * (a + b) / edge).powf(self.gamma)
                    }
                } else {
                    0.0
                };
                total += m;
                m
            })
            .collect();
        for (v, m) in x.iter_mut().zip(&shape) {
            *v *= (m / total.max(f64::MIN_POSITIVE)).sqrt() as f32;
        }
        planner.plan_fft_inverse(len).process(&mut x);
        // Complex noise with unit-variance parts has E|x|² = 2; two
        // unnormalised transforms leave E|x|² = 2·len·Σ shape = 2·len.
        let noise_power = 2.0 * self.noise_rms_counts.powi(2);
        let signal_power = noise_power * 10f64.powf(self.snr_db / 10.0);
        let scale = (signal_power / (2.0 * len as f64)).sqrt() as f32;
        let sigma = self.noise_rms_counts as f32;
        x.iter()
            .take(n)
            .map(|v| {
                let i = v.re * scale + sigma * gauss();
                let q = v.im * scale + sigma * gauss();
                [
                    i.round().clamp(-32768.0, 32767.0) as i16,
                    q.round().clamp(-32768.0, 32767.0) as i16,
                ]
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn power_and_band_are_as_asked() {
        let s = ShapedNoise {
            sample_rate_hz: 20_000.0,
            edge_hz: 3000.0,
            beta: 0.0,
            gamma: 0.0,
            snr_db: 20.0,
            noise_rms_counts: 100.0,
            seed: 1,
        };
        let n = 1 << 16;
        let iq = s.generate(n);
        let power: f64 = iq
            .iter()
            .map(|v| f64::from(v[0]).powi(2) + f64::from(v[1]).powi(2))
            .sum::<f64>()
            / n as f64;
        // Signal 100× noise (2·100² = 20 000 counts²): total ≈ 101 × 20 000.
        let want = 101.0 * 20_000.0;
        assert!((power / want - 1.0).abs() < 0.03, "{power} vs {want}");
        // Spectrum: power above the edge (and at negative shifts) is only
        // the white noise.
        let mut x: Vec<Complex32> = iq
            .iter()
            .map(|v| Complex32::new(f32::from(v[0]), f32::from(v[1])))
            .collect();
        FftPlanner::new().plan_fft_forward(n).process(&mut x);
        let band = |lo: f64, hi: f64| {
            let df = 20_000.0 / n as f64;
            let (a, b) = ((lo / df) as usize, (hi / df) as usize);
            x[a..b].iter().map(|c| c.norm_sqr() as f64).sum::<f64>() / (b - a) as f64
        };
        let inside = band(500.0, 2500.0);
        let above = band(3500.0, 9000.0);
        assert!(inside / above > 300.0, "in-band {inside} vs above {above}");
    }

    #[test]
    fn the_spectrum_holds_the_power_its_density_says() {
        let make = |beta, gamma| ShapedNoise {
            sample_rate_hz: 20_000.0,
            edge_hz: 4000.0,
            beta,
            gamma,
            snr_db: 30.0,
            noise_rms_counts: 50.0,
            seed: 3,
        };
        // Power of the generated signal in each band (Hz) of `bands`.
        let powers = |beta, gamma, n: usize, bands: &[(f64, f64)]| -> Vec<f64> {
            let mut x: Vec<Complex32> = make(beta, gamma)
                .generate(n)
                .iter()
                .map(|v| Complex32::new(f32::from(v[0]), f32::from(v[1])))
                .collect();
            FftPlanner::new().plan_fft_forward(n).process(&mut x);
            let df = 20_000.0 / n as f64;
            bands
                .iter()
                .map(|&(lo, hi)| {
                    x[(lo / df) as usize..(hi / df) as usize]
                        .iter()
                        .map(|c| c.norm_sqr() as f64)
                        .sum::<f64>()
                })
                .collect()
        };
        let share = |beta| {
            let p = powers(beta, 0.0, 1 << 15, &[(3200.0, 4000.0), (0.0, 4000.0)]);
            p[0] / p[1]
        };
        // Flat: the top fifth holds a fifth; β = −2/3: 0.2^(1/3) ≈ 0.58.
        assert!((share(0.0) - 0.2).abs() < 0.02, "{}", share(0.0));
        assert!(
            (share(-2.0 / 3.0) - 0.585).abs() < 0.03,
            "{}",
            share(-2.0 / 3.0)
        );
        // The tilt: 3q² (γ = 2, β = 0) holds q³ below q, so the top fifth
        // holds 1 − 0.8³ = 0.488 and [0.55, 0.8) holds 2.48× [0.3, 0.55).
        let bands = [
            (3200.0, 4000.0),
            (0.0, 4000.0),
            (2200.0, 3200.0),
            (1200.0, 2200.0),
        ];
        let p = powers(0.0, 2.0, 1 << 16, &bands);
        let top = p[0] / p[1];
        assert!((top - 0.488).abs() < 0.02, "{top}");
        let ratio = p[2] / p[3];
        assert!((ratio - 2.48).abs() < 0.1, "{ratio}");
    }
}
