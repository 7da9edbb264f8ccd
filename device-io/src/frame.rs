//! Typed frames of the version-1 probe serial stream (`shared/spec/serial-stream.md`).
//!
//! These types are the contract between the decoder, the encoder, the
//! recorder, the simulator and every consumer of probe data.

/// First two bytes of every frame.
pub const SYNC: [u8; 2] = [0xA5, 0x5A];
/// The only protocol version this crate reads and writes.
pub const VERSION: u8 = 1;
/// Largest payload a frame may carry, in bytes.
pub const MAX_PAYLOAD_LEN: usize = 4096;
/// Bytes before the payload: sync (2), version, kind, seq (2), len (2).
pub const HEADER_LEN: usize = 8;
/// Bytes after the payload: the CRC-32.
pub const CRC_LEN: usize = 4;
/// Largest number of samples in one IQ_SAMPLES frame.
pub const MAX_IQ_COUNT: usize = 1000;
/// Lowest PROBE_INFO sample rate accepted.
pub const MIN_SAMPLE_RATE_HZ: u32 = 8_000;
/// Highest PROBE_INFO sample rate accepted.
pub const MAX_SAMPLE_RATE_HZ: u32 = 48_000;

/// Frame kind byte values.
pub mod kind {
    /// PROBE_INFO.
    pub const PROBE_INFO: u8 = 0x01;
    /// IQ_SAMPLES.
    pub const IQ_SAMPLES: u8 = 0x02;
    /// EVENT.
    pub const EVENT: u8 = 0x03;
    /// ANNOTATION (recordings only).
    pub const ANNOTATION: u8 = 0x10;
}

/// IQ_SAMPLES flag bit 0: the ADC clipped somewhere in this block.
pub const FLAG_CLIPPED: u16 = 1 << 0;
/// IQ_SAMPLES flag bit 1: the transmitter was muted.
pub const FLAG_TX_MUTED: u16 = 1 << 1;

/// Probe model numbers of PROBE_INFO.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeModel {
    /// 0: unknown.
    Unknown,
    /// 1: adult, short-term.
    AdultShortTerm,
    /// 2: adult, long-term.
    AdultLongTerm,
    /// 3: paediatric.
    Paediatric,
    /// Any other number, kept as sent.
    Other(u8),
}

impl ProbeModel {
    /// The model from its wire number.
    pub fn from_u8(n: u8) -> Self {
        match n {
            0 => Self::Unknown,
            1 => Self::AdultShortTerm,
            2 => Self::AdultLongTerm,
            3 => Self::Paediatric,
            other => Self::Other(other),
        }
    }
    /// The wire number.
    pub fn as_u8(self) -> u8 {
        match self {
            Self::Unknown => 0,
            Self::AdultShortTerm => 1,
            Self::AdultLongTerm => 2,
            Self::Paediatric => 3,
            Self::Other(n) => n,
        }
    }
}

/// PROBE_INFO payload (44 bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeInfo {
    /// Complex I/Q sample rate, 8 000 ..= 48 000.
    pub sample_rate_hz: u32,
    /// Transmit frequency.
    pub carrier_hz: u32,
    /// Insonation angle in 1/100 degree.
    pub beam_angle_cdeg: u16,
    /// Probe model number.
    pub probe_model: u8,
    /// Probe run time so far.
    pub minutes_used: u32,
    /// Probe life; 0 = no limit.
    pub minutes_limit: u32,
    /// 16 bytes, ASCII, NUL-padded.
    pub probe_serial: [u8; 16],
    /// 8 bytes, ASCII, NUL-padded: the interface firmware.
    pub firmware: [u8; 8],
}

impl ProbeInfo {
    /// The probe serial as text: up to the first NUL, non-printable bytes replaced.
    pub fn serial_str(&self) -> String {
        ascii_field(&self.probe_serial)
    }
    /// The firmware version as text.
    pub fn firmware_str(&self) -> String {
        ascii_field(&self.firmware)
    }
    /// Beam angle in degrees.
    pub fn beam_angle_deg(&self) -> f64 {
        f64::from(self.beam_angle_cdeg) / 100.0
    }
    /// A NUL-padded fixed field from text (truncated to fit).
    pub fn pad<const N: usize>(text: &str) -> [u8; N] {
        let mut out = [0u8; N];
        for (o, b) in out.iter_mut().zip(text.bytes()) {
            *o = b;
        }
        out
    }
}

fn ascii_field(bytes: &[u8]) -> String {
    bytes
        .iter()
        .take_while(|&&b| b != 0)
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                char::from(b)
            } else {
                '?'
            }
        })
        .collect()
}

/// IQ_SAMPLES payload: a block of complex samples.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IqBlock {
    /// Index of the first sample of this block since the stream started.
    pub first_sample: u64,
    /// Bit 0 clipped, bit 1 transmitter muted.
    pub flags: u16,
    /// (I, Q) pairs, 1 ..= 1000 of them.
    pub samples: Vec<[i16; 2]>,
}

impl IqBlock {
    /// Whether the ADC clipped in this block.
    pub fn clipped(&self) -> bool {
        self.flags & FLAG_CLIPPED != 0
    }
    /// Whether the transmitter was muted in this block: its samples carry
    /// no echo.
    pub fn muted(&self) -> bool {
        self.flags & FLAG_TX_MUTED != 0
    }
    /// Index one past the last sample of this block (saturating at
    /// `u64::MAX`; the decoder never yields a block that needs it).
    pub fn end_sample(&self) -> u64 {
        self.first_sample.saturating_add(self.samples.len() as u64)
    }
}

/// How many samples a stream's IQ blocks span, segment by segment.
///
/// serial-stream.md: a block that starts before the end of the previous
/// one (overlap, or the counter went back because the sender restarted)
/// starts a new segment; a block that starts after it leaves a gap inside
/// the segment. The span is the sum of the segments' spans (gaps
/// included), so a restarted sender's two segments count as the time they
/// cover, not as the span of their overlapping sample indices.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SampleSpan {
    /// The segment in progress: its first sample and one past its last.
    current: Option<(u64, u64)>,
    /// Samples spanned by the segments before it.
    earlier_samples: u64,
    /// Segments seen.
    segments: u64,
}

impl SampleSpan {
    /// Takes one block, in stream order.
    pub fn observe(&mut self, block: &IqBlock) {
        let (first, end) = (block.first_sample, block.end_sample());
        self.current = Some(match self.current {
            Some((start, seg_end)) if first < seg_end => {
                self.earlier_samples = self.earlier_samples.saturating_add(seg_end - start);
                self.segments += 1;
                (first, end)
            }
            Some((start, seg_end)) => (start, seg_end.max(end)),
            None => {
                self.segments = 1;
                (first, end)
            }
        });
    }

    /// Samples spanned by all segments, or None before the first block.
    pub fn samples(&self) -> Option<u64> {
        self.current
            .map(|(start, end)| self.earlier_samples.saturating_add(end - start))
    }

    /// Segments seen (0 before the first block).
    pub fn segments(&self) -> u64 {
        self.segments
    }
}

/// EVENT codes of version 1.
pub mod event_code {
    /// Probe button pressed (operator marker).
    pub const BUTTON: u16 = 1;
    /// Receive gain changed; value = new gain in 0.1 dB.
    pub const GAIN_CHANGED: u16 = 2;
    /// Probe unplugged from the interface.
    pub const PROBE_UNPLUGGED: u16 = 3;
    /// Probe plugged in.
    pub const PROBE_PLUGGED: u16 = 4;
    /// Interface fault; value = vendor fault code.
    pub const INTERFACE_FAULT: u16 = 5;
}

/// EVENT payload (14 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeEvent {
    /// Sample index at which it happened.
    pub at_sample: u64,
    /// Event code (see [`event_code`]); unknown codes are kept.
    pub code: u16,
    /// Code-specific value.
    pub value: i32,
}

/// odm's own field of a `patient` annotation: a measured descending-aortic
/// diameter, mm, written by the monitor beside the spec's demographics and
/// preferred to them for stroke volume by every odm reader (serial-stream.md
/// readers ignore fields they do not know).
pub const PATIENT_DIAMETER_FIELD: &str = "aortic_diameter_mm";

/// ANNOTATION payload: a sample index and one JSON object with a string `type`.
#[derive(Debug, Clone, PartialEq)]
pub struct Annotation {
    /// Sample index it refers to.
    pub at_sample: u64,
    /// The JSON object, exactly as carried (always an object with a string `type`).
    pub json: serde_json::Map<String, serde_json::Value>,
}

impl Annotation {
    /// The annotation's `type` field.
    pub fn kind(&self) -> &str {
        self.json.get("type").and_then(|v| v.as_str()).unwrap_or("")
    }
}

/// One decoded frame's payload.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// 0x01.
    ProbeInfo(ProbeInfo),
    /// 0x02.
    Iq(IqBlock),
    /// 0x03.
    Event(ProbeEvent),
    /// 0x10.
    Annotation(Annotation),
}

impl Payload {
    /// The sample index at which a probe sending in real time would send
    /// this frame, for pacing a simulated probe by its sample clock: an IQ
    /// block once its last sample exists, an EVENT when it happens (so an
    /// unplug's EVENT 4 comes when the probe is plugged back, not with
    /// EVENT 3); `None` for frames not tied to a sample (PROBE_INFO,
    /// ANNOTATION).
    pub fn due_sample(&self) -> Option<u64> {
        match self {
            Payload::Iq(b) => Some(b.end_sample()),
            Payload::Event(e) => Some(e.at_sample),
            Payload::ProbeInfo(_) | Payload::Annotation(_) => None,
        }
    }

    /// The kind byte of this payload.
    pub fn kind(&self) -> u8 {
        match self {
            Self::ProbeInfo(_) => kind::PROBE_INFO,
            Self::Iq(_) => kind::IQ_SAMPLES,
            Self::Event(_) => kind::EVENT,
            Self::Annotation(_) => kind::ANNOTATION,
        }
    }
}

/// A good-CRC frame of a known kind with a well-formed payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// The sender's frame counter.
    pub seq: u16,
    /// What it carries.
    pub payload: Payload,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(first_sample: u64, count: usize) -> IqBlock {
        IqBlock {
            first_sample,
            flags: 0,
            samples: vec![[0, 0]; count],
        }
    }

    #[test]
    fn a_span_holds_its_gaps_and_adds_up_restarted_segments() {
        let mut s = SampleSpan::default();
        assert_eq!((s.samples(), s.segments()), (None, 0));
        // 100 .. 300, a gap to 500, then 500 .. 700: one segment of 600.
        for b in [block(100, 100), block(200, 100), block(500, 200)] {
            s.observe(&b);
        }
        assert_eq!((s.samples(), s.segments()), (Some(600), 1));
        // The sender restarts at 0: a second segment, 0 .. 400.
        for b in [block(0, 200), block(200, 200)] {
            s.observe(&b);
        }
        assert_eq!((s.samples(), s.segments()), (Some(1000), 2));
        // An overlap (a block that starts inside the last one) also starts
        // a segment: 350 .. 450 after 0 .. 400.
        s.observe(&block(350, 100));
        assert_eq!((s.samples(), s.segments()), (Some(1100), 3));
    }

    #[test]
    fn a_span_at_the_top_of_the_sample_index_saturates() {
        let mut s = SampleSpan::default();
        s.observe(&block(u64::MAX - 100, 50));
        s.observe(&block(u64::MAX - 50, 50));
        assert_eq!(s.samples(), Some(100));
        // Counter wrapped to 0: a new segment, not 2⁶⁴ samples.
        s.observe(&block(0, 100));
        assert_eq!((s.samples(), s.segments()), (Some(200), 2));
        // A block built past the last index ends at u64::MAX.
        assert_eq!(block(u64::MAX - 1, 5).end_sample(), u64::MAX);
    }
}
