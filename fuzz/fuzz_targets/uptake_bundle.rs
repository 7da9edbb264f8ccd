//! Fuzz target: uptake bundles from other hospitals, and the auditors'
//! other inputs. The input is split at NUL bytes into up to five parts:
//! `manifest.json`, `records.csv`, the key register, the eligible-cases
//! (denominator) file and a `--by` text. The two bundle files are written
//! to a scratch directory on /dev/shm and checked with `check_bundle` (the
//! verifier reads bundles only from directories); the other parts go to the
//! in-memory parsers (`KeyRegister::parse`, `Denominators::parse`,
//! `Dims::parse`) and on into the report's aggregation and CSV writers.
//!
//! The identifier scanner reads the manifest and records parts too.
//!
//! Checks: no panic; every record line that `Record::from_fields` accepts
//! writes back to exactly its CSV text and hashes as its text does; the
//! verifier accounts for every line of `records.csv` exactly once (entry or
//! unparsed) and its entries are exactly the lines an independent parse
//! accepts; problems name lines that exist, are errors, and are short ASCII
//! text (no refused value echoed), all errors but for the manifest's
//! unknown-key warning; a bundle that passes, given twice, is
//! one duplicate per record and no error; an accepted register holds every
//! key it lists; refusals of the register and denominator files name an
//! existing line; report rows are sorted, unique, and add up to the
//! monitored records.
#![no_main]

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use odm_uptake::bundle::{MANIFEST_FILE, RECORDS_FILE};
use odm_uptake::record::{bytes_from_hex, chain_hash_of_fields};
use odm_uptake::report::{
    Denominators, Dims, aggregate, excluded_csv, excluded_records, report_csv,
};
use odm_uptake::scan::{manifest_export_time, scan_for_identifiers};
use odm_uptake::verify::{
    KeyRegister, Problem, Severity, Verification, check_bundle, verify_bundles,
};
use odm_uptake::{ChainHash, RandomId, Record};

/// One scratch bundle directory per fuzzing process, on tmpfs when there is one.
fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = Path::new("/dev/shm");
        let base = if base.is_dir() {
            base.to_owned()
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!("odm-fuzz-uptake-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch directory");
        dir
    })
}

/// The lines `records.csv` is read as (`read_until(b'\n')`): a final line
/// without `\n` counts, an empty remainder after the last `\n` does not.
/// The one warning a bundle alone may carry: manifest keys outside the
/// format, counted on line 0.
fn is_unknown_key_warning(p: &Problem) -> bool {
    p.line == 0 && p.what.contains("key(s) outside the format")
}

fn csv_lines(data: &[u8]) -> Vec<&[u8]> {
    let mut lines: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    if lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    lines
}

/// Parses one record line independently of the verifier: `Some` when the
/// verifier must make it an entry (UTF-8, 15 values, the 13 fields valid,
/// both hash columns 64 lower-case hex). Checks the record's canonical
/// round trip on the way.
fn record_line(line: &[u8]) -> Option<(RandomId, ChainHash)> {
    let text = std::str::from_utf8(line).ok()?;
    let values: Vec<&str> = text.split(',').collect();
    if values.len() < 13 {
        return None;
    }
    let fields: [&str; 13] = values[..13].try_into().ok()?;
    if let Ok(record) = Record::from_fields(&fields) {
        // Parsing is strict so that writing back gives the same text, and
        // so the same hash.
        let mut csv = String::new();
        record.write_fields(',', &mut csv);
        assert_eq!(csv, fields.join(","));
        let piped = fields.join("|");
        assert_eq!(
            record.chain_hash(&ChainHash::GENESIS),
            chain_hash_of_fields(&ChainHash::GENESIS, &piped)
        );
        if values.len() == 15 {
            let prev = ChainHash::from_hex(values[13])?;
            let hash = ChainHash::from_hex(values[14])?;
            assert_eq!(
                record.chain_hash(&prev),
                chain_hash_of_fields(&prev, &piped)
            );
            return Some((record.record_id, hash));
        }
    }
    None
}

fn check_register(text: &str) -> Option<KeyRegister> {
    match KeyRegister::parse(text) {
        Ok(register) => {
            for line in text.lines().skip(1) {
                let line = line.trim_end_matches('\r');
                if line.is_empty() {
                    continue;
                }
                let (device, key) = line.split_once(',').expect("accepted line has a comma");
                let device = RandomId::parse(device, "device").expect("accepted device");
                let key = bytes_from_hex::<32>(key).expect("accepted key");
                assert_eq!(register.key_of(&device), Some(&key));
            }
            Some(register)
        }
        Err((line, what)) => {
            assert!(line >= 1 && line <= text.lines().count().max(1) as u64);
            assert!(!what.is_empty());
            None
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(5, |&b| b == 0);
    let manifest = parts.next().unwrap_or_default();
    let records = parts.next().unwrap_or_default();
    let register_text = parts.next().map(String::from_utf8_lossy);
    let denominator_text = parts.next().map(String::from_utf8_lossy);
    let dims_text = parts.next().map(String::from_utf8_lossy);

    let register = register_text.as_deref().and_then(check_register);

    // The identifier scanner reads any file, the manifest's export time
    // stamp included.
    for part in [manifest, records] {
        for f in scan_for_identifiers(part) {
            assert!(f.offset < part.len());
        }
    }
    if let Some(r) = manifest_export_time(manifest) {
        assert!(r.start <= r.end && r.end <= manifest.len());
        assert!(!manifest[r].contains(&b'"'));
    }

    // The bundle.
    let dir = scratch();
    std::fs::write(dir.join(MANIFEST_FILE), manifest).expect("write manifest");
    std::fs::write(dir.join(RECORDS_FILE), records).expect("write records");
    let check = check_bundle(dir, register.as_ref());

    let lines = csv_lines(records);
    let n_lines = lines.len() as u64;
    assert_eq!(check.has_errors(), check.first_error().is_some());
    for p in &check.problems {
        assert!(
            p.severity == Severity::Error || is_unknown_key_warning(p),
            "a bundle alone has only errors and the unknown-key warning: {p:?}"
        );
        assert!(
            p.line <= n_lines.max(1),
            "problem on line {} of {n_lines}",
            p.line
        );
        assert!(
            !p.what.is_empty() && p.what.len() <= 120 && p.what.is_ascii(),
            "{:?}",
            p.what
        );
    }
    // Every record line is an entry or unparsed, once, in order.
    let mut accounted: Vec<u64> = check
        .entries
        .iter()
        .map(|e| e.line)
        .chain(check.unparsed.iter().map(|u| u.0))
        .collect();
    accounted.sort_unstable();
    let expected: Vec<u64> = (2..=n_lines).collect();
    assert_eq!(accounted, expected);
    // The entries are exactly the lines that parse on their own.
    let independent: Vec<(u64, RandomId, ChainHash)> = lines
        .iter()
        .zip(1u64..)
        .skip(1)
        .filter_map(|(l, n)| record_line(l).map(|(id, hash)| (n, id, hash)))
        .collect();
    let entries: Vec<(u64, RandomId, ChainHash)> = check
        .entries
        .iter()
        .map(|e| (e.line, e.record_id, e.hash))
        .collect();
    assert_eq!(entries, independent);
    if !check.has_errors() {
        assert!(check.unparsed.is_empty());
        // The same bundle twice: every record is a duplicate, not a conflict.
        let twice = verify_bundles(
            &[dir.to_owned(), dir.to_owned()],
            register.as_ref(),
            &mut |_, _| {},
        );
        assert!(!twice.has_errors());
        // One duplicate warning per record, beside the unknown-key warning
        // that each copy's manifest may carry (found by fuzz/smoke.sh: a
        // manifest with an extra key, 2026-12-04).
        let duplicates = twice.bundles[1]
            .problems
            .iter()
            .filter(|p| !is_unknown_key_warning(p))
            .count();
        assert_eq!(duplicates, check.entries.len());
        assert_eq!(twice.counted().count(), check.entries.len());
    }

    // What the report makes of it.
    let failed = check.has_errors();
    let verification = Verification {
        bundles: vec![check],
        failed_alone: vec![failed],
    };
    let excluded = excluded_records(&verification);
    let b = &verification.bundles[0];
    if failed {
        assert_eq!(excluded.len(), (b.entries.len() + b.unparsed.len()).max(1));
        assert!(excluded.iter().all(|e| !e.reason.is_empty()));
    } else {
        assert!(excluded.is_empty());
    }
    assert_eq!(excluded_csv(&excluded).lines().count(), excluded.len() + 1);

    let Some(den_text) = denominator_text else {
        return;
    };
    let denominators = match Denominators::parse(&den_text) {
        Ok(d) => d,
        Err((line, what)) => {
            assert!(line >= 1 && line <= den_text.lines().count().max(1) as u64);
            assert!(!what.is_empty());
            return;
        }
    };
    let dims = match dims_text.as_deref().map(Dims::parse) {
        None => Dims::ALL,
        Some(Ok(d)) => d,
        Some(Err(_)) => return,
    };
    let mut monitored = HashMap::new();
    for e in verification.counted() {
        *monitored
            .entry((e.org, e.period, e.category))
            .or_insert(0u64) += 1;
    }
    let (rows, missing) = aggregate(&monitored, &denominators, dims);
    let total: u64 = monitored.values().sum();
    assert_eq!(rows.iter().map(|r| r.monitored).sum::<u64>(), total);
    for pair in rows.windows(2) {
        assert!(
            (&pair[0].org, &pair[0].period, &pair[0].category)
                < (&pair[1].org, &pair[1].period, &pair[1].category)
        );
    }
    for r in &rows {
        assert!(r.monitored > 0 || r.eligible.is_some_and(|e| e > 0));
        let pct = r.uptake_pct();
        assert!(
            pct.is_empty()
                || pct == "*"
                || pct.parse::<f64>().is_ok_and(|p| p.is_finite() && p >= 0.0),
            "{pct}"
        );
    }
    let missing_set: HashSet<_> = missing.iter().collect();
    assert_eq!(missing_set.len(), missing.len());
    for cell in &missing {
        assert!(monitored.get(cell).is_some_and(|&n| n > 0));
    }
    assert_eq!(report_csv(&rows).lines().count(), rows.len() + 1);
});
