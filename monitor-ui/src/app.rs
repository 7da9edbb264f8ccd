//! The theatre display: `MonitorApp` owns the state; `ui` reads it and draws.
//!
//! Layout (1920×1080 and 1280×800): a top bar (source, SIMULATED badge,
//! replay controls, record, marker), the alarm bar, the numerics on the
//! right, the waterfall and trends in the middle, and the quality, probe,
//! patient, fluid-challenge and diagnostics panels along the bottom.

use crate::calibrations::Calibrations;
use odm_device_io::calibration::{CalDate, CalibrationStatus};
use std::sync::Arc;
use std::time::Duration;

use egui::{
    Align2, Color32, FontId, Rect, RichText, Sense, Stroke, StrokeKind, Ui, WidgetInfo, pos2, vec2,
};
use odm_dsp::haemo::BsaFormula;
use odm_dsp::trend::TrendPoint;

use crate::alarms::{AlarmKind, Priority};
use crate::challenge::DEFAULT_VOLUME_ML;
use crate::control::{Backend, Command, PatientSettings, PatientSex, RecordingStatus, SourceSpec};
use crate::handoff::{Handoff, SourceState, row_from_velocity_cm_s};
use crate::readings::AVERAGE_BEATS;
use crate::state::{MonitorState, PROBE_LIFE_WARNING_MIN};

/// Theatre palette: high contrast on black.
mod colour {
    use egui::Color32;
    pub const BG: Color32 = Color32::from_rgb(8, 10, 14);
    pub const PANEL: Color32 = Color32::from_rgb(18, 22, 30);
    pub const TEXT: Color32 = Color32::from_rgb(235, 238, 242);
    pub const DIM: Color32 = Color32::from_rgb(120, 126, 136);
    pub const SV: Color32 = Color32::from_rgb(90, 220, 120);
    pub const FLOW: Color32 = Color32::from_rgb(120, 200, 255);
    pub const FTC: Color32 = Color32::from_rgb(255, 200, 90);
    pub const ENVELOPE: Color32 = Color32::from_rgb(255, 230, 0);
    pub const BOLUS: Color32 = Color32::from_rgb(255, 140, 40);
    pub const SIMULATED: Color32 = Color32::from_rgb(200, 60, 200);
    /// IEC 60601-1-8 alarm colours.
    pub const HIGH: Color32 = Color32::from_rgb(230, 30, 30);
    pub const MEDIUM: Color32 = Color32::from_rgb(250, 210, 0);
    pub const LOW: Color32 = Color32::from_rgb(0, 200, 220);
    pub const GOOD: Color32 = Color32::from_rgb(60, 200, 90);
}

/// Trend ranges the user can pick, minutes.
pub const TREND_RANGES_MIN: [u32; 3] = [15, 30, 60];

/// Form state of the patient panel. The fields start empty: SV from a
/// population model of demographics nobody entered would look measured
/// (an audit found 60 y / 170 cm / 70 kg prefilled, one click from being
/// applied, 2026-12-04).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PatientForm {
    /// Age, years, as typed.
    pub age_text: String,
    /// Sex.
    pub sex: PatientSex,
    /// Height, cm, as typed.
    pub height_text: String,
    /// Weight, kg, as typed.
    pub weight_text: String,
    /// Use a measured diameter instead of the population model.
    pub use_diameter: bool,
    /// Measured diameter, mm, as typed.
    pub diameter_text: String,
    /// The settings last applied, if any.
    pub applied: Option<PatientSettings>,
}

/// A typed number: `None` when empty, an error naming the field when not a
/// number. A decimal comma is read as a point, except where the separator
/// could group thousands ("1,500" or "1.500": 1500 or 1.5?), which is
/// refused rather than guessed.
fn typed_number(text: &str, what: &str) -> Result<Option<f64>, String> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(None);
    }
    let unsigned = t.strip_prefix(['+', '-']).unwrap_or(t);
    if let Some((whole, fraction)) = unsigned.split_once([',', '.']) {
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        // A group of thousands is three digits after one to three that
        // do not start with 0 ("0,750" can only be a decimal).
        if digits(whole)
            && whole.len() <= 3
            && !whole.starts_with('0')
            && digits(fraction)
            && fraction.len() == 3
        {
            let decimal = match fraction.trim_end_matches('0') {
                "" => whole.to_string(),
                f => format!("{whole}.{f}"),
            };
            return Err(format!(
                "{what} \"{t}\" is ambiguous: type {whole}{fraction} or {decimal}"
            ));
        }
    }
    t.replace(',', ".")
        .parse::<f64>()
        .ok()
        .filter(|x| x.is_finite())
        .map(Some)
        .ok_or_else(|| format!("{what} \"{t}\" is not a number"))
}

impl PatientForm {
    /// The settings the entries give, or why they give none: a field not
    /// yet entered, not a number, or outside what the population model or
    /// a measured diameter covers.
    pub fn parsed(&self) -> Result<PatientSettings, String> {
        let age = typed_number(&self.age_text, "age")?;
        let height = typed_number(&self.height_text, "height")?;
        let weight = typed_number(&self.weight_text, "weight")?;
        let missing: Vec<&str> = [("age", age), ("height", height), ("weight", weight)]
            .iter()
            .filter(|(_, v)| v.is_none())
            .map(|(name, _)| *name)
            .collect();
        let diameter = if self.use_diameter {
            match typed_number(&self.diameter_text, "diameter")? {
                Some(d) => Some(d),
                None => return Err("enter the measured aortic diameter".into()),
            }
        } else {
            None
        };
        let (Some(age), Some(height_cm), Some(weight_kg)) = (age, height, weight) else {
            return Err(format!("enter {}", missing.join(", ")));
        };
        if age.fract() != 0.0 {
            return Err(format!("age {age} is not a whole number of years"));
        }
        let demographics = odm_dsp::area::Demographics {
            age_years: age,
            sex: odm_dsp::area::Sex::Unknown,
            height_cm,
            weight_kg,
        };
        demographics.validate().map_err(|e| e.to_string())?;
        if let Some(d) = diameter {
            odm_dsp::area::validate_diameter_mm(d).map_err(|e| e.to_string())?;
        }
        Ok(PatientSettings {
            age_years: age as u32,
            sex: self.sex,
            height_cm,
            weight_kg,
            aortic_diameter_mm: diameter,
        })
    }

    /// Why the entries cannot give an SV model, if they cannot.
    pub fn problem(&self) -> Option<String> {
        self.parsed().err()
    }
}

/// The theatre display.
pub struct MonitorApp {
    handoff: Arc<Handoff>,
    backend: Box<dyn Backend>,
    /// What the screen shows.
    pub state: MonitorState,
    /// Patient panel form.
    pub patient: PatientForm,
    /// Bolus volume entry, ml.
    pub bolus_volume_ml: f64,
    /// Marker text entry.
    pub marker_text: String,
    /// Installed probe calibrations, for the probe panel's status.
    pub calibrations: Calibrations,
    /// Trend range, minutes.
    pub trend_range_min: u32,
    /// Replay speed factor.
    pub replay_speed: f64,
    /// Seek slider position, s.
    pub seek_target_s: f64,
    /// Doppler audio volume 0..=1.
    pub audio_volume: f32,
    /// Doppler audio muted.
    pub audio_muted: bool,
    /// Serial ports found by the last scan (source chooser).
    pub ports: Vec<String>,
    /// Chosen port in the source chooser.
    pub chosen_port: String,
    /// Replay path typed into the source chooser.
    pub replay_path: String,
    /// The user paused the source.
    pub paused: bool,
    /// Uptake counting for this case.
    pub uptake: crate::uptake::Uptake,
    show_source_window: bool,
    seek_dragging: bool,
    text_scale: f32,
    frames_drawn: u64,
}

impl MonitorApp {
    /// The app on a backend that feeds `handoff`.
    pub fn new(handoff: Arc<Handoff>, backend: Box<dyn Backend>) -> Self {
        Self {
            handoff,
            backend,
            state: MonitorState::new(),
            patient: PatientForm::default(),
            bolus_volume_ml: DEFAULT_VOLUME_ML,
            marker_text: String::new(),
            calibrations: Calibrations::load_default(),
            trend_range_min: 30,
            replay_speed: 1.0,
            seek_target_s: 0.0,
            audio_volume: 0.5,
            audio_muted: false,
            ports: Vec::new(),
            chosen_port: String::new(),
            replay_path: String::new(),
            paused: false,
            uptake: crate::uptake::Uptake::from_env(),
            show_source_window: false,
            seek_dragging: false,
            text_scale: 1.0,
            frames_drawn: 0,
        }
    }

    /// The handoff the app drains.
    pub fn handoff(&self) -> &Arc<Handoff> {
        &self.handoff
    }

    /// The backend (tests drive a synchronous one through this).
    pub fn backend_mut(&mut self) -> &mut dyn Backend {
        self.backend.as_mut()
    }

    /// Frames drawn so far.
    pub fn frames_drawn(&self) -> u64 {
        self.frames_drawn
    }

    /// Applies dark theatre styling to a context (call once).
    pub fn style_context(ctx: &egui::Context) {
        ctx.set_theme(egui::Theme::Dark);
        ctx.all_styles_mut(|s| {
            s.visuals.panel_fill = colour::BG;
            s.visuals.window_fill = colour::PANEL;
            s.visuals.override_text_color = Some(colour::TEXT);
            s.spacing.item_spacing = vec2(8.0, 6.0);
            s.spacing.button_padding = vec2(10.0, 6.0);
        });
        Self::scale_text(ctx, 1.0);
    }

    /// Text 1.35× egui's defaults at 1080 lines, in proportion below that
    /// (so the 1280×800 layout keeps the same proportions).
    fn scale_text(ctx: &egui::Context, scale: f32) {
        let defaults = egui::Style::default().text_styles;
        ctx.all_styles_mut(|s| {
            for (style, font) in s.text_styles.iter_mut() {
                if let Some(d) = defaults.get(style) {
                    font.size = d.size * 1.35 * scale.max(0.85);
                }
            }
        });
    }

    /// Draws one frame: drain the handoff, judge alarms, paint.
    pub fn ui(&mut self, ui: &mut Ui) {
        let now_s = ui.input(|i| i.time);
        self.state.ingest(&self.handoff, now_s);
        self.state.spectrogram.upload(ui.ctx());
        self.frames_drawn += 1;
        let probe_model = self.state.probe.as_ref().map_or(0, |p| p.probe_model);
        if !self.backend.source().counts_for_uptake()
            || self.simulated_stream()
            || matches!(
                self.state.source,
                SourceState::Ended | SourceState::Failed(_)
            )
        {
            // Monitoring stopped, or not a patient's case: no case is open.
            self.uptake.close_case(now_s);
        } else {
            self.uptake.tick(
                now_s,
                self.state.acquired,
                probe_model,
                (self.state.beats_accepted, self.state.beats_received),
            );
        }

        let size = ui.available_size();
        // Scale from the 1080-line design; 1280×800 gets 0.74.
        let scale = (size.y / 1080.0).clamp(0.6, 1.5);
        if (scale - self.text_scale).abs() > 0.01 {
            Self::scale_text(ui.ctx(), scale);
            self.text_scale = scale;
        }

        egui::Panel::top("odm-top")
            .frame(egui::Frame::new().fill(colour::PANEL).inner_margin(6.0))
            .show(ui, |ui| self.top_bar_ui(ui, scale));
        egui::Panel::top("odm-alarms")
            .frame(egui::Frame::new().fill(colour::BG).inner_margin(4.0))
            .show(ui, |ui| self.alarms_ui(ui, scale, now_s));
        egui::Panel::bottom("odm-panels")
            .frame(egui::Frame::new().fill(colour::PANEL).inner_margin(6.0))
            .show(ui, |ui| self.bottom_panels_ui(ui, scale));
        egui::Panel::right("odm-numerics")
            .exact_size(size.x * 0.34)
            .resizable(false)
            .frame(egui::Frame::new().fill(colour::BG).inner_margin(6.0))
            .show(ui, |ui| self.numerics_ui(ui, scale));
        egui::CentralPanel::default()
            .frame(egui::Frame::new().fill(colour::BG).inner_margin(6.0))
            .show(ui, |ui| {
                let avail = ui.available_size();
                let wf_h = avail.y * 0.55;
                let (wf_rect, _) = ui.allocate_exact_size(vec2(avail.x, wf_h), Sense::hover());
                self.waterfall_ui(ui, wf_rect, scale);
                ui.add_space(4.0);
                self.trends_ui(ui, scale);
            });

        if self.show_source_window {
            self.source_window_ui(ui);
        }
        if self.uptake.should_ask() {
            self.uptake_prompt_ui(ui, scale);
        }

        // Repaint policy: the DSP thread requests a repaint when data arrives;
        // while live we also wake on a timer so "no data" alarms fire; flashing
        // alarms need their flash rate; paused and quiet: no repaint at all.
        if let Some(hz) = self.state.alarms.highest().and_then(Priority::flash_hz) {
            ui.ctx()
                .request_repaint_after(Duration::from_secs_f64(0.5 / hz));
        }
        if self.state.monitoring() {
            ui.ctx().request_repaint_after(Duration::from_millis(250));
        }
    }

    /// Whether what is shown is simulated: the built-in virtual probe, or
    /// a stream the simulator made arriving by a port or in a recording
    /// (its PROBE_INFO firmware says `odmsim…`). Labelled as such, and never
    /// counted for uptake.
    fn simulated_stream(&self) -> bool {
        self.backend.source().is_simulated()
            || self
                .state
                .probe
                .as_ref()
                .is_some_and(|p| odm_simulator::is_simulator_firmware(&p.firmware_str()))
    }

    fn top_bar_ui(&mut self, ui: &mut Ui, scale: f32) {
        let simulated = self.simulated_stream();
        ui.horizontal(|ui| {
            let source = self.backend.source().clone();
            if simulated {
                let text = RichText::new(" SIMULATED ")
                    .size(28.0 * scale)
                    .strong()
                    .color(Color32::WHITE)
                    .background_color(colour::SIMULATED);
                ui.label(text);
            }
            ui.label(RichText::new(source.describe()).size(18.0 * scale));
            let state_text = match &self.state.source {
                SourceState::Connecting(what) => format!("connecting {what}"),
                SourceState::Live => "live".to_string(),
                SourceState::Paused => "paused".to_string(),
                SourceState::Reconnecting(why) => format!("reconnecting: {why}"),
                SourceState::Ended => "end of recording".to_string(),
                SourceState::Failed(why) => format!("failed: {why}"),
            };
            // A fixed width, so that the replay controls after it do not
            // move when "live" becomes "paused" (an audit's click on +10 s
            // landed on −10 s); a longer state is cut, in full on hover.
            ui.add_sized(
                vec2(150.0 * scale, 24.0 * scale),
                egui::Label::new(
                    RichText::new(&state_text)
                        .size(18.0 * scale)
                        .color(colour::DIM),
                )
                .truncate(),
            )
            .on_hover_text(&state_text);
            if ui.button("Source…").clicked() {
                self.show_source_window = !self.show_source_window;
            }
            ui.separator();
            if source.is_replay() || source.is_simulated() {
                self.replay_controls_ui(ui, &source);
                ui.separator();
            }
            self.record_ui(ui);
            ui.separator();
            let marker = ui.add(
                egui::TextEdit::singleline(&mut self.marker_text)
                    .hint_text("marker text")
                    .desired_width(160.0 * scale),
            );
            let enter = marker.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
            if ui.button("Marker").clicked() || enter {
                let text = if self.marker_text.trim().is_empty() {
                    "marker".to_string()
                } else {
                    self.marker_text.trim().to_string()
                };
                let mut m = serde_json::Map::new();
                m.insert("type".into(), "marker".into());
                m.insert("text".into(), text.clone().into());
                self.backend.send(Command::Annotate(m));
                self.state.marker_now(&text);
                self.marker_text.clear();
            }
            ui.separator();
            self.audio_ui(ui);
        });
    }

    fn replay_controls_ui(&mut self, ui: &mut Ui, source: &SourceSpec) {
        let label = if self.paused { "Resume" } else { "Pause" };
        // As wide for either word: the buttons after it stay put.
        if ui
            .add(egui::Button::new(label).min_size(vec2(80.0, 0.0)))
            .clicked()
        {
            self.paused = !self.paused;
            self.backend.send(if self.paused {
                Command::Pause
            } else {
                Command::Resume
            });
        }
        if !source.is_replay() {
            return;
        }
        let now = self.state.stream_now_s();
        if ui.button("-10 s").clicked() {
            self.backend.send(Command::Seek {
                t_s: (now - 10.0).max(0.0),
            });
        }
        if ui.button("+10 s").clicked() {
            self.backend.send(Command::Seek { t_s: now + 10.0 });
        }
        if let Some(duration) = self.backend.replay_duration_s() {
            if !self.seek_dragging {
                self.seek_target_s = now.min(duration);
            }
            let slider = ui.add(
                egui::Slider::new(&mut self.seek_target_s, 0.0..=duration.max(0.1))
                    .text("position s")
                    .show_value(true),
            );
            self.seek_dragging = slider.dragged();
            if slider.drag_stopped() || (slider.changed() && !slider.dragged()) {
                self.backend.send(Command::Seek {
                    t_s: self.seek_target_s,
                });
            }
        } else {
            ui.label(format!("{now:.1} s"));
        }
        let before = self.replay_speed;
        egui::ComboBox::new("odm-speed", "speed")
            .selected_text(format!("×{}", self.replay_speed))
            .show_ui(ui, |ui| {
                for f in [0.5, 1.0, 2.0, 4.0, 8.0] {
                    ui.selectable_value(&mut self.replay_speed, f, format!("×{f}"));
                }
            });
        if self.replay_speed != before {
            self.backend.send(Command::Speed {
                factor: self.replay_speed,
            });
        }
    }

    fn record_ui(&mut self, ui: &mut Ui) {
        match self.backend.recording() {
            RecordingStatus::Recording(path) => {
                let b = egui::Button::new(RichText::new("Stop recording").color(colour::HIGH));
                if ui.add(b).clicked() {
                    self.backend.send(Command::StopRecording);
                }
                let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
                ui.label(RichText::new(name.unwrap_or_default()).color(colour::DIM));
            }
            status => {
                if ui.button("Record").clicked() {
                    self.backend
                        .send(Command::StartRecording(crate::default_recording_path()));
                }
                if let RecordingStatus::Failed(why) = status {
                    ui.label(
                        RichText::new(format!("recording failed: {why}")).color(colour::MEDIUM),
                    );
                }
            }
        }
    }

    fn audio_ui(&mut self, ui: &mut Ui) {
        let before = (self.audio_volume, self.audio_muted);
        ui.add(
            egui::Slider::new(&mut self.audio_volume, 0.0..=1.0)
                .show_value(false)
                .text("volume"),
        );
        ui.checkbox(&mut self.audio_muted, "Mute");
        if before != (self.audio_volume, self.audio_muted) {
            self.backend.set_audio(self.audio_volume, self.audio_muted);
        }
        // The top bar is full at 1280 px: a short word, the reason on hover
        // (and in the diagnostics).
        let status = self.backend.audio_status();
        let short = status.split(':').next().unwrap_or(&status).to_string();
        ui.label(RichText::new(short).color(colour::DIM))
            .on_hover_text(status);
    }

    fn source_window_ui(&mut self, ui: &mut Ui) {
        let mut open = self.show_source_window;
        let mut chosen: Option<SourceSpec> = None;
        egui::Window::new("Source")
            .open(&mut open)
            .collapsible(false)
            .show(ui.ctx(), |ui| {
                if ui.button("Virtual probe (SIMULATED)").clicked() {
                    chosen = Some(SourceSpec::Simulated { seed: 1 });
                }
                ui.separator();
                ui.horizontal(|ui| {
                    if ui.button("Scan serial ports").clicked() {
                        self.ports = crate::list_port_names();
                    }
                    ui.label(format!("{} found", self.ports.len()));
                });
                for p in &self.ports {
                    ui.radio_value(&mut self.chosen_port, p.clone(), p);
                }
                ui.horizontal(|ui| {
                    ui.label("port");
                    ui.text_edit_singleline(&mut self.chosen_port);
                    if ui.button("Open port").clicked() && !self.chosen_port.is_empty() {
                        chosen = Some(SourceSpec::Serial {
                            path: self.chosen_port.clone(),
                            baud: crate::control::DEFAULT_BAUD,
                        });
                    }
                });
                ui.separator();
                ui.horizontal(|ui| {
                    ui.label("recording");
                    ui.text_edit_singleline(&mut self.replay_path);
                    if ui.button("Replay").clicked() && !self.replay_path.is_empty() {
                        chosen = Some(SourceSpec::Replay {
                            path: self.replay_path.clone().into(),
                        });
                    }
                });
            });
        if let Some(spec) = chosen {
            self.paused = false;
            let now_s = ui.input(|i| i.time);
            self.uptake.close_case(now_s);
            self.backend.send(Command::SwitchSource(spec));
            open = false;
        }
        self.show_source_window = open;
    }

    fn uptake_prompt_ui(&mut self, ui: &mut Ui, scale: f32) {
        use odm_uptake::{Category, Eligibility};
        let mut category = self.uptake.category;
        let mut eligibility = self.uptake.eligibility;
        let mut answer: Option<(Category, Eligibility)> = None;
        egui::Window::new("Uptake record (anonymous)")
            .anchor(Align2::RIGHT_BOTTOM, vec2(-12.0, -12.0 - 210.0 * scale))
            .collapsible(true)
            .resizable(false)
            .show(ui.ctx(), |ui| {
                ui.label("For NHS uptake counting; no patient details are stored.");
                egui::ComboBox::new("odm-uptake-category", "surgical category")
                    .selected_text(category.as_str())
                    .show_ui(ui, |ui| {
                        for c in Category::ALL {
                            ui.selectable_value(&mut category, *c, c.as_str());
                        }
                    });
                egui::ComboBox::new("odm-uptake-eligibility", "NICE MTG3 eligibility")
                    .selected_text(eligibility.as_str())
                    .show_ui(ui, |ui| {
                        for e in Eligibility::ALL {
                            ui.selectable_value(&mut eligibility, *e, e.as_str());
                        }
                    });
                ui.horizontal(|ui| {
                    if ui.button("Save uptake answers").clicked() {
                        answer = Some((category, eligibility));
                    }
                    if ui.button("Not recorded").clicked() {
                        answer = Some((Category::NotRecorded, Eligibility::NotRecorded));
                    }
                });
            });
        self.uptake.category = category;
        self.uptake.eligibility = eligibility;
        if let Some((c, e)) = answer {
            self.uptake.answer(c, e);
        }
    }

    fn alarms_ui(&mut self, ui: &mut Ui, scale: f32, now_s: f64) {
        ui.horizontal(|ui| {
            ui.set_min_height(40.0 * scale);
            let active = self.state.alarms.active().to_vec();
            if active.is_empty() {
                ui.label(
                    RichText::new("No alarms")
                        .size(20.0 * scale)
                        .color(colour::DIM),
                );
            }
            for a in &active {
                let p = a.kind.priority();
                let base = match p {
                    Priority::High => colour::HIGH,
                    Priority::Medium => colour::MEDIUM,
                    Priority::Low => colour::LOW,
                };
                // Unacknowledged alarms flash at their priority's rate; the
                // text stays readable in both phases.
                let lit = match p.flash_hz() {
                    Some(hz) if !a.acknowledged => (now_s * hz).fract() < 0.5,
                    _ => true,
                };
                let (fill, text) = if lit {
                    (base, Color32::BLACK)
                } else {
                    (colour::PANEL, base)
                };
                let label = RichText::new(format!(" {} {} ", p.as_str(), a.kind.message()))
                    .size(22.0 * scale)
                    .strong()
                    .color(text)
                    .background_color(fill);
                ui.label(label);
            }
            if !active.is_empty() {
                if ui.button("Acknowledge").clicked() {
                    self.state.alarms.acknowledge_all();
                }
                if ui.button("Audio pause 2 min").clicked() {
                    self.state.alarms.pause_audio(now_s);
                }
            }
            if let Some(left) = self.state.alarms.audio_pause_left_s(now_s) {
                ui.label(
                    RichText::new(format!(
                        "AUDIO PAUSED {:.0}:{:02.0}",
                        (left / 60.0).floor(),
                        left % 60.0
                    ))
                    .color(colour::MEDIUM),
                );
            }
        });
    }

    /// Why the numbers on screen are not current, if they are not: an
    /// alarm that means no new beat can come (the last values stay shown,
    /// marked, never blanked).
    fn not_current(&self) -> Option<&'static str> {
        [
            (AlarmKind::NoData, "no data from the probe interface"),
            (AlarmKind::ProbeUnplugged, "probe unplugged"),
            (AlarmKind::FlowReversed, "flow reversed"),
            (AlarmKind::SignalLost, "signal lost"),
        ]
        .into_iter()
        .find(|(kind, _)| self.state.alarms.is_active(*kind))
        .map(|(_, why)| why)
    }

    fn numerics_ui(&mut self, ui: &mut Ui, scale: f32) {
        let avg = Averages::from_dsp(
            self.state.readings.averages(),
            self.state.readings.svv_pct(),
        );
        let quality = self.state.readings.quality();
        let stale = self.not_current();
        let poor = quality.poor() || avg.beats == 0 || stale.is_some();
        let irregular = self.state.readings.irregular_rhythm();
        let breathing = self.state.readings.svv_breathing_rate_per_min();
        let low_flow = self.state.readings.ft_low_flow();
        let rect = ui.available_rect_before_wrap();
        ui.allocate_rect(rect, Sense::hover());
        let bsa = self
            .patient
            .applied
            .map(|p| BsaFormula::Mosteller.bsa_m2(p.height_cm, p.weight_kg));

        // SV: the top third, full width.
        let sv_h = rect.height() * 0.30;
        let sv_rect = Rect::from_min_size(rect.min, vec2(rect.width(), sv_h));
        let model = self.sv_model_text();
        let sv_sub = match (avg.sv_low_ml, avg.sv_high_ml) {
            (Some(lo), Some(hi)) if avg.sv_ml.is_some() => {
                format!("{model}  range {lo:.0}–{hi:.0} ml")
            }
            _ => model,
        };
        tile(
            ui,
            sv_rect,
            scale * 1.5,
            &TileSpec {
                label: "SV",
                value: fmt(avg.sv_ml, 0),
                unit: "ml",
                sub: sv_sub,
                poor,
                colour: colour::SV,
            },
        );
        let grid_top = sv_rect.bottom() + 4.0;
        let cell_w = rect.width() / 2.0;
        // Four rows of tiles and a footer of two lines: the tiles take the
        // height (a fifth row's worth used to stand empty under them).
        let footer_h = 64.0 * scale;
        let cell_h = (rect.bottom() - grid_top - footer_h) / 4.0;
        let ci = avg.co_l_min.zip(bsa).map(|(co, b)| co / b);
        let tiles = [
            TileSpec {
                label: "CO",
                value: fmt(avg.co_l_min, 1),
                unit: "l/min",
                sub: format!("CI {}", fmt(ci, 1)),
                poor,
                colour: colour::FLOW,
            },
            TileSpec {
                label: "CI",
                value: fmt(ci, 1),
                unit: "l/min/m²",
                sub: match bsa {
                    Some(b) => format!("BSA {b:.2} m²"),
                    None => "needs height and weight".into(),
                },
                poor,
                colour: colour::FLOW,
            },
            // At low flow the flow time is extrapolated over more than a
            // third of the fall (Beat::ft_low_flow) and measured to
            // ±10–60 ms, not ±5: marked, so that a fluid decision taken on
            // FTc near 330 ms knows it.
            TileSpec {
                label: "FTc",
                value: fmt(avg.ftc_ms, 0),
                unit: "ms",
                sub: if low_flow {
                    "low flow: less certain".into()
                } else {
                    self.handoff.ftc_formula().label()
                },
                poor: poor || low_flow,
                colour: colour::FTC,
            },
            TileSpec {
                label: "HR",
                value: fmt(avg.hr_bpm, 0),
                unit: "/min",
                sub: String::new(),
                poor,
                colour: colour::TEXT,
            },
            TileSpec {
                label: "PV",
                value: fmt(avg.pv_cm_s, 0),
                unit: "cm/s",
                sub: String::new(),
                poor,
                colour: colour::TEXT,
            },
            TileSpec {
                label: "SD",
                value: fmt(avg.sd_cm, 1),
                unit: "cm",
                sub: String::new(),
                poor,
                colour: colour::TEXT,
            },
            TileSpec {
                label: "MA",
                value: fmt(avg.ma_cm_s2, 0),
                unit: "cm/s²",
                sub: String::new(),
                poor,
                colour: colour::TEXT,
            },
            // SVV reads the swing of SV over a breath; in an irregular
            // rhythm the beat-to-beat swing is the rhythm's, and SVV ≥ 13 %
            // would prompt fluid for no reason: never shown as if valid.
            TileSpec {
                label: "SVV",
                value: fmt(avg.svv_pct, 0),
                unit: "%",
                sub: if irregular {
                    "not valid: irregular rhythm".into()
                } else if let Some(rate) = breathing.filter(|_| avg.svv_pct.is_some()) {
                    format!("breathing {rate:.0}/min, 30 s")
                } else {
                    "30 s window".into()
                },
                poor: poor || irregular,
                colour: colour::TEXT,
            },
        ];
        for (k, spec) in tiles.iter().enumerate() {
            let (col, row) = ((k % 2) as f32, (k / 2) as f32);
            let r = Rect::from_min_size(
                pos2(rect.left() + col * cell_w, grid_top + row * cell_h),
                vec2(cell_w - 4.0, cell_h - 4.0),
            );
            tile(ui, r, scale, spec);
        }
        // The averaging window, and why numbers are dimmed.
        let footer = Rect::from_min_max(pos2(rect.left(), grid_top + 4.0 * cell_h), rect.max);
        let mut lines = vec![averaging_text(&avg)];
        if let Some(why) = stale.filter(|_| avg.beats > 0) {
            lines.push(format!("? = not current: {why}; last values shown"));
        } else if poor && avg.beats > 0 {
            let why = quality
                .main_reason
                .map(|r| r.as_str().to_string())
                .unwrap_or_else(|| "low quality".into());
            lines.push(format!("? = poor signal ({why})"));
        } else if low_flow && avg.beats > 0 {
            lines.push("FTc? = low flow: flow time ±10–60 ms".into());
        }
        let resp = ui.interact(footer, egui::Id::unique("odm-averaging"), Sense::hover());
        let text = lines.join("\n");
        resp.widget_info(|| WidgetInfo::labeled(egui::Role::Label, true, text.clone()));
        ui.painter().text(
            pos2(footer.left() + 8.0, footer.top() + 8.0),
            Align2::LEFT_TOP,
            text,
            FontId::proportional(18.0 * scale),
            colour::DIM,
        );
    }

    /// The area model the pipeline uses, as the SV tile states it.
    fn sv_model_text(&self) -> String {
        use odm_dsp::haemo::SvModel;
        let m = &self.state.area_model;
        let d = m.aortic_diameter_mm().unwrap_or(f64::NAN);
        match m {
            SvModel::None => "no area model: enter patient".into(),
            SvModel::MeasuredDiameter { .. } => format!("measured aorta {d:.0} mm"),
            SvModel::Population { .. } => format!("model {}, aorta {d:.1} mm", m.name()),
        }
    }

    fn waterfall_ui(&mut self, ui: &mut Ui, rect: Rect, scale: f32) {
        let painter = ui.painter_at(rect);
        painter.rect_filled(rect, 0.0, Color32::BLACK);
        let spec = &self.state.spectrogram;
        spec.paint(&painter, rect);

        let y_of = |v: f32| {
            rect.top()
                + row_from_velocity_cm_s(v) / crate::handoff::COLUMN_ROWS as f32 * rect.height()
        };
        // Velocity grid every 50 cm/s, zero line brighter.
        for v in [-50.0f32, 0.0, 50.0, 100.0, 150.0, 200.0] {
            let y = y_of(v);
            let c = if v == 0.0 {
                Color32::from_gray(150)
            } else {
                Color32::from_gray(55)
            };
            painter.line_segment(
                [pos2(rect.left(), y), pos2(rect.right(), y)],
                Stroke::new(1.0, c),
            );
            painter.text(
                pos2(rect.left() + 4.0, y - 2.0),
                Align2::LEFT_BOTTOM,
                format!("{v:.0}"),
                FontId::proportional(13.0 * scale),
                Color32::from_gray(170),
            );
        }
        painter.text(
            pos2(rect.left() + 40.0 * scale, rect.top() + 4.0),
            Align2::LEFT_TOP,
            "cm/s",
            FontId::proportional(13.0 * scale),
            Color32::from_gray(170),
        );

        let hz = self.state.sample_rate_hz().unwrap_or(0);
        // Envelope over the waterfall.
        let pts: Vec<egui::Pos2> = spec
            .envelope()
            .iter()
            .filter_map(|p| {
                spec.x_from_sample(rect, p.sample as f64)
                    .map(|x| pos2(x, y_of(p.v_cm_s)))
            })
            .collect();
        if pts.len() > 1 {
            painter.add(egui::Shape::line(pts, Stroke::new(2.0, colour::ENVELOPE)));
        }
        // Beat marks: onset ▲, peak, end on accepted beats; rejected beats hatched grey with the reason.
        if hz > 0 {
            let fs = f64::from(hz);
            for b in self.state.readings.recent() {
                let xs = [b.onset_s, b.peak_s, b.end_s].map(|t| spec.x_from_sample(rect, t * fs));
                if b.accepted {
                    let y0 = y_of(0.0);
                    if let Some(x) = xs[0] {
                        painter.line_segment(
                            [pos2(x, y0 - 14.0), pos2(x, y0 + 14.0)],
                            Stroke::new(2.0, colour::GOOD),
                        );
                    }
                    if let Some(x) = xs[1] {
                        painter.circle_filled(
                            pos2(x, y_of(b.pv_cm_s as f32)),
                            4.0 * scale,
                            colour::GOOD,
                        );
                    }
                    if let Some(x) = xs[2] {
                        painter.line_segment(
                            [pos2(x, y0 - 14.0), pos2(x, y0 + 14.0)],
                            Stroke::new(2.0, colour::FTC),
                        );
                    }
                } else {
                    let x0 = spec
                        .x_from_sample(rect, b.onset_s * fs)
                        .unwrap_or(rect.left());
                    let x1 = spec
                        .x_from_sample(rect, b.next_onset_s * fs)
                        .unwrap_or(rect.right());
                    if x1 > x0 && (xs[0].is_some() || xs[2].is_some()) {
                        let band =
                            Rect::from_min_max(pos2(x0, rect.top()), pos2(x1, rect.bottom()));
                        painter.rect_filled(band, 0.0, Color32::from_black_alpha(110));
                        let mut x = x0;
                        while x < x1 {
                            let top = pos2(x, rect.top());
                            let bot = pos2((x + 30.0).min(x1), rect.top() + 30.0);
                            painter
                                .line_segment([top, bot], Stroke::new(1.0, Color32::from_gray(90)));
                            x += 12.0;
                        }
                        let reason = b.reject_reason.map_or("rejected", |r| r.as_str());
                        painter.text(
                            pos2((x0 + x1) / 2.0, rect.top() + 34.0),
                            Align2::CENTER_TOP,
                            reason,
                            FontId::proportional(14.0 * scale),
                            Color32::from_gray(200),
                        );
                    }
                }
            }
        }
        if self.simulated_stream() {
            painter.text(
                rect.right_top() + vec2(-10.0, 8.0),
                Align2::RIGHT_TOP,
                "SIMULATED",
                FontId::proportional(30.0 * scale),
                colour::SIMULATED,
            );
        }
        if spec.width_columns() == 0 {
            let msg = if hz == 0 {
                "no signal: waiting for PROBE_INFO"
            } else {
                "no signal"
            };
            painter.text(
                rect.center(),
                Align2::CENTER_CENTER,
                msg,
                FontId::proportional(28.0 * scale),
                colour::DIM,
            );
        }
        painter.text(
            rect.left_bottom() + vec2(4.0, -4.0),
            Align2::LEFT_BOTTOM,
            "10 s",
            FontId::proportional(13.0 * scale),
            Color32::from_gray(170),
        );
    }

    fn trends_ui(&mut self, ui: &mut Ui, scale: f32) {
        let points = self.state.readings.trend_points();
        ui.horizontal(|ui| {
            ui.label(RichText::new("Trends").size(18.0 * scale));
            for m in TREND_RANGES_MIN {
                ui.selectable_value(&mut self.trend_range_min, m, format!("{m} min"));
            }
            ui.label(RichText::new("medians of 10 s bins").color(colour::DIM));
        });
        let rect = ui.available_rect_before_wrap();
        ui.allocate_rect(rect, Sense::hover());
        let painter = ui.painter_at(rect);
        let range_s = f64::from(self.trend_range_min) * 60.0;
        let end_s = self.state.stream_now_s().max(range_s.min(60.0));
        let start_s = end_s - range_s;
        let has_sv = points.iter().any(|p| p.sv_ml.is_some());
        type Get = fn(&TrendPoint) -> Option<f64>;
        let rows: [(&str, Get, Color32); 3] = [
            if has_sv {
                ("SV ml", |p| p.sv_ml, colour::SV)
            } else {
                ("SD cm (no area model)", |p| p.sd_cm, colour::SV)
            },
            ("CO l/min", |p| p.co_l_min, colour::FLOW),
            ("FTc ms", |p| p.ftc_ms, colour::FTC),
        ];
        let h = rect.height() / 3.0;
        for (k, (name, get, c)) in rows.iter().enumerate() {
            let r = Rect::from_min_size(
                pos2(rect.left(), rect.top() + k as f32 * h),
                vec2(rect.width(), h - 4.0),
            );
            painter.rect_stroke(
                r,
                2.0,
                Stroke::new(1.0, Color32::from_gray(50)),
                StrokeKind::Inside,
            );
            painter.text(
                r.left_top() + vec2(6.0, 4.0),
                Align2::LEFT_TOP,
                *name,
                FontId::proportional(15.0 * scale),
                *c,
            );
            let span = TrendSpan {
                rect: r,
                start_s,
                end_s,
                scale,
            };
            trend_line(&painter, &span, &points, *get, *c);
        }
        // Bolus markers across all three.
        for m in &self.state.marks {
            if m.t_s < start_s || m.t_s > end_s {
                continue;
            }
            let x = rect.left() + ((m.t_s - start_s) / range_s) as f32 * rect.width();
            let c = if m.bolus_ml.is_some() {
                colour::BOLUS
            } else {
                colour::DIM
            };
            painter.line_segment(
                [pos2(x, rect.top()), pos2(x, rect.bottom())],
                Stroke::new(2.0, c),
            );
            painter.text(
                pos2(x + 3.0, rect.top() + 20.0),
                Align2::LEFT_TOP,
                &m.text,
                FontId::proportional(13.0 * scale),
                c,
            );
        }
    }

    fn bottom_panels_ui(&mut self, ui: &mut Ui, scale: f32) {
        ui.set_min_height(200.0 * scale);
        ui.columns(5, |cols| {
            self.quality_ui(&mut cols[0], scale);
            self.probe_ui(&mut cols[1], scale);
            self.patient_ui(&mut cols[2], scale);
            self.challenge_ui(&mut cols[3], scale);
            self.diagnostics_ui(&mut cols[4], scale);
        });
    }

    fn quality_ui(&mut self, ui: &mut Ui, scale: f32) {
        ui.label(RichText::new("Signal quality").size(18.0 * scale).strong());
        let q = self.state.readings.quality();
        // The quality of the beats that count: a rejected beat's own
        // quality does not make the signal good ("POOR 100 %" beside
        // "rejected 100 %" read as a good signal).
        let usable = q.mean_quality.map(|v| v * (1.0 - q.rejected_fraction));
        let (text, c, usable) = match (self.not_current(), usable) {
            (Some(why), _) => (format!("NO SIGNAL: {why}"), colour::MEDIUM, Some(0.0)),
            (None, None) => ("no signal".to_string(), colour::DIM, None),
            (None, Some(v)) if q.poor() => {
                (format!("POOR {:.0} %", v * 100.0), colour::MEDIUM, Some(v))
            }
            (None, Some(v)) => (format!("GOOD {:.0} %", v * 100.0), colour::GOOD, Some(v)),
        };
        let resp = ui.label(RichText::new(&text).size(26.0 * scale).color(c));
        resp.widget_info(|| {
            WidgetInfo::labeled(egui::Role::Label, true, format!("Signal quality {text}"))
        });
        // A bar the operator can watch while focusing the probe.
        let (r, _) =
            ui.allocate_exact_size(vec2(ui.available_width(), 14.0 * scale), Sense::hover());
        ui.painter().rect_filled(r, 2.0, Color32::from_gray(40));
        let frac = usable.unwrap_or(0.0).clamp(0.0, 1.0) as f32;
        ui.painter().rect_filled(
            Rect::from_min_size(r.min, vec2(r.width() * frac, r.height())),
            2.0,
            c,
        );
        ui.label(format!(
            "rejected {:.0} % of last 10 beats",
            q.rejected_fraction * 100.0
        ));
        if let Some(r) = q.main_reason {
            ui.label(format!("mostly: {}", r.as_str()));
        }
        // A steady tone (another machine's interference) is being removed
        // from the spectrum before the numbers are measured: say so, so that
        // whoever sees a line in the waterfall knows it is not flow.
        let tones = self.state.tones_cancelled;
        if tones > 0 {
            let text = if tones == 1 {
                "steady tone removed".to_string()
            } else {
                format!("{tones} steady tones removed")
            };
            ui.label(RichText::new(text).color(colour::MEDIUM));
        }
        // An irregular rhythm (atrial fibrillation): premature beats are
        // averaged, not rejected as ectopic, and SVV is not valid.
        if self.state.readings.irregular_rhythm() {
            ui.label(RichText::new("irregular rhythm").color(colour::MEDIUM));
        }
    }

    fn probe_ui(&mut self, ui: &mut Ui, scale: f32) {
        ui.label(RichText::new("Probe").size(18.0 * scale).strong());
        let Some(p) = self.state.probe.clone() else {
            ui.label("no probe information yet");
            return;
        };
        let model = match odm_device_io::ProbeModel::from_u8(p.probe_model) {
            odm_device_io::ProbeModel::Unknown => "unknown model".to_string(),
            odm_device_io::ProbeModel::AdultShortTerm => "adult short-term".to_string(),
            odm_device_io::ProbeModel::AdultLongTerm => "adult long-term".to_string(),
            odm_device_io::ProbeModel::Paediatric => "paediatric".to_string(),
            odm_device_io::ProbeModel::Other(n) => format!("model {n}"),
        };
        ui.label(format!("serial {}", p.serial_str()));
        ui.label(model);
        let life = if p.minutes_limit == 0 {
            format!("{} min used, no limit", p.minutes_used)
        } else {
            format!("{} of {} min used", p.minutes_used, p.minutes_limit)
        };
        ui.label(life);
        if let Some(left) = self.state.probe_minutes_left() {
            if left == 0 {
                ui.label(
                    RichText::new("PROBE LIFE EXPIRED")
                        .color(colour::LOW)
                        .strong(),
                );
            } else if left < PROBE_LIFE_WARNING_MIN {
                ui.label(
                    RichText::new(format!("{left} min of probe life left"))
                        .color(colour::MEDIUM)
                        .strong(),
                );
            }
        }
        let status = self.calibrations.status(&p, CalDate::today_utc());
        let text = RichText::new(format!("calibration: {status}"));
        ui.label(match status {
            CalibrationStatus::Calibrated { pass: true, .. } => text,
            CalibrationStatus::None => text.color(colour::DIM),
            _ => text.color(colour::MEDIUM).strong(),
        });
        // Without real-time priority a hop can wait milliseconds for the
        // CPU on a busy machine (docs/monitor.md, "Real-time priority"):
        // not a clinical matter, but the engineer setting the machine up
        // should see it.
        if self.handoff.dsp_real_time() == Some(false) {
            ui.label(RichText::new("DSP: normal priority").color(colour::DIM));
        }
        // The probe's demodulator has a gain/phase error the DSP is taking
        // out (docs/dsp.md, stage 1a): the numbers are good, but the probe
        // interface wants a service.
        if let Some(db) = self.handoff.iq_corrected_image_db() {
            ui.label(
                RichText::new(format!("I/Q imbalance corrected (image {db:.0} dB)"))
                    .color(colour::MEDIUM),
            );
        }
        // One quadrature channel is dead or broken (docs/dsp.md, stage 1a):
        // the flow is mirrored into the reverse half at full power.
        if let Some(db) = self.state.iq_channel_fault_db {
            let (weak, other) = if db < 0.0 { ("Q", "I") } else { ("I", "Q") };
            let text = if db.abs() >= 60.0 {
                format!("I/Q fault: {weak} channel dead")
            } else {
                format!("I/Q fault: {weak} channel {:.0} dB under {other}", db.abs())
            };
            ui.label(RichText::new(text).color(colour::MEDIUM).strong());
        }
        // The pulsatile flow is in the reverse half (docs/dsp.md, stage
        // 3b): the beam is on flow towards the probe, or the interface
        // delivers I and Q swapped.
        if self.state.flow_reversed {
            ui.label(
                RichText::new("flow reversed: beam on another vessel, or I/Q swapped")
                    .color(colour::MEDIUM)
                    .strong(),
            );
        }
        // The systole's top wraps round the band's edge (docs/dsp.md,
        // stage 3c): followed across it up to 1.75 × the limit, its beats
        // rejected past that.
        if let Some(top) = self.state.aliasing_past_unwrap_cm_s {
            ui.label(
                RichText::new(format!(
                    "aliasing: flow above {top:.0} cm/s, beats rejected"
                ))
                .color(colour::MEDIUM)
                .strong(),
            );
        } else if let Some(limit) = self.state.aliasing_limit_cm_s {
            ui.label(
                RichText::new(format!("aliasing above {limit:.0} cm/s: unwrapped"))
                    .color(colour::TEXT),
            );
        }
        ui.label(
            RichText::new(format!(
                "{} Hz, {:.1}°, fw {}",
                p.sample_rate_hz,
                p.beam_angle_deg(),
                p.firmware_str()
            ))
            .color(colour::DIM),
        );
    }

    fn patient_ui(&mut self, ui: &mut Ui, scale: f32) {
        ui.label(RichText::new("Patient").size(18.0 * scale).strong());
        let f = &mut self.patient;
        // The fields take what is typed and start empty; values the SV
        // model does not cover are refused on Apply with the reason, never
        // swapped for the nearest limit (an audit's 17 cm became 100 cm
        // without a word, 2026-12-04).
        let field = |ui: &mut Ui, text: &mut String, name: &str, unit: &str| {
            let label = ui.label(name);
            // Wide enough for "176" at any scale, and never clipped: at
            // 1280x800 a 48-px field showed "17" for 176.
            ui.add(
                egui::TextEdit::singleline(text)
                    .hint_text("—")
                    .desired_width((48.0 * scale).max(40.0))
                    .clip_text(false),
            )
            .labelled_by(label.id);
            ui.label(unit);
        };
        ui.horizontal(|ui| {
            field(ui, &mut f.age_text, "age", "y");
            egui::ComboBox::new("odm-sex", "sex")
                .selected_text(f.sex.as_str())
                .show_ui(ui, |ui| {
                    for s in [PatientSex::Female, PatientSex::Male, PatientSex::Unknown] {
                        ui.selectable_value(&mut f.sex, s, s.as_str());
                    }
                });
        });
        ui.horizontal(|ui| {
            field(ui, &mut f.height_text, "height", "cm");
            field(ui, &mut f.weight_text, "weight", "kg");
        });
        let parsed = f.parsed();
        match &parsed {
            Ok(s) => {
                ui.label(format!(
                    "BSA {:.2} m² (Mosteller)",
                    BsaFormula::Mosteller.bsa_m2(s.height_cm, s.weight_kg)
                ));
            }
            Err(_) => {
                ui.label(RichText::new("BSA —").color(colour::DIM));
            }
        }
        ui.horizontal(|ui| {
            ui.checkbox(&mut f.use_diameter, "measured aorta");
            if f.use_diameter {
                field(ui, &mut f.diameter_text, "diameter", "mm");
            }
        });
        let changed = parsed.as_ref().ok() != f.applied.as_ref();
        if let Err(why) = &parsed {
            let entered = !(f.age_text.trim().is_empty()
                && f.height_text.trim().is_empty()
                && f.weight_text.trim().is_empty());
            let text = if why.starts_with("enter ") {
                why.clone()
            } else {
                format!("not applicable: {why}")
            };
            ui.label(RichText::new(text).size(14.0 * scale).color(if entered {
                colour::MEDIUM
            } else {
                colour::DIM
            }));
        }
        if ui
            .add_enabled(
                changed && parsed.is_ok(),
                egui::Button::new("Apply patient"),
            )
            .clicked()
            && let Ok(s) = parsed
        {
            f.applied = Some(s);
            self.backend.send(Command::Patient(s));
            self.uptake.age_years(s.age_years);
        }
    }

    fn challenge_ui(&mut self, ui: &mut Ui, scale: f32) {
        ui.label(RichText::new("Fluid challenge").size(18.0 * scale).strong());
        ui.horizontal(|ui| {
            ui.add(
                egui::DragValue::new(&mut self.bolus_volume_ml)
                    .range(50.0..=1000.0)
                    .speed(10.0)
                    .suffix(" ml"),
            );
            if ui.button("Bolus").clicked() {
                let mut m = serde_json::Map::new();
                m.insert("type".into(), "bolus".into());
                m.insert("volume_ml".into(), self.bolus_volume_ml.into());
                self.backend.send(Command::Annotate(m));
                self.state.bolus_now(self.bolus_volume_ml);
                self.uptake.bolus(self.bolus_volume_ml);
            }
        });
        let cfg = *self.state.challenges.config();
        let sv_or_sd = |sv: Option<f64>, sd: Option<f64>| match (sv, sd) {
            (Some(sv), _) => format!("SV {sv:.0} ml"),
            (None, Some(sd)) => format!("SD {sd:.1} cm"),
            _ => "—".into(),
        };
        if let Some(c) = self.state.challenges.live() {
            let base = format!(
                "baseline {} ({} beats)",
                sv_or_sd(c.sv_before_ml, c.sd_before_cm),
                c.beats_before
            );
            let now = format!(
                "now {} ({} beats), {:.0} s after bolus",
                sv_or_sd(c.sv_now_ml, c.sd_now_cm),
                c.beats_now,
                c.elapsed_s
            );
            let l = ui.label(&base);
            l.widget_info(|| {
                WidgetInfo::labeled(egui::Role::Label, true, format!("Baseline {base}"))
            });
            ui.label(&now);
            // The verdict is the best change so far: what the final result
            // reports unless a later window does better (odm_dsp::fluid).
            let (verdict, col) = match (c.delta_now_pct, c.delta_best_pct) {
                (Some(d), Some(best)) if best >= cfg.responsive_pct => (
                    format!("ΔSV {d:+.1} % (best {best:+.1} %)  RESPONSIVE"),
                    colour::GOOD,
                ),
                (Some(d), Some(best)) => {
                    (format!("ΔSV {d:+.1} % (best {best:+.1} %)"), colour::FTC)
                }
                (Some(d), None) => (format!("ΔSV {d:+.1} %"), colour::FTC),
                _ => ("ΔSV — (waiting for beats)".to_string(), colour::DIM),
            };
            let v = ui.label(
                RichText::new(&verdict)
                    .size(22.0 * scale)
                    .strong()
                    .color(col),
            );
            v.widget_info(|| WidgetInfo::labeled(egui::Role::Label, true, verdict.clone()));
        } else if let Some(r) = self.state.challenges.history().last() {
            let verdict = match (r.delta_pct, r.responsive) {
                (Some(d), Some(true)) => format!("last bolus: ΔSV {d:+.1} %  RESPONSIVE"),
                (Some(d), Some(false)) => format!("last bolus: ΔSV {d:+.1} %  not responsive"),
                (Some(d), None) if !r.complete => {
                    format!("last bolus: ΔSV {d:+.1} % when cut short, not judged")
                }
                _ => "last bolus: too few beats to judge".to_string(),
            };
            let v = ui.label(RichText::new(&verdict).size(20.0 * scale).strong());
            v.widget_info(|| WidgetInfo::labeled(egui::Role::Label, true, verdict.clone()));
        } else {
            ui.label(RichText::new("no bolus yet").color(colour::DIM));
        }
        ui.label(
            RichText::new(format!(
                "before {:.0} s; after: best {:.0} s mean within {:.0} s; responsive at >= {:.0} %",
                cfg.before_s, cfg.rolling_s, cfg.after_span_s, cfg.responsive_pct
            ))
            .size(12.0 * scale)
            .color(colour::DIM),
        );
        let history = self.state.challenges.history();
        if !history.is_empty() {
            egui::ScrollArea::vertical()
                .max_height(60.0 * scale)
                .show(ui, |ui| {
                    for (k, r) in history.iter().enumerate().rev() {
                        let d = r.delta_pct.map_or("—".into(), |d| format!("{d:+.1} %"));
                        let yes = match r.responsive {
                            Some(true) => "responsive",
                            Some(false) => "not responsive",
                            None => "not judged",
                        };
                        let ml = r.volume_ml.map_or("?".to_string(), |v| format!("{v:.0}"));
                        ui.label(format!(
                            "#{} {ml} ml at {:.0} s: {d} {yes}",
                            k + 1,
                            r.bolus_t_s
                        ));
                    }
                });
        }
    }

    fn diagnostics_ui(&mut self, ui: &mut Ui, scale: f32) {
        ui.label(RichText::new("Diagnostics").size(18.0 * scale).strong());
        let h = &self.handoff;
        let dropped = h.dropped_total();
        let r = ui.label(format!("display items dropped: {dropped}"));
        r.widget_info(|| {
            WidgetInfo::labeled(
                egui::Role::Label,
                true,
                format!("Dropped display items {dropped}"),
            )
        });
        ui.label(format!(
            "columns {} / envelope {} / beats {}",
            h.columns.dropped(),
            h.envelope.dropped(),
            h.beats.dropped()
        ));
        ui.label(format!("beats received {}", self.state.beats_received));
        ui.label(self.backend.audio_status());
        let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
        ui.label(format!(
            "samples before PROBE_INFO dropped {}; recorder frames dropped {}; audio samples dropped {}",
            load(&h.samples_before_probe_info),
            load(&h.recorder_dropped),
            load(&h.audio_dropped)
        ));
        match (
            self.state.latency.percentile_ms(50.0),
            self.state.latency.percentile_ms(99.0),
        ) {
            (Some(p50), Some(p99)) => {
                ui.label(format!("beat-to-screen {p50:.1} / {p99:.1} ms (p50/p99)"))
            }
            _ => ui.label("beat-to-screen —"),
        };
        if let Some(s) = self.state.last_status {
            // In words, not the program's own notation.
            let text = match s {
                odm_dsp::Status::SignalLost { t_s } => format!("last: signal lost at {t_s:.1} s"),
                odm_dsp::Status::SignalRegained { t_s } => {
                    format!("last: signal regained at {t_s:.1} s")
                }
                odm_dsp::Status::Gap { t_s, lost_samples } => {
                    format!("last: {lost_samples} samples missing at {t_s:.1} s")
                }
                odm_dsp::Status::Discontinuity { t_s } => {
                    format!("last: stream restarted at {t_s:.1} s")
                }
            };
            ui.label(RichText::new(text).size(12.0 * scale).color(colour::DIM));
        }
        let uptake_status = if self.uptake.counting()
            && (!self.backend.source().counts_for_uptake() || self.simulated_stream())
        {
            "uptake: not counting this source (only a live probe's case counts)".to_string()
        } else {
            self.uptake.status()
        };
        ui.label(
            RichText::new(uptake_status)
                .size(12.0 * scale)
                .color(colour::DIM),
        );
        for (code, value) in self.state.unknown_events.iter().rev().take(2) {
            ui.label(RichText::new(format!("probe event {code} value {value}")).color(colour::DIM));
        }
    }
}

/// The numbers shown, each `None` when there is nothing to show.
#[derive(Debug, Clone, Copy, Default)]
struct Averages {
    beats: usize,
    sv_ml: Option<f64>,
    sv_low_ml: Option<f64>,
    sv_high_ml: Option<f64>,
    co_l_min: Option<f64>,
    ftc_ms: Option<f64>,
    pv_cm_s: Option<f64>,
    sd_cm: Option<f64>,
    ma_cm_s2: Option<f64>,
    hr_bpm: Option<f64>,
    svv_pct: Option<f64>,
}

impl Averages {
    fn from_dsp(a: Option<odm_dsp::trend::BeatAverages>, svv_pct: Option<f64>) -> Self {
        let Some(a) = a else {
            return Self {
                svv_pct,
                ..Self::default()
            };
        };
        Self {
            beats: a.beats,
            sv_ml: a.sv_ml,
            sv_low_ml: a.sv_range_ml.map(|r| r.0),
            sv_high_ml: a.sv_range_ml.map(|r| r.1),
            co_l_min: a.co_l_min,
            ftc_ms: Some(a.ftc_ms),
            pv_cm_s: Some(a.pv_cm_s),
            sd_cm: Some(a.sd_cm),
            ma_cm_s2: a.ma_cm_s2,
            hr_bpm: Some(a.hr_bpm),
            svv_pct,
        }
    }
}

/// What a numerics tile shows.
struct TileSpec {
    label: &'static str,
    value: String,
    unit: &'static str,
    sub: String,
    poor: bool,
    colour: Color32,
}

/// A numeric with its name and unit; from a poor signal it is dimmed and
/// carries "?", never shown as if good. Accessible as label = name,
/// value = the number as shown, hint = the line under it.
fn tile(ui: &mut Ui, rect: Rect, scale: f32, spec: &TileSpec) {
    let id = egui::Id::unique(("odm-tile", spec.label));
    let resp = ui.interact(rect, id, Sense::hover());
    let shown = if spec.poor && spec.value != "—" {
        format!("{}?", spec.value)
    } else {
        spec.value.clone()
    };
    let shown_a11y = shown.clone();
    let label = spec.label;
    let sub_a11y = (!spec.sub.is_empty()).then(|| spec.sub.clone());
    resp.widget_info(move || {
        let mut info = WidgetInfo::labeled(egui::Role::Group, true, label);
        info.current_text_value = Some(shown_a11y.clone());
        info.hint_text = sub_a11y.clone();
        info
    });
    let p = ui.painter();
    p.rect_filled(rect, 4.0, colour::PANEL);
    let c = if spec.poor {
        spec.colour.gamma_multiply(0.45)
    } else {
        spec.colour
    };
    p.text(
        rect.left_top() + vec2(10.0, 6.0),
        Align2::LEFT_TOP,
        spec.label,
        FontId::proportional(22.0 * scale),
        c,
    );
    p.text(
        rect.right_top() + vec2(-10.0, 6.0),
        Align2::RIGHT_TOP,
        spec.unit,
        FontId::proportional(18.0 * scale),
        colour::DIM,
    );
    // The value fills the tile above the line under it, which every tile
    // keeps free (so all values are one size, and none runs into its
    // line); centred, it passes between the label (left) and the unit
    // (right).
    let sub_h = 18.0 * scale;
    let band_h = (rect.height() - sub_h - 8.0).max(16.0);
    let mut value_size = band_h
        .min(rect.height() * 0.62)
        .min(rect.width() * 0.28)
        .max(16.0);
    if spec.value == "—" {
        // "No value" is a short dash, not a bar the eye could read as a number.
        value_size *= 0.5;
    }
    p.text(
        pos2(rect.center().x, rect.top() + 4.0 + 0.5 * band_h),
        Align2::CENTER_CENTER,
        &shown,
        FontId::proportional(value_size),
        c,
    );
    if !spec.sub.is_empty() {
        p.text(
            rect.center_bottom() + vec2(0.0, -4.0),
            Align2::CENTER_BOTTOM,
            &spec.sub,
            FontId::proportional(14.0 * scale),
            colour::DIM,
        );
    }
}

fn fmt(v: Option<f64>, decimals: usize) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x:.decimals$}"),
        _ => "—".to_string(),
    }
}

fn averaging_text(avg: &Averages) -> String {
    if avg.beats == 0 {
        "no accepted beats".to_string()
    } else {
        format!("mean of {} beats (window {AVERAGE_BEATS})", avg.beats)
    }
}

/// Where and over what time a trend is drawn.
struct TrendSpan {
    rect: Rect,
    start_s: f64,
    end_s: f64,
    scale: f32,
}

/// One trend: bin medians joined by lines, broken where a bin has no value
/// (a lost signal shows as a gap, never as an interpolated line).
fn trend_line(
    painter: &egui::Painter,
    span: &TrendSpan,
    points: &[TrendPoint],
    get: fn(&TrendPoint) -> Option<f64>,
    c: Color32,
) {
    let r = span.rect;
    let visible: Vec<(f64, Option<f64>)> = points
        .iter()
        .filter(|p| p.t_end_s >= span.start_s && p.t_start_s <= span.end_s)
        .map(|p| (0.5 * (p.t_start_s + p.t_end_s), get(p)))
        .collect();
    let values: Vec<f64> = visible.iter().filter_map(|v| v.1).collect();
    if values.is_empty() {
        painter.text(
            r.center(),
            Align2::CENTER_CENTER,
            "—",
            FontId::proportional(16.0 * span.scale),
            colour::DIM,
        );
        return;
    }
    let lo = values.iter().copied().fold(f64::MAX, f64::min);
    let hi = values.iter().copied().fold(f64::MIN, f64::max);
    let pad = ((hi - lo) * 0.15).max(hi.abs() * 0.05).max(1e-6);
    let (lo, hi) = (lo - pad, hi + pad);
    let plot = r.shrink2(vec2(4.0, 22.0 * span.scale.min(1.0)));
    let range = span.end_s - span.start_s;
    let to_pos = |t: f64, v: f64| {
        pos2(
            plot.left() + ((t - span.start_s) / range) as f32 * plot.width(),
            plot.bottom() - ((v - lo) / (hi - lo)) as f32 * plot.height(),
        )
    };
    let mut segment: Vec<egui::Pos2> = Vec::new();
    let flush = |seg: &mut Vec<egui::Pos2>| {
        match seg.len() {
            0 => {}
            1 => {
                painter.circle_filled(seg[0], 2.0, c);
            }
            _ => {
                painter.add(egui::Shape::line(std::mem::take(seg), Stroke::new(2.0, c)));
            }
        }
        seg.clear();
    };
    for &(t, v) in &visible {
        match v {
            Some(v) => segment.push(to_pos(t, v)),
            None => flush(&mut segment),
        }
    }
    flush(&mut segment);
    for (v, align) in [(hi, Align2::RIGHT_TOP), (lo, Align2::RIGHT_BOTTOM)] {
        let y = if align == Align2::RIGHT_TOP {
            r.top() + 2.0
        } else {
            r.bottom() - 2.0
        };
        painter.text(
            pos2(r.right() - 4.0, y),
            align,
            format!("{v:.1}"),
            FontId::proportional(12.0 * span.scale),
            colour::DIM,
        );
    }
}
