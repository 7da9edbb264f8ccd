//! DSP benchmarks: each stage per call, the bare FFT of the same size for
//! comparison, the whole pipeline per second of signal, and the stream
//! decoder's throughput. Results and machine: docs/performance.md.
//!
//! `cargo bench -p odm-benches --bench dsp`
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use odm_benches::simulated_blocks;
use odm_dsp::beat::{BeatDetector, DetectorConfig, DetectorInput};
use odm_dsp::envelope::{EdgeEstimate, EnvelopeConfig, EnvelopeEstimator, EnvelopeMethod};
use odm_dsp::stft::Stft;
use odm_dsp::wall::WallFilter;
use odm_dsp::{NullSink, Pipeline, PipelineConfig};
use rustfft::FftPlanner;
use rustfft::num_complex::Complex32;
use std::hint::black_box;

const FS: u32 = 20_000;

fn filtered_second() -> Vec<Complex32> {
    let (_, blocks) = simulated_blocks(2.0, 15.0, 75.0, 100);
    let samples: Vec<[i16; 2]> = blocks
        .iter()
        .flat_map(|b| b.samples.iter().copied())
        .take(FS as usize)
        .collect();
    let mut wall = WallFilter::new(150.0, f64::from(FS)).expect("wall filter");
    let mut out = vec![Complex32::default(); samples.len()];
    wall.process(&samples, &mut out).expect("lengths");
    out
}

fn stages(c: &mut Criterion) {
    let signal = filtered_second();
    let cfg = PipelineConfig::default();
    let window_len = (cfg.window_s * f64::from(FS)).round() as usize;
    let fft_len = window_len.next_power_of_two();
    let mut g = c.benchmark_group("dsp_stage");

    // Bare FFT of the same size (the reference cost).
    let fft = FftPlanner::<f32>::new().plan_fft_forward(fft_len);
    let mut buf = vec![Complex32::default(); fft_len];
    let mut scratch = vec![Complex32::default(); fft.get_inplace_scratch_len()];
    g.bench_function(BenchmarkId::new("bare_fft", fft_len), |b| {
        b.iter(|| {
            buf[..window_len].copy_from_slice(&signal[4000..4000 + window_len]);
            fft.process_with_scratch(black_box(&mut buf), &mut scratch);
        })
    });

    // Spectrum column: window + FFT + power + shift.
    let mut stft = Stft::new(window_len, fft_len).expect("stft");
    let mut power = vec![0.0_f32; fft_len];
    g.bench_function(BenchmarkId::new("spectrum_column", fft_len), |b| {
        b.iter(|| {
            stft.process(black_box(&signal[4000..4000 + window_len]), &mut power)
                .expect("lengths")
        })
    });

    // Envelope on a systolic column, each method.
    stft.process(&signal[6000..6000 + window_len], &mut power)
        .expect("lengths");
    let noise = power[1..100].iter().sum::<f32>() / 99.0;
    for method in EnvelopeMethod::ALL {
        let mut est = EnvelopeEstimator::new(
            EnvelopeConfig {
                method,
                ..EnvelopeConfig::default()
            },
            stft.window(),
            fft_len,
            f64::from(FS),
            300.0,
        )
        .expect("estimator");
        let mut out = EdgeEstimate::default();
        g.bench_function(BenchmarkId::new("envelope", method.name()), |b| {
            b.iter(|| {
                est.process(black_box(&power), noise, &mut out)
                    .expect("lengths")
            })
        });
    }

    // Wall filter, one hop of samples.
    let (_, blocks) = simulated_blocks(1.0, 15.0, 75.0, 100);
    let hop = &blocks[3].samples;
    let mut wall = WallFilter::new(150.0, f64::from(FS)).expect("wall");
    let mut out = vec![Complex32::default(); hop.len()];
    g.bench_function(BenchmarkId::new("wall_filter_hop", hop.len()), |b| {
        b.iter(|| wall.process(black_box(hop), &mut out).expect("lengths"))
    });

    // Beat stage: one second of envelope points (200 at a 5 ms hop).
    let mut det = BeatDetector::new(DetectorConfig::default(), 0.005, 4.0, 0.055);
    let mut i = 0_u64;
    g.bench_function("beat_stage_per_point", |b| {
        b.iter(|| {
            let t = i as f64 * 0.005;
            let x = (t % 0.8) / 0.3;
            let v = if x < 1.0 {
                100.0 * (std::f64::consts::PI * x).sin()
            } else {
                0.0
            };
            i += 1;
            black_box(det.process(&DetectorInput {
                sample_index: i * 100,
                t_s: t,
                v_cm_s: v as f32,
                snr: 100.0,
                ..DetectorInput::default()
            }))
        })
    });
    g.finish();
}

fn whole_pipeline(c: &mut Criterion) {
    let (params, blocks) = simulated_blocks(10.0, 15.0, 75.0, 200);
    let mut g = c.benchmark_group("dsp_pipeline");
    g.throughput(Throughput::Elements(u64::from(FS)));
    let mut pipe = Pipeline::new(PipelineConfig::default(), params).expect("pipeline");
    let mut offset = 0_u64;
    let per_second = (FS / 200) as usize;
    let mut at = 0_usize;
    g.bench_function("one_second_of_signal", |b| {
        b.iter(|| {
            for _ in 0..per_second {
                let blk = &blocks[at % blocks.len()];
                pipe.push(offset, &blk.samples, blk.clipped(), &mut NullSink);
                offset += blk.samples.len() as u64;
                at += 1;
            }
        })
    });
    g.finish();
}

fn decoder(c: &mut Criterion) {
    use odm_device_io::frame::Payload;
    let (_, blocks) = simulated_blocks(5.0, 15.0, 75.0, 200);
    let mut enc = odm_device_io::Encoder::new();
    let mut bytes = Vec::new();
    for b in blocks {
        enc.encode(&Payload::Iq(b), &mut bytes).expect("encode");
    }
    let mut g = c.benchmark_group("decoder");
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function("five_seconds_of_iq_frames", |b| {
        b.iter(|| {
            let mut d = odm_device_io::Decoder::new();
            d.feed(black_box(&bytes));
            let mut n = 0;
            while let Some(item) = d.next_item() {
                black_box(&item);
                n += 1;
            }
            n
        })
    });
    g.finish();
}

criterion_group!(benches, stages, whole_pipeline, decoder);
criterion_main!(benches);
