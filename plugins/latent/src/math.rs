//! Latent-space arithmetic: seed lists, truncation, style mixing and blending.
//!
//! Everything here is plain functions over `f32`/`f64` slices with explicit shapes, so the
//! node layer only checks ports and converts tensors. Shapes are validated before any
//! indexing; nothing here panics on user data.

use crate::error::{invalid, shape_err, LatentError, Result};

/// The most seeds one list may name (a `[N, 512]` f64 batch of this many is 4 GiB).
pub const MAX_SEEDS: usize = 1 << 20;

/// A batch of latent vectors viewed as `[n, rows, dim]`.
///
/// `W` batches (`[n, dim]`) have `rows == 1`, `WPlus` batches (`[n, num_ws, dim]`) have
/// `rows == num_ws`. `rank` remembers which of `[dim]`, `[n, dim]`, `[n, rows, dim]` the data
/// came as, so results are returned in the same layout.
#[derive(Clone, Debug, PartialEq)]
pub struct Latents {
    pub n: usize,
    pub rows: usize,
    pub dim: usize,
    pub rank: usize,
    pub data: Vec<f32>,
}

impl Latents {
    /// Interprets `data` of `shape` (`[dim]`, `[n, dim]` or `[n, rows, dim]`).
    pub fn new(shape: &[usize], data: Vec<f32>, what: &str) -> Result<Latents> {
        let (n, rows, dim) = match *shape {
            [d] => (1, 1, d),
            [n, d] => (n, 1, d),
            [n, r, d] => (n, r, d),
            _ => {
                return shape_err(format!(
                "{what}: expected a latent batch [N, dim] or [N, num_ws, dim], got shape {shape:?}"
            ))
            }
        };
        if dim == 0 || rows == 0 {
            return shape_err(format!("{what}: empty latent shape {shape:?}"));
        }
        if n.checked_mul(rows).and_then(|v| v.checked_mul(dim)) != Some(data.len()) {
            return shape_err(format!(
                "{what}: {} values do not fill shape {shape:?}",
                data.len()
            ));
        }
        Ok(Latents {
            n,
            rows,
            dim,
            rank: shape.len(),
            data,
        })
    }

    /// A `[n, rows, dim]` batch.
    pub fn wplus(n: usize, rows: usize, dim: usize, data: Vec<f32>) -> Latents {
        debug_assert_eq!(data.len(), n * rows * dim);
        Latents {
            n,
            rows,
            dim,
            rank: 3,
            data,
        }
    }

    /// The shape in the layout the data came in (`[n, dim]` stays 2-D). A 1-D input comes back
    /// as `[1, dim]`: batch operations always produce batches.
    pub fn shape(&self) -> Vec<usize> {
        match self.rank {
            3 => vec![self.n, self.rows, self.dim],
            _ if self.rows == 1 => vec![self.n, self.dim],
            _ => vec![self.n, self.rows, self.dim],
        }
    }

    /// Values per batch item.
    pub fn item_len(&self) -> usize {
        self.rows * self.dim
    }

    /// Batch item `i` (`rows * dim` values). `i` must be `< n`.
    pub fn item(&self, i: usize) -> &[f32] {
        let len = self.item_len();
        &self.data[i * len..(i + 1) * len]
    }
}

/// Parses a seed list as the official tools accept it: comma-separated numbers and inclusive
/// ranges, e.g. `"0,3,5-9"` -> `[0, 3, 5, 6, 7, 8, 9]`. Order and repeats are kept. Seeds are
/// NumPy `RandomState` seeds, `0 ..= 4294967295`.
pub fn parse_seeds(text: &str) -> Result<Vec<u32>> {
    let err = |reason: String| LatentError::Parse {
        what: "seed list",
        text: text.to_owned(),
        reason,
    };
    let parse_one = |s: &str| -> Result<u32> {
        let s = s.trim();
        s.parse::<u64>()
            .map_err(|_| err(format!("{s:?} is not a non-negative integer")))
            .and_then(|v| {
                u32::try_from(v)
                    .map_err(|_| err(format!("seed {v} is above 4294967295 (NumPy's limit)")))
            })
    };
    let mut out = Vec::new();
    for part in text.split(',') {
        let part = part.trim();
        if part.is_empty() {
            return Err(err("empty entry (two commas, or a trailing comma)".into()));
        }
        // A '-' after the first character separates a range ("5-9"); a leading '-' would be a
        // negative number, which parse_one rejects with a clear message.
        match part.get(1..).and_then(|rest| rest.find('-')).map(|i| i + 1) {
            Some(dash) => {
                let (a, b) = (parse_one(&part[..dash])?, parse_one(&part[dash + 1..])?);
                if b < a {
                    return Err(err(format!("range {a}-{b} runs backwards")));
                }
                let count = (b - a) as usize + 1;
                if out.len() + count > MAX_SEEDS {
                    return Err(err(format!("more than {MAX_SEEDS} seeds")));
                }
                out.extend(a..=b);
            }
            None => {
                if out.len() >= MAX_SEEDS {
                    return Err(err(format!("more than {MAX_SEEDS} seeds")));
                }
                out.push(parse_one(part)?);
            }
        }
    }
    Ok(out)
}

/// Parses a list of indices below `limit`: `"all"`, `"3"`, `"0-6"`, `"0,2,8-11"`. The result is
/// sorted and free of repeats. `what` names the list in errors (e.g. "layer list").
pub fn parse_index_list(text: &str, limit: usize, what: &'static str) -> Result<Vec<usize>> {
    let err = |reason: String| LatentError::Parse {
        what,
        text: text.to_owned(),
        reason,
    };
    let t = text.trim();
    if t.eq_ignore_ascii_case("all") {
        return Ok((0..limit).collect());
    }
    if t.is_empty() {
        return Err(err("empty (use \"all\" for every index)".into()));
    }
    let parse_one = |s: &str| -> Result<usize> {
        let s = s.trim();
        let v = s
            .parse::<usize>()
            .map_err(|_| err(format!("{s:?} is not a non-negative integer")))?;
        if v >= limit {
            return Err(err(format!(
                "index {v} is out of range (there are {limit}: 0-{})",
                limit.saturating_sub(1)
            )));
        }
        Ok(v)
    };
    let mut mask = vec![false; limit];
    for part in t.split(',') {
        let part = part.trim();
        if part.is_empty() {
            return Err(err("empty entry".into()));
        }
        match part.get(1..).and_then(|rest| rest.find('-')).map(|i| i + 1) {
            Some(dash) => {
                let (a, b) = (parse_one(&part[..dash])?, parse_one(&part[dash + 1..])?);
                if b < a {
                    return Err(err(format!("range {a}-{b} runs backwards")));
                }
                for m in &mut mask[a..=b] {
                    *m = true;
                }
            }
            None => {
                let v = parse_one(part)?;
                mask[v] = true;
            }
        }
    }
    Ok(mask
        .iter()
        .enumerate()
        .filter_map(|(i, &m)| m.then_some(i))
        .collect())
}

/// Parses a list of numbers: `"1.5"`, `"-3,0,3"`, or `"start:stop:count"` for `count` evenly
/// spaced values from `start` to `stop` inclusive (like `numpy.linspace`), or a mix of these
/// separated by commas.
pub fn parse_float_list(text: &str, what: &'static str) -> Result<Vec<f64>> {
    let err = |reason: String| LatentError::Parse {
        what,
        text: text.to_owned(),
        reason,
    };
    let num = |s: &str| -> Result<f64> {
        let s = s.trim();
        match s.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(v),
            _ => Err(err(format!("{s:?} is not a finite number"))),
        }
    };
    let mut out = Vec::new();
    for part in text.split(',') {
        let part = part.trim();
        if part.is_empty() {
            return Err(err("empty entry".into()));
        }
        let pieces: Vec<&str> = part.split(':').collect();
        match pieces.as_slice() {
            [v] => out.push(num(v)?),
            [a, b, c] => {
                let (a, b) = (num(a)?, num(b)?);
                let count = c
                    .trim()
                    .parse::<usize>()
                    .map_err(|_| err(format!("count {c:?} is not a positive integer")))?;
                if count == 0 || count > 100_000 {
                    return Err(err(format!("count {count} must be 1..=100000")));
                }
                if count == 1 {
                    out.push(a);
                } else {
                    let step = (b - a) / (count - 1) as f64;
                    out.extend((0..count).map(|i| {
                        if i == count - 1 {
                            b
                        } else {
                            a + step * i as f64
                        }
                    }));
                }
            }
            _ => return Err(err(format!("{part:?}: use a number or start:stop:count"))),
        }
    }
    Ok(out)
}

/// `torch.lerp(a, b, t)` in float32, bit for bit: PyTorch's CPU kernel picks the end it
/// interpolates from by `|t| < 0.5` (so that `t = 1` gives exactly `b`) and computes with a
/// fused multiply-add.
#[inline]
pub fn torch_lerp(a: f32, b: f32, t: f32) -> f32 {
    let diff = b - a;
    if t.abs() < 0.5 {
        t.mul_add(diff, a)
    } else {
        (t - 1.0).mul_add(diff, b)
    }
}

/// The truncation trick: `w_avg.lerp(w, psi)` for the rows `< cutoff` of every batch item (all
/// rows when `cutoff` is `None`), as the official mapping network does it.
///
/// `w_avg` has `ws.dim` values. A `W` batch (`rows == 1`) is truncated whole when `cutoff` is
/// `None` or positive.
pub fn truncate(ws: &Latents, w_avg: &[f32], psi: f32, cutoff: Option<usize>) -> Result<Latents> {
    if w_avg.len() != ws.dim {
        return shape_err(format!(
            "w_avg has {} values but the latents have w_dim {}",
            w_avg.len(),
            ws.dim
        ));
    }
    if !psi.is_finite() {
        return invalid(format!("psi must be a finite number, got {psi}"));
    }
    let rows = cutoff.map_or(ws.rows, |c| c.min(ws.rows));
    let mut out = ws.clone();
    for item in out.data.chunks_exact_mut(ws.item_len()) {
        for row in item.chunks_exact_mut(ws.dim).take(rows) {
            for (x, &avg) in row.iter_mut().zip(w_avg) {
                *x = torch_lerp(avg, *x, psi);
            }
        }
    }
    Ok(out)
}

/// How [`style_mix`] pairs the two batches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MixLayout {
    /// Item `i` mixes `row[i]` with `col[i]` (a batch of 1 is broadcast).
    Pairs,
    /// Every row with every column: item `i * cols + j` mixes `row[i]` with `col[j]`.
    Grid,
    /// The official `style_mixing.py` grid as a flat batch, row-major over
    /// `(rows + 1) x (cols + 1)` cells without the empty top-left one: first the `cols` column
    /// sources, then for each row its source followed by its `cols` mixes.
    OfficialGrid,
}

impl MixLayout {
    /// Parses `pairs` | `grid` | `official_grid`.
    pub fn parse(s: &str) -> Result<MixLayout> {
        Ok(match s {
            "pairs" => MixLayout::Pairs,
            "grid" => MixLayout::Grid,
            "official_grid" => MixLayout::OfficialGrid,
            _ => return invalid(format!("unknown layout {s:?} (pairs, grid, official_grid)")),
        })
    }
}

/// Style mixing with the official semantics: `w = row.clone(); w[layers] = col[layers]`, i.e.
/// the result is the row latent except that the listed layers (rows of `WPlus`) come from the
/// column latent.
pub fn style_mix(
    row: &Latents,
    col: &Latents,
    layers: &[usize],
    layout: MixLayout,
) -> Result<Latents> {
    if row.rows != col.rows || row.dim != col.dim {
        return shape_err(format!(
            "row latents are [N, {}, {}] but column latents are [N, {}, {}]",
            row.rows, row.dim, col.rows, col.dim
        ));
    }
    if row.rank != 3 || col.rank != 3 {
        return shape_err("style mixing needs WPlus latents [N, num_ws, w_dim]");
    }
    if let Some(&bad) = layers.iter().find(|&&l| l >= row.rows) {
        return invalid(format!(
            "layer {bad} is out of range: the latents have {} layers (0-{})",
            row.rows,
            row.rows - 1
        ));
    }
    if row.n == 0 || col.n == 0 {
        return shape_err("style mixing needs at least one row and one column latent");
    }
    let (l, d) = (row.rows, row.dim);
    let mix = |out: &mut Vec<f32>, r: &[f32], c: &[f32]| {
        let start = out.len();
        out.extend_from_slice(r);
        let item = &mut out[start..];
        for &layer in layers {
            item[layer * d..(layer + 1) * d].copy_from_slice(&c[layer * d..(layer + 1) * d]);
        }
    };
    let mut data = Vec::new();
    let n = match layout {
        MixLayout::Pairs => {
            let n = row.n.max(col.n);
            if (row.n != n && row.n != 1) || (col.n != n && col.n != 1) {
                return shape_err(format!(
                    "pairs layout needs equal batch sizes (or one of 1), got {} rows and {} columns",
                    row.n, col.n
                ));
            }
            for i in 0..n {
                mix(
                    &mut data,
                    row.item(i.min(row.n - 1)),
                    col.item(i.min(col.n - 1)),
                );
            }
            n
        }
        MixLayout::Grid => {
            for i in 0..row.n {
                for j in 0..col.n {
                    mix(&mut data, row.item(i), col.item(j));
                }
            }
            row.n * col.n
        }
        MixLayout::OfficialGrid => {
            for j in 0..col.n {
                data.extend_from_slice(col.item(j));
            }
            for i in 0..row.n {
                data.extend_from_slice(row.item(i));
                for j in 0..col.n {
                    mix(&mut data, row.item(i), col.item(j));
                }
            }
            (row.n + 1) * (col.n + 1) - 1
        }
    };
    Ok(Latents::wplus(n, l, d, data))
}

/// Spherical interpolation of two vectors (any length), computed in f64: the angle between
/// them is interpolated and the magnitude follows the same weights. Falls back to linear
/// interpolation when the vectors are (anti)parallel within rounding.
pub fn slerp(a: &[f32], b: &[f32], t: f64, out: &mut [f32]) {
    let (mut ab, mut aa, mut bb) = (0.0f64, 0.0f64, 0.0f64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (x as f64, y as f64);
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    let denom = (aa * bb).sqrt();
    let cos = if denom > 0.0 {
        (ab / denom).clamp(-1.0, 1.0)
    } else {
        1.0
    };
    let omega = cos.acos();
    let sin = omega.sin();
    let (wa, wb) = if sin.abs() < 1e-7 {
        (1.0 - t, t)
    } else {
        (((1.0 - t) * omega).sin() / sin, (t * omega).sin() / sin)
    };
    for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
        *o = (wa * x as f64 + wb * y as f64) as f32;
    }
}

/// How [`blend`] combines latents.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum BlendMode {
    /// `a + t (b - a)` element-wise (PyTorch's `lerp`).
    Lerp,
    /// Spherical interpolation of each `dim`-vector.
    Slerp,
}

/// Blends `a` and `b` (same shape, or one of them a batch of 1 that is broadcast).
pub fn blend(a: &Latents, b: &Latents, t: f64, mode: BlendMode) -> Result<Latents> {
    if a.rows != b.rows || a.dim != b.dim {
        return shape_err(format!(
            "a is {:?} but b is {:?}: the latents must have the same layer count and dimension",
            a.shape(),
            b.shape()
        ));
    }
    let n = a.n.max(b.n);
    if (a.n != n && a.n != 1) || (b.n != n && b.n != 1) || n == 0 {
        return shape_err(format!(
            "batch sizes {} and {} do not match (one may be 1)",
            a.n, b.n
        ));
    }
    let mut out = Latents {
        n,
        rows: a.rows,
        dim: a.dim,
        rank: a.rank.max(b.rank),
        data: vec![0.0; n * a.item_len()],
    };
    let len = a.item_len();
    for (i, o) in out.data.chunks_exact_mut(len).enumerate() {
        let (x, y) = (a.item(i.min(a.n - 1)), b.item(i.min(b.n - 1)));
        match mode {
            BlendMode::Lerp => {
                let t = t as f32;
                for ((o, &x), &y) in o.iter_mut().zip(x).zip(y) {
                    *o = torch_lerp(x, y, t);
                }
            }
            BlendMode::Slerp => {
                for ((o, x), y) in o
                    .chunks_exact_mut(a.dim)
                    .zip(x.chunks_exact(a.dim))
                    .zip(y.chunks_exact(a.dim))
                {
                    slerp(x, y, t, o);
                }
            }
        }
    }
    Ok(out)
}

/// Weighted mean of the items of a batch: `sum_i w_i x_i / sum_i w_i`, computed in f64.
/// Empty `weights` means equal weights. The result is a batch of one.
pub fn weighted_mean(x: &Latents, weights: &[f64]) -> Result<Latents> {
    if x.n == 0 {
        return shape_err("the mean of an empty batch is undefined");
    }
    let w: Vec<f64> = if weights.is_empty() {
        vec![1.0; x.n]
    } else if weights.len() == x.n {
        weights.to_vec()
    } else {
        return invalid(format!(
            "{} weights given for a batch of {} latents",
            weights.len(),
            x.n
        ));
    };
    let total: f64 = w.iter().sum();
    if total.abs() < 1e-12 {
        return invalid("the weights sum to zero");
    }
    let len = x.item_len();
    let mut acc = vec![0.0f64; len];
    for (i, &wi) in w.iter().enumerate() {
        for (a, &v) in acc.iter_mut().zip(x.item(i)) {
            *a += wi * v as f64;
        }
    }
    Ok(Latents {
        n: 1,
        rows: x.rows,
        dim: x.dim,
        rank: x.rank.max(2),
        data: acc.into_iter().map(|v| (v / total) as f32).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_lists_follow_the_official_syntax() {
        assert_eq!(parse_seeds("0,3,5-9").unwrap(), vec![0, 3, 5, 6, 7, 8, 9]);
        assert_eq!(parse_seeds(" 85 ").unwrap(), vec![85]);
        assert_eq!(parse_seeds("4,2,2").unwrap(), vec![4, 2, 2]);
        assert_eq!(parse_seeds("4294967295").unwrap(), vec![u32::MAX]);
        for bad in [
            "",
            "1,,2",
            "9-5",
            "-1",
            "x",
            "4294967296",
            "1-2-3",
            "0-2000000",
        ] {
            let e = parse_seeds(bad).unwrap_err().to_string();
            assert!(e.contains("seed list"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn index_lists() {
        assert_eq!(
            parse_index_list("all", 4, "layer list").unwrap(),
            vec![0, 1, 2, 3]
        );
        assert_eq!(
            parse_index_list("0-6", 16, "layer list").unwrap(),
            (0..7).collect::<Vec<_>>()
        );
        assert_eq!(
            parse_index_list("5,1-2,1", 8, "layer list").unwrap(),
            vec![1, 2, 5]
        );
        let e = parse_index_list("0-16", 16, "layer list")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("16 is out of range") && e.contains("0-15"),
            "{e}"
        );
        assert!(parse_index_list("", 4, "layer list").is_err());
    }

    #[test]
    fn float_lists_and_linspace() {
        assert_eq!(parse_float_list("1.5", "s").unwrap(), vec![1.5]);
        assert_eq!(
            parse_float_list("-3:3:5", "s").unwrap(),
            vec![-3.0, -1.5, 0.0, 1.5, 3.0]
        );
        assert_eq!(
            parse_float_list("2, -1:1:3", "s").unwrap(),
            vec![2.0, -1.0, 0.0, 1.0]
        );
        assert!(parse_float_list("1:2", "s").is_err());
        assert!(parse_float_list("nan", "s").is_err());
        assert!(parse_float_list("0:1:0", "s").is_err());
    }

    #[test]
    fn lerp_is_two_sided() {
        // |t| < 0.5 interpolates from a, otherwise from b: t = 1 gives b exactly even where
        // a + 1 * (b - a) would round.
        let (a, b) = (1.0e8f32, 1.0f32);
        assert_eq!(torch_lerp(a, b, 1.0), b);
        assert_eq!(torch_lerp(a, b, 0.0), a);
        assert_eq!(torch_lerp(2.0, 4.0, 0.25), 2.5);
        assert_eq!(torch_lerp(2.0, 4.0, 0.75), 3.5);
        assert_eq!(torch_lerp(2.0, 4.0, 1.5), 5.0);
        assert_eq!(torch_lerp(2.0, 4.0, -0.5), 1.0);
    }

    #[test]
    fn truncation_by_hand() {
        // Two items, two rows, dim 2. psi = 0.5: halfway to w_avg. cutoff 1: first row only.
        let ws = Latents::new(&[2, 2, 2], vec![1., 2., 3., 4., 5., 6., 7., 8.], "ws").unwrap();
        let avg = [1.0, 0.0];
        let all = truncate(&ws, &avg, 0.5, None).unwrap();
        assert_eq!(all.data, vec![1., 1., 2., 2., 3., 3., 4., 4.]);
        let first = truncate(&ws, &avg, 0.5, Some(1)).unwrap();
        assert_eq!(first.data, vec![1., 1., 3., 4., 3., 3., 7., 8.]);
        // psi = 0 collapses onto w_avg, psi = 1 is the identity.
        assert!(truncate(&ws, &avg, 0.0, None)
            .unwrap()
            .data
            .chunks(2)
            .all(|r| r == avg));
        assert_eq!(truncate(&ws, &avg, 1.0, None).unwrap().data, ws.data);
        // psi > 1 extrapolates away from w_avg.
        assert_eq!(
            truncate(&ws, &avg, 2.0, Some(1)).unwrap().data[..2],
            [1., 4.]
        );
        let e = truncate(&ws, &[0.0; 3], 0.5, None).unwrap_err().to_string();
        assert!(e.contains("w_dim 2"), "{e}");
    }

    fn wp(n: usize, base: f32) -> Latents {
        // Item i, layer l, component c = base + 100 i + 10 l + c.
        let mut data = Vec::new();
        for i in 0..n {
            for l in 0..3 {
                for c in 0..2 {
                    data.push(base + 100.0 * i as f32 + 10.0 * l as f32 + c as f32);
                }
            }
        }
        Latents::new(&[n, 3, 2], data, "t").unwrap()
    }

    #[test]
    fn style_mix_layouts() {
        let rows = wp(2, 0.0);
        let cols = wp(2, 1000.0);
        let pairs = style_mix(&rows, &cols, &[0, 2], MixLayout::Pairs).unwrap();
        assert_eq!(pairs.shape(), vec![2, 3, 2]);
        // Item 1: layers 0 and 2 from col 1, layer 1 from row 1.
        assert_eq!(pairs.item(1), &[1100., 1101., 110., 111., 1120., 1121.]);
        let grid = style_mix(&rows, &cols, &[1], MixLayout::Grid).unwrap();
        assert_eq!(grid.n, 4);
        // Row 1 x col 0.
        assert_eq!(grid.item(2), &[100., 101., 1010., 1011., 120., 121.]);
        let off = style_mix(&rows, &cols, &[1], MixLayout::OfficialGrid).unwrap();
        assert_eq!(off.n, 8);
        assert_eq!(off.item(0), cols.item(0));
        assert_eq!(off.item(1), cols.item(1));
        assert_eq!(off.item(2), rows.item(0));
        assert_eq!(off.item(3), grid.item(0));
        assert_eq!(off.item(4), grid.item(1));
        assert_eq!(off.item(5), rows.item(1));
        assert_eq!(off.item(7), grid.item(3));
        let e = style_mix(&rows, &cols, &[3], MixLayout::Pairs)
            .unwrap_err()
            .to_string();
        assert!(e.contains("layer 3"), "{e}");
        let w = Latents::new(&[2, 2], vec![0.0; 4], "w").unwrap();
        assert!(style_mix(&w, &w, &[0], MixLayout::Pairs).is_err());
    }

    #[test]
    fn slerp_by_hand() {
        // Unit vectors 90 degrees apart: halfway is the 45 degree unit vector.
        let mut o = [0.0f32; 2];
        slerp(&[1.0, 0.0], &[0.0, 1.0], 0.5, &mut o);
        let h = std::f32::consts::FRAC_1_SQRT_2;
        assert!((o[0] - h).abs() < 1e-7 && (o[1] - h).abs() < 1e-7, "{o:?}");
        // A third of the way: cos 30, sin 30.
        slerp(&[2.0, 0.0], &[0.0, 2.0], 1.0 / 3.0, &mut o);
        assert!(
            (o[0] - 3f32.sqrt()).abs() < 1e-6 && (o[1] - 1.0).abs() < 1e-6,
            "{o:?}"
        );
        // Parallel vectors fall back to lerp.
        slerp(&[1.0, 1.0], &[3.0, 3.0], 0.5, &mut o);
        assert_eq!(o, [2.0, 2.0]);
    }

    #[test]
    fn blend_and_mean() {
        let a = Latents::new(&[1, 2], vec![0.0, 2.0], "a").unwrap();
        let b = Latents::new(&[2, 2], vec![4.0, 2.0, 8.0, 6.0], "b").unwrap();
        let l = blend(&a, &b, 0.25, BlendMode::Lerp).unwrap();
        assert_eq!(l.data, vec![1.0, 2.0, 2.0, 3.0]);
        assert_eq!(l.shape(), vec![2, 2]);
        let m = weighted_mean(&b, &[1.0, 3.0]).unwrap();
        assert_eq!(m.data, vec![7.0, 5.0]);
        assert_eq!(weighted_mean(&b, &[]).unwrap().data, vec![6.0, 4.0]);
        assert!(weighted_mean(&b, &[1.0]).is_err());
        assert!(weighted_mean(&b, &[1.0, -1.0]).is_err());
        let c = Latents::new(&[2, 3], vec![0.0; 6], "c").unwrap();
        assert!(blend(&a, &c, 0.5, BlendMode::Lerp).is_err());
    }
}
