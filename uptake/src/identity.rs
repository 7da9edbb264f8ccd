//! The installation's identity: a random pseudonym and an Ed25519 key pair
//! made once at install (spec "Device key").
//!
//! The private key lives in a file that only its owner can read (mode 0600
//! on Unix) and never leaves the monitor; the public key is registered with
//! the programme as a `device,public_key` line.

use std::io::Write;
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};

use crate::record::{RandomId, bytes_from_hex, hex_from_bytes};

/// What went wrong with a device key file.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key file could not be written or read.
    #[error("key file {path}: {source}")]
    Io {
        /// The key file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The key file exists already (init never overwrites a key).
    #[error("key file {0} already exists; refusing to overwrite a device key")]
    Exists(PathBuf),
    /// The key file is not in the expected format.
    #[error("key file {path}: {what}")]
    Malformed {
        /// The key file.
        path: PathBuf,
        /// What is wrong.
        what: &'static str,
    },
    /// Someone other than the owner can read the key file.
    #[error("key file {path} is readable by others (mode {mode:o}); run chmod 600 on it")]
    Exposed {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
}

/// First line of a key file, so a stray file is never mistaken for a key.
const KEY_FILE_MAGIC: &str = "odm-uptake-device-key 1";

/// The device pseudonym with its signing key.
pub struct DeviceIdentity {
    /// The installation's pseudonym (random UUID v4, not a hardware serial).
    pub device: RandomId,
    signing_key: SigningKey,
}

impl DeviceIdentity {
    /// Makes a fresh pseudonym and key pair from the operating system's
    /// random source.
    pub fn generate() -> Self {
        Self {
            device: RandomId::new_random(),
            signing_key: SigningKey::generate(&mut rand::rngs::OsRng),
        }
    }

    /// An identity from a known pseudonym and 32-byte secret (for seeded
    /// synthetic data and golden tests).
    pub fn from_secret(device: RandomId, secret: [u8; 32]) -> Self {
        Self {
            device,
            signing_key: SigningKey::from_bytes(&secret),
        }
    }

    /// The public key, raw 32 bytes.
    pub fn public_key(&self) -> VerifyingKey {
        self.signing_key.verifying_key()
    }

    /// The public key as 64 lower-case hex characters.
    pub fn public_key_hex(&self) -> String {
        hex_from_bytes(self.public_key().as_bytes())
    }

    /// The register line `device,public_key` (no newline).
    pub fn register_line(&self) -> String {
        format!("{},{}", self.device, self.public_key_hex())
    }

    /// Signs a message; returns the 64-byte signature.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.signing_key.sign(message).to_bytes()
    }

    /// Writes the key file, creating it with owner-only permissions; never
    /// overwrites an existing file.
    pub fn save(&self, path: &Path) -> Result<(), KeyError> {
        let io = |source| KeyError::Io {
            path: path.to_owned(),
            source,
        };
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                KeyError::Exists(path.to_owned())
            } else {
                io(e)
            }
        })?;
        let text = format!(
            "{KEY_FILE_MAGIC}\n{}\n{}\n",
            self.device,
            hex_from_bytes(self.signing_key.as_bytes())
        );
        file.write_all(text.as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)
    }

    /// Reads a key file, refusing one that others can read.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let io = |source| KeyError::Io {
            path: path.to_owned(),
            source,
        };
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path).map_err(io)?.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(KeyError::Exposed {
                    path: path.to_owned(),
                    mode,
                });
            }
        }
        let text = std::fs::read_to_string(path).map_err(io)?;
        let malformed = |what| KeyError::Malformed {
            path: path.to_owned(),
            what,
        };
        let mut lines = text.lines();
        if lines.next() != Some(KEY_FILE_MAGIC) {
            return Err(malformed("not an odm uptake device key (first line)"));
        }
        let device = lines
            .next()
            .and_then(|l| RandomId::parse(l, "device").ok())
            .ok_or_else(|| malformed("line 2 is not a UUID v4 device pseudonym"))?;
        let secret = lines
            .next()
            .and_then(bytes_from_hex::<32>)
            .ok_or_else(|| malformed("line 3 is not 64 lower-case hex characters"))?;
        Ok(Self::from_secret(device, secret))
    }
}

/// Checks an Ed25519 signature (strict verification: no malleable forms).
pub fn signature_verifies(public_key: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> bool {
    let Ok(key) = VerifyingKey::from_bytes(public_key) else {
        return false;
    };
    let signature = ed25519_dalek::Signature::from_bytes(signature);
    key.verify_strict(message, &signature).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_is_owner_only_and_round_trips() {
        let dir = crate::test_dir("identity_roundtrip");
        let path = dir.join("device.key");
        let id = DeviceIdentity::generate();
        id.save(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let back = DeviceIdentity::load(&path).unwrap();
        assert_eq!(back.device, id.device);
        assert_eq!(back.public_key_hex(), id.public_key_hex());
        assert!(matches!(id.save(&path), Err(KeyError::Exists(_))));
    }

    #[cfg(unix)]
    #[test]
    fn refuses_a_key_file_others_can_read() {
        use std::os::unix::fs::PermissionsExt;
        let dir = crate::test_dir("identity_exposed");
        let path = dir.join("device.key");
        DeviceIdentity::generate().save(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            DeviceIdentity::load(&path),
            Err(KeyError::Exposed { mode: 0o644, .. })
        ));
    }

    #[test]
    fn signature_verifies_only_for_the_signed_message() {
        let id = DeviceIdentity::generate();
        let sig = id.sign(b"abc");
        let pk = id.public_key().to_bytes();
        assert!(signature_verifies(&pk, b"abc", &sig));
        assert!(!signature_verifies(&pk, b"abd", &sig));
        let other = DeviceIdentity::generate().public_key().to_bytes();
        assert!(!signature_verifies(&other, b"abc", &sig));
    }
}
