//! The AVX2 copies of the hot stages (`odm_dsp::cpu`) give the same output
//! as the baseline copies, bit for bit: every spectrum column, envelope
//! point, beat and status, over signals that take every path (a gap,
//! clipping, diathermy, steep edges read dechirped, aliasing, the
//! strong-tone notch's detector).
//!
//! The switch is process-wide, so this file holds one test.
mod common;

use odm_dsp::{Beat, EnvelopePoint, PipelineConfig, PipelineSink, SpectrumColumn, Status, cpu};
use odm_simulator::{ImpairmentSchedule, Interval, SimConfig, VirtualProbe};

/// Everything the pipeline said: spectra folded into a hash of their bits,
/// the rest in full (`{:?}` prints every float to the digit that tells it
/// apart, so two outputs print alike only if they are equal).
#[derive(Default, PartialEq, Debug)]
struct Output {
    columns: usize,
    spectrum_hash: u64,
    points: Vec<String>,
    beats: Vec<String>,
    statuses: Vec<String>,
}

impl Output {
    fn mix(&mut self, x: u64) {
        // FNV-1a over 64-bit words.
        self.spectrum_hash = (self.spectrum_hash ^ x).wrapping_mul(0x0000_0100_0000_01b3);
    }
}

impl PipelineSink for Output {
    fn spectrum_column(&mut self, c: &SpectrumColumn<'_>) {
        self.columns += 1;
        self.mix(c.sample_index);
        self.mix(u64::from(c.noise_power.to_bits()));
        self.mix(u64::from(c.interference) | (c.narrowband_lines as u64) << 1);
        for p in c.power {
            self.mix(u64::from(p.to_bits()));
        }
    }
    fn envelope_point(&mut self, p: &EnvelopePoint) {
        self.points.push(format!("{p:?}"));
    }
    fn beat(&mut self, b: &Beat) {
        self.beats.push(format!("{b:?}"));
    }
    fn status(&mut self, s: &Status) {
        self.statuses.push(format!("{s:?}"));
    }
}

fn run(sim: &SimConfig, cfg: PipelineConfig) -> Output {
    let mut probe = VirtualProbe::new(sim.clone()).expect("sim config");
    let mut pipe = None;
    let mut out = Output::default();
    while let Some(p) = probe.next_payload() {
        common::feed(&mut pipe, cfg, p, &mut out);
    }
    pipe.expect("probe info").finish(&mut out);
    out
}

#[cfg(target_arch = "x86_64")]
fn cpu_has_avx2() -> bool {
    std::arch::is_x86_feature_detected!("avx2")
}

#[cfg(not(target_arch = "x86_64"))]
fn cpu_has_avx2() -> bool {
    false
}

#[test]
fn the_avx2_copies_give_the_baseline_output_bit_for_bit() {
    let impaired = SimConfig {
        seed: 42,
        duration_s: Some(20.0),
        snr_db: Some(15.0),
        hr_bpm: 90.0,
        diathermy: ImpairmentSchedule::Fixed(vec![Interval {
            start_s: 12.0,
            end_s: 13.5,
        }]),
        gaps: ImpairmentSchedule::Fixed(vec![Interval {
            start_s: 15.0,
            end_s: 15.2,
        }]),
        clipping: ImpairmentSchedule::Fixed(vec![Interval {
            start_s: 17.0,
            end_s: 17.3,
        }]),
        ..SimConfig::default()
    };
    let fast = SimConfig {
        seed: 8,
        duration_s: Some(15.0),
        snr_db: Some(15.0),
        hr_bpm: 140.0,
        ..SimConfig::default()
    };
    let aliased = SimConfig {
        seed: 42,
        duration_s: Some(15.0),
        sample_rate_hz: 8000,
        sv_ml: 150.0,
        allow_aliasing: true,
        ..SimConfig::default()
    };
    let notch = PipelineConfig {
        notch_strong_tones: true,
        ..PipelineConfig::default()
    };
    let cases = [
        (
            "gap, clipping, diathermy",
            &impaired,
            PipelineConfig::default(),
        ),
        ("140/min", &fast, PipelineConfig::default()),
        ("aliasing", &aliased, PipelineConfig::default()),
        ("strong-tone notch on", &impaired, notch),
    ];

    let avx2 = cpu_has_avx2();
    if !avx2 {
        eprintln!("this CPU has no AVX2: only the baseline copies can run, nothing to compare");
    }
    for (name, sim, cfg) in cases {
        cpu::set_wide_vectors(false);
        assert!(!cpu::wide_vectors());
        let baseline = run(sim, cfg);
        cpu::set_wide_vectors(true);
        assert_eq!(cpu::wide_vectors(), avx2);
        let wide = run(sim, cfg);
        assert!(
            baseline.beats.len() >= 10 && baseline.columns > 2000,
            "{name}: {} beats, {} columns",
            baseline.beats.len(),
            baseline.columns
        );
        assert_eq!(baseline.columns, wide.columns, "{name}");
        assert_eq!(
            baseline.spectrum_hash, wide.spectrum_hash,
            "{name}: spectra"
        );
        assert_eq!(baseline.points, wide.points, "{name}: envelope points");
        assert_eq!(baseline.beats, wide.beats, "{name}: beats");
        assert_eq!(baseline.statuses, wide.statuses, "{name}: statuses");
    }
}
