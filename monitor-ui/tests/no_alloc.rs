//! The monitor's DSP thread never calls the allocator after start-up
//! (architecture.md, "The real-time path"): in steady state the app's
//! `Engine` turns payloads into spectrum columns, envelope points, beats and
//! Doppler audio with zero allocations and zero frees — the payload itself
//! goes back to the caller (the reader thread) to be freed there.
use odm_alloc_count::{CountingAllocator, Counts, count};
use odm_device_io::Payload;
use odm_monitor::engine::Engine;
use odm_monitor::handoff::Handoff;
use odm_simulator::{SimConfig, VirtualProbe};

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

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
    let mut counts = Counts::default();
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
        let back = if steady {
            let (back, c) = count(|| engine.handle(p));
            counts += c;
            back
        } else {
            engine.handle(p)
        };
        returned += usize::from(back.is_some());
        drop(back);
    }
    let (allocs, frees) = (counts.allocs, counts.frees);
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
