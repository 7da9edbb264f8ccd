//! Replay of a recording as a [`ByteSource`]: as fast as possible (for
//! `odm analyse`-like batch work) or paced at real speed from the IQ blocks'
//! `first_sample` and the sample rate, with a speed factor, pause and seek
//! driven from another thread through a [`ReplayControl`].
//!
//! The bytes handed out are the file's own stream bytes (everything after
//! the magic, damage included), so a decoder fed from a replay sees exactly
//! what a decoder reading the file sees. Pacing releases each IQ frame when
//! the wall clock reaches the time of its last sample.
//!
//! Seek: [`ReplayControl::seek_to_sample`] makes the source restart reading
//! the file and skip to the IQ frame whose samples cover the target (or the
//! first one after it); the next bytes are the PROBE_INFO frame in force at
//! that point followed by the stream from that IQ frame on. A seek starts a
//! new stream: the consumer should start a fresh [`crate::Decoder`] (and
//! pipeline) after requesting one, or it will count a discontinuity and a
//! seq jump.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::decoder::{DecodedItem, Decoder, MAX_FRAME_LEN};
use crate::frame::{Payload, SYNC};
use crate::recording::MAGIC;
use crate::source::{ByteSource, READ_TIMEOUT, SourceError, SourceRead};

/// How the replay is timed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pace {
    /// Hand out bytes as fast as the consumer reads them.
    AsFastAsPossible,
    /// Real time times `speed` (1.0 = real speed, 2.0 = twice as fast).
    RealTime {
        /// Speed factor, > 0.
        speed: f64,
    },
}

/// Sample rate assumed for pacing before the first PROBE_INFO (the spec's default).
const DEFAULT_RATE_HZ: f64 = 20_000.0;

/// A jump in sample time longer than this (in seconds of signal) is not
/// waited for: pacing restarts from the new position, so a corrupt or huge
/// `first_sample` cannot stall the replay.
const MAX_PACED_JUMP_S: f64 = 10.0;

const CHUNK: usize = 64 * 1024;
const NO_SEEK: u64 = u64::MAX;

#[derive(Debug)]
struct Shared {
    paused: AtomicBool,
    /// Speed factor as f64 bits.
    speed_bits: AtomicU64,
    seek_to: AtomicU64,
    position: AtomicU64,
}

/// A handle to steer a [`ReplaySource`] from another thread (the UI).
/// Cloning gives another handle to the same replay.
#[derive(Debug, Clone)]
pub struct ReplayControl(Arc<Shared>);

impl ReplayControl {
    /// Pauses (`true`) or resumes (`false`) the replay. Paused reads return
    /// [`SourceRead::Idle`]; on resume, pacing restarts from where it stood.
    pub fn set_paused(&self, paused: bool) {
        self.0.paused.store(paused, Ordering::Relaxed);
    }

    /// Whether the replay is paused.
    pub fn is_paused(&self) -> bool {
        self.0.paused.load(Ordering::Relaxed)
    }

    /// Sets the speed factor of a paced replay (ignored for
    /// [`Pace::AsFastAsPossible`]); values that are not finite and > 0 are ignored.
    pub fn set_speed(&self, speed: f64) {
        if speed.is_finite() && speed > 0.0 {
            self.0.speed_bits.store(speed.to_bits(), Ordering::Relaxed);
        }
    }

    /// The current speed factor.
    pub fn speed(&self) -> f64 {
        f64::from_bits(self.0.speed_bits.load(Ordering::Relaxed))
    }

    /// Asks the replay to jump to sample index `sample` (see the module
    /// documentation). Takes effect at the next read.
    pub fn seek_to_sample(&self, sample: u64) {
        self.0
            .seek_to
            .store(sample.min(NO_SEEK - 1), Ordering::Relaxed);
    }

    /// One past the last sample handed out so far (0 before the first IQ block).
    pub fn position_sample(&self) -> u64 {
        self.0.position.load(Ordering::Relaxed)
    }
}

/// A recording replayed as a byte source. See the module documentation.
#[derive(Debug)]
pub struct ReplaySource {
    path: PathBuf,
    file: File,
    pace: Pace,
    control: ReplayControl,
    base: u64,
    decoder: Decoder,
    /// Bytes read from the file and not yet handed out; `pending[0]` is at
    /// stream offset `pending_offset`.
    pending: Vec<u8>,
    pending_offset: u64,
    /// Bytes up to this stream offset may be handed out.
    release_to: u64,
    /// Bytes to hand out before `pending` (the PROBE_INFO after a seek).
    inject: Vec<u8>,
    /// An IQ frame waiting for its time: (stream end offset, first sample,
    /// end sample).
    waiting: Option<(u64, u64, u64)>,
    /// End sample of the last IQ block seen.
    last_end_sample: Option<u64>,
    /// Pacing anchor: wall clock at which `anchor_sample` is due.
    anchor: Option<(Instant, u64)>,
    anchor_speed: f64,
    rate_hz: f64,
    was_paused: bool,
    eof: bool,
    file_offset: u64,
}

impl ReplaySource {
    /// Opens the recording at `path` for replay at `pace`.
    pub fn open(path: &Path, pace: Pace) -> Result<Self, SourceError> {
        let file = File::open(path).map_err(|e| SourceError::Open {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        let speed = match pace {
            Pace::RealTime { speed } if speed.is_finite() && speed > 0.0 => speed,
            _ => 1.0,
        };
        let control = ReplayControl(Arc::new(Shared {
            paused: AtomicBool::new(false),
            speed_bits: AtomicU64::new(speed.to_bits()),
            seek_to: AtomicU64::new(NO_SEEK),
            position: AtomicU64::new(0),
        }));
        let mut s = Self {
            path: path.to_owned(),
            file,
            pace,
            control,
            base: 0,
            decoder: Decoder::new(),
            pending: Vec::with_capacity(CHUNK + MAX_FRAME_LEN),
            pending_offset: 0,
            release_to: 0,
            inject: Vec::new(),
            waiting: None,
            last_end_sample: None,
            anchor: None,
            anchor_speed: speed,
            rate_hz: DEFAULT_RATE_HZ,
            was_paused: false,
            eof: false,
            file_offset: 0,
        };
        s.restart()?;
        Ok(s)
    }

    /// A handle for pause, speed and seek from another thread.
    pub fn control(&self) -> ReplayControl {
        self.control.clone()
    }

    fn read_err(&self, source: io::Error) -> SourceError {
        SourceError::Read {
            path: self.path.display().to_string(),
            offset: self.file_offset,
            source,
        }
    }

    /// Rewinds to the start of the stream (after the magic, if there is one).
    fn restart(&mut self) -> Result<(), SourceError> {
        self.file
            .seek(SeekFrom::Start(0))
            .map_err(|e| self.read_err(e))?;
        let mut head = [0u8; 8];
        let mut got = 0;
        while got < head.len() {
            match self.file.read(&mut head[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.read_err(e)),
            }
        }
        // Same magic handling as RecordingReader: a raw stream is replayed
        // from byte 0, anything else from byte 8.
        self.base = if head.get(..2) == Some(&SYNC[..]) && head != MAGIC {
            0
        } else {
            got.min(MAGIC.len()) as u64
        };
        self.file
            .seek(SeekFrom::Start(self.base))
            .map_err(|e| self.read_err(e))?;
        self.file_offset = self.base;
        self.decoder = Decoder::with_base_offset(self.base);
        self.pending.clear();
        self.pending_offset = self.base;
        self.release_to = self.base;
        self.inject.clear();
        self.waiting = None;
        self.last_end_sample = None;
        self.anchor = None;
        self.eof = false;
        Ok(())
    }

    /// Reads one more chunk of the file into `pending` and the decoder.
    fn read_more(&mut self) -> Result<(), SourceError> {
        let start = self.pending.len();
        self.pending.resize(start + CHUNK, 0);
        let n = loop {
            match self.file.read(&mut self.pending[start..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.pending.truncate(start);
                    return Err(self.read_err(e));
                }
            }
        };
        self.pending.truncate(start + n);
        self.file_offset += n as u64;
        if n == 0 {
            self.eof = true;
            self.decoder.finish();
        } else {
            self.decoder.feed(&self.pending[start..]);
        }
        Ok(())
    }

    /// Fixes the pacing anchor for an IQ block starting at `first`: keep the
    /// current one while the signal continues, start again from "now" at the
    /// first block, after a speed or rate change, a step back or a long jump.
    fn anchor_block(&mut self, first: u64) {
        let Pace::RealTime { .. } = self.pace else {
            return;
        };
        let speed = self.control.speed();
        let keep = match (self.anchor, self.last_end_sample) {
            (Some(_), Some(last_end)) => {
                speed == self.anchor_speed
                    && first >= last_end
                    && ((first - last_end) as f64) / self.rate_hz <= MAX_PACED_JUMP_S
            }
            _ => false,
        };
        if !keep {
            self.anchor = Some((Instant::now(), first));
            self.anchor_speed = speed;
        }
    }

    /// The wall-clock time at which sample `end_sample` is due (`None`: now).
    fn due(&self, end_sample: u64) -> Option<Instant> {
        let (t0, s0) = self.anchor?;
        if let Pace::AsFastAsPossible = self.pace {
            return None;
        }
        let secs = end_sample.saturating_sub(s0) as f64 / (self.rate_hz * self.anchor_speed);
        Some(t0 + Duration::from_secs_f64(secs.min(1e9)))
    }

    /// Notes the sample rate of a PROBE_INFO; a change restarts pacing.
    fn set_rate(&mut self, rate_hz: u32) {
        let rate = f64::from(rate_hz);
        if rate != self.rate_hz {
            self.rate_hz = rate;
            self.anchor = None;
        }
    }

    /// Jumps to the IQ frame covering `target`.
    fn seek(&mut self, target: u64) -> Result<(), SourceError> {
        self.restart()?;
        let mut info_frame: Vec<u8> = Vec::new();
        loop {
            match self.decoder.next_item() {
                Some(DecodedItem::Frame(f)) => {
                    let Some((off, len)) = self.decoder.last_frame_span() else {
                        continue;
                    };
                    match &f.payload {
                        Payload::ProbeInfo(p) => {
                            self.set_rate(p.sample_rate_hz);
                            info_frame = self.span_bytes(off, len).to_vec();
                        }
                        Payload::Iq(b) if b.end_sample() > target => {
                            self.drop_before(off);
                            self.inject = info_frame;
                            self.release_to = off;
                            self.anchor = None;
                            self.last_end_sample = None;
                            self.anchor_block(b.first_sample);
                            self.waiting = Some((off + len as u64, b.first_sample, b.end_sample()));
                            self.last_end_sample = Some(b.end_sample());
                            self.control
                                .0
                                .position
                                .store(b.first_sample, Ordering::Relaxed);
                            return Ok(());
                        }
                        _ => {}
                    }
                }
                Some(_) => {}
                None if self.eof => {
                    // Target beyond the end: replay ends.
                    self.drop_before(self.decoder.stream_end());
                    self.release_to = self.pending_offset;
                    return Ok(());
                }
                None => {
                    // Keep the bytes a frame not yet complete may start in.
                    let end = self.pending_offset + self.pending.len() as u64;
                    self.drop_before(end.saturating_sub(MAX_FRAME_LEN as u64));
                    self.read_more()?;
                }
            }
        }
    }

    fn span_bytes(&self, off: u64, len: usize) -> &[u8] {
        let a = off.saturating_sub(self.pending_offset) as usize;
        self.pending.get(a..a + len).unwrap_or(&[])
    }

    fn drop_before(&mut self, off: u64) {
        let n = (off.saturating_sub(self.pending_offset) as usize).min(self.pending.len());
        self.pending.drain(..n);
        self.pending_offset += n as u64;
    }

    /// Hands out up to `buf.len()` releasable bytes; returns how many.
    fn release(&mut self, buf: &mut [u8]) -> usize {
        if !self.inject.is_empty() {
            let n = self.inject.len().min(buf.len());
            buf[..n].copy_from_slice(&self.inject[..n]);
            self.inject.drain(..n);
            return n;
        }
        let avail = self.release_to.saturating_sub(self.pending_offset) as usize;
        let n = avail.min(buf.len()).min(self.pending.len());
        buf[..n].copy_from_slice(&self.pending[..n]);
        self.drop_before(self.pending_offset + n as u64);
        n
    }
}

impl ByteSource for ReplaySource {
    fn read_chunk(&mut self, buf: &mut [u8]) -> Result<SourceRead, SourceError> {
        let target = self.control.0.seek_to.swap(NO_SEEK, Ordering::Relaxed);
        if target != NO_SEEK {
            self.seek(target)?;
        }
        if self.control.is_paused() {
            self.was_paused = true;
            std::thread::sleep(READ_TIMEOUT);
            return Ok(SourceRead::Idle);
        }
        if self.was_paused {
            self.was_paused = false;
            // Resume where we stood: the waiting frame is due after its own
            // length of signal, not at once.
            self.anchor = None;
            if let Some((_, first, _)) = self.waiting {
                self.anchor = Some((Instant::now(), first));
                self.anchor_speed = self.control.speed();
            }
        }
        loop {
            let n = self.release(buf);
            if n > 0 {
                return Ok(SourceRead::Bytes(n));
            }
            if let Some((end_off, _, end_sample)) = self.waiting {
                let due = self.due(end_sample);
                let now = Instant::now();
                match due {
                    Some(t) if t > now => {
                        std::thread::sleep((t - now).min(READ_TIMEOUT));
                        return Ok(SourceRead::Idle);
                    }
                    _ => {
                        self.release_to = end_off;
                        self.waiting = None;
                        self.control.0.position.store(end_sample, Ordering::Relaxed);
                        continue;
                    }
                }
            }
            match self.decoder.next_item() {
                Some(DecodedItem::Frame(f)) => {
                    let Some((off, len)) = self.decoder.last_frame_span() else {
                        continue;
                    };
                    let end_off = off + len as u64;
                    match &f.payload {
                        Payload::ProbeInfo(p) => {
                            self.set_rate(p.sample_rate_hz);
                            self.release_to = end_off;
                        }
                        Payload::Iq(b) => {
                            self.anchor_block(b.first_sample);
                            self.waiting = Some((end_off, b.first_sample, b.end_sample()));
                            self.last_end_sample = Some(b.end_sample());
                        }
                        _ => self.release_to = end_off,
                    }
                }
                Some(DecodedItem::Skipped { offset, .. }) => {
                    if let Some((off, len)) = self.decoder.last_frame_span() {
                        self.release_to = self.release_to.max(off + len as u64).max(offset);
                    }
                }
                Some(_) => {}
                None if self.eof => {
                    self.release_to = self.decoder.stream_end();
                    if self.pending.is_empty() && self.inject.is_empty() {
                        return Ok(SourceRead::End);
                    }
                }
                None => self.read_more()?,
            }
        }
    }

    fn describe(&self) -> String {
        format!("replay of {}", self.path.display())
    }
}
