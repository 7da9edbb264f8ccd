//! The hot path does not allocate: after warm-up, `Pipeline::push` runs
//! through many beats with zero heap allocations (architecture.md, "The
//! real-time path").
use odm_alloc_count::{CountingAllocator, count};
use odm_device_io::frame::Payload;
use odm_dsp::{Beat, Pipeline, PipelineConfig, PipelineSink, StreamParams};
use odm_simulator::{SimConfig, VirtualProbe};

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Counts without storing (a Vec push would allocate).
#[derive(Default)]
struct CountSink {
    beats: usize,
    accepted: usize,
    columns: usize,
    points: usize,
    statuses: usize,
}

impl PipelineSink for CountSink {
    fn spectrum_column(&mut self, _c: &odm_dsp::SpectrumColumn<'_>) {
        self.columns += 1;
    }
    fn envelope_point(&mut self, _p: &odm_dsp::EnvelopePoint) {
        self.points += 1;
    }
    fn beat(&mut self, b: &Beat) {
        self.beats += 1;
        self.accepted += usize::from(b.accepted);
    }
    fn status(&mut self, _s: &odm_dsp::Status) {
        self.statuses += 1;
    }
}

#[test]
fn push_allocates_nothing_after_warm_up_while_emitting_beats() {
    // 20 s of signal with a gap, clipping and diathermy so that every
    // branch (gap, discontinuity-free segments, rejection) runs.
    let sim = SimConfig {
        seed: 42,
        duration_s: Some(20.0),
        snr_db: Some(15.0),
        hr_bpm: 90.0,
        diathermy: odm_simulator::ImpairmentSchedule::Fixed(vec![odm_simulator::Interval {
            start_s: 12.0,
            end_s: 13.5,
        }]),
        gaps: odm_simulator::ImpairmentSchedule::Fixed(vec![odm_simulator::Interval {
            start_s: 15.0,
            end_s: 15.2,
        }]),
        clipping: odm_simulator::ImpairmentSchedule::Fixed(vec![odm_simulator::Interval {
            start_s: 17.0,
            end_s: 17.3,
        }]),
        ..SimConfig::default()
    };
    let (allocs, sink, measured_beats) = measure(sim);
    assert!(
        measured_beats >= 15,
        "only {measured_beats} beats in the measured 15 s"
    );
    assert!(
        sink.beats > sink.accepted,
        "the impairments must have rejected some beats"
    );
    assert!(sink.statuses >= 1, "the gap must be reported");
    assert_eq!(allocs, 0, "push allocated {allocs} times after warm-up");

    // Aliasing (in the same test: the counter is global): peaks of about
    // 155 cm/s at 8 kHz, followed across +fs/2 by the unwrapping envelopes,
    // and 200 cm/s, past them.
    for sv_ml in [130.0, 170.0] {
        let (allocs, sink, measured_beats) = measure(SimConfig {
            seed: 42,
            duration_s: Some(20.0),
            sample_rate_hz: 8000,
            sv_ml,
            allow_aliasing: true,
            ..SimConfig::default()
        });
        assert!(measured_beats >= 15, "SV {sv_ml}: {measured_beats} beats");
        assert!(sink.columns > 0 && sink.points > 0, "SV {sv_ml}");
        assert_eq!(allocs, 0, "SV {sv_ml}: push allocated {allocs} times");
    }
}

/// The strong-tone notch (opt-in) removing a tone: its per-sample
/// canceller and per-column detector allocate nothing either.
#[test]
fn the_strong_tone_notch_allocates_nothing_while_removing_a_tone() {
    let sim = SimConfig {
        seed: 7,
        duration_s: Some(20.0),
        snr_db: Some(15.0),
        clutter_db: None,
        ..SimConfig::default()
    };
    let cfg = PipelineConfig {
        notch_strong_tones: true,
        ..PipelineConfig::default()
    };
    let (allocs, sink, measured_beats, tones) = measure_with(sim, cfg, Some(1_013.0));
    assert_eq!(tones, 1, "the tone must be notched while counting");
    assert!(measured_beats >= 10, "{measured_beats} beats");
    assert!(sink.accepted >= 10, "{} accepted", sink.accepted);
    assert_eq!(allocs, 0, "push allocated {allocs} times with the notch");
}

/// Runs `sim` through a pipeline, counting allocations after the first
/// quarter: (allocations, the sink, beats in the counted part).
fn measure(sim: SimConfig) -> (usize, CountSink, usize) {
    let (allocs, sink, beats, _) = measure_with(sim, PipelineConfig::default(), None);
    (allocs, sink, beats)
}

/// As [`measure`], with `cfg`, and a tone at `tone_hz` as strong as the
/// received signal added to every block; also the tones notched at the
/// end.
fn measure_with(
    sim: SimConfig,
    cfg: PipelineConfig,
    tone_hz: Option<f64>,
) -> (usize, CountSink, usize, usize) {
    let mut probe = VirtualProbe::new(sim).expect("sim config");
    let mut params = None;
    let mut blocks = Vec::new();
    while let Some(p) = probe.next_payload() {
        match p {
            Payload::ProbeInfo(i) if params.is_none() => {
                params = Some(StreamParams {
                    sample_rate_hz: i.sample_rate_hz,
                    carrier_hz: i.carrier_hz,
                    beam_angle_deg: f64::from(i.beam_angle_cdeg) / 100.0,
                })
            }
            Payload::Iq(b) => blocks.push(b),
            _ => {}
        }
    }
    let params = params.expect("probe info");
    if let Some(hz) = tone_hz {
        let (mut sum, mut n) = (0.0, 0.0);
        for b in &blocks {
            for s in &b.samples {
                sum += f64::from(s[0]).powi(2) + f64::from(s[1]).powi(2);
                n += 1.0;
            }
        }
        let amp = (sum / n).sqrt();
        let fs = f64::from(params.sample_rate_hz);
        for b in &mut blocks {
            let first = b.first_sample;
            for (k, s) in b.samples.iter_mut().enumerate() {
                let ph = std::f64::consts::TAU * hz * (first + k as u64) as f64 / fs;
                let add =
                    |x: i16, d: f64| (f64::from(x) + d).round().clamp(-32768.0, 32767.0) as i16;
                s[0] = add(s[0], amp * ph.cos());
                s[1] = add(s[1], amp * ph.sin());
            }
        }
    }
    let mut pipe = Pipeline::new(cfg, params).expect("pipeline");
    let mut sink = CountSink::default();
    let warm = blocks.len() / 4; // 5 s
    for b in &blocks[..warm] {
        pipe.push(b.first_sample, &b.samples, b.clipped(), &mut sink);
    }
    let beats_before = sink.beats;
    let ((), counts) = count(|| {
        for b in &blocks[warm..] {
            pipe.push(b.first_sample, &b.samples, b.clipped(), &mut sink);
        }
        pipe.finish(&mut sink);
    });
    let allocs = counts.allocs;
    let measured_beats = sink.beats - beats_before;
    let tones = pipe.notched_tones_hz().count();
    (allocs, sink, measured_beats, tones)
}
