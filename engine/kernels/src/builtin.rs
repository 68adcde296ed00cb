//! Built-in generators: official structures with weights from our own seeded initialisation,
//! so that everything works on a fresh machine without downloading a model (and benchmarks can
//! use the official network sizes).
//!
//! Names: `<architecture>-<resolution>[?seed=N&cbase=N&cmax=N]`, architecture one of
//! `stylegan3-t`, `stylegan3-r`, `stylegan2`; `cbase`/`cmax` override `channel_base`/`channel_max`.

use crate::default_init::{sg3_state_dict, InitTuning};
use crate::sg2::{self, Sg2Config};
use crate::sg3::{Sg3Config, Sg3Kind};
use crate::TensorMap;
use serde_json::{json, Value};

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
            let kind = if arch == "stylegan3-t" {
                Sg3Kind::T
            } else {
                Sg3Kind::R
            };
            let mut cfg = Sg3Config::official(kind, res);
            if let Some(b) = cbase {
                cfg.channel_base = b;
            }
            if let Some(m) = cmax {
                cfg.channel_max = m;
            }
            let map =
                sg3_state_dict(&cfg, seed, &InitTuning::default()).map_err(|e| e.to_string())?;
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

/// A parsed built-in model name.
#[derive(Clone, Debug, PartialEq)]
pub struct BuiltinSpec {
    pub architecture: String,
    pub resolution: usize,
    pub seed: u32,
    pub channel_base: Option<f64>,
    pub channel_max: Option<f64>,
}

/// Parses `<arch>-<res>[?seed=N&cbase=N&cmax=N]` (without the `builtin:` prefix).
pub fn parse(spec: &str) -> Result<BuiltinSpec, String> {
    let (name, query) = spec.split_once('?').unwrap_or((spec, ""));
    let (arch, res) = name
        .rsplit_once('-')
        .ok_or("expected <architecture>-<resolution>, e.g. stylegan3-t-256")?;
    let res: usize = res
        .parse()
        .map_err(|_| format!("resolution {res:?} is not a number"))?;
    if !(4..=2048).contains(&res) || !res.is_power_of_two() {
        return Err(format!(
            "resolution {res} must be a power of two in 4..=2048"
        ));
    }
    if !BUILTIN_ARCHITECTURES.contains(&arch) {
        return Err(format!(
            "unknown architecture {arch:?} (built-in models: {})",
            BUILTIN_ARCHITECTURES.join(", ")
        ));
    }
    let mut out = BuiltinSpec {
        architecture: arch.to_owned(),
        resolution: res,
        seed: 0,
        channel_base: None,
        channel_max: None,
    };
    for kv in query.split('&').filter(|s| !s.is_empty()) {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| format!("option {kv:?} needs a value"))?;
        let num: f64 = v
            .parse()
            .map_err(|_| format!("option {k}={v:?} is not a number"))?;
        match k {
            "seed" if (0.0..=u32::MAX as f64).contains(&num) && num.fract() == 0.0 => {
                out.seed = num as u32
            }
            "cbase" if num >= 1.0 => out.channel_base = Some(num),
            "cmax" if num >= 1.0 => out.channel_max = Some(num),
            _ => {
                return Err(format!(
                    "unknown or invalid option {kv:?} (seed, cbase, cmax)"
                ))
            }
        }
    }
    Ok(out)
}

/// Parses a name and makes the model's state dict and construction arguments.
pub fn make_named(spec: &str) -> Result<(TensorMap, Value), String> {
    let s = parse(spec)?;
    make(
        &s.architecture,
        s.resolution,
        s.seed,
        s.channel_base,
        s.channel_max,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let s = parse("stylegan3-r-1024?seed=3&cmax=64").expect("valid");
        assert_eq!(s.architecture, "stylegan3-r");
        assert_eq!((s.resolution, s.seed, s.channel_max), (1024, 3, Some(64.0)));
        for bad in [
            "stylegan3-t",
            "stylegan3-t-100",
            "stylegan4-256",
            "stylegan2-64?x=1",
            "stylegan2-64?seed=-1",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
