//! The display driven through egui_kittest with a pinned clock: widgets are
//! found by their accessible labels, fed beats whose expected display values
//! are computed independently here.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use odm_device_io::{ProbeEvent, ProbeInfo, event_code};
use odm_dsp::{Beat, RejectReason};
use odm_monitor::MonitorApp;
use odm_monitor::control::{Backend, Command, RecordingStatus, SourceSpec};
use odm_monitor::handoff::{BeatMsg, COLUMN_ROWS, ColumnMsg, EventMsg, Handoff, SourceState};

const FS: u32 = 20_000;
/// Harness step, s: the pinned clock advances exactly this much per step.
const STEP_S: f32 = 0.1;

struct TestBackend {
    spec: SourceSpec,
    sent: Rc<RefCell<Vec<Command>>>,
}

impl Backend for TestBackend {
    fn send(&mut self, cmd: Command) {
        self.sent.borrow_mut().push(cmd);
    }
    fn source(&self) -> &SourceSpec {
        &self.spec
    }
    fn recording(&self) -> RecordingStatus {
        RecordingStatus::Idle
    }
    fn audio_status(&self) -> String {
        "audio off: the test backend has no sound".into()
    }
    fn set_audio(&mut self, _volume: f32, _muted: bool) {}
    fn replay_duration_s(&self) -> Option<f64> {
        self.spec.is_replay().then_some(120.0)
    }
}

fn probe_info() -> ProbeInfo {
    ProbeInfo {
        sample_rate_hz: FS,
        carrier_hz: 4_000_000,
        beam_angle_cdeg: 4500,
        probe_model: 1,
        minutes_used: 100,
        minutes_limit: 1000,
        probe_serial: ProbeInfo::pad("TEST-0001"),
        firmware: ProbeInfo::pad("1.0"),
    }
}

/// A beat with onset `onset_s`, stroke distance `sd_cm` and cycle 0.8 s.
fn beat(index: u64, onset_s: f64, sd_cm: f64, accepted: bool) -> Beat {
    let cycle_s = 0.8;
    let ft_ms = 330.0;
    let sv = sd_cm * 4.2;
    Beat {
        index,
        onset_s,
        peak_s: onset_s + 0.09,
        end_s: onset_s + 0.33,
        next_onset_s: onset_s + cycle_s,
        ft_ms,
        cycle_s,
        hr_bpm: 75.0,
        ftc_ms: ft_ms / cycle_s.sqrt(),
        sd_cm,
        pv_cm_s: 95.0 + sd_cm,
        ma_cm_s2: Some(1000.0 + sd_cm),
        md_cm_min: sd_cm * 75.0,
        sv_ml: Some(sv),
        sv_range_ml: Some((sv * 0.8, sv * 1.2)),
        co_l_min: Some(sv * 75.0 / 1000.0),
        quality: if accepted { 0.95 } else { 0.15 },
        accepted,
        reject_reason: (!accepted).then_some(RejectReason::Interference),
        irregular_rhythm: false,
        ft_low_flow: false,
        completed_by_sample: ((onset_s + 0.8) * f64::from(FS)) as u64,
    }
}

struct Rig {
    handoff: Arc<Handoff>,
    sent: Rc<RefCell<Vec<Command>>>,
    next_index: u64,
    t_s: f64,
    /// Beats handed on say the rhythm is irregular.
    irregular: bool,
    /// Beats handed on say their FT is less certain for low flow.
    low_flow: bool,
}

impl Rig {
    fn new() -> Self {
        Self {
            handoff: Handoff::shared(),
            sent: Rc::default(),
            next_index: 0,
            t_s: 0.0,
            irregular: false,
            low_flow: false,
        }
    }
    fn app(&self, spec: SourceSpec) -> MonitorApp {
        let backend = TestBackend {
            spec,
            sent: self.sent.clone(),
        };
        self.handoff.events.push(EventMsg::ProbeInfo(probe_info()));
        self.handoff
            .events
            .push(EventMsg::Source(SourceState::Live));
        MonitorApp::new(self.handoff.clone(), Box::new(backend))
    }
    /// Hands `n` beats of stroke distance `sd_cm` to the UI, as the DSP thread would.
    fn beats(&mut self, n: usize, sd_cm: f64, accepted: bool) -> Vec<Beat> {
        let mut out = Vec::new();
        for _ in 0..n {
            let b = Beat {
                irregular_rhythm: self.irregular,
                ft_low_flow: self.low_flow,
                ..beat(self.next_index, self.t_s, sd_cm, accepted)
            };
            self.next_index += 1;
            self.t_s += 0.8;
            self.handoff.set_latest_sample(b.completed_by_sample);
            self.handoff.beats.push(BeatMsg {
                beat: b.clone(),
                pushed_at: Instant::now(),
            });
            out.push(b);
        }
        out
    }
}

fn harness<'a>(app: MonitorApp) -> Harness<'a, MonitorApp> {
    Harness::builder()
        .with_size([1920.0, 1080.0])
        .with_step_dt(STEP_S)
        .with_max_steps(4)
        .build_ui_state(
            |ui, app: &mut MonitorApp| {
                app.ui(ui);
            },
            app,
        )
}

fn value_of(h: &Harness<'_, MonitorApp>, label: &str) -> String {
    h.get_by_label(label).value().unwrap_or_default()
}

fn number_of(h: &Harness<'_, MonitorApp>, label: &str) -> f64 {
    let v = value_of(h, label);
    v.trim_end_matches('?')
        .parse()
        .unwrap_or_else(|_| panic!("{label} shows {v:?}, not a number"))
}

#[test]
fn numerics_show_dashes_before_any_beat() {
    let rig = Rig::new();
    let mut h = harness(rig.app(SourceSpec::Simulated { seed: 1 }));
    h.step();
    for label in ["SV", "CO", "FTc", "PV", "SD", "MA", "HR", "SVV"] {
        assert_eq!(value_of(&h, label), "—", "{label}");
    }
    h.get_by_label("no accepted beats");
}

#[test]
fn numerics_are_the_mean_of_the_last_ten_accepted_beats() {
    let mut rig = Rig::new();
    let mut h = harness(rig.app(SourceSpec::Simulated { seed: 1 }));
    let mut beats = Vec::new();
    for k in 0..15 {
        // SD climbs 12.0, 12.2, …; every fifth beat rejected with a wild SD.
        let accepted = k % 5 != 4;
        let sd = if accepted {
            12.0 + 0.2 * f64::from(k)
        } else {
            40.0
        };
        beats.extend(rig.beats(1, sd, accepted));
    }
    h.step();
    let used: Vec<&Beat> = beats.iter().rev().filter(|b| b.accepted).take(10).collect();
    let mean =
        |f: &dyn Fn(&Beat) -> f64| used.iter().map(|b| f(b)).sum::<f64>() / used.len() as f64;
    let sv = mean(&|b| b.sv_ml.unwrap_or(f64::NAN));
    let co = mean(&|b| b.co_l_min.unwrap_or(f64::NAN));
    // Displayed to 0 / 1 decimals: within half the last digit.
    assert!((number_of(&h, "SV") - sv).abs() <= 0.5, "SV {sv}");
    assert!((number_of(&h, "CO") - co).abs() <= 0.05, "CO {co}");
    assert!((number_of(&h, "SD") - mean(&|b| b.sd_cm)).abs() <= 0.05);
    assert!((number_of(&h, "PV") - mean(&|b| b.pv_cm_s)).abs() <= 0.5);
    assert!((number_of(&h, "FTc") - mean(&|b| b.ftc_ms)).abs() <= 0.5);
    assert!((number_of(&h, "HR") - 75.0).abs() <= 0.5);
    assert!(
        !value_of(&h, "SV").ends_with('?'),
        "a clean signal is not flagged"
    );
    h.get_by_label_contains("mean of 10 beats");
}

#[test]
fn numbers_from_a_poor_signal_carry_a_question_mark() {
    let mut rig = Rig::new();
    let mut h = harness(rig.app(SourceSpec::Simulated { seed: 1 }));
    rig.beats(4, 15.0, true);
    rig.beats(6, 15.0, false);
    h.step();
    let sv = value_of(&h, "SV");
    assert!(sv.ends_with('?'), "SV shows {sv:?}");
    h.get_by_label_contains("poor signal (interference)");
}

/// The DSP's line canceller is shown while it removes a tone, and not
/// otherwise.
#[test]
fn a_cancelled_steady_tone_is_shown_under_signal_quality() {
    let rig = Rig::new();
    let mut h = harness(rig.app(SourceSpec::Simulated { seed: 1 }));
    let column = |sample: u64, tones: u8| ColumnMsg {
        sample,
        rows: [0; COLUMN_ROWS],
        tones,
    };
    rig.handoff.columns.push(column(0, 0));
    h.step();
    assert!(h.query_by_label_contains("tone removed").is_none());
    rig.handoff.columns.push(column(100, 1));
    h.step();
    h.get_by_label_contains("steady tone removed");
    rig.handoff.columns.push(column(200, 0));
    h.step();
    assert!(h.query_by_label_contains("tone removed").is_none());
}

#[test]
fn an_irregular_rhythm_is_shown_and_svv_is_marked_not_valid() {
    let mut rig = Rig::new();
    let mut h = harness(rig.app(SourceSpec::Simulated { seed: 1 }));
    rig.beats(40, 15.0, true);
    h.step();
    assert_eq!(value_of(&h, "SVV"), "0");
    assert!(h.query_by_label_contains("irregular rhythm").is_none());
    // Beats from a detector that has found the rhythm irregular: SVV is
    // still shown, marked as not to be read as valid.
    rig.irregular = true;
    rig.beats(5, 15.0, true);
    h.step();
    assert_eq!(value_of(&h, "SVV"), "0?");
    assert_eq!(value_of(&h, "HR"), "75");
    h.get_by_label("irregular rhythm");
    rig.irregular = false;
    rig.beats(3, 15.0, true);
    h.step();
    assert_eq!(value_of(&h, "SVV"), "0");
    assert!(h.query_by_label_contains("irregular rhythm").is_none());
}

#[test]
fn ftc_from_low_flow_beats_is_marked_less_certain() {
    let mut rig = Rig::new();
    let mut h = harness(rig.app(SourceSpec::Simulated { seed: 1 }));
    rig.beats(10, 15.0, true);
    h.step();
    let clean = value_of(&h, "FTc");
    assert!(!clean.ends_with('?'), "{clean}");
    assert!(h.query_by_label_contains("low flow").is_none());
    // Most of the averaged beats from low flow: the same number, marked,
    // and the footer says why.
    rig.low_flow = true;
    rig.beats(6, 15.0, true);
    h.step();
    assert_eq!(value_of(&h, "FTc"), format!("{clean}?"));
    assert_eq!(value_of(&h, "HR"), "75");
    h.get_by_label_contains("FTc? = low flow");
    // Flow back up: unmarked once most averaged beats are clean again.
    rig.low_flow = false;
    rig.beats(6, 15.0, true);
    h.step();
    assert_eq!(value_of(&h, "FTc"), clean);
    assert!(h.query_by_label_contains("low flow").is_none());
}

#[test]
fn a_dsp_thread_without_real_time_priority_is_shown_under_the_probe() {
    use odm_device_io::sched::Scheduling;
    let rig = Rig::new();
    let mut h = harness(rig.app(SourceSpec::Simulated { seed: 1 }));
    h.step();
    // Not started yet, then granted: nothing to say.
    assert!(h.query_by_label_contains("DSP:").is_none());
    rig.handoff
        .set_dsp_scheduling(&Scheduling::RealTime { priority: 40 });
    h.step();
    assert!(h.query_by_label_contains("DSP:").is_none());
    rig.handoff.set_dsp_scheduling(&Scheduling::Normal {
        why: "Operation not permitted (os error 1)".into(),
    });
    h.step();
    h.get_by_label("DSP: normal priority");
}

#[test]
fn a_corrected_iq_imbalance_is_shown_under_the_probe() {
    let rig = Rig::new();
    let mut h = harness(rig.app(SourceSpec::Simulated { seed: 1 }));
    h.step();
    assert!(h.query_by_label_contains("I/Q imbalance").is_none());
    rig.handoff.set_iq_corrected_image_db(Some(-24.3));
    h.step();
    h.get_by_label("I/Q imbalance corrected (image -24 dB)");
    rig.handoff.set_iq_corrected_image_db(None);
    h.step();
    assert!(h.query_by_label_contains("I/Q imbalance").is_none());
}

#[test]
fn reversed_flow_raises_an_alarm_and_is_named_under_the_probe() {
    let rig = Rig::new();
    let mut h = harness(rig.app(SourceSpec::Simulated { seed: 1 }));
    h.step();
    assert!(h.query_by_label_contains("FLOW REVERSED").is_none());
    assert!(h.query_by_label_contains("flow reversed").is_none());
    rig.handoff.set_flow_reversed(true);
    h.step();
    h.get_by_label_contains("MEDIUM FLOW REVERSED - REFOCUS PROBE / CHECK I-Q WIRING");
    h.get_by_label("flow reversed: beam on another vessel, or I/Q swapped");
    rig.handoff.set_flow_reversed(false);
    h.step();
    assert!(h.query_by_label_contains("FLOW REVERSED").is_none());
    assert!(h.query_by_label_contains("flow reversed").is_none());
}

#[test]
fn aliasing_is_named_under_the_probe_and_alarms_only_past_the_unwrapping() {
    let rig = Rig::new();
    let mut h = harness(rig.app(SourceSpec::Simulated { seed: 1 }));
    h.step();
    assert!(h.query_by_label_contains("ALIASING").is_none());
    assert!(h.query_by_label_contains("aliasing").is_none());
    // Followed across the band's edge: measured, so no alarm.
    rig.handoff.set_aliasing(Some(108.9), None);
    h.step();
    h.get_by_label("aliasing above 109 cm/s: unwrapped");
    assert!(h.query_by_label_contains("ALIASING").is_none());
    // Past the unwrapping: beats rejected, and the alarm says what to do.
    rig.handoff.set_aliasing(Some(108.9), Some(190.6));
    h.step();
    h.get_by_label_contains("MEDIUM VELOCITY ABOVE RANGE - ALIASING, RAISE SAMPLE RATE");
    h.get_by_label("aliasing: flow above 191 cm/s, beats rejected");
    rig.handoff.set_aliasing(None, None);
    h.step();
    assert!(h.query_by_label_contains("ALIASING").is_none());
    assert!(h.query_by_label_contains("aliasing").is_none());
}

#[test]
fn a_dead_iq_channel_raises_an_alarm_and_is_named_under_the_probe() {
    let rig = Rig::new();
    let mut h = harness(rig.app(SourceSpec::Simulated { seed: 1 }));
    h.step();
    assert!(h.query_by_label_contains("I/Q CHANNEL FAULT").is_none());
    rig.handoff.set_iq_channel_fault_db(Some(-300.0));
    h.step();
    h.get_by_label_contains("MEDIUM I/Q CHANNEL FAULT - CHECK PROBE INTERFACE");
    h.get_by_label("I/Q fault: Q channel dead");
    rig.handoff.set_iq_channel_fault_db(Some(14.2));
    h.step();
    h.get_by_label("I/Q fault: I channel 14 dB under Q");
    rig.handoff.set_iq_channel_fault_db(None);
    h.step();
    assert!(h.query_by_label_contains("I/Q CHANNEL FAULT").is_none());
    assert!(h.query_by_label_contains("I/Q fault").is_none());
}

#[test]
fn bolus_shows_baseline_then_responsive_after_a_twelve_percent_rise() {
    let mut rig = Rig::new();
    let mut h = harness(rig.app(SourceSpec::Simulated { seed: 1 }));
    rig.beats(80, 15.0, true);
    h.step();
    h.get_by_label("Bolus").click();
    h.step();
    assert!(
        rig.sent
            .borrow()
            .iter()
            .any(|c| matches!(c, Command::Annotate(m)
            if m.get("type").and_then(|v| v.as_str()) == Some("bolus")
            && m.get("volume_ml").and_then(|v| v.as_f64()) == Some(250.0))),
        "a bolus annotation of the default 250 ml goes to the recorder"
    );
    // 60 s baseline of beats 0.8 s apart: 75 beats of SV 15 × 4.2 = 63 ml.
    h.get_by_label_contains("Baseline baseline SV 63 ml (75 beats)");
    h.get_by_label_contains("waiting for beats");
    rig.beats(60, 16.8, true);
    h.step();
    // SD 15 → 16.8 is +12 %: at least Singer's 10 %.
    h.get_by_label("ΔSV +12.0 % (best +12.0 %)  RESPONSIVE");
    // After the 300 s after-span the result is final and kept in the history.
    rig.beats(340, 16.8, true);
    h.step();
    h.get_by_label("last bolus: ΔSV +12.0 %  RESPONSIVE");
    h.get_by_label_contains("#1 250 ml at");
}

#[test]
fn alarm_appears_when_the_source_stops_and_clears_when_it_resumes() {
    let mut rig = Rig::new();
    let mut h = harness(rig.app(SourceSpec::Simulated { seed: 1 }));
    rig.beats(5, 15.0, true);
    h.step();
    assert!(
        h.query_by_label_contains("NO DATA FROM PROBE INTERFACE")
            .is_none()
    );
    // 4.5 s of pinned clock without samples: not yet > 5 s.
    for _ in 0..45 {
        h.step();
    }
    assert!(
        h.query_by_label_contains("NO DATA FROM PROBE INTERFACE")
            .is_none()
    );
    for _ in 0..60 {
        h.step();
    }
    h.get_by_label_contains("MEDIUM NO DATA FROM PROBE INTERFACE");
    h.get_by_label_contains("SIGNAL LOST");
    // Numerics are never hidden by an alarm, but they are marked as not
    // current, and the signal is not called good (an audit found the last
    // values at full brightness beside "GOOD 100 %", 2026-12-04).
    let sv = value_of(&h, "SV");
    assert!(sv != "—" && sv.ends_with('?'), "SV shows {sv:?}");
    h.get_by_label_contains("not current: no data from the probe interface");
    h.get_by_label_contains("NO SIGNAL: no data from the probe interface");
    assert!(h.query_by_label_contains("GOOD").is_none());
    h.get_by_label("Acknowledge").click();
    h.step();
    h.get_by_label_contains("NO DATA FROM PROBE INTERFACE");
    // Samples and beats flow again: both alarms clear.
    rig.beats(2, 15.0, true);
    h.step();
    assert!(
        h.query_by_label_contains("NO DATA FROM PROBE INTERFACE")
            .is_none()
    );
    assert!(h.query_by_label_contains("SIGNAL LOST").is_none());
    assert!(!value_of(&h, "SV").ends_with('?'), "current again");
    assert!(h.query_by_label_contains("not current").is_none());
}

#[test]
fn probe_unplugged_event_raises_an_alarm_until_plugged_in() {
    let rig = Rig::new();
    let mut h = harness(rig.app(SourceSpec::Simulated { seed: 1 }));
    let ev = |code| {
        EventMsg::Probe(ProbeEvent {
            at_sample: 100,
            code,
            value: 0,
        })
    };
    rig.handoff.events.push(ev(event_code::PROBE_UNPLUGGED));
    h.step();
    h.get_by_label_contains("PROBE UNPLUGGED");
    rig.handoff.events.push(ev(event_code::PROBE_PLUGGED));
    h.step();
    assert!(h.query_by_label_contains("PROBE UNPLUGGED").is_none());
}

#[test]
fn a_transmitter_muted_for_over_three_seconds_raises_an_alarm() {
    let mut rig = Rig::new();
    let mut h = harness(rig.app(SourceSpec::Simulated { seed: 1 }));
    rig.beats(5, 15.0, true);
    h.step();
    rig.handoff.set_transmitter_muted(true);
    // 2.5 s of pinned clock, muted: a brief mute does not alarm.
    for _ in 0..25 {
        rig.handoff
            .set_latest_sample(rig.handoff.latest_sample() + 2_000);
        h.step();
    }
    assert!(h.query_by_label_contains("TRANSMITTER MUTED").is_none());
    for _ in 0..10 {
        rig.handoff
            .set_latest_sample(rig.handoff.latest_sample() + 2_000);
        h.step();
    }
    h.get_by_label_contains("MEDIUM TRANSMITTER MUTED - CHECK PROBE INTERFACE");
    // Samples keep coming: it is not a loss of data.
    assert!(
        h.query_by_label_contains("NO DATA FROM PROBE INTERFACE")
            .is_none()
    );
    rig.handoff.set_transmitter_muted(false);
    h.step();
    assert!(h.query_by_label_contains("TRANSMITTER MUTED").is_none());
}

#[test]
fn replay_pause_and_seek_buttons_command_the_reader() {
    let mut rig = Rig::new();
    let mut h = harness(rig.app(SourceSpec::Replay {
        path: "case.odmrec".into(),
    }));
    rig.beats(50, 15.0, true); // up to 40 s of stream
    h.step();
    h.get_by_label("Pause").click();
    h.run_steps(2);
    h.get_by_label("Resume");
    h.get_by_label("-10 s").click();
    h.run_steps(2);
    let sent = rig.sent.borrow().clone();
    assert_eq!(sent.first(), Some(&Command::Pause));
    let seek = sent.iter().find_map(|c| match c {
        Command::Seek { t_s } => Some(*t_s),
        _ => None,
    });
    // Newest sample is the last beat's completion: 49 × 0.8 + 0.8 = 40 s.
    let expect = 40.0 - 10.0;
    // Within a sample or two (beat times are truncated to samples).
    assert!(
        seek.is_some_and(|t| (t - expect).abs() <= 2.0 / f64::from(FS)),
        "{seek:?}"
    );
}

#[test]
fn simulated_source_is_labelled_on_screen() {
    let rig = Rig::new();
    let mut h = harness(rig.app(SourceSpec::Simulated { seed: 1 }));
    h.step();
    h.get_by_label_contains("SIMULATED");
    let rig = Rig::new();
    let mut h = harness(rig.app(SourceSpec::Serial {
        path: "/dev/ttyACM0".into(),
        baud: 921_600,
    }));
    h.step();
    assert!(h.query_by_label_contains("SIMULATED").is_none());
}

#[test]
fn applying_the_patient_sends_demographics_for_the_sv_model() {
    let rig = Rig::new();
    let mut h = harness(rig.app(SourceSpec::Simulated { seed: 1 }));
    h.step();
    // Nothing is prefilled, so nothing can be applied before it is typed.
    h.get_by_label_contains("enter age, height, weight");
    assert!(h.state().patient.parsed().is_err());
    h.get_by_label("Apply patient").click();
    h.step();
    assert!(
        rig.sent
            .borrow()
            .iter()
            .all(|c| !matches!(c, Command::Patient(_)))
    );
    for (field, text) in [("age", "60"), ("height", "170"), ("weight", "70")] {
        h.get_by_label(field).click();
        h.step();
        h.get_by_label(field).type_text(text);
        h.step();
    }
    h.get_by_label("Apply patient").click();
    h.step();
    let sent = rig.sent.borrow().clone();
    let Some(Command::Patient(p)) = sent.last() else {
        panic!("no patient command: {sent:?}");
    };
    let json = p.annotation_json();
    assert_eq!(json.get("type").and_then(|v| v.as_str()), Some("patient"));
    assert_eq!(json.get("height_cm").and_then(|v| v.as_f64()), Some(170.0));
    // Mosteller: 170 cm, 70 kg → 1.818 m² (primer), shown to 2 decimals.
    h.get_by_label_contains("BSA 1.82 m²");
}

/// A value outside what the SV model covers (height 17 cm, a slip for
/// 170) is refused with its reason and never sent; before, the field
/// swapped in its limit (100 cm) without a word (an audit, 2026-12-04).
#[test]
fn a_patient_outside_the_model_is_refused_with_the_reason_not_clamped() {
    let rig = Rig::new();
    let mut app = rig.app(SourceSpec::Simulated { seed: 1 });
    app.patient.age_text = "60".into();
    app.patient.height_text = "17".into();
    app.patient.weight_text = "70".into();
    let mut h = harness(app);
    h.step();
    h.get_by_label_contains("not applicable: height 17 cm is outside 100..=250");
    h.get_by_label_contains("BSA —");
    h.get_by_label("Apply patient").click();
    h.step();
    assert!(
        !rig.sent
            .borrow()
            .iter()
            .any(|c| matches!(c, Command::Patient(_))),
        "an out-of-range patient was sent"
    );
    assert_eq!(
        h.state().patient.height_text,
        "17",
        "the entry is kept as typed"
    );
}

/// The patient entries: what is missing is named, text that is not a
/// number is refused by field, a decimal comma is read as a point, and a
/// comma that could group thousands is refused, not guessed.
#[test]
fn patient_entries_are_parsed_field_by_field() {
    let mut f = odm_monitor::app::PatientForm::default();
    assert_eq!(f.parsed(), Err("enter age, height, weight".into()));
    f.age_text = "60".into();
    f.weight_text = "70,5".into();
    assert_eq!(f.parsed(), Err("enter height".into()));
    f.height_text = "1m70".into();
    assert_eq!(f.parsed(), Err("height \"1m70\" is not a number".into()));
    f.height_text = " 170 ".into();
    let s = f.parsed().unwrap();
    assert_eq!((s.age_years, s.height_cm, s.weight_kg), (60, 170.0, 70.5));
    assert_eq!(s.aortic_diameter_mm, None);
    f.use_diameter = true;
    assert_eq!(f.parsed(), Err("enter the measured aortic diameter".into()));
    f.diameter_text = "23.5".into();
    assert_eq!(f.parsed().unwrap().aortic_diameter_mm, Some(23.5));
    f.age_text = "60.5".into();
    assert!(f.parsed().unwrap_err().contains("whole number"));
    f.age_text = "60".into();
    f.weight_text = "1,500".into();
    assert_eq!(
        f.parsed(),
        Err("weight \"1,500\" is ambiguous: type 1500 or 1.5".into())
    );
    f.weight_text = "1.500".into();
    assert!(f.parsed().unwrap_err().contains("ambiguous"));
    f.weight_text = "+1,500".into();
    assert!(f.parsed().unwrap_err().contains("ambiguous"));
    f.weight_text = "70,25".into();
    assert_eq!(f.parsed().unwrap().weight_kg, 70.25);
    f.diameter_text = "0,750".into();
    assert!(
        f.parsed().unwrap_err().contains("0.75"),
        "read as a decimal"
    );
}

/// The audio status in the top bar is one word (the bar is full at
/// 1280 px and the reason was cut off); the reason is in the diagnostics.
#[test]
fn the_top_bar_says_audio_off_in_a_word_and_the_diagnostics_say_why() {
    let rig = Rig::new();
    let mut h = harness(rig.app(SourceSpec::Simulated { seed: 1 }));
    h.step();
    h.get_by_label("audio off");
    h.get_by_label("audio off: the test backend has no sound");
}
