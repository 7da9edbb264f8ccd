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
