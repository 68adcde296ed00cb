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

/// Per-sample transformed weights `U = G·g·Gᵀ`, stored as the A operands of
/// [`gemm_packed`](packed_gemm::gemm_packed), one per transform position:
/// `u[((ξ · panels + ib) · cin + ci) · MR + r]` is output channel `ib · MR + r` (zero past
/// `cout`), input channel `ci`, position `ξ`; the product of one position reads one
/// contiguous stretch.
pub(crate) struct WinogradWeights {
    pub tile: &'static Tile,
    pub u: Vec<f32>,
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

    /// Modulates `weight [cout, cin, 3, 3]` and transforms it into the buffer `u` (resized;
    /// every value is overwritten). Modulation and transform run in one pass per block of
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
        u.resize(a2 * panels * cin * MR, 0.0);
        let out = SharedBuf::new(&mut u);
        weight
            .par_chunks(MR * 9 * cin.max(1))
            .enumerate()
            .for_each(|(ib, w_blk)| {
                // SAFETY: panel `ib` of every position is written by this task only.
                unsafe { weights_block(tile, cin, w_blk, modulation, &out, panels, ib) }
            });
        WinogradWeights { tile, u }
    }
}

/// Scale per output channel after `W·s`: `1 / sqrt(Σ (W·s)² + 1e-8)` when demodulating (the
/// sum in f64, four interleaved partial sums), else 1.
fn demod_coefficient(w_co: &[f32], modulation: &Modulation<'_>) -> f32 {
    if !modulation.demodulate {
        return 1.0;
    }
    let mut part = [0.0f64; 4];
    for (g, &sc) in w_co.chunks_exact(9).zip(modulation.styles) {
        for (k, &wv) in g.iter().enumerate() {
            let v = wv * sc;
            part[k % 4] += (v * v) as f64;
        }
    }
    let sum = (part[0] + part[1]) + (part[2] + part[3]);
    1.0 / ((sum as f32) + 1e-8f32).sqrt()
}

dispatch_fma!(unsafe fn weights_block(
    tile: &Tile,
    cin: usize,
    w_blk: &[f32],
    modulation: &Modulation<'_>,
    out: &SharedBuf<'_>,
    panels: usize,
    ib: usize,
) => weights_block_impl);

/// One block of up to [`MR`] output channels: `w_blk [rows][cin][3][3]` -> panel `ib` of
/// every position in `out`, the modulated weight `((w · s) · d) · gain` rounded as upstream
/// rounds it, then `U = G·g·Gᵀ` with the MR channels as the vector lanes.
///
/// # Safety
/// No other task may write panel `ib` of `out`.
#[inline(always)]
unsafe fn weights_block_impl<const FMA: bool>(
    tile: &Tile,
    cin: usize,
    w_blk: &[f32],
    modulation: &Modulation<'_>,
    out: &SharedBuf<'_>,
    panels: usize,
    ib: usize,
) {
    use crate::simd::madd;
    let a = tile.alpha;
    let rows = (w_blk.len() / (9 * cin.max(1))).min(MR);
    let mut dcoef = [0.0f32; MR];
    for (r, d) in dcoef.iter_mut().enumerate().take(rows) {
        *d = demod_coefficient(&w_blk[r * 9 * cin..(r + 1) * 9 * cin], modulation);
    }
    let g: [[f32; 3]; 8] = std::array::from_fn(|i| {
        std::array::from_fn(|k| if i < a { tile.g[i * 3 + k] as f32 } else { 0.0 })
    });
    let gain = modulation.gain;
    for ci in 0..cin {
        // taps[k][r]: tap k of output channel r, modulated (zero for missing channels)
        let mut taps = [[0.0f32; MR]; 9];
        let sc = modulation.styles[ci];
        for r in 0..rows {
            let w9 = &w_blk[(r * cin + ci) * 9..(r * cin + ci + 1) * 9];
            for (k, &wv) in w9.iter().enumerate() {
                let mut v = wv * sc;
                if modulation.demodulate {
                    v *= dcoef[r];
                }
                if gain != 1.0 {
                    v *= gain;
                }
                taps[k][r] = v;
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
    unsafe fn write(&self, xi: usize, ci: usize, t0: usize, vals: &[f32]) {
        let mut done = 0;
        while done < vals.len() {
            let t = t0 + done;
            let (panel, col) = (t / NR, t % NR);
            let n = (NR - col).min(vals.len() - done);
            let off = ((xi * self.panels + panel) * self.cin + ci) * NR + col;
            assert!(t + n <= self.tiles);
            self.buf.part(off, n).copy_from_slice(&vals[done..done + n]);
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
    unsafe fn write_rows(&self, xi: usize, ci: usize, row: &[f32], stride: usize, tiles_x: usize) {
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
            .for_each_init(Vec::new, |buf, (ci, plane)| {
                // SAFETY: this task is the only one handling channel `ci`.
                unsafe {
                    input_channel(tile, plane, h, w, row_lo, n_rows, tiles_x, &packed, ci, buf);
                }
                // the streaming stores are weakly ordered: complete them before the GEMM
                // (on another thread) reads the tiles
                store_fence();
            });
        drop(section);
        let section = stage_time::section(Stage::Gemm);
        // M: [α²][cout][ld], one GEMM per transform position.
        let v = &scratch.v[v_off..v_off + v_len];
        let u = &weights.u;
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
            .for_each_init(Vec::new, |buf, (co, plane)| {
                let rows = &mut plane[out_off..out_off + rows_here * ow];
                output_channel(tile, mm, co, cout, tiles, ld, tiles_x, ow, rows, buf);
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
                dst.write_rows(r * a + c, ci, row, ph, tiles_x);
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
                dst.write(xi, ci, ty * tiles_x, &hsum[ty * ph..ty * ph + tiles_x]);
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
