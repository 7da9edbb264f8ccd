//! Noise floor of a spectrum column, and broadband-interference (diathermy)
//! detection from how the floor moves.
//!
//! The floor is estimated from the negative-frequency half outside the wall
//! band: forward aortic flow is positive (serial-stream.md), reverse flow is
//! brief and narrow, so most of those bins hold only noise. For Gaussian
//! noise a periodogram bin is exponentially distributed with the mean noise
//! power μ as its mean.
//!
//! Estimator (O(n), no sorting of the bins, in the spirit of Hildebrand &
//! Sekhon 1974, "Objective determination of the noise level in Doppler
//! spectra", J. Appl. Meteor. 13:808): a robust start, then fixed passes of
//! a truncated mean corrected for the truncation:
//! 1. start: the median of the means of groups of 8 adjacent bins, divided
//!    by the median of a Gamma(8, 1/8) variable (0.9587 · mean). Reverse flow
//!    occupies adjacent bins, so a minority of it spoils a minority of
//!    groups and the median of the groups ignores them;
//! 2. three passes: the mean `m` of the bins below `T = c·μ̂` (c = 3), and
//!    `μ̂ ← m / g(c)`, where for an exponential X of mean μ,
//!    E[X | X < cμ] = μ·g(c), g(c) = 1 − c·e^{−c}/(1 − e^{−c}) = 0.8428.
//!    Bins of signal well above the noise are excluded by the threshold;
//!    the iteration's error shrinks by c·h′(c)/g(c) ≈ 0.40 per pass
//!    (h(τ) = 1 − τe^{−τ}/(1 − e^{−τ})), so the start's −4…+10% becomes
//!    ≲ 1% after three; a start far too high (signal in most
//!    groups) still comes within a few % once the threshold excludes it.
//!
//! The passes are branch-free sums over contiguous bins (the compiler
//! vectorises them); the only sort is of ~15 group means. It replaced a
//! `select_nth` median over all ~120 reference bins (≈ 0.4 µs a column;
//! docs/performance.md).
//!
//! Diathermy swamps the whole band with noise for seconds (primer, "What goes
//! wrong in theatre"): the floor jumps. The detector keeps a baseline that
//! follows the floor down at once and up only slowly (1 dB/s by default), and
//! flags a column whose floor stands more than a set margin (6 dB by
//! default) above it.

use crate::error::DspError;

/// Bins per group for the robust starting estimate.
const GROUP_LEN: usize = 8;
/// Most groups the start uses (the reference band is at most this × 8 bins
/// wide for the sort; wider bands use this many groups spread over it).
const MAX_GROUPS: usize = 64;
/// Median of the mean of 8 independent unit exponentials (Gamma(8, 1/8)),
/// computed by numerical inversion of the regularised incomplete gamma
/// function: P(8, 8·0.958_656) = 0.5.
const GROUP_MEDIAN_OVER_MEAN: f32 = 0.958_656;
/// Truncation point in units of the current estimate.
const TRUNCATE_AT: f32 = 3.0;
/// g(3) = 1 − 3e⁻³/(1 − e⁻³): the mean of an exponential truncated at 3μ, over μ.
const TRUNCATED_MEAN_OVER_MEAN: f32 = 0.842_813;
/// Truncated-mean passes after the start.
const PASSES: usize = 3;

/// Noise-floor estimator over a fixed set of reference bins.
#[derive(Debug, Clone)]
pub struct NoiseFloor {
    first_bin: usize,
    end_bin: usize,
    group_means: [f32; MAX_GROUPS],
    groups: usize,
    group_stride: usize,
}

impl NoiseFloor {
    /// Reference bins `first_bin..end_bin` of a column of `fft_len` bins.
    pub fn new(first_bin: usize, end_bin: usize, fft_len: usize) -> Result<Self, DspError> {
        if end_bin > fft_len || end_bin < first_bin + 2 * GROUP_LEN {
            return Err(DspError::invalid(
                "noise reference bins",
                format!("{first_bin}..{end_bin} of {fft_len}"),
                "at least 16 bins inside the column",
            ));
        }
        let n_groups = (end_bin - first_bin) / GROUP_LEN;
        let groups = n_groups.min(MAX_GROUPS);
        Ok(Self {
            first_bin,
            end_bin,
            group_means: [0.0; MAX_GROUPS],
            groups,
            // Spread the groups over the whole band when it has more.
            group_stride: n_groups / groups * GROUP_LEN,
        })
    }

    /// Mean noise power per bin of `power` (a whole column).
    pub fn process(&mut self, power: &[f32]) -> Result<f32, DspError> {
        let Some(bins) = power.get(self.first_bin..self.end_bin) else {
            return Err(DspError::BufferLength {
                stage: "noise floor",
                expected: self.end_bin,
                got: power.len(),
            });
        };
        let g = &mut self.group_means[..self.groups];
        for (i, m) in g.iter_mut().enumerate() {
            let at = i * self.group_stride;
            *m = bins[at..at + GROUP_LEN].iter().sum::<f32>() / GROUP_LEN as f32;
        }
        let mid = g.len() / 2;
        let (_, median, _) = g.select_nth_unstable_by(mid, f32::total_cmp);
        let mut mu = *median / GROUP_MEDIAN_OVER_MEAN;
        for _ in 0..PASSES {
            let (sum, count) = truncated_sum(bins, TRUNCATE_AT * mu);
            if count == 0.0 {
                break;
            }
            mu = sum / count / TRUNCATED_MEAN_OVER_MEAN;
        }
        Ok(mu)
    }
}

/// Sum and count of the bins below `threshold`, branch-free in 8 lanes so
/// the compiler keeps it in vector registers.
fn truncated_sum(bins: &[f32], threshold: f32) -> (f32, f32) {
    let mut sum = [0.0_f32; 8];
    let mut count = [0.0_f32; 8];
    let chunks = bins.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for l in 0..8 {
            let keep = c[l] < threshold;
            sum[l] += if keep { c[l] } else { 0.0 };
            count[l] += if keep { 1.0 } else { 0.0 };
        }
    }
    for (l, &x) in rest.iter().enumerate() {
        let keep = x < threshold;
        sum[l] += if keep { x } else { 0.0 };
        count[l] += if keep { 1.0 } else { 0.0 };
    }
    (sum.iter().sum(), count.iter().sum())
}

/// Broadband-interference detector on the sequence of noise floors.
///
/// A single column's floor scatters by about ±0.8 dB (σ) on the simulator's
/// white noise, so the detector compares the median of the last three
/// columns' floors (one outlier cannot flag a column) with a baseline that
/// follows the median of the last five down at once and up at most
/// `rise_db_per_s`; a single column more than twice the margin above the
/// baseline is flagged at once (a burst's first column).
#[derive(Debug, Clone)]
pub struct InterferenceDetector {
    baseline_db: Option<f32>,
    rise_db_per_column: f32,
    margin_db: f32,
    recent_db: [f32; 5],
    recent_len: usize,
}

fn median_of(v: &[f32]) -> f32 {
    let mut b = [0.0_f32; 5];
    let n = v.len().min(5);
    b[..n].copy_from_slice(&v[..n]);
    let b = &mut b[..n];
    b.sort_by(f32::total_cmp);
    b[n / 2]
}

impl InterferenceDetector {
    /// `margin_db` above the baseline flags interference; the baseline rises
    /// at most `rise_db_per_s`; columns are `hop_s` apart.
    pub fn new(margin_db: f32, rise_db_per_s: f32, hop_s: f32) -> Result<Self, DspError> {
        if !(margin_db > 0.0 && rise_db_per_s > 0.0 && hop_s > 0.0) {
            return Err(DspError::invalid(
                "interference detector",
                format!("margin {margin_db} dB, rise {rise_db_per_s} dB/s"),
                "both > 0",
            ));
        }
        Ok(Self {
            baseline_db: None,
            rise_db_per_column: rise_db_per_s * hop_s,
            margin_db,
            recent_db: [0.0; 5],
            recent_len: 0,
        })
    }

    /// Forgets the baseline (new segment).
    pub fn reset(&mut self) {
        self.baseline_db = None;
        self.recent_len = 0;
    }

    /// Feeds one column's noise floor; true when the column is interference.
    pub fn process(&mut self, noise_power: f32) -> bool {
        let db = 10.0 * noise_power.max(1e-30).log10();
        if self.recent_len == 5 {
            self.recent_db.rotate_left(1);
            self.recent_len = 4;
        }
        self.recent_db[self.recent_len] = db;
        self.recent_len += 1;
        let recent = &self.recent_db[..self.recent_len];
        let med3 = median_of(&recent[recent.len().saturating_sub(3)..]);
        let med5 = median_of(recent);
        let base = match self.baseline_db {
            None => med5,
            Some(b) if med5 < b => med5,
            Some(b) => (b + self.rise_db_per_column).min(med5),
        };
        self.baseline_db = Some(base);
        med3 > base + self.margin_db || db > base + 2.0 * self.margin_db
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exp_noise(n: usize, mean: f32, seed: &mut u64) -> Vec<f32> {
        (0..n)
            .map(|_| {
                *seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                let u = ((*seed >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
                (-(u.ln()) * f64::from(mean)) as f32
            })
            .collect()
    }

    /// Mean relative error and the spread (σ, dB) of the floor over `trials`
    /// columns of exponential noise of mean 3, after `spoil` adds signal.
    fn floor_stats(trials: usize, seed: u64, spoil: impl Fn(&mut [f32])) -> (f32, f32) {
        let mut seed = seed;
        // The pipeline's reference band at 20 kHz, FFT 256, wall 150 Hz.
        let mut nf = NoiseFloor::new(1, 124, 256).unwrap();
        let (mut errs, mut dbs) = (Vec::new(), Vec::new());
        for _ in 0..trials {
            let mut col = exp_noise(256, 3.0, &mut seed);
            spoil(&mut col[1..124]);
            let f = nf.process(&col).unwrap();
            errs.push(f / 3.0 - 1.0);
            dbs.push(10.0 * (f / 3.0).log10());
        }
        let mean_err = errs.iter().sum::<f32>() / trials as f32;
        let mean_db = dbs.iter().sum::<f32>() / trials as f32;
        let var_db = dbs.iter().map(|d| (d - mean_db).powi(2)).sum::<f32>() / trials as f32;
        (mean_err, var_db.sqrt())
    }

    #[test]
    fn floor_of_exponential_bins_is_their_mean() {
        let (bias, sigma_db) = floor_stats(2000, 7, |_| {});
        assert!(bias.abs() < 0.02, "bias {bias}");
        // The interference detector's margins assume a single column's floor
        // scatters by ≲ 0.8 dB (σ); 123 exponential bins allow ~0.4 dB.
        assert!(sigma_db < 0.6, "σ {sigma_db} dB");
    }

    #[test]
    fn floor_ignores_a_fifth_of_the_bins_carrying_strong_signal() {
        // Reverse flow: a contiguous band, here 25 of the 123 bins, 30 dB up.
        let (bias, _) = floor_stats(500, 11, |c| {
            for p in &mut c[40..65] {
                *p += 3000.0;
            }
        });
        assert!(bias.abs() < 0.03, "contiguous band: bias {bias}");
        // Scattered signal bins (every fifth) spoil nearly every group of the
        // start; the truncated passes must still exclude them.
        let (bias, _) = floor_stats(500, 13, |c| {
            for p in c.iter_mut().step_by(5) {
                *p += 3000.0;
            }
        });
        assert!(bias.abs() < 0.05, "scattered bins: bias {bias}");
    }

    #[test]
    fn floor_scales_with_the_noise_power() {
        let mut seed = 5;
        let mut nf = NoiseFloor::new(1, 124, 256).unwrap();
        for mean in [1e-6_f32, 1.0, 1e6] {
            let col = exp_noise(256, mean, &mut seed);
            let f = nf.process(&col).unwrap();
            assert!((f / mean - 1.0).abs() < 0.3, "mean {mean}: floor {f}");
        }
        // All-zero bins: a zero floor, not NaN.
        assert_eq!(nf.process(&[0.0; 256]).unwrap(), 0.0);
    }

    #[test]
    fn rejects_too_few_bins_and_short_columns() {
        assert!(NoiseFloor::new(1, 10, 256).is_err());
        assert!(NoiseFloor::new(1, 300, 256).is_err());
        let mut nf = NoiseFloor::new(1, 124, 256).unwrap();
        assert!(matches!(
            nf.process(&[1.0; 100]),
            Err(DspError::BufferLength { .. })
        ));
    }

    #[test]
    fn flags_a_broadband_burst_and_releases_after_it() {
        let mut d = InterferenceDetector::new(6.0, 1.0, 0.005).unwrap();
        let flags: Vec<bool> = (0..1000)
            .map(|i| d.process(if (400..600).contains(&i) { 100.0 } else { 1.0 }))
            .collect();
        assert!(flags[..400].iter().all(|f| !f));
        // A 20 dB step is flagged from its first column (2 × margin rule).
        assert!(flags[400..600].iter().all(|f| *f));
        // The 3-column median holds the flag for at most two columns after.
        assert!(flags[602..].iter().all(|f| !f));
    }
}
