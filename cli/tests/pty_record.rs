//! The foundation issue's end-to-end check: `odm simulate --port` into one
//! pseudo-terminal and `odm record --port` from another (a relay between
//! them plays the cable) reproduce exactly the frames that `odm simulate
//! --out` writes for the same seed.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use odm_device_io::{DecodedItem, Payload, RecordingReader};

mod common;
use common::raw_pty;

const ODM: &str = env!("CARGO_BIN_EXE_odm");

/// The probe-side payloads (PROBE_INFO, IQ_SAMPLES, EVENT) of a recording, in order.
fn probe_payloads(path: &Path) -> Vec<Payload> {
    let file = File::open(path).expect("open recording");
    let mut reader = RecordingReader::new(file).expect("reader");
    let mut out = Vec::new();
    while let Some(item) = reader.next_item().expect("read") {
        if let DecodedItem::Frame(f) = item
            && !matches!(f.payload, Payload::Annotation(_))
        {
            out.push(f.payload);
        }
    }
    let c = reader.counters();
    assert_eq!(c.crc_errors, 0, "{}", path.display());
    assert_eq!(c.lost_frames, 0, "{}", path.display());
    out
}

#[test]
fn simulate_to_a_port_and_record_from_another_reproduce_the_same_frames() {
    let dir = std::env::temp_dir().join(format!("odm-pty-record-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let reference = dir.join("reference.odmrec");
    let recorded = dir.join("recorded.odmrec");
    let sim = ["--duration", "2", "--seed", "21"];

    let out = Command::new(ODM)
        .args(["simulate", "--out"])
        .arg(&reference)
        .args(sim)
        .output()
        .expect("simulate --out");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut probe_side = raw_pty();
    let mut monitor_side = raw_pty();
    let mut recorder = Command::new(ODM)
        .args(["record", "--port"])
        .arg(&monitor_side.slave_path)
        .arg("--out")
        .arg(&recorded)
        .args(["--duration", "5"])
        .spawn()
        .expect("odm record");
    // Let the recorder open its port before the probe starts talking.
    std::thread::sleep(Duration::from_millis(800));
    // The cable: bytes written by the simulated probe interface reach the
    // recorder's port. The thread stays blocked in `read` after the probe
    // stops (this test holds both slaves open); it ends with the test.
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = probe_side.master.read(&mut buf) {
            if n == 0 || monitor_side.master.write_all(&buf[..n]).is_err() {
                break;
            }
        }
    });
    let out = Command::new(ODM)
        .args(["simulate", "--port"])
        .arg(&probe_side.slave_path)
        .args(sim)
        .output()
        .expect("simulate --port");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = recorder.wait().expect("odm record ends");
    assert!(status.success(), "odm record: {status:?}");

    let want = probe_payloads(&reference);
    let got = probe_payloads(&recorded);
    assert!(want.len() > 200, "{} reference frames", want.len());
    assert_eq!(got.len(), want.len(), "frame count");
    assert!(
        got == want,
        "the recorded frames differ from the simulated ones"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A run that records nothing (no PROBE_INFO in the input) leaves an
/// earlier recording at `--out` as it was, and `--out` that is not a
/// regular file (a FIFO here; a device node alike) is refused, never
/// written or removed (an audit's `odm record` removed a device node it
/// was given, 2026-12-04).
#[test]
fn recording_nothing_leaves_out_as_it_was_and_only_regular_files_are_written() {
    let dir = std::env::temp_dir().join(format!("odm-record-out-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let input = dir.join("junk.bin");
    std::fs::write(&input, vec![0x55u8; 5000]).expect("junk");
    let earlier = dir.join("earlier.odmrec");
    std::fs::write(&earlier, b"an earlier recording").expect("earlier");
    let out = Command::new(ODM)
        .args(["record", "--port"])
        .arg(&input)
        .arg("--out")
        .arg(&earlier)
        .output()
        .expect("odm record");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("left as it was"), "{stderr}");
    assert_eq!(
        std::fs::read(&earlier).expect("still there"),
        b"an earlier recording"
    );
    // A new path: the empty file made to test writability goes again.
    let fresh = dir.join("fresh.odmrec");
    let out = Command::new(ODM)
        .args(["record", "--port"])
        .arg(&input)
        .arg("--out")
        .arg(&fresh)
        .output()
        .expect("odm record");
    assert_eq!(out.status.code(), Some(1));
    assert!(!fresh.exists());
    let fifo = dir.join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
    let out = Command::new(ODM)
        .args(["record", "--port"])
        .arg(&input)
        .arg("--out")
        .arg(&fifo)
        .output()
        .expect("odm record");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("not a regular file"), "{stderr}");
    assert!(
        std::fs::symlink_metadata(&fifo).is_ok(),
        "the FIFO was removed"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A FIFO that no writer opens does not hold `odm record` past its
/// `--duration` (a blocking open did, found by an audit 2026-12-04). The
/// 20 s allowance is a hang check, not a timing.
#[test]
fn a_fifo_without_a_writer_ends_at_the_duration() {
    let dir = std::env::temp_dir().join(format!("odm-record-fifo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let fifo = dir.join("port");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
    let mut child = Command::new(ODM)
        .args(["record", "--port"])
        .arg(&fifo)
        .arg("--out")
        .arg(dir.join("x.odmrec"))
        .args(["--duration", "1"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("odm record");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("odm record still running 20 s after a 1 s --duration");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = child.wait_with_output().expect("odm record's output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no usable PROBE_INFO"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
