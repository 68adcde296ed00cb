//! The error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong while reading a pickle.
///
/// Byte offsets are always positions in the file that was given to the reader (also for the
/// pickles nested inside tensor storage blobs), so they can be checked with a hex viewer or
/// Python's `pickletools.dis`.
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

    /// An error inside a named file (added by [`crate::read_network_pickle_file`]).
    #[error("{}: {source}", path.display())]
    InFile {
        /// The file.
        path: PathBuf,
        /// What went wrong in it.
        #[source]
        source: Box<PickleError>,
    },

    /// The input is not a pickle at all (empty, a zip archive, text...).
    #[error("not a pickle ({0})")]
    NotAPickle(String),

    /// An opcode or its argument runs past the end of the data.
    #[error("truncated: opcode {opcode} at byte {offset} needs {needed} bytes, file has {left} left")]
    Truncated {
        /// Opcode name (or what was being read).
        opcode: &'static str,
        /// Offset of the opcode.
        offset: usize,
        /// Bytes the opcode needs after its own byte.
        needed: u64,
        /// Bytes that remain.
        left: usize,
    },

    /// A byte that is not a pickle opcode this reader knows.
    #[error("unknown pickle opcode 0x{byte:02x} at byte {offset}")]
    UnknownOpcode {
        /// The byte.
        byte: u8,
        /// Its offset.
        offset: usize,
    },

    /// The opcodes are individually valid but do not form a well-formed pickle
    /// (stack underflow, missing MARK, undefined memo entry, wrong operand types...).
    #[error("malformed pickle at byte {offset}: {message}")]
    Malformed {
        /// Offset of the opcode that failed.
        offset: usize,
        /// What was expected.
        message: String,
    },

    /// A safety limit (stack size, memo size, nesting depth...) was exceeded.
    #[error("limit exceeded at byte {offset}: {message}")]
    Limit {
        /// Offset where the limit was hit.
        offset: usize,
        /// Which limit.
        message: String,
    },

    /// The pickle is valid but does not have the expected network-pickle structure.
    #[error("not a network pickle: {0}")]
    NotANetwork(String),

    /// The requested network is not in the pickle.
    #[error("no '{key}' in this pickle (has: {})", if available.is_empty() { "nothing usable".to_string() } else { available.join(", ") })]
    MissingKey {
        /// The key asked for.
        key: String,
        /// The networks that are present.
        available: Vec<String>,
    },

    /// A tensor or its storage could not be decoded.
    #[error("tensor '{name}': {message}")]
    Tensor {
        /// State-dict name of the tensor.
        name: String,
        /// What was wrong.
        message: String,
    },

    /// A feature of the format that this reader does not implement.
    #[error("unsupported: {0}")]
    Unsupported(String),
}

impl PickleError {
    pub(crate) fn malformed(offset: usize, message: impl Into<String>) -> Self {
        PickleError::Malformed {
            offset,
            message: message.into(),
        }
    }

    pub(crate) fn limit(offset: usize, message: impl Into<String>) -> Self {
        PickleError::Limit {
            offset,
            message: message.into(),
        }
    }

    pub(crate) fn tensor(name: &str, message: impl Into<String>) -> Self {
        PickleError::Tensor {
            name: name.to_string(),
            message: message.into(),
        }
    }
}
