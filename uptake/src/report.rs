//! The auditors' report (spec "Report"): monitored cases from intact
//! bundles against the hospitals' eligible cases, with disclosure control,
//! as `report.csv`, `excluded.csv` and a self-contained `report.html`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::disclosure::{Published, published_from_count, uptake_pct_text};
use crate::record::{Category, OdsCode, Period};
use crate::verify::{KeyRegister, RegisterError, Verification, verify_bundles};

/// What went wrong making a report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The eligible-cases file is malformed.
    #[error("eligible cases {path}: line {line}: {what}")]
    Denominator {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: u64,
        /// What is wrong.
        what: &'static str,
    },
    /// The key register is malformed.
    #[error(transparent)]
    Register(#[from] RegisterError),
    /// `--by` named something other than org, period, category.
    #[error("--by: {0}")]
    Dimensions(&'static str),
}

/// Which of org, period, category the report breaks down by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dims {
    /// Break down by organisation.
    pub org: bool,
    /// Break down by month.
    pub period: bool,
    /// Break down by category.
    pub category: bool,
}

impl Dims {
    /// All three (the default).
    pub const ALL: Dims = Dims {
        org: true,
        period: true,
        category: true,
    };

    /// Parses a comma-separated subset of `org,period,category`, any order.
    pub fn parse(text: &str) -> Result<Self, ReportError> {
        let mut dims = Dims {
            org: false,
            period: false,
            category: false,
        };
        for word in text.split(',') {
            let slot = match word.trim() {
                "org" => &mut dims.org,
                "period" => &mut dims.period,
                "category" => &mut dims.category,
                _ => {
                    return Err(ReportError::Dimensions(
                        "expected a comma-separated subset of org,period,category",
                    ));
                }
            };
            if *slot {
                return Err(ReportError::Dimensions("a dimension is named twice"));
            }
            *slot = true;
        }
        Ok(dims)
    }
}

/// A full combination of the three dimensions.
pub type Cell = (OdsCode, Period, Category);

/// The eligible-cases file (spec "Eligible cases"): rows summed per cell.
#[derive(Debug, Clone, Default)]
pub struct Denominators {
    eligible: HashMap<Cell, u64>,
}

impl Denominators {
    /// Reads `org,period,category,eligible`.
    pub fn load(path: &Path) -> Result<Self, ReportError> {
        let text = std::fs::read_to_string(path).map_err(|source| ReportError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text).map_err(|(line, what)| ReportError::Denominator {
            path: path.to_owned(),
            line,
            what,
        })
    }

    /// Parses the file's text; errors give the 1-based line.
    pub fn parse(text: &str) -> Result<Self, (u64, &'static str)> {
        let mut lines = text.lines().zip(1u64..);
        match lines.next() {
            Some((h, _)) if h.trim_end_matches('\r') == "org,period,category,eligible" => {}
            _ => return Err((1, "header is not `org,period,category,eligible`")),
        }
        let mut eligible: HashMap<Cell, u64> = HashMap::new();
        for (line, n) in lines {
            let line = line.trim_end_matches('\r');
            if line.is_empty() {
                continue;
            }
            let v: Vec<&str> = line.split(',').collect();
            let [org, period, category, count] = v[..] else {
                return Err((n, "expected four values org,period,category,eligible"));
            };
            let org = OdsCode::parse(org).map_err(|_| (n, "org is not an ODS code"))?;
            let period = Period::parse(period).map_err(|_| (n, "period is not YYYY-MM"))?;
            let category =
                Category::parse(category).map_err(|_| (n, "category is not in the vocabulary"))?;
            if count.is_empty() || !count.bytes().all(|c| c.is_ascii_digit()) {
                return Err((n, "eligible is not a non-negative integer"));
            }
            let count: u64 = count
                .parse()
                .map_err(|_| (n, "eligible is not a non-negative integer"))?;
            let slot = eligible.entry((org, period, category)).or_default();
            *slot = slot.saturating_add(count);
        }
        Ok(Self { eligible })
    }
}

/// A row key: `None` is a dimension left out (`all`).
type RowKey = (Option<OdsCode>, Option<Period>, Option<Category>);

fn project(dims: Dims, (org, period, category): Cell) -> RowKey {
    (
        dims.org.then_some(org),
        dims.period.then_some(period),
        dims.category.then_some(category),
    )
}

/// One row of the report, with raw counts (disclosure control is applied
/// when it is written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Organisation or `all`.
    pub org: String,
    /// Month or `all`.
    pub period: String,
    /// Category or `all`.
    pub category: String,
    /// Monitored records (raw).
    pub monitored: u64,
    /// Eligible cases (raw); `None` when a matching cell with monitored
    /// records has no denominator.
    pub eligible: Option<u64>,
}

impl Row {
    /// The published monitored count.
    pub fn monitored_published(&self) -> Published {
        published_from_count(self.monitored)
    }

    /// The published eligible count (`None`: empty).
    pub fn eligible_published(&self) -> Option<Published> {
        self.eligible.map(published_from_count)
    }

    /// The published uptake percentage text.
    pub fn uptake_pct(&self) -> String {
        uptake_pct_text(self.monitored_published(), self.eligible_published())
    }
}

fn all_or(value: Option<String>) -> String {
    value.unwrap_or_else(|| "all".to_owned())
}

/// Builds the rows for `dims` from monitored counts per cell and the
/// denominators. Returns the rows (sorted by org, period, category as text)
/// and the cells that have monitored records but no denominator row.
pub fn aggregate(
    monitored: &HashMap<Cell, u64>,
    denominators: &Denominators,
    dims: Dims,
) -> (Vec<Row>, Vec<Cell>) {
    #[derive(Default)]
    struct Acc {
        monitored: u64,
        eligible: u64,
        missing: bool,
    }
    let mut acc: HashMap<RowKey, Acc> = HashMap::new();
    let mut missing = Vec::new();
    for (&cell, &n) in monitored {
        let a = acc.entry(project(dims, cell)).or_default();
        a.monitored = a.monitored.saturating_add(n);
        if n > 0 && !denominators.eligible.contains_key(&cell) {
            a.missing = true;
            missing.push(cell);
        }
    }
    // Counts come from outside (the denominator file): sums saturate, as
    // each cell's sum does on reading, rather than overflow.
    for (&cell, &n) in &denominators.eligible {
        let a = acc.entry(project(dims, cell)).or_default();
        a.eligible = a.eligible.saturating_add(n);
    }
    let mut rows: Vec<Row> = acc
        .into_iter()
        .filter(|(_, a)| a.monitored > 0 || a.eligible > 0)
        .map(|((org, period, category), a)| Row {
            org: all_or(org.map(|o| o.to_string())),
            period: all_or(period.map(|p| p.to_string())),
            category: all_or(category.map(|c| c.as_str().to_owned())),
            monitored: a.monitored,
            eligible: (!a.missing).then_some(a.eligible),
        })
        .collect();
    rows.sort_by(|a, b| (&a.org, &a.period, &a.category).cmp(&(&b.org, &b.period, &b.category)));
    missing.sort_by(|a, b| (a.0, a.1, a.2.as_str()).cmp(&(b.0, b.1, b.2.as_str())));
    (rows, missing)
}

/// Quotes a CSV value when it needs it (RFC 4180).
fn csv_value(v: &str) -> String {
    if v.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v.to_owned()
    }
}

/// `report.csv` text.
pub fn report_csv(rows: &[Row]) -> String {
    let mut s = String::from("org,period,category,monitored,eligible,uptake_pct\n");
    for r in rows {
        let eligible = r
            .eligible_published()
            .map(|p| p.to_string())
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "{},{},{},{},{},{}",
            r.org,
            r.period,
            r.category,
            r.monitored_published(),
            eligible,
            r.uptake_pct()
        );
    }
    s
}

/// One record not counted, for `excluded.csv`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Excluded {
    /// The bundle's directory name.
    pub bundle: String,
    /// Line of `records.csv` (0: the bundle as a whole).
    pub line: u64,
    /// The record id when it could be read.
    pub record_id: String,
    /// Why.
    pub reason: String,
}

/// The records of every bundle with errors, each with its reason: the
/// error on its own line if it has one, else the bundle's first error.
pub fn excluded_records(verification: &Verification) -> Vec<Excluded> {
    let mut out = Vec::new();
    for b in verification.bundles.iter().filter(|b| b.has_errors()) {
        let bundle = b
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| b.path.display().to_string());
        let first = b
            .first_error()
            .map(|p| format!("bundle set aside: line {}: {}", p.line, p.what))
            .unwrap_or_default();
        let mut lines: Vec<(u64, String)> = b
            .entries
            .iter()
            .map(|e| (e.line, e.record_id.to_string()))
            .chain(
                b.unparsed
                    .iter()
                    .map(|(l, id)| (*l, id.map(|i| i.to_string()).unwrap_or_default())),
            )
            .collect();
        lines.sort();
        if lines.is_empty() {
            lines.push((0, String::new()));
        }
        for (line, record_id) in lines {
            let reason = b
                .problems
                .iter()
                .find(|p| p.line == line && p.severity == crate::verify::Severity::Error)
                .map(|p| p.what.clone())
                .unwrap_or_else(|| first.clone());
            out.push(Excluded {
                bundle: bundle.clone(),
                line,
                record_id,
                reason,
            });
        }
    }
    out
}

/// `excluded.csv` text.
pub fn excluded_csv(excluded: &[Excluded]) -> String {
    let mut s = String::from("bundle,line,record_id,reason\n");
    for e in excluded {
        let _ = writeln!(
            s,
            "{},{},{},{}",
            csv_value(&e.bundle),
            e.line,
            csv_value(&e.record_id),
            csv_value(&e.reason)
        );
    }
    s
}

/// Escapes text for HTML.
fn html_text(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// An inline SVG line chart of published uptake per month for one
/// organisation; suppressed or unknown months are gaps, labelled.
fn uptake_chart_svg(org: &str, points: &[(String, Row)]) -> String {
    const W: f64 = 720.0;
    const H: f64 = 240.0;
    const LEFT: f64 = 48.0;
    const RIGHT: f64 = 16.0;
    const TOP: f64 = 16.0;
    const BOTTOM: f64 = 56.0;
    let values: Vec<Option<f64>> = points
        .iter()
        .map(|(_, r)| r.uptake_pct().parse::<f64>().ok())
        .collect();
    let top_pct = values
        .iter()
        .flatten()
        .fold(100.0f64, |m, &v| m.max(v))
        .ceil();
    let n = points.len().max(1);
    let x = |i: usize| {
        if n == 1 {
            LEFT + (W - LEFT - RIGHT) / 2.0
        } else {
            LEFT + (W - LEFT - RIGHT) * i as f64 / (n - 1) as f64
        }
    };
    let y = |v: f64| TOP + (H - TOP - BOTTOM) * (1.0 - v / top_pct);
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg role=\"img\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\">\
         <title>Uptake over time, {org}</title>",
        org = html_text(org)
    );
    for k in 0..=4 {
        let v = top_pct * f64::from(k) / 4.0;
        let yy = y(v);
        let _ = write!(
            s,
            "<line x1=\"{LEFT}\" y1=\"{yy:.1}\" x2=\"{x2}\" y2=\"{yy:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{tx}\" y=\"{ty:.1}\" font-size=\"11\" text-anchor=\"end\">{v:.0}%</text>",
            x2 = W - RIGHT,
            tx = LEFT - 4.0,
            ty = yy + 4.0
        );
    }
    // Connect consecutive known months; a gap breaks the line.
    let mut segment: Vec<String> = Vec::new();
    let flush = |segment: &mut Vec<String>, s: &mut String| {
        if segment.len() > 1 {
            let _ = write!(
                s,
                "<polyline fill=\"none\" stroke=\"#1f5fa8\" stroke-width=\"2\" points=\"{}\"/>",
                segment.join(" ")
            );
        }
        segment.clear();
    };
    for (i, v) in values.iter().enumerate() {
        match v {
            Some(v) => segment.push(format!("{:.1},{:.1}", x(i), y(*v))),
            None => flush(&mut segment, &mut s),
        }
    }
    flush(&mut segment, &mut s);
    for (i, ((period, row), v)) in points.iter().zip(&values).enumerate() {
        let xx = x(i);
        match v {
            Some(v) => {
                let _ = write!(
                    s,
                    "<circle cx=\"{xx:.1}\" cy=\"{cy:.1}\" r=\"3\" fill=\"#1f5fa8\"><title>{p}: {pct}%</title></circle>",
                    cy = y(*v),
                    p = html_text(period),
                    pct = row.uptake_pct()
                );
            }
            None => {
                let label = if row.uptake_pct() == "*" { "*" } else { "n/a" };
                let _ = write!(
                    s,
                    "<text x=\"{xx:.1}\" y=\"{yy:.1}\" font-size=\"11\" text-anchor=\"middle\" fill=\"#888\">{label}</text>",
                    yy = H - BOTTOM - 4.0
                );
            }
        }
        let _ = write!(
            s,
            "<text x=\"{xx:.1}\" y=\"{yy:.1}\" font-size=\"10\" text-anchor=\"end\" transform=\"rotate(-45 {xx:.1} {yy:.1})\">{p}</text>",
            yy = H - BOTTOM + 14.0,
            p = html_text(period)
        );
    }
    s.push_str("</svg>");
    s
}

/// `report.html`: the table and one uptake-over-time chart per
/// organisation (from the org × month breakdown), in one file with no
/// scripts and nothing loaded from anywhere; and how many bundles were set
/// aside (`set_aside`), not their names: a directory's name is whatever
/// its exporter typed, and the page is the one that gets published
/// (excluded.csv names them, as the spec says).
pub fn report_html(rows: &[Row], by_org_month: &[Row], set_aside: usize) -> String {
    let mut s = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>ODM uptake report</title>\
         <style>body{font-family:sans-serif;margin:2em;color:#222}\
         table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px}\
         td.n{text-align:right}</style></head><body>\n<h1>Oesophageal Doppler monitoring uptake</h1>\n\
         <p>Counts follow NHS small-number disclosure control: 1&ndash;7 shown as *, \
         other counts rounded to the nearest 5; percentages are computed from the published counts.</p>\n",
    );
    let mut orgs: BTreeMap<&str, Vec<(String, Row)>> = BTreeMap::new();
    for r in by_org_month {
        orgs.entry(&r.org)
            .or_default()
            .push((r.period.clone(), r.clone()));
    }
    s.push_str("<h2>Uptake over time</h2>\n");
    for (org, points) in &orgs {
        let _ = writeln!(
            s,
            "<h3>{}</h3>\n{}",
            html_text(org),
            uptake_chart_svg(org, points)
        );
    }
    s.push_str(
        "<h2>Table</h2>\n<table><thead><tr><th>org</th><th>period</th><th>category</th>\
         <th>monitored</th><th>eligible</th><th>uptake %</th></tr></thead><tbody>\n",
    );
    for r in rows {
        let eligible = r
            .eligible_published()
            .map(|p| p.to_string())
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            html_text(&r.org),
            html_text(&r.period),
            html_text(&r.category),
            r.monitored_published(),
            eligible,
            r.uptake_pct()
        );
    }
    s.push_str("</tbody></table>\n");
    if set_aside > 0 {
        let _ = writeln!(
            s,
            "<h2>Bundles set aside</h2>\n<p>{set_aside} {}: named, with their records, in excluded.csv.</p>",
            if set_aside == 1 { "bundle" } else { "bundles" }
        );
    }
    s.push_str("</body></html>\n");
    s
}

/// Every directory directly inside `dir` that holds a `manifest.json`,
/// sorted by name.
pub fn find_bundles(dir: &Path) -> Result<Vec<PathBuf>, ReportError> {
    let io = |source| ReportError::Io {
        path: dir.to_owned(),
        source,
    };
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.is_dir() && path.join(crate::bundle::MANIFEST_FILE).is_file() {
            found.push(path);
        }
    }
    found.sort();
    Ok(found)
}

/// What a report run found, for the caller to name on standard error.
#[derive(Debug)]
pub struct ReportOutcome {
    /// Every bundle's verdict.
    pub verification: Verification,
    /// Cells with monitored records but no denominator row.
    pub missing_denominators: Vec<Cell>,
    /// Rows written to `report.csv`.
    pub rows: usize,
    /// Records counted (after removing duplicates).
    pub counted_records: u64,
}

/// Runs the whole report: finds and verifies the bundles in `bundles_dir`,
/// counts intact records, and writes `report.csv`, `excluded.csv` and
/// `report.html` into `out_dir` (created if missing).
pub fn write_report(
    bundles_dir: &Path,
    denominators: &Denominators,
    register: Option<&KeyRegister>,
    dims: Dims,
    out_dir: &Path,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<ReportOutcome, ReportError> {
    let bundles = find_bundles(bundles_dir)?;
    let verification = verify_bundles(&bundles, register, progress);
    let mut monitored: HashMap<Cell, u64> = HashMap::new();
    let mut counted_records = 0u64;
    for e in verification.counted() {
        *monitored.entry((e.org, e.period, e.category)).or_default() += 1;
        counted_records += 1;
    }
    let (rows, missing) = aggregate(&monitored, denominators, dims);
    let (chart_rows, _) = aggregate(
        &monitored,
        denominators,
        Dims {
            org: true,
            period: true,
            category: false,
        },
    );
    let excluded = excluded_records(&verification);
    let set_aside = excluded
        .iter()
        .map(|e| e.bundle.as_str())
        .collect::<BTreeSet<_>>()
        .len();
    std::fs::create_dir_all(out_dir).map_err(|source| ReportError::Io {
        path: out_dir.to_owned(),
        source,
    })?;
    let write = |name: &str, text: String| {
        let path = out_dir.join(name);
        std::fs::write(&path, text).map_err(|source| ReportError::Io { path, source })
    };
    write("report.csv", report_csv(&rows))?;
    write("excluded.csv", excluded_csv(&excluded))?;
    write("report.html", report_html(&rows, &chart_rows, set_aside))?;
    Ok(ReportOutcome {
        verification,
        missing_denominators: missing,
        rows: rows.len(),
        counted_records,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(org: &str, period: &str, cat: Category) -> Cell {
        (
            OdsCode::parse(org).unwrap(),
            Period::parse(period).unwrap(),
            cat,
        )
    }

    #[test]
    fn rows_sum_matching_cells_and_keep_sites_apart_from_trusts() {
        let mut monitored = HashMap::new();
        monitored.insert(cell("RH8", "2026-01", Category::Colorectal), 9);
        monitored.insert(cell("RH802", "2026-01", Category::Colorectal), 12);
        monitored.insert(cell("RH8", "2026-01", Category::Urology), 4);
        let den = Denominators::parse(
            "org,period,category,eligible\n\
             RH8,2026-01,colorectal,20\n\
             RH8,2026-01,urology,30\n\
             RH802,2026-01,colorectal,15\n\
             RH802,2026-01,colorectal,15\n",
        )
        .unwrap();
        let (rows, missing) = aggregate(&monitored, &den, Dims::ALL);
        assert!(missing.is_empty());
        let csv = report_csv(&rows);
        assert_eq!(
            csv,
            "org,period,category,monitored,eligible,uptake_pct\n\
             RH8,2026-01,colorectal,10,20,50.0\n\
             RH8,2026-01,urology,*,30,*\n\
             RH802,2026-01,colorectal,10,30,33.3\n"
        );
        let (rows, _) = aggregate(&monitored, &den, Dims::parse("org").unwrap());
        assert_eq!(
            report_csv(&rows),
            "org,period,category,monitored,eligible,uptake_pct\n\
             RH8,all,all,15,50,30.0\n\
             RH802,all,all,10,30,33.3\n"
        );
    }

    #[test]
    fn missing_denominator_empties_eligible_and_is_named() {
        let mut monitored = HashMap::new();
        monitored.insert(cell("RH8", "2026-01", Category::Colorectal), 20);
        monitored.insert(cell("RH8", "2026-02", Category::Colorectal), 20);
        let den = Denominators::parse("org,period,category,eligible\nRH8,2026-01,colorectal,40\n")
            .unwrap();
        let (rows, missing) = aggregate(&monitored, &den, Dims::parse("period,org").unwrap());
        assert_eq!(missing, vec![cell("RH8", "2026-02", Category::Colorectal)]);
        assert_eq!(
            report_csv(&rows),
            "org,period,category,monitored,eligible,uptake_pct\n\
             RH8,2026-01,all,20,40,50.0\n\
             RH8,2026-02,all,20,,\n"
        );
        let (rows, _) = aggregate(&monitored, &den, Dims::parse("org").unwrap());
        assert_eq!(
            rows[0].eligible, None,
            "one missing month empties the org total"
        );
    }

    #[test]
    fn huge_denominators_summed_over_cells_saturate_instead_of_overflowing() {
        // Reproduced with the `uptake_bundle` fuzz target: each cell's count
        // saturates on reading, but summing two cells into one row of a
        // coarser breakdown overflowed (a panic in debug builds, a wrapped
        // eligible count of 0 in release).
        let mut monitored = HashMap::new();
        monitored.insert(cell("RH8", "2025-01", Category::Colorectal), 10);
        let den = Denominators::parse(
            "org,period,category,eligible\n\
             RH8,2025-01,colorectal,18446744073709551615\n\
             RH8,2025-02,colorectal,1\n",
        )
        .unwrap();
        let (rows, missing) = aggregate(&monitored, &den, Dims::parse("org").unwrap());
        assert!(missing.is_empty());
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].monitored, 10);
        assert_eq!(rows[0].eligible, Some(u64::MAX));
        assert_eq!(rows[0].uptake_pct(), "0.0");
    }

    #[test]
    fn rows_with_only_eligible_cases_are_reported_and_zero_rows_are_not() {
        let monitored = HashMap::new();
        let den = Denominators::parse(
            "org,period,category,eligible\nRH8,2026-01,vascular,9\nRH8,2026-02,vascular,0\n",
        )
        .unwrap();
        let (rows, _) = aggregate(&monitored, &den, Dims::ALL);
        assert_eq!(
            report_csv(&rows),
            "org,period,category,monitored,eligible,uptake_pct\nRH8,2026-01,vascular,0,10,0.0\n"
        );
    }

    #[test]
    fn excluded_lists_every_record_of_a_bundle_with_errors_with_its_reason() {
        use crate::verify::{BundleCheck, Entry, Problem, Severity};
        let entry = |line| Entry {
            line,
            record_id: crate::RandomId::from_random_bytes([line as u8; 16]),
            hash: crate::ChainHash([line as u8; 32]),
            org: OdsCode::parse("RH8").unwrap(),
            period: Period::parse("2026-01").unwrap(),
            category: Category::Other,
        };
        let bad = BundleCheck {
            path: PathBuf::from("/x/bad"),
            problems: vec![Problem {
                line: 3,
                severity: Severity::Error,
                what: "field software: without , or |".into(),
            }],
            entries: vec![entry(2), entry(4)],
            unparsed: vec![(3, None)],
        };
        let good = BundleCheck {
            path: PathBuf::from("/x/good"),
            problems: vec![],
            entries: vec![entry(2)],
            unparsed: vec![],
        };
        let v = Verification {
            bundles: vec![bad, good],
            failed_alone: vec![true, false],
        };
        let csv = excluded_csv(&excluded_records(&v));
        let id2 = entry(2).record_id;
        let id4 = entry(4).record_id;
        assert_eq!(
            csv,
            format!(
                "bundle,line,record_id,reason\n\
                 bad,2,{id2},\"bundle set aside: line 3: field software: without , or |\"\n\
                 bad,3,,\"field software: without , or |\"\n\
                 bad,4,{id4},\"bundle set aside: line 3: field software: without , or |\"\n"
            )
        );
    }

    #[test]
    fn dims_parse_any_order_and_refuse_unknown_words() {
        assert_eq!(
            Dims::parse("category,org").unwrap(),
            Dims {
                org: true,
                period: false,
                category: true
            }
        );
        assert!(Dims::parse("org,ward").is_err());
        assert!(Dims::parse("org,org").is_err());
    }

    #[test]
    fn denominator_file_errors_name_the_line() {
        let bad =
            "org,period,category,eligible\nRH8,2026-01,colorectal,5\nRH8,2026-1,colorectal,5\n";
        assert_eq!(Denominators::parse(bad).unwrap_err().0, 3);
        assert_eq!(Denominators::parse("x\n").unwrap_err().0, 1);
        let neg = "org,period,category,eligible\nRH8,2026-01,colorectal,-5\n";
        assert_eq!(Denominators::parse(neg).unwrap_err().0, 2);
        // Rust's integer parser takes a leading +; the spec's integer does not.
        let plus = "org,period,category,eligible\nRH8,2026-01,colorectal,+5\n";
        assert_eq!(Denominators::parse(plus).unwrap_err().0, 2);
    }

    fn month(period: &str, monitored: u64, eligible: Option<u64>) -> (String, Row) {
        let row = Row {
            org: "RH8".into(),
            period: period.into(),
            category: "all".into(),
            monitored,
            eligible,
        };
        (period.to_owned(), row)
    }

    /// The chart's geometry, worked by hand: a 720 × 240 plot with margins
    /// 48 left, 16 right, 16 top, 56 bottom, so x runs 48 → 704 and y
    /// from 184 (0 %) to 16 (the top, 100 % unless a month is over it).
    #[test]
    fn the_uptake_chart_places_each_month_and_breaks_its_line_at_gaps() {
        let svg = uptake_chart_svg(
            "R<&>\"",
            &[
                month("2026-01", 20, Some(40)), // 50 %
                month("2026-02", 3, Some(40)),  // suppressed: a gap, "*"
                month("2026-03", 40, Some(40)), // 100 %
                month("2026-04", 30, Some(40)), // 75 %
                month("2026-05", 30, None),     // no denominator: "n/a"
            ],
        );
        assert!(svg.contains("<title>Uptake over time, R&lt;&amp;&gt;&quot;</title>"));
        // x = 48 + 656·i/4; y = 16 + 168·(1 − v/100).
        for (cx, cy, title) in [
            ("48.0", "100.0", "2026-01: 50.0%"),
            ("376.0", "16.0", "2026-03: 100.0%"),
            ("540.0", "58.0", "2026-04: 75.0%"),
        ] {
            let dot = format!(
                "<circle cx=\"{cx}\" cy=\"{cy}\" r=\"3\" fill=\"#1f5fa8\"><title>{title}</title>"
            );
            assert!(svg.contains(&dot), "{dot} in {svg}");
        }
        // Only March–April are consecutive known months: one line.
        assert_eq!(svg.matches("<polyline").count(), 1, "{svg}");
        assert!(svg.contains("points=\"376.0,16.0 540.0,58.0\""), "{svg}");
        assert!(svg.contains(
            "x=\"212.0\" y=\"180.0\" font-size=\"11\" text-anchor=\"middle\" fill=\"#888\">*</text>"
        ));
        assert!(svg.contains("x=\"704.0\" y=\"180.0\" font-size=\"11\" text-anchor=\"middle\" fill=\"#888\">n/a</text>"));
        // Gridlines at 0, 25, 50, 75 and 100 %.
        for (y, pct) in [
            ("184.0", 0),
            ("142.0", 25),
            ("100.0", 50),
            ("58.0", 75),
            ("16.0", 100),
        ] {
            assert!(
                svg.contains(&format!("y1=\"{y}\" x2=\"704\" y2=\"{y}\"")),
                "{y}"
            );
            assert!(svg.contains(&format!(">{pct}%</text>")), "{pct}");
        }
    }

    #[test]
    fn the_uptake_chart_scales_to_a_month_over_100_and_centres_a_lone_month() {
        // 50 of 40 published: 125 %, the chart's top.
        let svg = uptake_chart_svg(
            "RH8",
            &[
                month("2026-01", 20, Some(40)),
                month("2026-02", 50, Some(40)),
            ],
        );
        // y = 16 + 168·(1 − v/125): 50 % → 116.8, 125 % → 16.
        assert!(svg.contains("points=\"48.0,116.8 704.0,16.0\""), "{svg}");
        assert!(svg.contains(">125%</text>"), "{svg}");
        let svg = uptake_chart_svg("RH8", &[month("2026-01", 20, Some(40))]);
        assert!(svg.contains("<circle cx=\"376.0\" cy=\"100.0\""), "{svg}");
        assert!(!svg.contains("<polyline"), "{svg}");
    }
}
