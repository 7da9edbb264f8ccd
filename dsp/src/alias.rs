//! Aliasing: forward flow faster than the stream's sample rate can carry.
//!
//! Complex I/Q sampled at `fs` holds Doppler shifts of −fs/2 … +fs/2. A
//! forward shift above +fs/2 wraps round to −fs/2 and upwards: the top of
//! the systolic "triangle" leaves the top of the forward half and comes
//! back at the bottom of the reverse half. At 8 kHz, 4 MHz and 45° that is
//! any velocity above 109 cm/s, inside the primer's range of peak aortic
//! velocities (0.5–2 m/s) and normal in a young adult (90–120 cm/s).
//!
//! **What it did to the analysis** (before 2026-12-01, measured on the
//! virtual probe at 8 kHz with wrapping allowed, `odm simulate
//! --allow-aliasing`): with true peaks of 120 cm/s every beat was accepted
//! with PV reading 106 (the band's top) and SD short; with peaks of 155
//! cm/s the wrapped flow lifted the noise floor, which is measured in the
//! reverse half, and every beat was rejected as `interference`. Neither
//! said why, and the first silently under-read the numbers a fluid
//! decision is made on.
//!
//! **Test, per column.** The mean power of the top `edge` bins of the
//! forward half and of the bottom `edge` bins of the reverse half (next to
//! the band's shared edge, ±fs/2) both stand at least [`LOUD`] times the
//! noise per bin, the reverse side holds at least a thirtieth of the
//! forward side's power, and the middle of the reverse half (0.25–0.35 of
//! it below 0 Hz) is quiet: wrapped flow reaches it only beyond 1.65× the
//! limit, and tissue motion and the aorta's reverse flow, near 0 Hz, not at
//! the peak of systole. (The bins just outside the wall band were tried
//! first: at 1.5× the limit, tissue motion lifted them to 2–5× the noise.) Broadband interference
//! (diathermy) fills those too; an interface's I/Q image of the top of the
//! flow is 20–40 dB under the flow, and so is what the window leaks round
//! the band's edge from flow just under it; reverse flow sits next to 0 Hz,
//! not at −fs/2. The noise is the pipeline's floor of the column, but no
//! more than 1.5× a slow minimum of it: wrapped flow lifts the floor
//! itself, which is measured in the reverse half (1.4× with a fifth of it
//! filled; 10–1000× at 1.5× the limit, measured), and broadband
//! interference then lifts the middle bins against the reference. For a
//! second after an aliased column, a column with flow anywhere in the
//! reverse half's outer part and a quiet middle is aliased too, whatever
//! its band edges read: far beyond the limit a blunt systole's power lies
//! mostly in the wrapped part, at −0.9…−0.5 of the half, with little left
//! next to ±fs/2 (measured at 8 kHz, peaks of 155–170 cm/s).
//!
//! Measured on the virtual probe at 8 kHz, 30 s (`dsp/tests/aliasing.rs`):
//! beats peaking at 90–98 cm/s (0.83–0.90 of the 109 cm/s limit, the top of
//! their spectrum within 8 bins of the band's edge) give no aliased column;
//! beats peaking at 120, 155 and 200 cm/s are every one found.
//!
//! **What follows.** The column is not taken for interference; the
//! pipeline follows the envelope across +fs/2 on rotated copies of the
//! spectrum (up to 1.75× the limit) and rejects as `aliased` a beat whose
//! systole gets past that (`Pipeline::column`); it reports the aliasing so
//! the monitor can say so (`Pipeline::aliasing`,
//! `Pipeline::aliasing_past_unwrap`). See docs/dsp.md, stage 3c.

/// Mean power of an edge region, as a multiple of the noise per bin, at
/// which the region holds flow. Noise alone never averages that much over
/// eight bins (neighbouring bins of the zero-padded Hann window are
/// correlated, so they count as about four: a Γ(4) tail at 40, ≈ 10⁻¹⁴);
/// 3–11× occurs in single bins every few seconds. At 4× against a slow
/// minimum of the floor the test fired on beats peaking at 0.83 of the
/// limit; so did 10× against it on one beat at 0.90.
pub const LOUD: f64 = 10.0;
/// The wrapped (reverse-side) region must hold at least this fraction of
/// the forward top's power: the same flow continues across ±fs/2, while an
/// interface's I/Q image of the top is ≥ 20 dB down.
const IMAGE_RATIO: f64 = 1.0 / 30.0;
/// The middle of the reverse half counts as quiet under this multiple of
/// the noise per bin. Noise alone averages that much over its 7–13 bins
/// with probability ≈ 10⁻⁷; broadband interference 8 dB over the noise
/// does not count as quiet. At 3× some columns at 1.5× the limit, where
/// the window's leakage from the wrapped flow reaches the middle, were
/// still called interference. Weaker interference may count as quiet, but
/// it cannot also make the reverse edge [`LOUD`].
const QUIET: f64 = 6.0;
/// The column's floor is taken as the noise up to this multiple of the
/// slow reference (a slow minimum of the floor reads ≈ 0.7 of the noise);
/// above it, wrapped flow has lifted the floor and this multiple of the
/// reference is the noise.
const NOISE_OVER_FLOOR: f64 = 1.5;
/// An aliasing run is not started by a column whose floor stands this far
/// above the slow reference.
const START_FLOOR_JUMP: f64 = 3.0;
/// The floor reference rises at most this factor per second.
const FLOOR_RISE_PER_S: f64 = 1.5;
/// After an aliased column, a column with flow in the reverse half's outer
/// part and a quiet middle is aliased too, for this long, s: beyond 1.4×
/// the limit a blunt systole's power lies mostly in the wrapped part, away
/// from ±fs/2, and the band's top and bottom bins may both be quiet.
const MEMORY_S: f64 = 1.0;
/// The pipeline says "aliasing" for this long after an aliased column, s.
const REPORT_HOLD_S: f64 = 3.0;

/// Watches the band's edges for wrapped flow (see the module docs).
#[derive(Debug, Clone)]
pub struct AliasDetector {
    zero_bin: usize,
    edge_bins: usize,
    column_s: f64,
    floor_rise: f64,
    /// Slow minimum of the noise per bin; 0 before the first column.
    floor: f64,
    aliased_s: f64,
    since_s: f64,
    middle_quiet: bool,
    /// The last column's noise per bin as this stage reads it.
    noise: f32,
    /// Bins of the reverse half's middle, 0.25–0.35 of the half below 0 Hz.
    middle: std::ops::Range<usize>,
}

impl AliasDetector {
    /// A detector for columns of `fft_len` bins (0 Hz at `fft_len / 2`), the
    /// wall band `wall_bins` each side of 0 Hz, one column every `column_s`.
    pub fn new(fft_len: usize, wall_bins: usize, column_s: f64) -> Self {
        let half = fft_len / 2;
        let edge_bins = (fft_len / 32).max(8).min(half / 4).max(1);
        // Wrapped flow reaches the middle only beyond 1.65× the limit;
        // tissue motion and the aorta's reverse flow stay nearer 0 Hz.
        let end = (half - half / 4).min(half.saturating_sub(wall_bins));
        let start = (half - (0.35 * half as f64).ceil() as usize)
            .min(end.saturating_sub(1))
            .max(edge_bins);
        let middle = start..end.max(start + 1).min(half);
        Self {
            zero_bin: half,
            edge_bins,
            column_s,
            floor_rise: FLOOR_RISE_PER_S.powf(column_s),
            floor: 0.0,
            aliased_s: 0.0,
            since_s: f64::INFINITY,
            middle_quiet: true,
            noise: 0.0,
            middle,
        }
    }

    /// Bins averaged at each edge.
    pub fn edge_bins(&self) -> usize {
        self.edge_bins
    }

    /// One column (linear power per bin, ascending frequency) and the
    /// pipeline's noise per bin; true when the column's flow wraps round
    /// the band's edge.
    ///
    /// A column that is not `clean` (clipped, or within the wall filter's
    /// settling after clipping) is never aliased: clipping I and Q folds
    /// the harmonics of the clutter and the flow round ±fs/2, which once
    /// read as one aliased column in a 120 s stream at 20 kHz.
    pub fn observe(&mut self, power: &[f32], noise_per_bin: f32, clean: bool) -> bool {
        self.since_s += self.column_s;
        self.middle_quiet = false;
        let n = f64::from(noise_per_bin);
        if !clean || power.len() != 2 * self.zero_bin || !(n > 0.0 && n.is_finite()) {
            return false;
        }
        self.floor = if self.floor > 0.0 {
            n.min(self.floor * self.floor_rise)
        } else {
            n
        };
        // The noise: the column's floor, unless wrapped flow has lifted it
        // above the slow reference (which reads ≈ 0.7 of the noise).
        let noise = n.min(NOISE_OVER_FLOOR * self.floor);
        self.noise = noise as f32;
        let k = self.edge_bins;
        let loud = (LOUD * noise) as f32;
        let sum = |b: &[f32]| b.iter().sum::<f32>();
        // Most columns stop here: the band's top holds no flow, and no
        // aliasing was seen in the last second.
        let top = sum(&power[power.len() - k..]);
        let recent = self.since_s <= MEMORY_S;
        if top < loud * k as f32 && !recent {
            return false;
        }
        let bottom = sum(&power[..k]);
        // A run starts with a small wrap at the top of a rising systole,
        // which barely moves the floor; a floor jumping at once is the onset
        // of broadband interference (at the virtual probe's diathermy onset
        // the window's first column read 20× the floor, with the band's
        // edges 27× the noise and its middle 4×).
        let confirmed = n < START_FLOOR_JUMP * self.floor
            && top >= loud * k as f32
            && bottom >= loud * k as f32
            && f64::from(bottom) >= IMAGE_RATIO * f64::from(top);
        if !(confirmed || recent) {
            return false;
        }
        let middle = sum(&power[self.middle.clone()]);
        self.middle_quiet = f64::from(middle) < QUIET * noise * self.middle.len() as f64;
        // Within a second of a confirmed column, flow anywhere in the
        // reverse half's outer part will do: a blunt systole far beyond the
        // limit wraps its bulk to −0.9…−0.5 of the half, with little left
        // next to ±fs/2 or at the forward top.
        let aliased = self.middle_quiet
            && (confirmed
                || power[..self.middle.start]
                    .chunks_exact(k)
                    .any(|g| sum(g) >= loud * k as f32));
        if aliased {
            self.aliased_s += self.column_s;
            self.since_s = 0.0;
        }
        aliased
    }

    /// The last column's reverse half was quiet in its middle: whatever
    /// lifted the floor was not broadband. Measured only on columns that
    /// could be aliased (flow at the band's top, or within a second of
    /// aliasing); false on the others.
    pub fn middle_quiet(&self) -> bool {
        self.middle_quiet
    }

    /// An aliased column within the last second: the columns that may be
    /// aliased too.
    pub fn recent(&self) -> bool {
        self.since_s <= MEMORY_S
    }

    /// The last column's noise per bin: the pipeline's floor, but no more
    /// than 1.5× its slow minimum (wrapped flow lifts the floor).
    pub fn noise_per_bin(&self) -> f32 {
        self.noise
    }

    /// Flow stands on both sides of `bin` (both `edge_bins` regions at
    /// least [`LOUD`] times [`noise_per_bin`](Self::noise_per_bin)): an edge
    /// there is crossed. The pipeline asks it of the edges of its rotated
    /// spectra (`Pipeline::column`'s unwrapping).
    pub fn flow_across(&self, power: &[f32], bin: usize) -> bool {
        let k = self.edge_bins;
        let loud = LOUD as f32 * self.noise * k as f32;
        bin >= k
            && bin + k <= power.len()
            && power[bin - k..bin].iter().sum::<f32>() >= loud
            && power[bin..bin + k].iter().sum::<f32>() >= loud
    }

    /// Flow wrapped round the band's edge within the last 3 s.
    pub fn aliasing(&self) -> bool {
        self.since_s <= REPORT_HOLD_S
    }

    /// Total time of aliased columns so far, s.
    pub fn aliased_s(&self) -> f64 {
        self.aliased_s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::uniform;

    const N: usize = 256;
    const WALL: usize = 5;

    /// Exponential noise of mean 1 per bin, plus `flow(k)` (mean power) on
    /// bin `k` (0 Hz at N/2).
    fn column(rng: &mut (impl FnMut() -> f64 + ?Sized), flow: impl Fn(i64) -> f64) -> Vec<f32> {
        (0..N)
            .map(|k| {
                let off = k as i64 - (N / 2) as i64;
                (-rng().ln() * (1.0 + flow(off))) as f32
            })
            .collect()
    }

    #[test]
    fn noise_and_flow_below_the_band_edge_are_never_aliasing() {
        let mut rng = uniform(1);
        let mut d = AliasDetector::new(N, WALL, 0.005);
        // 100 s of noise, then flow filling 0 … 0.9·fs/2 at 30 dB per bin.
        for i in 0..40_000 {
            let c = if i < 20_000 {
                column(&mut rng, |_| 0.0)
            } else {
                column(&mut rng, |off| {
                    if off > WALL as i64 && off < 115 {
                        1000.0
                    } else {
                        0.0
                    }
                })
            };
            assert!(!d.observe(&c, 1.0, true), "column {i}");
        }
        assert_eq!(d.aliased_s(), 0.0);
        assert!(!d.aliasing());
    }

    #[test]
    fn flow_wrapping_round_the_band_edge_is_aliasing_and_interference_is_not() {
        let mut rng = uniform(2);
        let mut d = AliasDetector::new(N, WALL, 0.005);
        let noise = |d: &mut AliasDetector, rng: &mut dyn FnMut() -> f64, columns: usize| {
            for _ in 0..columns {
                assert!(!d.observe(&column(rng, |_| 0.0), 1.0, true));
            }
        };
        noise(&mut d, &mut rng, 200);
        // Broadband interference: everything 20 dB up, the floor with it.
        assert!(!d.observe(&column(&mut rng, |_| 100.0), 101.0, true));
        // Its onset, whose first column can read louder at the band's edges
        // than in the middle: the floor jumps at once, which no wrap does.
        let onset = |off: i64| {
            if off.abs() > (N as i64) / 2 - 10 {
                300.0
            } else {
                2.0
            }
        };
        assert!(!d.observe(&column(&mut rng, onset), 20.0, true));
        // The top of the flow at the band's edge with an I/Q image 24 dB
        // down at −fs/2.
        let imaged = |off: i64| {
            if off > WALL as i64 {
                10_000.0
            } else if off < -(N as i64) / 2 + 10 {
                40.0
            } else {
                0.0
            }
        };
        assert!(!d.observe(&column(&mut rng, imaged), 1.0, true));
        // Reverse flow next to 0 Hz and forward flow at the top: not a wrap.
        let reverse = |off: i64| {
            if off.abs() > WALL as i64 && off > -40 || off < -(N as i64) / 2 + 10 {
                300.0
            } else {
                0.0
            }
        };
        assert!(!d.observe(&column(&mut rng, reverse), 1.0, true));
        assert!(!d.aliasing());
        // Forward flow up to 1.3·fs/2: the top 0.3 wraps to −fs/2 … −0.7·fs/2
        // and lifts the pipeline's floor (the median of the reverse half).
        let wrapped = |off: i64| {
            let forward = off > WALL as i64;
            let wrapped = off < -(N as i64) / 2 + 38;
            if forward || wrapped { 300.0 } else { 0.0 }
        };
        assert!(d.observe(&column(&mut rng, wrapped), 1.6, true));
        assert!(d.aliasing());
        // Far beyond the limit the wrapped flow fills most of the reverse
        // half and the floor reads 500× the noise: the forward top is under
        // it, but the reference is not.
        let far = |off: i64| {
            let forward = off > WALL as i64;
            let wrapped = off < -50;
            if forward || wrapped { 3000.0 } else { 0.0 }
        };
        assert!(d.observe(&column(&mut rng, far), 500.0, true));
        // Within a second of it, a column whose wrapped part is loud and whose
        // forward top has faded is still aliased; a second later it is not.
        let faded = |off: i64| if off < -50 { 3000.0 } else { 0.0 };
        assert!(d.observe(&column(&mut rng, faded), 500.0, true));
        noise(&mut d, &mut rng, 220);
        assert!(!d.observe(&column(&mut rng, faded), 500.0, true));
        assert!((d.aliased_s() - 3.0 * 0.005).abs() < 1e-12);
    }

    #[test]
    fn the_report_holds_for_three_seconds() {
        let mut rng = uniform(3);
        let mut d = AliasDetector::new(N, WALL, 0.005);
        for _ in 0..10 {
            d.observe(&column(&mut rng, |_| 0.0), 1.0, true);
        }
        assert!(d.observe(
            &column(&mut rng, |off| if off > WALL as i64 || off < -100 {
                300.0
            } else {
                0.0
            }),
            1.0,
            true
        ));
        // A clipped column is never aliased, whatever it holds.
        assert!(!d.observe(
            &column(&mut rng, |off| if off > WALL as i64 || off < -100 {
                300.0
            } else {
                0.0
            }),
            1.0,
            false
        ));
        for _ in 0..590 {
            d.observe(&column(&mut rng, |_| 0.0), 1.0, true);
        }
        assert!(d.aliasing(), "2.95 s later");
        for _ in 0..20 {
            d.observe(&column(&mut rng, |_| 0.0), 1.0, true);
        }
        assert!(!d.aliasing(), "3.05 s later");
    }
}
