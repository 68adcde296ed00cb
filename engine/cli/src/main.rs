//! `stylegraph`: runs, validates and inspects node graphs without the editor.
//!
//! Exit codes: 0 success, 1 a node failed, 2 invalid graph or arguments, 130 cancelled (Ctrl-C).

use anyhow::{anyhow, bail, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::{BTreeSet, HashMap};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use stylegraph_core::events::Event;
use stylegraph_core::exec::{CancelToken, RunError, RunOptions, RunStatus, Session, SessionConfig};
use stylegraph_core::graph::{parse_cli_value, Graph, ParamValue};
use stylegraph_core::plugin::PluginHost;
use stylegraph_core::seeds;
use stylegraph_core::validate::{closest, validate};

mod bench;
mod commands;
mod peak;

/// Process exit codes (documented in the README and `--help`).
const EXIT_NODE_FAILED: i32 = 1;
const EXIT_INVALID: i32 = 2;
const EXIT_CANCELLED: i32 = 130;

/// Most seeds one `--seeds` list may hold (split bigger sweeps with --shard).
const MAX_SEEDS: usize = 10_000_000;

#[derive(Parser)]
#[command(
    name = "stylegraph",
    version,
    about = "Run StyleGAN node graphs headless",
    after_help = "Exit codes: 0 ok, 1 a node failed, 2 invalid graph or arguments, 130 cancelled."
)]
struct Cli {
    /// Extra plugin directory or library file (repeatable). Searched before
    /// STYLEGRAPH_PLUGIN_PATH and the default locations next to the executable.
    #[arg(long = "plugins", global = true, value_name = "PATH")]
    plugins: Vec<PathBuf>,
    /// Do not load plugins from STYLEGRAPH_PLUGIN_PATH or the default locations.
    #[arg(long, global = true)]
    no_default_plugins: bool,
    /// More log output (-v info, -vv debug). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true)]
    quiet: bool,
    /// Threads of the compute kernels, in this process and in the plugins it loads (default:
    /// every logical CPU; the same as setting RAYON_NUM_THREADS). On machines whose logical
    /// CPUs are hyper-threads of fewer cores, compare with the real core count using
    /// `stylegraph bench --threads N` (docs/performance.md).
    #[arg(long, global = true, value_parser = clap::value_parser!(u32).range(1..=1024))]
    threads: Option<u32>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a graph.
    Run(RunArgs),
    /// Check a graph against the loaded node types and report every problem.
    Validate {
        /// The graph file (.ron).
        graph: PathBuf,
        /// Print the problems as a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Generate images from seeds, like the official gen_images.py (builds and runs the
    /// equivalent graph; --save-graph writes it for the editor).
    Generate(GenerateArgs),
    /// Convert a network pickle to .safetensors (+ a .json of its construction arguments).
    Convert {
        /// The model to read (.pkl, .safetensors or builtin:<name>).
        input: PathBuf,
        /// The .safetensors file to write (the .json goes beside it).
        output: PathBuf,
        /// Which network of a training snapshot.
        #[arg(long, default_value = "G_ema")]
        network: String,
    },
    /// Serve the HTTP automation API (docs/server.md): submit graphs, stream events, fetch outputs.
    Serve(ServeArgs),
    /// Measure CPU performance: time per image, GFLOP/s against the machine's FMA peak and
    /// peak memory of the built-in networks, and the graph executor's overhead
    /// (docs/performance.md).
    Bench(bench::BenchArgs),
    /// List the node types of every loaded plugin, with ports, params and docs.
    Nodes {
        /// Print JSON (plugins, node types, refused plugins).
        #[arg(long)]
        json: bool,
        /// Only node types whose id contains this text.
        filter: Option<String>,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum EventFormat {
    /// Progress bars on a terminal, one line per node otherwise.
    Human,
    /// One JSON object per event on stdout.
    Json,
}

#[derive(Args)]
struct RunArgs {
    /// The graph file (.ron).
    graph: PathBuf,
    /// Override a param: `node.param=value` (repeatable). Values: true/false, numbers, or text.
    #[arg(long = "set", value_name = "NODE.PARAM=VALUE")]
    set: Vec<String>,
    /// How to report progress.
    #[arg(long, value_enum, default_value_t = EventFormat::Human)]
    events: EventFormat,
    /// Run the graph once per seed: a list like `0,3,5-9`. Sets the seed param (see
    /// --seed-param) and replaces `{seed}` / `{seed:04}` in text params (e.g. output paths).
    #[arg(long, value_name = "LIST")]
    seeds: Option<String>,
    /// The param the seeds go into, `node.param`. Default: the graph's only seed param.
    #[arg(long, value_name = "NODE.PARAM")]
    seed_param: Option<String>,
    /// Run only slice I of N of the seeds (`I/N`, 0-based), for array jobs on a cluster.
    #[arg(long, value_name = "I/N")]
    shard: Option<String>,
    /// Memory budget of the output cache, in MiB.
    #[arg(long, default_value_t = 2048)]
    cache_mb: usize,
}

#[derive(Args)]
struct GenerateArgs {
    /// Network: a .pkl, a .safetensors, or builtin:<arch>-<res> (default: a built-in untrained
    /// StyleGAN3-T 256 px model that makes abstract images).
    #[arg(long, default_value = commands::DEFAULT_NETWORK)]
    network: String,
    /// Seeds, e.g. `0,3,5-9`.
    #[arg(long, default_value = "0-3")]
    seeds: String,
    /// Truncation psi.
    #[arg(long, default_value_t = 1.0)]
    trunc: f64,
    /// Truncate only the first N rows of ws.
    #[arg(long)]
    trunc_cutoff: Option<i64>,
    /// Class label of a conditional network.
    #[arg(long = "class")]
    class: Option<i64>,
    /// Noise mode (StyleGAN2).
    #[arg(long, default_value = "const", value_parser = ["const", "random", "none"])]
    noise_mode: String,
    /// StyleGAN3 input translation `X,Y`.
    #[arg(long, default_value = "0,0", allow_hyphen_values = true)]
    translate: String,
    /// StyleGAN3 input rotation in degrees.
    #[arg(long, default_value_t = 0.0, allow_hyphen_values = true)]
    rotate: f64,
    /// Where to write seedNNNN.png.
    #[arg(long, default_value = "out")]
    outdir: PathBuf,
    /// Also write seedNNNN.npy: the float32 [1,3,H,W] network output before conversion.
    #[arg(long)]
    raw: bool,
    /// Write the equivalent graph to this .ron file (open it in the editor, or `stylegraph run` it).
    #[arg(long, value_name = "FILE")]
    save_graph: Option<PathBuf>,
    /// How to report progress.
    #[arg(long, value_enum, default_value_t = EventFormat::Human)]
    events: EventFormat,
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on. A non-loopback address requires a token.
    #[arg(long, default_value = stylegraph_server::DEFAULT_ADDR)]
    addr: std::net::SocketAddr,
    /// Read the bearer token from this file (else from STYLEGRAPH_TOKEN; a token on the
    /// command line would show in `ps`).
    #[arg(long, value_name = "PATH")]
    token_file: Option<PathBuf>,
    /// Most runs waiting in the queue (more are refused with 429).
    #[arg(long, default_value_t = 16)]
    queue_limit: usize,
    /// Ended runs remembered.
    #[arg(long, default_value_t = 100)]
    history: usize,
    /// Memory for kept outputs of runs, in MiB (oldest dropped first).
    #[arg(long, default_value_t = 1024)]
    keep_mb: usize,
    /// Largest request body, in MiB.
    #[arg(long, default_value_t = 16)]
    body_limit_mb: usize,
    /// Most simultaneous connections.
    #[arg(long, default_value_t = 64)]
    max_connections: usize,
    /// Memory budget of the node output cache, in MiB.
    #[arg(long, default_value_t = 2048)]
    cache_mb: usize,
}

/// An error that maps to an exit code.
#[derive(Debug)]
struct Exit(i32);

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {}", self.0)
    }
}
impl std::error::Error for Exit {}

fn main() {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            std::process::exit(if e.use_stderr() { EXIT_INVALID } else { 0 });
        }
    };
    if let Some(t) = cli.threads {
        // Before any thread exists: every rayon pool (ours and each plugin's own copy of
        // rayon) sizes itself from this variable when it starts.
        std::env::set_var("RAYON_NUM_THREADS", t.to_string());
    }
    init_logging(cli.verbose, cli.quiet);
    let code = match real_main(cli) {
        Ok(code) => code,
        Err(e) => {
            if let Some(Exit(code)) = e.downcast_ref::<Exit>() {
                *code
            } else {
                eprintln!("error: {e:#}");
                EXIT_INVALID
            }
        }
    };
    std::process::exit(code);
}

fn init_logging(verbose: u8, quiet: bool) {
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

fn load_plugins(cli: &Cli) -> PluginHost {
    let host = PluginHost::discover(
        &cli.plugins,
        !cli.no_default_plugins,
        !cli.no_default_plugins,
    );
    if !cli.quiet {
        for p in host.problems() {
            eprintln!("warning: plugin refused: {p}");
        }
    }
    host
}

fn real_main(cli: Cli) -> Result<i32> {
    match &cli.command {
        Command::Run(args) => run(&cli, args),
        Command::Validate { graph, json } => validate_cmd(&cli, graph, *json),
        Command::Nodes { json, filter } => nodes_cmd(&cli, *json, filter.as_deref()),
        Command::Generate(args) => generate_cmd(&cli, args),
        Command::Serve(args) => serve_cmd(&cli, args),
        Command::Bench(args) => {
            let args = bench::BenchArgs {
                threads: cli.threads,
                ..args.clone()
            };
            bench::bench_cmd(&args, cli.quiet)
        }
        Command::Convert {
            input,
            output,
            network,
        } => convert_cmd(&cli, input, output, network),
    }
}

fn load_graph(path: &Path) -> Result<Graph> {
    Graph::load(path).map_err(|e| {
        eprintln!("error: {e}");
        Exit(EXIT_INVALID).into()
    })
}

// ---------------------------------------------------------------------------------------------
// validate / nodes

fn validate_cmd(cli: &Cli, path: &Path, json: bool) -> Result<i32> {
    let host = load_plugins(cli);
    let graph = load_graph(path)?;
    let errors = validate(&graph, &host);
    if json {
        println!("{}", serde_json::to_string_pretty(&errors)?);
    } else if errors.is_empty() {
        println!("{}: ok ({} nodes)", path.display(), graph.nodes.len());
    } else {
        eprintln!("{}: {} problem(s):", path.display(), errors.len());
        for e in &errors {
            eprintln!("  - {e}");
        }
    }
    Ok(if errors.is_empty() { 0 } else { EXIT_INVALID })
}

fn nodes_cmd(cli: &Cli, json: bool, filter: Option<&str>) -> Result<i32> {
    let host = load_plugins(cli);
    let types: Vec<_> = host
        .node_types()
        .values()
        .filter(|t| filter.is_none_or(|f| t.type_id.contains(f)))
        .collect();
    if json {
        let plugins: Vec<_> = host
            .plugins()
            .iter()
            .map(|p| {
                serde_json::json!({
                    "id": p.id, "version": p.version, "description": p.description,
                    "path": p.path.display().to_string(), "abi_minor": p.abi_minor,
                })
            })
            .collect();
        let out = serde_json::json!({
            "plugins": plugins,
            "node_types": types,
            "refused": host.problems().iter().map(|p| p.to_string()).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(0);
    }
    if host.plugins().is_empty() {
        eprintln!(
            "no plugins found: pass --plugins DIR, set STYLEGRAPH_PLUGIN_PATH, or install plugins \
             next to the stylegraph executable"
        );
        return Ok(EXIT_INVALID);
    }
    let mut out = String::new();
    for t in types {
        out.push_str(&format!(
            "{}  ({}, plugin {} {})\n",
            t.type_id, t.display_name, t.plugin_id, t.plugin_version
        ));
        if !t.category.is_empty() {
            out.push_str(&format!("  category: {}\n", t.category));
        }
        for line in t.doc.lines() {
            out.push_str(&format!("  {line}\n"));
        }
        for p in &t.inputs {
            let opt = if p.optional { ", optional" } else { "" };
            let stream = if p.stream { ", stream" } else { "" };
            out.push_str(&format!(
                "  in  {}: {}{opt}{stream} — {}\n",
                p.name, p.port_type, p.doc
            ));
        }
        for p in &t.outputs {
            let stream = if p.stream { ", stream" } else { "" };
            out.push_str(&format!(
                "  out {}: {}{stream} — {}\n",
                p.name, p.port_type, p.doc
            ));
        }
        for p in &t.params {
            let mut extra = String::new();
            if p.min.is_some() || p.max.is_some() {
                let b = |v: Option<f64>| v.map_or("..".to_string(), |v| v.to_string());
                extra.push_str(&format!(" in [{}, {}]", b(p.min), b(p.max)));
            }
            if !p.choices.is_empty() {
                extra.push_str(&format!(" one of {}", p.choices.join("|")));
            }
            out.push_str(&format!(
                "  param {}: {} = {}{extra} — {}\n",
                p.name,
                p.kind.name(),
                p.default,
                p.doc
            ));
        }
        if !t.deterministic {
            out.push_str("  (not deterministic: re-runs every time unless seeded)\n");
        }
        out.push('\n');
    }
    print!("{out}");
    Ok(0)
}

// ---------------------------------------------------------------------------------------------
// run

/// Applies `--set node.param=value` overrides, checking that the node exists.
fn apply_sets(graph: &mut Graph, sets: &[String]) -> Result<()> {
    for s in sets {
        let (target, value) = s
            .split_once('=')
            .ok_or_else(|| anyhow!("--set {s:?}: expected NODE.PARAM=VALUE"))?;
        let (node, param) = target
            .rsplit_once('.')
            .filter(|(n, p)| !n.is_empty() && !p.is_empty())
            .ok_or_else(|| anyhow!("--set {s:?}: expected NODE.PARAM=VALUE"))?;
        let ids: Vec<String> = graph.nodes.iter().map(|n| n.id.clone()).collect();
        let Some(def) = graph.node_mut(node) else {
            let hint = closest(node, ids.iter().map(String::as_str))
                .map(|c| format!(" (did you mean {c:?}?)"))
                .unwrap_or_default();
            bail!("--set {s:?}: the graph has no node {node:?}{hint}");
        };
        def.params.insert(param.to_owned(), parse_cli_value(value));
    }
    Ok(())
}

/// Finds the param that `--seeds` sets: the graph's only seed param, or else the only one on a
/// source node (a node without inputs).
fn seed_target(
    graph: &Graph,
    host: &PluginHost,
    explicit: Option<&str>,
) -> Result<(String, String)> {
    if let Some(t) = explicit {
        let (n, p) = t
            .rsplit_once('.')
            .ok_or_else(|| anyhow!("--seed-param {t:?}: expected NODE.PARAM"))?;
        if graph.node(n).is_none() {
            bail!("--seed-param {t:?}: the graph has no node {n:?}");
        }
        return Ok((n.to_owned(), p.to_owned()));
    }
    let mut found = Vec::new();
    for n in &graph.nodes {
        if let Some(t) = host.node_type(&n.node_type) {
            for p in t.params.iter().filter(|p| p.is_seed) {
                found.push((n.id.clone(), p.name.clone()));
            }
        }
    }
    if found.len() > 1 {
        // Prefer the seeds of source nodes (the latent's seed, not e.g. a noise seed downstream).
        let sources: Vec<(String, String)> = found
            .iter()
            .filter(|(n, _)| graph.node(n).is_some_and(|d| d.inputs.is_empty()))
            .cloned()
            .collect();
        if sources.len() == 1 {
            return Ok(sources.into_iter().next().unwrap_or_default());
        }
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => bail!("--seeds: the graph has no seed param; name one with --seed-param NODE.PARAM"),
        _ => bail!(
            "--seeds: the graph has several seed params ({}); choose one with --seed-param",
            found
                .iter()
                .map(|(n, p)| format!("{n}.{p}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Replaces `{seed}` and `{seed:0N}` in every text param.
fn substitute_seed(graph: &mut Graph, seed: i64) {
    for n in &mut graph.nodes {
        for v in n.params.values_mut() {
            if let ParamValue::Str(s) = v {
                if s.contains("{seed") {
                    *s = seeds::format_template(s, seed);
                }
            }
        }
    }
}

fn run(cli: &Cli, args: &RunArgs) -> Result<i32> {
    let host = Arc::new(load_plugins(cli));
    let mut graph = load_graph(&args.graph)?;
    if let Err(e) = apply_sets(&mut graph, &args.set) {
        eprintln!("error: {e}");
        return Ok(EXIT_INVALID);
    }

    // The list of runs: one, or one per seed.
    let mut runs: Vec<(Option<i64>, Graph)> = Vec::new();
    match &args.seeds {
        None => {
            if args.shard.is_some() {
                eprintln!("error: --shard needs --seeds");
                return Ok(EXIT_INVALID);
            }
            runs.push((None, graph));
        }
        Some(list) => {
            let prepared = (|| -> Result<Vec<(Option<i64>, Graph)>> {
                let mut all = seeds::parse_seed_list(list, MAX_SEEDS).map_err(|e| anyhow!(e))?;
                if let Some(shard) = &args.shard {
                    all = seeds::shard(&all, shard).map_err(|e| anyhow!("--{e}"))?;
                }
                let (node, param) = seed_target(&graph, &host, args.seed_param.as_deref())?;
                Ok(all
                    .into_iter()
                    .map(|seed| {
                        let mut g = graph.clone();
                        if let Some(def) = g.node_mut(&node) {
                            def.params.insert(param.clone(), ParamValue::Int(seed));
                        }
                        substitute_seed(&mut g, seed);
                        (Some(seed), g)
                    })
                    .collect())
            })();
            match prepared {
                Ok(r) => runs = r,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    return Ok(EXIT_INVALID);
                }
            }
        }
    }

    execute_runs(
        host,
        runs,
        args.events,
        args.cache_mb,
        cli.quiet,
        &args.graph.display().to_string(),
    )
}

/// Runs prepared graphs (one per seed, or one) in one session, so unchanged nodes (the loaded
/// model) come from the cache. Returns the exit code.
fn execute_runs(
    host: Arc<PluginHost>,
    runs: Vec<(Option<i64>, Graph)>,
    events: EventFormat,
    cache_mb: usize,
    quiet: bool,
    origin: &str,
) -> Result<i32> {
    let session = Session::new(
        host,
        SessionConfig {
            cache_budget_bytes: cache_mb.saturating_mul(1 << 20),
            ..SessionConfig::default()
        },
    );
    let cancel = CancelToken::new();
    {
        let c = cancel.clone();
        // Ctrl-C cancels the run; nodes stop promptly and leave no partial files.
        let _ = ctrlc::set_handler(move || c.cancel());
    }
    let renderer = Renderer::new(events, quiet);
    let sink = renderer.clone();
    let options = RunOptions {
        cancel: cancel.clone(),
        on_event: Some(Arc::new(move |e: &Event| sink.event(e))),
    };

    let mut any_failed = false;
    for (seed, g) in &runs {
        if let Some(seed) = seed {
            renderer.note(&format!("seed {seed}"));
        }
        let report = match session.run(g, &options) {
            Ok(r) => r,
            Err(RunError::Invalid(errors)) => {
                renderer.finish();
                eprintln!("{origin}: {} problem(s):", errors.len());
                for e in &errors {
                    eprintln!("  - {e}");
                }
                return Ok(EXIT_INVALID);
            }
        };
        match report.status {
            RunStatus::Finished => {}
            RunStatus::Failed => any_failed = true,
            RunStatus::Cancelled => {
                renderer.finish();
                if !quiet {
                    eprintln!("cancelled");
                }
                return Ok(EXIT_CANCELLED);
            }
        }
        if events == EventFormat::Human && !quiet {
            renderer.finish();
            print_results(g, &report);
        }
    }
    renderer.finish();
    Ok(if any_failed { EXIT_NODE_FAILED } else { 0 })
}

fn generate_cmd(cli: &Cli, args: &GenerateArgs) -> Result<i32> {
    let prepared = (|| -> Result<(Graph, Vec<i64>)> {
        let options = commands::GenerateOptions {
            network: args.network.clone(),
            trunc: args.trunc,
            trunc_cutoff: args.trunc_cutoff,
            class: args.class,
            noise_mode: args.noise_mode.clone(),
            translate: commands::parse_pair(&args.translate)
                .map_err(|e| anyhow!("--translate: {e}"))?,
            rotate: args.rotate,
            outdir: args.outdir.clone(),
            raw: args.raw,
        };
        Ok((
            commands::generate_graph(&options)?,
            seeds::parse_seed_list(&args.seeds, MAX_SEEDS).map_err(|e| anyhow!(e))?,
        ))
    })();
    let (graph, seed_list) = match prepared {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(EXIT_INVALID);
        }
    };
    if let Some(path) = &args.save_graph {
        graph.save(path).map_err(|e| anyhow!("{e}"))?;
        if !cli.quiet {
            eprintln!("wrote {}", path.display());
        }
    }
    let host = Arc::new(load_plugins(cli));
    let runs = seed_list
        .into_iter()
        .map(|seed| {
            let mut g = graph.clone();
            if let Some(z) = g.node_mut("z") {
                z.params.insert("seed".into(), ParamValue::Int(seed));
            }
            substitute_seed(&mut g, seed);
            (Some(seed), g)
        })
        .collect();
    execute_runs(host, runs, args.events, 2048, cli.quiet, "generate")
}

fn serve_cmd(cli: &Cli, args: &ServeArgs) -> Result<i32> {
    let token = match &args.token_file {
        Some(p) => Some(
            std::fs::read_to_string(p)
                .map_err(|e| anyhow!("--token-file {}: {e}", p.display()))?
                .trim()
                .to_owned(),
        ),
        None => std::env::var(stylegraph_server::TOKEN_ENV)
            .ok()
            .filter(|t| !t.is_empty()),
    };
    let config = stylegraph_server::ServerConfig {
        addr: args.addr,
        token,
        queue_limit: args.queue_limit,
        history_limit: args.history,
        body_limit: args.body_limit_mb.saturating_mul(1 << 20),
        retain_budget_bytes: args.keep_mb.saturating_mul(1 << 20),
        max_connections: args.max_connections,
    };
    let host = Arc::new(load_plugins(cli));
    let shutdown = CancelToken::new();
    {
        let s = shutdown.clone();
        let _ = ctrlc::set_handler(move || s.cancel());
    }
    let session = SessionConfig {
        cache_budget_bytes: args.cache_mb.saturating_mul(1 << 20),
        ..SessionConfig::default()
    };
    match stylegraph_server::Server::start(config, host, session, shutdown) {
        Ok(server) => {
            eprintln!("serving on http://{}/v1/ (Ctrl-C stops)", server.addr());
            server.wait();
            Ok(0)
        }
        Err(e @ stylegraph_server::ServerError::Bind { .. }) => {
            eprintln!("error: {e}");
            Ok(EXIT_NODE_FAILED)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(EXIT_INVALID)
        }
    }
}

fn convert_cmd(cli: &Cli, input: &Path, output: &Path, network: &str) -> Result<i32> {
    let (Some(i), Some(o)) = (input.to_str(), output.to_str()) else {
        eprintln!("error: paths must be valid UTF-8");
        return Ok(EXIT_INVALID);
    };
    if output.extension().and_then(|e| e.to_str()) != Some("safetensors") {
        eprintln!(
            "error: {}: the output must end in .safetensors",
            output.display()
        );
        return Ok(EXIT_INVALID);
    }
    let host = Arc::new(load_plugins(cli));
    let graph = commands::convert_graph(i, o, network);
    let code = execute_runs(
        host,
        vec![(None, graph)],
        EventFormat::Human,
        2048,
        cli.quiet,
        "convert",
    )?;
    if code == 0 && !cli.quiet {
        eprintln!(
            "wrote {} and {}",
            output.display(),
            output.with_extension("json").display()
        );
    }
    Ok(code)
}

/// Prints the outputs of the graph's sink nodes (those nothing else reads) and any failures.
fn print_results(graph: &Graph, report: &stylegraph_core::exec::RunReport) {
    let used: BTreeSet<&str> = graph
        .nodes
        .iter()
        .flat_map(|n| n.inputs.values())
        .filter_map(|s| s.rsplit_once('.').map(|(n, _)| n))
        .collect();
    let mut lines = Vec::new();
    for n in &graph.nodes {
        if used.contains(n.id.as_str()) {
            continue;
        }
        if let Some(outs) = report.outputs.get(&n.id) {
            for (port, v) in outs {
                lines.push(format!("{}.{port} = {}", n.id, v.summary()));
            }
        }
    }
    for (node, msg) in &report.failed {
        lines.push(format!("FAILED {node}: {msg}"));
    }
    let mut out = std::io::stdout().lock();
    for l in lines {
        let _ = writeln!(out, "{l}");
    }
    let _ = writeln!(
        out,
        "{} executed, {} cached, {} failed, {} skipped in {:.1} ms",
        report.executed.len(),
        report.cached.len(),
        report.failed.len(),
        report.skipped.len(),
        report.duration_ms
    );
}

/// Renders events as JSON lines, progress bars (terminal) or plain lines.
#[derive(Clone)]
struct Renderer {
    inner: Arc<Mutex<RendererState>>,
}

struct RendererState {
    format: EventFormat,
    quiet: bool,
    multi: Option<MultiProgress>,
    bars: HashMap<String, ProgressBar>,
}

impl Renderer {
    fn new(format: EventFormat, quiet: bool) -> Renderer {
        let multi = (format == EventFormat::Human && !quiet && std::io::stderr().is_terminal())
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Renderer {
            inner: Arc::new(Mutex::new(RendererState {
                format,
                quiet,
                multi,
                bars: HashMap::new(),
            })),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, RendererState> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn note(&self, msg: &str) {
        let st = self.state();
        if st.format == EventFormat::Human && !st.quiet {
            match &st.multi {
                Some(m) => {
                    let _ = m.println(msg);
                }
                None => eprintln!("{msg}"),
            }
        }
    }

    fn finish(&self) {
        let mut st = self.state();
        for (_, b) in st.bars.drain() {
            b.finish_and_clear();
        }
    }

    fn event(&self, e: &Event) {
        let mut st = self.state();
        if st.format == EventFormat::Json {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{}", e.to_json_line());
            let _ = out.flush();
            return;
        }
        if st.quiet {
            return;
        }
        if st.multi.is_some() {
            st.bar_event(e);
        } else {
            plain_event(e);
        }
    }
}

impl RendererState {
    fn bar_event(&mut self, e: &Event) {
        let Some(multi) = self.multi.clone() else {
            return;
        };
        let style =
            ProgressStyle::with_template("{spinner} {prefix:<24} [{bar:30}] {percent:>3}% {msg}")
                .map(|s| s.progress_chars("=> "))
                .unwrap_or_else(|_| ProgressStyle::default_bar());
        match e {
            Event::NodeStarted {
                node, node_type, ..
            } => {
                let bar = multi.add(ProgressBar::new(1000));
                bar.set_style(style);
                bar.set_prefix(node.clone());
                bar.set_message(node_type.clone());
                bar.enable_steady_tick(std::time::Duration::from_millis(120));
                self.bars.insert(node.clone(), bar);
            }
            Event::NodeProgress {
                node,
                fraction,
                message,
                ..
            } => {
                if let Some(b) = self.bars.get(node) {
                    b.set_position((fraction * 1000.0) as u64);
                    if !message.is_empty() {
                        b.set_message(message.clone());
                    }
                }
            }
            Event::NodeFinished {
                node,
                duration_ms,
                cached,
                ..
            } => {
                if let Some(b) = self.bars.remove(node) {
                    b.finish_and_clear();
                }
                let how = if *cached {
                    "cached".to_string()
                } else {
                    format!("{duration_ms:.1} ms")
                };
                let _ = multi.println(format!("  done    {node} ({how})"));
            }
            Event::NodeFailed { node, error, .. } => {
                if let Some(b) = self.bars.remove(node) {
                    b.finish_and_clear();
                }
                let _ = multi.println(format!("  FAILED  {node}: {error}"));
            }
            Event::NodeSkipped { node, reason, .. } => {
                let _ = multi.println(format!("  skipped {node}: {reason}"));
            }
            Event::Log {
                node,
                level,
                message,
                ..
            } => {
                let _ = multi.println(format!("  [{level}] {node}: {message}"));
            }
            _ => {}
        }
    }
}

fn plain_event(e: &Event) {
    match e {
        Event::NodeFinished {
            node,
            duration_ms,
            cached,
            ..
        } => {
            if *cached {
                eprintln!("  done    {node} (cached)");
            } else {
                eprintln!("  done    {node} ({duration_ms:.1} ms)");
            }
        }
        Event::NodeFailed { node, error, .. } => eprintln!("  FAILED  {node}: {error}"),
        Event::NodeSkipped { node, reason, .. } => eprintln!("  skipped {node}: {reason}"),
        Event::Log {
            node,
            level,
            message,
            ..
        } => eprintln!("  [{level}] {node}: {message}"),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_overrides_params_and_names_unknown_nodes() {
        let mut g = Graph::from_ron_str(
            r#"(version: 1, nodes: [(id: "seed", type: "core.seed_to_z")])"#,
            "<test>",
        )
        .expect("graph");
        apply_sets(&mut g, &["seed.seed=42".into()]).expect("set");
        assert_eq!(
            g.node("seed").and_then(|n| n.params.get("seed")),
            Some(&ParamValue::Int(42))
        );
        let err = apply_sets(&mut g, &["sed.seed=1".into()]).expect_err("unknown node");
        assert!(err.to_string().contains("did you mean \"seed\""), "{err}");
        assert!(apply_sets(&mut g, &["seed=1".into()]).is_err());
    }
}
