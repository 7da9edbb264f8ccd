//! Numbers for display: the rolling mean of the last N accepted beats, stroke
//! volume variation (SVV) over a sliding time window, and time-binned median
//! trends kept in a fixed-size ring for the 15/30/60-minute trend views.
//!
//! Everything here is sized once at construction and never allocates
//! afterwards; memory does not grow with the length of a case. Only accepted
//! beats (analysis-output.md, `accepted`) enter any average. Definitions and
//! window choices: `docs/haemodynamics.md`.

use crate::types::Beat;

/// A ring buffer of fixed capacity: pushing onto a full ring overwrites the
/// oldest element.
#[derive(Debug, Clone)]
pub struct Ring<T: Copy> {
    buf: Vec<T>,
    cap: usize,
    head: usize,
    len: usize,
}

impl<T: Copy> Ring<T> {
    /// An empty ring holding at most `capacity` elements (at least 1).
    pub fn new(capacity: usize) -> Self {
        let cap = capacity.max(1);
        Self {
            buf: Vec::with_capacity(cap),
            cap,
            head: 0,
            len: 0,
        }
    }

    /// Appends `x`; returns the element it overwrote when the ring was full.
    pub fn push(&mut self, x: T) -> Option<T> {
        if self.buf.len() < self.cap {
            self.buf.push(x);
            self.len += 1;
            return None;
        }
        let idx = (self.head + self.len) % self.cap;
        if self.len == self.cap {
            let old = std::mem::replace(&mut self.buf[self.head], x);
            self.head = (self.head + 1) % self.cap;
            Some(old)
        } else {
            self.buf[idx] = x;
            self.len += 1;
            None
        }
    }

    /// Removes and returns the oldest element.
    pub fn pop_front(&mut self) -> Option<T> {
        if self.len == 0 {
            return None;
        }
        let x = self.buf[self.head];
        self.head = (self.head + 1) % self.cap;
        self.len -= 1;
        Some(x)
    }

    /// The oldest element.
    pub fn front(&self) -> Option<&T> {
        (self.len > 0).then(|| &self.buf[self.head])
    }

    /// The newest element.
    pub fn back(&self) -> Option<&T> {
        (self.len > 0).then(|| &self.buf[(self.head + self.len - 1) % self.cap])
    }

    /// Elements oldest first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &T> + ExactSizeIterator + '_ {
        (0..self.len).map(move |i| &self.buf[(self.head + i) % self.cap])
    }

    /// Number of elements held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the ring is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Most elements it can hold.
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Empties the ring (keeps its storage).
    pub fn clear(&mut self) {
        self.head = 0;
        self.len = 0;
        self.buf.clear();
    }
}

/// The numbers of one beat that averages and trends use, copied out of a
/// [`Beat`] so rings hold plain values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BeatValues {
    /// Beat onset, s (the beat's time stamp for windows and bins).
    pub t_s: f64,
    /// Flow time, ms.
    pub ft_ms: f64,
    /// Corrected flow time, ms.
    pub ftc_ms: f64,
    /// Stroke distance, cm.
    pub sd_cm: f64,
    /// Peak velocity, cm/s.
    pub pv_cm_s: f64,
    /// Mean acceleration, cm/s².
    pub ma_cm_s2: Option<f64>,
    /// Heart rate, 1/min.
    pub hr_bpm: f64,
    /// Minute distance, cm/min.
    pub md_cm_min: f64,
    /// Stroke volume, ml.
    pub sv_ml: Option<f64>,
    /// Low and high end of the SV range, ml.
    pub sv_range_ml: Option<(f64, f64)>,
    /// Cardiac output, l/min.
    pub co_l_min: Option<f64>,
}

impl From<&Beat> for BeatValues {
    fn from(b: &Beat) -> Self {
        Self {
            t_s: b.onset_s,
            ft_ms: b.ft_ms,
            ftc_ms: b.ftc_ms,
            sd_cm: b.sd_cm,
            pv_cm_s: b.pv_cm_s,
            ma_cm_s2: b.ma_cm_s2,
            hr_bpm: b.hr_bpm,
            md_cm_min: b.md_cm_min,
            sv_ml: b.sv_ml,
            sv_range_ml: b.sv_range_ml,
            co_l_min: b.co_l_min,
        }
    }
}

/// Default number of accepted beats in the display average.
pub const DEFAULT_AVERAGE_BEATS: usize = 10;

/// Means over the last N accepted beats. Optional numbers are averaged over
/// the beats that have them, and are `None` when none has.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BeatAverages {
    /// Beats averaged.
    pub beats: usize,
    /// Time of the newest beat averaged, s.
    pub t_last_s: f64,
    /// Mean FT, ms.
    pub ft_ms: f64,
    /// Mean FTc, ms.
    pub ftc_ms: f64,
    /// Mean SD, cm.
    pub sd_cm: f64,
    /// Mean PV, cm/s.
    pub pv_cm_s: f64,
    /// Mean MA, cm/s².
    pub ma_cm_s2: Option<f64>,
    /// Heart rate over the time of the last N heartbeats (accepted beats
    /// and beats rejected as ectopic): 60 · beats / Σ cycle, 1/min.
    pub hr_bpm: f64,
    /// Minute distance over the same beats: 60 · Σ SD / Σ cycle, cm/min.
    pub md_cm_min: f64,
    /// Mean SV, ml.
    pub sv_ml: Option<f64>,
    /// Mean of the per-beat SV range ends, ml.
    pub sv_range_ml: Option<(f64, f64)>,
    /// Cardiac output over the same beats (those with SV): 60 · Σ SV /
    /// Σ cycle / 1000, l/min.
    pub co_l_min: Option<f64>,
}

#[derive(Default)]
struct OptMean {
    sum: f64,
    n: usize,
}

impl OptMean {
    fn add(&mut self, x: Option<f64>) {
        if let Some(x) = x.filter(|x| x.is_finite()) {
            self.sum += x;
            self.n += 1;
        }
    }
    fn mean(&self) -> Option<f64> {
        (self.n > 0).then(|| self.sum / self.n as f64)
    }
}

/// One heartbeat's share of the rates: its cycle, SD and SV.
#[derive(Debug, Clone, Copy, PartialEq)]
struct RhythmBeat {
    cycle_s: f64,
    sd_cm: f64,
    sv_ml: Option<f64>,
}

/// Rolling means of the last N accepted beats, for the numeric display.
///
/// Per-stroke numbers (FT, FTc, SD, PV, MA, SV) are means of the accepted
/// beats. Rates (HR, minute distance, CO) are taken over the time of the
/// last N heartbeats, premature beats rejected as `ectopic` included: they
/// are beats of the heart and eject blood. A mean of per-beat rates
/// counted each accepted beat's cycle alone, and in bigeminy every
/// accepted beat's cycle is the short coupling interval: the display read
/// 126/min for a heart beating 75 times a minute (an audit, 2026-12-04).
#[derive(Debug, Clone)]
pub struct RollingAverage {
    beats: Ring<BeatValues>,
    rhythm: Ring<RhythmBeat>,
}

impl RollingAverage {
    /// Averages the last `n` accepted beats (at least 1).
    pub fn new(n: usize) -> Self {
        Self {
            beats: Ring::new(n),
            rhythm: Ring::new(n),
        }
    }

    /// Takes a beat. Accepted beats enter every mean; beats rejected as
    /// ectopic only the rates; other rejected beats nothing. Returns
    /// whether it entered the per-stroke means.
    pub fn push(&mut self, beat: &Beat) -> bool {
        let heartbeat = beat.accepted || beat.reject_reason == Some(crate::RejectReason::Ectopic);
        if heartbeat && beat.cycle_s.is_finite() && beat.cycle_s > 0.0 && beat.sd_cm.is_finite() {
            self.rhythm.push(RhythmBeat {
                cycle_s: beat.cycle_s,
                sd_cm: beat.sd_cm,
                sv_ml: beat.sv_ml.filter(|v| v.is_finite()),
            });
        }
        if !beat.accepted {
            return false;
        }
        self.beats.push(BeatValues::from(beat));
        true
    }

    /// Forgets every beat (e.g. after the probe was repositioned).
    pub fn clear(&mut self) {
        self.beats.clear();
        self.rhythm.clear();
    }

    /// Beats currently averaged.
    pub fn len(&self) -> usize {
        self.beats.len()
    }

    /// Whether no beat is held.
    pub fn is_empty(&self) -> bool {
        self.beats.is_empty()
    }

    /// The means, or `None` before the first accepted beat.
    pub fn averages(&self) -> Option<BeatAverages> {
        let n = self.beats.len();
        if n == 0 {
            return None;
        }
        let nf = n as f64;
        let mean = |f: fn(&BeatValues) -> f64| self.beats.iter().map(f).sum::<f64>() / nf;
        let mut ma = OptMean::default();
        let mut sv = OptMean::default();
        let mut lo = OptMean::default();
        let mut hi = OptMean::default();
        for b in self.beats.iter() {
            ma.add(b.ma_cm_s2);
            sv.add(b.sv_ml);
            lo.add(b.sv_range_ml.map(|r| r.0));
            hi.add(b.sv_range_ml.map(|r| r.1));
        }
        // Rates over the heartbeats' time (an accepted beat is always one).
        let (mut time_s, mut sd_sum, mut sv_time_s, mut sv_sum) = (0.0, 0.0, 0.0, 0.0);
        for r in self.rhythm.iter() {
            time_s += r.cycle_s;
            sd_sum += r.sd_cm;
            if let Some(v) = r.sv_ml {
                sv_time_s += r.cycle_s;
                sv_sum += v;
            }
        }
        let per_min = |x: f64, t: f64| 60.0 * x / t;
        let (hr_bpm, md_cm_min) = if time_s > 0.0 {
            (
                per_min(self.rhythm.len() as f64, time_s),
                per_min(sd_sum, time_s),
            )
        } else {
            (mean(|b| b.hr_bpm), mean(|b| b.md_cm_min))
        };
        let co_l_min = (sv_time_s > 0.0).then(|| per_min(sv_sum, sv_time_s) / 1000.0);
        Some(BeatAverages {
            beats: n,
            t_last_s: self.beats.back().map_or(0.0, |b| b.t_s),
            ft_ms: mean(|b| b.ft_ms),
            ftc_ms: mean(|b| b.ftc_ms),
            sd_cm: mean(|b| b.sd_cm),
            pv_cm_s: mean(|b| b.pv_cm_s),
            ma_cm_s2: ma.mean(),
            hr_bpm,
            md_cm_min,
            sv_ml: sv.mean(),
            sv_range_ml: lo.mean().zip(hi.mean()),
            co_l_min,
        })
    }
}

/// How SVV is read from the stroke distances in the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SvvMethod {
    /// The respiratory component (default): a least-squares sinusoid at the
    /// breathing rate that fits best (searched over the configured breathing
    /// range, up to 0.45 × the heart rate), with the window's mean and a
    /// linear drift fitted alongside; `SVV = 100 · 2·amplitude / mean`, the
    /// peak-to-peak swing over a breath of a sinusoidal variation. Beat-to-
    /// beat scatter (the measurement's and the heart's) and a drift of SD
    /// over the window (a bolus taking effect) are not read as variation.
    RespiratoryFit,
    /// `100 · (max − min) / mean` over the window's beats: the textbook
    /// formula applied to every beat. Beat-to-beat scatter adds to it: with
    /// a 2 % scatter of SD a true 8 % reads 13–18 % over 30 s
    /// (docs/validation.md, "Stroke-volume variation"). Kept for comparison.
    PeakToPeak,
}

/// How SVV is computed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SvvConfig {
    /// Length of the sliding window, s. Default 30 s: several breaths at
    /// ventilator rates of 8–20/min, the span commercial pulse-contour
    /// monitors use for SVV.
    pub window_s: f64,
    /// Fewest accepted beats in the window to report SVV.
    pub min_beats: usize,
    /// Highest heart rate the window is sized for, 1/min (beats beyond
    /// `window_s · max_hr_bpm / 60` push the oldest out early).
    pub max_hr_bpm: f64,
    /// How the swing is read.
    pub method: SvvMethod,
    /// Breathing rates searched by [`SvvMethod::RespiratoryFit`], 1/min
    /// (default 6–40: ventilator rates, with room for children and
    /// high-frequency settings short of oscillation). A rate is searched
    /// only when the beats in the window span 1.5 of its breaths.
    pub breathing_range_per_min: (f64, f64),
}

impl Default for SvvConfig {
    fn default() -> Self {
        Self {
            window_s: 30.0,
            min_beats: 8,
            max_hr_bpm: 300.0,
            method: SvvMethod::RespiratoryFit,
            breathing_range_per_min: (6.0, 40.0),
        }
    }
}

/// The respiratory fit reads once its beats span this fraction of the
/// window (15 s of the default 30 s: at least 1.5 breaths at 6/min).
const SVV_MIN_SPAN_FRACTION: f64 = 0.5;

/// Steps of the breathing-rate search, per 1/min (a 30 s window resolves
/// 2/min; 0.1/min puts the best rate within 0.05/min of the peak).
const SVV_RATE_STEP_PER_MIN: f64 = 0.1;

/// Stroke-volume variation over a sliding time window, read from the
/// stroke distances of the accepted beats whose onset lies within the last
/// `window_s` seconds, by [`SvvMethod`] (the respiratory component by
/// default). SD is used rather than SV because for a fixed aortic area the
/// ratio is identical, and SVV then exists without an area model and is not
/// disturbed when the model changes. The reading is recomputed when a beat
/// enters or leaves the window (≈ 150 k multiply-adds for 40 beats over the
/// default range), never when it is only read, and never allocates.
#[derive(Debug, Clone)]
pub struct SvvTracker {
    cfg: SvvConfig,
    beats: Ring<(f64, f64)>,
    /// Per beat: the phasor at the lowest searched rate and the phasor of
    /// one search step (scratch, capacity of the ring).
    phasors: Vec<[f64; 4]>,
    reading: Option<SvvReading>,
}

/// One SVV reading.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SvvReading {
    /// SVV, %.
    pub svv_pct: f64,
    /// The breathing rate whose sinusoid fits best, 1/min
    /// ([`SvvMethod::RespiratoryFit`] only).
    pub breathing_rate_per_min: Option<f64>,
    /// Accepted beats the reading is made of.
    pub beats: usize,
}

impl SvvTracker {
    /// A tracker sized for `cfg`.
    pub fn new(cfg: SvvConfig) -> Self {
        let hr = if cfg.max_hr_bpm.is_finite() && cfg.max_hr_bpm > 0.0 {
            cfg.max_hr_bpm
        } else {
            300.0
        };
        let window = if cfg.window_s.is_finite() && cfg.window_s > 0.0 {
            cfg.window_s
        } else {
            30.0
        };
        let (lo, hi) = cfg.breathing_range_per_min;
        let range = if lo.is_finite() && hi.is_finite() && lo > 0.0 && hi > lo {
            (lo, hi)
        } else {
            SvvConfig::default().breathing_range_per_min
        };
        let cap = (window * hr / 60.0).ceil() as usize + 1;
        Self {
            cfg: SvvConfig {
                window_s: window,
                max_hr_bpm: hr,
                breathing_range_per_min: range,
                ..cfg
            },
            beats: Ring::new(cap),
            phasors: Vec::with_capacity(cap),
            reading: None,
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &SvvConfig {
        &self.cfg
    }

    /// Takes a beat (rejected beats are ignored) and drops beats that left
    /// the window.
    pub fn push(&mut self, beat: &Beat) {
        if beat.accepted {
            self.push_sd(beat.onset_s, beat.sd_cm);
        } else {
            self.expire(beat.onset_s);
        }
    }

    /// Takes the onset and stroke distance of an accepted beat (a reference
    /// series, e.g. a simulator's truth, goes in here) and drops beats that
    /// left the window.
    pub fn push_sd(&mut self, onset_s: f64, sd_cm: f64) {
        let mut changed = false;
        if sd_cm.is_finite() && onset_s.is_finite() {
            self.beats.push((onset_s, sd_cm));
            changed = true;
        }
        if self.drop_before(onset_s - self.cfg.window_s) || changed {
            self.reading = self.compute();
        }
    }

    /// Drops beats older than `now_s − window_s` (call as time passes even
    /// without beats, so a lost signal does not leave a stale SVV).
    pub fn expire(&mut self, now_s: f64) {
        if self.drop_before(now_s - self.cfg.window_s) {
            self.reading = self.compute();
        }
    }

    /// Drops beats with onsets before `t_s`; whether any was dropped.
    fn drop_before(&mut self, t_s: f64) -> bool {
        let mut dropped = false;
        while let Some(&(t, _)) = self.beats.front() {
            if t < t_s {
                self.beats.pop_front();
                dropped = true;
            } else {
                break;
            }
        }
        dropped
    }

    /// Beats in the window.
    pub fn beats(&self) -> usize {
        self.beats.len()
    }

    /// SVV in %, or `None` with fewer than `min_beats` beats in the window
    /// (or, for the respiratory fit, beats spanning under half the window,
    /// or too short a time for 1.5 breaths at the highest rate the heart
    /// rate lets it resolve).
    pub fn svv_pct(&self) -> Option<f64> {
        self.reading.map(|r| r.svv_pct)
    }

    /// The current reading with the breathing rate it found.
    pub fn reading(&self) -> Option<SvvReading> {
        self.reading
    }

    fn compute(&mut self) -> Option<SvvReading> {
        let n = self.beats.len();
        if n < self.cfg.min_beats.max(3) {
            return None;
        }
        let nf = n as f64;
        let (mut lo, mut hi, mut sum_y, mut sum_t) = (f64::INFINITY, f64::NEG_INFINITY, 0.0, 0.0);
        for &(t, y) in self.beats.iter() {
            lo = lo.min(y);
            hi = hi.max(y);
            sum_y += y;
            sum_t += t;
        }
        let mean_y = sum_y / nf;
        if mean_y <= 0.0 || !mean_y.is_finite() {
            return None;
        }
        if self.cfg.method == SvvMethod::PeakToPeak {
            return Some(SvvReading {
                svv_pct: 100.0 * (hi - lo) / mean_y,
                breathing_rate_per_min: None,
                beats: n,
            });
        }
        let mean_t = sum_t / nf;
        let (t_first, t_last) = match (self.beats.front(), self.beats.back()) {
            (Some(a), Some(b)) => (a.0, b.0),
            _ => return None,
        };
        let span_s = t_last - t_first;
        // A sine fitted to a breath or two reads its rate and size poorly
        // (at start-up the display showed a rate of 16/min for 12 after
        // 10 s): the beats must span half the window first.
        if span_s <= 0.0 || span_s < SVV_MIN_SPAN_FRACTION * self.cfg.window_s {
            return None;
        }
        // The rates searched: 1.5 breaths within the beats' span, and at
        // most 0.45 × the mean heart rate (beats sample the breath; nearer
        // their Nyquist rate the sine and cosine stop being told apart).
        let hr_per_min = (nf - 1.0) / span_s * 60.0;
        let (range_lo, range_hi) = self.cfg.breathing_range_per_min;
        let f_lo = range_lo.max(1.5 * 60.0 / span_s);
        let f_hi = range_hi.min(0.45 * hr_per_min);
        if f_lo > f_hi {
            return None;
        }
        let steps = ((f_hi - f_lo) / SVV_RATE_STEP_PER_MIN).floor() as usize + 1;
        // Detrend: y − mean − slope·(t − t̄).
        let (mut stt, mut sty) = (0.0, 0.0);
        for &(t, y) in self.beats.iter() {
            stt += (t - mean_t) * (t - mean_t);
            sty += (t - mean_t) * (y - mean_y);
        }
        if stt <= 0.0 {
            return None;
        }
        let slope = sty / stt;
        let w_lo = std::f64::consts::TAU * f_lo / 60.0;
        let dw = std::f64::consts::TAU * SVV_RATE_STEP_PER_MIN / 60.0;
        self.phasors.clear();
        for &(t, _) in self.beats.iter() {
            let tc = t - mean_t;
            let (s0, c0) = (w_lo * tc).sin_cos();
            let (s1, c1) = (dw * tc).sin_cos();
            self.phasors.push([c0, s0, c1, s1]);
        }
        let mut best: Option<(f64, f64, f64)> = None; // (reduction, amplitude, rate)
        for step in 0..steps {
            let (mut sc, mut ss, mut stc, mut sts) = (0.0, 0.0, 0.0, 0.0);
            let (mut scc, mut sss, mut scs, mut syc, mut sys) = (0.0, 0.0, 0.0, 0.0, 0.0);
            for (p, &(t, y)) in self.phasors.iter_mut().zip(self.beats.iter()) {
                let (c, s) = (p[0], p[1]);
                let tc = t - mean_t;
                let r = y - mean_y - slope * tc;
                sc += c;
                ss += s;
                stc += tc * c;
                sts += tc * s;
                scc += c * c;
                sss += s * s;
                scs += c * s;
                syc += r * c;
                sys += r * s;
                // Advance to the next rate: multiply by the step's phasor.
                p[0] = c * p[2] - s * p[3];
                p[1] = s * p[2] + c * p[3];
            }
            // c and s with the mean and the drift projected out.
            let cc = scc - sc * sc / nf - stc * stc / stt;
            let ss2 = sss - ss * ss / nf - sts * sts / stt;
            let cs = scs - sc * ss / nf - stc * sts / stt;
            let det = cc * ss2 - cs * cs;
            if det <= 1e-9 * nf * nf {
                continue;
            }
            let a = (syc * ss2 - sys * cs) / det;
            let b = (sys * cc - syc * cs) / det;
            let reduction = a * syc + b * sys;
            if best.is_none_or(|(r, _, _)| reduction > r) {
                let rate = f_lo + step as f64 * SVV_RATE_STEP_PER_MIN;
                best = Some((reduction, a.hypot(b), rate));
            }
        }
        let (_, amplitude, rate) = best?;
        Some(SvvReading {
            svv_pct: 100.0 * 2.0 * amplitude / mean_y,
            breathing_rate_per_min: Some(rate),
            beats: n,
        })
    }
}

/// How trends are binned and how much history is kept.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrendConfig {
    /// Bin length, s (default 10 s: 90 points on a 15-minute view).
    pub bin_s: f64,
    /// History kept, s (default 3600 s, the longest trend view).
    pub history_s: f64,
    /// Highest heart rate a bin is sized for, 1/min; accepted beats beyond
    /// `bin_s · max_hr_bpm / 60` in one bin are counted in
    /// [`TrendRecorder::dropped_beats`] and left out.
    pub max_hr_bpm: f64,
}

impl Default for TrendConfig {
    fn default() -> Self {
        Self {
            bin_s: 10.0,
            history_s: 3600.0,
            max_hr_bpm: 300.0,
        }
    }
}

/// One trend bin: medians over the accepted beats whose onset falls in
/// `[t_start_s, t_end_s)`. Values are `None` when the bin has no accepted beat
/// (or, for SV and CO, no beat with SV), so a lost signal shows as a gap.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrendPoint {
    /// Start of the bin, s.
    pub t_start_s: f64,
    /// End of the bin, s.
    pub t_end_s: f64,
    /// Accepted beats in the bin.
    pub beats: usize,
    /// Median SV, ml.
    pub sv_ml: Option<f64>,
    /// Median CO, l/min.
    pub co_l_min: Option<f64>,
    /// Median FTc, ms.
    pub ftc_ms: Option<f64>,
    /// Median SD, cm.
    pub sd_cm: Option<f64>,
    /// Median HR, 1/min.
    pub hr_bpm: Option<f64>,
}

/// Median of `xs` (sorted in place); `None` when empty.
pub fn median_in_place(xs: &mut [f64]) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    xs.sort_unstable_by(f64::total_cmp);
    let n = xs.len();
    Some(if n % 2 == 1 {
        xs[n / 2]
    } else {
        0.5 * (xs[n / 2 - 1] + xs[n / 2])
    })
}

/// Time-binned median trends of SV, CO, FTc, SD and HR in a ring that keeps
/// `history_s` of bins: memory is fixed at construction.
#[derive(Debug, Clone)]
pub struct TrendRecorder {
    cfg: TrendConfig,
    points: Ring<TrendPoint>,
    bin: Option<i64>,
    values: Vec<BeatValues>,
    values_cap: usize,
    scratch: Vec<f64>,
    dropped_beats: u64,
}

impl TrendRecorder {
    /// A recorder sized for `cfg` (non-finite or non-positive settings fall
    /// back to the defaults).
    pub fn new(cfg: TrendConfig) -> Self {
        let d = TrendConfig::default();
        let pos = |x: f64, dflt: f64| if x.is_finite() && x > 0.0 { x } else { dflt };
        let cfg = TrendConfig {
            bin_s: pos(cfg.bin_s, d.bin_s),
            history_s: pos(cfg.history_s, d.history_s),
            max_hr_bpm: pos(cfg.max_hr_bpm, d.max_hr_bpm),
        };
        let bins = (cfg.history_s / cfg.bin_s).ceil() as usize;
        let values_cap = (cfg.bin_s * cfg.max_hr_bpm / 60.0).ceil() as usize + 1;
        Self {
            cfg,
            points: Ring::new(bins),
            bin: None,
            values: Vec::with_capacity(values_cap),
            values_cap,
            scratch: Vec::with_capacity(values_cap),
            dropped_beats: 0,
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &TrendConfig {
        &self.cfg
    }

    /// Most bins kept.
    pub fn capacity(&self) -> usize {
        self.points.capacity()
    }

    /// Accepted beats left out because a bin was full.
    pub fn dropped_beats(&self) -> u64 {
        self.dropped_beats
    }

    fn bin_of(&self, t_s: f64) -> i64 {
        (t_s / self.cfg.bin_s).floor() as i64
    }

    /// Takes a beat: closes bins up to the beat's time, and adds it to the
    /// open bin when accepted. Beats older than the open bin are ignored
    /// (beats arrive in time order).
    pub fn push(&mut self, beat: &Beat) {
        if !beat.onset_s.is_finite() {
            return;
        }
        self.advance_to(beat.onset_s);
        if !beat.accepted || self.bin != Some(self.bin_of(beat.onset_s)) {
            return;
        }
        if self.values.len() < self.values_cap {
            self.values.push(BeatValues::from(beat));
        } else {
            self.dropped_beats += 1;
        }
    }

    /// Moves time forward to `t_s`: every bin that ended is closed (empty
    /// bins included, so gaps show), and the bin containing `t_s` opens.
    pub fn advance_to(&mut self, t_s: f64) {
        if !t_s.is_finite() {
            return;
        }
        let target = self.bin_of(t_s);
        let Some(open) = self.bin else {
            self.bin = Some(target);
            return;
        };
        if target <= open {
            return;
        }
        self.close_open_bin(open);
        // Empty bins between; only the last `capacity` can survive in the ring.
        let first_empty = (open + 1).max(target - self.points.capacity() as i64);
        for k in first_empty..target {
            self.points.push(self.empty_point(k));
        }
        self.bin = Some(target);
    }

    /// Closes the open bin (at the end of a stream).
    pub fn finish(&mut self) {
        if let Some(open) = self.bin.take() {
            self.close_open_bin(open);
        }
    }

    fn empty_point(&self, k: i64) -> TrendPoint {
        TrendPoint {
            t_start_s: k as f64 * self.cfg.bin_s,
            t_end_s: (k + 1) as f64 * self.cfg.bin_s,
            beats: 0,
            sv_ml: None,
            co_l_min: None,
            ftc_ms: None,
            sd_cm: None,
            hr_bpm: None,
        }
    }

    fn summarise(&mut self, k: i64) -> TrendPoint {
        let mut p = self.empty_point(k);
        p.beats = self.values.len();
        let mut med = |f: fn(&BeatValues) -> Option<f64>| {
            self.scratch.clear();
            self.scratch
                .extend(self.values.iter().filter_map(f).filter(|x| x.is_finite()));
            median_in_place(&mut self.scratch)
        };
        p.sv_ml = med(|b| b.sv_ml);
        p.co_l_min = med(|b| b.co_l_min);
        p.ftc_ms = med(|b| Some(b.ftc_ms));
        p.sd_cm = med(|b| Some(b.sd_cm));
        p.hr_bpm = med(|b| Some(b.hr_bpm));
        p
    }

    fn close_open_bin(&mut self, k: i64) {
        let p = self.summarise(k);
        self.points.push(p);
        self.values.clear();
    }

    /// The open (still filling) bin's medians so far, if a bin is open.
    pub fn open_point(&mut self) -> Option<TrendPoint> {
        let k = self.bin?;
        Some(self.summarise(k))
    }

    /// Closed bins, oldest first.
    pub fn points(&self) -> impl DoubleEndedIterator<Item = &TrendPoint> + ExactSizeIterator + '_ {
        self.points.iter()
    }

    /// Closed bins that end after `t_s` (for a 15/30/60-minute view ending now).
    pub fn points_since(&self, t_s: f64) -> impl Iterator<Item = &TrendPoint> + '_ {
        self.points.iter().filter(move |p| p.t_end_s > t_s)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A plausible accepted beat with the given onset, SD and cycle.
    pub(crate) fn beat(index: u64, onset_s: f64, sd_cm: f64, cycle_s: f64) -> Beat {
        let hr = 60.0 / cycle_s;
        let sv = sd_cm * 5.0;
        Beat {
            index,
            onset_s,
            peak_s: onset_s + 0.1,
            end_s: onset_s + 0.32,
            next_onset_s: onset_s + cycle_s,
            ft_ms: 320.0,
            cycle_s,
            hr_bpm: hr,
            ftc_ms: 320.0 / cycle_s.sqrt(),
            sd_cm,
            pv_cm_s: 90.0,
            ma_cm_s2: Some(900.0),
            md_cm_min: sd_cm * hr,
            sv_ml: Some(sv),
            sv_range_ml: Some((sv * 0.8, sv * 1.2)),
            co_l_min: Some(sv * hr / 1000.0),
            quality: 0.9,
            accepted: true,
            reject_reason: None,
            irregular_rhythm: false,
            ft_low_flow: false,
            completed_by_sample: 0,
        }
    }

    #[test]
    fn ring_overwrites_oldest_and_iterates_in_order() {
        let mut r = Ring::new(3);
        for i in 0..5 {
            r.push(i);
        }
        assert_eq!(r.iter().copied().collect::<Vec<_>>(), vec![2, 3, 4]);
        assert_eq!(r.front(), Some(&2));
        assert_eq!(r.back(), Some(&4));
        assert_eq!(r.pop_front(), Some(2));
        r.push(5);
        assert_eq!(r.iter().copied().collect::<Vec<_>>(), vec![3, 4, 5]);
        assert_eq!(r.len(), 3);
    }

    #[test]
    fn rolling_average_uses_last_n_accepted_beats_only() {
        let mut avg = RollingAverage::new(4);
        assert!(avg.averages().is_none());
        for i in 0..10 {
            let mut b = beat(i, i as f64, 10.0 + i as f64, 1.0);
            if i == 8 {
                b.accepted = false;
                b.sd_cm = 1000.0;
            }
            avg.push(&b);
        }
        // Accepted beats 5, 6, 7, 9 → SD 15, 16, 17, 19 → mean 16.75.
        let a = avg.averages().unwrap();
        assert_eq!(a.beats, 4);
        assert!((a.sd_cm - 16.75).abs() < 1e-12);
        assert!((a.sv_ml.unwrap() - 16.75 * 5.0).abs() < 1e-9);
        assert!((a.hr_bpm - 60.0).abs() < 1e-12);
        assert_eq!(a.t_last_s, 9.0);
    }

    #[test]
    fn rolling_average_without_sv_reports_none_not_zero() {
        let mut avg = RollingAverage::new(3);
        let mut b = beat(0, 0.0, 12.0, 1.0);
        b.sv_ml = None;
        b.co_l_min = None;
        b.sv_range_ml = None;
        avg.push(&b);
        let a = avg.averages().unwrap();
        assert_eq!(a.sv_ml, None);
        assert_eq!(a.co_l_min, None);
        assert!((a.sd_cm - 12.0).abs() < 1e-12);
    }

    /// Bigeminy: sinus beats (cycle 0.48 s, the coupling interval; SD 15)
    /// alternate with premature beats rejected as ectopic (cycle 1.12 s; SD
    /// 9). The rates are the heart's over the beats' time — 10 beats in
    /// 8 s, 75/min — not the mean of the sinus beats' own (125/min); the
    /// per-stroke means are the sinus beats'. An interference beat counts
    /// for nothing.
    #[test]
    fn rates_count_ectopic_beats_over_their_time() {
        let mut avg = RollingAverage::new(10);
        let mut t = 0.0;
        for i in 0..20 {
            let (cycle, sd) = if i % 2 == 0 {
                (0.48, 15.0)
            } else {
                (1.12, 9.0)
            };
            let mut b = beat(i, t, sd, cycle);
            if i % 2 == 1 {
                b.accepted = false;
                b.reject_reason = Some(crate::RejectReason::Ectopic);
            }
            avg.push(&b);
            t += cycle;
        }
        let mut noise = beat(99, t, 40.0, 0.2);
        noise.accepted = false;
        noise.reject_reason = Some(crate::RejectReason::Interference);
        assert!(!avg.push(&noise));
        let a = avg.averages().unwrap();
        assert_eq!(a.beats, 10);
        assert!((a.hr_bpm - 75.0).abs() < 1e-9, "{a:?}");
        assert!((a.md_cm_min - 60.0 * (5.0 * 15.0 + 5.0 * 9.0) / 8.0).abs() < 1e-9);
        // SV = 5 × SD in `beat`.
        let co = 60.0 * 5.0 * (5.0 * 15.0 + 5.0 * 9.0) / 8.0 / 1000.0;
        assert!((a.co_l_min.unwrap() - co).abs() < 1e-9, "{a:?}");
        assert!((a.sd_cm - 15.0).abs() < 1e-12);
        assert!((a.sv_ml.unwrap() - 75.0).abs() < 1e-12);
        // A steady rhythm: the rate of its cycle.
        let mut avg = RollingAverage::new(10);
        for i in 0..12 {
            avg.push(&beat(i, i as f64 * 0.8, 15.0, 0.8));
        }
        assert!((avg.averages().unwrap().hr_bpm - 75.0).abs() < 1e-9);
    }

    /// Beats of cycle `cycle_s` (±`jitter` uniformly) from t = 0 with
    /// SD = `mean`·(1 + svv/200·sin(2π·rr/60·t + 0.7) + drift·t) · (1 +
    /// `scatter`·N(0,1)); a fixed xorshift and Box–Muller, so the test is
    /// repeatable and independent of the code under test.
    fn breathing_beats(
        seconds: f64,
        cycle_s: f64,
        jitter: f64,
        (svv_pct, rr_per_min): (f64, f64),
        drift_per_s: f64,
        scatter: f64,
        seed: u64,
    ) -> Vec<Beat> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut uniform = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut out = Vec::new();
        let mut t = 0.0;
        let mut i = 0;
        while t < seconds {
            let (u1, u2) = (uniform().max(1e-300), uniform());
            let gauss = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
            let swing =
                svv_pct / 200.0 * (std::f64::consts::TAU * rr_per_min / 60.0 * t + 0.7).sin();
            let sd = 15.0 * (1.0 + swing + drift_per_s * t) * (1.0 + scatter * gauss);
            let c = cycle_s * (1.0 + jitter * (2.0 * uniform() - 1.0));
            out.push(beat(i, t, sd, c));
            t += c;
            i += 1;
        }
        out
    }

    /// SVV read at every beat once the window is full.
    fn readings(cfg: SvvConfig, beats: &[Beat]) -> Vec<SvvReading> {
        let mut svv = SvvTracker::new(cfg);
        let mut out = Vec::new();
        for b in beats {
            svv.push(b);
            if b.onset_s >= cfg.window_s {
                out.extend(svv.reading());
            }
        }
        out
    }

    fn median(mut v: Vec<f64>) -> f64 {
        median_in_place(&mut v).expect("readings")
    }

    #[test]
    fn svv_of_a_sinusoidal_respiratory_swing_is_its_peak_to_peak_over_mean() {
        // SD = 15·(1 + 0.06·sin(2π t / 5 s)) at 60/min: breathing every 5
        // beats. The swing is 2·0.06 = 12 % of the mean; the beats sample
        // the sine at ±sin(2π·k/5) = ±0.9511, so max − min reads 11.41 %.
        let cfg = SvvConfig::default();
        let mut fit = SvvTracker::new(cfg);
        let mut p2p = SvvTracker::new(SvvConfig {
            method: SvvMethod::PeakToPeak,
            ..cfg
        });
        for i in 0..120 {
            let t = i as f64;
            let sd = 15.0 * (1.0 + 0.06 * (2.0 * std::f64::consts::PI * t / 5.0).sin());
            fit.push(&beat(i, t, sd, 1.0));
            p2p.push(&beat(i, t, sd, 1.0));
        }
        // The window holds 31 beats (onsets 89..=119): 6 breaths.
        assert!(fit.beats() <= 31);
        let r = fit.reading().unwrap();
        assert!((r.svv_pct - 12.0).abs() < 0.05, "{r:?}");
        assert!(
            (r.breathing_rate_per_min.unwrap() - 12.0).abs() <= 0.1,
            "{r:?}"
        );
        let expect = 100.0 * 2.0 * 0.06 * (2.0 * std::f64::consts::PI / 5.0).sin();
        let got = p2p.svv_pct().unwrap();
        assert!((got - expect).abs() < 0.1, "got {got}, expected {expect}");
    }

    #[test]
    fn beat_to_beat_scatter_is_not_read_as_variation() {
        // The virtual probe's default: SVV 8 % at 12 breaths/min, 2 % scatter
        // of SD from beat to beat, 75/min with 3 % cycle jitter. Max − min
        // over 37 beats adds about four scatter SDs to the swing.
        let cfg = SvvConfig::default();
        let mut fit = Vec::new();
        let mut p2p = Vec::new();
        for seed in 1..=8 {
            let beats = breathing_beats(300.0, 0.8, 0.03, (8.0, 12.0), 0.0, 0.02, seed);
            fit.extend(readings(cfg, &beats).iter().map(|r| r.svv_pct));
            let pp = SvvConfig {
                method: SvvMethod::PeakToPeak,
                ..cfg
            };
            p2p.extend(readings(pp, &beats).iter().map(|r| r.svv_pct));
        }
        let (m_fit, m_p2p) = (median(fit.clone()), median(p2p));
        assert!(
            (m_fit - 8.0).abs() < 1.0,
            "respiratory fit median {m_fit:.2} %"
        );
        assert!(m_p2p > 11.5, "max − min median {m_p2p:.2} %");
        // No reading of the fit crosses the 13 % fluid threshold.
        let worst = fit.iter().copied().fold(0.0, f64::max);
        assert!(worst < 13.0, "fit's highest reading {worst:.2} %");
    }

    #[test]
    fn no_breathing_swing_reads_near_zero_and_a_drift_is_not_variation() {
        let cfg = SvvConfig::default();
        // Scatter only: what the search picks out of noise.
        let beats = breathing_beats(300.0, 0.8, 0.03, (0.0, 12.0), 0.0, 0.02, 3);
        let m = median(readings(cfg, &beats).iter().map(|r| r.svv_pct).collect());
        assert!(m < 3.0, "no swing read as {m:.2} %");
        // SD rising 20 % over 30 s (a bolus taking effect), no swing, no
        // scatter: max − min reads the rise, the fit nothing.
        let beats = breathing_beats(60.0, 0.8, 0.0, (0.0, 12.0), 0.2 / 30.0, 0.0, 3);
        let fit = readings(cfg, &beats).last().unwrap().svv_pct;
        let pp = SvvConfig {
            method: SvvMethod::PeakToPeak,
            ..cfg
        };
        let p2p = readings(pp, &beats).last().unwrap().svv_pct;
        assert!(fit < 0.5, "drift read by the fit as {fit:.2} %");
        assert!(p2p > 10.0, "drift read by max − min as {p2p:.2} %");
    }

    #[test]
    fn svv_is_found_across_heart_and_breathing_rates() {
        // (cycle s, breaths/min, SVV %): slow heart with fast breathing
        // (45/min, 20/min: 2.25 beats a breath), fast heart, slow breathing.
        for (cycle_s, rr, svv) in [
            (60.0 / 45.0, 20.0, 15.0),
            (60.0 / 45.0, 8.0, 8.0),
            (60.0 / 140.0, 12.0, 20.0),
            (60.0 / 140.0, 30.0, 10.0),
            (60.0 / 90.0, 16.0, 25.0),
        ] {
            let beats = breathing_beats(240.0, cycle_s, 0.03, (svv, rr), 0.0, 0.0, 5);
            let r = readings(SvvConfig::default(), &beats);
            let m = median(r.iter().map(|r| r.svv_pct).collect());
            let rate = median(r.iter().filter_map(|r| r.breathing_rate_per_min).collect());
            assert!(
                (m - svv).abs() < 0.05 * svv,
                "{cycle_s} s, {rr}/min: {m:.2} % for {svv}"
            );
            assert!(
                (rate - rr).abs() < 0.5,
                "{cycle_s} s, {rr}/min: rate {rate:.2}"
            );
        }
    }

    /// The residual sum of squares and the SVV of a direct least-squares
    /// fit of `[1, t, cos ωt, sin ωt]` to `(t, sd)` at `rate_per_min`
    /// (nalgebra's SVD: independent of the tracker's projections).
    fn direct_fit(series: &[(f64, f64)], rate_per_min: f64) -> (f64, f64) {
        let w = std::f64::consts::TAU * rate_per_min / 60.0;
        let n = series.len();
        let a = nalgebra::DMatrix::from_fn(n, 4, |i, j| {
            let t = series[i].0;
            match j {
                0 => 1.0,
                1 => t,
                2 => (w * t).cos(),
                _ => (w * t).sin(),
            }
        });
        let y = nalgebra::DVector::from_fn(n, |i, _| series[i].1);
        let x = a.clone().svd(true, true).solve(&y, 1e-12).unwrap();
        let rss = (&a * &x - &y).norm_squared();
        let mean = y.mean();
        (rss, 100.0 * 2.0 * x[2].hypot(x[3]) / mean)
    }

    /// The tracker's reading is the direct fit at the rate it found, and no
    /// neighbouring rate fits better; the rate stays under 0.45 × the heart
    /// rate. Irregular beats, a swing, a drift and scatter, at slow and
    /// fast heart rates (a review found several wrong solves passing the
    /// other tests).
    #[test]
    fn the_fit_is_a_direct_least_squares_fit_at_the_best_rate() {
        for (cycle_s, rr, seed) in [
            (60.0 / 45.0, 14.0, 9),
            (60.0 / 40.0, 9.0, 4),
            (0.6, 18.0, 2),
        ] {
            let beats = breathing_beats(75.0, cycle_s, 0.08, (12.0, rr), 0.004, 0.02, seed);
            let mut tracker = SvvTracker::new(SvvConfig::default());
            for b in &beats {
                tracker.push(b);
            }
            let r = tracker.reading().unwrap();
            let rate = r.breathing_rate_per_min.unwrap();
            let last = beats.last().unwrap().onset_s;
            let window: Vec<(f64, f64)> = beats
                .iter()
                .filter(|b| b.onset_s >= last - 30.0)
                .map(|b| (b.onset_s - last, b.sd_cm))
                .collect();
            assert_eq!(window.len(), r.beats);
            let (rss, svv) = direct_fit(&window, rate);
            assert!((svv - r.svv_pct).abs() < 1e-6, "{cycle_s}: {svv} vs {r:?}");
            for other in [rate - SVV_RATE_STEP_PER_MIN, rate + SVV_RATE_STEP_PER_MIN] {
                let (rss_other, _) = direct_fit(&window, other);
                assert!(
                    rss <= rss_other + 1e-9,
                    "{cycle_s}: {other}/min fits better than {rate}"
                );
            }
            let hr = (window.len() - 1) as f64 / (window.last().unwrap().0 - window[0].0) * 60.0;
            assert!(rate <= 0.45 * hr + 1e-9, "{rate}/min at HR {hr}");
        }
    }

    /// A swing of 12 % with SD drifting 10 % over the window, no scatter,
    /// 3.2 beats a breath: the swing to 0.1 % whatever the drift.
    #[test]
    fn a_drifting_swing_is_read_exactly() {
        let beats = breathing_beats(120.0, 60.0 / 45.0, 0.0, (12.0, 14.0), 0.1 / 30.0, 0.0, 1);
        let r = readings(SvvConfig::default(), &beats);
        // The swing is 12 % of the undrifted 15 cm; the mean drifts up.
        for (b, reading) in beats.iter().rev().zip(r.iter().rev()).take(20) {
            let mean = 15.0 * (1.0 + 0.1 / 30.0 * (b.onset_s - 15.0));
            let expect = 12.0 * 15.0 / mean;
            assert!(
                (reading.svv_pct - expect).abs() < 0.1,
                "{}: {} vs {expect}",
                b.onset_s,
                reading.svv_pct
            );
        }
    }

    #[test]
    fn svv_needs_enough_beats_and_expires_with_time() {
        let mut svv = SvvTracker::new(SvvConfig::default());
        for i in 0..5 {
            svv.push(&beat(i, i as f64, 15.0, 1.0));
        }
        assert_eq!(svv.svv_pct(), None, "5 beats < min 8");
        for i in 5..15 {
            svv.push(&beat(i, i as f64, 15.0, 1.0));
        }
        assert_eq!(svv.svv_pct(), None, "15 beats over 14 s < half the window");
        let mut p2p = SvvTracker::new(SvvConfig {
            method: SvvMethod::PeakToPeak,
            ..SvvConfig::default()
        });
        for i in 0..8 {
            p2p.push(&beat(i, i as f64, 15.0, 1.0));
        }
        assert_eq!(p2p.svv_pct(), Some(0.0), "max − min from min_beats on");
        for i in 15..20 {
            svv.push(&beat(i, i as f64, 15.0, 1.0));
        }
        assert_eq!(svv.svv_pct(), Some(0.0));
        svv.expire(100.0);
        assert_eq!(svv.beats(), 0);
        assert_eq!(svv.svv_pct(), None);
    }

    #[test]
    fn trend_bins_hold_medians_of_accepted_beats() {
        let mut tr = TrendRecorder::new(TrendConfig {
            bin_s: 10.0,
            history_s: 60.0,
            max_hr_bpm: 300.0,
        });
        // Bin 0: SD 10, 11, 30(outlier), 12 + a rejected 99 → median 11.5.
        for (i, sd) in [10.0, 11.0, 30.0, 12.0].iter().enumerate() {
            tr.push(&beat(i as u64, i as f64 * 2.0, *sd, 2.0));
        }
        let mut rej = beat(9, 9.0, 99.0, 2.0);
        rej.accepted = false;
        tr.push(&rej);
        tr.push(&beat(10, 10.5, 14.0, 2.0));
        let p: Vec<_> = tr.points().copied().collect();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].beats, 4);
        assert_eq!((p[0].t_start_s, p[0].t_end_s), (0.0, 10.0));
        assert!((p[0].sd_cm.unwrap() - 11.5).abs() < 1e-12);
        assert!((p[0].sv_ml.unwrap() - 57.5).abs() < 1e-9);
        assert!((p[0].hr_bpm.unwrap() - 30.0).abs() < 1e-12);
        assert_eq!(tr.open_point().unwrap().beats, 1);
    }

    #[test]
    fn trend_shows_gaps_as_empty_bins() {
        let mut tr = TrendRecorder::new(TrendConfig::default());
        tr.push(&beat(0, 1.0, 15.0, 1.0));
        tr.push(&beat(1, 45.0, 15.0, 1.0));
        let p: Vec<_> = tr.points().copied().collect();
        assert_eq!(p.len(), 4, "bins 0..10, 10..20, 20..30, 30..40");
        assert_eq!(p[0].beats, 1);
        assert!(p[1..].iter().all(|q| q.beats == 0 && q.sd_cm.is_none()));
        assert_eq!(tr.points_since(25.0).count(), 2);
    }

    #[test]
    fn trend_memory_is_bounded_over_a_long_case() {
        let cfg = TrendConfig::default();
        let mut tr = TrendRecorder::new(cfg);
        let cap = tr.capacity();
        assert_eq!(cap, 360, "60 min of 10-s bins");
        // Three hours at 80/min.
        let cycle = 0.75;
        let n = (3.0 * 3600.0 / cycle) as u64;
        for i in 0..n {
            tr.push(&beat(i, i as f64 * cycle, 15.0, cycle));
        }
        assert_eq!(tr.points().len(), cap);
        let first = tr.points().next().unwrap();
        let last = tr.points().last().unwrap();
        assert!((last.t_end_s - first.t_start_s - 3600.0).abs() < 1e-6);
        assert!(last.t_end_s > 3.0 * 3600.0 - 20.0);
        assert_eq!(tr.dropped_beats(), 0);
        // A jump of a day costs no more than the ring.
        tr.push(&beat(n, 86_400.0, 15.0, cycle));
        assert_eq!(tr.points().len(), cap);
        assert!(tr.points().all(|p| p.beats == 0));
    }

    #[test]
    fn trend_bin_overflow_is_counted_not_grown() {
        let mut tr = TrendRecorder::new(TrendConfig {
            bin_s: 10.0,
            history_s: 100.0,
            max_hr_bpm: 60.0,
        });
        for i in 0..30 {
            tr.push(&beat(i, i as f64 * 0.3, 15.0, 0.3));
        }
        assert_eq!(tr.dropped_beats(), 30 - 11);
    }

    #[test]
    fn median_of_even_and_odd_counts() {
        assert_eq!(median_in_place(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median_in_place(&mut [4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median_in_place(&mut []), None);
    }
}
