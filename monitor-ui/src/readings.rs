//! The displayed numbers: the DSP's rolling averages, SVV and binned trends
//! over the beats received, plus the display's judgement of signal quality.
//!
//! No signal processing happens here: averaging, SVV and trend medians are
//! `odm_dsp::trend`'s (the same code `odm analyse` users get); this module
//! only feeds them the beats and decides how a poor signal is shown.

use std::collections::VecDeque;

use odm_dsp::trend::{
    BeatAverages, DEFAULT_AVERAGE_BEATS, RollingAverage, SvvConfig, SvvTracker, TrendConfig,
    TrendPoint, TrendRecorder,
};
use odm_dsp::{Beat, RejectReason};

/// Accepted beats averaged for the numerics (the window is shown on screen).
pub const AVERAGE_BEATS: usize = DEFAULT_AVERAGE_BEATS;
/// Beats (accepted or not) over which signal quality is judged.
pub const QUALITY_WINDOW_BEATS: usize = 10;
/// Below this mean per-beat quality the numbers are flagged as from a poor
/// signal (the DSP's quality is `snr/(snr+2)`-like: 0.6 ≈ 5 dB above noise).
pub const POOR_QUALITY: f64 = 0.6;
/// More than this fraction of rejected beats flags the numbers as poor.
pub const POOR_REJECTED_FRACTION: f64 = 0.5;
/// Beats kept for beat marks on the waterfall and the quality judgement
/// (10 s at 300/min, with room).
const RECENT_BEATS: usize = 64;

/// Signal quality of the recent beats.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SignalQuality {
    /// Mean quality (0..1) of the last beats, accepted or not.
    pub mean_quality: Option<f64>,
    /// Fraction of the last beats that were rejected.
    pub rejected_fraction: f64,
    /// The most common reject reason among them.
    pub main_reason: Option<RejectReason>,
}

impl SignalQuality {
    /// Whether numbers should be shown as from a poor signal.
    pub fn poor(&self) -> bool {
        self.mean_quality.is_none_or(|q| q < POOR_QUALITY)
            || self.rejected_fraction > POOR_REJECTED_FRACTION
    }
}

/// Recent beats, averages, SVV and trend history.
#[derive(Debug, Clone)]
pub struct Readings {
    recent: VecDeque<Beat>,
    average: RollingAverage,
    svv: SvvTracker,
    trend: TrendRecorder,
}

impl Default for Readings {
    fn default() -> Self {
        Self::new()
    }
}

impl Readings {
    /// Empty, with the DSP's default windows (10 beats, SVV over 30 s,
    /// 10 s trend bins for 60 min).
    pub fn new() -> Self {
        Self {
            recent: VecDeque::with_capacity(RECENT_BEATS),
            average: RollingAverage::new(AVERAGE_BEATS),
            svv: SvvTracker::new(SvvConfig::default()),
            trend: TrendRecorder::new(TrendConfig::default()),
        }
    }

    /// Takes one beat from the pipeline.
    pub fn push(&mut self, beat: &Beat) {
        self.average.push(beat);
        self.svv.push(beat);
        self.trend.push(beat);
        if self.recent.len() >= RECENT_BEATS {
            self.recent.pop_front();
        }
        self.recent.push_back(beat.clone());
    }

    /// Moves time forward without a beat (SVV forgets old beats, trend bins close).
    pub fn advance_to(&mut self, t_s: f64) {
        self.svv.expire(t_s);
        self.trend.advance_to(t_s);
    }

    /// Forgets everything (new source, seek).
    pub fn clear(&mut self) {
        *self = Self::new();
    }

    /// The most recent beats, oldest first.
    pub fn recent(&self) -> impl DoubleEndedIterator<Item = &Beat> {
        self.recent.iter()
    }

    /// Closed trend bins, oldest first, then the open one.
    pub fn trend_points(&mut self) -> Vec<TrendPoint> {
        let mut v: Vec<TrendPoint> = self.trend.points().copied().collect();
        v.extend(self.trend.open_point());
        v
    }

    /// Means over the last [`AVERAGE_BEATS`] accepted beats.
    pub fn averages(&self) -> Option<BeatAverages> {
        self.average.averages()
    }

    /// Stroke-volume variation, %, when the window holds enough beats.
    pub fn svv_pct(&self) -> Option<f64> {
        self.svv.svv_pct()
    }

    /// The breathing rate the SVV reading found, 1/min.
    pub fn svv_breathing_rate_per_min(&self) -> Option<f64> {
        self.svv.reading().and_then(|r| r.breathing_rate_per_min)
    }

    /// Whether the newest beat came from an irregular rhythm (atrial
    /// fibrillation-like): SVV is then not a measure of fluid
    /// responsiveness, and premature beats are averaged, not rejected.
    pub fn irregular_rhythm(&self) -> bool {
        self.recent.back().is_some_and(|b| b.irregular_rhythm)
    }

    /// Quality over the last [`QUALITY_WINDOW_BEATS`] beats.
    pub fn quality(&self) -> SignalQuality {
        let last: Vec<&Beat> = self
            .recent
            .iter()
            .rev()
            .take(QUALITY_WINDOW_BEATS)
            .collect();
        if last.is_empty() {
            return SignalQuality::default();
        }
        let reasons: Vec<RejectReason> = last.iter().filter_map(|b| b.reject_reason).collect();
        let rejected = last.iter().filter(|b| !b.accepted).count();
        let main_reason = reasons
            .iter()
            .copied()
            .max_by_key(|r| reasons.iter().filter(|x| *x == r).count());
        SignalQuality {
            mean_quality: Some(last.iter().map(|b| b.quality).sum::<f64>() / last.len() as f64),
            rejected_fraction: rejected as f64 / last.len() as f64,
            main_reason,
        }
    }

    /// Whether most of the accepted beats in the averaging window
    /// ([`AVERAGE_BEATS`]) have their FT flagged less certain for low flow
    /// (`Beat::ft_low_flow`): the FTc shown is then marked, not presented as
    /// precise.
    pub fn ft_low_flow(&self) -> bool {
        let (flagged, n) = self
            .recent
            .iter()
            .rev()
            .filter(|b| b.accepted)
            .take(AVERAGE_BEATS)
            .fold((0, 0), |(f, n), b| (f + usize::from(b.ft_low_flow), n + 1));
        n > 0 && 2 * flagged > n
    }

    /// Seconds of stream time that every beat has been rejected for
    /// interference, up to the newest beat; 0 when the newest beat is not.
    pub fn interference_s(&self) -> f64 {
        let Some(last) = self.recent.back() else {
            return 0.0;
        };
        let mut since = None;
        for b in self.recent.iter().rev() {
            if b.reject_reason == Some(RejectReason::Interference) {
                since = Some(b.onset_s);
            } else {
                break;
            }
        }
        since.map_or(0.0, |s| last.next_onset_s - s)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A beat with the given onset, SD and acceptance; other fields consistent.
    pub(crate) fn beat(index: u64, onset_s: f64, sd_cm: f64, accepted: bool) -> Beat {
        let cycle_s = 0.8;
        let ft_ms = 320.0;
        Beat {
            index,
            onset_s,
            peak_s: onset_s + 0.08,
            end_s: onset_s + ft_ms / 1000.0,
            next_onset_s: onset_s + cycle_s,
            ft_ms,
            cycle_s,
            hr_bpm: 60.0 / cycle_s,
            ftc_ms: ft_ms / cycle_s.sqrt(),
            sd_cm,
            pv_cm_s: 90.0,
            ma_cm_s2: Some(90.0 / 0.08),
            md_cm_min: sd_cm * 75.0,
            sv_ml: Some(sd_cm * 4.0),
            sv_range_ml: Some((sd_cm * 3.5, sd_cm * 4.5)),
            co_l_min: Some(sd_cm * 4.0 * 75.0 / 1000.0),
            quality: if accepted { 0.95 } else { 0.2 },
            accepted,
            reject_reason: (!accepted).then_some(RejectReason::Interference),
            irregular_rhythm: false,
            ft_low_flow: false,
            completed_by_sample: ((onset_s + 0.9) * 20_000.0) as u64,
        }
    }

    #[test]
    fn averages_leave_rejected_beats_out() {
        let mut r = Readings::new();
        for i in 0..20u32 {
            let accepted = i % 4 != 3;
            let sd = if accepted { f64::from(i + 1) } else { 100.0 };
            r.push(&beat(u64::from(i), f64::from(i) * 0.8, sd, accepted));
        }
        let a = r.averages().unwrap_or_else(|| unreachable!());
        assert_eq!(a.beats, 10);
        // Beats 3, 7, 11, 15, 19 are rejected; the last ten accepted have
        // SD (= index + 1) 19, 18, 17, 15, 14, 13, 11, 10, 9, 7.
        let expect = f64::from(19 + 18 + 17 + 15 + 14 + 13 + 11 + 10 + 9 + 7) / 10.0;
        assert!((a.sd_cm - expect).abs() < 1e-9);
    }

    #[test]
    fn mostly_rejected_beats_make_the_signal_poor() {
        let mut r = Readings::new();
        for i in 0..10 {
            r.push(&beat(i, i as f64 * 0.8, 15.0, i < 4));
        }
        let q = r.quality();
        assert!(q.poor());
        assert_eq!(q.main_reason, Some(RejectReason::Interference));
        assert!((q.rejected_fraction - 0.6).abs() < 1e-9);
    }

    #[test]
    fn clean_beats_are_not_poor() {
        let mut r = Readings::new();
        for i in 0..10 {
            r.push(&beat(i, i as f64 * 0.8, 15.0, true));
        }
        assert!(!r.quality().poor());
    }

    #[test]
    fn flow_time_is_marked_low_flow_while_most_averaged_beats_are() {
        let mut r = Readings::new();
        let low = |i: u64, flagged: bool, accepted: bool| Beat {
            ft_low_flow: flagged,
            ..beat(i, i as f64 * 0.8, 5.0, accepted)
        };
        assert!(!r.ft_low_flow());
        for i in 0..10 {
            r.push(&low(i, i >= 4, true));
        }
        // 6 of the 10 averaged beats.
        assert!(r.ft_low_flow());
        // Rejected beats do not count: the window is the accepted beats.
        for i in 10..14 {
            r.push(&low(i, true, false));
        }
        assert!(r.ft_low_flow());
        // 5 clean ones leave 5 flagged of the last 10: not most.
        for i in 14..18 {
            r.push(&low(i, false, true));
        }
        assert!(r.ft_low_flow());
        r.push(&low(18, false, true));
        assert!(!r.ft_low_flow());
    }

    #[test]
    fn interference_time_counts_from_first_rejected_beat() {
        let mut r = Readings::new();
        r.push(&beat(0, 0.0, 15.0, true));
        for i in 1..=5 {
            r.push(&beat(i, i as f64 * 0.8, 15.0, false));
        }
        // From onset of beat 1 (0.8 s) to next onset of beat 5 (4.8 s).
        assert!((r.interference_s() - 4.0).abs() < 1e-9);
        r.push(&beat(6, 4.8, 15.0, true));
        assert_eq!(r.interference_s(), 0.0);
    }
}
