//! `odm uptake`: anonymised uptake records — set up a device, export signed
//! bundles, verify them and make the auditors' report
//! (`shared/spec/uptake-bundle.md`, `docs/uptake.md`).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use crate::UsageError;
use anyhow::{Context, bail};
use odm_uptake::report::{Denominators, Dims};
use odm_uptake::scan::{IdentifierKind, manifest_export_time, scan_for_identifiers};
use odm_uptake::store::DB_ENV;
use odm_uptake::verify::{KeyRegister, verify_bundles};
use odm_uptake::{ChainHash, OdsCode, Settings, UptakeStore};

/// Arguments of `odm uptake`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Set up this monitor: store, device pseudonym and Ed25519 key pair;
    /// prints the `device,public_key` line to register.
    Init {
        /// The uptake database to create.
        #[arg(long)]
        db: PathBuf,
        /// ODS code of the trust (3 characters) or site (5) the monitor serves.
        #[arg(long)]
        org: String,
        /// Directory for the private key file (default: beside the database).
        #[arg(long)]
        key_dir: Option<PathBuf>,
    },
    /// Print this device's `device,public_key` register line.
    RegisterKey {
        /// The uptake database.
        #[arg(long)]
        db: PathBuf,
        /// Print the register's header line first.
        #[arg(long)]
        header: bool,
    },
    /// Check the store's hash chain and signed head; print the record count.
    Check {
        /// The uptake database.
        #[arg(long)]
        db: PathBuf,
    },
    /// Export the store's records as a signed bundle (records.csv + manifest.json).
    Export {
        /// The uptake database.
        #[arg(long)]
        db: PathBuf,
        /// The bundle directory to write (must not hold a bundle already).
        #[arg(long)]
        out: PathBuf,
        /// Only records after the record with this hash (the head_hash of
        /// the previous bundle), so the new bundle continues it.
        #[arg(long)]
        after: Option<String>,
        /// The private key file (default: the one recorded at init).
        #[arg(long)]
        key: Option<PathBuf>,
    },
    /// Verify bundles exactly per the spec; exit 1 when any has an error.
    Verify {
        /// The programme's key register (`device,public_key`).
        #[arg(long)]
        keys: Option<PathBuf>,
        /// Bundle directories.
        #[arg(required = true)]
        bundles: Vec<PathBuf>,
    },
    /// The auditors' report: report.csv, excluded.csv and report.html.
    Report {
        /// Directory whose sub-directories holding manifest.json are bundles.
        #[arg(long)]
        bundles: PathBuf,
        /// Eligible cases: `org,period,category,eligible`.
        #[arg(long)]
        eligible: PathBuf,
        /// The programme's key register (`device,public_key`).
        #[arg(long)]
        keys: Option<PathBuf>,
        /// Comma-separated subset of org,period,category (default all three).
        #[arg(long, default_value = "org,period,category", value_parser = parse_dims)]
        by: Dims,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
    },
    /// Append N synthetic records to a store (demonstrations, benchmarks).
    Demo {
        /// The uptake database (made with `init`).
        #[arg(long)]
        db: PathBuf,
        /// How many records.
        #[arg(long)]
        records: u64,
        /// Random seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Write synthetic signed bundles, eligible.csv and register.csv into a
    /// directory (report demonstrations, benchmarks).
    DemoBundles {
        /// Output directory (bundles go in OUT/bundles).
        #[arg(long)]
        out: PathBuf,
        /// Number of devices (one bundle each).
        #[arg(long, default_value_t = 4)]
        devices: usize,
        /// Records per device.
        #[arg(long, default_value_t = 500)]
        records: u64,
        /// Random seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Scan files for patient identifiers (NHS numbers, full dates,
    /// postcodes); exit 1 when any is found.
    Scan {
        /// Files to scan.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

/// Runs `odm uptake`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let settings = Settings::from_env();
    match args.command {
        Command::Init { db, org, key_dir } => init(&db, &org, key_dir, settings),
        Command::RegisterKey { db, header } => {
            let store = open_store(&db, None)?;
            if header {
                println!("device,public_key");
            }
            println!("{}", store.register_line().unwrap_or_default());
            Ok(())
        }
        Command::Check { db } => {
            let store = open_store(&db, None)?;
            let n = store
                .verify_chain()
                .with_context(|| format!("checking {}", db.display()))?;
            println!(
                "{}: {n} records, hash chain and signed head intact",
                db.display()
            );
            Ok(())
        }
        Command::Export {
            db,
            out,
            after,
            key,
        } => export(&db, &out, after.as_deref(), key.as_deref()),
        Command::Verify { keys, bundles } => verify(keys.as_deref(), &bundles),
        Command::Report {
            bundles,
            eligible,
            keys,
            by,
            out,
        } => report(&bundles, &eligible, keys.as_deref(), by, &out),
        Command::Demo { db, records, seed } => demo(&db, records, seed, settings),
        Command::DemoBundles {
            out,
            devices,
            records,
            seed,
        } => {
            let made = odm_uptake::demo::write_synthetic_bundles(&out, devices, records, seed)
                .with_context(|| format!("writing synthetic bundles into {}", out.display()))?;
            println!(
                "wrote {} bundles of {records} synthetic records, {} and {}",
                made.bundles.len(),
                made.eligible_csv.display(),
                made.register_csv.display()
            );
            Ok(())
        }
        Command::Scan { files } => scan(&files),
    }
}

/// `--by` is checked by clap, so a bad value is a usage error (exit 2).
fn parse_dims(text: &str) -> Result<Dims, String> {
    Dims::parse(text).map_err(|e| e.to_string())
}

/// Opens the store for commands that read it; participation is not
/// consulted here (exporting or checking existing records writes none).
/// Opens an existing store, whatever `ODM_UPTAKE` says (its data are to be
/// exported, checked or registered). Opening closes the cases a crash left
/// open, as the monitor's next start would: that write is said on standard
/// error, with the damaged open cases dropped.
fn open_store(db: &Path, key: Option<&Path>) -> anyhow::Result<UptakeStore> {
    let on = Settings {
        participation: true,
    };
    let store = UptakeStore::open_with_key(db, key, on)
        .with_context(|| format!("opening uptake store {}", db.display()))?;
    let (recovered, discarded) = (store.recovered_cases(), store.discarded_cases());
    if recovered > 0 {
        eprintln!(
            "odm uptake: {}: {recovered} case(s) left open by a crash closed into records",
            db.display()
        );
    }
    if discarded > 0 {
        eprintln!(
            "odm uptake: {}: {discarded} damaged open case(s) dropped: they could not be records",
            db.display()
        );
    }
    Ok(store)
}

fn init(db: &Path, org: &str, key_dir: Option<PathBuf>, settings: Settings) -> anyhow::Result<()> {
    if !settings.participation {
        bail!("uptake participation is switched off (ODM_UPTAKE=off): nothing written");
    }
    // A value that fails is named by its flag only, never echoed: it may be
    // an identifier typed into the wrong place.
    let org = OdsCode::parse(org).map_err(|e| UsageError(format!("--org: {e}")))?;
    let key_dir = key_dir.unwrap_or_else(|| {
        db.parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(Path::to_owned)
            .unwrap_or_else(|| PathBuf::from("."))
    });
    std::fs::create_dir_all(&key_dir)
        .with_context(|| format!("creating key directory {}", key_dir.display()))?;
    let key_path = key_dir.join("odm-uptake-device.key");
    let line = UptakeStore::init(db, org, &key_path, settings)
        .with_context(|| format!("initialising {}", db.display()))?
        .unwrap_or_default();
    eprintln!(
        "initialised {} for {org}; private key {} (owner-only); register this line:",
        db.display(),
        key_path.display()
    );
    println!("{line}");
    Ok(())
}

fn export(db: &Path, out: &Path, after: Option<&str>, key: Option<&Path>) -> anyhow::Result<()> {
    let after = after
        .map(|h| {
            ChainHash::from_hex(h)
                .ok_or_else(|| UsageError("--after: expected 64 lower-case hex characters".into()))
        })
        .transpose()?;
    let store = open_store(db, key)?;
    let summary = odm_uptake::bundle::export_bundle(&store, out, after)
        .with_context(|| format!("exporting {} to {}", db.display(), out.display()))?;
    println!(
        "exported {} records to {} (head_hash {})",
        summary.records,
        out.display(),
        summary.head_hash
    );
    Ok(())
}

/// A progress line on standard error, only when it is a terminal.
fn progress_printer(label: &'static str) -> impl FnMut(usize, usize) {
    let tty = std::io::stderr().is_terminal();
    move |done, total| {
        if tty && total > 1 {
            eprint!("\r{label}: {done}/{total} bundles");
            if done == total {
                eprintln!();
            }
        }
    }
}

/// Loads the key register; without one, says on standard error what the
/// signatures then prove: only that each bundle is as its own key signed
/// it. A bundle edited and signed again with a new key passes alone, and
/// its conflicts can then knock a genuine bundle's records out.
fn load_register(keys: Option<&Path>, command: &str) -> anyhow::Result<Option<KeyRegister>> {
    if keys.is_none() {
        eprintln!(
            "odm uptake {command}: no --keys: each bundle's signature is checked against the key in \
             its own manifest only, so a bundle re-signed with another key is not detected"
        );
    }
    keys.map(|k| KeyRegister::load(k).context("reading the key register"))
        .transpose()
}

fn verify(keys: Option<&Path>, bundles: &[PathBuf]) -> anyhow::Result<()> {
    let register = load_register(keys, "verify")?;
    let verification = verify_bundles(
        bundles,
        register.as_ref(),
        &mut progress_printer("verifying"),
    );
    for b in &verification.bundles {
        for line in b.lines() {
            println!("{line}");
        }
    }
    let failed = verification
        .bundles
        .iter()
        .filter(|b| b.has_errors())
        .count();
    if failed > 0 {
        bail!("{failed} of {} bundles have errors", bundles.len());
    }
    Ok(())
}

fn report(
    bundles: &Path,
    eligible: &Path,
    keys: Option<&Path>,
    dims: Dims,
    out: &Path,
) -> anyhow::Result<()> {
    let register = load_register(keys, "report")?;
    let denominators = Denominators::load(eligible)?;
    let outcome = odm_uptake::report::write_report(
        bundles,
        &denominators,
        register.as_ref(),
        dims,
        out,
        &mut progress_printer("verifying"),
    )
    .with_context(|| format!("writing the report into {}", out.display()))?;
    for b in &outcome.verification.bundles {
        if b.has_errors() {
            eprintln!(
                "odm uptake report: excluded {} (its records are listed in excluded.csv):",
                b.path.display()
            );
        }
        for line in b.lines() {
            eprintln!("  {line}");
        }
    }
    for (org, period, category) in &outcome.missing_denominators {
        eprintln!(
            "odm uptake report: no eligible count for {org},{period},{category} in {}: uptake cannot be judged there",
            eligible.display()
        );
    }
    eprintln!(
        "odm uptake report: {} records counted, {} rows written to {}",
        outcome.counted_records,
        outcome.rows,
        out.display()
    );
    Ok(())
}

fn demo(db: &Path, records: u64, seed: u64, settings: Settings) -> anyhow::Result<()> {
    if !settings.participation {
        bail!("uptake participation is switched off (ODM_UPTAKE=off): nothing written");
    }
    // Synthetic records look exactly like real ones and a chain can never
    // lose one: only a store made for the demonstration may take them.
    let live = std::env::var_os(DB_ENV)
        .map(PathBuf::from)
        .is_some_and(|live| same_file(&live, db));
    if live {
        bail!(
            "{} is the monitor's uptake store ({DB_ENV}): synthetic records would count as real cases",
            db.display()
        );
    }
    let mut store = open_store(db, None)?;
    let (Some(device), Some(org)) = (store.device(), store.org()) else {
        bail!("uptake store {} has no device", db.display());
    };
    let held = store
        .for_each_record(None, |_| Ok(()))
        .with_context(|| format!("reading {}", db.display()))?;
    if held > 0 {
        bail!(
            "{} already holds {held} records: synthetic records go only into a new, empty store (made with `init` for the demonstration), since in a live chain they would count as real cases and could never be removed",
            db.display()
        );
    }
    // The last twelve months, ending with this one.
    let now = odm_uptake::Period::current_utc();
    let first = odm_uptake::Period::new(now.year().saturating_sub(1).max(1000), now.month())
        .unwrap_or(now)
        .plus_months(1);
    let generator = odm_uptake::demo::SyntheticRecords::new(seed, device, &[org], first, 12);
    let n = store
        .append_records(generator.take(usize::try_from(records).unwrap_or(usize::MAX)))
        .with_context(|| format!("appending synthetic records to {}", db.display()))?;
    println!("appended {n} synthetic records to {}", db.display());
    Ok(())
}

/// Whether two paths name the same existing file.
fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

fn scan(files: &[PathBuf]) -> anyhow::Result<()> {
    let mut total = 0usize;
    for file in files {
        let data = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        // A bundle manifest's `exported_utc` is the export's time stamp,
        // which the spec requires; it is said, not counted.
        let export_time = manifest_export_time(&data);
        if let Some(range) = &export_time {
            println!(
                "{}: byte {}: the export's time stamp (exported_utc), not counted",
                file.display(),
                range.start
            );
        }
        for f in scan_for_identifiers(&data) {
            if export_time.as_ref().is_some_and(|r| r.contains(&f.offset)) {
                continue;
            }
            let kind = match f.kind {
                IdentifierKind::NhsNumber => "NHS number",
                IdentifierKind::FullDate => "full date",
                IdentifierKind::Postcode => "postcode",
            };
            println!("{}: byte {}: {kind}", file.display(), f.offset);
            total += 1;
        }
    }
    if total > 0 {
        bail!("{total} possible identifiers found");
    }
    Ok(())
}
