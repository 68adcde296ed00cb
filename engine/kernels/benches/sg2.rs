//! StyleGAN2 synthesis speed: the official 1024x1024 structure (`stylegan2-1024`, 30.4 M
//! parameters) with the seeded default initialisation, one image per iteration.
//!
//! `cargo bench -p stylegraph-kernels --bench sg2`. Prints the process's peak resident set
//! size (VmHWM) at the end: the high-water mark is reset after the network is built (Linux
//! `clear_refs`), so it covers the forward passes plus the resident weights.

use criterion::{criterion_group, criterion_main, Criterion};
use stylegraph_kernels::sg2::{default_init, Sg2Config, Sg2Synthesis};
use stylegraph_kernels::{NoControl, NoiseMode};

fn peak_rss() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM"))
        .map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
}

/// User + system CPU seconds of the whole process (all threads), from `/proc/self/stat`.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields: Vec<&str> = stat
        .get(stat.rfind(')')? + 2..)?
        .split_whitespace()
        .collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // The kernel reports clock ticks; USER_HZ is 100 on every Linux platform we run on.
    Some(ticks / 100.0)
}

fn sg2_1024(c: &mut Criterion) {
    let cfg = Sg2Config::stylegan2_1024();
    let net = {
        let map = default_init(&cfg, 0).expect("default init");
        Sg2Synthesis::from_tensors(&map, &cfg).expect("build")
    };
    // Forget the peak of the construction phase (state dict and network both resident).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let mut rng = stylegraph_rng::RandomState::new(1);
    let w: Vec<f32> = (0..cfg.w_dim).map(|_| rng.next_gauss() as f32).collect();
    let ws: Vec<f32> = (0..net.num_ws()).flat_map(|_| w.iter().copied()).collect();

    let mut group = c.benchmark_group("sg2");
    group.sample_size(10);
    group.measurement_time(std::time::Duration::from_secs(30));
    let images = std::cell::Cell::new(0u64);
    let cpu_start = cpu_seconds();
    group.bench_function("stylegan2_1024_forward_1img", |b| {
        b.iter(|| {
            images.set(images.get() + 1);
            net.forward(&ws, 1, NoiseMode::Const, &NoControl)
                .expect("forward")
        })
    });
    group.finish();
    // CPU time per image is less sensitive to other load on the machine than wall time.
    if let (Some(a), Some(b)) = (cpu_start, cpu_seconds()) {
        println!(
            "sg2 bench: {:.2} CPU-seconds per image over {} images ({} threads)",
            (b - a) / images.get().max(1) as f64,
            images.get(),
            rayon::current_num_threads()
        );
    }
    if let Some(rss) = peak_rss() {
        println!("sg2 bench: peak RSS (VmHWM) {rss}");
    }
}

criterion_group!(benches, sg2_1024);
criterion_main!(benches);
