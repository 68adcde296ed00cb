//! StyleGAN3 construction arguments and the layer schedule derived from them.
//!
//! The schedule (sampling rates, cutoffs, transition half-widths, sizes, channels, filter taps
//! and padding) follows the official `SynthesisNetwork` / `SynthesisLayer` constructors, computed
//! in f64 like the NumPy code there.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::mapping::MappingConfig;
use crate::model::ModelError;
use crate::tensor_map::TensorMap;

/// Construction arguments of an SG3 generator (defaults = the official code's defaults).
#[derive(Clone, Debug, PartialEq)]
pub struct Sg3Config {
    pub z_dim: usize,
    pub c_dim: usize,
    pub w_dim: usize,
    pub img_resolution: usize,
    pub img_channels: usize,
    /// Depth of the mapping network (`mapping_kwargs.num_layers`).
    pub mapping_layers: usize,
    pub channel_base: f64,
    pub channel_max: f64,
    /// Explicit per-layer output channels (`num_layers + 1` values, the first is also the input
    /// layer's width). When set it replaces `channel_base`/`channel_max` (used when the channels
    /// are read from a weight file that came without its construction arguments).
    pub channels: Option<Vec<usize>>,
    pub num_layers: usize,
    pub num_critical: usize,
    pub first_cutoff: f64,
    pub first_stopband: f64,
    pub last_stopband_rel: f64,
    pub margin_size: usize,
    pub output_scale: f64,
    pub conv_kernel: usize,
    pub filter_size: usize,
    pub lrelu_upsampling: usize,
    pub use_radial_filters: bool,
    /// `None` = no clamping.
    pub conv_clamp: Option<f64>,
    /// Only used when creating a new model (the EMA is a training-time statistic).
    pub magnitude_ema_beta: f64,
}

impl Default for Sg3Config {
    fn default() -> Self {
        Sg3Config {
            z_dim: 512,
            c_dim: 0,
            w_dim: 512,
            img_resolution: 1024,
            img_channels: 3,
            mapping_layers: 2,
            channel_base: 32768.0,
            channel_max: 512.0,
            channels: None,
            num_layers: 14,
            num_critical: 2,
            first_cutoff: 2.0,
            first_stopband: 2f64.powf(2.1),
            last_stopband_rel: 2f64.powf(0.3),
            margin_size: 10,
            output_scale: 0.25,
            conv_kernel: 3,
            filter_size: 6,
            lrelu_upsampling: 2,
            use_radial_filters: false,
            conv_clamp: Some(256.0),
            magnitude_ema_beta: 0.999,
        }
    }
}

/// Which official StyleGAN3 flavour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sg3Kind {
    /// Translation equivariant: 3×3 convolutions, separable filters.
    T,
    /// Rotation equivariant: 1×1 convolutions, radial down-sampling filters, doubled channels.
    R,
}

impl Sg3Config {
    /// The structure of NVIDIA's released models at a resolution: `train.py --cfg
    /// stylegan3-t|r` with `channel_base` 32768 (the 1024 and 512 px models) or 16384 (the 256 px
    /// models, trained with `--cbase=16384`), `channel_max` 512; R doubles both.
    pub fn official(kind: Sg3Kind, img_resolution: usize) -> Sg3Config {
        let base = Sg3Config {
            img_resolution,
            channel_base: if img_resolution <= 256 {
                16384.0
            } else {
                32768.0
            },
            ..Sg3Config::default()
        };
        match kind {
            Sg3Kind::T => base,
            Sg3Kind::R => Sg3Config {
                channel_base: base.channel_base * 2.0,
                channel_max: base.channel_max * 2.0,
                conv_kernel: 1,
                use_radial_filters: true,
                ..base
            },
        }
    }

    /// `num_layers + 2` (input + layers + ToRGB).
    pub fn num_ws(&self) -> usize {
        self.num_layers + 2
    }

    /// Mapping network shape implied by this configuration.
    pub fn mapping_config(&self) -> MappingConfig {
        MappingConfig {
            num_layers: self.mapping_layers,
            ..MappingConfig::stylegan3(self.z_dim, self.c_dim, self.w_dim, self.num_ws())
        }
    }

    /// Reads construction arguments from JSON: either the generator's kwargs dict (the pickled
    /// `_init_kwargs`: `z_dim, c_dim, w_dim, img_resolution, img_channels, mapping_kwargs` and
    /// the synthesis kwargs, flat or under `synthesis_kwargs`) or a `reference.json`-style object
    /// with `G_kwargs` and `common_kwargs`. Anything absent is filled from `tensors` (when given)
    /// or the official defaults; unknown keys are ignored.
    pub fn from_kwargs_json(
        json: &Value,
        tensors: Option<&TensorMap>,
    ) -> Result<Sg3Config, ModelError> {
        let obj = json.as_object().ok_or_else(|| {
            ModelError::Config("construction arguments must be a JSON object".into())
        })?;
        let mut kw: BTreeMap<String, Value> = BTreeMap::new();
        let mut merge = |v: Option<&Value>| {
            if let Some(Value::Object(m)) = v {
                for (k, v) in m {
                    kw.insert(k.clone(), v.clone());
                }
            }
        };
        if obj.contains_key("G_kwargs") {
            merge(obj.get("G_kwargs"));
            merge(obj.get("common_kwargs"));
        } else {
            merge(Some(json));
        }
        if let Some(Value::Object(s)) = kw.get("synthesis_kwargs").cloned() {
            kw.extend(s);
        }
        Self::from_kwargs_map(&kw, tensors)
    }

    /// Infers everything from tensor names and shapes (no construction arguments available).
    pub fn from_tensors(tensors: &TensorMap) -> Result<Sg3Config, ModelError> {
        Self::from_kwargs_map(&BTreeMap::new(), Some(tensors))
    }

    fn from_kwargs_map(
        kw: &BTreeMap<String, Value>,
        tensors: Option<&TensorMap>,
    ) -> Result<Sg3Config, ModelError> {
        let d = Sg3Config::default();
        let uint = |key: &str| -> Result<Option<usize>, ModelError> {
            match kw.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => v
                    .as_u64()
                    .or_else(|| {
                        v.as_f64()
                            .filter(|f| f.fract() == 0.0 && *f >= 0.0)
                            .map(|f| f as u64)
                    })
                    .map(|u| Some(u as usize))
                    .ok_or_else(|| {
                        ModelError::Config(format!("{key} must be a non-negative integer, got {v}"))
                    }),
            }
        };
        let float = |key: &str| -> Result<Option<f64>, ModelError> {
            match kw.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => v
                    .as_f64()
                    .map(Some)
                    .ok_or_else(|| ModelError::Config(format!("{key} must be a number, got {v}"))),
            }
        };
        let boolean = |key: &str| -> Result<Option<bool>, ModelError> {
            match kw.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => v.as_bool().map(Some).ok_or_else(|| {
                    ModelError::Config(format!("{key} must be true or false, got {v}"))
                }),
            }
        };
        let inferred = match tensors {
            Some(t) => Some(Inferred::from_tensors(t)?),
            None => None,
        };
        let inf = inferred.as_ref();
        let mapping_layers = match kw.get("mapping_kwargs").and_then(|m| m.get("num_layers")) {
            Some(v) => v.as_u64().map(|u| u as usize).ok_or_else(|| {
                ModelError::Config(format!(
                    "mapping_kwargs.num_layers must be an integer, got {v}"
                ))
            })?,
            None => inf
                .map(|i| i.mapping.num_layers)
                .unwrap_or(d.mapping_layers),
        };
        let channel_base = float("channel_base")?;
        let channel_max = float("channel_max")?;
        let conv_kernel = uint("conv_kernel")?
            .or(inf.map(|i| i.conv_kernel))
            .unwrap_or(d.conv_kernel);
        let conv_clamp = match kw.get("conv_clamp") {
            Some(Value::Null) => None,
            Some(_) => float("conv_clamp")?,
            None => d.conv_clamp,
        };
        let mut cfg = Sg3Config {
            z_dim: uint("z_dim")?
                .or(inf.map(|i| i.mapping.z_dim))
                .unwrap_or(d.z_dim),
            c_dim: uint("c_dim")?
                .or(inf.map(|i| i.mapping.c_dim))
                .unwrap_or(d.c_dim),
            w_dim: uint("w_dim")?
                .or(inf.map(|i| i.mapping.w_dim))
                .unwrap_or(d.w_dim),
            img_resolution: uint("img_resolution")?
                .or(inf.map(|i| i.img_resolution))
                .unwrap_or(d.img_resolution),
            img_channels: uint("img_channels")?
                .or(inf.map(|i| i.img_channels))
                .unwrap_or(d.img_channels),
            mapping_layers,
            channel_base: channel_base.unwrap_or(d.channel_base),
            channel_max: channel_max.unwrap_or(d.channel_max),
            channels: None,
            num_layers: uint("num_layers")?
                .or(inf.map(|i| i.num_layers))
                .unwrap_or(d.num_layers),
            num_critical: uint("num_critical")?.unwrap_or(d.num_critical),
            first_cutoff: float("first_cutoff")?.unwrap_or(d.first_cutoff),
            first_stopband: float("first_stopband")?.unwrap_or(d.first_stopband),
            last_stopband_rel: float("last_stopband_rel")?.unwrap_or(d.last_stopband_rel),
            margin_size: d.margin_size,
            output_scale: float("output_scale")?.unwrap_or(d.output_scale),
            conv_kernel,
            filter_size: uint("filter_size")?.unwrap_or(d.filter_size),
            lrelu_upsampling: uint("lrelu_upsampling")?.unwrap_or(d.lrelu_upsampling),
            // Official R models are the only ones with 1x1 convolutions.
            use_radial_filters: boolean("use_radial_filters")?
                .or(inf.and_then(|i| i.radial))
                .unwrap_or(conv_kernel == 1),
            conv_clamp,
            magnitude_ema_beta: float("magnitude_ema_beta")?.unwrap_or(d.magnitude_ema_beta),
        };
        if let Some(i) = inf {
            if channel_base.is_none() && channel_max.is_none() {
                cfg.channels = Some(i.channels.clone());
            }
        }
        cfg.margin_size = match uint("margin_size")? {
            Some(m) => m,
            None => match inf {
                // size_0 = s_0 + 2 * margin
                Some(i) => {
                    let s0 = cfg.sampling_rates()[0] as usize;
                    i.first_size
                        .checked_sub(s0)
                        .filter(|m| m % 2 == 0)
                        .map(|m| m / 2)
                        .ok_or_else(|| {
                            ModelError::Config(format!(
                                "first layer size {} does not fit sampling rate {s0}",
                                i.first_size
                            ))
                        })?
                }
                None => d.margin_size,
            },
        };
        cfg.validate()?;
        if let Some(t) = tensors {
            cfg.check_tensor_names(t)?;
        }
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), ModelError> {
        let bad = |m: String| Err(ModelError::Config(m));
        if self.num_layers <= self.num_critical || self.num_layers < 1 {
            return bad(format!(
                "num_layers {} must exceed num_critical {}",
                self.num_layers, self.num_critical
            ));
        }
        if self.img_resolution < 4 || self.img_resolution > 1 << 16 {
            return bad(format!(
                "img_resolution {} is out of range",
                self.img_resolution
            ));
        }
        if self.img_channels == 0 || self.w_dim == 0 {
            return bad("img_channels and w_dim must be positive".into());
        }
        if self.conv_kernel == 0 || self.conv_kernel > 15 {
            return bad(format!("conv_kernel {} is out of range", self.conv_kernel));
        }
        if self.filter_size == 0 || self.lrelu_upsampling == 0 || self.lrelu_upsampling > 16 {
            return bad("filter_size and lrelu_upsampling must be positive".into());
        }
        if !(self.first_cutoff > 0.0 && self.first_stopband > 0.0 && self.last_stopband_rel > 0.0) {
            return bad("cutoffs and stopbands must be positive".into());
        }
        if let Some(ch) = &self.channels {
            if ch.len() != self.num_layers + 1 || ch.contains(&0) {
                return bad(format!(
                    "channel list {ch:?} must have {} positive entries",
                    self.num_layers + 1
                ));
            }
        } else if !(self.channel_base > 0.0 && self.channel_max >= 1.0) {
            return bad("channel_base and channel_max must be positive".into());
        }
        Ok(())
    }

    /// Per-layer sampling rates `s[i]` (i = 0..=num_layers).
    fn sampling_rates(&self) -> Vec<f64> {
        self.bands().2
    }

    /// (cutoffs, stopbands, sampling rates) for i = 0..=num_layers, as upstream (NumPy f64).
    fn bands(&self) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let n = self.num_layers;
        let res = self.img_resolution as f64;
        let last_cutoff = res / 2.0;
        let last_stopband = last_cutoff * self.last_stopband_rel;
        let denom = (n - self.num_critical) as f64;
        let mut cutoffs = Vec::with_capacity(n + 1);
        let mut stopbands = Vec::with_capacity(n + 1);
        let mut rates = Vec::with_capacity(n + 1);
        for i in 0..=n {
            let e = (i as f64 / denom).min(1.0);
            let fc = self.first_cutoff * (last_cutoff / self.first_cutoff).powf(e);
            let ft = self.first_stopband * (last_stopband / self.first_stopband).powf(e);
            let s = (ft * 2.0).min(res).log2().ceil().exp2();
            cutoffs.push(fc);
            stopbands.push(ft);
            rates.push(s);
        }
        (cutoffs, stopbands, rates)
    }

    /// The full layer schedule.
    pub fn schedule(&self) -> Result<Sg3Schedule, ModelError> {
        self.validate()?;
        let n = self.num_layers;
        let (cutoffs, stopbands, rates) = self.bands();
        let half_widths: Vec<f64> = (0..=n)
            .map(|i| stopbands[i].max(rates[i] / 2.0) - cutoffs[i])
            .collect();
        let mut sizes: Vec<usize> = rates
            .iter()
            .map(|&s| s as usize + 2 * self.margin_size)
            .collect();
        sizes[n - 1] = self.img_resolution;
        sizes[n] = self.img_resolution;
        let channels: Vec<usize> = match &self.channels {
            Some(c) => c.clone(),
            None => (0..=n)
                .map(|i| {
                    if i == n {
                        self.img_channels
                    } else {
                        ((self.channel_base / 2.0) / cutoffs[i])
                            .min(self.channel_max)
                            .round_ties_even()
                            .max(1.0) as usize
                    }
                })
                .collect(),
        };
        let mut layers = Vec::with_capacity(n + 1);
        for idx in 0..=n {
            let prev = idx.saturating_sub(1);
            let is_torgb = idx == n;
            let is_critically_sampled = idx >= n - self.num_critical;
            let in_rate = rates[prev] as usize;
            let out_rate = rates[idx] as usize;
            let conv_kernel = if is_torgb { 1 } else { self.conv_kernel };
            let tmp_rate = in_rate.max(out_rate) * if is_torgb { 1 } else { self.lrelu_upsampling };
            let up_factor = tmp_rate / in_rate;
            let down_factor = tmp_rate / out_rate;
            if up_factor * in_rate != tmp_rate || down_factor * out_rate != tmp_rate {
                return Err(ModelError::Config(format!(
                    "layer {idx}: sampling rates {in_rate} -> {out_rate} are not integer ratios"
                )));
            }
            let up_taps = if up_factor > 1 && !is_torgb {
                self.filter_size * up_factor
            } else {
                1
            };
            let down_taps = if down_factor > 1 && !is_torgb {
                self.filter_size * down_factor
            } else {
                1
            };
            let (in_size, out_size) = (sizes[prev] as i64, sizes[idx] as i64);
            let (u, dn) = (up_factor as i64, down_factor as i64);
            let mut pad_total = (out_size - 1) * dn + 1;
            pad_total -= (in_size + conv_kernel as i64 - 1) * u;
            pad_total += up_taps as i64 + down_taps as i64 - 2;
            let pad_lo = (pad_total + u).div_euclid(2);
            let pad_hi = pad_total - pad_lo;
            let out_channels = channels[idx];
            layers.push(LayerSpec {
                name: format!("L{idx}_{}_{}", sizes[idx], out_channels),
                index: idx,
                is_torgb,
                is_critically_sampled,
                in_channels: channels[prev],
                out_channels,
                in_size: sizes[prev],
                out_size: sizes[idx],
                in_sampling_rate: in_rate as f64,
                out_sampling_rate: out_rate as f64,
                tmp_sampling_rate: tmp_rate as f64,
                in_cutoff: cutoffs[prev],
                out_cutoff: cutoffs[idx],
                in_half_width: half_widths[prev],
                out_half_width: half_widths[idx],
                conv_kernel,
                up_factor,
                down_factor,
                up_taps,
                down_taps,
                down_radial: self.use_radial_filters && !is_critically_sampled,
                padding: [pad_lo, pad_hi, pad_lo, pad_hi],
                conv_clamp: self.conv_clamp,
            });
        }
        Ok(Sg3Schedule {
            input: InputSpec {
                channels: channels[0],
                size: sizes[0],
                sampling_rate: rates[0],
                bandwidth: cutoffs[0],
            },
            layers,
            output_scale: self.output_scale,
        })
    }

    fn check_tensor_names(&self, tensors: &TensorMap) -> Result<(), ModelError> {
        let schedule = self.schedule()?;
        for l in &schedule.layers {
            let name = format!("synthesis.{}.weight", l.name);
            if tensors.get_opt(&name).is_none() {
                let found: Vec<&str> = tensors
                    .tensors
                    .keys()
                    .filter_map(|k| {
                        k.strip_prefix("synthesis.")
                            .and_then(|k| k.strip_suffix(".weight"))
                    })
                    .filter(|k| k.starts_with('L') && !k.contains('.'))
                    .collect();
                return Err(ModelError::Config(format!(
                    "the configuration predicts layer {} but the weights have {found:?}",
                    l.name
                )));
            }
        }
        Ok(())
    }
}

/// What the tensor names and shapes say about an SG3 generator.
struct Inferred {
    mapping: MappingConfig,
    num_layers: usize,
    img_resolution: usize,
    img_channels: usize,
    first_size: usize,
    conv_kernel: usize,
    channels: Vec<usize>,
    /// `Some(true)` if a 2-D down filter is stored, `Some(false)` if only 1-D ones, `None` if no
    /// filters are stored at all.
    radial: Option<bool>,
}

impl Inferred {
    fn from_tensors(t: &TensorMap) -> Result<Inferred, ModelError> {
        // "synthesis.L{idx}_{size}_{channels}.weight"
        let mut layers: BTreeMap<usize, (String, usize, usize)> = BTreeMap::new();
        for key in t.tensors.keys() {
            let Some(name) = key
                .strip_prefix("synthesis.")
                .and_then(|k| k.strip_suffix(".weight"))
            else {
                continue;
            };
            let Some(rest) = name.strip_prefix('L') else {
                continue;
            };
            let parts: Vec<&str> = rest.split('_').collect();
            if let [i, s, c] = parts.as_slice() {
                if let (Ok(i), Ok(s), Ok(c)) = (i.parse(), s.parse(), c.parse()) {
                    layers.insert(i, (name.to_owned(), s, c));
                }
            }
        }
        let num_layers = match layers.keys().next_back() {
            Some(&n) if n >= 1 && layers.len() == n + 1 => n,
            _ => {
                return Err(ModelError::Config(format!(
                    "not a StyleGAN3 synthesis network: layers L0..Ln not found (found {:?})",
                    layers.values().map(|v| &v.0).collect::<Vec<_>>()
                )))
            }
        };
        let (_, img_resolution, img_channels) = layers[&num_layers].clone();
        let (first_name, first_size, _) = layers[&0].clone();
        let w0 = t.get(&format!("synthesis.{first_name}.weight"))?;
        let conv_kernel = match w0.shape.as_slice() {
            &[_, _, k, k2] if k == k2 => k,
            other => {
                return Err(ModelError::Config(format!(
                    "synthesis.{first_name}.weight has shape {other:?}, expected [out, in, k, k]"
                )))
            }
        };
        let channels = layers.values().map(|v| v.2).collect();
        let mut radial = None;
        for (name, _, _) in layers.values() {
            if let Some(f) = t.get_opt(&format!("synthesis.{name}.down_filter")) {
                let is2d = f.shape.len() == 2;
                radial = Some(radial.unwrap_or(false) || is2d);
            }
        }
        let mapping = MappingConfig::infer(t, num_layers + 2)?;
        Ok(Inferred {
            mapping,
            num_layers,
            img_resolution,
            img_channels,
            first_size,
            conv_kernel,
            channels,
            radial,
        })
    }
}

/// The input layer's parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct InputSpec {
    pub channels: usize,
    pub size: usize,
    pub sampling_rate: f64,
    pub bandwidth: f64,
}

/// One synthesis layer's derived parameters (names as in the official `SynthesisLayer`).
#[derive(Clone, Debug, PartialEq)]
pub struct LayerSpec {
    /// `L{index}_{out_size}_{out_channels}`.
    pub name: String,
    pub index: usize,
    pub is_torgb: bool,
    pub is_critically_sampled: bool,
    pub in_channels: usize,
    pub out_channels: usize,
    pub in_size: usize,
    pub out_size: usize,
    pub in_sampling_rate: f64,
    pub out_sampling_rate: f64,
    pub tmp_sampling_rate: f64,
    pub in_cutoff: f64,
    pub out_cutoff: f64,
    pub in_half_width: f64,
    pub out_half_width: f64,
    pub conv_kernel: usize,
    pub up_factor: usize,
    pub down_factor: usize,
    pub up_taps: usize,
    pub down_taps: usize,
    pub down_radial: bool,
    /// `[x_lo, x_hi, y_lo, y_hi]` padding before the up-filter (negative = crop).
    pub padding: [i64; 4],
    pub conv_clamp: Option<f64>,
}

/// Input layer + layers `L0..=L{num_layers}` (the last one is ToRGB).
#[derive(Clone, Debug, PartialEq)]
pub struct Sg3Schedule {
    pub input: InputSpec,
    pub layers: Vec<LayerSpec>,
    pub output_scale: f64,
}
