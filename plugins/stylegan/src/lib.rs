//! # The `stylegan` plugin
//!
//! Loads StyleGAN2 / StyleGAN2-ADA / StyleGAN3-T / StyleGAN3-R generators (NVIDIA's `.pkl`
//! network pickles read in pure Rust, `.safetensors`, or built-in seeded models) and runs them:
//! mapping with truncation, whole-network synthesis, and layer-by-layer synthesis for feature
//! taps. The arithmetic lives in `stylegraph-kernels` and matches the official implementation
//! (see the parity tests there).

pub mod model;

use model::{load_model, load_tensors, Model, DEFAULT_MODEL};
use std::sync::Arc;
use stylegraph_abi::prelude::*;
use stylegraph_kernels::sg3::user_transform;
use stylegraph_kernels::{
    image_to_u8, Control, Features, ModelError, NoiseMode, Synthesis, SynthesisOptions,
};

/// Type name of the generator object on ports (`object:stylegan.Generator`).
pub const GENERATOR_TYPE: &str = "stylegan.Generator";
const GENERATOR_PORT: &str = "object:stylegan.Generator";

/// Progress and cancellation of the running node, for the kernels.
struct Ctl<'a>(HostHandle<'a>);

impl Control for Ctl<'_> {
    fn is_cancelled(&self) -> bool {
        self.0.is_cancelled()
    }
    fn progress(&self, fraction: f64) {
        self.0.progress(fraction, "");
    }
}

fn model_error(e: ModelError) -> NodeError {
    match e {
        ModelError::Cancelled => NodeError::cancelled(),
        ModelError::Input(m) => NodeError::invalid(m),
        other => NodeError::new(other),
    }
}

fn generator(ctx: &Context) -> Result<Arc<Model>, NodeError> {
    ctx.input_object::<Model>("generator")
}

/// A `WPlus` input checked against the generator: `(values, n)`.
fn ws_input(ctx: &Context, port: &str, m: &Model) -> Result<(Vec<f32>, usize), NodeError> {
    let t = ctx.input_tensor(port)?;
    let g = &m.generator;
    let (num_ws, w_dim) = (g.num_ws(), g.w_dim());
    match t.shape() {
        [n, r, d] if *r == num_ws && *d == w_dim => Ok((t.to_f32_vec()?, *n)),
        shape => Err(NodeError::invalid(format!(
            "input {port:?} has shape {shape:?}; this generator needs WPlus [N, {num_ws}, {w_dim}] \
             (the output of stylegan.mapping)"
        ))),
    }
}

fn features_input(ctx: &Context, port: &str) -> Result<Features, NodeError> {
    let t = ctx.input_tensor(port)?;
    match t.shape() {
        &[n, c, h, w] => Features::from_vec(n, c, h, w, t.to_f32_vec()?).map_err(model_error),
        shape => Err(NodeError::invalid(format!(
            "input {port:?} has shape {shape:?}, expected [N, C, H, W] features"
        ))),
    }
}

fn output_features(ctx: &mut Context, port: &str, f: &Features) -> NodeResult {
    ctx.output_f32(port, &f.shape())?.copy_from_slice(&f.data);
    Ok(())
}

fn noise_mode(ctx: &Context) -> Result<NoiseMode, NodeError> {
    let seed = ctx.param_i64("noise_seed")?;
    let seed = u32::try_from(seed)
        .map_err(|_| NodeError::invalid(format!("noise_seed {seed} is outside 0 .. 2^32-1")))?;
    Ok(match ctx.param_str("noise_mode")?.as_str() {
        "const" => NoiseMode::Const,
        "random" => NoiseMode::Random { seed },
        "none" => NoiseMode::None,
        other => return Err(NodeError::invalid(format!("unknown noise_mode {other:?}"))),
    })
}

/// The input transform from the translate/rotate params; `None` when they are all zero (the
/// model's stored transform, the identity in every released model, is used).
fn transform(ctx: &Context) -> Result<Option<[[f64; 3]; 3]>, NodeError> {
    let (tx, ty, rot) = (
        ctx.param_f64("translate_x")?,
        ctx.param_f64("translate_y")?,
        ctx.param_f64("rotate")?,
    );
    if !(tx.is_finite() && ty.is_finite() && rot.is_finite()) {
        return Err(NodeError::invalid(
            "translate and rotate must be finite numbers",
        ));
    }
    Ok((tx != 0.0 || ty != 0.0 || rot != 0.0).then(|| user_transform((tx, ty), rot)))
}

fn transform_params(spec: NodeSpec) -> NodeSpec {
    spec.param(
        ParamSpec::float("translate_x", 0.0)
            .range(-10.0, 10.0)
            .step(0.01)
            .doc("StyleGAN3 input translation along x, in the input layer's coordinate units (as gen_images.py --translate)"),
    )
    .param(
        ParamSpec::float("translate_y", 0.0)
            .range(-10.0, 10.0)
            .step(0.01)
            .doc("StyleGAN3 input translation along y, as gen_images.py --translate"),
    )
    .param(
        ParamSpec::float("rotate", 0.0)
            .range(-360.0, 360.0)
            .step(0.5)
            .doc("StyleGAN3 input rotation in degrees, as gen_images.py --rotate"),
    )
}

fn noise_params(spec: NodeSpec) -> NodeSpec {
    spec.param(
        ParamSpec::enumeration("noise_mode", "const", &["const", "random", "none"])
            .doc("StyleGAN2 per-pixel noise: the stored buffers (official default), fresh noise, or none. StyleGAN3 has no noise."),
    )
    .param(
        ParamSpec::seed("noise_seed", 0)
            .range(0.0, u32::MAX as f64)
            .doc("seed of the noise when noise_mode is random"),
    )
}

// ---------------------------------------------------------------------------------------------

/// Loads a generator.
pub struct Load;
impl Node for Load {
    fn spec() -> NodeSpec {
        NodeSpec::new("stylegan.load", "Load generator")
            .category("StyleGAN")
            .doc(
                "Loads a StyleGAN2/2-ADA/3-T/3-R generator: an NVIDIA network pickle (`.pkl`, read \
                 without Python; nothing in the file is executed), a `.safetensors` file written by \
                 `stylegraph convert` (or with upstream state-dict names plus a `.json` of the \
                 construction arguments beside it), or a built-in model \
                 `builtin:<stylegan3-t|stylegan3-r|stylegan2>-<resolution>[?seed=N]` whose weights \
                 come from our own seeded initialisation (untrained: abstract images, not faces). \
                 The architecture is recognised from the file. A file is loaded once per process \
                 and shared by every node that uses it.",
            )
            .output("generator", GENERATOR_PORT, "the generator")
            .param(ParamSpec::path("path", DEFAULT_MODEL).doc("model file or builtin:<name>"))
            .param(
                ParamSpec::enumeration("network", "G_ema", &["G_ema", "G"])
                    .doc("which network of a training snapshot (G_ema is what the official tools use)"),
            )
    }
    fn create() -> Result<Self, NodeError> {
        Ok(Load)
    }
    fn execute(&mut self, ctx: &mut Context) -> NodeResult {
        let path = ctx.param_str("path")?;
        if path.trim().is_empty() {
            return Err(NodeError::invalid("param \"path\" is empty"));
        }
        let network = ctx.param_str("network")?;
        ctx.progress(0.0, "loading");
        let m = load_model(&path, &network).map_err(NodeError::new)?;
        ctx.log(SG_LOG_INFO, &format!("loaded {path}: {:?}", m.generator));
        let size = m.size_bytes;
        ctx.set_output_object("generator", GENERATOR_TYPE, m, size)
    }
}

/// z -> ws with truncation.
pub struct Mapping;
impl Node for Mapping {
    fn spec() -> NodeSpec {
        NodeSpec::new("stylegan.mapping", "Mapping")
            .category("StyleGAN")
            .doc(
                "The mapping network: z [N, z_dim] -> ws [N, num_ws, w_dim], then truncation \
                 `w_avg.lerp(w, psi)` on the first `cutoff` rows (all rows when -1), exactly as the \
                 official tools. Conditional models need a class (param or one-hot input).",
            )
            .input("generator", GENERATOR_PORT, "the generator")
            .input("z", "Z", "latents [N, z_dim] (float64 as the official tools, or float32)")
            .optional_input("class", "Tensor", "one-hot labels [N, c_dim] (overrides class_index)")
            .output("ws", "WPlus", "[N, num_ws, w_dim]")
            .param(ParamSpec::float("psi", 1.0).range(-2.0, 2.0).step(0.05).doc("truncation psi (1 = none)"))
            .param(ParamSpec::int("cutoff", -1).range(-1.0, 64.0).doc("truncate only the first rows (-1 = all)"))
            .param(
                ParamSpec::int("class_index", -1)
                    .range(-1.0, 1e6)
                    .doc("class of a conditional model (-1 = none), as gen_images.py --class"),
            )
    }
    fn create() -> Result<Self, NodeError> {
        Ok(Mapping)
    }
    fn execute(&mut self, ctx: &mut Context) -> NodeResult {
        let m = generator(ctx)?;
        let g = &m.generator;
        let z = ctx.input_tensor("z")?;
        let n = match z.shape() {
            [n, d] if *d == g.z_dim() => *n,
            shape => {
                return Err(NodeError::invalid(format!(
                    "input \"z\" has shape {shape:?}; this generator needs [N, {}]",
                    g.z_dim()
                )))
            }
        };
        let zv = z.to_f64_vec()?;
        let c_dim = g.c_dim();
        let labels: Option<Vec<f32>> = if ctx.has_input("class") {
            let c = ctx.input_tensor("class")?;
            if c.shape() != [n, c_dim] {
                return Err(NodeError::invalid(format!(
                    "input \"class\" has shape {:?}; this generator needs [{n}, {c_dim}]",
                    c.shape()
                )));
            }
            Some(c.to_f32_vec()?)
        } else {
            let idx = ctx.param_i64("class_index")?;
            if idx >= 0 {
                let idx = idx as usize;
                if c_dim == 0 {
                    return Err(NodeError::invalid(
                        "class_index is set but this generator is not conditional (c_dim = 0)",
                    ));
                }
                if idx >= c_dim {
                    return Err(NodeError::invalid(format!(
                        "class_index {idx} is out of range: the generator has {c_dim} classes"
                    )));
                }
                let mut v = vec![0.0f32; n * c_dim];
                for row in v.chunks_exact_mut(c_dim) {
                    row[idx] = 1.0;
                }
                Some(v)
            } else if c_dim > 0 {
                return Err(NodeError::invalid(format!(
                    "this generator is conditional ({c_dim} classes): set class_index or connect a one-hot class input"
                )));
            } else {
                None
            }
        };
        let psi = ctx.param_f64("psi")? as f32;
        let cutoff = ctx.param_i64("cutoff")?;
        let cutoff = (cutoff >= 0).then_some(cutoff as usize);
        let ws = g
            .map(&zv, labels.as_deref(), n, psi, cutoff)
            .map_err(model_error)?;
        ctx.output_f32("ws", &[n, g.num_ws(), g.w_dim()])?
            .copy_from_slice(&ws);
        Ok(())
    }
}

/// ws -> image.
pub struct Synthesize;
impl Node for Synthesize {
    fn spec() -> NodeSpec {
        let spec = NodeSpec::new("stylegan.synthesis", "Synthesis")
            .category("StyleGAN")
            .doc(
                "The synthesis network: ws [N, num_ws, w_dim] -> image [N, 3, H, W] in about \
                 [-1, 1] (not clamped). The fast whole-network path; StyleGAN3 input translation \
                 and rotation as gen_images.py --translate/--rotate.",
            )
            .input("generator", GENERATOR_PORT, "the generator")
            .input("ws", "WPlus", "[N, num_ws, w_dim] from stylegan.mapping")
            .output("image", "Image", "[N, 3, H, W] float32");
        transform_params(noise_params(spec))
    }
    fn create() -> Result<Self, NodeError> {
        Ok(Synthesize)
    }
    fn execute(&mut self, ctx: &mut Context) -> NodeResult {
        let m = generator(ctx)?;
        let g = &m.generator;
        let (ws, n) = ws_input(ctx, "ws", &m)?;
        let options = SynthesisOptions {
            noise: noise_mode(ctx)?,
            transform: transform(ctx)?,
        };
        if options.transform.is_some() && !g.architecture.is_stylegan3() {
            return Err(NodeError::invalid(
                "translate/rotate apply to StyleGAN3 generators only",
            ));
        }
        let handle = ctx.host_handle();
        let img = g
            .synthesize(&ws, n, &options, &Ctl(handle))
            .map_err(model_error)?;
        let r = g.resolution();
        ctx.output_f32("image", &[n, g.img_channels(), r, r])?
            .copy_from_slice(&img);
        Ok(())
    }
}

/// The model's average w.
pub struct WAvg;
impl Node for WAvg {
    fn spec() -> NodeSpec {
        NodeSpec::new("stylegan.w_avg", "Average w")
            .category("StyleGAN")
            .doc("The generator's `w_avg` (the centre truncation pulls toward), as W [1, w_dim].")
            .input("generator", GENERATOR_PORT, "the generator")
            .output("w_avg", "W", "[1, w_dim]")
    }
    fn create() -> Result<Self, NodeError> {
        Ok(WAvg)
    }
    fn execute(&mut self, ctx: &mut Context) -> NodeResult {
        let m = generator(ctx)?;
        let w = m.generator.w_avg();
        ctx.output_f32("w_avg", &[1, w.len()])?.copy_from_slice(w);
        Ok(())
    }
}

/// Facts about a generator.
pub struct Info;
impl Node for Info {
    fn spec() -> NodeSpec {
        NodeSpec::new("stylegan.info", "Generator info")
            .category("StyleGAN")
            .doc("Architecture and sizes of a generator.")
            .input("generator", GENERATOR_PORT, "the generator")
            .output(
                "architecture",
                "string",
                "stylegan2, stylegan3-t or stylegan3-r",
            )
            .output("resolution", "int", "image size in pixels")
            .output("num_ws", "int", "rows of ws the synthesis network takes")
            .output("w_dim", "int", "size of w")
            .output("z_dim", "int", "size of z")
            .output("c_dim", "int", "number of classes (0 = unconditional)")
            .output(
                "layers",
                "string",
                "synthesis layer (StyleGAN3) or block (StyleGAN2) names, comma-separated",
            )
    }
    fn create() -> Result<Self, NodeError> {
        Ok(Info)
    }
    fn execute(&mut self, ctx: &mut Context) -> NodeResult {
        let m = generator(ctx)?;
        let g = &m.generator;
        ctx.set_output_str("architecture", g.architecture.name())?;
        ctx.set_output_i64("resolution", g.resolution() as i64)?;
        ctx.set_output_i64("num_ws", g.num_ws() as i64)?;
        ctx.set_output_i64("w_dim", g.w_dim() as i64)?;
        ctx.set_output_i64("z_dim", g.z_dim() as i64)?;
        ctx.set_output_i64("c_dim", g.c_dim() as i64)?;
        let names = match &g.synthesis {
            Synthesis::Sg3(s) => s.layer_names().join(","),
            Synthesis::Sg2(s) => s.block_names().join(","),
        };
        ctx.set_output_str("layers", &names)
    }
}

/// The official float -> uint8 image conversion.
pub struct ImageToU8;
impl Node for ImageToU8 {
    fn spec() -> NodeSpec {
        NodeSpec::new("stylegan.image_to_u8", "Image to 8-bit")
            .category("StyleGAN")
            .doc(
                "The official conversion: `clamp(x * 127.5 + 128, 0, 255)` truncated to uint8, \
                 NCHW -> NHWC RGB (what gen_images.py saves).",
            )
            .input("image", "Image", "[N, C, H, W] float")
            .output("rgb", "Tensor", "[N, H, W, C] uint8")
    }
    fn create() -> Result<Self, NodeError> {
        Ok(ImageToU8)
    }
    fn execute(&mut self, ctx: &mut Context) -> NodeResult {
        let t = ctx.input_tensor("image")?;
        let [n, c, h, w] = match *t.shape() {
            [n, c, h, w] => [n, c, h, w],
            ref s => {
                return Err(NodeError::invalid(format!(
                    "input \"image\" has shape {s:?}, expected [N, C, H, W]"
                )))
            }
        };
        let v = t.to_f32_vec()?;
        let out = image_to_u8(&v, n, c, h, w);
        ctx.output_u8("rgb", &[n, h, w, c])?.copy_from_slice(&out);
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Layer-level synthesis

fn sg3(m: &Model) -> Result<&stylegraph_kernels::sg3::Sg3Synthesis, NodeError> {
    match &m.generator.synthesis {
        Synthesis::Sg3(s) => Ok(s),
        Synthesis::Sg2(_) => Err(NodeError::invalid(
            "this node works on StyleGAN3 generators; for StyleGAN2 use stylegan.synthesis_block",
        )),
    }
}

/// StyleGAN3 input layer.
pub struct SynthesisInput;
impl Node for SynthesisInput {
    fn spec() -> NodeSpec {
        let spec = NodeSpec::new("stylegan.synthesis_input", "Synthesis input (SG3)")
            .category("StyleGAN/Layers")
            .doc(
                "StyleGAN3's input layer: Fourier features [N, C, size, size] from ws row 0, with \
                 the optional input translation/rotation. Chain synthesis_layer 0..13 and to_rgb to \
                 get the same image as stylegan.synthesis.",
            )
            .input("generator", GENERATOR_PORT, "a StyleGAN3 generator")
            .input("ws", "WPlus", "[N, num_ws, w_dim]")
            .output("features", "Features", "[N, C, size, size]");
        transform_params(spec)
    }
    fn create() -> Result<Self, NodeError> {
        Ok(SynthesisInput)
    }
    fn execute(&mut self, ctx: &mut Context) -> NodeResult {
        let m = generator(ctx)?;
        let s = sg3(&m)?;
        let (ws, n) = ws_input(ctx, "ws", &m)?;
        let f = s
            .input_forward(&ws, n, transform(ctx)?)
            .map_err(model_error)?;
        output_features(ctx, "features", &f)
    }
}

/// One StyleGAN3 synthesis layer.
pub struct SynthesisLayer;
impl Node for SynthesisLayer {
    fn spec() -> NodeSpec {
        NodeSpec::new("stylegan.synthesis_layer", "Synthesis layer (SG3)")
            .category("StyleGAN/Layers")
            .doc(
                "One StyleGAN3 synthesis layer `L<layer>`: modulated convolution with ws row \
                 layer+1, then the filtered leaky ReLU. Tap or alter the features between layers.",
            )
            .input("generator", GENERATOR_PORT, "a StyleGAN3 generator")
            .input("features", "Features", "the previous layer's output")
            .input("ws", "WPlus", "[N, num_ws, w_dim]")
            .output("features", "Features", "this layer's output")
            .param(
                ParamSpec::int("layer", 0)
                    .range(0.0, 14.0)
                    .doc("layer index (0 = L0; 14 is the ToRGB layer, without the output scale)"),
            )
    }
    fn create() -> Result<Self, NodeError> {
        Ok(SynthesisLayer)
    }
    fn execute(&mut self, ctx: &mut Context) -> NodeResult {
        let m = generator(ctx)?;
        let s = sg3(&m)?;
        let (ws, n) = ws_input(ctx, "ws", &m)?;
        let x = features_input(ctx, "features")?;
        if x.n != n {
            return Err(NodeError::invalid(format!(
                "features have {} samples but ws has {n}",
                x.n
            )));
        }
        let layer = ctx.param_i64("layer")? as usize;
        let count = s.layer_names().len();
        if layer >= count {
            return Err(NodeError::invalid(format!(
                "layer {layer} does not exist (the generator has {count} layers)"
            )));
        }
        let y = s.layer_forward(layer, &x, &ws).map_err(model_error)?;
        output_features(ctx, "features", &y)
    }
}

/// StyleGAN3 ToRGB + output scale.
pub struct ToRgb;
impl Node for ToRgb {
    fn spec() -> NodeSpec {
        NodeSpec::new("stylegan.to_rgb", "To RGB (SG3)")
            .category("StyleGAN/Layers")
            .doc("StyleGAN3's last layer (ToRGB, the last ws row) and the output scale: features -> image.")
            .input("generator", GENERATOR_PORT, "a StyleGAN3 generator")
            .input("features", "Features", "the output of the last synthesis layer before ToRGB")
            .input("ws", "WPlus", "[N, num_ws, w_dim]")
            .output("image", "Image", "[N, 3, H, W]")
    }
    fn create() -> Result<Self, NodeError> {
        Ok(ToRgb)
    }
    fn execute(&mut self, ctx: &mut Context) -> NodeResult {
        let m = generator(ctx)?;
        let s = sg3(&m)?;
        let (ws, _) = ws_input(ctx, "ws", &m)?;
        let x = features_input(ctx, "features")?;
        let last = s.layer_names().len() - 1;
        let y = s.layer_forward(last, &x, &ws).map_err(model_error)?;
        let img = s.apply_output_scale(y);
        output_features(ctx, "image", &img)
    }
}

/// One StyleGAN2 synthesis block.
pub struct SynthesisBlock;
impl Node for SynthesisBlock {
    fn spec() -> NodeSpec {
        let spec = NodeSpec::new("stylegan.synthesis_block", "Synthesis block (SG2)")
            .category("StyleGAN/Layers")
            .doc(
                "One StyleGAN2 synthesis block (b4, b8, ...): two modulated convolutions (one at b4) \
                 and ToRGB added to the upsampled image of the previous block. Leave x and img \
                 unconnected for block 0. Chaining all blocks gives stylegan.synthesis's image.",
            )
            .input("generator", GENERATOR_PORT, "a StyleGAN2 generator")
            .input("ws", "WPlus", "[N, num_ws, w_dim]")
            .optional_input("x", "Features", "the previous block's features")
            .optional_input("img", "Image", "the previous block's image")
            .output("x", "Features", "this block's features")
            .output("img", "Image", "the image so far")
            .param(ParamSpec::int("block", 0).range(0.0, 16.0).doc("block index (0 = b4, 1 = b8, ...)"));
        noise_params(spec)
    }
    fn create() -> Result<Self, NodeError> {
        Ok(SynthesisBlock)
    }
    fn execute(&mut self, ctx: &mut Context) -> NodeResult {
        let m = generator(ctx)?;
        let Synthesis::Sg2(s) = &m.generator.synthesis else {
            return Err(NodeError::invalid(
                "this node works on StyleGAN2 generators; for StyleGAN3 use synthesis_input / synthesis_layer / to_rgb",
            ));
        };
        let (ws, n) = ws_input(ctx, "ws", &m)?;
        let block = ctx.param_i64("block")? as usize;
        let count = s.block_names().len();
        if block >= count {
            return Err(NodeError::invalid(format!(
                "block {block} does not exist (the generator has {count} blocks)"
            )));
        }
        let x = if ctx.has_input("x") {
            Some(features_input(ctx, "x")?)
        } else {
            None
        };
        let img = if ctx.has_input("img") {
            Some(features_input(ctx, "img")?)
        } else {
            None
        };
        let (y, im) = s
            .block_forward(block, x.as_ref(), img.as_ref(), &ws, n, noise_mode(ctx)?)
            .map_err(model_error)?;
        output_features(ctx, "x", &y)?;
        output_features(ctx, "img", &im)
    }
}

// ---------------------------------------------------------------------------------------------

/// Style affine weights for SeFa.
pub struct AffineWeights;
impl Node for AffineWeights {
    fn spec() -> NodeSpec {
        NodeSpec::new("stylegan.affine_weights", "Style affine weights")
            .category("StyleGAN")
            .doc(
                "The weight matrices of the synthesis layers' style affines (w -> per-channel \
                 styles), with their runtime scale 1/sqrt(w_dim), stacked row-wise: [sum of the \
                 chosen layers' input channels, w_dim]. Feed to latent.sefa (closed-form \
                 factorisation). Layers are numbered in synthesis order (StyleGAN3: L0..L14; \
                 StyleGAN2: b4.conv1, b4.torgb, b8.conv0, ...).",
            )
            .input("generator", GENERATOR_PORT, "the generator")
            .output("weights", "Tensor", "[rows, w_dim] float32")
            .output("names", "string", "the chosen layers, comma-separated")
            .param(
                ParamSpec::string("layers", "all").doc("`all`, or indices and ranges like `0-3,5`"),
            )
    }
    fn create() -> Result<Self, NodeError> {
        Ok(AffineWeights)
    }
    fn execute(&mut self, ctx: &mut Context) -> NodeResult {
        let m = generator(ctx)?;
        let (map, _) = load_tensors(&m.source, &m.network).map_err(NodeError::new)?;
        let mut layers: Vec<(u64, String)> = map
            .tensors
            .keys()
            .filter(|k| {
                k.starts_with("synthesis.")
                    && k.ends_with(".affine.weight")
                    && !k.starts_with("synthesis.input.")
            })
            .map(|k| (synthesis_order(k), k.clone()))
            .collect();
        layers.sort();
        let wanted = parse_index_list(&ctx.param_str("layers")?, layers.len())?;
        let w_dim = m.generator.w_dim();
        let scale = 1.0 / (w_dim as f32).sqrt();
        let mut rows = Vec::new();
        let mut names = Vec::new();
        for i in wanted {
            let name = &layers[i].1;
            let t = map.get(name).map_err(NodeError::new)?;
            if t.shape.len() != 2 || t.shape[1] != w_dim {
                return Err(NodeError::new(format!(
                    "tensor {name} has shape {:?}, expected [C, {w_dim}]",
                    t.shape
                )));
            }
            rows.extend(t.data.iter().map(|v| v * scale));
            names.push(
                name.trim_start_matches("synthesis.")
                    .trim_end_matches(".affine.weight")
                    .to_owned(),
            );
        }
        let n_rows = rows.len() / w_dim;
        ctx.output_f32("weights", &[n_rows, w_dim])?
            .copy_from_slice(&rows);
        ctx.set_output_str("names", &names.join(","))
    }
}

/// Sort key of a style layer in synthesis order.
fn synthesis_order(name: &str) -> u64 {
    let part = name.trim_start_matches("synthesis.");
    if let Some(rest) = part.strip_prefix('L') {
        // StyleGAN3 `L<i>_<size>_<ch>`
        return rest
            .split('_')
            .next()
            .and_then(|i| i.parse().ok())
            .unwrap_or(u64::MAX);
    }
    if let Some(rest) = part.strip_prefix('b') {
        // StyleGAN2 `b<res>.<conv0|conv1|torgb>`
        let (res, layer) = rest.split_once('.').unwrap_or((rest, ""));
        let res: u64 = res.parse().unwrap_or(u64::MAX / 4);
        let sub = if layer.starts_with("conv0") {
            0
        } else if layer.starts_with("conv1") {
            1
        } else {
            2
        };
        return res * 4 + sub;
    }
    u64::MAX
}

/// Parses `all` or `0-3,5` into sorted unique indices below `count`.
pub fn parse_index_list(text: &str, count: usize) -> Result<Vec<usize>, NodeError> {
    let t = text.trim();
    if t.is_empty() || t == "all" {
        return Ok((0..count).collect());
    }
    let mut out = std::collections::BTreeSet::new();
    for part in t.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let num = |s: &str| -> Result<usize, NodeError> {
            s.trim()
                .parse::<usize>()
                .map_err(|_| NodeError::invalid(format!("layers {text:?}: {s:?} is not an index")))
        };
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (num(a)?, num(b)?),
            None => (num(part)?, num(part)?),
        };
        if a > b || b >= count {
            return Err(NodeError::invalid(format!(
                "layers {text:?}: {part:?} is outside 0..{}",
                count.saturating_sub(1)
            )));
        }
        out.extend(a..=b);
    }
    Ok(out.into_iter().collect())
}

/// Writes a generator as safetensors + JSON.
pub struct SaveSafetensors;
impl Node for SaveSafetensors {
    fn spec() -> NodeSpec {
        NodeSpec::new("stylegan.save_safetensors", "Save as safetensors")
            .category("StyleGAN")
            .doc(
                "Writes the generator's weights as `.safetensors` (float32, upstream state-dict \
                 names, construction arguments in the metadata) and the construction arguments as \
                 a `.json` beside it. Loads much faster than a pickle. Both files are written \
                 atomically.",
            )
            .input("generator", GENERATOR_PORT, "the generator")
            .output("path", "path", "the .safetensors file written")
            .param(ParamSpec::output_path("path", "out/model.safetensors").doc("where to write"))
            .side_effect()
    }
    fn create() -> Result<Self, NodeError> {
        Ok(SaveSafetensors)
    }
    fn execute(&mut self, ctx: &mut Context) -> NodeResult {
        let m = generator(ctx)?;
        let path = ctx.param_str("path")?;
        if path.trim().is_empty() {
            return Err(NodeError::invalid("param \"path\" is empty"));
        }
        let (map, kwargs) = load_tensors(&m.source, &m.network).map_err(NodeError::new)?;
        model::write_safetensors(
            &map,
            &kwargs,
            m.generator.architecture,
            std::path::Path::new(&path),
        )
        .map_err(NodeError::new)?;
        ctx.set_output_str("path", &path)
    }
}

/// The StyleGAN3 equivariance metrics.
pub struct Equivariance;
impl Node for Equivariance {
    fn spec() -> NodeSpec {
        NodeSpec::new("stylegan.equivariance", "Equivariance metrics (SG3)")
            .category("StyleGAN/Analysis")
            .doc(
                "EQ-T (integer translation), EQ-T_frac (fractional translation) and EQ-R \
                 (rotation) of a StyleGAN3 generator, as the official metrics/equivariance.py \
                 defines them: render a reference image, render again with a transformed input, \
                 transform the reference in image space with the matching band-limited \
                 (windowed-sinc) operator, and report the PSNR (peak 2) of the masked difference, \
                 pooled over the samples. Higher is better; the paper reports EQ-T around 60 dB and \
                 EQ-R around 60 dB (R) for well-trained models. Latent i is z = \
                 RandomState(seed + i).randn(1, z_dim), psi 1; the translations and angles come \
                 from RandomState(seed).",
            )
            .input("generator", GENERATOR_PORT, "a StyleGAN3 generator")
            .output("eqt_int", "float", "EQ-T in dB (NaN when off)")
            .output("eqt_frac", "float", "EQ-T_frac in dB (NaN when off)")
            .output("eqr", "float", "EQ-R in dB (NaN when off)")
            .param(ParamSpec::int("num_samples", 100).range(1.0, 1e6).doc("samples to average over (the paper uses 50 000)"))
            .param(ParamSpec::seed("seed", 0).range(0.0, u32::MAX as f64).doc("seed of the latents and the transforms"))
            .param(ParamSpec::bool("eqt_int", true).doc("compute EQ-T (integer translation)"))
            .param(ParamSpec::bool("eqt_frac", true).doc("compute EQ-T_frac (fractional translation)"))
            .param(ParamSpec::bool("eqr", true).doc("compute EQ-R (rotation)"))
            .param(ParamSpec::float("translate_max", 0.125).range(0.0, 1.0).doc("largest translation, as a fraction of the image size"))
            .param(ParamSpec::float("rotate_max", 1.0).range(0.0, 1.0).doc("largest rotation, as a fraction of pi"))
    }
    fn create() -> Result<Self, NodeError> {
        Ok(Equivariance)
    }
    fn execute(&mut self, ctx: &mut Context) -> NodeResult {
        use stylegraph_kernels::equivariance::{compute_equivariance, EqError, EqOptions};
        use stylegraph_kernels::resample::Planes;
        let m = generator(ctx)?;
        sg3(&m)?;
        let g = &m.generator;
        let seed = u32::try_from(ctx.param_i64("seed")?)
            .map_err(|_| NodeError::invalid("seed is outside 0 .. 2^32-1"))?;
        let num_samples = ctx.param_i64("num_samples")?.max(1) as usize;
        let opts = EqOptions {
            num_samples,
            translate_max: ctx.param_f64("translate_max")?,
            rotate_max: ctx.param_f64("rotate_max")?,
            resolution: g.resolution(),
            eqt_int: ctx.param_bool("eqt_int")?,
            eqt_frac: ctx.param_bool("eqt_frac")?,
            eqr: ctx.param_bool("eqr")?,
        };
        let handle = ctx.host_handle();
        let ctl = Ctl(handle);
        let mut draws = stylegraph_rng::RandomState::new(seed);
        // The ws of the sample being measured (render is called several times per sample).
        let mut current: Option<(usize, Vec<f32>)> = None;
        let (c, r) = (g.img_channels(), g.resolution());
        let mut render = |i: usize, t: &[[f64; 3]; 3]| -> Result<Planes, NodeError> {
            if current.as_ref().map(|(k, _)| *k) != Some(i) {
                let z = stylegraph_rng::z_from_seed(seed.wrapping_add(i as u32), g.z_dim());
                current = Some((i, g.map(&z, None, 1, 1.0, None).map_err(model_error)?));
            }
            let ws = current
                .as_ref()
                .map(|(_, w)| w.as_slice())
                .unwrap_or_default();
            let opts = SynthesisOptions {
                noise: NoiseMode::Const,
                transform: Some(*t),
            };
            let img = g
                .synthesize(ws, 1, &opts, &stylegraph_kernels::NoControl)
                .map_err(model_error)?;
            Planes::from_f32(c, r, r, &img).map_err(NodeError::new)
        };
        let mut progress = |done: usize, total: usize| -> Result<(), NodeError> {
            if ctl.is_cancelled() {
                return Err(NodeError::cancelled());
            }
            handle.progress(
                done as f64 / total as f64,
                &format!("{done}/{total} samples"),
            );
            Ok(())
        };
        let result =
            compute_equivariance(&opts, &mut || draws.next_f64(), &mut render, &mut progress)
                .map_err(|e| match e {
                    EqError::Callback(e) => e,
                    EqError::Invalid(m) => NodeError::invalid(m),
                })?;
        ctx.set_output_f64("eqt_int", result.eqt_int.unwrap_or(f64::NAN))?;
        ctx.set_output_f64("eqt_frac", result.eqt_frac.unwrap_or(f64::NAN))?;
        ctx.set_output_f64("eqr", result.eqr.unwrap_or(f64::NAN))
    }
}

stylegraph_abi::export_plugin!(
    id: "stylegan",
    version: env!("CARGO_PKG_VERSION"),
    description: "StyleGAN2/3 generators: load .pkl/.safetensors/built-in, mapping, synthesis, layers",
    nodes: [
        Load, Mapping, Synthesize, WAvg, Info, ImageToU8, SynthesisInput, SynthesisLayer, ToRgb,
        SynthesisBlock, AffineWeights, SaveSafetensors, Equivariance,
    ],
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_lists() {
        assert_eq!(parse_index_list("all", 3).ok(), Some(vec![0, 1, 2]));
        assert_eq!(parse_index_list("0-1, 4", 5).ok(), Some(vec![0, 1, 4]));
        assert!(parse_index_list("3", 3).is_err());
        assert!(parse_index_list("x", 3).is_err());
    }

    #[test]
    fn synthesis_order_of_style_layers() {
        let mut names = [
            "synthesis.L10_1044_81.affine.weight",
            "synthesis.L2_52_512.affine.weight",
            "synthesis.L0_36_512.affine.weight",
        ];
        names.sort_by_key(|n| synthesis_order(n));
        assert_eq!(names[0], "synthesis.L0_36_512.affine.weight");
        assert_eq!(names[2], "synthesis.L10_1044_81.affine.weight");
        let mut sg2 = [
            "synthesis.b8.torgb.affine.weight",
            "synthesis.b16.conv0.affine.weight",
            "synthesis.b8.conv0.affine.weight",
            "synthesis.b4.conv1.affine.weight",
        ];
        sg2.sort_by_key(|n| synthesis_order(n));
        assert_eq!(
            sg2,
            [
                "synthesis.b4.conv1.affine.weight",
                "synthesis.b8.conv0.affine.weight",
                "synthesis.b8.torgb.affine.weight",
                "synthesis.b16.conv0.affine.weight",
            ]
        );
    }

    #[test]
    fn every_node_is_documented() {
        for spec in __stylegraph_runtime().specs() {
            assert!(!spec.doc.is_empty(), "{} has no doc", spec.type_id);
            for p in spec.inputs.iter().chain(&spec.outputs) {
                assert!(!p.doc.is_empty(), "{}.{} has no doc", spec.type_id, p.name);
            }
            for p in &spec.params {
                assert!(
                    !p.doc.is_empty(),
                    "{} param {} has no doc",
                    spec.type_id,
                    p.name
                );
            }
        }
    }
}
