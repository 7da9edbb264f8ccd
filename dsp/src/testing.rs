//! Helpers shared by the unit tests.

/// Uniform deviates in (0, 1) from a 64-bit linear congruential generator
/// (Knuth's MMIX constants): seeded and reproducible, no dependency.
pub(crate) fn uniform(seed: u64) -> impl FnMut() -> f64 {
    let mut state = seed;
    move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
}
