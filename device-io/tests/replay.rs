//! File replay as a byte source: exact bytes, pacing, pause and seek.

mod common;

use std::path::Path;

use common::{iq, probe_info};
use odm_device_io::{
    ByteSource, DecodedItem, Decoder, Frame, Pace, Payload, RecordingStart, RecordingWriter,
    ReplaySource, SourceRead,
};

/// A recording of `blocks` IQ blocks of 1000 samples (50 ms each at 20 kHz).
fn write_recording(path: &Path, blocks: u64) -> Vec<u8> {
    let start = RecordingStart::new("2026-11-30T12:00:00Z", "replay-test", 0);
    let mut w = RecordingWriter::create(path, &start, &probe_info()).unwrap();
    for k in 0..blocks {
        w.write_payload(&iq(k * 1000, 1000)).unwrap();
        if k == 3 {
            w.annotate_marker(k * 1000, "m").unwrap();
        }
    }
    drop(w.finish().unwrap());
    std::fs::read(path).unwrap()
}

/// Reads until End; returns the bytes and how many Idle results came.
fn drain(src: &mut ReplaySource, buf_len: usize) -> (Vec<u8>, usize) {
    let mut out = Vec::new();
    let mut idle = 0;
    let mut buf = vec![0u8; buf_len];
    loop {
        match src.read_chunk(&mut buf).unwrap() {
            SourceRead::Bytes(n) => out.extend_from_slice(&buf[..n]),
            SourceRead::Idle => idle += 1,
            SourceRead::End => return (out, idle),
            other => panic!("replay reported {other:?}"),
        }
    }
}

fn iq_firsts(bytes: &[u8]) -> Vec<u64> {
    let mut d = Decoder::new();
    d.feed(bytes);
    d.finish();
    std::iter::from_fn(|| d.next_item())
        .filter_map(|i| match i {
            DecodedItem::Frame(Frame {
                payload: Payload::Iq(b),
                ..
            }) => Some(b.first_sample),
            _ => None,
        })
        .collect()
}

#[test]
fn fast_replay_hands_out_exactly_the_stream_after_the_magic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.odmrec");
    let file = write_recording(&path, 30);
    let mut src = ReplaySource::open(&path, Pace::AsFastAsPossible).unwrap();
    let (out, _) = drain(&mut src, 777);
    assert_eq!(out, file[8..]);
    let mut buf = [0u8; 16];
    assert_eq!(src.read_chunk(&mut buf).unwrap(), SourceRead::End);
}

#[test]
fn damaged_bytes_are_replayed_too() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.odmrec");
    let mut file = write_recording(&path, 10);
    let mid = file.len() / 2;
    file[mid] ^= 0x55;
    file.extend_from_slice(&[0xA5, 0x5A, 0x01]); // damaged tail
    std::fs::write(&path, &file).unwrap();
    let mut src = ReplaySource::open(&path, Pace::AsFastAsPossible).unwrap();
    let (out, _) = drain(&mut src, 4096);
    assert_eq!(out, file[8..]);
}

#[test]
fn paced_replay_waits_for_the_signal_time_and_keeps_the_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.odmrec");
    let file = write_recording(&path, 8); // 0.4 s of signal
    let mut src = ReplaySource::open(&path, Pace::RealTime { speed: 1.0 }).unwrap();
    let ctl = src.control();
    let (out, idle) = drain(&mut src, 64 * 1024);
    assert_eq!(out, file[8..]);
    // 8 blocks of 50 ms cannot all be due at once: the source waited.
    assert!(idle > 0, "paced replay never waited");
    assert_eq!(ctl.position_sample(), 8000);
}

#[test]
fn pause_stops_the_bytes_and_resume_continues() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.odmrec");
    let file = write_recording(&path, 6);
    let mut src = ReplaySource::open(&path, Pace::RealTime { speed: 20.0 }).unwrap();
    let ctl = src.control();
    let mut buf = vec![0u8; 1 << 16];
    let mut out = Vec::new();
    // Read until the first IQ block is out.
    while iq_firsts(&out).is_empty() {
        if let SourceRead::Bytes(n) = src.read_chunk(&mut buf).unwrap() {
            out.extend_from_slice(&buf[..n]);
        }
    }
    ctl.set_paused(true);
    assert!(ctl.is_paused());
    let at = ctl.position_sample();
    for _ in 0..3 {
        assert_eq!(src.read_chunk(&mut buf).unwrap(), SourceRead::Idle);
    }
    assert_eq!(ctl.position_sample(), at);
    ctl.set_paused(false);
    let (rest, _) = drain(&mut src, 1 << 16);
    out.extend_from_slice(&rest);
    assert_eq!(out, file[8..]);
}

#[test]
fn seek_restarts_at_the_block_covering_the_target_with_probe_info_first() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.odmrec");
    write_recording(&path, 12);
    let mut src = ReplaySource::open(&path, Pace::AsFastAsPossible).unwrap();
    let ctl = src.control();
    let mut buf = vec![0u8; 3000];
    // Start reading, then jump ahead.
    let _ = src.read_chunk(&mut buf).unwrap();
    ctl.seek_to_sample(7_500);
    let (out, _) = drain(&mut src, 3000);
    let mut d = Decoder::new();
    d.feed(&out);
    d.finish();
    let frames: Vec<Frame> = std::iter::from_fn(|| d.next_item())
        .filter_map(|i| match i {
            DecodedItem::Frame(f) => Some(f),
            _ => None,
        })
        .collect();
    assert_eq!(frames[0].payload, Payload::ProbeInfo(probe_info()));
    assert_eq!(iq_firsts(&out), vec![7000, 8000, 9000, 10000, 11000]);
    assert_eq!(d.counters().resync_bytes, 0);

    // Back to the start, then beyond the end.
    ctl.seek_to_sample(0);
    let (out, _) = drain(&mut src, 3000);
    assert_eq!(iq_firsts(&out).len(), 12);
    ctl.seek_to_sample(1_000_000);
    let (out, _) = drain(&mut src, 3000);
    assert!(iq_firsts(&out).is_empty());
}

#[test]
fn speed_control_ignores_nonsense() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.odmrec");
    write_recording(&path, 1);
    let src = ReplaySource::open(&path, Pace::RealTime { speed: 2.0 }).unwrap();
    let ctl = src.control();
    assert_eq!(ctl.speed(), 2.0);
    for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        ctl.set_speed(bad);
        assert_eq!(ctl.speed(), 2.0);
    }
    ctl.set_speed(0.5);
    assert_eq!(ctl.speed(), 0.5);
}
