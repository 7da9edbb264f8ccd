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
//!   the input or the output is an error (one line naming the file, exit 1).
//!   A CRC-valid PROBE_INFO the DSP cannot run with (beam angle 90°,
//!   carrier 0, …) is skipped and counted in the summary's added
//!   `probe_info_rejected` (not `malformed`: its layout is right), with a
//!   `probe_info_rejected` event; the pipeline in force runs on.
//! - Samples before the first usable PROBE_INFO are **held** (up to
//!   [`HOLD_BEFORE_PROBE_INFO_S`] at the highest sample rate) and analysed
//!   once it arrives; older ones are dropped and counted in the summary's
//!   `samples_dropped_before_probe_info`. Events and annotations seen before
//!   the stream line are held too (bounded) and written after it, in order.
//! - The stream line waits for the area model (unless the command line fixes
//!   it): it is written when the first beat is due, [`SETTLE_AREA_MODEL_S`]
//!   of stream time after PROBE_INFO, or at the end of the input, so that a
//!   `patient` annotation written right after PROBE_INFO is stated in it.
//! - Stroke volume: `--aortic-diameter-mm` or `--age/--sex/--height-cm/
//!   --weight-kg` fix the area model for the whole run (they override
//!   `patient` annotations); otherwise each `patient` annotation sets the
//!   model for the beats whose onset is at or after its sample (an
//!   `area_model` event says so).
//! - Privacy: `patient` annotations are written with only the fields
//!   serial-stream.md defines, and odm's own messages name a field, never
//!   an annotation's value.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::PathBuf;

use anyhow::{Context, Result};
use odm_device_io::calibration::{Calibration, CalibrationStore, ProbeConditions};
use odm_device_io::{
    Annotation, Counters, DecodedItem, IqBlock, MAX_SAMPLE_RATE_HZ, MagicStatus,
    PATIENT_DIAMETER_FIELD, Payload, ProbeEvent, ProbeInfo, RecordingReader, SampleSpan,
};
use odm_dsp::area::{AreaError, Demographics, Sex};
use odm_dsp::calfit::probe_calibration_from;
use odm_dsp::fluid::{FluidChallengeResult, FluidConfig, FluidTracker};
use odm_dsp::haemo::{self, BsaFormula, FtcFormula, SvModel};
use odm_dsp::{Beat, Pipeline, PipelineConfig, PipelineSink, Status, StreamParams};

use crate::analysis_output::{self as out, JsonLine, QuantMedian, decimals};

/// Samples before the first PROBE_INFO are held for up to this long (at the
/// highest sample rate the spec allows); PROBE_INFO comes at least once a
/// second (serial-stream.md), so nothing is lost in a well-formed stream.
pub const HOLD_BEFORE_PROBE_INFO_S: u64 = 2;

/// Events and annotations held before the stream line, at most.
const HOLD_EVENTS: usize = 10_000;

/// The stream line (and what comes after it) is held for up to this much
/// stream time after the first usable PROBE_INFO, or until the first beat is
/// due, so that a `patient` annotation written right after PROBE_INFO (as
/// `odm simulate` and `odm record` do) is stated in it.
const SETTLE_AREA_MODEL_S: f64 = 2.0;

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
    /// Subtract steady tones far over the noise (20 dB and more in their
    /// bin) from the samples before the spectrum: the default since
    /// 2026-12-02 (docs/dsp.md, stage 3a); accepted for scripts written
    /// when it was an option.
    #[arg(long = "notch-strong-tones", overrides_with = "no_notch_strong_tones")]
    pub notch_strong_tones: bool,
    /// Leave steady tones in the samples: a tone as strong as the blood is
    /// then read as flow and no beat is found (the line canceller still
    /// removes weaker lines alone in the noise).
    #[arg(long = "no-notch-strong-tones", overrides_with = "notch_strong_tones")]
    pub no_notch_strong_tones: bool,
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
    /// Body surface area formula for CI and SVI: `mosteller` or `du-bois`.
    #[arg(long = "bsa-formula", default_value = "mosteller", value_parser = parse_bsa_formula)]
    pub bsa_formula: BsaFormula,
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
    s.parse()
}

/// `s` as a number within `lo ..= hi`, or a refusal that quotes `s` as
/// typed and names `what`.
pub(crate) fn parse_in(s: &str, lo: f64, hi: f64, what: &str) -> Result<f64, String> {
    let x: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number"))?;
    if x.is_finite() && x >= lo && x <= hi {
        Ok(x)
    } else {
        // As typed: `{x}` would spell 1e-300 out in 300 digits.
        Err(format!("{what} {} is outside {lo}..={hi}", s.trim()))
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
    parse_in(s, 0.3, 1.0, "descending fraction")
}
fn parse_window(s: &str) -> Result<f64, String> {
    parse_in(s, 1.0, 3600.0, "window (s)")
}
fn parse_bsa_formula(s: &str) -> Result<BsaFormula, String> {
    BsaFormula::from_word(s).ok_or_else(|| format!("`{s}` is not mosteller or du-bois"))
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
    analyse(src, name, opts, cli_model, fluid_config(opts), dst)
}

/// As [`analyse_stream`], for a live probe interface: no magic is read,
/// ANNOTATION frames from the wire are counted malformed and never applied
/// ([`RecordingReader::live`]), and the source's [`LinkEvent`]s are
/// written as event lines as they come (the stream line first, if it was
/// still held).
pub fn analyse_live<R: Read, W: Write>(src: R, name: String, opts: &Options, dst: W) -> Result<()> {
    let cli_model = cli_sv_model(opts)?;
    let fluid = fluid_config(opts);
    let reader = RecordingReader::live(src, name.clone());
    analyse_reader(reader, name, opts, cli_model, fluid, dst)
}

fn fluid_config(opts: &Options) -> FluidConfig {
    FluidConfig {
        before_s: opts.bolus_before_s,
        after_span_s: opts.bolus_after_s,
        rolling_s: opts.bolus_window_s,
        min_beats: opts.bolus_min_beats as usize,
        ..FluidConfig::default()
    }
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

/// BSA (by `--bsa-formula`) from the command-line demographics, when all
/// are given.
fn cli_bsa_m2(args: &Options) -> Option<f64> {
    match (args.height_cm, args.weight_kg) {
        (Some(h), Some(w)) if args.age.is_some() => Some(args.bsa_formula.bsa_m2(h, w)),
        _ => None,
    }
}

/// A number field of a `patient` annotation; the error names the field,
/// never a value.
fn patient_number(a: &Annotation, key: &str) -> Result<f64, String> {
    a.json
        .get(key)
        .and_then(serde_json::Value::as_f64)
        .ok_or_else(|| format!("patient annotation has no number `{key}`"))
}

/// The demographics of a `patient` annotation (sex unknown when absent).
fn patient_demographics(a: &Annotation) -> Result<Demographics, String> {
    let sex = match a.json.get("sex") {
        Some(v) => v.as_str().and_then(Sex::from_word).ok_or_else(|| {
            "patient annotation field `sex` is not female, male or unknown".to_string()
        })?,
        None => Sex::Unknown,
    };
    Ok(Demographics {
        age_years: patient_number(a, "age_years")?,
        sex,
        height_cm: patient_number(a, "height_cm")?,
        weight_kg: patient_number(a, "weight_kg")?,
    })
}

/// BSA (by `formula`) from a `patient` annotation's demographics, when
/// they are complete and within the model's ranges.
fn patient_bsa_m2(a: &Annotation, formula: BsaFormula) -> Option<f64> {
    patient_demographics(a)
        .ok()
        .filter(|d| d.validate().is_ok())
        .map(|d| d.bsa_m2(formula))
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
    let reader =
        RecordingReader::with_name(src, name.clone()).with_context(|| format!("reading {name}"))?;
    analyse_reader(reader, name, args, cli_model, fluid, dst)
}

fn analyse_reader<R: Read, W: Write>(
    mut reader: RecordingReader<R>,
    name: String,
    args: &Options,
    cli_model: Option<SvModel>,
    fluid: FluidConfig,
    dst: W,
) -> Result<()> {
    let mut a = Analyser::new(args, cli_model, fluid, dst, name.clone());
    a.begin()?;
    loop {
        let item = match reader.next_item() {
            Ok(Some(item)) => item,
            Ok(None) => break,
            Err(e) => match LinkEvent::from_read_error(&e) {
                Some(link) => {
                    a.link_event(&link.0)?;
                    continue;
                }
                None => return Err(e).with_context(|| format!("reading {name}")),
            },
        };
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

/// Something seen before the stream line is written, written after it in
/// the order it was seen.
enum Held {
    Event(ProbeEvent),
    Annotation(Annotation),
    /// A pipeline status (gap, discontinuity, signal lost/regained).
    Status(Status),
    /// A PROBE_INFO the DSP cannot run with, skipped.
    ProbeInfoRejected(RejectedProbeInfo),
}

/// An event about a live probe interface itself (`no_data`,
/// `data_resumed`), raised by a live source between reads: carried as the
/// payload of an [`io::ErrorKind::WouldBlock`] read error, which
/// [`analyse_live`] writes as an event line and then reads on. The
/// object's `type` is `"event"`.
#[derive(Debug)]
pub struct LinkEvent(pub serde_json::Value);

impl std::fmt::Display for LinkEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "link event {}", self.0)
    }
}

impl std::error::Error for LinkEvent {}

impl LinkEvent {
    /// As a read error, for a live source's `read` to return.
    pub fn into_io_error(self) -> io::Error {
        io::Error::new(io::ErrorKind::WouldBlock, self)
    }

    /// The link event a read error carries, if it is one.
    fn from_read_error(e: &odm_device_io::RecordingError) -> Option<&LinkEvent> {
        match e {
            odm_device_io::RecordingError::Io { source, .. }
                if source.kind() == io::ErrorKind::WouldBlock =>
            {
                source.get_ref()?.downcast_ref::<LinkEvent>()
            }
            _ => None,
        }
    }
}

/// A skipped PROBE_INFO, for its `probe_info_rejected` event line.
struct RejectedProbeInfo {
    /// End of the last IQ block seen before it (its stream time).
    at_sample: Option<u64>,
    /// Byte offset of its frame in the input.
    offset: u64,
    /// Why the DSP cannot use it (names the parameter).
    reason: String,
}

/// How a `patient` annotation is acted on.
#[derive(Clone, Copy, PartialEq, Eq)]
enum PatientMode {
    /// Set the area model from its sample on (announced by an event).
    Apply,
    /// Already applied before the stream line: only announce it.
    Announce,
}

/// The area model in force from a sample index on.
#[derive(Clone, Copy)]
struct ModelFrom {
    at_sample: u64,
    model: SvModel,
    /// Body surface area (by `--bsa-formula`) when demographics are known.
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
    /// Time the flow was reversed under pipelines already replaced, s.
    reverse_flow_s_before: f64,
    /// Aliased signal time of pipelines replaced by a change of stream
    /// parameters, s, and the lowest velocity limit any of them had.
    aliased_s_before: f64,
    aliasing_limit_cm_s: f64,
    /// Beats rejected as `aliased` (past the unwrapping).
    aliased_beats: u64,
    params: Option<StreamParams>,
    probe: Option<ProbeInfo>,
    stream_written: bool,
    /// Sample index at which the held stream line is written at the latest
    /// (set with the first usable PROBE_INFO).
    settle_at: Option<u64>,
    /// End of the last IQ block received (held or analysed).
    last_seen_end: Option<u64>,
    /// The end of the samples the replaced pipeline saw, until the first
    /// block of the pipeline that replaced it.
    replaced_end: Option<u64>,
    /// End of the last IQ block analysed (stream time reached).
    last_iq_end: Option<u64>,
    /// PROBE_INFO frames skipped because the DSP cannot use them (the
    /// summary's `probe_info_rejected`).
    rejected_probe_info: u64,
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
    /// Samples the IQ blocks span, segment by segment (the duration).
    span: SampleSpan,
    /// Where probe calibrations are looked up; `None` with `--no-calibration`.
    cal_store: Option<CalibrationStore>,
    /// The last probe serial looked up, and the calibration found for it.
    cal_for: Option<(String, Option<Calibration>)>,
    /// The stream parameters `cal_for` was decided under.
    cal_conditions: Option<ProbeConditions>,
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
            reverse_flow_s_before: 0.0,
            aliased_s_before: 0.0,
            aliasing_limit_cm_s: f64::INFINITY,
            aliased_beats: 0,
            params: None,
            probe: None,
            stream_written: false,
            settle_at: None,
            last_seen_end: None,
            replaced_end: None,
            last_iq_end: None,
            rejected_probe_info: 0,
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
            span: SampleSpan::default(),
            cal_store: if args.no_calibration {
                None
            } else if let Some(dir) = &args.calibrations {
                // A store named but not there is most likely a typo: said,
                // not silently taken for "no calibration".
                if !dir.is_dir() {
                    eprintln!(
                        "odm analyse: warning: calibration store {} is not a directory; no probe calibration will be found in it",
                        dir.display()
                    );
                }
                Some(CalibrationStore::new(dir))
            } else {
                // No default store (no home directory): nothing to apply.
                CalibrationStore::open_default().ok()
            },
            cal_for: None,
            cal_conditions: None,
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
                self.last_seen_end = Some(block.end_sample());
                if self.pipeline.is_some() {
                    self.iq(&block)
                } else {
                    self.hold(block);
                    Ok(())
                }
            }
            Payload::Event(ev) => {
                if ev.code == odm_device_io::event_code::GAIN_CHANGED
                    && let Some(p) = self.pipeline.as_mut()
                {
                    p.receive_gain_changed(ev.at_sample, ev.value);
                }
                if self.stream_written {
                    self.event_line(&ev)
                } else {
                    self.hold_item(Held::Event(ev));
                    Ok(())
                }
            }
            Payload::Annotation(ann) => {
                if self.stream_written {
                    self.annotation(&ann, PatientMode::Apply)
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
            // Another probe on the same interface settings: the stream
            // line's serial no longer holds.
            let swapped = self
                .probe
                .as_ref()
                .is_some_and(|p| p.serial_str() != info.serial_str());
            self.probe = Some(info);
            self.apply_calibration();
            return if swapped && self.stream_written {
                let t = self.last_seen_end.and_then(|e| self.t_s(e));
                self.stream_parameters_line(t)
            } else {
                Ok(())
            };
        }
        let mut cfg = PipelineConfig {
            ftc: self.args.ftc,
            notch_strong_tones: !self.args.no_notch_strong_tones,
            ..PipelineConfig::default()
        };
        cfg.sv_model = self.current_model();
        let pipeline = match Pipeline::new(cfg, params) {
            Ok(p) => p,
            // A CRC-valid PROBE_INFO whose parameters the DSP cannot use
            // (beam angle 90°, carrier 0, …): nothing in the stream may stop
            // the receiver (serial-stream.md rule 6). It is skipped and
            // counted apart, the pipeline in force (if any) runs on, and
            // without one the samples wait for a usable PROBE_INFO.
            Err(e) => {
                let r = RejectedProbeInfo {
                    at_sample: self.last_seen_end,
                    offset,
                    reason: e.to_string(),
                };
                self.rejected_probe_info += 1;
                eprintln!(
                    "odm analyse: warning: {}: PROBE_INFO at byte {offset} skipped: {}",
                    self.name, r.reason
                );
                return if self.stream_written {
                    self.probe_info_rejected_line(&r)
                } else {
                    self.hold_item(Held::ProbeInfoRejected(r));
                    Ok(())
                };
            }
        };
        // A change of stream parameters: the old pipeline's last beats first.
        let changed = self.pipeline.is_some();
        // The stream line went out before any usable PROBE_INFO (a live
        // link event forced it): this one is stated by an event.
        let first_after_stream_line = self.stream_written && self.params.is_none();
        // When the old stream ended, in its own time.
        let changed_at_s = self.last_seen_end.and_then(|e| self.t_s(e));
        if changed {
            self.replaced_end = self.last_iq_end;
        }
        if let Some(mut old) = self.pipeline.take() {
            old.finish(&mut self.collect);
            self.reverse_flow_s_before += old.reverse_flow_s();
            if old.aliased_s() > 0.0 {
                self.aliased_s_before += old.aliased_s();
                self.aliasing_limit_cm_s = self.aliasing_limit_cm_s.min(old.max_velocity_cm_s());
            }
            self.drain()?;
        }
        self.pipeline = Some(pipeline);
        self.params = Some(params);
        self.probe = Some(info);
        self.apply_calibration();
        if changed && self.stream_written {
            self.stream_parameters_line(changed_at_s)?;
        } else if first_after_stream_line {
            let t = self.last_seen_end.and_then(|e| self.t_s(e));
            self.stream_parameters_line(t)?;
        }
        if !self.stream_written {
            if self.cli_model.is_some() {
                // The area model is fixed: nothing to wait for.
                self.start_stream()?;
            } else if self.settle_at.is_none() {
                let settle = (SETTLE_AREA_MODEL_S * f64::from(params.sample_rate_hz)) as u64;
                self.settle_at = self.last_seen_end.map(|e| e.saturating_add(settle));
            }
            // Samples held before PROBE_INFO, analysed now.
            let blocks = std::mem::take(&mut self.held_blocks);
            self.held_samples = 0;
            for b in blocks {
                self.iq(&b)?;
            }
        }
        Ok(())
    }

    /// An event of the added kind `stream_parameters`: the stream line's
    /// parameters and probe serial no longer hold from `t_s` on (a
    /// PROBE_INFO with others, or another probe); `t` is the end of the
    /// samples seen before it, in the old stream's time. Times after it are
    /// in the new sample rate (analysis-output.md: `sample_index /
    /// sample_rate_hz`), so they may step back; when the sample counter
    /// does, a `discontinuity` event follows, as within one stream.
    fn stream_parameters_line(&mut self, t: Option<f64>) -> Result<()> {
        let (Some(info), Some(p)) = (&self.probe, self.params) else {
            return Ok(());
        };
        let line = JsonLine::new("event")
            .num("t_s", t, decimals::TIME_S)
            .string("kind", "stream_parameters")
            .int("sample_rate_hz", u64::from(p.sample_rate_hz))
            .int("carrier_hz", u64::from(p.carrier_hz))
            .num("beam_angle_deg", Some(p.beam_angle_deg), 2)
            .string("probe_serial", &info.serial_str())
            // The calibration applied from here on (another probe, another
            // calibration, or none).
            .raw("probe_calibration", &self.probe_calibration_json())
            .finish();
        self.json(&line)
    }

    fn probe_info_rejected_line(&mut self, r: &RejectedProbeInfo) -> Result<()> {
        let t = r.at_sample.and_then(|s| self.t_s(s));
        let line = JsonLine::new("event")
            .num("t_s", t, decimals::TIME_S)
            .string("kind", "probe_info_rejected")
            .int("byte_offset", r.offset)
            .string("reason", &r.reason)
            .finish();
        self.json(&line)
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
        let conditions = ProbeConditions::of(info);
        let decided = self.cal_for.as_ref().is_some_and(|(s, _)| *s == serial)
            && self.cal_conditions == Some(conditions);
        if !decided {
            let found = match store.lookup(&serial) {
                Ok(found) => found,
                Err(e) => {
                    eprintln!(
                        "odm analyse: warning: calibration of probe {serial:?} not applied: {e}"
                    );
                    None
                }
            };
            // Made under another carrier or beam angle than the probe now
            // reports, its gain does not hold (docs/calibration.md).
            let found = found.filter(|c| match c.applies_to(info) {
                Ok(()) => true,
                Err(why) => {
                    eprintln!(
                        "odm analyse: warning: calibration of probe {serial:?} not applied: {why}"
                    );
                    false
                }
            });
            self.cal_for = Some((serial, found));
            self.cal_conditions = Some(conditions);
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

    /// A live source's event about the link: written at once, after the
    /// stream line, which is written now if it was still held (its probe
    /// fields null when no PROBE_INFO has come; a later one is then stated
    /// by a `stream_parameters` event).
    fn link_event(&mut self, event: &serde_json::Value) -> Result<()> {
        if self.format != Format::Jsonl {
            return Ok(());
        }
        if !self.stream_written {
            self.start_stream()?;
        }
        self.write(&format!("{event}\n"))
    }

    /// Writes the stream line, then everything held before it, in order.
    /// Called once: when the area model is settled (first beat due,
    /// [`SETTLE_AREA_MODEL_S`] of stream time after PROBE_INFO, a model
    /// fixed on the command line) or at the end of the input.
    fn start_stream(&mut self) -> Result<()> {
        let held = std::mem::take(&mut self.held_items);
        // `patient` annotations seen before PROBE_INFO set the model the
        // stream line states.
        for h in &held {
            if let Held::Annotation(a) = h
                && a.kind() == "patient"
            {
                if let Some(m) = self.cli_model {
                    self.patient_bsa_under_cli_model(a, m);
                } else if let Ok((m, bsa_m2)) = self.model_from_patient(a) {
                    self.push_model(a.at_sample, m, bsa_m2);
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
                Held::Annotation(a) => self.annotation(&a, PatientMode::Announce)?,
                Held::Status(s) => self.status(&s)?,
                Held::ProbeInfoRejected(r) => self.probe_info_rejected_line(&r)?,
            }
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
            // As given: the K in use, not rounded.
            FtcFormula::Linear { k_ms_per_bpm } => {
                l.num_exact("ftc_linear_k_ms_per_bpm", Some(k_ms_per_bpm))
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
            .string("bsa_formula", self.args.bsa_formula.name())
            .num("bsa_m2", self.current_bsa_m2(), 4)
            // serial-stream.md: a receiver holds or drops the samples
            // before the first PROBE_INFO "and says which". All of them
            // are known here (the line follows the first usable one, or the
            // end of an input without one); the summary counts the dropped.
            .string(
                "samples_before_probe_info",
                if self.dropped_samples == 0 {
                    "held"
                } else {
                    "dropped"
                },
            );
        let fc = *self.fluid.config();
        l.num("fluid_before_s", Some(fc.before_s), 3)
            .num("fluid_after_span_s", Some(fc.after_span_s), 3)
            .num("fluid_rolling_s", Some(fc.rolling_s), 3)
            .int("fluid_min_beats", fc.min_beats as u64);
        // Added field: the probe calibration applied, if any.
        l.raw("probe_calibration", &self.probe_calibration_json());
        let line = l.finish();
        self.json(&line)
    }

    /// The probe calibration applied now, as the stream line and a
    /// `stream_parameters` event state it: `null`, or its gain, offset,
    /// date, last day in date and whether it passed its acceptance limits
    /// (a failed one with a straight-line fit is installed as a
    /// correction, docs/calibration.md).
    fn probe_calibration_json(&self) -> String {
        match self.cal_for.as_ref().and_then(|(_, c)| c.as_ref()) {
            Some(c) => {
                let mut cal = JsonLine::object();
                cal.num("gain", Some(c.gain), 5)
                    .num("offset_cm_s", Some(c.offset_cm_s), 3)
                    .string("date", &c.date.to_string())
                    .string("valid_until", &c.valid_until.to_string())
                    .boolean("pass", Some(c.pass));
                cal.finish_object()
            }
            None => "null".to_string(),
        }
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
    /// `mode` is [`PatientMode::Announce`] for annotations held before the
    /// stream line (their model is already in it). A `patient` annotation is
    /// written with only the fields serial-stream.md defines for it, so an
    /// identifier a writer put in it (name, NHS number, date of birth) is
    /// not passed on.
    fn annotation(&mut self, a: &Annotation, mode: PatientMode) -> Result<()> {
        let json = if a.kind() == "patient" {
            patient_fields_only(&a.json)
        } else {
            serde_json::to_string(&a.json).unwrap_or_else(|_| "null".into())
        };
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
            "patient" => {
                if let Some(m) = self.cli_model {
                    if mode == PatientMode::Apply {
                        self.patient_bsa_under_cli_model(a, m);
                    }
                    return Ok(());
                }
                let t = self.t_s(a.at_sample);
                match self.model_from_patient(a) {
                    Ok((m, bsa_m2)) => {
                        if mode == PatientMode::Apply {
                            self.push_model(a.at_sample, m, bsa_m2);
                            if let Some(p) = self.pipeline.as_mut() {
                                p.set_sv_model(m);
                            }
                        }
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

    /// The area model of a `patient` annotation and the body surface area
    /// its demographics give, or why it cannot be used. A measured
    /// `aortic_diameter_mm` (odm's own field, written by the monitor beside
    /// the spec's demographics; docs/haemodynamics.md) wins over the
    /// population model, as on the monitor and the command line. The reason
    /// names the field, never its value: an annotation may carry patient
    /// identifiers where numbers or words belong.
    fn model_from_patient(&self, a: &Annotation) -> Result<(SvModel, Option<f64>), String> {
        let out_of_range = |e: AreaError, whose: &str| match e.patient_field_range() {
            Some((field, (lo, hi))) => {
                format!("patient annotation field `{field}` is outside {lo}..={hi}{whose}")
            }
            None => "patient annotation cannot be used for stroke volume".to_string(),
        };
        let num = |k: &str| patient_number(a, k);
        let demographics = || patient_demographics(a);
        let (model, bsa_m2) = if a.json.contains_key(PATIENT_DIAMETER_FIELD) {
            let model =
                SvModel::measured(num(PATIENT_DIAMETER_FIELD)?).map_err(|e| out_of_range(e, ""))?;
            // BSA (for CI and SVI) from the demographics beside it, if usable.
            (model, patient_bsa_m2(a, self.args.bsa_formula))
        } else {
            let d = demographics()?;
            let model = SvModel::population(d)
                .map_err(|e| out_of_range(e, ", the range of the population model"))?;
            (model, Some(d.bsa_m2(self.args.bsa_formula)))
        };
        // The fraction comes from the command line, not the annotation.
        let model = model
            .with_descending_fraction(self.args.descending_fraction)
            .map_err(|e| e.to_string())?;
        Ok((model, bsa_m2))
    }

    /// A `patient` annotation under an area model fixed on the command
    /// line: the model stays, but when the command line gave no
    /// demographics the annotation's give the BSA for CI and SVI
    /// (docs/haemodynamics.md: "the demographics beside it still give the
    /// BSA").
    fn patient_bsa_under_cli_model(&mut self, a: &Annotation, model: SvModel) {
        if cli_bsa_m2(self.args).is_none()
            && let Some(bsa) = patient_bsa_m2(a, self.args.bsa_formula)
        {
            self.push_model(a.at_sample, model, Some(bsa));
        }
    }

    fn push_model(&mut self, at_sample: u64, model: SvModel, bsa_m2: Option<f64>) {
        // Bounded: a flood of annotations keeps only the latest 64.
        if self.models.len() >= 64 {
            self.models.remove(0);
        }
        let at = self.models.partition_point(|m| m.at_sample <= at_sample);
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
        if !self.stream_written && self.settle_at.is_none() {
            // PROBE_INFO came before any sample: the wait starts here.
            let settle = self.fs().map_or(0, |fs| (SETTLE_AREA_MODEL_S * fs) as u64);
            self.settle_at = Some(block.first_sample.saturating_add(settle));
        }
        if self.pipeline.is_none() {
            return Ok(());
        }
        // The first block of a pipeline that replaced another (new stream
        // parameters): a counter that went back is a discontinuity, which
        // the new pipeline, having seen no sample, cannot see itself.
        if let (Some(old_end), Some(fs)) = (self.replaced_end.take(), self.fs())
            && block.first_sample < old_end
        {
            let s = Status::Discontinuity {
                t_s: block.first_sample as f64 / fs,
            };
            if self.stream_written {
                self.status(&s)?;
            } else {
                self.hold_item(Held::Status(s));
            }
        }
        let Some(p) = self.pipeline.as_mut() else {
            return Ok(());
        };
        p.push_flagged(
            block.first_sample,
            &block.samples,
            block.clipped(),
            block.muted(),
            &mut self.collect,
        );
        let end = block.end_sample();
        self.span.observe(block);
        self.last_iq_end = Some(end);
        self.drain()?;
        if !self.stream_written && self.settle_at.is_some_and(|s| end >= s) {
            self.start_stream()?;
        }
        if let Some(t) = self.t_s(end) {
            self.fluid.advance_to(t - FLUID_SETTLE_S);
        }
        self.write_fluid()
    }

    /// Writes what the pipeline produced, in the order it was produced.
    /// Before the stream line, statuses are held; the first beat writes it.
    fn drain(&mut self) -> Result<()> {
        let mut items = std::mem::take(&mut self.collect.items);
        for item in items.drain(..) {
            match item {
                Produced::Status(s) if !self.stream_written => {
                    self.hold_item(Held::Status(s));
                }
                Produced::Status(s) => self.status(&s)?,
                Produced::Beat(mut b) => {
                    if !self.stream_written {
                        self.start_stream()?;
                    }
                    self.beat(&mut b)?;
                }
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

    /// Writes a status line and acts on a discontinuity.
    fn status(&mut self, s: &Status) -> Result<()> {
        self.status_line(s)?;
        if matches!(s, Status::Discontinuity { .. }) {
            self.restart_segment()?;
        }
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
        if b.reject_reason == Some(odm_dsp::RejectReason::Aliased) {
            self.aliased_beats += 1;
        }
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
        // The probe's I/Q imbalance as the DSP estimated it (the mirror
        // image's level, dB), and whether it was being corrected: an
        // engineer's cue that the demodulator wants a service.
        let iq_image_db = self.pipeline.as_ref().and_then(|p| p.iq_image_db());
        let iq_corrected = self.pipeline.as_ref().map(|p| p.iq_correction().is_some());
        // Q's power against I's: a dead or broken channel (10 dB or more
        // either way) mirrors the flow at full power into the reverse half.
        let iq_channel_ratio_db = self.pipeline.as_ref().and_then(|p| p.iq_channel_ratio_db());
        if self
            .pipeline
            .as_ref()
            .is_some_and(Pipeline::iq_channel_fault)
        {
            eprintln!(
                "odm analyse: warning: {}: one I/Q channel is dead or broken (Q {:.0} dB against I): \
                 the probe interface needs a service; beats may be rejected as interference",
                self.name,
                iq_channel_ratio_db.unwrap_or(f64::NAN).clamp(-99.0, 99.0)
            );
        }
        // Time the pulsatile flow was in the reverse half (I and Q swapped
        // at the interface, or the beam on flow towards the probe): no beat
        // can be found then, and the summary says why.
        let reverse_flow_s =
            self.reverse_flow_s_before + self.pipeline.as_ref().map_or(0.0, |p| p.reverse_flow_s());
        if reverse_flow_s > 0.0 {
            eprintln!(
                "odm analyse: warning: {}: the flow was in the reverse direction for {reverse_flow_s:.1} s \
                 (I and Q swapped at the probe interface, or the beam on flow towards the probe)",
                self.name
            );
        }
        // Time the systole's flow wrapped round the top of the band: the
        // peak velocity is above what the sample rate carries. The analysis
        // follows the edge up to 1.75 × that; beats past it are rejected
        // as `aliased`.
        let mut aliased_s = self.aliased_s_before;
        let mut limit_cm_s = self.aliasing_limit_cm_s;
        if let Some(p) = self.pipeline.as_ref().filter(|p| p.aliased_s() > 0.0) {
            aliased_s += p.aliased_s();
            limit_cm_s = limit_cm_s.min(p.max_velocity_cm_s());
        }
        if let Some(mut p) = self.pipeline.take() {
            p.finish(&mut self.collect);
            self.drain()?;
        }
        if self.aliased_beats > 0 {
            eprintln!(
                "odm analyse: warning: {}: the flow exceeded the {limit_cm_s:.0} cm/s the sample rate \
                 carries (aliasing, {aliased_s:.1} s) by more than the analysis can follow (1.75 ×): \
                 {} beats rejected as aliased; use a higher sample rate",
                self.name, self.aliased_beats
            );
        } else if aliased_s > 0.0 {
            eprintln!(
                "odm analyse: warning: {}: the flow exceeded the {limit_cm_s:.0} cm/s the sample rate \
                 carries for {aliased_s:.1} s (aliasing); its velocities were followed past the limit",
                self.name
            );
        }
        if !self.stream_written {
            // No usable PROBE_INFO anywhere: nothing could be converted to
            // velocity. (With one, the held samples were analysed already.)
            self.dropped_samples += self.held_samples;
            self.held_samples = 0;
            self.held_blocks.clear();
            self.start_stream()?;
        }
        // Stream time reached: a challenge's after-window ends there at the
        // latest, so the window it states is the one averaged.
        if let Some(t) = self.last_iq_end.and_then(|e| self.t_s(e)) {
            self.fluid.advance_to(t);
        }
        self.fluid.finish();
        self.write_fluid()?;
        // The segments' spans added up: after a restarted sender, the
        // time analysed, not the span of sample indices.
        let duration_s = match (self.span.samples(), self.fs()) {
            (Some(samples), Some(fs)) => Some(samples as f64 / fs),
            _ => None,
        };
        if self.format == Format::Csv {
            // CSV has no summary line (analysis-output.md), so what was
            // skipped (cli.md: "it reports what it skipped in the summary
            // counters") is said on standard error instead.
            let skipped: Vec<String> = counters
                .named()
                .into_iter()
                .filter(|&(name, value)| value > 0 && !matches!(name, "bytes_read" | "frames_good"))
                .map(|(name, value)| format!("{name} {value}"))
                .collect();
            if !skipped.is_empty() {
                eprintln!(
                    "odm analyse: warning: {}: damaged input, skipped (CSV has no summary line): {}",
                    self.name,
                    skipped.join(", ")
                );
            }
        }
        let mut l = JsonLine::new("summary");
        l.num("duration_s", duration_s, decimals::TIME_S)
            .int("beats", self.beats)
            .int("accepted", self.accepted)
            .raw("median", &self.medians.json());
        // The receiver's counters exactly as serial-stream.md defines
        // them: a PROBE_INFO the DSP cannot use matches its layout, so it
        // is not `malformed`; it has its own added counter below.
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
        .int("probe_info_rejected", self.rejected_probe_info)
        .int("samples_dropped_before_probe_info", self.dropped_samples)
        .int("events_dropped_before_probe_info", self.dropped_items);
        l.num("iq_image_db", iq_image_db, 1)
            .boolean("iq_corrected", iq_corrected)
            .num(
                "iq_channel_ratio_db",
                iq_channel_ratio_db.map(|db| db.clamp(-99.0, 99.0)),
                1,
            )
            .num("reverse_flow_s", Some(reverse_flow_s), decimals::TIME_S)
            .num("aliased_s", Some(aliased_s), decimals::TIME_S);
        let line = l.finish();
        self.json(&line)?;
        self.dst.flush().context("writing standard output")
    }
}

/// A `patient` annotation object with only the fields serial-stream.md
/// defines for it and odm's measured diameter, each only when it has the
/// defined type (`sex` one of its words): whatever else a writer put in it
/// is not passed on.
fn patient_fields_only(obj: &serde_json::Map<String, serde_json::Value>) -> String {
    use serde_json::Value;
    let mut l = JsonLine::object();
    l.string("type", "patient");
    for k in [
        "age_years",
        "height_cm",
        "weight_kg",
        PATIENT_DIAMETER_FIELD,
    ] {
        if let Some(v) = obj.get(k).filter(|v| v.is_number()) {
            l.raw(k, &v.to_string());
        }
    }
    if let Some(s) = obj.get("sex").and_then(Value::as_str)
        && Sex::from_word(s).is_some()
    {
        l.string("sex", s);
    }
    l.finish_object()
}

/// The `fluid_challenge` line (fields in the spec's order; `complete` and
/// `sv_model_changed` added).
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
        .boolean("sv_model_changed", Some(r.sv_model_changed))
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use odm_device_io::Encoder;
    use odm_simulator::{SimConfig, VirtualProbe};
    use serde_json::{Value, json};

    #[derive(Parser)]
    struct TestArgs {
        #[command(flatten)]
        opts: Options,
    }

    fn opts(extra: &[&str]) -> Options {
        let mut argv = vec!["analyse", "--no-calibration"];
        argv.extend_from_slice(extra);
        TestArgs::parse_from(argv).opts
    }

    fn payloads(seed: u64, duration_s: f64) -> Vec<Payload> {
        payloads_of(SimConfig {
            seed,
            duration_s: Some(duration_s),
            hr_bpm: 80.0,
            ..SimConfig::default()
        })
    }

    fn payloads_of(cfg: SimConfig) -> Vec<Payload> {
        let mut probe = VirtualProbe::new(cfg).unwrap();
        let mut out = Vec::new();
        while let Some(p) = probe.next_payload() {
            out.push(p);
        }
        assert!(matches!(out[0], Payload::ProbeInfo(_)));
        out
    }

    fn probe_info(p: &[Payload]) -> ProbeInfo {
        match &p[0] {
            Payload::ProbeInfo(i) => i.clone(),
            _ => unreachable!(),
        }
    }

    fn patient(at_sample: u64, fields: Value) -> Payload {
        let Value::Object(mut json) = fields else {
            unreachable!()
        };
        json.insert("type".into(), "patient".into());
        Payload::Annotation(Annotation { at_sample, json })
    }

    /// Runs `odm analyse` on the raw stream of `payloads`: (exit ok, lines).
    fn run(payloads: &[Payload], extra: &[&str]) -> (bool, Vec<Value>, String) {
        let mut enc = Encoder::new();
        let mut bytes = Vec::new();
        for p in payloads {
            enc.encode(p, &mut bytes).unwrap();
        }
        run_bytes(&bytes, extra)
    }

    /// Runs `odm analyse` on `bytes`: (exit ok, lines, text).
    fn run_bytes(bytes: &[u8], extra: &[&str]) -> (bool, Vec<Value>, String) {
        let mut out = Vec::new();
        let ok = analyse_stream(bytes, "test".into(), &opts(extra), &mut out).is_ok();
        let text = String::from_utf8(out).unwrap();
        let lines = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        (ok, lines, text)
    }

    fn of_kind<'a>(lines: &'a [Value], kind: &str) -> Vec<&'a Value> {
        lines.iter().filter(|l| l["kind"] == kind).collect()
    }

    fn beats(lines: &[Value]) -> Vec<&Value> {
        lines.iter().filter(|l| l["type"] == "beat").collect()
    }

    /// The strong-tone notch is the default and `--no-notch-strong-tones`
    /// reaches the pipeline: a tone at 1 kHz as strong as the blood (≈ 40
    /// dB over the noise in its bin at 20 dB) added to the virtual probe's
    /// samples leaves no beat accepted without the notch (the tone is read
    /// as flow, the safe failure), and most accepted by default and with
    /// the old opt-in flag, with no summary median moved far from the
    /// clean run's.
    #[test]
    fn the_strong_tone_notch_recovers_the_beats_by_default_and_can_be_turned_off() {
        // Without clutter, so that the received power is the blood's.
        let clean = payloads_of(SimConfig {
            seed: 23,
            duration_s: Some(20.0),
            hr_bpm: 80.0,
            clutter_db: None,
            snr_db: Some(20.0),
            ..SimConfig::default()
        });
        let mut toned = clean.clone();
        let fs = f64::from(probe_info(&clean).sample_rate_hz);
        // As strong as the blood: the tone's power is the clean samples'
        // mean power.
        let (mut sum, mut n) = (0.0, 0.0);
        for item in &clean {
            if let Payload::Iq(b) = item {
                for s in &b.samples {
                    sum += f64::from(s[0]).powi(2) + f64::from(s[1]).powi(2);
                    n += 1.0;
                }
            }
        }
        let amp = (sum / n).sqrt();
        for item in &mut toned {
            if let Payload::Iq(b) = item {
                for (k, s) in b.samples.iter_mut().enumerate() {
                    let ph =
                        std::f64::consts::TAU * 1_013.0 * (b.first_sample + k as u64) as f64 / fs;
                    let add =
                        |x: i16, d: f64| (f64::from(x) + d).round().clamp(-32768.0, 32767.0) as i16;
                    s[0] = add(s[0], amp * ph.cos());
                    s[1] = add(s[1], amp * ph.sin());
                }
            }
        }
        let accepted = |lines: &[Value]| {
            beats(lines)
                .iter()
                .filter(|b| b["accepted"] == true)
                .count()
        };
        let (ok, plain, _) = run(&toned, &["--no-notch-strong-tones"]);
        assert!(ok);
        assert_eq!(accepted(&plain), 0, "accepted without the notch");
        let (ok, flagged, _) = run(&toned, &["--notch-strong-tones"]);
        assert!(ok);
        let (ok, notched, _) = run(&toned, &[]);
        assert!(ok);
        assert_eq!(flagged, notched, "the old flag names the default");
        let (_, reference, _) = run(&clean, &[]);
        let (n, all) = (accepted(&notched), accepted(&reference));
        assert!(
            // The beats of the first ≈ 3 s are lost while the tone is found.
            n + 6 >= all && all >= 20,
            "{n} accepted with the notch, {all} clean {:?}",
            beats(&notched)
                .iter()
                .map(|b| format!("{}:{}", b["onset_s"], b["reject_reason"]))
                .collect::<Vec<_>>()
        );
        let median = |lines: &[Value], key: &str| {
            lines.iter().find(|l| l["type"] == "summary").unwrap()["median"][key]
                .as_f64()
                .unwrap()
        };
        for (key, tol) in [("sd_cm", 0.03), ("pv_cm_s", 0.03), ("ft_ms", 0.03)] {
            let (a, b) = (median(&notched, key), median(&reference, key));
            assert!(
                (a / b - 1.0).abs() < tol,
                "{key}: {a} with the notch, {b} clean"
            );
        }
    }

    /// Sample indices near the top of `u64`: the block that would run past
    /// `u64::MAX` is malformed (skipped and counted), the next block starts
    /// from 0 again (a discontinuity), and the duration is the two
    /// segments' time, not the span of the indices (2⁶⁴ samples).
    #[test]
    fn a_counter_at_the_top_of_u64_neither_wraps_nor_panics() {
        let shift = u64::MAX - 40_099;
        let mut p = payloads(17, 4.0);
        let mut blocks = 0;
        for item in &mut p {
            if let Payload::Iq(b) = item {
                b.first_sample = b.first_sample.wrapping_add(shift);
                blocks += 1;
            }
        }
        // The straddling block cannot be encoded either: write its bytes.
        let mut enc = Encoder::new();
        let mut bytes = Vec::new();
        let mut straddling = 0;
        for item in &p {
            if let Payload::Iq(b) = item
                && b.first_sample.checked_add(b.samples.len() as u64).is_none()
            {
                let mut payload = Vec::new();
                let mut at_zero = b.clone();
                at_zero.first_sample = 0;
                odm_device_io::encode_payload(&Payload::Iq(at_zero), &mut payload).unwrap();
                payload[..8].copy_from_slice(&b.first_sample.to_le_bytes());
                let seq = enc.next_seq();
                odm_device_io::encode_raw_frame(seq, 0x02, &payload, &mut bytes).unwrap();
                enc = Encoder::starting_at(seq.wrapping_add(1));
                straddling += 1;
                continue;
            }
            enc.encode(item, &mut bytes).unwrap();
        }
        assert_eq!(straddling, 1, "{blocks} blocks");
        let (ok, lines, _) = run_bytes(&bytes, &[]);
        assert!(ok);
        let summary = lines.last().unwrap();
        assert_eq!(summary["malformed"], 1);
        assert_eq!(summary["discontinuities"], 1);
        let duration_s = summary["duration_s"].as_f64().unwrap();
        let ProbeInfo { sample_rate_hz, .. } = probe_info(&p);
        let block_s = 200.0 / f64::from(sample_rate_hz);
        assert!(
            (4.0 - block_s - 1e-3..=4.0).contains(&duration_s),
            "{duration_s} s"
        );
    }

    #[test]
    fn the_summary_states_the_probes_iq_imbalance() {
        let (_, a, _) = run(&payloads(13, 10.0), &[]);
        let summary = a.last().unwrap();
        assert_eq!(summary["iq_corrected"], false);
        assert!(summary["iq_image_db"].as_f64().is_some_and(|db| db < -40.0));
        // Q = 1.1·(Q·cos 5° + I·sin 5°): an image about 24 dB under the flow.
        let skewed = payloads_of(SimConfig {
            seed: 13,
            duration_s: Some(10.0),
            iq_gain_error: 0.1,
            iq_phase_error_deg: 5.0,
            ..SimConfig::default()
        });
        let (_, b, _) = run(&skewed, &[]);
        let summary = b.last().unwrap();
        assert_eq!(summary["iq_corrected"], true);
        let db = summary["iq_image_db"].as_f64().unwrap();
        assert!((-27.0..-21.0).contains(&db), "{db}");
    }

    #[test]
    fn the_summary_states_the_balance_of_the_two_channels() {
        let (_, a, _) = run(&payloads(13, 10.0), &[]);
        let db = a.last().unwrap()["iq_channel_ratio_db"].as_f64().unwrap();
        assert!(db.abs() < 0.5, "{db}");
        // A dead Q channel at 8 kHz: every beat was rejected as
        // interference with nothing to say why; the summary now shows the
        // channel far under the other.
        let dead_q = payloads_of(SimConfig {
            seed: 13,
            duration_s: Some(10.0),
            sample_rate_hz: 8000,
            iq_gain_error: -1.0,
            ..SimConfig::default()
        });
        let (_, b, _) = run(&dead_q, &[]);
        assert_eq!(b.last().unwrap()["iq_channel_ratio_db"], -99.0);
    }

    #[test]
    fn the_summary_states_how_long_the_flow_was_reversed() {
        let (_, a, _) = run(&payloads(13, 10.0), &[]);
        assert_eq!(a.last().unwrap()["reverse_flow_s"], 0.0);
        // I and Q swapped: no beat, and the flow is reported reversed from
        // its third second on.
        let swapped = payloads_of(SimConfig {
            seed: 13,
            duration_s: Some(10.0),
            iq_swapped: true,
            ..SimConfig::default()
        });
        let (_, b, _) = run(&swapped, &[]);
        let summary = b.last().unwrap();
        assert_eq!(summary["accepted"], 0);
        let s = summary["reverse_flow_s"].as_f64().unwrap();
        assert!((6.0..7.5).contains(&s), "{s}");
    }

    #[test]
    fn the_summary_states_how_long_the_flow_aliased() {
        let (_, a, _) = run(&payloads(13, 10.0), &[]);
        assert_eq!(a.last().unwrap()["aliased_s"], 0.0);
        // Peaks of about 155 cm/s at 8 kHz (limit 109): every beat used to
        // be rejected as interference; now they are measured across the
        // band's edge, and the summary says for how long the flow wrapped
        // round. Peaks of about 200 cm/s are past the unwrapping: aliased.
        for (sv_ml, reason) in [(130.0, Value::Null), (170.0, Value::from("aliased"))] {
            let fast = payloads_of(SimConfig {
                seed: 13,
                duration_s: Some(10.0),
                sample_rate_hz: 8000,
                sv_ml,
                allow_aliasing: true,
                ..SimConfig::default()
            });
            let (_, b, _) = run(&fast, &[]);
            let bs = beats(&b);
            assert!(bs.len() >= 8, "SV {sv_ml}: {} beats", bs.len());
            // Past the unwrapping a few columns' wrapped flow fills the
            // reverse half's middle too and reads as interference (4 of 149
            // beats in docs/validation.md): none may be accepted.
            let reasons: Vec<&Value> = bs.iter().map(|x| &x["reject_reason"]).collect();
            let matching = reasons.iter().filter(|r| ***r == reason).count();
            if reason.is_null() {
                assert_eq!(matching, bs.len(), "SV {sv_ml}: {reasons:?}");
            } else {
                assert!(bs.iter().all(|x| x["accepted"] == false), "SV {sv_ml}");
                assert!(4 * matching >= 3 * bs.len(), "SV {sv_ml}: {reasons:?}");
            }
            let s = b.last().unwrap()["aliased_s"].as_f64().unwrap();
            assert!((0.5..6.0).contains(&s), "SV {sv_ml}: {s}");
        }
    }

    #[test]
    fn an_unusable_probe_info_mid_stream_is_skipped_and_counted() {
        let clean = payloads(11, 12.0);
        let mut bad = clean.clone();
        let mut angle90 = probe_info(&clean);
        angle90.beam_angle_cdeg = 9000;
        let mut carrier0 = probe_info(&clean);
        carrier0.carrier_hz = 0;
        let mid = bad.len() / 2;
        bad.insert(mid, Payload::ProbeInfo(angle90));
        bad.insert(mid + 10, Payload::ProbeInfo(carrier0));
        let (ok_a, a, _) = run(&clean, &[]);
        let (ok_b, b, _) = run(&bad, &[]);
        assert!(ok_a && ok_b, "nothing in the stream stops the analysis");
        assert_eq!(b[0]["type"], "stream");
        let summary = b.last().unwrap();
        assert_eq!(summary["type"], "summary");
        // Not malformed under serial-stream.md's rule 5 (their layout is
        // right): counted apart.
        assert_eq!(summary["malformed"], 0);
        assert_eq!(summary["probe_info_rejected"], 2);
        let rejected = of_kind(&b, "probe_info_rejected");
        assert_eq!(rejected.len(), 2);
        assert!(rejected.iter().all(|r| r["reason"].is_string()
            && r["byte_offset"].is_u64()
            && r["t_s"].as_f64().is_some_and(|t| t > 4.0)));
        // Every good frame analysed with the pipeline in force.
        assert!(beats(&a).len() > 10);
        assert_eq!(beats(&a), beats(&b));
    }

    /// A PROBE_INFO with other parameters, or from another probe, after
    /// the stream line: an event says what holds from then on (once: the
    /// interface repeats its PROBE_INFO every second).
    #[test]
    fn new_stream_parameters_and_another_probe_are_announced() {
        let clean = payloads(14, 12.0);
        let third = clean.len() / 3;
        let p: Vec<Payload> = clean
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Payload::ProbeInfo(info) if i >= third => {
                    let mut info = info.clone();
                    info.carrier_hz = 8_000_000;
                    if i >= 2 * third {
                        info.probe_serial = *b"SWAPPED-PROBE-02";
                    }
                    Payload::ProbeInfo(info)
                }
                other => other.clone(),
            })
            .collect();
        let (ok, lines, _) = run(&p, &[]);
        assert!(ok);
        let ev = of_kind(&lines, "stream_parameters");
        assert_eq!(ev.len(), 2, "{ev:?}");
        assert_eq!(ev[0]["carrier_hz"], 8_000_000);
        assert_eq!(ev[0]["sample_rate_hz"], lines[0]["sample_rate_hz"]);
        assert_eq!(ev[0]["probe_serial"], lines[0]["probe_serial"]);
        assert_eq!(ev[1]["probe_serial"], "SWAPPED-PROBE-02");
        assert_eq!(ev[1]["carrier_hz"], 8_000_000);
        let t: Vec<f64> = ev.iter().map(|e| e["t_s"].as_f64().unwrap()).collect();
        assert!(t[0] > 3.0 && t[1] > t[0] + 3.0, "{t:?}");
        let (_, plain, _) = run(&clean, &[]);
        assert!(of_kind(&plain, "stream_parameters").is_empty());
    }

    #[test]
    fn a_second_stream_at_another_rate_is_a_discontinuity_in_its_own_time() {
        // Two recordings one after the other (`cat a b`): 20 kHz for 6 s,
        // then 8 kHz from sample 0 again.
        let first = payloads(15, 6.0);
        let second = payloads_of(SimConfig {
            seed: 16,
            duration_s: Some(8.0),
            hr_bpm: 80.0,
            sample_rate_hz: 8000,
            ..SimConfig::default()
        });
        let both: Vec<Payload> = first.iter().chain(second.iter()).cloned().collect();
        let (ok, lines, _) = run(&both, &[]);
        assert!(ok);
        let ev = of_kind(&lines, "stream_parameters");
        assert_eq!(ev.len(), 1, "{ev:?}");
        // The old stream's end, in its own time (not its sample count at
        // the new rate: 6 s, not 15).
        let t = ev[0]["t_s"].as_f64().unwrap();
        assert!((t - 6.0).abs() < 0.1, "{t}");
        let disc = of_kind(&lines, "discontinuity");
        assert_eq!(disc.len(), 1, "{disc:?}");
        assert_eq!(disc[0]["t_s"], 0.0);
        assert_eq!(lines.last().unwrap()["discontinuities"], 1);
        // The second stream's beats are analysed at its own rate.
        let after: Vec<&Value> = lines
            .iter()
            .skip_while(|l| l["kind"] != "discontinuity")
            .filter(|l| l["type"] == "beat" && l["accepted"] == true)
            .collect();
        assert!(after.len() >= 6, "{}", after.len());
    }

    #[test]
    fn an_unusable_first_probe_info_waits_for_a_usable_one() {
        let clean = payloads(12, 12.0);
        let mut bad = clean.clone();
        let mut angle90 = probe_info(&clean);
        angle90.beam_angle_cdeg = 9000;
        bad[0] = Payload::ProbeInfo(angle90);
        // The good one comes 30 IQ blocks later (its samples are held).
        bad.insert(31, clean[0].clone());
        let (ok, b, _) = run(&bad, &[]);
        assert!(ok);
        assert_eq!(b[0]["type"], "stream");
        assert_eq!(b[0]["beam_angle_deg"], 45.0);
        assert_eq!(b[1]["kind"], "probe_info_rejected");
        let summary = b.last().unwrap();
        assert_eq!(summary["malformed"], 0);
        assert_eq!(summary["probe_info_rejected"], 1);
        assert_eq!(summary["samples_dropped_before_probe_info"], 0);
        let (_, a, _) = run(&clean, &[]);
        assert_eq!(beats(&a), beats(&b));
    }

    #[test]
    fn a_patient_annotation_right_after_probe_info_is_in_the_stream_line() {
        let mut p = payloads(13, 10.0);
        p.insert(
            1,
            patient(
                0,
                json!({"age_years": 60, "height_cm": 175.0, "weight_kg": 80.0, "sex": "male"}),
            ),
        );
        let (ok, lines, _) = run(&p, &[]);
        assert!(ok);
        assert_eq!(lines[0]["type"], "stream");
        assert_eq!(lines[0]["area_model"], "fhs_ct_age_sex");
        assert_eq!(lines[0]["aortic_diameter_mm"], 27.4);
        let b = beats(&lines);
        assert!(b.len() > 5);
        assert!(b.iter().all(|b| b["sv_ml"].as_f64().is_some()));
        assert_eq!(lines.last().unwrap()["type"], "summary");
        assert_eq!(lines.iter().filter(|l| l["type"] == "stream").count(), 1);
    }

    #[test]
    fn a_measured_diameter_in_a_patient_annotation_is_used_as_on_the_monitor() {
        // What the monitor writes: the spec's demographics and its diameter.
        let mut p = payloads(16, 10.0);
        p.insert(
            1,
            patient(
                0,
                json!({"age_years": 60, "height_cm": 180.0, "weight_kg": 80.0, "sex": "male",
                       "aortic_diameter_mm": 20.0}),
            ),
        );
        // A later correction typed in tenths of a millimetre: refused, the
        // message names the field and its range, never the value.
        let late = p.len() - 20;
        p.insert(
            late,
            patient(
                150_000,
                json!({"age_years": 60, "height_cm": 180.0, "weight_kg": 80.0, "sex": "male",
                       "aortic_diameter_mm": 203.0}),
            ),
        );
        let (ok, lines, _) = run(&p, &[]);
        assert!(ok);
        assert_eq!(lines[0]["area_model"], "measured_diameter");
        assert_eq!(lines[0]["aortic_diameter_mm"], 20.0);
        let b = beats(&lines);
        assert!(b.len() > 5);
        // SV = SD · π (1 cm)² / 0.7 (the default descending fraction); CI
        // from the Mosteller BSA of 180 cm, 80 kg: √(180·80/3600) = 2 m².
        for beat in &b {
            let sd = beat["sd_cm"].as_f64().unwrap();
            let sv = beat["sv_ml"].as_f64().unwrap();
            assert!(
                (sv - sd * std::f64::consts::PI / 0.7).abs() < 0.05,
                "{beat}"
            );
            let co = beat["co_l_min"].as_f64().unwrap();
            let ci = beat["ci_l_min_m2"].as_f64().unwrap();
            assert!((ci - co / 2.0).abs() < 0.01, "{beat}");
        }
        let anns = of_kind(&lines, "annotation");
        assert_eq!(anns[0]["annotation"]["aortic_diameter_mm"], 20.0);
        let unchanged = of_kind(&lines, "area_model_unchanged");
        assert_eq!(unchanged.len(), 1);
        let reason = unchanged[0]["reason"].as_str().unwrap();
        assert!(
            reason.contains("`aortic_diameter_mm` is outside 10..=50"),
            "{reason}"
        );
        assert!(!reason.contains("203"), "{reason}");
        // The refused correction left the diameter in force.
        assert!(b.last().unwrap()["sv_ml"].as_f64().is_some());
        let models = of_kind(&lines, "area_model");
        assert_eq!(models.len(), 1);
        assert_eq!(models[0]["area_model"], "measured_diameter");
        // The command line's diameter overrides the file's (cli.md).
        let (_, cli, _) = run(&p, &["--aortic-diameter-mm", "25"]);
        assert_eq!(cli[0]["aortic_diameter_mm"], 25.0);
    }

    /// Any JSON value, strings marked so they can be found in the output.
    fn any_value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            (-1e6..1e6_f64).prop_map(Value::from),
            (0.0..400.0_f64).prop_map(Value::from),
            "[a-zA-Z0-9 ,]{0,10}".prop_map(|s| Value::from(format!("ZQX{s}"))),
            prop::sample::select(vec!["female", "male", "unknown"]).prop_map(Value::from),
        ];
        leaf.prop_recursive(2, 8, 3, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
                prop::collection::btree_map("ZQX[a-z]{1,4}", inner, 0..3)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(40))]
        /// Whatever a writer puts in a `patient` annotation, the echo holds
        /// only the defined fields with their defined types, nothing else
        /// reaches the output, and the analysis runs to its summary.
        #[test]
        fn any_patient_annotation_passes_on_defined_fields_only(
            fields in proptest::collection::btree_map(
                proptest::sample::select(vec![
                    "age_years", "height_cm", "weight_kg", "sex", "aortic_diameter_mm",
                    "name", "nhs_number", "dob", "address",
                ]),
                any_value(),
                0..8,
            )
        ) {
            static STREAM: std::sync::OnceLock<Vec<Payload>> = std::sync::OnceLock::new();
            let mut p = STREAM.get_or_init(|| payloads(17, 3.0)).clone();
            let obj: serde_json::Map<String, Value> =
                fields.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
            p.insert(1, patient(0, Value::Object(obj)));
            let (ok, lines, text) = run(&p, &[]);
            proptest::prop_assert!(ok);
            proptest::prop_assert_eq!(&lines[0]["type"], "stream");
            proptest::prop_assert_eq!(&lines.last().unwrap()["type"], "summary");
            proptest::prop_assert!(!text.contains("ZQX"), "{}", text);
            let anns = of_kind(&lines, "annotation");
            proptest::prop_assert_eq!(anns.len(), 1);
            for (k, v) in anns[0]["annotation"].as_object().unwrap() {
                match k.as_str() {
                    "type" => proptest::prop_assert_eq!(v, "patient"),
                    "sex" => proptest::prop_assert!(
                        ["female", "male", "unknown"].contains(&v.as_str().unwrap_or("")),
                    ),
                    "age_years" | "height_cm" | "weight_kg" | "aortic_diameter_mm" => {
                        proptest::prop_assert!(v.is_number(), "{k}: {v}")
                    }
                    other => proptest::prop_assert!(false, "{other} passed on"),
                }
            }
        }
    }

    #[test]
    fn patient_identifiers_are_never_passed_on() {
        let mut p = payloads(14, 6.0);
        p.insert(
            1,
            patient(
                0,
                json!({"age_years": 60, "height_cm": 175.0, "weight_kg": 80.0, "sex": "female",
                       "name": "John Smith", "nhs_number": "943 476 5919", "dob": "1966-01-02"}),
            ),
        );
        // Later, a correction with an identifier where the sex belongs.
        let late = p.len() - 20;
        p.insert(
            late,
            patient(
                40_000,
                json!({"age_years": 60, "height_cm": 175.0, "weight_kg": 80.0,
                       "sex": "John Smith, MRN 12345678"}),
            ),
        );
        // And one with an impossible age: the message names the field and
        // its range, not the value (the spec's field itself is echoed).
        let later = p.len() - 10;
        p.insert(
            later,
            patient(
                60_000,
                json!({"age_years": 4_812_345, "height_cm": 175.0, "weight_kg": 80.0,
                       "sex": "male"}),
            ),
        );
        let (ok, lines, text) = run(&p, &[]);
        assert!(ok);
        for secret in [
            "John",
            "Smith",
            "12345678",
            "943 476",
            "1966",
            "nhs_number",
            "dob",
        ] {
            assert!(!text.contains(secret), "{secret} in the output:\n{text}");
        }
        let anns: Vec<&Value> = of_kind(&lines, "annotation")
            .into_iter()
            .filter(|a| a["annotation"]["type"] == "patient")
            .collect();
        assert_eq!(anns.len(), 3);
        let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        assert_eq!(
            keys(&anns[0]["annotation"]),
            ["age_years", "height_cm", "sex", "type", "weight_kg"]
        );
        assert_eq!(anns[0]["annotation"]["sex"], "female");
        assert!(anns[1]["annotation"].get("sex").is_none());
        let unchanged = of_kind(&lines, "area_model_unchanged");
        assert_eq!(unchanged.len(), 2);
        assert!(unchanged[0]["reason"].as_str().unwrap().contains("`sex`"));
        let age = unchanged[1]["reason"].as_str().unwrap();
        assert!(age.contains("`age_years` is outside 18..=100"), "{age}");
        assert!(!age.contains("4812345"), "{age}");
    }

    #[test]
    fn a_bolus_near_the_end_states_the_window_it_averaged() {
        let mut p = payloads(15, 20.0);
        let fs = 20_000u64;
        let mut json = serde_json::Map::new();
        json.insert("type".into(), "bolus".into());
        json.insert("volume_ml".into(), 250.into());
        let at = p.len() * 3 / 4;
        p.insert(
            at,
            Payload::Annotation(Annotation {
                at_sample: 15 * fs,
                json,
            }),
        );
        let (ok, lines, _) = run(&p, &[]);
        assert!(ok);
        let fc: Vec<&Value> = lines
            .iter()
            .filter(|l| l["type"] == "fluid_challenge")
            .collect();
        assert_eq!(fc.len(), 1);
        let w = &fc[0]["after_window_s"];
        assert_eq!(w[0], 15.0);
        let end = w[1].as_f64().unwrap();
        assert!(end > 15.0 && end <= 20.0 + 1e-9, "{w}");
        // Both means exist: delta stated, responsiveness not judged.
        assert!(fc[0]["sd_before_cm"].is_number() && fc[0]["sd_after_cm"].is_number());
        assert!(fc[0]["delta_pct"].is_number(), "{}", fc[0]);
        assert!(fc[0]["responsive"].is_null());
    }

    #[test]
    fn linear_k_is_written_as_given() {
        let p = payloads(16, 3.0);
        let (_, lines, text) = run(&p, &["--ftc", "linear:1.234567"]);
        assert_eq!(lines[0]["ftc_linear_k_ms_per_bpm"], 1.234567);
        assert!(text.lines().next().unwrap().contains(":1.234567,"));
    }

    /// A fraction near 0 made SV and CO arbitrarily large; the refusal
    /// names the value as typed, not in 300 digits.
    #[test]
    fn implausible_descending_fractions_are_refused_as_typed() {
        assert_eq!(parse_fraction("0.7"), Ok(0.7));
        assert_eq!(parse_fraction("1"), Ok(1.0));
        assert_eq!(
            parse_fraction("1e-300"),
            Err("descending fraction 1e-300 is outside 0.3..=1".into())
        );
        assert!(parse_fraction("0.29").is_err());
        assert!(
            parse_ftc("linear:1e308")
                .unwrap_err()
                .contains("K = 1e308 is")
        );
    }

    /// One edit of a stream's structure, as a writer or damage could make it.
    #[derive(Debug, Clone)]
    enum Edit {
        /// From block `at` on, the sample indices move by `by` (a gap when
        /// positive, a discontinuity when negative).
        Shift { at: usize, by: i64 },
        /// Every index moves to just under `u64::MAX` (less `below`).
        Top { below: u64 },
        /// Block `at` is repeated.
        Repeat { at: usize },
        /// Block `at` is dropped.
        Drop { at: usize },
        /// Block `at` is flagged clipped and/or muted.
        Flags { at: usize, flags: u16 },
        /// A PROBE_INFO with other (valid-range) parameters before block `at`.
        Probe {
            at: usize,
            rate_hz: u32,
            carrier_hz: u32,
            angle_cdeg: u16,
        },
        /// An event before block `at`, at any sample index.
        Event {
            at: usize,
            at_sample: u64,
            code: u16,
        },
        /// A bolus before block `at`, at any sample index.
        Bolus { at: usize, at_sample: u64 },
    }

    fn any_edit() -> impl proptest::strategy::Strategy<Value = Edit> {
        use proptest::prelude::*;
        let at = 0..400_usize;
        prop_oneof![
            (at.clone(), -2_000_000_i64..2_000_000).prop_map(|(at, by)| Edit::Shift { at, by }),
            (0..1_000_000_u64).prop_map(|below| Edit::Top { below }),
            at.clone().prop_map(|at| Edit::Repeat { at }),
            at.clone().prop_map(|at| Edit::Drop { at }),
            (at.clone(), 0..4_u16).prop_map(|(at, flags)| Edit::Flags { at, flags }),
            (
                at.clone(),
                8_000..=48_000_u32,
                prop::sample::select(vec![0, 1, 2_000_000, 4_000_000, 8_000_000, u32::MAX]),
                prop::sample::select(vec![0, 3000, 4500, 6000, 8500, 8501, 9000, u16::MAX]),
            )
                .prop_map(|(at, rate_hz, carrier_hz, angle_cdeg)| Edit::Probe {
                    at,
                    rate_hz,
                    carrier_hz,
                    angle_cdeg,
                }),
            (at.clone(), any::<u64>(), 0..8_u16).prop_map(|(at, at_sample, code)| Edit::Event {
                at,
                at_sample,
                code
            }),
            (at, any::<u64>()).prop_map(|(at, at_sample)| Edit::Bolus { at, at_sample }),
        ]
    }

    /// The stream of `base` with `edits` applied, in order.
    fn edited(base: &[Payload], edits: &[Edit]) -> Vec<Payload> {
        let mut p = base.to_vec();
        let iq_positions = |p: &[Payload]| -> Vec<usize> {
            (0..p.len())
                .filter(|&i| matches!(p[i], Payload::Iq(_)))
                .collect()
        };
        for e in edits {
            let iq = iq_positions(&p);
            let Some(&last) = iq.last() else { break };
            let at = |k: usize| iq.get(k).copied().unwrap_or(last);
            match *e {
                Edit::Shift { at: k, by } => {
                    for item in &mut p[at(k)..] {
                        if let Payload::Iq(b) = item {
                            b.first_sample = b.first_sample.saturating_add_signed(by);
                        }
                    }
                }
                Edit::Top { below } => {
                    let end = iq
                        .iter()
                        .filter_map(|&i| match &p[i] {
                            Payload::Iq(b) => Some(b.end_sample()),
                            _ => None,
                        })
                        .max()
                        .unwrap_or(0);
                    let shift = (u64::MAX - below).saturating_sub(end);
                    for item in &mut p {
                        if let Payload::Iq(b) = item {
                            b.first_sample = b.first_sample.saturating_add(shift);
                        }
                    }
                }
                Edit::Repeat { at: k } => {
                    let item = p[at(k)].clone();
                    p.insert(at(k), item);
                }
                Edit::Drop { at: k } => {
                    p.remove(at(k));
                }
                Edit::Flags { at: k, flags } => {
                    if let Payload::Iq(b) = &mut p[at(k)] {
                        b.flags = flags;
                    }
                }
                Edit::Probe {
                    at: k,
                    rate_hz,
                    carrier_hz,
                    angle_cdeg,
                } => {
                    let mut info = probe_info(base);
                    info.sample_rate_hz = rate_hz;
                    info.carrier_hz = carrier_hz;
                    info.beam_angle_cdeg = angle_cdeg;
                    p.insert(at(k), Payload::ProbeInfo(info));
                }
                Edit::Event {
                    at: k,
                    at_sample,
                    code,
                } => p.insert(
                    at(k),
                    Payload::Event(ProbeEvent {
                        at_sample,
                        code,
                        value: -1,
                    }),
                ),
                Edit::Bolus { at: k, at_sample } => {
                    let mut json = serde_json::Map::new();
                    json.insert("type".into(), "bolus".into());
                    json.insert("volume_ml".into(), 250.into());
                    p.insert(at(k), Payload::Annotation(Annotation { at_sample, json }));
                }
            }
        }
        p
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(48))]
        /// Whatever the stream's structure — gaps, discontinuities, indices
        /// at the top of `u64`, repeated and dropped blocks, flags, changed
        /// probe parameters (usable or not), events and boluses at any
        /// index — the analysis runs to its summary without a panic (this
        /// test runs with overflow checks), and what it writes holds
        /// together: a stream line first, a summary last, beats numbered in
        /// order with their times in order (peak and end null when a gap
        /// hid the systole) and every number finite.
        #[test]
        fn any_stream_structure_is_analysed_to_its_summary(
            edits in proptest::collection::vec(any_edit(), 0..6)
        ) {
            static STREAM: std::sync::OnceLock<Vec<Payload>> = std::sync::OnceLock::new();
            let base = STREAM.get_or_init(|| payloads(29, 2.5));
            let p: Vec<Payload> = edited(base, &edits)
                .into_iter()
                .filter(|item| odm_device_io::encode_payload(item, &mut Vec::new()).is_ok())
                .collect();
            let (ok, lines, _) = run(&p, &[]);
            proptest::prop_assert!(ok);
            proptest::prop_assert_eq!(&lines[0]["type"], "stream");
            let summary = lines.last().unwrap();
            proptest::prop_assert_eq!(&summary["type"], "summary");
            let d = &summary["duration_s"];
            proptest::prop_assert!(d.is_null() || d.as_f64().is_some_and(|d| d >= 0.0), "{}", d);
            for (i, b) in beats(&lines).iter().enumerate() {
                proptest::prop_assert_eq!(&b["index"], i as u64);
                // Onset and next onset always; peak and end are null when
                // the systole could not be measured (a gap in it).
                proptest::prop_assert!(b["onset_s"].is_number() && b["next_onset_s"].is_number(), "{}", b);
                let times: Vec<f64> = ["onset_s", "peak_s", "end_s", "next_onset_s"]
                    .iter()
                    .filter_map(|k| b[*k].as_f64())
                    .collect();
                proptest::prop_assert!(times.windows(2).all(|w| w[0] <= w[1]), "{}", b);
                for (k, v) in b.as_object().unwrap() {
                    proptest::prop_assert!(!v.is_number() || v.as_f64().is_some_and(f64::is_finite), "{k}: {v}");
                }
            }
        }
    }
}
