//! Beat-to-beat descending-aortic flow: the maximum-velocity envelope v(t)
//! in cm/s and the exact per-beat quantities it implies.
//!
//! Each systole is a closed-form shape on `[onset, onset + FT]` (zero outside,
//! so onset and end are exact), with a fast rise to the peak at ~30% of FT and
//! a slower fall:
//!
//! * rise, `u = x/x_p ∈ [0, 1]`: `1 − (1 − u)^k_r` (leaves zero with a finite
//!   slope, reaches the peak with zero slope);
//! * fall, `y = (x − x_p)/(1 − x_p)`: `1 − y^k_f` (leaves the peak with zero
//!   slope, returns to zero with a finite slope, as the valve closes).
//!
//! Its integral is closed-form, so stroke distance is exact:
//! `SD = PV·FT·(x_p·k_r/(k_r+1) + (1−x_p)·k_f/(k_f+1))`.
//!
//! After systole a short reverse-flow dip and low forward diastolic flow may
//! follow; both start strictly after the systolic flow is back at zero and
//! end before the next onset, and neither is part of the beat
//! (analysis-output.md, Conventions).
//!
//! Beat-to-beat: heart rate with random variability, FT from the target FTc
//! by Bazett (`FT = FTc·√cycle`, so FT shortens with HR and FTc stays roughly
//! constant), stroke distance modulated by ventilation (SVV), occasional
//! premature ectopic beats (smaller, shorter, with a compensatory pause and a
//! potentiated next beat), and a schedule of step changes.

use std::collections::VecDeque;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use crate::config::SimConfig;

/// Rise exponent `k_r` of the systolic shape.
const RISE_EXP: f64 = 1.6;
/// Default fall exponent `k_f` when no peak velocity is imposed.
const FALL_EXP_DEFAULT: f64 = 1.4;
/// Fall exponents allowed when fitting an imposed peak velocity.
const FALL_EXP_MIN: f64 = 1.0;
const FALL_EXP_MAX: f64 = 5.0;
/// Delay from end of systole to the reverse dip, s.
const REVERSE_DELAY_S: f64 = 0.015;
/// Duration of the reverse dip, s.
const REVERSE_DURATION_S: f64 = 0.07;
/// Quiet time between the reverse dip and diastolic forward flow, s.
const DIASTOLIC_DELAY_S: f64 = 0.04;
/// Diastolic flow stops at least this long before the next onset, s.
const DIASTOLIC_GUARD_S: f64 = 0.1;
/// Shortest diastolic-flow episode worth drawing, s.
const DIASTOLIC_MIN_S: f64 = 0.1;
/// Shortest and longest cycle the generator allows (200 and 35 /min).
const CYCLE_MIN_S: f64 = 60.0 / 200.0;
const CYCLE_MAX_S: f64 = 60.0 / 35.0;

/// The normalised systolic shape of one beat.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BeatShape {
    /// Time to peak as a fraction of FT, `x_p`.
    pub peak_frac: f64,
    /// Rise exponent `k_r`.
    pub rise_exp: f64,
    /// Fall exponent `k_f`.
    pub fall_exp: f64,
}

impl BeatShape {
    /// Normalised velocity (peak 1) at `x = (t − onset)/FT`; zero outside `(0, 1)`.
    pub fn value(&self, x: f64) -> f64 {
        if !(x > 0.0 && x < 1.0) {
            0.0
        } else if x < self.peak_frac {
            let u = x / self.peak_frac;
            1.0 - (1.0 - u).powf(self.rise_exp)
        } else {
            let y = (x - self.peak_frac) / (1.0 - self.peak_frac);
            1.0 - y.powf(self.fall_exp)
        }
    }

    /// `∫₀¹ value(x) dx`, exact.
    pub fn area(&self) -> f64 {
        let xp = self.peak_frac;
        xp * self.rise_exp / (self.rise_exp + 1.0)
            + (1.0 - xp) * self.fall_exp / (self.fall_exp + 1.0)
    }
}

/// A bump after systole (reverse dip or diastolic forward flow).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FlowBump {
    /// Start, s.
    pub start_s: f64,
    /// Duration, s.
    pub duration_s: f64,
    /// Signed peak velocity, cm/s (negative = reverse).
    pub peak_cm_s: f64,
}

/// One planned cardiac cycle: everything needed to evaluate v(t) exactly.
#[derive(Debug, Clone, PartialEq)]
pub struct BeatPlan {
    /// 0, 1, 2, … in time order.
    pub index: u64,
    /// Where systolic flow leaves zero, s.
    pub onset_s: f64,
    /// Flow time, s.
    pub ft_s: f64,
    /// Onset of the next beat, s.
    pub next_onset_s: f64,
    /// Peak velocity, cm/s.
    pub pv_cm_s: f64,
    /// Systolic shape.
    pub shape: BeatShape,
    /// A premature (ectopic) beat.
    pub ectopic: bool,
    /// Brief reverse flow after systole, if any.
    pub reverse: Option<FlowBump>,
    /// Low forward diastolic flow, if any.
    pub diastolic: Option<FlowBump>,
}

impl BeatPlan {
    /// End of systolic flow, s.
    pub fn end_s(&self) -> f64 {
        self.onset_s + self.ft_s
    }
    /// Time of peak velocity, s.
    pub fn peak_s(&self) -> f64 {
        self.onset_s + self.shape.peak_frac * self.ft_s
    }
    /// Cycle length, s.
    pub fn cycle_s(&self) -> f64 {
        self.next_onset_s - self.onset_s
    }
    /// Stroke distance ∫v dt over systole, cm (exact).
    pub fn sd_cm(&self) -> f64 {
        self.pv_cm_s * self.ft_s * self.shape.area()
    }
    /// Systolic velocity at `t` (zero outside this beat's systole), cm/s.
    pub fn systolic_velocity_cm_s(&self, t_s: f64) -> f64 {
        if t_s <= self.onset_s || t_s >= self.end_s() {
            return 0.0;
        }
        self.pv_cm_s * self.shape.value((t_s - self.onset_s) / self.ft_s)
    }
    /// Signed velocity at `t` inside this cycle: systole, reverse dip, diastolic flow.
    pub fn signed_velocity_cm_s(&self, t_s: f64) -> f64 {
        let mut v = self.systolic_velocity_cm_s(t_s);
        for bump in [self.reverse, self.diastolic].into_iter().flatten() {
            let tau = (t_s - bump.start_s) / bump.duration_s;
            if tau > 0.0 && tau < 1.0 {
                let s = (std::f64::consts::PI * tau).sin();
                // Reverse dip: half sine; diastolic flow: sin², which starts gently.
                v += if bump.peak_cm_s < 0.0 {
                    bump.peak_cm_s * s
                } else {
                    bump.peak_cm_s * s * s
                };
            }
        }
        v
    }
}

/// Mean values in force at a time (base config with schedule steps applied).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Targets {
    /// Heart rate, 1/min.
    pub hr_bpm: f64,
    /// Stroke distance, cm.
    pub sd_cm: f64,
    /// Corrected flow time (Bazett), ms.
    pub ftc_ms: f64,
    /// Imposed peak velocity, cm/s.
    pub pv_cm_s: Option<f64>,
}

/// The beat generator: one cardiac cycle after another, from the seed.
#[derive(Debug, Clone)]
pub struct Physiology {
    cfg: SimConfig,
    rng: ChaCha8Rng,
    next_index: u64,
    next_onset_s: f64,
    /// Prematurity (fraction of the normal cycle) of the coming ectopic beat.
    pending_ectopic: Option<f64>,
    post_ectopic: bool,
    resp_phase0: f64,
    max_velocity_cm_s: f64,
}

fn gauss(rng: &mut ChaCha8Rng) -> f64 {
    let z: f64 = rng.sample(StandardNormal);
    z.clamp(-3.0, 3.0)
}

impl Physiology {
    /// A generator for this configuration (its own random stream of the seed).
    pub fn new(cfg: &SimConfig) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        rng.set_stream(crate::STREAM_PHYSIOLOGY);
        let first_cycle = 60.0 / cfg.hr_bpm;
        let next_onset_s = rng.gen_range(0.1..0.6) * first_cycle;
        let resp_phase0 = rng.gen_range(0.0..std::f64::consts::TAU);
        let mut cfg = cfg.clone();
        cfg.schedule.sort_by(|a, b| a.start_s.total_cmp(&b.start_s));
        Self {
            max_velocity_cm_s: cfg.max_velocity_cm_s(),
            cfg,
            rng,
            next_index: 0,
            next_onset_s,
            pending_ectopic: None,
            post_ectopic: false,
            resp_phase0,
        }
    }

    /// The mean values in force at `t_s`.
    pub fn targets_at(&self, t_s: f64) -> Targets {
        let mut hr_bpm = self.cfg.hr_bpm;
        let mut sv_ml = self.cfg.sv_ml;
        let mut ftc_ms = self.cfg.ftc_ms;
        let mut pv_cm_s = self.cfg.pv_cm_s;
        for seg in self.cfg.schedule.iter().take_while(|s| s.start_s <= t_s) {
            hr_bpm = seg.hr_bpm.unwrap_or(hr_bpm);
            sv_ml = seg.sv_ml.unwrap_or(sv_ml);
            ftc_ms = seg.ftc_ms.unwrap_or(ftc_ms);
            pv_cm_s = seg.pv_cm_s.or(pv_cm_s);
        }
        Targets {
            hr_bpm,
            sd_cm: self.cfg.sd_cm_from_sv_ml(sv_ml),
            ftc_ms,
            pv_cm_s,
        }
    }

    /// The next cardiac cycle.
    pub fn next_beat(&mut self) -> BeatPlan {
        let onset_s = self.next_onset_s;
        let tg = self.targets_at(onset_s);
        let c0 = 60.0 / tg.hr_bpm;
        let this_prematurity = self.pending_ectopic.take();
        let ectopic = this_prematurity.is_some();
        let mut cycle_s = match this_prematurity {
            // Full compensatory pause: the ectopic and its cycle span two normal cycles.
            Some(f) => c0 * (2.0 - f),
            None => c0 * (1.0 + self.cfg.hr_variability * gauss(&mut self.rng)),
        }
        .clamp(CYCLE_MIN_S, CYCLE_MAX_S);
        if !ectopic && self.rng.gen_range(0.0..1.0) < self.cfg.ectopic_rate {
            let f = self.rng.gen_range(0.55..0.75);
            cycle_s = (c0 * f).max(CYCLE_MIN_S);
            self.pending_ectopic = Some(f);
        }

        // FT from the target FTc by Bazett on the cycle the heart is filling for.
        let filling_cycle_s = match this_prematurity {
            Some(f) => c0 * f,
            None => c0,
        };
        let mut ft_s = tg.ftc_ms / 1000.0
            * filling_cycle_s.sqrt()
            * (1.0 + self.cfg.ft_variability * gauss(&mut self.rng));
        ft_s = ft_s.min(0.65 * cycle_s).min(cycle_s - 0.06).max(0.08);

        let resp = 1.0
            + self.cfg.svv_pct / 200.0
                * (std::f64::consts::TAU * onset_s * self.cfg.breathing_rate_per_min / 60.0
                    + self.resp_phase0)
                    .sin();
        let mut sd_factor = resp * (1.0 + self.cfg.sd_variability * gauss(&mut self.rng));
        if ectopic {
            sd_factor *= self.rng.gen_range(0.4..0.6);
        } else if self.post_ectopic {
            // Post-extrasystolic potentiation.
            sd_factor *= 1.1;
        }
        self.post_ectopic = ectopic;
        let sd_cm = tg.sd_cm * sd_factor;

        let peak_frac = (self.cfg.peak_frac + self.rng.gen_range(-0.03..0.03)).clamp(0.15, 0.5);
        let mut shape = BeatShape {
            peak_frac,
            rise_exp: RISE_EXP,
            fall_exp: FALL_EXP_DEFAULT * (1.0 + self.rng.gen_range(-0.05..0.05)),
        };
        if let Some(pv_target) = tg.pv_cm_s {
            // Fit the fall exponent so that SD, FT and PV all hold.
            let pv_beat = pv_target * sd_factor;
            let area_needed = sd_cm / (pv_beat * ft_s);
            let rise_area = peak_frac * RISE_EXP / (RISE_EXP + 1.0);
            let a = ((area_needed - rise_area) / (1.0 - peak_frac)).clamp(0.01, 0.99);
            shape.fall_exp = (a / (1.0 - a)).clamp(FALL_EXP_MIN, FALL_EXP_MAX);
            if shape.fall_exp <= FALL_EXP_MIN {
                // A peakier beat than a straight fall allows: straighten the rise too.
                let fall_area = (1.0 - peak_frac) * FALL_EXP_MIN / (FALL_EXP_MIN + 1.0);
                let r = ((area_needed - fall_area) / peak_frac).clamp(0.01, 0.99);
                shape.rise_exp = (r / (1.0 - r)).clamp(1.0, RISE_EXP);
            }
        }
        let mut pv_cm_s = sd_cm / (ft_s * shape.area());
        if pv_cm_s > self.max_velocity_cm_s && !self.cfg.allow_aliasing {
            // Keep the edge below Nyquist; the truth follows (SD = PV·FT·area).
            pv_cm_s = self.max_velocity_cm_s;
        }

        let next_onset_s = onset_s + cycle_s;
        let end_s = onset_s + ft_s;
        let mut reverse = None;
        let mut after_s = end_s;
        if self.cfg.reverse_flow_cm_s > 0.0
            && next_onset_s - end_s > REVERSE_DELAY_S + REVERSE_DURATION_S + 0.05
        {
            reverse = Some(FlowBump {
                start_s: end_s + REVERSE_DELAY_S,
                duration_s: REVERSE_DURATION_S,
                peak_cm_s: -self.cfg.reverse_flow_cm_s,
            });
            after_s = end_s + REVERSE_DELAY_S + REVERSE_DURATION_S;
        }
        let mut diastolic = None;
        let d_start = after_s + DIASTOLIC_DELAY_S;
        let d_dur = next_onset_s - DIASTOLIC_GUARD_S - d_start;
        if self.cfg.diastolic_flow_cm_s > 0.0 && d_dur >= DIASTOLIC_MIN_S {
            diastolic = Some(FlowBump {
                start_s: d_start,
                duration_s: d_dur,
                peak_cm_s: self.cfg.diastolic_flow_cm_s,
            });
        }

        let beat = BeatPlan {
            index: self.next_index,
            onset_s,
            ft_s,
            next_onset_s,
            pv_cm_s,
            shape,
            ectopic,
            reverse,
            diastolic,
        };
        self.next_index += 1;
        self.next_onset_s = next_onset_s;
        beat
    }
}

/// The planned beats around the present, generated lazily and pruned behind:
/// evaluates the exact envelope at any recent or coming time.
#[derive(Debug, Clone)]
pub struct BeatTimeline {
    physiology: Physiology,
    phantom_cm_s: Option<f64>,
    beats: VecDeque<BeatPlan>,
    fresh: Vec<BeatPlan>,
    cursor: usize,
    retain_s: f64,
    first_onset_s: f64,
}

impl BeatTimeline {
    /// A timeline for this configuration; keeps `retain_s` seconds of past beats.
    pub fn new(cfg: &SimConfig, retain_s: f64) -> Self {
        let physiology = Physiology::new(cfg);
        let first_onset_s = physiology.next_onset_s;
        Self {
            physiology,
            phantom_cm_s: cfg.phantom_cm_s,
            beats: VecDeque::new(),
            fresh: Vec::new(),
            cursor: 0,
            retain_s,
            first_onset_s,
        }
    }

    /// Plans beats until the one containing `t_s` is known (no-op in phantom mode).
    pub fn ensure_until(&mut self, t_s: f64) {
        if self.phantom_cm_s.is_some() {
            return;
        }
        while self.beats.back().is_none_or(|b| b.next_onset_s <= t_s) {
            let b = self.physiology.next_beat();
            self.fresh.push(b.clone());
            self.beats.push_back(b);
        }
    }

    /// Beats planned since the last call, in order.
    pub fn take_fresh(&mut self) -> Vec<BeatPlan> {
        std::mem::take(&mut self.fresh)
    }

    /// Forgets beats that ended more than `retain_s` before `now_s`.
    pub fn prune(&mut self, now_s: f64) {
        while self.beats.len() > 1
            && self
                .beats
                .front()
                .is_some_and(|b| b.next_onset_s < now_s - self.retain_s)
        {
            self.beats.pop_front();
            self.cursor = self.cursor.saturating_sub(1);
        }
    }

    /// The retained beat whose cycle contains `t_s`, if any.
    fn beat_at(&mut self, t_s: f64) -> Option<&BeatPlan> {
        if self.cursor >= self.beats.len() {
            self.cursor = self.beats.len().saturating_sub(1);
        }
        let b = self.beats.get(self.cursor)?;
        if !(b.onset_s <= t_s && t_s < b.next_onset_s) {
            // Non-monotone or far query: search.
            let i = self.beats.partition_point(|b| b.onset_s <= t_s);
            if i == 0 {
                return None;
            }
            self.cursor = i - 1;
        }
        self.beats
            .get(self.cursor)
            .filter(|b| b.onset_s <= t_s && t_s < b.next_onset_s)
    }

    /// Signed blood velocity edge at `t_s` (systole, reverse dip, diastolic flow), cm/s.
    /// Plans beats as needed. `None` only for times already pruned.
    pub fn signed_velocity_cm_s(&mut self, t_s: f64) -> Option<f64> {
        if let Some(v) = self.phantom_cm_s {
            return Some(v);
        }
        if t_s < self.first_onset_s {
            return Some(0.0);
        }
        self.ensure_until(t_s);
        self.beat_at(t_s).map(|b| b.signed_velocity_cm_s(t_s))
    }

    /// The true maximum-velocity envelope of forward flow at `t_s`, cm/s (≥ 0).
    pub fn true_velocity_cm_s(&mut self, t_s: f64) -> Option<f64> {
        self.signed_velocity_cm_s(t_s).map(|v| v.max(0.0))
    }

    /// Systolic part only (the beats' v(t)), cm/s.
    pub fn systolic_velocity_cm_s(&mut self, t_s: f64) -> Option<f64> {
        if let Some(v) = self.phantom_cm_s {
            return Some(v);
        }
        if t_s < self.first_onset_s {
            return Some(0.0);
        }
        self.ensure_until(t_s);
        self.beat_at(t_s).map(|b| b.systolic_velocity_cm_s(t_s))
    }

    /// Signed velocity (as [`signed_velocity_cm_s`](Self::signed_velocity_cm_s))
    /// and cardiac phase (as [`cardiac_phase`](Self::cardiac_phase)) with one lookup.
    pub fn velocity_and_phase(&mut self, t_s: f64) -> (f64, f64) {
        if let Some(v) = self.phantom_cm_s {
            return (v, 0.0);
        }
        if t_s < self.first_onset_s {
            return (0.0, 0.0);
        }
        self.ensure_until(t_s);
        self.beat_at(t_s).map_or((0.0, 0.0), |b| {
            (b.signed_velocity_cm_s(t_s), (t_s - b.onset_s) / b.cycle_s())
        })
    }

    /// Fraction of the current cardiac cycle elapsed at `t_s` (0 before the first beat).
    pub fn cardiac_phase(&mut self, t_s: f64) -> f64 {
        if self.phantom_cm_s.is_some() || t_s < self.first_onset_s {
            return 0.0;
        }
        self.ensure_until(t_s);
        self.beat_at(t_s)
            .map_or(0.0, |b| (t_s - b.onset_s) / b.cycle_s())
    }

    /// The retained beats (past `retain_s` and the planned ones), in order.
    pub fn beats(&self) -> impl Iterator<Item = &BeatPlan> {
        self.beats.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn integrate(b: &BeatPlan, n: usize) -> f64 {
        // Midpoint rule over the systole.
        let dt = b.ft_s / n as f64;
        (0..n)
            .map(|i| b.systolic_velocity_cm_s(b.onset_s + (i as f64 + 0.5) * dt) * dt)
            .sum()
    }

    #[test]
    fn stroke_distance_is_the_integral_of_the_envelope() {
        let mut p = Physiology::new(&SimConfig::default());
        for _ in 0..50 {
            let b = p.next_beat();
            let num = integrate(&b, 20_000);
            assert!(
                (num - b.sd_cm()).abs() < 1e-4 * b.sd_cm(),
                "{num} vs {}",
                b.sd_cm()
            );
        }
    }

    #[test]
    fn envelope_is_zero_outside_systole_and_peaks_at_peak_time() {
        let mut p = Physiology::new(&SimConfig::default());
        for _ in 0..20 {
            let b = p.next_beat();
            assert_eq!(b.systolic_velocity_cm_s(b.onset_s), 0.0);
            assert_eq!(b.systolic_velocity_cm_s(b.end_s()), 0.0);
            assert_eq!(b.systolic_velocity_cm_s(b.onset_s - 1e-6), 0.0);
            assert_eq!(b.systolic_velocity_cm_s(b.end_s() + 1e-6), 0.0);
            assert!(b.systolic_velocity_cm_s(b.onset_s + 1e-6) > 0.0);
            assert!(b.systolic_velocity_cm_s(b.end_s() - 1e-6) > 0.0);
            assert!((b.systolic_velocity_cm_s(b.peak_s()) - b.pv_cm_s).abs() < 1e-9);
            // Nothing in the cycle exceeds the peak.
            for i in 0..1000 {
                let t = b.onset_s + b.cycle_s() * i as f64 / 1000.0;
                assert!(b.signed_velocity_cm_s(t) <= b.pv_cm_s + 1e-9);
            }
            let xp = b.shape.peak_frac;
            assert!(
                (0.25 - 1e-9..=0.35 + 1e-9).contains(&xp),
                "peak at {xp} of FT"
            );
        }
    }

    #[test]
    fn diastolic_flow_starts_after_systole_and_ends_before_next_onset() {
        let cfg = SimConfig {
            diastolic_flow_cm_s: 5.0,
            reverse_flow_cm_s: 10.0,
            ..SimConfig::default()
        };
        let mut p = Physiology::new(&cfg);
        let mut seen_diastolic = 0;
        for _ in 0..40 {
            let b = p.next_beat();
            for bump in [b.reverse, b.diastolic].into_iter().flatten() {
                assert!(bump.start_s > b.end_s());
                assert!(bump.start_s + bump.duration_s < b.next_onset_s);
            }
            seen_diastolic += usize::from(b.diastolic.is_some());
        }
        assert!(seen_diastolic > 30);
    }

    #[test]
    fn imposed_peak_velocity_is_met_when_the_shape_allows_it() {
        let cfg = SimConfig {
            pv_cm_s: Some(95.0),
            svv_pct: 0.0,
            sd_variability: 0.0,
            ..SimConfig::default()
        };
        let mut p = Physiology::new(&cfg);
        for _ in 0..20 {
            let b = p.next_beat();
            assert!((b.pv_cm_s - 95.0).abs() < 1e-6, "pv {}", b.pv_cm_s);
            let sd_target = cfg.sd_cm_from_sv_ml(cfg.sv_ml);
            assert!((b.sd_cm() - sd_target).abs() < 1e-9);
        }
    }

    #[test]
    fn ftc_stays_near_target_as_heart_rate_changes() {
        for hr in [40.0, 60.0, 100.0, 140.0, 180.0] {
            let cfg = SimConfig {
                hr_bpm: hr,
                hr_variability: 0.0,
                ft_variability: 0.0,
                ..SimConfig::default()
            };
            let mut p = Physiology::new(&cfg);
            let b = p.next_beat();
            let ftc = b.ft_s * 1000.0 / b.cycle_s().sqrt();
            assert!((ftc - 350.0).abs() < 1e-6, "hr {hr}: ftc {ftc}");
            assert!((60.0 / b.cycle_s() - hr).abs() < 1e-9);
        }
    }

    #[test]
    fn stroke_distance_varies_with_breathing_by_the_configured_svv() {
        let cfg = SimConfig {
            svv_pct: 20.0,
            breathing_rate_per_min: 12.0,
            hr_variability: 0.0,
            sd_variability: 0.0,
            ..SimConfig::default()
        };
        let mut p = Physiology::new(&cfg);
        let beats: Vec<_> = (0..75).map(|_| p.next_beat()).collect();
        let sd: Vec<f64> = beats.iter().map(BeatPlan::sd_cm).collect();
        let mean = sd.iter().sum::<f64>() / sd.len() as f64;
        let (lo, hi) = sd
            .iter()
            .fold((f64::MAX, f64::MIN), |(a, b), &x| (a.min(x), b.max(x)));
        // Beats sample the 5 s breath 6.25 times, so the extremes are slightly inside ±10%.
        let svv = 100.0 * (hi - lo) / mean;
        assert!((18.0..=20.5).contains(&svv), "SVV {svv:.1}%");
        // No beat departs from the target by more than SVV/2.
        let target = cfg.sd_cm_from_sv_ml(cfg.sv_ml);
        for b in &beats {
            let rel = (b.sd_cm() / target - 1.0) / 0.1;
            assert!(rel.abs() <= 1.0 + 1e-9, "{rel}");
        }
        // And it follows the breath: the SD series has a 10% component at
        // 12/min and next to none at an unrelated rate.
        let amplitude = |per_min: f64| {
            let w = std::f64::consts::TAU * per_min / 60.0;
            let (mut re, mut im) = (0.0, 0.0);
            for b in &beats {
                let x = b.sd_cm() / target - 1.0;
                re += x * (w * b.onset_s).cos();
                im += x * (w * b.onset_s).sin();
            }
            2.0 * (re * re + im * im).sqrt() / beats.len() as f64
        };
        let at_breathing = amplitude(12.0);
        assert!((at_breathing - 0.1).abs() < 0.01, "{at_breathing}");
        assert!(amplitude(17.0) < 0.02, "{}", amplitude(17.0));
    }

    #[test]
    fn schedule_steps_change_the_targets() {
        let cfg = SimConfig {
            schedule: vec![crate::config::ScheduleSegment {
                start_s: 10.0,
                hr_bpm: Some(120.0),
                sv_ml: Some(50.0),
                ..Default::default()
            }],
            ..SimConfig::default()
        };
        let p = Physiology::new(&cfg);
        assert_eq!(p.targets_at(9.99).hr_bpm, 75.0);
        assert_eq!(p.targets_at(10.0).hr_bpm, 120.0);
        assert!((p.targets_at(10.0).sd_cm - cfg.sd_cm_from_sv_ml(50.0)).abs() < 1e-12);
        assert_eq!(p.targets_at(10.0).ftc_ms, 350.0);
    }

    #[test]
    fn ectopic_beats_are_premature_smaller_and_followed_by_a_pause() {
        let cfg = SimConfig {
            ectopic_rate: 0.2,
            ..SimConfig::default()
        };
        let mut p = Physiology::new(&cfg);
        let beats: Vec<_> = (0..300).map(|_| p.next_beat()).collect();
        let mut n = 0;
        for w in beats.windows(2) {
            if w[1].ectopic {
                n += 1;
                assert!(!w[0].ectopic);
                assert!(w[0].cycle_s() < 0.8 * 0.8, "premature: {}", w[0].cycle_s());
                assert!(
                    w[1].cycle_s() > 0.8 * 1.2,
                    "compensatory pause: {}",
                    w[1].cycle_s()
                );
                assert!(w[1].sd_cm() < 0.75 * w[0].sd_cm());
            }
        }
        assert!((30..=90).contains(&n), "{n} ectopics in 300 beats");
    }
}
