//! `odm monitor`: the headless monitor. The same live path as the theatre
//! display — a byte source (the virtual probe paced in real time, or a probe
//! interface on a serial port) → decoder → `Pipeline` — with each beat,
//! event and fluid challenge written to standard output as it happens, in the
//! format of `shared/spec/analysis-output.md` (the same code as `odm analyse`).
//!
//! Stops after `--duration`, at the end of the source, or on Ctrl-C; the
//! summary line (receiver counters, medians) is written last in every case.

use std::io::{self, LineWriter, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use odm_device_io::interrupt::stop_flag_on_interrupt;
use odm_device_io::{ByteSource, Encoder, SerialSource, SourceRead};
use odm_simulator::{SimConfig, VirtualProbe};

use crate::cmd_analyse::{self, Options};

/// Arguments of `odm monitor`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Probe interface (serial device or pseudo-terminal); without it, the
    /// built-in virtual probe (SIMULATED) is used.
    #[arg(long)]
    pub port: Option<String>,
    /// Baud rate of the probe interface.
    #[arg(long, default_value_t = odm_device_io::DEFAULT_BAUD)]
    pub baud: u32,
    /// Stop after this many seconds of wall-clock time (default: run until
    /// Ctrl-C or the end of the source).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<f64>,
    /// Seed of the virtual probe.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// How to analyse and what to write.
    #[command(flatten)]
    pub opts: Options,
}

fn parse_duration(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("`{s}` is not a positive number of seconds")),
    }
}

/// Runs `odm monitor`.
pub fn run(args: Args) -> Result<()> {
    let stop = stop_flag_on_interrupt().context("installing the Ctrl-C handler")?;
    let deadline = args
        .duration
        .map(|s| Instant::now() + Duration::from_secs_f64(s));
    let out = LineWriter::new(io::stdout().lock());
    // This thread runs the pipeline: real-time priority as the display's
    // DSP thread asks for it (odm_device_io::sched), or normal scheduling
    // and why.
    eprintln!(
        "odm monitor: DSP {}",
        odm_device_io::sched::request_real_time_for_this_thread()
    );
    let result = match &args.port {
        None => {
            eprintln!(
                "odm monitor: SIMULATED — virtual probe (seed {})",
                args.seed
            );
            let cfg = SimConfig {
                seed: args.seed,
                ..SimConfig::default()
            };
            let probe = VirtualProbe::new(cfg).context("starting the virtual probe")?;
            let src = PacedProbe::new(probe, stop, deadline);
            cmd_analyse::analyse_stream(src, "virtual probe".into(), &args.opts, out)
        }
        Some(port) => {
            eprintln!("odm monitor: probe interface {port} at {} baud", args.baud);
            // A port that is not there yet is waited for, as the display
            // does (a probe interface plugged in late); the reason is said
            // now, and a run that never opens it fails.
            let (source, open_error) = match SerialSource::open(port, args.baud) {
                Ok(source) => (source, None),
                Err(e) => {
                    eprintln!("odm monitor: {e}; waiting for it");
                    (SerialSource::open_or_wait(port, args.baud), Some(e))
                }
            };
            let ever_connected = Arc::new(AtomicBool::new(source.is_connected()));
            let src = LiveSource {
                source,
                name: port.clone(),
                stop,
                deadline,
                started: Instant::now(),
                last_bytes: Instant::now(),
                no_data_said: false,
                ever_connected: Arc::clone(&ever_connected),
                pending: Vec::new(),
            };
            let result = cmd_analyse::analyse_live(src, port.clone(), &args.opts, out);
            match (result, open_error) {
                (Ok(()), Some(e)) if !ever_connected.load(Ordering::SeqCst) => {
                    Err(anyhow::Error::new(e).context("the probe interface never opened"))
                }
                (result, _) => result,
            }
        }
    };
    match result {
        Err(e) if cmd_analyse::is_broken_pipe(&e) => Ok(()),
        other => other,
    }
}

/// Whether the run should end now (Ctrl-C or the deadline).
fn should_stop(stop: &AtomicBool, deadline: Option<Instant>) -> bool {
    stop.load(Ordering::SeqCst) || deadline.is_some_and(|d| Instant::now() >= d)
}

/// The virtual probe as a byte stream, paced in real time by its sample
/// indices, exactly as a probe interface would send it.
struct PacedProbe {
    probe: VirtualProbe,
    encoder: Encoder,
    sample_rate_hz: f64,
    start: Instant,
    pending: Vec<u8>,
    read_pos: usize,
    stop: Arc<AtomicBool>,
    deadline: Option<Instant>,
}

impl PacedProbe {
    fn new(probe: VirtualProbe, stop: Arc<AtomicBool>, deadline: Option<Instant>) -> Self {
        let sample_rate_hz = f64::from(probe.probe_info().sample_rate_hz);
        Self {
            probe,
            encoder: Encoder::new(),
            sample_rate_hz,
            start: Instant::now(),
            pending: Vec::new(),
            read_pos: 0,
            stop,
            deadline,
        }
    }

    /// Encodes the next payload, waiting until its samples are due.
    /// Returns false at the end of the stream.
    fn refill(&mut self) -> io::Result<bool> {
        if should_stop(&self.stop, self.deadline) {
            return Ok(false);
        }
        let Some(payload) = self.probe.next_payload() else {
            return Ok(false);
        };
        if let Some(due_sample) = payload.due_sample() {
            // A block is sent once its last sample has been "acquired", an
            // event when it happens.
            let due_s = due_sample as f64 / self.sample_rate_hz;
            loop {
                let now_s = self.start.elapsed().as_secs_f64();
                if now_s >= due_s {
                    break;
                }
                if should_stop(&self.stop, self.deadline) {
                    return Ok(false);
                }
                std::thread::sleep(Duration::from_secs_f64((due_s - now_s).min(0.05)));
            }
        }
        self.pending.clear();
        self.read_pos = 0;
        self.encoder
            .encode(&payload, &mut self.pending)
            .map_err(|e| io::Error::other(format!("encoding the virtual probe's frame: {e}")))?;
        Ok(true)
    }
}

impl Read for PacedProbe {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.read_pos >= self.pending.len() {
            if !self.refill()? {
                return Ok(0);
            }
        }
        let rest = self.pending.get(self.read_pos..).unwrap_or_default();
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        self.read_pos += n;
        Ok(n)
    }
}

/// Without a byte from the probe interface for this long, `odm monitor`
/// writes a `no_data` event (the display's "no data from the probe
/// interface" alarm, docs/monitor.md).
const NO_DATA_S: f64 = 5.0;

/// A live byte source (serial port) as a blocking reader that ends on
/// Ctrl-C, the deadline or the end of the source, and reports unplugging
/// and silence.
struct LiveSource {
    source: SerialSource,
    name: String,
    stop: Arc<AtomicBool>,
    deadline: Option<Instant>,
    /// When the monitor started (the wall-clock time of `no_data` events).
    started: Instant,
    /// When the last byte arrived (or the monitor started).
    last_bytes: Instant,
    /// A `no_data` event was written and no byte has come since.
    no_data_said: bool,
    /// The port has been open at some time.
    ever_connected: Arc<AtomicBool>,
    /// Bytes read in the call that said `data_resumed`, handed out next.
    pending: Vec<u8>,
}

impl LiveSource {
    /// One event about the link itself, handed to the analysis as a read
    /// error it writes and reads on from ([`cmd_analyse::LinkEvent`]). The
    /// stream's clock stands still without data, so `t_s` is null and
    /// `wall_s` gives the seconds since the monitor started.
    fn link_event(&self, kind: &str, extra: serde_json::Value) -> io::Error {
        let mut line = serde_json::json!({
            "type": "event",
            "t_s": null,
            "kind": kind,
            "port": self.name,
            "wall_s": (self.started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
        });
        if let (Some(obj), serde_json::Value::Object(more)) = (line.as_object_mut(), extra) {
            obj.extend(more);
        }
        cmd_analyse::LinkEvent(line).into_io_error()
    }

    /// A `no_data` event once the link has been silent for [`NO_DATA_S`].
    fn note_silence(&mut self) -> io::Result<()> {
        let silent_s = self.last_bytes.elapsed().as_secs_f64();
        if !self.no_data_said && silent_s >= NO_DATA_S {
            self.no_data_said = true;
            let connected = self.source.is_connected();
            eprintln!(
                "odm monitor: no data from {} for {silent_s:.0} s{}",
                self.name,
                if connected { "" } else { " (not connected)" }
            );
            return Err(self.link_event(
                "no_data",
                serde_json::json!({ "silent_s": (silent_s * 10.0).round() / 10.0, "connected": connected }),
            ));
        }
        Ok(())
    }
}

impl Read for LiveSource {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.pending.is_empty() {
            let n = self.pending.len().min(buf.len());
            buf[..n].copy_from_slice(&self.pending[..n]);
            self.pending.drain(..n);
            return Ok(n);
        }
        loop {
            if should_stop(&self.stop, self.deadline) {
                return Ok(0);
            }
            if self.source.is_connected() {
                self.ever_connected.store(true, Ordering::SeqCst);
            }
            match self.source.read_chunk(buf) {
                Ok(SourceRead::Bytes(n)) => {
                    if self.no_data_said {
                        // Said first; the bytes are read again on the next call
                        // (a serial source keeps what it has not handed out).
                        let silent_s = self.last_bytes.elapsed().as_secs_f64();
                        eprintln!("odm monitor: data from {} again", self.name);
                        self.no_data_said = false;
                        self.last_bytes = Instant::now();
                        self.pending.extend_from_slice(buf.get(..n).unwrap_or(&[]));
                        return Err(self.link_event(
                            "data_resumed",
                            serde_json::json!({ "silent_s": (silent_s * 10.0).round() / 10.0 }),
                        ));
                    }
                    self.last_bytes = Instant::now();
                    return Ok(n);
                }
                Ok(SourceRead::Idle) => self.note_silence()?,
                Ok(SourceRead::Disconnected) => {
                    eprintln!("odm monitor: {} disconnected; waiting for it", self.name);
                    return Err(self.link_event("disconnected", serde_json::json!({})));
                }
                Ok(SourceRead::Reconnected) => {
                    eprintln!("odm monitor: {} reconnected", self.name);
                    return Err(self.link_event("reconnected", serde_json::json!({})));
                }
                Ok(SourceRead::End) => return Ok(0),
                Err(e) => return Err(io::Error::other(format!("{}: {e}", self.name))),
            }
        }
    }
}
