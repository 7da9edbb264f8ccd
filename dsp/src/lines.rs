//! Narrowband line canceller: finds steady tones in the spectrum (a
//! switching supply, another machine's oscillator) and interpolates across
//! them before the envelope is estimated.
//!
//! Blood flow is never a line: the echoes of millions of cells spread over
//! a band of shifts that moves through the cardiac cycle (primer, "The
//! signal is not a tone"). A tone is the opposite: a few bins, far above the
//! bins on both sides of it, at the same frequency column after column. The
//! envelope integrates the spectrum upwards from the wall band, so a tone
//! above the flow was read as flow up to its frequency: a forward tone
//! standing 40× over the noise in its bin stopped every beat, one at 10×
//! gave accepted beats with PV 25–30 % high (`dsp/tests/narrowband.rs`).
//!
//! Detection (every [`DETECT_EVERY`] columns, on the raw column): a bin is a
//! *hit* when it is a local maximum standing [`PEAK_OVER_NOISE`]× over the
//! noise floor while the bins 3–6 away on *each* side average less than
//! [`SIDES_OVER_NOISE`]× the floor: a peak alone in noise (a Hann window's
//! main lobe is ±2 bins of this 10 ms / 256-point transform; 3 bins out is
//! a side lobe, ≤ −31 dB). Each bin keeps an exponential average of its
//! hits with a 1 s time constant; a line is declared where three adjacent
//! bins' averages sum to [`LINE_ON`] and held until they fall below
//! [`LINE_OFF`]. A tone above the flow is a hit in almost every column; one
//! inside the flow's range is a hit whenever the envelope is below it
//! (diastole). Flow is never a hit, however peaked its edge (a blunt
//! profile piles power up at the edge, and a steady phantom's edge does not
//! move): the bins below a flow edge hold flow, not noise. Speckle gives
//! single-column hits at random bins (a noise bin exceeds 6× the floor in
//! 0.25 % of columns), far below the rate that declares a line.
//!
//! A string phantom's echo *is* a line, alone in noise: calibration turns
//! the canceller off (`PipelineConfig::cancel_lines`).
//!
//! Cancellation (every column): each declared line's bins, widened by the
//! main lobe (5 bins for a tone centred on a bin), are set to the lower of
//! the means of the four bins beyond each side. Over noise that is the
//! noise level; inside the flow it is the flow's level, so systole is left
//! as it was. While the flow's edge crosses the region the region reads as
//! noise and the edge is read at its lower side, so the pipeline marks
//! those envelope points (`DetectorInput::obscured`) and the beat
//! detector's edge fits leave them out. (A straight line between the two
//! sides' means instead carried the flow into the region: edges just below
//! a tone at 55 cm/s read 10 cm/s high and SD 2.5 % high.)
//!
//! Measured (`dsp/tests/narrowband.rs`, virtual probe, 15 dB, 75/min, 60 s,
//! seeds 1–2; tones at 10×, 40× and 160× the noise in their bin): above the
//! flow (5 kHz) every beat is found and the median |errors| of onset and
//! FT are within 0.3 ms, of SD and PV within 0.2 %, of the clean run's;
//! inside the flow's range (2 kHz, 55 cm/s) the same for onset, FT and SD,
//! while PV reads 0.7–0.8 % high (the envelope's pooled shape sees the
//! filled bins: +0.6 cm/s along the whole beat). Tones in the reverse half
//! did no harm before the canceller either.
//!
//! Not cancelled: lines within the wall band (clutter already owns it) or
//! within seven bins of it and of the band's ends (no side to compare
//! with; at 20 kHz, 4 MHz and 45° the lowest tone cancelled is ≈ 23 cm/s),
//! and lines beyond the first [`MAX_LINES`] regions (that many tones is
//! broadband interference, which the noise-floor detector flags).

use crate::error::DspError;

/// Detection runs on every this-many-th column (40 ms at the default hop:
/// 25 looks per time constant of the hit rate).
pub const DETECT_EVERY: usize = 8;
/// A hit stands this many times over the noise floor…
pub const PEAK_OVER_NOISE: f32 = 6.0;
/// …while the mean of each side's bins 3–6 away is below this many times
/// the floor (four noise bins' mean exceeds 2.5× the floor in 1 % of
/// columns).
pub const SIDES_OVER_NOISE: f32 = 2.5;
/// Sum of three adjacent bins' hit rates that declares a line.
pub const LINE_ON: f32 = 0.3;
/// …and below which a declared line is released.
pub const LINE_OFF: f32 = 0.15;
/// Time constant of the hit rate, s.
pub const HIT_RATE_TAU_S: f64 = 1.0;
/// A third of [`LINE_OFF`]: below it in every bin, no line can be held.
const HOT: f32 = LINE_OFF / 3.0;
/// Most line regions cancelled at once.
pub const MAX_LINES: usize = 8;

/// Half-width of a tone's main lobe, bins.
const LOBE: usize = 2;
/// Side bins compared with a candidate: `NEAR..=FAR` bins away.
const NEAR: usize = 3;
const FAR: usize = 6;
/// Bins beyond a region averaged for its interpolation.
const FILL_SIDE: usize = 4;

/// The line canceller stage.
#[derive(Debug, Clone)]
pub struct LineCanceller {
    /// Hit rate per bin (exponential average of 0/1 hits).
    rate: Vec<f32>,
    /// Declared line bins.
    on: Vec<bool>,
    /// The column at which each declared bin was declared.
    on_since: Vec<usize>,
    /// Cancelled regions, inclusive bin ranges (first `len` valid).
    regions: [(usize, usize); MAX_LINES],
    len: usize,
    /// Bins searched: `lo..hi`, except `gap_lo..gap_hi` (the wall band).
    lo: usize,
    hi: usize,
    gap_lo: usize,
    gap_hi: usize,
    alpha: f32,
    column: usize,
}

impl LineCanceller {
    /// For columns of `fft_len` bins with 0 Hz at `fft_len / 2`, whose
    /// wall band is `wall_bins` either side of 0 Hz; columns `hop_s` apart.
    pub fn new(fft_len: usize, wall_bins: usize, hop_s: f64) -> Result<Self, DspError> {
        if fft_len < 64 || !(hop_s.is_finite() && hop_s > 0.0) {
            return Err(DspError::invalid(
                "line canceller",
                format!("{fft_len} bins, hop {hop_s} s"),
                "≥ 64 bins and a hop > 0",
            ));
        }
        let zero = fft_len / 2;
        // A candidate's far side, and the fill bins of a region around it
        // (no further out: FAR ≥ LOBE + FILL_SIDE), stay inside the column
        // and outside the wall band.
        const { assert!(FAR >= LOBE + FILL_SIDE) };
        let margin = FAR + 1;
        let alpha = (DETECT_EVERY as f64 * hop_s / HIT_RATE_TAU_S).min(1.0) as f32;
        Ok(Self {
            rate: vec![0.0; fft_len],
            on: vec![false; fft_len],
            on_since: vec![0; fft_len],
            regions: [(0, 0); MAX_LINES],
            len: 0,
            lo: margin,
            hi: fft_len - margin,
            gap_lo: zero.saturating_sub(wall_bins + margin),
            gap_hi: zero + wall_bins + margin + 1,
            alpha,
            column: 0,
        })
    }

    /// Forgets every line (a new stream segment).
    pub fn reset(&mut self) {
        self.rate.fill(0.0);
        self.on.fill(false);
        self.len = 0;
        self.column = 0;
    }

    /// The regions being cancelled, inclusive bin ranges of the column.
    pub fn regions(&self) -> &[(usize, usize)] {
        &self.regions[..self.len]
    }

    /// How many columns the canceller has held a line over `bin` without
    /// a break (the longest-held declared bin of the region that covers
    /// it); None when no region covers it.
    pub fn held_columns(&self, bin: usize) -> Option<usize> {
        let &(a, b) = self
            .regions()
            .iter()
            .find(|(a, b)| (*a..=*b).contains(&bin))?;
        (a..=b)
            .filter(|&k| self.on[k])
            .map(|k| self.column - self.on_since[k])
            .max()
    }

    crate::cpu::wide_method! {
        /// Feeds one raw column (with its noise floor per bin) to the detector.
        /// Only every [`DETECT_EVERY`]-th call looks at it.
        pub fn observe / observe_avx2(&mut self, power: &[f32], noise_power: f32) => observe_body
    }

    /// [`Self::observe`], inlined into each of its copies ([`crate::cpu`]).
    #[inline(always)]
    fn observe_body(&mut self, power: &[f32], noise_power: f32) {
        if power.len() != self.rate.len() {
            return;
        }
        self.column += 1;
        if !self.column.is_multiple_of(DETECT_EVERY) {
            return;
        }
        let keep = 1.0 - self.alpha;
        // Some bin at a third of LINE_OFF or more is needed for any three
        // adjacent bins to hold a line; without one, nothing is declared
        // and the declaring pass is skipped (it is most of the cost).
        let mut hot = 0_u32;
        for r in &mut self.rate {
            *r *= keep;
            hot |= u32::from(*r >= HOT);
        }
        let floor = PEAK_OVER_NOISE * noise_power;
        let side_limit = SIDES_OVER_NOISE * noise_power * (FAR - NEAR + 1) as f32;
        let side = |a: usize| power[a..a + FAR - NEAR + 1].iter().sum::<f32>();
        for range in [self.lo..self.gap_lo, self.gap_hi..self.hi] {
            for k in range {
                let p = power[k];
                if p > floor
                    && p >= power[k - 1]
                    && p > power[k + 1]
                    && side(k - FAR) < side_limit
                    && side(k + NEAR) < side_limit
                {
                    self.rate[k] += self.alpha;
                    hot |= u32::from(self.rate[k] >= HOT);
                }
            }
        }
        if hot == 0 {
            // (With no region there is no declared bin: every declared run
            // makes a region, unless MAX_LINES are already there.)
            if self.len > 0 {
                self.len = 0;
                self.on.fill(false);
            }
            return;
        }
        self.declare();
    }

    /// Updates the declared bins (with hysteresis) and the regions.
    fn declare(&mut self) {
        self.len = 0;
        let mut open: Option<usize> = None;
        for k in self.lo..self.hi {
            let in_gap = (self.gap_lo..self.gap_hi).contains(&k);
            let sum = self.rate[k - 1] + self.rate[k] + self.rate[k + 1];
            let on = !in_gap
                && if self.on[k] {
                    sum >= LINE_OFF
                } else {
                    sum >= LINE_ON
                };
            if on && !self.on[k] {
                self.on_since[k] = self.column;
            }
            self.on[k] = on;
            match (on, open) {
                (true, None) => open = Some(k),
                (false, Some(a)) => {
                    self.push_run(a, k - 1);
                    open = None;
                }
                _ => {}
            }
        }
        if let Some(a) = open {
            self.push_run(a, self.hi - 1);
        }
    }

    /// A run of declared bins: its core is the bins holding at least a
    /// quarter of the run's highest hit rate (the declared run also holds
    /// the peak's neighbours, whose three-bin sums include it); the region
    /// is the core widened by the main lobe.
    fn push_run(&mut self, first: usize, last: usize) {
        let top = self.rate[first..=last]
            .iter()
            .fold(0.0_f32, |m, &r| m.max(r));
        let core = |k: &usize| self.rate[*k] >= 0.25 * top;
        let a = (first..=last).find(core).unwrap_or(first);
        let b = (first..=last).rev().find(core).unwrap_or(last);
        self.push_region(a, b);
    }

    fn push_region(&mut self, first: usize, last: usize) {
        let (a, b) = (first - LOBE, last + LOBE);
        if self.len > 0 && self.regions[self.len - 1].1 + FILL_SIDE >= a {
            // Close to the previous region: one region (its fill bins would
            // hold the other's line).
            self.regions[self.len - 1].1 = b;
        } else if self.len < MAX_LINES {
            self.regions[self.len] = (a, b);
            self.len += 1;
        }
    }

    /// Sets every declared line's bins in `power` to the lower of the mean
    /// levels of the bins on either side.
    pub fn cancel(&self, power: &mut [f32]) {
        if power.len() != self.rate.len() {
            return;
        }
        for &(a, b) in self.regions() {
            let mean = |r: std::ops::Range<usize>| power[r].iter().sum::<f32>() / FILL_SIDE as f32;
            let level = mean(a - FILL_SIDE..a).min(mean(b + 1..b + 1 + FILL_SIDE));
            power[a..=b].fill(level);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic stand-in for exponential periodogram speckle.
    fn speckle(seed: &mut u64) -> f32 {
        *seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let u = ((*seed >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        -(u.ln()) as f32
    }

    fn noise_column(seed: &mut u64) -> Vec<f32> {
        (0..256).map(|_| speckle(seed)).collect()
    }

    /// Adds a Hann-lobed tone peaking at `peak` in bin `k`.
    fn add_tone(col: &mut [f32], k: usize, peak: f32) {
        for (d, g) in [(0, 1.0), (1, 0.5), (2, 0.06)] {
            col[k + d] += peak * g;
            col[k - d] += if d == 0 { 0.0 } else { peak * g };
        }
    }

    /// Adds speckled flow from bin 140 up to `edge` at `level`, the edge
    /// bin and the two under it piled up by `pile` (edge first).
    fn add_flow(col: &mut [f32], edge: usize, level: f32, pile: [f32; 3], seed: &mut u64) {
        for (k, p) in col.iter_mut().enumerate().take(edge + 1).skip(140) {
            *p += level * pile[(edge - k).min(2)] * speckle(seed);
        }
    }

    #[test]
    fn a_steady_tone_is_found_and_cancelled_to_the_noise_level() {
        let mut c = LineCanceller::new(256, 4, 0.005).unwrap();
        let mut seed = 7;
        let mut last = Vec::new();
        for _ in 0..400 {
            let mut col = noise_column(&mut seed);
            add_tone(&mut col, 200, 20.0);
            c.observe(&col, 1.0);
            c.cancel(&mut col);
            last = col;
        }
        assert_eq!(c.regions().len(), 1, "{:?}", c.regions());
        let (a, b) = c.regions()[0];
        assert!(a <= 198 && b >= 202, "{a}..{b}");
        for (k, &p) in last.iter().enumerate().take(203).skip(197) {
            assert!(p < 3.0, "bin {k} still {p}");
        }
    }

    #[test]
    fn noise_and_a_moving_edge_declare_no_line() {
        let mut c = LineCanceller::new(256, 4, 0.005).unwrap();
        let mut seed = 11;
        for i in 0..2000 {
            let mut col = noise_column(&mut seed);
            // A flow band from the wall band up to an edge that sweeps
            // 140..200 and back once a second, piled up 3× at the edge.
            let phase = (i % 200) as f32 / 200.0;
            let edge = 140 + (60.0 * (std::f32::consts::PI * phase).sin()) as usize;
            add_flow(&mut col, edge, 50.0, [3.0, 3.0, 1.0], &mut seed);
            c.observe(&col, 1.0);
            assert!(c.regions().is_empty(), "column {i}: {:?}", c.regions());
        }
    }

    /// A steady phantom's blunt edge does not move and is peaked many
    /// times over the flow just below it; it is flow, not a line.
    #[test]
    fn a_steady_peaked_flow_edge_is_not_a_line() {
        let mut c = LineCanceller::new(256, 4, 0.005).unwrap();
        let mut seed = 13;
        for _ in 0..2000 {
            let mut col = noise_column(&mut seed);
            add_flow(&mut col, 180, 20.0, [12.0, 6.0, 3.0], &mut seed);
            c.observe(&col, 1.0);
        }
        assert!(c.regions().is_empty(), "{:?}", c.regions());
    }

    #[test]
    fn a_line_is_released_after_its_tone_stops() {
        let mut c = LineCanceller::new(256, 4, 0.005).unwrap();
        let mut seed = 3;
        for i in 0..1600 {
            let mut col = noise_column(&mut seed);
            if i < 400 {
                add_tone(&mut col, 60, 30.0);
            }
            c.observe(&col, 1.0);
            if i == 399 {
                assert_eq!(c.regions().len(), 1);
            }
        }
        assert!(c.regions().is_empty(), "{:?}", c.regions());
    }

    #[test]
    fn inside_the_wall_band_nothing_is_declared() {
        let mut c = LineCanceller::new(256, 4, 0.005).unwrap();
        let mut seed = 5;
        for _ in 0..400 {
            let mut col = noise_column(&mut seed);
            add_tone(&mut col, 128 + 3, 1000.0);
            c.observe(&col, 1.0);
        }
        assert!(c.regions().is_empty(), "{:?}", c.regions());
    }
}
