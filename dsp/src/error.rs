//! Typed errors of the DSP crate.

/// What went wrong building or feeding a DSP stage.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DspError {
    /// A configuration value is outside the range the stage supports.
    #[error("invalid DSP configuration: {what} = {value} (allowed: {allowed})")]
    InvalidConfig {
        /// Which setting.
        what: &'static str,
        /// The value given, as text.
        value: String,
        /// The range or rule it breaks.
        allowed: &'static str,
    },
    /// A caller-supplied buffer has the wrong length.
    #[error("buffer length mismatch in {stage}: expected {expected}, got {got}")]
    BufferLength {
        /// Which stage.
        stage: &'static str,
        /// Length the stage needs.
        expected: usize,
        /// Length it was given.
        got: usize,
    },
}

impl DspError {
    pub(crate) fn invalid(what: &'static str, value: impl ToString, allowed: &'static str) -> Self {
        Self::InvalidConfig {
            what,
            value: value.to_string(),
            allowed,
        }
    }
}
