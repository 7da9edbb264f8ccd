//! `odm record --port PATH --out FILE.odmrec`: records a live probe stream.
//!
//! Decoder → recorder: only good frames are written, payload byte for byte,
//! renumbered by the recorder. What goes wrong on the live link is kept in
//! the file as `stream_error` annotations (gaps and discontinuities at their
//! sample, the other counters as per-second totals). Frames before the first
//! PROBE_INFO cannot be converted to velocity and are dropped; their count
//! is the file's first `stream_error` annotation
//! (`dropped_before_probe_info`).
//! Stops after `--duration`, on Ctrl-C / SIGTERM, or at the end of input
//! when the port is a FIFO or file; prints the counters to standard error.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use odm_device_io::{
    ByteSource, Counters, DEFAULT_BAUD, DecodedItem, Decoder, Payload, ReaderSource,
    RecordingStart, RecordingWriter, SerialSource, SourceRead, interrupt,
};

/// Arguments of `odm record`.
#[derive(clap::Args)]
pub struct Args {
    /// Serial device or pseudo-terminal of the probe interface (a FIFO or a
    /// file is read to its end).
    #[arg(long)]
    pub port: String,
    /// The recording to write (`.odmrec`); overwritten if it exists.
    #[arg(long)]
    pub out: PathBuf,
    /// Stop after this many seconds (default: until Ctrl-C or end of input).
    #[arg(long, value_parser = positive_seconds)]
    pub duration: Option<f64>,
    /// Baud rate of a serial port (nominal for USB CDC-ACM).
    #[arg(long, default_value_t = DEFAULT_BAUD)]
    pub baud: u32,
}

/// How often counter totals become `stream_error` annotations.
const ERROR_REPORT_INTERVAL: Duration = Duration::from_secs(1);

/// Runs `odm record`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let stop = interrupt::stop_flag_on_interrupt().context("installing the Ctrl-C handler")?;
    let mut source = open_source(&args)?;
    // Fail now, not when the first PROBE_INFO arrives, if the file cannot
    // be written; the recorder truncates it then. An existing file is
    // opened without truncating, so a run that records nothing leaves an
    // earlier recording as it was; and only a regular file is ever
    // written (or removed): never a device node, a FIFO or a directory.
    let existed = match std::fs::metadata(&args.out) {
        Ok(meta) if !meta.is_file() => bail!(
            "{} exists and is not a regular file; give --out a recording's path",
            args.out.display()
        ),
        Ok(_) => true,
        Err(_) => false,
    };
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let mut rec = Recorder::new(&args);
    let started = Instant::now();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        if args
            .duration
            .is_some_and(|d| started.elapsed().as_secs_f64() >= d)
        {
            break;
        }
        match source
            .read_chunk(&mut buf)
            .with_context(|| format!("reading {}", args.port))?
        {
            SourceRead::Bytes(n) => {
                rec.decoder.feed(buf.get(..n).unwrap_or(&[]));
                rec.drain()?;
            }
            SourceRead::Idle => {}
            SourceRead::Disconnected => {
                eprintln!("odm record: {} disconnected; waiting for it", args.port);
                rec.decoder.finish();
                rec.drain()?;
                rec.note_link("disconnected")?;
            }
            SourceRead::Reconnected => {
                eprintln!("odm record: {} reconnected", args.port);
            }
            SourceRead::End => break,
        }
        rec.report_errors(false)?;
        if let Some(w) = rec.writer.as_mut() {
            w.flush_if_due()
                .with_context(|| format!("writing {}", args.out.display()))?;
        }
    }
    rec.decoder.finish();
    rec.drain()?;
    rec.start_pending()?;
    rec.report_errors(true)?;
    let counters = *rec.decoder.counters();
    let frames = rec
        .writer
        .as_ref()
        .map_or(0, RecordingWriter::frames_written);
    let dropped = rec.dropped_before_info;
    let written = match rec.writer {
        Some(w) => {
            w.finish()
                .with_context(|| format!("writing {}", args.out.display()))?;
            true
        }
        None => false,
    };
    print_counters(&counters);
    eprintln!("  frames_written   {frames}");
    eprintln!("  dropped_before_probe_info {dropped}");
    if !written {
        // The empty file created above goes; a file that was there before
        // is left as it was.
        if !existed {
            let _ = std::fs::remove_file(&args.out);
        }
        // A PROBE_INFO out of the spec's range is counted malformed: say
        // so, rather than that none came.
        let malformed = if counters.malformed > 0 {
            format!(
                " ({} malformed frames skipped, e.g. a PROBE_INFO with a sample rate outside 8000-48000 Hz)",
                counters.malformed
            )
        } else {
            String::new()
        };
        bail!(
            "no usable PROBE_INFO frame received from {} after {} bytes{malformed}; nothing recorded to {}{}",
            args.port,
            counters.bytes_read,
            args.out.display(),
            if existed { " (left as it was)" } else { "" }
        );
    }
    Ok(())
}

/// Parses `--duration`: a finite number of seconds > 0.
fn positive_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(d) if d.is_finite() && d > 0.0 => Ok(d),
        _ => Err(format!(
            "expected a positive number of seconds, got {text:?}"
        )),
    }
}

fn open_source(args: &Args) -> anyhow::Result<Box<dyn ByteSource>> {
    let meta = std::fs::metadata(&args.port).with_context(|| format!("opening {}", args.port))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if meta.file_type().is_char_device() {
            let s = SerialSource::open(&args.port, args.baud)?;
            return Ok(Box::new(s));
        }
        if meta.file_type().is_fifo() {
            return Ok(Box::new(FifoSource::open(&args.port)?));
        }
    }
    if meta.is_dir() {
        bail!("opening {}: is a directory", args.port);
    }
    let f = std::fs::File::open(&args.port).with_context(|| format!("opening {}", args.port))?;
    Ok(Box::new(ReaderSource::new(f, &args.port)))
}

/// A FIFO read without blocking, so that `--duration`, Ctrl-C and the
/// writer's timed flushes keep working while no writer has opened it yet
/// or the writer is idle (a blocking open and read held `odm record` past
/// all three, found by an audit). Read to its end: the end is the writer
/// closing it after sending something.
#[cfg(unix)]
struct FifoSource {
    file: std::fs::File,
    name: String,
    offset: u64,
    ended: bool,
}

#[cfg(unix)]
impl FifoSource {
    /// How long a read waits when there is nothing to read.
    const IDLE: Duration = Duration::from_millis(20);

    fn open(path: &str) -> anyhow::Result<Self> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NONBLOCK)
            .open(path)
            .with_context(|| format!("opening {path}"))?;
        Ok(Self {
            file,
            name: path.to_owned(),
            offset: 0,
            ended: false,
        })
    }
}

#[cfg(unix)]
impl ByteSource for FifoSource {
    fn read_chunk(&mut self, buf: &mut [u8]) -> Result<SourceRead, odm_device_io::SourceError> {
        use std::io::Read as _;
        if self.ended {
            return Ok(SourceRead::End);
        }
        match self.file.read(buf) {
            // No writer yet: wait for one.
            Ok(0) if self.offset == 0 => {
                std::thread::sleep(Self::IDLE);
                Ok(SourceRead::Idle)
            }
            Ok(0) => {
                self.ended = true;
                Ok(SourceRead::End)
            }
            Ok(n) => {
                self.offset += n as u64;
                Ok(SourceRead::Bytes(n))
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
                ) =>
            {
                std::thread::sleep(Self::IDLE);
                Ok(SourceRead::Idle)
            }
            Err(source) => Err(odm_device_io::SourceError::Read {
                path: self.name.clone(),
                offset: self.offset,
                source,
            }),
        }
    }

    fn describe(&self) -> String {
        self.name.clone()
    }
}

struct Recorder {
    out: PathBuf,
    decoder: Decoder,
    writer: Option<RecordingWriter<odm_device_io::FileSink>>,
    /// Sample index just past the last IQ block seen (for annotations).
    at_sample: u64,
    /// Whether an IQ block has been seen (`at_sample` is the stream's).
    seen_samples: bool,
    /// A PROBE_INFO payload (as received) that came before any sample:
    /// the recording starts at the first sample index the stream states
    /// after it, so that `recording_started` names where it joined.
    /// With it, the receiver's counters when it came: what goes wrong on
    /// the link after it belongs to the recording.
    pending_info: Option<(Vec<u8>, Counters)>,
    dropped_before_info: u64,
    /// Counters already reported as `stream_error` annotations.
    reported: Counters,
    last_report: Instant,
}

impl Recorder {
    fn new(args: &Args) -> Self {
        Self {
            out: args.out.clone(),
            // A probe interface never sends annotations (serial-stream.md):
            // one from the wire is counted malformed, never recorded as
            // the monitor's own.
            decoder: Decoder::for_wire(),
            writer: None,
            at_sample: 0,
            seen_samples: false,
            pending_info: None,
            dropped_before_info: 0,
            reported: Counters::default(),
            last_report: Instant::now(),
        }
    }

    fn ctx(&self) -> String {
        format!("writing {}", self.out.display())
    }

    /// Writes every decoded frame and the gap/discontinuity annotations.
    fn drain(&mut self) -> anyhow::Result<()> {
        while let Some(item) = self.decoder.next_item() {
            match item {
                DecodedItem::Frame(f) => {
                    if self.writer.is_none() {
                        // The sample index this frame states, if any.
                        let stated = match &f.payload {
                            Payload::Iq(b) => Some(b.first_sample),
                            Payload::Event(e) => Some(e.at_sample),
                            _ => None,
                        };
                        match (&f.payload, self.decoder.last_payload()) {
                            (Payload::ProbeInfo(_), Some((_, raw))) => {
                                let raw = raw.to_vec();
                                let counters = *self.decoder.counters();
                                if self.seen_samples {
                                    self.start_writer(self.at_sample, &raw, counters)?;
                                } else {
                                    // Joined before any sample: wait for the
                                    // stream to say where it is.
                                    self.pending_info = Some((raw, counters));
                                }
                                continue;
                            }
                            _ => match (stated, self.pending_info.take()) {
                                // The first frame after PROBE_INFO that
                                // states a sample index starts the file,
                                // and is its first frame after the info.
                                (Some(at), Some((raw, counters))) => {
                                    self.start_writer(at, &raw, counters)?;
                                }
                                (_, pending) => {
                                    self.pending_info = pending;
                                    self.dropped_before_info += 1;
                                    if let Payload::Iq(b) = &f.payload {
                                        self.at_sample = b.end_sample();
                                        self.seen_samples = true;
                                    }
                                    continue;
                                }
                            },
                        }
                    }
                    if let Payload::Iq(b) = &f.payload {
                        self.at_sample = b.end_sample();
                        self.seen_samples = true;
                    }
                    let ctx = self.ctx();
                    if let (Some(w), Some((kind, payload))) =
                        (self.writer.as_mut(), self.decoder.last_payload())
                    {
                        w.write_raw(kind, payload).context(ctx)?;
                    }
                }
                DecodedItem::Gap {
                    at_sample,
                    lost_samples,
                } => {
                    self.reported.lost_samples += lost_samples;
                    self.annotate(at_sample, "lost_samples", lost_samples)?;
                }
                DecodedItem::Discontinuity { first_sample, .. } => {
                    self.reported.discontinuities += 1;
                    self.annotate(first_sample, "discontinuity", 1)?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Creates the recording: `recording_started` at `at_sample`, then the
    /// PROBE_INFO payload byte for byte as received (not re-encoded);
    /// `counters` are the receiver's when that PROBE_INFO came.
    fn start_writer(
        &mut self,
        at_sample: u64,
        raw_info: &[u8],
        counters: Counters,
    ) -> anyhow::Result<()> {
        let start = RecordingStart::now(concat!("odm ", env!("CARGO_PKG_VERSION")), at_sample);
        // The error names the file already.
        let w = RecordingWriter::create_raw(&self.out, &start, raw_info)?;
        self.writer = Some(w);
        // Link losses before the recording started are not its business;
        // frames the probe sent that it could not take are, so the file
        // says how many.
        self.reported = counters;
        if self.dropped_before_info > 0 {
            let n = self.dropped_before_info;
            self.annotate(at_sample, "dropped_before_probe_info", n)?;
        }
        Ok(())
    }

    /// At the end: a PROBE_INFO still waiting for a sample index starts the
    /// recording at the last index seen (0 when none was).
    fn start_pending(&mut self) -> anyhow::Result<()> {
        if self.writer.is_none()
            && let Some((raw, counters)) = self.pending_info.take()
        {
            self.start_writer(self.at_sample, &raw, counters)?;
        }
        Ok(())
    }

    fn annotate(&mut self, at_sample: u64, what: &str, count: u64) -> anyhow::Result<()> {
        let ctx = self.ctx();
        if let Some(w) = self.writer.as_mut() {
            w.annotate_stream_error(at_sample, what, count)
                .context(ctx)?;
        }
        Ok(())
    }

    fn note_link(&mut self, what: &str) -> anyhow::Result<()> {
        self.annotate(self.at_sample, what, 1)
    }

    /// Turns counter increases into `stream_error` annotations, at most once
    /// per [`ERROR_REPORT_INTERVAL`] unless `now`.
    fn report_errors(&mut self, now: bool) -> anyhow::Result<()> {
        if self.writer.is_none() || (!now && self.last_report.elapsed() < ERROR_REPORT_INTERVAL) {
            return Ok(());
        }
        self.last_report = Instant::now();
        let c = *self.decoder.counters();
        let r = self.reported;
        let rows = [
            ("crc_errors", c.crc_errors, r.crc_errors),
            ("malformed", c.malformed, r.malformed),
            ("unknown_kinds", c.unknown_kinds, r.unknown_kinds),
            ("lost_frames", c.lost_frames, r.lost_frames),
            ("seq_resets", c.seq_resets, r.seq_resets),
            ("resync_bytes", c.resync_bytes, r.resync_bytes),
        ];
        for (what, now_v, before) in rows {
            if now_v > before {
                self.annotate(self.at_sample, what, now_v - before)?;
            }
        }
        self.reported = Counters {
            lost_samples: self.reported.lost_samples,
            discontinuities: self.reported.discontinuities,
            ..c
        };
        Ok(())
    }
}

fn print_counters(c: &Counters) {
    eprintln!("odm record: receiver counters");
    for (k, v) in c.named() {
        eprintln!("  {k:<16} {v}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use odm_device_io::{Encoder, IqBlock, ProbeInfo, RecordingReader, kind};

    fn info() -> ProbeInfo {
        ProbeInfo {
            sample_rate_hz: 20_000,
            carrier_hz: 4_000_000,
            beam_angle_cdeg: 4500,
            probe_model: 1,
            minutes_used: 3,
            minutes_limit: 720,
            probe_serial: ProbeInfo::pad("REC-TEST"),
            firmware: ProbeInfo::pad("1.0"),
        }
    }

    fn iq(first: u64) -> Payload {
        Payload::Iq(IqBlock {
            first_sample: first,
            flags: 1,
            samples: (0..100).map(|i| [i, -i]).collect(),
        })
    }

    /// Records `live` (fed in 37-byte chunks) to a temporary file, with the
    /// link errors reported as at the end of a run; returns its frames,
    /// the reader's counters and the frames dropped before PROBE_INFO.
    fn record_bytes(
        live: &[u8],
        name: &str,
    ) -> (Vec<odm_device_io::Frame>, odm_device_io::Counters, u64) {
        let out =
            std::env::temp_dir().join(format!("odm-record-{name}-{}.odmrec", std::process::id()));
        let args = Args {
            port: "test".into(),
            out: out.clone(),
            duration: None,
            baud: DEFAULT_BAUD,
        };
        let mut rec = Recorder::new(&args);
        for chunk in live.chunks(37) {
            rec.decoder.feed(chunk);
            rec.drain().unwrap();
        }
        rec.decoder.finish();
        rec.drain().unwrap();
        rec.start_pending().unwrap();
        rec.report_errors(true).unwrap();
        rec.writer.take().unwrap().finish().unwrap();
        let mut r = RecordingReader::open(&out).unwrap();
        let mut frames = Vec::new();
        while let Some(f) = r.next_frame().unwrap() {
            frames.push(f);
        }
        std::fs::remove_file(&out).unwrap();
        (frames, *r.counters(), rec.dropped_before_info)
    }

    /// The sample index of the `recording_started` annotation, which must
    /// be the first frame.
    fn started_at(frames: &[odm_device_io::Frame]) -> u64 {
        match &frames[0].payload {
            Payload::Annotation(a) if a.kind() == "recording_started" => a.at_sample,
            other => panic!("first frame {other:?}"),
        }
    }

    /// Joining a probe that has run for minutes, with PROBE_INFO the first
    /// frame heard: `recording_started` names the sample index the stream
    /// was at, not 0 (which put every wall-clock time 250 s early here).
    #[test]
    fn joining_mid_stream_starts_the_recording_at_the_streams_sample_index() {
        let mut enc = Encoder::starting_at(9);
        let mut live = Vec::new();
        enc.encode(&Payload::ProbeInfo(info()), &mut live).unwrap();
        enc.encode(&iq(5_000_000), &mut live).unwrap();
        enc.encode(&iq(5_000_100), &mut live).unwrap();
        let (frames, ..) = record_bytes(&live, "join");
        assert_eq!(started_at(&frames), 5_000_000);
        assert!(matches!(frames[1].payload, Payload::ProbeInfo(_)));
        assert_eq!(frames[2].payload, iq(5_000_000));
        assert_eq!(frames.len(), 4, "nothing dropped: {frames:?}");

        // An event is the first frame to state the index.
        let mut live = Vec::new();
        let ev = odm_device_io::ProbeEvent {
            at_sample: 777_000,
            code: 1,
            value: 0,
        };
        enc.encode(&Payload::ProbeInfo(info()), &mut live).unwrap();
        enc.encode(&Payload::Event(ev), &mut live).unwrap();
        enc.encode(&iq(777_000), &mut live).unwrap();
        let (frames, ..) = record_bytes(&live, "join-event");
        assert_eq!(started_at(&frames), 777_000);
        assert_eq!(frames[2].payload, Payload::Event(ev));

        // A damaged frame between PROBE_INFO and the first sample is the
        // recording's business: said in the file (a review found it left
        // out), and a second PROBE_INFO before any sample is the one kept.
        let mut live = Vec::new();
        let mut turned = info();
        turned.beam_angle_cdeg = 6000;
        enc.encode(&Payload::ProbeInfo(info()), &mut live).unwrap();
        enc.encode(&Payload::ProbeInfo(turned.clone()), &mut live)
            .unwrap();
        let before_bad = live.len();
        enc.encode(&iq(900_000), &mut live).unwrap();
        live[before_bad + 30] ^= 0x01;
        enc.encode(&iq(900_100), &mut live).unwrap();
        let (frames, ..) = record_bytes(&live, "join-damaged");
        assert_eq!(started_at(&frames), 900_100);
        assert_eq!(frames[1].payload, Payload::ProbeInfo(turned));
        let errors: Vec<_> = frames
            .iter()
            .filter_map(|f| match &f.payload {
                Payload::Annotation(a) if a.kind() == "stream_error" => a
                    .json
                    .get("what")
                    .and_then(|w| w.as_str())
                    .map(String::from),
                _ => None,
            })
            .collect();
        assert!(errors.iter().any(|w| w == "crc_errors"), "{errors:?}");

        // PROBE_INFO alone: recorded at the end, from 0.
        let mut live = Vec::new();
        enc.encode(&Payload::ProbeInfo(info()), &mut live).unwrap();
        let (frames, ..) = record_bytes(&live, "join-info");
        assert_eq!(frames.len(), 2);
        assert_eq!(started_at(&frames), 0);
    }

    #[test]
    fn records_good_frames_and_keeps_link_errors_as_annotations() {
        let mut enc = Encoder::starting_at(40);
        let mut live = Vec::new();
        enc.encode(&iq(0), &mut live).unwrap(); // before PROBE_INFO: dropped
        enc.encode(&Payload::ProbeInfo(info()), &mut live).unwrap();
        enc.encode(&iq(100), &mut live).unwrap();
        enc.encode(&iq(200), &mut live).unwrap();
        enc.encode(&iq(500), &mut live).unwrap(); // 200 samples lost
        let before_bad = live.len();
        enc.encode(&iq(600), &mut live).unwrap();
        live[before_bad + 30] ^= 0x01; // CRC error: one frame lost
        enc.encode(&iq(700), &mut live).unwrap();

        let (frames, counters, dropped) = record_bytes(&live, "test");
        assert_eq!(dropped, 1);
        assert!(counters.crc_errors == 0 && counters.lost_frames == 0);
        for (i, f) in frames.iter().enumerate() {
            assert_eq!(usize::from(f.seq), i, "renumbered from 0");
        }
        let kinds: Vec<String> = frames
            .iter()
            .map(|f| match &f.payload {
                Payload::Annotation(a) => format!(
                    "{}:{}:{}",
                    a.kind(),
                    a.json.get("what").and_then(|w| w.as_str()).unwrap_or(""),
                    a.json.get("count").and_then(|w| w.as_u64()).unwrap_or(0)
                ),
                Payload::Iq(b) => format!("iq:{}", b.first_sample),
                Payload::ProbeInfo(_) => "info".into(),
                Payload::Event(_) => "event".into(),
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "recording_started::0",
                "info",
                // The block before PROBE_INFO, which could not be recorded.
                "stream_error:dropped_before_probe_info:1",
                "iq:100",
                "iq:200",
                "stream_error:lost_samples:200",
                "iq:500",
                // The frame at 600 failed its CRC: its 100 samples are lost.
                "stream_error:lost_samples:100",
                "iq:700",
                "stream_error:crc_errors:1",
                "stream_error:lost_frames:1",
                // The damaged frame: header 8 + 12 + 4 * 100 samples + CRC 4.
                "stream_error:resync_bytes:424",
            ]
            .map(String::from)
        );
        // Payloads as sent (IQ encoding is canonical, so byte for byte).
        assert_eq!(frames[8].payload, iq(700));
    }

    /// The raw payload of the only frame in `bytes`.
    fn payload_of(bytes: &[u8]) -> Vec<u8> {
        let mut d = Decoder::new();
        d.feed(bytes);
        d.finish();
        assert!(matches!(d.next_item(), Some(DecodedItem::Frame(_))));
        d.last_payload().unwrap().1.to_vec()
    }

    #[test]
    fn first_probe_info_is_recorded_byte_for_byte() {
        let out = std::env::temp_dir().join(format!(
            "odm-record-raw-info-test-{}.odmrec",
            std::process::id()
        ));
        let args = Args {
            port: "test".into(),
            out: out.clone(),
            duration: None,
            baud: DEFAULT_BAUD,
        };
        let mut one = Vec::new();
        Encoder::new()
            .encode(&Payload::ProbeInfo(info()), &mut one)
            .unwrap();
        let mut sent = payload_of(&one);
        assert_eq!(sent[11], 0, "reserved byte of the canonical encoding");
        sent[11] = 0x77; // reserved: a receiver keeps it as it came
        sent[..4].copy_from_slice(&21_000u32.to_le_bytes());
        let mut second = sent.clone();
        second[11] = 0x55;

        let mut enc = Encoder::starting_at(7);
        let mut live = Vec::new();
        enc.encode_raw(kind::PROBE_INFO, &sent, &mut live).unwrap();
        enc.encode(&iq(0), &mut live).unwrap();
        enc.encode_raw(kind::PROBE_INFO, &second, &mut live)
            .unwrap();
        let mut rec = Recorder::new(&args);
        for chunk in live.chunks(13) {
            rec.decoder.feed(chunk);
            rec.drain().unwrap();
        }
        rec.decoder.finish();
        rec.drain().unwrap();
        rec.writer.take().unwrap().finish().unwrap();

        let bytes = std::fs::read(&out).unwrap();
        std::fs::remove_file(&out).unwrap();
        let mut d = Decoder::with_base_offset(8);
        d.feed(&bytes[8..]);
        d.finish();
        let mut stored = Vec::new();
        while let Some(item) = d.next_item() {
            if let DecodedItem::Frame(f) = item {
                let (k, p) = d.last_payload().unwrap();
                stored.push((f.seq, k, p.to_vec()));
            }
        }
        assert!(d.counters().is_clean(), "{:?}", d.counters());
        assert_eq!(stored.len(), 4, "recording_started, info, iq, info");
        assert_eq!(stored[0].1, kind::ANNOTATION);
        assert_eq!((stored[1].0, stored[1].1), (1, kind::PROBE_INFO));
        assert_eq!(stored[1].2, sent, "first PROBE_INFO byte for byte");
        assert_eq!(stored[3].2, second, "later PROBE_INFO byte for byte");
    }
}
