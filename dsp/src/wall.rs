//! Wall (clutter) filter: removes the strong, slow echoes of the vessel wall
//! and heart near 0 Hz from the complex I/Q signal of each analysis window.
//!
//! Design: a *polynomial-regression* clutter filter (Hoeks et al. 1991,
//! "Comparison of the performance of the RF cross correlation and Doppler
//! autocorrelation technique to estimate the mean velocity of simulated
//! ultrasound signals", and Kadi & Loupas 1995, "On the performance of
//! regression and step-initialized IIR clutter filters for color Doppler
//! systems in diagnostic medical ultrasound", IEEE UFFC 42:927). Each window
//! of `N` samples is projected onto the discrete orthonormal polynomials
//! φ₀ … φ_p over the window (computed once) and the projection is
//! subtracted: `y = x − Σ_k ⟨x, φ_k⟩ φ_k`. Slow wall motion is a smooth,
//! nearly polynomial phase history over 10 ms, so it goes; flow at several
//! times the cut-off is orthogonal to low-order polynomials and stays.
//! The analysis window is folded in: the stage outputs
//! `w·y = w·x − Σ_k c_k (w·φ_k)` with `w·φ_k` precomputed, ready for the FFT.
//!
//! Why regression and not the 4th-order Butterworth IIR it replaced
//! (docs/performance.md): the IIR is a per-sample recursion (its cost is the
//! latency of the loop-carried dependency, ~0.9 µs per 100-sample hop, the
//! largest stage of the pipeline) and it rings for a few ms after every
//! restart (gap, discontinuity). The projection is `2(p + 1)` dot products
//! over half the window (the basis has even/odd symmetry, so the window is
//! folded about its centre first) and one sweep to subtract it, all plain
//! vector arithmetic, with no state: every window is
//! clutter-free from its first sample, after a gap or clipping too.
//!
//! Order: the smallest `p` whose power response at the requested cut-off is
//! at most −3 dB (the Butterworth's −3 dB definition). For the default
//! 150 Hz over a 10 ms window at 20 kHz that is p = 3: −44 dB at 40 Hz
//! (the simulator's peak wall shift), −68 dB at 20 Hz (its far wall),
//! −4.5 dB at 150 Hz, and within 1 dB of unity from 200 Hz up (the IIR gave
//! −46 dB at 40 Hz). The default cut-off, 150 Hz ≈ 4 cm/s at 4 MHz and 45°,
//! is inside the 20–1600 Hz range commercial spectral Doppler offers
//! (primer, Physics) and below the 20% level of any systolic edge the beat
//! detector fits.
//!
//! The response of a regression filter depends on where in the window a
//! component sits (it is not time-invariant); [`WallFilter::power_response`]
//! is the window-weighted power a complex tone keeps, which is what the
//! spectrum sees.

use crate::error::DspError;
use rustfft::num_complex::Complex32;

/// Highest polynomial order tried: beyond this the cut-off is far too high
/// for the window (a 100 ms window at 150 Hz needs p ≈ 33).
pub const MAX_ORDER: usize = 63;

/// One analysis window of raw samples with the real (I) and imaginary (Q)
/// parts stored apart: the layout in which the filter's loops run as plain
/// vector arithmetic (interleaved complex numbers cost a shuffle per
/// element and kept the compiler from vectorising them).
#[derive(Debug, Clone, PartialEq)]
pub struct SampleWindow {
    re: Vec<f32>,
    im: Vec<f32>,
}

impl SampleWindow {
    /// A window of `len` zero samples.
    pub fn new(len: usize) -> Self {
        Self {
            re: vec![0.0; len],
            im: vec![0.0; len],
        }
    }

    /// A window holding `samples` (allocates; for tools and tests).
    pub fn from_samples(samples: &[Complex32]) -> Self {
        Self {
            re: samples.iter().map(|c| c.re).collect(),
            im: samples.iter().map(|c| c.im).collect(),
        }
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.re.len()
    }

    /// True for a window of no samples.
    pub fn is_empty(&self) -> bool {
        self.re.is_empty()
    }

    /// The I parts.
    pub fn re(&self) -> &[f32] {
        &self.re
    }

    /// The Q parts.
    pub fn im(&self) -> &[f32] {
        &self.im
    }

    /// Stores raw I/Q counts at `at..at + counts.len()` (no scaling: the
    /// spectrum's power is in ADC counts², the unit the noise statistics
    /// are in).
    pub fn write_counts(&mut self, at: usize, counts: &[[i16; 2]]) -> Result<(), DspError> {
        let end = at.saturating_add(counts.len());
        let (Some(re), Some(im)) = (self.re.get_mut(at..end), self.im.get_mut(at..end)) else {
            return Err(DspError::BufferLength {
                stage: "wall filter window",
                expected: self.re.len(),
                got: end,
            });
        };
        for ((r, i), c) in re.iter_mut().zip(im.iter_mut()).zip(counts) {
            *r = f32::from(c[0]);
            *i = f32::from(c[1]);
        }
        Ok(())
    }

    /// Drops the first `by` samples, moving the rest to the front (the next
    /// window overlaps this one by `len − by`).
    pub fn shift_left(&mut self, by: usize) {
        let by = by.min(self.re.len());
        self.re.copy_within(by.., 0);
        self.im.copy_within(by.., 0);
    }
}

/// Orthonormal polynomial basis of degrees `0..=order` over `n` equally
/// spaced points, by modified Gram–Schmidt on the monomials of the centred,
/// scaled time (each vector orthogonalised twice, which keeps it orthogonal
/// to working precision up to high degree), in f64. Row-major, `n` per row.
fn orthonormal_basis(n: usize, order: usize) -> Vec<f64> {
    let half = n as f64 / 2.0;
    let centre = (n as f64 - 1.0) / 2.0;
    let t: Vec<f64> = (0..n).map(|i| (i as f64 - centre) / half).collect();
    let mut basis = vec![0.0; n * (order + 1)];
    for k in 0..=order {
        // Start from t·φ_{k−1} (better conditioned than t^k).
        let mut v: Vec<f64> = if k == 0 {
            vec![1.0; n]
        } else {
            basis[(k - 1) * n..k * n]
                .iter()
                .zip(&t)
                .map(|(p, x)| p * x)
                .collect()
        };
        for _ in 0..2 {
            for j in 0..k {
                let row = &basis[j * n..(j + 1) * n];
                let d: f64 = v.iter().zip(row).map(|(a, b)| a * b).sum();
                for (a, b) in v.iter_mut().zip(row) {
                    *a -= d * b;
                }
            }
        }
        let norm = v.iter().map(|a| a * a).sum::<f64>().sqrt();
        for (dst, a) in basis[k * n..(k + 1) * n].iter_mut().zip(&v) {
            *dst = a / norm;
        }
    }
    basis
}

/// Window-weighted power a complex tone at `cycles_per_sample` keeps after
/// removing its projection on the first `rows` rows of `basis`:
/// `‖w·(x − Px)‖² / ‖w·x‖²`.
fn power_response_of(basis: &[f64], rows: usize, window: &[f32], cycles_per_sample: f64) -> f64 {
    let n = window.len();
    let tone: Vec<(f64, f64)> = (0..n)
        .map(|i| (std::f64::consts::TAU * cycles_per_sample * i as f64).sin_cos())
        .map(|(s, c)| (c, s))
        .collect();
    let mut resid = tone.clone();
    for k in 0..rows {
        let row = &basis[k * n..(k + 1) * n];
        let (re, im) = tone
            .iter()
            .zip(row)
            .fold((0.0, 0.0), |(re, im), (x, p)| (re + x.0 * p, im + x.1 * p));
        for (r, p) in resid.iter_mut().zip(row) {
            r.0 -= re * p;
            r.1 -= im * p;
        }
    }
    let (mut kept, mut all) = (0.0, 0.0);
    for ((r, x), &w) in resid.iter().zip(&tone).zip(window) {
        let w2 = f64::from(w) * f64::from(w);
        kept += w2 * (r.0 * r.0 + r.1 * r.1);
        all += w2 * (x.0 * x.0 + x.1 * x.1);
    }
    kept / all
}

/// The wall filter stage (stateless between windows).
#[derive(Debug, Clone)]
pub struct WallFilter {
    cutoff_hz: f64,
    sample_rate_hz: f64,
    order: usize,
    window: Vec<f32>,
    /// φ_k, row-major, `window.len()` per row, padded with zero rows to a
    /// multiple of 4 (the loops take four rows per pass). f64 design kept
    /// in f32: clutter 45 dB above blood leaves ~10⁻⁵ of itself through f32
    /// rounding, far below the −40 dB the design needs.
    basis: Vec<f32>,
    /// w·φ_k, same layout. (The output is not folded: the periodic Hann
    /// window is symmetric about n/2, not about the basis's centre
    /// (n−1)/2, and a folded residual with mirrored stores measured slower.)
    windowed_basis: Vec<f32>,
    /// The first `n/2` samples of each row of `basis`, `n/2` per row.
    half_basis: Vec<f32>,
    /// The window folded about its centre: I sum, I difference, Q sum, Q
    /// difference, `n/2` each.
    folded: [Vec<f32>; 4],
    /// The basis in f64 (unpadded), for [`WallFilter::power_response`].
    basis_f64: Vec<f64>,
    /// ⟨x, φ_k⟩ of the current window, I and Q parts.
    coeffs_re: Vec<f32>,
    coeffs_im: Vec<f32>,
    /// The filtered, windowed I and Q parts before interleaving.
    out_re: Vec<f32>,
    out_im: Vec<f32>,
}

impl WallFilter {
    /// Builds the filter for windows of `window.len()` samples weighted by
    /// `window` (the analysis window; its weights are folded into the
    /// output). The cut-off must be above 0, below a quarter of the sample
    /// rate, and reachable by a polynomial of order ≤ [`MAX_ORDER`] over
    /// the window.
    pub fn new(cutoff_hz: f64, sample_rate_hz: f64, window: &[f32]) -> Result<Self, DspError> {
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
        let n = window.len();
        if n < 16 || window.iter().any(|w| !w.is_finite()) || window.iter().all(|&w| w == 0.0) {
            return Err(DspError::invalid(
                "wall filter window",
                format!("{n} samples"),
                "≥ 16 finite weights, not all zero",
            ));
        }
        let max_order = MAX_ORDER.min(n / 2);
        let basis_f64 = orthonormal_basis(n, max_order);
        let f = cutoff_hz / sample_rate_hz;
        let Some(order) =
            (0..=max_order).find(|&p| power_response_of(&basis_f64, p + 1, window, f) <= 0.5)
        else {
            return Err(DspError::invalid(
                "wall_cutoff_hz",
                cutoff_hz,
                "reachable by a regression filter of order ≤ 63 over the window",
            ));
        };
        let basis_f64 = basis_f64[..(order + 1) * n].to_vec();
        let rows = (order + 1).div_ceil(4) * 4;
        let mut basis: Vec<f32> = basis_f64.iter().map(|&b| b as f32).collect();
        let mut windowed_basis: Vec<f32> = basis_f64
            .chunks_exact(n)
            .flat_map(|row| {
                row.iter()
                    .zip(window)
                    .map(|(&b, &w)| (b * f64::from(w)) as f32)
            })
            .collect();
        basis.resize(rows * n, 0.0);
        windowed_basis.resize(rows * n, 0.0);
        let half_basis = basis
            .chunks_exact(n)
            .flat_map(|row| row[..n / 2].iter().copied())
            .collect();
        Ok(Self {
            cutoff_hz,
            sample_rate_hz,
            order,
            window: window.to_vec(),
            basis,
            windowed_basis,
            half_basis,
            folded: [(); 4].map(|_| vec![0.0; n / 2]),
            basis_f64,
            coeffs_re: vec![0.0; rows],
            coeffs_im: vec![0.0; rows],
            out_re: vec![0.0; n],
            out_im: vec![0.0; n],
        })
    }

    /// The cut-off frequency asked for, Hz (the response there is ≤ −3 dB).
    pub fn cutoff_hz(&self) -> f64 {
        self.cutoff_hz
    }

    /// Order of the highest polynomial removed (3 for the defaults).
    pub fn order(&self) -> usize {
        self.order
    }

    /// Window length, samples.
    pub fn window_len(&self) -> usize {
        self.window.len()
    }

    /// Designed power response at `f_hz` (signed): the window-weighted power
    /// a complex tone keeps (1 = passed, 0 = removed).
    pub fn power_response(&self, f_hz: f64) -> f64 {
        power_response_of(
            &self.basis_f64,
            self.order + 1,
            &self.window,
            f_hz / self.sample_rate_hz,
        )
    }

    /// Filters one window of samples (`input.len()` = window length) and
    /// applies the analysis window: `output = w·(x − Σ_k ⟨x, φ_k⟩ φ_k)`.
    pub fn process(
        &mut self,
        input: &SampleWindow,
        output: &mut [Complex32],
    ) -> Result<(), DspError> {
        let n = self.window.len();
        if input.len() != n || output.len() != n {
            return Err(DspError::BufferLength {
                stage: "wall filter",
                expected: n,
                got: if input.len() != n {
                    input.len()
                } else {
                    output.len()
                },
            });
        }
        let (xr, xi) = (&input.re[..n], &input.im[..n]);
        // Fold the window about its centre: φ_k is even for even k and odd
        // for odd k (the grid is symmetric), so ⟨x, φ_k⟩ is the dot product
        // of the first half of φ_k with x[i] ± x[n−1−i] — half the work.
        let h = n / 2;
        let fold = |x: &[f32], sum: &mut [f32], diff: &mut [f32]| {
            let (lo, hi) = (&x[..h], &x[n - h..]);
            for ((a, b), (s, d)) in lo
                .iter()
                .zip(hi.iter().rev())
                .zip(sum.iter_mut().zip(diff.iter_mut()))
            {
                *s = a + b;
                *d = a - b;
            }
        };
        let [sr, dr, si, di] = &mut self.folded;
        fold(xr, sr, dr);
        fold(xi, si, di);
        for (g, rows) in self.half_basis.chunks_exact(4 * h).enumerate() {
            let (cr, ci) = dot4([&*sr, &*dr, &*sr, &*dr], [&*si, &*di, &*si, &*di], rows, h);
            self.coeffs_re[4 * g..4 * g + 4].copy_from_slice(&cr);
            self.coeffs_im[4 * g..4 * g + 4].copy_from_slice(&ci);
        }
        if n % 2 == 1 {
            // The centre sample pairs with itself (odd rows are 0 there).
            for (k, phi) in self.basis.chunks_exact(n).enumerate().step_by(2) {
                self.coeffs_re[k] += xr[h] * phi[h];
                self.coeffs_im[k] += xi[h] * phi[h];
            }
        }
        // Four rows per pass: each pass is one vectorised sweep with the
        // coefficients as scalars.
        let (or, oi) = (&mut self.out_re[..n], &mut self.out_im[..n]);
        let window = &self.window[..n];
        let groups = self.windowed_basis.chunks_exact(4 * n);
        for (g, rows) in groups.enumerate() {
            // Re-sliced to exactly `n` so the compiler drops bounds checks.
            let (b0, b1, b2, b3) = (
                &rows[..n],
                &rows[n..2 * n],
                &rows[2 * n..3 * n],
                &rows[3 * n..4 * n],
            );
            let k = 4 * g;
            let (cre, cim) = (&self.coeffs_re, &self.coeffs_im);
            let cr: [f32; 4] = [0, 1, 2, 3].map(|j| cre[k + j]);
            let ci: [f32; 4] = [0, 1, 2, 3].map(|j| cim[k + j]);
            if g == 0 {
                for i in 0..n {
                    let w = window[i];
                    or[i] =
                        w * xr[i] - cr[0] * b0[i] - cr[1] * b1[i] - cr[2] * b2[i] - cr[3] * b3[i];
                    oi[i] =
                        w * xi[i] - ci[0] * b0[i] - ci[1] * b1[i] - ci[2] * b2[i] - ci[3] * b3[i];
                }
            } else {
                for i in 0..n {
                    or[i] -= cr[0] * b0[i] + cr[1] * b1[i] + cr[2] * b2[i] + cr[3] * b3[i];
                    oi[i] -= ci[0] * b0[i] + ci[1] * b1[i] + ci[2] * b2[i] + ci[3] * b3[i];
                }
            }
        }
        for ((y, &r), &i) in output.iter_mut().zip(or.iter()).zip(oi.iter()) {
            *y = Complex32::new(r, i);
        }
        Ok(())
    }
}

/// Four dot products of `xr[k]` and `xi[k]` with basis row `k` (`rows`
/// holds the four rows back to back, `n` each), in one sweep: eight products
/// of four lanes each, independent, so the loop is bound by arithmetic
/// throughput rather than by the latency of one long chain of additions
/// (float addition is not reassociated for us; a dot product at a time was
/// twice as slow).
fn dot4(xr: [&[f32]; 4], xi: [&[f32]; 4], rows: &[f32], n: usize) -> ([f32; 4], [f32; 4]) {
    let mut acc_r = [[0.0_f32; 4]; 4];
    let mut acc_i = [[0.0_f32; 4]; 4];
    let b = [0, 1, 2, 3].map(|k| &rows[k * n..(k + 1) * n]);
    let bc = b.map(|r| r.as_chunks::<4>().0);
    let xrc = xr.map(|x| x[..n].as_chunks::<4>().0);
    let xic = xi.map(|x| x[..n].as_chunks::<4>().0);
    let chunks = n / 4;
    for i in 0..chunks {
        for k in 0..4 {
            let (p, a, q) = (&bc[k][i], &xrc[k][i], &xic[k][i]);
            for l in 0..4 {
                acc_r[k][l] += a[l] * p[l];
                acc_i[k][l] += q[l] * p[l];
            }
        }
    }
    for j in chunks * 4..n {
        for k in 0..4 {
            acc_r[k][0] += xr[k][j] * b[k][j];
            acc_i[k][0] += xi[k][j] * b[k][j];
        }
    }
    let sum = |v: [f32; 4]| (v[0] + v[2]) + (v[1] + v[3]);
    (acc_r.map(sum), acc_i.map(sum))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stft::hann;

    const FS: f64 = 20_000.0;

    fn filter() -> WallFilter {
        WallFilter::new(150.0, FS, &hann(200)).unwrap()
    }

    fn tone(f_hz: f64, amp: f64, phase: f64, n: usize) -> Vec<Complex32> {
        (0..n)
            .map(|i| {
                let ph = std::f64::consts::TAU * f_hz * i as f64 / FS + phase;
                Complex32::new((amp * ph.cos()) as f32, (amp * ph.sin()) as f32)
            })
            .collect()
    }

    fn power(x: &[Complex32]) -> f64 {
        x.iter().map(|c| f64::from(c.norm_sqr())).sum()
    }

    fn windowed(x: &[Complex32], w: &[f32]) -> Vec<Complex32> {
        x.iter().zip(w).map(|(a, &b)| a * b).collect()
    }

    /// Slow reference: the least-squares polynomial fit of degree `p` by its
    /// normal equations in the monomials of t ∈ [−1, 1] (Gaussian elimination
    /// with partial pivoting, f64), subtracted, then windowed.
    // Textbook index notation, kept for checking against the formulas.
    #[allow(clippy::needless_range_loop)]
    fn reference(x: &[Complex32], p: usize, w: &[f32]) -> Vec<[f64; 2]> {
        let n = x.len();
        let t: Vec<f64> = (0..n)
            .map(|i| (i as f64 - (n as f64 - 1.0) / 2.0) / (n as f64 / 2.0))
            .collect();
        let m = p + 1;
        let mut out = vec![[0.0; 2]; n];
        for part in 0..2 {
            let y: Vec<f64> = x
                .iter()
                .map(|c| f64::from(if part == 0 { c.re } else { c.im }))
                .collect();
            // [A | b] with A_jk = Σ t^(j+k), b_j = Σ t^j y.
            let mut a = vec![vec![0.0; m + 1]; m];
            for (i, &ti) in t.iter().enumerate() {
                for j in 0..m {
                    for k in 0..m {
                        a[j][k] += ti.powi((j + k) as i32);
                    }
                    a[j][m] += ti.powi(j as i32) * y[i];
                }
            }
            for col in 0..m {
                let piv = (col..m)
                    .max_by(|&r, &s| a[r][col].abs().total_cmp(&a[s][col].abs()))
                    .unwrap();
                a.swap(col, piv);
                for r in 0..m {
                    if r != col {
                        let f = a[r][col] / a[col][col];
                        for k in col..=m {
                            a[r][k] -= f * a[col][k];
                        }
                    }
                }
            }
            for (i, &ti) in t.iter().enumerate() {
                let fit: f64 = (0..m).map(|j| a[j][m] / a[j][j] * ti.powi(j as i32)).sum();
                out[i][part] = (y[i] - fit) * f64::from(w[i]);
            }
        }
        out
    }

    #[test]
    fn matches_least_squares_reference_on_seeded_noise() {
        let mut f = filter();
        let mut seed = 0x1234_5678_u64;
        let mut r = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            f32::from((seed % 20_000) as i16 - 10_000)
        };
        // Noise on top of a strong slow drift (clutter-like), as the probe gives.
        let drift = tone(30.0, 20_000.0, 0.3, 200);
        let x: Vec<Complex32> = drift.iter().map(|d| d + Complex32::new(r(), r())).collect();
        let mut out = vec![Complex32::default(); 200];
        f.process(&SampleWindow::from_samples(&x), &mut out)
            .unwrap();
        let want = reference(&x, f.order(), &hann(200));
        let scale = (power(&x) / 200.0).sqrt();
        for (o, e) in out.iter().zip(&want) {
            assert!(
                (f64::from(o.re) - e[0]).abs() < 1e-4 * scale,
                "{o} vs {e:?}"
            );
            assert!(
                (f64::from(o.im) - e[1]).abs() < 1e-4 * scale,
                "{o} vs {e:?}"
            );
        }
    }

    #[test]
    fn odd_window_lengths_fold_about_the_centre_sample() {
        // 201 samples: the centre sample pairs with itself in the folded
        // projection; a quadratic plus a tone must still match the reference.
        let w = hann(201);
        let mut f = WallFilter::new(150.0, FS, &w).unwrap();
        let x: Vec<Complex32> = tone(700.0, 3000.0, 0.2, 201)
            .iter()
            .enumerate()
            .map(|(i, c)| c + Complex32::new(5000.0 + 0.3 * (i * i) as f32, -2000.0))
            .collect();
        let mut out = vec![Complex32::default(); 201];
        f.process(&SampleWindow::from_samples(&x), &mut out)
            .unwrap();
        let want = reference(&x, f.order(), &w);
        for (o, e) in out.iter().zip(&want) {
            assert!((f64::from(o.re) - e[0]).abs() < 0.05, "{o} vs {e:?}");
            assert!((f64::from(o.im) - e[1]).abs() < 0.05, "{o} vs {e:?}");
        }
    }

    #[test]
    fn order_is_the_lowest_reaching_minus_3_db_at_the_cutoff() {
        let f = filter();
        // 150 Hz over 10 ms at 20 kHz: a cubic (independently, the
        // normal-equation reference keeps > ½ of a 150 Hz tone's windowed
        // power at p = 2 and < ½ at p = 3).
        assert_eq!(f.order(), 3);
        let w = hann(200);
        let x = tone(150.0, 1.0, 0.0, 200);
        let kept = |p: usize| {
            let r = reference(&x, p, &w);
            r.iter().map(|c| c[0] * c[0] + c[1] * c[1]).sum::<f64>() / power(&windowed(&x, &w))
        };
        assert!(kept(2) > 0.5 && kept(3) <= 0.5, "{} {}", kept(2), kept(3));
        assert!((f.power_response(150.0) - kept(3)).abs() < 1e-9);
        // A higher cut-off needs a higher order.
        assert!(WallFilter::new(300.0, FS, &w).unwrap().order() > 3);
    }

    #[test]
    fn measured_response_follows_the_design() {
        let mut f = filter();
        let w = hann(200);
        let mut out = vec![Complex32::default(); 200];
        for f_hz in [
            10.0, 40.0, 75.0, 150.0, 300.0, 1000.0, -600.0, 5000.0, -9000.0,
        ] {
            for phase in [0.0, 1.0, 2.5] {
                let x = tone(f_hz, 8000.0, phase, 200);
                f.process(&SampleWindow::from_samples(&x), &mut out)
                    .unwrap();
                let got = power(&out) / power(&windowed(&x, &w));
                let want = f.power_response(f_hz);
                let (g_db, w_db) = (10.0 * got.log10(), 10.0 * want.log10());
                assert!(
                    (g_db - w_db).abs() < 0.1,
                    "{f_hz} Hz: {g_db} dB vs {w_db} dB"
                );
            }
        }
    }

    #[test]
    fn passes_flow_above_twice_the_cutoff_within_1_db() {
        let f = filter();
        let mut f_hz = 300.0;
        while f_hz < 9_900.0 {
            for s in [1.0, -1.0] {
                let db = 10.0 * f.power_response(s * f_hz).log10();
                assert!(db.abs() < 1.0, "{} Hz: {db} dB", s * f_hz);
            }
            f_hz += 37.0;
        }
    }

    #[test]
    fn removes_dc_and_low_order_polynomials_exactly() {
        let mut f = filter();
        let n = 200;
        let x: Vec<Complex32> = (0..n)
            .map(|i| {
                let t = i as f32 / n as f32;
                Complex32::new(
                    9000.0 - 4000.0 * t + 3000.0 * t * t * t,
                    -7000.0 + 500.0 * t * t,
                )
            })
            .collect();
        let mut out = vec![Complex32::default(); n];
        f.process(&SampleWindow::from_samples(&x), &mut out)
            .unwrap();
        let rejection_db = 10.0 * (power(&out) / power(&windowed(&x, &hann(n)))).log10();
        assert!(rejection_db < -80.0, "{rejection_db} dB");
    }

    #[test]
    fn rejects_the_simulators_wall_clutter_by_40_db() {
        // simulator/src/doppler.rs: a near wall at +f_w(t) (80% of the
        // clutter power) and a far wall at −f_w(t)/2 (20%), with
        // f_w(t) = 40 Hz · sin(2π t / cycle) (config.rs: clutter_hz = 40).
        let mut f = filter();
        let w = hann(200);
        let (mut kept, mut all) = (0.0, 0.0);
        let (mut ph_near, mut ph_far) = (0.0_f64, 1.0_f64);
        let cycle_s = 0.75;
        let mut x = vec![Complex32::default(); 200];
        let mut out = vec![Complex32::default(); 200];
        let mut n = 0_u64;
        for _ in 0..(cycle_s * FS / 200.0) as usize {
            for s in x.iter_mut() {
                let fw = 40.0 * (std::f64::consts::TAU * n as f64 / FS / cycle_s).sin();
                ph_near += std::f64::consts::TAU * fw / FS;
                ph_far -= std::f64::consts::TAU * 0.5 * fw / FS;
                let (a, b) = (0.8_f64.sqrt() * 20_000.0, 0.2_f64.sqrt() * 20_000.0);
                *s = Complex32::new(
                    (a * ph_near.cos() + b * ph_far.cos()) as f32,
                    (a * ph_near.sin() + b * ph_far.sin()) as f32,
                );
                n += 1;
            }
            f.process(&SampleWindow::from_samples(&x), &mut out)
                .unwrap();
            kept += power(&out);
            all += power(&windowed(&x, &w));
        }
        let db = 10.0 * (kept / all).log10();
        assert!(db < -40.0, "clutter rejection {db} dB");
    }

    #[test]
    fn window_stores_counts_shifts_and_checks_lengths() {
        let mut w = SampleWindow::new(4);
        w.write_counts(1, &[[1, -2], [i16::MIN, i16::MAX]]).unwrap();
        assert_eq!(w.re(), &[0.0, 1.0, -32768.0, 0.0]);
        assert_eq!(w.im(), &[0.0, -2.0, 32767.0, 0.0]);
        w.shift_left(2);
        assert_eq!(&w.re()[..2], &[-32768.0, 0.0]);
        assert!(w.write_counts(3, &[[0, 0], [0, 0]]).is_err());
        let mut f = filter();
        let mut y = vec![Complex32::default(); 200];
        assert!(matches!(
            f.process(&SampleWindow::new(100), &mut y),
            Err(DspError::BufferLength { expected: 200, .. })
        ));
    }

    #[test]
    fn rejects_cutoff_outside_range() {
        let w = hann(200);
        assert!(WallFilter::new(0.0, FS, &w).is_err());
        assert!(WallFilter::new(6_000.0, FS, &w).is_err());
        assert!(WallFilter::new(f64::NAN, FS, &w).is_err());
        // 4 kHz over 10 ms would need a polynomial of order ≫ 63.
        assert!(WallFilter::new(4_000.0, FS, &w).is_err());
        assert!(WallFilter::new(150.0, FS, &[0.0; 200]).is_err());
    }
}
