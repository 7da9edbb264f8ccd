//! The displayed numbers: averages over the last accepted beats, their
//! signal quality, and the trend history.
//!
//! No signal processing happens here: every per-beat number comes from the
//! DSP's [`Beat`]s; this module only averages accepted beats for display, the
//! way `odm analyse` consumers would.

use std::collections::VecDeque;

use odm_dsp::{Beat, RejectReason};

/// Accepted beats averaged for the numerics (the window is shown on screen).
pub const AVERAGE_BEATS: usize = 10;
/// Beats (accepted or not) over which signal quality is judged.
pub const QUALITY_WINDOW_BEATS: usize = 10;
/// Below this mean per-beat quality the numbers are flagged as from a poor signal.
pub const POOR_QUALITY: f64 = 0.6;
/// More than this fraction of rejected beats flags the numbers as poor.
pub const POOR_REJECTED_FRACTION: f64 = 0.5;
/// Window of the stroke-volume variation, seconds of stream time.
///
/// SVV = (SVmax − SVmin) / SVmean over a sliding 30 s window, as in the
/// PiCCO definition (Reuter et al., Intensive Care Med 2002), because the
/// ODM has no respiratory signal to cut breaths with.
pub const SVV_WINDOW_S: f64 = 30.0;
/// Trend history kept, seconds (the longest selectable range, 60 min).
pub const TREND_HISTORY_S: f64 = 3600.0;

/// Mean of the last accepted beats, for the numerics panel.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Averages {
    /// How many accepted beats went into the means.
    pub beats: usize,
    /// Stroke volume, ml (None without an area model).
    pub sv_ml: Option<f64>,
    /// Low end of the SV range from the area model's spread.
    pub sv_low_ml: Option<f64>,
    /// High end of the SV range.
    pub sv_high_ml: Option<f64>,
    /// Cardiac output, l/min.
    pub co_l_min: Option<f64>,
    /// Corrected flow time, ms.
    pub ftc_ms: Option<f64>,
    /// Peak velocity, cm/s.
    pub pv_cm_s: Option<f64>,
    /// Stroke distance, cm.
    pub sd_cm: Option<f64>,
    /// Mean acceleration, cm/s².
    pub ma_cm_s2: Option<f64>,
    /// Heart rate, 1/min.
    pub hr_bpm: Option<f64>,
    /// Stroke-volume variation, % (from SD when there is no SV: the ratio is
    /// the same for a fixed area).
    pub svv_pct: Option<f64>,
}

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

/// One accepted beat's trend values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrendPoint {
    /// Stream time of the beat's onset, s.
    pub t_s: f64,
    /// Stroke volume, ml.
    pub sv_ml: Option<f64>,
    /// Stroke distance, cm.
    pub sd_cm: f64,
    /// Cardiac output, l/min.
    pub co_l_min: Option<f64>,
    /// Corrected flow time, ms.
    pub ftc_ms: f64,
}

/// Recent beats and the trend history.
#[derive(Debug, Clone, Default)]
pub struct Readings {
    recent: VecDeque<Beat>,
    trend: VecDeque<TrendPoint>,
}

fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    (n > 0).then(|| sum / n as f64)
}

impl Readings {
    /// Takes one beat from the pipeline.
    pub fn push(&mut self, beat: &Beat) {
        if beat.accepted {
            self.trend.push_back(TrendPoint {
                t_s: beat.onset_s,
                sv_ml: beat.sv_ml,
                sd_cm: beat.sd_cm,
                co_l_min: beat.co_l_min,
                ftc_ms: beat.ftc_ms,
            });
            while self
                .trend
                .front()
                .is_some_and(|p| beat.onset_s - p.t_s > TREND_HISTORY_S)
            {
                self.trend.pop_front();
            }
        }
        self.recent.push_back(beat.clone());
        // Enough beats for the SVV window at 200/min.
        while self.recent.len() > 128 {
            self.recent.pop_front();
        }
    }
    /// Forgets everything (new source, seek).
    pub fn clear(&mut self) {
        self.recent.clear();
        self.trend.clear();
    }
    /// The most recent beats, oldest first.
    pub fn recent(&self) -> impl DoubleEndedIterator<Item = &Beat> {
        self.recent.iter()
    }
    /// The trend history, oldest first.
    pub fn trend(&self) -> &VecDeque<TrendPoint> {
        &self.trend
    }
    /// The last accepted beat.
    pub fn last_accepted(&self) -> Option<&Beat> {
        self.recent.iter().rev().find(|b| b.accepted)
    }

    /// Means over the last [`AVERAGE_BEATS`] accepted beats.
    pub fn averages(&self) -> Averages {
        let used: Vec<&Beat> = self
            .recent
            .iter()
            .rev()
            .filter(|b| b.accepted)
            .take(AVERAGE_BEATS)
            .collect();
        let all_sv = used.iter().all(|b| b.sv_ml.is_some());
        let opt_mean = |f: &dyn Fn(&Beat) -> Option<f64>| -> Option<f64> {
            if used.iter().all(|b| f(b).is_some()) {
                mean(used.iter().filter_map(|b| f(b)))
            } else {
                None
            }
        };
        Averages {
            beats: used.len(),
            sv_ml: if all_sv { opt_mean(&|b| b.sv_ml) } else { None },
            sv_low_ml: opt_mean(&|b| b.sv_range_ml.map(|r| r.0)),
            sv_high_ml: opt_mean(&|b| b.sv_range_ml.map(|r| r.1)),
            co_l_min: opt_mean(&|b| b.co_l_min),
            ftc_ms: mean(used.iter().map(|b| b.ftc_ms)),
            pv_cm_s: mean(used.iter().map(|b| b.pv_cm_s)),
            sd_cm: mean(used.iter().map(|b| b.sd_cm)),
            ma_cm_s2: opt_mean(&|b| b.ma_cm_s2),
            hr_bpm: mean(used.iter().map(|b| b.hr_bpm)),
            svv_pct: self.svv_pct(),
        }
    }

    /// (max − min) / mean of SV (or SD) over the accepted beats of the last
    /// [`SVV_WINDOW_S`]; `None` with fewer than 5 beats or a window not yet full.
    fn svv_pct(&self) -> Option<f64> {
        let last = self.recent.back()?;
        let start = last.onset_s - SVV_WINDOW_S;
        let first = self.recent.front()?;
        if first.onset_s > start {
            return None;
        }
        let values: Vec<f64> = self
            .recent
            .iter()
            .filter(|b| b.accepted && b.onset_s >= start)
            .map(|b| b.sv_ml.unwrap_or(b.sd_cm))
            .collect();
        if values.len() < 5 {
            return None;
        }
        let max = values.iter().copied().fold(f64::MIN, f64::max);
        let min = values.iter().copied().fold(f64::MAX, f64::min);
        let m = mean(values.iter().copied())?;
        (m > 0.0).then(|| 100.0 * (max - min) / m)
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
        let rejected: Vec<RejectReason> = last.iter().filter_map(|b| b.reject_reason).collect();
        let rejected_count = last.iter().filter(|b| !b.accepted).count();
        let main_reason = rejected
            .iter()
            .copied()
            .max_by_key(|r| rejected.iter().filter(|x| *x == r).count());
        SignalQuality {
            mean_quality: mean(last.iter().map(|b| b.quality)),
            rejected_fraction: rejected_count as f64 / last.len() as f64,
            main_reason,
        }
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

    /// Mean SD and SV of accepted beats whose onset lies in `[from_s, to_s)`.
    pub fn window_means(&self, from_s: f64, to_s: f64) -> WindowMeans {
        let beats: Vec<&TrendPoint> = self
            .trend
            .iter()
            .filter(|p| p.t_s >= from_s && p.t_s < to_s)
            .collect();
        WindowMeans {
            beats: beats.len(),
            sd_cm: mean(beats.iter().map(|p| p.sd_cm)),
            sv_ml: if beats.iter().all(|p| p.sv_ml.is_some()) {
                mean(beats.iter().filter_map(|p| p.sv_ml))
            } else {
                None
            },
        }
    }
}

/// Means over a time window of accepted beats.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct WindowMeans {
    /// Accepted beats in the window.
    pub beats: usize,
    /// Mean stroke distance, cm.
    pub sd_cm: Option<f64>,
    /// Mean stroke volume, ml (None if any beat lacks one).
    pub sv_ml: Option<f64>,
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
            completed_by_sample: ((onset_s + 0.9) * 20_000.0) as u64,
        }
    }

    #[test]
    fn averages_use_only_the_last_ten_accepted_beats() {
        let mut r = Readings::default();
        for i in 0..20u32 {
            // Accepted SDs 1..=20 except rejected every 4th (with SD 100).
            let accepted = i % 4 != 3;
            let sd = if accepted { f64::from(i + 1) } else { 100.0 };
            r.push(&beat(u64::from(i), f64::from(i) * 0.8, sd, accepted));
        }
        let a = r.averages();
        assert_eq!(a.beats, 10);
        // Beats 3, 7, 11, 15, 19 are rejected; the last ten accepted have
        // SD (= index + 1) 19, 18, 17, 15, 14, 13, 11, 10, 9, 7.
        let expect = f64::from(19 + 18 + 17 + 15 + 14 + 13 + 11 + 10 + 9 + 7) / 10.0;
        assert!((a.sd_cm.unwrap_or(0.0) - expect).abs() < 1e-9);
        assert!((a.sv_ml.unwrap_or(0.0) - expect * 4.0).abs() < 1e-9);
        assert!((a.hr_bpm.unwrap_or(0.0) - 75.0).abs() < 1e-9);
    }

    #[test]
    fn mostly_rejected_beats_make_the_signal_poor() {
        let mut r = Readings::default();
        for i in 0..10 {
            r.push(&beat(i, i as f64 * 0.8, 15.0, i < 4));
        }
        let q = r.quality();
        assert!(q.poor());
        assert_eq!(q.main_reason, Some(RejectReason::Interference));
        assert!((q.rejected_fraction - 0.6).abs() < 1e-9);
    }

    #[test]
    fn svv_is_range_over_mean_in_thirty_seconds() {
        let mut r = Readings::default();
        // 50 beats, 0.8 s apart, SD alternating 14 and 16: SVV = 2/15 = 13.3 %.
        for i in 0..50 {
            let sd = if i % 2 == 0 { 14.0 } else { 16.0 };
            r.push(&beat(i, i as f64 * 0.8, sd, true));
        }
        let svv = r.averages().svv_pct.unwrap_or(0.0);
        assert!((svv - 100.0 * 2.0 / 15.0).abs() < 0.2, "{svv}");
    }

    #[test]
    fn interference_time_counts_from_first_rejected_beat() {
        let mut r = Readings::default();
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
