//! StyleGAN3 (T and R) synthesis network.

pub mod config;

pub use config::{InputSpec, LayerSpec, Sg3Config, Sg3Kind, Sg3Schedule};
