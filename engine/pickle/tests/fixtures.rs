//! The fixture network pickles, written by NVIDIA's code, decode bit for bit: every `G_ema`
//! tensor matches the `G_ema.sha256` list (name, order, dtype, shape, bytes), and the
//! constructor arguments and layer attributes match `reference.json`.

use std::path::{Path, PathBuf};

use serde_json::Value as J;
use sha2::{Digest, Sha256};
use stylegraph_pickle::{read_network_pickle, Network, NetworkPickle, PickleError, TensorDType};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn test_data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

/// `(sha256, name, dtype, shape)` per line of a `.sha256` list.
fn sha_list(path: &Path) -> Vec<(String, String, String, Vec<usize>)> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let mut parts = l.split("  ");
            let sha = parts.next().unwrap().to_string();
            let name = parts.next().unwrap().to_string();
            let dtype = parts.next().unwrap().to_string();
            let shape: Vec<usize> = serde_json::from_str(parts.next().unwrap()).unwrap();
            (sha, name, dtype, shape)
        })
        .collect()
}

fn hex_sha256(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Every tensor, in order, against the sha256 list of the fixture folder, and the shapes
/// against the `state_dict` table of its `reference.json`.
fn assert_matches_fixture(net: &Network, folder: &str) {
    let expected = sha_list(&fixtures().join(folder).join("G_ema.sha256"));
    assert!(!expected.is_empty());
    let got: Vec<&str> = net.tensors.iter().map(|t| t.name.as_str()).collect();
    let want: Vec<&str> = expected.iter().map(|e| e.1.as_str()).collect();
    assert_eq!(got, want, "state-dict names and order");
    for (t, (sha, name, dtype, shape)) in net.tensors.iter().zip(&expected) {
        assert_eq!(t.dtype.name(), dtype, "{name}: dtype");
        // The sha256 lists write the shape of 0-d tensors (magnitude_ema, noise_strength) as
        // [1]; reference.json (checked below) has the true shape [].
        if !(t.shape.is_empty() && shape == &[1]) {
            assert_eq!(&t.shape, shape, "{name}: shape");
        }
        assert_eq!(t.data.len(), t.numel() * t.dtype.size(), "{name}: size");
        assert_eq!(&hex_sha256(&t.data), sha, "{name}: bytes");
    }
    let table = reference(folder)["state_dict"].clone();
    let table = table.as_array().unwrap();
    assert_eq!(table.len(), net.tensors.len());
    for (t, row) in net.tensors.iter().zip(table) {
        assert_eq!(row["name"].as_str(), Some(t.name.as_str()));
        assert_eq!(row["dtype"].as_str(), Some(t.dtype.name()));
        let shape: Vec<usize> = serde_json::from_value(row["shape"].clone()).unwrap();
        assert_eq!(t.shape, shape, "{}: shape", t.name);
    }
}

fn reference(folder: &str) -> J {
    let text = std::fs::read_to_string(fixtures().join(folder).join("reference.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// `init_kwargs` has every constructor argument of `reference.json` (`G_kwargs` without
/// class_name, plus `common_kwargs`) with the same value, and the class name matches.
fn assert_kwargs(net: &Network, reference: &J, which: &str) {
    let kwargs = &reference[which];
    let class = kwargs["class_name"].as_str().unwrap();
    assert!(
        class.ends_with(&format!(".{}", net.class_name)),
        "{class} vs {}",
        net.class_name
    );
    let mut expected: Vec<(&String, &J)> = kwargs
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| *k != "class_name")
        .collect();
    expected.extend(reference["common_kwargs"].as_object().unwrap().iter());
    for (k, v) in expected {
        assert_eq!(&net.init_kwargs[k.as_str()], v, "{which}.{k}");
    }
}

fn read(folder: &str, file: &str) -> NetworkPickle {
    read_network_pickle(fixtures().join(folder).join(file)).unwrap()
}

fn check_snapshot(folder: &str, file: &str) -> Network {
    let p = read(folder, file);
    assert_eq!(p.networks(), vec!["G", "D", "G_ema"]);
    assert_eq!(
        p.keys(),
        vec!["G", "D", "G_ema", "augment_pipe", "training_set_kwargs"]
    );
    let r = reference(folder);
    let g_ema = p.network("G_ema").unwrap();
    assert_matches_fixture(&g_ema, folder);
    assert_kwargs(&g_ema, &r, "G_kwargs");
    // G holds the same architecture (other weights in a real snapshot; the same here).
    let g = p.network("G").unwrap();
    assert_eq!(
        g.tensors
            .iter()
            .map(|t| (&t.name, &t.shape))
            .collect::<Vec<_>>(),
        g_ema
            .tensors
            .iter()
            .map(|t| (&t.name, &t.shape))
            .collect::<Vec<_>>()
    );
    let d = p.network("D").unwrap();
    assert_eq!(d.class_name, "Discriminator");
    assert_kwargs(&d, &r, "D_kwargs");
    assert!(d.tensors.iter().any(|t| t.name == "b16.fromrgb.weight"));
    let ts = p.value("training_set_kwargs").unwrap();
    assert_eq!(ts.get("resolution").and_then(|v| v.as_i64()), Some(16));
    g_ema
}

/// Whether two floats are at most `ulps` representable values apart.
fn within_ulps(a: f64, b: f64, ulps: u64) -> bool {
    a == b || (a.signum() == b.signum() && a.to_bits().abs_diff(b.to_bits()) <= ulps)
}

/// The layer attributes recorded in the pickle (NumPy arrays, NumPy float64 / bool scalars,
/// lists) agree with the layer table of `reference.json`. That table was computed with
/// numpy 2; `ulps` allows for files written with numpy 1.26, whose cutoffs differ in the
/// last bit (the pickled bytes themselves differ, e.g. L8 `out_cutoff`), and by two or three
/// ulps in the half widths derived from them.
fn assert_sg3_layers(net: &Network, reference: &J, ulps: u64) {
    let layers = reference["layers"]["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 15);
    for layer in layers {
        let name = layer["name"].as_str().unwrap();
        let m = net
            .module(&format!("synthesis.{name}"))
            .unwrap_or_else(|| panic!("module synthesis.{name}"));
        assert_eq!(m.class_name, "SynthesisLayer");
        for key in [
            "is_torgb",
            "is_critically_sampled",
            "use_fp16",
            "in_channels",
            "out_channels",
            "in_size",
            "out_size",
            "in_sampling_rate",
            "out_sampling_rate",
            "tmp_sampling_rate",
            "in_cutoff",
            "out_cutoff",
            "in_half_width",
            "out_half_width",
            "conv_kernel",
            "up_factor",
            "down_factor",
            "up_taps",
            "down_taps",
            "down_radial",
            "padding",
            "conv_clamp",
            "magnitude_ema_beta",
        ] {
            let got = &m.attributes[key];
            let want = &layer[key];
            // JSON written by Python keeps 36.0 as a float; compare numbers by value.
            match (got.as_f64(), want.as_f64()) {
                (Some(a), Some(b)) => assert!(within_ulps(a, b, ulps), "{name}.{key}: {a} vs {b}"),
                _ => assert_eq!(got, want, "{name}.{key}"),
            }
        }
    }
    let input = net.module("synthesis.input").unwrap();
    assert_eq!(input.attributes["size"], serde_json::json!([36, 36]));
    assert_eq!(input.attributes["sampling_rate"].as_f64(), Some(16.0));
    assert_eq!(net.modules[0].path, "");
    assert_eq!(net.modules[0].class_name, "Generator");
}

#[test]
fn stylegan3_t_snapshot_torch2_numpy2() {
    let g = check_snapshot("stylegan3-t-tiny-16", "network-snapshot-nosrc.pkl");
    assert_sg3_layers(&g, &reference("stylegan3-t-tiny-16"), 0);
}

#[test]
fn stylegan3_t_snapshot_oldstyle() {
    let g = check_snapshot("stylegan3-t-tiny-16", "network-snapshot-oldstyle-nosrc.pkl");
    assert_sg3_layers(&g, &reference("stylegan3-t-tiny-16"), 4);
}

#[test]
fn stylegan2_snapshot() {
    let g = check_snapshot("stylegan2-tiny-16", "network-snapshot-nosrc.pkl");
    let r = reference("stylegan2-tiny-16");
    for block in r["layers"]["blocks"].as_array().unwrap() {
        let name = block["name"].as_str().unwrap();
        let m = g.module(&format!("synthesis.{name}")).unwrap();
        assert_eq!(m.class_name, "SynthesisBlock");
        for key in [
            "resolution",
            "in_channels",
            "architecture",
            "use_fp16",
            "num_conv",
            "num_torgb",
            "is_last",
        ] {
            let (got, want) = (&m.attributes[key], &block[key]);
            match (got.as_f64(), want.as_f64()) {
                (Some(a), Some(b)) => assert_eq!(a, b, "{name}.{key}"),
                _ => assert_eq!(got, want, "{name}.{key}"),
            }
        }
    }
}

/// The released StyleGAN2-ADA files are protocol 3 (GLOBAL, BINPUT, no FRAME); this one was
/// made from the old-style SG3 fixture by `tests/data/make_protocol3.py`.
#[test]
fn protocol3_pickle() {
    let path = test_data().join("stylegan3-t-tiny-16-G_ema-protocol3.pkl");
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(&bytes[..2], b"\x80\x03", "protocol 3");
    let p = NetworkPickle::from_bytes(bytes, "protocol3.pkl").unwrap();
    assert_eq!(p.networks(), vec!["G_ema"]);
    let g = p.network("G_ema").unwrap();
    assert_matches_fixture(&g, "stylegan3-t-tiny-16");
    let r = reference("stylegan3-t-tiny-16");
    assert_kwargs(&g, &r, "G_kwargs");
    // Made from the old-style (numpy 1.26) file.
    assert_sg3_layers(&g, &r, 4);
}

#[test]
fn tensor_f32_and_missing_names() {
    let p = read("stylegan3-t-tiny-16", "network-snapshot-nosrc.pkl");
    let g = p.network("G_ema").unwrap();
    let t = g.tensor("synthesis.input.transform").unwrap();
    let (shape, values) = g.tensor_f32("synthesis.input.transform").unwrap();
    assert_eq!(shape, vec![3, 3]);
    let from_bytes: Vec<f32> = t
        .data
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(values, from_bytes);
    assert_eq!(t.dtype, TensorDType::F32);
    assert!(matches!(
        g.tensor_f32("no.such.tensor"),
        Err(PickleError::Missing { .. })
    ));
    match p.network("Gs") {
        Err(e @ PickleError::Missing { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("'Gs'") && msg.contains("G, D, G_ema"), "{msg}");
        }
        other => panic!("expected a missing-network error, got {other:?}"),
    }
    assert!(matches!(
        p.network("training_set_kwargs"),
        Err(PickleError::Structure { .. })
    ));
}

#[test]
fn zip_given_to_network_reader_is_explained() {
    let e = read_network_pickle(test_data().join("detector-tiny.pt"))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("zip archive"), "{e}");
    let e = read_network_pickle(test_data().join("detector-tiny-legacy.pt"))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("torch.save checkpoint (legacy format)"), "{e}");
    let e = NetworkPickle::from_bytes(Vec::new(), "empty.pkl")
        .err()
        .unwrap()
        .to_string();
    assert_eq!(e, "empty.pkl: empty file");
}
