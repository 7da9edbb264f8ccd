//! Streaming decoder of the version-1 probe serial stream: bytes in, typed
//! frames and link events out, every receiver rule and counter of
//! `shared/spec/serial-stream.md` ("Receiver rules").
//!
//! # Guarantees
//!
//! - Every byte sequence is valid input: nothing panics, nothing stops the
//!   decoder, and it never allocates without bound. The internal buffer holds
//!   at most the unconsumed part of one frame candidate (< 4 108 bytes) plus
//!   the last chunk given to [`Decoder::feed`], provided the caller drains
//!   [`Decoder::next_item`] until it returns `None` before feeding again.
//! - Chunking does not matter: feeding the same bytes in any split yields the
//!   same items and the same counters.
//! - Accounting: after [`Decoder::finish`] and draining,
//!   `bytes_read == bytes of good-CRC frames + resync_bytes` exactly.
//!
//! # Example
//!
//! ```
//! use odm_device_io::{Decoder, DecodedItem, Encoder, Payload, ProbeEvent};
//!
//! let mut bytes = Vec::new();
//! let mut enc = Encoder::new();
//! let ev = ProbeEvent { at_sample: 5, code: 1, value: 0 };
//! enc.encode(&Payload::Event(ev), &mut bytes).unwrap();
//!
//! let mut dec = Decoder::new();
//! dec.feed(&bytes);
//! dec.finish();
//! let mut frames = 0;
//! while let Some(item) = dec.next_item() {
//!     if let DecodedItem::Frame(f) = item {
//!         assert_eq!(f.payload, Payload::Event(ev));
//!         frames += 1;
//!     }
//! }
//! assert_eq!(frames, 1);
//! assert_eq!(dec.counters().frames_good, 1);
//! ```

use std::collections::VecDeque;

use crate::frame::{
    Annotation, CRC_LEN, Frame, HEADER_LEN, IqBlock, MAX_IQ_COUNT, MAX_PAYLOAD_LEN,
    MAX_SAMPLE_RATE_HZ, MIN_SAMPLE_RATE_HZ, Payload, ProbeEvent, ProbeInfo, SYNC, VERSION, kind,
};

/// Length of a PROBE_INFO payload (spec "0x01 PROBE_INFO").
pub const PROBE_INFO_LEN: usize = 44;
/// Length of an EVENT payload (spec "0x03 EVENT").
pub const EVENT_LEN: usize = 14;
/// Bytes of an IQ_SAMPLES payload before the samples (spec "0x02 IQ_SAMPLES").
pub const IQ_HEADER_LEN: usize = 12;
/// Bytes of an ANNOTATION payload before the JSON (spec "0x10 ANNOTATION").
pub const ANNOTATION_HEADER_LEN: usize = 8;
/// Largest frame on the wire: header, largest payload, CRC.
pub const MAX_FRAME_LEN: usize = HEADER_LEN + MAX_PAYLOAD_LEN + CRC_LEN;

/// The receiver counters of the spec ("Receiver rules", counter table).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Counters {
    /// Every byte given to the decoder (for a file: after the magic).
    pub bytes_read: u64,
    /// Frames whose CRC checked, of any kind, malformed or not.
    pub frames_good: u64,
    /// Candidates whose CRC failed.
    pub crc_errors: u64,
    /// Good-CRC frames skipped under rule 5 (payload does not fit its kind).
    pub malformed: u64,
    /// Good-CRC frames of a kind this version does not know.
    pub unknown_kinds: u64,
    /// Frames missing according to `seq` (rule 4).
    pub lost_frames: u64,
    /// Repeats or steps back of `seq`: the sender restarted (rule 4).
    pub seq_resets: u64,
    /// Samples missing between consecutive IQ blocks.
    pub lost_samples: u64,
    /// IQ blocks that start before the end of the previous one.
    pub discontinuities: u64,
    /// Bytes that are in no good-CRC frame, the damaged tail included.
    pub resync_bytes: u64,
}

impl Counters {
    /// Every counter with its name in the spec, in the spec's table order.
    pub fn named(&self) -> [(&'static str, u64); 10] {
        [
            ("bytes_read", self.bytes_read),
            ("frames_good", self.frames_good),
            ("crc_errors", self.crc_errors),
            ("malformed", self.malformed),
            ("unknown_kinds", self.unknown_kinds),
            ("lost_frames", self.lost_frames),
            ("seq_resets", self.seq_resets),
            ("lost_samples", self.lost_samples),
            ("discontinuities", self.discontinuities),
            ("resync_bytes", self.resync_bytes),
        ]
    }

    /// Whether anything went wrong on the link: any CRC error, malformed or
    /// unknown frame, lost frame or sample, reset, discontinuity or resync byte.
    pub fn is_clean(&self) -> bool {
        self.crc_errors == 0
            && self.malformed == 0
            && self.unknown_kinds == 0
            && self.lost_frames == 0
            && self.seq_resets == 0
            && self.lost_samples == 0
            && self.discontinuities == 0
            && self.resync_bytes == 0
    }
}

/// Why a good-CRC frame was skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// A kind this version does not know (counted in `unknown_kinds`).
    UnknownKind,
    /// PROBE_INFO or EVENT payload of the wrong length, or an IQ_SAMPLES
    /// payload whose length does not match `count` (counted in `malformed`).
    WrongLength,
    /// IQ_SAMPLES `count` outside 1 ..= 1000 (`malformed`).
    CountOutOfRange,
    /// PROBE_INFO `sample_rate_hz` outside 8 000 ..= 48 000 (`malformed`).
    SampleRateOutOfRange,
    /// IQ_SAMPLES whose samples would run past sample index `u64::MAX`
    /// (`first_sample + count` does not fit a `u64`; `malformed`): no
    /// stream reaches such an index, and a block that claims one would
    /// otherwise wrap every time computed from it.
    SampleIndexOverflow,
    /// ANNOTATION whose JSON does not parse, is not an object, or has no
    /// string `type` (`malformed`).
    BadAnnotation,
    /// ANNOTATION received from a probe interface ([`Decoder::for_wire`]):
    /// the spec's kinds table says "on the wire: never" — annotations are
    /// the monitor's own, in recordings only — so one from the wire is not
    /// trusted to set demographics or mark boluses (`malformed`).
    AnnotationOnWire,
}

/// One thing the decoder found, in stream order.
///
/// For one good frame the decoder may yield, in this order: a
/// [`DecodedItem::Resync`] for the damaged bytes before it, a
/// [`DecodedItem::SeqReset`] or [`DecodedItem::LostFrames`], a
/// [`DecodedItem::Gap`] or [`DecodedItem::Discontinuity`] (IQ blocks only), and
/// then the frame itself ([`DecodedItem::Frame`] or [`DecodedItem::Skipped`]).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum DecodedItem {
    /// A good-CRC frame of a known kind with a well-formed payload.
    Frame(Frame),
    /// A good-CRC frame skipped (unknown kind or malformed, rule 5).
    Skipped {
        /// Stream offset of its sync.
        offset: u64,
        /// Its kind byte.
        kind: u8,
        /// Its seq.
        seq: u16,
        /// Why it was skipped.
        reason: SkipReason,
    },
    /// Bytes that are in no good-CRC frame (garbage, CRC failures, false
    /// syncs, or at the end the damaged tail).
    Resync {
        /// Stream offset of the first such byte.
        offset: u64,
        /// How many bytes.
        bytes: u64,
    },
    /// `seq` jumped forward: this many frames were lost (rule 4).
    LostFrames {
        /// Number of frames missing.
        count: u64,
    },
    /// `seq` repeated or stepped back: the sender restarted (rule 4).
    SeqReset {
        /// The previous good frame's seq.
        previous: u16,
        /// This frame's seq.
        seq: u16,
    },
    /// The next IQ block starts after the end of the previous one: samples
    /// `at_sample .. at_sample + lost_samples` were lost.
    Gap {
        /// First missing sample index (end of the previous block).
        at_sample: u64,
        /// How many samples are missing.
        lost_samples: u64,
    },
    /// The next IQ block starts before the end of the previous one: the
    /// current segment ends and a new one starts at `first_sample`.
    Discontinuity {
        /// End of the previous block (the sample index that was expected).
        expected_sample: u64,
        /// First sample of the new block.
        first_sample: u64,
    },
}

/// The streaming decoder. See the module documentation.
#[derive(Debug)]
pub struct Decoder {
    buf: Vec<u8>,
    /// Index in `buf` of the first byte not yet consumed.
    pos: usize,
    /// Stream offset of `buf[0]`.
    buf_offset: u64,
    /// Stream offset one past the last good-CRC frame (or the base offset).
    last_good_end: u64,
    /// Stream offset where the run of skipped bytes not yet reported in a
    /// `Resync` item starts.
    resync_from: u64,
    finished: bool,
    /// Whether the damaged tail after `finish` has been reported.
    tail_reported: bool,
    counters: Counters,
    prev_seq: Option<u16>,
    /// End sample of the last well-formed IQ block.
    iq_end: Option<u64>,
    out: VecDeque<DecodedItem>,
    /// Range in `buf` of the payload of the last good frame handed out, and its kind.
    last_payload: Option<(u8, usize, usize)>,
    /// Stream offset and length of the last good frame handed out.
    last_span: Option<(u64, usize)>,
    /// Reading a probe interface, not a recording: ANNOTATION frames are
    /// skipped ([`SkipReason::AnnotationOnWire`]).
    wire: bool,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    /// A decoder whose stream offsets start at 0.
    pub fn new() -> Self {
        Self::with_base_offset(0)
    }

    /// A decoder whose reported stream offsets start at `base` (for a
    /// recording file: 8, the magic's length, so offsets are file offsets).
    pub fn with_base_offset(base: u64) -> Self {
        Self {
            buf: Vec::with_capacity(MAX_FRAME_LEN * 2),
            pos: 0,
            buf_offset: base,
            last_good_end: base,
            resync_from: base,
            finished: false,
            tail_reported: false,
            counters: Counters::default(),
            prev_seq: None,
            iq_end: None,
            out: VecDeque::with_capacity(4),
            last_payload: None,
            last_span: None,
            wire: false,
        }
    }

    /// A decoder for a live probe interface (serial port, pseudo-terminal):
    /// as [`Decoder::new`], but ANNOTATION frames, which the spec never
    /// puts on the wire, are skipped and counted as malformed
    /// ([`SkipReason::AnnotationOnWire`]), so the probe side cannot set a
    /// patient's demographics, mark a bolus or forge a recording's header.
    pub fn for_wire() -> Self {
        Self {
            wire: true,
            ..Self::new()
        }
    }

    /// Appends a chunk of stream bytes (any size, including 0).
    ///
    /// Drain [`Decoder::next_item`] until `None` before the next `feed` to
    /// keep memory bounded. Feeding after [`Decoder::finish`] continues the
    /// stream (as after a reconnection).
    pub fn feed(&mut self, chunk: &[u8]) {
        self.compact();
        self.finished = false;
        self.tail_reported = false;
        self.counters.bytes_read += chunk.len() as u64;
        self.buf.extend_from_slice(chunk);
    }

    /// Marks the end of the input (end of file, port closed). An unfinished
    /// candidate is then a false sync (rule 2): scanning resumes one byte
    /// after its sync, and whatever no frame claims is the damaged tail,
    /// reported as a final [`DecodedItem::Resync`] and counted in
    /// `resync_bytes`.
    pub fn finish(&mut self) {
        self.finished = true;
    }

    /// The counters so far.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Stream offset one past the last good-CRC frame seen (of any kind).
    pub fn last_good_end(&self) -> u64 {
        self.last_good_end
    }

    /// After [`Decoder::finish`] and draining: the damaged tail, i.e. the
    /// stream offset one past the last good-CRC frame and the number of bytes
    /// after it that no frame claims (`None` if the input ended cleanly).
    pub fn damaged_tail(&self) -> Option<(u64, u64)> {
        let end = self.stream_end();
        (self.finished && self.pos == self.buf.len() && end > self.last_good_end)
            .then(|| (self.last_good_end, end - self.last_good_end))
    }

    /// Stream offset one past the last byte fed.
    pub fn stream_end(&self) -> u64 {
        self.buf_offset + self.buf.len() as u64
    }

    /// The kind byte and raw payload bytes of the frame most recently
    /// returned as [`DecodedItem::Frame`], valid until the next
    /// [`Decoder::feed`]. Recorders use it to store payloads byte for byte.
    pub fn last_payload(&self) -> Option<(u8, &[u8])> {
        let (k, a, b) = self.last_payload?;
        self.buf.get(a..b).map(|p| (k, p))
    }

    /// Stream offset and length in bytes of the whole frame most recently
    /// returned as [`DecodedItem::Frame`] or [`DecodedItem::Skipped`].
    pub fn last_frame_span(&self) -> Option<(u64, usize)> {
        self.last_span
    }

    /// The next item, or `None` when more bytes are needed (or, after
    /// [`Decoder::finish`], when the input is exhausted).
    pub fn next_item(&mut self) -> Option<DecodedItem> {
        loop {
            if let Some(item) = self.out.pop_front() {
                return Some(item);
            }
            if !self.scan_one() {
                return None;
            }
        }
    }

    /// Drops consumed bytes from the front of the buffer.
    fn compact(&mut self) {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.buf_offset += self.pos as u64;
            self.pos = 0;
            self.last_payload = None;
        }
    }

    /// Skips `n` bytes that belong to no good frame.
    fn skip(&mut self, n: usize) {
        self.pos += n;
        self.counters.resync_bytes += n as u64;
    }

    /// Emits the damaged tail at the end of input, once everything is scanned.
    fn emit_tail(&mut self) {
        let end = self.buf_offset + self.pos as u64;
        if !self.tail_reported && end > self.resync_from {
            self.out.push_back(DecodedItem::Resync {
                offset: self.resync_from,
                bytes: end - self.resync_from,
            });
            self.resync_from = end;
        }
        self.tail_reported = true;
    }

    /// Scans forward until one good-CRC frame has been handled (items queued)
    /// or more input is needed. Returns whether a frame was handled.
    fn scan_one(&mut self) -> bool {
        loop {
            let avail = self.buf.get(self.pos..).unwrap_or(&[]);
            // Rule 1: scan for the sync's first byte.
            match avail.iter().position(|&b| b == SYNC[0]) {
                None => {
                    let n = avail.len();
                    self.skip(n);
                    if self.finished {
                        self.emit_tail();
                        return !self.out.is_empty();
                    }
                    return false;
                }
                Some(i) => self.skip(i),
            }
            let avail = self.buf.get(self.pos..).unwrap_or(&[]);
            let Some(&second) = avail.get(1) else {
                if self.finished {
                    // Rule 2: at the end of input a partial candidate is a false sync.
                    self.skip(1);
                    continue;
                }
                return false;
            };
            if second != SYNC[1] {
                self.skip(1);
                continue;
            }
            let Some(header) = avail.get(..HEADER_LEN) else {
                if self.finished {
                    // Rule 2: at the end of input a partial candidate is a false sync.
                    self.skip(1);
                    continue;
                }
                return false;
            };
            let version = header[2];
            let kind = header[3];
            let seq = u16::from_le_bytes([header[4], header[5]]);
            let len = usize::from(u16::from_le_bytes([header[6], header[7]]));
            if version != VERSION || len > MAX_PAYLOAD_LEN {
                // Rule 1: false sync.
                self.skip(1);
                continue;
            }
            let total = HEADER_LEN + len + CRC_LEN;
            let Some(frame) = avail.get(..total) else {
                if self.finished {
                    // Rule 2: at the end of input a partial candidate is a false sync.
                    self.skip(1);
                    continue;
                }
                return false;
            };
            let (body, crc_bytes) = frame.split_at(HEADER_LEN + len);
            let crc = u32::from_le_bytes([crc_bytes[0], crc_bytes[1], crc_bytes[2], crc_bytes[3]]);
            if crc32fast::hash(&body[2..]) != crc {
                // Rule 3: resume one byte after the sync's first byte.
                self.counters.crc_errors += 1;
                self.skip(1);
                continue;
            }
            self.accept(kind, seq, len, total);
            return true;
        }
    }

    /// Handles a good-CRC frame at `self.pos` of `total` bytes.
    fn accept(&mut self, kind: u8, seq: u16, len: usize, total: usize) {
        let offset = self.buf_offset + self.pos as u64;
        self.counters.frames_good += 1;
        if offset > self.resync_from {
            self.out.push_back(DecodedItem::Resync {
                offset: self.resync_from,
                bytes: offset - self.resync_from,
            });
        }
        self.last_good_end = offset + total as u64;
        self.resync_from = self.last_good_end;
        self.last_span = Some((offset, total));

        // Rule 4 over consecutive good frames of any kind.
        if let Some(prev) = self.prev_seq {
            let d = seq.wrapping_sub(prev);
            if d == 0 || d > 32768 {
                self.counters.seq_resets += 1;
                self.out.push_back(DecodedItem::SeqReset {
                    previous: prev,
                    seq,
                });
            } else if d >= 2 {
                let lost = u64::from(d - 1);
                self.counters.lost_frames += lost;
                self.out.push_back(DecodedItem::LostFrames { count: lost });
            }
        }
        self.prev_seq = Some(seq);

        let start = self.pos + HEADER_LEN;
        let end = start + len;
        let parsed = match self.buf.get(start..end) {
            Some(_) if self.wire && kind == kind::ANNOTATION => Err(SkipReason::AnnotationOnWire),
            Some(payload) => parse_payload(kind, payload),
            None => Err(SkipReason::WrongLength),
        };
        self.pos += total;
        match parsed {
            Ok(payload) => {
                if let Payload::Iq(block) = &payload {
                    self.track_samples(block);
                }
                self.last_payload = Some((kind, start, end));
                self.out
                    .push_back(DecodedItem::Frame(Frame { seq, payload }));
            }
            Err(reason) => {
                if reason == SkipReason::UnknownKind {
                    self.counters.unknown_kinds += 1;
                } else {
                    self.counters.malformed += 1;
                }
                self.out.push_back(DecodedItem::Skipped {
                    offset,
                    kind,
                    seq,
                    reason,
                });
            }
        }
    }

    /// Gap and discontinuity rules of "0x02 IQ_SAMPLES" and rule 4.
    fn track_samples(&mut self, block: &IqBlock) {
        let first = block.first_sample;
        if let Some(expected) = self.iq_end {
            if first > expected {
                let lost = first - expected;
                self.counters.lost_samples += lost;
                self.out.push_back(DecodedItem::Gap {
                    at_sample: expected,
                    lost_samples: lost,
                });
            } else if first < expected {
                self.counters.discontinuities += 1;
                self.out.push_back(DecodedItem::Discontinuity {
                    expected_sample: expected,
                    first_sample: first,
                });
            }
        }
        self.iq_end = Some(first.saturating_add(block.samples.len() as u64));
    }
}

fn u16_at(p: &[u8], at: usize) -> u16 {
    match p.get(at..at + 2) {
        Some(&[a, b]) => u16::from_le_bytes([a, b]),
        _ => 0,
    }
}

fn u32_at(p: &[u8], at: usize) -> u32 {
    match p.get(at..at + 4) {
        Some(&[a, b, c, d]) => u32::from_le_bytes([a, b, c, d]),
        _ => 0,
    }
}

fn u64_at(p: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    if let Some(s) = p.get(at..at + 8) {
        b.copy_from_slice(s);
    }
    u64::from_le_bytes(b)
}

/// Parses a payload of `kind` per its layout, or says why it does not fit
/// (rule 5). Callers check lengths before reading fields, so the zero
/// defaults of the `*_at` helpers are never used on a payload that passed.
pub fn parse_payload(kind: u8, p: &[u8]) -> Result<Payload, SkipReason> {
    match kind {
        kind::PROBE_INFO => {
            if p.len() != PROBE_INFO_LEN {
                return Err(SkipReason::WrongLength);
            }
            let sample_rate_hz = u32_at(p, 0);
            if !(MIN_SAMPLE_RATE_HZ..=MAX_SAMPLE_RATE_HZ).contains(&sample_rate_hz) {
                return Err(SkipReason::SampleRateOutOfRange);
            }
            let mut probe_serial = [0u8; 16];
            probe_serial.copy_from_slice(&p[20..36]);
            let mut firmware = [0u8; 8];
            firmware.copy_from_slice(&p[36..44]);
            Ok(Payload::ProbeInfo(ProbeInfo {
                sample_rate_hz,
                carrier_hz: u32_at(p, 4),
                beam_angle_cdeg: u16_at(p, 8),
                probe_model: p[10],
                minutes_used: u32_at(p, 12),
                minutes_limit: u32_at(p, 16),
                probe_serial,
                firmware,
            }))
        }
        kind::IQ_SAMPLES => {
            if p.len() < IQ_HEADER_LEN {
                return Err(SkipReason::WrongLength);
            }
            let count = usize::from(u16_at(p, 8));
            if count == 0 || count > MAX_IQ_COUNT {
                return Err(SkipReason::CountOutOfRange);
            }
            if p.len() != IQ_HEADER_LEN + 4 * count {
                return Err(SkipReason::WrongLength);
            }
            let first_sample = u64_at(p, 0);
            if first_sample.checked_add(count as u64).is_none() {
                return Err(SkipReason::SampleIndexOverflow);
            }
            let samples = p[IQ_HEADER_LEN..]
                .chunks_exact(4)
                .map(|c| {
                    [
                        i16::from_le_bytes([c[0], c[1]]),
                        i16::from_le_bytes([c[2], c[3]]),
                    ]
                })
                .collect();
            Ok(Payload::Iq(IqBlock {
                first_sample,
                flags: u16_at(p, 10),
                samples,
            }))
        }
        kind::EVENT => {
            if p.len() != EVENT_LEN {
                return Err(SkipReason::WrongLength);
            }
            Ok(Payload::Event(ProbeEvent {
                at_sample: u64_at(p, 0),
                code: u16_at(p, 8),
                value: u32_at(p, 10) as i32,
            }))
        }
        kind::ANNOTATION => {
            if p.len() < ANNOTATION_HEADER_LEN {
                return Err(SkipReason::WrongLength);
            }
            let json: serde_json::Value = serde_json::from_slice(&p[ANNOTATION_HEADER_LEN..])
                .map_err(|_| SkipReason::BadAnnotation)?;
            match json {
                serde_json::Value::Object(map)
                    if map.get("type").is_some_and(serde_json::Value::is_string) =>
                {
                    Ok(Payload::Annotation(Annotation {
                        at_sample: u64_at(p, 0),
                        json: map,
                    }))
                }
                _ => Err(SkipReason::BadAnnotation),
            }
        }
        _ => Err(SkipReason::UnknownKind),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoder::{Encoder, encode_frame, encode_raw_frame};
    use crate::frame::{Annotation, ProbeInfo};

    /// The frame of the spec's "Example" section, byte for byte.
    const GOLDEN: [u8; 32] = [
        0xA5, 0x5A, 0x01, 0x02, 0x07, 0x00, 0x14, 0x00, // header
        0xE8, 0x03, 0, 0, 0, 0, 0, 0, 0x02, 0x00, 0x00, 0x00, // first_sample, count, flags
        0x01, 0x00, 0xFF, 0xFF, 0xFE, 0xFF, 0x02, 0x00, // samples
        0x5E, 0xF5, 0x87, 0x82, // crc 0x8287F55E
    ];

    fn golden_frame() -> Frame {
        Frame {
            seq: 7,
            payload: Payload::Iq(IqBlock {
                first_sample: 1000,
                flags: 0,
                samples: vec![[1, -1], [-2, 2]],
            }),
        }
    }

    fn info(rate: u32) -> ProbeInfo {
        ProbeInfo {
            sample_rate_hz: rate,
            carrier_hz: 4_000_000,
            beam_angle_cdeg: 4500,
            probe_model: 1,
            minutes_used: 12,
            minutes_limit: 720,
            probe_serial: ProbeInfo::pad("ODM-SN-0001"),
            firmware: ProbeInfo::pad("fw1.2"),
        }
    }

    fn iq(first_sample: u64, count: usize) -> Payload {
        Payload::Iq(IqBlock {
            first_sample,
            flags: 0,
            samples: (0..count).map(|i| [i as i16, -(i as i16)]).collect(),
        })
    }

    /// Decodes `bytes` in one chunk and finishes; returns all items.
    fn decode_all(bytes: &[u8]) -> (Vec<DecodedItem>, Counters) {
        let mut d = Decoder::new();
        d.feed(bytes);
        d.finish();
        let items: Vec<_> = std::iter::from_fn(|| d.next_item()).collect();
        (items, *d.counters())
    }

    fn frames(items: &[DecodedItem]) -> Vec<Frame> {
        items
            .iter()
            .filter_map(|i| match i {
                DecodedItem::Frame(f) => Some(f.clone()),
                _ => None,
            })
            .collect()
    }

    fn frame_bytes(seq: u16, p: &Payload) -> Vec<u8> {
        let mut v = Vec::new();
        encode_frame(seq, p, &mut v).unwrap();
        v
    }

    #[test]
    fn crc_check_value_matches_spec() {
        assert_eq!(crc32fast::hash(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn decodes_spec_golden_frame() {
        let (items, c) = decode_all(&GOLDEN);
        assert_eq!(items, vec![DecodedItem::Frame(golden_frame())]);
        assert_eq!(c.frames_good, 1);
        assert_eq!(c.bytes_read, 32);
        assert!(c.is_clean());
    }

    /// The spec's counter table, names and order (serial-stream.md,
    /// "Receiver rules").
    const SPEC_COUNTERS: [&str; 10] = [
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

    fn counter_named<'a>(c: &'a mut Counters, name: &str) -> &'a mut u64 {
        match name {
            "bytes_read" => &mut c.bytes_read,
            "frames_good" => &mut c.frames_good,
            "crc_errors" => &mut c.crc_errors,
            "malformed" => &mut c.malformed,
            "unknown_kinds" => &mut c.unknown_kinds,
            "lost_frames" => &mut c.lost_frames,
            "seq_resets" => &mut c.seq_resets,
            "lost_samples" => &mut c.lost_samples,
            "discontinuities" => &mut c.discontinuities,
            "resync_bytes" => &mut c.resync_bytes,
            _ => panic!("no counter {name}"),
        }
    }

    /// `named` pairs each spec name with its own field, in the spec's order;
    /// any one problem counter alone makes the link unclean, and the two
    /// that count what arrived (bytes, good frames) do not. (A mutation run
    /// found `is_clean` only ever asserted true.)
    #[test]
    fn counters_carry_the_spec_names_and_each_problem_makes_the_link_unclean() {
        let names: Vec<&str> = Counters::default().named().iter().map(|n| n.0).collect();
        assert_eq!(names, SPEC_COUNTERS);
        for name in SPEC_COUNTERS {
            let mut c = Counters::default();
            *counter_named(&mut c, name) = 7;
            for (n, v) in c.named() {
                assert_eq!(v, if n == name { 7 } else { 0 }, "{name}: {n}");
            }
            let arrival = matches!(name, "bytes_read" | "frames_good");
            assert_eq!(c.is_clean(), arrival, "{name}");
        }
    }

    /// The largest frame of the spec: an 8-byte header, a 4 096-byte
    /// payload, a 4-byte CRC.
    #[test]
    fn the_largest_frame_is_the_specs() {
        assert_eq!(MAX_FRAME_LEN, 8 + 4096 + 4);
    }

    #[test]
    fn encodes_spec_golden_frame() {
        let f = golden_frame();
        assert_eq!(frame_bytes(f.seq, &f.payload), GOLDEN);
    }

    #[test]
    fn golden_frame_decodes_byte_by_byte() {
        let mut d = Decoder::new();
        let mut got = Vec::new();
        for b in GOLDEN {
            assert!(d.next_item().is_none());
            d.feed(&[b]);
            got.extend(std::iter::from_fn(|| d.next_item()));
        }
        assert_eq!(got, vec![DecodedItem::Frame(golden_frame())]);
    }

    #[test]
    fn skips_false_sync_with_bad_version() {
        let mut bytes = vec![0xA5, 0x5A, 0x02, 0x02, 0, 0, 0, 0];
        bytes.extend_from_slice(&GOLDEN);
        let (items, c) = decode_all(&bytes);
        assert_eq!(frames(&items), vec![golden_frame()]);
        assert_eq!(
            items[0],
            DecodedItem::Resync {
                offset: 0,
                bytes: 8
            }
        );
        assert_eq!(c.resync_bytes, 8);
        assert_eq!(c.crc_errors, 0);
    }

    #[test]
    fn skips_false_sync_with_oversized_len() {
        // len 4097 > 4096: false sync, not a CRC error, no waiting for 4 kB.
        let mut bytes = vec![0xA5, 0x5A, 0x01, 0x02, 0, 0, 0x01, 0x10];
        bytes.extend_from_slice(&GOLDEN);
        let mut d = Decoder::new();
        d.feed(&bytes);
        // Found without finish(): the false header did not make it wait.
        let items: Vec<_> = std::iter::from_fn(|| d.next_item()).collect();
        assert_eq!(frames(&items), vec![golden_frame()]);
        assert_eq!(d.counters().resync_bytes, 8);
        assert_eq!(d.counters().crc_errors, 0);
    }

    #[test]
    fn resyncs_after_corrupted_length() {
        // First frame's len grows to 4000: its CRC fails once the bytes are
        // there, and the frames it swallowed are still found (rule 3).
        let mut bytes = frame_bytes(0, &iq(0, 10));
        bytes[6] = 0xA0;
        bytes[7] = 0x0F;
        let mut seq = 1;
        let mut first = 10;
        while bytes.len() < 5000 {
            bytes.extend(frame_bytes(seq, &iq(first, 10)));
            seq += 1;
            first += 10;
        }
        let (items, c) = decode_all(&bytes);
        let f = frames(&items);
        assert_eq!(f.len(), usize::from(seq) - 1);
        assert_eq!(f[0].seq, 1);
        assert_eq!(c.crc_errors, 1);
        assert_eq!(c.resync_bytes, 12 + 52);
        assert_eq!(c.lost_frames, 0, "first good frame has nothing before it");
    }

    #[test]
    fn counts_crc_error_on_flipped_payload_bit() {
        let mut bytes = GOLDEN.to_vec();
        bytes[20] ^= 0x10;
        bytes.extend_from_slice(&GOLDEN);
        let (items, c) = decode_all(&bytes);
        assert_eq!(frames(&items).len(), 1);
        assert_eq!(c.crc_errors, 1);
        assert_eq!(c.resync_bytes, 32);
        assert_eq!(c.seq_resets, 0);
    }

    #[test]
    fn seq_wraps_from_65535_to_0_without_loss() {
        let mut bytes = frame_bytes(65534, &iq(0, 1));
        bytes.extend(frame_bytes(65535, &iq(1, 1)));
        bytes.extend(frame_bytes(0, &iq(2, 1)));
        bytes.extend(frame_bytes(1, &iq(3, 1)));
        let (_, c) = decode_all(&bytes);
        assert_eq!(c.frames_good, 4);
        assert_eq!(c.lost_frames, 0);
        assert_eq!(c.seq_resets, 0);
    }

    #[test]
    fn counts_lost_frames_across_wrap() {
        // 65533 -> 2: d = 5, four frames lost.
        let mut bytes = frame_bytes(65533, &Payload::ProbeInfo(info(20_000)));
        bytes.extend(frame_bytes(2, &Payload::ProbeInfo(info(20_000))));
        let (items, c) = decode_all(&bytes);
        assert_eq!(c.lost_frames, 4);
        assert!(items.contains(&DecodedItem::LostFrames { count: 4 }));
    }

    #[test]
    fn counts_seq_reset_on_repeat_and_step_back() {
        let p = Payload::ProbeInfo(info(20_000));
        let mut bytes = frame_bytes(100, &p);
        bytes.extend(frame_bytes(100, &p)); // d = 0: repeat
        bytes.extend(frame_bytes(50, &p)); // d > 32768: step back
        bytes.extend(frame_bytes(51, &p)); // normal
        bytes.extend(frame_bytes(51 + 32768, &p)); // d = 32768: 32767 lost
        let (items, c) = decode_all(&bytes);
        assert_eq!(c.seq_resets, 2);
        assert_eq!(c.lost_frames, 32767);
        assert!(items.contains(&DecodedItem::SeqReset {
            previous: 100,
            seq: 50
        }));
    }

    #[test]
    fn counts_lost_samples_and_reports_gap() {
        let mut bytes = frame_bytes(0, &iq(500, 100));
        bytes.extend(frame_bytes(1, &iq(600, 100)));
        bytes.extend(frame_bytes(2, &iq(750, 100)));
        let (items, c) = decode_all(&bytes);
        assert_eq!(c.lost_samples, 50);
        assert_eq!(c.discontinuities, 0);
        assert_eq!(
            items[2],
            DecodedItem::Gap {
                at_sample: 700,
                lost_samples: 50
            }
        );
        assert!(matches!(items[3], DecodedItem::Frame(_)));
    }

    #[test]
    fn samples_before_first_block_are_not_lost() {
        let (_, c) = decode_all(&frame_bytes(0, &iq(123_456, 10)));
        assert_eq!(c.lost_samples, 0);
    }

    #[test]
    fn reports_discontinuity_on_overlap_and_step_back() {
        let mut bytes = frame_bytes(0, &iq(1000, 100));
        bytes.extend(frame_bytes(1, &iq(1050, 100))); // overlap
        bytes.extend(frame_bytes(2, &iq(0, 100))); // counter went back
        bytes.extend(frame_bytes(3, &iq(100, 100))); // continues normally
        let (items, c) = decode_all(&bytes);
        assert_eq!(c.discontinuities, 2);
        assert_eq!(c.lost_samples, 0);
        assert!(items.contains(&DecodedItem::Discontinuity {
            expected_sample: 1100,
            first_sample: 1050
        }));
        assert!(items.contains(&DecodedItem::Discontinuity {
            expected_sample: 1150,
            first_sample: 0
        }));
    }

    fn assert_malformed(kind: u8, payload: &[u8], reason: SkipReason) {
        let mut bytes = Vec::new();
        encode_raw_frame(0, kind, payload, &mut bytes).unwrap();
        bytes.extend_from_slice(&GOLDEN);
        let (items, c) = decode_all(&bytes);
        assert_eq!(c.malformed, 1, "{reason:?}");
        assert_eq!(c.frames_good, 2);
        assert_eq!(c.resync_bytes, 0);
        assert_eq!(
            items[0],
            DecodedItem::Skipped {
                offset: 0,
                kind,
                seq: 0,
                reason
            }
        );
        assert_eq!(frames(&items), vec![golden_frame()]);
    }

    #[test]
    fn skips_malformed_probe_info_of_wrong_length() {
        let mut p = Vec::new();
        encode_payload_for_test(&Payload::ProbeInfo(info(20_000)), &mut p);
        p.push(0);
        assert_malformed(kind::PROBE_INFO, &p, SkipReason::WrongLength);
    }

    #[test]
    fn skips_probe_info_with_sample_rate_out_of_range() {
        for rate in [7_999u32, 48_001, 0] {
            let mut p = Vec::new();
            encode_payload_for_test(&Payload::ProbeInfo(info(20_000)), &mut p);
            p[..4].copy_from_slice(&rate.to_le_bytes());
            assert_malformed(kind::PROBE_INFO, &p, SkipReason::SampleRateOutOfRange);
        }
    }

    #[test]
    fn accepts_probe_info_at_sample_rate_limits() {
        for rate in [8_000u32, 48_000] {
            let (items, c) = decode_all(&frame_bytes(0, &Payload::ProbeInfo(info(rate))));
            assert_eq!(c.malformed, 0);
            assert_eq!(frames(&items)[0].payload, Payload::ProbeInfo(info(rate)));
        }
    }

    #[test]
    fn skips_iq_with_count_out_of_range_or_wrong_length() {
        let mut p = Vec::new();
        encode_payload_for_test(&iq(0, 3), &mut p);
        let mut zero = p.clone();
        zero[8..10].copy_from_slice(&0u16.to_le_bytes());
        zero.truncate(12);
        assert_malformed(kind::IQ_SAMPLES, &zero, SkipReason::CountOutOfRange);
        let mut big = vec![0u8; 12 + 4 * 1001];
        big[8..10].copy_from_slice(&1001u16.to_le_bytes());
        assert_malformed(kind::IQ_SAMPLES, &big, SkipReason::CountOutOfRange);
        let mut short = p.clone();
        short.pop();
        assert_malformed(kind::IQ_SAMPLES, &short, SkipReason::WrongLength);
        assert_malformed(kind::IQ_SAMPLES, &p[..11], SkipReason::WrongLength);
    }

    #[test]
    fn skips_iq_whose_samples_would_pass_the_last_sample_index() {
        // Three samples from u64::MAX − 2 end exactly at 2^64: one too many.
        // The encoder refuses to write it, so the bytes are patched.
        assert_eq!(
            encode_frame(0, &iq(u64::MAX - 2, 3), &mut Vec::new()),
            Err(crate::encoder::EncodeError::SampleIndexOverflow {
                first_sample: u64::MAX - 2,
                count: 3
            })
        );
        let mut p = Vec::new();
        encode_payload_for_test(&iq(0, 3), &mut p);
        p[..8].copy_from_slice(&(u64::MAX - 2).to_le_bytes());
        assert_malformed(kind::IQ_SAMPLES, &p, SkipReason::SampleIndexOverflow);
        // From u64::MAX − 3 the last sample is u64::MAX − 1: accepted.
        let block = iq(u64::MAX - 3, 3);
        let (items, c) = decode_all(&frame_bytes(0, &block));
        assert_eq!(c.malformed, 0);
        assert_eq!(frames(&items)[0].payload, block);
        let Payload::Iq(b) = block else {
            unreachable!()
        };
        assert_eq!(b.end_sample(), u64::MAX);
    }

    #[test]
    fn skips_event_of_wrong_length() {
        assert_malformed(kind::EVENT, &[0u8; 13], SkipReason::WrongLength);
        assert_malformed(kind::EVENT, &[0u8; 15], SkipReason::WrongLength);
    }

    #[test]
    fn skips_bad_annotations() {
        let with = |json: &str| {
            let mut p = 5u64.to_le_bytes().to_vec();
            p.extend_from_slice(json.as_bytes());
            p
        };
        for bad in [
            "{\"type\": 3}",
            "{\"text\": \"x\"}",
            "[\"type\"]",
            "{\"type\": \"marker\"",
            "",
        ] {
            assert_malformed(kind::ANNOTATION, &with(bad), SkipReason::BadAnnotation);
        }
        assert_malformed(kind::ANNOTATION, &[0u8; 7], SkipReason::WrongLength);
        let mut not_utf8 = with("{\"type\": \"marker\", \"text\": \"");
        not_utf8.extend_from_slice(&[0xFF, b'"', b'}']);
        assert_malformed(kind::ANNOTATION, &not_utf8, SkipReason::BadAnnotation);
    }

    #[test]
    fn decodes_annotation_and_event() {
        let mut json = serde_json::Map::new();
        json.insert("type".into(), "bolus".into());
        json.insert("volume_ml".into(), 250.into());
        let ann = Payload::Annotation(Annotation {
            at_sample: 42,
            json,
        });
        let ev = Payload::Event(crate::frame::ProbeEvent {
            at_sample: 9,
            code: 77,
            value: -5,
        });
        let mut bytes = frame_bytes(0, &ann);
        bytes.extend(frame_bytes(1, &ev));
        let (items, c) = decode_all(&bytes);
        assert!(c.is_clean());
        let f = frames(&items);
        assert_eq!(f[0].payload, ann);
        assert_eq!(f[1].payload, ev);
    }

    /// On a live link an ANNOTATION is never passed on: the spec keeps
    /// them off the wire, and one there could set demographics.
    #[test]
    fn a_wire_decoder_skips_annotations_as_malformed() {
        let mut json = serde_json::Map::new();
        json.insert("type".into(), "patient".into());
        json.insert("age_years".into(), 60.into());
        let ann = Payload::Annotation(Annotation {
            at_sample: 42,
            json,
        });
        let mut bytes = frame_bytes(0, &ann);
        bytes.extend(frame_bytes(1, &iq(0, 3)));
        let mut d = Decoder::for_wire();
        d.feed(&bytes);
        d.finish();
        let mut items = Vec::new();
        while let Some(i) = d.next_item() {
            items.push(i);
        }
        let f = frames(&items);
        assert_eq!(f.len(), 1);
        assert!(matches!(f[0].payload, Payload::Iq(_)));
        assert!(items.iter().any(|i| matches!(
            i,
            DecodedItem::Skipped {
                reason: SkipReason::AnnotationOnWire,
                ..
            }
        )));
        let c = d.counters();
        assert_eq!((c.malformed, c.frames_good, c.lost_frames), (1, 2, 0));
        // The same bytes as a recording: the annotation is read.
        let (items, c) = decode_all(&bytes);
        assert!(c.is_clean());
        assert_eq!(frames(&items)[0].payload, ann);
    }

    #[test]
    fn skips_and_counts_unknown_kind() {
        let mut bytes = Vec::new();
        encode_raw_frame(0, 0x42, b"future", &mut bytes).unwrap();
        bytes.extend(frame_bytes(1, &iq(0, 1)));
        let (items, c) = decode_all(&bytes);
        assert_eq!(c.unknown_kinds, 1);
        assert_eq!(c.malformed, 0);
        assert_eq!(c.frames_good, 2);
        assert_eq!(c.lost_frames, 0, "unknown kinds take part in seq");
        assert!(matches!(
            items[0],
            DecodedItem::Skipped {
                kind: 0x42,
                reason: SkipReason::UnknownKind,
                ..
            }
        ));
    }

    #[test]
    fn finish_finds_frames_inside_an_unfinished_candidate() {
        // A candidate claiming 4000 bytes that never come; inside it, a
        // complete frame. At end of input, rule 2 finds that frame.
        let mut bytes = vec![0xA5, 0x5A, 0x01, 0x02, 0, 0, 0xA0, 0x0F];
        bytes.extend_from_slice(&GOLDEN);
        bytes.extend_from_slice(&[1, 2, 3]);
        let mut d = Decoder::new();
        d.feed(&bytes);
        assert!(d.next_item().is_none(), "waits for the claimed length");
        d.finish();
        let items: Vec<_> = std::iter::from_fn(|| d.next_item()).collect();
        assert_eq!(frames(&items), vec![golden_frame()]);
        assert_eq!(
            items.last(),
            Some(&DecodedItem::Resync {
                offset: 40,
                bytes: 3
            })
        );
        assert_eq!(d.damaged_tail(), Some((40, 3)));
        assert_eq!(d.last_good_end(), 40, "one past the inner frame");
        let c = d.counters();
        assert_eq!(c.resync_bytes, 11);
        assert_eq!(c.crc_errors, 0);
    }

    /// Memory stays flat over a long stream (an analysis of a whole case
    /// must not grow with its length): consumed bytes leave the buffer,
    /// and the stream offsets still count from the start.
    #[test]
    fn the_buffer_stays_small_over_a_long_stream() {
        let mut d = Decoder::new();
        let mut frames_seen = 0_u64;
        for k in 0..10_000_u64 {
            // Frames fed in two pieces, with a junk byte every 100 frames.
            if k % 100 == 0 {
                d.feed(&[0x00]);
            }
            d.feed(&GOLDEN[..13]);
            d.feed(&GOLDEN[13..]);
            while let Some(item) = d.next_item() {
                frames_seen += u64::from(matches!(item, DecodedItem::Frame(_)));
            }
            assert!(
                d.buf.len() <= 2 * MAX_FRAME_LEN,
                "{} bytes held",
                d.buf.len()
            );
        }
        assert_eq!(frames_seen, 10_000);
        assert_eq!(d.stream_end(), 10_000 * 32 + 100);
        assert_eq!(d.last_good_end(), d.stream_end());
        assert_eq!(d.counters().resync_bytes, 100);
    }

    /// `len` runs 0..=4096 (the spec's header table): a payload of exactly
    /// 4 096 bytes is a frame, and a header claiming 4 097 is a false sync
    /// (rule 1) even when a CRC over that many bytes checks.
    #[test]
    fn the_largest_payload_is_a_frame_and_one_byte_more_a_false_sync() {
        let json_len = MAX_PAYLOAD_LEN - ANNOTATION_HEADER_LEN;
        let head = br#"{"type":"marker","text":""#;
        let mut json = head.to_vec();
        json.resize(json_len - 2, b'a');
        json.extend_from_slice(br#""}"#);
        let mut payload = 5_u64.to_le_bytes().to_vec();
        payload.extend_from_slice(&json);
        assert_eq!(payload.len(), 4096);
        let mut bytes = Vec::new();
        encode_raw_frame(9, kind::ANNOTATION, &payload, &mut bytes).unwrap();
        let (items, c) = decode_all(&bytes);
        let f = frames(&items);
        assert_eq!(f.len(), 1, "{items:?}");
        assert!(matches!(&f[0].payload, Payload::Annotation(a) if a.at_sample == 5));
        assert!(c.is_clean());

        // The same frame grown by one payload byte, its CRC recomputed.
        payload.push(b' ');
        let mut long = vec![0xA5, 0x5A, VERSION, kind::ANNOTATION, 9, 0];
        long.extend_from_slice(&4097_u16.to_le_bytes());
        long.extend_from_slice(&payload);
        let crc = crc32fast::hash(&long[2..]);
        long.extend_from_slice(&crc.to_le_bytes());
        let (items, c) = decode_all(&long);
        assert!(frames(&items).is_empty(), "{items:?}");
        assert_eq!(c.crc_errors, 0, "refused on its length, before the CRC");
        assert_eq!(c.resync_bytes, long.len() as u64);
    }

    #[test]
    fn feeding_after_finish_continues_without_reporting_bytes_twice() {
        // A link drops mid-frame (finish), then comes back with whole frames.
        let mut d = Decoder::new();
        d.feed(&GOLDEN);
        d.feed(&GOLDEN[..10]);
        d.finish();
        let mut items: Vec<_> = std::iter::from_fn(|| d.next_item()).collect();
        d.feed(&[0x00, 0x01]);
        d.feed(&GOLDEN);
        d.finish();
        items.extend(std::iter::from_fn(|| d.next_item()));
        let resync: Vec<_> = items
            .iter()
            .filter(|i| matches!(i, DecodedItem::Resync { .. }))
            .collect();
        assert_eq!(
            resync,
            [
                &DecodedItem::Resync {
                    offset: 32,
                    bytes: 10
                },
                &DecodedItem::Resync {
                    offset: 42,
                    bytes: 2
                }
            ]
        );
        assert_eq!(d.counters().resync_bytes, 12);
        assert_eq!(d.counters().seq_resets, 1, "the same seq 7 came again");
        assert_eq!(frames(&items).len(), 2);
    }

    #[test]
    fn truncated_last_frame_is_the_damaged_tail() {
        let mut bytes = GOLDEN.to_vec();
        bytes.extend_from_slice(&GOLDEN[..20]);
        let (items, c) = decode_all(&bytes);
        assert_eq!(frames(&items).len(), 1);
        assert_eq!(c.resync_bytes, 20);
        assert_eq!(c.bytes_read, 52);
    }

    #[test]
    fn encoder_numbers_frames_and_wraps() {
        let mut e = Encoder::starting_at(65535);
        let mut out = Vec::new();
        assert_eq!(e.encode(&iq(0, 1), &mut out).unwrap(), 65535);
        assert_eq!(e.encode(&iq(1, 1), &mut out).unwrap(), 0);
        assert!(e.encode(&iq(2, 0), &mut out).is_err());
        assert_eq!(e.next_seq(), 1, "a refused payload uses no seq");
        let (_, c) = decode_all(&out);
        assert_eq!(c.frames_good, 2);
        assert!(c.is_clean());
    }

    fn encode_payload_for_test(p: &Payload, out: &mut Vec<u8>) {
        crate::encoder::encode_payload(p, out).unwrap();
    }
}
