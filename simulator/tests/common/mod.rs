//! Helpers shared by the simulator's integration tests.
#![allow(dead_code)]

use odm_device_io::{IqBlock, Payload};
use odm_simulator::{SimConfig, TruthBeat, VirtualProbe};
use rustfft::{FftPlanner, num_complex::Complex};

/// Everything one finite run produced.
pub struct Run {
    pub payloads: Vec<Payload>,
    pub truth: Vec<TruthBeat>,
    pub impairments: Vec<odm_simulator::Impairment>,
    pub probe: VirtualProbe,
}

pub fn run(cfg: SimConfig) -> Run {
    let mut probe = VirtualProbe::new(cfg).unwrap();
    let mut payloads = Vec::new();
    let mut truth = Vec::new();
    while let Some(p) = probe.next_payload() {
        payloads.push(p);
        truth.extend(probe.take_truth_beats());
    }
    truth.extend(probe.take_truth_beats());
    let impairments = probe.take_impairments();
    Run {
        payloads,
        truth,
        impairments,
        probe,
    }
}

pub fn iq_blocks(payloads: &[Payload]) -> Vec<&IqBlock> {
    payloads
        .iter()
        .filter_map(|p| match p {
            Payload::Iq(b) => Some(b),
            _ => None,
        })
        .collect()
}

/// All samples of a gap-free run, as complex f64.
pub fn samples(payloads: &[Payload]) -> Vec<Complex<f64>> {
    let mut out = Vec::new();
    for b in iq_blocks(payloads) {
        assert_eq!(b.first_sample, out.len() as u64, "test expects no gaps");
        out.extend(
            b.samples
                .iter()
                .map(|&[i, q]| Complex::new(f64::from(i), f64::from(q))),
        );
    }
    out
}

/// 4-term Blackman–Harris window (Harris 1978): sidelobes below −92 dB, so
/// 30 dB of wall clutter cannot leak over the noise floor; main lobe ±4 bins.
pub fn window(i: usize, n: usize) -> f64 {
    let x = std::f64::consts::TAU * i as f64 / n as f64;
    0.35875 - 0.48829 * x.cos() + 0.14128 * (2.0 * x).cos() - 0.01168 * (3.0 * x).cos()
}

/// Windowed power spectrum of `x[start .. start + n]`, bins in FFT order.
pub fn power_spectrum(x: &[Complex<f64>], start: usize, n: usize) -> Vec<f64> {
    let fft = FftPlanner::new().plan_fft_forward(n);
    let mut buf: Vec<Complex<f64>> = (0..n).map(|i| x[start + i] * window(i, n)).collect();
    fft.process(&mut buf);
    buf.iter().map(|c| c.norm_sqr()).collect()
}

/// Frequency of FFT bin `k` of an `n`-point transform, Hz (negative above n/2).
pub fn bin_hz(k: usize, n: usize, fs: f64) -> f64 {
    if k < n / 2 {
        k as f64 * fs / n as f64
    } else {
        (k as f64 - n as f64) * fs / n as f64
    }
}

/// Mean power per bin over bins whose |frequency| lies in `[lo, hi]` Hz.
pub fn mean_power_in(p: &[f64], fs: f64, lo: f64, hi: f64) -> f64 {
    let n = p.len();
    let sel: Vec<f64> = (0..n)
        .filter(|&k| {
            let f = bin_hz(k, n, fs).abs();
            f >= lo && f <= hi
        })
        .map(|k| p[k])
        .collect();
    sel.iter().sum::<f64>() / sel.len() as f64
}

/// Highest positive frequency below `limit_hz` whose 3-bin mean power
/// exceeds `threshold`, Hz (0 if none).
pub fn edge_hz(p: &[f64], fs: f64, threshold: f64, limit_hz: f64) -> f64 {
    let n = p.len();
    let top = ((limit_hz / fs * n as f64) as usize).min(n / 2 - 2);
    for k in (1..top).rev() {
        if (p[k - 1] + p[k] + p[k + 1]) / 3.0 > threshold {
            return bin_hz(k, n, fs);
        }
    }
    0.0
}
