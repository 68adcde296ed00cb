//! Compute kernels and network definitions used by the first-party plugins.
//!
//! This crate never sees the plugin ABI: plugins call into it with plain slices. Everything is
//! f32 on the CPU for now; the GPU backends will reuse the same structure.

pub mod default_init;
pub mod fc;
pub mod filter_design;
pub(crate) mod gemm;
pub mod mapping;
pub mod model;
pub mod sg3;
pub(crate) mod simd;
pub mod tensor_map;

pub use mapping::{MappingConfig, MappingNetwork};
pub use model::{Control, Features, ModelError, NoControl, NoiseMode};
pub use tensor_map::{NamedTensor, TensorMap, TensorMapError};
