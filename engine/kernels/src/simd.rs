//! Tiny helpers for the hand-written (non-GEMM) loops.
//!
//! The workspace builds for baseline x86-64 (SSE2). The filter loops are written as plain slice
//! loops that LLVM vectorises; `dispatch_fma!` compiles a kernel body again with AVX-512 and
//! with AVX2+FMA enabled and picks the best one the CPU has (checked once at run time). Kernel
//! bodies are generic over `const FMA: bool` and use [`madd`], which becomes a fused
//! multiply-add only in the FMA instantiations (in the baseline one `mul_add` would be a slow
//! libm call).

/// `acc + a * b`, fused when `FMA`.
#[inline(always)]
pub(crate) fn madd<const FMA: bool>(acc: f32, a: f32, b: f32) -> f32 {
    if FMA {
        a.mul_add(b, acc)
    } else {
        acc + a * b
    }
}

/// Whether the AVX2+FMA instantiation can run on this CPU.
#[inline]
pub(crate) fn has_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::OnceLock;
        static HAS: OnceLock<bool> = OnceLock::new();
        *HAS.get_or_init(|| {
            std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether the AVX-512 instantiation can run on this CPU.
#[inline]
pub(crate) fn has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::OnceLock;
        static HAS: OnceLock<bool> = OnceLock::new();
        *HAS.get_or_init(|| {
            std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512vl")
                && has_fma()
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Declares `fn $name(args)` that dispatches to `$body::<true>` compiled with AVX-512 or with
/// AVX2+FMA when the CPU supports them, else to `$body::<false>`. `$body` must be
/// `#[inline(always)]` so it is compiled into each instantiation.
macro_rules! dispatch_fma {
    ($vis:vis fn $name:ident($($arg:ident : $ty:ty),* $(,)?) $(-> $ret:ty)? => $body:ident) => {
        #[allow(clippy::too_many_arguments)]
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[allow(clippy::too_many_arguments)]
                #[target_feature(enable = "avx2,fma")]
                unsafe fn fast($($arg: $ty),*) $(-> $ret)? {
                    $body::<true>($($arg),*)
                }
                #[allow(clippy::too_many_arguments)]
                #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
                unsafe fn fast512($($arg: $ty),*) $(-> $ret)? {
                    $body::<true>($($arg),*)
                }
                if $crate::simd::has_avx512() {
                    // SAFETY: the CPU supports the enabled features (checked at run time).
                    return unsafe { fast512($($arg),*) };
                }
                if $crate::simd::has_fma() {
                    // SAFETY: the CPU supports the enabled features (checked at run time).
                    return unsafe { fast($($arg),*) };
                }
            }
            $body::<false>($($arg),*)
        }
    };
}
pub(crate) use dispatch_fma;

/// Longest filter the resampling kernels handle (checked when a layer is built).
pub(crate) const MAX_TAPS: usize = 64;

/// `out[i] = (ACC ? out[i] : 0) + Σ_t taps[t] · srcs[t][i]` for `i < out.len()`, taps added in
/// order (`taps[0]·srcs[0][i]` first, then one multiply-add per tap). Up to eight taps go into
/// one pass over `out` (a loop shape LLVM vectorises; rows stay in L1), so a 6- or 8-tap filter
/// reads and writes `out` once; the grouping does not change the result, since every pass
/// continues the same chain of operations. Every `srcs[t]` must be at least `out.len()` long.
#[inline(always)]
pub(crate) fn weighted_sum<const FMA: bool, const ACC: bool>(
    out: &mut [f32],
    srcs: &[&[f32]],
    taps: &[f32],
) {
    let k = srcs.len().min(taps.len());
    // Without ACC the first pass writes `out` instead of accumulating.
    let mut fresh = !ACC;
    if k == 0 {
        if fresh {
            out.fill(0.0);
        }
        return;
    }
    let mut t = 0;
    while t < k {
        let (s, w) = (&srcs[t..k], &taps[t..k]);
        let used = match k - t {
            1 => pass::<FMA, 1>(out, s, w, fresh),
            2 => pass::<FMA, 2>(out, s, w, fresh),
            3 => pass::<FMA, 3>(out, s, w, fresh),
            4 => pass::<FMA, 4>(out, s, w, fresh),
            5 => pass::<FMA, 5>(out, s, w, fresh),
            6 => pass::<FMA, 6>(out, s, w, fresh),
            7 => pass::<FMA, 7>(out, s, w, fresh),
            _ => pass::<FMA, 8>(out, s, w, fresh),
        };
        fresh = false;
        t += used;
    }
}

/// One pass of [`weighted_sum`] over the first `K` taps; returns `K`.
#[inline(always)]
fn pass<const FMA: bool, const K: usize>(
    out: &mut [f32],
    srcs: &[&[f32]],
    taps: &[f32],
    fresh: bool,
) -> usize {
    let n = out.len();
    let s: [&[f32]; K] = std::array::from_fn(|t| &srcs[t][..n]);
    let w: [f32; K] = std::array::from_fn(|t| taps[t]);
    if fresh {
        for i in 0..n {
            let mut acc = w[0] * s[0][i];
            for t in 1..K {
                acc = madd::<FMA>(acc, w[t], s[t][i]);
            }
            out[i] = acc;
        }
    } else {
        for i in 0..n {
            let mut acc = out[i];
            for t in 0..K {
                acc = madd::<FMA>(acc, w[t], s[t][i]);
            }
            out[i] = acc;
        }
    }
    K
}

/// Interleaves `n` phase rows into `dst`: `dst[q·n + r] = src[r·stride + q]` for every
/// `q·n + r < dst.len()`. Pure data movement; the constant-`N` paths for 2 and 4 phases are
/// written so LLVM turns them into vector loads and shuffles (the generic path divides per
/// element). `src` must hold `n` rows of `stride ≥ ⌈dst.len() / n⌉` values.
#[inline(always)]
pub(crate) fn interleave(dst: &mut [f32], src: &[f32], n: usize, stride: usize) {
    match n {
        1 => dst.copy_from_slice(&src[..dst.len()]),
        2 => interleave_n::<2>(dst, src, stride),
        4 => interleave_n::<4>(dst, src, stride),
        _ => {
            for (x, v) in dst.iter_mut().enumerate() {
                *v = src[(x % n) * stride + x / n];
            }
        }
    }
}

#[inline(always)]
fn interleave_n<const N: usize>(dst: &mut [f32], src: &[f32], stride: usize) {
    let full = dst.len() / N;
    let rows: [&[f32]; N] = std::array::from_fn(|r| &src[r * stride..r * stride + full]);
    let (head, tail) = dst.split_at_mut(full * N);
    for (q, chunk) in head.chunks_exact_mut(N).enumerate() {
        for (r, v) in chunk.iter_mut().enumerate() {
            *v = rows[r][q];
        }
    }
    for (r, v) in tail.iter_mut().enumerate() {
        *v = src[r * stride + full];
    }
}

/// The inverse of [`interleave`] on whole groups: `dst[r·stride + q] = src[q·n + r]` for
/// `q < src.len() / n` (a partial last group is ignored). `dst` must hold `n` rows of
/// `stride ≥ src.len() / n` values.
#[inline(always)]
pub(crate) fn deinterleave(dst: &mut [f32], src: &[f32], n: usize, stride: usize) {
    match n {
        1 => {
            let len = src.len();
            dst[..len].copy_from_slice(src);
        }
        2 => deinterleave_n::<2>(dst, src, stride),
        4 => deinterleave_n::<4>(dst, src, stride),
        _ => {
            for (q, chunk) in src.chunks_exact(n).enumerate() {
                for (r, &v) in chunk.iter().enumerate() {
                    dst[r * stride + q] = v;
                }
            }
        }
    }
}

#[inline(always)]
fn deinterleave_n<const N: usize>(dst: &mut [f32], src: &[f32], stride: usize) {
    let full = src.len() / N;
    let mut planes = dst.chunks_mut(stride.max(1));
    let rows: [&mut [f32]; N] =
        std::array::from_fn(|_| planes.next().map(|p| &mut p[..full]).unwrap_or_default());
    for (q, chunk) in src.chunks_exact(N).enumerate() {
        for (r, &v) in chunk.iter().enumerate() {
            rows[r][q] = v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_sum_matches_definition() {
        // Rows past the seventh are small, so the sums keep the magnitude (and the rounding
        // error) of the first seven.
        let rows: Vec<Vec<f32>> = (0..13)
            .map(|r| {
                let scale = if r < 7 { 1.0 } else { 1.0 / 64.0 };
                (0..37)
                    .map(|i| ((i * 7 + r * 3) as f32 * 0.125 - 2.0) * scale)
                    .collect()
            })
            .collect();
        let taps = [
            0.5f32, -1.25, 2.0, 0.75, -0.5, 1.5, 0.25, 0.3, -0.7, 1.1, 0.9, -0.2, 0.6,
        ];
        for k in 0..=13 {
            let srcs: Vec<&[f32]> = rows[..k].iter().map(|r| r.as_slice()).collect();
            let expect: Vec<f32> = (0..37)
                .map(|i| (0..k).map(|t| taps[t] * rows[t][i]).sum::<f32>())
                .collect();
            let mut out = vec![9.0f32; 37];
            weighted_sum::<false, false>(&mut out, &srcs, &taps[..k]);
            assert_eq!(out, expect, "k={k}");
            let mut acc = vec![1.0f32; 37];
            weighted_sum::<true, true>(&mut acc, &srcs, &taps[..k]);
            for (a, e) in acc.iter().zip(&expect) {
                assert!((a - (e + 1.0)).abs() < 1e-5, "k={k}");
            }
            // The fused path is one chain of multiply-adds in tap order, however the taps are
            // grouped into passes.
            if k > 0 {
                let chain: Vec<f32> = (0..37)
                    .map(|i| {
                        (1..k).fold(taps[0] * rows[0][i], |a, t| taps[t].mul_add(rows[t][i], a))
                    })
                    .collect();
                let mut fused = vec![9.0f32; 37];
                weighted_sum::<true, false>(&mut fused, &srcs, &taps[..k]);
                assert_eq!(fused, chain, "k={k}");
            }
        }
    }

    #[test]
    fn interleave_and_deinterleave_match_definition() {
        for n in 1..=5usize {
            for len in [0usize, 1, 7, 8, 33] {
                let stride = len.div_ceil(n) + 2;
                let src: Vec<f32> = (0..n * stride).map(|i| i as f32 * 0.5 - 3.0).collect();
                let mut dst = vec![f32::NAN; len];
                interleave(&mut dst, &src, n, stride);
                for (x, &v) in dst.iter().enumerate() {
                    assert_eq!(v, src[(x % n) * stride + x / n], "n={n} len={len} x={x}");
                }
                let flat: Vec<f32> = (0..len).map(|i| i as f32 + 0.25).collect();
                let mut phases = vec![-1.0f32; n * stride];
                deinterleave(&mut phases, &flat, n, stride);
                for r in 0..n {
                    for q in 0..stride {
                        let expect = if q < len / n { flat[q * n + r] } else { -1.0 };
                        assert_eq!(phases[r * stride + q], expect, "n={n} len={len} {r} {q}");
                    }
                }
            }
        }
    }
}
