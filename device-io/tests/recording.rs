//! Recording files (spec "Recording file"): layout, numbering, damaged and
//! truncated files, raw streams and slow readers.

mod common;

use std::io::Read;

use common::{iq, probe_info};
use odm_device_io::{
    DecodedItem, Decoder, Encoder, Frame, MAGIC, MagicStatus, Payload, RecordingReader,
    RecordingStart, RecordingWriter, Sex, kind,
};
use proptest::prelude::*;

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
    // The damaged magic goes to the decoder too: counted, and skipped as
    // resynchronisation bytes.
    assert_eq!(r.counters().bytes_read, bytes.len() as u64);
    assert_eq!(r.counters().resync_bytes, 8);
    assert_eq!(r.damaged_tail(), None);
}

/// How a test damages the magic.
#[derive(Debug, Clone, Copy)]
enum MagicDamage {
    /// Byte `pos` deleted.
    Delete(usize),
    /// Byte `b` inserted before byte `pos`.
    Insert(usize, u8),
    /// Byte `pos` replaced by `b`.
    Substitute(usize, u8),
}

/// `good` with its magic damaged, and how many bytes the damaged magic has.
fn damage_magic(good: &[u8], how: MagicDamage) -> (Vec<u8>, usize) {
    let mut bytes = good.to_vec();
    match how {
        MagicDamage::Delete(pos) => {
            bytes.remove(pos);
            (bytes, 7)
        }
        MagicDamage::Insert(pos, b) => {
            bytes.insert(pos, b);
            (bytes, 9)
        }
        MagicDamage::Substitute(pos, b) => {
            bytes[pos] = b;
            (bytes, 8)
        }
    }
}

/// Every frame after a damaged magic is read, the first
/// (`recording_started`) included; the damaged magic is reported (unless
/// the damage happens to leave the first 8 bytes intact) and only its own
/// bytes are skipped.
fn check_damaged_magic(good: &[u8], want: &[Frame], how: MagicDamage) {
    let (bytes, magic_len) = damage_magic(good, how);
    let (frames, r) = read_all(&bytes);
    assert_eq!(frames.len(), want.len(), "{how:?}");
    assert_eq!(frames, want, "{how:?}");
    let c = r.counters();
    if bytes[..8] == MAGIC {
        // e.g. '\n' inserted before the '\n': an intact magic, then 1 byte.
        assert_eq!(*r.magic(), MagicStatus::Good, "{how:?}");
        assert_eq!(c.bytes_read, bytes.len() as u64 - 8, "{how:?}");
        assert_eq!(c.resync_bytes, magic_len as u64 - 8, "{how:?}");
    } else {
        assert_eq!(
            *r.magic(),
            MagicStatus::Damaged {
                found: bytes[..8].to_vec()
            },
            "{how:?}"
        );
        assert_eq!(c.bytes_read, bytes.len() as u64, "{how:?}");
        assert_eq!(c.resync_bytes, magic_len as u64, "{how:?}");
    }
    assert_eq!(c.frames_good, want.len() as u64, "{how:?}");
    assert_eq!((c.crc_errors, c.lost_frames), (0, 0), "{how:?}");
    assert_eq!(r.damaged_tail(), None, "{how:?}");
}

#[test]
fn magic_damaged_by_deleting_inserting_or_substituting_a_byte_loses_no_frame() {
    let good = sample_recording();
    let (want, _) = read_all(&good);
    assert_eq!(want.len(), 26);
    for (pos, &m) in MAGIC.iter().enumerate() {
        check_damaged_magic(&good, &want, MagicDamage::Delete(pos));
        for b in [0x00, 0xA5, 0x5A, 0xFF, b'O', b'\n', m ^ 0x20] {
            check_damaged_magic(&good, &want, MagicDamage::Insert(pos, b));
            if b != m {
                check_damaged_magic(&good, &want, MagicDamage::Substitute(pos, b));
            }
        }
    }
}

#[test]
fn audit_case_magic_byte_3_deleted_keeps_recording_started() {
    let start = RecordingStart::new("2026-11-30T12:00:00Z", "odm-test 1", 0);
    let mut w = RecordingWriter::new(Vec::new(), &start, &probe_info()).unwrap();
    for k in 0..6u64 {
        w.write_payload(&iq(k * 100, 100)).unwrap();
    }
    let good = w.finish().unwrap();
    let mut bytes = good.clone();
    bytes.remove(3);
    let (frames, r) = read_all(&bytes);
    assert_eq!(frames.len(), 8);
    let Payload::Annotation(a) = &frames[0].payload else {
        panic!("first frame lost: {:?}", frames[0]);
    };
    assert_eq!(a.kind(), "recording_started");
    assert_eq!(r.counters().resync_bytes, 7);
    assert_eq!(r.counters().bytes_read, bytes.len() as u64);
}

/// Garbage bytes that hold no frame sync (`A5 5A`), possibly with lone `A5`s.
fn garbage(k: usize, seed: u8) -> Vec<u8> {
    (0..k)
        .map(|i| match (i + usize::from(seed)) % 5 {
            0 => 0xA5,
            1 => 0x00,
            2 => (i as u8).wrapping_mul(37).wrapping_add(seed) | 0x01,
            3 => 0xA5,
            _ => 0xFF,
        })
        .map(|b| if b == 0x5A { 0x5B } else { b })
        .collect()
}

/// A raw stream (no magic) that starts with `k` garbage bytes: every frame
/// is read, exactly the garbage is skipped, every byte is counted.
fn check_raw_stream_with_garbage(raw: &[u8], want: &[Frame], junk: &[u8], step: usize) {
    assert!(!junk.windows(2).any(|w| w == [0xA5, 0x5A]), "{junk:02x?}");
    let mut bytes = junk.to_vec();
    bytes.extend_from_slice(raw);
    let mut r = RecordingReader::new(Short { data: &bytes, step }).unwrap();
    let mut frames = Vec::new();
    while let Some(f) = r.next_frame().unwrap() {
        frames.push(f);
    }
    let k = junk.len();
    assert_eq!(frames, want, "k = {k}, {junk:02x?}");
    let c = r.counters();
    assert_eq!(c.frames_good, want.len() as u64, "k = {k}");
    assert_eq!(c.resync_bytes, k as u64, "k = {k}, {junk:02x?}");
    assert_eq!(c.bytes_read, bytes.len() as u64, "k = {k}");
    assert_eq!((c.crc_errors, c.lost_frames), (0, 0), "k = {k}");
    assert_eq!(r.damaged_tail(), None, "k = {k}");
    if k == 0 {
        assert_eq!(*r.magic(), MagicStatus::RawStream);
    } else {
        assert!(matches!(r.magic(), MagicStatus::Damaged { .. }), "k = {k}");
    }
}

#[test]
fn raw_stream_starting_mid_frame_loses_only_the_garbage() {
    let good = sample_recording();
    let (want, _) = read_all(&good);
    let raw = &good[8..];
    for k in 0..=20 {
        for seed in 0..5 {
            for step in [1, 3, 8, 64 * 1024] {
                check_raw_stream_with_garbage(raw, &want, &garbage(k, seed), step);
            }
        }
        check_raw_stream_with_garbage(raw, &want, &vec![0xA5; k], 7);
        // The tail of a real frame (no sync in it), as when a capture
        // starts mid-frame.
        let tail = &raw[raw.len() - k..];
        if !tail.windows(2).any(|w| w == [0xA5, 0x5A]) {
            check_raw_stream_with_garbage(raw, &want, tail, 5);
        }
    }
    // The audit's case: three bytes, then the frames.
    check_raw_stream_with_garbage(raw, &want, &[0x00, 0x01, 0x02], 64 * 1024);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_single_byte_damage_to_the_magic_loses_no_frame(
        op in 0u8..3,
        pos in 0usize..8,
        b in any::<u8>(),
    ) {
        let good = sample_recording();
        let (want, _) = read_all(&good);
        let how = match op {
            0 => MagicDamage::Delete(pos),
            1 => MagicDamage::Insert(pos, b),
            _ => {
                prop_assume!(b != MAGIC[pos]);
                MagicDamage::Substitute(pos, b)
            }
        };
        check_damaged_magic(&good, &want, how);
    }

    #[test]
    fn raw_stream_after_any_sync_free_garbage_reads_every_frame(
        junk in proptest::collection::vec(any::<u8>(), 0..=20)
            .prop_filter("no frame sync in the garbage", |j| {
                !j.windows(2).any(|w| w == [0xA5, 0x5A])
            }),
        step in 1usize..200,
    ) {
        prop_assume!(!junk.starts_with(&MAGIC));
        let good = sample_recording();
        let (want, _) = read_all(&good);
        check_raw_stream_with_garbage(&good[8..], &want, &junk, step);
    }
}

#[test]
fn raw_probe_info_is_recorded_byte_for_byte() {
    // A PROBE_INFO as a probe sent it, reserved byte 0x77 (spec: 0).
    let mut one = Vec::new();
    Encoder::new()
        .encode(&Payload::ProbeInfo(probe_info()), &mut one)
        .unwrap();
    let mut d = Decoder::new();
    d.feed(&one);
    assert!(matches!(d.next_item(), Some(DecodedItem::Frame(_))));
    let mut sent = d.last_payload().unwrap().1.to_vec();
    assert_eq!(sent[11], 0);
    sent[11] = 0x77;

    let start = RecordingStart::new("2026-11-30T12:00:00Z", "odm-test 1", 0);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("raw.odmrec");
    let mut via_file = RecordingWriter::create_raw(&path, &start, &sent).unwrap();
    via_file.write_raw(kind::PROBE_INFO, &sent).unwrap();
    via_file.finish().unwrap();
    let mut via_sink = RecordingWriter::new_raw(Vec::new(), &start, &sent).unwrap();
    via_sink.write_raw(kind::PROBE_INFO, &sent).unwrap();
    let in_memory = via_sink.finish().unwrap();
    let on_disk = std::fs::read(&path).unwrap();
    assert_eq!(on_disk, in_memory);

    let mut r = RecordingReader::new(&in_memory[..]).unwrap();
    let mut stored = Vec::new();
    while let Some(item) = r.next_item().unwrap() {
        if let DecodedItem::Frame(f) = item {
            let (k, p) = r.decoder().last_payload().unwrap();
            stored.push((f.seq, k, p.to_vec(), f.payload));
        }
    }
    assert!(r.counters().is_clean(), "{:?}", r.counters());
    assert_eq!(stored.len(), 3);
    let Payload::Annotation(a) = &stored[0].3 else {
        panic!("recording_started missing");
    };
    assert_eq!(a.kind(), "recording_started");
    for (i, (seq, k, payload, parsed)) in stored.iter().enumerate().skip(1) {
        assert_eq!(usize::from(*seq), i);
        assert_eq!(*k, kind::PROBE_INFO);
        assert_eq!(*payload, sent, "payload byte for byte");
        assert_eq!(*parsed, Payload::ProbeInfo(probe_info()));
    }

    // A payload that does not fit PROBE_INFO is refused, not recorded.
    assert!(RecordingWriter::new_raw(Vec::new(), &start, &sent[..43]).is_err());
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
    // Its bytes are in no frame: read, and resync bytes (serial-stream.md),
    // as an 8-byte damaged magic's are.
    assert_eq!(r.counters().bytes_read, 4);
    assert_eq!(r.counters().resync_bytes, 4);
    let (_, r) = read_all(b"abcdefgh");
    assert_eq!(r.counters().bytes_read, 8);
    assert_eq!(r.counters().resync_bytes, 8);
    let (frames, r) = read_all(b"");
    assert!(frames.is_empty());
    assert!(matches!(r.magic(), MagicStatus::Truncated { found } if found.is_empty()));
}

/// A reader that hands out at most `step` bytes per call.
struct Short<'a> {
    data: &'a [u8],
    step: usize,
}
impl Read for Short<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.step.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
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

/// A sink that counts its writes and flushes, and how many bytes had
/// arrived at each flush.
#[derive(Default)]
struct CountingSink {
    bytes: Vec<u8>,
    writes: usize,
    flushed_at: Vec<usize>,
}

impl std::io::Write for CountingSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.writes += 1;
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

#[test]
fn writer_counts_its_frames_and_bytes_and_hands_them_over_in_large_chunks() {
    let start = RecordingStart::new("2026-11-30T12:00:00Z", "t", 0);
    let mut w = RecordingWriter::new(CountingSink::default(), &start, &probe_info()).unwrap();
    assert_eq!(w.frames_written(), 2, "recording_started and probe_info");
    let header_bytes = w.bytes_written();
    let mut frame_bytes = 0;
    for k in 0..800u64 {
        let before = w.bytes_written();
        w.write_payload(&iq(k * 100, 100)).unwrap();
        frame_bytes = w.bytes_written() - before;
        assert_eq!(w.frames_written(), 3 + k);
    }
    // A 100-sample IQ frame (serial-stream.md): 400 bytes of samples after
    // first_sample, count and flags (12), inside the frame's 8-byte header
    // and 4-byte CRC.
    assert_eq!(frame_bytes, 8 + 12 + 400 + 4);
    assert_eq!(w.bytes_written(), header_bytes + 800 * frame_bytes);
    let total = w.bytes_written();
    let sink = w.finish().unwrap();
    assert_eq!(
        sink.bytes.len() as u64,
        total,
        "every byte counted reaches the sink"
    );
    // Between flushes the frames are handed over 64 KiB at a time (one
    // system call per chunk, not per frame); a timed flush may add one.
    let chunks = total.div_ceil(64 * 1024) as usize;
    assert!(
        sink.writes <= chunks + sink.flushed_at.len() + 1,
        "{} writes for {total} bytes in {} flushes",
        sink.writes,
        sink.flushed_at.len()
    );
}

/// A reader that fails every other call with `Interrupted` (a signal
/// arriving during a `read`), then, once its data is out, with `fail`.
struct Flaky<'a> {
    data: &'a [u8],
    calls: usize,
    fail: Option<std::io::ErrorKind>,
}
impl Read for Flaky<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.calls += 1;
        if self.calls % 2 == 1 {
            return Err(std::io::ErrorKind::Interrupted.into());
        }
        if self.data.is_empty()
            && let Some(kind) = self.fail
        {
            return Err(kind.into());
        }
        let n = 1000.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

#[test]
fn interrupted_reads_are_retried_and_other_read_errors_reported() {
    let bytes = sample_recording();
    let (want, _) = read_all(&bytes);
    // Interrupted is retried, in the magic and after it: every frame read.
    let src = Flaky {
        data: &bytes,
        calls: 0,
        fail: None,
    };
    let mut r = RecordingReader::new(src).unwrap();
    assert_eq!(*r.magic(), MagicStatus::Good);
    let mut got = Vec::new();
    while let Some(f) = r.next_frame().unwrap() {
        got.push(f);
    }
    assert_eq!(got, want);
    // Any other error is the source's failure, reported with where it
    // happened, after the frames before it.
    let src = Flaky {
        data: &bytes,
        calls: 0,
        fail: Some(std::io::ErrorKind::BrokenPipe),
    };
    let mut r = RecordingReader::with_name(src, "probe link".into()).unwrap();
    let mut frames = 0;
    let err = loop {
        match r.next_frame() {
            Ok(Some(_)) => frames += 1,
            Ok(None) => panic!("a failed source read as a clean end"),
            Err(e) => break e,
        }
    };
    assert_eq!(frames, want.len());
    let text = err.to_string();
    assert!(text.contains("probe link"), "{text}");
    assert!(text.contains(&format!("byte {}", bytes.len())), "{text}");
    // A failure inside the magic is reported too.
    let src = Flaky {
        data: &[],
        calls: 0,
        fail: Some(std::io::ErrorKind::PermissionDenied),
    };
    let err = RecordingReader::with_name(src, "case.odmrec".into()).err();
    assert!(err.is_some_and(|e| e.to_string().contains("byte 0")));
}

#[test]
fn the_reader_iterates_over_the_same_items_as_next_item() {
    let mut bytes = sample_recording();
    bytes.truncate(bytes.len() - 5);
    let mut r = RecordingReader::new(bytes.as_slice()).unwrap();
    let mut want = Vec::new();
    while let Some(item) = r.next_item().unwrap() {
        want.push(item);
    }
    let got: Vec<DecodedItem> = RecordingReader::new(bytes.as_slice())
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(got.len() > 20, "{} items", got.len());
    assert_eq!(got, want);
}
