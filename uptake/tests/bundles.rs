//! Bundles: golden output, and every kind of tampering the spec's
//! verification must catch.

use std::path::{Path, PathBuf};

use odm_uptake::bundle::{BundleWriter, signing_string};
use odm_uptake::demo::SyntheticRecords;
use odm_uptake::verify::{KeyRegister, Severity, Verification, verify_bundles};
use odm_uptake::{ChainHash, DeviceIdentity, OdsCode, Period, RandomId, Record};

fn fresh_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("uptake-bundles-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn exported() -> time::OffsetDateTime {
    time::macros::datetime!(2026-04-01 09:00:00 UTC)
}

fn identity(seed: u8) -> DeviceIdentity {
    DeviceIdentity::from_secret(RandomId::from_random_bytes([seed; 16]), [seed; 32])
}

fn records(id: &DeviceIdentity, n: usize, seed: u64) -> Vec<Record> {
    let orgs = [OdsCode::parse("RH8").unwrap()];
    SyntheticRecords::new(seed, id.device, &orgs, Period::parse("2026-01").unwrap(), 3)
        .take(n)
        .collect()
}

fn write_bundle(dir: &Path, id: &DeviceIdentity, recs: &[Record]) -> PathBuf {
    let mut w =
        BundleWriter::create(dir, id, OdsCode::parse("RH8").unwrap(), ChainHash::GENESIS).unwrap();
    for r in recs {
        w.push(r).unwrap();
    }
    w.finish(exported()).unwrap();
    dir.to_owned()
}

fn verify(dirs: &[PathBuf], register: Option<&KeyRegister>) -> Verification {
    verify_bundles(dirs, register, &mut |_, _| {})
}

/// Output lines of all bundles, without the bundle path prefix.
fn problems(v: &Verification) -> Vec<String> {
    v.bundles
        .iter()
        .flat_map(|b| {
            b.problems
                .iter()
                .map(|p| format!("line {}: {}: {}", p.line, p.severity, p.what))
        })
        .collect()
}

fn read_lines(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("records.csv"))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn write_lines(dir: &Path, lines: &[String]) {
    std::fs::write(dir.join("records.csv"), lines.join("\n") + "\n").unwrap();
}

fn manifest(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap()
}

fn set_manifest(dir: &Path, key: &str, value: serde_json::Value) {
    let mut m = manifest(dir);
    m[key] = value;
    std::fs::write(dir.join("manifest.json"), m.to_string()).unwrap();
}

/// Replaces field `index` of record line `line` (1-based file line).
fn edit_field(dir: &Path, line: usize, index: usize, value: &str) {
    let mut lines = read_lines(dir);
    let mut v: Vec<String> = lines[line - 1].split(',').map(str::to_owned).collect();
    v[index] = value.to_owned();
    lines[line - 1] = v.join(",");
    write_lines(dir, &lines);
}

/// Recomputes every hash of records.csv and the manifest's head, as an
/// intruder with the spec but without the device key would.
fn rehash_without_resigning(dir: &Path) {
    let lines = read_lines(dir);
    let mut out = vec![lines[0].clone()];
    let mut prev = ChainHash::GENESIS;
    for l in &lines[1..] {
        let v: Vec<&str> = l.split(',').collect();
        let fields: [&str; 13] = v[..13].try_into().unwrap();
        let hash = odm_uptake::record::chain_hash_of_fields(&prev, &fields.join("|"));
        out.push(format!("{},{},{}", fields.join(","), prev, hash));
        prev = hash;
    }
    write_lines(dir, &out);
    set_manifest(dir, "head_hash", prev.to_hex().into());
    set_manifest(dir, "records", (lines.len() - 1).into());
}

#[test]
fn golden_bundle_matches_independently_computed_hash_and_signature() {
    // Hash: sha256sum of the pipe-joined line (see record.rs). Signature:
    // Ed25519 (RFC 8032) by secret key 32 × 0x07 over the spec's signing
    // string, computed with Python's `cryptography` package.
    let dir = fresh_dir("golden");
    let id = DeviceIdentity::from_secret(
        RandomId::parse("9d8e7f60-5a4b-4c3d-8e2f-1a0b9c8d7e6f", "device").unwrap(),
        [7; 32],
    );
    let line = "3f2c9a4e-8b1d-4c7a-9e5f-0a1b2c3d4e5f,9d8e7f60-5a4b-4c3d-8e2f-1a0b9c8d7e6f,RH802,2026-03,colorectal,major,60-69,135,3,750,0.9,2,odm 0.3.1";
    let fields: Vec<&str> = line.split(',').collect();
    let record = Record::from_fields(&fields[..].try_into().unwrap()).unwrap();
    let mut w = BundleWriter::create(
        &dir,
        &id,
        OdsCode::parse("RH802").unwrap(),
        ChainHash::GENESIS,
    )
    .unwrap();
    w.push(&record).unwrap();
    w.finish(exported()).unwrap();

    let head = "e8c0c07a8b5d1918b2255f82f55fae9da1e45b643e1e5b3628172331e9cf3807";
    let zeros = "0".repeat(64);
    assert_eq!(
        std::fs::read_to_string(dir.join("records.csv")).unwrap(),
        format!(
            "record_id,device,org,period,category,eligibility,age_band,minutes,boluses,bolus_ml,accepted_fraction,probe_model,software,prev_hash,hash\n{line},{zeros},{head}\n"
        )
    );
    assert_eq!(
        signing_string(
            "9d8e7f60-5a4b-4c3d-8e2f-1a0b9c8d7e6f",
            "RH802",
            1,
            &zeros,
            head
        ),
        format!("odm-uptake-bundle|1|9d8e7f60-5a4b-4c3d-8e2f-1a0b9c8d7e6f|RH802|1|{zeros}|{head}")
    );
    let m = manifest(&dir);
    assert_eq!(m["format"], "odm-uptake-bundle");
    assert_eq!(m["version"], 1);
    assert_eq!(m["records"], 1);
    assert_eq!(m["org"], "RH802");
    assert_eq!(m["first_prev_hash"], zeros.as_str());
    assert_eq!(m["head_hash"], head);
    assert_eq!(m["exported_utc"], "2026-04-01T09:00:00Z");
    assert_eq!(
        m["public_key"],
        "ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c"
    );
    assert_eq!(
        m["signature"],
        "7d26bd9503d5dd82d3e35f7c04c8d3a004c7e67bb6d9ec7d4cec54b2959292ea295474433f716276f4dde4c9c9a611debd052d81f4f9a47e21dc76688b68410e"
    );
    assert!(problems(&verify(&[dir], None)).is_empty());
}

#[test]
fn an_intact_bundle_verifies_with_its_registered_key() {
    let dir = fresh_dir("intact");
    let id = identity(1);
    let b = write_bundle(&dir.join("b"), &id, &records(&id, 50, 1));
    let register =
        KeyRegister::parse(&format!("device,public_key\n{}\n", id.register_line())).unwrap();
    let v = verify(&[b], Some(&register));
    assert!(problems(&v).is_empty(), "{:?}", problems(&v));
    assert_eq!(v.counted().count(), 50);
}

fn tampered(name: &str, tamper: impl FnOnce(&Path)) -> Vec<String> {
    let dir = fresh_dir(name);
    let id = identity(2);
    let b = write_bundle(&dir.join("b"), &id, &records(&id, 6, 2));
    tamper(&b);
    let v = verify(&[b], None);
    assert!(v.has_errors());
    assert_eq!(
        v.counted().count(),
        0,
        "a damaged bundle counts for nothing"
    );
    problems(&v)
}

#[test]
fn an_edited_field_is_detected() {
    let p = tampered("edit", |b| edit_field(b, 4, 7, "240"));
    assert!(
        p.contains(&"line 4: error: hash does not recompute from the values and prev_hash".into()),
        "{p:?}"
    );
}

#[test]
fn a_value_outside_the_vocabulary_is_detected_without_echoing_it() {
    let p = tampered("vocab", |b| edit_field(b, 3, 4, "1957-03-14"));
    assert!(
        p.iter()
            .any(|l| l.starts_with("line 3: error: field category")),
        "{p:?}"
    );
    assert!(p.iter().all(|l| !l.contains("1957")), "{p:?}");
}

#[test]
fn a_deleted_row_is_detected() {
    let p = tampered("delete", |b| {
        let mut lines = read_lines(b);
        lines.remove(3);
        write_lines(b, &lines);
    });
    assert!(
        p.contains(&"line 4: error: prev_hash is not the previous record's hash".into()),
        "{p:?}"
    );
    assert!(
        p.contains(&"line 0: error: manifest: records is 6 but records.csv holds 5".into()),
        "{p:?}"
    );
}

#[test]
fn an_inserted_row_is_detected() {
    let p = tampered("insert", |b| {
        let mut lines = read_lines(b);
        let copy = lines[2].replacen(&lines[2][..36], "0f0f0f0f-0f0f-4f0f-8f0f-0f0f0f0f0f0f", 1);
        lines.insert(3, copy);
        write_lines(b, &lines);
    });
    assert!(
        p.contains(&"line 4: error: hash does not recompute from the values and prev_hash".into()),
        "{p:?}"
    );
    assert!(
        p.contains(&"line 4: error: prev_hash is not the previous record's hash".into()),
        "{p:?}"
    );
    assert!(
        p.contains(&"line 0: error: manifest: records is 6 but records.csv holds 7".into()),
        "{p:?}"
    );
}

#[test]
fn reordered_rows_are_detected() {
    let p = tampered("reorder", |b| {
        let mut lines = read_lines(b);
        lines.swap(2, 3);
        write_lines(b, &lines);
    });
    assert!(
        p.contains(&"line 3: error: prev_hash is not the previous record's hash".into()),
        "{p:?}"
    );
}

#[test]
fn an_edited_bundle_rehashed_without_resigning_is_detected() {
    let p = tampered("rehash", |b| {
        edit_field(b, 4, 7, "240");
        rehash_without_resigning(b);
    });
    assert_eq!(
        p,
        ["line 0: error: manifest: signature does not verify with the manifest's public_key"]
    );
}

#[test]
fn manifest_count_and_head_mismatches_are_detected() {
    let p = tampered("count", |b| set_manifest(b, "records", 7.into()));
    assert!(
        p.contains(&"line 0: error: manifest: records is 7 but records.csv holds 6".into()),
        "{p:?}"
    );
    let p = tampered("head", |b| {
        set_manifest(b, "head_hash", "ab".repeat(32).into())
    });
    assert!(
        p.contains(&"line 0: error: manifest: head_hash is not the hash of the last record".into()),
        "{p:?}"
    );
    let p = tampered("first", |b| {
        set_manifest(b, "first_prev_hash", "ab".repeat(32).into())
    });
    assert!(
        p.contains(&"line 2: error: prev_hash is not the manifest's first_prev_hash".into()),
        "{p:?}"
    );
    let p = tampered("format", |b| set_manifest(b, "version", 2.into()));
    assert!(
        p.contains(&"line 0: error: manifest: version is not 1".into()),
        "{p:?}"
    );
}

#[test]
fn a_key_other_than_the_registered_one_is_detected() {
    let dir = fresh_dir("wrong-key");
    let genuine = identity(3);
    // An impostor signs with its own key under the genuine device's name.
    let impostor = DeviceIdentity::from_secret(genuine.device, [9; 32]);
    let b = write_bundle(&dir.join("b"), &impostor, &records(&impostor, 5, 3));
    let register =
        KeyRegister::parse(&format!("device,public_key\n{}\n", genuine.register_line())).unwrap();
    assert!(problems(&verify(std::slice::from_ref(&b), None)).is_empty());
    assert_eq!(
        problems(&verify(std::slice::from_ref(&b), Some(&register))),
        ["line 0: error: manifest: public_key is not the key registered for this device"]
    );
    let empty = KeyRegister::parse("device,public_key\n").unwrap();
    assert_eq!(
        problems(&verify(&[b], Some(&empty))),
        ["line 0: error: device is not in the key register"]
    );
}

#[test]
fn the_same_bundle_twice_is_counted_once_with_warnings() {
    let dir = fresh_dir("twice");
    let id = identity(4);
    let b = write_bundle(&dir.join("b"), &id, &records(&id, 3, 4));
    let copy = dir.join("copy");
    std::fs::create_dir_all(&copy).unwrap();
    for f in ["records.csv", "manifest.json"] {
        std::fs::copy(b.join(f), copy.join(f)).unwrap();
    }
    let v = verify(&[b.clone(), copy], None);
    assert!(!v.has_errors());
    assert_eq!(v.counted().count(), 3);
    assert!(v.bundles[0].problems.is_empty());
    let warnings = &v.bundles[1].problems;
    assert_eq!(warnings.len(), 3);
    assert!(warnings.iter().all(|p| p.severity == Severity::Warning));
    assert_eq!(warnings[0].line, 2);
}

#[test]
fn a_conflict_is_an_error_in_every_intact_bundle_holding_a_copy() {
    let dir = fresh_dir("conflict");
    let a = identity(5);
    let b = identity(6);
    let recs_a = records(&a, 4, 5);
    let mut recs_b = records(&b, 4, 6);
    // Device b claims a's third record id with different values.
    recs_b[1].record_id = recs_a[2].record_id;
    let bundle_a = write_bundle(&dir.join("a"), &a, &recs_a);
    let bundle_b = write_bundle(&dir.join("b"), &b, &recs_b);
    let v = verify(&[bundle_a.clone(), bundle_b], None);
    let conflict = "error: record_id is also in another bundle with different values (conflict)";
    assert_eq!(
        problems(&v),
        [format!("line 4: {conflict}"), format!("line 3: {conflict}")]
    );
    assert_eq!(v.counted().count(), 0);

    // A forged copy (bad signature) is set aside first and cannot knock
    // out the genuine bundle.
    let forged = write_bundle(&dir.join("forged"), &b, &recs_b);
    set_manifest(&forged, "signature", "00".repeat(64).into());
    let v = verify(&[bundle_a, forged], None);
    assert!(!v.bundles[0].has_errors(), "{:?}", problems(&v));
    assert!(v.bundles[1].has_errors());
    assert_eq!(v.counted().count(), 4);
}

#[test]
fn a_record_id_repeated_inside_one_bundle_is_an_error() {
    let dir = fresh_dir("repeat");
    let id = identity(7);
    let mut recs = records(&id, 4, 7);
    recs[3].record_id = recs[0].record_id;
    let b = write_bundle(&dir.join("b"), &id, &recs);
    assert_eq!(
        problems(&verify(&[b], None)),
        ["line 5: error: record_id repeats the record on line 2 of this bundle"]
    );
}

#[test]
fn a_bundle_may_continue_an_earlier_one() {
    let dir = fresh_dir("continue");
    let id = identity(8);
    let recs = records(&id, 6, 8);
    let org = OdsCode::parse("RH8").unwrap();
    let mut w = BundleWriter::create(&dir.join("one"), &id, org, ChainHash::GENESIS).unwrap();
    for r in &recs[..3] {
        w.push(r).unwrap();
    }
    let first = w.finish(exported()).unwrap();
    let mut w = BundleWriter::create(&dir.join("two"), &id, org, first.head_hash).unwrap();
    for r in &recs[3..] {
        w.push(r).unwrap();
    }
    w.finish(exported()).unwrap();
    let v = verify(&[dir.join("one"), dir.join("two")], None);
    assert!(problems(&v).is_empty(), "{:?}", problems(&v));
    assert_eq!(v.counted().count(), 6);
}

/// A `records.csv` that cannot be read at all (here a directory) is a
/// problem of the bundle as a whole: line 0.
#[test]
fn an_unreadable_records_file_is_line_0() {
    let dir = fresh_dir("records-dir");
    let id = identity(9);
    let recs = records(&id, 2, 9);
    let b = write_bundle(&dir.join("b"), &id, &recs);
    std::fs::remove_file(b.join("records.csv")).unwrap();
    std::fs::create_dir(b.join("records.csv")).unwrap();
    let p = problems(&verify(&[b], None));
    assert!(
        p.iter()
            .any(|l| l.starts_with("line 0: error: records.csv cannot be read")),
        "{p:?}"
    );
}

#[test]
fn garbage_bundles_are_errors_not_panics() {
    let dir = fresh_dir("garbage");
    let cases: [(&str, &[u8], &[u8]); 5] = [
        ("empty", b"", b""),
        ("not-json", b"{", b"x"),
        ("array", b"[]", b"record_id\n"),
        ("binary", b"{\"format\":1}", &[0xff, 0xfe, 0x00, b'\n', 0x80]),
        ("short", b"{}", b"record_id,device,org,period,category,eligibility,age_band,minutes,boluses,bolus_ml,accepted_fraction,probe_model,software,prev_hash,hash\na,b\n\n"),
    ];
    let mut dirs = Vec::new();
    for (name, m, r) in cases {
        let d = dir.join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("manifest.json"), m).unwrap();
        std::fs::write(d.join("records.csv"), r).unwrap();
        dirs.push(d);
    }
    dirs.push(dir.join("missing"));
    let v = verify(&dirs, None);
    assert!(v.bundles.iter().all(|b| b.has_errors()));
}

/// Re-signs a bundle's manifest with the device's key after `edit`, so that
/// only what the edit put into the manifest is wrong with it.
fn resigned_manifest(name: &str, edit: impl FnOnce(&mut serde_json::Value)) -> Verification {
    let dir = fresh_dir(name);
    let id = identity(5);
    let b = write_bundle(&dir.join("b"), &id, &records(&id, 4, 5));
    let mut m = manifest(&b);
    edit(&mut m);
    let text = signing_string(
        m["device"].as_str().unwrap(),
        m["org"].as_str().unwrap(),
        m["records"].as_u64().unwrap(),
        m["first_prev_hash"].as_str().unwrap(),
        m["head_hash"].as_str().unwrap(),
    );
    let hex: String = id
        .sign(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    m["signature"] = serde_json::Value::String(hex);
    std::fs::write(b.join("manifest.json"), m.to_string()).unwrap();
    verify(&[b], None)
}

#[test]
fn a_signed_manifest_org_outside_the_vocabulary_is_an_error_not_echoed() {
    let v = resigned_manifest("manifest-org", |m| {
        m["org"] = "Jane Doe 9434765919".into();
    });
    let p = problems(&v);
    assert!(
        p.contains(&"line 0: error: manifest: org is not an ODS code".into()),
        "{p:?}"
    );
    assert!(p.iter().all(|l| !l.contains("Jane")), "{p:?}");
    assert_eq!(v.counted().count(), 0);
}

#[test]
fn extra_manifest_keys_are_a_warning_that_names_none_of_them() {
    let v = resigned_manifest("manifest-extra", |m| {
        m["patient"] = "Jane Doe, NHS 9434765919".into();
    });
    let p = problems(&v);
    assert_eq!(
        p,
        vec!["line 0: warning: manifest: 1 key(s) outside the format's version 1 (not shown)"]
    );
    assert!(!v.has_errors());
    assert_eq!(v.counted().count(), 4, "the records still count");
    // Re-signing with nothing edited leaves nothing to report: the warning
    // is the extra key's.
    let untouched = resigned_manifest("manifest-none", |_| {});
    assert!(
        problems(&untouched).is_empty(),
        "{:?}",
        problems(&untouched)
    );
}

/// Records chained as a store hands them over: each with the hash before it
/// and its own, computed by a writer's `push`.
fn chained(id: &DeviceIdentity, recs: &[Record], dir: &Path) -> Vec<odm_uptake::ChainedRecord> {
    let mut w =
        BundleWriter::create(dir, id, OdsCode::parse("RH8").unwrap(), ChainHash::GENESIS).unwrap();
    let mut prev = ChainHash::GENESIS;
    recs.iter()
        .map(|r| {
            let hash = w.push(r).unwrap();
            let c = odm_uptake::ChainedRecord {
                record: r.clone(),
                prev_hash: prev,
                hash,
            };
            prev = hash;
            c
        })
        .collect()
}

#[test]
fn records_already_chained_write_the_same_bundle_and_must_follow_each_other() {
    let dir = fresh_dir("push-chained");
    let id = identity(11);
    let recs = records(&id, 4, 11);
    let by_push = write_bundle(&dir.join("push"), &id, &recs);
    let links = chained(&id, &recs, &dir.join("scratch"));
    let rh8 = OdsCode::parse("RH8").unwrap();

    let out = dir.join("chained");
    let mut w = BundleWriter::create(&out, &id, rh8, ChainHash::GENESIS).unwrap();
    for c in &links {
        w.push_chained(c).unwrap();
    }
    w.finish(exported()).unwrap();
    for file in ["records.csv", "manifest.json"] {
        assert_eq!(
            std::fs::read(out.join(file)).unwrap(),
            std::fs::read(by_push.join(file)).unwrap(),
            "{file}"
        );
    }
    assert!(!verify(&[out], None).bundles[0].has_errors());

    // A record that does not follow the last one written is refused…
    let mut w = BundleWriter::create(&dir.join("gap"), &id, rh8, ChainHash::GENESIS).unwrap();
    w.push_chained(&links[0]).unwrap();
    let err = w.push_chained(&links[2]).unwrap_err();
    assert!(
        matches!(err, odm_uptake::bundle::ExportError::NotNext(_)),
        "{err:?}"
    );
    // …and so is another device's.
    let other = identity(12);
    let mut foreign = links[1].clone();
    foreign.record = records(&other, 1, 12).remove(0);
    foreign.prev_hash = links[0].hash;
    let err = w.push_chained(&foreign).unwrap_err();
    assert!(
        matches!(err, odm_uptake::bundle::ExportError::ForeignDevice(_)),
        "{err:?}"
    );
}

#[test]
fn a_bundle_is_never_written_over_an_earlier_one() {
    let dir = fresh_dir("exists");
    let id = identity(13);
    let rh8 = OdsCode::parse("RH8").unwrap();
    // Either file of a bundle already there is enough to refuse.
    for file in ["records.csv", "manifest.json"] {
        let d = dir.join(file);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(file), b"earlier").unwrap();
        let err = BundleWriter::create(&d, &id, rh8, ChainHash::GENESIS).err();
        assert!(
            matches!(err, Some(odm_uptake::bundle::ExportError::Exists(_))),
            "{file}: {err:?}"
        );
        assert_eq!(std::fs::read(d.join(file)).unwrap(), b"earlier");
    }
}

#[test]
fn a_key_register_needs_its_header_and_one_key_per_device() {
    let a = "0f8fad5b-d9cb-469f-a165-70867728950e";
    let k1 = "11".repeat(32);
    let k2 = "22".repeat(32);
    let reg = KeyRegister::parse(&format!("device,public_key\r\n{a},{k1}\r\n\r\n")).unwrap();
    let device = RandomId::parse(a, "device").unwrap();
    assert_eq!(reg.key_of(&device), Some(&[0x11; 32]));
    assert_eq!(
        KeyRegister::parse(&format!("device,key\n{a},{k1}\n")).err(),
        Some((1, "header is not `device,public_key`"))
    );
    assert!(KeyRegister::parse(&format!("{a},{k1}\n")).is_err());
    // The same device listed twice is harmless with the same key, and an
    // error (at the second line) with a different one.
    assert!(KeyRegister::parse(&format!("device,public_key\n{a},{k1}\n{a},{k1}\n")).is_ok());
    assert_eq!(
        KeyRegister::parse(&format!("device,public_key\n{a},{k1}\n{a},{k2}\n")).err(),
        Some((3, "device listed twice with different keys"))
    );
}

#[test]
fn a_record_line_that_is_not_utf8_is_an_error_at_its_line_and_still_a_record() {
    let dir = fresh_dir("not-utf8");
    let id = identity(14);
    let recs = records(&id, 3, 14);
    let b = write_bundle(&dir.join("b"), &id, &recs);
    let mut bytes = std::fs::read(b.join("records.csv")).unwrap();
    // The first byte of the third line (the second record) becomes 0xFF.
    let second_record = bytes
        .iter()
        .enumerate()
        .filter(|(_, c)| **c == b'\n')
        .nth(1)
        .unwrap()
        .0
        + 1;
    bytes[second_record] = 0xFF;
    std::fs::write(b.join("records.csv"), &bytes).unwrap();
    let p = problems(&verify(std::slice::from_ref(&b), None));
    assert!(p.contains(&"line 3: error: not UTF-8".to_owned()), "{p:?}");
    // Still one of the manifest's three records: no count mismatch.
    assert!(!p.iter().any(|l| l.contains("manifest: records")), "{p:?}");

    // A header that is not UTF-8 is line 1's error, and no record.
    let b = write_bundle(&dir.join("h"), &id, &recs);
    let mut bytes = std::fs::read(b.join("records.csv")).unwrap();
    bytes[0] = 0xFF;
    std::fs::write(b.join("records.csv"), &bytes).unwrap();
    let p = problems(&verify(&[b], None));
    assert!(p.contains(&"line 1: error: not UTF-8".to_owned()), "{p:?}");
    assert!(!p.iter().any(|l| l.contains("manifest: records")), "{p:?}");
}

#[test]
fn progress_counts_every_bundle_in_order() {
    let dir = fresh_dir("progress");
    let id = identity(15);
    let dirs: Vec<PathBuf> = (0..3)
        .map(|k| write_bundle(&dir.join(format!("b{k}")), &id, &records(&id, 1, 15 + k)))
        .collect();
    let mut seen = Vec::new();
    verify_bundles(&dirs, None, &mut |done, total| seen.push((done, total)));
    assert_eq!(seen, [(1, 3), (2, 3), (3, 3)]);
}

#[test]
fn a_report_counts_the_intact_bundles_records_and_sets_the_others_aside() {
    use odm_uptake::report::{Denominators, Dims, write_report};
    let dir = fresh_dir("report");
    let id = identity(16);
    let recs = records(&id, 20, 16);
    write_bundle(&dir.join("bundles/a"), &id, &recs[..12]);
    write_bundle(&dir.join("bundles/b"), &id, &recs[12..]);
    let forged = write_bundle(&dir.join("bundles/c"), &id, &records(&id, 9, 17));
    edit_field(&forged, 2, 8, "999");
    // Not a bundle (no manifest): not looked at.
    std::fs::create_dir_all(dir.join("bundles/notes")).unwrap();

    // 40 eligible cases in every cell the counted records fall in.
    let mut cells: Vec<String> = recs
        .iter()
        .map(|r| format!("{},{},{}", r.org, r.period, r.category.as_str()))
        .collect();
    cells.sort();
    cells.dedup();
    let text: String = std::iter::once("org,period,category,eligible".to_owned())
        .chain(cells.iter().map(|c| format!("{c},40")))
        .collect::<Vec<_>>()
        .join("\n");
    let den = Denominators::parse(&text).unwrap();
    let none = Dims {
        org: false,
        period: false,
        category: false,
    };
    let out = dir.join("out");
    let mut seen = Vec::new();
    let outcome = write_report(
        &dir.join("bundles"),
        &den,
        None,
        none,
        &out,
        &mut |done, total| seen.push((done, total)),
    )
    .unwrap();
    assert_eq!(seen, [(1, 3), (2, 3), (3, 3)], "three bundles found");
    assert_eq!(outcome.counted_records, 20);
    assert_eq!(outcome.rows, 1);
    assert!(outcome.missing_denominators.is_empty());
    // 20 monitored of 40 per cell; published as counted (multiples of 5).
    let eligible = 40 * cells.len();
    let pct = format!("{:.1}", 2000.0 / eligible as f64);
    assert_eq!(
        std::fs::read_to_string(out.join("report.csv")).unwrap(),
        format!(
            "org,period,category,monitored,eligible,uptake_pct\nall,all,all,20,{eligible},{pct}\n"
        )
    );
    let excluded = std::fs::read_to_string(out.join("excluded.csv")).unwrap();
    assert_eq!(excluded.lines().count(), 1 + 9, "{excluded}");
    assert!(
        excluded.lines().skip(1).all(|l| l.starts_with("c,")),
        "{excluded}"
    );
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("<p>1 bundle: named, with their records, in excluded.csv.</p>"));
    // Without the forged bundle nothing is set aside, and the page says
    // nothing of it.
    std::fs::remove_dir_all(&forged).unwrap();
    let out = dir.join("out-clean");
    let outcome =
        write_report(&dir.join("bundles"), &den, None, none, &out, &mut |_, _| {}).unwrap();
    assert_eq!(outcome.counted_records, 20);
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(!html.contains("set aside"), "{html}");
}
