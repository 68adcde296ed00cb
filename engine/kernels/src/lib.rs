//! Compute kernels and network definitions used by the first-party plugins.
//!
//! This crate never sees the plugin ABI: plugins call into it with plain slices. Everything is
//! f32 on the CPU for now; the GPU backends will reuse the same structure.
//!
//! * [`mapping`]: the mapping network of both generations (z -> w) and truncation.
//! * [`sg3`]: the StyleGAN3-T/-R synthesis network ([`sg3::Sg3Synthesis`]), its configuration
//!   and layer schedule ([`sg3::Sg3Config`]), and the gen_images-style user transform.
//! * [`sg2`]: the StyleGAN2 synthesis network; [`generator`]: either family behind one type.
//! * [`default_init`]: a seeded, untrained SG3 generator of any structure; [`builtin`]: the
//!   built-in models by name.
//! * [`filter_design`]: SciPy-compatible Kaiser low-pass and SG3-R radial filter design.
//!
//! CPU performance notes (docs/performance.md): 3×3 modulated convolutions run as Winograd
//! F(4×4, 3×3) GEMMs whose operands the transforms write in micro-panel order
//! (`packed_gemm.rs`: AVX-512 or AVX2 micro-kernels, with software prefetch); the weights are
//! modulated and transformed in one pass. The filtered leaky ReLU is fused per band of output
//! rows (polyphase up-filter, nonlinearity, down-filter evaluated only at kept samples) and
//! streams tmp rows through a small ring, sharing each load between the outputs that read it.
//! Everything is parallel over rayon's pool; a layer never holds its ×2 upsampled intermediate.

pub(crate) mod buffer_pool;
pub mod builtin;
pub mod default_init;
pub mod fc;
pub mod filter_design;
pub(crate) mod gemm;
pub mod generator;
pub mod mapping;
pub mod model;
pub(crate) mod packed_gemm;
pub mod sg2;
pub mod sg3;
pub(crate) mod simd;
pub mod stage_time;
pub mod tensor_map;
pub(crate) mod worker_scratch;

pub use generator::{image_to_u8, Architecture, Generator, Synthesis, SynthesisOptions};
pub use mapping::{MappingConfig, MappingNetwork};
pub use model::{Control, Features, ModelError, NoControl, NoiseMode};
pub use tensor_map::{NamedTensor, TensorMap, TensorMapError};

// Analysis and synthetic-image detection (issue #5).
pub mod classify;
pub mod equivariance;
#[cfg(feature = "image-io")]
pub mod image_folder;
pub mod resample;
pub mod resnet;
pub mod spectrum;
