//! The generated I/Q against the Doppler equation: spectral edge = truth
//! envelope, SNR calibration, miscalibration, phantom.

mod common;

use common::{bin_hz, edge_hz, mean_power_in, power_spectrum, run, samples, window};
use odm_simulator::{SimConfig, VirtualProbe, doppler_shift_hz_from_velocity_cm_s};

const FS: f64 = 20_000.0;
/// STFT length: 256 samples = 12.8 ms (primer: ~10 ms windows for Doppler
/// spectra), bin spacing 78.1 Hz; the Blackman–Harris main lobe is ±4 bins.
const N: usize = 256;
const BIN_HZ: f64 = FS / N as f64;

fn cfg(seconds: f64) -> SimConfig {
    SimConfig {
        duration_s: Some(seconds),
        ..SimConfig::default()
    }
}

/// Hz per cm/s at 4 MHz, 45°: the primer's 1 m/s ↔ 3 673.3 Hz.
#[test]
fn doppler_equation_matches_primer_numbers() {
    let hz = doppler_shift_hz_from_velocity_cm_s(100.0, 4_000_000, 45.0);
    assert!((hz - 3673.3).abs() < 0.1, "{hz}");
}

#[test]
fn spectral_edge_follows_the_truth_envelope() {
    let c = cfg(6.0);
    let mut probe = VirtualProbe::new(c.clone()).unwrap();
    let mut payloads = Vec::new();
    while let Some(p) = probe.next_payload() {
        payloads.push(p);
    }
    let x = samples(&payloads);
    let k = c.signal_hz_per_cm_s();
    // Re-create the truth envelope independently of the probe that made the signal.
    let mut timeline = odm_simulator::BeatTimeline::new(&c, 10.0);
    let mut checked = 0;
    let mut abs_err_sum = 0.0;
    let mut signed_sum = 0.0;
    let mut start = 0;
    while start + N <= x.len() {
        let p = power_spectrum(&x, start, N);
        let floor = mean_power_in(&p, FS, 8_500.0, 9_500.0);
        // Above 600 Hz: the wall clutter's own band is not blood.
        let est = edge_hz(&p, FS, 30.0 * floor, 8_000.0).max(600.0);
        let truth: Vec<f64> = (start..start + N)
            .map(|n| k * timeline.true_velocity_cm_s(n as f64 / FS).unwrap())
            .collect();
        let hi = truth.iter().cloned().fold(600.0, f64::max);
        let lo = truth.iter().cloned().fold(f64::INFINITY, f64::min);
        // Nothing above the highest true edge in the window beyond the window's
        // own spread (main lobe ±4 bins, plus one for the 3-bin smoothing).
        assert!(
            est <= hi + 5.0 * BIN_HZ,
            "window at {:.3} s: edge {est:.0} Hz above truth max {hi:.0} Hz",
            start as f64 / FS
        );
        if lo > 1_000.0 {
            // Mid-systole: the edge is there, within the window's resolution.
            assert!(
                est >= lo - 5.0 * BIN_HZ,
                "window at {:.3} s: edge {est:.0} Hz below truth min {lo:.0} Hz",
                start as f64 / FS
            );
            let mid = truth[N / 2];
            abs_err_sum += (est - mid).abs();
            signed_sum += est - mid;
            checked += 1;
        }
        start += N / 2;
    }
    assert!(checked > 50, "{checked} systolic windows");
    let mean_abs_err = abs_err_sum / checked as f64;
    let bias = signed_sum / checked as f64;
    eprintln!(
        "edge vs truth at window centre: bias {bias:.0} Hz, mean |err| {mean_abs_err:.0} Hz over {checked} windows"
    );
    // A threshold edge on a Blackman–Harris spectrum reads up to half the
    // main lobe (4 bins) high; the mean error must stay inside that.
    assert!(
        mean_abs_err < 4.0 * BIN_HZ,
        "mean |edge − truth| {mean_abs_err:.0} Hz"
    );
}

#[test]
fn noise_power_matches_requested_snr() {
    // SNR (docs/simulator.md): mean blood-signal power during systole over
    // white-noise power in the whole band.
    for snr_db in [8.0, 20.0] {
        let c = SimConfig {
            snr_db: Some(snr_db),
            clutter_db: None,
            reverse_flow_cm_s: 0.0,
            ..cfg(20.0)
        };
        let x = samples(&run(c.clone()).payloads);
        let mut timeline = odm_simulator::BeatTimeline::new(&c, 30.0);
        let win_power: f64 = (0..N).map(|i| window(i, N).powi(2)).sum();
        let mut noise_per_bin = 0.0;
        let mut frames = 0.0;
        let mut systolic_total = 0.0;
        let mut systolic_frames = 0.0;
        let mut start = 0;
        while start + N <= x.len() {
            let p = power_spectrum(&x, start, N);
            // Noise is white: its power per bin where no blood reaches
            // (|f| > 8.5 kHz; PV here stays under 4 kHz).
            noise_per_bin += mean_power_in(&p, FS, 8_500.0, 10_000.0);
            frames += 1.0;
            let in_systole = (start..start + N)
                .step_by(8)
                .all(|n| timeline.systolic_velocity_cm_s(n as f64 / FS).unwrap() > 0.0);
            if in_systole {
                systolic_total += p.iter().sum::<f64>();
                systolic_frames += 1.0;
            }
            start += N;
        }
        // Parseval with the window: Σ|X|² = N·Σw²·power for white noise.
        let noise_power = noise_per_bin / frames / win_power;
        let systolic_power = systolic_total / systolic_frames / win_power / N as f64;
        let blood = c.blood_rms_counts.powi(2);
        let want_noise = blood / 10f64.powf(snr_db / 10.0);
        let err_db = 10.0 * (noise_power / want_noise).log10();
        assert!(
            err_db.abs() < 0.2,
            "snr {snr_db}: noise off by {err_db:.2} dB"
        );
        let snr_measured = 10.0 * ((systolic_power - noise_power) / noise_power).log10();
        assert!(
            (snr_measured - snr_db).abs() < 0.5,
            "requested {snr_db} dB, measured {snr_measured:.2} dB over {systolic_frames} windows"
        );
    }
}

/// Power-weighted mean positive frequency of the blood band, Hz.
fn blood_centroid_hz(c: SimConfig) -> f64 {
    let x = samples(&run(c).payloads);
    let mut num = 0.0;
    let mut den = 0.0;
    let mut start = 0;
    while start + N <= x.len() {
        let p = power_spectrum(&x, start, N);
        for (k, &pk) in p.iter().enumerate() {
            let f = bin_hz(k, N, FS);
            if f > 0.0 {
                num += f * pk;
                den += pk;
            }
        }
        start += N;
    }
    num / den
}

fn phantom(v_cm_s: f64) -> SimConfig {
    SimConfig {
        phantom_cm_s: Some(v_cm_s),
        clutter_db: None,
        snr_db: Some(40.0),
        ..cfg(2.0)
    }
}

/// For frequency ratios: many short-lived scatterer groups, so the random
/// cross terms between groups average out of the spectral centroid.
fn phantom_for_ratio(v_cm_s: f64) -> SimConfig {
    SimConfig {
        scatterer_lifetime_ms: 5.0,
        duration_s: Some(10.0),
        ..phantom(v_cm_s)
    }
}

#[test]
fn phantom_gives_a_constant_edge_at_the_doppler_shift() {
    let c = phantom(50.0);
    let want = doppler_shift_hz_from_velocity_cm_s(50.0, 4_000_000, 45.0);
    let x = samples(&run(c).payloads);
    // Stationary: a 1024-point window (19.5 Hz bins, main lobe ±4 bins).
    let n_fft = 1024;
    let bin = FS / n_fft as f64;
    let mut start = 0;
    let mut n = 0;
    while start + n_fft <= x.len() {
        let p = power_spectrum(&x, start, n_fft);
        let floor = mean_power_in(&p, FS, 8_500.0, 9_500.0);
        let est = edge_hz(&p, FS, 30.0 * floor, 8_000.0);
        assert!(
            (est - want).abs() <= 5.0 * bin,
            "edge {est:.0} Hz, want {want:.0} Hz"
        );
        n += 1;
        start += n_fft / 2;
    }
    assert!(n > 50);
}

#[test]
fn gain_error_scales_every_frequency() {
    let base = blood_centroid_hz(phantom_for_ratio(40.0));
    let high = blood_centroid_hz(SimConfig {
        probe_gain_error: 0.07,
        ..phantom_for_ratio(40.0)
    });
    let ratio = high / base;
    assert!((ratio - 1.07).abs() < 0.005, "ratio {ratio:.4}");
}

#[test]
fn angle_error_follows_the_doppler_equation() {
    for d in [-5.0, 5.0] {
        let base = blood_centroid_hz(phantom_for_ratio(40.0));
        let off = blood_centroid_hz(SimConfig {
            probe_angle_error_deg: d,
            ..phantom_for_ratio(40.0)
        });
        let want = (45.0f64 + d).to_radians().cos() / 45.0f64.to_radians().cos();
        let ratio = off / base;
        assert!(
            (ratio - want).abs() < 0.005,
            "angle error {d}: ratio {ratio:.4}, want {want:.4}"
        );
    }
}

#[test]
fn forward_flow_is_a_positive_shift() {
    // serial-stream.md: forward flow rotates I + jQ counter-clockwise.
    let x = samples(&run(phantom(60.0)).payloads);
    let p = power_spectrum(&x, 0, 4096);
    let pos: f64 = (1..2048).map(|k| p[k]).sum();
    let neg: f64 = (2049..4096).map(|k| p[k]).sum();
    assert!(pos > 100.0 * neg, "positive {pos:.3e}, negative {neg:.3e}");
}

#[test]
fn reverse_flow_after_systole_is_a_negative_shift() {
    let c = SimConfig {
        reverse_flow_cm_s: 20.0,
        clutter_db: None,
        ..cfg(4.0)
    };
    let x = samples(&run(c.clone()).payloads);
    let mut timeline = odm_simulator::BeatTimeline::new(&c, 10.0);
    timeline.ensure_until(4.0);
    let dips: Vec<_> = timeline.beats().filter_map(|b| b.reverse).collect();
    assert!(!dips.is_empty());
    let mut checked = 0;
    for d in dips {
        let mid = ((d.start_s + d.duration_s / 2.0) * FS) as usize;
        if mid < N / 2 || mid + N / 2 > x.len() {
            continue;
        }
        let p = power_spectrum(&x, mid - N / 2, N);
        let neg = mean_power_in(&p, FS, 150.0, 500.0); // both signs
        let pos: f64 = (2..7).map(|k| p[k]).sum::<f64>();
        let negb: f64 = (N - 7..N - 1).map(|k| p[k]).sum::<f64>();
        assert!(
            negb > 10.0 * pos,
            "dip not negative: +{pos:.3e} −{negb:.3e} ({neg:.3e})"
        );
        checked += 1;
    }
    assert!(checked > 0);
}

/// The wall clutter is a pure (frequency-modulated) tone pair: nothing of it
/// may stand above the white noise far from 0 Hz. With the oscillator's phase
/// truncated to its 4 096-entry table, its spurs (≈ −62 dB of the clutter)
/// were tones 10–40× the noise in single bins at 30 dB of clutter, sweeping
/// the band whenever the wall-motion shift passed near 0 Hz; at the
/// maximum, 45 dB, thirty times stronger. 48 kHz, where the noise per bin is
/// lowest relative to a tone.
#[test]
fn wall_clutter_adds_no_tones_above_the_noise() {
    let fs = 48_000.0;
    let c = SimConfig {
        duration_s: Some(4.0),
        sample_rate_hz: 48_000,
        clutter_db: Some(45.0),
        ..SimConfig::default()
    };
    let mut probe = VirtualProbe::new(c).unwrap();
    let mut payloads = Vec::new();
    while let Some(p) = probe.next_payload() {
        payloads.push(p);
    }
    let x = samples(&payloads);
    let n = 512;
    let mut worst: f64 = 0.0;
    let mut start = 0;
    while start + n <= x.len() {
        let p = power_spectrum(&x, start, n);
        // White noise: the mean of 8–20 kHz both ways, far from the clutter
        // (±40 Hz and its window) and from the blood (< 5 kHz forward).
        let floor = mean_power_in(&p, fs, 8_000.0, 20_000.0);
        for (k, &v) in p.iter().enumerate() {
            let f = bin_hz(k, n, fs);
            if f.abs() >= 8_000.0 {
                worst = worst.max(v / floor);
            }
        }
        start += n / 2;
    }
    // An exponential bin exceeds 25× its mean with probability e⁻²⁵: never
    // among these ~140 000 bins.
    assert!(worst < 25.0, "a bin stood {worst:.0}× above the noise");
}

/// A probe interface whose demodulator has an I/Q imbalance mirrors the
/// flow into the reverse half at `|1 − g·e^{−iφ}|² / |1 + g·e^{iφ}|²`:
/// −23.8 dB for a 10 % gain and 5° phase error; a balanced one does not.
#[test]
fn iq_imbalance_mirrors_the_flow_into_the_reverse_half() {
    let f = doppler_shift_hz_from_velocity_cm_s(50.0, 4_000_000, 45.0);
    let image_db = |gain_error: f64, phase_deg: f64| {
        let c = SimConfig {
            iq_gain_error: gain_error,
            iq_phase_error_deg: phase_deg,
            ..phantom(50.0)
        };
        let x = samples(&run(c).payloads);
        let n = 1024;
        let (mut forward, mut reverse) = (0.0, 0.0);
        let mut start = 0;
        while start + n <= x.len() {
            for (k, pk) in power_spectrum(&x, start, n).into_iter().enumerate() {
                let fk = bin_hz(k, n, FS);
                if (fk - f).abs() < 200.0 {
                    forward += pk;
                } else if (fk + f).abs() < 200.0 {
                    reverse += pk;
                }
            }
            start += n / 2;
        }
        10.0 * (reverse / forward).log10()
    };
    let balanced = image_db(0.0, 0.0);
    let skewed = image_db(0.1, 5.0);
    assert!(balanced < -45.0, "balanced {balanced:.1} dB");
    assert!((skewed + 23.8).abs() < 1.5, "10 %, 5°: {skewed:.1} dB");
}
