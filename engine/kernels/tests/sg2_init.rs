//! The seeded default StyleGAN2 generator and the configuration parser.

use std::path::Path;

use stylegraph_kernels::sg2::{
    default_init, state_dict_entries, Architecture, EntryKind, Sg2Config, Sg2Synthesis,
};
use stylegraph_kernels::{ModelError, NoControl, NoiseMode, TensorMap};

/// A small network of the official structure (4 blocks, few channels) for quick checks.
fn small_cfg() -> Sg2Config {
    Sg2Config {
        img_resolution: 32,
        channel_base: 256,
        channel_max: 32,
        ..Sg2Config::stylegan2_1024()
    }
}

#[test]
fn official_1024_structure_has_the_published_parameter_count() {
    let cfg = Sg2Config::stylegan2_1024();
    assert_eq!(cfg.num_ws(), 18);
    let entries = state_dict_entries(&cfg).expect("entries");
    let params: usize = entries
        .iter()
        .filter(|e| e.kind == EntryKind::Parameter)
        .map(|e| e.numel())
        .sum();
    // `describe` of the official stylegan2-1024 generator (spec section 4).
    assert_eq!(params, 30_370_060);
    // Channel table of the same section.
    let chans: Vec<usize> = cfg
        .block_resolutions()
        .iter()
        .map(|&r| cfg.channels(r))
        .collect();
    assert_eq!(chans, [512, 512, 512, 512, 512, 256, 128, 64, 32]);
}

#[test]
fn default_init_is_seeded_and_builds_a_network() {
    let cfg = small_cfg();
    let a = default_init(&cfg, 3).expect("init");
    let b = default_init(&cfg, 3).expect("init");
    let c = default_init(&cfg, 4).expect("init");
    let w = |m: &TensorMap| {
        m.get("synthesis.b8.conv0.weight")
            .expect("weight")
            .data
            .clone()
    };
    assert_eq!(w(&a), w(&b));
    assert_ne!(w(&a), w(&c));
    // Upstream init rules: affine biases 1, conv biases 0, the normalised [1,3,3,1] filter.
    assert!(a
        .get("synthesis.b8.conv1.affine.bias")
        .expect("bias")
        .data
        .iter()
        .all(|&v| v == 1.0));
    assert!(a
        .get("synthesis.b8.conv1.bias")
        .expect("bias")
        .data
        .iter()
        .all(|&v| v == 0.0));
    let f = &a.get("synthesis.b16.resample_filter").expect("filter").data;
    assert_eq!(f[0], 1.0 / 64.0);
    assert_eq!(f[5], 9.0 / 64.0);
    // Noise strengths are perturbed away from 0 so that noise has an effect.
    assert!(
        a.get("synthesis.b16.conv1.noise_strength")
            .expect("strength")
            .data[0]
            > 0.0
    );
    // The whole state dict is there, mapping included.
    assert_eq!(
        a.tensors.len(),
        state_dict_entries(&cfg).expect("entries").len()
    );
    assert!(a.get("mapping.fc7.weight").is_ok());

    let net = Sg2Synthesis::from_tensors(&a, &cfg).expect("network");
    let inferred = Sg2Config::infer_from_tensors(&a).expect("infer");
    assert_eq!(inferred.channel_base, cfg.channel_base);
    assert_eq!(inferred.channel_max, cfg.channel_max);
    assert_eq!(inferred.img_resolution, 32);
    assert_eq!(inferred.mapping_layers(), 8);

    // Different latents give clearly different, non-flat images.
    let mut rng = stylegraph_rng::RandomState::new(11);
    let mut ws_for = |_: u32| -> Vec<f32> {
        let w: Vec<f32> = (0..cfg.w_dim).map(|_| rng.next_gauss() as f32).collect();
        (0..net.num_ws()).flat_map(|_| w.iter().copied()).collect()
    };
    let (w1, w2) = (ws_for(0), ws_for(1));
    let i1 = net
        .forward(&w1, 1, NoiseMode::Const, &NoControl)
        .expect("forward");
    let i2 = net
        .forward(&w2, 1, NoiseMode::Const, &NoControl)
        .expect("forward");
    let mean_abs_diff =
        i1.iter().zip(&i2).map(|(a, b)| (a - b).abs()).sum::<f32>() / i1.len() as f32;
    assert!(
        mean_abs_diff > 0.05,
        "images barely differ: {mean_abs_diff}"
    );
    for img in [&i1, &i2] {
        let mean = img.iter().sum::<f32>() / img.len() as f32;
        let var = img.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / img.len() as f32;
        assert!(var.sqrt() > 0.05, "flat image");
        assert!(img.iter().all(|v| v.is_finite()));
    }
}

#[test]
fn config_from_flat_kwargs_uses_stylegan3_repository_defaults() {
    let kw = serde_json::json!({
        "z_dim": 512, "w_dim": 512, "c_dim": 0, "img_resolution": 256, "img_channels": 3,
        "mapping_kwargs": {"num_layers": 2}, "channel_base": 16384,
    });
    let cfg = Sg2Config::from_json(&kw).expect("config");
    assert_eq!(cfg.channel_base, 16384);
    assert_eq!(cfg.channel_max, 512);
    assert_eq!(cfg.conv_clamp, Some(256.0));
    assert_eq!(cfg.num_fp16_res, 4);
    assert_eq!(cfg.architecture, Architecture::Skip);
    assert_eq!(cfg.mapping_layers(), 2);
    assert_eq!(cfg.num_ws(), 14);
}

#[test]
fn config_from_ada_kwargs_reads_the_nested_synthesis_dict() {
    let kw = serde_json::json!({
        "z_dim": 512, "w_dim": 512, "c_dim": 0, "img_resolution": 1024, "img_channels": 3,
        "mapping_kwargs": {"num_layers": 8},
        "synthesis_kwargs": {"channel_base": 32768, "channel_max": 512, "num_fp16_res": 4,
                             "conv_clamp": 256, "architecture": "skip"},
    });
    let cfg = Sg2Config::from_json(&kw).expect("config");
    assert_eq!(cfg, Sg2Config::stylegan2_1024());
    // ADA defaults: no clamp when it is not given.
    let kw = serde_json::json!({"img_resolution": 64, "synthesis_kwargs": {}});
    let cfg = Sg2Config::from_json(&kw).expect("config");
    assert_eq!(cfg.conv_clamp, None);
    assert_eq!(cfg.num_fp16_res, 0);
    let kw = serde_json::json!({"img_resolution": 64, "conv_clamp": null});
    assert_eq!(Sg2Config::from_json(&kw).expect("config").conv_clamp, None);
}

#[test]
fn bad_or_unsupported_configs_are_refused() {
    for kw in [
        serde_json::json!({"img_resolution": 100}),
        serde_json::json!({"img_resolution": 64, "architecture": "weird"}),
        serde_json::json!({"img_resolution": "64"}),
        serde_json::json!({"channel_base": 512}),
        serde_json::json!([1, 2]),
    ] {
        assert!(Sg2Config::from_json(&kw).is_err(), "{kw}");
    }
    let map = default_init(&small_cfg(), 0).expect("init");
    for arch in ["orig", "resnet"] {
        let kw = serde_json::json!({"img_resolution": 32, "architecture": arch,
                                    "channel_base": 256, "channel_max": 32});
        let cfg = Sg2Config::from_json(&kw).expect("parses");
        match Sg2Synthesis::from_tensors(&map, &cfg) {
            Err(ModelError::Config(msg)) => assert!(msg.contains(arch), "{msg}"),
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("architecture {arch} accepted"),
        }
    }
    // Kwargs that contradict the tensors.
    let kw = serde_json::json!({"img_resolution": 64});
    assert!(Sg2Config::from_json_and_tensors(&kw, &map).is_err());
    // A tensor with the wrong shape names itself.
    let mut bad = map.clone();
    bad.insert("synthesis.b8.conv1.weight", vec![3, 3], vec![0.0; 9]);
    let err = Sg2Synthesis::from_tensors(&bad, &small_cfg())
        .err()
        .expect("refused");
    assert!(
        err.to_string().contains("synthesis.b8.conv1.weight"),
        "{err}"
    );
}

#[test]
fn config_inferred_from_the_fixture_tensors() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/stylegan2-mid-64/G_ema.safetensors");
    let map = TensorMap::from_safetensors_file(&path).expect("fixture");
    let cfg = Sg2Config::infer_from_tensors(&map).expect("infer");
    assert_eq!(cfg.img_resolution, 64);
    assert_eq!((cfg.channel_base, cfg.channel_max), (2048, 64));
    assert_eq!((cfg.z_dim, cfg.w_dim, cfg.c_dim), (512, 512, 0));
    assert_eq!(cfg.mapping_layers(), 8);
}
