//! Recording files (spec "Recording file"): layout, numbering, damaged and
//! truncated files, raw streams and slow readers.

mod common;

use std::io::Read;

use common::{iq, probe_info};
use odm_device_io::{
    DecodedItem, Decoder, Frame, MAGIC, MagicStatus, Payload, RecordingReader, RecordingStart,
    RecordingWriter, Sex, kind,
};

fn sample_recording() -> Vec<u8> {
    let start = RecordingStart::new("2026-11-30T12:00:00Z", "odm-test 1", 0);
    let mut w = RecordingWriter::new(Vec::new(), &start, &probe_info()).unwrap();
    w.annotate_patient(0, 64, 172.5, 80.0, Sex::Female).unwrap();
    for k in 0..20u64 {
        w.write_payload(&iq(k * 100, 100)).unwrap();
    }
    w.annotate_bolus(1000, 250.0, Some("Hartmann's")).unwrap();
    w.annotate_marker(1500, "probe repositioned").unwrap();
    w.annotate_stream_error(1900, "crc_errors", 3).unwrap();
    w.finish().unwrap()
}

fn read_all(bytes: &[u8]) -> (Vec<Frame>, RecordingReader<&[u8]>) {
    let mut r = RecordingReader::new(bytes).unwrap();
    let mut frames = Vec::new();
    while let Some(f) = r.next_frame().unwrap() {
        frames.push(f);
    }
    (frames, r)
}

#[test]
fn writes_magic_start_annotation_probe_info_and_numbers_frames() {
    let bytes = sample_recording();
    assert_eq!(&bytes[..8], b"ODMREC1\n");
    assert_eq!(MAGIC, [0x4F, 0x44, 0x4D, 0x52, 0x45, 0x43, 0x31, 0x0A]);
    let (frames, r) = read_all(&bytes);
    assert_eq!(frames.len(), 2 + 1 + 20 + 3);
    for (i, f) in frames.iter().enumerate() {
        assert_eq!(usize::from(f.seq), i, "seq 0, 1, 2, … over every frame");
    }
    let Payload::Annotation(a) = &frames[0].payload else {
        panic!("first frame is not an annotation: {:?}", frames[0]);
    };
    assert_eq!(a.kind(), "recording_started");
    assert_eq!(a.json["utc"], "2026-11-30T12:00:00Z");
    assert_eq!(a.json["software"], "odm-test 1");
    assert_eq!(frames[1].payload, Payload::ProbeInfo(probe_info()));
    let Payload::Annotation(p) = &frames[2].payload else {
        panic!("patient annotation missing");
    };
    assert_eq!(p.kind(), "patient");
    assert_eq!(p.json["age_years"], 64);
    assert_eq!(p.json["height_cm"], 172.5);
    assert_eq!(p.json["weight_kg"], 80.0);
    assert_eq!(p.json["sex"], "female");
    let Payload::Annotation(e) = &frames[25].payload else {
        panic!("stream_error annotation missing");
    };
    assert_eq!(e.kind(), "stream_error");
    assert_eq!(e.at_sample, 1900);
    assert_eq!(e.json["what"], "crc_errors");
    assert_eq!(e.json["count"], 3);
    assert_eq!(*r.magic(), MagicStatus::Good);
    assert!(r.counters().is_clean(), "{:?}", r.counters());
    assert_eq!(r.counters().bytes_read, bytes.len() as u64 - 8);
    assert_eq!(r.damaged_tail(), None);
}

#[test]
fn start_time_is_rfc3339_utc() {
    let s = RecordingStart::now("x", 0);
    let t = time::OffsetDateTime::parse(
        &s.utc_rfc3339,
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert_eq!(t.offset(), time::UtcOffset::UTC);
}

#[test]
fn truncated_recording_reads_every_complete_frame_and_reports_tail() {
    let bytes = sample_recording();
    // Frame boundaries from an independent decode of the whole file.
    let mut ends = Vec::new();
    let mut d = Decoder::with_base_offset(8);
    d.feed(&bytes[8..]);
    d.finish();
    while let Some(item) = d.next_item() {
        if let DecodedItem::Frame(_) = item {
            let (off, len) = d.last_frame_span().unwrap();
            ends.push(off + len as u64);
        }
    }
    for cut in 8..bytes.len() {
        let (frames, r) = read_all(&bytes[..cut]);
        let complete = ends.iter().filter(|&&e| e <= cut as u64).count();
        assert_eq!(frames.len(), complete, "cut at {cut}");
        let last_end = if complete == 0 { 8 } else { ends[complete - 1] };
        match r.damaged_tail() {
            None => assert_eq!(last_end, cut as u64, "cut at {cut}"),
            Some(t) => {
                assert_eq!(t.offset, last_end, "cut at {cut}");
                assert_eq!(t.bytes, cut as u64 - last_end, "cut at {cut}");
            }
        }
        assert_eq!(r.counters().crc_errors, 0, "cut at {cut}");
    }
}

#[test]
fn damaged_magic_is_reported_and_frames_still_read() {
    let good = sample_recording();
    let (want, _) = read_all(&good);
    let mut bytes = good.clone();
    bytes[3] = b'X';
    let (frames, r) = read_all(&bytes);
    assert_eq!(frames, want);
    assert_eq!(
        *r.magic(),
        MagicStatus::Damaged {
            found: b"ODMXEC1\n".to_vec()
        }
    );
    assert_eq!(r.counters().bytes_read, bytes.len() as u64 - 8);
}

#[test]
fn recording_damaged_in_the_middle_keeps_frames_on_both_sides() {
    let good = sample_recording();
    let (want, _) = read_all(&good);
    let mut bytes = good.clone();
    // Corrupt one byte of an IQ frame in the middle of the file.
    let pos = bytes.len() / 2; // inside an IQ frame in the middle
    bytes[pos] ^= 0xFF;
    let (frames, r) = read_all(&bytes);
    assert_eq!(frames.len(), want.len() - 1);
    assert_eq!(r.counters().crc_errors, 1);
    assert_eq!(r.counters().lost_frames, 1);
    assert!(r.counters().lost_samples > 0);
    assert_eq!(r.damaged_tail(), None);
}

#[test]
fn reads_a_raw_stream_without_magic() {
    let good = sample_recording();
    let (want, _) = read_all(&good);
    let (frames, r) = read_all(&good[8..]);
    assert_eq!(frames, want);
    assert_eq!(*r.magic(), MagicStatus::RawStream);
    assert_eq!(r.counters().bytes_read, good.len() as u64 - 8);
}

#[test]
fn file_shorter_than_magic_is_reported_not_refused() {
    let (frames, r) = read_all(b"ODMR");
    assert!(frames.is_empty());
    assert_eq!(
        *r.magic(),
        MagicStatus::Truncated {
            found: b"ODMR".to_vec()
        }
    );
    let (frames, r) = read_all(b"");
    assert!(frames.is_empty());
    assert!(matches!(r.magic(), MagicStatus::Truncated { found } if found.is_empty()));
}

/// A reader that hands out one byte per call, like a slow pipe.
struct Trickle<'a>(&'a [u8]);
impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match (self.0.split_first(), buf.first_mut()) {
            (Some((b, rest)), Some(slot)) => {
                *slot = *b;
                self.0 = rest;
                Ok(1)
            }
            _ => Ok(0),
        }
    }
}

#[test]
fn reads_from_a_one_byte_at_a_time_pipe() {
    let good = sample_recording();
    let (want, _) = read_all(&good);
    let mut r = RecordingReader::new(Trickle(&good)).unwrap();
    let mut frames = Vec::new();
    while let Some(f) = r.next_frame().unwrap() {
        frames.push(f);
    }
    assert_eq!(frames, want);
    assert_eq!(*r.magic(), MagicStatus::Good);
}

#[test]
fn write_raw_keeps_payload_bytes_and_refuses_malformed_ones() {
    let start = RecordingStart::new("2026-11-30T12:00:00Z", "t", 0);
    let mut w = RecordingWriter::new(Vec::new(), &start, &probe_info()).unwrap();
    // A PROBE_INFO with a non-zero reserved byte: kept byte for byte.
    let mut payload = Vec::new();
    odm_device_io::encode_payload(&Payload::ProbeInfo(probe_info()), &mut payload).unwrap();
    payload[11] = 0x7E;
    w.write_raw(kind::PROBE_INFO, &payload).unwrap();
    assert!(w.write_raw(kind::EVENT, &[0u8; 13]).is_err());
    assert!(w.write_raw(0x42, b"future kind").is_err());
    let bytes = w.finish().unwrap();
    let mut r = RecordingReader::new(&bytes[..]).unwrap();
    let mut last = None;
    while let Some(item) = r.next_item().unwrap() {
        if let DecodedItem::Frame(f) = item {
            last = Some((f.seq, r.decoder().last_payload().unwrap().1.to_vec()));
        }
    }
    assert_eq!(last, Some((2, payload)));
}

#[test]
fn recording_file_is_created_and_reread_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.odmrec");
    let start = RecordingStart::now("t", 500);
    let mut w = RecordingWriter::create(&path, &start, &probe_info()).unwrap();
    w.write_payload(&iq(500, 10)).unwrap();
    // Flushed data is in the file even while the writer is still open.
    w.flush().unwrap();
    assert_eq!(w.frames_flushed(), 3);
    let mut r = RecordingReader::open(&path).unwrap();
    let mut n = 0;
    while r.next_frame().unwrap().is_some() {
        n += 1;
    }
    assert_eq!(n, 3);
    drop(w);
    let err = RecordingReader::open(&dir.path().join("missing.odmrec")).unwrap_err();
    assert!(err.to_string().contains("missing.odmrec"), "{err}");
}

/// A sink that counts flushes and how many bytes had arrived at each.
#[derive(Default)]
struct CountingSink {
    bytes: Vec<u8>,
    flushed_at: Vec<usize>,
}

impl std::io::Write for CountingSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.flushed_at.push(self.bytes.len());
        Ok(())
    }
}

#[test]
fn writer_flushes_once_the_last_flush_is_a_second_old() {
    let start = RecordingStart::new("2026-11-30T12:00:00Z", "t", 0);
    let mut w = RecordingWriter::new(CountingSink::default(), &start, &probe_info()).unwrap();
    // The header is flushed at once.
    assert_eq!(w.frames_flushed(), 2);
    w.write_payload(&iq(0, 10)).unwrap();
    // Idle for more than the flush interval, then one more frame: it must
    // reach the sink without an explicit flush.
    std::thread::sleep(
        odm_device_io::recording::FLUSH_INTERVAL + std::time::Duration::from_millis(50),
    );
    w.write_payload(&iq(10, 10)).unwrap();
    assert_eq!(w.frames_flushed(), 4);
    // And an idle recorder thread flushes with flush_if_due.
    w.write_payload(&iq(20, 10)).unwrap();
    std::thread::sleep(
        odm_device_io::recording::FLUSH_INTERVAL + std::time::Duration::from_millis(50),
    );
    assert!(w.flush_if_due().unwrap());
    assert_eq!(w.frames_flushed(), 5);
    let sink = w.finish().unwrap();
    assert!(sink.flushed_at.len() >= 3);
    assert_eq!(*sink.flushed_at.last().unwrap(), sink.bytes.len());
}
