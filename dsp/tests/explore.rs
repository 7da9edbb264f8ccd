//! Exploration runs printed for docs/dsp.md (ignored: run explicitly with
//! `cargo test -p odm-dsp --test explore -- --ignored --nocapture`).
mod common;
use common::*;
use odm_dsp::PipelineConfig;

#[test]
#[ignore]
fn print_grid() {
    let secs: f64 = std::env::var("ODM_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30.0);
    for snr in [30.0, 15.0, 8.0] {
        for hr in [45.0, 75.0, 140.0] {
            let mut cfg = PipelineConfig::default();
            if let Some(m) = std::env::var("ODM_SMOOTH")
                .ok()
                .and_then(|s| s.parse().ok())
            {
                cfg.envelope.smoothing_bins = m;
            }
            if let Some(m) = std::env::var("ODM_FRAC").ok().and_then(|s| s.parse().ok()) {
                cfg.envelope.plateau_fraction = m;
            }
            if let Some(m) = std::env::var("ODM_WIN").ok().and_then(|s| s.parse().ok()) {
                cfg.window_s = m;
            }
            if let Some(m) = std::env::var("ODM_HOP").ok().and_then(|s| s.parse().ok()) {
                cfg.hop_s = m;
            }
            if let Ok(m) = std::env::var("ODM_METHOD") {
                cfg.envelope.method = odm_dsp::envelope::EnvelopeMethod::ALL
                    .into_iter()
                    .find(|x| x.name() == m)
                    .unwrap();
            }
            let mut sc = sim(1, secs, snr, hr);
            if let Some(m) = std::env::var("ODM_PROFILE")
                .ok()
                .and_then(|s| s.parse().ok())
            {
                sc.profile_exponent = m;
            }
            let only: Option<f64> = std::env::var("ODM_ONLY_HR")
                .ok()
                .and_then(|s| s.parse().ok());
            if only.is_some_and(|o| o != hr) {
                continue;
            }
            let r = run_sim(sc, cfg, false);
            println!(
                "snr {snr:>4} hr {hr:>5}: {} {}",
                describe(&r.score),
                reasons(&r.out.beats)
            );
        }
    }
}

#[test]
#[ignore]
fn print_envelope_bias() {
    use odm_device_io::frame::Payload;
    use odm_dsp::{EnvelopePoint, Pipeline, PipelineSink, StreamParams};
    struct S(Vec<(f64, f64)>);
    impl PipelineSink for S {
        fn envelope_point(&mut self, p: &EnvelopePoint) {
            self.0.push((p.t_s, p.velocity_cm_s));
        }
    }
    for prof in [2.0, 6.0] {
        for snr in [30.0, 8.0] {
            let mut sc = sim(1, 12.0, snr, 75.0);
            sc.profile_exponent = prof;
            sc.reverse_flow_cm_s = 0.0;
            let mut probe = odm_simulator::VirtualProbe::new(sc).unwrap();
            let mut pipe = None;
            let mut s = S(Vec::new());
            let mut bins = vec![(0.0f64, 0.0f64, 0usize); 12];
            // Rising/falling split: sign of the true slope.
            let mut rise = vec![(0.0f64, 0usize); 12];
            let mut fall = vec![(0.0f64, 0usize); 12];
            while let Some(p) = probe.next_payload() {
                match p {
                    Payload::ProbeInfo(i) if pipe.is_none() => {
                        pipe = Some(
                            Pipeline::new(
                                PipelineConfig::default(),
                                StreamParams {
                                    sample_rate_hz: i.sample_rate_hz,
                                    carrier_hz: i.carrier_hz,
                                    beam_angle_deg: f64::from(i.beam_angle_cdeg) / 100.0,
                                },
                            )
                            .unwrap(),
                        );
                    }
                    Payload::Iq(b) => {
                        pipe.as_mut()
                            .unwrap()
                            .push(b.first_sample, &b.samples, b.clipped(), &mut s)
                    }
                    _ => {}
                }
                for (t, v) in s.0.drain(..) {
                    if t < 1.0 {
                        continue;
                    }
                    let Some(tv) = probe.true_velocity_cm_s(t) else {
                        continue;
                    };
                    let slope = probe.true_velocity_cm_s(t + 0.001).unwrap_or(tv)
                        - probe.true_velocity_cm_s(t - 0.001).unwrap_or(tv);
                    let k = ((tv / 10.0) as usize).min(11);
                    bins[k].0 += v - tv;
                    bins[k].1 += (v - tv).powi(2);
                    bins[k].2 += 1;
                    if tv > 2.0 {
                        if slope > 0.0 {
                            rise[k].0 += v - tv;
                            rise[k].1 += 1;
                        } else {
                            fall[k].0 += v - tv;
                            fall[k].1 += 1;
                        }
                    }
                }
            }
            println!("profile {prof} snr {snr}");
            for (k, (b, r, f)) in bins
                .iter()
                .zip(&rise)
                .zip(&fall)
                .map(|((a, b), c)| (a, b, c))
                .enumerate()
            {
                if b.2 > 0 {
                    println!(
                        "  v {:>3}-{:<3}: bias {:+.2} rms {:.2} n {:4} | rise {:+.2} ({}) fall {:+.2} ({})",
                        k * 10,
                        k * 10 + 10,
                        b.0 / b.2 as f64,
                        (b.1 / b.2 as f64).sqrt(),
                        b.2,
                        r.0 / r.1.max(1) as f64,
                        r.1,
                        f.0 / f.1.max(1) as f64,
                        f.1
                    );
                }
            }
        }
    }
}

#[test]
#[ignore]
fn print_false_beats() {
    let r = run_sim(sim(7, 60.0, 30.0, 45.0), PipelineConfig::default(), false);
    for b in &r.out.beats {
        let matched = r.truth.iter().any(|t| (t.onset_s - b.onset_s).abs() < 0.05);
        if !matched {
            let near = r.truth.iter().min_by(|x, y| {
                (x.onset_s - b.onset_s)
                    .abs()
                    .total_cmp(&(y.onset_s - b.onset_s).abs())
            });
            println!(
                "false: onset {:.3} end {:.3} pv {:.1} ft {:.0} acc {} {:?} | nearest truth onset {:.3} end {:.3} pv {:.1}",
                b.onset_s,
                b.end_s,
                b.pv_cm_s,
                b.ft_ms,
                b.accepted,
                b.reject_reason,
                near.map_or(0.0, |t| t.onset_s),
                near.map_or(0.0, |t| t.end_s),
                near.map_or(0.0, |t| t.pv_cm_s)
            );
        }
    }
}
