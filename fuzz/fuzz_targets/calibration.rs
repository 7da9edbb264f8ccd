//! Fuzz target: probe calibration files (untrusted: they come from other
//! machines) through `parse_calibration_json`, the parser
//! `read_calibration_file` uses. Checks that it never panics, and that
//! whatever it accepts is a usable calibration: it passes `check`, writes
//! and reads back exactly (device-io parses floats correctly rounded) still
//! passing `check`, has a finite, increasing
//! velocity correction that maps the offset to zero, has a status that is
//! in date from `date` through `valid_until` and due the day after, and
//! names a file inside the store.
#![no_main]

use libfuzzer_sys::fuzz_target;
use odm_device_io::calibration::{
    CalDate, CalibrationStatus, CalibrationStore, parse_calibration_json,
};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let cal = match parse_calibration_json(text) {
        Ok(cal) => cal,
        Err(e) => {
            // A refusal always says something.
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    assert_eq!(cal.check(), Ok(()));

    // Written and read back it is still accepted, and the same calibration.
    let json = cal.to_json();
    let back = match parse_calibration_json(&json) {
        Ok(b) => b,
        Err(e) => panic!("a checked calibration does not read back: {e}\n{json}"),
    };
    // Exactly: floats are parsed correctly rounded (device-io enables
    // serde_json's `float_roundtrip`), and a checked calibration's are
    // finite, so `==` on them is bit equality up to the sign of zero.
    assert_eq!(cal, back);

    // The correction: finite over any plausible velocity (|v| ≤ 1e6 cm/s;
    // near f64::MAX a gain below 1 can overflow), zero at the offset,
    // strictly increasing.
    let c = cal.correction();
    assert!(c.gain.is_finite() && c.gain >= 0.5 && c.gain <= 2.0);
    assert_eq!(c.true_from_measured_cm_s(c.offset_cm_s), 0.0);
    let velocities = [
        -1.0e6, -300.0, -50.0, -1.0, 0.0, 0.2, 1.0, 50.0, 150.0, 300.0, 1.0e6,
    ];
    let mut last = f64::NEG_INFINITY;
    for v in velocities {
        let t = c.true_from_measured_cm_s(v);
        assert!(t.is_finite(), "{v} cm/s corrected to {t}");
        assert!(t > last, "correction not increasing at {v} cm/s");
        last = t;
    }
    // An as-left correction may have any positive gain: it never gives NaN.
    if let Some(m) = &cal.measured_with_correction {
        for v in velocities {
            assert!(!m.true_from_measured_cm_s(v).is_nan());
        }
    }

    // Status: in date from the calibration day through valid_until, due after.
    let in_date = CalibrationStatus::Calibrated {
        valid_until: cal.valid_until,
        pass: cal.pass,
    };
    assert_eq!(cal.status_on(cal.date), in_date);
    assert_eq!(cal.status_on(cal.valid_until), in_date);
    let due = CalibrationStatus::Due {
        valid_until: cal.valid_until,
    };
    assert_eq!(cal.status_on(cal.valid_until.plus_days(1)), due);
    assert_eq!(cal.status_on(CalDate::from_unix_seconds(i64::MAX)), due);
    if let Some(early) = CalDate::from_ymd(1, 1, 1) {
        assert_eq!(cal.status_on(early), in_date);
    }
    let shown = cal.status_on(cal.valid_until).to_string();
    assert!(shown.contains(&cal.valid_until.to_string()), "{shown}");

    // Its serial names a file directly inside the store.
    let store = CalibrationStore::new("/store");
    let path = store
        .path_for(&cal.probe_serial)
        .expect("a checked serial is a valid file name");
    assert_eq!(path.parent(), Some(store.dir()));
    assert_eq!(
        path.file_name().and_then(|n| n.to_str()),
        Some(format!("{}.json", cal.probe_serial).as_str())
    );
});
