//! A bounds-checked front end to faer's `gemm` for the row-major f32 products of the
//! StyleGAN2 kernels.

/// `dst = lhs × rhs` (or `dst += lhs × rhs` when `accumulate`) on the rayon pool, all
/// matrices row-major with unit column stride and the given row strides: `dst` is m×n, `lhs`
/// m×k, `rhs` k×n.
///
/// Panics when a slice is too short for the strides given: callers derive all sizes from
/// shapes validated when the network was built, so this is a programming error.
#[allow(clippy::too_many_arguments)]
pub(crate) fn sgemm(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    dst_rs: usize,
    lhs: &[f32],
    lhs_rs: usize,
    rhs: &[f32],
    rhs_rs: usize,
    accumulate: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(
        n <= dst_rs && (m - 1) * dst_rs + n <= dst.len(),
        "gemm dst too short"
    );
    if k == 0 {
        if !accumulate {
            for row in 0..m {
                dst[row * dst_rs..row * dst_rs + n].fill(0.0);
            }
        }
        return;
    }
    assert!(
        k <= lhs_rs && (m - 1) * lhs_rs + k <= lhs.len(),
        "gemm lhs too short"
    );
    assert!(
        n <= rhs_rs && (k - 1) * rhs_rs + n <= rhs.len(),
        "gemm rhs too short"
    );
    // Uses the rayon pool (the caller does not parallelise around it).
    let parallelism = if rayon::current_num_threads() > 1 {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the asserts above guarantee that every element addressed through the given
    // strides lies inside the corresponding slice, rows of `dst` do not overlap (n <= dst_rs),
    // and `dst` is borrowed mutably so it cannot alias `lhs` or `rhs`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_rs as isize,
            accumulate,
            lhs.as_ptr(),
            1,
            lhs_rs as isize,
            rhs.as_ptr(),
            1,
            rhs_rs as isize,
            1.0f32,
            1.0f32,
            false,
            false,
            false,
            parallelism,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_product_with_strides_and_accumulation() {
        // lhs 2x3, rhs 3x2 stored with row stride 3, dst with row stride 4.
        let lhs = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let rhs = [1.0, 0.5, 9.0, 2.0, -1.0, 9.0, 0.0, 1.0, 9.0];
        let mut dst = [100.0f32; 8];
        sgemm(2, 2, 3, &mut dst, 4, &lhs, 3, &rhs, 3, false);
        // [1 2 3]·[[1 .5],[2 -1],[0 1]] = [5, 1.5]; [4 5 6]· = [14, 3]
        assert_eq!(dst, [5.0, 1.5, 100.0, 100.0, 14.0, 3.0, 100.0, 100.0]);
        sgemm(2, 2, 3, &mut dst, 4, &lhs, 3, &rhs, 3, true);
        assert_eq!(dst, [10.0, 3.0, 100.0, 100.0, 28.0, 6.0, 100.0, 100.0]);
    }
}
