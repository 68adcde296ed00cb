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
/// order. Taps go in groups of four per pass over `out` (a loop shape LLVM vectorises; rows
/// stay in L1). Every `srcs[t]` must be at least `out.len()` long.
#[inline(always)]
pub(crate) fn weighted_sum<const FMA: bool, const ACC: bool>(
    out: &mut [f32],
    srcs: &[&[f32]],
    taps: &[f32],
) {
    let n = out.len();
    let k = srcs.len().min(taps.len());
    let mut t = 0;
    // Without ACC the first group writes `out` instead of accumulating (fma(a, b, 0) == a·b).
    let mut fresh = !ACC;
    if k == 0 {
        if fresh {
            out.fill(0.0);
        }
        return;
    }
    while t + 4 <= k {
        let (a, b, c, d) = (
            &srcs[t][..n],
            &srcs[t + 1][..n],
            &srcs[t + 2][..n],
            &srcs[t + 3][..n],
        );
        let (ta, tb, tc, td) = (taps[t], taps[t + 1], taps[t + 2], taps[t + 3]);
        if fresh {
            for i in 0..n {
                let acc = madd::<FMA>(ta * a[i], tb, b[i]);
                let acc = madd::<FMA>(acc, tc, c[i]);
                out[i] = madd::<FMA>(acc, td, d[i]);
            }
        } else {
            for i in 0..n {
                let acc = madd::<FMA>(out[i], ta, a[i]);
                let acc = madd::<FMA>(acc, tb, b[i]);
                let acc = madd::<FMA>(acc, tc, c[i]);
                out[i] = madd::<FMA>(acc, td, d[i]);
            }
        }
        fresh = false;
        t += 4;
    }
    if t + 2 <= k {
        let (a, b) = (&srcs[t][..n], &srcs[t + 1][..n]);
        let (ta, tb) = (taps[t], taps[t + 1]);
        if fresh {
            for i in 0..n {
                out[i] = madd::<FMA>(ta * a[i], tb, b[i]);
            }
        } else {
            for i in 0..n {
                let acc = madd::<FMA>(out[i], ta, a[i]);
                out[i] = madd::<FMA>(acc, tb, b[i]);
            }
        }
        fresh = false;
        t += 2;
    }
    if t < k {
        let a = &srcs[t][..n];
        let ta = taps[t];
        if fresh {
            for i in 0..n {
                out[i] = ta * a[i];
            }
        } else {
            for i in 0..n {
                out[i] = madd::<FMA>(out[i], ta, a[i]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_sum_matches_definition() {
        let rows: Vec<Vec<f32>> = (0..7)
            .map(|r| {
                (0..37)
                    .map(|i| (i * 7 + r * 3) as f32 * 0.125 - 2.0)
                    .collect()
            })
            .collect();
        let taps = [0.5f32, -1.25, 2.0, 0.75, -0.5, 1.5, 0.25];
        for k in 0..=7 {
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
        }
    }
}
