//! `odm monitor`, the headless monitor: the virtual probe analysed live.

use std::process::Command;

#[test]
fn headless_monitor_streams_beats_from_the_virtual_probe_then_a_summary() {
    let out = Command::new(env!("CARGO_BIN_EXE_odm"))
        .args(["monitor", "--duration", "4", "--seed", "3"])
        .output()
        .expect("run odm monitor");
    assert!(out.status.success(), "exit {:?}", out.status);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("SIMULATED"), "stderr: {stderr}");
    // It says how the OS schedules the pipeline (real time, or why not).
    assert!(
        stderr.contains("DSP SCHED_FIFO priority 40") || stderr.contains("DSP normal scheduling ("),
        "stderr: {stderr}"
    );
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    assert_eq!(
        lines.first().map(|l| l["type"].clone()),
        Some("stream".into())
    );
    assert_eq!(
        lines.last().map(|l| l["type"].clone()),
        Some("summary".into())
    );
    let beats: Vec<_> = lines.iter().filter(|l| l["type"] == "beat").collect();
    // Four seconds of a ~75/min virtual probe hold at least two complete cycles.
    assert!(!beats.is_empty(), "no beat in 4 s: {text}");
    for b in beats {
        let hr = b["hr_bpm"].as_f64().expect("hr");
        assert!((40.0..=180.0).contains(&hr), "hr {hr}");
    }
    let summary = lines.last().expect("summary");
    assert_eq!(summary["crc_errors"], 0);
    assert_eq!(summary["lost_samples"], 0);
}

#[test]
fn headless_monitor_rejects_a_bad_duration_as_usage_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_odm"))
        .args(["monitor", "--duration", "-1"])
        .output()
        .expect("run odm monitor");
    assert_eq!(out.status.code(), Some(2));
}
