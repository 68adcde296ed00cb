//! `stylegraph bench`: CPU performance figures of the built-in networks and of the graph
//! executor (docs/performance.md).
//!
//! Every network is measured in a fresh child process of the same executable (the hidden
//! `bench --one NET` mode), so that its peak resident memory is its own and not that of a
//! network measured before it; the child prints one JSON object on stdout.
//!
//! FLOP counts are nominal and implementation-independent: twice the multiply-adds of the
//! network's convolutions as a direct convolution would do them, computed from the
//! configuration (see [`sg3_layer_macs`], [`sg2_block_macs`], [`mapping_macs`]). Our kernels do
//! fewer operations than that where they use Winograd (SG3 3×3 convolutions), so the GFLOP/s
//! figures are "effective" rates. Not counted: style affines, weight modulation and
//! demodulation, biases, activations, noise and the FIR filters (SG2 up-sampling, SG3 filtered
//! leaky ReLU); the per-layer breakdown splits each SG3 layer's time into its kernel stages
//! (weights, Winograd transforms, GEMM, filter), measured in the same fused run.

use anyhow::{anyhow, bail, Context as _, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use stylegraph_core::exec::{RunOptions, RunStatus, Session, SessionConfig};
use stylegraph_core::graph::{Graph, ParamValue};
use stylegraph_core::plugin::PluginHost;
use stylegraph_kernels::default_init::{sg3_state_dict, InitTuning};
use stylegraph_kernels::sg2::Sg2Config;
use stylegraph_kernels::sg3::{LayerSpec, Sg3Config, Sg3Kind};
use stylegraph_kernels::stage_time;
use stylegraph_kernels::{
    builtin, Features, Generator, MappingConfig, MappingNetwork, NoControl, Synthesis,
    SynthesisOptions,
};

use crate::peak::{self, PeakFlops};

/// The official network sizes measured by default.
pub const DEFAULT_NETWORKS: &[&str] = &[
    "stylegan3-t-256",
    "stylegan3-t-1024",
    "stylegan3-r-1024",
    "stylegan2-1024",
];

/// Small structures of every family (`--quick`): seconds in a debug build, for tests.
pub const QUICK_NETWORKS: &[&str] = &[
    "stylegan3-t-64?cmax=64",
    "stylegan3-r-64?cmax=64",
    "stylegan2-64?cmax=64",
];

/// Options of `stylegraph bench`.
#[derive(Args, Clone, Debug)]
pub struct BenchArgs {
    /// Built-in networks to measure, comma-separated (`<arch>-<res>[?cbase=N&cmax=N]`, arch
    /// stylegan3-t, stylegan3-r or stylegan2). Default: the official sizes, or small ones with
    /// --quick.
    #[arg(long, value_delimiter = ',', value_name = "NAMES")]
    pub networks: Vec<String>,
    /// Timed runs per network (the median is reported).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub runs: u32,
    /// Untimed warm-up runs per network before the timed ones.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(0..=100))]
    pub warmup: u32,
    /// Images per run (one forward call); times are reported per image.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub batch: u32,
    /// Threads of the compute pool: the global `--threads` (default: all logical CPUs).
    #[arg(skip)]
    pub threads: Option<u32>,
    /// Small networks and a short node chain: a quick check that everything runs.
    #[arg(long)]
    pub quick: bool,
    /// Skip the per-layer breakdown (one extra untimed-in-total pass per network, two for SG3).
    #[arg(long)]
    pub no_layers: bool,
    /// Nodes in the chain that measures the executor's per-node overhead.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub chain: Option<u32>,
    /// Print the results as JSON on stdout instead of the table, or write them to FILE (the
    /// table still goes to stdout).
    #[arg(long, value_name = "FILE", num_args = 0..=1)]
    pub json: Option<Option<PathBuf>>,
    /// Measure one network in this process and print its result as one JSON line (what the
    /// parent process runs in a child).
    #[arg(long, value_name = "NET", hide = true)]
    pub one: Option<String>,
}

/// Everything one `bench` invocation measured (the `--json` document).
#[derive(Debug, Serialize, Deserialize)]
pub struct BenchReport {
    pub machine: Machine,
    pub settings: Settings,
    pub peak: PeakFlops,
    pub networks: Vec<NetworkResult>,
    pub graph: GraphOverhead,
}

/// The machine the figures come from.
#[derive(Debug, Serialize, Deserialize)]
pub struct Machine {
    pub cpu: String,
    pub logical_cpus: usize,
    pub arch: String,
    pub os: String,
    /// 1-minute load average when the bench started (other work on the machine skews times).
    pub load_average: Option<f64>,
}

/// The options the figures were measured with.
#[derive(Debug, Serialize, Deserialize)]
pub struct Settings {
    pub runs: u32,
    pub warmup: u32,
    pub batch: u32,
    pub threads: usize,
    pub quick: bool,
    pub profile: String,
}

/// Figures of one network.
#[derive(Debug, Serialize, Deserialize)]
pub struct NetworkResult {
    pub name: String,
    pub architecture: String,
    pub resolution: usize,
    pub parameters: usize,
    /// Nominal GFLOP of one image (module docs).
    pub gflop_per_image: f64,
    pub batch: u32,
    pub threads: usize,
    /// Seconds to build the network (seeded weights + kernel preparation); not in the figures.
    pub build_s: f64,
    /// Wall seconds per image of every timed run.
    pub run_s_per_image: Vec<f64>,
    pub median_s_per_image: f64,
    pub min_s_per_image: f64,
    /// CPU seconds (all threads) per image over the timed runs.
    pub cpu_s_per_image: Option<f64>,
    /// `gflop_per_image / median_s_per_image`.
    pub gflops: f64,
    /// Peak resident memory while running (weights + forward passes), MiB: the high-water mark
    /// is reset after the build where the kernel allows it (`peak_rss_reset`).
    pub peak_rss_mib: Option<f64>,
    /// Whether the high-water mark could be reset after the build; if not, `peak_rss_mib`
    /// includes the build.
    pub peak_rss_reset: bool,
    /// Peak resident memory of the whole child process, build included, MiB.
    pub peak_rss_build_mib: Option<f64>,
    /// Per layer (SG3) or block (SG2), one image, measured after the timed runs.
    pub layers: Vec<LayerTiming>,
}

/// Time of one stage of a network for one image.
#[derive(Debug, Serialize, Deserialize)]
pub struct LayerTiming {
    pub name: String,
    /// What the stage does, e.g. `conv3x3+filtered_lrelu up2 down2`.
    pub kind: String,
    pub gflop: f64,
    pub ms: f64,
    /// SG3 layers: where the layer's time went, ms per kernel stage of the same (fused) run.
    pub stages_ms: Option<StageSplit>,
}

/// The kernel stages of one SG3 layer, ms each (wall time of the stage's parallel sections;
/// the layer's `ms` also covers the style affine and the band bookkeeping).
#[derive(Debug, Serialize, Deserialize)]
pub struct StageSplit {
    /// Modulation, demodulation and the Winograd weight transform.
    pub weights: f64,
    pub input_transform: f64,
    pub gemm: f64,
    pub output_transform: f64,
    /// Bias, up-filter, nonlinearity, down-filter.
    pub filter: f64,
}

impl StageSplit {
    fn from_secs(t: [f64; 5]) -> StageSplit {
        let ms = |i: usize| t[i] * 1e3;
        StageSplit {
            weights: ms(0),
            input_transform: ms(1),
            gemm: ms(2),
            output_transform: ms(3),
            filter: ms(4),
        }
    }
}

/// The executor's own cost, measured on a chain of scalar `core.math` nodes.
#[derive(Debug, Serialize, Deserialize)]
pub struct GraphOverhead {
    pub chain_nodes: usize,
    /// First run: validation, instance creation and execution of every node.
    pub first_run_ms: f64,
    /// Median of runs with the output cache cleared (instances kept), per node.
    pub per_node_us: f64,
    /// Median re-run of the unchanged graph (every node served from the cache).
    pub cached_rerun_ms: f64,
    pub repeats: usize,
}

fn threads(args: &BenchArgs) -> usize {
    args.threads.map(|t| t as usize).unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    })
}

fn init_pool(args: &BenchArgs) {
    if let Some(t) = args.threads {
        // Fails only if the pool already exists, which the bench never does before this.
        if let Err(e) = rayon::ThreadPoolBuilder::new()
            .num_threads(t as usize)
            .build_global()
        {
            tracing::warn!("could not size the thread pool: {e}");
        }
    }
}

/// Runs `stylegraph bench`. `quiet`: no progress output.
pub fn bench_cmd(args: &BenchArgs, quiet: bool) -> Result<i32> {
    init_pool(args);
    if let Some(net) = &args.one {
        let r = measure_network(net, args)?;
        println!("{}", serde_json::to_string(&r)?);
        return Ok(0);
    }
    let networks: Vec<String> = if !args.networks.is_empty() {
        args.networks.clone()
    } else if args.quick {
        QUICK_NETWORKS.iter().map(|s| s.to_string()).collect()
    } else {
        DEFAULT_NETWORKS.iter().map(|s| s.to_string()).collect()
    };
    // Reject bad names before spending minutes on the others.
    for n in &networks {
        builtin::parse(n).map_err(|e| anyhow!("--networks: {n:?}: {e}"))?;
    }
    let nthreads = threads(args);
    let machine = machine_info();
    let progress = Progress::new(networks.len() as u64 + 2, quiet);

    progress.step("FMA peak probe");
    let budget = Duration::from_millis(if args.quick { 50 } else { 300 });
    let peak = peak::measure(nthreads, budget);

    let mut results = Vec::new();
    for n in &networks {
        progress.step(n);
        results.push(measure_in_child(n, args).with_context(|| format!("network {n}"))?);
    }

    let chain = args
        .chain
        .map(|c| c as usize)
        .unwrap_or(if args.quick { 200 } else { 1000 });
    progress.step(&format!("graph overhead ({chain} nodes)"));
    let graph = graph_overhead(chain, if args.quick { 5 } else { 20 })?;
    progress.finish();

    let report = BenchReport {
        machine,
        settings: Settings {
            runs: args.runs,
            warmup: args.warmup,
            batch: args.batch,
            threads: nthreads,
            quick: args.quick,
            profile: if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            }
            .to_owned(),
        },
        peak,
        networks: results,
        graph,
    };
    match &args.json {
        Some(None) => println!("{}", serde_json::to_string_pretty(&report)?),
        Some(Some(path)) => {
            write_atomically(path, serde_json::to_string_pretty(&report)?.as_bytes())?;
            print!("{}", table(&report));
        }
        None => print!("{}", table(&report)),
    }
    Ok(0)
}

/// A bar over the bench's steps on a terminal; plain lines otherwise.
struct Progress {
    bar: Option<ProgressBar>,
    quiet: bool,
}

impl Progress {
    fn new(steps: u64, quiet: bool) -> Progress {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let b = ProgressBar::new(steps);
            b.set_style(
                ProgressStyle::with_template(
                    "{spinner} bench [{bar:30}] {pos}/{len} {elapsed} {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            b.enable_steady_tick(Duration::from_millis(200));
            b
        });
        Progress { bar, quiet }
    }

    fn step(&self, what: &str) {
        match &self.bar {
            Some(b) => {
                if !b.message().is_empty() {
                    b.inc(1);
                }
                b.set_message(what.to_owned());
            }
            None if !self.quiet => eprintln!("bench: {what}"),
            None => {}
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| anyhow!("--json {}: not a file name", path.display()))?;
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        anyhow!("renaming {} to {}: {e}", tmp.display(), path.display())
    })
}

// ---------------------------------------------------------------------------------------------
// One network

/// Runs `bench --one NET` in a child process and reads its result.
fn measure_in_child(net: &str, args: &BenchArgs) -> Result<NetworkResult> {
    let exe = std::env::current_exe().context("finding the stylegraph executable")?;
    let mut cmd = std::process::Command::new(exe);
    cmd.args(["--quiet", "--no-default-plugins", "bench", "--one", net])
        .args(["--runs", &args.runs.to_string()])
        .args(["--warmup", &args.warmup.to_string()])
        .args(["--batch", &args.batch.to_string()]);
    if let Some(t) = args.threads {
        cmd.args(["--threads", &t.to_string()]);
    }
    if args.no_layers {
        cmd.arg("--no-layers");
    }
    let out = cmd
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("starting the child process")?;
    if !out.status.success() {
        bail!("the child process failed ({})", out.status);
    }
    let line = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(line.trim()).context("reading the child's result")
}

/// A built network and what the bench needs to know about it.
struct Built {
    generator: Generator,
    architecture: &'static str,
    parameters: usize,
    /// Per stage: name, kind, MACs of one image.
    stages: Vec<(String, String, f64)>,
}

/// Builds a built-in network. SG3 uses the plain official initialisation (the built-in models'
/// calibration pass would cost one more forward and does not change the work); SG2 is exactly
/// the built-in model.
fn build(name: &str) -> Result<Built> {
    let spec = builtin::parse(name).map_err(|e| anyhow!("{name}: {e}"))?;
    let res = spec.resolution;
    match spec.architecture.as_str() {
        "stylegan3-t" | "stylegan3-r" => {
            let t = spec.architecture == "stylegan3-t";
            let mut cfg = Sg3Config::official(if t { Sg3Kind::T } else { Sg3Kind::R }, res);
            if let Some(b) = spec.channel_base {
                cfg.channel_base = b;
            }
            if let Some(m) = spec.channel_max {
                cfg.channel_max = m;
            }
            let map = sg3_state_dict(&cfg, spec.seed, &InitTuning::official())?;
            let parameters = map.tensors.values().map(|t| t.numel()).sum();
            let synthesis = stylegraph_kernels::sg3::Sg3Synthesis::from_tensors(&map, &cfg)?;
            let mapping = MappingNetwork::from_tensors(&map, &cfg.mapping_config())?;
            let sched = synthesis.schedule();
            let mut stages = vec![
                (
                    "mapping".to_owned(),
                    "fc".to_owned(),
                    mapping_macs(mapping.config()),
                ),
                (
                    "input".to_owned(),
                    "fourier features + 1x1".to_owned(),
                    (sched.input.size * sched.input.size * sched.input.channels.pow(2)) as f64,
                ),
            ];
            for l in &sched.layers {
                stages.push((l.name.clone(), sg3_kind(l), sg3_layer_macs(l)));
            }
            Ok(Built {
                generator: Generator {
                    architecture: if t {
                        stylegraph_kernels::Architecture::StyleGan3T
                    } else {
                        stylegraph_kernels::Architecture::StyleGan3R
                    },
                    mapping,
                    synthesis: Synthesis::Sg3(synthesis),
                },
                architecture: if t { "stylegan3-t" } else { "stylegan3-r" },
                parameters,
                stages,
            })
        }
        "stylegan2" => {
            let (map, kwargs) = builtin::make(
                "stylegan2",
                res,
                spec.seed,
                spec.channel_base,
                spec.channel_max,
            )
            .map_err(|e| anyhow!("{name}: {e}"))?;
            let parameters = map.tensors.values().map(|t| t.numel()).sum();
            let cfg = Sg2Config::from_json_and_tensors(&kwargs, &map)?;
            let generator = Generator::from_tensors(&map, Some(&kwargs))?;
            let mut stages = vec![(
                "mapping".to_owned(),
                "fc".to_owned(),
                mapping_macs(generator.mapping.config()),
            )];
            for r in cfg.block_resolutions() {
                let kind = if r == 4 {
                    "const, conv3x3, torgb"
                } else {
                    "conv3x3 up2, conv3x3, torgb"
                };
                stages.push((format!("b{r}"), kind.to_owned(), sg2_block_macs(&cfg, r)));
            }
            Ok(Built {
                generator,
                architecture: "stylegan2",
                parameters,
                stages,
            })
        }
        other => bail!("{name}: unknown architecture {other}"),
    }
}

/// Multiply-adds of the mapping network for one sample: its fully connected layers (label
/// embedding, then `num_layers` layers `embed → hidden … → w_dim`).
pub fn mapping_macs(m: &MappingConfig) -> f64 {
    let embed = (m.c_dim * m.embed_features) as f64;
    let first_in = m.z_dim + if m.c_dim > 0 { m.embed_features } else { 0 };
    let mut macs = embed;
    let mut fan_in = first_in;
    for i in 0..m.num_layers {
        let out = if i + 1 == m.num_layers {
            m.w_dim
        } else {
            m.layer_features
        };
        macs += (fan_in * out) as f64;
        fan_in = out;
    }
    macs
}

/// Multiply-adds of one SG3 layer's modulated convolution for one image: the convolution is
/// evaluated with `k − 1` padding, so on `(in + k − 1)²` output pixels, `Cin · Cout · k²` each.
pub fn sg3_layer_macs(l: &LayerSpec) -> f64 {
    let n = (l.in_size + l.conv_kernel - 1) as f64;
    n * n * (l.in_channels * l.out_channels * l.conv_kernel * l.conv_kernel) as f64
}

fn sg3_kind(l: &LayerSpec) -> String {
    let k = l.conv_kernel;
    if l.is_torgb {
        return format!("torgb conv{k}x{k}");
    }
    format!(
        "conv{k}x{k} + filtered lrelu up{} down{}{}",
        l.up_factor,
        l.down_factor,
        if l.down_radial { " radial" } else { "" }
    )
}

/// Multiply-adds of one SG2 block for one image: the up-sampling 3×3 convolution (transposed,
/// stride 2, so `Cin · Cout · 9` per *input* pixel), the 3×3 convolution at the block's
/// resolution, and ToRGB (`C · img_channels` per pixel). Block 4 has only the second
/// convolution and ToRGB.
pub fn sg2_block_macs(cfg: &Sg2Config, res: usize) -> f64 {
    let ch = cfg.channels(res);
    let px = (res * res) as f64;
    let conv1 = (ch * ch * 9) as f64 * px;
    let torgb = (ch * cfg.img_channels) as f64 * px;
    let conv0 = if res > 4 {
        let half = (res / 2) as f64;
        (cfg.channels(res / 2) * ch * 9) as f64 * half * half
    } else {
        0.0
    };
    conv0 + conv1 + torgb
}

/// Measures one network in this process.
fn measure_network(name: &str, args: &BenchArgs) -> Result<NetworkResult> {
    let t0 = Instant::now();
    let built = build(name)?;
    let build_s = t0.elapsed().as_secs_f64();
    let peak_rss_build_mib = vm_hwm_mib();
    // Forget the build's high-water mark (state dict and network resident together).
    let peak_rss_reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();

    let g = &built.generator;
    let batch = args.batch as usize;
    let z: Vec<f64> = (0..batch as u32)
        .flat_map(|s| stylegraph_rng::z_from_seed(s, g.z_dim()))
        .collect();
    let options = SynthesisOptions::default();
    let one_run = || -> Result<()> {
        let ws = g.map(&z, None, batch, 1.0, None)?;
        let img = g.synthesize(&ws, batch, &options, &NoControl)?;
        std::hint::black_box(img);
        Ok(())
    };
    for _ in 0..args.warmup {
        one_run()?;
    }
    let cpu0 = cpu_seconds();
    let mut times = Vec::new();
    for _ in 0..args.runs {
        let t = Instant::now();
        one_run()?;
        times.push(t.elapsed().as_secs_f64() / batch as f64);
    }
    let cpu_s_per_image = match (cpu0, cpu_seconds()) {
        (Some(a), Some(b)) => Some((b - a) / (args.runs as f64 * batch as f64)),
        _ => None,
    };
    let peak_rss_mib = vm_hwm_mib();
    let median = median(&times);
    let macs: f64 = built.stages.iter().map(|s| s.2).sum();
    let gflop = 2.0 * macs / 1e9;
    let layers = if args.no_layers {
        Vec::new()
    } else {
        layer_breakdown(&built)?
    };
    Ok(NetworkResult {
        name: name.to_owned(),
        architecture: built.architecture.to_owned(),
        resolution: g.resolution(),
        parameters: built.parameters,
        gflop_per_image: gflop,
        batch: args.batch,
        threads: rayon::current_num_threads(),
        build_s,
        min_s_per_image: times.iter().copied().fold(f64::INFINITY, f64::min),
        run_s_per_image: times,
        median_s_per_image: median,
        cpu_s_per_image,
        gflops: if median > 0.0 { gflop / median } else { 0.0 },
        peak_rss_mib,
        peak_rss_reset,
        peak_rss_build_mib,
        layers,
    })
}

/// Times every stage of one image: the mapping network, then (SG3) the input layer and each
/// layer, plus each layer's modulated convolution alone, or (SG2) each block.
fn layer_breakdown(built: &Built) -> Result<Vec<LayerTiming>> {
    let g = &built.generator;
    let z = stylegraph_rng::z_from_seed(0, g.z_dim());
    let mut stage = built.stages.iter();
    let mut next_stage = || {
        stage
            .next()
            .cloned()
            .ok_or_else(|| anyhow!("stage list shorter than the network"))
    };
    let mut out = Vec::new();
    let t = Instant::now();
    let ws = g.map(&z, None, 1, 1.0, None)?;
    let (name, kind, macs) = next_stage()?;
    out.push(timing(name, kind, macs, t.elapsed(), None));
    match &g.synthesis {
        Synthesis::Sg3(s) => {
            let t = Instant::now();
            let mut x = s.input_forward(&ws, 1, None)?;
            let (name, kind, macs) = next_stage()?;
            out.push(timing(name, kind, macs, t.elapsed(), None));
            // Per-stage accounting only for this untimed pass.
            stage_time::set_enabled(true);
            let _ = stage_time::take();
            for i in 0..s.layers().len() {
                let t = Instant::now();
                let y = s.layer_forward(i, &x, &ws);
                let el = t.elapsed();
                let stages = StageSplit::from_secs(stage_time::take());
                x = match y {
                    Ok(y) => y,
                    Err(e) => {
                        stage_time::set_enabled(false);
                        return Err(e.into());
                    }
                };
                let (name, kind, macs) = next_stage()?;
                out.push(timing(name, kind, macs, el, Some(stages)));
            }
            stage_time::set_enabled(false);
        }
        Synthesis::Sg2(s) => {
            let noise = SynthesisOptions::default().noise;
            let mut x: Option<Features> = None;
            let mut img: Option<Features> = None;
            for b in 0..s.block_names().len() {
                let t = Instant::now();
                let (nx, nimg) = s.block_forward(b, x.as_ref(), img.as_ref(), &ws, 1, noise)?;
                let el = t.elapsed();
                x = Some(nx);
                img = Some(nimg);
                let (name, kind, macs) = next_stage()?;
                out.push(timing(name, kind, macs, el, None));
            }
        }
    }
    Ok(out)
}

fn timing(
    name: String,
    kind: String,
    macs: f64,
    el: Duration,
    stages_ms: Option<StageSplit>,
) -> LayerTiming {
    LayerTiming {
        name,
        kind,
        gflop: 2.0 * macs / 1e9,
        ms: el.as_secs_f64() * 1e3,
        stages_ms,
    }
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => 0.0,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

/// The process's peak resident set size (`VmHWM`), MiB; Linux only.
fn vm_hwm_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// User + system CPU seconds of the process (all threads), from `/proc/self/stat`; Linux only.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    // USER_HZ is 100 on every Linux architecture we build for.
    Some(ticks / 100.0)
}

fn machine_info() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned());
    let load_average = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok());
    Machine {
        cpu,
        logical_cpus: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        arch: std::env::consts::ARCH.to_owned(),
        os: std::env::consts::OS.to_owned(),
        load_average,
    }
}

// ---------------------------------------------------------------------------------------------
// Graph overhead

/// A chain `n0 -> n1 -> ... -> n{len-1}` of `core.math` nodes, each adding 1 to its input.
fn chain_graph(len: usize) -> Graph {
    use ParamValue::*;
    let mut g = Graph::new();
    g.description = "bench: executor overhead".into();
    for i in 0..len {
        let prev = format!("n{}.result", i.wrapping_sub(1));
        let inputs: Vec<(&str, &str)> = if i == 0 {
            vec![]
        } else {
            vec![("a", prev.as_str())]
        };
        g.nodes.push(crate::commands::node(
            &format!("n{i}"),
            "core.math",
            &[
                ("op", Str("add".into())),
                ("a", Float(0.0)),
                ("b", Float(1.0)),
            ],
            &inputs,
            0.0,
            0.0,
        ));
    }
    g
}

/// Runs the chain: once cold, `repeats` times with the cache cleared, `repeats` times cached.
/// The core plugin is linked into the executable, so this needs no plugin files; its node
/// calls go through the same C ABI function table as a loaded library's.
fn graph_overhead(len: usize, repeats: usize) -> Result<GraphOverhead> {
    let mut host = PluginHost::new();
    host.register_entry(
        stylegraph_plugin_core::stylegraph_plugin_entry,
        Path::new("<built-in core plugin>"),
    )
    .map_err(|e| anyhow!("registering the core plugin: {e}"))?;
    let session = Session::new(Arc::new(host), SessionConfig::default());
    let graph = chain_graph(len);
    let options = RunOptions::default();
    let last = format!("n{}", len - 1);
    let run = |expect_executed: usize| -> Result<f64> {
        let t = Instant::now();
        let r = session
            .run(&graph, &options)
            .map_err(|e| anyhow!("node chain: {e}"))?;
        let el = t.elapsed().as_secs_f64();
        if r.status != RunStatus::Finished || r.executed.len() != expect_executed {
            bail!(
                "node chain: status {:?}, {} executed, {} cached, failures {:?}",
                r.status,
                r.executed.len(),
                r.cached.len(),
                r.failed
            );
        }
        match r.output(&last, "result") {
            Some(stylegraph_core::value::Value::Float(v)) if *v == len as f64 => Ok(el),
            other => bail!("node chain: the last node gave {other:?}, expected {len}"),
        }
    };
    let first = run(len)?;
    let mut executed = Vec::new();
    for _ in 0..repeats {
        session.clear_cache();
        executed.push(run(len)?);
    }
    let _ = run(len);
    let mut cached = Vec::new();
    for _ in 0..repeats {
        cached.push(run(0)?);
    }
    Ok(GraphOverhead {
        chain_nodes: len,
        first_run_ms: first * 1e3,
        per_node_us: median(&executed) / len as f64 * 1e6,
        cached_rerun_ms: median(&cached) * 1e3,
        repeats,
    })
}

// ---------------------------------------------------------------------------------------------
// Table

fn table(r: &BenchReport) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let m = &r.machine;
    let _ = writeln!(
        s,
        "machine: {}, {} logical CPUs, {} ({}), load average {}; {}, {} build",
        m.cpu,
        m.logical_cpus,
        m.arch,
        r.peak.isa,
        m.load_average.map_or("?".into(), |l| format!("{l:.2}")),
        threads_phrase(r.settings.threads),
        r.settings.profile
    );
    // with one thread in the pool the all-threads figure is the one-thread one again
    let all_threads = if r.peak.threads == 1 {
        String::new()
    } else {
        format!(
            ", {:.1} GFLOP/s on {}",
            r.peak.gflops_mt,
            threads_phrase(r.peak.threads)
        )
    };
    let _ = writeln!(
        s,
        "FMA peak (f32): {:.1} GFLOP/s on 1 thread{all_threads}",
        r.peak.gflops_1t
    );
    let _ = writeln!(
        s,
        "runs: {} timed after {} warm-up, batch {}\n",
        r.settings.runs, r.settings.warmup, r.settings.batch
    );
    let _ = writeln!(
        s,
        "{:<24} {:>5} {:>7} {:>9} {:>9} {:>9} {:>9} {:>8} {:>6} {:>9} {:>9}",
        "network",
        "px",
        "Mparam",
        "GFLOP/img",
        "s/img",
        "min s",
        "CPU s",
        "GFLOP/s",
        "%peak",
        "RSS MiB",
        "build MiB"
    );
    for n in &r.networks {
        let mib = |v: Option<f64>| v.map_or("?".into(), |v| format!("{v:.0}"));
        let _ = writeln!(
            s,
            "{:<24} {:>5} {:>7.1} {:>9.2} {:>9.3} {:>9.3} {:>9} {:>8.1} {:>5.0}% {:>9} {:>9}",
            n.name,
            n.resolution,
            n.parameters as f64 / 1e6,
            n.gflop_per_image,
            n.median_s_per_image,
            n.min_s_per_image,
            n.cpu_s_per_image.map_or("?".into(), |c| format!("{c:.2}")),
            n.gflops,
            100.0 * n.gflops / r.peak.gflops_mt.max(1e-9),
            mib(n.peak_rss_mib),
            mib(n.peak_rss_build_mib),
        );
    }
    let g = &r.graph;
    let _ = writeln!(
        s,
        "\ngraph overhead ({} core.math nodes in a chain, median of {}): {:.1} µs per node \
         executed; cached re-run of the unchanged graph {:.2} ms; first run {:.1} ms",
        g.chain_nodes, g.repeats, g.per_node_us, g.cached_rerun_ms, g.first_run_ms
    );
    for n in r.networks.iter().filter(|n| !n.layers.is_empty()) {
        let total: f64 = n.layers.iter().map(|l| l.ms).sum();
        let _ = writeln!(s, "\n{} per stage (one image):", n.name);
        let _ = writeln!(
            s,
            "  {:<16} {:<42} {:>8} {:>9} {:>6} {:>8}   \
             ms in: weights / in-transform / gemm / out-transform / filter",
            "stage", "kind", "GFLOP", "ms", "share", "GFLOP/s"
        );
        for l in &n.layers {
            let rate = if l.ms > 0.0 {
                l.gflop / (l.ms / 1e3)
            } else {
                0.0
            };
            let _ = writeln!(
                s,
                "  {:<16} {:<42} {:>8.3} {:>9.1} {:>5.1}% {:>8.1}   {}",
                l.name,
                l.kind,
                l.gflop,
                l.ms,
                100.0 * l.ms / total.max(1e-9),
                rate,
                l.stages_ms.as_ref().map_or(String::new(), |t| format!(
                    "{:.1} / {:.1} / {:.1} / {:.1} / {:.1}",
                    t.weights, t.input_transform, t.gemm, t.output_transform, t.filter
                )),
            );
        }
    }
    s
}

/// "1 thread" or "N threads".
fn threads_phrase(n: usize) -> String {
    if n == 1 {
        "1 thread".into()
    } else {
        format!("{n} threads")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sg2_1024_flops_match_a_hand_count() {
        // b4: 512² · 9 · 16 + 512 · 3 · 16. b8: (512² · 9 · 16) + 512² · 9 · 64 + 512 · 3 · 64.
        let cfg = Sg2Config::stylegan2_1024();
        let b4 = 512.0 * 512.0 * 9.0 * 16.0 + 512.0 * 3.0 * 16.0;
        assert_eq!(sg2_block_macs(&cfg, 4), b4);
        let b8 = 512.0 * 512.0 * 9.0 * (16.0 + 64.0) + 512.0 * 3.0 * 64.0;
        assert_eq!(sg2_block_macs(&cfg, 8), b8);
        // b1024: 64 -> 32 channels; conv0 at 512², conv1 at 1024².
        let b1024 = 64.0 * 32.0 * 9.0 * 512.0 * 512.0
            + 32.0 * 32.0 * 9.0 * 1024.0 * 1024.0
            + 32.0 * 3.0 * 1024.0 * 1024.0;
        assert_eq!(sg2_block_macs(&cfg, 1024), b1024);
    }

    #[test]
    fn mapping_macs_count_every_layer() {
        let m = MappingConfig::stylegan2(512, 0, 512, 18);
        assert_eq!(mapping_macs(&m), 8.0 * 512.0 * 512.0);
    }

    #[test]
    fn sg3_layer_macs_use_the_padded_output() {
        let cfg = Sg3Config::official(Sg3Kind::T, 256);
        let sched = cfg.schedule().expect("schedule");
        let l0 = &sched.layers[0];
        let n = (l0.in_size + 2) as f64;
        assert_eq!(
            sg3_layer_macs(l0),
            n * n * (l0.in_channels * l0.out_channels * 9) as f64
        );
    }

    #[test]
    fn thread_counts_read_as_words() {
        assert_eq!(threads_phrase(1), "1 thread");
        assert_eq!(threads_phrase(2), "2 threads");
    }

    #[test]
    fn median_of_even_and_odd() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
