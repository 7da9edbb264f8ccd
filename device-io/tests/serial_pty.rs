//! The serial source end to end through pseudo-terminals (no hardware):
//! bytes in order, and reconnection when the device goes away and a new one
//! appears at the same path.

use std::fs::File;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::pty::openpty;
use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};
use odm_device_io::{
    ByteSource, DecodedItem, Decoder, Encoder, Frame, IqBlock, Payload, SerialSource, SourceRead,
};

/// A pty pair in raw mode: (master as a writable file, slave, slave path).
fn raw_pty() -> (File, OwnedFd, PathBuf) {
    let pty = openpty(None, None).unwrap();
    let mut t = tcgetattr(&pty.slave).unwrap();
    cfmakeraw(&mut t);
    tcsetattr(&pty.slave, SetArg::TCSANOW, &t).unwrap();
    let path = nix::unistd::ttyname(&pty.slave).unwrap();
    (File::from(pty.master), pty.slave, path)
}

fn stream(first_seq: u16, first_sample: u64, blocks: usize) -> Vec<u8> {
    let mut enc = Encoder::starting_at(first_seq);
    let mut out = Vec::new();
    for k in 0..blocks {
        let first = first_sample + (k * 50) as u64;
        let p = Payload::Iq(IqBlock {
            first_sample: first,
            flags: 0,
            samples: (0..50).map(|i| [i as i16, (first % 1000) as i16]).collect(),
        });
        enc.encode(&p, &mut out).unwrap();
    }
    out
}

/// Reads until `want` IQ blocks were decoded or `until` passes; returns the
/// blocks' first samples and every non-byte read result seen.
fn read_blocks(
    src: &mut SerialSource,
    dec: &mut Decoder,
    want: usize,
    until: Instant,
) -> (Vec<u64>, Vec<SourceRead>) {
    let mut firsts = Vec::new();
    let mut events = Vec::new();
    let mut buf = [0u8; 1024];
    while firsts.len() < want && Instant::now() < until {
        match src.read_chunk(&mut buf).unwrap() {
            SourceRead::Bytes(n) => {
                dec.feed(&buf[..n]);
                while let Some(item) = dec.next_item() {
                    if let DecodedItem::Frame(Frame {
                        payload: Payload::Iq(b),
                        ..
                    }) = item
                    {
                        firsts.push(b.first_sample);
                    }
                }
            }
            SourceRead::Idle => {}
            other => events.push(other),
        }
    }
    (firsts, events)
}

#[test]
fn reads_frames_written_to_a_pty() {
    let (mut master, slave, path) = raw_pty();
    let mut src = SerialSource::open(path.to_str().unwrap(), 921_600).unwrap();
    drop(slave);
    let bytes = stream(0, 0, 40);
    // Written in odd-sized pieces, as a UART would deliver them.
    for piece in bytes.chunks(97) {
        master.write_all(piece).unwrap();
    }
    let mut dec = Decoder::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let (firsts, events) = read_blocks(&mut src, &mut dec, 40, deadline);
    assert_eq!(firsts, (0..40).map(|k| k * 50).collect::<Vec<u64>>());
    assert!(events.is_empty(), "{events:?}");
    assert!(dec.counters().is_clean(), "{:?}", dec.counters());
}

#[test]
fn idle_when_nothing_arrives() {
    let (_master, slave, path) = raw_pty();
    let mut src = SerialSource::open(path.to_str().unwrap(), 921_600).unwrap();
    drop(slave);
    let mut buf = [0u8; 64];
    assert_eq!(src.read_chunk(&mut buf).unwrap(), SourceRead::Idle);
}

#[test]
fn open_fails_with_the_path_in_the_message() {
    let err = SerialSource::open("/nonexistent/odm-port", 921_600).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/odm-port"), "{err}");
}

fn point_link(link: &Path, target: &Path) {
    let tmp = link.with_extension("new");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp).unwrap();
    std::fs::rename(&tmp, link).unwrap();
}

#[test]
fn reconnects_when_the_device_reappears_at_the_same_path() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("ttyODM");
    let (mut master1, slave1, path1) = raw_pty();
    point_link(&link, &path1);
    let mut src = SerialSource::open(link.to_str().unwrap(), 921_600).unwrap();
    drop(slave1);
    let mut dec = Decoder::new();
    master1.write_all(&stream(0, 0, 10)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let (firsts, _) = read_blocks(&mut src, &mut dec, 10, deadline);
    assert_eq!(firsts.len(), 10);

    // Unplug: the device's other side goes away.
    drop(master1);
    let mut buf = [0u8; 256];
    let mut saw_disconnect = false;
    while Instant::now() < deadline {
        if src.read_chunk(&mut buf).unwrap() == SourceRead::Disconnected {
            saw_disconnect = true;
            break;
        }
    }
    assert!(saw_disconnect, "no Disconnected after the pty closed");
    assert!(!src.is_connected());

    // Plug back in: a new device appears behind the same name.
    let (mut master2, slave2, path2) = raw_pty();
    point_link(&link, &path2);
    let mut saw_reconnect = false;
    while Instant::now() < deadline {
        if src.read_chunk(&mut buf).unwrap() == SourceRead::Reconnected {
            saw_reconnect = true;
            break;
        }
    }
    assert!(saw_reconnect, "no Reconnected after the device reappeared");
    drop(slave2);
    master2.write_all(&stream(10, 500, 10)).unwrap();
    let (firsts, events) = read_blocks(&mut src, &mut dec, 10, deadline);
    assert_eq!(firsts, (0..10).map(|k| 500 + k * 50).collect::<Vec<u64>>());
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(dec.counters().lost_frames, 0);
}

#[test]
fn open_or_wait_connects_when_the_device_appears() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("ttyLATER");
    let mut src = SerialSource::open_or_wait(link.to_str().unwrap(), 921_600);
    assert!(!src.is_connected());
    let mut buf = [0u8; 256];
    assert_eq!(src.read_chunk(&mut buf).unwrap(), SourceRead::Idle);
    let (mut master, slave, path) = raw_pty();
    point_link(&link, &path);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut connected = false;
    while Instant::now() < deadline {
        if src.read_chunk(&mut buf).unwrap() == SourceRead::Reconnected {
            connected = true;
            break;
        }
    }
    assert!(connected, "never connected to the device that appeared");
    drop(slave);
    master.write_all(&stream(0, 0, 3)).unwrap();
    let mut dec = Decoder::new();
    let (firsts, _) = read_blocks(&mut src, &mut dec, 3, deadline);
    assert_eq!(firsts, vec![0, 50, 100]);
}
