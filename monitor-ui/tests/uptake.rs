//! Uptake counting from the display: one case per acquired signal, the
//! category/eligibility prompt once per case, the record closed when
//! monitoring stops (here: when the app is dropped).

use std::sync::Arc;
use std::time::Instant;

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use odm_dsp::Beat;
use odm_monitor::MonitorApp;
use odm_monitor::control::{Backend, Command, RecordingStatus, SourceSpec};
use odm_monitor::handoff::{BeatMsg, EventMsg, Handoff, SourceState};
use odm_monitor::uptake::Uptake;
use odm_uptake::{Category, Eligibility, OdsCode, Settings, UptakeStore};

struct Quiet(SourceSpec);

impl Backend for Quiet {
    fn send(&mut self, _cmd: Command) {}
    fn source(&self) -> &SourceSpec {
        &self.0
    }
    fn recording(&self) -> RecordingStatus {
        RecordingStatus::Idle
    }
    fn audio_status(&self) -> String {
        "audio off (test)".into()
    }
    fn set_audio(&mut self, _volume: f32, _muted: bool) {}
    fn replay_duration_s(&self) -> Option<f64> {
        None
    }
}

fn beat(index: u64, onset_s: f64) -> Beat {
    Beat {
        index,
        onset_s,
        peak_s: onset_s + 0.09,
        end_s: onset_s + 0.33,
        next_onset_s: onset_s + 0.8,
        ft_ms: 330.0,
        cycle_s: 0.8,
        hr_bpm: 75.0,
        ftc_ms: 369.0,
        sd_cm: 15.0,
        pv_cm_s: 90.0,
        ma_cm_s2: Some(1000.0),
        md_cm_min: 1125.0,
        sv_ml: None,
        sv_range_ml: None,
        co_l_min: None,
        quality: 0.95,
        accepted: true,
        reject_reason: None,
        irregular_rhythm: false,
        ft_low_flow: false,
        completed_by_sample: ((onset_s + 0.8) * 20_000.0) as u64,
    }
}

/// 20 accepted beats at 75/min, the last sample at 16 s.
fn sixteen_seconds_of_beats(handoff: &Handoff) {
    for k in 0..20 {
        handoff.beats.push(BeatMsg {
            beat: beat(k, k as f64 * 0.8),
            pushed_at: Instant::now(),
        });
    }
    handoff.set_latest_sample(16 * 20_000);
}

fn live_probe() -> SourceSpec {
    SourceSpec::Serial {
        path: "/dev/ttyACM0".into(),
        baud: 115_200,
    }
}

/// Records in the store at `db`.
fn record_count(db: &std::path::Path, on: Settings) -> u64 {
    let store = UptakeStore::open(db, on).unwrap_or_else(|e| panic!("{e}"));
    store
        .for_each_record(None, |_| Ok(()))
        .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn a_case_opens_on_signal_asks_once_and_closes_into_one_record() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let db = dir.path().join("uptake.sqlite");
    let key = dir.path().join("device.key");
    let on = Settings {
        participation: true,
    };
    let org = OdsCode::parse("RH8").unwrap_or_else(|e| panic!("{e}"));
    UptakeStore::init(&db, org, &key, on).unwrap_or_else(|e| panic!("{e}"));

    let handoff = Handoff::shared();
    handoff.events.push(EventMsg::Source(SourceState::Live));
    let mut app = MonitorApp::new(handoff.clone(), Box::new(Quiet(live_probe())));
    app.uptake = Uptake::open(&db, on);
    let mut h = Harness::builder()
        .with_size([1920.0, 1080.0])
        .with_step_dt(0.1)
        .build_ui_state(|ui, app: &mut MonitorApp| app.ui(ui), app);
    h.step();
    assert!(
        h.query_by_label("Not recorded").is_none(),
        "no case before a signal"
    );
    sixteen_seconds_of_beats(&handoff);
    h.run_steps(2);
    h.get_by_label("Not recorded").click();
    h.run_steps(2);
    assert!(
        h.query_by_label("Not recorded").is_none(),
        "asked once per case"
    );
    h.get_by_label("Bolus").click();
    h.run_steps(2);
    let app = h.into_state();
    assert_eq!(app.uptake.category, Category::NotRecorded);
    drop(app);

    let store = UptakeStore::open(&db, on).unwrap_or_else(|e| panic!("{e}"));
    let mut records = Vec::new();
    let n = store
        .for_each_record(None, |r| {
            records.push(r.record.clone());
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(n, 1);
    let r = &records[0];
    assert_eq!(r.org, org);
    assert_eq!(r.category, Category::NotRecorded);
    assert_eq!(r.eligibility, Eligibility::NotRecorded);
    assert_eq!(r.boluses, 1);
    assert_eq!(r.bolus_ml.get(), 250);
    let _ = Arc::clone(&handoff);
}

#[test]
fn participation_off_writes_nothing_and_never_asks() {
    let off = Settings {
        participation: false,
    };
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let db = dir.path().join("none.sqlite");
    let handoff = Handoff::shared();
    let mut app = MonitorApp::new(
        handoff.clone(),
        Box::new(Quiet(SourceSpec::Simulated { seed: 1 })),
    );
    app.uptake = Uptake::inactive("uptake: participation off (ODM_UPTAKE=off)");
    let mut h = Harness::builder()
        .with_size([1920.0, 1080.0])
        .build_ui_state(|ui, app: &mut MonitorApp| app.ui(ui), app);
    for k in 0..20 {
        handoff.beats.push(BeatMsg {
            beat: beat(k, k as f64 * 0.8),
            pushed_at: Instant::now(),
        });
    }
    h.run_steps(2);
    assert!(h.query_by_label("Not recorded").is_none());
    h.get_by_label_contains("participation off");
    drop(h);
    assert!(UptakeStore::open(&db, off).is_ok());
    assert!(!db.exists(), "nothing written with participation off");
}

#[test]
fn the_virtual_probe_and_replays_are_never_counted() {
    let on = Settings {
        participation: true,
    };
    // The third is a port fed by `odm simulate --port`: a live source, but
    // its PROBE_INFO names the virtual probe's firmware.
    for (name, source, firmware) in [
        ("simulated", SourceSpec::Simulated { seed: 1 }, None),
        (
            "replay",
            SourceSpec::Replay {
                path: "case.odmrec".into(),
            },
            None,
        ),
        (
            "simulator on a port",
            SourceSpec::Serial {
                path: "/dev/ttyACM0".into(),
                baud: 921_600,
            },
            Some("odmsim1"),
        ),
    ] {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let db = dir.path().join("uptake.sqlite");
        let org = OdsCode::parse("RH8").unwrap_or_else(|e| panic!("{e}"));
        UptakeStore::init(&db, org, &dir.path().join("device.key"), on)
            .unwrap_or_else(|e| panic!("{e}"));
        let handoff = Handoff::shared();
        if let Some(fw) = firmware {
            handoff
                .events
                .push(EventMsg::ProbeInfo(odm_device_io::ProbeInfo {
                    sample_rate_hz: 20_000,
                    carrier_hz: 4_000_000,
                    beam_angle_cdeg: 4500,
                    probe_model: 1,
                    minutes_used: 0,
                    minutes_limit: 0,
                    probe_serial: odm_device_io::ProbeInfo::pad("SIM-0001"),
                    firmware: odm_device_io::ProbeInfo::pad(fw),
                }));
        }
        handoff.events.push(EventMsg::Source(SourceState::Live));
        let mut app = MonitorApp::new(handoff.clone(), Box::new(Quiet(source)));
        app.uptake = Uptake::open(&db, on);
        let mut h = Harness::builder()
            .with_size([1920.0, 1080.0])
            .with_step_dt(0.1)
            .build_ui_state(|ui, app: &mut MonitorApp| app.ui(ui), app);
        sixteen_seconds_of_beats(&handoff);
        h.run_steps(3);
        assert!(
            h.query_by_label("Not recorded").is_none(),
            "{name}: no case, so no question"
        );
        h.get_by_label_contains("not counting this source");
        // Simulated streams say so on screen; a replay of a case does not.
        assert_eq!(
            h.query_by_label_contains("SIMULATED").is_some(),
            name != "replay",
            "{name}"
        );
        let app = h.into_state();
        assert!(!app.uptake.case_open(), "{name}");
        drop(app);
        assert_eq!(record_count(&db, on), 0, "{name}: no record");
    }
}

/// A probe changed during a case (a new PROBE_INFO): the record holds the
/// model in use when the case closed.
#[test]
fn a_probe_changed_during_a_case_is_the_one_recorded() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let db = dir.path().join("uptake.sqlite");
    let on = Settings {
        participation: true,
    };
    let org = OdsCode::parse("RH8").unwrap_or_else(|e| panic!("{e}"));
    UptakeStore::init(&db, org, &dir.path().join("device.key"), on)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut uptake = Uptake::open(&db, on);
    uptake.tick(0.0, false, 1, (0, 0));
    uptake.tick(1.0, true, 1, (0, 0));
    assert!(uptake.case_open());
    uptake.tick(2.0, true, 1, (1, 1));
    uptake.tick(3.0, true, 4, (2, 2));
    uptake.tick(4.0, true, 4, (3, 3));
    uptake.shutdown(5.0);
    drop(uptake);
    let store = UptakeStore::open(&db, on).unwrap_or_else(|e| panic!("{e}"));
    let mut models = Vec::new();
    store
        .for_each_record(None, |r| {
            models.push(r.record.probe_model);
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(models, [4]);
}
