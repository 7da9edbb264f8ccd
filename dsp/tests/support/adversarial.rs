//! The DSP pipeline fed outside samples: a run driven by arbitrary bytes,
//! checking what the pipeline promises whatever it is fed.
//!
//! Shared by the proptest `dsp/tests/adversarial.rs` (every `cargo test`)
//! and the fuzz target `fuzz/fuzz_targets/pipeline.rs` (docs/fuzzing.md),
//! which include this file by path. The samples an interface sends are
//! outside bytes: the decoder checks their framing, not their values, so
//! the pipeline itself must take any value, any block length, any sample
//! index the decoder lets through (first sample + count within `u64`),
//! gaps, steps back, flags, interference marks and setting changes in any
//! order, without panicking, and must keep its promises
//! (`shared/spec/analysis-output.md`, docs/dsp.md):
//!
//! - beats come with consecutive indices; each `next_onset_s` is after its
//!   `onset_s`, `cycle_s` is their difference and `hr_bpm` is 60 over it;
//!   every number is finite or NaN/None where it cannot be computed;
//! - a beat is accepted only with no reject reason, finite numbers within
//!   the detector's physiological limits and a quality within 0..1; a
//!   rejected one always says why;
//! - an accepted beat's cycle overlaps no missing or muted samples, and its
//!   systole no clipped block and no interference marked before it was
//!   emitted;
//! - envelope points and spectrum columns are finite, in time order within
//!   a segment, and columns' powers are not negative.
//!
//! The input is read as a small program. Its head chooses the stream's
//! parameters (the sample rates, carriers and angles interfaces use, or any
//! value, which `Pipeline::new` may refuse) and a base signal; the rest is
//! a list of blocks, each taking its samples from the base signal — a
//! virtual probe's beats at 8 kHz, so that the beat detector runs (at
//! another sample rate the same samples are faster or slower flow and
//! heart rate) — and optionally
//! damaging them (raw input bytes, full scale, zeros, a constant, a tone),
//! or jumping the sample index, stepping it back, flagging the block,
//! marking interference or changing a setting first.

use odm_device_io::frame::Payload;
use odm_dsp::beat::DetectorConfig;
use odm_dsp::haemo::{FtcFormula, SvModel};
use odm_dsp::{
    Beat, EnvelopePoint, Pipeline, PipelineConfig, PipelineSink, ProbeCalibration, SpectrumColumn,
    Status, StreamParams,
};
use odm_simulator::{SimConfig, VirtualProbe};
use std::sync::OnceLock;

/// Seconds of the base signal: enough for a dozen beats.
const BASE_S: f64 = 12.0;
/// Longest run the program may ask for, in samples, so that one input
/// stays quick (the fuzzer's speed, the proptest's time).
const MAX_SAMPLES: u64 = 240_000;

/// The virtual probe's I/Q at 8 kHz (blunt profile, 90/min, 20 dB), made
/// once per process.
fn base_signal() -> &'static [[i16; 2]] {
    static BASE: OnceLock<Vec<[i16; 2]>> = OnceLock::new();
    BASE.get_or_init(|| {
        let probe = VirtualProbe::new(SimConfig {
            seed: 5,
            duration_s: Some(BASE_S),
            sample_rate_hz: 8000,
            hr_bpm: 90.0,
            snr_db: Some(20.0),
            ..SimConfig::default()
        })
        .expect("base signal's configuration");
        let mut samples = Vec::new();
        for p in probe {
            if let Payload::Iq(b) = p {
                samples.extend_from_slice(&b.samples);
            }
        }
        samples
    })
}

/// Reads the input's bytes; past its end every read is 0.
struct Bytes<'a> {
    data: &'a [u8],
    at: usize,
}

impl Bytes<'_> {
    fn is_empty(&self) -> bool {
        self.at >= self.data.len()
    }
    fn u8(&mut self) -> u8 {
        let b = self.data.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        b
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | (u64::from(self.u32()) << 32)
    }
    fn i16(&mut self) -> i16 {
        self.u16() as i16
    }
    /// A float: usually an ordinary value, sometimes any bit pattern.
    fn f64(&mut self) -> f64 {
        match self.u8() % 4 {
            0 => f64::from_bits(self.u64()),
            1 => f64::from(self.i16()) / 100.0,
            2 => f64::from(self.u8()),
            _ => f64::from(self.u16()) / 1000.0,
        }
    }
}

/// Sample ranges `[start, end)` of one kind, in the current segment.
#[derive(Default)]
struct Ranges(Vec<(u64, u64)>);

impl Ranges {
    fn add(&mut self, start: u64, end: u64) {
        if end > start {
            self.0.push((start, end));
        }
    }
    /// Whether any range overlaps `[a_s, b_s]` (seconds at `fs`) by more
    /// than `tolerance_s` (sample times are rounded to the hop).
    fn overlaps(&self, a_s: f64, b_s: f64, fs: f64, tolerance_s: f64) -> bool {
        self.0.iter().any(|&(s, e)| {
            let (s, e) = (s as f64 / fs, e as f64 / fs);
            s < b_s - tolerance_s && e > a_s + tolerance_s
        })
    }
}

/// What the run has seen: the pipeline's outputs checked as they come.
struct Checker {
    fs: f64,
    limits: DetectorConfig,
    next_beat: Option<u64>,
    last_point_s: Option<f64>,
    last_column_s: Option<f64>,
    /// Missing or muted samples, clipped blocks, interference marks.
    missing: Ranges,
    clipped: Ranges,
    interference: Ranges,
    /// The block being pushed, when flagged clipped or muted: it belongs
    /// to the segment a step back starts.
    block_clipped: Option<(u64, u64)>,
    block_muted: Option<(u64, u64)>,
    beats: usize,
    accepted: usize,
}

impl Checker {
    fn new_segment(&mut self) {
        self.last_point_s = None;
        self.last_column_s = None;
        self.missing = Ranges::default();
        self.clipped = Ranges::default();
        self.interference = Ranges::default();
        if let Some((s, e)) = self.block_clipped {
            self.clipped.add(s, e);
        }
        if let Some((s, e)) = self.block_muted {
            self.missing.add(s, e);
        }
    }
}

/// What f64 seconds can resolve near `t_s`: at sample indices of 2⁵³ and
/// more the stream clock's seconds are coarser than a sample.
fn resolution_s(t_s: f64) -> f64 {
    1e-9 + 4.0 * f64::EPSILON * t_s.abs()
}

fn finite_or_nan(x: f64) -> bool {
    x.is_finite() || x.is_nan()
}

impl PipelineSink for Checker {
    fn spectrum_column(&mut self, c: &SpectrumColumn<'_>) {
        assert!(c.t_s.is_finite(), "column time {}", c.t_s);
        if let Some(last) = self.last_column_s {
            // Equal only where f64 cannot tell them apart (indices of
            // 2⁵³ and more).
            assert!(
                c.t_s >= last,
                "columns out of order: {} after {last}",
                c.t_s
            );
        }
        self.last_column_s = Some(c.t_s);
        assert!(c.zero_bin < c.power.len().max(1));
        assert!(c.bin_hz.is_finite() && c.bin_hz > 0.0);
        assert!(c.velocity_cm_s_per_bin.is_finite());
        assert!(c.noise_power.is_finite() && c.noise_power >= 0.0);
        for &p in c.power {
            assert!(p.is_finite() && p >= 0.0, "column power {p}");
        }
    }

    fn envelope_point(&mut self, p: &EnvelopePoint) {
        assert!(p.t_s.is_finite(), "point time {}", p.t_s);
        if let Some(last) = self.last_point_s {
            assert!(p.t_s >= last, "points out of order: {} after {last}", p.t_s);
        }
        self.last_point_s = Some(p.t_s);
        assert!(p.velocity_cm_s.is_finite(), "velocity {}", p.velocity_cm_s);
        assert!((0.0..=1.0).contains(&p.quality), "quality {}", p.quality);
    }

    fn beat(&mut self, b: &Beat) {
        if let Some(n) = self.next_beat {
            assert_eq!(b.index, n, "beat indices must be consecutive");
        }
        self.next_beat = Some(b.index + 1);
        self.beats += 1;
        assert!(b.onset_s.is_finite() && b.next_onset_s.is_finite(), "{b:?}");
        let res = resolution_s(b.next_onset_s);
        assert!(b.cycle_s > 0.0 && b.next_onset_s >= b.onset_s, "{b:?}");
        assert!(
            (b.cycle_s - (b.next_onset_s - b.onset_s)).abs() <= res,
            "{b:?}"
        );
        assert!(
            (b.hr_bpm - 60.0 / b.cycle_s).abs() <= 1e-9 * b.hr_bpm,
            "{b:?}"
        );
        for x in [
            b.peak_s,
            b.end_s,
            b.ft_ms,
            b.ftc_ms,
            b.sd_cm,
            b.pv_cm_s,
            b.md_cm_min,
        ] {
            assert!(finite_or_nan(x), "{b:?}");
        }
        assert_eq!(b.accepted, b.reject_reason.is_none(), "{b:?}");
        assert!((0.0..=1.0).contains(&b.quality), "{b:?}");
        if !b.accepted {
            return;
        }
        self.accepted += 1;
        let l = &self.limits;
        let within = |x: f64, (lo, hi): (f64, f64)| x.is_finite() && (lo..=hi).contains(&x);
        assert!(within(b.ft_ms, l.ft_ms_range), "{b:?}");
        assert!(within(b.pv_cm_s, l.pv_cm_s_range), "{b:?}");
        assert!(within(b.hr_bpm, l.hr_bpm_range), "{b:?}");
        assert!(within(b.sd_cm, l.sd_cm_range), "{b:?}");
        assert!(b.ftc_ms.is_finite() && b.md_cm_min.is_finite(), "{b:?}");
        assert!(b.onset_s <= b.peak_s && b.peak_s <= b.end_s, "{b:?}");
        assert!(b.end_s <= b.next_onset_s + res, "{b:?}");
        for x in [b.ma_cm_s2, b.sv_ml, b.co_l_min].into_iter().flatten() {
            assert!(x.is_finite(), "{b:?}");
        }
        // A column's time is its window's centre; allow a hop.
        let tol = 0.005 + res;
        assert!(
            !self
                .missing
                .overlaps(b.onset_s, b.next_onset_s, self.fs, tol),
            "accepted across missing or muted samples: {b:?}"
        );
        assert!(
            !self.clipped.overlaps(b.onset_s, b.end_s, self.fs, tol),
            "accepted with clipped samples in systole: {b:?}"
        );
        assert!(
            !self.interference.overlaps(b.onset_s, b.end_s, self.fs, tol),
            "accepted with marked interference in systole: {b:?}"
        );
    }

    fn status(&mut self, s: &Status) {
        if let Status::Discontinuity { .. } = s {
            self.new_segment();
        }
    }
}

/// The stream's parameters from the input's head.
fn stream_params(r: &mut Bytes<'_>) -> StreamParams {
    let sample_rate_hz = match r.u8() % 8 {
        0 => 8000,
        1 => 10_000,
        2 => 16_000,
        3 => 20_000,
        4 => 48_000,
        5 => 1000 + u32::from(r.u16()) * 15,
        6 => r.u32(),
        _ => 4000,
    };
    let carrier_hz = match r.u8() % 4 {
        0 => 4_000_000,
        1 => 5_000_000,
        2 => 8_000_000,
        _ => r.u32(),
    };
    let beam_angle_deg = match r.u8() % 4 {
        0 => 45.0,
        1 => 60.0,
        2 => f64::from(r.u8()),
        _ => r.f64(),
    };
    StreamParams {
        sample_rate_hz,
        carrier_hz,
        beam_angle_deg,
    }
}

/// Runs the program in `data` through a pipeline, panicking when an output
/// breaks a promise (the module's doc lists them); returns the beats
/// emitted and the beats accepted.
pub fn exercise(data: &[u8]) -> (usize, usize) {
    let mut r = Bytes { data, at: 0 };
    let params = stream_params(&mut r);
    let cfg = PipelineConfig {
        notch_strong_tones: r.u8().is_multiple_of(2), // even: on, the default
        ..PipelineConfig::default()
    };
    let Ok(mut pipe) = Pipeline::new(cfg, params) else {
        return (0, 0);
    };
    let fs = f64::from(params.sample_rate_hz);
    let base = base_signal();
    let mut c = Checker {
        fs,
        limits: cfg.detector,
        next_beat: None,
        last_point_s: None,
        last_column_s: None,
        missing: Ranges::default(),
        clipped: Ranges::default(),
        interference: Ranges::default(),
        block_clipped: None,
        block_muted: None,
        beats: 0,
        accepted: 0,
    };
    let mut next = u64::from(r.u16());
    let mut at_base = 0usize;
    let mut total = 0u64;
    let mut block = Vec::with_capacity(4096);
    while !r.is_empty() && total < MAX_SAMPLES {
        let op = r.u8();
        // Block length: one hop's worth to a few hundred milliseconds.
        let len = match r.u8() % 4 {
            0 => 1 + usize::from(r.u8()),
            1 => 200,
            2 => 1 + usize::from(r.u16() % 4096),
            _ => 400 * (1 + usize::from(r.u8() % 16)),
        };
        block.clear();
        for _ in 0..len {
            block.push(base[at_base % base.len()]);
            at_base += 1;
        }
        let (mut clipped, mut muted) = (false, false);
        match op % 16 {
            // Samples damaged from an offset for a length.
            1..=5 => {
                let from = usize::from(r.u16()) % len;
                let n = (1 + usize::from(r.u16())).min(len - from);
                let value = [r.i16(), r.i16()];
                let tone = (r.f64(), f64::from(r.u16()));
                for (k, s) in block[from..from + n].iter_mut().enumerate() {
                    *s = match op % 16 {
                        1 => [r.i16(), r.i16()],
                        2 => {
                            let v = if k % 2 == 0 { i16::MAX } else { i16::MIN };
                            [v, v]
                        }
                        3 => [0, 0],
                        4 => value,
                        _ => {
                            let ph = tone.0 * k as f64;
                            let a = tone.1 / 2.0;
                            let add = |x: i16, d: f64| {
                                let y = f64::from(x) + if d.is_finite() { d } else { 0.0 };
                                y.round().clamp(-32768.0, 32767.0) as i16
                            };
                            [add(s[0], a * ph.cos()), add(s[1], a * ph.sin())]
                        }
                    };
                }
            }
            // Samples lost before the block (the decoder's gap).
            6 => {
                let lost = match r.u8() % 4 {
                    0 => u64::from(r.u8()),
                    1 => u64::from(r.u16()) * 10,
                    2 => u64::from(r.u32()),
                    _ => r.u64(),
                };
                c.missing.add(next, next.saturating_add(lost));
                next = next.saturating_add(lost);
            }
            // A step back: the interface restarted its counter.
            7 => next = next.saturating_sub(1 + u64::from(r.u32())),
            8 => clipped = true,
            9 => muted = true,
            // Interference marked by an external diathermy signal.
            10 => {
                let start = next.saturating_sub(u64::from(r.u16()) * 4);
                let count = u64::from(r.u16()) * 4;
                c.interference.add(start, start.saturating_add(count));
                pipe.mark_interference(start, count);
            }
            11 => {
                let cal = ProbeCalibration {
                    gain: r.f64(),
                    offset_cm_s: r.f64(),
                    beam_angle_deg: r.u8().is_multiple_of(2).then(|| r.f64()),
                };
                let _ = pipe.set_calibration(cal);
            }
            12 => pipe.set_ftc_formula(match r.u8() % 3 {
                0 => FtcFormula::Bazett,
                1 => FtcFormula::Fridericia,
                // What `odm analyse --ftc linear:K` takes.
                _ => FtcFormula::Linear {
                    k_ms_per_bpm: f64::from(r.i16()) / 327.0,
                },
            }),
            13 => {
                if let Ok(m) = SvModel::measured(r.f64()) {
                    pipe.set_sv_model(m);
                }
            }
            _ => {}
        }
        // The decoder refuses a block whose end overflows the counter.
        let Some(end) = next.checked_add(len as u64) else {
            break;
        };
        c.block_clipped = clipped.then_some((next, end));
        c.block_muted = muted.then_some((next, end));
        if clipped {
            c.clipped.add(next, end);
        }
        if muted {
            c.missing.add(next, end);
        }
        pipe.push_flagged(next, &block, clipped, muted, &mut c);
        next = end;
        total += len as u64;
    }
    pipe.finish(&mut c);
    (c.beats, c.accepted)
}
