//! The live spectrogram waterfall: a ring-buffer texture updated one column
//! at a time (`TextureHandle::set_partial`), never redrawn as shapes.

use std::collections::VecDeque;

use egui::{Color32, ColorImage, Rect, TextureHandle, TextureOptions, pos2};

use crate::handoff::{COLUMN_ROWS, ColumnMsg, EnvelopeMsg};

/// Seconds of signal across the waterfall.
pub const WINDOW_S: f64 = 10.0;

/// Colour of an intensity 0..=255: black through deep blue and cyan to white,
/// so the bright systolic "triangle" stands out on the dark theatre screen.
pub fn colour_from_intensity(i: u8) -> Color32 {
    let x = f32::from(i) / 255.0;
    // Piecewise-linear map; the knots are a visual choice, tested for monotone brightness.
    let knots: [(f32, [f32; 3]); 5] = [
        (0.0, [0.0, 0.0, 0.0]),
        (0.25, [0.0, 0.05, 0.35]),
        (0.5, [0.0, 0.45, 0.75]),
        (0.75, [0.45, 0.85, 0.95]),
        (1.0, [1.0, 1.0, 1.0]),
    ];
    let mut rgb = [1.0f32; 3];
    for w in knots.windows(2) {
        let (x0, c0) = w[0];
        let (x1, c1) = w[1];
        if x <= x1 {
            let f = ((x - x0) / (x1 - x0)).clamp(0.0, 1.0);
            for k in 0..3 {
                rgb[k] = c0[k] + f * (c1[k] - c0[k]);
            }
            break;
        }
    }
    let to_u8 = |v: f32| (v * 255.0).round().clamp(0.0, 255.0) as u8;
    Color32::from_rgb(to_u8(rgb[0]), to_u8(rgb[1]), to_u8(rgb[2]))
}

/// Waterfall state: the column ring, its texture and the envelope points.
pub struct Spectrogram {
    lut: [Color32; 256],
    /// Columns across the window; 0 until the column rate is known.
    width: usize,
    /// Samples between columns, from the first two columns.
    hop_samples: u64,
    sample_rate_hz: u32,
    /// Sample index of each ring slot.
    slot_sample: Vec<u64>,
    /// Next slot to write.
    next: usize,
    /// Slots written (saturates at `width`).
    filled: usize,
    /// Columns waiting for the texture, in order, with their slots.
    pending: Vec<(usize, [u8; COLUMN_ROWS])>,
    first_column: Option<ColumnMsg>,
    texture: Option<TextureHandle>,
    envelope: VecDeque<EnvelopeMsg>,
    newest_sample: u64,
    /// Columns written to the texture so far.
    pub columns_uploaded: u64,
}

impl Default for Spectrogram {
    fn default() -> Self {
        Self::new()
    }
}

impl Spectrogram {
    /// An empty waterfall.
    pub fn new() -> Self {
        let mut lut = [Color32::BLACK; 256];
        for (i, c) in lut.iter_mut().enumerate() {
            *c = colour_from_intensity(i as u8);
        }
        Self {
            lut,
            width: 0,
            hop_samples: 0,
            sample_rate_hz: 0,
            slot_sample: Vec::new(),
            next: 0,
            filled: 0,
            pending: Vec::new(),
            first_column: None,
            texture: None,
            envelope: VecDeque::new(),
            newest_sample: 0,
            columns_uploaded: 0,
        }
    }

    /// Clears the display (new source or seek); the texture is kept and blanked.
    pub fn clear(&mut self) {
        self.next = 0;
        self.filled = 0;
        self.pending.clear();
        self.envelope.clear();
        self.first_column = None;
        self.newest_sample = 0;
        if let Some(tex) = &mut self.texture {
            let blank = ColorImage::filled([self.width.max(1), COLUMN_ROWS], Color32::BLACK);
            tex.set(blank, TextureOptions::LINEAR);
        }
        for s in &mut self.slot_sample {
            *s = 0;
        }
    }

    /// Sets the stream's sample rate (from PROBE_INFO).
    pub fn set_sample_rate_hz(&mut self, hz: u32) {
        if hz != self.sample_rate_hz {
            self.sample_rate_hz = hz;
            self.width = 0;
            self.texture = None;
            self.clear();
        }
    }

    /// Samples across the window.
    pub fn window_samples(&self) -> u64 {
        (WINDOW_S * f64::from(self.sample_rate_hz)) as u64
    }

    /// Newest sample shown (the right edge).
    pub fn newest_sample(&self) -> u64 {
        self.newest_sample
    }

    /// Takes one column.
    pub fn push_column(&mut self, col: ColumnMsg) {
        if self.sample_rate_hz == 0 {
            return;
        }
        if self.width == 0 {
            // The column rate is learned from the first two columns.
            match self.first_column.take() {
                None => {
                    self.first_column = Some(col);
                    return;
                }
                Some(first) => {
                    let hop = col.sample.saturating_sub(first.sample);
                    if hop == 0 {
                        self.first_column = Some(col);
                        return;
                    }
                    self.hop_samples = hop;
                    self.width = (self.window_samples() / hop).clamp(16, 4096) as usize;
                    self.slot_sample = vec![0; self.width];
                    self.next = 0;
                    self.filled = 0;
                    self.write(first);
                }
            }
        }
        self.write(col);
    }

    fn write(&mut self, col: ColumnMsg) {
        let slot = self.next;
        if let Some(s) = self.slot_sample.get_mut(slot) {
            *s = col.sample;
        }
        self.pending.push((slot, col.rows));
        // Only the newest `width` columns can be visible.
        if self.pending.len() > self.width {
            self.pending.remove(0);
        }
        self.next = (self.next + 1) % self.width.max(1);
        self.filled = (self.filled + 1).min(self.width);
        self.newest_sample = self.newest_sample.max(col.sample);
    }

    /// Takes one envelope point.
    pub fn push_envelope(&mut self, p: EnvelopeMsg) {
        self.envelope.push_back(p);
        let window = self.window_samples();
        while self
            .envelope
            .front()
            .is_some_and(|f| p.sample.saturating_sub(f.sample) > window)
        {
            self.envelope.pop_front();
        }
    }

    /// Envelope points of the window, oldest first.
    pub fn envelope(&self) -> &VecDeque<EnvelopeMsg> {
        &self.envelope
    }

    /// Uploads pending columns to the texture (creating it on first use).
    pub fn upload(&mut self, ctx: &egui::Context) {
        if self.width == 0 {
            return;
        }
        let width = self.width;
        let tex = self.texture.get_or_insert_with(|| {
            ctx.load_texture(
                "odm-spectrogram",
                ColorImage::filled([width, COLUMN_ROWS], Color32::BLACK),
                TextureOptions::LINEAR,
            )
        });
        // Contiguous runs of slots become one partial update each.
        let mut i = 0;
        while i < self.pending.len() {
            let start_slot = self.pending[i].0;
            let mut j = i + 1;
            while j < self.pending.len() && self.pending[j].0 == self.pending[j - 1].0 + 1 {
                j += 1;
            }
            let run = &self.pending[i..j];
            let w = run.len();
            let mut pixels = vec![Color32::BLACK; w * COLUMN_ROWS];
            for (x, (_, rows)) in run.iter().enumerate() {
                for (y, &v) in rows.iter().enumerate() {
                    pixels[y * w + x] = self.lut[usize::from(v)];
                }
            }
            let image = ColorImage::new([w, COLUMN_ROWS], pixels);
            tex.set_partial([start_slot, 0], image, TextureOptions::LINEAR);
            self.columns_uploaded += w as u64;
            i = j;
        }
        self.pending.clear();
    }

    /// Paints the ring into `rect`, oldest column at the left.
    pub fn paint(&self, painter: &egui::Painter, rect: Rect) {
        let Some(tex) = &self.texture else {
            return;
        };
        if self.width == 0 || self.filled == 0 {
            return;
        }
        let w = self.width as f32;
        let split = self.next as f32 / w;
        if self.filled < self.width {
            // Not yet wrapped: slots 0..next hold the data, drawn right-aligned.
            let frac = self.next as f32 / w;
            let left = rect.right() - rect.width() * frac;
            let r = Rect::from_min_max(pos2(left, rect.top()), rect.max);
            painter.image(
                tex.id(),
                r,
                Rect::from_min_max(pos2(0.0, 0.0), pos2(frac, 1.0)),
                Color32::WHITE,
            );
            return;
        }
        // Oldest part: slots next..width.
        let left_w = rect.width() * (1.0 - split);
        let r1 = Rect::from_min_max(rect.min, pos2(rect.left() + left_w, rect.bottom()));
        painter.image(
            tex.id(),
            r1,
            Rect::from_min_max(pos2(split, 0.0), pos2(1.0, 1.0)),
            Color32::WHITE,
        );
        let r2 = Rect::from_min_max(pos2(rect.left() + left_w, rect.top()), rect.max);
        painter.image(
            tex.id(),
            r2,
            Rect::from_min_max(pos2(0.0, 0.0), pos2(split, 1.0)),
            Color32::WHITE,
        );
    }

    /// Horizontal position in `rect` of stream sample `sample`, if it is in the window.
    pub fn x_from_sample(&self, rect: Rect, sample: f64) -> Option<f32> {
        let window = self.window_samples() as f64;
        if window <= 0.0 {
            return None;
        }
        let from_right = self.newest_sample as f64 - sample;
        if !(0.0..=window).contains(&from_right) {
            return None;
        }
        Some(rect.right() - (from_right / window) as f32 * rect.width())
    }

    /// Columns across the window (0 until known).
    pub fn width_columns(&self) -> usize {
        self.width
    }

    /// Samples between columns (0 until known).
    pub fn hop_samples(&self) -> u64 {
        self.hop_samples
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(sample: u64, v: u8) -> ColumnMsg {
        ColumnMsg {
            sample,
            rows: [v; COLUMN_ROWS],
            tones: 0,
        }
    }

    #[test]
    fn colour_map_brightens_monotonically() {
        let lum = |c: Color32| u32::from(c.r()) + u32::from(c.g()) + u32::from(c.b());
        let mut prev = 0;
        for i in 0..=255u8 {
            let l = lum(colour_from_intensity(i));
            assert!(l >= prev, "intensity {i}");
            prev = l;
        }
        assert_eq!(colour_from_intensity(0), Color32::BLACK);
        assert_eq!(colour_from_intensity(255), Color32::WHITE);
    }

    #[test]
    fn ring_width_is_ten_seconds_of_columns_and_wraps() {
        let mut s = Spectrogram::new();
        s.set_sample_rate_hz(20_000);
        // 100 columns per second: hop 200 samples → 1000 columns in 10 s.
        for k in 0..1500u64 {
            s.push_column(col(k * 200, 1));
        }
        assert_eq!(s.width_columns(), 1000);
        assert_eq!(s.hop_samples(), 200);
        assert_eq!(s.newest_sample(), 1499 * 200);
        // Only the newest 1000 columns wait for upload, starting at slot 500.
        assert_eq!(s.pending.len(), 1000);
        assert_eq!(s.pending[0].0, 500);
        let rect = Rect::from_min_max(pos2(0.0, 0.0), pos2(1000.0, 100.0));
        assert_eq!(s.x_from_sample(rect, (1499 * 200) as f64), Some(1000.0));
        let five_s_ago = (1499 * 200 - 100_000) as f64;
        assert_eq!(s.x_from_sample(rect, five_s_ago), Some(500.0));
        assert_eq!(s.x_from_sample(rect, 0.0), None);
    }
}
