//! Maximum-velocity envelope: the upper edge of the forward-flow spectrum in
//! one column, with the estimator's bias corrected.
//!
//! Two published estimators (primer, "Signal-processing methods"; Moraes et
//! al., "Maximum frequency estimators for Doppler ultrasound signals"):
//!
//! - **MTCM**, modified threshold crossing: the positive half is smoothed
//!   over `smoothing_bins` bins and searched *from the top down* for the
//!   first run of bins above a threshold derived from the noise statistics
//!   (false-alarm probability per bin, Wilson–Hilferty quantile of the
//!   smoothed χ² noise, whose degrees of freedom are computed from the
//!   window's bin-to-bin correlation).
//! - **MGM**, modified geometric method: on the noise-subtracted integrated
//!   spectrum, the edge is the point farthest above the straight line from
//!   its origin to its maximum (the knee).
//! - **Percentile** (for comparison only): where the noise-subtracted
//!   integrated spectrum reaches a fixed fraction of its maximum; its bias
//!   depends on the spectrum's shape and is not corrected.
//!
//! **Bias correction** (MTCM and MGM). Near the true edge `f_e` the expected
//! smoothed spectrum is `n + A·R(f − f_e)`, where `n` is the noise floor,
//! `A` the signal density just below the edge, and `R(d)` the fraction of a
//! unit step's power that the analysis kernel (|W(f)|² of the Hann window,
//! convolved with the smoothing boxcar) spreads beyond distance `d`. An
//! estimator that stops where the expected spectrum has fallen to `n + τA`
//! sits at `f_e + R⁻¹(τ)`: above the edge when `τ < ½` (strong signal: the
//! window's main lobe smears the edge upward), below it when `τ > ½` (weak
//! signal: the threshold cuts inside). `R` is computed exactly from the
//! window at construction; `τ` comes from the estimator's own threshold
//! (MTCM: `(T − n)/A`; MGM: slope of the reference line `/A`), with `A`
//! measured from the bins just below the edge. Nothing here is fitted to a
//! simulator.
//!
//! **Shape fit** (the default). The step correction assumes the density is
//! level just below the edge. It is not with a blunt aortic profile: the
//! velocities pile up near the maximum, the smeared pile-up peaks *at* the
//! edge and its half-height sits about 1.5 bins above it (+3 cm/s
//! measured), while a flat (parabolic-profile) spectrum's noisy plateau
//! makes the half-level cut inside (−2 cm/s). The shape fit takes the
//! plateau-threshold edge as an anchor and fits, by least squares weighted
//! for the multiplicative speckle of a periodogram, the expected column
//! `n + a·T_β(k − f_e)` over 10 bins below to 4 above it, for edges within
//! ±3 bins on a quarter-bin grid refined parabolically. `T_β` is the
//! density `(f_e − f)^β` smeared by the analysis kernel ([`ShapeTemplates`]).
//! The reported edge mixes that fit with the noise-threshold crossing
//! placed on the fitted template's upper flank (the level `(T − n)/a` of
//! the template falls at a known distance above its edge): their mean on
//! edge-peaked spectra, where the two readings' errors are partly
//! independent, and the crossing alone on flat and edge-vanishing ones,
//! where the fit's tail is heavy (`crossing_weight`).
//! The exponent `β` is *not* chosen column by column (one column's speckle
//! would pick shapes at random, favouring edge-peaked ones); it is pooled
//! over about a second of strong columns from the power balance of two
//! bands well below the edge, `P[0.55 f_e, 0.8 f_e) / P[0.3 f_e, 0.55 f_e)`,
//! a known function of `β` for the power-law family. A balance beyond the
//! family's reach is read with a two-parameter model and a third band
//! nearer the edge ([`crate::shape`]).

use crate::error::DspError;
use crate::shape::{LOW_BAND, MID_BAND, NEAR_BAND, ShapeMap};

/// Which maximum-frequency estimator traces the envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EnvelopeMethod {
    /// Modified threshold crossing: noise-referenced threshold, top-down search.
    Mtcm,
    /// MTCM whose level is raised to a fraction of the local spectral
    /// plateau (default ½: a symmetric kernel's step response crosses ½ at
    /// the edge, in frequency and in time) when that is above the noise
    /// threshold; step-edge correction only.
    PlateauThreshold,
    /// Modified geometric method (knee of the integrated spectrum).
    Geometric,
    /// Percentile of the integrated spectrum (uncorrected; for comparison).
    Percentile,
    /// Shape fit (default; chosen by measurement, docs/validation.md): the
    /// plateau-threshold edge refined by a weighted least-squares fit of the
    /// expected column near the edge for the power-law family of velocity
    /// distributions (flat to edge-peaked), the shape pooled over time; see
    /// [`ShapeTemplates`].
    #[default]
    ShapeFit,
}

impl EnvelopeMethod {
    /// Short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Mtcm => "mtcm",
            Self::PlateauThreshold => "mtcm-plateau",
            Self::Geometric => "mgm",
            Self::Percentile => "percentile",
            Self::ShapeFit => "shape-fit",
        }
    }
    /// Whether the method finds the edge where the column crosses a
    /// threshold set from the noise (MTCM and its refinements), rather than
    /// from the column's integral less the noise (MGM, percentile): only
    /// for these is a raised noise level a raised threshold.
    pub fn thresholds_the_column(self) -> bool {
        matches!(self, Self::Mtcm | Self::PlateauThreshold | Self::ShapeFit)
    }

    /// All methods, for comparisons.
    pub const ALL: [EnvelopeMethod; 5] = [
        Self::ShapeFit,
        Self::PlateauThreshold,
        Self::Mtcm,
        Self::Geometric,
        Self::Percentile,
    ];
}

/// Settings of the envelope estimator.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EnvelopeConfig {
    /// Estimator.
    pub method: EnvelopeMethod,
    /// MTCM: width of the boxcar smoothing across bins (odd).
    pub smoothing_bins: usize,
    /// MTCM: probability that one smoothed noise-only bin exceeds the threshold.
    pub false_alarm_prob: f64,
    /// Percentile method: fraction of the integrated power.
    pub percentile: f64,
    /// Plateau-threshold method: level as a fraction of the local plateau.
    pub plateau_fraction: f64,
    /// Whether to apply the window/threshold bias correction.
    pub bias_correction: bool,
    /// Shape fit: whether a velocity distribution beyond the power-law
    /// family's reach is read with the two-parameter model
    /// ([`crate::shape`]); off, it is read as the family's most edge-peaked
    /// member (the behaviour before 2026-12-04, kept for comparison).
    pub shape_tilt: bool,
}

impl Default for EnvelopeConfig {
    fn default() -> Self {
        Self {
            method: EnvelopeMethod::ShapeFit,
            smoothing_bins: 5,
            false_alarm_prob: 1e-3,
            percentile: 0.95,
            plateau_fraction: 0.5,
            bias_correction: true,
            shape_tilt: true,
        }
    }
}

/// One column's envelope estimate.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct EdgeEstimate {
    /// Corrected maximum Doppler shift, Hz (0 when no flow is found).
    pub shift_hz: f32,
    /// Signal density just below the edge over the noise floor (linear; 0
    /// when no flow).
    pub snr: f32,
    /// The estimate reached the top of the band (flow at the band's limit,
    /// possibly aliased, or a spectrum filled by interference; the pipeline
    /// flags interference from the noise floor instead).
    pub saturated: bool,
}

/// Tail fraction `R(d)` of a unit step smeared by a kernel, tabulated on a
/// fine grid (d in FFT bins).
#[derive(Debug, Clone)]
struct StepResponse {
    step_bins: f64,
    start_bins: f64,
    tail: Vec<f64>,
}

/// Steps per FFT bin of the analysis-kernel grid the step response and the
/// shape templates are built on.
const KERNEL_SUB: usize = 16;

/// `|W(δ)|²` of `window` zero-padded to `fft_len`, on a grid of
/// `1/KERNEL_SUB` bin over ±(main-lobe reach + `max_boxcar`) bins: the
/// direct transform at every grid point (a sine and a cosine per window
/// sample), computed once per estimator and shared by the three tables
/// built from it (it was computed three times, a fifth of the start-up).
struct WindowKernel {
    /// Grid half-range without the boxcar, bins.
    lobe_reach: usize,
    max_boxcar: usize,
    values: Vec<f64>,
}

impl WindowKernel {
    fn new(window: &[f32], fft_len: usize, max_boxcar: usize) -> Self {
        let lobe = 2.0 * fft_len as f64 / window.len() as f64;
        let lobe_reach = (4.0 * lobe).ceil() as usize;
        let half_range = lobe_reach + max_boxcar;
        let n = 2 * half_range * KERNEL_SUB + 1;
        let start = -(half_range as f64);
        let step = 1.0 / KERNEL_SUB as f64;
        let values = (0..n)
            .map(|i| {
                let d = start + i as f64 * step;
                let (mut re, mut im) = (0.0, 0.0);
                for (t, &w) in window.iter().enumerate() {
                    let ph = -2.0 * std::f64::consts::PI * d * t as f64 / fft_len as f64;
                    re += f64::from(w) * ph.cos();
                    im += f64::from(w) * ph.sin();
                }
                re * re + im * im
            })
            .collect();
        Self {
            lobe_reach,
            max_boxcar,
            values,
        }
    }

    /// The kernel convolved with a boxcar of `boxcar` bins (at most the
    /// `max_boxcar` it was built for), on the grid over ±(lobe reach +
    /// `boxcar`) bins, zero beyond it: `(start, values)`, `start` in bins.
    fn smoothed(&self, boxcar: usize) -> (f64, Vec<f64>) {
        debug_assert!(
            boxcar <= self.max_boxcar,
            "kernel built for a smaller boxcar"
        );
        let boxcar = boxcar.min(self.max_boxcar);
        let half_range = self.lobe_reach + boxcar;
        let n = 2 * half_range * KERNEL_SUB + 1;
        // The same grid points as a kernel built for this boxcar alone
        // (grid offsets are exact binary fractions): the same values.
        let off = (self.max_boxcar - boxcar) * KERNEL_SUB;
        let kernel = &self.values[off..off + n];
        let h = (boxcar / 2) as isize;
        let smoothed = (0..n as isize)
            .map(|i| {
                (-h..=h)
                    .map(|j| {
                        let k = i + j * KERNEL_SUB as isize;
                        if k >= 0 && (k as usize) < n {
                            kernel[k as usize]
                        } else {
                            0.0
                        }
                    })
                    .sum()
            })
            .collect();
        (-(half_range as f64), smoothed)
    }
}

impl StepResponse {
    /// The tail fractions of `kernel` convolved with a boxcar of `boxcar`
    /// bins.
    fn new(kernel: &WindowKernel, boxcar: usize) -> Self {
        const SUB: usize = KERNEL_SUB;
        let (start, smoothed) = kernel.smoothed(boxcar);
        let n = smoothed.len();
        let total: f64 = smoothed.iter().sum();
        let mut tail = vec![0.0; n];
        let mut acc = 0.0;
        for i in (0..n).rev() {
            // Midpoint rule: half of grid point i lies beyond d_i.
            tail[i] = (acc + 0.5 * smoothed[i]) / total;
            acc += smoothed[i];
        }
        Self {
            step_bins: 1.0 / SUB as f64,
            start_bins: start,
            tail,
        }
    }

    /// `d` (FFT bins) where the tail fraction equals `tau` (clamped to the table).
    fn inverse(&self, tau: f64) -> f64 {
        // tail is decreasing: first index with tail <= tau.
        let i = self.tail.partition_point(|&t| t > tau);
        let i = i.min(self.tail.len() - 1);
        if i == 0 {
            return self.start_bins;
        }
        let (t0, t1) = (self.tail[i - 1], self.tail[i]);
        let frac = if t0 > t1 { (t0 - tau) / (t0 - t1) } else { 0.0 };
        self.start_bins + ((i - 1) as f64 + frac.clamp(0.0, 1.0)) * self.step_bins
    }
}

/// Expected smoothed columns near the edge for the power-law family of
/// velocity distributions.
///
/// A power-law velocity profile `v(r) = v_max(1 − (r/R)^n)` insonated
/// uniformly puts a spectral density `∝ (f_e − f)^β` just below the edge
/// `f_e`, with `β = 2/n − 1`: `β = 0` (parabolic, n = 2) is a flat spectrum
/// ending in a step, `β → −1` (plug flow) piles the power up at the edge
/// (Evans & McDicken, *Doppler Ultrasound*, ch. 7: the Doppler spectrum is
/// the histogram of velocities in the sample volume). Positive `β` (density
/// falling to zero at the edge, e.g. a "triangular" spectrum) completes the
/// family. Each template is the density smeared by the analysis kernel
/// (`|W|²` of the window convolved with the smoothing boxcar), tabulated at
/// quarter-bin offsets `d = k − f_e`. Fitting them by least squares to the
/// smoothed column locates the edge without assuming the shape: the
/// threshold estimators' bias (the half-peak of an edge-peaked spectrum lies
/// above the edge, the half-plateau of a noisy flat one below it) is what
/// the fit removes.
#[derive(Debug, Clone)]
pub struct ShapeTemplates {
    /// Per `β` of [`Self::BETAS`]: template values at `d = −below + i/SUB`
    /// (`below` as given to [`Self::new`]), normalised to a peak of 1.
    tables: Vec<Vec<f32>>,
}

impl ShapeTemplates {
    /// Template grid resolution: steps per bin.
    pub const SUB: usize = 4;
    /// Exponents of the family, edge-peaked to edge-vanishing.
    pub const BETAS: [f64; 8] = [-0.85, -0.7, -0.55, -0.4, -0.2, 0.0, 0.5, 1.0];

    /// Tables for offsets from `below` bins under the edge to `above` bins
    /// over it, for columns made with `window`, `fft_len` and a boxcar of
    /// `boxcar` bins.
    pub fn new(window: &[f32], fft_len: usize, boxcar: usize, below: usize, above: usize) -> Self {
        Self::from_kernel(
            &WindowKernel::new(window, fft_len, boxcar),
            boxcar,
            below,
            above,
        )
    }

    /// [`Self::new`] from the window's kernel, already computed.
    fn from_kernel(
        window_kernel: &WindowKernel,
        boxcar: usize,
        below: usize,
        above: usize,
    ) -> Self {
        const FINE: usize = KERNEL_SUB;
        const STEP: usize = FINE / ShapeTemplates::SUB;
        const _: () = assert!(FINE.is_multiple_of(ShapeTemplates::SUB));
        let (kstart, kernel) = window_kernel.smoothed(boxcar);
        let khalf = -kstart;
        // The kernel is read at the centres of 1/FINE-bin density cells,
        // offset from template points on a 1/SUB grid: always halfway
        // between two kernel grid points (all offsets are exact binary
        // fractions), so the linear interpolation there is the mean of the
        // two, tabulated once: `mid[j]` lies between kernel points j, j + 1.
        let mid: Vec<f64> = kernel.windows(2).map(|k| k[0] * 0.5 + k[1] * 0.5).collect();
        // Kernel point below the first cell centre of template point 0.
        let j0 = ((khalf - below as f64) * FINE as f64) as isize;
        let mid_at = |j: isize| -> f64 {
            usize::try_from(j)
                .ok()
                .and_then(|j| mid.get(j))
                .copied()
                .unwrap_or(0.0)
        };
        // Density cells below the edge, far enough for the kernel to see.
        let depth = below as f64 + khalf + 2.0;
        let cells = (depth * FINE as f64).ceil() as usize;
        let n = (below + above) * Self::SUB + 1;
        let tables = Self::BETAS
            .iter()
            .map(|&beta| {
                // Exact integral of (−g)^β over each cell (integrable for β > −1).
                // Cell c spans [c, c + 1]/FINE bins below the edge.
                let mass: Vec<f64> = (0..cells)
                    .map(|c| {
                        let a = c as f64 / FINE as f64;
                        let b = (c + 1) as f64 / FINE as f64;
                        (b.powf(beta + 1.0) - a.powf(beta + 1.0)) / (beta + 1.0)
                    })
                    .collect();
                let mut t: Vec<f64> = (0..n)
                    .map(|i| {
                        // Template point i at d = −below + i/SUB; cell c's
                        // centre is (c + ½)/FINE below the edge, so the
                        // kernel is read at d + (c + ½)/FINE.
                        let j = j0 + (i * STEP) as isize;
                        mass.iter()
                            .enumerate()
                            .map(|(c, &m)| m * mid_at(j + c as isize))
                            .sum()
                    })
                    .collect();
                let peak = t.iter().fold(0.0_f64, |a, &b| a.max(b));
                if peak > 0.0 {
                    t.iter_mut().for_each(|x| *x /= peak);
                }
                t.into_iter().map(|x| x as f32).collect()
            })
            .collect();
        Self { tables }
    }
}

/// Standard-normal quantile for upper-tail probability `p` (Acklam's
/// rational approximation, relative error < 1.2e-9).
#[allow(clippy::excessive_precision)] // published coefficients, kept as printed
fn normal_upper_quantile(p: f64) -> f64 {
    let q = 1.0 - p;
    const A: [f64; 6] = [
        -3.969683028665376e1,
        2.209460984245205e2,
        -2.759285104469687e2,
        1.383577518672690e2,
        -3.066479806614716e1,
        2.506628277459239,
    ];
    const B: [f64; 5] = [
        -5.447609879822406e1,
        1.615858368580409e2,
        -1.556989798598866e2,
        6.680131188771972e1,
        -1.328068155288572e1,
    ];
    const C: [f64; 6] = [
        -7.784894002430293e-3,
        -3.223964580411365e-1,
        -2.400758277161838,
        -2.549732539343734,
        4.374664141464968,
        2.938163982698783,
    ];
    const D: [f64; 4] = [
        7.784695709041462e-3,
        3.224671290700398e-1,
        2.445134137142996,
        3.754408661907416,
    ];
    let lo = 0.02425;
    if q < lo {
        let r = (-2.0 * q.ln()).sqrt();
        (((((C[0] * r + C[1]) * r + C[2]) * r + C[3]) * r + C[4]) * r + C[5])
            / ((((D[0] * r + D[1]) * r + D[2]) * r + D[3]) * r + 1.0)
    } else if q <= 1.0 - lo {
        let r = (q - 0.5) * (q - 0.5);
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * (q - 0.5)
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        let r = (-2.0 * (1.0 - q).ln()).sqrt();
        -(((((C[0] * r + C[1]) * r + C[2]) * r + C[3]) * r + C[4]) * r + C[5])
            / ((((D[0] * r + D[1]) * r + D[2]) * r + D[3]) * r + 1.0)
    }
}

/// Bracketing indices of `x` in the ascending `grid` and the weight of the
/// upper one, clamped to the ends (for interpolating tabulated values).
pub(crate) fn bracket(grid: &[f64], x: f64) -> (usize, usize, f64) {
    let i = grid.partition_point(|&g| g <= x);
    if i == 0 {
        return (0, 0, 0.0);
    }
    if i >= grid.len() {
        return (grid.len() - 1, grid.len() - 1, 0.0);
    }
    let (a, b) = (grid[i - 1], grid[i]);
    (i - 1, i, (x - a) / (b - a))
}

/// The envelope stage.
#[derive(Debug, Clone)]
pub struct EnvelopeEstimator {
    cfg: EnvelopeConfig,
    fft_len: usize,
    bin_hz: f64,
    /// First positive-frequency bin searched (above the wall band), as an
    /// offset from the 0 Hz bin.
    first_pos: usize,
    /// Threshold over the noise floor, as a multiple of it (MTCM).
    threshold_ratio: f64,
    /// Main-lobe half-width plus smoothing half-width, FFT bins.
    guard_bins: usize,
    step_smoothed: StepResponse,
    step_raw: StepResponse,
    templates: ShapeTemplates,
    /// Shape fit: pooled share of the upper band's power in its top part …
    shape_top: f32,
    /// … and in its middle part (see `observe_shape`).
    shape_mid: f32,
    /// Inverse of the shape statistic.
    band_ratios: BandRatioTable,
    /// Shape fit: pooled share of the near band's power in the near and
    /// middle bands together ([`crate::shape`]) …
    shape_near: f32,
    /// … from this many columns (saturates) …
    near_columns: u32,
    /// … read through this map, with the two bands above, into …
    shape_map: ShapeMap,
    /// … the near-edge exponent the fit uses (updated as columns vote).
    shape_beta: f64,
    /// Shape fit: the fitted edge of the last pooled column, fractional
    /// bin (NaN when that column had none) …
    previous_edge_bin: f64,
    /// … and of the one before, which places this column's near band.
    anchor_edge_bin: f64,
    /// The template fitted: the pooled shape, interpolated between the
    /// tabulated ones …
    blend: Vec<f32>,
    /// … for this exponent (None: not built yet) …
    blend_beta: Option<f64>,
    /// … and reversed, with `FIT_LANES` zeros after it: consecutive
    /// shifts read consecutive values (`fit_edge`).
    blend_rev: Vec<f32>,
    /// Shape fit: strong columns pooled so far (saturates).
    shape_columns: u32,
    smooth: Vec<f32>,
    integ: Vec<f32>,
    /// Whether the column being read votes on the pooled shape (false for
    /// a second reading of a column already seen, [`Self::process_unpooled`]).
    pool_shape: bool,
}

/// Shape fit: bins below the anchor edge included in the fit.
const FIT_BELOW: usize = 10;
/// Shape fit: bins above the anchor edge included in the fit.
const FIT_ABOVE: usize = 4;
/// Shape fit: the edge is searched within this many bins of the anchor.
const FIT_SHIFT: usize = 3;
/// Shape fit: template shifts tried, at the templates' resolution.
const FIT_SHIFTS: usize = 2 * FIT_SHIFT * ShapeTemplates::SUB + 1;
/// Shape fit: shifts whose costs are computed side by side, one per lane.
const FIT_LANES: usize = 8;
/// Shape fit: columns whose flow in the shape bands stands this far over
/// noise (mean density, linear) vote on the shape.
const SHAPE_MIN_SNR: f64 = 4.0;
/// Shape fit: the shape vote is a running mean over about this many strong
/// columns (≈ 1 s of systole at a 5 ms hop).
const SHAPE_POOL_COLUMNS: u32 = 200;
/// Shape fit: only edges this many bins above 0 Hz vote (enough bins in the
/// band halves, clear of the wall band).
const SHAPE_MIN_EDGE_BINS: usize = 16;

/// How much of the shape fit's edge is the noise-threshold crossing's
/// reading (the rest is the fit's), for the pooled shape `beta`.
///
/// Measured on stationary shaped Gaussian noise (`dsp/tests/shaped_noise.rs`,
/// each reading alone, 40–150 cm/s, 8–30 dB; docs/dsp.md): on edge-peaked
/// spectra (β ≤ −½) the fit is the less biased (−0.1…+0.4 cm/s against
/// −0.4…+0.95) and the crossing the less scattered, and their mean keeps
/// most of both; on a flat spectrum (β = 0) the fit reads 0.4–0.9 cm/s
/// low with a heavy tail (p95 6–8 cm/s against 1–5), and on edge-vanishing
/// ones (β > 0) 1–4 cm/s low (p95 8–16), where the crossing is within
/// −0.6…+0.7 (β = 0). So the crossing alone from β = 0 up, the mean from
/// β = −½ down, and a straight line between.
fn crossing_weight(beta: f64) -> f64 {
    1.0 - 0.5 * (-beta / 0.5).clamp(0.0, 1.0)
}

/// Shape fit: only edges this many bins above 0 Hz vote on the near band
/// (43 cm/s at 4 MHz, 45°, 20 kHz). The band's top, a tenth of the edge
/// under it, is then 2 bins from the edge, at the foot of the window's main
/// lobe (2.56 bins for 200 samples in 256); from 26 bins it is clear of it.
/// With 28 bins a stream peaking at 50 cm/s gave the band no vote (refgen,
/// density `3q²`: SD 5.0 % low, 0.8 % with 20; every other signal measured
/// read within 0.5 % of the same either way, docs/dsp.md).
const NEAR_MIN_EDGE_BINS: usize = 20;
/// Shape fit: the near band's share is a running mean over about this many
/// votes: its reading moves the exponent more than the lower bands' does,
/// so it is pooled longer (2.5 s of columns; only steady edges of 20 bins
/// and more vote, a part of each systole).
const NEAR_POOL_COLUMNS: u32 = 500;
/// Shape fit: the near band votes only while the fitted edge moved at most
/// this many bins since the previous column.
const NEAR_STEADY_BINS: f64 = 1.5;
/// Shape fit: the two-parameter model takes over as the lower bands' ratio
/// goes from the family's most edge-peaked member's to this fraction more
/// (1.67 to 1.92). Pooled on pulsatile signals, blunt profiles read
/// 1.35–1.65 (refgen n = 6 up to 1.63; a near-plug n = 20 1.85–2.0), a
/// density `3q²` 2.1–2.2.
const OUT_OF_FAMILY_SPAN: f64 = 0.15;

/// Share of the near band in the near and middle bands together for the
/// power law `beta` (no tilt).
fn near_share(beta: f64) -> f64 {
    let (_, r2) = crate::shape::band_ratios(0.0, beta);
    r2 / (1.0 + r2)
}

/// Shape assumed until the stream has shown its own: the blunt profile of
/// the descending aorta (n = 6, β = 2/n − 1). It matters only while no edge
/// has been above 16 bins (34 cm/s at 4 MHz), e.g. a phantom run at 20 cm/s:
/// a flat spectrum read with it is about 1 cm/s low there.
const SHAPE_PRIOR_BETA: f64 = -2.0 / 3.0;
/// The prior counts as this many columns in the running mean.
const SHAPE_PRIOR_COLUMNS: u32 = 20;

/// The two bands' shares of their joint power for shape `beta` (the pooled
/// statistic's starting point).
fn prior_share(beta: f64) -> (f64, f64) {
    let r = band_ratio_of_beta(beta);
    (r / (1.0 + r), 1.0 / (1.0 + r))
}

/// Power in `[0.55, 0.8)·f_e` over that in `[0.3, 0.55)·f_e` of a density
/// `∝ (f_e − f)^β` on `[0, f_e]`: `(0.45^p − 0.2^p) / (0.7^p − 0.45^p)`,
/// `p = β + 1`; decreasing in `β`, 1 for a flat spectrum. Both bands lie
/// well below the edge, so an error in the edge they are scaled from hardly
/// moves the ratio (not at all for a flat spectrum): a band that contained
/// the edge made the shape and the edge feed each other's errors.
fn band_ratio_of_beta(beta: f64) -> f64 {
    let p = beta + 1.0;
    (0.45_f64.powf(p) - 0.2_f64.powf(p)) / (0.7_f64.powf(p) - 0.45_f64.powf(p))
}

/// `band_ratio_of_beta` tabulated over the family's range (built once; the
/// inverse is read per column, and 160 `powf` per column cost more than the
/// FFT).
#[derive(Debug, Clone)]
struct BandRatioTable {
    /// Ratios at `BETAS[0] + i·step`, decreasing.
    ratios: Vec<f64>,
    step: f64,
}

impl BandRatioTable {
    fn new() -> Self {
        let (lo, hi) = (ShapeTemplates::BETAS[0], ShapeTemplates::BETAS[7]);
        let n = 512;
        let step = (hi - lo) / (n - 1) as f64;
        Self {
            ratios: (0..n)
                .map(|i| band_ratio_of_beta(lo + i as f64 * step))
                .collect(),
            step,
        }
    }

    /// The largest ratio a member of the family gives (its most edge-peaked).
    fn reach(&self) -> f64 {
        self.ratios.first().copied().unwrap_or(f64::INFINITY)
    }

    /// The `β` whose band ratio is `ratio`, clamped to the family's range.
    fn beta(&self, ratio: f64) -> f64 {
        let lo = ShapeTemplates::BETAS[0];
        let r = &self.ratios;
        // Decreasing table: first index whose ratio is ≤ `ratio`.
        let i = r.partition_point(|&x| x > ratio);
        if i == 0 {
            return lo;
        }
        if i >= r.len() {
            return lo + (r.len() - 1) as f64 * self.step;
        }
        let (a, b) = (r[i - 1], r[i]);
        let f = if a > b { (a - ratio) / (a - b) } else { 0.0 };
        lo + ((i - 1) as f64 + f) * self.step
    }
}

impl EnvelopeEstimator {
    /// Builds the estimator for columns made with `window` and `fft_len`, at
    /// `sample_rate_hz`, searching shifts above `min_shift_hz` (the wall band).
    pub fn new(
        cfg: EnvelopeConfig,
        window: &[f32],
        fft_len: usize,
        sample_rate_hz: f64,
        min_shift_hz: f64,
    ) -> Result<Self, DspError> {
        if cfg.smoothing_bins.is_multiple_of(2) || cfg.smoothing_bins > 31 {
            return Err(DspError::invalid(
                "smoothing_bins",
                cfg.smoothing_bins,
                "odd, ≤ 31",
            ));
        }
        if !(cfg.false_alarm_prob > 1e-12 && cfg.false_alarm_prob < 0.5) {
            return Err(DspError::invalid(
                "false_alarm_prob",
                cfg.false_alarm_prob,
                "1e-12 < p < 0.5",
            ));
        }
        if !(cfg.plateau_fraction > 0.05 && cfg.plateau_fraction < 0.95) {
            return Err(DspError::invalid(
                "plateau_fraction",
                cfg.plateau_fraction,
                "0.05 < f < 0.95",
            ));
        }
        if !(cfg.percentile > 0.5 && cfg.percentile < 1.0) {
            return Err(DspError::invalid(
                "percentile",
                cfg.percentile,
                "0.5 < p < 1",
            ));
        }
        if window.len() > fft_len || fft_len < 32 {
            return Err(DspError::invalid(
                "fft_len",
                fft_len,
                "≥ 32 and ≥ window length",
            ));
        }
        let bin_hz = sample_rate_hz / fft_len as f64;
        let first_pos = ((min_shift_hz / bin_hz).ceil() as usize).max(1);
        if first_pos + 16 > fft_len / 2 {
            return Err(DspError::invalid(
                "wall band",
                min_shift_hz,
                "leaves ≥ 16 bins of forward band",
            ));
        }
        // Variance of the boxcar mean of unit-mean periodogram bins of
        // Gaussian noise: cov(P_i, P_j) = ρ(|i−j|), with ρ(m) the squared
        // normalised transform of w² at m bins.
        let energy: f64 = window.iter().map(|&w| f64::from(w).powi(2)).sum();
        let rho = |m: usize| {
            let (mut re, mut im) = (0.0, 0.0);
            for (t, &w) in window.iter().enumerate() {
                let ph = -2.0 * std::f64::consts::PI * (m * t) as f64 / fft_len as f64;
                let w2 = f64::from(w).powi(2);
                re += w2 * ph.cos();
                im += w2 * ph.sin();
            }
            (re * re + im * im) / (energy * energy)
        };
        let m = cfg.smoothing_bins;
        let mut var = 0.0;
        for i in 0..m {
            for j in 0..m {
                var += rho(i.abs_diff(j));
            }
        }
        var /= (m * m) as f64;
        // Smoothed noise ≈ n·χ²_ν/ν with ν = 2/var; Wilson–Hilferty quantile.
        let nu = 2.0 / var;
        let z = normal_upper_quantile(cfg.false_alarm_prob);
        let c = 2.0 / (9.0 * nu);
        let threshold_ratio = (1.0 - c + z * c.sqrt()).powi(3);
        let lobe = 2.0 * fft_len as f64 / window.len() as f64;
        let guard_bins = (lobe + (m / 2) as f64).ceil() as usize;
        let kernel = WindowKernel::new(window, fft_len, m.max(1));
        let templates = ShapeTemplates::from_kernel(
            &kernel,
            m,
            FIT_BELOW + FIT_SHIFT + 1,
            FIT_ABOVE + FIT_SHIFT + 1,
        );
        Ok(Self {
            cfg,
            fft_len,
            bin_hz,
            first_pos,
            threshold_ratio,
            guard_bins,
            step_smoothed: StepResponse::new(&kernel, m),
            step_raw: StepResponse::new(&kernel, 1),
            band_ratios: BandRatioTable::new(),
            blend: vec![0.0; templates.tables[0].len()],
            blend_rev: vec![0.0; templates.tables[0].len() + FIT_LANES],
            templates,
            shape_top: prior_share(SHAPE_PRIOR_BETA).0 as f32,
            shape_mid: prior_share(SHAPE_PRIOR_BETA).1 as f32,
            shape_near: near_share(SHAPE_PRIOR_BETA) as f32,
            near_columns: 0,
            shape_map: ShapeMap::new(),
            shape_beta: SHAPE_PRIOR_BETA,
            previous_edge_bin: f64::NAN,
            anchor_edge_bin: f64::NAN,
            blend_beta: None,
            shape_columns: 0,
            pool_shape: true,
            smooth: vec![0.0; fft_len / 2],
            integ: vec![0.0; fft_len / 2],
        })
    }

    /// The estimator's settings.
    pub fn config(&self) -> &EnvelopeConfig {
        &self.cfg
    }

    /// Lowest shift (Hz) the estimator reports reliably: the first searched
    /// bin plus half the smoothing width (below it the boxcar reaches into
    /// the wall band).
    pub fn min_shift_hz(&self) -> f64 {
        self.first_whole_bin() as f64 * self.bin_hz
    }

    /// The lowest smoothed bin whose boxcar lies wholly in the searched
    /// band. Below it the smoothing reaches into the wall band, where what
    /// the wall filter leaves of the clutter stands (refgen's wall echo
    /// 40 dB over the blood: 10× the flow in the wall band's top bins).
    fn first_whole_bin(&self) -> usize {
        self.first_pos + self.cfg.smoothing_bins / 2
    }

    /// MTCM threshold as a multiple of the noise floor.
    pub fn threshold_ratio(&self) -> f64 {
        self.threshold_ratio
    }

    /// Bias (Hz) the correction removes for an edge of relative plateau
    /// `tau` (threshold over plateau), for the smoothed (MTCM) kernel.
    pub fn smear_bias_hz(&self, tau: f64) -> f64 {
        self.step_smoothed.inverse(tau) * self.bin_hz
    }

    crate::cpu::wide_method! {
        /// Estimates the edge of one column (`power`, `fft_len` bins in
        /// ascending frequency order) given its noise floor.
        pub fn process / process_avx2(
            &mut self,
            power: &[f32],
            noise: f32,
            out: &mut EdgeEstimate,
        ) -> Result<(), DspError> => process_body
    }

    /// [`Self::process`], inlined into each of its copies ([`crate::cpu`]).
    #[inline(always)]
    fn process_body(
        &mut self,
        power: &[f32],
        noise: f32,
        out: &mut EdgeEstimate,
    ) -> Result<(), DspError> {
        if power.len() != self.fft_len {
            return Err(DspError::BufferLength {
                stage: "envelope",
                expected: self.fft_len,
                got: power.len(),
            });
        }
        let pos = &power[self.fft_len / 2..];
        *out = EdgeEstimate::default();
        if self.pool_shape {
            // A pooled column that does not reach `observe_shape` (no flow,
            // no fit) leaves no edge to place the next one's near band.
            self.anchor_edge_bin = std::mem::replace(&mut self.previous_edge_bin, f64::NAN);
        }
        if !(noise > 0.0 && noise.is_finite()) {
            return Ok(());
        }
        match self.cfg.method {
            EnvelopeMethod::Mtcm | EnvelopeMethod::PlateauThreshold | EnvelopeMethod::ShapeFit => {
                self.mtcm(pos, noise, out)
            }
            EnvelopeMethod::Geometric => self.geometric(pos, noise, out),
            EnvelopeMethod::Percentile => self.percentile(pos, noise, out),
        }
        Ok(())
    }

    /// As [`Self::process`], for another reading of a column already
    /// processed (a dechirped one, [`crate::dechirp`]): the column does not
    /// vote on the pooled spectral shape, which it would count twice.
    pub fn process_unpooled(
        &mut self,
        power: &[f32],
        noise: f32,
        out: &mut EdgeEstimate,
    ) -> Result<(), DspError> {
        self.pool_shape = false;
        let r = self.process(power, noise, out);
        self.pool_shape = true;
        r
    }

    /// Searching down from bin `from`, the fractional bin where `v` first
    /// rises to `level` (linear interpolation between the bracketing bins).
    fn crossing_below(v: &[f32], from: usize, level: f32) -> f64 {
        let mut k = from.min(v.len() - 1);
        while k > 0 && v[k] < level {
            k -= 1;
        }
        if k + 1 >= v.len() {
            return k as f64;
        }
        let (a, b) = (v[k], v[k + 1]);
        k as f64
            + if a > b && a >= level {
                f64::from((a - level) / (a - b)).clamp(0.0, 1.0)
            } else {
                0.0
            }
    }

    /// Top bin of the highest run of `need` consecutive bins of `s` above
    /// `thr`, at or above `first`. Up to 128 bins (FFTs up to 256) this is
    /// branch-free: a bit mask of the comparisons, ANDed with itself shifted
    /// `need − 1` times, keeps bit `k` where bins `k .. k + need` all pass;
    /// its highest bit is the run's bottom. (A top-down loop mispredicted
    /// on every noise bin: a quarter of the envelope's time.)
    #[inline(always)]
    fn top_run(s: &[f32], first: usize, thr: f32, need: usize) -> Option<usize> {
        if s.len() <= 128 {
            // Two 64-bit halves: a variable u128 shift would branch per bin.
            let half = |part: &[f32]| {
                part.iter()
                    .enumerate()
                    .fold(0_u64, |m, (k, &v)| m | (u64::from(v > thr) << k))
            };
            let (lo, hi) = s.split_at(s.len().min(64));
            let from_first = if first >= 128 {
                0
            } else {
                !((1_u128 << first) - 1)
            };
            let mask = (u128::from(half(hi)) << 64 | u128::from(half(lo))) & from_first;
            let mut runs = mask;
            for j in 1..need {
                runs &= mask >> j;
            }
            return (runs != 0).then(|| 127 - runs.leading_zeros() as usize + need - 1);
        }
        let mut run = 0;
        for k in (first..s.len()).rev() {
            if s[k] > thr {
                run += 1;
                if run >= need {
                    return Some(k + need - 1);
                }
            } else {
                run = 0;
            }
        }
        None
    }

    /// Largest `v` from the plateau region up to the edge.
    fn peak_below(&self, v: &[f32], edge_bin: f64) -> f64 {
        let hi = (edge_bin.floor() as usize + 1).min(v.len());
        let lo = hi
            .saturating_sub(self.guard_bins + 4)
            .max(self.first_whole_bin());
        v[lo.min(hi)..hi]
            .iter()
            .fold(0.0_f64, |m, &x| m.max(f64::from(x)))
    }

    /// Mean of `v` over bins `[lo, hi)` clipped to the smoothed bins clear
    /// of the wall band (`first_whole_bin`).
    fn plateau(&self, v: &[f32], edge_bin: f64) -> f64 {
        let first = self.first_whole_bin();
        let hi =
            (edge_bin.floor() as isize - self.guard_bins as isize).max(first as isize + 1) as usize;
        let lo = hi.saturating_sub(4).max(first);
        let hi = hi.min(v.len());
        if hi <= lo {
            return 0.0;
        }
        v[lo..hi].iter().map(|&x| f64::from(x)).sum::<f64>() / (hi - lo) as f64
    }

    #[inline(always)]
    fn mtcm(&mut self, pos: &[f32], noise: f32, out: &mut EdgeEstimate) {
        let m = self.cfg.smoothing_bins;
        let h = m / 2;
        let len = pos.len();
        // Boxcar smoothing (edges: shorter average), tap by tap over the
        // whole interior: no loop-carried running sum, so it vectorises (a
        // running sum was a serial add/sub chain, ~0.3 µs).
        let inv_m = 1.0 / m as f32;
        let interior = len - 2 * h;
        let inner = &mut self.smooth[h..len - h];
        inner.copy_from_slice(&pos[..interior]);
        for j in 1..m {
            for (o, &p) in inner.iter_mut().zip(&pos[j..j + interior]) {
                *o += p;
            }
        }
        inner.iter_mut().for_each(|o| *o *= inv_m);
        for k in (0..h).chain(len - h..len) {
            let lo = k.saturating_sub(h);
            let hi = (k + h).min(len - 1);
            self.smooth[k] = pos[lo..=hi].iter().sum::<f32>() / (hi - lo + 1) as f32;
        }
        let thr = (f64::from(noise) * self.threshold_ratio) as f32;
        let s = &self.smooth;
        // Top-down search for the first run of `m` bins above threshold: a
        // single raw outlier lifts a whole boxcar of `m` smoothed bins, so a
        // shorter run lets noise through (measured: PPV 0.43 with m/2).
        let top = Self::top_run(s, self.first_pos, thr, m);
        let Some(k) = top else { return };
        if k + 1 >= len {
            out.saturated = true;
        }
        let mut level = thr;
        let mut edge_bin = Self::crossing_below(s, k, level);
        let cross_thr = edge_bin;
        let mut plateau = self.plateau(s, edge_bin) - f64::from(noise);
        if matches!(
            self.cfg.method,
            EnvelopeMethod::PlateauThreshold | EnvelopeMethod::ShapeFit
        ) {
            // Raise the level to a fraction of the local plateau (twice: the
            // plateau is measured relative to the edge it defines).
            // The local level is the highest smoothed value just below the
            // edge: with a blunt velocity profile the power piles up right
            // under the edge (a peak, not a plateau).
            let peak = self.peak_below(s, edge_bin) - f64::from(noise);
            plateau = plateau.max(peak);
            for _ in 0..2 {
                let want = (f64::from(noise) + self.cfg.plateau_fraction * plateau) as f32;
                if want <= thr {
                    break;
                }
                level = want;
                edge_bin = Self::crossing_below(s, edge_bin.floor() as usize, level);
                plateau = (self.plateau(s, edge_bin).max(self.peak_below(s, edge_bin)))
                    - f64::from(noise);
            }
        }
        let snr = snr_ratio(plateau, noise);
        let mut edge = edge_bin;
        let fitted = if self.cfg.method == EnvelopeMethod::ShapeFit {
            let e = self.fit_edge(edge_bin, noise);
            if let Some((e, _)) = e
                && self.pool_shape
            {
                self.observe_shape(pos, noise, e);
            }
            // Two readings of the same edge under the same template: the
            // fit (all bins near the edge) and the noise-threshold crossing
            // on the upper flank, placed by where the fitted template falls
            // to that level. Which is better depends on the shape
            // (`crossing_weight`).
            match e {
                Some((e, a)) if a > 0.0 => match self.template_flank((thr - noise) / a) {
                    Some(d) => {
                        let w = crossing_weight(self.shape_beta());
                        Some((1.0 - w) * e + w * (cross_thr - d))
                    }
                    None => Some(e),
                },
                Some((e, _)) => Some(e),
                None => None,
            }
        } else {
            None
        };
        if let Some(e) = fitted {
            edge = e;
        } else if self.cfg.bias_correction {
            let tau = if plateau > 0.0 {
                f64::from(level - noise) / plateau
            } else {
                1.0
            };
            edge -= self.step_smoothed.inverse(tau.clamp(0.0, 0.99));
        }
        out.shift_hz = (edge.max(0.0) * self.bin_hz) as f32;
        out.snr = snr as f32;
    }

    /// Weighted least-squares fit of the pooled shape's template to the
    /// smoothed column around `anchor` (a fractional bin): the edge
    /// (fractional bin), or None when the fit region is too short or the
    /// template fits nowhere with a positive amplitude.
    #[inline(always)]
    fn fit_edge(&mut self, anchor: f64, noise: f32) -> Option<(f64, f32)> {
        self.refresh_blend();
        let sub = ShapeTemplates::SUB;
        let s = &self.smooth;
        let ka = anchor.floor() as isize;
        let lowest = self.first_whole_bin() as isize;
        let lo = (ka - FIT_BELOW as isize).max(lowest);
        let hi = (ka + FIT_ABOVE as isize).min(s.len() as isize - 1);
        if hi - lo < 6 {
            return None;
        }
        let mut y = [0.0_f32; FIT_BELOW + FIT_ABOVE + 1];
        let nb = (hi - lo + 1) as usize;
        for (i, v) in y.iter_mut().take(nb).enumerate() {
            *v = s[lo as usize + i] - noise;
        }
        let y = &y[..nb];
        let below = FIT_BELOW + FIT_SHIFT + 1;
        let shifts = 2 * FIT_SHIFT * sub + 1;
        // Index into the template for bin offset o = k − ka and shift j:
        // (o + below)·SUB + FIT_SHIFT·SUB − j.
        let base0 = ((lo - ka) + below as isize) as usize * sub + FIT_SHIFT * sub;
        let t = &self.blend;
        // Every shift's cost at once, `FIT_LANES` shifts side by side (one
        // lane each, so that the loops vectorise; each lane adds its terms
        // in the order of the bins, as one shift alone would). In the
        // reversed template the index above is `top − i·SUB + j`,
        // consecutive in j.
        debug_assert_eq!(shifts, FIT_SHIFTS);
        let r = &self.blend_rev;
        let top = t.len() - 1 - base0;
        let mut costs = [None::<f32>; FIT_SHIFTS];
        // Each shift's least-squares amplitude, kept for the chosen one.
        let mut amps = [0.0_f32; FIT_SHIFTS];
        for j0 in (0..shifts).step_by(FIT_LANES) {
            // (The reversed template is padded by FIT_LANES.)
            let lanes = |i: usize| -> &[f32] {
                let k = top + j0 - i * sub;
                &r[k..k + FIT_LANES]
            };
            let mut yt = [-0.0_f32; FIT_LANES];
            let mut tt = [-0.0_f32; FIT_LANES];
            for (i, &yv) in y.iter().enumerate() {
                for ((yl, tl), &b) in yt.iter_mut().zip(&mut tt).zip(lanes(i)) {
                    *yl += yv * b;
                    *tl += b * b;
                }
            }
            // Speckle is multiplicative (a smoothed periodogram bin is
            // ≈ μ·χ²_ν/ν): weight each residual by the model's own
            // level, or the fit trades the few high bins against the
            // many low ones and cuts the edge short where speckle dips.
            let mut a = [0.0_f32; FIT_LANES];
            for ((al, &yl), &tl) in a.iter_mut().zip(&yt).zip(&tt) {
                *al = yl / tl;
            }
            let mut e = [-0.0_f32; FIT_LANES];
            for (i, &yv) in y.iter().enumerate() {
                for ((el, &al), &b) in e.iter_mut().zip(&a).zip(lanes(i)) {
                    let m = al * b;
                    let res = (yv - m) / (m + noise);
                    *el += res * res;
                }
            }
            for (l, c) in costs.iter_mut().skip(j0).take(FIT_LANES).enumerate() {
                *c = (yt[l] > 0.0 && tt[l] > 0.0).then_some(e[l]);
            }
            for (am, &al) in amps.iter_mut().skip(j0).zip(&a) {
                *am = al;
            }
        }
        let cost = |j: usize| costs[j];
        // Whole bins first, then quarter bins around the best, then a
        // parabola through the best and its neighbours.
        let mut best: Option<(f32, usize)> = None;
        let consider = |j: usize, best: &mut Option<(f32, usize)>| {
            if let Some(e) = cost(j)
                && best.is_none_or(|(be, _)| e < be)
            {
                *best = Some((e, j));
            }
        };
        for j in (0..shifts).step_by(sub) {
            consider(j, &mut best);
        }
        let (_, jc) = best?;
        for j in jc.saturating_sub(sub - 1)..=(jc + sub - 1).min(shifts - 1) {
            if j != jc {
                consider(j, &mut best);
            }
        }
        let (e0, j) = best?;
        let mut frac = 0.0_f64;
        if j > 0
            && j + 1 < shifts
            && let (Some(em), Some(ep)) = (cost(j - 1), cost(j + 1))
        {
            let den = f64::from(em - 2.0 * e0 + ep);
            if den > 0.0 {
                frac = (0.5 * f64::from(em - ep) / den).clamp(-0.5, 0.5);
            }
        }
        Some((
            ka as f64 + (j as f64 + frac - (FIT_SHIFT * sub) as f64) / sub as f64,
            amps[j],
        ))
    }

    /// Offset (bins, above the edge) where the fitted template falls to
    /// `level` (a fraction of its peak) on its upper flank.
    fn template_flank(&self, level: f32) -> Option<f64> {
        let t = &self.blend;
        let below = (FIT_BELOW + FIT_SHIFT + 1) as f64;
        let sub = ShapeTemplates::SUB as f64;
        let i = (0..t.len()).rev().find(|&i| t[i] >= level)?;
        if i + 1 >= t.len() {
            return None;
        }
        let (a, b) = (t[i], t[i + 1]);
        let f = if a > b {
            f64::from((a - level) / (a - b))
        } else {
            0.0
        };
        Some((i as f64 + f) / sub - below)
    }

    /// Rebuilds the fitted template when the pooled shape has moved: the
    /// two tabulated shapes that bracket it, interpolated.
    fn refresh_blend(&mut self) {
        let beta = self.shape_beta();
        if self.blend_beta.is_some_and(|b| (b - beta).abs() < 0.005) {
            return;
        }
        let (b0, b1, w) = self.shape_bracket();
        let w = w as f32;
        let (t0, t1) = (&self.templates.tables[b0], &self.templates.tables[b1]);
        for ((out, &x0), &x1) in self.blend.iter_mut().zip(t0).zip(t1) {
            *out = x0 + w * (x1 - x0);
        }
        for (r, &b) in self.blend_rev.iter_mut().zip(self.blend.iter().rev()) {
            *r = b;
        }
        self.blend_beta = Some(beta);
    }

    /// The two tabulated shapes bracketing the pooled shape estimate, and
    /// the interpolation weight of the second.
    fn shape_bracket(&self) -> (usize, usize, f64) {
        bracket(&ShapeTemplates::BETAS, self.shape_beta())
    }

    /// Sets the pooled shape to `beta`, as if a long stream had shown it
    /// (for tabulating the estimator's response, [`crate::ramp`]).
    /// Everything a column can change is reset, so one estimator can be
    /// reused for many tabulated columns as if each met a fresh one.
    pub(crate) fn force_shape(&mut self, beta: f64) {
        let (top, mid) = prior_share(beta);
        self.shape_top = top as f32;
        self.shape_mid = mid as f32;
        self.shape_columns = SHAPE_POOL_COLUMNS;
        self.shape_near = near_share(beta) as f32;
        self.near_columns = NEAR_POOL_COLUMNS;
        self.previous_edge_bin = f64::NAN;
        self.shape_beta = beta;
        self.blend_beta = None;
    }

    /// Pooled shape exponent `β` of the density `∝ (f_e − f)^β` just under
    /// the edge (starting from the blunt prior, −2/3): for the power-law
    /// family of profiles, the family's own exponent; for other
    /// distributions, the power law that balances like them over the top
    /// quarter ([`crate::shape`]).
    pub fn shape_beta(&self) -> f64 {
        self.shape_beta
    }

    /// Recomputes [`Self::shape_beta`] from the pooled band shares: the
    /// one-parameter family's reading of the lower bands while some member
    /// of the family balances them; where they lie beyond its reach, the
    /// two-parameter model's reading with the near band ([`crate::shape`]),
    /// fully from `OUT_OF_FAMILY_SPAN` beyond and after
    /// `SHAPE_PRIOR_COLUMNS` near-band votes.
    ///
    /// Inside the family the near band is not used: it is read close to
    /// the edge it is scaled from, and on stationary shaped noise of the
    /// family its model reading scattered by ±0.1–0.2 around the true
    /// exponent (6.5–26 s, 20 dB), more than the lower bands' reading.
    fn update_shape_beta(&mut self) {
        let (top, mid) = (f64::from(self.shape_top), f64::from(self.shape_mid));
        if !(top > 0.0 && mid > 0.0) {
            return;
        }
        let ratio = top / mid;
        let family = self.band_ratios.beta(ratio);
        let beyond =
            ((ratio / self.band_ratios.reach() - 1.0) / OUT_OF_FAMILY_SPAN).clamp(0.0, 1.0);
        let near = f64::from(self.shape_near);
        self.shape_beta = if self.cfg.shape_tilt
            && beyond > 0.0
            && self.near_columns > 0
            && near > 0.0
            && near < 1.0
        {
            let tilted = self.shape_map.near_edge_beta(ratio, near / (1.0 - near));
            let votes = (f64::from(self.near_columns) / f64::from(SHAPE_PRIOR_COLUMNS)).min(1.0);
            family + beyond * votes * (tilted - family)
        } else {
            family
        };
    }

    /// Pools the power balance of a column with flow whose edge is at
    /// `edge_bin`: the power in `[0.55, 0.8)·f_e` against `[0.3, 0.55)·f_e`,
    /// and, while the edge holds still, in the near band `[0.8, 0.9)·f_e`
    /// against the first ([`crate::shape`]).
    #[inline(always)]
    fn observe_shape(&mut self, pos: &[f32], noise: f32, edge_bin: f64) {
        self.previous_edge_bin = edge_bin;
        let previous_edge_bin = self.anchor_edge_bin;
        if edge_bin < SHAPE_MIN_EDGE_BINS as f64 || edge_bin >= pos.len() as f64 {
            return;
        }
        let band = |lo: f64, hi: f64| -> f32 {
            // Sum of (power − noise) over [lo, hi) with fractional end bins;
            // bin k covers [k − ½, k + ½).
            let mut acc = 0.0_f64;
            let first = (lo + 0.5).floor() as usize;
            let last = ((hi + 0.5).floor() as usize).min(pos.len() - 1);
            for (k, &p) in pos.iter().enumerate().take(last + 1).skip(first) {
                let (a, b) = (k as f64 - 0.5, k as f64 + 0.5);
                let cover = (b.min(hi) - a.max(lo)).max(0.0);
                acc += cover * f64::from(p - noise);
            }
            acc as f32
        };
        let top = band(MID_BAND.0 * edge_bin, MID_BAND.1 * edge_bin);
        let mid = band(LOW_BAND.0 * edge_bin, LOW_BAND.1 * edge_bin);
        let total = top + mid;
        // Gate on the band power, not on the power near the edge: selecting
        // columns by it would favour speckle peaks there.
        let band_snr = total / (0.5 * edge_bin as f32 * noise);
        if !(top > 0.0 && mid > 0.0 && band_snr >= SHAPE_MIN_SNR as f32) {
            return;
        }
        self.shape_columns = self.shape_columns.saturating_add(1);
        let weight = (self.shape_columns + SHAPE_PRIOR_COLUMNS).min(SHAPE_POOL_COLUMNS);
        let alpha = 1.0 / weight as f32;
        self.shape_top += alpha * (top / total - self.shape_top);
        self.shape_mid += alpha * (mid / total - self.shape_mid);
        // The near band and its middle reference are placed from the
        // previous column's edge, and only while the edge holds still: placed
        // from this column's edge, the speckle that moved the edge is also in
        // the near band, and on stationary flat spectra (40–56 bins, 20 dB)
        // that read the near band 4–12 % off.
        if edge_bin >= NEAR_MIN_EDGE_BINS as f64
            && (edge_bin - previous_edge_bin).abs() <= NEAR_STEADY_BINS
        {
            let e = previous_edge_bin;
            let middle = band(MID_BAND.0 * e, MID_BAND.1 * e);
            let near = band(NEAR_BAND.0 * e, NEAR_BAND.1 * e);
            if near > 0.0 && middle > 0.0 {
                self.near_columns = self.near_columns.saturating_add(1);
                let weight = (self.near_columns + SHAPE_PRIOR_COLUMNS).min(NEAR_POOL_COLUMNS);
                let alpha = 1.0 / weight as f32;
                self.shape_near += alpha * (near / (near + middle) - self.shape_near);
            }
        }
        self.update_shape_beta();
    }

    /// Noise-subtracted integrated spectrum from the first searched bin;
    /// returns (index of maximum, maximum) or None when nothing stands out.
    fn integrate(&mut self, pos: &[f32], noise: f32) -> Option<(usize, f32)> {
        let mut acc = 0.0_f32;
        let (mut kmax, mut imax) = (self.first_pos, 0.0_f32);
        for (k, (&p, i)) in pos
            .iter()
            .zip(self.integ.iter_mut())
            .enumerate()
            .skip(self.first_pos)
        {
            acc += p - noise;
            *i = acc;
            if acc > imax {
                imax = acc;
                kmax = k;
            }
        }
        // The random walk of pure noise reaches ~z·n·√k; demand more than that
        // (z from the configured false-alarm probability).
        let z = normal_upper_quantile(self.cfg.false_alarm_prob) as f32;
        let span = (pos.len() - self.first_pos) as f32;
        (imax > z * noise * span.sqrt() * 1.5).then_some((kmax, imax))
    }

    fn geometric(&mut self, pos: &[f32], noise: f32, out: &mut EdgeEstimate) {
        let Some((kmax, imax)) = self.integrate(pos, noise) else {
            return;
        };
        let k0 = self.first_pos;
        let width = (kmax + 1 - k0) as f32;
        let slope = imax / width;
        let (mut best, mut knee) = (f32::MIN, kmax);
        for k in k0..=kmax {
            let d = self.integ[k] - slope * (k + 1 - k0) as f32;
            if d > best {
                best = d;
                knee = k;
            }
        }
        // The integral up to bin k covers through its upper half.
        let edge_bin = knee as f64 + 0.5;
        out.saturated = knee + 2 >= pos.len();
        let plateau = self.plateau(pos, edge_bin) - f64::from(noise);
        out.snr = snr_ratio(plateau, noise) as f32;
        let mut edge = edge_bin;
        if self.cfg.bias_correction {
            let tau = if plateau > 0.0 {
                f64::from(slope) / plateau
            } else {
                1.0
            };
            edge -= self.step_raw.inverse(tau.clamp(0.0, 0.99));
        }
        out.shift_hz = (edge.max(0.0) * self.bin_hz) as f32;
    }

    fn percentile(&mut self, pos: &[f32], noise: f32, out: &mut EdgeEstimate) {
        let Some((kmax, imax)) = self.integrate(pos, noise) else {
            return;
        };
        let target = imax * self.cfg.percentile as f32;
        let k = (self.first_pos..=kmax)
            .find(|&k| self.integ[k] >= target)
            .unwrap_or(kmax);
        let edge_bin = k as f64 + 0.5;
        out.saturated = k + 2 >= pos.len();
        let plateau = self.plateau(pos, edge_bin) - f64::from(noise);
        out.snr = snr_ratio(plateau, noise) as f32;
        out.shift_hz = (edge_bin * self.bin_hz) as f32;
    }
}

/// The flow's power over the noise, at least 0 and at most 10¹⁵ (150 dB,
/// beyond any 16-bit receiver's range): a column whose floor is almost
/// nothing (an interface sending zeros under a few samples of signal)
/// divides by a subnormal, and the ratio, infinite in `f32`, made the
/// envelope point's quality NaN (found by `dsp/tests/adversarial.rs`).
fn snr_ratio(plateau: f64, noise: f32) -> f64 {
    let r = plateau / f64::from(noise);
    if r.is_nan() { 0.0 } else { r.clamp(0.0, 1e15) }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::stft::hann;

    #[test]
    fn normal_quantile_matches_tables() {
        assert!((normal_upper_quantile(0.5)).abs() < 1e-8);
        assert!((normal_upper_quantile(1e-3) - 3.090_232).abs() < 1e-5);
        assert!((normal_upper_quantile(0.025) - 1.959_964).abs() < 1e-5);
    }

    #[test]
    fn step_response_is_half_at_the_edge_and_monotone() {
        let r = StepResponse::new(&WindowKernel::new(&hann(200), 256, 5), 5);
        assert!(r.inverse(0.5).abs() < 0.05, "{}", r.inverse(0.5));
        assert!(r.inverse(0.01) > r.inverse(0.1));
        assert!(r.inverse(0.9) < 0.0);
        // Symmetric kernel: R⁻¹(τ) = −R⁻¹(1−τ).
        assert!((r.inverse(0.2) + r.inverse(0.8)).abs() < 0.05);
    }

    /// Columns after which the pooled shape has forgotten its prior.
    const SHAPE_SETTLE_COLUMNS: usize = 600;

    /// An estimator for 256-point columns of a 200-sample Hann window at
    /// 20 kHz, searching above 200 Hz.
    fn estimator(cfg: EnvelopeConfig) -> EnvelopeEstimator {
        EnvelopeEstimator::new(cfg, &hann(200), 256, 20_000.0, 200.0).unwrap()
    }

    /// Flow over a floor that is almost nothing (a subnormal `f32`, as a
    /// column of zeros after signal reads): the SNR is large but a number,
    /// for every method (it was infinite in `f32`, and the envelope
    /// point's quality `snr/(snr + 2)` NaN).
    #[test]
    fn flow_over_an_almost_empty_floor_has_a_finite_snr() {
        let col = expected_column(2000.0, 1e5, 20_000.0, &hann(200), 256);
        for method in EnvelopeMethod::ALL {
            let mut est = estimator(with_method(method));
            let mut out = EdgeEstimate::default();
            for _ in 0..SHAPE_SETTLE_COLUMNS {
                est.process(&col, 6.9e-39, &mut out).unwrap();
                assert!(out.snr.is_finite() && out.snr >= 0.0, "{method:?}: {out:?}");
            }
            assert!(out.snr > 1e10, "{method:?}: {out:?}");
        }
    }

    /// `method` with the other settings at their defaults.
    fn with_method(method: EnvelopeMethod) -> EnvelopeConfig {
        EnvelopeConfig {
            method,
            ..Default::default()
        }
    }

    /// The estimate once a stream of the same column has let the pooled
    /// shape (which starts from the blunt prior) settle.
    fn settled(est: &mut EnvelopeEstimator, col: &[f32]) -> EdgeEstimate {
        let mut out = EdgeEstimate::default();
        for _ in 0..SHAPE_SETTLE_COLUMNS {
            est.process(col, 1.0, &mut out).unwrap();
        }
        out
    }

    /// Expected column of a flat spectrum from 0 to `edge_hz` at density
    /// `level` over unit noise, built by brute-force smearing with the window
    /// kernel (independent of the estimator's table).
    fn expected_column(edge_hz: f64, level: f64, fs: f64, window: &[f32], n: usize) -> Vec<f32> {
        expected_power_law_column(edge_hz, level, 0.0, fs, window, n)
    }

    /// As [`expected_column`] for the density `level·(β+1)·(1 − f/f_e)^β`
    /// (same total power as the flat one).
    fn expected_power_law_column(
        edge_hz: f64,
        level: f64,
        beta: f64,
        fs: f64,
        window: &[f32],
        n: usize,
    ) -> Vec<f32> {
        expected_ramp_column(edge_hz, 0.0, level, beta, fs, window, n)
    }

    /// Expected column of the power-law spectrum whose edge moves linearly
    /// in time, `edge_hz + slope_hz_per_ms·t_ms` (t = 0 at the window's
    /// centre), by brute force: each of 256 laminae a random-phase chirp,
    /// its windowed DFT evaluated directly per bin (independent of the
    /// table's FFT route).
    pub(crate) fn expected_ramp_column(
        edge_hz: f64,
        slope_hz_per_ms: f64,
        level: f64,
        beta: f64,
        fs: f64,
        window: &[f32],
        n: usize,
    ) -> Vec<f32> {
        let energy: f64 = window.iter().map(|&w| f64::from(w).powi(2)).sum();
        let laminae = 256;
        let dg = 1.0 / laminae as f64;
        let p = beta + 1.0;
        let cum = |g: f64| 1.0 - (1.0 - g).powf(p);
        let centre = (window.len() as f64 - 1.0) / 2.0;
        let mut col = vec![1.0_f64; n];
        for l in 0..laminae {
            let g = (l as f64 + 0.5) * dg;
            let power = (cum((l + 1) as f64 * dg) - cum(l as f64 * dg)) * level * edge_hz / fs;
            for (idx, c) in col.iter_mut().enumerate().skip(n / 2) {
                let f_bin = (idx as f64 - (n / 2) as f64) * fs / n as f64;
                let (mut re, mut im) = (0.0, 0.0);
                for (s, &w) in window.iter().enumerate() {
                    // Instantaneous frequency g·f_e(t), integrated exactly.
                    let t = (s as f64 - centre) / fs;
                    let cycles = g * (edge_hz * t + 0.5 * slope_hz_per_ms * 1000.0 * t * t);
                    let ph = 2.0 * std::f64::consts::PI * (cycles - f_bin * s as f64 / fs);
                    re += f64::from(w) * ph.cos();
                    im += f64::from(w) * ph.sin();
                }
                *c += power * (re * re + im * im) / energy;
            }
        }
        col.into_iter().map(|x| x as f32).collect()
    }

    #[test]
    fn corrected_edge_of_expected_spectrum_is_the_true_edge() {
        let fs = 20_000.0;
        let window = hann(200);
        for (edge_hz, level) in [(3000.0, 100.0), (3000.0, 10.0), (5200.0, 30.0)] {
            let col = expected_column(edge_hz, level, fs, &window, 256);
            for method in [
                EnvelopeMethod::ShapeFit,
                EnvelopeMethod::PlateauThreshold,
                EnvelopeMethod::Mtcm,
                EnvelopeMethod::Geometric,
            ] {
                let mut out = settled(&mut estimator(with_method(method)), &col);
                let err = f64::from(out.shift_hz) - edge_hz;
                assert!(
                    err.abs() < 40.0,
                    "{method:?} edge {edge_hz} level {level}: error {err} Hz"
                );
                let mut raw = estimator(EnvelopeConfig {
                    bias_correction: false,
                    ..with_method(method)
                });
                raw.process(&col, 1.0, &mut out).unwrap();
                let raw_err = f64::from(out.shift_hz) - edge_hz;
                assert!(
                    raw_err.abs() + 1.0 >= err.abs(),
                    "{method:?}: correction must not hurt ({raw_err} → {err})"
                );
            }
        }
    }

    /// On the expected column of a blunt (edge-peaked) spectrum the default
    /// finds the edge once it has learned the shape; the step-corrected
    /// plateau threshold reads the smeared peak's half-height, above it.
    #[test]
    fn shape_fit_finds_the_edge_of_an_edge_peaked_spectrum() {
        let fs = 20_000.0;
        let window = hann(200);
        let bin_hz = fs / 256.0;
        for (edge_hz, beta) in [(3000.0, -2.0 / 3.0), (4500.0, -7.0 / 9.0), (3500.0, -0.5)] {
            let col = expected_power_law_column(edge_hz, 60.0, beta, fs, &window, 256);
            let run = |method| {
                let mut est = estimator(with_method(method));
                let out = settled(&mut est, &col);
                (f64::from(out.shift_hz) - edge_hz, est.shape_beta())
            };
            let (err, learned) = run(EnvelopeMethod::ShapeFit);
            assert!(
                (learned - beta).abs() < 0.05,
                "β {beta:.2}: learned {learned:.3}"
            );
            assert!(
                err.abs() < 0.25 * bin_hz,
                "β {beta:.2}, edge {edge_hz}: shape-fit error {err:.1} Hz"
            );
            let (plateau_err, _) = run(EnvelopeMethod::PlateauThreshold);
            assert!(
                plateau_err > 0.5 * bin_hz,
                "β {beta:.2}: plateau threshold expected high, got {plateau_err:.1} Hz"
            );
        }
    }

    #[test]
    #[ignore]
    fn print_sub_bin_error() {
        let fs = 20_000.0;
        let window = hann(200);
        let bin_hz = fs / 256.0;
        for beta in [-2.0 / 3.0, 0.0] {
            for k in 0..9 {
                let edge_hz = std::env::var("ODM_EDGE_HZ")
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(3000.0)
                    + k as f64 * bin_hz / 8.0;
                let col = expected_power_law_column(edge_hz, 60.0, beta, fs, &window, 256);
                let out = settled(&mut estimator(EnvelopeConfig::default()), &col);
                eprintln!(
                    "beta {beta:.2} edge +{k}/8 bin: error {:.2} Hz",
                    f64::from(out.shift_hz) - edge_hz
                );
            }
        }
    }

    #[test]
    fn band_ratio_table_inverts_the_closed_form() {
        let t = BandRatioTable::new();
        for beta in [-0.8, -2.0 / 3.0, -0.3, 0.0, 0.4, 0.95] {
            let back = t.beta(band_ratio_of_beta(beta));
            assert!((back - beta).abs() < 1e-3, "{beta} → {back}");
        }
        // Flat spectrum: equal power in the two bands.
        assert!((band_ratio_of_beta(0.0) - 1.0).abs() < 1e-12);
        assert!(t.beta(1e9) <= -0.85 + 1e-9 && t.beta(0.0) >= 1.0 - 1e-9);
    }

    /// The closed form's bands are [`crate::shape`]'s `LOW_BAND` and
    /// `MID_BAND`: the one-parameter reading and the two-parameter model
    /// read the same bands (a change to one without the other fails here).
    #[test]
    fn the_closed_form_reads_the_shape_models_bands() {
        for beta in [-0.85, -2.0 / 3.0, -0.3, 0.0, 0.5, 1.0] {
            let closed = band_ratio_of_beta(beta);
            let model = crate::shape::band_ratios(0.0, beta).0;
            assert!(
                (closed / model - 1.0).abs() < 1e-9,
                "β {beta}: {closed} vs {model}"
            );
        }
    }

    #[test]
    fn shape_of_a_flat_expected_spectrum_is_flat() {
        let fs = 20_000.0;
        let window = hann(200);
        let col = expected_column(4000.0, 100.0, fs, &window, 256);
        let mut est = estimator(with_method(EnvelopeMethod::ShapeFit));
        settled(&mut est, &col);
        assert!(est.shape_beta().abs() < 0.05, "{}", est.shape_beta());
    }

    #[test]
    fn pure_noise_gives_no_flow() {
        let mut seed = 5_u64;
        let window = hann(200);
        let mut est =
            EnvelopeEstimator::new(EnvelopeConfig::default(), &window, 256, 20_000.0, 200.0)
                .unwrap();
        let mut hits = 0;
        for _ in 0..500 {
            let col: Vec<f32> = (0..256)
                .map(|_| {
                    seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                    let u = ((seed >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
                    -(u.ln()) as f32
                })
                .collect();
            let mut out = EdgeEstimate::default();
            est.process(&col, 1.0, &mut out).unwrap();
            if out.shift_hz > 0.0 {
                hits += 1;
            }
        }
        // Independent bins are rougher than windowed ones; still rare.
        assert!(hits < 25, "{hits} of 500 noise columns produced an edge");
    }
}
