//! The mapping network z (+ label) -> w of both generations, and truncation.
//!
//! Upstream (`MappingNetwork` in networks_stylegan2 / networks_stylegan3): z is cast to f32 and
//! normalised to unit second moment; with labels an `embed` FC maps c, is normalised the same way
//! and concatenated after z; then `num_layers` FC layers with lrelu·sqrt2 and lr multiplier 0.01.
//! StyleGAN3 uses 2 layers, StyleGAN2 8.

use crate::fc::{Activation, FullyConnected};
use crate::model::ModelError;
use crate::tensor_map::TensorMap;

/// Shape of a mapping network.
#[derive(Clone, Debug, PartialEq)]
pub struct MappingConfig {
    pub z_dim: usize,
    pub c_dim: usize,
    pub w_dim: usize,
    /// How many copies of w the synthesis network consumes.
    pub num_ws: usize,
    /// Number of FC layers (`fc0..`).
    pub num_layers: usize,
    /// Width of the label embedding (0 without labels).
    pub embed_features: usize,
    /// Width of the hidden layers.
    pub layer_features: usize,
    pub lr_multiplier: f64,
}

impl MappingConfig {
    /// The official StyleGAN3 mapping (2 layers, all widths `w_dim`).
    pub fn stylegan3(z_dim: usize, c_dim: usize, w_dim: usize, num_ws: usize) -> MappingConfig {
        MappingConfig {
            z_dim,
            c_dim,
            w_dim,
            num_ws,
            num_layers: 2,
            embed_features: if c_dim > 0 { w_dim } else { 0 },
            layer_features: w_dim,
            lr_multiplier: 0.01,
        }
    }

    /// The official StyleGAN2 mapping (8 layers, all widths `w_dim`).
    pub fn stylegan2(z_dim: usize, c_dim: usize, w_dim: usize, num_ws: usize) -> MappingConfig {
        MappingConfig {
            num_layers: 8,
            ..Self::stylegan3(z_dim, c_dim, w_dim, num_ws)
        }
    }

    /// Reads the shape from the `mapping.*` tensor names and shapes.
    pub fn infer(map: &TensorMap, num_ws: usize) -> Result<MappingConfig, ModelError> {
        let mut num_layers = 0;
        while map
            .get_opt(&format!("mapping.fc{num_layers}.weight"))
            .is_some()
        {
            num_layers += 1;
        }
        if num_layers == 0 {
            return Err(ModelError::Config(
                "no mapping layers (tensor \"mapping.fc0.weight\" is missing)".into(),
            ));
        }
        let shape2 = |name: &str| -> Result<[usize; 2], ModelError> {
            let t = map.get(name)?;
            match t.shape.as_slice() {
                &[a, b] => Ok([a, b]),
                _ => Err(ModelError::Config(format!(
                    "tensor {name:?} has shape {:?}, expected 2 dimensions",
                    t.shape
                ))),
            }
        };
        let [layer_features, fc0_in] = shape2("mapping.fc0.weight")?;
        let [w_dim, _] = shape2(&format!("mapping.fc{}.weight", num_layers - 1))?;
        let (embed_features, c_dim) = if map.get_opt("mapping.embed.weight").is_some() {
            let [e, c] = shape2("mapping.embed.weight")?;
            (e, c)
        } else {
            (0, 0)
        };
        let z_dim = fc0_in.checked_sub(embed_features).ok_or_else(|| {
            ModelError::Config(format!(
                "mapping.fc0 takes {fc0_in} inputs, fewer than the {embed_features} label features"
            ))
        })?;
        Ok(MappingConfig {
            z_dim,
            c_dim,
            w_dim,
            num_ws,
            num_layers,
            embed_features,
            layer_features,
            lr_multiplier: 0.01,
        })
    }
}

/// The mapping network with its `w_avg` (for truncation).
#[derive(Clone, Debug)]
pub struct MappingNetwork {
    cfg: MappingConfig,
    embed: Option<FullyConnected>,
    layers: Vec<FullyConnected>,
    w_avg: Vec<f32>,
}

impl MappingNetwork {
    /// Builds from `mapping.*` tensors (`fc{i}.weight/bias`, `embed.*`, `w_avg`).
    pub fn from_tensors(
        map: &TensorMap,
        cfg: &MappingConfig,
    ) -> Result<MappingNetwork, ModelError> {
        if cfg.num_layers == 0 || cfg.w_dim == 0 || cfg.z_dim + cfg.embed_features == 0 {
            return Err(ModelError::Config(format!(
                "unusable mapping configuration {cfg:?}"
            )));
        }
        if (cfg.c_dim > 0) != (cfg.embed_features > 0) {
            return Err(ModelError::Config(format!(
                "mapping: c_dim {} needs a label embedding, embed_features is {}",
                cfg.c_dim, cfg.embed_features
            )));
        }
        let embed = if cfg.c_dim > 0 {
            Some(FullyConnected::from_tensors(
                map,
                "mapping.embed",
                cfg.c_dim,
                cfg.embed_features,
                1.0,
                Activation::Linear,
            )?)
        } else {
            None
        };
        let mut layers = Vec::with_capacity(cfg.num_layers);
        for i in 0..cfg.num_layers {
            let fin = if i == 0 {
                cfg.z_dim + cfg.embed_features
            } else {
                cfg.layer_features
            };
            let fout = if i + 1 == cfg.num_layers {
                cfg.w_dim
            } else {
                cfg.layer_features
            };
            layers.push(FullyConnected::from_tensors(
                map,
                &format!("mapping.fc{i}"),
                fin,
                fout,
                cfg.lr_multiplier,
                Activation::Lrelu,
            )?);
        }
        let w_avg = map.get_shaped("mapping.w_avg", &[cfg.w_dim])?.data.clone();
        Ok(MappingNetwork {
            cfg: cfg.clone(),
            embed,
            layers,
            w_avg,
        })
    }

    pub fn config(&self) -> &MappingConfig {
        &self.cfg
    }

    pub fn num_ws(&self) -> usize {
        self.cfg.num_ws
    }

    pub fn w_dim(&self) -> usize {
        self.cfg.w_dim
    }

    pub fn z_dim(&self) -> usize {
        self.cfg.z_dim
    }

    pub fn c_dim(&self) -> usize {
        self.cfg.c_dim
    }

    /// The tracked average of w (the truncation centre).
    pub fn w_avg(&self) -> &[f32] {
        &self.w_avg
    }

    /// z `[n, z_dim]` as float64 (what the official tools feed) -> w `[n, w_dim]`. z is rounded to
    /// f32 first, like upstream's `z.to(torch.float32)`.
    pub fn forward(&self, z: &[f64], c: Option<&[f32]>, n: usize) -> Result<Vec<f32>, ModelError> {
        let z32: Vec<f32> = z.iter().map(|&v| v as f32).collect();
        self.forward_f32(&z32, c, n)
    }

    /// z `[n, z_dim]` (f32) and labels `[n, c_dim]` (required iff `c_dim > 0`) -> w `[n, w_dim]`.
    pub fn forward_f32(
        &self,
        z: &[f32],
        c: Option<&[f32]>,
        n: usize,
    ) -> Result<Vec<f32>, ModelError> {
        let cfg = &self.cfg;
        if z.len() != n * cfg.z_dim {
            return Err(ModelError::Input(format!(
                "mapping expects z of shape [{n}, {}], got {} values",
                cfg.z_dim,
                z.len()
            )));
        }
        let in_dim = cfg.z_dim + cfg.embed_features;
        let mut x = vec![0.0f32; n * in_dim];
        for (i, row) in x.chunks_exact_mut(in_dim).enumerate() {
            let zi = &z[i * cfg.z_dim..(i + 1) * cfg.z_dim];
            row[..cfg.z_dim].copy_from_slice(zi);
            normalize_2nd_moment(&mut row[..cfg.z_dim]);
        }
        match (&self.embed, c) {
            (Some(embed), Some(c)) => {
                if c.len() != n * cfg.c_dim {
                    return Err(ModelError::Input(format!(
                        "mapping expects labels of shape [{n}, {}], got {} values",
                        cfg.c_dim,
                        c.len()
                    )));
                }
                let mut y = embed.forward(c, n)?;
                for (row, yr) in x
                    .chunks_exact_mut(in_dim)
                    .zip(y.chunks_exact_mut(cfg.embed_features))
                {
                    normalize_2nd_moment(yr);
                    row[cfg.z_dim..].copy_from_slice(yr);
                }
            }
            (Some(_), None) => {
                return Err(ModelError::Input(format!(
                    "this network is conditional: it needs a class label vector of {} values",
                    cfg.c_dim
                )))
            }
            (None, _) => {}
        }
        for layer in &self.layers {
            x = layer.forward(&x, n)?;
        }
        Ok(x)
    }

    /// Repeats each w `[n, w_dim]` `num_ws` times -> ws `[n, num_ws, w_dim]`.
    pub fn broadcast(&self, w: &[f32], n: usize) -> Result<Vec<f32>, ModelError> {
        let wd = self.cfg.w_dim;
        if w.len() != n * wd {
            return Err(ModelError::Input(format!(
                "expected w of shape [{n}, {wd}], got {} values",
                w.len()
            )));
        }
        let mut ws = Vec::with_capacity(n * self.cfg.num_ws * wd);
        for row in w.chunks_exact(wd) {
            for _ in 0..self.cfg.num_ws {
                ws.extend_from_slice(row);
            }
        }
        Ok(ws)
    }

    /// Truncation in place: for each sample of ws `[n, num_ws, w_dim]`, rows `[..cutoff]`
    /// (all rows when `None`) become `w_avg.lerp(w, psi)`. `psi == 1` leaves ws untouched.
    pub fn truncate(
        &self,
        ws: &mut [f32],
        psi: f32,
        cutoff: Option<usize>,
    ) -> Result<(), ModelError> {
        let wd = self.cfg.w_dim;
        let per_sample = self.cfg.num_ws * wd;
        if per_sample == 0 || !ws.len().is_multiple_of(per_sample) {
            return Err(ModelError::Input(format!(
                "expected ws of shape [n, {}, {wd}], got {} values",
                self.cfg.num_ws,
                ws.len()
            )));
        }
        if psi == 1.0 {
            return Ok(());
        }
        let rows = cutoff.unwrap_or(self.cfg.num_ws).min(self.cfg.num_ws);
        for sample in ws.chunks_exact_mut(per_sample) {
            for row in sample[..rows * wd].chunks_exact_mut(wd) {
                for (v, &avg) in row.iter_mut().zip(&self.w_avg) {
                    *v = lerp(avg, *v, psi);
                }
            }
        }
        Ok(())
    }

    /// Convenience: z -> truncated ws `[n, num_ws, w_dim]`.
    pub fn map(
        &self,
        z: &[f64],
        c: Option<&[f32]>,
        n: usize,
        psi: f32,
        cutoff: Option<usize>,
    ) -> Result<Vec<f32>, ModelError> {
        let w = self.forward(z, c, n)?;
        let mut ws = self.broadcast(&w, n)?;
        self.truncate(&mut ws, psi, cutoff)?;
        Ok(ws)
    }
}

/// `x * rsqrt(mean(x²) + 1e-8)` over the slice (upstream `normalize_2nd_moment`). Squares are
/// rounded to f32 like upstream's `x.square()`, their sum is accumulated exactly enough in f64.
pub(crate) fn normalize_2nd_moment(x: &mut [f32]) {
    if x.is_empty() {
        return;
    }
    let sum: f64 = x.iter().map(|&v| (v * v) as f64).sum();
    let mean = (sum as f32) / x.len() as f32;
    let r = 1.0 / (mean + 1e-8f32).sqrt();
    for v in x {
        *v *= r;
    }
}

/// torch's `start.lerp(end, weight)` on CPU for f32: the vectorised kernel computes
/// `fma(weight, end - start, start)` when `|weight| < 0.5`, else
/// `fma(weight - 1, end - start, end)` (the two-sided form keeps `lerp(a, b, 1) == b` exact).
pub fn lerp(start: f32, end: f32, weight: f32) -> f32 {
    let diff = end - start;
    if weight.abs() < 0.5 {
        weight.mul_add(diff, start)
    } else {
        (weight - 1.0).mul_add(diff, end)
    }
}
