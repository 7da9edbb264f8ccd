//! Everything the screen shows, updated once per frame from the handoff.
//!
//! The UI thread owns this; `ingest` drains the handoff queues (never
//! blocking the DSP thread) and re-judges alarms and the fluid challenge.

use std::time::Instant;

use odm_device_io::{ProbeInfo, event_code};
use odm_dsp::Status;

use crate::alarms::{AlarmInputs, Alarms};
use crate::challenge::FluidChallenges;
use crate::handoff::{EventMsg, Handoff, SourceState};
use crate::readings::Readings;
use crate::spectrogram::Spectrogram;

/// Minutes of probe life left below which the probe panel warns.
pub const PROBE_LIFE_WARNING_MIN: u32 = 60;
/// How far behind the newest sample beat-driven windows are advanced when
/// no beat comes, s: a beat is emitted at its next onset (≤ 2 s at 30/min)
/// plus the detector's look-ahead.
const BEAT_LAG_S: f64 = 5.0;
/// Bolus and marker annotations kept for the trend display.
const MARKS_KEPT: usize = 512;

/// Beat-to-screen latency statistics, milliseconds.
#[derive(Debug, Clone, Default)]
pub struct LatencyStats {
    samples_ms: Vec<f64>,
}

impl LatencyStats {
    /// Adds one measurement.
    pub fn push(&mut self, ms: f64) {
        if self.samples_ms.len() >= 100_000 {
            self.samples_ms.remove(0);
        }
        self.samples_ms.push(ms);
    }
    /// Measurements so far.
    pub fn count(&self) -> usize {
        self.samples_ms.len()
    }
    /// The `p`-th percentile (0..=100), nearest rank.
    pub fn percentile_ms(&self, p: f64) -> Option<f64> {
        if self.samples_ms.is_empty() {
            return None;
        }
        let mut v = self.samples_ms.clone();
        v.sort_by(f64::total_cmp);
        let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
        v.get(rank.clamp(1, v.len()) - 1).copied()
    }
}

/// A bolus or marker on the trend, from the UI or read from a recording.
#[derive(Debug, Clone, PartialEq)]
pub struct Mark {
    /// Stream time, s.
    pub t_s: f64,
    /// Bolus volume, ml; `None` for a marker.
    pub bolus_ml: Option<f64>,
    /// Marker text.
    pub text: String,
}

/// What the screen shows.
pub struct MonitorState {
    /// The waterfall.
    pub spectrogram: Spectrogram,
    /// Beats, averages and trends.
    pub readings: Readings,
    /// Active alarms.
    pub alarms: Alarms,
    /// Fluid challenges of this case.
    pub challenges: FluidChallenges,
    /// The newest PROBE_INFO.
    pub probe: Option<ProbeInfo>,
    /// The probe is unplugged (EVENT 3 without a later EVENT 4).
    pub probe_unplugged: bool,
    /// The reader's state.
    pub source: SourceState,
    /// The stroke-volume model the pipeline uses.
    pub area_model: odm_dsp::haemo::SvModel,
    /// The newest pipeline status.
    pub last_status: Option<Status>,
    /// Boluses and markers for the trend.
    pub marks: Vec<Mark>,
    /// Beat-to-screen latency.
    pub latency: LatencyStats,
    /// UI clock when monitoring (re)started, s.
    pub started_at_s: f64,
    /// UI clock when samples last arrived, s.
    pub last_data_at_s: Option<f64>,
    /// UI clock when an accepted beat last arrived, s.
    pub last_accepted_at_s: Option<f64>,
    /// Whether any accepted beat has arrived since the start (a signal has been acquired).
    pub acquired: bool,
    /// Beats received.
    pub beats_received: u64,
    /// Accepted beats received.
    pub beats_accepted: u64,
    /// Probe events with codes this version does not know, kept and shown.
    pub unknown_events: Vec<(u16, i32)>,
    /// Steady narrowband tones the DSP is cancelling (newest column).
    pub tones_cancelled: u8,
    /// The DSP finds the pulsatile flow in the reverse half of the spectrum.
    pub flow_reversed: bool,
    /// UI-clock time since which the transmitter has been muted (None
    /// while it is not).
    pub muted_since_s: Option<f64>,
    /// Q's power against I's while one channel is dead or broken, dB.
    pub iq_channel_fault_db: Option<f64>,
    /// While the flow aliases, the velocity the stream can carry, cm/s.
    pub aliasing_limit_cm_s: Option<f64>,
    /// While the flow is past even the unwrapped range, its top, cm/s.
    pub aliasing_past_unwrap_cm_s: Option<f64>,
    last_seen_sample: u64,
    now_s: f64,
}

impl Default for MonitorState {
    fn default() -> Self {
        Self::new()
    }
}

impl MonitorState {
    /// The state before any data.
    pub fn new() -> Self {
        Self {
            spectrogram: Spectrogram::new(),
            readings: Readings::default(),
            alarms: Alarms::default(),
            challenges: FluidChallenges::default(),
            probe: None,
            probe_unplugged: false,
            source: SourceState::Connecting(String::new()),
            area_model: odm_dsp::haemo::SvModel::None,
            last_status: None,
            marks: Vec::new(),
            latency: LatencyStats::default(),
            started_at_s: 0.0,
            last_data_at_s: None,
            last_accepted_at_s: None,
            acquired: false,
            beats_received: 0,
            beats_accepted: 0,
            unknown_events: Vec::new(),
            tones_cancelled: 0,
            flow_reversed: false,
            muted_since_s: None,
            iq_channel_fault_db: None,
            aliasing_limit_cm_s: None,
            aliasing_past_unwrap_cm_s: None,
            last_seen_sample: 0,
            now_s: 0.0,
        }
    }

    /// The stream's sample rate, when known.
    pub fn sample_rate_hz(&self) -> Option<u32> {
        self.probe.as_ref().map(|p| p.sample_rate_hz)
    }

    /// Stream time of the newest sample processed, s.
    pub fn stream_now_s(&self) -> f64 {
        match self.sample_rate_hz() {
            Some(hz) if hz > 0 => self.last_seen_sample as f64 / f64::from(hz),
            _ => 0.0,
        }
    }

    /// Index one past the newest sample processed.
    pub fn latest_sample(&self) -> u64 {
        self.last_seen_sample
    }

    /// UI clock of the last `ingest`, s.
    pub fn now_s(&self) -> f64 {
        self.now_s
    }

    /// Whether monitoring is running: samples expected, alarms armed.
    pub fn monitoring(&self) -> bool {
        matches!(
            self.source,
            SourceState::Live | SourceState::Reconnecting(_) | SourceState::Connecting(_)
        )
    }

    /// Forgets time-based displays (seek, new source).
    pub fn reset_stream(&mut self) {
        self.spectrogram.clear();
        self.readings.clear();
        self.challenges.clear();
        self.marks.clear();
        self.last_seen_sample = 0;
        self.acquired = false;
        self.last_accepted_at_s = None;
        self.started_at_s = self.now_s;
        self.last_status = None;
    }

    /// Drains the handoff and re-judges alarms and the open challenge.
    /// `now_s` is the UI clock (egui input time; pinned in tests).
    pub fn ingest(&mut self, handoff: &Handoff, now_s: f64) {
        self.now_s = now_s;
        while let Some(ev) = handoff.events.pop() {
            self.apply_event(ev);
        }
        while let Some(col) = handoff.columns.pop() {
            self.tones_cancelled = col.tones;
            self.spectrogram.push_column(col);
        }
        while let Some(p) = handoff.envelope.pop() {
            self.spectrogram.push_envelope(p);
        }
        let painted_at = Instant::now();
        while let Some(msg) = handoff.beats.pop() {
            self.beats_received += 1;
            self.readings.push(&msg.beat);
            self.challenges.push_beat(&msg.beat);
            if msg.beat.accepted {
                self.beats_accepted += 1;
                self.last_accepted_at_s = Some(now_s);
                self.acquired = true;
            }
            let ms = painted_at
                .saturating_duration_since(msg.pushed_at)
                .as_secs_f64()
                * 1000.0;
            self.latency.push(ms);
        }
        self.flow_reversed = handoff.flow_reversed();
        self.muted_since_s = if handoff.transmitter_muted() {
            Some(self.muted_since_s.unwrap_or(now_s))
        } else {
            None
        };
        self.iq_channel_fault_db = handoff.iq_channel_fault_db();
        self.aliasing_limit_cm_s = handoff.aliasing_limit_cm_s();
        self.aliasing_past_unwrap_cm_s = handoff.aliasing_past_unwrap_cm_s();
        let latest = handoff.latest_sample();
        if latest != self.last_seen_sample {
            if latest > self.last_seen_sample {
                self.last_data_at_s = Some(now_s);
            }
            self.last_seen_sample = latest;
        }
        // Beats are emitted once the next onset is known, so the beats of the
        // last seconds are still to come: time advances behind the samples.
        let settled_s = self.stream_now_s() - BEAT_LAG_S;
        self.challenges.advance_to(settled_s);
        self.readings.advance_to(settled_s);
        let inputs = self.alarm_inputs();
        self.alarms.update(now_s, &inputs);
    }

    /// The facts alarms are judged on now.
    pub fn alarm_inputs(&self) -> AlarmInputs {
        let since =
            |t: Option<f64>| self.now_s - t.unwrap_or(self.started_at_s).max(self.started_at_s);
        AlarmInputs {
            monitoring: self.monitoring(),
            since_data_s: since(self.last_data_at_s),
            since_accepted_beat_s: since(self.last_accepted_at_s),
            probe_unplugged: self.probe_unplugged,
            interference_s: self.readings.interference_s(),
            probe_life_expired: self
                .probe
                .as_ref()
                .is_some_and(|p| p.minutes_limit > 0 && p.minutes_used >= p.minutes_limit),
            flow_reversed: self.flow_reversed,
            transmitter_muted_s: self.muted_since_s.map_or(0.0, |t| self.now_s - t),
            iq_channel_fault: self.iq_channel_fault_db.is_some(),
            aliasing: self.aliasing_past_unwrap_cm_s.is_some(),
        }
    }

    /// Minutes of probe life left (None without a limit or a probe).
    pub fn probe_minutes_left(&self) -> Option<u32> {
        let p = self.probe.as_ref()?;
        (p.minutes_limit > 0).then(|| p.minutes_limit.saturating_sub(p.minutes_used))
    }

    fn apply_event(&mut self, ev: EventMsg) {
        match ev {
            EventMsg::ProbeInfo(info) => {
                self.spectrogram.set_sample_rate_hz(info.sample_rate_hz);
                self.probe = Some(info);
            }
            EventMsg::Probe(e) => match e.code {
                event_code::PROBE_UNPLUGGED => self.probe_unplugged = true,
                event_code::PROBE_PLUGGED => self.probe_unplugged = false,
                event_code::BUTTON => {
                    let t_s = self.t_s_from_sample(e.at_sample);
                    self.push_mark(Mark {
                        t_s,
                        bolus_ml: None,
                        text: "probe button".into(),
                    });
                }
                event_code::GAIN_CHANGED | event_code::INTERFACE_FAULT => {
                    self.unknown_events.push((e.code, e.value));
                }
                other => self.unknown_events.push((other, e.value)),
            },
            EventMsg::Annotation(a) => {
                let t_s = self.t_s_from_sample(a.at_sample);
                match a.kind() {
                    "bolus" => {
                        let ml = a.json.get("volume_ml").and_then(|v| v.as_f64());
                        self.challenges.bolus(t_s, ml);
                        self.push_mark(Mark {
                            t_s,
                            bolus_ml: Some(ml.unwrap_or(0.0)),
                            text: ml.map_or("bolus".to_string(), |v| format!("bolus {v:.0} ml")),
                        });
                    }
                    "marker" => {
                        let text = a
                            .json
                            .get("text")
                            .and_then(|v| v.as_str())
                            .unwrap_or("")
                            .to_string();
                        self.push_mark(Mark {
                            t_s,
                            bolus_ml: None,
                            text,
                        });
                    }
                    _ => {}
                }
            }
            EventMsg::Status(s) => self.last_status = Some(s),
            EventMsg::AreaModel(m) => self.area_model = m,
            EventMsg::Source(s) => {
                let restarted = matches!(s, SourceState::Live) && !self.monitoring();
                self.source = s;
                if restarted {
                    // Resuming after a pause or an end: the alarm clocks restart.
                    self.started_at_s = self.now_s;
                    self.last_data_at_s = None;
                    self.last_accepted_at_s = None;
                }
            }
            EventMsg::Reset => self.reset_stream(),
        }
    }

    /// Adds a bolus given from the UI at the newest sample.
    pub fn bolus_now(&mut self, volume_ml: f64) {
        let t_s = self.stream_now_s();
        self.challenges.bolus(t_s, Some(volume_ml));
        self.push_mark(Mark {
            t_s,
            bolus_ml: Some(volume_ml),
            text: format!("bolus {volume_ml:.0} ml"),
        });
    }

    /// Adds a marker from the UI at the newest sample.
    pub fn marker_now(&mut self, text: &str) {
        let t_s = self.stream_now_s();
        self.push_mark(Mark {
            t_s,
            bolus_ml: None,
            text: text.to_string(),
        });
    }

    fn push_mark(&mut self, m: Mark) {
        if self.marks.len() >= MARKS_KEPT {
            self.marks.remove(0);
        }
        self.marks.push(m);
    }

    fn t_s_from_sample(&self, sample: u64) -> f64 {
        match self.sample_rate_hz() {
            Some(hz) if hz > 0 => sample as f64 / f64::from(hz),
            _ => 0.0,
        }
    }
}
