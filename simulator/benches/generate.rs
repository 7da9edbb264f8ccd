//! Generation speed of the virtual probe: one second of stream per iteration
//! (`cargo bench -p odm-simulator`). Throughput is in samples; divide the
//! reported rate by the sample rate for the real-time factor.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use odm_simulator::{ImpairmentSchedule, SimConfig, VirtualProbe};

fn one_second(c: &mut Criterion, name: &str, cfg: SimConfig) {
    let mut group = c.benchmark_group("virtual_probe");
    group.throughput(Throughput::Elements(u64::from(cfg.sample_rate_hz)));
    group.bench_function(name, |b| {
        b.iter(|| {
            let mut probe = VirtualProbe::new(cfg.clone()).unwrap_or_else(|e| panic!("{e}"));
            let mut n = 0usize;
            while let Some(p) = probe.next_payload() {
                n += usize::from(matches!(p, odm_device_io::Payload::Iq(_)));
                black_box(&p);
            }
            black_box(probe.take_truth_beats());
            n
        })
    });
    group.finish();
}

fn bench(c: &mut Criterion) {
    let base = SimConfig {
        duration_s: Some(1.0),
        ..SimConfig::default()
    };
    one_second(c, "default_20khz_1s", base.clone());
    one_second(
        c,
        "impaired_20khz_1s",
        SimConfig {
            diathermy: ImpairmentSchedule::Fixed(vec![odm_simulator::Interval {
                start_s: 0.2,
                end_s: 0.6,
            }]),
            clipping: ImpairmentSchedule::Fixed(vec![odm_simulator::Interval {
                start_s: 0.7,
                end_s: 0.8,
            }]),
            ..base
        },
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
