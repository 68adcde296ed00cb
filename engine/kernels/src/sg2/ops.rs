//! CPU kernels of the StyleGAN2 synthesis network: style modulation, the 3x3 modulated
//! convolution (im2col tiles + GEMM), the stride-2 transposed convolution of the upsampling
//! layers in polyphase form, the separable 4-tap FIR resampling and the fused
//! noise/bias/activation/clamp epilogue. Feature maps are one sample's `[C, H, W]`, row-major.

use rayon::prelude::*;

use super::direct;
use super::gemm_f32::sgemm;

/// Runs `$body` compiled with AVX2+FMA when the CPU has them (the crate itself targets
/// baseline x86-64), else as is. `$body` must be `#[inline(always)]` so that it is compiled
/// into the feature-enabled wrapper.
macro_rules! avx2_dispatch {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($arg:ident : $ty:ty),* $(,)?) => $body:ident) => {
        $(#[$m])*
        #[allow(clippy::too_many_arguments)]
        $vis fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[allow(clippy::too_many_arguments)]
                #[target_feature(enable = "avx2,fma")]
                unsafe fn fast($($arg: $ty),*) {
                    $body($($arg),*)
                }
                if crate::simd::has_fma() {
                    // SAFETY: the CPU supports AVX2 and FMA (checked at run time).
                    unsafe { fast($($arg),*) };
                    return;
                }
            }
            $body($($arg),*)
        }
    };
}

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
    #[inline(always)]
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

/// Per-sample weights of a modulated convolution:
/// `out[o, c, k] = weight[o, c, k] · styles[c]`, then with `demodulate` each output channel is
/// scaled by `1/sqrt(Σ_{c,k} out² + 1e-8)`. `weight` is `[cout, cin, kk]`.
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
            let d = demod_coefficient(row, None);
            for v in row.iter_mut() {
                *v *= d;
            }
        }
    });
}

/// `1/sqrt(Σ v² + 1e-8)` of the modulated weights `v` of one output channel: `w` itself, or
/// with `s` the products `w[i] · s[i]` (rounded to f32). The squares are summed in f64, in
/// eight interleaved partial sums: one chain of dependent additions was 2 % of an SG2 1024
/// profile (tens of millions of weights per image), and f64 keeps the result independent of
/// the order to far below f32 precision.
#[inline]
fn demod_coefficient(w: &[f32], s: Option<&[f32]>) -> f32 {
    const L: usize = 8;
    let mut part = [0.0f64; L];
    let n = w.len() / L * L;
    let square = |a: f32| a as f64 * a as f64;
    let mut tail = 0.0f64;
    match s {
        Some(s) => {
            assert_eq!(s.len(), w.len(), "styles per weight");
            for (cw, cs) in w[..n].chunks_exact(L).zip(s[..n].chunks_exact(L)) {
                for l in 0..L {
                    part[l] += square(cw[l] * cs[l]);
                }
            }
            for (&a, &b) in w[n..].iter().zip(&s[n..]) {
                tail += square(a * b);
            }
        }
        None => {
            for cw in w[..n].chunks_exact(L) {
                for l in 0..L {
                    part[l] += square(cw[l]);
                }
            }
            for &a in &w[n..] {
                tail += square(a);
            }
        }
    }
    let sumsq = ((part[0] + part[4]) + (part[1] + part[5]))
        + ((part[2] + part[6]) + (part[3] + part[7]))
        + tail;
    (1.0 / (sumsq + 1e-8).sqrt()) as f32
}

/// The weights of a demodulated 3x3 convolution before modulation: `weight` is
/// `[cout, cin, 3, 3]`, `styles` `[cin]`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ModConv<'a> {
    pub weight: &'a [f32],
    pub styles: &'a [f32],
}

impl ModConv<'_> {
    /// Demodulation coefficients of every output channel (the same arithmetic as
    /// [`modulate`]: products rounded to f32, squares summed in f64).
    fn demod(&self, cout: usize, out: &mut Vec<f32>) {
        let cin = self.styles.len();
        // the style of every weight, so the products run over contiguous vectors
        let s9: Vec<f32> = self.styles.iter().flat_map(|&s| [s; 9]).collect();
        out.clear();
        out.resize(cout, 0.0);
        out.par_iter_mut().enumerate().for_each(|(o, d)| {
            let row = &self.weight[o * cin * 9..(o + 1) * cin * 9];
            *d = demod_coefficient(row, Some(&s9));
        });
    }

    /// The modulated, demodulated weights `[cout, cin, 9]` (the GEMM path's layout).
    fn dense(&self, out: &mut Vec<f32>) {
        modulate(self.weight, self.styles, 9, true, out);
    }

    /// The modulated, demodulated weights in the direct kernel's blocked layout, keeping
    /// kernel positions `kidx` (`out[((ob · cin + c) · ntaps + t) · OB + o]`, zero for channels
    /// past `cout`); `d` from [`ModConv::demod`].
    fn blocked(&self, cout: usize, d: &[f32], kidx: &[usize], out: &mut Vec<f32>) {
        let cin = self.styles.len();
        let nt = kidx.len();
        let ob = direct::OB;
        // Every value is written below (zeros past `cout`), so only a grown part is zeroed
        // first (clearing would zero megabytes per layer).
        out.resize(cout.div_ceil(ob) * cin * nt * ob, 0.0);
        out.par_chunks_mut(cin * nt * ob)
            .enumerate()
            .for_each(|(b, blk)| {
                let valid = ob.min(cout - b * ob);
                // written in layout order: (channel, tap, output)
                for (c, &s) in self.styles.iter().enumerate() {
                    for (t, &ki) in kidx.iter().enumerate() {
                        let dst = &mut blk[(c * nt + t) * ob..(c * nt + t + 1) * ob];
                        for (oi, v) in dst.iter_mut().enumerate() {
                            let o = b * ob + oi;
                            // Same rounding as `modulate`: (w · s), then · d.
                            *v = if oi < valid {
                                self.weight[(o * cin + c) * 9 + ki] * s * d[o]
                            } else {
                                0.0
                            };
                        }
                    }
                }
            });
    }
}

/// Reusable scratch memory of the convolution kernels.
#[derive(Default)]
pub(crate) struct ConvScratch {
    cols: Vec<f32>,
    tile: Vec<f32>,
    /// Blocked weights of the direct kernel (one per transposed-conv phase).
    wblk: [Vec<f32>; 4],
    /// Modulated weights `[cout, cin, 9]` of the GEMM path.
    wmod: Vec<f32>,
    /// Demodulation coefficients.
    demod: Vec<f32>,
    /// The transposed convolution's output phases for one chunk of rows.
    chunk: Vec<f32>,
    /// Force the im2col + GEMM path (to test it against the direct kernel).
    pub(crate) gemm_only: bool,
    /// Force the AVX2 direct kernel on AVX-512 CPUs (to test it there too).
    pub(crate) force_avx2: bool,
    /// Phase rows per chunk of the upsampling convolution (`None`: by size; tests use small
    /// chunks to exercise the chunk seams).
    pub(crate) chunk_rows: Option<usize>,
}

impl ConvScratch {
    /// Whether to use the direct kernel. Measured on a 2-core AVX2 machine it is 1.0-1.1x the
    /// speed of im2col + GEMM at 256-512 input channels and 1.5-4x at 32-128 (where the GEMM's
    /// output dimension is tiny); `gemm` itself uses AVX2 kernels on stable Rust even on
    /// AVX-512 CPUs, so the direct kernel is used for every layer wherever it can run.
    fn direct_isa(&self) -> Option<direct::Isa> {
        if self.gemm_only {
            return None;
        }
        match direct::Isa::best() {
            Some(direct::Isa::Avx512) if self.force_avx2 => Some(direct::Isa::Avx2),
            best => best,
        }
    }
}

/// A multi-tap convolution as im2col tiles + GEMM:
/// `out(o, i, j) = Σ_{c, t} wts[o, c·T + t] · x[c, i + dy_t, j + dx_t]` for output rows
/// `i` in `rows` and `j < out_w`, with zeros outside the `[cin, h, w]` input. Row `i` is stored
/// as row `i - rows.start` of the dense `[cout, rows.len(), out_w]` `dst`, passing through
/// `epi` when given (its noise is indexed by the output pixel `i * out_w + j`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv_taps(
    x: &[f32],
    cin: usize,
    h: usize,
    w: usize,
    taps: &[Tap],
    wts: &[f32],
    cout: usize,
    rows: std::ops::Range<usize>,
    out_w: usize,
    dst: &mut [f32],
    epi: Option<&Epilogue<'_>>,
    scratch: &mut ConvScratch,
) {
    let k = cin * taps.len();
    assert_eq!(x.len(), cin * h * w, "conv input size");
    assert_eq!(wts.len(), cout * k, "conv weight size");
    assert_eq!(dst.len(), cout * rows.len() * out_w, "conv output size");
    if rows.is_empty() || out_w == 0 || cout == 0 {
        return;
    }
    let rows_per_tile = (TILE_FLOATS / (k * out_w).max(1)).clamp(1, rows.len());
    let max_n = rows_per_tile * out_w;
    scratch.cols.resize(k * max_n, 0.0);
    scratch.tile.resize(cout * max_n, 0.0);
    let mut i0 = rows.start;
    while i0 < rows.end {
        let i1 = (i0 + rows_per_tile).min(rows.end);
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
        sgemm(cout, n, k, tile, n, wts, k, cols, n, false);
        // Copy the tile's rows into place, through the epilogue; parallel over channels.
        let local0 = (i0 - rows.start) * out_w;
        let plane = rows.len() * out_w;
        dst.par_chunks_mut(plane)
            .zip(tile.par_chunks_mut(n))
            .enumerate()
            .for_each(|(c, (dplane, vals))| {
                if let Some(e) = epi {
                    apply_epilogue(e, c, i0 * out_w, vals);
                }
                dplane[local0..local0 + n].copy_from_slice(vals);
            });
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

/// The 3x3 "same" modulated convolution (padding 1): `x` is `[cin, h, w]`, `mc` the weights
/// and styles, the result `[cout, h, w]` goes to `dst` through the epilogue.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv3x3(
    x: &[f32],
    cin: usize,
    h: usize,
    w: usize,
    mc: &ModConv<'_>,
    cout: usize,
    dst: &mut [f32],
    epi: &Epilogue<'_>,
    scratch: &mut ConvScratch,
) {
    let taps: [Tap; 9] = std::array::from_fn(|t| Tap {
        dy: (t / 3) as isize - 1,
        dx: (t % 3) as isize - 1,
    });
    if let Some(isa) = scratch.direct_isa() {
        let idx: [usize; 9] = std::array::from_fn(|t| t);
        mc.demod(cout, &mut scratch.demod);
        mc.blocked(cout, &scratch.demod, &idx, &mut scratch.wblk[0]);
        let sub = direct::SubConv {
            taps: &taps,
            wblk: &scratch.wblk[0],
            rows: 0..h,
            out_w: w,
            sink: direct::RowSink::new(dst, cout, h, w),
            epi: Some(epi),
        };
        direct::conv_direct(isa, x, cin, h, w, cout, &[sub]);
        return;
    }
    let mut wmod = std::mem::take(&mut scratch.wmod);
    mc.dense(&mut wmod);
    conv_taps(
        x,
        cin,
        h,
        w,
        &taps,
        &wmod,
        cout,
        0..h,
        w,
        dst,
        Some(epi),
        scratch,
    );
    scratch.wmod = wmod;
}

/// Sizes of the four output phases of the stride-2 transposed convolution of an `r × r`
/// input, in storage order `(py, px)` = (0,0), (0,1), (1,0), (1,1): phase `(py, px)` holds
/// `T[2i + py, 2j + px]`, so it has `r + 1 - py` rows and `r + 1 - px` columns.
pub(crate) fn phase_dims(r: usize) -> [(usize, usize); 4] {
    [(r + 1, r + 1), (r + 1, r), (r, r + 1), (r, r)]
}

/// Which rows of each phase a chunk holds (phase rows `rows`, clipped to each phase), where
/// each phase block (`[cout, rows, cols]`) starts in the chunk buffer, and its total length.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ChunkLayout {
    pub r: usize,
    pub cout: usize,
    /// First phase row held (the same for all four phases).
    pub lo: usize,
    pub rows: [std::ops::Range<usize>; 4],
    pub offs: [usize; 4],
    pub len: usize,
}

impl ChunkLayout {
    pub(crate) fn new(cout: usize, r: usize, rows: std::ops::Range<usize>) -> ChunkLayout {
        let dims = phase_dims(r);
        let mut ranges: [std::ops::Range<usize>; 4] = Default::default();
        let mut offs = [0usize; 4];
        let mut at = 0;
        for k in 0..4 {
            let (h, w) = dims[k];
            let rr = rows.start.min(h)..rows.end.min(h);
            offs[k] = at;
            at += cout * rr.len() * w;
            ranges[k] = rr;
        }
        ChunkLayout {
            r,
            cout,
            lo: rows.start,
            rows: ranges,
            offs,
            len: at,
        }
    }

    /// Channel `c`'s rows of phase `k` (`[rows, cols]`) in `buf`.
    fn plane<'b>(&self, buf: &'b [f32], k: usize, c: usize) -> &'b [f32] {
        let n = self.rows[k].len() * phase_dims(self.r)[k].1;
        &buf[self.offs[k] + c * n..self.offs[k] + (c + 1) * n]
    }
}

/// Phase rows per chunk of [`conv_up`]: the chunk's phases take about 8 MB, so they are
/// still in the last-level cache when the FIR reads them.
fn default_chunk_rows(cout: usize, r: usize) -> usize {
    let per_row = cout * 2 * (2 * r + 1);
    ((2 << 20) / per_row.max(1)).max(8)
}

/// The upsampling convolution (`conv0` of a block) without its noise/bias/activation: the
/// transposed 3x3 convolution with stride 2 (no padding), then the FIR with padding 1 on
/// every side, then `epi`. `x` is `[cin, r, r]`, `mc` the weights and styles (the kernel is
/// used unflipped: a true convolution of the zero-stuffed input), `out` `[cout, 2r, 2r]`.
///
/// The transposed convolution runs in polyphase form: output `T[o, 2i + py, 2j + px]` only
/// gathers the kernel taps of matching parity, so the zeros of the stuffed input are never
/// multiplied. It is computed in chunks of rows whose four phases stay in cache until the FIR
/// turns them into output rows (neighbouring chunks recompute one phase row each).
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv_up(
    x: &[f32],
    cin: usize,
    r: usize,
    mc: &ModConv<'_>,
    cout: usize,
    fir: &Fir4,
    epi: &Epilogue<'_>,
    out: &mut [f32],
    scratch: &mut ConvScratch,
) {
    let on = 2 * r;
    assert_eq!(x.len(), cin * r * r, "upsampling conv input size");
    assert_eq!(out.len(), cout * on * on, "upsampling conv output size");
    if r == 0 || cout == 0 {
        return;
    }
    let weights = PhaseWeights::new(mc, cin, cout, scratch);
    let chunk_rows = scratch
        .chunk_rows
        .unwrap_or_else(|| default_chunk_rows(cout, r))
        .max(1);
    let mut c0 = 0;
    while c0 < r {
        let c1 = (c0 + chunk_rows).min(r);
        // Output rows 2c0..2c1 read T rows 2c0 - 1 ..= 2c1 + 1, i.e. phase rows
        // c0 - 1 ..= c1 (the last even row c1 = r exists only in the even phases).
        let lo = c0.saturating_sub(1);
        let hi = (c1 + 1).min(r + 1);
        let layout = ChunkLayout::new(cout, r, lo..hi);
        let mut chunk = std::mem::take(&mut scratch.chunk);
        if chunk.len() < layout.len {
            chunk.resize(layout.len, 0.0);
        }
        transposed_phases(
            x,
            cin,
            r,
            &weights,
            &layout,
            &mut chunk[..layout.len],
            scratch,
        );
        fir_chunk_epilogue(&chunk[..layout.len], &layout, fir, epi, 2 * c0..2 * c1, out);
        scratch.chunk = chunk;
        c0 = c1;
    }
    weights.give_back(scratch);
}

/// Along one axis of the transposed convolution: `T[2i] = w[0]·x[i] + w[2]·x[i-1]`
/// (i = 0..=r), `T[2i+1] = w[1]·x[i]`, as (kernel index, input offset) per output parity.
fn axis_taps(parity: usize) -> &'static [(usize, isize)] {
    if parity == 0 {
        &[(0, 0), (2, -1)]
    } else {
        &[(1, 0)]
    }
}

/// Taps and kernel positions of the four phases.
fn phase_taps() -> ([Vec<Tap>; 4], [Vec<usize>; 4]) {
    let mut taps: [Vec<Tap>; 4] = Default::default();
    let mut kidx: [Vec<usize>; 4] = Default::default();
    for k in 0..4 {
        let (py, px) = (k / 2, k % 2);
        for &(ky, dy) in axis_taps(py) {
            for &(kx, dx) in axis_taps(px) {
                taps[k].push(Tap { dy, dx });
                kidx[k].push(ky * 3 + kx);
            }
        }
    }
    (taps, kidx)
}

/// The per-sample weights of the four phases, prepared once for all chunks: blocked for the
/// direct kernel, or dense `[cout, cin, taps]` per phase for the GEMM path.
struct PhaseWeights {
    direct: Option<direct::Isa>,
    taps: [Vec<Tap>; 4],
    w: [Vec<f32>; 4],
}

impl PhaseWeights {
    fn new(mc: &ModConv<'_>, cin: usize, cout: usize, scratch: &mut ConvScratch) -> PhaseWeights {
        let (taps, kidx) = phase_taps();
        let direct = scratch.direct_isa();
        let mut w: [Vec<f32>; 4] = std::mem::take(&mut scratch.wblk);
        if direct.is_some() {
            mc.demod(cout, &mut scratch.demod);
            for (kidx, wk) in kidx.iter().zip(w.iter_mut()) {
                mc.blocked(cout, &scratch.demod, kidx, wk);
            }
        } else {
            mc.dense(&mut scratch.wmod);
            for (kidx, wk) in kidx.iter().zip(w.iter_mut()) {
                let nt = kidx.len();
                wk.clear();
                wk.resize(cout * cin * nt, 0.0);
                for (o, prow) in wk.chunks_mut(cin * nt).enumerate() {
                    for c in 0..cin {
                        let src = &scratch.wmod[(o * cin + c) * 9..(o * cin + c + 1) * 9];
                        for (t, &ki) in kidx.iter().enumerate() {
                            prow[c * nt + t] = src[ki];
                        }
                    }
                }
            }
        }
        PhaseWeights { direct, taps, w }
    }

    fn give_back(self, scratch: &mut ConvScratch) {
        scratch.wblk = self.w;
    }
}

/// The four phases of the stride-2 transposed convolution for the phase rows of `layout`,
/// into `dst` (laid out as `layout` says).
fn transposed_phases(
    x: &[f32],
    cin: usize,
    r: usize,
    weights: &PhaseWeights,
    layout: &ChunkLayout,
    dst: &mut [f32],
    scratch: &mut ConvScratch,
) {
    let cout = layout.cout;
    let dims = phase_dims(r);
    // Disjoint output slices of the four phases.
    let offs = layout.offs;
    let (p0, rest) = dst.split_at_mut(offs[1]);
    let (p1, rest) = rest.split_at_mut(offs[2] - offs[1]);
    let (p2, p3) = rest.split_at_mut(offs[3] - offs[2]);
    let dsts = [p0, p1, p2, p3];
    if let Some(isa) = weights.direct {
        let subs: Vec<direct::SubConv<'_>> = dsts
            .into_iter()
            .enumerate()
            .map(|(k, d)| {
                let rows = layout.rows[k].clone();
                let out_w = dims[k].1;
                direct::SubConv {
                    taps: &weights.taps[k],
                    wblk: &weights.w[k],
                    sink: direct::RowSink::new(d, cout, rows.len(), out_w),
                    rows,
                    out_w,
                    epi: None,
                }
            })
            .collect();
        direct::conv_direct(isa, x, cin, r, r, cout, &subs);
        return;
    }
    for (k, d) in dsts.into_iter().enumerate() {
        let rows = layout.rows[k].clone();
        conv_taps(
            x,
            cin,
            r,
            r,
            &weights.taps[k],
            &weights.w[k],
            cout,
            rows,
            dims[k].1,
            d,
            None,
            scratch,
        );
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

/// The FIR step after the transposed convolution (`upfirdn2d` with padding 1 on every side)
/// for output rows `prows`, reading `T` from the phases of a chunk (which must hold every
/// phase row those output rows need); the result passes through the epilogue (noise indexed
/// by output pixel) into rows `prows` of `out` (`[cout, 2r, 2r]`).
fn fir_chunk_epilogue(
    chunk: &[f32],
    layout: &ChunkLayout,
    fir: &Fir4,
    epi: &Epilogue<'_>,
    prows: std::ops::Range<usize>,
    out: &mut [f32],
) {
    let on = 2 * layout.r;
    out.par_chunks_mut(on * on)
        .enumerate()
        .for_each(|(c, oplane)| {
            let planes: [&[f32]; 4] = std::array::from_fn(|k| layout.plane(chunk, k, c));
            fir_chunk_channel(planes, layout, fir, epi, c, prows.clone(), oplane);
        });
}

avx2_dispatch! {
    fn fir_chunk_channel(
        planes: [&[f32]; 4],
        layout: &ChunkLayout,
        fir: &Fir4,
        epi: &Epilogue<'_>,
        c: usize,
        prows: std::ops::Range<usize>,
        oplane: &mut [f32],
    ) => fir_chunk_channel_body
}

/// One channel of [`fir_chunk_epilogue`].
#[inline(always)]
fn fir_chunk_channel_body(
    planes: [&[f32]; 4],
    layout: &ChunkLayout,
    fir: &Fir4,
    epi: &Epilogue<'_>,
    c: usize,
    prows: std::ops::Range<usize>,
    oplane: &mut [f32],
) {
    let r = layout.r;
    let on = 2 * r;
    // Vertically filtered rows of the even (r + 1 wide) and odd (r wide, stored with a zero on
    // both sides) column phases.
    let mut v0 = vec![0f32; r + 1];
    let mut v1 = vec![0f32; r + 2];
    let mut even = vec![0f32; r];
    let mut odd = vec![0f32; r];
    let fy = fir.fy;
    let [f0, f1, f2, f3] = fir.fx;
    for p in prows {
        v0.fill(0.0);
        v1.fill(0.0);
        for (u, &g) in fy.iter().enumerate() {
            // Source row t = p - 1 + u of T: even rows live in phases (0, *), odd in (1, *).
            let t = p as isize - 1 + u as isize;
            if t < 0 || t > on as isize {
                continue;
            }
            let (py, row) = ((t % 2) as usize, (t / 2) as usize);
            let local = row - layout.lo;
            let (w0, w1) = (r + 1, r);
            let src0 = &planes[2 * py][local * w0..(local + 1) * w0];
            let src1 = &planes[2 * py + 1][local * w1..(local + 1) * w1];
            for (a, &b) in v0.iter_mut().zip(src0) {
                *a += g * b;
            }
            for (a, &b) in v1[1..=r].iter_mut().zip(src1) {
                *a += g * b;
            }
        }
        // Horizontal: T' column k is v0[k/2] (k even) or v1[(k-1)/2 + 1] (k odd, padded);
        // out[2n] = f0·T'[2n-1] + f1·T'[2n] + f2·T'[2n+1] + f3·T'[2n+2], out[2n+1] likewise.
        for n in 0..r {
            even[n] = f0 * v1[n] + f1 * v0[n] + f2 * v1[n + 1] + f3 * v0[n + 1];
            odd[n] = f0 * v0[n] + f1 * v1[n + 1] + f2 * v0[n + 1] + f3 * v1[n + 2];
        }
        let orow = &mut oplane[p * on..(p + 1) * on];
        for ((pair, &e), &o) in orow.chunks_exact_mut(2).zip(&even).zip(&odd) {
            pair[0] = e;
            pair[1] = o;
        }
        epi.apply(c, p * on, orow);
    }
}

/// `y += upfirdn2d.upsample2d(img)` (factor 2, padding [2, 1] per axis) for a `[c, r, r]`
/// image and a `[c, 2r, 2r]` `y`, written polyphase: only the non-zero samples of the stuffed
/// input are read (see [`upsample_row_add`]).
pub(crate) fn upsample2d_add(img: &[f32], c: usize, r: usize, fir: &Fir4, y: &mut [f32]) {
    let on = 2 * r;
    assert_eq!(img.len(), c * r * r, "upsample input size");
    assert_eq!(y.len(), c * on * on, "upsample output size");
    y.par_chunks_mut(on * on)
        .zip(img.par_chunks(r * r))
        .for_each(|(oplane, plane)| upsample_rows_add(plane, r, fir, 0, oplane));
}

avx2_dispatch! {
    /// [`upsample_row_add`] for output rows `yy0..` (as many as `dst` holds, `2r` wide).
    fn upsample_rows_add(plane: &[f32], r: usize, fir: &Fir4, yy0: usize, dst: &mut [f32])
        => upsample_rows_add_body
}

#[inline(always)]
fn upsample_rows_add_body(plane: &[f32], r: usize, fir: &Fir4, yy0: usize, dst: &mut [f32]) {
    let mut vtmp = vec![0f32; r + 2];
    for (k, row) in dst.chunks_exact_mut(2 * r).enumerate() {
        upsample_row_add(plane, r, fir, yy0 + k, row, &mut vtmp);
    }
}

/// Adds row `yy` of the upsampled `r × r` `plane` to `dst` (`2r` wide). Along one axis, with
/// `g` the correlation coefficients over the stuffed and padded signal:
/// `u[2m] = g[0]·x[m-1] + g[2]·x[m]`, `u[2m+1] = g[1]·x[m] + g[3]·x[m+1]`. `vtmp` is scratch
/// of `r + 2` values.
#[inline(always)]
fn upsample_row_add(
    plane: &[f32],
    r: usize,
    fir: &Fir4,
    yy: usize,
    dst: &mut [f32],
    vtmp: &mut [f32],
) {
    let g = fir.fy;
    let m = yy / 2;
    // The two source rows and their weights (a missing row contributes nothing).
    let (ra, rb, ga, gb) = if yy.is_multiple_of(2) {
        (m.checked_sub(1), Some(m), g[0], g[2])
    } else {
        (Some(m), Some(m + 1).filter(|&k| k < r), g[1], g[3])
    };
    let row = |k: usize| &plane[k * r..(k + 1) * r];
    // vtmp[k] = vertical value at column k - 1 (zero outside).
    vtmp[0] = 0.0;
    vtmp[r + 1] = 0.0;
    let v = &mut vtmp[1..=r];
    match (ra, rb) {
        (Some(a), Some(b)) => {
            for ((d, &av), &bv) in v.iter_mut().zip(row(a)).zip(row(b)) {
                *d = ga * av + gb * bv;
            }
        }
        (Some(a), None) => {
            for (d, &av) in v.iter_mut().zip(row(a)) {
                *d = ga * av;
            }
        }
        (None, Some(b)) => {
            for (d, &bv) in v.iter_mut().zip(row(b)) {
                *d = gb * bv;
            }
        }
        (None, None) => v.fill(0.0),
    }
    let f = fir.fx;
    for (m, pair) in dst.chunks_exact_mut(2).enumerate() {
        pair[0] += f[0] * vtmp[m] + f[2] * vtmp[m + 1];
        pair[1] += f[1] * vtmp[m + 1] + f[3] * vtmp[m + 2];
    }
}

/// ToRGB: the 1x1 modulated convolution without demodulation, `out[o, p] = Σ_c wmod[o, c] ·
/// x[c, p]`, then bias and clamp (`epi`), then, when `prev` is given, the upsampled previous
/// image (`[cout, res/2, res/2]`, upsampled with the filter) is added. `x` is
/// `[cin, res, res]`, `out` `[cout, res, res]`. Parallel over bands of rows, so each band's
/// input and output stay in cache through all three steps.
#[allow(clippy::too_many_arguments)]
pub(crate) fn torgb_skip(
    x: &[f32],
    cin: usize,
    res: usize,
    wmod: &[f32],
    cout: usize,
    epi: &Epilogue<'_>,
    prev: Option<(&[f32], &Fir4)>,
    out: &mut [f32],
) {
    let hw = res * res;
    assert_eq!(x.len(), cin * hw, "ToRGB input size");
    assert_eq!(wmod.len(), cout * cin, "ToRGB weight size");
    assert_eq!(out.len(), cout * hw, "ToRGB output size");
    let half = res / 2;
    if let Some((p, _)) = prev {
        assert_eq!(p.len(), cout * half * half, "previous image size");
    }
    if hw == 0 || cout == 0 {
        return;
    }
    // Bands of whole rows, about 16k pixels each.
    let band_rows = (16384 / res).clamp(1, res);
    let nbands = res.div_ceil(band_rows);
    // Per band, the output rows of every channel.
    let mut bands: Vec<Vec<&mut [f32]>> = (0..nbands).map(|_| Vec::with_capacity(cout)).collect();
    for plane in out.chunks_mut(hw) {
        for (b, part) in plane.chunks_mut(band_rows * res).enumerate() {
            bands[b].push(part);
        }
    }
    bands.into_par_iter().enumerate().for_each(|(b, mut outs)| {
        torgb_band(x, cin, res, wmod, epi, prev, b * band_rows, &mut outs);
    });
}

avx2_dispatch! {
    fn torgb_band(
        x: &[f32],
        cin: usize,
        res: usize,
        wmod: &[f32],
        epi: &Epilogue<'_>,
        prev: Option<(&[f32], &Fir4)>,
        y0: usize,
        outs: &mut [&mut [f32]],
    ) => torgb_band_body
}

/// One band of [`torgb_skip`]: `outs[o]` are channel `o`'s rows from `y0` on.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn torgb_band_body(
    x: &[f32],
    cin: usize,
    res: usize,
    wmod: &[f32],
    epi: &Epilogue<'_>,
    prev: Option<(&[f32], &Fir4)>,
    y0: usize,
    outs: &mut [&mut [f32]],
) {
    let hw = res * res;
    let p0 = y0 * res;
    let half = res / 2;
    let mut vtmp = vec![0f32; half + 2];
    for (o, dst) in outs.iter_mut().enumerate() {
        let n = dst.len();
        let wrow = &wmod[o * cin..(o + 1) * cin];
        for (c, &wv) in wrow.iter().enumerate() {
            let src = &x[c * hw + p0..c * hw + p0 + n];
            if c == 0 {
                for (d, &s) in dst.iter_mut().zip(src) {
                    *d = wv * s;
                }
            } else {
                for (d, &s) in dst.iter_mut().zip(src) {
                    *d += wv * s;
                }
            }
        }
        epi.apply(o, p0, dst);
        if let Some((img, fir)) = prev {
            let plane = &img[o * half * half..(o + 1) * half * half];
            for (k, row) in dst.chunks_exact_mut(res).enumerate() {
                upsample_row_add(plane, half, fir, y0 + k, row, &mut vtmp);
            }
        }
    }
}

avx2_dispatch! {
    /// [`Epilogue::apply`] compiled for AVX2 where available.
    fn apply_epilogue(epi: &Epilogue<'_>, c: usize, p0: usize, vals: &mut [f32]) => apply_epilogue_body
}

#[inline(always)]
fn apply_epilogue_body(epi: &Epilogue<'_>, c: usize, p0: usize, vals: &mut [f32]) {
    epi.apply(c, p0, vals);
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

    /// Every convolution path: the best direct kernel (where the CPU has one), the AVX2 one on
    /// AVX-512 CPUs, and im2col + GEMM.
    fn both_paths() -> [ConvScratch; 3] {
        [
            ConvScratch::default(),
            ConvScratch {
                force_avx2: true,
                ..ConvScratch::default()
            },
            ConvScratch {
                gemm_only: true,
                ..ConvScratch::default()
            },
        ]
    }

    #[test]
    fn conv3x3_matches_direct_formula() {
        // Widths with full strips of every kernel (16 and 32 pixels), partial strips and the
        // one-pixel tails; odd block counts (the 8-channel AVX-512 kernel pairs blocks of 4),
        // and (30 -> 38) several groups of blocks with a partial last block.
        for (cin, cout, h, w) in [
            (4, 3, 6, 7),
            (6, 9, 5, 50),
            (3, 5, 4, 130),
            (2, 6, 3, 133),
            (30, 38, 5, 70),
        ] {
            let x = pseudo(cin * h * w, 3);
            let raw = pseudo(cout * cin * 9, 4);
            let styles = pseudo(cin, 7);
            let mc = ModConv {
                weight: &raw,
                styles: &styles,
            };
            // Reference weights: modulated and demodulated.
            let mut wt = Vec::new();
            modulate(&raw, &styles, 9, true, &mut wt);
            let bias = pseudo(cout, 5);
            let noise = pseudo(h * w, 6);
            let epi = Epilogue {
                noise: Some(&noise),
                bias: &bias,
                act: Act::Lrelu { gain: 1.5 },
                clamp: Some(0.9),
            };
            for mut scratch in both_paths() {
                let mut got = vec![f32::NAN; cout * h * w];
                conv3x3(&x, cin, h, w, &mc, cout, &mut got, &epi, &mut scratch);
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
                                                * wt[((o * cin + c) * 3 + a as usize) * 3
                                                    + b as usize];
                                        }
                                    }
                                }
                            }
                            let p = i as usize * w + j as usize;
                            let v = acc + noise[p] + bias[o];
                            let v = (if v < 0.0 { 0.2 * v } else { v } * 1.5).clamp(-0.9, 0.9);
                            let g = got[o * h * w + p];
                            assert!((g - v).abs() < 1e-5, "{g} vs {v}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn upsampling_conv_matches_transpose_then_fir() {
        let fir = Fir4 {
            fy: [0.1, 0.7, 0.9, 0.3],
            fx: [0.2, 0.6, 0.8, 0.4],
        };
        for (cin, cout, r) in [(3, 2, 5), (5, 6, 26), (4, 5, 16), (2, 3, 1), (2, 3, 70)] {
            let x = pseudo(cin * r * r, 1);
            let raw = pseudo(cout * cin * 9, 2);
            let styles = pseudo(cin, 8);
            let mc = ModConv {
                weight: &raw,
                styles: &styles,
            };
            let mut w = Vec::new();
            modulate(&raw, &styles, 9, true, &mut w);
            let bias = pseudo(cout, 3);
            let on = 2 * r;
            let noise = pseudo(on * on, 4);
            let epi = Epilogue {
                noise: Some(&noise),
                bias: &bias,
                act: Act::Lrelu { gain: 1.25 },
                clamp: Some(0.8),
            };
            // Reference: the zero-stuffing transposed conv, then y[p][q] =
            // Σ fy[u]·fx[v]·T[p - 1 + u][q - 1 + v] (zero outside), then the epilogue.
            let tn = 2 * r + 1;
            let t = transpose_naive(&x, cin, r, &w, cout);
            let mut want = vec![0f32; cout * on * on];
            for o in 0..cout {
                for p in 0..on {
                    for q in 0..on {
                        let mut acc = 0.0f32;
                        for u in 0..4 {
                            for v in 0..4 {
                                let (ty, tx) = (p + u, q + v);
                                if ty >= 1 && tx >= 1 && ty - 1 < tn && tx - 1 < tn {
                                    acc +=
                                        fir.fy[u] * fir.fx[v] * t[(o * tn + ty - 1) * tn + tx - 1];
                                }
                            }
                        }
                        let v = acc + noise[p * on + q] + bias[o];
                        let v = (if v < 0.0 { 0.2 * v } else { v } * 1.25).clamp(-0.8, 0.8);
                        want[(o * on + p) * on + q] = v;
                    }
                }
            }
            for mut scratch in both_paths() {
                for chunk_rows in [None, Some(1), Some(3)] {
                    scratch.chunk_rows = chunk_rows;
                    let mut got = vec![f32::NAN; cout * on * on];
                    conv_up(&x, cin, r, &mc, cout, &fir, &epi, &mut got, &mut scratch);
                    for (a, b) in got.iter().zip(&want) {
                        assert!(
                            (a - b).abs() < 1e-5,
                            "{a} vs {b} (r {r}, chunk {chunk_rows:?}, gemm {})",
                            scratch.gemm_only
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn demodulated_weights_have_unit_norm_per_output_channel() {
        let (cout, cin) = (3, 5);
        let raw = pseudo(cout * cin * 9, 12);
        let styles = pseudo(cin, 13);
        let mut wm = Vec::new();
        modulate(&raw, &styles, 9, true, &mut wm);
        for o in 0..cout {
            let row = &wm[o * cin * 9..(o + 1) * cin * 9];
            let norm: f64 = row.iter().map(|&v| v as f64 * v as f64).sum();
            assert!((norm - 1.0).abs() < 1e-5, "{norm}");
            // Before demodulation the weight is weight · style.
            let ratio = row[9 + 4] / (raw[(o * cin + 1) * 9 + 4] * styles[1]);
            assert!((ratio - row[0] / (raw[o * cin * 9] * styles[0])).abs() < 1e-4);
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
        let mut up = vec![0.5f32; 8 * 8];
        upsample2d_add(&img, 1, 4, &fir, &mut up);
        // Interior samples see the full filter (sum 1 per axis after the gain).
        for y in 1..7 {
            for x in 1..7 {
                assert_eq!(up[y * 8 + x], 1.5);
            }
        }
        // The first row/column only sees x[0] with weight 0.75 (zero padding before it).
        assert_eq!(up[0], 0.5 + 0.75 * 0.75);
        assert_eq!(up[7], 0.5 + 0.75 * 0.75);
    }

    #[test]
    fn upsample2d_matches_zero_stuffing_definition() {
        let fir = Fir4 {
            fy: [0.1, 0.7, 0.9, 0.3],
            fx: [0.2, 0.6, 0.8, 0.4],
        };
        let (c, r) = (2, 5);
        let img = pseudo(c * r * r, 9);
        let mut got = vec![0f32; c * 4 * r * r];
        upsample2d_add(&img, c, r, &fir, &mut got);
        let on = 2 * r;
        for ch in 0..c {
            for y in 0..on {
                for x in 0..on {
                    // Stuffed signal s[q] = img[q/2] (q even), padded by 2 before:
                    // u[p] = Σ_t g[t]·s[p + t - 2].
                    let mut want = 0.0f32;
                    for ty in 0..4 {
                        for tx in 0..4 {
                            let (qy, qx) = (y as isize + ty - 2, x as isize + tx - 2);
                            if qy < 0 || qx < 0 || qy % 2 != 0 || qx % 2 != 0 {
                                continue;
                            }
                            let (iy, ix) = ((qy / 2) as usize, (qx / 2) as usize);
                            if iy < r && ix < r {
                                want += fir.fy[ty as usize]
                                    * fir.fx[tx as usize]
                                    * img[(ch * r + iy) * r + ix];
                            }
                        }
                    }
                    let g = got[(ch * on + y) * on + x];
                    assert!((g - want).abs() < 1e-6, "{g} vs {want}");
                }
            }
        }
    }
}
