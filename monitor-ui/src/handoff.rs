//! Bounded lock-free handoff from the DSP thread to the UI thread.
//!
//! Contract (architecture.md, "The real-time path"): the DSP thread never
//! waits for painting. Every queue here is bounded and allocated once; when
//! the UI falls behind, pushing a new item drops the **oldest** one still
//! queued and counts it, so the display always shows the newest data and the
//! loss is visible in the diagnostics panel.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, Ordering};

use crossbeam_queue::ArrayQueue;
use odm_device_io::{Annotation, ProbeEvent, ProbeInfo};
use odm_dsp::haemo::FtcFormula;
use odm_dsp::{Beat, Status};

/// Rows of one display column of the spectrogram (the velocity axis).
pub const COLUMN_ROWS: usize = 192;

/// Highest forward velocity shown on the spectrogram, cm/s (the top row).
///
/// Peak aortic velocities are 50–200 cm/s (odm-primer.md, "Physics"); 220
/// leaves headroom above the fastest young adult.
pub const DISPLAY_MAX_CM_S: f32 = 220.0;
/// Largest reverse velocity shown, cm/s (the bottom row, as a negative
/// velocity): enough to see early-diastolic reverse flow without wasting the
/// screen on it.
pub const DISPLAY_MIN_CM_S: f32 = -60.0;

/// The velocity (cm/s) at the centre of display row `row` (0 = top).
pub fn velocity_cm_s_from_row(row: usize) -> f32 {
    let frac = (row as f32 + 0.5) / COLUMN_ROWS as f32;
    DISPLAY_MAX_CM_S - frac * (DISPLAY_MAX_CM_S - DISPLAY_MIN_CM_S)
}

/// The fractional row (0 = top edge, `COLUMN_ROWS` = bottom edge) of a velocity.
pub fn row_from_velocity_cm_s(v_cm_s: f32) -> f32 {
    (DISPLAY_MAX_CM_S - v_cm_s) / (DISPLAY_MAX_CM_S - DISPLAY_MIN_CM_S) * COLUMN_ROWS as f32
}

/// A bounded multi-producer multi-consumer queue that drops its oldest item
/// when full, and counts what it dropped.
#[derive(Debug)]
pub struct DropOldest<T> {
    queue: ArrayQueue<T>,
    dropped: AtomicU64,
}

impl<T> DropOldest<T> {
    /// A queue holding at most `capacity` items (at least 1).
    pub fn new(capacity: usize) -> Self {
        Self {
            queue: ArrayQueue::new(capacity.max(1)),
            dropped: AtomicU64::new(0),
        }
    }
    /// Adds an item; when full, the oldest queued item is dropped and counted.
    /// Never blocks, never allocates.
    pub fn push(&self, item: T) {
        if self.queue.force_push(item).is_some() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
    /// Takes the oldest queued item.
    pub fn pop(&self) -> Option<T> {
        self.queue.pop()
    }
    /// Items dropped so far because the consumer fell behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
    /// Items waiting.
    pub fn len(&self) -> usize {
        self.queue.len()
    }
    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

/// One spectrogram column, already mapped to the display's velocity rows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ColumnMsg {
    /// Sample index at the centre of the column's analysis window.
    pub sample: u64,
    /// Intensity per display row, 0 (noise floor) ..= 255 (strongest); row 0
    /// is [`DISPLAY_MAX_CM_S`].
    pub rows: [u8; COLUMN_ROWS],
    /// Steady narrowband tones the DSP is cancelling in this column.
    pub tones: u8,
}

/// One point of the maximum-velocity envelope.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EnvelopeMsg {
    /// Sample index the point belongs to.
    pub sample: u64,
    /// Maximum forward velocity, cm/s.
    pub v_cm_s: f32,
}

/// What the reader thread is doing, as the UI shows it.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceState {
    /// Opening the port or file.
    Connecting(String),
    /// Samples are flowing.
    Live,
    /// Replay paused by the user.
    Paused,
    /// The port closed or vanished; the reader is retrying.
    Reconnecting(String),
    /// The recording has been read to its end.
    Ended,
    /// The source failed and stopped; the text says what and where.
    Failed(String),
}

/// A rare message: stream metadata, events, status and resets.
#[derive(Debug, Clone, PartialEq)]
pub enum EventMsg {
    /// A PROBE_INFO (sent at least once per second by an interface).
    ProbeInfo(ProbeInfo),
    /// A probe EVENT frame.
    Probe(ProbeEvent),
    /// An annotation read from a recording being replayed.
    Annotation(Annotation),
    /// A pipeline status change.
    Status(Status),
    /// The reader's state changed.
    Source(SourceState),
    /// The stroke-volume model changed (patient panel or a replayed
    /// `patient` annotation); beats from now on use it.
    AreaModel(odm_dsp::haemo::SvModel),
    /// The stream restarted (seek, new source, sample counter went back):
    /// the UI clears its time-based displays.
    Reset,
}

/// A beat with the wall-clock instant its completing block reached the DSP
/// thread (for beat-to-screen latency).
#[derive(Debug, Clone, PartialEq)]
pub struct BeatMsg {
    /// The beat, exactly as the pipeline produced it.
    pub beat: Beat,
    /// When the block holding `beat.completed_by_sample` was handed to the pipeline.
    pub pushed_at: std::time::Instant,
}

/// Capacities: columns and envelope points for ~4 s at 200 columns/s, beats
/// for ~1 min at 200/min; events are rare but must not be lost, so generous.
const COLUMN_CAPACITY: usize = 1024;
const ENVELOPE_CAPACITY: usize = 1024;
const BEAT_CAPACITY: usize = 256;
const EVENT_CAPACITY: usize = 512;

/// Everything the DSP thread hands to the UI, shared by both.
#[derive(Debug)]
pub struct Handoff {
    /// Spectrogram columns.
    pub columns: DropOldest<ColumnMsg>,
    /// Envelope points.
    pub envelope: DropOldest<EnvelopeMsg>,
    /// Beats, accepted and rejected.
    pub beats: DropOldest<BeatMsg>,
    /// Metadata, status and source events.
    pub events: DropOldest<EventMsg>,
    /// I/Q samples the Doppler audio callback could not take in time.
    pub audio_dropped: AtomicU64,
    /// Frames the recorder thread could not take in time (also written
    /// into the recording as a `stream_error` annotation).
    pub recorder_dropped: AtomicU64,
    /// Samples dropped because they came before the first PROBE_INFO
    /// (serial-stream.md: they cannot be converted to velocity).
    pub samples_before_probe_info: AtomicU64,
    latest_sample: AtomicU64,
    sample_rate_hz: AtomicU32,
    /// The mirror image (dB, ×100) of the I/Q imbalance the DSP is
    /// correcting; `i32::MIN` when it is not correcting one.
    iq_image_centi_db: AtomicI32,
    /// The DSP finds the pulsatile flow in the reverse half of the spectrum.
    flow_reversed: AtomicBool,
    /// The last IQ block came with the transmitter muted (IQ flags bit 1).
    transmitter_muted: AtomicBool,
    /// Q's power against I's (dB, ×100) while one channel is dead or
    /// broken; `i32::MIN` otherwise.
    iq_channel_fault_centi_db: AtomicI32,
    /// While the flow wraps round the top of the band, the velocity the
    /// stream can carry (cm/s, ×100); `i32::MIN` otherwise.
    aliasing_limit_centi_cm_s: AtomicI32,
    /// While the flow is past even the unwrapped range, that range's top
    /// (cm/s, ×100); `i32::MIN` otherwise.
    aliasing_past_centi_cm_s: AtomicI32,
    /// The DSP thread's `SCHED_FIFO` priority; 0 under normal scheduling;
    /// `i32::MIN` before the thread has started.
    dsp_fifo_priority: AtomicI32,
    /// The FTc formula the engine builds its pipelines with: 0 Bazett,
    /// 1 Fridericia, 2 linear with k in `ftc_linear_k_bits`.
    ftc_kind: AtomicU32,
    /// k of the linear formula (ms per beat/min), as `f64` bits.
    ftc_linear_k_bits: AtomicU64,
}

impl Default for Handoff {
    fn default() -> Self {
        Self::new()
    }
}

impl Handoff {
    /// A handoff with the standard capacities.
    pub fn new() -> Self {
        Self {
            columns: DropOldest::new(COLUMN_CAPACITY),
            envelope: DropOldest::new(ENVELOPE_CAPACITY),
            beats: DropOldest::new(BEAT_CAPACITY),
            events: DropOldest::new(EVENT_CAPACITY),
            audio_dropped: AtomicU64::new(0),
            recorder_dropped: AtomicU64::new(0),
            samples_before_probe_info: AtomicU64::new(0),
            latest_sample: AtomicU64::new(0),
            sample_rate_hz: AtomicU32::new(0),
            iq_image_centi_db: AtomicI32::new(i32::MIN),
            flow_reversed: AtomicBool::new(false),
            transmitter_muted: AtomicBool::new(false),
            iq_channel_fault_centi_db: AtomicI32::new(i32::MIN),
            aliasing_limit_centi_cm_s: AtomicI32::new(i32::MIN),
            aliasing_past_centi_cm_s: AtomicI32::new(i32::MIN),
            dsp_fifo_priority: AtomicI32::new(i32::MIN),
            ftc_kind: AtomicU32::new(0),
            ftc_linear_k_bits: AtomicU64::new(0),
        }
    }
    /// A shared handoff.
    pub fn shared() -> Arc<Self> {
        Arc::new(Self::new())
    }
    /// Records the index one past the newest sample processed.
    pub fn set_latest_sample(&self, sample: u64) {
        self.latest_sample.store(sample, Ordering::Release);
    }
    /// Index one past the newest sample processed.
    pub fn latest_sample(&self) -> u64 {
        self.latest_sample.load(Ordering::Acquire)
    }
    /// Records the stream's sample rate (from PROBE_INFO).
    pub fn set_sample_rate_hz(&self, hz: u32) {
        self.sample_rate_hz.store(hz, Ordering::Release);
    }
    /// The stream's sample rate, 0 before the first PROBE_INFO.
    pub fn sample_rate_hz(&self) -> u32 {
        self.sample_rate_hz.load(Ordering::Acquire)
    }
    /// Sets the FTc formula for the pipelines built from now on (by
    /// [`crate::engine::Engine::new`]); the display names it under FTc.
    /// Set before the backend starts: beats already averaged keep theirs.
    pub fn set_ftc_formula(&self, f: FtcFormula) {
        let (kind, k) = match f {
            FtcFormula::Bazett => (0, 0.0),
            FtcFormula::Fridericia => (1, 0.0),
            FtcFormula::Linear { k_ms_per_bpm } => (2, k_ms_per_bpm),
        };
        self.ftc_linear_k_bits.store(k.to_bits(), Ordering::Release);
        self.ftc_kind.store(kind, Ordering::Release);
    }
    /// The FTc formula in use (Bazett unless set).
    pub fn ftc_formula(&self) -> FtcFormula {
        match self.ftc_kind.load(Ordering::Acquire) {
            1 => FtcFormula::Fridericia,
            2 => FtcFormula::Linear {
                k_ms_per_bpm: f64::from_bits(self.ftc_linear_k_bits.load(Ordering::Acquire)),
            },
            _ => FtcFormula::Bazett,
        }
    }
    /// Records how the OS schedules the DSP thread.
    pub fn set_dsp_scheduling(&self, s: &odm_device_io::sched::Scheduling) {
        let v = match s {
            odm_device_io::sched::Scheduling::RealTime { priority } => (*priority).max(1),
            odm_device_io::sched::Scheduling::Normal { .. } => 0,
        };
        self.dsp_fifo_priority.store(v, Ordering::Release);
    }
    /// Whether the DSP thread runs with real-time priority; None before it
    /// has started.
    pub fn dsp_real_time(&self) -> Option<bool> {
        let v = self.dsp_fifo_priority.load(Ordering::Acquire);
        (v != i32::MIN).then_some(v > 0)
    }
    /// Records the I/Q imbalance correction in force: the image level it
    /// removes, dB (None: the signal is used as received).
    pub fn set_iq_corrected_image_db(&self, image_db: Option<f64>) {
        let v = image_db.map_or(i32::MIN, |db| (db * 100.0).round().clamp(-1e6, 1e6) as i32);
        self.iq_image_centi_db.store(v, Ordering::Release);
    }
    /// The image level of the I/Q imbalance being corrected, dB; None when
    /// none is.
    pub fn iq_corrected_image_db(&self) -> Option<f64> {
        let v = self.iq_image_centi_db.load(Ordering::Acquire);
        (v != i32::MIN).then(|| f64::from(v) / 100.0)
    }
    /// Records whether the pulsatile flow is in the reverse half of the
    /// spectrum (I and Q swapped at the interface, or the beam on flow
    /// towards the probe; docs/dsp.md, stage 3b).
    pub fn set_flow_reversed(&self, reversed: bool) {
        self.flow_reversed.store(reversed, Ordering::Release);
    }
    /// Whether the flow is reported reversed.
    pub fn flow_reversed(&self) -> bool {
        self.flow_reversed.load(Ordering::Acquire)
    }
    /// Records whether the last IQ block came with the transmitter muted
    /// (IQ flags bit 1): its samples carry no echo and are not analysed
    /// (docs/dsp.md, "API").
    pub fn set_transmitter_muted(&self, muted: bool) {
        self.transmitter_muted.store(muted, Ordering::Release);
    }
    /// Whether the transmitter is muted.
    pub fn transmitter_muted(&self) -> bool {
        self.transmitter_muted.load(Ordering::Acquire)
    }
    /// Records a dead or broken quadrature channel: Q's power against I's,
    /// dB (None: both channels work; docs/dsp.md, stage 1a).
    pub fn set_iq_channel_fault_db(&self, q_over_i_db: Option<f64>) {
        let v = q_over_i_db.map_or(i32::MIN, |db| {
            (db.clamp(-99.0, 99.0) * 100.0).round() as i32
        });
        self.iq_channel_fault_centi_db.store(v, Ordering::Release);
    }
    /// Q's power against I's while one channel is dead or broken, dB.
    pub fn iq_channel_fault_db(&self) -> Option<f64> {
        let v = self.iq_channel_fault_centi_db.load(Ordering::Acquire);
        (v != i32::MIN).then(|| f64::from(v) / 100.0)
    }
    /// Records aliasing (docs/dsp.md, stage 3c): while the systole's flow
    /// wraps round the top of the band, the highest velocity the stream
    /// carries, cm/s (the DSP follows the edge past it); while the flow is
    /// past even the unwrapped range, that range's top (those beats are
    /// rejected). None: not in the last 3 s.
    pub fn set_aliasing(&self, limit_cm_s: Option<f64>, past_unwrap_cm_s: Option<f64>) {
        let centi =
            |x: Option<f64>| x.map_or(i32::MIN, |v| (v.clamp(0.0, 1e6) * 100.0).round() as i32);
        self.aliasing_limit_centi_cm_s
            .store(centi(limit_cm_s), Ordering::Release);
        self.aliasing_past_centi_cm_s
            .store(centi(past_unwrap_cm_s), Ordering::Release);
    }
    /// The velocity limit the flow is exceeding, cm/s, while it aliases.
    pub fn aliasing_limit_cm_s(&self) -> Option<f64> {
        let v = self.aliasing_limit_centi_cm_s.load(Ordering::Acquire);
        (v != i32::MIN).then(|| f64::from(v) / 100.0)
    }
    /// The top of the unwrapped range, cm/s, while the flow is past it.
    pub fn aliasing_past_unwrap_cm_s(&self) -> Option<f64> {
        let v = self.aliasing_past_centi_cm_s.load(Ordering::Acquire);
        (v != i32::MIN).then(|| f64::from(v) / 100.0)
    }
    /// Total display items dropped because the UI fell behind.
    pub fn dropped_total(&self) -> u64 {
        self.columns.dropped()
            + self.envelope.dropped()
            + self.beats.dropped()
            + self.events.dropped()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_queue_drops_the_oldest_and_counts_it() {
        let q = DropOldest::new(3);
        for i in 0..5 {
            q.push(i);
        }
        assert_eq!(q.dropped(), 2);
        assert_eq!(q.pop(), Some(2));
        assert_eq!(q.pop(), Some(3));
        assert_eq!(q.pop(), Some(4));
        assert_eq!(q.pop(), None);
    }

    #[test]
    fn rows_and_velocities_are_inverse() {
        for row in [0, 1, 50, COLUMN_ROWS - 1] {
            let v = velocity_cm_s_from_row(row);
            let back = row_from_velocity_cm_s(v);
            assert!(
                (back - (row as f32 + 0.5)).abs() < 1e-3,
                "row {row}: {back}"
            );
        }
        assert!(row_from_velocity_cm_s(DISPLAY_MAX_CM_S).abs() < 1e-6);
        assert!((row_from_velocity_cm_s(DISPLAY_MIN_CM_S) - COLUMN_ROWS as f32).abs() < 1e-3);
    }
}
