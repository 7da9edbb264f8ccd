//! Latency harness: runs the pipeline on simulated signal fed one hop at a
//! time, as the DSP thread would, and reports
//! - the compute time of each `push` (one hop of samples): p50, p99, p99.9, max;
//! - for each beat, the time from the start of the `push` that delivered the
//!   samples completing it to its emission.
//!
//! `cargo run --release -p odm-benches --bin latency -- [SECONDS]` (default 3600).
//! Results and machine: docs/performance.md.

use hdrhistogram::Histogram;
use odm_benches::stream_params;
use odm_device_io::frame::Payload;
use odm_dsp::{Beat, Pipeline, PipelineConfig, PipelineSink};
use odm_simulator::{SimConfig, VirtualProbe};
use std::time::Instant;

struct Sink {
    push_started: Instant,
    beat_latency_ns: Histogram<u64>,
    beats: u64,
}

impl PipelineSink for Sink {
    fn beat(&mut self, _b: &Beat) {
        let ns = self.push_started.elapsed().as_nanos() as u64;
        // Recording can only fail above the histogram's range (1 s).
        let _ = self.beat_latency_ns.record(ns.max(1));
        self.beats += 1;
    }
}

fn report(name: &str, h: &Histogram<u64>) {
    println!(
        "{name}: n={} p50={:.2} µs p99={:.2} µs p99.9={:.2} µs max={:.2} µs",
        h.len(),
        h.value_at_quantile(0.5) as f64 / 1000.0,
        h.value_at_quantile(0.99) as f64 / 1000.0,
        h.value_at_quantile(0.999) as f64 / 1000.0,
        h.max() as f64 / 1000.0
    );
}

fn main() {
    let seconds: f64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(3600.0);
    let cfg = SimConfig {
        seed: 3,
        duration_s: Some(seconds),
        snr_db: Some(15.0),
        hr_bpm: 80.0,
        block_len: 100, // one 5 ms hop per IQ block
        ..SimConfig::default()
    };
    let mut probe = match VirtualProbe::new(cfg) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("latency: simulator configuration: {e}");
            std::process::exit(1);
        }
    };
    let mut pipe = match Pipeline::new(PipelineConfig::default(), stream_params(&probe)) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("latency: pipeline: {e}");
            std::process::exit(1);
        }
    };
    let new_hist = || match Histogram::<u64>::new_with_bounds(1, 1_000_000_000, 3) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("latency: histogram: {e}");
            std::process::exit(1);
        }
    };
    let mut hop_ns = new_hist();
    let mut sink = Sink {
        push_started: Instant::now(),
        beat_latency_ns: new_hist(),
        beats: 0,
    };
    let wall = Instant::now();
    let mut compute_ns: u128 = 0;
    while let Some(p) = probe.next_payload() {
        if let Payload::Iq(b) = p {
            sink.push_started = Instant::now();
            pipe.push(b.first_sample, &b.samples, b.clipped(), &mut sink);
            let ns = sink.push_started.elapsed().as_nanos();
            compute_ns += ns;
            let _ = hop_ns.record((ns as u64).max(1));
        }
    }
    pipe.finish(&mut sink);
    println!(
        "signal {seconds} s, wall {:.1} s (incl. simulation), pipeline compute {:.3} s = {:.0}× real time, {} beats",
        wall.elapsed().as_secs_f64(),
        compute_ns as f64 / 1e9,
        seconds / (compute_ns as f64 / 1e9),
        sink.beats
    );
    report("per-hop push compute", &hop_ns);
    report(
        "beat emission after completing samples arrive",
        &sink.beat_latency_ns,
    );
}
