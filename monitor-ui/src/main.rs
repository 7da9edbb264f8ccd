//! `odm-monitor`: the theatre display (`shared/spec/cli.md`).
//!
//! `odm-monitor` runs on the virtual probe (labelled SIMULATED);
//! `--port PATH [--baud B]` reads a probe interface; `--replay FILE.odmrec`
//! replays a recording with pause, seek and speed. Exit codes: 0 on a normal
//! close, 1 on a runtime failure (one line on standard error), 2 on a usage
//! error.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Parser;
use odm_dsp::haemo::FtcFormula;
use odm_monitor::MonitorApp;
use odm_monitor::control::{DEFAULT_BAUD, SourceSpec};
use odm_monitor::handoff::Handoff;
use odm_monitor::live::LiveBackend;

/// Oesophageal Doppler monitor: the theatre display.
#[derive(Parser, Debug)]
#[command(name = "odm-monitor", version, about)]
struct Args {
    /// Read a probe interface on this serial port (e.g. /dev/ttyACM0).
    #[arg(long, value_name = "PATH", conflicts_with = "replay")]
    port: Option<String>,
    /// Baud rate of the port (nominal for USB CDC-ACM).
    #[arg(long, value_name = "B", default_value_t = DEFAULT_BAUD, requires = "port")]
    baud: u32,
    /// Replay a recording at real speed, with pause, seek and speed controls.
    #[arg(long, value_name = "FILE.odmrec")]
    replay: Option<PathBuf>,
    /// Seed of the virtual probe (when neither --port nor --replay is given).
    #[arg(long, value_name = "N", default_value_t = 1)]
    seed: u64,
    /// Initial window size in logical pixels, WIDTHxHEIGHT.
    #[arg(long, value_name = "WxH", default_value = "1920x1080")]
    size: String,
    /// FTc formula, named under the FTc number: `bazett`, `fridericia` or
    /// `linear:K` (K in ms per beat/min), as `odm analyse --ftc`.
    #[arg(long, value_name = "FORMULA", default_value = "bazett")]
    ftc: FtcFormula,
}

fn parse_size(s: &str) -> anyhow::Result<[f32; 2]> {
    let (w, h) = s
        .split_once(['x', 'X'])
        .with_context(|| format!("--size {s:?}: expected WIDTHxHEIGHT, e.g. 1280x800"))?;
    let w: f32 = w
        .trim()
        .parse()
        .with_context(|| format!("--size {s:?}: width"))?;
    let h: f32 = h
        .trim()
        .parse()
        .with_context(|| format!("--size {s:?}: height"))?;
    if !(320.0..=8192.0).contains(&w) || !(240.0..=8192.0).contains(&h) {
        bail!("--size {s:?}: width and height must be 320..8192 and 240..8192");
    }
    Ok([w, h])
}

fn run(args: Args) -> anyhow::Result<()> {
    let size = parse_size(&args.size)?;
    let ftc = args.ftc;
    let spec = match (args.port, args.replay) {
        (Some(path), _) => SourceSpec::Serial {
            path,
            baud: args.baud,
        },
        (None, Some(path)) => {
            if !path.is_file() {
                bail!("cannot replay {}: no such file", path.display());
            }
            SourceSpec::Replay { path }
        }
        (None, None) => SourceSpec::Simulated { seed: args.seed },
    };
    if cfg!(target_os = "linux")
        && std::env::var_os("DISPLAY").is_none()
        && std::env::var_os("WAYLAND_DISPLAY").is_none()
    {
        bail!(
            "no display: neither DISPLAY nor WAYLAND_DISPLAY is set (for headless work use `odm analyse` / `odm record`)"
        );
    }
    let title = match &spec {
        SourceSpec::Simulated { .. } => "odm-monitor: SIMULATED (virtual probe)".to_string(),
        other => format!("odm-monitor: {}", other.describe()),
    };
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title(title.clone())
            .with_inner_size(size),
        ..Default::default()
    };
    eframe::run_native(
        &title,
        options,
        Box::new(move |cc| {
            MonitorApp::style_context(&cc.egui_ctx);
            let handoff = Arc::new(Handoff::new());
            handoff.set_ftc_formula(ftc);
            let backend = LiveBackend::start(spec, handoff.clone(), Some(cc.egui_ctx.clone()));
            Ok(Box::new(Frontend(MonitorApp::new(
                handoff,
                Box::new(backend),
            ))))
        }),
    )
    .map_err(|e| anyhow::anyhow!("cannot open the display window: {e}"))
}

/// The eframe adapter: all drawing is in [`MonitorApp::ui`].
struct Frontend(MonitorApp);

impl eframe::App for Frontend {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.0.ui(ui);
    }
}

fn main() {
    let args = Args::parse();
    if let Err(e) = run(args) {
        eprintln!("odm-monitor: error: {e:#}");
        std::process::exit(1);
    }
}
