//! A probe interface may mute its transmitter (IQ flags bit 1): the samples
//! keep coming but carry no echo, only receiver noise. A beat measured
//! across such a stretch has a flow that stops where the transmitter did,
//! so its end, peak and stroke distance are wrong; the pipeline treats the
//! muted span as a gap in the signal (`Pipeline::push_flagged`). Before it
//! did, muted samples went through the pipeline: quiet ones lowered the
//! noise floor, and the interference detector then rejected seconds of
//! beats after every mute; ones that kept the echo let beats across a mute
//! be accepted.

mod common;

use common::{clear_beats_accepted, reasons, run_sim_altered, sim};
use odm_device_io::frame::{FLAG_TX_MUTED, Payload};
use odm_dsp::{PipelineConfig, RejectReason};

/// Spans muted: 120 ms every 2.9 s from 5.3 s on, so that over the run
/// they fall in every phase of the cycle, systole included.
fn muted_spans(duration_s: f64) -> Vec<(f64, f64)> {
    (0..)
        .map(|k| 5.3 + 2.9 * f64::from(k))
        .take_while(|&t| t + 0.12 < duration_s - 2.0)
        .map(|t| (t, t + 0.12))
        .collect()
}

#[test]
fn no_beat_is_accepted_across_a_muted_transmitter() {
    // What a muted block holds differs between interfaces: nearly nothing,
    // or the receiver's noise with a faint echo (here the signal 30 dB
    // down), or the echo still (the flag set on a block the mute began in).
    for (label, scale) in [("nearly nothing", 0), ("faint", 1), ("unchanged", 32)] {
        check_muted_spans(label, scale);
    }
}

/// Mutes [`muted_spans`], their samples multiplied by `scale`/32 (0: a
/// little noise only), and checks the beats.
fn check_muted_spans(label: &str, scale: i32) {
    let duration_s = 60.0;
    let spans = muted_spans(duration_s);
    let fs = 20_000.0;
    let in_span = |t: f64| spans.iter().any(|&(a, b)| t >= a && t < b);
    let run = run_sim_altered(
        sim(21, duration_s, 30.0, 75.0),
        PipelineConfig::default(),
        false,
        |p| {
            if let Payload::Iq(b) = p {
                let t = b.first_sample as f64 / fs;
                if in_span(t) {
                    b.flags |= FLAG_TX_MUTED;
                    for (k, s) in b.samples.iter_mut().enumerate() {
                        let n = (b.first_sample as usize + k).wrapping_mul(2_654_435_761);
                        let noise = [(n % 7) as i32 - 3, ((n >> 8) % 7) as i32 - 3];
                        for (x, e) in s.iter_mut().zip(noise) {
                            *x = if scale == 0 {
                                e as i16
                            } else {
                                (i32::from(*x) * scale / 32) as i16
                            };
                        }
                    }
                }
            }
        },
    );
    let overlaps = |a: f64, b: f64| spans.iter().any(|&(s, e)| a < e && s < b);
    let beats = &run.out.beats;
    let mut rejected_as_gap = 0;
    for b in beats {
        if overlaps(b.onset_s, b.next_onset_s) {
            assert!(!b.accepted, "{label}: accepted across a muted span: {b:?}");
            rejected_as_gap += usize::from(b.reject_reason == Some(RejectReason::Gap));
        }
    }
    // Most spans were inside some detected cycle, and those beats say why.
    assert!(
        rejected_as_gap * 2 >= spans.len(),
        "{label}: {}",
        reasons(beats)
    );
    // No samples were lost: no gap is reported.
    assert!(!run.out.reported_a_gap(), "{label}: {:?}", run.out.statuses);
    // The beats clear of the muted spans are found and accepted.
    let (found, clear) = clear_beats_accepted(&run, &spans);
    assert!(
        found * 100 >= clear * 97,
        "{label}: {found} of {clear} clear beats accepted: {}",
        reasons(beats)
    );
}
