//! `odm simulate`: the virtual probe (`odm-simulator`) to a recording with
//! its truth file, or in real time to a serial device or pseudo-terminal
//! (`shared/spec/cli.md`).
//!
//! `--out FILE.odmrec` writes the recording through device-io's
//! `RecordingWriter` (magic, `recording_started`, PROBE_INFO, frames) and
//! `FILE.truth.jsonl` beside it: one JSON object per complete cardiac cycle
//! with the beat field names of `analysis-output.md` (plus `ectopic` and the
//! shape parameters), as fast as the CPU allows.
//!
//! `--port PATH` streams the frames paced by the sample clock, as a probe
//! interface would; simulated gaps also skip frame sequence numbers (frames
//! lost on the link). It runs until `--duration` or Ctrl-C.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::UsageError;
use anyhow::{Context, bail};
use odm_device_io::{
    DEFAULT_BAUD, Encoder, Payload, RecordingStart, RecordingWriter, Sex, interrupt,
    open_serial_writer,
};
use odm_simulator::{ImpairmentSchedule, Interval, ScheduleSegment, SimConfig, VirtualProbe};

/// Patient sex for the `patient` annotation.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum SexArg {
    /// "female".
    Female,
    /// "male".
    Male,
    /// "unknown".
    Unknown,
}

/// Arguments of `odm simulate`.
#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["out", "port"])))]
pub struct Args {
    /// Recording to write (`.odmrec`); `FILE.truth.jsonl` is written beside it.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Serial device or pseudo-terminal to stream to in real time.
    #[arg(long)]
    pub port: Option<String>,
    /// Length in seconds (default 60 for --out, unlimited for --port).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Seed of every random choice: same arguments, same bytes.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Mean heart rate, 40–180 /min.
    #[arg(long, default_value_t = 75.0)]
    pub hr: f64,
    /// Mean stroke volume, ml (stroke distance = SV / aortic area).
    #[arg(long, default_value_t = 70.0)]
    pub sv_ml: f64,
    /// Descending-aortic diameter of the simulated patient, mm.
    #[arg(long, default_value_t = 24.0)]
    pub aortic_diameter_mm: f64,
    /// Mean corrected flow time (Bazett), ms.
    #[arg(long, default_value_t = 350.0)]
    pub ftc_ms: f64,
    /// Mean peak velocity, cm/s (default: from SD, FT and the beat shape).
    #[arg(long)]
    pub pv_cm_s: Option<f64>,
    /// Stroke-volume variation over a breath, %.
    #[arg(long, default_value_t = 8.0)]
    pub svv_pct: f64,
    /// Ventilation rate, breaths/min.
    #[arg(long, default_value_t = 12.0)]
    pub breathing_rate: f64,
    /// SNR, dB: mean blood-signal power in systole over white-noise power in the whole band.
    #[arg(long, default_value_t = 30.0, allow_negative_numbers = true)]
    pub snr_db: f64,
    /// Wall clutter over blood power, dB.
    #[arg(long, default_value_t = 30.0, allow_negative_numbers = true)]
    pub clutter_db: f64,
    /// No wall clutter.
    #[arg(long)]
    pub no_clutter: bool,
    /// Random diathermy bursts (2–5 s, about every 20 s, first within 22 s).
    #[arg(long)]
    pub diathermy: bool,
    /// Random lost blocks (10–500 ms, about every 8 s).
    #[arg(long)]
    pub gaps: bool,
    /// Random episodes of excessive receive gain that clip the ADC (0.5–2 s, about every 20 s).
    #[arg(long)]
    pub clipping: bool,
    /// Occasional premature (ectopic) beats (5% of beats).
    #[arg(long)]
    pub ectopics: bool,
    /// Beat-to-beat variation of the cycle length, % (coefficient of
    /// variation, 0–20; about 15–20 imitates atrial fibrillation's irregular
    /// rhythm).
    #[arg(long, default_value_t = 3.0)]
    pub hr_variability_pct: f64,
    /// Peak of the brief reverse flow after systole, cm/s (0: none).
    #[arg(long, default_value_t = 8.0)]
    pub reverse_flow_cm_s: f64,
    /// Peak of low forward diastolic flow, cm/s (0: none).
    #[arg(long, default_value_t = 0.0)]
    pub diastolic_flow_cm_s: f64,
    /// Steady phantom at this velocity, cm/s (no beats, no clutter).
    #[arg(long)]
    pub phantom_cm_s: Option<f64>,
    /// Probe gain miscalibration: 0.07 makes every Doppler frequency 7% high.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub probe_gain_error: f64,
    /// Demodulator gain error of the probe interface: 0.1 makes Q's gain 10%
    /// above I's (with --iq-phase-error-deg, an analogue receiver's I/Q
    /// imbalance, which the analysis corrects); -1 is a dead Q channel (a
    /// broken wire), which the analysis reports.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub iq_gain_error: f64,
    /// Demodulator phase error of the probe interface, degrees.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub iq_phase_error_deg: f64,
    /// The probe interface swaps I and Q: forward flow arrives as reverse
    /// (the analysis finds no beat and reports the reversed flow).
    #[arg(long)]
    pub iq_swapped: bool,
    /// Let peak velocities above the sample rate's Nyquist limit wrap round
    /// (aliasing), as a real interface at a low sample rate does; by default
    /// every beat is capped below it.
    #[arg(long)]
    pub allow_aliasing: bool,
    /// True beam angle minus the reported one, degrees.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub probe_angle_error_deg: f64,
    /// Probe serial reported in PROBE_INFO (ASCII, up to 16 bytes).
    #[arg(long, default_value = "SIM-0001")]
    pub probe_serial: String,
    /// Complex I/Q sample rate, 8000–48000 Hz.
    #[arg(long, default_value_t = 20_000)]
    pub sample_rate_hz: u32,
    /// Samples per IQ_SAMPLES block.
    #[arg(long, default_value_t = 200)]
    pub block_len: u16,
    /// Probe unplugged at this time, s (EVENT 3; no samples; EVENT 4 and
    /// PROBE_INFO when plugged back in after --unplug-for).
    #[arg(long, requires = "unplug_for")]
    pub unplug_at: Option<f64>,
    /// How long the probe stays unplugged, s.
    #[arg(long, requires = "unplug_at")]
    pub unplug_for: Option<f64>,
    /// Probe run time at the start, minutes (PROBE_INFO `minutes_used`).
    #[arg(long, default_value_t = 0)]
    pub minutes_used: u32,
    /// Probe life, minutes (PROBE_INFO `minutes_limit`; 0 = no limit).
    #[arg(long, default_value_t = 0)]
    pub minutes_limit: u32,
    /// Operator button press (EVENT 1) at this time, s; repeatable.
    #[arg(long = "button-at")]
    pub button_at: Vec<f64>,
    /// Patient and fluid-bolus annotations (boxed: keeps the command enum small).
    #[command(flatten)]
    pub patient: Box<PatientArgs>,
    /// `utc` of the `recording_started` annotation, RFC 3339 (default:
    /// now); fix it to make the file byte-for-byte reproducible.
    #[arg(long, value_parser = parse_rfc3339)]
    pub utc: Option<String>,
}

/// Annotations of a simulated recording: demographics and a fluid bolus.
#[derive(clap::Args, Debug)]
pub struct PatientArgs {
    /// Patient age for a `patient` annotation (needs --height-cm and --weight-kg).
    #[arg(long, requires_all = ["height_cm", "weight_kg"])]
    pub age: Option<u32>,
    /// Patient sex for the `patient` annotation.
    #[arg(long, value_enum, requires = "age")]
    pub sex: Option<SexArg>,
    /// Patient height, cm.
    #[arg(long, requires = "age", value_parser = parse_positive)]
    pub height_cm: Option<f64>,
    /// Patient weight, kg.
    #[arg(long, requires = "age", value_parser = parse_positive)]
    pub weight_kg: Option<f64>,
    /// A fluid bolus at this time, s: a `bolus` annotation and a step in SV.
    #[arg(long, requires = "bolus_ml")]
    pub bolus_at: Option<f64>,
    /// Bolus volume, ml.
    #[arg(long, requires = "bolus_at", value_parser = parse_positive)]
    pub bolus_ml: Option<f64>,
    /// SV change after the bolus, % (≥ 10: a fluid responder).
    #[arg(long, default_value_t = 15.0, allow_negative_numbers = true)]
    pub bolus_sv_change_pct: f64,
}

/// A finite number over 0 (a height, a weight, a volume).
fn parse_positive(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
        Ok(x) => Err(format!("{x} is not a finite number over 0")),
        Err(e) => Err(e.to_string()),
    }
}

/// An RFC 3339 date-time, as serial-stream.md's `recording_started` needs.
fn parse_rfc3339(s: &str) -> Result<String, String> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map(|_| s.to_owned())
        .map_err(|e| format!("not an RFC 3339 date-time (e.g. 2026-11-30T11:39:29Z): {e}"))
}

/// The truth file beside a recording: `x.odmrec` → `x.truth.jsonl`.
pub fn truth_path(out: &Path) -> PathBuf {
    let stem = if out.extension().is_some_and(|e| e == "odmrec") {
        out.with_extension("")
    } else {
        out.to_path_buf()
    };
    let mut name = stem.into_os_string();
    name.push(".truth.jsonl");
    PathBuf::from(name)
}

fn config_from_args(a: &Args) -> anyhow::Result<SimConfig> {
    let mut cfg = SimConfig {
        seed: a.seed,
        sample_rate_hz: a.sample_rate_hz,
        block_len: a.block_len,
        probe_serial: a.probe_serial.clone(),
        hr_bpm: a.hr,
        sv_ml: a.sv_ml,
        aortic_diameter_mm: a.aortic_diameter_mm,
        ftc_ms: a.ftc_ms,
        pv_cm_s: a.pv_cm_s,
        svv_pct: a.svv_pct,
        breathing_rate_per_min: a.breathing_rate,
        reverse_flow_cm_s: a.reverse_flow_cm_s,
        diastolic_flow_cm_s: a.diastolic_flow_cm_s,
        snr_db: Some(a.snr_db),
        clutter_db: if a.no_clutter || a.phantom_cm_s.is_some() {
            None
        } else {
            Some(a.clutter_db)
        },
        phantom_cm_s: a.phantom_cm_s,
        probe_gain_error: a.probe_gain_error,
        probe_angle_error_deg: a.probe_angle_error_deg,
        iq_gain_error: a.iq_gain_error,
        iq_phase_error_deg: a.iq_phase_error_deg,
        iq_swapped: a.iq_swapped,
        allow_aliasing: a.allow_aliasing,
        button_presses_s: a.button_at.clone(),
        minutes_used: a.minutes_used,
        minutes_limit: a.minutes_limit,
        unplug: a.unplug_at.zip(a.unplug_for).map(|(at, d)| Interval {
            start_s: at,
            end_s: at + d,
        }),
        ..SimConfig::default()
    };
    if a.ectopics {
        cfg.ectopic_rate = 0.05;
    }
    cfg.hr_variability = a.hr_variability_pct / 100.0;
    if a.diathermy {
        cfg.diathermy = ImpairmentSchedule::Random {
            mean_interval_s: 20.0,
            min_duration_s: 2.0,
            max_duration_s: 5.0,
        };
    }
    if a.gaps {
        cfg.gaps = ImpairmentSchedule::Random {
            mean_interval_s: 8.0,
            min_duration_s: 0.01,
            max_duration_s: 0.5,
        };
    }
    if a.clipping {
        cfg.clipping = ImpairmentSchedule::Random {
            mean_interval_s: 20.0,
            min_duration_s: 0.5,
            max_duration_s: 2.0,
        };
    }
    if let (Some(at), Some(_)) = (a.patient.bolus_at, a.patient.bolus_ml) {
        if !(at.is_finite() && at >= 0.0) {
            return Err(UsageError(format!(
                "--bolus-at must be a time in seconds ≥ 0, got {at}"
            ))
            .into());
        }
        cfg.schedule.push(ScheduleSegment {
            start_s: at,
            sv_ml: Some(a.sv_ml * (1.0 + a.patient.bolus_sv_change_pct / 100.0)),
            ..ScheduleSegment::default()
        });
    }
    cfg.duration_s = match (a.duration, a.out.is_some()) {
        (Some(d), _) => Some(d),
        (None, true) => Some(60.0),
        (None, false) => None,
    };
    // Out-of-range values are the caller's mistake: a usage error (exit 2).
    cfg.validate()
        .map_err(|e| UsageError(format!("odm simulate: invalid arguments: {e}")))?;
    Ok(cfg)
}

/// Runs `odm simulate`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let cfg = config_from_args(&args)?;
    match (&args.out, &args.port) {
        (Some(out), _) => to_file(&args, cfg, out),
        (None, Some(port)) => to_port(cfg, port),
        (None, None) => bail!("odm simulate needs --out FILE or --port PATH"),
    }
}

fn to_file(args: &Args, cfg: SimConfig, out: &Path) -> anyhow::Result<()> {
    let fs = f64::from(cfg.sample_rate_hz);
    let mut probe = VirtualProbe::new(cfg).context("odm simulate: starting the virtual probe")?;
    let software = format!("odm {} (simulate)", env!("CARGO_PKG_VERSION"));
    let start = match &args.utc {
        Some(u) => RecordingStart::new(u, &software, 0),
        None => RecordingStart::now(&software, 0),
    };
    let mut rec = RecordingWriter::create(out, &start, probe.probe_info())
        .with_context(|| format!("creating recording {}", out.display()))?;
    if let (Some(age), Some(h), Some(w)) = (
        args.patient.age,
        args.patient.height_cm,
        args.patient.weight_kg,
    ) {
        let sex = match args.patient.sex {
            Some(SexArg::Female) => Sex::Female,
            Some(SexArg::Male) => Sex::Male,
            Some(SexArg::Unknown) | None => Sex::Unknown,
        };
        rec.annotate_patient(0, age, h, w, sex)
            .with_context(|| format!("writing the patient annotation to {}", out.display()))?;
    }
    let tpath = truth_path(out);
    let mut truth = BufWriter::new(
        File::create(&tpath).with_context(|| format!("creating {}", tpath.display()))?,
    );
    let mut bolus = args
        .patient
        .bolus_at
        .zip(args.patient.bolus_ml)
        .map(|(t, ml)| ((t * fs).round() as u64, ml));
    let mut beats = 0u64;
    let mut first = true;
    while let Some(p) = probe.next_payload() {
        // The writer has already written the PROBE_INFO in force.
        if first && matches!(p, Payload::ProbeInfo(_)) {
            first = false;
            continue;
        }
        first = false;
        if let (Payload::Iq(b), Some((at, ml))) = (&p, bolus)
            && b.end_sample() > at
        {
            rec.annotate_bolus(at, ml, None)
                .with_context(|| format!("writing the bolus annotation to {}", out.display()))?;
            bolus = None;
        }
        rec.write_payload(&p)
            .with_context(|| format!("writing {}", out.display()))?;
        for beat in probe.take_truth_beats() {
            // A `beat` line as analysis-output.md's, whose every line has
            // its `type`: `{"type":"beat",` then the beat's own fields.
            let json = serde_json::to_string(&beat)
                .with_context(|| format!("writing {}", tpath.display()))?;
            truth
                .write_all(b"{\"type\":\"beat\",")
                .and_then(|()| truth.write_all(&json.as_bytes()[1..]))
                .and_then(|()| truth.write_all(b"\n"))
                .with_context(|| format!("writing {}", tpath.display()))?;
            beats += 1;
        }
    }
    let frames = rec.frames_written();
    let bytes = rec.bytes_written();
    rec.finish()
        .with_context(|| format!("closing {}", out.display()))?;
    truth
        .flush()
        .with_context(|| format!("closing {}", tpath.display()))?;
    println!(
        "wrote {} ({frames} frames, {bytes} bytes, {:.1} s) and {} ({beats} beats)",
        out.display(),
        probe.time_s(),
        tpath.display()
    );
    Ok(())
}

fn open_port(path: &str) -> anyhow::Result<Box<dyn Write>> {
    match open_serial_writer(path, DEFAULT_BAUD) {
        Ok(p) => Ok(Box::new(p)),
        // Not a tty (a FIFO, a file): write it as a plain file.
        Err(serial_err) => {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .with_context(|| format!("opening port {path} ({serial_err})"))?;
            Ok(Box::new(f))
        }
    }
}

fn to_port(cfg: SimConfig, path: &str) -> anyhow::Result<()> {
    // One handler per process: if one is already installed (several commands
    // in one test process), stream without it; nothing needs flushing on exit.
    let stop = interrupt::stop_flag_on_interrupt()
        .unwrap_or_else(|_| std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)));
    let fs = f64::from(cfg.sample_rate_hz);
    let block_len = u64::from(cfg.block_len);
    let unplug = cfg.unplug;
    let mut probe = VirtualProbe::new(cfg).context("odm simulate: starting the virtual probe")?;
    let mut port = open_port(path)?;
    let mut enc = Encoder::new();
    let mut buf = Vec::with_capacity(8192);
    let started = Instant::now();
    let mut next_sample = 0u64;
    while let Some(p) = probe.next_payload() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        // Pace by the sample clock: a block leaves when its last sample
        // exists, an event when it happens.
        if let Some(due_sample) = p.due_sample() {
            let due = Duration::from_secs_f64(due_sample as f64 / fs);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        if let Payload::Iq(b) = &p {
            let jump = b.first_sample.saturating_sub(next_sample);
            let t_s = next_sample as f64 / fs;
            let unplugged = unplug.is_some_and(|u| u.start_s <= t_s + 1.0 / fs && t_s < u.end_s);
            if jump > 0 && !unplugged {
                // Lost blocks are lost frames on the link.
                enc.skip_seq(u16::try_from(jump.div_ceil(block_len)).unwrap_or(u16::MAX));
            }
            next_sample = b.end_sample();
        }
        buf.clear();
        enc.encode(&p, &mut buf)
            .context("encoding a frame of the virtual probe")?;
        port.write_all(&buf)
            .with_context(|| format!("writing to port {path} at sample {next_sample}"))?;
        // Keep the truth queue bounded on long runs.
        probe.take_truth_beats();
        probe.take_impairments();
    }
    port.flush()
        .with_context(|| format!("flushing port {path}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cmd {
        #[command(flatten)]
        args: Args,
    }

    fn args(list: &[&str]) -> Args {
        let mut v = vec!["simulate"];
        v.extend_from_slice(list);
        Cmd::try_parse_from(v).unwrap().args
    }

    fn tmp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("odm-sim-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(name)
    }

    /// CRC-32/ISO-HDLC, bit by bit, straight from serial-stream.md.
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    /// (kind, seq, payload) of every frame of a recording, by the spec alone.
    fn parse(file: &[u8]) -> Vec<(u8, u16, Vec<u8>)> {
        assert_eq!(&file[..8], b"ODMREC1\n");
        let mut out = Vec::new();
        let mut i = 8;
        while i < file.len() {
            assert_eq!(&file[i..i + 2], &[0xA5, 0x5A], "sync at byte {i}");
            assert_eq!(file[i + 2], 1, "version at byte {i}");
            let kind = file[i + 3];
            let seq = u16::from_le_bytes([file[i + 4], file[i + 5]]);
            let len = usize::from(u16::from_le_bytes([file[i + 6], file[i + 7]]));
            assert!(len <= 4096);
            let end = i + 8 + len;
            let crc = u32::from_le_bytes(file[end..end + 4].try_into().unwrap());
            assert_eq!(crc, crc32(&file[i + 2..end]), "CRC of frame at byte {i}");
            out.push((kind, seq, file[i + 8..end].to_vec()));
            i = end + 4;
        }
        out
    }

    #[test]
    fn reference_crc_matches_the_spec_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn truth_path_sits_beside_the_recording() {
        assert_eq!(
            truth_path(Path::new("/a/b/x.odmrec")),
            PathBuf::from("/a/b/x.truth.jsonl")
        );
        assert_eq!(truth_path(Path::new("y")), PathBuf::from("y.truth.jsonl"));
    }

    #[test]
    fn recording_decodes_by_the_spec_and_matches_its_truth() {
        let out = tmp("clean.odmrec");
        let o = out.to_str().unwrap();
        let common = [
            "--duration",
            "20",
            "--seed",
            "3",
            "--utc",
            "2026-01-01T00:00:00Z",
            "--age",
            "60",
            "--height-cm",
            "170",
            "--weight-kg",
            "80",
            "--sex",
            "female",
            "--bolus-at",
            "10",
            "--bolus-ml",
            "250",
        ];
        let mut a = vec!["--out", o];
        a.extend_from_slice(&common);
        run(args(&a)).unwrap();
        let bytes = std::fs::read(&out).unwrap();
        let frames = parse(&bytes);

        // Same arguments, same bytes.
        let out2 = tmp("clean2.odmrec");
        let mut a2 = vec!["--out", out2.to_str().unwrap()];
        a2.extend_from_slice(&common);
        run(args(&a2)).unwrap();
        assert_eq!(bytes, std::fs::read(&out2).unwrap());

        // recording_started, then PROBE_INFO; seq 0, 1, 2, … over every frame.
        assert_eq!(frames[0].0, 0x10);
        let json: serde_json::Value = serde_json::from_slice(&frames[0].2[8..]).unwrap();
        assert_eq!(json["type"], "recording_started");
        assert_eq!(frames[1].0, 0x01);
        for (i, f) in frames.iter().enumerate() {
            assert_eq!(f.1, i as u16);
        }
        let fs = 20_000.0;
        let mut samples: Vec<(f64, f64)> = Vec::new();
        let mut last_info = 0u64;
        let mut bolus_at = None;
        for (kind, _, p) in &frames {
            match kind {
                0x01 => {
                    assert_eq!(p.len(), 44);
                    assert_eq!(u32::from_le_bytes(p[0..4].try_into().unwrap()), 20_000);
                    last_info = samples.len() as u64;
                }
                0x02 => {
                    let first = u64::from_le_bytes(p[0..8].try_into().unwrap());
                    let count = usize::from(u16::from_le_bytes([p[8], p[9]]));
                    assert_eq!(first, samples.len() as u64, "continuous first_sample");
                    assert_eq!(p.len(), 12 + 4 * count);
                    for k in 0..count {
                        let o = 12 + 4 * k;
                        let i = i16::from_le_bytes([p[o], p[o + 1]]);
                        let q = i16::from_le_bytes([p[o + 2], p[o + 3]]);
                        samples.push((f64::from(i), f64::from(q)));
                    }
                    assert!(
                        samples.len() as u64 - last_info <= 20_000,
                        "PROBE_INFO each second"
                    );
                }
                0x10 => {
                    let j: serde_json::Value = serde_json::from_slice(&p[8..]).unwrap();
                    if j["type"] == "bolus" {
                        bolus_at = Some(u64::from_le_bytes(p[0..8].try_into().unwrap()));
                        assert_eq!(j["volume_ml"], 250.0);
                    }
                    if j["type"] == "patient" {
                        assert_eq!(j["sex"], "female");
                    }
                }
                _ => {}
            }
        }
        assert_eq!(samples.len(), 400_000);
        assert_eq!(bolus_at, Some(200_000));

        let truth_text = std::fs::read_to_string(truth_path(&out)).unwrap();
        let beats: Vec<serde_json::Value> = truth_text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert!(beats.len() > 20);
        let names = [
            "index",
            "onset_s",
            "peak_s",
            "end_s",
            "next_onset_s",
            "ft_ms",
            "cycle_s",
            "hr_bpm",
            "ftc_ms",
            "sd_cm",
            "pv_cm_s",
            "ma_cm_s2",
            "md_cm_min",
            "sv_ml",
            "co_l_min",
            "quality",
            "accepted",
            "reject_reason",
        ];
        let diff_power = |a_s: f64, b_s: f64| {
            let (a, b) = ((a_s * fs) as usize, (b_s * fs) as usize);
            (a.max(1)..b)
                .map(|n| {
                    let (di, dq) = (
                        samples[n].0 - samples[n - 1].0,
                        samples[n].1 - samples[n - 1].1,
                    );
                    di * di + dq * dq
                })
                .sum::<f64>()
                / (b - a.max(1)) as f64
        };
        let mut sv_before = Vec::new();
        let mut sv_after = Vec::new();
        for b in &beats {
            for n in names {
                assert!(b.get(n).is_some(), "truth line lacks {n}");
            }
            let f = |n: &str| b[n].as_f64().unwrap();
            // The Doppler signal is broadband in systole and not just before it
            // (first differences weight power by frequency; clutter is < 50 Hz).
            let (on, end) = (f("onset_s"), f("end_s"));
            if on > 0.15 {
                let ft = end - on;
                let sys = diff_power(on + ft / 3.0, end - ft / 3.0);
                let pre = diff_power(on - 0.1, on);
                assert!(
                    sys > 2.0 * pre,
                    "beat at {on:.2}: systole {sys:.0} vs before {pre:.0}"
                );
            }
            if f("next_onset_s") < 10.0 {
                sv_before.push(f("sv_ml"));
            } else if on > 10.0 {
                sv_after.push(f("sv_ml"));
            }
        }
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let change_pct = 100.0 * (mean(&sv_after) / mean(&sv_before) - 1.0);
        assert!(
            (change_pct - 15.0).abs() < 5.0,
            "SV change after bolus {change_pct:.1}%"
        );
        std::fs::remove_file(&out).ok();
        std::fs::remove_file(&out2).ok();
        std::fs::remove_file(truth_path(&out)).ok();
        std::fs::remove_file(truth_path(&out2)).ok();
    }

    #[test]
    fn device_io_reader_sees_gaps_and_no_errors() {
        let out = tmp("gaps.odmrec");
        run(args(&[
            "--out",
            out.to_str().unwrap(),
            "--duration",
            "30",
            "--gaps",
            "--utc",
            "2026-01-01T00:00:00Z",
        ]))
        .unwrap();
        let mut reader = odm_device_io::RecordingReader::open(&out).unwrap();
        let mut iq = 0;
        while let Some(f) = reader.next_frame().unwrap() {
            iq += usize::from(matches!(f.payload, Payload::Iq(_)));
        }
        let c = reader.counters();
        assert_eq!(c.crc_errors, 0);
        assert_eq!(c.lost_frames, 0);
        assert!(c.lost_samples > 0);
        assert!(iq > 2000);
        let truth = std::fs::read_to_string(truth_path(&out)).unwrap();
        assert!(truth.contains("\"reject_reason\":\"gap\""));
        std::fs::remove_file(&out).ok();
        std::fs::remove_file(truth_path(&out)).ok();
    }

    #[test]
    fn unplug_and_probe_life_reach_the_stream() {
        let cfg = config_from_args(&args(&[
            "--port",
            "/dev/null",
            "--unplug-at",
            "2",
            "--unplug-for",
            "1.5",
            "--minutes-used",
            "590",
            "--minutes-limit",
            "600",
        ]))
        .unwrap();
        assert_eq!(cfg.duration_s, None, "--port runs until stopped");
        let mut probe = VirtualProbe::new(SimConfig {
            duration_s: Some(5.0),
            ..cfg
        })
        .unwrap();
        let mut codes = Vec::new();
        while let Some(p) = probe.next_payload() {
            match p {
                Payload::Event(e) => codes.push((e.code, e.at_sample)),
                Payload::ProbeInfo(i) => {
                    assert_eq!((i.minutes_used, i.minutes_limit), (590, 600));
                }
                _ => {}
            }
        }
        assert_eq!(codes, vec![(3, 40_000), (4, 70_000)]);
    }

    #[test]
    fn port_stream_loses_frames_where_blocks_are_dropped() {
        // A plain file stands in for the port (open_serial_writer refuses it).
        let path = tmp("port.bin");
        std::fs::write(&path, b"").unwrap();
        let cfg = SimConfig {
            duration_s: Some(0.6),
            scatterer_count: 8,
            gaps: ImpairmentSchedule::Fixed(vec![Interval {
                start_s: 0.2,
                end_s: 0.25,
            }]),
            ..SimConfig::default()
        };
        to_port(cfg, path.to_str().unwrap()).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let mut dec = odm_device_io::Decoder::new();
        dec.feed(&bytes);
        dec.finish();
        let mut iq = 0;
        while let Some(item) = dec.next_item() {
            if let odm_device_io::DecodedItem::Frame(f) = item {
                iq += usize::from(matches!(f.payload, Payload::Iq(_)));
            }
        }
        let c = dec.counters();
        assert_eq!(c.crc_errors, 0);
        // 0.20–0.25 s at 200-sample blocks: 5 blocks, 1 000 samples, 5 frames.
        assert_eq!(c.lost_samples, 1000);
        assert_eq!(c.lost_frames, 5);
        assert_eq!(iq, 55);
        std::fs::remove_file(&path).ok();
    }

    #[test]
    fn out_of_range_arguments_are_runtime_errors_naming_the_field() {
        let e = config_from_args(&args(&["--out", "x.odmrec", "--hr", "250"])).unwrap_err();
        assert!(format!("{e:#}").contains("hr_bpm"), "{e:#}");
        assert!(Cmd::try_parse_from(["simulate", "--duration", "3"]).is_err());
        assert!(Cmd::try_parse_from(["simulate", "--out", "a", "--port", "b"]).is_err());
        let e = config_from_args(&args(&["--out", "x.odmrec", "--hr-variability-pct", "25"]))
            .unwrap_err();
        assert!(format!("{e:#}").contains("hr_variability"), "{e:#}");
    }

    #[test]
    fn cycle_variation_is_a_percentage_and_defaults_to_sinus_rhythm() {
        let default = config_from_args(&args(&["--out", "x.odmrec"])).unwrap();
        assert_eq!(default.hr_variability, SimConfig::default().hr_variability);
        let af =
            config_from_args(&args(&["--out", "x.odmrec", "--hr-variability-pct", "20"])).unwrap();
        assert!((af.hr_variability - 0.2).abs() < 1e-12);
    }
}
