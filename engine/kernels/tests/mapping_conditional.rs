//! The label path of conditional generators (c_dim > 0), which the fixtures (all unconditional)
//! do not cover: checked against the upstream formula computed independently in f64 here.
//!
//! Upstream `MappingNetwork.forward`: x = normalize_2nd_moment(z); y = normalize_2nd_moment(
//! embed(c)) with `embed` a linear FC (lr 1, weight scale 1/sqrt(c_dim)); x = cat([x, y]); then the
//! FC layers with lrelu * sqrt(2) and lr multiplier 0.01 (weight scale 0.01/sqrt(in), bias 0.01).

use stylegraph_kernels::mapping::{MappingConfig, MappingNetwork};
use stylegraph_kernels::TensorMap;

fn normalize(v: &[f64]) -> Vec<f64> {
    let ms = v.iter().map(|x| x * x).sum::<f64>() / v.len() as f64;
    v.iter().map(|x| x / (ms + 1e-8).sqrt()).collect()
}

fn fc(x: &[f64], w: &[f32], b: &[f32], out: usize, lr: f64, lrelu: bool) -> Vec<f64> {
    let inp = x.len();
    let scale = lr / (inp as f64).sqrt();
    (0..out)
        .map(|o| {
            let mut acc = 0.0;
            for i in 0..inp {
                acc += x[i] * w[o * inp + i] as f64 * scale;
            }
            let y = acc + b[o] as f64 * lr;
            if lrelu {
                (if y >= 0.0 { y } else { 0.2 * y }) * std::f64::consts::SQRT_2
            } else {
                y
            }
        })
        .collect()
}

#[test]
fn labels_are_embedded_normalised_and_concatenated_after_z() {
    let (z_dim, c_dim, w_dim, embed) = (6usize, 3usize, 5usize, 4usize);
    let mut rs = stylegraph_rng::RandomState::new(11);
    let mut rand = |n: usize| -> Vec<f32> { (0..n).map(|_| rs.next_gauss() as f32).collect() };
    let mut map = TensorMap::new();
    let (ew, eb) = (rand(embed * c_dim), rand(embed));
    let (w0, b0) = (rand(w_dim * (z_dim + embed)), rand(w_dim));
    let (w1, b1) = (rand(w_dim * w_dim), rand(w_dim));
    map.insert("mapping.embed.weight", vec![embed, c_dim], ew.clone());
    map.insert("mapping.embed.bias", vec![embed], eb.clone());
    map.insert("mapping.fc0.weight", vec![w_dim, z_dim + embed], w0.clone());
    map.insert("mapping.fc0.bias", vec![w_dim], b0.clone());
    map.insert("mapping.fc1.weight", vec![w_dim, w_dim], w1.clone());
    map.insert("mapping.fc1.bias", vec![w_dim], b1.clone());
    map.insert("mapping.w_avg", vec![w_dim], vec![0.0; w_dim]);

    let cfg = MappingConfig::infer(&map, 3).expect("config from tensors");
    assert_eq!(
        (cfg.z_dim, cfg.c_dim, cfg.w_dim, cfg.embed_features),
        (z_dim, c_dim, w_dim, embed)
    );
    let net = MappingNetwork::from_tensors(&map, &cfg).expect("network");

    let z: Vec<f64> = (0..z_dim).map(|i| (i as f64 - 2.5) * 0.7).collect();
    for class in 0..c_dim {
        let mut c = vec![0.0f32; c_dim];
        c[class] = 1.0;
        let got = net.forward(&z, Some(&c), 1).expect("forward");
        let c64: Vec<f64> = c.iter().map(|&v| v as f64).collect();
        let y = normalize(&fc(&c64, &ew, &eb, embed, 1.0, false));
        let mut x = normalize(&z.iter().map(|&v| v as f32 as f64).collect::<Vec<_>>());
        x.extend(y);
        let h = fc(&x, &w0, &b0, w_dim, 0.01, true);
        let want = fc(&h, &w1, &b1, w_dim, 0.01, true);
        for (g, w) in got.iter().zip(&want) {
            assert!(
                (*g as f64 - w).abs() <= 1e-5 * (1.0 + w.abs()),
                "class {class}: {got:?} vs {want:?}"
            );
        }
    }
    // A conditional network refuses to run without labels, and checks their shape.
    assert!(net.forward(&z, None, 1).is_err());
    assert!(net.forward(&z, Some(&[1.0, 0.0]), 1).is_err());
}
