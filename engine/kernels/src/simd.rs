//! Tiny helpers for the hand-written (non-GEMM) loops.
//!
//! The workspace builds for baseline x86-64 (SSE2). The filter loops are written as plain slice
//! loops that LLVM vectorises; [`with_fma`] runs a closure-free kernel body compiled a second time
//! with AVX2+FMA enabled when the CPU has them (checked once at run time). Kernel bodies are
//! generic over `const FMA: bool` and use [`madd`], which becomes a fused multiply-add only in the
//! FMA instantiation (in the baseline one `mul_add` would be a slow libm call).

/// `acc + a * b`, fused when `FMA`.
#[inline(always)]
pub(crate) fn madd<const FMA: bool>(acc: f32, a: f32, b: f32) -> f32 {
    if FMA {
        a.mul_add(b, acc)
    } else {
        acc + a * b
    }
}

/// y += a * x (elementwise, over the shorter length).
#[inline(always)]
pub(crate) fn axpy<const FMA: bool>(y: &mut [f32], x: &[f32], a: f32) {
    let n = y.len().min(x.len());
    let (y, x) = (&mut y[..n], &x[..n]);
    for i in 0..n {
        y[i] = madd::<FMA>(y[i], a, x[i]);
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

/// Declares `fn $name(args)` that dispatches to `$body::<true>` compiled with AVX2+FMA when the CPU
/// supports it, else to `$body::<false>`. `$body` must be `#[inline(always)]`.
macro_rules! dispatch_fma {
    ($vis:vis fn $name:ident($($arg:ident : $ty:ty),* $(,)?) $(-> $ret:ty)? => $body:ident) => {
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                unsafe fn fast($($arg: $ty),*) $(-> $ret)? {
                    $body::<true>($($arg),*)
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
