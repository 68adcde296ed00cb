//! Parity of the StyleGAN2 synthesis network with the official implementation, on the
//! committed reference fixtures (`tests/fixtures/stylegan2-*`, see their README).
//!
//! Nets: `stylegan2-mid-64` (`G_ema.safetensors`) and `stylegan2-tiny-16` (a network pickle
//! only, read by `stylegraph-pickle`); both record every layer on all channels.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::{fixture_dir, max_abs_diff};

use stylegraph_kernels::sg2::{state_dict_entries, Sg2Config, Sg2Synthesis};
use stylegraph_kernels::{Features, NoControl, NoiseMode, TensorMap};
use stylegraph_npy::Array;

/// Final-image tolerance (max abs error). The fixtures README measures 1.7e-6 between two
/// torch versions; 1e-4 is the required bound, we hold the implementation to a tighter one.
const IMG_TOL: f32 = 1e-5;
/// Per-layer tolerance, relative to the layer's largest magnitude (activations reach ~10).
const LAYER_REL_TOL: f32 = 2e-6;

fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn read_f32(path: &Path) -> (Vec<usize>, Vec<f32>) {
    let a = Array::read(path).unwrap_or_else(|e| panic!("{e}"));
    let v = a
        .to_f32()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (a.shape, v)
}

/// Generator kwargs as the pickle's `_init_kwargs` would hold them: `G_kwargs` (minus the
/// class name) merged with `common_kwargs`.
fn generator_kwargs(reference: &serde_json::Value) -> serde_json::Value {
    let mut kw = reference["G_kwargs"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    kw.remove("class_name");
    if let Some(common) = reference["common_kwargs"].as_object() {
        for (k, v) in common {
            kw.insert(k.clone(), v.clone());
        }
    }
    serde_json::Value::Object(kw)
}

/// A fixture network: the reference data plus the synthesis network built from a tensor map.
struct Fixture {
    dir: PathBuf,
    reference: serde_json::Value,
    cfg: Sg2Config,
    net: Sg2Synthesis,
}

impl Fixture {
    fn load(name: &str, map: &TensorMap) -> Fixture {
        let dir = fixture_dir(name);
        let reference = read_json(&dir.join("reference.json"));
        let cfg = Sg2Config::from_json_and_tensors(&generator_kwargs(&reference), map)
            .unwrap_or_else(|e| panic!("{name}: config: {e}"));
        let net =
            Sg2Synthesis::from_tensors(map, &cfg).unwrap_or_else(|e| panic!("{name}: build: {e}"));
        Fixture {
            dir,
            reference,
            cfg,
            net,
        }
    }

    fn case(&self, file: &str) -> (Vec<usize>, Vec<f32>) {
        read_f32(&self.dir.join("cases").join(file))
    }

    /// Runs `ws` (`[1, num_ws, w_dim]` file) through the whole network.
    fn image(&self, ws_file: &str, noise: NoiseMode) -> Vec<f32> {
        let (shape, ws) = self.case(ws_file);
        assert_eq!(shape, [1, self.net.num_ws(), self.net.w_dim()], "{ws_file}");
        self.net
            .forward(&ws, 1, noise, &NoControl)
            .unwrap_or_else(|e| panic!("{ws_file}: {e}"))
    }
}

fn mid64() -> Fixture {
    let map = TensorMap::from_safetensors_file(
        &fixture_dir("stylegan2-mid-64").join("G_ema.safetensors"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    Fixture::load("stylegan2-mid-64", &map)
}

/// The 16 px net ships only as a training-snapshot pickle: its `G_ema` tensors come through
/// our pickle reader, so these checks also cover that path end to end.
fn tiny16() -> Fixture {
    let map = common::load_pickle_tensors("stylegan2-tiny-16", "network-snapshot-nosrc.pkl");
    Fixture::load("stylegan2-tiny-16", &map)
}

fn max_abs(a: &[f32]) -> f32 {
    a.iter().map(|v| v.abs()).fold(0.0, f32::max)
}

/// The official image conversion: `clamp(x * 127.5 + 128, 0, 255)` in f32, truncated, HWC.
fn to_u8_hwc(img: &[f32], c: usize, h: usize, w: usize) -> Vec<u8> {
    let mut out = vec![0u8; h * w * c];
    for ch in 0..c {
        for y in 0..h {
            for x in 0..w {
                let v = (img[(ch * h + y) * w + x] * 127.5 + 128.0).clamp(0.0, 255.0);
                out[(y * w + x) * c + ch] = v as u8;
            }
        }
    }
    out
}

/// Compares one final image with its reference; returns the max abs error.
fn check_image(fx: &Fixture, tag: &str, got: &[f32]) -> f32 {
    let (shape, want) = fx.case(&format!("{tag}_img.npy"));
    let res = fx.net.resolution();
    assert_eq!(shape, [1, 3, res, res], "{tag}");
    let err = max_abs_diff(got, &want);
    eprintln!("{tag}: final image max abs error {err:.3e}");
    assert!(
        err <= IMG_TOL,
        "{tag}: image max abs error {err:e} > {IMG_TOL:e}"
    );
    err
}

fn check_u8(fx: &Fixture, tag: &str, got: &[f32]) {
    let res = fx.net.resolution();
    let a = Array::read(&fx.dir.join("cases").join(format!("{tag}_u8.npy")))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(a.shape, [res, res, 3]);
    let want = &a.data;
    let ours = to_u8_hwc(got, 3, res, res);
    let mut differ = 0;
    for (o, w) in ours.iter().zip(want.iter()) {
        let d = (*o as i32 - *w as i32).abs();
        assert!(d <= 1, "{tag}: uint8 value off by {d}");
        if d != 0 {
            differ += 1;
        }
    }
    eprintln!(
        "{tag}: {differ} of {} uint8 values differ (by 1)",
        ours.len()
    );
    assert!(
        differ * 1000 <= ours.len(),
        "{tag}: {differ} of {} uint8 values differ",
        ours.len()
    );
}

/// The constructor arguments read from `reference.json`, the state-dict names and shapes, and
/// the block structure all match the reference.
fn check_config_and_layout(fx: &Fixture) {
    let kw = generator_kwargs(&fx.reference);
    let num = |v: &serde_json::Value| v.as_u64().expect("integer") as usize;
    assert_eq!(fx.cfg.img_resolution, num(&kw["img_resolution"]));
    assert_eq!(fx.cfg.img_resolution, num(&fx.reference["img_resolution"]));
    assert_eq!(fx.cfg.channel_base, num(&kw["channel_base"]));
    assert_eq!(fx.cfg.channel_max, num(&kw["channel_max"]));
    // Every recorded block has the same clamp (the official default of 256 for these nets).
    for b in fx.reference["layers"]["blocks"].as_array().expect("blocks") {
        let clamp = b["conv_clamp"].as_f64().expect("conv_clamp") as f32;
        assert_eq!(fx.cfg.conv_clamp, Some(clamp));
    }
    assert_eq!(fx.net.num_ws(), num(&fx.reference["num_ws"]));
    let entries = state_dict_entries(&fx.cfg).unwrap_or_else(|e| panic!("{e}"));
    let want: Vec<(String, Vec<usize>)> = fx.reference["state_dict"]
        .as_array()
        .expect("state_dict list")
        .iter()
        .map(|e| {
            let name = e["name"].as_str().expect("name").to_owned();
            let shape = e["shape"]
                .as_array()
                .expect("shape")
                .iter()
                .map(num)
                .collect();
            (name, shape)
        })
        .collect();
    let got: Vec<(String, Vec<usize>)> = entries.into_iter().map(|e| (e.name, e.shape)).collect();
    assert_eq!(got, want);
    let blocks: Vec<String> = fx.reference["layers"]["blocks"]
        .as_array()
        .expect("blocks")
        .iter()
        .map(|b| b["name"].as_str().expect("name").to_owned())
        .collect();
    assert_eq!(fx.net.block_names(), blocks);
}

/// Runs the blocks one by one on seed 0's latents and compares every recorded activation
/// (conv0/conv1/torgb/out0/out1 of every block) with the reference.
fn check_every_layer(fx: &Fixture) {
    let npz = stylegraph_npy::read_npz(&fx.dir.join("cases/seed0000_psi1_activations.npz"))
        .unwrap_or_else(|e| panic!("{e}"));
    let (_, ws) = fx.case("seed0000_psi1_ws.npy");
    let mut taps: BTreeMap<String, Features> = BTreeMap::new();
    let mut x: Option<Features> = None;
    let mut img: Option<Features> = None;
    for (bi, name) in fx.net.block_names().iter().enumerate() {
        let (nx, nimg) = fx
            .net
            .block_forward_ext(
                bi,
                x.as_ref(),
                img.as_ref(),
                &ws,
                1,
                NoiseMode::Const,
                &NoControl,
                &mut |layer, f| {
                    taps.insert(layer.to_owned(), f.clone());
                },
            )
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        taps.insert(format!("synthesis.{name}.out0"), nx.clone());
        taps.insert(format!("synthesis.{name}.out1"), nimg.clone());
        x = Some(nx);
        img = Some(nimg);
    }
    let mut checked = 0;
    for (name, arr) in &npz {
        if !name.starts_with("synthesis.") {
            continue;
        }
        let want = arr.to_f32().unwrap_or_else(|e| panic!("{name}: {e}"));
        let got = taps
            .get(name)
            .unwrap_or_else(|| panic!("no output for recorded activation {name}"));
        assert_eq!(got.shape().to_vec(), arr.shape, "{name}");
        let err = max_abs_diff(&got.data, &want);
        let scale = max_abs(&want).max(1.0);
        eprintln!(
            "{name}: max abs error {err:.3e} (max |value| {:.3})",
            max_abs(&want)
        );
        assert!(
            err <= LAYER_REL_TOL * scale,
            "{name}: max abs error {err:e}"
        );
        checked += 1;
    }
    // conv0/conv1/torgb/out0/out1 of every block but the first (no conv0).
    assert_eq!(checked, 5 * fx.net.block_names().len() - 1);
}

/// Whole-network images (const noise) for both seeds at psi 1 and 0.7, as floats and as the
/// official uint8 conversion.
fn check_final_images(fx: &Fixture) {
    for tag in [
        "seed0000_psi1",
        "seed0000_psi0.7",
        "seed0001_psi1",
        "seed0001_psi0.7",
    ] {
        let got = fx.image(&format!("{tag}_ws.npy"), NoiseMode::Const);
        check_image(fx, tag, &got);
        check_u8(fx, tag, &got);
    }
}

/// `noise_mode='none'` images, and the const noise really contributes.
fn check_noise_mode_none(fx: &Fixture) {
    for seed in ["seed0000", "seed0001"] {
        let got = fx.image(&format!("{seed}_psi1_ws.npy"), NoiseMode::None);
        check_image(fx, &format!("{seed}_psi1_noisenone"), &got);
        let with_noise = fx.image(&format!("{seed}_psi1_ws.npy"), NoiseMode::Const);
        assert!(max_abs_diff(&got, &with_noise) > 1e-3);
    }
}

/// The style-mixing case (different latents per layer).
fn check_style_mixing(fx: &Fixture) {
    let got = fx.image("mix_r85_c55_ws.npy", NoiseMode::Const);
    check_image(fx, "mix_r85_c55", &got);
}

#[test]
fn mid64_config_and_state_dict_layout_match_the_reference() {
    check_config_and_layout(&mid64());
}

#[test]
fn mid64_every_layer_matches_the_recorded_activations() {
    check_every_layer(&mid64());
}

#[test]
fn mid64_final_images_match_for_both_seeds_and_psi() {
    check_final_images(&mid64());
}

#[test]
fn mid64_noise_mode_none_matches() {
    check_noise_mode_none(&mid64());
}

#[test]
fn mid64_style_mixing_case_matches() {
    check_style_mixing(&mid64());
}

#[test]
fn tiny16_config_and_state_dict_layout_match_the_reference() {
    check_config_and_layout(&tiny16());
}

#[test]
fn tiny16_every_layer_matches_the_recorded_activations() {
    check_every_layer(&tiny16());
}

#[test]
fn tiny16_final_images_match_for_both_seeds_and_psi() {
    check_final_images(&tiny16());
}

#[test]
fn tiny16_noise_mode_none_matches() {
    check_noise_mode_none(&tiny16());
}

#[test]
fn tiny16_style_mixing_case_matches() {
    check_style_mixing(&tiny16());
}

/// Chains `block_forward` over all blocks for a batch.
fn chain_blocks(net: &Sg2Synthesis, ws: &[f32], n: usize, noise: NoiseMode) -> Vec<f32> {
    let mut x: Option<Features> = None;
    let mut img: Option<Features> = None;
    for bi in 0..net.block_names().len() {
        let (nx, nimg) = net
            .block_forward(bi, x.as_ref(), img.as_ref(), ws, n, noise)
            .unwrap_or_else(|e| panic!("block {bi}: {e}"));
        x = Some(nx);
        img = Some(nimg);
    }
    img.expect("image").data
}

#[test]
fn block_chain_equals_whole_network_for_a_batch() {
    let fx = mid64();
    let (_, ws0) = fx.case("seed0000_psi1_ws.npy");
    let (_, ws1) = fx.case("seed0001_psi0.7_ws.npy");
    let ws: Vec<f32> = ws0.iter().chain(&ws1).copied().collect();
    for noise in [
        NoiseMode::Const,
        NoiseMode::None,
        NoiseMode::Random { seed: 7 },
    ] {
        let whole = fx.net.forward(&ws, 2, noise, &NoControl).expect("forward");
        let chained = chain_blocks(&fx.net, &ws, 2, noise);
        assert_eq!(whole, chained, "{noise:?}");
    }
    // Batched samples equal single-sample runs.
    let single = fx.image("seed0001_psi0.7_ws.npy", NoiseMode::Const);
    let whole = fx
        .net
        .forward(&ws, 2, NoiseMode::Const, &NoControl)
        .expect("forward");
    assert_eq!(&whole[single.len()..], &single[..]);
}

#[test]
fn random_noise_is_seeded_and_matters() {
    let fx = mid64();
    let (_, ws) = fx.case("seed0000_psi1_ws.npy");
    let run = |noise| fx.net.forward(&ws, 1, noise, &NoControl).expect("forward");
    let a = run(NoiseMode::Random { seed: 1 });
    let b = run(NoiseMode::Random { seed: 1 });
    let c = run(NoiseMode::Random { seed: 2 });
    let none = run(NoiseMode::None);
    assert_eq!(a, b, "same seed, same image");
    assert!(max_abs_diff(&a, &c) > 1e-3, "different seeds differ");
    assert!(max_abs_diff(&a, &none) > 1e-3, "noise has an effect");
}

#[test]
fn bad_inputs_are_errors() {
    let fx = mid64();
    let (_, ws) = fx.case("seed0000_psi1_ws.npy");
    assert!(fx
        .net
        .forward(&ws[1..], 1, NoiseMode::Const, &NoControl)
        .is_err());
    assert!(fx
        .net
        .block_forward(99, None, None, &ws, 1, NoiseMode::Const)
        .is_err());
    // Block 1 needs the features and image of block 0.
    assert!(fx
        .net
        .block_forward(1, None, None, &ws, 1, NoiseMode::Const)
        .is_err());
    let wrong = Features::zeros(1, 7, 4, 4);
    assert!(fx
        .net
        .block_forward(1, Some(&wrong), Some(&wrong), &ws, 1, NoiseMode::Const)
        .is_err());
}

#[test]
fn cancellation_stops_the_forward_pass() {
    struct Cancelled;
    impl stylegraph_kernels::Control for Cancelled {
        fn is_cancelled(&self) -> bool {
            true
        }
    }
    let fx = mid64();
    let (_, ws) = fx.case("seed0000_psi1_ws.npy");
    let r = fx.net.forward(&ws, 1, NoiseMode::Const, &Cancelled);
    assert!(matches!(r, Err(stylegraph_kernels::ModelError::Cancelled)));
}
