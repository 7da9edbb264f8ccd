//! A second, independent beat reference: stationary shaped Gaussian noise
//! ([`ShapedNoise`]) read on a warped clock, `y(t) = x(τ(t))` with
//! `dτ/dt = r(t)` ∈ [0, 1]. Warping the clock scales every frequency by
//! `r(t)`, so the spectrum keeps its shape and its edge — the maximum
//! velocity — is exactly `v_max·r(t)`. At `r = 0` the blood stands still and
//! its echo sits at 0 Hz, as between systoles in the aorta. White receiver
//! noise is added after the warp.
//!
//! [`SineBeats`] gives `r(t)` a beat train of a different waveform family
//! from the virtual probe's (physiology.rs): a quarter sine up to the peak
//! and a quarter cosine down. Both leave zero and return to it with a finite
//! slope and have a flat peak, but the sine rise has no curvature at its
//! foot and the cosine fall none at its end, where the probe's
//! `1 − (1 − u)^k` and `1 − y^k` have the most. Edge extrapolation that is
//! right for one family only shows here.

use crate::ShapedNoise;

/// Oversampling of the stationary noise that is warped (the warped clock
/// never runs faster than real time, so 8× keeps the interpolation exact
/// to well below the receiver noise).
const OVER: usize = 8;

/// A deterministic Gaussian source (Box–Muller on a 64-bit LCG) for the
/// receiver noise and the beat train's variability.
#[derive(Debug, Clone)]
pub struct Lcg(pub u64);

impl Lcg {
    /// Uniform on (0, 1).
    pub fn uniform(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// Standard normal.
    pub fn gauss(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

/// Shaped noise on a warped clock (see the module's documentation).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WarpedShapedNoise {
    /// Output sample rate, Hz.
    pub sample_rate_hz: f64,
    /// Edge of the spectrum at rate 1 (the largest maximum shift), Hz.
    pub edge_hz: f64,
    /// Shape exponent β (> −1), as [`ShapedNoise::beta`].
    pub beta: f64,
    /// Signal power over receiver-noise power, dB.
    pub snr_db: f64,
    /// Seed of the signal and of the receiver noise.
    pub seed: u64,
}

impl WarpedShapedNoise {
    /// `seconds` of I/Q whose spectral edge at time `t` (s) is
    /// `edge_hz·rate(t)`; `rate` is clamped to [0, 1].
    pub fn generate(&self, seconds: f64, rate: impl Fn(f64) -> f64) -> Vec<[i16; 2]> {
        let fs = self.sample_rate_hz;
        let n_out = (seconds * fs) as usize;
        let n_in = n_out * OVER + 64;
        // The stationary source, far above its own quantisation: 31.6
        // counts RMS, 40 dB over the rounding.
        let x = ShapedNoise {
            sample_rate_hz: fs * OVER as f64,
            edge_hz: self.edge_hz,
            beta: self.beta,
            gamma: 0.0,
            snr_db: 90.0,
            noise_rms_counts: 0.001,
            seed: self.seed,
        }
        .generate(n_in);
        let signal_rms = 0.001 * 10f64.powf(90.0 / 20.0);
        let noise_rms = signal_rms / 10f64.powf(self.snr_db / 20.0);
        let mut g = Lcg(self.seed ^ 0x5eed);
        let mut tau = 0.0_f64; // position in x, samples
        let mut out = Vec::with_capacity(n_out);
        for n in 0..n_out {
            let t = n as f64 / fs;
            // Catmull–Rom interpolation of x at tau.
            let i = tau.floor() as usize;
            let f = tau - i as f64;
            let at =
                |k: usize, c: usize| f64::from(x[(i + k).saturating_sub(1).min(x.len() - 1)][c]);
            let mut s = [0.0; 2];
            for (c, sc) in s.iter_mut().enumerate() {
                let (p0, p1, p2, p3) = (at(0, c), at(1, c), at(2, c), at(3, c));
                *sc = p1
                    + 0.5
                        * f
                        * (p2 - p0
                            + f * (2.0 * p0 - 5.0 * p1 + 4.0 * p2 - p3
                                + f * (3.0 * (p1 - p2) + p3 - p0)));
            }
            let q = |v: f64| v.round().clamp(-32768.0, 32767.0) as i16;
            out.push([
                q(s[0] + noise_rms * g.gauss()),
                q(s[1] + noise_rms * g.gauss()),
            ]);
            tau += OVER as f64 * rate(t + 0.5 / fs).clamp(0.0, 1.0);
        }
        out
    }
}

/// One systole of [`SineBeats`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SineBeat {
    /// Onset, s: the rate leaves zero.
    pub onset_s: f64,
    /// Cycle to the next onset, s.
    pub cycle_s: f64,
    /// Flow time, s: the rate is back at zero at `onset_s + ft_s`.
    pub ft_s: f64,
    /// Time to peak over FT.
    pub peak_frac: f64,
    /// Peak rate (peak velocity over `v_max`), ≤ 1.
    pub amplitude: f64,
}

impl SineBeat {
    /// Peak time, s.
    pub fn peak_s(&self) -> f64 {
        self.onset_s + self.peak_frac * self.ft_s
    }
    /// End of systolic flow, s.
    pub fn end_s(&self) -> f64 {
        self.onset_s + self.ft_s
    }
    /// Next onset, s.
    pub fn next_onset_s(&self) -> f64 {
        self.onset_s + self.cycle_s
    }
    /// Stroke distance for an edge of `v_max_cm_s` at rate 1, cm: both
    /// quarter waves average 2/π of the peak.
    pub fn sd_cm(&self, v_max_cm_s: f64) -> f64 {
        v_max_cm_s * self.amplitude * self.ft_s * 2.0 / std::f64::consts::PI
    }
    /// The rate at `x` s after the onset.
    fn rate(&self, x: f64) -> f64 {
        let tp = self.peak_frac * self.ft_s;
        let half_pi = std::f64::consts::FRAC_PI_2;
        if x <= 0.0 || x >= self.ft_s {
            0.0
        } else if x < tp {
            self.amplitude * (half_pi * x / tp).sin()
        } else {
            self.amplitude * (half_pi * (x - tp) / (self.ft_s - tp)).cos()
        }
    }
}

/// A beat train of quarter-sine systoles (see the module's documentation).
#[derive(Debug, Clone, PartialEq)]
pub struct SineBeats {
    /// The beats, in time order; the first onset is at 0.3 s.
    pub beats: Vec<SineBeat>,
}

impl SineBeats {
    /// `seconds` of beats at `hr_bpm` with ±3 % uniform cycle jitter, FT from
    /// FTc 350 ms by Bazett (at most 65 % of the cycle), the peak at 25–35 %
    /// of FT and a ±10 % breathing swing of the amplitude (4 s period,
    /// peak rate 0.8–1.0).
    pub fn new(seconds: f64, hr_bpm: f64, seed: u64) -> Self {
        let mut g = Lcg(seed);
        let mut beats = Vec::new();
        let mut onset_s = 0.3;
        while onset_s < seconds {
            let cycle_s = 60.0 / hr_bpm * (1.0 + 0.03 * (2.0 * g.uniform() - 1.0));
            beats.push(SineBeat {
                onset_s,
                cycle_s,
                ft_s: (0.35 * cycle_s.sqrt()).min(0.65 * cycle_s),
                peak_frac: 0.25 + 0.1 * g.uniform(),
                amplitude: 0.9 + 0.1 * (std::f64::consts::TAU * onset_s / 4.0).sin(),
            });
            onset_s += cycle_s;
        }
        Self { beats }
    }

    /// The rate (edge over its largest value) at `t` s.
    pub fn rate(&self, t: f64) -> f64 {
        let k = self.beats.partition_point(|b| b.onset_s <= t);
        k.checked_sub(1)
            .map_or(0.0, |k| self.beats[k].rate(t - self.beats[k].onset_s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sine_beats_follow_their_definition() {
        let train = SineBeats::new(20.0, 75.0, 3);
        assert!(train.beats.len() >= 24);
        for w in train.beats.windows(2) {
            let (b, next) = (w[0], w[1]);
            assert!((b.next_onset_s() - next.onset_s).abs() < 1e-12);
            assert!((b.cycle_s - 0.8).abs() <= 0.8 * 0.03 + 1e-12);
            assert!(b.end_s() < next.onset_s);
            // Zero outside systole, the amplitude at the peak.
            assert_eq!(train.rate(b.onset_s - 1e-6), 0.0);
            assert_eq!(train.rate(b.end_s() + 1e-6), 0.0);
            assert!((train.rate(b.peak_s()) - b.amplitude).abs() < 1e-9);
            assert!(b.amplitude <= 1.0 && b.amplitude >= 0.8);
            // SD by numerical integration.
            let n = 20_000;
            let dt = b.ft_s / n as f64;
            let sd: f64 = (0..n)
                .map(|i| 100.0 * train.rate(b.onset_s + (i as f64 + 0.5) * dt) * dt)
                .sum();
            assert!(
                (sd - b.sd_cm(100.0)).abs() < 1e-4 * sd,
                "{sd} vs {}",
                b.sd_cm(100.0)
            );
        }
    }

    /// The edge of the warped signal follows the rate: the mean frequency
    /// of a white-ish (β = 0, flat) spectrum is half its edge, so it scales
    /// with a constant rate.
    #[test]
    fn a_constant_rate_scales_the_spectrum() {
        let mean_hz = |rate: f64| {
            let iq = WarpedShapedNoise {
                sample_rate_hz: 20_000.0,
                edge_hz: 4_000.0,
                beta: 0.0,
                snr_db: 60.0,
                seed: 9,
            }
            .generate(0.5, |_| rate);
            // Mean instantaneous frequency from the lag-one product.
            let (mut re, mut im) = (0.0, 0.0);
            for w in iq.windows(2) {
                let (a, b) = (w[0], w[1]);
                let (ar, ai) = (f64::from(a[0]), f64::from(a[1]));
                let (br, bi) = (f64::from(b[0]), f64::from(b[1]));
                re += br * ar + bi * ai;
                im += bi * ar - br * ai;
            }
            im.atan2(re) * 20_000.0 / std::f64::consts::TAU
        };
        let (full, half) = (mean_hz(1.0), mean_hz(0.5));
        assert!((full - 2_000.0).abs() < 100.0, "{full}");
        assert!((half - 1_000.0).abs() < 50.0, "{half}");
    }
}
