//! The example graphs in `graphs/`: every `io.*` node's params and inputs are valid. (The
//! images they consume come from the `stylegan` plugin.)

use std::path::Path;
use stylegraph_core::graph::Graph;
use stylegraph_core::plugin::PluginHost;
use stylegraph_core::validate::{validate, ValidationError};

#[test]
fn example_graphs_use_io_nodes_correctly() {
    let mut host = PluginHost::new();
    host.register_entry(
        stylegraph_plugin_io::stylegraph_plugin_entry,
        Path::new("<builtin>"),
    )
    .unwrap();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../graphs");
    for name in [
        "style_mix.ron",
        "edit_attribute.ron",
        "video.ron",
        "interpolate.ron",
    ] {
        let graph = Graph::load(&dir.join(name)).unwrap_or_else(|e| panic!("{e}"));
        let ours: Vec<&str> = graph
            .nodes
            .iter()
            .filter(|n| n.node_type.starts_with("io."))
            .map(|n| n.id.as_str())
            .collect();
        assert!(!ours.is_empty(), "{name} uses no io node");
        let problems: Vec<String> = validate(&graph, &host)
            .into_iter()
            .filter(|e| {
                matches!(
                    e,
                    ValidationError::UnknownParam { .. }
                        | ValidationError::ParamType { .. }
                        | ValidationError::ParamRange { .. }
                        | ValidationError::ParamChoice { .. }
                        | ValidationError::UnknownInput { .. }
                        | ValidationError::MissingInput { .. }
                ) && e.node().is_some_and(|n| ours.contains(&n))
            })
            .map(|e| e.to_string())
            .collect();
        assert!(problems.is_empty(), "{name}: {problems:#?}");
    }
}
