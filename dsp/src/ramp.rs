//! The envelope's time smear on moving edges, and its correction.
//!
//! A spectrum column summarises a whole analysis window (10 ms). While the
//! maximum velocity is rising, the later part of the window already holds
//! higher velocities than the window's centre; the column's spectrum then
//! has a tail above the centre's edge whose level falls with the window's
//! weight there. An edge estimator reads into that tail, and the stronger
//! the signal, the further: the envelope leads a rising edge and lags a
//! falling one, so systole looks early at its start, late at its end, and
//! its area (stroke distance) too large. On the virtual probe at 30 dB this
//! was a 2–4 ms early onset, 4–9 ms long flow time and +3…4 % stroke
//! distance on blunt profiles (docs/dsp.md).
//!
//! [`RampResponse`] measures this from first principles, once, for the
//! pipeline's own window, transform and estimator: it builds the *expected*
//! column of a velocity profile whose edge moves linearly in time — each
//! lamina of the power-law profile family a random-phase chirp, windowed and
//! transformed exactly — runs the configured estimator on it, and tabulates
//! the excess over the same profile standing still, against slope, shape
//! `β` and the estimator's own signal-to-noise reading. The pipeline looks
//! the excess up per envelope point from the local slope (the neighbouring
//! points) and subtracts it. At a peak or on a plateau the slope is zero and
//! nothing changes.
//!
//! Nothing here is fitted to a signal: the table follows from the window,
//! the transform size and the estimator alone.

use crate::envelope::EnvelopeEstimator;
use crate::envelope::{EdgeEstimate, bracket};
use rustfft::FftPlanner;
use rustfft::num_complex::Complex32;

/// Shape exponents `β` of the table (density `∝ (f_e − f)^β`): from the
/// most edge-peaked the estimator models to an edge-poor one.
const BETAS: [f64; 5] = [-0.85, -0.6, -0.3, 0.0, 0.5];
/// Edge slopes of the table, Hz per ms (at 4 MHz and 45°, 36.8 Hz/ms is
/// 1 cm/s per ms, i.e. 1 000 cm/s²).
const SLOPES_HZ_PER_MS: [f64; 7] = [0.0, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0];
/// Signal levels of the table: flow density just below the edge over the
/// noise (for a flat spectrum).
const LEVELS: [f64; 8] = [3.0, 10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0, 10000.0];
/// Laminae of the velocity profile summed per column.
const LAMINAE: usize = 128;
/// Where the table's edge sits, FFT bins (3 kHz of the default 20 kHz
/// stream), or this far above the first searched bin if that is higher.
/// The estimator works in bins near the edge, so its reading does not
/// depend on where the edge is once it is clear of the wall band.
const EDGE_BINS: usize = 38;
/// … the margin above the first searched bin.
const EDGE_ABOVE_SEARCH_BINS: usize = 24;
/// Laminae whose chirps are generated together (a divisor of [`LAMINAE`]).
const LANES: usize = 4;
const _: () = assert!(LAMINAE.is_multiple_of(LANES));
/// Positions of the edge within its bin the table averages over.
const EDGE_POSITIONS: usize = 4;

/// The estimator's excess reading on moving edges (see the module docs).
#[derive(Debug, Clone)]
pub struct RampResponse {
    /// `ln` of the estimator's signal-to-noise reading, per
    /// `[beta][slope][level]` (NaN where it found no flow).
    ln_snr: Vec<f32>,
    /// Excess of the edge read on the moving edge over the still one, Hz,
    /// per `[beta][slope][level]`.
    excess_hz: Vec<f32>,
}

fn index(b: usize, s: usize, l: usize) -> usize {
    (b * SLOPES_HZ_PER_MS.len() + s) * LEVELS.len() + l
}

impl RampResponse {
    /// Tabulates the response of `estimator` (a fresh one, as configured
    /// for the stream) to columns made with `window` and an `fft_len`-point
    /// transform at `sample_rate_hz`.
    pub fn new(
        estimator: &EnvelopeEstimator,
        window: &[f32],
        fft_len: usize,
        sample_rate_hz: f64,
    ) -> Self {
        let fs = sample_rate_hz;
        let half = fft_len / 2;
        let bin_hz = fs / fft_len as f64;
        let edge_bin = EDGE_BINS
            .max((estimator.min_shift_hz() / bin_hz).ceil() as usize + EDGE_ABOVE_SEARCH_BINS)
            .min(half / 2);
        // Bins that can hold flow: up to the edge, its fastest drift over
        // half a window, and the kernel's reach; above them only noise.
        let max_slope = SLOPES_HZ_PER_MS[SLOPES_HZ_PER_MS.len() - 1];
        let drift_bins = max_slope * 0.5 * window.len() as f64 / fs * 1000.0 / bin_hz;
        let kept = (2 * edge_bin + drift_bins.ceil() as usize + 16).min(half);
        let energy: f64 = window.iter().map(|&w| f64::from(w).powi(2)).sum();
        let centre = (window.len() as f64 - 1.0) / 2.0;
        let fft = FftPlanner::<f32>::new().plan_fft_forward(fft_len);
        let mut scratch = vec![Complex32::default(); fft.get_inplace_scratch_len()];
        let mut buf = vec![Complex32::default(); LANES * fft_len];
        let n_entries = BETAS.len() * SLOPES_HZ_PER_MS.len() * LEVELS.len();
        // Sums over the edge positions, then means.
        let mut ln_snr = vec![0.0_f32; n_entries];
        let mut edge_read = vec![0.0_f32; n_entries];
        let mut found = vec![0_u32; n_entries];
        let mut lamina_power = vec![0.0_f32; SLOPES_HZ_PER_MS.len() * LAMINAE * kept];
        let mut signal = vec![0.0_f64; kept];
        let mut column = vec![1.0_f32; fft_len];
        let mut out = EdgeEstimate::default();
        // One copy for every tabulated column (`force_shape` resets what a
        // column changes); a clone per column was a tenth of the start-up.
        let mut est = estimator.clone();
        let lamina_weights = |beta: f64| -> Vec<f64> {
            // Share of the profile's power in each lamina: the power-law
            // density integrated over the lamina's cell.
            let cum = |g: f64| 1.0 - (1.0 - g).powf(beta + 1.0);
            (0..LAMINAE)
                .map(|l| cum((l + 1) as f64 / LAMINAE as f64) - cum(l as f64 / LAMINAE as f64))
                .collect()
        };
        let weights: Vec<Vec<f64>> = BETAS.iter().map(|&b| lamina_weights(b)).collect();
        // The estimator's sub-bin error depends on where the edge falls
        // within a bin, and so does its reading of a moving edge: the table
        // averages over edge positions, as a stream meets them all.
        for q in 0..EDGE_POSITIONS {
            let edge_hz = (edge_bin as f64 + q as f64 / EDGE_POSITIONS as f64) * bin_hz;
            // Per slope and lamina, the windowed chirp's positive-frequency
            // power (normalised by the window energy, as the STFT does).
            for (j, &slope) in SLOPES_HZ_PER_MS.iter().enumerate() {
                // The edge's phase advances by f_e(t)/fs cycles a sample,
                // f_e(t) = edge + slope·t, t = 0 at the window's centre: an
                // increment that itself grows by a constant each sample.
                // Lamina g's phasor therefore follows a two-step rotation
                // recurrence (two sin_cos per lamina instead of one per
                // sample, which were half of `odm analyse`'s start-up);
                // over a window its error stays ~1e-12 rad, far below the
                // f32 the column is built in.
                let t0_ms = (0.5 - centre) / fs * 1000.0;
                let inc0_cycles = (edge_hz + slope * t0_ms) / fs;
                let dinc_cycles = slope * 1000.0 / (fs * fs);
                // Laminae in groups of LANES: their recurrences are
                // independent, and interleaved they overlap in the CPU
                // instead of each waiting on its own multiply–add chain.
                for l0 in (0..LAMINAE).step_by(LANES) {
                    let rot = |l: usize, cycles: f64| {
                        let g = (l as f64 + 0.5) / LAMINAE as f64;
                        let (sin, cos) = (std::f64::consts::TAU * (g * cycles).fract()).sin_cos();
                        (cos, sin)
                    };
                    let mut z = [(1.0_f64, 0.0_f64); LANES];
                    let mut r = [(0.0_f64, 0.0_f64); LANES];
                    let mut q = [(0.0_f64, 0.0_f64); LANES];
                    for k in 0..LANES {
                        r[k] = rot(l0 + k, inc0_cycles);
                        q[k] = rot(l0 + k, dinc_cycles);
                    }
                    buf.fill(Complex32::default());
                    for (s, &w) in window.iter().enumerate() {
                        for k in 0..LANES {
                            let ((zr, zi), (rr, ri), (qr, qi)) = (z[k], r[k], q[k]);
                            buf[k * fft_len + s] = Complex32::new(w * zr as f32, w * zi as f32);
                            z[k] = (zr * rr - zi * ri, zr * ri + zi * rr);
                            r[k] = (rr * qr - ri * qi, rr * qi + ri * qr);
                        }
                    }
                    for (k, lane) in buf.chunks_exact_mut(fft_len).enumerate() {
                        fft.process_with_scratch(lane, &mut scratch);
                        let l = l0 + k;
                        let out = &mut lamina_power[(j * LAMINAE + l) * kept..][..kept];
                        for (o, x) in out.iter_mut().zip(&lane[..kept]) {
                            *o = (f64::from(x.norm_sqr()) / energy) as f32;
                        }
                    }
                }
            }
            for (b, &beta) in BETAS.iter().enumerate() {
                for j in 0..SLOPES_HZ_PER_MS.len() {
                    signal.fill(0.0);
                    for (l, &wt) in weights[b].iter().enumerate() {
                        let lp = &lamina_power[(j * LAMINAE + l) * kept..][..kept];
                        for (s, &x) in signal.iter_mut().zip(lp) {
                            *s += wt * f64::from(x);
                        }
                    }
                    for (lv, &level) in LEVELS.iter().enumerate() {
                        // Total flow power `level·f_e/fs` over unit noise: a
                        // flat profile's density is then `level` per bin.
                        let scale = level * edge_hz / fs;
                        for (c, &s) in column[half..].iter_mut().zip(&signal) {
                            *c = (1.0 + scale * s) as f32;
                        }
                        est.force_shape(beta);
                        // The column has the estimator's length: no error.
                        if est.process(&column, 1.0, &mut out).is_err() || out.shift_hz <= 0.0 {
                            continue;
                        }
                        let k = index(b, j, lv);
                        ln_snr[k] += out.snr.max(1e-3).ln();
                        edge_read[k] += (f64::from(out.shift_hz) - edge_hz) as f32;
                        found[k] += 1;
                    }
                }
            }
        }
        // Means over the positions where flow was found (all, or the entry
        // is left out), and the excess over the same profile standing still.
        let mut excess_hz = vec![0.0_f32; n_entries];
        for b in 0..BETAS.len() {
            for lv in 0..LEVELS.len() {
                let k0 = index(b, 0, lv);
                for j in 0..SLOPES_HZ_PER_MS.len() {
                    let k = index(b, j, lv);
                    let all = EDGE_POSITIONS as u32;
                    if found[k] == all && found[k0] == all {
                        ln_snr[k] /= all as f32;
                        excess_hz[k] = (edge_read[k] - edge_read[k0]) / all as f32;
                    } else {
                        ln_snr[k] = f32::NAN;
                    }
                }
            }
        }
        Self { ln_snr, excess_hz }
    }

    /// Excess (Hz) the estimator reads on an edge moving at
    /// `slope_hz_per_ms` (either sign) for a column whose signal-to-noise
    /// reading is `snr` and whose pooled shape is `beta`. Interpolated in the
    /// table, clamped at its ends.
    pub fn excess_hz(&self, snr: f32, beta: f64, slope_hz_per_ms: f32) -> f32 {
        if snr.is_nan() || snr <= 0.0 || !slope_hz_per_ms.is_finite() {
            return 0.0;
        }
        let x = snr.ln();
        let (b0, b1, wb) = bracket(&BETAS, beta);
        let (s0, s1, ws) = bracket(&SLOPES_HZ_PER_MS, f64::from(slope_hz_per_ms.abs()));
        let at = |b: usize, s: usize| -> f32 {
            // Interpolate over level by the snr reading.
            let row = index(b, s, 0);
            let ln = &self.ln_snr[row..row + LEVELS.len()];
            let ex = &self.excess_hz[row..row + LEVELS.len()];
            let valid = |l: usize| !ln[l].is_nan();
            let mut prev: Option<usize> = None;
            for l in 0..LEVELS.len() {
                if !valid(l) {
                    continue;
                }
                if x <= ln[l] {
                    return match prev {
                        Some(p) if ln[l] > ln[p] => {
                            let w = (x - ln[p]) / (ln[l] - ln[p]);
                            ex[p] + w * (ex[l] - ex[p])
                        }
                        _ => ex[l],
                    };
                }
                prev = Some(l);
            }
            prev.map_or(0.0, |p| ex[p])
        };
        let lerp = |a: f32, b: f32, w: f64| a + w as f32 * (b - a);
        let e0 = lerp(at(b0, s0), at(b0, s1), ws);
        let e1 = lerp(at(b1, s0), at(b1, s1), ws);
        lerp(e0, e1, wb).max(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::EnvelopeConfig;
    use crate::envelope::tests::expected_ramp_column;
    use crate::stft::hann;

    fn table() -> (EnvelopeEstimator, RampResponse) {
        let window = hann(200);
        let est = EnvelopeEstimator::new(EnvelopeConfig::default(), &window, 256, 20_000.0, 200.0)
            .unwrap();
        let t = RampResponse::new(&est, &window, 256, 20_000.0);
        (est, t)
    }

    #[test]
    fn no_excess_on_a_still_edge_and_more_on_steeper_stronger_edges() {
        let (_, t) = table();
        for beta in [-2.0 / 3.0, 0.0] {
            assert_eq!(t.excess_hz(300.0, beta, 0.0), 0.0);
            let mut last = 0.0;
            for slope in [10.0, 20.0, 40.0, 80.0] {
                let e = t.excess_hz(300.0, beta, slope);
                assert!(e >= last, "β {beta}: excess fell to {e} at {slope} Hz/ms");
                assert_eq!(e, t.excess_hz(300.0, beta, -slope), "rise and fall differ");
                last = e;
            }
            // A 40 Hz/ms edge read into by at most the window's half-length.
            let e = t.excess_hz(1000.0, beta, 40.0);
            assert!(e > 0.0 && e < 40.0 * 5.0, "β {beta}: {e} Hz");
            assert!(t.excess_hz(30.0, beta, 40.0) <= e);
        }
        // An edge-peaked spectrum's tail stands further above the noise.
        assert!(t.excess_hz(300.0, -2.0 / 3.0, 40.0) > t.excess_hz(300.0, 0.0, 40.0));
    }

    /// Other streams and windows (8 and 48 kHz, 5 and 20 ms): the table
    /// builds, reads nothing on a still edge, and a steeper edge never
    /// reads less; a longer window smears more.
    #[test]
    fn other_rates_and_windows_give_sane_tables() {
        let mut by_window = Vec::new();
        for fs in [8_000.0, 48_000.0] {
            for window_s in [0.005, 0.02] {
                let window = hann((window_s * fs) as usize);
                let fft_len = window.len().next_power_of_two();
                let est =
                    EnvelopeEstimator::new(EnvelopeConfig::default(), &window, fft_len, fs, 300.0)
                        .unwrap();
                let t = RampResponse::new(&est, &window, fft_len, fs);
                assert_eq!(t.excess_hz(300.0, -0.6, 0.0), 0.0);
                let mut last = 0.0;
                for slope in [5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 400.0] {
                    let e = t.excess_hz(300.0, -0.6, slope);
                    assert!(
                        e.is_finite() && e >= last,
                        "{fs} Hz {window_s} s: {e} at {slope}"
                    );
                    last = e;
                }
                if fs == 48_000.0 {
                    by_window.push(t.excess_hz(300.0, -0.6, 40.0));
                }
            }
        }
        assert!(by_window[1] > by_window[0], "{by_window:?}");
    }

    /// The table (FFT of 128 laminae) against brute force (direct DFT of
    /// 256 laminae, exact chirp phase), averaged over the same edge
    /// positions and read at the brute-force columns' own signal-to-noise
    /// reading, as the pipeline does.
    #[test]
    fn table_matches_brute_force_ramp_columns() {
        let (est, t) = table();
        let window = hann(200);
        let bin_hz = 20_000.0 / 256.0;
        for (beta, level, slope) in [
            (-0.6, 300.0, 40.0),
            (0.0, 100.0, 80.0),
            (-0.3, 1000.0, 20.0),
        ] {
            let (mut brute, mut ln_snr) = (0.0, 0.0);
            for q in 0..EDGE_POSITIONS {
                let edge_hz = (EDGE_BINS as f64 + q as f64 / EDGE_POSITIONS as f64) * bin_hz;
                let read = |slope: f64| {
                    let col =
                        expected_ramp_column(edge_hz, slope, level, beta, 20_000.0, &window, 256);
                    let mut e = est.clone();
                    e.force_shape(beta);
                    let mut out = EdgeEstimate::default();
                    e.process(&col, 1.0, &mut out).unwrap();
                    out
                };
                let (still, moving) = (read(0.0), read(slope));
                brute += f64::from(moving.shift_hz - still.shift_hz) / EDGE_POSITIONS as f64;
                ln_snr += f64::from(moving.snr).ln() / EDGE_POSITIONS as f64;
            }
            let tab = f64::from(t.excess_hz(ln_snr.exp() as f32, beta, slope as f32));
            assert!(brute > 0.0, "no excess on a moving edge: {brute}");
            assert!(
                (tab - brute).abs() < 0.1 * brute + 2.0,
                "β {beta} level {level} slope {slope}: table {tab:.1}, brute force {brute:.1} Hz"
            );
        }
    }
}
