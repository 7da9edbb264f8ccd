//! The velocity distribution's shape near its edge, read from band powers
//! away from it.
//!
//! The envelope's shape fit ([`crate::envelope`]) needs the exponent `β` of
//! the density `∝ (f_e − f)^β` just below the edge `f_e`: the window smears
//! an edge-peaked density (β < 0) differently from a level one (β = 0), and
//! the fitted template must match. Measuring that shape *at* the edge would
//! make the edge and the shape feed each other's errors, so it is read from
//! the power in bands below it and carried to the edge by a model.
//!
//! A one-parameter model, the power-law family `(1 − q)^β` of `q = f/f_e`
//! (`β = 2/n − 1` for the profile `v = v_max(1 − (r/R)^n)`), reads one band
//! ratio. It holds for every profile of that form, but a distribution whose
//! density grows from low velocities towards the edge — fewer slow cells
//! than any such profile, e.g. `3q²` — has a band ratio no member of the
//! family reaches, so it was read as the most edge-peaked member (β = −0.85)
//! where its density is nearly level at the edge. On an independent
//! generator with that spectrum (audit, stop 39) SD then read 3 % low at
//! 15 dB and 6 % at 3 dB, PV 2–3 % low; read with a near-edge exponent of
//! about −0.2, within ±1.2 % and ±1 %.
//!
//! So the model here has two parameters, `q^γ (1 − q)^β` (γ = 0 is the
//! family above), read from two ratios: the middle band `[0.55, 0.8)·f_e`
//! over the lower `[0.3, 0.55)`, and the near band `[0.8, 0.9)` over the
//! middle. The exponent handed to the shape fit is the power law that has
//! the same balance over the top quarter as the fitted model, `P[0.875, 1]
//! / P[0.75, 0.875)` — the region the fit's template spans (10 bins under
//! an edge of about 40): for γ = 0 that is `β` itself. [`ShapeMap`]
//! holds the answer over a grid of both ratios, computed ahead of time and
//! embedded (`shape_map_table.rs`), so a column costs one bilinear look-up
//! and construction nothing.

/// Lower band, as fractions of the edge.
pub(crate) const LOW_BAND: (f64, f64) = (0.3, 0.55);
/// Middle band.
pub(crate) const MID_BAND: (f64, f64) = (0.55, 0.8);
/// Near band: under the edge by a tenth of it, clear of the window's main
/// lobe for edges above about 26 bins.
pub(crate) const NEAR_BAND: (f64, f64) = (0.8, 0.9);

// The model's table and its inversion run only to build and check the
// embedded map (`cfg(test)`); the estimator reads the map.

/// Range of the edge exponent (the shape templates' range).
#[cfg(test)]
pub(crate) const BETA_RANGE: (f64, f64) = (-0.85, 1.0);
/// Range of the edge exponent in the model table: wider than
/// [`BETA_RANGE`], so that members of the family at its ends lie inside
/// the tilted rows' reach too.
#[cfg(test)]
const MODEL_BETA_RANGE: (f64, f64) = (-0.96, 1.5);
/// Range of the tilt exponent searched.
#[cfg(test)]
const GAMMA_RANGE: (f64, f64) = (-0.75, 4.0);
/// Model table resolution: tilt rows, exponent columns.
#[cfg(test)]
const GAMMA_STEPS: usize = 20;
#[cfg(test)]
const BETA_STEPS: usize = 100;
/// Look-up grid nodes along each log ratio.
const MAP_NODES: usize = 64;

/// `∫_lo^hi q^γ (1 − q)^β dq` for `0 ≤ lo < hi ≤ 1` (`lo > 0` when
/// `γ < 0`), `β > −1`.
///
/// With `s = 1 − q` and `u = s^(β+1)` the integrand becomes
/// `(1 − u^(1/(β+1)))^γ / (β + 1)`: the singularity of an edge-peaked
/// density at `q = 1` is absorbed. Simpson's rule on 16 intervals is then
/// exact to about 1e-7 of the power of a band clear of `q = 1`; on the band
/// `[7/8, 1]`, where `u^(1/(β+1))` is not smooth at 0, to 2e-4 for β ≤ 0
/// and 2e-3 for β > 0 (γ up to 4, against Gauss–Legendre), which moves
/// [`near_edge_beta`] by at most 2e-3.
pub(crate) fn band_power(gamma: f64, beta: f64, lo: f64, hi: f64) -> f64 {
    let p = beta + 1.0;
    let (u0, u1) = ((1.0 - hi).max(0.0).powf(p), (1.0 - lo).max(0.0).powf(p));
    let f = |u: f64| (1.0 - u.powf(1.0 / p)).max(0.0).powf(gamma);
    const N: usize = 16;
    let h = (u1 - u0) / N as f64;
    let mut acc = f(u0) + f(u1);
    for i in 1..N {
        acc += f(u0 + i as f64 * h) * if i % 2 == 1 { 4.0 } else { 2.0 };
    }
    acc * h / 3.0 / p
}

/// The two ratios the envelope pools, for the model `q^γ (1 − q)^β`:
/// (middle / lower, near / middle).
pub(crate) fn band_ratios(gamma: f64, beta: f64) -> (f64, f64) {
    let low = band_power(gamma, beta, LOW_BAND.0, LOW_BAND.1);
    let mid = band_power(gamma, beta, MID_BAND.0, MID_BAND.1);
    let near = band_power(gamma, beta, NEAR_BAND.0, NEAR_BAND.1);
    (mid / low, near / mid)
}

/// The power law with the same balance over the top quarter as
/// `q^γ (1 − q)^β`: for `(1 − q)^b`, `P[7/8, 1] / P[3/4, 7/8) = 1/(2^(b+1) − 1)`.
/// Equal to `β` when `γ = 0`; clamped to [`BETA_RANGE`].
#[cfg(test)]
pub(crate) fn near_edge_beta(gamma: f64, beta: f64) -> f64 {
    let top = band_power(gamma, beta, 0.875, 1.0);
    let below = band_power(gamma, beta, 0.75, 0.875);
    let p = (1.0 + below / top).log2();
    (p - 1.0).clamp(BETA_RANGE.0, BETA_RANGE.1)
}

/// The near-edge exponent over a grid of the two pooled log ratios.
#[derive(Debug, Clone)]
pub(crate) struct ShapeMap {
    /// ln(middle / lower) at node 0 and its step.
    r1_start: f64,
    r1_step: f64,
    /// ln(near / middle) at node 0 and its step.
    r2_start: f64,
    r2_step: f64,
    /// `MAP_NODES × MAP_NODES`, row-major in the first ratio.
    beta: std::borrow::Cow<'static, [f32]>,
}

// `EMBEDDED_R1`, `EMBEDDED_R2` (start, step) and `EMBEDDED_BETA`: the map
// computed by `ShapeMap::compute`, written by the ignored test
// `tests::write_embedded_map` and checked against it by
// `tests::the_embedded_map_is_the_computed_one`. Computing it takes about
// 8 ms, as long as the rest of `Pipeline::new`.
include!("shape_map_table.rs");

/// One tilt row of the model table, along increasing `β`.
#[cfg(test)]
struct Row {
    gamma: f64,
    /// ln(middle / lower): decreasing along the row.
    r1: Vec<f64>,
    r2: Vec<f64>,
    near: Vec<f64>,
}

#[cfg(test)]
impl Row {
    /// The row's (ln near/middle, near-edge exponent) where its first ratio
    /// is `r1`, and whether `r1` lay inside the row's range.
    fn at(&self, r1: f64) -> (f64, f64, bool) {
        let n = self.r1.len();
        // Decreasing: first index whose ratio is ≤ r1.
        let i = self.r1.partition_point(|&x| x > r1);
        if i == 0 {
            return (self.r2[0], self.near[0], false);
        }
        if i >= n {
            return (self.r2[n - 1], self.near[n - 1], false);
        }
        let (a, b) = (self.r1[i - 1], self.r1[i]);
        let w = if a > b { (a - r1) / (a - b) } else { 0.0 };
        let lerp = |v: &[f64]| v[i - 1] + w * (v[i] - v[i - 1]);
        (lerp(&self.r2), lerp(&self.near), true)
    }
}

impl ShapeMap {
    /// The map, from the table embedded at build time (no computation).
    pub(crate) fn new() -> Self {
        Self {
            r1_start: EMBEDDED_R1.0,
            r1_step: EMBEDDED_R1.1,
            r2_start: EMBEDDED_R2.0,
            r2_step: EMBEDDED_R2.1,
            beta: std::borrow::Cow::Borrowed(&EMBEDDED_BETA),
        }
    }

    /// Tabulates the model and inverts it on the grid: what the embedded
    /// table holds.
    #[cfg(test)]
    pub(crate) fn compute() -> Self {
        let rows: Vec<Row> = (0..GAMMA_STEPS)
            .map(|i| {
                let gamma = GAMMA_RANGE.0
                    + (GAMMA_RANGE.1 - GAMMA_RANGE.0) * i as f64 / (GAMMA_STEPS - 1) as f64;
                let mut row = Row {
                    gamma,
                    r1: Vec::with_capacity(BETA_STEPS),
                    r2: Vec::with_capacity(BETA_STEPS),
                    near: Vec::with_capacity(BETA_STEPS),
                };
                for j in 0..BETA_STEPS {
                    let beta = MODEL_BETA_RANGE.0
                        + (MODEL_BETA_RANGE.1 - MODEL_BETA_RANGE.0) * j as f64
                            / (BETA_STEPS - 1) as f64;
                    let (r1, r2) = band_ratios(gamma, beta);
                    row.r1.push(r1.ln());
                    row.r2.push(r2.ln());
                    row.near.push(near_edge_beta(gamma, beta));
                }
                row
            })
            .collect();
        let span = |f: &dyn Fn(&Row) -> &Vec<f64>| {
            rows.iter()
                .flat_map(|r| f(r).iter().copied())
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
                    (lo.min(x), hi.max(x))
                })
        };
        let (r1_lo, r1_hi) = span(&|r| &r.r1);
        let (r2_lo, r2_hi) = span(&|r| &r.r2);
        let step = |lo: f64, hi: f64| (hi - lo) / (MAP_NODES - 1) as f64;
        let (r1_step, r2_step) = (step(r1_lo, r1_hi), step(r2_lo, r2_hi));
        let mut beta = Vec::with_capacity(MAP_NODES * MAP_NODES);
        for i in 0..MAP_NODES {
            let r1 = r1_lo + i as f64 * r1_step;
            for j in 0..MAP_NODES {
                let r2 = r2_lo + j as f64 * r2_step;
                beta.push(Self::solve(&rows, r1, r2) as f32);
            }
        }
        Self {
            r1_start: r1_lo,
            r1_step,
            r2_start: r2_lo,
            r2_step,
            beta: std::borrow::Cow::Owned(beta),
        }
    }

    /// The near-edge exponent of the model whose log ratios are `(r1, r2)`:
    /// along the curve of equal `r1` through the tilt rows, where `r2` is
    /// met (the crossing nearest γ = 0 if several), or the closest row.
    #[cfg(test)]
    fn solve(rows: &[Row], r1: f64, r2: f64) -> f64 {
        let mut at = [(0.0, 0.0, false); GAMMA_STEPS];
        for (a, row) in at.iter_mut().zip(rows) {
            *a = row.at(r1);
        }
        let mut best: Option<(f64, f64)> = None; // (|γ|, exponent)
        for (k, w) in at.windows(2).enumerate() {
            let (d0, d1) = (w[0].0 - r2, w[1].0 - r2);
            if w[0].2 && w[1].2 && (d0 == 0.0 || d0.signum() != d1.signum()) {
                let f = if d0 != d1 { d0 / (d0 - d1) } else { 0.0 };
                let gamma = rows[k].gamma + f * (rows[k + 1].gamma - rows[k].gamma);
                let near = w[0].1 + f * (w[1].1 - w[0].1);
                if best.is_none_or(|(g, _)| gamma.abs() < g) {
                    best = Some((gamma.abs(), near));
                }
            }
        }
        if let Some((_, near)) = best {
            return near;
        }
        // Off the model's reach: the row (at its end where `r1` is beyond
        // it) whose second ratio comes closest.
        at.iter()
            .min_by(|a, b| (a.0 - r2).abs().total_cmp(&(b.0 - r2).abs()))
            .map_or(0.0, |x| x.1)
    }

    /// The near-edge exponent for pooled band ratios `mid_over_low` and
    /// `near_over_mid` (linear, > 0); outside the tabulated range the
    /// nearest edge of the grid.
    pub(crate) fn near_edge_beta(&self, mid_over_low: f64, near_over_mid: f64) -> f64 {
        let x = ((mid_over_low.max(1e-6).ln() - self.r1_start) / self.r1_step)
            .clamp(0.0, (MAP_NODES - 1) as f64);
        let y = ((near_over_mid.max(1e-6).ln() - self.r2_start) / self.r2_step)
            .clamp(0.0, (MAP_NODES - 1) as f64);
        let (i, j) = (
            (x as usize).min(MAP_NODES - 2),
            (y as usize).min(MAP_NODES - 2),
        );
        let (fx, fy) = (x - i as f64, y - j as f64);
        let v = |a: usize, b: usize| f64::from(self.beta[a * MAP_NODES + b]);
        let lo = v(i, j) + fy * (v(i, j + 1) - v(i, j));
        let hi = v(i + 1, j) + fy * (v(i + 1, j + 1) - v(i + 1, j));
        lo + fx * (hi - lo)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Closed form of a band's power for the power-law family (γ = 0).
    fn power_law_band(beta: f64, lo: f64, hi: f64) -> f64 {
        let p = beta + 1.0;
        ((1.0 - lo).powf(p) - (1.0 - hi).powf(p)) / p
    }

    #[test]
    fn band_power_matches_closed_forms() {
        for beta in [-0.85, -2.0 / 3.0, 0.0, 0.5, 1.0] {
            for (lo, hi) in [LOW_BAND, MID_BAND, NEAR_BAND, (0.875, 1.0)] {
                let got = band_power(0.0, beta, lo, hi);
                let want = power_law_band(beta, lo, hi);
                assert!(
                    (got / want - 1.0).abs() < 1e-9,
                    "β {beta} [{lo}, {hi}): {got} vs {want}"
                );
            }
        }
        // 3q² (γ = 2, β = 0): q³ between the limits.
        for (lo, hi) in [LOW_BAND, MID_BAND, NEAR_BAND, (0.875_f64, 1.0_f64)] {
            let got = 3.0 * band_power(2.0, 0.0, lo, hi);
            let want = hi.powi(3) - lo.powi(3);
            assert!(
                (got / want - 1.0).abs() < 1e-6,
                "3q² [{lo}, {hi}): {got} vs {want}"
            );
        }
        // q (1 − q)^(−½): Beta-function pieces, checked by a fine midpoint sum.
        let (g, b) = (1.0, -0.5);
        let n = 2_000_000;
        let (lo, hi) = MID_BAND;
        let h = (hi - lo) / n as f64;
        let mid: f64 = (0..n)
            .map(|i| {
                let q = lo + (i as f64 + 0.5) * h;
                q.powf(g) * (1.0 - q).powf(b)
            })
            .sum::<f64>()
            * h;
        assert!((band_power(g, b, lo, hi) / mid - 1.0).abs() < 1e-7);
    }

    #[test]
    fn the_embedded_map_is_the_computed_one() {
        let (embedded, computed) = (ShapeMap::new(), ShapeMap::compute());
        assert_eq!(
            (
                embedded.r1_start,
                embedded.r1_step,
                embedded.r2_start,
                embedded.r2_step
            ),
            (
                computed.r1_start,
                computed.r1_step,
                computed.r2_start,
                computed.r2_step
            )
        );
        assert_eq!(embedded.beta.len(), computed.beta.len());
        for (i, (a, b)) in embedded.beta.iter().zip(computed.beta.iter()).enumerate() {
            assert!(
                (a - b).abs() <= 1e-6,
                "node {i}: embedded {a}, computed {b}"
            );
        }
    }

    /// Writes `shape_map_table.rs` after a change to the model:
    /// `ODM_WRITE_SHAPE_MAP=dsp/src/shape_map_table.rs cargo test -p odm-dsp
    /// --lib write_embedded_map -- --ignored` (the path from the workspace
    /// root; a relative path is taken from the crate's directory).
    #[test]
    #[ignore]
    fn write_embedded_map() {
        use std::fmt::Write as _;
        let path = std::env::var("ODM_WRITE_SHAPE_MAP").expect("ODM_WRITE_SHAPE_MAP=path");
        let m = ShapeMap::compute();
        let mut src =
            String::from("// Generated by `shape::tests::write_embedded_map`; do not edit.\n");
        writeln!(
            src,
            "const EMBEDDED_R1: (f64, f64) = ({:?}, {:?});",
            m.r1_start, m.r1_step
        )
        .unwrap();
        writeln!(
            src,
            "const EMBEDDED_R2: (f64, f64) = ({:?}, {:?});",
            m.r2_start, m.r2_step
        )
        .unwrap();
        writeln!(
            src,
            "#[rustfmt::skip]\nconst EMBEDDED_BETA: [f32; {}] = [",
            m.beta.len()
        )
        .unwrap();
        for row in m.beta.chunks(MAP_NODES) {
            let cells: Vec<String> = row.iter().map(|v| format!("{v:?}")).collect();
            writeln!(src, "    {},", cells.join(", ")).unwrap();
        }
        src.push_str("];\n");
        let path = std::path::Path::new(&path);
        let path = if path.is_relative() && !path.exists() {
            std::path::Path::new("..").join(path)
        } else {
            path.to_path_buf()
        };
        std::fs::write(path, src).unwrap();
    }

    #[test]
    fn the_power_law_family_keeps_its_own_exponent() {
        assert!((near_edge_beta(0.0, -2.0 / 3.0) + 2.0 / 3.0).abs() < 1e-9);
        let map = ShapeMap::new();
        for beta in [-0.8, -7.0 / 9.0, -2.0 / 3.0, -0.5, -0.3, 0.0, 0.4, 0.9] {
            let (r1, r2) = band_ratios(0.0, beta);
            let got = map.near_edge_beta(r1, r2);
            assert!((got - beta).abs() < 0.02, "β {beta}: read {got:.3}");
        }
        // At the family's ends the grid's cells straddle the clamp.
        for beta in [BETA_RANGE.0, BETA_RANGE.1] {
            let (r1, r2) = band_ratios(0.0, beta);
            let got = map.near_edge_beta(r1, r2);
            assert!((got - beta).abs() < 0.04, "β {beta}: read {got:.3}");
        }
    }

    #[test]
    fn a_density_rising_from_slow_flow_reads_nearly_level_at_the_edge() {
        // 3q²: the one-parameter family reads its band ratio (2.48) as past
        // its most edge-peaked member; its top quarter balances like
        // (1 − q)^−0.19.
        let want = near_edge_beta(2.0, 0.0);
        assert!((want + 0.19).abs() < 0.01, "{want}");
        let map = ShapeMap::new();
        let (r1, r2) = band_ratios(2.0, 0.0);
        assert!(r1 > 2.4, "{r1}");
        let got = map.near_edge_beta(r1, r2);
        assert!((got - want).abs() < 0.02, "read {got:.3}, model {want:.3}");
        // Tilted members of the family read back their own top quarter.
        for (g, b) in [
            (1.0, -0.5),
            (0.5, -2.0 / 3.0),
            (3.0, 0.2),
            (-0.3, -0.2),
            (1.5, 0.6),
        ] {
            let (r1, r2) = band_ratios(g, b);
            let got = map.near_edge_beta(r1, r2);
            let want = near_edge_beta(g, b);
            assert!(
                (got - want).abs() < 0.03,
                "γ {g} β {b}: {got:.3} vs {want:.3}"
            );
        }
    }
}
