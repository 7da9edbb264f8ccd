//! A counting global allocator for the tests that prove the real-time path
//! neither allocates nor frees after start-up (architecture.md, "The
//! real-time path"): `dsp/tests/no_alloc.rs` for `Pipeline::push`,
//! `monitor-ui/tests/no_alloc.rs` for the monitor's DSP-thread engine.
//!
//! A test binary installs it and wraps the code under test in [`count`]:
//!
//! ```
//! #[global_allocator]
//! static GLOBAL: odm_alloc_count::CountingAllocator = odm_alloc_count::CountingAllocator;
//!
//! fn main() {
//!     let mut column = vec![0.0_f32; 256]; // start-up: not counted
//!     let ((), counts) = odm_alloc_count::count(|| column.iter_mut().for_each(|p| *p += 1.0));
//!     assert_eq!(counts, odm_alloc_count::Counts::default());
//!     let (v, counts) = odm_alloc_count::count(|| vec![1_u8; 8]);
//!     assert_eq!((v.len(), counts.allocs, counts.frees), (8, 1, 0));
//! }
//! ```
//!
//! Only the calling thread is counted, the thread whose code is under test:
//! what the test harness's other threads do meanwhile cannot show up as an
//! allocation of the real-time path.
// `unsafe impl GlobalAlloc` is the only way to observe the allocator; every
// method forwards unchanged to the system allocator and counts.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Allocations and frees seen on one thread while counting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Calls to `alloc`, `alloc_zeroed` and `realloc`.
    pub allocs: usize,
    /// Calls to `dealloc`.
    pub frees: usize,
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, other: Self) {
        self.allocs += other.allocs;
        self.frees += other.frees;
    }
}

// Constant-initialised and without a destructor, so reading them never
// allocates (nor registers anything) from inside the allocator.
thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
    static FREES: Cell<usize> = const { Cell::new(0) };
}

fn note(which: &'static std::thread::LocalKey<Cell<usize>>) {
    if COUNTING.try_with(Cell::get).unwrap_or(false) {
        let _ = which.try_with(|c| c.set(c.get() + 1));
    }
}

/// Runs `f` on this thread and counts the allocations and frees it makes
/// on this thread (the counting allocator must be the global allocator,
/// or nothing is counted).
pub fn count<R>(f: impl FnOnce() -> R) -> (R, Counts) {
    let before = (ALLOCS.with(Cell::get), FREES.with(Cell::get));
    COUNTING.with(|c| c.set(true));
    let r = f();
    COUNTING.with(|c| c.set(false));
    let counts = Counts {
        allocs: ALLOCS.with(Cell::get) - before.0,
        frees: FREES.with(Cell::get) - before.1,
    };
    (r, counts)
}

/// The counting allocator: the system allocator, counted per thread while
/// [`count`] runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct CountingAllocator;

// SAFETY: every method forwards its arguments unchanged to `System`, which
// upholds the GlobalAlloc contract; counting touches only constant-
// initialised thread-locals, which neither allocate nor unwind.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(&ALLOCS);
        // SAFETY: the caller's layout contract, forwarded.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(&ALLOCS);
        // SAFETY: the caller's layout contract, forwarded.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note(&FREES);
        // SAFETY: `ptr` came from `System` (every allocation here does)
        // with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(&ALLOCS);
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hint::black_box;

    #[global_allocator]
    static GLOBAL: CountingAllocator = CountingAllocator;

    #[test]
    fn counts_this_threads_allocations_reallocations_and_frees() {
        let ((), c) = count(|| {
            let mut v: Vec<u64> = black_box(Vec::with_capacity(4));
            v.extend(0..64); // grows: at least one realloc
            drop(black_box(v));
            let z = black_box(vec![0_u8; 4096]); // alloc_zeroed
            drop(z);
        });
        assert!(c.allocs >= 3, "{c:?}");
        assert_eq!(c.frees, 2, "{c:?}");
    }

    #[test]
    fn counts_nothing_where_nothing_is_allocated() {
        let mut buf = [0_u64; 64];
        let (sum, c) = count(|| {
            for (i, b) in buf.iter_mut().enumerate() {
                *b = black_box(i as u64);
            }
            buf.iter().sum::<u64>()
        });
        assert_eq!(sum, 63 * 64 / 2);
        assert_eq!(c, Counts::default());
    }

    #[test]
    fn another_threads_allocations_and_allocations_outside_are_not_counted() {
        let outside = black_box(vec![1_u8; 100]);
        let worker = std::thread::spawn(|| {
            for _ in 0..1000 {
                drop(black_box(vec![0_u8; 64]));
            }
        });
        let ((), c) = count(|| {
            for _ in 0..1000 {
                std::hint::spin_loop();
            }
        });
        worker.join().expect("worker");
        drop(outside);
        assert_eq!(c, Counts::default());
    }
}
