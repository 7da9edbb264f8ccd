//! Property tests of the record codec and the bundle reader.

use std::path::{Path, PathBuf};

use odm_uptake::verify::check_bundle;
use odm_uptake::{
    AcceptedFraction, AgeBand, BolusMl, Category, ChainHash, Eligibility, Minutes, OdsCode, Period,
    RandomId, Record, Software,
};
use proptest::prelude::*;

fn record_strategy() -> impl Strategy<Value = Record> {
    (
        any::<[u8; 16]>(),
        any::<[u8; 16]>(),
        prop_oneof![Just("RH8"), Just("RH802"), Just("RTH"), Just("A1B2C")],
        (1000u16..=9999, 1u8..=12),
        (0..Category::ALL.len(), 0..Eligibility::ALL.len(), 0u32..120),
        (0u64..200_000, any::<u32>(), 0u64..100_000),
        (0u64..10_000, 0u64..10_000, any::<u8>()),
        "[ -~]{1,40}",
    )
        .prop_filter_map(
            "software must avoid , \" |",
            |(id, dev, org, (y, m), (c, e, age), (secs, boluses, ml), (acc, tot, probe), sw)| {
                Some(Record {
                    record_id: RandomId::from_random_bytes(id),
                    device: RandomId::from_random_bytes(dev),
                    org: OdsCode::parse(org).ok()?,
                    period: Period::new(y, m).ok()?,
                    category: Category::ALL[c],
                    eligibility: Eligibility::ALL[e],
                    age_band: AgeBand::from_age_years(age),
                    minutes: Minutes::from_seconds(secs),
                    boluses,
                    bolus_ml: BolusMl::from_total_ml(ml),
                    accepted_fraction: AcceptedFraction::from_beats(acc, tot),
                    probe_model: probe,
                    software: Software::parse(&sw).ok()?,
                })
            },
        )
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("uptake-prop-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_valid_record_round_trips_through_its_csv_text(r in record_strategy()) {
        let mut line = String::new();
        r.write_fields(',', &mut line);
        let parts: Vec<&str> = line.split(',').collect();
        prop_assert_eq!(parts.len(), 13);
        let back = Record::from_fields(&parts[..].try_into().unwrap()).unwrap();
        prop_assert_eq!(back.chain_hash(&ChainHash::GENESIS), r.chain_hash(&ChainHash::GENESIS));
        prop_assert_eq!(back, r);
    }

    #[test]
    fn arbitrary_bundle_bytes_give_errors_never_panics(
        manifest in proptest::collection::vec(any::<u8>(), 0..300),
        records in proptest::collection::vec(any::<u8>(), 0..600),
        header in any::<bool>(),
    ) {
        let dir = scratch("arbitrary");
        std::fs::write(dir.join("manifest.json"), &manifest).unwrap();
        let mut body = Vec::new();
        if header {
            body.extend_from_slice(odm_uptake::bundle::RECORDS_HEADER.as_bytes());
            body.push(b'\n');
        }
        body.extend_from_slice(&records);
        std::fs::write(dir.join("records.csv"), &body).unwrap();
        let check = check_bundle(&dir, None);
        prop_assert!(check.has_errors());
    }
}

/// Filler that can never join an identifier: no letters or digits.
fn filler() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        any::<u8>().prop_filter("not a letter or digit", |b| !b.is_ascii_alphanumeric()),
        0..40,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The scanner reads any file: arbitrary bytes never panic it, and
    /// every finding points inside the data.
    #[test]
    fn the_identifier_scanner_takes_any_bytes(
        data in proptest::collection::vec(any::<u8>(), 0..2000),
    ) {
        for f in odm_uptake::scan::scan_for_identifiers(&data) {
            prop_assert!(f.offset < data.len());
        }
        if let Some(r) = odm_uptake::scan::manifest_export_time(&data) {
            prop_assert!(r.start <= r.end && r.end <= data.len());
        }
    }

    /// A birth date planted between bytes that cannot join it is found
    /// where it was planted, in each written form, with or without a time.
    #[test]
    fn a_planted_date_is_found_where_it_stands(
        before in filler(),
        after in filler(),
        (y, m, d) in (1900u32..2100, 1u32..=12, 1u32..=28),
        form in 0usize..6,
    ) {
        let text = match form {
            0 => format!("{y}-{m:02}-{d:02}"),
            1 => format!("{y}-{m:02}-{d:02}T{:02}:00", d % 24),
            2 => format!("{d:02}/{m:02}/{y}"),
            3 => format!("{d}.{m}.{y}"),
            4 => format!("{d}-{m:02}-{y}"),
            _ => format!("{d} {} {y}", ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"][m as usize - 1]),
        };
        let mut data = before.clone();
        data.extend_from_slice(text.as_bytes());
        data.extend_from_slice(&after);
        let found = odm_uptake::scan::scan_for_identifiers(&data);
        prop_assert!(
            found.iter().any(|f| f.kind == odm_uptake::scan::IdentifierKind::FullDate
                && f.offset == before.len()),
            "{} not found in {:?}", text, found
        );
    }
}

/// Lines of text made mostly of register-like or denominator-like values.
fn csv_text(header: &'static str, cells: BoxedStrategy<String>) -> impl Strategy<Value = String> {
    (
        prop_oneof![Just(header.to_owned()), "[ -~]{0,30}"],
        proptest::collection::vec(prop_oneof![4 => cells, 1 => any::<String>()], 0..6),
        prop_oneof![Just("\n"), Just("\r\n")],
    )
        .prop_map(|(h, lines, eol)| {
            let mut text = h;
            for l in lines {
                text.push_str(eol);
                text.push_str(&l);
            }
            text
        })
}

fn hex64() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9a-f]{64}",
        "[0-9a-fA-F]{62,66}",
        any::<[u8; 32]>().prop_map(|b| odm_uptake::record::hex_from_bytes(&b))
    ]
}

fn register_line() -> BoxedStrategy<String> {
    (
        prop_oneof![
            any::<[u8; 16]>().prop_map(|b| RandomId::from_random_bytes(b).to_string()),
            "[0-9a-f-]{36}",
        ],
        hex64(),
        prop_oneof![Just(","), Just(";"), Just(",,")],
    )
        .prop_map(|(d, k, sep)| format!("{d}{sep}{k}"))
        .boxed()
}

fn denominator_line() -> BoxedStrategy<String> {
    (
        prop_oneof![Just("RH8"), Just("RH802"), Just("rh8"), Just("RTH")],
        prop_oneof![
            Just("2026-01"),
            Just("2026-02"),
            Just("2026-13"),
            Just("26-01")
        ],
        prop_oneof![Just("colorectal"), Just("vascular"), Just("Vascular")],
        prop_oneof![
            count().prop_map(|n| n.to_string()),
            Just("18446744073709551616".to_owned()),
            Just("-1".to_owned()),
            Just(String::new()),
        ],
    )
        .prop_map(|(o, p, c, n)| format!("{o},{p},{c},{n}"))
        .boxed()
}

/// A count, small or near `u64::MAX`.
fn count() -> impl Strategy<Value = u64> {
    prop_oneof![0u64..1000, u64::MAX - 10..=u64::MAX]
}

/// Valid denominator rows: (org, period, category, count).
fn denominator_rows() -> impl Strategy<Value = Vec<(&'static str, &'static str, &'static str, u64)>>
{
    proptest::collection::vec(
        (
            prop_oneof![Just("RH8"), Just("RH802"), Just("RTH")],
            prop_oneof![Just("2026-01"), Just("2026-02"), Just("2027-12")],
            prop_oneof![Just("colorectal"), Just("vascular"), Just("not_recorded")],
            count(),
        ),
        0..8,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_key_register_is_refused_at_a_line_it_has_or_holds_every_key_it_lists(
        text in csv_text("device,public_key", register_line()),
    ) {
        use odm_uptake::verify::KeyRegister;
        let lines = text.lines().count().max(1) as u64;
        match KeyRegister::parse(&text) {
            Ok(register) => {
                for line in text.lines().skip(1).map(|l| l.trim_end_matches('\r')) {
                    if line.is_empty() {
                        continue;
                    }
                    let (device, key) = line.split_once(',').unwrap();
                    let device = RandomId::parse(device, "device").unwrap();
                    let key = odm_uptake::record::bytes_from_hex::<32>(key).unwrap();
                    prop_assert_eq!(register.key_of(&device), Some(&key));
                }
            }
            Err((line, what)) => {
                prop_assert!((1..=lines).contains(&line), "line {} of {}", line, lines);
                prop_assert!(!what.is_empty());
            }
        }
    }

    #[test]
    fn a_denominator_file_is_refused_at_a_line_it_has(
        text in csv_text("org,period,category,eligible", denominator_line()),
    ) {
        let lines = text.lines().count().max(1) as u64;
        if let Err((line, what)) = odm_uptake::report::Denominators::parse(&text) {
            prop_assert!((1..=lines).contains(&line), "line {} of {}", line, lines);
            prop_assert!(!what.is_empty());
        }
    }

    #[test]
    fn eligible_counts_sum_per_row_saturating_never_overflowing(
        rows in denominator_rows(),
        by in prop_oneof![Just("org"), Just("period"), Just("category"), Just("org,period")],
    ) {
        use odm_uptake::report::{Denominators, Dims, aggregate};
        let mut text = String::from("org,period,category,eligible\n");
        for (o, p, c, n) in &rows {
            text.push_str(&format!("{o},{p},{c},{n}\n"));
        }
        let den = Denominators::parse(&text).unwrap();
        let dims = Dims::parse(by).unwrap();
        // Expected: per row key, the saturating sum of the matching rows.
        let mut expected: std::collections::BTreeMap<(String, String, String), u64> =
            Default::default();
        for (o, p, c, n) in &rows {
            let key = (
                if dims.org { o.to_string() } else { "all".into() },
                if dims.period { p.to_string() } else { "all".into() },
                if dims.category { c.to_string() } else { "all".into() },
            );
            let s = expected.entry(key).or_default();
            *s = s.saturating_add(*n);
        }
        expected.retain(|_, n| *n > 0);
        let (got, missing) = aggregate(&std::collections::HashMap::new(), &den, dims);
        prop_assert!(missing.is_empty());
        let got: std::collections::BTreeMap<(String, String, String), u64> = got
            .into_iter()
            .map(|r| ((r.org, r.period, r.category), r.eligible.unwrap_or(0)))
            .collect();
        prop_assert_eq!(got, expected);
    }
}
