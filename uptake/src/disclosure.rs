//! NHS small-number disclosure control for published counts (HES rules,
//! since 2018; primer "Counting uptake without identifying anyone"): 0 stays
//! 0, 1–7 is suppressed (`*`), every other count is rounded to the nearest 5.
//! Rates are computed from the published counts, so they reveal nothing the
//! counts do not.

use std::fmt;

/// A count as it may be published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published {
    /// A count that may be shown: 0 or a multiple of 5 that is at least 10.
    Count(u64),
    /// A count of 1–7, shown as `*`.
    Suppressed,
}

impl fmt::Display for Published {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Published::Count(n) => write!(f, "{n}"),
            Published::Suppressed => f.write_str("*"),
        }
    }
}

/// Applies disclosure control to a raw count: 0 → 0, 1–7 → `*`, otherwise
/// the nearest multiple of 5 (8 → 10, 12 → 10, 13 → 15).
pub fn published_from_count(count: u64) -> Published {
    match count {
        0 => Published::Count(0),
        1..=7 => Published::Suppressed,
        // Integers are never exactly halfway between multiples of 5.
        n => Published::Count(n.saturating_add(2) / 5 * 5),
    }
}

/// `uptake_pct` from published counts: 100 · monitored / eligible with one
/// decimal, halves rounded up; `*` when either count is `*`; empty when
/// eligible is 0 or unknown (`None`).
pub fn uptake_pct_text(monitored: Published, eligible: Option<Published>) -> String {
    match (monitored, eligible) {
        (Published::Suppressed, _) | (_, Some(Published::Suppressed)) => "*".to_owned(),
        (_, None) | (_, Some(Published::Count(0))) => String::new(),
        (Published::Count(m), Some(Published::Count(e))) => {
            let tenths = uptake_tenths_of_pct(m, e);
            format!("{}.{}", tenths / 10, tenths % 10)
        }
    }
}

/// round_half_up(1000 · m / e) in exact integer arithmetic: tenths of a
/// percent. `e` must be above 0.
pub fn uptake_tenths_of_pct(monitored: u64, eligible: u64) -> u128 {
    let m = u128::from(monitored);
    let e = u128::from(eligible.max(1));
    (2000 * m + e) / (2 * e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suppression_table_matches_hes_rules() {
        let table: &[(u64, &str)] = &[
            (0, "0"),
            (1, "*"),
            (2, "*"),
            (5, "*"),
            (7, "*"),
            (8, "10"),
            (9, "10"),
            (10, "10"),
            (11, "10"),
            (12, "10"),
            (13, "15"),
            (14, "15"),
            (17, "15"),
            (18, "20"),
            (22, "20"),
            (23, "25"),
            (1002, "1000"),
            (1003, "1005"),
        ];
        for &(n, shown) in table {
            assert_eq!(published_from_count(n).to_string(), shown, "count {n}");
        }
    }

    #[test]
    fn uptake_uses_published_counts_and_rounds_halves_up() {
        let p = published_from_count;
        // 12 of 38 → published 10 of 40 → 25.0 (not 31.6 from raw counts).
        assert_eq!(uptake_pct_text(p(12), Some(p(38))), "25.0");
        // 10/80 = 12.5 exactly; 1/3 → 33.3; 2/3 → 66.7; 1/16 = 6.25 → 6.3.
        assert_eq!(uptake_pct_text(p(10), Some(p(80))), "12.5");
        assert_eq!(uptake_pct_text(p(10), Some(p(30))), "33.3");
        assert_eq!(uptake_pct_text(p(20), Some(p(30))), "66.7");
        assert_eq!(uptake_pct_text(p(10), Some(p(160))), "6.3");
        assert_eq!(uptake_pct_text(p(40), Some(p(20))), "200.0");
        assert_eq!(uptake_pct_text(p(3), Some(p(50))), "*");
        assert_eq!(uptake_pct_text(p(50), Some(p(3))), "*");
        assert_eq!(uptake_pct_text(p(3), None), "*");
        assert_eq!(uptake_pct_text(p(50), None), "");
        assert_eq!(uptake_pct_text(p(50), Some(p(0))), "");
        assert_eq!(uptake_pct_text(p(0), Some(p(20))), "0.0");
    }
}
