//! No configuration, however odd, makes the virtual probe panic: it is
//! either refused with a named field or it runs.

use odm_simulator::{ImpairmentSchedule, Interval, SimConfig, VirtualProbe};
use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::prelude::*;

static RAN: AtomicUsize = AtomicUsize::new(0);

fn schedule() -> impl Strategy<Value = ImpairmentSchedule> {
    prop_oneof![
        Just(ImpairmentSchedule::Off),
        (-0.1f64..3.0, -0.1f64..2.0).prop_map(|(a, d)| ImpairmentSchedule::Fixed(vec![Interval {
            start_s: a,
            end_s: a + d
        }])),
        (0.3f64..5.0, 0.0f64..1.0, 0.0f64..2.0).prop_map(|(m, lo, hi)| {
            ImpairmentSchedule::Random {
                mean_interval_s: m,
                min_duration_s: lo,
                max_duration_s: hi,
            }
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_configuration_is_refused_or_runs(
        seed in any::<u64>(),
        fs in prop_oneof![1 => Just(7_999u32), 3 => Just(8_000), 3 => Just(20_000), 2 => Just(48_000), 1 => Just(48_001)],
        block in prop_oneof![1 => Just(0u16), 1 => Just(1), 2 => Just(77), 3 => Just(200), 2 => Just(1000), 1 => Just(1001)],
        hr in prop_oneof![1 => Just(f64::NAN), 9 => 35.0f64..185.0],
        sv in 0.0f64..260.0,
        pv in proptest::option::weighted(0.3, 0.0f64..320.0),
        ectopic in -0.05f64..0.6,
        snr in proptest::option::of(-30.0f64..90.0),
        phantom in proptest::option::weighted(0.2, -300.0f64..300.0),
        gain in -0.6f64..0.6,
        angle in -50.0f64..45.0,
        diathermy in schedule(),
        gaps in schedule(),
        clipping in schedule(),
        serial in "[ -~]{0,17}",
    ) {
        let cfg = SimConfig {
            seed,
            duration_s: Some(0.3),
            sample_rate_hz: fs,
            block_len: block,
            hr_bpm: hr,
            sv_ml: sv,
            pv_cm_s: pv,
            ectopic_rate: ectopic,
            snr_db: snr,
            phantom_cm_s: phantom,
            probe_gain_error: gain,
            probe_angle_error_deg: angle,
            diathermy,
            gaps,
            clipping,
            probe_serial: serial,
            scatterer_count: 8,
            ..SimConfig::default()
        };
        match VirtualProbe::new(cfg.clone()) {
            Err(e) => prop_assert!(e.to_string().starts_with("simulator configuration: ")),
            Ok(mut probe) => {
                RAN.fetch_add(1, Ordering::Relaxed);
                prop_assert!(cfg.validate().is_ok());
                let mut last_end = 0;
                while let Some(p) = probe.next_payload() {
                    if let odm_device_io::Payload::Iq(b) = p {
                        prop_assert!(b.first_sample >= last_end);
                        prop_assert!(!b.samples.is_empty() && b.samples.len() <= 1000);
                        last_end = b.end_sample();
                    }
                }
                for t in probe.take_truth_beats() {
                    prop_assert!(t.onset_s < t.end_s && t.end_s < t.next_onset_s);
                    prop_assert!(t.sd_cm.is_finite() && t.sd_cm > 0.0);
                }
            }
        }
    }
}

#[test]
fn some_random_configurations_do_run() {
    // Runs the property above first if the harness has not yet; its cases
    // must include runnable configurations, or it tests only refusals.
    any_configuration_is_refused_or_runs();
    let ran = RAN.load(Ordering::Relaxed);
    eprintln!("{ran} runnable configurations");
    assert!(ran >= 5, "{ran} runnable cases");
}

/// A refusal names the value compactly: 1e308 as `1e308`, not in 309 digits.
#[test]
fn a_refused_value_is_named_compactly() {
    for (duration_s, shown) in [(1e308, "1e308 is outside"), (1e-9, "1e-9 is outside")] {
        let cfg = SimConfig {
            duration_s: Some(duration_s),
            ..SimConfig::default()
        };
        let e = cfg.validate().unwrap_err().to_string();
        assert!(e.contains(shown) && e.len() < 120, "{e}");
    }
}
