//! The printable calibration certificate (`certificate.html`): one
//! self-contained HTML file — inline CSS and an inline SVG plot, no scripts,
//! no links, nothing fetched — and the plain-text summary printed by
//! `odm calibrate`.

use odm_device_io::calibration::Calibration;
use std::fmt::Write;

/// Escapes text for HTML element content and attribute values.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

fn verdict(pass: bool) -> &'static str {
    if pass { "PASS" } else { "FAIL" }
}

/// A step of 1, 2 or 5 × 10ᵏ that cuts `0..max` into about five intervals.
fn nice_step(max: f64) -> f64 {
    let raw = (max / 5.0).max(1e-9);
    let mag = 10f64.powf(raw.log10().floor());
    let norm = raw / mag;
    let nice = if norm <= 1.0 {
        1.0
    } else if norm <= 2.0 {
        2.0
    } else if norm <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

/// The inline SVG plot: measured against reference, the identity line
/// (a perfect probe) dashed, the fitted line solid, the runs as points.
pub fn plot_svg(cal: &Calibration) -> String {
    const W: f64 = 520.0;
    const H: f64 = 400.0;
    const L: f64 = 64.0; // left margin (axis labels)
    const R: f64 = 16.0;
    const T: f64 = 16.0;
    const B: f64 = 52.0;
    let data_max = cal
        .runs
        .iter()
        .flat_map(|r| [r.reference_cm_s, r.measured_cm_s])
        .filter(|v| v.is_finite())
        .fold(1.0f64, f64::max);
    let step = nice_step(data_max * 1.05);
    let axis_max = (data_max * 1.05 / step).ceil() * step;
    let sx = |v: f64| L + (v / axis_max) * (W - L - R);
    let sy = |v: f64| H - B - (v / axis_max) * (H - T - B);

    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" role="img" aria-label="Measured against reference velocity">"#
    );
    // Grid and tick labels.
    let mut v = 0.0;
    while v <= axis_max + step * 1e-6 {
        let (x, y) = (sx(v), sy(v));
        let _ = write!(
            s,
            r##"<line x1="{x:.1}" y1="{t:.1}" x2="{x:.1}" y2="{b:.1}" stroke="#ddd"/><line x1="{l:.1}" y1="{y:.1}" x2="{r:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{x:.1}" y="{ty:.1}" font-size="11" text-anchor="middle">{v}</text><text x="{tx:.1}" y="{yy:.1}" font-size="11" text-anchor="end">{v}</text>"##,
            t = T,
            b = H - B,
            l = L,
            r = W - R,
            ty = H - B + 16.0,
            tx = L - 6.0,
            yy = y + 4.0,
        );
        v += step;
    }
    let _ = write!(
        s,
        r##"<rect x="{L}" y="{T}" width="{pw}" height="{ph}" fill="none" stroke="#333"/><text x="{cx:.1}" y="{lx:.1}" font-size="12" text-anchor="middle">Reference (phantom) velocity, cm/s</text><text x="14" y="{cy:.1}" font-size="12" text-anchor="middle" transform="rotate(-90 14 {cy:.1})">Measured velocity, cm/s</text>"##,
        pw = W - L - R,
        ph = H - T - B,
        cx = (L + W - R) / 2.0,
        lx = H - 12.0,
        cy = (T + H - B) / 2.0,
    );
    // Identity line, then the fit, clipped to the plot square.
    let _ = write!(
        s,
        r##"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#888" stroke-dasharray="6 4"/>"##,
        sx(0.0),
        sy(0.0),
        sx(axis_max),
        sy(axis_max)
    );
    let line_at = |x: f64| cal.gain * x + cal.offset_cm_s;
    let (mut x0, mut x1) = (0.0, axis_max);
    // Keep the fitted line inside 0..axis_max vertically.
    if cal.gain > 0.0 {
        x0 = f64::max(x0, (0.0 - cal.offset_cm_s) / cal.gain);
        x1 = f64::min(x1, (axis_max - cal.offset_cm_s) / cal.gain);
    }
    if x1 > x0 {
        let _ = write!(
            s,
            r##"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#1f5fbf" stroke-width="2"/>"##,
            sx(x0),
            sy(line_at(x0)),
            sx(x1),
            sy(line_at(x1))
        );
    }
    for r in &cal.runs {
        let colour = if r.within_limit { "#1a7f37" } else { "#c62828" };
        let _ = write!(
            s,
            r##"<circle cx="{:.1}" cy="{:.1}" r="5" fill="{colour}" stroke="#000"><title>{} cm/s → {:.2} cm/s</title></circle>"##,
            sx(r.reference_cm_s),
            sy(r.measured_cm_s),
            r.reference_cm_s,
            r.measured_cm_s
        );
    }
    let _ = write!(
        s,
        r##"<g font-size="11"><line x1="{a:.1}" y1="{y1:.1}" x2="{b:.1}" y2="{y1:.1}" stroke="#1f5fbf" stroke-width="2"/><text x="{c:.1}" y="{t1:.1}">fit: measured = {g:.4} × reference {sign} {o:.2}</text><line x1="{a:.1}" y1="{y2:.1}" x2="{b:.1}" y2="{y2:.1}" stroke="#888" stroke-dasharray="6 4"/><text x="{c:.1}" y="{t2:.1}">identity (a probe that reads true)</text></g>"##,
        a = L + 10.0,
        b = L + 34.0,
        c = L + 40.0,
        y1 = T + 14.0,
        t1 = T + 18.0,
        y2 = T + 30.0,
        t2 = T + 34.0,
        g = cal.gain,
        sign = if cal.offset_cm_s < 0.0 { "−" } else { "+" },
        o = cal.offset_cm_s.abs(),
    );
    s.push_str("</svg>");
    s
}

/// What became of the calibration in the calibration store, stated on the
/// certificate: a FAIL certificate and one never installed must not read as
/// a probe whose correction the monitor applies.
#[derive(Debug, Clone, PartialEq)]
pub enum Installation {
    /// `--install` was not given.
    NotRequested,
    /// An as-left check (`--check`): nothing is installed.
    Check,
    /// Installed: the monitor and `odm analyse` apply it (the store's path).
    Installed(String),
    /// Not installed, and why (the probe's earlier calibration, if any,
    /// stays in force).
    Refused(String),
}

impl Installation {
    fn row(&self) -> String {
        match self {
            Self::NotRequested => "no (<code>--install</code> not given): the monitor does not apply it until it is installed".into(),
            Self::Check => "no: an as-left check of the calibration already installed".into(),
            Self::Installed(dir) => format!(
                "yes, in the calibration store {}: the monitor and <code>odm analyse</code> apply it to this probe",
                escape_html(dir)
            ),
            Self::Refused(why) => format!(
                "<strong>no</strong>: {}; any earlier calibration of this probe stays in force",
                escape_html(why)
            ),
        }
    }
}

/// The whole certificate page; `installation` says whether the correction
/// is in force.
pub fn certificate_html(cal: &Calibration, installation: &Installation) -> String {
    let e = |t: &str| escape_html(t);
    let check = cal.measured_with_correction.is_some();
    let title = if check {
        "Probe calibration check (as left)"
    } else {
        "Probe calibration certificate"
    };
    let pass = cal.pass;
    let mut h = String::new();
    let _ = write!(
        h,
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title} — probe {serial}</title>
<style>
body {{ font-family: "DejaVu Sans", Arial, sans-serif; margin: 24px; color: #111; max-width: 900px; }}
h1 {{ font-size: 22px; margin-bottom: 4px; }}
table {{ border-collapse: collapse; margin: 8px 0 16px 0; }}
th, td {{ border: 1px solid #999; padding: 4px 8px; text-align: left; font-size: 13px; }}
td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
.verdict {{ display: inline-block; font-size: 28px; font-weight: bold; padding: 6px 18px; border: 3px solid; margin: 8px 0; }}
.pass {{ color: #1a7f37; border-color: #1a7f37; }}
.fail {{ color: #c62828; border-color: #c62828; }}
.sig {{ margin-top: 36px; }}
.sig span {{ display: inline-block; width: 280px; border-top: 1px solid #000; margin-right: 40px; padding-top: 4px; font-size: 12px; }}
@media print {{ body {{ margin: 10mm; }} }}
</style>
</head>
<body>
<h1>{title}</h1>
<p>Oesophageal Doppler monitor probe, measured against a flow phantom of known velocity.</p>
<div class="verdict {cls}">{verdict}</div>
"#,
        serial = e(&cal.probe_serial),
        cls = if pass { "pass" } else { "fail" },
        verdict = verdict(pass),
    );
    let _ = write!(
        h,
        r#"<table>
<tr><th>Probe serial</th><td>{serial}</td></tr>
<tr><th>Date</th><td>{date}</td></tr>
<tr><th>Valid until</th><td>{until}</td></tr>
<tr><th>Installed</th><td>{installed}</td></tr>
<tr><th>Engineer</th><td>{eng}</td></tr>
<tr><th>Phantom</th><td>{ph}</td></tr>
<tr><th>Measurement</th><td>{mode}</td></tr>
<tr><th>Probe reported</th><td>{conditions}</td></tr>
<tr><th>Software</th><td>{sw}</td></tr>
</table>
"#,
        serial = e(&cal.probe_serial),
        date = cal.date,
        until = match installation {
            Installation::Refused(_) => "— (not installed, so never applied)".to_string(),
            Installation::Installed(_) if !pass => format!(
                "{} (the correction's term; the probe FAILed)",
                cal.valid_until
            ),
            _ => cal.valid_until.to_string(),
        },
        installed = installation.row(),
        conditions = cal.conditions.map_or(
            "not recorded (applies whatever the probe reports)".to_string(),
            |c| format!(
                "{c} at {} Hz: applied only while the probe reports this carrier and beam angle",
                c.sample_rate_hz
            )
        ),
        eng = e(&cal.engineer),
        ph = e(&cal.phantom),
        mode = match cal.mode {
            odm_device_io::calibration::MeasurementMode::Steady =>
                "steady flow: median of the maximum-velocity envelope over each run",
            odm_device_io::calibration::MeasurementMode::Pulsatile =>
                "pulsatile flow: median beat peak velocity over each run",
        },
        sw = e(&cal.software),
    );
    if let Some(c) = &cal.measured_with_correction {
        let _ = writeln!(
            h,
            "<p>Measured with the probe's installed calibration applied (gain {:.4}, offset {:.2} cm/s): a probe that now reads true has gain ≈ 1 and offset ≈ 0.</p>",
            c.gain, c.offset_cm_s
        );
    }
    h.push_str("<h2>Runs</h2>\n<table>\n<tr><th>#</th><th>Recording</th><th>Reference, cm/s</th><th>Measured, cm/s</th><th>Fitted, cm/s</th><th>Residual, cm/s</th><th>Limit, ± cm/s</th><th>Points</th><th>I/Q image, dB</th><th>SHA-256 (first 16)</th><th>Result</th></tr>\n");
    for (i, r) in cal.runs.iter().enumerate() {
        let _ = writeln!(
            h,
            r#"<tr><td>{n}</td><td>{file}</td><td class="num">{rf:.2}</td><td class="num">{m:.2}</td><td class="num">{f:.2}</td><td class="num">{res:+.2}</td><td class="num">{lim:.2}</td><td class="num">{pts}</td><td class="num">{img}</td><td><code>{hash}</code></td><td>{v}</td></tr>"#,
            n = i + 1,
            file = e(&r.recording),
            rf = r.reference_cm_s,
            m = r.measured_cm_s,
            f = cal.gain * r.reference_cm_s + cal.offset_cm_s,
            res = r.residual_cm_s,
            lim = r.residual_limit_cm_s,
            pts = r.points,
            img = if r.iq_channel_fault {
                "dead channel".to_string()
            } else {
                r.iq_image_db
                    .map_or("—".to_string(), |db| format!("{db:.1}"))
            },
            hash = r
                .sha256
                .as_deref()
                .map_or("—".to_string(), |h| e(h.get(..16).unwrap_or(h))),
            v = verdict(r.within_limit),
        );
    }
    h.push_str("</table>\n");
    if cal.runs.iter().any(|r| r.sha256.is_some()) {
        h.push_str("<p>Each run's recording is named by the SHA-256 of its bytes (in full in calibration.json): <code>sha256sum FILE</code> shows which file it was.</p>\n");
    }
    if let Some(note) = iq_image_note(cal) {
        let _ = writeln!(h, "<p>{}</p>", e(&note));
    }
    if let Some(note) = channel_fault_note(cal) {
        let _ = writeln!(h, "<p><strong>{}</strong></p>", e(&note));
    }
    h.push_str("<h2>Fit: measured = gain × reference + offset</h2>\n");
    let _ = write!(
        h,
        r#"<table>
<tr><th>Gain</th><td class="num">{g:.4}</td><td>95% confidence interval {lo:.4} – {hi:.4} (Student's t, {dof} degrees of freedom)</td></tr>
<tr><th>Offset</th><td class="num">{o:+.2} cm/s</td><td></td></tr>
{offset_limit}
<tr><th>R²</th><td class="num">{r2:.5}</td><td></td></tr>
<tr><th>Gain limit</th><td class="num">1 ± {tol}</td><td>{gv}</td></tr>
<tr><th>Residual limit</th><td class="num">± max({ra} cm/s, {rp}%)</td><td>{rv}</td></tr>
</table>
<p>Correction applied by the monitor for this probe: v<sub>true</sub> = (v<sub>measured</sub> − offset) / gain.</p>
"#,
        g = cal.gain,
        lo = cal.gain_ci95[0],
        hi = cal.gain_ci95[1],
        dof = cal.runs.len().saturating_sub(2),
        o = cal.offset_cm_s,
        r2 = cal.r2,
        tol = cal.limits.gain_tolerance,
        gv = verdict(cal.gain_within_tolerance),
        ra = cal.limits.residual_limit_cm_s,
        rp = cal.limits.residual_limit_pct,
        rv = verdict(cal.runs.iter().all(|r| r.within_limit)),
        offset_limit = match (cal.limits.offset_tolerance_cm_s, cal.offset_within_tolerance) {
            (Some(tol), Some(ok)) => format!(
                r#"<tr><th>Offset limit</th><td class="num">± {tol} cm/s</td><td>{}</td></tr>"#,
                verdict(ok)
            ),
            _ => "<tr><th>Offset limit</th><td class=\"num\">—</td><td>not judged (made before offsets were)</td></tr>".to_string(),
        },
    );
    h.push_str("<h2>Measured against reference</h2>\n");
    h.push_str(&plot_svg(cal));
    h.push('\n');
    if !pass {
        h.push_str("<p><strong>FAIL:</strong> the probe is outside its acceptance limits. See docs/calibration.md, \"What to do on FAIL\".</p>\n");
    }
    h.push_str(
        r#"<div class="sig"><span>Engineer signature and date</span><span>Checked by (name, signature, date)</span></div>
</body>
</html>
"#,
    );
    h
}

/// An advisory when a run's I/Q image stands above the level at which the
/// analysis corrects it (docs/dsp.md, stage 1a): the velocities are sound,
/// the probe interface wants a service. Not an acceptance criterion.
pub fn iq_image_note(cal: &Calibration) -> Option<String> {
    let threshold_db = odm_dsp::iq::correction_threshold_image_db();
    let worst_db = cal
        .runs
        .iter()
        .filter_map(|r| r.iq_image_db)
        .fold(f64::NEG_INFINITY, f64::max);
    (worst_db > threshold_db).then(|| {
        format!(
            "Note: the probe interface's I/Q mirror image reached {worst_db:.1} dB under the signal \
             (above {threshold_db:.1} dB): its quadrature demodulator is out of balance. The monitor \
             measures and corrects this, so the velocities above are sound, but the interface \
             should be serviced."
        )
    })
}

/// The failure note when a run saw a dead or broken I/Q channel: the
/// receive path is broken, so the calibration FAILs whatever its numbers.
pub fn channel_fault_note(cal: &Calibration) -> Option<String> {
    let runs: Vec<String> = cal
        .runs
        .iter()
        .enumerate()
        .filter(|(_, r)| r.iq_channel_fault)
        .map(|(i, _)| (i + 1).to_string())
        .collect();
    (!runs.is_empty()).then(|| {
        format!(
            "Receive path fault: one I/Q channel of the probe interface was dead or broken in run {}. \
             Direction and velocity cannot be trusted through it: the calibration FAILs. Have the \
             interface or cable serviced and repeat the runs.",
            runs.join(", ")
        )
    })
}

/// The summary `odm calibrate` prints: one line per run, then the fit and the verdict.
pub fn summary_text(cal: &Calibration) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<3} {:>10} {:>10} {:>9} {:>8}  result  recording",
        "run", "ref cm/s", "meas cm/s", "resid", "limit"
    );
    for (i, r) in cal.runs.iter().enumerate() {
        let _ = writeln!(
            s,
            "{:<3} {:>10.2} {:>10.2} {:>+9.2} {:>8.2}  {:<6}  {}",
            i + 1,
            r.reference_cm_s,
            r.measured_cm_s,
            r.residual_cm_s,
            r.residual_limit_cm_s,
            verdict(r.within_limit),
            r.recording
        );
    }
    if let Some(note) = iq_image_note(cal) {
        let _ = writeln!(s, "{note}");
    }
    if let Some(note) = channel_fault_note(cal) {
        let _ = writeln!(s, "{note}");
    }
    let offset_limit = match (
        cal.limits.offset_tolerance_cm_s,
        cal.offset_within_tolerance,
    ) {
        (Some(tol), Some(ok)) => format!("; limit ± {tol}: {}", verdict(ok)),
        _ => String::new(),
    };
    let _ = writeln!(
        s,
        "gain {:.4} (95% CI {:.4}–{:.4}; limit 1 ± {}: {}), offset {:+.2} cm/s{offset_limit}, R² {:.5}",
        cal.gain,
        cal.gain_ci95[0],
        cal.gain_ci95[1],
        cal.limits.gain_tolerance,
        verdict(cal.gain_within_tolerance),
        cal.offset_cm_s,
        cal.r2
    );
    let _ = write!(
        s,
        "probe {}: {} (valid until {})",
        cal.probe_serial,
        verdict(cal.pass),
        cal.valid_until
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use odm_device_io::calibration::{
        CALIBRATION_FORMAT, CALIBRATION_VERSION, CalDate, CalibrationLimits, CalibrationRun,
        MeasurementMode,
    };

    fn cal(pass: bool, engineer: &str) -> Calibration {
        let refs = [20.0, 50.0, 100.0, 150.0];
        Calibration {
            format: CALIBRATION_FORMAT.into(),
            version: CALIBRATION_VERSION,
            probe_serial: "P-1".into(),
            date: CalDate::from_ymd(2026, 11, 30).unwrap_or_else(|| panic!("date")),
            valid_until: CalDate::from_ymd(2027, 11, 30).unwrap_or_else(|| panic!("date")),
            engineer: engineer.into(),
            phantom: "string phantom <SP-2>".into(),
            mode: MeasurementMode::Steady,
            gain: if pass { 1.01 } else { 1.07 },
            offset_cm_s: -0.3,
            gain_ci95: [1.0, 1.1],
            r2: 0.99999,
            residuals_cm_s: vec![0.1; 4],
            gain_within_tolerance: pass,
            offset_within_tolerance: Some(true),
            pass,
            limits: CalibrationLimits {
                gain_tolerance: 0.05,
                residual_limit_cm_s: 3.0,
                residual_limit_pct: 3.0,
                offset_tolerance_cm_s: Some(3.0),
            },
            runs: refs
                .iter()
                .map(|&r| CalibrationRun {
                    recording: format!("run-{r}.odmrec"),
                    reference_cm_s: r,
                    measured_cm_s: r * 1.07,
                    residual_cm_s: 0.1,
                    residual_limit_cm_s: 3.0,
                    within_limit: true,
                    points: 1000,
                    iq_image_db: Some(-52.0),
                    iq_channel_fault: false,
                    sha256: None,
                })
                .collect(),
            measured_with_correction: None,
            software: "odm test".into(),
            conditions: None,
        }
    }

    #[test]
    fn certificate_is_self_contained() {
        let html = certificate_html(&cal(false, "A. Engineer"), &Installation::NotRequested);
        let lower = html.to_lowercase();
        // The only URL allowed is the SVG namespace name, which is never fetched.
        let without_ns = lower.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
        for banned in [
            "http:", "https:", "<script", "<link", "<img", "@import", "url(", "<iframe",
        ] {
            assert!(
                !without_ns.contains(banned),
                "certificate contains {banned}"
            );
        }
        assert!(html.contains("<svg") && html.contains("</svg>"));
    }

    #[test]
    fn certificate_states_identity_runs_and_verdict() {
        let html = certificate_html(&cal(false, "A. Engineer"), &Installation::NotRequested);
        for needle in [
            "P-1",
            "2026-11-30",
            "2027-11-30",
            "A. Engineer",
            "run-150.odmrec",
            ">FAIL<",
            "1.0700",
        ] {
            assert!(html.contains(needle), "missing {needle}");
        }
        // Four runs, four points in the plot.
        assert_eq!(html.matches("<circle").count(), 4);
        let ok = certificate_html(&cal(true, "A. Engineer"), &Installation::NotRequested);
        assert!(ok.contains(">PASS<") && !ok.contains(">FAIL<"));
    }

    #[test]
    fn an_unbalanced_interface_is_noted_but_does_not_fail() {
        let balanced = cal(true, "A. Engineer");
        assert!(iq_image_note(&balanced).is_none());
        let html = certificate_html(&balanced, &Installation::NotRequested);
        assert!(html.contains("<th>I/Q image, dB</th>") && html.contains(">-52.0<"));
        assert!(!html.contains("out of balance"));
        let mut unbalanced = balanced.clone();
        unbalanced.runs[1].iq_image_db = Some(-23.4);
        unbalanced.runs[2].iq_image_db = None;
        let html = certificate_html(&unbalanced, &Installation::NotRequested);
        assert!(html.contains(">-23.4<") && html.contains(">—<"));
        assert!(html.contains("reached -23.4 dB") && html.contains("out of balance"));
        assert!(html.contains(">PASS<"));
        assert!(summary_text(&unbalanced).contains("reached -23.4 dB"));
    }

    /// A dead channel is a FAIL stated on the certificate and in the
    /// summary (an audit found it on standard error only, 2026-12-04); the
    /// offset's limit and verdict are stated beside the gain's.
    #[test]
    fn a_dead_channel_and_the_offset_limit_are_on_the_certificate() {
        let mut c = cal(false, "A. Engineer");
        assert!(channel_fault_note(&c).is_none());
        c.runs[2].iq_channel_fault = true;
        let html = certificate_html(&c, &Installation::NotRequested);
        assert!(
            html.contains(">dead channel<") && html.contains("fault"),
            "{html}"
        );
        assert!(html.contains("in run 3."));
        assert!(summary_text(&c).contains("Receive path fault"));
        assert!(html.contains("<th>Offset limit</th><td class=\"num\">± 3 cm/s</td><td>PASS</td>"));
        assert!(summary_text(&c).contains("offset -0.30 cm/s; limit ± 3: PASS"));
        c.limits.offset_tolerance_cm_s = None;
        c.offset_within_tolerance = None;
        assert!(certificate_html(&c, &Installation::NotRequested).contains("not judged"));
    }

    /// A FAIL certificate said "Valid until" with nothing about whether the
    /// correction was installed (an audit, 2026-12-04).
    #[test]
    fn the_certificate_says_whether_the_calibration_is_in_force() {
        let row = |html: &str, th: &str| {
            let at = html.find(&format!("<th>{th}</th><td>")).unwrap();
            let rest = &html[at + th.len() + 13..];
            rest[..rest.find("</td>").unwrap()].to_string()
        };
        let pass = cal(true, "A. Engineer");
        let html = certificate_html(
            &pass,
            &Installation::Installed("/var/lib/odm/calibrations".into()),
        );
        assert_eq!(row(&html, "Valid until"), "2027-11-30");
        assert!(row(&html, "Installed").starts_with("yes, in the calibration store /var/lib/odm"));
        let html = certificate_html(&pass, &Installation::NotRequested);
        assert!(row(&html, "Installed").starts_with("no (<code>--install</code> not given)"));
        let fail = cal(false, "A. Engineer");
        let html = certificate_html(
            &fail,
            &Installation::Refused("residuals exceed their limits".into()),
        );
        assert_eq!(
            row(&html, "Valid until"),
            "— (not installed, so never applied)"
        );
        assert!(row(&html, "Installed").contains("residuals exceed their limits; any earlier"));
        let html = certificate_html(&fail, &Installation::Installed("/cal".into()));
        assert!(row(&html, "Valid until").contains("the probe FAILed"));
        assert!(row(&html, "Probe reported").starts_with("not recorded"));
        let mut with = fail.clone();
        with.conditions = Some(odm_device_io::calibration::ProbeConditions {
            sample_rate_hz: 20_000,
            carrier_hz: 4_000_000,
            beam_angle_cdeg: 4500,
        });
        let html = certificate_html(&with, &Installation::Installed("/cal".into()));
        assert!(
            row(&html, "Probe reported").starts_with("4.000 MHz, 45.00° at 20000 Hz: applied only")
        );
        let html = certificate_html(&fail, &Installation::Check);
        assert!(row(&html, "Installed").contains("as-left check"));
        assert_eq!(row(&html, "Valid until"), "2027-11-30");
    }

    #[test]
    fn certificate_escapes_text_fields() {
        let html = certificate_html(
            &cal(true, "<script>alert(1)</script> & Co"),
            &Installation::Installed("/srv/<cal>".into()),
        );
        assert!(!html.contains("<script>"));
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co"));
        assert!(html.contains("string phantom &lt;SP-2&gt;"));
        assert!(html.contains("calibration store /srv/&lt;cal&gt;"));
    }

    #[test]
    fn tick_steps_are_one_two_or_five() {
        assert_eq!(nice_step(160.0), 50.0);
        assert_eq!(nice_step(100.0), 20.0);
        assert_eq!(nice_step(9.0), 2.0);
        assert_eq!(nice_step(5.0), 1.0);
    }
}
