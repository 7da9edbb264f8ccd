//! A pseudo-terminal pair for `odm verify`: the master end plays the probe
//! interface, the slave end is opened by path through the device-io serial
//! source exactly as a real port would be.

use anyhow::Context;
use nix::pty::{Winsize, openpty};
use nix::sys::termios::{SetArg, Termios, cfmakeraw, tcgetattr, tcsetattr};
use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

/// An open pseudo-terminal pair.
pub struct PtyPair {
    /// The interface side: what is written here arrives at the slave.
    pub master: File,
    /// Kept open so the slave device exists for as long as the pair does.
    _slave: OwnedFd,
    /// Path of the slave device (e.g. `/dev/pts/7`).
    pub slave_path: PathBuf,
}

/// Opens a pair with the slave in raw mode from the start, so no byte of
/// the binary stream is translated, echoed or held for a line ending before
/// the reader has configured the port itself.
pub fn open_pty_pair() -> anyhow::Result<PtyPair> {
    let pair =
        openpty(None::<&Winsize>, None::<&Termios>).context("opening a pseudo-terminal pair")?;
    let mut tio = tcgetattr(&pair.slave).context("reading the pseudo-terminal's settings")?;
    cfmakeraw(&mut tio);
    tcsetattr(&pair.slave, SetArg::TCSANOW, &tio)
        .context("setting the pseudo-terminal to raw mode")?;
    let slave_path =
        nix::unistd::ttyname(&pair.slave).context("naming the pseudo-terminal's slave device")?;
    Ok(PtyPair {
        master: File::from(pair.master),
        _slave: pair.slave,
        slave_path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn bytes_pass_through_unchanged() {
        let mut pty = open_pty_pair().unwrap();
        let mut reader = File::open(&pty.slave_path).unwrap();
        // Bytes a cooked terminal would translate or swallow: CR, LF, ^C, ^D, DEL, XON/XOFF.
        let bytes: Vec<u8> = (0u8..=255)
            .chain([b'\r', b'\n', 3, 4, 0x7f, 0x11, 0x13])
            .collect();
        pty.master.write_all(&bytes).unwrap();
        let mut got = vec![0u8; bytes.len()];
        reader.read_exact(&mut got).unwrap();
        assert_eq!(got, bytes);
    }
}
