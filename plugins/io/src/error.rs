//! The error type of the image and video operations.

/// What can go wrong reading or writing images and videos. Messages name the file.
#[derive(Debug, thiserror::Error)]
pub enum IoError {
    /// A file could not be read, created, written or renamed.
    #[error("{path}: {source}")]
    File {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// An image could not be decoded or encoded.
    #[error("{path}: {message}")]
    Image { path: String, message: String },
    /// The video encoder or muxer failed.
    #[error("{path}: video encoding failed: {message}")]
    Video { path: String, message: String },
    /// Inputs or params that cannot be used (shapes, sizes, values).
    #[error("{0}")]
    Invalid(String),
    /// The run was cancelled; partial output was removed.
    #[error("cancelled")]
    Cancelled,
}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, IoError>;

pub(crate) fn invalid<T>(msg: impl Into<String>) -> Result<T> {
    Err(IoError::Invalid(msg.into()))
}

pub(crate) fn file_err(path: &std::path::Path) -> impl Fn(std::io::Error) -> IoError + '_ {
    move |source| IoError::File {
        path: path.display().to_string(),
        source,
    }
}
