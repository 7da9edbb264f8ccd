//! Fluid challenges of this case: the DSP's `FluidTracker` (the same
//! windows `odm analyse` reports) fed with the beats and boluses the display
//! sees, and the history of finished challenges.

use odm_dsp::Beat;
use odm_dsp::fluid::{FluidChallengeResult, FluidConfig, FluidLive, FluidTracker};

/// Default bolus volume, ml (primer: 200–250 ml).
pub const DEFAULT_VOLUME_ML: f64 = 250.0;
/// Finished challenges kept for the history list.
const HISTORY_KEPT: usize = 64;

/// Boluses, the live challenge and the finished ones.
#[derive(Debug, Clone)]
pub struct FluidChallenges {
    tracker: FluidTracker,
    history: Vec<FluidChallengeResult>,
}

impl Default for FluidChallenges {
    fn default() -> Self {
        Self::new()
    }
}

impl FluidChallenges {
    /// With the DSP's default windows (60 s before; best 30 s mean within
    /// 300 s after; responsive at ≥ 10 %).
    pub fn new() -> Self {
        Self {
            tracker: FluidTracker::new(FluidConfig::default()),
            history: Vec::new(),
        }
    }
    /// The windows in use.
    pub fn config(&self) -> &FluidConfig {
        self.tracker.config()
    }
    /// A bolus of `volume_ml` (`None` when not stated) at stream time `t_s`.
    pub fn bolus(&mut self, t_s: f64, volume_ml: Option<f64>) {
        self.tracker.bolus(t_s, volume_ml);
        self.collect();
    }
    /// Takes one beat.
    pub fn push_beat(&mut self, beat: &Beat) {
        self.tracker.push_beat(beat);
        self.collect();
    }
    /// Moves stream time forward.
    pub fn advance_to(&mut self, t_s: f64) {
        self.tracker.advance_to(t_s);
        self.collect();
    }
    /// The challenge in progress.
    pub fn live(&self) -> Option<FluidLive> {
        self.tracker.live()
    }
    /// Finished challenges, oldest first.
    pub fn history(&self) -> &[FluidChallengeResult] {
        &self.history
    }
    /// Forgets all (new source, seek).
    pub fn clear(&mut self) {
        *self = Self::new();
    }
    fn collect(&mut self) {
        while let Some(r) = self.tracker.poll() {
            if self.history.len() >= HISTORY_KEPT {
                self.history.remove(0);
            }
            self.history.push(r);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::readings::tests::beat;

    #[test]
    fn twelve_percent_rise_finishes_as_responsive_after_five_minutes() {
        let mut ch = FluidChallenges::new();
        let mut i = 0;
        let mut t = 0.0;
        while t < 100.0 {
            ch.push_beat(&beat(i, t, 15.0, true));
            i += 1;
            t += 0.8;
        }
        ch.bolus(t, Some(250.0));
        let live = ch.live().unwrap_or_else(|| unreachable!());
        assert_eq!(live.beats_before, 75, "60 s of beats 0.8 s apart");
        assert_eq!(live.sd_before_cm, Some(15.0));
        while t < 100.0 + 400.0 {
            ch.push_beat(&beat(i, t, 16.8, true));
            i += 1;
            t += 0.8;
        }
        assert!(ch.live().is_none());
        let r = ch.history()[0];
        assert!((r.delta_pct.unwrap_or(0.0) - 12.0).abs() < 1e-9);
        assert_eq!(r.responsive, Some(true));
        assert_eq!(r.volume_ml, Some(250.0));
    }
}
