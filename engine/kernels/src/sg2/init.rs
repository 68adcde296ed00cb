//! The state-dict layout of the official StyleGAN2 generator and a seeded default
//! initialisation of it.

use stylegraph_rng::RandomState;

use super::config::{Architecture, Sg2Config};
use crate::model::ModelError;
use crate::tensor_map::TensorMap;

/// Whether a state-dict entry is a trainable parameter or a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    Parameter,
    Buffer,
}

/// What a freshly initialised tensor holds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum InitRule {
    /// Standard normal values times the factor.
    Randn(f32),
    /// Every value equal.
    Fill(f32),
    /// The normalised `[1, 3, 3, 1]` outer-product resampling filter.
    ResampleFilter,
    /// A noise strength: upstream starts at 0; [`default_init`] draws `|N(0,1)| · factor` so
    /// the noise inputs have a visible effect.
    NoiseStrength(f32),
}

/// One entry of the generator's state dict.
#[derive(Clone, Debug, PartialEq)]
pub struct StateEntry {
    /// Upstream name (`synthesis.b8.conv0.weight`, `mapping.fc0.bias`, ...).
    pub name: String,
    pub shape: Vec<usize>,
    pub kind: EntryKind,
    /// How [`default_init`] fills it.
    pub init: InitRule,
}

impl StateEntry {
    /// Number of values.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// ToRGB weight scale of the 4x4 block in [`default_init`] (upstream: 1).
const TORGB_WEIGHT_SCALE: f32 = 0.3;
/// Factor applied to the ToRGB weight scale per doubling of the resolution (upstream: 1).
const TORGB_WEIGHT_DECAY: f32 = 0.6;
/// ToRGB style-affine weight scale in [`default_init`] (upstream: 1).
const TORGB_AFFINE_SCALE: f32 = 4.0;

/// Every tensor of the official `Generator` (synthesis, then mapping) in state-dict order, with
/// its shape. Only architecture `skip` is described.
pub fn state_dict_entries(cfg: &Sg2Config) -> Result<Vec<StateEntry>, ModelError> {
    if cfg.architecture != Architecture::Skip {
        return Err(ModelError::Config(format!(
            "StyleGAN2 architecture {:?} is not supported; only \"skip\"",
            cfg.architecture.as_str()
        )));
    }
    if cfg.img_resolution < 4 || !cfg.img_resolution.is_power_of_two() {
        return Err(ModelError::Config(format!(
            "img_resolution must be a power of two >= 4, found {}",
            cfg.img_resolution
        )));
    }
    use EntryKind::{Buffer, Parameter};
    let mut v = Vec::new();
    let mut push = |name: String, shape: Vec<usize>, kind: EntryKind, init: InitRule| {
        v.push(StateEntry {
            name,
            shape,
            kind,
            init,
        })
    };
    let w_dim = cfg.w_dim;
    for res in cfg.block_resolutions() {
        let p = format!("synthesis.b{res}");
        let cout = cfg.channels(res);
        if res == 4 {
            push(
                format!("{p}.const"),
                vec![cout, 4, 4],
                Parameter,
                InitRule::Randn(1.0),
            );
        }
        push(
            format!("{p}.resample_filter"),
            vec![4, 4],
            Buffer,
            InitRule::ResampleFilter,
        );
        let convs: &[(&str, usize)] = if res == 4 {
            &[("conv1", cout)]
        } else {
            &[("conv0", cfg.channels(res / 2)), ("conv1", cout)]
        };
        for &(conv, cin) in convs {
            let l = format!("{p}.{conv}");
            push(
                format!("{l}.weight"),
                vec![cout, cin, 3, 3],
                Parameter,
                InitRule::Randn(1.0),
            );
            push(
                format!("{l}.noise_strength"),
                vec![],
                Parameter,
                InitRule::NoiseStrength(0.1),
            );
            push(
                format!("{l}.bias"),
                vec![cout],
                Parameter,
                InitRule::Fill(0.0),
            );
            push(
                format!("{l}.resample_filter"),
                vec![4, 4],
                Buffer,
                InitRule::ResampleFilter,
            );
            push(
                format!("{l}.noise_const"),
                vec![res, res],
                Buffer,
                InitRule::Randn(1.0),
            );
            push(
                format!("{l}.affine.weight"),
                vec![cin, w_dim],
                Parameter,
                InitRule::Randn(1.0),
            );
            push(
                format!("{l}.affine.bias"),
                vec![cin],
                Parameter,
                InitRule::Fill(1.0),
            );
        }
        let t = format!("{p}.torgb");
        // Departure from upstream (randn): smaller ToRGB weights, decaying with resolution,
        // so the untrained image stays mostly inside [-1, 1] and is dominated by the smooth
        // low-resolution contributions instead of pixel noise.
        let level = (res / 4).trailing_zeros() as i32;
        push(
            format!("{t}.weight"),
            vec![cfg.img_channels, cout, 1, 1],
            Parameter,
            InitRule::Randn(TORGB_WEIGHT_SCALE * TORGB_WEIGHT_DECAY.powi(level)),
        );
        push(
            format!("{t}.bias"),
            vec![cfg.img_channels],
            Parameter,
            InitRule::Fill(0.0),
        );
        // Departure from upstream (randn): a stronger style affine, so that the colours
        // depend visibly on w.
        push(
            format!("{t}.affine.weight"),
            vec![cout, w_dim],
            Parameter,
            InitRule::Randn(TORGB_AFFINE_SCALE),
        );
        push(
            format!("{t}.affine.bias"),
            vec![cout],
            Parameter,
            InitRule::Fill(1.0),
        );
    }

    // Mapping network (MappingNetwork defaults: lr multiplier 0.01, layer width w_dim, label
    // embedding of width w_dim when c_dim > 0).
    let lr_mul = 0.01f32;
    push(
        "mapping.w_avg".into(),
        vec![w_dim],
        Buffer,
        InitRule::Fill(0.0),
    );
    let embed = if cfg.c_dim > 0 { w_dim } else { 0 };
    if cfg.c_dim > 0 {
        push(
            "mapping.embed.weight".into(),
            vec![embed, cfg.c_dim],
            Parameter,
            InitRule::Randn(1.0),
        );
        push(
            "mapping.embed.bias".into(),
            vec![embed],
            Parameter,
            InitRule::Fill(0.0),
        );
    }
    let layers = cfg.mapping_layers();
    for i in 0..layers {
        let fan_in = if i == 0 { cfg.z_dim + embed } else { w_dim };
        push(
            format!("mapping.fc{i}.weight"),
            vec![w_dim, fan_in],
            Parameter,
            InitRule::Randn(1.0 / lr_mul),
        );
        push(
            format!("mapping.fc{i}.bias"),
            vec![w_dim],
            Parameter,
            InitRule::Fill(0.0),
        );
    }
    Ok(v)
}

/// A complete generator state dict (synthesis and mapping, upstream names), initialised like
/// the official code with `stylegraph_rng::RandomState::new(seed)`: tensors are drawn in
/// state-dict order, each in C order, one `next_gauss()` per value (rounded to f32). Weights,
/// the learned constant and the noise buffers are standard normal (mapping weights divided by
/// the lr multiplier 0.01), style-affine biases 1, other biases 0, resampling filters the
/// normalised `[1, 3, 3, 1]` outer product. Departures, so that an untrained generator gives
/// colourful images that differ visibly between latents (the layout and shapes are exactly
/// upstream's): `noise_strength` starts at `0.1 · |N(0, 1)|` instead of 0 so the noise inputs
/// matter; ToRGB weights are `N(0, 1) · 0.3 · 0.6^log2(res / 4)` and ToRGB style-affine
/// weights `N(0, 1) · 4`.
pub fn default_init(cfg: &Sg2Config, seed: u32) -> Result<TensorMap, ModelError> {
    let entries = state_dict_entries(cfg)?;
    let mut rng = RandomState::new(seed);
    let mut map = TensorMap::new();
    let mut filter = [0f32; 16];
    let taps = [1.0f32, 3.0, 3.0, 1.0];
    for y in 0..4 {
        for x in 0..4 {
            filter[y * 4 + x] = taps[y] * taps[x] / 64.0;
        }
    }
    for e in entries {
        let n = e.numel();
        let data = match e.init {
            InitRule::Randn(scale) => (0..n).map(|_| rng.next_gauss() as f32 * scale).collect(),
            InitRule::Fill(v) => vec![v; n],
            InitRule::ResampleFilter => filter.to_vec(),
            InitRule::NoiseStrength(scale) => (0..n)
                .map(|_| (rng.next_gauss() as f32).abs() * scale)
                .collect(),
        };
        map.insert(e.name, e.shape, data);
    }
    Ok(map)
}
