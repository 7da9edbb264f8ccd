//! Anonymised ODM uptake records, tamper-evident store, bundles and auditors' report.
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
