//! Renders screenshots of the editor for the README with egui_kittest and wgpu (lavapipe works):
//!
//! ```text
//! cargo run -p stylegraph-editor --example screenshots            # the editor's test graph
//! cargo run -p stylegraph-editor --example screenshots -- GRAPH.ron PLUGIN_DIR [NODE] [--no-run]
//! ```
//!
//! With a graph and a plugin directory (e.g. `target/debug`), the real plugins are loaded and
//! NODE (default: the last node) is shown in the inspector. The PNGs go to `docs/images/`
//! (`editor-overview.png`, and `editor-features.png` when a node outputs feature maps); with
//! `--no-run` the graph is only laid out (`editor-layout.png`).

use egui::Vec2;
use egui_kittest::Harness;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use stylegraph_core::exec::SessionConfig;
use stylegraph_core::graph::Graph;
use stylegraph_core::plugin::PluginHost;
use stylegraph_editor::{EditorApp, EditorOptions};

fn save(h: &mut Harness<'_, EditorApp>, dir: &Path, name: &str) {
    let image = h.render().expect("render");
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    image
        .save_with_format(&tmp, image::ImageFormat::Png)
        .expect("write png");
    std::fs::rename(&tmp, &path).expect("rename png");
    println!("wrote {}", path.display());
}

fn wait_idle(h: &mut Harness<'_, EditorApp>) {
    let deadline = Instant::now() + Duration::from_secs(600);
    h.step();
    while h.state().is_running() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        h.step();
    }
    let _ = h.try_run();
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let no_run = args.iter().any(|a| a == "--no-run");
    args.retain(|a| a != "--no-run");
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let (graph_path, host, focus) = match args.as_slice() {
        [graph, plugins, rest @ ..] => {
            let mut host = PluginHost::new();
            host.load_dir(Path::new(plugins), true, true);
            for p in host.problems() {
                eprintln!("{p}");
            }
            (PathBuf::from(graph), host, rest.first().cloned())
        }
        _ => {
            let mut host = PluginHost::new();
            host.register_entry(
                sgtest_editor_nodes::stylegraph_plugin_entry,
                Path::new("<builtin>"),
            )
            .expect("test plugin");
            (
                manifest.join("tests/graphs/explore.ron"),
                host,
                Some("gradient".to_owned()),
            )
        }
    };
    let graph = Graph::load(&graph_path).expect("graph");
    let focus = focus.or_else(|| graph.nodes.last().map(|n| n.id.clone()));
    let options = EditorOptions {
        recent_store: None,
        session: SessionConfig::default(),
    };
    let mut app = EditorApp::new(Arc::new(host), options);
    // Run times depend on the machine; the pictures should not.
    app.set_show_timings(false);
    app.load_graph(&graph, Some(graph_path.clone()));
    let mut h = Harness::builder()
        .with_size(Vec2::new(1600.0, 900.0))
        .wgpu()
        .build_ui_state(|ui, app: &mut EditorApp| app.show(ui), app);
    let _ = h.try_run();
    let out = manifest.join("../docs/images");
    std::fs::create_dir_all(&out).expect("docs/images");
    if let Some(id) = &focus {
        h.state_mut().select(id);
    }
    if no_run {
        let _ = h.try_run();
        save(&mut h, &out, "editor-layout.png");
        return;
    }
    h.state_mut().run();
    wait_idle(&mut h);
    // Nodes grew with their thumbnails: fit the view again.
    h.state_mut().fit_view();
    let _ = h.try_run();
    save(&mut h, &out, "editor-overview.png");
    // A node with feature maps, if any, in the feature viewer.
    let features = h
        .state()
        .run_view()
        .outputs
        .iter()
        .find_map(|(node, views)| {
            views.iter().find_map(|(port, v)| {
                matches!(v, stylegraph_editor::preview::OutputView::Features { .. })
                    .then(|| (node.clone(), port.clone()))
            })
        });
    if let Some((node, port)) = features {
        h.state_mut().select(&node);
        h.state_mut().view_port(&port);
        let _ = h.try_run();
        std::thread::sleep(Duration::from_millis(300));
        let _ = h.try_run();
        save(&mut h, &out, "editor-features.png");
    }
}
