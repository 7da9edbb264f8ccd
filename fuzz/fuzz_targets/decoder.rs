//! Fuzz target: the streaming decoder on arbitrary bytes in arbitrary
//! chunkings. The first two input bytes choose the chunk sizes; the rest is
//! the stream. Checks the invariants of `shared/spec/serial-stream.md`:
//! every byte accounted for, chunking-independence, re-encodable frames.
#![no_main]

use libfuzzer_sys::fuzz_target;
use odm_device_io::{DecodedItem, Decoder, EncodeError, Payload, encode_frame};

fn run(stream: &[u8], sizes: [usize; 2]) -> (Vec<DecodedItem>, odm_device_io::Counters, u64) {
    let mut d = Decoder::new();
    let mut items = Vec::new();
    let mut good = 0u64;
    let mut rest = stream;
    let mut i = 0;
    loop {
        while let Some(it) = d.next_item() {
            if matches!(it, DecodedItem::Frame(_) | DecodedItem::Skipped { .. }) {
                good += d.last_frame_span().map_or(0, |(_, n)| n as u64);
            }
            items.push(it);
        }
        if rest.is_empty() {
            break;
        }
        let n = sizes[i % 2].clamp(1, rest.len());
        i += 1;
        let (a, b) = rest.split_at(n);
        d.feed(a);
        rest = b;
    }
    d.finish();
    while let Some(it) = d.next_item() {
        if matches!(it, DecodedItem::Frame(_) | DecodedItem::Skipped { .. }) {
            good += d.last_frame_span().map_or(0, |(_, n)| n as u64);
        }
        items.push(it);
    }
    (items, *d.counters(), good)
}

fuzz_target!(|data: &[u8]| {
    let (head, stream) = data.split_at(data.len().min(2));
    let sizes = [
        usize::from(head.first().copied().unwrap_or(1)) * 7 + 1,
        usize::from(head.get(1).copied().unwrap_or(1)) + 1,
    ];
    let (items, c, good) = run(stream, sizes);
    assert_eq!(c.bytes_read, stream.len() as u64);
    assert_eq!(c.bytes_read, good + c.resync_bytes, "{c:?}");
    let resync: u64 = items
        .iter()
        .map(|i| match i {
            DecodedItem::Resync { bytes, .. } => *bytes,
            _ => 0,
        })
        .sum();
    assert_eq!(resync, c.resync_bytes);
    // One chunk gives the same result as any chunking.
    let (whole, wc, _) = run(stream, [usize::MAX, usize::MAX]);
    assert_eq!(whole, items);
    assert_eq!(wc, c);
    // Every decoded frame re-encodes and decodes to itself.
    for it in &items {
        if let DecodedItem::Frame(f) = it {
            let mut out = Vec::new();
            match encode_frame(f.seq, &f.payload, &mut out) {
                Ok(()) => {
                    let mut d = Decoder::new();
                    d.feed(&out);
                    d.finish();
                    assert_eq!(d.next_item(), Some(DecodedItem::Frame(f.clone())));
                }
                // JSON re-serialisation may grow (e.g. `1E5` -> `100000.0`).
                Err(EncodeError::PayloadTooLong { .. })
                    if matches!(f.payload, Payload::Annotation(_)) => {}
                Err(e) => panic!("decoded frame does not re-encode: {e}: {f:?}"),
            }
        }
    }
});
