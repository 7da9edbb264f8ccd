//! End to end: `odm verify` through a pseudo-terminal pair, with and
//! without a (deliberately wrong) probe calibration installed.

use odm_device_io::calibration::{
    CALIBRATION_FORMAT, CALIBRATION_VERSION, CalDate, Calibration, CalibrationLimits,
    CalibrationStore, MeasurementMode,
};
use std::path::PathBuf;
use std::process::{Command, Output};

const ODM: &str = env!("CARGO_BIN_EXE_odm");

fn odm(args: &[&str]) -> Output {
    Command::new(ODM).args(args).output().expect("running odm")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

struct TempDir(PathBuf);
impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("odm-verify-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self(dir)
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A table row: (segment, quantity, true, measured, error, result).
fn rows(stdout: &str) -> Vec<(String, String, f64, f64, String, String)> {
    stdout
        .lines()
        .skip(1)
        .filter(|l| l.ends_with("PASS") || l.ends_with("FAIL"))
        .filter(|l| !l.starts_with("verification"))
        .map(|l| {
            // The quantity may contain one space ("HR 1/min"); columns are fixed width.
            let seg = l.get(..8).unwrap_or("").trim().to_string();
            let qty = l.get(9..24).unwrap_or("").trim().to_string();
            let rest: Vec<&str> = l.get(24..).unwrap_or("").split_whitespace().collect();
            let num = |i: usize| {
                rest.get(i)
                    .and_then(|s| s.parse::<f64>().ok())
                    .unwrap_or(f64::NAN)
            };
            let result = rest.last().copied().unwrap_or("").to_string();
            (
                seg,
                qty,
                num(0),
                num(1),
                rest.get(2).copied().unwrap_or("").to_string(),
                result,
            )
        })
        .collect()
}

#[test]
fn streams_the_schedule_through_a_pty_and_judges_every_segment() {
    let dir = TempDir::new("report");
    let report = dir.0.join("verify.json");
    let report_arg = report.to_str().expect("utf-8");
    let out = odm(&[
        "verify",
        "--fast",
        "--duration",
        "30",
        "--no-calibration",
        "--report",
        report_arg,
    ]);
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    let table = rows(&stdout);
    // The JSON report holds the same checks and verdict as the table.
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("report written"))
            .expect("report is JSON");
    let checks = json["checks"].as_array().expect("checks");
    assert_eq!(checks.len(), table.len());
    assert_eq!(json["pass"], out.status.success());
    assert_eq!(json["schedule"].as_array().map(Vec::len), Some(3));
    assert!(json["calibration_applied"].is_null());
    // The receive path lost nothing.
    let bytes = table
        .iter()
        .find(|r| r.1 == "bytes received")
        .expect("bytes row");
    assert!(
        bytes.2 > 2.0e6 && bytes.2 == bytes.3 && bytes.5 == "PASS",
        "{stdout}"
    );
    let errors = table
        .iter()
        .find(|r| r.1 == "stream errors")
        .expect("errors row");
    assert!(errors.3 == 0.0 && errors.5 == "PASS", "{stdout}");
    // Every segment has every check, with the schedule's true values.
    for seg in ["1", "2", "3"] {
        for q in ["accepted beats", "HR 1/min", "FTc ms", "SV ml", "PV cm/s"] {
            assert!(
                table.iter().any(|r| r.0 == seg && r.1 == q),
                "segment {seg} lacks {q}:\n{stdout}"
            );
        }
    }
    // Default schedule: 60, 110 and 80 beats/min; true medians follow it.
    let hr = |seg: &str| {
        table
            .iter()
            .find(|r| r.0 == seg && r.1 == "HR 1/min")
            .map(|r| r.2)
            .unwrap_or(f64::NAN)
    };
    assert!(
        (hr("1") - 60.0).abs() < 3.0
            && (hr("2") - 110.0).abs() < 5.0
            && (hr("3") - 80.0).abs() < 4.0
    );
    // The exit status agrees with the table.
    let any_fail = table.iter().any(|r| r.5 == "FAIL");
    assert_eq!(out.status.success(), !any_fail, "{stdout}{stderr}");
    if any_fail {
        assert!(stderr.contains("verification FAILED"), "{stderr}");
    } else {
        assert!(stdout.contains("verification PASSED"));
    }
    assert!(stderr.contains("no probe calibration applied"), "{stderr}");
}

#[test]
fn a_wrong_installed_calibration_fails_peak_velocity() {
    let dir = TempDir::new("cal");
    // Claims the probe reads 20% high: every corrected velocity is 1/1.2 of true.
    let date = CalDate::parse("2026-11-30").expect("date");
    let cal = Calibration {
        format: CALIBRATION_FORMAT.into(),
        version: CALIBRATION_VERSION,
        probe_serial: "VERIFY-SIM".into(),
        date,
        valid_until: date.plus_days(365),
        engineer: "test".into(),
        phantom: "none".into(),
        mode: MeasurementMode::Steady,
        gain: 1.2,
        offset_cm_s: 0.0,
        gain_ci95: [1.19, 1.21],
        r2: 1.0,
        residuals_cm_s: vec![0.0; 3],
        gain_within_tolerance: false,
        offset_within_tolerance: Some(true),
        pass: false,
        limits: CalibrationLimits {
            gain_tolerance: 0.05,
            residual_limit_cm_s: 3.0,
            residual_limit_pct: 3.0,
            offset_tolerance_cm_s: Some(3.0),
        },
        runs: (1..=3)
            .map(|i| odm_device_io::calibration::CalibrationRun {
                recording: format!("r{i}"),
                reference_cm_s: 50.0 * f64::from(i),
                measured_cm_s: 60.0 * f64::from(i),
                residual_cm_s: 0.0,
                residual_limit_cm_s: 3.0,
                within_limit: true,
                points: 100,
                iq_image_db: None,
                iq_channel_fault: false,
                sha256: None,
            })
            .collect(),
        measured_with_correction: None,
        software: "test".into(),
        conditions: None,
    };
    CalibrationStore::new(&dir.0)
        .save(&cal)
        .expect("saving calibration");
    let store = dir.0.to_str().expect("utf-8");
    let out = odm(&[
        "verify",
        "--fast",
        "--duration",
        "30",
        "--calibrations",
        store,
    ]);
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stderr.contains("calibration of probe VERIFY-SIM applied (gain 1.2000"),
        "{stderr}"
    );
    // The same signal without the calibration: the calibrated run must read
    // every segment's peak velocity 1/1.2 of the uncalibrated one.
    let raw = odm(&["verify", "--fast", "--duration", "30", "--no-calibration"]);
    let raw_rows = rows(&text(&raw.stdout));
    let cal_rows = rows(&stdout);
    let mut compared = 0;
    for r in cal_rows
        .iter()
        .filter(|r| r.1 == "PV cm/s" && r.3.is_finite())
    {
        let Some(u) = raw_rows
            .iter()
            .find(|u| u.0 == r.0 && u.1 == r.1 && u.3.is_finite())
        else {
            continue;
        };
        let ratio = r.3 / u.3;
        assert!(
            (ratio * 1.2 - 1.0).abs() < 0.02,
            "segment {}: PV ratio {ratio:.4}, expected 1/1.2:\n{stdout}",
            r.0
        );
        // A 16.7% under-reading is far outside the ±5% limit.
        assert_eq!(r.5, "FAIL", "{stdout}");
        compared += 1;
    }
    assert!(compared > 0, "no segment had a measured PV:\n{stdout}");
}

#[test]
fn schedule_problems_are_one_line_errors() {
    let out = odm(&[
        "verify",
        "--fast",
        "--schedule",
        "/nonexistent/schedule.json",
        "--no-calibration",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("/nonexistent/schedule.json") && err.lines().count() == 1,
        "{err}"
    );
    // An option value out of its range is a usage error (cli.md).
    let out = odm(&["verify", "--fast", "--duration", "10", "--no-calibration"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("at least 6 s"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_loopback_needs_both_ports() {
    let out = odm(&["verify", "--out-port", "/dev/ttyUSB0"]);
    assert_eq!(out.status.code(), Some(2));
}

/// One pseudo-terminal pair with its slave in raw mode: (master, slave kept open, slave path).
fn raw_pty() -> (std::fs::File, std::os::fd::OwnedFd, String) {
    use nix::sys::termios::{SetArg, Termios, cfmakeraw, tcgetattr, tcsetattr};
    let pair = nix::pty::openpty(None::<&nix::pty::Winsize>, None::<&Termios>).expect("openpty");
    let mut tio = tcgetattr(&pair.slave).expect("tcgetattr");
    cfmakeraw(&mut tio);
    tcsetattr(&pair.slave, SetArg::TCSANOW, &tio).expect("tcsetattr");
    let path = nix::unistd::ttyname(&pair.slave)
        .expect("ttyname")
        .display()
        .to_string();
    (std::fs::File::from(pair.master), pair.slave, path)
}

/// `odm verify --fast` (30 s, no calibration) from port A to port B, two
/// "ports" joined by a "cable": what is written to port A's device comes
/// out of pair A's master, `cable` carries it into pair B's master, and it
/// is read from port B's device — the path a null-modem cable takes.
fn verify_through_cable(
    cable: impl FnOnce(std::fs::File, std::fs::File) + Send + 'static,
) -> Output {
    let (master_a, _slave_a, port_a) = raw_pty();
    let (master_b, _slave_b, port_b) = raw_pty();
    std::thread::spawn(move || cable(master_a, master_b));
    odm(&[
        "verify",
        "--out-port",
        &port_a,
        "--in-port",
        &port_b,
        "--fast",
        "--duration",
        "30",
        "--no-calibration",
    ])
}

#[test]
fn a_loopback_cable_between_two_ports_is_verified() {
    use std::io::{Read, Write};
    let out = verify_through_cable(|mut from_a, mut to_b| {
        let mut buf = [0u8; 8192];
        while let Ok(n) = from_a.read(&mut buf) {
            if n == 0 || to_b.write_all(&buf[..n]).is_err() {
                break;
            }
        }
    });
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert!(stderr.contains("loopback cable"), "{stderr}");
    let table = rows(&stdout);
    let bytes = table
        .iter()
        .find(|r| r.1 == "bytes received")
        .expect("bytes row");
    assert!(bytes.2 > 2.0e6 && bytes.5 == "PASS", "{stdout}{stderr}");
    let errors = table
        .iter()
        .find(|r| r.1 == "stream errors")
        .expect("errors row");
    assert_eq!(errors.5, "PASS", "{stdout}");
    assert!(
        table.iter().any(|r| r.0 == "3" && r.1 == "PV cm/s"),
        "{stdout}"
    );
}

/// A link that zeroes the Q channel (CRC recomputed, so the stream is
/// clean) mirrors the flow at full power, and velocities can still read
/// true: only the dead-channel check catches it, and the failure line
/// says why (an audit's relay passed all 17 checks, 2026-12-04).
#[test]
fn a_link_that_zeroes_the_q_channel_fails_and_is_named() {
    use odm_device_io::{DecodedItem, Decoder, Encoder, Payload};
    use std::io::{Read, Write};
    let out = verify_through_cable(|mut from_a, mut to_b| {
        let mut decoder = Decoder::new();
        let mut encoder = Encoder::new();
        let mut buf = [0u8; 8192];
        let mut out = Vec::new();
        while let Ok(n) = from_a.read(&mut buf) {
            if n == 0 {
                break;
            }
            decoder.feed(&buf[..n]);
            out.clear();
            while let Some(item) = decoder.next_item() {
                if let DecodedItem::Frame(mut f) = item {
                    if let Payload::Iq(b) = &mut f.payload {
                        for s in &mut b.samples {
                            s[1] = 0;
                        }
                    }
                    encoder.encode(&f.payload, &mut out).expect("encode");
                }
            }
            if to_b.write_all(&out).is_err() {
                break;
            }
        }
    });
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    let table = rows(&stdout);
    let dead = table
        .iter()
        .find(|r| r.1 == "dead I/Q chan.")
        .expect("dead-channel row");
    assert_eq!(dead.5, "FAIL", "{stdout}");
    let errors = table
        .iter()
        .find(|r| r.1 == "stream errors")
        .expect("errors row");
    assert_eq!(errors.5, "PASS", "the relay's stream is clean: {stdout}");
    assert!(stderr.contains("I/Q channel is dead or broken"), "{stderr}");
}
