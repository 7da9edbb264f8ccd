//! Display performance (docs/performance.md): frame CPU time at 1920×1080
//! with 60 min of trends and a full 10 s waterfall, beat-to-screen latency
//! with the live threads, start-up time and memory.
//!
//! `cargo bench -p odm-monitor --bench frame` (prints a table; no GPU: the
//! CPU side of a frame is egui layout plus tessellation, measured here).

use std::time::{Duration, Instant};

use odm_dsp::{Beat, RejectReason};
use odm_monitor::MonitorApp;
use odm_monitor::control::{Backend, Command, RecordingStatus, SourceSpec};
use odm_monitor::engine::Engine;
use odm_monitor::handoff::{BeatMsg, EventMsg, Handoff, SourceState};
use odm_monitor::live::LiveBackend;
use odm_simulator::{SimConfig, VirtualProbe};

struct Quiet(SourceSpec);

impl Backend for Quiet {
    fn send(&mut self, _cmd: Command) {}
    fn source(&self) -> &SourceSpec {
        &self.0
    }
    fn recording(&self) -> RecordingStatus {
        RecordingStatus::Idle
    }
    fn audio_status(&self) -> String {
        "audio off (bench)".into()
    }
    fn set_audio(&mut self, _volume: f32, _muted: bool) {}
    fn replay_duration_s(&self) -> Option<f64> {
        None
    }
}

fn rss_mb() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn input(t_s: f64, w: f32, h: f32) -> egui::RawInput {
    egui::RawInput {
        screen_rect: Some(egui::Rect::from_min_size(
            egui::Pos2::ZERO,
            egui::vec2(w, h),
        )),
        time: Some(t_s),
        ..Default::default()
    }
}

fn synthetic_beat(index: u64, onset_s: f64) -> Beat {
    let cycle_s = 0.8;
    let sd = 15.0 + (onset_s / 600.0).sin();
    Beat {
        index,
        onset_s,
        peak_s: onset_s + 0.09,
        end_s: onset_s + 0.33,
        next_onset_s: onset_s + cycle_s,
        ft_ms: 330.0,
        cycle_s,
        hr_bpm: 75.0,
        ftc_ms: 369.0,
        sd_cm: sd,
        pv_cm_s: 90.0,
        ma_cm_s2: Some(1000.0),
        md_cm_min: sd * 75.0,
        sv_ml: Some(sd * 4.5),
        sv_range_ml: Some((sd * 3.8, sd * 5.2)),
        co_l_min: Some(sd * 4.5 * 0.075),
        quality: 0.95,
        accepted: !index.is_multiple_of(17),
        reject_reason: index
            .is_multiple_of(17)
            .then_some(RejectReason::Interference),
        irregular_rhythm: false,
        ft_low_flow: false,
        completed_by_sample: ((onset_s + cycle_s) * 20_000.0) as u64,
    }
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    let k = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[k.clamp(1, v.len()) - 1]
}

/// Frame CPU time at 1920×1080 and 1280×800 with 60 min of trends.
fn frame_time() {
    for (w, h) in [(1920.0f32, 1080.0f32), (1280.0, 800.0)] {
        let handoff = Handoff::shared();
        let ctx = egui::Context::default();
        MonitorApp::style_context(&ctx);
        let mut app = MonitorApp::new(
            handoff.clone(),
            Box::new(Quiet(SourceSpec::Simulated { seed: 1 })),
        );
        handoff.events.push(EventMsg::Source(SourceState::Live));
        // 60 min of beats (drained frame by frame so no queue overflows).
        let mut t_ui = 0.0;
        let mut k = 0u64;
        let mut onset = 0.0;
        while onset < 3600.0 {
            for _ in 0..100 {
                handoff.beats.push(BeatMsg {
                    beat: synthetic_beat(k, onset),
                    pushed_at: Instant::now(),
                });
                k += 1;
                onset += 0.8;
            }
            handoff.set_latest_sample((onset * 20_000.0) as u64);
            let mut out = ctx.run_ui(input(t_ui, w, h), |ui| app.ui(ui));
            // No GPU here: texture uploads are counted, not applied.
            out.textures_delta.clear();
            t_ui += 1.0 / 60.0;
        }
        // Then real signal: the virtual probe through the real engine, one
        // frame per 1/60 s of signal, 20 s (waterfall full), timing each frame.
        let mut engine = Engine::new(handoff.clone());
        let mut probe = VirtualProbe::new(SimConfig {
            seed: 3,
            duration_s: None,
            snr_db: Some(20.0),
            ..SimConfig::default()
        })
        .unwrap_or_else(|e| panic!("{e}"));
        handoff.events.push(EventMsg::Reset);
        let mut times = Vec::new();
        let mut tess = Vec::new();
        let mut frame = 0u32;
        while probe.time_s() < 20.0 {
            let until = f64::from(frame + 1) / 60.0;
            while probe.time_s() < until {
                match probe.next_payload() {
                    Some(p) => {
                        engine.handle(p);
                    }
                    None => break,
                }
            }
            let beats_before = app.state.beats_received;
            let t0 = Instant::now();
            let mut out = ctx.run_ui(input(t_ui, w, h), |ui| app.ui(ui));
            let t1 = Instant::now();
            out.textures_delta.clear();
            let prims = ctx.tessellate(out.shapes, out.pixels_per_point);
            let t2 = Instant::now();
            if probe.time_s() > 10.5 {
                if std::env::var_os("ODM_BENCH_VERBOSE").is_some()
                    && (t2 - t0).as_secs_f64() > 0.002
                {
                    println!(
                        "  slow frame {frame}: {:.2} ms, beat arrived: {}",
                        (t2 - t0).as_secs_f64() * 1000.0,
                        app.state.beats_received != beats_before
                    );
                }
                times.push((t2 - t0).as_secs_f64() * 1000.0);
                tess.push((t2 - t1).as_secs_f64() * 1000.0);
            }
            std::hint::black_box(prims);
            t_ui += 1.0 / 60.0;
            frame += 1;
        }
        let n = times.len();
        println!(
            "frame {w}x{h}: {n} frames, CPU p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (tessellation p50 {:.2} ms); RSS {:.0} MB",
            percentile(&mut times.clone(), 50.0),
            percentile(&mut times.clone(), 99.0),
            percentile(&mut times, 100.0),
            percentile(&mut tess, 50.0),
            rss_mb().unwrap_or(f64::NAN)
        );
    }
}

/// Beat-to-screen latency with the real threads: virtual probe paced in real
/// time, DSP thread, and a UI loop at 60 frames/s; latency is from the
/// arrival of the block that completes a beat to the end of the frame that
/// shows it.
fn latency_and_start() {
    let t_start = Instant::now();
    let handoff = Handoff::shared();
    let ctx = egui::Context::default();
    MonitorApp::style_context(&ctx);
    let backend = LiveBackend::start(
        SourceSpec::Simulated { seed: 1 },
        handoff.clone(),
        Some(ctx.clone()),
    );
    let mut app = MonitorApp::new(handoff.clone(), Box::new(backend));
    let mut first_column: Option<Duration> = None;
    let mut first_frame: Option<Duration> = None;
    let run_s = 30.0;
    let mut t_ui = 0.0;
    while t_start.elapsed().as_secs_f64() < run_s {
        let frame_start = Instant::now();
        let mut out = ctx.run_ui(input(t_ui, 1920.0, 1080.0), |ui| app.ui(ui));
        out.textures_delta.clear();
        first_frame.get_or_insert(t_start.elapsed());
        if first_column.is_none() && app.state.spectrogram.newest_sample() > 0 {
            first_column = Some(t_start.elapsed());
        }
        t_ui += 1.0 / 60.0;
        let spent = frame_start.elapsed();
        if spent < Duration::from_micros(16_667) {
            std::thread::sleep(Duration::from_micros(16_667) - spent);
        }
    }
    let l = &app.state.latency;
    println!(
        "beat-to-screen over {run_s:.0} s live: {} beats, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; dropped display items {}",
        l.count(),
        l.percentile_ms(50.0).unwrap_or(f64::NAN),
        l.percentile_ms(99.0).unwrap_or(f64::NAN),
        l.percentile_ms(100.0).unwrap_or(f64::NAN),
        handoff.dropped_total()
    );
    println!(
        "start: first frame after {:.0} ms, first waterfall column after {:.0} ms; RSS {:.0} MB",
        first_frame.map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0),
        first_column.map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0),
        rss_mb().unwrap_or(f64::NAN)
    );
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing
    // and must stay quick, so only a real bench run measures.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    frame_time();
    latency_and_start();
}
