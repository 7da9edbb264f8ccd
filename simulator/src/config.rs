//! Configuration of the virtual probe: physiology, signal, impairments and probe identity.

use serde::{Deserialize, Serialize};

use crate::SimError;

/// Speed of sound in soft tissue assumed by the Doppler equation (serial-stream.md).
pub const SPEED_OF_SOUND_M_S: f64 = 1540.0;

/// A closed time interval in seconds from sample 0.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// Start, seconds.
    pub start_s: f64,
    /// End, seconds (after `start_s`).
    pub end_s: f64,
}

impl Interval {
    /// Whether `[a, b]` overlaps this interval (touching counts as overlap).
    pub fn overlaps(&self, a_s: f64, b_s: f64) -> bool {
        self.start_s <= b_s && a_s <= self.end_s
    }
}

/// When an impairment happens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub enum ImpairmentSchedule {
    /// Never.
    #[default]
    Off,
    /// At these intervals (need not be sorted; must not overlap).
    Fixed(Vec<Interval>),
    /// Randomly, from the seed: gaps between episodes are exponential with the
    /// given mean (at least 2 s), durations uniform in `[min, max]`.
    Random {
        /// Mean time from the end of one episode to the start of the next.
        mean_interval_s: f64,
        /// Shortest episode.
        min_duration_s: f64,
        /// Longest episode.
        max_duration_s: f64,
    },
}

impl ImpairmentSchedule {
    /// Whether this schedule can produce any episode.
    pub fn is_on(&self) -> bool {
        match self {
            Self::Off => false,
            Self::Fixed(v) => !v.is_empty(),
            Self::Random { .. } => true,
        }
    }
}

/// One step of a physiological schedule: from `start_s` on, every value given
/// replaces the previous one (values left `None` keep their previous value).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ScheduleSegment {
    /// When this segment starts, seconds.
    pub start_s: f64,
    /// Mean heart rate, 1/min.
    pub hr_bpm: Option<f64>,
    /// Mean stroke volume, ml (turned into stroke distance with the aortic area).
    pub sv_ml: Option<f64>,
    /// Mean corrected flow time (Bazett), ms.
    pub ftc_ms: Option<f64>,
    /// Mean peak velocity, cm/s (`None` in every segment: derived from the beat shape).
    pub pv_cm_s: Option<f64>,
}

/// Everything the virtual probe needs. `Default` is a healthy adult at rest
/// on a clean 4 MHz, 45° probe at 20 kHz.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimConfig {
    /// Seed of every random choice; same config, same bytes.
    pub seed: u64,
    /// Stream length; `None` runs for ever (generated lazily, bounded memory).
    pub duration_s: Option<f64>,
    /// Complex I/Q sample rate, 8 000 ..= 48 000 Hz.
    pub sample_rate_hz: u32,
    /// Samples per IQ_SAMPLES block, 1 ..= 1000 (200 at 20 kHz = 10 ms).
    pub block_len: u16,
    /// Transmit frequency reported and used.
    pub carrier_hz: u32,
    /// Insonation angle reported in PROBE_INFO, 1/100 degree.
    pub beam_angle_cdeg: u16,
    /// Probe serial (ASCII, up to 16 bytes).
    pub probe_serial: String,
    /// Probe model number of PROBE_INFO.
    pub probe_model: u8,
    /// Probe run time at the start of the stream, minutes.
    pub minutes_used: u32,
    /// Probe life, minutes; 0 = no limit.
    pub minutes_limit: u32,

    /// Mean heart rate, 40 ..= 180 /min.
    pub hr_bpm: f64,
    /// Mean stroke volume, ml.
    pub sv_ml: f64,
    /// Descending-aortic diameter, mm (area model of the truth: SV = SD·π·d²/4 / fraction).
    pub aortic_diameter_mm: f64,
    /// Fraction of cardiac output that passes the insonated descending aorta
    /// (1.0: SV is simply SD × area; about 0.7 physiologically).
    pub descending_flow_fraction: f64,
    /// Mean corrected flow time (Bazett), ms; FT = FTc·√cycle.
    pub ftc_ms: f64,
    /// Mean peak velocity, cm/s; `None` derives it from SD, FT and the default shape.
    pub pv_cm_s: Option<f64>,
    /// Time to peak as a fraction of FT (mean; each beat varies ±0.03).
    pub peak_frac: f64,
    /// Coefficient of variation of the cycle length (beat-to-beat HR variability).
    pub hr_variability: f64,
    /// Coefficient of variation of stroke distance beyond respiration.
    pub sd_variability: f64,
    /// Coefficient of variation of flow time.
    pub ft_variability: f64,
    /// Stroke-volume variation over a breath, % ((max − min)/mean).
    pub svv_pct: f64,
    /// Ventilation rate, breaths/min.
    pub breathing_rate_per_min: f64,
    /// Probability that a beat is followed by a premature (ectopic) beat.
    pub ectopic_rate: f64,
    /// Peak of the brief reverse flow after systole, cm/s (0 = none).
    pub reverse_flow_cm_s: f64,
    /// Peak of the low forward diastolic flow, cm/s (0 = none).
    pub diastolic_flow_cm_s: f64,
    /// Piecewise-constant changes of HR, SV, FTc, PV over time.
    pub schedule: Vec<ScheduleSegment>,
    /// Steady phantom: the envelope is this velocity at all times, no beats.
    pub phantom_cm_s: Option<f64>,

    /// RMS of the blood Doppler signal in ADC counts (complex power = rms²).
    pub blood_rms_counts: f64,
    /// Velocity-profile exponent n of v(r) = v_max·(1 − (r/R)^n): 2 parabolic
    /// (flat spectrum), larger is blunter (power piles up near the edge).
    pub profile_exponent: f64,
    /// Scatterer groups summed at any instant (more: smoother spectrum, slower).
    pub scatterer_count: usize,
    /// Mean life of a scatterer group in the beam, ms (speckle renewal).
    pub scatterer_lifetime_ms: f64,
    /// SNR in dB: blood signal power (mean over systole) over white-noise power
    /// in the whole band; `None`: no added noise (quantisation only).
    pub snr_db: Option<f64>,
    /// Wall clutter power over blood signal power, dB; `None`: no clutter.
    pub clutter_db: Option<f64>,
    /// Peak wall-motion Doppler shift of the clutter, Hz.
    pub clutter_hz: f64,
    /// Diathermy bursts.
    pub diathermy: ImpairmentSchedule,
    /// Diathermy noise power over blood signal power, dB.
    pub diathermy_db: f64,
    /// Lost blocks (sample gaps); episode lengths are rounded up to whole blocks.
    pub gaps: ImpairmentSchedule,
    /// Episodes of excessive receive gain that saturate the ADC.
    pub clipping: ImpairmentSchedule,
    /// Extra receive gain during a clipping episode, dB.
    pub clipping_gain_db: f64,
    /// Probe unplugged during this interval (no IQ blocks; EVENTs 3 and 4).
    pub unplug: Option<Interval>,
    /// Times of operator button presses (EVENT code 1).
    pub button_presses_s: Vec<f64>,
    /// Probe gain miscalibration: every Doppler frequency × (1 + this).
    pub probe_gain_error: f64,
    /// True beam angle minus the reported one, degrees.
    pub probe_angle_error_deg: f64,
    /// Demodulator gain error of the probe interface: its Q channel is
    /// `(1 + this)` times I's gain (an analogue quadrature receiver's
    /// imbalance, which mirrors the flow into the reverse half); −1 is a
    /// dead Q channel.
    #[serde(default)]
    pub iq_gain_error: f64,
    /// Demodulator phase error, degrees: Q picks up `sin(this)` of I.
    #[serde(default)]
    pub iq_phase_error_deg: f64,
    /// The probe interface delivers I and Q swapped: every Doppler shift
    /// changes sign, so forward flow arrives as reverse (serial-stream.md's
    /// sign convention broken).
    #[serde(default)]
    pub iq_swapped: bool,
    /// Let velocities above the stream's Nyquist limit wrap round into the
    /// reverse half, as a real interface at a low sample rate does (at
    /// 8 kHz, 4 MHz and 45°, above 109 cm/s). Off, every edge is capped at
    /// [`max_velocity_cm_s`](Self::max_velocity_cm_s) and nothing aliases.
    #[serde(default)]
    pub allow_aliasing: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            seed: 0,
            duration_s: None,
            sample_rate_hz: 20_000,
            block_len: 200,
            carrier_hz: 4_000_000,
            beam_angle_cdeg: 4500,
            probe_serial: "SIM-0001".to_string(),
            probe_model: 1,
            minutes_used: 0,
            minutes_limit: 0,
            hr_bpm: 75.0,
            sv_ml: 70.0,
            aortic_diameter_mm: 24.0,
            descending_flow_fraction: 1.0,
            ftc_ms: 350.0,
            pv_cm_s: None,
            peak_frac: 0.3,
            hr_variability: 0.03,
            sd_variability: 0.02,
            ft_variability: 0.015,
            svv_pct: 8.0,
            breathing_rate_per_min: 12.0,
            ectopic_rate: 0.0,
            reverse_flow_cm_s: 8.0,
            diastolic_flow_cm_s: 0.0,
            schedule: Vec::new(),
            phantom_cm_s: None,
            blood_rms_counts: 100.0,
            profile_exponent: 6.0,
            scatterer_count: 48,
            scatterer_lifetime_ms: 80.0,
            snr_db: Some(30.0),
            clutter_db: Some(30.0),
            clutter_hz: 40.0,
            diathermy: ImpairmentSchedule::Off,
            diathermy_db: 35.0,
            gaps: ImpairmentSchedule::Off,
            clipping: ImpairmentSchedule::Off,
            clipping_gain_db: 20.0,
            unplug: None,
            button_presses_s: Vec::new(),
            probe_gain_error: 0.0,
            probe_angle_error_deg: 0.0,
            iq_gain_error: 0.0,
            iq_phase_error_deg: 0.0,
            iq_swapped: false,
            allow_aliasing: false,
        }
    }
}

fn bad(field: &'static str, reason: impl Into<String>) -> SimError {
    SimError::InvalidConfig {
        field,
        reason: reason.into(),
    }
}

fn check_range(field: &'static str, x: f64, lo: f64, hi: f64) -> Result<(), SimError> {
    if x.is_finite() && x >= lo && x <= hi {
        Ok(())
    } else {
        // `{x}` would spell 1e308 out in 309 digits.
        let x = if x.is_finite() && x != 0.0 && !(1e-4..1e9).contains(&x.abs()) {
            format!("{x:e}")
        } else {
            format!("{x}")
        };
        Err(bad(field, format!("{x} is outside {lo} ..= {hi}")))
    }
}

fn check_schedule(field: &'static str, s: &ImpairmentSchedule) -> Result<(), SimError> {
    match s {
        ImpairmentSchedule::Off => Ok(()),
        ImpairmentSchedule::Fixed(v) => {
            let mut sorted = v.clone();
            sorted.sort_by(|a, b| a.start_s.total_cmp(&b.start_s));
            for iv in &sorted {
                if !(iv.start_s.is_finite() && iv.end_s.is_finite() && iv.start_s >= 0.0)
                    || iv.end_s <= iv.start_s
                {
                    return Err(bad(
                        field,
                        format!(
                            "interval {}..{} s is empty or negative",
                            iv.start_s, iv.end_s
                        ),
                    ));
                }
            }
            for w in sorted.windows(2) {
                if w[1].start_s < w[0].end_s {
                    return Err(bad(field, "intervals overlap"));
                }
            }
            Ok(())
        }
        ImpairmentSchedule::Random {
            mean_interval_s,
            min_duration_s,
            max_duration_s,
        } => {
            check_range(field, *mean_interval_s, 0.5, 1e6)?;
            check_range(field, *min_duration_s, 0.001, 3600.0)?;
            check_range(field, *max_duration_s, *min_duration_s, 3600.0)
        }
    }
}

impl SimConfig {
    /// Checks every field; the error names the field and why.
    pub fn validate(&self) -> Result<(), SimError> {
        if let Some(d) = self.duration_s {
            check_range("duration_s", d, 1e-3, 1e9)?;
        }
        if !(8_000..=48_000).contains(&self.sample_rate_hz) {
            return Err(bad(
                "sample_rate_hz",
                format!("{} is outside 8000 ..= 48000", self.sample_rate_hz),
            ));
        }
        if !(1..=1000).contains(&self.block_len) {
            return Err(bad(
                "block_len",
                format!("{} is outside 1 ..= 1000", self.block_len),
            ));
        }
        if !(100_000..=50_000_000).contains(&self.carrier_hz) {
            return Err(bad(
                "carrier_hz",
                format!("{} Hz is not a Doppler carrier", self.carrier_hz),
            ));
        }
        if self.beam_angle_cdeg >= 8500 {
            return Err(bad("beam_angle_cdeg", "must be below 85 degrees"));
        }
        if !self.probe_serial.is_ascii() || self.probe_serial.len() > 16 {
            return Err(bad("probe_serial", "must be ASCII, at most 16 bytes"));
        }
        check_range("hr_bpm", self.hr_bpm, 40.0, 180.0)?;
        check_range("sv_ml", self.sv_ml, 1.0, 250.0)?;
        check_range("aortic_diameter_mm", self.aortic_diameter_mm, 5.0, 50.0)?;
        check_range(
            "descending_flow_fraction",
            self.descending_flow_fraction,
            0.3,
            1.0,
        )?;
        check_range("ftc_ms", self.ftc_ms, 200.0, 500.0)?;
        if let Some(pv) = self.pv_cm_s {
            check_range("pv_cm_s", pv, 10.0, 300.0)?;
        }
        check_range("peak_frac", self.peak_frac, 0.15, 0.5)?;
        check_range("hr_variability", self.hr_variability, 0.0, 0.2)?;
        check_range("sd_variability", self.sd_variability, 0.0, 0.2)?;
        check_range("ft_variability", self.ft_variability, 0.0, 0.1)?;
        check_range("svv_pct", self.svv_pct, 0.0, 60.0)?;
        check_range(
            "breathing_rate_per_min",
            self.breathing_rate_per_min,
            4.0,
            60.0,
        )?;
        check_range("ectopic_rate", self.ectopic_rate, 0.0, 0.5)?;
        check_range("reverse_flow_cm_s", self.reverse_flow_cm_s, 0.0, 40.0)?;
        check_range("diastolic_flow_cm_s", self.diastolic_flow_cm_s, 0.0, 30.0)?;
        for seg in &self.schedule {
            check_range("schedule.start_s", seg.start_s, 0.0, 1e9)?;
            if let Some(x) = seg.hr_bpm {
                check_range("schedule.hr_bpm", x, 40.0, 180.0)?;
            }
            if let Some(x) = seg.sv_ml {
                check_range("schedule.sv_ml", x, 1.0, 250.0)?;
            }
            if let Some(x) = seg.ftc_ms {
                check_range("schedule.ftc_ms", x, 200.0, 500.0)?;
            }
            if let Some(x) = seg.pv_cm_s {
                check_range("schedule.pv_cm_s", x, 10.0, 300.0)?;
            }
        }
        check_range("blood_rms_counts", self.blood_rms_counts, 1.0, 3000.0)?;
        check_range("profile_exponent", self.profile_exponent, 1.0, 100.0)?;
        if !(4..=512).contains(&self.scatterer_count) {
            return Err(bad("scatterer_count", "must be 4 ..= 512"));
        }
        check_range(
            "scatterer_lifetime_ms",
            self.scatterer_lifetime_ms,
            2.0,
            1000.0,
        )?;
        if let Some(s) = self.snr_db {
            check_range("snr_db", s, -20.0, 80.0)?;
        }
        if let Some(c) = self.clutter_db {
            check_range("clutter_db", c, -40.0, 45.0)?;
        }
        check_range("clutter_hz", self.clutter_hz, 0.0, 500.0)?;
        check_range("diathermy_db", self.diathermy_db, 0.0, 45.0)?;
        check_range("clipping_gain_db", self.clipping_gain_db, 6.0, 60.0)?;
        check_schedule("diathermy", &self.diathermy)?;
        check_schedule("gaps", &self.gaps)?;
        check_schedule("clipping", &self.clipping)?;
        if let Some(u) = &self.unplug {
            check_schedule("unplug", &ImpairmentSchedule::Fixed(vec![*u]))?;
        }
        for &b in &self.button_presses_s {
            check_range("button_presses_s", b, 0.0, 1e9)?;
        }
        check_range("probe_gain_error", self.probe_gain_error, -0.5, 0.5)?;
        // Down to −1: a dead Q channel (a broken wire or ADC channel).
        check_range("iq_gain_error", self.iq_gain_error, -1.0, 0.3)?;
        check_range("iq_phase_error_deg", self.iq_phase_error_deg, -20.0, 20.0)?;
        let true_angle = self.true_angle_deg();
        check_range("probe_angle_error_deg", true_angle, 0.0, 85.0)?;
        if let Some(v) = self.phantom_cm_s {
            check_range("phantom_cm_s", v, -400.0, 400.0)?;
            if v.abs() > self.max_velocity_cm_s() && !self.allow_aliasing {
                return Err(bad(
                    "phantom_cm_s",
                    format!(
                        "{v} cm/s would alias at {} Hz (limit {:.1} cm/s)",
                        self.sample_rate_hz,
                        self.max_velocity_cm_s()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Reported beam angle, degrees.
    pub fn reported_angle_deg(&self) -> f64 {
        f64::from(self.beam_angle_cdeg) / 100.0
    }

    /// True beam angle (reported + miscalibration), degrees.
    pub fn true_angle_deg(&self) -> f64 {
        self.reported_angle_deg() + self.probe_angle_error_deg
    }

    /// Doppler shift actually produced per cm/s of true velocity, Hz:
    /// `(1 + gain error) · 2·f0·cos(θ_true)/c` (primer, Physics).
    pub fn signal_hz_per_cm_s(&self) -> f64 {
        (1.0 + self.probe_gain_error)
            * doppler_shift_hz_from_velocity_cm_s(1.0, self.carrier_hz, self.true_angle_deg())
    }

    /// The largest true velocity the stream can carry without aliasing, cm/s
    /// (edge kept below 0.45·sample rate, leaving room for speckle broadening).
    pub fn max_velocity_cm_s(&self) -> f64 {
        0.45 * f64::from(self.sample_rate_hz) / self.signal_hz_per_cm_s()
    }

    /// Descending-aortic cross-section, cm².
    pub fn aortic_area_cm2(&self) -> f64 {
        let r_cm = self.aortic_diameter_mm / 20.0;
        std::f64::consts::PI * r_cm * r_cm
    }

    /// Stroke distance (cm) of a stroke volume (ml) under the truth's area model.
    pub fn sd_cm_from_sv_ml(&self, sv_ml: f64) -> f64 {
        sv_ml * self.descending_flow_fraction / self.aortic_area_cm2()
    }

    /// Stroke volume (ml) of a stroke distance (cm) under the truth's area model.
    pub fn sv_ml_from_sd_cm(&self, sd_cm: f64) -> f64 {
        sd_cm * self.aortic_area_cm2() / self.descending_flow_fraction
    }
}

/// Doppler shift (Hz) of a velocity (cm/s): `f_d = 2·f0·v·cos θ / c`, c = 1540 m/s.
pub fn doppler_shift_hz_from_velocity_cm_s(v_cm_s: f64, carrier_hz: u32, angle_deg: f64) -> f64 {
    2.0 * f64::from(carrier_hz) * (v_cm_s / 100.0) * angle_deg.to_radians().cos()
        / SPEED_OF_SOUND_M_S
}

/// Velocity (cm/s) of a Doppler shift (Hz): `v = c·f_d / (2·f0·cos θ)`.
pub fn velocity_cm_s_from_doppler_shift_hz(shift_hz: f64, carrier_hz: u32, angle_deg: f64) -> f64 {
    100.0 * SPEED_OF_SOUND_M_S * shift_hz
        / (2.0 * f64::from(carrier_hz) * angle_deg.to_radians().cos())
}
