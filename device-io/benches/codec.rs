//! Decoder and encoder throughput on a realistic stream: 20 kHz IQ in
//! 1000-sample blocks with a PROBE_INFO every second (spec "0x01
//! PROBE_INFO": at least once per second), fed in serial-sized and
//! file-sized chunks.
//!
//! Run: `cargo bench -p odm-device-io --bench codec`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use odm_device_io::{
    DecodedItem, Decoder, Encoder, Frame, IqBlock, Payload, ProbeInfo, RecordingReader,
};

fn info() -> ProbeInfo {
    ProbeInfo {
        sample_rate_hz: 20_000,
        carrier_hz: 4_000_000,
        beam_angle_cdeg: 4500,
        probe_model: 1,
        minutes_used: 0,
        minutes_limit: 0,
        probe_serial: ProbeInfo::pad("BENCH"),
        firmware: ProbeInfo::pad("1"),
    }
}

/// `seconds` of stream: 20 blocks of 1000 samples and one PROBE_INFO per second.
fn payloads(seconds: u64) -> Vec<Payload> {
    let mut out = Vec::new();
    for s in 0..seconds {
        out.push(Payload::ProbeInfo(info()));
        for b in 0..20u64 {
            let first = (s * 20 + b) * 1000;
            out.push(Payload::Iq(IqBlock {
                first_sample: first,
                flags: 0,
                samples: (0..1000)
                    .map(|i| [((first + i) % 3000) as i16, -(((first + i) % 2000) as i16)])
                    .collect(),
            }));
        }
    }
    out
}

fn stream(seconds: u64) -> Vec<u8> {
    let mut enc = Encoder::new();
    let mut bytes = Vec::new();
    for p in payloads(seconds) {
        enc.encode(&p, &mut bytes).unwrap();
    }
    bytes
}

fn decode(bytes: &[u8], chunk: usize) -> u64 {
    let mut d = Decoder::new();
    let mut samples = 0u64;
    for c in bytes.chunks(chunk) {
        d.feed(c);
        while let Some(item) = d.next_item() {
            if let DecodedItem::Frame(Frame {
                payload: Payload::Iq(b),
                ..
            }) = item
            {
                samples += b.samples.len() as u64;
            }
        }
    }
    d.finish();
    while d.next_item().is_some() {}
    samples
}

fn bench(c: &mut Criterion) {
    let bytes = stream(10); // 10 s of signal, 0.8 MB
    let mut g = c.benchmark_group("codec");
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.sample_size(20);
    g.bench_function("decode_4k_chunks", |b| {
        b.iter(|| decode(black_box(&bytes), 4096))
    });
    g.bench_function("decode_64k_chunks", |b| {
        b.iter(|| decode(black_box(&bytes), 65536))
    });
    g.bench_function("decode_64b_chunks", |b| {
        b.iter(|| decode(black_box(&bytes), 64))
    });
    let mut garbage = bytes.clone();
    for (i, x) in garbage.iter_mut().enumerate() {
        if i % 997 == 0 {
            *x ^= 0x5A;
        }
    }
    g.bench_function("decode_damaged_4k_chunks", |b| {
        b.iter(|| decode(black_box(&garbage), 4096))
    });
    let mut file = odm_device_io::MAGIC.to_vec();
    file.extend_from_slice(&bytes);
    g.bench_function("recording_reader", |b| {
        b.iter(|| {
            let mut r = RecordingReader::new(black_box(&file[..])).unwrap();
            let mut n = 0u64;
            while let Ok(Some(_)) = r.next_item() {
                n += 1;
            }
            n
        })
    });
    let ps = payloads(10);
    g.bench_function("encode", |b| {
        b.iter(|| {
            let mut enc = Encoder::new();
            let mut out = Vec::with_capacity(bytes.len());
            for p in &ps {
                enc.encode(black_box(p), &mut out).unwrap();
            }
            out.len()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
