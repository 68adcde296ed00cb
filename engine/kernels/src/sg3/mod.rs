//! StyleGAN3 (T and R) synthesis network.
//!
//! `ws [N, num_ws, w_dim]` -> image `[N, img_channels, res, res]`: the input layer uses row 0,
//! layer `L{i}` row `i + 1`; the last layer is ToRGB and the result is scaled by
//! `output_scale` (0.25).
//!
//! Batches: every sample runs on its own. Upstream normalises the styles of demodulated layers
//! by their mean square over the whole batch, which (through the 1e-8 epsilon of the
//! demodulation only) makes an image depend very slightly on the other samples of its batch;
//! the official tools generate one seed at a time, so normalising per sample makes a batch give
//! exactly the images of per-seed generation.

pub mod config;
pub(crate) mod filtered_lrelu;
pub mod input;
pub mod layer;
mod modconv;
pub(crate) mod winograd;

use crate::buffer_pool::{BufferPool, ScratchCache};
pub use config::{InputSpec, LayerSpec, Sg3Config, Sg3Kind, Sg3Schedule};
pub use input::{user_transform, Sg3Input};
pub(crate) use layer::LayerScratch;
pub use layer::Sg3Layer;

use crate::mapping::MappingNetwork;
use crate::model::{Control, Features, ModelError};
use crate::tensor_map::TensorMap;

/// The SG3 synthesis network. `Send + Sync`; concurrent calls work (each gets its own scratch
/// memory). After a [`Sg3Synthesis::forward`] the feature maps and working buffers are kept for
/// the next call (a forward then neither allocates nor faults in fresh pages);
/// [`Sg3Synthesis::release_memory`] frees them.
pub struct Sg3Synthesis {
    config: Sg3Config,
    schedule: Sg3Schedule,
    input: Sg3Input,
    layers: Vec<Sg3Layer>,
    /// Scratch memory of finished calls, reused by the next ones.
    scratch: ScratchCache<ForwardScratch>,
}

impl Clone for Sg3Synthesis {
    fn clone(&self) -> Self {
        Sg3Synthesis {
            config: self.config.clone(),
            schedule: self.schedule.clone(),
            input: self.input.clone(),
            layers: self.layers.clone(),
            scratch: Default::default(),
        }
    }
}

impl std::fmt::Debug for Sg3Synthesis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sg3Synthesis")
            .field("config", &self.config)
            .field("schedule", &self.schedule)
            .field("layers", &self.layers.len())
            .finish_non_exhaustive()
    }
}

/// Working memory of one forward call: the layers' buffers and spare feature maps.
#[derive(Default)]
struct ForwardScratch {
    layer: LayerScratch,
    maps: BufferPool,
    /// The input layer's Fourier features.
    input_features: Vec<f32>,
}

/// Default memory for weights shared across samples (bytes): three of the four 512-channel
/// layers on 36 px maps of the official SG3-T networks (29 MB each: 38 MB of transformed
/// weights less the 9.4 MB of plain ones), which keeps SG3-T 256 within its 400 MB.
const SHARED_WEIGHT_BUDGET: usize = 96 << 20;

/// Largest map (in Winograd tiles) whose layer may share its weights: beyond it the products
/// dwarf the per-sample weight transform and the memory buys little.
const SHARED_WEIGHT_MAX_TILES: usize = 256;

/// [`SHARED_WEIGHT_BUDGET`], or `STYLEGRAPH_SHARED_WEIGHTS_MB` (0 turns sharing off).
fn shared_weight_budget() -> usize {
    std::env::var("STYLEGRAPH_SHARED_WEIGHTS_MB")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .map_or(SHARED_WEIGHT_BUDGET, |mb| mb.saturating_mul(1 << 20))
}

/// Gives the layers on the smallest maps weights shared across samples
/// ([`winograd::SharedWinograd`]), fewest tiles first, within `budget` bytes of extra memory.
fn share_weights(layers: &mut [Sg3Layer], budget: usize) {
    let mut order: Vec<usize> = (0..layers.len())
        .filter(|&i| layers[i].can_share_weights())
        .filter(|&i| layers[i].conv_tiles() <= SHARED_WEIGHT_MAX_TILES)
        .collect();
    order.sort_by_key(|&i| (layers[i].conv_tiles(), i));
    let mut left = budget;
    for i in order {
        let bytes = layers[i].shared_weight_bytes();
        if bytes <= left {
            left -= bytes;
            layers[i].share_weights();
            tracing::debug!(layer = %layers[i].spec().name, mib = bytes >> 20, "shared weights");
        }
    }
}

impl Sg3Synthesis {
    /// Builds from `synthesis.*` tensors.
    pub fn from_tensors(map: &TensorMap, config: &Sg3Config) -> Result<Sg3Synthesis, ModelError> {
        Self::from_tensors_sharing(map, config, shared_weight_budget())
    }

    /// [`Sg3Synthesis::from_tensors`] with `budget` bytes for weights shared across samples
    /// instead of the default (0: every layer transforms its weights per sample). For tests
    /// and benchmarks of both paths.
    #[doc(hidden)]
    pub fn from_tensors_sharing(
        map: &TensorMap,
        config: &Sg3Config,
        budget: usize,
    ) -> Result<Sg3Synthesis, ModelError> {
        let schedule = config.schedule()?;
        let input = Sg3Input::from_tensors(map, &schedule.input, config.w_dim)?;
        let mut layers = schedule
            .layers
            .iter()
            .map(|spec| Sg3Layer::from_tensors(map, spec, config.w_dim))
            .collect::<Result<Vec<_>, _>>()?;
        share_weights(&mut layers, budget);
        tracing::debug!(
            resolution = config.img_resolution,
            conv_kernel = config.conv_kernel,
            radial = config.use_radial_filters,
            layers = ?layers.iter().map(|l| l.spec().name.as_str()).collect::<Vec<_>>(),
            "built StyleGAN3 synthesis network"
        );
        Ok(Sg3Synthesis {
            config: config.clone(),
            schedule,
            input,
            layers,
            scratch: Default::default(),
        })
    }

    pub fn config(&self) -> &Sg3Config {
        &self.config
    }

    /// Names of the layers whose weights are shared across samples.
    #[doc(hidden)]
    pub fn shared_weight_layers(&self) -> Vec<&str> {
        self.layers
            .iter()
            .filter(|l| l.has_shared_weights())
            .map(|l| l.spec().name.as_str())
            .collect()
    }

    pub fn schedule(&self) -> &Sg3Schedule {
        &self.schedule
    }

    /// Rows of ws consumed (input + layers).
    pub fn num_ws(&self) -> usize {
        self.config.num_ws()
    }

    pub fn w_dim(&self) -> usize {
        self.config.w_dim
    }

    pub fn img_resolution(&self) -> usize {
        self.config.img_resolution
    }

    pub fn img_channels(&self) -> usize {
        self.config.img_channels
    }

    /// Upstream layer names, `L0_36_512` .. `L14_1024_3` (the input layer is not included).
    pub fn layer_names(&self) -> Vec<&str> {
        self.layers.iter().map(|l| l.spec().name.as_str()).collect()
    }

    pub fn layers(&self) -> &[Sg3Layer] {
        &self.layers
    }

    pub fn input(&self) -> &Sg3Input {
        &self.input
    }

    fn check_ws(&self, ws: &[f32], n: usize) -> Result<(), ModelError> {
        let need = n * self.num_ws() * self.w_dim();
        if ws.len() != need {
            return Err(ModelError::Input(format!(
                "expected ws of shape [{n}, {}, {}] ({need} values), got {} values",
                self.num_ws(),
                self.w_dim(),
                ws.len()
            )));
        }
        Ok(())
    }

    fn w_row<'a>(&self, ws: &'a [f32], sample: usize, row: usize) -> &'a [f32] {
        let wd = self.w_dim();
        let off = (sample * self.num_ws() + row) * wd;
        &ws[off..off + wd]
    }

    /// The input layer: `[N, C, size, size]` Fourier features. `transform` replaces the stored
    /// `synthesis.input.transform` (see [`user_transform`]).
    pub fn input_forward(
        &self,
        ws: &[f32],
        n: usize,
        transform: Option<[[f64; 3]; 3]>,
    ) -> Result<Features, ModelError> {
        self.check_ws(ws, n)?;
        let spec = self.input.spec();
        let mut f = Features::zeros(n, spec.channels, spec.size, spec.size);
        let len = spec.channels * spec.size * spec.size;
        for (i, dst) in f.data.chunks_exact_mut(len.max(1)).enumerate().take(n) {
            self.input.forward_one(
                self.w_row(ws, i, 0),
                transform.as_ref(),
                dst,
                &mut Vec::new(),
            );
        }
        Ok(f)
    }

    /// Layer `i` (0-based, `L{i}`) on features `x [N, Cin, in, in]` with w row `i + 1` of ws.
    /// Returns the layer's raw output (for the last layer: before the output scale).
    pub fn layer_forward(
        &self,
        i: usize,
        x: &Features,
        ws: &[f32],
    ) -> Result<Features, ModelError> {
        self.layer_forward_ctl(i, x, ws, &crate::model::NoControl, &mut |_| {})
    }

    fn layer_forward_ctl(
        &self,
        i: usize,
        x: &Features,
        ws: &[f32],
        ctl: &dyn Control,
        progress: &mut dyn FnMut(f64),
    ) -> Result<Features, ModelError> {
        crate::worker_scratch::prepare_workers();
        let layer = self.layers.get(i).ok_or_else(|| {
            ModelError::Input(format!(
                "layer index {i} is out of range (0..{})",
                self.layers.len()
            ))
        })?;
        let spec = layer.spec();
        let n = x.n;
        self.check_ws(ws, n)?;
        if x.shape() != [n, spec.in_channels, spec.in_size, spec.in_size] {
            return Err(ModelError::Input(format!(
                "layer {} expects features [{n}, {}, {}, {}], got {:?}",
                spec.name,
                spec.in_channels,
                spec.in_size,
                spec.in_size,
                x.shape()
            )));
        }
        let mut out = Features::zeros(n, spec.out_channels, spec.out_size, spec.out_size);
        let out_len = spec.out_channels * spec.out_size * spec.out_size;
        let mut scratch = self.scratch.take();
        let mut result = Ok(());
        for s in 0..n {
            let w = self.w_row(ws, s, i + 1);
            let dst = &mut out.data[s * out_len..(s + 1) * out_len];
            result = layer.forward_one(
                x.sample(s),
                w,
                dst,
                ctl,
                &mut |f| progress((s as f64 + f) / n as f64),
                &mut scratch.layer,
            );
            if result.is_err() {
                break;
            }
        }
        self.scratch.give_back(scratch);
        result.map(|()| out)
    }

    /// `x · output_scale`: turns the last layer's output into the image.
    pub fn apply_output_scale(&self, mut x: Features) -> Features {
        let scale = self.schedule.output_scale as f32;
        if scale != 1.0 {
            for v in &mut x.data {
                *v *= scale;
            }
        }
        x
    }

    /// ws `[N, num_ws, w_dim]` -> image `[N, img_channels, res, res]` (nominal range [−1, 1]).
    /// Reports progress and checks cancellation between bands of rows.
    pub fn forward(
        &self,
        ws: &[f32],
        n: usize,
        transform: Option<[[f64; 3]; 3]>,
        ctl: &dyn Control,
    ) -> Result<Vec<f32>, ModelError> {
        self.check_ws(ws, n)?;
        crate::worker_scratch::prepare_workers();
        let res = self.img_resolution();
        let img_len = self.img_channels() * res * res;
        let mut image = Vec::with_capacity(n * img_len);
        let costs: Vec<f64> = self.layers.iter().map(|l| l.cost()).collect();
        let total: f64 = costs.iter().sum::<f64>() * n as f64;
        let mut done = 0.0f64;
        let mut scratch = self.scratch.take();
        let mut run = || -> Result<(), ModelError> {
            for s in 0..n {
                if ctl.is_cancelled() {
                    return Err(ModelError::Cancelled);
                }
                let one_ws =
                    &ws[s * self.num_ws() * self.w_dim()..(s + 1) * self.num_ws() * self.w_dim()];
                // the map is `x[..x_len]` (pool buffers may be longer)
                let input = self.input.spec();
                let mut x_len = input.channels * input.size * input.size;
                let mut x = scratch.maps.take_at_least(x_len);
                self.input.forward_one(
                    self.w_row(one_ws, 0, 0),
                    transform.as_ref(),
                    &mut x[..x_len],
                    &mut scratch.input_features,
                );
                for (i, (layer, cost)) in self.layers.iter().zip(&costs).enumerate() {
                    let spec = layer.spec();
                    let out_len = spec.out_channels * spec.out_size * spec.out_size;
                    let mut out = scratch.maps.take_at_least(out_len);
                    let before = done;
                    layer.forward_one(
                        &x[..x_len],
                        self.w_row(one_ws, 0, i + 1),
                        &mut out[..out_len],
                        ctl,
                        &mut |f| ctl.progress((before + f * cost) / total),
                        &mut scratch.layer,
                    )?;
                    scratch.maps.put(std::mem::replace(&mut x, out));
                    x_len = out_len;
                    done += cost;
                }
                let scale = self.schedule.output_scale as f32;
                image.extend(x[..x_len].iter().map(|&v| v * scale));
                scratch.maps.put(x);
            }
            Ok(())
        };
        let result = run();
        self.scratch.give_back(scratch);
        result?;
        ctl.progress(1.0);
        Ok(image)
    }

    /// Frees the scratch memory kept between calls (about the size of the two largest feature
    /// maps, plus one layer's weights).
    pub fn release_memory(&self) {
        self.scratch.clear();
    }
}

/// A whole SG3 generator: mapping + synthesis.
#[derive(Clone, Debug)]
pub struct Sg3Generator {
    pub mapping: MappingNetwork,
    pub synthesis: Sg3Synthesis,
}

impl Sg3Generator {
    /// Builds both networks from a state dict (upstream names `mapping.*`, `synthesis.*`).
    pub fn from_tensors(map: &TensorMap, config: &Sg3Config) -> Result<Sg3Generator, ModelError> {
        Ok(Sg3Generator {
            mapping: MappingNetwork::from_tensors(map, &config.mapping_config())?,
            synthesis: Sg3Synthesis::from_tensors(map, config)?,
        })
    }
}
