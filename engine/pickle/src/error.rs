//! The error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong while reading a pickle or a torch checkpoint.
///
/// Every variant names its origin (the file name, or whatever name was given to
/// [`crate::NetworkPickle::from_bytes`]; for zip checkpoints `archive.pt:prefix/data.pkl`).
/// Byte offsets are positions in that origin, also for the pickles nested inside legacy
/// tensor storage blobs, so they can be checked with a hex viewer or `pickletools.dis`.
#[derive(Debug, thiserror::Error)]
pub enum PickleError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },

    /// An opcode's argument (or other data) runs past the end of the input.
    #[error("{origin}: byte {offset}: truncated {what} (needs {needed} bytes, {left} left)")]
    Truncated {
        /// The file.
        origin: String,
        /// Offset of the opcode (or of the structure) that was cut.
        offset: u64,
        /// Opcode name, or what was being read.
        what: String,
        /// Bytes that were needed.
        needed: u64,
        /// Bytes that remained.
        left: u64,
    },

    /// A byte that is not a pickle opcode this reader knows.
    #[error("{origin}: byte {offset}: unknown pickle opcode 0x{byte:02x}")]
    UnknownOpcode {
        /// The file.
        origin: String,
        /// Offset of the byte.
        offset: u64,
        /// The byte.
        byte: u8,
    },

    /// The data is individually readable but not well formed (stack underflow, missing MARK,
    /// undefined memo entry, an operand of the wrong type, a bad storage header...).
    #[error("{origin}: byte {offset}: {message}")]
    Malformed {
        /// The file.
        origin: String,
        /// Offset of the opcode or structure that failed.
        offset: u64,
        /// What was expected.
        message: String,
    },

    /// A safety limit (stack size, memo size, nesting depth, memory budget...) was exceeded.
    #[error("{origin}: byte {offset}: limit exceeded: {message}")]
    Limit {
        /// The file.
        origin: String,
        /// Offset where the limit was hit (0 when it is not tied to a position).
        offset: u64,
        /// Which limit.
        message: String,
    },

    /// A valid file that uses a feature this reader does not implement.
    #[error("{origin}: unsupported: {message}")]
    Unsupported {
        /// The file.
        origin: String,
        /// What is not supported.
        message: String,
    },

    /// The file is readable but its objects do not have the expected structure
    /// (not a network pickle, a module without state, a state dict that is not a dict...).
    #[error("{origin}: {message}")]
    Structure {
        /// The file.
        origin: String,
        /// What was expected and what was found.
        message: String,
    },

    /// The requested network (or object) is not in the file.
    #[error("{origin}: no '{name}' in this file (has: {})", list_or_nothing(.available))]
    Missing {
        /// The file.
        origin: String,
        /// The name asked for.
        name: String,
        /// What is there instead.
        available: Vec<String>,
    },

    /// A tensor or its storage could not be decoded.
    #[error("{origin}: tensor '{name}': {message}")]
    Tensor {
        /// The file.
        origin: String,
        /// State-dict name of the tensor.
        name: String,
        /// What is wrong with it.
        message: String,
    },
}

fn list_or_nothing(names: &[String]) -> String {
    if names.is_empty() {
        "nothing usable".to_string()
    } else {
        names.join(", ")
    }
}

impl PickleError {
    pub(crate) fn malformed(origin: &str, offset: usize, message: impl Into<String>) -> Self {
        PickleError::Malformed {
            origin: origin.to_string(),
            offset: offset as u64,
            message: message.into(),
        }
    }

    pub(crate) fn limit(origin: &str, offset: usize, message: impl Into<String>) -> Self {
        PickleError::Limit {
            origin: origin.to_string(),
            offset: offset as u64,
            message: message.into(),
        }
    }

    pub(crate) fn truncated(
        origin: &str,
        offset: usize,
        what: impl Into<String>,
        needed: u64,
        left: usize,
    ) -> Self {
        PickleError::Truncated {
            origin: origin.to_string(),
            offset: offset as u64,
            what: what.into(),
            needed,
            left: left as u64,
        }
    }

    pub(crate) fn structure(origin: &str, message: impl Into<String>) -> Self {
        PickleError::Structure {
            origin: origin.to_string(),
            message: message.into(),
        }
    }

    pub(crate) fn unsupported(origin: &str, message: impl Into<String>) -> Self {
        PickleError::Unsupported {
            origin: origin.to_string(),
            message: message.into(),
        }
    }

    pub(crate) fn tensor(origin: &str, name: &str, message: impl Into<String>) -> Self {
        PickleError::Tensor {
            origin: origin.to_string(),
            name: name.to_string(),
            message: message.into(),
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = PickleError> = std::result::Result<T, E>;
