//! `odm uptake` end to end: the commands, their output contract, and an
//! identifier scan of every file they write.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use odm_uptake::scan::scan_for_identifiers;
use odm_uptake::{Category, Eligibility, OdsCode, Period, Settings, Software, UptakeStore};

fn fresh_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("uptake-cli-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn odm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_odm"))
        .arg("uptake")
        .args(args)
        .env_remove("ODM_UPTAKE")
        .output()
        .unwrap()
}

fn ok(args: &[&str]) -> String {
    let out = odm(args);
    assert!(
        out.status.success(),
        "odm uptake {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The store at `db`, participating, with an RH802 case opened in `period`
/// by this build.
fn open_a_case(db: &Path, period: &str) -> (UptakeStore, odm_uptake::CaseHandle) {
    let on = Settings {
        participation: true,
    };
    let mut store = UptakeStore::open(db, on).unwrap();
    let case = store
        .open_case(
            OdsCode::parse("RH802").unwrap(),
            Period::parse(period).unwrap(),
            2,
            &Software::this_build(),
        )
        .unwrap();
    (store, case)
}

/// A store with `n` synthetic records and one real closed case, exported.
fn exported_bundle(dir: &Path, n: u64) -> (PathBuf, PathBuf, String) {
    let db = dir.join("store").join("uptake.sqlite");
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    let register_line = ok(&["init", "--db", s(&db), "--org", "RH802"]);
    ok(&[
        "demo",
        "--db",
        s(&db),
        "--records",
        &n.to_string(),
        "--seed",
        "3",
    ]);
    {
        let (mut store, case) = open_a_case(&db, "2026-02");
        store.set_category(&case, Category::Colorectal).unwrap();
        store.set_eligibility(&case, Eligibility::Major).unwrap();
        store.add_monitored_s(&case, 5400).unwrap();
        store.add_bolus(&case, 250).unwrap();
        store.close_case(case).unwrap();
    }
    let bundle = dir.join("bundles").join("rh802-a");
    ok(&["export", "--db", s(&db), "--out", s(&bundle)]);
    (db, bundle, register_line)
}

#[test]
fn init_prints_the_register_line_and_export_verifies() {
    let dir = fresh_dir("roundtrip");
    let (db, bundle, line) = exported_bundle(&dir, 40);
    let line = line.trim();
    assert_eq!(line.len(), 101, "device,public_key: {line}");
    assert_eq!(
        ok(&["register-key", "--db", s(&db), "--header"]),
        format!("device,public_key\n{line}\n")
    );
    let register = dir.join("register.csv");
    std::fs::write(&register, format!("device,public_key\n{line}\n")).unwrap();
    assert_eq!(ok(&["verify", "--keys", s(&register), s(&bundle)]), "");
    assert!(ok(&["check", "--db", s(&db)]).contains("41 records"));
}

#[test]
fn verify_prints_problem_lines_and_exits_1_on_errors() {
    let dir = fresh_dir("verify-lines");
    let (_, bundle, _) = exported_bundle(&dir, 5);
    let path = bundle.join("records.csv");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    lines[2] = lines[2].replacen(",RH802,", ",RH8,", 1);
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let out = odm(&["verify", s(&bundle)]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!(
            "{}: line 3: error: hash does not recompute from the values and prev_hash\n",
            bundle.display()
        )
    );
}

#[test]
fn the_same_bundle_given_twice_is_a_warning_and_exit_0() {
    let dir = fresh_dir("twice");
    let (_, bundle, _) = exported_bundle(&dir, 2);
    let out = odm(&["verify", s(&bundle), s(&bundle)]);
    assert_eq!(out.status.code(), Some(0));
    // Without --keys the signatures prove less, and stderr says so.
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no --keys"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let warnings: Vec<&str> = stdout.lines().collect();
    assert_eq!(warnings.len(), 3, "{stdout}");
    assert!(
        warnings
            .iter()
            .all(|l| l.contains(": warning: duplicate of line"))
    );
}

#[test]
fn participation_off_refuses_to_write() {
    let dir = fresh_dir("opt-out");
    let db = dir.join("u.sqlite");
    let out = Command::new(env!("CARGO_BIN_EXE_odm"))
        .args(["uptake", "init", "--db", s(&db), "--org", "RH8"])
        .env("ODM_UPTAKE", "off")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(!db.exists());
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(odm(&["report", "--bundles", "x"]).status.code(), Some(2));
    assert_eq!(odm(&["verify"]).status.code(), Some(2));
    let bad_by = [
        "report",
        "--bundles",
        "b",
        "--eligible",
        "e",
        "--by",
        "org,ward",
        "--out",
        "o",
    ];
    assert_eq!(odm(&bad_by).status.code(), Some(2));
}

#[test]
fn a_bad_value_exits_2_and_is_not_echoed() {
    let dir = fresh_dir("bad-values");
    let db = dir.join("x.sqlite");
    let typed = "Jane Doe 9434765919";
    let out = odm(&["init", "--db", s(&db), "--org", typed]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--org"), "names the flag: {err}");
    assert!(
        !err.contains("Jane") && !err.contains("9434765919"),
        "echoed: {err}"
    );
    assert!(!db.exists());

    ok(&["init", "--db", s(&db), "--org", "RH8"]);
    let out = odm(&[
        "export",
        "--db",
        s(&db),
        "--out",
        s(&dir.join("b")),
        "--after",
        "9434765919",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("9434765919"));

    // Values clap itself refuses (a number expected, an argument not
    // known, a subcommand not known) are not echoed either.
    for args in [
        &["demo", "--db", s(&db), "--records", "943 476 5919"][..],
        &["check", "--db", s(&db), "Jane Smith 943 476 5919"],
        &[
            "report",
            "--by",
            "org,Jane Smith 9434765919",
            "--bundles",
            s(&dir),
        ],
        &["Jane Smith 943 476 5919"],
        &["check", "--Jane-Smith-9434765919"],
    ] {
        let out = odm(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !err.contains("Jane") && !err.contains("943"),
            "echoed: {err}"
        );
        assert!(err.starts_with("odm: error: "), "one line: {err}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_odm"))
        .args(["help", "uptake", "Jane Smith 9434765919"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("Jane"));
    let out = odm(&["demo", "--db", s(&db), "--records", "many"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("invalid value for '--records <RECORDS>'"),
        "names the flag: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn synthetic_records_go_only_into_an_empty_store_that_is_not_the_monitors() {
    let dir = fresh_dir("demo-guard");
    let db = dir.join("u.sqlite");
    ok(&["init", "--db", s(&db), "--org", "RH8"]);
    // The monitor's store, named by its environment variable.
    let out = Command::new(env!("CARGO_BIN_EXE_odm"))
        .args(["uptake", "demo", "--db", s(&db), "--records", "3"])
        .env_remove("ODM_UPTAKE")
        .env("ODM_UPTAKE_DB", &db)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("monitor's uptake store"));
    ok(&["demo", "--db", s(&db), "--records", "3"]);
    // Now it holds records: no more synthetic ones.
    let out = odm(&["demo", "--db", s(&db), "--records", "3"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(ok(&["check", "--db", s(&db)]).contains("3 records"));
}

#[test]
fn a_store_made_with_relative_paths_opens_from_anywhere() {
    let dir = fresh_dir("relative");
    let run_in = |cwd: &Path, args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_odm"))
            .arg("uptake")
            .args(args)
            .env_remove("ODM_UPTAKE")
            .current_dir(cwd)
            .output()
            .unwrap()
    };
    std::fs::create_dir_all(dir.join("stores")).unwrap();
    let init = run_in(
        &dir,
        &[
            "init",
            "--db",
            "stores/u.sqlite",
            "--org",
            "RH8",
            "--key-dir",
            "stores/key",
        ],
    );
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let db = dir.join("stores").join("u.sqlite");
    let elsewhere = dir.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    for args in [
        vec!["check", "--db", s(&db)],
        vec!["register-key", "--db", s(&db)],
        vec!["export", "--db", s(&db), "--out", "bundle"],
    ] {
        let out = run_in(&elsewhere, &args);
        assert!(
            out.status.success(),
            "{args:?} from another directory: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(elsewhere.join("bundle").join("manifest.json").exists());
}

/// Scans a file and returns what was found (kind and offset).
fn scan_file(path: &Path) -> Vec<String> {
    let data = std::fs::read(path).unwrap();
    scan_for_identifiers(&data)
        .iter()
        .map(|f| format!("{}: {:?} at byte {}", path.display(), f.kind, f.offset))
        .collect()
}

#[test]
fn report_store_and_bundles_carry_no_identifiers() {
    let dir = fresh_dir("report");
    let (db, bundle, line) = exported_bundle(&dir, 400);
    // A second, damaged copy: its records must land in excluded.csv.
    let damaged = dir.join("bundles").join("rh802-damaged");
    std::fs::create_dir_all(&damaged).unwrap();
    std::fs::copy(bundle.join("manifest.json"), damaged.join("manifest.json")).unwrap();
    let text = std::fs::read_to_string(bundle.join("records.csv")).unwrap();
    std::fs::write(damaged.join("records.csv"), text.replacen(",0.", ",1.", 3)).unwrap();
    let register = dir.join("register.csv");
    std::fs::write(&register, format!("device,public_key\n{}", line)).unwrap();
    // Denominators for every month but the last one with records.
    let mut eligible = String::from("org,period,category,eligible\n");
    let now = Period::current_utc();
    for back in 1..12u32 {
        let p = Period::new(now.year() - 1, now.month())
            .unwrap()
            .plus_months(back);
        for c in Category::ALL {
            eligible.push_str(&format!("RH802,{p},{c},40\n"));
        }
    }
    let eligible_path = dir.join("eligible.csv");
    std::fs::write(&eligible_path, eligible).unwrap();
    let out_dir = dir.join("out");
    let out = odm(&[
        "report",
        "--bundles",
        s(&dir.join("bundles")),
        "--eligible",
        s(&eligible_path),
        "--keys",
        s(&register),
        "--out",
        s(&out_dir),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("excluded"), "{stderr}");
    assert!(
        stderr.contains(&format!("no eligible count for RH802,{now},")),
        "{stderr}"
    );

    let report = std::fs::read_to_string(out_dir.join("report.csv")).unwrap();
    assert!(report.starts_with("org,period,category,monitored,eligible,uptake_pct\n"));
    let this_month: Vec<&str> = report
        .lines()
        .filter(|l| l.starts_with(&format!("RH802,{now},")))
        .collect();
    assert!(!this_month.is_empty());
    for row in this_month {
        // eligible empty; uptake `*` (suppressed count) or empty.
        let v: Vec<&str> = row.split(',').collect();
        assert_eq!(v[4], "", "{row}");
        assert!(v[5].is_empty() || v[5] == "*", "{row}");
    }
    let excluded = std::fs::read_to_string(out_dir.join("excluded.csv")).unwrap();
    assert!(excluded.starts_with("bundle,line,record_id,reason\n"));
    assert_eq!(
        excluded.lines().count(),
        1 + 401,
        "every damaged record is listed"
    );
    assert!(
        excluded
            .lines()
            .nth(1)
            .unwrap()
            .starts_with("rh802-damaged,2,")
    );

    let html = std::fs::read_to_string(out_dir.join("report.html")).unwrap();
    assert!(html.contains("<svg"));
    // The page to be published counts the bundles set aside; only
    // excluded.csv names them (a directory's name is whatever was typed).
    assert!(html.contains("1 bundle: named"), "{html}");
    assert!(!html.contains("rh802-damaged"));
    for forbidden in [
        "<script", "http:", "https:", "<link", "src=", "@import", "url(",
    ] {
        assert!(!html.contains(forbidden), "report.html holds {forbidden}");
    }

    // The identifier scan: the store (and its WAL), the bundle and every
    // report output. The manifest's exported_utc is the export's own time
    // stamp (spec "Bundle"), not a patient's date: `odm uptake scan` sets
    // that one value aside, and says so.
    let manifest = bundle.join("manifest.json");
    let said = ok(&["scan", s(&manifest)]);
    assert!(
        said.contains("exported_utc") && said.lines().count() == 1,
        "{said}"
    );
    let mut files = vec![
        db.clone(),
        bundle.join("records.csv"),
        out_dir.join("report.csv"),
        out_dir.join("report.html"),
        out_dir.join("excluded.csv"),
    ];
    let wal = PathBuf::from(format!("{}-wal", db.display()));
    if wal.exists() {
        files.push(wal);
    }
    let found: Vec<String> = files.iter().flat_map(|f| scan_file(f)).collect();
    assert!(found.is_empty(), "identifiers found: {found:?}");
}

#[test]
fn the_scanner_catches_identifiers_planted_in_an_export() {
    let dir = fresh_dir("planted");
    let (_, bundle, _) = exported_bundle(&dir, 3);
    let records = bundle.join("records.csv");
    let clean = std::fs::read_to_string(&records).unwrap();
    for planted in [
        "943 476 5919",
        "4010232137",
        "1957-03-14",
        "1957-03-14T00:00",
        "14/03/1957",
        "SW1A 1AA",
    ] {
        let dirty = dir.join("dirty.csv");
        std::fs::write(
            &dirty,
            clean.replacen("odm ", &format!("{planted} odm "), 1),
        )
        .unwrap();
        assert_eq!(scan_file(&dirty).len(), 1, "{planted} not caught");
        let out = odm(&["scan", s(&dirty)]);
        assert_eq!(out.status.code(), Some(1), "{planted}");
    }
    assert!(scan_file(&records).is_empty());
    assert_eq!(ok(&["scan", s(&records)]), "");
}

/// Opening a store to check or export it closes a case a crash left open
/// (the monitor's next start would); the command says so on stderr, with
/// participation switched off too.
#[test]
fn a_case_left_open_by_a_crash_is_closed_and_said() {
    let dir = fresh_dir("crash-said");
    let db = dir.join("uptake.sqlite");
    ok(&["init", "--db", s(&db), "--org", "RH802"]);
    {
        let (store, _never_closed) = open_a_case(&db, "2026-03");
        std::mem::forget(store);
    }
    let out = Command::new(env!("CARGO_BIN_EXE_odm"))
        .args(["uptake", "check", "--db", s(&db)])
        .env("ODM_UPTAKE", "off")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(": 1 records"));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("1 case(s) left open by a crash closed"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Nothing left to close the next time, and nothing said.
    let out = odm(&["check", "--db", s(&db)]);
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
