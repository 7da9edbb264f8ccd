//! A recorder process killed with SIGKILL mid-stream loses at most what it
//! had not flushed (spec "Recording file": the writer flushes at least once
//! per second; readers return every complete frame before the damage).

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{iq, probe_info};
use odm_device_io::{DecodedItem, Payload, RecordingReader, RecordingStart, RecordingWriter};

const CHILD_ENV: &str = "ODM_KILL_TEST_RECORDING";
const BLOCK: usize = 200;

/// The child side: records forever (until killed), printing after each
/// flush how many frames are safe.
#[test]
#[ignore = "helper run as a child process by sigkill_loses_at_most_the_unflushed_second"]
fn child_recorder_process() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let start = RecordingStart::now("kill-test", 0);
    let mut w = RecordingWriter::create(&PathBuf::from(path), &start, &probe_info()).unwrap();
    let mut reported = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut k = 0u64;
    while Instant::now() < deadline {
        w.write_payload(&iq(k * BLOCK as u64, BLOCK)).unwrap();
        k += 1;
        if w.frames_flushed() != reported {
            reported = w.frames_flushed();
            println!("flushed {reported}");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn sigkill_loses_at_most_the_unflushed_second() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("killed.odmrec");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "child_recorder_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    // Wait for the writer's second timed flush (first one is at creation).
    let mut flushed = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(n) = line.strip_prefix("flushed ") {
            flushed.push(n.trim().parse::<u64>().unwrap());
            if flushed.len() == 3 {
                break;
            }
        }
    }
    assert_eq!(
        flushed.len(),
        3,
        "child stopped before flushing: {flushed:?}"
    );
    // Kill it between flushes, with unflushed frames in its buffer.
    std::thread::sleep(Duration::from_millis(400));
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    let safe = *flushed.last().unwrap();

    let mut r = RecordingReader::open(&path).unwrap();
    let mut frames = 0u64;
    let mut next_sample = 0u64;
    while let Some(item) = r.next_item().unwrap() {
        match item {
            DecodedItem::Frame(f) => {
                assert_eq!(u64::from(f.seq), frames, "frames in order, none missing");
                if let Payload::Iq(b) = f.payload {
                    assert_eq!(b.first_sample, next_sample);
                    next_sample = b.end_sample();
                }
                frames += 1;
            }
            DecodedItem::Resync { .. } => {}
            other => panic!("unexpected item in a killed recording: {other:?}"),
        }
    }
    assert!(
        frames >= safe,
        "only {frames} frames recovered, {safe} were flushed before the kill"
    );
    let c = r.counters();
    assert_eq!(c.crc_errors + c.lost_frames + c.lost_samples, 0, "{c:?}");
    // Anything after the last complete frame is reported as the damaged
    // tail, and it is less than one frame.
    match r.damaged_tail() {
        None => assert_eq!(c.resync_bytes, 0),
        Some(t) => {
            assert_eq!(t.bytes, c.resync_bytes);
            assert!(t.bytes < 12 + 12 + 4 * BLOCK as u64);
        }
    }
}
