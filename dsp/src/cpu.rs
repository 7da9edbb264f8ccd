//! Wider vectors where the CPU has them, chosen at run time.
//!
//! The build targets baseline x86-64 (SSE2), so that one binary runs on any
//! x86-64 monitor. On a CPU with AVX2 the stages that gain from it (the
//! spectrum column, the envelope, the narrowband-line and tone detectors,
//! and the noise floor's counting median) run a second copy of their code
//! compiled for it: 256-bit lanes and three-operand forms. `Pipeline::push` runs 13 % fewer instructions and
//! the envelope 40 % less time (docs/performance.md, "The stages' AVX2
//! copies"). The wall filter has none: its AVX2 copy ran fewer
//! instructions but took 15–35 % longer, its recursion being bound by
//! latency, not by instruction count.
//!
//! Only AVX2 is enabled. Rust never fuses a multiply and an add into one
//! FMA by itself, nor reorders floating-point sums, so a copy with wider
//! lanes does the same operations in the same order and gives the same
//! output bit for bit (`dsp/tests/wide_vectors.rs`). The rest of x86-64-v3
//! (FMA, BMI1/2, LZCNT) saved a further 0.1 % of instructions: left out.
use std::sync::atomic::{AtomicBool, Ordering};

/// Set to keep the baseline copies even where AVX2 is available.
static BASELINE_ONLY: AtomicBool = AtomicBool::new(false);

/// Whether the hot stages run their AVX2 copies: the CPU has AVX2 and
/// [`set_wide_vectors`] has not turned them off.
pub fn wide_vectors() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        !BASELINE_ONLY.load(Ordering::Relaxed) && std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Allows (`true`, the default) or forbids the AVX2 copies, for every
/// pipeline in the process. For comparing the two (tests, benchmarks);
/// the output is the same either way.
pub fn set_wide_vectors(allowed: bool) {
    BASELINE_ONLY.store(!allowed, Ordering::Relaxed);
}

/// Defines a method that runs `$body` (an `#[inline(always)]` method of
/// the same arguments) compiled for AVX2 where [`wide_vectors`] says so,
/// and compiled for the baseline otherwise; `$avx2` names the AVX2 copy.
/// The body and what it inlines are compiled twice; calls it does not
/// inline run their baseline code in either copy.
///
/// The only unsafe code in the crate: calling the AVX2 copy after checking,
/// at run time, that the CPU has AVX2.
macro_rules! wide_method {
    (
        $(#[$attr:meta])*
        $vis:vis fn $name:ident / $avx2:ident (&mut self $(, $arg:ident : $ty:ty)* $(,)?) $(-> $ret:ty)?
        => $body:ident
    ) => {
        $(#[$attr])*
        #[allow(unsafe_code)]
        $vis fn $name(&mut self $(, $arg: $ty)*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            if $crate::cpu::wide_vectors() {
                // SAFETY: `wide_vectors` checked at run time that this CPU
                // has AVX2, the only feature the copy is compiled for.
                return unsafe { self.$avx2($($arg),*) };
            }
            self.$body($($arg),*)
        }

        #[doc = concat!("The AVX2 copy of [`Self::", stringify!($name), "`] ([`crate::cpu`]).")]
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2")]
        fn $avx2(&mut self $(, $arg: $ty)*) $(-> $ret)? {
            self.$body($($arg),*)
        }
    };
}
pub(crate) use wide_method;
