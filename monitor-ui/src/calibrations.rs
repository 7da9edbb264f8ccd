//! Installed probe calibrations, loaded once when a source starts so that
//! the DSP thread never reads a file: the engine applies a probe's
//! correction when its PROBE_INFO arrives, the probe panel shows its status.

use std::collections::HashMap;

use odm_device_io::ProbeInfo;
use odm_device_io::calibration::{
    CalDate, Calibration, CalibrationStatus, CalibrationStore, ProbeConditions,
};
use odm_dsp::ProbeCalibration;
use odm_dsp::calfit::probe_calibration_from;

/// What the monitor needs of one installed calibration.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Entry {
    correction: ProbeCalibration,
    valid_until: CalDate,
    pass: bool,
    /// The carrier and beam angle it was made under (None: not recorded,
    /// applied to any).
    conditions: Option<ProbeConditions>,
}

/// The calibration store's contents, by probe serial.
#[derive(Debug, Default, Clone)]
pub struct Calibrations {
    by_serial: HashMap<String, Entry>,
    /// Files that could not be read (damaged or foreign), one line each.
    pub problems: Vec<String>,
}

impl Calibrations {
    /// Everything in the default store (`$ODM_CALIBRATIONS`, else the user's
    /// data directory); empty when there is none.
    pub fn load_default() -> Self {
        match CalibrationStore::open_default() {
            Ok(store) => Self::load(&store),
            Err(e) => Self {
                by_serial: HashMap::new(),
                problems: vec![e.to_string()],
            },
        }
    }

    /// Everything in `store`.
    pub fn load(store: &CalibrationStore) -> Self {
        let (good, bad) = store.load_all();
        Self {
            by_serial: HashMap::new(),
            problems: bad.iter().map(ToString::to_string).collect(),
        }
        .with_all(good)
    }

    fn with_all(mut self, calibrations: Vec<Calibration>) -> Self {
        for c in calibrations {
            self.insert(&c);
        }
        self
    }

    /// Adds (or replaces) a probe's calibration.
    pub fn insert(&mut self, c: &Calibration) {
        self.insert_correction(
            &c.probe_serial,
            probe_calibration_from(c.gain, c.offset_cm_s),
            c.valid_until,
            c.pass,
        );
        if let Some(e) = self.by_serial.get_mut(&c.probe_serial) {
            e.conditions = c.conditions;
        }
    }

    /// Adds (or replaces) a probe's correction directly.
    pub fn insert_correction(
        &mut self,
        probe_serial: &str,
        correction: ProbeCalibration,
        valid_until: CalDate,
        pass: bool,
    ) {
        self.by_serial.insert(
            probe_serial.to_string(),
            Entry {
                correction,
                valid_until,
                pass,
                conditions: None,
            },
        );
    }

    /// The velocity correction for the probe `info` describes (none when
    /// it has no calibration, or one made under another carrier or beam
    /// angle than it reports). A calibration past its date is still applied
    /// — it is the best correction known — and the panel says it is due.
    pub fn correction(&self, info: &ProbeInfo) -> ProbeCalibration {
        self.by_serial
            .get(&info.serial_str())
            .filter(|e| Self::applies(e, info).is_none())
            .map(|e| e.correction)
            .unwrap_or_default()
    }

    /// The conditions made and now, when the entry does not apply to `info`.
    fn applies(e: &Entry, info: &ProbeInfo) -> Option<(ProbeConditions, ProbeConditions)> {
        let now = ProbeConditions::of(info);
        e.conditions
            .filter(|made| !made.same_scale(&now))
            .map(|made| (made, now))
    }

    /// Calibrated / due / none / not applicable for the probe `info`
    /// describes, on `today`.
    pub fn status(&self, info: &ProbeInfo, today: CalDate) -> CalibrationStatus {
        let entry = self.by_serial.get(&info.serial_str());
        if let Some((made, now)) = entry.and_then(|e| Self::applies(e, info)) {
            return CalibrationStatus::NotApplicable { made, now };
        }
        match entry {
            None => CalibrationStatus::None,
            // As `Calibration::status_on`: in date through `valid_until`.
            Some(e) if today <= e.valid_until => CalibrationStatus::Calibrated {
                valid_until: e.valid_until,
                pass: e.pass,
            },
            Some(e) => CalibrationStatus::Due {
                valid_until: e.valid_until,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(serial: &str, carrier_hz: u32, beam_angle_cdeg: u16) -> ProbeInfo {
        ProbeInfo {
            sample_rate_hz: 20_000,
            carrier_hz,
            beam_angle_cdeg,
            probe_model: 1,
            minutes_used: 0,
            minutes_limit: 720,
            probe_serial: ProbeInfo::pad(serial),
            firmware: ProbeInfo::pad("1.0"),
        }
    }

    #[test]
    fn a_probe_without_calibration_gets_no_correction_and_status_none() {
        let c = Calibrations::default();
        let x = info("X", 4_000_000, 4500);
        assert_eq!(c.correction(&x), ProbeCalibration::default());
        assert_eq!(c.status(&x, CalDate::today_utc()), CalibrationStatus::None);
    }

    #[test]
    fn status_is_due_the_day_after_valid_until() {
        let mut c = Calibrations::default();
        let until = CalDate::parse("2026-12-31").expect("date");
        c.insert_correction("P", ProbeCalibration::default(), until, true);
        let p = info("P", 4_000_000, 4500);
        let on = |d: &str| c.status(&p, CalDate::parse(d).expect("date"));
        assert_eq!(
            on("2026-12-31"),
            CalibrationStatus::Calibrated {
                valid_until: until,
                pass: true
            }
        );
        assert_eq!(
            on("2027-01-01"),
            CalibrationStatus::Due { valid_until: until }
        );
    }

    /// A calibration made at 4 MHz and 45° is not applied to the same
    /// serial reporting 5 MHz or 60°: its gain would not hold.
    #[test]
    fn a_calibration_made_under_other_conditions_is_not_applied() {
        let mut c = Calibrations::default();
        let until = CalDate::parse("2099-12-31").expect("date");
        let made = ProbeConditions {
            sample_rate_hz: 20_000,
            carrier_hz: 4_000_000,
            beam_angle_cdeg: 4500,
        };
        let correction = probe_calibration_from(1.1, 0.0);
        c.insert_correction("P", correction, until, true);
        c.by_serial.get_mut("P").expect("entry").conditions = Some(made);
        let today = CalDate::parse("2026-12-04").expect("date");
        // Same scale (another sample rate does not matter): applied.
        let mut same = info("P", 4_000_000, 4500);
        same.sample_rate_hz = 8_000;
        assert_eq!(c.correction(&same), correction);
        assert!(matches!(
            c.status(&same, today),
            CalibrationStatus::Calibrated { pass: true, .. }
        ));
        for other in [info("P", 5_000_000, 4500), info("P", 4_000_000, 6000)] {
            assert_eq!(c.correction(&other), ProbeCalibration::default());
            let status = c.status(&other, today);
            assert_eq!(
                status,
                CalibrationStatus::NotApplicable {
                    made,
                    now: ProbeConditions::of(&other)
                }
            );
            assert!(
                status
                    .to_string()
                    .starts_with("NOT APPLIED: made at 4.000 MHz, 45.00°")
            );
        }
    }
}
