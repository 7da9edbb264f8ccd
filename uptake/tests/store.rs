//! The store: append-only, chained, crash-safe, opt-out.

use std::path::{Path, PathBuf};

use odm_uptake::store::StoreError;
use odm_uptake::{
    AgeBand, CaseHandle, Category, Eligibility, OdsCode, Period, Settings, Software, UptakeStore,
};

fn fresh_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("uptake-store-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

const ON: Settings = Settings {
    participation: true,
};

fn init_store(dir: &Path) -> PathBuf {
    let db = dir.join("uptake.sqlite");
    let line = UptakeStore::init(
        &db,
        OdsCode::parse("RH802").unwrap(),
        &dir.join("device.key"),
        ON,
    )
    .unwrap()
    .unwrap();
    assert_eq!(line.len(), 36 + 1 + 64);
    db
}

/// Closes `n` cases with distinct contents.
fn close_cases(store: &mut UptakeStore, n: u32) {
    for i in 0..n {
        let case = store
            .open_case(
                OdsCode::parse("RH802").unwrap(),
                Period::parse("2026-03").unwrap(),
                2,
                &Software::parse("odm 0.3.1").unwrap(),
            )
            .unwrap();
        store.add_monitored_s(&case, 3600 + i * 900).unwrap();
        store.add_beats(&case, 900, 1000).unwrap();
        store.close_case(case).unwrap().unwrap();
    }
}

#[test]
fn a_case_accumulates_and_closes_into_a_rounded_record() {
    let dir = fresh_dir("accumulate");
    let db = init_store(&dir);
    let mut store = UptakeStore::open(&db, ON).unwrap();
    let case = store
        .open_case(
            OdsCode::parse("RH802").unwrap(),
            Period::parse("2026-03").unwrap(),
            2,
            &Software::parse("odm 0.3.1").unwrap(),
        )
        .unwrap();
    store.set_category(&case, Category::Colorectal).unwrap();
    store.set_eligibility(&case, Eligibility::Major).unwrap();
    store
        .set_age_band(&case, AgeBand::from_age_years(67))
        .unwrap();
    store.add_bolus(&case, 250).unwrap();
    store.add_bolus(&case, 250).unwrap();
    store.add_bolus(&case, 230).unwrap();
    store.add_beats(&case, 5000, 5300).unwrap();
    store.add_beats(&case, 400, 700).unwrap();
    // 2 h 10 min → nearest 15 min is 2 h 15 min = 135.
    for _ in 0..13 {
        store.add_monitored_s(&case, 600).unwrap();
    }
    let rec = store.close_case(case).unwrap().unwrap().record;
    let mut line = String::new();
    rec.write_fields(',', &mut line);
    let fields: Vec<&str> = line.split(',').collect();
    assert_eq!(
        &fields[2..],
        &[
            "RH802",
            "2026-03",
            "colorectal",
            "major",
            "60-69",
            "135",
            "3",
            "750",
            "0.9",
            "2",
            "odm 0.3.1"
        ]
    );
    assert_eq!(store.verify_chain().unwrap(), 1);
}

/// One closed case, then a second opened (RH8, 2026-04) and updated by
/// `update`, and the monitor dies: the handle is forgotten, never closed.
fn crash_with_a_case_open(db: &Path, update: impl FnOnce(&mut UptakeStore, &CaseHandle)) {
    let mut store = UptakeStore::open(db, ON).unwrap();
    close_cases(&mut store, 1);
    let case = store
        .open_case(
            OdsCode::parse("RH8").unwrap(),
            Period::parse("2026-04").unwrap(),
            1,
            &Software::parse("odm 0.3.1").unwrap(),
        )
        .unwrap();
    update(&mut store, &case);
    let _never_closed = case;
    std::mem::forget(store);
}

#[test]
fn a_case_open_at_a_crash_is_closed_on_the_next_start() {
    let dir = fresh_dir("crash");
    let db = init_store(&dir);
    crash_with_a_case_open(&db, |store, case| {
        store.set_category(case, Category::HipFracture).unwrap();
        store.add_monitored_s(case, 2700).unwrap();
    });
    let store = UptakeStore::open(&db, ON).unwrap();
    assert_eq!(store.recovered_cases(), 1);
    let mut records = Vec::new();
    assert_eq!(
        store
            .for_each_record(None, |r| {
                records.push(r.record.clone());
                Ok(())
            })
            .unwrap(),
        2
    );
    let last = &records[1];
    assert_eq!(last.org.as_str(), "RH8");
    assert_eq!(last.category, Category::HipFracture);
    assert_eq!(last.minutes.get(), 45);
    // Opening again finds nothing left to recover.
    drop(store);
    assert_eq!(UptakeStore::open(&db, ON).unwrap().recovered_cases(), 0);
}

fn raw(db: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(db).unwrap()
}

#[test]
fn a_damaged_open_case_is_dropped_and_the_store_still_counts() {
    let dir = fresh_dir("damaged-open-case");
    let db = init_store(&dir);
    crash_with_a_case_open(&db, |_, _| {});
    // The open row is damaged behind the store's back: it can never be a
    // record. Before, every later opening failed on it (no more counting).
    raw(&db)
        .execute("UPDATE open_case SET category = 'Jane Doe'", [])
        .unwrap();
    let mut store = UptakeStore::open(&db, ON).unwrap();
    assert_eq!((store.recovered_cases(), store.discarded_cases()), (0, 1));
    close_cases(&mut store, 1);
    assert_eq!(store.for_each_record(None, |_| Ok(())).unwrap(), 2);
    assert_eq!(store.verify_chain().unwrap(), 2);
    drop(store);
    let again = UptakeStore::open(&db, ON).unwrap();
    assert_eq!((again.recovered_cases(), again.discarded_cases()), (0, 0));
}

/// An open case's value of the wrong SQL type, or a software field that
/// is not plainly a name and version (an identifier written into the row
/// behind the store's back), is dropped like any damaged open case: never
/// a record, never in the way of the next opening.
#[test]
fn an_open_case_with_a_wrong_type_or_free_text_is_dropped() {
    for (name, tamper) in [
        ("type", "UPDATE open_case SET monitored_s = 'lots'"),
        (
            "software",
            "UPDATE open_case SET software = 'Jane Smith 943 476 5919'",
        ),
        (
            "software-nhs",
            "UPDATE open_case SET software = 'odm 9434765919'",
        ),
        (
            "software-date",
            "UPDATE open_case SET software = 'odm 14.03.1957'",
        ),
    ] {
        let dir = fresh_dir(&format!("open-case-{name}"));
        let db = init_store(&dir);
        crash_with_a_case_open(&db, |_, _| {});
        raw(&db).execute(tamper, []).unwrap();
        let store = UptakeStore::open(&db, ON).unwrap();
        assert_eq!(
            (store.recovered_cases(), store.discarded_cases()),
            (0, 1),
            "{name}"
        );
        let mut software = Vec::new();
        store
            .for_each_record(None, |r| {
                software.push(r.record.software.as_str().to_owned());
                Ok(())
            })
            .unwrap();
        assert_eq!(software, ["odm 0.3.1"], "{name}");
    }
}

/// A damaged chain head is not the open case's fault: the opening fails
/// and the case stays, to be closed once the store is repaired.
#[test]
fn a_damaged_chain_head_keeps_the_open_case() {
    let dir = fresh_dir("head-type");
    let db = init_store(&dir);
    crash_with_a_case_open(&db, |_, _| {});
    raw(&db)
        .execute("UPDATE chain_head SET records = 'x'", [])
        .unwrap();
    assert!(UptakeStore::open(&db, ON).is_err());
    let open: i64 = raw(&db)
        .query_row("SELECT COUNT(*) FROM open_case", [], |r| r.get(0))
        .unwrap();
    assert_eq!(open, 1);
}

/// The library refuses to open a case whose software is not plainly a
/// name and version, though the spec's form would take it.
#[test]
fn a_case_is_not_opened_with_free_text_for_software() {
    let dir = fresh_dir("software-free-text");
    let db = init_store(&dir);
    let mut store = UptakeStore::open(&db, ON).unwrap();
    for text in [
        "Jane Smith 9434765919",
        "odm 943 476 5919",
        "odm",
        "MRN K123456",
    ] {
        let software = Software::parse(text).unwrap();
        let refused = store.open_case(
            OdsCode::parse("RH802").unwrap(),
            Period::parse("2026-03").unwrap(),
            2,
            &software,
        );
        assert!(
            matches!(refused, Err(StoreError::BadField { .. })),
            "{text}: {refused:?}"
        );
    }
}

/// A bundle may continue an export made before any case: `--after` the
/// chain's start (64 zeros) is every record.
#[test]
fn records_after_the_chains_start_are_all_of_them() {
    let dir = fresh_dir("after-genesis");
    let db = init_store(&dir);
    let mut store = UptakeStore::open(&db, ON).unwrap();
    let after_start = |store: &UptakeStore| {
        let mut seen = 0;
        store
            .for_each_record(Some(odm_uptake::ChainHash::GENESIS), |_| {
                seen += 1;
                Ok(())
            })
            .map(|_| seen)
    };
    assert_eq!(after_start(&store).unwrap(), 0);
    close_cases(&mut store, 3);
    assert_eq!(after_start(&store).unwrap(), 3);
}

/// A case the monitor closes while an export reads the chain is not taken
/// for tampering: the records and the signed head are read from one
/// snapshot (the new record waits for the next export).
#[test]
fn a_case_closed_during_an_export_is_not_taken_for_tampering() {
    let dir = fresh_dir("snapshot");
    let db = init_store(&dir);
    let mut monitor = UptakeStore::open(&db, ON).unwrap();
    close_cases(&mut monitor, 2);
    let export = UptakeStore::open(&db, ON).unwrap();
    let mut seen = 0;
    let counted = export
        .for_each_record(None, |_| {
            if seen == 0 {
                close_cases(&mut monitor, 1);
            }
            seen += 1;
            Ok(())
        })
        .unwrap();
    assert_eq!((counted, seen), (2, 2));
    assert_eq!(export.verify_chain().unwrap(), 3);
}

#[test]
fn updates_and_deletes_of_closed_records_are_refused() {
    let dir = fresh_dir("append-only");
    let db = init_store(&dir);
    close_cases(&mut UptakeStore::open(&db, ON).unwrap(), 2);
    let conn = raw(&db);
    assert!(conn.execute("UPDATE record SET minutes = 15", []).is_err());
    assert!(
        conn.execute("DELETE FROM record WHERE seq = 1", [])
            .is_err()
    );
    assert_eq!(
        UptakeStore::open(&db, ON).unwrap().verify_chain().unwrap(),
        2
    );
}

/// Tampers behind SQLite's back (triggers dropped) and expects the chain
/// check to fail.
fn tampered(name: &str, tamper: &str) -> StoreError {
    let dir = fresh_dir(name);
    let db = init_store(&dir);
    close_cases(&mut UptakeStore::open(&db, ON).unwrap(), 4);
    raw(&db)
        .execute_batch(&format!(
            "DROP TRIGGER record_no_update; DROP TRIGGER record_no_delete; {tamper}"
        ))
        .unwrap();
    let store = UptakeStore::open(&db, ON).unwrap();
    store.verify_chain().unwrap_err()
}

#[test]
fn an_edited_field_breaks_the_chain() {
    let e = tampered(
        "edit",
        "UPDATE record SET minutes = minutes + 15 WHERE seq = 2;",
    );
    assert!(matches!(e, StoreError::ChainBroken { seq: 2, .. }), "{e}");
}

#[test]
fn a_deleted_record_breaks_the_chain() {
    let e = tampered("delete-middle", "DELETE FROM record WHERE seq = 2;");
    assert!(matches!(e, StoreError::ChainBroken { seq: 3, .. }), "{e}");
}

#[test]
fn a_deleted_last_record_is_found_by_the_signed_head() {
    let e = tampered("delete-last", "DELETE FROM record WHERE seq = 4;");
    assert!(matches!(e, StoreError::ChainBroken { seq: 0, .. }), "{e}");
}

#[test]
fn reordered_records_break_the_chain() {
    let e = tampered(
        "reorder",
        "UPDATE record SET seq = 100 WHERE seq = 2; UPDATE record SET seq = 2 WHERE seq = 3;
         UPDATE record SET seq = 3 WHERE seq = 100;",
    );
    assert!(matches!(e, StoreError::ChainBroken { seq: 2, .. }), "{e}");
}

#[test]
fn an_inserted_record_breaks_the_chain() {
    // The intruder even hashes the inserted record correctly after record
    // 2; record 3 then no longer links to the record before it.
    let dir = fresh_dir("insert");
    let db = init_store(&dir);
    let store = UptakeStore::open(&db, ON).unwrap();
    let mut store = store;
    close_cases(&mut store, 4);
    let mut second = None;
    store
        .for_each_record(None, |r| {
            if second.is_none() && r.prev_hash != odm_uptake::ChainHash::GENESIS {
                second = Some(r.clone());
            }
            Ok(())
        })
        .unwrap();
    drop(store);
    let second = second.unwrap();
    let mut forged = second.record.clone();
    forged.record_id = odm_uptake::RandomId::new_random();
    forged.minutes = odm_uptake::Minutes::from_seconds(9000);
    let forged_hash = forged.chain_hash(&second.hash);
    let conn = raw(&db);
    conn.execute_batch("DROP TRIGGER record_no_update; UPDATE record SET seq = seq * 10;")
        .unwrap();
    conn.execute(
        "INSERT INTO record SELECT 25, ?1, device, org, period, category, eligibility, age_band,
             150, boluses, bolus_ml, accepted_fraction, probe_model, software, ?2, ?3
         FROM record WHERE seq = 20",
        [
            forged.record_id.to_string(),
            second.hash.to_hex(),
            forged_hash.to_hex(),
        ],
    )
    .unwrap();
    drop(conn);
    let e = UptakeStore::open(&db, ON)
        .unwrap()
        .verify_chain()
        .unwrap_err();
    assert!(matches!(e, StoreError::ChainBroken { seq: 30, .. }), "{e}");
}

#[test]
fn participation_off_writes_nothing() {
    let dir = fresh_dir("opt-out");
    let off = Settings::from_opt_out_value("off");
    assert!(!off.participation);
    assert!(Settings::from_opt_out_value("").participation);
    let db = dir.join("uptake.sqlite");
    assert_eq!(
        UptakeStore::init(&db, OdsCode::parse("RH8").unwrap(), &dir.join("k"), off).unwrap(),
        None
    );
    let mut store = UptakeStore::open(&db, off).unwrap();
    assert!(!store.is_active());
    let case = store
        .open_case(
            OdsCode::parse("RH8").unwrap(),
            Period::parse("2026-03").unwrap(),
            1,
            &Software::this_build(),
        )
        .unwrap();
    store.add_bolus(&case, 250).unwrap();
    assert_eq!(store.close_case(case).unwrap(), None);
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        0,
        "no file was created"
    );
}

#[test]
fn a_newer_schema_is_refused_rather_than_misread() {
    let dir = fresh_dir("schema");
    let db = init_store(&dir);
    raw(&db).pragma_update(None, "user_version", 99).unwrap();
    assert!(matches!(
        UptakeStore::open(&db, ON),
        Err(StoreError::NewerSchema { found: 99, .. })
    ));
}

#[test]
fn an_uninitialised_store_is_reported_not_created() {
    let dir = fresh_dir("uninit");
    let db = dir.join("missing.sqlite");
    assert!(matches!(
        UptakeStore::open(&db, ON),
        Err(StoreError::NotInitialised(_))
    ));
    assert!(!db.exists());
}

#[test]
fn open_or_init_sets_up_a_new_store_once() {
    let dir = fresh_dir("open-or-init");
    let db = dir.join("uptake.sqlite");
    let org = OdsCode::parse("RTH").unwrap();
    let key = dir.join("device.key");
    let first = UptakeStore::open_or_init(&db, org, &key, ON).unwrap();
    let device = first.device().unwrap();
    assert_eq!(first.org(), Some(org));
    drop(first);
    let again = UptakeStore::open_or_init(&db, org, &key, ON).unwrap();
    assert_eq!(
        again.device(),
        Some(device),
        "the pseudonym is made once, at install"
    );
}

#[test]
fn the_store_can_move_to_a_background_thread() {
    fn assert_send<T: Send>() {}
    assert_send::<UptakeStore>();
    assert_send::<odm_uptake::CaseHandle>();
}

#[test]
fn export_refuses_a_tampered_store_and_leaves_nothing_behind() {
    let dir = fresh_dir("export-tampered");
    let db = init_store(&dir);
    close_cases(&mut UptakeStore::open(&db, ON).unwrap(), 3);
    raw(&db)
        .execute_batch(
            "DROP TRIGGER record_no_update; UPDATE record SET boluses = 9 WHERE seq = 2;",
        )
        .unwrap();
    let store = UptakeStore::open(&db, ON).unwrap();
    let out = dir.join("bundle");
    let e = odm_uptake::bundle::export_bundle(&store, &out, None).unwrap_err();
    assert!(
        e.to_string().contains("hash chain broken at record 2"),
        "{e}"
    );
    assert!(!out.join("records.csv").exists());
    assert!(!out.join("manifest.json").exists());
}

#[test]
fn a_cut_off_chain_with_its_head_rewritten_is_found_by_the_signature() {
    // An intruder without the device key deletes the last record and makes
    // the head agree with what is left: only the head's signature tells.
    let e = tampered(
        "cut-and-rehead",
        "DELETE FROM record WHERE seq = 4; \
         UPDATE chain_head SET records = 3, \
             head_hash = (SELECT hash FROM record WHERE seq = 3);",
    );
    assert!(matches!(e, StoreError::ChainBroken { seq: 0, .. }), "{e}");
    assert!(e.to_string().contains("signature does not verify"), "{e}");
}

#[test]
fn a_head_whose_count_alone_was_changed_is_found() {
    for (name, edit) in [
        ("head-count", "UPDATE chain_head SET records = records + 1;"),
        (
            "head-hash",
            "UPDATE chain_head SET head_hash = (SELECT hash FROM record WHERE seq = 3);",
        ),
    ] {
        let e = tampered(name, edit);
        assert!(
            e.to_string().contains("behind the store's back (head)"),
            "{name}: {e}"
        );
    }
}

/// The records `for_each_record` visits after `after`, with the count it
/// returns (the whole chain's).
fn chain_after(
    store: &UptakeStore,
    after: Option<odm_uptake::ChainHash>,
) -> (u64, Vec<odm_uptake::ChainedRecord>) {
    let mut seen = Vec::new();
    let n = store
        .for_each_record(after, |c| {
            seen.push(c.clone());
            Ok(())
        })
        .unwrap();
    (n, seen)
}

#[test]
fn records_after_a_hash_in_the_middle_are_exactly_the_later_ones() {
    let dir = fresh_dir("after-middle");
    let db = init_store(&dir);
    let mut store = UptakeStore::open(&db, ON).unwrap();
    close_cases(&mut store, 4);
    let (n, all) = chain_after(&store, None);
    assert_eq!((n, all.len()), (4, 4));
    let (n, later) = chain_after(&store, Some(all[1].hash));
    assert_eq!(n, 4, "the whole chain is still checked and counted");
    assert_eq!(later, all[2..]);
}

#[test]
fn appended_records_are_counted_and_chained_after_the_closed_cases() {
    let dir = fresh_dir("append");
    let db = init_store(&dir);
    let mut store = UptakeStore::open(&db, ON).unwrap();
    close_cases(&mut store, 2);
    let device = store.device().unwrap();
    let org = store.org().unwrap();
    let synthetic: Vec<_> = odm_uptake::demo::SyntheticRecords::new(
        5,
        device,
        &[org],
        Period::parse("2026-01").unwrap(),
        3,
    )
    .take(7)
    .collect();
    assert_eq!(store.append_records(synthetic.clone()).unwrap(), 7);
    assert_eq!(store.verify_chain().unwrap(), 9);
    let (_, chain) = chain_after(&store, None);
    let tail: Vec<_> = chain[2..].iter().map(|c| c.record.clone()).collect();
    assert_eq!(tail, synthetic);
}

#[test]
fn a_key_of_another_device_or_another_key_for_this_one_is_refused() {
    let dir = fresh_dir("wrong-key");
    let db = init_store(&dir);
    let store = UptakeStore::open(&db, ON).unwrap();
    assert!(store.is_active());
    let device = store.device().unwrap();
    drop(store);
    let others = [
        // Another monitor's key file.
        odm_uptake::DeviceIdentity::generate(),
        // This device's pseudonym with a different secret (a key file
        // replaced by hand): as wrong as another device's.
        odm_uptake::DeviceIdentity::from_secret(device, [7; 32]),
    ];
    for (k, other) in others.iter().enumerate() {
        let path = dir.join(format!("other-{k}.key"));
        other.save(&path).unwrap();
        let e = UptakeStore::open_with_key(&db, Some(&path), ON).err();
        assert!(
            e.as_ref()
                .is_some_and(|e| e.to_string().contains("another device")),
            "key {k}: {e:?}"
        );
    }
    // The right key given explicitly opens it.
    let store = UptakeStore::open_with_key(&db, Some(&dir.join("device.key")), ON).unwrap();
    assert_eq!(store.device(), Some(device));
}
