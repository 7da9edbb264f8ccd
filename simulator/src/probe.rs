//! The virtual probe: physiology + Doppler synthesis + impairments → the
//! payloads of the serial stream, in stream order, with the truth beside them.

use std::collections::VecDeque;

use odm_device_io::{FLAG_CLIPPED, IqBlock, Payload, ProbeEvent, ProbeInfo, event_code};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::config::{ImpairmentSchedule, Interval, SimConfig};
use crate::doppler::{DopplerSynth, Drive, SignalLevels, quantise};
use crate::physiology::{BeatPlan, BeatTimeline};
use crate::truth::{Impairment, ImpairmentKind, TruthBeat};
use crate::{STREAM_CLIP_SCHEDULE, STREAM_DIATHERMY_SCHEDULE, STREAM_GAP_SCHEDULE, SimError};

/// Diathermy switches on and off over this long, s.
const DIATHERMY_RAMP_S: f64 = 0.02;
/// Receive gain reported in EVENT 2 outside clipping episodes, 0.1 dB.
const BASE_GAIN_DB10: i32 = 300;
/// Past beats kept for envelope queries, s.
const RETAIN_S: f64 = 30.0;
/// Undrained truth beats and impairments kept at most (oldest dropped).
const MAX_UNDRAINED: usize = 100_000;
/// Samples between updates of the wall-clutter shift.
const CLUTTER_STEP: usize = 16;
/// Firmware string reported in PROBE_INFO.
const FIRMWARE: &str = "odmsim1";

/// Whether a PROBE_INFO's firmware text is the virtual probe's (`odmsim…`):
/// a stream the simulator made, wherever it arrives from (a serial port fed
/// by `odm simulate --port`, a recording of one), so that it is labelled
/// simulated and never counted as a patient's case.
pub fn is_simulator_firmware(firmware: &str) -> bool {
    firmware.starts_with("odmsim")
}

#[derive(Debug, Clone)]
struct Episode {
    iv: Interval,
    started: bool,
    ended: bool,
}

/// Episodes of one impairment, produced lazily in time order.
#[derive(Debug, Clone)]
struct Episodes {
    upcoming: VecDeque<Episode>,
    random: Option<(ChaCha8Rng, f64, f64, f64)>,
    last_end_s: f64,
    first: bool,
}

impl Episodes {
    fn new(schedule: &ImpairmentSchedule, seed: u64, stream: u64) -> Self {
        let mut upcoming = VecDeque::new();
        let mut random = None;
        match schedule {
            ImpairmentSchedule::Off => {}
            ImpairmentSchedule::Fixed(v) => {
                let mut v = v.clone();
                v.sort_by(|a, b| a.start_s.total_cmp(&b.start_s));
                upcoming.extend(v.into_iter().map(|iv| Episode {
                    iv,
                    started: false,
                    ended: false,
                }));
            }
            ImpairmentSchedule::Random {
                mean_interval_s,
                min_duration_s,
                max_duration_s,
            } => {
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                rng.set_stream(stream);
                random = Some((rng, *mean_interval_s, *min_duration_s, *max_duration_s));
            }
        }
        Self {
            upcoming,
            random,
            last_end_s: 0.0,
            first: true,
        }
    }

    /// Plans episodes until one starts after `t_s`.
    fn ensure_until(&mut self, t_s: f64) {
        let Some((rng, mean, lo, hi)) = self.random.as_mut() else {
            return;
        };
        while self.upcoming.back().is_none_or(|e| e.iv.start_s <= t_s) {
            // The first episode comes within 2 s + one mean interval, so a
            // recording a little longer than that always has one.
            let wait_s = if self.first {
                2.0 + rng.gen_range(0.0..*mean)
            } else {
                let u: f64 = rng.gen_range(0.0..1.0);
                (-*mean * (1.0 - u).ln()).max(2.0)
            };
            self.first = false;
            let start_s = self.last_end_s + wait_s;
            let dur_s = if hi > lo {
                rng.gen_range(*lo..*hi)
            } else {
                *lo
            };
            self.last_end_s = start_s + dur_s;
            self.upcoming.push_back(Episode {
                iv: Interval {
                    start_s,
                    end_s: start_s + dur_s,
                },
                started: false,
                ended: false,
            });
        }
    }

    /// Forgets episodes that ended before `t_s`.
    fn drop_before(&mut self, t_s: f64) {
        while self
            .upcoming
            .front()
            .is_some_and(|e| e.ended && e.iv.end_s < t_s)
        {
            self.upcoming.pop_front();
        }
    }
}

/// A virtual oesophageal Doppler probe with its interface: produces the
/// stream's payloads lazily, in order, and the exact truth of what it sent.
#[derive(Debug, Clone)]
pub struct VirtualProbe {
    cfg: SimConfig,
    info: ProbeInfo,
    fs: f64,
    hz_per_cm_s: f64,
    sv_ml_per_cm: f64,
    clutter_on: bool,
    /// Extra gain in clipping episodes: the configured gain, raised if needed
    /// so that the signal's RMS reaches 70% of full scale (the ADC then
    /// saturates on its peaks even without clutter).
    clip_gain_db: f64,
    timeline: BeatTimeline,
    synth: DopplerSynth,
    diathermy: Episodes,
    gaps: Episodes,
    clipping: Episodes,
    unplug: Option<Interval>,
    fixed_events: VecDeque<ProbeEvent>,
    next_sample: u64,
    end_sample: Option<u64>,
    next_info_sample: u64,
    info_step: u64,
    out: VecDeque<Payload>,
    pending_beats: VecDeque<BeatPlan>,
    truth: VecDeque<TruthBeat>,
    impairments: VecDeque<Impairment>,
    /// Sample ranges of missing samples (gaps, unplugged), for truth.
    missing: VecDeque<(u64, u64)>,
    /// Sample ranges of clipped blocks, for truth.
    clipped: VecDeque<(u64, u64)>,
    /// Diathermy intervals, for truth.
    diathermy_ivs: VecDeque<Interval>,
    last_block_kind: Option<ImpairmentKind>,
    drive: Drive,
    buf: Vec<[f32; 2]>,
    qbuf: Vec<[i16; 2]>,
}

impl VirtualProbe {
    /// A probe for `cfg` (validated first).
    pub fn new(cfg: SimConfig) -> Result<Self, SimError> {
        cfg.validate()?;
        let fs = f64::from(cfg.sample_rate_hz);
        let blood_power = cfg.blood_rms_counts * cfg.blood_rms_counts;
        let levels = SignalLevels {
            blood_power,
            clutter_power: cfg
                .clutter_db
                .map_or(0.0, |c| blood_power * 10f64.powf(c / 10.0)),
            noise_power: cfg
                .snr_db
                .map_or(0.0, |s| blood_power / 10f64.powf(s / 10.0)),
            diathermy_power: blood_power * 10f64.powf(cfg.diathermy_db / 10.0),
        };
        let synth = DopplerSynth::new(
            cfg.seed,
            cfg.sample_rate_hz,
            levels,
            cfg.scatterer_count,
            cfg.scatterer_lifetime_ms,
            cfg.profile_exponent,
        );
        let info = ProbeInfo {
            sample_rate_hz: cfg.sample_rate_hz,
            carrier_hz: cfg.carrier_hz,
            beam_angle_cdeg: cfg.beam_angle_cdeg,
            probe_model: cfg.probe_model,
            minutes_used: cfg.minutes_used,
            minutes_limit: cfg.minutes_limit,
            probe_serial: ProbeInfo::pad(&cfg.probe_serial),
            firmware: ProbeInfo::pad(FIRMWARE),
        };
        let sample_at = |t_s: f64| (t_s * fs).round().max(0.0) as u64;
        let mut fixed_events: Vec<ProbeEvent> = cfg
            .button_presses_s
            .iter()
            .map(|&t| ProbeEvent {
                at_sample: sample_at(t),
                code: event_code::BUTTON,
                value: 0,
            })
            .collect();
        if let Some(u) = cfg.unplug {
            fixed_events.push(ProbeEvent {
                at_sample: sample_at(u.start_s),
                code: event_code::PROBE_UNPLUGGED,
                value: 0,
            });
            fixed_events.push(ProbeEvent {
                at_sample: sample_at(u.end_s),
                code: event_code::PROBE_PLUGGED,
                value: 0,
            });
        }
        fixed_events.sort_by_key(|e| e.at_sample);
        let block = u64::from(cfg.block_len);
        let fs_u = u64::from(cfg.sample_rate_hz);
        // PROBE_INFO goes before the block holding each threshold; stepping by
        // half a second when blocks do not divide the second keeps every
        // spacing under one second (serial-stream.md, PROBE_INFO).
        let info_step = if fs_u % block == 0 { fs_u } else { fs_u / 2 };
        let total_power = levels.blood_power + levels.clutter_power + levels.noise_power;
        let needed_db = 20.0 * (0.7 * f64::from(i16::MAX) / total_power.sqrt()).log10();
        Ok(Self {
            clip_gain_db: cfg.clipping_gain_db.max(needed_db),
            fs,
            hz_per_cm_s: cfg.signal_hz_per_cm_s(),
            sv_ml_per_cm: cfg.sv_ml_from_sd_cm(1.0),
            clutter_on: cfg.clutter_db.is_some(),
            timeline: BeatTimeline::new(&cfg, RETAIN_S),
            synth,
            diathermy: Episodes::new(&cfg.diathermy, cfg.seed, STREAM_DIATHERMY_SCHEDULE),
            gaps: Episodes::new(&cfg.gaps, cfg.seed, STREAM_GAP_SCHEDULE),
            clipping: Episodes::new(&cfg.clipping, cfg.seed, STREAM_CLIP_SCHEDULE),
            unplug: cfg.unplug,
            fixed_events: fixed_events.into(),
            next_sample: 0,
            end_sample: cfg.duration_s.map(|d| (d * fs).round().max(1.0) as u64),
            next_info_sample: 0,
            info_step,
            out: VecDeque::new(),
            pending_beats: VecDeque::new(),
            truth: VecDeque::new(),
            impairments: VecDeque::new(),
            missing: VecDeque::new(),
            clipped: VecDeque::new(),
            diathermy_ivs: VecDeque::new(),
            last_block_kind: None,
            drive: Drive::default(),
            buf: Vec::new(),
            qbuf: Vec::new(),
            info,
            cfg,
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &SimConfig {
        &self.cfg
    }

    /// The PROBE_INFO this probe sends (as at the start of the stream).
    pub fn probe_info(&self) -> &ProbeInfo {
        &self.info
    }

    /// Samples generated so far (the next block starts here).
    pub fn samples_generated(&self) -> u64 {
        self.next_sample
    }

    /// Stream time generated so far, s.
    pub fn time_s(&self) -> f64 {
        self.next_sample as f64 / self.fs
    }

    /// Whether a finite stream has been fully produced and drained.
    pub fn is_finished(&self) -> bool {
        self.out.is_empty() && self.end_sample.is_some_and(|e| self.next_sample >= e)
    }

    /// The next payload in stream order; `None` only at the end of a finite stream.
    pub fn next_payload(&mut self) -> Option<Payload> {
        loop {
            if let Some(p) = self.out.pop_front() {
                return Some(p);
            }
            if self.end_sample.is_some_and(|e| self.next_sample >= e) {
                return None;
            }
            self.generate_block();
        }
    }

    /// Truth beats completed since the last call (their next onset has been
    /// generated), in order. Beats whose next onset falls after the end of a
    /// finite stream are never completed (analysis-output.md: only complete
    /// cycles are beats).
    pub fn take_truth_beats(&mut self) -> Vec<TruthBeat> {
        self.truth.drain(..).collect()
    }

    /// Impairment intervals realised since the last call, in order of start
    /// (a gap or clipping run still growing at the present is reported once
    /// it has ended, or at the end of the stream).
    pub fn take_impairments(&mut self) -> Vec<Impairment> {
        let now_s = self.time_s();
        let finished = self.end_sample.is_some_and(|e| self.next_sample >= e);
        let mut done = Vec::new();
        while let Some(imp) = self.impairments.front() {
            let open = !finished
                && imp.end_s >= now_s
                && matches!(
                    imp.kind,
                    ImpairmentKind::Gap | ImpairmentKind::Clipped | ImpairmentKind::Unplugged
                );
            if open {
                break;
            }
            if let Some(i) = self.impairments.pop_front() {
                done.push(i);
            }
        }
        done
    }

    /// The exact true forward-velocity envelope at `t_s`, cm/s (systole, and
    /// diastolic forward flow when configured): the physical velocity, before
    /// any probe miscalibration. `None` when `t_s` is more than 30 s behind
    /// the generated stream.
    pub fn true_velocity_cm_s(&mut self, t_s: f64) -> Option<f64> {
        self.timeline.true_velocity_cm_s(t_s)
    }

    /// The Doppler shift the signal really carries per cm/s of true velocity, Hz
    /// (includes gain and angle miscalibration).
    pub fn signal_hz_per_cm_s(&self) -> f64 {
        self.hz_per_cm_s
    }

    fn push_impairment(&mut self, kind: ImpairmentKind, start_s: f64, end_s: f64) {
        if self.impairments.len() >= MAX_UNDRAINED {
            self.impairments.pop_front();
        }
        self.impairments.push_back(Impairment {
            kind,
            start_s,
            end_s,
        });
    }

    /// Extends the last impairment of `kind` if it ends at `start_s`, else starts one.
    fn extend_impairment(&mut self, kind: ImpairmentKind, start_s: f64, end_s: f64) {
        if self.last_block_kind == Some(kind)
            && let Some(last) = self
                .impairments
                .iter_mut()
                .rev()
                .find(|i| i.kind == kind && i.end_s == start_s)
        {
            last.end_s = end_s;
            return;
        }
        self.push_impairment(kind, start_s, end_s);
    }

    fn in_unplug(&self, a_s: f64, b_s: f64) -> bool {
        self.unplug
            .is_some_and(|u| u.start_s < b_s && a_s < u.end_s)
    }

    fn generate_block(&mut self) {
        let n0 = self.next_sample;
        let mut n1 = n0 + u64::from(self.cfg.block_len);
        if let Some(e) = self.end_sample {
            n1 = n1.min(e);
        }
        let len = (n1 - n0) as usize;
        let t0 = n0 as f64 / self.fs;
        let t1 = n1 as f64 / self.fs;
        let unplugged = self.in_unplug(t0, t1);

        // PROBE_INFO: first, at least once per second, and on replug.
        if n0 + len as u64 > self.next_info_sample || n0 == 0 {
            while self.next_info_sample < n0 + len as u64 {
                self.next_info_sample += self.info_step;
            }
            if !unplugged {
                self.out
                    .push_back(Payload::ProbeInfo(self.current_info(t0)));
            }
        }

        // Events inside this block go before it.
        while self.fixed_events.front().is_some_and(|e| e.at_sample < n1) {
            if let Some(ev) = self.fixed_events.pop_front() {
                self.out.push_back(Payload::Event(ev));
                if ev.code == event_code::PROBE_PLUGGED {
                    self.out
                        .push_back(Payload::ProbeInfo(self.current_info(t0)));
                }
            }
        }
        self.clipping.ensure_until(t1);
        let mut gain_events = Vec::new();
        for ep in self.clipping.upcoming.iter_mut() {
            if !ep.started && ep.iv.start_s < t1 {
                ep.started = true;
                gain_events.push(ProbeEvent {
                    at_sample: ((ep.iv.start_s * self.fs).round() as u64).max(n0),
                    code: event_code::GAIN_CHANGED,
                    value: BASE_GAIN_DB10 + (self.clip_gain_db * 10.0).round() as i32,
                });
            }
            if ep.started && !ep.ended && ep.iv.end_s < t1 {
                ep.ended = true;
                gain_events.push(ProbeEvent {
                    at_sample: ((ep.iv.end_s * self.fs).round() as u64).max(n0),
                    code: event_code::GAIN_CHANGED,
                    value: BASE_GAIN_DB10,
                });
            }
        }
        self.out.extend(gain_events.into_iter().map(Payload::Event));

        // Diathermy episodes reaching into this block.
        self.diathermy.ensure_until(t1);
        let mut new_diathermy = Vec::new();
        for ep in self.diathermy.upcoming.iter_mut() {
            if !ep.started && ep.iv.start_s < t1 {
                ep.started = true;
                new_diathermy.push(ep.iv);
            }
            if ep.started && ep.iv.end_s < t1 {
                ep.ended = true;
            }
        }
        for iv in new_diathermy {
            self.diathermy_ivs.push_back(iv);
            self.push_impairment(ImpairmentKind::Diathermy, iv.start_s, iv.end_s);
        }

        // Lost blocks.
        self.gaps.ensure_until(t1);
        let mut dropped = false;
        for ep in self.gaps.upcoming.iter_mut() {
            if ep.iv.start_s < t1 && t0 < ep.iv.end_s {
                dropped = true;
                ep.started = true;
            }
            if ep.iv.end_s < t1 {
                ep.ended = true;
            }
        }

        // Per-sample drive.
        self.drive.resize(len);
        let clip_gain = 10f64.powf(self.clip_gain_db / 20.0) as f32;
        let diathermy_here = self
            .diathermy
            .upcoming
            .iter()
            .any(|ep| ep.iv.start_s < t1 && t0 < ep.iv.end_s);
        let clipping_here = self
            .clipping
            .upcoming
            .iter()
            .any(|ep| ep.iv.start_s < t1 && t0 <= ep.iv.end_s);
        let mut clutter_hz = 0.0f32;
        for i in 0..len {
            let t = (n0 + i as u64) as f64 / self.fs;
            let (v, phase) = self.timeline.velocity_and_phase(t);
            self.drive.edge_hz[i] = (v * self.hz_per_cm_s) as f32;
            if self.clutter_on && i % CLUTTER_STEP == 0 {
                // Wall motion is slow: its shift is updated every CLUTTER_STEP
                // samples (0.8 ms at 20 kHz); the phase is still integrated per sample.
                clutter_hz = (self.cfg.clutter_hz * (std::f64::consts::TAU * phase).sin()) as f32;
            }
            self.drive.clutter_hz[i] = clutter_hz;
            let mut d = 0.0f64;
            if diathermy_here {
                for ep in self.diathermy.upcoming.iter() {
                    if ep.iv.start_s < t && t < ep.iv.end_s {
                        let edge = (t - ep.iv.start_s).min(ep.iv.end_s - t) / DIATHERMY_RAMP_S;
                        d = d.max(edge.min(1.0));
                    }
                }
            }
            self.drive.diathermy[i] = d as f32;
            let clipping = clipping_here
                && self
                    .clipping
                    .upcoming
                    .iter()
                    .any(|ep| ep.iv.start_s <= t && t < ep.iv.end_s);
            self.drive.gain[i] = if clipping { clip_gain } else { 1.0 };
        }
        self.synth.render(&self.drive, &mut self.buf);
        let (gain_error, phase_deg) = (self.cfg.iq_gain_error, self.cfg.iq_phase_error_deg);
        if gain_error != 0.0 || phase_deg != 0.0 {
            // The probe interface's demodulator: Q = (1 + ε)·(Q·cos φ + I·sin φ).
            let (sin, cos) = phase_deg.to_radians().sin_cos();
            let (g, sin, cos) = ((1.0 + gain_error) as f32, sin as f32, cos as f32);
            for v in &mut self.buf {
                v[1] = g * (v[1] * cos + v[0] * sin);
            }
        }
        if self.cfg.iq_swapped {
            // (I, Q) → (Q, I) is i·conj(I + iQ): every shift changes sign.
            for v in &mut self.buf {
                v.swap(0, 1);
            }
        }
        let clipped = quantise(&self.buf, &mut self.qbuf);

        let missing_kind = if unplugged {
            Some(ImpairmentKind::Unplugged)
        } else if dropped {
            Some(ImpairmentKind::Gap)
        } else {
            None
        };
        let block_kind = match missing_kind {
            Some(k) => {
                extend_range(&mut self.missing, n0, n1);
                self.extend_impairment(k, t0, t1);
                Some(k)
            }
            None => {
                let flags = if clipped { FLAG_CLIPPED } else { 0 };
                self.out.push_back(Payload::Iq(IqBlock {
                    first_sample: n0,
                    flags,
                    samples: self.qbuf.clone(),
                }));
                if clipped {
                    extend_range(&mut self.clipped, n0, n1);
                    self.extend_impairment(ImpairmentKind::Clipped, t0, t1);
                    Some(ImpairmentKind::Clipped)
                } else {
                    None
                }
            }
        };
        self.last_block_kind = block_kind;
        self.next_sample = n1;

        self.pending_beats.extend(self.timeline.take_fresh());
        self.finalise_beats(t1);
        self.timeline.prune(t1);
        self.diathermy.drop_before(t1 - 1.0);
        self.gaps.drop_before(t1 - 1.0);
        self.clipping.drop_before(t1 - 1.0);
    }

    fn current_info(&self, t_s: f64) -> ProbeInfo {
        let mut info = self.info.clone();
        info.minutes_used = self
            .cfg
            .minutes_used
            .saturating_add((t_s / 60.0).floor() as u32);
        info
    }

    /// Turns pending beats whose cycle has been fully generated into truth.
    fn finalise_beats(&mut self, now_s: f64) {
        while let Some(b) = self.pending_beats.front() {
            if b.next_onset_s > now_s {
                break;
            }
            let fs = self.fs;
            let overlaps = |ranges: &VecDeque<(u64, u64)>, a_s: f64, b_s: f64| {
                ranges.iter().any(|&(s, e)| {
                    let first_s = s as f64 / fs;
                    let last_s = (e - 1) as f64 / fs;
                    first_s <= b_s && last_s >= a_s
                })
            };
            let reason = if overlaps(&self.missing, b.onset_s, b.next_onset_s) {
                Some("gap")
            } else if self
                .diathermy_ivs
                .iter()
                .any(|iv| iv.overlaps(b.onset_s, b.end_s()))
            {
                Some("interference")
            } else if overlaps(&self.clipped, b.onset_s, b.end_s()) {
                Some("clipped")
            } else {
                None
            };
            let truth = TruthBeat::from_plan(b, self.sv_ml_per_cm, reason);
            if self.truth.len() >= MAX_UNDRAINED {
                self.truth.pop_front();
            }
            self.truth.push_back(truth);
            self.pending_beats.pop_front();
        }
        // Forget impairments that no pending beat can reach.
        let horizon_s = self.pending_beats.front().map_or(now_s, |b| b.onset_s) - 1.0;
        let fs = self.fs;
        while self
            .missing
            .front()
            .is_some_and(|&(_, e)| (e as f64 / fs) < horizon_s)
        {
            self.missing.pop_front();
        }
        while self
            .clipped
            .front()
            .is_some_and(|&(_, e)| (e as f64 / fs) < horizon_s)
        {
            self.clipped.pop_front();
        }
        while self
            .diathermy_ivs
            .front()
            .is_some_and(|iv| iv.end_s < horizon_s)
        {
            self.diathermy_ivs.pop_front();
        }
    }
}

fn extend_range(ranges: &mut VecDeque<(u64, u64)>, n0: u64, n1: u64) {
    if let Some(last) = ranges.back_mut()
        && last.1 == n0
    {
        last.1 = n1;
        return;
    }
    ranges.push_back((n0, n1));
}

impl Iterator for VirtualProbe {
    type Item = Payload;
    fn next(&mut self) -> Option<Payload> {
        self.next_payload()
    }
}

#[cfg(test)]
mod firmware_tests {
    /// The virtual probe's PROBE_INFO names it, and nothing else is taken
    /// for it.
    #[test]
    fn the_virtual_probe_names_itself_in_its_firmware() {
        assert!(super::is_simulator_firmware(super::FIRMWARE));
        assert!(!super::is_simulator_firmware("1.0"));
        assert!(!super::is_simulator_firmware(""));
    }
}
