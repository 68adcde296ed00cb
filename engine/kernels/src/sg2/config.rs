//! Construction arguments of a StyleGAN2 / StyleGAN2-ADA generator.

use serde_json::Value;

use crate::model::ModelError;
use crate::tensor_map::TensorMap;

/// How the blocks of the synthesis network are wired together (`architecture` kwarg).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Architecture {
    /// Every block has a ToRGB layer; the image is the sum of the upsampled per-block images
    /// (the official default; every released FFHQ / AFHQ / MetFaces model).
    Skip,
    /// Only the last block has a ToRGB layer (not supported by [`super::Sg2Synthesis`]).
    Orig,
    /// Residual blocks with a learned 1x1 skip (not supported by [`super::Sg2Synthesis`]).
    Resnet,
}

impl Architecture {
    fn parse(s: &str) -> Result<Architecture, ModelError> {
        match s {
            "skip" => Ok(Architecture::Skip),
            "orig" => Ok(Architecture::Orig),
            "resnet" => Ok(Architecture::Resnet),
            other => Err(ModelError::Config(format!(
                "unknown StyleGAN2 architecture {other:?} (expected \"skip\", \"orig\" or \"resnet\")"
            ))),
        }
    }

    /// The upstream spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Architecture::Skip => "skip",
            Architecture::Orig => "orig",
            Architecture::Resnet => "resnet",
        }
    }
}

/// The constructor arguments of the official `Generator` (StyleGAN2 in the `stylegan3`
/// repository, or StyleGAN2-ADA), as far as they shape the network.
///
/// Build it with [`Sg2Config::from_json`] from the `_init_kwargs` a network pickle stores (both the
/// flat `stylegan3`-repository form and the ADA form with a nested `synthesis_kwargs` dict are
/// accepted), with [`Sg2Config::infer_from_tensors`] from a state dict alone, or with
/// [`Sg2Config::from_json_and_tensors`], which fills whatever the kwargs leave out from the
/// tensors.
#[derive(Clone, Debug, PartialEq)]
pub struct Sg2Config {
    /// Input latent (Z) dimensionality.
    pub z_dim: usize,
    /// Intermediate latent (W) dimensionality.
    pub w_dim: usize,
    /// Label dimensionality (0 = unconditional).
    pub c_dim: usize,
    /// Output resolution (a power of two, at least 4).
    pub img_resolution: usize,
    /// Output colour channels.
    pub img_channels: usize,
    /// Arguments of the mapping network, passed through untouched (an object).
    pub mapping_kwargs: Value,
    /// Overall multiplier of the channel counts: a block at resolution `r` has
    /// `min(channel_base / r, channel_max)` channels.
    pub channel_base: usize,
    /// Maximum channel count of any layer.
    pub channel_max: usize,
    /// How many of the highest resolutions use fp16 on CUDA (no effect on the CPU).
    pub num_fp16_res: usize,
    /// Clamp of every conv / ToRGB output to `±conv_clamp`; `None` disables clamping.
    pub conv_clamp: Option<f32>,
    /// Block wiring.
    pub architecture: Architecture,
}

/// Defaults of the `stylegan3`-repository `networks_stylegan2` module.
const DEFAULT_CHANNEL_BASE: usize = 32768;
const DEFAULT_CHANNEL_MAX: usize = 512;

impl Sg2Config {
    /// The official 1024x1024 FFHQ configuration (`stylegan2` config of the official training
    /// script: 8 mapping layers, channel_base 32768, channel_max 512, conv_clamp 256).
    pub fn stylegan2_1024() -> Sg2Config {
        Sg2Config {
            z_dim: 512,
            w_dim: 512,
            c_dim: 0,
            img_resolution: 1024,
            img_channels: 3,
            mapping_kwargs: serde_json::json!({ "num_layers": 8 }),
            channel_base: DEFAULT_CHANNEL_BASE,
            channel_max: DEFAULT_CHANNEL_MAX,
            num_fp16_res: 4,
            conv_clamp: Some(256.0),
            architecture: Architecture::Skip,
        }
    }

    /// Parses the generator's constructor kwargs. `img_resolution` is required; the others
    /// default as in the official code: z_dim/w_dim 512, c_dim 0, img_channels 3,
    /// channel_base 32768, channel_max 512, architecture `skip`. The defaults of `conv_clamp`
    /// and `num_fp16_res` differ between the two upstream code bases: with a nested
    /// `synthesis_kwargs` dict (StyleGAN2-ADA) a missing `conv_clamp` means no clamping and
    /// `num_fp16_res` 0; in the flat form (`stylegan3` repository) they are 256 and 4.
    pub fn from_json(kwargs: &Value) -> Result<Sg2Config, ModelError> {
        Self::from_json_impl(kwargs, None)
    }

    /// Like [`Sg2Config::from_json`], but anything the kwargs do not say (even
    /// `img_resolution`) is taken from the tensors; values present in both must agree.
    pub fn from_json_and_tensors(kwargs: &Value, map: &TensorMap) -> Result<Sg2Config, ModelError> {
        Self::from_json_impl(kwargs, Some(map))
    }

    /// Derives the configuration from the state-dict tensors alone (`synthesis.*` and, when
    /// present, `mapping.*`). `conv_clamp` cannot be seen in the tensors: the `stylegan3`
    /// repository default (256) is assumed; the architecture is `skip` when every block has a
    /// ToRGB layer.
    pub fn infer_from_tensors(map: &TensorMap) -> Result<Sg2Config, ModelError> {
        Self::from_json_impl(&Value::Object(Default::default()), Some(map))
    }

    fn from_json_impl(kwargs: &Value, map: Option<&TensorMap>) -> Result<Sg2Config, ModelError> {
        let top = kwargs.as_object().ok_or_else(|| {
            ModelError::Config("StyleGAN2 generator kwargs must be a JSON object".into())
        })?;
        // ADA keeps the synthesis arguments in a nested dict; the stylegan3 repository passes
        // them as extra keyword arguments of the generator.
        let nested = match top.get("synthesis_kwargs") {
            None | Some(Value::Null) => None,
            Some(Value::Object(o)) => Some(o),
            Some(other) => {
                return Err(ModelError::Config(format!(
                    "synthesis_kwargs must be an object, found {other}"
                )))
            }
        };
        let synth = |key: &str| -> Option<&Value> {
            nested
                .and_then(|o| o.get(key))
                .or_else(|| top.get(key))
                .filter(|v| !v.is_null())
        };
        let inferred = match map {
            Some(m) => Some(Inferred::from_tensors(m)?),
            None => None,
        };

        let get_usize = |key: &str, v: Option<&Value>| -> Result<Option<usize>, ModelError> {
            match v {
                None => Ok(None),
                Some(v) => v
                    .as_u64()
                    .or_else(|| {
                        // Pickled numpy scalars may arrive as floats with an integral value.
                        v.as_f64()
                            .filter(|f| f.fract() == 0.0 && *f >= 0.0)
                            .map(|f| f as u64)
                    })
                    .map(|u| Some(u as usize))
                    .ok_or_else(|| {
                        ModelError::Config(format!(
                            "{key} must be a non-negative integer, found {v}"
                        ))
                    }),
            }
        };
        // Explicit value, else the tensors' value, else the default; explicit and tensor
        // values must agree.
        let pick = |key: &str,
                    explicit: Option<usize>,
                    from_tensors: Option<usize>,
                    default: Option<usize>|
         -> Result<usize, ModelError> {
            match (explicit, from_tensors) {
                (Some(e), Some(t)) if e != t => Err(ModelError::Config(format!(
                    "{key} = {e} in the kwargs, but the tensors say {t}"
                ))),
                (Some(e), _) => Ok(e),
                (None, Some(t)) => Ok(t),
                (None, None) => default.ok_or_else(|| {
                    ModelError::Config(format!("{key} is missing from the generator kwargs"))
                }),
            }
        };
        let inf = inferred.as_ref();

        let img_resolution = pick(
            "img_resolution",
            get_usize("img_resolution", top.get("img_resolution"))?,
            inf.map(|i| i.img_resolution),
            None,
        )?;
        if img_resolution < 4 || !img_resolution.is_power_of_two() {
            return Err(ModelError::Config(format!(
                "img_resolution must be a power of two >= 4, found {img_resolution}"
            )));
        }
        let img_channels = pick(
            "img_channels",
            get_usize("img_channels", top.get("img_channels"))?,
            inf.map(|i| i.img_channels),
            Some(3),
        )?;
        let w_dim = pick(
            "w_dim",
            get_usize("w_dim", top.get("w_dim"))?,
            inf.map(|i| i.w_dim),
            Some(512),
        )?;
        let z_dim = pick(
            "z_dim",
            get_usize("z_dim", top.get("z_dim"))?,
            inf.and_then(|i| i.z_dim),
            Some(512),
        )?;
        let c_dim = pick(
            "c_dim",
            get_usize("c_dim", top.get("c_dim"))?,
            inf.and_then(|i| i.c_dim),
            Some(0),
        )?;
        let mapping_kwargs = match top.get("mapping_kwargs") {
            None | Some(Value::Null) => {
                let mut m = serde_json::Map::new();
                if let Some(n) = inf.and_then(|i| i.mapping_layers) {
                    m.insert("num_layers".into(), Value::from(n));
                }
                Value::Object(m)
            }
            Some(v @ Value::Object(_)) => v.clone(),
            Some(other) => {
                return Err(ModelError::Config(format!(
                    "mapping_kwargs must be an object, found {other}"
                )))
            }
        };

        let ada = nested.is_some();
        let mut channel_base = get_usize("channel_base", synth("channel_base"))?;
        let mut channel_max = get_usize("channel_max", synth("channel_max"))?;
        if let Some(inf) = inf {
            // The tensors fix the channel count at every resolution; without explicit values
            // pick a (base, max) pair that reproduces them.
            if channel_base.is_none() || channel_max.is_none() {
                let (b, m) = inf.channel_rule(channel_base, channel_max)?;
                channel_base = Some(b);
                channel_max = Some(m);
            }
        }
        let channel_base = channel_base.unwrap_or(DEFAULT_CHANNEL_BASE);
        let channel_max = channel_max.unwrap_or(DEFAULT_CHANNEL_MAX);
        if channel_base == 0 || channel_max == 0 {
            return Err(ModelError::Config(
                "channel_base and channel_max must be positive".into(),
            ));
        }
        let num_fp16_res =
            get_usize("num_fp16_res", synth("num_fp16_res"))?.unwrap_or(if ada { 0 } else { 4 });
        let conv_clamp = match nested
            .and_then(|o| o.get("conv_clamp"))
            .or_else(|| top.get("conv_clamp"))
        {
            Some(Value::Null) => None,
            Some(v) => Some(v.as_f64().ok_or_else(|| {
                ModelError::Config(format!("conv_clamp must be a number or null, found {v}"))
            })? as f32),
            None if ada => None,
            None => Some(256.0),
        };
        let architecture = match synth("architecture") {
            None => match inf {
                Some(i) if !i.all_blocks_have_torgb => Architecture::Orig,
                _ => Architecture::Skip,
            },
            Some(Value::String(s)) => Architecture::parse(s)?,
            Some(other) => {
                return Err(ModelError::Config(format!(
                    "architecture must be a string, found {other}"
                )))
            }
        };

        let cfg = Sg2Config {
            z_dim,
            w_dim,
            c_dim,
            img_resolution,
            img_channels,
            mapping_kwargs,
            channel_base,
            channel_max,
            num_fp16_res,
            conv_clamp,
            architecture,
        };
        if let Some(inf) = inf {
            for (&res, &ch) in &inf.channels {
                if cfg.channels(res) != ch {
                    return Err(ModelError::Config(format!(
                        "channel_base {channel_base} / channel_max {channel_max} give {} channels at \
                         resolution {res}, but the tensors have {ch}",
                        cfg.channels(res)
                    )));
                }
            }
        }
        Ok(cfg)
    }

    /// Block resolutions, 4, 8, ..., `img_resolution`.
    pub fn block_resolutions(&self) -> Vec<usize> {
        let mut v = Vec::new();
        let mut r = 4;
        while r <= self.img_resolution {
            v.push(r);
            r *= 2;
        }
        v
    }

    /// Channels of the block at resolution `res`: `min(channel_base / res, channel_max)`.
    pub fn channels(&self, res: usize) -> usize {
        (self.channel_base / res.max(1)).min(self.channel_max)
    }

    /// Number of w rows the synthesis network consumes: one per conv layer plus the last
    /// ToRGB (`2·log2(res) − 2`).
    pub fn num_ws(&self) -> usize {
        let blocks = self.block_resolutions().len();
        // b4 has one conv, later blocks two, plus the final ToRGB.
        1 + 2 * (blocks - 1) + 1
    }

    /// Number of mapping layers (`mapping_kwargs.num_layers`, default 8).
    pub fn mapping_layers(&self) -> usize {
        self.mapping_kwargs
            .get("num_layers")
            .and_then(Value::as_u64)
            .map_or(8, |n| n as usize)
    }
}

/// What the tensor names and shapes say about the network.
struct Inferred {
    img_resolution: usize,
    img_channels: usize,
    w_dim: usize,
    z_dim: Option<usize>,
    c_dim: Option<usize>,
    mapping_layers: Option<usize>,
    /// Channel count per block resolution.
    channels: std::collections::BTreeMap<usize, usize>,
    all_blocks_have_torgb: bool,
}

impl Inferred {
    fn from_tensors(map: &TensorMap) -> Result<Inferred, ModelError> {
        let mut channels = std::collections::BTreeMap::new();
        let mut res = 4usize;
        let mut all_torgb = true;
        loop {
            let name = if res == 4 {
                format!("synthesis.b{res}.const")
            } else {
                format!("synthesis.b{res}.conv1.weight")
            };
            let Some(t) = map.get_opt(&name) else { break };
            let ch =
                t.shape.first().copied().ok_or_else(|| {
                    ModelError::Config(format!("tensor {name:?} has an empty shape"))
                })?;
            channels.insert(res, ch);
            if map
                .get_opt(&format!("synthesis.b{res}.torgb.weight"))
                .is_none()
            {
                all_torgb = false;
            }
            res *= 2;
        }
        let img_resolution = res / 2;
        if channels.is_empty() {
            return Err(ModelError::Config(
                "not a StyleGAN2 synthesis network: tensor \"synthesis.b4.const\" is missing"
                    .into(),
            ));
        }
        let torgb_name = format!("synthesis.b{img_resolution}.torgb.weight");
        let torgb = map.get(&torgb_name)?;
        let img_channels = torgb.shape.first().copied().unwrap_or(0);
        let affine_name = "synthesis.b4.conv1.affine.weight";
        let affine = map.get(affine_name)?;
        let w_dim = match affine.shape.as_slice() {
            [_, w] => *w,
            other => {
                return Err(ModelError::Config(format!(
                    "tensor {affine_name:?} has shape {other:?}, expected [channels, w_dim]"
                )))
            }
        };
        // The mapping network, when present: fc0 takes z (plus the label embedding).
        let mut mapping_layers = 0;
        while map
            .get_opt(&format!("mapping.fc{mapping_layers}.weight"))
            .is_some()
        {
            mapping_layers += 1;
        }
        let embed_out = map
            .get_opt("mapping.embed.weight")
            .and_then(|t| t.shape.first().copied());
        let c_dim = map
            .get_opt("mapping.embed.weight")
            .and_then(|t| t.shape.get(1).copied())
            .or(if mapping_layers > 0 { Some(0) } else { None });
        let z_dim = map
            .get_opt("mapping.fc0.weight")
            .and_then(|t| t.shape.get(1).copied())
            .map(|fan_in| fan_in - embed_out.unwrap_or(0).min(fan_in));
        Ok(Inferred {
            img_resolution,
            img_channels,
            w_dim,
            z_dim,
            c_dim,
            mapping_layers: (mapping_layers > 0).then_some(mapping_layers),
            channels,
            all_blocks_have_torgb: all_torgb,
        })
    }

    /// A `(channel_base, channel_max)` pair reproducing the observed channel counts, keeping
    /// the given values.
    fn channel_rule(
        &self,
        base: Option<usize>,
        max: Option<usize>,
    ) -> Result<(usize, usize), ModelError> {
        let observed_max = self.channels.values().copied().max().unwrap_or(0);
        let max = max.unwrap_or(observed_max);
        // Below the cap, channels = base / res exactly for the official configurations; take
        // the base from the highest resolution (the least likely to be capped).
        let base = match base {
            Some(b) => b,
            None => {
                let (&res, &ch) = self
                    .channels
                    .iter()
                    .next_back()
                    .ok_or_else(|| ModelError::Config("no synthesis blocks found".into()))?;
                if ch < max {
                    ch * res
                } else {
                    // Every block is capped: any base that keeps them capped works; use the
                    // smallest such.
                    max * res
                }
            }
        };
        Ok((base, max))
    }
}
