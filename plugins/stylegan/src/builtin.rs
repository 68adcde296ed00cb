//! Built-in generators: official structures with weights from our own seeded initialisation,
//! so that everything works on a fresh machine without downloading a model.

use serde_json::{json, Value};
use stylegraph_kernels::default_init::{sg3_state_dict, InitTuning};
use stylegraph_kernels::sg2::{self, Sg2Config};
use stylegraph_kernels::sg3::{Sg3Config, Sg3Kind};
use stylegraph_kernels::TensorMap;

/// The architectures a built-in model can have.
pub const BUILTIN_ARCHITECTURES: &[&str] = &["stylegan3-t", "stylegan3-r", "stylegan2"];

/// Makes the state dict and construction arguments of a built-in model.
pub fn make(
    arch: &str,
    res: usize,
    seed: u32,
    cbase: Option<f64>,
    cmax: Option<f64>,
) -> Result<(TensorMap, Value), String> {
    match arch {
        "stylegan3-t" | "stylegan3-r" => {
            let kind = if arch == "stylegan3-t" { Sg3Kind::T } else { Sg3Kind::R };
            let mut cfg = Sg3Config::official(kind, res);
            if let Some(b) = cbase {
                cfg.channel_base = b;
            }
            if let Some(m) = cmax {
                cfg.channel_max = m;
            }
            let map = sg3_state_dict(&cfg, seed, &InitTuning::default()).map_err(|e| e.to_string())?;
            let kwargs = json!({
                "z_dim": cfg.z_dim, "c_dim": cfg.c_dim, "w_dim": cfg.w_dim,
                "img_resolution": cfg.img_resolution, "img_channels": cfg.img_channels,
                "mapping_kwargs": {"num_layers": cfg.mapping_layers},
                "channel_base": cfg.channel_base, "channel_max": cfg.channel_max,
                "conv_kernel": cfg.conv_kernel, "use_radial_filters": cfg.use_radial_filters,
                "stylegraph_builtin": {"architecture": arch, "seed": seed},
            });
            Ok((map, kwargs))
        }
        "stylegan2" => {
            let mut cfg = Sg2Config {
                img_resolution: res,
                ..Sg2Config::stylegan2_1024()
            };
            if let Some(b) = cbase {
                cfg.channel_base = b as usize;
            }
            if let Some(m) = cmax {
                cfg.channel_max = m as usize;
            }
            let map = sg2::default_init(&cfg, seed).map_err(|e| e.to_string())?;
            let kwargs = json!({
                "z_dim": cfg.z_dim, "c_dim": cfg.c_dim, "w_dim": cfg.w_dim,
                "img_resolution": cfg.img_resolution, "img_channels": cfg.img_channels,
                "mapping_kwargs": cfg.mapping_kwargs,
                "channel_base": cfg.channel_base, "channel_max": cfg.channel_max,
                "conv_clamp": cfg.conv_clamp, "architecture": cfg.architecture.as_str(),
                "stylegraph_builtin": {"architecture": arch, "seed": seed},
            });
            Ok((map, kwargs))
        }
        other => Err(format!(
            "unknown architecture {other:?} (built-in models: {})",
            BUILTIN_ARCHITECTURES.join(", ")
        )),
    }
}
