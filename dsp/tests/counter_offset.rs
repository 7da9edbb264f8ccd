//! An interface's sample counter runs from its power-on, not from the
//! recording: `first_sample` may be anywhere in `u64`. The analysis must not
//! depend on where it started. With the detector on stream times (5·10⁷ s
//! for a counter at 2⁴⁰), ties between hop-spaced times rounded differently
//! than at 50 s: near a diathermy burst a 60 s recording gained a rejected
//! beat and five later flow times moved by up to 1.8 ms.

mod common;

use common::Collect;
use odm_device_io::frame::Payload;
use odm_dsp::{Pipeline, PipelineConfig, Status};
use odm_simulator::{SimConfig, VirtualProbe};

/// The virtual probe's payloads with every sample index (blocks' and
/// events') moved by `offset`.
fn run(cfg: &SimConfig, offset: u64) -> Collect {
    let mut probe = VirtualProbe::new(cfg.clone()).expect("sim");
    let mut pipe: Option<Pipeline> = None;
    let mut out = Collect {
        keep_envelope: true,
        ..Collect::default()
    };
    while let Some(mut p) = probe.next_payload() {
        match &mut p {
            Payload::Iq(b) => b.first_sample += offset,
            Payload::Event(e) => e.at_sample += offset,
            _ => {}
        }
        common::feed(&mut pipe, PipelineConfig::default(), p, &mut out);
    }
    if let Some(p) = pipe.as_mut() {
        p.finish(&mut out);
    }
    out
}

#[test]
fn the_analysis_does_not_depend_on_where_the_sample_counter_started() {
    let cfg = common::with_impairments(common::sim(3, 60.0, 30.0, 75.0));
    let fs = f64::from(cfg.sample_rate_hz);
    let base = run(&cfg, 0);
    assert!(base.beats.len() >= 60, "{} beats", base.beats.len());
    for offset in [1u64 << 40, 123_456_789_012_345] {
        let shifted = run(&cfg, offset);
        let offset_s = offset as f64 / fs;
        assert_eq!(shifted.beats.len(), base.beats.len(), "offset {offset}");
        for (a, b) in base.beats.iter().zip(&shifted.beats) {
            // Times move by the offset (to the rounding of 10⁹-second
            // times); everything measured stays exactly the same.
            for (ta, tb) in [
                (a.onset_s, b.onset_s),
                (a.peak_s, b.peak_s),
                (a.end_s, b.end_s),
                (a.next_onset_s, b.next_onset_s),
            ] {
                let moved = (tb - offset_s - ta).abs() < 1e-6 || (ta.is_nan() && tb.is_nan());
                assert!(moved, "beat {}: {ta} vs {tb}", a.index);
            }
            for (va, vb) in [
                (a.ft_ms, b.ft_ms),
                (a.sd_cm, b.sd_cm),
                (a.pv_cm_s, b.pv_cm_s),
                (a.hr_bpm, b.hr_bpm),
                (a.quality, b.quality),
            ] {
                let same = va == vb || (va.is_nan() && vb.is_nan());
                assert!(same, "beat {}: {va} vs {vb}", a.index);
            }
            assert_eq!(
                (a.accepted, a.reject_reason, a.completed_by_sample + offset),
                (b.accepted, b.reject_reason, b.completed_by_sample),
                "beat {}",
                a.index
            );
        }
        assert_eq!(shifted.envelope.len(), base.envelope.len());
        for (a, b) in base.envelope.iter().zip(&shifted.envelope) {
            assert!((b.0 - offset_s - a.0).abs() < 1e-6 && a.1 == b.1);
        }
        let kinds = |c: &Collect| {
            c.statuses
                .iter()
                .map(std::mem::discriminant)
                .collect::<Vec<_>>()
        };
        assert_eq!(kinds(&shifted), kinds(&base));
        assert!(
            base.statuses
                .iter()
                .any(|s| matches!(s, Status::Gap { .. }))
        );
    }
}
