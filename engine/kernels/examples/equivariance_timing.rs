//! Times the image-space operators of one equivariance sample on a 3x256x256 image (the
//! generator's renders are not included). Run:
//! `cargo run -p stylegraph-kernels --example equivariance_timing`.

use std::time::Instant;
use stylegraph_kernels::resample::{
    fractional_pseudo_rotation, fractional_rotation, fractional_translation, Planes,
};

fn main() {
    let n = 256;
    let data: Vec<f64> = (0..3 * n * n)
        .map(|i| ((i % n) as f64 * 0.05).sin() * ((i / n) as f64 * 0.03).cos())
        .collect();
    let Ok(x) = Planes::new(3, n, n, data) else {
        return;
    };
    let t = Instant::now();
    let _ = fractional_translation(&x, 0.07, -0.03, 3);
    println!(
        "fractional translation: {:.0} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    let t = Instant::now();
    let _ = fractional_rotation(&x, 0.7, 3);
    println!(
        "rotation (filter + 4x upsample + grid sample): {:.0} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    let t = Instant::now();
    let _ = fractional_pseudo_rotation(&x, 0.7, 3);
    println!("pseudo-rotation: {:.0} ms", t.elapsed().as_secs_f64() * 1e3);
}
