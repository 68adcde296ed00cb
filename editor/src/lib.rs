//! # stylegraph-editor
//!
//! The Stylegraph node editor: an eframe application built on `stylegraph-core`. It edits the
//! same RON graph files the `stylegraph` CLI runs.
//!
//! - [`document`]: the edited graph (canvas nodes and wires, file round trip, undo/redo);
//! - [`canvas`]: how the nodes are drawn (egui-snarl), typed wires, context menus;
//! - [`params`]: param widgets built from the plugins' param descriptors;
//! - [`runner`] and [`runview`]: runs on a background thread with one long-lived engine session
//!   (so re-runs are incremental), and the per-node status the UI shows;
//! - [`preview`]: images, latent strips and feature-map views of node outputs;
//! - [`worker`]: the newest-request-only background worker behind interactive controls;
//! - [`app`]: the window (palette, canvas, inspector and viewer, status bar, dialogs).

pub mod app;
pub mod canvas;
pub mod document;
pub mod filedialog;
pub mod palette;
pub mod params;
pub mod preview;
pub mod recent;
pub mod runner;
pub mod runview;
pub mod worker;

pub use app::{EditorApp, EditorOptions, PendingAction};
pub use document::Document;
