//! Fluid challenge (primer, "Fluid management": Singer's 10 % rule): stroke
//! distance averaged before a bolus, the best rolling mean after it, the
//! percentage change, and whether the patient responded.
//!
//! Windows (all configurable, always stated in the result):
//! - before: accepted beats with onset in `[bolus − before_s, bolus)`,
//!   default 60 s;
//! - after: the highest mean SD over every `rolling_s` window (default 30 s)
//!   that starts at an accepted beat's onset at or after the bolus and ends
//!   within `after_span_s` (default 300 s) of it, among windows with at least
//!   `min_beats` accepted beats;
//! - when no rolling window has `min_beats`, the after window is every
//!   accepted beat from the bolus to the end of the span, or to the end of
//!   the time observed when the challenge finishes early: the window stated
//!   is always the one averaged;
//! - `delta_pct = 100·(sd_after − sd_before)/sd_before` whenever both means
//!   exist; responsive when `≥ responsive_pct` (default 10 %), `None` when
//!   either window has fewer than `min_beats` (default 10) accepted beats
//!   (analysis-output.md: only the verdict needs the beats).
//!
//! SD is compared, not SV: for a fixed aortic area the change is the same,
//! and it does not depend on the area model (analysis-output.md).
//!
//! A challenge is finished once time has passed `bolus + after_span_s`, or
//! at the end of the stream with what is available (then
//! [`FluidChallengeResult::complete`] is false). Memory is fixed at
//! construction.

use crate::trend::Ring;
use crate::types::Beat;

/// The largest bolus volume taken as stated, ml. A fluid challenge is
/// 200–250 ml or 3 ml/kg (primer, "Fluid management"); ten times the most a
/// challenge could be is a typing or unit error, and the challenge is
/// reported with the volume not stated rather than with it.
pub const MAX_BOLUS_ML: f64 = 5000.0;

/// Fluid-challenge windows and thresholds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FluidConfig {
    /// Baseline window before the bolus, s.
    pub before_s: f64,
    /// How long after the bolus the response is looked for, s (a
    /// 200–250 ml bolus runs over a few minutes, primer).
    pub after_span_s: f64,
    /// Length of the rolling window whose best mean is the response, s.
    pub rolling_s: f64,
    /// Fewest accepted beats in a window to judge it.
    pub min_beats: usize,
    /// Responsive at or above this rise, % (Singer's 10 % rule).
    pub responsive_pct: f64,
    /// Highest heart rate the beat store is sized for, 1/min.
    pub max_hr_bpm: f64,
    /// Most boluses awaiting their after-window at once; one more finishes
    /// the oldest early, with what is available.
    pub max_pending: usize,
}

impl Default for FluidConfig {
    fn default() -> Self {
        Self {
            before_s: 60.0,
            after_span_s: 300.0,
            rolling_s: 30.0,
            min_beats: 10,
            responsive_pct: 10.0,
            max_hr_bpm: 300.0,
            max_pending: 32,
        }
    }
}

/// The outcome of one bolus (`fluid_challenge` of analysis-output.md).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FluidChallengeResult {
    /// Time of the bolus, s.
    pub bolus_t_s: f64,
    /// Volume from the annotation, ml (`None` when not stated).
    pub volume_ml: Option<f64>,
    /// `[start, end]` of the baseline window, s.
    pub before_window_s: [f64; 2],
    /// `[start, end]` of the window averaged after the bolus, s: the best
    /// rolling window, or, when none had enough beats, from the bolus to the
    /// end of the search span or of the time observed, whichever is first.
    pub after_window_s: [f64; 2],
    /// Accepted beats in the baseline window.
    pub beats_before: usize,
    /// Accepted beats in the after window.
    pub beats_after: usize,
    /// Mean SD before, cm.
    pub sd_before_cm: Option<f64>,
    /// Mean SD after, cm.
    pub sd_after_cm: Option<f64>,
    /// Mean SV before, ml (beats with SV only).
    pub sv_before_ml: Option<f64>,
    /// Mean SV after, ml (beats with SV only).
    pub sv_after_ml: Option<f64>,
    /// `100·(sd_after − sd_before)/sd_before`; `None` when a window has no
    /// accepted beat (with too few to judge it is given, `responsive` is not).
    pub delta_pct: Option<f64>,
    /// `delta_pct ≥ responsive_pct`; `None` when it cannot be judged.
    pub responsive: Option<bool>,
    /// Whether the whole after span was observed (false when the stream ended
    /// or too many boluses were pending).
    pub complete: bool,
    /// The beats of the two windows do not all have SV from one area model
    /// (SV per cm of SD differs, or some have SV and some not): the patient
    /// was entered or changed in between, so `sv_before_ml` and
    /// `sv_after_ml` are means under different models and their ratio is
    /// not the change. `delta_pct` (from SD) is unaffected.
    pub sv_model_changed: bool,
}

/// The challenge in progress, for the live display.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FluidLive {
    /// Time of the bolus, s.
    pub bolus_t_s: f64,
    /// Volume, ml (`None` when not stated).
    pub volume_ml: Option<f64>,
    /// Time since the bolus, s.
    pub elapsed_s: f64,
    /// Accepted beats in the baseline window.
    pub beats_before: usize,
    /// Baseline mean SD, cm.
    pub sd_before_cm: Option<f64>,
    /// Baseline mean SV, ml.
    pub sv_before_ml: Option<f64>,
    /// Accepted beats after the bolus in the last `rolling_s`.
    pub beats_now: usize,
    /// Mean SD over the last `rolling_s` (after the bolus), cm.
    pub sd_now_cm: Option<f64>,
    /// Mean SV over the last `rolling_s` (after the bolus), ml.
    pub sv_now_ml: Option<f64>,
    /// Change of the current mean from baseline, %.
    pub delta_now_pct: Option<f64>,
    /// The best change so far (the value the result will report if nothing
    /// better comes), %.
    pub delta_best_pct: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Stored {
    t_s: f64,
    sd_cm: f64,
    sv_ml: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Bolus {
    t_s: f64,
    volume_ml: Option<f64>,
}

#[derive(Debug, Clone, Default)]
struct WindowStats {
    n: usize,
    sd_sum: f64,
    sv_sum: f64,
    sv_n: usize,
}

impl WindowStats {
    fn add(&mut self, b: &Stored) {
        self.n += 1;
        self.sd_sum += b.sd_cm;
        if let Some(sv) = b.sv_ml {
            self.sv_sum += sv;
            self.sv_n += 1;
        }
    }
    fn remove(&mut self, b: &Stored) {
        self.n -= 1;
        self.sd_sum -= b.sd_cm;
        if let Some(sv) = b.sv_ml {
            self.sv_sum -= sv;
            self.sv_n -= 1;
        }
    }
    fn sd(&self) -> Option<f64> {
        (self.n > 0).then(|| self.sd_sum / self.n as f64)
    }
    fn sv(&self) -> Option<f64> {
        (self.sv_n > 0).then(|| self.sv_sum / self.sv_n as f64)
    }
}

/// Tracks boluses and beats, and reports each challenge once its after-window
/// has passed.
#[derive(Debug, Clone)]
pub struct FluidTracker {
    cfg: FluidConfig,
    beats: Ring<Stored>,
    pending: Vec<Bolus>,
    finished: Ring<FluidChallengeResult>,
    now_s: f64,
}

impl FluidTracker {
    /// A tracker sized for `cfg` (non-finite or non-positive windows fall
    /// back to the defaults).
    pub fn new(cfg: FluidConfig) -> Self {
        let d = FluidConfig::default();
        let pos = |x: f64, dflt: f64| if x.is_finite() && x > 0.0 { x } else { dflt };
        let cfg = FluidConfig {
            before_s: pos(cfg.before_s, d.before_s),
            after_span_s: pos(cfg.after_span_s, d.after_span_s),
            rolling_s: pos(cfg.rolling_s, d.rolling_s),
            min_beats: cfg.min_beats.max(1),
            responsive_pct: if cfg.responsive_pct.is_finite() {
                cfg.responsive_pct
            } else {
                d.responsive_pct
            },
            max_hr_bpm: pos(cfg.max_hr_bpm, d.max_hr_bpm),
            max_pending: cfg.max_pending.max(1),
        };
        // Keep every beat a pending challenge can still need, plus a minute
        // for annotations that arrive after their time.
        let keep_s = cfg.before_s + cfg.after_span_s + 60.0;
        let cap = (keep_s * cfg.max_hr_bpm / 60.0).ceil() as usize + 1;
        Self {
            cfg,
            beats: Ring::new(cap),
            pending: Vec::with_capacity(cfg.max_pending),
            finished: Ring::new(cfg.max_pending + 1),
            now_s: f64::NEG_INFINITY,
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &FluidConfig {
        &self.cfg
    }

    /// Records a bolus at `t_s` (s) of `volume_ml` (`None` when the
    /// annotation does not state it). Non-finite times are ignored, and a
    /// volume outside (0, [`MAX_BOLUS_ML`]] counts as not stated: a
    /// recording's annotation is outside data, and a challenge is never
    /// reported with a negative or astronomical volume.
    pub fn bolus(&mut self, t_s: f64, volume_ml: Option<f64>) {
        if !t_s.is_finite() {
            return;
        }
        let volume_ml = volume_ml.filter(|v| v.is_finite() && *v > 0.0 && *v <= MAX_BOLUS_ML);
        if self.pending.len() >= self.cfg.max_pending {
            // Bounded memory: the oldest finishes now with what is there.
            let oldest = self.pending.remove(0);
            let r = self.evaluate(oldest, false);
            self.finished.push(r);
        }
        let at = self.pending.partition_point(|b| b.t_s <= t_s);
        self.pending.insert(at, Bolus { t_s, volume_ml });
        self.settle();
    }

    /// Takes a beat (rejected beats only advance time).
    pub fn push_beat(&mut self, beat: &Beat) {
        if beat.accepted && beat.onset_s.is_finite() && beat.sd_cm.is_finite() {
            self.beats.push(Stored {
                t_s: beat.onset_s,
                sd_cm: beat.sd_cm,
                sv_ml: beat.sv_ml.filter(|v| v.is_finite()),
            });
        }
        self.advance_to(beat.onset_s);
    }

    /// Moves time forward to `t_s`: every beat with an earlier onset must
    /// already have been pushed. Challenges whose after-span ended finish.
    pub fn advance_to(&mut self, t_s: f64) {
        if t_s.is_finite() && t_s > self.now_s {
            self.now_s = t_s;
        }
        self.settle();
    }

    /// Finishes every pending challenge with what is available (end of
    /// stream).
    pub fn finish(&mut self) {
        while !self.pending.is_empty() {
            let b = self.pending.remove(0);
            let complete = self.now_s >= b.t_s + self.cfg.after_span_s;
            let r = self.evaluate(b, complete);
            self.finished.push(r);
        }
    }

    /// The next finished challenge, oldest first.
    pub fn poll(&mut self) -> Option<FluidChallengeResult> {
        self.finished.pop_front()
    }

    /// Boluses still waiting for their after-window.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    fn settle(&mut self) {
        while let Some(b) = self.pending.first().copied() {
            if self.now_s >= b.t_s + self.cfg.after_span_s {
                self.pending.remove(0);
                let r = self.evaluate(b, true);
                self.finished.push(r);
            } else {
                break;
            }
        }
    }

    fn before_stats(&self, b: Bolus) -> WindowStats {
        let mut s = WindowStats::default();
        let start = b.t_s - self.cfg.before_s;
        for x in self
            .beats
            .iter()
            .filter(|x| x.t_s >= start && x.t_s < b.t_s)
        {
            s.add(x);
        }
        s
    }

    /// Best rolling window after the bolus among windows ending by `limit_s`:
    /// `(start, stats)`; when none has `min_beats`, `None`.
    fn best_after(&self, b: Bolus, limit_s: f64) -> Option<(f64, WindowStats)> {
        let w = self.cfg.rolling_s;
        let in_span = |x: &&Stored| x.t_s >= b.t_s && x.t_s < limit_s;
        let mut best: Option<(f64, WindowStats)> = None;
        let mut cur = WindowStats::default();
        // Two pointers over the beats in [bolus, limit): the window starting
        // at beat `first` holds the beats with onset in [t_first, t_first + w).
        let mut ahead = self.beats.iter().filter(in_span).peekable();
        for first in self.beats.iter().filter(in_span) {
            if first.t_s + w > limit_s + 1e-9 {
                break;
            }
            while let Some(x) = ahead.next_if(|x| x.t_s < first.t_s + w) {
                cur.add(x);
            }
            if cur.n >= self.cfg.min_beats {
                let sd = cur.sd().unwrap_or(f64::NEG_INFINITY);
                if best
                    .as_ref()
                    .and_then(|(_, s)| s.sd())
                    .is_none_or(|b| sd > b)
                {
                    best = Some((first.t_s, cur.clone()));
                }
            }
            // `first` is always in its own window: slide past it.
            cur.remove(first);
        }
        best
    }

    /// Whether the beats with onsets in `windows` have SV on more than one
    /// scale (SV per cm of SD), or some have SV and some do not.
    fn sv_models_differ(&self, windows: [[f64; 2]; 2]) -> bool {
        let mut scale: Option<Option<f64>> = None;
        for x in self
            .beats
            .iter()
            .filter(|x| windows.iter().any(|w| x.t_s >= w[0] && x.t_s < w[1]))
        {
            let this = x.sv_ml.filter(|_| x.sd_cm > 0.0).map(|sv| sv / x.sd_cm);
            match scale {
                None => scale = Some(this),
                Some(first) => {
                    let same = match (first, this) {
                        (Some(a), Some(b)) => (a - b).abs() <= 1e-9 * a.abs().max(b.abs()),
                        (None, None) => true,
                        _ => false,
                    };
                    if !same {
                        return true;
                    }
                }
            }
        }
        false
    }

    fn evaluate(&self, b: Bolus, complete: bool) -> FluidChallengeResult {
        let before = self.before_stats(b);
        // What was averaged can only reach as far as time was observed: a
        // challenge finished early (end of stream, too many pending) states
        // the window up to the time reached, not the whole search span.
        let span_end = if complete {
            b.t_s + self.cfg.after_span_s
        } else {
            (b.t_s + self.cfg.after_span_s).min(self.now_s.max(b.t_s))
        };
        let best = self.best_after(b, span_end);
        let (after_window_s, after) = match best {
            Some((start, s)) => ([start, start + self.cfg.rolling_s], s),
            None => {
                let mut s = WindowStats::default();
                for x in self
                    .beats
                    .iter()
                    .filter(|x| x.t_s >= b.t_s && x.t_s < span_end)
                {
                    s.add(x);
                }
                ([b.t_s, span_end], s)
            }
        };
        let judged = before.n >= self.cfg.min_beats && after.n >= self.cfg.min_beats;
        // The change is stated whenever both means exist; only the verdict
        // needs enough beats (analysis-output.md).
        let delta_pct = match (before.sd(), after.sd()) {
            (Some(sb), Some(sa)) if sb > 0.0 => Some(100.0 * (sa - sb) / sb),
            _ => None,
        };
        let before_window_s = [b.t_s - self.cfg.before_s, b.t_s];
        let sv_model_changed = self.sv_models_differ([before_window_s, after_window_s]);
        FluidChallengeResult {
            bolus_t_s: b.t_s,
            volume_ml: b.volume_ml,
            // Stream time starts at 0: a window reaching before it is stated
            // as it was averaged.
            before_window_s: [(b.t_s - self.cfg.before_s).max(0.0), b.t_s],
            after_window_s,
            beats_before: before.n,
            beats_after: after.n,
            sd_before_cm: before.sd(),
            sd_after_cm: after.sd(),
            sv_before_ml: before.sv(),
            sv_after_ml: after.sv(),
            delta_pct,
            // Judged on the change as `odm analyse` writes it (to 0.001 %),
            // so that `responsive` agrees with `delta_pct ≥ 10` read back
            // from the line (analysis-output.md), also at 9.9996 %.
            //
            // A challenge cut short (end of stream, too many pending) has
            // searched part of its after-span only. The best window's mean
            // can only rise as the search goes on, so a rise to the
            // threshold is final, but one under it is not: it is left
            // unjudged (null), not called unresponsive.
            responsive: delta_pct
                .filter(|_| judged)
                .map(|d| (d * 1000.0).round() / 1000.0 >= self.cfg.responsive_pct)
                .filter(|&responsive| complete || responsive),
            complete,
            sv_model_changed,
        }
    }

    /// The most recent challenge still in progress, for the live display.
    pub fn live(&self) -> Option<FluidLive> {
        let b = *self.pending.last()?;
        let before = self.before_stats(b);
        let now = self.now_s.max(b.t_s);
        let mut recent = WindowStats::default();
        let from = (now - self.cfg.rolling_s).max(b.t_s);
        for x in self.beats.iter().filter(|x| x.t_s >= from && x.t_s <= now) {
            recent.add(x);
        }
        let delta = |after: &WindowStats| match (before.sd(), after.sd()) {
            (Some(sb), Some(sa))
                if sb > 0.0 && before.n >= self.cfg.min_beats && after.n >= self.cfg.min_beats =>
            {
                Some(100.0 * (sa - sb) / sb)
            }
            _ => None,
        };
        let best = self.best_after(b, now.min(b.t_s + self.cfg.after_span_s));
        Some(FluidLive {
            bolus_t_s: b.t_s,
            volume_ml: b.volume_ml,
            elapsed_s: now - b.t_s,
            beats_before: before.n,
            sd_before_cm: before.sd(),
            sv_before_ml: before.sv(),
            beats_now: recent.n,
            sd_now_cm: recent.sd(),
            sv_now_ml: recent.sv(),
            delta_now_pct: delta(&recent),
            delta_best_pct: best.and_then(|(_, s)| delta(&s)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trend::tests::beat;

    /// Beats every `cycle_s` from `t0` to `t1` with SD `sd(t)`.
    fn feed(tr: &mut FluidTracker, t0: f64, t1: f64, cycle_s: f64, sd: impl Fn(f64) -> f64) {
        let mut t = t0;
        let mut i = 0;
        while t < t1 {
            tr.push_beat(&beat(i, t, sd(t), cycle_s));
            t += cycle_s;
            i += 1;
        }
    }

    /// The first challenge of beats every `cycle_s` from 0 to `until_s`,
    /// with SD and SV `at(t)` (SV `None`: no area model), and a bolus at
    /// `bolus_t_s` given after beat `bolus_after` is pushed.
    fn first_challenge(
        until_s: f64,
        cycle_s: f64,
        (bolus_after, bolus_t_s): (u64, f64),
        at: impl Fn(f64) -> (f64, Option<f64>),
    ) -> FluidChallengeResult {
        let mut tr = FluidTracker::new(FluidConfig::default());
        let mut t = 0.0;
        let mut i = 0;
        while t < until_s {
            let (sd_cm, sv_ml) = at(t);
            let mut b = beat(i, t, sd_cm, cycle_s);
            b.sv_ml = sv_ml;
            tr.push_beat(&b);
            if i == bolus_after {
                tr.bolus(bolus_t_s, Some(250.0));
            }
            t += cycle_s;
            i += 1;
        }
        tr.finish();
        tr.poll().unwrap()
    }

    #[test]
    fn an_implausible_bolus_volume_is_not_stated() {
        let mut tr = FluidTracker::new(FluidConfig::default());
        for (t, v) in [
            (1.0, Some(-1.0)),
            (2.0, Some(0.0)),
            (3.0, Some(1e308)),
            (4.0, Some(f64::NAN)),
            (5.0, Some(MAX_BOLUS_ML)),
            (6.0, Some(250.0)),
        ] {
            tr.bolus(t, v);
        }
        tr.finish();
        let volumes: Vec<Option<f64>> = std::iter::from_fn(|| tr.poll())
            .map(|r| r.volume_ml)
            .collect();
        assert_eq!(
            volumes,
            vec![None, None, None, None, Some(MAX_BOLUS_ML), Some(250.0)]
        );
    }

    /// SV means from two area models (a patient entered after the bolus)
    /// are flagged; SD's change is the same either way.
    #[test]
    fn a_change_of_area_model_between_the_windows_is_flagged() {
        let run = |scale_after: Option<f64>| {
            first_challenge(400.0, 0.8, (75, 60.0), |t| {
                if t < 60.0 {
                    (10.0, Some(50.0))
                } else {
                    (11.5, scale_after.map(|k| k * 11.5))
                }
            })
        };
        let same = run(Some(5.0));
        assert!(!same.sv_model_changed, "{same:?}");
        assert!((same.delta_pct.unwrap() - 15.0).abs() < 1e-9);
        for after in [Some(7.0), None] {
            let r = run(after);
            assert!(r.sv_model_changed, "{after:?}: {r:?}");
            assert!((r.delta_pct.unwrap() - 15.0).abs() < 1e-9, "{r:?}");
        }
    }

    /// Without an area model no beat has SV: the SV means are absent, not
    /// NaN, and the verdict (from SD) stands. (This and the next two tests
    /// come from a mutation run, stop 42.)
    #[test]
    fn without_stroke_volumes_the_sv_means_are_absent() {
        let r = first_challenge(400.0, 0.8, (75, 60.0), |t| {
            (if t < 60.0 { 10.0 } else { 12.0 }, None)
        });
        assert_eq!((r.sv_before_ml, r.sv_after_ml), (None, None), "{r:?}");
        assert!(!r.sv_model_changed, "{r:?}");
        assert!((r.delta_pct.unwrap() - 20.0).abs() < 1e-9, "{r:?}");
        assert_eq!(r.responsive, Some(true));
    }

    /// Windows that are not finite and positive fall back to the defaults,
    /// and `config` reports what is in use.
    #[test]
    fn unusable_settings_fall_back_to_the_defaults() {
        let d = FluidConfig::default();
        let tr = FluidTracker::new(FluidConfig {
            before_s: f64::NAN,
            after_span_s: -1.0,
            rolling_s: 20.0,
            min_beats: 0,
            responsive_pct: f64::INFINITY,
            max_hr_bpm: 0.0,
            max_pending: 0,
        });
        let want = FluidConfig {
            rolling_s: 20.0,
            min_beats: 1,
            max_pending: 1,
            ..d
        };
        assert_eq!(*tr.config(), want);
    }

    /// A non-finite time does not move the clock (an infinite one would
    /// finish every challenge as complete at once), and a challenge the
    /// stream ends inside is incomplete, even one given at time 0.
    #[test]
    fn non_finite_times_leave_a_challenge_pending() {
        let mut tr = FluidTracker::new(FluidConfig::default());
        tr.bolus(0.0, Some(250.0));
        feed(&mut tr, 0.0, 100.0, 1.0, |_| 11.0);
        tr.advance_to(f64::INFINITY);
        tr.advance_to(f64::NAN);
        assert_eq!(tr.pending(), 1);
        assert!(tr.poll().is_none());
        tr.finish();
        let r = tr.poll().unwrap();
        assert!(!r.complete, "{r:?}");
        assert_eq!(r.beats_before, 0);
        assert_eq!(r.responsive, None);
    }

    /// Of equally good rolling windows the earliest is stated; a window
    /// that ends exactly where the search span ends is searched, and none
    /// that runs past it (exact binary SDs, so that equal means are equal).
    #[test]
    fn the_earliest_best_window_is_stated_and_the_last_one_is_searched() {
        for (rise_from_s, want_start_s, want_sd_cm) in [
            (150.0, 150.0, 12.0),
            (370.0, 370.0, 12.0),
            (385.0, 370.0, 11.0),
        ] {
            let mut tr = FluidTracker::new(FluidConfig::default());
            feed(&mut tr, 0.0, 100.0, 1.0, |_| 10.0);
            tr.bolus(100.0, Some(250.0));
            feed(&mut tr, 100.0, 420.0, 1.0, |t| {
                if (rise_from_s..400.0).contains(&t) {
                    12.0
                } else {
                    10.0
                }
            });
            let r = tr.poll().unwrap();
            assert_eq!(r.after_window_s, [want_start_s, want_start_s + 30.0]);
            assert_eq!(r.beats_after, 30);
            assert_eq!(r.sd_after_cm, Some(want_sd_cm));
            assert_eq!(r.delta_pct, Some(10.0 * (want_sd_cm - 10.0)));
        }
    }

    /// Only the beats of the two windows decide whether their SVs come
    /// from one area model: a patient entered a minute before the baseline
    /// window does not flag the challenge.
    #[test]
    fn a_model_change_outside_both_windows_is_not_flagged() {
        let r = first_challenge(500.0, 1.0, (120, 120.0), |t| {
            let sd_cm = if t < 120.0 { 10.0 } else { 11.0 };
            (sd_cm, (t >= 40.0).then_some(5.0 * sd_cm))
        });
        assert_eq!(r.before_window_s, [60.0, 120.0]);
        assert!(!r.sv_model_changed, "{r:?}");
        assert_eq!(r.sv_before_ml, Some(50.0));
    }

    #[test]
    fn a_15_percent_rise_is_responsive() {
        let mut tr = FluidTracker::new(FluidConfig::default());
        feed(&mut tr, 0.0, 100.0, 1.0, |_| 15.0);
        tr.bolus(100.0, Some(250.0));
        // SD ramps from 15 to 17.25 (+15 %) over two minutes, then holds.
        feed(&mut tr, 100.0, 420.0, 1.0, |t| {
            15.0 + 2.25 * ((t - 100.0) / 120.0).min(1.0)
        });
        assert_eq!(tr.pending(), 0);
        let r = tr.poll().unwrap();
        assert!(tr.poll().is_none());
        assert_eq!(r.bolus_t_s, 100.0);
        assert_eq!(r.volume_ml, Some(250.0));
        assert_eq!(r.before_window_s, [40.0, 100.0]);
        assert_eq!(r.beats_before, 60);
        assert!((r.sd_before_cm.unwrap() - 15.0).abs() < 1e-9);
        assert!((r.sd_after_cm.unwrap() - 17.25).abs() < 1e-9);
        assert!((r.delta_pct.unwrap() - 15.0).abs() < 1e-9);
        assert_eq!(r.responsive, Some(true));
        assert_eq!(r.beats_after, 30);
        assert!(
            r.after_window_s[0] >= 220.0 && r.after_window_s[1] <= 400.0,
            "{r:?}"
        );
        assert!((r.sv_after_ml.unwrap() / r.sv_before_ml.unwrap() - 1.15).abs() < 1e-9);
        assert!(r.complete);
    }

    /// The verdict agrees with the change as written to 0.001 %: 9.9996 %
    /// is written `10` and is responsive; 9.9994 % is written `9.999`.
    #[test]
    fn the_verdict_agrees_with_the_change_as_written() {
        for (after, want) in [(12.0 * 1.099_996, true), (12.0 * 1.099_994, false)] {
            let mut tr = FluidTracker::new(FluidConfig::default());
            feed(&mut tr, 0.0, 60.0, 0.8, |_| 12.0);
            tr.bolus(60.0, Some(200.0));
            feed(&mut tr, 60.0, 400.0, 0.8, |t| {
                if t > 120.0 { after } else { 12.0 }
            });
            let r = tr.poll().unwrap();
            let d = r.delta_pct.unwrap();
            assert!((d - 10.0).abs() < 0.001 && d < 10.0, "{r:?}");
            assert_eq!(r.responsive, Some(want), "{d}");
        }
    }

    #[test]
    fn a_5_percent_rise_is_not_responsive() {
        let mut tr = FluidTracker::new(FluidConfig::default());
        feed(&mut tr, 0.0, 60.0, 0.8, |_| 12.0);
        tr.bolus(60.0, Some(200.0));
        feed(&mut tr, 60.0, 400.0, 0.8, |t| {
            if t > 120.0 { 12.6 } else { 12.0 }
        });
        let r = tr.poll().unwrap();
        assert!((r.delta_pct.unwrap() - 5.0).abs() < 1e-9, "{r:?}");
        assert_eq!(r.responsive, Some(false));
    }

    #[test]
    fn best_window_picks_the_peak_not_the_last_value() {
        // The response peaks 2–3 min after the bolus, then fades.
        let mut tr = FluidTracker::new(FluidConfig::default());
        feed(&mut tr, 0.0, 60.0, 1.0, |_| 10.0);
        tr.bolus(60.0, Some(250.0));
        feed(&mut tr, 60.0, 400.0, 1.0, |t| {
            if (180.0..240.0).contains(&t) {
                11.5
            } else {
                10.2
            }
        });
        let r = tr.poll().unwrap();
        assert!((r.delta_pct.unwrap() - 15.0).abs() < 1e-9, "{r:?}");
        assert!(r.after_window_s[0] >= 180.0 && r.after_window_s[1] <= 240.0 + 1e-9);
    }

    #[test]
    fn too_few_beats_before_gives_no_verdict_but_states_the_change() {
        let mut tr = FluidTracker::new(FluidConfig::default());
        feed(&mut tr, 0.0, 5.0, 1.0, |_| 15.0); // 5 beats < 10
        tr.bolus(5.0, Some(250.0));
        feed(&mut tr, 5.0, 400.0, 1.0, |_| 18.0);
        let r = tr.poll().unwrap();
        assert_eq!(r.beats_before, 5);
        assert_eq!(r.before_window_s, [0.0, 5.0], "clipped at the stream start");
        assert!((r.delta_pct.unwrap() - 20.0).abs() < 1e-9, "{r:?}");
        assert_eq!(r.responsive, None);
        assert!(
            (r.sd_before_cm.unwrap() - 15.0).abs() < 1e-9,
            "means still stated"
        );
    }

    #[test]
    fn too_few_beats_after_gives_null_and_states_the_search_span() {
        let mut tr = FluidTracker::new(FluidConfig::default());
        feed(&mut tr, 0.0, 60.0, 1.0, |_| 15.0);
        tr.bolus(60.0, Some(250.0));
        // Signal lost after the bolus: only rejected beats.
        let mut t = 60.0;
        while t < 400.0 {
            let mut b = beat(0, t, 30.0, 1.0);
            b.accepted = false;
            tr.push_beat(&b);
            t += 1.0;
        }
        let r = tr.poll().unwrap();
        assert_eq!(r.beats_after, 0);
        assert_eq!(r.after_window_s, [60.0, 360.0]);
        assert_eq!(r.sd_after_cm, None);
        assert_eq!(r.responsive, None);
    }

    /// The live reading: "now" is the last `rolling_s` of beats, and no
    /// change is shown until both windows hold `min_beats` (mutation run,
    /// stop 42: neither was tested).
    #[test]
    fn the_live_reading_is_the_last_rolling_window_and_waits_for_beats() {
        let mut tr = FluidTracker::new(FluidConfig::default());
        feed(&mut tr, 0.0, 60.0, 1.0, |_| 10.0);
        tr.bolus(60.0, Some(250.0));
        feed(&mut tr, 60.0, 65.0, 1.0, |_| 12.0);
        let early = tr.live().unwrap();
        assert_eq!((early.beats_before, early.beats_now), (60, 5));
        assert_eq!(early.sd_now_cm, Some(12.0));
        assert_eq!(early.delta_now_pct, None, "5 beats after: too few");
        assert_eq!(early.delta_best_pct, None);
        feed(&mut tr, 65.0, 120.0, 1.0, |_| 10.0);
        feed(&mut tr, 120.0, 150.0, 1.0, |_| 12.0);
        let live = tr.live().unwrap();
        // Onsets 119..=149 s: one beat of 10 cm and thirty of 12.
        assert_eq!(live.beats_now, 31);
        let sd_now_cm = (10.0 + 30.0 * 12.0) / 31.0;
        assert!(
            (live.sd_now_cm.unwrap() - sd_now_cm).abs() < 1e-9,
            "{live:?}"
        );
        assert!((live.delta_now_pct.unwrap() - 10.0 * (sd_now_cm - 10.0)).abs() < 1e-9);
        // The best whole window by now is [119, 149): 1 × 10 and 29 × 12.
        let best_sd_cm = (10.0 + 29.0 * 12.0) / 30.0;
        assert!(
            (live.delta_best_pct.unwrap() - 10.0 * (best_sd_cm - 10.0)).abs() < 1e-9,
            "{live:?}"
        );
    }

    #[test]
    fn end_of_stream_reports_what_is_available() {
        let mut tr = FluidTracker::new(FluidConfig::default());
        feed(&mut tr, 0.0, 60.0, 1.0, |_| 15.0);
        tr.bolus(60.0, Some(250.0));
        feed(&mut tr, 60.0, 150.0, 1.0, |_| 16.5);
        assert!(tr.poll().is_none(), "after-window still open");
        let live = tr.live().unwrap();
        assert!((live.delta_now_pct.unwrap() - 10.0).abs() < 1e-9);
        assert!((live.delta_best_pct.unwrap() - 10.0).abs() < 1e-9);
        assert!((live.elapsed_s - 89.0).abs() < 1e-9);
        tr.finish();
        let r = tr.poll().unwrap();
        assert!(!r.complete);
        assert_eq!(r.responsive, Some(true));
        assert!(tr.live().is_none());
    }

    #[test]
    fn a_challenge_cut_short_under_the_threshold_is_not_called_unresponsive() {
        // 5 % up 90 s into a 300 s search: a later window could still reach
        // 10 %, so the verdict is left open; the change is stated.
        let mut tr = FluidTracker::new(FluidConfig::default());
        feed(&mut tr, 0.0, 60.0, 1.0, |_| 15.0);
        tr.bolus(60.0, Some(250.0));
        feed(&mut tr, 60.0, 150.0, 1.0, |_| 15.75);
        tr.finish();
        let r = tr.poll().unwrap();
        assert!(!r.complete);
        assert!((r.delta_pct.unwrap() - 5.0).abs() < 1e-9, "{r:?}");
        assert_eq!(r.responsive, None);
        // The same change over the whole search span is a verdict.
        let mut tr = FluidTracker::new(FluidConfig::default());
        feed(&mut tr, 0.0, 60.0, 1.0, |_| 15.0);
        tr.bolus(60.0, Some(250.0));
        feed(&mut tr, 60.0, 400.0, 1.0, |_| 15.75);
        let r = tr.poll().unwrap();
        assert!(r.complete);
        assert_eq!(r.responsive, Some(false));
    }

    #[test]
    fn a_challenge_cut_short_states_the_window_it_averaged() {
        // Bolus at 55 s in a 60 s stream: five beats after it, too few for
        // a rolling window; the window averaged ends where the stream did.
        let mut tr = FluidTracker::new(FluidConfig::default());
        feed(
            &mut tr,
            0.0,
            60.0,
            1.0,
            |t| if t < 55.0 { 15.0 } else { 16.5 },
        );
        tr.bolus(55.0, Some(250.0));
        tr.advance_to(60.0);
        tr.finish();
        let r = tr.poll().unwrap();
        assert!(!r.complete);
        assert_eq!(r.after_window_s, [55.0, 60.0], "{r:?}");
        assert_eq!(r.beats_after, 5);
        assert!((r.sd_after_cm.unwrap() - 16.5).abs() < 1e-9, "{r:?}");
        assert_eq!(r.responsive, None, "too few beats to judge");
    }

    #[test]
    fn time_advance_without_beats_finishes_a_challenge() {
        let mut tr = FluidTracker::new(FluidConfig::default());
        feed(&mut tr, 0.0, 60.0, 1.0, |_| 15.0);
        tr.bolus(60.0, Some(250.0));
        tr.advance_to(359.0);
        assert!(tr.poll().is_none());
        tr.advance_to(360.0);
        let r = tr.poll().unwrap();
        assert!(r.complete && r.responsive.is_none());
    }

    #[test]
    fn overlapping_boluses_are_reported_in_time_order_and_pending_is_bounded() {
        let mut tr = FluidTracker::new(FluidConfig {
            max_pending: 2,
            ..FluidConfig::default()
        });
        feed(&mut tr, 0.0, 60.0, 1.0, |_| 15.0);
        tr.bolus(60.0, Some(250.0));
        tr.bolus(50.0, Some(100.0));
        tr.bolus(55.0, Some(100.0)); // third: the oldest (t = 50) finishes early
        let early = tr.poll().unwrap();
        assert_eq!(early.bolus_t_s, 50.0);
        assert!(!early.complete);
        assert_eq!(tr.pending(), 2);
        feed(&mut tr, 60.0, 400.0, 1.0, |_| 15.0);
        assert_eq!(tr.poll().unwrap().bolus_t_s, 55.0);
        assert_eq!(tr.poll().unwrap().bolus_t_s, 60.0);
    }

    /// Deterministic noise in −1..1 (xorshift), sum of 3 for a rounder shape.
    fn noise(state: &mut u64) -> f64 {
        let mut x = 0.0;
        for _ in 0..3 {
            *state ^= *state << 13;
            *state ^= *state >> 7;
            *state ^= *state << 17;
            x += (*state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0;
        }
        x / 3.0
    }

    #[test]
    fn best_window_bias_without_any_change_is_small() {
        // No true change; beat-to-beat SD scatter of 2 % RMS at 75/min.
        // The best of the after-windows is biased upward (a maximum of noisy
        // means); docs/haemodynamics.md quotes this measured bias.
        // noise() has σ = 1/3, so this scale gives 2 % RMS.
        let scale = 0.02 * 3.0;
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let trials = 40;
        let mut sum = 0.0;
        let mut worst: f64 = 0.0;
        for _ in 0..trials {
            let mut tr = FluidTracker::new(FluidConfig::default());
            let mut t = 0.0;
            let mut i = 0;
            while t < 400.0 {
                if i == 80 {
                    tr.bolus(t, Some(250.0));
                }
                tr.push_beat(&beat(i, t, 15.0 * (1.0 + scale * noise(&mut state)), 0.8));
                t += 0.8;
                i += 1;
            }
            let r = tr.poll().unwrap();
            let d = r.delta_pct.unwrap();
            sum += d;
            worst = worst.max(d);
        }
        let bias = sum / trials as f64;
        println!("best-window bias: mean {bias:.3} %, worst {worst:.3} % over {trials} trials");
        assert!(bias > 0.0 && bias < 1.0, "mean bias {bias} %");
        assert!(worst < 3.0, "worst {worst} %: far from the 10 % threshold");
    }
}
