//! Descending-aortic diameter and cross-sectional area: the measured-diameter
//! model and the population model of diameter from age and sex.
//!
//! The commercial monitor's nomogram is unpublished (primer, "Stroke
//! volume"), so every diameter here comes with its source and its spread.
//! `docs/haemodynamics.md` gives the derivation and the uncertainty in full.

use std::f64::consts::PI;

use crate::haemo::BsaFormula;

/// Patient sex as given in a `patient` annotation (serial-stream.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sex {
    /// `"female"`.
    Female,
    /// `"male"`.
    Male,
    /// `"unknown"` (or not stated): the population model averages the sexes
    /// and widens its spread.
    #[default]
    Unknown,
}

impl Sex {
    /// The annotation word (`"female"`, `"male"`, `"unknown"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Female => "female",
            Self::Male => "male",
            Self::Unknown => "unknown",
        }
    }

    /// Parses the annotation word; also accepts `f`/`m`/`u` and any case.
    pub fn from_word(word: &str) -> Option<Self> {
        match word.trim().to_ascii_lowercase().as_str() {
            "female" | "f" => Some(Self::Female),
            "male" | "m" => Some(Self::Male),
            "unknown" | "u" => Some(Self::Unknown),
            _ => None,
        }
    }
}

/// Demographics used for the population diameter model and for BSA.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Demographics {
    /// Age in years.
    pub age_years: f64,
    /// Sex.
    pub sex: Sex,
    /// Height in cm.
    pub height_cm: f64,
    /// Weight in kg.
    pub weight_kg: f64,
}

/// Why demographics or a diameter cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AreaError {
    /// Age outside the adult range the population data cover.
    #[error("age {0} years is outside 18..=100 (the population model covers adults only)")]
    AgeOutOfRange(f64),
    /// Height outside a plausible adult range.
    #[error("height {0} cm is outside 100..=250")]
    HeightOutOfRange(f64),
    /// Weight outside a plausible adult range.
    #[error("weight {0} kg is outside 25..=350")]
    WeightOutOfRange(f64),
    /// Aortic diameter outside a plausible range.
    #[error("aortic diameter {0} mm is outside 10..=50")]
    DiameterOutOfRange(f64),
    /// Descending-aorta fraction of cardiac output outside 0.3 ..= 1.
    #[error("descending-aorta fraction {0} is outside 0.3..=1")]
    FractionOutOfRange(f64),
}

impl AreaError {
    /// The field of a `patient` annotation this error is about (the spec's
    /// demographics, or odm's `aortic_diameter_mm`) and its allowed range,
    /// without the value given: for messages that must not repeat patient
    /// data. None for the descending fraction, which is not in an annotation.
    pub fn patient_field_range(&self) -> Option<(&'static str, (f64, f64))> {
        match self {
            Self::AgeOutOfRange(_) => Some(("age_years", AGE_RANGE_YEARS)),
            Self::HeightOutOfRange(_) => Some(("height_cm", HEIGHT_RANGE_CM)),
            Self::WeightOutOfRange(_) => Some(("weight_kg", WEIGHT_RANGE_KG)),
            Self::DiameterOutOfRange(_) => Some(("aortic_diameter_mm", DIAMETER_RANGE_MM)),
            Self::FractionOutOfRange(_) => None,
        }
    }
}

// Plausibility limits. Not physiology thresholds, only guards against typing
// errors (cm for mm, lb for kg): values outside are refused, not clamped.
const AGE_RANGE_YEARS: (f64, f64) = (18.0, 100.0);
const HEIGHT_RANGE_CM: (f64, f64) = (100.0, 250.0);
const WEIGHT_RANGE_KG: (f64, f64) = (25.0, 350.0);
const DIAMETER_RANGE_MM: (f64, f64) = (10.0, 50.0);
/// Plausible descending-aorta fractions of cardiac output. About 0.7 is the
/// literature's figure (docs/haemodynamics.md); under 0.3 SV and CO would
/// be more than three times the flow measured, and a fraction near 0 made
/// them arbitrarily large (1e-300 gave an SV of 4.8·10³⁰¹ ml, found
/// 2026-12-02). The simulator's `descending_flow_fraction` has the same
/// range.
const DESCENDING_FRACTION_RANGE: (f64, f64) = (0.3, 1.0);

fn within(x: f64, (lo, hi): (f64, f64)) -> bool {
    x.is_finite() && x >= lo && x <= hi
}

impl Demographics {
    /// Checks every field is finite and within adult limits.
    pub fn validate(&self) -> Result<(), AreaError> {
        if !within(self.age_years, AGE_RANGE_YEARS) {
            return Err(AreaError::AgeOutOfRange(self.age_years));
        }
        if !within(self.height_cm, HEIGHT_RANGE_CM) {
            return Err(AreaError::HeightOutOfRange(self.height_cm));
        }
        if !within(self.weight_kg, WEIGHT_RANGE_KG) {
            return Err(AreaError::WeightOutOfRange(self.weight_kg));
        }
        Ok(())
    }

    /// Body surface area (m²) with the given formula.
    pub fn bsa_m2(&self, formula: BsaFormula) -> f64 {
        formula.bsa_m2(self.height_cm, self.weight_kg)
    }
}

/// Checks a measured diameter is finite and plausible.
pub fn validate_diameter_mm(diameter_mm: f64) -> Result<(), AreaError> {
    if within(diameter_mm, DIAMETER_RANGE_MM) {
        Ok(())
    } else {
        Err(AreaError::DiameterOutOfRange(diameter_mm))
    }
}

/// Checks a descending-aorta fraction is finite and plausible (0.3 ..= 1).
pub fn validate_descending_fraction(fraction: f64) -> Result<(), AreaError> {
    if within(fraction, DESCENDING_FRACTION_RANGE) {
        Ok(())
    } else {
        Err(AreaError::FractionOutOfRange(fraction))
    }
}

/// Cross-sectional area (cm²) of a circular vessel of the given diameter (mm):
/// `π·(d/20)²` (d in mm → radius in cm is d/20).
pub fn area_cm2_from_diameter_mm(diameter_mm: f64) -> f64 {
    let r_cm = diameter_mm / 20.0;
    PI * r_cm * r_cm
}

/// A diameter with its one-standard-deviation spread.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DiameterEstimate {
    /// Best estimate, mm.
    pub diameter_mm: f64,
    /// One standard deviation of the estimate (population spread or
    /// measurement uncertainty), mm.
    pub spread_mm: f64,
}

impl DiameterEstimate {
    /// Area (cm²) at the best estimate.
    pub fn area_cm2(&self) -> f64 {
        area_cm2_from_diameter_mm(self.diameter_mm)
    }

    /// Area range (cm²) for diameter ± spread (the low end floored at zero).
    pub fn area_range_cm2(&self) -> (f64, f64) {
        let lo = (self.diameter_mm - self.spread_mm).max(0.0);
        let hi = self.diameter_mm + self.spread_mm;
        (area_cm2_from_diameter_mm(lo), area_cm2_from_diameter_mm(hi))
    }
}

/// Stated uncertainty of a clinician-measured diameter (one SD, mm): CT or
/// transoesophageal-echo callipers on a ~25 mm vessel resolve about 1 mm,
/// and the systolic–diastolic change of the descending aorta is of that
/// order too. A project choice, documented in `docs/haemodynamics.md`.
pub const MEASURED_DIAMETER_UNCERTAINTY_MM: f64 = 1.0;

/// Default fraction of cardiac output that flows down the descending aorta
/// (primer: in sheep, CO ≈ descending-aortic flow / 0.7 with 0.07 l/min bias).
pub const DEFAULT_DESCENDING_FRACTION: f64 = 0.70;

/// The `area_model` name of the population model in the analysis output.
pub const POPULATION_MODEL_NAME: &str = "fhs_ct_age_sex";

/// Mean descending-thoracic-aortic diameter of men, mm: Rogers et al. 2013,
/// Framingham Heart Study non-contrast MDCT, n = 3 431 ("For men, the
/// average diameters were … 25.8 mm for the DTA").
pub const POPULATION_MEAN_MALE_MM: f64 = 25.8;
/// Mean descending-thoracic-aortic diameter of women, mm (Rogers et al.
/// 2013: "For women … 23.1 mm for the DTA").
pub const POPULATION_MEAN_FEMALE_MM: f64 = 23.1;
/// Age at which the sex means apply, years: the mean age of the Framingham
/// MDCT cohort (Offspring and Third Generation, scanned 2002–2005) is
/// 48.9 ± 10.3 years (Qazi et al. 2017, Circ Cardiovasc Imaging, the same
/// scans); rounded to 50.
pub const POPULATION_REFERENCE_AGE_YEARS: f64 = 50.0;
/// Widening of the descending thoracic aorta with age, mm per year:
/// Hannuksela et al. 2006 (Scand Cardiovasc J 40:175–8), upper normal limit
/// of the descending aorta `D(mm) = 21 + 0.16·age`.
pub const POPULATION_AGE_SLOPE_MM_PER_YEAR: f64 = 0.16;
/// One standard deviation of normal descending-aortic diameter, mm: Wolak et
/// al. 2008 (JACC Cardiovasc Imaging 1:200–9), 24 ± 3 mm in 1 931 low-risk
/// adults at the pulmonary-artery bifurcation, the level of the probe (T5–T6).
pub const POPULATION_SPREAD_MM: f64 = 3.0;

/// Population model of the descending-thoracic-aortic diameter from age and
/// sex (see the constants above for every number's source).
///
/// `d = mean_sex + 0.16·(age − 50)`, spread 3 mm (one SD). For
/// [`Sex::Unknown`] the mean of the two sexes is used and the spread widened
/// by half the sex difference in quadrature: √(3² + 1.35²) ≈ 3.29 mm.
///
/// Height and weight do not enter: Hager et al. 2002 (J Thorac Cardiovasc
/// Surg 123:1060–6) found no influence of weight, height or BSA on thoracic
/// aortic diameters; Rogers 2013 and Wolak 2008 report a BSA association but
/// the project had no access to their coefficients for the descending aorta,
/// so none is invented. They are used for BSA (CI, SVI).
pub fn population_diameter(demographics: &Demographics) -> DiameterEstimate {
    let age_term_mm = POPULATION_AGE_SLOPE_MM_PER_YEAR
        * (demographics.age_years - POPULATION_REFERENCE_AGE_YEARS);
    let (mean_mm, spread_mm) = match demographics.sex {
        Sex::Male => (POPULATION_MEAN_MALE_MM, POPULATION_SPREAD_MM),
        Sex::Female => (POPULATION_MEAN_FEMALE_MM, POPULATION_SPREAD_MM),
        Sex::Unknown => {
            let half_diff = 0.5 * (POPULATION_MEAN_MALE_MM - POPULATION_MEAN_FEMALE_MM);
            (
                0.5 * (POPULATION_MEAN_MALE_MM + POPULATION_MEAN_FEMALE_MM),
                POPULATION_SPREAD_MM.hypot(half_diff),
            )
        }
    };
    DiameterEstimate {
        diameter_mm: mean_mm + age_term_mm,
        spread_mm,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_value_is_named_by_its_field_and_range_alone() {
        let base = Demographics {
            age_years: 50.0,
            sex: Sex::Female,
            height_cm: 165.0,
            weight_kg: 60.0,
        };
        let cases = [
            (
                Demographics {
                    age_years: 12.0,
                    ..base
                }
                .validate(),
                "age_years",
                12.0,
            ),
            (
                Demographics {
                    height_cm: 1.65,
                    ..base
                }
                .validate(),
                "height_cm",
                1.65,
            ),
            (
                Demographics {
                    weight_kg: 600.0,
                    ..base
                }
                .validate(),
                "weight_kg",
                600.0,
            ),
            (validate_diameter_mm(2.4), "aortic_diameter_mm", 2.4),
        ];
        for (result, field, value) in cases {
            let e = result.expect_err(field);
            let (named, (lo, hi)) = e.patient_field_range().expect(field);
            assert_eq!(named, field);
            assert!(value < lo || value > hi, "{field}: {value} in {lo}..={hi}");
        }
        // A plausible adult aorta (primer: about 20–30 mm) is inside.
        assert!(validate_diameter_mm(24.0).is_ok());
        assert_eq!(
            AreaError::FractionOutOfRange(2.0).patient_field_range(),
            None
        );
    }

    #[test]
    fn area_of_a_24_mm_aorta_is_4_52_cm2() {
        // π·1.2² = 4.5239 cm² by hand.
        assert!((area_cm2_from_diameter_mm(24.0) - 4.5239).abs() < 1e-4);
        assert!((area_cm2_from_diameter_mm(20.0) - PI).abs() < 1e-12);
    }

    #[test]
    fn population_model_reproduces_the_cited_sex_means_at_the_reference_age() {
        let man = Demographics {
            age_years: 50.0,
            sex: Sex::Male,
            height_cm: 180.0,
            weight_kg: 80.0,
        };
        let woman = Demographics {
            sex: Sex::Female,
            ..man
        };
        assert!((population_diameter(&man).diameter_mm - 25.8).abs() < 1e-12);
        assert!((population_diameter(&woman).diameter_mm - 23.1).abs() < 1e-12);
        assert!((population_diameter(&man).spread_mm - 3.0).abs() < 1e-12);
    }

    #[test]
    fn population_diameter_widens_0_16_mm_per_year() {
        let young = Demographics {
            age_years: 30.0,
            sex: Sex::Female,
            height_cm: 165.0,
            weight_kg: 60.0,
        };
        let old = Demographics {
            age_years: 80.0,
            ..young
        };
        let diff = population_diameter(&old).diameter_mm - population_diameter(&young).diameter_mm;
        assert!(
            (diff - 8.0).abs() < 1e-9,
            "50 years × 0.16 mm = 8 mm, got {diff}"
        );
        // Hannuksela's upper normal limit at 80 y: 21 + 0.16·80 = 33.8 mm; the
        // mean must sit below it.
        assert!(population_diameter(&old).diameter_mm < 33.8);
    }

    #[test]
    fn unknown_sex_averages_the_sexes_with_wider_spread() {
        let d = population_diameter(&Demographics {
            age_years: 50.0,
            sex: Sex::Unknown,
            height_cm: 170.0,
            weight_kg: 70.0,
        });
        assert!((d.diameter_mm - 24.45).abs() < 1e-12);
        assert!((d.spread_mm - (9.0f64 + 1.35 * 1.35).sqrt()).abs() < 1e-12);
        assert!(d.spread_mm > POPULATION_SPREAD_MM);
    }

    #[test]
    fn height_and_weight_do_not_change_the_population_diameter() {
        let a = Demographics {
            age_years: 60.0,
            sex: Sex::Male,
            height_cm: 160.0,
            weight_kg: 50.0,
        };
        let b = Demographics {
            height_cm: 195.0,
            weight_kg: 120.0,
            ..a
        };
        assert_eq!(population_diameter(&a), population_diameter(&b));
    }

    #[test]
    fn area_range_brackets_the_area() {
        let d = DiameterEstimate {
            diameter_mm: 25.0,
            spread_mm: 1.0,
        };
        let (lo, hi) = d.area_range_cm2();
        assert!((lo - area_cm2_from_diameter_mm(24.0)).abs() < 1e-12);
        assert!((hi - area_cm2_from_diameter_mm(26.0)).abs() < 1e-12);
        assert!(lo < d.area_cm2() && d.area_cm2() < hi);
    }

    #[test]
    fn rejects_implausible_demographics_and_diameters() {
        let ok = Demographics {
            age_years: 45.0,
            sex: Sex::Female,
            height_cm: 165.0,
            weight_kg: 65.0,
        };
        assert!(ok.validate().is_ok());
        let bad_age = Demographics {
            age_years: f64::NAN,
            ..ok
        };
        assert!(matches!(
            bad_age.validate(),
            Err(AreaError::AgeOutOfRange(_))
        ));
        let metres = Demographics {
            height_cm: 1.65,
            ..ok
        };
        assert!(matches!(
            metres.validate(),
            Err(AreaError::HeightOutOfRange(_))
        ));
        assert!(validate_diameter_mm(2.4).is_err(), "cm typed as mm");
        assert!(validate_diameter_mm(24.0).is_ok());
        assert!(validate_descending_fraction(0.0).is_err());
        assert!(validate_descending_fraction(1e-300).is_err(), "SV × 10³⁰⁰");
        assert!(validate_descending_fraction(0.29).is_err());
        assert!(validate_descending_fraction(0.3).is_ok());
        assert!(validate_descending_fraction(0.7).is_ok());
        assert!(validate_descending_fraction(1.0).is_ok());
        assert!(validate_descending_fraction(1.01).is_err());
        assert!(validate_descending_fraction(f64::INFINITY).is_err());
    }

    #[test]
    fn sex_words_round_trip() {
        for s in [Sex::Female, Sex::Male, Sex::Unknown] {
            assert_eq!(Sex::from_word(s.as_str()), Some(s));
        }
        assert_eq!(Sex::from_word("M"), Some(Sex::Male));
        assert_eq!(Sex::from_word("other"), None);
    }
}
