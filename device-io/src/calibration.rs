//! Probe calibration files and the calibration store, keyed by probe serial.
//!
//! `odm calibrate` measures a probe against a flow phantom and writes a
//! [`Calibration`] (`calibration.json`, format documented in
//! `docs/calibration.md`); installed into a [`CalibrationStore`] (one file
//! per probe, `<dir>/<serial>.json`) it is found again by serial when that
//! probe's PROBE_INFO arrives, and its correction
//! `v_true = (v_measured − offset) / gain` is applied to every velocity.
//!
//! Dates are calendar days in UTC written `YYYY-MM-DD` ([`CalDate`]);
//! `valid_until` is the last day on which the calibration is in date.
//! Nothing read from a file is trusted: every field is checked on load and
//! a rejected file is an error naming the file and the field.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};

/// The `format` field of every calibration file.
pub const CALIBRATION_FORMAT: &str = "odm-calibration";
/// The calibration file version this crate reads and writes.
pub const CALIBRATION_VERSION: u32 = 1;
/// Default validity of a calibration, days (an annual service interval).
pub const DEFAULT_VALID_DAYS: u32 = 365;
/// Environment variable that overrides the default store directory.
pub const STORE_DIR_ENV: &str = "ODM_CALIBRATIONS";

/// Gains outside this range are not a probe that reads wrongly but a wrong
/// file or a broken probe: such a file is rejected rather than applied.
/// The DSP pipeline refuses the same (`odm_dsp::pipeline::PLAUSIBLE_CALIBRATION_GAIN`;
/// the CLI's tests hold the two equal).
pub const PLAUSIBLE_GAIN: std::ops::RangeInclusive<f64> = 0.5..=2.0;
/// Offsets beyond ±this many cm/s are likewise rejected.
pub const PLAUSIBLE_OFFSET_CM_S: f64 = 50.0;

/// Years a [`CalDate`] can hold: those that print as four digits.
const CAL_YEARS: std::ops::RangeInclusive<i32> = 1..=9999;

/// A calendar day (UTC), written `YYYY-MM-DD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CalDate {
    /// Days since 1970-01-01.
    days_since_epoch: i64,
}

impl CalDate {
    /// The day `year-month-day`, or `None` when no such day exists
    /// (years 1..=9999 only, so it always prints as `YYYY-MM-DD`).
    pub fn from_ymd(year: i32, month: u32, day: u32) -> Option<Self> {
        if !CAL_YEARS.contains(&year) || !(1..=12).contains(&month) {
            return None;
        }
        if day == 0 || day > days_in_month(year, month) {
            return None;
        }
        Some(Self {
            days_since_epoch: days_from_civil(i64::from(year), month, day),
        })
    }

    /// The day containing a Unix time (seconds since 1970-01-01T00:00:00Z).
    pub fn from_unix_seconds(seconds: i64) -> Self {
        Self {
            days_since_epoch: seconds.div_euclid(86_400),
        }
    }

    /// Today in UTC, from the system clock (a clock before 1970 counts as 1970-01-01).
    pub fn today_utc() -> Self {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        Self::from_unix_seconds(secs)
    }

    /// Parses `YYYY-MM-DD` (exactly that shape).
    pub fn parse(text: &str) -> Option<Self> {
        let b = text.as_bytes();
        if b.len() != 10 || b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
            return None;
        }
        let digits = |r: std::ops::Range<usize>| -> Option<u32> {
            let s = text.get(r)?;
            if !s.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            s.parse().ok()
        };
        let year = i32::try_from(digits(0..4)?).ok()?;
        Self::from_ymd(year, digits(5..7)?, digits(8..10)?)
    }

    /// Year, month (1–12), day (1–31).
    pub fn ymd(&self) -> (i32, u32, u32) {
        civil_from_days(self.days_since_epoch)
    }

    /// Days since 1970-01-01 (negative before).
    pub fn days_since_unix_epoch(&self) -> i64 {
        self.days_since_epoch
    }

    /// The day `days` later (earlier when negative).
    pub fn plus_days(self, days: i64) -> Self {
        Self {
            days_since_epoch: self.days_since_epoch.saturating_add(days),
        }
    }
}

impl fmt::Display for CalDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, m, d) = self.ymd();
        write!(f, "{y:04}-{m:02}-{d:02}")
    }
}

impl Serialize for CalDate {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for CalDate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        CalDate::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!("{text:?} is not a date of the form YYYY-MM-DD"))
        })
    }
}

fn is_leap(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Days from 1970-01-01 to a proleptic Gregorian date. Counts in 400-year
/// eras (146 097 days each) of years starting on 1 March, so the leap day
/// falls at the end of the counting year.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let m = i64::from(month);
    let month_from_march = if m > 2 { m - 3 } else { m + 9 };
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    // 719 468 days from 0000-03-01 to 1970-01-01.
    era * 146_097 + day_of_era - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i32, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    // The ranges are bounded by construction (day 1..=31, month 1..=12);
    // the year is clamped to what i32 holds.
    (
        i32::try_from(year).unwrap_or(if year < 0 { i32::MIN } else { i32::MAX }),
        u32::try_from(month).unwrap_or(1),
        u32::try_from(day).unwrap_or(1),
    )
}

/// How the phantom runs were measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MeasurementMode {
    /// Steady flow (string or constant-flow phantom): the median of the
    /// maximum-velocity envelope over the run.
    Steady,
    /// Pulsatile flow: the median beat peak velocity over the run.
    Pulsatile,
}

impl MeasurementMode {
    /// `"steady"` or `"pulsatile"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Steady => "steady",
            Self::Pulsatile => "pulsatile",
        }
    }
}

/// The acceptance limits a calibration was judged against.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CalibrationLimits {
    /// The gain must lie within `1 ± gain_tolerance`.
    pub gain_tolerance: f64,
    /// Absolute residual limit, cm/s.
    pub residual_limit_cm_s: f64,
    /// Relative residual limit, percent of the reference velocity; the
    /// larger of the two limits applies.
    pub residual_limit_pct: f64,
    /// The offset must lie within `± offset_tolerance_cm_s`; null in files
    /// made before the offset was judged (2026-12-04), whose `pass` did not
    /// look at it.
    #[serde(default)]
    pub offset_tolerance_cm_s: Option<f64>,
}

/// One phantom run of a calibration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationRun {
    /// The recording measured (file name as given on the command line).
    pub recording: String,
    /// Phantom velocity set for this run, cm/s.
    pub reference_cm_s: f64,
    /// Velocity the probe measured, cm/s.
    pub measured_cm_s: f64,
    /// `measured − (gain·reference + offset)`, cm/s.
    pub residual_cm_s: f64,
    /// The residual allowed for this run, cm/s.
    pub residual_limit_cm_s: f64,
    /// Whether the residual is within its limit.
    pub within_limit: bool,
    /// How many envelope points (steady) or beats (pulsatile) the median is of.
    pub points: u64,
    /// The probe interface's I/Q mirror image under the signal in this run,
    /// dB, as the analysis estimated it; null when the run was too short
    /// (under 4 s of clean signal) or made before this field existed.
    #[serde(default)]
    pub iq_image_db: Option<f64>,
    /// One quadrature channel of the probe interface was dead or broken in
    /// this run (docs/dsp.md, stage 1a): the receive path needs a service,
    /// and the calibration FAILs. False in files made before this field
    /// existed.
    #[serde(default)]
    pub iq_channel_fault: bool,
    /// SHA-256 of the recording's bytes (64 lower-case hex characters), so
    /// the run can be traced to its file; absent in files made before
    /// 2026-12-04.
    #[serde(default)]
    pub sha256: Option<String>,
}

/// The correction a calibration implies: `v_true = (v_measured − offset_cm_s) / gain`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct VelocityCorrection {
    /// Measured cm/s per true cm/s.
    pub gain: f64,
    /// Measured velocity at zero true velocity, cm/s.
    pub offset_cm_s: f64,
}

impl VelocityCorrection {
    /// The true velocity from a measured one.
    pub fn true_from_measured_cm_s(&self, measured_cm_s: f64) -> f64 {
        (measured_cm_s - self.offset_cm_s) / self.gain
    }
}

/// A probe calibration: the content of `calibration.json` and of the store's
/// `<serial>.json` files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// Always [`CALIBRATION_FORMAT`].
    pub format: String,
    /// Always [`CALIBRATION_VERSION`].
    pub version: u32,
    /// The probe's serial as in its PROBE_INFO.
    pub probe_serial: String,
    /// Day of the calibration (UTC).
    pub date: CalDate,
    /// Last day on which the calibration is in date (inclusive).
    pub valid_until: CalDate,
    /// Who performed it (staff identifier).
    pub engineer: String,
    /// Phantom used (equipment identifier).
    pub phantom: String,
    /// Steady or pulsatile phantom.
    pub mode: MeasurementMode,
    /// Fitted slope of measured against reference velocity.
    pub gain: f64,
    /// Fitted intercept, cm/s.
    pub offset_cm_s: f64,
    /// Two-sided 95% confidence interval of the gain, `[low, high]`.
    pub gain_ci95: [f64; 2],
    /// Coefficient of determination of the fit.
    pub r2: f64,
    /// Residual of each run, cm/s, in run order.
    pub residuals_cm_s: Vec<f64>,
    /// Whether the gain is within its tolerance.
    pub gain_within_tolerance: bool,
    /// Whether the offset is within its tolerance; null in files made
    /// before the offset was judged.
    #[serde(default)]
    pub offset_within_tolerance: Option<bool>,
    /// Whether every acceptance limit was met.
    pub pass: bool,
    /// The limits applied.
    pub limits: CalibrationLimits,
    /// The runs, in the order given.
    pub runs: Vec<CalibrationRun>,
    /// When the runs were measured with an earlier calibration already
    /// applied (an as-left check), that correction; otherwise null.
    pub measured_with_correction: Option<VelocityCorrection>,
    /// The software that made the file, e.g. `odm 0.1.0`.
    pub software: String,
    /// The stream parameters the runs' PROBE_INFO reported. Velocities
    /// scale with the carrier and the cosine of the beam angle the probe
    /// reports, so the gain holds only for a probe reporting the same ones
    /// ([`Calibration::applies_to`]). Absent in files made before it was
    /// recorded (such a calibration is applied whatever the probe reports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<ProbeConditions>,
}

/// The stream parameters a calibration was measured under, from its runs'
/// PROBE_INFO.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeConditions {
    /// I/Q sample rate, Hz (recorded; it does not scale velocities).
    pub sample_rate_hz: u32,
    /// Carrier frequency, Hz.
    pub carrier_hz: u32,
    /// Beam angle to the flow, 0.01 degree.
    pub beam_angle_cdeg: u16,
}

impl ProbeConditions {
    /// The conditions a PROBE_INFO reports.
    pub fn of(info: &crate::ProbeInfo) -> Self {
        Self {
            sample_rate_hz: info.sample_rate_hz,
            carrier_hz: info.carrier_hz,
            beam_angle_cdeg: info.beam_angle_cdeg,
        }
    }

    /// Whether a probe reporting `other` scales velocities as these did
    /// (same carrier and beam angle; the sample rate does not matter).
    pub fn same_scale(&self, other: &Self) -> bool {
        self.carrier_hz == other.carrier_hz && self.beam_angle_cdeg == other.beam_angle_cdeg
    }
}

impl fmt::Display for ProbeConditions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:.3} MHz, {:.2}°",
            f64::from(self.carrier_hz) / 1e6,
            f64::from(self.beam_angle_cdeg) / 100.0
        )
    }
}

/// Where a probe stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CalibrationStatus {
    /// Calibrated and in date.
    Calibrated {
        /// Last day in date.
        valid_until: CalDate,
        /// Whether the calibration met its acceptance limits.
        pass: bool,
    },
    /// A calibration exists but has expired: the probe is due for calibration.
    Due {
        /// The day it expired after.
        valid_until: CalDate,
    },
    /// No calibration for this probe.
    None,
    /// A calibration exists but was made under another carrier or beam
    /// angle than the probe now reports: it is not applied.
    NotApplicable {
        /// What the calibration's runs reported.
        made: ProbeConditions,
        /// What the probe reports now.
        now: ProbeConditions,
    },
}

impl fmt::Display for CalibrationStatus {
    /// Short text for a probe panel: `calibrated to 2027-11-30`,
    /// `calibrated to 2027-11-30 (FAILED acceptance)`, `calibration due
    /// (was valid to 2027-11-30)`, `not calibrated`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Calibrated {
                valid_until,
                pass: true,
            } => write!(f, "calibrated to {valid_until}"),
            Self::Calibrated {
                valid_until,
                pass: false,
            } => write!(f, "calibrated to {valid_until} (FAILED acceptance)"),
            Self::Due { valid_until } => write!(f, "calibration due (was valid to {valid_until})"),
            Self::None => write!(f, "not calibrated"),
            Self::NotApplicable { made, now } => {
                write!(f, "NOT APPLIED: made at {made}, the probe reports {now}")
            }
        }
    }
}

impl Calibration {
    /// The correction to apply to this probe's velocities.
    pub fn correction(&self) -> VelocityCorrection {
        VelocityCorrection {
            gain: self.gain,
            offset_cm_s: self.offset_cm_s,
        }
    }

    /// The status on a given day: in date through `valid_until`, due after.
    pub fn status_on(&self, today: CalDate) -> CalibrationStatus {
        if today <= self.valid_until {
            CalibrationStatus::Calibrated {
                valid_until: self.valid_until,
                pass: self.pass,
            }
        } else {
            CalibrationStatus::Due {
                valid_until: self.valid_until,
            }
        }
    }

    /// Checks every field a reader relies on; the error says which is wrong.
    pub fn check(&self) -> Result<(), String> {
        if self.format != CALIBRATION_FORMAT {
            return Err(format!(
                "format is {:?}, expected {CALIBRATION_FORMAT:?}",
                self.format
            ));
        }
        if self.version != CALIBRATION_VERSION {
            return Err(format!(
                "version {} is not supported (this software reads version {CALIBRATION_VERSION})",
                self.version
            ));
        }
        check_serial(&self.probe_serial)?;
        if !(self.gain.is_finite() && PLAUSIBLE_GAIN.contains(&self.gain)) {
            return Err(format!(
                "gain {} is outside the plausible range {}..={}",
                self.gain,
                PLAUSIBLE_GAIN.start(),
                PLAUSIBLE_GAIN.end()
            ));
        }
        if !(self.offset_cm_s.is_finite() && self.offset_cm_s.abs() <= PLAUSIBLE_OFFSET_CM_S) {
            return Err(format!(
                "offset_cm_s {} is outside ±{PLAUSIBLE_OFFSET_CM_S}",
                self.offset_cm_s
            ));
        }
        if self.valid_until < self.date {
            return Err(format!(
                "valid_until {} is before the calibration date {}",
                self.valid_until, self.date
            ));
        }
        // A day past 9999-12-31 (a validity added to a late date) would be
        // written with a five-digit year that `CalDate::parse` refuses: the
        // file could not be read back.
        for (name, day) in [("date", self.date), ("valid_until", self.valid_until)] {
            if !CAL_YEARS.contains(&day.ymd().0) {
                return Err(format!("{name} {day} is outside the years 0001–9999"));
            }
        }
        let [lo, hi] = self.gain_ci95;
        if !(lo.is_finite() && hi.is_finite() && lo <= hi) {
            return Err(format!("gain_ci95 [{lo}, {hi}] is not an interval"));
        }
        if !self.r2.is_finite() {
            return Err("r2 is not a finite number".into());
        }
        if let Some(i) = self.residuals_cm_s.iter().position(|r| !r.is_finite()) {
            return Err(format!("residuals_cm_s[{i}] is not a finite number"));
        }
        if let Some(i) = self
            .runs
            .iter()
            .position(|r| r.iq_image_db.is_some_and(|db| !db.is_finite()))
        {
            return Err(format!("runs[{i}].iq_image_db is not a finite number"));
        }
        if let Some(i) = self.runs.iter().position(|r| {
            r.sha256.as_ref().is_some_and(|h| {
                h.len() != 64
                    || !h
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            })
        }) {
            return Err(format!(
                "runs[{i}].sha256 is not 64 lower-case hex characters"
            ));
        }
        if self.residuals_cm_s.len() != self.runs.len() {
            return Err(format!(
                "{} residuals for {} runs",
                self.residuals_cm_s.len(),
                self.runs.len()
            ));
        }
        if let Some(c) = &self.measured_with_correction
            && !(c.gain.is_finite() && c.gain > 0.0 && c.offset_cm_s.is_finite())
        {
            return Err("measured_with_correction is not a usable correction".into());
        }
        if let Some(c) = &self.conditions
            && (c.carrier_hz == 0
                || c.beam_angle_cdeg >= 9000
                || !(crate::frame::MIN_SAMPLE_RATE_HZ..=crate::frame::MAX_SAMPLE_RATE_HZ)
                    .contains(&c.sample_rate_hz))
        {
            return Err(format!(
                "conditions (carrier {} Hz, beam angle {} cdeg, sample rate {} Hz) are not a probe's",
                c.carrier_hz, c.beam_angle_cdeg, c.sample_rate_hz
            ));
        }
        Ok(())
    }

    /// Whether this calibration can be applied to a probe whose PROBE_INFO
    /// reports `info`; the error says what differs. A probe reporting
    /// another carrier or beam angle than the runs did scales velocities
    /// differently, and the measured gain does not hold for it. A file
    /// without `conditions` applies to any.
    pub fn applies_to(&self, info: &crate::ProbeInfo) -> Result<(), String> {
        let now = ProbeConditions::of(info);
        match &self.conditions {
            Some(made) if !made.same_scale(&now) => Err(format!(
                "calibration of {} made at {made}; the probe now reports {now}",
                self.date
            )),
            _ => Ok(()),
        }
    }

    /// The file as pretty-printed JSON with a final newline.
    pub fn to_json(&self) -> String {
        // Serialising plain numbers, strings and vectors cannot fail, but a
        // non-finite number would be written as null; `check` rules those out.
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }
}

/// A probe serial usable as a file name: 1–16 characters of `A–Z a–z 0–9 . _ -`,
/// not starting with a dot. Serials come from the probe (outside data), so
/// this also keeps a hostile serial from naming a path outside the store.
fn check_serial(serial: &str) -> Result<(), String> {
    if serial.is_empty() || serial.len() > 16 {
        return Err(format!(
            "probe serial {serial:?} must be 1 to 16 characters"
        ));
    }
    if serial.starts_with('.') {
        return Err(format!("probe serial {serial:?} must not start with a dot"));
    }
    if let Some(c) = serial
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "probe serial {serial:?} contains {c:?}; only letters, digits, '.', '_' and '-' are allowed"
        ));
    }
    Ok(())
}

/// Why a calibration could not be read, written or found.
#[derive(Debug, thiserror::Error)]
pub enum CalibrationError {
    /// The file could not be read.
    #[error("cannot read calibration file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not JSON of the calibration layout (the cause names line and column).
    #[error("calibration file {path} is not a valid calibration: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: serde_json::Error,
    },
    /// The file parsed but a field is unacceptable.
    #[error("calibration file {path}: {what}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// The file or directory could not be written.
    #[error("cannot write calibration file {path}: {source}")]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The serial cannot name a file in the store.
    #[error("{0}")]
    BadSerial(String),
    /// No store directory was given and none can be derived from the environment.
    #[error(
        "no calibration directory: set {STORE_DIR_ENV}, XDG_DATA_HOME or HOME, or give one explicitly"
    )]
    NoDefaultDir,
}

/// Why calibration text (no file involved) was refused: what
/// [`parse_calibration_json`] returns; [`read_calibration_file`] adds the path.
#[derive(Debug, thiserror::Error)]
pub enum CalibrationParseError {
    /// Not JSON of the calibration layout (the cause names line and column).
    #[error("not a valid calibration: {0}")]
    Json(#[source] serde_json::Error),
    /// The JSON parsed but a field is unacceptable ([`Calibration::check`]).
    #[error("{0}")]
    Invalid(String),
}

/// Parses and checks the text of a calibration file (untrusted: it may
/// come from another machine). Never panics; a returned calibration has
/// passed [`Calibration::check`].
pub fn parse_calibration_json(text: &str) -> Result<Calibration, CalibrationParseError> {
    let cal: Calibration = serde_json::from_str(text).map_err(CalibrationParseError::Json)?;
    cal.check().map_err(CalibrationParseError::Invalid)?;
    Ok(cal)
}

/// Reads and checks one calibration file.
pub fn read_calibration_file(path: &Path) -> Result<Calibration, CalibrationError> {
    let text = std::fs::read_to_string(path).map_err(|source| CalibrationError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_calibration_json(&text).map_err(|e| match e {
        CalibrationParseError::Json(source) => CalibrationError::Parse {
            path: path.to_path_buf(),
            source,
        },
        CalibrationParseError::Invalid(what) => CalibrationError::Invalid {
            path: path.to_path_buf(),
            what,
        },
    })
}

/// Writes a calibration file atomically (a temporary file beside it, synced,
/// then renamed over it), so a crash leaves the old file or the new one,
/// never half of one.
pub fn write_calibration_file(path: &Path, cal: &Calibration) -> Result<(), CalibrationError> {
    use std::io::Write;
    cal.check().map_err(|what| CalibrationError::Invalid {
        path: path.to_path_buf(),
        what,
    })?;
    let write_err = |source| CalibrationError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    let mut file = std::fs::File::create(&tmp).map_err(write_err)?;
    file.write_all(cal.to_json().as_bytes())
        .map_err(write_err)?;
    file.sync_all().map_err(write_err)?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(write_err)?;
    Ok(())
}

/// A directory of calibration files, one per probe: `<dir>/<serial>.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalibrationStore {
    dir: PathBuf,
}

impl CalibrationStore {
    /// A store in `dir` (created on the first save).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The default directory: `$ODM_CALIBRATIONS` if set, else
    /// `$XDG_DATA_HOME/odm/calibrations`, else `$HOME/.local/share/odm/calibrations`.
    pub fn default_dir() -> Result<PathBuf, CalibrationError> {
        let non_empty = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        if let Some(dir) = non_empty(STORE_DIR_ENV) {
            return Ok(PathBuf::from(dir));
        }
        if let Some(data) = non_empty("XDG_DATA_HOME") {
            return Ok(PathBuf::from(data).join("odm").join("calibrations"));
        }
        if let Some(home) = non_empty("HOME") {
            return Ok(PathBuf::from(home)
                .join(".local")
                .join("share")
                .join("odm")
                .join("calibrations"));
        }
        Err(CalibrationError::NoDefaultDir)
    }

    /// The store in [`default_dir`](Self::default_dir).
    pub fn open_default() -> Result<Self, CalibrationError> {
        Ok(Self::new(Self::default_dir()?))
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file that holds (or would hold) a probe's calibration.
    pub fn path_for(&self, probe_serial: &str) -> Result<PathBuf, CalibrationError> {
        check_serial(probe_serial).map_err(CalibrationError::BadSerial)?;
        Ok(self.dir.join(format!("{probe_serial}.json")))
    }

    /// Installs a calibration as its probe's current one (replacing any
    /// earlier one); returns the file written.
    pub fn save(&self, cal: &Calibration) -> Result<PathBuf, CalibrationError> {
        let path = self.path_for(&cal.probe_serial)?;
        std::fs::create_dir_all(&self.dir).map_err(|source| CalibrationError::Write {
            path: self.dir.clone(),
            source,
        })?;
        write_calibration_file(&path, cal)?;
        Ok(path)
    }

    /// The probe's calibration: `Ok(None)` when the store has none for it;
    /// an error when a file exists but cannot be used (unreadable, damaged,
    /// implausible, or made for another serial) — a damaged calibration is
    /// reported, never silently treated as "uncalibrated".
    pub fn lookup(&self, probe_serial: &str) -> Result<Option<Calibration>, CalibrationError> {
        let path = self.path_for(probe_serial)?;
        match std::fs::metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(CalibrationError::Read { path, source }),
            Ok(_) => {}
        }
        let cal = read_calibration_file(&path)?;
        if cal.probe_serial != probe_serial {
            return Err(CalibrationError::Invalid {
                path,
                what: format!(
                    "made for probe {:?}, not {probe_serial:?}",
                    cal.probe_serial
                ),
            });
        }
        Ok(Some(cal))
    }

    /// Every calibration in the store, for a caller that must not touch
    /// files later (the monitor's DSP thread does no I/O after start-up: load
    /// once, then look serials up in memory). Files that cannot be used are
    /// returned as errors beside the good ones, never silently dropped; a
    /// missing directory is an empty store. Files not named `*.json` are ignored.
    pub fn load_all(&self) -> (Vec<Calibration>, Vec<CalibrationError>) {
        let mut good = Vec::new();
        let mut bad = Vec::new();
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (good, bad),
            Err(source) => {
                bad.push(CalibrationError::Read {
                    path: self.dir.clone(),
                    source,
                });
                return (good, bad);
            }
        };
        let mut paths: Vec<PathBuf> = Vec::new();
        for entry in entries {
            match entry {
                Ok(e) => paths.push(e.path()),
                Err(source) => bad.push(CalibrationError::Read {
                    path: self.dir.clone(),
                    source,
                }),
            }
        }
        paths.sort();
        for path in paths {
            let Some(serial) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".json"))
            else {
                continue;
            };
            match self.lookup(serial) {
                Ok(Some(cal)) => good.push(cal),
                Ok(None) => {}
                Err(e) => bad.push(e),
            }
        }
        (good, bad)
    }

    /// The probe's status on `today`, by serial alone (whether the
    /// calibration applies to what the probe reports is not known here:
    /// see [`CalibrationStore::status_for`]).
    pub fn status(
        &self,
        probe_serial: &str,
        today: CalDate,
    ) -> Result<CalibrationStatus, CalibrationError> {
        Ok(match self.lookup(probe_serial)? {
            Some(cal) => cal.status_on(today),
            None => CalibrationStatus::None,
        })
    }

    /// The status on `today` of the probe whose PROBE_INFO is `info`:
    /// [`CalibrationStatus::NotApplicable`] when its calibration was made
    /// under another carrier or beam angle than it reports.
    pub fn status_for(
        &self,
        info: &crate::ProbeInfo,
        today: CalDate,
    ) -> Result<CalibrationStatus, CalibrationError> {
        Ok(match self.lookup(&info.serial_str())? {
            Some(cal) => match cal.conditions {
                Some(made) if !made.same_scale(&ProbeConditions::of(info)) => {
                    CalibrationStatus::NotApplicable {
                        made,
                        now: ProbeConditions::of(info),
                    }
                }
                _ => cal.status_on(today),
            },
            None => CalibrationStatus::None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(serial: &str) -> Calibration {
        Calibration {
            format: CALIBRATION_FORMAT.into(),
            version: CALIBRATION_VERSION,
            probe_serial: serial.into(),
            date: CalDate::from_ymd(2026, 11, 30).unwrap(),
            valid_until: CalDate::from_ymd(2027, 11, 30).unwrap(),
            engineer: "J. Bloggs".into(),
            phantom: "PH-01".into(),
            mode: MeasurementMode::Steady,
            gain: 1.07,
            offset_cm_s: 0.2,
            gain_ci95: [1.065, 1.075],
            r2: 0.9999,
            residuals_cm_s: vec![0.1, -0.1],
            gain_within_tolerance: false,
            offset_within_tolerance: Some(true),
            pass: false,
            limits: CalibrationLimits {
                gain_tolerance: 0.05,
                residual_limit_cm_s: 3.0,
                residual_limit_pct: 3.0,
                offset_tolerance_cm_s: Some(3.0),
            },
            runs: vec![
                CalibrationRun {
                    recording: "a.odmrec".into(),
                    reference_cm_s: 20.0,
                    measured_cm_s: 21.7,
                    residual_cm_s: 0.1,
                    residual_limit_cm_s: 3.0,
                    within_limit: true,
                    points: 400,
                    iq_image_db: None,
                    iq_channel_fault: false,
                    sha256: None,
                },
                CalibrationRun {
                    recording: "b.odmrec".into(),
                    reference_cm_s: 100.0,
                    measured_cm_s: 107.1,
                    residual_cm_s: -0.1,
                    residual_limit_cm_s: 3.0,
                    within_limit: true,
                    points: 400,
                    iq_image_db: None,
                    iq_channel_fault: false,
                    sha256: None,
                },
            ],
            measured_with_correction: None,
            software: "odm test".into(),
            conditions: None,
        }
    }

    /// Files written before the offset was judged and the channel fault
    /// recorded (2026-12-04) still read, with those fields unknown.
    #[test]
    fn an_older_file_without_the_offset_and_channel_fields_still_reads() {
        let mut value: serde_json::Value =
            serde_json::from_str(&sample("P-OLD").to_json()).unwrap();
        let obj = value.as_object_mut().unwrap();
        obj.remove("offset_within_tolerance");
        obj["limits"]
            .as_object_mut()
            .unwrap()
            .remove("offset_tolerance_cm_s");
        for run in obj["runs"].as_array_mut().unwrap() {
            run.as_object_mut().unwrap().remove("iq_channel_fault");
        }
        let text = value.to_string();
        assert!(!text.contains("offset_tolerance") && !text.contains("iq_channel_fault"));
        let cal = parse_calibration_json(&text).unwrap();
        assert_eq!(cal.offset_within_tolerance, None);
        assert_eq!(cal.limits.offset_tolerance_cm_s, None);
        assert!(cal.runs.iter().all(|r| !r.iq_channel_fault));
    }

    #[test]
    fn a_validity_running_past_9999_is_refused_so_every_written_file_reads_back() {
        let mut cal = sample("P9");
        cal.date = CalDate::from_ymd(9999, 12, 1).unwrap();
        cal.valid_until = cal.date.plus_days(365);
        let e = cal.check().unwrap_err();
        assert!(e.contains("valid_until") && e.contains("0001–9999"), "{e}");
        let dir = temp_dir("year10000");
        std::fs::create_dir_all(&dir).unwrap();
        assert!(write_calibration_file(&dir.join("P9.json"), &cal).is_err());
        // The last day that prints with four digits is accepted and reads back.
        cal.valid_until = CalDate::from_ymd(9999, 12, 31).unwrap();
        assert_eq!(cal.check(), Ok(()));
        assert_eq!(parse_calibration_json(&cal.to_json()).unwrap(), cal);
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "odm-calibration-test-{}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn dates_round_trip_through_known_days() {
        // Known day numbers: 1970-01-01 = 0, 2000-03-01 = 11017, 2024-02-29 = 19782.
        assert_eq!(
            CalDate::from_ymd(1970, 1, 1)
                .unwrap()
                .days_since_unix_epoch(),
            0
        );
        assert_eq!(
            CalDate::from_ymd(2000, 3, 1)
                .unwrap()
                .days_since_unix_epoch(),
            11_017
        );
        assert_eq!(
            CalDate::from_ymd(2024, 2, 29)
                .unwrap()
                .days_since_unix_epoch(),
            19_782
        );
        assert_eq!(
            CalDate::from_ymd(1969, 12, 31)
                .unwrap()
                .days_since_unix_epoch(),
            -1
        );
        let first = CalDate::from_ymd(1, 1, 1).unwrap().days_since_unix_epoch();
        let last = CalDate::from_ymd(9999, 12, 31)
            .unwrap()
            .days_since_unix_epoch();
        for days in first..=last {
            let d = CalDate {
                days_since_epoch: days,
            };
            let (y, m, dd) = d.ymd();
            assert_eq!(CalDate::from_ymd(y, m, dd), Some(d), "day {days}");
        }
    }

    #[test]
    fn dates_follow_a_naive_day_by_day_calendar() {
        // Walk day by day with the calendar rules alone from 1600-01-01
        // (Julian day 2305448, i.e. 135140 days before 1970-01-01) to 2400.
        let (mut y, mut m, mut d) = (1600i32, 1u32, 1u32);
        let mut days = -135_140i64;
        while y < 2400 {
            assert_eq!(
                CalDate::from_ymd(y, m, d).unwrap().days_since_unix_epoch(),
                days
            );
            let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            let len = [
                31,
                if leap { 29 } else { 28 },
                31,
                30,
                31,
                30,
                31,
                31,
                30,
                31,
                30,
                31,
            ];
            d += 1;
            if d > len[(m - 1) as usize] {
                d = 1;
                m += 1;
                if m > 12 {
                    m = 1;
                    y += 1;
                }
            }
            days += 1;
        }
    }

    #[test]
    fn date_arithmetic_crosses_leap_years() {
        let d = CalDate::parse("2027-02-28").unwrap();
        assert_eq!(d.plus_days(1).to_string(), "2027-03-01");
        assert_eq!(
            CalDate::parse("2028-02-28")
                .unwrap()
                .plus_days(1)
                .to_string(),
            "2028-02-29"
        );
        assert_eq!(
            CalDate::parse("2026-11-30")
                .unwrap()
                .plus_days(365)
                .to_string(),
            "2027-11-30"
        );
        assert_eq!(
            CalDate::from_unix_seconds(1_764_460_800).to_string(),
            "2025-11-30"
        );
        assert_eq!(CalDate::from_unix_seconds(-1).to_string(), "1969-12-31");
    }

    #[test]
    fn rejects_malformed_dates() {
        for bad in [
            "2026-02-30",
            "2025-02-29",
            "2026-13-01",
            "2026-00-10",
            "2026-1-1",
            "26-01-01",
            "2026/01/01",
            "2026-01-01T00:00:00Z",
            "+026-01-01",
            "2026-01-0a",
            "",
            "0000-01-01",
        ] {
            assert_eq!(CalDate::parse(bad), None, "{bad}");
        }
        assert!(CalDate::parse("1900-02-28").is_some());
        assert_eq!(CalDate::parse("1900-02-29"), None);
        assert!(CalDate::parse("2000-02-29").is_some());
    }

    /// A calibration applies to a probe reporting the carrier and beam
    /// angle its runs did (any sample rate), or to any probe when the file
    /// predates the field; it round-trips, and a nonsense one is refused.
    #[test]
    fn conditions_decide_where_a_calibration_applies() {
        let info = |carrier_hz: u32, cdeg: u16, fs: u32| crate::ProbeInfo {
            sample_rate_hz: fs,
            carrier_hz,
            beam_angle_cdeg: cdeg,
            probe_model: 1,
            minutes_used: 0,
            minutes_limit: 720,
            probe_serial: crate::ProbeInfo::pad("P-1"),
            firmware: crate::ProbeInfo::pad("1"),
        };
        let mut cal = sample("P-1");
        assert_eq!(cal.applies_to(&info(5_000_000, 6000, 8000)), Ok(()));
        cal.conditions = Some(ProbeConditions::of(&info(4_000_000, 4500, 20_000)));
        assert_eq!(cal.applies_to(&info(4_000_000, 4500, 8_000)), Ok(()));
        let e = cal.applies_to(&info(4_000_000, 6000, 20_000)).unwrap_err();
        assert!(
            e.ends_with("made at 4.000 MHz, 45.00°; the probe now reports 4.000 MHz, 60.00°"),
            "{e}"
        );
        assert!(cal.applies_to(&info(5_000_000, 4500, 20_000)).is_err());
        let back = parse_calibration_json(&cal.to_json()).unwrap();
        assert_eq!(back, cal);
        let mut bad = cal.clone();
        bad.conditions = Some(ProbeConditions {
            sample_rate_hz: 20_000,
            carrier_hz: 4_000_000,
            beam_angle_cdeg: 9000,
        });
        assert!(bad.check().unwrap_err().contains("conditions"));
        // A file without the field reads as before.
        let mut v: serde_json::Value = serde_json::from_str(&sample("P-1").to_json()).unwrap();
        assert!(v.get("conditions").is_none());
        v["software"] = "odm 0.0.9".into();
        assert_eq!(
            parse_calibration_json(&v.to_string()).unwrap().conditions,
            None
        );
    }

    #[test]
    fn status_is_calibrated_through_valid_until_then_due() {
        let cal = sample("P1");
        let until = cal.valid_until;
        assert_eq!(
            cal.status_on(until),
            CalibrationStatus::Calibrated {
                valid_until: until,
                pass: false
            }
        );
        assert_eq!(
            cal.status_on(cal.date),
            CalibrationStatus::Calibrated {
                valid_until: until,
                pass: false
            }
        );
        assert_eq!(
            cal.status_on(until.plus_days(1)),
            CalibrationStatus::Due { valid_until: until }
        );
    }

    #[test]
    fn status_reads_as_short_panel_text() {
        let d = CalDate::parse("2027-11-30").unwrap();
        let ok = CalibrationStatus::Calibrated {
            valid_until: d,
            pass: true,
        };
        assert_eq!(ok.to_string(), "calibrated to 2027-11-30");
        let failed = CalibrationStatus::Calibrated {
            valid_until: d,
            pass: false,
        };
        assert_eq!(
            failed.to_string(),
            "calibrated to 2027-11-30 (FAILED acceptance)"
        );
        let due = CalibrationStatus::Due { valid_until: d };
        assert_eq!(due.to_string(), "calibration due (was valid to 2027-11-30)");
        assert_eq!(CalibrationStatus::None.to_string(), "not calibrated");
    }

    #[test]
    fn store_saves_looks_up_and_reports_status() {
        let dir = temp_dir("store");
        let store = CalibrationStore::new(&dir);
        let today = CalDate::parse("2027-01-01").unwrap();
        assert_eq!(store.lookup("P1").unwrap(), None);
        assert_eq!(store.status("P1", today).unwrap(), CalibrationStatus::None);
        let cal = sample("P1");
        let path = store.save(&cal).unwrap();
        assert_eq!(path, dir.join("P1.json"));
        assert_eq!(store.lookup("P1").unwrap(), Some(cal.clone()));
        assert!(matches!(
            store.status("P1", today).unwrap(),
            CalibrationStatus::Calibrated { .. }
        ));
        let later = CalDate::parse("2028-01-01").unwrap();
        assert!(matches!(
            store.status("P1", later).unwrap(),
            CalibrationStatus::Due { .. }
        ));
        assert_eq!(store.status("P2", today).unwrap(), CalibrationStatus::None);
        // A newer calibration replaces the old one.
        let mut newer = cal.clone();
        newer.gain = 1.01;
        store.save(&newer).unwrap();
        assert_eq!(store.lookup("P1").unwrap().unwrap().gain, 1.01);
        // Made at 4 MHz and 45°: not applicable to the probe reporting 60°.
        let info = |cdeg: u16| crate::ProbeInfo {
            sample_rate_hz: 20_000,
            carrier_hz: 4_000_000,
            beam_angle_cdeg: cdeg,
            probe_model: 1,
            minutes_used: 0,
            minutes_limit: 720,
            probe_serial: crate::ProbeInfo::pad("P1"),
            firmware: crate::ProbeInfo::pad("1"),
        };
        newer.conditions = Some(ProbeConditions::of(&info(4500)));
        store.save(&newer).unwrap();
        assert!(matches!(
            store.status_for(&info(4500), today).unwrap(),
            CalibrationStatus::Calibrated { .. }
        ));
        assert_eq!(
            store.status_for(&info(6000), today).unwrap(),
            CalibrationStatus::NotApplicable {
                made: ProbeConditions::of(&info(4500)),
                now: ProbeConditions::of(&info(6000)),
            }
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn load_all_returns_good_files_and_reports_bad_ones() {
        let dir = temp_dir("load-all");
        let store = CalibrationStore::new(&dir);
        assert_eq!(
            store.load_all().0.len(),
            0,
            "a missing directory is an empty store"
        );
        store.save(&sample("A1")).unwrap();
        store.save(&sample("B2")).unwrap();
        std::fs::write(dir.join("C3.json"), "[]").unwrap();
        std::fs::write(dir.join("notes.txt"), "not a calibration").unwrap();
        let (good, bad) = store.load_all();
        let serials: Vec<&str> = good.iter().map(|c| c.probe_serial.as_str()).collect();
        assert_eq!(serials, vec!["A1", "B2"]);
        assert_eq!(bad.len(), 1);
        assert!(bad[0].to_string().contains("C3.json"), "{}", bad[0]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn damaged_or_foreign_files_are_errors_not_uncalibrated() {
        let dir = temp_dir("damaged");
        std::fs::create_dir_all(&dir).unwrap();
        let store = CalibrationStore::new(&dir);
        std::fs::write(dir.join("P1.json"), "{ not json").unwrap();
        let e = store.lookup("P1").unwrap_err().to_string();
        assert!(e.contains("P1.json") && e.contains("line 1"), "{e}");
        // A file for another probe under this probe's name.
        std::fs::write(dir.join("P2.json"), sample("P3").to_json()).unwrap();
        let e = store.lookup("P2").unwrap_err().to_string();
        assert!(e.contains("P3") && e.contains("P2.json"), "{e}");
        // An implausible gain.
        let mut bad = sample("P4");
        bad.gain = 7.0;
        std::fs::write(dir.join("P4.json"), serde_json::to_string(&bad).unwrap()).unwrap();
        let e = store.lookup("P4").unwrap_err().to_string();
        assert!(e.contains("gain 7"), "{e}");
        // A bad date names the problem.
        let text = sample("P5").to_json().replace("2027-11-30", "2027-11-31");
        std::fs::write(dir.join("P5.json"), text).unwrap();
        let e = store.lookup("P5").unwrap_err().to_string();
        assert!(e.contains("2027-11-31"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn hostile_serials_cannot_escape_the_store() {
        let store = CalibrationStore::new("/nonexistent-store");
        for bad in [
            "../etc/passwd",
            "a/b",
            "",
            ".hidden",
            "AAAAAAAAAAAAAAAAA",
            "sp ace",
            "nul\0",
        ] {
            assert!(
                matches!(store.path_for(bad), Err(CalibrationError::BadSerial(_))),
                "{bad:?}"
            );
            assert!(store.lookup(bad).is_err());
        }
        assert!(store.path_for("ODM-2026.a_1").is_ok());
    }

    #[test]
    fn file_round_trips_and_keeps_documented_field_names() {
        let cal = sample("P1");
        let json = cal.to_json();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        for field in [
            "probe_serial",
            "gain",
            "offset_cm_s",
            "gain_ci95",
            "r2",
            "residuals_cm_s",
            "pass",
            "valid_until",
            "date",
            "engineer",
            "phantom",
            "runs",
        ] {
            assert!(v.get(field).is_some(), "missing {field}");
        }
        assert_eq!(v["valid_until"], "2027-11-30");
        assert_eq!(v["mode"], "steady");
        assert_eq!(v["gain_ci95"].as_array().map(Vec::len), Some(2));
        let back: Calibration = serde_json::from_str(&json).unwrap();
        assert_eq!(back, cal);
        // Each run states the interface's I/Q image (null when unmeasured),
        // and a file written before that field existed still reads.
        let mut measured = sample("P1");
        measured.runs[0].iq_image_db = Some(-48.5);
        let v: serde_json::Value = serde_json::from_str(&measured.to_json()).unwrap();
        assert_eq!(v["runs"][0]["iq_image_db"], -48.5);
        assert!(v["runs"][1]["iq_image_db"].is_null());
        let mut older = v.clone();
        for run in older["runs"].as_array_mut().unwrap() {
            run.as_object_mut().unwrap().remove("iq_image_db");
        }
        let read = parse_calibration_json(&older.to_string()).unwrap();
        assert_eq!(read.runs[0].iq_image_db, None);
        let mut bad = measured.clone();
        bad.runs[1].iq_image_db = Some(f64::INFINITY);
        assert!(bad.check().unwrap_err().contains("runs[1].iq_image_db"));
    }

    #[test]
    fn in_memory_parse_gives_the_file_reader_its_errors_without_the_path() {
        let cal = sample("P1");
        assert_eq!(parse_calibration_json(&cal.to_json()).unwrap(), cal);
        assert!(matches!(
            parse_calibration_json("{ not json"),
            Err(CalibrationParseError::Json(_))
        ));
        let mut bad = sample("P1");
        bad.valid_until = bad.date.plus_days(-1);
        let e = parse_calibration_json(&serde_json::to_string(&bad).unwrap()).unwrap_err();
        assert!(matches!(e, CalibrationParseError::Invalid(_)), "{e:?}");
        assert_eq!(
            e.to_string(),
            "valid_until 2026-11-29 is before the calibration date 2026-11-30"
        );
        // The file reader reports the same cause with the file named.
        let dir = temp_dir("parse-errors");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("P1.json");
        std::fs::write(&path, serde_json::to_string(&bad).unwrap()).unwrap();
        let file_err = read_calibration_file(&path).unwrap_err();
        assert!(matches!(file_err, CalibrationError::Invalid { .. }));
        assert_eq!(
            file_err.to_string(),
            format!("calibration file {}: {e}", path.display())
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn correction_inverts_the_fitted_line() {
        let c = sample("P1").correction();
        assert!((c.true_from_measured_cm_s(1.07 * 100.0 + 0.2) - 100.0).abs() < 1e-12);
    }
}
