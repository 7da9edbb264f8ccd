//! Replay through the real threads: a recording made from the virtual probe
//! is replayed by `LiveBackend`; pause stops the samples, seek restarts the
//! stream at the target. The checks wait for events (with a generous
//! deadline) rather than for a time, so a slow machine only makes them slower.

use std::sync::Arc;
use std::time::{Duration, Instant};

use odm_device_io::{RecordingStart, RecordingWriter};
use odm_monitor::control::{Backend, Command, SourceSpec};
use odm_monitor::handoff::{EventMsg, Handoff, SourceState};
use odm_monitor::live::LiveBackend;
use odm_simulator::{SimConfig, VirtualProbe};

const FS: u64 = 20_000;
const DEADLINE: Duration = Duration::from_secs(30);

fn record(path: &std::path::Path, seconds: f64) {
    let mut probe = VirtualProbe::new(SimConfig {
        seed: 5,
        duration_s: Some(seconds),
        snr_db: Some(20.0),
        ..SimConfig::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let info = probe.probe_info().clone();
    let start = RecordingStart::new("2026-11-30T12:00:00Z", "odm-monitor test", 0);
    let mut w = RecordingWriter::create(path, &start, &info).unwrap_or_else(|e| panic!("{e}"));
    while let Some(p) = probe.next_payload() {
        w.write_payload(&p).unwrap_or_else(|e| panic!("{e}"));
    }
    w.finish().unwrap_or_else(|e| panic!("{e}"));
}

/// Drains events until `want` matches one (or the deadline passes).
fn wait_event(h: &Handoff, what: &str, want: impl Fn(&EventMsg) -> bool) {
    let t0 = Instant::now();
    while t0.elapsed() < DEADLINE {
        while let Some(e) = h.events.pop() {
            if let EventMsg::Source(SourceState::Failed(why)) = &e {
                panic!("source failed: {why}");
            }
            if want(&e) {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("no {what} within {DEADLINE:?}");
}

fn wait_sample(h: &Handoff, at_least: u64) {
    let t0 = Instant::now();
    while h.latest_sample() < at_least {
        assert!(
            t0.elapsed() < DEADLINE,
            "replay stuck at sample {}",
            h.latest_sample()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn replay_pauses_and_seeks() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("case.odmrec");
    record(&path, 40.0);
    let handoff = Handoff::shared();
    let mut b = LiveBackend::start(SourceSpec::Replay { path }, handoff.clone(), None);
    wait_event(&handoff, "live state", |e| {
        *e == EventMsg::Source(SourceState::Live)
    });
    // Real speed: wait for half a second of stream.
    wait_sample(&handoff, FS / 2);

    b.send(Command::Pause);
    wait_event(&handoff, "paused state", |e| {
        *e == EventMsg::Source(SourceState::Paused)
    });
    // The block in flight may still land; after that the position holds.
    std::thread::sleep(Duration::from_millis(100));
    let held = handoff.latest_sample();
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(
        handoff.latest_sample(),
        held,
        "samples arrived while paused"
    );

    b.send(Command::Resume);
    b.send(Command::Seek { t_s: 30.0 });
    wait_event(&handoff, "reset after seek", |e| *e == EventMsg::Reset);
    wait_sample(&handoff, 30 * FS);
    // The seek went forwards by skipping, not by replaying 30 s in real time.
    assert!(handoff.latest_sample() < 35 * FS);
    let _ = Arc::clone(&handoff);
}
