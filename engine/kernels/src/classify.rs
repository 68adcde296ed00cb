//! Binary classification helpers for the synthetic-image detectors: L2-regularised logistic
//! regression on standardised features (fitted by Newton's method), a stratified hold-out split,
//! and the evaluation measures the detection literature reports (ROC AUC, average precision,
//! accuracy at a threshold, per-class accuracies).

/// Errors of the classification helpers.
#[derive(Debug, thiserror::Error)]
pub enum ClassifyError {
    #[error("{0}")]
    Invalid(String),
}

/// A logistic-regression model over standardised features: `p = sigmoid(w . (x - mean) / scale + b)`.
#[derive(Clone, Debug, PartialEq)]
pub struct LogisticModel {
    pub mean: Vec<f64>,
    pub scale: Vec<f64>,
    pub weights: Vec<f64>,
    pub bias: f64,
}

fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// Solves `a x = b` for a symmetric positive definite `a` (`n x n`, row-major) by Cholesky.
fn cholesky_solve(a: &[f64], b: &[f64], n: usize) -> Result<Vec<f64>, ClassifyError> {
    let mut l = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let mut s = a[i * n + j];
            for k in 0..j {
                s -= l[i * n + k] * l[j * n + k];
            }
            if i == j {
                // NaN fails this test too.
                if s.is_nan() || s <= 0.0 {
                    return Err(ClassifyError::Invalid(
                        "normal equations are not positive definite".into(),
                    ));
                }
                l[i * n + i] = s.sqrt();
            } else {
                l[i * n + j] = s / l[j * n + j];
            }
        }
    }
    let mut y = vec![0.0; n];
    for i in 0..n {
        let mut s = b[i];
        for k in 0..i {
            s -= l[i * n + k] * y[k];
        }
        y[i] = s / l[i * n + i];
    }
    let mut x = vec![0.0; n];
    for i in (0..n).rev() {
        let mut s = y[i];
        for k in i + 1..n {
            s -= l[k * n + i] * x[k];
        }
        x[i] = s / l[i * n + i];
    }
    Ok(x)
}

impl LogisticModel {
    /// Fits the model to feature rows `x` with labels `y` (true = synthetic). Features are
    /// standardised with the training mean and standard deviation; `l2` penalises the weights
    /// (not the bias), which keeps the fit finite on separable data.
    pub fn fit(x: &[Vec<f64>], y: &[bool], l2: f64) -> Result<LogisticModel, ClassifyError> {
        let n = x.len();
        if n == 0 || n != y.len() {
            return Err(ClassifyError::Invalid(format!(
                "need as many labels as feature rows (got {n} rows, {} labels)",
                y.len()
            )));
        }
        let d = x[0].len();
        if d == 0
            || x.iter()
                .any(|r| r.len() != d || r.iter().any(|v| !v.is_finite()))
        {
            return Err(ClassifyError::Invalid(
                "feature rows must be non-empty, finite and of equal length".into(),
            ));
        }
        if !y.iter().any(|&v| v) || y.iter().all(|&v| v) {
            return Err(ClassifyError::Invalid(
                "training needs examples of both classes".into(),
            ));
        }
        if !(l2 > 0.0 && l2.is_finite()) {
            return Err(ClassifyError::Invalid(format!(
                "l2 must be positive (got {l2})"
            )));
        }
        let mut mean = vec![0.0; d];
        for r in x {
            for (m, v) in mean.iter_mut().zip(r) {
                *m += v / n as f64;
            }
        }
        let mut scale = vec![0.0; d];
        for r in x {
            for ((s, v), m) in scale.iter_mut().zip(r).zip(&mean) {
                *s += (v - m) * (v - m) / n as f64;
            }
        }
        for s in scale.iter_mut() {
            *s = if *s > 1e-24 { s.sqrt() } else { 1.0 };
        }
        let z: Vec<Vec<f64>> = x
            .iter()
            .map(|r| {
                let mut v: Vec<f64> = r
                    .iter()
                    .zip(&mean)
                    .zip(&scale)
                    .map(|((v, m), s)| (v - m) / s)
                    .collect();
                v.push(1.0);
                v
            })
            .collect();
        let p = d + 1;
        let mut theta = vec![0.0; p];
        for _ in 0..100 {
            let mut grad = vec![0.0; p];
            let mut hess = vec![0.0; p * p];
            for (row, &label) in z.iter().zip(y) {
                let s: f64 = row.iter().zip(&theta).map(|(a, b)| a * b).sum();
                let q = sigmoid(s);
                let r = q - if label { 1.0 } else { 0.0 };
                let wgt = (q * (1.0 - q)).max(1e-12);
                for i in 0..p {
                    grad[i] += r * row[i];
                    let wi = wgt * row[i];
                    for j in 0..=i {
                        hess[i * p + j] += wi * row[j];
                    }
                }
            }
            for i in 0..p {
                for j in 0..i {
                    hess[j * p + i] = hess[i * p + j];
                }
            }
            for i in 0..d {
                grad[i] += l2 * theta[i];
                hess[i * p + i] += l2;
            }
            let step = cholesky_solve(&hess, &grad, p)?;
            let norm: f64 = step.iter().map(|v| v * v).sum::<f64>().sqrt();
            theta.iter_mut().zip(&step).for_each(|(t, s)| *t -= s);
            if norm < 1e-10 {
                break;
            }
        }
        let bias = theta[d];
        theta.truncate(d);
        Ok(LogisticModel {
            mean,
            scale,
            weights: theta,
            bias,
        })
    }

    /// The number of features the model expects.
    pub fn dim(&self) -> usize {
        self.weights.len()
    }

    /// The logit for one feature row.
    pub fn logit(&self, x: &[f64]) -> Result<f64, ClassifyError> {
        if x.len() != self.weights.len()
            || self.mean.len() != x.len()
            || self.scale.len() != x.len()
        {
            return Err(ClassifyError::Invalid(format!(
                "model expects {} features, got {}",
                self.weights.len(),
                x.len()
            )));
        }
        Ok(self.bias
            + x.iter()
                .zip(&self.mean)
                .zip(&self.scale)
                .zip(&self.weights)
                .map(|(((v, m), s), w)| (v - m) / s * w)
                .sum::<f64>())
    }

    /// The probability that a feature row belongs to the positive (synthetic) class.
    pub fn probability(&self, x: &[f64]) -> Result<f64, ClassifyError> {
        Ok(sigmoid(self.logit(x)?))
    }
}

/// Splits `labels` into training and held-out indices, keeping `holdout` (0..1) of each class
/// out, chosen by a deterministic shuffle from `seed`. Each class keeps at least one example on
/// each side when it has two or more.
pub fn stratified_split(labels: &[bool], holdout: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut state = seed ^ 0x5DEE_CE66_D1CE_4E5B;
    let mut next = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let mut train = Vec::new();
    let mut test = Vec::new();
    for class in [false, true] {
        let mut idx: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == class).collect();
        for i in (1..idx.len()).rev() {
            let j = (next() % (i as u64 + 1)) as usize;
            idx.swap(i, j);
        }
        let mut k = (idx.len() as f64 * holdout.clamp(0.0, 1.0)).round() as usize;
        if idx.len() >= 2 {
            k = k.clamp(1, idx.len() - 1);
        }
        test.extend_from_slice(&idx[..k]);
        train.extend_from_slice(&idx[k..]);
    }
    train.sort_unstable();
    test.sort_unstable();
    (train, test)
}

/// Area under the ROC curve (probability that a random positive scores above a random
/// negative, ties counting half). None unless both classes are present.
pub fn roc_auc(scores: &[f64], labels: &[bool]) -> Option<f64> {
    let n_pos = labels.iter().filter(|&&l| l).count();
    let n_neg = labels.len() - n_pos;
    if n_pos == 0 || n_neg == 0 || scores.len() != labels.len() {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Average ranks over ties (Mann-Whitney U).
    let mut rank_sum_pos = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let avg_rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            if labels[k] {
                rank_sum_pos += avg_rank;
            }
        }
        i = j + 1;
    }
    let u = rank_sum_pos - (n_pos * (n_pos + 1)) as f64 / 2.0;
    Some(u / (n_pos as f64 * n_neg as f64))
}

/// Average precision: the sum over decreasing score thresholds of the precision times the gain
/// in recall (the step-wise area under the precision-recall curve, as scikit-learn computes it).
/// None without positives.
pub fn average_precision(scores: &[f64], labels: &[bool]) -> Option<f64> {
    let n_pos = labels.iter().filter(|&&l| l).count();
    if n_pos == 0 || scores.len() != labels.len() {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut prev_recall = 0.0;
    let mut ap = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        for &k in &order[i..=j] {
            if labels[k] {
                tp += 1;
            } else {
                fp += 1;
            }
        }
        let recall = tp as f64 / n_pos as f64;
        let precision = tp as f64 / (tp + fp) as f64;
        ap += (recall - prev_recall) * precision;
        prev_recall = recall;
        i = j + 1;
    }
    Some(ap)
}

/// Evaluation of scores against labels at a decision threshold (`score > threshold` means
/// synthetic, as in Wang et al.'s evaluation).
#[derive(Clone, Debug, PartialEq)]
pub struct BinarySummary {
    pub count: usize,
    pub positives: usize,
    pub threshold: f64,
    /// Fraction of all images classified correctly.
    pub accuracy: f64,
    /// Fraction of real images classified real (None without real images).
    pub real_accuracy: Option<f64>,
    /// Fraction of synthetic images classified synthetic (None without synthetic images).
    pub fake_accuracy: Option<f64>,
    pub auc: Option<f64>,
    pub average_precision: Option<f64>,
}

/// Summarises scores against labels at `threshold`.
pub fn summarize(
    scores: &[f64],
    labels: &[bool],
    threshold: f64,
) -> Result<BinarySummary, ClassifyError> {
    if scores.len() != labels.len() || scores.is_empty() {
        return Err(ClassifyError::Invalid(format!(
            "need one label per score (got {} scores, {} labels)",
            scores.len(),
            labels.len()
        )));
    }
    let (mut ok, mut ok_real, mut n_real, mut ok_fake, mut n_fake) = (0, 0, 0, 0, 0);
    for (&s, &l) in scores.iter().zip(labels) {
        let pred = s > threshold;
        if pred == l {
            ok += 1;
        }
        if l {
            n_fake += 1;
            ok_fake += usize::from(pred);
        } else {
            n_real += 1;
            ok_real += usize::from(!pred);
        }
    }
    let frac = |a: usize, b: usize| (b > 0).then(|| a as f64 / b as f64);
    Ok(BinarySummary {
        count: scores.len(),
        positives: n_fake,
        threshold,
        accuracy: ok as f64 / scores.len() as f64,
        real_accuracy: frac(ok_real, n_real),
        fake_accuracy: frac(ok_fake, n_fake),
        auc: roc_auc(scores, labels),
        average_precision: average_precision(scores, labels),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_and_ap_match_hand_computed_values() {
        // Scores (label): 0.9(P) 0.8(N) 0.7(P) 0.6(P) 0.2(N).
        let s = [0.9, 0.8, 0.7, 0.6, 0.2];
        let l = [true, false, true, true, false];
        // Pairs P>N: 0.9 beats both, 0.7 and 0.6 beat 0.2 only: 4 of 6.
        assert!((roc_auc(&s, &l).unwrap() - 4.0 / 6.0).abs() < 1e-12);
        // AP = 1/3*1 + 1/3*(2/3) + 1/3*(3/4).
        let ap = (1.0 + 2.0 / 3.0 + 0.75) / 3.0;
        assert!((average_precision(&s, &l).unwrap() - ap).abs() < 1e-12);
        // Ties count half.
        assert_eq!(roc_auc(&[0.5, 0.5], &[true, false]), Some(0.5));
        assert_eq!(roc_auc(&[0.5, 0.5], &[true, true]), None);
    }

    #[test]
    fn summary_counts_per_class() {
        let s = [0.9, 0.8, 0.7, 0.6, 0.2];
        let l = [true, false, true, true, false];
        let r = summarize(&s, &l, 0.65).unwrap();
        assert_eq!(r.accuracy, 3.0 / 5.0);
        assert_eq!(r.real_accuracy, Some(0.5));
        assert_eq!(r.fake_accuracy, Some(2.0 / 3.0));
        assert!(summarize(&s, &l[..2], 0.5).is_err());
    }

    #[test]
    fn logistic_regression_recovers_a_linear_boundary() {
        // Points on a grid; label = x0 + 2 x1 > 1 with a margin.
        let mut x = Vec::new();
        let mut y = Vec::new();
        for i in 0..20 {
            for j in 0..20 {
                let (a, b) = (i as f64 / 10.0 - 1.0, j as f64 / 10.0 - 1.0);
                let v = a + 2.0 * b - 0.5;
                if v.abs() > 0.1 {
                    x.push(vec![a, b, 3.0]);
                    y.push(v > 0.0);
                }
            }
        }
        let m = LogisticModel::fit(&x, &y, 1e-3).unwrap();
        let correct = x
            .iter()
            .zip(&y)
            .filter(|(r, &l)| (m.probability(r).unwrap() > 0.5) == l)
            .count();
        assert_eq!(correct, x.len());
        // Direction of the learned weights (in raw units) is (1, 2).
        let w0 = m.weights[0] / m.scale[0];
        let w1 = m.weights[1] / m.scale[1];
        assert!((w1 / w0 - 2.0).abs() < 0.2, "ratio {}", w1 / w0);
        assert!(m.logit(&[0.0]).is_err());
        assert!(LogisticModel::fit(&x, &vec![true; x.len()], 1e-3).is_err());
    }

    #[test]
    fn split_is_stratified_and_deterministic() {
        let labels: Vec<bool> = (0..50).map(|i| i % 5 == 0).collect();
        let (tr, te) = stratified_split(&labels, 0.2, 9);
        assert_eq!(tr.len() + te.len(), 50);
        assert_eq!(te.iter().filter(|&&i| labels[i]).count(), 2);
        assert_eq!(te.iter().filter(|&&i| !labels[i]).count(), 8);
        assert_eq!(stratified_split(&labels, 0.2, 9), (tr, te));
    }
}
