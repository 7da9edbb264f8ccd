//! The values the pipeline produces: stream parameters, spectrum columns,
//! envelope points, beats and status. Shared by `odm analyse`, the monitor,
//! calibration and verification.

/// What the DSP needs to know about the stream (from PROBE_INFO).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StreamParams {
    /// Complex I/Q sample rate.
    pub sample_rate_hz: u32,
    /// Transmit frequency.
    pub carrier_hz: u32,
    /// Insonation angle to the aortic axis, degrees.
    pub beam_angle_deg: f64,
}

/// Speed of sound in soft tissue assumed by the Doppler equation (serial-stream.md).
pub const SPEED_OF_SOUND_M_S: f64 = 1540.0;

impl StreamParams {
    /// Velocity (cm/s) from a Doppler shift (Hz): `v = c·f_d / (2·f0·cos θ)`.
    pub fn velocity_cm_s_from_shift_hz(&self, shift_hz: f64) -> f64 {
        let cos_theta = self.beam_angle_deg.to_radians().cos();
        100.0 * SPEED_OF_SOUND_M_S * shift_hz / (2.0 * f64::from(self.carrier_hz) * cos_theta)
    }
    /// Doppler shift (Hz) from a velocity (cm/s); the inverse of
    /// [`velocity_cm_s_from_shift_hz`](Self::velocity_cm_s_from_shift_hz).
    pub fn shift_hz_from_velocity_cm_s(&self, v_cm_s: f64) -> f64 {
        let cos_theta = self.beam_angle_deg.to_radians().cos();
        v_cm_s / 100.0 * 2.0 * f64::from(self.carrier_hz) * cos_theta / SPEED_OF_SOUND_M_S
    }
}

/// Why a beat was kept out of averages and trends (`reject_reason` of analysis-output.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// Broadband interference (diathermy) during systole.
    Interference,
    /// The cycle overlaps missing samples or damaged data.
    Gap,
    /// The ADC clipped during systole.
    Clipped,
    /// Numbers outside physiological limits.
    Implausible,
    /// Signal too weak to trace reliably.
    LowSignal,
    /// An ectopic (premature) beat.
    Ectopic,
    /// The systole's flow wrapped round the top of the band: the peak
    /// velocity is above what the stream's sample rate can carry, so PV and
    /// SD are cut ([`crate::alias`]).
    Aliased,
}

impl RejectReason {
    /// The machine-readable word of the analysis-output spec.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Interference => "interference",
            Self::Gap => "gap",
            Self::Clipped => "clipped",
            Self::Implausible => "implausible",
            Self::LowSignal => "low_signal",
            Self::Ectopic => "ectopic",
            Self::Aliased => "aliased",
        }
    }
}

/// One detected cardiac cycle, with every per-beat number of analysis-output.md.
///
/// Times are seconds from sample 0 of the stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Beat {
    /// 0, 1, 2, … in time order.
    pub index: u64,
    /// Where `v(t)` leaves baseline.
    pub onset_s: f64,
    /// Time of peak velocity.
    pub peak_s: f64,
    /// Where `v(t)` returns to baseline.
    pub end_s: f64,
    /// Onset of the next beat.
    pub next_onset_s: f64,
    /// `(end_s − onset_s)·1000`.
    pub ft_ms: f64,
    /// `next_onset_s − onset_s`.
    pub cycle_s: f64,
    /// `60 / cycle_s`.
    pub hr_bpm: f64,
    /// FT corrected to 60/min with the configured formula.
    pub ftc_ms: f64,
    /// Stroke distance: ∫ v dt from onset to end; NaN (written as null)
    /// when samples are missing between onset and end, where it cannot be
    /// computed (such a beat is rejected with `gap`).
    pub sd_cm: f64,
    /// Peak velocity.
    pub pv_cm_s: f64,
    /// `pv_cm_s / (peak_s − onset_s)`; `None` when the rise time is zero.
    pub ma_cm_s2: Option<f64>,
    /// `sd_cm · hr_bpm` (NaN with `sd_cm`).
    pub md_cm_min: f64,
    /// Stroke volume; `None` without an area model.
    pub sv_ml: Option<f64>,
    /// Low and high end of the SV range implied by the area model's spread.
    pub sv_range_ml: Option<(f64, f64)>,
    /// `sv_ml · hr_bpm / 1000`.
    pub co_l_min: Option<f64>,
    /// Signal quality, 0..1 (1 = clean).
    pub quality: f64,
    /// Whether the beat counts in averages and trends.
    pub accepted: bool,
    /// Why not, when not accepted.
    pub reject_reason: Option<RejectReason>,
    /// The rhythm was irregular (atrial fibrillation-like) when this beat
    /// was emitted: premature beats are then not rejected as ectopic, and a
    /// stroke-volume variation over a breath means nothing
    /// (`DetectorConfig::irregular_rhythm_mad`).
    pub irregular_rhythm: bool,
    /// Low flow: the falling edge's fit band starts above a third of the
    /// peak velocity, because the envelope's floor (the wall band) cuts it
    /// from below, so FT is extrapolated over more than a third of the
    /// fall. That happens under ≈ 4 × the floor (51 cm/s at 4 MHz, 45°,
    /// 20 kHz), and FT is then known to ±10–60 ms on the reference signals
    /// instead of ±5 (`BeatDetector`'s `LOW_FLOW_BAND_FRACTION`;
    /// docs/validation.md, "Low flow").
    pub ft_low_flow: bool,
    /// Index of the sample whose arrival completed this beat (for latency).
    pub completed_by_sample: u64,
}

/// Pipeline status changes, reported as they happen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Status {
    /// No beat detected for the configured time (signal lost).
    SignalLost {
        /// When, in seconds.
        t_s: f64,
    },
    /// Beats again after a loss.
    SignalRegained {
        /// When, in seconds.
        t_s: f64,
    },
    /// Samples missing between blocks.
    Gap {
        /// Time of the first missing sample.
        t_s: f64,
        /// How many.
        lost_samples: u64,
    },
    /// A block started before the end of the previous one; a new segment began.
    Discontinuity {
        /// Time of the new block's first sample.
        t_s: f64,
    },
}
