//! Anonymised ODM uptake records, tamper-evident store, bundles and the
//! auditors' report (`shared/spec/uptake-bundle.md`).
//!
//! Guarantees:
//! - a [`Record`] holds exactly the spec's 13 coarse fields and nothing that
//!   identifies a patient: no names, numbers, dates of birth, exact dates or
//!   times, or free text (`record.rs` is the one place that defines it);
//! - closed records are append-only and hash-chained; bundles are signed
//!   with the device's Ed25519 key; every edit, deletion, insertion or
//!   reordering is detected ([`UptakeStore::verify_chain`],
//!   [`verify::verify_bundles`]);
//! - nothing read from outside (store, bundle, register, denominator file)
//!   can make this crate panic: every refusal is a typed error naming what
//!   and where, and never echoes a refused value (it might be an identifier);
//! - with participation switched off (`ODM_UPTAKE=off`, [`Settings`]) the
//!   store writes nothing at all;
//! - published counts pass NHS small-number disclosure control
//!   ([`disclosure`]).
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod bundle;
pub mod demo;
pub mod disclosure;
pub mod identity;
pub mod record;
pub mod report;
pub mod scan;
pub mod store;
pub mod verify;

pub use identity::DeviceIdentity;
pub use record::{
    AcceptedFraction, AgeBand, BolusMl, Category, ChainHash, Eligibility, Minutes, OdsCode, Period,
    RandomId, Record, Software,
};
pub use store::{CaseHandle, ChainedRecord, Settings, StoreError, UptakeStore};

/// A fresh, empty directory for one test, under the system temp dir.
#[cfg(test)]
pub(crate) fn test_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("odm-uptake-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
