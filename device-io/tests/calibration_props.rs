//! Property tests of the calibration file parser. Calibration files come
//! from other machines and engineers, so `parse_calibration_json` (what
//! `read_calibration_file` uses) must refuse anything unusable with an
//! error, never panic, and whatever it accepts must pass `check` and write
//! back to a file that reads back as the same calibration.

use odm_device_io::calibration::{
    CALIBRATION_FORMAT, CALIBRATION_VERSION, CalDate, Calibration, CalibrationError,
    CalibrationLimits, CalibrationParseError, CalibrationRun, MeasurementMode, VelocityCorrection,
    parse_calibration_json, read_calibration_file, write_calibration_file,
};
use proptest::prelude::*;
use serde_json::Value;

/// Every field of the file, in the documented order.
const FIELDS: [&str; 19] = [
    "format",
    "version",
    "probe_serial",
    "date",
    "valid_until",
    "engineer",
    "phantom",
    "mode",
    "gain",
    "offset_cm_s",
    "gain_ci95",
    "r2",
    "residuals_cm_s",
    "gain_within_tolerance",
    "pass",
    "limits",
    "runs",
    "measured_with_correction",
    "software",
];

/// Any finite f64, subnormals and both zeros included.
fn finite() -> impl Strategy<Value = f64> {
    use proptest::num::f64;
    f64::POSITIVE | f64::NEGATIVE | f64::NORMAL | f64::SUBNORMAL | f64::ZERO
}

/// Finite values with at most 10 significant digits: these survive
/// serde_json's (not always correctly rounded) float parser exactly.
fn short_decimal(lo: i64, hi: i64) -> impl Strategy<Value = f64> {
    (lo..=hi, 0u32..=6).prop_map(|(n, k)| n as f64 / 10f64.powi(k as i32))
}

/// The field names as a `'static` slice, for `select`.
fn fields() -> &'static [&'static str] {
    &FIELDS
}

fn last_day() -> CalDate {
    CalDate::from_ymd(9999, 12, 31).unwrap()
}

fn date() -> impl Strategy<Value = CalDate> {
    (1i32..=9999, 1u32..=12, 1u32..=28).prop_map(|(y, m, d)| CalDate::from_ymd(y, m, d).unwrap())
}

/// Any valid calibration, its floats drawn from `float` (for the fields
/// without a plausibility range).
fn calibration(float: BoxedStrategy<f64>, exact: bool) -> impl Strategy<Value = Calibration> {
    // Exact: at most 7 significant digits; else any float in range.
    let gain = if exact {
        (500_000i64..=2_000_000)
            .prop_map(|n| n as f64 / 1e6)
            .boxed()
    } else {
        (0.5f64..=2.0).boxed()
    };
    let offset = if exact {
        (-50_000_000i64..=50_000_000)
            .prop_map(|n| n as f64 / 1e6)
            .boxed()
    } else {
        (-50.0f64..=50.0).boxed()
    };
    let run = (
        any::<String>(),
        float.clone(),
        float.clone(),
        float.clone(),
        float.clone(),
        any::<bool>(),
        any::<u64>(),
        proptest::option::of(float.clone()),
        any::<bool>(),
        proptest::option::of("[0-9a-f]{64}"),
    )
        .prop_map(
            |(recording, r, m, res, lim, within, points, iq_image_db, iq_channel_fault, sha256)| {
                CalibrationRun {
                    recording,
                    reference_cm_s: r,
                    measured_cm_s: m,
                    residual_cm_s: res,
                    residual_limit_cm_s: lim,
                    within_limit: within,
                    points,
                    iq_image_db,
                    iq_channel_fault,
                    sha256,
                }
            },
        );
    let runs = proptest::collection::vec((run, float.clone()), 0..5);
    let correction = proptest::option::of(
        (float.clone(), float.clone())
            .prop_filter("a usable correction", |(g, _)| *g > 0.0)
            .prop_map(|(gain, offset_cm_s)| VelocityCorrection { gain, offset_cm_s }),
    );
    (
        ("[A-Za-z0-9_-][A-Za-z0-9._-]{0,15}", date(), 0i64..4000),
        (
            any::<String>(),
            any::<String>(),
            any::<bool>(),
            any::<String>(),
        ),
        (gain, offset, float.clone(), float.clone(), float.clone()),
        (
            any::<bool>(),
            any::<bool>(),
            proptest::option::of(any::<bool>()),
        ),
        (
            float.clone(),
            float.clone(),
            float.clone(),
            proptest::option::of(float.clone()),
        ),
        runs,
        correction,
    )
        .prop_map(
            |(
                (serial, date, days),
                (engineer, phantom, pulsatile, software),
                (gain, offset_cm_s, ci_a, ci_b, r2),
                (gain_within_tolerance, pass, offset_within_tolerance),
                (gain_tolerance, residual_limit_cm_s, residual_limit_pct, offset_tolerance_cm_s),
                runs,
                measured_with_correction,
            )| {
                let (runs, residuals_cm_s): (Vec<_>, Vec<_>) = runs.into_iter().unzip();
                Calibration {
                    format: CALIBRATION_FORMAT.into(),
                    version: CALIBRATION_VERSION,
                    probe_serial: serial,
                    date,
                    valid_until: date.plus_days(days).min(last_day()),
                    engineer,
                    phantom,
                    mode: if pulsatile {
                        MeasurementMode::Pulsatile
                    } else {
                        MeasurementMode::Steady
                    },
                    gain,
                    offset_cm_s,
                    gain_ci95: [ci_a.min(ci_b), ci_a.max(ci_b)],
                    r2,
                    residuals_cm_s,
                    gain_within_tolerance,
                    offset_within_tolerance,
                    pass,
                    limits: CalibrationLimits {
                        gain_tolerance,
                        residual_limit_cm_s,
                        residual_limit_pct,
                        offset_tolerance_cm_s,
                    },
                    runs,
                    measured_with_correction,
                    software,
                    conditions: None,
                }
            },
        )
}

/// A JSON value of any shape, leaning towards what the fields hold.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        finite().prop_map(Value::from),
        prop_oneof![
            Just(0.5),
            Just(0.4999999),
            Just(2.0),
            Just(2.0000001),
            Just(50.0),
            Just(-50.0),
            Just(-50.0001),
            Just(0.0),
            Just(1e308),
            Just(-1e-308),
        ]
        .prop_map(Value::from),
        prop_oneof![
            Just("odm-calibration".to_owned()),
            Just("steady".to_owned()),
            Just("pulsatile".to_owned()),
            Just("2026-11-30".to_owned()),
            Just("2026-02-29".to_owned()),
            Just("9999-12-31".to_owned()),
            "[0-9]{4}-[0-9]{2}-[0-9]{2}",
            "[A-Za-z0-9._/ -]{0,20}",
            any::<String>(),
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 32, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(
                prop_oneof![
                    proptest::sample::select(fields()).prop_map(str::to_owned),
                    prop_oneof![
                        Just("gain_tolerance".to_owned()),
                        Just("residual_limit_cm_s".to_owned()),
                        Just("residual_limit_pct".to_owned()),
                        Just("recording".to_owned()),
                        Just("points".to_owned()),
                        Just("iq_image_db".to_owned()),
                        Just("offset_cm_s".to_owned()),
                    ],
                    "[a-z_]{1,12}",
                ],
                inner,
                0..8,
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// What every accepted calibration must satisfy, checked without `check`.
fn assert_usable(cal: &Calibration) -> Result<(), TestCaseError> {
    prop_assert_eq!(cal.check(), Ok(()));
    prop_assert_eq!(&cal.format, CALIBRATION_FORMAT);
    prop_assert_eq!(cal.version, CALIBRATION_VERSION);
    prop_assert!((0.5..=2.0).contains(&cal.gain), "gain {}", cal.gain);
    prop_assert!(cal.offset_cm_s.abs() <= 50.0, "offset {}", cal.offset_cm_s);
    prop_assert!(cal.date <= cal.valid_until);
    prop_assert!(cal.gain_ci95[0] <= cal.gain_ci95[1]);
    prop_assert_eq!(cal.residuals_cm_s.len(), cal.runs.len());
    prop_assert!((1..=16).contains(&cal.probe_serial.len()));
    prop_assert!(!cal.probe_serial.starts_with('.'));
    let c = cal.correction();
    for v in [-1000.0, -1.0, 0.0, 1.0, 100.0, 1000.0] {
        prop_assert!(c.true_from_measured_cm_s(v).is_finite());
    }
    // The file it writes reads back.
    let back = parse_calibration_json(&cal.to_json());
    prop_assert!(back.is_ok(), "{:?}", back);
    Ok(())
}

fn valid_value() -> Value {
    let cal = Calibration {
        format: CALIBRATION_FORMAT.into(),
        version: CALIBRATION_VERSION,
        probe_serial: "ODM-P0042".into(),
        date: CalDate::parse("2026-11-30").unwrap(),
        valid_until: CalDate::parse("2027-11-30").unwrap(),
        engineer: "J. Bloggs".into(),
        phantom: "PH-01".into(),
        mode: MeasurementMode::Steady,
        gain: 1.07,
        offset_cm_s: 0.2,
        gain_ci95: [1.065, 1.075],
        r2: 0.9999,
        residuals_cm_s: vec![0.1],
        gain_within_tolerance: false,
        offset_within_tolerance: Some(true),
        pass: false,
        limits: CalibrationLimits {
            gain_tolerance: 0.05,
            residual_limit_cm_s: 3.0,
            residual_limit_pct: 3.0,
            offset_tolerance_cm_s: Some(3.0),
        },
        runs: vec![CalibrationRun {
            recording: "a.odmrec".into(),
            reference_cm_s: 20.0,
            measured_cm_s: 21.6,
            residual_cm_s: 0.1,
            residual_limit_cm_s: 3.0,
            within_limit: true,
            points: 400,
            iq_image_db: None,
            iq_channel_fault: false,
            sha256: None,
        }],
        measured_with_correction: None,
        software: "odm test".into(),
        conditions: Some(odm_device_io::calibration::ProbeConditions {
            sample_rate_hz: 20_000,
            carrier_hz: 4_000_000,
            beam_angle_cdeg: 4500,
        }),
    };
    serde_json::to_value(&cal).unwrap()
}

fn floats(c: &Calibration) -> Vec<f64> {
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
    for r in &c.runs {
        v.extend([
            r.reference_cm_s,
            r.measured_cm_s,
            r.residual_cm_s,
            r.residual_limit_cm_s,
        ]);
    }
    if let Some(m) = &c.measured_with_correction {
        v.extend([m.gain, m.offset_cm_s]);
    }
    v
}

/// `back` is `cal`, every float bit for bit.
fn assert_same(cal: &Calibration, back: &Calibration) -> Result<(), TestCaseError> {
    prop_assert_eq!(back, cal);
    let bits = |c: &Calibration| floats(c).iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    prop_assert_eq!(bits(back), bits(cal));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_text_is_refused_as_not_a_calibration(text in any::<String>()) {
        let r = parse_calibration_json(&text);
        prop_assert!(matches!(r, Err(CalibrationParseError::Json(_))), "{:?}", r);
    }

    #[test]
    fn a_damaged_file_is_refused_or_usable_never_a_panic(
        at in any::<prop::sample::Index>(),
        cut in 0usize..40,
        insert in prop_oneof![any::<String>(), "[0-9.eE+-]{0,6}", "[\\[\\]{}\",:]{0,3}"],
    ) {
        let text = serde_json::to_string_pretty(&valid_value()).unwrap();
        let start = at.index(text.len());
        let end = (start + cut).min(text.len());
        // The pretty JSON of this value is ASCII, so any index is a boundary.
        let damaged = format!("{}{insert}{}", &text[..start], &text[end..]);
        if let Ok(cal) = parse_calibration_json(&damaged) {
            assert_usable(&cal)?;
        }
    }

    #[test]
    fn arbitrary_json_under_the_field_names_is_refused_or_usable(
        replaced in proptest::collection::btree_map(
            proptest::sample::select(fields()), json_value(), 0..5),
        dropped in proptest::collection::btree_set(proptest::sample::select(fields()), 0..2),
        extra in proptest::collection::btree_map("[a-z_]{1,10}", json_value(), 0..2),
    ) {
        let mut v = valid_value();
        let obj = v.as_object_mut().unwrap();
        for (k, x) in &replaced {
            obj.insert((*k).to_owned(), x.clone());
        }
        for k in &dropped {
            obj.remove(*k);
        }
        for (k, x) in &extra {
            if !FIELDS.contains(&k.as_str()) {
                obj.insert(k.clone(), x.clone());
            }
        }
        let text = v.to_string();
        match parse_calibration_json(&text) {
            Ok(cal) => {
                assert_usable(&cal)?;
                // A required field cannot be missing from an accepted file
                // (only measured_with_correction may be left out: null).
                for k in &dropped {
                    prop_assert_eq!(*k, "measured_with_correction");
                    prop_assert!(cal.measured_with_correction.is_none());
                }
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
        // A missing required field is named, whatever else is wrong.
        if let Some(k) = dropped.iter().find(|k| **k != "measured_with_correction") {
            let one_missing = {
                let mut v = valid_value();
                v.as_object_mut().unwrap().remove(*k);
                v.to_string()
            };
            let e = parse_calibration_json(&one_missing).unwrap_err();
            prop_assert!(matches!(e, CalibrationParseError::Json(_)));
            prop_assert!(e.to_string().contains(&format!("missing field `{k}`")), "{}", e);
        }
    }

    #[test]
    fn a_gain_or_offset_is_accepted_exactly_when_plausible(
        gain in prop_oneof![-5.0f64..5.0, Just(0.5), Just(2.0), Just(0.49999), Just(2.00001)],
        offset in prop_oneof![-100.0f64..100.0, Just(50.0), Just(-50.0), Just(50.0001)],
    ) {
        let mut v = valid_value();
        v["gain"] = Value::from(gain);
        v["offset_cm_s"] = Value::from(offset);
        let r = parse_calibration_json(&v.to_string());
        // Judge plausibility on what is read back (exactly what was
        // written, with serde_json's correctly rounded float parsing).
        let read: f64 = serde_json::from_str(&serde_json::to_string(&gain).unwrap()).unwrap();
        let read_off: f64 = serde_json::from_str(&serde_json::to_string(&offset).unwrap()).unwrap();
        let plausible = (0.5..=2.0).contains(&read) && read_off.abs() <= 50.0;
        match r {
            Ok(cal) => {
                prop_assert!(plausible);
                prop_assert_eq!(cal.gain, read);
                prop_assert_eq!(cal.offset_cm_s, read_off);
            }
            Err(CalibrationParseError::Invalid(what)) => {
                prop_assert!(!plausible);
                prop_assert!(what.starts_with("gain ") || what.starts_with("offset_cm_s "), "{}", what);
            }
            Err(e) => prop_assert!(false, "unexpected {e:?}"),
        }
    }

    #[test]
    fn valid_calibrations_with_short_decimals_round_trip_exactly(
        cal in calibration(short_decimal(-1_000_000_000, 1_000_000_000).boxed(), true),
    ) {
        prop_assert_eq!(cal.check(), Ok(()));
        let json = cal.to_json();
        prop_assert_eq!(parse_calibration_json(&json).unwrap(), cal.clone());
        // And through a file, as the store does.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("{}.json", cal.probe_serial));
        write_calibration_file(&path, &cal).unwrap();
        prop_assert_eq!(read_calibration_file(&path).unwrap(), cal);
    }

    #[test]
    fn valid_calibrations_round_trip_exactly(
        cal in calibration(finite().boxed(), false),
    ) {
        prop_assert_eq!(cal.check(), Ok(()));
        let back = parse_calibration_json(&cal.to_json());
        prop_assert!(back.is_ok(), "{:?}", back);
        let back = back.unwrap();
        // serde_json parses floats correctly rounded (its `float_roundtrip`
        // feature): any finite float comes back bit for bit. Without it one
        // in six came back an ULP or two away.
        assert_same(&cal, &back)?;
        let again = parse_calibration_json(&back.to_json()).unwrap();
        assert_same(&cal, &again)?;
    }

    #[test]
    fn a_file_error_names_the_file(
        text in prop_oneof![any::<String>(), Just("{}".to_owned()), Just("[]".to_owned())],
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("P1.json");
        std::fs::write(&path, &text).unwrap();
        let e = read_calibration_file(&path).unwrap_err();
        prop_assert!(matches!(e, CalibrationError::Parse { .. }), "{e:?}");
        prop_assert!(e.to_string().contains(&path.display().to_string()), "{}", e);
    }
}
