//! Small nodes for the editor's tests and screenshots, standing in for the `stylegan` plugin's
//! outputs until it lands: an `Image` gradient with seed and SG3-style translate/rotate params,
//! `Features` derived from an image, a `Z` latent, a slow node (progress and cancellation), a node
//! that fails on request, an analysis node whose output is a plot and a node sending previews.
//!
//! The plugin id is `edtest`; it is linked into the editor's test binaries with
//! `PluginHost::register_entry(sgtest_editor_nodes::stylegraph_plugin_entry, ..)`.

use stylegraph_abi::prelude::*;

/// A tiny deterministic hash to derive per-seed colours (no RNG dependency needed).
fn mix(seed: i64, k: u64) -> f32 {
    let mut x = (seed as u64) ^ k.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    (x % 1000) as f32 / 999.0
}

/// Parses `#rrggbb` into [-1, 1] channel values.
fn parse_colour(s: &str) -> Result<[f32; 3], NodeError> {
    let hex = s.strip_prefix('#').unwrap_or(s);
    if hex.len() != 6 && hex.len() != 8 {
        return Err(NodeError::invalid(format!(
            "colour {s:?} is not #rrggbb or #rrggbbaa"
        )));
    }
    let mut out = [0.0; 3];
    for (i, o) in out.iter_mut().enumerate() {
        let byte = hex
            .get(i * 2..i * 2 + 2)
            .and_then(|h| u8::from_str_radix(h, 16).ok())
            .ok_or_else(|| NodeError::invalid(format!("colour {s:?} is not hexadecimal")))?;
        *o = byte as f32 / 127.5 - 1.0;
    }
    Ok(out)
}

/// `edtest.gradient`: a colour gradient image.
#[derive(Default)]
pub struct Gradient;

impl Node for Gradient {
    fn spec() -> NodeSpec {
        NodeSpec::new("edtest.gradient", "Gradient")
            .category("Test/Image")
            .doc("A smooth colour gradient, shifted by the seed and moved by translate/rotate.")
            .output("image", "Image", "[1,3,H,W] in [-1,1]")
            .param(
                ParamSpec::int("width", 64)
                    .range(1.0, 512.0)
                    .doc("width in pixels"),
            )
            .param(
                ParamSpec::int("height", 48)
                    .range(1.0, 512.0)
                    .doc("height in pixels"),
            )
            .param(
                ParamSpec::seed("seed", 0)
                    .min(0.0)
                    .doc("changes the colours"),
            )
            .param(
                ParamSpec::float("translate_x", 0.0)
                    .range(-1.0, 1.0)
                    .doc("horizontal shift, in image widths"),
            )
            .param(
                ParamSpec::float("translate_y", 0.0)
                    .range(-1.0, 1.0)
                    .doc("vertical shift, in image heights"),
            )
            .param(
                ParamSpec::float("rotate", 0.0)
                    .range(-180.0, 180.0)
                    .doc("rotation in degrees"),
            )
            .param(
                ParamSpec::string("tint", "#ffffff")
                    .flag(stylegraph_abi::ffi::SG_PARAM_COLOR)
                    .doc("multiplies the colours"),
            )
            .param(
                ParamSpec::enumeration("mode", "rgb", &["rgb", "gray"])
                    .doc("colour or grey levels"),
            )
    }
    fn create() -> Result<Self, NodeError> {
        Ok(Gradient)
    }
    fn execute(&mut self, ctx: &mut Context<'_>) -> NodeResult {
        let w = ctx.param_i64("width")?.max(1) as usize;
        let h = ctx.param_i64("height")?.max(1) as usize;
        let seed = ctx.param_i64("seed")?;
        let tx = ctx.param_f64("translate_x")? as f32;
        let ty = ctx.param_f64("translate_y")? as f32;
        let angle = (ctx.param_f64("rotate")? as f32).to_radians();
        let tint = parse_colour(&ctx.param_str("tint")?)?;
        let gray = ctx.param_str("mode")? == "gray";
        let phase = [mix(seed, 1), mix(seed, 2), mix(seed, 3)];
        let (s, c) = angle.sin_cos();
        let out = ctx.output_f32("image", &[1, 3, h, w])?;
        let plane = h * w;
        for y in 0..h {
            for x in 0..w {
                let u = (x as f32 + 0.5) / w as f32 - 0.5 - tx;
                let v = (y as f32 + 0.5) / h as f32 - 0.5 - ty;
                let (ru, rv) = (c * u + s * v, -s * u + c * v);
                let mut rgb = [0.0f32; 3];
                for (ch, val) in rgb.iter_mut().enumerate() {
                    let t = match ch {
                        0 => ru + 0.5,
                        1 => rv + 0.5,
                        _ => 1.0 - (ru + rv + 1.0) * 0.5,
                    };
                    let t = (t + phase[ch]).fract();
                    *val = ((t * 2.0 - 1.0) * (tint[ch] + 1.0) * 0.5).clamp(-1.0, 1.0);
                }
                if gray {
                    let m = (rgb[0] + rgb[1] + rgb[2]) / 3.0;
                    rgb = [m; 3];
                }
                for (ch, val) in rgb.iter().enumerate() {
                    out[ch * plane + y * w + x] = *val;
                }
            }
        }
        Ok(())
    }
}

/// `edtest.features`: feature maps computed from an image.
#[derive(Default)]
pub struct Features;

impl Node for Features {
    fn spec() -> NodeSpec {
        NodeSpec::new("edtest.features", "Features")
            .category("Test/Layers")
            .doc("Feature maps of an image: its channels, then sine patterns of them.")
            .input("image", "Image", "the image")
            .output("features", "Features", "[N,C,H,W]")
            .param(
                ParamSpec::int("channels", 6)
                    .range(1.0, 32.0)
                    .doc("number of channels"),
            )
    }
    fn create() -> Result<Self, NodeError> {
        Ok(Features)
    }
    fn execute(&mut self, ctx: &mut Context<'_>) -> NodeResult {
        let img = ctx.input_tensor("image")?;
        let shape = img.shape().to_vec();
        let [n, c_in, h, w] = shape[..] else {
            node_bail!("input \"image\" must be [N,C,H,W], got {shape:?}");
        };
        let data = img.to_f32_vec()?;
        let c_out = ctx.param_i64("channels")?.max(1) as usize;
        let out = ctx.output_f32("features", &[n, c_out, h, w])?;
        let plane = h * w;
        for b in 0..n {
            for k in 0..c_out {
                let src = k % c_in.max(1);
                let freq = (k / c_in.max(1)) as f32;
                for i in 0..plane {
                    let v = data[(b * c_in + src) * plane + i];
                    out[(b * c_out + k) * plane + i] = if freq == 0.0 {
                        v
                    } else {
                        (v * 3.0 * freq).sin()
                    };
                }
            }
        }
        Ok(())
    }
}

/// `edtest.latent`: a pseudo-random `Z` latent from a seed.
#[derive(Default)]
pub struct Latent;

impl Node for Latent {
    fn spec() -> NodeSpec {
        NodeSpec::new("edtest.latent", "Latent")
            .category("Test/Latent")
            .doc("A `Z` latent of pseudo-random values in [-1, 1] chosen by the seed.")
            .output("z", "Z", "[1, dim]")
            .param(ParamSpec::seed("seed", 0).min(0.0).doc("which latent"))
            .param(ParamSpec::int("dim", 64).range(1.0, 4096.0).doc("size"))
    }
    fn create() -> Result<Self, NodeError> {
        Ok(Latent)
    }
    fn execute(&mut self, ctx: &mut Context<'_>) -> NodeResult {
        let seed = ctx.param_i64("seed")?;
        let dim = ctx.param_i64("dim")?.max(1) as usize;
        let out = ctx.output_f32("z", &[1, dim])?;
        for (i, o) in out.iter_mut().enumerate() {
            *o = mix(seed, i as u64 + 10) * 2.0 - 1.0;
        }
        Ok(())
    }
}

/// `edtest.slow`: takes its time, reporting progress and honouring cancellation.
#[derive(Default)]
pub struct Slow;

impl Node for Slow {
    fn spec() -> NodeSpec {
        NodeSpec::new("edtest.slow", "Slow")
            .category("Test/Flow")
            .doc("Passes its input through after `steps` pauses of `ms` milliseconds.")
            .input("x", "Tensor", "any tensor")
            .output("y", "Tensor", "the input")
            .param(
                ParamSpec::int("steps", 10)
                    .range(0.0, 10000.0)
                    .doc("pauses"),
            )
            .param(
                ParamSpec::int("ms", 20)
                    .range(0.0, 10000.0)
                    .doc("length of a pause"),
            )
    }
    fn create() -> Result<Self, NodeError> {
        Ok(Slow)
    }
    fn execute(&mut self, ctx: &mut Context<'_>) -> NodeResult {
        let steps = ctx.param_i64("steps")?.max(0);
        let ms = ctx.param_i64("ms")?.max(0) as u64;
        for i in 0..steps {
            ctx.check_cancelled()?;
            ctx.progress(i as f64 / steps as f64, &format!("step {i}/{steps}"));
            std::thread::sleep(std::time::Duration::from_millis(ms));
        }
        ctx.pass_through("y", "x")
    }
}

/// `edtest.fail`: fails when asked to.
#[derive(Default)]
pub struct Fail;

impl Node for Fail {
    fn spec() -> NodeSpec {
        NodeSpec::new("edtest.fail", "Fail")
            .category("Test/Flow")
            .doc("Passes its input through, or fails with a message when `fail` is set.")
            .input("x", "Tensor", "any tensor")
            .output("y", "Tensor", "the input")
            .param(ParamSpec::bool("fail", true).doc("fail the node"))
    }
    fn create() -> Result<Self, NodeError> {
        Ok(Fail)
    }
    fn execute(&mut self, ctx: &mut Context<'_>) -> NodeResult {
        if ctx.param_bool("fail")? {
            node_bail!("deliberate failure for the test");
        }
        ctx.pass_through("y", "x")
    }
}

/// `edtest.histogram`: an analysis node whose output is a plot (u8 `[H, W, 3]`).
#[derive(Default)]
pub struct Histogram;

impl Node for Histogram {
    fn spec() -> NodeSpec {
        NodeSpec::new("edtest.histogram", "Histogram")
            .category("Test/Analysis")
            .doc("Plots a histogram of the values of a tensor and outputs their mean.")
            .input("x", "Tensor", "values")
            .output("plot", "Tensor", "the plot, u8 [H, W, 3]")
            .output("mean", "float", "mean of the values")
            .param(
                ParamSpec::int("bins", 32)
                    .range(2.0, 256.0)
                    .doc("number of bars"),
            )
    }
    fn create() -> Result<Self, NodeError> {
        Ok(Histogram)
    }
    fn execute(&mut self, ctx: &mut Context<'_>) -> NodeResult {
        let x = ctx.input_tensor("x")?.to_f32_vec()?;
        let bins = ctx.param_i64("bins")?.clamp(2, 256) as usize;
        let (lo, hi) = x
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
                (a.min(v), b.max(v))
            });
        let mut counts = vec![0usize; bins];
        let span = (hi - lo).max(1e-12);
        for &v in &x {
            let i = (((v - lo) / span) * bins as f32) as usize;
            counts[i.min(bins - 1)] += 1;
        }
        let mean = x.iter().map(|&v| v as f64).sum::<f64>() / x.len().max(1) as f64;
        ctx.set_output_f64("mean", mean)?;
        let (pw, ph) = (bins * 4, 64usize);
        let peak = counts.iter().copied().max().unwrap_or(1).max(1);
        let plot = ctx.output_u8("plot", &[ph, pw, 3])?;
        plot.fill(255);
        for (b, &n) in counts.iter().enumerate() {
            let bar = n * (ph - 4) / peak;
            for y in ph - bar..ph {
                for x in b * 4..b * 4 + 3 {
                    let p = (y * pw + x) * 3;
                    plot[p..p + 3].copy_from_slice(&[40, 90, 200]);
                }
            }
        }
        Ok(())
    }
}

/// `edtest.show`: sends its input image to the front end as a preview.
#[derive(Default)]
pub struct Show;

impl Node for Show {
    fn spec() -> NodeSpec {
        NodeSpec::new("edtest.show", "Show")
            .category("Test/Analysis")
            .doc("Sends its input to the front end as a preview image.")
            .input("image", "Image", "the image")
            .output("image_out", "Image", "the input")
            .side_effect()
    }
    fn create() -> Result<Self, NodeError> {
        Ok(Show)
    }
    fn execute(&mut self, ctx: &mut Context<'_>) -> NodeResult {
        let img = ctx.input_tensor("image")?;
        ctx.preview(&img, "shown");
        ctx.pass_through("image_out", "image")
    }
}

/// `edtest.write`: writes a one-line summary of a tensor to a file (a node with an output path).
#[derive(Default)]
pub struct Write;

impl Node for Write {
    fn spec() -> NodeSpec {
        NodeSpec::new("edtest.write", "Write summary")
            .category("Test/IO")
            .doc("Writes the shape and mean of a tensor to a text file.")
            .input("x", "Tensor", "any tensor")
            .output("path", "path", "the file written")
            .param(ParamSpec::output_path("path", "summary.txt").doc("where to write"))
            .side_effect()
    }
    fn create() -> Result<Self, NodeError> {
        Ok(Write)
    }
    fn execute(&mut self, ctx: &mut Context<'_>) -> NodeResult {
        let x = ctx.input_tensor("x")?;
        let values = x.to_f64_vec()?;
        let mean = values.iter().sum::<f64>() / values.len().max(1) as f64;
        let text = format!("shape {:?} mean {mean}\n", x.shape());
        let path = std::path::PathBuf::from(ctx.param_str("path")?);
        // Write next to the target and rename, so a reader never sees half a file.
        let tmp = path.with_extension("tmp-edtest");
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, &path)?;
        ctx.set_output_str("path", &path.to_string_lossy())
    }
}

stylegraph_abi::export_plugin!(
    id: "edtest",
    version: env!("CARGO_PKG_VERSION"),
    description: "Nodes for the editor's tests",
    nodes: [Gradient, Features, Latent, Slow, Fail, Histogram, Show, Write],
);
