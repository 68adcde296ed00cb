//! Scratch buffers each rayon worker keeps between jobs, layers and calls, grown to the same
//! size on every worker before a forward starts.
//!
//! A kernel's jobs (bands of rows, channels) borrow their worker thread's buffers, which grow
//! to the largest job that thread ever ran. Which thread runs which job is up to rayon's work
//! stealing, though: a worker that happened to run none of a large layer's jobs in the first
//! forwards would grow its buffers the first time it does, many calls later — a steady-state
//! forward would still allocate (and fault in fresh pages) now and then, at random. So every
//! growth is recorded as a high-water mark per buffer, and [`prepare_workers`] (called at the
//! start of each forward) grows every worker of the current pool to the marks: from the
//! second forward of a network on, no job finds its buffers too small, whatever the schedule.
//! The cost is one broadcast per forward and, on every worker, buffers as large as the
//! largest any worker needed (under 1 MB per thread for the official networks).

use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::thread::LocalKey;

/// Most buffers one scratch type holds.
const MAX_BUFFERS: usize = 12;

/// A scratch type made of `f32` buffers whose capacities are tracked.
pub(crate) trait Buffers: Default + 'static {
    /// Calls `f` on each buffer, always in the same order (at most [`MAX_BUFFERS`]).
    fn each(&mut self, f: &mut dyn FnMut(usize, &mut Vec<f32>));
}

impl Buffers for Vec<f32> {
    fn each(&mut self, f: &mut dyn FnMut(usize, &mut Vec<f32>)) {
        f(0, self)
    }
}

/// One kind of per-worker scratch: the thread-local that holds it and the high-water
/// capacity of each of its buffers over all threads.
pub(crate) struct WorkerScratch<T: Buffers> {
    local: &'static LocalKey<RefCell<T>>,
    marks: [AtomicUsize; MAX_BUFFERS],
}

impl<T: Buffers> WorkerScratch<T> {
    pub(crate) const fn new(local: &'static LocalKey<RefCell<T>>) -> WorkerScratch<T> {
        WorkerScratch {
            local,
            marks: [const { AtomicUsize::new(0) }; MAX_BUFFERS],
        }
    }

    /// Runs `f` with this thread's scratch and records what it grew. `f` must not start
    /// parallel work; if it did and a job stolen meanwhile came back here, that job would get
    /// fresh buffers of its own (correct, only not kept).
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        self.local.with(|cell| match cell.try_borrow_mut() {
            Ok(mut scratch) => {
                let mut before = [0usize; MAX_BUFFERS];
                scratch.each(&mut |i, v| before[i] = v.capacity());
                let out = f(&mut scratch);
                scratch.each(&mut |i, v| {
                    let cap = v.capacity();
                    if cap > before[i] {
                        self.marks[i].fetch_max(cap, Relaxed);
                    }
                });
                out
            }
            Err(_) => f(&mut T::default()),
        })
    }

    /// Grows this thread's buffers to the marks.
    fn grow_to_marks(&self) {
        self.local.with(|cell| {
            if let Ok(mut scratch) = cell.try_borrow_mut() {
                scratch.each(&mut |i, v| {
                    let mark = self.marks[i].load(Relaxed);
                    if v.capacity() < mark {
                        v.reserve_exact(mark - v.len());
                    }
                });
            }
        })
    }
}

/// Grows the scratch of every worker of the current rayon pool to the high-water marks of all
/// kernels (see the module notes), and makes the packing buffer the `gemm` crate keeps per
/// thread (the L2 size; made on a thread's first GEMM, otherwise) on each. Cheap when nothing
/// needs to grow: one broadcast.
pub(crate) fn prepare_workers() {
    rayon::broadcast(|_| {
        crate::sg2::direct::BAND.grow_to_marks();
        crate::sg3::filtered_lrelu::BAND_SCRATCH.grow_to_marks();
        crate::sg3::winograd::ROW_BUFFER.grow_to_marks();
        gemm_common::gemm::L2_SLAB.with(|_| ());
    });
}
