//! Fuzz target: the recording reader on arbitrary file contents, read
//! through a source that returns short reads. Checks that it never panics
//! or refuses, and that the damaged tail and counters are consistent.
#![no_main]

use std::io::Read;

use libfuzzer_sys::fuzz_target;
use odm_device_io::{MagicStatus, RecordingReader};

/// Hands out at most `step` bytes per read.
struct Short<'a> {
    data: &'a [u8],
    step: usize,
}

impl Read for Short<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.step.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

fuzz_target!(|data: &[u8]| {
    let step = usize::from(data.first().copied().unwrap_or(0)) * 31 + 1;
    let mut r = RecordingReader::new(Short { data, step }).expect("reading a slice cannot fail");
    let mut frames = 0u64;
    while let Some(item) = r.next_item().expect("reading a slice cannot fail") {
        if let odm_device_io::DecodedItem::Frame(_) = item {
            frames += 1;
        }
    }
    let c = *r.counters();
    assert!(frames <= c.frames_good);
    // Bytes not given to the decoder: an intact magic only. A damaged
    // magic is handed to the decoder (it may hold the start of the first
    // frame), like a raw stream, and so is a file shorter than a magic
    // (its bytes are read and in no frame: resync bytes, as 8 bytes of
    // junk are; since 535ee0b).
    let magic_len = match r.magic() {
        MagicStatus::Good => 8,
        MagicStatus::Truncated { .. } | MagicStatus::RawStream | MagicStatus::Damaged { .. } => 0,
    };
    assert_eq!(c.bytes_read + magic_len, data.len() as u64);
    if let Some(t) = r.damaged_tail() {
        assert_eq!(t.offset + t.bytes, data.len() as u64);
        assert!(t.bytes <= c.resync_bytes);
    }
});
