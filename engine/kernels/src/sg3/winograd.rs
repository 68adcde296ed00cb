//! Winograd convolution F(m×m, 3×3) for the 3×3 modulated convolutions (zero padding 2).
//!
//! Output tile `(ty, tx)` (m×m outputs) reads the α×α window (α = m + 2) of the padded input at
//! the same origin: `Y = Aᵀ[U ⊙ V]A` with `U = G·g·Gᵀ` (per output/input channel pair) and
//! `V = Bᵀ·d·B` (per input channel and tile). The sum over input channels of `U ⊙ V` is α²
//! independent GEMMs `[cout × cin]·[cin × tiles]`, which is where the time goes: F(2×2) needs
//! 16 multiplies per 4 outputs and F(4×4) 36 per 16, against 9 per output for the direct
//! convolution.
//!
//! Both tile sizes use the standard interpolation points (0, ±1 for F(2); 0, ±1, ±2 for F(4),
//! plus ∞). F(4×4) measured as accurate as F(2×2) on the fixtures (final-image error ~1e-6).

use rayon::prelude::*;

use crate::packed_gemm::{self, MR, NR};
use crate::simd::{
    deinterleave, dispatch_fma, interleave, store_fence, stream_panel, weighted_sum,
    winograd_f4_input, winograd_f4_output,
};
use crate::stage_time::{self, Stage};
use crate::worker_scratch::WorkerScratch;

/// The transform matrices of one tile size.
pub(crate) struct Tile {
    /// Outputs per tile side.
    pub m: usize,
    /// Inputs per tile side (`m + 2`).
    pub alpha: usize,
    /// `Bᵀ`, α×α row-major.
    bt: &'static [f32],
    /// `G`, α×3 row-major (rounded to f32 when used).
    g: &'static [f64],
    /// `Aᵀ`, m×α row-major.
    at: &'static [f32],
}

/// F(2×2, 3×3).
pub(crate) static F2: Tile = Tile {
    m: 2,
    alpha: 4,
    bt: &[
        1.0, 0.0, -1.0, 0.0, //
        0.0, 1.0, 1.0, 0.0, //
        0.0, -1.0, 1.0, 0.0, //
        0.0, 1.0, 0.0, -1.0,
    ],
    g: &[
        1.0, 0.0, 0.0, //
        0.5, 0.5, 0.5, //
        0.5, -0.5, 0.5, //
        0.0, 0.0, 1.0,
    ],
    at: &[
        1.0, 1.0, 1.0, 0.0, //
        0.0, 1.0, -1.0, -1.0,
    ],
};

/// F(4×4, 3×3).
pub(crate) static F4: Tile = Tile {
    m: 4,
    alpha: 6,
    bt: &[
        4.0, 0.0, -5.0, 0.0, 1.0, 0.0, //
        0.0, -4.0, -4.0, 1.0, 1.0, 0.0, //
        0.0, 4.0, -4.0, -1.0, 1.0, 0.0, //
        0.0, -2.0, -1.0, 2.0, 1.0, 0.0, //
        0.0, 2.0, -1.0, -2.0, 1.0, 0.0, //
        0.0, 4.0, 0.0, -5.0, 0.0, 1.0,
    ],
    g: &[
        1.0 / 4.0,
        0.0,
        0.0,
        -1.0 / 6.0,
        -1.0 / 6.0,
        -1.0 / 6.0,
        -1.0 / 6.0,
        1.0 / 6.0,
        -1.0 / 6.0,
        1.0 / 24.0,
        1.0 / 12.0,
        1.0 / 6.0,
        1.0 / 24.0,
        -1.0 / 12.0,
        1.0 / 6.0,
        0.0,
        0.0,
        1.0,
    ],
    at: &[
        1.0, 1.0, 1.0, 1.0, 1.0, 0.0, //
        0.0, 1.0, -1.0, 2.0, -2.0, 0.0, //
        0.0, 1.0, 1.0, 4.0, 4.0, 0.0, //
        0.0, 1.0, -1.0, 8.0, -8.0, 1.0,
    ],
};

/// How the per-sample weights derive from the layer's weights: `W·s` per input channel, then
/// (when demodulating) each output channel scaled to unit norm, then `· gain` (upstream
/// `modulated_conv2d`; `styles` already normalised by the caller when demodulating).
pub(crate) struct Modulation<'a> {
    pub styles: &'a [f32],
    pub demodulate: bool,
    pub gain: f32,
}

/// Per-channel factors of a convolution whose weights are shared across samples (see
/// [`SharedWinograd`]): the transformed input tiles of channel `ci` are multiplied by
/// `input[ci]`, the outputs of channel `co` by `output[co]`.
#[derive(Clone, Copy)]
pub(crate) struct ChannelScales<'a> {
    pub input: &'a [f32],
    pub output: &'a [f32],
}

/// The transformed weights of a demodulated layer without the styles, kept for every sample:
/// a modulated convolution is `d[co] · gain · Σ_ci (W[co, ci] ∗ s[ci]·x[ci])`, so the styles
/// can scale the input tiles and the demodulation the outputs instead of the weights, and the
/// per-sample weight transform (the cost that dominates the layers on small maps, tens of MB
/// written per layer and sample) goes away. The demodulation needs `Σ_k W[co, ci, k]²` per
/// channel pair, kept in `square_sums [cout][cin]`.
pub(crate) struct SharedWinograd {
    pub weights: WinogradWeights,
    pub square_sums: Vec<f32>,
}

impl SharedWinograd {
    /// From the (pre-normalised) weights `w [cout, cin, 3, 3]`.
    pub fn new(cout: usize, cin: usize, w: &[f32]) -> SharedWinograd {
        let ones = vec![1.0f32; cin];
        let plain = Modulation {
            styles: &ones,
            demodulate: false,
            gain: 1.0,
        };
        let weights = WinogradWeights::new_in(&F4, cout, cin, w, &plain, Vec::new());
        let square_sums = w
            .chunks_exact(9)
            .map(|k| k.iter().map(|&v| (v * v) as f64).sum::<f64>() as f32)
            .collect();
        SharedWinograd {
            weights,
            square_sums,
        }
    }

    /// The output factors of one sample: `gain / sqrt(Σ_ci s[ci]²·Σ_k W[co, ci, k]² + 1e-8)`
    /// per output channel (upstream's demodulation of `W·s`) into `out [cout]`.
    pub fn output_scales(&self, styles: &[f32], gain: f32, out: &mut Vec<f32>) {
        let cin = styles.len();
        let s2: Vec<f64> = styles.iter().map(|&v| (v * v) as f64).collect();
        out.clear();
        out.extend(self.square_sums.chunks_exact(cin.max(1)).map(|row| {
            let sum: f64 = row.iter().zip(&s2).map(|(&w, s)| w as f64 * s).sum();
            gain / ((sum as f32) + 1e-8f32).sqrt()
        }));
    }
}

impl std::fmt::Debug for SharedWinograd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedWinograd")
            .field("values", &self.weights.u.len())
            .finish_non_exhaustive()
    }
}

/// Per-sample transformed weights `U = G·g·Gᵀ`, stored as the A operands of
/// [`gemm_packed`](packed_gemm::gemm_packed), one per transform position:
/// `u[((ξ · panels + ib) · cin + ci) · MR + r]` is output channel `ib · MR + r` (zero past
/// `cout`), input channel `ci`, position `ξ`; the product of one position reads one
/// contiguous stretch.
pub(crate) struct WinogradWeights {
    pub tile: &'static Tile,
    /// The buffer; the `len` packed values start at `off`, on a 64-byte boundary.
    pub u: Vec<f32>,
    off: usize,
    len: usize,
}

impl WinogradWeights {
    /// Unmodulated weights `w [cout, cin, 3, 3]`.
    #[cfg(test)]
    pub fn new(tile: &'static Tile, cout: usize, cin: usize, w: &[f32]) -> WinogradWeights {
        let ones = vec![1.0f32; cin];
        let plain = Modulation {
            styles: &ones,
            demodulate: false,
            gain: 1.0,
        };
        Self::new_in(tile, cout, cin, w, &plain, Vec::new())
    }

    /// Modulates `weight [cout, cin, 3, 3]` and transforms it into the buffer `u` (grown to
    /// at least the packed size; every value of that is overwritten). Modulation and transform run in one pass per block of
    /// [`MR`] output channels, vectorised over those channels, writing the packed layout
    /// directly (the modulated 3×3 weights are never stored).
    pub fn new_in(
        tile: &'static Tile,
        cout: usize,
        cin: usize,
        weight: &[f32],
        modulation: &Modulation<'_>,
        mut u: Vec<f32>,
    ) -> WinogradWeights {
        let a2 = tile.alpha * tile.alpha;
        let panels = cout.div_ceil(MR);
        // grown, never shrunk (the buffer serves layers of every size; a shrink would mean
        // zeroing the regrown part at the next bigger layer)
        let len = a2 * panels * cin * MR;
        crate::buffer_pool::grow(&mut u, len + 16);
        // 64-byte aligned, so pairs of input channels are whole cache lines (streamed)
        let off = u.as_ptr().align_offset(64).min(16);
        let out = SharedBuf::new(&mut u[off..off + len]);
        // The styles once per tap (`s9[ci·9 + k] = s[ci]`), so the demodulation sums run over
        // contiguous vectors.
        let s9: Vec<f32> = if modulation.demodulate {
            modulation.styles.iter().flat_map(|&s| [s; 9]).collect()
        } else {
            Vec::new()
        };
        weight
            .par_chunks(MR * 9 * cin.max(1))
            .enumerate()
            .for_each(|(ib, w_blk)| {
                // SAFETY: panel `ib` of every position is written by this task only.
                unsafe { weights_block(tile, cin, w_blk, modulation, &s9, &out, panels, ib) }
            });
        WinogradWeights { tile, u, off, len }
    }

    /// The packed values.
    pub fn values(&self) -> &[f32] {
        &self.u[self.off..self.off + self.len]
    }
}

dispatch_fma!(fn demod_coefficient(w_co: &[f32], s9: &[f32]) -> f32 => demod_coefficient_impl);

/// Scale of one output channel after `W·s` when demodulating: `1 / sqrt(Σ (W·s)² + 1e-8)`,
/// each square rounded to f32 as upstream rounds it and the sum in f64 (eight interleaved
/// partial sums, so it vectorises). `s9` holds the styles once per tap.
#[inline(always)]
fn demod_coefficient_impl<const FMA: bool>(w_co: &[f32], s9: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if FMA {
        // SAFETY: FMA = true is only instantiated where AVX2 and FMA are present.
        let sum = unsafe { weights_x86::square_sum(w_co, s9) };
        return 1.0 / ((sum as f32) + 1e-8f32).sqrt();
    }
    const L: usize = 8;
    let mut part = [0.0f64; L];
    let (w8, s8) = (w_co.chunks_exact(L), s9.chunks_exact(L));
    let (w_tail, s_tail) = (w8.remainder(), s8.remainder());
    for (wv, sv) in w8.zip(s8) {
        for l in 0..L {
            let v = wv[l] * sv[l];
            part[l] += (v * v) as f64;
        }
    }
    for (l, (&w, &s)) in w_tail.iter().zip(s_tail).enumerate() {
        let v = w * s;
        part[l] += (v * v) as f64;
    }
    let sum =
        ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
    1.0 / ((sum as f32) + 1e-8f32).sqrt()
}

dispatch_fma!(unsafe fn weights_block(
    tile: &Tile,
    cin: usize,
    w_blk: &[f32],
    modulation: &Modulation<'_>,
    s9: &[f32],
    out: &SharedBuf<'_>,
    panels: usize,
    ib: usize,
) => weights_block_impl);

/// Input channels whose taps [`weights_block_impl`] transposes at a time (9 KB of stack).
const TRANSPOSE_CHANNELS: usize = 32;

/// One block of up to [`MR`] output channels: `w_blk [rows][cin][3][3]` -> panel `ib` of
/// every position in `out`, the modulated weight `((w · s) · d) · gain` rounded as upstream
/// rounds it, then `U = G·g·Gᵀ` with the MR channels as the vector lanes.
///
/// The taps are first transposed into channel-lane order a few input channels at a time, so
/// that modulation and transform run on whole vectors. (Building each channel's taps lane by
/// lane and reading them back as a vector at once stalled on store forwarding: half the
/// stage's time on one load.)
///
/// # Safety
/// No other task may write panel `ib` of `out`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn weights_block_impl<const FMA: bool>(
    tile: &Tile,
    cin: usize,
    w_blk: &[f32],
    modulation: &Modulation<'_>,
    s9: &[f32],
    out: &SharedBuf<'_>,
    panels: usize,
    ib: usize,
) {
    use crate::simd::madd;
    let a = tile.alpha;
    let rows = (w_blk.len() / (9 * cin.max(1))).min(MR);
    // Per-lane demodulation factors (1 when not demodulating: multiplying by 1 is exact, so
    // every lane takes the same three roundings as upstream's `((w · s) · d) · gain`); lanes
    // past `rows` see zero weights.
    let mut dcoef = [1.0f32; MR];
    if modulation.demodulate {
        for (r, d) in dcoef.iter_mut().enumerate().take(rows) {
            *d = demod_coefficient(&w_blk[r * 9 * cin..(r + 1) * 9 * cin], s9);
        }
    }
    let g: [[f32; 3]; 8] = std::array::from_fn(|i| {
        std::array::from_fn(|k| if i < a { tile.g[i * 3 + k] as f32 } else { 0.0 })
    });
    let gain = modulation.gain;
    #[cfg(target_arch = "x86_64")]
    if FMA && MR == 8 {
        // `weights_block` only instantiates FMA = true where AVX2 and FMA are present.
        // one instantiation per tile size, each inlined here (with the caller's features)
        macro_rules! block_of {
            ($alpha:literal) => {
                weights_x86::block::<$alpha>(
                    cin,
                    w_blk,
                    rows,
                    modulation.styles,
                    &dcoef,
                    gain,
                    &g,
                    out,
                    panels,
                    ib,
                )
            };
        }
        match a {
            6 => block_of!(6),
            4 => block_of!(4),
            _ => block_of!(8),
        }
        return;
    }
    // lanes[j][r]: tap j (of channel c0 + j / 9) of output channel r
    let mut lanes = [[0.0f32; MR]; 9 * TRANSPOSE_CHANNELS];
    for c0 in (0..cin).step_by(TRANSPOSE_CHANNELS) {
        let nc = TRANSPOSE_CHANNELS.min(cin - c0);
        for r in 0..rows {
            let src = &w_blk[(r * cin + c0) * 9..(r * cin + c0 + nc) * 9];
            for (lane, &v) in lanes.iter_mut().zip(src) {
                lane[r] = v;
            }
        }
        for cc in 0..nc {
            let ci = c0 + cc;
            let sc = modulation.styles[ci];
            // taps[k][r]: tap k of output channel r, modulated
            let mut taps = [[0.0f32; MR]; 9];
            for (tk, lk) in taps.iter_mut().zip(&lanes[cc * 9..cc * 9 + 9]) {
                for l in 0..MR {
                    tk[l] = ((lk[l] * sc) * dcoef[l]) * gain;
                }
            }
            // t[i][c] = Σ_k G[i][k] · g[k][c]
            let mut t = [[[0.0f32; MR]; 3]; 8];
            for (ti, gi) in t.iter_mut().zip(&g).take(a) {
                for (c, tic) in ti.iter_mut().enumerate() {
                    for (l, o) in tic.iter_mut().enumerate() {
                        let mut acc = gi[0] * taps[c][l];
                        acc = madd::<FMA>(acc, gi[1], taps[3 + c][l]);
                        *o = madd::<FMA>(acc, gi[2], taps[6 + c][l]);
                    }
                }
            }
            // U[i][j] = Σ_k t[i][k] · G[j][k]
            for (i, ti) in t.iter().enumerate().take(a) {
                for (j, gj) in g.iter().enumerate().take(a) {
                    let off = (((i * a + j) * panels + ib) * cin + ci) * MR;
                    let dst = out.part(off, MR);
                    for (l, o) in dst.iter_mut().enumerate() {
                        let mut acc = gj[0] * ti[0][l];
                        acc = madd::<FMA>(acc, gj[1], ti[1][l]);
                        *o = madd::<FMA>(acc, gj[2], ti[2][l]);
                    }
                }
            }
        }
    }
}

/// The weight transform of one block of output channels in AVX2 vectors (the 8 channels of a
/// panel are the 8 lanes), with the same operations in the same order as the portable form.
#[cfg(target_arch = "x86_64")]
mod weights_x86 {
    use super::{SharedBuf, MR};
    use std::arch::x86_64::*;

    /// Columns of the 8×8 block `r` (row `i` = `r[i]`): `out[j]` lane `i` = `r[i]` lane `j`.
    #[inline(always)]
    unsafe fn transpose8(r: &[__m256; 8]) -> [__m256; 8] {
        let t0 = _mm256_unpacklo_ps(r[0], r[1]);
        let t1 = _mm256_unpackhi_ps(r[0], r[1]);
        let t2 = _mm256_unpacklo_ps(r[2], r[3]);
        let t3 = _mm256_unpackhi_ps(r[2], r[3]);
        let t4 = _mm256_unpacklo_ps(r[4], r[5]);
        let t5 = _mm256_unpackhi_ps(r[4], r[5]);
        let t6 = _mm256_unpacklo_ps(r[6], r[7]);
        let t7 = _mm256_unpackhi_ps(r[6], r[7]);
        // s0: columns 0 (low half) and 4 (high half) of rows 0-3, s1: 1 and 5, ...
        let s0 = _mm256_shuffle_ps::<0x44>(t0, t2);
        let s1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
        let s2 = _mm256_shuffle_ps::<0x44>(t1, t3);
        let s3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
        let s4 = _mm256_shuffle_ps::<0x44>(t4, t6);
        let s5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
        let s6 = _mm256_shuffle_ps::<0x44>(t5, t7);
        let s7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
        [
            _mm256_permute2f128_ps::<0x20>(s0, s4),
            _mm256_permute2f128_ps::<0x20>(s1, s5),
            _mm256_permute2f128_ps::<0x20>(s2, s6),
            _mm256_permute2f128_ps::<0x20>(s3, s7),
            _mm256_permute2f128_ps::<0x31>(s0, s4),
            _mm256_permute2f128_ps::<0x31>(s1, s5),
            _mm256_permute2f128_ps::<0x31>(s2, s6),
            _mm256_permute2f128_ps::<0x31>(s3, s7),
        ]
    }

    /// `Σ ((w·s)²)` with each product and square rounded to f32, summed in f64 (16 partial
    /// sums).
    #[inline(always)]
    pub(super) unsafe fn square_sum(w: &[f32], s: &[f32]) -> f64 {
        let n = w.len().min(s.len());
        let (wp, sp) = (w.as_ptr(), s.as_ptr());
        let mut acc = [_mm256_setzero_pd(); 4];
        let mut i = 0;
        while i + 16 <= n {
            for h in 0..2 {
                let v = _mm256_mul_ps(
                    _mm256_loadu_ps(wp.add(i + 8 * h)),
                    _mm256_loadu_ps(sp.add(i + 8 * h)),
                );
                let sq = _mm256_mul_ps(v, v);
                let lo = _mm256_cvtps_pd(_mm256_castps256_ps128(sq));
                let hi = _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(sq));
                acc[2 * h] = _mm256_add_pd(acc[2 * h], lo);
                acc[2 * h + 1] = _mm256_add_pd(acc[2 * h + 1], hi);
            }
            i += 16;
        }
        let a = _mm256_add_pd(_mm256_add_pd(acc[0], acc[1]), _mm256_add_pd(acc[2], acc[3]));
        let mut lanes = [0.0f64; 4];
        _mm256_storeu_pd(lanes.as_mut_ptr(), a);
        let mut sum = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
        for k in i..n {
            let v = w[k] * s[k];
            sum += (v * v) as f64;
        }
        sum
    }

    /// Input channels per transpose step: 8 channels are 72 taps, nine 8×8 blocks.
    const CH: usize = 8;

    /// [`weights_block_impl`](super::weights_block_impl) for `A = α` (the caller's contract:
    /// AVX2 and FMA enabled, panel `ib` written by this task only).
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn block<const A: usize>(
        cin: usize,
        w_blk: &[f32],
        rows: usize,
        styles: &[f32],
        dcoef: &[f32; MR],
        gain: f32,
        g: &[[f32; 3]; 8],
        out: &SharedBuf<'_>,
        panels: usize,
        ib: usize,
    ) {
        let zeros = [0.0f32; 9 * CH];
        // The last, partial step's rows, zero-padded to whole blocks.
        let mut tail = [[0.0f32; 9 * CH]; MR];
        let d = _mm256_loadu_ps(dcoef.as_ptr());
        let gn = _mm256_set1_ps(gain);
        let gv: [[__m256; 3]; 8] =
            std::array::from_fn(|i| std::array::from_fn(|k| _mm256_set1_ps(g[i][k])));
        // Pairs of input channels fill whole 64-byte lines of every position (the buffer is
        // aligned and `cin` even): written as streaming stores, without first reading the
        // lines (the layer's U is tens of MB, written once per sample).
        let stream = cin > 0
            && cin.is_multiple_of(2)
            && (out.part(0, MR).as_ptr() as usize).is_multiple_of(64);
        let mut pending = [_mm256_setzero_ps(); 64];
        let mut c0 = 0;
        while c0 < cin {
            let nc = CH.min(cin - c0);
            // Row r's taps of channels c0.. (a zero row past `rows`).
            let mut src = [zeros.as_ptr(); MR];
            for (r, sp) in src.iter_mut().enumerate().take(rows) {
                let row = &w_blk[(r * cin + c0) * 9..(r * cin + c0 + nc) * 9];
                if nc == CH {
                    *sp = row.as_ptr();
                } else {
                    tail[r][..row.len()].copy_from_slice(row);
                    tail[r][row.len()..].fill(0.0);
                    *sp = tail[r].as_ptr();
                }
            }
            // lanes[j]: tap j of the step (channel c0 + j / 9, tap j % 9), output channels as
            // lanes
            let mut lanes = [_mm256_setzero_ps(); 9 * CH];
            for q in 0..9 {
                let blk: [__m256; 8] = [
                    _mm256_loadu_ps(src[0].add(q * 8)),
                    _mm256_loadu_ps(src[1].add(q * 8)),
                    _mm256_loadu_ps(src[2].add(q * 8)),
                    _mm256_loadu_ps(src[3].add(q * 8)),
                    _mm256_loadu_ps(src[4].add(q * 8)),
                    _mm256_loadu_ps(src[5].add(q * 8)),
                    _mm256_loadu_ps(src[6].add(q * 8)),
                    _mm256_loadu_ps(src[7].add(q * 8)),
                ];
                let cols = transpose8(&blk);
                lanes[q * 8..q * 8 + 8].copy_from_slice(&cols);
            }
            for cc in 0..nc {
                let ci = c0 + cc;
                let sc = _mm256_set1_ps(styles[ci]);
                let mut taps = [_mm256_setzero_ps(); 9];
                for (t, &l) in taps.iter_mut().zip(&lanes[cc * 9..cc * 9 + 9]) {
                    *t = _mm256_mul_ps(_mm256_mul_ps(_mm256_mul_ps(l, sc), d), gn);
                }
                // t[i][c] = Σ_k G[i][k] · g[k][c]
                let mut t = [[_mm256_setzero_ps(); 3]; A];
                for (ti, gi) in t.iter_mut().zip(&gv) {
                    for (c, tic) in ti.iter_mut().enumerate() {
                        let acc = _mm256_mul_ps(gi[0], taps[c]);
                        let acc = _mm256_fmadd_ps(gi[1], taps[3 + c], acc);
                        *tic = _mm256_fmadd_ps(gi[2], taps[6 + c], acc);
                    }
                }
                // U[i][j] = Σ_k t[i][k] · G[j][k]
                for (i, ti) in t.iter().enumerate() {
                    for (j, gj) in gv.iter().enumerate().take(A) {
                        let acc = _mm256_mul_ps(gj[0], ti[0]);
                        let acc = _mm256_fmadd_ps(gj[1], ti[1], acc);
                        let u = _mm256_fmadd_ps(gj[2], ti[2], acc);
                        if stream {
                            if ci % 2 == 0 {
                                pending[i * A + j] = u;
                            } else {
                                let off = (((i * A + j) * panels + ib) * cin + ci - 1) * MR;
                                let dst = out.part(off, 2 * MR).as_mut_ptr();
                                _mm256_stream_ps(dst, pending[i * A + j]);
                                _mm256_stream_ps(dst.add(MR), u);
                            }
                            continue;
                        }
                        let off = (((i * A + j) * panels + ib) * cin + ci) * MR;
                        _mm256_storeu_ps(out.part(off, MR).as_mut_ptr(), u);
                    }
                }
            }
            c0 += nc;
        }
        if stream {
            // complete the streaming stores before the products (on any thread) read them
            crate::simd::store_fence();
        }
    }
}

/// Reusable buffers.
#[derive(Default)]
pub(crate) struct WinogradScratch {
    v: Vec<f32>,
    m: Vec<f32>,
}

/// The transformed input tiles of one chunk as the B operands of [`gemm_packed`], one per
/// transform position: `[α²][panels][cin][NR]`. Filled by tasks that each own a set of input
/// channels, so it is shared through a pointer.
struct PackedTiles<'a> {
    buf: SharedBuf<'a>,
    cin: usize,
    tiles: usize,
    panels: usize,
}

/// Scales every value of `v` by `k` (nothing when `k` is 1).
#[inline(always)]
fn scale_in_place(v: &mut [f32], k: f32) {
    if k != 1.0 {
        for x in v {
            *x *= k;
        }
    }
}

impl<'a> PackedTiles<'a> {
    fn new(buf: &'a mut [f32], cin: usize, tiles: usize, a2: usize) -> PackedTiles<'a> {
        let panels = tiles.div_ceil(NR);
        assert!(buf.len() >= a2 * packed_gemm::b_len(cin, tiles));
        PackedTiles {
            buf: SharedBuf::new(buf),
            cin,
            tiles,
            panels,
        }
    }

    /// Values of tiles `t0 .. t0 + vals.len()` of channel `ci` at transform position `xi`.
    ///
    /// # Safety
    /// Only the task that owns channel `ci` may call this (or `zero_padding`) for it.
    unsafe fn write(&self, xi: usize, ci: usize, t0: usize, vals: &[f32], scale: f32) {
        let mut done = 0;
        while done < vals.len() {
            let t = t0 + done;
            let (panel, col) = (t / NR, t % NR);
            let n = (NR - col).min(vals.len() - done);
            let off = ((xi * self.panels + panel) * self.cin + ci) * NR + col;
            assert!(t + n <= self.tiles);
            let dst = self.buf.part(off, n);
            dst.copy_from_slice(&vals[done..done + n]);
            scale_in_place(dst, scale);
            done += n;
        }
    }

    /// Every tile of channel `ci` at position `xi`, from `row` (tile row `ty` at
    /// `row[ty · stride ..][.. tiles_x]`), a whole panel row (48 values, zeros past the last
    /// tile) at a time. With AVX-512 the panel rows bypass the cache (streaming stores):
    /// the packed tiles of a chunk are tens of MB, and plain stores first read every line
    /// they write from memory.
    ///
    /// # Safety
    /// As for [`PackedTiles::write`]. (Streaming needs the buffer on a 64-byte boundary; else the
    /// panel rows are plain copies.)
    #[allow(clippy::too_many_arguments)]
    unsafe fn write_rows(
        &self,
        xi: usize,
        ci: usize,
        row: &[f32],
        stride: usize,
        tiles_x: usize,
        scale: f32,
    ) {
        let mut panel_vals = [0.0f32; NR];
        for panel in 0..self.panels {
            let (t0, t1) = (panel * NR, ((panel + 1) * NR).min(self.tiles));
            let mut t = t0;
            while t < t1 {
                let (ty, tx) = (t / tiles_x, t % tiles_x);
                let run = (t1 - t).min(tiles_x - tx);
                let src = &row[ty * stride + tx..ty * stride + tx + run];
                panel_vals[t - t0..t - t0 + run].copy_from_slice(src);
                t += run;
            }
            panel_vals[t1 - t0..].fill(0.0);
            scale_in_place(&mut panel_vals, scale);
            let off = ((xi * self.panels + panel) * self.cin + ci) * NR;
            stream_panel(self.buf.part(off, NR), &panel_vals);
        }
    }

    /// Zeros the columns past the last tile in the last panel of channel `ci`, position `xi`.
    ///
    /// # Safety
    /// As for [`PackedTiles::write`].
    unsafe fn zero_padding(&self, xi: usize, ci: usize) {
        let col = self.tiles % NR;
        if col == 0 {
            return;
        }
        let off = ((xi * self.panels + self.panels - 1) * self.cin + ci) * NR + col;
        self.buf.part(off, NR - col).fill(0.0);
    }
}

/// A buffer filled by several tasks at once, each writing positions no other task writes.
pub(crate) struct SharedBuf<'a> {
    ptr: *mut f32,
    len: usize,
    _borrow: std::marker::PhantomData<&'a mut [f32]>,
}

// SAFETY: the only access is `SharedBuf::part`, whose callers guarantee disjoint ranges.
unsafe impl Send for SharedBuf<'_> {}
unsafe impl Sync for SharedBuf<'_> {}

impl<'a> SharedBuf<'a> {
    pub fn new(buf: &'a mut [f32]) -> SharedBuf<'a> {
        SharedBuf {
            ptr: buf.as_mut_ptr(),
            len: buf.len(),
            _borrow: std::marker::PhantomData,
        }
    }

    /// Values `off .. off + n` (bounds-checked).
    ///
    /// # Safety
    /// No other live reference from this buffer may overlap the range.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn part(&self, off: usize, n: usize) -> &mut [f32] {
        assert!(off.checked_add(n).is_some_and(|end| end <= self.len));
        std::slice::from_raw_parts_mut(self.ptr.add(off), n)
    }
}

/// Conv rows `[r0, r1)` of `x [cin, h, w]` (3×3, padding 2) into `dst` (channel `c`, row `r` at
/// `dst[c · dst_channel_stride + (r − r0) · ow ..]`), at most `budget` f32 of scratch per chunk.
#[allow(clippy::too_many_arguments)]
pub(crate) fn winograd_rows(
    weights: &WinogradWeights,
    (cin, cout, h, w): (usize, usize, usize, usize),
    x: &[f32],
    r0: usize,
    r1: usize,
    dst: &mut [f32],
    dst_channel_stride: usize,
    budget: usize,
    scales: Option<ChannelScales<'_>>,
    scratch: &mut WinogradScratch,
) {
    let tile = weights.tile;
    let in_scale = |ci: usize| scales.map_or(1.0, |s| s.input[ci]);
    let out_scale = |co: usize| scales.map_or(1.0, |s| s.output[co]);
    let (m, a) = (tile.m, tile.alpha);
    let a2 = a * a;
    let ow = w + 2;
    let tiles_x = ow.div_ceil(m);
    let tile_rows_total = (r1 - r0).div_ceil(m);
    let per_tile_row = a2 * (cin + cout) * tiles_x;
    let chunk = (budget / per_tile_row.max(1)).max(1);
    let kernel = packed_gemm::Kernel::best();
    let mut tr = 0;
    while tr < tile_rows_total {
        let tre = (tr + chunk).min(tile_rows_total);
        let n_rows = tre - tr;
        let tiles = n_rows * tiles_x;
        let row_lo = r0 + m * tr;
        let ld = packed_gemm::c_stride(tiles);
        let v_len = a2 * packed_gemm::b_len(cin, tiles);
        // 64-byte aligned, so every packed panel row (48 values) is three whole cache lines.
        scratch.v.resize(v_len + 16, 0.0);
        let v_off = scratch.v.as_ptr().align_offset(64).min(16);
        // 64-byte aligned like V: single-pass products stream whole lines of it
        scratch.m.resize(a2 * cout * ld + 16, 0.0);
        let m_off = scratch.m.as_ptr().align_offset(64).min(16);
        let section = stage_time::section(Stage::InputTransform);
        let packed = PackedTiles::new(&mut scratch.v[v_off..v_off + v_len], cin, tiles, a2);
        x.par_chunks(h * w)
            .take(cin)
            .enumerate()
            .for_each(|(ci, plane)| {
                // SAFETY: this task is the only one handling channel `ci`.
                with_row_buffer(|buf| unsafe {
                    input_channel(
                        tile,
                        plane,
                        h,
                        w,
                        row_lo,
                        n_rows,
                        tiles_x,
                        &packed,
                        ci,
                        in_scale(ci),
                        buf,
                    )
                });
                // the streaming stores are weakly ordered: complete them before the GEMM
                // (on another thread) reads the tiles
                store_fence();
            });
        drop(section);
        let section = stage_time::section(Stage::Gemm);
        // M: [α²][cout][ld], one GEMM per transform position.
        let v = &scratch.v[v_off..v_off + v_len];
        let u = weights.values();
        let v_stride = packed_gemm::b_len(cin, tiles);
        let u_stride = cout.div_ceil(MR) * cin * MR;
        scratch.m[m_off..m_off + a2 * cout * ld]
            .par_chunks_mut(cout * ld)
            .enumerate()
            .for_each(|(xi, mm)| {
                packed_gemm::gemm_packed(
                    kernel,
                    cout,
                    tiles,
                    cin,
                    &u[xi * u_stride..(xi + 1) * u_stride],
                    cin * MR,
                    &v[xi * v_stride..(xi + 1) * v_stride],
                    mm,
                    ld,
                );
            });
        drop(section);
        let _section = stage_time::section(Stage::OutputTransform);
        // Output transform, straight into the caller's rows.
        let mm = &scratch.m[m_off..m_off + a2 * cout * ld];
        let rows_here = (r1 - row_lo).min(m * n_rows);
        let out_off = (row_lo - r0) * ow;
        dst.par_chunks_mut(dst_channel_stride)
            .take(cout)
            .enumerate()
            .for_each(|(co, plane)| {
                let rows = &mut plane[out_off..out_off + rows_here * ow];
                with_row_buffer(|buf| {
                    output_channel(tile, mm, co, cout, tiles, ld, tiles_x, ow, rows, buf)
                });
                scale_in_place(rows, out_scale(co));
            });
        tr = tre;
    }
}

thread_local! {
    /// Each worker thread's buffer for the row passes of the transforms, kept between
    /// chunks and layers (one per rayon job would be a fresh allocation every time).
    static ROW_BUFFER_LOCAL: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The transform buffers of every worker, grown alike before each forward.
pub(crate) static ROW_BUFFER: WorkerScratch<Vec<f32>> = WorkerScratch::new(&ROW_BUFFER_LOCAL);

/// Runs `f` with this thread's transform buffer; `f` must not start parallel work.
fn with_row_buffer<T>(f: impl FnOnce(&mut Vec<f32>) -> T) -> T {
    ROW_BUFFER.with(f)
}

/// Nonzero entries of one matrix row as (column, value), and how many there are.
type RowTerms = ([(usize, f32); 8], usize);

/// [`row_terms`] of the first (at most 8) rows, computed once per call instead of per tile row.
fn all_row_terms(mat: &[f32], cols: usize, rows: usize) -> [RowTerms; 8] {
    std::array::from_fn(|r| {
        if r < rows {
            row_terms(mat, cols, r)
        } else {
            ([(0, 0.0); 8], 0)
        }
    })
}

/// Nonzero entries of row `r` of a row-major matrix with `cols` columns, as (column, value).
fn row_terms(mat: &[f32], cols: usize, r: usize) -> RowTerms {
    let mut out = [(0usize, 0.0f32); 8];
    let mut n = 0;
    for (c, &v) in mat[r * cols..(r + 1) * cols].iter().enumerate() {
        if v != 0.0 && n < out.len() {
            out[n] = (c, v);
            n += 1;
        }
    }
    (out, n)
}

dispatch_fma!(unsafe fn input_channel(
    tile: &Tile,
    plane: &[f32],
    h: usize,
    w: usize,
    row_lo: usize,
    n_rows: usize,
    tiles_x: usize,
    dst: &PackedTiles,
    ci: usize,
    scale: f32,
    buf: &mut Vec<f32>,
) => input_channel_impl);

/// `V = Bᵀ·d·B` for input channel `ci` and every tile of `n_rows` tile rows starting at output
/// row `row_lo`, into its place in `dst`. The vertical pass runs per tile row; the horizontal
/// one over all tile rows at once (long vectors), with the same operations per value.
///
/// # Safety
/// The caller must be the only task writing channel `ci` of `dst`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn input_channel_impl<const FMA: bool>(
    tile: &Tile,
    plane: &[f32],
    h: usize,
    w: usize,
    row_lo: usize,
    n_rows: usize,
    tiles_x: usize,
    dst: &PackedTiles,
    ci: usize,
    scale: f32,
    buf: &mut Vec<f32>,
) {
    let (m, a) = (tile.m, tile.alpha);
    // Padded rows: input columns −2 .. m·(tiles_x + 1) − 2, so every window and phase fits.
    let pw = m * (tiles_x + 1);
    let ph = tiles_x + 1;
    // Phases of every vertically transformed row: `phases[(r·m + p)·n_rows·ph + ty·ph + q]` is
    // column `m·q + p` of row r of tile row ty.
    let plen = n_rows * ph;
    let run = (n_rows - 1) * ph + tiles_x;
    buf.resize(2 * a * pw + a * m * plen + a * run, 0.0);
    let (drows, rest) = buf.split_at_mut(a * pw);
    let (trows, rest) = rest.split_at_mut(a * pw);
    let (phases, hsum) = rest.split_at_mut(a * m * plen);
    let mut taps = [0.0f32; 8];
    let bt_terms = all_row_terms(tile.bt, a, a);
    let f4 = std::ptr::eq(tile, &F4);
    for ty in 0..n_rows {
        let top = (row_lo + m * ty) as isize - 2;
        if f4 && top >= 0 && top as usize + a <= h {
            // Every row inside the image: the vertical pass reads the plane in place and
            // writes columns 2 .. 2 + w of each row, the margins zeroed, without copying the
            // rows into padded ones first (the same values: the margins transform to zero).
            let n = w.min(pw - 2);
            let mut it = trows.chunks_exact_mut(pw);
            let outs: [&mut [f32]; 6] = std::array::from_fn(|_| {
                let row = it.next().unwrap_or_default();
                row[..2].fill(0.0);
                row[2 + n..].fill(0.0);
                &mut row[2..2 + n]
            });
            let offs = std::array::from_fn(|i| (top as usize + i) * w);
            winograd_f4_input(outs, plane, offs);
            for (r, t) in trows.chunks_exact(pw).enumerate() {
                let dst = &mut phases[r * m * plen + ty * ph..];
                deinterleave(dst, &t[..m * ph], m, plen);
            }
            continue;
        }
        // the α padded input rows of this tile row: input row = out row + i − 2
        for (i, dr) in drows.chunks_exact_mut(pw).enumerate() {
            let sy = (row_lo + m * ty + i) as isize - 2;
            dr.fill(0.0);
            if sy >= 0 && (sy as usize) < h {
                let src = &plane[sy as usize * w..(sy as usize + 1) * w];
                let n = w.min(pw - 2);
                dr[2..2 + n].copy_from_slice(&src[..n]);
            }
        }
        // vertical: t_r = Σ_i Bᵀ[r][i] · d_i
        let drows_ref: &[f32] = drows;
        if f4 {
            let mut it = trows.chunks_exact_mut(pw);
            let outs: [&mut [f32]; 6] = std::array::from_fn(|_| it.next().unwrap_or_default());
            winograd_f4_input(outs, drows_ref, std::array::from_fn(|i| i * pw));
        } else {
            for (r, t) in trows.chunks_exact_mut(pw).enumerate() {
                let mut srcs: [&[f32]; 8] = [&[]; 8];
                let (terms, n) = bt_terms[r];
                for (k, &(i, val)) in terms[..n].iter().enumerate() {
                    srcs[k] = &drows_ref[i * pw..(i + 1) * pw];
                    taps[k] = val;
                }
                weighted_sum::<FMA, false>(t, &srcs[..n], &taps[..n]);
            }
        }
        // split each row into its m phases (column m·q + p -> phase p, position q)
        for (r, t) in trows.chunks_exact(pw).enumerate() {
            let dst = &mut phases[r * m * plen + ty * ph..];
            deinterleave(dst, &t[..m * ph], m, plen);
        }
    }
    // horizontal: column m·tx + j of row r is phase (j mod m) at tx + j div m; one long pass
    // over every tile row (rows `ph` apart), then the `tiles_x` values of each row into V
    let phases_ref: &[f32] = phases;
    for r in 0..a {
        let row0 = r * m * plen;
        if f4 {
            let mut it = hsum.chunks_exact_mut(run);
            let outs: [&mut [f32]; 6] = std::array::from_fn(|_| it.next().unwrap_or_default());
            let offs = std::array::from_fn(|j| row0 + (j % m) * plen + j / m);
            winograd_f4_input(outs, phases_ref, offs);
            for (c, row) in hsum.chunks_exact(run).enumerate().take(a) {
                dst.write_rows(r * a + c, ci, row, ph, tiles_x, scale);
            }
            continue;
        }
        let row_phases = &phases_ref[row0..row0 + m * plen];
        for (c, &(terms, n)) in bt_terms.iter().enumerate().take(a) {
            let mut srcs: [&[f32]; 8] = [&[]; 8];
            for (k, &(j, val)) in terms[..n].iter().enumerate() {
                let start = (j % m) * plen + j / m;
                srcs[k] = &row_phases[start..start + run];
                taps[k] = val;
            }
            let hsum = &mut hsum[..run];
            weighted_sum::<FMA, false>(hsum, &srcs[..n], &taps[..n]);
            let xi = r * a + c;
            for ty in 0..n_rows {
                dst.write(
                    xi,
                    ci,
                    ty * tiles_x,
                    &hsum[ty * ph..ty * ph + tiles_x],
                    scale,
                );
            }
            dst.zero_padding(xi, ci);
        }
    }
}

dispatch_fma!(fn output_channel(
    tile: &Tile,
    mm: &[f32],
    co: usize,
    cout: usize,
    tiles: usize,
    ld: usize,
    tiles_x: usize,
    ow: usize,
    rows: &mut [f32],
    buf: &mut Vec<f32>,
) => output_channel_impl);

/// `Y = Aᵀ·M·A` for output channel `co` of `mm [α²][cout][ld]` into `rows` (`ow` wide; the
/// rows and columns of the last tiles beyond the output are dropped). Both passes run over all
/// `tiles` of the chunk at once (long vectors, instead of one tile row of `tiles_x` at a time),
/// with the same operations per value.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn output_channel_impl<const FMA: bool>(
    tile: &Tile,
    mm: &[f32],
    co: usize,
    cout: usize,
    tiles: usize,
    ld: usize,
    tiles_x: usize,
    ow: usize,
    rows: &mut [f32],
    buf: &mut Vec<f32>,
) {
    let (m, a) = (tile.m, tile.alpha);
    if std::ptr::eq(tile, &F4) && tiles > 0 {
        // S[sub][j] = Aᵀ·M[·][j] for every column j of the tiles at once, then per output row
        // Y = Aᵀ·S[sub] (both with the common subexpressions of `winograd_f4_output`).
        buf.resize((m * a + m) * tiles, 0.0);
        let (s, y) = buf.split_at_mut(m * a * tiles);
        for j in 0..a {
            let mut it = s.chunks_exact_mut(a * tiles);
            let outs: [&mut [f32]; 4] = std::array::from_fn(|_| {
                let plane = it.next().unwrap_or_default();
                &mut plane[j * tiles..(j + 1) * tiles]
            });
            let offs = std::array::from_fn(|xi| ((xi * a + j) * cout + co) * ld);
            winograd_f4_output(outs, mm, offs);
        }
        let s_ref: &[f32] = s;
        for sub in 0..m {
            let mut it = y.chunks_exact_mut(tiles);
            let outs: [&mut [f32]; 4] = std::array::from_fn(|_| it.next().unwrap_or_default());
            winograd_f4_output(outs, s_ref, std::array::from_fn(|j| (sub * a + j) * tiles));
            for (ty, out_row) in rows.chunks_exact_mut(ow).skip(sub).step_by(m).enumerate() {
                interleave(out_row, &y[ty * tiles_x..], m, tiles);
            }
        }
        return;
    }
    buf.resize((a + m) * tiles, 0.0);
    let (s, y) = buf.split_at_mut(a * tiles);
    let mut taps = [0.0f32; 8];
    let at_terms = all_row_terms(tile.at, a, m);
    for sub in 0..m {
        let (terms, n) = at_terms[sub];
        // S[j] = Σ_ξ Aᵀ[sub][ξ] · M[ξ][j] (vertical), over every tile
        for (j, sj) in s.chunks_exact_mut(tiles.max(1)).enumerate() {
            let mut srcs: [&[f32]; 8] = [&[]; 8];
            for (k, &(xi, val)) in terms[..n].iter().enumerate() {
                let base = ((xi * a + j) * cout + co) * ld;
                srcs[k] = &mm[base..base + tiles];
                taps[k] = val;
            }
            weighted_sum::<FMA, false>(sj, &srcs[..n], &taps[..n]);
        }
        // Y[ox] = Σ_j Aᵀ[ox][j] · S[j] (horizontal)
        let s_ref: &[f32] = s;
        for (ox, yo) in y.chunks_exact_mut(tiles.max(1)).enumerate() {
            let mut srcs: [&[f32]; 8] = [&[]; 8];
            let (terms, n) = at_terms[ox];
            for (k, &(j, val)) in terms[..n].iter().enumerate() {
                srcs[k] = &s_ref[j * tiles..(j + 1) * tiles];
                taps[k] = val;
            }
            weighted_sum::<FMA, false>(yo, &srcs[..n], &taps[..n]);
        }
        // output row ty·m + sub gets column m·tx + ox = Y[ox][ty·tiles_x + tx]
        for (ty, out_row) in rows.chunks_exact_mut(ow).skip(sub).step_by(m).enumerate() {
            interleave(out_row, &y[ty * tiles_x..], m, tiles);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn portable_weight_transform_matches_dispatched() {
        // The portable instantiation (non-x86 CPUs, x86 without FMA) against the one this
        // CPU dispatches to, which the convolution tests check against the definition: 11
        // output channels (a partial panel), 13 input channels (a partial transpose step;
        // odd, so plain stores) and 18 (even: pairs of channels as streamed whole lines).
        for (cout, cin) in [(11usize, 13usize), (11, 18)] {
            portable_matches_dispatched(cout, cin);
        }
    }

    fn portable_matches_dispatched(cout: usize, cin: usize) {
        let wt: Vec<f32> = (0..cout * cin * 9)
            .map(|i| ((i * 13 % 17) as f32) * 0.05 - 0.4)
            .collect();
        let styles: Vec<f32> = (0..cin).map(|i| 0.3 + 0.4 * (i % 5) as f32).collect();
        for (demodulate, gain) in [(true, 0.7f32), (false, 0.5)] {
            let modulation = Modulation {
                styles: &styles,
                demodulate,
                gain,
            };
            let dispatched = WinogradWeights::new_in(&F4, cout, cin, &wt, &modulation, Vec::new());
            let s9: Vec<f32> = styles.iter().flat_map(|&s| [s; 9]).collect();
            let panels = cout.div_ceil(MR);
            let mut u = vec![f32::NAN; dispatched.values().len()];
            let out = SharedBuf::new(&mut u);
            for (ib, w_blk) in wt.chunks(MR * 9 * cin).enumerate() {
                // SAFETY: one block at a time.
                unsafe {
                    weights_block_impl::<false>(&F4, cin, w_blk, &modulation, &s9, &out, panels, ib)
                };
            }
            for (i, (a, b)) in u.iter().zip(dispatched.values()).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-5 * b.abs().max(1.0),
                    "demodulate={demodulate} value {i}: {a} vs {b}"
                );
            }
        }
    }
}
