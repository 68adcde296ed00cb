//! Times one ResNet-50 forward pass (Wang et al.'s detector size: [3, 4, 6, 3] bottlenecks,
//! widths 64..2048, one output) with deterministic pseudo-random weights, at 224x224 and
//! 256x256. Run: `cargo run -p stylegraph-plugin-detect --example resnet50_timing`.

use std::time::Instant;
use stylegraph_kernels::resnet::ResNet;
use stylegraph_kernels::TensorMap;

fn main() {
    let mut t = TensorMap::new();
    let mut seed = 1u64;
    let mut rnd = |n: usize, scale: f32| -> Vec<f32> {
        (0..n)
            .map(|_| {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((seed >> 33) as f32 / (1u64 << 31) as f32 - 0.5) * scale
            })
            .collect()
    };
    let mut conv = |t: &mut TensorMap, name: &str, o: usize, i: usize, k: usize| {
        let s = (3.0 / (i * k * k) as f32).sqrt();
        t.insert(
            format!("{name}.weight"),
            vec![o, i, k, k],
            rnd(o * i * k * k, s),
        );
    };
    let bn = |t: &mut TensorMap, name: &str, c: usize| {
        t.insert(format!("{name}.weight"), vec![c], vec![1.0; c]);
        t.insert(format!("{name}.bias"), vec![c], vec![0.0; c]);
        t.insert(format!("{name}.running_mean"), vec![c], vec![0.0; c]);
        t.insert(format!("{name}.running_var"), vec![c], vec![1.0; c]);
    };
    conv(&mut t, "conv1", 64, 3, 7);
    bn(&mut t, "bn1", 64);
    let mut cin = 64;
    for (l, (planes, blocks)) in [(64, 3), (128, 4), (256, 6), (512, 3)]
        .into_iter()
        .enumerate()
    {
        for b in 0..blocks {
            let p = format!("layer{}.{b}", l + 1);
            conv(&mut t, &format!("{p}.conv1"), planes, cin, 1);
            bn(&mut t, &format!("{p}.bn1"), planes);
            conv(&mut t, &format!("{p}.conv2"), planes, planes, 3);
            bn(&mut t, &format!("{p}.bn2"), planes);
            conv(&mut t, &format!("{p}.conv3"), planes * 4, planes, 1);
            bn(&mut t, &format!("{p}.bn3"), planes * 4);
            if b == 0 {
                conv(&mut t, &format!("{p}.downsample.0"), planes * 4, cin, 1);
                bn(&mut t, &format!("{p}.downsample.1"), planes * 4);
            }
            cin = planes * 4;
        }
    }
    t.insert("fc.weight", vec![1, 2048], vec![0.001; 2048]);
    t.insert("fc.bias", vec![1], vec![0.0]);
    let net = match ResNet::from_state_dict(&t) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    for size in [224usize, 256] {
        let img = vec![0.1f32; 3 * size * size];
        let _ = net.forward(&img, size, size, &|| false);
        let start = Instant::now();
        let reps = 3;
        for _ in 0..reps {
            let _ = net.forward(&img, size, size, &|| false);
        }
        println!(
            "ResNet-50 forward {size}x{size}: {:.0} ms/image ({} threads)",
            start.elapsed().as_secs_f64() * 1000.0 / reps as f64,
            rayon::current_num_threads()
        );
    }
}
