//! cli.md: a runtime failure exits 1 with one line on standard error. An
//! output that cannot be written (a closed pipe, a full disk) is one, and
//! must not end the program with a panic (exit 101).

use std::process::{Command, Stdio};

/// `/dev/full`: every write fails with "No space left on device".
fn full() -> Option<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .ok()
}

#[test]
fn a_full_standard_output_is_a_runtime_failure_not_a_panic() {
    let Some(dev_full) = full() else {
        eprintln!("no /dev/full here: skipped");
        return;
    };
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("unwritable-output");
    std::fs::create_dir_all(&dir).expect("temp dir");
    let rec = dir.join("x.odmrec");
    let _ = std::fs::remove_file(&rec);
    let out = Command::new(env!("CARGO_BIN_EXE_odm"))
        .args(["simulate", "--duration", "1", "--out"])
        .arg(&rec)
        .stdout(dev_full)
        .stderr(Stdio::piped())
        .output()
        .expect("run odm");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(
        err.starts_with("odm: error:") && !err.contains("panicked"),
        "{err}"
    );
    assert!(rec.exists(), "the recording itself was written");
}

#[test]
fn a_full_standard_error_still_exits_1_without_a_panic() {
    let Some(dev_full) = full() else {
        eprintln!("no /dev/full here: skipped");
        return;
    };
    // A missing file: the failure's line cannot be written either.
    let out = Command::new(env!("CARGO_BIN_EXE_odm"))
        .args(["analyse", "/nonexistent/x.odmrec"])
        .stdout(Stdio::null())
        .stderr(dev_full)
        .output()
        .expect("run odm");
    assert_eq!(out.status.code(), Some(1));
}
