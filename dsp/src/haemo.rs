//! Haemodynamic formulas: FTc corrections and body surface area.

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
    fn ftc_matches_primer_check_values() {
        // Primer: FT = 300 ms, HR = 80 → Bazett 346.4 ms, Fridericia 330.2 ms.
        let cycle_s = 60.0 / 80.0;
        assert!((FtcFormula::Bazett.ftc_ms(300.0, cycle_s) - 346.4).abs() < 0.05);
        assert!((FtcFormula::Fridericia.ftc_ms(300.0, cycle_s) - 330.2).abs() < 0.05);
        let lin = FtcFormula::Linear { k_ms_per_bpm: 1.5 };
        assert!((lin.ftc_ms(300.0, cycle_s) - 330.0).abs() < 1e-9);
        for f in [FtcFormula::Bazett, FtcFormula::Fridericia, lin] {
            assert!((f.ftc_ms(312.0, 1.0) - 312.0).abs() < 1e-9, "{f:?} at 60/min");
        }
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
