//! `odm info FILE`: what a recording holds — probe identity, duration from
//! the IQ sample span, frames of each kind, annotations, damage and every
//! receiver counter of `serial-stream.md`. Streaming: memory is flat in the
//! file's length. `-` reads standard input.

use std::io::Read;
use std::path::PathBuf;

use anyhow::Context;
use odm_device_io::{
    Counters, DecodedItem, MagicStatus, Payload, ProbeInfo, ProbeModel, RecordingReader, SampleSpan,
};
use serde_json::{Value, json};

/// Arguments of `odm info`.
#[derive(clap::Args)]
pub struct Args {
    /// The recording (`.odmrec`), or `-` for standard input.
    pub file: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Everything `odm info` reports.
#[derive(Default)]
struct Summary {
    probe: Option<ProbeInfo>,
    probe_info_frames: u64,
    iq_frames: u64,
    event_frames: u64,
    annotation_frames: u64,
    skipped_frames: u64,
    first_sample: Option<u64>,
    end_sample: Option<u64>,
    /// What the blocks span, segment by segment (the duration).
    span: SampleSpan,
    samples: u64,
    annotations: Vec<Value>,
    events: Vec<Value>,
    damage: Vec<(u64, u64)>,
}

/// Runs `odm info`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let name = args.file.display().to_string();
    let (summary, counters, magic, tail) = if name == "-" {
        summarise(std::io::stdin().lock(), "<stdin>")?
    } else {
        let file = std::fs::File::open(&args.file).with_context(|| format!("opening {name}"))?;
        summarise(file, &name)?
    };
    if args.json {
        let v = to_json(&name, &summary, &counters, &magic, tail);
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print_text(&name, &summary, &counters, &magic, tail);
    }
    Ok(())
}

/// The summary, the final counters, the magic and the damaged tail (offset, bytes).
type Outcome = (Summary, Counters, MagicStatus, Option<(u64, u64)>);

fn summarise<R: Read>(src: R, name: &str) -> anyhow::Result<Outcome> {
    let mut r = RecordingReader::with_name(src, name.to_owned())?;
    let mut s = Summary::default();
    while let Some(item) = r.next_item()? {
        match item {
            DecodedItem::Frame(f) => match f.payload {
                Payload::ProbeInfo(p) => {
                    s.probe_info_frames += 1;
                    s.probe = Some(p);
                }
                Payload::Iq(b) => {
                    s.iq_frames += 1;
                    s.samples += b.samples.len() as u64;
                    s.first_sample = Some(
                        s.first_sample
                            .map_or(b.first_sample, |x| x.min(b.first_sample)),
                    );
                    s.end_sample = Some(
                        s.end_sample
                            .map_or(b.end_sample(), |x| x.max(b.end_sample())),
                    );
                    s.span.observe(&b);
                }
                Payload::Event(e) => {
                    s.event_frames += 1;
                    s.events
                        .push(json!({"at_sample": e.at_sample, "code": e.code, "value": e.value}));
                }
                Payload::Annotation(a) => {
                    s.annotation_frames += 1;
                    let mut obj = a.json.clone();
                    obj.insert("at_sample".into(), Value::from(a.at_sample));
                    s.annotations.push(Value::Object(obj));
                }
            },
            DecodedItem::Skipped { .. } => s.skipped_frames += 1,
            DecodedItem::Resync { offset, bytes } => s.damage.push((offset, bytes)),
            _ => {}
        }
    }
    let tail = r.damaged_tail().map(|t| (t.offset, t.bytes));
    Ok((s, *r.counters(), r.magic().clone(), tail))
}

fn model_name(n: u8) -> String {
    match ProbeModel::from_u8(n) {
        ProbeModel::Unknown => "unknown".into(),
        ProbeModel::AdultShortTerm => "adult short-term".into(),
        ProbeModel::AdultLongTerm => "adult long-term".into(),
        ProbeModel::Paediatric => "paediatric".into(),
        ProbeModel::Other(n) => format!("model {n}"),
    }
}

/// The time the IQ blocks cover: their segments' spans added up (after a
/// restarted sender the indices overlap), gaps included.
fn duration_s(s: &Summary) -> Option<f64> {
    let rate = f64::from(s.probe.as_ref()?.sample_rate_hz);
    Some(s.span.samples()? as f64 / rate)
}

fn magic_text(m: &MagicStatus) -> String {
    match m {
        MagicStatus::Good => "ok".into(),
        MagicStatus::Damaged { found } => format!("damaged (found {})", hex(found)),
        MagicStatus::RawStream => "absent (raw probe stream)".into(),
        MagicStatus::Truncated { found } => format!("truncated ({} bytes)", found.len()),
    }
}

fn hex(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn counters_json(c: &Counters) -> Value {
    serde_json::to_value(c).unwrap_or(Value::Null)
}

fn to_json(
    name: &str,
    s: &Summary,
    c: &Counters,
    magic: &MagicStatus,
    tail: Option<(u64, u64)>,
) -> Value {
    let probe = s.probe.as_ref().map(|p| {
        json!({
            "serial": p.serial_str(),
            "model": p.probe_model,
            "model_name": model_name(p.probe_model),
            "firmware": p.firmware_str(),
            "sample_rate_hz": p.sample_rate_hz,
            "carrier_hz": p.carrier_hz,
            "beam_angle_deg": p.beam_angle_deg(),
            "minutes_used": p.minutes_used,
            "minutes_limit": p.minutes_limit,
        })
    });
    let magic_word = match magic {
        MagicStatus::Good => "ok",
        MagicStatus::Damaged { .. } => "damaged",
        MagicStatus::RawStream => "absent",
        MagicStatus::Truncated { .. } => "truncated",
    };
    json!({
        "file": name,
        "magic": magic_word,
        "probe": probe,
        "first_sample": s.first_sample,
        "end_sample": s.end_sample,
        "samples": s.samples,
        "duration_s": duration_s(s),
        "segments": s.span.segments(),
        "frames": {
            "probe_info": s.probe_info_frames,
            "iq_samples": s.iq_frames,
            "event": s.event_frames,
            "annotation": s.annotation_frames,
            "skipped": s.skipped_frames,
        },
        "events": s.events,
        "annotations": s.annotations,
        "damage": s.damage.iter().map(|(o, b)| json!({"offset": o, "bytes": b})).collect::<Vec<_>>(),
        "damaged_tail": tail.map(|(o, b)| json!({"offset": o, "bytes": b})),
        "counters": counters_json(c),
    })
}

fn print_text(
    name: &str,
    s: &Summary,
    c: &Counters,
    magic: &MagicStatus,
    tail: Option<(u64, u64)>,
) {
    println!("file:            {name}");
    println!("magic:           {}", magic_text(magic));
    match &s.probe {
        Some(p) => {
            println!("probe serial:    {}", p.serial_str());
            println!(
                "probe model:     {} ({})",
                p.probe_model,
                model_name(p.probe_model)
            );
            println!("firmware:        {}", p.firmware_str());
            println!("sample rate:     {} Hz", p.sample_rate_hz);
            println!("carrier:         {} Hz", p.carrier_hz);
            println!("beam angle:      {:.2} deg", p.beam_angle_deg());
            let limit = if p.minutes_limit == 0 {
                "no limit".to_owned()
            } else {
                p.minutes_limit.to_string()
            };
            println!("minutes used:    {} (limit {limit})", p.minutes_used);
        }
        None => println!("probe:           no PROBE_INFO frame"),
    }
    match (s.first_sample, s.end_sample, duration_s(s)) {
        (Some(a), Some(b), Some(d)) => {
            println!("samples:         {a} .. {b} ({} received)", s.samples);
            match s.span.segments() {
                1 => println!("duration:        {d:.3} s"),
                n => println!(
                    "duration:        {d:.3} s in {n} segments (the sample counter went back)"
                ),
            }
        }
        (Some(a), Some(b), None) => {
            println!("samples:         {a} .. {b} ({} received)", s.samples);
            println!("duration:        unknown (no sample rate)");
        }
        _ => println!("duration:        0 s (no IQ samples)"),
    }
    println!(
        "frames:          {} PROBE_INFO, {} IQ_SAMPLES, {} EVENT, {} ANNOTATION, {} skipped",
        s.probe_info_frames, s.iq_frames, s.event_frames, s.annotation_frames, s.skipped_frames
    );
    println!("events:          {}", s.events.len());
    for e in &s.events {
        println!("  {e}");
    }
    println!("annotations:     {}", s.annotations.len());
    for a in &s.annotations {
        println!("  {a}");
    }
    println!("damaged regions: {}", s.damage.len());
    for (o, b) in &s.damage {
        println!("  {b} bytes at byte {o}");
    }
    match tail {
        Some((o, b)) => println!("damaged tail:    {b} bytes at byte {o}"),
        None => println!("damaged tail:    none"),
    }
    println!("counters:");
    for (k, v) in c.named() {
        println!("  {k:<16} {v}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use odm_device_io::{IqBlock, RecordingStart, RecordingWriter};

    fn info() -> ProbeInfo {
        ProbeInfo {
            sample_rate_hz: 10_000,
            carrier_hz: 4_000_000,
            beam_angle_cdeg: 4500,
            probe_model: 2,
            minutes_used: 90,
            minutes_limit: 0,
            probe_serial: ProbeInfo::pad("INFO-TEST"),
            firmware: ProbeInfo::pad("9.9"),
        }
    }

    /// 2.5 s of signal at 10 kHz starting at sample 5000, with a marker.
    fn recording() -> Vec<u8> {
        let start = RecordingStart::new("2026-11-30T12:00:00Z", "info-test", 5000);
        let mut w = RecordingWriter::new(Vec::new(), &start, &info()).unwrap();
        for k in 0..25u64 {
            w.write_payload(&Payload::Iq(IqBlock {
                first_sample: 5000 + k * 1000,
                flags: 0,
                samples: vec![[1, 2]; 1000],
            }))
            .unwrap();
        }
        w.annotate_marker(7000, "fluid given").unwrap();
        w.finish().unwrap()
    }

    #[test]
    fn summarises_probe_duration_frames_and_annotations() {
        let bytes = recording();
        let (s, c, magic, tail) = summarise(&bytes[..], "mem").unwrap();
        assert_eq!(magic, MagicStatus::Good);
        assert_eq!(tail, None);
        let p = s.probe.as_ref().unwrap();
        assert_eq!(p.serial_str(), "INFO-TEST");
        assert_eq!(duration_s(&s), Some(2.5));
        assert_eq!((s.first_sample, s.end_sample), (Some(5000), Some(30_000)));
        assert_eq!(s.iq_frames, 25);
        assert_eq!(s.probe_info_frames, 1);
        assert_eq!(s.annotation_frames, 2);
        assert_eq!(s.annotations[1]["type"], "marker");
        assert_eq!(s.annotations[1]["at_sample"], 7000);
        assert_eq!(c.frames_good, 28);
        assert!(c.is_clean());
    }

    /// A restarted sender (the counter back to 0 after 2.5 s): 2.5 s more
    /// of signal is 5 s in two segments, not the 2.5 s its indices span.
    #[test]
    fn a_restarted_senders_segments_add_up() {
        let start = RecordingStart::new("2026-11-30T12:00:00Z", "info-test", 0);
        let mut w = RecordingWriter::new(Vec::new(), &start, &info()).unwrap();
        for first in (0..25_000).step_by(1000).chain((0..25_000).step_by(1000)) {
            w.write_payload(&Payload::Iq(IqBlock {
                first_sample: first,
                flags: 0,
                samples: vec![[1, 2]; 1000],
            }))
            .unwrap();
        }
        let bytes = w.finish().unwrap();
        let (s, c, _, _) = summarise(&bytes[..], "mem").unwrap();
        assert_eq!(c.discontinuities, 1);
        assert_eq!(duration_s(&s), Some(5.0));
        let v = to_json("mem", &s, &c, &MagicStatus::Good, None);
        assert_eq!(v["segments"], 2);
        assert_eq!(v["duration_s"], 5.0);
    }

    #[test]
    fn json_names_every_spec_counter_and_the_damaged_tail() {
        let mut bytes = recording();
        bytes.truncate(bytes.len() - 10);
        let (s, c, magic, tail) = summarise(&bytes[..], "mem").unwrap();
        assert_eq!(s.annotation_frames, 1, "the cut marker is not read");
        let v = to_json("mem", &s, &c, &magic, tail);
        for key in [
            "bytes_read",
            "frames_good",
            "crc_errors",
            "malformed",
            "unknown_kinds",
            "lost_frames",
            "seq_resets",
            "lost_samples",
            "discontinuities",
            "resync_bytes",
        ] {
            assert!(v["counters"][key].is_u64(), "counter {key} missing");
        }
        let t = &v["damaged_tail"];
        assert_eq!(
            t["offset"].as_u64().unwrap() + t["bytes"].as_u64().unwrap(),
            bytes.len() as u64
        );
        assert_eq!(v["counters"]["resync_bytes"], t["bytes"]);
        assert_eq!(v["probe"]["beam_angle_deg"], 45.0);
        assert_eq!(v["frames"]["iq_samples"], 25);
    }
}
