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

fn equivariance(model: &Path, params: &[(&str, ParamValue)]) -> stylegraph_core::exec::RunReport {
    let mut g = Graph::new();
    g.nodes.push(node(
        "load",
        "stylegan.load",
        &[("path", ParamValue::Str(model.display().to_string()))],
        &[],
    ));
    g.nodes.push(node(
        "eq",
        "stylegan.equivariance",
        params,
        &[("generator", "load.generator".into())],
    ));
    session()
        .run(&g, &RunOptions::default())
        .expect("valid graph")
}

fn float_out(r: &stylegraph_core::exec::RunReport, port: &str) -> f64 {
    r.output("eq", port)
        .and_then(|v| v.as_f64())
        .unwrap_or_else(|| panic!("no {port}: {:?}", r.failed))
}

#[test]
fn equivariance_of_an_identity_transform_is_infinite_and_real_transforms_are_finite() {
    let model = fixtures().join("stylegan3-t-mid-64/G_ema.safetensors");
    // No translation at all: the transformed render is the reference, bit for bit.
    let r = equivariance(
        &model,
        &[
            ("num_samples", ParamValue::Int(2)),
            ("translate_max", ParamValue::Float(0.0)),
            ("eqt_frac", ParamValue::Bool(false)),
            ("eqr", ParamValue::Bool(false)),
        ],
    );
    assert_eq!(r.status, RunStatus::Finished, "{:?}", r.failed);
    assert_eq!(float_out(&r, "eqt_int"), f64::INFINITY);
    assert!(
        float_out(&r, "eqr").is_nan(),
        "switched-off metrics are NaN"
    );
    // Real translations and rotations of this (random-weight) network: finite PSNRs.
    let r = equivariance(
        &model,
        &[
            ("num_samples", ParamValue::Int(2)),
            ("seed", ParamValue::Int(3)),
        ],
    );
    assert_eq!(r.status, RunStatus::Finished, "{:?}", r.failed);
    for port in ["eqt_int", "eqt_frac", "eqr"] {
        let v = float_out(&r, port);
        assert!(v.is_finite() && v > 5.0, "{port} = {v}");
    }
    // StyleGAN2 has no input transform: a clear error.
    let r = equivariance(
        &fixtures().join("stylegan2-mid-64/G_ema.safetensors"),
        &[("num_samples", ParamValue::Int(1))],
    );
    assert_eq!(r.status, RunStatus::Failed);
    assert!(r.failed[0].1.contains("StyleGAN3"), "{}", r.failed[0].1);
}

/// Makes a conditional model (4 classes) from the 64 px StyleGAN3-T fixture by adding a label
/// embedding, and saves it as safetensors.
fn conditional_model(dir: &Path) -> PathBuf {
    use stylegraph_plugin_stylegan::model::{load_tensors, write_safetensors};
    let src = fixtures().join("stylegan3-t-mid-64/G_ema.safetensors");
    let (mut map, _) = load_tensors(src.to_str().expect("utf-8"), "G_ema").expect("tensors");
    let (c_dim, w_dim) = (4usize, 512usize);
    let mut rs = stylegraph_rng::RandomState::new(5);
    let mut rand = |n: usize| -> Vec<f32> { (0..n).map(|_| rs.next_gauss() as f32).collect() };
    map.insert(
        "mapping.embed.weight",
        vec![w_dim, c_dim],
        rand(w_dim * c_dim),
    );
    map.insert("mapping.embed.bias", vec![w_dim], rand(w_dim));
    let fc0 = map.get("mapping.fc0.weight").expect("fc0").clone();
    let out = fc0.shape[0];
    let mut wide = Vec::with_capacity(out * (512 + w_dim));
    let extra = rand(out * w_dim);
    for o in 0..out {
        wide.extend_from_slice(&fc0.data[o * 512..(o + 1) * 512]);
        wide.extend_from_slice(&extra[o * w_dim..(o + 1) * w_dim]);
    }
    map.insert("mapping.fc0.weight", vec![out, 512 + w_dim], wide);
    let path = dir.join("conditional.safetensors");
    let kwargs = serde_json::json!({"c_dim": c_dim, "z_dim": 512, "w_dim": w_dim, "img_resolution": 64,
        "channel_base": 2048, "channel_max": 64, "mapping_kwargs": {"num_layers": 2}});
    write_safetensors(
        &map,
        &kwargs,
        stylegraph_kernels::Architecture::StyleGan3T,
        &path,
    )
    .expect("write");
    path
}

#[test]
fn conditional_models_take_a_class() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = conditional_model(dir.path());
    let mut g = front(&model, 1.0);
    g.node_mut("map")
        .expect("map")
        .params
        .insert("class_index".into(), ParamValue::Int(2));
    g.nodes.push(node(
        "map_none",
        "stylegan.mapping",
        &[],
        &[("generator", "load.generator".into()), ("z", "z.z".into())],
    ));
    g.nodes.push(node(
        "map_bad",
        "stylegan.mapping",
        &[("class_index", ParamValue::Int(9))],
        &[("generator", "load.generator".into()), ("z", "z.z".into())],
    ));
    let r = session()
        .run(&g, &RunOptions::default())
        .expect("valid graph");
    // The class-2 branch runs to an image; the others fail with clear messages.
    assert!(r.executed.contains(&"whole".to_string()), "{:?}", r.failed);
    let msg = |n: &str| {
        r.failed
            .iter()
            .find(|(id, _)| id == n)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    };
    assert!(
        msg("map_none").contains("conditional") && msg("map_none").contains("class_index"),
        "{}",
        msg("map_none")
    );
    assert!(
        msg("map_bad").contains("out of range"),
        "{}",
        msg("map_bad")
    );
    // The node's ws equal the mapping with a one-hot label, and differ between classes.
    let m = stylegraph_plugin_stylegan::model::load_model(model.to_str().expect("utf-8"), "G_ema")
        .expect("load");
    assert_eq!(m.generator.c_dim(), 4);
    let z = stylegraph_rng::z_from_seed(0, 512);
    let onehot =
        |k: usize| -> Vec<f32> { (0..4).map(|i| if i == k { 1.0 } else { 0.0 }).collect() };
    let want = m
        .generator
        .map(&z, Some(&onehot(2)), 1, 1.0, None)
        .expect("map");
    let (_, got) = tensor(&r, "map", "ws");
    assert_eq!(got, want);
    let other = m
        .generator
        .map(&z, Some(&onehot(1)), 1, 1.0, None)
        .expect("map");
    assert_ne!(other, want);
}
