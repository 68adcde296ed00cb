//! Renders images with the built-in seeded SG3 generator and reports the time per image.
//!
//! `cargo run --release -p stylegraph-kernels --example sg3_default -- [t|r] RES SEEDS [OUT_DIR] [INIT_SEED] [official]`
//! e.g. `... -- t 256 0,1,2 /tmp/sg3` writes `seed0000.ppm`...; without OUT_DIR only times.
//! Used for the peak-RSS measurement in the report (`/usr/bin/time -v`).

use std::time::Instant;

use stylegraph_kernels::default_init::{sg3_state_dict, InitTuning};
use stylegraph_kernels::sg3::Sg3Generator;
use stylegraph_kernels::sg3::{Sg3Config, Sg3Kind};
use stylegraph_kernels::NoControl;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let kind = match args.first().map(String::as_str) {
        Some("r") => Sg3Kind::R,
        _ => Sg3Kind::T,
    };
    let res: usize = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(256);
    let seeds: Vec<u32> = args
        .get(2)
        .map(|s| s.split(',').map(|v| v.parse()).collect::<Result<_, _>>())
        .transpose()?
        .unwrap_or_else(|| vec![0]);
    let out_dir = args
        .get(3)
        .filter(|s| !s.is_empty() && *s != "-")
        .map(std::path::PathBuf::from);
    let init_seed: u32 = args.get(4).map(|s| s.parse()).transpose()?.unwrap_or(0);
    // `official` as 6th argument: the untuned official initialisation.
    let tuning = match args.get(5).map(String::as_str) {
        Some("official") => InitTuning::official(),
        _ => InitTuning::default(),
    };

    let cfg = Sg3Config::official(kind, res);
    let t0 = Instant::now();
    let g = Sg3Generator::from_tensors(&sg3_state_dict(&cfg, init_seed, &tuning)?, &cfg)?;
    eprintln!("init {:?}: {:.2} s", kind, t0.elapsed().as_secs_f64());
    for seed in seeds {
        let z = stylegraph_rng::z_from_seed(seed, cfg.z_dim);
        let t = Instant::now();
        let ws = g.mapping.map(&z, None, 1, 1.0, None)?;
        let img = g.synthesis.forward(&ws, 1, None, &NoControl)?;
        eprintln!("seed {seed}: {:.3} s", t.elapsed().as_secs_f64());
        if let Some(dir) = &out_dir {
            std::fs::create_dir_all(dir)?;
            let mut bytes = format!("P6\n{res} {res}\n255\n").into_bytes();
            let plane = res * res;
            for p in 0..plane {
                for c in 0..3 {
                    bytes.push((img[c * plane + p] * 127.5 + 128.0).clamp(0.0, 255.0) as u8);
                }
            }
            let path = dir.join(format!("seed{seed:04}.ppm"));
            let tmp = dir.join(format!(".seed{seed:04}.ppm.tmp"));
            std::fs::write(&tmp, &bytes)?;
            std::fs::rename(&tmp, &path)?;
        }
    }
    Ok(())
}
