//! The envelope on a *moving* edge, against a ground truth independent of
//! the virtual probe's scatterers and of the correction's own chirp model
//! (`dsp/src/ramp.rs`): stationary Gaussian noise shaped to a known
//! spectrum (`odm_simulator::ShapedNoise`, edge `f₀`) is time-warped
//! (`odm_simulator::WarpedShapedNoise`),
//! `y(t) = x(τ(t))` with `dτ/dt = r(t)`, which scales every frequency, and so
//! the edge, by `r(t)`: the profile's shape is kept and its edge follows
//! `f₀·r(t)` exactly. White noise is added after the warp.
//!
//! The edge rises and falls like a systole that never stops (so the
//! estimator stays on flow): the analysis window's smear makes the envelope
//! read high on both ramps (it leads the rise and lags the fall), and the
//! correction must take that off without touching the plateaus.
use odm_dsp::{EnvelopePoint, Pipeline, PipelineConfig, PipelineSink, StreamParams};
use odm_simulator::WarpedShapedNoise;

const FS: f64 = 20_000.0;

fn params() -> StreamParams {
    StreamParams {
        sample_rate_hz: FS as u32,
        carrier_hz: 4_000_000,
        beam_angle_deg: 45.0,
    }
}

/// Edge velocity (cm/s) at `t` s: 25 cm/s, a 60 ms rise to 100, 60 ms at
/// 100, a 120 ms fall to 25, 260 ms at 25; period 0.5 s.
fn edge_cm_s(t: f64) -> f64 {
    let x = t.rem_euclid(0.5) * 1000.0;
    let (lo, hi) = (25.0, 100.0);
    if x < 60.0 {
        lo + (hi - lo) * x / 60.0
    } else if x < 120.0 {
        hi
    } else if x < 240.0 {
        hi - (hi - lo) * (x - 120.0) / 120.0
    } else {
        lo
    }
}

/// Which part of the cycle `t` is on, at least 10 ms from a corner:
/// Some(true) rising, Some(false) falling, None otherwise.
fn ramp(t: f64) -> Option<bool> {
    let x = t.rem_euclid(0.5) * 1000.0;
    if (10.0..50.0).contains(&x) {
        Some(true)
    } else if (130.0..230.0).contains(&x) {
        Some(false)
    } else {
        None
    }
}

/// `seconds` of the warped signal with shape `beta` at `snr_db`.
fn warped(seconds: f64, beta: f64, snr_db: f64, seed: u64) -> Vec<[i16; 2]> {
    let v_max = 100.0;
    WarpedShapedNoise {
        sample_rate_hz: FS,
        edge_hz: params().shift_hz_from_velocity_cm_s(v_max),
        beta,
        snr_db,
        seed,
    }
    .generate(seconds, |t| edge_cm_s(t) / v_max)
}

struct Points(Vec<(f64, f64)>);
impl PipelineSink for Points {
    fn envelope_point(&mut self, p: &EnvelopePoint) {
        self.0.push((p.t_s, p.velocity_cm_s));
    }
}

/// The pipeline (default but for the two options) run over `iq`: its
/// envelope points and the pipeline.
fn run(iq: &[[i16; 2]], ramp_correction: bool, dechirp: bool) -> (Points, Pipeline) {
    let cfg = PipelineConfig {
        ramp_correction,
        dechirp,
        ..PipelineConfig::default()
    };
    let mut pipe = Pipeline::new(cfg, params()).unwrap();
    let mut pts = Points(Vec::new());
    for (i, chunk) in iq.chunks(200).enumerate() {
        pipe.push((i * 200) as u64, chunk, false, &mut pts);
    }
    (pts, pipe)
}

/// Envelope errors (cm/s) on the rising ramps, the falling ramps and the
/// plateaus, after the first second, with the window-smear correction and
/// the dechirped columns on or off.
fn ramp_errors(iq: &[[i16; 2]], ramp_correction: bool, dechirp: bool) -> [Vec<f64>; 3] {
    let (pts, pipe) = run(iq, ramp_correction, dechirp);
    let mut groups: [Vec<f64>; 3] = Default::default();
    for &(t, v) in pts.0.iter().filter(|p| p.0 > 1.0) {
        let k = match ramp(t) {
            Some(true) => 0,
            Some(false) => 1,
            None => 2,
        };
        groups[k].push(v - edge_cm_s(t));
    }
    if std::env::var("ODM_VERBOSE").is_ok() {
        eprintln!("pooled β {:+.3}", pipe.envelope_shape_beta());
    }
    groups.map(|mut e| {
        e.sort_by(f64::total_cmp);
        e
    })
}

/// Median envelope error (cm/s) on the rising ramps, the falling ramps and
/// the plateaus (sorted errors in).
fn medians(groups: &[Vec<f64>; 3]) -> [f64; 3] {
    [0, 1, 2].map(|k| groups[k][groups[k].len() / 2])
}

/// Robust spread (1.4826 × the median absolute deviation, cm/s) of sorted
/// errors.
fn robust_sd(sorted: &[f64]) -> f64 {
    let med = sorted[sorted.len() / 2];
    let mut dev: Vec<f64> = sorted.iter().map(|e| (e - med).abs()).collect();
    dev.sort_by(f64::total_cmp);
    1.4826 * dev[dev.len() / 2]
}

/// Without correction or dechirping, with the correction and dechirping.
fn errors_off_on(iq: &[[i16; 2]]) -> ([f64; 3], [f64; 3]) {
    (
        medians(&ramp_errors(iq, false, false)),
        medians(&ramp_errors(iq, true, true)),
    )
}

/// The correction against this independent reference (30 s, 58 cycles:
/// fewer cycles see too few independent speckle patterns — a 4 s run put
/// the medians 1.5 cm/s off). Errors are taken relative to the plateaus
/// (the estimator's stationary bias is not this test's subject), without
/// the correction and the dechirped columns → with both. Measured
/// (2026-12-03): blunt 30 dB rise +3.33 → −0.26, fall +1.27 → −0.13 cm/s;
/// flat 30 dB +3.39 → +0.62, +1.35 → +0.25; 15 dB blunt +2.54 → +0.25,
/// +0.80 → +0.14, flat +1.28 → +0.19, +0.07 → −0.17. The flat 30 dB rise
/// keeps the flat spectrum's stationary bias at its velocities (+0.6 cm/s
/// on shaped noise at 80 cm/s, 30 dB, docs/validation.md) above the
/// plateau's.
#[test]
fn the_window_smear_correction_on_moving_edges_of_warped_shaped_noise() {
    for snr_db in [30.0, 15.0] {
        for beta in [-2.0 / 3.0, 0.0] {
            let iq = warped(30.0, beta, snr_db, 5);
            let ([rise_off, fall_off, flat_off], [rise_on, fall_on, flat_on]) = errors_off_on(&iq);
            eprintln!(
                "{snr_db} dB β {beta:+.2}: without correction rise {rise_off:+.2} fall {fall_off:+.2} plateau {flat_off:+.2}; with rise {rise_on:+.2} fall {fall_on:+.2} plateau {flat_on:+.2} cm/s"
            );
            assert!(
                (flat_on - flat_off).abs() < 0.3,
                "plateau {flat_off} → {flat_on}"
            );
            let (rise_off, fall_off) = (rise_off - flat_off, fall_off - flat_off);
            let (rise_on, fall_on) = (rise_on - flat_on, fall_on - flat_on);
            if beta < -0.5 {
                // The smear reads high on both ramps; the correction takes it off.
                assert!(rise_off > 1.5 && fall_off > 0.5, "{rise_off} {fall_off}");
                assert!(
                    rise_on.abs() < 0.6 && fall_on.abs() < 0.6,
                    "{rise_on} {fall_on}"
                );
            } else {
                // A flat spectrum smears less; the correction may overshoot a little.
                assert!(
                    rise_on.abs() < 1.0 && fall_on.abs() < 1.0,
                    "{rise_on} {fall_on}"
                );
                assert!(
                    rise_on.abs() < rise_off.abs(),
                    "rise {rise_off} → {rise_on}"
                );
            }
        }
    }
}

/// The power column of one window of `iq` into `power`, and its noise floor
/// (the negative half's median / ln 2, as the pipeline's).
fn column(stft: &mut odm_dsp::stft::Stft, iq: &[[i16; 2]], power: &mut [f32]) -> f32 {
    use rustfft::num_complex::Complex32;
    let win: Vec<Complex32> = iq
        .iter()
        .map(|s| Complex32::new(f32::from(s[0]), f32::from(s[1])))
        .collect();
    stft.process(&win, power).unwrap();
    let mut neg: Vec<f32> = power[8..120].to_vec();
    neg.sort_by(f32::total_cmp);
    neg[neg.len() / 2] / std::f32::consts::LN_2
}

/// Single columns of the warped signal read by a fresh estimator (shape
/// forced by a settled stream), no pipeline: the median reading minus the
/// edge at the column's centre, on the rising and falling ramps and the
/// plateaus.
#[test]
#[ignore]
fn print_column_readings() {
    use odm_dsp::envelope::{EdgeEstimate, EnvelopeConfig, EnvelopeEstimator};
    use odm_dsp::stft::Stft;
    let p = params();
    for beta in [-2.0 / 3.0, 0.0] {
        let iq = warped(20.0, beta, 30.0, 5);
        let mut stft = Stft::new(200, 256).unwrap();
        let mut est =
            EnvelopeEstimator::new(EnvelopeConfig::default(), stft.window(), 256, FS, 300.0)
                .unwrap();
        let mut power = vec![0.0_f32; 256];
        let mut groups: [Vec<f64>; 4] = Default::default();
        let mut out = EdgeEstimate::default();
        let mut start = 0;
        while start + 200 <= iq.len() {
            let noise = column(&mut stft, &iq[start..start + 200], &mut power);
            start += 100;
            est.process(&power, noise, &mut out).unwrap();
            let t = start as f64 / FS;
            if t > 1.0 && out.shift_hz > 0.0 {
                let v = p.velocity_cm_s_from_shift_hz(f64::from(out.shift_hz));
                let x = t.rem_euclid(0.5) * 1000.0;
                let k = match ramp(t) {
                    Some(true) => 0,
                    Some(false) => 1,
                    None if (70.0..110.0).contains(&x) => 2,
                    None if x > 260.0 => 3,
                    None => continue,
                };
                groups[k].push(v - edge_cm_s(t));
            }
        }
        let med = |mut e: Vec<f64>| {
            e.sort_by(f64::total_cmp);
            e[e.len() / 2]
        };
        let [r, f, top, low] = groups.map(med);
        eprintln!(
            "β {beta:+.2}: column reading − edge: rise {r:+.2} fall {f:+.2} top {top:+.2} low {low:+.2} cm/s (pooled β {:+.2})",
            est.shape_beta()
        );
    }
}

/// The correction table's excess at the readings met above, for comparison.
#[test]
#[ignore]
fn print_table_excess() {
    use odm_dsp::envelope::{EnvelopeConfig, EnvelopeEstimator};
    use odm_dsp::ramp::RampResponse;
    let window = odm_dsp::stft::hann(200);
    let est = EnvelopeEstimator::new(EnvelopeConfig::default(), &window, 256, FS, 300.0).unwrap();
    let t = RampResponse::new(&est, &window, 256, FS);
    for (beta, snr) in [
        (0.0, 11_000.0),
        (0.0, 3_000.0),
        (-0.62, 17_000.0),
        (-0.62, 5_000.0),
    ] {
        for slope in [20.0, 23.0, 40.0, 46.0] {
            eprintln!(
                "β {beta:+.2} snr {snr:>6}: slope {slope} Hz/ms → {:.1} Hz",
                t.excess_hz(snr, beta, slope)
            );
        }
    }
}

/// The warped signal's *mean* periodogram at fixed points of the cycle
/// (averaged over many cycles), read by the estimator: is the smear in the
/// mean column (then the single-column readings lose it) or not?
#[test]
#[ignore]
fn print_mean_column_reading() {
    use odm_dsp::envelope::{EdgeEstimate, EnvelopeConfig, EnvelopeEstimator};
    use odm_dsp::stft::Stft;
    let p = params();
    for beta in [0.0, -2.0 / 3.0] {
        let iq = warped(60.0, beta, 30.0, 5);
        let mut stft = Stft::new(200, 256).unwrap();
        let mut est =
            EnvelopeEstimator::new(EnvelopeConfig::default(), stft.window(), 256, FS, 300.0)
                .unwrap();
        let mut power = vec![0.0_f32; 256];
        let mut out = EdgeEstimate::default();
        // Settle the pooled shape on the stream first.
        for start in (0..(20.0 * FS) as usize).step_by(100) {
            let noise = column(&mut stft, &iq[start..start + 200], &mut power);
            est.process(&power, noise, &mut out).unwrap();
        }
        // Cycle offsets (ms): mid-rise, mid-fall, top, low.
        for off_ms in [15.0, 30.0, 45.0, 150.0, 210.0, 90.0, 400.0] {
            let mut mean = vec![0.0_f64; 256];
            let mut single = Vec::new();
            let mut n = 0;
            let mut cycle = 2;
            loop {
                let centre = ((cycle as f64 * 0.5 + off_ms / 1000.0) * FS).round() as usize;
                if centre + 100 > iq.len() {
                    break;
                }
                let noise = column(&mut stft, &iq[centre - 100..centre + 100], &mut power);
                let mut e = est.clone();
                e.process(&power, noise, &mut out).unwrap();
                single.push(p.velocity_cm_s_from_shift_hz(f64::from(out.shift_hz)));
                for (m, &x) in mean.iter_mut().zip(&power) {
                    *m += f64::from(x / noise);
                }
                n += 1;
                cycle += 1;
            }
            let col: Vec<f32> = mean.iter().map(|&m| (m / n as f64) as f32).collect();
            let mut e = est.clone();
            e.process(&col, 1.0, &mut out).unwrap();
            let truth = edge_cm_s(off_ms / 1000.0);
            single.sort_by(f64::total_cmp);
            eprintln!(
                "β {beta:+.2} at {off_ms} ms (edge {truth:.1} cm/s): mean column reads {:+.2}, single columns' median {:+.2} cm/s ({n} cycles)",
                p.velocity_cm_s_from_shift_hz(f64::from(out.shift_hz)) - truth,
                single[single.len() / 2] - truth
            );
        }
    }
}

/// Dechirped columns (dsp/src/dechirp.rs) on the same independent
/// continuum: on the ramps the plain columns' smeared edge scatters more
/// than a still one, and reading the moving columns dechirped narrows that
/// scatter on both spectra, while the plateaus (no sweep) read as before.
#[test]
fn dechirped_columns_narrow_the_envelopes_scatter_on_moving_edges() {
    for beta in [-2.0 / 3.0, 0.0] {
        let iq = warped(30.0, beta, 15.0, 6);
        let plain = ramp_errors(&iq, true, false);
        let dechirped = ramp_errors(&iq, true, true);
        let sd = |g: &[Vec<f64>; 3]| [0, 1, 2].map(|k| robust_sd(&g[k]));
        let (p, d) = (sd(&plain), sd(&dechirped));
        eprintln!(
            "β {beta:+.2}: robust sd plain rise {:.2} fall {:.2} plateau {:.2}; dechirped {:.2} {:.2} {:.2} cm/s",
            p[0], p[1], p[2], d[0], d[1], d[2]
        );
        assert!(d[0] < 0.8 * p[0], "rise {} → {}", p[0], d[0]);
        assert!(d[1] < p[1], "fall {} → {}", p[1], d[1]);
        assert!(
            (d[2] - p[2]).abs() < 0.05 * p[2],
            "plateau {} → {}",
            p[2],
            d[2]
        );
        let (mp, md) = (medians(&plain), medians(&dechirped));
        assert!((md[2] - mp[2]).abs() < 0.1, "plateau {} → {}", mp[2], md[2]);
    }
}

/// A still edge (a steady phantom, or a plateau) sweeps nothing: its
/// columns are not read again, and the envelope is the one the plain
/// columns give. Speckle can make three raw readings in a row look like a
/// sweep of two bins now and then, so a few columns may be.
#[test]
fn a_still_edge_is_read_as_without_dechirping() {
    for beta in [-2.0 / 3.0, 0.0] {
        let iq = WarpedShapedNoise {
            sample_rate_hz: FS,
            edge_hz: params().shift_hz_from_velocity_cm_s(80.0),
            beta,
            snr_db: 20.0,
            seed: 7,
        }
        .generate(10.0, |_| 1.0);
        let (with, pipe) = run(&iq, true, true);
        let (without, _) = run(&iq, true, false);
        assert_eq!(with.0.len(), without.0.len());
        let moved = with
            .0
            .iter()
            .zip(&without.0)
            .filter(|(a, b)| a.1 != b.1)
            .count();
        eprintln!(
            "β {beta:+.2}: {} of {} columns read again, {moved} points moved",
            pipe.dechirped_columns(),
            with.0.len()
        );
        assert!(pipe.dechirped_columns() * 50 < with.0.len() as u64);
        assert!(moved * 50 < with.0.len());
    }
}
