//! Scoring detected beats against ground truth (simulator or reference
//! signals): beat matching, sensitivity, PPV, error statistics, and the
//! count of accepted beats inside impairments (which must be zero).
//!
//! Matching: each truth beat is paired with the nearest unpaired detected
//! beat whose onset is within `match_tolerance_s` (±50 ms by default), in
//! time order.

use crate::types::Beat;

/// A velocity profile of the accuracy grid (`odm validate`,
/// docs/validation.md), the virtual probe's settings for it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GridProfile {
    /// The name the reports give it.
    pub name: &'static str,
    /// Velocity profile exponent n (2 parabolic; larger is blunter).
    pub profile_exponent: f64,
    /// Time to peak velocity as a fraction of the flow time.
    pub peak_frac: f64,
    /// Corrected flow time, ms.
    pub ftc_ms: f64,
    /// Stroke volume, ml.
    pub sv_ml: f64,
}

impl GridProfile {
    /// Whether the profile is blunt (n ≥ 6), the aorta's edge-peaked
    /// spectrum, rather than the parabolic one's flat spectrum.
    pub fn is_blunt(&self) -> bool {
        self.profile_exponent >= 6.0
    }
}

/// The grid's three velocity profiles: blunt, blunter, parabolic.
pub const GRID_PROFILES: [GridProfile; 3] = [
    GridProfile {
        name: "blunt (n=6), peak 30%, FTc 350, SV 70",
        profile_exponent: 6.0,
        peak_frac: 0.3,
        ftc_ms: 350.0,
        sv_ml: 70.0,
    },
    GridProfile {
        name: "blunter (n=9), peak 25%, FTc 330, SV 95",
        profile_exponent: 9.0,
        peak_frac: 0.25,
        ftc_ms: 330.0,
        sv_ml: 95.0,
    },
    GridProfile {
        name: "parabolic (n=2), peak 38%, FTc 320, SV 50",
        profile_exponent: 2.0,
        peak_frac: 0.38,
        ftc_ms: 320.0,
        sv_ml: 50.0,
    },
];

/// A ground-truth beat (the fields of analysis-output.md that are scored).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RefBeat {
    /// Onset, s.
    pub onset_s: f64,
    /// Peak time, s.
    pub peak_s: f64,
    /// End, s.
    pub end_s: f64,
    /// Next onset, s.
    pub next_onset_s: f64,
    /// Stroke distance, cm.
    pub sd_cm: f64,
    /// Peak velocity, cm/s.
    pub pv_cm_s: f64,
    /// Heart rate, 1/min.
    pub hr_bpm: f64,
}

/// Summary statistics of one error quantity.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ErrorStats {
    /// Number of values.
    pub n: usize,
    /// Median of the signed error (bias).
    pub median: f64,
    /// Median of the absolute error.
    pub median_abs: f64,
    /// 95th percentile of the absolute error.
    pub p95_abs: f64,
}

impl ErrorStats {
    /// Statistics of `errors` (sorted in place).
    pub fn from_errors(errors: &mut [f64]) -> Self {
        if errors.is_empty() {
            return Self::default();
        }
        errors.sort_by(f64::total_cmp);
        let median = percentile(errors, 0.5);
        let abs = sorted_abs(errors);
        Self {
            n: errors.len(),
            median,
            median_abs: percentile(&abs, 0.5),
            p95_abs: percentile(&abs, 0.95),
        }
    }
}

/// The absolute per-beat errors behind a run's goal statistics, each
/// ascending: what a confidence interval of a median or p95 is read from
/// ([`quantile_ci`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AbsErrors {
    /// |onset error|, ms.
    pub onset_ms: Vec<f64>,
    /// |flow-time error|, ms.
    pub ft_ms: Vec<f64>,
    /// |stroke-distance error|, %.
    pub sd_pct: Vec<f64>,
    /// |peak-velocity error|, %.
    pub pv_pct: Vec<f64>,
    /// |heart-rate error|, 1/min.
    pub hr_bpm: Vec<f64>,
}

impl AbsErrors {
    /// Appends `other`'s errors to these, keeping each list ascending (the
    /// beats of several seeds pooled).
    pub fn extend(&mut self, other: &AbsErrors) {
        for (mine, theirs) in [
            (&mut self.onset_ms, &other.onset_ms),
            (&mut self.ft_ms, &other.ft_ms),
            (&mut self.sd_pct, &other.sd_pct),
            (&mut self.pv_pct, &other.pv_pct),
            (&mut self.hr_bpm, &other.hr_bpm),
        ] {
            mine.extend_from_slice(theirs);
            mine.sort_by(f64::total_cmp);
        }
    }
}

fn sorted_abs(errors: &[f64]) -> Vec<f64> {
    let mut abs: Vec<f64> = errors.iter().map(|e| e.abs()).collect();
    abs.sort_by(f64::total_cmp);
    abs
}

/// Distribution-free confidence interval of the `q`-quantile of the
/// population `sorted` (ascending) was drawn from, at confidence `level`
/// (e.g. 0.95): the order statistics X₍r₎ and X₍s₎ (1-based) with r the
/// largest rank whose P(B < r) ≤ (1 − level)/2 and s the smallest whose
/// P(B ≥ s) ≤ (1 − level)/2, B ~ Binomial(n, q) the count of values under
/// the quantile; the coverage P(r ≤ B < s) is then at least `level` (exact
/// for independent values, whatever their distribution; Conover, Practical
/// Nonparametric Statistics, §3.2). None when `n` is too small for one
/// side (a two-sided 95 % interval of a p95 needs at least 72 values, of
/// a median at least 6).
pub fn quantile_ci(sorted: &[f64], q: f64, level: f64) -> Option<(f64, f64)> {
    let n = sorted.len();
    if n == 0 || !(0.0 < q && q < 1.0) || !(0.0 < level && level < 1.0) {
        return None;
    }
    let tail = (1.0 - level) / 2.0;
    // cdf[k] = P(B ≤ k).
    let cdf: Vec<f64> = binomial_pmf(n, q)
        .scan(0.0, |acc, p| {
            *acc += p;
            Some(f64::min(*acc, 1.0))
        })
        .collect();
    // r: the largest r ≥ 1 with P(B ≤ r − 1) ≤ tail.
    let r = (1..=n).take_while(|&r| cdf[r - 1] <= tail).last()?;
    // s: the smallest s ≤ n with P(B ≥ s) = 1 − P(B ≤ s − 1) ≤ tail.
    let s = (1..=n).find(|&s| 1.0 - cdf[s - 1] <= tail)?;
    Some((sorted[r - 1], sorted[s - 1]))
}

/// P(B = k) for k = 0 … n, B ~ Binomial(n, p), 0 < p < 1; computed in log
/// space (pⁿ underflows for a p95 of a few hundred values).
fn binomial_pmf(n: usize, p: f64) -> impl Iterator<Item = f64> {
    let (lp, lq) = (p.ln(), (1.0 - p).ln());
    (0..=n).scan(n as f64 * lq, move |log_pmf, k| {
        if k > 0 {
            *log_pmf += ((n - k + 1) as f64 / k as f64).ln() + lp - lq;
        }
        Some(log_pmf.exp())
    })
}

/// Lower end of the two-sided Clopper–Pearson interval, at confidence
/// `level` (e.g. 0.95), of a proportion seen as `successes` of `trials`:
/// the p at which P(X ≥ successes) = (1 − level)/2 for X ~ Binomial(trials,
/// p) (Clopper & Pearson, Biometrika 1934). With every trial a success it
/// is ((1 − level)/2)^(1/trials). 0 with no success, NaN with no trial.
pub fn proportion_lower_bound(successes: usize, trials: usize, level: f64) -> f64 {
    if trials == 0 || successes > trials {
        return f64::NAN;
    }
    if successes == 0 {
        return 0.0;
    }
    let tail = (1.0 - level) / 2.0;
    // P(X ≥ successes) rises with p: bisect.
    let at_least = |p: f64| -> f64 { binomial_pmf(trials, p).skip(successes).sum() };
    let (mut lo, mut hi) = (0.0_f64, 1.0_f64);
    for _ in 0..60 {
        let mid = 0.5 * (lo + hi);
        if at_least(mid) < tail {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// Linear-interpolated percentile of sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let x = p.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let i = x.floor() as usize;
    let j = (i + 1).min(sorted.len() - 1);
    sorted[i] + (x - i as f64) * (sorted[j] - sorted[i])
}

/// The score of one run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Score {
    /// Truth beats eligible for sensitivity (clean, inside the analysed span).
    pub truth_eligible: usize,
    /// Of those, matched by a detected beat.
    pub truth_matched: usize,
    /// Detected beats outside impairments (for PPV).
    pub detected_clean: usize,
    /// Of those, matched to a truth beat.
    pub detected_matched: usize,
    /// Detected beats that were accepted.
    pub accepted: usize,
    /// Accepted beats whose cycle overlaps an impairment (must be 0).
    pub accepted_in_impairment: usize,
    /// Onset error (detected − truth), ms.
    pub onset_ms: ErrorStats,
    /// End error, ms.
    pub end_ms: ErrorStats,
    /// Flow-time error, ms.
    pub ft_ms: ErrorStats,
    /// Stroke-distance error, %.
    pub sd_pct: ErrorStats,
    /// Peak-velocity error, %.
    pub pv_pct: ErrorStats,
    /// Mean-acceleration error, % (MA = PV / (peak − onset); no goal).
    pub ma_pct: ErrorStats,
    /// Heart-rate error, 1/min.
    pub hr_bpm: ErrorStats,
    /// Error of the heart rate the display shows, 1/min: the mean over
    /// [`crate::trend::DEFAULT_AVERAGE_BEATS`] consecutive accepted beats
    /// against the mean over the same truth beats, for every run of that
    /// many consecutive eligible truth beats all matched by accepted beats.
    pub hr_display_bpm: ErrorStats,
    /// The absolute errors behind `onset_ms`, `ft_ms`, `sd_pct`, `pv_pct`
    /// and `hr_bpm`, for confidence intervals.
    pub abs: AbsErrors,
}

impl Score {
    /// Matched / eligible truth beats.
    pub fn sensitivity(&self) -> f64 {
        self.truth_matched as f64 / self.truth_eligible.max(1) as f64
    }
    /// Matched / clean detected beats.
    pub fn ppv(&self) -> f64 {
        self.detected_matched as f64 / self.detected_clean.max(1) as f64
    }
}

fn overlaps(a0: f64, a1: f64, iv: &[(f64, f64)], margin_s: f64) -> bool {
    iv.iter()
        .any(|&(s, e)| a0 < e + margin_s && a1 > s - margin_s)
}

/// Scores `detected` against `truth`. `impairments` are `[start, end)`
/// intervals (diathermy, gaps, clipping, unplugged); `span_s` the analysed
/// stream's `[start, end]`. Truth beats within `margin_s` of an impairment or
/// of the span's ends are not eligible; a detected beat is "in an
/// impairment" when its own or its matched truth beat's cycle overlaps one.
pub fn score(
    truth: &[RefBeat],
    detected: &[Beat],
    impairments: &[(f64, f64)],
    span_s: (f64, f64),
    match_tolerance_s: f64,
) -> Score {
    let margin_s = 0.05;
    let mut s = Score::default();
    // Pair in time order: for each truth beat, nearest detected onset.
    let mut pair_of_det: Vec<Option<usize>> = vec![None; detected.len()];
    let mut pair_of_truth: Vec<Option<usize>> = vec![None; truth.len()];
    let mut j0 = 0;
    for (i, t) in truth.iter().enumerate() {
        while j0 < detected.len() && detected[j0].onset_s < t.onset_s - match_tolerance_s {
            j0 += 1;
        }
        let mut best: Option<(usize, f64)> = None;
        let mut j = j0;
        while j < detected.len() && detected[j].onset_s <= t.onset_s + match_tolerance_s {
            let d = (detected[j].onset_s - t.onset_s).abs();
            if pair_of_det[j].is_none() && best.is_none_or(|(_, bd)| d < bd) {
                best = Some((j, d));
            }
            j += 1;
        }
        if let Some((j, _)) = best {
            pair_of_det[j] = Some(i);
            pair_of_truth[i] = Some(j);
        }
    }
    let (mut onset, mut end, mut ft, mut sd, mut pv, mut hr) = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    let mut ma = Vec::new();
    // Per truth beat: (detected HR, true HR) when eligible and matched by an
    // accepted beat, for the display's rolling mean.
    let mut shown: Vec<Option<(f64, f64)>> = vec![None; truth.len()];
    for (i, t) in truth.iter().enumerate() {
        let eligible = t.onset_s >= span_s.0 + 0.5
            && t.next_onset_s <= span_s.1 - 0.5
            && !overlaps(t.onset_s, t.next_onset_s, impairments, margin_s);
        if !eligible {
            continue;
        }
        s.truth_eligible += 1;
        if let Some(j) = pair_of_truth[i] {
            s.truth_matched += 1;
            let d = &detected[j];
            onset.push((d.onset_s - t.onset_s) * 1000.0);
            end.push((d.end_s - t.end_s) * 1000.0);
            ft.push(d.ft_ms - (t.end_s - t.onset_s) * 1000.0);
            // Null (NaN) where samples are missing inside the systole.
            if d.sd_cm.is_finite() {
                sd.push(100.0 * (d.sd_cm - t.sd_cm) / t.sd_cm);
            }
            pv.push(100.0 * (d.pv_cm_s - t.pv_cm_s) / t.pv_cm_s);
            hr.push(d.hr_bpm - t.hr_bpm);
            let true_ma = t.pv_cm_s / (t.peak_s - t.onset_s);
            if let Some(m) = d.ma_cm_s2.filter(|m| m.is_finite())
                && true_ma.is_finite()
                && true_ma > 0.0
            {
                ma.push(100.0 * (m - true_ma) / true_ma);
            }
            if d.accepted {
                shown[i] = Some((d.hr_bpm, t.hr_bpm));
            }
        }
    }
    let n_avg = crate::trend::DEFAULT_AVERAGE_BEATS;
    let mut hr_display: Vec<f64> = shown
        .windows(n_avg)
        .filter_map(|w| {
            let (mut sd, mut st) = (0.0, 0.0);
            for &(d, t) in w.iter().flatten() {
                sd += d;
                st += t;
            }
            w.iter()
                .all(Option::is_some)
                .then(|| (sd - st) / n_avg as f64)
        })
        .collect();
    for (j, d) in detected.iter().enumerate() {
        let truth_cycle = pair_of_det[j].map(|i| (truth[i].onset_s, truth[i].next_onset_s));
        let in_imp = overlaps(d.onset_s, d.next_onset_s, impairments, 0.0)
            || truth_cycle.is_some_and(|(a, b)| overlaps(a, b, impairments, 0.0));
        if d.accepted {
            s.accepted += 1;
            if in_imp {
                s.accepted_in_impairment += 1;
            }
        }
        let clean = d.onset_s >= span_s.0 + 0.5
            && d.next_onset_s <= span_s.1 - 0.5
            && !overlaps(d.onset_s, d.next_onset_s, impairments, margin_s);
        if clean {
            s.detected_clean += 1;
            if pair_of_det[j].is_some() {
                s.detected_matched += 1;
            }
        }
    }
    s.abs = AbsErrors {
        onset_ms: sorted_abs(&onset),
        ft_ms: sorted_abs(&ft),
        sd_pct: sorted_abs(&sd),
        pv_pct: sorted_abs(&pv),
        hr_bpm: sorted_abs(&hr),
    };
    s.onset_ms = ErrorStats::from_errors(&mut onset);
    s.end_ms = ErrorStats::from_errors(&mut end);
    s.ft_ms = ErrorStats::from_errors(&mut ft);
    s.sd_pct = ErrorStats::from_errors(&mut sd);
    s.pv_pct = ErrorStats::from_errors(&mut pv);
    s.ma_pct = ErrorStats::from_errors(&mut ma);
    s.hr_bpm = ErrorStats::from_errors(&mut hr);
    s.hr_display_bpm = ErrorStats::from_errors(&mut hr_display);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(onset_s: f64, next_onset_s: f64, accepted: bool) -> Beat {
        Beat {
            index: 0,
            onset_s,
            peak_s: onset_s + 0.1,
            end_s: onset_s + 0.3,
            next_onset_s,
            ft_ms: 300.0,
            cycle_s: next_onset_s - onset_s,
            hr_bpm: 60.0 / (next_onset_s - onset_s),
            ftc_ms: 300.0,
            sd_cm: 10.0,
            pv_cm_s: 100.0,
            ma_cm_s2: None,
            md_cm_min: 0.0,
            sv_ml: None,
            sv_range_ml: None,
            co_l_min: None,
            quality: 1.0,
            accepted,
            reject_reason: None,
            irregular_rhythm: false,
            ft_low_flow: false,
            completed_by_sample: 0,
        }
    }

    fn truth(onset_s: f64) -> RefBeat {
        RefBeat {
            onset_s,
            peak_s: onset_s + 0.1,
            end_s: onset_s + 0.3,
            next_onset_s: onset_s + 1.0,
            sd_cm: 10.0,
            pv_cm_s: 100.0,
            hr_bpm: 60.0,
        }
    }

    #[test]
    fn quantile_intervals_are_the_tabled_order_statistics() {
        // Distribution-free 95 % intervals of a median (Conover's table):
        // ranks 2 and 9 of 10, 40 and 61 of 100.
        let ranks = |n: usize| (1..=n).map(|r| r as f64).collect::<Vec<_>>();
        assert_eq!(quantile_ci(&ranks(10), 0.5, 0.95), Some((2.0, 9.0)));
        assert_eq!(quantile_ci(&ranks(100), 0.5, 0.95), Some((40.0, 61.0)));
        assert_eq!(quantile_ci(&ranks(5), 0.5, 0.95), None);
        // A p95 needs 0.95ⁿ ≤ 0.025 for its upper side: n ≥ 72.
        assert_eq!(quantile_ci(&ranks(71), 0.95, 0.95), None);
        assert!(quantile_ci(&ranks(72), 0.95, 0.95).is_some());
    }

    #[test]
    fn proportion_bounds_are_clopper_pearson() {
        // All successes: the closed form (α/2)^(1/n).
        let b = proportion_lower_bound(100, 100, 0.95);
        assert!((b - 0.025_f64.powf(0.01)).abs() < 1e-9, "{b}");
        // 95 of 100: the textbook interval's lower end, 0.8872.
        let b = proportion_lower_bound(95, 100, 0.95);
        assert!((b - 0.887_165).abs() < 1e-5, "{b}");
        assert_eq!(proportion_lower_bound(0, 10, 0.95), 0.0);
        assert!(proportion_lower_bound(1, 0, 0.95).is_nan());
        // 2 000 of 2 000 beats: 0.9982, so a pooled sensitivity of 1 over
        // that many beats shows ≥ 0.995 with 97.5 % confidence.
        assert!(proportion_lower_bound(2000, 2000, 0.95) > 0.998);
    }

    #[test]
    fn a_p95_interval_covers_the_true_p95_as_often_as_it_says() {
        // Uniform(0, 1) samples of 150, whose true p95 is 0.95: over 2000
        // draws the interval holds it in at least 95 % of them (less 3
        // Monte Carlo standard errors), and not in all (it is not vacuous).
        let mut u = crate::testing::uniform(42);
        let trials = 2000;
        let mut covered = 0;
        for _ in 0..trials {
            let mut v: Vec<f64> = (0..150).map(|_| u()).collect();
            v.sort_by(f64::total_cmp);
            let (lo, hi) = quantile_ci(&v, 0.95, 0.95).expect("150 values");
            covered += usize::from(lo <= 0.95 && 0.95 <= hi);
        }
        let rate = covered as f64 / trials as f64;
        assert!(
            rate >= 0.95 - 3.0 * (0.95_f64 * 0.05 / 2000.0).sqrt(),
            "{rate}"
        );
        assert!(rate < 0.995, "{rate}");
    }

    #[test]
    fn the_displayed_heart_rate_is_scored_over_the_display_average() {
        // 16 beats at 120/min; detected onsets alternately 2 ms late and
        // early, so every cycle is 4 ms long or short: each beat's HR is
        // off by about 1/min, alternately, and the mean of ten by
        // (60/0.496 + 60/0.504)/2 − 120 ≈ 0.0077/min.
        let t: Vec<RefBeat> = (0..16)
            .map(|i| {
                let o = 1.0 + 0.5 * f64::from(i);
                RefBeat {
                    next_onset_s: o + 0.5,
                    hr_bpm: 120.0,
                    ..truth(o)
                }
            })
            .collect();
        let err = |i: i32| if i % 2 == 0 { 0.002 } else { -0.002 };
        let d: Vec<Beat> = (0..16)
            .map(|i| {
                let o = 1.0 + 0.5 * f64::from(i);
                det(o + err(i), o + 0.5 + err(i + 1), true)
            })
            .collect();
        let s = score(&t, &d, &[], (0.0, 10.0), 0.05);
        assert!(s.hr_bpm.p95_abs > 0.9, "{:?}", s.hr_bpm);
        let want = (60.0 / 0.496 + 60.0 / 0.504) / 2.0 - 120.0;
        assert_eq!(
            s.hr_display_bpm.n,
            16 - crate::trend::DEFAULT_AVERAGE_BEATS + 1
        );
        assert!(
            (s.hr_display_bpm.p95_abs - want).abs() < 1e-9,
            "{:?}",
            s.hr_display_bpm
        );
        // A rejected beat breaks every window that holds it.
        let mut d2 = d.clone();
        d2[8].accepted = false;
        let s2 = score(&t, &d2, &[], (0.0, 10.0), 0.05);
        assert_eq!(s2.hr_display_bpm.n, 0);
    }

    #[test]
    fn counts_misses_false_beats_and_accepted_beats_in_impairments() {
        let t: Vec<RefBeat> = (1..9).map(|i| truth(i as f64)).collect();
        // Beat 3 missed, one false beat at 5.5, beat 6 off by 80 ms (a miss
        // and a false beat), beat 7 accepted inside a gap.
        let mut d = Vec::new();
        for i in 1..9 {
            let o = i as f64;
            match i {
                3 => {}
                6 => d.push(det(o + 0.08, o + 1.0, true)),
                _ => d.push(det(o + 0.002, o + 1.0, true)),
            }
        }
        d.push(det(5.5, 6.08, true));
        d.sort_by(|a, b| a.onset_s.total_cmp(&b.onset_s));
        let s = score(&t, &d, &[(7.5, 7.6)], (0.0, 10.0), 0.05);
        // Eligible: 1..=8 minus 7 (its cycle holds the impairment) = 7.
        assert_eq!(s.truth_eligible, 7);
        assert_eq!(s.truth_matched, 5);
        assert_eq!(s.accepted_in_impairment, 1);
        assert_eq!(s.detected_clean, 7);
        assert_eq!(s.detected_matched, 5);
        assert!((s.onset_ms.median - 2.0).abs() < 1e-9);
    }

    #[test]
    fn mean_acceleration_is_scored_against_pv_over_the_truth_rise() {
        // Truth: PV 100 cm/s reached 0.1 s after onset, MA 1000 cm/s².
        let t: Vec<RefBeat> = (1..6).map(|i| truth(i as f64)).collect();
        let mut d: Vec<Beat> = (1..6)
            .map(|i| det(i as f64, i as f64 + 1.0, true))
            .collect();
        // 1100, 950, 1000, a null and a NaN: the last two are not scored.
        for (b, ma) in d.iter_mut().zip([
            Some(1100.0),
            Some(950.0),
            Some(1000.0),
            None,
            Some(f64::NAN),
        ]) {
            b.ma_cm_s2 = ma;
        }
        let s = score(&t, &d, &[], (0.0, 10.0), 0.05);
        assert_eq!(s.ma_pct.n, 3);
        assert!((s.ma_pct.median - 0.0).abs() < 1e-9, "{:?}", s.ma_pct);
        assert!((s.ma_pct.median_abs - 5.0).abs() < 1e-9, "{:?}", s.ma_pct);
    }
}
