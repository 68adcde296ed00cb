//! CPU kernels of the StyleGAN2 synthesis network: style modulation, the 3x3 modulated
//! convolution (im2col tiles + GEMM), the stride-2 transposed convolution of the upsampling
//! layers in polyphase form, the separable 4-tap FIR resampling and the fused
//! noise/bias/activation/clamp epilogue. Feature maps are one sample's `[C, H, W]`, row-major.

use rayon::prelude::*;

use super::gemm_f32::{sgemm, Threads};

/// Floats of im2col data per tile: big enough for efficient GEMM panels, small enough to stay
/// in the last-level cache next to the output tile.
const TILE_FLOATS: usize = 1 << 20;

/// A tap of a convolution: output `(i, j)` reads input `(i + dy, j + dx)` (zero outside).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Tap {
    pub dy: isize,
    pub dx: isize,
}

/// Activation of a layer's epilogue.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Act {
    /// Identity (ToRGB).
    Linear,
    /// Leaky ReLU with slope 0.2, then multiplied by `gain`.
    Lrelu { gain: f32 },
}

/// What happens to a convolution's raw output, in the upstream order: add the (already
/// strength-scaled) noise plane, add the channel bias, activation and gain, clamp.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Epilogue<'a> {
    /// One value per output pixel (shared by all channels), or none.
    pub noise: Option<&'a [f32]>,
    /// One value per output channel.
    pub bias: &'a [f32],
    pub act: Act,
    pub clamp: Option<f32>,
}

impl Epilogue<'_> {
    /// Applies the epilogue of channel `c` to `vals`, which are pixels `p0..p0 + vals.len()`
    /// of the output plane.
    #[inline]
    pub(crate) fn apply(&self, c: usize, p0: usize, vals: &mut [f32]) {
        let b = self.bias[c];
        if let Some(noise) = self.noise {
            let noise = &noise[p0..p0 + vals.len()];
            for (v, &nz) in vals.iter_mut().zip(noise) {
                *v += nz;
            }
        }
        match (self.act, self.clamp) {
            (Act::Lrelu { gain }, Some(cl)) => {
                for v in vals.iter_mut() {
                    let y = *v + b;
                    let y = if y < 0.0 { y * 0.2 } else { y } * gain;
                    *v = clamp(y, cl);
                }
            }
            (Act::Lrelu { gain }, None) => {
                for v in vals.iter_mut() {
                    let y = *v + b;
                    *v = if y < 0.0 { y * 0.2 } else { y } * gain;
                }
            }
            (Act::Linear, Some(cl)) => {
                for v in vals.iter_mut() {
                    *v = clamp(*v + b, cl);
                }
            }
            (Act::Linear, None) => {
                for v in vals.iter_mut() {
                    *v += b;
                }
            }
        }
    }
}

#[inline(always)]
fn clamp(v: f32, c: f32) -> f32 {
    // Written with comparisons so that NaN passes through like torch.clamp.
    if v > c {
        c
    } else if v < -c {
        -c
    } else {
        v
    }
}

/// `y = x · Wᵀ + b` for one latent: `weight` is `[out, in]` (already multiplied by the
/// layer's weight gain), sums in f64.
pub(crate) fn fully_connected(x: &[f32], weight: &[f32], bias: &[f32], out: &mut [f32]) {
    let inp = x.len();
    for (o, y) in out.iter_mut().enumerate() {
        let row = &weight[o * inp..(o + 1) * inp];
        let mut acc = 0.0f64;
        for (&a, &w) in x.iter().zip(row) {
            acc += a as f64 * w as f64;
        }
        *y = (acc + bias[o] as f64) as f32;
    }
}

/// Per-sample weights of a modulated convolution: `out[o, c, k] = weight[o, c, k] · styles[c]`,
/// then with `demodulate` each output channel is scaled by `1/sqrt(Σ_{c,k} out² + 1e-8)`.
/// `weight` is `[cout, cin, kk]`.
pub(crate) fn modulate(
    weight: &[f32],
    styles: &[f32],
    kk: usize,
    demodulate: bool,
    out: &mut Vec<f32>,
) {
    let cin = styles.len();
    let row_len = cin * kk;
    out.clear();
    out.extend_from_slice(weight);
    out.par_chunks_mut(row_len).for_each(|row| {
        for (c, &s) in styles.iter().enumerate() {
            for v in &mut row[c * kk..(c + 1) * kk] {
                *v *= s;
            }
        }
        if demodulate {
            let sumsq: f64 = row.iter().map(|&v| v as f64 * v as f64).sum();
            let d = (1.0 / (sumsq + 1e-8).sqrt()) as f32;
            for v in row.iter_mut() {
                *v *= d;
            }
        }
    });
}

/// Where a convolution's output pixel `(i, j)` goes in the destination buffer: channel `c`
/// at `dst[c * plane + (y0 + i * sy) * row + x0 + j * sx]`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct OutLayout {
    pub plane: usize,
    pub row: usize,
    pub y0: usize,
    pub x0: usize,
    pub sy: usize,
    pub sx: usize,
}

impl OutLayout {
    /// A dense `[C, h, w]` destination.
    pub(crate) fn dense(h: usize, w: usize) -> OutLayout {
        OutLayout {
            plane: h * w,
            row: w,
            y0: 0,
            x0: 0,
            sy: 1,
            sx: 1,
        }
    }
}

/// Reusable scratch memory of the convolution kernels.
#[derive(Default)]
pub(crate) struct ConvScratch {
    cols: Vec<f32>,
    tile: Vec<f32>,
}

/// A multi-tap convolution as im2col tiles + GEMM:
/// `out(o, i, j) = Σ_{c, t} wts[o, c·T + t] · x[c, i + dy_t, j + dx_t]` for `i < out_h`,
/// `j < out_w`, with zeros outside the `[cin, h, w]` input. Results are stored through
/// `layout` into `dst`, passing through `epi` when given (its noise is indexed by the output
/// pixel `i * out_w + j`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv_taps(
    x: &[f32],
    cin: usize,
    h: usize,
    w: usize,
    taps: &[Tap],
    wts: &[f32],
    cout: usize,
    out_h: usize,
    out_w: usize,
    dst: &mut [f32],
    layout: OutLayout,
    epi: Option<&Epilogue<'_>>,
    scratch: &mut ConvScratch,
) {
    let k = cin * taps.len();
    assert_eq!(x.len(), cin * h * w, "conv input size");
    assert_eq!(wts.len(), cout * k, "conv weight size");
    if out_h == 0 || out_w == 0 || cout == 0 {
        return;
    }
    let rows_per_tile = (TILE_FLOATS / (k * out_w).max(1)).clamp(1, out_h);
    let max_n = rows_per_tile * out_w;
    scratch.cols.resize(k * max_n, 0.0);
    scratch.tile.resize(cout * max_n, 0.0);
    let mut i0 = 0;
    while i0 < out_h {
        let i1 = (i0 + rows_per_tile).min(out_h);
        let n = (i1 - i0) * out_w;
        let cols = &mut scratch.cols[..k * n];
        // im2col: row (c, t) of the tile holds x[c, i + dy, j + dx] for the tile's pixels.
        let rows_per_task = (k / (4 * rayon::current_num_threads())).max(1);
        cols.par_chunks_mut(n * rows_per_task)
            .enumerate()
            .for_each(|(task, chunk)| {
                for (r, row) in chunk.chunks_mut(n).enumerate() {
                    let kr = task * rows_per_task + r;
                    let (c, tap) = (kr / taps.len(), taps[kr % taps.len()]);
                    let plane = &x[c * h * w..(c + 1) * h * w];
                    fill_im2col_row(plane, h, w, tap, i0, i1, out_w, row);
                }
            });
        let tile = &mut scratch.tile[..cout * n];
        sgemm(cout, n, k, tile, n, wts, k, cols, n, false, Threads::Pool);
        store_tile(tile, n, i0, i1, out_w, dst, layout, epi);
        i0 = i1;
    }
}

/// One im2col row: output rows `i0..i1` (each `out_w` wide) of input plane `plane` shifted
/// by `tap`, zero where the shifted position falls outside the plane.
#[allow(clippy::too_many_arguments)]
fn fill_im2col_row(
    plane: &[f32],
    h: usize,
    w: usize,
    tap: Tap,
    i0: usize,
    i1: usize,
    out_w: usize,
    row: &mut [f32],
) {
    // Output columns whose source column lies inside the plane.
    let j_lo = (-tap.dx).clamp(0, out_w as isize) as usize;
    let j_hi = (w as isize - tap.dx).clamp(j_lo as isize, out_w as isize) as usize;
    for (ri, seg) in (i0..i1).zip(row.chunks_mut(out_w)) {
        let sy = ri as isize + tap.dy;
        if sy < 0 || sy >= h as isize || j_lo >= j_hi {
            seg.fill(0.0);
            continue;
        }
        let src = &plane[sy as usize * w..(sy as usize + 1) * w];
        seg[..j_lo].fill(0.0);
        let s0 = (j_lo as isize + tap.dx) as usize;
        seg[j_lo..j_hi].copy_from_slice(&src[s0..s0 + (j_hi - j_lo)]);
        seg[j_hi..].fill(0.0);
    }
}

/// Copies a GEMM tile (`[cout, n]`, pixels of output rows `i0..i1`) to its place in `dst`,
/// applying the epilogue; parallel over channels.
#[allow(clippy::too_many_arguments)]
fn store_tile(
    tile: &mut [f32],
    n: usize,
    i0: usize,
    i1: usize,
    out_w: usize,
    dst: &mut [f32],
    layout: OutLayout,
    epi: Option<&Epilogue<'_>>,
) {
    let cout = tile.len() / n;
    dst[..cout * layout.plane]
        .par_chunks_mut(layout.plane)
        .zip(tile.par_chunks_mut(n))
        .enumerate()
        .for_each(|(c, (dplane, vals))| {
            if let Some(e) = epi {
                e.apply(c, i0 * out_w, vals);
            }
            for (i, src) in (i0..i1).zip(vals.chunks(out_w)) {
                let start = (layout.y0 + i * layout.sy) * layout.row + layout.x0;
                if layout.sx == 1 {
                    dplane[start..start + out_w].copy_from_slice(src);
                } else {
                    for (j, &v) in src.iter().enumerate() {
                        dplane[start + j * layout.sx] = v;
                    }
                }
            }
        });
}

/// The 3x3 "same" modulated convolution (padding 1): `x` is `[cin, h, w]`, `wmod` the
/// per-sample `[cout, cin, 3, 3]` weights, the result `[cout, h, w]` goes to `dst` through
/// the epilogue.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv3x3(
    x: &[f32],
    cin: usize,
    h: usize,
    w: usize,
    wmod: &[f32],
    cout: usize,
    dst: &mut [f32],
    epi: &Epilogue<'_>,
    scratch: &mut ConvScratch,
) {
    let mut taps = [Tap { dy: 0, dx: 0 }; 9];
    for (t, tap) in taps.iter_mut().enumerate() {
        *tap = Tap {
            dy: (t / 3) as isize - 1,
            dx: (t % 3) as isize - 1,
        };
    }
    conv_taps(
        x,
        cin,
        h,
        w,
        &taps,
        wmod,
        cout,
        h,
        w,
        dst,
        OutLayout::dense(h, w),
        Some(epi),
        scratch,
    );
}

/// The transposed 3x3 convolution with stride 2 (no padding) of the upsampling layers, in
/// polyphase form: output `T[o, 2i + py, 2j + px]` only gathers the kernel taps of matching
/// parity, so the zeros of the stuffed input are never multiplied. `x` is `[cin, r, r]`,
/// `wmod` the per-sample `[cout, cin, 3, 3]` weights (used unflipped, as a true convolution of
/// the zero-stuffed input), `t_out` receives `[cout, 2r + 1, 2r + 1]`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv_transpose3x3_s2(
    x: &[f32],
    cin: usize,
    r: usize,
    wmod: &[f32],
    cout: usize,
    t_out: &mut [f32],
    phase_w: &mut Vec<f32>,
    scratch: &mut ConvScratch,
) {
    let tn = 2 * r + 1;
    assert_eq!(t_out.len(), cout * tn * tn, "transposed conv output size");
    // Along one axis: T[2i] = w[0]·x[i] + w[2]·x[i-1] (i = 0..=r), T[2i+1] = w[1]·x[i].
    let axis_taps = |parity: usize| -> &'static [(usize, isize)] {
        if parity == 0 {
            &[(0, 0), (2, -1)]
        } else {
            &[(1, 0)]
        }
    };
    for py in 0..2 {
        for px in 0..2 {
            let (ty, tx) = (axis_taps(py), axis_taps(px));
            let mut taps = Vec::with_capacity(ty.len() * tx.len());
            let mut kidx = Vec::with_capacity(ty.len() * tx.len());
            for &(ky, dy) in ty {
                for &(kx, dx) in tx {
                    taps.push(Tap { dy, dx });
                    kidx.push(ky * 3 + kx);
                }
            }
            let nt = taps.len();
            phase_w.clear();
            phase_w.resize(cout * cin * nt, 0.0);
            for (o, prow) in phase_w.chunks_mut(cin * nt).enumerate() {
                for c in 0..cin {
                    let src = &wmod[(o * cin + c) * 9..(o * cin + c + 1) * 9];
                    for (t, &ki) in kidx.iter().enumerate() {
                        prow[c * nt + t] = src[ki];
                    }
                }
            }
            let out_h = if py == 0 { r + 1 } else { r };
            let out_w = if px == 0 { r + 1 } else { r };
            let layout = OutLayout {
                plane: tn * tn,
                row: tn,
                y0: py,
                x0: px,
                sy: 2,
                sx: 2,
            };
            conv_taps(
                x, cin, r, r, &taps, phase_w, cout, out_h, out_w, t_out, layout, None, scratch,
            );
        }
    }
}

/// A separable 4-tap FIR, as coefficients already flipped for correlation and multiplied by
/// the per-axis gain: `y[p] = Σ_u fy[u] · s[p - 1 + u]` (likewise along x).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Fir4 {
    pub fy: [f32; 4],
    pub fx: [f32; 4],
}

impl Fir4 {
    /// From the stored 2-D filter `f[y][x]` (`[4, 4]`, the upstream `resample_filter`, which
    /// `upfirdn2d` applies as a true convolution) and the total gain (`up²`). Returns `None`
    /// if the filter is not separable.
    pub(crate) fn from_2d(f: &[f32], gain: f32) -> Option<Fir4> {
        if f.len() != 16 {
            return None;
        }
        let total: f64 = f.iter().map(|&v| v as f64).sum();
        if total <= 0.0 || !total.is_finite() {
            return None;
        }
        let mut row_sum = [0f64; 4];
        let mut col_sum = [0f64; 4];
        for y in 0..4 {
            for x in 0..4 {
                row_sum[y] += f[y * 4 + x] as f64;
                col_sum[x] += f[y * 4 + x] as f64;
            }
        }
        let scale = f.iter().fold(0f64, |m, &v| m.max((v as f64).abs()));
        for y in 0..4 {
            for x in 0..4 {
                let sep = row_sum[y] * col_sum[x] / total;
                if (sep - f[y * 4 + x] as f64).abs() > 1e-6 * scale {
                    return None;
                }
            }
        }
        // f[y][x] = (row_sum[y] / sqrt(total)) · (col_sum[x] / sqrt(total)); the gain is split
        // evenly over the two axes.
        let axis = (gain as f64).sqrt() / total.sqrt();
        let mut fy = [0f32; 4];
        let mut fx = [0f32; 4];
        for u in 0..4 {
            // Convolution -> correlation: the coefficient of s[p - 1 + u] is f[3 - u].
            fy[u] = (row_sum[3 - u] * axis) as f32;
            fx[u] = (col_sum[3 - u] * axis) as f32;
        }
        Some(Fir4 { fy, fx })
    }
}

/// The FIR step after the transposed convolution (`upfirdn2d` with padding 1 on every side):
/// `t` is `[cout, 2r + 1, 2r + 1]`, the result `[cout, 2r, 2r]` passes through the epilogue
/// (noise indexed by output pixel) into `out`.
pub(crate) fn fir_pad1_epilogue(
    t: &[f32],
    cout: usize,
    r: usize,
    fir: &Fir4,
    epi: &Epilogue<'_>,
    out: &mut [f32],
) {
    let tn = 2 * r + 1;
    let on = 2 * r;
    assert_eq!(t.len(), cout * tn * tn);
    assert_eq!(out.len(), cout * on * on);
    out.par_chunks_mut(on * on)
        .zip(t.par_chunks(tn * tn))
        .enumerate()
        .for_each(|(c, (oplane, tplane))| {
            let mut vrow = vec![0f32; tn + 2];
            for p in 0..on {
                // Vertical pass into vrow[1..=tn]; vrow[0] and vrow[tn+1] stay zero (padding).
                let v = &mut vrow[1..=tn];
                v.fill(0.0);
                for (u, &fy) in fir.fy.iter().enumerate() {
                    let src_row = p as isize - 1 + u as isize;
                    if src_row < 0 || src_row >= tn as isize {
                        continue;
                    }
                    let src = &tplane[src_row as usize * tn..(src_row as usize + 1) * tn];
                    for (a, &s) in v.iter_mut().zip(src) {
                        *a += fy * s;
                    }
                }
                // Horizontal pass: out[p][q] = Σ_u fx[u]·T'[q - 1 + u] = Σ_u fx[u]·vrow[q + u].
                let orow = &mut oplane[p * on..(p + 1) * on];
                let [f0, f1, f2, f3] = fir.fx;
                for (q, o) in orow.iter_mut().enumerate() {
                    *o = f0 * vrow[q] + f1 * vrow[q + 1] + f2 * vrow[q + 2] + f3 * vrow[q + 3];
                }
                epi.apply(c, p * on, orow);
            }
        });
}

/// `upfirdn2d.upsample2d` (factor 2, padding [2, 1] per axis) of a `[c, r, r]` image into
/// `[c, 2r, 2r]`, written polyphase: only the non-zero samples of the stuffed input are read.
pub(crate) fn upsample2d(img: &[f32], c: usize, r: usize, fir: &Fir4) -> Vec<f32> {
    let on = 2 * r;
    let mut out = vec![0f32; c * on * on];
    // Along one axis, with g the correlation coefficients over the stuffed+padded signal:
    // y[2m] = g[0]·x[m-1] + g[2]·x[m],  y[2m+1] = g[1]·x[m] + g[3]·x[m+1].
    let up1d = |src: &dyn Fn(isize) -> f32, g: &[f32; 4], y: usize| -> f32 {
        let m = (y / 2) as isize;
        if y.is_multiple_of(2) {
            g[0] * src(m - 1) + g[2] * src(m)
        } else {
            g[1] * src(m) + g[3] * src(m + 1)
        }
    };
    let mut vert = vec![0f32; on * r];
    for ch in 0..c {
        let plane = &img[ch * r * r..(ch + 1) * r * r];
        // Vertical: vert[y][x] for y in 0..2r, x in 0..r.
        for y in 0..on {
            for x in 0..r {
                let src = |m: isize| -> f32 {
                    if m < 0 || m >= r as isize {
                        0.0
                    } else {
                        plane[m as usize * r + x]
                    }
                };
                vert[y * r + x] = up1d(&src, &fir.fy, y);
            }
        }
        let oplane = &mut out[ch * on * on..(ch + 1) * on * on];
        for y in 0..on {
            let vrow = &vert[y * r..(y + 1) * r];
            let src = |m: isize| -> f32 {
                if m < 0 || m >= r as isize {
                    0.0
                } else {
                    vrow[m as usize]
                }
            };
            for x in 0..on {
                oplane[y * on + x] = up1d(&src, &fir.fx, x);
            }
        }
    }
    out
}

/// The 1x1 modulated convolution of ToRGB (no demodulation): `out[o, p] = Σ_c wmod[o, c] ·
/// x[c, p]`, then bias and clamp. `x` is `[cin, hw]`, `out` `[cout, hw]`.
pub(crate) fn torgb(
    x: &[f32],
    cin: usize,
    hw: usize,
    wmod: &[f32],
    cout: usize,
    epi: &Epilogue<'_>,
    out: &mut [f32],
) {
    sgemm(
        cout,
        hw,
        cin,
        out,
        hw,
        wmod,
        cin,
        x,
        hw,
        false,
        Threads::Pool,
    );
    out.par_chunks_mut(hw)
        .enumerate()
        .for_each(|(c, plane)| epi.apply(c, 0, plane));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct (naive) reference: true convolution of the zero-stuffed input with the 3x3 kernel.
    fn transpose_naive(x: &[f32], cin: usize, r: usize, w: &[f32], cout: usize) -> Vec<f32> {
        let tn = 2 * r + 1;
        let mut t = vec![0f32; cout * tn * tn];
        for o in 0..cout {
            for c in 0..cin {
                for i in 0..r {
                    for j in 0..r {
                        for a in 0..3 {
                            for b in 0..3 {
                                t[o * tn * tn + (2 * i + a) * tn + 2 * j + b] +=
                                    x[c * r * r + i * r + j] * w[((o * cin + c) * 3 + a) * 3 + b];
                            }
                        }
                    }
                }
            }
        }
        t
    }

    fn pseudo(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s as f32 / u32::MAX as f32) * 2.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn polyphase_transposed_conv_matches_direct_formula() {
        let (cin, cout, r) = (3, 2, 5);
        let x = pseudo(cin * r * r, 1);
        let w = pseudo(cout * cin * 9, 2);
        let want = transpose_naive(&x, cin, r, &w, cout);
        let mut got = vec![f32::NAN; want.len()];
        let mut pw = Vec::new();
        let mut scratch = ConvScratch::default();
        conv_transpose3x3_s2(&x, cin, r, &w, cout, &mut got, &mut pw, &mut scratch);
        for (a, b) in got.iter().zip(&want) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
    }

    #[test]
    fn conv3x3_matches_direct_formula() {
        let (cin, cout, h, w) = (4, 3, 6, 7);
        let x = pseudo(cin * h * w, 3);
        let wt = pseudo(cout * cin * 9, 4);
        let bias = vec![0.0; cout];
        let epi = Epilogue {
            noise: None,
            bias: &bias,
            act: Act::Linear,
            clamp: None,
        };
        let mut got = vec![f32::NAN; cout * h * w];
        conv3x3(
            &x,
            cin,
            h,
            w,
            &wt,
            cout,
            &mut got,
            &epi,
            &mut ConvScratch::default(),
        );
        for o in 0..cout {
            for i in 0..h as isize {
                for j in 0..w as isize {
                    let mut acc = 0.0f32;
                    for c in 0..cin {
                        for a in 0..3isize {
                            for b in 0..3isize {
                                let (y, xx) = (i + a - 1, j + b - 1);
                                if y >= 0 && y < h as isize && xx >= 0 && xx < w as isize {
                                    acc += x[c * h * w + y as usize * w + xx as usize]
                                        * wt[((o * cin + c) * 3 + a as usize) * 3 + b as usize];
                                }
                            }
                        }
                    }
                    let g = got[o * h * w + i as usize * w + j as usize];
                    assert!((g - acc).abs() < 1e-5, "{g} vs {acc}");
                }
            }
        }
    }

    #[test]
    fn separable_filter_from_upstream_buffer() {
        let a = [1.0f32, 3.0, 3.0, 1.0];
        let mut f = [0f32; 16];
        for y in 0..4 {
            for x in 0..4 {
                f[y * 4 + x] = a[y] * a[x] / 64.0;
            }
        }
        let fir = Fir4::from_2d(&f, 4.0).expect("separable");
        assert_eq!(fir.fy, [0.25, 0.75, 0.75, 0.25]);
        assert_eq!(fir.fx, [0.25, 0.75, 0.75, 0.25]);
        // A non-separable filter is refused.
        let mut g = f;
        g[5] += 0.1;
        assert!(Fir4::from_2d(&g, 4.0).is_none());
    }

    #[test]
    fn upsample2d_of_constant_is_constant_inside() {
        let fir = Fir4 {
            fy: [0.25, 0.75, 0.75, 0.25],
            fx: [0.25, 0.75, 0.75, 0.25],
        };
        let img = vec![1.0f32; 4 * 4];
        let up = upsample2d(&img, 1, 4, &fir);
        // Interior samples see the full filter (sum 1 per axis after the gain).
        for y in 1..7 {
            for x in 1..7 {
                assert_eq!(up[y * 8 + x], 1.0);
            }
        }
        // The first row/column only sees x[0] with weight 0.75 (zero padding before it).
        assert_eq!(up[0], 0.75 * 0.75);
        assert_eq!(up[7], 0.75 * 0.75);
    }
}
