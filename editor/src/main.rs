//! `stylegraph-editor`: the node editor window.

use clap::Parser;
use std::path::PathBuf;
use std::sync::Arc;
use stylegraph_core::plugin::PluginHost;
use stylegraph_editor::{EditorApp, EditorOptions};

/// The Stylegraph node editor: edit and run the RON graphs the `stylegraph` CLI runs.
#[derive(Parser, Debug)]
#[command(name = "stylegraph-editor", version, about)]
struct Args {
    /// A graph file to open.
    graph: Option<PathBuf>,
    /// Also load the plugins in this directory, or this plugin file (repeatable).
    #[arg(long = "plugins", value_name = "DIR", alias = "plugin-dir")]
    plugin_dirs: Vec<PathBuf>,
    /// Do not load plugins from STYLEGRAPH_PLUGIN_PATH or next to the executable.
    #[arg(long)]
    no_default_plugins: bool,
    /// Upper bound of memory the output cache holds, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 2048)]
    cache_mib: usize,
}

fn main() {
    // Parsing first: `--help` and `--version` must work without a display.
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("STYLEGRAPH_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();

    // The same plugin search as the CLI: explicit directories, STYLEGRAPH_PLUGIN_PATH, then
    // the default locations next to the executable.
    let host = PluginHost::discover(
        &args.plugin_dirs,
        !args.no_default_plugins,
        !args.no_default_plugins,
    );
    for p in host.problems() {
        eprintln!("stylegraph-editor: {p}");
    }
    let host = Arc::new(host);
    let session = stylegraph_core::exec::SessionConfig {
        cache_budget_bytes: args.cache_mib.saturating_mul(1 << 20),
        ..Default::default()
    };
    let options = EditorOptions {
        recent_store: stylegraph_editor::recent::default_store(),
        session,
    };
    let mut app = EditorApp::new(host, options);
    if let Some(path) = &args.graph {
        if let Err(e) = app.open_path(path) {
            eprintln!("stylegraph-editor: {e}");
            std::process::exit(1);
        }
    }
    let native = eframe::NativeOptions {
        viewport: eframe::egui::ViewportBuilder::default()
            .with_title("Stylegraph")
            .with_inner_size([1400.0, 860.0]),
        ..Default::default()
    };
    if let Err(e) = eframe::run_native(
        "stylegraph-editor",
        native,
        Box::new(move |_cc| Ok(Box::new(app))),
    ) {
        eprintln!("stylegraph-editor: cannot open the window: {e}");
        std::process::exit(1);
    }
}
