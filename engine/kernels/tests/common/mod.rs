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

pub fn load_tensors(name: &str) -> TensorMap {
    let path = fixture_dir(name).join("G_ema.safetensors");
    TensorMap::from_safetensors_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
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
