//! Uptake counting (anonymised case records, `shared/spec/uptake-bundle.md`):
//! a case opens when a probe signal is first acquired and closes when
//! monitoring stops; the display asks once per case for the surgical
//! category and NICE MTG3 eligibility ("not recorded" allowed), never
//! blocking monitoring.
//!
//! The store is a durable SQLite database, so every write happens on this
//! module's own thread, never on the UI or DSP thread. Switches:
//! `ODM_UPTAKE=off` (participation off: nothing is written) and
//! `ODM_UPTAKE_DB=PATH` (the store made by `odm uptake init`; unset: no
//! counting, and the screen says so).

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use odm_uptake::{AgeBand, Category, Eligibility, Period, Settings, Software, UptakeStore};

/// Environment variable naming the uptake store.
pub use odm_uptake::store::DB_ENV;
/// Monitoring time and beat counts are written this often, s (a crash
/// loses at most this much of the case's totals).
pub const FLUSH_EVERY_S: f64 = 60.0;

enum Msg {
    Open { probe_model: u8 },
    ProbeModel(u8),
    Category(Category),
    Eligibility(Eligibility),
    AgeBand(AgeBand),
    Bolus(u32),
    Beats { accepted: u32, total: u32 },
    MonitoredS(u32),
    Close,
}

/// The monitor's side of uptake counting.
pub struct Uptake {
    tx: Option<mpsc::Sender<Msg>>,
    thread: Option<JoinHandle<()>>,
    status: Arc<Mutex<String>>,
    case_open: bool,
    /// The probe model the open case last told the store.
    case_probe_model: u8,
    /// The category/eligibility question was answered (or dismissed) for this case.
    pub answered: bool,
    /// Category chosen in the prompt.
    pub category: Category,
    /// Eligibility chosen in the prompt.
    pub eligibility: Eligibility,
    last_flush_s: f64,
    beats_accepted: u64,
    beats_total: u64,
    flushed_accepted: u64,
    flushed_total: u64,
}

impl Uptake {
    /// From the environment (`ODM_UPTAKE`, `ODM_UPTAKE_DB`).
    pub fn from_env() -> Self {
        let settings = Settings::from_env();
        if !settings.participation {
            return Self::inactive("uptake: participation off (ODM_UPTAKE=off)");
        }
        match std::env::var_os(DB_ENV) {
            Some(db) => Self::open(Path::new(&db), settings),
            None => Self::inactive(&format!(
                "uptake: not counting (set {DB_ENV} to a store made by `odm uptake init`)"
            )),
        }
    }

    /// Counting into the store at `db`, on a background thread.
    pub fn open(db: &Path, settings: Settings) -> Self {
        let status = Arc::new(Mutex::new(format!("uptake: opening {}", db.display())));
        let (tx, rx) = mpsc::channel();
        let st = status.clone();
        let db: PathBuf = db.to_owned();
        let thread = std::thread::Builder::new()
            .name("odm-uptake".into())
            .spawn(move || store_loop(&db, settings, &rx, &st));
        match thread {
            Ok(t) => {
                let mut u = Self::inactive_with(status);
                u.tx = Some(tx);
                u.thread = Some(t);
                u
            }
            Err(e) => Self::inactive(&format!("uptake: cannot start its thread: {e}")),
        }
    }

    /// Not counting, for the given reason.
    pub fn inactive(reason: &str) -> Self {
        Self::inactive_with(Arc::new(Mutex::new(reason.to_string())))
    }

    fn inactive_with(status: Arc<Mutex<String>>) -> Self {
        Self {
            tx: None,
            thread: None,
            status,
            case_open: false,
            case_probe_model: 0,
            answered: false,
            category: Category::NotRecorded,
            eligibility: Eligibility::NotRecorded,
            last_flush_s: 0.0,
            beats_accepted: 0,
            beats_total: 0,
            flushed_accepted: 0,
            flushed_total: 0,
        }
    }

    /// Whether a store is in use.
    pub fn counting(&self) -> bool {
        self.tx.is_some()
    }

    /// Whether a case is open.
    pub fn case_open(&self) -> bool {
        self.case_open
    }

    /// Whether the display should ask for category and eligibility now.
    pub fn should_ask(&self) -> bool {
        self.counting() && self.case_open && !self.answered
    }

    /// One line for the screen.
    pub fn status(&self) -> String {
        self.status
            .lock()
            .map(|s| s.clone())
            .unwrap_or_else(|_| "uptake: status unavailable".into())
    }

    fn send(&self, m: Msg) {
        if let Some(tx) = &self.tx {
            // A closed channel means the store thread ended; its status says why.
            let _ = tx.send(m);
        }
    }

    /// Called every frame with the beats received so far (accepted, all):
    /// opens the case at the first acquired signal, tells the store when
    /// the probe's model changes during the case (its record holds the
    /// last one), and writes time and beat counts every [`FLUSH_EVERY_S`]
    /// of UI clock.
    pub fn tick(&mut self, now_s: f64, acquired: bool, probe_model: u8, beats: (u64, u64)) {
        if !self.counting() {
            return;
        }
        if !self.case_open && acquired {
            self.case_open = true;
            self.answered = false;
            self.last_flush_s = now_s;
            // Beats before the case opened are not the case's.
            self.flushed_accepted = beats.0;
            self.flushed_total = beats.1;
            self.case_probe_model = probe_model;
            self.send(Msg::Open { probe_model });
        } else if self.case_open && probe_model != self.case_probe_model {
            self.case_probe_model = probe_model;
            self.send(Msg::ProbeModel(probe_model));
        }
        self.beats_accepted = beats.0.max(self.flushed_accepted);
        self.beats_total = beats.1.max(self.flushed_total);
        if self.case_open && now_s - self.last_flush_s >= FLUSH_EVERY_S {
            self.flush(now_s);
        }
    }

    fn flush(&mut self, now_s: f64) {
        let secs = (now_s - self.last_flush_s).max(0.0) as u32;
        self.send(Msg::MonitoredS(secs));
        let accepted = (self.beats_accepted - self.flushed_accepted) as u32;
        let total = (self.beats_total - self.flushed_total) as u32;
        self.send(Msg::Beats { accepted, total });
        self.flushed_accepted = self.beats_accepted;
        self.flushed_total = self.beats_total;
        self.last_flush_s = now_s;
    }

    /// Counts a bolus of the open case.
    pub fn bolus(&mut self, volume_ml: f64) {
        if self.case_open && volume_ml.is_finite() && volume_ml >= 0.0 {
            self.send(Msg::Bolus(volume_ml.round() as u32));
        }
    }

    /// Records the age band (the age itself is never stored).
    pub fn age_years(&mut self, age_years: u32) {
        if self.case_open {
            self.send(Msg::AgeBand(AgeBand::from_age_years(age_years)));
        }
    }

    /// Records the answers of the prompt (either may be "not recorded").
    pub fn answer(&mut self, category: Category, eligibility: Eligibility) {
        self.category = category;
        self.eligibility = eligibility;
        self.answered = true;
        self.send(Msg::Category(category));
        self.send(Msg::Eligibility(eligibility));
    }

    /// Ends the case (monitoring stopped): its record is closed.
    pub fn close_case(&mut self, now_s: f64) {
        if self.case_open {
            self.flush(now_s);
            self.send(Msg::Close);
            self.case_open = false;
            self.answered = false;
        }
    }

    /// Closes any open case and waits for the store thread to finish.
    pub fn shutdown(&mut self, now_s: f64) {
        self.close_case(now_s);
        self.tx = None;
        if let Some(t) = self.thread.take() {
            // The thread reports its own failures through the status.
            let _ = t.join();
        }
    }
}

impl Drop for Uptake {
    fn drop(&mut self) {
        let now = self.last_flush_s;
        self.shutdown(now);
    }
}

fn store_loop(db: &Path, settings: Settings, rx: &mpsc::Receiver<Msg>, status: &Mutex<String>) {
    let say = |s: String| {
        if let Ok(mut g) = status.lock() {
            *g = s;
        }
    };
    let mut store = match UptakeStore::open(db, settings) {
        Ok(s) => s,
        Err(e) => {
            say(format!("uptake: not counting: {e}"));
            return;
        }
    };
    let Some(org) = store.org() else {
        say(format!(
            "uptake: not counting: {} has no organisation",
            db.display()
        ));
        return;
    };
    let dropped = match store.discarded_cases() {
        0 => String::new(),
        n => format!("; {n} damaged unfinished case(s) could not be counted"),
    };
    say(format!(
        "uptake: counting into {} ({}){dropped}",
        db.display(),
        org.as_str()
    ));
    let software = Software::this_build();
    let mut case = None;
    let mut closed = 0u64;
    while let Ok(m) = rx.recv() {
        let result = match (m, &case) {
            (Msg::Open { probe_model }, None) => store
                .open_case(org, Period::current_uk(), probe_model, &software)
                .map(|h| case = Some(h)),
            (Msg::ProbeModel(m), Some(h)) => store.set_probe_model(h, m),
            (Msg::Category(c), Some(h)) => store.set_category(h, c),
            (Msg::Eligibility(e), Some(h)) => store.set_eligibility(h, e),
            (Msg::AgeBand(a), Some(h)) => store.set_age_band(h, a),
            (Msg::Bolus(ml), Some(h)) => store.add_bolus(h, ml),
            (Msg::Beats { accepted, total }, Some(h)) => store.add_beats(h, accepted, total),
            (Msg::MonitoredS(s), Some(h)) => store.add_monitored_s(h, s),
            (Msg::Close, Some(_)) => match case.take() {
                Some(h) => store.close_case(h).map(|_| closed += 1),
                None => Ok(()),
            },
            // Messages for a case that is not open change nothing.
            _ => Ok(()),
        };
        match result {
            Ok(()) => say(format!(
                "uptake: counting into {} ({}); {closed} case(s) closed this session",
                db.display(),
                org.as_str()
            )),
            Err(e) => say(format!("uptake: {e}")),
        }
    }
}
