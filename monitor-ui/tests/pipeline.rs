//! End to end without threads: the virtual probe's payloads go through the
//! app's real `Engine` synchronously, and the numbers on screen (found by
//! accessible label, pinned clock) are checked against an independent run of
//! the same `Pipeline` over the same payloads.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT, Queryable};
use odm_device_io::Payload;
use odm_dsp::haemo::FtcFormula;
use odm_dsp::{Beat, Pipeline, PipelineConfig, PipelineSink, StreamParams};
use odm_monitor::MonitorApp;
use odm_monitor::control::{Backend, Command, RecordingStatus, SourceSpec};
use odm_monitor::engine::{Engine, sv_model_from_patient};
use odm_monitor::handoff::{EventMsg, Handoff, SourceState};
use odm_simulator::{SimConfig, VirtualProbe};

/// The app's engine and the virtual probe, driven by the test.
struct Feed {
    engine: Engine,
    probe: VirtualProbe,
    /// Every payload fed, for the independent run.
    log: Vec<Payload>,
    /// Commands the UI sent.
    sent: Vec<Command>,
}

impl Feed {
    fn new(handoff: Arc<Handoff>) -> Self {
        let cfg = SimConfig {
            seed: 7,
            duration_s: None,
            snr_db: Some(20.0),
            ..SimConfig::default()
        };
        Self {
            engine: Engine::new(handoff),
            probe: VirtualProbe::new(cfg).unwrap_or_else(|e| panic!("simulator: {e}")),
            log: Vec::new(),
            sent: Vec::new(),
        }
    }
    /// Feeds `seconds` of signal.
    fn feed_s(&mut self, seconds: f64) {
        let until = self.probe.time_s() + seconds;
        while self.probe.time_s() < until {
            let Some(p) = self.probe.next_payload() else {
                break;
            };
            self.log.push(p.clone());
            self.engine.handle(p);
        }
    }
}

struct SyncBackend {
    feed: Rc<RefCell<Feed>>,
    spec: SourceSpec,
}

impl Backend for SyncBackend {
    fn send(&mut self, cmd: Command) {
        let mut f = self.feed.borrow_mut();
        if let Command::Patient(p) = &cmd
            && let Err(e) = f.engine.set_patient(p)
        {
            panic!("patient refused: {e}");
        }
        f.sent.push(cmd);
    }
    fn source(&self) -> &SourceSpec {
        &self.spec
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

#[derive(Default)]
struct Collect {
    beats: Vec<Beat>,
}

impl PipelineSink for Collect {
    fn beat(&mut self, beat: &Beat) {
        self.beats.push(beat.clone());
    }
}

/// The independent run: a fresh `Pipeline` over the logged payloads, with
/// the SV model switched at payload `model_from` (when given).
fn reference_beats(
    log: &[Payload],
    model_from: Option<(usize, odm_dsp::haemo::SvModel)>,
) -> Vec<Beat> {
    let mut pipeline: Option<Pipeline> = None;
    let mut sink = Collect::default();
    for (k, p) in log.iter().enumerate() {
        match p {
            Payload::ProbeInfo(info) if pipeline.is_none() => {
                let params = StreamParams {
                    sample_rate_hz: info.sample_rate_hz,
                    carrier_hz: info.carrier_hz,
                    beam_angle_deg: info.beam_angle_deg(),
                };
                pipeline = Some(
                    Pipeline::new(PipelineConfig::default(), params)
                        .unwrap_or_else(|e| panic!("{e}")),
                );
            }
            Payload::Iq(b) => {
                // The app's engine switched model before the first payload
                // fed after the click.
                if let Some((at, model)) = model_from
                    && k >= at
                    && let Some(pl) = &mut pipeline
                {
                    pl.set_sv_model(model);
                }
                if let Some(pl) = &mut pipeline {
                    pl.push(b.first_sample, &b.samples, b.clipped(), &mut sink);
                }
            }
            _ => {}
        }
    }
    sink.beats
}

fn mean_of_last_ten_accepted(beats: &[Beat], f: impl Fn(&Beat) -> f64) -> f64 {
    let used: Vec<&Beat> = beats.iter().rev().filter(|b| b.accepted).take(10).collect();
    assert_eq!(used.len(), 10, "fewer than 10 accepted beats");
    used.iter().map(|b| f(b)).sum::<f64>() / 10.0
}

fn rig() -> (
    Harness<'static, MonitorApp>,
    Rc<RefCell<Feed>>,
    Arc<Handoff>,
) {
    rig_with_ftc(FtcFormula::default())
}

/// [`rig`] with the FTc formula `ftc` set before the engine starts, as
/// `odm-monitor --ftc` does.
fn rig_with_ftc(
    ftc: FtcFormula,
) -> (
    Harness<'static, MonitorApp>,
    Rc<RefCell<Feed>>,
    Arc<Handoff>,
) {
    let handoff = Handoff::shared();
    handoff.set_ftc_formula(ftc);
    let feed = Rc::new(RefCell::new(Feed::new(handoff.clone())));
    handoff.events.push(EventMsg::Source(SourceState::Live));
    let backend = SyncBackend {
        feed: feed.clone(),
        spec: SourceSpec::Simulated { seed: 7 },
    };
    let app = MonitorApp::new(handoff.clone(), Box::new(backend));
    let h = Harness::builder()
        .with_size([1920.0, 1080.0])
        .with_step_dt(0.1)
        .build_ui_state(|ui, app: &mut MonitorApp| app.ui(ui), app);
    (h, feed, handoff)
}

fn number(h: &Harness<'_, MonitorApp>, label: &str) -> f64 {
    let v = h.get_by_label(label).value().unwrap_or_default();
    assert!(
        !v.ends_with('?'),
        "{label} is flagged poor on a clean simulation: {v}"
    );
    v.parse().unwrap_or_else(|_| panic!("{label} shows {v:?}"))
}

#[test]
fn numerics_equal_the_pipelines_beats_on_the_virtual_probe() {
    let (mut h, feed, _handoff) = rig();
    feed.borrow_mut().feed_s(30.0);
    h.step();
    let beats = reference_beats(&feed.borrow().log, None);
    assert!(
        beats.iter().filter(|b| b.accepted).count() >= 20,
        "the simulation gives beats"
    );
    let check = |h: &Harness<'_, MonitorApp>, label: &str, expect: f64, half_digit: f64| {
        let shown = number(h, label);
        assert!(
            (shown - expect).abs() <= half_digit + 1e-9,
            "{label}: shown {shown}, pipeline {expect}"
        );
    };
    check(
        &h,
        "SD",
        mean_of_last_ten_accepted(&beats, |b| b.sd_cm),
        0.05,
    );
    check(
        &h,
        "PV",
        mean_of_last_ten_accepted(&beats, |b| b.pv_cm_s),
        0.5,
    );
    check(
        &h,
        "FTc",
        mean_of_last_ten_accepted(&beats, |b| b.ftc_ms),
        0.5,
    );
    check(
        &h,
        "HR",
        mean_of_last_ten_accepted(&beats, |b| b.hr_bpm),
        0.5,
    );
    // No patient entered: no area model, so no SV and no CO, never a guess.
    assert_eq!(h.get_by_label("SV").value().as_deref(), Some("—"));
    assert_eq!(h.get_by_label("CO").value().as_deref(), Some("—"));
    h.get_by_label("mean of 10 beats (window 10)");
}

#[test]
fn the_ftc_formula_set_at_start_is_the_one_shown_and_named() {
    // FTc (ms) from FT (ms) and cycle (s).
    type Correction = fn(f64, f64) -> f64;
    // FTc from each beat's own FT and cycle, by the primer's formulas
    // (not the pipeline's FTc field), averaged as the display averages.
    let expect =
        |beats: &[Beat], f: Correction| mean_of_last_ten_accepted(beats, |b| f(b.ft_ms, b.cycle_s));
    let cases: [(FtcFormula, &str, Correction); 3] = [
        (FtcFormula::Bazett, "Bazett", |ft, c| ft / c.sqrt()),
        (FtcFormula::Fridericia, "Fridericia", |ft, c| ft / c.cbrt()),
        (
            FtcFormula::Linear { k_ms_per_bpm: 3.0 },
            "linear, k 3 ms per /min",
            |ft, c| ft + 3.0 * (60.0 / c - 60.0),
        ),
    ];
    let mut shown = Vec::new();
    for (ftc, name, formula) in cases {
        let (mut h, feed, _handoff) = rig_with_ftc(ftc);
        feed.borrow_mut().feed_s(30.0);
        h.step();
        let beats = reference_beats(&feed.borrow().log, None);
        let ftc_shown = number(&h, "FTc");
        let want = expect(&beats, formula);
        assert!(
            (ftc_shown - want).abs() <= 0.5 + 1e-9,
            "{name}: shown {ftc_shown}, expected {want}"
        );
        // Named on the tile (the line under the number).
        assert_eq!(
            h.get_by_label("FTc").accesskit_node().data().placeholder(),
            Some(name),
            "{ftc:?}"
        );
        shown.push(ftc_shown);
    }
    // The simulation's heart rate is not 60/min, so the formulas differ
    // and each value above was told apart from the others.
    assert!((shown[0] - shown[1]).abs() > 2.0, "{shown:?}");
    assert!((shown[1] - shown[2]).abs() > 2.0, "{shown:?}");
}

#[test]
fn applying_the_patient_gives_sv_from_the_population_model() {
    let (mut h, feed, _handoff) = rig();
    feed.borrow_mut().feed_s(5.0);
    h.step();
    for (field, text) in [("age", "60"), ("height", "170"), ("weight", "70")] {
        h.get_by_label(field).click();
        h.step();
        h.get_by_label(field).type_text(text);
        h.step();
    }
    h.get_by_label("Apply patient").click();
    h.run_steps(2);
    let applied_at = feed.borrow().log.len();
    let Some(Command::Patient(p)) = feed.borrow().sent.last().cloned() else {
        panic!("no patient command");
    };
    feed.borrow_mut().feed_s(30.0);
    h.step();
    let model = sv_model_from_patient(&p).unwrap_or_else(|e| panic!("{e}"));
    let beats = reference_beats(&feed.borrow().log, Some((applied_at, model)));
    let sv = mean_of_last_ten_accepted(&beats, |b| b.sv_ml.unwrap_or(f64::NAN));
    let shown = number(&h, "SV");
    assert!((shown - sv).abs() <= 0.5, "SV shown {shown}, pipeline {sv}");
    // CO over the time of the last ten heartbeats (accepted or ectopic):
    // 60 · Σ SV / Σ cycle (docs/haemodynamics.md).
    let heartbeats: Vec<&Beat> = beats
        .iter()
        .rev()
        .filter(|b| b.accepted || b.reject_reason == Some(odm_dsp::RejectReason::Ectopic))
        .take(10)
        .collect();
    let co = 60.0
        * heartbeats
            .iter()
            .map(|b| b.sv_ml.unwrap_or(f64::NAN))
            .sum::<f64>()
        / heartbeats.iter().map(|b| b.cycle_s).sum::<f64>()
        / 1000.0;
    let shown_co = number(&h, "CO");
    assert!(
        (shown_co - co).abs() <= 0.05,
        "CO shown {shown_co}, pipeline {co}"
    );
}

#[test]
fn signal_lost_alarm_when_the_probe_stops_and_cleared_when_it_resumes() {
    let (mut h, feed, _handoff) = rig();
    feed.borrow_mut().feed_s(15.0);
    h.step();
    assert!(h.query_by_label_contains("SIGNAL LOST").is_none());
    // 11 s of pinned clock with no samples at all.
    for _ in 0..110 {
        h.step();
    }
    h.get_by_label_contains("SIGNAL LOST");
    h.get_by_label_contains("NO DATA FROM PROBE INTERFACE");
    feed.borrow_mut().feed_s(3.0);
    h.step();
    assert!(h.query_by_label_contains("NO DATA").is_none());
    assert!(h.query_by_label_contains("SIGNAL LOST").is_none());
}

/// The virtual probe with `cfg` through a fresh engine; `each` sees the
/// handoff after every payload. Returns the handoff.
fn through_engine(cfg: SimConfig, mut each: impl FnMut(&Handoff)) -> Arc<Handoff> {
    let handoff = Handoff::shared();
    let mut engine = Engine::new(handoff.clone());
    let mut probe = VirtualProbe::new(cfg).unwrap_or_else(|e| panic!("simulator: {e}"));
    while let Some(p) = probe.next_payload() {
        engine.handle(p);
        each(&handoff);
    }
    handoff
}

/// The engine tells the display when the DSP corrects the probe's I/Q
/// imbalance, with the image level it removes; a balanced probe shows
/// nothing.
#[test]
fn the_engine_reports_a_corrected_iq_imbalance() {
    for (phase_deg, gain_error) in [(0.0_f64, 0.0_f64), (5.0, 0.1)] {
        let cfg = SimConfig {
            seed: 3,
            duration_s: Some(10.0),
            snr_db: Some(30.0),
            sample_rate_hz: 8000,
            iq_gain_error: gain_error,
            iq_phase_error_deg: phase_deg,
            ..SimConfig::default()
        };
        let handoff = through_engine(cfg, |_| {});
        let shown = handoff.iq_corrected_image_db();
        if gain_error == 0.0 {
            assert_eq!(shown, None);
        } else {
            // 10 % and 5°: 20·log10(|0.1 + 0.087i|/2) ≈ −24 dB.
            let db = shown.unwrap_or_else(|| panic!("no correction shown"));
            assert!((-27.0..-21.0).contains(&db), "{db:.1} dB");
        }
    }
}

/// The engine tells the display when the DSP finds the flow in the reverse
/// half: an interface that swaps I and Q; a probe wired right never is.
#[test]
fn the_engine_reports_reversed_flow() {
    for swapped in [false, true] {
        let cfg = SimConfig {
            seed: 3,
            duration_s: Some(8.0),
            iq_swapped: swapped,
            ..SimConfig::default()
        };
        let mut first_reported_s = None;
        let handoff = through_engine(cfg, |h| {
            if first_reported_s.is_none() && h.flow_reversed() {
                first_reported_s = Some(h.latest_sample() as f64 / 20_000.0);
            }
        });
        if swapped {
            let t = first_reported_s.unwrap_or_else(|| panic!("never reported"));
            assert!((2.5..4.5).contains(&t), "first reported at {t} s");
            assert!(handoff.flow_reversed());
        } else {
            assert_eq!(first_reported_s, None);
        }
    }
}

/// The engine tells the display while the flow wraps round the top of the
/// band, with the limit, and while it is past the unwrapping, with that
/// range's top: at 8 kHz (limit 109 cm/s) peaks of about 155 cm/s are
/// followed, peaks of about 200 are past; the same beats capped under the
/// limit show nothing.
#[test]
fn the_engine_reports_aliasing_with_the_limit() {
    for (sv_ml, allow_aliasing) in [(130.0, false), (130.0, true), (170.0, true)] {
        let cfg = SimConfig {
            seed: 3,
            duration_s: Some(8.0),
            sample_rate_hz: 8000,
            sv_ml,
            allow_aliasing,
            ..SimConfig::default()
        };
        let (mut limit, mut past) = (None, None);
        through_engine(cfg, |h| {
            limit = limit.or(h.aliasing_limit_cm_s());
            past = past.or(h.aliasing_past_unwrap_cm_s());
        });
        if allow_aliasing {
            let limit = limit.unwrap_or_else(|| panic!("SV {sv_ml}: never reported"));
            assert!((limit - 108.9).abs() < 0.5, "{limit} cm/s");
        } else {
            assert_eq!(limit, None);
        }
        if sv_ml > 150.0 {
            let top = past.unwrap_or_else(|| panic!("never past the unwrapping"));
            assert!((top - 1.75 * 108.9).abs() < 1.0, "{top} cm/s");
        } else {
            assert_eq!(past, None, "SV {sv_ml}");
        }
    }
}

/// The engine tells the display when one I/Q channel is dead (a broken wire
/// or ADC channel), with Q's power against I's; a working one shows nothing.
#[test]
fn the_engine_reports_a_dead_iq_channel() {
    for gain_error in [0.0, -1.0] {
        let cfg = SimConfig {
            seed: 3,
            duration_s: Some(8.0),
            sample_rate_hz: 8000,
            iq_gain_error: gain_error,
            ..SimConfig::default()
        };
        let handoff = through_engine(cfg, |_| {});
        let shown = handoff.iq_channel_fault_db();
        if gain_error == 0.0 {
            assert_eq!(shown, None);
        } else {
            assert_eq!(shown, Some(-99.0), "a dead Q channel, clamped");
        }
    }
}
