//! Installed probe calibrations, loaded once when a source starts so that
//! the DSP thread never reads a file: the engine applies a probe's
//! correction when its PROBE_INFO arrives, the probe panel shows its status.

use std::collections::HashMap;

use odm_device_io::calibration::{CalDate, Calibration, CalibrationStatus, CalibrationStore};
use odm_dsp::ProbeCalibration;
use odm_dsp::calfit::probe_calibration_from;

/// What the monitor needs of one installed calibration.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Entry {
    correction: ProbeCalibration,
    valid_until: CalDate,
    pass: bool,
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
            },
        );
    }

    /// The velocity correction for a probe (none when it has no calibration).
    /// A calibration past its date is still applied — it is the best
    /// correction known — and the panel says it is due.
    pub fn correction(&self, probe_serial: &str) -> ProbeCalibration {
        self.by_serial
            .get(probe_serial)
            .map(|e| e.correction)
            .unwrap_or_default()
    }

    /// Calibrated / due / none for a probe on `today`.
    pub fn status(&self, probe_serial: &str, today: CalDate) -> CalibrationStatus {
        match self.by_serial.get(probe_serial) {
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

    #[test]
    fn a_probe_without_calibration_gets_no_correction_and_status_none() {
        let c = Calibrations::default();
        assert_eq!(c.correction("X"), ProbeCalibration::default());
        assert_eq!(c.status("X", CalDate::today_utc()), CalibrationStatus::None);
    }

    #[test]
    fn status_is_due_the_day_after_valid_until() {
        let mut c = Calibrations::default();
        let until = CalDate::parse("2026-12-31").expect("date");
        c.insert_correction("P", ProbeCalibration::default(), until, true);
        let on = |d: &str| c.status("P", CalDate::parse(d).expect("date"));
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
}
