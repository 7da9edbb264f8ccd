//! Encoder of the version-1 probe serial stream: typed payloads to frame
//! bytes exactly as `shared/spec/serial-stream.md` lays them out.
//!
//! [`encode_frame`] refuses payloads the decoder would count as malformed
//! (rule 5), so whatever it writes decodes back to the same [`Payload`].
//! [`encode_raw_frame`] frames arbitrary payload bytes (for recorders that
//! copy payloads byte for byte, and for fault-injecting simulators).

use crate::decoder::{ANNOTATION_HEADER_LEN, EVENT_LEN, IQ_HEADER_LEN, PROBE_INFO_LEN};
use crate::frame::{
    MAX_IQ_COUNT, MAX_PAYLOAD_LEN, MAX_SAMPLE_RATE_HZ, MIN_SAMPLE_RATE_HZ, Payload, SYNC, VERSION,
};

/// Why a payload cannot be encoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EncodeError {
    /// The payload would exceed 4 096 bytes.
    #[error("payload of {len} bytes exceeds the 4096-byte frame limit")]
    PayloadTooLong {
        /// The payload length that was asked for.
        len: usize,
    },
    /// An IQ block with a sample count outside 1 ..= 1000.
    #[error("IQ block has {count} samples, allowed 1..=1000")]
    IqCount {
        /// The number of samples given.
        count: usize,
    },
    /// An IQ block whose samples would run past sample index `u64::MAX`
    /// (the decoder skips such a block as malformed).
    #[error(
        "IQ block from sample {first_sample} with {count} samples runs past the last sample index"
    )]
    SampleIndexOverflow {
        /// The block's first sample index.
        first_sample: u64,
        /// The number of samples given.
        count: usize,
    },
    /// A PROBE_INFO sample rate outside 8 000 ..= 48 000 Hz.
    #[error("PROBE_INFO sample rate {sample_rate_hz} Hz outside 8000..=48000")]
    SampleRate {
        /// The rate given.
        sample_rate_hz: u32,
    },
    /// An annotation without a string `type`.
    #[error("annotation has no string \"type\" field")]
    AnnotationType,
    /// The annotation JSON could not be serialised.
    #[error("annotation JSON could not be serialised: {0}")]
    Json(String),
}

/// Appends the payload bytes of `payload` to `out` (no frame header, no CRC).
pub fn encode_payload(payload: &Payload, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    match payload {
        Payload::ProbeInfo(p) => {
            if !(MIN_SAMPLE_RATE_HZ..=MAX_SAMPLE_RATE_HZ).contains(&p.sample_rate_hz) {
                return Err(EncodeError::SampleRate {
                    sample_rate_hz: p.sample_rate_hz,
                });
            }
            out.reserve(PROBE_INFO_LEN);
            out.extend_from_slice(&p.sample_rate_hz.to_le_bytes());
            out.extend_from_slice(&p.carrier_hz.to_le_bytes());
            out.extend_from_slice(&p.beam_angle_cdeg.to_le_bytes());
            out.push(p.probe_model);
            out.push(0); // reserved
            out.extend_from_slice(&p.minutes_used.to_le_bytes());
            out.extend_from_slice(&p.minutes_limit.to_le_bytes());
            out.extend_from_slice(&p.probe_serial);
            out.extend_from_slice(&p.firmware);
        }
        Payload::Iq(b) => {
            let count = b.samples.len();
            if count == 0 || count > MAX_IQ_COUNT {
                return Err(EncodeError::IqCount { count });
            }
            if b.first_sample.checked_add(count as u64).is_none() {
                return Err(EncodeError::SampleIndexOverflow {
                    first_sample: b.first_sample,
                    count,
                });
            }
            out.reserve(IQ_HEADER_LEN + 4 * count);
            out.extend_from_slice(&b.first_sample.to_le_bytes());
            // count <= 1000 checked above, so it fits in u16.
            out.extend_from_slice(&(count as u16).to_le_bytes());
            out.extend_from_slice(&b.flags.to_le_bytes());
            out.extend(b.samples.iter().flat_map(|[i, q]| {
                let (i, q) = (i.to_le_bytes(), q.to_le_bytes());
                [i[0], i[1], q[0], q[1]]
            }));
        }
        Payload::Event(e) => {
            out.reserve(EVENT_LEN);
            out.extend_from_slice(&e.at_sample.to_le_bytes());
            out.extend_from_slice(&e.code.to_le_bytes());
            out.extend_from_slice(&e.value.to_le_bytes());
        }
        Payload::Annotation(a) => {
            if !a.json.get("type").is_some_and(serde_json::Value::is_string) {
                return Err(EncodeError::AnnotationType);
            }
            let json = serde_json::to_vec(&a.json).map_err(|e| EncodeError::Json(e.to_string()))?;
            if ANNOTATION_HEADER_LEN + json.len() > MAX_PAYLOAD_LEN {
                return Err(EncodeError::PayloadTooLong {
                    len: ANNOTATION_HEADER_LEN + json.len(),
                });
            }
            out.extend_from_slice(&a.at_sample.to_le_bytes());
            out.extend_from_slice(&json);
        }
    }
    Ok(())
}

/// Appends one complete frame (header, payload, CRC) carrying `payload` with
/// sequence number `seq` to `out`. On error nothing is appended.
pub fn encode_frame(seq: u16, payload: &Payload, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let start = out.len();
    out.extend_from_slice(&[SYNC[0], SYNC[1], VERSION, payload.kind()]);
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&[0, 0]); // len, patched below
    if let Err(e) = encode_payload(payload, out) {
        out.truncate(start);
        return Err(e);
    }
    let len = out.len() - start - 8;
    if len > MAX_PAYLOAD_LEN {
        out.truncate(start);
        return Err(EncodeError::PayloadTooLong { len });
    }
    // len <= 4096 checked above.
    out[start + 6..start + 8].copy_from_slice(&(len as u16).to_le_bytes());
    let crc = crc32fast::hash(&out[start + 2..]);
    out.extend_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// Appends one frame of any `kind` with the given raw payload bytes. Only
/// the length is checked: the payload is not validated against its kind.
pub fn encode_raw_frame(
    seq: u16,
    kind: u8,
    payload: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    if payload.len() > MAX_PAYLOAD_LEN {
        return Err(EncodeError::PayloadTooLong { len: payload.len() });
    }
    let start = out.len();
    out.extend_from_slice(&[SYNC[0], SYNC[1], VERSION, kind]);
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u16).to_le_bytes());
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(&out[start + 2..]);
    out.extend_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// Numbers frames itself: `seq` starts at 0 (or a chosen value) and goes up
/// by one per frame of any kind, wrapping 65535 → 0.
#[derive(Debug, Clone, Default)]
pub struct Encoder {
    next_seq: u16,
}

impl Encoder {
    /// An encoder whose first frame has seq 0.
    pub fn new() -> Self {
        Self { next_seq: 0 }
    }

    /// An encoder whose first frame has seq `first_seq`.
    pub fn starting_at(first_seq: u16) -> Self {
        Self {
            next_seq: first_seq,
        }
    }

    /// The seq the next frame will carry.
    pub fn next_seq(&self) -> u16 {
        self.next_seq
    }

    /// Appends a frame for `payload` to `out`; returns the seq it used. A
    /// refused payload consumes no seq.
    pub fn encode(&mut self, payload: &Payload, out: &mut Vec<u8>) -> Result<u16, EncodeError> {
        let seq = self.next_seq;
        encode_frame(seq, payload, out)?;
        self.next_seq = seq.wrapping_add(1);
        Ok(seq)
    }

    /// Appends a frame of `kind` with raw payload bytes; returns the seq used.
    pub fn encode_raw(
        &mut self,
        kind: u8,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<u16, EncodeError> {
        let seq = self.next_seq;
        encode_raw_frame(seq, kind, payload, out)?;
        self.next_seq = seq.wrapping_add(1);
        Ok(seq)
    }

    /// Skips `n` sequence numbers (a simulator's "lost frames" fault).
    pub fn skip_seq(&mut self, n: u16) {
        self.next_seq = self.next_seq.wrapping_add(n);
    }
}
