//! Fluid challenge: baseline before a bolus, live response after it, and
//! the history (odm-primer.md, "Fluid management": Singer's 10 % rule).
//!
//! Windows (stated on screen and in docs/monitor.md): the baseline is the
//! mean of accepted beats in the [`BEFORE_WINDOW_S`] before the bolus; the
//! response is the mean of accepted beats in the latest [`AFTER_WINDOW_S`]
//! after it, live until [`CHALLENGE_LENGTH_S`] has passed, then frozen.
//! ΔSV % is computed from stroke distance, which equals the SV change for a
//! fixed aortic area (analysis-output.md, `fluid_challenge.delta_pct`).

use crate::readings::Readings;

/// Baseline window before the bolus, s.
pub const BEFORE_WINDOW_S: f64 = 60.0;
/// Response window: the latest this-many seconds after the bolus, s.
pub const AFTER_WINDOW_S: f64 = 30.0;
/// After this long the challenge's result is frozen, s (a 250 ml bolus is
/// given over a few minutes; 5 min covers it).
pub const CHALLENGE_LENGTH_S: f64 = 300.0;
/// Fewest accepted beats in a window to judge it.
pub const MIN_BEATS: usize = 5;
/// Singer's threshold: responsive when SV rises by at least this, %.
pub const RESPONSIVE_PCT: f64 = 10.0;
/// Default bolus volume, ml.
pub const DEFAULT_VOLUME_ML: f64 = 250.0;

/// One bolus and what followed it.
#[derive(Debug, Clone, PartialEq)]
pub struct Challenge {
    /// Stream time of the bolus, s.
    pub bolus_t_s: f64,
    /// Volume, ml.
    pub volume_ml: f64,
    /// Accepted beats in the baseline window.
    pub beats_before: usize,
    /// Baseline mean SD, cm.
    pub sd_before_cm: Option<f64>,
    /// Baseline mean SV, ml.
    pub sv_before_ml: Option<f64>,
    /// Accepted beats in the response window.
    pub beats_after: usize,
    /// Response mean SD, cm.
    pub sd_after_cm: Option<f64>,
    /// Response mean SV, ml.
    pub sv_after_ml: Option<f64>,
    /// Whether the result is final.
    pub finished: bool,
}

impl Challenge {
    /// `100 · (SD after − SD before) / SD before`, when both windows have enough beats.
    pub fn delta_pct(&self) -> Option<f64> {
        if self.beats_before < MIN_BEATS || self.beats_after < MIN_BEATS {
            return None;
        }
        let before = self.sd_before_cm?;
        let after = self.sd_after_cm?;
        (before > 0.0).then(|| 100.0 * (after - before) / before)
    }
    /// ΔSV ≥ 10 %; `None` when it cannot be judged yet.
    pub fn responsive(&self) -> Option<bool> {
        self.delta_pct().map(|d| d >= RESPONSIVE_PCT)
    }
}

/// Every bolus of this case.
#[derive(Debug, Clone, Default)]
pub struct FluidChallenges {
    list: Vec<Challenge>,
}

impl FluidChallenges {
    /// Starts a challenge at stream time `t_s`: the baseline is taken now.
    pub fn bolus(&mut self, t_s: f64, volume_ml: f64, readings: &Readings) {
        // A new bolus ends the previous challenge.
        if let Some(last) = self.list.last_mut() {
            last.finished = true;
        }
        let before = readings.window_means(t_s - BEFORE_WINDOW_S, t_s);
        self.list.push(Challenge {
            bolus_t_s: t_s,
            volume_ml,
            beats_before: before.beats,
            sd_before_cm: before.sd_cm,
            sv_before_ml: before.sv_ml,
            beats_after: 0,
            sd_after_cm: None,
            sv_after_ml: None,
            finished: false,
        });
    }
    /// Updates the open challenge with beats up to stream time `now_s`.
    pub fn update(&mut self, now_s: f64, readings: &Readings) {
        let Some(c) = self.list.last_mut() else {
            return;
        };
        if c.finished {
            return;
        }
        let end_s = now_s.min(c.bolus_t_s + CHALLENGE_LENGTH_S);
        let from_s = (end_s - AFTER_WINDOW_S).max(c.bolus_t_s);
        let after = readings.window_means(from_s, end_s);
        c.beats_after = after.beats;
        c.sd_after_cm = after.sd_cm;
        c.sv_after_ml = after.sv_ml;
        if now_s >= c.bolus_t_s + CHALLENGE_LENGTH_S {
            c.finished = true;
        }
    }
    /// Every challenge, oldest first.
    pub fn list(&self) -> &[Challenge] {
        &self.list
    }
    /// The newest challenge.
    pub fn current(&self) -> Option<&Challenge> {
        self.list.last()
    }
    /// Forgets all (new case).
    pub fn clear(&mut self) {
        self.list.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::readings::tests::beat;

    #[test]
    fn twelve_percent_rise_is_responsive_and_freezes_after_five_minutes() {
        let mut r = Readings::default();
        let mut ch = FluidChallenges::default();
        let mut i = 0;
        let mut t = 0.0;
        while t < 100.0 {
            r.push(&beat(i, t, 15.0, true));
            i += 1;
            t += 0.8;
        }
        ch.bolus(t, 250.0, &r);
        let c = ch.current().cloned().unwrap_or_else(|| unreachable!());
        assert_eq!(c.beats_before, 75, "60 s of beats 0.8 s apart");
        assert_eq!(c.sd_before_cm, Some(15.0));
        assert_eq!(c.responsive(), None, "no beats after yet");
        while t < 100.0 + 400.0 {
            r.push(&beat(i, t, 16.8, true));
            i += 1;
            t += 0.8;
            ch.update(t, &r);
        }
        let c = &ch.list()[0];
        assert!(c.finished);
        assert!((c.delta_pct().unwrap_or(0.0) - 12.0).abs() < 1e-9);
        assert_eq!(c.responsive(), Some(true));
        assert!((c.sv_after_ml.unwrap_or(0.0) - 16.8 * 4.0).abs() < 1e-9);
    }

    #[test]
    fn nine_percent_rise_is_not_responsive() {
        let c = Challenge {
            bolus_t_s: 0.0,
            volume_ml: 250.0,
            beats_before: 20,
            sd_before_cm: Some(10.0),
            sv_before_ml: None,
            beats_after: 20,
            sd_after_cm: Some(10.9),
            sv_after_ml: None,
            finished: true,
        };
        assert_eq!(c.responsive(), Some(false));
    }
}
