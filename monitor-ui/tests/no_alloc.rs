//! The monitor's DSP thread never calls the allocator after start-up
//! (architecture.md, "The real-time path"): in steady state the app's
//! `Engine` turns payloads into spectrum columns, envelope points, beats and
//! Doppler audio with zero allocations and zero frees — the payload itself
//! goes back to the caller (the reader thread) to be freed there.
// A counting global allocator needs `unsafe impl GlobalAlloc`; it only
// forwards to the system allocator and counts.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use odm_device_io::Payload;
use odm_monitor::engine::Engine;
use odm_monitor::handoff::Handoff;
use odm_simulator::{SimConfig, VirtualProbe};

struct Counting;
static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCS: AtomicUsize = AtomicUsize::new(0);
static FREES: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every method forwards unchanged to `System`, which upholds the
// GlobalAlloc contract; the counters are atomics.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same layout contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if COUNTING.load(Ordering::Relaxed) {
            FREES.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: ptr came from System.alloc with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarded contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn the_engine_neither_allocates_nor_frees_in_steady_state() {
    // 25 s with diathermy, gaps and clipping, so that rejection, gap and
    // status paths run too; the payloads are made before counting starts.
    let cfg = SimConfig {
        seed: 21,
        duration_s: Some(25.0),
        snr_db: Some(15.0),
        hr_bpm: 90.0,
        diathermy: odm_simulator::ImpairmentSchedule::Fixed(vec![odm_simulator::Interval {
            start_s: 12.0,
            end_s: 14.0,
        }]),
        gaps: odm_simulator::ImpairmentSchedule::Fixed(vec![odm_simulator::Interval {
            start_s: 16.0,
            end_s: 16.2,
        }]),
        clipping: odm_simulator::ImpairmentSchedule::Fixed(vec![odm_simulator::Interval {
            start_s: 19.0,
            end_s: 19.5,
        }]),
        ..SimConfig::default()
    };
    let mut probe = VirtualProbe::new(cfg).unwrap_or_else(|e| panic!("simulator: {e}"));
    let mut payloads = Vec::new();
    while let Some(p) = probe.next_payload() {
        payloads.push(p);
    }
    let handoff = Handoff::shared();
    let mut engine = Engine::new(handoff.clone());
    // The Doppler audio's ring, as the live app sets it up (big enough for
    // the whole run: the test has no audio callback draining it).
    let (audio_tx, _audio_rx) = rtrb::RingBuffer::<[i16; 2]>::new(1 << 20);
    engine.set_audio(audio_tx);
    let warm_up_samples = 5 * 20_000;
    let (mut iq_counted, mut others_counted, mut returned) = (0, 0, 0);
    let mut warm = false;
    for p in payloads {
        // After the warm-up every payload counts — I/Q blocks, PROBE_INFO
        // (about once a second) and probe events — except annotations,
        // which a user's action makes, not the steady stream.
        match &p {
            Payload::Iq(b) => {
                warm |= b.first_sample >= warm_up_samples;
                iq_counted += usize::from(warm);
            }
            Payload::Annotation(_) => {}
            _ => others_counted += usize::from(warm),
        }
        let steady = warm && !matches!(&p, Payload::Annotation(_));
        if steady {
            COUNTING.store(true, Ordering::SeqCst);
        }
        let back = engine.handle(p);
        COUNTING.store(false, Ordering::SeqCst);
        returned += usize::from(back.is_some());
        drop(back);
    }
    let (allocs, frees) = (ALLOCS.load(Ordering::SeqCst), FREES.load(Ordering::SeqCst));
    let beats = std::iter::from_fn(|| handoff.beats.pop()).count();
    assert!(iq_counted > 1000, "{iq_counted} blocks counted");
    assert!(
        others_counted >= 10,
        "{others_counted} other payloads counted"
    );
    assert!(beats >= 20, "only {beats} beats reached the display");
    assert!(returned >= iq_counted, "payloads not returned: {returned}");
    assert_eq!(
        (allocs, frees),
        (0, 0),
        "allocations and frees over {iq_counted} I/Q blocks and {others_counted} other payloads"
    );
}
