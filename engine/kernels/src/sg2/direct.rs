//! Direct (im2col-free) multi-tap convolution with register-blocked AVX2+FMA and AVX-512
//! micro-kernels.
//!
//! For the layers with few channels (the high resolutions, which dominate the run time) a GEMM
//! over im2col tiles is inefficient: the output-channel dimension is tiny and the im2col copy
//! is nine times the input. Here each task takes a band of output rows, copies the input rows it
//! needs into a zero-padded band buffer (once), and computes a block of output channels × a
//! strip of pixels at a time in vector accumulators (4 × 16 with AVX2, 8 × 32 with AVX-512),
//! reading every tap straight from the band buffer.

use rayon::prelude::*;

use super::ops::{Epilogue, Tap};
use crate::worker_scratch::WorkerScratch;

/// Output channels per micro-kernel call.
pub(crate) const OB: usize = 4;
/// Widest strip (pixels per micro-kernel call) of any kernel.
const MAX_SW: usize = 64;
/// Pixels per strip of the AVX-512 kernel.
const AVX512_SW: usize = 32;
/// Most output-channel blocks per micro-kernel call of any kernel.
const MAX_OBS: usize = 2;

/// Which micro-kernel [`conv_direct`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Isa {
    /// 4 channels × 16 pixels (two 8-wide vectors): 8 accumulators, which leaves the
    /// compiler enough of the 16 vector registers to avoid spilling.
    Avx2,
    /// 8 channels (two blocks of [`OB`]) × 32 pixels (two 16-wide vectors): 16 of the 32
    /// registers; each input vector feeds eight multiply-adds, each broadcast weight two.
    Avx512,
}

impl Isa {
    /// The best kernel of this CPU (`None` without AVX2 and FMA).
    pub(crate) fn best() -> Option<Isa> {
        if crate::simd::has_avx512() {
            Some(Isa::Avx512)
        } else if crate::simd::has_fma() {
            Some(Isa::Avx2)
        } else {
            None
        }
    }

    /// Pixels per micro-kernel call.
    fn strip(self) -> usize {
        match self {
            Isa::Avx2 => 16,
            Isa::Avx512 => AVX512_SW,
        }
    }
}

thread_local! {
    static BAND_LOCAL: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Each worker thread's band buffer, kept between calls.
pub(crate) static BAND: WorkerScratch<Vec<f32>> = WorkerScratch::new(&BAND_LOCAL);

/// Band buffer budget in floats (1 MB: a band stays in L2 or at least the last-level cache).
const BAND_FLOATS: usize = 256 * 1024;

/// Weight budget in floats of the output-channel blocks computed together.
const GROUP_WEIGHT_FLOATS: usize = 4 * 1024;

/// The dense `[cout, out_h, out_w]` output of a convolution, shared between tasks that each
/// write a disjoint set of rows.
pub(crate) struct RowSink<'a> {
    ptr: *mut f32,
    cout: usize,
    out_h: usize,
    out_w: usize,
    _borrow: std::marker::PhantomData<&'a mut [f32]>,
}

// SAFETY: tasks only write through `RowSink::row_ptr`/`store`, and `conv_direct` hands every
// output row to exactly one task, so concurrent writes never touch the same element.
unsafe impl Send for RowSink<'_> {}
unsafe impl Sync for RowSink<'_> {}

impl<'a> RowSink<'a> {
    /// A sink over `dst`, which must hold exactly `cout × out_h × out_w` values.
    pub(crate) fn new(dst: &'a mut [f32], cout: usize, out_h: usize, out_w: usize) -> RowSink<'a> {
        assert_eq!(dst.len(), cout * out_h * out_w, "conv output size");
        RowSink {
            ptr: dst.as_mut_ptr(),
            cout,
            out_h,
            out_w,
            _borrow: std::marker::PhantomData,
        }
    }

    /// Pointer to output `(o, i, j0)`.
    ///
    /// # Safety
    /// `o < cout`, `i < out_h`, `j0 <= out_w`; writes through the pointer must stay inside row
    /// `i` and follow the rules of [`RowSink::store`].
    #[inline(always)]
    unsafe fn row_ptr(&self, o: usize, i: usize, j0: usize) -> *mut f32 {
        debug_assert!(o < self.cout && i < self.out_h && j0 <= self.out_w);
        self.ptr.add((o * self.out_h + i) * self.out_w + j0)
    }

    /// Writes `vals` to output channel `o`, row `i`, columns `j0..j0 + vals.len()`.
    ///
    /// # Safety
    /// The caller must be the only task writing row `i`; `o < cout`, `i < out_h` and
    /// `j0 + vals.len() <= out_w`.
    #[inline(always)]
    unsafe fn store(&self, o: usize, i: usize, j0: usize, vals: &[f32]) {
        debug_assert!(j0 + vals.len() <= self.out_w);
        std::ptr::copy_nonoverlapping(vals.as_ptr(), self.row_ptr(o, i, j0), vals.len());
    }
}

/// One convolution over a shared input: `out(o, i, j) = Σ_{c,t} w[o, c, t] · x[c, i + dy_t,
/// j + dx_t]` (zero outside `x`) for output rows `i` in `rows` and `j < out_w`, with taps in
/// `-1..=1`; `wblk` in the blocked layout `wblk[((ob · cin + c) · ntaps + t) · OB + o]` (output
/// channel `ob · OB + o`, zero past `cout`). Row `i` goes to row `i - rows.start` of `sink`,
/// through `epi` (whose noise is indexed by `i * out_w + j`).
pub(crate) struct SubConv<'a> {
    pub taps: &'a [Tap],
    pub wblk: &'a [f32],
    pub rows: std::ops::Range<usize>,
    pub out_w: usize,
    pub sink: RowSink<'a>,
    pub epi: Option<&'a Epilogue<'a>>,
}

/// Runs every convolution of `subs` (each with `cout` outputs) over the `[cin, h, w]` input
/// `x` with the micro-kernel `isa` (which the CPU must support: see [`Isa::best`]). Each task
/// copies a band of input rows into a zero-padded buffer once and runs all sub-convolutions on
/// it (the four phases of a transposed convolution share their input).
pub(crate) fn conv_direct(
    isa: Isa,
    x: &[f32],
    cin: usize,
    h: usize,
    w: usize,
    cout: usize,
    subs: &[SubConv<'_>],
) {
    let supported = match isa {
        Isa::Avx2 => crate::simd::has_fma(),
        Isa::Avx512 => crate::simd::has_avx512(),
    };
    assert!(supported, "direct convolution: the CPU lacks {isa:?}");
    let sw = isa.strip();
    assert_eq!(x.len(), cin * h * w, "conv input size");
    let nob = cout.div_ceil(OB);
    for sc in subs {
        assert!(
            sc.taps
                .iter()
                .all(|t| (-1..=1).contains(&t.dy) && (-1..=1).contains(&t.dx)),
            "direct convolution taps must lie in -1..=1"
        );
        assert_eq!(
            sc.wblk.len(),
            nob * cin * sc.taps.len() * OB,
            "blocked weight size"
        );
        assert!(
            sc.sink.cout == cout && sc.sink.out_h == sc.rows.len() && sc.sink.out_w == sc.out_w,
            "conv output sink does not match"
        );
    }
    let active = subs.iter().filter(|sc| !sc.rows.is_empty() && sc.out_w > 0);
    let lo = active.clone().map(|sc| sc.rows.start).min();
    let hi = active.clone().map(|sc| sc.rows.end).max();
    let out_w = active.map(|sc| sc.out_w).max().unwrap_or(0);
    let (Some(lo), Some(hi)) = (lo, hi) else {
        return;
    };
    if cout == 0 || cin == 0 || out_w == 0 {
        return;
    }
    let nstrips = out_w.div_ceil(sw);
    // Padded band row: one zero column on the left, room for the input row and for whole
    // strips plus the right tap. The row length in cache lines is made odd so that the rows
    // of a channel fall into different L1 sets (power-of-two strides would make the ~3·cin
    // rows a strip reads collide in a few sets).
    let mut wp = ((nstrips * sw).max(w) + 2).div_ceil(LINE) * LINE;
    if (wp / LINE).is_multiple_of(2) {
        wp += LINE;
    }
    let span = hi - lo;
    let rows = (BAND_FLOATS / (cin * wp)).saturating_sub(2).clamp(1, span);
    // Spread the bands over the threads when there are few rows.
    let threads = rayon::current_num_threads().max(1);
    let rows = rows.min(span.div_ceil(threads)).max(1);
    let nbands = span.div_ceil(rows);
    let offs: Vec<Vec<isize>> = subs
        .iter()
        .map(|sc| {
            sc.taps
                .iter()
                .map(|t| (1 + t.dy) * wp as isize + 1 + t.dx)
                .collect()
        })
        .collect();
    let job = BandJob {
        x,
        cin,
        h,
        w,
        cout,
        lo,
        rows,
        wp,
        subs,
        offs: &offs,
    };
    (0..nbands).into_par_iter().for_each(|b| {
        // The task body never waits on other rayon tasks, so the buffer is never re-entered.
        BAND.with(|band| {
            // SAFETY: the CPU supports `isa` (asserted above); the band geometry was computed
            // for its strip width.
            unsafe {
                match isa {
                    Isa::Avx2 => band_avx2(&job, b, band),
                    Isa::Avx512 => band_avx512(&job, b, band),
                }
            };
        })
    });
}

/// Strips with at most this many valid pixels are computed pixel by pixel.
const COLUMN_TAIL: usize = 3;

/// f32 values per 64-byte cache line.
const LINE: usize = 16;

/// Everything a band task needs.
struct BandJob<'a, 'b> {
    x: &'a [f32],
    cin: usize,
    h: usize,
    w: usize,
    cout: usize,
    /// First output row of band 0.
    lo: usize,
    /// Output rows per band.
    rows: usize,
    /// Padded band row length.
    wp: usize,
    subs: &'a [SubConv<'b>],
    /// Per sub-convolution, its tap offsets in the padded band (all in `0..=2·wp + 2`).
    offs: &'a [Vec<isize>],
}

/// One band of output rows with the AVX2 micro-kernel.
///
/// # Safety
/// The CPU must support AVX2 and FMA, and `b` must be a band index of `job` (each band is
/// processed by one task only), laid out for 16-pixel strips.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn band_avx2(job: &BandJob<'_, '_>, b: usize, band: &mut Vec<f32>) {
    band_with::<avx2::Kernel>(job, b, band)
}

/// One band of output rows with the AVX-512 micro-kernel.
///
/// # Safety
/// As [`band_avx2`], for a CPU with AVX-512F and a job laid out for 64-pixel strips.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn band_avx512(job: &BandJob<'_, '_>, b: usize, band: &mut Vec<f32>) {
    band_with::<avx512::Kernel>(job, b, band)
}

/// What the band loop needs of a micro-kernel.
#[cfg(target_arch = "x86_64")]
trait StripKernel {
    /// Pixels per strip.
    const SW: usize;
    /// Blocks of [`OB`] output channels per strip (each read through its own weight pointer).
    const OBS: usize;
    /// The accumulators of one strip (`OBS · OB` output channels × `SW` pixels).
    type Acc;
    /// Accumulators at zero.
    unsafe fn zero() -> Self::Acc;
    /// One tap: `SW` input pixels at `p` times the 4 weights at `w[k] + woff` of each block
    /// `k < OBS`, added to `acc`.
    ///
    /// # Safety
    /// `p .. p + SW` and `w[k] + woff .. + 4` (`k < OBS`) must be readable.
    unsafe fn tap(acc: &mut Self::Acc, p: *const f32, w: &[*const f32; MAX_OBS], woff: usize);
    /// Stores the accumulators to `tmp` (the first `SW` values of each row).
    unsafe fn spill(acc: &Self::Acc, tmp: &mut [[f32; MAX_SW]; MAX_OBS * OB]);
    /// Applies the epilogue in registers (same operations and order as [`Epilogue::apply`])
    /// and stores a full strip of output channels `o0..o0 + n` (`n <= OBS · OB`) of output
    /// row `i` (row `local` of the sink), columns `j0..j0 + SW`.
    ///
    /// # Safety
    /// The row must belong to the calling task, `o0 + n <= cout`, `local` must be a row of the
    /// sink and `j0 + SW <= out_w`.
    #[allow(clippy::too_many_arguments)]
    unsafe fn finish_full(
        acc: &Self::Acc,
        o0: usize,
        n: usize,
        rows: (usize, usize),
        j0: usize,
        out_w: usize,
        epi: Option<&Epilogue<'_>>,
        sink: &RowSink<'_>,
    );
}

/// `acc[o] = Σ_c Σ_t w[(c·T + t)·4 + o] · x[c·cstride + offs[t] + 0..SW]`.
///
/// # Safety
/// Every `x` index `c·cstride + offs[t] + 0..SW` for `c < cin` must be readable, and `w` must
/// hold `cin · offs.len() · 4` values.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn strip<K: StripKernel>(
    x: *const f32,
    cstride: usize,
    cin: usize,
    offs: &[isize],
    w: &[*const f32; MAX_OBS],
) -> K::Acc {
    // Fully unrolled tap loops for the tap counts that occur (3x3 conv and the phases of the
    // transposed conv).
    match offs.len() {
        9 => strip_n::<K, 9>(x, cstride, cin, offs, w),
        4 => strip_n::<K, 4>(x, cstride, cin, offs, w),
        2 => strip_n::<K, 2>(x, cstride, cin, offs, w),
        1 => strip_n::<K, 1>(x, cstride, cin, offs, w),
        _ => strip_any::<K>(x, cstride, cin, offs, w),
    }
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn strip_n<K: StripKernel, const NT: usize>(
    x: *const f32,
    cstride: usize,
    cin: usize,
    offs: &[isize],
    w: &[*const f32; MAX_OBS],
) -> K::Acc {
    let mut o = [0isize; NT];
    o.copy_from_slice(&offs[..NT]);
    let mut acc = K::zero();
    let mut woff = 0;
    for c in 0..cin {
        let xc = x.add(c * cstride);
        for &off in &o {
            K::tap(&mut acc, xc.offset(off), w, woff);
            woff += OB;
        }
    }
    acc
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn strip_any<K: StripKernel>(
    x: *const f32,
    cstride: usize,
    cin: usize,
    offs: &[isize],
    w: &[*const f32; MAX_OBS],
) -> K::Acc {
    let mut acc = K::zero();
    let mut woff = 0;
    for c in 0..cin {
        let xc = x.add(c * cstride);
        for &off in offs {
            K::tap(&mut acc, xc.offset(off), w, woff);
            woff += OB;
        }
    }
    acc
}

/// The band loop of either kernel (inlined into its `#[target_feature]` wrapper).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn band_with<K: StripKernel>(job: &BandJob<'_, '_>, b: usize, band: &mut Vec<f32>) {
    let BandJob {
        x,
        cin,
        h,
        w,
        cout,
        lo,
        rows,
        wp,
        subs,
        offs,
    } = *job;
    let nob = cout.div_ceil(OB);
    let i0 = lo + b * rows;
    let i1 = i0 + rows;
    let brows = rows + 2;
    // Channel stride ≡ 3 rows (mod 64 lines): the three rows read per channel then tile the L1
    // sets evenly across channels.
    let r = wp / LINE;
    let min_lines = brows * r;
    let lines = min_lines + (3 * r + 64 * min_lines - min_lines) % 64;
    let cstride = lines * LINE;
    // Contents past each channel's `brows` rows are never read; only grow (and zero) the
    // buffer when it is too small.
    if band.len() < cin * cstride {
        band.resize(cin * cstride, 0.0);
    }
    // Band row r holds input row i0 - 1 + r, shifted right by one column, zero elsewhere.
    for c in 0..cin {
        for r in 0..brows {
            let d = c * cstride + r * wp;
            let dst = &mut band[d..d + wp];
            let src_row = i0 as isize - 1 + r as isize;
            if src_row < 0 || src_row >= h as isize {
                dst.fill(0.0);
                continue;
            }
            let s0 = (c * h + src_row as usize) * w;
            dst[0] = 0.0;
            dst[1..1 + w].copy_from_slice(&x[s0..s0 + w]);
            dst[1 + w..].fill(0.0);
        }
    }
    let max_off = (2 * wp + 2) as isize;
    let mut tmp = [[0f32; MAX_SW]; MAX_OBS * OB];
    for (sc, offs) in subs.iter().zip(offs) {
        assert!(offs.iter().all(|&o| (0..=max_off).contains(&o)));
        let nt = offs.len();
        let si0 = i0.max(sc.rows.start);
        let si1 = i1.min(sc.rows.end);
        if si0 >= si1 {
            continue;
        }
        let row0 = sc.rows.start;
        let nstrips = sc.out_w.div_ceil(K::SW);
        let (sink, epi, out_w) = (&sc.sink, sc.epi, sc.out_w);
        // Output-channel blocks whose weights stay cache-resident while a strip of input is
        // reused for all of them.
        let group = (GROUP_WEIGHT_FLOATS / (cin * nt * OB))
            .clamp(1, nob)
            .next_multiple_of(K::OBS);
        let blk = cin * nt * OB;
        for g0 in (0..nob).step_by(group) {
            let g1 = (g0 + group).min(nob);
            // Column strips outermost: the rows a strip reads are reused by the next output
            // rows while they are still in L1/L2.
            for s in 0..nstrips {
                for i in si0..si1 {
                    let j0 = s * K::SW;
                    let base = (i - i0) * wp + j0;
                    let valid = K::SW.min(out_w - j0);
                    for ob in (g0..g1).step_by(K::OBS) {
                        let nblk = K::OBS.min(g1 - ob);
                        let nvalid_o = (nblk * OB).min(cout - ob * OB);
                        if valid <= COLUMN_TAIL {
                            // A short tail (the odd last column of the transposed-conv
                            // phases): one pixel at a time instead of a mostly wasted strip.
                            for kb in 0..nblk {
                                let obk = ob + kb;
                                let wb = &sc.wblk[obk * blk..(obk + 1) * blk];
                                let nvalid_k = OB.min(cout - obk * OB);
                                for j in j0..j0 + valid {
                                    // SAFETY: as for `strip` below, reading one value per tap
                                    // at column `j <= (nstrips - 1)·SW + SW - 1`.
                                    let v = avx2::column(
                                        band.as_ptr().add(base + (j - j0)),
                                        cstride,
                                        cin,
                                        offs,
                                        wb.as_ptr(),
                                    );
                                    for (oi, &val) in v.iter().enumerate().take(nvalid_k) {
                                        let o = obk * OB + oi;
                                        let mut one = [val];
                                        if let Some(e) = epi {
                                            e.apply(o, i * out_w + j, &mut one);
                                        }
                                        // SAFETY: row `i` belongs to this band only; `o <
                                        // cout`, `i` lies in the sink's rows and `j < out_w`.
                                        sink.store(o, i - row0, j, &one);
                                    }
                                }
                            }
                            continue;
                        }
                        // Missing blocks (past the last one) read the first block's weights
                        // again; their outputs are not stored.
                        let wbase: [*const f32; MAX_OBS] = std::array::from_fn(|k| {
                            let obk = if k < nblk { ob + k } else { ob };
                            sc.wblk[obk * blk..(obk + 1) * blk].as_ptr()
                        });
                        // SAFETY: AVX2/FMA are available (caller contract); with `base +
                        // offs[t] + SW - 1 <= (brows - 3)·wp + (nstrips - 1)·SW + 2·wp + 2 +
                        // SW - 1 < brows·wp <= cstride` every read of channel c stays inside
                        // its `cstride` slice of `band`, and every `wbase` pointer starts a
                        // block of `cin·nt·OB` weights.
                        let acc = strip::<K>(band.as_ptr().add(base), cstride, cin, offs, &wbase);
                        if valid == K::SW {
                            // SAFETY: as below, for a full strip with unit column stride.
                            K::finish_full(
                                &acc,
                                ob * OB,
                                nvalid_o,
                                (i, i - row0),
                                j0,
                                out_w,
                                epi,
                                sink,
                            );
                            continue;
                        }
                        K::spill(&acc, &mut tmp);
                        for (oi, vals) in tmp.iter_mut().enumerate().take(nvalid_o) {
                            let o = ob * OB + oi;
                            let vals = &mut vals[..valid];
                            if let Some(e) = epi {
                                e.apply(o, i * out_w + j0, vals);
                            }
                            // SAFETY: row `i` belongs to this band only; `o < cout`,
                            // `i` lies in the sink's rows and `j0 + valid <= out_w`.
                            sink.store(o, i - row0, j0, vals);
                        }
                    }
                }
            }
        }
    }
}

/// Off x86-64 the direct kernel is never used ([`Isa::best`] is `None`).
#[cfg(not(target_arch = "x86_64"))]
unsafe fn band_avx2(_job: &BandJob<'_, '_>, _b: usize, _band: &mut Vec<f32>) {
    unreachable!("direct convolution is x86-64 only")
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn band_avx512(_job: &BandJob<'_, '_>, _b: usize, _band: &mut Vec<f32>) {
    unreachable!("direct convolution is x86-64 only")
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{Epilogue, RowSink, StripKernel, MAX_OBS, MAX_SW, OB};
    use crate::sg2::ops::Act;
    use std::arch::x86_64::*;

    /// Pixels per strip.
    const SW: usize = 16;

    /// The AVX2 micro-kernel.
    pub(super) struct Kernel;

    impl StripKernel for Kernel {
        const SW: usize = SW;
        const OBS: usize = 1;
        type Acc = Acc;
        #[inline(always)]
        unsafe fn zero() -> Acc {
            [_mm256_setzero_ps(); 2 * OB]
        }
        #[inline(always)]
        unsafe fn tap(acc: &mut Acc, p: *const f32, w: &[*const f32; MAX_OBS], woff: usize) {
            let wp = w[0].add(woff);
            let v0 = _mm256_loadu_ps(p);
            let v1 = _mm256_loadu_ps(p.add(8));
            for k in 0..OB {
                let b = _mm256_broadcast_ss(&*wp.add(k));
                acc[2 * k] = _mm256_fmadd_ps(v0, b, acc[2 * k]);
                acc[2 * k + 1] = _mm256_fmadd_ps(v1, b, acc[2 * k + 1]);
            }
        }
        #[inline(always)]
        unsafe fn spill(acc: &Acc, tmp: &mut [[f32; MAX_SW]; MAX_OBS * OB]) {
            spill(acc, tmp)
        }
        #[inline(always)]
        unsafe fn finish_full(
            acc: &Acc,
            o0: usize,
            n: usize,
            rows: (usize, usize),
            j0: usize,
            out_w: usize,
            epi: Option<&Epilogue<'_>>,
            sink: &RowSink<'_>,
        ) {
            finish_full(acc, o0, n, rows, j0, out_w, epi, sink)
        }
    }

    /// Accumulators of one strip: output channel `o` of the block is `acc[2o]` (pixels 0..8)
    /// and `acc[2o + 1]` (pixels 8..16).
    pub(super) type Acc = [__m256; 2 * OB];

    /// One output pixel of 4 channels: `Σ_c Σ_t w[(c·T + t)·4 + o] · x[c·cstride + offs[t]]`.
    ///
    /// # Safety
    /// AVX2 and FMA must be available; every `x` index `c·cstride + offs[t]` for `c < cin` must
    /// be readable, and `w` must hold `cin · offs.len() · 4` values.
    #[inline(always)]
    pub(super) unsafe fn column(
        x: *const f32,
        cstride: usize,
        cin: usize,
        offs: &[isize],
        w: *const f32,
    ) -> [f32; OB] {
        let mut acc = _mm_setzero_ps();
        let mut wp = w;
        for c in 0..cin {
            let xc = x.add(c * cstride);
            for &off in offs {
                let v = _mm_broadcast_ss(&*xc.offset(off));
                acc = _mm_fmadd_ps(v, _mm_loadu_ps(wp), acc);
                wp = wp.add(OB);
            }
        }
        let mut out = [0f32; OB];
        _mm_storeu_ps(out.as_mut_ptr(), acc);
        out
    }

    /// Stores the accumulators to `tmp`.
    #[inline(always)]
    pub(super) unsafe fn spill(acc: &Acc, tmp: &mut [[f32; MAX_SW]; MAX_OBS * OB]) {
        for (k, row) in tmp.iter_mut().enumerate().take(OB) {
            _mm256_storeu_ps(row.as_mut_ptr(), acc[2 * k]);
            _mm256_storeu_ps(row.as_mut_ptr().add(8), acc[2 * k + 1]);
        }
    }

    /// Applies the epilogue in registers (same operations and order as
    /// [`Epilogue::apply`]) and stores a full 16-pixel strip of output channels
    /// `o0..o0 + n` of output row `i` (row `local` of the sink), columns `j0..j0 + 16`.
    ///
    /// # Safety
    /// AVX2 must be available; the row must belong to the calling task, `o0 + n <= cout`,
    /// `local` must be a row of the sink and `j0 + 16 <= out_w`.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn finish_full(
        acc: &Acc,
        o0: usize,
        n: usize,
        (i, local): (usize, usize),
        j0: usize,
        out_w: usize,
        epi: Option<&Epilogue<'_>>,
        sink: &RowSink<'_>,
    ) {
        for k in 0..n {
            let o = o0 + k;
            let mut v0 = acc[2 * k];
            let mut v1 = acc[2 * k + 1];
            if let Some(e) = epi {
                if let Some(noise) = e.noise {
                    let p = i * out_w + j0;
                    let nz = &noise[p..p + SW];
                    v0 = _mm256_add_ps(v0, _mm256_loadu_ps(nz.as_ptr()));
                    v1 = _mm256_add_ps(v1, _mm256_loadu_ps(nz.as_ptr().add(8)));
                }
                let b = _mm256_set1_ps(e.bias[o]);
                v0 = _mm256_add_ps(v0, b);
                v1 = _mm256_add_ps(v1, b);
                if let Act::Lrelu { gain } = e.act {
                    let zero = _mm256_setzero_ps();
                    let slope = _mm256_set1_ps(0.2);
                    let g = _mm256_set1_ps(gain);
                    // y < 0 ? 0.2·y : y (keeps -0 and NaN like the scalar code), then gain.
                    let n0 = _mm256_cmp_ps::<_CMP_LT_OQ>(v0, zero);
                    let n1 = _mm256_cmp_ps::<_CMP_LT_OQ>(v1, zero);
                    v0 = _mm256_blendv_ps(v0, _mm256_mul_ps(v0, slope), n0);
                    v1 = _mm256_blendv_ps(v1, _mm256_mul_ps(v1, slope), n1);
                    v0 = _mm256_mul_ps(v0, g);
                    v1 = _mm256_mul_ps(v1, g);
                }
                if let Some(cl) = e.clamp {
                    // max/min return their second operand when either is NaN: NaN survives.
                    let hi = _mm256_set1_ps(cl);
                    let lo = _mm256_set1_ps(-cl);
                    v0 = _mm256_min_ps(hi, _mm256_max_ps(lo, v0));
                    v1 = _mm256_min_ps(hi, _mm256_max_ps(lo, v1));
                }
            }
            let dst = sink.row_ptr(o, local, j0);
            _mm256_storeu_ps(dst, v0);
            _mm256_storeu_ps(dst.add(8), v1);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{Epilogue, RowSink, StripKernel, MAX_OBS, MAX_SW, OB};
    use crate::sg2::ops::Act;
    use std::arch::x86_64::*;

    /// Pixels per strip: two 16-wide vectors.
    const SW: usize = super::AVX512_SW;
    /// Vectors per output channel of a strip.
    const V: usize = SW / 16;
    /// Output-channel blocks per strip: 8 channels × 32 pixels in 16 accumulators. Each input
    /// vector feeds eight multiply-adds (four with 4 × 64 pixels): the inputs of the wide
    /// layers come from L2, whose bandwidth bounded the 4-channel kernel.
    const OBS: usize = 2;
    /// Output channels per strip.
    const NO: usize = OBS * OB;

    /// Accumulators of one strip: output channel `o` of the strip is `acc[V·o .. V·o + V]`.
    type Acc = [__m512; V * NO];

    /// The AVX-512 micro-kernel.
    pub(super) struct Kernel;

    impl StripKernel for Kernel {
        const SW: usize = SW;
        const OBS: usize = OBS;
        type Acc = Acc;

        #[inline(always)]
        unsafe fn zero() -> Acc {
            [_mm512_setzero_ps(); V * NO]
        }

        /// `SW` input pixels at `p` times the 4 weights of each block.
        #[inline(always)]
        unsafe fn tap(acc: &mut Acc, p: *const f32, w: &[*const f32; MAX_OBS], woff: usize) {
            let xs: [__m512; V] = std::array::from_fn(|v| _mm512_loadu_ps(p.add(16 * v)));
            for k in 0..NO {
                let b = _mm512_set1_ps(*w[k / OB].add(woff + k % OB));
                for (v, &x) in xs.iter().enumerate() {
                    acc[V * k + v] = _mm512_fmadd_ps(x, b, acc[V * k + v]);
                }
            }
        }

        #[inline(always)]
        unsafe fn spill(acc: &Acc, tmp: &mut [[f32; MAX_SW]; MAX_OBS * OB]) {
            for (k, row) in tmp.iter_mut().enumerate().take(NO) {
                for v in 0..V {
                    _mm512_storeu_ps(row.as_mut_ptr().add(16 * v), acc[V * k + v]);
                }
            }
        }

        #[inline(always)]
        unsafe fn finish_full(
            acc: &Acc,
            o0: usize,
            n: usize,
            (i, local): (usize, usize),
            j0: usize,
            out_w: usize,
            epi: Option<&Epilogue<'_>>,
            sink: &RowSink<'_>,
        ) {
            for k in 0..n {
                let o = o0 + k;
                let mut vs: [__m512; V] = std::array::from_fn(|v| acc[V * k + v]);
                if let Some(e) = epi {
                    if let Some(noise) = e.noise {
                        let p = i * out_w + j0;
                        let nz = &noise[p..p + SW];
                        for (v, x) in vs.iter_mut().enumerate() {
                            *x = _mm512_add_ps(*x, _mm512_loadu_ps(nz.as_ptr().add(16 * v)));
                        }
                    }
                    let b = _mm512_set1_ps(e.bias[o]);
                    for x in vs.iter_mut() {
                        *x = _mm512_add_ps(*x, b);
                    }
                    if let Act::Lrelu { gain } = e.act {
                        let zero = _mm512_setzero_ps();
                        let slope = _mm512_set1_ps(0.2);
                        let g = _mm512_set1_ps(gain);
                        // y < 0 ? 0.2·y : y (keeps -0 and NaN like the scalar code), then gain.
                        for x in vs.iter_mut() {
                            let neg = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(*x, zero);
                            *x = _mm512_mul_ps(_mm512_mask_mul_ps(*x, neg, *x, slope), g);
                        }
                    }
                    if let Some(cl) = e.clamp {
                        // max/min return their second operand when either is NaN: NaN survives.
                        let hi = _mm512_set1_ps(cl);
                        let lo = _mm512_set1_ps(-cl);
                        for x in vs.iter_mut() {
                            *x = _mm512_min_ps(hi, _mm512_max_ps(lo, *x));
                        }
                    }
                }
                let dst = sink.row_ptr(o, local, j0);
                for (v, &x) in vs.iter().enumerate() {
                    _mm512_storeu_ps(dst.add(16 * v), x);
                }
            }
        }
    }
}
