//! Writing the beat-by-beat analysis format (`shared/spec/analysis-output.md`):
//! JSON lines with fields in the spec's order, `null` for values that cannot
//! be computed (never NaN), CSV beat rows, and exact medians for the summary.
//!
//! Numbers are written with a fixed number of decimals per field
//! ([`BEAT_DECIMALS`]); the summary medians are medians of the values exactly
//! as written, so a reader recomputing them from the beat lines gets the
//! same numbers.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use odm_dsp::Beat;

/// Beat fields in the spec's order (the CSV header).
pub const BEAT_FIELDS: [&str; 18] = [
    "index",
    "onset_s",
    "peak_s",
    "end_s",
    "next_onset_s",
    "ft_ms",
    "cycle_s",
    "hr_bpm",
    "ftc_ms",
    "sd_cm",
    "pv_cm_s",
    "ma_cm_s2",
    "md_cm_min",
    "sv_ml",
    "co_l_min",
    "quality",
    "accepted",
    "reject_reason",
];

/// Decimals written per numeric quantity. Times to 10 µs (a sample at
/// 48 kHz is 21 µs); every other number well below its measurement error.
pub mod decimals {
    /// Times and cycle length, s.
    pub const TIME_S: usize = 5;
    /// FT and FTc, ms.
    pub const MS: usize = 2;
    /// Heart rate, 1/min.
    pub const HR: usize = 3;
    /// Stroke distance, cm.
    pub const SD: usize = 4;
    /// Peak velocity, cm/s.
    pub const PV: usize = 3;
    /// Mean acceleration, cm/s².
    pub const MA: usize = 2;
    /// Minute distance, cm/min.
    pub const MD: usize = 2;
    /// Stroke volume, ml.
    pub const SV: usize = 3;
    /// Cardiac output, l/min.
    pub const CO: usize = 4;
    /// Quality, 0..1.
    pub const QUALITY: usize = 4;
    /// Diameters, mm.
    pub const MM: usize = 3;
    /// Percentages.
    pub const PCT: usize = 3;
}

/// Decimals of the numeric beat fields, by name (for CSV and medians).
pub const BEAT_DECIMALS: [(&str, usize); 15] = [
    ("onset_s", decimals::TIME_S),
    ("peak_s", decimals::TIME_S),
    ("end_s", decimals::TIME_S),
    ("next_onset_s", decimals::TIME_S),
    ("ft_ms", decimals::MS),
    ("cycle_s", decimals::TIME_S),
    ("hr_bpm", decimals::HR),
    ("ftc_ms", decimals::MS),
    ("sd_cm", decimals::SD),
    ("pv_cm_s", decimals::PV),
    ("ma_cm_s2", decimals::MA),
    ("md_cm_min", decimals::MD),
    ("sv_ml", decimals::SV),
    ("co_l_min", decimals::CO),
    ("quality", decimals::QUALITY),
];

/// Appends `x` with `dec` decimals (trailing zeros trimmed), or `null` when
/// it is not finite.
pub fn push_num(out: &mut String, x: f64, dec: usize) {
    if !x.is_finite() {
        out.push_str("null");
        return;
    }
    let start = out.len();
    let _ = write!(out, "{x:.dec$}");
    if out[start..].contains('.') {
        let trimmed = out[start..]
            .trim_end_matches('0')
            .trim_end_matches('.')
            .len();
        out.truncate(start + trimmed);
    }
    if &out[start..] == "-0" {
        out.truncate(start);
        out.push('0');
    }
}

/// `x` rounded to `dec` decimals, as written by [`push_num`].
pub fn rounded(x: f64, dec: usize) -> f64 {
    let mut s = String::new();
    push_num(&mut s, x, dec);
    s.parse().unwrap_or(f64::NAN)
}

/// Builds one JSON object line with fields in insertion order.
#[derive(Debug)]
pub struct JsonLine {
    buf: String,
    first: bool,
}

impl JsonLine {
    /// `{"type":"<kind>"`.
    pub fn new(kind: &str) -> Self {
        let mut l = Self {
            buf: String::with_capacity(256),
            first: true,
        };
        l.string("type", kind);
        l
    }

    fn key(&mut self, name: &str) {
        self.buf.push(if self.first { '{' } else { ',' });
        self.first = false;
        self.buf.push('"');
        self.buf.push_str(name);
        self.buf.push_str("\":");
    }

    /// A number with `dec` decimals; `null` when `None` or not finite.
    pub fn num(&mut self, name: &str, x: Option<f64>, dec: usize) -> &mut Self {
        self.key(name);
        push_num(&mut self.buf, x.unwrap_or(f64::NAN), dec);
        self
    }

    /// A number exactly as given (shortest text that reads back as the same
    /// `f64`), `null` when `None` or not finite: for values the user gave,
    /// such as the linear FTc K.
    pub fn num_exact(&mut self, name: &str, x: Option<f64>) -> &mut Self {
        self.key(name);
        match x.filter(|x| x.is_finite()) {
            Some(x) => {
                let _ = write!(self.buf, "{x}");
            }
            None => self.buf.push_str("null"),
        }
        self
    }

    /// An integer.
    pub fn int(&mut self, name: &str, x: u64) -> &mut Self {
        self.key(name);
        let _ = write!(self.buf, "{x}");
        self
    }

    /// A signed integer.
    pub fn signed(&mut self, name: &str, x: i64) -> &mut Self {
        self.key(name);
        let _ = write!(self.buf, "{x}");
        self
    }

    /// A boolean, or `null`.
    pub fn boolean(&mut self, name: &str, x: Option<bool>) -> &mut Self {
        self.key(name);
        self.buf.push_str(match x {
            Some(true) => "true",
            Some(false) => "false",
            None => "null",
        });
        self
    }

    /// A string (escaped).
    pub fn string(&mut self, name: &str, s: &str) -> &mut Self {
        self.key(name);
        push_json_string(&mut self.buf, s);
        self
    }

    /// A string or `null`.
    pub fn opt_string(&mut self, name: &str, s: Option<&str>) -> &mut Self {
        match s {
            Some(s) => self.string(name, s),
            None => {
                self.key(name);
                self.buf.push_str("null");
                self
            }
        }
    }

    /// A value already serialised as JSON.
    pub fn raw(&mut self, name: &str, json: &str) -> &mut Self {
        self.key(name);
        self.buf.push_str(json);
        self
    }

    /// A two-number array `[a, b]`.
    pub fn pair(&mut self, name: &str, a: f64, b: f64, dec: usize) -> &mut Self {
        self.key(name);
        self.buf.push('[');
        push_num(&mut self.buf, a, dec);
        self.buf.push(',');
        push_num(&mut self.buf, b, dec);
        self.buf.push(']');
        self
    }

    /// A JSON object without a `type` member (for nested objects).
    pub fn object() -> Self {
        Self {
            buf: String::with_capacity(256),
            first: true,
        }
    }

    /// The finished object, without a line end.
    pub fn finish_object(&mut self) -> String {
        let mut out = std::mem::take(&mut self.buf);
        if self.first {
            out.push('{');
        }
        out.push('}');
        out
    }

    /// The finished line, with its `\n`.
    pub fn finish(&mut self) -> String {
        let mut out = self.finish_object();
        out.push('\n');
        out
    }
}

/// Appends `s` as a JSON string literal.
pub fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The numeric beat values in spec order (`None` = null), paired with their
/// field names: what both the JSON line and the CSV row write.
pub fn beat_numbers(b: &Beat) -> [(&'static str, Option<f64>); 15] {
    let fin = |x: f64| Some(x).filter(|x| x.is_finite());
    [
        ("onset_s", fin(b.onset_s)),
        ("peak_s", fin(b.peak_s)),
        ("end_s", fin(b.end_s)),
        ("next_onset_s", fin(b.next_onset_s)),
        ("ft_ms", fin(b.ft_ms)),
        ("cycle_s", fin(b.cycle_s)),
        ("hr_bpm", fin(b.hr_bpm)),
        ("ftc_ms", fin(b.ftc_ms)),
        ("sd_cm", fin(b.sd_cm)),
        ("pv_cm_s", fin(b.pv_cm_s)),
        ("ma_cm_s2", b.ma_cm_s2.filter(|x| x.is_finite())),
        ("md_cm_min", fin(b.md_cm_min)),
        ("sv_ml", b.sv_ml.filter(|x| x.is_finite())),
        ("co_l_min", b.co_l_min.filter(|x| x.is_finite())),
        ("quality", fin(b.quality)),
    ]
}

/// The `beat` line. `index` is the analyser's own count (0, 1, 2, … over the
/// whole output, whatever the pipeline restarts). After the spec's fields
/// come added ones (allowed by the spec): the SV range `sv_low_ml` /
/// `sv_high_ml`, the cardiac and stroke-volume indices `ci_l_min_m2`,
/// `svi_ml_m2` (null without demographics), and `irregular_rhythm` (the
/// rhythm was irregular, e.g. atrial fibrillation, when the beat was
/// emitted: premature beats are not rejected as ectopic then, and SVV is
/// not valid), and `ft_low_flow` (the peak is too low for the falling
/// edge's fit band to start under a third of it: FT is less certain,
/// `Beat::ft_low_flow`).
pub fn beat_json(index: u64, b: &Beat, ci_l_min_m2: Option<f64>, svi_ml_m2: Option<f64>) -> String {
    let mut l = JsonLine::new("beat");
    l.int("index", index);
    for ((name, x), (_, dec)) in beat_numbers(b).into_iter().zip(BEAT_DECIMALS) {
        l.num(name, x, dec);
    }
    l.boolean("accepted", Some(b.accepted));
    l.opt_string("reject_reason", b.reject_reason.map(|r| r.as_str()));
    l.num("sv_low_ml", b.sv_range_ml.map(|r| r.0), decimals::SV);
    l.num("sv_high_ml", b.sv_range_ml.map(|r| r.1), decimals::SV);
    l.num("ci_l_min_m2", ci_l_min_m2, decimals::CO);
    l.num("svi_ml_m2", svi_ml_m2, decimals::SV);
    l.boolean("irregular_rhythm", Some(b.irregular_rhythm));
    l.boolean("ft_low_flow", Some(b.ft_low_flow));
    l.finish()
}

/// The CSV header line.
pub fn csv_header() -> String {
    let mut s = BEAT_FIELDS.join(",");
    s.push('\n');
    s
}

/// One CSV beat row: the spec's fields in order, `null` as an empty cell.
pub fn beat_csv(index: u64, b: &Beat) -> String {
    let mut s = String::with_capacity(160);
    let _ = write!(s, "{index}");
    for ((_, x), (_, dec)) in beat_numbers(b).into_iter().zip(BEAT_DECIMALS) {
        s.push(',');
        if let Some(x) = x {
            push_num(&mut s, x, dec);
        }
    }
    s.push_str(if b.accepted { ",true," } else { ",false," });
    if let Some(r) = b.reject_reason {
        s.push_str(r.as_str());
    }
    s.push('\n');
    s
}

/// Exact median of values quantised to the decimals they are written with.
///
/// Memory grows with the number of distinct written values, not with the
/// number of beats: a physiological quantity at its output resolution takes
/// a few thousand distinct values over any length of recording. A cap
/// ([`QuantMedian::MAX_DISTINCT`]) bounds even adversarial input: new
/// distinct values beyond it are left out.
#[derive(Debug, Clone)]
pub struct QuantMedian {
    dec: usize,
    scale: f64,
    counts: BTreeMap<i64, u64>,
    n: u64,
}

impl QuantMedian {
    /// Most distinct values held.
    pub const MAX_DISTINCT: usize = 1 << 20;

    /// A median of values written with `dec` decimals.
    pub fn new(dec: usize) -> Self {
        Self {
            dec,
            scale: 10f64.powi(i32::try_from(dec).unwrap_or(6)),
            counts: BTreeMap::new(),
            n: 0,
        }
    }

    /// Adds a value (non-finite values are ignored).
    pub fn add(&mut self, x: f64) {
        if !x.is_finite() {
            return;
        }
        // Quantise exactly as the value is written (format rounding).
        let k = (rounded(x, self.dec) * self.scale).round();
        if k.abs() > 9.0e15 {
            return;
        }
        let k = k as i64;
        if self.counts.len() >= Self::MAX_DISTINCT && !self.counts.contains_key(&k) {
            return;
        }
        *self.counts.entry(k).or_insert(0) += 1;
        self.n += 1;
    }

    /// The median (mean of the two middle values for an even count).
    pub fn median(&self) -> Option<f64> {
        if self.n == 0 {
            return None;
        }
        let lo_rank = (self.n - 1) / 2;
        let hi_rank = self.n / 2;
        let (mut lo, mut hi) = (None, None);
        let mut seen = 0u64;
        for (&k, &c) in &self.counts {
            let next = seen + c;
            if lo.is_none() && lo_rank < next {
                lo = Some(k);
            }
            if hi_rank < next {
                hi = Some(k);
                break;
            }
            seen = next;
        }
        let (lo, hi) = (lo?, hi?);
        Some((lo as f64 + hi as f64) / 2.0 / self.scale)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_trimmed_and_never_nan() {
        let mut s = String::new();
        push_num(&mut s, 12.340, 4);
        s.push(' ');
        push_num(&mut s, 3.0, 2);
        s.push(' ');
        push_num(&mut s, -0.00001, 3);
        s.push(' ');
        push_num(&mut s, f64::NAN, 3);
        s.push(' ');
        push_num(&mut s, f64::INFINITY, 3);
        assert_eq!(s, "12.34 3 0 null null");
    }

    #[test]
    fn json_line_keeps_field_order_and_escapes() {
        let line = JsonLine::new("event")
            .num("t_s", Some(1.5), 3)
            .string("kind", "a\"b\n")
            .boolean("x", None)
            .pair("w", 1.0, 2.25, 2)
            .finish();
        assert_eq!(
            line,
            "{\"type\":\"event\",\"t_s\":1.5,\"kind\":\"a\\\"b\\n\",\"x\":null,\"w\":[1,2.25]}\n"
        );
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["kind"], "a\"b\n");
    }

    #[test]
    fn quantised_median_matches_a_sort_of_the_written_values() {
        let xs = [3.14169, 2.71838, 1.41431, 1.73205, 2.23607, 2.0];
        let mut m = QuantMedian::new(3);
        for x in xs {
            m.add(x);
        }
        let mut r: Vec<f64> = xs.iter().map(|&x| rounded(x, 3)).collect();
        r.sort_by(f64::total_cmp);
        let expect = (r[2] + r[3]) / 2.0;
        assert!((m.median().unwrap() - expect).abs() < 1e-12);
        m.add(100.0);
        assert!((m.median().unwrap() - r[3]).abs() < 1e-12);
        assert_eq!(QuantMedian::new(2).median(), None);
    }

    #[test]
    fn exact_numbers_are_not_rounded() {
        let line = JsonLine::new("stream")
            .num_exact("k", Some(1.234_567_89))
            .num_exact("j", Some(-2.0))
            .num_exact("n", None)
            .num_exact("i", Some(f64::INFINITY))
            .finish();
        assert_eq!(
            line,
            "{\"type\":\"stream\",\"k\":1.23456789,\"j\":-2,\"n\":null,\"i\":null}\n"
        );
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["k"].as_f64(), Some(1.234_567_89));
    }

    #[test]
    fn csv_header_is_the_spec_field_list() {
        assert_eq!(
            csv_header(),
            "index,onset_s,peak_s,end_s,next_onset_s,ft_ms,cycle_s,hr_bpm,ftc_ms,sd_cm,pv_cm_s,\
             ma_cm_s2,md_cm_min,sv_ml,co_l_min,quality,accepted,reject_reason\n"
        );
    }
}
