//! The pipeline fed arbitrary samples, block lengths, sample indices, flags,
//! marks and settings (`support/adversarial.rs`, also the fuzz target
//! `pipeline`): no panic, and every promise of its outputs kept.

#[path = "support/adversarial.rs"]
mod adversarial;

use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// Random programs: mostly a few seconds of the virtual probe's beats,
    /// damaged, cut and flagged at random.
    #[test]
    fn any_samples_and_structure_keep_the_pipelines_promises(
        data in prop::collection::vec(any::<u8>(), 0..1200)
    ) {
        adversarial::exercise(&data);
    }

    /// Long programs of whole blocks: enough undamaged signal between the
    /// damage for beats to be accepted, so that the acceptance checks run.
    #[test]
    fn beats_around_damage_are_accepted_only_when_clean(
        ops in prop::collection::vec((0u8..16, any::<u8>(), any::<[u8; 12]>()), 20..120)
    ) {
        // 8 kHz, 4 MHz, 45°, the notch on, from sample 0.
        let mut data = vec![0u8, 0, 0, 0, 0, 0];
        for (op, len, args) in ops {
            // Undamaged blocks of 50–800 ms most of the time; the other
            // operations with 12 bytes of arguments (the samples of a
            // damaged range, where it needs more, come from what follows).
            data.extend_from_slice(&[if op < 8 { 0 } else { op - 7 }, 3, len]);
            if op >= 8 {
                data.extend_from_slice(&args);
            }
        }
        adversarial::exercise(&data);
    }
}

/// The second property must really accept beats, or its acceptance checks
/// prove nothing: a clean program of 10 s accepts most of its beats.
#[test]
fn a_clean_program_accepts_beats() {
    let mut data = vec![0u8, 0, 0, 0, 0, 0];
    for _ in 0..50 {
        // op 0 (no damage), length 400 × (1 + 4) samples at 8 kHz = 250 ms.
        data.extend_from_slice(&[0, 3, 4]);
    }
    let (beats, accepted) = adversarial::exercise(&data);
    assert!(beats >= 12, "{beats} beats");
    assert!(accepted >= 10, "{accepted} of {beats} accepted");
}
