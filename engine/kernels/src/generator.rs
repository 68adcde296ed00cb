//! A whole generator of either generation behind one type: mapping network, truncation and
//! synthesis, with the architecture inferred from the state dict.

use crate::mapping::{MappingConfig, MappingNetwork};
use crate::model::{Control, ModelError, NoiseMode};
use crate::sg2::{Sg2Config, Sg2Synthesis};
use crate::sg3::{Sg3Config, Sg3Synthesis};
use crate::tensor_map::TensorMap;
use serde_json::Value;

/// Which network family a generator is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Architecture {
    /// StyleGAN2 / StyleGAN2-ADA (`networks_stylegan2`).
    StyleGan2,
    /// StyleGAN3-T (translation equivariant).
    StyleGan3T,
    /// StyleGAN3-R (rotation equivariant).
    StyleGan3R,
}

impl Architecture {
    /// `stylegan2`, `stylegan3-t`, `stylegan3-r`.
    pub fn name(self) -> &'static str {
        match self {
            Architecture::StyleGan2 => "stylegan2",
            Architecture::StyleGan3T => "stylegan3-t",
            Architecture::StyleGan3R => "stylegan3-r",
        }
    }

    /// True for the StyleGAN3 family (input transform, no noise inputs).
    pub fn is_stylegan3(self) -> bool {
        !matches!(self, Architecture::StyleGan2)
    }

    /// Looks at the state-dict names: StyleGAN3 has `synthesis.input.*`, StyleGAN2 has blocks
    /// `synthesis.b4.*`; StyleGAN3-R has 1x1 convolutions.
    pub fn infer(map: &TensorMap) -> Result<Architecture, ModelError> {
        if map.get_opt("synthesis.input.weight").is_some() {
            let layer0 = map.tensors.iter().find(|(k, _)| {
                k.starts_with("synthesis.L0_") && k.ends_with(".weight") && !k.contains("affine")
            });
            let kernel = layer0
                .and_then(|(_, t)| t.shape.get(3).copied())
                .unwrap_or(3);
            Ok(if kernel == 1 {
                Architecture::StyleGan3R
            } else {
                Architecture::StyleGan3T
            })
        } else if map.tensors.keys().any(|k| k.starts_with("synthesis.b4.")) {
            Ok(Architecture::StyleGan2)
        } else {
            Err(ModelError::Config(
                "not a StyleGAN2/StyleGAN3 generator: found neither synthesis.input.* (StyleGAN3) \
                 nor synthesis.b4.* (StyleGAN2) tensors"
                    .into(),
            ))
        }
    }
}

/// The synthesis network of either family.
// One value per loaded model, never in bulk or moved in hot code: the size difference between
// the variants costs nothing, and boxing would change the public variants.
#[allow(clippy::large_enum_variant)]
pub enum Synthesis {
    Sg2(Sg2Synthesis),
    Sg3(Sg3Synthesis),
}

/// Options of one synthesis call.
#[derive(Clone, Copy, Debug)]
pub struct SynthesisOptions {
    /// StyleGAN2 per-pixel noise (ignored by StyleGAN3, which has none).
    pub noise: NoiseMode,
    /// StyleGAN3 input transform (the matrix written into `synthesis.input.transform`, see
    /// [`crate::sg3::user_transform`]); `None` keeps the stored one. Ignored by StyleGAN2.
    pub transform: Option<[[f64; 3]; 3]>,
}

impl Default for SynthesisOptions {
    fn default() -> Self {
        SynthesisOptions {
            noise: NoiseMode::Const,
            transform: None,
        }
    }
}

/// A generator: mapping network (with `w_avg`) plus synthesis network.
pub struct Generator {
    pub architecture: Architecture,
    pub mapping: MappingNetwork,
    pub synthesis: Synthesis,
}

impl std::fmt::Debug for Generator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Generator({}, {} px, z {}, w {}, c {}, {} ws)",
            self.architecture.name(),
            self.resolution(),
            self.z_dim(),
            self.w_dim(),
            self.c_dim(),
            self.num_ws()
        )
    }
}

impl Generator {
    /// Builds a generator from its state dict (upstream names) and, when known, its construction
    /// arguments (the pickled `_init_kwargs`, or the JSON saved with a safetensors file).
    /// Anything the arguments do not say is inferred from the tensors.
    pub fn from_tensors(map: &TensorMap, kwargs: Option<&Value>) -> Result<Generator, ModelError> {
        let empty = Value::Object(Default::default());
        let kwargs = kwargs.unwrap_or(&empty);
        let architecture = Architecture::infer(map)?;
        match architecture {
            Architecture::StyleGan2 => {
                let cfg = Sg2Config::from_json_and_tensors(kwargs, map)?;
                let synthesis = Sg2Synthesis::from_tensors(map, &cfg)?;
                let mapping_cfg = MappingConfig::infer(map, synthesis.num_ws())?;
                check_mapping(&mapping_cfg, cfg.z_dim, cfg.w_dim, cfg.c_dim)?;
                let mapping = MappingNetwork::from_tensors(map, &mapping_cfg)?;
                Ok(Generator {
                    architecture,
                    mapping,
                    synthesis: Synthesis::Sg2(synthesis),
                })
            }
            Architecture::StyleGan3T | Architecture::StyleGan3R => {
                let cfg = Sg3Config::from_kwargs_json(kwargs, Some(map))?;
                let synthesis = Sg3Synthesis::from_tensors(map, &cfg)?;
                let mapping = MappingNetwork::from_tensors(map, &cfg.mapping_config())?;
                Ok(Generator {
                    architecture,
                    mapping,
                    synthesis: Synthesis::Sg3(synthesis),
                })
            }
        }
    }

    pub fn z_dim(&self) -> usize {
        self.mapping.z_dim()
    }
    pub fn c_dim(&self) -> usize {
        self.mapping.c_dim()
    }
    pub fn w_dim(&self) -> usize {
        self.mapping.w_dim()
    }
    /// Rows of w the synthesis network consumes.
    pub fn num_ws(&self) -> usize {
        match &self.synthesis {
            Synthesis::Sg2(s) => s.num_ws(),
            Synthesis::Sg3(s) => s.num_ws(),
        }
    }
    /// Output image size in pixels (square).
    pub fn resolution(&self) -> usize {
        match &self.synthesis {
            Synthesis::Sg2(s) => s.resolution(),
            Synthesis::Sg3(s) => s.img_resolution(),
        }
    }
    pub fn img_channels(&self) -> usize {
        match &self.synthesis {
            Synthesis::Sg2(s) => s.img_channels(),
            Synthesis::Sg3(s) => s.img_channels(),
        }
    }
    /// The average w used for truncation.
    pub fn w_avg(&self) -> &[f32] {
        self.mapping.w_avg()
    }

    /// z `[n, z_dim]` (float64, as the official tools pass it) and optional one-hot labels
    /// `[n, c_dim]` -> ws `[n, num_ws, w_dim]`, truncated toward `w_avg` with `psi` on the first
    /// `cutoff` rows (all rows when `None`).
    pub fn map(
        &self,
        z: &[f64],
        c: Option<&[f32]>,
        n: usize,
        psi: f32,
        cutoff: Option<usize>,
    ) -> Result<Vec<f32>, ModelError> {
        self.mapping.map(z, c, n, psi, cutoff)
    }

    /// ws `[n, num_ws, w_dim]` -> image `[n, img_channels, res, res]`, nominal range [-1, 1].
    pub fn synthesize(
        &self,
        ws: &[f32],
        n: usize,
        options: &SynthesisOptions,
        ctl: &dyn Control,
    ) -> Result<Vec<f32>, ModelError> {
        match &self.synthesis {
            Synthesis::Sg2(s) => s.forward(ws, n, options.noise, ctl),
            Synthesis::Sg3(s) => s.forward(ws, n, options.transform, ctl),
        }
    }
}

fn check_mapping(
    m: &MappingConfig,
    z_dim: usize,
    w_dim: usize,
    c_dim: usize,
) -> Result<(), ModelError> {
    if (m.z_dim, m.w_dim, m.c_dim) != (z_dim, w_dim, c_dim) {
        return Err(ModelError::Config(format!(
            "mapping network tensors give z_dim {}, w_dim {}, c_dim {} but the construction \
             arguments say {z_dim}, {w_dim}, {c_dim}",
            m.z_dim, m.w_dim, m.c_dim
        )));
    }
    Ok(())
}

/// The official image conversion: `clamp(x * 127.5 + 128, 0, 255)` in float32, truncated toward
/// zero, NCHW float -> NHWC u8.
pub fn image_to_u8(image: &[f32], n: usize, c: usize, h: usize, w: usize) -> Vec<u8> {
    let mut out = vec![0u8; n * h * w * c];
    for s in 0..n {
        for ch in 0..c {
            let plane = &image[(s * c + ch) * h * w..(s * c + ch + 1) * h * w];
            for (p, &v) in plane.iter().enumerate() {
                let x = (v * 127.5 + 128.0).clamp(0.0, 255.0);
                out[(s * h * w + p) * c + ch] = x as u8;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn u8_conversion_truncates_like_torch() {
        // 0.99 * 127.5 + 128 = 254.225 -> 254; -1 -> 0.5 -> 0.
        let img = [0.0f32, 1.0, -1.0, 0.99, 2.0, -2.0];
        let out = image_to_u8(&img, 1, 1, 1, 6);
        assert_eq!(out, vec![128, 255, 0, 254, 255, 0]);
        // NCHW -> NHWC
        let img = [1.0f32, -1.0, 0.0, 0.0];
        assert_eq!(image_to_u8(&img, 1, 2, 1, 2), vec![255, 128, 0, 128]);
    }
}
