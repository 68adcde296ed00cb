//! # stylegraph-core
//!
//! The Stylegraph host: everything that is not a node.
//!
//! - [`graph`]: the graph model and its RON file format;
//! - [`validate`]: every problem of a graph at once, naming node and port;
//! - [`plugin`]: finding and loading plugins through the C ABI of `stylegraph-abi`;
//! - [`exec`]: the executor with its cache, cancellation, streamed sequences and [`events`].
//!
//! ```no_run
//! use std::sync::Arc;
//! use stylegraph_core::{exec::*, graph::Graph, plugin::PluginHost};
//! let mut host = PluginHost::new();
//! host.load_dir(std::path::Path::new("target/debug"), true, true);
//! let session = Session::new(Arc::new(host), SessionConfig::default());
//! let graph = Graph::load(std::path::Path::new("graphs/seed_to_z.ron")).unwrap();
//! let report = session.run(&graph, &RunOptions::default()).unwrap();
//! println!("{:?}", report.status);
//! ```

pub mod events;
pub mod exec;
pub mod fsutil;
pub mod graph;
mod order;
pub mod plugin;
pub mod seeds;
mod stream;
pub mod types;
pub mod validate;
pub mod value;

pub use events::{Event, EventSink};
pub use exec::{CancelToken, RunError, RunOptions, RunReport, RunStatus, Session, SessionConfig};
pub use graph::{Graph, NodeDef, ParamValue};
pub use plugin::{NodeTypeInfo, PluginHost, PluginLoadError};
pub use validate::{validate, ValidationError};
pub use value::{HostObject, HostTensor, Value};
