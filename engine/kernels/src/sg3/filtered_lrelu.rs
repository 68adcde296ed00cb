//! The filtered leaky ReLU of SG3, fused per tile:
//! `+ bias -> upsample ×U (FIR) -> lrelu·gain, clamp -> FIR -> downsample ×D`.
//!
//! Reference semantics (upstream `_filtered_lrelu_ref` / `upfirdn2d` ref path, per axis): insert
//! U−1 zeros after every sample, pad by `[lo, hi]` (negative = crop), convolve (true
//! convolution) with the up filter scaled by U, apply the nonlinearity, convolve with the down
//! filter, keep every D-th sample from 0. The filters are applied along x first, then y.
//!
//! Here: the upsampling is polyphase (zero-stuffed samples are never multiplied), the
//! down-filter is only evaluated at the kept positions, and everything runs over bands of
//! output rows for one channel at a time, so the ×U intermediate of a whole layer never exists.
//! Memory per worker is a few rows of the upsampled width.

use crate::simd::{deinterleave, dispatch_fma, interleave, weighted_sum, MAX_TAPS};
use crate::worker_scratch::{Buffers, WorkerScratch};

/// Geometry of one axis.
#[derive(Clone, Debug)]
pub(crate) struct AxisPlan {
    /// Length of the conv output along this axis.
    pub n_in: usize,
    pub up: usize,
    /// Up filter, flipped and scaled by `up`: `taps[a] = f[T−1−a]·U`.
    pub up_taps: Vec<f32>,
    /// Padding before the up filter (negative = crop).
    pub pad_lo: i64,
    /// Length after the up filter: `(n_out − 1)·D + down_taps`.
    pub n_tmp: usize,
    pub down: usize,
    pub down_taps: usize,
    pub n_out: usize,
    /// Per up-phase `r`: `(d, tap)` such that tmp sample `q·U + r` gets `tap · in[q − d]`.
    phases: Vec<Vec<(i64, f32)>>,
    /// Left zero margin of the padded input row (≥ every `d`).
    margin_lo: usize,
    /// Length of the padded input row.
    padded_len: usize,
    /// The phases as one tap matrix over the shifts they share: shift `s` is `d = shift_lo +
    /// s`, and `shared_taps[r · shifts + s]` is phase `r`'s tap for it (zero if none).
    shift_lo: i64,
    shifts: usize,
    shared_taps: Vec<f32>,
}

fn ceil_div(a: i64, b: i64) -> i64 {
    -((-a).div_euclid(b))
}

impl AxisPlan {
    /// `up_filter`: the stored 1-D filter (None = identity).
    pub fn new(
        n_in: usize,
        up: usize,
        up_filter: Option<&[f32]>,
        pad_lo: i64,
        down: usize,
        down_taps: usize,
        n_out: usize,
    ) -> AxisPlan {
        let base: Vec<f32> = match up_filter {
            Some(f) => f.to_vec(),
            None => vec![1.0],
        };
        // Upstream scales the filter by gain**(ndim/2) = U (exact for the power-of-two factors).
        let scale = up as f32;
        let up_taps: Vec<f32> = base.iter().rev().map(|&v| v * scale).collect();
        let t = up_taps.len() as i64;
        let u = up as i64;
        let n_tmp = (n_out.max(1) - 1) * down + down_taps;
        let mut phases = Vec::with_capacity(up);
        // The exact range of shifts the phases use: the shared-load passes read one source per
        // shift, so a range widened to include 0 (the crops of the ×4 and last layers have
        // only negative shifts) would multiply whole sources by zero taps.
        let (mut dmin, mut dmax) = (i64::MAX, i64::MIN);
        for r in 0..u {
            // a = lo − r − d·U must lie in [0, T)
            let d_lo = ceil_div(pad_lo - r - t + 1, u);
            let d_hi = (pad_lo - r).div_euclid(u);
            let mut taps = Vec::new();
            for d in d_lo..=d_hi {
                let a = pad_lo - r - d * u;
                if (0..t).contains(&a) {
                    taps.push((d, up_taps[a as usize]));
                    dmin = dmin.min(d);
                    dmax = dmax.max(d);
                }
            }
            phases.push(taps);
        }
        if dmin > dmax {
            // no taps at all (an empty filter): one zero shift
            (dmin, dmax) = (0, 0);
        }
        let shifts = (dmax - dmin + 1) as usize;
        let mut shared_taps = vec![0.0f32; up * shifts];
        for (r, taps) in phases.iter().enumerate() {
            for &(d, tap) in taps {
                shared_taps[r * shifts + (d - dmin) as usize] = tap;
            }
        }
        let q_max = n_tmp.div_ceil(up) as i64;
        let margin_lo = dmax.max(0) as usize;
        let padded_len =
            (margin_lo as i64 + (q_max - dmin.min(0)).max(n_in as i64)).max(0) as usize + 1;
        AxisPlan {
            n_in,
            up,
            up_taps,
            pad_lo,
            n_tmp,
            down,
            down_taps,
            n_out,
            phases,
            margin_lo,
            padded_len,
            shift_lo: dmin,
            shifts,
            shared_taps,
        }
    }

    /// Conv samples `[lo, hi)` that feed tmp sample `m`.
    pub fn in_range(&self, m: usize) -> (usize, usize) {
        let t = self.up_taps.len() as i64;
        let u = self.up as i64;
        let a = m as i64 - self.pad_lo;
        let lo = ceil_div(a, u).max(0);
        let hi = ((a + t - 1).div_euclid(u) + 1).min(self.n_in as i64);
        let lo = lo.min(self.n_in as i64);
        (lo as usize, hi.max(lo) as usize)
    }

    /// Tap weight of conv sample `i` in tmp sample `m` (`i` inside `in_range(m)`).
    fn tap(&self, i: usize, m: usize) -> f32 {
        let a = self.pad_lo + (i * self.up) as i64 - m as i64;
        self.up_taps[a as usize]
    }
}

/// The down filter, flipped (`g[a] = f[T−1−a]`), as correlation taps over kept positions.
#[derive(Clone, Debug)]
pub(crate) enum DownTaps {
    Separable(Vec<f32>),
    /// `[T, T]` row-major.
    Radial(Vec<f32>),
    /// A radial filter whose rows are mirror-symmetric (`g[a][b] = g[a][T−1−b]`, true of the
    /// filters upstream designs): `taps [T][half]` are the first `half = ⌈T/2⌉` columns. An
    /// output then costs `T·half` multiply-adds (plus `half` adds per tmp row) instead of `T²`.
    RadialFolded {
        taps: Vec<f32>,
        half: usize,
    },
}

impl DownTaps {
    /// The down filter for the flipped 2-D taps `g [T, T]`: folded when every row is
    /// mirror-symmetric (exactly, in f32), else the general form.
    pub fn radial(g: Vec<f32>, t: usize) -> DownTaps {
        let symmetric = t > 0
            && g.len() == t * t
            && g.chunks_exact(t)
                .all(|row| (0..t).all(|b| row[b] == row[t - 1 - b]));
        if !symmetric {
            return DownTaps::Radial(g);
        }
        let half = t.div_ceil(2);
        let taps = g
            .chunks_exact(t)
            .flat_map(|row| row[..half].iter().copied())
            .collect();
        DownTaps::RadialFolded { taps, half }
    }
}

/// The nonlinearity between the filters.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Act {
    pub slope: f32,
    pub gain: f32,
    pub clamp: Option<f32>,
}

/// Everything needed to run the filtered lrelu of one layer.
#[derive(Clone, Debug)]
pub(crate) struct Resampler {
    pub x: AxisPlan,
    pub y: AxisPlan,
    pub down: DownTaps,
    pub act: Act,
}

/// Per-worker buffers.
#[derive(Default)]
pub(crate) struct BandScratch {
    /// Separable path: the ring of tmp rows, the vertically down-filtered rows and their
    /// split into the down phases (`padded` and `rows_up` are shared with the radial path).
    ring: Vec<f32>,
    vrows: Vec<f32>,
    yphases: Vec<f32>,
    padded: Vec<f32>,
    phase: Vec<f32>,
    /// Horizontally upsampled conv rows of the band, `n_tmp_x` wide.
    rows_up: Vec<f32>,
    tmp_row: Vec<f32>,
    down_phases: Vec<f32>,
    /// Horizontally down-filtered tmp rows of the band, `n_out_x` wide (separable case); the
    /// current tmp row's pair sums (folded radial case).
    rows_down: Vec<f32>,
}

impl BandScratch {
    const fn new() -> BandScratch {
        BandScratch {
            ring: Vec::new(),
            vrows: Vec::new(),
            yphases: Vec::new(),
            padded: Vec::new(),
            phase: Vec::new(),
            rows_up: Vec::new(),
            tmp_row: Vec::new(),
            down_phases: Vec::new(),
            rows_down: Vec::new(),
        }
    }
}

thread_local! {
    /// Each worker thread's band buffers, kept from band to band and layer to layer: a
    /// scratch per rayon job (`for_each_init`) was 160-320 fresh sets per SG3-T 256 image,
    /// hundreds of KB each for the large maps, paid again in allocation and page faults.
    /// (What a thread keeps is its largest band's rows, under 1 MB for the official
    /// networks; `release_memory` of a network does not free it.)
    static BAND_SCRATCH_LOCAL: std::cell::RefCell<BandScratch> =
        const { std::cell::RefCell::new(BandScratch::new()) };
}

/// The band buffers of every worker, grown alike before each forward.
pub(crate) static BAND_SCRATCH: WorkerScratch<BandScratch> =
    WorkerScratch::new(&BAND_SCRATCH_LOCAL);

/// Runs `f` with this thread's [`BandScratch`]. `f` must not start parallel work.
pub(crate) fn with_band_scratch<T>(f: impl FnOnce(&mut BandScratch) -> T) -> T {
    BAND_SCRATCH.with(f)
}

impl Buffers for BandScratch {
    fn each(&mut self, f: &mut dyn FnMut(usize, &mut Vec<f32>)) {
        let BandScratch {
            ring,
            vrows,
            yphases,
            padded,
            phase,
            rows_up,
            tmp_row,
            down_phases,
            rows_down,
        } = self;
        for (i, v) in [
            ring,
            vrows,
            yphases,
            padded,
            phase,
            rows_up,
            tmp_row,
            down_phases,
            rows_down,
        ]
        .into_iter()
        .enumerate()
        {
            f(i, v);
        }
    }
}

impl Resampler {
    /// Tmp rows `[lo, hi)` needed for output rows `[oy0, oy1)`.
    pub fn tmp_rows(&self, oy0: usize, oy1: usize) -> (usize, usize) {
        (
            oy0 * self.y.down,
            (oy1 - 1) * self.y.down + self.y.down_taps,
        )
    }

    /// Conv rows `[lo, hi)` needed for output rows `[oy0, oy1)`.
    pub fn conv_rows(&self, oy0: usize, oy1: usize) -> (usize, usize) {
        let (m0, m1) = self.tmp_rows(oy0, oy1);
        let lo = self.y.in_range(m0).0;
        let hi = self.y.in_range(m1 - 1).1;
        (lo.min(hi), hi)
    }

    /// Output rows `[oy0, oy1)` of one channel. `conv` holds the channel's conv rows
    /// `[conv_r0, ..)`, `n_in_x` wide; `out` receives `(oy1 − oy0) · n_out_x` values.
    #[allow(clippy::too_many_arguments)]
    pub fn channel_band(
        &self,
        conv: &[f32],
        conv_r0: usize,
        bias: f32,
        oy0: usize,
        oy1: usize,
        out: &mut [f32],
        scratch: &mut BandScratch,
    ) {
        match &self.down {
            DownTaps::Separable(g) => {
                separable_band(self, g, conv, conv_r0, bias, oy0, oy1, out, scratch)
            }
            _ => radial_band(self, conv, conv_r0, bias, oy0, oy1, out, scratch),
        }
    }
}

/// Largest down factor (checked when a layer is built).
pub(crate) const MAX_DOWN: usize = 8;

/// Tmp rows (the phases of one conv row) made in one shared-load pass, at most.
const MAX_GROUP: usize = 4;

/// Output rows per vertical down-filter step: neighbouring output rows share `T − D` of their
/// tmp rows, so two at a time load each tmp row once for both.
const VD_ROWS: usize = 2;

dispatch_fma!(fn separable_band(
    rs: &Resampler,
    g: &[f32],
    conv: &[f32],
    conv_r0: usize,
    bias: f32,
    oy0: usize,
    oy1: usize,
    out: &mut [f32],
    scratch: &mut BandScratch,
) => separable_band_impl);

/// [`Resampler::channel_band`] for a separable down filter `g` (flipped), streaming:
///
/// 1. every conv row of the band, plus bias, is upsampled along x into its `U` phases (one
///    shared-load pass over the padded row: the phases read shifted windows of it); the rows
///    stay in that phase-split layout, which every later step works in elementwise;
/// 2. tmp rows are produced a group of `U` at a time (the y phases of one input position,
///    again one shared-load pass over the conv rows they read), with the nonlinearity
///    applied, into a ring that holds just the rows the next step needs;
/// 3. the vertical down filter makes [`VD_ROWS`] output rows at a time from the ring (full
///    tmp width), then
/// 4. the horizontal down filter makes each output row, reading the down phases of that row
///    (for `U = D` these are the up phases themselves, so nothing is reordered).
///
/// Vertical before horizontal down-filtering: the horizontal pass, whose shifted reads cannot
/// share loads, then runs on `n_out` rows instead of `n_tmp`. Rows start on 64-byte
/// boundaries, so the vertical passes read and write whole aligned vectors.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn separable_band_impl<const FMA: bool>(
    rs: &Resampler,
    g: &[f32],
    conv: &[f32],
    conv_r0: usize,
    bias: f32,
    oy0: usize,
    oy1: usize,
    out: &mut [f32],
    scratch: &mut BandScratch,
) {
    use crate::simd::{weighted_sums, weighted_sums_zip2, LeakyClamp, SHARED_MAX_SRCS};
    let (ax, ay) = (&rs.x, &rs.y);
    let (w_in, w_out) = (ax.n_in, ax.n_out);
    let (ux, uy, dn) = (ax.up, ay.up, ay.down);
    let td = g.len();
    if oy1 <= oy0 || td == 0 {
        return;
    }
    // A tmp row: `ux` phase rows of `pq` values (`qx` of them used), each 64-byte aligned.
    let qx = ax.n_tmp.div_ceil(ux);
    let pq = qx.next_multiple_of(ALIGN);
    let row_len = ux * pq;
    let (i_lo, i_hi) = rs.conv_rows(oy0, oy1);
    let n_rows = i_hi - i_lo;
    let BandScratch {
        padded,
        rows_up,
        ring,
        vrows,
        yphases,
        ..
    } = scratch;
    let mut offs = [0usize; MAX_TAPS + MAX_DOWN];

    // 1. bias + horizontal upsampling into x phases; one extra zero row for rows outside the
    //    image. The padded row is long enough for the phase rows' padding too.
    padded.resize(ax.padded_len + ALIGN, 0.0);
    padded.fill(0.0);
    let rows_up = aligned(rows_up, (n_rows + 1) * row_len);
    let nsx = ax.shifts;
    for (k, o) in offs.iter_mut().enumerate().take(nsx) {
        *o = (ax.margin_lo as i64 - (ax.shift_lo + k as i64)) as usize;
    }
    for (ri, dst) in rows_up.chunks_exact_mut(row_len).enumerate().take(n_rows) {
        let src_row = i_lo + ri - conv_r0;
        let src = &conv[src_row * w_in..(src_row + 1) * w_in];
        for (p, &v) in padded[ax.margin_lo..ax.margin_lo + w_in]
            .iter_mut()
            .zip(src)
        {
            *p = v + bias;
        }
        if ux <= MAX_GROUP {
            let mut it = dst.chunks_exact_mut(pq);
            let mut outs: [&mut [f32]; MAX_GROUP] =
                std::array::from_fn(|_| it.next().unwrap_or_default());
            weighted_sums(&mut outs[..ux], padded, &offs[..nsx], &ax.shared_taps, None);
        } else {
            for (r, phase) in dst.chunks_exact_mut(pq).enumerate() {
                let taps = &ax.shared_taps[r * nsx..(r + 1) * nsx];
                weighted_sums(&mut [phase], padded, &offs[..nsx], taps, None);
            }
        }
    }
    rows_up[n_rows * row_len..].fill(0.0);
    let rows_up: &[f32] = rows_up;
    // offset of conv row `i` in `rows_up` (the zero row outside the band)
    let up_row = |i: i64| -> usize {
        let k = if i >= i_lo as i64 && i < i_hi as i64 {
            (i - i_lo as i64) as usize
        } else {
            n_rows
        };
        k * row_len
    };

    // 2-4. tmp rows through the ring, vertical then horizontal down filter.
    let act = LeakyClamp {
        slope: rs.act.slope,
        gain: rs.act.gain,
        clamp: rs.act.clamp.unwrap_or(f32::INFINITY),
    };
    let (m0, m1) = rs.tmp_rows(oy0, oy1);
    let group = if uy <= MAX_GROUP { uy } else { 1 };
    let cap = (td + dn * (VD_ROWS - 1) + uy).div_ceil(uy) * uy;
    let ring = aligned(ring, cap * row_len);
    // (slack after the last row: the horizontal pass below may read a few values past a
    // phase row for output positions it then drops)
    let vrows = aligned(vrows, VD_ROWS * row_len + ALIGN);

    // The horizontal down filter, set up once for the band. When D divides U (k = U / D),
    // output column k·m + e reads tmp columns U·m + D·e + b, that is up phase (D·e + b) mod U
    // at position m + (D·e + b) div U: the k output phases e are k outputs of one shared-load
    // pass over the up phases, interleaved as they are stored for k = 2, afterwards for k = 4
    // (for U = D, k = 1, the output row itself). Otherwise the row is reordered into its down
    // phases first.
    let kx = if ux % dn == 0 { ux / dn } else { 0 };
    let hs = if kx > 0 { dn * (kx - 1) + td } else { td };
    let by_phases =
        (kx == 1 && hs <= MAX_TAPS + MAX_DOWN) || (matches!(kx, 2 | 4) && hs <= SHARED_MAX_SRCS);
    let mut hoffs = [0usize; MAX_TAPS + MAX_DOWN];
    let mut htaps = [0.0f32; 4 * SHARED_MAX_SRCS];
    // length and stride of one output phase row
    let pw = w_out.div_ceil(kx.max(1));
    let pstride = pw.next_multiple_of(ALIGN);
    if by_phases {
        for (c, o) in hoffs.iter_mut().enumerate().take(hs) {
            *o = (c % ux) * pq + c / ux;
        }
        if kx > 1 {
            for e in 0..kx {
                htaps[e * hs + dn * e..e * hs + dn * e + td].copy_from_slice(g);
            }
            if kx > 2 {
                // (k = 2 stores its phases interleaved, without them)
                yphases.resize(kx * pstride, 0.0);
            }
        }
    }
    // The down phases of one row when they are not the up phases: `yphases[p · py + j]` is
    // tmp column `j·D + p`.
    let py = (ux * qx).div_ceil(dn) + ALIGN;
    if !by_phases {
        yphases.resize(dn * py, 0.0);
        for (b, o) in hoffs.iter_mut().enumerate().take(td) {
            *o = (b % dn) * py + b / dn;
        }
    }
    let nsy = ay.shifts;
    let mut ytaps = [0.0f32; MAX_GROUP * MAX_TAPS];
    let mut vtaps = [0.0f32; VD_ROWS * (MAX_TAPS + MAX_DOWN)];
    let mut next_m = m0;
    for oy in (oy0..oy1).step_by(VD_ROWS) {
        let nr = VD_ROWS.min(oy1 - oy);
        let need = ((oy + nr - 1) * dn + td).min(m1);
        while next_m < need {
            // A whole group of tmp rows (the phases of one position) when the band has it,
            // else one row. Sources in ascending conv row (descending shift).
            let (q, r) = (next_m / uy, next_m % uy);
            let full = group > 1 && r == 0 && next_m + uy <= m1;
            let rows_here = if full { uy } else { 1 };
            for k in 0..nsy {
                let shift = nsy - 1 - k;
                offs[k] = up_row(q as i64 - (ay.shift_lo + shift as i64));
                for j in 0..rows_here {
                    let phase = if full { j } else { r };
                    ytaps[j * nsy + k] = ay.shared_taps[phase * nsy + shift];
                }
            }
            let slot = next_m % cap;
            let rows = &mut ring[slot * row_len..(slot + rows_here) * row_len];
            let mut it = rows.chunks_exact_mut(row_len);
            let mut outs: [&mut [f32]; MAX_GROUP] =
                std::array::from_fn(|_| it.next().unwrap_or_default());
            let taps = &ytaps[..rows_here * nsy];
            weighted_sums(
                &mut outs[..rows_here],
                rows_up,
                &offs[..nsy],
                taps,
                Some(act),
            );
            next_m += rows_here;
        }
        // vertical down filter: output row oy + j reads tmp rows (oy + j)·D + a
        let ns = td + dn * (nr - 1);
        let first_slot = (oy * dn) % cap;
        for (k, o) in offs.iter_mut().enumerate().take(ns) {
            let slot = first_slot + k;
            *o = if slot >= cap { slot - cap } else { slot } * row_len;
        }
        vtaps[..nr * ns].fill(0.0);
        for j in 0..nr {
            vtaps[j * ns + j * dn..j * ns + j * dn + td].copy_from_slice(g);
        }
        {
            let mut it = vrows.chunks_exact_mut(row_len);
            let mut outs: [&mut [f32]; VD_ROWS] =
                std::array::from_fn(|_| it.next().unwrap_or_default());
            weighted_sums(&mut outs[..nr], ring, &offs[..ns], &vtaps[..nr * ns], None);
        }
        // horizontal down filter of each row
        for j in 0..nr {
            let dst = &mut out[(oy + j - oy0) * w_out..(oy + j - oy0 + 1) * w_out];
            if by_phases && kx == 1 {
                let x = &vrows[j * row_len..];
                weighted_sums(&mut [dst], x, &hoffs[..hs], g, None);
                continue;
            }
            if by_phases && kx == 2 {
                // the two output phases straight into the row, interleaved
                let x = &vrows[j * row_len..];
                weighted_sums_zip2(dst, x, &hoffs[..hs], &htaps[..kx * hs]);
                continue;
            }
            if by_phases {
                let x = &vrows[j * row_len..];
                let mut it = yphases.chunks_exact_mut(pstride);
                let mut outs: [&mut [f32]; 4] =
                    std::array::from_fn(|_| it.next().map(|r| &mut r[..pw]).unwrap_or_default());
                weighted_sums(&mut outs[..kx], x, &hoffs[..hs], &htaps[..kx * hs], None);
                interleave(dst, yphases, kx, pstride);
                continue;
            }
            let x = &vrows[j * row_len..(j + 1) * row_len];
            if ux % dn == 0 {
                // down phase p interleaves up phases p, p + D, p + 2D, ...
                let k = ux / dn;
                for (p, dst) in yphases.chunks_exact_mut(py).enumerate() {
                    interleave(&mut dst[..k * qx], &x[p * pq..], k, dn * pq);
                }
            } else {
                for (p, dst) in yphases.chunks_exact_mut(py).enumerate() {
                    for (jj, v) in dst.iter_mut().enumerate() {
                        let col = jj * dn + p;
                        *v = if col < ux * qx {
                            x[(col % ux) * pq + col / ux]
                        } else {
                            0.0
                        };
                    }
                }
            }
            weighted_sums(&mut [dst], yphases, &hoffs[..td], g, None);
        }
    }
}

/// Alignment of the separable path's rows, in f32 values (64 bytes).
const ALIGN: usize = 16;

/// The first `len` values of `buf` from a 64-byte boundary (`buf` grown as needed; values
/// unspecified).
fn aligned(buf: &mut Vec<f32>, len: usize) -> &mut [f32] {
    buf.resize(len + ALIGN, 0.0);
    let off = buf.as_ptr().align_offset(ALIGN * 4).min(ALIGN);
    &mut buf[off..off + len]
}

dispatch_fma!(fn radial_band(
    rs: &Resampler,
    conv: &[f32],
    conv_r0: usize,
    bias: f32,
    oy0: usize,
    oy1: usize,
    out: &mut [f32],
    scratch: &mut BandScratch,
) => radial_band_impl);

/// [`Resampler::channel_band`] for a radial (non-separable) down filter: per tmp row,
/// vertical upsampling and the nonlinearity, then the row's contribution to every output row
/// that uses it.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn radial_band_impl<const FMA: bool>(
    rs: &Resampler,
    conv: &[f32],
    conv_r0: usize,
    bias: f32,
    oy0: usize,
    oy1: usize,
    out: &mut [f32],
    scratch: &mut BandScratch,
) {
    let (ax, ay) = (&rs.x, &rs.y);
    let w_in = ax.n_in;
    let w_tmp = ax.n_tmp;
    let w_out = ax.n_out;
    let (i_lo, i_hi) = rs.conv_rows(oy0, oy1);
    let n_rows = i_hi - i_lo;
    let BandScratch {
        padded,
        phase,
        rows_up,
        tmp_row,
        down_phases,
        rows_down,
        ..
    } = scratch;
    let mut taps = [0.0f32; MAX_TAPS];

    // 1. bias + horizontal polyphase upsampling of the needed conv rows.
    padded.resize(ax.padded_len, 0.0);
    padded.fill(0.0);
    let q_max = w_tmp.div_ceil(ax.up);
    phase.resize(q_max * ax.up, 0.0);
    rows_up.resize(n_rows * w_tmp, 0.0);
    for (ri, dst) in rows_up
        .chunks_exact_mut(w_tmp.max(1))
        .enumerate()
        .take(n_rows)
    {
        let src_row = i_lo + ri - conv_r0;
        let src = &conv[src_row * w_in..(src_row + 1) * w_in];
        for (p, &s) in padded[ax.margin_lo..ax.margin_lo + w_in]
            .iter_mut()
            .zip(src)
        {
            *p = s + bias;
        }
        let padded: &[f32] = padded;
        for (r, phase_taps) in ax.phases.iter().enumerate() {
            let mut srcs: [&[f32]; MAX_TAPS] = [&[]; MAX_TAPS];
            let acc = &mut phase[r * q_max..(r + 1) * q_max];
            let k = phase_taps.len().min(MAX_TAPS);
            for (t, &(d, tap)) in phase_taps.iter().take(k).enumerate() {
                let start = (ax.margin_lo as i64 - d) as usize;
                srcs[t] = &padded[start..start + q_max];
                taps[t] = tap;
            }
            weighted_sum::<FMA, false>(acc, &srcs[..k], &taps[..k]);
        }
        // interleave the phases: tmp column q·U + r
        interleave(dst, phase, ax.up, q_max);
    }

    // 2. per tmp row: vertical upsampling, nonlinearity, horizontal down filter.
    let (m0, m1) = rs.tmp_rows(oy0, oy1);
    let dn = ax.down;
    let ph_len = w_tmp.div_ceil(dn);
    let td = ax.down_taps;
    tmp_row.resize(w_tmp, 0.0);
    down_phases.resize(ph_len * dn, 0.0);
    out.fill(0.0);
    let act = rs.act;
    for m in m0..m1 {
        let row = &mut tmp_row[..w_tmp];
        let mut srcs: [&[f32]; MAX_TAPS] = [&[]; MAX_TAPS];
        let (a0, a1) = ay.in_range(m);
        let k = (a1 - a0).min(MAX_TAPS);
        for (t, i) in (a0..a0 + k).enumerate() {
            srcs[t] = &rows_up[(i - i_lo) * w_tmp..(i - i_lo + 1) * w_tmp];
            taps[t] = ay.tap(i, m);
        }
        weighted_sum::<FMA, false>(row, &srcs[..k], &taps[..k]);
        let mut srcs: [&[f32]; MAX_TAPS] = [&[]; MAX_TAPS];
        // nonlinearity, then the split into D phases (so each down tap is contiguous)
        let (slope, gain, clamp) = (act.slope, act.gain, act.clamp.unwrap_or(f32::INFINITY));
        let f = |v: f32| -> f32 {
            let v = if v < 0.0 { v * slope } else { v };
            (v * gain).clamp(-clamp, clamp)
        };
        for v in row.iter_mut() {
            *v = f(*v);
        }
        let row: &[f32] = row;
        let phases: &[f32] = match dn {
            1 => row,
            _ => {
                deinterleave(down_phases, row, dn, ph_len);
                // a last partial group (w_tmp not a multiple of D)
                for x in (w_tmp / dn) * dn..w_tmp {
                    down_phases[(x % dn) * ph_len + x / dn] = row[x];
                }
                down_phases
            }
        };
        match &rs.down {
            // `channel_band` hands separable filters to `separable_band`.
            DownTaps::Separable(_) => {}
            DownTaps::RadialFolded { taps: gh, half } => {
                // Rows of the filter are mirror-symmetric: fold this tmp row once into `half`
                // pair sums `S_b = P_b + P_{T−1−b}`, which every output row using it shares.
                let half = *half;
                rows_down.resize(half * w_out, 0.0);
                for (b, sb) in rows_down
                    .chunks_exact_mut(w_out.max(1))
                    .enumerate()
                    .take(half)
                {
                    let start = (b % dn) * ph_len + b / dn;
                    let lhs = &phases[start..start + w_out];
                    let b2 = td - 1 - b;
                    if b2 == b {
                        sb.copy_from_slice(lhs);
                    } else {
                        let start2 = (b2 % dn) * ph_len + b2 / dn;
                        let rhs = &phases[start2..start2 + w_out];
                        for ((o, &l), &r) in sb.iter_mut().zip(lhs).zip(rhs) {
                            *o = l + r;
                        }
                    }
                }
                let oy_first = (m + 1).saturating_sub(td).div_ceil(ay.down).max(oy0);
                let oy_last = (m / ay.down).min(oy1 - 1);
                let pairs: &[f32] = rows_down;
                let mut srcs: [&[f32]; MAX_TAPS] = [&[]; MAX_TAPS];
                for (b, src) in srcs.iter_mut().enumerate().take(half) {
                    *src = &pairs[b * w_out..(b + 1) * w_out];
                }
                for oy in oy_first..=oy_last {
                    let a = m - oy * ay.down;
                    let dst = &mut out[(oy - oy0) * w_out..(oy - oy0 + 1) * w_out];
                    weighted_sum::<FMA, true>(dst, &srcs[..half], &gh[a * half..(a + 1) * half]);
                }
            }
            DownTaps::Radial(g2) => {
                // Output rows that use tmp row m: oy·D ≤ m < oy·D + T.
                let oy_first = (m + 1).saturating_sub(td).div_ceil(ay.down).max(oy0);
                let oy_last = (m / ay.down).min(oy1 - 1);
                let k = td.min(MAX_TAPS);
                for (b, tap_slot) in taps.iter_mut().enumerate().take(k) {
                    let start = (b % dn) * ph_len + b / dn;
                    srcs[b] = &phases[start..start + w_out];
                    *tap_slot = 0.0;
                }
                for oy in oy_first..=oy_last {
                    let a = m - oy * ay.down;
                    taps[..k].copy_from_slice(&g2[a * td..a * td + k]);
                    let dst = &mut out[(oy - oy0) * w_out..(oy - oy0 + 1) * w_out];
                    weighted_sum::<FMA, true>(dst, &srcs[..k], &taps[..k]);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_shifts_are_exactly_those_the_phases_use() {
        // Every shift of the shared-load passes is one source row read per output, so a shift
        // no phase has a tap for is wasted work: the range must be exactly the phases'.
        // Includes SG3's geometries: ×2 with 12 taps (pad 9, and the last layers' crop -11)
        // and ×4 with 24 taps (pad -6), which have 6, 6 and 7 shifts.
        for &(up, t, lo, want) in &[
            (2usize, 12usize, 9i64, Some(6usize)),
            (2, 12, -11, Some(6)),
            (4, 24, -6, Some(7)),
            (4, 24, 3, None),
            (3, 7, -20, None),
            (2, 4, 40, None),
            (1, 1, 0, Some(1)),
        ] {
            let f: Vec<f32> = (0..t).map(|i| 1.0 + i as f32).collect();
            let plan = AxisPlan::new(16, up, Some(&f), lo, 2, 12, 8);
            let ds: Vec<i64> = plan.phases.iter().flatten().map(|&(d, _)| d).collect();
            let (lo_d, hi_d) = (*ds.iter().min().unwrap(), *ds.iter().max().unwrap());
            assert_eq!(plan.shift_lo, lo_d, "up {up} pad {lo}");
            assert_eq!(plan.shifts as i64, hi_d - lo_d + 1, "up {up} pad {lo}");
            if let Some(n) = want {
                assert_eq!(plan.shifts, n, "up {up} taps {t} pad {lo}");
            }
            // every shift carries a tap of some phase
            for k in 0..plan.shifts {
                assert!(
                    (0..up).any(|r| plan.shared_taps[r * plan.shifts + k] != 0.0),
                    "up {up} pad {lo}: shift {k} unused"
                );
            }
        }
    }

    #[test]
    fn separable_band_matches_reference_definition() {
        // Asymmetric filters catch flips; several paddings (including crops) and factors.
        let fu: Vec<f32> = (0..8)
            .map(|i| 0.1 + 0.05 * i as f32 * (i % 3) as f32)
            .collect();
        let fd: Vec<f32> = (0..6).map(|i| 0.2 - 0.03 * i as f32).collect();
        // up 1, 3 and 8 cover the down-phase layouts other than U = D and U = 2D, and up
        // factors larger than one shared-load group; 201 -> 200: long rows (vector tails);
        // 23 -> 41 at up 4: two output phases of unequal length over several vectors.
        for &(up, lo, hi, n_in, n_out) in &[
            (2usize, 5i64, 4i64, 9usize, 8usize),
            (4, -3, -6, 9, 8),
            (4, 3, -2, 23, 41),
            (2, -2, -3, 11, 3),
            (2, 5, 4, 41, 40),
            (2, 5, 4, 201, 200),
            (1, 3, 3, 9, 4),
            (3, 4, 4, 5, 6),
            (8, 6, 5, 3, 12),
        ] {
            let fu_taps = &fu[..4 * up.min(2)];
            let total = lo + hi;
            let n_tmp = (n_in * up) as i64 + total - fu_taps.len() as i64 + 1;
            assert_eq!(n_tmp, ((n_out - 1) * 2 + fd.len()) as i64, "test geometry");
            let plan = |n| AxisPlan::new(n, up, Some(fu_taps), lo, 2, fd.len(), n_out);
            let rs = Resampler {
                x: plan(n_in),
                y: plan(n_in),
                down: DownTaps::Separable(fd.iter().rev().copied().collect()),
                act: Act {
                    slope: 0.2,
                    gain: 1.5,
                    clamp: None,
                },
            };
            let conv: Vec<f32> = (0..n_in * n_in)
                .map(|i| ((i * 7919) % 23) as f32 / 7.0 - 1.5)
                .collect();
            let out = two_bands(&rs, &conv, n_in, n_out, n_out / 2);
            // 2-D reference: x pass, then y pass, then the activation, then the down passes.
            let biased: Vec<f32> = conv.iter().map(|v| v + 0.25).collect();
            let up_x: Vec<Vec<f32>> = biased
                .chunks(n_in)
                .map(|row| reference_lin(row, up, fu_taps, lo, hi))
                .collect();
            let w_tmp = up_x[0].len();
            let mut t: Vec<Vec<f32>> = Vec::new();
            for x in 0..w_tmp {
                let col: Vec<f32> = up_x.iter().map(|r| r[x]).collect();
                let c = reference_lin(&col, up, fu_taps, lo, hi);
                if t.is_empty() {
                    t = vec![vec![0.0f32; w_tmp]; c.len()];
                }
                for (yy, v) in c.into_iter().enumerate() {
                    t[yy][x] = if v < 0.0 { v * 0.2 } else { v } * 1.5;
                }
            }
            let down = |x: &[f32]| -> Vec<f32> {
                (0..n_out)
                    .map(|o| {
                        (0..fd.len())
                            .map(|a| x[o * 2 + a] * fd[fd.len() - 1 - a])
                            .sum()
                    })
                    .collect()
            };
            let dx: Vec<Vec<f32>> = t.iter().map(|r| down(r)).collect();
            for ox in 0..n_out {
                let col: Vec<f32> = dx.iter().map(|r| r[ox]).collect();
                for (oy, v) in down(&col).into_iter().enumerate() {
                    let got = out[oy * n_out + ox];
                    assert!(
                        (got - v).abs() < 1e-4,
                        "up {up} lo {lo}: ({oy},{ox}) {got} vs {v}"
                    );
                }
            }
        }
    }

    #[test]
    fn radial_band_matches_direct_2d_filter() {
        // Even and odd T, output split into two bands.
        for &(up, lo, n_in, n_out, td) in &[
            (2usize, 5i64, 9usize, 8usize, 6usize),
            (4, -3, 9, 8, 6),
            (2, 4, 9, 8, 5),
        ] {
            let fu: Vec<f32> = (0..4 * up.min(2)).map(|i| 0.1 + 0.03 * i as f32).collect();
            // No symmetry (general path; catches row/column and flip mix-ups), and rows
            // mirror-symmetric like upstream's filters (folded path).
            for symmetric in [false, true] {
                let g: Vec<f32> = (0..td * td)
                    .map(|i| {
                        let (a, b) = (i / td, i % td);
                        let b = if symmetric { b.min(td - 1 - b) } else { b };
                        0.05 + 0.02 * (a as f32) + 0.07 * (b as f32) * ((a % 3) as f32 - 0.5)
                    })
                    .collect();
                let down = DownTaps::radial(g.clone(), td);
                assert_eq!(matches!(down, DownTaps::RadialFolded { .. }), symmetric);
                let conv: Vec<f32> = (0..n_in * n_in)
                    .map(|i| ((i * 7919) % 23) as f32 / 7.0 - 1.5)
                    .collect();
                let got = {
                    let n_tmp = ((n_in * up) as i64 + 2 * lo - fu.len() as i64 + 1) as usize;
                    let plan = AxisPlan::new(n_in, up, Some(&fu), lo, 2, td, n_out);
                    assert_eq!(plan.n_tmp, (n_out - 1) * 2 + td);
                    assert!(n_tmp >= plan.n_tmp, "test geometry");
                    let rs = Resampler {
                        x: plan.clone(),
                        y: plan,
                        down,
                        act: Act {
                            slope: 0.2,
                            gain: 1.5,
                            clamp: Some(2.5),
                        },
                    };
                    two_bands(&rs, &conv, n_in, n_out, 3)
                };
                // direct 2-D: upsample x then y, activation, then the T×T correlation at stride 2
                let biased: Vec<f32> = conv.iter().map(|v| v + 0.25).collect();
                let up_x: Vec<Vec<f32>> = biased
                    .chunks(n_in)
                    .map(|row| reference_lin(row, up, &fu, lo, lo))
                    .collect();
                let w_tmp = up_x[0].len();
                let mut t: Vec<Vec<f32>> = Vec::new();
                for x in 0..w_tmp {
                    let col: Vec<f32> = up_x.iter().map(|r| r[x]).collect();
                    let c = reference_lin(&col, up, &fu, lo, lo);
                    if t.is_empty() {
                        t = vec![vec![0.0f32; w_tmp]; c.len()];
                    }
                    for (yy, v) in c.into_iter().enumerate() {
                        t[yy][x] = ((if v < 0.0 { v * 0.2 } else { v }) * 1.5).clamp(-2.5, 2.5);
                    }
                }
                for oy in 0..n_out {
                    for ox in 0..n_out {
                        let mut e = 0.0f64;
                        for a in 0..td {
                            for b in 0..td {
                                e += g[a * td + b] as f64 * t[oy * 2 + a][ox * 2 + b] as f64;
                            }
                        }
                        let v = got[oy * n_out + ox];
                        assert!((v as f64 - e).abs() < 1e-4, "({oy},{ox}) {v} vs {e}");
                    }
                }
            }
        }
    }

    /// Output rows `[0, mid)` and `[mid, n_out)` of one channel as two bands (bias 0.25), the
    /// second reading only the conv rows it needs; unwritten values stay NaN.
    fn two_bands(rs: &Resampler, conv: &[f32], n_in: usize, n_out: usize, mid: usize) -> Vec<f32> {
        let mut out = vec![f32::NAN; n_out * n_out];
        let mut scratch = BandScratch::default();
        let (head, tail) = out.split_at_mut(mid * n_out);
        rs.channel_band(conv, 0, 0.25, 0, mid, head, &mut scratch);
        let (r0, _) = rs.conv_rows(mid, n_out);
        rs.channel_band(&conv[r0 * n_in..], r0, 0.25, mid, n_out, tail, &mut scratch);
        out
    }

    /// Linear part of the reference (zero-stuff, pad, convolve with f·U).
    fn reference_lin(y: &[f32], up: usize, fu: &[f32], lo: i64, hi: i64) -> Vec<f32> {
        let mut z = vec![0.0f32; y.len() * up];
        for (i, &v) in y.iter().enumerate() {
            z[i * up] = v;
        }
        let p: Vec<f32> = (0..(z.len() as i64 + lo + hi))
            .map(|j| {
                let s = j - lo;
                if s >= 0 && (s as usize) < z.len() {
                    z[s as usize]
                } else {
                    0.0
                }
            })
            .collect();
        (0..p.len() + 1 - fu.len())
            .map(|m| {
                (0..fu.len())
                    .map(|a| p[m + a] * fu[fu.len() - 1 - a] * up as f32)
                    .sum()
            })
            .collect()
    }
}
