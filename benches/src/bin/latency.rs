//! Latency harness: runs the pipeline on simulated signal fed one hop at a
//! time, as the DSP thread would, and reports
//! - the time of each `push` (one hop of samples) twice: wall-clock
//!   (`Instant`, includes pre-emption by other processes and interrupts) and
//!   the thread's own CPU time (`CLOCK_THREAD_CPUTIME_ID`: the compute the
//!   hop cost, which is what the per-hop budget is about): p50,
//!   p99, p99.9, max of each;
//! - for each beat, the time from the start of the `push` that delivered the
//!   samples completing it to its emission (wall-clock and CPU).
//!
//! Before measuring it pins itself to one CPU (`sched_setaffinity`, CPU 1
//! unless `--cpu N` or `--no-pin`) and, with `--fifo`, asks for
//! `SCHED_FIFO` at the monitor DSP thread's priority
//! (`odm_device_io::sched`; on a shared machine that holds the CPU for the
//! whole run, so it is opt-in); it prints what the OS allowed.
//!
//! `cargo run --release -p odm-benches --bin latency -- [SECONDS] [--cpu N | --no-pin] [--fifo] [--no-dechirp] [--baseline-vectors]`
//! (default 3600 s; `--no-dechirp` measures the pipeline without its
//! dechirped columns, for their cost; `--baseline-vectors` without the
//! stages' AVX2 copies, `odm_dsp::cpu`). Results and machine: docs/performance.md.

// The thread's CPU clock is a libc function; the unsafe block says why it
// is sound.
#![allow(unsafe_code)]

use hdrhistogram::Histogram;
use odm_benches::stream_params;
use odm_device_io::frame::Payload;
use odm_dsp::{Beat, Pipeline, PipelineConfig, PipelineSink};
use odm_simulator::{SimConfig, VirtualProbe};
use std::time::Instant;

/// CPU time this thread has used, ns.
fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the
    // call; CLOCK_THREAD_CPUTIME_ID is supported by Linux for the calling
    // thread. On failure ts stays zero (the caller sees a 0 ns interval).
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0;
    }
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

struct Sink {
    push_started: Instant,
    push_started_cpu_ns: u64,
    beat_latency_ns: Histogram<u64>,
    beat_latency_cpu_ns: Histogram<u64>,
    beats: u64,
}

impl PipelineSink for Sink {
    fn beat(&mut self, _b: &Beat) {
        let ns = self.push_started.elapsed().as_nanos() as u64;
        let cpu = thread_cpu_ns().saturating_sub(self.push_started_cpu_ns);
        // Recording can only fail above the histogram's range (1 s).
        let _ = self.beat_latency_ns.record(ns.max(1));
        let _ = self.beat_latency_cpu_ns.record(cpu.max(1));
        self.beats += 1;
    }
}

fn report(name: &str, h: &Histogram<u64>) {
    println!(
        "| {name} | {} | {:.2} µs | {:.2} µs | {:.2} µs | {:.2} µs |",
        h.len(),
        h.value_at_quantile(0.5) as f64 / 1000.0,
        h.value_at_quantile(0.99) as f64 / 1000.0,
        h.value_at_quantile(0.999) as f64 / 1000.0,
        h.max() as f64 / 1000.0
    );
}

fn usage(why: &str) -> ! {
    eprintln!(
        "latency: {why}\nusage: latency [SECONDS] [--cpu N | --no-pin] [--fifo] [--no-dechirp] [--baseline-vectors]"
    );
    std::process::exit(2);
}

fn main() {
    let mut seconds = 3600.0_f64;
    let mut cpu: Option<usize> = Some(1);
    let mut fifo = false;
    let mut dechirp = true;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--fifo" => fifo = true,
            "--no-dechirp" => dechirp = false,
            "--baseline-vectors" => odm_dsp::cpu::set_wide_vectors(false),
            "--no-pin" => cpu = None,
            "--cpu" => match args.next().map(|c| c.parse()) {
                Some(Ok(c)) => cpu = Some(c),
                _ => usage("--cpu needs a CPU index"),
            },
            s => match s.parse::<f64>() {
                Ok(v) if v > 0.0 => seconds = v,
                _ => usage(&format!("unexpected argument {s:?}")),
            },
        }
    }
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
    let pipe_cfg = PipelineConfig {
        dechirp,
        ..PipelineConfig::default()
    };
    let mut pipe = match Pipeline::new(pipe_cfg, stream_params(&probe)) {
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
    let pinned = match cpu {
        Some(c) => match odm_device_io::sched::pin_this_thread_to(c) {
            Ok(()) => format!("pinned to CPU {c}"),
            Err(why) => format!("not pinned to CPU {c}: {why}"),
        },
        None => "not pinned".to_string(),
    };
    let policy = if fifo {
        // The monitor's DSP thread asks for the same.
        odm_device_io::sched::request_real_time_for_this_thread().to_string()
    } else {
        "normal scheduling (--fifo asks for SCHED_FIFO)".to_string()
    };
    println!("scheduling: {pinned}; {policy}");
    println!(
        "stages' AVX2 copies (odm_dsp::cpu): {}; dechirped columns: {}",
        if odm_dsp::cpu::wide_vectors() {
            "on"
        } else {
            "off"
        },
        if dechirp { "on" } else { "off" }
    );
    // Reading the thread CPU clock is a system call; its own cost is inside
    // every CPU-time interval below.
    let mut reads = [0_u64; 101];
    for r in &mut reads {
        let t0 = Instant::now();
        let _ = std::hint::black_box(thread_cpu_ns());
        *r = t0.elapsed().as_nanos() as u64;
    }
    reads.sort_unstable();
    println!(
        "one CLOCK_THREAD_CPUTIME_ID read: median {:.2} µs",
        reads[50] as f64 / 1000.0
    );
    let mut hop_ns = new_hist();
    let mut hop_cpu_ns = new_hist();
    let mut sink = Sink {
        push_started: Instant::now(),
        push_started_cpu_ns: 0,
        beat_latency_ns: new_hist(),
        beat_latency_cpu_ns: new_hist(),
        beats: 0,
    };
    let wall = Instant::now();
    let (mut compute_ns, mut compute_cpu_ns) = (0_u128, 0_u128);
    while let Some(p) = probe.next_payload() {
        if let Payload::Iq(b) = p {
            sink.push_started_cpu_ns = thread_cpu_ns();
            sink.push_started = Instant::now();
            pipe.push(b.first_sample, &b.samples, b.clipped(), &mut sink);
            let ns = sink.push_started.elapsed().as_nanos();
            let cpu = thread_cpu_ns().saturating_sub(sink.push_started_cpu_ns);
            compute_ns += ns;
            compute_cpu_ns += u128::from(cpu);
            let _ = hop_ns.record((ns as u64).max(1));
            let _ = hop_cpu_ns.record(cpu.max(1));
        }
    }
    pipe.finish(&mut sink);
    println!(
        "signal {seconds} s, wall {:.1} s (incl. simulation), pipeline compute {:.3} s wall-clock = {:.0}× real time, {:.3} s thread CPU = {:.0}× real time, {} beats",
        wall.elapsed().as_secs_f64(),
        compute_ns as f64 / 1e9,
        seconds / (compute_ns as f64 / 1e9),
        compute_cpu_ns as f64 / 1e9,
        seconds / (compute_cpu_ns as f64 / 1e9),
        sink.beats
    );
    println!("| quantity | n | p50 | p99 | p99.9 | max |");
    println!("|---|---|---|---|---|---|");
    report("per-hop `push`, wall-clock", &hop_ns);
    report("per-hop `push`, thread CPU time", &hop_cpu_ns);
    report(
        "beat emission after completing samples arrive, wall-clock",
        &sink.beat_latency_ns,
    );
    report(
        "beat emission after completing samples arrive, thread CPU time",
        &sink.beat_latency_cpu_ns,
    );
}
