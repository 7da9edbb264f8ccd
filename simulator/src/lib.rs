//! Virtual oesophageal Doppler probe with exact ground truth.
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
