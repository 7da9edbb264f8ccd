//! Probe calibration fit: measured velocity against phantom reference
//! velocity by ordinary least squares, with the statistics a calibration
//! certificate reports (residuals, R², the 95% confidence interval of the
//! gain from Student's t) and the acceptance check.
//!
//! The model is `measured ≈ gain · reference + offset` (cm/s). A probe
//! calibrated this way is corrected with `v_true = (v_measured − offset) / gain`
//! ([`LinearFit::true_from_measured_cm_s`]).
//!
//! The t quantile is computed from the regularised incomplete beta function
//! (continued fraction, Numerical Recipes §6.4 / Abramowitz & Stegun 26.5.8)
//! and inverted by bisection, so any positive degrees of freedom work; it is
//! tested against published table values.

use crate::pipeline::ProbeCalibration;
use nalgebra::{DMatrix, DVector, Matrix2};

/// The pipeline correction for a calibration's gain and offset
/// (`v_true = (v_measured − offset)/gain`, no angle change): what the
/// monitor and `odm analyse` pass to [`crate::Pipeline::set_calibration`]
/// when a probe's calibration is found in the store.
pub fn probe_calibration_from(gain: f64, offset_cm_s: f64) -> ProbeCalibration {
    ProbeCalibration {
        gain,
        offset_cm_s,
        beam_angle_deg: None,
    }
}

/// Why a calibration fit could not be made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CalFitError {
    /// Reference and measured lists differ in length.
    #[error("{reference} reference velocities but {measured} measured velocities")]
    LengthMismatch {
        /// Number of reference values.
        reference: usize,
        /// Number of measured values.
        measured: usize,
    },
    /// Fewer points than the fit needs.
    #[error("{got} calibration points; at least {need} are needed")]
    TooFewPoints {
        /// Points given.
        got: usize,
        /// Points needed.
        need: usize,
    },
    /// A value is NaN or infinite.
    #[error("calibration point {index} is not a finite number")]
    NotFinite {
        /// Index of the offending point.
        index: usize,
    },
    /// All reference velocities are (numerically) the same: the gain is undetermined.
    #[error("the reference velocities do not vary: gain and offset cannot be separated")]
    Degenerate,
}

/// A straight-line least-squares fit of measured against reference velocity.
#[derive(Debug, Clone, PartialEq)]
pub struct LinearFit {
    /// Number of points.
    pub n: usize,
    /// Slope: measured cm/s per reference cm/s (1 for a perfect probe).
    pub gain: f64,
    /// Intercept, cm/s (0 for a perfect probe).
    pub offset_cm_s: f64,
    /// `measured − (gain·reference + offset)` for each point, cm/s.
    pub residuals_cm_s: Vec<f64>,
    /// Coefficient of determination, `1 − SS_res / SS_tot` of the measured values.
    pub r2: f64,
    /// Residual standard error `√(SS_res / (n − 2))`, cm/s; `None` when n = 2.
    pub residual_se_cm_s: Option<f64>,
    /// Standard error of the gain; `None` when n = 2.
    pub gain_se: Option<f64>,
    /// Two-sided 95% confidence interval of the gain (Student's t, n − 2
    /// degrees of freedom); `None` when n = 2 (no degrees of freedom left).
    pub gain_ci95: Option<(f64, f64)>,
}

impl LinearFit {
    /// The pipeline correction this fit implies.
    pub fn probe_calibration(&self) -> ProbeCalibration {
        probe_calibration_from(self.gain, self.offset_cm_s)
    }

    /// Applies the correction this fit implies: `v_true = (v_measured − offset)/gain`.
    pub fn true_from_measured_cm_s(&self, measured_cm_s: f64) -> f64 {
        (measured_cm_s - self.offset_cm_s) / self.gain
    }
}

/// Fits `measured ≈ gain · reference + offset` by ordinary least squares.
///
/// Needs at least two points with different reference velocities; the
/// confidence interval needs at least three.
pub fn fit_linear(reference_cm_s: &[f64], measured_cm_s: &[f64]) -> Result<LinearFit, CalFitError> {
    let n = reference_cm_s.len();
    if measured_cm_s.len() != n {
        return Err(CalFitError::LengthMismatch {
            reference: n,
            measured: measured_cm_s.len(),
        });
    }
    if n < 2 {
        return Err(CalFitError::TooFewPoints { got: n, need: 2 });
    }
    for (index, (r, m)) in reference_cm_s.iter().zip(measured_cm_s).enumerate() {
        if !r.is_finite() || !m.is_finite() {
            return Err(CalFitError::NotFinite { index });
        }
    }
    // Degenerate when the spread of the references is negligible against their size.
    let mean_ref = reference_cm_s.iter().sum::<f64>() / n as f64;
    let sxx: f64 = reference_cm_s.iter().map(|r| (r - mean_ref).powi(2)).sum();
    let scale = reference_cm_s
        .iter()
        .map(|r| r * r)
        .sum::<f64>()
        .max(f64::MIN_POSITIVE);
    if sxx <= 1e-12 * scale {
        return Err(CalFitError::Degenerate);
    }

    // Design matrix [reference, 1]; solved by SVD (numerically stable), and
    // (XᵀX)⁻¹ gives the coefficient covariance up to σ².
    let x = DMatrix::from_fn(n, 2, |i, j| if j == 0 { reference_cm_s[i] } else { 1.0 });
    let y = DVector::from_column_slice(measured_cm_s);
    let svd = x.clone().svd(true, true);
    let beta = svd.solve(&y, 1e-12).map_err(|_| CalFitError::Degenerate)?;
    let gain = beta[0];
    let offset_cm_s = beta[1];
    let fitted = &x * &beta;
    let residuals: Vec<f64> = y.iter().zip(fitted.iter()).map(|(m, f)| m - f).collect();

    let ss_res: f64 = residuals.iter().map(|r| r * r).sum();
    let mean_meas = measured_cm_s.iter().sum::<f64>() / n as f64;
    let ss_tot: f64 = measured_cm_s.iter().map(|m| (m - mean_meas).powi(2)).sum();
    // A constant measured column with an exact fit explains everything there is.
    let r2 = if ss_tot > 0.0 {
        1.0 - ss_res / ss_tot
    } else {
        1.0
    };

    let xtx: Matrix2<f64> = {
        let g = x.transpose() * &x;
        Matrix2::new(g[(0, 0)], g[(0, 1)], g[(1, 0)], g[(1, 1)])
    };
    let xtx_inv = xtx.try_inverse().ok_or(CalFitError::Degenerate)?;

    let (residual_se_cm_s, gain_se, gain_ci95) = if n > 2 {
        let dof = (n - 2) as f64;
        let s = (ss_res / dof).sqrt();
        let se = s * xtx_inv[(0, 0)].max(0.0).sqrt();
        let t = student_t_quantile(0.975, dof);
        (Some(s), Some(se), Some((gain - t * se, gain + t * se)))
    } else {
        (None, None, None)
    };

    Ok(LinearFit {
        n,
        gain,
        offset_cm_s,
        residuals_cm_s: residuals,
        r2,
        residual_se_cm_s,
        gain_se,
        gain_ci95,
    })
}

/// Acceptance limits of a calibration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AcceptanceLimits {
    /// The gain must lie within `1 ± gain_tolerance` (0.05 = ±5%).
    pub gain_tolerance: f64,
    /// Every residual must be within `max(residual_limit_cm_s, residual_limit_pct% of reference)`.
    pub residual_limit_cm_s: f64,
    /// See [`residual_limit_cm_s`](Self::residual_limit_cm_s); percent of the reference velocity.
    pub residual_limit_pct: f64,
    /// The offset (the fitted reading at zero velocity) must lie within
    /// `± offset_tolerance_cm_s`: a probe that reads 20 cm/s high has a
    /// gain of 1 and straight-line residuals, and reads 20–100 % high over
    /// the clinical range.
    pub offset_tolerance_cm_s: f64,
}

impl Default for AcceptanceLimits {
    /// Gain within 1 ± 0.05, offset within ± 3 cm/s, every residual within
    /// max(3 cm/s, 3%).
    fn default() -> Self {
        Self {
            gain_tolerance: 0.05,
            residual_limit_cm_s: 3.0,
            residual_limit_pct: 3.0,
            offset_tolerance_cm_s: 3.0,
        }
    }
}

impl AcceptanceLimits {
    /// The residual allowed at a reference velocity: `max(abs, pct% · |reference|)`.
    pub fn residual_limit_at_cm_s(&self, reference_cm_s: f64) -> f64 {
        self.residual_limit_cm_s
            .max(self.residual_limit_pct / 100.0 * reference_cm_s.abs())
    }
}

/// The outcome of checking a fit against [`AcceptanceLimits`].
#[derive(Debug, Clone, PartialEq)]
pub struct Acceptance {
    /// `|gain − 1| ≤ gain_tolerance`.
    pub gain_ok: bool,
    /// `|offset| ≤ offset_tolerance_cm_s`.
    pub offset_ok: bool,
    /// Residual limit of each point, cm/s.
    pub residual_limits_cm_s: Vec<f64>,
    /// Whether each point's residual is within its limit.
    pub residual_ok: Vec<bool>,
    /// Everything within limits.
    pub pass: bool,
}

/// Limits are inclusive; this slack keeps a value exactly on a limit (for
/// example a gain of 1.05 against ±0.05, which is 0.05000000000000004 away
/// from 1 in binary floating point) on the passing side.
const LIMIT_SLACK: f64 = 1e-9;

/// Checks a fit against acceptance limits. `reference_cm_s` are the points the
/// fit was made from, in the same order.
pub fn assess(fit: &LinearFit, reference_cm_s: &[f64], limits: &AcceptanceLimits) -> Acceptance {
    let gain_ok = (fit.gain - 1.0).abs() <= limits.gain_tolerance + LIMIT_SLACK;
    let offset_ok = fit.offset_cm_s.abs() <= limits.offset_tolerance_cm_s + LIMIT_SLACK;
    let residual_limits_cm_s: Vec<f64> = reference_cm_s
        .iter()
        .map(|&r| limits.residual_limit_at_cm_s(r))
        .collect();
    let residual_ok: Vec<bool> = fit
        .residuals_cm_s
        .iter()
        .zip(&residual_limits_cm_s)
        .map(|(res, lim)| res.abs() <= lim + LIMIT_SLACK)
        .collect();
    // A residual with no reference to judge it by cannot pass.
    let all_judged = residual_ok.len() == fit.residuals_cm_s.len()
        && reference_cm_s.len() == fit.residuals_cm_s.len();
    let pass = gain_ok && offset_ok && all_judged && residual_ok.iter().all(|&ok| ok);
    Acceptance {
        gain_ok,
        offset_ok,
        residual_limits_cm_s,
        residual_ok,
        pass,
    }
}

/// ln Γ(x) for x > 0 (Lanczos approximation, g = 7, 9 terms; relative error
/// below 1e-14 over the range used here).
pub fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const COEF: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Γ(x)Γ(1−x) = π / sin(πx).
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).abs().ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = COEF[0];
    let t = x + G + 0.5;
    for (i, c) in COEF.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// Regularised incomplete beta function `I_x(a, b)` for a, b > 0 and
/// 0 ≤ x ≤ 1 (continued fraction by the modified Lentz method; the symmetry
/// `I_x(a,b) = 1 − I_{1−x}(b,a)` keeps the fraction in its fast-converging
/// region). Returns NaN outside the domain.
pub fn regularized_incomplete_beta(x: f64, a: f64, b: f64) -> f64 {
    let usable = a > 0.0 && b > 0.0 && (0.0..=1.0).contains(&x);
    if !usable {
        return f64::NAN;
    }
    if x == 0.0 {
        return 0.0;
    }
    if x == 1.0 {
        return 1.0;
    }
    let ln_front = ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln();
    if x < (a + 1.0) / (a + b + 2.0) {
        ln_front.exp() * beta_continued_fraction(x, a, b) / a
    } else {
        1.0 - ln_front.exp() * beta_continued_fraction(1.0 - x, b, a) / b
    }
}

fn beta_continued_fraction(x: f64, a: f64, b: f64) -> f64 {
    const TINY: f64 = 1e-300;
    const EPS: f64 = 1e-16;
    let qab = a + b;
    let qap = a + 1.0;
    let qam = a - 1.0;
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    if d.abs() < TINY {
        d = TINY;
    }
    d = 1.0 / d;
    let mut h = d;
    for m in 1..=1000 {
        let m = f64::from(m);
        let m2 = 2.0 * m;
        // Even step.
        let aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        h *= d * c;
        // Odd step.
        let aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        let del = d * c;
        h *= del;
        if (del - 1.0).abs() < EPS {
            break;
        }
    }
    h
}

/// Cumulative distribution function of Student's t with `dof` degrees of
/// freedom: `F(t) = 1 − ½ I_{ν/(ν+t²)}(ν/2, ½)` for t ≥ 0, symmetric below.
pub fn student_t_cdf(t: f64, dof: f64) -> f64 {
    if t.is_nan() || dof.is_nan() || dof <= 0.0 {
        return f64::NAN;
    }
    if t.is_infinite() {
        return if t > 0.0 { 1.0 } else { 0.0 };
    }
    let tail = 0.5 * regularized_incomplete_beta(dof / (dof + t * t), dof / 2.0, 0.5);
    if t >= 0.0 { 1.0 - tail } else { tail }
}

/// The `p` quantile of Student's t with `dof` degrees of freedom (e.g.
/// `p = 0.975` for a two-sided 95% interval). NaN when `p ∉ (0, 1)` or
/// `dof ≤ 0`.
pub fn student_t_quantile(p: f64, dof: f64) -> f64 {
    let usable = p > 0.0 && p < 1.0 && dof > 0.0;
    if !usable {
        return f64::NAN;
    }
    if p < 0.5 {
        return -student_t_quantile(1.0 - p, dof);
    }
    if p == 0.5 {
        return 0.0;
    }
    // Bracket, then bisect: the CDF is monotonic, so this cannot miss.
    let mut lo = 0.0;
    let mut hi = 1.0;
    while student_t_cdf(hi, dof) < p {
        lo = hi;
        hi *= 2.0;
        if hi > 1e300 {
            return f64::INFINITY;
        }
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if student_t_cdf(mid, dof) < p {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo <= 1e-14 * hi {
            break;
        }
    }
    0.5 * (lo + hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn t_quantile_matches_published_table() {
        // Two-sided 95% (p = 0.975), 99% (0.995) and one-sided 95% (0.95)
        // critical values as printed in standard tables (e.g. NIST/SEMATECH
        // e-Handbook of Statistical Methods, table 1.3.6.7.2), 3 decimals.
        let table: [(f64, f64, f64); 14] = [
            (0.975, 1.0, 12.706),
            (0.975, 2.0, 4.303),
            (0.975, 3.0, 3.182),
            (0.975, 4.0, 2.776),
            (0.975, 5.0, 2.571),
            (0.975, 10.0, 2.228),
            (0.975, 20.0, 2.086),
            (0.975, 30.0, 2.042),
            (0.975, 100.0, 1.984),
            (0.995, 1.0, 63.657),
            (0.995, 5.0, 4.032),
            (0.995, 10.0, 3.169),
            (0.95, 1.0, 6.314),
            (0.95, 10.0, 1.812),
        ];
        for (p, dof, expected) in table {
            let t = student_t_quantile(p, dof);
            assert!(
                close(t, expected, 0.0006),
                "t({p}, {dof}) = {t}, table {expected}"
            );
        }
    }

    #[test]
    fn t_quantile_matches_closed_forms() {
        // ν = 1 is the Cauchy distribution: t = tan(π(p − ½)).
        // ν = 2: t = (2p − 1) / √(2p(1 − p)).
        for &p in &[0.55, 0.75, 0.9, 0.975, 0.999] {
            let cauchy = (std::f64::consts::PI * (p - 0.5)).tan();
            let t1 = student_t_quantile(p, 1.0);
            assert!(
                close(t1, cauchy, 1e-9 * cauchy.abs().max(1.0)),
                "ν=1 p={p}: {t1} vs {cauchy}"
            );
            let two = (2.0 * p - 1.0) / (2.0 * p * (1.0 - p)).sqrt();
            let t2 = student_t_quantile(p, 2.0);
            assert!(
                close(t2, two, 1e-9 * two.abs().max(1.0)),
                "ν=2 p={p}: {t2} vs {two}"
            );
        }
    }

    #[test]
    fn t_quantile_tends_to_normal_for_large_dof() {
        // z_{0.975} = 1.959964 (standard normal).
        assert!(close(student_t_quantile(0.975, 1e6), 1.959964, 1e-5));
    }

    #[test]
    fn t_quantile_is_antisymmetric_and_inverts_cdf() {
        for &dof in &[1.0, 2.5, 7.0, 40.0] {
            for &p in &[0.01, 0.2, 0.6, 0.99] {
                let t = student_t_quantile(p, dof);
                assert!(close(student_t_cdf(t, dof), p, 1e-12));
                assert!(close(
                    student_t_quantile(1.0 - p, dof),
                    -t,
                    1e-9 * t.abs().max(1.0)
                ));
            }
        }
        assert!(student_t_quantile(0.0, 3.0).is_nan());
        assert!(student_t_quantile(1.0, 3.0).is_nan());
        assert!(student_t_quantile(0.9, 0.0).is_nan());
    }

    #[test]
    fn incomplete_beta_matches_closed_forms() {
        for &x in &[0.0, 0.1, 0.37, 0.5, 0.9, 1.0] {
            // I_x(1,1) = x; I_x(a,1) = x^a; I_x(1,b) = 1 − (1−x)^b.
            assert!(close(regularized_incomplete_beta(x, 1.0, 1.0), x, 1e-13));
            assert!(close(
                regularized_incomplete_beta(x, 3.5, 1.0),
                x.powf(3.5),
                1e-13
            ));
            assert!(close(
                regularized_incomplete_beta(x, 1.0, 4.0),
                1.0 - (1.0 - x).powi(4),
                1e-13
            ));
        }
        assert!(regularized_incomplete_beta(1.5, 1.0, 1.0).is_nan());
    }

    #[test]
    fn ln_gamma_matches_factorials_and_half_integers() {
        // Γ(n) = (n−1)!, Γ(½) = √π.
        assert!(close(ln_gamma(1.0), 0.0, 1e-14));
        assert!(close(ln_gamma(5.0), 24f64.ln(), 1e-13));
        assert!(close(ln_gamma(11.0), 3_628_800f64.ln(), 1e-12));
        assert!(close(
            ln_gamma(0.5),
            std::f64::consts::PI.sqrt().ln(),
            1e-13
        ));
    }

    #[test]
    fn fit_matches_hand_computed_least_squares() {
        // x = 20, 50, 100, 150; y = 21, 54, 106, 162.
        // x̄ = 80, ȳ = 85.75; Sxx = 3600+900+400+4900 = 9800;
        // Sxy = (−60)(−64.75)+(−30)(−31.75)+(20)(20.25)+(70)(76.25)
        //     = 3885 + 952.5 + 405 + 5337.5 = 10580
        // gain = 10580/9800 = 1.0795918367…, offset = 85.75 − 80·gain = −0.6173469…
        let x = [20.0, 50.0, 100.0, 150.0];
        let y = [21.0, 54.0, 106.0, 162.0];
        let fit = fit_linear(&x, &y).unwrap();
        let gain = 10580.0 / 9800.0;
        let offset = 85.75 - 80.0 * gain;
        assert!(close(fit.gain, gain, 1e-12));
        assert!(close(fit.offset_cm_s, offset, 1e-10));
        let residuals: Vec<f64> = x
            .iter()
            .zip(&y)
            .map(|(xi, yi)| yi - (gain * xi + offset))
            .collect();
        for (got, want) in fit.residuals_cm_s.iter().zip(&residuals) {
            assert!(close(*got, *want, 1e-10));
        }
        let ss_res: f64 = residuals.iter().map(|r| r * r).sum();
        let ss_tot: f64 = y.iter().map(|v| (v - 85.75f64).powi(2)).sum();
        assert!(close(fit.r2, 1.0 - ss_res / ss_tot, 1e-12));
        // se(gain) = √(SS_res/(n−2) / Sxx); t(0.975, 2) = 4.302653 (exact: 2/√(0.975·0.025·2)·0.95/2).
        let se = (ss_res / 2.0 / 9800.0).sqrt();
        assert!(close(fit.gain_se.unwrap(), se, 1e-12));
        let t = 0.95 / (2.0f64 * 0.975 * 0.025).sqrt();
        let (lo, hi) = fit.gain_ci95.unwrap();
        assert!(close(lo, gain - t * se, 1e-9));
        assert!(close(hi, gain + t * se, 1e-9));
    }

    #[test]
    fn exact_line_has_zero_residuals_and_a_point_interval() {
        let x = [20.0, 50.0, 100.0, 150.0];
        let y: Vec<f64> = x.iter().map(|v| 1.07 * v - 0.4).collect();
        let fit = fit_linear(&x, &y).unwrap();
        assert!(close(fit.gain, 1.07, 1e-12));
        assert!(close(fit.offset_cm_s, -0.4, 1e-10));
        assert!(fit.residuals_cm_s.iter().all(|r| r.abs() < 1e-10));
        assert!(close(fit.r2, 1.0, 1e-12));
        let (lo, hi) = fit.gain_ci95.unwrap();
        assert!(close(lo, 1.07, 1e-9) && close(hi, 1.07, 1e-9));
        assert!(close(
            fit.true_from_measured_cm_s(1.07 * 80.0 - 0.4),
            80.0,
            1e-10
        ));
        // The pipeline's correction is the same inversion.
        let pc = fit.probe_calibration();
        let v = pc.velocity_true_cm_s_from_measured(1.07 * 80.0 - 0.4, 45.0);
        assert!(close(v, 80.0, 1e-10));
    }

    /// Small deterministic generator for the coverage test (xorshift64*,
    /// Box–Muller for normal deviates).
    struct Gauss(u64);
    impl Gauss {
        fn uniform(&mut self) -> f64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            let x = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
            ((x >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        }
        fn normal(&mut self) -> f64 {
            let (u1, u2) = (self.uniform(), self.uniform());
            (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
        }
    }

    #[test]
    fn confidence_interval_covers_the_true_gain_95_percent_of_the_time() {
        // Four runs (2 degrees of freedom, where a normal quantile instead
        // of t would cover only 81%), σ = 1.5 cm/s. Over 4000 seeded trials
        // the 95% interval must contain the true gain 95% ± 1.4% (4 binomial
        // standard deviations) of the time.
        let x = [20.0, 50.0, 100.0, 150.0];
        let (gain, offset) = (1.07, 0.8);
        let mut rng = Gauss(0x9E37_79B9_7F4A_7C15);
        let trials = 4000;
        let mut covered = 0;
        for _ in 0..trials {
            let y: Vec<f64> = x
                .iter()
                .map(|v| gain * v + offset + 1.5 * rng.normal())
                .collect();
            let (lo, hi) = fit_linear(&x, &y).unwrap().gain_ci95.unwrap();
            if lo <= gain && gain <= hi {
                covered += 1;
            }
        }
        let rate = f64::from(covered) / f64::from(trials);
        assert!((rate - 0.95).abs() <= 0.014, "coverage {rate}");
    }

    #[test]
    fn two_points_fit_without_an_interval() {
        let fit = fit_linear(&[10.0, 20.0], &[11.0, 23.0]).unwrap();
        assert!(close(fit.gain, 1.2, 1e-12));
        assert!(close(fit.offset_cm_s, -1.0, 1e-10));
        assert_eq!(fit.gain_ci95, None);
    }

    #[test]
    fn rejects_unusable_inputs() {
        assert_eq!(
            fit_linear(&[1.0, 2.0], &[1.0]),
            Err(CalFitError::LengthMismatch {
                reference: 2,
                measured: 1
            })
        );
        assert_eq!(
            fit_linear(&[1.0], &[1.0]),
            Err(CalFitError::TooFewPoints { got: 1, need: 2 })
        );
        assert_eq!(
            fit_linear(&[50.0, 50.0, 50.0], &[49.0, 50.0, 51.0]),
            Err(CalFitError::Degenerate)
        );
        assert_eq!(
            fit_linear(&[1.0, f64::NAN], &[1.0, 2.0]),
            Err(CalFitError::NotFinite { index: 1 })
        );
        assert_eq!(
            fit_linear(&[1.0, 2.0], &[1.0, f64::INFINITY]),
            Err(CalFitError::NotFinite { index: 1 })
        );
    }

    fn fit_with(gain: f64, residuals: &[f64], reference: &[f64]) -> LinearFit {
        LinearFit {
            n: reference.len(),
            gain,
            offset_cm_s: 0.0,
            residuals_cm_s: residuals.to_vec(),
            r2: 1.0,
            residual_se_cm_s: None,
            gain_se: None,
            gain_ci95: None,
        }
    }

    #[test]
    fn acceptance_limits_are_inclusive_at_the_edges() {
        let limits = AcceptanceLimits::default();
        let reference = [20.0, 150.0];
        // 3 cm/s floor at 20 cm/s (3% would be 0.6); 3% = 4.5 cm/s at 150.
        assert!(close(limits.residual_limit_at_cm_s(20.0), 3.0, 1e-12));
        assert!(close(limits.residual_limit_at_cm_s(150.0), 4.5, 1e-12));
        let on_edge = assess(
            &fit_with(1.05, &[3.0, -4.5], &reference),
            &reference,
            &limits,
        );
        assert!(on_edge.gain_ok && on_edge.pass, "{on_edge:?}");
        let low_edge = assess(
            &fit_with(0.95, &[-3.0, 4.5], &reference),
            &reference,
            &limits,
        );
        assert!(low_edge.pass, "{low_edge:?}");
    }

    #[test]
    fn acceptance_fails_on_gain_or_any_single_residual() {
        let limits = AcceptanceLimits::default();
        let reference = [20.0, 100.0, 150.0];
        let gain_off = assess(
            &fit_with(1.07, &[0.0, 0.0, 0.0], &reference),
            &reference,
            &limits,
        );
        assert!(!gain_off.gain_ok && !gain_off.pass);
        let low_gain = assess(
            &fit_with(0.9499, &[0.0, 0.0, 0.0], &reference),
            &reference,
            &limits,
        );
        assert!(!low_gain.pass);
        let one_bad = assess(
            &fit_with(1.0, &[0.0, 3.01, 0.0], &reference),
            &reference,
            &limits,
        );
        assert!(one_bad.gain_ok && !one_bad.pass);
        assert_eq!(one_bad.residual_ok, vec![true, false, true]);
        let small_bad = assess(
            &fit_with(1.0, &[-3.2, 0.0, 0.0], &reference),
            &reference,
            &limits,
        );
        assert!(!small_bad.pass);
    }

    #[test]
    fn acceptance_limits_are_configurable() {
        let strict = AcceptanceLimits {
            gain_tolerance: 0.01,
            residual_limit_cm_s: 1.0,
            residual_limit_pct: 0.5,
            offset_tolerance_cm_s: 1.0,
        };
        let reference = [20.0, 400.0];
        assert!(close(strict.residual_limit_at_cm_s(400.0), 2.0, 1e-12));
        let a = assess(
            &fit_with(1.02, &[0.5, 1.5], &reference),
            &reference,
            &strict,
        );
        assert!(!a.gain_ok && a.residual_ok == vec![true, true] && !a.pass);
    }

    /// A probe that reads 20 cm/s high at every velocity has a gain of 1
    /// and no residuals (found by an audit, 2026-12-04): the offset itself
    /// is judged, inclusively.
    #[test]
    fn acceptance_fails_on_an_offset_beyond_its_tolerance() {
        let limits = AcceptanceLimits::default();
        let reference = [20.0, 50.0, 100.0, 150.0];
        let with_offset = |offset_cm_s| LinearFit {
            offset_cm_s,
            ..fit_with(1.0, &[0.0; 4], &reference)
        };
        let high = assess(&with_offset(20.0), &reference, &limits);
        assert!(high.gain_ok && !high.offset_ok && !high.pass, "{high:?}");
        let low = assess(&with_offset(-3.01), &reference, &limits);
        assert!(!low.offset_ok && !low.pass);
        let on_edge = assess(&with_offset(-3.0), &reference, &limits);
        assert!(on_edge.offset_ok && on_edge.pass, "{on_edge:?}");
    }

    #[test]
    fn acceptance_never_passes_unjudged_residuals() {
        let limits = AcceptanceLimits::default();
        let a = assess(&fit_with(1.0, &[0.0, 0.0], &[50.0]), &[50.0], &limits);
        assert!(!a.pass);
    }
}
