//! Familiar one-liners that build and run the equivalent graph: `generate` (like the official
//! `gen_images.py`) and `convert` (pickle -> safetensors).

use anyhow::{anyhow, bail, Result};
use std::collections::BTreeMap;
use std::path::PathBuf;
use stylegraph_core::graph::{Graph, NodeDef, ParamValue};

/// The model used when no `--network` is given: a built-in StyleGAN3-T at 256 px with weights
/// from our seeded initialisation (untrained: abstract colourful images).
pub const DEFAULT_NETWORK: &str = "builtin:stylegan3-t-256";

/// Options of `stylegraph generate`, mirroring gen_images.py.
pub struct GenerateOptions {
    pub network: String,
    pub trunc: f64,
    pub trunc_cutoff: Option<i64>,
    pub class: Option<i64>,
    pub noise_mode: String,
    pub translate: (f64, f64),
    pub rotate: f64,
    pub outdir: PathBuf,
    pub raw: bool,
}

/// One node of a generated graph.
pub(crate) fn node(
    id: &str,
    ty: &str,
    params: &[(&str, ParamValue)],
    inputs: &[(&str, &str)],
    x: f32,
    y: f32,
) -> NodeDef {
    NodeDef {
        id: id.to_owned(),
        node_type: ty.to_owned(),
        params: params
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect::<BTreeMap<_, _>>(),
        inputs: inputs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        position: Some((x, y)),
    }
}

fn path_str(p: &std::path::Path) -> Result<String> {
    p.to_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("path {} is not valid UTF-8", p.display()))
}

/// The graph `generate` runs once per seed (its seed param is `z.seed`; `{seed}` in the output
/// file names is filled in per run).
pub fn generate_graph(o: &GenerateOptions) -> Result<Graph> {
    if o.network.starts_with("http://") || o.network.starts_with("https://") {
        bail!(
            "--network {}: downloading is not supported; download the file and pass its path",
            o.network
        );
    }
    use ParamValue::*;
    let mut g = Graph::new();
    g.description =
        "The equivalent of gen_images.py: seed -> z -> mapping -> synthesis -> PNG".into();
    g.nodes.push(node(
        "load",
        "stylegan.load",
        &[("path", Str(o.network.clone()))],
        &[],
        40.0,
        40.0,
    ));
    g.nodes.push(node(
        "z",
        "core.seed_to_z",
        &[("seed", Int(0))],
        &[],
        40.0,
        220.0,
    ));
    let mut map_params = vec![("psi", Float(o.trunc))];
    if let Some(c) = o.trunc_cutoff {
        map_params.push(("cutoff", Int(c)));
    }
    if let Some(c) = o.class {
        map_params.push(("class_index", Int(c)));
    }
    g.nodes.push(node(
        "mapping",
        "stylegan.mapping",
        &map_params,
        &[("generator", "load.generator"), ("z", "z.z")],
        320.0,
        120.0,
    ));
    let mut syn = vec![("noise_mode", Str(o.noise_mode.clone()))];
    if o.translate != (0.0, 0.0) || o.rotate != 0.0 {
        syn.push(("translate_x", Float(o.translate.0)));
        syn.push(("translate_y", Float(o.translate.1)));
        syn.push(("rotate", Float(o.rotate)));
    }
    g.nodes.push(node(
        "synthesis",
        "stylegan.synthesis",
        &syn,
        &[("generator", "load.generator"), ("ws", "mapping.ws")],
        600.0,
        120.0,
    ));
    let png = path_str(&o.outdir.join("seed{seed:04}.png"))?;
    g.nodes.push(node(
        "save",
        "io.save_image",
        &[("path", Str(png))],
        &[("image", "synthesis.image")],
        880.0,
        60.0,
    ));
    if o.raw {
        let npy = path_str(&o.outdir.join("seed{seed:04}.npy"))?;
        g.nodes.push(node(
            "save_raw",
            "core.save_tensor",
            &[("path", Str(npy))],
            &[("x", "synthesis.image")],
            880.0,
            200.0,
        ));
    }
    Ok(g)
}

/// The graph `convert` runs: load a model and write it as safetensors + JSON.
pub fn convert_graph(input: &str, output: &str, network: &str) -> Graph {
    use ParamValue::*;
    let mut g = Graph::new();
    g.description = "Convert a network pickle to safetensors".into();
    g.nodes.push(node(
        "load",
        "stylegan.load",
        &[
            ("path", Str(input.into())),
            ("network", Str(network.into())),
        ],
        &[],
        40.0,
        40.0,
    ));
    g.nodes.push(node(
        "save",
        "stylegan.save_safetensors",
        &[("path", Str(output.into()))],
        &[("generator", "load.generator")],
        320.0,
        40.0,
    ));
    g
}

/// Parses `X,Y` (as gen_images.py --translate).
pub fn parse_pair(s: &str) -> Result<(f64, f64)> {
    let (a, b) = s
        .split_once(',')
        .ok_or_else(|| anyhow!("expected X,Y (two numbers separated by a comma), got {s:?}"))?;
    let p = |v: &str| {
        v.trim()
            .parse::<f64>()
            .map_err(|_| anyhow!("{v:?} is not a number"))
    };
    Ok((p(a)?, p(b)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_graph_is_valid_ron_and_round_trips() {
        let o = GenerateOptions {
            network: "model.pkl".into(),
            trunc: 0.7,
            trunc_cutoff: Some(8),
            class: None,
            noise_mode: "const".into(),
            translate: (0.3, 1.0),
            rotate: 10.0,
            outdir: "out".into(),
            raw: true,
        };
        let g = generate_graph(&o).expect("graph");
        let text = g.to_ron_string().expect("ron");
        assert_eq!(Graph::from_ron_str(&text, "<t>").expect("parse"), g);
        let syn = g.node("synthesis").expect("synthesis");
        assert_eq!(syn.params.get("rotate"), Some(&ParamValue::Float(10.0)));
        assert_eq!(
            g.node("save").and_then(|n| n.params.get("path")),
            Some(&ParamValue::Str("out/seed{seed:04}.png".into()))
        );
        assert!(g.node("save_raw").is_some());
        assert!(generate_graph(&GenerateOptions {
            network: "https://x/y.pkl".into(),
            ..o
        })
        .is_err());
    }

    #[test]
    fn pairs() {
        assert_eq!(parse_pair("0.3,1").ok(), Some((0.3, 1.0)));
        assert!(parse_pair("0.3").is_err());
        assert!(parse_pair("a,1").is_err());
    }
}
