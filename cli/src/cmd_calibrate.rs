//! `odm calibrate`: measures a probe against flow-phantom runs of known
//! velocity, fits measured against reference velocity by least squares,
//! checks the acceptance limits and writes `calibration.json` and a
//! printable `certificate.html` (procedure in `docs/calibration.md`).
//!
//! Exit status: 0 when the calibration PASSes, 1 when it FAILs its
//! acceptance limits (the files are still written) or cannot be made.

use crate::UsageError;
use crate::calib_cert::{self, Installation};
use crate::calib_stream::{CalibrationPolicy, StreamAnalyser, median};
use anyhow::{Context, bail};
use odm_device_io::RecordingReader;
use odm_device_io::calibration::{
    CALIBRATION_FORMAT, CALIBRATION_VERSION, CalDate, Calibration, CalibrationLimits,
    CalibrationRun, CalibrationStore, DEFAULT_VALID_DAYS, MeasurementMode, ProbeConditions,
    VelocityCorrection,
};
use odm_dsp::calfit::{AcceptanceLimits, assess, fit_linear};
use odm_dsp::pipeline::PipelineConfig;
use std::path::{Path, PathBuf};

/// Envelope points in the first half second of a run are left out: the
/// wall filter and the spectrum window are still filling.
const SETTLE_S: f64 = 0.5;
/// A steady run needs at least this many envelope points (1 s at the
/// pipeline's 5 ms hop) after settling.
const MIN_ENVELOPE_POINTS: usize = 200;
/// A pulsatile run needs at least this many accepted beats.
const MIN_BEATS: usize = 3;
/// A steady run's envelope, between its 10th and 90th percentiles, may
/// span at most this fraction of its median …
const STEADY_SPREAD: f64 = 0.5;
/// … or this many cm/s, whichever is larger.
const STEADY_SPREAD_MIN_CM_S: f64 = 8.0;
/// A run measured within this many spectrum bins of the band's top is
/// refused as possibly aliased.
const ALIAS_GUARD_BINS: f64 = 3.0;
/// The fit needs three runs for a confidence interval (n − 2 ≥ 1 degrees of freedom).
const MIN_RUNS: usize = 3;

/// Arguments of `odm calibrate`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Serial of the probe being calibrated (every run must come from it).
    #[arg(long, value_name = "SERIAL")]
    pub probe: String,
    /// A phantom run: recording and the phantom's set velocity, e.g.
    /// `run1.odmrec:50`. At least three, at different velocities.
    #[arg(long = "run", value_name = "FILE:VELOCITY_CM_S", required = true, value_parser = parse_run)]
    pub runs: Vec<RunArg>,
    /// Engineer performing the calibration (staff identifier).
    #[arg(long, value_name = "NAME")]
    pub engineer: String,
    /// Phantom used (equipment identifier).
    #[arg(long, value_name = "ID")]
    pub phantom: String,
    /// Directory for calibration.json and certificate.html (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Steady flow (median of the maximum-velocity envelope) or pulsatile
    /// (median beat peak velocity).
    #[arg(long, value_enum, default_value_t = ModeArg::Steady)]
    pub mode: ModeArg,
    /// Days the calibration stays in date.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_VALID_DAYS)]
    pub valid_days: u32,
    /// Accept a gain within 1 ± this.
    #[arg(long, value_name = "F", default_value_t = 0.05)]
    pub gain_tolerance: f64,
    /// Every residual must be within the larger of this (cm/s) …
    #[arg(long, value_name = "CM_S", default_value_t = 3.0)]
    pub residual_limit_cm_s: f64,
    /// … and this percentage of the run's reference velocity.
    #[arg(long, value_name = "PCT", default_value_t = 3.0)]
    pub residual_limit_pct: f64,
    /// Accept an offset (the fitted reading at zero velocity) within ± this, cm/s.
    #[arg(long, value_name = "CM_S", default_value_t = 3.0)]
    pub offset_tolerance_cm_s: f64,
    /// Also install the calibration in the calibration store, so the monitor
    /// and `odm analyse` apply it to this probe (not done when the fit is
    /// non-linear beyond the residual limits).
    #[arg(long, conflicts_with = "check")]
    pub install: bool,
    /// As-left check: measure with the probe's installed calibration applied
    /// (the result should be gain ≈ 1, offset ≈ 0); nothing is installed.
    #[arg(long)]
    pub check: bool,
    /// Calibration store directory (default: $ODM_CALIBRATIONS, else
    /// $XDG_DATA_HOME/odm/calibrations, else ~/.local/share/odm/calibrations).
    #[arg(long, value_name = "DIR")]
    pub calibrations: Option<PathBuf>,
    /// Calibration date, YYYY-MM-DD (default: today, UTC).
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_date)]
    pub date: Option<CalDate>,
}

/// `--mode`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModeArg {
    /// Steady flow.
    Steady,
    /// Pulsatile flow.
    Pulsatile,
}

/// One `--run FILE:VELOCITY_CM_S`.
#[derive(Clone, Debug, PartialEq)]
pub struct RunArg {
    /// The recording.
    pub file: PathBuf,
    /// The phantom's set velocity, cm/s.
    pub reference_cm_s: f64,
}

fn parse_run(text: &str) -> Result<RunArg, String> {
    // Split at the last colon: a path may contain colons, a number does not.
    let (file, v) = text
        .rsplit_once(':')
        .ok_or_else(|| format!("{text:?} is not FILE:VELOCITY_CM_S"))?;
    if file.is_empty() {
        return Err(format!("{text:?} has no file before the colon"));
    }
    let reference_cm_s: f64 = v
        .trim()
        .parse()
        .map_err(|_| format!("{v:?} in {text:?} is not a velocity in cm/s"))?;
    if !(reference_cm_s.is_finite() && reference_cm_s > 0.0 && reference_cm_s <= 1000.0) {
        return Err(format!(
            "velocity {v} cm/s in {text:?} is not within 0 < v ≤ 1000"
        ));
    }
    Ok(RunArg {
        file: PathBuf::from(file),
        reference_cm_s,
    })
}

fn parse_date(text: &str) -> Result<CalDate, String> {
    CalDate::parse(text).ok_or_else(|| format!("{text:?} is not a date YYYY-MM-DD"))
}

/// What one run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct RunMeasurement {
    /// Median velocity, cm/s.
    pub measured_cm_s: f64,
    /// How many envelope points or beats it is the median of.
    pub points: u64,
    /// The probe interface's I/Q mirror image under the signal, dB (None
    /// before 4 s of clean signal).
    pub iq_image_db: Option<f64>,
    /// One quadrature channel of the interface was dead or broken.
    pub iq_channel_fault: bool,
    /// SHA-256 of the recording, lower-case hex.
    pub sha256: String,
    /// The carrier, beam angle and sample rate its PROBE_INFO reported.
    pub conditions: ProbeConditions,
}

/// Measures one recording: steady = median envelope after settling;
/// pulsatile = median peak velocity of accepted beats. Checks the
/// recording comes from `probe` alone.
pub fn measure_recording(
    path: &Path,
    probe: &str,
    mode: MeasurementMode,
    policy: CalibrationPolicy,
) -> anyhow::Result<RunMeasurement> {
    let shown = path.display();
    let mut reader = RecordingReader::open(path).with_context(|| format!("opening run {shown}"))?;
    // A string phantom's echo is a steady line alone in the noise, which
    // the monitor's line canceller would take for interference.
    let cfg = PipelineConfig {
        cancel_lines: false,
        ..PipelineConfig::default()
    };
    let mut analyser = StreamAnalyser::new(cfg, policy);
    while let Some(item) = reader
        .next_item()
        .with_context(|| format!("reading run {shown}"))?
    {
        analyser
            .handle(item)
            .with_context(|| format!("analysing run {shown}"))?;
        if let Some(other) = analyser.serials.iter().find(|s| s.as_str() != probe) {
            bail!("run {shown} comes from probe {other:?}, not {probe:?}");
        }
    }
    analyser.finish();
    let c = reader.counters();
    if !c.is_clean() {
        // Damage does not bias a median, but the engineer should know the
        // run was not recorded cleanly (and may want to repeat it).
        eprintln!(
            "odm calibrate: warning: run {shown} is damaged: {} CRC errors, {} malformed, {} lost frames, {} lost samples, {} discontinuities, {} resync bytes",
            c.crc_errors,
            c.malformed,
            c.lost_frames,
            c.lost_samples,
            c.discontinuities,
            c.resync_bytes
        );
    }
    if analyser.serials.is_empty() {
        bail!("run {shown} has no PROBE_INFO frame: its probe and velocity scale are unknown");
    }
    // A string running the other way, or an interface that swaps I and Q,
    // puts the phantom's echo in the reverse half, where no velocity is
    // measured: say so rather than "too few points". So does a string
    // faster than the stream's limit: its line wraps round to −(2·limit − v),
    // which one steady line cannot tell from reverse flow.
    let reverse_s = analyser.reverse_flow_s();
    if reverse_s > 0.0 {
        let limit = analyser
            .max_velocity_cm_s()
            .map_or(String::new(), |v| format!(" or {v:.0} cm/s"));
        bail!(
            "run {shown}: the phantom's flow is in the reverse direction (towards the probe) for {reverse_s:.1} s, \
             or faster than this sample rate carries{limit} (aliased): reverse the phantom's direction, check that \
             the probe interface does not swap I and Q, or run the phantom slower"
        );
    }
    let iq_image_db = analyser.iq_image_db();
    let iq_channel_fault = analyser.iq_channel_fault();
    let aliased_s = analyser.aliased_s();
    let max_velocity_cm_s = analyser.max_velocity_cm_s();
    let per_bin_cm_s = analyser.velocity_per_bin_cm_s().unwrap_or(0.0);
    if iq_channel_fault {
        // The phantom's line is then mirrored at full power: the velocity
        // may still read true, but the interface is broken.
        eprintln!(
            "odm calibrate: warning: run {shown}: one I/Q channel of the probe interface is dead or broken; have the interface or cable serviced"
        );
    }
    // Velocities scale with the carrier and the beam angle the probe
    // reports: a run whose PROBE_INFO changed them has two scales.
    let conditions = match analyser.conditions.as_slice() {
        [first, rest @ ..] => {
            if let Some(other) = rest.iter().find(|c| !c.same_scale(first)) {
                bail!(
                    "run {shown}: the probe reported {first} and then {other}: record each run under one carrier and beam angle"
                );
            }
            *first
        }
        [] => {
            bail!("run {shown} has no PROBE_INFO frame: its probe and velocity scale are unknown")
        }
    };
    let out = analyser.out;
    let (measured_cm_s, points) = match mode {
        MeasurementMode::Steady => {
            let t0 = out.envelope.first().map(|p| p.0).unwrap_or(0.0);
            let mut v: Vec<f64> = out
                .envelope
                .iter()
                .filter(|(t, _, q)| *t >= t0 + SETTLE_S && *q > 0.0)
                .map(|p| p.1)
                .collect();
            if v.len() < MIN_ENVELOPE_POINTS {
                bail!(
                    "run {shown}: only {} usable envelope points (need {MIN_ENVELOPE_POINTS}, about {:.1} s of clean flow); record a longer run",
                    v.len(),
                    SETTLE_S + MIN_ENVELOPE_POINTS as f64 * 0.005
                );
            }
            v.sort_by(f64::total_cmp);
            let quantile = |f: f64| v[((v.len() - 1) as f64 * f).round() as usize];
            let (p10, p90) = (quantile(0.10), quantile(0.90));
            let points = v.len() as u64;
            let measured_cm_s = median(&mut v).unwrap_or(f64::NAN);
            // A steady phantom holds its velocity: the envelope's middle
            // 80 % stays within a few per cent (string) to ±10 % (flow at
            // 20 cm/s and 3 dB SNR, 0.21 of the median); a pulsatile one
            // sweeps from the wall band to its peak (over 1.0).
            let spread_cm_s = p90 - p10;
            if spread_cm_s > (STEADY_SPREAD * measured_cm_s).max(STEADY_SPREAD_MIN_CM_S) {
                bail!(
                    "run {shown}: the flow is not steady: the envelope's middle 80 % spans {p10:.1}–{p90:.1} cm/s around a median of {measured_cm_s:.1}; for a pulsatile phantom use --mode pulsatile"
                );
            }
            (measured_cm_s, points)
        }
        MeasurementMode::Pulsatile => {
            let mut pv: Vec<f64> = out
                .beats
                .iter()
                .filter(|b| b.accepted)
                .map(|b| b.pv_cm_s)
                .collect();
            if pv.len() < MIN_BEATS {
                bail!(
                    "run {shown}: only {} accepted beats (need {MIN_BEATS}); record a longer or cleaner run",
                    pv.len()
                );
            }
            let points = pv.len() as u64;
            (median(&mut pv).unwrap_or(f64::NAN), points)
        }
    };
    // Flow faster than the band carries wraps round its top, and a flat
    // spectrum that fills the band reads at the top whatever its true
    // edge: near the top, a run cannot be told from an aliased one.
    if let Some(limit) = max_velocity_cm_s {
        let guard = ALIAS_GUARD_BINS * per_bin_cm_s;
        if aliased_s > 0.0 || measured_cm_s >= limit - guard {
            let where_ = if measured_cm_s > limit {
                "above"
            } else {
                "at or near"
            };
            let wrapped = if aliased_s > 0.0 {
                format!("; the flow wrapped round the band's top for {aliased_s:.1} s")
            } else {
                String::new()
            };
            bail!(
                "run {shown}: measured {measured_cm_s:.1} cm/s, {where_} the highest velocity this sample rate carries ({limit:.1} cm/s; runs within {guard:.1} cm/s of it are refused){wrapped}: a faster, aliased flow reads the same; run the phantom slower or record at a higher sample rate"
            );
        }
    }
    Ok(RunMeasurement {
        measured_cm_s,
        points,
        iq_image_db,
        iq_channel_fault,
        sha256: file_sha256(path).with_context(|| format!("hashing run {shown}"))?,
        conditions,
    })
}

/// SHA-256 of a file's bytes, lower-case hex: names the exact recording a
/// run's figures came from.
fn file_sha256(path: &Path) -> std::io::Result<String> {
    use sha2::{Digest, Sha256};
    use std::io::Read as _;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(odm_uptake::record::hex_from_bytes(&hasher.finalize()))
}

fn software() -> String {
    format!("odm {}", env!("CARGO_PKG_VERSION"))
}

fn store_from(dir: Option<&PathBuf>) -> anyhow::Result<CalibrationStore> {
    Ok(match dir {
        Some(d) => CalibrationStore::new(d),
        None => CalibrationStore::open_default().context("finding the calibration store")?,
    })
}

/// Runs `odm calibrate`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let mode = match args.mode {
        ModeArg::Steady => MeasurementMode::Steady,
        ModeArg::Pulsatile => MeasurementMode::Pulsatile,
    };
    // Arguments out of their range are usage errors (exit 2, cli.md),
    // found before any run is measured.
    let usage = |text: String| anyhow::Error::new(UsageError(text));
    if args.runs.len() < MIN_RUNS {
        return Err(usage(format!(
            "{} --run given; a calibration needs at least {MIN_RUNS} runs at different velocities",
            args.runs.len()
        )));
    }
    // The same recording twice would count as two independent runs and
    // narrow the interval for nothing.
    for (i, a) in args.runs.iter().enumerate() {
        let same = |b: &RunArg| {
            b.file == a.file
                || matches!(
                    (std::fs::canonicalize(&a.file), std::fs::canonicalize(&b.file)),
                    (Ok(x), Ok(y)) if x == y
                )
        };
        if args.runs[..i].iter().any(same) {
            return Err(usage(format!(
                "run {} is given more than once: each run must be its own recording",
                a.file.display()
            )));
        }
    }
    for (name, v) in [
        ("--gain-tolerance", args.gain_tolerance),
        ("--residual-limit-cm-s", args.residual_limit_cm_s),
        ("--residual-limit-pct", args.residual_limit_pct),
        ("--offset-tolerance-cm-s", args.offset_tolerance_cm_s),
    ] {
        if !(v.is_finite() && v >= 0.0) {
            return Err(usage(format!("{name} {v} must be a number ≥ 0")));
        }
    }
    for (name, v) in [("--engineer", &args.engineer), ("--phantom", &args.phantom)] {
        if v.trim().is_empty() {
            return Err(usage(format!(
                "{name} is empty: the certificate must say who calibrated with what"
            )));
        }
    }
    if args.valid_days == 0 {
        return Err(usage("--valid-days must be at least 1".into()));
    }
    let date = args.date.unwrap_or_else(CalDate::today_utc);
    let valid_until = date.plus_days(i64::from(args.valid_days));
    if valid_until.ymd().0 > 9999 {
        return Err(usage(format!(
            "--valid-days {} from {date} runs past the year 9999",
            args.valid_days
        )));
    }
    let store = if args.install || args.check {
        Some(store_from(args.calibrations.as_ref())?)
    } else {
        None
    };
    let (policy, measured_with_correction) = if args.check {
        let store = store.clone().context("no calibration store")?;
        let cal = store
            .lookup(&args.probe)
            .with_context(|| format!("looking up the calibration of probe {:?}", args.probe))?
            .with_context(|| {
                format!(
                    "--check: probe {:?} has no calibration in {}",
                    args.probe,
                    store.dir().display()
                )
            })?;
        (
            // Applied through the store, as the monitor would: a run whose
            // probe reports another carrier or beam angle than the
            // calibration was made under is refused, not corrected on the
            // wrong scale.
            CalibrationPolicy::Store(store),
            Some(VelocityCorrection {
                gain: cal.gain,
                offset_cm_s: cal.offset_cm_s,
            }),
        )
    } else {
        (CalibrationPolicy::Raw, None)
    };

    let mut runs = Vec::with_capacity(args.runs.len());
    for r in &args.runs {
        let m = measure_recording(&r.file, &args.probe, mode, policy.clone())?;
        eprintln!(
            "odm calibrate: {}: reference {:.2} cm/s, measured {:.2} cm/s ({} {}); I/Q image {}",
            r.file.display(),
            r.reference_cm_s,
            m.measured_cm_s,
            m.points,
            if mode == MeasurementMode::Steady {
                "envelope points"
            } else {
                "beats"
            },
            m.iq_image_db.map_or(
                "not measured (under 4 s of clean signal, or a dead channel)".to_string(),
                |db| { format!("{db:.1} dB") }
            )
        );
        runs.push((r, m));
    }
    // One gain for runs under two velocity scales would hold for neither.
    let conditions = runs.first().map(|(_, m)| m.conditions);
    if let Some(first) = conditions
        && let Some((r, m)) = runs.iter().find(|(_, m)| !m.conditions.same_scale(&first))
    {
        bail!(
            "run {} was recorded at {} but run {} at {first}: record every run with the probe reporting the same carrier and beam angle",
            r.file.display(),
            m.conditions,
            args.runs[0].file.display()
        );
    }
    let reference: Vec<f64> = runs.iter().map(|(r, _)| r.reference_cm_s).collect();
    let measured: Vec<f64> = runs.iter().map(|(_, m)| m.measured_cm_s).collect();
    let fit =
        fit_linear(&reference, &measured).context("fitting measured against reference velocity")?;
    let limits = AcceptanceLimits {
        gain_tolerance: args.gain_tolerance,
        residual_limit_cm_s: args.residual_limit_cm_s,
        residual_limit_pct: args.residual_limit_pct,
        offset_tolerance_cm_s: args.offset_tolerance_cm_s,
    };
    let acceptance = assess(&fit, &reference, &limits);
    let gain_ci95 = fit
        .gain_ci95
        .context("the fit has no confidence interval (fewer than 3 runs)")?;
    // A run through a receive path with a dead channel measured through a
    // broken interface: the calibration FAILs, whatever its numbers.
    let faulty_runs: Vec<String> = runs
        .iter()
        .filter(|(_, m)| m.iq_channel_fault)
        .map(|(r, _)| r.file.display().to_string())
        .collect();
    let mut cal = Calibration {
        format: CALIBRATION_FORMAT.into(),
        version: CALIBRATION_VERSION,
        probe_serial: args.probe.clone(),
        date,
        valid_until,
        engineer: args.engineer.clone(),
        phantom: args.phantom.clone(),
        mode,
        gain: fit.gain,
        offset_cm_s: fit.offset_cm_s,
        gain_ci95: [gain_ci95.0, gain_ci95.1],
        r2: fit.r2,
        residuals_cm_s: fit.residuals_cm_s.clone(),
        gain_within_tolerance: acceptance.gain_ok,
        offset_within_tolerance: Some(acceptance.offset_ok),
        pass: acceptance.pass && faulty_runs.is_empty(),
        limits: CalibrationLimits {
            gain_tolerance: limits.gain_tolerance,
            residual_limit_cm_s: limits.residual_limit_cm_s,
            residual_limit_pct: limits.residual_limit_pct,
            offset_tolerance_cm_s: Some(limits.offset_tolerance_cm_s),
        },
        runs: runs
            .iter()
            .enumerate()
            .map(|(i, (r, m))| CalibrationRun {
                recording: r.file.display().to_string(),
                reference_cm_s: r.reference_cm_s,
                measured_cm_s: m.measured_cm_s,
                residual_cm_s: fit.residuals_cm_s.get(i).copied().unwrap_or(f64::NAN),
                residual_limit_cm_s: acceptance
                    .residual_limits_cm_s
                    .get(i)
                    .copied()
                    .unwrap_or(0.0),
                within_limit: acceptance.residual_ok.get(i).copied().unwrap_or(false),
                points: m.points,
                iq_image_db: m.iq_image_db,
                iq_channel_fault: m.iq_channel_fault,
                sha256: Some(m.sha256.clone()),
            })
            .collect(),
        measured_with_correction,
        software: software(),
        conditions,
    };
    // A gain or offset outside what any probe could need (a wrong fixture
    // angle, mislabelled runs, a broken probe) cannot be installed, but it
    // is a result: the FAIL certificate and its record are still written.
    let implausible = match cal.check() {
        Ok(()) => None,
        Err(what) => {
            let plausible_copy = Calibration {
                gain: 1.0,
                offset_cm_s: 0.0,
                ..cal.clone()
            };
            plausible_copy.check().map_err(|_| {
                anyhow::anyhow!(
                    "the calibration of probe {:?} is unusable: {what}",
                    args.probe
                )
            })?;
            cal.pass = false;
            Some(what)
        }
    };

    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating output directory {}", args.out.display()))?;
    let json_path = args.out.join("calibration.json");
    if implausible.is_none() {
        odm_device_io::calibration::write_calibration_file(&json_path, &cal)
    } else {
        // The record of a result no store would accept: written as it is.
        std::fs::write(&json_path, cal.to_json()).map_err(|source| {
            odm_device_io::calibration::CalibrationError::Write {
                path: json_path.clone(),
                source,
            }
        })
    }
    .with_context(|| format!("writing {}", json_path.display()))?;
    // Whether this calibration could be applied at all, install or not.
    let linear = acceptance.residual_ok.iter().all(|&ok| ok);
    let refusal = if let Some(what) = &implausible {
        Some(what.clone())
    } else if !faulty_runs.is_empty() {
        Some(format!(
            "one I/Q channel of the probe interface was dead or broken in {}: service the interface and repeat the runs",
            faulty_runs.join(", ")
        ))
    } else if !linear {
        Some("residuals exceed their limits, so a straight-line correction would not make this probe read true".into())
    } else {
        None
    };
    // The certificate says whether the calibration was installed. One that
    // says so is written before the store changes, so a certificate that
    // cannot be written stops the run with nothing installed; should the
    // install then fail, it is rewritten to say so (or removed).
    let cert_path = args.out.join("certificate.html");
    let write_cert = |installation: &Installation| {
        std::fs::write(&cert_path, calib_cert::certificate_html(&cal, installation))
            .with_context(|| format!("writing {}", cert_path.display()))
    };
    let mut install_error = None;
    let mut installed_at = None;
    match (&refusal, args.check, args.install, &store) {
        (_, true, _, _) => write_cert(&Installation::Check)?,
        (Some(why), ..) => write_cert(&Installation::Refused(why.clone()))?,
        (None, false, true, Some(store)) => {
            write_cert(&Installation::Installed(store.dir().display().to_string()))?;
            match store.save(&cal) {
                Ok(path) => installed_at = Some(path),
                Err(e) => {
                    if let Err(w) =
                        write_cert(&Installation::Refused(format!("installing failed: {e}")))
                    {
                        let _ = std::fs::remove_file(&cert_path);
                        eprintln!("odm calibrate: {w:#}; the certificate is removed");
                    }
                    install_error = Some(e);
                }
            }
        }
        _ => write_cert(&Installation::NotRequested)?,
    }

    println!("{}", calib_cert::summary_text(&cal));
    println!("written: {}", json_path.display());
    println!("written: {}", cert_path.display());
    if let Some(path) = installed_at {
        println!("installed: {}", path.display());
    }
    if let Some(e) = install_error {
        return Err(anyhow::Error::new(e).context("installing the calibration"));
    }

    if args.install
        && let Some(store) = &store
        && let Some(why) = &refusal
    {
        eprintln!("odm calibrate: not installed: {why}");
        // The store still holds the probe's earlier calibration, which
        // the monitor and `odm analyse` go on applying.
        if let Ok(Some(old)) = store.lookup(&args.probe) {
            eprintln!(
                "odm calibrate: probe {:?}'s calibration of {} (gain {:.4}, offset {:+.2} cm/s, {}) stays installed in the store {} and the monitor and `odm analyse` still apply it; remove its file there if the probe is withdrawn",
                args.probe,
                old.date,
                old.gain,
                old.offset_cm_s,
                if old.pass { "PASS" } else { "FAIL" },
                store.dir().display()
            );
        }
    }
    if !cal.pass {
        let mut reasons = Vec::new();
        if let Some(what) = &implausible {
            reasons.push(what.clone());
            let (lo, hi) = measured
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
                    (lo.min(v), hi.max(v))
                });
            let (rlo, rhi) = reference
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
                    (lo.min(v), hi.max(v))
                });
            reasons.push(format!(
                "the runs measured {lo:.1}–{hi:.1} cm/s for references {rlo:.1}–{rhi:.1} cm/s: check the runs' velocities, the fixture angle and the probe"
            ));
        } else {
            if !acceptance.gain_ok {
                reasons.push(format!("gain {:.4}", cal.gain));
            }
            if !acceptance.offset_ok {
                reasons.push(format!("offset {:+.2} cm/s", cal.offset_cm_s));
            }
            if !linear {
                reasons.push("residuals over limit".into());
            }
            if !faulty_runs.is_empty() {
                reasons.push("a dead or broken I/Q channel".into());
            }
        }
        bail!(
            "probe {:?} FAILED calibration ({}); certificate {}",
            args.probe,
            reasons.join("; "),
            cert_path.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_argument_splits_at_the_last_colon() {
        assert_eq!(
            parse_run("a:b/run.odmrec:50.5"),
            Ok(RunArg {
                file: PathBuf::from("a:b/run.odmrec"),
                reference_cm_s: 50.5
            })
        );
        assert!(parse_run("run.odmrec").is_err());
        assert!(parse_run(":50").is_err());
        assert!(parse_run("run.odmrec:fast").is_err());
        assert!(parse_run("run.odmrec:-5").is_err());
        assert!(parse_run("run.odmrec:NaN").is_err());
    }

    /// Writes a steady phantom recording from the virtual probe.
    pub(crate) fn write_phantom(
        path: &Path,
        v_cm_s: f64,
        gain_error: f64,
        serial: &str,
        seconds: f64,
    ) {
        write_recording(
            path,
            odm_simulator::SimConfig {
                seed: (v_cm_s * 10.0) as u64,
                duration_s: Some(seconds),
                phantom_cm_s: Some(v_cm_s),
                probe_gain_error: gain_error,
                probe_serial: serial.into(),
                ..Default::default()
            },
        );
    }

    /// Writes a recording of the virtual probe with `cfg`.
    fn write_recording(path: &Path, cfg: odm_simulator::SimConfig) {
        let mut probe = odm_simulator::VirtualProbe::new(cfg).unwrap();
        let start = odm_device_io::RecordingStart::new("2026-11-30T12:00:00Z", "test", 0);
        let info = probe.probe_info().clone();
        let mut w = odm_device_io::RecordingWriter::create(path, &start, &info).unwrap();
        while let Some(p) = probe.next_payload() {
            w.write_payload(&p).unwrap();
        }
        w.finish().unwrap();
    }

    #[test]
    fn steady_runs_measure_the_phantom_velocity() {
        let dir = std::env::temp_dir().join(format!("odm-cal-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (v, g) in [(20.0, 0.0), (50.0, 0.0), (100.0, 0.07), (150.0, 0.0)] {
            let path = dir.join(format!("p{v}.odmrec"));
            write_phantom(&path, v, g, "CAL-1", 2.0);
            let m = measure_recording(
                &path,
                "CAL-1",
                MeasurementMode::Steady,
                CalibrationPolicy::Raw,
            )
            .unwrap();
            let expect = v * (1.0 + g);
            eprintln!(
                "v {v} gain error {g}: measured {} ({} points)",
                m.measured_cm_s, m.points
            );
            // The simulator's phantom edge is exact. A calibration fit
            // absorbs a constant envelope bias as offset, so this only
            // checks the scale is right (a wrong angle, carrier or sample
            // rate would be off by far more than 5 cm/s or 5%).
            let band = f64::max(5.0, 0.05 * expect);
            assert!(
                (m.measured_cm_s - expect).abs() <= band,
                "{v}: {} vs {expect}",
                m.measured_cm_s
            );
            let e = measure_recording(
                &path,
                "OTHER",
                MeasurementMode::Steady,
                CalibrationPolicy::Raw,
            )
            .unwrap_err();
            assert!(format!("{e:#}").contains("CAL-1"), "{e:#}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A run states the interface's I/Q image; a phantom whose echo
    /// arrives in the reverse half (string running the other way, or I and
    /// Q swapped) is refused with that reason, not "too few points".
    #[test]
    fn runs_state_the_iq_image_and_a_reversed_phantom_is_named() {
        let dir = std::env::temp_dir().join(format!("odm-cal-iq-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let phantom = |name: &str, gain_error: f64, phase_deg: f64, swapped: bool| {
            let path = dir.join(name);
            write_recording(
                &path,
                odm_simulator::SimConfig {
                    seed: 4,
                    duration_s: Some(6.0),
                    phantom_cm_s: Some(60.0),
                    iq_gain_error: gain_error,
                    iq_phase_error_deg: phase_deg,
                    iq_swapped: swapped,
                    probe_serial: "CAL-2".into(),
                    ..Default::default()
                },
            );
            measure_recording(
                &path,
                "CAL-2",
                MeasurementMode::Steady,
                CalibrationPolicy::Raw,
            )
        };
        let balanced = phantom("balanced.odmrec", 0.0, 0.0, false).unwrap();
        assert!(
            balanced.iq_image_db.is_some_and(|db| db < -50.0),
            "{balanced:?}"
        );
        // Q = 1.1·(Q·cos 5° + I·sin 5°): the image 23.8 dB under the echo.
        let skewed = phantom("skewed.odmrec", 0.1, 5.0, false).unwrap();
        let db = skewed.iq_image_db.unwrap();
        assert!((-25.5..-22.0).contains(&db), "{db}");
        assert!((skewed.measured_cm_s - balanced.measured_cm_s).abs() < 1.0);
        let e = phantom("swapped.odmrec", 0.0, 0.0, true).unwrap_err();
        let msg = format!("{e:#}");
        assert!(
            msg.contains("reverse direction")
                && msg.contains("or 272 cm/s (aliased)")
                && msg.contains("swapped.odmrec"),
            "{msg}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A run whose probe reported another beam angle half-way holds two
    /// velocity scales: refused, naming both; a run under one is measured
    /// and states its conditions.
    #[test]
    fn a_run_that_changes_beam_angle_is_refused() {
        let dir = std::env::temp_dir().join(format!("odm-cal-angle-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("angle.odmrec");
        let cfg = odm_simulator::SimConfig {
            seed: 5,
            duration_s: Some(4.0),
            phantom_cm_s: Some(60.0),
            probe_serial: "CAL-A".into(),
            ..Default::default()
        };
        let mut probe = odm_simulator::VirtualProbe::new(cfg).unwrap();
        let start = odm_device_io::RecordingStart::new("2026-11-30T12:00:00Z", "test", 0);
        let info = probe.probe_info().clone();
        let mut w = odm_device_io::RecordingWriter::create(&path, &start, &info).unwrap();
        let mut blocks = 0;
        while let Some(p) = probe.next_payload() {
            if matches!(p, odm_device_io::Payload::Iq(_)) {
                blocks += 1;
                if blocks == 200 {
                    let mut turned = info.clone();
                    turned.beam_angle_cdeg = 6000;
                    w.write_payload(&odm_device_io::Payload::ProbeInfo(turned))
                        .unwrap();
                }
            }
            w.write_payload(&p).unwrap();
        }
        w.finish().unwrap();
        let e = measure_recording(
            &path,
            "CAL-A",
            MeasurementMode::Steady,
            CalibrationPolicy::Raw,
        )
        .unwrap_err();
        let msg = format!("{e:#}");
        assert!(
            msg.contains("reported 4.000 MHz, 45.00° and then 4.000 MHz, 60.00°"),
            "{msg}"
        );
        let one = dir.join("one.odmrec");
        tests::write_phantom(&one, 60.0, 0.0, "CAL-A", 2.0);
        let m = measure_recording(
            &one,
            "CAL-A",
            MeasurementMode::Steady,
            CalibrationPolicy::Raw,
        )
        .unwrap();
        assert_eq!(
            m.conditions,
            ProbeConditions {
                sample_rate_hz: 20_000,
                carrier_hz: 4_000_000,
                beam_angle_cdeg: 4500
            }
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_run_without_probe_info_is_refused() {
        // Magic and IQ blocks only: no serial, no velocity scale.
        let dir = std::env::temp_dir().join(format!("odm-cal-noinfo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("noinfo.odmrec");
        let mut bytes = odm_device_io::MAGIC.to_vec();
        let mut enc = odm_device_io::Encoder::new();
        for k in 0..50u64 {
            let block = odm_device_io::IqBlock {
                first_sample: k * 200,
                flags: 0,
                samples: vec![[100, -100]; 200],
            };
            enc.encode(&odm_device_io::Payload::Iq(block), &mut bytes)
                .unwrap();
        }
        std::fs::write(&path, bytes).unwrap();
        let e = measure_recording(&path, "P", MeasurementMode::Steady, CalibrationPolicy::Raw)
            .unwrap_err();
        let msg = format!("{e:#}");
        assert!(
            msg.contains("no PROBE_INFO") && msg.contains("noinfo.odmrec"),
            "{msg}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
