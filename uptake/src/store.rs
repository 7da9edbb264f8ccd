//! The monitor's uptake store: an append-only, hash-chained SQLite database.
//!
//! - Closed records live in table `record`; triggers refuse every UPDATE and
//!   DELETE on it, and each row carries the hash chain of
//!   `shared/spec/uptake-bundle.md`, so an edit, deletion, insertion or
//!   reordering made behind SQLite's back is found by
//!   [`UptakeStore::verify_chain`]. The head of the chain (count and last
//!   hash) is kept signed by the device key in `chain_head`, so cutting
//!   records off the end is found too.
//! - A case being monitored lives in `open_case` and is updated as the
//!   monitor learns more; [`UptakeStore::close_case`] turns it into a record.
//!   A case left open by a crash is closed by the next [`UptakeStore::open`].
//! - WAL journal with `synchronous=FULL`: a closed record survives a power
//!   cut. The schema version is `PRAGMA user_version`, upgraded by
//!   [`MIGRATIONS`].
//! - When participation is off ([`Settings`]), nothing is opened or written.
//!
//! One process owns a store at a time (the monitor); call it from a
//! background thread, never from the signal-processing thread: each update
//! is a durable SQLite write.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use crate::identity::{DeviceIdentity, KeyError, signature_verifies};
use crate::record::{
    AcceptedFraction, AgeBand, BolusMl, Category, ChainHash, Eligibility, FieldError, Minutes,
    OdsCode, Period, RandomId, Record, Software,
};

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite refused an operation.
    #[error("uptake store {path}: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// The database has not been initialised with `init`.
    #[error("uptake store {0} is not initialised (run `odm uptake init`)")]
    NotInitialised(PathBuf),
    /// The database was already initialised.
    #[error("uptake store {0} is already initialised")]
    AlreadyInitialised(PathBuf),
    /// The database was made by newer software.
    #[error("uptake store {path}: schema version {found} is newer than this software's {known}")]
    NewerSchema {
        /// The database file.
        path: PathBuf,
        /// Its `user_version`.
        found: i64,
        /// The newest version this software knows.
        known: usize,
    },
    /// A stored value is not a valid record field.
    #[error("uptake store {path}: record {seq}: {source}")]
    BadField {
        /// The database file.
        path: PathBuf,
        /// The row's sequence number.
        seq: i64,
        /// The field problem.
        source: FieldError,
    },
    /// The hash chain does not hold: something was edited, deleted,
    /// inserted or reordered.
    #[error("uptake store {path}: hash chain broken at record {seq}: {what}")]
    ChainBroken {
        /// The database file.
        path: PathBuf,
        /// Sequence number of the first record that fails (0: the head).
        seq: i64,
        /// What fails.
        what: &'static str,
    },
    /// The device key could not be used.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A record of another device was offered.
    #[error("uptake store {0}: record belongs to another device")]
    ForeignDevice(PathBuf),
    /// The case handle does not name an open case of this store.
    #[error("uptake store {path}: case {case_id} is not open")]
    NoSuchCase {
        /// The database file.
        path: PathBuf,
        /// The case id.
        case_id: i64,
    },
}

/// Whether this installation takes part in uptake counting.
///
/// The one switch: environment variable `ODM_UPTAKE=off` (also `0`,
/// `false`, `no`) turns participation off; then nothing is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// `false`: no store is opened and nothing is written.
    pub participation: bool,
}

/// The environment variable that switches participation off.
pub const OPT_OUT_ENV: &str = "ODM_UPTAKE";

/// The environment variable naming the store the monitor counts into
/// (made by `odm uptake init`; unset: the monitor does not count).
pub const DB_ENV: &str = "ODM_UPTAKE_DB";

impl Settings {
    /// Participation on, unless `ODM_UPTAKE` says `off`, `0`, `false` or
    /// `no` (any case).
    pub fn from_env() -> Self {
        let value = std::env::var(OPT_OUT_ENV).unwrap_or_default();
        Self::from_opt_out_value(&value)
    }

    /// Settings from the value of `ODM_UPTAKE` (empty: not set).
    pub fn from_opt_out_value(value: &str) -> Self {
        let off = matches!(
            value.trim().to_ascii_lowercase().as_str(),
            "off" | "0" | "false" | "no"
        );
        Self {
            participation: !off,
        }
    }
}

/// Schema migrations: entry `i` upgrades `user_version` `i` to `i + 1`.
pub const MIGRATIONS: &[&str] = &[
    // Version 1.
    "
    CREATE TABLE device (
        singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
        device TEXT NOT NULL,
        org TEXT NOT NULL,
        public_key TEXT NOT NULL,
        key_path TEXT NOT NULL
    );
    CREATE TABLE record (
        seq INTEGER PRIMARY KEY,
        record_id TEXT NOT NULL UNIQUE,
        device TEXT NOT NULL,
        org TEXT NOT NULL,
        period TEXT NOT NULL,
        category TEXT NOT NULL,
        eligibility TEXT NOT NULL,
        age_band TEXT NOT NULL,
        minutes INTEGER NOT NULL CHECK (minutes >= 0 AND minutes % 15 = 0),
        boluses INTEGER NOT NULL CHECK (boluses >= 0),
        bolus_ml INTEGER NOT NULL CHECK (bolus_ml >= 0 AND bolus_ml % 50 = 0),
        accepted_fraction TEXT NOT NULL,
        probe_model INTEGER NOT NULL CHECK (probe_model BETWEEN 0 AND 255),
        software TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL UNIQUE
    );
    CREATE TRIGGER record_no_update BEFORE UPDATE ON record
        BEGIN SELECT RAISE(ABORT, 'uptake records are append-only'); END;
    CREATE TRIGGER record_no_delete BEFORE DELETE ON record
        BEGIN SELECT RAISE(ABORT, 'uptake records are append-only'); END;
    CREATE TABLE chain_head (
        singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
        records INTEGER NOT NULL,
        head_hash TEXT NOT NULL,
        signature TEXT NOT NULL
    );
    CREATE TABLE open_case (
        case_id INTEGER PRIMARY KEY,
        org TEXT NOT NULL,
        period TEXT NOT NULL,
        category TEXT NOT NULL,
        eligibility TEXT NOT NULL,
        age_band TEXT NOT NULL,
        monitored_s INTEGER NOT NULL DEFAULT 0,
        boluses INTEGER NOT NULL DEFAULT 0,
        bolus_ml_total INTEGER NOT NULL DEFAULT 0,
        beats_accepted INTEGER NOT NULL DEFAULT 0,
        beats_total INTEGER NOT NULL DEFAULT 0,
        probe_model INTEGER NOT NULL,
        software TEXT NOT NULL
    );
    ",
];

/// A record as stored: the record and its place in the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainedRecord {
    /// The 13 fields.
    pub record: Record,
    /// The hash of the record before it (64 zeros for the first).
    pub prev_hash: ChainHash,
    /// This record's hash.
    pub hash: ChainHash,
}

/// Names one open case (returned by [`UptakeStore::open_case`]).
#[derive(Debug, PartialEq, Eq)]
pub struct CaseHandle {
    /// `None` when participation is off: every update is then a no-op.
    case_id: Option<i64>,
}

/// The signed text that protects the chain's head against truncation.
fn head_signing_text(records: i64, head: &ChainHash) -> String {
    format!("odm-uptake-store-head|{records}|{head}")
}

struct Inner {
    conn: Connection,
    path: PathBuf,
    identity: DeviceIdentity,
    org: OdsCode,
}

/// The monitor's uptake store (see the module documentation).
pub struct UptakeStore {
    inner: Option<Inner>,
    recovered_cases: usize,
    discarded_cases: usize,
}

fn configure(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let sql = |source| StoreError::Sqlite {
        path: path.to_owned(),
        source,
    };
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(sql)?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(sql)?;
    conn.busy_timeout(std::time::Duration::from_secs(2))
        .map_err(sql)?;
    Ok(())
}

fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let sql = |source| StoreError::Sqlite {
        path: path.to_owned(),
        source,
    };
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(sql)?;
    if version < 0 || version as usize > MIGRATIONS.len() {
        return Err(StoreError::NewerSchema {
            path: path.to_owned(),
            found: version,
            known: MIGRATIONS.len(),
        });
    }
    for (i, step) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction().map_err(sql)?;
        tx.execute_batch(step).map_err(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)
            .map_err(sql)?;
        tx.commit().map_err(sql)?;
    }
    Ok(())
}

/// Where the device key recorded at init is now. Stores made before key
/// paths were stored absolute may hold one relative to the directory `init`
/// ran in; when it is not found from here, the key's file beside the
/// database (the default location) is tried.
fn stored_key_location(db: &Path, stored: &Path) -> PathBuf {
    if stored.is_absolute() || stored.exists() {
        return stored.to_owned();
    }
    let beside_db = db
        .parent()
        .zip(stored.file_name())
        .map(|(dir, name)| dir.join(name));
    match beside_db {
        Some(p) if p.exists() => p,
        _ => stored.to_owned(),
    }
}

impl UptakeStore {
    /// Creates the store at `db` for organisation `org`: the database, a new
    /// device pseudonym and key pair, the private key written to
    /// `key_path` (owner-only). Returns the identity's register line
    /// `device,public_key`. With participation off, writes nothing and
    /// returns `None`.
    pub fn init(
        db: &Path,
        org: OdsCode,
        key_path: &Path,
        settings: Settings,
    ) -> Result<Option<String>, StoreError> {
        if !settings.participation {
            return Ok(None);
        }
        let sql = |source| StoreError::Sqlite {
            path: db.to_owned(),
            source,
        };
        let mut conn = Connection::open(db).map_err(sql)?;
        configure(&conn, db)?;
        migrate(&mut conn, db)?;
        let existing: i64 = conn
            .query_row("SELECT count(*) FROM device", [], |r| r.get(0))
            .map_err(sql)?;
        if existing != 0 {
            return Err(StoreError::AlreadyInitialised(db.to_owned()));
        }
        let identity = DeviceIdentity::generate();
        identity.save(key_path)?;
        // Stored absolute: the store is opened from other working
        // directories than the one `init` ran in (a monitor, an export).
        let key_path = std::path::absolute(key_path).unwrap_or_else(|_| key_path.to_owned());
        let key_path_text = key_path.to_string_lossy();
        let head_sig = identity.sign(head_signing_text(0, &ChainHash::GENESIS).as_bytes());
        let tx = conn.transaction().map_err(sql)?;
        tx.execute(
            "INSERT INTO device (singleton, device, org, public_key, key_path) VALUES (1, ?1, ?2, ?3, ?4)",
            params![
                identity.device.to_string(),
                org.as_str(),
                identity.public_key_hex(),
                key_path_text
            ],
        )
        .map_err(sql)?;
        tx.execute(
            "INSERT INTO chain_head (singleton, records, head_hash, signature) VALUES (1, 0, ?1, ?2)",
            params![
                ChainHash::GENESIS.to_hex(),
                crate::record::hex_from_bytes(&head_sig)
            ],
        )
        .map_err(sql)?;
        tx.commit().map_err(sql)?;
        Ok(Some(identity.register_line()))
    }

    /// Opens the store at `db`, first initialising it (as [`UptakeStore::init`])
    /// when the file does not exist yet: what a monitor does on every start.
    pub fn open_or_init(
        db: &Path,
        org: OdsCode,
        key_path: &Path,
        settings: Settings,
    ) -> Result<Self, StoreError> {
        if settings.participation && !db.exists() {
            Self::init(db, org, key_path, settings)?;
        }
        Self::open(db, settings)
    }

    /// Opens an initialised store, closing any case left open by a crash
    /// (see [`UptakeStore::recovered_cases`]). With participation off,
    /// returns a store that writes nothing and touches no file.
    pub fn open(db: &Path, settings: Settings) -> Result<Self, StoreError> {
        Self::open_with_key(db, None, settings)
    }

    /// As [`UptakeStore::open`], reading the device key from `key_path`
    /// instead of the path recorded at init.
    pub fn open_with_key(
        db: &Path,
        key_path: Option<&Path>,
        settings: Settings,
    ) -> Result<Self, StoreError> {
        if !settings.participation {
            return Ok(Self {
                inner: None,
                recovered_cases: 0,
                discarded_cases: 0,
            });
        }
        if !db.exists() {
            return Err(StoreError::NotInitialised(db.to_owned()));
        }
        let sql = |source| StoreError::Sqlite {
            path: db.to_owned(),
            source,
        };
        let mut conn = Connection::open_with_flags(
            db,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(sql)?;
        configure(&conn, db)?;
        migrate(&mut conn, db)?;
        let row: Option<(String, String, String, String)> = conn
            .query_row(
                "SELECT device, org, public_key, key_path FROM device WHERE singleton = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()
            .map_err(sql)?;
        let Some((device, org, public_key, stored_key_path)) = row else {
            return Err(StoreError::NotInitialised(db.to_owned()));
        };
        let bad = |source| StoreError::BadField {
            path: db.to_owned(),
            seq: 0,
            source,
        };
        let device = RandomId::parse(&device, "device").map_err(bad)?;
        let org = OdsCode::parse(&org).map_err(bad)?;
        let key_path = key_path
            .map(Path::to_owned)
            .unwrap_or_else(|| stored_key_location(db, Path::new(&stored_key_path)));
        let identity = DeviceIdentity::load(&key_path)?;
        if identity.device != device || identity.public_key_hex() != public_key {
            return Err(KeyError::Malformed {
                path: key_path,
                what: "this key belongs to another device than the store's",
            }
            .into());
        }
        let mut store = Self {
            inner: Some(Inner {
                conn,
                path: db.to_owned(),
                identity,
                org,
            }),
            recovered_cases: 0,
            discarded_cases: 0,
        };
        store.close_stale_cases()?;
        Ok(store)
    }

    /// How many cases left open by an earlier run were closed on opening.
    pub fn recovered_cases(&self) -> usize {
        self.recovered_cases
    }

    /// How many cases left open by an earlier run held a value outside its
    /// vocabulary (a damaged or edited row) and were dropped on opening:
    /// such a row cannot become a record, and keeping it would stop every
    /// later opening of the store, i.e. all counting.
    pub fn discarded_cases(&self) -> usize {
        self.discarded_cases
    }

    /// Whether this store writes anything (participation on).
    pub fn is_active(&self) -> bool {
        self.inner.is_some()
    }

    /// The device pseudonym (`None` with participation off).
    pub fn device(&self) -> Option<RandomId> {
        self.inner.as_ref().map(|i| i.identity.device)
    }

    /// The organisation given at init (`None` with participation off).
    pub fn org(&self) -> Option<OdsCode> {
        self.inner.as_ref().map(|i| i.org)
    }

    /// The register line `device,public_key` (`None` with participation off).
    pub fn register_line(&self) -> Option<String> {
        self.inner.as_ref().map(|i| i.identity.register_line())
    }

    pub(crate) fn identity(&self) -> Option<&DeviceIdentity> {
        self.inner.as_ref().map(|i| &i.identity)
    }

    fn close_stale_cases(&mut self) -> Result<(), StoreError> {
        let Some(inner) = &self.inner else {
            return Ok(());
        };
        let ids: Vec<i64> = {
            let mut stmt = inner
                .conn
                .prepare("SELECT case_id FROM open_case ORDER BY case_id")
                .map_err(|source| inner.sql_err(source))?;
            let rows = stmt
                .query_map([], |r| r.get(0))
                .map_err(|source| inner.sql_err(source))?;
            rows.collect::<Result<_, _>>()
                .map_err(|source| inner.sql_err(source))?
        };
        for &case_id in &ids {
            match self.close_case(CaseHandle {
                case_id: Some(case_id),
            }) {
                Ok(_) => self.recovered_cases += 1,
                // A value out of its vocabulary, or of the wrong SQL type
                // in the open case's row (written behind the store's back):
                // it can never be a record, and must not stop every later
                // opening. (`close_case` reports the row's type errors as
                // `BadField`; any other SQL error, e.g. a damaged chain
                // head, stops the opening and keeps the case.)
                Err(StoreError::BadField { .. }) => {
                    if let Some(inner) = &self.inner {
                        inner
                            .conn
                            .execute("DELETE FROM open_case WHERE case_id = ?1", [case_id])
                            .map_err(|source| inner.sql_err(source))?;
                    }
                    self.discarded_cases += 1;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Starts a case when a probe signal is first acquired. Category,
    /// eligibility and age band start as `not_recorded`.
    pub fn open_case(
        &mut self,
        org: OdsCode,
        started: Period,
        probe_model: u8,
        software: &Software,
    ) -> Result<CaseHandle, StoreError> {
        let Some(inner) = &self.inner else {
            return Ok(CaseHandle { case_id: None });
        };
        Software::parse_for_writing(software.as_str()).map_err(|source| StoreError::BadField {
            path: inner.path.clone(),
            seq: 0,
            source,
        })?;
        inner
            .conn
            .execute(
                "INSERT INTO open_case (org, period, category, eligibility, age_band, probe_model, software)
                 VALUES (?1, ?2, 'not_recorded', 'not_recorded', 'not_recorded', ?3, ?4)",
                params![org.as_str(), started.to_string(), probe_model, software.as_str()],
            )
            .map_err(|source| inner.sql_err(source))?;
        Ok(CaseHandle {
            case_id: Some(inner.conn.last_insert_rowid()),
        })
    }

    fn update_case(
        &self,
        case: &CaseHandle,
        sql: &str,
        value: &dyn rusqlite::ToSql,
    ) -> Result<(), StoreError> {
        let (Some(inner), Some(case_id)) = (&self.inner, case.case_id) else {
            return Ok(());
        };
        let changed = inner
            .conn
            .prepare_cached(sql)
            .and_then(|mut stmt| stmt.execute(params![value, case_id]))
            .map_err(|source| inner.sql_err(source))?;
        if changed != 1 {
            return Err(StoreError::NoSuchCase {
                path: inner.path.clone(),
                case_id,
            });
        }
        Ok(())
    }

    /// Records the surgical category.
    pub fn set_category(
        &mut self,
        case: &CaseHandle,
        category: Category,
    ) -> Result<(), StoreError> {
        self.update_case(
            case,
            "UPDATE open_case SET category = ?1 WHERE case_id = ?2",
            &category.as_str(),
        )
    }

    /// Records the NICE MTG3 eligibility.
    pub fn set_eligibility(
        &mut self,
        case: &CaseHandle,
        eligibility: Eligibility,
    ) -> Result<(), StoreError> {
        self.update_case(
            case,
            "UPDATE open_case SET eligibility = ?1 WHERE case_id = ?2",
            &eligibility.as_str(),
        )
    }

    /// Records the age band (use [`AgeBand::from_age_years`]; the age itself
    /// is never stored).
    pub fn set_age_band(&mut self, case: &CaseHandle, age_band: AgeBand) -> Result<(), StoreError> {
        self.update_case(
            case,
            "UPDATE open_case SET age_band = ?1 WHERE case_id = ?2",
            &age_band.as_str(),
        )
    }

    /// Records a probe model change (the last one seen is kept).
    pub fn set_probe_model(
        &mut self,
        case: &CaseHandle,
        probe_model: u8,
    ) -> Result<(), StoreError> {
        self.update_case(
            case,
            "UPDATE open_case SET probe_model = ?1 WHERE case_id = ?2",
            &probe_model,
        )
    }

    /// Counts one fluid bolus of `volume_ml` (the total is rounded to 50 ml
    /// only when the case closes).
    pub fn add_bolus(&mut self, case: &CaseHandle, volume_ml: u32) -> Result<(), StoreError> {
        self.update_case(
            case,
            "UPDATE open_case SET boluses = boluses + 1, bolus_ml_total = bolus_ml_total + ?1 WHERE case_id = ?2",
            &volume_ml,
        )?;
        Ok(())
    }

    /// Adds beats seen since the last call: `accepted` of `total`.
    pub fn add_beats(
        &mut self,
        case: &CaseHandle,
        accepted: u32,
        total: u32,
    ) -> Result<(), StoreError> {
        let (Some(inner), Some(case_id)) = (&self.inner, case.case_id) else {
            return Ok(());
        };
        let changed = inner
            .conn
            .prepare_cached(
                "UPDATE open_case SET beats_accepted = beats_accepted + ?1, beats_total = beats_total + ?2 WHERE case_id = ?3",
            )
            .and_then(|mut stmt| stmt.execute(params![accepted.min(total), total, case_id]))
            .map_err(|source| inner.sql_err(source))?;
        if changed != 1 {
            return Err(StoreError::NoSuchCase {
                path: inner.path.clone(),
                case_id,
            });
        }
        Ok(())
    }

    /// Adds monitoring time since the last call (call every minute or so:
    /// a crash loses at most the time since the last call).
    pub fn add_monitored_s(&mut self, case: &CaseHandle, seconds: u32) -> Result<(), StoreError> {
        self.update_case(
            case,
            "UPDATE open_case SET monitored_s = monitored_s + ?1 WHERE case_id = ?2",
            &seconds,
        )
    }

    /// Closes a case: rounds its totals and appends it to the chain as a
    /// record. Returns the record (`None` with participation off).
    pub fn close_case(&mut self, case: CaseHandle) -> Result<Option<ChainedRecord>, StoreError> {
        let (Some(inner), Some(case_id)) = (&mut self.inner, case.case_id) else {
            return Ok(None);
        };
        let path = inner.path.clone();
        let sql = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        type Row = (
            String,
            String,
            String,
            String,
            String,
            i64,
            i64,
            i64,
            i64,
            i64,
            i64,
            String,
        );
        let row: Option<Row> = inner
            .conn
            .query_row(
                "SELECT org, period, category, eligibility, age_band, monitored_s, boluses,
                        bolus_ml_total, beats_accepted, beats_total, probe_model, software
                 FROM open_case WHERE case_id = ?1",
                [case_id],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                        r.get(7)?,
                        r.get(8)?,
                        r.get(9)?,
                        r.get(10)?,
                        r.get(11)?,
                    ))
                },
            )
            .optional()
            .map_err(|source| match source {
                // A value of the wrong SQL type in the row: the case is
                // damaged, like a value outside its vocabulary.
                rusqlite::Error::InvalidColumnType(..)
                | rusqlite::Error::FromSqlConversionFailure(..)
                | rusqlite::Error::IntegralValueOutOfRange(..) => StoreError::BadField {
                    path: path.clone(),
                    seq: 0,
                    source: FieldError {
                        field: "open case",
                        expected: "each column of its SQL type",
                    },
                },
                source => sql(source),
            })?;
        let Some((org, period, cat, eli, age, secs, boluses, ml, acc, total, probe, sw)) = row
        else {
            return Err(StoreError::NoSuchCase { path, case_id });
        };
        let bad = |source| StoreError::BadField {
            path: path.clone(),
            seq: 0,
            source,
        };
        let non_negative = |v: i64| u64::try_from(v).unwrap_or(0);
        let record = Record {
            record_id: RandomId::new_random(),
            device: inner.identity.device,
            org: OdsCode::parse(&org).map_err(bad)?,
            period: Period::parse(&period).map_err(bad)?,
            category: Category::parse(&cat).map_err(bad)?,
            eligibility: Eligibility::parse(&eli).map_err(bad)?,
            age_band: AgeBand::parse(&age).map_err(bad)?,
            minutes: Minutes::from_seconds(non_negative(secs)),
            boluses: u32::try_from(non_negative(boluses)).unwrap_or(u32::MAX),
            bolus_ml: BolusMl::from_total_ml(non_negative(ml)),
            accepted_fraction: AcceptedFraction::from_beats(non_negative(acc), non_negative(total)),
            probe_model: u8::try_from(probe).unwrap_or(0),
            // Checked for writing by `append_in`, as every record is.
            software: Software::parse(&sw).map_err(bad)?,
        };
        let tx = inner.conn.transaction().map_err(sql)?;
        let (_, chained) = append_in(&tx, &inner.identity, &path, [record])?;
        tx.execute("DELETE FROM open_case WHERE case_id = ?1", [case_id])
            .map_err(sql)?;
        tx.commit().map_err(sql)?;
        Ok(chained)
    }

    /// Appends already-made records (of this device) to the chain in one
    /// transaction; used for synthetic data. Returns how many were added.
    pub fn append_records(
        &mut self,
        records: impl IntoIterator<Item = Record>,
    ) -> Result<usize, StoreError> {
        let Some(inner) = &mut self.inner else {
            return Ok(0);
        };
        let path = inner.path.clone();
        let sql = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = inner.conn.transaction().map_err(sql)?;
        let (n, _) = append_in(&tx, &inner.identity, &path, records)?;
        tx.commit().map_err(sql)?;
        Ok(n)
    }

    /// Reads every record in chain order, checking the chain as it goes;
    /// `visit` sees each record. Records after `after` only, when given
    /// (for a bundle continuing an earlier one). Returns the number of
    /// records in the whole chain.
    pub fn for_each_record(
        &self,
        after: Option<ChainHash>,
        mut visit: impl FnMut(&ChainedRecord) -> Result<(), StoreError>,
    ) -> Result<u64, StoreError> {
        let Some(inner) = &self.inner else {
            return Ok(0);
        };
        let sql = |source| inner.sql_err(source);
        let broken = |seq, what| StoreError::ChainBroken {
            path: inner.path.clone(),
            seq,
            what,
        };
        // One read transaction, so that the records and the signed head
        // are read from the same snapshot: a case the monitor closes while
        // this reads cannot look like a record added behind its back.
        let snapshot = inner.conn.unchecked_transaction().map_err(sql)?;
        let mut stmt = snapshot
            .prepare(
                "SELECT seq, record_id, device, org, period, category, eligibility, age_band,
                        minutes, boluses, bolus_ml, accepted_fraction, probe_model, software,
                        prev_hash, hash
                 FROM record ORDER BY seq",
            )
            .map_err(sql)?;
        let mut rows = stmt.query([]).map_err(sql)?;
        let mut prev = ChainHash::GENESIS;
        let mut count: i64 = 0;
        // A bundle may continue one exported before any case: after the
        // chain's start, every record.
        let mut visiting = after.is_none() || after == Some(ChainHash::GENESIS);
        let mut text = String::with_capacity(320);
        let mut ints = [String::new(), String::new(), String::new(), String::new()];
        while let Some(row) = rows.next().map_err(sql)? {
            let seq: i64 = row.get(0).map_err(sql)?;
            // Borrow the text columns from SQLite's row buffer: no copies.
            let text_at = |col: usize| -> Result<&str, StoreError> {
                row.get_ref(col)
                    .map_err(sql)?
                    .as_str()
                    .map_err(|e| sql(rusqlite::Error::from(e)))
            };
            for (slot, col) in ints.iter_mut().zip([8usize, 9, 10, 12]) {
                let v: i64 = row.get(col).map_err(sql)?;
                slot.clear();
                let _ = write!(slot, "{v}");
            }
            let fields: [&str; 13] = [
                text_at(1)?,
                text_at(2)?,
                text_at(3)?,
                text_at(4)?,
                text_at(5)?,
                text_at(6)?,
                text_at(7)?,
                &ints[0],
                &ints[1],
                &ints[2],
                text_at(11)?,
                &ints[3],
                text_at(13)?,
            ];
            let prev_text = text_at(14)?;
            let hash_text = text_at(15)?;
            let record = Record::from_fields(&fields).map_err(|source| StoreError::BadField {
                path: inner.path.clone(),
                seq,
                source,
            })?;
            if record.device != inner.identity.device {
                return Err(broken(seq, "record of another device"));
            }
            if ChainHash::from_hex(prev_text) != Some(prev) {
                return Err(broken(
                    seq,
                    "prev_hash does not link to the record before it",
                ));
            }
            text.clear();
            record.write_fields('|', &mut text);
            let hash = crate::record::chain_hash_of_fields(&prev, &text);
            if ChainHash::from_hex(hash_text) != Some(hash) {
                return Err(broken(seq, "hash does not recompute from the fields"));
            }
            count += 1;
            if visiting {
                visit(&ChainedRecord {
                    record,
                    prev_hash: prev,
                    hash,
                })?;
            } else if Some(hash) == after {
                visiting = true;
            }
            prev = hash;
        }
        let (head_count, head_hash, signature) = read_head(&snapshot, &inner.path)?;
        if head_count != count || ChainHash::from_hex(&head_hash) != Some(prev) {
            return Err(broken(
                0,
                "records were removed or added behind the store's back (head)",
            ));
        }
        let signed = crate::record::bytes_from_hex::<64>(&signature).is_some_and(|sig| {
            signature_verifies(
                &inner.identity.public_key().to_bytes(),
                head_signing_text(count, &prev).as_bytes(),
                &sig,
            )
        });
        if !signed {
            return Err(broken(0, "the chain head's signature does not verify"));
        }
        if !visiting {
            return Err(broken(0, "the --after hash is not in this store's chain"));
        }
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// Checks the whole chain: every hash recomputes, every record links to
    /// the one before, and the signed head matches the last record and the
    /// count. Returns the number of records.
    pub fn verify_chain(&self) -> Result<u64, StoreError> {
        self.for_each_record(None, |_| Ok(()))
    }
}

impl Inner {
    fn sql_err(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }
}

fn read_head(conn: &Connection, path: &Path) -> Result<(i64, String, String), StoreError> {
    conn.query_row(
        "SELECT records, head_hash, signature FROM chain_head WHERE singleton = 1",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
    .map_err(|source| StoreError::Sqlite {
        path: path.to_owned(),
        source,
    })
}

/// Appends records after the current head inside transaction `tx` and
/// re-signs the head.
fn append_in(
    tx: &rusqlite::Transaction<'_>,
    identity: &DeviceIdentity,
    path: &Path,
    records: impl IntoIterator<Item = Record>,
) -> Result<(usize, Option<ChainedRecord>), StoreError> {
    let sql = |source| StoreError::Sqlite {
        path: path.to_owned(),
        source,
    };
    let (mut count, head_hex, _) = read_head(tx, path)?;
    let mut prev = ChainHash::from_hex(&head_hex).ok_or(StoreError::ChainBroken {
        path: path.to_owned(),
        seq: 0,
        what: "the stored head hash is not 64 hex characters",
    })?;
    let mut added = 0usize;
    let mut previous_of_last = prev;
    let mut last = None;
    {
        let mut stmt = tx
            .prepare_cached(
                "INSERT INTO record (record_id, device, org, period, category, eligibility,
                    age_band, minutes, boluses, bolus_ml, accepted_fraction, probe_model,
                    software, prev_hash, hash)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
            )
            .map_err(sql)?;
        for record in records {
            if record.device != identity.device {
                return Err(StoreError::ForeignDevice(path.to_owned()));
            }
            // Every record this store writes, closed case or not: no free
            // text in `software` (record.rs, `Software::parse_for_writing`).
            Software::parse_for_writing(record.software.as_str()).map_err(|source| {
                StoreError::BadField {
                    path: path.to_owned(),
                    seq: 0,
                    source,
                }
            })?;
            let hash = record.chain_hash(&prev);
            previous_of_last = prev;
            stmt.execute(params![
                record.record_id.to_string(),
                record.device.to_string(),
                record.org.as_str(),
                record.period.to_string(),
                record.category.as_str(),
                record.eligibility.as_str(),
                record.age_band.as_str(),
                record.minutes.get(),
                record.boluses,
                record.bolus_ml.get(),
                record.accepted_fraction.to_string(),
                record.probe_model,
                record.software.as_str(),
                prev.to_hex(),
                hash.to_hex(),
            ])
            .map_err(sql)?;
            count += 1;
            added += 1;
            prev = hash;
            last = Some(record);
        }
    }
    let sig = identity.sign(head_signing_text(count, &prev).as_bytes());
    tx.execute(
        "UPDATE chain_head SET records = ?1, head_hash = ?2, signature = ?3 WHERE singleton = 1",
        params![count, prev.to_hex(), crate::record::hex_from_bytes(&sig)],
    )
    .map_err(sql)?;
    // Only the last record is handed back (close_case returns it); keeping
    // all would hold a million records in memory for synthetic data.
    let last = last.map(|record| {
        let hash = prev;
        let prev_hash = previous_of_last;
        ChainedRecord {
            record,
            prev_hash,
            hash,
        }
    });
    Ok((added, last))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relative_key_path_of_an_older_store_is_found_beside_the_database() {
        let dir = std::env::temp_dir().join(format!("odm-uptake-keyloc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join("u.sqlite");
        let key = dir.join("odm-uptake-device.key");
        std::fs::write(&key, b"k").unwrap();
        // As `init` stored it when run from the database's parent directory.
        let stored = Path::new("no-such-dir-here/odm-uptake-device.key");
        assert_eq!(stored_key_location(&db, stored), key);
        // An absolute path, or one that resolves from here, is kept as it is.
        assert_eq!(stored_key_location(&db, &key), key);
        let missing = Path::new("no-such-dir-here/other.key");
        assert_eq!(stored_key_location(&db, missing), missing);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
