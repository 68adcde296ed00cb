mod common;

use common::*;
use stylegraph_kernels::sg3::{user_transform, Sg3Config, Sg3Input};

#[test]
fn user_transform_matches_gen_images() {
    for net in ["stylegan3-t-mid-64", "stylegan3-r-tiny-16"] {
        // The buffer as written (f32) and the f64 inverse listed in reference.json.
        let stored = npy_f32(net, "seed0000_psi1_tr0.3_1_rot10_transform.npy");
        let reference = reference_json(net);
        let case = reference["cases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["kind"] == "transform")
            .unwrap();
        assert_eq!(case["translate"], serde_json::json!([0.3, 1.0]));
        assert_eq!(case["rotate"], serde_json::json!(10.0));
        let inverse: Vec<f64> = case["inverse_matrix_in_buffer"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()))
            .collect();
        let ours = user_transform((0.3, 1.0), 10.0);
        let flat: Vec<f64> = ours.iter().flatten().copied().collect();
        for ((a, b), s) in flat.iter().zip(&inverse).zip(&stored) {
            assert!((a - b).abs() <= 4e-16, "{flat:?} vs {inverse:?}");
            assert_eq!(*a as f32, *s);
        }
    }
}

#[test]
fn input_layer_matches() {
    for net in [
        "stylegan3-t-mid-64",
        "stylegan3-r-mid-64",
        "stylegan3-r-tiny-16",
    ] {
        let map = load_tensors(net);
        let sched = Sg3Config::from_tensors(&map).unwrap().schedule().unwrap();
        let input = Sg3Input::from_tensors(&map, &sched.input, 512).unwrap();
        let acts = npz(net, "seed0000_psi1_activations_ch0-3.npz");
        let ws = npy_f32(net, "seed0000_psi1_ws.npy");
        let t = input.affine_one(&ws[..512]);
        let exp_t = acts["synthesis.input.affine"].to_f32().unwrap();
        eprintln!("{net} affine err {:e}", max_abs_diff(&t, &exp_t));
    }
}
