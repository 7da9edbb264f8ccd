//! `odm analyse`: beat-by-beat analysis of a recording or raw stream, written
//! exactly per `shared/spec/analysis-output.md` (cli.md, `odm analyse`).
//!
//! - Streaming: the input is read in chunks and every output line is written
//!   as soon as it is known; memory does not grow with the recording's
//!   length (the summary medians keep one count per distinct written value,
//!   see [`crate::analysis_output::QuantMedian`]).
//! - It runs the same [`Pipeline`] as the live monitor.
//! - Damage never stops it: the receiver counters in the summary say what
//!   was skipped, and every good frame is analysed. Only an I/O failure of
//!   the input or the output, or a PROBE_INFO the pipeline cannot run with,
//!   is an error (one line naming the file and byte offset, exit 1).
//! - Samples before the first PROBE_INFO are **held** (up to
//!   [`HOLD_BEFORE_PROBE_INFO_S`] at the highest sample rate) and analysed
//!   once PROBE_INFO arrives; older ones are dropped and counted in the
//!   summary's `samples_dropped_before_probe_info`. Events and annotations
//!   seen before it are held too and written after the `stream` line.
//! - Stroke volume: `--aortic-diameter-mm` or `--age/--sex/--height-cm/
//!   --weight-kg` fix the area model for the whole run (they override
//!   `patient` annotations); otherwise each `patient` annotation sets the
//!   model for the beats whose onset is at or after its sample (an
//!   `area_model` event says so).

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::PathBuf;

use anyhow::{Context, Result};
use odm_device_io::calibration::{Calibration, CalibrationStore};
use odm_device_io::{
    Annotation, Counters, DecodedItem, IqBlock, MAX_SAMPLE_RATE_HZ, MagicStatus, Payload,
    ProbeEvent, ProbeInfo, RecordingReader,
};
use odm_dsp::area::{Demographics, Sex};
use odm_dsp::calfit::probe_calibration_from;
use odm_dsp::fluid::{FluidChallengeResult, FluidConfig, FluidTracker};
use odm_dsp::haemo::{self, BsaFormula, FtcFormula, SvModel};
use odm_dsp::{Beat, Pipeline, PipelineConfig, PipelineSink, Status, StreamParams};

use crate::analysis_output::{self as out, JsonLine, QuantMedian, decimals};

/// Samples before the first PROBE_INFO are held for up to this long (at the
/// highest sample rate the spec allows); PROBE_INFO comes at least once a
/// second (serial-stream.md), so nothing is lost in a well-formed stream.
pub const HOLD_BEFORE_PROBE_INFO_S: u64 = 2;

/// Events and annotations held before the first PROBE_INFO, at most.
const HOLD_EVENTS: usize = 10_000;

/// A challenge is finished once stream time has passed its after-window by
/// this much: beats are emitted only when the next onset is known, so the
/// pipeline's output lags the samples by up to a few cycles.
const FLUID_SETTLE_S: f64 = 15.0;

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// JSON lines (analysis-output.md), the default.
    Jsonl,
    /// Beat rows only, with a header line.
    Csv,
}

/// Arguments of `odm analyse`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Recording (`.odmrec`) or raw probe stream; `-` reads standard input.
    pub input: PathBuf,
    /// How to analyse and what to write.
    #[command(flatten)]
    pub opts: Options,
}

/// Analysis options shared by `odm analyse` and the headless `odm monitor`.
#[derive(clap::Args, Debug)]
pub struct Options {
    /// Calibration store in which the probe's calibration is looked up when
    /// its PROBE_INFO arrives (default: `$ODM_CALIBRATIONS`, else
    /// `$XDG_DATA_HOME/odm/calibrations`, else `~/.local/share/odm/calibrations`).
    #[arg(long, value_name = "DIR", conflicts_with = "no_calibration")]
    pub calibrations: Option<PathBuf>,
    /// Analyse uncorrected: apply no installed probe calibration.
    #[arg(long = "no-calibration")]
    pub no_calibration: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "jsonl")]
    pub format: Format,
    /// FTc formula: `bazett`, `fridericia` or `linear:K` (K in ms per beat/min).
    #[arg(long, default_value = "bazett", value_parser = parse_ftc)]
    pub ftc: FtcFormula,
    /// Age in years (with --sex, --height-cm, --weight-kg: population area model).
    #[arg(long, value_parser = parse_age, requires_all = ["sex", "height_cm", "weight_kg"])]
    pub age: Option<f64>,
    /// Sex: `female`, `male` or `unknown`.
    #[arg(long, value_parser = parse_sex, requires_all = ["age", "height_cm", "weight_kg"])]
    pub sex: Option<Sex>,
    /// Height in cm.
    #[arg(long = "height-cm", value_parser = parse_height, requires_all = ["age", "sex", "weight_kg"])]
    pub height_cm: Option<f64>,
    /// Weight in kg.
    #[arg(long = "weight-kg", value_parser = parse_weight, requires_all = ["age", "sex", "height_cm"])]
    pub weight_kg: Option<f64>,
    /// Measured descending-aortic diameter, mm (overrides demographics).
    #[arg(long = "aortic-diameter-mm", value_parser = parse_diameter)]
    pub aortic_diameter_mm: Option<f64>,
    /// Fraction of cardiac output in the descending aorta.
    #[arg(long = "descending-fraction", default_value_t = odm_dsp::area::DEFAULT_DESCENDING_FRACTION, value_parser = parse_fraction)]
    pub descending_fraction: f64,
    /// Fluid challenge: baseline window before a bolus, s.
    #[arg(long = "bolus-before-s", default_value_t = 60.0, value_parser = parse_window)]
    pub bolus_before_s: f64,
    /// Fluid challenge: how long after a bolus the response is looked for, s.
    #[arg(long = "bolus-after-s", default_value_t = 300.0, value_parser = parse_window)]
    pub bolus_after_s: f64,
    /// Fluid challenge: length of the rolling window whose best mean is the response, s.
    #[arg(long = "bolus-window-s", default_value_t = 30.0, value_parser = parse_window)]
    pub bolus_window_s: f64,
    /// Fluid challenge: fewest accepted beats in a window to judge it.
    #[arg(long = "bolus-min-beats", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub bolus_min_beats: u32,
}

fn parse_ftc(s: &str) -> Result<FtcFormula, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "bazett" => Ok(FtcFormula::Bazett),
        "fridericia" => Ok(FtcFormula::Fridericia),
        other => {
            let k = other
                .strip_prefix("linear:")
                .ok_or_else(|| format!("`{s}` is not bazett, fridericia or linear:K"))?;
            let k: f64 = k
                .parse()
                .map_err(|_| format!("`{k}` in `{s}` is not a number (ms per beat/min)"))?;
            if k.is_finite() && k.abs() <= 100.0 {
                Ok(FtcFormula::Linear { k_ms_per_bpm: k })
            } else {
                Err(format!(
                    "linear K = {k} is outside −100..=100 ms per beat/min"
                ))
            }
        }
    }
}

fn parse_in(s: &str, lo: f64, hi: f64, what: &str) -> Result<f64, String> {
    let x: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number"))?;
    if x.is_finite() && x >= lo && x <= hi {
        Ok(x)
    } else {
        Err(format!("{what} {x} is outside {lo}..={hi}"))
    }
}

fn parse_age(s: &str) -> Result<f64, String> {
    parse_in(s, 18.0, 100.0, "age (years)")
}
fn parse_height(s: &str) -> Result<f64, String> {
    parse_in(s, 100.0, 250.0, "height (cm)")
}
fn parse_weight(s: &str) -> Result<f64, String> {
    parse_in(s, 25.0, 350.0, "weight (kg)")
}
fn parse_diameter(s: &str) -> Result<f64, String> {
    parse_in(s, 10.0, 50.0, "aortic diameter (mm)")
}
fn parse_fraction(s: &str) -> Result<f64, String> {
    let x = parse_in(s, 0.0, 1.0, "descending fraction")?;
    if x > 0.0 {
        Ok(x)
    } else {
        Err("descending fraction must be above 0".into())
    }
}
fn parse_window(s: &str) -> Result<f64, String> {
    parse_in(s, 1.0, 3600.0, "window (s)")
}
fn parse_sex(s: &str) -> Result<Sex, String> {
    Sex::from_word(s).ok_or_else(|| format!("`{s}` is not female, male or unknown"))
}

/// Runs `odm analyse`.
pub fn run(args: Args) -> Result<()> {
    let stdout = io::stdout();
    let sink = BufWriter::with_capacity(64 * 1024, stdout.lock());
    let result = if args.input.as_os_str() == "-" {
        let stdin = io::stdin();
        analyse_stream(stdin.lock(), "<stdin>".into(), &args.opts, sink)
    } else {
        let name = args.input.display().to_string();
        let file = File::open(&args.input).with_context(|| format!("opening {name}"))?;
        analyse_stream(file, name, &args.opts, sink)
    };
    match result {
        // The reader of our output went away (`odm analyse f | head`): not
        // a failure of the analysis.
        Err(e) if is_broken_pipe(&e) => Ok(()),
        other => other,
    }
}

/// Analyses the stream `src` (a recording or a raw probe stream) to the end
/// and writes the analysis-output lines to `dst`; `name` names the input in
/// errors. The same code path serves files, standard input and live sources.
pub fn analyse_stream<R: Read, W: Write>(
    src: R,
    name: String,
    opts: &Options,
    dst: W,
) -> Result<()> {
    let cli_model = cli_sv_model(opts)?;
    let fluid = FluidConfig {
        before_s: opts.bolus_before_s,
        after_span_s: opts.bolus_after_s,
        rolling_s: opts.bolus_window_s,
        min_beats: opts.bolus_min_beats as usize,
        ..FluidConfig::default()
    };
    analyse(src, name, opts, cli_model, fluid, dst)
}

/// Whether `e` is the reader of our output having gone away.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// The SV model fixed on the command line, if any (a diameter wins over
/// demographics).
fn cli_sv_model(args: &Options) -> Result<Option<SvModel>> {
    let model = if let Some(d) = args.aortic_diameter_mm {
        Some(SvModel::measured(d).with_context(|| "--aortic-diameter-mm")?)
    } else if let (Some(age_years), Some(sex), Some(height_cm), Some(weight_kg)) =
        (args.age, args.sex, args.height_cm, args.weight_kg)
    {
        Some(
            SvModel::population(Demographics {
                age_years,
                sex,
                height_cm,
                weight_kg,
            })
            .with_context(|| "--age/--sex/--height-cm/--weight-kg")?,
        )
    } else {
        None
    };
    model
        .map(|m| {
            m.with_descending_fraction(args.descending_fraction)
                .with_context(|| "--descending-fraction")
        })
        .transpose()
}

/// BSA (Mosteller) from the command-line demographics, when all are given.
fn cli_bsa_m2(args: &Options) -> Option<f64> {
    match (args.height_cm, args.weight_kg) {
        (Some(h), Some(w)) if args.age.is_some() => Some(BsaFormula::Mosteller.bsa_m2(h, w)),
        _ => None,
    }
}

/// Reads `src` to the end and writes the analysis to `dst`.
fn analyse<R: Read, W: Write>(
    src: R,
    name: String,
    args: &Options,
    cli_model: Option<SvModel>,
    fluid: FluidConfig,
    dst: W,
) -> Result<()> {
    let mut reader =
        RecordingReader::with_name(src, name.clone()).with_context(|| format!("reading {name}"))?;
    let mut a = Analyser::new(args, cli_model, fluid, dst, name.clone());
    a.begin()?;
    while let Some(item) = reader
        .next_item()
        .with_context(|| format!("reading {name}"))?
    {
        if let DecodedItem::Frame(frame) = item {
            let offset = reader
                .decoder()
                .last_frame_span()
                .map_or(0, |(offset, _)| offset);
            a.payload(frame.payload, offset)?;
        }
    }
    a.end(reader.counters(), reader.magic())
}

/// One output of the pipeline, kept in the order it was produced.
enum Produced {
    Beat(Box<Beat>),
    Status(Status),
}

/// Collects what one `Pipeline::push` produced, in order.
#[derive(Default)]
struct Collect {
    items: Vec<Produced>,
}

impl PipelineSink for Collect {
    fn beat(&mut self, beat: &Beat) {
        self.items.push(Produced::Beat(Box::new(beat.clone())));
    }
    fn status(&mut self, status: &Status) {
        self.items.push(Produced::Status(*status));
    }
}

/// Something seen before the first PROBE_INFO, written after the stream line.
enum Held {
    Event(ProbeEvent),
    Annotation(Annotation),
}

/// The area model in force from a sample index on.
#[derive(Clone, Copy)]
struct ModelFrom {
    at_sample: u64,
    model: SvModel,
    /// Body surface area (Mosteller) when demographics are known.
    bsa_m2: Option<f64>,
}

/// Medians over accepted beats (summary).
struct Medians {
    ft_ms: QuantMedian,
    ftc_ms: QuantMedian,
    sd_cm: QuantMedian,
    pv_cm_s: QuantMedian,
    ma_cm_s2: QuantMedian,
    hr_bpm: QuantMedian,
    sv_ml: QuantMedian,
    co_l_min: QuantMedian,
}

impl Medians {
    fn new() -> Self {
        Self {
            ft_ms: QuantMedian::new(decimals::MS),
            ftc_ms: QuantMedian::new(decimals::MS),
            sd_cm: QuantMedian::new(decimals::SD),
            pv_cm_s: QuantMedian::new(decimals::PV),
            ma_cm_s2: QuantMedian::new(decimals::MA),
            hr_bpm: QuantMedian::new(decimals::HR),
            sv_ml: QuantMedian::new(decimals::SV),
            co_l_min: QuantMedian::new(decimals::CO),
        }
    }
    fn add(&mut self, b: &Beat) {
        self.ft_ms.add(b.ft_ms);
        self.ftc_ms.add(b.ftc_ms);
        self.sd_cm.add(b.sd_cm);
        self.pv_cm_s.add(b.pv_cm_s);
        if let Some(x) = b.ma_cm_s2 {
            self.ma_cm_s2.add(x);
        }
        self.hr_bpm.add(b.hr_bpm);
        if let Some(x) = b.sv_ml {
            self.sv_ml.add(x);
        }
        if let Some(x) = b.co_l_min {
            self.co_l_min.add(x);
        }
    }
    /// One decimal more than the beats: the mean of the two middle values
    /// of an even count is then written exactly.
    fn json(&self) -> String {
        JsonLine::object()
            .num("ft_ms", self.ft_ms.median(), decimals::MS + 1)
            .num("ftc_ms", self.ftc_ms.median(), decimals::MS + 1)
            .num("sd_cm", self.sd_cm.median(), decimals::SD + 1)
            .num("pv_cm_s", self.pv_cm_s.median(), decimals::PV + 1)
            .num("ma_cm_s2", self.ma_cm_s2.median(), decimals::MA + 1)
            .num("hr_bpm", self.hr_bpm.median(), decimals::HR + 1)
            .num("sv_ml", self.sv_ml.median(), decimals::SV + 1)
            .num("co_l_min", self.co_l_min.median(), decimals::CO + 1)
            .finish_object()
    }
}

struct Analyser<'a, W: Write> {
    args: &'a Options,
    name: String,
    dst: W,
    format: Format,
    /// Model fixed on the command line (overrides annotations).
    cli_model: Option<SvModel>,
    /// Models from `patient` annotations, by sample index (bounded).
    models: Vec<ModelFrom>,
    pipeline: Option<Pipeline>,
    params: Option<StreamParams>,
    probe: Option<ProbeInfo>,
    stream_written: bool,
    held_blocks: std::collections::VecDeque<IqBlock>,
    held_samples: u64,
    held_items: Vec<Held>,
    dropped_samples: u64,
    dropped_items: u64,
    collect: Collect,
    fluid: FluidTracker,
    beats: u64,
    accepted: u64,
    medians: Medians,
    first_sample: Option<u64>,
    last_end: u64,
    /// Where probe calibrations are looked up; `None` with `--no-calibration`.
    cal_store: Option<CalibrationStore>,
    /// The last probe serial looked up, and the calibration found for it.
    cal_for: Option<(String, Option<Calibration>)>,
}

impl<'a, W: Write> Analyser<'a, W> {
    fn new(
        args: &'a Options,
        cli_model: Option<SvModel>,
        fluid: FluidConfig,
        dst: W,
        name: String,
    ) -> Self {
        Self {
            args,
            name,
            dst,
            format: args.format,
            cli_model,
            models: vec![ModelFrom {
                at_sample: 0,
                model: cli_model.unwrap_or_default(),
                bsa_m2: cli_bsa_m2(args),
            }],
            pipeline: None,
            params: None,
            probe: None,
            stream_written: false,
            held_blocks: std::collections::VecDeque::new(),
            held_samples: 0,
            held_items: Vec::new(),
            dropped_samples: 0,
            dropped_items: 0,
            collect: Collect::default(),
            fluid: FluidTracker::new(fluid),
            beats: 0,
            accepted: 0,
            medians: Medians::new(),
            first_sample: None,
            last_end: 0,
            cal_store: if args.no_calibration {
                None
            } else if let Some(dir) = &args.calibrations {
                Some(CalibrationStore::new(dir))
            } else {
                // No default store (no home directory): nothing to apply.
                CalibrationStore::open_default().ok()
            },
            cal_for: None,
        }
    }

    fn write(&mut self, line: &str) -> Result<()> {
        self.dst
            .write_all(line.as_bytes())
            .context("writing standard output")
    }

    fn json(&mut self, line: &str) -> Result<()> {
        if self.format == Format::Jsonl {
            self.write(line)?;
        }
        Ok(())
    }

    fn begin(&mut self) -> Result<()> {
        if self.format == Format::Csv {
            self.write(&out::csv_header())?;
        }
        Ok(())
    }

    fn fs(&self) -> Option<f64> {
        self.params.map(|p| f64::from(p.sample_rate_hz))
    }

    fn t_s(&self, sample: u64) -> Option<f64> {
        self.fs().map(|fs| sample as f64 / fs)
    }

    /// The model in force for the latest annotations (for the stream line).
    fn current_model(&self) -> SvModel {
        self.models.last().map_or(SvModel::None, |m| m.model)
    }

    /// The BSA in force for the latest annotations.
    fn current_bsa_m2(&self) -> Option<f64> {
        self.models.last().and_then(|m| m.bsa_m2)
    }

    fn payload(&mut self, payload: Payload, offset: u64) -> Result<()> {
        match payload {
            Payload::ProbeInfo(info) => self.probe_info(info, offset),
            Payload::Iq(block) => {
                if self.pipeline.is_some() {
                    self.iq(&block)
                } else {
                    self.hold(block);
                    Ok(())
                }
            }
            Payload::Event(ev) => {
                if self.stream_written {
                    self.event_line(&ev)
                } else {
                    self.hold_item(Held::Event(ev));
                    Ok(())
                }
            }
            Payload::Annotation(ann) => {
                if self.stream_written {
                    self.annotation(&ann, true)
                } else {
                    self.hold_item(Held::Annotation(ann));
                    Ok(())
                }
            }
        }
    }

    fn hold(&mut self, block: IqBlock) {
        let limit = HOLD_BEFORE_PROBE_INFO_S * u64::from(MAX_SAMPLE_RATE_HZ);
        self.held_samples += block.samples.len() as u64;
        self.held_blocks.push_back(block);
        while self.held_samples > limit {
            match self.held_blocks.pop_front() {
                Some(old) => {
                    self.held_samples -= old.samples.len() as u64;
                    self.dropped_samples += old.samples.len() as u64;
                }
                None => break,
            }
        }
    }

    fn hold_item(&mut self, item: Held) {
        if self.held_items.len() < HOLD_EVENTS {
            self.held_items.push(item);
        } else {
            self.dropped_items += 1;
        }
    }

    fn probe_info(&mut self, info: ProbeInfo, offset: u64) -> Result<()> {
        let params = StreamParams {
            sample_rate_hz: info.sample_rate_hz,
            carrier_hz: info.carrier_hz,
            beam_angle_deg: info.beam_angle_deg(),
        };
        if self.params == Some(params) {
            self.probe = Some(info);
            self.apply_calibration();
            return Ok(());
        }
        let mut cfg = PipelineConfig {
            ftc: self.args.ftc,
            ..PipelineConfig::default()
        };
        cfg.sv_model = self.current_model();
        let pipeline = Pipeline::new(cfg, params).with_context(|| {
            format!(
                "{}: PROBE_INFO at byte {offset} cannot be analysed",
                self.name
            )
        })?;
        // A change of stream parameters: the old pipeline's last beats first.
        if let Some(mut old) = self.pipeline.take() {
            old.finish(&mut self.collect);
            self.drain()?;
        }
        self.pipeline = Some(pipeline);
        self.params = Some(params);
        self.probe = Some(info);
        self.apply_calibration();
        if !self.stream_written {
            self.start_stream()?;
        }
        Ok(())
    }

    /// Applies the installed calibration of the probe in force (looked up
    /// once per serial) to the pipeline: "the DSP applies a probe's
    /// calibration automatically when its PROBE_INFO arrives". A damaged or
    /// foreign calibration file is reported on standard error and the
    /// analysis goes on uncorrected, never silently.
    fn apply_calibration(&mut self) {
        let (Some(info), Some(store)) = (&self.probe, &self.cal_store) else {
            return;
        };
        let serial = info.serial_str();
        if self.cal_for.as_ref().is_none_or(|(s, _)| *s != serial) {
            let found = match store.lookup(&serial) {
                Ok(found) => found,
                Err(e) => {
                    eprintln!(
                        "odm analyse: warning: calibration of probe {serial:?} not applied: {e}"
                    );
                    None
                }
            };
            self.cal_for = Some((serial, found));
        }
        let correction = self
            .cal_for
            .as_ref()
            .and_then(|(_, c)| c.as_ref())
            .map(|c| probe_calibration_from(c.gain, c.offset_cm_s))
            .unwrap_or_default();
        if let Some(p) = self.pipeline.as_mut()
            && let Err(e) = p.set_calibration(correction)
        {
            eprintln!("odm analyse: warning: probe calibration not applied: {e}");
        }
    }

    /// Writes the stream line, then everything held before PROBE_INFO.
    fn start_stream(&mut self) -> Result<()> {
        let held = std::mem::take(&mut self.held_items);
        // `patient` annotations seen before PROBE_INFO set the model the
        // stream line states.
        if self.cli_model.is_none() {
            for h in &held {
                if let Held::Annotation(a) = h
                    && a.kind() == "patient"
                    && let Ok(m) = self.model_from_patient(a)
                {
                    self.push_model(a.at_sample, m);
                }
            }
        }
        let model = self.current_model();
        if let Some(p) = self.pipeline.as_mut() {
            p.set_sv_model(model);
        }
        self.stream_line()?;
        self.stream_written = true;
        for h in held {
            match h {
                Held::Event(ev) => self.event_line(&ev)?,
                Held::Annotation(a) => self.annotation(&a, false)?,
            }
        }
        let blocks = std::mem::take(&mut self.held_blocks);
        self.held_samples = 0;
        for b in blocks {
            self.iq(&b)?;
        }
        Ok(())
    }

    fn stream_line(&mut self) -> Result<()> {
        let model = self.current_model();
        let diameter = model.diameter();
        let mut l = JsonLine::new("stream");
        l.int("version", 1)
            .string("software", &format!("odm {}", env!("CARGO_PKG_VERSION")));
        match (&self.probe, &self.params) {
            (Some(info), Some(p)) => {
                l.int("sample_rate_hz", u64::from(p.sample_rate_hz))
                    .int("carrier_hz", u64::from(p.carrier_hz))
                    .num("beam_angle_deg", Some(p.beam_angle_deg), 2)
                    .string("probe_serial", &info.serial_str());
            }
            _ => {
                l.num("sample_rate_hz", None, 0)
                    .num("carrier_hz", None, 0)
                    .num("beam_angle_deg", None, 0)
                    .opt_string("probe_serial", None);
            }
        }
        let ftc = self.args.ftc;
        l.string("ftc_formula", ftc.name());
        match ftc {
            FtcFormula::Linear { k_ms_per_bpm } => {
                l.num("ftc_linear_k_ms_per_bpm", Some(k_ms_per_bpm), 4)
            }
            _ => l.num("ftc_linear_k_ms_per_bpm", None, 0),
        };
        l.string("area_model", model.name())
            .num(
                "aortic_diameter_mm",
                diameter.map(|d| d.diameter_mm),
                decimals::MM,
            )
            // Added fields: the model's spread and the flow split.
            .num(
                "aortic_diameter_sd_mm",
                diameter.map(|d| d.spread_mm),
                decimals::MM,
            )
            .num("descending_fraction", model.descending_fraction(), 3)
            .string("bsa_formula", "mosteller")
            .num("bsa_m2", self.current_bsa_m2(), 4)
            .string("samples_before_probe_info", "held");
        let fc = *self.fluid.config();
        l.num("fluid_before_s", Some(fc.before_s), 3)
            .num("fluid_after_span_s", Some(fc.after_span_s), 3)
            .num("fluid_rolling_s", Some(fc.rolling_s), 3)
            .int("fluid_min_beats", fc.min_beats as u64);
        // Added field: the probe calibration applied, if any.
        match self.cal_for.as_ref().and_then(|(_, c)| c.as_ref()) {
            Some(c) => {
                let mut cal = JsonLine::object();
                cal.num("gain", Some(c.gain), 5)
                    .num("offset_cm_s", Some(c.offset_cm_s), 3)
                    .string("date", &c.date.to_string())
                    .string("valid_until", &c.valid_until.to_string());
                l.raw("probe_calibration", &cal.finish_object())
            }
            None => l.raw("probe_calibration", "null"),
        };
        let line = l.finish();
        self.json(&line)
    }

    fn event_line(&mut self, ev: &ProbeEvent) -> Result<()> {
        let line = JsonLine::new("event")
            .num("t_s", self.t_s(ev.at_sample), decimals::TIME_S)
            .string("kind", "probe_event")
            .int("code", u64::from(ev.code))
            .signed("value", i64::from(ev.value))
            .finish();
        self.json(&line)
    }

    /// Writes an annotation event and acts on `patient` and `bolus`.
    /// `apply_patient` is false for annotations held before the stream line
    /// (their model is already in it).
    fn annotation(&mut self, a: &Annotation, apply_patient: bool) -> Result<()> {
        let json = serde_json::to_string(&a.json).unwrap_or_else(|_| "null".into());
        let line = JsonLine::new("event")
            .num("t_s", self.t_s(a.at_sample), decimals::TIME_S)
            .string("kind", "annotation")
            .raw("annotation", &json)
            .finish();
        self.json(&line)?;
        match a.kind() {
            "bolus" => {
                if let Some(t) = self.t_s(a.at_sample) {
                    let volume = a.json.get("volume_ml").and_then(serde_json::Value::as_f64);
                    self.fluid.bolus(t, volume);
                }
            }
            "patient" if apply_patient => {
                if self.cli_model.is_some() {
                    return Ok(());
                }
                let t = self.t_s(a.at_sample);
                match self.model_from_patient(a) {
                    Ok(m) => {
                        self.push_model(a.at_sample, m);
                        let d = m.diameter();
                        let line = JsonLine::new("event")
                            .num("t_s", t, decimals::TIME_S)
                            .string("kind", "area_model")
                            .string("area_model", m.name())
                            .num("aortic_diameter_mm", d.map(|d| d.diameter_mm), decimals::MM)
                            .num(
                                "aortic_diameter_sd_mm",
                                d.map(|d| d.spread_mm),
                                decimals::MM,
                            )
                            .finish();
                        self.json(&line)?;
                        if let Some(p) = self.pipeline.as_mut() {
                            p.set_sv_model(m);
                        }
                    }
                    Err(reason) => {
                        let line = JsonLine::new("event")
                            .num("t_s", t, decimals::TIME_S)
                            .string("kind", "area_model_unchanged")
                            .string("reason", &reason)
                            .finish();
                        self.json(&line)?;
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn model_from_patient(&self, a: &Annotation) -> Result<SvModel, String> {
        let num = |k: &str| {
            a.json
                .get(k)
                .and_then(serde_json::Value::as_f64)
                .ok_or_else(|| format!("patient annotation has no number `{k}`"))
        };
        let sex = match a.json.get("sex").and_then(serde_json::Value::as_str) {
            Some(s) => {
                Sex::from_word(s).ok_or_else(|| format!("patient sex `{s}` is not known"))?
            }
            None => Sex::Unknown,
        };
        let demographics = Demographics {
            age_years: num("age_years")?,
            sex,
            height_cm: num("height_cm")?,
            weight_kg: num("weight_kg")?,
        };
        SvModel::population(demographics)
            .and_then(|m| m.with_descending_fraction(self.args.descending_fraction))
            .map_err(|e| e.to_string())
    }

    fn push_model(&mut self, at_sample: u64, model: SvModel) {
        // Bounded: a flood of annotations keeps only the latest 64.
        if self.models.len() >= 64 {
            self.models.remove(0);
        }
        let at = self.models.partition_point(|m| m.at_sample <= at_sample);
        let bsa_m2 = match model {
            SvModel::Population { demographics, .. } => {
                Some(demographics.bsa_m2(BsaFormula::Mosteller))
            }
            _ => None,
        };
        self.models.insert(
            at,
            ModelFrom {
                at_sample,
                model,
                bsa_m2,
            },
        );
    }

    /// The model for a beat starting at `onset_sample`, dropping models that
    /// no later beat can need (beats come in time order).
    fn model_for(&mut self, onset_sample: u64) -> ModelFrom {
        let k = self.models.partition_point(|m| m.at_sample <= onset_sample);
        if k >= 2 {
            self.models.drain(..k - 1);
        }
        match self.models.first() {
            Some(m) if m.at_sample <= onset_sample => *m,
            // Before the first annotation's sample: the command line's model.
            _ => ModelFrom {
                at_sample: 0,
                model: self.cli_model.unwrap_or_default(),
                bsa_m2: cli_bsa_m2(self.args),
            },
        }
    }

    fn iq(&mut self, block: &IqBlock) -> Result<()> {
        let Some(p) = self.pipeline.as_mut() else {
            return Ok(());
        };
        p.push(
            block.first_sample,
            &block.samples,
            block.clipped(),
            &mut self.collect,
        );
        let end = block.end_sample();
        self.first_sample = Some(
            self.first_sample
                .map_or(block.first_sample, |f| f.min(block.first_sample)),
        );
        self.last_end = self.last_end.max(end);
        self.drain()?;
        if let Some(t) = self.t_s(end) {
            self.fluid.advance_to(t - FLUID_SETTLE_S);
        }
        self.write_fluid()
    }

    /// Writes what the pipeline produced, in the order it was produced.
    fn drain(&mut self) -> Result<()> {
        let mut items = std::mem::take(&mut self.collect.items);
        for item in items.drain(..) {
            match item {
                Produced::Status(s) => {
                    self.status_line(&s)?;
                    if matches!(s, Status::Discontinuity { .. }) {
                        self.restart_segment()?;
                    }
                }
                Produced::Beat(mut b) => self.beat(&mut b)?,
            }
        }
        // Keep the buffer's storage.
        self.collect.items = items;
        Ok(())
    }

    /// After a discontinuity the sample counter went back (the sender
    /// restarted): challenges in progress are reported with what they have
    /// and time-keyed state starts again; the area model in force stays.
    fn restart_segment(&mut self) -> Result<()> {
        self.fluid.finish();
        self.write_fluid()?;
        self.fluid = FluidTracker::new(*self.fluid.config());
        let model = self.current_model();
        let bsa_m2 = self.current_bsa_m2();
        self.models.clear();
        self.models.push(ModelFrom {
            at_sample: 0,
            model,
            bsa_m2,
        });
        Ok(())
    }

    fn status_line(&mut self, s: &Status) -> Result<()> {
        let line = match *s {
            Status::Gap { t_s, lost_samples } => JsonLine::new("event")
                .num("t_s", Some(t_s), decimals::TIME_S)
                .string("kind", "gap")
                .int("lost_samples", lost_samples)
                .finish(),
            Status::Discontinuity { t_s } => JsonLine::new("event")
                .num("t_s", Some(t_s), decimals::TIME_S)
                .string("kind", "discontinuity")
                .finish(),
            Status::SignalLost { t_s } => JsonLine::new("event")
                .num("t_s", Some(t_s), decimals::TIME_S)
                .string("kind", "signal_lost")
                .finish(),
            Status::SignalRegained { t_s } => JsonLine::new("event")
                .num("t_s", Some(t_s), decimals::TIME_S)
                .string("kind", "signal_regained")
                .finish(),
        };
        self.json(&line)
    }

    fn beat(&mut self, b: &mut Beat) -> Result<()> {
        // SV from the model in force at the beat's onset (annotations are
        // read in file order, the pipeline's beats lag the samples).
        let onset_sample = self
            .fs()
            .map_or(0, |fs| (b.onset_s * fs).max(0.0).round() as u64);
        let ModelFrom { model, bsa_m2, .. } = self.model_for(onset_sample);
        let sv = model.estimate(b.sd_cm);
        b.sv_ml = sv.map(|s| s.sv_ml);
        b.sv_range_ml = sv.map(|s| (s.low_ml, s.high_ml));
        b.co_l_min = sv.map(|s| odm_dsp::haemo::co_l_min_from_sv_ml(s.sv_ml, b.hr_bpm));
        let index = self.beats;
        self.beats += 1;
        if b.accepted {
            self.accepted += 1;
            self.medians.add(b);
        }
        let line = match self.format {
            Format::Jsonl => {
                let index_bsa = |x: Option<f64>, f: fn(f64, f64) -> Option<f64>| {
                    x.zip(bsa_m2).and_then(|(x, bsa)| f(x, bsa))
                };
                let ci = index_bsa(b.co_l_min, haemo::ci_l_min_m2_from_co_l_min);
                let svi = index_bsa(b.sv_ml, haemo::svi_ml_m2_from_sv_ml);
                out::beat_json(index, b, ci, svi)
            }
            Format::Csv => out::beat_csv(index, b),
        };
        self.write(&line)?;
        self.fluid.push_beat(b);
        self.write_fluid()
    }

    fn write_fluid(&mut self) -> Result<()> {
        while let Some(r) = self.fluid.poll() {
            let line = fluid_json(&r);
            self.json(&line)?;
        }
        Ok(())
    }

    fn end(mut self, counters: &Counters, magic: &MagicStatus) -> Result<()> {
        if let Some(mut p) = self.pipeline.take() {
            p.finish(&mut self.collect);
            self.drain()?;
        }
        if !self.stream_written {
            // No PROBE_INFO anywhere: nothing could be converted to velocity.
            self.dropped_samples += self.held_samples;
            self.held_blocks.clear();
            self.start_stream()?;
        }
        self.fluid.finish();
        self.write_fluid()?;
        let duration_s = match (self.first_sample, self.fs()) {
            (Some(first), Some(fs)) => Some(self.last_end.saturating_sub(first) as f64 / fs),
            _ => None,
        };
        let mut l = JsonLine::new("summary");
        l.num("duration_s", duration_s, decimals::TIME_S)
            .int("beats", self.beats)
            .int("accepted", self.accepted)
            .raw("median", &self.medians.json());
        for (name, value) in counters.named() {
            l.int(name, value);
        }
        // Added fields.
        l.string(
            "magic",
            match magic {
                MagicStatus::Good => "good",
                MagicStatus::Damaged { .. } => "damaged",
                MagicStatus::RawStream => "raw_stream",
                MagicStatus::Truncated { .. } => "truncated",
            },
        )
        .int("samples_dropped_before_probe_info", self.dropped_samples)
        .int("events_dropped_before_probe_info", self.dropped_items);
        let line = l.finish();
        self.json(&line)?;
        self.dst.flush().context("writing standard output")
    }
}

/// The `fluid_challenge` line (fields in the spec's order; `complete` added).
fn fluid_json(r: &FluidChallengeResult) -> String {
    JsonLine::new("fluid_challenge")
        .num("bolus_t_s", Some(r.bolus_t_s), decimals::TIME_S)
        .num("volume_ml", r.volume_ml, 3)
        .pair(
            "before_window_s",
            r.before_window_s[0],
            r.before_window_s[1],
            decimals::TIME_S,
        )
        .pair(
            "after_window_s",
            r.after_window_s[0],
            r.after_window_s[1],
            decimals::TIME_S,
        )
        .int("beats_before", r.beats_before as u64)
        .int("beats_after", r.beats_after as u64)
        .num("sd_before_cm", r.sd_before_cm, decimals::SD)
        .num("sd_after_cm", r.sd_after_cm, decimals::SD)
        .num("sv_before_ml", r.sv_before_ml, decimals::SV)
        .num("sv_after_ml", r.sv_after_ml, decimals::SV)
        .num("delta_pct", r.delta_pct, decimals::PCT)
        .boolean("responsive", r.responsive)
        .boolean("complete", Some(r.complete))
        .finish()
}
