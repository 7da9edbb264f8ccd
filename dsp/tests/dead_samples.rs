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
