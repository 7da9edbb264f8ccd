//! The live app's threads: reader → rtrb SPSC ring → DSP thread (the
//! [`Engine`]) → handoff → UI; a recorder thread; commands from the UI.
//!
//! - The reader thread owns the byte source (serial port with reconnect,
//!   paced replay) or the virtual probe (paced in real time from sample
//!   indices). It may wait for ring space: the OS buffers the port, and the
//!   DSP thread is never the one that waits.
//! - The DSP thread pops payloads, runs the pipeline and wakes the UI with
//!   `request_repaint`; it sleeps (park with timeout) only when the ring is
//!   empty, and the reader unparks it after each push.
//! - The recorder thread owns the file; a full recorder queue drops frames
//!   and counts them (written as a `stream_error` annotation when it drains).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use odm_device_io::{
    ByteSource, DecodedItem, Decoder, Pace, Payload, RecordingReader, RecordingStart,
    RecordingWriter, ReplayControl, ReplaySource, SerialSource, SourceRead,
};
use odm_simulator::{SimConfig, VirtualProbe};

use crate::control::{Backend, Command, RecordingStatus, SourceSpec};
use crate::engine::{Engine, RecorderMsg};
use crate::handoff::{EventMsg, Handoff, SourceState};

/// Payloads in flight between reader and DSP (≈ 10 s of 10 ms blocks).
const READER_RING: usize = 1024;
/// Frames in flight to the recorder (≈ 40 s of 10 ms blocks).
const RECORDER_RING: usize = 4096;
/// Longest the DSP thread sleeps when there is nothing to do.
const DSP_IDLE: Duration = Duration::from_millis(20);

/// What the reader hands the DSP thread.
enum ReaderMsg {
    Payload(Payload),
    /// A new stream starts (seek): fresh pipeline, cleared displays.
    Reset,
    /// The end of a recording: flush the pipeline.
    Finished,
}

/// What the UI asks the reader.
enum ReaderCmd {
    Pause(bool),
    Seek(u64),
    Speed(f64),
}

/// What the UI asks the DSP thread.
enum DspCmd {
    Patient(crate::control::PatientSettings),
    Annotate(serde_json::Map<String, serde_json::Value>),
    StartRecording(PathBuf),
    StopRecording,
}

/// The running threads of one source.
struct Workers {
    stop: Arc<AtomicBool>,
    reader_tx: mpsc::Sender<ReaderCmd>,
    dsp_tx: mpsc::Sender<DspCmd>,
    threads: Vec<JoinHandle<()>>,
    replay_duration_bits: Arc<AtomicU64>,
}

impl Workers {
    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            // A worker that panicked has nothing left to clean up.
            let _ = t.join();
        }
    }
}

/// The threaded backend of the real app.
pub struct LiveBackend {
    spec: SourceSpec,
    handoff: Arc<Handoff>,
    repaint: Option<egui::Context>,
    workers: Option<Workers>,
    recording: Arc<Mutex<RecordingStatus>>,
    audio: crate::audio::AudioOut,
}

impl LiveBackend {
    /// Starts the threads for `spec`, feeding `handoff` and waking `repaint`.
    pub fn start(spec: SourceSpec, handoff: Arc<Handoff>, repaint: Option<egui::Context>) -> Self {
        let mut b = Self {
            spec: spec.clone(),
            handoff,
            repaint,
            workers: None,
            recording: Arc::new(Mutex::new(RecordingStatus::Idle)),
            audio: crate::audio::AudioOut::start(),
        };
        b.workers = Some(b.spawn(spec));
        b
    }

    fn spawn(&mut self, spec: SourceSpec) -> Workers {
        let stop = Arc::new(AtomicBool::new(false));
        let (reader_tx, reader_rx) = mpsc::channel();
        let (dsp_tx, dsp_rx) = mpsc::channel();
        let (ring_tx, ring_rx) = rtrb::RingBuffer::<ReaderMsg>::new(READER_RING);
        let (spent_tx, spent_rx) = rtrb::RingBuffer::<Payload>::new(READER_RING);
        let (rec_tx, rec_rx) = rtrb::RingBuffer::<RecorderMsg>::new(RECORDER_RING);
        let replay_duration_bits = Arc::new(AtomicU64::new(0));

        let mut engine = Engine::new(self.handoff.clone());
        engine.set_calibrations(std::sync::Arc::new(
            crate::calibrations::Calibrations::load_default(),
        ));
        engine.set_recorder(rec_tx);
        if let Some(p) = self.audio.new_producer() {
            engine.set_audio(p);
        }
        let dsp = {
            let stop = stop.clone();
            let handoff = self.handoff.clone();
            let repaint = self.repaint.clone();
            let recording = self.recording.clone();
            thread::Builder::new()
                .name("odm-dsp".into())
                .spawn(move || {
                    let rings = DspRings {
                        input: ring_rx,
                        spent: spent_tx,
                    };
                    dsp_loop(engine, rings, dsp_rx, stop, handoff, repaint, recording)
                })
        };
        let mut threads = Vec::new();
        let dsp_thread = match dsp {
            Ok(h) => {
                let t = h.thread().clone();
                threads.push(h);
                Some(t)
            }
            Err(e) => {
                self.fail(format!("cannot start the DSP thread: {e}"));
                None
            }
        };
        let reader = {
            let stop = stop.clone();
            let handoff = self.handoff.clone();
            let repaint = self.repaint.clone();
            let duration = replay_duration_bits.clone();
            thread::Builder::new()
                .name("odm-reader".into())
                .spawn(move || {
                    let mut out = RingOut {
                        ring: ring_tx,
                        spent: spent_rx,
                        dsp: dsp_thread,
                        stop: stop.clone(),
                    };
                    let say = |s: SourceState| {
                        handoff.events.push(EventMsg::Source(s));
                        if let Some(c) = &repaint {
                            c.request_repaint();
                        }
                    };
                    match spec {
                        SourceSpec::Simulated { seed } => {
                            simulated_loop(seed, &mut out, &reader_rx, &say)
                        }
                        SourceSpec::Serial { path, baud } => {
                            say(SourceState::Connecting(path.clone()));
                            match SerialSource::open(&path, baud) {
                                Ok(src) => bytes_loop(src, None, &mut out, &reader_rx, &say),
                                Err(e) => say(SourceState::Failed(e.to_string())),
                            }
                        }
                        SourceSpec::Replay { path } => {
                            say(SourceState::Connecting(path.display().to_string()));
                            match ReplaySource::open(&path, Pace::RealTime { speed: 1.0 }) {
                                Ok(src) => {
                                    let control = src.control();
                                    scan_duration(path.clone(), duration);
                                    bytes_loop(src, Some(control), &mut out, &reader_rx, &say);
                                }
                                Err(e) => say(SourceState::Failed(e.to_string())),
                            }
                        }
                    }
                })
        };
        match reader {
            Ok(h) => threads.push(h),
            Err(e) => self.fail(format!("cannot start the reader thread: {e}")),
        }
        let recorder = {
            let stop = stop.clone();
            let status = self.recording.clone();
            thread::Builder::new()
                .name("odm-recorder".into())
                .spawn(move || recorder_loop(rec_rx, stop, status))
        };
        match recorder {
            Ok(h) => threads.push(h),
            Err(e) => self.fail(format!("cannot start the recorder thread: {e}")),
        }
        Workers {
            stop,
            reader_tx,
            dsp_tx,
            threads,
            replay_duration_bits,
        }
    }

    fn fail(&self, why: String) {
        self.handoff
            .events
            .push(EventMsg::Source(SourceState::Failed(why)));
    }

    fn sample_from_s(&self, t_s: f64) -> u64 {
        let hz = self.handoff.sample_rate_hz();
        (t_s.max(0.0) * f64::from(hz)) as u64
    }
}

impl Drop for LiveBackend {
    fn drop(&mut self) {
        if let Some(w) = self.workers.take() {
            let _ = w.dsp_tx.send(DspCmd::StopRecording);
            w.stop();
        }
    }
}

impl Backend for LiveBackend {
    fn send(&mut self, cmd: Command) {
        let Some(w) = &self.workers else { return };
        // A closed channel means the worker ended; its state is already shown.
        match cmd {
            Command::Pause => {
                let _ = w.reader_tx.send(ReaderCmd::Pause(true));
            }
            Command::Resume => {
                let _ = w.reader_tx.send(ReaderCmd::Pause(false));
            }
            Command::Seek { t_s } => {
                let s = self.sample_from_s(t_s);
                let _ = w.reader_tx.send(ReaderCmd::Seek(s));
            }
            Command::Speed { factor } => {
                let _ = w.reader_tx.send(ReaderCmd::Speed(factor));
            }
            Command::Patient(p) => {
                let _ = w.dsp_tx.send(DspCmd::Patient(p));
            }
            Command::StartRecording(path) => {
                let _ = w.dsp_tx.send(DspCmd::StartRecording(path));
            }
            Command::StopRecording => {
                let _ = w.dsp_tx.send(DspCmd::StopRecording);
            }
            Command::Annotate(json) => {
                let _ = w.dsp_tx.send(DspCmd::Annotate(json));
            }
            Command::SwitchSource(spec) => {
                if let Some(w) = self.workers.take() {
                    let _ = w.dsp_tx.send(DspCmd::StopRecording);
                    w.stop();
                }
                self.handoff.events.push(EventMsg::Reset);
                self.spec = spec.clone();
                self.workers = Some(self.spawn(spec));
            }
        }
    }
    fn source(&self) -> &SourceSpec {
        &self.spec
    }
    fn recording(&self) -> RecordingStatus {
        self.recording
            .lock()
            .map(|s| s.clone())
            .unwrap_or_else(|_| RecordingStatus::Failed("recorder status unavailable".into()))
    }
    fn audio_status(&self) -> String {
        // Called every frame: keep the callback's resampler on the stream's rate.
        self.audio.set_input_rate_hz(self.handoff.sample_rate_hz());
        self.audio.status()
    }
    fn set_audio(&mut self, volume: f32, muted: bool) {
        self.audio.set_volume(if muted { 0.0 } else { volume });
    }
    fn replay_duration_s(&self) -> Option<f64> {
        let w = self.workers.as_ref()?;
        let d = f64::from_bits(w.replay_duration_bits.load(Ordering::Relaxed));
        (self.spec.is_replay() && d > 0.0).then_some(d)
    }
}

/// The DSP thread's ends of the rings: payloads in from the reader, and
/// payloads it is done with back to the reader, which frees them.
struct DspRings {
    input: rtrb::Consumer<ReaderMsg>,
    spent: rtrb::Producer<Payload>,
}

/// The reader's end of the ring.
struct RingOut {
    ring: rtrb::Producer<ReaderMsg>,
    /// Payloads the DSP thread is done with, freed here.
    spent: rtrb::Consumer<Payload>,
    dsp: Option<thread::Thread>,
    stop: Arc<AtomicBool>,
}

impl RingOut {
    /// Hands a message to the DSP thread, waiting for space if the ring is
    /// full (the reader may wait; the DSP thread never does). False when stopping.
    fn send(&mut self, mut msg: ReaderMsg) -> bool {
        while let Ok(spent) = self.spent.pop() {
            drop(spent);
        }
        loop {
            match self.ring.push(msg) {
                Ok(()) => {
                    if let Some(t) = &self.dsp {
                        t.unpark();
                    }
                    return true;
                }
                Err(rtrb::PushError::Full(back)) => {
                    if self.stop.load(Ordering::Relaxed) {
                        return false;
                    }
                    msg = back;
                    thread::sleep(Duration::from_millis(2));
                }
            }
        }
    }
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// The virtual probe, paced in real time from its sample indices.
fn simulated_loop(
    seed: u64,
    out: &mut RingOut,
    cmds: &mpsc::Receiver<ReaderCmd>,
    say: &dyn Fn(SourceState),
) {
    // A clean adult at rest with a realistic 20 dB SNR (the simulator's
    // default adds no noise at all, which no real probe gives).
    let cfg = SimConfig {
        seed,
        duration_s: None,
        snr_db: Some(20.0),
        ..SimConfig::default()
    };
    let mut probe = match VirtualProbe::new(cfg) {
        Ok(p) => p,
        Err(e) => {
            say(SourceState::Failed(format!("virtual probe: {e}")));
            return;
        }
    };
    let fs = f64::from(probe.probe_info().sample_rate_hz);
    say(SourceState::Live);
    let mut t0 = Instant::now();
    let mut paused_at: Option<Instant> = None;
    while !out.stopping() {
        while let Ok(cmd) = cmds.try_recv() {
            match cmd {
                ReaderCmd::Pause(true) if paused_at.is_none() => {
                    paused_at = Some(Instant::now());
                    say(SourceState::Paused);
                }
                ReaderCmd::Pause(false) => {
                    if let Some(p) = paused_at.take() {
                        t0 += p.elapsed();
                        say(SourceState::Live);
                    }
                }
                _ => {}
            }
        }
        if paused_at.is_some() {
            thread::sleep(Duration::from_millis(20));
            continue;
        }
        let Some(payload) = probe.next_payload() else {
            say(SourceState::Ended);
            let _ = out.send(ReaderMsg::Finished);
            return;
        };
        // The truth is for tests and validation; the display does not use it.
        drop(probe.take_truth_beats());
        // Paced by the sample clock: a block once its last sample exists,
        // an event (an unplug's EVENT 4) when it happens.
        if let Some(due_sample) = payload.due_sample() {
            let due = t0 + Duration::from_secs_f64(due_sample as f64 / fs);
            let now = Instant::now();
            if due > now {
                thread::sleep(due - now);
            }
        }
        if !out.send(ReaderMsg::Payload(payload)) {
            return;
        }
    }
}

/// A serial port or a replay: bytes → decoder → payloads.
fn bytes_loop(
    mut src: impl ByteSource,
    control: Option<ReplayControl>,
    out: &mut RingOut,
    cmds: &mpsc::Receiver<ReaderCmd>,
    say: &dyn Fn(SourceState),
) {
    // A replay holds the monitor's own annotations; a probe interface
    // must never send one (serial-stream.md, kinds table).
    let new_decoder = || {
        if control.is_some() {
            Decoder::new()
        } else {
            Decoder::for_wire()
        }
    };
    let mut decoder = new_decoder();
    let mut buf = vec![0u8; 16 * 1024];
    let mut live_said = false;
    while !out.stopping() {
        while let Ok(cmd) = cmds.try_recv() {
            let Some(c) = &control else { continue };
            match cmd {
                ReaderCmd::Pause(p) => {
                    c.set_paused(p);
                    say(if p {
                        SourceState::Paused
                    } else {
                        SourceState::Live
                    });
                }
                ReaderCmd::Seek(sample) => {
                    c.seek_to_sample(sample);
                    // The replay restarts its stream: a fresh decoder and pipeline.
                    decoder = new_decoder();
                    if !out.send(ReaderMsg::Reset) {
                        return;
                    }
                    live_said = false;
                }
                ReaderCmd::Speed(f) => c.set_speed(f),
            }
        }
        match src.read_chunk(&mut buf) {
            Ok(SourceRead::Bytes(n)) => {
                if !live_said && !control.as_ref().is_some_and(ReplayControl::is_paused) {
                    say(SourceState::Live);
                    live_said = true;
                }
                decoder.feed(buf.get(..n).unwrap_or(&[]));
                if !drain(&mut decoder, out) {
                    return;
                }
            }
            Ok(SourceRead::Idle) => {}
            Ok(SourceRead::Disconnected) => {
                decoder.finish();
                if !drain(&mut decoder, out) {
                    return;
                }
                decoder = new_decoder();
                say(SourceState::Reconnecting(format!(
                    "{} disconnected",
                    src.describe()
                )));
                live_said = false;
            }
            Ok(SourceRead::Reconnected) => {
                say(SourceState::Connecting(src.describe()));
            }
            Ok(SourceRead::End) => {
                decoder.finish();
                if !drain(&mut decoder, out) {
                    return;
                }
                let _ = out.send(ReaderMsg::Finished);
                say(SourceState::Ended);
                // Stay for seeks back into the recording.
                match cmds.recv_timeout(Duration::from_millis(100)) {
                    Ok(ReaderCmd::Seek(sample)) => {
                        if let Some(c) = &control {
                            c.seek_to_sample(sample);
                            decoder = new_decoder();
                            if !out.send(ReaderMsg::Reset) {
                                return;
                            }
                            live_said = false;
                        }
                    }
                    Ok(_) | Err(mpsc::RecvTimeoutError::Timeout) => {}
                    Err(mpsc::RecvTimeoutError::Disconnected) => return,
                }
            }
            Err(e) => {
                say(SourceState::Failed(e.to_string()));
                return;
            }
        }
    }
}

/// Hands every decoded frame on; false when stopping.
fn drain(decoder: &mut Decoder, out: &mut RingOut) -> bool {
    while let Some(item) = decoder.next_item() {
        if let DecodedItem::Frame(f) = item
            && !out.send(ReaderMsg::Payload(f.payload))
        {
            return false;
        }
    }
    true
}

/// Reads a recording once, in the background, for its length in seconds.
fn scan_duration(path: PathBuf, out: Arc<AtomicU64>) {
    let spawned = thread::Builder::new()
        .name("odm-replay-scan".into())
        .spawn(move || {
            let Ok(mut r) = RecordingReader::open(&path) else {
                return;
            };
            let mut rate = 0u32;
            let mut end = 0u64;
            while let Ok(Some(frame)) = r.next_frame() {
                match frame.payload {
                    Payload::ProbeInfo(i) => rate = i.sample_rate_hz,
                    Payload::Iq(b) => end = end.max(b.end_sample()),
                    _ => {}
                }
            }
            if rate > 0 {
                let d = end as f64 / f64::from(rate);
                out.store(d.to_bits(), Ordering::Relaxed);
            }
        });
    // Without the scan the seek slider is replaced by ±10 s buttons.
    drop(spawned);
}

fn dsp_loop(
    mut engine: Engine,
    mut rings: DspRings,
    cmds: mpsc::Receiver<DspCmd>,
    stop: Arc<AtomicBool>,
    handoff: Arc<Handoff>,
    repaint: Option<egui::Context>,
    recording: Arc<Mutex<RecordingStatus>>,
) {
    // Real-time priority keeps a hop's wait for the CPU under the 1 ms
    // goal on a busy machine (odm_device_io::sched); without the OS's
    // permission the thread runs on, normally scheduled, and says so.
    let scheduling = odm_device_io::sched::request_real_time_for_this_thread();
    if let odm_device_io::sched::Scheduling::Normal { why } = &scheduling {
        eprintln!("odm-monitor: DSP thread without real-time priority: {why}");
    }
    handoff.set_dsp_scheduling(&scheduling);
    while !stop.load(Ordering::Relaxed) {
        let mut worked = false;
        while let Ok(msg) = rings.input.pop() {
            worked = true;
            match msg {
                ReaderMsg::Payload(p) => {
                    // The payload goes back to the reader thread to be
                    // freed there: the DSP thread never calls the
                    // allocator (architecture.md). A full return ring
                    // (the reader stalled) frees it here.
                    if let Some(spent) = engine.handle(p) {
                        let _ = rings.spent.push(spent);
                    }
                }
                ReaderMsg::Reset => engine.reset(),
                ReaderMsg::Finished => engine.finish(),
            }
        }
        while let Ok(cmd) = cmds.try_recv() {
            worked = true;
            match cmd {
                DspCmd::Patient(p) => {
                    if let Err(why) = engine.set_patient(&p) {
                        handoff
                            .events
                            .push(EventMsg::Source(SourceState::Failed(format!(
                                "patient: {why}"
                            ))));
                    }
                }
                DspCmd::Annotate(json) => engine.annotate(json),
                DspCmd::StartRecording(path) => {
                    if let Err(why) = engine.start_recording(path)
                        && let Ok(mut s) = recording.lock()
                    {
                        *s = RecordingStatus::Failed(why);
                    }
                }
                DspCmd::StopRecording => engine.stop_recording(),
            }
        }
        if worked {
            if let Some(c) = &repaint {
                c.request_repaint();
            }
        } else {
            thread::park_timeout(DSP_IDLE);
        }
    }
    engine.stop_recording();
}

fn recorder_loop(
    mut rx: rtrb::Consumer<RecorderMsg>,
    stop: Arc<AtomicBool>,
    status: Arc<Mutex<RecordingStatus>>,
) {
    let mut writer: Option<RecordingWriter<odm_device_io::FileSink>> = None;
    let set = |s: RecordingStatus| {
        if let Ok(mut g) = status.lock() {
            *g = s;
        }
    };
    let software = format!("odm-monitor {}", env!("CARGO_PKG_VERSION"));
    loop {
        let mut worked = false;
        while let Ok(msg) = rx.pop() {
            worked = true;
            match msg {
                RecorderMsg::Start {
                    path,
                    info,
                    at_sample,
                } => {
                    let start = RecordingStart::now(&software, at_sample);
                    match RecordingWriter::create(&path, &start, &info) {
                        Ok(w) => {
                            writer = Some(w);
                            set(RecordingStatus::Recording(path));
                        }
                        Err(e) => set(RecordingStatus::Failed(e.to_string())),
                    }
                }
                RecorderMsg::Payload(p) => {
                    if let Some(w) = &mut writer
                        && let Err(e) = w.write_payload(&p)
                    {
                        set(RecordingStatus::Failed(e.to_string()));
                        writer = None;
                    }
                }
                RecorderMsg::Annotate { at_sample, json } => {
                    if let Some(w) = &mut writer {
                        let kind = json
                            .get("type")
                            .and_then(|v| v.as_str())
                            .unwrap_or("marker")
                            .to_string();
                        if let Err(e) = w.annotate(at_sample, &kind, json) {
                            set(RecordingStatus::Failed(e.to_string()));
                            writer = None;
                        }
                    }
                }
                RecorderMsg::Stop => {
                    if let Some(w) = writer.take() {
                        match w.finish() {
                            Ok(_) => set(RecordingStatus::Idle),
                            Err(e) => set(RecordingStatus::Failed(e.to_string())),
                        }
                    }
                }
            }
        }
        if let Some(w) = &mut writer
            && let Err(e) = w.flush_if_due()
        {
            set(RecordingStatus::Failed(e.to_string()));
            writer = None;
        }
        if stop.load(Ordering::Relaxed) && !worked {
            break;
        }
        if !worked {
            thread::sleep(Duration::from_millis(20));
        }
    }
    if let Some(w) = writer.take() {
        match w.finish() {
            Ok(_) => set(RecordingStatus::Idle),
            Err(e) => set(RecordingStatus::Failed(e.to_string())),
        }
    }
}
