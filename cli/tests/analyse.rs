//! End-to-end tests of `odm analyse` on recordings made with the virtual
//! probe (odm-simulator) and written with the device-io recorder: output
//! format per `shared/spec/analysis-output.md`, counters, CSV, standard
//! input, damaged files, fluid challenges and area models.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use odm_device_io::{Payload, RecordingStart, RecordingWriter, Sex};
use odm_simulator::{ScheduleSegment, SimConfig, TruthBeat, VirtualProbe};
use serde_json::Value;

const BEAT_FIELDS: [&str; 18] = [
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

const STREAM_FIELDS: [&str; 11] = [
    "type",
    "version",
    "software",
    "sample_rate_hz",
    "carrier_hz",
    "beam_angle_deg",
    "probe_serial",
    "ftc_formula",
    "ftc_linear_k_ms_per_bpm",
    "area_model",
    "aortic_diameter_mm",
];

const COUNTERS: [&str; 10] = [
    "bytes_read",
    "frames_good",
    "crc_errors",
    "malformed",
    "unknown_kinds",
    "lost_frames",
    "seq_resets",
    "lost_samples",
    "discontinuities",
    "resync_bytes",
];

/// An annotation to write once the stream reaches `t_s`.
enum Note {
    Bolus {
        t_s: f64,
        volume_ml: f64,
    },
    Patient {
        t_s: f64,
        age: u32,
        height_cm: f64,
        weight_kg: f64,
        sex: Sex,
    },
}

impl Note {
    fn t_s(&self) -> f64 {
        match self {
            Note::Bolus { t_s, .. } | Note::Patient { t_s, .. } => *t_s,
        }
    }
}

/// Runs the virtual probe for `cfg` and records it, with `notes` inserted
/// at their times. Returns the file bytes and the truth beats.
fn record(cfg: SimConfig, mut notes: Vec<Note>) -> (Vec<u8>, Vec<TruthBeat>) {
    let fs = f64::from(cfg.sample_rate_hz);
    let mut probe = VirtualProbe::new(cfg).unwrap();
    let start = RecordingStart::new("2026-11-30T12:00:00Z", "analyse-test", 0);
    let info = probe.probe_info().clone();
    let mut w = RecordingWriter::new(Vec::new(), &start, &info).unwrap();
    notes.sort_by(|a, b| a.t_s().total_cmp(&b.t_s()));
    let mut notes = notes.into_iter().peekable();
    let mut truth = Vec::new();
    while let Some(p) = probe.next_payload() {
        if let Payload::Iq(b) = &p {
            let t = b.first_sample as f64 / fs;
            while let Some(n) = notes.next_if(|n| n.t_s() <= t) {
                let at = (n.t_s() * fs).round() as u64;
                match n {
                    Note::Bolus { volume_ml, .. } => {
                        w.annotate_bolus(at, volume_ml, Some("Hartmann's")).unwrap();
                    }
                    Note::Patient {
                        age,
                        height_cm,
                        weight_kg,
                        sex,
                        ..
                    } => {
                        w.annotate_patient(at, age, height_cm, weight_kg, sex)
                            .unwrap();
                    }
                }
            }
        }
        w.write_payload(&p).unwrap();
        truth.extend(probe.take_truth_beats());
    }
    truth.extend(probe.take_truth_beats());
    (w.finish().unwrap(), truth)
}

fn base_cfg(seed: u64, duration_s: f64) -> SimConfig {
    SimConfig {
        seed,
        duration_s: Some(duration_s),
        hr_bpm: 80.0,
        sv_ml: 70.0,
        aortic_diameter_mm: 24.0,
        descending_flow_fraction: 1.0,
        ..SimConfig::default()
    }
}

/// A file in the temporary directory, removed (with a simulator truth file
/// beside it) when dropped, so test runs leave nothing behind.
struct TempFile(PathBuf);

impl TempFile {
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
        let _ = std::fs::remove_file(self.0.with_extension("truth.jsonl"));
    }
}

/// A path no other test of this run uses: tests run in parallel and several
/// write the same recording, so the name alone would let one test delete or
/// rewrite the file another is reading.
fn temp_path(name: &str) -> TempFile {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    TempFile(std::env::temp_dir().join(format!(
        "odm-analyse-test-{}-{n}-{name}",
        std::process::id()
    )))
}

fn write_file(name: &str, bytes: &[u8]) -> TempFile {
    let f = temp_path(name);
    std::fs::write(f.path(), bytes).unwrap();
    f
}

fn odm(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_odm"))
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(bytes) = stdin {
        let mut si = child.stdin.take().unwrap();
        si.write_all(bytes).unwrap();
    }
    child.wait_with_output().unwrap()
}

fn analyse(path: &Path, extra: &[&str]) -> (Vec<Value>, String) {
    let p = path.to_str().unwrap();
    let mut args = vec!["analyse", p];
    args.extend_from_slice(extra);
    let out = odm(&args, None);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "odm analyse failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    (lines, stdout)
}

fn keys(line: &str) -> Vec<String> {
    // Field order as written (serde_json's Map sorts, so read the text).
    let mut out = Vec::new();
    let mut depth = 0;
    let mut in_str = false;
    let mut esc = false;
    let mut cur = String::new();
    let mut reading_key = false;
    let b = line.as_bytes();
    for (i, &c) in b.iter().enumerate() {
        if in_str {
            if esc {
                esc = false;
            } else if c == b'\\' {
                esc = true;
            } else if c == b'"' {
                in_str = false;
                if reading_key {
                    out.push(std::mem::take(&mut cur));
                    reading_key = false;
                }
            } else if reading_key {
                cur.push(c as char);
            }
            continue;
        }
        match c {
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth -= 1,
            b'"' => {
                in_str = true;
                let prev = b[..i].iter().rev().find(|c| !c.is_ascii_whitespace());
                reading_key = depth == 1 && matches!(prev, Some(b'{') | Some(b','));
            }
            _ => {}
        }
    }
    out
}

fn of_type<'a>(lines: &'a [Value], t: &str) -> Vec<&'a Value> {
    lines.iter().filter(|l| l["type"] == t).collect()
}

fn median(mut xs: Vec<f64>) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    Some(if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    })
}

/// One 40-s recording shared by several tests.
fn clean_recording() -> &'static (Vec<u8>, Vec<TruthBeat>) {
    static REC: std::sync::OnceLock<(Vec<u8>, Vec<TruthBeat>)> = std::sync::OnceLock::new();
    REC.get_or_init(|| record(base_cfg(7, 40.0), vec![]))
}

#[test]
fn jsonl_follows_the_spec_order_types_and_counters() {
    let (bytes, truth) = clean_recording();
    let file = write_file("clean.odmrec", bytes);
    let path = file.path();
    let (lines, text) = analyse(
        path,
        &["--aortic-diameter-mm", "24", "--descending-fraction", "1"],
    );
    let raw: Vec<&str> = text.lines().collect();

    // Stream first, every spec field in order.
    assert_eq!(lines[0]["type"], "stream");
    let k = keys(raw[0]);
    assert_eq!(&k[..STREAM_FIELDS.len()], STREAM_FIELDS, "{}", raw[0]);
    assert_eq!(lines[0]["version"], 1);
    assert!(lines[0]["software"].as_str().unwrap().starts_with("odm "));
    assert_eq!(lines[0]["sample_rate_hz"], 20_000);
    assert_eq!(lines[0]["carrier_hz"], 4_000_000);
    assert_eq!(lines[0]["beam_angle_deg"], 45.0);
    assert_eq!(lines[0]["probe_serial"], "SIM-0001");
    assert_eq!(lines[0]["ftc_formula"], "bazett");
    assert!(lines[0]["ftc_linear_k_ms_per_bpm"].is_null());
    assert_eq!(lines[0]["area_model"], "measured_diameter");
    assert_eq!(lines[0]["aortic_diameter_mm"], 24.0);

    // Summary last.
    let summary = lines.last().unwrap();
    assert_eq!(summary["type"], "summary");

    // Beats: spec fields in order, types, SV from the stated area.
    let beats = of_type(&lines, "beat");
    assert!(
        beats.len() as f64 >= 0.8 * truth.len() as f64,
        "{} beats for {} true cycles",
        beats.len(),
        truth.len()
    );
    let area_cm2 = std::f64::consts::PI * 1.2 * 1.2;
    for (i, (b, line)) in beats
        .iter()
        .zip(raw.iter().filter(|l| l.contains("\"type\":\"beat\"")))
        .enumerate()
    {
        assert_eq!(&keys(line)[1..19], BEAT_FIELDS, "{line}");
        assert_eq!(b["index"], i as u64);
        for f in &BEAT_FIELDS[1..16] {
            assert!(b[f].is_number() || b[f].is_null(), "{f} in {line}");
        }
        assert!(b["accepted"].is_boolean());
        // SV 70 ml, peak ≈ 83 cm/s: far above where FT becomes less certain.
        assert_eq!(b["ft_low_flow"], false, "{line}");
        assert_eq!(
            b["reject_reason"].is_null(),
            b["accepted"] == true,
            "{line}"
        );
        let sd = b["sd_cm"].as_f64().unwrap();
        let sv = b["sv_ml"].as_f64().unwrap();
        assert!((sv - sd * area_cm2).abs() < 0.01 + 1e-4 * sv, "{line}");
        let co = b["co_l_min"].as_f64().unwrap();
        assert!(
            (co - sv * b["hr_bpm"].as_f64().unwrap() / 1000.0).abs() < 1e-3,
            "{line}"
        );
        let (lo, hi) = (
            b["sv_low_ml"].as_f64().unwrap(),
            b["sv_high_ml"].as_f64().unwrap(),
        );
        // ±1 mm on 24 mm: area ×(23/24)², ×(25/24)².
        assert!(
            (lo - sd * area_cm2 * (23.0f64 / 24.0).powi(2)).abs() < 0.02,
            "{line}"
        );
        assert!(
            (hi - sd * area_cm2 * (25.0f64 / 24.0).powi(2)).abs() < 0.02,
            "{line}"
        );
    }

    // Summary: counts, medians of the written values, all ten counters.
    let accepted: Vec<&&Value> = beats.iter().filter(|b| b["accepted"] == true).collect();
    assert_eq!(summary["beats"], beats.len() as u64);
    assert_eq!(summary["accepted"], accepted.len() as u64);
    for f in [
        "ft_ms", "ftc_ms", "sd_cm", "pv_cm_s", "ma_cm_s2", "hr_bpm", "sv_ml", "co_l_min",
    ] {
        let m = median(accepted.iter().filter_map(|b| b[f].as_f64()).collect());
        let got = summary["median"][f].as_f64();
        match (m, got) {
            (Some(m), Some(g)) => assert!((m - g).abs() < 1e-9, "median {f}: {g} vs {m}"),
            (m, g) => assert_eq!(m, g, "median {f}"),
        }
    }
    for c in COUNTERS {
        assert!(summary[c].is_u64(), "counter {c}");
    }
    assert_eq!(summary["bytes_read"], bytes.len() as u64 - 8);
    for c in [
        "crc_errors",
        "malformed",
        "lost_frames",
        "resync_bytes",
        "lost_samples",
    ] {
        assert_eq!(summary[c], 0, "{c} on a clean recording");
    }
    let duration = summary["duration_s"].as_f64().unwrap();
    assert!((duration - 40.0).abs() < 0.1, "duration {duration}");
}

#[test]
fn csv_has_the_exact_header_and_one_row_per_beat() {
    let file = write_file("clean.odmrec", &clean_recording().0);
    let path = file.path();
    let out = odm(
        &["analyse", path.to_str().unwrap(), "--format", "csv"],
        None,
    );
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let mut rows = text.lines();
    assert_eq!(rows.next().unwrap(), BEAT_FIELDS.join(","));
    let (lines, _) = analyse(path, &[]);
    let beats = of_type(&lines, "beat");
    let rows: Vec<&str> = rows.collect();
    assert_eq!(rows.len(), beats.len());
    for (row, b) in rows.iter().zip(&beats) {
        let cells: Vec<&str> = row.split(',').collect();
        assert_eq!(cells.len(), 18, "{row}");
        assert_eq!(cells[0], b["index"].to_string());
        assert_eq!(
            cells[9].parse::<f64>().unwrap(),
            b["sd_cm"].as_f64().unwrap()
        );
        // No area model: SV and CO are empty cells, never "null" or NaN.
        assert_eq!(cells[13], "");
        assert_eq!(cells[14], "");
        assert_eq!(cells[16], b["accepted"].to_string());
    }
    assert!(!text.contains("NaN") && !text.contains("null"));
}

#[test]
fn standard_input_gives_the_same_analysis_as_the_file() {
    let bytes = &clean_recording().0;
    let file = write_file("clean.odmrec", bytes);
    let path = file.path();
    let from_file = odm(&["analyse", path.to_str().unwrap()], None);
    let from_stdin = odm(&["analyse", "-"], Some(bytes));
    assert!(from_stdin.status.success());
    assert_eq!(from_file.stdout, from_stdin.stdout);
}

#[test]
fn damaged_and_truncated_file_still_analyses_and_reports_counters() {
    let bytes = &clean_recording().0;
    let mut bad = bytes.clone();
    // Corrupt a few bytes a third of the way in, and cut the file mid-frame.
    let third = bad.len() / 3;
    for b in &mut bad[third..third + 40] {
        *b ^= 0x5A;
    }
    let cut = bad.len() * 3 / 4 + 7;
    bad.truncate(cut);
    let file = write_file("damaged.odmrec", &bad);
    let path = file.path();
    let (lines, _) = analyse(path, &[]);
    let summary = lines.last().unwrap();
    assert_eq!(summary["type"], "summary");
    assert!(summary["crc_errors"].as_u64().unwrap() >= 1, "{summary}");
    assert!(summary["resync_bytes"].as_u64().unwrap() > 0, "{summary}");
    assert!(summary["lost_frames"].as_u64().unwrap() >= 1, "{summary}");
    assert_eq!(summary["bytes_read"], cut as u64 - 8);
    let beats = of_type(&lines, "beat");
    assert!(
        beats.len() > 20,
        "analysis went on after the damage: {} beats",
        beats.len()
    );
    // CSV has no summary line: what was skipped is said on stderr, with
    // the same counters; a clean file's CSV says nothing there.
    let csv = odm(
        &["analyse", path.to_str().unwrap(), "--format", "csv"],
        None,
    );
    assert!(csv.status.success());
    let err = String::from_utf8_lossy(&csv.stderr);
    for name in ["crc_errors", "lost_frames", "resync_bytes"] {
        assert!(
            err.contains(&format!("{name} {}", summary[name])),
            "{name}: {err}"
        );
    }
    let clean = write_file("clean-csv.odmrec", bytes);
    let csv = odm(
        &["analyse", clean.path().to_str().unwrap(), "--format", "csv"],
        None,
    );
    assert!(
        csv.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&csv.stderr)
    );
    // The lost samples show as a gap event, and no accepted beat spans it.
    let gaps = of_type(&lines, "event")
        .into_iter()
        .filter(|e| e["kind"] == "gap")
        .collect::<Vec<_>>();
    assert!(!gaps.is_empty());
    for g in &gaps {
        let t = g["t_s"].as_f64().unwrap();
        for b in &beats {
            let (a, z) = (
                b["onset_s"].as_f64().unwrap(),
                b["next_onset_s"].as_f64().unwrap(),
            );
            if a <= t && t < z {
                assert_eq!(b["accepted"], false, "beat {b} spans the gap at {t}");
            }
        }
    }
}

#[test]
fn a_bolus_with_a_stroke_volume_rise_gives_one_responsive_fluid_challenge() {
    // SV 60 ml, rising to 72 ml (+20 %) from 25 s; bolus at 25 s.
    let mut cfg = base_cfg(11, 75.0);
    cfg.sv_ml = 60.0;
    cfg.svv_pct = 0.0;
    cfg.schedule = vec![ScheduleSegment {
        start_s: 25.0,
        hr_bpm: None,
        sv_ml: Some(72.0),
        ftc_ms: None,
        pv_cm_s: None,
    }];
    let (bytes, truth) = record(
        cfg,
        vec![Note::Bolus {
            t_s: 25.0,
            volume_ml: 250.0,
        }],
    );
    let file = write_file("bolus.odmrec", &bytes);
    let path = file.path();
    let (lines, _) = analyse(
        path,
        &[
            "--bolus-before-s",
            "20",
            "--bolus-after-s",
            "40",
            "--bolus-window-s",
            "10",
            "--bolus-min-beats",
            "5",
        ],
    );
    let fc = of_type(&lines, "fluid_challenge");
    assert_eq!(fc.len(), 1, "{fc:?}");
    let fc = fc[0];
    assert!((fc["bolus_t_s"].as_f64().unwrap() - 25.0).abs() < 1e-3);
    assert_eq!(fc["volume_ml"], 250.0);
    let bw: Vec<f64> = fc["before_window_s"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    assert_eq!(bw, vec![5.0, 25.0]);
    let aw = fc["after_window_s"].as_array().unwrap();
    let (a0, a1) = (aw[0].as_f64().unwrap(), aw[1].as_f64().unwrap());
    assert!(
        a0 >= 25.0 && a1 <= 65.0 + 1e-6 && (a1 - a0 - 10.0).abs() < 1e-6,
        "{fc}"
    );
    // Independent expectation: the truth's own SD change over the same windows.
    let mean_sd = |lo: f64, hi: f64| {
        let v: Vec<f64> = truth
            .iter()
            .filter(|b| b.onset_s >= lo && b.onset_s < hi)
            .map(|b| b.sd_cm)
            .collect();
        v.iter().sum::<f64>() / v.len() as f64
    };
    let true_delta = 100.0 * (mean_sd(a0, a1) - mean_sd(5.0, 25.0)) / mean_sd(5.0, 25.0);
    let delta = fc["delta_pct"].as_f64().unwrap();
    assert!(
        (delta - true_delta).abs() < 5.0,
        "delta {delta} %, truth {true_delta} %"
    );
    assert_eq!(fc["responsive"], true);
    assert!(fc["beats_before"].as_u64().unwrap() >= 5);
    assert!(fc["sv_before_ml"].is_null(), "no area model");
    // Written after the after-window has passed: after the beats that end it.
    let pos = lines
        .iter()
        .position(|l| l["type"] == "fluid_challenge")
        .unwrap();
    let last_beat_before = lines[..pos]
        .iter()
        .rev()
        .find(|l| l["type"] == "beat")
        .unwrap();
    assert!(last_beat_before["onset_s"].as_f64().unwrap() >= 65.0 - 15.0);
}

#[test]
fn patient_annotation_sets_the_population_model_and_the_command_line_overrides_it() {
    let (bytes, _) = record(
        base_cfg(3, 20.0),
        vec![Note::Patient {
            t_s: 8.0,
            age: 50,
            height_cm: 180.0,
            weight_kg: 80.0,
            sex: Sex::Male,
        }],
    );
    let file = write_file("patient.odmrec", &bytes);
    let path = file.path();
    let (lines, _) = analyse(path, &[]);
    assert_eq!(lines[0]["area_model"], "none");
    let ev = of_type(&lines, "event")
        .into_iter()
        .find(|e| e["kind"] == "area_model")
        .unwrap();
    assert_eq!(ev["area_model"], "fhs_ct_age_sex");
    // Framingham men: 25.8 mm at the reference age of 50.
    assert_eq!(ev["aortic_diameter_mm"], 25.8);
    let area = std::f64::consts::PI * 1.29 * 1.29;
    for b in of_type(&lines, "beat") {
        let onset = b["onset_s"].as_f64().unwrap();
        let sd = b["sd_cm"].as_f64().unwrap();
        if onset < 8.0 {
            assert!(b["sv_ml"].is_null(), "{b}");
        } else {
            let sv = b["sv_ml"].as_f64().unwrap();
            assert!((sv - sd * area / 0.7).abs() < 0.01 + 1e-4 * sv, "{b}");
            // Mosteller BSA of 180 cm, 80 kg is exactly 2 m².
            let svi = b["svi_ml_m2"].as_f64().unwrap();
            assert!((svi - sv / 2.0).abs() < 0.002, "{b}");
            let ci = b["ci_l_min_m2"].as_f64().unwrap();
            assert!(
                (ci - b["co_l_min"].as_f64().unwrap() / 2.0).abs() < 1e-4,
                "{b}"
            );
        }
    }
    // The command line wins over the annotation.
    let (lines, _) = analyse(path, &["--aortic-diameter-mm", "20"]);
    assert_eq!(lines[0]["area_model"], "measured_diameter");
    assert!(
        of_type(&lines, "event")
            .iter()
            .all(|e| e["kind"] != "area_model")
    );
    // The annotation's demographics still give the BSA (2 m²) for CI and
    // SVI from its sample on: the command line gave none.
    for b in of_type(&lines, "beat") {
        let sd = b["sd_cm"].as_f64().unwrap();
        let sv = b["sv_ml"].as_f64().unwrap();
        assert!((sv - sd * std::f64::consts::PI / 0.7).abs() < 0.01 + 1e-4 * sv);
        if b["onset_s"].as_f64().unwrap() < 8.0 {
            assert!(
                b["svi_ml_m2"].is_null() && b["ci_l_min_m2"].is_null(),
                "{b}"
            );
        } else {
            let svi = b["svi_ml_m2"].as_f64().unwrap();
            assert!((svi - sv / 2.0).abs() < 0.002, "{b}");
        }
    }
    // Demographics on the command line win over the annotation's:
    // 169 cm, 100 kg give √(169·100/3600) = 13/6 m².
    let (lines, _) = analyse(
        path,
        &[
            "--aortic-diameter-mm",
            "20",
            "--age",
            "60",
            "--sex",
            "female",
            "--height-cm",
            "169",
            "--weight-kg",
            "100",
        ],
    );
    for b in of_type(&lines, "beat") {
        let sv = b["sv_ml"].as_f64().unwrap();
        let svi = b["svi_ml_m2"].as_f64().unwrap();
        assert!((svi - sv * 6.0 / 13.0).abs() < 0.002, "{b}");
    }
}

#[test]
fn du_bois_bsa_can_be_chosen_for_ci_and_svi() {
    let file = write_file("bsa.odmrec", &clean_recording().0);
    let demo = [
        "--age",
        "50",
        "--sex",
        "male",
        "--height-cm",
        "170",
        "--weight-kg",
        "70",
    ];
    // Primer: 170 cm, 70 kg → Du Bois 1.810 m², Mosteller 1.818 m².
    for (formula, name, bsa) in [
        (None, "mosteller", 1.818),
        (Some("du-bois"), "du_bois", 1.810),
    ] {
        let mut extra = demo.to_vec();
        if let Some(f) = formula {
            extra.extend(["--bsa-formula", f]);
        }
        let (lines, _) = analyse(file.path(), &extra);
        assert_eq!(lines[0]["bsa_formula"], name);
        let got = lines[0]["bsa_m2"].as_f64().unwrap();
        assert!((got - bsa).abs() < 0.0006, "{name}: {got}");
        let b = of_type(&lines, "beat")[3];
        let svi = b["svi_ml_m2"].as_f64().unwrap();
        assert!(
            (svi - b["sv_ml"].as_f64().unwrap() / got).abs() < 0.002,
            "{b}"
        );
    }
    let out = odm(
        &[
            "analyse",
            file.path().to_str().unwrap(),
            "--bsa-formula",
            "haycock",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn linear_ftc_is_stated_in_the_stream_line() {
    let file = write_file("clean.odmrec", &clean_recording().0);
    let path = file.path();
    let (lines, _) = analyse(path, &["--ftc", "linear:1.5"]);
    assert_eq!(lines[0]["ftc_formula"], "linear");
    assert_eq!(lines[0]["ftc_linear_k_ms_per_bpm"], 1.5);
    for b in of_type(&lines, "beat") {
        let ft = b["ft_ms"].as_f64().unwrap();
        let hr = b["hr_bpm"].as_f64().unwrap();
        let ftc = b["ftc_ms"].as_f64().unwrap();
        assert!((ftc - (ft + 1.5 * (hr - 60.0))).abs() < 0.02, "{b}");
    }
}

#[test]
fn garbage_input_gives_a_stream_line_with_nulls_and_the_counters() {
    let junk: Vec<u8> = (0..5000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let out = odm(&["analyse", "-"], Some(&junk));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["type"], "stream");
    assert!(lines[0]["sample_rate_hz"].is_null());
    assert_eq!(lines[1]["type"], "summary");
    assert_eq!(lines[1]["beats"], 0);
    assert!(lines[1]["median"]["sd_cm"].is_null());
    // Not a recording (no magic, no sync at the start): 8 bytes are taken as
    // a damaged magic, the rest is resync.
    assert_eq!(lines[1]["resync_bytes"], lines[1]["bytes_read"]);
}

#[test]
fn usage_errors_exit_2_and_runtime_errors_exit_1_with_the_file_named() {
    let file = write_file("clean.odmrec", &clean_recording().0);
    let path = file.path();
    let p = path.to_str().unwrap();
    let partial = odm(&["analyse", p, "--age", "50"], None);
    assert_eq!(partial.status.code(), Some(2), "demographics need all four");
    let bad_ftc = odm(&["analyse", p, "--ftc", "hodges"], None);
    assert_eq!(bad_ftc.status.code(), Some(2));
    let bad_d = odm(&["analyse", p, "--aortic-diameter-mm", "2.4"], None);
    assert_eq!(bad_d.status.code(), Some(2), "cm typed as mm");
    let missing = odm(&["analyse", "/nonexistent/x.odmrec"], None);
    assert_eq!(missing.status.code(), Some(1));
    let err = String::from_utf8(missing.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("/nonexistent/x.odmrec"), "{err}");
}

/// A raw probe stream (no file magic) of `cfg`, as a probe interface sends it.
fn raw_stream(cfg: SimConfig) -> Vec<Payload> {
    let mut probe = VirtualProbe::new(cfg).unwrap();
    let mut out = Vec::new();
    while let Some(p) = probe.next_payload() {
        out.push(p);
    }
    out
}

fn encode(payloads: &[Payload], enc: &mut odm_device_io::Encoder) -> Vec<u8> {
    let mut bytes = Vec::new();
    for p in payloads {
        enc.encode(p, &mut bytes).unwrap();
    }
    bytes
}

/// `odm analyse -` of `bytes` on standard input, its lines parsed.
fn analyse_stdin(bytes: &[u8]) -> Vec<Value> {
    let out = odm(&["analyse", "-"], Some(bytes));
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn samples_before_the_first_probe_info_are_held_not_lost() {
    let payloads = raw_stream(base_cfg(5, 20.0));
    assert!(matches!(payloads[0], Payload::ProbeInfo(_)));
    let mut enc = odm_device_io::Encoder::new();
    let in_order = encode(&payloads, &mut enc);
    // The stream joined late: the first 50 IQ blocks (0.5 s) and a probe
    // event come before any PROBE_INFO.
    let mut late: Vec<Payload> = payloads[1..51].to_vec();
    late.push(Payload::Event(odm_device_io::ProbeEvent {
        at_sample: 3_000,
        code: 1,
        value: 0,
    }));
    late.push(payloads[0].clone());
    late.extend_from_slice(&payloads[51..]);
    let mut enc = odm_device_io::Encoder::new();
    let late = encode(&late, &mut enc);

    let a = analyse_stdin(&in_order);
    let b = analyse_stdin(&late);
    assert_eq!(
        b[0]["type"], "stream",
        "stream line first even after held items"
    );
    assert_eq!(b[0]["samples_before_probe_info"], "held");
    let ev = &b[1];
    assert_eq!(
        (ev["kind"].as_str(), ev["code"].as_u64()),
        (Some("probe_event"), Some(1))
    );
    assert!((ev["t_s"].as_f64().unwrap() - 0.15).abs() < 1e-9);
    let summary = b.last().unwrap();
    assert_eq!(summary["samples_dropped_before_probe_info"], 0);
    assert_eq!(summary["magic"], "raw_stream");
    // Same beats as when PROBE_INFO came first.
    let beats = |v: &[Value]| {
        v.iter()
            .filter(|l| l["type"] == "beat")
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(beats(&a), beats(&b));

    // Without any PROBE_INFO every sample is dropped, and the stream line
    // says so (serial-stream.md: "holds or drops them and says which").
    let no_info: Vec<Payload> = payloads[1..]
        .iter()
        .filter(|p| !matches!(p, Payload::ProbeInfo(_)))
        .cloned()
        .collect();
    let samples: u64 = no_info
        .iter()
        .map(|p| match p {
            Payload::Iq(b) => b.samples.len() as u64,
            _ => 0,
        })
        .sum();
    let mut enc = odm_device_io::Encoder::new();
    let c = analyse_stdin(&encode(&no_info, &mut enc));
    assert_eq!(c[0]["samples_before_probe_info"], "dropped");
    assert_eq!(
        c.last().unwrap()["samples_dropped_before_probe_info"],
        samples
    );
}

#[test]
fn a_restarted_sender_gives_one_discontinuity_and_continuous_beat_indices() {
    let first = raw_stream(base_cfg(8, 15.0));
    let second = raw_stream(base_cfg(9, 15.0));
    let mut enc = odm_device_io::Encoder::new();
    let mut bytes = encode(&first, &mut enc);
    // The sender restarted: seq and first_sample start from 0 again.
    let mut enc = odm_device_io::Encoder::new();
    bytes.extend(encode(&second, &mut enc));
    let lines = analyse_stdin(&bytes);
    let summary = lines.last().unwrap();
    assert_eq!(summary["discontinuities"], 1);
    assert_eq!(summary["seq_resets"], 1);
    // Two segments of 15 s each were analysed (their sample indices both
    // start at 0, so their span of indices is only 15 s).
    assert_eq!(summary["duration_s"], 30.0);
    let disc: Vec<&Value> = lines
        .iter()
        .filter(|l| l["kind"] == "discontinuity")
        .collect();
    assert_eq!(disc.len(), 1);
    assert_eq!(disc[0]["t_s"], 0.0);
    let beats = of_type(&lines, "beat");
    for (i, b) in beats.iter().enumerate() {
        assert_eq!(b["index"], i as u64);
    }
    // Beats from both segments: onsets restart after the discontinuity.
    let pos = lines
        .iter()
        .position(|l| l["kind"] == "discontinuity")
        .unwrap();
    let before = lines[..pos].iter().filter(|l| l["type"] == "beat").count();
    let after = lines[pos..].iter().filter(|l| l["type"] == "beat").count();
    assert!(before >= 10 && after >= 10, "{before} + {after} beats");
}

#[test]
fn blocks_with_the_transmitter_muted_are_a_gap_in_the_signal_not_lost_samples() {
    // The transmitter muted for 1.5 s from 6 s (IQ flags bit 1), its
    // samples holding the echo still: no beat across it is accepted, and no
    // `gap` event says samples were lost.
    let mut payloads = raw_stream(base_cfg(12, 20.0));
    let (mute_from, mute_to) = (120_000_u64, 150_000_u64);
    for p in &mut payloads {
        if let Payload::Iq(b) = p
            && (mute_from..mute_to).contains(&b.first_sample)
        {
            b.flags |= odm_device_io::FLAG_TX_MUTED;
        }
    }
    let mut enc = odm_device_io::Encoder::new();
    let lines = analyse_stdin(&encode(&payloads, &mut enc));
    assert!(!lines.iter().any(|l| l["kind"] == "gap"));
    let summary = lines.last().unwrap();
    assert_eq!(summary["lost_samples"], 0);
    let (a, b) = (mute_from as f64 / 20_000.0, mute_to as f64 / 20_000.0);
    let beats = of_type(&lines, "beat");
    let across: Vec<&&Value> = beats
        .iter()
        .filter(|x| x["onset_s"].as_f64().unwrap() < b && x["next_onset_s"].as_f64().unwrap() > a)
        .collect();
    assert!(!across.is_empty());
    for x in &across {
        assert_eq!(x["accepted"], false, "{x}");
        assert_eq!(x["reject_reason"], "gap", "{x}");
    }
    // The beats clear of it are accepted as usual.
    let accepted = beats.iter().filter(|x| x["accepted"] == true).count();
    assert!(
        accepted + across.len() + 2 >= beats.len(),
        "{accepted} of {}",
        beats.len()
    );
}

#[test]
fn a_reported_receive_gain_change_is_not_taken_for_diathermy() {
    // The gain turned up 16 dB at 8 s: reported by an EVENT (code 2), the
    // beats after it are accepted; unreported, the noise floor's step is
    // taken for diathermy for seconds.
    let step = 160_000_u64;
    let mut payloads = raw_stream(base_cfg(14, 20.0));
    for p in &mut payloads {
        if let Payload::Iq(b) = p
            && b.first_sample >= step
        {
            for x in b.samples.iter_mut().flatten() {
                *x = (f64::from(*x) * 6.31).clamp(-32768.0, 32767.0) as i16;
            }
        }
    }
    let interference = |lines: &[Value]| {
        of_type(lines, "beat")
            .iter()
            .filter(|b| b["reject_reason"] == "interference")
            .count()
    };
    let mut enc = odm_device_io::Encoder::new();
    let untold = analyse_stdin(&encode(&payloads, &mut enc));
    assert!(interference(&untold) >= 3, "{}", interference(&untold));
    let at = payloads
        .iter()
        .position(|p| matches!(p, Payload::Iq(b) if b.first_sample >= step))
        .unwrap();
    payloads.insert(
        at,
        Payload::Event(odm_device_io::ProbeEvent {
            at_sample: step,
            code: 2,
            value: 160,
        }),
    );
    let mut enc = odm_device_io::Encoder::new();
    let told = analyse_stdin(&encode(&payloads, &mut enc));
    assert_eq!(interference(&told), 0);
    let gain_events = told
        .iter()
        .filter(|l| l["kind"] == "probe_event" && l["code"] == 2)
        .count();
    assert_eq!(gain_events, 1);
}

#[test]
fn a_bolus_near_the_end_is_reported_incomplete_before_the_summary() {
    let (bytes, _) = record(
        base_cfg(21, 30.0),
        vec![Note::Bolus {
            t_s: 25.0,
            volume_ml: 200.0,
        }],
    );
    let file = write_file("late-bolus.odmrec", &bytes);
    let path = file.path();
    let (lines, _) = analyse(path, &[]);
    let n = lines.len();
    assert_eq!(lines[n - 1]["type"], "summary");
    assert_eq!(lines[n - 2]["type"], "fluid_challenge");
    let fc = &lines[n - 2];
    assert_eq!(fc["complete"], false);
    assert_eq!(fc["volume_ml"], 200.0);
    // Only 5 s of stream after the bolus: at most ~6 beats, fewer than the
    // 10 needed to judge, so no judgement; the means and their change are
    // still stated (analysis-output.md: only `responsive` needs the beats).
    assert!(
        fc["delta_pct"].is_number() && fc["responsive"].is_null(),
        "{fc}"
    );
    let aw: Vec<f64> = fc["after_window_s"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    // The window averaged: from the bolus to the end of the stream.
    assert_eq!(aw[0], 25.0);
    assert!(aw[1] > 25.0 && aw[1] <= 30.0 + 1e-9, "{aw:?}");
    assert!(fc["beats_before"].as_u64().unwrap() > 0);
    assert!(fc["beats_after"].as_u64().unwrap() < 10);
}

#[test]
fn odm_simulate_recording_with_gaps_bolus_and_patient_analyses_consistently() {
    let file = temp_path("simulated.odmrec");
    let path = file.path();
    let p = path.to_str().unwrap();
    let sim = odm(
        &[
            "simulate",
            "--out",
            p,
            "--duration",
            "40",
            "--seed",
            "4",
            "--gaps",
            "--diathermy",
            "--bolus-at",
            "12",
            "--bolus-ml",
            "250",
            "--age",
            "60",
            "--sex",
            "male",
            "--height-cm",
            "175",
            "--weight-kg",
            "80",
        ],
        None,
    );
    assert!(
        sim.status.success(),
        "{}",
        String::from_utf8_lossy(&sim.stderr)
    );
    let (lines, _) = analyse(path, &[]);
    let summary = lines.last().unwrap();
    let events = of_type(&lines, "event");
    // Every lost sample is in exactly one gap event.
    let gaps: Vec<&&Value> = events.iter().filter(|e| e["kind"] == "gap").collect();
    assert!(!gaps.is_empty());
    let lost: u64 = gaps
        .iter()
        .map(|g| g["lost_samples"].as_u64().unwrap())
        .sum();
    assert_eq!(lost, summary["lost_samples"].as_u64().unwrap());
    // No accepted beat's cycle overlaps a gap (analysis-output.md).
    for g in &gaps {
        let a = g["t_s"].as_f64().unwrap();
        let z = a + g["lost_samples"].as_f64().unwrap() / 20_000.0;
        for b in of_type(&lines, "beat") {
            let (o, n) = (
                b["onset_s"].as_f64().unwrap(),
                b["next_onset_s"].as_f64().unwrap(),
            );
            if o < z && n > a {
                assert_eq!(b["accepted"], false, "{b} overlaps the gap {a}..{z}");
            }
        }
    }
    // Patient annotation → population model: 25.8 + 0.16·(60 − 50) = 27.4 mm.
    let m = events.iter().find(|e| e["kind"] == "area_model").unwrap();
    assert_eq!(m["aortic_diameter_mm"], 27.4);
    // One fluid challenge for the one bolus, with its volume and time.
    let fc = of_type(&lines, "fluid_challenge");
    assert_eq!(fc.len(), 1);
    assert_eq!(fc[0]["bolus_t_s"], 12.0);
    assert_eq!(fc[0]["volume_ml"], 250.0);
    assert_eq!(fc[0]["before_window_s"][0], 0.0);
    // Events come in time order within their kinds' sources.
    let t: Vec<f64> = gaps.iter().map(|g| g["t_s"].as_f64().unwrap()).collect();
    assert!(t.windows(2).all(|w| w[0] < w[1]));
}

/// cli.md: a usage error exits 2, also when the value is out of range only
/// by the simulator's own check (found after parsing), and writes nothing;
/// a negative SNR is a value, not a flag; the truth file's lines are
/// `beat` lines of analysis-output.md, `type` included.
#[test]
fn odm_simulate_usage_errors_exit_2_and_its_truth_lines_are_beat_lines() {
    let file = temp_path("usage.odmrec");
    let p = file.path().to_str().unwrap();
    for bad in [
        &["--duration", "0"][..],
        &["--duration", "nan"],
        &["--duration", "1", "--hr", "39"],
        &["--duration", "1", "--sv-ml", "0"],
        &["--duration", "1", "--snr-db", "1000"],
        &["--duration", "1", "--bolus-at=-1", "--bolus-ml", "100"],
        &[
            "--duration",
            "1",
            "--age",
            "50",
            "--height-cm",
            "nan",
            "--weight-kg",
            "70",
        ],
        &["--duration", "1", "--utc", "yesterday"],
    ] {
        let mut args = vec!["simulate", "--out", p];
        args.extend_from_slice(bad);
        let out = odm(&args, None);
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.trim().is_empty(), "{bad:?}: says why");
        assert!(!file.path().exists(), "{bad:?}: nothing written");
    }
    let out = odm(
        &[
            "simulate",
            "--out",
            p,
            "--duration",
            "3",
            "--snr-db",
            "-10",
            "--utc",
            "2026-12-02T10:00:00Z",
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let truth = std::fs::read_to_string(file.path().with_extension("truth.jsonl")).unwrap();
    assert!(truth.lines().count() >= 2, "{truth}");
    for line in truth.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["type"], "beat", "{line}");
        assert!(v["onset_s"].is_number() && v["sd_cm"].is_number(), "{line}");
    }
}

#[test]
fn a_damaged_magic_is_reported_and_the_frames_still_analysed() {
    let bytes = &clean_recording().0;
    let file = write_file("clean.odmrec", bytes);
    let path = file.path();
    let mut bad = bytes.clone();
    bad[0] = b'X';
    let bad_file = write_file("bad-magic.odmrec", &bad);
    let bad_path = bad_file.path();
    let (good, _) = analyse(path, &[]);
    let (damaged, _) = analyse(bad_path, &[]);
    assert_eq!(damaged.last().unwrap()["magic"], "damaged");
    assert_eq!(good.last().unwrap()["magic"], "good");
    let beats = |v: &[Value]| {
        v.iter()
            .filter(|l| l["type"] == "beat")
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(beats(&good), beats(&damaged));
}
