//! Single-precision matrix multiply over strided row-major views.
//!
//! Backed by faer's `gemm` crate. Choice: measured single-threaded on the SG3-T conv shapes
//! (m = Cout 32..512; k = 9·Cin up to 4608 for im2col, k = Cin 32..512 for Winograd;
//! n = 1k..17k columns) on the 2-core AVX2 dev VM, `gemm` 0.18/0.19 and `matrixmultiply` 0.3
//! were within ±25 % of each other (24–75 GFLOP/s CPU time, no consistent winner; the VM was
//! shared, so the noise was as large as the differences). `gemm` wins on what we could not
//! measure there: with its `x86-v4` feature it dispatches to AVX-512 micro-kernels at run time
//! (`matrixmultiply` tops out at AVX2/FMA), and it runs its parallel loops on the rayon pool the
//! rest of the crate already uses.
//!
//! The Winograd products of the SG3 convolutions no longer go through here: they run on
//! operands the transforms write in micro-panel order (`packed_gemm.rs`), which saves the
//! packing `gemm` does on every call. What remains: the SG3 input layer, the im2col path, the
//! ResNet of the detector.

/// A row-major matrix view: `rows × cols`, element `(r, c)` at `data[r * row_stride + c]`.
#[derive(Clone, Copy)]
pub(crate) struct MatRef<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
}

/// Mutable counterpart of [`MatRef`].
pub(crate) struct MatMut<'a> {
    pub data: &'a mut [f32],
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
}

fn fits(len: usize, rows: usize, cols: usize, row_stride: usize) -> bool {
    rows == 0
        || cols == 0
        || (cols <= row_stride || rows == 1) && (rows - 1) * row_stride + cols <= len
}

/// How many threads a GEMM may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Threads {
    /// The calling thread only (for GEMMs that callers run in parallel themselves).
    #[cfg_attr(not(test), allow(dead_code))]
    One,
    /// All threads of the current rayon pool.
    Pool,
}

/// `dst = (accumulate ? dst : 0) + lhs · rhs`.
///
/// Shapes are checked (a mismatch is a bug in this crate, reported by panic in debug builds and
/// by returning without touching `dst` in release builds).
pub(crate) fn sgemm(
    dst: MatMut<'_>,
    lhs: MatRef<'_>,
    rhs: MatRef<'_>,
    accumulate: bool,
    threads: Threads,
) {
    let (m, n, k) = (dst.rows, dst.cols, lhs.cols);
    let shapes_ok = lhs.rows == m
        && rhs.rows == k
        && rhs.cols == n
        && fits(dst.data.len(), m, n, dst.row_stride)
        && fits(lhs.data.len(), m, k, lhs.row_stride)
        && fits(rhs.data.len(), k, n, rhs.row_stride);
    debug_assert!(shapes_ok, "sgemm: inconsistent shapes");
    if !shapes_ok || m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for r in 0..m {
                dst.data[r * dst.row_stride..r * dst.row_stride + n].fill(0.0);
            }
        }
        return;
    }
    let parallelism = match threads {
        Threads::One => gemm::Parallelism::None,
        Threads::Pool => {
            let t = rayon::current_num_threads();
            if t > 1 {
                gemm::Parallelism::Rayon(t)
            } else {
                gemm::Parallelism::None
            }
        }
    };
    // SAFETY: `fits` checked above that every addressed element lies inside its slice; `dst` is
    // borrowed mutably, so it cannot alias `lhs` or `rhs`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.data.as_mut_ptr(),
            1,
            dst.row_stride as isize,
            accumulate,
            lhs.data.as_ptr(),
            1,
            lhs.row_stride as isize,
            rhs.data.as_ptr(),
            1,
            rhs.row_stride as isize,
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
    fn matches_naive_product_with_strides() {
        let (m, n, k) = (5, 7, 3);
        let a: Vec<f32> = (0..m * 4).map(|i| i as f32 * 0.5 - 3.0).collect(); // stride 4
        let b: Vec<f32> = (0..k * 9).map(|i| (i as f32).sin()).collect(); // stride 9
        let mut c = vec![1.0f32; m * 8];
        sgemm(
            MatMut {
                data: &mut c,
                rows: m,
                cols: n,
                row_stride: 8,
            },
            MatRef {
                data: &a,
                rows: m,
                cols: k,
                row_stride: 4,
            },
            MatRef {
                data: &b,
                rows: k,
                cols: n,
                row_stride: 9,
            },
            true,
            Threads::One,
        );
        for i in 0..m {
            for j in 0..n {
                let mut s = 1.0f64;
                for l in 0..k {
                    s += a[i * 4 + l] as f64 * b[l * 9 + j] as f64;
                }
                assert!((c[i * 8 + j] as f64 - s).abs() < 1e-5, "{i} {j}");
            }
            // padding columns untouched
            assert_eq!(c[i * 8 + 7], 1.0);
        }
    }
}
