//! The virtual probe's stream and truth: order, continuity, determinism,
//! truth consistency and impairments reflected in the truth.

mod common;

use common::{iq_blocks, run};
use odm_device_io::{Payload, encode_frame, event_code};
use odm_simulator::{
    ImpairmentKind, ImpairmentSchedule, Interval, ScheduleSegment, SimConfig, VirtualProbe,
};

fn short(seconds: f64) -> SimConfig {
    SimConfig {
        duration_s: Some(seconds),
        scatterer_count: 24,
        ..SimConfig::default()
    }
}

fn bytes_of(payloads: &[Payload]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, p) in payloads.iter().enumerate() {
        encode_frame(i as u16, p, &mut out).unwrap();
    }
    out
}

#[test]
fn probe_info_comes_first_and_at_least_once_per_second() {
    let r = run(SimConfig {
        block_len: 160, // does not divide 20 000: exercises the half-second step
        ..short(5.0)
    });
    assert!(matches!(r.payloads[0], Payload::ProbeInfo(_)));
    let fs = 20_000u64;
    let mut last_info_at = 0u64;
    let mut next_sample = 0u64;
    for p in &r.payloads {
        match p {
            Payload::ProbeInfo(info) => {
                assert_eq!(info.sample_rate_hz, 20_000);
                assert_eq!(info.beam_angle_cdeg, 4500);
                assert_eq!(info.serial_str(), "SIM-0001");
                last_info_at = next_sample;
            }
            Payload::Iq(b) => {
                assert!(
                    b.end_sample() - last_info_at <= fs,
                    "no PROBE_INFO for more than 1 s before sample {}",
                    b.end_sample()
                );
                next_sample = b.end_sample();
            }
            _ => {}
        }
    }
}

#[test]
fn first_sample_is_continuous_and_duration_exact() {
    let r = run(short(3.0));
    let blocks = iq_blocks(&r.payloads);
    let mut next = 0;
    for b in &blocks {
        assert_eq!(b.first_sample, next);
        assert_eq!(b.samples.len(), 200);
        assert_eq!(b.flags, 0);
        next = b.end_sample();
    }
    assert_eq!(next, 60_000);
}

#[test]
fn same_seed_gives_identical_bytes_and_different_seed_differs() {
    let a = bytes_of(&run(short(2.0)).payloads);
    let b = bytes_of(&run(short(2.0)).payloads);
    assert_eq!(a, b);
    let c = bytes_of(
        &run(SimConfig {
            seed: 1,
            ..short(2.0)
        })
        .payloads,
    );
    assert_eq!(a.len(), c.len());
    assert_ne!(a, c);
}

#[test]
fn changing_snr_does_not_change_the_beats() {
    let a = run(short(10.0)).truth;
    let b = run(SimConfig {
        snr_db: Some(5.0),
        ..short(10.0)
    })
    .truth;
    assert!(!a.is_empty());
    assert_eq!(a, b);
}

#[test]
fn truth_fields_follow_their_definitions() {
    let r = run(SimConfig {
        ectopic_rate: 0.1,
        ..short(40.0)
    });
    let t = &r.truth;
    assert!(t.len() > 35, "{} beats", t.len());
    let cfg = r.probe.config();
    let area_cm2 = std::f64::consts::PI * (cfg.aortic_diameter_mm / 20.0).powi(2);
    for (i, b) in t.iter().enumerate() {
        assert_eq!(b.index, i as u64);
        assert!((b.ft_ms - (b.end_s - b.onset_s) * 1000.0).abs() < 1e-9);
        assert!((b.cycle_s - (b.next_onset_s - b.onset_s)).abs() < 1e-12);
        assert!((b.hr_bpm - 60.0 / b.cycle_s).abs() < 1e-9);
        assert!((b.ftc_ms - b.ft_ms / b.cycle_s.sqrt()).abs() < 1e-9);
        assert!((b.ma_cm_s2 - b.pv_cm_s / (b.peak_s - b.onset_s)).abs() < 1e-9);
        assert!((b.md_cm_min - b.sd_cm * b.hr_bpm).abs() < 1e-9);
        assert!((b.sv_ml - b.sd_cm * area_cm2).abs() < 1e-9);
        assert!((b.co_l_min - b.sv_ml * b.hr_bpm / 1000.0).abs() < 1e-12);
        assert!(b.onset_s < b.peak_s && b.peak_s < b.end_s && b.end_s < b.next_onset_s);
        assert!(b.accepted && b.reject_reason.is_none() && b.quality == 1.0);
        // SD is the integral of the envelope (midpoint rule, independent of the closed form).
        let n = 4000;
        let dt = (b.end_s - b.onset_s) / n as f64;
        let sd: f64 = (0..n)
            .map(|k| b.velocity_cm_s(b.onset_s + (k as f64 + 0.5) * dt) * dt)
            .sum();
        assert!(
            (sd - b.sd_cm).abs() < 1e-4 * b.sd_cm,
            "beat {i}: {sd} vs {}",
            b.sd_cm
        );
        // PV is the maximum of the envelope.
        let vmax = (0..n)
            .map(|k| b.velocity_cm_s(b.onset_s + k as f64 * dt))
            .fold(0.0, f64::max);
        assert!(vmax <= b.pv_cm_s + 1e-9 && vmax > 0.99 * b.pv_cm_s);
        if let Some(next) = t.get(i + 1) {
            assert_eq!(b.next_onset_s, next.onset_s);
        }
    }
    assert!(t.iter().any(|b| b.ectopic));
    // Only complete cycles: the last one ends inside the stream.
    assert!(t.last().unwrap().next_onset_s <= 40.0);
}

#[test]
fn probe_envelope_matches_truth_beats() {
    let cfg = SimConfig {
        reverse_flow_cm_s: 0.0,
        ..short(12.0)
    };
    let mut probe = VirtualProbe::new(cfg).unwrap();
    let mut truth = Vec::new();
    let mut max_err: f64 = 0.0;
    while probe.next_payload().is_some() {
        for b in probe.take_truth_beats() {
            for k in 0..200 {
                let t = b.onset_s + (b.next_onset_s - b.onset_s) * k as f64 / 200.0;
                let v = probe.true_velocity_cm_s(t).unwrap();
                max_err = max_err.max((v - b.velocity_cm_s(t)).abs());
            }
            truth.push(b);
        }
    }
    assert!(truth.len() > 10);
    assert!(max_err < 1e-9, "{max_err}");
}

#[test]
fn heart_rate_extremes_stay_valid() {
    for hr in [40.0, 180.0] {
        let r = run(SimConfig {
            hr_bpm: hr,
            ..short(30.0)
        });
        let t = &r.truth;
        let mean_cycle = t.iter().map(|b| b.cycle_s).sum::<f64>() / t.len() as f64;
        let mean_hr = 60.0 / mean_cycle;
        assert!((mean_hr - hr).abs() < 0.05 * hr, "hr {hr}: mean {mean_hr}");
        for b in t {
            assert!(b.ft_ms > 80.0 && b.end_s < b.next_onset_s, "{b:?}");
            assert!(b.pv_cm_s > 20.0 && b.pv_cm_s < 250.0, "{b:?}");
            assert!((b.ftc_ms - 350.0).abs() < 40.0, "hr {hr}: ftc {}", b.ftc_ms);
        }
    }
}

#[test]
fn schedule_steps_show_in_the_truth() {
    let r = run(SimConfig {
        hr_variability: 0.0,
        svv_pct: 0.0,
        sd_variability: 0.0,
        schedule: vec![ScheduleSegment {
            start_s: 15.0,
            hr_bpm: Some(120.0),
            sv_ml: Some(50.0),
            ftc_ms: Some(320.0),
            pv_cm_s: None,
        }],
        ..short(30.0)
    });
    let cfg = r.probe.config();
    for b in &r.truth {
        let (hr, sv, ftc) = if b.onset_s >= 15.0 {
            (120.0, 50.0, 320.0)
        } else {
            (75.0, 70.0, 350.0)
        };
        if b.next_onset_s < 15.0 || b.onset_s >= 15.0 {
            assert!((b.hr_bpm - hr).abs() < 1e-6, "{b:?}");
        }
        assert!((b.sv_ml - sv).abs() < 1e-6 * sv, "{b:?}");
        // FT follows FTc on the nominal cycle (Bazett).
        let ft_nominal = ftc * (60.0f64 / hr).sqrt();
        assert!((b.ft_ms - ft_nominal).abs() < 0.06 * ft_nominal, "{b:?}");
        let _ = cfg;
    }
}

#[test]
fn diathermy_is_loud_and_rejects_the_beats_it_touches() {
    let iv = Interval {
        start_s: 4.0,
        end_s: 7.0,
    };
    let r = run(SimConfig {
        diathermy: ImpairmentSchedule::Fixed(vec![iv]),
        ..short(12.0)
    });
    let fs = 20_000.0;
    let mut in_pow = 0.0;
    let mut in_n = 0.0;
    let mut out_pow = 0.0;
    let mut out_n = 0.0;
    for b in iq_blocks(&r.payloads) {
        let t = b.first_sample as f64 / fs;
        let p: f64 = b
            .samples
            .iter()
            .map(|&[i, q]| f64::from(i).powi(2) + f64::from(q).powi(2))
            .sum::<f64>()
            / b.samples.len() as f64;
        if t > 4.1 && t < 6.9 {
            in_pow += p;
            in_n += 1.0;
        } else if !(3.9..=7.1).contains(&t) {
            out_pow += p;
            out_n += 1.0;
        }
    }
    // Clutter (30 dB) dominates outside; diathermy is 35 dB over blood.
    let ratio_db = 10.0 * ((in_pow / in_n) / (out_pow / out_n)).log10();
    assert!(
        ratio_db > 3.0,
        "diathermy only {ratio_db:.1} dB above baseline"
    );
    assert!(
        r.impairments
            .iter()
            .any(|i| i.kind == ImpairmentKind::Diathermy && i.start_s == 4.0)
    );
    let mut rejected = 0;
    for b in &r.truth {
        let touches = b.onset_s <= iv.end_s && b.end_s >= iv.start_s;
        assert_eq!(b.accepted, !touches, "{b:?}");
        if touches {
            assert_eq!(b.reject_reason.as_deref(), Some("interference"));
            rejected += 1;
        }
    }
    assert!(rejected >= 3);
}

#[test]
fn gaps_make_first_sample_jump_and_reject_their_cycles() {
    let r = run(SimConfig {
        gaps: ImpairmentSchedule::Random {
            mean_interval_s: 4.0,
            min_duration_s: 0.02,
            max_duration_s: 0.3,
        },
        ..short(30.0)
    });
    let fs = 20_000.0;
    let blocks = iq_blocks(&r.payloads);
    let mut missing = Vec::new();
    let mut next = 0;
    for b in &blocks {
        assert!(b.first_sample >= next);
        if b.first_sample > next {
            missing.push((next, b.first_sample));
        }
        next = b.end_sample();
    }
    let gaps: Vec<_> = r
        .impairments
        .iter()
        .filter(|i| i.kind == ImpairmentKind::Gap)
        .collect();
    assert!(gaps.len() >= 3, "{} gaps", gaps.len());
    // The reported gap intervals are exactly the jumps in first_sample.
    let trailing = usize::from(next < 600_000);
    assert_eq!(gaps.len(), missing.len() + trailing);
    for (g, (a, b)) in gaps.iter().zip(&missing) {
        assert_eq!(g.start_s, *a as f64 / fs);
        assert_eq!(g.end_s, *b as f64 / fs);
    }
    for b in &r.truth {
        let hit = missing
            .iter()
            .any(|&(s, e)| s as f64 / fs <= b.next_onset_s && (e - 1) as f64 / fs >= b.onset_s);
        assert_eq!(!b.accepted, hit, "{b:?}");
        if hit {
            assert_eq!(b.reject_reason.as_deref(), Some("gap"));
        }
    }
}

#[test]
fn clipping_saturates_flags_blocks_and_rejects_beats() {
    let iv = Interval {
        start_s: 3.0,
        end_s: 5.0,
    };
    let r = run(SimConfig {
        clipping: ImpairmentSchedule::Fixed(vec![iv]),
        ..short(10.0)
    });
    let fs = 20_000.0;
    let mut flagged = Vec::new();
    for b in iq_blocks(&r.payloads) {
        let saturated = b
            .samples
            .iter()
            .any(|s| s.iter().any(|&x| x == i16::MAX || x == i16::MIN));
        assert_eq!(b.clipped(), saturated, "flag must match saturation");
        if b.clipped() {
            let t = b.first_sample as f64 / fs;
            assert!((2.99..5.0).contains(&t), "clipped block at {t}");
            flagged.push((b.first_sample, b.end_sample()));
        }
    }
    assert!(flagged.len() > 100, "{} clipped blocks", flagged.len());
    let gain_events: Vec<_> = r
        .payloads
        .iter()
        .filter_map(|p| match p {
            Payload::Event(e) if e.code == event_code::GAIN_CHANGED => Some(e),
            _ => None,
        })
        .collect();
    assert_eq!(gain_events.len(), 2);
    assert_eq!(gain_events[0].at_sample, 60_000);
    assert_eq!(gain_events[1].at_sample, 100_000);
    for b in &r.truth {
        let hit = flagged
            .iter()
            .any(|&(s, e)| s as f64 / fs <= b.end_s && (e - 1) as f64 / fs >= b.onset_s);
        assert_eq!(!b.accepted, hit, "{b:?}");
        if hit {
            assert_eq!(b.reject_reason.as_deref(), Some("clipped"));
        }
    }
    assert!(r.truth.iter().any(|b| !b.accepted));
}

#[test]
fn clipping_saturates_even_without_clutter() {
    let r = run(SimConfig {
        clutter_db: None,
        clipping: ImpairmentSchedule::Fixed(vec![Interval {
            start_s: 1.0,
            end_s: 2.0,
        }]),
        ..short(3.0)
    });
    let blocks = iq_blocks(&r.payloads);
    let flagged = blocks.iter().filter(|b| b.clipped()).count();
    // Without clutter the diastolic blood echo sits near 0 Hz with a slowly
    // changing, Rayleigh-distributed amplitude, so not every block saturates;
    // systolic ones do.
    assert!(flagged >= 25, "{flagged} clipped blocks of 100");
    for b in blocks {
        let t = b.first_sample as f64 / 20_000.0;
        assert!(!b.clipped() || (1.0..2.0).contains(&t), "clipped at {t}");
    }
}

#[test]
fn unplug_sends_events_stops_samples_and_reinforms() {
    let r = run(SimConfig {
        unplug: Some(Interval {
            start_s: 2.0,
            end_s: 3.5,
        }),
        button_presses_s: vec![1.0],
        ..short(6.0)
    });
    let mut seen = Vec::new();
    let mut after_replug_info = false;
    for p in &r.payloads {
        match p {
            Payload::Event(e) => seen.push((e.code, e.at_sample)),
            Payload::ProbeInfo(_)
                if seen.last().map(|s| s.0) == Some(event_code::PROBE_PLUGGED) =>
            {
                after_replug_info = true;
            }
            Payload::Iq(b) => {
                let t0 = b.first_sample as f64 / 20_000.0;
                assert!(!(2.0..3.5).contains(&t0), "IQ while unplugged at {t0}");
            }
            _ => {}
        }
    }
    assert_eq!(
        seen,
        vec![
            (event_code::BUTTON, 20_000),
            (event_code::PROBE_UNPLUGGED, 40_000),
            (event_code::PROBE_PLUGGED, 70_000)
        ]
    );
    assert!(after_replug_info);
    assert!(
        r.truth
            .iter()
            .filter(|b| b.next_onset_s >= 2.0 && b.onset_s <= 3.5)
            .all(|b| b.reject_reason.as_deref() == Some("gap"))
    );
}

#[test]
fn unlimited_probe_runs_lazily() {
    let mut probe = VirtualProbe::new(SimConfig {
        scatterer_count: 8,
        ..SimConfig::default()
    })
    .unwrap();
    let mut n = 0;
    let mut beats = 0;
    while probe.time_s() < 60.0 {
        assert!(probe.next_payload().is_some());
        beats += probe.take_truth_beats().len();
        n += 1;
    }
    assert!(n > 6000 && beats > 60);
    // Envelope queries reach 30 s back, not further.
    assert!(probe.true_velocity_cm_s(59.0).is_some());
    assert!(probe.true_velocity_cm_s(1.0).is_none());
}

#[test]
fn bad_configuration_is_an_error_naming_the_field() {
    let e = VirtualProbe::new(SimConfig {
        hr_bpm: 300.0,
        ..SimConfig::default()
    })
    .unwrap_err();
    assert!(e.to_string().contains("hr_bpm"), "{e}");
    let e = VirtualProbe::new(SimConfig {
        sample_rate_hz: 8000,
        phantom_cm_s: Some(150.0),
        ..SimConfig::default()
    })
    .unwrap_err();
    assert!(e.to_string().contains("phantom_cm_s"), "{e}");
}
