//! # stylegraph-plugin-io
//!
//! Image and video nodes for Stylegraph: saving images (PNG, JPEG, WebP) with file-name
//! templates, loading images with crop and resize, grids with labels drawn in a built-in
//! bitmap font (the official style-mixing layout included), previews for the editor, and
//! videos — MP4 (H.264), GIF and APNG — encoded frame by frame.
//!
//! The encoders and layouts are plain functions ([`files`], [`grid`], [`video`],
//! [`pixels`]); the nodes ([`nodes`]) check ports and params and call them. See the
//! [`video`] module for the choice of encoder.

pub mod error;
pub mod files;
pub mod font;
pub mod grid;
pub mod nodes;
pub mod pixels;
pub mod video;

pub use error::{IoError, Result};

use nodes::*;

stylegraph_abi::export_plugin!(
    id: "io",
    version: env!("CARGO_PKG_VERSION"),
    description: "Images and videos: save/load images, grids with labels, previews, MP4 (H.264), GIF and APNG",
    nodes: [SaveImage, LoadImage, Grid, Preview, SaveVideo],
);
