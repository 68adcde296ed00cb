//! Shared helpers of the editor's integration tests.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;
use stylegraph_core::graph::Graph;
use stylegraph_core::plugin::PluginHost;

/// A plugin host with the editor's test nodes (`edtest.*`) registered in-process.
pub fn host() -> Arc<PluginHost> {
    let mut host = PluginHost::new();
    host.register_entry(
        sgtest_editor_nodes::stylegraph_plugin_entry,
        std::path::Path::new("<builtin>"),
    )
    .expect("the test plugin registers");
    Arc::new(host)
}

/// A graph file of the editor's tests.
pub fn graph_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("graphs")
        .join(name)
}

/// Loads a graph file of the editor's tests.
pub fn load(name: &str) -> Graph {
    Graph::load(&graph_path(name)).expect("test graph loads")
}
