//! The error type of the latent-space operations.

use stylegraph_npy::NpyError;

/// What can go wrong in a latent-space operation. Messages name the offending value, so a node
/// can pass them to the user unchanged (prefixed with the port or param).
#[derive(Debug, thiserror::Error)]
pub enum LatentError {
    /// A text param (seed list, layer list, strength list...) could not be parsed.
    #[error("cannot parse {what} {text:?}: {reason}")]
    Parse {
        what: &'static str,
        text: String,
        reason: String,
    },
    /// A tensor has a shape the operation cannot use.
    #[error("{0}")]
    Shape(String),
    /// A value is out of its allowed range, or inputs disagree.
    #[error("{0}")]
    Invalid(String),
    /// A numerical method could not produce a result.
    #[error("{0}")]
    Numeric(String),
    /// Reading or writing a NumPy file failed.
    #[error(transparent)]
    Npy(#[from] NpyError),
    /// Other file errors (with the path in the message).
    #[error("{path}: {message}")]
    File { path: String, message: String },
}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, LatentError>;

pub(crate) fn shape_err<T>(msg: impl Into<String>) -> Result<T> {
    Err(LatentError::Shape(msg.into()))
}

pub(crate) fn invalid<T>(msg: impl Into<String>) -> Result<T> {
    Err(LatentError::Invalid(msg.into()))
}
