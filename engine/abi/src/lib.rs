//! # stylegraph-abi
//!
//! The stable C ABI between the Stylegraph host and its node plugins ([`ffi`]), and the safe
//! Rust SDK with which plugins — the first-party ones too — are written ([`sdk`],
//! [`export_plugin!`]).
//!
//! A plugin is a shared library exporting one symbol, `stylegraph_plugin_entry`, that returns a
//! static [`ffi::SgPlugin`]. C and C++ authors use `include/stylegraph_plugin.h`, generated from
//! [`ffi`] (see `docs/plugin-abi.md` in the repository for the full contract).

pub mod ffi;
pub mod runtime;
pub mod sdk;

/// Everything a plugin author needs: `use stylegraph_abi::prelude::*;`.
pub mod prelude {
    pub use crate::export_plugin;
    pub use crate::ffi::{
        SgDType, SG_LOG_DEBUG, SG_LOG_ERROR, SG_LOG_INFO, SG_LOG_WARN, SG_PARAM_SEED,
    };
    pub use crate::node_bail;
    pub use crate::sdk::{
        ChunkInfo, Context, HostHandle, Node, NodeError, NodeResult, NodeSpec, ParamSpec, TensorRef,
    };
}
