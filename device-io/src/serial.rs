//! Serial-port source (USB CDC-ACM, UART, pseudo-terminal) that survives the
//! interface being unplugged and plugged back, and port listing for the UI.

use std::io::{self, Read};
use std::time::{Duration, Instant};

use crate::source::{ByteSource, READ_TIMEOUT, SourceError, SourceRead};

/// Default baud rate (spec "Transport": a UART at 921 600 baud 8N1; for USB
/// CDC-ACM the value is nominal).
pub const DEFAULT_BAUD: u32 = 921_600;

/// How often a disconnected source tries to reopen its port.
pub const RECONNECT_INTERVAL: Duration = Duration::from_millis(250);

/// Reads a serial device by path with short timeouts; reconnects by itself.
///
/// When a read fails (the device vanished, the pty's other side closed) the
/// source reports [`SourceRead::Disconnected`] once, then retries opening the
/// same path every [`RECONNECT_INTERVAL`] and reports
/// [`SourceRead::Reconnected`] when it succeeds. Because the path is reopened,
/// a stable name (e.g. a `/dev/serial/by-id/…` link) follows the device even
/// if the kernel gives it a new node.
pub struct SerialSource {
    path: String,
    baud: u32,
    port: Option<Box<dyn serialport::SerialPort>>,
    last_attempt: Instant,
}

impl std::fmt::Debug for SerialSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SerialSource")
            .field("path", &self.path)
            .field("baud", &self.baud)
            .field("connected", &self.port.is_some())
            .finish()
    }
}

fn open_port(path: &str, baud: u32) -> Result<Box<dyn serialport::SerialPort>, serialport::Error> {
    serialport::new(path, baud).timeout(READ_TIMEOUT).open()
}

impl SerialSource {
    /// Opens `path` at `baud` (8N1). Fails if the port cannot be opened now;
    /// later losses are handled by reconnecting.
    pub fn open(path: &str, baud: u32) -> Result<Self, SourceError> {
        let port = open_port(path, baud).map_err(|e| SourceError::Open {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(Self {
            path: path.to_owned(),
            baud,
            port: Some(port),
            last_attempt: Instant::now(),
        })
    }

    /// A source for a device that may not be there yet (the monitor started
    /// before the probe interface was plugged in): it starts disconnected,
    /// tries to open `path` every [`RECONNECT_INTERVAL`], and reports
    /// [`SourceRead::Reconnected`] when the device first appears.
    pub fn open_or_wait(path: &str, baud: u32) -> Self {
        let port = open_port(path, baud).ok();
        Self {
            path: path.to_owned(),
            baud,
            port,
            last_attempt: Instant::now(),
        }
    }

    /// Whether the port is open right now.
    pub fn is_connected(&self) -> bool {
        self.port.is_some()
    }

    fn try_reconnect(&mut self) -> SourceRead {
        let since = self.last_attempt.elapsed();
        if since < RECONNECT_INTERVAL {
            std::thread::sleep((RECONNECT_INTERVAL - since).min(READ_TIMEOUT));
            return SourceRead::Idle;
        }
        self.last_attempt = Instant::now();
        match open_port(&self.path, self.baud) {
            Ok(port) => {
                self.port = Some(port);
                SourceRead::Reconnected
            }
            Err(_) => {
                std::thread::sleep(READ_TIMEOUT);
                SourceRead::Idle
            }
        }
    }
}

impl ByteSource for SerialSource {
    fn read_chunk(&mut self, buf: &mut [u8]) -> Result<SourceRead, SourceError> {
        let Some(port) = self.port.as_mut() else {
            return Ok(self.try_reconnect());
        };
        match port.read(buf) {
            Ok(n) if n > 0 => Ok(SourceRead::Bytes(n)),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
                ) =>
            {
                Ok(SourceRead::Idle)
            }
            // A tty in raw mode polled readable that reads 0 bytes has hung
            // up; any other error means the device went away.
            _ => {
                self.port = None;
                self.last_attempt = Instant::now();
                Ok(SourceRead::Disconnected)
            }
        }
    }

    fn describe(&self) -> String {
        format!("{} at {} baud", self.path, self.baud)
    }
}

/// A serial port the system knows of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortInfo {
    /// Device path to open, e.g. `/dev/ttyACM0`.
    pub path: String,
    /// What kind of port it is, e.g. `USB 0403:6001 FTDI FT232R`, `PCI`,
    /// `Bluetooth` or `unknown`.
    pub description: String,
}

/// The serial ports present now, for a port picker.
///
/// Built without libudev: on Linux this scans `/sys/class/tty` and lists
/// devices backed by real hardware (USB with vendor/product id, serial
/// number and names read from sysfs, PCI, platform UARTs); virtual
/// terminals and pseudo-terminals are not listed (type their path instead).
/// Returns an empty list if the system cannot be scanned.
pub fn list_ports() -> Vec<PortInfo> {
    // serialport's sysfs scan panics if /sys/class/tty is missing (e.g. in a
    // minimal container), so check first.
    #[cfg(target_os = "linux")]
    if !std::path::Path::new("/sys/class/tty").is_dir() {
        return Vec::new();
    }
    let Ok(ports) = serialport::available_ports() else {
        return Vec::new();
    };
    ports
        .into_iter()
        .map(|p| {
            let description = match p.port_type {
                serialport::SerialPortType::UsbPort(u) => {
                    let mut d = format!("USB {:04x}:{:04x}", u.vid, u.pid);
                    for s in [u.manufacturer, u.product, u.serial_number]
                        .into_iter()
                        .flatten()
                    {
                        d.push(' ');
                        d.push_str(&s);
                    }
                    d
                }
                serialport::SerialPortType::PciPort => "PCI".into(),
                serialport::SerialPortType::BluetoothPort => "Bluetooth".into(),
                serialport::SerialPortType::Unknown => "unknown".into(),
            };
            PortInfo {
                path: p.port_name,
                description,
            }
        })
        .collect()
}

/// How long a write to a port may block before it is an error. A
/// receiver that stops reading (a pseudo-terminal's buffer full) blocks the
/// writer; one starved of CPU for a second is not a broken link (a 1 s limit
/// failed `cli/tests/pty_record.rs` once, with both cores loaded by builds).
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens a serial device for writing probe bytes (for `odm simulate --port`
/// and tests): 8N1 at `baud`, writes time out after [`WRITE_TIMEOUT`].
pub fn open_serial_writer(
    path: &str,
    baud: u32,
) -> Result<Box<dyn serialport::SerialPort>, SourceError> {
    serialport::new(path, baud)
        .timeout(WRITE_TIMEOUT)
        .open()
        .map_err(|e| SourceError::Open {
            path: path.to_owned(),
            reason: e.to_string(),
        })
}
