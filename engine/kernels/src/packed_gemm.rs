//! Single-precision GEMM on operands that are already stored in micro-panel order.
//!
//! The Winograd convolution (`sg3/winograd.rs`) writes both of its GEMM operands itself: the
//! transformed weights once per sample and layer, the transformed input tiles once per chunk.
//! Writing them straight into the order the micro-kernel reads means no packing pass at all
//! (faer's `gemm`, which we used before, re-packs the weight block of every transform position
//! for every chunk of 50-500 tiles). Together with software prefetch of the next panels (the
//! weights of a 512-channel layer, 38 MB, come from DRAM) this took the Winograd products of
//! an SG3-T 256 image from about 500 to about 440 ms on one thread of the 2-core AVX-512 VM
//! (docs/performance.md); without the prefetch the cold-weight products took 18-49 % longer.
//!
//! Layouts (all zero-padded to whole panels):
//! - **A** (`rows × depth`, the weights): panels of [`MR`] rows, each `[depth][MR]`
//!   (`a[(p · MR) + r]` is row `r`, column `p` of the panel), `a_stride` values apart (so the
//!   panels of several matrices may interleave).
//! - **B** (`depth × cols`, the tiles): panels of [`NR`] columns, each `[depth][NR]`.
//! - **C** (`rows × cols`, row-major with row stride `ldc`, a multiple of [`NR`] at least as
//!   large as `cols`): written whole vectors at a time, so the padding columns of the last
//!   panel are overwritten with values of no meaning.
//!
//! Micro-kernels: AVX-512 computes an `MR × NR` = 8 × 48 block in 24 vector accumulators (the
//! B row is three loads, each A value one broadcast; the full block in assembly); AVX2+FMA the
//! same block as four 4 × 24 sub-blocks (12 accumulators of the 16 registers; the full
//! sub-block in assembly); elsewhere
//! plain loops. The depth is processed [`KC`] values at a time so the B micro-panel a kernel
//! streams stays in L1 while every A panel of the block passes over it (64, 256 and the whole
//! depth measured no better).

/// Rows of A (output channels) per micro-panel.
pub(crate) const MR: usize = 8;
/// Columns of B (tiles) per micro-panel: three AVX-512 vectors.
pub(crate) const NR: usize = 48;
/// Depth per pass over C: a `KC × NR` slice of B is 24 KB, half of a 48 KB L1.
const KC: usize = 128;

/// Length of a packed B with `depth` rows and `cols` columns.
pub(crate) fn b_len(depth: usize, cols: usize) -> usize {
    cols.div_ceil(NR) * NR * depth
}

/// Row stride of a C with `cols` columns (whole panels).
pub(crate) fn c_stride(cols: usize) -> usize {
    cols.div_ceil(NR) * NR
}

/// Which micro-kernel [`gemm_packed`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kernel {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

impl Kernel {
    /// The fastest kernel this CPU runs.
    pub fn best() -> Kernel {
        #[cfg(target_arch = "x86_64")]
        {
            if crate::simd::has_avx512() {
                return Kernel::Avx512;
            }
            if crate::simd::has_fma() {
                return Kernel::Avx2;
            }
        }
        Kernel::Portable
    }

    /// Every kernel this CPU runs (for tests).
    #[cfg(test)]
    pub fn available() -> Vec<Kernel> {
        let mut out = vec![Kernel::Portable];
        #[cfg(target_arch = "x86_64")]
        {
            if crate::simd::has_fma() {
                out.push(Kernel::Avx2);
            }
            if crate::simd::has_avx512() {
                out.push(Kernel::Avx512);
            }
        }
        out
    }
}

/// `c[r][j] = Σ_p A[r][p] · B[p][j]` for `r < rows`, `j < cols` (C overwritten, not
/// accumulated), with `a` (panels `a_stride` apart), `b` packed as described in the module
/// docs and `c` row-major with row stride `ldc`. Single-threaded: callers run independent
/// products in parallel.
///
/// # Panics
/// If a slice is shorter than its shape needs or `ldc` is not a whole number of panels.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_packed(
    kernel: Kernel,
    rows: usize,
    cols: usize,
    depth: usize,
    a: &[f32],
    a_stride: usize,
    b: &[f32],
    c: &mut [f32],
    ldc: usize,
) {
    if rows == 0 || cols == 0 {
        return;
    }
    let a_panels = rows.div_ceil(MR);
    assert!(
        a_stride >= depth * MR && a.len() >= (a_panels - 1) * a_stride + depth * MR,
        "packed A too short"
    );
    assert!(b.len() >= b_len(depth, cols), "packed B too short");
    assert!(
        ldc >= c_stride(cols) && ldc.is_multiple_of(NR),
        "C row stride must be whole panels"
    );
    assert!(c.len() >= (rows - 1) * ldc + c_stride(cols), "C too short");
    if depth == 0 {
        for r in 0..rows {
            c[r * ldc..r * ldc + cols].fill(0.0);
        }
        return;
    }
    let b_panels = cols.div_ceil(NR);
    // One pass over the depth, C on 64-byte lines: every block writes whole lines of C once,
    // so they go out as streaming stores (no read of lines about to be overwritten).
    let stream = kernel_streams(kernel)
        && depth <= KC
        && c.as_ptr().align_offset(64) == 0
        && ldc.is_multiple_of(16);
    for jb in 0..b_panels {
        // 16-column vectors of this panel that hold real columns.
        let vecs = (cols - jb * NR).div_ceil(16).min(NR / 16);
        let mut p0 = 0;
        while p0 < depth {
            let kc = KC.min(depth - p0);
            let b_panel = &b[(jb * depth + p0) * NR..(jb * depth + p0 + kc) * NR];
            // The B slice of the next pass, prefetched a part per block.
            let (nj, np) = if p0 + kc < depth {
                (jb, p0 + kc)
            } else {
                (jb + 1, 0)
            };
            let b_next: &[f32] = if nj < b_panels {
                let kn = KC.min(depth - np);
                &b[(nj * depth + np) * NR..(nj * depth + np + kn) * NR]
            } else {
                &[]
            };
            let b_part = b_next.len().div_ceil(a_panels);
            for ib in 0..a_panels {
                let a_panel = &a[ib * a_stride + p0 * MR..ib * a_stride + (p0 + kc) * MR];
                let a_next: &[f32] = if ib + 1 < a_panels {
                    &a[(ib + 1) * a_stride + p0 * MR..(ib + 1) * a_stride + (p0 + kc) * MR]
                } else {
                    &a[np * MR..(np * MR + KC.min(depth - np) * MR).min(a.len())]
                };
                let b_pref =
                    &b_next[(ib * b_part).min(b_next.len())..((ib + 1) * b_part).min(b_next.len())];
                let r0 = ib * MR;
                let nrows = MR.min(rows - r0);
                let c_block = &mut c[r0 * ldc + jb * NR..(r0 + nrows - 1) * ldc + (jb + 1) * NR];
                let tile = Block {
                    kc,
                    a: a_panel,
                    b: b_panel,
                    c: c_block,
                    ldc,
                    rows: nrows,
                    vecs,
                    accumulate: p0 > 0,
                    stream,
                    prefetch: [a_next, b_pref],
                };
                match kernel {
                    Kernel::Portable => tile.portable(),
                    // SAFETY: these kernels are only chosen when the CPU has the features
                    // (`Kernel::best`/`available` check them); `Block` holds slices of
                    // the sizes the kernels read and write (checked in `Block::check`).
                    #[cfg(target_arch = "x86_64")]
                    Kernel::Avx2 => unsafe { x86::block_avx2(&tile) },
                    #[cfg(target_arch = "x86_64")]
                    Kernel::Avx512 => unsafe { x86::block_avx512(&tile) },
                }
            }
            p0 += kc;
        }
    }
    if stream {
        // the streaming stores are weakly ordered: complete them before a later reader
        crate::simd::store_fence();
    }
}

/// Whether `kernel` writes C with streaming stores where [`gemm_packed`] allows it.
fn kernel_streams(kernel: Kernel) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        kernel == Kernel::Avx512
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = kernel;
        false
    }
}

/// One `MR × NR` block of C over `kc` depth values.
struct Block<'a> {
    kc: usize,
    /// `[kc][MR]`.
    a: &'a [f32],
    /// `[kc][NR]`.
    b: &'a [f32],
    /// Rows `0..rows` of the block, `ldc` apart, each `NR` wide.
    c: &'a mut [f32],
    ldc: usize,
    rows: usize,
    /// 16-wide column vectors to compute (1..=3).
    vecs: usize,
    /// Add to C instead of overwriting it.
    accumulate: bool,
    /// Overwrite C with streaming stores (only when not accumulating; each of the block's
    /// rows starts on a 64-byte boundary). Only the AVX-512 kernel streams.
    stream: bool,
    /// Memory the next blocks read (next A panel, part of the next B slice), fetched into the
    /// cache while this block computes: by the time the loops reach a panel it is in L1, not
    /// a page away in DRAM (the hardware prefetchers restart at every page).
    prefetch: [&'a [f32]; 2],
}

impl Block<'_> {
    /// The sizes the kernels rely on.
    #[inline(always)]
    fn check(&self) {
        assert!(self.a.len() >= self.kc * MR && self.b.len() >= self.kc * NR);
        assert!((1..=MR).contains(&self.rows) && (1..=NR / 16).contains(&self.vecs));
        assert!(self.c.len() >= (self.rows - 1) * self.ldc + NR);
        assert!(
            !self.stream
                || (!self.accumulate
                    && self.c.as_ptr().align_offset(64) == 0
                    && self.ldc.is_multiple_of(16)),
            "streaming stores need whole, aligned C lines"
        );
    }

    fn portable(self) {
        self.check();
        let mut acc = [[0.0f32; NR]; MR];
        let width = self.vecs * 16;
        for p in 0..self.kc {
            let brow = &self.b[p * NR..p * NR + width];
            let arow = &self.a[p * MR..(p + 1) * MR];
            for (acc_r, &av) in acc.iter_mut().zip(arow) {
                for (o, &bv) in acc_r[..width].iter_mut().zip(brow) {
                    *o += av * bv;
                }
            }
        }
        for (r, acc_r) in acc.iter().enumerate().take(self.rows) {
            let dst = &mut self.c[r * self.ldc..r * self.ldc + width];
            if self.accumulate {
                for (d, &v) in dst.iter_mut().zip(acc_r) {
                    *d += v;
                }
            } else {
                dst.copy_from_slice(&acc_r[..width]);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Block, MR, NR};
    use std::arch::x86_64::*;

    /// The loops of the assembly kernels around their `step` macro (one depth step: reads at
    /// `{a}` and `{b}` and advances them): `{n1}` pairs of steps that prefetch one line at
    /// `{pfa}` and two at `{pfb}`, then `{n2}` pairs that prefetch one line at `{pfa}`, then
    /// `{n3}` single steps without prefetches.
    macro_rules! paired_step_loops {
        ($step:ident) => {
            concat!(
                "test {n1}, {n1}\n",
                "jz 3f\n",
                ".p2align 5\n",
                "2:\n",
                "prefetcht0 [{pfa}]\n",
                "prefetcht0 [{pfb}]\n",
                "add {pfa}, 64\n",
                $step!(),
                "prefetcht0 [{pfb} + 64]\n",
                "add {pfb}, 128\n",
                $step!(),
                "dec {n1}\n",
                "jnz 2b\n",
                "3:\n",
                "test {n2}, {n2}\n",
                "jz 5f\n",
                ".p2align 5\n",
                "4:\n",
                "prefetcht0 [{pfa}]\n",
                "add {pfa}, 64\n",
                $step!(),
                $step!(),
                "dec {n2}\n",
                "jnz 4b\n",
                "5:\n",
                "test {n3}, {n3}\n",
                "jz 7f\n",
                ".p2align 5\n",
                "6:\n",
                $step!(),
                "dec {n3}\n",
                "jnz 6b\n",
                "7:\n",
            )
        };
    }

    /// `asm!` of [`paired_step_loops`] with its pointer and count operands bound to the
    /// caller's variables; the caller adds its accumulator and scratch registers.
    macro_rules! paired_step_asm {
        (
            $step:ident, $a:ident, $b:ident, $pfa:ident, $pfb:ident,
            $n1:ident, $n2:ident, $n3:ident; $($regs:tt)*
        ) => {
            std::arch::asm!(
                paired_step_loops!($step),
                a = inout(reg) $a,
                b = inout(reg) $b,
                pfa = inout(reg) $pfa,
                pfb = inout(reg) $pfb,
                n1 = inout(reg) $n1 => _,
                n2 = inout(reg) $n2 => _,
                n3 = inout(reg) $n3 => _,
                $($regs)*
            )
        };
    }

    /// How [`paired_step_loops`] splits `kc` steps when the prefetch streams hold `pa` and
    /// `pb` values: pairs of steps that fetch one line of A (16 values) and two of B, pairs
    /// that fetch one line of A, then single steps.
    #[inline(always)]
    fn loop_counts(kc: usize, pa: usize, pb: usize) -> (usize, usize, usize) {
        let both = kc.min(pa / MR).min(pb / 16) / 2;
        let a_only = (kc.min(pa / MR) - 2 * both) / 2;
        (both, a_only, kc - 2 * both - 2 * a_only)
    }

    /// Prefetches the cache line of `s[i]` into L1 (nothing when `i` is past the end).
    #[inline(always)]
    fn prefetch(s: &[f32], i: usize) {
        if i < s.len() {
            // SAFETY: `i` is in bounds; a prefetch reads nothing architecturally.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(s.as_ptr().add(i) as *const i8) };
        }
    }

    /// # Safety
    /// The CPU must support AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn block_avx512(t: &Block<'_>) {
        t.check();
        match t.vecs {
            1 => kernel512::<1>(t),
            2 => kernel512::<2>(t),
            _ => kernel512_full(t),
        }
    }

    /// [`kernel512`] with `V = 3` (the block nearly all products run) in assembly: steps in
    /// pairs, so one prefetch of A (16 values, two steps) and two of B go with each pair, and
    /// where each prefetch stream ends is counted before the loops instead of tested every
    /// step (the compiler's loop issues both streams every step, A's lines twice, behind two
    /// bounds tests). On the Intel model-167 VM, same process, alternated: 2-9 points more of
    /// the FMA peak on products of 64-512 channels with the operands in L2 (82-87 % -> 84-92 %),
    /// and 1-2 % less GEMM time in an SG3-T 256 image (docs/performance.md).
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn kernel512_full(t: &Block<'_>) {
        let mut acc = [[_mm512_setzero_ps(); 3]; MR];
        let [pa, pb] = t.prefetch;
        let (both, a_only, rest) = loop_counts(t.kc, pa.len(), pb.len());
        let (mut ap, mut bp) = (t.a.as_ptr(), t.b.as_ptr());
        let (mut pfa, mut pfb) = (pa.as_ptr(), pb.as_ptr());
        macro_rules! step {
            () => {
                concat!(
                    "vmovups zmm24, [{b}]\n",
                    "vmovups zmm25, [{b} + 64]\n",
                    "vmovups zmm26, [{b} + 128]\n",
                    "vbroadcastss zmm27, dword ptr [{a}]\n",
                    "vfmadd231ps zmm0, zmm27, zmm24\n",
                    "vfmadd231ps zmm1, zmm27, zmm25\n",
                    "vfmadd231ps zmm2, zmm27, zmm26\n",
                    "vbroadcastss zmm28, dword ptr [{a} + 4]\n",
                    "vfmadd231ps zmm3, zmm28, zmm24\n",
                    "vfmadd231ps zmm4, zmm28, zmm25\n",
                    "vfmadd231ps zmm5, zmm28, zmm26\n",
                    "vbroadcastss zmm29, dword ptr [{a} + 8]\n",
                    "vfmadd231ps zmm6, zmm29, zmm24\n",
                    "vfmadd231ps zmm7, zmm29, zmm25\n",
                    "vfmadd231ps zmm8, zmm29, zmm26\n",
                    "vbroadcastss zmm30, dword ptr [{a} + 12]\n",
                    "vfmadd231ps zmm9, zmm30, zmm24\n",
                    "vfmadd231ps zmm10, zmm30, zmm25\n",
                    "vfmadd231ps zmm11, zmm30, zmm26\n",
                    "vbroadcastss zmm27, dword ptr [{a} + 16]\n",
                    "vfmadd231ps zmm12, zmm27, zmm24\n",
                    "vfmadd231ps zmm13, zmm27, zmm25\n",
                    "vfmadd231ps zmm14, zmm27, zmm26\n",
                    "vbroadcastss zmm28, dword ptr [{a} + 20]\n",
                    "vfmadd231ps zmm15, zmm28, zmm24\n",
                    "vfmadd231ps zmm16, zmm28, zmm25\n",
                    "vfmadd231ps zmm17, zmm28, zmm26\n",
                    "vbroadcastss zmm29, dword ptr [{a} + 24]\n",
                    "vfmadd231ps zmm18, zmm29, zmm24\n",
                    "vfmadd231ps zmm19, zmm29, zmm25\n",
                    "vfmadd231ps zmm20, zmm29, zmm26\n",
                    "vbroadcastss zmm30, dword ptr [{a} + 28]\n",
                    "vfmadd231ps zmm21, zmm30, zmm24\n",
                    "vfmadd231ps zmm22, zmm30, zmm25\n",
                    "vfmadd231ps zmm23, zmm30, zmm26\n",
                    "add {a}, 32\n",
                    "add {b}, 192\n",
                )
            };
        }
        let [a0, a1, a2, a3, a4, a5, a6, a7] = &mut acc;
        // SAFETY: the loops read `kc` steps of A (8 values apart) and of B (48 apart), inside
        // the slices `Block::check` sized; the prefetched addresses stay inside their streams
        // (counted above), and a prefetch reads nothing architecturally. Only the named
        // registers and the flags change.
        paired_step_asm!(
            step, ap, bp, pfa, pfb, both, a_only, rest;
            inout("zmm0") a0[0],
            inout("zmm1") a0[1],
            inout("zmm2") a0[2],
            inout("zmm3") a1[0],
            inout("zmm4") a1[1],
            inout("zmm5") a1[2],
            inout("zmm6") a2[0],
            inout("zmm7") a2[1],
            inout("zmm8") a2[2],
            inout("zmm9") a3[0],
            inout("zmm10") a3[1],
            inout("zmm11") a3[2],
            inout("zmm12") a4[0],
            inout("zmm13") a4[1],
            inout("zmm14") a4[2],
            inout("zmm15") a5[0],
            inout("zmm16") a5[1],
            inout("zmm17") a5[2],
            inout("zmm18") a6[0],
            inout("zmm19") a6[1],
            inout("zmm20") a6[2],
            inout("zmm21") a7[0],
            inout("zmm22") a7[1],
            inout("zmm23") a7[2],
            out("zmm24") _, out("zmm25") _, out("zmm26") _, out("zmm27") _,
            out("zmm28") _, out("zmm29") _, out("zmm30") _,
            options(nostack, readonly),
        );
        let _ = (ap, bp, pfa, pfb);
        store512(t, &acc);
    }

    #[inline(always)]
    unsafe fn kernel512<const V: usize>(t: &Block<'_>) {
        let (a, b) = (t.a.as_ptr(), t.b.as_ptr());
        let mut acc = [[_mm512_setzero_ps(); V]; MR];
        let [pa, pb] = t.prefetch;
        for p in 0..t.kc {
            // one line of each prefetch stream per step (A: 32 B per step, so every line twice)
            prefetch(pa, p * MR);
            prefetch(pb, p * 16);
            let bp = b.add(p * NR);
            let bv: [__m512; V] = std::array::from_fn(|j| _mm512_loadu_ps(bp.add(16 * j)));
            let ap = a.add(p * MR);
            for (r, acc_r) in acc.iter_mut().enumerate() {
                let av = _mm512_set1_ps(*ap.add(r));
                for j in 0..V {
                    acc_r[j] = _mm512_fmadd_ps(av, bv[j], acc_r[j]);
                }
            }
        }
        store512(t, &acc);
    }

    /// Writes (or adds) the accumulators of a block's rows to C.
    #[inline(always)]
    unsafe fn store512<const V: usize>(t: &Block<'_>, acc: &[[__m512; V]; MR]) {
        let c = t.c.as_ptr() as *mut f32;
        for (r, acc_r) in acc.iter().enumerate().take(t.rows) {
            let cp = c.add(r * t.ldc);
            for (j, &v) in acc_r.iter().enumerate() {
                let dst = cp.add(16 * j);
                if t.stream {
                    _mm512_stream_ps(dst, v);
                    continue;
                }
                let v = if t.accumulate {
                    _mm512_add_ps(_mm512_loadu_ps(dst), v)
                } else {
                    v
                };
                _mm512_storeu_ps(dst, v);
            }
        }
    }

    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn block_avx2(t: &Block<'_>) {
        t.check();
        // 8-wide vectors of real columns: 2, 4 or 6; two sub-blocks of at most 3 across.
        let ymm = 2 * t.vecs;
        for rsub in 0..MR / 4 {
            let r0 = rsub * 4;
            if r0 >= t.rows {
                break;
            }
            let rows = (t.rows - r0).min(4);
            let mut col = 0;
            while col < ymm {
                match (ymm - col).min(3) {
                    3 if rows == 4 => kernel256_full(t, r0, col * 8),
                    1 => kernel256::<1>(t, r0, rows, col * 8),
                    2 => kernel256::<2>(t, r0, rows, col * 8),
                    _ => kernel256::<3>(t, r0, rows, col * 8),
                }
                col += 3;
            }
        }
    }

    /// Rows `r0..r0 + 4`, columns `c0..c0 + 24` of the block: [`kernel256`] with `V = 3` in
    /// assembly, the sub-block nearly all of the products run. Its 12 accumulators, 3 B
    /// vectors and one broadcast take all 16 registers, and the compiler's schedule of the
    /// Rust loop needs a 17th: it kept one accumulator on the stack (a store and a load every
    /// step). The prefetches are issued once per 64-byte line, by one sub-block per block:
    /// on the Zen 1 VM a prefetch every step (so every A line twice, as the Rust kernels do)
    /// took the in-L1 rate from 34-35 to 20-24 GFLOP/s; once per line it is 36-37 of the
    /// 39 GFLOP/s FMA peak (the Rust loop: 32).
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn kernel256_full(t: &Block<'_>, r0: usize, c0: usize) {
        let mut acc = [[_mm256_setzero_ps(); 3]; 4];
        // The block's first sub-block prefetches, both streams while both last (the B part
        // is the shorter), then A alone; steps are taken in pairs there.
        let [pa, pb] = if c0 == 0 && r0 == 0 {
            t.prefetch
        } else {
            [&[][..], &[][..]]
        };
        let (both, a_only, rest) = loop_counts(t.kc, pa.len(), pb.len());
        let mut ap = t.a.as_ptr().add(r0);
        let mut bp = t.b.as_ptr().add(c0);
        let (mut pfa, mut pfb) = (pa.as_ptr(), pb.as_ptr());
        macro_rules! step {
            () => {
                concat!(
                    "vmovups ymm12, [{b}]\n",
                    "vmovups ymm13, [{b} + 32]\n",
                    "vmovups ymm14, [{b} + 64]\n",
                    "vbroadcastss ymm15, dword ptr [{a}]\n",
                    "vfmadd231ps {c00}, ymm15, ymm12\n",
                    "vfmadd231ps {c01}, ymm15, ymm13\n",
                    "vfmadd231ps {c02}, ymm15, ymm14\n",
                    "vbroadcastss ymm15, dword ptr [{a} + 4]\n",
                    "vfmadd231ps {c10}, ymm15, ymm12\n",
                    "vfmadd231ps {c11}, ymm15, ymm13\n",
                    "vfmadd231ps {c12}, ymm15, ymm14\n",
                    "vbroadcastss ymm15, dword ptr [{a} + 8]\n",
                    "vfmadd231ps {c20}, ymm15, ymm12\n",
                    "vfmadd231ps {c21}, ymm15, ymm13\n",
                    "vfmadd231ps {c22}, ymm15, ymm14\n",
                    "vbroadcastss ymm15, dword ptr [{a} + 12]\n",
                    "vfmadd231ps {c30}, ymm15, ymm12\n",
                    "vfmadd231ps {c31}, ymm15, ymm13\n",
                    "vfmadd231ps {c32}, ymm15, ymm14\n",
                    "add {a}, 32\n",
                    "add {b}, 192\n",
                )
            };
        }
        // SAFETY: the loops read `kc` steps of A (8 values apart, 4 from `r0`) and of B (48
        // apart, 24 from `c0`), inside the slices `Block::check` sized (`r0 <= 4`,
        // `c0 <= 24`); the prefetched addresses stay inside their streams, and a prefetch
        // reads nothing architecturally. Only the named registers and the flags change.
        paired_step_asm!(
            step, ap, bp, pfa, pfb, both, a_only, rest;
            c00 = inout(ymm_reg) acc[0][0],
            c01 = inout(ymm_reg) acc[0][1],
            c02 = inout(ymm_reg) acc[0][2],
            c10 = inout(ymm_reg) acc[1][0],
            c11 = inout(ymm_reg) acc[1][1],
            c12 = inout(ymm_reg) acc[1][2],
            c20 = inout(ymm_reg) acc[2][0],
            c21 = inout(ymm_reg) acc[2][1],
            c22 = inout(ymm_reg) acc[2][2],
            c30 = inout(ymm_reg) acc[3][0],
            c31 = inout(ymm_reg) acc[3][1],
            c32 = inout(ymm_reg) acc[3][2],
            out("ymm12") _, out("ymm13") _, out("ymm14") _, out("ymm15") _,
            options(nostack, readonly),
        );
        let _ = (ap, bp, pfa, pfb);
        store256(t, &acc, r0, 4, c0);
    }

    /// Rows `r0..r0 + rows` (at most 4), columns `c0..c0 + 8·V` of the block.
    #[inline(always)]
    unsafe fn kernel256<const V: usize>(t: &Block<'_>, r0: usize, rows: usize, c0: usize) {
        let (a, b) = (t.a.as_ptr(), t.b.as_ptr());
        let mut acc = [[_mm256_setzero_ps(); V]; 4];
        let [pa, pb] = t.prefetch;
        for p in 0..t.kc {
            if c0 == 0 {
                prefetch(pa, p * MR);
                prefetch(pb, p * 16);
            }
            let bp = b.add(p * NR + c0);
            let bv: [__m256; V] = std::array::from_fn(|j| _mm256_loadu_ps(bp.add(8 * j)));
            let ap = a.add(p * MR + r0);
            for (r, acc_r) in acc.iter_mut().enumerate() {
                let av = _mm256_broadcast_ss(&*ap.add(r));
                for j in 0..V {
                    acc_r[j] = _mm256_fmadd_ps(av, bv[j], acc_r[j]);
                }
            }
        }
        store256(t, &acc, r0, rows, c0);
    }

    /// Writes (or adds, when the block accumulates) rows `r0..r0 + rows` of a sub-block's
    /// accumulators to columns `c0..c0 + 8·V` of C.
    #[inline(always)]
    unsafe fn store256<const V: usize>(
        t: &Block<'_>,
        acc: &[[__m256; V]; 4],
        r0: usize,
        rows: usize,
        c0: usize,
    ) {
        let c = t.c.as_ptr() as *mut f32;
        for (r, acc_r) in acc.iter().enumerate().take(rows) {
            let cp = c.add((r0 + r) * t.ldc + c0);
            for (j, &v) in acc_r.iter().enumerate() {
                let dst = cp.add(8 * j);
                let v = if t.accumulate {
                    _mm256_add_ps(_mm256_loadu_ps(dst), v)
                } else {
                    v
                };
                _mm256_storeu_ps(dst, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Packs a row-major `rows × depth` matrix as A.
    fn pack_a(m: &[f32], rows: usize, depth: usize) -> Vec<f32> {
        let mut out = vec![0.0f32; rows.div_ceil(MR) * MR * depth];
        for r in 0..rows {
            for p in 0..depth {
                out[((r / MR) * depth + p) * MR + r % MR] = m[r * depth + p];
            }
        }
        out
    }

    /// Packs a row-major `depth × cols` matrix as B.
    fn pack_b(m: &[f32], depth: usize, cols: usize) -> Vec<f32> {
        let mut out = vec![0.0f32; b_len(depth, cols)];
        for p in 0..depth {
            for j in 0..cols {
                out[((j / NR) * depth + p) * NR + j % NR] = m[p * cols + j];
            }
        }
        out
    }

    #[test]
    fn every_kernel_matches_the_definition() {
        // Shapes with partial row panels, partial column panels of every vector count and
        // depths below, at and across the KC blocking.
        for &(rows, cols, depth) in &[
            (1usize, 1usize, 1usize),
            (8, 48, 128),
            (13, 100, 300),
            (3, 17, 129),
            (21, 35, 7),
            (9, 96, 0),
        ] {
            let am: Vec<f32> = (0..rows * depth)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 64.0)
                .collect();
            let bm: Vec<f32> = (0..depth * cols)
                .map(|i| ((i * 53 % 89) as f32 - 44.0) / 32.0)
                .collect();
            let (a, b) = (pack_a(&am, rows, depth), pack_b(&bm, depth, cols));
            let ldc = c_stride(cols) + NR;
            // C at a 64-byte boundary (the AVX-512 kernel streams single-pass products there)
            // and one value past it (plain stores)
            for (kernel, misalign) in Kernel::available()
                .into_iter()
                .flat_map(|k| [(k, 0), (k, 1)])
            {
                let mut c_buf = vec![f32::NAN; rows * ldc + 17];
                let at = c_buf.as_ptr().align_offset(64).min(16) + misalign;
                let c = &mut c_buf[at..at + rows * ldc];
                gemm_packed(kernel, rows, cols, depth, &a, depth * MR, &b, c, ldc);
                for r in 0..rows {
                    for j in 0..cols {
                        let e: f64 = (0..depth)
                            .map(|p| am[r * depth + p] as f64 * bm[p * cols + j] as f64)
                            .sum();
                        let got = c[r * ldc + j];
                        assert!(
                            (got as f64 - e).abs() < 1e-4 * (1.0 + e.abs()),
                            "{kernel:?} {rows}x{cols}x{depth} ({r},{j}): {got} vs {e}"
                        );
                    }
                    // columns past the last panel are untouched
                    assert!(c[r * ldc + c_stride(cols)].is_nan(), "{kernel:?}");
                }
            }
        }
    }
}
