//! What the UI asks of the worker threads, and the sources it can choose.

use std::path::PathBuf;

/// Default baud rate for a probe interface (serial-stream.md: 921 600 8N1).
pub const DEFAULT_BAUD: u32 = 921_600;

/// Where the samples come from.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceSpec {
    /// The built-in virtual probe (demonstration / training), shown as SIMULATED.
    Simulated {
        /// Random seed of the simulation.
        seed: u64,
    },
    /// A probe interface on a serial port.
    Serial {
        /// Device path, e.g. `/dev/ttyACM0`.
        path: String,
        /// Baud rate (nominal for USB CDC-ACM).
        baud: u32,
    },
    /// A recording replayed at real speed (or faster / slower).
    Replay {
        /// The `.odmrec` file.
        path: PathBuf,
    },
}

impl SourceSpec {
    /// Whether this is the virtual probe.
    pub fn is_simulated(&self) -> bool {
        matches!(self, Self::Simulated { .. })
    }
    /// Whether this is a replay (pause, seek and speed apply).
    pub fn is_replay(&self) -> bool {
        matches!(self, Self::Replay { .. })
    }
    /// Whether a case on this source counts for uptake: only a live probe
    /// is a patient being monitored. The virtual probe (demonstration,
    /// training) and a replay (a case already counted when it was live)
    /// never open a case.
    pub fn counts_for_uptake(&self) -> bool {
        matches!(self, Self::Serial { .. })
    }
    /// A short description for the top bar.
    pub fn describe(&self) -> String {
        match self {
            Self::Simulated { seed } => format!("virtual probe (seed {seed})"),
            Self::Serial { path, baud } => format!("{path} @ {baud} baud"),
            Self::Replay { path } => format!("replay {}", path.display()),
        }
    }
}

/// Patient sex for the `patient` annotation (serial-stream.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PatientSex {
    /// `"female"`.
    Female,
    /// `"male"`.
    Male,
    /// `"unknown"`.
    #[default]
    Unknown,
}

impl PatientSex {
    /// The annotation word.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Female => "female",
            Self::Male => "male",
            Self::Unknown => "unknown",
        }
    }
}

/// What the clinician entered in the patient panel.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PatientSettings {
    /// Age, years.
    pub age_years: u32,
    /// Sex.
    pub sex: PatientSex,
    /// Height, cm.
    pub height_cm: f64,
    /// Weight, kg.
    pub weight_kg: f64,
    /// A measured descending-aortic diameter (mm), which takes precedence
    /// over the population model.
    pub aortic_diameter_mm: Option<f64>,
}

impl PatientSettings {
    /// The `patient` annotation object of serial-stream.md (no identifiers).
    pub fn annotation_json(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut m = serde_json::Map::new();
        m.insert("type".into(), "patient".into());
        m.insert("age_years".into(), self.age_years.into());
        m.insert("height_cm".into(), self.height_cm.into());
        m.insert("weight_kg".into(), self.weight_kg.into());
        m.insert("sex".into(), self.sex.as_str().into());
        if let Some(d) = self.aortic_diameter_mm {
            // An extra field: readers ignore fields they do not know.
            m.insert(odm_device_io::PATIENT_DIAMETER_FIELD.into(), d.into());
        }
        m
    }
}

/// A request from the UI to the worker threads.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Pause a replay (or the virtual probe).
    Pause,
    /// Resume after a pause.
    Resume,
    /// Jump to stream time `t_s` of a replay.
    Seek {
        /// Target, seconds from the start of the recording.
        t_s: f64,
    },
    /// Replay speed factor (1 = real time).
    Speed {
        /// Factor, 0.25 ..= 8.
        factor: f64,
    },
    /// New demographics or diameter: update the SV model and annotate the recording.
    Patient(PatientSettings),
    /// Start recording to a file.
    StartRecording(PathBuf),
    /// Stop recording.
    StopRecording,
    /// Write an annotation (bolus, marker) at the newest sample.
    Annotate(serde_json::Map<String, serde_json::Value>),
    /// Stop the current source and start another.
    SwitchSource(SourceSpec),
}

/// How the recorder is doing, as shown on the record button.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum RecordingStatus {
    /// Not recording.
    #[default]
    Idle,
    /// Recording to this file.
    Recording(PathBuf),
    /// The last recording failed; what and where.
    Failed(String),
}

/// The worker side as the UI sees it: threads in the app, synchronous in tests.
pub trait Backend {
    /// Hands a command to the workers; never blocks.
    fn send(&mut self, cmd: Command);
    /// The source in use.
    fn source(&self) -> &SourceSpec;
    /// The recorder's status.
    fn recording(&self) -> RecordingStatus;
    /// One line about Doppler audio ("off: built without the audio feature", …).
    fn audio_status(&self) -> String;
    /// Sets Doppler audio volume (0..=1) and mute.
    fn set_audio(&mut self, volume: f32, muted: bool);
    /// Replay length in seconds, when the source is a replay and it is known.
    fn replay_duration_s(&self) -> Option<f64>;
}
