//! Power spectra of images: the average spectrum of StyleGAN3's `avg_spectra` analysis (Kaiser
//! window, whitening with a dataset mean/std, zero padding for frequency-domain interpolation),
//! the dB heatmap and 1-D slices derived from it, and the azimuthally averaged log spectrum used
//! as a feature vector by the spectral synthetic-image detector.
//!
//! Conventions follow the official tool so spectra are comparable with published plots:
//! the DFT is unnormalised (`sum |X|^2 = N * sum |x|^2`), the 1-D window is scaled so the sum of
//! squares of the 2-D window is 1, and the spectrum is averaged over colour channels and images.

use realfft::{RealFftPlanner, RealToComplex};
use rustfft::num_complex::Complex;
use rustfft::{Fft, FftPlanner};
use std::sync::Arc;

/// Errors of the spectrum functions.
#[derive(Debug, thiserror::Error)]
pub enum SpectrumError {
    /// A size or option is out of range.
    #[error("{0}")]
    Invalid(String),
    /// An image does not have the size the accumulator was made for.
    #[error(
        "image is {got_h}x{got_w} with {got_c} channel(s), expected {want}x{want} with {want_c}"
    )]
    ImageSize {
        got_h: usize,
        got_w: usize,
        got_c: usize,
        want: usize,
        want_c: usize,
    },
    /// `finish` was called before any image was added.
    #[error("no images were added")]
    Empty,
}

/// Modified Bessel function of the first kind, order 0 (power series; converges for all x).
pub fn bessel_i0(x: f64) -> f64 {
    let q = x * x / 4.0;
    let mut term = 1.0;
    let mut sum = 1.0;
    let mut k = 1.0;
    while term > sum * 1e-17 {
        term *= q / (k * k);
        sum += term;
        k += 1.0;
    }
    sum
}

/// The symmetric Kaiser window of length `n` (`periodic=False` in PyTorch/NumPy terms):
/// `w[k] = I0(beta * sqrt(1 - (2k/(n-1) - 1)^2)) / I0(beta)`. `beta = 0` is a rectangle.
pub fn kaiser_window(n: usize, beta: f64) -> Vec<f64> {
    if n == 1 {
        return vec![1.0];
    }
    let denom = bessel_i0(beta);
    let half = (n - 1) as f64 / 2.0;
    (0..n)
        .map(|k| {
            let r = (k as f64 - half) / half;
            bessel_i0(beta * (1.0 - r * r).max(0.0).sqrt()) / denom
        })
        .collect()
}

/// Cached FFT plans for 2-D power spectra of real images zero-padded to `size x size`.
pub struct PowerSpectrum2d {
    size: usize,
    row: Arc<dyn RealToComplex<f64>>,
    col: Arc<dyn Fft<f64>>,
    row_in: Vec<f64>,
    row_out: Vec<Complex<f64>>,
    half: Vec<Complex<f64>>,
    col_buf: Vec<Complex<f64>>,
    scratch: Vec<Complex<f64>>,
    real_scratch: Vec<Complex<f64>>,
}

impl PowerSpectrum2d {
    /// Plans transforms of `size x size` (any size >= 1; powers of two are fastest).
    pub fn new(size: usize) -> Result<PowerSpectrum2d, SpectrumError> {
        if size == 0 {
            return Err(SpectrumError::Invalid(
                "spectrum size must be at least 1".into(),
            ));
        }
        let row = RealFftPlanner::<f64>::new().plan_fft_forward(size);
        let col = FftPlanner::<f64>::new().plan_fft_forward(size);
        let half_w = size / 2 + 1;
        let scratch = vec![Complex::default(); col.get_inplace_scratch_len()];
        let real_scratch = vec![Complex::default(); row.get_scratch_len()];
        Ok(PowerSpectrum2d {
            size,
            row_in: row.make_input_vec(),
            row_out: row.make_output_vec(),
            row,
            col,
            half: vec![Complex::default(); size * half_w],
            col_buf: vec![Complex::default(); size],
            scratch,
            real_scratch,
        })
    }

    /// The transform size.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Adds `scale * |DFT(x)|^2` of the `h x w` plane `x` (row-major), zero-padded at the bottom
    /// and right to `size x size`, into `out` (`size * size`, row-major, DC at index 0).
    pub fn accumulate(
        &mut self,
        x: &[f64],
        h: usize,
        w: usize,
        scale: f64,
        out: &mut [f64],
    ) -> Result<(), SpectrumError> {
        let s = self.size;
        if h > s || w > s || x.len() != h * w || out.len() != s * s {
            return Err(SpectrumError::Invalid(format!(
                "plane of {h}x{w} ({} values) does not fit a {s}x{s} spectrum",
                x.len()
            )));
        }
        let half_w = s / 2 + 1;
        // Rows: only the first h rows are non-zero; the others transform to zero.
        self.half.iter_mut().for_each(|v| *v = Complex::default());
        for r in 0..h {
            self.row_in.iter_mut().for_each(|v| *v = 0.0);
            self.row_in[..w].copy_from_slice(&x[r * w..(r + 1) * w]);
            self.row
                .process_with_scratch(&mut self.row_in, &mut self.row_out, &mut self.real_scratch)
                .map_err(|e| SpectrumError::Invalid(format!("FFT failed: {e}")))?;
            self.half[r * half_w..(r + 1) * half_w].copy_from_slice(&self.row_out);
        }
        // Columns of the half spectrum.
        for k in 0..half_w {
            for r in 0..s {
                self.col_buf[r] = self.half[r * half_w + k];
            }
            self.col
                .process_with_scratch(&mut self.col_buf, &mut self.scratch);
            for r in 0..s {
                self.half[r * half_w + k] = self.col_buf[r];
            }
        }
        // Full plane from Hermitian symmetry: X[r][k] = conj(X[-r][-k]).
        for r in 0..s {
            let rr = (s - r) % s;
            for k in 0..s {
                let p = if k < half_w {
                    self.half[r * half_w + k].norm_sqr()
                } else {
                    self.half[rr * half_w + (s - k)].norm_sqr()
                };
                out[r * s + k] += scale * p;
            }
        }
        Ok(())
    }

    /// `|DFT(x)|^2` of one plane, zero-padded to `size x size`.
    pub fn power(&mut self, x: &[f64], h: usize, w: usize) -> Result<Vec<f64>, SpectrumError> {
        let mut out = vec![0.0; self.size * self.size];
        self.accumulate(x, h, w, 1.0, &mut out)?;
        Ok(out)
    }
}

/// Options of the average power spectrum (the official `avg_spectra.py calc` options).
#[derive(Clone, Debug, PartialEq)]
pub struct SpectrumConfig {
    /// Width and height of the (square) images.
    pub image_size: usize,
    /// Frequency-domain interpolation factor: images are zero-padded to `image_size * interp`.
    pub interp: usize,
    /// Kaiser window shape parameter (official default 8).
    pub beta: f64,
    /// Dataset mean of the pixel values (0..255 scale), subtracted before the transform.
    pub mean: f64,
    /// Dataset standard deviation of the pixel values (0..255 scale), divided out.
    pub std: f64,
}

impl SpectrumConfig {
    /// The official defaults (`beta = 8`, `interp = 4`) with the given image size and whitening.
    pub fn new(image_size: usize, mean: f64, std: f64) -> SpectrumConfig {
        SpectrumConfig {
            image_size,
            interp: 4,
            beta: 8.0,
            mean,
            std,
        }
    }
}

/// Accumulates the average power spectrum of many images.
pub struct AvgSpectrum {
    config: SpectrumConfig,
    window: Vec<f64>,
    fft: PowerSpectrum2d,
    sum: Vec<f64>,
    count: usize,
    plane: Vec<f64>,
}

impl AvgSpectrum {
    /// Prepares the window and FFT plans.
    pub fn new(config: SpectrumConfig) -> Result<AvgSpectrum, SpectrumError> {
        let n = config.image_size;
        if n == 0 || config.interp == 0 {
            return Err(SpectrumError::Invalid(
                "image size and interpolation factor must be at least 1".into(),
            ));
        }
        if !(config.std > 0.0 && config.std.is_finite() && config.mean.is_finite()) {
            return Err(SpectrumError::Invalid(format!(
                "std must be positive and finite and mean finite (got mean {}, std {})",
                config.mean, config.std
            )));
        }
        if !(config.beta >= 0.0 && config.beta.is_finite()) {
            return Err(SpectrumError::Invalid(format!(
                "Kaiser beta must be >= 0 (got {})",
                config.beta
            )));
        }
        let s = n
            .checked_mul(config.interp)
            .filter(|&s| s <= 1 << 14)
            .ok_or_else(|| {
                SpectrumError::Invalid(format!(
                    "spectrum size {n} x {} is too large (at most 16384)",
                    config.interp
                ))
            })?;
        let mut window = kaiser_window(n, config.beta);
        let norm = window.iter().map(|v| v * v).sum::<f64>().sqrt();
        window.iter_mut().for_each(|v| *v /= norm);
        Ok(AvgSpectrum {
            fft: PowerSpectrum2d::new(s)?,
            sum: vec![0.0; s * s],
            count: 0,
            plane: vec![0.0; n * n],
            window,
            config,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &SpectrumConfig {
        &self.config
    }

    /// Side of the spectrum (`image_size * interp`).
    pub fn spectrum_size(&self) -> usize {
        self.fft.size()
    }

    /// Images added so far.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Adds one image given as `channels` planes of `image_size^2` values each (CHW order),
    /// on the 0..255 pixel scale. The image's spectrum is the mean over its channels.
    pub fn add_image(
        &mut self,
        pixels: &[f64],
        channels: usize,
        height: usize,
        width: usize,
    ) -> Result<(), SpectrumError> {
        let n = self.config.image_size;
        if height != n || width != n || channels == 0 || pixels.len() != channels * n * n {
            return Err(SpectrumError::ImageSize {
                got_h: height,
                got_w: width,
                got_c: channels,
                want: n,
                want_c: channels.max(1),
            });
        }
        let (mean, std) = (self.config.mean, self.config.std);
        let scale = 1.0 / channels as f64;
        for c in 0..channels {
            let src = &pixels[c * n * n..(c + 1) * n * n];
            for y in 0..n {
                for x in 0..n {
                    self.plane[y * n + x] =
                        (src[y * n + x] - mean) / std * self.window[y] * self.window[x];
                }
            }
            self.fft
                .accumulate(&self.plane, n, n, scale, &mut self.sum)?;
        }
        self.count += 1;
        Ok(())
    }

    /// Adds the spectra accumulated by another accumulator with the same configuration
    /// (for splitting work across threads or shards).
    pub fn merge(&mut self, other: &AvgSpectrum) -> Result<(), SpectrumError> {
        if other.config != self.config {
            return Err(SpectrumError::Invalid(
                "cannot merge spectra computed with different options".into(),
            ));
        }
        self.sum
            .iter_mut()
            .zip(&other.sum)
            .for_each(|(a, b)| *a += b);
        self.count += other.count;
        Ok(())
    }

    /// The average spectrum (`spectrum_size^2`, row-major, DC at index 0).
    pub fn finish(&self) -> Result<Vec<f64>, SpectrumError> {
        if self.count == 0 {
            return Err(SpectrumError::Empty);
        }
        let k = 1.0 / self.count as f64;
        Ok(self.sum.iter().map(|v| v * k).collect())
    }
}

/// Pixel moments over many images (the official `avg_spectra.py stats`): mean and standard
/// deviation of all values, for whitening.
#[derive(Clone, Debug, Default)]
pub struct PixelMoments {
    n: f64,
    sum: f64,
    sum_sq: f64,
}

impl PixelMoments {
    /// Adds values.
    pub fn add(&mut self, values: &[f64]) {
        self.n += values.len() as f64;
        for &v in values {
            self.sum += v;
            self.sum_sq += v * v;
        }
    }
    /// `(mean, std)` (population std), or `None` before any value.
    pub fn mean_std(&self) -> Option<(f64, f64)> {
        if self.n == 0.0 {
            return None;
        }
        let m = self.sum / self.n;
        Some((m, (self.sum_sq / self.n - m * m).max(0.0).sqrt()))
    }
}

/// `out[i] = x[(i - n/2) mod n]` along both axes (`numpy.fft.fftshift` of a square plane).
pub fn fftshift2(x: &[f64], n: usize) -> Vec<f64> {
    let mut out = vec![0.0; n * n];
    let sh = n / 2;
    for r in 0..n {
        let rs = (r + n - sh) % n;
        for c in 0..n {
            out[r * n + c] = x[rs * n + (c + n - sh) % n];
        }
    }
    out
}

/// 1-D Gaussian smoothing along rows (`axis = 1`) or columns of a square plane, with the
/// kernel and edge handling of `scipy.ndimage.gaussian_filter(mode='nearest', truncate=4)`.
fn gaussian_1d(x: &[f64], n: usize, sigma: f64, along_rows: bool) -> Vec<f64> {
    let radius = (4.0 * sigma + 0.5) as isize;
    let mut k: Vec<f64> = (-radius..=radius)
        .map(|i| (-0.5 * (i as f64 / sigma).powi(2)).exp())
        .collect();
    let ks: f64 = k.iter().sum();
    k.iter_mut().for_each(|v| *v /= ks);
    let last = n as isize - 1;
    let mut out = vec![0.0; n * n];
    for a in 0..n {
        for b in 0..n {
            let mut acc = 0.0;
            for (j, w) in k.iter().enumerate() {
                let o = (b as isize + j as isize - radius).clamp(0, last) as usize;
                acc += w * if along_rows {
                    x[a * n + o]
                } else {
                    x[o * n + a]
                };
            }
            if along_rows {
                out[a * n + b] = acc;
            } else {
                out[b * n + a] = acc;
            }
        }
    }
    out
}

/// A spectrum as a centred dB map, as the official heatmap plot shows it.
#[derive(Clone, Debug)]
pub struct Heatmap {
    /// Side of the map (`spectrum_size + 1`: the first row/column repeated at the end so the
    /// map is symmetric about its centre).
    pub size: usize,
    /// Row-major dB values; the centre `(size/2, size/2)` is DC.
    pub db: Vec<f64>,
    /// Image size the spectrum was computed for (frequencies run over +-image_size/2).
    pub image_size: usize,
}

/// Builds the dB heatmap of an average spectrum (`spectrum_size^2` values): `10 log10`, centred
/// with fftshift, wrapped by one row/column, then smoothed with a Gaussian of
/// `sigma = spectrum_size / image_size * smooth` (0 = none). Zero power maps to -300 dB.
pub fn heatmap(
    spectrum: &[f64],
    spectrum_size: usize,
    image_size: usize,
    smooth: f64,
) -> Result<Heatmap, SpectrumError> {
    let s = spectrum_size;
    if s == 0 || spectrum.len() != s * s || image_size == 0 || image_size > s {
        return Err(SpectrumError::Invalid(format!(
            "spectrum of {} values is not {s}x{s} for image size {image_size}",
            spectrum.len()
        )));
    }
    if !(smooth >= 0.0 && smooth.is_finite()) {
        return Err(SpectrumError::Invalid(format!(
            "smoothing must be >= 0 (got {smooth})"
        )));
    }
    let db: Vec<f64> = spectrum
        .iter()
        .map(|&p| 10.0 * p.max(1e-30).log10())
        .collect();
    let shifted = fftshift2(&db, s);
    let m = s + 1;
    let mut map = vec![0.0; m * m];
    for r in 0..m {
        for c in 0..m {
            map[r * m + c] = shifted[(r % s) * s + (c % s)];
        }
    }
    if smooth > 0.0 {
        let sigma = s as f64 / image_size as f64 * smooth;
        map = gaussian_1d(&map, m, sigma, false);
        map = gaussian_1d(&map, m, sigma, true);
    }
    Ok(Heatmap {
        size: m,
        db: map,
        image_size,
    })
}

/// A 1-D profile: frequencies (cycles per image) and dB values.
#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    pub freqs: Vec<f64>,
    pub db: Vec<f64>,
}

impl Heatmap {
    /// The horizontal slice through DC towards +x: frequencies 0..image_size/2.
    pub fn slice_0deg(&self) -> Profile {
        let c = self.size / 2;
        let num = self.size - c;
        Profile {
            freqs: linspace(0.0, self.image_size as f64 / 2.0, num),
            db: (c..self.size).map(|x| self.db[c * self.size + x]).collect(),
        }
    }

    /// The diagonal slice through DC: frequencies 0..image_size/sqrt(2).
    pub fn slice_45deg(&self) -> Profile {
        let c = self.size / 2;
        let num = self.size - c;
        Profile {
            freqs: linspace(0.0, self.image_size as f64 / std::f64::consts::SQRT_2, num),
            db: (c..self.size).map(|i| self.db[i * self.size + i]).collect(),
        }
    }
}

fn linspace(a: f64, b: f64, num: usize) -> Vec<f64> {
    match num {
        0 => Vec::new(),
        1 => vec![a],
        _ => (0..num)
            .map(|i| a + (b - a) * i as f64 / (num - 1) as f64)
            .collect(),
    }
}

/// Azimuthal average of a power spectrum (`size^2`, DC at index 0) in annuli of width one
/// spectrum bin, from DC up to the Nyquist radius (`size/2` bins): power is averaged linearly,
/// then converted to dB. Frequencies are in cycles per image for images of `image_size`.
pub fn radial_profile(
    spectrum: &[f64],
    size: usize,
    image_size: usize,
) -> Result<Profile, SpectrumError> {
    if size == 0 || spectrum.len() != size * size {
        return Err(SpectrumError::Invalid(format!(
            "spectrum of {} values is not {size}x{size}",
            spectrum.len()
        )));
    }
    let nbins = size / 2 + 1;
    let mut sum = vec![0.0; nbins];
    let mut cnt = vec![0usize; nbins];
    let signed = |i: usize| -> f64 {
        if i <= size / 2 {
            i as f64
        } else {
            i as f64 - size as f64
        }
    };
    for r in 0..size {
        let fy = signed(r);
        for c in 0..size {
            let fx = signed(c);
            let b = (fy * fy + fx * fx).sqrt().round() as usize;
            if b < nbins {
                sum[b] += spectrum[r * size + c];
                cnt[b] += 1;
            }
        }
    }
    let scale = image_size as f64 / size as f64;
    Ok(Profile {
        freqs: (0..nbins).map(|b| b as f64 * scale).collect(),
        db: sum
            .iter()
            .zip(&cnt)
            .map(|(s, &n)| 10.0 * (s / n.max(1) as f64).max(1e-30).log10())
            .collect(),
    })
}

/// Azimuthally averaged log power spectrum of one grey plane, as a fixed-length feature vector
/// (after Durall et al. 2020, "Watch your up-convolution"): the unpadded, unwindowed power
/// spectrum in dB (of the image zero-padded to a square), averaged over `bins` equal-width rings
/// from DC to the corner of the spectrum (radius `sqrt(2)/2` cycles per pixel; in normalised
/// frequency, so images of different sizes give comparable features), then min-max normalised
/// to [0, 1] so global contrast does not matter.
pub fn azimuthal_log_features(
    gray: &[f64],
    h: usize,
    w: usize,
    bins: usize,
    fft: &mut Option<PowerSpectrum2d>,
) -> Result<Vec<f64>, SpectrumError> {
    if h < 4 || w < 4 || gray.len() != h * w || bins == 0 {
        return Err(SpectrumError::Invalid(format!(
            "features need an image of at least 4x4 and at least one bin (got {h}x{w}, {} values, {bins} bins)",
            gray.len()
        )));
    }
    let s = h.max(w);
    if fft.as_ref().map(|f| f.size()) != Some(s) {
        *fft = Some(PowerSpectrum2d::new(s)?);
    }
    let plan = fft
        .as_mut()
        .ok_or_else(|| SpectrumError::Invalid("FFT plan missing".into()))?;
    let p = plan.power(gray, h, w)?;
    let signed = |i: usize| -> f64 {
        let v = if i <= s / 2 {
            i as f64
        } else {
            i as f64 - s as f64
        };
        v / s as f64
    };
    // Radius relative to the corner frequency (0.5, 0.5) cycles per pixel.
    let mut sum = vec![0.0; bins];
    let mut cnt = vec![0usize; bins];
    for r in 0..s {
        let fy = signed(r);
        for c in 0..s {
            let fx = signed(c);
            let rad = (fy * fy + fx * fx).sqrt() / std::f64::consts::FRAC_1_SQRT_2;
            let b = ((rad * bins as f64) as usize).min(bins - 1);
            sum[b] += 10.0 * p[r * s + c].max(1e-20).log10();
            cnt[b] += 1;
        }
    }
    // Rings narrower than a frequency bin (small images, many bins) may be empty: fill them
    // from the nearest lower ring.
    let mut feats = Vec::with_capacity(bins);
    let mut last = None;
    for b in 0..bins {
        let v = if cnt[b] > 0 {
            sum[b] / cnt[b] as f64
        } else {
            last.unwrap_or(0.0)
        };
        last = Some(v);
        feats.push(v);
    }
    let lo = feats.iter().cloned().fold(f64::INFINITY, f64::min);
    let hi = feats.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let range = hi - lo;
    Ok(feats
        .into_iter()
        .map(|v| if range > 0.0 { (v - lo) / range } else { 0.0 })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bessel_i0_matches_known_values() {
        // Abramowitz & Stegun table 9.8: I0(1) = 1.2660658778, I0(8) = 427.56411572.
        assert!((bessel_i0(0.0) - 1.0).abs() < 1e-15);
        assert!((bessel_i0(1.0) - 1.266_065_877_752_008).abs() < 1e-12);
        assert!((bessel_i0(8.0) - 427.564_115_721_804_74).abs() < 1e-8);
    }

    #[test]
    fn kaiser_window_is_symmetric_with_unit_peak() {
        let w = kaiser_window(9, 8.0);
        assert!((w[4] - 1.0).abs() < 1e-15);
        for i in 0..9 {
            assert!((w[i] - w[8 - i]).abs() < 1e-15);
        }
        // Endpoints are 1 / I0(beta).
        assert!((w[0] - 1.0 / bessel_i0(8.0)).abs() < 1e-15);
        assert!(kaiser_window(5, 0.0)
            .iter()
            .all(|&v| (v - 1.0).abs() < 1e-15));
    }

    #[test]
    fn sinusoid_lands_in_its_bin_with_its_power() {
        let n = 32;
        let k0 = 5;
        let a = 1.5;
        let mut x = vec![0.0; n * n];
        for r in 0..n {
            for c in 0..n {
                x[r * n + c] = a * (2.0 * std::f64::consts::PI * (k0 * c) as f64 / n as f64).cos();
            }
        }
        let p = PowerSpectrum2d::new(n).unwrap().power(&x, n, n).unwrap();
        // A cosine of amplitude a splits into two bins of amplitude a*N^2/2.
        let peak = (a * (n * n) as f64 / 2.0).powi(2);
        assert!((p[k0] - peak).abs() / peak < 1e-12);
        assert!((p[n - k0] - peak).abs() / peak < 1e-12);
        let rest: f64 = p.iter().sum::<f64>() - p[k0] - p[n - k0];
        assert!(rest < peak * 1e-20, "leakage {rest}");
    }

    #[test]
    fn parseval_holds_with_padding() {
        let (h, w, s) = (7, 5, 12);
        let x: Vec<f64> = (0..h * w)
            .map(|i| ((i * 37 % 11) as f64 - 5.0) * 0.3)
            .collect();
        let p = PowerSpectrum2d::new(s).unwrap().power(&x, h, w).unwrap();
        let energy: f64 = x.iter().map(|v| v * v).sum();
        let total: f64 = p.iter().sum();
        assert!((total - (s * s) as f64 * energy).abs() < 1e-9 * total);
    }

    #[test]
    fn average_spectrum_whitens_windows_and_averages() {
        // beta = 0: rectangular window, each 1-D tap 1/sqrt(n), so the 2-D window is 1/n.
        let n = 16;
        let cfg = SpectrumConfig {
            image_size: n,
            interp: 1,
            beta: 0.0,
            mean: 100.0,
            std: 50.0,
        };
        let mut acc = AvgSpectrum::new(cfg).unwrap();
        let k0 = 3;
        let mut img = vec![0.0; 3 * n * n];
        for c in 0..3 {
            for y in 0..n {
                for x in 0..n {
                    let v = (2.0 * std::f64::consts::PI * (k0 * y) as f64 / n as f64).cos();
                    // Channel c has amplitude 50*(c+1) around the mean.
                    img[c * n * n + y * n + x] = 100.0 + 50.0 * (c + 1) as f64 * v;
                }
            }
        }
        acc.add_image(&img, 3, n, n).unwrap();
        acc.add_image(&img, 3, n, n).unwrap();
        let s = acc.finish().unwrap();
        // Per channel, whitened amplitude (c+1); windowed by 1/n; peak |X| = (c+1)/n * n^2/2.
        let expect: f64 = (1..=3)
            .map(|a| (a as f64 * n as f64 / 2.0).powi(2))
            .sum::<f64>()
            / 3.0;
        assert!((s[k0 * n] - expect).abs() / expect < 1e-12);
        assert!(s[0].abs() < 1e-18);
    }

    #[test]
    fn window_has_unit_energy_so_white_noise_level_is_variance() {
        // For a constant-variance input the expected spectrum level equals the variance
        // because the 2-D window has unit energy; check the exact identity on a delta image:
        // a delta at the centre gives |X|^2 = (v * w_c^2)^2 everywhere.
        let n = 9;
        let cfg = SpectrumConfig {
            image_size: n,
            interp: 2,
            beta: 8.0,
            mean: 0.0,
            std: 1.0,
        };
        let mut acc = AvgSpectrum::new(cfg).unwrap();
        let mut img = vec![0.0; n * n];
        img[4 * n + 4] = 2.0;
        acc.add_image(&img, 1, n, n).unwrap();
        let s = acc.finish().unwrap();
        let w = kaiser_window(n, 8.0);
        let e: f64 = w.iter().map(|v| v * v).sum();
        let wc = w[4] / e.sqrt();
        let expect = (2.0 * wc * wc).powi(2);
        assert!(s.iter().all(|&v| (v - expect).abs() < 1e-12 * expect));
    }

    #[test]
    fn wrong_image_size_is_an_error() {
        let mut acc = AvgSpectrum::new(SpectrumConfig::new(8, 0.0, 1.0)).unwrap();
        assert!(acc.add_image(&[0.0; 3 * 64], 3, 8, 7).is_err());
        assert!(matches!(acc.finish(), Err(SpectrumError::Empty)));
        assert!(AvgSpectrum::new(SpectrumConfig::new(8, 0.0, 0.0)).is_err());
    }

    #[test]
    fn heatmap_centres_dc_and_slices_read_it() {
        let s = 8;
        let mut spec = vec![1.0; s * s];
        spec[0] = 1000.0; // DC: 30 dB
        spec[3] = 10.0; // +3 cycles along x: 10 dB
        let h = heatmap(&spec, s, 8, 0.0).unwrap();
        assert_eq!(h.size, 9);
        let c = 4;
        assert!((h.db[c * 9 + c] - 30.0).abs() < 1e-12);
        assert!((h.db[c * 9 + c + 3] - 10.0).abs() < 1e-12);
        // The wrapped last row/column equals the first.
        for i in 0..9 {
            assert_eq!(h.db[8 * 9 + i], h.db[i]);
            assert_eq!(h.db[i * 9 + 8], h.db[i * 9]);
        }
        let sl = h.slice_0deg();
        assert_eq!(sl.db.len(), 5);
        assert!((sl.db[0] - 30.0).abs() < 1e-12 && (sl.db[3] - 10.0).abs() < 1e-12);
        assert_eq!(sl.freqs, vec![0.0, 1.0, 2.0, 3.0, 4.0]);
        let d = h.slice_45deg();
        assert!((d.db[0] - 30.0).abs() < 1e-12);
        assert!((d.freqs[4] - 8.0 / 2f64.sqrt()).abs() < 1e-12);
    }

    #[test]
    fn heatmap_smoothing_preserves_constant_maps() {
        let s = 16;
        let spec = vec![100.0; s * s];
        let h = heatmap(&spec, s, 4, 1.25).unwrap();
        assert!(h.db.iter().all(|&v| (v - 20.0).abs() < 1e-9));
    }

    #[test]
    fn radial_profile_finds_a_ring() {
        let s = 16;
        let mut spec = vec![1.0; s * s];
        for r in 0..s {
            for c in 0..s {
                let fy = if r <= 8 { r as f64 } else { r as f64 - 16.0 };
                let fx = if c <= 8 { c as f64 } else { c as f64 - 16.0 };
                if ((fy * fy + fx * fx).sqrt().round() as usize) == 5 {
                    spec[r * s + c] = 100.0;
                }
            }
        }
        let p = radial_profile(&spec, s, 4).unwrap();
        assert_eq!(p.db.len(), 9);
        assert!((p.db[5] - 20.0).abs() < 1e-12);
        assert!(p.db[4].abs() < 1e-12 && p.db[6].abs() < 1e-12);
        assert!((p.freqs[8] - 2.0).abs() < 1e-12);
    }

    #[test]
    fn features_are_normalised_and_see_high_frequency_energy() {
        let n = 32;
        let smooth: Vec<f64> = (0..n * n)
            .map(|i| ((i % n) as f64 / n as f64 * std::f64::consts::TAU).sin())
            .collect();
        let mut checker = smooth.clone();
        for (i, v) in checker.iter_mut().enumerate() {
            if (i % n + i / n) % 2 == 0 {
                *v += 0.5;
            }
        }
        let mut plan = None;
        let a = azimuthal_log_features(&smooth, n, n, 16, &mut plan).unwrap();
        let b = azimuthal_log_features(&checker, n, n, 16, &mut plan).unwrap();
        assert_eq!(a.len(), 16);
        for f in [&a, &b] {
            assert!(f.iter().all(|&v| (0.0..=1.0).contains(&v)));
        }
        // The checkerboard puts energy at the Nyquist corner; rings near Nyquist get louder.
        assert!(b[15] > a[15]);
    }
}
