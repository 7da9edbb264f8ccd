//! Wall (clutter) filter: a high-pass on the complex I/Q signal that removes
//! the strong, slow echoes of the vessel wall and heart near 0 Hz.
//!
//! Design: 4th-order Butterworth high-pass by the bilinear transform with
//! frequency prewarping, as two cascaded biquads (Q = 0.5412 and 1.3066, the
//! pole pairs of a 4th-order Butterworth, cos(π/8) and cos(3π/8)). The same
//! real coefficients filter I and Q, so positive and negative shifts are
//! treated alike. 4th order gives ≥ 48 dB of clutter rejection an octave
//! below the cut-off while keeping the transient short (a few ms at 150 Hz);
//! the default cut-off, 150 Hz ≈ 4 cm/s at 4 MHz and 45°, is inside the
//! 20–1600 Hz range commercial spectral Doppler offers (primer, Physics) and
//! below the 20% level of any systolic edge the beat detector fits.
//!
//! Speed (docs/performance.md): the recursion is per sample, so its cost is
//! set by the loop-carried dependency; I and Q run as one pair and the state
//! update is reassociated to shorten that path. Measured and not adopted:
//! the same filter in f32 (no faster: the dependency latency is the same),
//! and a per-window polynomial-regression clutter filter (Kadi & Loupas
//! 1995; no cheaper than this form once the window multiply it absorbs is
//! counted, and on the simulator it moved the flow-time error of parabolic
//! profiles by 1–12 ms, commit 478146c).

use crate::error::DspError;
use rustfft::num_complex::Complex32;

/// Q factors of the two second-order sections of a 4th-order Butterworth:
/// 1/(2·cos(π/8)) and 1/(2·cos(3π/8)).
const BUTTERWORTH4_Q: [f64; 2] = [0.541_196_100_146_197, 1.306_562_964_876_376_6];

/// Normalised biquad coefficients (a0 = 1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Biquad {
    /// Feed-forward b0, b1, b2.
    pub b: [f64; 3],
    /// Feedback a1, a2.
    pub a: [f64; 2],
}

impl Biquad {
    /// High-pass section by the bilinear transform prewarped at `cutoff_hz`
    /// (Bristow-Johnson's cookbook form).
    pub fn high_pass(cutoff_hz: f64, sample_rate_hz: f64, q: f64) -> Self {
        let w0 = 2.0 * std::f64::consts::PI * cutoff_hz / sample_rate_hz;
        let (sin, cos) = w0.sin_cos();
        let alpha = sin / (2.0 * q);
        let a0 = 1.0 + alpha;
        let b0 = (1.0 + cos) / 2.0 / a0;
        Self {
            b: [b0, -2.0 * b0, b0],
            a: [-2.0 * cos / a0, (1.0 - alpha) / a0],
        }
    }
}

/// The wall filter stage.
#[derive(Debug, Clone)]
pub struct WallFilter {
    sections: [Biquad; 2],
    /// Transposed direct-form II state per section: [s1, s2], each an
    /// [I, Q] pair.
    state: [[[f64; 2]; 2]; 2],
    cutoff_hz: f64,
}

impl WallFilter {
    /// Builds the filter. The cut-off must be above 0 and below a quarter of
    /// the sample rate (a wall filter higher than that would remove flow).
    pub fn new(cutoff_hz: f64, sample_rate_hz: f64) -> Result<Self, DspError> {
        if !(sample_rate_hz.is_finite() && sample_rate_hz > 0.0) {
            return Err(DspError::invalid("sample_rate_hz", sample_rate_hz, "> 0"));
        }
        if !(cutoff_hz.is_finite() && cutoff_hz > 0.0 && cutoff_hz < sample_rate_hz / 4.0) {
            return Err(DspError::invalid(
                "wall_cutoff_hz",
                cutoff_hz,
                "0 < cut-off < sample rate / 4",
            ));
        }
        Ok(Self {
            sections: BUTTERWORTH4_Q.map(|q| Biquad::high_pass(cutoff_hz, sample_rate_hz, q)),
            state: [[[0.0; 2]; 2]; 2],
            cutoff_hz,
        })
    }

    /// The cut-off frequency (−3 dB), Hz.
    pub fn cutoff_hz(&self) -> f64 {
        self.cutoff_hz
    }

    /// The two second-order sections, in processing order.
    pub fn sections(&self) -> &[Biquad; 2] {
        &self.sections
    }

    /// Forgets the past (start of a new segment after a gap or discontinuity).
    pub fn reset(&mut self) {
        self.state = [[[0.0; 2]; 2]; 2];
    }

    /// Filters `input` (raw I/Q counts) into `output` (same length).
    pub fn process(
        &mut self,
        input: &[[i16; 2]],
        output: &mut [Complex32],
    ) -> Result<(), DspError> {
        if input.len() != output.len() {
            return Err(DspError::BufferLength {
                stage: "wall filter",
                expected: input.len(),
                got: output.len(),
            });
        }
        // Both channels in lock-step ([I, Q] pairs: one SSE2 register of two
        // f64 each), and the transposed-direct-form-II update rewritten to
        // shorten the loop-carried path: substituting y = b0·x + s1 into
        //   s1' = b1·x − a1·y + s2,  s2' = b2·x − a2·y
        // gives s1' = (b1 − a1·b0)·x + s2 − a1·s1, s2' = (b2 − a2·b0)·x − a2·s1,
        // so s1 → s1' is one multiply and one add (8 cycles) instead of
        // add–multiply–subtract (12). Same states, same transfer function;
        // the outputs differ from the textbook order only by f64 rounding.
        let k = self.sections.map(|q| {
            [
                q.b[0],
                q.b[1] - q.a[0] * q.b[0],
                q.b[2] - q.a[1] * q.b[0],
                q.a[0],
                q.a[1],
            ]
        });
        let [p, q] = k;
        let [[p1, p2], [q1, q2]] = self.state;
        let (mut p1, mut p2, mut q1, mut q2) = (p1, p2, q1, q2);
        for (x, y) in input.iter().zip(output.iter_mut()) {
            let xv = [f64::from(x[0]), f64::from(x[1])];
            let (mut u, mut v) = ([0.0; 2], [0.0; 2]);
            let (mut np1, mut np2, mut nq1, mut nq2) = ([0.0; 2], [0.0; 2], [0.0; 2], [0.0; 2]);
            for c in 0..2 {
                u[c] = p[0] * xv[c] + p1[c];
                np1[c] = p[1] * xv[c] + p2[c] - p[3] * p1[c];
                np2[c] = p[2] * xv[c] - p[4] * p1[c];
                v[c] = q[0] * u[c] + q1[c];
                nq1[c] = q[1] * u[c] + q2[c] - q[3] * q1[c];
                nq2[c] = q[2] * u[c] - q[4] * q1[c];
            }
            (p1, p2, q1, q2) = (np1, np2, nq1, nq2);
            *y = Complex32::new(v[0] as f32, v[1] as f32);
        }
        self.state = [[p1, p2], [q1, q2]];
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Slow reference: the full 4th-order difference equation from the
    /// product of the two sections' polynomials, in direct form I.
    fn reference(filter: &WallFilter, input: &[[i16; 2]]) -> Vec<[f64; 2]> {
        let [p, q] = filter.sections();
        let conv = |x: [f64; 3], y: [f64; 3]| {
            let mut r = [0.0; 5];
            for i in 0..3 {
                for j in 0..3 {
                    r[i + j] += x[i] * y[j];
                }
            }
            r
        };
        let b = conv(p.b, q.b);
        let a = conv([1.0, p.a[0], p.a[1]], [1.0, q.a[0], q.a[1]]);
        let mut out = vec![[0.0; 2]; input.len()];
        for n in 0..input.len() {
            for c in 0..2 {
                let mut acc = 0.0;
                for k in 0..5 {
                    if n >= k {
                        acc += b[k] * f64::from(input[n - k][c]);
                        if k > 0 {
                            acc -= a[k] * out[n - k][c];
                        }
                    }
                }
                out[n][c] = acc;
            }
        }
        out
    }

    #[test]
    fn matches_direct_form_reference_on_seeded_noise() {
        let mut f = WallFilter::new(150.0, 20_000.0).unwrap();
        let mut seed = 0x1234_5678_u64;
        let input: Vec<[i16; 2]> = (0..4000)
            .map(|_| {
                let mut r = || {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    (seed % 20_000) as i16 - 10_000
                };
                [r(), r()]
            })
            .collect();
        let expect = reference(&f, &input);
        let mut out = vec![Complex32::default(); input.len()];
        // Feed in uneven chunks: state must carry across calls.
        let mut at = 0;
        for len in [1usize, 7, 500, 1492, 2000] {
            f.process(&input[at..at + len], &mut out[at..at + len])
                .unwrap();
            at += len;
        }
        for (o, e) in out.iter().zip(&expect) {
            assert!((f64::from(o.re) - e[0]).abs() < 1e-2 + 1e-5 * e[0].abs());
            assert!((f64::from(o.im) - e[1]).abs() < 1e-2 + 1e-5 * e[1].abs());
        }
    }

    #[test]
    fn magnitude_follows_bilinear_butterworth() {
        // |H|² of a bilinear-transformed 4th-order Butterworth high-pass:
        // 1 / (1 + (tan(π fc/fs) / tan(π f/fs))^8).
        let fs = 20_000.0;
        let fc = 150.0;
        for f_hz in [40.0, 75.0, 150.0, 300.0, 1000.0, -600.0, 5000.0] {
            let mut filt = WallFilter::new(fc, fs).unwrap();
            let n = 40_000;
            let input: Vec<[i16; 2]> = (0..n)
                .map(|i| {
                    let ph = 2.0 * std::f64::consts::PI * f_hz * i as f64 / fs;
                    [(8000.0 * ph.cos()) as i16, (8000.0 * ph.sin()) as i16]
                })
                .collect();
            let mut out = vec![Complex32::default(); n];
            filt.process(&input, &mut out).unwrap();
            let tail = &out[n / 2..];
            let rms =
                (tail.iter().map(|c| c.norm_sqr() as f64).sum::<f64>() / tail.len() as f64).sqrt();
            let got = rms / 8000.0;
            let ratio = ((std::f64::consts::PI * fc / fs).tan()
                / (std::f64::consts::PI * f_hz.abs() / fs).tan())
            .powi(8);
            let want = (1.0 / (1.0 + ratio)).sqrt();
            assert!(
                (got - want).abs() < 2e-3 + 0.01 * want,
                "f = {f_hz}: {got} vs {want}"
            );
        }
    }

    #[test]
    fn rejects_cutoff_outside_range() {
        assert!(WallFilter::new(0.0, 20_000.0).is_err());
        assert!(WallFilter::new(6_000.0, 20_000.0).is_err());
        assert!(WallFilter::new(f64::NAN, 20_000.0).is_err());
    }
}
