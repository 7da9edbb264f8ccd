//! Property tests of the codec: round trips through random chunkings, byte
//! soup, and random damage (spec "Receiver rules").

use odm_device_io::{
    Annotation, Counters, DecodedItem, Decoder, Encoder, Frame, IqBlock, Payload, ProbeEvent,
    ProbeInfo,
};
use proptest::prelude::*;

fn probe_info() -> impl Strategy<Value = ProbeInfo> {
    (
        8_000u32..=48_000,
        any::<u32>(),
        any::<u16>(),
        any::<u8>(),
        any::<u32>(),
        any::<u32>(),
        any::<[u8; 16]>(),
        any::<[u8; 8]>(),
    )
        .prop_map(|(r, c, a, m, u, l, s, f)| ProbeInfo {
            sample_rate_hz: r,
            carrier_hz: c,
            beam_angle_cdeg: a,
            probe_model: m,
            minutes_used: u,
            minutes_limit: l,
            probe_serial: s,
            firmware: f,
        })
}

fn iq_block() -> impl Strategy<Value = IqBlock> {
    let count = prop_oneof![8 => 1usize..40, 1 => 990usize..=1000];
    (0u64..1 << 40, any::<u16>(), count).prop_flat_map(|(first, flags, n)| {
        proptest::collection::vec(any::<[i16; 2]>(), n).prop_map(move |samples| IqBlock {
            first_sample: first,
            flags,
            samples,
        })
    })
}

fn annotation() -> impl Strategy<Value = Annotation> {
    (any::<u64>(), "[a-z_]{1,12}", "\\PC{0,40}", any::<i64>()).prop_map(|(at, ty, text, n)| {
        let mut json = serde_json::Map::new();
        json.insert("type".into(), ty.into());
        json.insert("text".into(), text.into());
        json.insert("count".into(), n.into());
        Annotation {
            at_sample: at,
            json,
        }
    })
}

fn payload() -> impl Strategy<Value = Payload> {
    prop_oneof![
        1 => probe_info().prop_map(Payload::ProbeInfo),
        4 => iq_block().prop_map(Payload::Iq),
        1 => (any::<u64>(), any::<u16>(), any::<i32>()).prop_map(|(a, c, v)| Payload::Event(
            ProbeEvent { at_sample: a, code: c, value: v }
        )),
        1 => annotation().prop_map(Payload::Annotation),
    ]
}

/// Splits `bytes` into chunks whose sizes cycle through `sizes`.
fn chunks<'a>(bytes: &'a [u8], sizes: &[usize]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = bytes;
    let mut i = 0;
    while !rest.is_empty() {
        let n = sizes[i % sizes.len()].clamp(1, rest.len());
        let (a, b) = rest.split_at(n);
        out.push(a);
        rest = b;
        i += 1;
    }
    out
}

/// Everything a decoding run produced, plus the bytes each good frame took.
struct Run {
    items: Vec<DecodedItem>,
    good_frame_bytes: u64,
    counters: Counters,
}

fn decode_chunked(bytes: &[u8], sizes: &[usize]) -> Run {
    let mut d = Decoder::new();
    let mut items = Vec::new();
    let mut good = 0u64;
    let mut take = |d: &mut Decoder, items: &mut Vec<DecodedItem>| {
        while let Some(it) = d.next_item() {
            if matches!(it, DecodedItem::Frame(_) | DecodedItem::Skipped { .. }) {
                good += d.last_frame_span().map_or(0, |(_, len)| len as u64);
            }
            items.push(it);
        }
    };
    for c in chunks(bytes, sizes) {
        d.feed(c);
        take(&mut d, &mut items);
    }
    d.finish();
    take(&mut d, &mut items);
    Run {
        items,
        good_frame_bytes: good,
        counters: *d.counters(),
    }
}

fn frames_of(items: &[DecodedItem]) -> Vec<Frame> {
    items
        .iter()
        .filter_map(|i| match i {
            DecodedItem::Frame(f) => Some(f.clone()),
            _ => None,
        })
        .collect()
}

/// Counters must account for every byte (spec counter table).
fn assert_accounting(run: &Run, len: usize) {
    let c = &run.counters;
    assert_eq!(c.bytes_read, len as u64);
    assert_eq!(c.bytes_read, run.good_frame_bytes + c.resync_bytes);
    let resync_items: u64 = run
        .items
        .iter()
        .map(|i| match i {
            DecodedItem::Resync { bytes, .. } => *bytes,
            _ => 0,
        })
        .sum();
    assert_eq!(resync_items, c.resync_bytes);
    let good_items = run
        .items
        .iter()
        .filter(|i| matches!(i, DecodedItem::Frame(_) | DecodedItem::Skipped { .. }))
        .count() as u64;
    assert_eq!(good_items, c.frames_good);
    assert!(c.malformed + c.unknown_kinds <= c.frames_good);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn round_trips_random_frames_in_random_chunks(
        payloads in proptest::collection::vec(payload(), 1..30),
        first_seq in any::<u16>(),
        sizes in proptest::collection::vec(1usize..3000, 1..8),
    ) {
        let mut enc = Encoder::starting_at(first_seq);
        let mut bytes = Vec::new();
        for p in &payloads {
            enc.encode(p, &mut bytes).unwrap();
        }
        let run = decode_chunked(&bytes, &sizes);
        let frames = frames_of(&run.items);
        prop_assert_eq!(frames.len(), payloads.len());
        for (i, (f, p)) in frames.iter().zip(&payloads).enumerate() {
            prop_assert_eq!(&f.payload, p);
            prop_assert_eq!(f.seq, first_seq.wrapping_add(i as u16));
        }
        // Sample bookkeeping, computed independently from the blocks.
        let mut lost = 0u64;
        let mut disc = 0u64;
        let mut end: Option<u64> = None;
        for p in &payloads {
            if let Payload::Iq(b) = p {
                if let Some(e) = end {
                    if b.first_sample > e { lost += b.first_sample - e; }
                    if b.first_sample < e { disc += 1; }
                }
                end = Some(b.first_sample + b.samples.len() as u64);
            }
        }
        let c = run.counters;
        prop_assert_eq!(c.lost_samples, lost);
        prop_assert_eq!(c.discontinuities, disc);
        prop_assert_eq!(c.frames_good, payloads.len() as u64);
        prop_assert_eq!(c.resync_bytes + c.crc_errors + c.malformed + c.unknown_kinds, 0);
        prop_assert_eq!(c.lost_frames + c.seq_resets, 0);
        assert_accounting(&run, bytes.len());
    }

    #[test]
    fn byte_soup_never_panics_and_counters_add_up(
        soup in proptest::collection::vec(
            prop_oneof![
                3 => any::<u8>(),
                1 => Just(0xA5u8),
                1 => Just(0x5Au8),
                1 => Just(0x01u8),
                1 => Just(0x00u8),
            ],
            0..6000,
        ),
        sizes in proptest::collection::vec(1usize..500, 1..8),
    ) {
        let run = decode_chunked(&soup, &sizes);
        assert_accounting(&run, soup.len());
        // Chunking never changes the outcome.
        let whole = decode_chunked(&soup, &[usize::MAX]);
        prop_assert_eq!(&whole.items, &run.items);
        prop_assert_eq!(whole.counters, run.counters);
    }

    #[test]
    fn undamaged_frames_survive_random_damage(
        payloads in proptest::collection::vec(payload(), 2..25),
        damage in proptest::collection::vec((0u8..4, any::<prop::sample::Index>(), 1usize..64, any::<u8>()), 1..6),
        sizes in proptest::collection::vec(1usize..2000, 1..6),
    ) {
        let mut enc = Encoder::new();
        let mut bytes = Vec::new();
        // Byte ranges of each frame, tracked through the damage.
        let mut ranges: Vec<Option<(usize, usize)>> = Vec::new();
        for p in &payloads {
            let start = bytes.len();
            enc.encode(p, &mut bytes).unwrap();
            ranges.push(Some((start, bytes.len())));
        }
        let originals = bytes.clone();
        for (op, at, n, val) in damage {
            if bytes.is_empty() { break; }
            let pos = at.index(bytes.len());
            match op {
                0 => {
                    // bit flip
                    bytes[pos] ^= 1 << (val % 8);
                    for r in ranges.iter_mut() {
                        if matches!(r, Some((a, b)) if *a <= pos && pos < *b) { *r = None; }
                    }
                }
                1 => {
                    // inserted garbage (rich in sync bytes)
                    let garbage: Vec<u8> = (0..n).map(|i| if i % 3 == 0 { 0xA5 } else { val.wrapping_add(i as u8) }).collect();
                    bytes.splice(pos..pos, garbage);
                    for r in ranges.iter_mut() {
                        match r {
                            Some((a, b)) if *a < pos && pos < *b => *r = None,
                            Some((a, b)) if pos <= *a => { *a += n; *b += n; }
                            _ => {}
                        }
                    }
                }
                2 => {
                    // deleted bytes
                    let end = (pos + n).min(bytes.len());
                    bytes.drain(pos..end);
                    let k = end - pos;
                    for r in ranges.iter_mut() {
                        match r {
                            Some((a, b)) if *a < end && pos < *b => *r = None,
                            Some((a, b)) if end <= *a => { *a -= k; *b -= k; }
                            _ => {}
                        }
                    }
                }
                _ => {
                    // truncation
                    bytes.truncate(pos);
                    for r in ranges.iter_mut() {
                        if matches!(r, Some((_, b)) if *b > pos) { *r = None; }
                    }
                }
            }
        }
        let run = decode_chunked(&bytes, &sizes);
        assert_accounting(&run, bytes.len());
        let decoded = frames_of(&run.items);
        // Every untouched frame is decoded, in order.
        let mut it = decoded.iter();
        for (i, r) in ranges.iter().enumerate() {
            if let Some((a, b)) = r {
                let want_bytes = &bytes[*a..*b];
                let (oa, ob) = {
                    let mut o = 0;
                    let mut span = (0, 0);
                    let mut e = Encoder::new();
                    for (j, p) in payloads.iter().enumerate() {
                        let mut v = Vec::new();
                        e.encode(p, &mut v).unwrap();
                        if j == i { span = (o, o + v.len()); }
                        o += v.len();
                    }
                    span
                };
                prop_assert_eq!(want_bytes, &originals[oa..ob], "range bookkeeping");
                let found = it.any(|f| f.seq == i as u16 && f.payload == payloads[i]);
                prop_assert!(found, "untouched frame {} not decoded", i);
            }
        }
    }
}
