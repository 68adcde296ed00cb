//! Low-pass filter design, as used by StyleGAN3 to build its resampling filters.
//!
//! * [`firwin_kaiser`]: the windowed-sinc low-pass of SciPy's `signal.firwin(numtaps, cutoff,
//!   width=width, fs=fs)` (Kaiser window from the transition width, `pass_zero=True`,
//!   `scale=True`), computed in f64.
//! * [`radial_lowpass`]: the SG3-R radially symmetric (jinc) filter, `[numtaps, numtaps]`.
//! * [`sg3_lowpass_filter`]: the official `design_lowpass_filter` (None for one tap), f32.
//!
//! All math is f64 and rounded to f32 only at the end, like the upstream numpy code.

use std::f64::consts::PI;

/// Modified Bessel function of the first kind, order 0 (power series; all terms positive).
pub fn bessel_i0(x: f64) -> f64 {
    let q = 0.25 * x * x;
    let mut term = 1.0f64;
    let mut sum = 1.0f64;
    let mut k = 1.0f64;
    loop {
        term *= q / (k * k);
        sum += term;
        if term < sum * 1e-17 {
            break;
        }
        k += 1.0;
        if k > 1000.0 {
            break;
        }
    }
    sum
}

/// Bessel function of the first kind, order 1, from Bessel's integral
/// `J1(x) = 1/(2 pi) * integral_0^{2 pi} cos(t - x sin t) dt`, evaluated with the trapezoidal rule,
/// which converges geometrically for this periodic analytic integrand (error ~ J_{N-1}(x)).
pub fn bessel_j1(x: f64) -> f64 {
    if x == 0.0 {
        return 0.0;
    }
    let n = (2.0 * x.abs()).ceil() as usize + 64;
    let mut sum = 0.0f64;
    for k in 0..n {
        let t = 2.0 * PI * (k as f64) / (n as f64);
        sum += (t - x * t.sin()).cos();
    }
    sum / n as f64
}

/// SciPy `kaiser_atten(numtaps, width)`: attenuation (dB) of a Kaiser FIR filter; `width` is the
/// transition width as a fraction of Nyquist.
pub fn kaiser_atten(numtaps: usize, width: f64) -> f64 {
    2.285 * (numtaps as f64 - 1.0) * PI * width + 7.95
}

/// SciPy `kaiser_beta(a)`: Kaiser window beta for attenuation `a` (dB).
pub fn kaiser_beta(a: f64) -> f64 {
    if a > 50.0 {
        0.1102 * (a - 8.7)
    } else if a > 21.0 {
        0.5842 * (a - 21.0).powf(0.4) + 0.07886 * (a - 21.0)
    } else {
        0.0
    }
}

/// Symmetric Kaiser window of length `m` (numpy `np.kaiser` / SciPy `windows.kaiser(sym=True)`).
pub fn kaiser_window(m: usize, beta: f64) -> Vec<f64> {
    if m == 1 {
        return vec![1.0];
    }
    let alpha = (m as f64 - 1.0) / 2.0;
    let denom = bessel_i0(beta);
    (0..m)
        .map(|n| {
            let r = (n as f64 - alpha) / alpha;
            bessel_i0(beta * (1.0 - r * r).max(0.0).sqrt()) / denom
        })
        .collect()
}

fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        1.0
    } else {
        (PI * x).sin() / (PI * x)
    }
}

/// SciPy `signal.firwin(numtaps, cutoff, width=width, fs=fs)` (low-pass, `pass_zero=True`,
/// `scale=True`): Kaiser-windowed sinc, normalised to unit DC gain. f64 taps.
pub fn firwin_kaiser(numtaps: usize, cutoff: f64, width: f64, fs: f64) -> Vec<f64> {
    let nyq = 0.5 * fs;
    let c = cutoff / nyq;
    let beta = kaiser_beta(kaiser_atten(numtaps, width / nyq));
    let win = kaiser_window(numtaps, beta);
    let alpha = 0.5 * (numtaps as f64 - 1.0);
    let mut h: Vec<f64> = (0..numtaps)
        .map(|i| {
            let m = i as f64 - alpha;
            c * sinc(c * m) * win[i]
        })
        .collect();
    let s: f64 = h.iter().sum();
    for v in &mut h {
        *v /= s;
    }
    h
}

/// SG3-R radially symmetric low-pass (jinc times a separable Kaiser window), `[numtaps, numtaps]`
/// row-major, normalised to sum 1. f64 taps.
pub fn radial_lowpass(numtaps: usize, cutoff: f64, width: f64, fs: f64) -> Vec<f64> {
    let x: Vec<f64> = (0..numtaps)
        .map(|i| (i as f64 - (numtaps as f64 - 1.0) / 2.0) / fs)
        .collect();
    let beta = kaiser_beta(kaiser_atten(numtaps, width / (fs / 2.0)));
    let w = kaiser_window(numtaps, beta);
    let mut f = vec![0.0f64; numtaps * numtaps];
    for i in 0..numtaps {
        for j in 0..numtaps {
            let r = x[j].hypot(x[i]);
            let v = if r == 0.0 {
                // limit of J1(2 pi c r) / (pi r) as r -> 0
                cutoff
            } else {
                bessel_j1(2.0 * cutoff * (PI * r)) / (PI * r)
            };
            f[i * numtaps + j] = v * w[i] * w[j];
        }
    }
    let s: f64 = f.iter().sum();
    for v in &mut f {
        *v /= s;
    }
    f
}

/// The official `design_lowpass_filter`: `None` for a single tap (identity), else the separable
/// firwin filter `[numtaps]` or, when `radial`, the 2-D filter `[numtaps, numtaps]`, as f32.
pub fn sg3_lowpass_filter(
    numtaps: usize,
    cutoff: f64,
    width: f64,
    fs: f64,
    radial: bool,
) -> Option<Vec<f32>> {
    if numtaps <= 1 {
        return None;
    }
    let f = if radial {
        radial_lowpass(numtaps, cutoff, width, fs)
    } else {
        firwin_kaiser(numtaps, cutoff, width, fs)
    };
    Some(f.into_iter().map(|v| v as f32).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bessel_values() {
        // Reference values (Abramowitz & Stegun tables).
        assert!((bessel_i0(1.0) - 1.266_065_877_752_008_4).abs() < 1e-14);
        assert!((bessel_j1(1.0) - 0.440_050_585_744_933_5).abs() < 1e-14);
        assert!((bessel_j1(10.0) - 0.043_472_746_168_861_44).abs() < 1e-13);
        assert!((bessel_j1(-2.5) + 0.497_094_102_464_274_4).abs() < 1e-13);
    }

    #[test]
    fn firwin_is_symmetric_and_normalised() {
        let h = firwin_kaiser(12, 2.0, 12.0, 32.0);
        let s: f64 = h.iter().sum();
        assert!((s - 1.0).abs() < 1e-12);
        for i in 0..12 {
            assert!((h[i] - h[11 - i]).abs() < 1e-15);
        }
    }
}
