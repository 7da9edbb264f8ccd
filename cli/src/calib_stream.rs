//! Decoded stream items → the DSP pipeline, for `odm calibrate` and
//! `odm verify`: builds the [`Pipeline`] when PROBE_INFO arrives (rebuilding
//! it if the stream parameters change), applies the probe's calibration
//! according to a [`CalibrationPolicy`], and collects envelope points and
//! beats.
//!
//! IQ blocks that arrive before the first PROBE_INFO cannot be converted to
//! velocity (serial-stream.md): they are dropped and counted.

use anyhow::Context;
use odm_device_io::calibration::{Calibration, CalibrationStore, ProbeConditions};
use odm_device_io::{DecodedItem, Payload, ProbeInfo};
use odm_dsp::pipeline::{EnvelopePoint, Pipeline, PipelineConfig, PipelineSink, ProbeCalibration};
use odm_dsp::{Beat, StreamParams};

/// Which velocity correction the pipeline applies.
#[derive(Debug, Clone)]
pub enum CalibrationPolicy {
    /// Raw velocities, as the stream's parameters imply (what a calibration measures).
    Raw,
    /// The probe's calibration from this store, looked up by serial when its
    /// PROBE_INFO arrives (what the monitor and `odm analyse` do).
    Store(CalibrationStore),
}

/// The pipeline correction for a stored calibration: `v_true = (v − offset)/gain`,
/// no angle change.
pub fn probe_calibration_from(cal: &Calibration) -> ProbeCalibration {
    odm_dsp::calfit::probe_calibration_from(cal.gain, cal.offset_cm_s)
}

/// What the pipeline produced, kept for measuring.
#[derive(Debug)]
pub struct Collected {
    /// Whether to keep envelope points (true unless only beats are needed).
    pub keep_envelope: bool,
    /// `(t_s, velocity_cm_s, quality)` of every envelope point.
    pub envelope: Vec<(f64, f64, f64)>,
    /// Every beat, accepted or not.
    pub beats: Vec<Beat>,
}

impl Default for Collected {
    fn default() -> Self {
        Self {
            keep_envelope: true,
            envelope: Vec::new(),
            beats: Vec::new(),
        }
    }
}

impl PipelineSink for Collected {
    fn envelope_point(&mut self, p: &EnvelopePoint) {
        if self.keep_envelope {
            self.envelope.push((p.t_s, p.velocity_cm_s, p.quality));
        }
    }
    fn beat(&mut self, beat: &Beat) {
        self.beats.push(beat.clone());
    }
}

/// Drives a [`Pipeline`] from decoded stream items.
pub struct StreamAnalyser {
    cfg: PipelineConfig,
    policy: CalibrationPolicy,
    pipeline: Option<Pipeline>,
    params: Option<StreamParams>,
    /// The latest PROBE_INFO.
    pub probe: Option<ProbeInfo>,
    /// Every distinct probe serial seen, in order.
    pub serials: Vec<String>,
    /// Every distinct carrier / beam angle / sample rate seen, in order.
    pub conditions: Vec<ProbeConditions>,
    /// The calibration applied to the current probe, if any.
    pub applied: Option<(String, ProbeCalibration)>,
    /// The serial the current pipeline's calibration was chosen for.
    decided_for: Option<String>,
    /// Samples dropped because no PROBE_INFO had arrived yet.
    pub samples_before_probe_info: u64,
    /// Time the flow was reversed under pipelines already replaced, s.
    reverse_flow_s_before: f64,
    /// Time the flow wrapped round the band's top under pipelines already
    /// replaced, s.
    aliased_s_before: f64,
    /// The outputs.
    pub out: Collected,
}

impl StreamAnalyser {
    /// A driver with this pipeline configuration and calibration policy.
    pub fn new(cfg: PipelineConfig, policy: CalibrationPolicy) -> Self {
        Self {
            cfg,
            policy,
            pipeline: None,
            params: None,
            probe: None,
            serials: Vec::new(),
            conditions: Vec::new(),
            applied: None,
            decided_for: None,
            samples_before_probe_info: 0,
            reverse_flow_s_before: 0.0,
            aliased_s_before: 0.0,
            out: Collected::default(),
        }
    }

    /// Feeds one decoded item.
    pub fn handle(&mut self, item: DecodedItem) -> anyhow::Result<()> {
        let DecodedItem::Frame(frame) = item else {
            // Gaps and discontinuities are seen by the pipeline itself from
            // `first_sample`; damage shows in the decoder's counters.
            return Ok(());
        };
        match frame.payload {
            Payload::ProbeInfo(info) => self.probe_info(info)?,
            Payload::Iq(block) => match self.pipeline.as_mut() {
                Some(p) => p.push_flagged(
                    block.first_sample,
                    &block.samples,
                    block.clipped(),
                    block.muted(),
                    &mut self.out,
                ),
                None => self.samples_before_probe_info += block.samples.len() as u64,
            },
            Payload::Event(ev) => {
                if ev.code == odm_device_io::event_code::GAIN_CHANGED
                    && let Some(p) = self.pipeline.as_mut()
                {
                    p.receive_gain_changed(ev.at_sample, ev.value);
                }
            }
            Payload::Annotation(_) => {}
        }
        Ok(())
    }

    fn probe_info(&mut self, info: ProbeInfo) -> anyhow::Result<()> {
        let serial = info.serial_str();
        if !self.serials.contains(&serial) {
            self.serials.push(serial.clone());
        }
        let conditions = ProbeConditions::of(&info);
        if !self.conditions.contains(&conditions) {
            self.conditions.push(conditions);
        }
        let params = StreamParams {
            sample_rate_hz: info.sample_rate_hz,
            carrier_hz: info.carrier_hz,
            beam_angle_deg: info.beam_angle_deg(),
        };
        if self.params != Some(params) || self.pipeline.is_none() {
            if let Some(mut old) = self.pipeline.take() {
                old.finish(&mut self.out);
                self.reverse_flow_s_before += old.reverse_flow_s();
                self.aliased_s_before += old.aliased_s();
            }
            let pipeline = Pipeline::new(self.cfg, params)
                .map_err(|e| anyhow::anyhow!("cannot analyse probe {serial:?}'s stream: {e}"))?;
            self.pipeline = Some(pipeline);
            self.params = Some(params);
            self.decided_for = None;
        }
        // A new probe (or a rebuilt pipeline) gets its own calibration.
        if self.decided_for.as_deref() != Some(serial.as_str()) {
            self.apply_calibration(&info)?;
            self.decided_for = Some(serial);
        }
        self.probe = Some(info);
        Ok(())
    }

    fn apply_calibration(&mut self, info: &ProbeInfo) -> anyhow::Result<()> {
        let serial = &info.serial_str();
        let correction = match &self.policy {
            CalibrationPolicy::Raw => None,
            CalibrationPolicy::Store(store) => match store
                .lookup(serial)
                .with_context(|| format!("looking up the calibration of probe {serial:?}"))?
            {
                Some(cal) => {
                    // Measured under another carrier or beam angle, its
                    // gain does not hold: refused, never applied quietly.
                    cal.applies_to(info).map_err(|why| {
                        anyhow::anyhow!(
                            "the installed calibration of probe {serial:?} does not apply: {why}; calibrate the probe again"
                        )
                    })?;
                    Some(probe_calibration_from(&cal))
                }
                None => None,
            },
        };
        let Some(pipeline) = self.pipeline.as_mut() else {
            return Ok(());
        };
        let correction_or_none = correction.unwrap_or_default();
        pipeline.set_calibration(correction_or_none).map_err(|e| {
            anyhow::anyhow!("cannot apply the calibration of probe {serial:?}: {e}")
        })?;
        self.applied = correction.map(|c| (serial.to_string(), c));
        Ok(())
    }

    /// The level of the probe interface's I/Q mirror image under the
    /// signal, dB, as the pipeline estimates it (docs/dsp.md, stage 1a);
    /// None before 4 s of clean signal.
    pub fn iq_image_db(&self) -> Option<f64> {
        self.pipeline.as_ref().and_then(Pipeline::iq_image_db)
    }

    /// One quadrature channel is dead or broken (docs/dsp.md, stage 1a).
    pub fn iq_channel_fault(&self) -> bool {
        self.pipeline
            .as_ref()
            .is_some_and(Pipeline::iq_channel_fault)
    }

    /// Signal time during which the flow was in the reverse half of the
    /// spectrum (docs/dsp.md, stage 3b), s.
    pub fn reverse_flow_s(&self) -> f64 {
        self.reverse_flow_s_before + self.pipeline.as_ref().map_or(0.0, Pipeline::reverse_flow_s)
    }

    /// The highest forward velocity the current stream can carry, cm/s
    /// (half the sample rate); None before a PROBE_INFO.
    pub fn max_velocity_cm_s(&self) -> Option<f64> {
        self.pipeline.as_ref().map(Pipeline::max_velocity_cm_s)
    }

    /// Signal time during which the flow wrapped round the top of the band
    /// (docs/dsp.md, aliasing), s.
    pub fn aliased_s(&self) -> f64 {
        self.aliased_s_before + self.pipeline.as_ref().map_or(0.0, Pipeline::aliased_s)
    }

    /// The velocity one spectrum bin spans in the current stream, cm/s;
    /// None before a PROBE_INFO.
    pub fn velocity_per_bin_cm_s(&self) -> Option<f64> {
        self.pipeline
            .as_ref()
            .map(|p| 2.0 * p.max_velocity_cm_s() / p.fft_len() as f64)
    }

    /// Ends the stream: the pipeline emits what it still holds.
    pub fn finish(&mut self) {
        if let Some(p) = self.pipeline.as_mut() {
            p.finish(&mut self.out);
        }
    }
}

/// The median of a list (mean of the middle two for an even count); `None` when empty.
pub fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    let mid = n / 2;
    Some(if n % 2 == 1 {
        values[mid]
    } else {
        0.5 * (values[mid - 1] + values[mid])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A calibration file and the pipeline that applies it refuse the
    /// same gains and offsets: neither crate depends on the other, so the
    /// limits are written twice and held together here.
    #[test]
    fn the_file_and_the_pipeline_share_their_calibration_limits() {
        use odm_device_io::calibration::{PLAUSIBLE_GAIN, PLAUSIBLE_OFFSET_CM_S};
        use odm_dsp::pipeline::{PLAUSIBLE_CALIBRATION_GAIN, PLAUSIBLE_CALIBRATION_OFFSET_CM_S};
        assert_eq!(PLAUSIBLE_GAIN, PLAUSIBLE_CALIBRATION_GAIN);
        assert_eq!(PLAUSIBLE_OFFSET_CM_S, PLAUSIBLE_CALIBRATION_OFFSET_CM_S);
    }

    #[test]
    fn median_of_odd_and_even_lists() {
        assert_eq!(median(&mut []), None);
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), Some(2.5));
    }
}
