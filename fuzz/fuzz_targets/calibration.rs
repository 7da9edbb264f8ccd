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
    CalDate, Calibration, CalibrationStatus, CalibrationStore, parse_calibration_json,
};

/// Finite and the same float, bit for bit.
fn close(a: f64, b: f64) -> bool {
    a.is_finite() && a.to_bits() == b.to_bits()
}

/// Everything must come back exactly, floats bit for bit.
fn assert_same(a: &Calibration, b: &Calibration) {
    assert_eq!(a.format, b.format);
    assert_eq!(a.version, b.version);
    assert_eq!(a.probe_serial, b.probe_serial);
    assert_eq!(a.date, b.date);
    assert_eq!(a.valid_until, b.valid_until);
    assert_eq!(a.engineer, b.engineer);
    assert_eq!(a.phantom, b.phantom);
    assert_eq!(a.mode, b.mode);
    assert_eq!(a.gain_within_tolerance, b.gain_within_tolerance);
    assert_eq!(a.pass, b.pass);
    assert_eq!(a.software, b.software);
    let floats = |c: &Calibration| {
        let mut v = vec![
            c.gain,
            c.offset_cm_s,
            c.gain_ci95[0],
            c.gain_ci95[1],
            c.r2,
            c.limits.gain_tolerance,
            c.limits.residual_limit_cm_s,
            c.limits.residual_limit_pct,
        ];
        v.extend(&c.residuals_cm_s);
        if let Some(m) = &c.measured_with_correction {
            v.extend([m.gain, m.offset_cm_s]);
        }
        for r in &c.runs {
            v.extend([
                r.reference_cm_s,
                r.measured_cm_s,
                r.residual_cm_s,
                r.residual_limit_cm_s,
            ]);
        }
        v
    };
    let (fa, fb) = (floats(a), floats(b));
    assert_eq!(fa.len(), fb.len());
    for (x, y) in fa.iter().zip(&fb) {
        assert!(close(*x, *y), "{x:?} came back as {y:?}");
    }
    assert_eq!(
        a.measured_with_correction.is_some(),
        b.measured_with_correction.is_some()
    );
    assert_eq!(a.runs.len(), b.runs.len());
    for (ra, rb) in a.runs.iter().zip(&b.runs) {
        assert_eq!(ra.recording, rb.recording);
        assert_eq!(ra.within_limit, rb.within_limit);
        assert_eq!(ra.points, rb.points);
    }
}

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
    assert_same(&cal, &back);

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
