//! Dechirped columns for moving edges.
//!
//! In systole every scatterer's Doppler shift scales with the maximum
//! velocity, so while that velocity rises or falls the spectrum's edge
//! sweeps across the analysis window: at 140/min a steep rise moves it
//! 8–10 FFT bins within one 10 ms window. The column then holds a smeared
//! edge, and the envelope's template fit reads it with two to three times
//! the scatter it has on a plateau (docs/dsp.md, stage 4, "Moving edges
//! read dechirped": on a refgen-like continuum at 140/min, robust sd
//! 2.2–2.7 cm/s on steep rises against 0.9–1.3 on plateaus).
//!
//! Multiplying the window's samples by `exp(−iπ c t²)`, `t` from the
//! window's centre, moves each frequency by `−c t`: a component whose
//! frequency rises at `c` Hz/s stands still, so an edge sweeping at the
//! rate `c` is as sharp as a still one, read at the frequency it has at
//! the window's centre (the column's time). Slower components (lower in
//! the spectrum) are left sweeping at `(1 − q) c` the other way; they lie
//! below the edge and the envelope does not read them.
//!
//! [`Dechirp`] holds the Hann window times that phase for sweeps of whole
//! FFT bins per window, built once, so that a dechirped column costs one
//! complex multiply per sample and one FFT; the pipeline picks the table
//! from the edge's slope through the neighbouring columns.

use rustfft::num_complex::Complex32;

/// Hann-weighted dechirping phases for whole-bin sweeps per window.
#[derive(Debug, Clone)]
pub struct Dechirp {
    window_len: usize,
    /// Tables for sweeps `−max_sweep ..= max_sweep` bins per window, each
    /// `window_len` long, one after another.
    tables: Vec<Complex32>,
    max_sweep: i32,
}

impl Dechirp {
    /// Tables for `window` (real weights) over columns of `fft_len` bins at
    /// `sample_rate_hz`, up to `max_sweep_bins` bins per window either way.
    pub fn new(window: &[f32], fft_len: usize, sample_rate_hz: f64, max_sweep_bins: u32) -> Self {
        let n = window.len();
        let max_sweep = max_sweep_bins as i32;
        let bin_hz = sample_rate_hz / fft_len as f64;
        let window_s = n as f64 / sample_rate_hz;
        let mut tables = Vec::with_capacity((2 * max_sweep as usize + 1) * n);
        for sweep in -max_sweep..=max_sweep {
            // Rate (Hz/s) that sweeps `sweep` bins over the window.
            let rate_hz_s = f64::from(sweep) * bin_hz / window_s;
            for (i, &w) in window.iter().enumerate() {
                // The column's time is its window's centre (sample n/2).
                let t_s = (i as f64 - n as f64 / 2.0) / sample_rate_hz;
                let phase = -std::f64::consts::PI * rate_hz_s * t_s * t_s;
                let (s, c) = phase.sin_cos();
                tables.push(Complex32::new(
                    (c * f64::from(w)) as f32,
                    (s * f64::from(w)) as f32,
                ));
            }
        }
        Self {
            window_len: n,
            tables,
            max_sweep,
        }
    }

    /// The weights that stand still an edge sweeping `sweep_bins` bins per
    /// window (rounded to a whole bin, clamped to the table).
    pub fn weights(&self, sweep_bins: f32) -> &[Complex32] {
        let s = (sweep_bins.round() as i32).clamp(-self.max_sweep, self.max_sweep);
        let k = (s + self.max_sweep) as usize;
        &self.tables[k * self.window_len..(k + 1) * self.window_len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stft::{Stft, hann};

    const FS: f64 = 20_000.0;

    /// A unit tone whose frequency passes `f_hz` at the window's centre
    /// while rising at `rate_hz_s`.
    fn chirp(f_hz: f64, rate_hz_s: f64) -> Vec<Complex32> {
        (0..200)
            .map(|i| {
                let t = (i as f64 - 100.0) / FS;
                let ph = 2.0 * std::f64::consts::PI * (f_hz * t + 0.5 * rate_hz_s * t * t);
                Complex32::new(ph.cos() as f32, ph.sin() as f32)
            })
            .collect()
    }

    fn peak(power: &[f32]) -> (usize, f32) {
        power
            .iter()
            .enumerate()
            .fold((0, 0.0), |m, (i, &p)| if p > m.1 { (i, p) } else { m })
    }

    #[test]
    fn sweep_zero_is_the_plain_window() {
        let w = hann(200);
        let d = Dechirp::new(&w, 256, FS, 24);
        for (a, b) in d.weights(0.0).iter().zip(&w) {
            assert_eq!(a.re, *b);
            assert_eq!(a.im, 0.0);
        }
        assert_eq!(d.weights(99.0).len(), 200);
        assert_eq!(d.weights(-99.0).len(), 200);
    }

    /// A tone sweeping 8 bins in the window (the steep rise at 140/min)
    /// is spread by the plain window and stands as sharp as a still tone
    /// once dechirped, at the frequency it has at the window's centre.
    #[test]
    fn a_tone_sweeping_at_the_tables_rate_is_as_sharp_as_a_still_one() {
        let w = hann(200);
        let d = Dechirp::new(&w, 256, FS, 24);
        let bin_hz = FS / 256.0;
        let rate = 8.0 * bin_hz / 0.01;
        let f = 40.0 * bin_hz;
        let mut stft = Stft::new(200, 256).unwrap();
        let (mut still, mut plain, mut fixed) = (vec![0.0; 256], vec![0.0; 256], vec![0.0; 256]);
        stft.process(&chirp(f, 0.0), &mut still).unwrap();
        stft.process(&chirp(f, rate), &mut plain).unwrap();
        let x = chirp(f, rate);
        stft.process_weighted(&x[..100], &x[100..], d.weights(8.0), &mut fixed)
            .unwrap();
        let (bs, ps) = peak(&still);
        let (bf, pf) = peak(&fixed);
        let (_, pp) = peak(&plain);
        assert_eq!(bs, 128 + 40);
        assert_eq!(bf, bs);
        assert!(
            (pf / ps - 1.0).abs() < 0.01,
            "dechirped peak {pf} vs still {ps}"
        );
        // The Hann taper shortens the sweep it sees: 0.61 of the still peak.
        assert!(pp < 0.7 * ps, "plain peak {pp} vs still {ps}");
    }
}
