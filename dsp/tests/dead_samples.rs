//! An interface may stream samples that do not move at all — zeros while
//! the probe is unplugged or a fault is latched, or a constant — without
//! marking them. Such a stretch carries no signal, and its noise floor, far
//! under any receiver's, must not become the interference detector's
//! baseline: the baseline follows the floor down at once and rises at
//! 1 dB/s, and before the pipeline recognised dead columns 5 s of zeros had
//! every beat of the following minute rejected as interference.

mod common;

use common::{clear_beats_accepted, reasons, run_sim_altered, sim};
use odm_device_io::frame::Payload;
use odm_dsp::PipelineConfig;

#[test]
fn a_stretch_of_samples_that_do_not_move_is_a_gap_not_a_new_noise_floor() {
    // 5 s from 20 s (20 kHz) of zeros, or of a constant.
    let (from, to) = (400_000_u64, 500_000_u64);
    let (from_s, to_s) = (20.0, 25.0);
    for (label, value) in [("zeros", [0_i16, 0]), ("a constant", [7, -3])] {
        let run = run_sim_altered(
            sim(21, 90.0, 30.0, 75.0),
            PipelineConfig::default(),
            false,
            |p| {
                if let Payload::Iq(b) = p
                    && (from..to).contains(&b.first_sample)
                {
                    b.samples.iter_mut().for_each(|s| *s = value);
                }
            },
        );
        let beats = &run.out.beats;
        for b in beats {
            if b.onset_s < to_s && b.next_onset_s > from_s {
                assert!(!b.accepted, "{label}: accepted across: {b:?}");
            }
        }
        let (found, clear) = clear_beats_accepted(&run, &[(from_s, to_s)]);
        assert!(
            found * 100 >= clear * 97,
            "{label}: {found} of {clear} clear beats accepted: {}",
            reasons(beats)
        );
        // Samples kept coming: nothing was lost.
        assert!(!run.out.reported_a_gap(), "{label}: {:?}", run.out.statuses);
    }
}

/// Found by the independent reference generator (tools/refsig): a gain step
/// far past full scale holds I and Q at the rails, so a column's samples
/// barely move and its floor reads dead. Those samples are clipped, and are
/// flagged so: the beats across them are `clipped`, not a `gap` in the
/// signal that was never missing.
#[test]
fn samples_held_at_the_rails_are_clipped_not_a_gap() {
    use odm_device_io::frame::FLAG_CLIPPED;
    use odm_dsp::RejectReason;
    // 0.6 s from 20 s (20 kHz), the input ×40 into the 16-bit rails.
    let (from, to) = (400_000_u64, 412_000_u64);
    let (from_s, to_s) = (20.0, 20.6);
    let run = run_sim_altered(
        sim(23, 40.0, 30.0, 75.0),
        PipelineConfig::default(),
        false,
        |p| {
            if let Payload::Iq(b) = p
                && (from..to).contains(&b.first_sample)
            {
                for s in b.samples.iter_mut() {
                    *s = s.map(|x| (i32::from(x) * 40).clamp(-32768, 32767) as i16);
                }
                b.flags |= FLAG_CLIPPED;
            }
        },
    );
    let across: Vec<_> = run
        .out
        .beats
        .iter()
        .filter(|b| b.onset_s < to_s && b.next_onset_s > from_s)
        .collect();
    assert!(!across.is_empty());
    for b in &across {
        assert!(!b.accepted, "accepted across the clipping: {b:?}");
        assert_eq!(
            b.reject_reason,
            Some(RejectReason::Clipped),
            "{}",
            reasons(&run.out.beats)
        );
    }
    let (found, clear) = clear_beats_accepted(&run, &[(from_s, to_s)]);
    assert!(found * 100 >= clear * 97, "{found} of {clear}");
    assert!(!run.out.reported_a_gap(), "{:?}", run.out.statuses);
}
