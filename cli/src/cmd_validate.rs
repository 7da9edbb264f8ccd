//! `odm validate`: measures the DSP against the virtual probe's exact truth
//! and writes the validation report (docs/validation.md): the envelope
//! estimators' error across SNR and velocity profiles, on the virtual probe
//! and on shaped Gaussian noise, the beat-accuracy grid, and accepted beats
//! inside impairments (which must be 0).

use anyhow::Context;
use odm_device_io::frame::Payload;
use odm_dsp::envelope::EnvelopeMethod;
use odm_dsp::trend::{SvvConfig, SvvMethod, SvvTracker};
use odm_dsp::validation::{
    AbsErrors, ErrorStats, RefBeat, Score, percentile, proportion_lower_bound, quantile_ci, score,
};
use odm_dsp::{Beat, EnvelopePoint, Pipeline, PipelineConfig, PipelineSink, StreamParams};
use odm_simulator::{
    ImpairmentKind, ImpairmentSchedule, SimConfig, SineBeats, VirtualProbe, WarpedShapedNoise,
};
use std::fmt::Write as _;
use std::path::PathBuf;

/// Arguments of `odm validate`.
#[derive(clap::Args)]
pub struct Args {
    /// Where to write the Markdown report.
    #[arg(long, default_value = "docs/validation.md")]
    out: PathBuf,
    /// Seconds of simulated signal per grid cell and seed (10 ..= 3600).
    #[arg(long, default_value_t = 60.0, value_parser = parse_seconds)]
    seconds: f64,
    /// Seeds per grid cell (1 ..= 100).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=100))]
    seeds: u64,
}

#[derive(Default)]
struct Collect {
    beats: Vec<Beat>,
    envelope: Vec<(f64, f64)>,
    keep_envelope: bool,
}

impl PipelineSink for Collect {
    fn beat(&mut self, b: &Beat) {
        self.beats.push(b.clone());
    }
    fn envelope_point(&mut self, p: &EnvelopePoint) {
        if self.keep_envelope {
            self.envelope.push((p.t_s, p.velocity_cm_s));
        }
    }
}

struct RunResult {
    score: Score,
    /// (estimated − true) envelope velocity where the truth exceeds 10 cm/s.
    envelope_errors: Vec<f64>,
    /// Sum of the truth beats' peak velocities, cm/s, and their number.
    truth_pv_sum_cm_s: f64,
    truth_beats: usize,
    /// The truth's premature (ectopic) beats.
    truth_ectopic: usize,
    /// Detected beats and the truth, for the rhythm table.
    beats: Vec<Beat>,
    truth: Vec<RefBeat>,
    /// Signal time the pipeline reported the flow reversed, s.
    reverse_flow_s: f64,
    /// Q's power against I's at the end, dB.
    iq_channel_ratio_db: Option<f64>,
    /// Signal time of columns whose flow wrapped round the band's top, s,
    /// and the velocity the stream carries, cm/s.
    aliased_s: f64,
    max_velocity_cm_s: f64,
}

fn run_sim(sim: SimConfig, cfg: PipelineConfig, envelope: bool) -> anyhow::Result<RunResult> {
    let duration_s = sim.duration_s.context("a finite duration is needed")?;
    let mut probe = VirtualProbe::new(sim).context("simulator configuration")?;
    let mut pipe: Option<Pipeline> = None;
    let mut out = Collect {
        keep_envelope: envelope,
        ..Default::default()
    };
    let mut truth = Vec::new();
    let mut impairments = Vec::new();
    let mut envelope_errors = Vec::new();
    while let Some(p) = probe.next_payload() {
        match p {
            Payload::ProbeInfo(i) if pipe.is_none() => {
                let params = StreamParams {
                    sample_rate_hz: i.sample_rate_hz,
                    carrier_hz: i.carrier_hz,
                    beam_angle_deg: f64::from(i.beam_angle_cdeg) / 100.0,
                };
                pipe = Some(Pipeline::new(cfg, params).context("building the pipeline")?);
            }
            Payload::Iq(b) => {
                if let Some(pl) = pipe.as_mut() {
                    pl.push(b.first_sample, &b.samples, b.clipped(), &mut out);
                }
            }
            _ => {}
        }
        for (t, v) in out.envelope.drain(..) {
            if let Some(tv) = probe.true_velocity_cm_s(t)
                && tv > 10.0
            {
                envelope_errors.push(v - tv);
            }
        }
        truth.extend(probe.take_truth_beats());
        impairments.extend(probe.take_impairments());
    }
    let reverse_flow_s = pipe.as_ref().map_or(0.0, Pipeline::reverse_flow_s);
    let iq_channel_ratio_db = pipe.as_ref().and_then(Pipeline::iq_channel_ratio_db);
    let aliased_s = pipe.as_ref().map_or(0.0, Pipeline::aliased_s);
    let max_velocity_cm_s = pipe.as_ref().map_or(f64::NAN, Pipeline::max_velocity_cm_s);
    if let Some(pl) = pipe.as_mut() {
        pl.finish(&mut out);
    }
    truth.extend(probe.take_truth_beats());
    impairments.extend(probe.take_impairments());
    let refs: Vec<RefBeat> = truth
        .iter()
        .map(|t| RefBeat {
            onset_s: t.onset_s,
            peak_s: t.peak_s,
            end_s: t.end_s,
            next_onset_s: t.next_onset_s,
            sd_cm: t.sd_cm,
            pv_cm_s: t.pv_cm_s,
            hr_bpm: t.hr_bpm,
        })
        .collect();
    let iv: Vec<(f64, f64)> = impairments
        .iter()
        .filter(|i| {
            matches!(
                i.kind,
                ImpairmentKind::Diathermy
                    | ImpairmentKind::Gap
                    | ImpairmentKind::Clipped
                    | ImpairmentKind::Unplugged
            )
        })
        .map(|i| (i.start_s, i.end_s))
        .collect();
    Ok(RunResult {
        score: score(&refs, &out.beats, &iv, (0.0, duration_s), 0.05),
        envelope_errors,
        truth_pv_sum_cm_s: refs.iter().map(|r| r.pv_cm_s).sum(),
        truth_beats: refs.len(),
        truth_ectopic: truth.iter().filter(|t| t.ectopic).count(),
        beats: out.beats,
        truth: refs,
        reverse_flow_s,
        iq_channel_ratio_db,
        aliased_s,
        max_velocity_cm_s,
    })
}

/// SVV readings (%) taken at every beat once the window is full, from a
/// series of `(onset_s, sd_cm)`, and the breathing rates the fit found.
fn svv_readings(method: SvvMethod, series: &[(f64, f64)]) -> (Vec<f64>, Vec<f64>) {
    let cfg = SvvConfig {
        method,
        ..SvvConfig::default()
    };
    let mut tracker = SvvTracker::new(cfg);
    let (mut svv, mut rate) = (Vec::new(), Vec::new());
    for &(t, sd) in series {
        tracker.push_sd(t, sd);
        if t >= cfg.window_s
            && let Some(r) = tracker.reading()
        {
            svv.push(r.svv_pct);
            rate.extend(r.breathing_rate_per_min);
        }
    }
    (svv, rate)
}

/// "median (p5–p95)" of `v`, or a dash.
fn median_and_range(v: &mut [f64]) -> String {
    if v.is_empty() {
        return "—".into();
    }
    v.sort_by(f64::total_cmp);
    let at = |q: f64| odm_dsp::validation::percentile(v, q);
    format!("{:.1} ({:.1}–{:.1})", at(0.5), at(0.05), at(0.95))
}

/// The SVV table: the respiratory fit (default) and max − min, on the
/// accepted beats and on the simulator's own truth series.
fn svv_table(md: &mut String, seconds: f64, seeds: u64) -> anyhow::Result<()> {
    writeln!(
        md,
        "\n## Stroke-volume variation\n\nThe blunt profile (n = 6, peak 30%, FTc 350, SV 70) with the virtual probe's breathing swing of SD (`odm simulate --svv-pct`, peak to peak over the mean, a sine at `--breathing-rate`) and its default beat-to-beat scatter of SD (2%) and of the cycle (3%). SVV is read at every accepted beat once its 30 s window is full, by the respiratory fit (the default, `SvvMethod::RespiratoryFit`: a least-squares sine at the best-fitting breathing rate, fitted with the mean and a linear drift) and by max − min over the mean (`SvvMethod::PeakToPeak`); each as the median (5th–95th percentile) of the readings. \"truth SD\": the same two read from the simulator's own SD series, i.e. with its 2% scatter but no measurement error. The primer's fluid threshold is SVV ≥ 13%. {seconds} s × {seeds} seeds per row.\n"
    )?;
    writeln!(
        md,
        "| HR /min | breaths /min | SNR dB | true SVV % | fit % | fit's breathing rate /min | max − min % | truth SD: fit % | truth SD: max − min % |"
    )?;
    writeln!(md, "|---|---|---|---|---|---|---|---|---|")?;
    let mut rows = Vec::new();
    for hr_bpm in [45.0, 75.0, 140.0] {
        for svv_pct in [0.0, 8.0, 15.0] {
            rows.push((hr_bpm, 12.0, 15.0, svv_pct));
        }
    }
    rows.extend([
        (45.0, 20.0, 15.0, 15.0),
        (75.0, 20.0, 15.0, 8.0),
        (140.0, 30.0, 15.0, 8.0),
        (75.0, 12.0, 8.0, 8.0),
        (75.0, 12.0, 30.0, 8.0),
    ]);
    for (hr_bpm, breaths, snr_db, svv_pct) in rows {
        let (mut fit, mut rate, mut p2p, mut t_fit, mut t_p2p) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for seed in 0..seeds {
            let sim = SimConfig {
                hr_bpm,
                svv_pct,
                breathing_rate_per_min: breaths,
                snr_db: Some(snr_db),
                ..blunt_75(21 + seed, seconds)
            };
            let run = run_sim(sim, PipelineConfig::default(), false)?;
            let measured: Vec<(f64, f64)> = run
                .beats
                .iter()
                .filter(|b| b.accepted)
                .map(|b| (b.onset_s, b.sd_cm))
                .collect();
            let truth: Vec<(f64, f64)> = run.truth.iter().map(|t| (t.onset_s, t.sd_cm)).collect();
            let (f, r) = svv_readings(SvvMethod::RespiratoryFit, &measured);
            fit.extend(f);
            rate.extend(r);
            p2p.extend(svv_readings(SvvMethod::PeakToPeak, &measured).0);
            t_fit.extend(svv_readings(SvvMethod::RespiratoryFit, &truth).0);
            t_p2p.extend(svv_readings(SvvMethod::PeakToPeak, &truth).0);
        }
        writeln!(
            md,
            "| {hr_bpm} | {breaths} | {snr_db} | {svv_pct} | {} | {} | {} | {} | {} |",
            median_and_range(&mut fit),
            median_and_range(&mut rate),
            median_and_range(&mut p2p),
            median_and_range(&mut t_fit),
            median_and_range(&mut t_p2p),
        )?;
    }
    Ok(())
}

/// The blunt profile (n = 6, peak 30 %, FTc 350, SV 70) at 15 dB and
/// 75/min: the base of the low-flow and stream-parameter tables.
fn blunt_75(seed: u64, seconds: f64) -> SimConfig {
    SimConfig {
        seed,
        duration_s: Some(seconds),
        snr_db: Some(15.0),
        hr_bpm: 75.0,
        profile_exponent: 6.0,
        peak_frac: 0.3,
        ftc_ms: 350.0,
        sv_ml: 70.0,
        ..SimConfig::default()
    }
}

/// Scores the default pipeline on `seconds` of quarter-sine beats at
/// `hr_bpm` on warped shaped noise of shape `beta` (peak edge 100 cm/s).
fn run_sine_beats(
    seconds: f64,
    hr_bpm: f64,
    beta: f64,
    snr_db: f64,
    seed: u64,
) -> anyhow::Result<Score> {
    const V_MAX_CM_S: f64 = 100.0;
    let params = StreamParams {
        sample_rate_hz: 20_000,
        carrier_hz: 4_000_000,
        beam_angle_deg: 45.0,
    };
    let train = SineBeats::new(seconds, hr_bpm, seed);
    let iq = WarpedShapedNoise {
        sample_rate_hz: f64::from(params.sample_rate_hz),
        edge_hz: params.shift_hz_from_velocity_cm_s(V_MAX_CM_S),
        beta,
        snr_db,
        seed,
    }
    .generate(seconds, |t| train.rate(t));
    let truth: Vec<RefBeat> = train
        .beats
        .iter()
        .map(|b| RefBeat {
            onset_s: b.onset_s,
            peak_s: b.peak_s(),
            end_s: b.end_s(),
            next_onset_s: b.next_onset_s(),
            sd_cm: b.sd_cm(V_MAX_CM_S),
            pv_cm_s: V_MAX_CM_S * b.amplitude,
            hr_bpm: 60.0 / b.cycle_s,
        })
        .collect();
    let mut pipe = Pipeline::new(PipelineConfig::default(), params).context("pipeline")?;
    let mut out = Collect::default();
    for (i, chunk) in iq.chunks(200).enumerate() {
        pipe.push((i * 200) as u64, chunk, false, &mut out);
    }
    pipe.finish(&mut out);
    Ok(score(&truth, &out.beats, &[], (0.0, seconds), 0.05))
}

fn median_abs(v: &[f64]) -> (f64, f64, f64) {
    let mut s: Vec<f64> = v.to_vec();
    s.sort_by(f64::total_cmp);
    let bias = odm_dsp::validation::percentile(&s, 0.5);
    let mut a: Vec<f64> = v.iter().map(|x| x.abs()).collect();
    a.sort_by(f64::total_cmp);
    (
        bias,
        odm_dsp::validation::percentile(&a, 0.5),
        odm_dsp::validation::percentile(&a, 0.95),
    )
}

/// Runs `odm validate`.
pub fn run(args: Args) -> anyhow::Result<()> {
    run_inner(args)
}

fn merge(scores: &[Score]) -> (usize, usize, usize, usize, usize) {
    scores.iter().fold((0, 0, 0, 0, 0), |a, s| {
        (
            a.0 + s.truth_eligible,
            a.1 + s.truth_matched,
            a.2 + s.detected_clean,
            a.3 + s.detected_matched,
            a.4 + s.accepted_in_impairment,
        )
    })
}

/// One cell of the accuracy grid, for the goals summary.
struct Cell {
    name: &'static str,
    snr: f64,
    hr: f64,
    /// Truth eligible, truth matched, detected clean, detected matched.
    counts: (usize, usize, usize, usize),
    onset_ms: f64,
    ft_ms: f64,
    sd_pct: f64,
    pv_pct: f64,
    hr_p95: f64,
    /// p95 |error| of the display's mean HR (`Score::hr_display_bpm`).
    hr_display_p95: f64,
    /// The absolute errors of every seed's beats, pooled.
    abs: AbsErrors,
}

/// Scatterer groups of the density check's denser virtual probe (4× its
/// default).
const DENSE_SCATTERERS: usize = 192;

/// Runs the beat grid (every profile × `snrs` × 45/75/140 per min, the
/// seeds of `args`) on a virtual probe of `scatterers` groups and writes its
/// table to `md`.
fn grid_table(
    md: &mut String,
    args: &Args,
    snrs: &[f64],
    scatterers: usize,
) -> anyhow::Result<Vec<Cell>> {
    writeln!(
        md,
        "| profile | SNR dB | HR /min | sens | PPV | onset \\|e\\| (bias) | FT \\|e\\| (bias) | SD \\|e\\|% (bias) | PV \\|e\\|% (bias) | HR \\|e\\| / p95 | displayed HR p95 | FT p95 \\|e\\| | MA \\|e\\|% (bias) |"
    )?;
    writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|---|---|")?;
    // Per cell: (profile, SNR, HR, merged counts, mean medians).
    let mut cells: Vec<Cell> = Vec::new();
    for profile in odm_dsp::validation::GRID_PROFILES {
        let (name, n, peak, ftc, sv) = (
            profile.name,
            profile.profile_exponent,
            profile.peak_frac,
            profile.ftc_ms,
            profile.sv_ml,
        );
        for &snr in snrs {
            for hr in [45.0, 75.0, 140.0] {
                let mut scores = Vec::new();
                for seed in 0..args.seeds {
                    let sim = SimConfig {
                        seed: 7 + seed,
                        duration_s: Some(args.seconds),
                        snr_db: Some(snr),
                        hr_bpm: hr,
                        profile_exponent: n,
                        peak_frac: peak,
                        ftc_ms: ftc,
                        sv_ml: sv,
                        scatterer_count: scatterers,
                        ..SimConfig::default()
                    };
                    scores.push(run_sim(sim, PipelineConfig::default(), false)?.score);
                }
                let (te, tm, dc, dm, _) = merge(&scores);
                let m = |f: fn(&Score) -> f64| mean(scores.iter().map(f));
                cells.push(Cell {
                    name,
                    snr,
                    hr,
                    counts: (te, tm, dc, dm),
                    onset_ms: m(|s| s.onset_ms.median_abs),
                    ft_ms: m(|s| s.ft_ms.median_abs),
                    sd_pct: m(|s| s.sd_pct.median_abs),
                    pv_pct: m(|s| s.pv_pct.median_abs),
                    hr_p95: m(|s| s.hr_bpm.p95_abs),
                    hr_display_p95: m(|s| s.hr_display_bpm.p95_abs),
                    abs: scores.iter().fold(AbsErrors::default(), |mut a, s| {
                        a.extend(&s.abs);
                        a
                    }),
                });
                let shown_p95 = cells.last().map_or(f64::NAN, |c| c.hr_display_p95);
                writeln!(
                    md,
                    "| {name} | {snr} | {hr} | {} | {shown_p95:.2} | {:.1} | {:.1} ({:+.1}) |",
                    score_columns(&scores),
                    m(|s| s.ft_ms.p95_abs),
                    m(|s| s.ma_pct.median_abs),
                    m(|s| s.ma_pct.median),
                )?;
            }
        }
        eprintln!("grid for {name} ({scatterers} scatterers) done");
    }
    Ok(cells)
}

/// The grid's per-cell columns from the scores of its seeds: sensitivity,
/// PPV (merged counts), then the mean over seeds of each median error with
/// its bias, and HR median / p95.
fn score_columns(scores: &[Score]) -> String {
    let (te, tm, dc, dm, _) = merge(scores);
    let m = |f: fn(&Score) -> f64| mean(scores.iter().map(f));
    format!(
        "{:.4} | {:.4} | {:.1} ({:+.1}) | {:.1} ({:+.1}) | {:.1} ({:+.1}) | {:.1} ({:+.1}) | {:.2} / {:.2}",
        tm as f64 / te.max(1) as f64,
        dm as f64 / dc.max(1) as f64,
        m(|s| s.onset_ms.median_abs),
        m(|s| s.onset_ms.median),
        m(|s| s.ft_ms.median_abs),
        m(|s| s.ft_ms.median),
        m(|s| s.sd_pct.median_abs),
        m(|s| s.sd_pct.median),
        m(|s| s.pv_pct.median_abs),
        m(|s| s.pv_pct.median),
        m(|s| s.hr_bpm.median_abs),
        m(|s| s.hr_bpm.p95_abs),
    )
}

/// The rhythm table's columns after rhythm and rate: sensitivity, PPV, the
/// truth's premature beats, beats rejected as ectopic, accepted over
/// detected, the accepted beats' mean HR and SD against the truth's (%),
/// and HR median / p95 |error| — summed or pooled over the runs.
fn rhythm_columns(runs: &[RunResult]) -> RhythmColumns {
    let scores: Vec<Score> = runs.iter().map(|r| r.score.clone()).collect();
    let (te, tm, dc, dm, _) = merge(&scores);
    let ectopic = runs
        .iter()
        .flat_map(|r| &r.beats)
        .filter(|b| b.reject_reason == Some(odm_dsp::RejectReason::Ectopic))
        .count();
    let detected: usize = runs.iter().map(|r| r.beats.len()).sum();
    let accepted: Vec<&Beat> = runs
        .iter()
        .flat_map(|r| &r.beats)
        .filter(|b| b.accepted)
        .collect();
    let truth: Vec<&RefBeat> = runs.iter().flat_map(|r| &r.truth).collect();
    let rel = |a: f64, t: f64| 100.0 * (a / t - 1.0);
    let mean_of = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let hr_acc = mean_of(&accepted.iter().map(|b| b.hr_bpm).collect::<Vec<_>>());
    let hr_true = mean_of(&truth.iter().map(|t| t.hr_bpm).collect::<Vec<_>>());
    let sd_acc = mean_of(&accepted.iter().map(|b| b.sd_cm).collect::<Vec<_>>());
    let sd_true = mean_of(&truth.iter().map(|t| t.sd_cm).collect::<Vec<_>>());
    let m = |f: fn(&Score) -> f64| mean(scores.iter().map(f));
    let (hr_pct, sd_pct) = (rel(hr_acc, hr_true), rel(sd_acc, sd_true));
    RhythmColumns {
        text: format!(
            "{:.4} | {:.4} | {} | {ectopic} | {:.3} | {hr_pct:+.1} | {sd_pct:+.1} | {:.2} / {:.2}",
            tm as f64 / te.max(1) as f64,
            dm as f64 / dc.max(1) as f64,
            runs.iter().map(|r| r.truth_ectopic).sum::<usize>(),
            accepted.len() as f64 / detected.max(1) as f64,
            m(|s| s.hr_bpm.median_abs),
            m(|s| s.hr_bpm.p95_abs),
        ),
        ectopic,
        hr_pct,
        sd_pct,
    }
}

/// [`rhythm_columns`]: the table's cells, and the numbers the "without"
/// columns repeat.
struct RhythmColumns {
    text: String,
    ectopic: usize,
    hr_pct: f64,
    sd_pct: f64,
}

/// The goals against the grid: pooled sensitivity and PPV, and the
/// worst cell of each median error, with where it is.
fn goals_summary(md: &mut String, cells: &[Cell]) -> anyhow::Result<()> {
    writeln!(md, "\n### Against the goals\n")?;
    writeln!(
        md,
        "Pooled over the grid's cells; for the per-beat errors, the worst cell's value (cell medians as in the table). A pooled rate's lower bound is the lower end of its two-sided 95 % Clopper–Pearson interval (`odm_dsp::validation::proportion_lower_bound`).\n"
    )?;
    writeln!(md, "| goal | target | measured | worst cell | met |")?;
    writeln!(md, "|---|---|---|---|---|")?;
    let pooled = |pick: &dyn Fn(&Cell) -> bool| {
        let c = cells.iter().filter(|c| pick(c)).fold((0, 0, 0, 0), |a, c| {
            (
                a.0 + c.counts.0,
                a.1 + c.counts.1,
                a.2 + c.counts.2,
                a.3 + c.counts.3,
            )
        });
        // Each rate with the lower end of its 95 % Clopper–Pearson interval.
        (
            (
                c.1 as f64 / c.0.max(1) as f64,
                proportion_lower_bound(c.1, c.0, 0.95),
            ),
            (
                c.3 as f64 / c.2.max(1) as f64,
                proportion_lower_bound(c.3, c.2, 0.95),
            ),
        )
    };
    let worst_rate = |pick: &dyn Fn(&Cell) -> bool, sens: bool| {
        cells
            .iter()
            .filter(|c| pick(c))
            .map(|c| {
                let v = if sens {
                    c.counts.1 as f64 / c.counts.0.max(1) as f64
                } else {
                    c.counts.3 as f64 / c.counts.2.max(1) as f64
                };
                (v, format!("{} {} dB {}/min", c.name, c.snr, c.hr))
            })
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .unwrap_or((f64::NAN, String::new()))
    };
    let clean = |c: &Cell| c.snr >= 15.0;
    let noisy = |c: &Cell| c.snr < 15.0;
    let (s15, p15) = pooled(&clean);
    let (s8, p8) = pooled(&noisy);
    let yes = |ok: bool| if ok { "yes" } else { "**no**" };
    for (goal, target, (value, lower), worst, ok) in [
        (
            "sensitivity, SNR ≥ 15 dB",
            "≥ 0.995",
            s15,
            worst_rate(&clean, true),
            s15.0 >= 0.995,
        ),
        (
            "PPV, SNR ≥ 15 dB",
            "≥ 0.995",
            p15,
            worst_rate(&clean, false),
            p15.0 >= 0.995,
        ),
        (
            "sensitivity, 8 dB",
            "≥ 0.95",
            s8,
            worst_rate(&noisy, true),
            s8.0 >= 0.95,
        ),
        (
            "PPV, 8 dB",
            "≥ 0.99",
            p8,
            worst_rate(&noisy, false),
            p8.0 >= 0.99,
        ),
    ] {
        writeln!(
            md,
            "| {goal} | {target} | {value:.4} (95 % lower bound {lower:.4}) | {:.4} ({}) | {} |",
            worst.0,
            worst.1,
            yes(ok)
        )?;
    }
    let worst = |f: fn(&Cell) -> f64| {
        cells
            .iter()
            .filter(|c| clean(c))
            .map(|c| (f(c), format!("{} {} dB {}/min", c.name, c.snr, c.hr)))
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .unwrap_or((f64::NAN, String::new()))
    };
    for (goal, target, limit, f) in [
        (
            "median \\|onset error\\|, ms",
            "≤ 5",
            5.0,
            (|c: &Cell| c.onset_ms) as fn(&Cell) -> f64,
        ),
        ("median \\|FT error\\|, ms", "≤ 5", 5.0, |c: &Cell| {
            c.ft_ms
        }),
        ("median \\|SD error\\|, %", "≤ 3", 3.0, |c: &Cell| {
            c.sd_pct
        }),
        ("median \\|PV error\\|, %", "≤ 3", 3.0, |c: &Cell| {
            c.pv_pct
        }),
        ("HR p95 \\|error\\|, 1/min", "≤ 1", 1.0, |c: &Cell| {
            c.hr_p95
        }),
    ] {
        let (v, at) = worst(f);
        let within = cells.iter().filter(|c| clean(c) && f(c) <= limit).count();
        let n = cells.iter().filter(|c| clean(c)).count();
        writeln!(
            md,
            "| {goal}, SNR ≥ 15 dB | {target} | {within} of {n} cells within | {v:.2} ({at}) | {} |",
            yes(within == n)
        )?;
    }
    let (v, at) = worst(|c: &Cell| c.hr_display_p95);
    writeln!(
        md,
        "\nNot a goal, for context: the heart rate the monitor displays, the mean over {} accepted beats, is within {v:.2}/min (p95) in every cell at SNR ≥ 15 dB (worst: {at}). A beat's cycle is the difference of two onsets, so its onset errors enter the per-beat HR twice and with opposite signs in consecutive beats; over a run of beats they cancel but for the first and the last.",
        odm_dsp::trend::DEFAULT_AVERAGE_BEATS
    )?;
    goals_confidence(md, cells)
}

/// How sure the per-beat goal counts are: each clean cell's statistic from
/// the pooled beats of its seeds, with a distribution-free 95 % interval,
/// and the cells whose interval lies under, across or over the target.
fn goals_confidence(md: &mut String, cells: &[Cell]) -> anyhow::Result<()> {
    writeln!(md, "\n### How sure these counts are\n")?;
    let beats: Vec<usize> = cells
        .iter()
        .filter(|c| c.snr >= 15.0)
        .map(|c| c.abs.onset_ms.len())
        .collect();
    writeln!(
        md,
        "A cell's statistic comes from {}–{} matched beats (both seeds), so it carries sampling error. Here each clean cell's statistic is taken over the pooled beats of its seeds (so it can differ in the last digit from the mean of the seeds' values above) with a 95 % confidence interval between two order statistics chosen from the binomial distribution (`odm_dsp::validation::quantile_ci`: exact for independent beats, whatever their distribution). Beats are nearly independent, but consecutive heart rates share an onset, so the heart rate's interval is approximate. A cell is *within* when its whole interval is at or under the target, *over* when the whole interval is above it, and *undecided* when the interval holds the target.\n",
        beats.iter().min().unwrap_or(&0),
        beats.iter().max().unwrap_or(&0),
    )?;
    writeln!(
        md,
        "| goal | target | within | undecided | over | the cells not within: statistic [95 % interval] |"
    )?;
    writeln!(md, "|---|---|---|---|---|---|")?;
    type Pick = fn(&AbsErrors) -> &Vec<f64>;
    for (goal, target, limit, q, pick) in [
        (
            "median \\|onset error\\|, ms",
            "≤ 5",
            5.0,
            0.5,
            (|a: &AbsErrors| &a.onset_ms) as Pick,
        ),
        ("median \\|FT error\\|, ms", "≤ 5", 5.0, 0.5, |a| &a.ft_ms),
        ("median \\|SD error\\|, %", "≤ 3", 3.0, 0.5, |a| &a.sd_pct),
        ("median \\|PV error\\|, %", "≤ 3", 3.0, 0.5, |a| &a.pv_pct),
        ("HR p95 \\|error\\|, 1/min", "≤ 1", 1.0, 0.95, |a| {
            &a.hr_bpm
        }),
    ] {
        let (mut within, mut undecided, mut over) = (0, 0, 0);
        let mut listed = Vec::new();
        for c in cells.iter().filter(|c| c.snr >= 15.0) {
            let v = pick(&c.abs);
            let stat = percentile(v, q);
            let ci = quantile_ci(v, q, 0.95);
            match ci {
                Some((_, hi)) if hi <= limit => within += 1,
                Some((lo, _)) if lo > limit => over += 1,
                _ => undecided += 1,
            }
            if ci.is_none_or(|(_, hi)| hi > limit) {
                let interval = ci.map_or("[too few beats]".to_string(), |(lo, hi)| {
                    format!("[{lo:.2}, {hi:.2}]")
                });
                listed.push(format!(
                    "{} {} dB {}/min {stat:.2} {interval}",
                    c.name, c.snr, c.hr
                ));
            }
        }
        writeln!(
            md,
            "| {goal} | {target} | {within} | {undecided} | {over} | {} |",
            if listed.is_empty() {
                "—".to_string()
            } else {
                listed.join("; ")
            }
        )?;
    }
    Ok(())
}

/// Header of an estimator table whose first columns are `lead` (cells
/// separated by `|`), then bias, |e| and p95 per estimator.
fn estimator_table_header(md: &mut String, lead: &str) -> anyhow::Result<()> {
    write!(md, "| {lead} |")?;
    for m in EnvelopeMethod::ALL {
        write!(md, " {} bias | \\|e\\| | p95 |", m.name())?;
    }
    writeln!(md)?;
    write!(md, "|{}", "---|".repeat(lead.split('|').count()))?;
    for _ in EnvelopeMethod::ALL {
        write!(md, "---|---|---|")?;
    }
    writeln!(md)?;
    Ok(())
}

/// Envelope errors (cm/s) of the envelope stage `envelope` on 6.5 s of
/// shaped Gaussian noise (density `q^gamma (1 − q)^beta`) with its edge at
/// `edge_cm_s`, after the first second.
fn shaped_noise_errors(
    envelope: odm_dsp::envelope::EnvelopeConfig,
    edge_cm_s: f64,
    (beta, gamma): (f64, f64),
    snr_db: f64,
    seed: u64,
) -> anyhow::Result<Vec<f64>> {
    let params = StreamParams {
        sample_rate_hz: 20_000,
        carrier_hz: 4_000_000,
        beam_angle_deg: 45.0,
    };
    let iq = odm_simulator::ShapedNoise {
        sample_rate_hz: f64::from(params.sample_rate_hz),
        edge_hz: params.shift_hz_from_velocity_cm_s(edge_cm_s),
        beta,
        gamma,
        snr_db,
        noise_rms_counts: 150.0,
        seed,
    }
    .generate(1 << 17);
    let cfg = PipelineConfig {
        envelope,
        ..Default::default()
    };
    let mut pipe = Pipeline::new(cfg, params).context("building the pipeline")?;
    let mut out = Collect {
        keep_envelope: true,
        ..Default::default()
    };
    for (i, chunk) in iq.chunks(200).enumerate() {
        pipe.push((i * 200) as u64, chunk, false, &mut out);
    }
    Ok(out
        .envelope
        .iter()
        .filter(|(t, _)| *t >= 1.0)
        .map(|(_, v)| v - edge_cm_s)
        .collect())
}

fn mean(v: impl Iterator<Item = f64>) -> f64 {
    let (s, n) = v.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    s / n.max(1) as f64
}

fn parse_seconds(s: &str) -> Result<f64, String> {
    crate::cmd_analyse::parse_in(s, 10.0, 3600.0, "seconds")
}

fn run_inner(args: Args) -> anyhow::Result<()> {
    let mut md = String::new();
    let cmd = format!(
        "odm validate --out {} --seconds {} --seeds {}",
        args.out.display(),
        args.seconds,
        args.seeds
    );
    writeln!(md, "# DSP validation against the virtual probe\n")?;
    writeln!(
        md,
        "Generated by `{cmd}` with odm {} (odm-dsp default `PipelineConfig`).",
        env!("CARGO_PKG_VERSION")
    )?;
    writeln!(
        md,
        "Truth: `odm-simulator` exact beats and envelope. Matching: truth ↔ detected onset within ±50 ms; truth beats within 50 ms of an impairment or 0.5 s of the stream ends are not scored. Errors are detected − truth.\n"
    )?;

    // 1. Estimator comparison on the virtual probe, per velocity profile.
    writeln!(md, "## Envelope estimators: error vs SNR\n")?;
    writeln!(
        md,
        "Envelope error (cm/s) where the true velocity exceeds 10 cm/s, 75/min, {} s × {} seeds per cell, for a flat (parabolic, n = 2) and two edge-peaked (blunt, n = 6 and n = 9) velocity profiles. bias = median signed error; |e| = median absolute; p95 = 95th percentile of |e|. The virtual probe sums 48 scatterer groups, so its spectrum is a set of fading lines, not a continuum.\n",
        args.seconds.min(30.0),
        args.seeds
    )?;
    estimator_table_header(&mut md, "profile | SNR dB")?;
    for (label, n) in [("flat n=2", 2.0), ("blunt n=6", 6.0), ("blunter n=9", 9.0)] {
        for snr in [5.0, 10.0, 15.0, 20.0, 25.0, 30.0] {
            write!(md, "| {label} | {snr} |")?;
            for m in EnvelopeMethod::ALL {
                let mut errs = Vec::new();
                for seed in 0..args.seeds {
                    let mut cfg = PipelineConfig::default();
                    cfg.envelope.method = m;
                    let sim = SimConfig {
                        seed: 100 + seed,
                        duration_s: Some(args.seconds.min(30.0)),
                        snr_db: Some(snr),
                        profile_exponent: n,
                        ..SimConfig::default()
                    };
                    errs.extend(run_sim(sim, cfg, true)?.envelope_errors);
                }
                let (b, a, p) = median_abs(&errs);
                write!(md, " {b:+.2} | {a:.2} | {p:.2} |")?;
            }
            writeln!(md)?;
        }
        eprintln!("estimators on {label} done");
    }

    // 1b. The same on shaped Gaussian noise (independent of the scatterers).
    writeln!(md, "\n## Envelope estimators on shaped Gaussian noise\n")?;
    writeln!(
        md,
        "Stationary complex Gaussian noise whose spectrum is `∝ (1 − f/f_e)^β` below a known edge `f_e` (`odm_simulator::ShapedNoise`, the primer's second ground-truth method; independent of the virtual probe's scatterer model), plus white noise at the SNR; 6.5 s per cell, the first second not scored. bias = median of (envelope − edge velocity), cm/s; |e|, p95 as above. β = 0 is a parabolic profile's flat spectrum, −2/3 and −7/9 blunt profiles (n = 6, 9).\n"
    )?;
    estimator_table_header(&mut md, "β | edge cm/s | SNR dB")?;
    for beta in [0.0, -0.5, -2.0 / 3.0, -7.0 / 9.0] {
        for v in [40.0, 80.0, 120.0] {
            for snr in [8.0, 15.0, 30.0] {
                write!(md, "| {beta:+.2} | {v} | {snr} |")?;
                for m in EnvelopeMethod::ALL {
                    let cfg = odm_dsp::envelope::EnvelopeConfig {
                        method: m,
                        ..Default::default()
                    };
                    let errs = shaped_noise_errors(cfg, v, (beta, 0.0), snr, 7)?;
                    let (b, a, p) = median_abs(&errs);
                    write!(md, " {b:+.2} | {a:.2} | {p:.2} |")?;
                }
                writeln!(md)?;
            }
        }
    }
    writeln!(
        md,
        "\nA distribution beyond that family: density `3q²` of `q = f/f_e` (few slow cells, most of the blood near the maximum, level at the edge; `ShapedNoise::gamma` = 2, β = 0). Its lower bands balance like no member of the family; the shape fit reads it with the two-parameter model `q^γ (1 − q)^β` (docs/dsp.md, \"Shape beyond the family\"), and, for comparison, as the family's most edge-peaked member (`EnvelopeConfig::shape_tilt` off, as before 2026-12-04).\n"
    )?;
    writeln!(
        md,
        "| edge cm/s | SNR dB | shape-fit bias | \\|e\\| | p95 | family only bias | \\|e\\| | p95 |\n|---|---|---|---|---|---|---|---|"
    )?;
    for v in [40.0, 50.0, 80.0, 120.0] {
        for snr in [8.0, 15.0, 30.0] {
            write!(md, "| {v} | {snr} |")?;
            for shape_tilt in [true, false] {
                let cfg = odm_dsp::envelope::EnvelopeConfig {
                    shape_tilt,
                    ..Default::default()
                };
                let errs = shaped_noise_errors(cfg, v, (0.0, 2.0), snr, 7)?;
                let (b, a, p) = median_abs(&errs);
                write!(md, " {b:+.2} | {a:.2} | {p:.2} |")?;
            }
            writeln!(md)?;
        }
    }
    eprintln!("shaped noise done");

    // 2. Accuracy grid.
    writeln!(md, "\n## Beat accuracy grid\n")?;
    writeln!(
        md,
        "{} s × {} seeds per cell. sens = matched/eligible truth beats; PPV = matched/clean detected beats; onset, FT: median |error| (ms) and bias; SD, PV: median |error| (%) and bias; HR: median and p95 |error| (1/min); displayed HR: p95 |error| (1/min) of the mean over {} consecutive accepted beats, the monitor's numeric display, against the mean of the same truth beats; FT p95: the 95th percentile of the per-beat |FT error| (ms), the tail that the median hides (no goal); MA: median |error| (%) and bias of the mean acceleration PV / (peak − onset), which no goal covers (the peak's time on a rounded peak is the least certain of a beat's times).\n",
        args.seconds,
        args.seeds,
        odm_dsp::trend::DEFAULT_AVERAGE_BEATS
    )?;
    let default_scatterers = SimConfig::default().scatterer_count;
    let cells = grid_table(&mut md, &args, &[8.0, 15.0, 30.0], default_scatterers)?;
    goals_summary(&mut md, &cells)?;

    // 2b. The same grid with a denser scatterer model.
    writeln!(
        md,
        "\n## Scatterer density check\n\nThe virtual probe sums {default_scatterers} scatterer groups. On a flat (parabolic) profile their highest velocity is on average 1/{} of the edge below it and fades with each group, while the truth is the edge itself: part of the grid's parabolic error is the reference's, not the estimator's. The clean cells again with {DENSE_SCATTERERS} groups (same seeds; the profile and its truth are unchanged):\n",
        default_scatterers + 1
    )?;
    let dense = grid_table(&mut md, &args, &[15.0, 30.0], DENSE_SCATTERERS)?;
    let within = |f: fn(&Cell) -> f64, goal: f64| dense.iter().filter(|c| f(c) <= goal).count();
    writeln!(
        md,
        "\nWithin the goal, of {} cells: onset {}, FT {}, SD {}, PV {}, HR p95 {}.",
        dense.len(),
        within(|c| c.onset_ms, 5.0),
        within(|c| c.ft_ms, 5.0),
        within(|c| c.sd_pct, 3.0),
        within(|c| c.pv_pct, 3.0),
        within(|c| c.hr_p95, 1.0),
    )?;
    eprintln!("density check done");

    // 2c. Low flow: the blunt profile with small stroke volumes.
    writeln!(
        md,
        "\n## Low flow\n\nThe blunt profile (n = 6, peak 30%, FTc 350) at 15 dB and 75/min with smaller stroke volumes, i.e. lower peak velocities (low-output states, where the fluid decision is made). {} s × {} seeds per row; columns as in the grid; PV = the truth's mean peak velocity. Below PV ≈ 45 cm/s the edges' fit bands are cut from below by the envelope's floor (the wall band, ≈ 13 cm/s) and FT reads long (docs/dsp.md, \"Known limits\"). Flagged: the accepted beats whose FT the analysis itself calls less certain for low flow (`ft_low_flow`: PV under 4 × the floor, 51 cm/s here), which the monitor marks.\n",
        args.seconds, args.seeds
    )?;
    writeln!(
        md,
        "| SV ml | PV cm/s | sens | PPV | onset \\|e\\| (bias) | FT \\|e\\| (bias) | SD \\|e\\|% (bias) | PV \\|e\\|% (bias) | HR \\|e\\| / p95 | flagged |"
    )?;
    writeln!(md, "|---|---|---|---|---|---|---|---|---|---|")?;
    for sv in [20.0, 30.0, 45.0, 70.0] {
        let mut scores = Vec::new();
        let mut pv_sum = (0.0, 0usize);
        let (mut flagged, mut accepted) = (0usize, 0usize);
        for seed in 0..args.seeds {
            let sim = SimConfig {
                sv_ml: sv,
                ..blunt_75(7 + seed, args.seconds)
            };
            let r = run_sim(sim, PipelineConfig::default(), false)?;
            pv_sum.0 += r.truth_pv_sum_cm_s;
            pv_sum.1 += r.truth_beats;
            let ok = r.beats.iter().filter(|b| b.accepted);
            flagged += ok.clone().filter(|b| b.ft_low_flow).count();
            accepted += ok.count();
            scores.push(r.score);
        }
        writeln!(
            md,
            "| {sv} | {:.0} | {} | {:.0} % |",
            pv_sum.0 / pv_sum.1.max(1) as f64,
            score_columns(&scores),
            100.0 * flagged as f64 / accepted.max(1) as f64
        )?;
    }
    eprintln!("low flow done");

    // 2c'. The heart-rate range the detector is required to cover.
    writeln!(
        md,
        "\n## Heart-rate range\n\nThe blunt profile (n = 6, peak 30%, FTc 350, SV 70) at 15 dB over the 40–180/min the beat detector must cover (the grid's rates are 45, 75 and 140). {} s × {} seeds per row; columns as in the grid. HR p95 is in 1/min: at 180/min (cycle 333 ms) 1/min is 1.9 ms of cycle.\n",
        args.seconds, args.seeds
    )?;
    writeln!(
        md,
        "| HR /min | sens | PPV | onset \\|e\\| (bias) | FT \\|e\\| (bias) | SD \\|e\\|% (bias) | PV \\|e\\|% (bias) | HR \\|e\\| / p95 |"
    )?;
    writeln!(md, "|---|---|---|---|---|---|---|---|")?;
    for hr_bpm in [40.0, 60.0, 100.0, 160.0, 180.0] {
        let mut scores = Vec::new();
        for seed in 0..args.seeds {
            let sim = SimConfig {
                hr_bpm,
                ..blunt_75(7 + seed, args.seconds)
            };
            scores.push(run_sim(sim, PipelineConfig::default(), false)?.score);
        }
        writeln!(md, "| {hr_bpm} | {} |", score_columns(&scores))?;
    }
    eprintln!("heart-rate range done");

    // 2c'''. Forward flow in diastole, which is not part of the beat.
    writeln!(
        md,
        "\n## Forward flow in diastole\n\nThe blunt profile (n = 6, peak 30%, FTc 350, SV 70) at 15 dB with low forward flow in diastole (`odm simulate --diastolic-flow-cm-s`: a sin² hump between the reverse dip and the next beat, peaking at the given velocity, against peaks of 70–90 cm/s; the simulator draws it where diastole leaves it at least 0.1 s, i.e. under ≈ 100/min). The spec keeps it out of the beat; a hump over the detector's level (35 % of the recent peaks) must not start a beat (docs/dsp.md, stage 5: a rise under half the systoles' peak and under 0.4 of their mean acceleration is diastolic flow). {} s × {} seeds per row; columns as in the grid.\n",
        args.seconds, args.seeds
    )?;
    writeln!(
        md,
        "| diastolic flow cm/s | HR /min | sens | PPV | onset \\|e\\| (bias) | FT \\|e\\| (bias) | SD \\|e\\|% (bias) | PV \\|e\\|% (bias) | HR \\|e\\| / p95 |"
    )?;
    writeln!(md, "|---|---|---|---|---|---|---|---|---|")?;
    for diastolic_flow_cm_s in [10.0, 20.0, 30.0] {
        for hr_bpm in [45.0, 60.0, 80.0] {
            let mut scores = Vec::new();
            for seed in 0..args.seeds {
                let sim = SimConfig {
                    hr_bpm,
                    diastolic_flow_cm_s,
                    ..blunt_75(7 + seed, args.seconds)
                };
                scores.push(run_sim(sim, PipelineConfig::default(), false)?.score);
            }
            writeln!(
                md,
                "| {diastolic_flow_cm_s} | {hr_bpm} | {} |",
                score_columns(&scores)
            )?;
        }
    }
    eprintln!("diastolic flow done");

    // 2c''. Rhythm: extrasystoles, and the irregular rhythm of atrial
    // fibrillation, where a short interval is the rhythm and not ectopy.
    writeln!(
        md,
        "\n## Rhythm: extrasystoles and irregular rhythm\n\nThe blunt profile (n = 6, peak 30%, FTc 350, SV 70) at 15 dB. Cycle CV = the simulator's beat-to-beat variation of the cycle (`odm simulate --hr-variability-pct`; sinus rhythm 3%, atrial fibrillation about 15–25%); extrasystoles = `--ectopics` (5% of beats premature, with a compensatory pause). Premature beats in a regular rhythm are rejected as `ectopic`; in an irregular one every beat is accepted (docs/dsp.md, \"Ectopic beats and irregular rhythm\"). Mean HR / SD: the mean over accepted beats against the mean over the truth's beats — what the display's averages would show; \"without\": the same runs with the regularity test off (`irregular_rhythm_mad` = ∞, every premature beat ectopic, as before it). {} s × {} seeds per row.\n",
        args.seconds, args.seeds
    )?;
    writeln!(
        md,
        "| rhythm | HR /min | sens | PPV | true premature | rejected `ectopic` | accepted of detected | mean HR vs truth % | mean SD vs truth % | HR \\|e\\| / p95 | without: rejected `ectopic` | without: mean HR / SD vs truth % |"
    )?;
    writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|---|")?;
    let mut without = PipelineConfig::default();
    without.detector.irregular_rhythm_mad = f64::INFINITY;
    for (label, cv_pct, ectopics) in [
        ("sinus, cycle CV 3%", 3.0, false),
        ("sinus with extrasystoles", 3.0, true),
        ("irregular, cycle CV 10%", 10.0, false),
        ("irregular, cycle CV 20%", 20.0, false),
    ] {
        for hr_bpm in [70.0, 110.0] {
            let (mut runs, mut runs_without) = (Vec::new(), Vec::new());
            for seed in 0..args.seeds {
                let sim = SimConfig {
                    hr_bpm,
                    hr_variability: cv_pct / 100.0,
                    ectopic_rate: if ectopics { 0.05 } else { 0.0 },
                    ..blunt_75(7 + seed, args.seconds)
                };
                runs.push(run_sim(sim.clone(), PipelineConfig::default(), false)?);
                runs_without.push(run_sim(sim, without, false)?);
            }
            let (r, w) = (rhythm_columns(&runs), rhythm_columns(&runs_without));
            writeln!(
                md,
                "| {label} | {hr_bpm} | {} | {} | {:+.1} / {:+.1} |",
                r.text, w.ectopic, w.hr_pct, w.sd_pct
            )?;
        }
    }
    eprintln!("rhythm done");

    // Stroke-volume variation read from the beats.
    svv_table(&mut md, args.seconds.max(90.0), args.seeds)?;
    eprintln!("svv done");

    // 2c'''. Quadrature imbalance of the probe's demodulator.
    writeln!(
        md,
        "\n## Quadrature (I/Q) imbalance\n\nThe blunt profile (n = 6, peak 30%, FTc 350, SV 70) at 30 dB and 60/min, its I/Q from a demodulator whose Q is `(1 + ε)·(Q·cos φ + I·sin φ)` (`odm simulate --iq-gain-error ε --iq-phase-error-deg φ`): the forward flow is mirrored into the reverse half, where the noise floor is measured (image ≈ 20·log10(|ε + iφ|/2) dB under the flow: −24 dB for 10% and 5°). \"off\": `PipelineConfig::iq_balance` = false, the signal used as received. The correction acts after 4 s of signal, or after 1 s when the imbalance is gross (docs/dsp.md, stage 1a). \"Q dead\": a broken Q channel (`--iq-gain-error -1`), no imbalance a correction can take out: the flow is mirrored at full power, and the pipeline reports a channel fault (Q's power 10 dB or more from I's; the monitor's alarm, `odm analyse`'s `iq_channel_ratio_db`). Q/I: Q's power over I's at the end of the run, dB (the lowest of the seeds; clamped at −99). {} s × {} seeds per row.\n",
        args.seconds, args.seeds
    )?;
    writeln!(
        md,
        "| sample rate Hz | imbalance | correction | sens | PPV | onset \\|e\\| (bias) | FT \\|e\\| (bias) | SD \\|e\\|% (bias) | PV \\|e\\|% (bias) | HR \\|e\\| / p95 | accepted of detected | rejected `interference` | Q/I dB |"
    )?;
    writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|---|---|")?;
    for fs in [8_000, 20_000] {
        for (label, gain_error, phase_deg) in [
            ("none", 0.0, 0.0),
            ("10%, 5°", 0.1, 5.0),
            ("Q dead", -1.0, 0.0),
        ] {
            for correction in [true, false] {
                if (gain_error == 0.0 || gain_error == -1.0) && !correction {
                    continue;
                }
                let cfg = PipelineConfig {
                    iq_balance: correction,
                    ..PipelineConfig::default()
                };
                let mut runs = Vec::new();
                for seed in 0..args.seeds {
                    let sim = SimConfig {
                        sample_rate_hz: fs,
                        snr_db: Some(30.0),
                        hr_bpm: 60.0,
                        iq_gain_error: gain_error,
                        iq_phase_error_deg: phase_deg,
                        ..blunt_75(7 + seed, args.seconds)
                    };
                    runs.push(run_sim(sim, cfg, false)?);
                }
                let beats: Vec<&Beat> = runs.iter().flat_map(|r| &r.beats).collect();
                let accepted = beats.iter().filter(|b| b.accepted).count();
                let interference = beats
                    .iter()
                    .filter(|b| b.reject_reason == Some(odm_dsp::RejectReason::Interference))
                    .count();
                let scores: Vec<Score> = runs.iter().map(|r| r.score.clone()).collect();
                // Not measured with the stage off.
                let q_over_i_db = runs
                    .iter()
                    .filter_map(|r| r.iq_channel_ratio_db)
                    .reduce(f64::min)
                    .map_or("—".to_string(), |db| format!("{:+.2}", db.max(-99.0)));
                writeln!(
                    md,
                    "| {fs} | {label} | {} | {} | {:.3} | {interference} | {q_over_i_db} |",
                    if correction { "on" } else { "off" },
                    score_columns(&scores),
                    accepted as f64 / beats.len().max(1) as f64,
                )?;
            }
        }
    }
    eprintln!("iq imbalance done");

    // 2c''''. An interface with I and Q swapped: the flow in the reverse half.
    writeln!(
        md,
        "\n## Reversed flow (I and Q swapped)\n\nThe blunt profile (n = 6, peak 30%, FTc 350, SV 70) at 15 dB and 75/min from an interface that delivers I and Q swapped (`odm simulate --iq-swapped`), so that the forward flow arrives as a negative shift, and the same signals wired right; the last row is the hardest normal signal for the check (low flow, SV 20 ml, with 40 cm/s of reverse flow, 8 dB). No beat can be measured from a swapped interface; the pipeline reports the flow reversed (`Pipeline::flow_reversed`; the monitor's alarm, `odm analyse`'s `reverse_flow_s`) after 3 s of signal (docs/dsp.md, stage 3b). {} s × {} seeds per row.\n",
        args.seconds, args.seeds
    )?;
    writeln!(
        md,
        "| sample rate Hz | interface | beats detected | accepted | reported reversed, s of signal |"
    )?;
    writeln!(md, "|---|---|---|---|---|")?;
    for (fs, label, swapped, low_flow) in [
        (8_000, "swapped", true, false),
        (8_000, "right", false, false),
        (20_000, "swapped", true, false),
        (20_000, "right", false, false),
        (48_000, "swapped", true, false),
        (48_000, "right", false, false),
        (
            20_000,
            "right, low flow, reverse 40 cm/s, 8 dB",
            false,
            true,
        ),
    ] {
        let (mut detected, mut accepted, mut reversed_s) = (0, 0, 0.0);
        for seed in 0..args.seeds {
            let mut sim = SimConfig {
                sample_rate_hz: fs,
                iq_swapped: swapped,
                ..blunt_75(7 + seed, args.seconds)
            };
            if low_flow {
                (sim.sv_ml, sim.reverse_flow_cm_s, sim.snr_db) = (20.0, 40.0, Some(8.0));
            }
            let r = run_sim(sim, PipelineConfig::default(), false)?;
            detected += r.beats.len();
            accepted += r.beats.iter().filter(|b| b.accepted).count();
            reversed_s += r.reverse_flow_s;
        }
        writeln!(
            md,
            "| {fs} | {label} | {detected} | {accepted} | {reversed_s:.1} of {:.0} |",
            args.seconds * args.seeds as f64
        )?;
    }
    eprintln!("reversed flow done");

    // 2c'''''. Peak velocities above what the sample rate carries.
    writeln!(
        md,
        "\n## Aliasing (peak velocity above the sample rate's limit)\n\nThe blunt profile (n = 6, peak 30%, FTc 350) at 15 dB and 75/min, with the stroke volume raised to raise the peak velocity, and the virtual probe allowed to wrap velocities above the limit round into the reverse half as a real interface does (`odm simulate --allow-aliasing`; without it every edge is capped at 0.45 × the sample rate: the \"capped\" row). The limit is the velocity of half the sample rate (4 MHz, 45°). The pipeline reports the aliasing (`Pipeline::aliasing`; the monitor's alarm, `odm analyse`'s `aliased_s`), follows the envelope across +fs/2 on the spectrum rotated by a quarter or three eighths of the band (up to 1.5 or 1.75 × the limit), and rejects as `aliased` a beat whose systole gets past that (docs/dsp.md, stage 3c). Before, the 120 cm/s rows were accepted with PV cut to the band's top and the 155 cm/s rows rejected as `interference`. Errors of the accepted beats against the truth: median |e| (bias). {} s × {} seeds per row.\n",
        args.seconds, args.seeds
    )?;
    writeln!(
        md,
        "| sample rate Hz | limit cm/s | SV ml | true PV cm/s, median (max) | beats detected | accepted | rejected `aliased` | rejected `interference` | aliased, s of signal | PV \\|e\\|% (bias) | SD \\|e\\|% (bias) | FT \\|e\\| ms (bias) |"
    )?;
    writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|---|")?;
    for (fs, sv_ml, allow) in [
        (8_000, 70.0, true),
        (8_000, 100.0, false),
        (8_000, 100.0, true),
        (8_000, 130.0, true),
        (8_000, 170.0, true),
        (10_000, 130.0, true),
        (20_000, 130.0, true),
    ] {
        let (mut detected, mut accepted, mut aliased, mut interference) = (0, 0, 0, 0);
        let (mut aliased_s, mut limit) = (0.0, f64::NAN);
        let mut pv_true = Vec::new();
        let (mut pv_err, mut sd_err, mut ft_err) = (Vec::new(), Vec::new(), Vec::new());
        for seed in 0..args.seeds {
            let sim = SimConfig {
                sample_rate_hz: fs,
                sv_ml,
                allow_aliasing: allow,
                ..blunt_75(7 + seed, args.seconds)
            };
            let r = run_sim(sim, PipelineConfig::default(), false)?;
            detected += r.beats.len();
            accepted += r.beats.iter().filter(|b| b.accepted).count();
            let reason = |w| {
                r.beats
                    .iter()
                    .filter(|b| b.reject_reason == Some(w))
                    .count()
            };
            aliased += reason(odm_dsp::RejectReason::Aliased);
            interference += reason(odm_dsp::RejectReason::Interference);
            aliased_s += r.aliased_s;
            limit = r.max_velocity_cm_s;
            pv_true.extend(r.truth.iter().map(|t| t.pv_cm_s));
            for b in r.beats.iter().filter(|b| b.accepted) {
                if let Some(t) = r
                    .truth
                    .iter()
                    .find(|t| (t.onset_s - b.onset_s).abs() < 0.05)
                {
                    pv_err.push(100.0 * (b.pv_cm_s - t.pv_cm_s) / t.pv_cm_s);
                    sd_err.push(100.0 * (b.sd_cm - t.sd_cm) / t.sd_cm);
                    ft_err.push(b.ft_ms - (t.end_s - t.onset_s) * 1000.0);
                }
            }
        }
        let pv_max = pv_true.iter().copied().fold(f64::NAN, f64::max);
        let pv_median = ErrorStats::from_errors(&mut pv_true).median;
        let err = |e: &mut Vec<f64>| {
            if e.is_empty() {
                "—".to_string()
            } else {
                let s = ErrorStats::from_errors(e);
                format!("{:.1} ({:+.1})", s.median_abs, s.median)
            }
        };
        let err = format!(
            "{} | {} | {}",
            err(&mut pv_err),
            err(&mut sd_err),
            err(&mut ft_err)
        );
        writeln!(
            md,
            "| {fs} | {limit:.0} | {sv_ml:.0}{} | {pv_median:.0} ({pv_max:.0}) | {detected} | {accepted} | {aliased} | {interference} | {aliased_s:.1} of {:.0} | {err} |",
            if allow { "" } else { ", capped" },
            args.seconds * args.seeds as f64
        )?;
    }
    eprintln!("aliasing done");

    // 2d. Stream parameters other than the defaults.
    writeln!(
        md,
        "\n## Stream parameters\n\nThe blunt profile (n = 6, peak 30%, FTc 350, SV 70) at 15 dB and 75/min over the sample rates, carriers and beam angles the serial spec allows (the first row is the grid's default). {} s × {} seeds per row; columns as in the grid. A 2 MHz carrier (not an oesophageal probe's) spans half the bins for the same velocities and doubles the wall band in cm/s.\n",
        args.seconds, args.seeds
    )?;
    writeln!(
        md,
        "| sample rate Hz | carrier MHz | beam angle ° | sens | PPV | onset \\|e\\| (bias) | FT \\|e\\| (bias) | SD \\|e\\|% (bias) | PV \\|e\\|% (bias) | HR \\|e\\| / p95 |"
    )?;
    writeln!(md, "|---|---|---|---|---|---|---|---|---|---|")?;
    for (fs, f0, angle_cdeg) in [
        (20_000, 4_000_000, 4500),
        (8_000, 4_000_000, 4500),
        (10_000, 4_000_000, 4500),
        (48_000, 4_000_000, 4500),
        (20_000, 2_000_000, 4500),
        (20_000, 8_000_000, 4500),
        (20_000, 4_000_000, 3000),
        (20_000, 4_000_000, 6000),
    ] {
        let mut scores = Vec::new();
        for seed in 0..args.seeds {
            let sim = SimConfig {
                sample_rate_hz: fs,
                carrier_hz: f0,
                beam_angle_cdeg: angle_cdeg,
                ..blunt_75(7 + seed, args.seconds)
            };
            scores.push(run_sim(sim, PipelineConfig::default(), false)?.score);
        }
        writeln!(
            md,
            "| {fs} | {} | {} | {} |",
            f64::from(f0) / 1e6,
            f64::from(angle_cdeg) / 100.0,
            score_columns(&scores)
        )?;
    }
    eprintln!("stream parameters done");

    // 2e. A second, independent beat reference.
    writeln!(
        md,
        "\n## Independent reference: quarter-sine beats on warped shaped noise\n\nShaped Gaussian noise (a spectral continuum, no scatterer groups) read on a clock warped so that its edge follows a beat train of another waveform family than the virtual probe's: quarter-sine rise to the peak (25–35% of FT), quarter-cosine fall, FTc 350, ±3% cycle jitter, ±10% breathing swing of a 100 cm/s peak (`odm_simulator::{{WarpedShapedNoise, SineBeats}}`). The probe's rise `1 − (1 − u)^k` and fall `1 − y^k` curve most near baseline; these curve least there, so an edge extrapolation fitted to one family shows its bias on the other. {} s × {} seeds per row; columns as in the grid.\n",
        args.seconds, args.seeds
    )?;
    writeln!(
        md,
        "| spectrum | SNR dB | HR /min | sens | PPV | onset \\|e\\| (bias) | FT \\|e\\| (bias) | SD \\|e\\|% (bias) | PV \\|e\\|% (bias) | HR \\|e\\| / p95 |"
    )?;
    writeln!(md, "|---|---|---|---|---|---|---|---|---|---|")?;
    for (label, beta) in [("blunt (β = −0.67)", -2.0 / 3.0), ("flat (β = 0)", 0.0)] {
        for snr_db in [15.0, 30.0] {
            for hr_bpm in [45.0, 75.0, 140.0] {
                let scores = (0..args.seeds)
                    .map(|seed| run_sine_beats(args.seconds, hr_bpm, beta, snr_db, 11 + seed))
                    .collect::<anyhow::Result<Vec<Score>>>()?;
                writeln!(
                    md,
                    "| {label} | {snr_db} | {hr_bpm} | {} |",
                    score_columns(&scores)
                )?;
            }
        }
    }
    eprintln!("independent reference done");

    // 3. Impairments.
    writeln!(
        md,
        "\n## Impairments: accepted beats inside diathermy, gaps, clipping (must be 0)\n"
    )?;
    writeln!(
        md,
        "Random diathermy (0.5–3 s, every ~8 s), gaps (10–300 ms, every ~9 s) and clipping (50–500 ms, every ~10 s) at 15 dB.\n"
    )?;
    writeln!(
        md,
        "| seed | HR /min | beats scored | sens (clean) | accepted | accepted inside impairments |"
    )?;
    writeln!(md, "|---|---|---|---|---|---|")?;
    let mut total_bad = 0;
    for seed in 0..args.seeds.max(3) {
        let sim = SimConfig {
            seed: 200 + seed,
            duration_s: Some(args.seconds),
            snr_db: Some(15.0),
            hr_bpm: 60.0 + 25.0 * (seed % 4) as f64,
            diathermy: ImpairmentSchedule::Random {
                mean_interval_s: 8.0,
                min_duration_s: 0.5,
                max_duration_s: 3.0,
            },
            gaps: ImpairmentSchedule::Random {
                mean_interval_s: 9.0,
                min_duration_s: 0.01,
                max_duration_s: 0.3,
            },
            clipping: ImpairmentSchedule::Random {
                mean_interval_s: 10.0,
                min_duration_s: 0.05,
                max_duration_s: 0.5,
            },
            ..SimConfig::default()
        };
        let hr = sim.hr_bpm;
        let s = run_sim(sim, PipelineConfig::default(), false)?.score;
        total_bad += s.accepted_in_impairment;
        writeln!(
            md,
            "| {} | {hr} | {} | {:.4} | {} | {} |",
            200 + seed,
            s.truth_eligible,
            s.sensitivity(),
            s.accepted,
            s.accepted_in_impairment
        )?;
    }
    writeln!(
        md,
        "\nTotal accepted beats inside impairments: **{total_bad}**."
    )?;
    std::fs::write(&args.out, md).with_context(|| format!("writing {}", args.out.display()))?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cell_is_within_undecided_or_over_by_its_interval() {
        // 200 beats each, FT errors spread evenly around 2, 5 and 9 ms:
        // intervals under, across and over the 5 ms target.
        let cell = |name: &'static str, ft_ms: f64| {
            let mut ft: Vec<f64> = (0..200)
                .map(|i| ft_ms + (i as f64 - 99.5) / 100.0)
                .collect();
            ft.sort_by(f64::total_cmp);
            Cell {
                name,
                snr: 15.0,
                hr: 75.0,
                counts: (200, 200, 200, 200),
                onset_ms: 1.0,
                ft_ms,
                sd_pct: 1.0,
                pv_pct: 1.0,
                hr_p95: 0.5,
                hr_display_p95: 0.1,
                abs: AbsErrors {
                    onset_ms: vec![1.0; 200],
                    ft_ms: ft,
                    sd_pct: vec![1.0; 200],
                    pv_pct: vec![1.0; 200],
                    hr_bpm: vec![0.5; 200],
                },
            }
        };
        let mut md = String::new();
        goals_confidence(&mut md, &[cell("a", 2.0), cell("b", 5.0), cell("c", 9.0)]).unwrap();
        let row = md
            .lines()
            .find(|l| l.starts_with("| median \\|FT"))
            .expect("the FT row");
        assert!(row.contains("| ≤ 5 | 1 | 1 | 1 |"), "{row}");
        assert!(row.contains("b 15 dB 75/min 5.00 [") && row.contains("c 15 dB 75/min 9.00 ["));
        assert!(!row.contains("a 15 dB"), "{row}");
        let onset = md
            .lines()
            .find(|l| l.starts_with("| median \\|onset"))
            .unwrap();
        assert!(onset.contains("| ≤ 5 | 3 | 0 | 0 | — |"), "{onset}");
    }

    /// The goals (issue 3) on the independent reference, where they are
    /// met: detection, onset, FT, SD and PV at 45–140/min on a blunt and a
    /// flat spectrum, HR at 75/min. Measured (30 s, seed 11): onset
    /// 0.6–2.3 ms, FT 3.0–4.2 ms, SD ≤ 1.7 %, PV ≤ 0.9 %, HR p95 0.4–0.5/min
    /// at 75/min. Not met there, and so not held to the goals here: FT of
    /// the flat spectrum at 45/min (−7…−9 ms at 15 dB) and HR p95 at
    /// 140/min (1.4–1.8/min; docs/dsp.md, "Known limits"). The flat
    /// spectrum's FT at 30 dB and 45/min is the same bias, smaller: it read
    /// 4.88 ms here with the fitted onset alone and 5.51 ms since the onset
    /// averages in the rise's crossings (2026-12-01; 4.4 → 4.6 ms over 60 s
    /// × 2 seeds in `odm validate`), so it is held at a regression bound.
    #[test]
    fn quarter_sine_beats_on_warped_shaped_noise_meet_the_goals() {
        for (beta, snr_db, hr) in [
            (-2.0 / 3.0, 15.0, 45.0),
            (-2.0 / 3.0, 15.0, 75.0),
            (-2.0 / 3.0, 15.0, 140.0),
            (-2.0 / 3.0, 30.0, 45.0),
            (0.0, 30.0, 45.0),
            (0.0, 30.0, 75.0),
        ] {
            let s = run_sine_beats(30.0, hr, beta, snr_db, 11).unwrap();
            let what = format!(
                "β {beta:.2} {snr_db} dB {hr}/min: sens {:.4} ppv {:.4} onset {:.2} FT {:.2} SD {:.2}% PV {:.2}% HR p95 {:.2}",
                s.sensitivity(),
                s.ppv(),
                s.onset_ms.median_abs,
                s.ft_ms.median_abs,
                s.sd_pct.median_abs,
                s.pv_pct.median_abs,
                s.hr_bpm.p95_abs
            );
            assert!(s.sensitivity() >= 0.995 && s.ppv() >= 0.995, "{what}");
            assert!(s.onset_ms.median_abs <= 5.0, "{what}");
            let ft_bound_ms = if beta == 0.0 && hr < 60.0 { 6.0 } else { 5.0 };
            assert!(s.ft_ms.median_abs <= ft_bound_ms, "{what}");
            assert!(s.sd_pct.median_abs <= 3.0, "{what}");
            assert!(s.pv_pct.median_abs <= 3.0, "{what}");
            if hr < 100.0 {
                assert!(s.hr_bpm.p95_abs <= 1.0, "{what}");
            } else {
                // Held at a regression bound, not the goal.
                assert!(s.hr_bpm.p95_abs <= 2.0, "{what}");
            }
        }
    }
}
