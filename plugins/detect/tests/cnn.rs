//! `detect.cnn` on a checkpoint with the structure of Wang et al.'s ResNet-50 (`[3, 4, 6, 3]`
//! bottlenecks, one output) but tiny widths and random weights, written by `torch.save`
//! (`scripts/make_tiny_resnet.py`): the logits match torch's, bad files are refused, and the
//! node scores a labelled folder.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use stylegraph_core::exec::{RunOptions, RunStatus, Session, SessionConfig};
use stylegraph_core::graph::Graph;
use stylegraph_core::plugin::PluginHost;
use stylegraph_core::value::Value;
use stylegraph_kernels::image_folder::{encode_png, Rgb8};
use stylegraph_plugin_detect::cnn::{load_checkpoint, score_rgb8};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The script's procedural image: `(7x + 13y + 50c + (x*y mod 17)) mod 256`, 70 rows x 64.
fn test_image() -> (usize, usize, Vec<u8>) {
    let (h, w) = (70, 64);
    let mut rgb = vec![0u8; h * w * 3];
    for y in 0..h {
        for x in 0..w {
            for c in 0..3 {
                rgb[(y * w + x) * 3 + c] = ((x * 7 + y * 13 + c * 50 + (x * y) % 17) % 256) as u8;
            }
        }
    }
    (h, w, rgb)
}

fn reference(key: &str) -> f64 {
    let text = std::fs::read_to_string(fixture("tiny_resnet_reference.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v[key].as_f64().unwrap()
}

#[test]
fn logits_match_torch_with_and_without_crop() {
    let net = load_checkpoint(&fixture("tiny_resnet.pth")).unwrap();
    assert_eq!(net.blocks(), vec![3, 4, 6, 3]);
    assert!(net.is_bottleneck());
    let (h, w, rgb) = test_image();
    for (crop, key) in [(None, "crop0"), (Some(48), "crop48")] {
        let (p, z) = score_rgb8(&net, &rgb, h, w, crop, &|| false).unwrap();
        let want = reference(key);
        assert!(
            (z - want).abs() < 1e-4 * want.abs().max(1.0),
            "{key}: logit {z}, torch {want}"
        );
        assert!((p - 1.0 / (1.0 + (-want).exp())).abs() < 1e-5);
    }
}

#[test]
fn bad_checkpoints_are_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(fixture("tiny_resnet.pth")).unwrap();
    let cut = dir.path().join("truncated.pth");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let e = load_checkpoint(&cut).err().unwrap().to_string();
    assert!(e.contains("truncated.pth"), "{e}");
    let e = load_checkpoint(&fixture("no_model_key.pth"))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("no_model_key.pth") && e.contains("model"), "{e}");
    let junk = dir.path().join("junk.pth");
    std::fs::write(&junk, b"definitely not a checkpoint").unwrap();
    assert!(load_checkpoint(&junk)
        .err()
        .unwrap()
        .to_string()
        .contains("junk.pth"));
    let e = load_checkpoint(&dir.path().join("missing.pth"))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("missing.pth"), "{e}");
}

#[test]
fn node_scores_a_labelled_folder_like_the_library() {
    let dir = tempfile::tempdir().unwrap();
    let (h, w, rgb) = test_image();
    let mut expected = Vec::new();
    let net = load_checkpoint(&fixture("tiny_resnet.pth")).unwrap();
    for (sub, shift) in [("0_real", 0u8), ("1_fake", 40u8)] {
        let d = dir.path().join("eval").join(sub);
        std::fs::create_dir_all(&d).unwrap();
        for i in 0..2u8 {
            let data: Vec<u8> = rgb
                .iter()
                .map(|v| v.wrapping_add(shift).wrapping_add(i * 9))
                .collect();
            expected.push(score_rgb8(&net, &data, h, w, None, &|| false).unwrap().0);
            let png = encode_png(
                &Rgb8 {
                    width: w,
                    height: h,
                    data,
                },
                "t",
            )
            .unwrap();
            std::fs::write(d.join(format!("{i}.png")), png).unwrap();
        }
    }
    let csv = dir.path().join("scores.csv");
    let text = format!(
        r#"(version: 1, nodes: [(id: "cnn", type: "detect.cnn", params: {{
            "weights": "{}", "folder": "{}", "csv": "{}", "threshold": 0.3}})])"#,
        fixture("tiny_resnet.pth").display(),
        dir.path().join("eval").display(),
        csv.display()
    );
    let mut host = PluginHost::new();
    host.register_entry(
        stylegraph_plugin_detect::stylegraph_plugin_entry,
        Path::new("<builtin>"),
    )
    .unwrap();
    let session = Session::new(Arc::new(host), SessionConfig::default());
    let g = Graph::from_ron_str(&text, "<t>").unwrap();
    let r = session.run(&g, &RunOptions::default()).unwrap();
    assert_eq!(r.status, RunStatus::Finished, "{:?}", r.failed);
    let scores = r
        .output("cnn", "scores")
        .and_then(Value::as_tensor)
        .unwrap()
        .to_f64_vec();
    assert_eq!(scores.len(), 4);
    for (a, b) in scores.iter().zip(&expected) {
        assert!((a - b).abs() < 1e-9, "{a} vs {b}");
    }
    let auc = r.output("cnn", "auc").and_then(Value::as_f64).unwrap();
    assert!((0.0..=1.0).contains(&auc));
    let summary = match r.output("cnn", "summary") {
        Some(Value::Str(s)) => s.to_string(),
        other => panic!("summary: {other:?}"),
    };
    assert!(summary.contains("threshold 0.3"), "{summary}");
    assert_eq!(std::fs::read_to_string(&csv).unwrap().lines().count(), 5);
}

#[test]
fn detect_graph_file_runs_with_the_test_checkpoint() {
    use stylegraph_core::graph::ParamValue;
    let dir = tempfile::tempdir().unwrap();
    let (h, w, rgb) = test_image();
    let png = encode_png(
        &Rgb8 {
            width: w,
            height: h,
            data: rgb,
        },
        "t",
    )
    .unwrap();
    std::fs::write(dir.path().join("a.png"), png).unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut g = Graph::load(&root.join("graphs/detect.ron")).unwrap();
    let node = g.node_mut("cnn").unwrap();
    let s = |p: &Path| ParamValue::Str(p.display().to_string());
    node.params
        .insert("weights".into(), s(&fixture("tiny_resnet.pth")));
    node.params.insert("folder".into(), s(dir.path()));
    node.params
        .insert("csv".into(), s(&dir.path().join("out/scores.csv")));
    let mut host = PluginHost::new();
    host.register_entry(
        stylegraph_plugin_detect::stylegraph_plugin_entry,
        Path::new("<builtin>"),
    )
    .unwrap();
    let session = Session::new(Arc::new(host), SessionConfig::default());
    let r = session.run(&g, &RunOptions::default()).unwrap();
    assert_eq!(r.status, RunStatus::Finished, "{:?}", r.failed);
    let p = r
        .output("cnn", "scores")
        .and_then(Value::as_tensor)
        .unwrap()
        .to_f64_vec();
    // No crop in the graph: the torch reference logit of the uncropped image.
    let want = 1.0 / (1.0 + (-reference("crop0")).exp());
    assert!((p[0] - want).abs() < 1e-5, "{} vs {want}", p[0]);
    // Without labels the measures are NaN.
    assert!(r
        .output("cnn", "auc")
        .and_then(Value::as_f64)
        .unwrap()
        .is_nan());
    assert!(dir.path().join("out/scores.csv").exists());
}
