//! Shared harness: run the virtual probe through the pipeline and score the
//! beats against the simulator's exact truth.
#![allow(dead_code)]

use odm_device_io::frame::Payload;
use odm_dsp::validation::{GridProfile, RefBeat, Score, score};
use odm_dsp::{Beat, Pipeline, PipelineConfig, PipelineSink, Status, StreamParams};
use odm_simulator::{ImpairmentKind, ImpairmentSchedule, SimConfig, VirtualProbe};

/// Collects every beat and status.
#[derive(Default)]
pub struct Collect {
    pub beats: Vec<Beat>,
    pub statuses: Vec<Status>,
    pub envelope: Vec<(f64, f64)>,
    pub keep_envelope: bool,
}

impl PipelineSink for Collect {
    fn beat(&mut self, b: &Beat) {
        self.beats.push(b.clone());
    }
    fn status(&mut self, s: &Status) {
        self.statuses.push(*s);
    }
    fn envelope_point(&mut self, p: &odm_dsp::EnvelopePoint) {
        if self.keep_envelope {
            self.envelope.push((p.t_s, p.velocity_cm_s));
        }
    }
}

impl Collect {
    /// Whether the pipeline reported lost samples (`Status::Gap`).
    pub fn reported_a_gap(&self) -> bool {
        self.statuses
            .iter()
            .any(|s| matches!(s, Status::Gap { .. }))
    }
}

pub struct Run {
    pub out: Collect,
    pub truth: Vec<RefBeat>,
    pub truth_ectopic: Vec<bool>,
    pub impairments: Vec<(f64, f64)>,
    pub duration_s: f64,
    pub score: Score,
}

/// Feeds one payload of the virtual probe to the pipeline: the first probe
/// information builds it (with `cfg`), I/Q blocks go through it into `sink`.
pub fn feed(
    pipe: &mut Option<Pipeline>,
    cfg: PipelineConfig,
    payload: Payload,
    sink: &mut impl PipelineSink,
) {
    match payload {
        Payload::ProbeInfo(info) if pipe.is_none() => {
            let params = StreamParams {
                sample_rate_hz: info.sample_rate_hz,
                carrier_hz: info.carrier_hz,
                beam_angle_deg: f64::from(info.beam_angle_cdeg) / 100.0,
            };
            *pipe = Some(Pipeline::new(cfg, params).expect("pipeline"));
        }
        Payload::Event(e) if e.code == odm_device_io::frame::event_code::GAIN_CHANGED => {
            if let Some(pl) = pipe.as_mut() {
                pl.receive_gain_changed(e.at_sample, e.value);
            }
        }
        Payload::Iq(b) => {
            if let Some(pl) = pipe.as_mut() {
                pl.push_flagged(b.first_sample, &b.samples, b.clipped(), b.muted(), sink);
            }
        }
        _ => {}
    }
}

pub fn run_sim(sim: SimConfig, cfg: PipelineConfig, keep_envelope: bool) -> Run {
    run_sim_altered(sim, cfg, keep_envelope, |_| {})
}

/// [`run_sim`] with every payload passed through `alter` before the
/// pipeline sees it (e.g. to add interference the probe does not make).
pub fn run_sim_altered(
    sim: SimConfig,
    cfg: PipelineConfig,
    keep_envelope: bool,
    mut alter: impl FnMut(&mut Payload),
) -> Run {
    let duration_s = sim.duration_s.expect("finite run");
    let mut probe = VirtualProbe::new(sim).expect("valid sim config");
    let mut pipe: Option<Pipeline> = None;
    let mut out = Collect {
        keep_envelope,
        ..Default::default()
    };
    let mut truth_beats = Vec::new();
    let mut impairments = Vec::new();
    while let Some(mut p) = probe.next_payload() {
        alter(&mut p);
        feed(&mut pipe, cfg, p, &mut out);
        truth_beats.extend(probe.take_truth_beats());
        impairments.extend(probe.take_impairments());
    }
    if let Some(pl) = pipe.as_mut() {
        pl.finish(&mut out);
    }
    truth_beats.extend(probe.take_truth_beats());
    impairments.extend(probe.take_impairments());
    let truth: Vec<RefBeat> = truth_beats
        .iter()
        .map(|t| RefBeat {
            onset_s: t.onset_s,
            peak_s: t.peak_s,
            end_s: t.end_s,
            next_onset_s: t.next_onset_s,
            sd_cm: t.sd_cm,
            pv_cm_s: t.pv_cm_s,
            hr_bpm: t.hr_bpm,
        })
        .collect();
    let truth_ectopic = truth_beats.iter().map(|t| t.ectopic).collect();
    let impairments: Vec<(f64, f64)> = impairments
        .iter()
        .filter(|i| {
            matches!(
                i.kind,
                ImpairmentKind::Diathermy
                    | ImpairmentKind::Gap
                    | ImpairmentKind::Clipped
                    | ImpairmentKind::Unplugged
            )
        })
        .map(|i| (i.start_s, i.end_s))
        .collect();
    let score = score(&truth, &out.beats, &impairments, (0.0, duration_s), 0.05);
    Run {
        out,
        truth,
        truth_ectopic,
        impairments,
        duration_s,
        score,
    }
}

/// `c` with the velocity profile of the accuracy grid's `profile`.
pub fn with_profile(c: SimConfig, profile: &GridProfile) -> SimConfig {
    SimConfig {
        profile_exponent: profile.profile_exponent,
        peak_frac: profile.peak_frac,
        ftc_ms: profile.ftc_ms,
        sv_ml: profile.sv_ml,
        ..c
    }
}

pub fn sim(seed: u64, seconds: f64, snr_db: f64, hr_bpm: f64) -> SimConfig {
    SimConfig {
        seed,
        duration_s: Some(seconds),
        snr_db: Some(snr_db),
        hr_bpm,
        ..SimConfig::default()
    }
}

/// A probe interface that is wired right and balanced, across what the
/// virtual probe can vary: noise, sample rate, clutter, strong reverse
/// flow, low flow, ectopics, every impairment and a phantom. Stages that
/// only report an interface's faults (I/Q imbalance, reversed flow) must
/// never act on any of these.
pub fn normal_probes() -> Vec<(&'static str, SimConfig)> {
    vec![
        ("default 8 dB", sim(1, 30.0, 8.0, 75.0)),
        ("8 kHz 30 dB 140/min", {
            let mut c = sim(2, 30.0, 30.0, 140.0);
            c.sample_rate_hz = 8000;
            c
        }),
        ("48 kHz", {
            let mut c = sim(3, 30.0, 30.0, 75.0);
            c.sample_rate_hz = 48_000;
            c
        }),
        ("clutter 45 dB, reverse 40 cm/s, ectopics", {
            let mut c = sim(4, 30.0, 30.0, 90.0);
            c.clutter_db = Some(45.0);
            c.reverse_flow_cm_s = 40.0;
            c.ectopic_rate = 0.1;
            c
        }),
        ("low flow SV 20 ml, reverse 40 cm/s, 8 dB", {
            let mut c = sim(3, 30.0, 8.0, 75.0);
            c.sv_ml = 20.0;
            c.reverse_flow_cm_s = 40.0;
            c
        }),
        (
            "diathermy, gaps, clipping",
            with_impairments(sim(5, 60.0, 15.0, 75.0)),
        ),
        ("phantom 60 cm/s", {
            let mut c = sim(6, 20.0, 30.0, 75.0);
            c.phantom_cm_s = Some(60.0);
            c
        }),
    ]
}

/// `c` with random diathermy (1–3 s about every 10 s), lost blocks
/// (10–300 ms about every 8 s) and clipping (0.5–1 s about every 10 s).
pub fn with_impairments(mut c: SimConfig) -> SimConfig {
    c.diathermy = ImpairmentSchedule::Random {
        mean_interval_s: 10.0,
        min_duration_s: 1.0,
        max_duration_s: 3.0,
    };
    c.gaps = ImpairmentSchedule::Random {
        mean_interval_s: 8.0,
        min_duration_s: 0.01,
        max_duration_s: 0.3,
    };
    c.clipping = ImpairmentSchedule::Random {
        mean_interval_s: 10.0,
        min_duration_s: 0.5,
        max_duration_s: 1.0,
    };
    c
}

/// One line for a run: its score and the beats' rejection reasons.
pub fn outcome(r: &Run) -> String {
    format!("{} {}", describe(&r.score), reasons(&r.out.beats))
}

/// The truth beats after the first second whose cycle, widened by 0.1 s
/// either side, is clear of every span in `spans` (s), and how many of them
/// an accepted beat matches (onset within 50 ms): `(found, clear)`.
pub fn clear_beats_accepted(r: &Run, spans: &[(f64, f64)]) -> (usize, usize) {
    let clear: Vec<&RefBeat> = r
        .truth
        .iter()
        .filter(|t| {
            let (a, b) = (t.onset_s - 0.1, t.next_onset_s + 0.1);
            t.onset_s > 1.0 && !spans.iter().any(|&(s, e)| a < e && s < b)
        })
        .collect();
    let found = clear
        .iter()
        .filter(|t| {
            r.out
                .beats
                .iter()
                .any(|b| b.accepted && (b.onset_s - t.onset_s).abs() < 0.05)
        })
        .count();
    (found, clear.len())
}

pub fn reasons(beats: &[Beat]) -> String {
    let mut m = std::collections::BTreeMap::new();
    for b in beats {
        *m.entry(b.reject_reason.map(|r| r.as_str()).unwrap_or("accepted"))
            .or_insert(0) += 1;
    }
    format!("{m:?}")
}

pub fn describe(s: &Score) -> String {
    format!(
        "sens {:.4} ({}/{}) ppv {:.4} ({}/{}) acc {} inImp {} | onset med {:+.2} |{:.2}| p95 {:.2} | end med {:+.2} |{:.2}| | FT med {:+.2} |{:.2}| p95 {:.2} | SD med {:+.2}% |{:.2}| | PV med {:+.2}% |{:.2}| | HR |{:.3}| p95 {:.3}",
        s.sensitivity(),
        s.truth_matched,
        s.truth_eligible,
        s.ppv(),
        s.detected_matched,
        s.detected_clean,
        s.accepted,
        s.accepted_in_impairment,
        s.onset_ms.median,
        s.onset_ms.median_abs,
        s.onset_ms.p95_abs,
        s.end_ms.median,
        s.end_ms.median_abs,
        s.ft_ms.median,
        s.ft_ms.median_abs,
        s.ft_ms.p95_abs,
        s.sd_pct.median,
        s.sd_pct.median_abs,
        s.pv_pct.median,
        s.pv_pct.median_abs,
        s.hr_bpm.median_abs,
        s.hr_bpm.p95_abs
    )
}
