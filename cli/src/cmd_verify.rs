//! `odm verify`: end-to-end acceptance test of an installed monitor's
//! receive path. The virtual probe plays a known schedule of heart rate,
//! stroke volume and FTc into a pseudo-terminal (or out of a serial port,
//! through a loopback cable, into another); the serial source, the decoder
//! and the DSP pipeline measure it; each schedule segment's medians are
//! compared with the simulator's exact truth and printed as a PASS/FAIL
//! table. Exit status 1 when any check fails. Limits: `docs/calibration.md`.

use crate::UsageError;
use crate::calib_pty::open_pty_pair;
use crate::calib_stream::{CalibrationPolicy, StreamAnalyser, median};
use anyhow::{Context, bail};
use odm_device_io::calibration::CalibrationStore;
use odm_device_io::{
    ByteSource, DEFAULT_BAUD, Decoder, Encoder, SerialSource, SourceRead, open_serial_writer,
};
use odm_dsp::haemo::SvModel;
use odm_dsp::pipeline::PipelineConfig;
use odm_simulator::{ScheduleSegment, SimConfig, TruthBeat, VirtualProbe};
use serde::Deserialize;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Arguments of `odm verify`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Serial port the virtual probe writes to (loopback-cable test; needs --in-port).
    #[arg(long, value_name = "PORT", requires = "in_port")]
    pub out_port: Option<String>,
    /// Serial port the monitor reads from (the other end of the loopback cable).
    #[arg(long, value_name = "PORT", requires = "out_port")]
    pub in_port: Option<String>,
    /// `default`, or a JSON schedule file (`{"segments": [{"duration_s": …,
    /// "hr_bpm": …, "sv_ml": …, "ftc_ms": …}, …]}`).
    #[arg(long, value_name = "default|FILE", default_value = "default")]
    pub schedule: String,
    /// Total length, s: every segment is scaled in proportion (default: the schedule's own).
    #[arg(long, value_name = "S")]
    pub duration: Option<f64>,
    /// Stream as fast as the link takes it instead of in real time.
    #[arg(long)]
    pub fast: bool,
    /// Simulator seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Signal-to-noise ratio of the virtual probe, dB.
    #[arg(long, default_value_t = 20.0)]
    pub snr_db: f64,
    /// Baud rate for --out-port/--in-port.
    #[arg(long, default_value_t = DEFAULT_BAUD)]
    pub baud: u32,
    /// Calibration store to look the virtual probe up in, as the monitor does
    /// (default: the default store).
    #[arg(long, value_name = "DIR", conflicts_with = "no_calibration")]
    pub calibrations: Option<PathBuf>,
    /// Apply no probe calibration.
    #[arg(long)]
    pub no_calibration: bool,
    /// Also write the result as JSON to this file (for the installation record).
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
}

/// One segment of a verification schedule.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Segment {
    /// How long it lasts, s.
    pub duration_s: f64,
    /// Mean heart rate, 1/min.
    pub hr_bpm: f64,
    /// Mean stroke volume, ml.
    pub sv_ml: f64,
    /// Mean corrected flow time (Bazett), ms.
    pub ftc_ms: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScheduleFile {
    segments: Vec<Segment>,
}

/// The default schedule: a resting adult, a hypovolaemic tachycardia, and
/// the same patient after fluid — 75 s in all.
pub fn default_schedule() -> Vec<Segment> {
    vec![
        Segment {
            duration_s: 25.0,
            hr_bpm: 60.0,
            sv_ml: 70.0,
            ftc_ms: 360.0,
        },
        Segment {
            duration_s: 25.0,
            hr_bpm: 110.0,
            sv_ml: 45.0,
            ftc_ms: 310.0,
        },
        Segment {
            duration_s: 25.0,
            hr_bpm: 80.0,
            sv_ml: 85.0,
            ftc_ms: 380.0,
        },
    ]
}

/// Shortest segment accepted: enough for the settling time and a handful of beats.
const MIN_SEGMENT_S: f64 = 6.0;
/// Beats in the first part of a segment are not judged: the beat that spans
/// the step and the detector's adaptation to the new rate. This long, or a
/// third of the segment if shorter.
const SETTLE_S: f64 = 4.0;
/// Serial probe the virtual probe reports.
const VERIFY_SERIAL: &str = "VERIFY-SIM";

/// Acceptance limits of a verification (documented in docs/calibration.md).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// |median HR error|, 1/min.
    pub hr_bpm: f64,
    /// |median FTc error|, ms.
    pub ftc_ms: f64,
    /// |median SV error|, % of true.
    pub sv_pct: f64,
    /// |median PV error|, % of true.
    pub pv_pct: f64,
    /// |accepted − true beats|, % of true beats (at least one beat allowed).
    pub beats_pct: f64,
}

/// The default limits: the DSP's accuracy goals with a margin for a short
/// segment's medians.
pub const LIMITS: Limits = Limits {
    hr_bpm: 2.0,
    ftc_ms: 10.0,
    sv_pct: 5.0,
    pv_pct: 5.0,
    beats_pct: 10.0,
};

fn load_schedule(spec: &str) -> anyhow::Result<Vec<Segment>> {
    let segments = if spec == "default" {
        default_schedule()
    } else {
        let text =
            std::fs::read_to_string(spec).with_context(|| format!("reading schedule {spec}"))?;
        let file: ScheduleFile = serde_json::from_str(&text)
            .with_context(|| format!("schedule {spec} is not a valid schedule"))?;
        file.segments
    };
    if segments.is_empty() {
        bail!("schedule {spec} has no segments");
    }
    for (i, s) in segments.iter().enumerate() {
        let n = i + 1;
        let ok = |x: f64, lo: f64, hi: f64| x.is_finite() && x >= lo && x <= hi;
        if !ok(s.duration_s, MIN_SEGMENT_S, 3600.0) {
            bail!(
                "schedule {spec}, segment {n}: duration_s {} is outside {MIN_SEGMENT_S}..=3600",
                s.duration_s
            );
        }
        if !ok(s.hr_bpm, 40.0, 180.0) {
            bail!(
                "schedule {spec}, segment {n}: hr_bpm {} is outside 40..=180",
                s.hr_bpm
            );
        }
        if !ok(s.sv_ml, 10.0, 200.0) {
            bail!(
                "schedule {spec}, segment {n}: sv_ml {} is outside 10..=200",
                s.sv_ml
            );
        }
        if !ok(s.ftc_ms, 200.0, 500.0) {
            bail!(
                "schedule {spec}, segment {n}: ftc_ms {} is outside 200..=500",
                s.ftc_ms
            );
        }
    }
    Ok(segments)
}

/// Segments with their durations scaled so they add up to `total_s`.
fn scaled(segments: &[Segment], total_s: Option<f64>) -> anyhow::Result<Vec<Segment>> {
    let own: f64 = segments.iter().map(|s| s.duration_s).sum();
    let Some(total) = total_s else {
        return Ok(segments.to_vec());
    };
    let shortest = total / own
        * segments
            .iter()
            .map(|s| s.duration_s)
            .fold(f64::INFINITY, f64::min);
    if !(total.is_finite() && shortest >= MIN_SEGMENT_S) {
        // A value of the option out of its range: a usage error (exit 2).
        return Err(UsageError(format!(
            "--duration {total}: the shortest of the {} segments would last {shortest:.1} s; each needs at least {MIN_SEGMENT_S} s",
            segments.len()
        ))
        .into());
    }
    Ok(segments
        .iter()
        .map(|s| Segment {
            duration_s: s.duration_s * total / own,
            ..*s
        })
        .collect())
}

/// The virtual probe's configuration for a schedule.
fn sim_config(segments: &[Segment], seed: u64, snr_db: f64) -> SimConfig {
    let mut start_s = 0.0;
    let schedule = segments
        .iter()
        .map(|s| {
            let seg = ScheduleSegment {
                start_s,
                hr_bpm: Some(s.hr_bpm),
                sv_ml: Some(s.sv_ml),
                ftc_ms: Some(s.ftc_ms),
                pv_cm_s: None,
            };
            start_s += s.duration_s;
            seg
        })
        .collect();
    let first = segments.first().copied().unwrap_or(Segment {
        duration_s: 0.0,
        hr_bpm: 75.0,
        sv_ml: 70.0,
        ftc_ms: 350.0,
    });
    SimConfig {
        seed,
        duration_s: Some(start_s),
        probe_serial: VERIFY_SERIAL.into(),
        hr_bpm: first.hr_bpm,
        sv_ml: first.sv_ml,
        ftc_ms: first.ftc_ms,
        snr_db: Some(snr_db),
        schedule,
        ..SimConfig::default()
    }
}

/// What the writer thread reports when it is done.
struct Played {
    truth: Vec<TruthBeat>,
}

/// Streams the virtual probe into `out`, in real time unless `fast`.
fn play(
    cfg: SimConfig,
    mut out: Box<dyn Write + Send>,
    fast: bool,
    written: Arc<AtomicU64>,
    finished: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<(Played, Box<dyn Write + Send>)> {
    let result = (|| {
        let fs = f64::from(cfg.sample_rate_hz);
        let mut probe = VirtualProbe::new(cfg).context("configuring the virtual probe")?;
        let mut enc = Encoder::new();
        let mut bytes = Vec::with_capacity(8192);
        let mut truth = Vec::new();
        let t0 = Instant::now();
        while let Some(payload) = probe.next_payload() {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            bytes.clear();
            enc.encode(&payload, &mut bytes)
                .context("encoding a frame")?;
            out.write_all(&bytes).context("writing to the link")?;
            written.fetch_add(bytes.len() as u64, Ordering::Relaxed);
            truth.extend(probe.take_truth_beats());
            if !fast {
                // Real time: the interface sends a block when its last sample is taken.
                let due = Duration::from_secs_f64(probe.samples_generated() as f64 / fs);
                if let Some(wait) = due.checked_sub(t0.elapsed()) {
                    std::thread::sleep(wait);
                }
            }
        }
        out.flush().context("flushing the link")?;
        truth.extend(probe.take_truth_beats());
        Ok(Played { truth })
    })();
    finished.store(true, Ordering::Release);
    result.map(|p| (p, out))
}

/// One row of the verification table.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// Segment number (1-based), or 0 for the whole run.
    pub segment: usize,
    /// What is compared.
    pub quantity: &'static str,
    /// True value.
    pub truth: f64,
    /// Measured value (NaN when nothing was measured).
    pub measured: f64,
    /// Error as shown (absolute or %).
    pub error: f64,
    /// The limit on |error|.
    pub limit: f64,
    /// Unit of error and limit.
    pub unit: &'static str,
    /// Within the limit.
    pub pass: bool,
}

fn check(
    segment: usize,
    quantity: &'static str,
    truth: f64,
    measured: f64,
    relative: bool,
    limit: f64,
) -> Check {
    let error = if relative {
        100.0 * (measured - truth) / truth
    } else {
        measured - truth
    };
    Check {
        segment,
        quantity,
        truth,
        measured,
        error,
        limit,
        unit: if relative { "%" } else { "" },
        pass: error.is_finite() && error.abs() <= limit,
    }
}

/// Compares the measured beats with truth, segment by segment.
pub fn evaluate(
    segments: &[Segment],
    truth: &[TruthBeat],
    measured: &[odm_dsp::Beat],
    limits: &Limits,
) -> Vec<Check> {
    let mut rows = Vec::new();
    let mut start = 0.0;
    for (i, seg) in segments.iter().enumerate() {
        let n = i + 1;
        let from = start + SETTLE_S.min(seg.duration_s / 3.0);
        let to = start + seg.duration_s;
        start = to;
        let t: Vec<&TruthBeat> = truth
            .iter()
            .filter(|b| b.accepted && b.onset_s >= from && b.onset_s < to)
            .collect();
        let m: Vec<&odm_dsp::Beat> = measured
            .iter()
            .filter(|b| b.accepted && b.onset_s >= from && b.onset_s < to)
            .collect();
        let med_t =
            |f: &dyn Fn(&TruthBeat) -> f64| median(&mut t.iter().map(|b| f(b)).collect::<Vec<_>>());
        let med_m = |f: &dyn Fn(&odm_dsp::Beat) -> Option<f64>| {
            median(&mut m.iter().filter_map(|b| f(b)).collect::<Vec<_>>()).unwrap_or(f64::NAN)
        };
        let n_true = t.len() as f64;
        let beat_limit = f64::max(100.0 / n_true.max(1.0), limits.beats_pct);
        rows.push(check(
            n,
            "accepted beats",
            n_true,
            m.len() as f64,
            true,
            beat_limit,
        ));
        if let Some(hr) = med_t(&|b| b.hr_bpm) {
            rows.push(check(
                n,
                "HR 1/min",
                hr,
                med_m(&|b| Some(b.hr_bpm)),
                false,
                limits.hr_bpm,
            ));
        }
        if let Some(ftc) = med_t(&|b| b.ftc_ms) {
            rows.push(check(
                n,
                "FTc ms",
                ftc,
                med_m(&|b| Some(b.ftc_ms)),
                false,
                limits.ftc_ms,
            ));
        }
        if let Some(sv) = med_t(&|b| b.sv_ml) {
            rows.push(check(
                n,
                "SV ml",
                sv,
                med_m(&|b| b.sv_ml),
                true,
                limits.sv_pct,
            ));
        }
        if let Some(pv) = med_t(&|b| b.pv_cm_s) {
            rows.push(check(
                n,
                "PV cm/s",
                pv,
                med_m(&|b| Some(b.pv_cm_s)),
                true,
                limits.pv_pct,
            ));
        }
    }
    rows
}

/// The table as printed.
pub fn table_text(rows: &[Check]) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<8} {:<15} {:>10} {:>10} {:>9} {:>8}  result",
        "segment", "quantity", "true", "measured", "error", "limit"
    );
    for r in rows {
        let seg = if r.segment == 0 {
            "all".to_string()
        } else {
            r.segment.to_string()
        };
        // Nothing measured is a dash, not "NaN".
        let shown = |v: f64| {
            if v.is_finite() {
                format!("{v:.2}")
            } else {
                "—".to_string()
            }
        };
        let _ = writeln!(
            s,
            "{:<8} {:<15} {:>10} {:>10} {:>8}{:<1} {:>7}{:<1}  {}",
            seg,
            r.quantity,
            shown(r.truth),
            shown(r.measured),
            shown(r.error),
            r.unit,
            format!("±{}", (r.limit * 10.0).round() / 10.0),
            r.unit,
            if r.pass { "PASS" } else { "FAIL" }
        );
    }
    s
}

/// What a JSON report states besides the rows.
struct ReportContext<'a> {
    link: &'a str,
    segments: &'a [Segment],
    seed: u64,
    snr_db: f64,
    fast: bool,
    applied: Option<&'a (String, odm_dsp::pipeline::ProbeCalibration)>,
    rows: &'a [Check],
}

/// The `--report` file: the run's settings, every check, and the verdict.
/// Unmeasured values are `null` (JSON has no NaN).
fn report_json(ctx: &ReportContext<'_>) -> String {
    let num = |x: f64| {
        if x.is_finite() {
            serde_json::json!(x)
        } else {
            serde_json::Value::Null
        }
    };
    let rows: Vec<serde_json::Value> = ctx
        .rows
        .iter()
        .map(|r| {
            serde_json::json!({
                "segment": if r.segment == 0 { serde_json::json!("all") } else { serde_json::json!(r.segment) },
                "quantity": r.quantity,
                "true": num(r.truth),
                "measured": num(r.measured),
                "error": num(r.error),
                "unit": r.unit,
                "limit": r.limit,
                "pass": r.pass,
            })
        })
        .collect();
    let segments: Vec<serde_json::Value> = ctx
        .segments
        .iter()
        .map(|s| {
            serde_json::json!({
                "duration_s": s.duration_s, "hr_bpm": s.hr_bpm, "sv_ml": s.sv_ml, "ftc_ms": s.ftc_ms
            })
        })
        .collect();
    let v = serde_json::json!({
        "type": "odm-verify",
        "software": format!("odm {}", env!("CARGO_PKG_VERSION")),
        "date": odm_device_io::calibration::CalDate::today_utc().to_string(),
        "link": ctx.link,
        "fast": ctx.fast,
        "seed": ctx.seed,
        "snr_db": ctx.snr_db,
        "schedule": segments,
        "calibration_applied": ctx.applied.map(|(serial, c)| serde_json::json!({
            "probe_serial": serial, "gain": c.gain, "offset_cm_s": c.offset_cm_s
        })),
        "checks": rows,
        "pass": ctx.rows.iter().all(|r| r.pass),
    });
    let mut text = serde_json::to_string_pretty(&v).unwrap_or_default();
    text.push('\n');
    text
}

/// Runs `odm verify`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let segments = scaled(&load_schedule(&args.schedule)?, args.duration)?;
    if !(args.snr_db.is_finite() && (0.0..=60.0).contains(&args.snr_db)) {
        return Err(UsageError(format!("--snr-db {} is outside 0..=60", args.snr_db)).into());
    }
    let cfg = sim_config(&segments, args.seed, args.snr_db);
    let total_s: f64 = segments.iter().map(|s| s.duration_s).sum();
    let policy = if args.no_calibration {
        CalibrationPolicy::Raw
    } else {
        CalibrationPolicy::Store(match &args.calibrations {
            Some(d) => CalibrationStore::new(d),
            None => CalibrationStore::open_default().context("finding the calibration store")?,
        })
    };
    let pipeline_cfg = PipelineConfig {
        // The simulator turns SV into stroke distance with its aortic
        // diameter and descending fraction; measure SV with the same model.
        sv_model: SvModel::MeasuredDiameter {
            diameter_mm: cfg.aortic_diameter_mm,
            descending_fraction: cfg.descending_flow_fraction,
        },
        ..PipelineConfig::default()
    };

    // The link: a pty pair by default, or a loopback cable.
    let (in_path, out, _pty): (
        String,
        Box<dyn Write + Send>,
        Option<crate::calib_pty::PtyPair>,
    ) = match (&args.out_port, &args.in_port) {
        (Some(o), Some(i)) => {
            let w = open_serial_writer(o, args.baud)
                .with_context(|| format!("opening --out-port {o}"))?;
            (i.clone(), Box::new(w), None)
        }
        _ => {
            let pty = open_pty_pair()?;
            let path = pty.slave_path.display().to_string();
            let master = pty
                .master
                .try_clone()
                .context("sharing the pseudo-terminal's master")?;
            (path, Box::new(master), Some(pty))
        }
    };
    let link = match &args.out_port {
        Some(o) => format!("{o} → {in_path} (loopback cable)"),
        None => format!("pseudo-terminal {in_path}"),
    };
    // Open the reading side before anything is written.
    let mut source = SerialSource::open(&in_path, args.baud)
        .with_context(|| format!("opening the receive side {in_path}"))?;
    eprintln!(
        "odm verify: {} segments, {total_s:.0} s of signal through {link}{}",
        segments.len(),
        if args.fast {
            ", as fast as possible"
        } else {
            ", in real time"
        }
    );

    let written = Arc::new(AtomicU64::new(0));
    let finished = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (w, f, s, fast) = (written.clone(), finished.clone(), stop.clone(), args.fast);
        std::thread::Builder::new()
            .name("virtual-probe".into())
            .spawn(move || play(cfg, out, fast, w, f, s))
            .context("starting the virtual-probe thread")?
    };

    let mut analyser = StreamAnalyser::new(pipeline_cfg, policy);
    analyser.out.keep_envelope = false;
    let mut decoder = Decoder::for_wire();
    let mut buf = vec![0u8; 16 * 1024];
    let mut quiet_since: Option<Instant> = None;
    // A link that delivers nothing for this long after the probe has
    // finished has lost the rest (a loopback cable dropping bytes).
    let drain_timeout = Duration::from_secs(2);
    let deadline = Instant::now()
        + Duration::from_secs_f64(if args.fast {
            60.0 + total_s
        } else {
            30.0 + 2.0 * total_s
        });
    let read_result: anyhow::Result<()> = (|| {
        loop {
            match source
                .read_chunk(&mut buf)
                .context("reading the receive side")?
            {
                SourceRead::Bytes(n) => {
                    quiet_since = None;
                    decoder.feed(buf.get(..n).unwrap_or(&[]));
                    while let Some(item) = decoder.next_item() {
                        analyser.handle(item)?;
                    }
                }
                SourceRead::End => break,
                SourceRead::Idle | SourceRead::Disconnected | SourceRead::Reconnected => {
                    if quiet_since.is_none() {
                        quiet_since = Some(Instant::now());
                    }
                }
            }
            if finished.load(Ordering::Acquire) {
                if decoder.counters().bytes_read >= written.load(Ordering::Relaxed) {
                    break;
                }
                if quiet_since.is_some_and(|q| q.elapsed() > drain_timeout) {
                    break;
                }
            }
            if Instant::now() > deadline {
                bail!("the receive side {in_path} did not deliver the stream in time");
            }
        }
        Ok(())
    })();
    stop.store(true, Ordering::Relaxed);
    let played = writer
        .join()
        .map_err(|_| anyhow::anyhow!("the virtual-probe thread panicked"))?;
    read_result?;
    let (played, _out) = played?;
    decoder.finish();
    while let Some(item) = decoder.next_item() {
        analyser.handle(item)?;
    }
    analyser.finish();

    match &analyser.applied {
        Some((serial, c)) => eprintln!(
            "odm verify: calibration of probe {serial} applied (gain {:.4}, offset {:.2} cm/s)",
            c.gain, c.offset_cm_s
        ),
        None => eprintln!("odm verify: no probe calibration applied"),
    }
    let beats = &analyser.out.beats;
    let mut reasons: Vec<(&str, usize)> = Vec::new();
    for b in beats.iter().filter(|b| !b.accepted) {
        let why = b.reject_reason.map_or("unstated", |r| r.as_str());
        match reasons.iter_mut().find(|(w, _)| *w == why) {
            Some((_, n)) => *n += 1,
            None => reasons.push((why, 1)),
        }
    }
    let reasons: Vec<String> = reasons.iter().map(|(w, n)| format!("{w} {n}")).collect();
    eprintln!(
        "odm verify: {} beats detected, {} accepted, {} true{}",
        beats.len(),
        beats.iter().filter(|b| b.accepted).count(),
        played.truth.len(),
        if reasons.is_empty() {
            String::new()
        } else {
            format!("; rejected: {}", reasons.join(", "))
        }
    );
    let c = decoder.counters();
    let sent = written.load(Ordering::Relaxed);
    let stream_errors = c.crc_errors
        + c.malformed
        + c.lost_frames
        + c.lost_samples
        + c.discontinuities
        + c.resync_bytes;
    let mut rows = vec![
        Check {
            segment: 0,
            quantity: "bytes received",
            truth: sent as f64,
            measured: c.bytes_read as f64,
            error: c.bytes_read as f64 - sent as f64,
            limit: 0.0,
            unit: "",
            pass: c.bytes_read == sent,
        },
        Check {
            segment: 0,
            quantity: "stream errors",
            truth: 0.0,
            measured: stream_errors as f64,
            error: stream_errors as f64,
            limit: 0.0,
            unit: "",
            pass: stream_errors == 0,
        },
    ];
    // The receive path's own faults, which velocities alone can miss: a
    // dead or zeroed channel (the flow is mirrored, velocities may still
    // read true), and the flow arriving in the reverse half (I and Q
    // swapped or conjugated on the link).
    let channel_fault = analyser.iq_channel_fault();
    let reverse_s = analyser.reverse_flow_s();
    rows.push(Check {
        segment: 0,
        quantity: "dead I/Q chan.",
        truth: 0.0,
        measured: f64::from(u8::from(channel_fault)),
        error: f64::from(u8::from(channel_fault)),
        limit: 0.0,
        unit: "",
        pass: !channel_fault,
    });
    rows.push(Check {
        segment: 0,
        quantity: "reverse flow s",
        truth: 0.0,
        measured: reverse_s,
        error: reverse_s,
        limit: 0.0,
        unit: "",
        pass: reverse_s == 0.0,
    });
    rows.extend(evaluate(
        &segments,
        &played.truth,
        &analyser.out.beats,
        &LIMITS,
    ));
    print!("{}", table_text(&rows));
    let failed = rows.iter().filter(|r| !r.pass).count();
    if let Some(path) = &args.report {
        let report = report_json(&ReportContext {
            link: &link,
            segments: &segments,
            seed: args.seed,
            snr_db: args.snr_db,
            fast: args.fast,
            applied: analyser.applied.as_ref(),
            rows: &rows,
        });
        std::fs::write(path, report)
            .with_context(|| format!("writing --report {}", path.display()))?;
    }
    if failed > 0 {
        let mut why = String::new();
        if channel_fault {
            why.push_str("; one I/Q channel is dead or broken on the link");
        }
        if reverse_s > 0.0 {
            why.push_str(&format!(
                "; the flow arrived in the reverse half for {reverse_s:.1} s (I and Q swapped or conjugated on the link)"
            ));
        }
        bail!(
            "verification FAILED: {failed} of {} checks outside their limits{why}",
            rows.len()
        );
    }
    println!(
        "verification PASSED: all {} checks within their limits",
        rows.len()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_scale_in_proportion_and_refuse_too_short_segments() {
        let s = scaled(&default_schedule(), Some(30.0)).unwrap();
        assert!(s.iter().all(|x| (x.duration_s - 10.0).abs() < 1e-9));
        assert!(scaled(&default_schedule(), Some(12.0)).is_err());
        assert_eq!(
            scaled(&default_schedule(), None).unwrap(),
            default_schedule()
        );
    }

    #[test]
    fn schedule_files_are_checked() {
        let dir = std::env::temp_dir().join(format!("odm-verify-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.json");
        std::fs::write(
            &good,
            r#"{"segments":[{"duration_s":20,"hr_bpm":50,"sv_ml":60,"ftc_ms":340}]}"#,
        )
        .unwrap();
        let s = load_schedule(good.to_str().unwrap()).unwrap();
        assert_eq!(
            s,
            vec![Segment {
                duration_s: 20.0,
                hr_bpm: 50.0,
                sv_ml: 60.0,
                ftc_ms: 340.0
            }]
        );
        let fast = dir.join("fast.json");
        std::fs::write(
            &fast,
            r#"{"segments":[{"duration_s":20,"hr_bpm":250,"sv_ml":60,"ftc_ms":340}]}"#,
        )
        .unwrap();
        let e = format!("{:#}", load_schedule(fast.to_str().unwrap()).unwrap_err());
        assert!(e.contains("segment 1") && e.contains("hr_bpm 250"), "{e}");
        let typo = dir.join("typo.json");
        std::fs::write(
            &typo,
            r#"{"segments":[{"duration":20,"hr_bpm":50,"sv_ml":60,"ftc_ms":340}]}"#,
        )
        .unwrap();
        assert!(load_schedule(typo.to_str().unwrap()).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn checks_judge_absolute_and_relative_errors() {
        let a = check(1, "HR 1/min", 60.0, 61.9, false, 2.0);
        assert!(a.pass && (a.error - 1.9).abs() < 1e-9);
        assert!(!check(1, "HR 1/min", 60.0, 62.1, false, 2.0).pass);
        let r = check(1, "SV ml", 70.0, 66.0, true, 5.0);
        assert!(!r.pass && (r.error + 5.714).abs() < 1e-3);
        assert!(!check(1, "SV ml", 70.0, f64::NAN, true, 5.0).pass);
    }

    /// The truth beats of a schedule, straight from the virtual probe.
    fn truth_of(segments: &[Segment]) -> Vec<TruthBeat> {
        let mut probe = VirtualProbe::new(sim_config(segments, 7, 30.0)).unwrap();
        let mut truth = Vec::new();
        while probe.next_payload().is_some() {
            truth.extend(probe.take_truth_beats());
        }
        truth
    }

    fn as_measured(t: &TruthBeat) -> odm_dsp::Beat {
        odm_dsp::Beat {
            index: t.index,
            onset_s: t.onset_s,
            peak_s: t.peak_s,
            end_s: t.end_s,
            next_onset_s: t.next_onset_s,
            ft_ms: t.ft_ms,
            cycle_s: t.cycle_s,
            hr_bpm: t.hr_bpm,
            ftc_ms: t.ftc_ms,
            sd_cm: t.sd_cm,
            pv_cm_s: t.pv_cm_s,
            ma_cm_s2: Some(t.ma_cm_s2),
            md_cm_min: t.md_cm_min,
            sv_ml: Some(t.sv_ml),
            sv_range_ml: None,
            co_l_min: Some(t.co_l_min),
            quality: 1.0,
            accepted: t.accepted,
            reject_reason: None,
            irregular_rhythm: false,
            ft_low_flow: false,
            completed_by_sample: 0,
        }
    }

    #[test]
    fn perfect_measurement_passes_and_each_kind_of_error_fails_its_own_row() {
        let segments = scaled(&default_schedule(), Some(30.0)).unwrap();
        let truth = truth_of(&segments);
        let exact: Vec<odm_dsp::Beat> = truth.iter().map(as_measured).collect();
        let rows = evaluate(&segments, &truth, &exact, &LIMITS);
        assert_eq!(rows.len(), 15, "5 checks × 3 segments");
        assert!(rows.iter().all(|r| r.pass), "{}", table_text(&rows));
        // The true medians follow the schedule (HR within the simulator's variability).
        for (seg, s) in segments.iter().enumerate() {
            let hr = rows
                .iter()
                .find(|r| r.segment == seg + 1 && r.quantity == "HR 1/min")
                .unwrap();
            assert!((hr.truth - s.hr_bpm).abs() < 0.05 * s.hr_bpm, "{hr:?}");
        }

        // SV 6% high everywhere: only the SV rows fail.
        let high_sv: Vec<_> = exact
            .iter()
            .map(|b| odm_dsp::Beat {
                sv_ml: b.sv_ml.map(|v| v * 1.06),
                ..b.clone()
            })
            .collect();
        let rows = evaluate(&segments, &truth, &high_sv, &LIMITS);
        for r in &rows {
            assert_eq!(r.pass, r.quantity != "SV ml", "{r:?}");
        }

        // FTc 12 ms long: only FTc fails.
        let long_ftc: Vec<_> = exact
            .iter()
            .map(|b| odm_dsp::Beat {
                ftc_ms: b.ftc_ms + 12.0,
                ..b.clone()
            })
            .collect();
        let rows = evaluate(&segments, &truth, &long_ftc, &LIMITS);
        for r in &rows {
            assert_eq!(r.pass, r.quantity != "FTc ms", "{r:?}");
        }

        // Every third beat rejected: the beat counts fail, the medians still pass.
        let thinned: Vec<_> = exact
            .iter()
            .enumerate()
            .map(|(i, b)| odm_dsp::Beat {
                accepted: i % 3 != 0,
                ..b.clone()
            })
            .collect();
        let rows = evaluate(&segments, &truth, &thinned, &LIMITS);
        for r in &rows {
            assert_eq!(r.pass, r.quantity != "accepted beats", "{r:?}");
        }

        // Nothing measured: everything fails, nothing panics.
        let rows = evaluate(&segments, &truth, &[], &LIMITS);
        assert!(rows.iter().all(|r| !r.pass));
    }
}
