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

use crate::gemm::{sgemm, MatMut, MatRef, Threads};
use crate::simd::{deinterleave, dispatch_fma, interleave, weighted_sum};

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

/// Transformed weights `[cout][α²][cin]`.
pub(crate) struct WinogradWeights {
    pub tile: &'static Tile,
    pub u: Vec<f32>,
}

impl WinogradWeights {
    /// `wmod [cout, cin, 3, 3]`.
    #[cfg(test)]
    pub fn new(tile: &'static Tile, cout: usize, cin: usize, wmod: &[f32]) -> WinogradWeights {
        Self::new_in(tile, cout, cin, wmod, Vec::new())
    }

    /// [`WinogradWeights::new`] into the buffer `u` (resized; every value is overwritten).
    pub fn new_in(
        tile: &'static Tile,
        cout: usize,
        cin: usize,
        wmod: &[f32],
        mut u: Vec<f32>,
    ) -> WinogradWeights {
        let a2 = tile.alpha * tile.alpha;
        u.resize(a2 * cout * cin, 0.0);
        u.par_chunks_mut(a2 * cin.max(1))
            .zip(wmod.par_chunks(9 * cin.max(1)))
            .for_each_init(Vec::new, |buf, (u_co, w_co)| {
                weights_channel(tile, cin, w_co, u_co, buf)
            });
        WinogradWeights { tile, u }
    }
}

dispatch_fma!(fn weights_channel(
    tile: &Tile,
    cin: usize,
    w_co: &[f32],
    u_co: &mut [f32],
    buf: &mut Vec<f32>,
) => weights_channel_impl);

/// `U = G·g·Gᵀ` for one output channel: `w_co [cin][3][3]` -> `u_co [α²][cin]`, vectorised
/// over the input channels.
#[inline(always)]
fn weights_channel_impl<const FMA: bool>(
    tile: &Tile,
    cin: usize,
    w_co: &[f32],
    u_co: &mut [f32],
    buf: &mut Vec<f32>,
) {
    let a = tile.alpha;
    buf.resize((9 + 3 * a) * cin, 0.0);
    let (taps9, t) = buf.split_at_mut(9 * cin);
    // taps9[k][ci] = g[ci][k]
    for (ci, g) in w_co.chunks_exact(9).enumerate().take(cin) {
        for (k, &v) in g.iter().enumerate() {
            taps9[k * cin + ci] = v;
        }
    }
    let taps9: &[f32] = taps9;
    let mut coef = [0.0f32; 3];
    // t[r][c] = Σ_k G[r][k] · g[k][c]  (α×3 rows of cin values)
    for (rc, t_rc) in t.chunks_exact_mut(cin.max(1)).enumerate().take(3 * a) {
        let (r, c) = (rc / 3, rc % 3);
        let srcs: [&[f32]; 3] =
            std::array::from_fn(|k| &taps9[(k * 3 + c) * cin..(k * 3 + c + 1) * cin]);
        for (k, cv) in coef.iter_mut().enumerate() {
            *cv = tile.g[r * 3 + k] as f32;
        }
        weighted_sum::<FMA, false>(t_rc, &srcs, &coef);
    }
    let t: &[f32] = t;
    // U[r][c2] = Σ_k t[r][k] · G[c2][k]
    for (rc2, u_rc) in u_co.chunks_exact_mut(cin.max(1)).enumerate().take(a * a) {
        let (r, c2) = (rc2 / a, rc2 % a);
        let srcs: [&[f32]; 3] =
            std::array::from_fn(|k| &t[(r * 3 + k) * cin..(r * 3 + k + 1) * cin]);
        for (k, cv) in coef.iter_mut().enumerate() {
            *cv = tile.g[c2 * 3 + k] as f32;
        }
        weighted_sum::<FMA, false>(u_rc, &srcs, &coef);
    }
}

/// Reusable buffers.
#[derive(Default)]
pub(crate) struct WinogradScratch {
    v: Vec<f32>,
    m: Vec<f32>,
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
    scratch: &mut WinogradScratch,
) {
    let tile = weights.tile;
    let (m, a) = (tile.m, tile.alpha);
    let a2 = a * a;
    let ow = w + 2;
    let tiles_x = ow.div_ceil(m);
    let tile_rows_total = (r1 - r0).div_ceil(m);
    let per_tile_row = a2 * (cin + cout) * tiles_x;
    let chunk = (budget / per_tile_row.max(1)).max(1);
    let mut tr = 0;
    while tr < tile_rows_total {
        let tre = (tr + chunk).min(tile_rows_total);
        let n_rows = tre - tr;
        let tiles = n_rows * tiles_x;
        let row_lo = r0 + m * tr;
        // V: [cin][α²][tiles]
        scratch.v.resize(a2 * cin * tiles, 0.0);
        scratch.m.resize(a2 * cout * tiles, 0.0);
        scratch.v[..a2 * cin * tiles]
            .par_chunks_mut(a2 * tiles)
            .zip(x.par_chunks(h * w))
            .for_each_init(Vec::new, |buf, (v, plane)| {
                input_channel(tile, plane, h, w, row_lo, n_rows, tiles_x, v, buf);
            });
        // M: [α²][cout][tiles], one GEMM per transform position.
        let v = &scratch.v[..a2 * cin * tiles];
        let u = &weights.u;
        scratch.m[..a2 * cout * tiles]
            .par_chunks_mut(cout * tiles)
            .enumerate()
            .for_each(|(xi, mm)| {
                sgemm(
                    MatMut {
                        data: mm,
                        rows: cout,
                        cols: tiles,
                        row_stride: tiles,
                    },
                    MatRef {
                        data: &u[xi * cin..],
                        rows: cout,
                        cols: cin,
                        row_stride: a2 * cin,
                    },
                    MatRef {
                        data: &v[xi * tiles..],
                        rows: cin,
                        cols: tiles,
                        row_stride: a2 * tiles,
                    },
                    false,
                    Threads::One,
                );
            });
        // Output transform, straight into the caller's rows.
        let mm = &scratch.m[..a2 * cout * tiles];
        let rows_here = (r1 - row_lo).min(m * n_rows);
        let out_off = (row_lo - r0) * ow;
        dst.par_chunks_mut(dst_channel_stride)
            .take(cout)
            .enumerate()
            .for_each_init(Vec::new, |buf, (co, plane)| {
                let rows = &mut plane[out_off..out_off + rows_here * ow];
                output_channel(tile, mm, co, cout, tiles, tiles_x, ow, rows, buf);
            });
        tr = tre;
    }
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

dispatch_fma!(fn input_channel(
    tile: &Tile,
    plane: &[f32],
    h: usize,
    w: usize,
    row_lo: usize,
    n_rows: usize,
    tiles_x: usize,
    v: &mut [f32],
    buf: &mut Vec<f32>,
) => input_channel_impl);

/// `V = Bᵀ·d·B` for one input channel and every tile of `n_rows` tile rows starting at output
/// row `row_lo`, into `v [α²][tiles]`. The vertical pass runs per tile row; the horizontal one
/// over all tile rows at once (long vectors), with the same operations per value.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn input_channel_impl<const FMA: bool>(
    tile: &Tile,
    plane: &[f32],
    h: usize,
    w: usize,
    row_lo: usize,
    n_rows: usize,
    tiles_x: usize,
    v: &mut [f32],
    buf: &mut Vec<f32>,
) {
    let (m, a) = (tile.m, tile.alpha);
    let tiles = n_rows * tiles_x;
    // Padded rows: input columns −2 .. m·(tiles_x + 1) − 2, so every window and phase fits.
    let pw = m * (tiles_x + 1);
    let ph = tiles_x + 1;
    // Phases of every vertically transformed row: `phases[(r·m + p)·n_rows·ph + ty·ph + q]` is
    // column `m·q + p` of row r of tile row ty.
    let plen = n_rows * ph;
    let run = (n_rows - 1) * ph + tiles_x;
    buf.resize(2 * a * pw + a * m * plen + run, 0.0);
    let (drows, rest) = buf.split_at_mut(a * pw);
    let (trows, rest) = rest.split_at_mut(a * pw);
    let (phases, hsum) = rest.split_at_mut(a * m * plen);
    let mut taps = [0.0f32; 8];
    let bt_terms = all_row_terms(tile.bt, a, a);
    for ty in 0..n_rows {
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
        for (r, t) in trows.chunks_exact_mut(pw).enumerate() {
            let mut srcs: [&[f32]; 8] = [&[]; 8];
            let (terms, n) = bt_terms[r];
            for (k, &(i, val)) in terms[..n].iter().enumerate() {
                srcs[k] = &drows_ref[i * pw..(i + 1) * pw];
                taps[k] = val;
            }
            weighted_sum::<FMA, false>(t, &srcs[..n], &taps[..n]);
        }
        // split each row into its m phases (column m·q + p -> phase p, position q)
        for (r, t) in trows.chunks_exact(pw).enumerate() {
            let dst = &mut phases[r * m * plen + ty * ph..];
            deinterleave(dst, &t[..m * ph], m, plen);
        }
    }
    // horizontal: column m·tx + j of row r is phase (j mod m) at tx + j div m
    let phases_ref: &[f32] = phases;
    for r in 0..a {
        let row_phases = &phases_ref[r * m * plen..(r + 1) * m * plen];
        for (c, &(terms, n)) in bt_terms.iter().enumerate().take(a) {
            let mut srcs: [&[f32]; 8] = [&[]; 8];
            for (k, &(j, val)) in terms[..n].iter().enumerate() {
                let start = (j % m) * plen + j / m;
                srcs[k] = &row_phases[start..start + run];
                taps[k] = val;
            }
            // one long sum over every tile row (rows `ph` apart), then the `tiles_x` values of
            // each row into V
            weighted_sum::<FMA, false>(hsum, &srcs[..n], &taps[..n]);
            let base = (r * a + c) * tiles;
            for (ty, dst) in v[base..base + tiles].chunks_exact_mut(tiles_x).enumerate() {
                dst.copy_from_slice(&hsum[ty * ph..ty * ph + tiles_x]);
            }
        }
    }
}

dispatch_fma!(fn output_channel(
    tile: &Tile,
    mm: &[f32],
    co: usize,
    cout: usize,
    tiles: usize,
    tiles_x: usize,
    ow: usize,
    rows: &mut [f32],
    buf: &mut Vec<f32>,
) => output_channel_impl);

/// `Y = Aᵀ·M·A` for output channel `co` of `mm [α²][cout][tiles]` into `rows` (`ow` wide; the
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
    tiles_x: usize,
    ow: usize,
    rows: &mut [f32],
    buf: &mut Vec<f32>,
) {
    let (m, a) = (tile.m, tile.alpha);
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
                let base = ((xi * a + j) * cout + co) * tiles;
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
