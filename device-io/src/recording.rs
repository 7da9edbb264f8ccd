//! Crash-safe recordings (`.odmrec`, spec "Recording file"): the magic
//! `ODMREC1\n` followed by frames exactly as on the wire.
//!
//! - [`RecordingWriter`] writes the `recording_started` annotation and the
//!   PROBE_INFO in force first, numbers every frame itself (seq 0, 1, 2, …),
//!   computes each CRC afresh and pushes its bytes to the operating system at
//!   least once per second, so a crash loses at most the last second.
//! - [`RecordingReader`] reads any [`std::io::Read`] (a file, standard
//!   input) in a streaming way (memory flat in the file's length), returns
//!   every complete frame before any damage, reports a damaged magic and
//!   still reads the frames after it, and reports the damaged tail.
//!
//! ```
//! use odm_device_io::{DecodedItem, Payload, ProbeInfo, RecordingReader, RecordingStart,
//!     RecordingWriter};
//!
//! let info = ProbeInfo {
//!     sample_rate_hz: 20_000, carrier_hz: 4_000_000, beam_angle_cdeg: 4500, probe_model: 1,
//!     minutes_used: 10, minutes_limit: 0, probe_serial: ProbeInfo::pad("SN1"),
//!     firmware: ProbeInfo::pad("1.0"),
//! };
//! let start = RecordingStart::new("2026-01-01T00:00:00Z", "doc-test", 0);
//! let mut w = RecordingWriter::new(Vec::new(), &start, &info).unwrap();
//! w.annotate_marker(100, "probe repositioned").unwrap();
//! let bytes = w.finish().unwrap();
//!
//! let mut r = RecordingReader::new(&bytes[..]).unwrap();
//! let mut frames = 0;
//! while let Some(item) = r.next_item().unwrap() {
//!     if let DecodedItem::Frame(_) = item { frames += 1; }
//! }
//! assert_eq!(frames, 3); // recording_started, PROBE_INFO, marker
//! assert!(r.counters().is_clean());
//! assert!(r.damaged_tail().is_none());
//! ```

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use crate::decoder::{Counters, DecodedItem, Decoder, parse_payload};
use crate::encoder::{EncodeError, Encoder};
use crate::frame::{Annotation, Frame, Payload, ProbeInfo, SYNC, kind};

/// The 8 bytes every recording starts with.
pub const MAGIC: [u8; 8] = *b"ODMREC1\n";

/// How often the writer pushes buffered frames to the operating system at
/// the latest (spec: "The writer flushes at least once per second").
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// Buffered bytes above which the writer hands them to its sink early
/// (without a sync), to keep its memory small.
const WRITE_THROUGH_BYTES: usize = 64 * 1024;

/// Reading chunk size.
const READ_CHUNK: usize = 64 * 1024;

/// Errors of recording writers and readers.
#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    /// An I/O error, with what was being done and where.
    #[error("{what} {path}")]
    Io {
        /// What was being done ("creating", "writing", "reading at byte 1234 of").
        what: String,
        /// The file (or `<stream>`).
        path: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A payload that cannot be encoded.
    #[error("cannot write frame: {0}")]
    Encode(#[from] EncodeError),
    /// A raw payload that does not fit its kind's layout (rule 5), or a kind
    /// that recordings do not hold.
    #[error("refusing to record a frame of kind 0x{kind:02x}: {why}")]
    BadFrame {
        /// Its kind byte.
        kind: u8,
        /// Why.
        why: String,
    },
    /// A bad annotation field (e.g. `sex` not one of the allowed words).
    #[error("bad annotation: {0}")]
    BadAnnotation(String),
}

/// What the `recording_started` annotation says.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordingStart {
    /// Wall-clock start, RFC 3339 (e.g. `2026-11-30T11:39:29Z`).
    pub utc_rfc3339: String,
    /// The software that wrote the file, e.g. `odm 0.1.0`.
    pub software: String,
    /// Sample index the recording starts at.
    pub at_sample: u64,
}

impl RecordingStart {
    /// A start record with the given time text.
    pub fn new(utc_rfc3339: &str, software: &str, at_sample: u64) -> Self {
        Self {
            utc_rfc3339: utc_rfc3339.to_owned(),
            software: software.to_owned(),
            at_sample,
        }
    }

    /// A start record stamped with the current UTC time.
    pub fn now(software: &str, at_sample: u64) -> Self {
        let utc = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|_| String::from("1970-01-01T00:00:00Z"));
        Self::new(&utc, software, at_sample)
    }
}

/// Patient sex, as the `patient` annotation spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sex {
    /// `"female"`.
    Female,
    /// `"male"`.
    Male,
    /// `"unknown"`.
    Unknown,
}

impl Sex {
    /// The word used in the annotation.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Female => "female",
            Self::Male => "male",
            Self::Unknown => "unknown",
        }
    }
}

/// A file sink that syncs to disk when flushed, so a timed flush also
/// survives a power cut, not only a crash.
#[derive(Debug)]
pub struct FileSink {
    file: File,
}

impl FileSink {
    /// Creates (or truncates) the file at `path`.
    fn create(path: &Path) -> Result<Self, RecordingError> {
        let file = File::create(path).map_err(|source| RecordingError::Io {
            what: "creating".into(),
            path: path.display().to_string(),
            source,
        })?;
        Ok(Self { file })
    }
}

impl Write for FileSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()?;
        self.file.sync_data()
    }
}

/// Writes a recording. See the module documentation.
///
/// Usable from a dedicated recorder thread (it is `Send` when `W` is): call
/// the `write_*`/`annotate_*` methods as frames arrive and
/// [`RecordingWriter::flush_if_due`] when idle, so that data is flushed
/// within a second even when the link goes quiet.
#[derive(Debug)]
pub struct RecordingWriter<W: Write> {
    sink: W,
    path: String,
    encoder: Encoder,
    buf: Vec<u8>,
    last_flush: Instant,
    frames_written: u64,
    frames_flushed: u64,
    bytes_written: u64,
}

impl RecordingWriter<FileSink> {
    /// Creates (or truncates) the file at `path` and writes the magic, the
    /// `recording_started` annotation and `probe_info`.
    pub fn create(
        path: &Path,
        start: &RecordingStart,
        probe_info: &ProbeInfo,
    ) -> Result<Self, RecordingError> {
        let mut w = Self::new(FileSink::create(path)?, start, probe_info)?;
        w.path = path.display().to_string();
        Ok(w)
    }

    /// As [`RecordingWriter::create`], with the PROBE_INFO in force given as
    /// the payload bytes received (e.g. from [`Decoder::last_payload`]),
    /// written byte for byte (spec: "payload byte for byte").
    pub fn create_raw(
        path: &Path,
        start: &RecordingStart,
        probe_info_payload: &[u8],
    ) -> Result<Self, RecordingError> {
        let mut w = Self::begin(FileSink::create(path)?, start)?;
        w.path = path.display().to_string();
        w.write_raw(kind::PROBE_INFO, probe_info_payload)?;
        w.flush()?;
        Ok(w)
    }
}

impl<W: Write> RecordingWriter<W> {
    /// Starts a recording on any sink: writes the magic, the
    /// `recording_started` annotation and `probe_info`, and flushes them.
    pub fn new(
        sink: W,
        start: &RecordingStart,
        probe_info: &ProbeInfo,
    ) -> Result<Self, RecordingError> {
        let mut w = Self::begin(sink, start)?;
        w.write_payload(&Payload::ProbeInfo(probe_info.clone()))?;
        w.flush()?;
        Ok(w)
    }

    /// As [`RecordingWriter::new`], with the PROBE_INFO in force given as
    /// the payload bytes received (e.g. from [`Decoder::last_payload`]),
    /// written byte for byte (its reserved byte included). The payload must
    /// fit the PROBE_INFO layout.
    pub fn new_raw(
        sink: W,
        start: &RecordingStart,
        probe_info_payload: &[u8],
    ) -> Result<Self, RecordingError> {
        let mut w = Self::begin(sink, start)?;
        w.write_raw(kind::PROBE_INFO, probe_info_payload)?;
        w.flush()?;
        Ok(w)
    }

    /// A writer on `sink` with the magic and the `recording_started`
    /// annotation buffered.
    fn begin(sink: W, start: &RecordingStart) -> Result<Self, RecordingError> {
        let mut w = Self {
            sink,
            path: String::from("<stream>"),
            encoder: Encoder::new(),
            buf: Vec::with_capacity(WRITE_THROUGH_BYTES + 8192),
            last_flush: Instant::now(),
            frames_written: 0,
            frames_flushed: 0,
            bytes_written: 0,
        };
        w.buf.extend_from_slice(&MAGIC);
        let mut fields = Map::new();
        fields.insert("utc".into(), Value::String(start.utc_rfc3339.clone()));
        fields.insert("software".into(), Value::String(start.software.clone()));
        w.annotate(start.at_sample, "recording_started", fields)?;
        Ok(w)
    }

    /// Number of frames written so far (annotations included).
    pub fn frames_written(&self) -> u64 {
        self.frames_written
    }

    /// Number of frames that the last flush made safe: a crash from now on
    /// loses none of these.
    pub fn frames_flushed(&self) -> u64 {
        self.frames_flushed
    }

    /// Number of bytes handed to the sink or buffered so far, magic included.
    pub fn bytes_written(&self) -> u64 {
        self.bytes_written + self.buf.len() as u64
    }

    /// Writes one frame carrying `payload`, numbered by the writer.
    pub fn write_payload(&mut self, payload: &Payload) -> Result<u16, RecordingError> {
        let seq = self.encoder.encode(payload, &mut self.buf)?;
        self.after_write()?;
        Ok(seq)
    }

    /// Writes a payload byte for byte (e.g. from
    /// [`Decoder::last_payload`]), with a fresh seq and CRC. The payload
    /// must be of a kind recordings hold and fit its layout.
    pub fn write_raw(&mut self, kind: u8, payload: &[u8]) -> Result<u16, RecordingError> {
        if let Err(why) = parse_payload(kind, payload) {
            return Err(RecordingError::BadFrame {
                kind,
                why: format!("{why:?}"),
            });
        }
        let seq = self.encoder.encode_raw(kind, payload, &mut self.buf)?;
        self.after_write()?;
        Ok(seq)
    }

    /// Writes an ANNOTATION of type `type_` at `at_sample` with `fields`
    /// (a `type` among them is replaced by `type_`).
    pub fn annotate(
        &mut self,
        at_sample: u64,
        type_: &str,
        mut fields: Map<String, Value>,
    ) -> Result<u16, RecordingError> {
        fields.insert("type".into(), Value::String(type_.to_owned()));
        self.write_payload(&Payload::Annotation(Annotation {
            at_sample,
            json: fields,
        }))
    }

    /// Writes a `marker` annotation (a free operator note).
    pub fn annotate_marker(&mut self, at_sample: u64, text: &str) -> Result<u16, RecordingError> {
        let mut f = Map::new();
        f.insert("text".into(), Value::String(text.to_owned()));
        self.annotate(at_sample, "marker", f)
    }

    /// Writes a `bolus` annotation: a fluid bolus of `volume_ml` started at
    /// `at_sample`.
    pub fn annotate_bolus(
        &mut self,
        at_sample: u64,
        volume_ml: f64,
        fluid: Option<&str>,
    ) -> Result<u16, RecordingError> {
        let mut f = Map::new();
        f.insert("volume_ml".into(), json_number(volume_ml, "volume_ml")?);
        if let Some(fluid) = fluid {
            f.insert("fluid".into(), Value::String(fluid.to_owned()));
        }
        self.annotate(at_sample, "bolus", f)
    }

    /// Writes a `patient` annotation (demographics for stroke volume; no
    /// identifying data is ever stored).
    pub fn annotate_patient(
        &mut self,
        at_sample: u64,
        age_years: u32,
        height_cm: f64,
        weight_kg: f64,
        sex: Sex,
    ) -> Result<u16, RecordingError> {
        let mut f = Map::new();
        f.insert("age_years".into(), Value::from(age_years));
        f.insert("height_cm".into(), json_number(height_cm, "height_cm")?);
        f.insert("weight_kg".into(), json_number(weight_kg, "weight_kg")?);
        f.insert("sex".into(), Value::String(sex.as_str().to_owned()));
        self.annotate(at_sample, "patient", f)
    }

    /// Writes a `stream_error` annotation: `count` occurrences of `what`
    /// (e.g. `"crc_errors"`, `"lost_frames"`, `"lost_samples"`) seen on the
    /// live link.
    pub fn annotate_stream_error(
        &mut self,
        at_sample: u64,
        what: &str,
        count: u64,
    ) -> Result<u16, RecordingError> {
        let mut f = Map::new();
        f.insert("what".into(), Value::String(what.to_owned()));
        f.insert("count".into(), Value::from(count));
        self.annotate(at_sample, "stream_error", f)
    }

    /// Hands every buffered byte to the sink and flushes it (for a file made
    /// by [`RecordingWriter::create`], also syncs it to disk).
    pub fn flush(&mut self) -> Result<(), RecordingError> {
        self.write_through()?;
        self.sink.flush().map_err(|source| self.io_err(source))?;
        self.last_flush = Instant::now();
        self.frames_flushed = self.frames_written;
        Ok(())
    }

    /// Flushes if the last flush is at least [`FLUSH_INTERVAL`] old; returns
    /// whether it did. Call it when idle; the write methods call it too.
    pub fn flush_if_due(&mut self) -> Result<bool, RecordingError> {
        if self.last_flush.elapsed() >= FLUSH_INTERVAL {
            self.flush()?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Flushes and returns the sink.
    pub fn finish(mut self) -> Result<W, RecordingError> {
        self.flush()?;
        Ok(self.sink)
    }

    fn after_write(&mut self) -> Result<(), RecordingError> {
        self.frames_written += 1;
        if self.buf.len() >= WRITE_THROUGH_BYTES {
            self.write_through()?;
        }
        self.flush_if_due()?;
        Ok(())
    }

    fn write_through(&mut self) -> Result<(), RecordingError> {
        if !self.buf.is_empty() {
            if let Err(source) = self.sink.write_all(&self.buf) {
                return Err(self.io_err(source));
            }
            self.bytes_written += self.buf.len() as u64;
            self.buf.clear();
        }
        Ok(())
    }

    fn io_err(&self, source: io::Error) -> RecordingError {
        RecordingError::Io {
            what: format!("writing at byte {} of", self.bytes_written),
            path: self.path.clone(),
            source,
        }
    }
}

fn json_number(x: f64, name: &str) -> Result<Value, RecordingError> {
    serde_json::Number::from_f64(x)
        .map(Value::Number)
        .ok_or_else(|| RecordingError::BadAnnotation(format!("{name} is not a finite number")))
}

/// What the first 8 bytes of a recording held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MagicStatus {
    /// `ODMREC1\n`, as it should be.
    Good,
    /// Something else: reported, and the frames after it are still read.
    /// These 8 bytes are handed to the decoder too (it resynchronises on
    /// any frame starting inside them), so they count in `bytes_read` and,
    /// unless part of a frame, in `resync_bytes`; offsets are file offsets.
    /// A raw stream that starts mid-frame (garbage before its first sync)
    /// also reads as `Damaged`.
    Damaged {
        /// The bytes found instead.
        found: Vec<u8>,
    },
    /// No magic: the input starts with a frame sync, i.e. it is a raw probe
    /// stream (e.g. a capture piped to standard input). It is read from byte 0.
    RawStream,
    /// The input ended within the first 8 bytes.
    Truncated {
        /// The bytes there were.
        found: Vec<u8>,
    },
}

/// Damaged bytes at the end of a recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DamagedTail {
    /// File offset of the first damaged byte (one past the last good frame).
    pub offset: u64,
    /// Number of damaged bytes up to the end of the file.
    pub bytes: u64,
}

/// Reads a recording (or a raw stream) from any [`Read`]. See the module
/// documentation. Also an [`Iterator`] of `Result<DecodedItem, _>`.
#[derive(Debug)]
pub struct RecordingReader<R: Read> {
    src: R,
    name: String,
    decoder: Decoder,
    chunk: Vec<u8>,
    magic: MagicStatus,
    /// Bytes read from `src` so far, magic included.
    offset: u64,
    eof: bool,
}

impl RecordingReader<File> {
    /// Opens the file at `path` and reads its magic.
    pub fn open(path: &Path) -> Result<Self, RecordingError> {
        let file = File::open(path).map_err(|source| RecordingError::Io {
            what: "opening".into(),
            path: path.display().to_string(),
            source,
        })?;
        Self::with_name(file, path.display().to_string())
    }
}

impl<R: Read> RecordingReader<R> {
    /// Reads the magic from `src` (a file, `std::io::stdin()`, a byte slice…).
    pub fn new(src: R) -> Result<Self, RecordingError> {
        Self::with_name(src, String::from("<stream>"))
    }

    /// A reader of a live probe interface (serial port, pseudo-terminal):
    /// no magic is read (a wire stream has none; the magic status is
    /// [`MagicStatus::RawStream`]), and the decoder is
    /// [`Decoder::for_wire`], which never passes on an ANNOTATION frame.
    /// Nothing is read until the first [`RecordingReader::next_item`].
    pub fn live(src: R, name: String) -> Self {
        Self {
            src,
            name,
            decoder: Decoder::for_wire(),
            chunk: vec![0u8; READ_CHUNK],
            magic: MagicStatus::RawStream,
            offset: 0,
            eof: false,
        }
    }

    /// As [`RecordingReader::new`], naming the source in error messages.
    pub fn with_name(mut src: R, name: String) -> Result<Self, RecordingError> {
        let mut head = [0u8; 8];
        let mut got = 0;
        while got < head.len() {
            match src.read(&mut head[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(RecordingError::Io {
                        what: format!("reading at byte {got} of"),
                        path: name,
                        source,
                    });
                }
            }
        }
        let head = &head[..got];
        let (magic, base, replay) = if head == MAGIC {
            (MagicStatus::Good, 8, false)
        } else if head.starts_with(&SYNC) {
            (MagicStatus::RawStream, 0, true)
        } else if got < MAGIC.len() {
            // The bytes are counted like any other that is in no frame
            // (bytes_read and resync_bytes, serial-stream.md).
            (
                MagicStatus::Truncated {
                    found: head.to_vec(),
                },
                0,
                true,
            )
        } else {
            // Reported, but the bytes also go to the decoder: a magic that
            // lost a byte already holds the first frame's sync, and a raw
            // stream that starts mid-frame must lose only its garbage.
            (
                MagicStatus::Damaged {
                    found: head.to_vec(),
                },
                0,
                true,
            )
        };
        let mut decoder = Decoder::with_base_offset(base);
        if replay {
            decoder.feed(head);
        }
        Ok(Self {
            src,
            name,
            decoder,
            chunk: vec![0u8; READ_CHUNK],
            magic,
            offset: got as u64,
            eof: false,
        })
    }

    /// What the magic was.
    pub fn magic(&self) -> &MagicStatus {
        &self.magic
    }

    /// The receiver counters so far (`bytes_read` counts every byte given
    /// to the decoder: it excludes an intact magic, and includes a damaged
    /// one).
    pub fn counters(&self) -> &Counters {
        self.decoder.counters()
    }

    /// The decoder (for [`Decoder::last_payload`] and
    /// [`Decoder::last_frame_span`], whose offsets are file offsets).
    pub fn decoder(&self) -> &Decoder {
        &self.decoder
    }

    /// After the end was reached: the damaged tail, if any.
    pub fn damaged_tail(&self) -> Option<DamagedTail> {
        if !self.eof {
            return None;
        }
        self.decoder
            .damaged_tail()
            .map(|(offset, bytes)| DamagedTail { offset, bytes })
    }

    /// The next decoded item, `Ok(None)` at the end. Damage is never an
    /// error (it shows as [`DecodedItem::Resync`] items and counters); only
    /// an I/O failure of the source is.
    pub fn next_item(&mut self) -> Result<Option<DecodedItem>, RecordingError> {
        loop {
            if let Some(item) = self.decoder.next_item() {
                return Ok(Some(item));
            }
            if self.eof {
                return Ok(None);
            }
            match self.src.read(&mut self.chunk) {
                Ok(0) => {
                    self.eof = true;
                    self.decoder.finish();
                }
                Ok(n) => {
                    self.offset += n as u64;
                    self.decoder.feed(self.chunk.get(..n).unwrap_or(&[]));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(RecordingError::Io {
                        what: format!("reading at byte {} of", self.offset),
                        path: self.name.clone(),
                        source,
                    });
                }
            }
        }
    }

    /// The next well-formed frame, skipping the other items.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, RecordingError> {
        while let Some(item) = self.next_item()? {
            if let DecodedItem::Frame(f) = item {
                return Ok(Some(f));
            }
        }
        Ok(None)
    }
}

impl<R: Read> Iterator for RecordingReader<R> {
    type Item = Result<DecodedItem, RecordingError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_item().transpose()
    }
}
