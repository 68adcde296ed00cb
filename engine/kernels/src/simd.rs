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

/// Whether the AVX-512 instantiation can run on this CPU (AVX-512 F, VL and DQ, which every
/// AVX-512 CPU since Skylake-SP has, plus FMA).
#[inline]
pub(crate) fn has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::OnceLock;
        static HAS: OnceLock<bool> = OnceLock::new();
        *HAS.get_or_init(|| {
            std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512vl")
                && std::arch::is_x86_feature_detected!("avx512dq")
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
/// `#[inline(always)]` so it is compiled into each instantiation. `unsafe fn $name` declares
/// an unsafe dispatcher for an unsafe `$body` (same safety contract).
macro_rules! dispatch_fma {
    ($vis:vis fn $name:ident($($arg:ident : $ty:ty),* $(,)?) $(-> $ret:ty)? => $body:ident) => {
        $crate::simd::dispatch_fma!(@emit [] $vis $name ($($arg: $ty),*) [$(-> $ret)?] $body);
    };
    ($vis:vis unsafe fn $name:ident($($arg:ident : $ty:ty),* $(,)?) $(-> $ret:ty)? => $body:ident) => {
        $crate::simd::dispatch_fma!(@emit [unsafe] $vis $name ($($arg: $ty),*) [$(-> $ret)?] $body);
    };
    (@emit [$($u:tt)?] $vis:vis $name:ident ($($arg:ident : $ty:ty),*) [$($ret:tt)*] $body:ident) => {
        #[allow(clippy::too_many_arguments)]
        $vis $($u)? fn $name($($arg: $ty),*) $($ret)* {
            #[cfg(target_arch = "x86_64")]
            {
                #[allow(clippy::too_many_arguments)]
                #[target_feature(enable = "avx2,fma")]
                unsafe fn fast($($arg: $ty),*) $($ret)* {
                    $body::<true>($($arg),*)
                }
                #[allow(clippy::too_many_arguments)]
                #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
                unsafe fn fast512($($arg: $ty),*) $($ret)* {
                    $body::<true>($($arg),*)
                }
                if $crate::simd::has_avx512() {
                    // SAFETY: the CPU supports the enabled features (checked at run time); an
                    // unsafe `$body`'s own contract is the caller's.
                    return unsafe { fast512($($arg),*) };
                }
                if $crate::simd::has_fma() {
                    // SAFETY: as above.
                    return unsafe { fast($($arg),*) };
                }
            }
            $($u)? { $body::<false>($($arg),*) }
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

/// Most sources of one [`weighted_sums`] call that share their loads (more go through
/// [`weighted_sum`] per output).
pub(crate) const SHARED_MAX_SRCS: usize = 16;

/// The nonlinearity [`weighted_sums`] can apply before storing: `v < 0 ? v·slope : v`, times
/// `gain`, clamped to `±clamp`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LeakyClamp {
    pub slope: f32,
    pub gain: f32,
    pub clamp: f32,
}

impl LeakyClamp {
    #[inline(always)]
    pub fn apply(&self, v: f32) -> f32 {
        let v = if v < 0.0 { v * self.slope } else { v };
        (v * self.gain).clamp(-self.clamp, self.clamp)
    }
}

/// Several weighted sums of the same sources: `outs[j][i] = act(Σ_s taps[j·S + s] ·
/// base[offsets[s] + i])` for every output `j` and `i < n` (`n`: the shortest output; `S =
/// offsets.len()`), each sum one multiply-add chain in source order (zero taps included). The
/// sources are windows of one buffer (shifted copies of a row, or rows of a block).
///
/// The point is the loads: the outputs of a polyphase filter (the phases of an upsampling, or
/// neighbouring output rows of a downsampling) read overlapping windows of the same rows, so
/// loading each source value once for all outputs, with the taps held in registers, needs
/// about one load per `R` multiply-adds instead of one or two per multiply-add. Up to
/// [`SHARED_MAX_SRCS`] sources and 1, 2 or 4 outputs take that path, with explicit AVX-512 or
/// AVX2 vectors where the CPU has them (the compiler does not vectorise this loop by itself:
/// it cannot prove that so many slices don't overlap); other shapes fall back to one
/// [`weighted_sum`] per output (same results, slower).
///
/// # Panics
/// If a window runs past `base` or `taps` is shorter than `R · S`.
pub(crate) fn weighted_sums(
    outs: &mut [&mut [f32]],
    base: &[f32],
    offsets: &[usize],
    taps: &[f32],
    act: Option<LeakyClamp>,
) {
    let r = outs.len();
    let ns = offsets.len();
    let n = outs.iter().map(|o| o.len()).min().unwrap_or(0);
    if r == 0 || n == 0 {
        return;
    }
    assert!(
        taps.len() >= r * ns
            && offsets
                .iter()
                .all(|&o| o.checked_add(n).is_some_and(|end| end <= base.len())),
        "weighted_sums: taps or source windows out of range"
    );
    // The shared path folds the gain into the taps (`lrelu(v)·g = lrelu(v·g)` for `g > 0`),
    // saving a multiply per value; other gains take the fallback.
    let foldable = act.is_none_or(|a| a.gain > 0.0 && a.gain.is_finite());
    if ns == 0 || ns > SHARED_MAX_SRCS || !matches!(r, 1 | 2 | 4) || !foldable {
        let mut srcs: [&[f32]; MAX_TAPS] = [&[]; MAX_TAPS];
        for (sl, &o) in srcs.iter_mut().zip(offsets) {
            *sl = &base[o..o + n];
        }
        let srcs = &srcs[..ns.min(MAX_TAPS)];
        for (j, out) in outs.iter_mut().enumerate() {
            let out = &mut out[..n];
            let taps_j = &taps[j * ns..j * ns + srcs.len()];
            #[cfg(target_arch = "x86_64")]
            if has_fma() {
                // SAFETY: the CPU has AVX2 and FMA.
                unsafe { weighted_sum_fma(out, srcs, taps_j) };
            } else {
                weighted_sum::<false, false>(out, srcs, taps_j);
            }
            #[cfg(not(target_arch = "x86_64"))]
            weighted_sum::<false, false>(out, srcs, taps_j);
            if let Some(a) = act {
                for v in out.iter_mut() {
                    *v = a.apply(*v);
                }
            }
        }
        return;
    }
    let act = act.unwrap_or(NO_ACT);
    let mut ptrs = SumPtrs {
        outs: [std::ptr::null_mut(); 4],
        r,
        // (in bounds: checked above; `ns >= 1` here)
        srcs: [base[offsets[0]..].as_ptr(); SHARED_MAX_SRCS],
        s: ns,
        n,
        zipped: None,
    };
    for (d, o) in ptrs.outs.iter_mut().zip(outs.iter_mut()) {
        *d = o.as_mut_ptr();
    }
    for (d, &o) in ptrs.srcs.iter_mut().zip(offsets) {
        // in bounds: checked above
        *d = base[o..].as_ptr();
    }
    // SAFETY: `ptrs` addresses `n` values of every output and source (checked above),
    // outputs distinct `&mut` slices.
    unsafe { run_sums(&ptrs, taps, act) };
}

/// Runs the sums of `ptrs` on the best path this CPU has.
///
/// # Safety
/// Every pointer of `ptrs` must address the values the pass reads or writes (`n` of each
/// source and output, `zipped` of a zipped output), outputs not overlapping anything else.
unsafe fn run_sums(ptrs: &SumPtrs, taps: &[f32], act: LeakyClamp) {
    #[cfg(target_arch = "x86_64")]
    {
        if has_avx512() {
            // SAFETY: the CPU has the features; the pointers as the caller promises.
            unsafe { vector::sums_avx512(ptrs, taps, act) };
            return;
        }
        if has_fma() {
            // SAFETY: as above.
            unsafe { vector::sums_avx2(ptrs, taps, act) };
            return;
        }
    }
    vector::sums_portable(ptrs, taps, act);
}

/// Two weighted sums of the same sources, stored interleaved: `dst[2i + j] = Σ_s taps[j·S +
/// s] · base[offsets[s] + i]` for `2i + j < dst.len()`. The same sums as [`weighted_sums`]
/// with two outputs (bit for bit) followed by [`interleave`], without the two phase rows in
/// between: the interleaving is two permutes per pair of vectors before the stores, instead of
/// a store, a reload and a scalar-indexed pass over the whole row.
///
/// # Panics
/// If `offsets` is empty or longer than [`SHARED_MAX_SRCS`], a window of
/// `dst.len().div_ceil(2)` values runs past `base`, or `taps` is shorter than `2 · S`.
pub(crate) fn weighted_sums_zip2(dst: &mut [f32], base: &[f32], offsets: &[usize], taps: &[f32]) {
    let ns = offsets.len();
    let n = dst.len().div_ceil(2);
    if n == 0 {
        return;
    }
    assert!(
        (1..=SHARED_MAX_SRCS).contains(&ns)
            && taps.len() >= 2 * ns
            && offsets
                .iter()
                .all(|&o| o.checked_add(n).is_some_and(|end| end <= base.len())),
        "weighted_sums_zip2: sources, taps or source windows out of range"
    );
    let mut ptrs = SumPtrs {
        outs: [
            dst.as_mut_ptr(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        ],
        r: 2,
        srcs: [base[offsets[0]..].as_ptr(); SHARED_MAX_SRCS],
        s: ns,
        n,
        zipped: Some(dst.len()),
    };
    for (d, &o) in ptrs.srcs.iter_mut().zip(offsets) {
        // in bounds: checked above
        *d = base[o..].as_ptr();
    }
    // SAFETY: `ptrs` addresses `n` values of every source and `dst.len()` values of the one
    // output (checked above).
    unsafe { run_sums(&ptrs, taps, NO_ACT) };
}

/// The F(4×4, 3×3) Winograd input transform `t = Bᵀ·d` along one axis, on whole rows:
/// `outs[r][i]` from `base[offsets[k] + i]`, `k < 6` (`i <` the shortest output). See
/// `vector::f4_in` for the arithmetic.
///
/// # Panics
/// If a source window runs past `base`.
pub(crate) fn winograd_f4_input(outs: [&mut [f32]; 6], base: &[f32], offsets: [usize; 6]) {
    #[cfg(target_arch = "x86_64")]
    let fast: Option<F4Rows<6>> = if has_avx512() {
        Some(vector::f4_in_avx512)
    } else if has_fma() {
        Some(vector::f4_in_avx2)
    } else {
        None
    };
    #[cfg(not(target_arch = "x86_64"))]
    let fast = None;
    f4_rows(outs, base, offsets, fast, vector::f4_in_portable);
}

/// The F(4×4, 3×3) Winograd output transform `y = Aᵀ·m` along one axis, on whole rows:
/// `outs[r][i]` from `base[offsets[k] + i]`, `k < 6`.
///
/// # Panics
/// If a source window runs past `base`.
pub(crate) fn winograd_f4_output(outs: [&mut [f32]; 4], base: &[f32], offsets: [usize; 6]) {
    #[cfg(target_arch = "x86_64")]
    let fast: Option<F4Rows<4>> = if has_avx512() {
        Some(vector::f4_out_avx512)
    } else if has_fma() {
        Some(vector::f4_out_avx2)
    } else {
        None
    };
    #[cfg(not(target_arch = "x86_64"))]
    let fast = None;
    f4_rows(outs, base, offsets, fast, vector::f4_out_portable);
}

/// A Winograd row transform of six source rows into `N` output rows of `n` values.
type F4Rows<const N: usize> = unsafe fn(&[*const f32; 6], &[*mut f32; N], usize);

/// Checks the rows and runs `fast` (a kernel the CPU supports, chosen by the caller) or
/// `portable`.
fn f4_rows<const N: usize>(
    mut outs: [&mut [f32]; N],
    base: &[f32],
    offsets: [usize; 6],
    fast: Option<F4Rows<N>>,
    portable: fn(&[*const f32; 6], &[*mut f32; N], usize),
) {
    let n = outs.iter().map(|o| o.len()).min().unwrap_or(0);
    assert!(
        offsets
            .iter()
            .all(|&o| o.checked_add(n).is_some_and(|e| e <= base.len())),
        "Winograd row transform: source window out of range"
    );
    let src: [*const f32; 6] = std::array::from_fn(|k| base[offsets[k]..].as_ptr());
    let dst: [*mut f32; N] = std::array::from_fn(|k| outs[k].as_mut_ptr());
    match fast {
        // SAFETY: the caller picked a kernel the CPU supports; every row holds `n` values
        // (checked above) and the outputs are distinct `&mut` slices.
        Some(f) => unsafe { f(&src, &dst, n) },
        None => portable(&src, &dst, n),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn weighted_sum_fma(out: &mut [f32], srcs: &[&[f32]], taps: &[f32]) {
    weighted_sum::<true, false>(out, srcs, taps)
}

const NO_ACT: LeakyClamp = LeakyClamp {
    slope: 1.0,
    gain: 1.0,
    clamp: f32::INFINITY,
};

/// The rows of one [`weighted_sums`] call as raw pointers (`n` values each).
struct SumPtrs {
    outs: [*mut f32; 4],
    r: usize,
    /// The `s` sources, then repeats of the first.
    srcs: [*const f32; SHARED_MAX_SRCS],
    s: usize,
    n: usize,
    /// `Some(len)`: two outputs stored interleaved into `outs[0]` (`len` values: output `j`'s
    /// value `i` at `2i + j`), see [`weighted_sums_zip2`].
    zipped: Option<usize>,
}

mod vector {
    //! The [`weighted_sums`](super::weighted_sums) loop, generic over a vector type.
    use super::{LeakyClamp, SumPtrs, SHARED_MAX_SRCS};

    /// What the loop needs of a vector type.
    pub(super) trait Lanes {
        type V: Copy;
        const N: usize;
        unsafe fn load(p: *const f32) -> Self::V;
        unsafe fn store(p: *mut f32, v: Self::V);
        /// The first `n ≤ N` lanes from `p` (others zero); nothing past them is read.
        unsafe fn load_n(p: *const f32, n: usize) -> Self::V;
        /// Stores the first `n ≤ N` lanes; nothing past them is written.
        unsafe fn store_n(p: *mut f32, v: Self::V, n: usize);
        /// The lanes of `a` and `b` alternated (`a0 b0 a1 b1 …`): the first `N`, the next `N`.
        unsafe fn zip(a: Self::V, b: Self::V) -> (Self::V, Self::V);
        unsafe fn splat(x: f32) -> Self::V;
        unsafe fn mul(a: Self::V, b: Self::V) -> Self::V;
        unsafe fn add(a: Self::V, b: Self::V) -> Self::V;
        unsafe fn sub(a: Self::V, b: Self::V) -> Self::V;
        /// `a · b + c`
        unsafe fn fma(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
        /// The leaky ReLU and clamp of `a`, without its gain (folded into the taps).
        unsafe fn act(v: Self::V, a: &LeakyClamp) -> Self::V;
    }

    /// The pass for `R` outputs and `S` sources (missing sources get zero taps on a repeat of
    /// source 0); `C` vectors per output per step, so `R·C` chains are in flight. `Z` (with
    /// `R = 2`): the two outputs go interleaved into `outs[0]` (`p.zipped` values).
    // Register blocks indexed by (output, column): index loops are the clear form here.
    #[allow(clippy::needless_range_loop)]
    #[inline(always)]
    unsafe fn pass<
        L: Lanes,
        const ACT: bool,
        const Z: bool,
        const R: usize,
        const S: usize,
        const C: usize,
    >(
        p: &SumPtrs,
        taps: &[f32],
        act: &LeakyClamp,
    ) {
        // Plain loops, not `array::from_fn`: its closures are not compiled with the caller's
        // target features, so they stay out-of-line calls (with `splat` a call per tap), a
        // set-up cost that measured 4-5 % of an SG3-T 256 image.
        let ns = p.s.min(S);
        // A copy of constant length (sources past `ns` repeat source 0), which compiles to a
        // few moves: copying just `ns` was a `memcpy` call per pass.
        let mut src = [p.srcs[0]; S];
        src.copy_from_slice(&p.srcs[..S]);
        let zero = L::splat(0.0);
        let mut w = [[zero; S]; R];
        // the gain goes into the taps (positive: checked by `weighted_sums`)
        let g = if ACT { act.gain } else { 1.0 };
        for (j, wj) in w.iter_mut().enumerate() {
            for (s, ws) in wj.iter_mut().enumerate().take(ns) {
                *ws = L::splat(taps[j * p.s + s] * g);
            }
        }
        let n = p.n;
        // Zipped: whole vectors while both outputs' values are all kept (an odd length drops
        // the second output's last value), then the partial vector.
        let zlen = p.zipped.unwrap_or(0);
        let whole = if Z { zlen / 2 } else { n };
        let step = L::N * C;
        let mut i = 0;
        while i + step <= whole {
            // C vector columns advance together: R·C independent chains per source, each
            // source vector loaded once for the R outputs.
            let mut acc: [[L::V; C]; R] = [[L::splat(0.0); C]; R];
            for c in 0..C {
                let v = L::load(src[0].add(i + c * L::N));
                for j in 0..R {
                    acc[j][c] = L::mul(w[j][0], v);
                }
            }
            for s in 1..S {
                for c in 0..C {
                    let v = L::load(src[s].add(i + c * L::N));
                    for j in 0..R {
                        acc[j][c] = L::fma(w[j][s], v, acc[j][c]);
                    }
                }
            }
            if Z {
                for c in 0..C {
                    let (lo, hi) = L::zip(acc[0][c], acc[1][c]);
                    let d = p.outs[0].add(2 * (i + c * L::N));
                    L::store(d, lo);
                    L::store(d.add(L::N), hi);
                }
            } else {
                for (j, acc_j) in acc.iter().enumerate() {
                    for (c, &v) in acc_j.iter().enumerate() {
                        let v = if ACT { L::act(v, act) } else { v };
                        L::store(p.outs[j].add(i + c * L::N), v);
                    }
                }
            }
            i += step;
        }
        while i + L::N <= whole {
            let mut acc: [L::V; R] = [L::splat(0.0); R];
            let v = L::load(src[0].add(i));
            for j in 0..R {
                acc[j] = L::mul(w[j][0], v);
            }
            for s in 1..S {
                let v = L::load(src[s].add(i));
                for j in 0..R {
                    acc[j] = L::fma(w[j][s], v, acc[j]);
                }
            }
            if Z {
                let (lo, hi) = L::zip(acc[0], acc[1]);
                L::store(p.outs[0].add(2 * i), lo);
                L::store(p.outs[0].add(2 * i + L::N), hi);
            } else {
                for (j, &v) in acc.iter().enumerate() {
                    let v = if ACT { L::act(v, act) } else { v };
                    L::store(p.outs[j].add(i), v);
                }
            }
            i += L::N;
        }
        if i < n {
            // the last few values: one partial vector
            let k = n - i;
            let mut acc: [L::V; R] = [L::splat(0.0); R];
            let v = L::load_n(src[0].add(i), k);
            for j in 0..R {
                acc[j] = L::mul(w[j][0], v);
            }
            for s in 1..S {
                let v = L::load_n(src[s].add(i), k);
                for j in 0..R {
                    acc[j] = L::fma(w[j][s], v, acc[j]);
                }
            }
            if Z {
                // 2k − 1 or 2k values left (k ≤ N: an odd length can leave a whole vector)
                let left = zlen - 2 * i;
                let (lo, hi) = L::zip(acc[0], acc[1]);
                L::store_n(p.outs[0].add(2 * i), lo, left.min(L::N));
                if left > L::N {
                    L::store_n(p.outs[0].add(2 * i + L::N), hi, left - L::N);
                }
            } else {
                for (j, &v) in acc.iter().enumerate() {
                    let v = if ACT { L::act(v, act) } else { v };
                    L::store_n(p.outs[j].add(i), v, k);
                }
            }
        }
    }

    /// Picks the instantiation for `p.r` outputs and `p.s` sources.
    #[inline(always)]
    unsafe fn dispatch<L: Lanes>(p: &SumPtrs, taps: &[f32], act: LeakyClamp) {
        let with_act = act.slope != 1.0 || act.gain != 1.0 || act.clamp != f32::INFINITY;
        macro_rules! go {
            ($r:literal, $s:literal, $c:literal) => {
                if with_act {
                    pass::<L, true, false, $r, $s, $c>(p, taps, &act)
                } else {
                    pass::<L, false, false, $r, $s, $c>(p, taps, &act)
                }
            };
        }
        macro_rules! go_zip {
            ($r:literal, $s:literal, $c:literal) => {
                pass::<L, false, true, 2, $s, 4>(p, taps, &act)
            };
        }
        macro_rules! by_srcs {
            ($go:ident, $r:literal, $c:literal) => {
                match p.s {
                    0..=4 => $go!($r, 4, $c),
                    5..=6 => $go!($r, 6, $c),
                    7 => $go!($r, 7, $c),
                    8 => $go!($r, 8, $c),
                    9..=12 => $go!($r, 12, $c),
                    13..=14 => $go!($r, 14, $c),
                    _ => $go!($r, 16, $c),
                }
            };
        }
        const _: () = assert!(SHARED_MAX_SRCS == 16);
        if p.zipped.is_some() {
            // (`weighted_sums_zip2`: two outputs, no nonlinearity)
            return by_srcs!(go_zip, 2, 4);
        }
        match p.r {
            1 => by_srcs!(go, 1, 4),
            2 => by_srcs!(go, 2, 4),
            _ => by_srcs!(go, 4, 2),
        }
    }

    struct Portable;
    impl Lanes for Portable {
        type V = f32;
        const N: usize = 1;
        unsafe fn load(p: *const f32) -> f32 {
            *p
        }
        unsafe fn store(p: *mut f32, v: f32) {
            *p = v
        }
        // One lane: a partial vector is empty or the whole one.
        unsafe fn load_n(p: *const f32, n: usize) -> f32 {
            if n > 0 {
                *p
            } else {
                0.0
            }
        }
        unsafe fn store_n(p: *mut f32, v: f32, n: usize) {
            if n > 0 {
                *p = v
            }
        }
        unsafe fn zip(a: f32, b: f32) -> (f32, f32) {
            (a, b)
        }
        unsafe fn splat(x: f32) -> f32 {
            x
        }
        unsafe fn mul(a: f32, b: f32) -> f32 {
            a * b
        }
        unsafe fn add(a: f32, b: f32) -> f32 {
            a + b
        }
        unsafe fn sub(a: f32, b: f32) -> f32 {
            a - b
        }
        unsafe fn fma(a: f32, b: f32, c: f32) -> f32 {
            a * b + c
        }
        unsafe fn act(v: f32, a: &LeakyClamp) -> f32 {
            let v = if v < 0.0 { v * a.slope } else { v };
            v.clamp(-a.clamp, a.clamp)
        }
    }

    /// `t = Bᵀ·d` of F(4×4, 3×3) on rows of `n` values, with the usual common subexpressions
    /// (10 operations for the six outputs instead of 22 multiply-adds):
    /// `t0 = 4d0 − 5d2 + d4`, `t1,2 = (d4 − 4d2) ± (d3 − 4d1)`, `t3,4 = (d4 − d2) ± 2(d3 − d1)`,
    /// `t5 = 4d1 − 5d3 + d5`.
    #[inline(always)]
    unsafe fn f4_in<L: Lanes>(d: &[*const f32; 6], t: &[*mut f32; 6], n: usize) {
        /// Values `i .. i + N` (`i .. i + k` when `PART`).
        #[inline(always)]
        unsafe fn one<L: Lanes, const PART: bool>(
            d: &[*const f32; 6],
            t: &[*mut f32; 6],
            i: usize,
            k: usize,
        ) {
            let ld = |p: *const f32| if PART { L::load_n(p, k) } else { L::load(p) };
            let st = |p: *mut f32, v| {
                if PART {
                    L::store_n(p, v, k)
                } else {
                    L::store(p, v)
                }
            };
            let x: [L::V; 6] = std::array::from_fn(|r| ld(d[r].add(i)));
            let (c4, c5, c2) = (L::splat(4.0), L::splat(-5.0), L::splat(2.0));
            let m4 = L::splat(-4.0);
            let p = L::fma(m4, x[2], x[4]);
            let q = L::fma(m4, x[1], x[3]);
            let r = L::sub(x[4], x[2]);
            let u = L::sub(x[3], x[1]);
            st(t[0].add(i), L::fma(c4, x[0], L::fma(c5, x[2], x[4])));
            st(t[1].add(i), L::add(p, q));
            st(t[2].add(i), L::sub(p, q));
            st(t[3].add(i), L::fma(c2, u, r));
            st(t[4].add(i), L::fma(L::splat(-2.0), u, r));
            st(t[5].add(i), L::fma(c4, x[1], L::fma(c5, x[3], x[5])));
        }
        let mut i = 0;
        while i + L::N <= n {
            one::<L, false>(d, t, i, 0);
            i += L::N;
        }
        if i < n {
            one::<L, true>(d, t, i, n - i);
        }
    }

    /// `y = Aᵀ·m` of F(4×4, 3×3) on rows of `n` values: with `a, b = m1 ± m2` and `c, e = m3 ±
    /// m4`, `y0 = m0 + a + c`, `y1 = b + 2e`, `y2 = a + 4c`, `y3 = b + 8e + m5`.
    #[inline(always)]
    unsafe fn f4_out<L: Lanes>(m: &[*const f32; 6], y: &[*mut f32; 4], n: usize) {
        /// Values `i .. i + N` (`i .. i + k` when `PART`).
        #[inline(always)]
        unsafe fn one<L: Lanes, const PART: bool>(
            m: &[*const f32; 6],
            y: &[*mut f32; 4],
            i: usize,
            k: usize,
        ) {
            let ld = |p: *const f32| if PART { L::load_n(p, k) } else { L::load(p) };
            let st = |p: *mut f32, v| {
                if PART {
                    L::store_n(p, v, k)
                } else {
                    L::store(p, v)
                }
            };
            let x: [L::V; 6] = std::array::from_fn(|r| ld(m[r].add(i)));
            let a = L::add(x[1], x[2]);
            let b = L::sub(x[1], x[2]);
            let c = L::add(x[3], x[4]);
            let e = L::sub(x[3], x[4]);
            st(y[0].add(i), L::add(L::add(x[0], a), c));
            st(y[1].add(i), L::fma(L::splat(2.0), e, b));
            st(y[2].add(i), L::fma(L::splat(4.0), c, a));
            st(y[3].add(i), L::add(L::fma(L::splat(8.0), e, b), x[5]));
        }
        let mut i = 0;
        while i + L::N <= n {
            one::<L, false>(m, y, i, 0);
            i += L::N;
        }
        if i < n {
            one::<L, true>(m, y, i, n - i);
        }
    }

    pub(super) fn f4_in_portable(d: &[*const f32; 6], t: &[*mut f32; 6], n: usize) {
        // SAFETY: the caller (`winograd_f4_input`) checked the rows.
        unsafe { f4_in::<Portable>(d, t, n) }
    }

    pub(super) fn f4_out_portable(m: &[*const f32; 6], y: &[*mut f32; 4], n: usize) {
        // SAFETY: the caller (`winograd_f4_output`) checked the rows.
        unsafe { f4_out::<Portable>(m, y, n) }
    }

    pub(super) fn sums_portable(p: &SumPtrs, taps: &[f32], act: LeakyClamp) {
        // SAFETY: `weighted_sums` built `p` from live slices of `p.n` values.
        unsafe { dispatch::<Portable>(p, taps, act) }
    }

    #[cfg(target_arch = "x86_64")]
    pub(super) use x86::{f4_in_avx2, f4_in_avx512, f4_out_avx2, f4_out_avx512};
    #[cfg(target_arch = "x86_64")]
    pub(super) use x86::{sums_avx2, sums_avx512};

    #[cfg(target_arch = "x86_64")]
    mod x86 {
        use super::{dispatch, f4_in, f4_out, Lanes, LeakyClamp, SumPtrs};
        use std::arch::x86_64::*;

        pub(crate) struct Avx512;
        impl Lanes for Avx512 {
            type V = __m512;
            const N: usize = 16;
            #[inline(always)]
            unsafe fn load(p: *const f32) -> __m512 {
                _mm512_loadu_ps(p)
            }
            #[inline(always)]
            unsafe fn store(p: *mut f32, v: __m512) {
                _mm512_storeu_ps(p, v)
            }
            #[inline(always)]
            unsafe fn load_n(p: *const f32, n: usize) -> __m512 {
                // masked-off lanes are neither read nor faulted on
                _mm512_maskz_loadu_ps(((1u32 << n) - 1) as __mmask16, p)
            }
            #[inline(always)]
            unsafe fn store_n(p: *mut f32, v: __m512, n: usize) {
                _mm512_mask_storeu_ps(p, ((1u32 << n) - 1) as __mmask16, v)
            }
            #[inline(always)]
            unsafe fn zip(a: __m512, b: __m512) -> (__m512, __m512) {
                // index k < 16 picks a[k], 16 + k picks b[k]
                let lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
                let hi =
                    _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
                (
                    _mm512_permutex2var_ps(a, lo, b),
                    _mm512_permutex2var_ps(a, hi, b),
                )
            }
            #[inline(always)]
            unsafe fn splat(x: f32) -> __m512 {
                _mm512_set1_ps(x)
            }
            #[inline(always)]
            unsafe fn mul(a: __m512, b: __m512) -> __m512 {
                _mm512_mul_ps(a, b)
            }
            #[inline(always)]
            unsafe fn add(a: __m512, b: __m512) -> __m512 {
                _mm512_add_ps(a, b)
            }
            #[inline(always)]
            unsafe fn sub(a: __m512, b: __m512) -> __m512 {
                _mm512_sub_ps(a, b)
            }
            #[inline(always)]
            unsafe fn fma(a: __m512, b: __m512, c: __m512) -> __m512 {
                _mm512_fmadd_ps(a, b, c)
            }
            #[inline(always)]
            unsafe fn act(v: __m512, a: &LeakyClamp) -> __m512 {
                let neg = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(v, _mm512_setzero_ps());
                let v = _mm512_mask_mul_ps(v, neg, v, _mm512_set1_ps(a.slope));
                // One `vrangeps` for the clamp: of v and c (c ≥ 0) the one with the smaller
                // magnitude (imm bits 1:0 = 10) with v's sign (bits 3:2 = 00), which is
                // f32::clamp(v, −c, c) for every non-NaN v, ±0 included. Max-then-min took two
                // operations on the ports the FMAs use.
                _mm512_range_ps::<0b0010>(v, _mm512_set1_ps(a.clamp))
            }
        }

        /// The mask of lanes `0..n`.
        #[inline(always)]
        unsafe fn lanes_below(n: usize) -> __m256i {
            _mm256_cmpgt_epi32(
                _mm256_set1_epi32(n as i32),
                _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
            )
        }

        pub(crate) struct Avx2;
        impl Lanes for Avx2 {
            type V = __m256;
            const N: usize = 8;
            #[inline(always)]
            unsafe fn load(p: *const f32) -> __m256 {
                _mm256_loadu_ps(p)
            }
            #[inline(always)]
            unsafe fn store(p: *mut f32, v: __m256) {
                _mm256_storeu_ps(p, v)
            }
            #[inline(always)]
            unsafe fn load_n(p: *const f32, n: usize) -> __m256 {
                _mm256_maskload_ps(p, lanes_below(n))
            }
            #[inline(always)]
            unsafe fn store_n(p: *mut f32, v: __m256, n: usize) {
                _mm256_maskstore_ps(p, lanes_below(n), v)
            }
            #[inline(always)]
            unsafe fn zip(a: __m256, b: __m256) -> (__m256, __m256) {
                // per 128-bit half: a0 b0 a1 b1 | a4 b4 a5 b5 and a2 b2 a3 b3 | a6 b6 a7 b7
                let l = _mm256_unpacklo_ps(a, b);
                let h = _mm256_unpackhi_ps(a, b);
                (
                    _mm256_permute2f128_ps::<0x20>(l, h),
                    _mm256_permute2f128_ps::<0x31>(l, h),
                )
            }
            #[inline(always)]
            unsafe fn splat(x: f32) -> __m256 {
                _mm256_set1_ps(x)
            }
            #[inline(always)]
            unsafe fn mul(a: __m256, b: __m256) -> __m256 {
                _mm256_mul_ps(a, b)
            }
            #[inline(always)]
            unsafe fn add(a: __m256, b: __m256) -> __m256 {
                _mm256_add_ps(a, b)
            }
            #[inline(always)]
            unsafe fn sub(a: __m256, b: __m256) -> __m256 {
                _mm256_sub_ps(a, b)
            }
            #[inline(always)]
            unsafe fn fma(a: __m256, b: __m256, c: __m256) -> __m256 {
                _mm256_fmadd_ps(a, b, c)
            }
            #[inline(always)]
            unsafe fn act(v: __m256, a: &LeakyClamp) -> __m256 {
                let neg = _mm256_cmp_ps::<_CMP_LT_OQ>(v, _mm256_setzero_ps());
                let v = _mm256_blendv_ps(v, _mm256_mul_ps(v, _mm256_set1_ps(a.slope)), neg);
                let v = _mm256_max_ps(v, _mm256_set1_ps(-a.clamp));
                _mm256_min_ps(v, _mm256_set1_ps(a.clamp))
            }
        }

        /// # Safety
        /// The CPU must have AVX-512F and DQ; `p` as built by `weighted_sums`.
        #[target_feature(enable = "avx512f,avx512dq,avx2,fma")]
        pub(crate) unsafe fn sums_avx512(p: &SumPtrs, taps: &[f32], act: LeakyClamp) {
            dispatch::<Avx512>(p, taps, act)
        }

        /// # Safety
        /// The CPU must have AVX2 and FMA; `p` as built by `weighted_sums`.
        #[target_feature(enable = "avx2,fma")]
        pub(crate) unsafe fn sums_avx2(p: &SumPtrs, taps: &[f32], act: LeakyClamp) {
            dispatch::<Avx2>(p, taps, act)
        }

        /// # Safety
        /// The CPU must have AVX-512F; every row must hold `n` values.
        #[target_feature(enable = "avx512f,avx2,fma")]
        pub(crate) unsafe fn f4_in_avx512(d: &[*const f32; 6], t: &[*mut f32; 6], n: usize) {
            f4_in::<Avx512>(d, t, n)
        }

        /// # Safety
        /// The CPU must have AVX2 and FMA; every row must hold `n` values.
        #[target_feature(enable = "avx2,fma")]
        pub(crate) unsafe fn f4_in_avx2(d: &[*const f32; 6], t: &[*mut f32; 6], n: usize) {
            f4_in::<Avx2>(d, t, n)
        }

        /// # Safety
        /// The CPU must have AVX-512F; every row must hold `n` values.
        #[target_feature(enable = "avx512f,avx2,fma")]
        pub(crate) unsafe fn f4_out_avx512(m: &[*const f32; 6], y: &[*mut f32; 4], n: usize) {
            f4_out::<Avx512>(m, y, n)
        }

        /// # Safety
        /// The CPU must have AVX2 and FMA; every row must hold `n` values.
        #[target_feature(enable = "avx2,fma")]
        pub(crate) unsafe fn f4_out_avx2(m: &[*const f32; 6], y: &[*mut f32; 4], n: usize) {
            f4_out::<Avx2>(m, y, n)
        }
    }
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

/// Stores one packed panel row (48 values) to `dst`: with AVX-512 and `dst` on a 64-byte
/// boundary as three streaming (non-temporal) stores that skip the cache and the read of the
/// lines they overwrite, else a plain copy. Callers run [`store_fence`] before another thread
/// reads what they stored.
///
/// # Panics
/// If `dst` is not 48 values.
#[inline]
pub(crate) fn stream_panel(dst: &mut [f32], src: &[f32; 48]) {
    assert_eq!(dst.len(), 48, "stream_panel: a panel row is 48 values");
    #[cfg(target_arch = "x86_64")]
    if has_avx512() && dst.as_ptr().align_offset(64) == 0 {
        // SAFETY: the CPU has AVX-512F; `dst` holds 48 values from a 64-byte boundary.
        unsafe { stream_panel_avx512(dst.as_mut_ptr(), src) };
        return;
    }
    dst.copy_from_slice(src);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn stream_panel_avx512(dst: *mut f32, src: &[f32; 48]) {
    use std::arch::x86_64::*;
    for k in 0..3 {
        _mm512_stream_ps(dst.add(16 * k), _mm512_loadu_ps(src.as_ptr().add(16 * k)));
    }
}

/// Orders this thread's earlier streaming stores before its later stores (`sfence`), so a
/// thread that synchronises with it afterwards sees them.
#[inline]
pub(crate) fn store_fence() {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `sfence` has no preconditions (SSE, part of x86_64).
    unsafe {
        std::arch::x86_64::_mm_sfence()
    };
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
    fn weighted_sums_match_definition() {
        // Every output count (shared and fallback shapes), source counts on and between the
        // instantiated sizes and past the shared limit, lengths with vector and scalar tails,
        // with and without the nonlinearity (a positive gain, which the shared path folds into
        // the taps, and a negative one, which it cannot).
        let base: Vec<f32> = (0..400)
            .map(|i| ((i * 37 % 29) as f32 - 14.0) / 8.0)
            .collect();
        let act = LeakyClamp {
            slope: 0.2,
            gain: 1.5,
            clamp: 2.0,
        };
        let negative_gain = LeakyClamp { gain: -0.5, ..act };
        for r in 1..=5usize {
            for ns in [1usize, 3, 5, 7, 8, 9, 11, 14, 16, 17, 30] {
                for n in [1usize, 15, 16, 37, 130] {
                    let offsets: Vec<usize> = (0..ns).map(|s| (s * 9 + r) % 200).collect();
                    let taps: Vec<f32> = (0..r * ns)
                        .map(|i| ((i * 13 % 17) as f32 - 8.0) / 16.0)
                        .collect();
                    for a in [None, Some(act), Some(negative_gain)] {
                        let mut bufs = vec![vec![f32::NAN; n + 3]; r];
                        let mut outs: Vec<&mut [f32]> =
                            bufs.iter_mut().map(|b| &mut b[..n]).collect();
                        weighted_sums(&mut outs, &base, &offsets, &taps, a);
                        for (j, b) in bufs.iter().enumerate() {
                            for (i, &got) in b[..n].iter().enumerate() {
                                let e: f64 = (0..ns)
                                    .map(|s| taps[j * ns + s] as f64 * base[offsets[s] + i] as f64)
                                    .sum();
                                let e = match a {
                                    Some(a) => a.apply(e as f32) as f64,
                                    None => e,
                                };
                                assert!(
                                    (got as f64 - e).abs() < 1e-5 * (1.0 + e.abs()),
                                    "r={r} ns={ns} n={n} act={a:?} ({j},{i}): {got} vs {e}"
                                );
                            }
                            // nothing written past the output
                            assert!(b[n..].iter().all(|v| v.is_nan()));
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn zipped_sums_equal_two_outputs_then_interleave() {
        // Each vector path (and the portable one) against itself: the zipped pass must store
        // exactly the two outputs' values, interleaved, and nothing past `dst.len()`. Lengths
        // cover whole steps, single vectors, partial vectors and odd lengths (the second
        // output's last value dropped, which can leave a whole vector of the first).
        let base: Vec<f32> = (0..400)
            .map(|i| ((i * 37 % 29) as f32 - 14.0) / 8.0)
            .collect();
        type Run = unsafe fn(&SumPtrs, &[f32], LeakyClamp);
        let mut runs: Vec<(&str, Run)> =
            vec![("portable", |p, t, a| vector::sums_portable(p, t, a))];
        #[cfg(target_arch = "x86_64")]
        {
            if has_fma() {
                runs.push(("avx2", vector::sums_avx2));
            }
            if has_avx512() {
                runs.push(("avx512", vector::sums_avx512));
            }
        }
        for (name, run) in runs {
            for ns in [1usize, 5, 7, 12, 14, 16] {
                for len in [
                    1usize, 2, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 277,
                ] {
                    let n = len.div_ceil(2);
                    let offsets: Vec<usize> = (0..ns).map(|s| (s * 11 + 3) % 100).collect();
                    let taps: Vec<f32> = (0..2 * ns)
                        .map(|i| ((i * 13 % 17) as f32 - 8.0) / 16.0)
                        .collect();
                    // sources past `ns` repeat the first, as `weighted_sums` builds them
                    let mut srcs = [base[offsets[0]..].as_ptr(); SHARED_MAX_SRCS];
                    for (d, &o) in srcs.iter_mut().zip(&offsets) {
                        *d = base[o..].as_ptr();
                    }
                    // two outputs, then `interleave`
                    let mut phases = vec![0.0f32; 2 * n];
                    let (a, b) = phases.split_at_mut(n);
                    let p = SumPtrs {
                        outs: [
                            a.as_mut_ptr(),
                            b.as_mut_ptr(),
                            std::ptr::null_mut(),
                            std::ptr::null_mut(),
                        ],
                        r: 2,
                        srcs,
                        s: ns,
                        n,
                        zipped: None,
                    };
                    // SAFETY: the CPU has what `run` needs (checked above); every pointer
                    // addresses `n` values (`offsets` < 100, `base` 400 long).
                    unsafe { run(&p, &taps, NO_ACT) };
                    let mut want = vec![0.0f32; len];
                    interleave(&mut want, &phases, 2, n);
                    let mut got = vec![f32::NAN; len + 40];
                    let p = SumPtrs {
                        outs: [
                            got.as_mut_ptr(),
                            std::ptr::null_mut(),
                            std::ptr::null_mut(),
                            std::ptr::null_mut(),
                        ],
                        r: 2,
                        srcs,
                        s: ns,
                        n,
                        zipped: Some(len),
                    };
                    // SAFETY: as above; `got` holds `len` values and more.
                    unsafe { run(&p, &taps, NO_ACT) };
                    for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
                        assert_eq!(g.to_bits(), w.to_bits(), "{name} ns={ns} len={len} [{i}]");
                    }
                    assert!(
                        got[len..].iter().all(|v| v.is_nan()),
                        "{name} ns={ns} len={len}: wrote past the end"
                    );
                }
            }
        }
        // the public entry point, on this CPU's best path
        let offsets = [0usize, 1, 2, 3, 4, 5, 6];
        let taps: Vec<f32> = (0..14).map(|i| 0.1 * i as f32 - 0.6).collect();
        for len in [0usize, 1, 37, 100] {
            let n = len.div_ceil(2);
            let mut phases = vec![0.0f32; 2 * n];
            let (a, b) = phases.split_at_mut(n);
            weighted_sums(&mut [a, b], &base, &offsets, &taps, None);
            let mut want = vec![0.0f32; len];
            interleave(&mut want, &phases, 2, n);
            let mut got = vec![f32::NAN; len];
            weighted_sums_zip2(&mut got, &base, &offsets, &taps);
            assert!(
                got.iter()
                    .zip(&want)
                    .all(|(g, w)| g.to_bits() == w.to_bits()),
                "len {len}"
            );
        }
    }

    #[test]
    fn weighted_sums_nonlinearity_matches_on_special_values() {
        // The vector paths clamp differently from `f32::clamp` (AVX-512: one `vrangeps`);
        // one source with tap 1 passes each finite value through unchanged to the
        // nonlinearity. (Not infinities: the passes pad missing sources with zero taps, and
        // 0·∞ is NaN, which no path promises to keep.)
        let act = LeakyClamp {
            slope: 0.2,
            gain: 1.0,
            clamp: 2.0,
        };
        let specials = [
            0.0f32,
            -0.0,
            1.0,
            -1.0,
            2.0,
            -2.0,
            9.9,
            -9.9,
            -10.0,
            -10.5,
            f32::MIN_POSITIVE,
            -f32::MIN_POSITIVE,
            f32::MAX,
            f32::MIN,
        ];
        // lengths that take the full steps, single vectors and the masked tail
        let base: Vec<f32> = specials.iter().cycle().take(3 * 64 + 21).copied().collect();
        for n in [5usize, 16, 64, base.len()] {
            for r in [1usize, 2, 4] {
                let taps = vec![1.0f32; r];
                let mut bufs = vec![vec![7.0f32; n]; r];
                let mut outs: Vec<&mut [f32]> = bufs.iter_mut().map(|b| &mut b[..]).collect();
                weighted_sums(&mut outs, &base, &[0], &taps, Some(act));
                for b in &bufs {
                    for (i, (&got, &x)) in b.iter().zip(&base).enumerate() {
                        let e = act.apply(x);
                        assert!(
                            got.to_bits() == e.to_bits(),
                            "n={n} r={r} i={i}: act({x}) = {got}, expected {e}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn winograd_f4_transforms_match_their_matrices() {
        // Bᵀ and Aᵀ of F(4×4, 3×3), as in sg3/winograd.rs.
        let bt: [[f32; 6]; 6] = [
            [4.0, 0.0, -5.0, 0.0, 1.0, 0.0],
            [0.0, -4.0, -4.0, 1.0, 1.0, 0.0],
            [0.0, 4.0, -4.0, -1.0, 1.0, 0.0],
            [0.0, -2.0, -1.0, 2.0, 1.0, 0.0],
            [0.0, 2.0, -1.0, -2.0, 1.0, 0.0],
            [0.0, 4.0, 0.0, -5.0, 0.0, 1.0],
        ];
        let at: [[f32; 6]; 4] = [
            [1.0, 1.0, 1.0, 1.0, 1.0, 0.0],
            [0.0, 1.0, -1.0, 2.0, -2.0, 0.0],
            [0.0, 1.0, 1.0, 4.0, 4.0, 0.0],
            [0.0, 1.0, -1.0, 8.0, -8.0, 1.0],
        ];
        let base: Vec<f32> = (0..500)
            .map(|i| ((i * 53 % 41) as f32 - 20.0) / 8.0)
            .collect();
        for n in [1usize, 7, 16, 37, 64] {
            let offs: [usize; 6] = std::array::from_fn(|k| k * 61 + 3);
            let mut t = vec![vec![f32::NAN; n + 1]; 6];
            {
                let mut it = t.iter_mut();
                let outs = std::array::from_fn(|_| &mut it.next().expect("row")[..n]);
                winograd_f4_input(outs, &base, offs);
            }
            let mut y = vec![vec![f32::NAN; n + 1]; 4];
            {
                let mut it = y.iter_mut();
                let outs = std::array::from_fn(|_| &mut it.next().expect("row")[..n]);
                winograd_f4_output(outs, &base, offs);
            }
            for i in 0..n {
                let d: [f64; 6] = std::array::from_fn(|k| base[offs[k] + i] as f64);
                for (r, row) in bt.iter().enumerate() {
                    let e: f64 = row.iter().zip(&d).map(|(&b, &v)| b as f64 * v).sum();
                    assert!((t[r][i] as f64 - e).abs() < 1e-5, "Bᵀ n={n} ({r},{i})");
                }
                for (r, row) in at.iter().enumerate() {
                    let e: f64 = row.iter().zip(&d).map(|(&a, &v)| a as f64 * v).sum();
                    assert!((y[r][i] as f64 - e).abs() < 1e-4, "Aᵀ n={n} ({r},{i})");
                }
            }
            assert!(t.iter().all(|r| r[n].is_nan()) && y.iter().all(|r| r[n].is_nan()));
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
