//! Helpers shared by the CLI's integration tests.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use nix::pty::{Winsize, openpty};
use nix::sys::termios::{SetArg, Termios, cfmakeraw, tcgetattr, tcsetattr};

/// A pseudo-terminal in raw mode: the test holds the master, `odm` opens
/// the slave's path as its port.
pub struct Pty {
    /// The test's side.
    pub master: File,
    /// Kept open so the slave stays usable while `odm` opens and closes it.
    pub _slave: OwnedFd,
    /// The path `odm` opens.
    pub slave_path: PathBuf,
}

/// Opens a pseudo-terminal pair with the slave in raw mode.
pub fn raw_pty() -> Pty {
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
