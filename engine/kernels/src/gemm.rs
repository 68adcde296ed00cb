//! Single-precision matrix multiply over strided row-major views.
//!
//! Backed by faer's `gemm` crate (runtime-dispatched SIMD micro-kernels, optional rayon
//! parallelism). Choice measured on the dev machine (2 cores, AVX2+FMA) on the modulated-conv
//! shapes of SG3-T (m = Cout 32..512, k = 9·Cin 288..4608, n = 16 rows × 148..1046 px):
//! `gemm` 0.18 reached 1.1–1.3× the throughput of `matrixmultiply` 0.3 single-threaded, and it
//! parallelises internally, which `matrixmultiply` only does with its own thread pool.
//! See `benches/sg3.rs` for the kernel timings.

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
