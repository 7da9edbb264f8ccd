//! Export bundles (spec "Bundle"): `records.csv` plus a signed
//! `manifest.json`, written by a device for the programme's auditors.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::identity::DeviceIdentity;
use crate::record::{ChainHash, OdsCode, Record, hex_from_bytes};
use crate::store::{ChainedRecord, StoreError, UptakeStore};

/// `manifest.json` `format` value.
pub const FORMAT: &str = "odm-uptake-bundle";
/// `manifest.json` `version` value.
pub const VERSION: u64 = 1;
/// First line of `records.csv`: the 13 fields, then `prev_hash,hash`.
pub const RECORDS_HEADER: &str = "record_id,device,org,period,category,eligibility,age_band,minutes,boluses,bolus_ml,accepted_fraction,probe_model,software,prev_hash,hash";
/// File names inside a bundle directory.
pub const RECORDS_FILE: &str = "records.csv";
/// The manifest's file name.
pub const MANIFEST_FILE: &str = "manifest.json";

/// The exact text the device signs (spec "Bundle"):
/// `odm-uptake-bundle|1|device|org|records|first_prev_hash|head_hash`.
pub fn signing_string(
    device: &str,
    org: &str,
    records: u64,
    first_prev_hash: &str,
    head_hash: &str,
) -> String {
    format!("{FORMAT}|{VERSION}|{device}|{org}|{records}|{first_prev_hash}|{head_hash}")
}

/// What went wrong writing a bundle.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// A file could not be written.
    #[error("bundle {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The bundle directory holds a bundle already.
    #[error("bundle {0} already holds records.csv or manifest.json; choose a new directory")]
    Exists(PathBuf),
    /// Reading the store failed (including a broken chain: a bundle is
    /// never signed over tampered records).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The store writes nothing (participation off).
    #[error("uptake participation is off (ODM_UPTAKE=off): there is nothing to export")]
    Inactive,
    /// A record of another device was offered.
    #[error("bundle {0}: record belongs to another device than the bundle's")]
    ForeignDevice(PathBuf),
    /// A record does not follow the previous one written.
    #[error("bundle {0}: record does not follow the previous record in the chain")]
    NotNext(PathBuf),
    /// The manifest could not be made.
    #[error("bundle {path}: manifest: {source}")]
    Json {
        /// The manifest path.
        path: PathBuf,
        /// The serialisation error.
        source: serde_json::Error,
    },
}

/// The result of an export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSummary {
    /// Records written.
    pub records: u64,
    /// `prev_hash` of the first record written.
    pub first_prev_hash: ChainHash,
    /// `hash` of the last record written.
    pub head_hash: ChainHash,
}

#[derive(serde::Serialize)]
struct ManifestOut<'a> {
    format: &'a str,
    version: u64,
    device: String,
    org: &'a str,
    records: u64,
    first_prev_hash: String,
    head_hash: String,
    exported_utc: String,
    public_key: String,
    signature: String,
}

/// Writes a bundle record by record (streaming: memory does not grow with
/// the number of records).
pub struct BundleWriter<'a> {
    dir: PathBuf,
    identity: &'a DeviceIdentity,
    org: OdsCode,
    csv: BufWriter<File>,
    first_prev_hash: ChainHash,
    prev: ChainHash,
    records: u64,
    line: String,
}

impl<'a> BundleWriter<'a> {
    /// Starts a bundle in `dir` (created if missing; must not hold a bundle)
    /// whose first record follows `first_prev_hash` in the device's chain.
    pub fn create(
        dir: &Path,
        identity: &'a DeviceIdentity,
        org: OdsCode,
        first_prev_hash: ChainHash,
    ) -> Result<Self, ExportError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| ExportError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let records_path = dir.join(RECORDS_FILE);
        if records_path.exists() || dir.join(MANIFEST_FILE).exists() {
            return Err(ExportError::Exists(dir.to_owned()));
        }
        let file = File::create(&records_path).map_err(io(&records_path))?;
        let mut csv = BufWriter::with_capacity(1 << 16, file);
        writeln!(csv, "{RECORDS_HEADER}").map_err(io(&records_path))?;
        Ok(Self {
            dir: dir.to_owned(),
            identity,
            org,
            csv,
            first_prev_hash,
            prev: first_prev_hash,
            records: 0,
            line: String::with_capacity(512),
        })
    }

    /// Appends one record, chaining it to the previous one.
    pub fn push(&mut self, record: &Record) -> Result<ChainHash, ExportError> {
        if record.device != self.identity.device {
            return Err(ExportError::ForeignDevice(self.dir.clone()));
        }
        self.line.clear();
        record.write_fields('|', &mut self.line);
        let hash = crate::record::chain_hash_of_fields(&self.prev, &self.line);
        self.write_line(record, hash)?;
        Ok(hash)
    }

    /// Appends a record whose hash the caller has already checked (the
    /// store recomputes every hash while reading); it must follow the
    /// previous record written.
    pub fn push_chained(&mut self, chained: &ChainedRecord) -> Result<(), ExportError> {
        if chained.record.device != self.identity.device {
            return Err(ExportError::ForeignDevice(self.dir.clone()));
        }
        if chained.prev_hash != self.prev {
            return Err(ExportError::NotNext(self.dir.clone()));
        }
        self.write_line(&chained.record, chained.hash)
    }

    fn write_line(&mut self, record: &Record, hash: ChainHash) -> Result<(), ExportError> {
        self.line.clear();
        record.write_fields(',', &mut self.line);
        self.line.push(',');
        self.line.push_str(&self.prev.to_hex());
        self.line.push(',');
        self.line.push_str(&hash.to_hex());
        self.line.push('\n');
        let path = self.dir.join(RECORDS_FILE);
        self.csv
            .write_all(self.line.as_bytes())
            .map_err(|source| ExportError::Io { path, source })?;
        self.prev = hash;
        self.records += 1;
        Ok(())
    }

    /// Flushes `records.csv` to disk, then writes and signs `manifest.json`
    /// (written last, through a temporary file, so a directory with a
    /// manifest always holds a complete bundle).
    pub fn finish(self, exported_utc: time::OffsetDateTime) -> Result<ExportSummary, ExportError> {
        let records_path = self.dir.join(RECORDS_FILE);
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| ExportError::Io { path, source }
        };
        let file = self.csv.into_inner().map_err(|e| ExportError::Io {
            path: records_path.clone(),
            source: e.into_error(),
        })?;
        file.sync_all().map_err(io(&records_path))?;
        let device = self.identity.device.to_string();
        let first = self.first_prev_hash.to_hex();
        let head = self.prev.to_hex();
        let message = signing_string(&device, self.org.as_str(), self.records, &first, &head);
        let signature = hex_from_bytes(&self.identity.sign(message.as_bytes()));
        let manifest_path = self.dir.join(MANIFEST_FILE);
        let json_err = |source| ExportError::Json {
            path: manifest_path.clone(),
            source,
        };
        let exported_utc = exported_utc
            .replace_nanosecond(0)
            .unwrap_or(exported_utc)
            .format(&time::format_description::well_known::Rfc3339)
            .map_err(|e| ExportError::Io {
                path: manifest_path.clone(),
                source: std::io::Error::other(e),
            })?;
        let manifest = ManifestOut {
            format: FORMAT,
            version: VERSION,
            device,
            org: self.org.as_str(),
            records: self.records,
            first_prev_hash: first,
            head_hash: head,
            exported_utc,
            public_key: self.identity.public_key_hex(),
            signature,
        };
        let mut text = serde_json::to_string_pretty(&manifest).map_err(json_err)?;
        text.push('\n');
        let tmp = self.dir.join(".manifest.json.tmp");
        {
            let mut f = File::create(&tmp).map_err(io(&tmp))?;
            f.write_all(text.as_bytes()).map_err(io(&tmp))?;
            f.sync_all().map_err(io(&tmp))?;
        }
        std::fs::rename(&tmp, &manifest_path).map_err(io(&manifest_path))?;
        Ok(ExportSummary {
            records: self.records,
            first_prev_hash: self.first_prev_hash,
            head_hash: self.prev,
        })
    }
}

/// Exports the store's records as a bundle in `out`: all of them, or only
/// those after the record whose hash is `after` (a bundle continuing an
/// earlier one). The store's chain is checked while reading, so a tampered
/// store is never signed. `exported_utc` is now.
pub fn export_bundle(
    store: &UptakeStore,
    out: &Path,
    after: Option<ChainHash>,
) -> Result<ExportSummary, ExportError> {
    export_bundle_at(store, out, after, time::OffsetDateTime::now_utc())
}

/// As [`export_bundle`], with a given export time.
pub fn export_bundle_at(
    store: &UptakeStore,
    out: &Path,
    after: Option<ChainHash>,
    exported_utc: time::OffsetDateTime,
) -> Result<ExportSummary, ExportError> {
    let (Some(identity), Some(org)) = (store.identity(), store.org()) else {
        return Err(ExportError::Inactive);
    };
    let mut writer = BundleWriter::create(out, identity, org, after.unwrap_or(ChainHash::GENESIS))?;
    let mut failure = None;
    let read = store.for_each_record(after, |chained| {
        if failure.is_none()
            && let Err(e) = writer.push_chained(chained)
        {
            failure = Some(e);
        }
        Ok(())
    });
    let result = match (read, failure) {
        (Err(e), _) => Err(e.into()),
        (Ok(_), Some(e)) => Err(e),
        (Ok(_), None) => writer.finish(exported_utc),
    };
    if result.is_err() {
        // Leave no half-written records.csv behind (it has no manifest, so
        // it is not a bundle, but it would block a retry into `out`).
        let _ = std::fs::remove_file(out.join(RECORDS_FILE));
    }
    result
}
