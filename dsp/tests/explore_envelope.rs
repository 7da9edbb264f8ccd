//! Envelope-estimator exploration (ignored; run explicitly):
//! `ODM_ENV_METHOD=shape-fit cargo test -p odm-dsp --test explore_envelope -- --ignored --nocapture`
//! prints the signed envelope error against the simulator's true envelope,
//! per velocity profile and SNR, split into rising and falling flow.
mod common;
use common::*;
use odm_dsp::envelope::EnvelopeMethod;
use odm_dsp::{EnvelopePoint, PipelineConfig, PipelineSink};

struct Points(Vec<(f64, f64)>);
impl PipelineSink for Points {
    fn envelope_point(&mut self, p: &EnvelopePoint) {
        self.0.push((p.t_s, p.velocity_cm_s));
    }
}

fn method_from_env() -> EnvelopeMethod {
    let name = std::env::var("ODM_ENV_METHOD").unwrap_or_default();
    EnvelopeMethod::ALL
        .into_iter()
        .find(|m| m.name() == name)
        .unwrap_or_default()
}

#[test]
#[ignore]
fn print_envelope_error_by_profile() {
    let method = method_from_env();
    println!("method {}", method.name());
    let phantom: Option<f64> = std::env::var("ODM_PHANTOM")
        .ok()
        .map(|v| v.parse().unwrap());
    for prof in [2.0, 4.0, 6.0, 9.0] {
        for snr in [30.0, 15.0, 8.0] {
            let mut sc = sim(1, 20.0, snr, 75.0);
            sc.phantom_cm_s = phantom;
            sc.profile_exponent = prof;
            if let Ok(n) = std::env::var("ODM_SCATTERERS") {
                sc.scatterer_count = n.parse().unwrap();
            }
            let mut probe = odm_simulator::VirtualProbe::new(sc).unwrap();
            let mut cfg = PipelineConfig::default();
            cfg.envelope.method = method;
            let mut pipe = None;
            let mut pts = Points(Vec::new());
            let mut errs = Vec::new();
            let (mut rise, mut fall) = ((0.0, 0), (0.0, 0));
            while let Some(p) = probe.next_payload() {
                feed(&mut pipe, cfg, p, &mut pts);
                for (t, v) in pts.0.drain(..) {
                    let Some(tv) = probe.true_velocity_cm_s(t) else {
                        continue;
                    };
                    if t < 1.0 || tv < 10.0 {
                        continue;
                    }
                    let slope = probe.true_velocity_cm_s(t + 0.001).unwrap_or(tv)
                        - probe.true_velocity_cm_s(t - 0.001).unwrap_or(tv);
                    errs.push(v - tv);
                    let acc = if slope > 0.0 { &mut rise } else { &mut fall };
                    acc.0 += v - tv;
                    acc.1 += 1;
                }
            }
            errs.sort_by(f64::total_cmp);
            let med = errs[errs.len() / 2];
            let mut abs: Vec<f64> = errs.iter().map(|e| e.abs()).collect();
            abs.sort_by(f64::total_cmp);
            println!(
                "n={prof} snr {snr:>2}: median {med:+.2} |e| {:.2} p95 {:.2} | rise mean {:+.2} fall mean {:+.2} (n {})",
                abs[abs.len() / 2],
                abs[abs.len() * 95 / 100],
                rise.0 / f64::from(rise.1.max(1)),
                fall.0 / f64::from(fall.1.max(1)),
                errs.len()
            );
        }
    }
}
