//! Doppler audio output: the focusing tool (odm-primer.md, "What goes wrong
//! in theatre"). Forward flow in the left channel, reverse in the right
//! ([`crate::audio_split`]), at the sound card's rate, with a volume.
//!
//! Built only with the `audio` feature (cpal; needs libasound2-dev on
//! Linux). Without the feature, or without a usable output device, the app
//! runs on and [`AudioOut::status`] says why there is no sound.

#[cfg(feature = "audio")]
use std::sync::atomic::AtomicU32;
#[cfg(feature = "audio")]
use std::sync::atomic::Ordering;
#[cfg(feature = "audio")]
use std::sync::{Arc, Mutex};

/// I/Q samples buffered for audio: 0.25 s at 20 kHz. More would add
/// latency between probe movement and sound, which defeats focusing.
#[cfg(feature = "audio")]
const AUDIO_RING: usize = 5_000;

/// The audio output, or the reason there is none.
pub struct AudioOut {
    #[cfg(feature = "audio")]
    inner: Option<Running>,
    status: String,
}

#[cfg(feature = "audio")]
struct Running {
    // Kept alive for as long as sound should play (not Send: UI thread only).
    _stream: cpal::Stream,
    volume_bits: Arc<AtomicU32>,
    /// A new I/Q consumer for the callback (one per source).
    next_consumer: Arc<Mutex<Option<rtrb::Consumer<[i16; 2]>>>>,
    input_rate_hz: Arc<AtomicU32>,
}

impl AudioOut {
    /// Opens the default output device (with the `audio` feature).
    pub fn start() -> Self {
        #[cfg(feature = "audio")]
        {
            match Running::open() {
                Ok((r, status)) => Self {
                    inner: Some(r),
                    status,
                },
                Err(why) => Self {
                    inner: None,
                    status: format!("audio off: {why}"),
                },
            }
        }
        #[cfg(not(feature = "audio"))]
        {
            Self {
                status: "audio off: built without the `audio` feature".into(),
            }
        }
    }

    /// A fresh producer of I/Q samples for the DSP thread (the callback's
    /// previous input is replaced). `None` without audio.
    pub fn new_producer(&mut self) -> Option<rtrb::Producer<[i16; 2]>> {
        #[cfg(feature = "audio")]
        {
            let r = self.inner.as_ref()?;
            let (p, c) = rtrb::RingBuffer::new(AUDIO_RING);
            if let Ok(mut slot) = r.next_consumer.lock() {
                *slot = Some(c);
            }
            Some(p)
        }
        #[cfg(not(feature = "audio"))]
        None
    }

    /// Tells the callback the I/Q sample rate (from PROBE_INFO; 0 = unknown).
    pub fn set_input_rate_hz(&self, hz: u32) {
        #[cfg(feature = "audio")]
        if let Some(r) = &self.inner
            && hz > 0
        {
            r.input_rate_hz.store(hz, Ordering::Relaxed);
        }
        #[cfg(not(feature = "audio"))]
        let _ = hz;
    }

    /// One line for the screen.
    pub fn status(&self) -> String {
        self.status.clone()
    }

    /// Volume 0..=1 (0 = muted).
    pub fn set_volume(&mut self, volume: f32) {
        #[cfg(feature = "audio")]
        if let Some(r) = &self.inner {
            r.volume_bits
                .store(volume.clamp(0.0, 1.0).to_bits(), Ordering::Relaxed);
        }
        #[cfg(not(feature = "audio"))]
        let _ = volume;
    }
}

#[cfg(feature = "audio")]
impl Running {
    fn open() -> Result<(Self, String), String> {
        use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};

        use crate::audio_split::{Resampler, StereoSplitter};

        let host = cpal::default_host();
        let device = host
            .default_output_device()
            .ok_or_else(|| "no audio output device".to_string())?;
        let supported = device
            .default_output_config()
            .map_err(|e| format!("audio device: {e}"))?;
        if supported.sample_format() != cpal::SampleFormat::F32 {
            return Err(format!(
                "audio device wants {:?} samples; only f32 is supported",
                supported.sample_format()
            ));
        }
        let config: cpal::StreamConfig = supported.config();
        let out_hz = config.sample_rate.0;
        let channels = usize::from(config.channels.max(1));
        let volume_bits = Arc::new(AtomicU32::new(0.5f32.to_bits()));
        let next_consumer: Arc<Mutex<Option<rtrb::Consumer<[i16; 2]>>>> = Arc::default();
        let input_rate_hz = Arc::new(AtomicU32::new(20_000));
        let (vol, slot, rate) = (
            volume_bits.clone(),
            next_consumer.clone(),
            input_rate_hz.clone(),
        );
        let mut consumer: Option<rtrb::Consumer<[i16; 2]>> = None;
        let mut splitter = StereoSplitter::new();
        let mut in_hz = 0u32;
        let mut resampler = Resampler::new(20_000, out_hz);
        let stream = device
            .build_output_stream(
                &config,
                move |data: &mut [f32], _| {
                    // try_lock: the callback never waits for the UI thread.
                    if let Ok(mut s) = slot.try_lock()
                        && let Some(c) = s.take()
                    {
                        consumer = Some(c);
                        splitter = StereoSplitter::new();
                    }
                    let hz = rate.load(Ordering::Relaxed);
                    if hz != in_hz && hz > 0 {
                        in_hz = hz;
                        resampler = Resampler::new(hz, out_hz);
                    }
                    let gain = f32::from_bits(vol.load(Ordering::Relaxed));
                    for frame in data.chunks_mut(channels) {
                        let lr = resampler
                            .next_frame(|| {
                                let c = consumer.as_mut()?;
                                c.pop().ok().map(|iq| splitter.process(iq))
                            })
                            .unwrap_or([0.0, 0.0]);
                        for (k, s) in frame.iter_mut().enumerate() {
                            // Mono devices get the sum; extra channels silence.
                            *s = gain
                                * match (channels, k) {
                                    (1, _) => 0.5 * (lr[0] + lr[1]),
                                    (_, 0) => lr[0],
                                    (_, 1) => lr[1],
                                    _ => 0.0,
                                };
                        }
                    }
                },
                // Device errors end the sound, not the monitor.
                |_e| {},
                None,
            )
            .map_err(|e| format!("audio stream: {e}"))?;
        stream.play().map_err(|e| format!("audio stream: {e}"))?;
        let status = format!("audio on: {out_hz} Hz, forward left, reverse right");
        Ok((
            Self {
                _stream: stream,
                volume_bits,
                next_consumer,
                input_rate_hz,
            },
            status,
        ))
    }
}
