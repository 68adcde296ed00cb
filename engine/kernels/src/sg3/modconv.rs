//! Modulated convolution of the SG3 synthesis layers: per-sample weight modulation and
//! demodulation, then a plain convolution evaluated as GEMM over row bands.
//!
//! The convolution has zero padding `k − 1` on every side (a 3×3 conv grows the map by 2 px).
//! For k > 1 the needed input rows are unfolded (im2col, `K = Cin·k²`) a few rows at a time so
//! the unfolded buffer stays small; for k = 1 the input rows are the GEMM operand directly.

use rayon::prelude::*;

use crate::gemm::{sgemm, MatMut, MatRef, Threads};
use crate::simd::dispatch_fma;

/// Upper bound on the im2col buffer (f32 values) per GEMM call.
const IM2COL_BUDGET: usize = 1 << 21;

/// `w · rsqrt(mean(w²))` per output channel (the "pre-normalisation" upstream applies to the
/// weights of demodulated layers on every call; it only depends on the weights, so it is done
/// once at load time with the same f32 arithmetic).
pub(crate) fn prenormalize_weight(weight: &mut [f32], fan_in: usize) {
    if fan_in == 0 {
        return;
    }
    for row in weight.chunks_exact_mut(fan_in) {
        let sum: f64 = row.iter().map(|&v| (v * v) as f64).sum();
        let mean = (sum as f32) / fan_in as f32;
        let r = 1.0 / mean.sqrt();
        for v in row {
            *v *= r;
        }
    }
}

/// Per-sample modulated weights `[Cout, Cin·k²]` for one style vector `[Cin]`.
///
/// Upstream `modulated_conv2d`: with demodulation, `s ← s · rsqrt(mean(s²))` (the mean over the
/// whole batch upstream; we normalise each sample on its own so a batch gives the same images
/// as generating each seed alone, which is what the official tools do: they run batch 1), then
/// `W ← W·s`, `W ← W · rsqrt(Σ W² + 1e-8)` per output channel; finally `W ← W · input_gain`.
pub(crate) fn modulate(
    weight: &[f32],
    styles: &[f32],
    out_channels: usize,
    kk: usize,
    demodulate: bool,
    input_gain: f32,
    out: &mut [f32],
) {
    let in_channels = styles.len();
    let fan_in = in_channels * kk;
    let mut s = styles.to_vec();
    if demodulate && !s.is_empty() {
        let sum: f64 = s.iter().map(|&v| (v * v) as f64).sum();
        let mean = (sum as f32) / s.len() as f32;
        let r = 1.0 / mean.sqrt();
        for v in &mut s {
            *v *= r;
        }
    }
    for (dst, src) in out
        .chunks_exact_mut(fan_in)
        .zip(weight.chunks_exact(fan_in))
        .take(out_channels)
    {
        for ((d, sv), sc) in dst.chunks_exact_mut(kk).zip(src.chunks_exact(kk)).zip(&s) {
            for (dv, &wv) in d.iter_mut().zip(sv) {
                *dv = wv * sc;
            }
        }
        if demodulate {
            let sum: f64 = dst.iter().map(|&v| (v * v) as f64).sum();
            let dcoef = 1.0 / ((sum as f32) + 1e-8f32).sqrt();
            for v in dst.iter_mut() {
                *v *= dcoef;
            }
        }
        if input_gain != 1.0 {
            for v in dst.iter_mut() {
                *v *= input_gain;
            }
        }
    }
}

/// Geometry of one convolution: input `[cin, h, w]`, kernel `k`, output `[cout, h+k−1, w+k−1]`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConvShape {
    pub cin: usize,
    pub cout: usize,
    pub h: usize,
    pub w: usize,
    pub k: usize,
}

impl ConvShape {
    pub fn out_h(&self) -> usize {
        self.h + self.k - 1
    }
    pub fn out_w(&self) -> usize {
        self.w + self.k - 1
    }
}

/// Reusable buffer for [`conv_rows`].
#[derive(Default)]
pub(crate) struct ConvScratch {
    col: Vec<f32>,
    /// Winograd: transformed input `[16][Cin][tiles]` and products `[16][Cout][tiles]`.
    v: Vec<f32>,
    m: Vec<f32>,
}

/// Per-sample convolution weights in the form the chosen algorithm consumes.
pub(crate) enum PreparedConv {
    /// `[cout, cin·k²]` (1×1 GEMM or im2col + GEMM).
    Direct(Vec<f32>),
    /// 3×3 Winograd F(2×2, 3×3): `U = G·g·Gᵀ` as `[16][cout][cin]`.
    Winograd(Vec<f32>),
}

impl PreparedConv {
    /// Chooses the algorithm for `shape` and transforms the modulated weights `[cout, cin·k²]`.
    pub fn new(shape: ConvShape, wmod: Vec<f32>) -> PreparedConv {
        if shape.k == 3 && !force_im2col() {
            PreparedConv::Winograd(winograd_weights(shape, &wmod))
        } else {
            PreparedConv::Direct(wmod)
        }
    }
}

/// Test hook: `STYLEGRAPH_CONV_IM2COL=1` forces the im2col path (for comparing algorithms).
fn force_im2col() -> bool {
    use std::sync::OnceLock;
    static FORCE: OnceLock<bool> = OnceLock::new();
    *FORCE.get_or_init(|| std::env::var_os("STYLEGRAPH_CONV_IM2COL").is_some_and(|v| v == "1"))
}

/// Computes output rows `[r0, r1)` of the convolution of `x [cin, h, w]` with the prepared
/// weights into `dst`: channel `c`, row `r` lands at `dst[c * dst_channel_stride +
/// (r − r0) * out_w ..][..out_w]`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv_rows(
    shape: ConvShape,
    x: &[f32],
    weights: &PreparedConv,
    r0: usize,
    r1: usize,
    dst: &mut [f32],
    dst_channel_stride: usize,
    scratch: &mut ConvScratch,
) {
    let ConvShape { cin, cout, h, w, k } = shape;
    let ow = shape.out_w();
    if r1 <= r0 {
        return;
    }
    let wmod = match weights {
        PreparedConv::Direct(wm) => wm.as_slice(),
        PreparedConv::Winograd(u) => {
            winograd_rows(shape, x, u, r0, r1, dst, dst_channel_stride, scratch);
            return;
        }
    };
    let kdim = cin * k * k;
    let lhs = MatRef {
        data: wmod,
        rows: cout,
        cols: kdim,
        row_stride: kdim,
    };
    if k == 1 {
        let rows = r1 - r0;
        sgemm(
            MatMut {
                data: dst,
                rows: cout,
                cols: rows * ow,
                row_stride: dst_channel_stride,
            },
            lhs,
            MatRef {
                data: &x[r0 * w..],
                rows: cin,
                cols: rows * w,
                row_stride: h * w,
            },
            false,
            Threads::Pool,
        );
        return;
    }
    let chunk = (IM2COL_BUDGET / (kdim * ow).max(1)).max(1);
    let mut r = r0;
    while r < r1 {
        let re = (r + chunk).min(r1);
        let n = (re - r) * ow;
        scratch.col.resize(kdim * n, 0.0);
        im2col(shape, x, r, re, &mut scratch.col[..kdim * n]);
        let off = (r - r0) * ow;
        sgemm(
            MatMut {
                data: &mut dst[off..],
                rows: cout,
                cols: n,
                row_stride: dst_channel_stride,
            },
            lhs,
            MatRef {
                data: &scratch.col[..kdim * n],
                rows: kdim,
                cols: n,
                row_stride: n,
            },
            false,
            Threads::Pool,
        );
        r = re;
    }
}

/// Unfolds output rows `[r0, r1)`: `col[(ci·k + ky)·k + kx][(y − r0)·ow + x] =
/// x[ci][y + ky − (k−1)][x + kx − (k−1)]` (zero outside the input).
fn im2col(shape: ConvShape, x: &[f32], r0: usize, r1: usize, col: &mut [f32]) {
    let ConvShape { h, w, k, .. } = shape;
    let ow = shape.out_w();
    let p = (k - 1) as isize;
    let n = (r1 - r0) * ow;
    col.par_chunks_mut(n * k * k)
        .zip(x.par_chunks(h * w))
        .for_each(|(cols_ci, plane)| {
            for ky in 0..k {
                for kx in 0..k {
                    let dst = &mut cols_ci[(ky * k + kx) * n..(ky * k + kx + 1) * n];
                    // x range whose source column x + kx - p lies in [0, w)
                    let x_lo = (p - kx as isize).max(0) as usize;
                    let x_hi = ((w as isize + p - kx as isize).min(ow as isize)).max(0) as usize;
                    for (yi, drow) in dst.chunks_exact_mut(ow).enumerate() {
                        let sy = (r0 + yi) as isize + ky as isize - p;
                        if sy < 0 || sy >= h as isize || x_lo >= x_hi {
                            drow.fill(0.0);
                            continue;
                        }
                        let src = &plane[sy as usize * w..(sy as usize + 1) * w];
                        drow[..x_lo].fill(0.0);
                        let sx = (x_lo as isize + kx as isize - p) as usize;
                        drow[x_lo..x_hi].copy_from_slice(&src[sx..sx + (x_hi - x_lo)]);
                        drow[x_hi..].fill(0.0);
                    }
                }
            }
        });
}

/// `U = G·g·Gᵀ` for every (co, ci), laid out `[16][cout][cin]`, with
/// `G = [[1, 0, 0], [½, ½, ½], [½, −½, ½], [0, 0, 1]]`.
fn winograd_weights(shape: ConvShape, wmod: &[f32]) -> Vec<f32> {
    let (cin, cout) = (shape.cin, shape.cout);
    let mut u = vec![0.0f32; 16 * cout * cin];
    let plane = cout * cin;
    for (idx, g) in wmod.chunks_exact(9).enumerate().take(plane) {
        // rows: t = G·g (4×3)
        let mut t = [[0.0f32; 3]; 4];
        for c in 0..3 {
            let (g0, g1, g2) = (g[c], g[3 + c], g[6 + c]);
            t[0][c] = g0;
            t[1][c] = (g0 + g1 + g2) * 0.5;
            t[2][c] = (g0 - g1 + g2) * 0.5;
            t[3][c] = g2;
        }
        for (r, tr) in t.iter().enumerate() {
            let (a, b, c) = (tr[0], tr[1], tr[2]);
            let row = [a, (a + b + c) * 0.5, (a - b + c) * 0.5, c];
            for (col, &v) in row.iter().enumerate() {
                u[(r * 4 + col) * plane + idx] = v;
            }
        }
    }
    u
}

/// Winograd F(2×2, 3×3) for conv rows `[r0, r1)` (see [`conv_rows`]). Output tile `(ty, tx)`
/// covers rows `r0 + 2ty ..+2`, columns `2tx ..+2` and reads the 4×4 window of the zero-padded
/// input (padding 2) at the same origin: `Y = Aᵀ[U ⊙ (Bᵀ·d·B)]A`, the channel sum of the
/// products being 16 GEMMs `[cout × cin]·[cin × tiles]`.
#[allow(clippy::too_many_arguments)]
fn winograd_rows(
    shape: ConvShape,
    x: &[f32],
    u: &[f32],
    r0: usize,
    r1: usize,
    dst: &mut [f32],
    dst_channel_stride: usize,
    scratch: &mut ConvScratch,
) {
    let ConvShape {
        cin, cout, h, w, ..
    } = shape;
    let ow = shape.out_w();
    let tiles_x = ow.div_ceil(2);
    let tile_rows_total = (r1 - r0).div_ceil(2);
    let per_tile_row = 16 * (cin + cout) * tiles_x;
    let chunk = (IM2COL_BUDGET / per_tile_row.max(1)).max(1);
    let mut tr = 0;
    while tr < tile_rows_total {
        let tre = (tr + chunk).min(tile_rows_total);
        let n_rows = tre - tr;
        let tiles = n_rows * tiles_x;
        let row_lo = r0 + 2 * tr;
        // V: [cin][16][tiles]
        scratch.v.resize(16 * cin * tiles, 0.0);
        scratch.m.resize(16 * cout * tiles, 0.0);
        scratch.v[..16 * cin * tiles]
            .par_chunks_mut(16 * tiles)
            .zip(x.par_chunks(h * w))
            .for_each_init(Vec::new, |buf, (v, plane)| {
                wino_input_channel(plane, h, w, row_lo, n_rows, tiles_x, v, buf);
            });
        // M: [16][cout][tiles], one GEMM per transform position.
        let v = &scratch.v[..16 * cin * tiles];
        scratch.m[..16 * cout * tiles]
            .par_chunks_mut(cout * tiles)
            .zip(u.par_chunks(cout * cin))
            .enumerate()
            .for_each(|(xi, (m, u))| {
                sgemm(
                    MatMut {
                        data: m,
                        rows: cout,
                        cols: tiles,
                        row_stride: tiles,
                    },
                    MatRef {
                        data: u,
                        rows: cout,
                        cols: cin,
                        row_stride: cin,
                    },
                    MatRef {
                        data: &v[xi * tiles..],
                        rows: cin,
                        cols: tiles,
                        row_stride: 16 * tiles,
                    },
                    false,
                    Threads::One,
                );
            });
        // Output transform, written straight into the caller's rows.
        let m = &scratch.m[..16 * cout * tiles];
        let rows_here = (r1 - row_lo).min(2 * n_rows);
        let out_off = (row_lo - r0) * ow;
        dst.par_chunks_mut(dst_channel_stride)
            .take(cout)
            .enumerate()
            .for_each_init(Vec::new, |buf, (co, plane)| {
                let rows = &mut plane[out_off..out_off + rows_here * ow];
                wino_output_channel(m, co, cout, tiles, tiles_x, ow, rows, buf);
            });
        tr = tre;
    }
}

dispatch_fma!(fn wino_input_channel(
    plane: &[f32],
    h: usize,
    w: usize,
    row_lo: usize,
    n_rows: usize,
    tiles_x: usize,
    v: &mut [f32],
    buf: &mut Vec<f32>,
) => wino_input_channel_impl);

/// `V = Bᵀ·d·B` for one input channel and every tile of `n_rows` tile rows starting at output
/// row `row_lo`, into `v [16][tiles]`, with
/// `Bᵀ = [[1, 0, −1, 0], [0, 1, 1, 0], [0, −1, 1, 0], [0, 1, 0, −1]]`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn wino_input_channel_impl<const FMA: bool>(
    plane: &[f32],
    h: usize,
    w: usize,
    row_lo: usize,
    n_rows: usize,
    tiles_x: usize,
    v: &mut [f32],
    buf: &mut Vec<f32>,
) {
    let tiles = n_rows * tiles_x;
    // Padded rows cover input columns −2 .. 2·tiles_x (+2 so every 4-wide window fits).
    let pw = 2 * tiles_x + 2;
    let half = tiles_x + 1;
    buf.resize(8 * pw + 2 * half, 0.0);
    let (prow, rest) = buf.split_at_mut(4 * pw);
    let (t, rest) = rest.split_at_mut(4 * pw);
    let (even, odd) = rest.split_at_mut(half);
    for ty in 0..n_rows {
        // the 4 padded input rows of this tile row: input row = out row + i − 2
        for (i, pr) in prow.chunks_exact_mut(pw).enumerate() {
            let sy = (row_lo + 2 * ty + i) as isize - 2;
            pr.fill(0.0);
            if sy >= 0 && (sy as usize) < h {
                let src = &plane[sy as usize * w..(sy as usize + 1) * w];
                let n = w.min(pw - 2);
                pr[2..2 + n].copy_from_slice(&src[..n]);
            }
        }
        // vertical Bᵀ: t0 = d0 − d2, t1 = d1 + d2, t2 = d2 − d1, t3 = d1 − d3
        {
            let (d0, r) = prow.split_at(pw);
            let (d1, r) = r.split_at(pw);
            let (d2, d3) = r.split_at(pw);
            let (t0, r) = t.split_at_mut(pw);
            let (t1, r) = r.split_at_mut(pw);
            let (t2, t3) = r.split_at_mut(pw);
            for j in 0..pw {
                t0[j] = d0[j] - d2[j];
                t1[j] = d1[j] + d2[j];
                t2[j] = d2[j] - d1[j];
                t3[j] = d1[j] - d3[j];
            }
        }
        // horizontal B on each row: columns 2tx..2tx+3 = even[tx], odd[tx], even[tx+1], odd[tx+1]
        for (r, tr) in t.chunks_exact(pw).enumerate() {
            for (j, pair) in tr.chunks_exact(2).enumerate().take(half) {
                even[j] = pair[0];
                odd[j] = pair[1];
            }
            let base = |c: usize| (r * 4 + c) * tiles + ty * tiles_x;
            let (e0, e1) = (&even[..tiles_x], &even[1..=tiles_x]);
            let (o0, o1) = (&odd[..tiles_x], &odd[1..=tiles_x]);
            for (j, d) in v[base(0)..base(0) + tiles_x].iter_mut().enumerate() {
                *d = e0[j] - e1[j];
            }
            for (j, d) in v[base(1)..base(1) + tiles_x].iter_mut().enumerate() {
                *d = o0[j] + e1[j];
            }
            for (j, d) in v[base(2)..base(2) + tiles_x].iter_mut().enumerate() {
                *d = e1[j] - o0[j];
            }
            for (j, d) in v[base(3)..base(3) + tiles_x].iter_mut().enumerate() {
                *d = o0[j] - o1[j];
            }
        }
    }
}

dispatch_fma!(fn wino_output_channel(
    m: &[f32],
    co: usize,
    cout: usize,
    tiles: usize,
    tiles_x: usize,
    ow: usize,
    rows: &mut [f32],
    buf: &mut Vec<f32>,
) => wino_output_channel_impl);

/// `Y = Aᵀ·M·A` for output channel `co` of `m [16][cout][tiles]`, with
/// `Aᵀ = [[1, 1, 1, 0], [0, 1, −1, −1]]`, into `rows` (`ow` wide; a last odd row or column of
/// the tiles is dropped).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn wino_output_channel_impl<const FMA: bool>(
    m: &[f32],
    co: usize,
    cout: usize,
    tiles: usize,
    tiles_x: usize,
    ow: usize,
    rows: &mut [f32],
    buf: &mut Vec<f32>,
) {
    let n_out_rows = rows.len() / ow.max(1);
    buf.resize(4 * tiles_x, 0.0);
    for (oy, out_row) in rows.chunks_exact_mut(ow).enumerate().take(n_out_rows) {
        let (ty, sub) = (oy / 2, oy % 2);
        let at = |xi: usize| {
            let base = (xi * cout + co) * tiles + ty * tiles_x;
            &m[base..base + tiles_x]
        };
        // S = Aᵀ·M (vertical), one run of `tiles_x` values per tile column j.
        for (j, sj) in buf.chunks_exact_mut(tiles_x).enumerate() {
            let (m0, m1, m2, m3) = (at(j), at(4 + j), at(8 + j), at(12 + j));
            if sub == 0 {
                for i in 0..tiles_x {
                    sj[i] = m0[i] + m1[i] + m2[i];
                }
            } else {
                for i in 0..tiles_x {
                    sj[i] = m1[i] - m2[i] - m3[i];
                }
            }
        }
        // Y = S·A (horizontal): columns 2tx, 2tx+1.
        let (s0, rest) = buf.split_at(tiles_x);
        let (s1, rest) = rest.split_at(tiles_x);
        let (s2, s3) = rest.split_at(tiles_x);
        for (tx, pair) in out_row.chunks_mut(2).enumerate() {
            pair[0] = s0[tx] + s1[tx] + s2[tx];
            if let Some(v) = pair.get_mut(1) {
                *v = s1[tx] - s2[tx] - s3[tx];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct-definition convolution for checking.
    fn naive(shape: ConvShape, x: &[f32], wt: &[f32]) -> Vec<f32> {
        let ConvShape { cin, cout, h, w, k } = shape;
        let (oh, ow) = (shape.out_h(), shape.out_w());
        let p = k as isize - 1;
        let mut out = vec![0.0f32; cout * oh * ow];
        for co in 0..cout {
            for y in 0..oh {
                for xx in 0..ow {
                    let mut s = 0.0f64;
                    for ci in 0..cin {
                        for ky in 0..k {
                            for kx in 0..k {
                                let sy = y as isize + ky as isize - p;
                                let sx = xx as isize + kx as isize - p;
                                if sy >= 0 && sx >= 0 && (sy as usize) < h && (sx as usize) < w {
                                    s += wt[((co * cin + ci) * k + ky) * k + kx] as f64
                                        * x[(ci * h + sy as usize) * w + sx as usize] as f64;
                                }
                            }
                        }
                    }
                    out[(co * oh + y) * ow + xx] = s as f32;
                }
            }
        }
        out
    }

    #[test]
    fn banded_conv_matches_definition() {
        for k in [1usize, 3, 5] {
            let shape = ConvShape {
                cin: 3,
                cout: 4,
                h: 7,
                w: 5,
                k,
            };
            let x: Vec<f32> = (0..3 * 7 * 5)
                .map(|i| ((i * 37 % 11) as f32) - 5.0)
                .collect();
            let wt: Vec<f32> = (0..4 * 3 * k * k)
                .map(|i| ((i * 13 % 7) as f32) * 0.25 - 0.7)
                .collect();
            let expected = naive(shape, &x, &wt);
            let (oh, ow) = (shape.out_h(), shape.out_w());
            let mut got = vec![0.0f32; 4 * oh * ow];
            let mut scratch = ConvScratch::default();
            // Two bands of rows, written straight into the full output (channel stride oh·ow).
            let split = (oh / 2) | 1; // odd: bands that start mid-tile
            let prepared = PreparedConv::new(shape, wt.clone());
            conv_rows(
                shape,
                &x,
                &prepared,
                0,
                split,
                &mut got,
                oh * ow,
                &mut scratch,
            );
            let rest = &mut got[split * ow..];
            conv_rows(shape, &x, &prepared, split, oh, rest, oh * ow, &mut scratch);
            // and the im2col path for the same weights
            let direct = PreparedConv::Direct(wt.clone());
            let mut got2 = vec![0.0f32; 4 * oh * ow];
            conv_rows(shape, &x, &direct, 0, oh, &mut got2, oh * ow, &mut scratch);
            for (a, b) in got2.iter().zip(&expected) {
                assert!((a - b).abs() < 1e-4, "im2col k={k}: {a} vs {b}");
            }
            for (a, b) in got.iter().zip(&expected) {
                assert!((a - b).abs() < 1e-4, "k={k}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn modulation_demodulates_to_unit_norm() {
        let w = [1.0f32, 2.0, 3.0, 4.0, 0.5, -0.5, 1.0, 1.0];
        let s = [2.0f32, 0.5];
        let mut out = [0.0f32; 8];
        modulate(&w, &s, 2, 2, true, 0.5, &mut out);
        for row in out.chunks(4) {
            let n: f32 = row.iter().map(|v| v * v).sum();
            assert!((n - 0.25).abs() < 1e-6); // unit norm times input gain²
        }
        modulate(&w, &s, 2, 2, false, 1.0, &mut out);
        assert_eq!(out[..4], [2.0, 4.0, 1.5, 2.0]); // plain W·s
    }
}
