//! Fixture helpers shared by the parity tests (the reference data under `tests/fixtures/`).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use stylegraph_kernels::TensorMap;
use stylegraph_npy::Array;

/// `tests/fixtures/<name>` in the repository.
pub fn fixture_dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

/// `G_ema` of a fixture net: from `G_ema.safetensors`, or, for the nets that ship only as a
/// network pickle, read from `network-snapshot-nosrc.pkl` by our pickle reader.
pub fn load_tensors(name: &str) -> TensorMap {
    let path = fixture_dir(name).join("G_ema.safetensors");
    if path.exists() {
        return TensorMap::from_safetensors_file(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
    load_pickle_tensors(name, "network-snapshot-nosrc.pkl")
}

/// `G_ema` of a fixture network pickle.
pub fn load_pickle_tensors(name: &str, file: &str) -> TensorMap {
    let path = fixture_dir(name).join(file);
    let pickle = stylegraph_pickle::read_network_pickle(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let net = pickle.network("G_ema").unwrap_or_else(|e| panic!("{e}"));
    let mut map = TensorMap::new();
    for t in &net.tensors {
        let data = t
            .to_f32()
            .unwrap_or_else(|| panic!("{}: not float", t.name));
        map.insert(t.name.clone(), t.shape.clone(), data);
    }
    map
}

pub fn reference_json(name: &str) -> serde_json::Value {
    let path = fixture_dir(name).join("reference.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn npy(name: &str, case_file: &str) -> Array {
    let path = fixture_dir(name).join("cases").join(case_file);
    Array::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn npy_f32(name: &str, case_file: &str) -> Vec<f32> {
    npy(name, case_file).to_f32().expect("f32 array")
}

pub fn npy_f64(name: &str, case_file: &str) -> Vec<f64> {
    npy(name, case_file).to_f64().expect("f64 array")
}

pub fn npz(name: &str, case_file: &str) -> BTreeMap<String, Array> {
    let path = fixture_dir(name).join("cases").join(case_file);
    stylegraph_npy::read_npz(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Largest absolute difference (panics on a length mismatch).
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// A small seeded SG3 network of the official structure (64 px, at most 64 channels) and its
/// mapping network, for tests of the synthesis' call behaviour.
pub struct SmallSg3 {
    pub synthesis: stylegraph_kernels::sg3::Sg3Synthesis,
    mapping: stylegraph_kernels::MappingNetwork,
    z_dim: usize,
}

impl SmallSg3 {
    pub fn new(kind: stylegraph_kernels::sg3::Sg3Kind, seed: u32) -> SmallSg3 {
        use stylegraph_kernels::default_init::{sg3_state_dict, InitTuning};
        let cfg = stylegraph_kernels::sg3::Sg3Config {
            img_resolution: 64,
            channel_base: 2048.0,
            channel_max: 64.0,
            ..stylegraph_kernels::sg3::Sg3Config::official(kind, 64)
        };
        let map = sg3_state_dict(&cfg, seed, &InitTuning::official()).unwrap();
        SmallSg3 {
            synthesis: stylegraph_kernels::sg3::Sg3Synthesis::from_tensors(&map, &cfg).unwrap(),
            mapping: stylegraph_kernels::MappingNetwork::from_tensors(&map, &cfg.mapping_config())
                .unwrap(),
            z_dim: cfg.z_dim,
        }
    }

    /// The ws `[1, num_ws, w_dim]` of the latent of `seed`.
    pub fn ws(&self, seed: u32) -> Vec<f32> {
        let z = stylegraph_rng::z_from_seed(seed, self.z_dim);
        self.mapping.map(&z, None, 1, 1.0, None).unwrap()
    }
}
