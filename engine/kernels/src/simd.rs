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
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                unsafe fn fast($($arg: $ty),*) $(-> $ret)? {
                    $body::<true>($($arg),*)
                }
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

/// Most taps [`weighted_sum`] accepts (longer filters fall back to repeated calls).
pub(crate) const MAX_TAPS: usize = 32;

/// `out[i] = (ACC ? out[i] : 0) + Σ_t taps[t] · srcs[t][i]` for `i < out.len()`, taps added in
/// order. One pass over `out`, 16 lanes at a time so LLVM keeps the accumulators in registers.
/// Every `srcs[t]` must be at least `out.len()` long.
#[inline(always)]
pub(crate) fn weighted_sum<const FMA: bool, const ACC: bool>(
    out: &mut [f32],
    srcs: &[&[f32]],
    taps: &[f32],
) {
    const L: usize = 16;
    let n = out.len();
    let k = srcs.len().min(taps.len());
    if k > MAX_TAPS {
        let (first, rest) = (k / 2, k - k / 2);
        weighted_sum::<FMA, ACC>(out, &srcs[..first], &taps[..first]);
        weighted_sum::<FMA, true>(out, &srcs[first..first + rest], &taps[first..first + rest]);
        return;
    }
    let blocks = n / L;
    for b in 0..blocks {
        let i = b * L;
        let mut acc = [0.0f32; L];
        if ACC {
            acc.copy_from_slice(&out[i..i + L]);
        }
        for t in 0..k {
            let tap = taps[t];
            let src = &srcs[t][i..i + L];
            for l in 0..L {
                acc[l] = madd::<FMA>(acc[l], tap, src[l]);
            }
        }
        out[i..i + L].copy_from_slice(&acc);
    }
    for i in blocks * L..n {
        let mut acc = if ACC { out[i] } else { 0.0 };
        for t in 0..k {
            acc = madd::<FMA>(acc, taps[t], srcs[t][i]);
        }
        out[i] = acc;
    }
}
