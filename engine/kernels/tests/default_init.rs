//! The built-in seeded SG3 generator: official structure, determinism, and pictures that are
//! not grey and differ between seeds.

mod common;

use common::SmallSg3;
use stylegraph_kernels::default_init::{default_sg3, sg3_state_dict, InitTuning};
use stylegraph_kernels::sg3::{Sg3Config, Sg3Kind};
use stylegraph_kernels::NoControl;

const BUFFERS: [&str; 8] = [
    ".transform",
    ".freqs",
    ".phases",
    ".magnitude_ema",
    ".up_filter",
    ".down_filter",
    "w_avg",
    "__none__",
];

/// Parameter counts and state-dict sizes of NVIDIA's released structures (from their
/// `describe` tables).
#[test]
fn official_structures_have_the_official_parameters() {
    for (kind, res, params, entries) in [
        (Sg3Kind::T, 1024, 22_313_167usize, 114usize),
        (Sg3Kind::R, 1024, 15_093_151, 114),
        (Sg3Kind::T, 256, 23_320_443, 114),
    ] {
        let cfg = Sg3Config::official(kind, res);
        let map = sg3_state_dict(&cfg, 0, &InitTuning::official()).unwrap();
        assert_eq!(map.tensors.len(), entries, "{kind:?} {res}");
        let count: usize = map
            .tensors
            .iter()
            .filter(|(name, _)| !BUFFERS.iter().any(|b| name.ends_with(b)))
            .map(|(_, t)| t.numel())
            .sum();
        assert_eq!(count, params, "{kind:?} {res}");
        // The configuration read back from the tensors alone is the same structure.
        let inferred = Sg3Config::from_tensors(&map).unwrap();
        assert_eq!(inferred.schedule().unwrap(), cfg.schedule().unwrap());
        let radial = map
            .get("synthesis.L0_36_1024.down_filter")
            .map(|t| t.shape.clone())
            .ok();
        assert_eq!(radial.is_some(), kind == Sg3Kind::R);
    }
}

#[test]
fn seeded_and_deterministic() {
    let cfg = Sg3Config {
        img_resolution: 64,
        channel_base: 2048.0,
        channel_max: 64.0,
        ..Sg3Config::default()
    };
    let a = sg3_state_dict(&cfg, 7, &InitTuning::official()).unwrap();
    let b = sg3_state_dict(&cfg, 7, &InitTuning::official()).unwrap();
    let c = sg3_state_dict(&cfg, 8, &InitTuning::official()).unwrap();
    let name = "synthesis.L3_36_64.weight";
    assert_eq!(a.get(name).unwrap().data, b.get(name).unwrap().data);
    assert_ne!(a.get(name).unwrap().data, c.get(name).unwrap().data);
    // randn weights: mean ~0, std ~1
    let w = &a.get(name).unwrap().data;
    let mean = w.iter().map(|&v| v as f64).sum::<f64>() / w.len() as f64;
    let var = w.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / w.len() as f64;
    assert!(
        mean.abs() < 0.02 && (var.sqrt() - 1.0).abs() < 0.02,
        "{mean} {var}"
    );
    assert_eq!(
        a.get("synthesis.L3_36_64.affine.bias").unwrap().data,
        vec![1.0; 64]
    );
}

/// Per-image (channel means, std) in image units.
fn stats(img: &[f32], res: usize) -> ([f32; 3], f32) {
    let plane = res * res;
    let mut means = [0.0f32; 3];
    for (c, m) in means.iter_mut().enumerate() {
        *m = img[c * plane..(c + 1) * plane].iter().sum::<f32>() / plane as f32;
    }
    let var = (0..3)
        .map(|c| {
            img[c * plane..(c + 1) * plane]
                .iter()
                .map(|v| (v - means[c]).powi(2))
                .sum::<f32>()
        })
        .sum::<f32>()
        / (3 * plane) as f32;
    (means, var.sqrt())
}

#[test]
fn tuned_init_gives_colourful_images_that_differ_by_seed() {
    // A small structure so the test stays fast (the tuning does not depend on size).
    let cfg = Sg3Config {
        img_resolution: 64,
        channel_base: 2048.0,
        channel_max: 64.0,
        ..Sg3Config::default()
    };
    let (g, _) = default_sg3(&cfg, 0).unwrap();
    let mut all = Vec::new();
    for seed in 0..6u32 {
        let z = stylegraph_rng::z_from_seed(seed, 512);
        let ws = g.mapping.map(&z, None, 1, 1.0, None).unwrap();
        let img = g.synthesis.forward(&ws, 1, None, &NoControl).unwrap();
        all.push(stats(&img, 64));
    }
    // Not grey: every image has contrast.
    for (seed, (_, std)) in all.iter().enumerate() {
        assert!(*std > 0.03, "seed {seed}: std {std}");
    }
    // Colourful and different: mean colours spread across seeds and are not all neutral.
    let mut spread = 0.0f32;
    let mut chroma = 0.0f32;
    for (i, (a, _)) in all.iter().enumerate() {
        let grey = (a[0] + a[1] + a[2]) / 3.0;
        chroma = chroma.max(a.iter().map(|v| (v - grey).abs()).fold(0.0, f32::max));
        for (b, _) in &all[i + 1..] {
            spread = spread.max((0..3).map(|c| (a[c] - b[c]).abs()).fold(0.0, f32::max));
        }
    }
    assert!(spread > 0.2, "mean colours hardly differ: {all:?}");
    assert!(chroma > 0.15, "all images are nearly neutral: {all:?}");

    // The official (untuned) init is what the tuning fixes: low contrast, near-grey.
    let official = sg3_state_dict(&cfg, 0, &InitTuning::official()).unwrap();
    let g0 = stylegraph_kernels::sg3::Sg3Generator::from_tensors(&official, &cfg).unwrap();
    let z = stylegraph_rng::z_from_seed(0, 512);
    let ws = g0.mapping.map(&z, None, 1, 1.0, None).unwrap();
    let (_, std0) = stats(&g0.synthesis.forward(&ws, 1, None, &NoControl).unwrap(), 64);
    assert!(std0 < all[0].1, "official {std0} vs tuned {}", all[0].1);
}

#[test]
fn forward_reuses_scratch_without_carrying_state_between_calls() {
    // The synthesis keeps its feature maps and weight buffers between calls. Interleaved calls
    // with other latents, a batch, and the layer-by-layer path must all give the same image for
    // the same latent as a fresh network does.
    for kind in [Sg3Kind::T, Sg3Kind::R] {
        let net = SmallSg3::new(kind, 3);
        let syn = &net.synthesis;
        let (wa, wb) = (net.ws(1), net.ws(2));
        let fresh = syn.clone().forward(&wa, 1, None, &NoControl).unwrap();
        let a1 = syn.forward(&wa, 1, None, &NoControl).unwrap();
        let b = syn.forward(&wb, 1, None, &NoControl).unwrap();
        let a2 = syn.forward(&wa, 1, None, &NoControl).unwrap();
        assert_eq!(a1, fresh, "{kind:?}");
        assert_eq!(a2, fresh, "{kind:?}: a call after another latent differs");
        assert_ne!(a1, b, "{kind:?}");
        let both: Vec<f32> = wb.iter().chain(&wa).copied().collect();
        let batch = syn.forward(&both, 2, None, &NoControl).unwrap();
        assert_eq!(batch[..b.len()], b[..], "{kind:?}: batch sample 0");
        assert_eq!(batch[b.len()..], fresh[..], "{kind:?}: batch sample 1");
        // layer by layer (a fresh output map per layer)
        let mut x = syn.input_forward(&wa, 1, None).unwrap();
        for i in 0..syn.layers().len() {
            x = syn.layer_forward(i, &x, &wa).unwrap();
        }
        assert_eq!(
            syn.apply_output_scale(x).data,
            fresh,
            "{kind:?}: layer chain"
        );
        syn.release_memory();
        assert_eq!(syn.forward(&wa, 1, None, &NoControl).unwrap(), fresh);
    }
}
