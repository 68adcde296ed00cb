//! The StyleGAN2 / StyleGAN2-ADA synthesis network (`networks_stylegan2.SynthesisNetwork`,
//! architecture `skip`), on the CPU in f32, matching the official implementation.
//!
//! * [`Sg2Config`]: the generator's construction arguments.
//! * [`Sg2Synthesis`]: built from a state dict ([`TensorMap`] with the upstream names,
//!   `synthesis.b4.const`, `synthesis.b8.conv0.weight`, ...); [`Sg2Synthesis::forward`] turns
//!   `ws [N, num_ws, w_dim]` into images `[N, img_channels, res, res]`;
//!   [`Sg2Synthesis::block_forward`] runs one block, so chaining all blocks gives the same image;
//!   [`Sg2Synthesis::block_forward_ext`] also reports every layer's output (feature taps).
//! * [`default_init`]: a seeded generator following the official initialisation.
//!
//! ## Random noise
//! [`NoiseMode::Random`]`{ seed }` draws every noise plane from its own
//! `stylegraph_rng::RandomState`, seeded with [`random_noise_seed`]`(seed, layer, sample)`
//! where `layer` counts the conv layers in network order (`b4.conv1` = 0, `b8.conv0` = 1,
//! `b8.conv1` = 2, ...) and `sample` is the index in the batch. The plane's `res × res`
//! values are `next_gauss()` in row-major order, rounded to f32 and multiplied by the layer's
//! `noise_strength`. Because of the per-layer, per-sample streams, the whole network and a
//! chain of [`Sg2Synthesis::block_forward`] calls draw identical noise, and sample `i` of a
//! batch does not depend on the other samples.
//!
//! ## Kernels
//! Styles are computed per sample and folded into the weights (modulation, demodulation), so
//! each layer is a plain convolution per sample. On x86-64 CPUs with AVX2+FMA the 3x3
//! convolutions run in a direct register-blocked kernel (`direct.rs`, with an AVX-512 variant
//! of twice the registers and four times the strip width); elsewhere as im2col
//! tiles + GEMM (faer's `gemm`). The upsampling `conv0` is a stride-2 transposed convolution in
//! polyphase form (the zeros of the stuffed input are never multiplied) computed in chunks of
//! rows whose four phases go straight through the separable 4-tap FIR, noise, bias, leaky ReLU
//! and clamp; ToRGB and the upsampled skip image are fused per band of rows. Work is spread
//! over the rayon pool; samples of a batch run one after the other, so memory does not grow
//! with the batch.

mod config;
pub(crate) mod direct;
mod gemm_f32;
mod init;
mod ops;

pub use config::{Architecture, Sg2Config};
pub use init::{default_init, state_dict_entries, EntryKind, InitRule, StateEntry};

use crate::buffer_pool::{BufferPool, ScratchCache};
use crate::model::{Control, Features, ModelError, NoiseMode};
use crate::tensor_map::TensorMap;
use ops::{Act, ConvScratch, Epilogue, Fir4};

/// Gain of the leaky ReLU (`sqrt(2)`, the upstream `def_gain`).
const LRELU_GAIN: f32 = std::f32::consts::SQRT_2;

/// A style affine (`FullyConnectedLayer`, bias init 1, lr multiplier 1).
struct Affine {
    /// `[out, w_dim]`, already multiplied by the weight gain `1/sqrt(w_dim)`.
    weight: Vec<f32>,
    bias: Vec<f32>,
}

impl Affine {
    fn load(map: &TensorMap, prefix: &str, out: usize, w_dim: usize) -> Result<Affine, ModelError> {
        let w = map.get_shaped(&format!("{prefix}.affine.weight"), &[out, w_dim])?;
        let b = map.get_shaped(&format!("{prefix}.affine.bias"), &[out])?;
        // Upstream multiplies the f32 weight by the Python-float gain in f32.
        let gain = (1.0 / (w_dim as f64).sqrt()) as f32;
        Ok(Affine {
            weight: w.data.iter().map(|&v| v * gain).collect(),
            bias: b.data.clone(),
        })
    }

    fn apply(&self, w: &[f32], out: &mut Vec<f32>) {
        out.clear();
        out.resize(self.bias.len(), 0.0);
        ops::fully_connected(w, &self.weight, &self.bias, out);
    }
}

/// Noise input of a synthesis layer.
struct Noise {
    /// `noise_const · noise_strength`, `[res, res]`.
    const_scaled: Vec<f32>,
    strength: f32,
}

/// `SynthesisLayer`: modulated 3x3 conv (optionally upsampling by 2), noise, bias, lrelu.
struct SynthLayer {
    name: String,
    cin: usize,
    cout: usize,
    /// Output resolution.
    res: usize,
    up: bool,
    affine: Affine,
    /// `[cout, cin, 3, 3]`.
    weight: Vec<f32>,
    bias: Vec<f32>,
    noise: Option<Noise>,
    clamp: Option<f32>,
    fir: Fir4,
    w_index: usize,
    noise_index: usize,
}

/// `ToRGBLayer`: modulated 1x1 conv without demodulation, bias, clamp.
struct ToRgb {
    name: String,
    cin: usize,
    cout: usize,
    affine: Affine,
    /// `[cout, cin]`.
    weight: Vec<f32>,
    bias: Vec<f32>,
    weight_gain: f32,
    clamp: Option<f32>,
    w_index: usize,
}

/// `SynthesisBlock` at one resolution.
struct Block {
    name: String,
    res: usize,
    cin: usize,
    cout: usize,
    /// `const [cout, 4, 4]` of the first block.
    konst: Option<Vec<f32>>,
    conv0: Option<SynthLayer>,
    conv1: SynthLayer,
    torgb: ToRgb,
    /// Filter of the image-skip upsampling.
    fir: Fir4,
}

impl Block {
    /// Multiply-adds of one sample through this block (for progress reporting).
    fn macs(&self) -> f64 {
        let convs: f64 = self.conv0.iter().map(SynthLayer::macs).sum();
        convs + self.conv1.macs() + self.torgb.macs(self.res)
    }
}

impl SynthLayer {
    /// Multiply-adds of one sample (the upsampling conv works at the input resolution).
    fn macs(&self) -> f64 {
        let r = if self.up { self.res / 2 } else { self.res } as f64;
        (self.cin * self.cout * 9) as f64 * r * r
    }
}

impl ToRgb {
    fn macs(&self, res: usize) -> f64 {
        (self.cin * self.cout * res * res) as f64
    }
}

/// Reusable scratch memory of a forward pass; kept by the network between calls so that the
/// large buffers are not page-faulted in again for every image.
#[derive(Default)]
struct Scratch {
    conv: ConvScratch,
    styles: Vec<f32>,
    wmod: Vec<f32>,
    noise: Vec<f32>,
    /// Feature/image buffers recycled between layers.
    pool: BufferPool,
}

impl Scratch {
    /// A buffer of `len` values from the pool (contents unspecified, every value will be
    /// overwritten by the caller).
    fn take(&mut self, len: usize) -> Vec<f32> {
        self.pool.take(len)
    }

    fn put(&mut self, buf: Vec<f32>) {
        self.pool.put(buf)
    }
}

/// Progress over a whole call, measured in multiply-adds.
struct Progress<'a> {
    ctl: &'a dyn Control,
    done: f64,
    total: f64,
}

impl Progress<'_> {
    fn check(&self) -> Result<(), ModelError> {
        if self.ctl.is_cancelled() {
            Err(ModelError::Cancelled)
        } else {
            Ok(())
        }
    }

    fn advance(&mut self, macs: f64) {
        self.done += macs;
        if self.total > 0.0 {
            self.ctl.progress((self.done / self.total).min(1.0));
        }
    }
}

/// The StyleGAN2 synthesis network, ready to run. `Send + Sync`; concurrent calls work (each
/// gets its own scratch memory). After a call the largest intermediate buffers (a few feature
/// maps of the top resolution) are kept for the next call; [`Sg2Synthesis::release_memory`]
/// frees them.
pub struct Sg2Synthesis {
    blocks: Vec<Block>,
    num_ws: usize,
    w_dim: usize,
    img_channels: usize,
    resolution: usize,
    /// Scratch memory of finished calls, reused by the next ones.
    scratch: ScratchCache<Scratch>,
    /// Use the portable im2col + GEMM convolutions even where the direct kernel can run
    /// (tests compare the two).
    force_gemm: bool,
}

/// Seed of the noise stream of conv layer `layer` (network order) for batch sample `sample`
/// under [`NoiseMode::Random`]`{ seed }`: the SplitMix64 finaliser of a combination of the
/// three, upper 32 bits.
pub fn random_noise_seed(seed: u32, layer: usize, sample: usize) -> u32 {
    let mut z = (seed as u64)
        .wrapping_add((layer as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_add((sample as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 32) as u32
}

impl Sg2Synthesis {
    /// Builds the network from the `synthesis.*` tensors of a generator state dict, checking
    /// every shape against `cfg`. Only architecture `skip` is supported. A missing
    /// `resample_filter` buffer means the official `[1, 3, 3, 1]` filter; missing
    /// `noise_const`/`noise_strength` (networks built with `use_noise=False`) mean no noise.
    pub fn from_tensors(map: &TensorMap, cfg: &Sg2Config) -> Result<Sg2Synthesis, ModelError> {
        if cfg.architecture != Architecture::Skip {
            return Err(ModelError::Config(format!(
                "StyleGAN2 architecture {:?} is not supported; only \"skip\" (the official \
                 default, used by every released FFHQ/AFHQ/MetFaces model) is",
                cfg.architecture.as_str()
            )));
        }
        if cfg.img_resolution < 4 || !cfg.img_resolution.is_power_of_two() {
            return Err(ModelError::Config(format!(
                "img_resolution must be a power of two >= 4, found {}",
                cfg.img_resolution
            )));
        }
        if cfg.w_dim == 0 || cfg.img_channels == 0 {
            return Err(ModelError::Config(
                "w_dim and img_channels must be positive".into(),
            ));
        }
        let w_dim = cfg.w_dim;
        let mut blocks = Vec::new();
        let mut w_index = 0;
        let mut noise_index = 0;
        for res in cfg.block_resolutions() {
            let name = format!("b{res}");
            let prefix = format!("synthesis.{name}");
            let cin = if res == 4 { 0 } else { cfg.channels(res / 2) };
            let cout = cfg.channels(res);
            if cout == 0 {
                return Err(ModelError::Config(format!(
                    "channel_base {} gives 0 channels at resolution {res}",
                    cfg.channel_base
                )));
            }
            let fir = load_fir(map, &format!("{prefix}.resample_filter"), None)?;
            let konst = if res == 4 {
                Some(
                    map.get_shaped(&format!("{prefix}.const"), &[cout, 4, 4])?
                        .data
                        .clone(),
                )
            } else {
                None
            };
            let layer = |suffix: &str,
                         cin: usize,
                         up: bool,
                         w_index: usize,
                         noise_index: usize|
             -> Result<SynthLayer, ModelError> {
                let lp = format!("{prefix}.{suffix}");
                let weight = map.get_shaped(&format!("{lp}.weight"), &[cout, cin, 3, 3])?;
                let bias = map.get_shaped(&format!("{lp}.bias"), &[cout])?;
                let noise_const = map.get_opt(&format!("{lp}.noise_const"));
                let strength = map.get_opt(&format!("{lp}.noise_strength"));
                let noise = match (noise_const, strength) {
                    (None, None) => None,
                    (Some(_), Some(_)) => {
                        let nc = map.get_shaped(&format!("{lp}.noise_const"), &[res, res])?;
                        let st = map.get_shaped(&format!("{lp}.noise_strength"), &[])?;
                        let s = st.data.first().copied().unwrap_or(0.0);
                        Some(Noise {
                            const_scaled: nc.data.iter().map(|&v| v * s).collect(),
                            strength: s,
                        })
                    }
                    (Some(_), None) => {
                        return Err(ModelError::Config(format!(
                            "{lp} has noise_const but no noise_strength"
                        )))
                    }
                    (None, Some(_)) => {
                        return Err(ModelError::Config(format!(
                            "{lp} has noise_strength but no noise_const"
                        )))
                    }
                };
                Ok(SynthLayer {
                    name: format!("synthesis.{name}.{suffix}"),
                    cin,
                    cout,
                    res,
                    up,
                    affine: Affine::load(map, &lp, cin, w_dim)?,
                    weight: weight.data.clone(),
                    bias: bias.data.clone(),
                    noise,
                    clamp: cfg.conv_clamp,
                    fir: load_fir(map, &format!("{lp}.resample_filter"), Some(fir))?,
                    w_index,
                    noise_index,
                })
            };
            let conv0 = if res > 4 {
                let l = layer("conv0", cin, true, w_index, noise_index)?;
                w_index += 1;
                noise_index += 1;
                Some(l)
            } else {
                None
            };
            let conv1 = layer("conv1", cout, false, w_index, noise_index)?;
            w_index += 1;
            noise_index += 1;
            let tp = format!("{prefix}.torgb");
            let ic = cfg.img_channels;
            let torgb = ToRgb {
                name: format!("synthesis.{name}.torgb"),
                cin: cout,
                cout: ic,
                affine: Affine::load(map, &tp, cout, w_dim)?,
                weight: map
                    .get_shaped(&format!("{tp}.weight"), &[ic, cout, 1, 1])?
                    .data
                    .clone(),
                bias: map.get_shaped(&format!("{tp}.bias"), &[ic])?.data.clone(),
                weight_gain: (1.0 / (cout as f64).sqrt()) as f32,
                clamp: cfg.conv_clamp,
                // The ToRGB of a block shares its w row with the next block's conv0.
                w_index,
            };
            blocks.push(Block {
                name,
                res,
                cin,
                cout,
                konst,
                conv0,
                conv1,
                torgb,
                fir,
            });
        }
        let num_ws = w_index + 1;
        debug_assert_eq!(num_ws, cfg.num_ws());
        Ok(Sg2Synthesis {
            blocks,
            num_ws,
            w_dim,
            img_channels: cfg.img_channels,
            resolution: cfg.img_resolution,
            scratch: Default::default(),
            force_gemm: false,
        })
    }

    /// Number of w rows per sample.
    pub fn num_ws(&self) -> usize {
        self.num_ws
    }

    /// Dimensionality of each w row.
    pub fn w_dim(&self) -> usize {
        self.w_dim
    }

    /// Output resolution.
    pub fn resolution(&self) -> usize {
        self.resolution
    }

    /// Colour channels of the output image.
    pub fn img_channels(&self) -> usize {
        self.img_channels
    }

    /// Block names in order (`b4`, `b8`, ..., the upstream module names).
    pub fn block_names(&self) -> Vec<String> {
        self.blocks.iter().map(|b| b.name.clone()).collect()
    }

    /// Names of the layer outputs [`Sg2Synthesis::block_forward_ext`] reports, in order
    /// (`synthesis.b4.conv1`, `synthesis.b4.torgb`, `synthesis.b8.conv0`, ...).
    pub fn layer_names(&self) -> Vec<String> {
        let mut v = Vec::new();
        for b in &self.blocks {
            if let Some(c0) = &b.conv0 {
                v.push(c0.name.clone());
            }
            v.push(b.conv1.name.clone());
            v.push(b.torgb.name.clone());
        }
        v
    }

    /// Shape `[C, H, W]` of the features block `block_index` outputs (its input is the
    /// previous block's output; the first block takes none).
    pub fn block_output_shape(&self, block_index: usize) -> Option<[usize; 3]> {
        self.blocks.get(block_index).map(|b| [b.cout, b.res, b.res])
    }

    /// Synthesises images from `ws` (`[n, num_ws, w_dim]`, row-major): returns
    /// `[n, img_channels, res, res]` (NCHW), nominal range [-1, 1], not clamped.
    /// Samples are processed one after the other, so memory does not grow with `n`.
    pub fn forward(
        &self,
        ws: &[f32],
        n: usize,
        noise: NoiseMode,
        ctl: &dyn Control,
    ) -> Result<Vec<f32>, ModelError> {
        self.check_ws(ws, n)?;
        crate::worker_scratch::prepare_workers();
        let per_sample_ws = self.num_ws * self.w_dim;
        let img_len = self.img_channels * self.resolution * self.resolution;
        let total: f64 = self.blocks.iter().map(Block::macs).sum::<f64>() * n as f64;
        let mut progress = Progress {
            ctl,
            done: 0.0,
            total,
        };
        let mut scratch = self.scratch.take();
        let mut out = Vec::with_capacity(n * img_len);
        let mut result = Ok(());
        for s in 0..n {
            let ws_s = &ws[s * per_sample_ws..(s + 1) * per_sample_ws];
            match self.run_sample(ws_s, s, noise, &mut progress, &mut scratch) {
                Ok(img) => {
                    out.extend_from_slice(&img);
                    scratch.put(img);
                }
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        self.scratch.give_back(scratch);
        result.map(|()| out)
    }

    /// Frees the scratch memory kept between calls (a few feature maps of the highest
    /// resolution, about 0.5 GB for a 1024x1024 network).
    pub fn release_memory(&self) {
        self.scratch.clear();
    }

    /// Runs block `block_index` on a batch: `x` is the previous block's features
    /// (`[n, C, res/2, res/2]`, `None` for the first block), `img` the previous image
    /// (`[n, img_channels, res/2, res/2]`, `None` for the first block), `ws` all w rows
    /// (`[n, num_ws, w_dim]`; the block picks its own). Returns the block's features and
    /// image; feeding them to the next block and so on reproduces [`Sg2Synthesis::forward`]
    /// exactly.
    pub fn block_forward(
        &self,
        block_index: usize,
        x: Option<&Features>,
        img: Option<&Features>,
        ws: &[f32],
        n: usize,
        noise: NoiseMode,
    ) -> Result<(Features, Features), ModelError> {
        self.block_forward_ext(
            block_index,
            x,
            img,
            ws,
            n,
            noise,
            &crate::model::NoControl,
            &mut |_, _| {},
        )
    }

    /// [`Sg2Synthesis::block_forward`] with progress/cancellation and feature taps: `tap`
    /// receives the output of every layer of the block (`synthesis.bR.conv0`, `.conv1` after
    /// noise, bias, activation and clamp; `.torgb` before it is added to the upsampled image),
    /// as `[n, C, H, W]` features.
    #[allow(clippy::too_many_arguments)]
    pub fn block_forward_ext(
        &self,
        block_index: usize,
        x: Option<&Features>,
        img: Option<&Features>,
        ws: &[f32],
        n: usize,
        noise: NoiseMode,
        ctl: &dyn Control,
        tap: &mut dyn FnMut(&str, &Features),
    ) -> Result<(Features, Features), ModelError> {
        self.check_ws(ws, n)?;
        crate::worker_scratch::prepare_workers();
        let block = self.blocks.get(block_index).ok_or_else(|| {
            ModelError::Input(format!(
                "block index {block_index} out of range (the network has {} blocks)",
                self.blocks.len()
            ))
        })?;
        let mut progress = Progress {
            ctl,
            done: 0.0,
            total: block.macs() * n as f64,
        };
        let mut scratch = self.scratch.take();
        let r = self.run_block(
            block,
            x,
            img,
            ws,
            n,
            noise,
            &mut progress,
            tap,
            &mut scratch,
        );
        self.scratch.give_back(scratch);
        r
    }

    fn check_ws(&self, ws: &[f32], n: usize) -> Result<(), ModelError> {
        let want = n * self.num_ws * self.w_dim;
        if ws.len() != want {
            return Err(ModelError::Input(format!(
                "ws has {} values, [{n}, {}, {}] needs {want}",
                ws.len(),
                self.num_ws,
                self.w_dim
            )));
        }
        Ok(())
    }

    /// Row `row` of sample `s` of a checked `[n, num_ws, w_dim]` ws buffer.
    fn w_row<'a>(&self, ws: &'a [f32], s: usize, row: usize) -> &'a [f32] {
        let o = (s * self.num_ws + row) * self.w_dim;
        &ws[o..o + self.w_dim]
    }

    /// The whole network for one sample (`ws_s` is its `[num_ws, w_dim]`), recycling buffers.
    fn run_sample(
        &self,
        ws_s: &[f32],
        sample: usize,
        noise: NoiseMode,
        progress: &mut Progress<'_>,
        scratch: &mut Scratch,
    ) -> Result<Vec<f32>, ModelError> {
        let mut cur: Vec<f32> = Vec::new();
        let mut img: Vec<f32> = Vec::new();
        for (bi, block) in self.blocks.iter().enumerate() {
            if let Some(k) = &block.konst {
                scratch.put(std::mem::take(&mut cur));
                cur = scratch.take(k.len());
                cur.copy_from_slice(k);
            }
            for layer in block.conv0.iter().chain(std::iter::once(&block.conv1)) {
                progress.check()?;
                let mut out = scratch.take(layer.cout * layer.res * layer.res);
                let w = self.w_row(ws_s, 0, layer.w_index);
                self.conv_layer(layer, &cur, w, noise, sample, &mut out, scratch);
                scratch.put(std::mem::replace(&mut cur, out));
                progress.advance(layer.macs());
            }
            progress.check()?;
            let t = &block.torgb;
            let mut y = scratch.take(t.cout * block.res * block.res);
            let prev = (bi > 0).then_some((img.as_slice(), &block.fir));
            self.torgb_layer(
                t,
                &cur,
                self.w_row(ws_s, 0, t.w_index),
                prev,
                &mut y,
                scratch,
            );
            scratch.put(std::mem::replace(&mut img, y));
            progress.advance(t.macs(block.res));
        }
        scratch.put(cur);
        Ok(img)
    }

    /// One block over a batch, layer by layer, reporting every layer to `tap`.
    #[allow(clippy::too_many_arguments)]
    fn run_block(
        &self,
        block: &Block,
        x: Option<&Features>,
        img: Option<&Features>,
        ws: &[f32],
        n: usize,
        noise: NoiseMode,
        progress: &mut Progress<'_>,
        tap: &mut dyn FnMut(&str, &Features),
        scratch: &mut Scratch,
    ) -> Result<(Features, Features), ModelError> {
        let res = block.res;
        let half = res / 2;
        let first = block.konst.is_some();

        // Input features.
        let konst_batch;
        let input: &Features = match (&block.konst, x) {
            (Some(k), None) => {
                let mut data = Vec::with_capacity(n * k.len());
                for _ in 0..n {
                    data.extend_from_slice(k);
                }
                konst_batch = Features::from_vec(n, block.cout, res, res, data)?;
                &konst_batch
            }
            (Some(_), Some(_)) => {
                return Err(ModelError::Input(format!(
                    "block {} starts from its learned constant and takes no input features",
                    block.name
                )))
            }
            (None, Some(x)) => {
                if x.shape() != [n, block.cin, half, half] {
                    return Err(ModelError::Input(format!(
                        "block {} needs input features [{n}, {}, {half}, {half}], got {:?}",
                        block.name,
                        block.cin,
                        x.shape()
                    )));
                }
                x
            }
            (None, None) => {
                return Err(ModelError::Input(format!(
                    "block {} needs the previous block's features",
                    block.name
                )))
            }
        };
        let prev_img = match (first, img) {
            (true, None) => None,
            (true, Some(_)) => {
                return Err(ModelError::Input(format!(
                    "block {} is the first block and takes no input image",
                    block.name
                )))
            }
            (false, Some(im)) => {
                if im.shape() != [n, self.img_channels, half, half] {
                    return Err(ModelError::Input(format!(
                        "block {} needs the previous image [{n}, {}, {half}, {half}], got {:?}",
                        block.name,
                        self.img_channels,
                        im.shape()
                    )));
                }
                Some(im)
            }
            (false, None) => {
                return Err(ModelError::Input(format!(
                    "block {} needs the previous block's image (architecture skip)",
                    block.name
                )))
            }
        };

        // Main layers.
        let mut feat: Option<Features> = None;
        for layer in block.conv0.iter().chain(std::iter::once(&block.conv1)) {
            progress.check()?;
            let src = feat.as_ref().unwrap_or(input);
            let mut out = Features::zeros(n, layer.cout, res, res);
            let len = layer.cout * res * res;
            for s in 0..n {
                let w = self.w_row(ws, s, layer.w_index);
                let dst = &mut out.data[s * len..(s + 1) * len];
                self.conv_layer(layer, src.sample(s), w, noise, s, dst, scratch);
            }
            tap(&layer.name, &out);
            progress.advance(layer.macs() * n as f64);
            feat = Some(out);
        }
        let feat = feat.ok_or_else(|| ModelError::Config("block without layers".into()))?;

        // ToRGB and the image skip connection.
        progress.check()?;
        let t = &block.torgb;
        let len = t.cout * res * res;
        let mut y = Features::zeros(n, t.cout, res, res);
        for s in 0..n {
            let w = self.w_row(ws, s, t.w_index);
            let dst = &mut y.data[s * len..(s + 1) * len];
            self.torgb_layer(t, feat.sample(s), w, None, dst, scratch);
        }
        tap(&t.name, &y);
        if let Some(prev) = prev_img {
            for s in 0..n {
                let dst = &mut y.data[s * len..(s + 1) * len];
                ops::upsample2d_add(prev.sample(s), t.cout, half, &block.fir, dst);
            }
        }
        progress.advance(t.macs(res) * n as f64);
        Ok((feat, y))
    }

    /// One synthesis layer for one sample: `x` is `[cin, r_in, r_in]`, `out` `[cout, res, res]`.
    #[allow(clippy::too_many_arguments)]
    fn conv_layer(
        &self,
        layer: &SynthLayer,
        x: &[f32],
        w: &[f32],
        noise: NoiseMode,
        sample: usize,
        out: &mut [f32],
        scratch: &mut Scratch,
    ) {
        let res = layer.res;
        let hw = res * res;
        scratch.conv.gemm_only = self.force_gemm;
        layer.affine.apply(w, &mut scratch.styles);
        let mc = ops::ModConv {
            weight: &layer.weight,
            styles: &scratch.styles,
        };
        let noise_plane: Option<&[f32]> = match (&layer.noise, noise) {
            (None, _) | (_, NoiseMode::None) => None,
            (Some(nz), NoiseMode::Const) => Some(&nz.const_scaled),
            (Some(nz), NoiseMode::Random { seed }) => {
                let mut rng = stylegraph_rng::RandomState::new(random_noise_seed(
                    seed,
                    layer.noise_index,
                    sample,
                ));
                scratch.noise.clear();
                scratch
                    .noise
                    .extend((0..hw).map(|_| rng.next_gauss() as f32 * nz.strength));
                Some(&scratch.noise)
            }
        };
        let epi = Epilogue {
            noise: noise_plane,
            bias: &layer.bias,
            act: Act::Lrelu { gain: LRELU_GAIN },
            clamp: layer.clamp,
        };
        if layer.up {
            ops::conv_up(
                x,
                layer.cin,
                res / 2,
                &mc,
                layer.cout,
                &layer.fir,
                &epi,
                out,
                &mut scratch.conv,
            );
        } else {
            ops::conv3x3(
                x,
                layer.cin,
                res,
                res,
                &mc,
                layer.cout,
                out,
                &epi,
                &mut scratch.conv,
            );
        }
    }

    /// ToRGB for one sample: `x` is `[cin, res, res]`, `out` `[img_channels, res, res]`; with
    /// `prev` (the previous block's image and the block's filter) the upsampled previous image
    /// is added, as the skip architecture does.
    fn torgb_layer(
        &self,
        t: &ToRgb,
        x: &[f32],
        w: &[f32],
        prev: Option<(&[f32], &Fir4)>,
        out: &mut [f32],
        scratch: &mut Scratch,
    ) {
        t.affine.apply(w, &mut scratch.styles);
        for v in scratch.styles.iter_mut() {
            *v *= t.weight_gain;
        }
        ops::modulate(&t.weight, &scratch.styles, 1, false, &mut scratch.wmod);
        let epi = Epilogue {
            noise: None,
            bias: &t.bias,
            act: Act::Linear,
            clamp: t.clamp,
        };
        let res = (out.len() / t.cout.max(1)).isqrt();
        ops::torgb_skip(x, t.cin, res, &scratch.wmod, t.cout, &epi, prev, out);
    }
}

/// The separable form of a stored `resample_filter` (`[4, 4]`), with the upsampling gain 4.
fn load_fir(map: &TensorMap, name: &str, fallback: Option<Fir4>) -> Result<Fir4, ModelError> {
    match map.get_opt(name) {
        Some(t) => {
            if t.shape != [4, 4] {
                return Err(ModelError::Config(format!(
                    "{name} has shape {:?}; only 4x4 resampling filters are supported",
                    t.shape
                )));
            }
            Fir4::from_2d(&t.data, 4.0).ok_or_else(|| {
                ModelError::Config(format!(
                    "{name} is not a separable filter; only separable filters are supported"
                ))
            })
        }
        None => Ok(fallback.unwrap_or_else(default_fir)),
    }
}

/// The official `[1, 3, 3, 1]` filter with gain 4.
fn default_fir() -> Fir4 {
    Fir4 {
        fy: [0.25, 0.75, 0.75, 0.25],
        fx: [0.25, 0.75, 0.75, 0.25],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The portable im2col + GEMM path gives the reference image too (the parity tests in
    /// `tests/` exercise the best direct kernel of the CPU; the ops tests also the others).
    #[test]
    fn gemm_path_matches_the_reference_image() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/stylegan2-mid-64");
        let map = TensorMap::from_safetensors_file(&dir.join("G_ema.safetensors"))
            .expect("fixture weights");
        let cfg = Sg2Config::infer_from_tensors(&map).expect("config");
        let mut net = Sg2Synthesis::from_tensors(&map, &cfg).expect("network");
        net.force_gemm = true;
        let ws = stylegraph_npy::Array::read(&dir.join("cases/seed0001_psi1_ws.npy"))
            .and_then(|a| a.to_f32())
            .expect("ws");
        let want = stylegraph_npy::Array::read(&dir.join("cases/seed0001_psi1_img.npy"))
            .and_then(|a| a.to_f32())
            .expect("image");
        let got = net
            .forward(&ws, 1, NoiseMode::Const, &crate::model::NoControl)
            .expect("forward");
        let err = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(err <= 1e-5, "max abs error {err:e}");
    }
}
