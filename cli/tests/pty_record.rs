//! The foundation issue's end-to-end check: `odm simulate --port` into one
//! pseudo-terminal and `odm record --port` from another (a relay between
//! them plays the cable) reproduce exactly the frames that `odm simulate
//! --out` writes for the same seed.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use nix::pty::{Winsize, openpty};
use nix::sys::termios::{SetArg, Termios, cfmakeraw, tcgetattr, tcsetattr};
use odm_device_io::{DecodedItem, Payload, RecordingReader};

const ODM: &str = env!("CARGO_BIN_EXE_odm");

struct Pty {
    master: File,
    _slave: OwnedFd,
    slave_path: PathBuf,
}

fn raw_pty() -> Pty {
    let pair = openpty(None::<&Winsize>, None::<&Termios>).expect("openpty");
    let mut tio = tcgetattr(&pair.slave).expect("tcgetattr");
    cfmakeraw(&mut tio);
    tcsetattr(&pair.slave, SetArg::TCSANOW, &tio).expect("raw mode");
    let slave_path = nix::unistd::ttyname(&pair.slave).expect("ttyname");
    Pty {
        master: File::from(pair.master),
        _slave: pair.slave,
        slave_path,
    }
}

/// The probe-side payloads (PROBE_INFO, IQ_SAMPLES, EVENT) of a recording, in order.
fn probe_payloads(path: &Path) -> Vec<Payload> {
    let file = File::open(path).expect("open recording");
    let mut reader = RecordingReader::new(file).expect("reader");
    let mut out = Vec::new();
    while let Some(item) = reader.next_item().expect("read") {
        if let DecodedItem::Frame(f) = item
            && !matches!(f.payload, Payload::Annotation(_))
        {
            out.push(f.payload);
        }
    }
    let c = reader.counters();
    assert_eq!(c.crc_errors, 0, "{}", path.display());
    assert_eq!(c.lost_frames, 0, "{}", path.display());
    out
}

#[test]
fn simulate_to_a_port_and_record_from_another_reproduce_the_same_frames() {
    let dir = std::env::temp_dir().join(format!("odm-pty-record-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let reference = dir.join("reference.odmrec");
    let recorded = dir.join("recorded.odmrec");
    let sim = ["--duration", "2", "--seed", "21"];

    let out = Command::new(ODM)
        .args(["simulate", "--out"])
        .arg(&reference)
        .args(sim)
        .output()
        .expect("simulate --out");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut probe_side = raw_pty();
    let mut monitor_side = raw_pty();
    let mut recorder = Command::new(ODM)
        .args(["record", "--port"])
        .arg(&monitor_side.slave_path)
        .arg("--out")
        .arg(&recorded)
        .args(["--duration", "5"])
        .spawn()
        .expect("odm record");
    // Let the recorder open its port before the probe starts talking.
    std::thread::sleep(Duration::from_millis(800));
    // The cable: bytes written by the simulated probe interface reach the
    // recorder's port. The thread stays blocked in `read` after the probe
    // stops (this test holds both slaves open); it ends with the test.
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = probe_side.master.read(&mut buf) {
            if n == 0 || monitor_side.master.write_all(&buf[..n]).is_err() {
                break;
            }
        }
    });
    let out = Command::new(ODM)
        .args(["simulate", "--port"])
        .arg(&probe_side.slave_path)
        .args(sim)
        .output()
        .expect("simulate --port");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = recorder.wait().expect("odm record ends");
    assert!(status.success(), "odm record: {status:?}");

    let want = probe_payloads(&reference);
    let got = probe_payloads(&recorded);
    assert!(want.len() > 200, "{} reference frames", want.len());
    assert_eq!(got.len(), want.len(), "frame count");
    assert!(
        got == want,
        "the recorded frames differ from the simulated ones"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
