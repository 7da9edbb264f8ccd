//! Measures how much faster than real time the virtual probe generates its
//! stream: `cargo run --release -p odm-simulator --example sim_speed [SECONDS]`.
//!
//! Prints the factor for the default configuration (48 scatterer groups,
//! clutter, noise), with every impairment on, and for a phantom.

use std::time::Instant;

use odm_simulator::{ImpairmentSchedule, SimConfig, VirtualProbe};

fn measure(name: &str, cfg: SimConfig) -> Result<(), odm_simulator::SimError> {
    let seconds = cfg.duration_s.unwrap_or(0.0);
    let mut probe = VirtualProbe::new(cfg)?;
    let cpu0 = cpu_s().unwrap_or(0.0);
    let t0 = Instant::now();
    let mut samples = 0u64;
    let mut beats = 0usize;
    while let Some(p) = probe.next_payload() {
        if let odm_device_io::Payload::Iq(b) = p {
            samples += b.samples.len() as u64;
        }
        beats += probe.take_truth_beats().len();
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_s().map(|c| c - cpu0);
    // On a shared machine wall time includes waiting for a core; CPU time
    // (Linux /proc/self/schedstat) is what the generator itself costs.
    let cpu_txt = cpu.map_or(String::from("n/a"), |c| {
        format!("{c:.3} s CPU = {:.0}x real time per core", seconds / c)
    });
    println!(
        "{name:<28} {seconds:>5.0} s of stream: wall {wall:.3} s = {:.0}x real time; {cpu_txt} \
         ({:.2} Msamples/s wall, {beats} beats)",
        seconds / wall,
        samples as f64 / wall / 1e6
    );
    Ok(())
}

/// CPU time this thread has run, s (Linux only).
fn cpu_s() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: f64 = text.split_whitespace().next()?.parse().ok()?;
    Some(ns * 1e-9)
}

fn main() -> Result<(), odm_simulator::SimError> {
    let seconds: f64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(300.0);
    let base = SimConfig {
        duration_s: Some(seconds),
        ..SimConfig::default()
    };
    measure("default (20 kHz, 48 groups)", base.clone())?;
    measure(
        "20 kHz, 8 groups",
        SimConfig {
            scatterer_count: 8,
            ..base.clone()
        },
    )?;
    measure(
        "all impairments",
        SimConfig {
            diathermy: ImpairmentSchedule::Random {
                mean_interval_s: 20.0,
                min_duration_s: 2.0,
                max_duration_s: 5.0,
            },
            gaps: ImpairmentSchedule::Random {
                mean_interval_s: 8.0,
                min_duration_s: 0.01,
                max_duration_s: 0.5,
            },
            clipping: ImpairmentSchedule::Random {
                mean_interval_s: 20.0,
                min_duration_s: 0.5,
                max_duration_s: 2.0,
            },
            ectopic_rate: 0.05,
            ..base.clone()
        },
    )?;
    measure(
        "phantom 50 cm/s",
        SimConfig {
            phantom_cm_s: Some(50.0),
            clutter_db: None,
            ..base.clone()
        },
    )?;
    measure(
        "8 kHz, 24 groups",
        SimConfig {
            sample_rate_hz: 8000,
            block_len: 80,
            scatterer_count: 24,
            ..base
        },
    )?;
    Ok(())
}
