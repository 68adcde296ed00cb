//! Mapping network + truncation against the official outputs (`seedNNNN_psiP_ws.npy`).

mod common;

use common::*;
use stylegraph_kernels::mapping::{MappingConfig, MappingNetwork};

const NETS: [&str; 4] = [
    "stylegan3-t-mid-64",
    "stylegan3-r-mid-64",
    "stylegan3-r-tiny-16",
    "stylegan2-mid-64",
    // stylegan3-t-tiny-16 and stylegan2-tiny-16 ship as pickles only (see sg3_parity.rs hook).
];

fn check(net: &str) -> f32 {
    let map = load_tensors(net);
    let reference = reference_json(net);
    let num_ws = reference["num_ws"].as_u64().expect("num_ws") as usize;
    let cfg = MappingConfig::infer(&map, num_ws).expect("infer mapping config");
    let expected_layers = if net.starts_with("stylegan2") { 8 } else { 2 };
    assert_eq!(cfg.num_layers, expected_layers);
    assert_eq!((cfg.z_dim, cfg.c_dim, cfg.w_dim), (512, 0, 512));
    let mapping = MappingNetwork::from_tensors(&map, &cfg).expect("build mapping");
    let mut worst = 0.0f32;
    for seed in [0u32, 1] {
        let z = npy_f64(net, &format!("seed{seed:04}_z.npy"));
        // z from the fixture is exactly what our NumPy-compatible RNG produces.
        assert_eq!(z, stylegraph_rng::z_from_seed(seed, 512));
        for (psi, tag) in [(1.0f32, "1"), (0.7, "0.7")] {
            let expected = npy_f32(net, &format!("seed{seed:04}_psi{tag}_ws.npy"));
            let ws = mapping.map(&z, None, 1, psi, None).expect("map");
            let err = max_abs_diff(&ws, &expected);
            worst = worst.max(err);
            // A few f32 ulp of the largest value: upstream's BLAS sums in a different order
            // (our dot products are accumulated in f64 and rounded once).
            let scale = expected.iter().fold(1.0f32, |m, v| m.max(v.abs()));
            assert!(
                err <= 1e-6 * scale,
                "{net} seed {seed} psi {psi}: max abs error {err}"
            );
        }
    }
    worst
}

#[test]
fn mapping_and_truncation_match_official() {
    for net in NETS {
        let err = check(net);
        eprintln!("{net}: mapping max abs error {err:e}");
    }
}

#[test]
fn truncation_cutoff_only_touches_leading_rows() {
    let net = "stylegan3-t-mid-64";
    let map = load_tensors(net);
    let cfg = MappingConfig::infer(&map, 16).unwrap();
    let mapping = MappingNetwork::from_tensors(&map, &cfg).unwrap();
    let z = stylegraph_rng::z_from_seed(0, 512);
    let full = mapping.map(&z, None, 1, 1.0, None).unwrap();
    let cut = mapping.map(&z, None, 1, 0.7, Some(5)).unwrap();
    let all = mapping.map(&z, None, 1, 0.7, None).unwrap();
    assert_ne!(&all[..512], &full[..512]);
    assert_eq!(&cut[..5 * 512], &all[..5 * 512]);
    assert_eq!(&cut[5 * 512..], &full[5 * 512..]);
}

#[test]
fn truncation_is_bit_exact_on_official_w() {
    // Feeding the official psi=1 ws through our truncation must give the official psi=0.7 ws
    // bit for bit (this pins the two-sided lerp formula).
    for net in NETS {
        let map = load_tensors(net);
        let cfg = MappingConfig::infer(
            &map,
            reference_json(net)["num_ws"].as_u64().unwrap() as usize,
        )
        .unwrap();
        let mapping = MappingNetwork::from_tensors(&map, &cfg).unwrap();
        for seed in [0u32, 1] {
            let mut ws = npy_f32(net, &format!("seed{seed:04}_psi1_ws.npy"));
            let expected = npy_f32(net, &format!("seed{seed:04}_psi0.7_ws.npy"));
            mapping.truncate(&mut ws, 0.7, None).unwrap();
            let mismatches = ws
                .iter()
                .zip(&expected)
                .filter(|(a, b)| a.to_bits() != b.to_bits())
                .count();
            let mx = ws.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            eprintln!(
                "{net} seed {seed}: {mismatches} mismatches of {}, max |w| {mx}, err {:e}",
                ws.len(),
                max_abs_diff(&ws, &expected)
            );
            assert_eq!(mismatches, 0, "{net} seed {seed}");
        }
    }
}
