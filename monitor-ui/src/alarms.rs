//! Alarm conditions, priorities and the acknowledge / audio-pause logic.
//!
//! IEC 60601-1-8 defines how priorities look and sound, not which conditions
//! alarm; this project's choice (docs/monitor.md, "Alarms"):
//!
//! | condition | priority | why |
//! |---|---|---|
//! | no data from the probe interface for > 5 s | medium | monitoring has stopped; needs prompt attention, but an ODM is not a life-support or arrest monitor (ECG, SpO₂ and arterial pressure carry those alarms) |
//! | probe unplugged (EVENT 3) | medium | as above, with a known cause |
//! | transmitter muted (IQ flags bit 1) for > 3 s | medium | as above, with a known cause: the interface sends samples without an echo, which are not analysed; a brief mute does not alarm |
//! | signal lost: no accepted beat for > 10 s | medium | usually a displaced probe; the operator must refocus |
//! | I/Q channel fault: one quadrature channel dead or broken (docs/dsp.md, stage 1a) | medium | the flow is mirrored into the noise reference, so beats are rejected as interference; the probe interface or cable needs a service |
//! | flow reversed: the pulsatile flow is in the reverse half of the spectrum (docs/dsp.md, stage 3b) | medium | no beat can be measured; the beam is on flow towards the probe, or the interface swaps I and Q — refocus, and if it persists call the biomedical engineers |
//! | aliasing past the unwrapping: the systole's flow wraps round the top of the band further than the DSP can follow (1.75 × the sample rate's limit; docs/dsp.md, stage 3c) | medium | every such beat is rejected (its PV and SD would be cut); the interface must run at a higher sample rate. Aliasing the DSP follows is shown under the probe, not alarmed: the numbers are measured |
//! | interference (diathermy) rejecting beats for > 30 s | low | numbers are frozen on old beats; awareness only |
//! | probe life expired | low | the probe still works; replace it at the next opportunity |
//!
//! No condition is high priority, for the reason in the first row. Alarms
//! never hide the numerics. *Acknowledge* stops an active alarm flashing (it
//! stays listed while its condition lasts); *audio pause* silences alarm
//! sound for two minutes (IEC 60601-1-8 "AUDIO PAUSED").

/// IEC 60601-1-8 alarm priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    /// Low: cyan, steady.
    Low,
    /// Medium: yellow, flashing 0.4–0.8 Hz.
    Medium,
    /// High: red, flashing 1.4–2.8 Hz.
    High,
}

impl Priority {
    /// Flash frequency in Hz; `None` for steady (IEC 60601-1-8 Table 2).
    pub fn flash_hz(self) -> Option<f64> {
        match self {
            // Mid-points of the standard's ranges.
            Self::High => Some(2.0),
            Self::Medium => Some(0.6),
            Self::Low => None,
        }
    }
    /// The word shown beside the message.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::High => "HIGH",
            Self::Medium => "MEDIUM",
            Self::Low => "LOW",
        }
    }
}

/// The alarm conditions this monitor knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlarmKind {
    /// No samples from the source.
    NoData,
    /// The probe was unplugged from the interface.
    ProbeUnplugged,
    /// The probe interface's transmitter has been muted for longer than
    /// the limit.
    TransmitterMuted,
    /// No accepted beat for longer than the limit.
    SignalLost,
    /// The pulsatile flow is in the reverse half of the spectrum.
    FlowReversed,
    /// One quadrature channel of the probe interface is dead or broken.
    IqChannelFault,
    /// The systole's flow wraps round the top of the band further than
    /// the DSP can follow: the peak velocity is far above what the
    /// stream's sample rate carries, and the beats are rejected.
    Aliasing,
    /// Beats rejected for interference for longer than the limit.
    Interference,
    /// The probe's run time has reached its limit.
    ProbeLifeExpired,
}

impl AlarmKind {
    /// Every kind, in display order.
    pub const ALL: [AlarmKind; 9] = [
        AlarmKind::NoData,
        AlarmKind::ProbeUnplugged,
        AlarmKind::TransmitterMuted,
        AlarmKind::SignalLost,
        AlarmKind::FlowReversed,
        AlarmKind::IqChannelFault,
        AlarmKind::Aliasing,
        AlarmKind::Interference,
        AlarmKind::ProbeLifeExpired,
    ];
    /// This project's priority for the condition (table above).
    pub fn priority(self) -> Priority {
        match self {
            Self::NoData
            | Self::ProbeUnplugged
            | Self::TransmitterMuted
            | Self::SignalLost
            | Self::FlowReversed
            | Self::IqChannelFault
            | Self::Aliasing => Priority::Medium,
            Self::Interference | Self::ProbeLifeExpired => Priority::Low,
        }
    }
    /// The message shown (also the widget's accessible label).
    pub fn message(self) -> &'static str {
        match self {
            Self::NoData => "NO DATA FROM PROBE INTERFACE",
            Self::ProbeUnplugged => "PROBE UNPLUGGED",
            Self::TransmitterMuted => "TRANSMITTER MUTED - CHECK PROBE INTERFACE",
            Self::SignalLost => "SIGNAL LOST - REFOCUS PROBE",
            Self::FlowReversed => "FLOW REVERSED - REFOCUS PROBE / CHECK I-Q WIRING",
            Self::IqChannelFault => "I/Q CHANNEL FAULT - CHECK PROBE INTERFACE",
            Self::Aliasing => "VELOCITY ABOVE RANGE - ALIASING, RAISE SAMPLE RATE",
            Self::Interference => "INTERFERENCE (DIATHERMY?)",
            Self::ProbeLifeExpired => "PROBE LIFE EXPIRED",
        }
    }
}

/// Seconds without samples before [`AlarmKind::NoData`].
pub const NO_DATA_LIMIT_S: f64 = 5.0;
/// Seconds of a muted transmitter before [`AlarmKind::TransmitterMuted`].
pub const TRANSMITTER_MUTED_LIMIT_S: f64 = 3.0;
/// Seconds without an accepted beat before [`AlarmKind::SignalLost`] (brief: > 10 s).
pub const SIGNAL_LOST_LIMIT_S: f64 = 10.0;
/// Seconds of continuous interference before [`AlarmKind::Interference`] (brief: > 30 s).
pub const INTERFERENCE_LIMIT_S: f64 = 30.0;
/// Length of an audio pause (IEC 60601-1-8 allows the manufacturer to set it; 2 min is usual).
pub const AUDIO_PAUSE_S: f64 = 120.0;

/// The facts the alarm conditions are judged on, at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct AlarmInputs {
    /// Monitoring is running (not paused by the user, source not ended).
    pub monitoring: bool,
    /// Seconds since samples last arrived (UI clock).
    pub since_data_s: f64,
    /// Seconds since the last accepted beat arrived, or since monitoring
    /// started when there has been none (UI clock).
    pub since_accepted_beat_s: f64,
    /// The probe is unplugged (an EVENT 3 not yet followed by EVENT 4).
    pub probe_unplugged: bool,
    /// Seconds the transmitter has been muted (0 when it is not; UI clock).
    pub transmitter_muted_s: f64,
    /// Seconds of stream time that interference has been rejecting every beat.
    pub interference_s: f64,
    /// The probe's minutes used have reached a non-zero limit.
    pub probe_life_expired: bool,
    /// The DSP finds the pulsatile flow in the reverse half of the spectrum.
    pub flow_reversed: bool,
    /// One quadrature channel of the probe interface is dead or broken.
    pub iq_channel_fault: bool,
    /// The systole's flow wraps round the top of the band further than the
    /// DSP can follow (aliasing; those beats are rejected).
    pub aliasing: bool,
}

impl AlarmInputs {
    /// Whether `kind`'s condition holds.
    pub fn condition(&self, kind: AlarmKind) -> bool {
        match kind {
            AlarmKind::NoData => self.monitoring && self.since_data_s > NO_DATA_LIMIT_S,
            AlarmKind::ProbeUnplugged => self.probe_unplugged,
            AlarmKind::TransmitterMuted => {
                self.monitoring && self.transmitter_muted_s > TRANSMITTER_MUTED_LIMIT_S
            }
            AlarmKind::SignalLost => {
                self.monitoring && self.since_accepted_beat_s > SIGNAL_LOST_LIMIT_S
            }
            AlarmKind::Interference => {
                self.monitoring && self.interference_s > INTERFERENCE_LIMIT_S
            }
            AlarmKind::ProbeLifeExpired => self.probe_life_expired,
            AlarmKind::FlowReversed => self.monitoring && self.flow_reversed,
            AlarmKind::IqChannelFault => self.monitoring && self.iq_channel_fault,
            AlarmKind::Aliasing => self.monitoring && self.aliasing,
        }
    }
}

/// One active alarm.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ActiveAlarm {
    /// Which condition.
    pub kind: AlarmKind,
    /// UI time it became active, seconds.
    pub since_s: f64,
    /// Whether the user has acknowledged it (it then stops flashing).
    pub acknowledged: bool,
}

/// The set of active alarms and the audio-pause state.
#[derive(Debug, Clone, Default)]
pub struct Alarms {
    active: Vec<ActiveAlarm>,
    audio_paused_until_s: Option<f64>,
}

impl Alarms {
    /// Re-judges every condition at UI time `now_s`: alarms start when their
    /// condition starts and end when it ends (non-latching, so a resumed
    /// signal clears its alarm without a key press).
    pub fn update(&mut self, now_s: f64, inputs: &AlarmInputs) {
        self.active.retain(|a| inputs.condition(a.kind));
        for kind in AlarmKind::ALL {
            if inputs.condition(kind) && !self.active.iter().any(|a| a.kind == kind) {
                self.active.push(ActiveAlarm {
                    kind,
                    since_s: now_s,
                    acknowledged: false,
                });
            }
        }
        // Highest priority first, then oldest first.
        self.active.sort_by(|a, b| {
            b.kind
                .priority()
                .cmp(&a.kind.priority())
                .then(a.since_s.total_cmp(&b.since_s))
        });
        if self.audio_paused_until_s.is_some_and(|t| now_s >= t) {
            self.audio_paused_until_s = None;
        }
    }
    /// The active alarms, highest priority first.
    pub fn active(&self) -> &[ActiveAlarm] {
        &self.active
    }
    /// Whether `kind` is active.
    pub fn is_active(&self, kind: AlarmKind) -> bool {
        self.active.iter().any(|a| a.kind == kind)
    }
    /// Acknowledges every active alarm.
    pub fn acknowledge_all(&mut self) {
        for a in &mut self.active {
            a.acknowledged = true;
        }
    }
    /// Pauses alarm audio for [`AUDIO_PAUSE_S`] from `now_s`.
    pub fn pause_audio(&mut self, now_s: f64) {
        self.audio_paused_until_s = Some(now_s + AUDIO_PAUSE_S);
    }
    /// Seconds of audio pause left at `now_s`, if paused.
    pub fn audio_pause_left_s(&self, now_s: f64) -> Option<f64> {
        self.audio_paused_until_s
            .map(|t| (t - now_s).max(0.0))
            .filter(|&left| left > 0.0)
    }
    /// The highest priority among active alarms.
    pub fn highest(&self) -> Option<Priority> {
        self.active.iter().map(|a| a.kind.priority()).max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live() -> AlarmInputs {
        AlarmInputs {
            monitoring: true,
            ..AlarmInputs::default()
        }
    }

    #[test]
    fn signal_lost_starts_after_ten_seconds_and_clears_when_beats_return() {
        let mut alarms = Alarms::default();
        let mut inputs = live();
        inputs.since_accepted_beat_s = 10.0;
        alarms.update(10.0, &inputs);
        assert!(
            !alarms.is_active(AlarmKind::SignalLost),
            "10 s is not > 10 s"
        );
        inputs.since_accepted_beat_s = 10.1;
        alarms.update(10.1, &inputs);
        assert!(alarms.is_active(AlarmKind::SignalLost));
        inputs.since_accepted_beat_s = 0.2;
        alarms.update(12.0, &inputs);
        assert!(alarms.active().is_empty());
    }

    #[test]
    fn no_alarm_while_the_user_has_paused_monitoring() {
        let mut alarms = Alarms::default();
        let inputs = AlarmInputs {
            monitoring: false,
            since_data_s: 100.0,
            since_accepted_beat_s: 100.0,
            interference_s: 100.0,
            ..AlarmInputs::default()
        };
        alarms.update(100.0, &inputs);
        assert!(alarms.active().is_empty());
    }

    #[test]
    fn medium_alarms_sort_before_low_and_acknowledge_keeps_them_listed() {
        let mut alarms = Alarms::default();
        let mut inputs = live();
        inputs.probe_life_expired = true;
        alarms.update(1.0, &inputs);
        inputs.probe_unplugged = true;
        alarms.update(2.0, &inputs);
        let kinds: Vec<_> = alarms.active().iter().map(|a| a.kind).collect();
        assert_eq!(
            kinds,
            [AlarmKind::ProbeUnplugged, AlarmKind::ProbeLifeExpired]
        );
        assert_eq!(alarms.highest(), Some(Priority::Medium));
        alarms.acknowledge_all();
        alarms.update(3.0, &inputs);
        assert_eq!(alarms.active().len(), 2);
        assert!(alarms.active().iter().all(|a| a.acknowledged));
    }

    #[test]
    fn audio_pause_lasts_two_minutes() {
        let mut alarms = Alarms::default();
        alarms.pause_audio(10.0);
        assert_eq!(alarms.audio_pause_left_s(70.0), Some(60.0));
        alarms.update(130.0, &live());
        assert_eq!(alarms.audio_pause_left_s(130.0), None);
    }

    #[test]
    fn interference_alarms_only_after_thirty_seconds() {
        let mut inputs = live();
        inputs.interference_s = 30.0;
        assert!(!inputs.condition(AlarmKind::Interference));
        inputs.interference_s = 30.5;
        assert!(inputs.condition(AlarmKind::Interference));
    }

    #[test]
    fn flash_rates_are_inside_iec_60601_1_8_ranges() {
        let high = Priority::High.flash_hz().unwrap_or(0.0);
        let medium = Priority::Medium.flash_hz().unwrap_or(0.0);
        assert!((1.4..=2.8).contains(&high));
        assert!((0.4..=0.8).contains(&medium));
        assert_eq!(Priority::Low.flash_hz(), None);
    }
}
