//! A small probe of the machine's peak f32 arithmetic rate, the yardstick `stylegraph bench`
//! compares the networks against.
//!
//! The probe runs a loop of fused multiply-adds on independent accumulators that never leave
//! the vector registers (no loads or stores), so it is limited only by the FMA units. Enough
//! independent chains are kept in flight to cover the FMA latency on every x86 core of the last
//! decade (latency 4-5 cycles, up to two FMA ports). The widest instruction set the CPU has is
//! picked at run time: AVX-512F (16 lanes), else AVX2+FMA (8 lanes), else a scalar `mul_add`
//! loop (which the compiler may or may not turn into FMA instructions: a lower bound).

use serde::{Deserialize, Serialize};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// What the probe measured.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PeakFlops {
    /// The instruction set the probe used: `avx512f`, `avx2+fma` or `scalar`.
    pub isa: String,
    /// f32 GFLOP/s of one thread (an FMA counts as two FLOPs).
    pub gflops_1t: f64,
    /// f32 GFLOP/s of `threads` threads running the probe at the same time.
    pub gflops_mt: f64,
    pub threads: usize,
}

/// Loop iterations per timed call; each iteration is `CHAINS` vector FMAs.
const ITERS: u64 = 1 << 20;
/// Independent accumulator chains (registers) per thread.
const CHAINS: usize = 12;

/// The instruction set the probe will use on this CPU.
pub fn isa() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return "avx512f";
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return "avx2+fma";
        }
    }
    "scalar"
}

/// Runs `ITERS` iterations and returns the number of FLOPs done.
fn kernel(isa: &str) -> f64 {
    #[cfg(target_arch = "x86_64")]
    {
        if isa == "avx512f" {
            // SAFETY: the CPU reported AVX-512F (see `isa`).
            unsafe { x86::fma_avx512(ITERS) };
            return (ITERS * CHAINS as u64 * 16 * 2) as f64;
        }
        if isa == "avx2+fma" {
            // SAFETY: the CPU reported AVX2 and FMA (see `isa`).
            unsafe { x86::fma_avx2(ITERS) };
            return (ITERS * CHAINS as u64 * 8 * 2) as f64;
        }
    }
    let _ = isa;
    scalar(ITERS);
    (ITERS * CHAINS as u64 * 2) as f64
}

fn scalar(iters: u64) {
    let mut acc = [0.0f32; CHAINS];
    let (a, b) = (black_box(0.999_999f32), black_box(1e-6f32));
    for _ in 0..iters {
        for x in &mut acc {
            *x = x.mul_add(a, b);
        }
    }
    black_box(acc);
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::CHAINS;
    use std::arch::x86_64::*;
    use std::hint::black_box;

    /// `acc = acc · a + b` on 12 ymm accumulators; with a just below 1 the values settle near
    /// b / (1 − a) = 1, so nothing overflows or turns denormal.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn fma_avx2(iters: u64) {
        let a = _mm256_set1_ps(black_box(0.999_999));
        let b = _mm256_set1_ps(black_box(1e-6));
        let mut acc = [_mm256_setzero_ps(); CHAINS];
        for _ in 0..iters {
            // A fixed-size array indexed by constants stays in registers after unrolling.
            for x in &mut acc {
                *x = _mm256_fmadd_ps(*x, a, b);
            }
        }
        black_box(acc);
    }

    /// As [`fma_avx2`] on 12 zmm accumulators.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn fma_avx512(iters: u64) {
        let a = _mm512_set1_ps(black_box(0.999_999));
        let b = _mm512_set1_ps(black_box(1e-6));
        let mut acc = [_mm512_setzero_ps(); CHAINS];
        for _ in 0..iters {
            for x in &mut acc {
                *x = _mm512_fmadd_ps(*x, a, b);
            }
        }
        black_box(acc);
    }
}

/// FLOP/s of one thread: the best of several calls spread over about `budget`.
fn rate_one_thread(isa: &str, budget: Duration) -> f64 {
    let start = Instant::now();
    let mut best = 0.0f64;
    // At least three calls: the first one may run at a lower clock.
    let mut calls = 0;
    while calls < 3 || start.elapsed() < budget {
        let t = Instant::now();
        let flops = kernel(isa);
        let s = t.elapsed().as_secs_f64();
        if s > 0.0 {
            best = best.max(flops / s);
        }
        calls += 1;
    }
    best
}

/// Measures the peak single- and `threads`-thread f32 rate, spending about `budget` on each.
pub fn measure(threads: usize, budget: Duration) -> PeakFlops {
    let isa = isa();
    let one = rate_one_thread(isa, budget);
    let threads = threads.max(1);
    // Every thread runs the same loop at the same time; the sum of their best rates is an
    // upper bound of what they sustain together, so take the rate of the slowest one instead.
    let per_thread: Vec<f64> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| s.spawn(move || rate_one_thread(isa, budget)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or(0.0))
            .collect()
    });
    let slowest = per_thread.iter().copied().fold(f64::INFINITY, f64::min);
    let mt = if slowest.is_finite() {
        slowest * threads as f64
    } else {
        0.0
    };
    PeakFlops {
        isa: isa.to_owned(),
        gflops_1t: one / 1e9,
        gflops_mt: mt / 1e9,
        threads,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_reports_a_positive_rate() {
        let p = measure(2, Duration::from_millis(20));
        assert!(p.gflops_1t > 0.0 && p.gflops_mt > 0.0, "{p:?}");
        assert_eq!(p.threads, 2);
    }
}
