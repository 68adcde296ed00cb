//! Band-limited image transformations used by the StyleGAN3 equivariance metrics ("Alias-Free
//! Generative Adversarial Networks", appendix E): integer translation, fractional translation
//! with a Lanczos (windowed-sinc, `a = 3`) kernel, and rotation with an oriented band-limiting
//! filter followed by bilinear resampling of a 4x upsampled image. Each returns the transformed
//! image and a mask of the pixels that are fully determined by the input (not influenced by the
//! zero padding outside the image).
//!
//! Sizes, paddings and sample positions follow the official metric exactly (they determine which
//! pixels are compared); the arithmetic is done in f64.

use rayon::prelude::*;
use rustfft::num_complex::Complex;
use rustfft::FftPlanner;

/// Errors of the resampling functions.
#[derive(Debug, thiserror::Error)]
pub enum ResampleError {
    #[error("{0}")]
    Invalid(String),
}

/// A stack of same-sized 2-D planes (the `N*C` planes of an `[N,C,H,W]` batch), row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Planes {
    pub count: usize,
    pub height: usize,
    pub width: usize,
    pub data: Vec<f64>,
}

impl Planes {
    /// Zeros.
    pub fn zeros(count: usize, height: usize, width: usize) -> Planes {
        Planes {
            count,
            height,
            width,
            data: vec![0.0; count * height * width],
        }
    }

    /// Wraps f64 values, checking the length.
    pub fn new(
        count: usize,
        height: usize,
        width: usize,
        data: Vec<f64>,
    ) -> Result<Planes, ResampleError> {
        let want = count
            .checked_mul(height)
            .and_then(|v| v.checked_mul(width))
            .ok_or_else(|| ResampleError::Invalid("plane stack size overflows".into()))?;
        if data.len() != want || count == 0 || height == 0 || width == 0 {
            return Err(ResampleError::Invalid(format!(
                "{} values do not form {count} non-empty planes of {height}x{width}",
                data.len()
            )));
        }
        Ok(Planes {
            count,
            height,
            width,
            data,
        })
    }

    /// Converts f32 values (e.g. a generator's `[N,C,H,W]` output with `count = N*C`).
    pub fn from_f32(
        count: usize,
        height: usize,
        width: usize,
        data: &[f32],
    ) -> Result<Planes, ResampleError> {
        Planes::new(
            count,
            height,
            width,
            data.iter().map(|&v| v as f64).collect(),
        )
    }

    fn plane(&self, i: usize) -> &[f64] {
        let n = self.height * self.width;
        &self.data[i * n..(i + 1) * n]
    }

    fn plane_mut(&mut self, i: usize) -> &mut [f64] {
        let n = self.height * self.width;
        &mut self.data[i * n..(i + 1) * n]
    }
}

/// A transformed image and the mask (`height * width`, 0 or 1, shared by all planes) of the
/// pixels that may be compared.
#[derive(Clone, Debug)]
pub struct Masked {
    pub image: Planes,
    pub mask: Vec<f64>,
}

/// `sin(pi x) / (pi x)`, 1 at 0.
pub fn sinc(x: f64) -> f64 {
    let y = (x * std::f64::consts::PI).abs();
    if y < 1e-30 {
        1.0
    } else {
        y.sin() / y
    }
}

/// The Lanczos window: `sinc(x / a)` inside `|x| < a`, else 0.
pub fn lanczos_window(x: f64, a: f64) -> f64 {
    let r = x.abs() / a;
    if r < 1.0 {
        sinc(r)
    } else {
        0.0
    }
}

/// The rotation matrix of the official metric: `[[cos, sin, 0], [-sin, cos, 0], [0, 0, 1]]`.
pub fn rotation_matrix(angle: f64) -> [[f64; 3]; 3] {
    let (s, c) = angle.sin_cos();
    [[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]]
}

fn check_nonempty(x: &Planes) -> Result<(), ResampleError> {
    if x.count == 0 || x.height == 0 || x.width == 0 || x.data.len() != x.count * x.height * x.width
    {
        return Err(ResampleError::Invalid(format!(
            "malformed plane stack: {} values for {} planes of {}x{}",
            x.data.len(),
            x.count,
            x.height,
            x.width
        )));
    }
    Ok(())
}

/// Translation by a whole number of pixels: `tx`, `ty` are fractions of the image width and
/// height, rounded to the nearest pixel. Output pixel `(y, x)` takes input `(y - iy, x - ix)`;
/// pixels with no source are 0 and masked out.
pub fn integer_translation(x: &Planes, tx: f64, ty: f64) -> Result<Masked, ResampleError> {
    check_nonempty(x)?;
    let (h, w) = (x.height as i64, x.width as i64);
    let ix = (tx * w as f64).round_ties_even() as i64;
    let iy = (ty * h as f64).round_ties_even() as i64;
    let mut z = Planes::zeros(x.count, x.height, x.width);
    let mut mask = vec![0.0; x.height * x.width];
    if ix.abs() < w && iy.abs() < h {
        let (y0, y1) = (iy.max(0), h + iy.min(0));
        let (x0, x1) = (ix.max(0), w + ix.min(0));
        for p in 0..x.count {
            let src = x.plane(p);
            let dst = z.plane_mut(p);
            for yy in y0..y1 {
                for xx in x0..x1 {
                    dst[(yy * w + xx) as usize] = src[((yy - iy) * w + (xx - ix)) as usize];
                }
            }
        }
        for yy in y0..y1 {
            for xx in x0..x1 {
                mask[(yy * w + xx) as usize] = 1.0;
            }
        }
    }
    Ok(Masked { image: z, mask })
}

/// Normalised Lanczos taps for a shift by `frac` in [0, 1): taps at offsets `-(a-1)..=a`.
fn lanczos_taps(frac: f64, a: i64) -> Vec<f64> {
    let af = a as f64;
    let taps: Vec<f64> = (-(a - 1)..=a)
        .map(|t| {
            let u = t as f64 - frac;
            sinc(u) * sinc(u / af)
        })
        .collect();
    let s: f64 = taps.iter().sum();
    taps.into_iter().map(|v| v / s).collect()
}

/// Translation by a fractional number of pixels with a separable Lanczos kernel of support
/// `a`: output `(y, x)` is the input interpolated at `(y - ty*H, x - tx*W)` (zero outside).
/// The mask keeps pixels whose whole kernel footprint lies inside the input.
pub fn fractional_translation(
    x: &Planes,
    tx: f64,
    ty: f64,
    a: usize,
) -> Result<Masked, ResampleError> {
    check_nonempty(x)?;
    if a == 0 || a > 64 {
        return Err(ResampleError::Invalid(format!(
            "Lanczos support must be 1..=64 (got {a})"
        )));
    }
    let a = a as i64;
    let b = a - 1;
    let (h, w) = (x.height as i64, x.width as i64);
    let sx = tx * w as f64;
    let sy = ty * h as f64;
    let (ix, iy) = (sx.floor() as i64, sy.floor() as i64);
    let fx_taps = lanczos_taps(sx - ix as f64, a);
    let fy_taps = lanczos_taps(sy - iy as f64, a);
    let mut z = Planes::zeros(x.count, x.height, x.width);
    let mut tmp = vec![0.0; x.height * x.width];
    for p in 0..x.count {
        let src = x.plane(p);
        // Horizontal pass: tmp[y][X] = sum_t w[t] src[y][X - ix - t].
        for yy in 0..h {
            for xx in 0..w {
                let mut acc = 0.0;
                for (k, wt) in fx_taps.iter().enumerate() {
                    let sxi = xx - ix - (k as i64 - b);
                    if (0..w).contains(&sxi) {
                        acc += wt * src[(yy * w + sxi) as usize];
                    }
                }
                tmp[(yy * w + xx) as usize] = acc;
            }
        }
        let dst = z.plane_mut(p);
        for yy in 0..h {
            for xx in 0..w {
                let mut acc = 0.0;
                for (k, wt) in fy_taps.iter().enumerate() {
                    let syi = yy - iy - (k as i64 - b);
                    if (0..h).contains(&syi) {
                        acc += wt * tmp[(syi * w + xx) as usize];
                    }
                }
                dst[(yy * w + xx) as usize] = acc;
            }
        }
    }
    let mut mask = vec![0.0; x.height * x.width];
    let (mx0, mx1) = ((ix + a).max(0), (ix - b).min(0) + w);
    let (my0, my1) = ((iy + a).max(0), (iy - b).min(0) + h);
    for yy in my0..my1.max(my0) {
        for xx in mx0..mx1.max(mx0) {
            mask[(yy * w + xx) as usize] = 1.0;
        }
    }
    Ok(Masked { image: z, mask })
}

/// In-place 2-D complex FFT of an `n x n` grid (forward or inverse, unnormalised).
fn fft2(data: &mut [Complex<f64>], n: usize, inverse: bool) {
    let mut planner = FftPlanner::<f64>::new();
    let fft = if inverse {
        planner.plan_fft_inverse(n)
    } else {
        planner.plan_fft_forward(n)
    };
    let mut scratch = vec![Complex::default(); fft.get_inplace_scratch_len()];
    for row in data.chunks_exact_mut(n) {
        fft.process_with_scratch(row, &mut scratch);
    }
    let mut col = vec![Complex::default(); n];
    for c in 0..n {
        for r in 0..n {
            col[r] = data[r * n + c];
        }
        fft.process_with_scratch(&mut col, &mut scratch);
        for r in 0..n {
            data[r * n + c] = col[r];
        }
    }
}

/// Circular convolution of two real `n x n` grids, via FFT.
fn circular_convolve(a: &[f64], b: &[f64], n: usize) -> Vec<f64> {
    let mut fa: Vec<Complex<f64>> = a.iter().map(|&v| Complex::new(v, 0.0)).collect();
    let mut fb: Vec<Complex<f64>> = b.iter().map(|&v| Complex::new(v, 0.0)).collect();
    fft2(&mut fa, n, false);
    fft2(&mut fb, n, false);
    fa.iter_mut().zip(&fb).for_each(|(x, y)| *x *= y);
    fft2(&mut fa, n, true);
    let k = 1.0 / (n * n) as f64;
    fa.iter().map(|v| v.re * k).collect()
}

/// A square 2-D FIR filter (odd size), row-major, rows along y.
#[derive(Clone, Debug)]
pub struct Filter2d {
    pub size: usize,
    pub taps: Vec<f64>,
}

/// The oriented low-pass filter of the official metric that band-limits both the input and the
/// output of the affine map `mat` (its 2x2 part is used): the product of the convolution of two
/// oriented sinc pairs (cutoffs `cutoff_in`, `cutoff_out`) and the convolution of two oriented
/// Lanczos windows of support `a`, evaluated on a grid of spacing `1/up` within `+-aflt`, cropped
/// to `+-amax` and normalised so each of the `up x up` polyphase components sums to `1/up^2`.
/// The result has `2 * amax * up - 1` taps per side.
pub fn affine_bandlimit_filter(
    mat: &[[f64; 3]; 3],
    a: usize,
    amax: usize,
    aflt: usize,
    up: usize,
    cutoff_in: f64,
    cutoff_out: f64,
) -> Result<Filter2d, ResampleError> {
    if !(a >= 1 && a <= amax && amax < aflt && up >= 1 && aflt * up <= 1024) {
        return Err(ResampleError::Invalid(format!(
            "filter needs 1 <= a <= amax < aflt and aflt*up <= 1024 (a={a}, amax={amax}, aflt={aflt}, up={up})"
        )));
    }
    let n = aflt * up * 2 - 1;
    // Tap positions in FFT order: index j is at j/up for j <= n/2, (j - n)/up above.
    let taps: Vec<f64> = (0..n)
        .map(|j| {
            if j < aflt * up {
                j as f64 / up as f64
            } else {
                (j as f64 - n as f64) / up as f64
            }
        })
        .collect();
    let (m00, m01, m10, m11) = (mat[0][0], mat[0][1], mat[1][0], mat[1][1]);
    let af = a as f64;
    let mut fi = vec![0.0; n * n];
    let mut fo = vec![0.0; n * n];
    let mut wi = vec![0.0; n * n];
    let mut wo = vec![0.0; n * n];
    for (r, &yi) in taps.iter().enumerate() {
        for (c, &xi) in taps.iter().enumerate() {
            let xo = m00 * xi + m01 * yi;
            let yo = m10 * xi + m11 * yi;
            let k = r * n + c;
            fi[k] = sinc(xi * cutoff_in) * sinc(yi * cutoff_in);
            fo[k] = sinc(xo * cutoff_out) * sinc(yo * cutoff_out);
            wi[k] = lanczos_window(xi, af) * lanczos_window(yi, af);
            wo[k] = lanczos_window(xo, af) * lanczos_window(yo, af);
        }
    }
    let f = circular_convolve(&fi, &fo, n);
    let wv = circular_convolve(&wi, &wo, n);
    // Crop lags -(amax*up-1)..=(amax*up-1), pad to 2*amax*up, normalise polyphase components.
    let half = amax * up - 1;
    let full = 2 * amax * up;
    let mut g = vec![0.0; full * full];
    for i in 0..full - 1 {
        let li = (i as i64 - half as i64).rem_euclid(n as i64) as usize;
        for j in 0..full - 1 {
            let lj = (j as i64 - half as i64).rem_euclid(n as i64) as usize;
            g[i * full + j] = f[li * n + lj] * wv[li * n + lj];
        }
    }
    for p in 0..up {
        for q in 0..up {
            let mut s = 0.0;
            for ai in 0..2 * amax {
                for bi in 0..2 * amax {
                    s += g[(ai * up + p) * full + bi * up + q];
                }
            }
            let k = 1.0 / (s * (up * up) as f64);
            for ai in 0..2 * amax {
                for bi in 0..2 * amax {
                    g[(ai * up + p) * full + bi * up + q] *= k;
                }
            }
        }
    }
    let size = full - 1;
    let mut taps_out = Vec::with_capacity(size * size);
    for i in 0..size {
        taps_out.extend_from_slice(&g[i * full..i * full + size]);
    }
    Ok(Filter2d {
        size,
        taps: taps_out,
    })
}

fn invert3(m: &[[f64; 3]; 3]) -> Result<[[f64; 3]; 3], ResampleError> {
    let det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
        - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
    if !(det.abs() > 1e-12 && det.is_finite()) {
        return Err(ResampleError::Invalid(format!(
            "transformation matrix is singular (det {det})"
        )));
    }
    let d = 1.0 / det;
    let mut r = [[0.0; 3]; 3];
    for (i, row) in r.iter_mut().enumerate() {
        for (j, v) in row.iter_mut().enumerate() {
            // Cofactor of (j, i) for the adjugate.
            let (a0, a1) = ((j + 1) % 3, (j + 2) % 3);
            let (b0, b1) = ((i + 1) % 3, (i + 2) % 3);
            *v = (m[a0][b0] * m[a1][b1] - m[a0][b1] * m[a1][b0]) * d;
        }
    }
    Ok(r)
}

/// Samples of `upfirdn2d.upsample2d(x, f, up, pad)` (zero-insertion upsampling by `up`, then the
/// 2-D filter as a true convolution with gain `up^2`, padded by `pad` on every side of the
/// upsampled image), evaluated only where asked: `y[n] = up^2 sum_k f[k] u[n + K - 1 - k - pad0]`
/// with `u[q] = x[q / up]` when `q % up == 0`. Only the taps that meet input pixels are visited.
struct Upsampled<'a> {
    f: &'a Filter2d,
    gain: f64,
    /// For each upsampled row: `(input row, filter row)` pairs.
    rows: Vec<Vec<(usize, usize)>>,
    /// For each upsampled column: `(input column, filter column)` pairs.
    cols: Vec<Vec<(usize, usize)>>,
}

impl<'a> Upsampled<'a> {
    fn new(h: usize, w: usize, f: &'a Filter2d, up: usize, pad: usize) -> Upsampled<'a> {
        let k = f.size as i64;
        let upi = up as i64;
        let pad0 = pad as i64 + (k + upi - 1) / 2;
        let contrib = |n: usize, len: usize| -> Vec<(usize, usize)> {
            let base = n as i64 + k - 1 - pad0;
            (0..len as i64)
                .filter_map(|i| {
                    let kk = base - upi * i;
                    (0..k).contains(&kk).then_some((i as usize, kk as usize))
                })
                .collect()
        };
        Upsampled {
            f,
            gain: (up * up) as f64,
            rows: (0..h * up + 2 * pad).map(|n| contrib(n, h)).collect(),
            cols: (0..w * up + 2 * pad).map(|n| contrib(n, w)).collect(),
        }
    }

    /// The upsampled value at `(yy, xx)`; zero outside the upsampled image.
    fn at(&self, src: &[f64], w: usize, yy: i64, xx: i64) -> f64 {
        if yy < 0 || xx < 0 || yy as usize >= self.rows.len() || xx as usize >= self.cols.len() {
            return 0.0;
        }
        let n = self.f.size;
        let mut acc = 0.0;
        for &(iy, ky) in &self.rows[yy as usize] {
            let frow = &self.f.taps[ky * n..(ky + 1) * n];
            let srow = &src[iy * w..(iy + 1) * w];
            for &(ix, kx) in &self.cols[xx as usize] {
                acc += frow[kx] * srow[ix];
            }
        }
        acc * self.gain
    }
}

/// Applies the affine map `mat` (3x3, the official metric's convention) to every plane: the
/// image is upsampled `up` times with the oriented band-limiting filter, then resampled
/// bilinearly at the affine grid (PyTorch `affine_grid` / `grid_sample`, `align_corners=False`,
/// zero padding). The mask is the nearest-neighbour resampling of the region of the upsampled
/// image that lies more than one filter width inside the input.
pub fn affine_transformation(
    x: &Planes,
    mat: &[[f64; 3]; 3],
    up: usize,
    a: usize,
    amax: usize,
) -> Result<Masked, ResampleError> {
    check_nonempty(x)?;
    let f = affine_bandlimit_filter(mat, a, amax, 64, up, 1.0, 1.0)?;
    let p = f.size / 2;
    let (h, w) = (x.height, x.width);
    let (hf, wf) = (h as f64, w as f64);
    let upf = up as f64;
    let mut theta = invert3(mat)?;
    theta[0][2] *= 2.0;
    theta[1][2] *= 2.0;
    theta[0][2] += 1.0 / upf / wf;
    theta[1][2] += 1.0 / upf / hf;
    let sx = wf / (wf + p as f64 / upf * 2.0);
    let sy = hf / (hf + p as f64 / upf * 2.0);
    for v in theta[0].iter_mut() {
        *v *= sx;
    }
    for v in theta[1].iter_mut() {
        *v *= sy;
    }
    let uh = h * up + 2 * p;
    let uw = w * up + 2 * p;
    // Sample positions (in upsampled pixel units) for every output pixel.
    let mut pos = Vec::with_capacity(h * w);
    for i in 0..h {
        let yn = (2 * i + 1) as f64 / hf - 1.0;
        for j in 0..w {
            let xn = (2 * j + 1) as f64 / wf - 1.0;
            let gx = theta[0][0] * xn + theta[0][1] * yn + theta[0][2];
            let gy = theta[1][0] * xn + theta[1][1] * yn + theta[1][2];
            pos.push((
                ((gx + 1.0) * uw as f64 - 1.0) / 2.0,
                ((gy + 1.0) * uh as f64 - 1.0) / 2.0,
            ));
        }
    }
    let upsampled = Upsampled::new(h, w, &f, up, p);
    let mut z = Planes::zeros(x.count, h, w);
    // Planes are independent: one per thread. Bilinear sampling reads four upsampled pixels
    // per output pixel, so only those are computed (not the whole upsampled image).
    z.data
        .par_chunks_mut(h * w)
        .zip(x.data.par_chunks(h * w))
        .for_each(|(dst, src)| {
            let at = |yy: i64, xx: i64| upsampled.at(src, w, yy, xx);
            for (o, &(px, py)) in dst.iter_mut().zip(&pos) {
                let (x0, y0) = (px.floor(), py.floor());
                let (wx, wy) = (px - x0, py - y0);
                let (x0, y0) = (x0 as i64, y0 as i64);
                *o = at(y0, x0) * (1.0 - wx) * (1.0 - wy)
                    + at(y0, x0 + 1) * wx * (1.0 - wy)
                    + at(y0 + 1, x0) * (1.0 - wx) * wy
                    + at(y0 + 1, x0 + 1) * wx * wy;
            }
        });
    let c = 2 * p + 1;
    let mask = pos
        .iter()
        .map(|&(px, py)| {
            let (xn, yn) = (px.round_ties_even(), py.round_ties_even());
            let inside = |v: f64, len: usize| v >= c as f64 && v < (len as f64 - c as f64);
            if inside(xn, uw) && inside(yn, uh) {
                1.0
            } else {
                0.0
            }
        })
        .collect();
    Ok(Masked { image: z, mask })
}

/// Rotation by `angle` radians with the official metric's filter (`a`, `amax = 2a`, 4x
/// upsampling): `affine_transformation(x, rotation_matrix(angle))`.
pub fn fractional_rotation(x: &Planes, angle: f64, a: usize) -> Result<Masked, ResampleError> {
    affine_transformation(x, &rotation_matrix(angle), 4, a, 2 * a)
}

/// Gives the planes the frequency content they would have after rotating by `angle`, without
/// rotating them: filtering with the band-limit filter of `rotation_matrix(-angle)` at the
/// original sampling rate (`up = 1`). The mask drops a filter radius at the border.
pub fn fractional_pseudo_rotation(
    x: &Planes,
    angle: f64,
    a: usize,
) -> Result<Masked, ResampleError> {
    check_nonempty(x)?;
    let f = affine_bandlimit_filter(&rotation_matrix(-angle), a, 2 * a, 64, 1, 1.0, 1.0)?;
    let k = f.size;
    let r = (k / 2) as i64;
    let (h, w) = (x.height as i64, x.width as i64);
    let mut z = Planes::zeros(x.count, x.height, x.width);
    for pl in 0..x.count {
        let src = x.plane(pl);
        let dst = z.plane_mut(pl);
        // y[n] = sum_k f[k] x[n + r - k] (true convolution, same size).
        for yy in 0..h {
            for xx in 0..w {
                let mut acc = 0.0;
                for ky in 0..k as i64 {
                    let sy = yy + r - ky;
                    if !(0..h).contains(&sy) {
                        continue;
                    }
                    for kx in 0..k as i64 {
                        let sxx = xx + r - kx;
                        if (0..w).contains(&sxx) {
                            acc += f.taps[(ky as usize) * k + kx as usize]
                                * src[(sy * w + sxx) as usize];
                        }
                    }
                }
                dst[(yy * w + xx) as usize] = acc;
            }
        }
    }
    let mut mask = vec![0.0; x.height * x.width];
    for yy in r..h - r {
        for xx in r..w - r {
            mask[(yy * w + xx) as usize] = 1.0;
        }
    }
    Ok(Masked { image: z, mask })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::PI;

    /// A smooth band-limited test pattern sampled at pixel centres, shifted by (dx, dy) pixels.
    fn pattern(h: usize, w: usize, dx: f64, dy: f64) -> Planes {
        let mut d = Vec::with_capacity(h * w);
        for y in 0..h {
            for x in 0..w {
                let (u, v) = (x as f64 - dx, y as f64 - dy);
                d.push(
                    0.5 * (2.0 * PI * 0.05 * u + 0.3).sin()
                        + 0.3 * (2.0 * PI * (0.04 * u + 0.07 * v)).cos(),
                );
            }
        }
        Planes::new(1, h, w, d).unwrap()
    }

    #[test]
    fn integer_translation_moves_pixels_and_masks_the_gap() {
        let x = Planes::new(1, 3, 4, (0..12).map(|v| v as f64).collect()).unwrap();
        let t = integer_translation(&x, 0.25, -1.0 / 3.0).unwrap();
        // ix = 1, iy = -1: out(y, x) = in(y + 1, x - 1).
        assert_eq!(t.image.data[0], 0.0);
        assert_eq!(t.image.data[1], 4.0);
        assert_eq!(t.image.data[4 + 3], 10.0);
        assert_eq!(&t.mask[..4], &[0.0, 1.0, 1.0, 1.0]);
        assert_eq!(&t.mask[8..], &[0.0; 4]);
    }

    #[test]
    fn fractional_translation_by_whole_pixels_equals_integer_translation() {
        let x = pattern(12, 16, 0.0, 0.0);
        let f = fractional_translation(&x, 3.0 / 16.0, -2.0 / 12.0, 3).unwrap();
        let i = integer_translation(&x, 3.0 / 16.0, -2.0 / 12.0).unwrap();
        for (a, b) in f.image.data.iter().zip(&i.image.data) {
            assert!((a - b).abs() < 1e-12);
        }
        // The fractional mask is the integer one shrunk by the kernel support.
        let ones = f.mask.iter().filter(|&&v| v == 1.0).count();
        // Columns 6..16 (ix + a = 6) and rows 1..8 (iy + a = 1, H + iy - b = 8).
        assert_eq!(ones, 10 * 7);
    }

    #[test]
    fn fractional_translation_interpolates_band_limited_signals() {
        let (h, w) = (24, 24);
        let x = pattern(h, w, 0.0, 0.0);
        let (tx, ty) = (2.37, -1.61);
        let t = fractional_translation(&x, tx / w as f64, ty / h as f64, 3).unwrap();
        let truth = pattern(h, w, tx, ty);
        let mut worst: f64 = 0.0;
        for k in 0..h * w {
            if t.mask[k] == 1.0 {
                worst = worst.max((t.image.data[k] - truth.data[k]).abs());
            }
        }
        // Lanczos-3 is not an ideal interpolator: its passband droops by a few tenths of a
        // percent at these frequencies (a shift in the wrong direction errs by ~0.5).
        assert!(worst < 6e-3, "worst error {worst}");
        assert!(t.mask.contains(&1.0));
    }

    #[test]
    fn bandlimit_filter_phases_are_normalised_and_identity_is_symmetric() {
        let f = affine_bandlimit_filter(&rotation_matrix(0.0), 3, 6, 64, 4, 1.0, 1.0).unwrap();
        assert_eq!(f.size, 47);
        let total: f64 = f.taps.iter().sum();
        // 16 phases each summing to 1/16.
        assert!((total - 1.0).abs() < 1e-9, "sum {total}");
        // The identity filter is symmetric under transposition and point reflection.
        let n = f.size;
        for i in 0..n {
            for j in 0..n {
                let v = f.taps[i * n + j];
                assert!((v - f.taps[j * n + i]).abs() < 1e-12);
                assert!((v - f.taps[(n - 1 - i) * n + (n - 1 - j)]).abs() < 1e-9);
            }
        }
    }

    #[test]
    fn rotation_by_90_degrees_matches_the_rotated_pattern() {
        let n = 32;
        let x = pattern(n, n, 0.0, 0.0);
        let r = fractional_rotation(&x, PI / 2.0, 3).unwrap();
        // rotation_matrix(pi/2) = [[0,1],[-1,0]]; the grid samples input at theta = its inverse
        // [[0,-1],[1,0]] in normalised coordinates: out(u, v) = in(-v, u), i.e. output pixel
        // (y, x) reads input (y', x') = (x, n-1-y).
        let mut worst: f64 = 0.0;
        let mut count = 0;
        for y in 0..n {
            for xx in 0..n {
                if r.mask[y * n + xx] == 1.0 {
                    let want = x.data[xx * n + (n - 1 - y)];
                    worst = worst.max((r.image.data[y * n + xx] - want).abs());
                    count += 1;
                }
            }
        }
        assert!(count > 100, "mask too small: {count}");
        assert!(worst < 0.02, "worst {worst}");
    }

    #[test]
    fn pseudo_rotation_keeps_low_frequencies() {
        let n = 24;
        let x = pattern(n, n, 0.0, 0.0);
        let r = fractional_pseudo_rotation(&x, 0.3, 3).unwrap();
        let mut worst: f64 = 0.0;
        for k in 0..n * n {
            if r.mask[k] == 1.0 {
                worst = worst.max((r.image.data[k] - x.data[k]).abs());
            }
        }
        assert!(worst < 0.02, "worst {worst}");
        assert_eq!(r.mask.iter().filter(|&&m| m == 1.0).count(), 14 * 14);
    }

    fn fixture(name: &str) -> (Vec<usize>, Vec<f64>) {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/equivariance")
            .join(format!("{name}.npy"));
        let a = stylegraph_npy::Array::read(&p).unwrap();
        (a.shape.clone(), a.to_f64().unwrap())
    }

    fn planes(name: &str) -> Planes {
        let (s, d) = fixture(name);
        Planes::new(s[0], s[1], s[2], d).unwrap()
    }

    fn assert_close(got: &[f64], want: &[f64], tol: f64, what: &str) {
        assert_eq!(got.len(), want.len(), "{what}: length");
        let worst = got
            .iter()
            .zip(want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(worst <= tol, "{what}: worst difference {worst}");
    }

    /// Against PyTorch's conv2d / affine_grid / grid_sample / fft (float64), see
    /// `tests/fixtures/equivariance/make.py`.
    #[test]
    fn operators_match_the_torch_reference() {
        let x = planes("input");
        let t = fractional_translation(&x, 0.137, -0.081, 3).unwrap();
        assert_close(
            &t.image.data,
            &fixture("frac").1,
            1e-12,
            "fractional translation",
        );
        assert_close(
            &t.mask,
            &fixture("frac_mask").1,
            0.0,
            "fractional translation mask",
        );
        let f = affine_bandlimit_filter(&rotation_matrix(0.7), 3, 6, 64, 4, 1.0, 1.0).unwrap();
        assert_close(
            &f.taps,
            &fixture("filter_up4").1,
            1e-12,
            "band-limit filter",
        );
        let xs = planes("input_square");
        let r = fractional_rotation(&xs, 0.7, 3).unwrap();
        assert_close(&r.image.data, &fixture("rot").1, 1e-10, "rotation");
        assert_close(&r.mask, &fixture("rot_mask").1, 0.0, "rotation mask");
        assert!(r.mask.contains(&1.0));
        let p = fractional_pseudo_rotation(&xs, 0.7, 3).unwrap();
        assert_close(
            &p.image.data,
            &fixture("pseudo").1,
            1e-12,
            "pseudo-rotation",
        );
        assert_close(
            &p.mask,
            &fixture("pseudo_mask").1,
            0.0,
            "pseudo-rotation mask",
        );
    }

    #[test]
    fn singular_matrices_are_rejected() {
        let x = pattern(8, 8, 0.0, 0.0);
        let m = [[1.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 0.0, 1.0]];
        assert!(affine_transformation(&x, &m, 4, 3, 6).is_err());
    }
}
