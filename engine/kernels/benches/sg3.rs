//! SG3 kernels on the official 256 px SG3-T structure with the built-in seeded weights:
//! the modulated convolution and the fused filtered lrelu of a few representative layers, and
//! the whole synthesis forward (one image).
//!
//! `cargo bench -p stylegraph-kernels --bench sg3` (set `RAYON_NUM_THREADS` to pin threads).

use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;

use stylegraph_kernels::default_init::{sg3_state_dict, InitTuning};
use stylegraph_kernels::sg3::{Sg3Config, Sg3Kind, Sg3Synthesis};
use stylegraph_kernels::{MappingNetwork, NoControl};

fn setup() -> (Sg3Synthesis, Vec<f32>) {
    let cfg = Sg3Config::official(Sg3Kind::T, 256);
    // Untuned official init: no calibration pass, so setup stays quick.
    let map = sg3_state_dict(&cfg, 0, &InitTuning::official()).expect("init");
    let syn = Sg3Synthesis::from_tensors(&map, &cfg).expect("synthesis");
    let mapping = MappingNetwork::from_tensors(&map, &cfg.mapping_config()).expect("mapping");
    let z = stylegraph_rng::z_from_seed(1, cfg.z_dim);
    let ws = mapping.map(&z, None, 1, 1.0, None).expect("map");
    (syn, ws)
}

fn kernels(c: &mut Criterion) {
    let (syn, ws) = setup();
    // Inputs of every layer, from one forward pass.
    let mut acts = vec![syn.input_forward(&ws, 1, None).expect("input")];
    for i in 0..syn.layers().len() - 1 {
        let next = syn
            .layer_forward(i, acts.last().expect("input"), &ws)
            .expect("layer");
        acts.push(next);
    }
    let wd = syn.w_dim();
    let mut group = c.benchmark_group("sg3_t_256_layers");
    group.sample_size(10);
    // L6: 512 ch at 84 px (3x3, widest); L11: 128 -> 91 ch at 276 px (large map, up 2 / down 2).
    for i in [6usize, 10, 11] {
        let layer = &syn.layers()[i];
        let name = layer.spec().name.clone();
        let x = &acts[i].data;
        let w = &ws[(i + 1) * wd..(i + 2) * wd];
        group.bench_function(format!("modconv/{name}"), |b| {
            b.iter(|| black_box(layer.modconv_full(black_box(x), w)))
        });
        let conv = layer.modconv_full(x, w);
        let s = layer.spec();
        let mut out = vec![0.0f32; s.out_channels * s.out_size * s.out_size];
        group.bench_function(format!("filtered_lrelu/{name}"), |b| {
            b.iter(|| layer.filtered_lrelu_full(black_box(&conv), &mut out))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("sg3_t_256");
    group.sample_size(10);
    group.bench_function("forward", |b| {
        b.iter(|| {
            black_box(
                syn.forward(black_box(&ws), 1, None, &NoControl)
                    .expect("forward"),
            )
        })
    });
    group.finish();
}

criterion_group!(benches, kernels);
criterion_main!(benches);
