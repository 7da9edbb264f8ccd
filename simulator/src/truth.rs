//! Ground truth: the exact beats (analysis-output.md field names) and the
//! impairment intervals the stream really contains.

use serde::{Deserialize, Serialize};

use crate::physiology::{BeatPlan, BeatShape};

/// One true cardiac cycle. Field names and definitions are those of the
/// `beat` line of analysis-output.md (FTc by Bazett); the extra fields
/// (`ectopic`, the shape parameters) follow them, so the systolic envelope
/// can be re-evaluated exactly from a `.truth.jsonl` line alone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TruthBeat {
    /// 0, 1, 2, … in time order (counts every planned beat of the stream).
    pub index: u64,
    /// Where v(t) leaves zero, s.
    pub onset_s: f64,
    /// Time of peak velocity, s.
    pub peak_s: f64,
    /// Where v(t) returns to zero, s.
    pub end_s: f64,
    /// Onset of the next beat, s.
    pub next_onset_s: f64,
    /// `(end_s − onset_s)·1000`.
    pub ft_ms: f64,
    /// `next_onset_s − onset_s`.
    pub cycle_s: f64,
    /// `60 / cycle_s`.
    pub hr_bpm: f64,
    /// Bazett: `ft_ms / √cycle_s`.
    pub ftc_ms: f64,
    /// Exact ∫v dt over systole, cm.
    pub sd_cm: f64,
    /// Peak velocity, cm/s.
    pub pv_cm_s: f64,
    /// `pv_cm_s / (peak_s − onset_s)`, cm/s².
    pub ma_cm_s2: f64,
    /// `sd_cm · hr_bpm`, cm/min.
    pub md_cm_min: f64,
    /// Stroke volume under the simulator's area model (`SimConfig::sv_ml_from_sd_cm`), ml.
    pub sv_ml: f64,
    /// `sv_ml · hr_bpm / 1000`, l/min.
    pub co_l_min: f64,
    /// 1 for a clean beat, 0 for one an analyser must reject.
    pub quality: f64,
    /// False when the cycle overlaps missing samples or its systole overlaps
    /// diathermy or clipped blocks: no analyser may accept such a beat.
    pub accepted: bool,
    /// `"gap"`, `"interference"` or `"clipped"` when not accepted, else null.
    pub reject_reason: Option<String>,
    /// A premature (ectopic) beat.
    pub ectopic: bool,
    /// Time to peak as a fraction of FT.
    pub peak_frac: f64,
    /// Rise exponent of the systolic shape (physiology.rs).
    pub rise_exp: f64,
    /// Fall exponent of the systolic shape (physiology.rs).
    pub fall_exp: f64,
}

impl TruthBeat {
    /// The truth of a planned beat; `sv_ml_per_cm` turns SD into SV.
    pub fn from_plan(plan: &BeatPlan, sv_ml_per_cm: f64, reject_reason: Option<&str>) -> Self {
        let cycle_s = plan.cycle_s();
        let hr_bpm = 60.0 / cycle_s;
        let ft_ms = plan.ft_s * 1000.0;
        let sd_cm = plan.sd_cm();
        let sv_ml = sd_cm * sv_ml_per_cm;
        let peak_s = plan.peak_s();
        Self {
            index: plan.index,
            onset_s: plan.onset_s,
            peak_s,
            end_s: plan.end_s(),
            next_onset_s: plan.next_onset_s,
            ft_ms,
            cycle_s,
            hr_bpm,
            ftc_ms: ft_ms / cycle_s.sqrt(),
            sd_cm,
            pv_cm_s: plan.pv_cm_s,
            ma_cm_s2: plan.pv_cm_s / (peak_s - plan.onset_s),
            md_cm_min: sd_cm * hr_bpm,
            sv_ml,
            co_l_min: sv_ml * hr_bpm / 1000.0,
            quality: if reject_reason.is_some() { 0.0 } else { 1.0 },
            accepted: reject_reason.is_none(),
            reject_reason: reject_reason.map(str::to_string),
            ectopic: plan.ectopic,
            peak_frac: plan.shape.peak_frac,
            rise_exp: plan.shape.rise_exp,
            fall_exp: plan.shape.fall_exp,
        }
    }

    /// The exact systolic envelope of this beat at `t_s` (0 outside its systole), cm/s.
    pub fn velocity_cm_s(&self, t_s: f64) -> f64 {
        let shape = BeatShape {
            peak_frac: self.peak_frac,
            rise_exp: self.rise_exp,
            fall_exp: self.fall_exp,
        };
        if t_s <= self.onset_s || t_s >= self.end_s {
            return 0.0;
        }
        self.pv_cm_s * shape.value((t_s - self.onset_s) / (self.end_s - self.onset_s))
    }
}

/// What kind of impairment an interval holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImpairmentKind {
    /// Diathermy noise (including its 20 ms ramps).
    Diathermy,
    /// IQ blocks not sent: `first_sample` jumps over this span.
    Gap,
    /// IQ blocks sent with the clipped flag (bit 0) set.
    Clipped,
    /// Probe unplugged: no IQ blocks, EVENT 3 at the start and 4 at the end.
    Unplugged,
}

/// An impairment the stream really contains, `[start_s, end_s)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Impairment {
    /// What.
    pub kind: ImpairmentKind,
    /// Start, s (for gaps and clipping: the first affected block's first sample).
    pub start_s: f64,
    /// End, s (for gaps and clipping: one past the last affected sample).
    pub end_s: f64,
}
