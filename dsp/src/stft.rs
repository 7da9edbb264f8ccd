//! Short-time spectrum: one Hann-windowed FFT per hop, power per bin in
//! ascending frequency order (−fs/2 … +fs/2), planned once, no allocation.
//!
//! The window is ≈ 10 ms (the length the literature found best for
//! non-stationary Doppler spectra, primer "Signal-processing methods"),
//! zero-padded to the next power of two. Power is normalised by Σw², so
//! complex white noise of variance σ² has a mean of σ² in every bin, and the
//! power of a bin is exponentially distributed (χ² with 2 degrees of
//! freedom) — the noise statistics the envelope thresholds are derived from.

use crate::error::DspError;
use rustfft::num_complex::Complex32;
use rustfft::{Fft, FftPlanner};
use std::sync::Arc;

/// The short-time spectrum stage.
pub struct Stft {
    fft: Arc<dyn Fft<f32>>,
    window: Vec<f32>,
    fft_len: usize,
    buf: Vec<Complex32>,
    scratch: Vec<Complex32>,
    norm: f32,
}

impl std::fmt::Debug for Stft {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stft")
            .field("window_len", &self.window.len())
            .field("fft_len", &self.fft_len)
            .finish()
    }
}

/// The periodic Hann window of `len` samples: w[n] = sin²(π n / len).
pub fn hann(len: usize) -> Vec<f32> {
    (0..len)
        .map(|n| {
            let s = (std::f64::consts::PI * n as f64 / len as f64).sin();
            (s * s) as f32
        })
        .collect()
}

impl Stft {
    /// Plans the transform for a window of `window_len` samples and an FFT of
    /// `fft_len ≥ window_len` points.
    pub fn new(window_len: usize, fft_len: usize) -> Result<Self, DspError> {
        if window_len < 16 {
            return Err(DspError::invalid("window_len", window_len, "≥ 16 samples"));
        }
        if fft_len < window_len || fft_len > 1 << 16 {
            return Err(DspError::invalid(
                "fft_len",
                fft_len,
                "window_len ≤ fft_len ≤ 65536",
            ));
        }
        let fft = FftPlanner::<f32>::new().plan_fft_forward(fft_len);
        let window = hann(window_len);
        let energy: f64 = window.iter().map(|&w| f64::from(w) * f64::from(w)).sum();
        Ok(Self {
            scratch: vec![Complex32::default(); fft.get_inplace_scratch_len()],
            fft,
            window,
            fft_len,
            buf: vec![Complex32::default(); fft_len],
            norm: (1.0 / energy) as f32,
        })
    }

    /// Window length, samples.
    pub fn window_len(&self) -> usize {
        self.window.len()
    }

    /// FFT length (number of bins).
    pub fn fft_len(&self) -> usize {
        self.fft_len
    }

    /// The analysis window.
    pub fn window(&self) -> &[f32] {
        &self.window
    }

    crate::cpu::wide_method! {
        /// Computes the power spectrum of one window of samples
        /// (`input.len() == window_len`) into `power` (`fft_len` bins, index
        /// `k` ↔ frequency `(k − fft_len/2)·fs/fft_len`).
        pub fn process / process_avx2(
            &mut self,
            input: &[Complex32],
            power: &mut [f32],
        ) -> Result<(), DspError> => process_body
    }

    /// [`Self::process`], inlined into each of its copies ([`crate::cpu`]).
    #[inline(always)]
    fn process_body(&mut self, input: &[Complex32], power: &mut [f32]) -> Result<(), DspError> {
        if input.len() != self.window.len() {
            return Err(DspError::BufferLength {
                stage: "stft input",
                expected: self.window.len(),
                got: input.len(),
            });
        }
        if power.len() != self.fft_len {
            return Err(DspError::BufferLength {
                stage: "stft output",
                expected: self.fft_len,
                got: power.len(),
            });
        }
        let (head, tail) = self.buf.split_at_mut(input.len());
        for ((b, x), w) in head.iter_mut().zip(input).zip(&self.window) {
            *b = x * *w;
        }
        tail.fill(Complex32::default());
        self.transform(power);
        Ok(())
    }

    crate::cpu::wide_method! {
        /// As [`Stft::process`], for a window given in two pieces (`head` then
        /// `tail`, together the window's length) and weighted by the complex
        /// `weights` instead of the Hann window (a dechirped column,
        /// [`crate::dechirp::Dechirp::weights`]). The normalisation is the Hann
        /// window's, which `|weights|` equals.
        pub fn process_weighted / process_weighted_avx2(
            &mut self,
            head: &[Complex32],
            tail: &[Complex32],
            weights: &[Complex32],
            power: &mut [f32],
        ) -> Result<(), DspError> => process_weighted_body
    }

    /// [`Self::process_weighted`], inlined into each of its copies
    /// ([`crate::cpu`]).
    #[inline(always)]
    fn process_weighted_body(
        &mut self,
        head: &[Complex32],
        tail: &[Complex32],
        weights: &[Complex32],
        power: &mut [f32],
    ) -> Result<(), DspError> {
        let n = self.window.len();
        if head.len() + tail.len() != n || weights.len() != n {
            return Err(DspError::BufferLength {
                stage: "stft weighted input",
                expected: n,
                got: head.len() + tail.len(),
            });
        }
        if power.len() != self.fft_len {
            return Err(DspError::BufferLength {
                stage: "stft output",
                expected: self.fft_len,
                got: power.len(),
            });
        }
        let (win, pad) = self.buf.split_at_mut(n);
        let (win_head, win_tail) = win.split_at_mut(head.len());
        let (w_head, w_tail) = weights.split_at(head.len());
        // Two plain loops (a chained iterator does not vectorise).
        for ((b, x), w) in win_head.iter_mut().zip(head).zip(w_head) {
            *b = x * w;
        }
        for ((b, x), w) in win_tail.iter_mut().zip(tail).zip(w_tail) {
            *b = x * w;
        }
        pad.fill(Complex32::default());
        self.transform(power);
        Ok(())
    }

    /// FFT of `buf` and its power, fft-shifted, into `power`.
    #[inline(always)]
    fn transform(&mut self, power: &mut [f32]) {
        self.fft
            .process_with_scratch(&mut self.buf, &mut self.scratch);
        let half = self.fft_len / 2;
        // fft-shift while taking |X|²: negative frequencies first.
        let (neg, pos) = power.split_at_mut(self.fft_len - half);
        for (p, x) in neg.iter_mut().zip(&self.buf[half..]) {
            *p = x.norm_sqr() * self.norm;
        }
        for (p, x) in pos.iter_mut().zip(&self.buf[..half]) {
            *p = x.norm_sqr() * self.norm;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Slow reference: the DFT by its definition, in f64.
    fn reference(input: &[Complex32], window: &[f32], n: usize) -> Vec<f64> {
        let energy: f64 = window.iter().map(|&w| f64::from(w).powi(2)).sum();
        let mut out = vec![0.0; n];
        for (idx, o) in out.iter_mut().enumerate() {
            let k = idx as f64 - (n / 2) as f64;
            let (mut re, mut im) = (0.0, 0.0);
            for (t, (x, w)) in input.iter().zip(window).enumerate() {
                let ph = -2.0 * std::f64::consts::PI * k * t as f64 / n as f64;
                let (s, c) = ph.sin_cos();
                let (xr, xi) = (f64::from(x.re * w), f64::from(x.im * w));
                re += xr * c - xi * s;
                im += xr * s + xi * c;
            }
            *o = (re * re + im * im) / energy;
        }
        out
    }

    #[test]
    fn matches_definition_dft_on_seeded_input() {
        let mut seed = 99_u64;
        let mut r = || {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((seed >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        };
        let input: Vec<Complex32> = (0..200).map(|_| Complex32::new(r(), r())).collect();
        let mut stft = Stft::new(200, 256).unwrap();
        let mut power = vec![0.0; 256];
        stft.process(&input, &mut power).unwrap();
        let want = reference(&input, stft.window(), 256);
        let peak = want.iter().cloned().fold(0.0, f64::max);
        for (g, w) in power.iter().zip(&want) {
            assert!((f64::from(*g) - w).abs() < 1e-4 * peak, "{g} vs {w}");
        }
    }

    #[test]
    fn tone_lands_in_its_signed_bin() {
        // +2 kHz at 20 kHz with 256 bins → bin 128 + 25.6; −1 kHz → 128 − 12.8.
        let fs = 20_000.0;
        for (f_hz, want) in [(2000.0_f64, 154usize), (-1000.0, 115)] {
            let input: Vec<Complex32> = (0..200)
                .map(|t| {
                    let ph = 2.0 * std::f64::consts::PI * f_hz * t as f64 / fs;
                    Complex32::new(ph.cos() as f32, ph.sin() as f32)
                })
                .collect();
            let mut stft = Stft::new(200, 256).unwrap();
            let mut power = vec![0.0; 256];
            stft.process(&input, &mut power).unwrap();
            let argmax = power
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map(|(i, _)| i)
                .unwrap();
            assert!(
                argmax.abs_diff(want) <= 1,
                "{f_hz} Hz at bin {argmax}, want {want}"
            );
        }
    }

    #[test]
    fn wrong_buffer_lengths_are_typed_errors() {
        let mut stft = Stft::new(200, 256).unwrap();
        let mut power = vec![0.0; 256];
        assert!(matches!(
            stft.process(&[Complex32::default(); 10], &mut power),
            Err(DspError::BufferLength {
                expected: 200,
                got: 10,
                ..
            })
        ));
        assert!(Stft::new(300, 256).is_err());
        assert_eq!((stft.window_len(), stft.fft_len()), (200, 256));
        // A dechirped column: head and tail must make one window, with as
        // many weights, into a whole column.
        let x = [Complex32::new(1.0, 0.0); 200];
        let w = [Complex32::new(0.5, 0.0); 200];
        let weighted = |stft: &mut Stft, head: usize, tail: usize, weights: usize, out: usize| {
            let mut power = vec![0.0; out];
            stft.process_weighted(&x[..head], &x[..tail], &w[..weights], &mut power)
        };
        assert!(weighted(&mut stft, 120, 80, 200, 256).is_ok());
        assert!(matches!(
            weighted(&mut stft, 120, 70, 200, 256),
            Err(DspError::BufferLength {
                expected: 200,
                got: 190,
                ..
            })
        ));
        assert!(matches!(
            weighted(&mut stft, 120, 80, 190, 256),
            Err(DspError::BufferLength { expected: 200, .. })
        ));
        assert!(matches!(
            weighted(&mut stft, 120, 80, 200, 255),
            Err(DspError::BufferLength {
                expected: 256,
                got: 255,
                ..
            })
        ));
    }
}
