//! Keyframe interpolation: linear, spherical, and the looping cubic spline of the official
//! latent-walk video tool.
//!
//! The official tool (`gen_video.py` of NVlabs' StyleGAN3) interpolates each grid cell's `K`
//! keyframe latents with SciPy's `interp1d(kind='cubic')` over the keyframes tiled
//! `2 * wraps + 1` times (`wraps = 2`) at x positions `-K*wraps .. K*(wraps+1) - 1`, and
//! samples it at `t = frame / w_frames` for `frame in 0 .. K * w_frames`. `interp1d` builds an
//! interpolating cubic B-spline with SciPy's default "not-a-knot" end conditions, which is the
//! classical cubic spline whose third derivative is continuous at the second and the
//! second-to-last point. [`CubicSpline`] computes that spline directly on the unit-spaced grid.

use crate::error::{invalid, shape_err, LatentError, Result};
use crate::math::{slerp, torch_lerp, Latents};

/// The interpolation curve between keyframes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InterpMode {
    Linear,
    Slerp,
    Cubic,
}

impl InterpMode {
    /// Parses `linear` | `slerp` | `cubic`.
    pub fn parse(s: &str) -> Result<InterpMode> {
        Ok(match s {
            "linear" => InterpMode::Linear,
            "slerp" => InterpMode::Slerp,
            "cubic" => InterpMode::Cubic,
            _ => {
                return invalid(format!(
                    "unknown interpolation {s:?} (linear, slerp, cubic)"
                ))
            }
        })
    }
}

/// What to interpolate and how many frames to make.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InterpSpec {
    pub mode: InterpMode,
    /// Loop back to the first keyframe (the official video is a loop).
    pub looped: bool,
    /// Frames from one keyframe to the next (`--w-frames` of the official tool).
    pub frames_per_key: usize,
    /// Extra copies of the keyframes on each side for the looping cubic spline (official: 2).
    pub wraps: usize,
    /// Independent keyframe sequences in the batch (grid cells of the official video).
    pub groups: usize,
}

impl InterpSpec {
    /// Frames for `keys` keyframes per group: `keys * frames_per_key` for a loop, else
    /// `(keys - 1) * frames_per_key + 1` (the last frame is the last keyframe).
    pub fn frame_count(&self, keys: usize) -> usize {
        if self.looped {
            keys * self.frames_per_key
        } else {
            keys.saturating_sub(1) * self.frames_per_key + 1
        }
    }
}

/// An interpolating cubic spline with not-a-knot end conditions through `n >= 4` points at
/// x = 0, 1, ..., n-1, for `c` independent components at once.
pub struct CubicSpline {
    n: usize,
    c: usize,
    /// Values, `[n, c]`.
    y: Vec<f64>,
    /// Second derivatives at the points, `[n, c]`.
    m: Vec<f64>,
}

impl CubicSpline {
    /// Fits the spline to `y` (`[n, c]`, row-major).
    pub fn new(y: Vec<f64>, n: usize, c: usize) -> Result<CubicSpline> {
        if n < 4 {
            return invalid(format!(
                "a not-a-knot cubic spline needs at least 4 points, got {n}"
            ));
        }
        if y.len() != n * c {
            return shape_err(format!(
                "spline data has {} values, expected {n} x {c}",
                y.len()
            ));
        }
        // On a unit grid the continuity of the first derivative gives, for interior points,
        //   M[i-1] + 4 M[i] + M[i+1] = r[i] = 6 (y[i-1] - 2 y[i] + y[i+1]),
        // and not-a-knot (equal third derivatives on both sides of points 1 and n-2) gives
        //   M[0] = 2 M[1] - M[2],  M[n-1] = 2 M[n-2] - M[n-3].
        // Substituting the latter into the rows for i = 1 and i = n-2 leaves 6 M[1] = r[1] and
        // 6 M[n-2] = r[n-2]; the rows i = 2 ..= n-3 form a tridiagonal (1, 4, 1) system solved
        // with the Thomas algorithm.
        let row = |i: usize| &y[i * c..(i + 1) * c];
        let r = |i: usize, k: usize| 6.0 * (row(i - 1)[k] - 2.0 * row(i)[k] + row(i + 1)[k]);
        let mut m = vec![0.0f64; n * c];
        for k in 0..c {
            m[c + k] = r(1, k) / 6.0;
            m[(n - 2) * c + k] = r(n - 2, k) / 6.0;
        }
        let interior: Vec<usize> = (2..n - 2).collect();
        if !interior.is_empty() {
            // Forward sweep: c'[j] = 1 / (4 - c'[j-1]), d'[j] = (d[j] - d'[j-1]) / (4 - c'[j-1]).
            let len = interior.len();
            let mut cp = vec![0.0f64; len];
            let mut dp = vec![0.0f64; len * c];
            for (j, &i) in interior.iter().enumerate() {
                let denom = if j == 0 { 4.0 } else { 4.0 - cp[j - 1] };
                cp[j] = 1.0 / denom;
                for k in 0..c {
                    let mut d = r(i, k);
                    if i == 2 {
                        d -= m[c + k];
                    }
                    if i == n - 3 {
                        d -= m[(n - 2) * c + k];
                    }
                    let prev = if j == 0 { 0.0 } else { dp[(j - 1) * c + k] };
                    dp[j * c + k] = (d - prev) / denom;
                }
            }
            for j in (0..len).rev() {
                let i = interior[j];
                for k in 0..c {
                    let next = if j + 1 < len { m[(i + 1) * c + k] } else { 0.0 };
                    m[i * c + k] = dp[j * c + k] - cp[j] * next;
                }
            }
        }
        for k in 0..c {
            m[k] = 2.0 * m[c + k] - m[2 * c + k];
            m[(n - 1) * c + k] = 2.0 * m[(n - 2) * c + k] - m[(n - 3) * c + k];
        }
        Ok(CubicSpline { n, c, y, m })
    }

    /// Evaluates all components at `x` (clamped to `[0, n-1]`) into `out` (`c` values).
    pub fn eval(&self, x: f64, out: &mut [f64]) {
        let x = x.clamp(0.0, (self.n - 1) as f64);
        let i = (x.floor() as usize).min(self.n - 2);
        let u = x - i as f64;
        let v = 1.0 - u;
        let (ca, cb) = ((v * v * v - v) / 6.0, (u * u * u - u) / 6.0);
        let c = self.c;
        let (y0, y1) = (
            &self.y[i * c..(i + 1) * c],
            &self.y[(i + 1) * c..(i + 2) * c],
        );
        let (m0, m1) = (
            &self.m[i * c..(i + 1) * c],
            &self.m[(i + 1) * c..(i + 2) * c],
        );
        for k in 0..c.min(out.len()) {
            out[k] = v * y0[k] + u * y1[k] + ca * m0[k] + cb * m1[k];
        }
    }
}

/// Interpolates keyframes into frames.
///
/// `keys` holds `spec.groups` sequences of `K` keyframes each, group-major (item
/// `g * K + k` is keyframe `k` of group `g`, the official tool's seed order for a grid of
/// `groups` cells). The result is frame-major: item `f * groups + g` is frame `start + f` of
/// group `g`, so each frame's cells are consecutive (the order a grid layout expects).
/// `count = None` means every frame from `start` on.
pub fn interpolate(
    keys: &Latents,
    spec: &InterpSpec,
    start: usize,
    count: Option<usize>,
) -> Result<Latents> {
    let g = spec.groups;
    if g == 0 || keys.n == 0 || !keys.n.is_multiple_of(g) {
        return shape_err(format!(
            "{} keyframe latents cannot be split into {g} equal groups",
            keys.n
        ));
    }
    if spec.frames_per_key == 0 {
        return invalid("frames per keyframe must be at least 1");
    }
    let k = keys.n / g;
    let total = spec.frame_count(k);
    if start >= total {
        return invalid(format!(
            "start frame {start} is past the end ({total} frames)"
        ));
    }
    let frames = count.map_or(total - start, |c| c.min(total - start));
    let len = keys.item_len();
    let out_len = frames
        .checked_mul(g)
        .and_then(|v| v.checked_mul(len))
        .filter(|&v| v <= 1 << 31)
        .ok_or_else(|| {
            LatentError::Invalid(format!(
                "{frames} frames x {g} groups x {len} values is too large for one batch; \
                 use a smaller chunk_frames"
            ))
        })?;
    let mut data = vec![0.0f32; out_len];
    let fpk = spec.frames_per_key as f64;
    let key = |gi: usize, ki: usize| keys.item(gi * k + ki);

    match spec.mode {
        InterpMode::Linear | InterpMode::Slerp => {
            for f in 0..frames {
                let t = (start + f) as f64 / fpk;
                let seg = t.floor() as usize;
                let u = t - seg as f64;
                for gi in 0..g {
                    let (a, b) = if spec.looped {
                        (key(gi, seg % k), key(gi, (seg + 1) % k))
                    } else if seg + 1 >= k {
                        (key(gi, k - 1), key(gi, k - 1))
                    } else {
                        (key(gi, seg), key(gi, seg + 1))
                    };
                    let o = &mut data[(f * g + gi) * len..(f * g + gi + 1) * len];
                    if spec.mode == InterpMode::Linear {
                        let u = u as f32;
                        for ((o, &x), &y) in o.iter_mut().zip(a).zip(b) {
                            *o = torch_lerp(x, y, u);
                        }
                    } else {
                        for ((o, x), y) in o
                            .chunks_exact_mut(keys.dim)
                            .zip(a.chunks_exact(keys.dim))
                            .zip(b.chunks_exact(keys.dim))
                        {
                            slerp(x, y, u, o);
                        }
                    }
                }
            }
        }
        InterpMode::Cubic => {
            let copies = if spec.looped { 2 * spec.wraps + 1 } else { 1 };
            let offset = if spec.looped { k * spec.wraps } else { 0 };
            let n = k * copies;
            if n < 4 {
                return invalid(format!(
                    "cubic interpolation needs at least 4 points, but {k} keyframe(s) x {copies} \
                     copies give {n}; add keyframes{}",
                    if spec.looped {
                        " or wraps"
                    } else {
                        " or turn on loop"
                    }
                ));
            }
            let mut tmp = vec![0.0f64; len];
            for gi in 0..g {
                let mut y = Vec::with_capacity(n * len);
                for j in 0..n {
                    y.extend(key(gi, j % k).iter().map(|&v| v as f64));
                }
                let spline = CubicSpline::new(y, n, len)?;
                for f in 0..frames {
                    let t = (start + f) as f64 / fpk;
                    spline.eval(t + offset as f64, &mut tmp);
                    let o = &mut data[(f * g + gi) * len..(f * g + gi + 1) * len];
                    for (o, &v) in o.iter_mut().zip(&tmp) {
                        *o = v as f32;
                    }
                }
            }
        }
    }
    Ok(Latents {
        n: frames * g,
        rows: keys.rows,
        dim: keys.dim,
        rank: keys.rank.max(2),
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cubic(x: f64) -> f64 {
        0.5 * x * x * x - 2.0 * x * x + 3.0 * x - 7.0
    }

    #[test]
    fn not_a_knot_spline_reproduces_cubics() {
        // The not-a-knot spline through samples of a cubic is that cubic: a known answer for
        // every n >= 4 (n = 4 and 5 exercise the empty and one-row interior systems).
        for n in [4usize, 5, 6, 11] {
            let y: Vec<f64> = (0..n)
                .flat_map(|i| [cubic(i as f64), -2.0 * cubic(i as f64) + 1.0])
                .collect();
            let s = CubicSpline::new(y, n, 2).unwrap();
            let mut out = [0.0; 2];
            for step in 0..=(10 * (n - 1)) {
                let x = step as f64 / 10.0;
                s.eval(x, &mut out);
                assert!(
                    (out[0] - cubic(x)).abs() < 1e-9,
                    "n={n} x={x}: {} vs {}",
                    out[0],
                    cubic(x)
                );
                assert!((out[1] - (-2.0 * cubic(x) + 1.0)).abs() < 1e-9);
            }
        }
        assert!(CubicSpline::new(vec![0.0; 3], 3, 1).is_err());
    }

    #[test]
    fn spline_interpolates_and_is_c2_with_not_a_knot_ends() {
        // Arbitrary data: the spline passes through every point, and its third derivative
        // (the M differences on a unit grid) matches across points 1 and n-2.
        let y = vec![0.3, -1.2, 2.5, 0.0, 4.0, -3.0, 1.0];
        let n = y.len();
        let s = CubicSpline::new(y.clone(), n, 1).unwrap();
        let mut out = [0.0];
        for (i, &v) in y.iter().enumerate() {
            s.eval(i as f64, &mut out);
            assert!((out[0] - v).abs() < 1e-12);
        }
        let m = &s.m;
        assert!(((m[1] - m[0]) - (m[2] - m[1])).abs() < 1e-9);
        assert!(((m[n - 1] - m[n - 2]) - (m[n - 2] - m[n - 3])).abs() < 1e-9);
        // First-derivative continuity at every interior point (the defining equations).
        for i in 1..n - 1 {
            let r = 6.0 * (y[i - 1] - 2.0 * y[i] + y[i + 1]);
            assert!((m[i - 1] + 4.0 * m[i] + m[i + 1] - r).abs() < 1e-9);
        }
    }

    fn keys(values: &[f32]) -> Latents {
        Latents::new(&[values.len(), 1], values.to_vec(), "k").unwrap()
    }

    #[test]
    fn linear_frames_by_hand() {
        let k = keys(&[0.0, 4.0, 8.0]);
        let mut spec = InterpSpec {
            mode: InterpMode::Linear,
            looped: false,
            frames_per_key: 4,
            wraps: 2,
            groups: 1,
        };
        let out = interpolate(&k, &spec, 0, None).unwrap();
        assert_eq!(out.data, vec![0., 1., 2., 3., 4., 5., 6., 7., 8.]);
        spec.looped = true;
        let out = interpolate(&k, &spec, 0, None).unwrap();
        assert_eq!(out.n, 12);
        assert_eq!(&out.data[8..], &[8., 6., 4., 2.]);
        // A chunk is the same frames as the corresponding slice of the whole.
        let chunk = interpolate(&k, &spec, 5, Some(3)).unwrap();
        assert_eq!(chunk.data, out.data[5..8].to_vec());
        assert!(interpolate(&k, &spec, 12, None).is_err());
    }

    #[test]
    fn groups_are_frame_major() {
        // Two groups of two keyframes: group 0 goes 0 -> 2, group 1 goes 10 -> 20.
        let k = keys(&[0.0, 2.0, 10.0, 20.0]);
        let spec = InterpSpec {
            mode: InterpMode::Linear,
            looped: false,
            frames_per_key: 2,
            wraps: 2,
            groups: 2,
        };
        let out = interpolate(&k, &spec, 0, None).unwrap();
        assert_eq!(out.data, vec![0., 10., 1., 15., 2., 20.]);
        let bad = InterpSpec { groups: 3, ..spec };
        assert!(interpolate(&k, &bad, 0, None).is_err());
    }

    #[test]
    fn slerp_keyframes() {
        let k = Latents::new(&[2, 2], vec![1.0, 0.0, 0.0, 1.0], "k").unwrap();
        let spec = InterpSpec {
            mode: InterpMode::Slerp,
            looped: false,
            frames_per_key: 2,
            wraps: 2,
            groups: 1,
        };
        let out = interpolate(&k, &spec, 0, None).unwrap();
        let h = std::f32::consts::FRAC_1_SQRT_2;
        assert!((out.data[2] - h).abs() < 1e-7 && (out.data[3] - h).abs() < 1e-7);
        assert_eq!(&out.data[4..], &[0.0, 1.0]);
    }

    #[test]
    fn looping_cubic_matches_the_padded_spline_formula() {
        // The looping cubic is the not-a-knot spline through the keyframes tiled 2*wraps+1
        // times at x = -K*wraps .. K*(wraps+1)-1, sampled at frame / frames_per_key.
        let vals = [0.5f32, -1.0, 2.0, 0.25];
        let k = keys(&vals);
        let spec = InterpSpec {
            mode: InterpMode::Cubic,
            looped: true,
            frames_per_key: 3,
            wraps: 2,
            groups: 1,
        };
        let out = interpolate(&k, &spec, 0, None).unwrap();
        assert_eq!(out.n, 12);
        let tiled: Vec<f64> = (0..20).map(|j| vals[j % 4] as f64).collect();
        let s = CubicSpline::new(tiled, 20, 1).unwrap();
        let mut e = [0.0];
        for f in 0..12 {
            s.eval(f as f64 / 3.0 + 8.0, &mut e);
            assert_eq!(out.data[f], e[0] as f32, "frame {f}");
        }
        // Frames on keyframes are the keyframes.
        for (i, &v) in vals.iter().enumerate() {
            assert!((out.data[3 * i] - v).abs() < 1e-6);
        }
        // Too few points for a spline is an error, not a panic.
        let one = keys(&[1.0]);
        let spec0 = InterpSpec { wraps: 0, ..spec };
        assert!(interpolate(&one, &spec0, 0, None).is_err());
    }
}
