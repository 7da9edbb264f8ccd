//! Noise floor of a spectrum column, and broadband-interference (diathermy)
//! detection from how the floor moves.
//!
//! The floor is estimated from the negative-frequency half outside the wall
//! band: forward aortic flow is positive (serial-stream.md), reverse flow is
//! brief and narrow, so most of those bins hold only noise. For Gaussian
//! noise a periodogram bin is exponentially distributed, whose median is
//! ln 2 × its mean; the median of the reference bins divided by ln 2 is
//! therefore an unbiased estimate of the mean noise power per bin that a
//! minority of signal bins cannot drag up (a robust alternative to
//! Hildebrand–Sekhon's iterative test, at O(n) cost).
//!
//! Speed: the selection runs on integer keys that order exactly as
//! `f32::total_cmp` (the key transform is done once per bin instead of in
//! every comparison). It does not partition: it narrows a key interval that
//! holds the median by counting, in whole-column passes that vectorise
//! (about ten of them, starting half an octave either side of the previous
//! column's median), then steps to the median by masked minima. The same
//! median, bit for bit, as a quickselect, which took 18 % of `odm analyse`
//! with its mispredicted partitions; counting takes 9 %
//! (docs/performance.md, "The noise median by counting"). An O(n)
//! truncated-mean estimator (Hildebrand–Sekhon style, corrected for the
//! truncation of an exponential) was measured at ~40% less time but moved
//! the envelope on shaped Gaussian noise (dsp/tests/shaped_noise.rs) and
//! the validation grid, so it was not adopted (docs/performance.md).
//!
//! Diathermy swamps the whole band with noise for seconds (primer, "What goes
//! wrong in theatre"): the floor jumps. The detector keeps a baseline that
//! follows the floor down at once and up only slowly (1 dB/s by default), and
//! flags a column whose floor stands more than a set margin (6 dB by
//! default) above it.

use crate::error::DspError;

/// Noise-floor estimator over a fixed set of reference bins.
#[derive(Debug, Clone)]
pub struct NoiseFloor {
    first_bin: usize,
    end_bin: usize,
    scratch: Vec<i32>,
    /// The last column's median key: where to look first. It only speeds
    /// the search; the median found does not depend on it.
    hint: Option<i32>,
}

/// Half the width, in keys, of the interval first tried around the last
/// median: half an octave of power (a float's exponent steps by 2^23).
const HINT_HALF_WIDTH: i64 = 1 << 22;

/// Counting narrows the interval until it holds at most this many keys;
/// masked minima step through the rest.
const FEW_KEYS: u32 = 3;

/// Number of keys below `t`.
#[inline(always)]
fn count_below(keys: &[i32], t: i64) -> u32 {
    // Keys are i32, so a threshold outside that range counts all or none.
    let t = t.clamp(i64::from(i32::MIN), i64::from(i32::MAX) + 1);
    if t > i64::from(i32::MAX) {
        return keys.len() as u32;
    }
    let t = t as i32;
    keys.iter().map(|&k| u32::from(k < t)).sum()
}

/// Number of keys at or below `v`.
#[inline(always)]
fn count_at_most(keys: &[i32], v: i32) -> u32 {
    keys.iter().map(|&k| u32::from(k <= v)).sum()
}

/// The smallest key at or above `a`, if any.
#[inline(always)]
fn min_at_least(keys: &[i32], a: i64) -> Option<i32> {
    let a = a.clamp(i64::from(i32::MIN), i64::from(i32::MAX) + 1);
    if a > i64::from(i32::MAX) {
        return None;
    }
    let a = a as i32;
    // As unsigned keys, with those below `a` set to all ones by a mask,
    // eight lanes at a time: a plain minimum, which vectorises (a
    // conditional one, or one lane, compiled to a chain of `cmov`s).
    let lane = |k: i32| (k as u32 ^ 0x8000_0000) | 0_u32.wrapping_sub(u32::from(k < a));
    let mut lanes = [u32::MAX; 8];
    let chunks = keys.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for (m, &k) in lanes.iter_mut().zip(c) {
            *m = (*m).min(lane(k));
        }
    }
    for (m, &k) in lanes.iter_mut().zip(rest) {
        *m = (*m).min(lane(k));
    }
    let m = (lanes.iter().fold(u32::MAX, |a, &b| a.min(b)) ^ 0x8000_0000) as i32;
    // `i32::MAX` is the fold's start, and also a key (of a NaN).
    (m < i32::MAX || keys.contains(&i32::MAX)).then_some(m)
}

/// A key interval `[lo, hi)` known to hold the key of rank `rank`:
/// `count_below(lo) = below_lo ≤ rank < count_below(hi) = below_hi`.
struct Bracket {
    rank: u32,
    lo: i64,
    below_lo: u32,
    hi: i64,
    below_hi: u32,
}

impl Bracket {
    /// Moves one end of the interval to `t`.
    #[inline(always)]
    fn cut(&mut self, keys: &[i32], t: i64) {
        let c = count_below(keys, t);
        if c <= self.rank {
            (self.lo, self.below_lo) = (t, c);
        } else {
            (self.hi, self.below_hi) = (t, c);
        }
    }
}

/// The key of rank `rank` (0-based, ascending) among `keys`, which must be
/// more than `rank`, by counting; `hint` is a guess at it.
#[inline(always)]
fn select_by_counting(keys: &[i32], rank: u32, hint: Option<i32>) -> i32 {
    debug_assert!((rank as usize) < keys.len());
    let mut b = Bracket {
        rank,
        lo: i64::from(i32::MIN),
        below_lo: 0,
        hi: i64::from(i32::MAX) + 1,
        below_hi: keys.len() as u32,
    };
    if let Some(h) = hint {
        let h = i64::from(h);
        b.cut(keys, h - HINT_HALF_WIDTH);
        if b.lo == h - HINT_HALF_WIDTH {
            b.cut(keys, h + HINT_HALF_WIDTH);
        }
    } else {
        // No guess: start from the keys' own range.
        let (min, max) = keys
            .iter()
            .fold((i32::MAX, i32::MIN), |(a, b), &k| (a.min(k), b.max(k)));
        (b.lo, b.hi) = (i64::from(min), i64::from(max) + 1);
    }
    while b.below_hi - b.below_lo > FEW_KEYS && b.hi - b.lo > 1 {
        b.cut(keys, b.lo + (b.hi - b.lo) / 2);
    }
    // Step up through the keys of [lo, hi) in order to the one of `rank`.
    let mut lo = b.lo;
    loop {
        let Some(v) = min_at_least(keys, lo) else {
            unreachable!("the interval holds the key of rank {rank}");
        };
        if count_at_most(keys, v) > rank {
            return v;
        }
        lo = i64::from(v) + 1;
    }
}

/// A key that orders as `f32::total_cmp` orders the floats (the transform
/// `total_cmp` applies to both operands: negative values' magnitude bits
/// flipped).
fn key_from_f32(x: f32) -> i32 {
    let b = x.to_bits() as i32;
    b ^ (((b >> 31) as u32) >> 1) as i32
}

/// The inverse of [`key_from_f32`].
fn f32_from_key(k: i32) -> f32 {
    f32::from_bits((k ^ (((k >> 31) as u32) >> 1) as i32) as u32)
}

impl NoiseFloor {
    /// Reference bins `first_bin..end_bin` of a column of `fft_len` bins.
    pub fn new(first_bin: usize, end_bin: usize, fft_len: usize) -> Result<Self, DspError> {
        if end_bin > fft_len || end_bin < first_bin + 8 {
            return Err(DspError::invalid(
                "noise reference bins",
                format!("{first_bin}..{end_bin} of {fft_len}"),
                "at least 8 bins inside the column",
            ));
        }
        Ok(Self {
            first_bin,
            end_bin,
            scratch: vec![0; end_bin - first_bin],
            hint: None,
        })
    }

    crate::cpu::wide_method! {
        /// Mean noise power per bin of `power` (a whole column).
        pub fn process / process_avx2(&mut self, power: &[f32]) -> Result<f32, DspError>
            => process_body
    }

    #[inline(always)]
    fn process_body(&mut self, power: &[f32]) -> Result<f32, DspError> {
        let Some(src) = power.get(self.first_bin..self.end_bin) else {
            return Err(DspError::BufferLength {
                stage: "noise floor",
                expected: self.end_bin,
                got: power.len(),
            });
        };
        for (k, &x) in self.scratch.iter_mut().zip(src) {
            *k = key_from_f32(x);
        }
        let mid = (self.scratch.len() / 2) as u32;
        let median = select_by_counting(&self.scratch, mid, self.hint);
        self.hint = Some(median);
        Ok(f32_from_key(median) / std::f32::consts::LN_2)
    }
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

    /// The recent floors' level (median of the last five columns), dB;
    /// None before any.
    pub fn recent_level_db(&self) -> Option<f32> {
        (self.recent_len > 0).then(|| median_of(&self.recent_db[..self.recent_len]))
    }

    /// Moves the baseline and the recent floors by `delta_db`: a known step
    /// of everything received (a change of the receive gain), which is not
    /// interference. Diathermy under way across the step stays above the
    /// moved baseline.
    pub fn shift_level(&mut self, delta_db: f32) {
        if let Some(b) = &mut self.baseline_db {
            *b += delta_db;
        }
        for db in &mut self.recent_db[..self.recent_len] {
            *db += delta_db;
        }
    }

    /// Takes the recent floors (median of the last five) as the baseline:
    /// for a baseline known to have been moved too low.
    pub fn rebase(&mut self) {
        if let Some(level) = self.recent_level_db() {
            self.baseline_db = Some(level);
        }
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

    #[test]
    fn floor_of_exponential_bins_is_their_mean() {
        let mut seed = 7;
        let mut errs = Vec::new();
        for _ in 0..200 {
            let col = exp_noise(256, 3.0, &mut seed);
            let mut nf = NoiseFloor::new(1, 120, 256).unwrap();
            errs.push(nf.process(&col).unwrap() / 3.0 - 1.0);
        }
        let mean_err = errs.iter().sum::<f32>() / errs.len() as f32;
        assert!(mean_err.abs() < 0.03, "bias {mean_err}");
    }

    #[test]
    fn integer_keys_select_the_same_median_as_total_cmp() {
        let mut seed = 5;
        let mut nf = NoiseFloor::new(1, 124, 256).unwrap();
        for trial in 0..200 {
            let mut col = exp_noise(256, 2.0, &mut seed);
            // Ties, zeros, huge and signed values.
            col[5] = 0.0;
            col[6] = 0.0;
            col[7] = f32::MAX;
            if trial % 2 == 0 {
                col[8] = -0.0;
                col[9] = -3.0;
                col[10] = col[11];
            }
            let mut reference = col[1..124].to_vec();
            let (_, m, _) = reference.select_nth_unstable_by(61, f32::total_cmp);
            let want = *m / std::f32::consts::LN_2;
            assert_eq!(nf.process(&col).unwrap().to_bits(), want.to_bits());
        }
        for x in [0.0_f32, -0.0, 1.5, -1.5, f32::MIN, f32::INFINITY, f32::NAN] {
            assert_eq!(f32_from_key(key_from_f32(x)).to_bits(), x.to_bits());
        }
    }

    /// The counting selection returns the key a sort puts at the rank, for
    /// any keys (ties, runs of one value, the extremes of i32) and any hint,
    /// however far off.
    mod counting {
        use super::super::*;
        use proptest::prelude::*;

        fn sorted_rank(keys: &[i32], rank: u32) -> i32 {
            let mut v = keys.to_vec();
            v.sort_unstable();
            v[rank as usize]
        }

        fn key() -> impl Strategy<Value = i32> {
            prop_oneof![
                any::<i32>(),
                -3..3_i32,
                Just(i32::MIN),
                Just(i32::MAX),
                Just(i32::MAX - 1),
                // Around 1.0 and 2.0 as powers: dense, near the hint.
                0x3F70_0000..0x4010_0000_i32,
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]
            #[test]
            fn counting_selects_what_a_sort_puts_at_the_rank(
                keys in prop::collection::vec(key(), 1..160),
                rank_frac in 0.0..1.0_f64,
                hint in prop::option::of(key()),
            ) {
                let rank = ((keys.len() as f64 * rank_frac) as u32).min(keys.len() as u32 - 1);
                prop_assert_eq!(select_by_counting(&keys, rank, hint), sorted_rank(&keys, rank));
            }
        }
    }

    /// A column far from the last one's floor (a diathermy burst's first
    /// column, and back) gives the same median as a fresh estimator.
    #[test]
    fn the_floor_does_not_depend_on_the_last_columns() {
        let mut seed = 11;
        let mut nf = NoiseFloor::new(1, 124, 256).unwrap();
        for mean in [1.0_f32, 1.1, 1e4, 1e4, 0.9, 1e-6, 3.0, 3.0] {
            let col = exp_noise(256, mean, &mut seed);
            let fresh = NoiseFloor::new(1, 124, 256).unwrap().process(&col).unwrap();
            assert_eq!(nf.process(&col).unwrap().to_bits(), fresh.to_bits());
        }
    }

    #[test]
    fn floor_is_unbiased_on_hann_periodograms_of_white_noise() {
        // The pipeline's columns: 200-sample Hann window zero-padded to 256,
        // so neighbouring bins are correlated (not the independent bins of
        // the test above). Complex Gaussian noise of variance 2·σ² = 2.
        use crate::stft::Stft;
        use rustfft::num_complex::Complex32;
        let mut stft = Stft::new(200, 256).unwrap();
        let mut nf = NoiseFloor::new(1, 124, 256).unwrap();
        let mut seed = 3_u64;
        let mut gauss = || {
            let mut u = || {
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                ((seed >> 11) as f64 + 0.5) / (1u64 << 53) as f64
            };
            let (a, b) = (u(), u());
            ((-2.0 * a.ln()).sqrt() * (std::f64::consts::TAU * b).cos()) as f32
        };
        let mut power = vec![0.0; 256];
        let (mut sum, n) = (0.0_f64, 2000);
        for _ in 0..n {
            let x: Vec<Complex32> = (0..200).map(|_| Complex32::new(gauss(), gauss())).collect();
            stft.process(&x, &mut power).unwrap();
            sum += f64::from(nf.process(&power).unwrap());
        }
        let bias = sum / n as f64 / 2.0 - 1.0;
        assert!(bias.abs() < 0.03, "bias {bias}");
    }

    #[test]
    fn floor_ignores_a_minority_of_signal_bins() {
        let mut seed = 11;
        let mut col = exp_noise(256, 1.0, &mut seed);
        for p in &mut col[10..40] {
            *p += 1000.0;
        }
        let mut nf = NoiseFloor::new(1, 120, 256).unwrap();
        // A quarter of the bins carry signal: the median moves to the noise
        // bins' 67th percentile (floor ≈ 1.6); the mean would be ≈ 250.
        let f = nf.process(&col).unwrap();
        assert!(f > 0.8 && f < 2.5, "floor {f}");
    }

    #[test]
    fn a_known_step_of_the_level_moves_the_baseline_and_spares_no_burst() {
        // Clean at floor 1, then a burst at 100; the receive gain rises
        // 10 dB during the burst (everything × 10), then the burst ends.
        let mut d = InterferenceDetector::new(6.0, 1.0, 0.005).unwrap();
        for _ in 0..200 {
            assert!(!d.process(1.0));
        }
        for _ in 0..20 {
            assert!(d.process(100.0));
        }
        let before = d.recent_level_db().unwrap();
        assert!((before - 20.0).abs() < 1e-4, "{before}");
        d.shift_level(30.0 - before);
        for _ in 0..20 {
            assert!(d.process(1000.0), "the burst goes on at the new gain");
        }
        let flags: Vec<bool> = (0..20).map(|_| d.process(10.0)).collect();
        assert!(
            flags[5..].iter().all(|f| !f),
            "clean at the new gain: {flags:?}"
        );
        // Unmoved, the same clean floor (10 dB up) is taken for interference.
        let mut d = InterferenceDetector::new(6.0, 1.0, 0.005).unwrap();
        for _ in 0..200 {
            d.process(1.0);
        }
        let flags: Vec<bool> = (0..20).map(|_| d.process(10.0)).collect();
        assert!(flags[2..].iter().all(|&f| f), "{flags:?}");
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
