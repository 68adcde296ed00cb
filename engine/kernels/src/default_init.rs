//! A built-in, seeded, untrained StyleGAN3 generator, created by our own code.
//!
//! Follows the official initialisation (`networks_stylegan3.py`): FC weights `randn / lr_mul`,
//! biases `bias_init / lr_mul`; the input layer's frequencies uniform in a disc of radius
//! `bandwidth`, phases uniform in [−0.5, 0.5), mixing matrix `randn`; conv weights `randn`,
//! conv biases 0, style affines with bias 1; designed up/down filters; `w_avg = 0`.
//!
//! Tuned so that an untrained network still makes varied, colourful pictures (an untouched
//! init renders nearly grey, low-contrast fields that look alike for every seed):
//! * the input affine gets small random weights (official: 0), so each seed also picks its own
//!   rotation/translation of the Fourier features;
//! * `magnitude_ema` of every layer is calibrated, like the EMA that training maintains: one
//!   forward pass of a typical latent (seed 0's) measures each layer's input mean square;
//! * ToRGB is rescaled so its output over the styles of 16 seeds has a set contrast
//!   (`image_std`) and no colour cast (its biases centre each channel), plus a small random
//!   tint; seeds then differ in colour through their styles.
//!
//! Cost: one synthesis forward pass on top of drawing the weights (a few seconds at 1024 px).
//!
//! Random numbers: every tensor draws from its own `stylegraph_rng::RandomState` seeded from
//! (seed, tensor index), so tensors can be generated in parallel and the result does not
//! depend on the thread count.

use rayon::prelude::*;

use crate::filter_design::sg3_lowpass_filter;
use crate::mapping::MappingNetwork;
use crate::model::{ModelError, NoControl};
use crate::sg3::{LayerScratch, Sg3Config, Sg3Generator, Sg3Input, Sg3Layer};
use crate::tensor_map::TensorMap;
use stylegraph_rng::RandomState;

/// Knobs of the tuned initialisation (the defaults are what [`default_sg3`] uses).
#[derive(Clone, Debug, PartialEq)]
pub struct InitTuning {
    /// Std of the input affine's weights (official 0: no per-seed rotation/translation).
    pub input_affine_std: f32,
    /// Calibrate `magnitude_ema` and ToRGB with a forward pass (official: no calibration,
    /// `magnitude_ema` 1).
    pub calibrate: bool,
    /// Image standard deviation (units of the [−1, 1] output) ToRGB is scaled to.
    pub image_std: f32,
    /// Std of a random tint added to the ToRGB biases (official 0).
    pub torgb_bias_std: f32,
    /// Std of ToRGB's style affine weights (official 1): how strongly seeds differ in colour.
    pub torgb_affine_std: f32,
}

impl Default for InitTuning {
    fn default() -> Self {
        InitTuning {
            input_affine_std: 0.5,
            calibrate: true,
            image_std: 0.3,
            torgb_bias_std: 0.1,
            torgb_affine_std: 1.0,
        }
    }
}

impl InitTuning {
    /// The plain official initialisation, no tuning.
    pub fn official() -> InitTuning {
        InitTuning {
            input_affine_std: 0.0,
            calibrate: false,
            image_std: 0.0,
            torgb_bias_std: 0.0,
            torgb_affine_std: 1.0,
        }
    }
}

/// One tensor to create.
enum Fill {
    /// `randn · scale`
    Randn(f32),
    Const(f32),
    /// Input frequencies: uniform in the disc of this radius (`[C, 2]`).
    Freqs(f64),
    /// Uniform in [−0.5, 0.5).
    Phases,
    /// Given values.
    Values(Vec<f32>),
}

fn seed_for(seed: u32, index: usize) -> u32 {
    // splitmix-style mixing of (seed, index) into a 32-bit RandomState seed
    let mut z = (seed as u64) << 32 | index as u64;
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) as u32
}

fn make(fill: &Fill, numel: usize, rng_seed: u32) -> Vec<f32> {
    match fill {
        Fill::Const(v) => vec![*v; numel],
        Fill::Values(v) => v.clone(),
        Fill::Randn(scale) => {
            let mut rng = RandomState::new(rng_seed);
            (0..numel)
                .map(|_| rng.next_gauss() as f32 * scale)
                .collect()
        }
        Fill::Phases => {
            let mut rng = RandomState::new(rng_seed);
            (0..numel).map(|_| (rng.next_f64() - 0.5) as f32).collect()
        }
        Fill::Freqs(bandwidth) => {
            // Official: f = randn(2); f /= |f| · exp(|f|²)^(1/4); f *= bandwidth. (The radial
            // distribution this yields is what the official models use; kept as is.)
            let mut rng = RandomState::new(rng_seed);
            let mut out = Vec::with_capacity(numel);
            for _ in 0..numel / 2 {
                let (a, b) = (rng.next_gauss(), rng.next_gauss());
                let r = (a * a + b * b).sqrt();
                let d = r * (r * r).exp().powf(0.25);
                out.push((a / d * bandwidth) as f32);
                out.push((b / d * bandwidth) as f32);
            }
            out
        }
    }
}

/// The state dict (upstream names) of a seeded SG3 generator with structure `cfg`.
pub fn sg3_state_dict(
    cfg: &Sg3Config,
    seed: u32,
    tuning: &InitTuning,
) -> Result<TensorMap, ModelError> {
    let sched = cfg.schedule()?;
    let mcfg = cfg.mapping_config();
    let mut specs: Vec<(String, Vec<usize>, Fill)> = Vec::new();
    let lr = mcfg.lr_multiplier as f32;
    if mcfg.c_dim > 0 {
        specs.push((
            "mapping.embed.weight".into(),
            vec![mcfg.embed_features, mcfg.c_dim],
            Fill::Randn(1.0),
        ));
        specs.push((
            "mapping.embed.bias".into(),
            vec![mcfg.embed_features],
            Fill::Const(0.0),
        ));
    }
    for i in 0..mcfg.num_layers {
        let fin = if i == 0 {
            mcfg.z_dim + mcfg.embed_features
        } else {
            mcfg.layer_features
        };
        let fout = if i + 1 == mcfg.num_layers {
            mcfg.w_dim
        } else {
            mcfg.layer_features
        };
        specs.push((
            format!("mapping.fc{i}.weight"),
            vec![fout, fin],
            Fill::Randn(1.0 / lr),
        ));
        specs.push((format!("mapping.fc{i}.bias"), vec![fout], Fill::Const(0.0)));
    }
    specs.push(("mapping.w_avg".into(), vec![mcfg.w_dim], Fill::Const(0.0)));

    let inp = &sched.input;
    let c = inp.channels;
    specs.push((
        "synthesis.input.weight".into(),
        vec![c, c],
        Fill::Randn(1.0),
    ));
    specs.push((
        "synthesis.input.transform".into(),
        vec![3, 3],
        Fill::Values(vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]),
    ));
    specs.push((
        "synthesis.input.freqs".into(),
        vec![c, 2],
        Fill::Freqs(inp.bandwidth),
    ));
    specs.push(("synthesis.input.phases".into(), vec![c], Fill::Phases));
    specs.push((
        "synthesis.input.affine.weight".into(),
        vec![4, cfg.w_dim],
        if tuning.input_affine_std > 0.0 {
            Fill::Randn(tuning.input_affine_std)
        } else {
            Fill::Const(0.0)
        },
    ));
    specs.push((
        "synthesis.input.affine.bias".into(),
        vec![4],
        Fill::Values(vec![1.0, 0.0, 0.0, 0.0]),
    ));
    for l in &sched.layers {
        let p = format!("synthesis.{}", l.name);
        let k = l.conv_kernel;
        specs.push((
            format!("{p}.weight"),
            vec![l.out_channels, l.in_channels, k, k],
            Fill::Randn(1.0),
        ));
        let bias = if l.is_torgb && tuning.torgb_bias_std > 0.0 {
            Fill::Randn(tuning.torgb_bias_std)
        } else {
            Fill::Const(0.0)
        };
        specs.push((format!("{p}.bias"), vec![l.out_channels], bias));
        specs.push((format!("{p}.magnitude_ema"), vec![], Fill::Const(1.0)));
        if let Some(f) = sg3_lowpass_filter(
            l.up_taps,
            l.in_cutoff,
            l.in_half_width * 2.0,
            l.tmp_sampling_rate,
            false,
        ) {
            specs.push((format!("{p}.up_filter"), vec![f.len()], Fill::Values(f)));
        }
        if let Some(f) = sg3_lowpass_filter(
            l.down_taps,
            l.out_cutoff,
            l.out_half_width * 2.0,
            l.tmp_sampling_rate,
            l.down_radial,
        ) {
            let shape = if l.down_radial {
                vec![l.down_taps, l.down_taps]
            } else {
                vec![f.len()]
            };
            specs.push((format!("{p}.down_filter"), shape, Fill::Values(f)));
        }
        let affine_std = if l.is_torgb {
            tuning.torgb_affine_std
        } else {
            1.0
        };
        specs.push((
            format!("{p}.affine.weight"),
            vec![l.in_channels, cfg.w_dim],
            Fill::Randn(affine_std),
        ));
        specs.push((
            format!("{p}.affine.bias"),
            vec![l.in_channels],
            Fill::Const(1.0),
        ));
    }

    let tensors: Vec<(String, Vec<usize>, Vec<f32>)> = specs
        .into_par_iter()
        .enumerate()
        .map(|(i, (name, shape, fill))| {
            let numel = shape.iter().product();
            let data = make(&fill, numel, seed_for(seed, i));
            (name, shape, data)
        })
        .collect();
    let mut map = TensorMap::new();
    for (name, shape, data) in tensors {
        map.insert(name, shape, data);
    }
    if tuning.calibrate {
        tracing::debug!(
            seed,
            resolution = cfg.img_resolution,
            "calibrating the default SG3 init"
        );
        calibrate(&mut map, cfg, tuning.image_std)?;
    }
    Ok(map)
}

/// Seeds whose latents calibrate the tuned init.
const CALIBRATION_SEEDS: u32 = 16;

/// Sets each layer's `magnitude_ema` to the mean square of its input for one fixed latent,
/// layer by layer, as a converged EMA would be; then calibrates ToRGB.
fn calibrate(map: &mut TensorMap, cfg: &Sg3Config, image_std: f32) -> Result<(), ModelError> {
    let mapping = MappingNetwork::from_tensors(map, &cfg.mapping_config())?;
    // The calibration latent: a typical one (seed 0's). The mean of many w would be the
    // natural centre, but its features are less active than any real seed's, which left
    // every image with the same colour cast.
    let c = if cfg.c_dim > 0 {
        Some(vec![0.0f32; cfg.c_dim])
    } else {
        None
    };
    let z = stylegraph_rng::z_from_seed(0, cfg.z_dim);
    let ws = mapping.map(&z, c.as_deref(), 1, 1.0, None)?;
    let sched = cfg.schedule()?;
    let input = Sg3Input::from_tensors(map, &sched.input, cfg.w_dim)?;
    let wd = cfg.w_dim;
    let mut x = vec![0.0f32; sched.input.channels * sched.input.size * sched.input.size];
    input.forward_one(&ws[..wd], None, &mut x, &mut Vec::new());
    let mut scratch = LayerScratch::default();
    for (i, spec) in sched.layers.iter().enumerate() {
        let ms = x.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>() / x.len().max(1) as f64;
        map.insert(
            format!("synthesis.{}.magnitude_ema", spec.name),
            vec![],
            vec![(ms as f32).max(1e-8)],
        );
        let layer = Sg3Layer::from_tensors(map, spec, wd)?;
        let mut out = vec![0.0f32; spec.out_channels * spec.out_size * spec.out_size];
        layer.forward_one(
            &x,
            &ws[(i + 1) * wd..(i + 2) * wd],
            &mut out,
            &NoControl,
            &mut |_| {},
            &mut scratch,
        )?;
        if spec.is_torgb && image_std > 0.0 {
            calibrate_torgb(
                map,
                spec,
                &layer,
                &x,
                &mapping,
                cfg,
                sched.output_scale,
                image_std,
            )?;
        }
        x = out;
    }
    Ok(())
}

/// Scales ToRGB's weights so its output has RMS `image_std` (image units) around each
/// channel's mean, and shifts its biases so those means move to the tint already in the bias.
/// Statistics over the styles of the calibration seeds (the cheap 1×1 ToRGB only; its input is
/// the calibration latent's features): most of the colour differences between seeds come from
/// ToRGB's style modulation, so this bounds contrast and clipping for typical seeds.
#[allow(clippy::too_many_arguments)]
fn calibrate_torgb(
    map: &mut TensorMap,
    spec: &crate::sg3::LayerSpec,
    layer: &Sg3Layer,
    x: &[f32],
    mapping: &MappingNetwork,
    cfg: &Sg3Config,
    output_scale: f64,
    image_std: f32,
) -> Result<(), ModelError> {
    let bias_name = format!("synthesis.{}.bias", spec.name);
    let weight_name = format!("synthesis.{}.weight", spec.name);
    let bias = map.get(&bias_name)?.data.clone();
    let plane = spec.out_size * spec.out_size;
    let channels = bias.len();
    let mut sum = vec![0.0f64; channels];
    let mut sum_sq = vec![0.0f64; channels];
    let mut out = vec![0.0f32; channels * plane];
    let mut scratch = LayerScratch::default();
    let c = if cfg.c_dim > 0 {
        Some(vec![0.0f32; cfg.c_dim])
    } else {
        None
    };
    for seed in 0..CALIBRATION_SEEDS {
        let z = stylegraph_rng::z_from_seed(seed, cfg.z_dim);
        let w = mapping.forward(&z, c.as_deref(), 1)?;
        layer.forward_one(x, &w, &mut out, &NoControl, &mut |_| {}, &mut scratch)?;
        for ((ch, &b), (s, s2)) in out
            .chunks_exact(plane.max(1))
            .zip(&bias)
            .zip(sum.iter_mut().zip(sum_sq.iter_mut()))
        {
            for &v in ch {
                let v = (v - b) as f64;
                *s += v;
                *s2 += v * v;
            }
        }
    }
    let count = (CALIBRATION_SEEDS as usize * plane).max(1) as f64;
    let means: Vec<f64> = sum.iter().map(|s| s / count).collect();
    let var = sum_sq
        .iter()
        .zip(&means)
        .map(|(s2, m)| s2 / count - m * m)
        .sum::<f64>()
        / channels.max(1) as f64;
    let rms = var.max(0.0).sqrt() * output_scale;
    let k = if rms > 1e-12 {
        image_std as f64 / rms
    } else {
        1.0
    };
    let w = map.get(&weight_name)?;
    let (shape, data) = (
        w.shape.clone(),
        w.data.iter().map(|&v| (v as f64 * k) as f32).collect(),
    );
    map.insert(weight_name, shape, data);
    let new_bias: Vec<f32> = means
        .iter()
        .zip(&bias)
        .map(|(&m, &b)| (b as f64 - k * m) as f32)
        .collect();
    map.insert(bias_name, vec![channels], new_bias);
    Ok(())
}

/// Mapping + synthesis of a seeded SG3 generator with structure `cfg` (tuned init).
pub fn default_sg3(cfg: &Sg3Config, seed: u32) -> Result<(Sg3Generator, TensorMap), ModelError> {
    let map = sg3_state_dict(cfg, seed, &InitTuning::default())?;
    let g = Sg3Generator::from_tensors(&map, cfg)?;
    Ok((g, map))
}
