//! Exploration runs printed for docs/dsp.md (ignored: run explicitly with
//! `cargo test -p odm-dsp --test explore -- --ignored --nocapture`).
mod common;
use common::*;
use odm_dsp::{EnvelopePoint, PipelineConfig, PipelineSink};

/// A sink that keeps the envelope's points, `(t_s, velocity_cm_s)`.
struct EnvPoints(Vec<(f64, f64)>);
impl PipelineSink for EnvPoints {
    fn envelope_point(&mut self, p: &EnvelopePoint) {
        self.0.push((p.t_s, p.velocity_cm_s));
    }
}

#[test]
#[ignore]
fn print_grid() {
    let secs: f64 = std::env::var("ODM_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30.0);
    for snr in [30.0, 15.0, 8.0] {
        for hr in [45.0, 75.0, 140.0] {
            let mut cfg = PipelineConfig::default();
            if let Some(m) = std::env::var("ODM_SMOOTH")
                .ok()
                .and_then(|s| s.parse().ok())
            {
                cfg.envelope.smoothing_bins = m;
            }
            if let Some(m) = std::env::var("ODM_FRAC").ok().and_then(|s| s.parse().ok()) {
                cfg.envelope.plateau_fraction = m;
            }
            if let Some(m) = std::env::var("ODM_WIN").ok().and_then(|s| s.parse().ok()) {
                cfg.window_s = m;
            }
            if let Some(m) = std::env::var("ODM_HOP").ok().and_then(|s| s.parse().ok()) {
                cfg.hop_s = m;
            }
            if let Ok(m) = std::env::var("ODM_METHOD") {
                cfg.envelope.method = odm_dsp::envelope::EnvelopeMethod::ALL
                    .into_iter()
                    .find(|x| x.name() == m)
                    .unwrap();
            }
            let mut sc = sim(1, secs, snr, hr);
            if let Some(m) = std::env::var("ODM_PROFILE")
                .ok()
                .and_then(|s| s.parse().ok())
            {
                sc.profile_exponent = m;
            }
            let only: Option<f64> = std::env::var("ODM_ONLY_HR")
                .ok()
                .and_then(|s| s.parse().ok());
            if only.is_some_and(|o| o != hr) {
                continue;
            }
            let r = run_sim(sc, cfg, false);
            println!("snr {snr:>4} hr {hr:>5}: {}", outcome(&r));
        }
    }
}

#[test]
#[ignore]
fn print_envelope_bias() {
    for prof in [2.0, 6.0] {
        for snr in [30.0, 8.0] {
            let mut sc = sim(1, 12.0, snr, 75.0);
            sc.profile_exponent = prof;
            sc.reverse_flow_cm_s = 0.0;
            let mut probe = odm_simulator::VirtualProbe::new(sc).unwrap();
            let mut pipe = None;
            let mut s = EnvPoints(Vec::new());
            let mut bins = vec![(0.0f64, 0.0f64, 0usize); 12];
            // Rising/falling split: sign of the true slope.
            let mut rise = vec![(0.0f64, 0usize); 12];
            let mut fall = vec![(0.0f64, 0usize); 12];
            while let Some(p) = probe.next_payload() {
                feed(&mut pipe, PipelineConfig::default(), p, &mut s);
                for (t, v) in s.0.drain(..) {
                    if t < 1.0 {
                        continue;
                    }
                    let Some(tv) = probe.true_velocity_cm_s(t) else {
                        continue;
                    };
                    let slope = probe.true_velocity_cm_s(t + 0.001).unwrap_or(tv)
                        - probe.true_velocity_cm_s(t - 0.001).unwrap_or(tv);
                    let k = ((tv / 10.0) as usize).min(11);
                    bins[k].0 += v - tv;
                    bins[k].1 += (v - tv).powi(2);
                    bins[k].2 += 1;
                    if tv > 2.0 {
                        if slope > 0.0 {
                            rise[k].0 += v - tv;
                            rise[k].1 += 1;
                        } else {
                            fall[k].0 += v - tv;
                            fall[k].1 += 1;
                        }
                    }
                }
            }
            println!("profile {prof} snr {snr}");
            for (k, (b, r, f)) in bins
                .iter()
                .zip(&rise)
                .zip(&fall)
                .map(|((a, b), c)| (a, b, c))
                .enumerate()
            {
                if b.2 > 0 {
                    println!(
                        "  v {:>3}-{:<3}: bias {:+.2} rms {:.2} n {:4} | rise {:+.2} ({}) fall {:+.2} ({})",
                        k * 10,
                        k * 10 + 10,
                        b.0 / b.2 as f64,
                        (b.1 / b.2 as f64).sqrt(),
                        b.2,
                        r.0 / r.1.max(1) as f64,
                        r.1,
                        f.0 / f.1.max(1) as f64,
                        f.1
                    );
                }
            }
        }
    }
}

#[test]
#[ignore]
fn print_false_beats() {
    let r = run_sim(sim(7, 60.0, 30.0, 45.0), PipelineConfig::default(), false);
    for b in &r.out.beats {
        let matched = r.truth.iter().any(|t| (t.onset_s - b.onset_s).abs() < 0.05);
        if !matched {
            let near = r.truth.iter().min_by(|x, y| {
                (x.onset_s - b.onset_s)
                    .abs()
                    .total_cmp(&(y.onset_s - b.onset_s).abs())
            });
            println!(
                "false: onset {:.3} end {:.3} pv {:.1} ft {:.0} acc {} {:?} | nearest truth onset {:.3} end {:.3} pv {:.1}",
                b.onset_s,
                b.end_s,
                b.pv_cm_s,
                b.ft_ms,
                b.accepted,
                b.reject_reason,
                near.map_or(0.0, |t| t.onset_s),
                near.map_or(0.0, |t| t.end_s),
                near.map_or(0.0, |t| t.pv_cm_s)
            );
        }
    }
}

fn replay_dir() -> std::path::PathBuf {
    std::path::PathBuf::from(
        std::env::var("ODM_REPLAY_DIR").unwrap_or_else(|_| "/tmp/odm_beat_replay".into()),
    )
}

/// Runs the validation grid's cells through the pipeline once and stores the
/// envelope (after the time median) and the truth, so that the beat detector
/// alone can be replayed on them quickly (`replay_grid`). Run in release:
/// `cargo test --release -p odm-dsp --test explore dump_grid_envelopes -- --ignored`.
#[test]
#[ignore]
fn dump_grid_envelopes() {
    let secs: f64 = std::env::var("ODM_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60.0);
    let dir = replay_dir();
    std::fs::create_dir_all(&dir).unwrap();
    for profile in odm_dsp::validation::GRID_PROFILES {
        let (n, peak, ftc, sv) = (
            profile.profile_exponent,
            profile.peak_frac,
            profile.ftc_ms,
            profile.sv_ml,
        );
        for snr in [8.0, 15.0, 30.0] {
            for hr in [45.0, 75.0, 140.0] {
                for seed in [7u64, 8] {
                    let sc = odm_simulator::SimConfig {
                        seed,
                        duration_s: Some(secs),
                        snr_db: Some(snr),
                        hr_bpm: hr,
                        profile_exponent: n,
                        peak_frac: peak,
                        ftc_ms: ftc,
                        sv_ml: std::env::var("ODM_SV")
                            .ok()
                            .and_then(|s| s.parse().ok())
                            .unwrap_or(sv),
                        beam_angle_cdeg: (env_f64("ODM_ANGLE", 45.0) * 100.0).round() as u16,
                        scatterer_count: std::env::var("ODM_SCATTERERS")
                            .ok()
                            .and_then(|s| s.parse().ok())
                            .unwrap_or(48),
                        // `ODM_LIFETIME_MS`: the scatterer groups' mean
                        // lifetime (the speckle's fading time).
                        scatterer_lifetime_ms: env_f64("ODM_LIFETIME_MS", 80.0),
                        ..odm_simulator::SimConfig::default()
                    };
                    let name = format!("n{n}_snr{snr}_hr{hr}_s{seed}");
                    if !name.contains(&std::env::var("ODM_CELL").unwrap_or_default()) {
                        continue;
                    }
                    let mut cfg = env_config();
                    if let Some(h) = std::env::var("ODM_HOP").ok().and_then(|s| s.parse().ok()) {
                        cfg.hop_s = h;
                    }
                    if let Some(w) = std::env::var("ODM_WALL").ok().and_then(|s| s.parse().ok()) {
                        cfg.wall_cutoff_hz = w;
                    }
                    let r = run_sim(sc, cfg, true);
                    write_cell(
                        &dir.join(format!("{name}.txt")),
                        secs,
                        &r.truth,
                        &r.out.envelope,
                    );
                }
            }
        }
    }
}

/// Writes one replay cell: duration, truth beats, envelope points.
fn write_cell(
    path: &std::path::Path,
    secs: f64,
    truth: &[odm_dsp::validation::RefBeat],
    envelope: &[(f64, f64)],
) {
    use std::io::Write;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    writeln!(f, "D {secs}").unwrap();
    for t in truth {
        writeln!(
            f,
            "T {} {} {} {} {} {} {}",
            t.onset_s, t.peak_s, t.end_s, t.next_onset_s, t.sd_cm, t.pv_cm_s, t.hr_bpm
        )
        .unwrap();
    }
    for (t, v) in envelope {
        writeln!(f, "E {t} {v}").unwrap();
    }
    println!("{}", path.display());
}

/// The independent reference's envelopes (quarter-sine beats on warped
/// shaped noise, as `odm validate`'s "Independent reference" table) for
/// `replay_grid`, cells named `sine<β-label>_snr<dB>_hr<bpm>_s<seed>`.
#[test]
#[ignore]
fn dump_sine_envelopes() {
    use odm_simulator::{SineBeats, WarpedShapedNoise};
    const V_MAX_CM_S: f64 = 100.0;
    let secs: f64 = std::env::var("ODM_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60.0);
    let dir = replay_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let params = odm_dsp::StreamParams {
        sample_rate_hz: 20_000,
        carrier_hz: 4_000_000,
        beam_angle_deg: 45.0,
    };
    for (label, beta) in [("blunt", -2.0 / 3.0), ("flat", 0.0)] {
        for snr_db in [15.0, 30.0] {
            for hr_bpm in [45.0, 75.0, 140.0] {
                for seed in [11u64, 12] {
                    let name = format!("sine{label}_snr{snr_db}_hr{hr_bpm}_s{seed}");
                    if !name.contains(&std::env::var("ODM_CELL").unwrap_or_default()) {
                        continue;
                    }
                    let train = SineBeats::new(secs, hr_bpm, seed);
                    let iq = WarpedShapedNoise {
                        sample_rate_hz: f64::from(params.sample_rate_hz),
                        edge_hz: params.shift_hz_from_velocity_cm_s(V_MAX_CM_S),
                        beta,
                        snr_db,
                        seed,
                    }
                    .generate(secs, |t| train.rate(t));
                    let truth: Vec<_> = train
                        .beats
                        .iter()
                        .map(|b| odm_dsp::validation::RefBeat {
                            onset_s: b.onset_s,
                            peak_s: b.peak_s(),
                            end_s: b.end_s(),
                            next_onset_s: b.next_onset_s(),
                            sd_cm: b.sd_cm(V_MAX_CM_S),
                            pv_cm_s: V_MAX_CM_S * b.amplitude,
                            hr_bpm: 60.0 / b.cycle_s,
                        })
                        .collect();
                    let mut cfg = env_config();
                    if let Some(h) = std::env::var("ODM_HOP").ok().and_then(|s| s.parse().ok()) {
                        cfg.hop_s = h;
                    }
                    if let Some(w) = std::env::var("ODM_WALL").ok().and_then(|s| s.parse().ok()) {
                        cfg.wall_cutoff_hz = w;
                    }
                    let mut pipe = odm_dsp::Pipeline::new(cfg, params).expect("pipeline");
                    let mut out = Collect {
                        keep_envelope: true,
                        ..Collect::default()
                    };
                    for (i, chunk) in iq.chunks(200).enumerate() {
                        pipe.push((i * 200) as u64, chunk, false, &mut out);
                    }
                    pipe.finish(&mut out);
                    write_cell(
                        &dir.join(format!("{name}.txt")),
                        secs,
                        &truth,
                        &out.envelope,
                    );
                }
            }
        }
    }
}

/// The number in environment variable `k`, or `d`.
fn env_f64(k: &str, d: f64) -> f64 {
    std::env::var(k)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(d)
}

/// The default pipeline, without the window-smear correction when
/// `ODM_NO_RAMP` is set and without dechirped columns when
/// `ODM_NO_DECHIRP` is, and without the leakage floor when
/// `ODM_NO_LEAKAGE_FLOOR` is.
fn env_config() -> PipelineConfig {
    PipelineConfig {
        ramp_correction: std::env::var("ODM_NO_RAMP").is_err(),
        dechirp: std::env::var("ODM_NO_DECHIRP").is_err(),
        leakage_floor: std::env::var("ODM_NO_LEAKAGE_FLOOR").is_err(),
        ..PipelineConfig::default()
    }
}

/// The envelope floor the pipeline gives the detector (pipeline.rs: the
/// estimator's lowest reliable shift), for the default configuration and a
/// beam at `ODM_ANGLE` degrees (45 when unset; grid dumps take it too).
fn default_floor_cm_s() -> f32 {
    let mut cfg = PipelineConfig::default();
    if let Some(w) = std::env::var("ODM_WALL").ok().and_then(|s| s.parse().ok()) {
        cfg.wall_cutoff_hz = w;
    }
    let params = odm_dsp::StreamParams {
        sample_rate_hz: 20_000,
        carrier_hz: 4_000_000,
        beam_angle_deg: env_f64("ODM_ANGLE", 45.0),
    };
    let fs = 20_000.0;
    let fft_len = ((cfg.window_s * fs).round() as usize).next_power_of_two();
    let bin_hz = fs / fft_len as f64;
    let first_pos = ((2.0 * cfg.wall_cutoff_hz / bin_hz).ceil() as usize).max(1);
    let shift = (first_pos + cfg.envelope.smoothing_bins / 2) as f64 * bin_hz;
    params.velocity_cm_s_from_shift_hz(shift) as f32
}

struct Cell {
    name: String,
    duration_s: f64,
    truth: Vec<odm_dsp::validation::RefBeat>,
    env: Vec<(f64, f32)>,
}

fn load_cell(path: &std::path::Path) -> Cell {
    let text = std::fs::read_to_string(path).unwrap();
    let mut c = Cell {
        name: path.file_stem().unwrap().to_string_lossy().into_owned(),
        duration_s: 0.0,
        truth: Vec::new(),
        env: Vec::new(),
    };
    for line in text.lines() {
        let mut it = line.split(' ');
        let tag = it.next().unwrap();
        let x: Vec<f64> = it.map(|s| s.parse().unwrap()).collect();
        match tag {
            "D" => c.duration_s = x[0],
            "T" => c.truth.push(odm_dsp::validation::RefBeat {
                onset_s: x[0],
                peak_s: x[1],
                end_s: x[2],
                next_onset_s: x[3],
                sd_cm: x[4],
                pv_cm_s: x[5],
                hr_bpm: x[6],
            }),
            "E" => c.env.push((x[0], x[1] as f32)),
            _ => {}
        }
    }
    c
}

fn replay(c: &Cell) -> Vec<odm_dsp::Beat> {
    use odm_dsp::beat::{BeatDetector, DetectorConfig, DetectorInput};
    let mut cfg = DetectorConfig::default();
    let env = |k: &str| std::env::var(k).ok().and_then(|s| s.parse::<f32>().ok());
    if let Some(x) = env("ODM_FIT_LO") {
        cfg.fit_lo = x;
    }
    if let Some(x) = env("ODM_FIT_HI") {
        cfg.fit_hi = x;
    }
    if let Some(x) = env("ODM_RISE_LO") {
        cfg.rise_fit_lo = x;
    }
    if let Some(x) = env("ODM_RISE_HI") {
        cfg.rise_fit_hi = x;
    }
    if let Some(x) = std::env::var("ODM_CROSS_W")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        cfg.rise_cross_weight = x;
    }
    if let Ok(x) = std::env::var("ODM_CROSS_FRACS") {
        let v: Vec<f32> = x.split(',').map(|s| s.parse().unwrap()).collect();
        cfg.rise_cross_fracs = [v[0], v[1], v[2]];
    }
    let hop_s = c.env.get(1).map_or(0.005, |p| p.0) - c.env.first().map_or(0.0, |p| p.0);
    let mut d = BeatDetector::new(cfg, hop_s, 4.0, 0.055);
    d.floor_cm_s = default_floor_cm_s();
    let mut out = Vec::new();
    // Experiment: undo the window's time dilation, E − c·|dE/dt| (c in ms).
    let env_in: Vec<(f64, f32)> = match env("ODM_DILATE") {
        Some(c_ms) => (0..c.env.len())
            .map(|i| {
                let (t, v) = c.env[i];
                if i == 0 || i + 1 == c.env.len() {
                    return (t, v);
                }
                let slope = (c.env[i + 1].1 - c.env[i - 1].1) / 10.0;
                (t, v - c_ms * slope.abs())
            })
            .collect(),
        None => c.env.clone(),
    };
    for &(t, v) in &env_in {
        let inp = DetectorInput {
            sample_index: (t * 20_000.0).round() as u64,
            t_s: t,
            v_cm_s: v,
            snr: 100.0,
            ..Default::default()
        };
        if let Some(b) = d.process(&inp) {
            out.push(b);
        }
    }
    out
}

/// Replays the beat detector on the stored grid envelopes and prints, per
/// cell: sensitivity, PPV, onset error, HR error (all beats, and only beats
/// whose own and next onsets both match truth: the onset *jitter* part),
/// and with `ODM_VERBOSE=1` every missed and extra beat.
#[test]
#[ignore]
fn replay_grid() {
    let mut paths: Vec<_> = std::fs::read_dir(replay_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    let filter = std::env::var("ODM_CELL").unwrap_or_default();
    let verbose = std::env::var("ODM_VERBOSE").is_ok();
    let quiet = std::env::var("ODM_QUIET").is_ok();
    // (profile, hr) → (sum sens, sum ppv, sum onset |e|, sum HR p95, max HR p95, n)
    let mut summary: std::collections::BTreeMap<(String, String), [f64; 8]> = Default::default();
    for p in paths {
        let c = load_cell(&p);
        if !c.name.contains(&filter) {
            continue;
        }
        let beats = replay(&c);
        let s = odm_dsp::validation::score(&c.truth, &beats, &[], (0.0, c.duration_s), 0.05);
        // Jitter-only HR errors and onset statistics.
        let mut hr_jit = Vec::new();
        let mut cyc_err = Vec::new();
        let mut gross = 0;
        for b in &beats {
            let Some(t) = c
                .truth
                .iter()
                .find(|t| (t.onset_s - b.onset_s).abs() < 0.05)
            else {
                continue;
            };
            if t.onset_s < 0.5 || t.next_onset_s > c.duration_s - 0.5 {
                continue;
            }
            if (b.next_onset_s - t.next_onset_s).abs() < 0.05 {
                if verbose && ((b.cycle_s - t.next_onset_s + t.onset_s) * 1000.0).abs() > 5.0 {
                    println!(
                        "   cycle err {:+5.1} ms: onset err {:+5.1} next {:+5.1} | truth onset {:.3} peak {:.3} pv {:.0}",
                        (b.cycle_s - t.next_onset_s + t.onset_s) * 1000.0,
                        (b.onset_s - t.onset_s) * 1000.0,
                        (b.next_onset_s - t.next_onset_s) * 1000.0,
                        t.onset_s,
                        t.peak_s,
                        t.pv_cm_s
                    );
                }
                if std::env::var("ODM_BEATS").is_ok() {
                    println!(
                        "BEAT {} {:.4} {:+.3} {:+.3} {:.2} {:.2} {:.4}",
                        c.name,
                        t.onset_s,
                        (b.onset_s - t.onset_s) * 1000.0,
                        (b.end_s - t.end_s) * 1000.0,
                        t.pv_cm_s,
                        b.pv_cm_s,
                        t.peak_s - t.onset_s
                    );
                }
                hr_jit.push(b.hr_bpm - t.hr_bpm);
                cyc_err.push((b.cycle_s - (t.next_onset_s - t.onset_s)) * 1000.0);
            } else {
                gross += 1;
            }
        }
        // Peak time (ms) of matched beats, for MA.
        let mut peak_err: Vec<f64> = beats
            .iter()
            .filter(|b| b.reject_reason.is_none())
            .filter_map(|b| {
                c.truth
                    .iter()
                    .find(|t| (t.onset_s - b.onset_s).abs() < 0.05)
                    .map(|t| (b.peak_s - t.peak_s) * 1000.0)
            })
            .collect();
        let pk = odm_dsp::validation::ErrorStats::from_errors(&mut peak_err);
        let hj = odm_dsp::validation::ErrorStats::from_errors(&mut hr_jit);
        let ce = odm_dsp::validation::ErrorStats::from_errors(&mut cyc_err);
        let parts: Vec<&str> = c.name.split('_').collect();
        let e = summary
            .entry((parts[0].to_string(), parts[2].to_string()))
            .or_default();
        e[0] += s.sensitivity();
        e[1] += s.ppv();
        e[2] += s.onset_ms.median_abs;
        e[3] += s.hr_bpm.p95_abs;
        e[4] = e[4].max(s.hr_bpm.p95_abs);
        e[5] += 1.0;
        e[6] += s.ma_pct.median_abs;
        e[7] += s.ft_ms.median_abs;
        if quiet {
            continue;
        }
        println!(
            "{:<26} sens {:.4} ppv {:.4} | onset |{:5.2}| ({:+5.2}) p95 {:5.2} | end ({:+6.2}) FT |{:5.2}| ({:+6.2}) | SD |{:4.2}| ({:+5.2}) PV ({:+5.2}) | HR |{:.2}| p95 {:5.2} | jitter HR p95 {:5.2} cycle |{:.2}| p95 {:5.2} ms | MA |{:4.2}| ({:+5.2}) peak |{:5.2}| ({:+5.2}) | gross {gross} {}",
            c.name,
            s.sensitivity(),
            s.ppv(),
            s.onset_ms.median_abs,
            s.onset_ms.median,
            s.onset_ms.p95_abs,
            s.end_ms.median,
            s.ft_ms.median_abs,
            s.ft_ms.median,
            s.sd_pct.median_abs,
            s.sd_pct.median,
            s.pv_pct.median,
            s.hr_bpm.median_abs,
            s.hr_bpm.p95_abs,
            hj.p95_abs,
            ce.median_abs,
            ce.p95_abs,
            s.ma_pct.median_abs,
            s.ma_pct.median,
            pk.median_abs,
            pk.median,
            reasons(&beats)
        );
        if verbose {
            for t in &c.truth {
                if t.onset_s < 0.5 || t.next_onset_s > c.duration_s - 0.5 {
                    continue;
                }
                if !beats.iter().any(|b| (b.onset_s - t.onset_s).abs() < 0.05) {
                    println!(
                        "   missed truth onset {:.3} peak {:.3} end {:.3} pv {:.1}",
                        t.onset_s, t.peak_s, t.end_s, t.pv_cm_s
                    );
                }
            }
            for b in &beats {
                if !c.truth.iter().any(|t| (b.onset_s - t.onset_s).abs() < 0.05) {
                    println!(
                        "   extra onset {:.3} peak {:.3} end {:.3} pv {:.1} next {:.3} {:?}",
                        b.onset_s, b.peak_s, b.end_s, b.pv_cm_s, b.next_onset_s, b.reject_reason
                    );
                }
            }
        }
    }
    for ((prof, hr), e) in &summary {
        let n = e[5];
        println!(
            "SUMMARY {prof:>3} {hr:>6}: sens {:.4} ppv {:.4} onset |e| {:5.2} HR p95 mean {:5.2} max {:5.2} FT |e| {:5.2} MA |e| {:5.2}",
            e[0] / n,
            e[1] / n,
            e[2] / n,
            e[3] / n,
            e[4],
            e[7] / n,
            e[6] / n
        );
    }
}

/// Prints, for the first beats of one stored cell (`ODM_CELL`), the rising
/// edge: envelope against the exact rise `PV·(1 − (1 − u)^1.6)` of
/// simulator/src/physiology.rs, and the detected onset.
#[test]
#[ignore]
fn print_rising_edges() {
    let name = std::env::var("ODM_CELL").unwrap_or_else(|_| "n6_snr30_hr75_s7".into());
    let c = load_cell(&replay_dir().join(format!("{name}.txt")));
    let beats = replay(&c);
    let nb: usize = std::env::var("ODM_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6);
    let from: f64 = std::env::var("ODM_FROM")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0.0);
    for t in c
        .truth
        .iter()
        .filter(|t| t.onset_s >= from)
        .skip(2)
        .take(nb)
    {
        let det = beats.iter().find(|b| (b.onset_s - t.onset_s).abs() < 0.05);
        println!(
            "truth onset {:.4} peak {:.4} pv {:.1} | detected onset err {:?} ms",
            t.onset_s,
            t.peak_s,
            t.pv_cm_s,
            det.map(|b| ((b.onset_s - t.onset_s) * 1000.0 * 10.0).round() / 10.0)
        );
        for &(te, v) in &c.env {
            if te < t.onset_s - 0.03 || te > t.peak_s {
                continue;
            }
            let u = ((te - t.onset_s) / (t.peak_s - t.onset_s)).clamp(0.0, 1.0);
            let vt = t.pv_cm_s * (1.0 - (1.0 - u).powf(1.6));
            println!(
                "   t {:+7.1} ms env {:6.1} true {:6.1} err {:+5.1}",
                (te - t.onset_s) * 1000.0,
                v,
                vt,
                f64::from(v) - vt
            );
        }
    }
}

/// Prints the detected and truth beats of one stored cell (`ODM_CELL`)
/// between `ODM_FROM` and `ODM_TO` seconds, with the envelope there.
#[test]
#[ignore]
fn print_beats_window() {
    let name = std::env::var("ODM_CELL").unwrap_or_else(|_| "n2_snr15_hr45_s8".into());
    let c = load_cell(&replay_dir().join(format!("{name}.txt")));
    let get = env_f64;
    let (from, to) = (get("ODM_FROM", 0.0), get("ODM_TO", 5.0));
    for b in replay(&c)
        .iter()
        .filter(|b| b.next_onset_s > from && b.onset_s < to)
    {
        println!(
            "beat onset {:.3} peak {:.3} end {:.3} next {:.3} pv {:.1} {:?}",
            b.onset_s, b.peak_s, b.end_s, b.next_onset_s, b.pv_cm_s, b.reject_reason
        );
    }
    for t in c
        .truth
        .iter()
        .filter(|t| t.onset_s > from && t.onset_s < to)
    {
        println!(
            "truth onset {:.3} peak {:.3} end {:.3} pv {:.1}",
            t.onset_s, t.peak_s, t.end_s, t.pv_cm_s
        );
    }
    let env: Vec<String> = c
        .env
        .iter()
        .filter(|(t, _)| *t > from && *t < to)
        .map(|(t, v)| format!("{t:.3}:{v:.0}"))
        .collect();
    println!("{}", env.join(" "));
}

/// Prints falling edges of one stored cell (`ODM_CELL`): envelope against
/// the simulator's fall `PV·(1 − y^1.4)` (physiology.rs default exponent,
/// ±5 % per beat), and the detected end.
#[test]
#[ignore]
fn print_falling_edges() {
    let name = std::env::var("ODM_CELL").unwrap_or_else(|_| "n6_snr30_hr45_s7".into());
    let c = load_cell(&replay_dir().join(format!("{name}.txt")));
    let beats = replay(&c);
    for t in c.truth.iter().skip(2).take(3) {
        let det = beats.iter().find(|b| (b.onset_s - t.onset_s).abs() < 0.05);
        println!(
            "truth peak {:.4} end {:.4} pv {:.1} | detected end err {:?} ms",
            t.peak_s,
            t.end_s,
            t.pv_cm_s,
            det.map(|b| ((b.end_s - t.end_s) * 1000.0).round())
        );
        for &(te, v) in &c.env {
            if te < t.end_s - 0.2 || te > t.end_s + 0.04 {
                continue;
            }
            let y = ((te - t.peak_s) / (t.end_s - t.peak_s)).clamp(0.0, 1.0);
            let vt = t.pv_cm_s * (1.0 - y.powf(1.4));
            println!(
                "   t {:+7.1} ms env {:6.1} true {:6.1} err {:+5.1}",
                (te - t.end_s) * 1000.0,
                v,
                vt,
                f64::from(v) - vt
            );
        }
    }
}

/// Prints, per matched beat of the stored cells matching `ODM_CELL`, the
/// onset error with the truth's onset phase within a hop, PV and cycle, for
/// looking at what the onset jitter follows.
#[test]
#[ignore]
fn print_onset_errors() {
    let filter = std::env::var("ODM_CELL").unwrap_or_else(|_| "n6_snr30_hr140".into());
    let mut paths: Vec<_> = std::fs::read_dir(replay_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains(&filter))
        .collect();
    paths.sort();
    for p in paths {
        let c = load_cell(&p);
        for b in replay(&c) {
            let Some(t) = c
                .truth
                .iter()
                .find(|t| (t.onset_s - b.onset_s).abs() < 0.05)
            else {
                continue;
            };
            println!(
                "OE {} {:.4} {:+.3} {:.3} {:.2} {:.2} {:+.3} {:+.3} {:+.3} {}",
                c.name,
                t.onset_s,
                (b.onset_s - t.onset_s) * 1000.0,
                (t.onset_s * 1000.0).rem_euclid(5.0),
                t.pv_cm_s,
                (t.peak_s - t.onset_s) * 1000.0,
                (b.cycle_s - (t.next_onset_s - t.onset_s)) * 1000.0,
                (b.pv_cm_s - t.pv_cm_s),
                (b.end_s - t.end_s) * 1000.0,
                u8::from(b.accepted),
            );
        }
    }
}

/// Envelope error along rising edges (true velocity 10–85 % of 100 cm/s,
/// rising) on the virtual probe: its spread and its correlation between
/// points 1–5 hops apart on the same edge (is onset jitter white noise that
/// a fit averages out, or correlated along the edge?). `ODM_PROFILE`,
/// `ODM_SNR`, `ODM_HR`, `ODM_SCATTERERS`.
#[test]
#[ignore]
fn print_rising_edge_error_correlation() {
    let get = env_f64;
    let mut sc = sim(7, 40.0, get("ODM_SNR", 30.0), get("ODM_HR", 140.0));
    sc.profile_exponent = get("ODM_PROFILE", 6.0);
    sc.scatterer_count = get("ODM_SCATTERERS", 48.0) as usize;
    if std::env::var("ODM_GRID_PARABOLIC").is_ok() {
        // The validation grid's parabolic profile.
        (sc.profile_exponent, sc.peak_frac, sc.ftc_ms, sc.sv_ml) = (2.0, 0.38, 320.0, 50.0);
    }
    let mut probe = odm_simulator::VirtualProbe::new(sc).unwrap();
    let mut pipe = None;
    let mut s = EnvPoints(Vec::new());
    // (error, rising-edge flag) per point.
    let mut pts: Vec<(f64, bool)> = Vec::new();
    let mut bands: Vec<(f64, f64)> = Vec::new();
    let mut falling: Vec<(f64, f64)> = Vec::new();
    while let Some(p) = probe.next_payload() {
        feed(&mut pipe, env_config(), p, &mut s);
        for (t, v) in s.0.drain(..) {
            let Some(tv) = probe.true_velocity_cm_s(t) else {
                continue;
            };
            let next = probe.true_velocity_cm_s(t + 0.001).unwrap_or(tv);
            let rising = t > 1.0 && next > tv && tv > 12.0 && tv < 80.0;
            if t > 1.0 && next > tv {
                bands.push((tv, v - tv));
            }
            if t > 1.0 && next < tv && tv > 0.0 {
                falling.push((tv, v - tv));
            }
            pts.push((v - tv, rising));
        }
    }
    // Error mean and spread by true-velocity band, for rising and falling edges.
    let by_band = |what: &str, pairs: &[(f64, f64)], edges: &[f64]| {
        for w in edges.windows(2) {
            let e: Vec<f64> = pairs
                .iter()
                .filter(|b| b.0 >= w[0] && b.0 < w[1])
                .map(|b| b.1)
                .collect();
            let n = e.len().max(1) as f64;
            let m = e.iter().sum::<f64>() / n;
            let sd = (e.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n).sqrt();
            println!(
                "  true {}-{} cm/s {what}: n {} mean {m:+.2} sd {sd:.2}",
                w[0],
                w[1],
                e.len()
            );
        }
    };
    by_band("rising", &bands, &[12.0, 30.0, 50.0, 80.0, 200.0]);
    by_band("falling", &falling, &[0.0, 12.0, 20.0, 30.0, 50.0, 200.0]);
    let edge: Vec<f64> = pts.iter().filter(|p| p.1).map(|p| p.0).collect();
    let n = edge.len() as f64;
    let mean = edge.iter().sum::<f64>() / n;
    let var = edge.iter().map(|e| (e - mean).powi(2)).sum::<f64>() / n;
    println!(
        "rising-edge points {n}: error mean {mean:+.2} sd {:.2} cm/s",
        var.sqrt()
    );
    for lag in 1..=5 {
        let (mut acc, mut cnt) = (0.0, 0.0);
        for i in 0..pts.len().saturating_sub(lag) {
            if (i..=i + lag).all(|j| pts[j].1) {
                acc += (pts[i].0 - mean) * (pts[i + lag].0 - mean);
                cnt += 1.0;
            }
        }
        println!("  lag {lag}: corr {:+.2} ({cnt} pairs)", acc / cnt / var);
    }
}

/// The heart-rate range's ends (40 and 180/min) and a rate that changes,
/// on the blunt profile at 15 dB: prints the score of each.
#[test]
#[ignore]
fn print_rate_extremes() {
    for hr in [40.0, 180.0] {
        for seed in [3u64, 4] {
            let r = run_sim(sim(seed, 60.0, 15.0, hr), PipelineConfig::default(), false);
            println!("{hr}/min seed {seed}: {}", outcome(&r));
        }
    }
}

/// The pooled spectral shape β the envelope settles on for each grid
/// profile (virtual probe, 15 dB, 75/min, `ODM_SCATTERERS` groups).
#[test]
#[ignore]
fn print_pooled_shape() {
    use odm_dsp::NullSink;
    for n in [2.0, 6.0, 9.0] {
        let mut sc = sim(7, 20.0, 15.0, 75.0);
        sc.profile_exponent = n;
        sc.scatterer_count = std::env::var("ODM_SCATTERERS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(48);
        let mut probe = odm_simulator::VirtualProbe::new(sc).unwrap();
        let mut pipe = None;
        while let Some(p) = probe.next_payload() {
            feed(&mut pipe, PipelineConfig::default(), p, &mut NullSink);
        }
        let beta = pipe.unwrap().envelope_shape_beta();
        println!(
            "profile n = {n}: pooled β {beta:+.3} (expected {:+.3})",
            2.0 / n - 1.0
        );
    }
}

/// Low-flow beats (small stroke volume, low peak velocity) on the blunt
/// profile at 15 dB, 75/min: prints the score per stroke volume.
#[test]
#[ignore]
fn print_low_flow() {
    for sv in [20.0, 30.0, 45.0, 70.0] {
        let mut sc = sim(5, 60.0, 15.0, 75.0);
        sc.sv_ml = sv;
        let mut cfg = PipelineConfig::default();
        if let Some(w) = std::env::var("ODM_WALL").ok().and_then(|s| s.parse().ok()) {
            cfg.wall_cutoff_hz = w;
        }
        let r = run_sim(sc, cfg, false);
        let pv = r.truth.iter().map(|t| t.pv_cm_s).sum::<f64>() / r.truth.len().max(1) as f64;
        println!("SV {sv} ml (PV ≈ {pv:.0} cm/s): {}", outcome(&r));
    }
}

/// Columns at the foot of systole (the first 10 ms of flow): the envelope,
/// the true velocity at the column's centre and at its window's end, and the
/// column's power (dB over the noise) in 5 cm/s bands. Why do some feet read
/// 20–40 cm/s high? `ODM_PROFILE`, `ODM_SNR`, `ODM_HR`, `ODM_N` columns.
#[test]
#[ignore]
fn print_foot_columns() {
    use odm_dsp::{EnvelopePoint, PipelineSink, SpectrumColumn};
    #[derive(Default)]
    struct S {
        cols: Vec<(f64, Vec<f64>)>,
        env: Vec<(f64, f64)>,
    }
    impl PipelineSink for S {
        fn spectrum_column(&mut self, c: &SpectrumColumn<'_>) {
            // Mean power over noise in 5 cm/s bands from 0 to 100 cm/s.
            let mut bands = vec![0.0_f64; 20];
            let mut n = vec![0usize; 20];
            for (k, &p) in c.power.iter().enumerate() {
                let v = c.velocity_cm_s(k);
                if (0.0..100.0).contains(&v) {
                    let b = (v / 5.0) as usize;
                    bands[b] += f64::from(p / c.noise_power.max(1e-30));
                    n[b] += 1;
                }
            }
            for (b, k) in bands.iter_mut().zip(&n) {
                *b = 10.0 * (*b / (*k).max(1) as f64).max(1e-3).log10();
            }
            self.cols.push((c.t_s, bands));
        }
        fn envelope_point(&mut self, p: &EnvelopePoint) {
            self.env.push((p.t_s, p.velocity_cm_s));
        }
    }
    let get = env_f64;
    let mut sc = sim(8, 20.0, get("ODM_SNR", 30.0), get("ODM_HR", 140.0));
    sc.profile_exponent = get("ODM_PROFILE", 6.0);
    let mut probe = odm_simulator::VirtualProbe::new(sc).unwrap();
    let mut pipe = None;
    let mut s = S::default();
    let mut shown = 0;
    let want = get("ODM_N", 12.0) as usize;
    while let Some(p) = probe.next_payload() {
        feed(&mut pipe, PipelineConfig::default(), p, &mut s);
        let env: std::collections::HashMap<u64, f64> = s
            .env
            .iter()
            .map(|&(t, v)| ((t * 1e6).round() as u64, v))
            .collect();
        for (t, bands) in s.cols.drain(..) {
            let tv = probe.true_velocity_cm_s(t).unwrap_or(0.0);
            let before = probe.true_velocity_cm_s(t - 0.006).unwrap_or(0.0);
            let end = probe.true_velocity_cm_s(t + 0.005).unwrap_or(0.0);
            if t < 1.0 || before > 0.0 || !(end > 0.0 && end < 40.0) || shown >= want {
                continue;
            }
            shown += 1;
            let e = env.get(&((t * 1e6).round() as u64)).copied();
            println!(
                "t {t:.4} true centre {tv:5.1} window end {end:5.1} envelope {:?}",
                e.map(|v| (v * 10.0).round() / 10.0)
            );
            let row: Vec<String> = bands.iter().map(|b| format!("{b:5.1}")).collect();
            println!("   dB/5cm/s 0..100: {}", row.join(" "));
        }
        s.env.retain(|&(t, _)| t > probe_time_floor(&s.cols));
    }
}

fn probe_time_floor(cols: &[(f64, Vec<f64>)]) -> f64 {
    cols.first().map_or(f64::NEG_INFINITY, |c| c.0 - 1.0)
}

/// Envelope error at the foot of systole, by time since the true onset
/// (0–5, 5–10, 10–15, 15–25 ms): median, mean, p90 and p99 over 60 s of the
/// virtual probe. `ODM_PROFILE` (6), `ODM_SNR` (30), `ODM_HR` (140),
/// `ODM_WALL` (Hz), `ODM_SCATTERERS`, `ODM_NO_RAMP`.
#[test]
#[ignore]
fn print_foot_errors() {
    let get = env_f64;
    let mut sc = sim(
        7,
        get("ODM_SECS", 60.0),
        get("ODM_SNR", 30.0),
        get("ODM_HR", 140.0),
    );
    sc.profile_exponent = get("ODM_PROFILE", 6.0);
    sc.scatterer_count = get("ODM_SCATTERERS", 48.0) as usize;
    let mut cfg = env_config();
    cfg.wall_cutoff_hz = get("ODM_WALL", cfg.wall_cutoff_hz);
    let mut probe = odm_simulator::VirtualProbe::new(sc).unwrap();
    let mut pipe = None;
    let mut s = EnvPoints(Vec::new());
    let mut buckets: [Vec<f64>; 4] = Default::default();
    let edges = [0.0, 0.005, 0.010, 0.015, 0.025];
    while let Some(p) = probe.next_payload() {
        feed(&mut pipe, cfg, p, &mut s);
        for (t, v) in s.0.drain(..) {
            if t < 1.0 {
                continue;
            }
            let Some(tv) = probe.true_velocity_cm_s(t) else {
                continue;
            };
            if tv <= 0.0 {
                continue;
            }
            // Time since the flow last was zero (0.25 ms steps, ≤ 30 ms).
            let mut d = 0.0;
            while d < 0.03 && probe.true_velocity_cm_s(t - d - 0.00025).unwrap_or(0.0) > 0.0 {
                d += 0.00025;
            }
            if d >= 0.025 {
                continue;
            }
            // Skip diastolic flow: the rise must continue.
            if probe.true_velocity_cm_s(t + 0.005).unwrap_or(0.0) <= tv {
                continue;
            }
            let b = edges.iter().rposition(|&e| d >= e).unwrap().min(3);
            buckets[b].push(v - tv);
        }
    }
    for (b, e) in buckets.iter_mut().enumerate() {
        e.sort_by(f64::total_cmp);
        let n = e.len();
        if n == 0 {
            continue;
        }
        let q = |f: f64| e[((n - 1) as f64 * f).round() as usize];
        println!(
            "{:>2}-{:<2} ms after onset: n {n:4} median {:+6.2} mean {:+6.2} p10 {:+6.2} p90 {:+6.2} p99 {:+6.2}",
            edges[b] * 1e3,
            edges[b + 1] * 1e3,
            q(0.5),
            e.iter().sum::<f64>() / n as f64,
            q(0.1),
            q(0.9),
            q(0.99)
        );
    }
}

/// The blunt profile at 15 dB and 75/min over the stream parameters the
/// serial spec allows: sample rates 8–48 kHz, carriers 2–8 MHz, beam angles
/// 30–60°.
#[test]
#[ignore]
fn print_stream_parameters() {
    for (fs, f0, angle) in [
        (20_000, 4_000_000, 45.0),
        (8_000, 4_000_000, 45.0),
        (10_000, 4_000_000, 45.0),
        (16_000, 4_000_000, 45.0),
        (48_000, 8_000_000, 60.0),
        (48_000, 4_000_000, 45.0),
        (20_000, 2_000_000, 45.0),
        (20_000, 8_000_000, 45.0),
        (20_000, 4_000_000, 60.0),
        (20_000, 4_000_000, 30.0),
    ] {
        let mut sc = sim(7, 30.0, 15.0, 75.0);
        sc.sample_rate_hz = fs;
        sc.carrier_hz = f0;
        sc.beam_angle_cdeg = (angle * 100.0) as u16;
        let r = run_sim(sc, PipelineConfig::default(), false);
        println!("{fs} Hz {f0} Hz {angle}°: {}", outcome(&r));
    }
}

/// The envelope's error on the falling edge, by true velocity (cm/s):
/// median and mean of envelope − truth over 60 s, for the virtual probe
/// (`ODM_PROFILE` 6, `ODM_SNR` 30, `ODM_HR` 45) and for the independent
/// reference (quarter-sine beats on warped shaped noise, β −2/3 and 0).
#[test]
#[ignore]
fn print_fall_errors() {
    use odm_simulator::{SineBeats, WarpedShapedNoise};
    let get = env_f64;
    let (secs, snr, hr) = (
        get("ODM_SECS", 60.0),
        get("ODM_SNR", 30.0),
        get("ODM_HR", 45.0),
    );
    let edges = [
        0.0, 10.0, 15.0, 20.0, 25.0, 30.0, 40.0, 50.0, 60.0, 80.0, 200.0,
    ];
    // Falling-edge points of systole: the truth falls over the next 5 ms and
    // was above 40 cm/s within the last 0.3 s.
    // With `ODM_EDGE=rise`, rising-edge points instead: the truth rises
    // over the next 5 ms and reaches 40 cm/s within 0.3 s.
    let rise = std::env::var("ODM_EDGE").is_ok_and(|e| e == "rise");
    // `ODM_SYSTOLIC` lowers the 40 cm/s for low-flow runs (`ODM_SV`).
    let systolic_cm_s = get("ODM_SYSTOLIC", 40.0);
    let falling = |t: f64, truth: &mut dyn FnMut(f64) -> Option<f64>| -> Option<f64> {
        let (tv, next) = (truth(t)?, truth(t + 0.005)?);
        let dir = if rise { 1.0 } else { -1.0 };
        let systolic =
            (1..=60).any(|k| truth(t + dir * 0.005 * f64::from(k)).unwrap_or(0.0) > systolic_cm_s);
        let moving = if rise { next > tv } else { next < tv };
        (t >= 1.0 && tv > 0.0 && moving && systolic).then_some(tv)
    };
    let report = |label: &str, pairs: &[(f64, f64)]| {
        let mut buckets: Vec<Vec<f64>> = vec![Vec::new(); edges.len() - 1];
        for &(v, tv) in pairs {
            let b = edges
                .iter()
                .rposition(|&e| tv >= e)
                .unwrap()
                .min(edges.len() - 2);
            buckets[b].push(v - tv);
        }
        println!("{label}");
        for (b, e) in buckets.iter_mut().enumerate() {
            e.sort_by(f64::total_cmp);
            let n = e.len();
            if n == 0 {
                continue;
            }
            println!(
                "  true {:>3}-{:<3} cm/s: n {n:5} median {:+6.2} mean {:+6.2} p10 {:+6.2} p90 {:+6.2} sd(p10–p90) {:5.2}",
                edges[b],
                edges[b + 1],
                e[n / 2],
                e.iter().sum::<f64>() / n as f64,
                e[n / 10],
                e[9 * n / 10],
                (e[9 * n / 10] - e[n / 10]) / 2.563
            );
        }
    };
    let mut sc = sim(7, secs, snr, hr);
    sc.profile_exponent = get("ODM_PROFILE", 6.0);
    sc.sv_ml = get("ODM_SV", sc.sv_ml);
    // `ODM_ANGLE` (degrees) and `ODM_CLUTTER_DB` (negative: none) for the
    // envelope near its floor, which both move.
    sc.beam_angle_cdeg = (get("ODM_ANGLE", 45.0) * 100.0).round() as u16;
    let clutter_db = get("ODM_CLUTTER_DB", sc.clutter_db.unwrap_or(-1.0));
    sc.clutter_db = (clutter_db >= 0.0).then_some(clutter_db);
    let mut probe = odm_simulator::VirtualProbe::new(sc).unwrap();
    let mut pipe = None;
    let mut s = EnvPoints(Vec::new());
    let mut pairs = Vec::new();
    while let Some(p) = probe.next_payload() {
        feed(&mut pipe, env_config(), p, &mut s);
        for (t, v) in s.0.drain(..) {
            if let Some(tv) = falling(t, &mut |x| probe.true_velocity_cm_s(x)) {
                pairs.push((v, tv));
            }
        }
    }
    report(
        &format!(
            "virtual probe n{} {snr} dB {hr}/min",
            get("ODM_PROFILE", 6.0)
        ),
        &pairs,
    );
    let params = odm_dsp::StreamParams {
        sample_rate_hz: 20_000,
        carrier_hz: 4_000_000,
        beam_angle_deg: 45.0,
    };
    for (label, beta) in [("blunt", -2.0 / 3.0), ("flat", 0.0)] {
        let train = SineBeats::new(secs, hr, 11);
        let iq = WarpedShapedNoise {
            sample_rate_hz: 20_000.0,
            edge_hz: params.shift_hz_from_velocity_cm_s(100.0),
            beta,
            snr_db: snr,
            seed: 11,
        }
        .generate(secs, |t| train.rate(t));
        let mut pipe = odm_dsp::Pipeline::new(env_config(), params).unwrap();
        let mut s = EnvPoints(Vec::new());
        for (i, chunk) in iq.chunks(200).enumerate() {
            pipe.push((i * 200) as u64, chunk, false, &mut s);
        }
        pipe.finish(&mut s);
        let pairs: Vec<(f64, f64)> =
            s.0.iter()
                .filter_map(|&(t, v)| {
                    let tv = falling(t, &mut |x| {
                        (0.0..secs).contains(&x).then(|| 100.0 * train.rate(x))
                    })?;
                    Some((v, tv))
                })
                .collect();
        report(&format!("sine {label} {snr} dB {hr}/min"), &pairs);
    }
}

/// Prints the envelope (after the time median), each column's noise power,
/// interference flag and highest bin above 4× the noise, and the beats,
/// between `ODM_FROM` and `ODM_TO` seconds of a default virtual-probe run
/// with `ODM_RATE` Hz, `ODM_SEED`, `ODM_HR`, `ODM_SECS`: for looking at
/// beats rejected on clean signal at other sample rates.
#[test]
#[ignore]
fn print_stream_window() {
    use odm_dsp::{EnvelopePoint, PipelineSink, SpectrumColumn};
    let get = env_f64;
    let (from, to) = (get("ODM_FROM", 0.0), get("ODM_TO", 5.0));
    struct S {
        from: f64,
        to: f64,
        inner: Collect,
    }
    impl PipelineSink for S {
        fn spectrum_column(&mut self, c: &SpectrumColumn<'_>) {
            if c.t_s < self.from || c.t_s > self.to {
                return;
            }
            let top = (c.zero_bin..c.power.len())
                .rev()
                .find(|&k| c.power[k] > 4.0 * c.noise_power)
                .map_or(0.0, |k| c.velocity_cm_s(k));
            let max = c.power[c.zero_bin..]
                .iter()
                .cloned()
                .fold(0.0_f32, f32::max);
            let hi: Vec<String> = (c.zero_bin..c.power.len())
                .filter(|&k| c.power[k] > 30.0 * c.noise_power)
                .map(|k| {
                    format!(
                        "{:.0}:{:.0}",
                        c.velocity_cm_s(k),
                        c.power[k] / c.noise_power
                    )
                })
                .collect();
            let n = c.power.len();
            let z0 = c.zero_bin;
            let pos_far: f32 = c.power[z0 + n / 8..].iter().sum::<f32>() / (n - z0 - n / 8) as f32;
            let neg_far: f32 = c.power[..z0 - n / 8].iter().sum::<f32>() / (z0 - n / 8) as f32;
            let groups: Vec<String> = (0..8)
                .map(|g| {
                    let a = z0 + g * (n - z0) / 8;
                    let b = z0 + (g + 1) * (n - z0) / 8;
                    format!(
                        "{:.2}",
                        c.power[a..b].iter().sum::<f32>() / (b - a) as f32 / c.noise_power
                    )
                })
                .collect();
            println!("GRP {:.4} {}", c.t_s, groups.join(" "));
            println!(
                "FAR {:.4} pos/noise {:.2} neg/noise {:.2}",
                c.t_s,
                pos_far / c.noise_power,
                neg_far / c.noise_power
            );
            let hi_tail = if hi.len() > 12 {
                hi[hi.len() - 12..].join(" ")
            } else {
                hi.join(" ")
            };
            println!(
                "COL {:.4} noise {:.3e} max/noise {:.1} top4x {:.1} intf {} n30x {} | {}",
                c.t_s,
                c.noise_power,
                max / c.noise_power,
                top,
                c.interference,
                hi.len(),
                hi_tail
            );
        }
        fn envelope_point(&mut self, p: &EnvelopePoint) {
            if p.t_s >= self.from && p.t_s <= self.to {
                println!("ENV {:.4} {:.1} q {:.2}", p.t_s, p.velocity_cm_s, p.quality);
            }
        }
        fn beat(&mut self, b: &odm_dsp::Beat) {
            self.inner.beat(b);
        }
    }
    let mut sc = sim(
        get("ODM_SEED", 8.0) as u64,
        get("ODM_SECS", 60.0),
        30.0,
        get("ODM_HR", 75.0),
    );
    sc.sample_rate_hz = get("ODM_RATE", 20000.0) as u32;
    let mut probe = odm_simulator::VirtualProbe::new(sc).unwrap();
    let mut pipe = None;
    let mut s = S {
        from,
        to,
        inner: Collect::default(),
    };
    while let Some(p) = probe.next_payload() {
        feed(&mut pipe, PipelineConfig::default(), p, &mut s);
    }
    for b in &s.inner.beats {
        if b.onset_s >= from - 1.0 && b.onset_s <= to {
            println!("{b:?}");
        }
    }
}

/// Irregular rhythm (atrial-fibrillation-like cycle variability, CV
/// `ODM_CV`, default 0.2) at `ODM_HR`: detection and rejection reasons.
#[test]
#[ignore]
fn print_irregular_rhythm() {
    for seed in 1..=3 {
        for hr in [70.0, 100.0, 130.0] {
            let mut sc = sim(seed, env_f64("ODM_SECS", 120.0), 15.0, hr);
            sc.hr_variability = env_f64("ODM_CV", 0.2);
            sc.ectopic_rate = env_f64("ODM_ECTOPIC", 0.0);
            let r = run_sim(sc, PipelineConfig::default(), false);
            println!("seed {seed} hr {hr}: {}", outcome(&r));
        }
    }
}

/// Quadrature imbalance of the probe's demodulator: Q scaled by
/// `1 + ODM_IQ_GAIN` and mixed with `sin(ODM_IQ_PHASE_DEG)` of I, which
/// mirrors the forward flow into the reverse half (the noise reference) at
/// about −20·log10(ε/2) dB. Detection, rejections and accuracy per rate.
#[test]
#[ignore]
fn print_iq_imbalance() {
    let g = env_f64("ODM_IQ_GAIN", 0.1);
    let phi_deg = env_f64("ODM_IQ_PHASE_DEG", 5.0);
    for snr in [30.0, 15.0] {
        for hr in [60.0, 120.0] {
            let mut sc = sim(3, env_f64("ODM_SECS", 60.0), snr, hr);
            sc.sample_rate_hz = env_f64("ODM_RATE", 20_000.0) as u32;
            sc.iq_gain_error = g;
            sc.iq_phase_error_deg = phi_deg;
            let r = run_sim(sc, PipelineConfig::default(), false);
            println!("snr {snr} hr {hr}: {}", outcome(&r));
        }
    }
}

/// The envelope of a recording (`ODM_REC`), as `t_s v_cm_s` lines to
/// `ODM_OUT`: for comparing the envelope with an outside reference's truth.
#[test]
#[ignore]
fn dump_recording_envelope() {
    use std::io::Write;
    struct S(std::io::BufWriter<std::fs::File>);
    impl PipelineSink for S {
        fn envelope_point(&mut self, p: &EnvelopePoint) {
            writeln!(self.0, "{:.6} {:.4}", p.t_s, p.velocity_cm_s).unwrap();
        }
    }
    let rec = std::env::var("ODM_REC").expect("ODM_REC");
    let out = std::env::var("ODM_OUT").expect("ODM_OUT");
    let mut reader = odm_device_io::RecordingReader::open(std::path::Path::new(&rec)).unwrap();
    let mut s = S(std::io::BufWriter::new(std::fs::File::create(out).unwrap()));
    let mut pipe = None;
    while let Some(f) = reader.next_frame().unwrap() {
        feed(&mut pipe, env_config(), f.payload, &mut s);
    }
}

/// The forward spectrum columns of a recording (`ODM_REC`) between
/// `ODM_FROM` and `ODM_TO` seconds, as `t_s noise_power` followed by the
/// first `ODM_BINS` (default 24) forward bins over the noise, one line per
/// column, to `ODM_OUT`: for seeing what the envelope read a column from
/// (e.g. a flow edge inside a cancelled line's region, docs/dsp.md, 3a).
#[test]
#[ignore]
fn dump_recording_columns() {
    use odm_dsp::{PipelineSink, SpectrumColumn};
    use std::io::Write;
    struct S(std::io::BufWriter<std::fs::File>, f64, f64, usize);
    impl PipelineSink for S {
        fn spectrum_column(&mut self, c: &SpectrumColumn<'_>) {
            if c.t_s < self.1 || c.t_s > self.2 {
                return;
            }
            write!(self.0, "{:.4} {:.3e}", c.t_s, c.noise_power).unwrap();
            for k in 0..self.3.min(c.power.len() - c.zero_bin) {
                write!(self.0, " {:.1}", c.power[c.zero_bin + k] / c.noise_power).unwrap();
            }
            writeln!(self.0).unwrap();
        }
    }
    let rec = std::env::var("ODM_REC").expect("ODM_REC");
    let out = std::env::var("ODM_OUT").expect("ODM_OUT");
    let from: f64 = std::env::var("ODM_FROM").unwrap().parse().unwrap();
    let to: f64 = std::env::var("ODM_TO").unwrap().parse().unwrap();
    let bins: usize = std::env::var("ODM_BINS").map_or(24, |b| b.parse().unwrap());
    let mut reader = odm_device_io::RecordingReader::open(std::path::Path::new(&rec)).unwrap();
    let mut s = S(
        std::io::BufWriter::new(std::fs::File::create(out).unwrap()),
        from,
        to,
        bins,
    );
    let mut pipe = None;
    while let Some(f) = reader.next_frame().unwrap() {
        feed(&mut pipe, PipelineConfig::default(), f.payload, &mut s);
    }
}

/// The notch's tones, the line canceller's held regions and the columns'
/// interference flag of a recording (`ODM_REC`) where they change, with the
/// beats as they are emitted: for tracing why beats under a tone were
/// rejected.
#[test]
#[ignore]
fn print_notch_states() {
    use odm_dsp::{Beat, PipelineSink, SpectrumColumn};
    struct S(usize, bool, f64);
    impl PipelineSink for S {
        fn spectrum_column(&mut self, c: &SpectrumColumn<'_>) {
            if c.narrowband_lines != self.0 || c.interference != self.1 {
                println!(
                    "{:8.3} lines {} interference {}",
                    c.t_s, c.narrowband_lines, c.interference
                );
                self.0 = c.narrowband_lines;
                self.1 = c.interference;
            }
            self.2 = c.t_s;
        }
        fn beat(&mut self, b: &Beat) {
            println!(
                "{:8.3} BEAT onset {:.3} {:?} (at {:.3})",
                b.onset_s, b.onset_s, b.reject_reason, self.2
            );
        }
    }
    let rec = std::env::var("ODM_REC").expect("ODM_REC");
    let mut reader = odm_device_io::RecordingReader::open(std::path::Path::new(&rec)).unwrap();
    let mut s = S(0, false, 0.0);
    let mut last = String::new();
    let mut pipe = None;
    while let Some(f) = reader.next_frame().unwrap() {
        feed(&mut pipe, env_config(), f.payload, &mut s);
        if let Some(p) = pipe.as_ref() {
            let tones: Vec<i64> = p
                .notched_tones_hz()
                .map(|t| (t / 50.0).round() as i64 * 50)
                .collect();
            let lines = p.narrowband_lines().to_vec();
            let st = format!("tones {tones:?} lines {lines:?}");
            if st != last {
                println!("{:8.3} {st}", s.2);
                last = st;
            }
        }
    }
}

/// The edge classes of the dechirp experiments, by true velocity (cm/s)
/// and slope (cm/s per ms): 0 plateau, 1 steep rise (> 1.5), 2 moderate
/// rise (0.7–1.5), 3 fall (< −0.7); None elsewhere.
fn slope_class(v_cm_s: f64, slope_cm_s_per_ms: f64) -> Option<usize> {
    let s = slope_cm_s_per_ms;
    if v_cm_s > 40.0 && s.abs() < 0.3 {
        Some(0)
    } else if v_cm_s <= 25.0 {
        None
    } else if s > 1.5 {
        Some(1)
    } else if s > 0.7 {
        Some(2)
    } else if s < -0.7 {
        Some(3)
    } else {
        None
    }
}

/// Median and robust sd (1.4826 × MAD) of `e`, which it sorts.
fn median_and_robust_sd(e: &mut [f64]) -> (f64, f64) {
    e.sort_by(f64::total_cmp);
    let med = e[e.len() / 2];
    let mut dev: Vec<f64> = e.iter().map(|x| (x - med).abs()).collect();
    dev.sort_by(f64::total_cmp);
    (med, 1.4826 * dev[dev.len() / 2])
}

/// Dechirp experiment: reads `ODM_IQ` (complex64 samples at 20 kHz) and
/// `ODM_V` (f64 pairs: true edge velocity cm/s and its slope cm/s² per
/// sample), forms 10 ms Hann columns every 5 ms, plain and multiplied by
/// `exp(−iπ c t²)` with the true edge's chirp rate `c` (oracle), runs the
/// shape-fit envelope on both with the known noise floor `ODM_NOISE`, and
/// prints the edge error's spread per slope class.
#[test]
#[ignore]
fn print_dechirp_edges() {
    use odm_dsp::envelope::{EdgeEstimate, EnvelopeConfig, EnvelopeEstimator};
    use rustfft::num_complex::Complex32;
    let iq: Vec<Complex32> = std::fs::read(std::env::var("ODM_IQ").unwrap())
        .unwrap()
        .chunks_exact(8)
        .map(|b| {
            Complex32::new(
                f32::from_le_bytes(b[..4].try_into().unwrap()),
                f32::from_le_bytes(b[4..].try_into().unwrap()),
            )
        })
        .collect();
    let vd: Vec<(f64, f64)> = std::fs::read(std::env::var("ODM_V").unwrap())
        .unwrap()
        .chunks_exact(16)
        .map(|b| {
            (
                f64::from_le_bytes(b[..8].try_into().unwrap()),
                f64::from_le_bytes(b[8..].try_into().unwrap()),
            )
        })
        .collect();
    let noise = env_f64("ODM_NOISE", 0.031_622_78) as f32;
    let k_hz = env_f64("ODM_K", 36.732_82);
    let lag = env_f64("ODM_LAG", 0.0) as usize;
    let (fs, w_len, fft_len, hop) = (20_000.0_f64, 200usize, 256usize, 100usize);
    let window = odm_dsp::stft::hann(w_len);
    let energy: f32 = window.iter().map(|w| w * w).sum();
    let mut est =
        EnvelopeEstimator::new(EnvelopeConfig::default(), &window, fft_len, fs, 300.0).unwrap();
    let fft = rustfft::FftPlanner::<f32>::new().plan_fft_forward(fft_len);
    let mut buf = vec![Complex32::default(); fft_len];
    let mut power = vec![0.0_f32; fft_len];
    // (class, mode) → errors
    let mut errs: Vec<Vec<Vec<f64>>> = vec![vec![Vec::new(); 3]; 4];
    let n_col = (iq.len() - w_len) / hop + 1;
    let mut plain = vec![0.0_f64; n_col];
    for pass in 0..2 {
        let mut c = 0;
        while c * hop + w_len <= iq.len() {
            let i0 = c * hop;
            let mid = i0 + w_len / 2;
            let (v, dv) = vd[mid];
            let dv_est = vd[mid.saturating_sub(lag * hop)].1;
            // The pipeline's slope: median of the three differences around c.
            let slope_hz_s = if c >= 2 && c + 1 < n_col {
                let (z, a, b, cc) = (plain[c - 2], plain[c - 1], plain[c], plain[c + 1]);
                let (d0, d1, d2) = (a - z, b - a, cc - b);
                let med = d0.max(d1).min(d0.min(d1).max(d2));
                if a > 0.0 && cc > 0.0 && d1 * d2 > 0.0 {
                    med / (hop as f64 / fs)
                } else {
                    0.0
                }
            } else {
                0.0
            };
            let modes: &[usize] = if pass == 0 { &[0] } else { &[0, 1, 2] };
            for &mode in modes {
                let rate = match mode {
                    1 => k_hz * dv_est,
                    2 => slope_hz_s,
                    _ => 0.0,
                };
                buf.fill(Complex32::default());
                for n in 0..w_len {
                    let tc = (n as f64 - w_len as f64 / 2.0) / fs;
                    let ph = -std::f64::consts::PI * rate * tc * tc;
                    let rot = Complex32::new(ph.cos() as f32, ph.sin() as f32);
                    buf[n] = iq[i0 + n] * rot * window[n];
                }
                fft.process(&mut buf);
                let half = fft_len / 2;
                for i in 0..fft_len {
                    let x = buf[(i + half) % fft_len];
                    power[i] = x.norm_sqr() / energy;
                }
                let mut out = EdgeEstimate::default();
                est.process(&power, noise, &mut out).unwrap();
                let ve = f64::from(out.shift_hz) / k_hz;
                if pass == 0 {
                    plain[c] = f64::from(out.shift_hz);
                    continue;
                }
                let Some(class) = slope_class(v, dv / 1000.0) else {
                    continue;
                };
                errs[class][mode].push(ve - v);
            }
            c += 1;
        }
    }
    for (class, name) in ["plateau", "rise >1500", "rise 700-1500", "fall <-700"]
        .iter()
        .enumerate()
    {
        let mut line = format!("{name:<14} n {:4}", errs[class][0].len());
        for (mode, label) in ["plain", "oracle", "estimated"].iter().enumerate() {
            let e = &mut errs[class][mode];
            let (med, rsd) = median_and_robust_sd(e);
            let mean = e.iter().sum::<f64>() / e.len() as f64;
            let sd = (e.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / e.len() as f64).sqrt();
            line += &format!(" | {label} bias {med:+.2} sd {sd:.2} rsd {rsd:.2}");
        }
        println!("{line}");
    }
}

/// Envelope error against the virtual probe's true velocity by the true
/// slope (cm/s per ms): steep and moderate rises, plateau, falls; robust
/// sd (1.4826 MAD) and bias. `ODM_PROFILE`, `ODM_HR`, `ODM_SNR`,
/// `ODM_SCATTERERS`; `ODM_NO_DECHIRP` turns dechirping off.
#[test]
#[ignore]
fn print_envelope_error_by_slope() {
    let cfg = env_config();
    let mut classes: Vec<Vec<f64>> = vec![Vec::new(); 4];
    for seed in [7, 8] {
        let mut sc = sim(
            seed,
            env_f64("ODM_SECS", 30.0),
            env_f64("ODM_SNR", 15.0),
            env_f64("ODM_HR", 140.0),
        );
        sc.profile_exponent = env_f64("ODM_PROFILE", 2.0);
        sc.scatterer_count = env_f64("ODM_SCATTERERS", 192.0) as usize;
        let mut probe = odm_simulator::VirtualProbe::new(sc).unwrap();
        let mut pipe = None;
        let mut s = EnvPoints(Vec::new());
        let mut points = 0_u64;
        while let Some(p) = probe.next_payload() {
            feed(&mut pipe, cfg, p, &mut s);
            points += s.0.len() as u64;
            for (t, v) in s.0.drain(..) {
                let (Some(tv), Some(a), Some(b)) = (
                    probe.true_velocity_cm_s(t),
                    probe.true_velocity_cm_s(t - 0.001),
                    probe.true_velocity_cm_s(t + 0.001),
                ) else {
                    continue;
                };
                if t < 1.0 {
                    continue;
                }
                let Some(class) = slope_class(tv, (b - a) / 2.0) else {
                    continue;
                };
                classes[class].push(v - tv);
            }
        }
        if let Some(p) = &pipe {
            println!(
                "seed {seed}: {} of {points} columns dechirped",
                p.dechirped_columns()
            );
        }
    }
    for (name, e) in ["plateau", "rise > 1.5", "rise 0.7-1.5", "fall < -0.7"]
        .iter()
        .zip(&mut classes)
    {
        if e.is_empty() {
            continue;
        }
        let (med, rsd) = median_and_robust_sd(e);
        let mut a: Vec<f64> = e.iter().map(|x| x.abs()).collect();
        a.sort_by(f64::total_cmp);
        println!(
            "{name:<13} n {:5} bias {med:+.2} rsd {rsd:.2} p95|e| {:.2}",
            e.len(),
            a[a.len() * 95 / 100]
        );
    }
}

/// Wall-clock of the pipeline over 60 s of the virtual probe (`ODM_HR`),
/// with and without dechirped columns, alternating, best of 5.
#[test]
#[ignore]
fn time_dechirp_cost() {
    let mut sc = sim(7, 60.0, 15.0, env_f64("ODM_HR", 140.0));
    sc.profile_exponent = 6.0;
    let mut probe = odm_simulator::VirtualProbe::new(sc).unwrap();
    let mut payloads = Vec::new();
    while let Some(p) = probe.next_payload() {
        payloads.push(p);
    }
    let mut best = [f64::INFINITY; 2];
    let mut counts = [0; 2];
    for _ in 0..5 {
        for (k, dechirp) in [true, false].into_iter().enumerate() {
            let cfg = PipelineConfig {
                dechirp,
                ..PipelineConfig::default()
            };
            let mut pipe = None;
            let t0 = std::time::Instant::now();
            for p in &payloads {
                feed(&mut pipe, cfg, p.clone(), &mut odm_dsp::NullSink);
            }
            best[k] = best[k].min(t0.elapsed().as_secs_f64());
            counts[k] = pipe.as_ref().map_or(0, |p| p.dechirped_columns());
        }
    }
    println!(
        "on {:.1} ms ({} dechirped), off {:.1} ms: {:.2} µs per dechirped column",
        best[0] * 1e3,
        counts[0],
        best[1] * 1e3,
        (best[0] - best[1]) * 1e6 / counts[0].max(1) as f64
    );
}

/// What limits the heart rate's p95 on the grid's flat (parabolic) cell at
/// 140/min: the onset error's spread, tail and beat-to-beat correlation,
/// and the cycle error's p95, at 15 and 30 dB (seeds 7–8, 60 s, the grid's
/// parabolic profile). `ODM_PROFILE` (the grid profile's exponent n: 2; 6
/// and 9 are the blunt ones), `ODM_HR` (140), `ODM_SCATTERERS` (48),
/// `ODM_NO_CLUTTER` (no wall echo), `ODM_SECONDS` (60), `ODM_SNR` (one
/// SNR instead of the two).
#[test]
#[ignore]
fn print_onset_error_tails() {
    let get = env_f64;
    let snrs = std::env::var("ODM_SNR")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(vec![15.0, 30.0], |s| vec![s]);
    let n = get("ODM_PROFILE", 2.0);
    let profile = odm_dsp::validation::GRID_PROFILES
        .iter()
        .find(|p| p.profile_exponent == n)
        .expect("ODM_PROFILE: 6, 9 or 2, a grid profile's exponent");
    for snr in snrs {
        let (mut onset, mut cycle, mut pairs) = (Vec::new(), Vec::new(), Vec::new());
        for seed in [7, 8] {
            let mut sc = with_profile(
                sim(seed, get("ODM_SECONDS", 60.0), snr, get("ODM_HR", 140.0)),
                profile,
            );
            sc.scatterer_count = get("ODM_SCATTERERS", 48.0) as usize;
            if std::env::var("ODM_NO_CLUTTER").is_ok() {
                sc.clutter_db = None;
            }
            let r = run_sim(sc, env_config(), false);
            let mut prev = None;
            for b in r.out.beats.iter().filter(|b| b.accepted) {
                let Some(t) = r
                    .truth
                    .iter()
                    .find(|t| (t.onset_s - b.onset_s).abs() < 0.05)
                else {
                    prev = None;
                    continue;
                };
                let e = (b.onset_s - t.onset_s) * 1000.0;
                onset.push(e);
                cycle.push((b.cycle_s - (t.next_onset_s - t.onset_s)) * 1000.0);
                if let Some(p) = prev {
                    pairs.push((p, e));
                }
                prev = Some(e);
            }
        }
        let mean = |v: &mut dyn Iterator<Item = f64>| {
            let (s, k) = v.fold((0.0, 0.0), |(s, k), x| (s + x, k + 1.0));
            s / k
        };
        let (ma, mb) = (
            mean(&mut pairs.iter().map(|p| p.0)),
            mean(&mut pairs.iter().map(|p| p.1)),
        );
        let cov = mean(&mut pairs.iter().map(|p| (p.0 - ma) * (p.1 - mb)));
        let sd_a = mean(&mut pairs.iter().map(|p| (p.0 - ma).powi(2))).sqrt();
        let sd_b = mean(&mut pairs.iter().map(|p| (p.1 - mb).powi(2))).sqrt();
        let m = mean(&mut onset.iter().copied());
        let sd = mean(&mut onset.iter().map(|x| (x - m).powi(2))).sqrt();
        let mut abs_onset: Vec<f64> = onset.iter().map(|x| x.abs()).collect();
        let mut abs_cycle: Vec<f64> = cycle.iter().map(|x| x.abs()).collect();
        abs_onset.sort_by(f64::total_cmp);
        abs_cycle.sort_by(f64::total_cmp);
        let q = |v: &[f64], p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
        println!(
            "{snr} dB, {} beats: onset sd {sd:.2} ms, |e| median {:.2} p90 {:.2} p95 {:.2} max {:.2}, lag-1 r {:.2}; cycle |e| median {:.2} p95 {:.2} ms",
            onset.len(),
            q(&abs_onset, 0.5),
            q(&abs_onset, 0.9),
            q(&abs_onset, 0.95),
            q(&abs_onset, 1.0),
            cov / (sd_a * sd_b),
            q(&abs_cycle, 0.5),
            q(&abs_cycle, 0.95),
        );
    }
}
