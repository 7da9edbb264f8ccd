//! Fuzz target: the DSP pipeline fed outside samples. The input is a small
//! program (stream parameters, then blocks of a virtual probe's beats,
//! damaged, cut, flagged and marked at the fuzzer's choice) run by
//! `dsp/tests/support/adversarial.rs`, which the proptest
//! `dsp/tests/adversarial.rs` runs too; it panics when an output breaks a
//! promise of the pipeline (that file's doc lists them).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../dsp/tests/support/adversarial.rs"]
mod adversarial;

fuzz_target!(|data: &[u8]| {
    adversarial::exercise(data);
});
