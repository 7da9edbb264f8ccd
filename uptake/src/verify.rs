//! Bundle verification, exactly per spec "Verification": first each bundle
//! on its own (vocabularies, hashes, chain, manifest, signature, registered
//! key), then duplicates and conflicts among the bundles that passed.

use std::collections::HashMap;
use std::fmt;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use crate::bundle::{FORMAT, MANIFEST_FILE, RECORDS_FILE, RECORDS_HEADER, VERSION, signing_string};
use crate::identity::signature_verifies;
use crate::record::{
    Category, ChainHash, OdsCode, Period, RandomId, Record, bytes_from_hex, chain_hash_of_fields,
};

/// How serious a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The bundle is not intact; its records are not counted.
    Error,
    /// Worth knowing; the bundle still counts.
    Warning,
}

/// One problem found in a bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Line of `records.csv` (0: the manifest or the bundle as a whole).
    pub line: u64,
    /// Error or warning.
    pub severity: Severity,
    /// What is wrong (never the offending value itself).
    pub what: String,
}

/// A record line that parsed, with what the report needs of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// Line of `records.csv`.
    pub line: u64,
    /// The record's id.
    pub record_id: RandomId,
    /// The `hash` column.
    pub hash: ChainHash,
    /// Organisation.
    pub org: OdsCode,
    /// Month.
    pub period: Period,
    /// Category.
    pub category: Category,
}

/// The verdict on one bundle.
#[derive(Debug, Clone)]
pub struct BundleCheck {
    /// The bundle directory as given.
    pub path: PathBuf,
    /// Problems, in the order found.
    pub problems: Vec<Problem>,
    /// Every record line whose values parsed.
    pub entries: Vec<Entry>,
    /// Record lines that did not parse: line and, when the first value is
    /// a valid UUID v4, the record id.
    pub unparsed: Vec<(u64, Option<RandomId>)>,
}

impl BundleCheck {
    /// Whether any problem is an error.
    pub fn has_errors(&self) -> bool {
        self.problems.iter().any(|p| p.severity == Severity::Error)
    }

    /// The first error, for naming an exclusion.
    pub fn first_error(&self) -> Option<&Problem> {
        self.problems.iter().find(|p| p.severity == Severity::Error)
    }

    fn error(&mut self, line: u64, what: impl Into<String>) {
        self.problems.push(Problem {
            line,
            severity: Severity::Error,
            what: what.into(),
        });
    }

    fn warning(&mut self, line: u64, what: impl Into<String>) {
        self.problems.push(Problem {
            line,
            severity: Severity::Warning,
            what: what.into(),
        });
    }

    /// The problems as output lines `BUNDLE: line N: error: what`.
    pub fn lines(&self) -> impl Iterator<Item = String> + '_ {
        self.problems.iter().map(|p| {
            format!(
                "{}: line {}: {}: {}",
                self.path.display(),
                p.line,
                p.severity,
                p.what
            )
        })
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

/// What went wrong reading the key register.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// The file could not be read.
    #[error("key register {path}: {source}")]
    Io {
        /// The register file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A line is malformed.
    #[error("key register {path}: line {line}: {what}")]
    Malformed {
        /// The register file.
        path: PathBuf,
        /// 1-based line.
        line: u64,
        /// What is wrong.
        what: &'static str,
    },
}

/// The programme's register of device public keys (`device,public_key`).
#[derive(Debug, Clone, Default)]
pub struct KeyRegister {
    keys: HashMap<RandomId, [u8; 32]>,
}

impl KeyRegister {
    /// Reads a register CSV.
    pub fn load(path: &Path) -> Result<Self, RegisterError> {
        let text = std::fs::read_to_string(path).map_err(|source| RegisterError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text).map_err(|(line, what)| RegisterError::Malformed {
            path: path.to_owned(),
            line,
            what,
        })
    }

    /// Parses register text; errors give the 1-based line.
    pub fn parse(text: &str) -> Result<Self, (u64, &'static str)> {
        let mut lines = text.lines().zip(1u64..);
        match lines.next() {
            Some((header, _)) if header.trim_end_matches('\r') == "device,public_key" => {}
            _ => return Err((1, "header is not `device,public_key`")),
        }
        let mut keys = HashMap::new();
        for (line, n) in lines {
            let line = line.trim_end_matches('\r');
            if line.is_empty() {
                continue;
            }
            let (device, key) = line
                .split_once(',')
                .ok_or((n, "expected two values `device,public_key`"))?;
            let device =
                RandomId::parse(device, "device").map_err(|_| (n, "device is not a UUID v4"))?;
            let key = bytes_from_hex::<32>(key)
                .ok_or((n, "public_key is not 64 lower-case hex characters"))?;
            if keys.insert(device, key).is_some_and(|old| old != key) {
                return Err((n, "device listed twice with different keys"));
            }
        }
        Ok(Self { keys })
    }

    /// The registered key of a device.
    pub fn key_of(&self, device: &RandomId) -> Option<&[u8; 32]> {
        self.keys.get(device)
    }
}

/// The keys of a version 1 manifest (uptake-bundle.md, "Bundle").
const MANIFEST_KEYS: [&str; 10] = [
    "format",
    "version",
    "device",
    "org",
    "records",
    "first_prev_hash",
    "head_hash",
    "exported_utc",
    "public_key",
    "signature",
];

/// The manifest values, as far as they could be read.
#[derive(Default)]
struct Manifest {
    device: Option<String>,
    org: Option<String>,
    records: Option<u64>,
    first_prev_hash: Option<String>,
    head_hash: Option<String>,
    public_key: Option<[u8; 32]>,
    signature: Option<[u8; 64]>,
}

fn read_manifest(dir: &Path, check: &mut BundleCheck) -> Manifest {
    let mut m = Manifest::default();
    let text = match std::fs::read_to_string(dir.join(MANIFEST_FILE)) {
        Ok(t) => t,
        Err(e) => {
            check.error(0, format!("{MANIFEST_FILE} cannot be read: {}", e.kind()));
            return m;
        }
    };
    let value: serde_json::Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            check.error(
                0,
                format!("{MANIFEST_FILE} is not valid JSON (line {})", e.line()),
            );
            return m;
        }
    };
    let Some(obj) = value.as_object() else {
        check.error(0, format!("{MANIFEST_FILE} is not a JSON object"));
        return m;
    };
    let string = |key: &str, check: &mut BundleCheck| -> Option<String> {
        match obj.get(key).and_then(|v| v.as_str()) {
            Some(s) => Some(s.to_owned()),
            None => {
                check.error(0, format!("manifest: {key} is missing or not a string"));
                None
            }
        }
    };
    if string("format", check).is_some_and(|f| f != FORMAT) {
        check.error(0, format!("manifest: format is not {FORMAT}"));
    }
    match obj.get("version").and_then(|v| v.as_u64()) {
        Some(VERSION) => {}
        Some(_) => check.error(0, format!("manifest: version is not {VERSION}")),
        None => check.error(0, "manifest: version is missing or not an integer"),
    }
    m.device = string("device", check);
    if let Some(d) = &m.device
        && RandomId::parse(d, "device").is_err()
    {
        check.error(0, "manifest: device is not a UUID v4");
    }
    m.org = string("org", check);
    if let Some(o) = &m.org
        && OdsCode::parse(o).is_err()
    {
        // Not echoed: a value out of its vocabulary may be an identifier.
        check.error(0, "manifest: org is not an ODS code");
    }
    let unknown = obj
        .keys()
        .filter(|k| !MANIFEST_KEYS.contains(&k.as_str()))
        .count();
    if unknown > 0 {
        // Named by count only, for the same reason.
        check.warning(
            0,
            format!(
                "manifest: {unknown} key(s) outside the format's version {VERSION} (not shown)"
            ),
        );
    }
    m.records = obj.get("records").and_then(|v| v.as_u64());
    if m.records.is_none() {
        check.error(
            0,
            "manifest: records is missing or not a non-negative integer",
        );
    }
    for (key, slot) in [
        ("first_prev_hash", &mut m.first_prev_hash),
        ("head_hash", &mut m.head_hash),
    ] {
        *slot = string(key, check);
        if slot
            .as_deref()
            .is_some_and(|h| ChainHash::from_hex(h).is_none())
        {
            check.error(
                0,
                format!("manifest: {key} is not 64 lower-case hex characters"),
            );
        }
    }
    if let Some(t) = string("exported_utc", check)
        && time::OffsetDateTime::parse(&t, &time::format_description::well_known::Rfc3339).is_err()
    {
        check.error(0, "manifest: exported_utc is not an RFC 3339 date-time");
    }
    m.public_key = string("public_key", check).and_then(|k| {
        let key = bytes_from_hex::<32>(&k);
        if key.is_none() {
            check.error(
                0,
                "manifest: public_key is not 64 lower-case hex characters",
            );
        }
        key
    });
    m.signature = string("signature", check).and_then(|s| {
        let sig = bytes_from_hex::<64>(&s);
        if sig.is_none() {
            check.error(
                0,
                "manifest: signature is not 128 lower-case hex characters",
            );
        }
        sig
    });
    m
}

/// Checks one bundle on its own (everything but cross-bundle duplicates).
pub fn check_bundle(dir: &Path, register: Option<&KeyRegister>) -> BundleCheck {
    let mut check = BundleCheck {
        path: dir.to_owned(),
        problems: Vec::new(),
        entries: Vec::new(),
        unparsed: Vec::new(),
    };
    let manifest = read_manifest(dir, &mut check);
    let manifest_device = manifest
        .device
        .as_deref()
        .and_then(|d| RandomId::parse(d, "device").ok());
    let first_prev = manifest
        .first_prev_hash
        .as_deref()
        .and_then(ChainHash::from_hex);
    let records = check_records(dir, manifest_device, first_prev, &mut check);

    if let (Some(count), Some((seen, _))) = (manifest.records, records)
        && count != seen
    {
        check.error(
            0,
            format!("manifest: records is {count} but records.csv holds {seen}"),
        );
    }
    if let (Some(head), Some((_, last))) = (&manifest.head_hash, records) {
        // An empty bundle's head is where it starts.
        let expected = last.or(first_prev);
        if ChainHash::from_hex(head).is_some() && expected.is_some_and(|e| e.to_hex() != *head) {
            check.error(0, "manifest: head_hash is not the hash of the last record");
        }
    }
    if let (Some(device), Some(org), Some(count), Some(first), Some(head), Some(key), Some(sig)) = (
        &manifest.device,
        &manifest.org,
        manifest.records,
        &manifest.first_prev_hash,
        &manifest.head_hash,
        &manifest.public_key,
        &manifest.signature,
    ) {
        let message = signing_string(device, org, count, first, head);
        if !signature_verifies(key, message.as_bytes(), sig) {
            check.error(
                0,
                "manifest: signature does not verify with the manifest's public_key",
            );
        }
    }
    if let (Some(register), Some(device), Some(key)) =
        (register, manifest_device, &manifest.public_key)
    {
        match register.key_of(&device) {
            None => check.error(0, "device is not in the key register"),
            Some(registered) if registered != key => check.error(
                0,
                "manifest: public_key is not the key registered for this device",
            ),
            Some(_) => {}
        }
    }
    check
}

/// Reads `records.csv`; returns the record count and the last hash column
/// value (if any) when the file could be read at all.
fn check_records(
    dir: &Path,
    manifest_device: Option<RandomId>,
    first_prev: Option<ChainHash>,
    check: &mut BundleCheck,
) -> Option<(u64, Option<ChainHash>)> {
    let file = match std::fs::File::open(dir.join(RECORDS_FILE)) {
        Ok(f) => f,
        Err(e) => {
            check.error(0, format!("{RECORDS_FILE} cannot be read: {}", e.kind()));
            return None;
        }
    };
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let mut buf = Vec::with_capacity(512);
    let mut joined = String::with_capacity(512);
    let mut seen_ids: HashMap<RandomId, u64> = HashMap::new();
    let mut line_no = 0u64;
    let mut count = 0u64;
    // The hash column of the previous record line, for the chain check;
    // the first record must follow the manifest's first_prev_hash.
    let mut prev_hash_col: Option<ChainHash> = first_prev;
    let mut last_hash: Option<ChainHash> = None;
    let mut prev_known = true;
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                // Nothing read yet: the file as a whole (line 0, as the
                // spec numbers it), e.g. a directory by that name.
                let line = if line_no == 0 { 0 } else { line_no + 1 };
                check.error(line, format!("{RECORDS_FILE} cannot be read: {}", e.kind()));
                return None;
            }
        }
        line_no += 1;
        if buf.last() == Some(&b'\n') {
            buf.pop();
        }
        let Ok(line) = std::str::from_utf8(&buf) else {
            check.error(line_no, "not UTF-8");
            if line_no > 1 {
                count += 1;
                check.unparsed.push((line_no, None));
                prev_known = false;
            }
            continue;
        };
        if line_no == 1 {
            if line != RECORDS_HEADER {
                check.error(1, "header is not the spec's 15 columns in order");
            }
            continue;
        }
        count += 1;
        let values: Vec<&str> = line.split(',').collect();
        let Ok(values) = <[&str; 15]>::try_from(values) else {
            check.error(line_no, "expected 15 comma-separated values");
            check.unparsed.push((line_no, None));
            prev_known = false;
            continue;
        };
        let fields: [&str; 13] = [
            values[0], values[1], values[2], values[3], values[4], values[5], values[6], values[7],
            values[8], values[9], values[10], values[11], values[12],
        ];
        let prev_col = ChainHash::from_hex(values[13]);
        let hash_col = ChainHash::from_hex(values[14]);
        let record = match Record::from_fields(&fields) {
            Ok(r) => r,
            Err(e) => {
                check.error(line_no, format!("{e}"));
                check
                    .unparsed
                    .push((line_no, RandomId::parse(values[0], "record_id").ok()));
                prev_known = hash_col.is_some();
                prev_hash_col = hash_col;
                last_hash = hash_col;
                continue;
            }
        };
        if manifest_device.is_some_and(|d| d != record.device) {
            check.error(line_no, "device differs from the manifest's device");
        }
        if let Some(earlier) = seen_ids.insert(record.record_id, line_no) {
            check.error(
                line_no,
                format!("record_id repeats the record on line {earlier} of this bundle"),
            );
        }
        match (prev_col, hash_col) {
            (Some(prev), Some(hash)) => {
                joined.clear();
                for (i, v) in fields.iter().enumerate() {
                    if i > 0 {
                        joined.push('|');
                    }
                    joined.push_str(v);
                }
                if chain_hash_of_fields(&prev, &joined) != hash {
                    check.error(
                        line_no,
                        "hash does not recompute from the values and prev_hash",
                    );
                }
                if prev_known && prev_hash_col != Some(prev) {
                    if line_no == 2 {
                        check.error(line_no, "prev_hash is not the manifest's first_prev_hash");
                    } else {
                        check.error(line_no, "prev_hash is not the previous record's hash");
                    }
                }
                check.entries.push(Entry {
                    line: line_no,
                    record_id: record.record_id,
                    hash,
                    org: record.org,
                    period: record.period,
                    category: record.category,
                });
            }
            _ => {
                check.error(
                    line_no,
                    "prev_hash or hash is not 64 lower-case hex characters",
                );
                check.unparsed.push((line_no, Some(record.record_id)));
            }
        }
        prev_known = hash_col.is_some();
        prev_hash_col = hash_col;
        last_hash = hash_col;
    }
    if line_no == 0 {
        check.error(1, "records.csv is empty (no header)");
    }
    Some((count, last_hash))
}

/// All bundles' verdicts, after the cross-bundle rules.
#[derive(Debug, Clone)]
pub struct Verification {
    /// One per bundle, in the order given.
    pub bundles: Vec<BundleCheck>,
    /// For each bundle, whether it failed on its own (before duplicates and
    /// conflicts were looked at).
    pub failed_alone: Vec<bool>,
}

impl Verification {
    /// Whether any bundle has an error.
    pub fn has_errors(&self) -> bool {
        self.bundles.iter().any(BundleCheck::has_errors)
    }

    /// The records that count: entries of bundles without errors, each
    /// `record_id` once (the first copy).
    pub fn counted(&self) -> impl Iterator<Item = &Entry> {
        let mut seen = std::collections::HashSet::new();
        self.bundles
            .iter()
            .filter(|b| !b.has_errors())
            .flat_map(|b| b.entries.iter())
            .filter(move |e| seen.insert(e.record_id))
    }
}

/// Verifies bundles per spec: each on its own, then, among those that
/// passed, a `record_id` seen twice with the same hash is a duplicate (a
/// warning on each later copy) and with different hashes a conflict (an
/// error in every such bundle holding a copy). `progress` is called after
/// each bundle with (done, total).
pub fn verify_bundles(
    dirs: &[PathBuf],
    register: Option<&KeyRegister>,
    progress: &mut dyn FnMut(usize, usize),
) -> Verification {
    let mut bundles = Vec::with_capacity(dirs.len());
    for (i, dir) in dirs.iter().enumerate() {
        bundles.push(check_bundle(dir, register));
        progress(i + 1, dirs.len());
    }
    let failed_alone: Vec<bool> = bundles.iter().map(BundleCheck::has_errors).collect();

    // record_id → every (bundle, entry index) holding it, among bundles
    // that passed on their own (so a forged bundle cannot knock out a
    // genuine one).
    let mut holders: HashMap<RandomId, Vec<(usize, usize)>> = HashMap::new();
    for (b, bundle) in bundles.iter().enumerate() {
        if failed_alone[b] {
            continue;
        }
        for (e, entry) in bundle.entries.iter().enumerate() {
            holders.entry(entry.record_id).or_default().push((b, e));
        }
    }
    let mut cross: Vec<(usize, Problem)> = Vec::new();
    for copies in holders.values().filter(|c| c.len() > 1) {
        let (fb, fe) = copies[0];
        let first = bundles[fb].entries[fe];
        let conflict = copies
            .iter()
            .any(|&(b, e)| bundles[b].entries[e].hash != first.hash);
        for (k, &(b, e)) in copies.iter().enumerate() {
            let entry = bundles[b].entries[e];
            if conflict {
                cross.push((
                    b,
                    Problem {
                        line: entry.line,
                        severity: Severity::Error,
                        what:
                            "record_id is also in another bundle with different values (conflict)"
                                .into(),
                    },
                ));
            } else if k > 0 {
                let what = if b == fb {
                    // Same bundle twice is caught as an error on its own.
                    continue;
                } else {
                    format!(
                        "duplicate of line {} of {} (counted once)",
                        first.line,
                        bundles[fb].path.display()
                    )
                };
                cross.push((
                    b,
                    Problem {
                        line: entry.line,
                        severity: Severity::Warning,
                        what,
                    },
                ));
            }
        }
    }
    cross.sort_by_key(|(b, p)| (*b, p.line));
    for (b, p) in cross {
        bundles[b].problems.push(p);
    }
    for b in &mut bundles {
        b.problems.sort_by_key(|p| p.line);
    }
    Verification {
        bundles,
        failed_alone,
    }
}
