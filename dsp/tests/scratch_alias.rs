mod common;
use odm_device_io::frame::Payload;
use odm_dsp::{Pipeline, PipelineConfig, PipelineSink, StreamParams};
use odm_simulator::{SimConfig, VirtualProbe};

struct S {
    floor: f64,
}
impl PipelineSink for S {
    fn spectrum_column(&mut self, c: &odm_dsp::SpectrumColumn<'_>) {
        let nz = c.noise_power as f64;
        self.floor = if self.floor > 0.0 {
            nz.min(self.floor * 1.5f64.powf(0.005))
        } else {
            nz
        };
        let est = nz.min(1.5 * self.floor);
        let n = c.power.len();
        let h = n / 2;
        let k = (n / 32).max(4);
        let m = |b: &[f32]| b.iter().map(|&p| p as f64).sum::<f64>() / b.len() as f64 / est;
        let top = m(&c.power[n - k..]);
        let bot = m(&c.power[..k]);
        let mid = m(&c.power[h - (0.35 * h as f64).ceil() as usize..h - h / 4]);
        if c.interference {
            let g: Vec<String> = (0..16)
                .map(|i| {
                    format!(
                        "{:.0}",
                        c.power[i * n / 16..(i + 1) * n / 16]
                            .iter()
                            .map(|&p| p as f64)
                            .sum::<f64>()
                            / (n / 16) as f64
                            / est
                    )
                })
                .collect();
            println!(
                "{:.3} n/est {:5.1} top {top:7.1} bot {bot:7.1} mid {mid:6.1} | {}",
                c.t_s,
                nz / est,
                g.join(" ")
            );
        }
    }
}

#[test]
#[ignore]
fn dump() {
    let sim = SimConfig {
        seed: 7,
        duration_s: Some(60.0),
        snr_db: Some(15.0),
        hr_bpm: 75.0,
        profile_exponent: 6.0,
        peak_frac: 0.3,
        ftc_ms: 350.0,
        sample_rate_hz: 8000,
        sv_ml: 130.0,
        allow_aliasing: true,
        ..SimConfig::default()
    };
    let mut probe = VirtualProbe::new(sim).unwrap();
    let mut pipe: Option<Pipeline> = None;
    let mut s = S { floor: 0.0 };
    while let Some(p) = probe.next_payload() {
        match p {
            Payload::ProbeInfo(info) if pipe.is_none() => {
                let params = StreamParams {
                    sample_rate_hz: info.sample_rate_hz,
                    carrier_hz: info.carrier_hz,
                    beam_angle_deg: f64::from(info.beam_angle_cdeg) / 100.0,
                };
                pipe = Some(Pipeline::new(PipelineConfig::default(), params).unwrap());
            }
            Payload::Iq(b) => {
                pipe.as_mut()
                    .unwrap()
                    .push(b.first_sample, &b.samples, b.clipped(), &mut s)
            }
            _ => {}
        }
    }
}
