//! Uptake throughput (targets from the uptake brief, see docs/uptake.md):
//! export and verify at least 100 000 records/s; the auditors' report over
//! 1 000 000 records in at most 10 s.
//!
//! Run: `cargo bench -p odm-benches --bench uptake`
//! Data is synthetic (odm_uptake::demo), written under the system temp
//! directory and removed afterwards.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use odm_uptake::bundle::export_bundle;
use odm_uptake::demo::{SyntheticRecords, write_synthetic_bundles};
use odm_uptake::report::{Denominators, Dims, write_report};
use odm_uptake::verify::{KeyRegister, verify_bundles};
use odm_uptake::{OdsCode, Period, Settings, UptakeStore};

const EXPORT_RECORDS: u64 = 100_000;
const REPORT_DEVICES: usize = 20;
const REPORT_RECORDS_PER_DEVICE: u64 = 50_000;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("odm-uptake-bench-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("bench scratch directory");
    dir
}

/// A store holding `n` synthetic records.
fn store_with(dir: &Path, n: u64) -> UptakeStore {
    let on = Settings {
        participation: true,
    };
    let db = dir.join("uptake.sqlite");
    let org = OdsCode::parse("RH802").expect("valid ODS code");
    UptakeStore::init(&db, org, &dir.join("device.key"), on).expect("init store");
    let mut store = UptakeStore::open(&db, on).expect("open store");
    let device = store.device().expect("active store");
    let first = Period::parse("2025-01").expect("valid period");
    let records = SyntheticRecords::new(7, device, &[org], first, 24);
    store
        .append_records(records.take(n as usize))
        .expect("append synthetic records");
    store
}

fn export_and_verify(c: &mut Criterion) {
    let dir = scratch("export");
    let store = store_with(&dir, EXPORT_RECORDS);
    let mut group = c.benchmark_group("uptake");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Elements(EXPORT_RECORDS));
    let mut k = 0u64;
    group.bench_function("export_100k_records", |b| {
        b.iter(|| {
            k += 1;
            let out = dir.join(format!("bundle-{k}"));
            let summary = export_bundle(&store, &out, None).expect("export");
            let _ = std::fs::remove_dir_all(&out);
            black_box(summary)
        })
    });
    let bundle = dir.join("bundle-kept");
    export_bundle(&store, &bundle, None).expect("export");
    let register = KeyRegister::parse(&format!(
        "device,public_key\n{}\n",
        store.register_line().expect("active store")
    ))
    .expect("register");
    let bundles = [bundle];
    group.bench_function("verify_100k_records", |b| {
        b.iter(|| {
            let v = verify_bundles(&bundles, Some(&register), &mut |_, _| {});
            assert!(!v.has_errors());
            black_box(v.counted().count())
        })
    });
    group.finish();
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

fn report(c: &mut Criterion) {
    let dir = scratch("report");
    let made = write_synthetic_bundles(&dir, REPORT_DEVICES, REPORT_RECORDS_PER_DEVICE, 11)
        .expect("synthetic bundles");
    let denominators = Denominators::load(&made.eligible_csv).expect("eligible.csv");
    let register = KeyRegister::load(&made.register_csv).expect("register.csv");
    let mut group = c.benchmark_group("uptake");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(60));
    let total = REPORT_DEVICES as u64 * REPORT_RECORDS_PER_DEVICE;
    group.throughput(Throughput::Elements(total));
    group.bench_function("report_1m_records", |b| {
        b.iter(|| {
            let outcome = write_report(
                &dir.join("bundles"),
                &denominators,
                Some(&register),
                Dims::ALL,
                &dir.join("out"),
                &mut |_, _| {},
            )
            .expect("report");
            assert_eq!(outcome.counted_records, total);
            black_box(outcome.rows)
        })
    });
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, export_and_verify, report);
criterion_main!(benches);
