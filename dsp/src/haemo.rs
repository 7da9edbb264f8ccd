//! Haemodynamic formulas: FTc corrections, body surface area, stroke volume
//! from an explicit area model ([`SvModel`]), cardiac output and the indexed
//! values (CI, SVI). Sources and uncertainties: `docs/haemodynamics.md`.

use crate::area::{
    self, DEFAULT_DESCENDING_FRACTION, Demographics, DiameterEstimate,
    MEASURED_DIAMETER_UNCERTAINTY_MM,
};

/// How flow time is corrected to a heart rate of 60/min.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum FtcFormula {
    /// Bazett: FT / √cycle_s (the default).
    #[default]
    Bazett,
    /// Fridericia: FT / ∛cycle_s.
    Fridericia,
    /// Linear: FT + k·(HR − 60).
    Linear {
        /// k, in ms per beat/min.
        k_ms_per_bpm: f64,
    },
}

impl FtcFormula {
    /// The name used in the analysis output (`"bazett"`, `"fridericia"`, `"linear"`).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Bazett => "bazett",
            Self::Fridericia => "fridericia",
            Self::Linear { .. } => "linear",
        }
    }

    /// Corrected flow time (ms) from flow time (ms) and cycle length (s).
    pub fn ftc_ms(&self, ft_ms: f64, cycle_s: f64) -> f64 {
        match *self {
            Self::Bazett => ft_ms / cycle_s.sqrt(),
            Self::Fridericia => ft_ms / cycle_s.cbrt(),
            Self::Linear { k_ms_per_bpm } => ft_ms + k_ms_per_bpm * (60.0 / cycle_s - 60.0),
        }
    }

    /// How a display names the formula in use (the primer: "always state
    /// which"): `Bazett`, `Fridericia`, `linear, k 1.5 ms per /min`.
    pub fn label(&self) -> String {
        match self {
            Self::Bazett => "Bazett".into(),
            Self::Fridericia => "Fridericia".into(),
            Self::Linear { k_ms_per_bpm } => format!("linear, k {k_ms_per_bpm} ms per /min"),
        }
    }
}

/// Largest |k| a linear correction accepts, ms per beat/min.
pub const FTC_LINEAR_K_MAX_MS_PER_BPM: f64 = 100.0;

/// Parses the command line's form (cli.md): `bazett`, `fridericia` or
/// `linear:K` with K in ms per beat/min, |K| ≤ [`FTC_LINEAR_K_MAX_MS_PER_BPM`];
/// case and surrounding blanks are ignored.
impl std::str::FromStr for FtcFormula {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "bazett" => Ok(Self::Bazett),
            "fridericia" => Ok(Self::Fridericia),
            other => {
                let typed = other
                    .strip_prefix("linear:")
                    .ok_or_else(|| format!("`{s}` is not bazett, fridericia or linear:K"))?;
                let k: f64 = typed
                    .parse()
                    .map_err(|_| format!("`{typed}` in `{s}` is not a number (ms per beat/min)"))?;
                if k.is_finite() && k.abs() <= FTC_LINEAR_K_MAX_MS_PER_BPM {
                    Ok(Self::Linear { k_ms_per_bpm: k })
                } else {
                    Err(format!(
                        "linear K = {typed} is outside −{max}..={max} ms per beat/min",
                        max = FTC_LINEAR_K_MAX_MS_PER_BPM
                    ))
                }
            }
        }
    }
}

/// Body-surface-area formula.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BsaFormula {
    /// Mosteller: √(height_cm · weight_kg / 3600) (the default).
    #[default]
    Mosteller,
    /// Du Bois: 0.007184 · height_cm^0.725 · weight_kg^0.425.
    DuBois,
}

impl BsaFormula {
    /// The formula's name in outputs: `mosteller` or `du_bois`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Mosteller => "mosteller",
            Self::DuBois => "du_bois",
        }
    }

    /// Parses a formula's name (`mosteller`; `du_bois`, `du-bois` or
    /// `dubois`), case-insensitively.
    pub fn from_word(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "mosteller" => Some(Self::Mosteller),
            "du_bois" | "du-bois" | "dubois" => Some(Self::DuBois),
            _ => None,
        }
    }

    /// Body surface area in m².
    pub fn bsa_m2(&self, height_cm: f64, weight_kg: f64) -> f64 {
        match self {
            Self::Mosteller => (height_cm * weight_kg / 3600.0).sqrt(),
            Self::DuBois => 0.007184 * height_cm.powf(0.725) * weight_kg.powf(0.425),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bsa_formula_names_read_back() {
        for f in [BsaFormula::Mosteller, BsaFormula::DuBois] {
            assert_eq!(BsaFormula::from_word(f.name()), Some(f));
        }
        assert_eq!(BsaFormula::from_word("Du-Bois"), Some(BsaFormula::DuBois));
        assert_eq!(BsaFormula::from_word("haycock"), None);
    }

    #[test]
    fn ftc_matches_primer_check_values() {
        // Primer: FT = 300 ms, HR = 80 → Bazett 346.4 ms, Fridericia 330.2 ms.
        let cycle_s = 60.0 / 80.0;
        assert!((FtcFormula::Bazett.ftc_ms(300.0, cycle_s) - 346.4).abs() < 0.05);
        assert!((FtcFormula::Fridericia.ftc_ms(300.0, cycle_s) - 330.2).abs() < 0.05);
        let lin = FtcFormula::Linear { k_ms_per_bpm: 1.5 };
        assert!((lin.ftc_ms(300.0, cycle_s) - 330.0).abs() < 1e-9);
        for f in [FtcFormula::Bazett, FtcFormula::Fridericia, lin] {
            assert!(
                (f.ftc_ms(312.0, 1.0) - 312.0).abs() < 1e-9,
                "{f:?} at 60/min"
            );
        }
    }

    #[test]
    fn ftc_formulas_parse_from_the_command_line_form_and_name_themselves() {
        let parse = |s: &str| s.parse::<FtcFormula>();
        assert_eq!(parse("bazett"), Ok(FtcFormula::Bazett));
        assert_eq!(parse(" Fridericia "), Ok(FtcFormula::Fridericia));
        assert_eq!(
            parse("LINEAR:-2.5"),
            Ok(FtcFormula::Linear { k_ms_per_bpm: -2.5 })
        );
        for bad in [
            "",
            "hodges",
            "linear",
            "linear:",
            "linear:x",
            "linear:101",
            "linear:nan",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(FtcFormula::Bazett.label(), "Bazett");
        assert_eq!(FtcFormula::Fridericia.label(), "Fridericia");
        assert_eq!(
            FtcFormula::Linear { k_ms_per_bpm: 1.5 }.label(),
            "linear, k 1.5 ms per /min"
        );
    }

    #[test]
    fn bsa_matches_primer_check_values() {
        assert!((BsaFormula::Mosteller.bsa_m2(170.0, 70.0) - 1.818).abs() < 0.0005);
        assert!((BsaFormula::DuBois.bsa_m2(170.0, 70.0) - 1.810).abs() < 0.0005);
    }
}

/// A stroke-volume estimate with the range implied by the area model's spread.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SvEstimate {
    /// Best estimate of stroke volume.
    pub sv_ml: f64,
    /// Low end of the range.
    pub low_ml: f64,
    /// High end of the range.
    pub high_ml: f64,
}

/// How stroke volume is derived from stroke distance (`area_model` of
/// analysis-output.md).
///
/// `SV = SD · A / f`: the descending-aortic flow per beat (SD times the
/// cross-sectional area A) divided by the fraction `f` of cardiac output
/// that goes down the descending aorta. The range comes from the diameter's
/// spread (population SD, or the measurement uncertainty).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum SvModel {
    /// No demographics or diameter: SV is not computed.
    #[default]
    None,
    /// A diameter measured by the clinician (CT, echo), ±
    /// [`MEASURED_DIAMETER_UNCERTAINTY_MM`].
    MeasuredDiameter {
        /// Descending-aortic diameter, mm.
        diameter_mm: f64,
        /// Fraction of cardiac output in the descending aorta, (0, 1].
        descending_fraction: f64,
    },
    /// The population model of [`area::population_diameter`] (age, sex).
    Population {
        /// The patient's demographics.
        demographics: Demographics,
        /// Fraction of cardiac output in the descending aorta, (0, 1].
        descending_fraction: f64,
    },
}

/// Why an [`SvModel`] cannot be built.
pub type SvModelError = area::AreaError;

impl SvModel {
    /// A measured-diameter model with the default descending fraction (0.70).
    pub fn measured(diameter_mm: f64) -> Result<Self, SvModelError> {
        area::validate_diameter_mm(diameter_mm)?;
        Ok(Self::MeasuredDiameter {
            diameter_mm,
            descending_fraction: DEFAULT_DESCENDING_FRACTION,
        })
    }

    /// A population model with the default descending fraction (0.70).
    pub fn population(demographics: Demographics) -> Result<Self, SvModelError> {
        demographics.validate()?;
        Ok(Self::Population {
            demographics,
            descending_fraction: DEFAULT_DESCENDING_FRACTION,
        })
    }

    /// The same model with another descending-aorta fraction (no effect on
    /// [`SvModel::None`]).
    pub fn with_descending_fraction(self, fraction: f64) -> Result<Self, SvModelError> {
        area::validate_descending_fraction(fraction)?;
        Ok(match self {
            Self::None => Self::None,
            Self::MeasuredDiameter { diameter_mm, .. } => Self::MeasuredDiameter {
                diameter_mm,
                descending_fraction: fraction,
            },
            Self::Population { demographics, .. } => Self::Population {
                demographics,
                descending_fraction: fraction,
            },
        })
    }

    /// The `area_model` string of the analysis output: `"none"`,
    /// `"measured_diameter"` or the population model's name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::None => "none",
            Self::MeasuredDiameter { .. } => "measured_diameter",
            Self::Population { .. } => area::POPULATION_MODEL_NAME,
        }
    }

    /// A one-line statement of the model for the display and reports, e.g.
    /// `"SV from population model fhs_ct_age_sex: aorta 27.4 ± 3.0 mm, 70 %
    /// of CO descending"`; the display must say how SV was derived
    /// (primer, "Stroke volume").
    pub fn description(&self) -> String {
        let Some(d) = self.diameter() else {
            return match self {
                Self::None => "no area model: SD only, SV not computed".to_owned(),
                _ => "area model unusable: SV not computed".to_owned(),
            };
        };
        let what = match self {
            Self::MeasuredDiameter { .. } => "measured diameter".to_owned(),
            _ => format!("population model {}", self.name()),
        };
        let pct = 100.0 * self.descending_fraction().unwrap_or(f64::NAN);
        format!(
            "SV from {what}: aorta {:.1} ± {:.1} mm, {pct:.0} % of CO descending",
            d.diameter_mm, d.spread_mm
        )
    }

    /// The diameter in use and its one-SD spread; `None` without a model or
    /// when its parameters are not usable.
    pub fn diameter(&self) -> Option<DiameterEstimate> {
        let d = match self {
            Self::None => return None,
            Self::MeasuredDiameter { diameter_mm, .. } => DiameterEstimate {
                diameter_mm: *diameter_mm,
                spread_mm: MEASURED_DIAMETER_UNCERTAINTY_MM,
            },
            Self::Population { demographics, .. } => {
                demographics.validate().ok()?;
                area::population_diameter(demographics)
            }
        };
        (d.diameter_mm.is_finite() && d.diameter_mm > 0.0).then_some(d)
    }

    /// The aortic diameter in use (mm), or `None`.
    pub fn aortic_diameter_mm(&self) -> Option<f64> {
        self.diameter().map(|d| d.diameter_mm)
    }

    /// The descending-aorta fraction in use, or `None` without a model.
    pub fn descending_fraction(&self) -> Option<f64> {
        match self {
            Self::None => None,
            Self::MeasuredDiameter {
                descending_fraction,
                ..
            }
            | Self::Population {
                descending_fraction,
                ..
            } => Some(*descending_fraction),
        }
    }

    /// Stroke volume (ml) from stroke distance (cm), with the range implied
    /// by the diameter's spread; `None` without a model, with unusable
    /// parameters, or for a non-finite `sd_cm`.
    pub fn estimate(&self, sd_cm: f64) -> Option<SvEstimate> {
        if !sd_cm.is_finite() {
            return None;
        }
        let d = self.diameter()?;
        let f = self.descending_fraction()?;
        area::validate_descending_fraction(f).ok()?;
        // cm · cm² = ml.
        let (lo_cm2, hi_cm2) = d.area_range_cm2();
        let sv = |a_cm2: f64| sd_cm * a_cm2 / f;
        let (a, b) = (sv(lo_cm2), sv(hi_cm2));
        Some(SvEstimate {
            sv_ml: sv(d.area_cm2()),
            low_ml: a.min(b),
            high_ml: a.max(b),
        })
    }
}

/// Cardiac output (l/min) from stroke volume (ml) and heart rate (1/min):
/// `SV·HR/1000` (analysis-output.md, `co_l_min`).
pub fn co_l_min_from_sv_ml(sv_ml: f64, hr_bpm: f64) -> f64 {
    sv_ml * hr_bpm / 1000.0
}

/// Cardiac index (l/min/m²): `CO / BSA`.
pub fn ci_l_min_m2_from_co_l_min(co_l_min: f64, bsa_m2: f64) -> Option<f64> {
    (bsa_m2 > 0.0 && bsa_m2.is_finite()).then(|| co_l_min / bsa_m2)
}

/// Stroke-volume index (ml/m²): `SV / BSA`.
pub fn svi_ml_m2_from_sv_ml(sv_ml: f64, bsa_m2: f64) -> Option<f64> {
    (bsa_m2 > 0.0 && bsa_m2.is_finite()).then(|| sv_ml / bsa_m2)
}

#[cfg(test)]
mod sv_tests {
    use super::*;
    use crate::area::Sex;

    #[test]
    fn measured_diameter_sv_is_sd_times_area_over_fraction() {
        // d = 20 mm → A = π cm²; SD = 14 cm; f = 0.7 → SV = 14π/0.7 = 20π ml.
        let m = SvModel::measured(20.0).unwrap();
        let e = m.estimate(14.0).unwrap();
        assert!((e.sv_ml - 20.0 * std::f64::consts::PI).abs() < 1e-9);
        // Range from 19..21 mm: 14·π·(0.95², 1.05²)/0.7.
        let lo = 14.0 * std::f64::consts::PI * 0.95 * 0.95 / 0.7;
        let hi = 14.0 * std::f64::consts::PI * 1.05 * 1.05 / 0.7;
        assert!((e.low_ml - lo).abs() < 1e-9 && (e.high_ml - hi).abs() < 1e-9);
        assert_eq!(m.name(), "measured_diameter");
        assert_eq!(m.aortic_diameter_mm(), Some(20.0));
    }

    #[test]
    fn description_names_the_model_and_its_spread() {
        let m = SvModel::measured(22.0).unwrap();
        assert_eq!(
            m.description(),
            "SV from measured diameter: aorta 22.0 ± 1.0 mm, 70 % of CO descending"
        );
        let p = SvModel::population(Demographics {
            age_years: 60.0,
            sex: Sex::Male,
            height_cm: 175.0,
            weight_kg: 80.0,
        })
        .unwrap();
        assert_eq!(
            p.description(),
            "SV from population model fhs_ct_age_sex: aorta 27.4 ± 3.0 mm, 70 % of CO descending"
        );
        assert!(SvModel::None.description().contains("SD only"));
    }

    #[test]
    fn none_model_gives_no_sv() {
        assert_eq!(SvModel::None.estimate(15.0), None);
        assert_eq!(SvModel::None.name(), "none");
        assert_eq!(SvModel::None.aortic_diameter_mm(), None);
    }

    #[test]
    fn population_model_sv_for_a_50_year_old_man() {
        let demo = Demographics {
            age_years: 50.0,
            sex: Sex::Male,
            height_cm: 178.0,
            weight_kg: 82.0,
        };
        let m = SvModel::population(demo).unwrap();
        assert_eq!(m.name(), crate::area::POPULATION_MODEL_NAME);
        // d = 25.8 mm → A = π·1.29² = 5.2279 cm²; SD 15 cm / 0.7 → 112.03 ml.
        let e = m.estimate(15.0).unwrap();
        assert!((e.sv_ml - 112.03).abs() < 0.01, "{e:?}");
        // ±3 mm: 22.8..28.8 mm → 87.5..139.6 ml.
        assert!((e.low_ml - 87.49).abs() < 0.01, "{e:?}");
        assert!((e.high_ml - 139.60).abs() < 0.01, "{e:?}");
    }

    #[test]
    fn descending_fraction_scales_sv_inversely() {
        let a = SvModel::measured(24.0).unwrap();
        let b = a.with_descending_fraction(1.0).unwrap();
        let ra = a.estimate(10.0).unwrap().sv_ml;
        let rb = b.estimate(10.0).unwrap().sv_ml;
        assert!((ra * 0.7 - rb).abs() < 1e-9);
        assert!(a.with_descending_fraction(1.5).is_err());
    }

    #[test]
    fn unusable_parameters_give_none_not_nan() {
        let bad = SvModel::MeasuredDiameter {
            diameter_mm: f64::NAN,
            descending_fraction: 0.7,
        };
        assert_eq!(bad.estimate(10.0), None);
        let zero_f = SvModel::MeasuredDiameter {
            diameter_mm: 24.0,
            descending_fraction: 0.0,
        };
        assert_eq!(zero_f.estimate(10.0), None);
        assert_eq!(SvModel::measured(24.0).unwrap().estimate(f64::NAN), None);
        assert!(SvModel::measured(240.0).is_err());
    }

    #[test]
    fn co_ci_svi_match_hand_values() {
        // SV 70 ml at 75/min = 5.25 l/min; BSA 1.818 → CI 2.888, SVI 38.50.
        let co = co_l_min_from_sv_ml(70.0, 75.0);
        assert!((co - 5.25).abs() < 1e-12);
        let bsa = BsaFormula::Mosteller.bsa_m2(170.0, 70.0);
        assert!((ci_l_min_m2_from_co_l_min(co, bsa).unwrap() - 2.888).abs() < 0.001);
        assert!((svi_ml_m2_from_sv_ml(70.0, bsa).unwrap() - 38.50).abs() < 0.01);
        assert_eq!(svi_ml_m2_from_sv_ml(70.0, 0.0), None);
    }
}
