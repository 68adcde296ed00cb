//! The example graphs in `graphs/`: every `latent.*` node's params and inputs are valid, and
//! the part of each graph that needs no other plugin runs. (The rest needs the `stylegan`
//! plugin and the `io` plugin; each is checked in its own crate.)

use std::path::Path;
use std::sync::Arc;
use stylegraph_core::exec::{RunOptions, RunStatus, Session, SessionConfig};
use stylegraph_core::graph::{Graph, PortRef};
use stylegraph_core::plugin::PluginHost;
use stylegraph_core::validate::{validate, ValidationError};

const PREFIX: &str = "latent.";

fn host() -> PluginHost {
    let mut host = PluginHost::new();
    host.register_entry(
        stylegraph_plugin_latent::stylegraph_plugin_entry,
        Path::new("<builtin>"),
    )
    .unwrap();
    host
}

#[test]
fn example_graphs_use_latent_nodes_correctly() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../graphs");
    let host = Arc::new(host());
    for name in [
        "style_mix.ron",
        "edit_attribute.ron",
        "video.ron",
        "interpolate.ron",
    ] {
        let path = dir.join(name);
        let graph = Graph::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let ours: Vec<&str> = graph
            .nodes
            .iter()
            .filter(|n| n.node_type.starts_with(PREFIX))
            .map(|n| n.id.as_str())
            .collect();
        assert!(!ours.is_empty(), "{name} uses no latent node");
        // Errors about our nodes' params and ports (other plugins' node types are unknown
        // here and ignored).
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
        // Run the nodes whose inputs all come from latent nodes.
        let mut runnable = Graph::new();
        for n in &graph.nodes {
            let own_inputs = n
                .inputs
                .values()
                .all(|src| PortRef::parse(src).is_some_and(|p| runnable.node(&p.node).is_some()));
            if n.node_type.starts_with(PREFIX) && own_inputs && n.node_type != "latent.save_latent"
            {
                runnable.nodes.push(n.clone());
            }
        }
        assert!(!runnable.nodes.is_empty(), "{name}: nothing runnable");
        let session = Session::new(host.clone(), SessionConfig::default());
        let report = session.run(&runnable, &RunOptions::default()).unwrap();
        assert_eq!(
            report.status,
            RunStatus::Finished,
            "{name}: {:?}",
            report.failed
        );
    }
}
