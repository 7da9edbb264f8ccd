//! DSP benchmarks: each stage per call, the bare FFT of the same size for
//! comparison, the whole pipeline per second of signal, building the
//! pipeline (start-up), and the stream decoder's throughput. Results and machine: docs/performance.md.
//!
//! `cargo bench -p odm-benches --bench dsp`; after the criterion groups it
//! prints the pipeline ÷ bare-FFT ratio measured in the same run. With
//! `ODM_BASELINE_VECTORS` set, every bench runs without the stages' AVX2
//! copies (`odm_dsp::cpu`), for an A/B.
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use odm_benches::simulated_blocks;
use odm_dsp::beat::{BeatDetector, DetectorConfig, DetectorInput};
use odm_dsp::dechirp::Dechirp;
use odm_dsp::envelope::{EdgeEstimate, EnvelopeConfig, EnvelopeEstimator, EnvelopeMethod};
use odm_dsp::noise::NoiseFloor;
use odm_dsp::stft::Stft;
use odm_dsp::wall::WallFilter;
use odm_dsp::{NullSink, Pipeline, PipelineConfig};
use rustfft::FftPlanner;
use rustfft::num_complex::Complex32;
use std::hint::black_box;
use std::time::Instant;

const FS: u32 = 20_000;

/// One second of the simulator's I/Q through the pipeline's wall filter.
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

/// Option (a) of the wall-filter speed-up (docs/performance.md), kept here
/// only to measure it against the pipeline's f64 filter: the same two
/// biquads in f32, I and Q together, transposed direct form II, state in
/// registers.
struct IirF32 {
    b: [[f32; 3]; 2],
    a: [[f32; 2]; 2],
    s: [[[f32; 2]; 2]; 2],
}

impl IirF32 {
    fn new(design: &WallFilter) -> Self {
        let [p, q] = design.sections();
        Self {
            b: [p.b.map(|c| c as f32), q.b.map(|c| c as f32)],
            a: [p.a.map(|c| c as f32), q.a.map(|c| c as f32)],
            s: [[[0.0; 2]; 2]; 2],
        }
    }

    fn process(&mut self, input: &[[i16; 2]], output: &mut [Complex32]) {
        let (b, a) = (self.b, self.a);
        let mut s = self.s;
        for (x, y) in input.iter().zip(output.iter_mut()) {
            let mut v = [f32::from(x[0]), f32::from(x[1])];
            for k in 0..2 {
                let u = v;
                for c in 0..2 {
                    v[c] = b[k][0] * u[c] + s[k][c][0];
                    s[k][c][0] = b[k][1] * u[c] - a[k][0] * v[c] + s[k][c][1];
                    s[k][c][1] = b[k][2] * u[c] - a[k][1] * v[c];
                }
            }
            *y = Complex32::new(v[0], v[1]);
        }
        self.s = s;
    }
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

    // Wall filter (the pipeline's: f64 IIR), one hop of samples.
    let (_, blocks) = simulated_blocks(1.0, 15.0, 75.0, 100);
    let hop = &blocks[3].samples;
    let mut wall = WallFilter::new(cfg.wall_cutoff_hz, f64::from(FS)).expect("wall");
    let mut out = vec![Complex32::default(); hop.len()];
    g.bench_function(BenchmarkId::new("wall_filter_hop", hop.len()), |b| {
        b.iter(|| wall.process(black_box(hop), &mut out).expect("lengths"))
    });
    // The alternative measured and not chosen: the same IIR in f32.
    let mut iir = IirF32::new(&wall);
    let mut iir_out = vec![Complex32::default(); hop.len()];
    g.bench_function(
        BenchmarkId::new("wall_filter_hop_iir_f32", hop.len()),
        |b| b.iter(|| iir.process(black_box(hop), &mut iir_out)),
    );

    // The noise floor over one second's successive columns, one column per
    // iteration: the selection's cost depends on how the column's values
    // lie, and (since it is narrowed around the previous median) on the
    // column before it, so one column repeated would flatter it.
    let hop_len = window_len / 2;
    let columns: Vec<Vec<f32>> = (0..(signal.len() - window_len) / hop_len)
        .map(|c| {
            let mut p = vec![0.0_f32; fft_len];
            stft.process(&signal[c * hop_len..c * hop_len + window_len], &mut p)
                .expect("lengths");
            p
        })
        .collect();
    let half = fft_len / 2;
    let mut floor = NoiseFloor::new(1, half - 4, fft_len).expect("noise floor");
    let mut next = columns.iter().cycle();
    g.bench_function(BenchmarkId::new("noise_floor", half - 5), |b| {
        b.iter(|| {
            let col = next.next().expect("a cycle never ends");
            floor.process(black_box(col)).expect("lengths")
        })
    });

    // Envelope on a systolic column, each method.
    stft.process(&signal[6000..6000 + window_len], &mut power)
        .expect("lengths");
    let noise = floor.process(&power).expect("lengths");
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

    // A moving edge's column read again dechirped (the pipeline's second
    // reading, docs/dsp.md stage 4): complex weights, FFT, power and the
    // default envelope without pooling its shape; the window in the two
    // pieces the pipeline holds it in.
    let dechirp = Dechirp::new(stft.window(), fft_len, f64::from(FS), 40);
    let mut est = EnvelopeEstimator::new(
        EnvelopeConfig::default(),
        stft.window(),
        fft_len,
        f64::from(FS),
        300.0,
    )
    .expect("estimator");
    let mut chirp_power = vec![0.0_f32; fft_len];
    let mut out = EdgeEstimate::default();
    let (head, tail) = signal[6000..6000 + window_len].split_at(window_len / 2);
    g.bench_function(BenchmarkId::new("dechirped_column", fft_len), |b| {
        b.iter(|| {
            stft.process_weighted(
                black_box(head),
                tail,
                dechirp.weights(8.0),
                &mut chirp_power,
            )
            .expect("lengths");
            est.process_unpooled(&chirp_power, noise, &mut out)
                .expect("lengths")
        })
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

/// Building the pipeline for a stream — its tables (the window's kernel,
/// the shape templates, the window-smear table) — which `odm analyse` and
/// the monitor pay once per PROBE_INFO: most of a short recording's
/// start-up (docs/performance.md, "`odm analyse` end to end").
fn startup(c: &mut Criterion) {
    let (params, _) = simulated_blocks(0.1, 15.0, 75.0, 200);
    let mut g = c.benchmark_group("dsp_startup");
    g.sample_size(20);
    g.bench_function("pipeline_new", |b| {
        b.iter(|| black_box(Pipeline::new(PipelineConfig::default(), params).expect("pipeline")))
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

/// The ratio goal (issue 3: pipeline ≤ 3× the bare FFT of the same
/// transforms), measured in one run: one second of signal through the
/// pipeline against 200 bare 256-point FFTs, interleaved so both see the
/// same machine load; the median of 31 rounds of each.
fn pipeline_over_bare_fft() {
    let baseline_only = std::env::var_os("ODM_BASELINE_VECTORS");
    for hr_bpm in [75.0, 140.0] {
        for (dechirp, wide) in [(true, true), (true, false), (false, true)] {
            odm_dsp::cpu::set_wide_vectors(wide && baseline_only.is_none());
            pipeline_over_bare_fft_at(hr_bpm, dechirp);
        }
    }
    odm_dsp::cpu::set_wide_vectors(baseline_only.is_none());
}

/// [`pipeline_over_bare_fft`] on the simulator at `hr_bpm`, with the
/// dechirped columns on or off (their cost grows with the share of
/// columns on steep edges, i.e. with the heart rate), and the stages' AVX2
/// copies as [`odm_dsp::cpu::wide_vectors`] says.
fn pipeline_over_bare_fft_at(hr_bpm: f64, dechirp: bool) {
    let (params, blocks) = simulated_blocks(10.0, 15.0, hr_bpm, 200);
    let cfg = PipelineConfig {
        dechirp,
        ..PipelineConfig::default()
    };
    let mut pipe = Pipeline::new(cfg, params).expect("pipeline");
    let window_len = (cfg.window_s * f64::from(FS)).round() as usize;
    let fft_len = window_len.next_power_of_two();
    let hop_len = (cfg.hop_s * f64::from(FS)).round() as usize;
    let columns = FS as usize / hop_len;
    let fft = FftPlanner::<f32>::new().plan_fft_forward(fft_len);
    let mut buf = vec![Complex32::default(); fft_len];
    let mut scratch = vec![Complex32::default(); fft.get_inplace_scratch_len()];
    let signal = filtered_second();
    let (mut t_pipe, mut t_fft) = (Vec::new(), Vec::new());
    let mut offset = 0_u64;
    let mut at = 0_usize;
    let per_second = FS as usize / 200;
    for round in 0..41 {
        let t0 = Instant::now();
        for _ in 0..per_second {
            let blk = &blocks[at % blocks.len()];
            pipe.push(offset, &blk.samples, blk.clipped(), &mut NullSink);
            offset += blk.samples.len() as u64;
            at += 1;
        }
        let p = t0.elapsed().as_secs_f64();
        let t0 = Instant::now();
        for col in 0..columns {
            let s = (col * hop_len) % (signal.len() - window_len);
            buf[..window_len].copy_from_slice(&signal[s..s + window_len]);
            buf[window_len..].fill(Complex32::default());
            fft.process_with_scratch(black_box(&mut buf), &mut scratch);
        }
        let f = t0.elapsed().as_secs_f64();
        // The first rounds warm caches and the branch predictors.
        if round >= 10 {
            t_pipe.push(p);
            t_fft.push(f);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (p, f) = (median(&mut t_pipe), median(&mut t_fft));
    println!(
        "pipeline/bare-FFT ratio ({hr_bpm}/min, dechirp {}, AVX2 copies {}): one second of signal {:.1} µs, {columns} bare {fft_len}-point FFTs {:.1} µs ({:.0} ns each): ratio {:.2}×; {:.0}× real time",
        if dechirp { "on" } else { "off" },
        if odm_dsp::cpu::wide_vectors() {
            "on"
        } else {
            "off"
        },
        p * 1e6,
        f * 1e6,
        f / columns as f64 * 1e9,
        p / f,
        1.0 / p
    );
}

criterion_group!(benches, stages, whole_pipeline, startup, decoder);

fn main() {
    // For an A/B of the stages' AVX2 copies (docs/performance.md).
    if std::env::var_os("ODM_BASELINE_VECTORS").is_some() {
        odm_dsp::cpu::set_wide_vectors(false);
    }
    benches();
    // ~30 ms: always, so every run records the ratio.
    pipeline_over_bare_fft();
    Criterion::default().configure_from_args().final_summary();
}
