//! The fixture pickles, read by our pickle reader and run through the plugin's model path,
//! reproduce the official implementation's outputs (mapping, image, uint8 image), and a
//! converted safetensors file gives bit-identical results.

use std::path::{Path, PathBuf};
use stylegraph_kernels::{image_to_u8, NoControl, NoiseMode, SynthesisOptions};
use stylegraph_npy::Array;
use stylegraph_plugin_stylegan::model::{load_model, load_tensors, write_safetensors};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn npy(dir: &str, name: &str) -> Array {
    let p = fixtures().join(dir).join("cases").join(name);
    Array::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Checks mapping, image and uint8 image of seeds 0/1 at psi 1 and 0.7.
fn check_network(dir: &str, pkl: &str, noise: NoiseMode) -> f32 {
    let path = fixtures().join(dir).join(pkl);
    let m =
        load_model(path.to_str().expect("utf-8 path"), "G_ema").unwrap_or_else(|e| panic!("{e}"));
    let g = &m.generator;
    let mut worst = 0.0f32;
    for seed in [0, 1] {
        let z = npy(dir, &format!("seed{seed:04}_z.npy"))
            .to_f64()
            .expect("z");
        for psi in ["1", "0.7"] {
            let tag = format!("seed{seed:04}_psi{psi}");
            let ws = g
                .map(&z, None, 1, psi.parse().expect("psi"), None)
                .expect("mapping");
            let want_ws = npy(dir, &format!("{tag}_ws.npy")).to_f32().expect("ws");
            let d = max_abs_diff(&ws, &want_ws);
            assert!(d <= 1e-5, "{dir} {tag}: mapping differs by {d}");
            // Synthesis from the fixture's ws, so the image check is independent of the mapping.
            let opts = SynthesisOptions {
                noise,
                transform: None,
            };
            let img = g
                .synthesize(&want_ws, 1, &opts, &NoControl)
                .expect("synthesis");
            let want = npy(dir, &format!("{tag}_img.npy")).to_f32().expect("img");
            let d = max_abs_diff(&img, &want);
            worst = worst.max(d);
            assert!(d <= 1e-4, "{dir} {tag}: image differs by {d}");
            let r = g.resolution();
            let u8s = image_to_u8(&img, 1, 3, r, r);
            let want_u8 = npy(dir, &format!("{tag}_u8.npy")).data;
            let off: Vec<i32> = u8s
                .iter()
                .zip(&want_u8)
                .map(|(a, b)| *a as i32 - *b as i32)
                .collect();
            let differing = off.iter().filter(|d| **d != 0).count();
            assert!(
                off.iter().all(|d| d.abs() <= 1),
                "{dir} {tag}: a uint8 value is off by more than 1"
            );
            assert!(
                differing * 1000 <= u8s.len(),
                "{dir} {tag}: {differing} of {} uint8 values differ",
                u8s.len()
            );
        }
    }
    worst
}

#[test]
fn stylegan3_t_pickle_new_style_reproduces_the_fixtures() {
    let worst = check_network(
        "stylegan3-t-tiny-16",
        "network-snapshot-nosrc.pkl",
        NoiseMode::Const,
    );
    eprintln!("stylegan3-t-tiny-16 (new-style pickle): max image error {worst:e}");
}

#[test]
fn stylegan3_t_pickle_old_style_reproduces_the_fixtures() {
    let worst = check_network(
        "stylegan3-t-tiny-16",
        "network-snapshot-oldstyle-nosrc.pkl",
        NoiseMode::Const,
    );
    eprintln!("stylegan3-t-tiny-16 (old-style pickle): max image error {worst:e}");
}

#[test]
fn stylegan2_pickle_reproduces_the_fixtures_including_noise_none() {
    let dir = "stylegan2-tiny-16";
    let worst = check_network(dir, "network-snapshot-nosrc.pkl", NoiseMode::Const);
    eprintln!("stylegan2-tiny-16: max image error {worst:e}");
    let m = load_model(
        fixtures()
            .join(dir)
            .join("network-snapshot-nosrc.pkl")
            .to_str()
            .expect("utf-8"),
        "G_ema",
    )
    .expect("load");
    for seed in [0, 1] {
        let ws = npy(dir, &format!("seed{seed:04}_psi1_ws.npy"))
            .to_f32()
            .expect("ws");
        let opts = SynthesisOptions {
            noise: NoiseMode::None,
            transform: None,
        };
        let img = m
            .generator
            .synthesize(&ws, 1, &opts, &NoControl)
            .expect("synthesis");
        let want = npy(dir, &format!("seed{seed:04}_psi1_noisenone_img.npy"))
            .to_f32()
            .expect("img");
        let d = max_abs_diff(&img, &want);
        assert!(d <= 1e-4, "noise none, seed {seed}: {d}");
    }
}

#[test]
fn the_stylegan3_input_transform_matches_gen_images() {
    let dir = "stylegan3-t-tiny-16";
    let m = load_model(
        fixtures()
            .join(dir)
            .join("network-snapshot-nosrc.pkl")
            .to_str()
            .expect("utf-8"),
        "G_ema",
    )
    .expect("load");
    let ws = npy(dir, "seed0000_psi1_ws.npy").to_f32().expect("ws");
    let opts = SynthesisOptions {
        noise: NoiseMode::Const,
        transform: Some(stylegraph_kernels::sg3::user_transform((0.3, 1.0), 10.0)),
    };
    let img = m
        .generator
        .synthesize(&ws, 1, &opts, &NoControl)
        .expect("synthesis");
    let want = npy(dir, "seed0000_psi1_tr0.3_1_rot10_img.npy")
        .to_f32()
        .expect("img");
    let d = max_abs_diff(&img, &want);
    assert!(d <= 1e-4, "translate/rotate: {d}");
}

#[test]
fn the_generator_network_is_available_too() {
    let path = fixtures().join("stylegan3-t-tiny-16/network-snapshot-nosrc.pkl");
    let g = load_model(path.to_str().expect("utf-8"), "G").expect("G");
    let e = load_model(path.to_str().expect("utf-8"), "G_ema").expect("G_ema");
    assert_eq!(g.generator.num_ws(), e.generator.num_ws());
    assert_eq!(g.network, "G");
    // In this fixture G_ema is an unmodified copy of G (no training steps were taken), so the
    // two must have identical tensors.
    let (tg, _) = load_tensors(path.to_str().expect("utf-8"), "G").expect("G tensors");
    let (te, _) = load_tensors(path.to_str().expect("utf-8"), "G_ema").expect("G_ema tensors");
    assert_eq!(tg.tensors, te.tensors);
    // The discriminator is not a generator: a clear refusal, not a crash.
    let err = load_model(path.to_str().expect("utf-8"), "D")
        .err()
        .expect("D is not a generator");
    assert!(
        err.to_string()
            .contains("not a StyleGAN2/StyleGAN3 generator"),
        "{err}"
    );
}

#[test]
fn pickle_to_safetensors_conversion_is_exact() {
    let pkl = fixtures().join("stylegan2-tiny-16/network-snapshot-nosrc.pkl");
    let (map, kwargs) = load_tensors(pkl.to_str().expect("utf-8"), "G_ema").expect("tensors");
    let model = load_model(pkl.to_str().expect("utf-8"), "G_ema").expect("model");
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("g.safetensors");
    let side = write_safetensors(&map, &kwargs, model.generator.architecture, &out).expect("write");
    assert!(side.ends_with("g.json"));
    let (back, kw2) = load_tensors(out.to_str().expect("utf-8"), "G_ema").expect("read back");
    assert_eq!(kw2, kwargs);
    assert_eq!(back.tensors.len(), map.tensors.len());
    for (name, t) in &map.tensors {
        let b = back.get(name).expect("tensor present");
        assert_eq!(b.shape, t.shape, "{name}");
        assert!(
            b.data
                .iter()
                .zip(&t.data)
                .all(|(x, y)| x.to_bits() == y.to_bits()),
            "{name} not bit-identical"
        );
    }
    // The converted model renders the same image, bit for bit.
    let conv = load_model(out.to_str().expect("utf-8"), "G_ema").expect("load converted");
    let ws = npy("stylegan2-tiny-16", "seed0000_psi1_ws.npy")
        .to_f32()
        .expect("ws");
    let opts = SynthesisOptions::default();
    let a = model
        .generator
        .synthesize(&ws, 1, &opts, &NoControl)
        .expect("a");
    let b = conv
        .generator
        .synthesize(&ws, 1, &opts, &NoControl)
        .expect("b");
    assert_eq!(a, b);
    // Only the two files: no temporary files left.
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec!["g.json".to_string(), "g.safetensors".to_string()]
    );
}

#[test]
fn bad_model_files_give_errors_naming_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases: Vec<(PathBuf, &str)> = vec![
        (dir.path().join("missing.pkl"), "cannot open"),
        (dir.path().join("model.onnx"), "unsupported model file"),
        (dir.path().join("empty.pkl"), ""),
        (dir.path().join("garbage.safetensors"), ""),
    ];
    std::fs::write(dir.path().join("model.onnx"), b"x").expect("write");
    std::fs::write(dir.path().join("empty.pkl"), b"").expect("write");
    std::fs::write(
        dir.path().join("garbage.safetensors"),
        b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}",
    )
    .expect("write");
    // A truncated real pickle.
    let real = std::fs::read(fixtures().join("stylegan3-t-tiny-16/network-snapshot-nosrc.pkl"))
        .expect("read");
    let cut = dir.path().join("cut.pkl");
    std::fs::write(&cut, &real[..real.len() / 3]).expect("write");
    let mut all = cases;
    all.push((cut, ""));
    for (path, must) in all {
        let shown = path.to_str().expect("utf-8").to_owned();
        let err = match load_model(&shown, "G_ema") {
            Ok(_) => panic!("{shown} loaded"),
            Err(e) => e.to_string(),
        };
        let file = path.file_name().and_then(|n| n.to_str()).expect("name");
        assert!(err.contains(file), "error does not name the file: {err}");
        assert!(err.contains(must), "{err}");
    }
    let err = load_model(
        fixtures()
            .join("stylegan3-t-tiny-16/network-snapshot-nosrc.pkl")
            .to_str()
            .expect("utf-8"),
        "D_ema",
    )
    .err()
    .expect("no such network");
    assert!(
        err.to_string().contains("G_ema"),
        "lists what exists: {err}"
    );
}
