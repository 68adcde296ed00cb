//! The plugin through the host, as graphs: whole-network synthesis equals the layer-by-layer
//! chain, and a graph reproduces the official image.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use stylegraph_core::exec::{RunOptions, RunStatus, Session, SessionConfig};
use stylegraph_core::graph::{Graph, NodeDef, ParamValue};
use stylegraph_core::plugin::PluginHost;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn lib(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test exe");
    let p = exe.parent().expect("dir").join(format!(
        "{}{name}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ));
    assert!(p.exists(), "{} missing", p.display());
    p
}

fn session() -> Session {
    let mut host = PluginHost::new();
    for l in ["stylegraph_plugin_core", "stylegraph_plugin_stylegan"] {
        host.load_file(&lib(l)).unwrap_or_else(|e| panic!("{e}"));
    }
    Session::new(Arc::new(host), SessionConfig::default())
}

fn node(id: &str, ty: &str, params: &[(&str, ParamValue)], inputs: &[(&str, String)]) -> NodeDef {
    NodeDef {
        id: id.into(),
        node_type: ty.into(),
        params: params
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
        inputs: inputs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
        position: None,
    }
}

/// load -> z -> mapping, common to the graphs below.
fn front(model: &Path, psi: f64) -> Graph {
    let mut g = Graph::new();
    g.nodes.push(node(
        "load",
        "stylegan.load",
        &[("path", ParamValue::Str(model.display().to_string()))],
        &[],
    ));
    g.nodes.push(node(
        "z",
        "core.seed_to_z",
        &[("seed", ParamValue::Int(0))],
        &[],
    ));
    g.nodes.push(node(
        "map",
        "stylegan.mapping",
        &[("psi", ParamValue::Float(psi))],
        &[("generator", "load.generator".into()), ("z", "z.z".into())],
    ));
    g.nodes.push(node(
        "whole",
        "stylegan.synthesis",
        &[],
        &[
            ("generator", "load.generator".into()),
            ("ws", "map.ws".into()),
        ],
    ));
    g
}

fn tensor(
    report: &stylegraph_core::exec::RunReport,
    node: &str,
    port: &str,
) -> (Vec<i64>, Vec<f32>) {
    let t = report
        .output(node, port)
        .and_then(|v| v.as_tensor())
        .unwrap_or_else(|| panic!("no tensor {node}.{port}; failed: {:?}", report.failed));
    (t.shape().to_vec(), t.to_f32_vec())
}

#[test]
fn stylegan3_layer_chain_equals_whole_synthesis_and_the_official_image() {
    let model = fixtures().join("stylegan3-t-mid-64/G_ema.safetensors");
    let mut g = front(&model, 1.0);
    let gen = || ("generator", "load.generator".to_string());
    let ws = || ("ws", "map.ws".to_string());
    g.nodes.push(node(
        "input",
        "stylegan.synthesis_input",
        &[],
        &[gen(), ws()],
    ));
    let mut prev = "input.features".to_string();
    for i in 0..14 {
        let id = format!("L{i}");
        g.nodes.push(node(
            &id,
            "stylegan.synthesis_layer",
            &[("layer", ParamValue::Int(i))],
            &[gen(), ws(), ("features", prev.clone())],
        ));
        prev = format!("{id}.features");
    }
    g.nodes.push(node(
        "rgb",
        "stylegan.to_rgb",
        &[],
        &[gen(), ws(), ("features", prev)],
    ));
    g.nodes.push(node(
        "u8",
        "stylegan.image_to_u8",
        &[],
        &[("image", "whole.image".into())],
    ));
    let s = session();
    let r = s.run(&g, &RunOptions::default()).expect("valid graph");
    assert_eq!(r.status, RunStatus::Finished, "{:?}", r.failed);
    let (shape, whole) = tensor(&r, "whole", "image");
    assert_eq!(shape, vec![1, 3, 64, 64]);
    let (_, chained) = tensor(&r, "rgb", "image");
    assert_eq!(whole, chained, "the layer chain must give the same image");
    let want = stylegraph_npy::Array::read(
        &fixtures().join("stylegan3-t-mid-64/cases/seed0000_psi1_img.npy"),
    )
    .expect("fixture")
    .to_f32()
    .expect("f32");
    let err = whole
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(
        err <= 1e-4,
        "graph output differs from the official image by {err}"
    );
    let (u8_shape, _) = tensor(&r, "u8", "rgb");
    assert_eq!(u8_shape, vec![1, 64, 64, 3]);
}

#[test]
fn stylegan2_block_chain_equals_whole_synthesis() {
    let model = fixtures().join("stylegan2-mid-64/G_ema.safetensors");
    let mut g = front(&model, 0.7);
    let mut prev: Option<String> = None;
    for b in 0..5 {
        let id = format!("b{b}");
        let mut inputs = vec![
            ("generator", "load.generator".to_string()),
            ("ws", "map.ws".to_string()),
        ];
        if let Some(p) = &prev {
            inputs.push(("x", format!("{p}.x")));
            inputs.push(("img", format!("{p}.img")));
        }
        g.nodes.push(node(
            &id,
            "stylegan.synthesis_block",
            &[("block", ParamValue::Int(b))],
            &inputs,
        ));
        prev = Some(id);
    }
    let s = session();
    let r = s.run(&g, &RunOptions::default()).expect("valid graph");
    assert_eq!(r.status, RunStatus::Finished, "{:?}", r.failed);
    let (_, whole) = tensor(&r, "whole", "image");
    let (shape, chained) = tensor(&r, "b4", "img");
    assert_eq!(shape, vec![1, 3, 64, 64]);
    assert_eq!(whole, chained);
}

#[test]
fn wrong_inputs_give_errors_naming_node_and_port() {
    let model = fixtures().join("stylegan2-mid-64/G_ema.safetensors");
    let mut g = front(&model, 1.0);
    // A 3-D latent fed as z; and translate on a StyleGAN2.
    g.nodes.push(node(
        "z8",
        "core.seed_to_z",
        &[("z_dim", ParamValue::Int(8))],
        &[],
    ));
    g.nodes.push(node(
        "map8",
        "stylegan.mapping",
        &[],
        &[("generator", "load.generator".into()), ("z", "z8.z".into())],
    ));
    g.nodes.push(node(
        "moved",
        "stylegan.synthesis",
        &[("rotate", ParamValue::Float(10.0))],
        &[
            ("generator", "load.generator".into()),
            ("ws", "map.ws".into()),
        ],
    ));
    let r = session()
        .run(&g, &RunOptions::default())
        .expect("valid graph");
    assert_eq!(r.status, RunStatus::Failed);
    let msg = |n: &str| {
        r.failed
            .iter()
            .find(|(id, _)| id == n)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    };
    assert!(
        msg("map8").contains("\"z\"") && msg("map8").contains("[N, 512]"),
        "{}",
        msg("map8")
    );
    assert!(msg("moved").contains("StyleGAN3"), "{}", msg("moved"));
    assert!(
        r.executed.contains(&"whole".to_string()),
        "other branches still run"
    );
}
