//! The latent operations against the reference fixtures (outputs of NVIDIA's official code)
//! and against SciPy's interpolation.

use std::path::{Path, PathBuf};
use stylegraph_npy::Array;
use stylegraph_plugin_latent::interp::{interpolate, InterpMode, InterpSpec};
use stylegraph_plugin_latent::math::{style_mix, truncate, Latents, MixLayout};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn read_latents(path: &Path) -> Latents {
    let a = Array::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let values = a.to_f32().expect("float32 latents");
    Latents::new(&a.shape, values, &path.display().to_string()).unwrap()
}

/// `mapping.w_avg` of a fixture network, from its safetensors file.
fn w_avg(net: &str) -> Vec<f32> {
    let path = fixtures().join(net).join("G_ema.safetensors");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let t = st.tensor("mapping.w_avg").unwrap();
    assert_eq!(t.dtype(), safetensors::Dtype::F32);
    t.data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// The networks whose weights are stored as safetensors (the others only as pickles).
const SAFETENSORS_NETS: [&str; 4] = [
    "stylegan3-r-tiny-16",
    "stylegan3-t-mid-64",
    "stylegan3-r-mid-64",
    "stylegan2-mid-64",
];

#[test]
fn truncation_matches_the_official_mapping_bit_for_bit() {
    // The fixtures' psi 0.7 latents are `w_avg.lerp(w, 0.7)` of the psi 1 latents, computed
    // by PyTorch in float32.
    for net in SAFETENSORS_NETS {
        let avg = w_avg(net);
        for seed in [0, 1] {
            let cases = fixtures().join(net).join("cases");
            let ws1 = read_latents(&cases.join(format!("seed{seed:04}_psi1_ws.npy")));
            let want = read_latents(&cases.join(format!("seed{seed:04}_psi0.7_ws.npy")));
            let got = truncate(&ws1, &avg, 0.7, None).unwrap();
            assert_eq!(got.shape(), want.shape());
            let mismatches = got
                .data
                .iter()
                .zip(&want.data)
                .filter(|(a, b)| a.to_bits() != b.to_bits())
                .count();
            assert_eq!(
                mismatches, 0,
                "{net} seed {seed}: {mismatches} values differ"
            );
            // psi 1 is the identity.
            assert_eq!(truncate(&ws1, &avg, 1.0, None).unwrap().data, ws1.data);
        }
    }
}

#[test]
fn style_mixing_composes_fixture_latents_by_hand() {
    // Official: w = w_row.clone(); w[col_styles] = w_col[col_styles] with col_styles 0-6.
    let cases = fixtures().join("stylegan3-t-tiny-16/cases");
    let row = read_latents(&cases.join("seed0000_psi1_ws.npy"));
    let col = read_latents(&cases.join("seed0001_psi1_ws.npy"));
    let (l, d) = (row.rows, row.dim);
    assert_eq!((l, d), (16, 512));
    let layers: Vec<usize> = (0..7).collect();
    let mixed = style_mix(&row, &col, &layers, MixLayout::Pairs).unwrap();
    for r in 0..l {
        let src = if r < 7 { &col } else { &row };
        assert_eq!(
            &mixed.data[r * d..(r + 1) * d],
            &src.data[r * d..(r + 1) * d],
            "layer {r}"
        );
    }
    // The official grid of 1 row x 1 column: [col, row, mix].
    let grid = style_mix(&row, &col, &layers, MixLayout::OfficialGrid).unwrap();
    assert_eq!(grid.n, 3);
    assert_eq!(grid.item(0), col.item(0));
    assert_eq!(grid.item(1), row.item(0));
    assert_eq!(grid.item(2), mixed.item(0));
}

#[test]
fn the_mix_fixture_has_the_official_structure() {
    // mix_r85_c55: seed 85's w with rows 0..6 replaced by seed 55's. The mapping broadcasts one
    // w to every row, so rows 0..6 are all seed 55's w and rows 7.. all seed 85's.
    for net in [
        "stylegan3-t-tiny-16",
        "stylegan3-r-tiny-16",
        "stylegan2-tiny-16",
        "stylegan3-t-mid-64",
        "stylegan3-r-mid-64",
        "stylegan2-mid-64",
    ] {
        let mix = read_latents(&fixtures().join(net).join("cases/mix_r85_c55_ws.npy"));
        let d = mix.dim;
        // The 16 px StyleGAN2 has only 6 layers: there every layer comes from seed 55.
        let mixed = mix.rows.min(7);
        let row = |r: usize| &mix.data[r * d..(r + 1) * d];
        for r in 1..mixed {
            assert_eq!(row(r), row(0), "{net}: layer {r} is not seed 55's w");
        }
        for r in mixed + 1..mix.rows {
            assert_eq!(row(r), row(mixed), "{net}: layer {r} is not seed 85's w");
        }
        if mixed < mix.rows {
            assert_ne!(
                row(0),
                row(mixed),
                "{net}: the two halves come from different seeds"
            );
        }
        // Mixing seed 85's broadcast w (from the rows after the mix; any stand-in where there
        // are none) with seed 55's over the mixed layers in our op gives the fixture exactly.
        let w85_row = if mixed < mix.rows {
            row(mixed).to_vec()
        } else {
            vec![0.5; d]
        };
        let w85 = Latents::new(&[1, mix.rows, d], w85_row.repeat(mix.rows), "w85").unwrap();
        let w55 = Latents::new(&[1, mix.rows, d], row(0).repeat(mix.rows), "w55").unwrap();
        let ours = style_mix(
            &w85,
            &w55,
            &(0..mixed).collect::<Vec<_>>(),
            MixLayout::Pairs,
        )
        .unwrap();
        assert_eq!(ours.data, mix.data, "{net}");
    }
}

#[test]
fn looping_cubic_matches_scipy() {
    // tests/data/cubic_loop_ref.npz was made by tests/data/gen_cubic_loop.py with SciPy's
    // interp1d(kind='cubic'), following the official gen_video.py (2 grid cells, 3
    // keyframes, wraps 2, 5 frames per keyframe).
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/cubic_loop_ref.npz");
    let arrays = stylegraph_npy::read_npz(&path).unwrap();
    let keys = &arrays["keys"];
    let want = arrays["frames"].to_f64().unwrap();
    let keys = Latents::new(&keys.shape, keys.to_f32().unwrap(), "keys").unwrap();
    let spec = InterpSpec {
        mode: InterpMode::Cubic,
        looped: true,
        frames_per_key: 5,
        wraps: 2,
        groups: 2,
    };
    let got = interpolate(&keys, &spec, 0, None).unwrap();
    assert_eq!(got.shape(), arrays["frames"].shape);
    let max = got
        .data
        .iter()
        .zip(&want)
        .map(|(&a, &b)| (a as f64 - b).abs())
        .fold(0.0, f64::max);
    // Our f64 spline rounded to f32 output: agreement to f32 precision.
    assert!(max < 1e-6, "max abs difference to SciPy: {max}");
}
