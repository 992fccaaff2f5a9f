//! The one error type of the core. Every input-driven failure is a value of
//! [`MmzError`]; nothing on a decoding path panics.

use thiserror::Error;

/// Errors raised by the core. The binding crate maps [`MmzError::Corrupt`] and
/// [`MmzError::Truncated`] to `mmz.CorruptDataError`, everything else to `mmz.MmzError`.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum MmzError {
    /// The input does not start with the mmz magic bytes.
    #[error("not an mmz frame ({0})")]
    NotMmz(String),
    /// The frame was written by a newer format version.
    #[error("unsupported mmz format version {found}; this build reads versions up to {supported}, upgrade mmz")]
    UnsupportedVersion { found: u8, supported: u8 },
    /// A checksum or structural check failed; `what` names the damaged part.
    #[error("corrupt data: {what}: {detail}")]
    Corrupt { what: String, detail: String },
    /// The input ended before the structure it announced.
    #[error("truncated data: {0}")]
    Truncated(String),
    /// The frame needs a codec this build does not have.
    #[error("unsupported codec id {0}: this build cannot decode it, upgrade mmz")]
    UnknownCodec(u8),
    /// A caller passed arguments outside the documented domain.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl MmzError {
    /// Shorthand for a [`MmzError::Corrupt`] error.
    pub fn corrupt(what: impl Into<String>, detail: impl Into<String>) -> Self {
        MmzError::Corrupt {
            what: what.into(),
            detail: detail.into(),
        }
    }
    /// True for errors that mean the data (not the caller) is bad.
    pub fn is_data_error(&self) -> bool {
        matches!(
            self,
            MmzError::Corrupt { .. } | MmzError::Truncated(_) | MmzError::NotMmz(_)
        )
    }
}

/// Result alias used across the crate.
pub type Result<T> = std::result::Result<T, MmzError>;
