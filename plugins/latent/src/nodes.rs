//! The node types of the `latent` plugin: thin wrappers that check ports and params and call
//! the functions of [`crate::math`], [`crate::interp`], [`crate::files`] and
//! [`crate::directions`].

use crate::directions::{self, ApplyMode, Classifier};
use crate::error::LatentError;
use crate::files::{self, LatentFormat};
use crate::interp::{self, InterpMode, InterpSpec};
use crate::math::{self, BlendMode, Latents, MixLayout};
use std::path::{Path, PathBuf};
use stylegraph_abi::prelude::*;
use stylegraph_npy::Array;

const CAT_LATENT: &str = "Latent";
const CAT_DIR: &str = "Latent/Directions";

/// Prefixes an error with the port or param it concerns.
fn at(what: &str) -> impl Fn(LatentError) -> NodeError + '_ {
    move |e| NodeError::invalid(format!("{what}: {e}"))
}

/// Reads a tensor input as a latent batch.
fn input_latents(ctx: &Context<'_>, port: &str) -> Result<Latents, NodeError> {
    let t = ctx.input_tensor(port)?;
    let what = format!("input {port:?}");
    let data = t
        .to_f32_vec()
        .map_err(|e| NodeError::invalid(format!("{what}: {e}")))?;
    Latents::new(t.shape(), data, &what).map_err(|e| NodeError::invalid(e.to_string()))
}

/// Writes a latent batch to an f32 output.
fn output_latents(ctx: &mut Context<'_>, port: &str, l: &Latents) -> NodeResult {
    ctx.output_f32(port, &l.shape())?.copy_from_slice(&l.data);
    Ok(())
}

fn non_negative(ctx: &Context<'_>, name: &str) -> Result<usize, NodeError> {
    let v = ctx.param_i64(name)?;
    usize::try_from(v)
        .map_err(|_| NodeError::invalid(format!("param {name:?} must be >= 0, got {v}")))
}

/// Resolves a path param relative to the working directory, refusing empty paths.
fn path_param(ctx: &Context<'_>, name: &str) -> Result<PathBuf, NodeError> {
    let p = ctx.param_str(name)?;
    if p.trim().is_empty() {
        return Err(NodeError::invalid(format!("param {name:?}: no path given")));
    }
    Ok(PathBuf::from(p))
}

fn file_err(path: &Path) -> impl Fn(LatentError) -> NodeError + '_ {
    move |e| match e {
        // Errors from the npy crate and ours already carry the path.
        LatentError::Npy(_) | LatentError::File { .. } => NodeError::new(e),
        other => NodeError::new(format!("{}: {other}", path.display())),
    }
}

// ---------------------------------------------------------------------------------------------
// Sources

/// `latent.seeds`: seed list -> Z batch.
#[derive(Default)]
pub struct Seeds;

impl Node for Seeds {
    fn spec() -> NodeSpec {
        NodeSpec::new("latent.seeds", "Seeds")
            .category(CAT_LATENT)
            .doc(
                "Turns a list of seeds into a batch of Z latents with the official rule: row `i` is \
                 NumPy's `RandomState(seed_i).randn(z_dim)` (float64, bit for bit), as \
                 `gen_images.py`, `style_mixing.py` and `gen_video.py` make them.\n\n\
                 Seed lists use the official syntax: numbers and inclusive ranges separated by \
                 commas, e.g. `0,3,5-9`.",
            )
            .output("z", "Z", "[N, z_dim] float64, one row per seed, in list order")
            .output("seeds", "Tensor", "[N] int64: the seeds, in order (for file names and labels)")
            .output("count", "int", "N, the number of seeds")
            .param(ParamSpec::string("seeds", "0").doc("seed list: `0,3,5-9`"))
            .param(
                ParamSpec::int("z_dim", 512)
                    .range(1.0, 65536.0)
                    .doc("latent size of the model (512 for every official StyleGAN2/3)"),
            )
    }
    fn create() -> Result<Self, NodeError> {
        Ok(Seeds)
    }
    fn execute(&mut self, ctx: &mut Context<'_>) -> NodeResult {
        let seeds = math::parse_seeds(&ctx.param_str("seeds")?).map_err(at("param \"seeds\""))?;
        let z_dim = non_negative(ctx, "z_dim")?.max(1);
        let out = ctx.output_f64("z", &[seeds.len(), z_dim])?;
        for (row, &seed) in out.chunks_exact_mut(z_dim).zip(&seeds) {
            row.copy_from_slice(&stylegraph_rng::z_from_seed(seed, z_dim));
        }
        let ids = ctx.output_bytes("seeds", SgDType::I64, &[seeds.len()])?;
        for (chunk, &s) in ids.chunks_exact_mut(8).zip(&seeds) {
            chunk.copy_from_slice(&(s as i64).to_le_bytes());
        }
        ctx.set_output_i64("count", seeds.len() as i64)
    }
}

/// `latent.random_z`: one seeded batch of Z (for PCA and other statistics).
#[derive(Default)]
pub struct RandomZ;

impl Node for RandomZ {
    fn spec() -> NodeSpec {
        NodeSpec::new("latent.random_z", "Random Z batch")
            .category(CAT_LATENT)
            .doc(
                "A batch of `count` standard-normal Z latents from one seed: NumPy's \
                 `RandomState(seed).randn(count, z_dim)`. Use it to sample many W for \
                 `latent.ganspace` (seed -> `stylegan.mapping` -> PCA).",
            )
            .output("z", "Z", "[count, z_dim] float64")
            .param(
                ParamSpec::int("count", 1000)
                    .range(1.0, 1_048_576.0)
                    .doc("number of latents"),
            )
            .param(
                ParamSpec::seed("seed", 0)
                    .min(0.0)
                    .max(4294967295.0)
                    .doc("random seed"),
            )
            .param(
                ParamSpec::int("z_dim", 512)
                    .range(1.0, 65536.0)
                    .doc("latent size"),
            )
    }
    fn create() -> Result<Self, NodeError> {
        Ok(RandomZ)
    }
    fn execute(&mut self, ctx: &mut Context<'_>) -> NodeResult {
        let count = non_negative(ctx, "count")?;
        let z_dim = non_negative(ctx, "z_dim")?;
        let seed = u32::try_from(ctx.param_i64("seed")?)
            .map_err(|_| NodeError::invalid("param \"seed\" must be 0..=4294967295"))?;
        if count == 0 || z_dim == 0 || count.saturating_mul(z_dim) > 1 << 28 {
            node_bail!("count x z_dim must be between 1 and 2^28 values");
        }
        let mut rng = stylegraph_rng::RandomState::new(seed);
        let out = ctx.output_f64("z", &[count, z_dim])?;
        for v in out.iter_mut() {
            *v = rng.next_gauss();
        }
        Ok(())
    }
}

/// `latent.z_from_file`: Z latents from `.npy` / `.npz`.
#[derive(Default)]
pub struct ZFromFile;

impl Node for ZFromFile {
    fn spec() -> NodeSpec {
        NodeSpec::new("latent.z_from_file", "Z from file")
            .category(CAT_LATENT)
            .doc(
                "Reads Z latents from a NumPy `.npy` file, or one array of an `.npz` archive. \
                 Shapes `[z_dim]` and `[N, z_dim]` are accepted; values come out as float64.",
            )
            .output("z", "Z", "[N, z_dim] float64")
            .param(ParamSpec::path("path", "").doc("`.npy` or `.npz` file"))
            .param(
                ParamSpec::string("key", "")
                    .doc("array name inside an `.npz` (empty: the only array, or `z` if present)"),
            )
    }
    fn create() -> Result<Self, NodeError> {
        Ok(ZFromFile)
    }
    fn execute(&mut self, ctx: &mut Context<'_>) -> NodeResult {
        let path = path_param(ctx, "path")?;
        let key = npz_key(&path, &ctx.param_str("key")?, "z");
        let a = files::read_array(&path, &key).map_err(file_err(&path))?;
        let shape = match a.shape.as_slice() {
            [d] => vec![1, *d],
            [n, d] => vec![*n, *d],
            s => node_bail!(
                "{}: Z latents must be [z_dim] or [N, z_dim], the file holds {s:?}",
                path.display()
            ),
        };
        let values = files::array_f64(&a);
        ctx.output_f64("z", &shape)?.copy_from_slice(&values);
        Ok(())
    }
}

/// With no key given, prefer the conventional array name when an archive has it.
fn npz_key(path: &Path, key: &str, conventional: &str) -> String {
    if !key.is_empty() {
        return key.to_owned();
    }
    let is_npz = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("npz"));
    if is_npz {
        if let Ok(m) = stylegraph_npy::read_npz(path) {
            if m.contains_key(conventional) {
                return conventional.to_owned();
            }
        }
    }
    String::new()
}

/// `latent.w_from_file`: W / W+ latents from `.npy` / `.npz` (e.g. `projected_w.npz`).
#[derive(Default)]
pub struct WFromFile;

impl Node for WFromFile {
    fn spec() -> NodeSpec {
        NodeSpec::new("latent.w_from_file", "W from file")
            .category(CAT_LATENT)
            .doc(
                "Reads W or W+ latents from a NumPy file: the official projector's \
                 `projected_w.npz` (array `w`, `[1, num_ws, w_dim]`), or any `.npy` of shape \
                 `[N, num_ws, w_dim]`, `[N, w_dim]` or `[w_dim]`.\n\n\
                 `ws` is the W+ batch; a file of plain W is broadcast to `num_ws` rows (set \
                 `num_ws` to the model's, e.g. from `stylegan.info`; 0 keeps one row). `w` is \
                 the first row of each latent.",
            )
            .output("ws", "WPlus", "[N, num_ws, w_dim] float32")
            .output("w", "W", "[N, w_dim] float32: row 0 of each latent")
            .param(ParamSpec::path("path", "projected_w.npz").doc("`.npy` or `.npz` file"))
            .param(ParamSpec::string("key", "w").doc("array name inside an `.npz`"))
            .param(
                ParamSpec::int("num_ws", 0)
                    .range(0.0, 1024.0)
                    .doc("rows to broadcast a plain W to (0: keep the file's rows); checked against W+ files"),
            )
    }
    fn create() -> Result<Self, NodeError> {
        Ok(WFromFile)
    }
    fn execute(&mut self, ctx: &mut Context<'_>) -> NodeResult {
        let path = path_param(ctx, "path")?;
        let key = ctx.param_str("key")?;
        let num_ws = non_negative(ctx, "num_ws")?;
        let a = files::read_array(&path, &key).map_err(file_err(&path))?;
        let values = files::array_f32(&a);
        let (n, rows, d, wplus) = match a.shape.as_slice() {
            [d] => (1, 1, *d, false),
            [n, d] => (*n, 1, *d, false),
            [n, l, d] => (*n, *l, *d, true),
            s => node_bail!(
                "{}: W latents must be [w_dim], [N, w_dim] or [N, num_ws, w_dim], the file holds {s:?}",
                path.display()
            ),
        };
        if wplus && num_ws != 0 && rows != num_ws {
            node_bail!(
                "{}: the file holds {rows} W+ rows per latent but num_ws is {num_ws}",
                path.display()
            );
        }
        let out_rows = if wplus { rows } else { num_ws.max(1) };
        let ws = ctx.output_f32("ws", &[n, out_rows, d])?;
        for i in 0..n {
            for r in 0..out_rows {
                let src_row = if wplus { r } else { 0 };
                let src = &values[(i * rows + src_row) * d..(i * rows + src_row + 1) * d];
                ws[(i * out_rows + r) * d..(i * out_rows + r + 1) * d].copy_from_slice(src);
            }
        }
        let w = ctx.output_f32("w", &[n, d])?;
        for i in 0..n {
            w[i * d..(i + 1) * d].copy_from_slice(&values[i * rows * d..(i * rows + 1) * d]);
        }
        Ok(())
    }
}

/// `latent.save_latent`: writes any latent tensor as `.npy` / `.npz`.
#[derive(Default)]
pub struct SaveLatent;

impl Node for SaveLatent {
    fn spec() -> NodeSpec {
        NodeSpec::new("latent.save_latent", "Save latent")
            .category(CAT_LATENT)
            .doc(
                "Writes a latent tensor (Z, W, W+, directions...) to a NumPy file, atomically \
                 (temporary file + rename). `.npz` archives hold the array under `key`; with \
                 key `w` and a `[1, num_ws, w_dim]` W+ this is the official projector's \
                 `projected_w.npz` layout, readable by `gen_images.py --projected-w`. The dtype \
                 is kept (float32 or float64). Parent folders are created.",
            )
            .side_effect()
            .input("latent", "Tensor", "the tensor to save")
            .output("path", "path", "the file written")
            .param(ParamSpec::output_path("path", "out/latent.npy").doc("output file"))
            .param(
                ParamSpec::enumeration("format", "auto", &["auto", "npy", "npz"])
                    .doc("file format; `auto` picks by extension"),
            )
            .param(ParamSpec::string("key", "w").doc("array name inside an `.npz`"))
    }
    fn create() -> Result<Self, NodeError> {
        Ok(SaveLatent)
    }
    fn execute(&mut self, ctx: &mut Context<'_>) -> NodeResult {
        let path = path_param(ctx, "path")?;
        let format = LatentFormat::parse(&ctx.param_str("format")?, &path)
            .map_err(at("param \"format\""))?;
        let key = ctx.param_str("key")?;
        let t = ctx.input_tensor("latent")?;
        let shape = t.shape().to_vec();
        let array = if t.dtype() == SgDType::F64 {
            Array::from_f64(shape, t.as_f64()?)
        } else {
            Array::from_f32(shape, &t.to_f32_vec()?)
        }
        .map_err(|e| NodeError::invalid(format!("input \"latent\": {e}")))?;
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                NodeError::new(format!("cannot create folder {}: {e}", parent.display()))
            })?;
        }
        files::write_latent(&path, &array, format, &key).map_err(file_err(&path))?;
        tracing::debug!(path = %path.display(), "latent written");
        ctx.set_output_str("path", &path.to_string_lossy())
    }
}

// ---------------------------------------------------------------------------------------------
// Operations

/// `latent.truncation`: the truncation trick toward `w_avg`.
#[derive(Default)]
pub struct Truncation;

impl Node for Truncation {
    fn spec() -> NodeSpec {
        NodeSpec::new("latent.truncation", "Truncation")
            .category(CAT_LATENT)
            .doc(
                "The truncation trick: moves latents toward the model's average, \
                 `w_avg.lerp(w, psi)`, exactly as the official mapping network does (PyTorch's \
                 float32 `lerp`). Only the rows below `cutoff` are truncated (the official \
                 `truncation_cutoff`); -1 truncates all. psi = 1 is the identity, psi = 0 gives \
                 `w_avg`, psi > 1 exaggerates.",
            )
            .input("ws", "WPlus", "[N, num_ws, w_dim] (or W [N, w_dim])")
            .input(
                "w_avg",
                "W",
                "the model's average W, [1, w_dim] or [w_dim] (`stylegan.w_avg`)",
            )
            .output("ws", "WPlus", "truncated latents, same shape as the input")
            .param(
                ParamSpec::float("psi", 0.7)
                    .range(-5.0, 5.0)
                    .step(0.05)
                    .doc("truncation psi"),
            )
            .param(
                ParamSpec::int("cutoff", -1)
                    .min(-1.0)
                    .doc("truncate rows 0..cutoff; -1 = all rows"),
            )
    }
    fn create() -> Result<Self, NodeError> {
        Ok(Truncation)
    }
    fn execute(&mut self, ctx: &mut Context<'_>) -> NodeResult {
        let ws = input_latents(ctx, "ws")?;
        let avg = ctx.input_tensor("w_avg")?;
        if avg.shape().iter().rev().skip(1).any(|&d| d != 1) {
            node_bail!(
                "input \"w_avg\": expected one vector [1, w_dim] or [w_dim], got shape {:?}",
                avg.shape()
            );
        }
        let avg = avg.to_f32_vec()?;
        let psi = ctx.param_f64("psi")? as f32;
        let cutoff = ctx.param_i64("cutoff")?;
        let cutoff = (cutoff >= 0).then_some(cutoff as usize);
        let out = math::truncate(&ws, &avg, psi, cutoff).map_err(at("latent.truncation"))?;
        output_latents(ctx, "ws", &out)
    }
}

/// `latent.style_mix`: the official style mixing.
#[derive(Default)]
pub struct StyleMix;

impl Node for StyleMix {
    fn spec() -> NodeSpec {
        NodeSpec::new("latent.style_mix", "Style mix")
            .category(CAT_LATENT)
            .doc(
                "Style mixing as `style_mixing.py` does it: `w = row.clone(); w[layers] = \
                 col[layers]` — the row latent with the listed layers taken from the column \
                 latent (official default `0-6`: coarse and middle styles from the column).\n\n\
                 Layouts: `pairs` mixes row i with column i; `grid` makes every row x column \
                 (row-major, `rows * cols` items); `official_grid` makes the whole official grid \
                 as one batch — the column sources, then each row source followed by its mixes \
                 — which `io.grid` with `cols = columns + 1` and `leading_blank = 1` lays out \
                 exactly like the official image (empty top-left cell).",
            )
            .input("row", "WPlus", "row latents [R, num_ws, w_dim]")
            .input("col", "WPlus", "column latents [C, num_ws, w_dim]")
            .output("ws", "WPlus", "mixed latents")
            .output(
                "grid_cols",
                "int",
                "columns of the layout: 1 (pairs), C (grid), C + 1 (official_grid)",
            )
            .param(
                ParamSpec::string("layers", "0-6")
                    .doc("layers taken from the column latent: `0-6`, `0,2,4`, `all`"),
            )
            .param(
                ParamSpec::enumeration("layout", "grid", &["pairs", "grid", "official_grid"])
                    .doc("how rows and columns are combined"),
            )
    }
    fn create() -> Result<Self, NodeError> {
        Ok(StyleMix)
    }
    fn execute(&mut self, ctx: &mut Context<'_>) -> NodeResult {
        let row = input_latents(ctx, "row")?;
        let col = input_latents(ctx, "col")?;
        let layers = math::parse_index_list(&ctx.param_str("layers")?, row.rows, "layer list")
            .map_err(at("param \"layers\""))?;
        let layout = MixLayout::parse(&ctx.param_str("layout")?).map_err(at("param \"layout\""))?;
        let out = math::style_mix(&row, &col, &layers, layout).map_err(at("latent.style_mix"))?;
        output_latents(ctx, "ws", &out)?;
        let cols = match layout {
            MixLayout::Pairs => 1,
            MixLayout::Grid => col.n,
            MixLayout::OfficialGrid => col.n + 1,
        };
        ctx.set_output_i64("grid_cols", cols as i64)
    }
}

/// `latent.blend`: lerp / slerp of two latents, or a weighted mean.
#[derive(Default)]
pub struct Blend;

impl Node for Blend {
    fn spec() -> NodeSpec {
        NodeSpec::new("latent.blend", "Blend")
            .category(CAT_LATENT)
            .doc(
                "Combines latents (Z, W or W+).\n\n\
                 - `lerp`: `a + t (b - a)` element-wise;\n\
                 - `slerp`: spherical interpolation of each latent vector (angle and length);\n\
                 - `mean`: the weighted mean `sum w_i x_i / sum w_i` of all latents in `a` (and \
                 `b`, appended, when connected) — one latent out.\n\n\
                 For lerp and slerp, a batch of 1 is broadcast against the other input.",
            )
            .input("a", "Tensor", "first latents")
            .optional_input(
                "b",
                "Tensor",
                "second latents (required for lerp and slerp)",
            )
            .output("out", "Tensor", "blended latents")
            .param(
                ParamSpec::enumeration("mode", "lerp", &["lerp", "slerp", "mean"])
                    .doc("how to combine"),
            )
            .param(
                ParamSpec::float("t", 0.5)
                    .range(-2.0, 3.0)
                    .step(0.01)
                    .doc("position from a (0) to b (1)"),
            )
            .param(
                ParamSpec::string("weights", "")
                    .doc("mean: comma-separated weights, one per latent (empty: equal)"),
            )
    }
    fn create() -> Result<Self, NodeError> {
        Ok(Blend)
    }
    fn execute(&mut self, ctx: &mut Context<'_>) -> NodeResult {
        let a = input_latents(ctx, "a")?;
        let mode = ctx.param_str("mode")?;
        let t = ctx.param_f64("t")?;
        let out = match mode.as_str() {
            "lerp" | "slerp" => {
                if !ctx.has_input("b") {
                    node_bail!("mode {mode:?} needs input \"b\"");
                }
                let b = input_latents(ctx, "b")?;
                let m = if mode == "lerp" {
                    BlendMode::Lerp
                } else {
                    BlendMode::Slerp
                };
                math::blend(&a, &b, t, m).map_err(at("latent.blend"))?
            }
            "mean" => {
                let mut all = a;
                if ctx.has_input("b") {
                    let b = input_latents(ctx, "b")?;
                    if b.rows != all.rows || b.dim != all.dim {
                        node_bail!("a is {:?} but b is {:?}", all.shape(), b.shape());
                    }
                    all.n += b.n;
                    all.data.extend_from_slice(&b.data);
                }
                let wtext = ctx.param_str("weights")?;
                let weights = if wtext.trim().is_empty() {
                    Vec::new()
                } else {
                    math::parse_float_list(&wtext, "weight list")
                        .map_err(at("param \"weights\""))?
                };
                math::weighted_mean(&all, &weights).map_err(at("latent.blend"))?
            }
            other => node_bail!("param \"mode\": unknown mode {other:?}"),
        };
        output_latents(ctx, "out", &out)
    }
}

/// `latent.interpolate`: keyframes -> frames.
#[derive(Default)]
pub struct Interpolate;

impl Node for Interpolate {
    fn spec() -> NodeSpec {
        NodeSpec::new("latent.interpolate", "Interpolate")
            .category(CAT_LATENT)
            .doc(
                "Interpolates keyframe latents into a sequence of frames.\n\n\
                 With `mode = cubic` and `loop` on, this is the latent walk of the official \
                 `gen_video.py`: SciPy's cubic `interp1d` through the keyframes repeated \
                 `2 * wraps + 1` times (so the loop closes smoothly), sampled at \
                 `t = frame / frames_per_keyframe`, `K * frames_per_keyframe` frames in all. \
                 `linear` and `slerp` go straight (or along the sphere) from keyframe to \
                 keyframe; without `loop` the sequence ends on the last keyframe \
                 (`(K - 1) * frames_per_keyframe + 1` frames).\n\n\
                 `groups` interpolates several sequences at once, as the official grid video \
                 does: the input holds `groups * K` latents, group by group (the official seed \
                 order), and the output is frame by frame with each frame's `groups` latents \
                 together — the order `io.save_video` tiles into a grid.\n\n\
                 The frames are a **stream**: they come out `chunk_frames` frames at a time, and \
                 the nodes downstream (synthesis, ...) run once per chunk up to a stream \
                 consumer such as `io.save_video`, so a video of any length needs the memory of \
                 one chunk. `chunk_frames = 0` makes the whole sequence one chunk (for nodes that \
                 need every frame at once, like a contact-sheet `io.grid`). `start_frame` and \
                 `frame_count` restrict the sequence to a slice of the walk.",
            )
            .input(
                "keyframes",
                "Tensor",
                "[groups * K, ...] latents (Z, W or W+)",
            )
            .stream_output(
                "frames",
                "Tensor",
                "[frames * groups, ...] latents, frame-major; a stream of `chunk_frames` frames \
                 per chunk",
            )
            .output("count", "int", "frames in this chunk (per group)")
            .output("total", "int", "frames in the whole walk (per group)")
            .param(
                ParamSpec::enumeration("mode", "cubic", &["linear", "slerp", "cubic"])
                    .doc("curve between keyframes"),
            )
            .param(ParamSpec::bool("loop", true).doc("return to the first keyframe at the end"))
            .param(
                ParamSpec::int("frames_per_keyframe", 120)
                    .range(1.0, 100_000.0)
                    .doc(
                        "frames from one keyframe to the next (official `--w-frames`, default 120)",
                    ),
            )
            .param(
                ParamSpec::int("wraps", 2)
                    .range(0.0, 16.0)
                    .doc("cubic loop: keyframe copies on each side (official: 2)"),
            )
            .param(
                ParamSpec::int("groups", 1)
                    .range(1.0, 4096.0)
                    .doc("independent sequences (grid cells)"),
            )
            .param(
                ParamSpec::int("start_frame", 0)
                    .min(0.0)
                    .doc("first frame to output"),
            )
            .param(
                ParamSpec::int("frame_count", -1)
                    .min(-1.0)
                    .doc("frames to output; -1 = to the end"),
            )
            .param(
                ParamSpec::int("chunk_frames", 16)
                    .range(0.0, 1_000_000.0)
                    .doc("frames per chunk of the stream (0: all in one chunk)"),
            )
    }
    fn create() -> Result<Self, NodeError> {
        Ok(Interpolate)
    }
    fn execute(&mut self, ctx: &mut Context<'_>) -> NodeResult {
        let keys = input_latents(ctx, "keyframes")?;
        let spec = InterpSpec {
            mode: InterpMode::parse(&ctx.param_str("mode")?).map_err(at("param \"mode\""))?,
            looped: ctx.param_bool("loop")?,
            frames_per_key: non_negative(ctx, "frames_per_keyframe")?,
            wraps: non_negative(ctx, "wraps")?,
            groups: non_negative(ctx, "groups")?,
        };
        let start = non_negative(ctx, "start_frame")?;
        let count = ctx.param_i64("frame_count")?;
        let count = (count >= 0).then_some(count as usize);
        let total = spec.frame_count(keys.n / spec.groups.max(1));
        // The frames this node outputs in all: the slice [start, start + count) of the walk.
        let wanted = count.map_or(total.saturating_sub(start), |c| {
            c.min(total.saturating_sub(start))
        });
        let (first, n) = match ctx.chunk() {
            Some(chunk) => {
                let per = match non_negative(ctx, "chunk_frames")? {
                    0 => wanted.max(1),
                    c => c,
                };
                let done = usize::try_from(chunk.index)
                    .ok()
                    .and_then(|i| i.checked_mul(per))
                    .filter(|&d| d < wanted || (d == 0 && wanted == 0))
                    .ok_or_else(|| {
                        NodeError::invalid(format!(
                            "chunk {} is past the end of the {wanted} frames",
                            chunk.index
                        ))
                    })?;
                let n = per.min(wanted - done);
                ctx.set_stream_total((wanted * spec.groups) as u64);
                ctx.set_stream_more(done + n < wanted);
                (start + done, n)
            }
            // A host without streams: the whole slice at once.
            None => (start, wanted),
        };
        ctx.check_cancelled()?;
        let out =
            interp::interpolate(&keys, &spec, first, Some(n)).map_err(at("latent.interpolate"))?;
        output_latents(ctx, "frames", &out)?;
        ctx.set_output_i64("count", (out.n / spec.groups.max(1)) as i64)?;
        ctx.set_output_i64("total", total as i64)
    }
}

/// `latent.select`: picks batch items by index.
#[derive(Default)]
pub struct Select;

impl Node for Select {
    fn spec() -> NodeSpec {
        NodeSpec::new("latent.select", "Select")
            .category(CAT_LATENT)
            .doc(
                "Picks items of a batch (the first dimension) by index: `0`, `2-5`, `0,3,7`, \
                 `all`. Works on any tensor (latents, directions, images) and keeps its dtype.",
            )
            .input("x", "Tensor", "a batch [N, ...]")
            .output("out", "Tensor", "the chosen items, in index order")
            .param(ParamSpec::string("indices", "0").doc("index list"))
    }
    fn create() -> Result<Self, NodeError> {
        Ok(Select)
    }
    fn execute(&mut self, ctx: &mut Context<'_>) -> NodeResult {
        let x = ctx.input_tensor("x")?;
        let shape = x.shape().to_vec();
        let Some(&n) = shape.first() else {
            node_bail!("input \"x\": a scalar tensor has no batch dimension");
        };
        let idx = math::parse_index_list(&ctx.param_str("indices")?, n, "index list")
            .map_err(at("param \"indices\""))?;
        let item = x.bytes().len().checked_div(n).unwrap_or(0);
        let bytes = x.bytes();
        let mut out_shape = shape;
        out_shape[0] = idx.len();
        let out = ctx.output_bytes("out", x.dtype(), &out_shape)?;
        for (o, &i) in out.chunks_exact_mut(item.max(1)).zip(&idx) {
            o.copy_from_slice(&bytes[i * item..(i + 1) * item]);
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Directions

fn output_components(ctx: &mut Context<'_>, port: &str, c: &directions::Components) -> NodeResult {
    let out = ctx.output_f32(port, &[c.k, c.dim])?;
    for (o, &v) in out.iter_mut().zip(&c.vectors) {
        *o = v as f32;
    }
    Ok(())
}

/// `latent.direction_from_file`: InterFaceGAN / GANSpace style direction files.
#[derive(Default)]
pub struct DirectionFromFile;

impl Node for DirectionFromFile {
    fn spec() -> NodeSpec {
        NodeSpec::new("latent.direction_from_file", "Direction from file")
            .category(CAT_DIR)
            .doc(
                "Reads attribute directions from NumPy files in the layouts that published \
                 direction files use: `[w_dim]` or `[1, w_dim]` (an InterFaceGAN boundary, e.g. \
                 age, smile, pose, glasses), `[K, w_dim]` (several directions), or `[K, 1, w_dim]` \
                 (GANSpace components, array `lat_comp` of its `.npz`).",
            )
            .output("direction", "Direction", "[K, w_dim] float32")
            .param(ParamSpec::path("path", "").doc("`.npy` or `.npz` file"))
            .param(
                ParamSpec::string("key", "")
                    .doc("array name inside an `.npz` (empty: the only one, or `lat_comp`)"),
            )
            .param(
                ParamSpec::string("indices", "all")
                    .doc("which directions to keep: `all`, `0`, `0-4`"),
            )
            .param(ParamSpec::bool("normalize", false).doc("scale each direction to unit length"))
    }
    fn create() -> Result<Self, NodeError> {
        Ok(DirectionFromFile)
    }
    fn execute(&mut self, ctx: &mut Context<'_>) -> NodeResult {
        let path = path_param(ctx, "path")?;
        let key = npz_key(&path, &ctx.param_str("key")?, "lat_comp");
        let a = files::read_array(&path, &key).map_err(file_err(&path))?;
        let (k, d) = match a.shape.as_slice() {
            [d] => (1, *d),
            [k, d] => (*k, *d),
            [k, 1, d] => (*k, *d),
            s => node_bail!(
                "{}: a direction file must be [w_dim], [K, w_dim] or [K, 1, w_dim], this one is {s:?}",
                path.display()
            ),
        };
        if k == 0 || d == 0 {
            node_bail!(
                "{}: the file holds no directions (shape {:?})",
                path.display(),
                a.shape
            );
        }
        let values = files::array_f32(&a);
        let idx = math::parse_index_list(&ctx.param_str("indices")?, k, "index list")
            .map_err(at("param \"indices\""))?;
        let normalize = ctx.param_bool("normalize")?;
        let out = ctx.output_f32("direction", &[idx.len(), d])?;
        for (o, &i) in out.chunks_exact_mut(d).zip(&idx) {
            let src = &values[i * d..(i + 1) * d];
            let norm = src.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt();
            if normalize && norm == 0.0 {
                node_bail!(
                    "{}: direction {i} is all zeros and cannot be normalised",
                    path.display()
                );
            }
            let scale = if normalize { 1.0 / norm } else { 1.0 };
            for (o, &v) in o.iter_mut().zip(src) {
                *o = (v as f64 * scale) as f32;
            }
        }
        Ok(())
    }
}

/// `latent.apply_direction`: W+ + direction(s) x strength(s) on a layer range.
#[derive(Default)]
pub struct ApplyDirection;

impl Node for ApplyDirection {
    fn spec() -> NodeSpec {
        NodeSpec::new("latent.apply_direction", "Apply direction")
            .category(CAT_DIR)
            .doc(
                "Edits latents along attribute directions: `w + strength * direction` on the \
                 chosen layers only (e.g. pose on the coarse layers `0-3`, colour on the fine \
                 ones).\n\n\
                 - `sum`: one edit per latent, `w + sum_k s_k d_k` (one strength per direction, \
                 or one for all);\n\
                 - `sweep`: every direction at every strength — item `(i * K + k) * S + s` — a \
                 grid with one row per latent and direction and one column per strength \
                 (`io.grid` with `cols = S`).\n\n\
                 Strengths: `2.5`, `-3,0,3`, or `start:stop:count` (e.g. `-5:5:7`).",
            )
            .input("ws", "WPlus", "[N, num_ws, w_dim] (or W [N, w_dim])")
            .input("direction", "Direction", "[K, w_dim] directions")
            .output("ws", "WPlus", "edited latents")
            .param(ParamSpec::string("strengths", "1.0").doc("strength list"))
            .param(ParamSpec::string("layers", "all").doc("layers to edit: `all`, `0-3`, `4,5`"))
            .param(
                ParamSpec::enumeration("mode", "sum", &["sum", "sweep"])
                    .doc("how directions and strengths combine"),
            )
            .param(ParamSpec::bool("normalize", false).doc("scale directions to unit length first"))
    }
    fn create() -> Result<Self, NodeError> {
        Ok(ApplyDirection)
    }
    fn execute(&mut self, ctx: &mut Context<'_>) -> NodeResult {
        let ws = input_latents(ctx, "ws")?;
        let dir = ctx.input_tensor("direction")?;
        let (k, d) = match *dir.shape() {
            [d] => (1, d),
            [k, d] => (k, d),
            [k, 1, d] => (k, d),
            ref s => node_bail!("input \"direction\": expected [K, w_dim], got shape {s:?}"),
        };
        if d != ws.dim {
            node_bail!(
                "input \"direction\" has w_dim {d} but input \"ws\" has w_dim {}: the direction \
                 was made for another model",
                ws.dim
            );
        }
        let dirs = dir.to_f32_vec()?;
        let strengths = math::parse_float_list(&ctx.param_str("strengths")?, "strength list")
            .map_err(at("param \"strengths\""))?;
        let layers = math::parse_index_list(&ctx.param_str("layers")?, ws.rows, "layer list")
            .map_err(at("param \"layers\""))?;
        let mode = ApplyMode::parse(&ctx.param_str("mode")?).map_err(at("param \"mode\""))?;
        let normalize = ctx.param_bool("normalize")?;
        let out = directions::apply_direction(&ws, &dirs, k, &strengths, &layers, mode, normalize)
            .map_err(at("latent.apply_direction"))?;
        output_latents(ctx, "ws", &out)
    }
}

/// `latent.sefa`: closed-form factorisation of the style affines.
#[derive(Default)]
pub struct Sefa;

impl Node for Sefa {
    fn spec() -> NodeSpec {
        NodeSpec::new("latent.sefa", "SeFa directions")
            .category(CAT_DIR)
            .doc(
                "Finds semantic directions without data or training (SeFa, closed-form \
                 factorisation): the eigenvectors of `AᵀA` with the largest eigenvalues, where \
                 `A` stacks the style-affine weights of the chosen synthesis layers \
                 (`stylegan.affine_weights`; early layers give pose and shape, late layers \
                 colour and texture). With `normalize` each affine row is scaled to unit length \
                 first, as the reference implementation does. Sign: the largest entry of each \
                 direction is positive.",
            )
            .input(
                "weights",
                "Tensor",
                "[styles, w_dim] stacked affine weights",
            )
            .output(
                "directions",
                "Direction",
                "[K, w_dim] unit directions, strongest first",
            )
            .output("eigenvalues", "Tensor", "[K] eigenvalues of AᵀA")
            .param(
                ParamSpec::int("components", 5)
                    .range(1.0, 4096.0)
                    .doc("number of directions K"),
            )
            .param(ParamSpec::bool("normalize", true).doc("unit-normalise affine rows first"))
    }
    fn create() -> Result<Self, NodeError> {
        Ok(Sefa)
    }
    fn execute(&mut self, ctx: &mut Context<'_>) -> NodeResult {
        let w = ctx.input_tensor("weights")?;
        let [rows, dim] = *w.shape() else {
            node_bail!(
                "input \"weights\": expected a matrix [styles, w_dim], got shape {:?}",
                w.shape()
            );
        };
        let a = w.to_f64_vec()?;
        let k = non_negative(ctx, "components")?;
        let normalize = ctx.param_bool("normalize")?;
        ctx.progress(0.1, "eigendecomposition");
        let c = directions::sefa(&a, rows, dim, k, normalize).map_err(at("latent.sefa"))?;
        output_components(ctx, "directions", &c)?;
        let ev = ctx.output_f32("eigenvalues", &[c.k])?;
        for (o, &v) in ev.iter_mut().zip(&c.values) {
            *o = v as f32;
        }
        Ok(())
    }
}

/// Reads `[N, dim]` latents, or row `layer` of `[N, rows, dim]`, as f64.
fn latent_rows(
    ctx: &Context<'_>,
    port: &str,
    layer: usize,
) -> Result<(Vec<f64>, usize, usize), NodeError> {
    let l = input_latents(ctx, port)?;
    if layer >= l.rows {
        node_bail!(
            "param \"layer\" is {layer} but input {port:?} has {} row(s) per latent",
            l.rows
        );
    }
    let mut x = Vec::with_capacity(l.n * l.dim);
    for i in 0..l.n {
        x.extend(
            l.item(i)[layer * l.dim..(layer + 1) * l.dim]
                .iter()
                .map(|&v| v as f64),
        );
    }
    Ok((x, l.n, l.dim))
}

/// `latent.ganspace`: PCA of sampled latents.
#[derive(Default)]
pub struct Ganspace;

impl Node for Ganspace {
    fn spec() -> NodeSpec {
        NodeSpec::new("latent.ganspace", "GANSpace directions")
            .category(CAT_DIR)
            .doc(
                "Finds directions as principal components of sampled latents (GANSpace): feed \
                 many W (e.g. `latent.random_z` with count N and a seed -> `stylegan.mapping`). \
                 Returns the top components (unit vectors, sign: largest entry positive), the \
                 standard deviation of the samples along each — a natural unit for strengths — \
                 and their mean.",
            )
            .input(
                "latents",
                "Tensor",
                "[N, w_dim] W, or W+ [N, num_ws, w_dim] (row `layer` is used)",
            )
            .output("directions", "Direction", "[K, w_dim] principal components")
            .output(
                "stddev",
                "Tensor",
                "[K] standard deviation along each component",
            )
            .output("mean", "W", "[1, w_dim] mean latent")
            .param(
                ParamSpec::int("components", 10)
                    .range(1.0, 4096.0)
                    .doc("number of components K"),
            )
            .param(ParamSpec::int("layer", 0).min(0.0).doc("W+ row to analyse"))
    }
    fn create() -> Result<Self, NodeError> {
        Ok(Ganspace)
    }
    fn execute(&mut self, ctx: &mut Context<'_>) -> NodeResult {
        let layer = non_negative(ctx, "layer")?;
        let l = input_latents(ctx, "latents")?;
        if layer >= l.rows {
            node_bail!(
                "param \"layer\" is {layer} but input \"latents\" has {} row(s) per latent",
                l.rows
            );
        }
        let (n, dim) = (l.n, l.dim);
        let k = non_negative(ctx, "components")?;
        ctx.progress(0.1, "covariance and eigendecomposition");
        let (c, mean) =
            directions::ganspace_rows(n, dim, k, |i| &l.item(i)[layer * dim..(layer + 1) * dim])
                .map_err(at("latent.ganspace"))?;
        output_components(ctx, "directions", &c)?;
        let sd = ctx.output_f32("stddev", &[c.k])?;
        for (o, &v) in sd.iter_mut().zip(&c.values) {
            *o = v as f32;
        }
        let m = ctx.output_f32("mean", &[1, dim])?;
        for (o, &v) in m.iter_mut().zip(&mean) {
            *o = v as f32;
        }
        Ok(())
    }
}

/// Parses `seed,label` lines; returns seed -> label value. A first line that does not start
/// with a number is taken as a header.
pub fn parse_label_csv(
    text: &str,
    origin: &str,
) -> Result<std::collections::HashMap<i64, f64>, NodeError> {
    let mut out = std::collections::HashMap::new();
    for (lineno, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line
            .split([',', ';', '\t', ' '])
            .filter(|f| !f.is_empty())
            .collect();
        let (Some(seed), Some(label)) = (fields.first(), fields.get(1)) else {
            node_bail!(
                "{origin}:{}: expected `seed,label`, got {line:?}",
                lineno + 1
            );
        };
        let Ok(seed) = seed.parse::<i64>() else {
            if out.is_empty() && lineno == 0 {
                continue; // header
            }
            node_bail!("{origin}:{}: seed {seed:?} is not an integer", lineno + 1);
        };
        let value = match label.to_ascii_lowercase().as_str() {
            "true" | "yes" => 1.0,
            "false" | "no" => 0.0,
            l => match l.parse::<f64>() {
                Ok(v) if v.is_finite() => v,
                _ => node_bail!(
                    "{origin}:{}: label {label:?} is not a number or true/false",
                    lineno + 1
                ),
            },
        };
        out.insert(seed, value);
    }
    Ok(out)
}

/// `latent.learn_direction`: InterFaceGAN-style linear boundary.
#[derive(Default)]
pub struct LearnDirection;

impl Node for LearnDirection {
    fn spec() -> NodeSpec {
        NodeSpec::new("latent.learn_direction", "Learn direction")
            .category(CAT_DIR)
            .doc(
                "Learns an attribute direction from labelled latents, as InterFaceGAN does: a \
                 linear boundary (linear SVM, or logistic regression) between the latents of \
                 the two classes; its unit normal, pointing to the positive class, is the \
                 direction. A fraction of the latents is held out and the boundary's accuracy \
                 on them is reported.\n\n\
                 Labels come either from an upstream node's `scores` (one per latent: \
                 `score > threshold` is positive, or with `select_ratio` the top and bottom \
                 fractions, InterFaceGAN's confident samples), or from a CSV file of \
                 `seed,label` lines matched to the latents through the `seeds` input (from \
                 `latent.seeds`); latents whose seed is not in the file are left out.",
            )
            .input(
                "latents",
                "Tensor",
                "[N, w_dim] W, or W+ [N, num_ws, w_dim] (row `layer` is used)",
            )
            .optional_input("scores", "Tensor", "[N] a score or 0/1 label per latent")
            .optional_input(
                "seeds",
                "Tensor",
                "[N] int seeds of the latents (for `labels_csv`)",
            )
            .output(
                "direction",
                "Direction",
                "[1, w_dim] unit normal of the boundary",
            )
            .output(
                "accuracy",
                "float",
                "accuracy on the held-out latents (NaN when holdout = 0)",
            )
            .output(
                "train_accuracy",
                "float",
                "accuracy on the training latents",
            )
            .output(
                "offset",
                "float",
                "boundary offset: normal · w + offset = 0 on the boundary",
            )
            .param(
                ParamSpec::path("labels_csv", "")
                    .doc("CSV of `seed,label` (used when `scores` is not connected)"),
            )
            .param(ParamSpec::enumeration("method", "svm", &["svm", "logistic"]).doc("classifier"))
            .param(
                ParamSpec::float("c", 1.0)
                    .min(1e-6)
                    .flag(stylegraph_abi::ffi::SG_PARAM_LOG_SCALE)
                    .doc("inverse regularisation strength C"),
            )
            .param(
                ParamSpec::float("holdout", 0.3)
                    .range(0.0, 0.9)
                    .step(0.05)
                    .doc("fraction held out for the accuracy"),
            )
            .param(ParamSpec::float("threshold", 0.5).doc("label = value > threshold"))
            .param(
                ParamSpec::float("select_ratio", 0.0)
                    .range(0.0, 0.5)
                    .doc("> 0: use only the top and bottom fractions by score"),
            )
            .param(
                ParamSpec::seed("split_seed", 0)
                    .min(0.0)
                    .max(4294967295.0)
                    .doc("seed of the train/held-out split"),
            )
            .param(ParamSpec::int("layer", 0).min(0.0).doc("W+ row to use"))
    }
    fn create() -> Result<Self, NodeError> {
        Ok(LearnDirection)
    }
    fn execute(&mut self, ctx: &mut Context<'_>) -> NodeResult {
        let layer = non_negative(ctx, "layer")?;
        let (x, n, dim) = latent_rows(ctx, "latents", layer)?;
        let threshold = ctx.param_f64("threshold")?;
        let ratio = ctx.param_f64("select_ratio")?;
        let csv = ctx.param_str("labels_csv")?;
        let scores: Vec<f64> = if ctx.has_input("scores") {
            if !csv.trim().is_empty() {
                node_bail!(
                    "give labels either through input \"scores\" or param \"labels_csv\", not both"
                );
            }
            let s = ctx.input_tensor("scores")?;
            if s.numel() != n {
                node_bail!("input \"scores\" has {} values for {n} latents", s.numel());
            }
            s.to_f64_vec()?
        } else if !csv.trim().is_empty() {
            if !ctx.has_input("seeds") {
                node_bail!("param \"labels_csv\" needs input \"seeds\" to match labels to latents");
            }
            let seeds = ctx.input_tensor("seeds")?.to_f64_vec()?;
            if seeds.len() != n {
                node_bail!("input \"seeds\" has {} values for {n} latents", seeds.len());
            }
            let text =
                std::fs::read_to_string(&csv).map_err(|e| NodeError::new(format!("{csv}: {e}")))?;
            let table = parse_label_csv(&text, &csv)?;
            // Latents without a label get NaN and are dropped below.
            seeds
                .iter()
                .map(|&s| table.get(&(s as i64)).copied().unwrap_or(f64::NAN))
                .collect()
        } else {
            node_bail!("no labels: connect input \"scores\" or set param \"labels_csv\"");
        };
        let known: Vec<usize> = (0..n).filter(|&i| scores[i].is_finite()).collect();
        if known.len() < n {
            ctx.log(
                SG_LOG_INFO,
                &format!(
                    "{} of {n} latents have no label and are left out",
                    n - known.len()
                ),
            );
        }
        let kscores: Vec<f64> = known.iter().map(|&i| scores[i]).collect();
        let (sel, labels) = directions::labels_from_scores(&kscores, threshold, ratio)
            .map_err(at("latent.learn_direction"))?;
        let mut xs = Vec::with_capacity(sel.len() * dim);
        for &j in &sel {
            let i = known[j];
            xs.extend_from_slice(&x[i * dim..(i + 1) * dim]);
        }
        let method =
            Classifier::parse(&ctx.param_str("method")?).map_err(at("param \"method\""))?;
        let c = ctx.param_f64("c")?;
        let holdout = ctx.param_f64("holdout")?;
        let seed = u32::try_from(ctx.param_i64("split_seed")?.max(0)).unwrap_or(0);
        ctx.progress(0.1, "training");
        let opts = directions::BoundaryOptions {
            method,
            c,
            holdout,
            seed,
        };
        let b = directions::learn_boundary(&xs, sel.len(), dim, &labels, &opts)
            .map_err(at("latent.learn_direction"))?;
        let out = ctx.output_f32("direction", &[1, dim])?;
        for (o, &v) in out.iter_mut().zip(&b.normal) {
            *o = v as f32;
        }
        ctx.set_output_f64("accuracy", b.val_accuracy.unwrap_or(f64::NAN))?;
        ctx.set_output_f64("train_accuracy", b.train_accuracy)?;
        ctx.set_output_f64("offset", b.offset)?;
        ctx.log(
            SG_LOG_INFO,
            &format!(
                "trained on {}, held out {}: accuracy {:.3} (train {:.3})",
                b.n_train,
                b.n_val,
                b.val_accuracy.unwrap_or(f64::NAN),
                b.train_accuracy
            ),
        );
        Ok(())
    }
}
