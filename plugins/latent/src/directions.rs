//! Attribute directions in W: applying them, and three ways to find them without downloads.
//!
//! - [`sefa`]: closed-form factorisation (Shen & Zhou, "Closed-Form Factorization of Latent
//!   Semantics in GANs"): the directions that the style affines of the chosen layers amplify
//!   most are the top eigenvectors of `AᵀA`, `A` the stacked affine weights `[styles, w_dim]`.
//! - [`ganspace`]: principal components of sampled `W` (Härkönen et al., "GANSpace").
//! - [`learn_boundary`]: a linear boundary between labelled latents (InterFaceGAN, Shen et
//!   al.), by logistic regression or a linear SVM; its unit normal is the direction.
//!
//! Eigenvectors have no intrinsic sign; we make the component of largest magnitude positive
//! so that results are reproducible.

use crate::error::{invalid, shape_err, LatentError, Result};
use crate::math::Latents;
use nalgebra::{DMatrix, DVector, SymmetricEigen};
use stylegraph_rng::RandomState;

/// Directions with their magnitudes: `vectors` is `[k, dim]` row-major, unit rows.
#[derive(Clone, Debug, PartialEq)]
pub struct Components {
    pub k: usize,
    pub dim: usize,
    pub vectors: Vec<f64>,
    /// Eigenvalues (SeFa) or standard deviations along each component (GANSpace).
    pub values: Vec<f64>,
}

/// The `k` eigenvectors of the symmetric matrix `m` with the largest eigenvalues, descending.
fn top_eigen(m: DMatrix<f64>, k: usize) -> Result<(Vec<f64>, Vec<f64>)> {
    let dim = m.nrows();
    if m.iter().any(|v| !v.is_finite()) {
        return Err(LatentError::Numeric(
            "the matrix has non-finite values".into(),
        ));
    }
    let eig = SymmetricEigen::new(m);
    let mut order: Vec<usize> = (0..dim).collect();
    order.sort_by(|&a, &b| eig.eigenvalues[b].total_cmp(&eig.eigenvalues[a]));
    let mut vectors = Vec::with_capacity(k * dim);
    let mut values = Vec::with_capacity(k);
    for &j in order.iter().take(k) {
        let col = eig.eigenvectors.column(j);
        let mut v: Vec<f64> = col.iter().copied().collect();
        canonical_sign(&mut v);
        vectors.extend_from_slice(&v);
        values.push(eig.eigenvalues[j]);
    }
    Ok((vectors, values))
}

/// Flips `v` so that its component of largest magnitude is positive (the first such one on
/// ties), making eigenvector signs deterministic.
pub fn canonical_sign(v: &mut [f64]) {
    let mut best = 0.0f64;
    let mut sign = 1.0;
    for &x in v.iter() {
        if x.abs() > best.abs() {
            best = x;
            sign = if x < 0.0 { -1.0 } else { 1.0 };
        }
    }
    if sign < 0.0 {
        v.iter_mut().for_each(|x| *x = -*x);
    }
}

/// SeFa: the top `k` eigenvectors of `AᵀA` for the stacked affine weights `a` (`[rows, dim]`,
/// one row per style channel). With `normalize`, each row is scaled to unit length first, as
/// the reference implementation does (this also removes the layers' runtime weight gains).
pub fn sefa(a: &[f64], rows: usize, dim: usize, k: usize, normalize: bool) -> Result<Components> {
    if rows == 0 || dim == 0 || a.len() != rows * dim {
        return shape_err(format!(
            "affine weights must be a non-empty [styles, w_dim] matrix, got {} values for [{rows}, {dim}]",
            a.len()
        ));
    }
    if k == 0 || k > dim {
        return invalid(format!("components must be 1..={dim}, got {k}"));
    }
    let mut m = DMatrix::from_row_slice(rows, dim, a);
    if normalize {
        for mut row in m.row_iter_mut() {
            let norm = row.norm();
            if norm > 0.0 {
                row /= norm;
            }
        }
    }
    let ata = m.tr_mul(&m);
    let (vectors, values) = top_eigen(ata, k)?;
    Ok(Components {
        k,
        dim,
        vectors,
        values,
    })
}

/// GANSpace: principal components of the latents `x` (`[n, dim]`). Returns the top `k`
/// components (unit rows), the standard deviation of the data along each (square roots of the
/// covariance eigenvalues, with the unbiased `n - 1` normalisation), and the mean.
pub fn ganspace(x: &[f64], n: usize, dim: usize, k: usize) -> Result<(Components, Vec<f64>)> {
    if dim == 0 || x.len() != n * dim {
        return shape_err(format!(
            "{} latent values do not fill [{n}, {dim}]",
            x.len()
        ));
    }
    ganspace_rows(n, dim, k, |i| &x[i * dim..(i + 1) * dim])
}

/// [`ganspace`] over rows given by `row(i)` (each `dim` values), so that large batches are
/// neither copied nor converted whole: the covariance is accumulated in blocks of rows.
pub fn ganspace_rows<'a, T: Copy + Into<f64> + 'a>(
    n: usize,
    dim: usize,
    k: usize,
    row: impl Fn(usize) -> &'a [T],
) -> Result<(Components, Vec<f64>)> {
    if n < 2 || dim == 0 {
        return shape_err(format!(
            "PCA needs at least 2 latents of a non-zero dimension, got [{n}, {dim}]"
        ));
    }
    if k == 0 || k > dim {
        return invalid(format!("components must be 1..={dim}, got {k}"));
    }
    // Two passes (mean, then centred products) for accuracy when the mean is large.
    let mut mean = vec![0.0f64; dim];
    for i in 0..n {
        for (m, &v) in mean.iter_mut().zip(row(i)) {
            *m += v.into();
        }
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    const BLOCK: usize = 2048;
    let mut cov = DMatrix::<f64>::zeros(dim, dim);
    let mut start = 0;
    while start < n {
        let rows = BLOCK.min(n - start);
        let block = DMatrix::<f64>::from_fn(rows, dim, |r, c| row(start + r)[c].into() - mean[c]);
        cov += block.tr_mul(&block);
        start += rows;
    }
    cov /= n as f64 - 1.0;
    let (vectors, values) = top_eigen(cov, k)?;
    let stddev = values.iter().map(|&v| v.max(0.0).sqrt()).collect();
    Ok((
        Components {
            k,
            dim,
            vectors,
            values: stddev,
        },
        mean,
    ))
}

/// How [`apply_direction`] combines several directions and strengths.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApplyMode {
    /// One edit per latent: `w + sum_k s_k d_k` (one strength per direction, or one for all).
    Sum,
    /// Every direction at every strength: item `(i * K + k) * S + s` is `w_i + s d_k`, a grid
    /// with one row per (latent, direction) and one column per strength.
    Sweep,
}

impl ApplyMode {
    /// Parses `sum` | `sweep`.
    pub fn parse(s: &str) -> Result<ApplyMode> {
        Ok(match s {
            "sum" => ApplyMode::Sum,
            "sweep" => ApplyMode::Sweep,
            _ => return invalid(format!("unknown mode {s:?} (sum, sweep)")),
        })
    }
}

/// Moves latents along directions on the chosen layers only.
///
/// `dirs` is `[k, dim]`; with `normalize`, each direction is scaled to unit length first.
/// Layers not listed keep their values, so e.g. a pose direction can be applied to the coarse
/// layers alone.
pub fn apply_direction(
    ws: &Latents,
    dirs: &[f32],
    k: usize,
    strengths: &[f64],
    layers: &[usize],
    mode: ApplyMode,
    normalize: bool,
) -> Result<Latents> {
    let d = ws.dim;
    if k == 0 || !dirs.len().is_multiple_of(k) || dirs.len() / k != d {
        let got = dirs.len().checked_div(k).unwrap_or(0);
        return shape_err(format!(
            "the direction has dimension {got} but the latents have w_dim {d} (did the \
             direction come from another model?)"
        ));
    }
    if strengths.is_empty() {
        return invalid("no strengths given");
    }
    if let Some(&bad) = layers.iter().find(|&&l| l >= ws.rows) {
        return invalid(format!(
            "layer {bad} is out of range: the latents have {} layer(s)",
            ws.rows
        ));
    }
    let mut unit: Vec<f64> = dirs.iter().map(|&v| v as f64).collect();
    if normalize {
        for (i, row) in unit.chunks_exact_mut(d).enumerate() {
            let norm = row.iter().map(|v| v * v).sum::<f64>().sqrt();
            if norm == 0.0 {
                return invalid(format!(
                    "direction {i} is all zeros and cannot be normalised"
                ));
            }
            row.iter_mut().for_each(|v| *v /= norm);
        }
    }
    let len = ws.item_len();
    let add = |item: &mut [f32], offset: &[f64]| {
        for &l in layers {
            for (x, &o) in item[l * d..(l + 1) * d].iter_mut().zip(offset) {
                *x = (*x as f64 + o) as f32;
            }
        }
    };
    match mode {
        ApplyMode::Sum => {
            if strengths.len() != 1 && strengths.len() != k {
                return invalid(format!(
                    "{} strengths for {k} directions: give one per direction, or one for all",
                    strengths.len()
                ));
            }
            let mut offset = vec![0.0f64; d];
            for (i, row) in unit.chunks_exact(d).enumerate() {
                let s = strengths[i.min(strengths.len() - 1)];
                for (o, &v) in offset.iter_mut().zip(row) {
                    *o += s * v;
                }
            }
            let mut out = ws.clone();
            for item in out.data.chunks_exact_mut(len) {
                add(item, &offset);
            }
            Ok(out)
        }
        ApplyMode::Sweep => {
            let s_count = strengths.len();
            let n =
                ws.n.checked_mul(k)
                    .and_then(|v| v.checked_mul(s_count))
                    .filter(|&v| v.saturating_mul(len) <= 1 << 31)
                    .ok_or_else(|| LatentError::Invalid("the sweep is too large".into()))?;
            let mut data = Vec::with_capacity(n * len);
            let mut offset = vec![0.0f64; d];
            for i in 0..ws.n {
                for row in unit.chunks_exact(d) {
                    for &s in strengths {
                        for (o, &v) in offset.iter_mut().zip(row) {
                            *o = s * v;
                        }
                        let start = data.len();
                        data.extend_from_slice(ws.item(i));
                        add(&mut data[start..], &offset);
                    }
                }
            }
            Ok(Latents {
                n,
                rows: ws.rows,
                dim: d,
                rank: ws.rank.max(2),
                data,
            })
        }
    }
}

/// The classifier behind [`learn_boundary`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Classifier {
    /// L2-regularised logistic regression, `½|w|² + C Σ log(1 + exp(-y (w·x + b)))`, solved by
    /// Newton's method (the bias is not regularised).
    Logistic,
    /// L2-regularised linear SVM with hinge loss, `½(|w|² + b²) + C Σ max(0, 1 - y (w·x + b))`,
    /// solved by dual coordinate descent (the bias is a constant feature, as in LIBLINEAR).
    Svm,
}

impl Classifier {
    /// Parses `logistic` | `svm`.
    pub fn parse(s: &str) -> Result<Classifier> {
        Ok(match s {
            "logistic" => Classifier::Logistic,
            "svm" => Classifier::Svm,
            _ => return invalid(format!("unknown method {s:?} (logistic, svm)")),
        })
    }
}

/// A learned linear boundary `normal · x + offset = 0`.
#[derive(Clone, Debug, PartialEq)]
pub struct Boundary {
    /// Unit normal, pointing toward the positive class.
    pub normal: Vec<f64>,
    /// Signed offset in the units of `x` (the raw bias divided by `|w|`).
    pub offset: f64,
    pub train_accuracy: f64,
    /// Accuracy on the held-out latents (`None` when nothing was held out).
    pub val_accuracy: Option<f64>,
    pub n_train: usize,
    pub n_val: usize,
}

/// How [`learn_boundary`] trains.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BoundaryOptions {
    pub method: Classifier,
    /// Inverse regularisation strength (larger fits the training data more closely).
    pub c: f64,
    /// Fraction of the latents held out to measure the accuracy, in [0, 1).
    pub holdout: f64,
    /// Seed of the shuffle that picks the held-out latents.
    pub seed: u32,
}

/// Learns a linear boundary between latents `x` (`[n, dim]`) labelled `labels`.
///
/// A fraction `holdout` of the latents (chosen by a shuffle seeded with `seed`) is kept out of
/// training and used to measure the accuracy, as InterFaceGAN reports it.
pub fn learn_boundary(
    x: &[f64],
    n: usize,
    dim: usize,
    labels: &[bool],
    opts: &BoundaryOptions,
) -> Result<Boundary> {
    let BoundaryOptions {
        method,
        c,
        holdout,
        seed,
    } = *opts;
    if dim == 0 || x.len() != n * dim || labels.len() != n {
        return shape_err(format!(
            "{} latent values and {} labels do not fit [{n}, {dim}]",
            x.len(),
            labels.len()
        ));
    }
    if !(c.is_finite() && c > 0.0) {
        return invalid(format!("C must be a positive number, got {c}"));
    }
    if !(0.0..1.0).contains(&holdout) {
        return invalid(format!("holdout must be in [0, 1), got {holdout}"));
    }
    if x.iter().any(|v| !v.is_finite()) {
        return invalid("the latents contain non-finite values");
    }
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = RandomState::new(seed);
    for i in (1..n).rev() {
        let j = ((rng.next_f64() * (i + 1) as f64) as usize).min(i);
        order.swap(i, j);
    }
    let n_val = (n as f64 * holdout).floor() as usize;
    let (val, train) = order.split_at(n_val);
    let positives = train.iter().filter(|&&i| labels[i]).count();
    if positives == 0 || positives == train.len() {
        return invalid(format!(
            "the {} training latents all have the same label ({} positive); both classes are needed",
            train.len(),
            positives
        ));
    }
    let xs: Vec<&[f64]> = train.iter().map(|&i| &x[i * dim..(i + 1) * dim]).collect();
    let ys: Vec<f64> = train
        .iter()
        .map(|&i| if labels[i] { 1.0 } else { -1.0 })
        .collect();
    let (w, b) = match method {
        Classifier::Logistic => logistic(&xs, &ys, dim, c)?,
        Classifier::Svm => svm(&xs, &ys, dim, c, &mut rng),
    };
    let norm = w.iter().map(|v| v * v).sum::<f64>().sqrt();
    if norm == 0.0 || !norm.is_finite() {
        return Err(LatentError::Numeric(
            "the classifier found no direction (the labels may not depend on the latents)".into(),
        ));
    }
    let accuracy = |idx: &[usize]| -> f64 {
        let correct = idx
            .iter()
            .filter(|&&i| {
                let f: f64 = x[i * dim..(i + 1) * dim]
                    .iter()
                    .zip(&w)
                    .map(|(a, b)| a * b)
                    .sum::<f64>()
                    + b;
                (f > 0.0) == labels[i]
            })
            .count();
        correct as f64 / idx.len() as f64
    };
    Ok(Boundary {
        normal: w.iter().map(|v| v / norm).collect(),
        offset: b / norm,
        train_accuracy: accuracy(train),
        val_accuracy: (!val.is_empty()).then(|| accuracy(val)),
        n_train: train.len(),
        n_val: val.len(),
    })
}

/// `log(1 + exp(z))` without overflow.
fn softplus(z: f64) -> f64 {
    if z > 0.0 {
        z + (-z).exp().ln_1p()
    } else {
        z.exp().ln_1p()
    }
}

fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

fn logistic(xs: &[&[f64]], ys: &[f64], dim: usize, c: f64) -> Result<(Vec<f64>, f64)> {
    let p = dim + 1;
    let mut theta = DVector::<f64>::zeros(p);
    let margin = |theta: &DVector<f64>, x: &[f64], y: f64| -> f64 {
        let f: f64 = x.iter().zip(theta.iter()).map(|(a, b)| a * b).sum::<f64>() + theta[dim];
        y * f
    };
    let objective = |theta: &DVector<f64>| -> f64 {
        let reg: f64 = theta.iter().take(dim).map(|v| v * v).sum::<f64>() * 0.5;
        reg + c * xs
            .iter()
            .zip(ys)
            .map(|(x, &y)| softplus(-margin(theta, x, y)))
            .sum::<f64>()
    };
    let mut f = objective(&theta);
    for _ in 0..100 {
        let mut grad = theta.clone();
        grad[dim] = 0.0;
        // Rows of sqrt(c s_i) x̂_i, so that BᵀB is the data part of the Hessian.
        let mut b = DMatrix::<f64>::zeros(xs.len(), p);
        for (i, (x, &y)) in xs.iter().zip(ys).enumerate() {
            let m = margin(&theta, x, y);
            let g = -c * y * sigmoid(-m);
            for (j, &v) in x.iter().enumerate() {
                grad[j] += g * v;
            }
            grad[dim] += g;
            let s = (c * sigmoid(m) * sigmoid(-m)).sqrt();
            for (j, &v) in x.iter().enumerate() {
                b[(i, j)] = s * v;
            }
            b[(i, dim)] = s;
        }
        if grad.amax() < 1e-10 * (1.0 + f.abs()) {
            break;
        }
        let mut h = b.tr_mul(&b);
        for j in 0..dim {
            h[(j, j)] += 1.0;
        }
        // The bias is unregularised; a tiny ridge keeps the Hessian positive definite when
        // every sample is confidently classified.
        h[(dim, dim)] += 1e-10;
        let step = h
            .cholesky()
            .ok_or_else(|| LatentError::Numeric("logistic regression Hessian is singular".into()))?
            .solve(&grad);
        // Backtracking line search on the objective (Armijo).
        let slope = grad.dot(&step);
        let mut t = 1.0;
        let mut improved = false;
        for _ in 0..40 {
            let candidate = &theta - &step * t;
            let fc = objective(&candidate);
            if fc <= f - 1e-4 * t * slope {
                theta = candidate;
                f = fc;
                improved = true;
                break;
            }
            t *= 0.5;
        }
        if !improved {
            break;
        }
    }
    Ok((theta.iter().take(dim).copied().collect(), theta[dim]))
}

fn svm(xs: &[&[f64]], ys: &[f64], dim: usize, c: f64, rng: &mut RandomState) -> (Vec<f64>, f64) {
    let n = xs.len();
    let mut w = vec![0.0f64; dim + 1];
    let mut alpha = vec![0.0f64; n];
    let qii: Vec<f64> = xs
        .iter()
        .map(|x| x.iter().map(|v| v * v).sum::<f64>() + 1.0)
        .collect();
    let mut order: Vec<usize> = (0..n).collect();
    for _epoch in 0..5000 {
        for i in (1..n).rev() {
            let j = ((rng.next_f64() * (i + 1) as f64) as usize).min(i);
            order.swap(i, j);
        }
        let (mut pg_max, mut pg_min) = (f64::NEG_INFINITY, f64::INFINITY);
        for &i in &order {
            let (x, y) = (xs[i], ys[i]);
            let f: f64 = x.iter().zip(&w).map(|(a, b)| a * b).sum::<f64>() + w[dim];
            let g = y * f - 1.0;
            let pg = if alpha[i] <= 0.0 {
                g.min(0.0)
            } else if alpha[i] >= c {
                g.max(0.0)
            } else {
                g
            };
            pg_max = pg_max.max(pg);
            pg_min = pg_min.min(pg);
            if pg.abs() > 1e-12 {
                let old = alpha[i];
                alpha[i] = (old - g / qii[i]).clamp(0.0, c);
                let delta = (alpha[i] - old) * y;
                for (wj, &v) in w.iter_mut().zip(x.iter()) {
                    *wj += delta * v;
                }
                w[dim] += delta;
            }
        }
        if pg_max - pg_min < 1e-6 {
            break;
        }
    }
    let b = w[dim];
    w.truncate(dim);
    (w, b)
}

/// Labels from scores: with `ratio > 0`, the top `ratio` fraction of latents by score are
/// positive and the bottom `ratio` fraction negative, the rest unused (InterFaceGAN's
/// selection of confident samples); otherwise `score > threshold` is positive. Returns the
/// chosen indices and their labels.
pub fn labels_from_scores(
    scores: &[f64],
    threshold: f64,
    ratio: f64,
) -> Result<(Vec<usize>, Vec<bool>)> {
    if scores.iter().any(|s| !s.is_finite()) {
        return invalid("the scores contain non-finite values");
    }
    if ratio <= 0.0 {
        let idx: Vec<usize> = (0..scores.len()).collect();
        let labels = scores.iter().map(|&s| s > threshold).collect();
        return Ok((idx, labels));
    }
    if ratio > 0.5 {
        return invalid(format!("select_ratio must be at most 0.5, got {ratio}"));
    }
    let take = ((scores.len() as f64 * ratio).floor() as usize).max(1);
    if 2 * take > scores.len() {
        return invalid(format!(
            "select_ratio {ratio} of {} latents leaves no separate top and bottom groups",
            scores.len()
        ));
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let mut idx = Vec::with_capacity(2 * take);
    let mut labels = Vec::with_capacity(2 * take);
    for &i in &order[..take] {
        idx.push(i);
        labels.push(true);
    }
    for &i in &order[order.len() - take..] {
        idx.push(i);
        labels.push(false);
    }
    Ok((idx, labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dot(a: &[f64], b: &[f64]) -> f64 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    /// A rotation of R^3 (about the axis (1,1,1)/sqrt(3) by 40 degrees), row-major.
    fn rotation() -> [[f64; 3]; 3] {
        let (s, c) = 40f64.to_radians().sin_cos();
        let u = [1.0 / 3f64.sqrt(); 3];
        let mut r = [[0.0; 3]; 3];
        for i in 0..3 {
            for j in 0..3 {
                let cross = match (i, j) {
                    (0, 1) => -u[2],
                    (0, 2) => u[1],
                    (1, 0) => u[2],
                    (1, 2) => -u[0],
                    (2, 0) => -u[1],
                    (2, 1) => u[0],
                    _ => 0.0,
                };
                r[i][j] = if i == j { c } else { 0.0 } + s * cross + (1.0 - c) * u[i] * u[j];
            }
        }
        r
    }

    #[test]
    fn sefa_on_a_tiny_affine_with_known_eigenvectors() {
        // Unnormalised: rows 3 e0, 2 e1, 1 e2 give AᵀA = diag(9, 4, 1).
        let a = [3.0, 0.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0, 1.0];
        let c = sefa(&a, 3, 3, 3, false).unwrap();
        assert_eq!(c.values.len(), 3);
        for (got, want) in c.values.iter().zip([9.0, 4.0, 1.0]) {
            assert!((got - want).abs() < 1e-12, "{:?}", c.values);
        }
        for (i, row) in c.vectors.chunks(3).enumerate() {
            assert!((row[i] - 1.0).abs() < 1e-12, "{row:?}");
        }
        // Normalised rows: three copies of e0, two of e1, one of e2 (scaled arbitrarily, as
        // weight gains would) -> AᵀA = diag(3, 2, 1) in the rotated basis r: eigenvectors are
        // the rows of R (the rotated axes), eigenvalues the copy counts.
        let r = rotation();
        let mut rows = Vec::new();
        for (axis, copies, scale) in [(0usize, 3usize, 5.0), (1, 2, 0.1), (2, 1, 7.0)] {
            for _ in 0..copies {
                rows.extend(r[axis].iter().map(|v| v * scale));
            }
        }
        let c = sefa(&rows, 6, 3, 2, true).unwrap();
        assert!(
            (c.values[0] - 3.0).abs() < 1e-10 && (c.values[1] - 2.0).abs() < 1e-10,
            "{:?}",
            c.values
        );
        for (i, row) in c.vectors.chunks(3).enumerate() {
            let cos = dot(row, &r[i]);
            assert!(
                (cos.abs() - 1.0).abs() < 1e-10,
                "component {i}: {row:?} vs {:?}",
                r[i]
            );
            // Canonical sign: the largest-magnitude entry is positive.
            let big = row
                .iter()
                .copied()
                .fold(0.0f64, |m, v| if v.abs() > m.abs() { v } else { m });
            assert!(big > 0.0);
        }
        assert!(sefa(&rows, 6, 3, 4, true).is_err());
        assert!(sefa(&rows, 5, 3, 1, true).is_err());
    }

    #[test]
    fn ganspace_on_planted_components() {
        // Points m ± 3u and m ± v (u, v orthonormal rows of a rotation): the covariance with
        // n - 1 = 3 is (2*9 uuᵀ + 2 vvᵀ)/3, so the components are u and v with standard
        // deviations sqrt(6) and sqrt(2/3), and the mean is m.
        let r = rotation();
        let m = [0.5, -1.0, 2.0];
        let (u, v) = (r[2], r[0]);
        let mut x = Vec::new();
        for (dir, s) in [(u, 3.0), (u, -3.0), (v, 1.0), (v, -1.0)] {
            x.extend((0..3).map(|j| m[j] + s * dir[j]));
        }
        let (c, mean) = ganspace(&x, 4, 3, 2).unwrap();
        for (a, b) in mean.iter().zip(m) {
            assert!((a - b).abs() < 1e-12);
        }
        assert!((c.values[0] - 6f64.sqrt()).abs() < 1e-10, "{:?}", c.values);
        assert!((c.values[1] - (2.0f64 / 3.0).sqrt()).abs() < 1e-10);
        assert!((dot(&c.vectors[0..3], &u).abs() - 1.0).abs() < 1e-10);
        assert!((dot(&c.vectors[3..6], &v).abs() - 1.0).abs() < 1e-10);
        assert!(ganspace(&x[..3], 1, 3, 1).is_err());
    }

    #[test]
    fn apply_direction_by_hand() {
        // One latent, 3 layers, dim 2.
        let ws = Latents::new(&[1, 3, 2], vec![0., 0., 1., 1., 2., 2.], "ws").unwrap();
        let dirs = [1.0f32, 0.0, 0.0, 2.0];
        // Sum: 2 * d0 + (-1) * d1 on layers 0 and 2.
        let out =
            apply_direction(&ws, &dirs, 2, &[2.0, -1.0], &[0, 2], ApplyMode::Sum, false).unwrap();
        assert_eq!(out.data, vec![2., -2., 1., 1., 4., 0.]);
        // Normalised: d1 becomes (0, 1).
        let out = apply_direction(&ws, &dirs, 2, &[1.0], &[1], ApplyMode::Sum, true).unwrap();
        assert_eq!(out.data, vec![0., 0., 2., 2., 2., 2.]);
        // Sweep: 2 directions x strengths (-1, 1) -> 4 items.
        let out =
            apply_direction(&ws, &dirs, 2, &[-1.0, 1.0], &[0], ApplyMode::Sweep, false).unwrap();
        assert_eq!(out.n, 4);
        assert_eq!(out.item(0)[..2], [-1., 0.]);
        assert_eq!(out.item(1)[..2], [1., 0.]);
        assert_eq!(out.item(2)[..2], [0., -2.]);
        assert_eq!(out.item(3)[..2], [0., 2.]);
        assert_eq!(out.item(3)[2..], [1., 1., 2., 2.]);
        // w_dim mismatch is named.
        let e = apply_direction(
            &ws,
            &[1.0, 0.0, 0.0],
            1,
            &[1.0],
            &[0],
            ApplyMode::Sum,
            false,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("dimension 3") && e.contains("w_dim 2"), "{e}");
        assert!(
            apply_direction(&ws, &dirs, 2, &[1.0, 2.0, 3.0], &[0], ApplyMode::Sum, false).is_err()
        );
        assert!(apply_direction(&ws, &dirs, 2, &[1.0], &[3], ApplyMode::Sum, false).is_err());
    }

    #[test]
    fn boundaries_on_symmetric_data_have_the_known_normal() {
        // Class by the sign of x0; x1 is symmetric within each class, so by symmetry the
        // logistic and max-margin normals are exactly (1, 0) with zero offset.
        let mut x = Vec::new();
        let mut labels = Vec::new();
        for &x0 in &[-2.0, -1.5, 1.5, 2.0] {
            for &x1 in &[-1.0, 0.0, 1.0] {
                x.extend([x0, x1]);
                labels.push(x0 > 0.0);
            }
        }
        for method in [Classifier::Logistic, Classifier::Svm] {
            let b = learn_boundary(
                &x,
                12,
                2,
                &labels,
                &BoundaryOptions {
                    method,
                    c: 10.0,
                    holdout: 0.0,
                    seed: 0,
                },
            )
            .unwrap();
            assert!(
                (b.normal[0] - 1.0).abs() < 1e-6,
                "{method:?}: {:?}",
                b.normal
            );
            assert!(b.normal[1].abs() < 1e-6, "{method:?}: {:?}", b.normal);
            assert!(b.offset.abs() < 1e-6, "{method:?}: {}", b.offset);
            assert_eq!(b.train_accuracy, 1.0);
            assert_eq!(b.val_accuracy, None);
        }
    }

    #[test]
    fn boundaries_recover_a_planted_direction() {
        // Gaussian latents in 24-D labelled by the side of a hidden hyperplane (with 5% label
        // noise): the learned normal must align with the hidden one and predict held-out data.
        let dim = 24;
        let n = 1500;
        let mut rng = RandomState::new(7);
        let mut hidden: Vec<f64> = rng.randn(dim);
        let norm = dot(&hidden, &hidden).sqrt();
        hidden.iter_mut().for_each(|v| *v /= norm);
        let x = rng.randn(n * dim);
        let labels: Vec<bool> = (0..n)
            .map(|i| {
                let side = dot(&x[i * dim..(i + 1) * dim], &hidden) > 0.3;
                if rng.next_f64() < 0.05 {
                    !side
                } else {
                    side
                }
            })
            .collect();
        for method in [Classifier::Logistic, Classifier::Svm] {
            let b = learn_boundary(
                &x,
                n,
                dim,
                &labels,
                &BoundaryOptions {
                    method,
                    c: 1.0,
                    holdout: 0.3,
                    seed: 1,
                },
            )
            .unwrap();
            let cos = dot(&b.normal, &hidden);
            assert!(cos > 0.97, "{method:?}: cos {cos}");
            assert_eq!(b.n_val, 450);
            let acc = b.val_accuracy.unwrap();
            assert!(acc > 0.85, "{method:?}: held-out accuracy {acc}");
            assert!(
                (b.offset + 0.3).abs() < 0.15,
                "{method:?}: offset {}",
                b.offset
            );
        }
        // One class only: a clear error.
        let e = learn_boundary(
            &x,
            n,
            dim,
            &vec![true; n],
            &BoundaryOptions {
                method: Classifier::Svm,
                c: 1.0,
                holdout: 0.3,
                seed: 1,
            },
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("same label"), "{e}");
    }

    #[test]
    fn score_selection() {
        let scores = [0.1, 0.9, 0.5, 0.3, 0.7, 0.2];
        let (idx, labels) = labels_from_scores(&scores, 0.4, 0.0).unwrap();
        assert_eq!(idx, vec![0, 1, 2, 3, 4, 5]);
        assert_eq!(labels, vec![false, true, true, false, true, false]);
        let (idx, labels) = labels_from_scores(&scores, 0.0, 1.0 / 3.0).unwrap();
        assert_eq!(idx, vec![1, 4, 5, 0]);
        assert_eq!(labels, vec![true, true, false, false]);
        assert!(labels_from_scores(&scores, 0.0, 0.6).is_err());
    }
}
