//! # stylegraph-plugin-latent
//!
//! Latent-space nodes for Stylegraph: seeds -> Z with the official rule, latent files (`.npy`,
//! the projector's `projected_w.npz`), truncation, style mixing, blending, keyframe
//! interpolation (including the official looping cubic latent walk), and attribute directions:
//! loading and applying them, and finding them with SeFa, GANSpace or a learned linear
//! boundary.
//!
//! The nodes work on plain tensors; model-specific inputs (`w_avg`, the style-affine weights,
//! mapped W) come from `stylegan.*` nodes. The arithmetic lives in plain functions
//! ([`math`], [`interp`], [`directions`], [`files`]) that the nodes call and the tests check
//! against hand-computed values and the reference fixtures.

pub mod directions;
pub mod error;
pub mod files;
pub mod interp;
pub mod math;
pub mod nodes;

pub use error::{LatentError, Result};

use nodes::*;

stylegraph_abi::export_plugin!(
    id: "latent",
    version: env!("CARGO_PKG_VERSION"),
    description: "Latent spaces: seeds, latent files, truncation, style mixing, interpolation, attribute directions (SeFa, GANSpace, learned boundaries)",
    nodes: [
        Seeds,
        RandomZ,
        ZFromFile,
        WFromFile,
        SaveLatent,
        Truncation,
        StyleMix,
        Blend,
        Interpolate,
        Select,
        DirectionFromFile,
        ApplyDirection,
        Sefa,
        Ganspace,
        LearnDirection,
    ],
);
