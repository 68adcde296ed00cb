//! The StyleGAN3 equivariance metrics EQ-T (integer translation), EQ-T_frac (fractional
//! translation) and EQ-R (rotation), as defined in "Alias-Free Generative Adversarial Networks"
//! (appendix E) and the official `metrics/equivariance.py`.
//!
//! For each sample the generator renders a reference image with the identity input transform,
//! then again with a transformed input. The reference is transformed in image space with the
//! matching band-limited operator ([`crate::resample`]); the squared difference is summed over
//! the valid-pixel mask. Sums accumulate over all samples, and the metric is the PSNR of the
//! pooled mean squared error with a peak-to-peak range of 2 (images in [-1, 1]):
//! `20 log10(2) - 10 log10(MSE)`. An exactly equivariant generator gives `+inf`.
//!
//! The generator is abstracted as a render callback so this module does not depend on any
//! network: `render(sample, &transform)` must return the images of sample `sample` (the same
//! latents every time it is called with that index) rendered with `transform` as the
//! synthesis network's *input transform* (StyleGAN3's `G.synthesis.input.transform`, which maps
//! output coordinates to input coordinates: a translation of `-t` moves the image content by `+t`
//! image widths; `rotation_matrix(-angle)` rotates the content by `angle`).

use crate::resample::{
    fractional_pseudo_rotation, fractional_rotation, fractional_translation, integer_translation,
    rotation_matrix, Masked, Planes, ResampleError,
};

/// A 3x3 homogeneous 2-D transform, row-major.
pub type Mat3 = [[f64; 3]; 3];

/// The identity transform.
pub const IDENTITY: Mat3 = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];

/// The input transform that translates the image content by `(tx, ty)` image widths/heights.
pub fn translation_input_transform(tx: f64, ty: f64) -> Mat3 {
    [[1.0, 0.0, -tx], [0.0, 1.0, -ty], [0.0, 0.0, 1.0]]
}

/// The input transform that rotates the image content by `angle` radians (official convention).
pub fn rotation_input_transform(angle: f64) -> Mat3 {
    rotation_matrix(-angle)
}

/// Which metrics to compute and how (the official defaults are in [`EqOptions::new`]).
#[derive(Clone, Debug, PartialEq)]
pub struct EqOptions {
    /// Number of samples (latents) to average over (the official metrics use 50 000).
    pub num_samples: usize,
    /// Largest translation, as a fraction of the image size (official 0.125).
    pub translate_max: f64,
    /// Largest rotation, as a fraction of pi (official 1: uniform in [-pi, pi]).
    pub rotate_max: f64,
    /// The generator's output resolution (translations for EQ-T are rounded to whole pixels of it).
    pub resolution: usize,
    /// Compute EQ-T (integer translation).
    pub eqt_int: bool,
    /// Compute EQ-T_frac (fractional translation).
    pub eqt_frac: bool,
    /// Compute EQ-R (rotation).
    pub eqr: bool,
}

impl EqOptions {
    /// All three metrics with the official ranges.
    pub fn new(num_samples: usize, resolution: usize) -> EqOptions {
        EqOptions {
            num_samples,
            translate_max: 0.125,
            rotate_max: 1.0,
            resolution,
            eqt_int: true,
            eqt_frac: true,
            eqr: true,
        }
    }
}

/// Pooled squared error and mask weight of one metric.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct EqSums {
    /// Sum over samples, planes and pixels of `mask * (ref - img)^2`.
    pub squared_error: f64,
    /// Sum over samples, planes and pixels of the mask.
    pub weight: f64,
}

impl EqSums {
    /// Adds the masked squared difference of two plane stacks.
    pub fn add(
        &mut self,
        reference: &Planes,
        image: &Planes,
        mask: &[f64],
    ) -> Result<(), ResampleError> {
        let hw = reference.height * reference.width;
        if reference.count != image.count
            || reference.height != image.height
            || reference.width != image.width
            || mask.len() != hw
            || reference.data.len() != reference.count * hw
            || image.data.len() != reference.data.len()
        {
            return Err(ResampleError::Invalid(format!(
                "cannot compare images of {}x{}x{} and {}x{}x{} with a mask of {} pixels",
                reference.count,
                reference.height,
                reference.width,
                image.count,
                image.height,
                image.width,
                mask.len()
            )));
        }
        let mask_sum: f64 = mask.iter().sum();
        self.weight += mask_sum * reference.count as f64;
        for (r, i) in reference
            .data
            .chunks_exact(hw)
            .zip(image.data.chunks_exact(hw))
        {
            for ((a, b), m) in r.iter().zip(i).zip(mask) {
                let d = a - b;
                self.squared_error += d * d * m;
            }
        }
        Ok(())
    }

    /// Mean squared error over the masked pixels (NaN when nothing was compared).
    pub fn mse(&self) -> f64 {
        self.squared_error / self.weight
    }

    /// PSNR in dB with peak-to-peak 2: `20 log10(2) - 10 log10(MSE)`; `+inf` for zero error.
    pub fn psnr(&self) -> f64 {
        psnr_from_mse(self.mse())
    }
}

/// `20 log10(2) - 10 log10(mse)` (`+inf` for 0).
pub fn psnr_from_mse(mse: f64) -> f64 {
    20.0 * 2f64.log10() - 10.0 * mse.log10()
}

/// The result of [`compute_equivariance`]: PSNR in dB per metric (None when not requested).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EqResult {
    pub eqt_int: Option<f64>,
    pub eqt_frac: Option<f64>,
    pub eqr: Option<f64>,
    /// The pooled sums behind each value, in the order EQ-T, EQ-T_frac, EQ-R.
    pub sums: [Option<EqSums>; 3],
}

/// Errors of [`compute_equivariance`]: the callback's own error, or a problem here.
#[derive(Debug, thiserror::Error)]
pub enum EqError<E: std::fmt::Display + std::fmt::Debug> {
    /// The render or progress callback failed (or asked to stop).
    #[error("{0}")]
    Callback(E),
    /// Bad options or images of inconsistent sizes.
    #[error("equivariance metric: {0}")]
    Invalid(String),
}

impl<E: std::fmt::Display + std::fmt::Debug> From<ResampleError> for EqError<E> {
    fn from(e: ResampleError) -> Self {
        EqError::Invalid(e.to_string())
    }
}

/// The random transforms of one sample, drawn in the official order.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EqDraws {
    /// Integer translation (x, y) in image widths, already rounded to whole pixels.
    pub t_int: Option<[f64; 2]>,
    /// Fractional translation (x, y) in image widths.
    pub t_frac: Option<[f64; 2]>,
    /// Rotation angle in radians.
    pub angle: Option<f64>,
}

impl EqDraws {
    /// Draws one sample's transforms from `uniform` (values in [0, 1)): two numbers for EQ-T,
    /// two for EQ-T_frac, one for EQ-R, each only when that metric is enabled.
    pub fn draw(opts: &EqOptions, uniform: &mut dyn FnMut() -> f64) -> EqDraws {
        let res = opts.resolution.max(1) as f64;
        let t_int = opts.eqt_int.then(|| {
            let t = [
                (uniform() * 2.0 - 1.0) * opts.translate_max,
                (uniform() * 2.0 - 1.0) * opts.translate_max,
            ];
            [
                (t[0] * res).round_ties_even() / res,
                (t[1] * res).round_ties_even() / res,
            ]
        });
        let t_frac = opts.eqt_frac.then(|| {
            [
                (uniform() * 2.0 - 1.0) * opts.translate_max,
                (uniform() * 2.0 - 1.0) * opts.translate_max,
            ]
        });
        let angle = opts
            .eqr
            .then(|| (uniform() * 2.0 - 1.0) * (opts.rotate_max * std::f64::consts::PI));
        EqDraws {
            t_int,
            t_frac,
            angle,
        }
    }
}

/// Runs one sample: renders the reference and each transformed image and adds their errors to
/// `sums` (indexed EQ-T, EQ-T_frac, EQ-R).
pub fn equivariance_sample<E: std::fmt::Display + std::fmt::Debug>(
    draws: &EqDraws,
    render: &mut dyn FnMut(&Mat3) -> Result<Planes, E>,
    sums: &mut [EqSums; 3],
) -> Result<(), EqError<E>> {
    let orig = render(&IDENTITY).map_err(EqError::Callback)?;
    let check = |img: &Planes| -> Result<(), EqError<E>> {
        if img.count != orig.count || img.height != orig.height || img.width != orig.width {
            return Err(EqError::Invalid(format!(
                "render returned {}x{}x{} planes for a transformed input but {}x{}x{} for the identity",
                img.count, img.height, img.width, orig.count, orig.height, orig.width
            )));
        }
        Ok(())
    };
    if let Some([tx, ty]) = draws.t_int {
        let img = render(&translation_input_transform(tx, ty)).map_err(EqError::Callback)?;
        check(&img)?;
        let Masked { image, mask } = integer_translation(&orig, tx, ty)?;
        sums[0].add(&image, &img, &mask)?;
    }
    if let Some([tx, ty]) = draws.t_frac {
        let img = render(&translation_input_transform(tx, ty)).map_err(EqError::Callback)?;
        check(&img)?;
        let Masked { image, mask } = fractional_translation(&orig, tx, ty, 3)?;
        sums[1].add(&image, &img, &mask)?;
    }
    if let Some(angle) = draws.angle {
        let img = render(&rotation_input_transform(angle)).map_err(EqError::Callback)?;
        check(&img)?;
        let reference = fractional_rotation(&orig, angle, 3)?;
        let pseudo = fractional_pseudo_rotation(&img, angle, 3)?;
        let mask: Vec<f64> = reference
            .mask
            .iter()
            .zip(&pseudo.mask)
            .map(|(a, b)| a * b)
            .collect();
        sums[2].add(&reference.image, &pseudo.image, &mask)?;
    }
    Ok(())
}

/// Computes the requested equivariance metrics over `opts.num_samples` samples.
///
/// * `uniform` draws numbers in [0, 1) (seed it for reproducible results);
/// * `render(sample, transform)` renders sample `sample` (same latents for the same index) with
///   the given input transform, as `[N*C]` planes of `H x W` in [-1, 1];
/// * `progress(done, total)` is called after each sample; returning an error stops the run
///   (use it for cancellation).
pub fn compute_equivariance<E: std::fmt::Display + std::fmt::Debug>(
    opts: &EqOptions,
    uniform: &mut dyn FnMut() -> f64,
    render: &mut dyn FnMut(usize, &Mat3) -> Result<Planes, E>,
    progress: &mut dyn FnMut(usize, usize) -> Result<(), E>,
) -> Result<EqResult, EqError<E>> {
    if !(opts.eqt_int || opts.eqt_frac || opts.eqr) {
        return Err(EqError::Invalid("no metric selected".into()));
    }
    if opts.num_samples == 0 || opts.resolution == 0 {
        return Err(EqError::Invalid(
            "num_samples and resolution must be at least 1".into(),
        ));
    }
    if !(opts.translate_max.is_finite() && opts.rotate_max.is_finite()) {
        return Err(EqError::Invalid(
            "translate_max and rotate_max must be finite".into(),
        ));
    }
    let mut sums = [EqSums::default(); 3];
    for i in 0..opts.num_samples {
        let draws = EqDraws::draw(opts, uniform);
        equivariance_sample(&draws, &mut |m: &Mat3| render(i, m), &mut sums)?;
        progress(i + 1, opts.num_samples).map_err(EqError::Callback)?;
    }
    let pick = |on: bool, s: EqSums| on.then_some(s);
    let s = [
        pick(opts.eqt_int, sums[0]),
        pick(opts.eqt_frac, sums[1]),
        pick(opts.eqr, sums[2]),
    ];
    Ok(EqResult {
        eqt_int: s[0].map(|v| v.psnr()),
        eqt_frac: s[1].map(|v| v.psnr()),
        eqr: s[2].map(|v| v.psnr()),
        sums: s,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::PI;

    /// A band-limited continuous signal on the plane (coordinates in image widths, centred).
    fn signal(u: f64, v: f64) -> f64 {
        0.45 * (2.0 * PI * (3.0 * u + 1.0 * v) + 0.4).sin()
            + 0.3 * (2.0 * PI * (-2.0 * u + 2.5 * v)).cos()
            + 0.2 * (2.0 * PI * 1.5 * v + 1.0).sin()
    }

    /// A "generator" that samples `signal` through the input transform, like StyleGAN3's
    /// synthesis input: output pixel centre p (in image widths, centred) shows signal(M p).
    /// `sticky` adds a pattern fixed to the pixel grid (texture sticking), which breaks
    /// equivariance.
    fn render(n: usize, m: &Mat3, sticky: f64) -> Planes {
        let mut data = Vec::with_capacity(3 * n * n);
        for c in 0..3 {
            for y in 0..n {
                for x in 0..n {
                    let u = (x as f64 + 0.5) / n as f64 - 0.5;
                    let v = (y as f64 + 0.5) / n as f64 - 0.5;
                    let su = m[0][0] * u + m[0][1] * v + m[0][2];
                    let sv = m[1][0] * u + m[1][1] * v + m[1][2];
                    let grid = sticky
                        * (2.0 * PI * 0.23 * x as f64).sin()
                        * (2.0 * PI * 0.17 * y as f64).cos();
                    data.push(signal(su, sv) * (1.0 - 0.1 * c as f64) + grid);
                }
            }
        }
        Planes::new(3, n, n, data).unwrap()
    }

    /// A deterministic uniform source (splitmix64).
    fn uniform(seed: u64) -> impl FnMut() -> f64 {
        let mut s = seed;
        move || {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            (z ^ (z >> 31)) as f64 / 18_446_744_073_709_551_616.0
        }
    }

    fn run(sticky: f64, opts: &EqOptions) -> EqResult {
        let n = opts.resolution;
        let mut u = uniform(7);
        compute_equivariance::<String>(
            opts,
            &mut u,
            &mut |_i, m| Ok(render(n, m, sticky)),
            &mut |_d, _t| Ok(()),
        )
        .unwrap()
    }

    #[test]
    fn equivariant_generator_scores_high_and_sticky_one_low() {
        let opts = EqOptions::new(3, 32);
        let good = run(0.0, &opts);
        let bad = run(0.25, &opts);
        let (gi, gf, gr) = (
            good.eqt_int.unwrap(),
            good.eqt_frac.unwrap(),
            good.eqr.unwrap(),
        );
        let (bi, bf, br) = (
            bad.eqt_int.unwrap(),
            bad.eqt_frac.unwrap(),
            bad.eqr.unwrap(),
        );
        eprintln!("equivariant: {gi} {gf} {gr}; sticky: {bi} {bf} {br}");
        // Integer translation of a signal sampled on the same grid is exact.
        assert!(gi > 100.0, "EQ-T {gi}");
        // Lanczos and the rotation filters only approximate ideal resampling.
        assert!(gf > 40.0, "EQ-T_frac {gf}");
        assert!(gr > 30.0, "EQ-R {gr}");
        for (b, g) in [(bi, gi), (bf, gf), (br, gr)] {
            assert!(b < 25.0 && b < g - 10.0, "non-equivariant {b} vs {g}");
        }
    }

    #[test]
    fn zero_translation_is_exact() {
        let mut opts = EqOptions::new(2, 16);
        opts.translate_max = 0.0;
        opts.eqr = false;
        let r = run(0.3, &opts);
        // Nothing moves, so even a sticky generator reproduces its reference exactly.
        assert_eq!(r.eqt_int, Some(f64::INFINITY));
        // The Lanczos taps at integer offsets are sin(k pi)/(k pi), zero only to rounding.
        assert!(r.eqt_frac.unwrap() > 250.0, "EQ-T_frac {:?}", r.eqt_frac);
        assert!(r.sums[0].unwrap().weight > 0.0);
    }

    #[test]
    fn psnr_uses_peak_two() {
        let s = EqSums {
            squared_error: 4.0e-4,
            weight: 4.0,
        };
        // MSE 1e-4: 20 log10 2 + 40.
        assert!((s.psnr() - (40.0 + 20.0 * 2f64.log10())).abs() < 1e-12);
    }

    #[test]
    fn draws_follow_the_official_ranges_and_rounding() {
        let opts = EqOptions::new(1, 64);
        let mut u = uniform(3);
        for _ in 0..100 {
            let d = EqDraws::draw(&opts, &mut u);
            let t = d.t_int.unwrap();
            for v in t {
                assert!(v.abs() <= 0.125 + 1e-12);
                assert!(((v * 64.0) - (v * 64.0).round()).abs() < 1e-12);
            }
            assert!(d.t_frac.unwrap().iter().all(|v| v.abs() <= 0.125));
            assert!(d.angle.unwrap().abs() <= PI);
        }
    }

    #[test]
    fn callback_errors_stop_the_run() {
        let opts = EqOptions::new(5, 8);
        let mut u = uniform(1);
        let mut calls = 0;
        let r = compute_equivariance::<String>(
            &opts,
            &mut u,
            &mut |_i, m| Ok(render(8, m, 0.0)),
            &mut |d, _t| {
                calls += 1;
                if d == 2 {
                    Err("cancelled".to_string())
                } else {
                    Ok(())
                }
            },
        );
        assert!(matches!(r, Err(EqError::Callback(ref s)) if s == "cancelled"));
        assert_eq!(calls, 2);
        let wrong = compute_equivariance::<String>(
            &opts,
            &mut u,
            &mut |_i, m| Ok(render(if m == &IDENTITY { 8 } else { 6 }, m, 0.0)),
            &mut |_d, _t| Ok(()),
        );
        assert!(matches!(wrong, Err(EqError::Invalid(_))));
    }
}
