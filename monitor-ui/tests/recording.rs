//! The record button's path through the real threads: frames and the
//! operator's annotations (patient, bolus, marker) reach the file, which
//! reads back as a valid recording.

use std::time::{Duration, Instant};

use odm_device_io::{Payload, RecordingReader};
use odm_monitor::control::{
    Backend, Command, PatientSettings, PatientSex, RecordingStatus, SourceSpec,
};
use odm_monitor::handoff::Handoff;
use odm_monitor::live::LiveBackend;

const DEADLINE: Duration = Duration::from_secs(30);

fn wait(what: &str, mut done: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !done() {
        assert!(t0.elapsed() < DEADLINE, "no {what} within {DEADLINE:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn recording_holds_the_stream_and_the_operators_annotations() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("rec.odmrec");
    let handoff = Handoff::shared();
    let mut b = LiveBackend::start(SourceSpec::Simulated { seed: 2 }, handoff.clone(), None);
    wait("samples", || handoff.latest_sample() > 2_000);

    b.send(Command::StartRecording(path.clone()));
    wait("recording start", || {
        matches!(b.recording(), RecordingStatus::Recording(_))
    });
    let patient = PatientSettings {
        age_years: 64,
        sex: PatientSex::Female,
        height_cm: 162.0,
        weight_kg: 71.0,
        aortic_diameter_mm: None,
    };
    b.send(Command::Patient(patient));
    let mut bolus = serde_json::Map::new();
    bolus.insert("type".into(), "bolus".into());
    bolus.insert("volume_ml".into(), 250.0.into());
    b.send(Command::Annotate(bolus));
    let at = handoff.latest_sample();
    wait("more samples", || handoff.latest_sample() > at + 4_000);
    b.send(Command::StopRecording);
    wait("recording stop", || b.recording() == RecordingStatus::Idle);

    let mut r = RecordingReader::open(&path).unwrap_or_else(|e| panic!("{e}"));
    let mut kinds = Vec::new();
    let mut iq_samples = 0usize;
    let mut patient_seen = None;
    let mut bolus_ml = None;
    while let Some(f) = r.next_frame().unwrap_or_else(|e| panic!("{e}")) {
        match f.payload {
            Payload::Annotation(a) => {
                match a.kind() {
                    "patient" => patient_seen = Some(a.json.clone()),
                    "bolus" => bolus_ml = a.json.get("volume_ml").and_then(|v| v.as_f64()),
                    _ => {}
                }
                kinds.push(a.kind().to_string());
            }
            Payload::ProbeInfo(_) => kinds.push("probe_info".into()),
            Payload::Iq(b) => iq_samples += b.samples.len(),
            Payload::Event(_) => {}
        }
    }
    assert_eq!(kinds.first().map(String::as_str), Some("recording_started"));
    assert_eq!(kinds.get(1).map(String::as_str), Some("probe_info"));
    assert!(iq_samples >= 4_000, "{iq_samples} samples recorded");
    let p = patient_seen.unwrap_or_else(|| panic!("no patient annotation: {kinds:?}"));
    assert_eq!(p.get("age_years").and_then(|v| v.as_u64()), Some(64));
    assert_eq!(p.get("sex").and_then(|v| v.as_str()), Some("female"));
    assert_eq!(bolus_ml, Some(250.0));
    assert!(r.counters().is_clean(), "{:?}", r.counters());
}
