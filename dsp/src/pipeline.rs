//! The real-time pipeline: I/Q blocks in; spectrum columns, envelope points,
//! beats and status out through a [`PipelineSink`].
//!
//! Stages, each its own module built once from [`PipelineConfig`]:
//! wall filter ([`crate::wall`]) → short-time spectrum ([`crate::stft`]) →
//! noise floor and interference ([`crate::noise`]) → maximum-velocity
//! envelope ([`crate::envelope`]) → 3-point median in time → beat detection
//! and per-beat numbers ([`crate::beat`]).
//!
//! Every output carries the sample index it belongs to: a column's and an
//! envelope point's `sample_index` is the centre sample of its window; a
//! beat carries `completed_by_sample`, the last sample of the data whose
//! arrival made it complete (for latency measurement).
//!
//! After [`Pipeline::new`], [`Pipeline::push`] and [`Pipeline::finish`]
//! never allocate, and the same input always gives the same output.

use crate::alias::AliasDetector;
use crate::beat::{BeatDetector, DetectorConfig, DetectorInput};
use crate::dechirp::Dechirp;
use crate::direction::FlowDirection;
use crate::envelope::{EdgeEstimate, EnvelopeConfig, EnvelopeEstimator};
use crate::error::DspError;
use crate::haemo::{FtcFormula, SvModel};
use crate::iq::IqBalance;
use crate::lines::LineCanceller;
use crate::noise::{InterferenceDetector, NoiseFloor};
use crate::notch::ToneNotch;
use crate::ramp::RampResponse;
use crate::stft::Stft;
use crate::types::{Beat, Status, StreamParams};
use crate::wall::WallFilter;
use rustfft::num_complex::Complex32;

/// Gains a [`ProbeCalibration`] may have: the calibration file's plausible
/// range (`odm_device_io::calibration::PLAUSIBLE_GAIN`). A probe further off than this is
/// faulty, not calibrated, and a gain near 0 would make every velocity
/// infinite.
pub const PLAUSIBLE_CALIBRATION_GAIN: std::ops::RangeInclusive<f64> = 0.5..=2.0;
/// Largest |offset| of a [`ProbeCalibration`], cm/s (the calibration
/// file's limit as well).
pub const PLAUSIBLE_CALIBRATION_OFFSET_CM_S: f64 = 50.0;

/// Probe calibration applied to every velocity:
/// `v_true = (v_measured − offset_cm_s) / gain`, then, when `beam_angle_deg`
/// is set, rescaled from the stream's stated angle to that angle
/// (`v · cos θ_stated / cos θ_true`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProbeCalibration {
    /// Measured/true velocity ratio (1 = none).
    pub gain: f64,
    /// Measured velocity at zero true velocity, cm/s.
    pub offset_cm_s: f64,
    /// The true insonation angle, degrees, if it differs from PROBE_INFO's.
    pub beam_angle_deg: Option<f64>,
}

impl Default for ProbeCalibration {
    fn default() -> Self {
        Self {
            gain: 1.0,
            offset_cm_s: 0.0,
            beam_angle_deg: None,
        }
    }
}

impl ProbeCalibration {
    /// Checks the values are usable: gain within
    /// [`PLAUSIBLE_CALIBRATION_GAIN`], offset within
    /// ±[`PLAUSIBLE_CALIBRATION_OFFSET_CM_S`], angle within 0–85°. Until
    /// 2026-12-03 any finite gain over 0 and any finite offset passed, and
    /// a gain of 10⁻³⁰⁰ (or an offset of 10³⁰⁸) made envelope velocities
    /// infinite (found by `dsp/tests/adversarial.rs`); the calibration
    /// files were already held to these limits.
    pub fn validate(&self) -> Result<(), DspError> {
        if !(self.gain.is_finite() && PLAUSIBLE_CALIBRATION_GAIN.contains(&self.gain)) {
            return Err(DspError::invalid("calibration gain", self.gain, "0.5–2"));
        }
        if !(self.offset_cm_s.is_finite()
            && self.offset_cm_s.abs() <= PLAUSIBLE_CALIBRATION_OFFSET_CM_S)
        {
            return Err(DspError::invalid(
                "calibration offset_cm_s",
                self.offset_cm_s,
                "within ±50 cm/s",
            ));
        }
        if let Some(a) = self.beam_angle_deg
            && !(a.is_finite() && (0.0..=85.0).contains(&a))
        {
            return Err(DspError::invalid("calibration beam_angle_deg", a, "0–85°"));
        }
        Ok(())
    }

    /// True velocity from the velocity the stream's parameters imply.
    pub fn velocity_true_cm_s_from_measured(&self, v_cm_s: f64, stated_angle_deg: f64) -> f64 {
        let v = (v_cm_s - self.offset_cm_s) / self.gain;
        match self.beam_angle_deg {
            Some(a) => v * stated_angle_deg.to_radians().cos() / a.to_radians().cos(),
            None => v,
        }
    }
}

/// Everything the pipeline is built from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PipelineConfig {
    /// Wall-filter cut-off, Hz.
    pub wall_cutoff_hz: f64,
    /// Analysis window length, s (rounded to samples).
    pub window_s: f64,
    /// Hop between columns, s (rounded to samples).
    pub hop_s: f64,
    /// Envelope estimator.
    pub envelope: EnvelopeConfig,
    /// Beat detector.
    pub detector: DetectorConfig,
    /// Noise floor this far above its baseline flags interference, dB.
    pub interference_margin_db: f32,
    /// How fast the interference baseline may rise, dB/s.
    pub interference_rise_db_per_s: f32,
    /// No accepted beat for this long ⇒ [`Status::SignalLost`], s.
    pub signal_lost_after_s: f64,
    /// FTc formula.
    pub ftc: FtcFormula,
    /// Stroke-volume model.
    pub sv_model: SvModel,
    /// Probe calibration.
    pub calibration: ProbeCalibration,
    /// Remove the envelope's lead on rising and lag on falling edges that
    /// the analysis window's length causes ([`crate::ramp`]).
    pub ramp_correction: bool,
    /// Read the edge of a column whose edge sweeps across the window (a
    /// rise or fall of the velocity) again from the window dechirped at the
    /// sweep the neighbouring columns show ([`crate::dechirp`]).
    pub dechirp: bool,
    /// Keep the envelope's threshold at or over the analysis window's
    /// highest side lobe under the column's strongest flow, so that a
    /// strong signal's leakage is not read as flow (docs/dsp.md, stage 4,
    /// "Leakage floor"; the threshold methods only, see
    /// [`crate::envelope::EnvelopeMethod::thresholds_the_column`]).
    pub leakage_floor: bool,
    /// Find steady tones alone in the noise and interpolate across them
    /// before the envelope ([`crate::lines`]). Off for calibration: a
    /// string phantom's echo is such a line.
    pub cancel_lines: bool,
    /// Subtract steady tones far over the noise (≥ 20 dB in their bin)
    /// from the samples before the spectrum ([`crate::notch`]); only with
    /// `cancel_lines`. On by default: it recovers the beats under a tone as
    /// strong as the blood, which are otherwise all lost, and it leaves a
    /// steady phantom's speckled echo alone; a tone ≈ 50 dB over the floor
    /// takes seconds to settle, its beats rejected meanwhile (docs/dsp.md,
    /// stage 3a).
    pub notch_strong_tones: bool,
    /// Estimate the demodulator's I/Q gain and phase error from the signal
    /// and correct it once its mirror image would stand above −36.5 dB
    /// ([`crate::iq`]).
    pub iq_balance: bool,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            wall_cutoff_hz: 150.0,
            window_s: 0.010,
            hop_s: 0.005,
            envelope: EnvelopeConfig::default(),
            detector: DetectorConfig::default(),
            interference_margin_db: 6.0,
            interference_rise_db_per_s: 1.0,
            signal_lost_after_s: 10.0,
            ftc: FtcFormula::Bazett,
            sv_model: SvModel::None,
            calibration: ProbeCalibration::default(),
            ramp_correction: true,
            dechirp: true,
            leakage_floor: true,
            cancel_lines: true,
            notch_strong_tones: true,
            iq_balance: true,
        }
    }
}

/// One spectrum column, borrowing the pipeline's buffer.
#[derive(Debug, Clone, Copy)]
pub struct SpectrumColumn<'a> {
    /// Centre sample of the window.
    pub sample_index: u64,
    /// Its time, s.
    pub t_s: f64,
    /// Linear power per bin (noise of variance σ² has mean σ² per bin),
    /// ascending frequency: bin `k` is `(k − zero_bin)·bin_hz`.
    pub power: &'a [f32],
    /// Index of the 0 Hz bin.
    pub zero_bin: usize,
    /// Bin spacing, Hz.
    pub bin_hz: f64,
    /// Velocity per bin, cm/s (calibration applied to the scale).
    pub velocity_cm_s_per_bin: f64,
    /// Mean noise power per bin in this column.
    pub noise_power: f32,
    /// The column was flagged as broadband interference.
    pub interference: bool,
    /// Steady narrowband tones being cancelled in this column
    /// ([`crate::lines`]) or notched out of the samples ([`crate::notch`]);
    /// 0 when none, or when cancellation is off.
    pub narrowband_lines: usize,
}

impl SpectrumColumn<'_> {
    /// Velocity (cm/s) of bin `k`.
    pub fn velocity_cm_s(&self, k: usize) -> f64 {
        (k as f64 - self.zero_bin as f64) * self.velocity_cm_s_per_bin
    }
}

/// The pipeline reports aliasing past the unwrapping this long after the
/// last such column, s.
const ALIAS_REPORT_S: f64 = 3.0;

/// Columns, counting the aliased one, during which a floor lifted without
/// broadband noise is not taken for interference.
const ALIAS_HOLD_COLUMNS: u8 = 3;

/// Most envelope points waiting for the detector's despiker (its lag is
/// three points).
const UNSETTLED_MAX: usize = 8;

/// How long, s, a receive-gain step measured out of a diathermy burst keeps
/// its moved baseline without the burst's end showing (the floor dropping
/// back under it) before the floors then are taken as the baseline. A burst
/// that ended while the step's columns were clipped never shows its end,
/// and would have held the baseline its excess too low for 20–60 s (every
/// beat rejected as interference); one that goes on across the step is
/// flagged for this long at least, the length of the virtual probe's
/// longest bursts (`odm simulate --diathermy`: 2–5 s).
const AMBIGUOUS_STEP_HOLD_S: f64 = 5.0;

/// The median of three values.
fn median3(x: f32, y: f32, z: f32) -> f32 {
    x.max(y).min(x.min(y).max(z))
}

/// Dechirped columns are read for sweeps of at least this many FFT bins
/// per window (under it the plain column's smear is under a bin and a
/// half, and the window-smear correction covers it) …
const DECHIRP_MIN_SWEEP_BINS: f32 = 2.0;
/// … and up to this many: 40 bins per 10 ms window at 20 kHz is 8.5 cm/s
/// per ms at 4 MHz and 45°, the foot of a 150 cm/s gamma-variate rise at
/// 180/min (PV·e over a 55 ms time to peak); a steeper sweep is read at
/// this one, which still leaves it sharper than the plain column.
const DECHIRP_MAX_SWEEP_BINS: u32 = 40;

/// The Hann window's highest side lobe, relative to its main lobe's peak:
/// −31.5 dB (Harris, "On the use of windows for harmonic analysis with the
/// discrete Fourier transform", Proc. IEEE 66(1), 1978, table 1).
const HANN_PEAK_SIDE_LOBE: f32 = 7.08e-4;

/// The lowest threshold (power per bin) the envelope searches a column at
/// whose forward half from the wall band up is `forward`: the window's
/// highest side lobe under the column's strongest band of flow, taken as
/// the highest mean of three adjacent bins (one bin of a flat spectrum is a
/// speckle maximum). For a band of flow that is its own side-lobe level; a
/// lone tone's three-bin mean is 2–3 dB under its peak bin, so its first
/// side lobe (2.5–3.5 bins out) may still reach the threshold but none
/// further out does (docs/dsp.md, stage 4, "Leakage floor").
fn leakage_threshold(forward: &[f32]) -> f32 {
    // Eight running maxima side by side, so that the loop vectorises (a
    // fold with `f32::max` is a serial chain: 1 540 instructions a column,
    // 7 % of the pipeline, against 550; callgrind, docs/performance.md).
    const LANES: usize = 8;
    if forward.len() < 3 {
        return 0.0;
    }
    let n = forward.len() - 2;
    let (a, b, c) = (&forward[..n], &forward[1..], &forward[2..]);
    let mut lanes = [0.0_f32; LANES];
    let chunks = a
        .chunks_exact(LANES)
        .zip(b.chunks_exact(LANES))
        .zip(c.chunks_exact(LANES));
    for ((a, b), c) in chunks {
        for (l, ((&x, &y), &z)) in lanes.iter_mut().zip(a.iter().zip(b).zip(c)) {
            let v = x + y + z;
            *l = if v > *l { v } else { *l };
        }
    }
    let tail = n - n % LANES;
    let top = (tail..n)
        .map(|k| forward[k] + forward[k + 1] + forward[k + 2])
        .chain(lanes)
        .fold(0.0_f32, f32::max);
    top / 3.0 * HANN_PEAK_SIDE_LOBE
}

/// One point of the maximum-velocity envelope. Points reach the sink three
/// hops after their column (15 ms at the default 5 ms hop), once the beat
/// detector has checked them for short spikes, with the value the beats are
/// measured on; the last three come out at `finish`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct EnvelopePoint {
    /// Centre sample of the column it comes from.
    pub sample_index: u64,
    /// Its time, s.
    pub t_s: f64,
    /// Maximum forward velocity, cm/s (calibrated, bias-corrected).
    pub velocity_cm_s: f64,
    /// 0..1: how far the flow stands above noise here (`snr/(snr+2)`), 0
    /// inside interference.
    pub quality: f64,
}

/// Receives the pipeline's outputs. Every method has an empty default.
pub trait PipelineSink {
    /// A new spectrum column.
    fn spectrum_column(&mut self, _column: &SpectrumColumn<'_>) {}
    /// A new envelope point.
    fn envelope_point(&mut self, _point: &EnvelopePoint) {}
    /// A complete beat.
    fn beat(&mut self, _beat: &Beat) {}
    /// A status change.
    fn status(&mut self, _status: &Status) {}
}

/// A sink that ignores everything (for callers that only want side effects
/// or to measure speed).
#[derive(Debug, Clone, Copy, Default)]
pub struct NullSink;
impl PipelineSink for NullSink {}

#[derive(Debug, Clone, Copy)]
struct RawPoint {
    input: DetectorInput,
    /// The column's edge (Hz, 0 when no flow) and the estimator's
    /// signal-to-noise reading there.
    shift_hz: f32,
    edge_snr: f32,
    /// The noise floor the envelope was read against (with the leakage
    /// floor), and whether the column may be read again dechirped (no
    /// interference, clipping, gap, aliasing or cancelled line).
    noise: f32,
    plain: bool,
}

/// The real-time DSP pipeline.
#[derive(Debug)]
pub struct Pipeline {
    cfg: PipelineConfig,
    params: StreamParams,
    fs: f64,
    wall: WallFilter,
    iq: IqBalance,
    stft: Stft,
    noise: NoiseFloor,
    interference: InterferenceDetector,
    lines: LineCanceller,
    notch: ToneNotch,
    /// The line canceller held every tone the notch holds before the notch
    /// declared it: while it still holds them, the notch's acquisition
    /// leaves nothing of them in the spectrum.
    notch_under_canceller: bool,
    direction: FlowDirection,
    alias: AliasDetector,
    /// Columns left during which a floor lifted without broadband noise is
    /// put down to wrapped flow rather than interference (the interference
    /// detector's 3-column median lags the last aliased column).
    alias_hold: u8,
    /// Signal time since a column past the unwrapping, s.
    cut_since_s: f64,
    /// Envelopes of the spectrum rotated down by a quarter and by three
    /// eighths of the band (the forward half of a rotation by `r` bins
    /// spans shifts of `r` … `fft_len/2 + r` bins, across +fs/2: up to 1.5
    /// and 1.75 × the limit), run while the stream aliases.
    unwrap: [(EnvelopeEstimator, usize); 2],
    rotated: Vec<f32>,
    envelope: EnvelopeEstimator,
    /// First bin of the forward half above the wall band, for
    /// [`leakage_threshold`], and the envelope's threshold ratio, which
    /// turns that threshold into a noise level (None: no leakage floor,
    /// because it is off or the estimator does not threshold the column).
    forward_first_bin: usize,
    leakage_threshold_ratio: Option<f32>,
    /// The envelope's reading of moving edges (None: correction off).
    ramp: Option<RampResponse>,
    /// Dechirping weights (None: off).
    dechirp: Option<Dechirp>,
    /// The first hop of the last column's window (shifted out of `win`),
    /// and that column's centre sample: with `win` it makes up the window
    /// of the point held in `prev[1]`.
    shifted: Vec<Complex32>,
    shifted_centre: Option<u64>,
    /// The dechirped column's power.
    chirp_power: Vec<f32>,
    /// Columns read again dechirped since the pipeline was built.
    dechirped_columns: u64,
    detector: BeatDetector,
    window_len: usize,
    hop_len: usize,
    /// Filtered samples of the current window (first `fill` valid).
    win: Vec<Complex32>,
    fill: usize,
    power: Vec<f32>,
    /// Index of the next expected sample; None before the first block.
    next_sample: Option<u64>,
    /// End (exclusive) of the last clipped block.
    clipped_until: u64,
    gap_pending: bool,
    /// First sample of the transmitter's mute in progress
    /// ([`Pipeline::push_flagged`]).
    muted_from: Option<u64>,
    /// Sample at which the receive gain was last reported changed, until
    /// the columns over it have been seen
    /// ([`Pipeline::receive_gain_changed`]).
    gain_step_at: Option<u64>,
    /// The pending step's size in dB when every report that makes it up
    /// gave a gain to compare with the one before; None: measured.
    gain_step_db: Option<f32>,
    /// The receive gain last reported, dB.
    reported_gain_db: Option<f32>,
    /// The last column before the pending step was interference.
    gain_step_in_burst: bool,
    /// After a step measured out of a burst: the sample by which the
    /// floor must have dropped back under the moved baseline, or the
    /// baseline is taken from the floors then ([`AMBIGUOUS_STEP_HOLD_S`]).
    rebase_at: Option<u64>,
    /// The interference detector's verdict on the last column's floor.
    floor_flag: bool,
    /// The last two raw envelope points (median-of-3 in time).
    prev: [Option<RawPoint>; 2],
    /// Envelope points given to the detector but not yet to the sink: they
    /// go out once the detector's despiker has settled them (oldest first).
    unsettled: [EnvelopePoint; UNSETTLED_MAX],
    unsettled_len: usize,
    /// The raw edge (Hz) of the point before those two (0: none).
    before_prev_shift_hz: f32,
    velocity_per_hz: f64,
    last_accepted_sample: Option<u64>,
    /// The segment's first sample (set by the first block or mark, and
    /// again at a discontinuity): where signal-lost counting starts, and
    /// the zero of the beat detector's clock. The detector works on times
    /// from here, so that its decisions do not depend on where the
    /// interface's sample counter started (ties between hop-spaced times at
    /// 5·10⁷ s round differently than at 50 s); beats and envelope points go
    /// out on the stream's clock.
    first_sample: Option<u64>,
    lost: bool,
    external_interference_from: u64,
    external_interference_until: u64,
}

impl Pipeline {
    /// Builds every stage for the stream. Fails on settings the stream
    /// cannot support (e.g. a wall filter above a quarter of the sample rate).
    pub fn new(cfg: PipelineConfig, params: StreamParams) -> Result<Self, DspError> {
        let fs = f64::from(params.sample_rate_hz);
        if !(1000.0..=1.0e6).contains(&fs) {
            return Err(DspError::invalid(
                "sample_rate_hz",
                params.sample_rate_hz,
                "1 000–1 000 000",
            ));
        }
        if !(params.beam_angle_deg.is_finite() && (0.0..=85.0).contains(&params.beam_angle_deg)) {
            return Err(DspError::invalid(
                "beam_angle_deg",
                params.beam_angle_deg,
                "0–85°",
            ));
        }
        if params.carrier_hz == 0 {
            return Err(DspError::invalid("carrier_hz", 0, "> 0"));
        }
        if !(cfg.window_s.is_finite() && (0.002..=0.1).contains(&cfg.window_s)) {
            return Err(DspError::invalid("window_s", cfg.window_s, "0.002–0.1 s"));
        }
        if !(cfg.hop_s.is_finite() && cfg.hop_s > 0.0 && cfg.hop_s <= cfg.window_s) {
            return Err(DspError::invalid("hop_s", cfg.hop_s, "0 < hop ≤ window"));
        }
        if !(cfg.signal_lost_after_s.is_finite() && cfg.signal_lost_after_s > 0.0) {
            return Err(DspError::invalid(
                "signal_lost_after_s",
                cfg.signal_lost_after_s,
                "> 0",
            ));
        }
        cfg.calibration.validate()?;
        let window_len = (cfg.window_s * fs).round() as usize;
        let hop_len = ((cfg.hop_s * fs).round() as usize).clamp(1, window_len);
        let fft_len = window_len.next_power_of_two();
        let wall = WallFilter::new(cfg.wall_cutoff_hz, fs)?;
        let stft = Stft::new(window_len, fft_len)?;
        let bin_hz = fs / fft_len as f64;
        let half = fft_len / 2;
        // Flow is searched above twice the wall cut-off: residual wall
        // clutter (tens of dB above blood before the filter) spreads over
        // the window's main lobe just above the cut-off, and searching from
        // 1.5× let it through (PPV fell from 0.98 to 0.43 on the simulator).
        // Noise reference: the negative half outside that band.
        let wall_band_hz = 2.0 * cfg.wall_cutoff_hz;
        let wall_bins = (wall_band_hz / bin_hz).ceil() as usize;
        let noise = NoiseFloor::new(1, half.saturating_sub(wall_bins), fft_len)?;
        let lines = LineCanceller::new(fft_len, wall_bins, hop_len as f64 / fs)?;
        let notch = ToneNotch::new(stft.window(), fft_len, wall_bins, hop_len as f64 / fs, fs)?;
        let direction = FlowDirection::new(fft_len, wall_bins, hop_len as f64 / fs);
        let alias = AliasDetector::new(fft_len, wall_bins, hop_len as f64 / fs);
        let envelope =
            EnvelopeEstimator::new(cfg.envelope, stft.window(), fft_len, fs, wall_band_hz)?;
        let ramp = cfg
            .ramp_correction
            .then(|| RampResponse::new(&envelope, stft.window(), fft_len, fs));
        let dechirp = cfg
            .dechirp
            .then(|| Dechirp::new(stft.window(), fft_len, fs, DECHIRP_MAX_SWEEP_BINS));
        let hop_s = hop_len as f64 / fs;
        let interference = InterferenceDetector::new(
            cfg.interference_margin_db,
            cfg.interference_rise_db_per_s,
            hop_s as f32,
        )?;
        // Impairment checks are widened by half a window (a column's centre
        // lags its first sample) plus 50 ms, the onset-matching tolerance of
        // the validation, so that a beat whose true cycle touches an
        // impairment is never accepted either.
        let margin_s = 0.5 * window_len as f64 / fs + 0.05;
        let mut detector = BeatDetector::new(cfg.detector, hop_s, 4.0, margin_s);
        detector.ftc = cfg.ftc;
        detector.floor_cm_s = cfg
            .calibration
            .velocity_true_cm_s_from_measured(
                params.velocity_cm_s_from_shift_hz(envelope.min_shift_hz()),
                params.beam_angle_deg,
            )
            .max(0.0) as f32;
        detector.sv_model = cfg.sv_model;
        Ok(Self {
            velocity_per_hz: params.velocity_cm_s_from_shift_hz(1.0),
            cfg,
            params,
            fs,
            wall,
            iq: IqBalance::new(fs),
            stft,
            noise,
            interference,
            lines,
            notch,
            notch_under_canceller: false,
            forward_first_bin: fft_len / 2 + wall_bins,
            leakage_threshold_ratio: (cfg.leakage_floor
                && cfg.envelope.method.thresholds_the_column())
            .then(|| envelope.threshold_ratio() as f32),
            direction,
            alias,
            alias_hold: 0,
            cut_since_s: f64::INFINITY,
            unwrap: [
                (envelope.clone(), fft_len / 4),
                (envelope.clone(), 3 * fft_len / 8),
            ],
            rotated: vec![0.0; fft_len],
            envelope,
            ramp,
            dechirp,
            shifted: vec![Complex32::default(); hop_len],
            shifted_centre: None,
            chirp_power: vec![0.0; fft_len],
            dechirped_columns: 0,
            detector,
            window_len,
            hop_len,
            win: vec![Complex32::default(); window_len],
            fill: 0,
            power: vec![0.0; fft_len],
            next_sample: None,
            clipped_until: 0,
            gap_pending: false,
            muted_from: None,
            gain_step_at: None,
            gain_step_db: None,
            reported_gain_db: None,
            gain_step_in_burst: false,
            rebase_at: None,
            floor_flag: false,
            prev: [None, None],
            unsettled: [EnvelopePoint::default(); UNSETTLED_MAX],
            unsettled_len: 0,
            before_prev_shift_hz: 0.0,
            last_accepted_sample: None,
            first_sample: None,
            lost: false,
            external_interference_from: u64::MAX,
            external_interference_until: 0,
        })
    }

    /// Columns whose edge was read again from the dechirped window
    /// ([`crate::dechirp`]) since the pipeline was built: a measure of
    /// that reading's cost (one more FFT and envelope each).
    pub fn dechirped_columns(&self) -> u64 {
        self.dechirped_columns
    }

    /// The I/Q imbalance correction in force, `(a, b)` of
    /// `Q' = b·(Q − a·I)` ([`crate::iq`]); None while the signal is used as
    /// received (balanced, or not yet measured).
    pub fn iq_correction(&self) -> Option<(f32, f32)> {
        self.iq.correction()
    }

    /// The mirror image's level under the signal that the I/Q imbalance
    /// estimate implies, dB; None before 4 s of clean signal, unless a
    /// gross imbalance was corrected sooner ([`crate::iq`]).
    pub fn iq_image_db(&self) -> Option<f64> {
        self.iq.image_db()
    }

    /// Q's power over I's in the clean signal as received, dB (about 0 for
    /// a working interface); None before 4 s ([`crate::iq`]).
    pub fn iq_channel_ratio_db(&self) -> Option<f64> {
        self.iq.channel_ratio_db()
    }

    /// One quadrature channel is dead or broken (10 dB or more from the
    /// other): the flow is mirrored at full power into the reverse half,
    /// where the noise floor is measured ([`crate::iq`]).
    pub fn iq_channel_fault(&self) -> bool {
        self.iq.channel_fault()
    }

    /// The pulsatile flow is in the reverse half of the spectrum — I and Q
    /// swapped at the probe interface, or the beam on flow towards the
    /// probe — so no beat can be found ([`crate::direction`]).
    pub fn flow_reversed(&self) -> bool {
        self.direction.reversed()
    }

    /// The reverse half's share of the flow's power over the last seconds,
    /// 0..1 (None before 3 s, or without flow above the noise).
    pub fn reverse_flow_share(&self) -> Option<f64> {
        self.direction.reverse_share()
    }

    /// Signal time during which the flow was reversed, s.
    pub fn reverse_flow_s(&self) -> f64 {
        self.direction.reversed_s()
    }

    /// Forward flow wrapped round the top of the band (aliasing) within the
    /// last 3 s: the stream's sample rate cannot carry the peak velocity
    /// ([`crate::alias`]; limit [`Pipeline::max_velocity_cm_s`]). Up to
    /// [`Pipeline::max_unwrapped_velocity_cm_s`] the envelope follows the
    /// edge across +fs/2 and the beats are measured.
    pub fn aliasing(&self) -> bool {
        self.alias.aliasing()
    }

    /// Flow past even the unwrapped range within the last 3 s: those beats
    /// are rejected as `aliased`.
    pub fn aliasing_past_unwrap(&self) -> bool {
        self.cut_since_s <= ALIAS_REPORT_S
    }

    /// The highest forward velocity the unwrapping follows, cm/s: 1.75 ×
    /// [`Pipeline::max_velocity_cm_s`].
    pub fn max_unwrapped_velocity_cm_s(&self) -> f64 {
        let n = self.power.len() as f64;
        let top_bins = n / 2.0 + self.unwrap[1].1 as f64;
        self.cfg.calibration.velocity_true_cm_s_from_measured(
            top_bins * self.fs / n * self.velocity_per_hz,
            self.params.beam_angle_deg,
        )
    }

    /// Signal time of columns whose flow wrapped round the band's top, s.
    pub fn aliased_s(&self) -> f64 {
        self.alias.aliased_s()
    }

    /// The highest forward velocity the stream can carry, cm/s: the shift
    /// of half the sample rate (calibration applied).
    pub fn max_velocity_cm_s(&self) -> f64 {
        self.cfg.calibration.velocity_true_cm_s_from_measured(
            0.5 * self.fs * self.velocity_per_hz,
            self.params.beam_angle_deg,
        )
    }

    /// Strong tones being notched out of the samples now
    /// ([`crate::notch`]), Hz.
    pub fn notched_tones_hz(&self) -> impl Iterator<Item = f64> + '_ {
        self.notch.tones_hz().filter(|_| self.notching())
    }

    fn notching(&self) -> bool {
        self.cfg.cancel_lines && self.cfg.notch_strong_tones
    }

    /// Narrowband lines being cancelled now ([`crate::lines`]): inclusive
    /// bin ranges of the spectrum column (0 Hz at its middle bin).
    pub fn narrowband_lines(&self) -> &[(usize, usize)] {
        if self.cfg.cancel_lines {
            self.lines.regions()
        } else {
            &[]
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &PipelineConfig {
        &self.cfg
    }

    /// The stream parameters.
    pub fn params(&self) -> &StreamParams {
        &self.params
    }

    /// Window length, samples.
    pub fn window_len(&self) -> usize {
        self.window_len
    }

    /// Hop, samples.
    pub fn hop_len(&self) -> usize {
        self.hop_len
    }

    /// FFT length (bins per column).
    pub fn fft_len(&self) -> usize {
        self.power.len()
    }

    /// Uses another FTc formula for subsequent beats.
    pub fn set_ftc_formula(&mut self, ftc: FtcFormula) {
        self.cfg.ftc = ftc;
        self.detector.ftc = ftc;
    }

    /// Uses another stroke-volume model for subsequent beats.
    pub fn set_sv_model(&mut self, model: SvModel) {
        self.cfg.sv_model = model;
        self.detector.sv_model = model;
    }

    /// The envelope estimator's pooled spectral shape exponent `β` (density
    /// `∝ (f_e − f)^β` below the edge): about −2/3 for the aorta's blunt
    /// profile, 0 for a parabolic one ([`crate::envelope`]).
    pub fn envelope_shape_beta(&self) -> f64 {
        self.envelope.shape_beta()
    }

    /// Applies a probe calibration to subsequent envelope points and beats.
    pub fn set_calibration(&mut self, calibration: ProbeCalibration) -> Result<(), DspError> {
        calibration.validate()?;
        self.cfg.calibration = calibration;
        Ok(())
    }

    /// Marks `[first_sample, first_sample + count)` as broadband
    /// interference known from outside (e.g. a diathermy signal from the
    /// theatre), in addition to what the pipeline detects itself. Only
    /// samples not yet analysed are affected.
    pub fn mark_interference(&mut self, first_sample: u64, count: u64) {
        let end = first_sample.saturating_add(count);
        self.first_sample.get_or_insert(first_sample);
        self.detector
            .mark_interference(self.detector_s(first_sample), self.detector_s(end));
        self.external_interference_until = self.external_interference_until.max(end);
        self.external_interference_from = self.external_interference_from.min(first_sample);
    }

    /// The probe interface reported that its receive gain changed to
    /// `gain_db10` (0.1 dB) at stream index `at_sample` (EVENT code 2,
    /// serial-stream.md). Everything it receives, noise included, steps by
    /// the change, and the interference detector would take a step up of
    /// more than its 6 dB margin for diathermy until its baseline, which
    /// rises at 1 dB/s, caught up: a 16 dB increase cost 12 s of beats.
    /// The detector instead moves its baseline, at the first column after
    /// `at_sample`, by the step: the difference of the reported gains when
    /// an earlier report gave the gain before, otherwise the floor measured
    /// then against the floors before (diathermy under way across the step
    /// stays flagged either way); columns over the step keep the verdict
    /// before it. Reports that come while a step is pending (its columns
    /// clipped, say) add to it. Call it before pushing the samples at
    /// `at_sample`: once columns past it have been analysed, the step can
    /// no longer be placed and the report changes only the gain remembered.
    /// Velocities, the envelope and every per-beat number do not depend on
    /// the gain.
    pub fn receive_gain_changed(&mut self, at_sample: u64, gain_db10: i32) {
        let gain_db = gain_db10 as f32 / 10.0;
        let known_db = self.reported_gain_db.map(|before| gain_db - before);
        if self.gain_step_at.is_none() {
            self.gain_step_in_burst = self.floor_flag;
        }
        self.gain_step_db = match (self.gain_step_at, self.gain_step_db) {
            // The first of a step: its size if the gain before is known.
            (None, _) => known_db,
            // Another report before the columns past the first: both
            // steps' sizes, or none if either is unknown.
            (Some(_), Some(pending)) => known_db.map(|k| pending + k),
            (Some(_), None) => None,
        };
        self.reported_gain_db = Some(gain_db);
        self.gain_step_at = Some(at_sample);
    }

    /// Feeds one block of samples starting at stream index `first_sample`;
    /// `clipped` is IQ flags bit 0. Outputs go to `sink` as they become known.
    pub fn push(
        &mut self,
        first_sample: u64,
        samples: &[[i16; 2]],
        clipped: bool,
        sink: &mut impl PipelineSink,
    ) {
        self.push_flagged(first_sample, samples, clipped, false, sink);
    }

    /// [`push`](Self::push) with IQ flags bit 1 as well: `muted`, the
    /// transmitter was muted. Such samples carry no echo, only receiver
    /// noise or nothing, so they are not analysed: their span is a gap in
    /// the signal (a cycle overlapping it is rejected as `gap`, a systole
    /// overlapping it has no end, peak or SD; no spectrum column covers it;
    /// the filters start afresh after it, as after a gap, and a mute longer
    /// than 2 s ends the beat in progress). No samples were lost, so no
    /// [`Status::Gap`] is reported; a mute as long as
    /// [`PipelineConfig::signal_lost_after_s`] reports the signal lost.
    pub fn push_flagged(
        &mut self,
        first_sample: u64,
        samples: &[[i16; 2]],
        clipped: bool,
        muted: bool,
        sink: &mut impl PipelineSink,
    ) {
        if samples.is_empty() {
            return;
        }
        self.first_sample.get_or_insert(first_sample);
        match self.next_sample {
            Some(next) if first_sample > next => {
                let lost = first_sample - next;
                sink.status(&Status::Gap {
                    t_s: next as f64 / self.fs,
                    lost_samples: lost,
                });
                self.new_segment();
                self.gap_pending = true;
                self.detector
                    .mark_gap(self.detector_s(next), self.detector_s(first_sample));
                // A gap longer than any cycle: the beat in progress can never
                // be completed honestly; it is emitted, rejected, at the
                // first onset after the gap.
                if lost as f64 / self.fs > 2.0 {
                    self.flush_unsettled(sink);
                    self.detector.restart_after_gap();
                }
            }
            Some(next) if first_sample < next => {
                // The old segment's last points go out before the status
                // that ends it, so that every point after the status is the
                // new segment's (times step back once, at the status).
                self.flush_unsettled(sink);
                sink.status(&Status::Discontinuity {
                    t_s: first_sample as f64 / self.fs,
                });
                self.new_segment();
                self.muted_from = None;
                self.detector.reset();
                self.interference.reset();
                self.rebase_at = None;
                self.lines.reset();
                self.notch.reset();
                self.notch_under_canceller = false;
                self.last_accepted_sample = None;
                self.first_sample = Some(first_sample);
                self.lost = false;
            }
            _ => {}
        }
        let end = first_sample.saturating_add(samples.len() as u64);
        if clipped {
            self.clipped_until = self.clipped_until.max(end);
            self.detector
                .mark_clipped(self.detector_s(first_sample), self.detector_s(end));
        }
        if muted {
            self.detector
                .mark_gap(self.detector_s(first_sample), self.detector_s(end));
            self.muted_from.get_or_insert(first_sample);
            self.next_sample = Some(end);
            self.check_signal(end, sink);
            return;
        }
        if let Some(from) = self.muted_from.take() {
            self.new_segment();
            self.gap_pending = true;
            if first_sample.saturating_sub(from) as f64 / self.fs > 2.0 {
                self.flush_unsettled(sink);
                self.detector.restart_after_gap();
            }
        }
        let mut at = first_sample;
        let mut rest = samples;
        while !rest.is_empty() {
            let n = rest.len().min(self.window_len - self.fill);
            let (chunk, tail) = rest.split_at(n);
            // Lengths match by construction; the error arm cannot occur.
            let filtered = &mut self.win[self.fill..self.fill + n];
            if self.wall.process(chunk, filtered).is_err() {
                return;
            }
            if self.cfg.iq_balance {
                self.iq.observe(filtered);
                self.iq.correct(filtered);
            }
            if self.cfg.cancel_lines && self.cfg.notch_strong_tones {
                self.notch.process(filtered);
            }
            self.fill += n;
            at = at.saturating_add(n as u64);
            rest = tail;
            if self.fill == self.window_len {
                self.column(at, sink);
                self.shifted.copy_from_slice(&self.win[..self.hop_len]);
                self.shifted_centre = Some(at - (self.window_len - self.window_len / 2) as u64);
                self.win.copy_within(self.hop_len.., 0);
                self.fill = self.window_len - self.hop_len;
            }
        }
        self.next_sample = Some(end);
    }

    /// End of stream: flushes the last envelope point. The last onset, whose
    /// next onset never comes, is not a beat (analysis-output.md).
    pub fn finish(&mut self, sink: &mut impl PipelineSink) {
        if let Some(last) = self.prev[1].take() {
            self.emit_point(last, sink);
        }
        self.flush_unsettled(sink);
        self.prev = [None, None];
        self.before_prev_shift_hz = 0.0;
    }

    fn new_segment(&mut self) {
        self.wall.reset();
        self.iq.new_segment();
        self.notch.new_segment();
        self.fill = 0;
        self.prev = [None, None];
        self.before_prev_shift_hz = 0.0;
    }

    /// One column whose window ends just before sample `end`.
    fn column(&mut self, end: u64, sink: &mut impl PipelineSink) {
        let start = end.saturating_sub(self.window_len as u64);
        let centre = start + self.window_len as u64 / 2;
        let t_s = centre as f64 / self.fs;
        if self.stft.process(&self.win, &mut self.power).is_err() {
            return;
        }
        let noise = self.noise.process(&self.power).unwrap_or(0.0);
        let settled = self.clipped_until.saturating_add(self.iq.settle_samples());
        let clip_affected = self.clipped_until > 0 && start < settled;
        let dead = noise < DEAD_FLOOR_LSB2;
        // A reported change of the receive gain steps the floor. A column
        // over the step keeps the last column's verdict; the first after it
        // moves the detector's baseline by the step it measures (the floor
        // now against the recent floors before), so that diathermy under
        // way across the step is still above it.
        //
        // A floor under [`DEAD_FLOOR_LSB2`] is no receiver's: the samples
        // barely move (an interface streaming zeros or a constant). The
        // column carries no signal, so it is a gap in the signal for the
        // beats, and it must not teach the detector a baseline no live
        // floor comes back to: the baseline follows the floor down at once
        // and up at 1 dB/s, and 5 s of zeros had every beat of the next
        // minute rejected as interference.
        //
        // A column over clipped samples, or within the wall filter's
        // settling after them, measures the clipping's distortion, not the
        // receiver's floor: a gain step past full scale holds I and Q at
        // the rails, whose columns read dead, and the edges of the rails
        // spread harmonics over the band, which read as broadband noise.
        // Such a column is clipped (so are the beats over it), and teaches
        // the detector nothing.
        if clip_affected {
            self.detector
                .mark_clipped(self.detector_s(start), self.detector_s(end));
        } else if dead {
            self.detector
                .mark_gap(self.detector_s(start), self.detector_s(end));
        }
        let floor_flag = match self.gain_step_at {
            _ if dead || clip_affected => false,
            Some(step) if start < step && end > step => self.floor_flag,
            Some(step) if start >= step => {
                self.gain_step_at = None;
                // Reported gains give the step exactly. A step measured
                // against the floors before it reads diathermy's floors
                // when the step comes inside a burst (the virtual probe's
                // clipping episodes do): diathermy before and clean signal
                // after put the baseline 20–60 dB down, and every beat of
                // the next minute was rejected as interference.
                if let Some(step_db) = self.gain_step_db.take() {
                    self.interference.shift_level(step_db);
                } else if let Some(before_db) = self.interference.recent_level_db() {
                    let now_db = 10.0 * noise.max(1e-30).log10();
                    self.interference.shift_level(now_db - before_db);
                    // Measured out of a burst, the step cannot tell a burst
                    // that goes on across it from one that ended while the
                    // step's columns were clipped: the first keeps the moved
                    // baseline right, the second leaves it the burst's
                    // excess too low. The burst's end would show as a drop;
                    // if none comes within the hold, the second it was.
                    if self.gain_step_in_burst {
                        self.rebase_at = Some(end + (AMBIGUOUS_STEP_HOLD_S * self.fs) as u64);
                    }
                }
                self.interference.process(noise)
            }
            _ => {
                let flag = self.interference.process(noise);
                match self.rebase_at {
                    Some(_) if !flag => self.rebase_at = None,
                    Some(at) if end >= at => {
                        self.interference.rebase();
                        self.rebase_at = None;
                    }
                    _ => {}
                }
                flag
            }
        };
        self.floor_flag = floor_flag;
        if self.cfg.cancel_lines {
            // The notch sees the column as it came, before the canceller
            // interpolates over the lines it holds: a tone strong enough for
            // the notch is better taken out of the samples (no region of
            // the spectrum hidden). It learns nothing from a column of
            // diathermy (whose noise, over the followers' window, would
            // stand in every bin), clipping or a gap.
            if self.cfg.notch_strong_tones
                && self
                    .notch
                    .observe(&self.power, noise, !clip_affected && !dead && !floor_flag)
            {
                // Until now the tone was read as flow, and its removal
                // is acquired over the next 0.5 s: no beat across that is
                // measured. Unless the line canceller already held it: a
                // tone weak enough for the canceller to see (its side
                // lobes under the floor) and strong enough for the notch
                // was interpolated out of the spectrum from the canceller's
                // declaration on, and is while the notch acquires it (the
                // canceller lets a line go only a second or more after the
                // notch has taken it out: refgen's 2 kHz tone 20 dB under
                // the blood, held from 0.4 s, notched at 1.8 s, settled at
                // 3.3 s, released by the canceller at 5.2 s).
                let t = self.detector_s(end);
                let trusted_s = self.held_by_canceller_s(self.notch.tones_hz());
                self.notch_under_canceller = trusted_s > 0.0;
                if trusted_s < NOTCH_UNTRUSTED_BEFORE_S {
                    let settle_s = if trusted_s > 0.0 { 0.0 } else { NOTCH_SETTLE_S };
                    self.detector
                        .mark_interference(t - NOTCH_UNTRUSTED_BEFORE_S, t - trusted_s + settle_s);
                }
            }
            if self.cfg.notch_strong_tones {
                // Systoles peaking at a forward tone may be its residue.
                let mut tones_cm_s = [0.0_f32; 2];
                let mut n = 0;
                for hz in self.notch.tones_hz().filter(|&hz| hz > 0.0) {
                    if n < tones_cm_s.len() {
                        tones_cm_s[n] = self.velocity_cm_s(hz as f32);
                        n += 1;
                    }
                }
                self.detector
                    .set_notched_tones_cm_s(tones_cm_s[..n].iter().copied());
            }
            if self.cfg.notch_strong_tones
                && self.notch.settling()
                && !(self.notch_under_canceller
                    && self.held_by_canceller_s(self.notch.settling_tones_hz()) > 0.0)
            {
                // Part of a tone still in the spectrum, and not
                // interpolated out of it by the line canceller. (A hold
                // the canceller starts only once the notch has weakened a
                // strong tone does not count: the tone's leakage was over
                // the floor, the settling residue wanders, and a
                // simulator tone at 10⁴× the noise let a false beat
                // through.)
                self.detector
                    .mark_interference(self.detector_s(start), self.detector_s(end));
            }
            self.lines.observe(&self.power, noise);
            self.lines.cancel(&mut self.power);
        }
        let aliased = self.alias.observe(&self.power, noise, start >= settled);
        self.alias_hold = if aliased {
            ALIAS_HOLD_COLUMNS
        } else {
            self.alias_hold.saturating_sub(1)
        };
        // Wrapped flow lifts the floor, which is measured in the reverse
        // half; that is not interference ([`crate::alias`]).
        let mut interference = floor_flag && !(self.alias_hold > 0 && self.alias.middle_quiet());
        if start < self.external_interference_until && end > self.external_interference_from {
            interference = true;
        }
        // The hop's samples teach the I/Q balance only when clean, and not
        // within the wall filter's settling after a clipped block.
        let hop_start = end.saturating_sub(self.hop_len as u64);
        self.iq.commit(
            !interference
                && hop_start >= self.clipped_until.saturating_add(self.iq.settle_samples()),
        );
        self.direction
            .observe(&self.power, noise, !interference && !clip_affected);
        let mut edge = EdgeEstimate::default();
        let recent_alias = self.alias.recent();
        // While the stream aliases, the floor is lifted by the wrapped flow.
        let env_noise = if recent_alias {
            self.alias.noise_per_bin()
        } else {
            noise
        };
        // The leakage floor: a noise level under which the threshold would
        // stand under the strongest flow's side lobes.
        let env_noise = match (
            self.power.get(self.forward_first_bin..),
            self.leakage_threshold_ratio,
        ) {
            (Some(forward), Some(ratio)) => env_noise.max(leakage_threshold(forward) / ratio),
            _ => env_noise,
        };
        if self
            .envelope
            .process(&self.power, env_noise, &mut edge)
            .is_err()
        {
            return;
        }
        // Unwrapping: follow the edge across +fs/2 on the spectrum rotated
        // down by a quarter of the band, or by three eighths when that too
        // reaches its top. A column whose edge gets past both stays aliased
        // (its beat is rejected).
        //
        // A rotation by `r` has its own band edge at bin `r` of the column
        // (−fs/2 + r bins); flow on both sides of it means the edge is past
        // that rotation too. Far past the limit (1.75× and more) the wrapped
        // flow reaches the middle of the reverse half, so the column is not
        // confirmed as aliased; flow across the wider rotation's edge then
        // says so.
        let mut cut = aliased;
        if recent_alias {
            let n = self.power.len();
            let mut unwrapped = false;
            if edge.saturated || aliased {
                for (env, r) in &mut self.unwrap {
                    let r = *r;
                    self.rotated[..n - r].copy_from_slice(&self.power[r..]);
                    self.rotated[n - r..].copy_from_slice(&self.power[..r]);
                    // Each estimator sees every column it may be asked
                    // about (it pools the spectrum's shape), crossed or not.
                    let mut wide = EdgeEstimate::default();
                    if env.process(&self.rotated, env_noise, &mut wide).is_err()
                        || wide.shift_hz <= 0.0
                        || wide.saturated
                        || self.alias.flow_across(&self.power, r)
                    {
                        continue;
                    }
                    let shift_hz = wide.shift_hz + (r as f64 * self.fs / n as f64) as f32;
                    if shift_hz > edge.shift_hz {
                        edge = EdgeEstimate { shift_hz, ..wide };
                    }
                    unwrapped = true;
                    break;
                }
            }
            if unwrapped {
                cut = false;
            } else if self.alias.flow_across(&self.power, self.unwrap[1].1) {
                cut = true;
            }
        }
        self.cut_since_s += self.hop_len as f64 / self.fs;
        if cut {
            self.cut_since_s = 0.0;
            self.detector
                .mark_aliased(self.detector_s(start), self.detector_s(end));
        }
        // A column whose flow reaches the top of the band is not taken for
        // interference (it once was, after two such columns): broadband
        // interference lifts the reverse half too, which the floor detector
        // above sees; flow near the top of a narrow band does not (at 8 kHz,
        // 98 cm/s peaks at 120/min lost 11 % of clean beats to it, and no
        // diathermy test needed it).
        let cal = self.cfg.calibration;
        let scale = cal
            .velocity_true_cm_s_from_measured(self.velocity_per_hz, self.params.beam_angle_deg)
            - cal.velocity_true_cm_s_from_measured(0.0, self.params.beam_angle_deg);
        if self.notching() {
            // The notch learns only where no flow stands at its tones (nor
            // diathermy or clipping anywhere).
            let edge_hz = if interference || clip_affected {
                f64::INFINITY
            } else {
                f64::from(edge.shift_hz)
            };
            self.notch.flow_edge(edge_hz);
        }
        sink.spectrum_column(&SpectrumColumn {
            sample_index: centre,
            t_s,
            power: &self.power,
            zero_bin: self.power.len() / 2,
            bin_hz: self.fs / self.power.len() as f64,
            velocity_cm_s_per_bin: scale * self.fs / self.power.len() as f64,
            noise_power: noise,
            interference,
            narrowband_lines: self.narrowband_lines().len() + self.notched_tones_hz().count(),
        });
        let obscured = self.in_cancelled_line(edge.shift_hz);
        let raw = RawPoint {
            shift_hz: edge.shift_hz.max(0.0),
            edge_snr: edge.snr,
            noise: env_noise,
            plain: !(recent_alias
                || cut
                || edge.saturated
                || interference
                || clip_affected
                || dead
                || obscured
                || !self.narrowband_lines().is_empty()),
            input: DetectorInput {
                sample_index: centre,
                t_s: self.detector_s(centre),
                v_cm_s: self.velocity_cm_s(edge.shift_hz),
                snr: if interference { 0.0 } else { edge.snr },
                clipped: start < self.clipped_until,
                interference,
                gap_before: std::mem::take(&mut self.gap_pending),
                obscured,
                completed_by_sample: end - 1,
            },
        };
        // Median of three in time: removes single-column outliers without
        // moving a monotone edge. Then the window's smear of a moving edge
        // is taken off, from the slope through the neighbours.
        let out = match self.prev {
            [Some(a), Some(b)] => {
                let mut m = b;
                let (x, y, z) = (a.shift_hz, b.shift_hz, raw.shift_hz);
                let mut shift = median3(x, y, z);
                if shift > 0.0 {
                    let hop_s = self.hop_len as f64 / self.fs;
                    let slope = edge_slope_hz_per_ms(self.before_prev_shift_hz, x, y, z, hop_s);
                    let beta = self.envelope.shape_beta();
                    let excess = self
                        .ramp
                        .as_ref()
                        .map_or(0.0, |r| r.excess_hz(b.edge_snr, beta, slope));
                    // A column read again dechirped has no smear to take
                    // off; its plain neighbours do, so the median of three
                    // still removes a single outlier.
                    shift = match self.dechirped_edge_hz(&b, slope) {
                        Some(d) => median3(x - excess, d, z - excess),
                        None => shift - excess,
                    }
                    .max(0.0);
                }
                m.shift_hz = shift;
                m.input.v_cm_s = self.velocity_cm_s(shift);
                m.input.obscured = self.in_cancelled_line(shift);
                m.input.completed_by_sample = end - 1;
                Some(m)
            }
            [None, Some(b)] => Some(b),
            _ => None,
        };
        self.before_prev_shift_hz = self.prev[0].map_or(0.0, |p| p.shift_hz);
        self.prev = [self.prev[1], Some(raw)];
        if let Some(p) = out {
            self.emit_point(p, sink);
        }
        self.check_signal(end, sink);
    }

    /// The edge (Hz) of the column of `b`, the point before the newest,
    /// read from its window dechirped at the sweep `slope_hz_per_ms`
    /// through its neighbours; None when the sweep is under
    /// [`DECHIRP_MIN_SWEEP_BINS`], dechirping is off, the column is not
    /// [`RawPoint::plain`] or its window is no longer at hand, or the
    /// dechirped column shows no edge.
    fn dechirped_edge_hz(&mut self, b: &RawPoint, slope_hz_per_ms: f32) -> Option<f32> {
        let dechirp = self.dechirp.as_ref()?;
        if !b.plain || b.shift_hz <= 0.0 || self.shifted_centre != Some(b.input.sample_index) {
            return None;
        }
        let n = self.power.len() as f64;
        let window_ms = self.window_len as f64 * 1000.0 / self.fs;
        let sweep_bins = (f64::from(slope_hz_per_ms) * window_ms * n / self.fs) as f32;
        if sweep_bins.abs() < DECHIRP_MIN_SWEEP_BINS {
            return None;
        }
        let weights = dechirp.weights(sweep_bins);
        self.dechirped_columns += 1;
        let tail = &self.win[..self.window_len - self.hop_len];
        self.stft
            .process_weighted(&self.shifted, tail, weights, &mut self.chirp_power)
            .ok()?;
        let mut e = EdgeEstimate::default();
        self.envelope
            .process_unpooled(&self.chirp_power, b.noise, &mut e)
            .ok()?;
        (e.shift_hz > 0.0 && !e.saturated).then_some(e.shift_hz)
    }

    /// The spectrum column's (fractional) bin of a shift of `hz`.
    fn bin_of_hz(&self, hz: f64) -> f64 {
        let n = self.power.len() as f64;
        n / 2.0 + hz * n / self.fs
    }

    /// An edge at `shift_hz` may have been moved by a cancelled line: it
    /// lies in the line's region, within a bin above it, or within a main
    /// lobe (3 bins) below it — an edge inside the region reads at its
    /// lower side, as the fill there is the lower of the two sides' levels.
    fn in_cancelled_line(&self, shift_hz: f32) -> bool {
        let bin = self.bin_of_hz(f64::from(shift_hz));
        self.narrowband_lines()
            .iter()
            .any(|&(a, b)| bin >= a as f64 - 3.0 && bin <= b as f64 + 1.0)
    }

    /// How long the line canceller has held every one of `tones_hz` (Hz),
    /// s: the shortest of their holds; 0 when it does not hold one of them,
    /// or with none.
    fn held_by_canceller_s(&self, tones_hz: impl Iterator<Item = f64>) -> f64 {
        let n = self.power.len() as f64;
        let hop_s = self.hop_len as f64 / self.fs;
        let mut held_s = f64::INFINITY;
        for hz in tones_hz {
            let bin = self.bin_of_hz(hz).round();
            let held = (bin >= 0.0 && bin < n)
                .then(|| self.lines.held_columns(bin as usize))
                .flatten();
            held_s = held_s.min(held.map_or(0.0, |c| c as f64 * hop_s));
        }
        if held_s.is_finite() { held_s } else { 0.0 }
    }

    /// Time of `sample` on the beat detector's clock (see `first_sample`), s.
    fn detector_s(&self, sample: u64) -> f64 {
        sample.saturating_sub(self.first_sample.unwrap_or(0)) as f64 / self.fs
    }

    /// The detector's clock's zero on the stream's clock, s.
    fn origin_s(&self) -> f64 {
        self.first_sample.unwrap_or(0) as f64 / self.fs
    }

    /// Calibrated velocity (cm/s) of an edge at `shift_hz` (0: no flow).
    fn velocity_cm_s(&self, shift_hz: f32) -> f32 {
        if shift_hz > 0.0 {
            self.cfg.calibration.velocity_true_cm_s_from_measured(
                f64::from(shift_hz) * self.velocity_per_hz,
                self.params.beam_angle_deg,
            ) as f32
        } else {
            0.0
        }
    }

    fn emit_point(&mut self, p: RawPoint, sink: &mut impl PipelineSink) {
        let q = f64::from(p.input.snr);
        if self.unsettled_len == UNSETTLED_MAX {
            // Cannot happen (the detector settles one point per point); kept
            // so that no point is ever dropped.
            self.pop_unsettled(None, sink);
        }
        self.unsettled[self.unsettled_len] = EnvelopePoint {
            sample_index: p.input.sample_index,
            t_s: p.input.t_s,
            velocity_cm_s: f64::from(p.input.v_cm_s),
            quality: q / (q + 2.0),
        };
        self.unsettled_len += 1;
        let beat = self.detector.process(&p.input);
        // The point the despiker has now settled goes out with the value
        // the detector uses, so that the display and the analysis output
        // never show a spike the beats were not measured on.
        if let Some((t_s, v)) = self.detector.settled_point() {
            while self.unsettled_len > 0 && self.unsettled[0].t_s < t_s {
                self.pop_unsettled(None, sink);
            }
            if self.unsettled_len > 0 && self.unsettled[0].t_s == t_s {
                self.pop_unsettled(Some(v), sink);
            }
        }
        if let Some(mut beat) = beat {
            // From the detector's clock to the stream's.
            let origin_s = self.origin_s();
            for t in [
                &mut beat.onset_s,
                &mut beat.peak_s,
                &mut beat.end_s,
                &mut beat.next_onset_s,
            ] {
                *t += origin_s;
            }
            if beat.accepted {
                self.last_accepted_sample = Some(p.input.completed_by_sample);
                if self.lost {
                    self.lost = false;
                    sink.status(&Status::SignalRegained {
                        t_s: p.input.completed_by_sample as f64 / self.fs,
                    });
                }
            }
            sink.beat(&beat);
        }
    }

    /// Sends the oldest unsettled envelope point, with the detector's
    /// value when given.
    fn pop_unsettled(&mut self, settled_v_cm_s: Option<f32>, sink: &mut impl PipelineSink) {
        let mut point = self.unsettled[0];
        if let Some(v) = settled_v_cm_s {
            point.velocity_cm_s = f64::from(v);
        }
        // Held on the detector's clock (to match its settled points); sent
        // on the stream's.
        point.t_s = point.sample_index as f64 / self.fs;
        self.unsettled.copy_within(1..self.unsettled_len, 0);
        self.unsettled_len -= 1;
        sink.envelope_point(&point);
    }

    /// Sends every unsettled point as it is (end of stream, or the detector
    /// forgets its points).
    fn flush_unsettled(&mut self, sink: &mut impl PipelineSink) {
        while self.unsettled_len > 0 {
            self.pop_unsettled(None, sink);
        }
    }

    fn check_signal(&mut self, end: u64, sink: &mut impl PipelineSink) {
        if self.lost {
            return;
        }
        let since = self.last_accepted_sample.or(self.first_sample).unwrap_or(0);
        if (end.saturating_sub(since)) as f64 / self.fs >= self.cfg.signal_lost_after_s {
            self.lost = true;
            sink.status(&Status::SignalLost {
                t_s: end as f64 / self.fs,
            });
        }
    }
}

/// When the notch declares a tone, the beats of this long before are
/// rejected as `interference` (the tone was read as flow: from the start,
/// the followers need 1.5 s to see it; mid-stream, their window and a block,
/// ≈ 2.3 s)…
const NOTCH_UNTRUSTED_BEFORE_S: f64 = 2.5;
/// …and of this long after (the notch's acquisition, 0.5 s, and a window).
const NOTCH_SETTLE_S: f64 = 0.7;

/// Noise power per bin (LSB²) under which a column is dead: 10 dB under
/// the quantisation noise of 16-bit I/Q samples (1/12 LSB² per component,
/// 1/6 per bin), which any signal spanning more than a few LSB carries in
/// every bin. Measured: uniform ±1 LSB noise reads 1.31, zeros 0.
const DEAD_FLOOR_LSB2: f32 = 1.0 / 60.0;

/// Slope (Hz/ms) of the edge at `b`, the middle of three consecutive edges
/// `a, b, c` (Hz, 0 = no flow) a hop of `hop_s` apart, `z` the edge before
/// `a`. Where `a, b, c` rise or fall together: the median of the three
/// one-sided differences `a − z, b − a, c − b` (a speckle spike steepens
/// one or two of them the opposite way, not the median). Where flow starts
/// or stops beside `b`: the one-sided difference on the flow side. At a
/// turning point: 0 (a peak reads its own height, not a neighbour's).
fn edge_slope_hz_per_ms(z: f32, a: f32, b: f32, c: f32, hop_s: f64) -> f32 {
    let hop_ms = (hop_s * 1000.0) as f32;
    let (d1, d2) = (b - a, c - b);
    match (a > 0.0, c > 0.0) {
        (true, true) if d1 * d2 > 0.0 => {
            let d0 = if z > 0.0 { a - z } else { d1 };
            d0.max(d1).min(d0.min(d1).max(d2)) / hop_ms
        }
        (false, true) if d2 > 0.0 => d2 / hop_ms,
        (true, false) if d1 < 0.0 => d1 / hop_ms,
        _ => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Statuses(Vec<Status>, usize);
    impl PipelineSink for Statuses {
        fn status(&mut self, s: &Status) {
            self.0.push(*s);
        }
        fn spectrum_column(&mut self, _c: &SpectrumColumn<'_>) {
            self.1 += 1;
        }
    }

    fn params() -> StreamParams {
        StreamParams {
            sample_rate_hz: 20_000,
            carrier_hz: 4_000_000,
            beam_angle_deg: 45.0,
        }
    }

    /// The power spectrum of a tone of `amp` at `bin` (fractional) of the
    /// pipeline's transform (200-sample Hann window, 256 bins), no noise.
    fn tone_column(bin: f64, amp: f32) -> Vec<f32> {
        let mut stft = Stft::new(200, 256).unwrap();
        let x: Vec<Complex32> = (0..200)
            .map(|n| {
                let ph = std::f64::consts::TAU * bin * n as f64 / 256.0;
                Complex32::new(amp * ph.cos() as f32, amp * ph.sin() as f32)
            })
            .collect();
        let mut power = vec![0.0; 256];
        stft.process(&x, &mut power).unwrap();
        power
    }

    #[test]
    fn a_tones_side_lobes_stay_under_the_leakage_threshold() {
        // Forward bins from 6 up, tones on and between bins.
        for bin in [20.0, 20.25, 20.5, 40.75, 60.5] {
            let power = tone_column(bin, 1000.0);
            let forward = &power[128 + 6..];
            let threshold = leakage_threshold(forward);
            let (peak_k, peak) = forward
                .iter()
                .copied()
                .enumerate()
                .fold((0, 0.0_f32), |m, (k, v)| if v > m.1 { (k, v) } else { m });
            // The threshold sits near the highest side lobe (−31.5 dB from
            // the main lobe's top) under the tone's three-bin mean:
            // measured 33.5 dB under the peak bin for a tone on a bin, 32.9
            // dB half-way.
            let rel_db = 10.0 * (threshold / peak).log10();
            assert!((-34.5..=-32.0).contains(&rel_db), "{bin}: {rel_db:.1} dB");
            // Past the first side lobe (from 4 bins of the 256-point
            // transform out) no bin reaches it.
            for (k, &v) in forward.iter().enumerate() {
                if k.abs_diff(peak_k) >= 4 {
                    assert!(v < threshold, "{bin}: bin {k}: {v} ≥ {threshold}");
                }
            }
        }
    }

    #[test]
    fn the_leakage_threshold_takes_the_highest_three_bin_mean_at_any_length() {
        let mut x = 0x9e37_79b9_u32;
        for len in 0..40 {
            let forward: Vec<f32> = (0..len)
                .map(|_| {
                    x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    (x >> 8) as f32 / (1 << 24) as f32
                })
                .collect();
            let naive = forward
                .windows(3)
                .map(|w| w[0] + w[1] + w[2])
                .fold(0.0_f32, f32::max)
                / 3.0
                * HANN_PEAK_SIDE_LOBE;
            assert_eq!(leakage_threshold(&forward), naive, "{len} bins");
        }
    }

    #[test]
    fn the_leakage_threshold_is_far_under_a_flat_spectrums_level() {
        // Noise (or a flat band) of level 1: the threshold floor is 31.5 dB
        // under it, far under the noise's own threshold (6.3 dB over it).
        let flat = vec![1.0_f32; 120];
        let floor_db = 10.0 * leakage_threshold(&flat).log10();
        assert!((-31.6..=-31.4).contains(&floor_db), "{floor_db} dB");
    }

    #[test]
    fn reports_gap_and_discontinuity_with_their_times() {
        let mut p = Pipeline::new(PipelineConfig::default(), params()).unwrap();
        let mut s = Statuses::default();
        let block = vec![[100_i16, -100]; 200];
        p.push(0, &block, false, &mut s);
        p.push(200, &block, false, &mut s);
        p.push(1400, &block, false, &mut s); // 1000 samples lost
        p.push(1000, &block, false, &mut s); // step back
        assert_eq!(
            s.0,
            vec![
                Status::Gap {
                    t_s: 0.02,
                    lost_samples: 1000
                },
                Status::Discontinuity { t_s: 0.05 },
            ]
        );
        assert!(s.1 > 0, "columns are produced");
    }

    #[test]
    fn every_column_gives_one_envelope_point_in_order_once_finished() {
        #[derive(Default)]
        struct Points(Vec<f64>, Vec<f64>);
        impl PipelineSink for Points {
            fn spectrum_column(&mut self, c: &SpectrumColumn<'_>) {
                self.0.push(c.t_s);
            }
            fn envelope_point(&mut self, p: &EnvelopePoint) {
                self.1.push(p.t_s);
            }
        }
        let mut p = Pipeline::new(PipelineConfig::default(), params()).unwrap();
        let mut s = Points::default();
        // A 1 kHz tone (steady forward flow), in 137-sample blocks.
        let tone = tone_1khz(40_000);
        for (k, block) in tone.chunks(137).enumerate() {
            p.push((k * 137) as u64, block, false, &mut s);
        }
        // Until `finish`, the detector holds the last points back.
        assert_eq!(s.1.len() + 4, s.0.len());
        p.finish(&mut s);
        assert_eq!(s.1, s.0);
    }

    /// `n` samples of a 1 kHz tone at 20 kHz (steady forward flow).
    fn tone_1khz(n: usize) -> Vec<[i16; 2]> {
        (0..n)
            .map(|i| {
                let ph = std::f64::consts::TAU * 1000.0 * i as f64 / 20_000.0;
                [(3000.0 * ph.cos()) as i16, (3000.0 * ph.sin()) as i16]
            })
            .collect()
    }

    /// A step back ends the segment: its last held points go out before
    /// the status, so that every point after `Discontinuity` is the new
    /// segment's. Until 2026-12-03 they followed it, and a display that
    /// starts afresh at the status drew an old point into the new segment
    /// (found by `dsp/tests/adversarial.rs`).
    #[test]
    fn a_step_back_sends_the_old_segments_points_before_its_status() {
        /// Point times; `None` for the discontinuity.
        #[derive(Default)]
        struct Log(Vec<Option<f64>>);
        impl PipelineSink for Log {
            fn envelope_point(&mut self, p: &EnvelopePoint) {
                self.0.push(Some(p.t_s));
            }
            fn status(&mut self, s: &Status) {
                if let Status::Discontinuity { .. } = s {
                    self.0.push(None);
                }
            }
        }
        let mut p = Pipeline::new(PipelineConfig::default(), params()).unwrap();
        let mut log = Log::default();
        let tone = tone_1khz(20_000);
        for (k, block) in tone.chunks(200).enumerate() {
            p.push((k * 200) as u64, block, false, &mut log);
        }
        for (k, block) in tone[..10_000].chunks(200).enumerate() {
            p.push((k * 200) as u64, block, false, &mut log);
        }
        let at = log
            .0
            .iter()
            .position(Option::is_none)
            .expect("a discontinuity");
        let before: Vec<f64> = log.0[..at].iter().flatten().copied().collect();
        let after: Vec<f64> = log.0[at + 1..].iter().flatten().copied().collect();
        assert!(*before.last().unwrap() > 0.98, "{before:?}");
        assert!(!after.is_empty());
        assert!(after.iter().all(|&t| t < 0.5), "{after:?}");
        for w in before.windows(2).chain(after.windows(2)) {
            assert!(w[0] < w[1], "{w:?}");
        }
    }

    #[test]
    fn survives_a_sample_counter_at_the_top_of_u64() {
        let mut p = Pipeline::new(PipelineConfig::default(), params()).unwrap();
        let mut s = Statuses::default();
        let block = vec![[1_i16, 2]; 1000];
        p.push(u64::MAX - 500, &block, true, &mut s);
        p.push(u64::MAX, &block, false, &mut s);
        p.finish(&mut s);
    }

    #[test]
    fn rejects_unusable_stream_parameters_and_calibration() {
        let mut bad = params();
        bad.beam_angle_deg = 90.0;
        assert!(Pipeline::new(PipelineConfig::default(), bad).is_err());
        let cfg = PipelineConfig {
            calibration: ProbeCalibration {
                gain: 0.0,
                ..ProbeCalibration::default()
            },
            ..PipelineConfig::default()
        };
        assert!(Pipeline::new(cfg, params()).is_err());
        let mut p = Pipeline::new(PipelineConfig::default(), params()).unwrap();
        assert!(
            p.set_calibration(ProbeCalibration {
                gain: f64::NAN,
                ..ProbeCalibration::default()
            })
            .is_err()
        );
        // Finite but absurd: every velocity would be infinite.
        for (gain, offset_cm_s) in [
            (1e-300, 0.0),
            (0.49, 0.0),
            (2.01, 0.0),
            (1.0, 1e308),
            (1.0, -50.1),
        ] {
            let c = ProbeCalibration {
                gain,
                offset_cm_s,
                beam_angle_deg: None,
            };
            assert!(p.set_calibration(c).is_err(), "{c:?}");
        }
        for (gain, offset_cm_s) in [(0.5, 50.0), (2.0, -50.0), (1.07, 0.3)] {
            let c = ProbeCalibration {
                gain,
                offset_cm_s,
                beam_angle_deg: None,
            };
            assert!(p.set_calibration(c).is_ok(), "{c:?}");
        }
    }

    #[test]
    fn calibration_maps_measured_to_true_velocity() {
        let c = ProbeCalibration {
            gain: 1.1,
            offset_cm_s: 2.0,
            beam_angle_deg: None,
        };
        assert!((c.velocity_true_cm_s_from_measured(112.0, 45.0) - 100.0).abs() < 1e-9);
        let a = ProbeCalibration {
            beam_angle_deg: Some(60.0),
            ..ProbeCalibration::default()
        };
        // cos 45° / cos 60° = 1.41421…
        assert!((a.velocity_true_cm_s_from_measured(100.0, 45.0) - 141.421_356).abs() < 1e-5);
    }
}
