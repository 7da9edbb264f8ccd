//! The DSP stage: payloads in, display data out through the [`Handoff`].
//!
//! The same `Engine` runs on the DSP thread of the live app and,
//! synchronously, in tests (so a test feeds an exact amount of simulated
//! signal and checks the screen against the same pipeline's beats). It
//! never blocks: display data, recorder frames and audio samples leave
//! through bounded queues that drop (and count) rather than wait.

use crate::calibrations::Calibrations;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use odm_device_io::{Annotation, Payload, ProbeInfo};
use odm_dsp::area::{Demographics, Sex};
use odm_dsp::haemo::SvModel;
use odm_dsp::{
    Beat, EnvelopePoint, Pipeline, PipelineConfig, PipelineSink, SpectrumColumn, Status,
    StreamParams,
};

use crate::control::{PatientSettings, PatientSex};
use crate::handoff::{
    BeatMsg, COLUMN_ROWS, ColumnMsg, EnvelopeMsg, EventMsg, Handoff, SourceState,
    velocity_cm_s_from_row,
};

/// Dynamic range of the waterfall: power this many dB above the column's
/// noise floor is full brightness; at or below the floor is black.
pub const DISPLAY_RANGE_DB: f32 = 30.0;

/// What the engine hands to the recorder thread.
#[derive(Debug, Clone, PartialEq)]
pub enum RecorderMsg {
    /// Start a recording with this PROBE_INFO at this sample.
    Start {
        /// File to create.
        path: std::path::PathBuf,
        /// The PROBE_INFO in force.
        info: ProbeInfo,
        /// Sample index the recording starts at.
        at_sample: u64,
    },
    /// A received frame's payload, to be written as it is.
    Payload(Payload),
    /// An annotation from the operator.
    Annotate {
        /// Sample index it refers to.
        at_sample: u64,
        /// The JSON object (with its `type`).
        json: serde_json::Map<String, serde_json::Value>,
    },
    /// Stop and close the recording.
    Stop,
}

/// Turns one spectrum column into display rows (0 = top = fastest forward
/// flow): each row takes the strongest bin it covers, in dB above the
/// column's noise floor, scaled to 0..=255 over [`DISPLAY_RANGE_DB`].
///
/// With `unwrap` (the DSP reports aliasing: the systole's top wraps round
/// +fs/2, docs/dsp.md, stage 3c), forward velocities above the band's top
/// are drawn from the bins they wrapped to, so the waterfall shows the
/// systole whole under the envelope the DSP follows across the edge.
pub fn rows_from_column(col: &SpectrumColumn<'_>, unwrap: bool) -> [u8; COLUMN_ROWS] {
    let mut rows = [0u8; COLUMN_ROWS];
    let per_bin = col.velocity_cm_s_per_bin;
    if !(per_bin.is_finite() && per_bin > 0.0) || col.power.is_empty() {
        return rows;
    }
    let noise = col.noise_power.max(f32::MIN_POSITIVE);
    let row_step = f64::from(velocity_cm_s_from_row(0) - velocity_cm_s_from_row(1));
    let n = col.power.len() as i64;
    for (r, out) in rows.iter_mut().enumerate() {
        let v = f64::from(velocity_cm_s_from_row(r));
        let zero = col.zero_bin as i64;
        // Bins whose centres lie in the row; a row narrower than a bin takes
        // the nearest bin.
        let mut lo = ((v - row_step / 2.0) / per_bin).ceil() as i64 + zero;
        let mut hi = ((v + row_step / 2.0) / per_bin).ceil() as i64 - 1 + zero;
        if lo > hi {
            lo = (v / per_bin).round() as i64 + zero;
            hi = lo;
        }
        let mut p = 0.0f32;
        if unwrap && v > 0.0 {
            for k in lo.max(0)..=hi.min(zero + n - 1) {
                p = p.max(col.power[k.rem_euclid(n) as usize]);
            }
        } else {
            for k in lo.max(0)..=hi.min(n - 1) {
                p = p.max(col.power.get(k as usize).copied().unwrap_or(0.0));
            }
        }
        if p > noise {
            let db = 10.0 * (p / noise).log10();
            *out = (db / DISPLAY_RANGE_DB * 255.0).clamp(0.0, 255.0) as u8;
        }
    }
    rows
}

/// The SV model for the clinician's entries (a measured diameter wins).
pub fn sv_model_from_patient(p: &PatientSettings) -> Result<SvModel, odm_dsp::area::AreaError> {
    match p.aortic_diameter_mm {
        Some(d) => SvModel::measured(d),
        None => SvModel::population(Demographics {
            age_years: f64::from(p.age_years),
            sex: match p.sex {
                PatientSex::Female => Sex::Female,
                PatientSex::Male => Sex::Male,
                PatientSex::Unknown => Sex::Unknown,
            },
            height_cm: p.height_cm,
            weight_kg: p.weight_kg,
        }),
    }
}

/// The SV model from a `patient` annotation read from a recording, if usable.
fn sv_model_from_annotation(a: &Annotation) -> Option<SvModel> {
    let j = &a.json;
    if let Some(d) = j
        .get(odm_device_io::PATIENT_DIAMETER_FIELD)
        .and_then(|v| v.as_f64())
    {
        return SvModel::measured(d).ok();
    }
    let demographics = Demographics {
        age_years: j.get("age_years")?.as_f64()?,
        sex: j
            .get("sex")
            .and_then(|v| v.as_str())
            .and_then(Sex::from_word)
            .unwrap_or(Sex::Unknown),
        height_cm: j.get("height_cm")?.as_f64()?,
        weight_kg: j.get("weight_kg")?.as_f64()?,
    };
    SvModel::population(demographics).ok()
}

struct DisplaySink<'a> {
    handoff: &'a Handoff,
    pushed_at: Instant,
    /// Draw forward velocities past the band's top from where they wrapped.
    unwrap: bool,
}

impl PipelineSink for DisplaySink<'_> {
    fn spectrum_column(&mut self, column: &SpectrumColumn<'_>) {
        self.handoff.columns.push(ColumnMsg {
            sample: column.sample_index,
            rows: rows_from_column(column, self.unwrap),
            tones: u8::try_from(column.narrowband_lines).unwrap_or(u8::MAX),
        });
    }
    fn envelope_point(&mut self, point: &EnvelopePoint) {
        self.handoff.envelope.push(EnvelopeMsg {
            sample: point.sample_index,
            v_cm_s: point.velocity_cm_s as f32,
        });
    }
    fn beat(&mut self, beat: &Beat) {
        self.handoff.beats.push(BeatMsg {
            beat: beat.clone(),
            pushed_at: self.pushed_at,
        });
    }
    fn status(&mut self, status: &Status) {
        self.handoff.events.push(EventMsg::Status(*status));
    }
}

/// One raw I/Q sample with the pipeline's I/Q correction `Q' = b·(Q − a·I)`
/// applied (`odm_dsp::iq`), rounded back to the ADC's counts.
fn balanced(s: [i16; 2], a: f32, b: f32) -> [i16; 2] {
    let (i, q) = (f32::from(s[0]), f32::from(s[1]));
    let q2 = (b * (q - a * i)).round().clamp(-32768.0, 32767.0);
    [s[0], q2 as i16]
}

/// Outputs the engine could not hand on because a consumer was full.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineDrops {
    /// Samples received before the first PROBE_INFO (cannot be converted to
    /// velocity; dropped, serial-stream.md).
    pub samples_before_probe_info: u64,
    /// Frames the recorder thread could not take in time.
    pub recorder_frames: u64,
    /// I/Q samples the audio callback could not take in time.
    pub audio_samples: u64,
}

/// The DSP stage. See the module documentation.
pub struct Engine {
    handoff: Arc<Handoff>,
    cfg: PipelineConfig,
    pipeline: Option<Pipeline>,
    info: Option<ProbeInfo>,
    latest_sample: u64,
    recorder: Option<rtrb::Producer<RecorderMsg>>,
    recording: bool,
    audio: Option<rtrb::Producer<[i16; 2]>>,
    drops: EngineDrops,
    unreported_recorder_drops: u64,
    /// Installed probe calibrations (loaded before the thread started).
    calibrations: Arc<Calibrations>,
    /// The probe whose calibration the pipeline holds.
    calibrated_serial: Option<[u8; 16]>,
}

impl Engine {
    /// An engine writing to `handoff`, with the default pipeline
    /// configuration but for the FTc formula set on `handoff`.
    pub fn new(handoff: Arc<Handoff>) -> Self {
        Self {
            cfg: PipelineConfig {
                ftc: handoff.ftc_formula(),
                ..PipelineConfig::default()
            },
            handoff,
            pipeline: None,
            info: None,
            latest_sample: 0,
            recorder: None,
            recording: false,
            audio: None,
            drops: EngineDrops::default(),
            unreported_recorder_drops: 0,
            calibrations: Arc::new(Calibrations::default()),
            calibrated_serial: None,
        }
    }

    /// Probe calibrations to apply when a probe's PROBE_INFO arrives.
    pub fn set_calibrations(&mut self, calibrations: Arc<Calibrations>) {
        self.calibrations = calibrations;
        self.calibrated_serial = None;
    }

    /// Sends received frames and annotations to a recorder thread.
    pub fn set_recorder(&mut self, producer: rtrb::Producer<RecorderMsg>) {
        self.recorder = Some(producer);
    }

    /// Sends I/Q samples to the Doppler audio callback.
    pub fn set_audio(&mut self, producer: rtrb::Producer<[i16; 2]>) {
        self.audio = Some(producer);
    }

    /// The pipeline configuration in use.
    pub fn config(&self) -> &PipelineConfig {
        &self.cfg
    }

    /// The newest PROBE_INFO.
    pub fn probe_info(&self) -> Option<&ProbeInfo> {
        self.info.as_ref()
    }

    /// Index one past the newest sample processed.
    pub fn latest_sample(&self) -> u64 {
        self.latest_sample
    }

    /// What was dropped so far.
    pub fn drops(&self) -> EngineDrops {
        self.drops
    }

    /// Processes one payload. Returns it when the engine is done with it
    /// and has not handed it to the recorder: the caller disposes of it
    /// off the DSP thread, which never frees memory either
    /// (architecture.md, "The real-time path"; `tests/no_alloc.rs`).
    pub fn handle(&mut self, payload: Payload) -> Option<Payload> {
        let pushed_at = Instant::now();
        match &payload {
            Payload::ProbeInfo(info) => self.probe_info_changed(info),
            Payload::Iq(block) => {
                self.handoff.set_transmitter_muted(block.muted());
                if let Some(p) = &mut self.pipeline {
                    let mut sink = DisplaySink {
                        handoff: &self.handoff,
                        pushed_at,
                        unwrap: p.aliasing(),
                    };
                    p.push_flagged(
                        block.first_sample,
                        &block.samples,
                        block.clipped(),
                        block.muted(),
                        &mut sink,
                    );
                    self.latest_sample = block.end_sample();
                    self.handoff.set_latest_sample(self.latest_sample);
                    self.handoff
                        .set_iq_corrected_image_db(p.iq_correction().and(p.iq_image_db()));
                    self.handoff.set_flow_reversed(p.flow_reversed());
                    self.handoff.set_aliasing(
                        p.aliasing().then(|| p.max_velocity_cm_s()),
                        p.aliasing_past_unwrap()
                            .then(|| p.max_unwrapped_velocity_cm_s()),
                    );
                    // The ratio (a log) is read again only while faulted.
                    let fault_db = if p.iq_channel_fault() {
                        p.iq_channel_ratio_db()
                    } else {
                        None
                    };
                    self.handoff.set_iq_channel_fault_db(fault_db);
                    if let Some(audio) = &mut self.audio {
                        let before = self.drops.audio_samples;
                        // The audio hears the I/Q the analysis uses: with a
                        // demodulator error corrected (docs/dsp.md, stage
                        // 1a) the forward flow no longer leaks into the
                        // reverse (right) channel.
                        let balance = p.iq_correction();
                        for &s in &block.samples {
                            let s = balance.map_or(s, |(a, b)| balanced(s, a, b));
                            if audio.push(s).is_err() {
                                self.drops.audio_samples += 1;
                            }
                        }
                        let lost = self.drops.audio_samples - before;
                        if lost > 0 {
                            self.handoff
                                .audio_dropped
                                .fetch_add(lost, Ordering::Relaxed);
                        }
                    }
                } else {
                    let n = block.samples.len() as u64;
                    self.drops.samples_before_probe_info += n;
                    self.handoff
                        .samples_before_probe_info
                        .fetch_add(n, Ordering::Relaxed);
                }
            }
            Payload::Event(e) => {
                if e.code == odm_device_io::event_code::GAIN_CHANGED
                    && let Some(p) = &mut self.pipeline
                {
                    p.receive_gain_changed(e.at_sample, e.value);
                }
                self.handoff.events.push(EventMsg::Probe(*e));
            }
            Payload::Annotation(a) => {
                if a.kind() == "patient"
                    && let Some(model) = sv_model_from_annotation(a)
                {
                    self.set_sv_model(model);
                }
                self.handoff.events.push(EventMsg::Annotation(a.clone()));
            }
        }
        if self.recording {
            return match self.send_to_recorder(RecorderMsg::Payload(payload)) {
                Some(RecorderMsg::Payload(p)) => Some(p),
                _ => None,
            };
        }
        Some(payload)
    }

    fn probe_info_changed(&mut self, info: &ProbeInfo) {
        let params = StreamParams {
            sample_rate_hz: info.sample_rate_hz,
            carrier_hz: info.carrier_hz,
            beam_angle_deg: info.beam_angle_deg(),
        };
        let same = self
            .pipeline
            .as_ref()
            .is_some_and(|p| *p.params() == params);
        if !same {
            match Pipeline::new(self.cfg, params) {
                Ok(p) => self.pipeline = Some(p),
                Err(e) => {
                    self.pipeline = None;
                    self.handoff
                        .events
                        .push(EventMsg::Source(SourceState::Failed(format!(
                            "signal processing cannot start for PROBE_INFO {} Hz, {} Hz carrier, {:.2}°: {e}",
                            info.sample_rate_hz,
                            info.carrier_hz,
                            info.beam_angle_deg()
                        ))));
                }
            }
            self.handoff.set_sample_rate_hz(info.sample_rate_hz);
        }
        // A new pipeline or another probe: apply that probe's calibration
        // (issue "probe calibration": automatically, on its PROBE_INFO).
        if !same || self.calibrated_serial != Some(info.probe_serial) {
            let correction = self.calibrations.correction(info);
            if let Some(p) = &mut self.pipeline
                && let Err(e) = p.set_calibration(correction)
            {
                self.handoff
                    .events
                    .push(EventMsg::Source(SourceState::Failed(format!(
                        "probe calibration not applied: {e}"
                    ))));
            }
            self.calibrated_serial = Some(info.probe_serial);
        }
        // Sent every time (about once a second): minutes used change.
        if self.info.as_ref() != Some(info) {
            self.handoff.events.push(EventMsg::ProbeInfo(info.clone()));
        }
        self.info = Some(info.clone());
    }

    /// Uses another SV model for subsequent beats.
    pub fn set_sv_model(&mut self, model: SvModel) {
        self.cfg.sv_model = model;
        self.handoff.events.push(EventMsg::AreaModel(model));
        if let Some(p) = &mut self.pipeline {
            p.set_sv_model(model);
        }
    }

    /// New demographics from the patient panel: the SV model changes and a
    /// `patient` annotation goes into the recording. Returns why the model
    /// could not be built, if it could not.
    pub fn set_patient(&mut self, p: &PatientSettings) -> Result<(), String> {
        let model = sv_model_from_patient(p).map_err(|e| e.to_string())?;
        self.set_sv_model(model);
        self.annotate(p.annotation_json());
        Ok(())
    }

    /// Writes an annotation at the newest sample (when recording).
    pub fn annotate(&mut self, json: serde_json::Map<String, serde_json::Value>) {
        if self.recording {
            let at_sample = self.latest_sample;
            self.send_to_recorder(RecorderMsg::Annotate { at_sample, json });
        }
    }

    /// Starts recording to `path`; fails when no PROBE_INFO has been seen
    /// (a recording must begin with one) or there is no recorder.
    pub fn start_recording(&mut self, path: std::path::PathBuf) -> Result<(), String> {
        let Some(info) = self.info.clone() else {
            return Err("no PROBE_INFO received yet: nothing to record".into());
        };
        if self.recorder.is_none() {
            return Err("no recorder thread".into());
        }
        self.recording = true;
        let at_sample = self.latest_sample;
        self.send_to_recorder(RecorderMsg::Start {
            path,
            info,
            at_sample,
        });
        Ok(())
    }

    /// Stops recording.
    pub fn stop_recording(&mut self) {
        if self.recording {
            self.send_to_recorder(RecorderMsg::Stop);
            self.recording = false;
        }
    }

    /// Whether frames go to the recorder.
    pub fn is_recording(&self) -> bool {
        self.recording
    }

    /// Starts a new stream (seek, new source): a fresh pipeline at the next
    /// PROBE_INFO, and the UI clears its time-based displays.
    pub fn reset(&mut self) {
        self.pipeline = None;
        self.info = None;
        self.latest_sample = 0;
        self.handoff.set_latest_sample(0);
        self.handoff.set_iq_corrected_image_db(None);
        self.handoff.set_flow_reversed(false);
        self.handoff.set_transmitter_muted(false);
        self.handoff.set_iq_channel_fault_db(None);
        self.handoff.set_aliasing(None, None);
        self.handoff.events.push(EventMsg::Reset);
    }

    /// Flushes the pipeline's last outputs (end of a recording).
    pub fn finish(&mut self) {
        if let Some(p) = &mut self.pipeline {
            let mut sink = DisplaySink {
                handoff: &self.handoff,
                pushed_at: Instant::now(),
                unwrap: p.aliasing(),
            };
            p.finish(&mut sink);
        }
    }

    /// Queues `msg` for the recorder thread; the message back when it could
    /// not be queued (counted as dropped).
    fn send_to_recorder(&mut self, msg: RecorderMsg) -> Option<RecorderMsg> {
        let Some(r) = &mut self.recorder else {
            return Some(msg);
        };
        // Frames dropped while the recorder was behind are recorded as a
        // `stream_error` annotation once there is room (serial-stream.md).
        if self.unreported_recorder_drops > 0 && r.slots() >= 2 {
            let mut json = serde_json::Map::new();
            json.insert("type".into(), "stream_error".into());
            json.insert("what".into(), "recorder_dropped_frames".into());
            json.insert("count".into(), self.unreported_recorder_drops.into());
            if r.push(RecorderMsg::Annotate {
                at_sample: self.latest_sample,
                json,
            })
            .is_ok()
            {
                self.unreported_recorder_drops = 0;
            }
        }
        match r.push(msg) {
            Ok(()) => None,
            Err(rtrb::PushError::Full(back)) => {
                self.drops.recorder_frames += 1;
                self.unreported_recorder_drops += 1;
                self.handoff
                    .recorder_dropped
                    .fetch_add(1, Ordering::Relaxed);
                Some(back)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handoff::row_from_velocity_cm_s;
    use odm_device_io::IqBlock;

    #[test]
    fn a_bin_30_db_over_noise_is_full_brightness_at_its_velocity_row() {
        // 256 bins, 0 Hz at bin 128, 2 cm/s per bin: bin 178 is +100 cm/s.
        let mut power = vec![1.0f32; 256];
        power[178] = 1000.0;
        let col = SpectrumColumn {
            sample_index: 0,
            t_s: 0.0,
            power: &power,
            zero_bin: 128,
            bin_hz: 73.5,
            velocity_cm_s_per_bin: 2.0,
            noise_power: 1.0,
            interference: false,
            narrowband_lines: 0,
        };
        let rows = rows_from_column(&col, false);
        let row = row_from_velocity_cm_s(100.0) as usize;
        assert_eq!(rows[row], 255);
        let lit: Vec<usize> = (0..COLUMN_ROWS).filter(|&r| rows[r] > 0).collect();
        assert_eq!(lit, vec![row], "only the 100 cm/s row is lit");
    }

    #[test]
    fn while_aliasing_a_wrapped_bin_is_drawn_above_the_band_top() {
        // 256 bins, 0 Hz at bin 128, 1 cm/s per bin: the band's top is
        // +128 cm/s, and flow at 160 cm/s arrives at −96 cm/s (bin 32).
        let mut power = vec![1.0f32; 256];
        power[32] = 1000.0;
        let col = SpectrumColumn {
            sample_index: 0,
            t_s: 0.0,
            power: &power,
            zero_bin: 128,
            bin_hz: 36.7,
            velocity_cm_s_per_bin: 1.0,
            noise_power: 1.0,
            interference: false,
            narrowband_lines: 0,
        };
        let lit = |rows: [u8; COLUMN_ROWS]| -> Vec<usize> {
            (0..COLUMN_ROWS).filter(|&r| rows[r] > 0).collect()
        };
        // As received, −96 cm/s is below the display's −60 cm/s: nothing.
        assert!(lit(rows_from_column(&col, false)).is_empty());
        // Unwrapped: the 160 cm/s row, and only forward rows take wrapped bins.
        let rows = lit(rows_from_column(&col, true));
        assert_eq!(rows, vec![row_from_velocity_cm_s(160.0) as usize]);
    }

    /// With the demodulator's error corrected, the audio hears the probe's
    /// true quadrature signal: after the correction starts, the audio's Q
    /// is the unbalanced stream's original Q to within −30 dB (−17 dB as
    /// received, 10 % and 5°).
    #[test]
    fn the_audio_hears_the_corrected_iq() {
        let handoff = Handoff::shared();
        let mut e = Engine::new(handoff);
        let (tx, mut rx) = rtrb::RingBuffer::<[i16; 2]>::new(1 << 17);
        e.set_audio(tx);
        // The same probe twice: balanced (the true Q), and through a
        // demodulator with 10 % and 5° of error (what the engine gets).
        let probe = |gain_error: f64, phase_deg: f64| {
            odm_simulator::VirtualProbe::new(odm_simulator::SimConfig {
                seed: 4,
                duration_s: Some(10.0),
                snr_db: Some(30.0),
                sample_rate_hz: 8000,
                iq_gain_error: gain_error,
                iq_phase_error_deg: phase_deg,
                ..odm_simulator::SimConfig::default()
            })
            .expect("config")
        };
        let mut original = Vec::new();
        for payload in probe(0.0, 0.0) {
            if let Payload::Iq(b) = payload {
                original.extend(b.samples);
            }
        }
        for payload in probe(0.1, 5.0) {
            e.handle(payload);
        }
        let (sin, cos) = 5.0_f32.to_radians().sin_cos();
        let heard: Vec<[i16; 2]> = std::iter::from_fn(|| rx.pop().ok()).collect();
        assert_eq!(heard.len(), original.len());
        // Error power of a Q against the original Q over the last 2 s, dB.
        let last_2_s = heard.len() - 16_000;
        let rel_error_db = |q: &dyn Fn(usize) -> f32| {
            let (mut err, mut sig) = (0.0_f64, 0.0_f64);
            for (k, o) in original.iter().enumerate().skip(last_2_s) {
                let o = f32::from(o[1]);
                err += f64::from(q(k) - o).powi(2);
                sig += f64::from(o).powi(2);
            }
            10.0 * (err / sig).log10()
        };
        let corrected = rel_error_db(&|k| f32::from(heard[k][1]));
        let raw = rel_error_db(&|k| {
            let (i, q) = (f32::from(original[k][0]), f32::from(original[k][1]));
            (1.1 * (q * cos + i * sin)).round()
        });
        assert!(corrected < -30.0, "audio Q error {corrected:.1} dB");
        assert!(raw > -20.0, "as received {raw:.1} dB");
        assert!(heard.iter().zip(&original).all(|(h, o)| h[0] == o[0]));
    }

    /// Median PV of the accepted beats of 20 s of the virtual probe (a probe
    /// reading 10% high), with `calibrations` installed.
    fn median_pv_with(calibrations: Calibrations) -> f64 {
        let handoff = Handoff::shared();
        let mut e = Engine::new(handoff.clone());
        e.set_calibrations(Arc::new(calibrations));
        let cfg = odm_simulator::SimConfig {
            seed: 11,
            duration_s: Some(20.0),
            probe_gain_error: 0.10,
            ..odm_simulator::SimConfig::default()
        };
        let probe = odm_simulator::VirtualProbe::new(cfg).expect("config");
        let mut pv = Vec::new();
        for payload in probe {
            e.handle(payload);
            while let Some(b) = handoff.beats.pop() {
                if b.beat.accepted {
                    pv.push(b.beat.pv_cm_s);
                }
            }
        }
        assert!(pv.len() >= 10, "{} accepted beats", pv.len());
        pv.sort_by(f64::total_cmp);
        pv[pv.len() / 2]
    }

    #[test]
    fn applies_the_probes_installed_calibration_when_its_probe_info_arrives() {
        let raw = median_pv_with(Calibrations::default());
        let mut cals = Calibrations::default();
        let until = odm_device_io::calibration::CalDate::parse("2099-01-01").expect("date");
        let correction = odm_dsp::calfit::probe_calibration_from(1.10, 0.0);
        // Another probe's calibration must not be applied.
        cals.insert_correction("OTHER", correction, until, true);
        assert_eq!(median_pv_with(cals.clone()), raw);
        cals.insert_correction("SIM-0001", correction, until, true);
        let corrected = median_pv_with(cals);
        assert!(
            (corrected * 1.10 - raw).abs() < 0.01 * raw,
            "raw {raw}, corrected {corrected}"
        );
    }

    #[test]
    fn samples_before_the_first_probe_info_are_dropped_and_counted() {
        let handoff = Handoff::shared();
        let mut e = Engine::new(handoff.clone());
        e.handle(Payload::Iq(IqBlock {
            first_sample: 0,
            flags: 0,
            samples: vec![[1, 1]; 200],
        }));
        assert_eq!(e.drops().samples_before_probe_info, 200);
        assert_eq!(
            handoff.samples_before_probe_info.load(Ordering::Relaxed),
            200
        );
        assert_eq!(handoff.latest_sample(), 0, "nothing was processed");
    }

    #[test]
    fn the_transmitter_flag_of_each_block_reaches_the_ui() {
        let handoff = Handoff::shared();
        let mut e = Engine::new(handoff.clone());
        let block = |first_sample, flags| {
            Payload::Iq(IqBlock {
                first_sample,
                flags,
                samples: vec![[1, 1]; 200],
            })
        };
        e.handle(block(0, odm_device_io::FLAG_TX_MUTED));
        assert!(handoff.transmitter_muted());
        e.handle(block(200, 0));
        assert!(!handoff.transmitter_muted());
        e.handle(block(400, odm_device_io::FLAG_TX_MUTED | 1));
        assert!(handoff.transmitter_muted());
        e.reset();
        assert!(!handoff.transmitter_muted());
    }

    #[test]
    fn recording_needs_a_probe_info_first() {
        let mut e = Engine::new(Handoff::shared());
        let (p, _c) = rtrb::RingBuffer::new(4);
        e.set_recorder(p);
        assert!(e.start_recording("x.odmrec".into()).is_err());
        assert!(!e.is_recording());
    }

    /// Outside bytes decide the engine's input: a stream whose structure is
    /// as odd as CRC-valid frames can make it — indices near `u64::MAX`, a
    /// counter that goes back, unusable and changing probe parameters,
    /// events and annotations at the last index — must never panic the DSP
    /// thread (this test runs with overflow checks), and the samples it
    /// could process are shown as processed.
    #[test]
    fn an_odd_stream_structure_never_panics_the_engine() {
        let mut probe = odm_simulator::VirtualProbe::new(odm_simulator::SimConfig {
            seed: 6,
            duration_s: Some(4.0),
            ..odm_simulator::SimConfig::default()
        })
        .expect("config");
        let mut payloads = Vec::new();
        while let Some(p) = probe.next_payload() {
            payloads.push(p);
        }
        let Some(Payload::ProbeInfo(info)) = payloads.first().cloned() else {
            unreachable!("the virtual probe starts with PROBE_INFO")
        };
        let with = |f: &dyn Fn(&mut odm_device_io::ProbeInfo)| {
            let mut i = info.clone();
            f(&mut i);
            Payload::ProbeInfo(i)
        };
        let top = u64::MAX - 50_000;
        let mut e = Engine::new(Handoff::shared());
        let mut iq = 0_u64;
        for (k, p) in payloads.into_iter().enumerate() {
            let p = match p {
                Payload::Iq(mut b) => {
                    iq += 1;
                    b.first_sample = match iq % 40 {
                        // The counter near the top of u64, then back to 0.
                        0..=9 => top + b.first_sample % 40_000,
                        // A block that repeats indices already seen.
                        20 => b.first_sample / 2,
                        // A block past the last index (the decoder skips
                        // one from the wire; built in memory it can exist).
                        30 => u64::MAX - 10,
                        _ => b.first_sample,
                    };
                    Payload::Iq(b)
                }
                p => p,
            };
            e.handle(p);
            match k % 97 {
                13 => {
                    e.handle(with(&|i| i.beam_angle_cdeg = 9000));
                }
                29 => {
                    e.handle(with(&|i| i.carrier_hz = 0));
                }
                41 => {
                    e.handle(with(&|i| i.sample_rate_hz = 8_000));
                }
                53 => {
                    e.handle(with(&|i| i.sample_rate_hz = info.sample_rate_hz));
                }
                61 => {
                    e.handle(Payload::Event(odm_device_io::ProbeEvent {
                        at_sample: u64::MAX,
                        code: 3,
                        value: i32::MIN,
                    }));
                }
                _ => {}
            }
        }
        assert!(e.latest_sample() > 0, "blocks were processed");
    }
}
