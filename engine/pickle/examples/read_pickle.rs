//! One-off timing of the pickle reader: `cargo run --release -p stylegraph-pickle --example
//! read_pickle -- FILE.pkl [NETWORK]`. Prints the time to read and parse the file, to decode
//! the chosen network (default `G_ema`), and to decode every network.

use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: read_pickle FILE.pkl [NETWORK]")?;
    let network = args.next().unwrap_or_else(|| "G_ema".to_string());
    let t0 = Instant::now();
    let pickle = stylegraph_pickle::read_network_pickle(&path)?;
    let t_parse = t0.elapsed();
    let t1 = Instant::now();
    let net = pickle.network(&network)?;
    let t_net = t1.elapsed();
    let t2 = Instant::now();
    let mut all = 0;
    for name in pickle.networks() {
        all += pickle.network(name)?.tensors.len();
    }
    let t_all = t2.elapsed();
    let bytes: usize = net.tensors.iter().map(|t| t.data.len()).sum();
    println!(
        "{path}: read + parse {:.1} ms; {network} ({}, {} tensors, {} bytes) {:.1} ms; all networks {:?} ({all} tensors) {:.1} ms",
        t_parse.as_secs_f64() * 1e3,
        net.class_name,
        net.tensors.len(),
        bytes,
        t_net.as_secs_f64() * 1e3,
        pickle.networks(),
        t_all.as_secs_f64() * 1e3,
    );
    Ok(())
}
