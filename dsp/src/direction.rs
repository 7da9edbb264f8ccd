//! Flow direction: is the pulsatile flow in the reverse half of the spectrum?
//!
//! serial-stream.md fixes the sign: forward (caudal) aortic flow is a
//! positive Doppler shift. A probe interface whose I and Q are swapped, or
//! whose mixer runs the other way, delivers the aorta's flow as a negative
//! shift; so does a beam on a vessel whose flow runs towards the probe. The
//! envelope looks only at the forward half, so the analysis then sees
//! noise, finds no beat and, after `signal_lost_after_s`, says "signal
//! lost" — while a strong pulsatile signal is in front of it and audible in
//! the Doppler sound. This stage tells the two apart so that the monitor
//! can say what is wrong.
//!
//! **Measure.** Per column, the power standing above the noise in each half,
//! outside the wall band: `Σ max(0, p − 5·n)` over the bins, `n` the noise
//! per bin. A bin of noise alone adds on average `n·e⁻⁵` (exponential
//! power), the same in both halves. `n` is a slow minimum of the pipeline's
//! floor (which is measured in the reverse half, so reversed flow lifts it
//! during systole; the diastoles hold it down): it follows a lower floor at
//! once and a higher one at 50 % per second. Both sums are averaged with a
//! 3 s exponential memory over clean columns (no interference, no clipping),
//! every 4th column.
//!
//! **Decision.** The flow is *reversed* once at least 3 s have been seen and
//! the reverse half's average is at least 4 times the forward half's and at
//! least 0.1·`n` per bin of a half — about 14 times what noise alone gives,
//! and 1/20 of what a systole at 8 dB SNR and 75/min gives averaged over its
//! cycle. It is forward again when the reverse average falls under twice the
//! forward one, or under half that level. The aorta's own brief reverse flow
//! after systole and diastolic reversal both stay well under the forward
//! systole's power, so a normal probe is never reported (the virtual probe's
//! reverse dips, with diathermy, gaps and clipping: `dsp/tests/direction.rs`).

/// Memory of the averages, s.
const MEMORY_S: f64 = 3.0;
/// Signal needed before judging, s.
const MIN_SEEN_S: f64 = 3.0;
/// Bins count above this many times the noise per bin.
const NOISE_MULTIPLE: f32 = 5.0;
/// The floor reference rises at most this factor per second.
const FLOOR_RISE_PER_S: f64 = 1.5;
/// Reverse ÷ forward average at which the flow is reversed, and under which
/// it is forward again.
const ENTER_RATIO: f64 = 4.0;
const LEAVE_RATIO: f64 = 2.0;
/// Least reverse average, as a multiple of the noise per bin times a
/// half's bins.
const MIN_LEVEL: f64 = 0.1;
/// Every this many columns is observed.
const STRIDE: u32 = 4;

/// Tracks which half of the spectrum the pulsatile flow is in (see the
/// module docs).
#[derive(Debug, Clone)]
pub struct FlowDirection {
    zero_bin: usize,
    wall_bins: usize,
    /// Bins in each half outside the wall band.
    half_bins: f64,
    /// Column period, s, and the per-observation decay and floor rise.
    column_s: f64,
    decay: f64,
    floor_rise: f64,
    /// Slow minimum of the noise per bin; 0 before the first column.
    floor: f64,
    /// Averages of the forward and reverse sums, and their total weight.
    fwd: f64,
    rev: f64,
    weight: f64,
    seen_s: f64,
    countdown: u32,
    reversed: bool,
    reversed_s: f64,
}

impl FlowDirection {
    /// A tracker for columns of `fft_len` bins (0 Hz at `fft_len / 2`), the
    /// wall band `wall_bins` each side of 0 Hz left out, one column every
    /// `column_s`.
    pub fn new(fft_len: usize, wall_bins: usize, column_s: f64) -> Self {
        let half = fft_len / 2;
        let wall_bins = wall_bins.min(half.saturating_sub(1));
        let observed_s = column_s * f64::from(STRIDE);
        Self {
            zero_bin: half,
            wall_bins,
            half_bins: half.saturating_sub(wall_bins + 1).max(1) as f64,
            column_s,
            decay: (-observed_s / MEMORY_S).exp(),
            floor_rise: FLOOR_RISE_PER_S.powf(observed_s),
            floor: 0.0,
            fwd: 0.0,
            rev: 0.0,
            weight: 0.0,
            seen_s: 0.0,
            countdown: 0,
            reversed: false,
            reversed_s: 0.0,
        }
    }

    /// One column: linear power per bin in ascending frequency, the
    /// pipeline's noise per bin, and whether the column is clean.
    pub fn observe(&mut self, power: &[f32], noise_per_bin: f32, clean: bool) {
        if self.reversed {
            self.reversed_s += self.column_s;
        }
        if self.countdown > 0 {
            self.countdown -= 1;
            return;
        }
        self.countdown = STRIDE - 1;
        let n = f64::from(noise_per_bin);
        if !(clean && n > 0.0 && n.is_finite()) || power.len() != 2 * self.zero_bin {
            return;
        }
        self.floor = if self.floor > 0.0 {
            n.min(self.floor * self.floor_rise)
        } else {
            n
        };
        let level = NOISE_MULTIPLE * self.floor as f32;
        // Eight running sums, so that the loop vectorises.
        let excess = |bins: &[f32]| -> f64 {
            let mut acc = [0.0f32; 8];
            let chunks = bins.chunks_exact(8);
            let tail: f32 = chunks
                .remainder()
                .iter()
                .map(|&p| (p - level).max(0.0))
                .sum();
            for c in chunks {
                for (a, &p) in acc.iter_mut().zip(c) {
                    *a += (p - level).max(0.0);
                }
            }
            f64::from(acc.iter().sum::<f32>() + tail)
        };
        // Bin 0 is the band's shared edge (±fs/2): in neither half.
        let rev = excess(&power[1..self.zero_bin - self.wall_bins]);
        let fwd = excess(&power[self.zero_bin + self.wall_bins + 1..]);
        self.fwd = self.fwd * self.decay + fwd;
        self.rev = self.rev * self.decay + rev;
        self.weight = self.weight * self.decay + 1.0;
        self.seen_s += self.column_s * f64::from(STRIDE);
        self.decide();
    }

    fn decide(&mut self) {
        if self.seen_s < MIN_SEEN_S || self.weight <= 0.0 {
            return;
        }
        let (fwd, rev) = (self.fwd / self.weight, self.rev / self.weight);
        let min_level = MIN_LEVEL * self.floor * self.half_bins;
        self.reversed = if self.reversed {
            !(rev < LEAVE_RATIO * fwd || rev < 0.5 * min_level)
        } else {
            rev >= ENTER_RATIO * fwd && rev >= min_level
        };
    }

    /// The pulsatile flow is in the reverse half: I and Q swapped at the
    /// interface, or the beam on flow towards the probe.
    pub fn reversed(&self) -> bool {
        self.reversed
    }

    /// The reverse half's share of the flow's power over the last seconds,
    /// 0..1; None before 3 s of clean signal or when neither half holds
    /// flow above the noise.
    pub fn reverse_share(&self) -> Option<f64> {
        if self.seen_s < MIN_SEEN_S || self.weight <= 0.0 {
            return None;
        }
        let total = self.fwd + self.rev;
        let min_level = MIN_LEVEL * self.floor * self.half_bins * self.weight;
        (total >= min_level && total > 0.0).then(|| self.rev / total)
    }

    /// Signal time spent reversed so far, s.
    pub fn reversed_s(&self) -> f64 {
        self.reversed_s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::uniform;

    const N: usize = 256;
    const WALL: usize = 4;
    const COLUMN_S: f64 = 0.005;

    /// Noise (exponential power, mean 1 per bin) plus, during a systole of
    /// 30 % of each 0.8 s cycle, flow `snr` times the noise in the bins from
    /// the wall band to 40 bins beyond it, on the `reverse` side or not.
    fn columns(
        d: &mut FlowDirection,
        seconds: f64,
        snr: f32,
        reverse: bool,
        rand: &mut impl FnMut() -> f64,
    ) -> Vec<bool> {
        let mut power = vec![0.0f32; N];
        let mut states = Vec::new();
        let columns = (seconds / COLUMN_S) as usize;
        for c in 0..columns {
            let t = c as f64 * COLUMN_S;
            let systole = (t % 0.8) < 0.24;
            for (k, p) in power.iter_mut().enumerate() {
                *p = -rand().ln() as f32;
                let off = k as i64 - (N / 2) as i64;
                let flow_bin = if reverse { -off } else { off };
                if systole && flow_bin > WALL as i64 && flow_bin <= (WALL + 40) as i64 {
                    *p *= 1.0 + snr;
                }
            }
            d.observe(&power, 1.0, true);
            states.push(d.reversed());
        }
        states
    }

    #[test]
    fn reversed_flow_is_reported_after_three_seconds_and_forward_flow_never() {
        let mut rand = uniform(5);
        let mut d = FlowDirection::new(N, WALL, COLUMN_S);
        let states = columns(&mut d, 10.0, 30.0, true, &mut rand);
        let first = states.iter().position(|&r| r).expect("reported");
        let first_s = first as f64 * COLUMN_S;
        assert!(
            (2.9..4.0).contains(&first_s),
            "first reported at {first_s} s"
        );
        assert!(states[first..].iter().all(|&r| r), "stays reported");
        assert!(d.reverse_share().unwrap() > 0.95);
        assert!((d.reversed_s() - (10.0 - first_s)).abs() < 0.05);

        let mut d = FlowDirection::new(N, WALL, COLUMN_S);
        assert!(!columns(&mut d, 10.0, 30.0, false, &mut rand).contains(&true));
        assert!(d.reverse_share().unwrap() < 0.05);
        assert_eq!(d.reversed_s(), 0.0);
    }

    #[test]
    fn noise_alone_is_neither_way() {
        let mut rand = uniform(9);
        let mut d = FlowDirection::new(N, WALL, COLUMN_S);
        assert!(!columns(&mut d, 10.0, 0.0, true, &mut rand).contains(&true));
        assert_eq!(d.reverse_share(), None);
    }

    #[test]
    fn the_report_ends_when_the_flow_turns_forward() {
        let mut rand = uniform(11);
        let mut d = FlowDirection::new(N, WALL, COLUMN_S);
        columns(&mut d, 8.0, 30.0, true, &mut rand);
        assert!(d.reversed());
        let states = columns(&mut d, 8.0, 30.0, false, &mut rand);
        let last = states
            .iter()
            .rposition(|&r| r)
            .map_or(0.0, |i| i as f64 * COLUMN_S);
        assert!(last < 2.0, "still reported {last} s after the flow turned");
        assert!(!d.reversed());
    }

    #[test]
    fn unclean_columns_teach_nothing() {
        let mut d = FlowDirection::new(N, WALL, COLUMN_S);
        let mut power = vec![1.0f32; N];
        power[10..60].fill(1000.0);
        for _ in 0..4000 {
            d.observe(&power, 1.0, false);
        }
        assert!(!d.reversed());
        assert_eq!(d.reverse_share(), None);
    }
}
