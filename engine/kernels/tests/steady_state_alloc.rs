//! A forward pass in steady state (the synthesis already ran once) allocates nothing per
//! layer: its working memory is kept between layers and calls, so a long batch or an editor
//! re-running a graph neither reallocates nor faults in fresh pages for every layer.
//!
//! A counting global allocator adds up the bytes every allocation asks for while one forward
//! runs. What a forward must allocate is its result (the image); beyond that only a small
//! slack (the thread pool's job queues, a few per-image vectors of one value per channel).
//! Any per-layer or per-band buffer of these networks is more than the slack: a feature map
//! is hundreds of KB, a band's filter rows tens of KB per thread and layer, `gemm`'s packing
//! buffer 2 MB per thread. That must hold whichever worker thread rayon hands each job to
//! (buffers kept per thread once grew on a thread's first large job, which could come many
//! calls late). Everything runs in one `#[test]` so no other test allocates at the same time.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

mod common;

use common::SmallSg3;
use stylegraph_kernels::sg2::{default_init, Sg2Config, Sg2Synthesis};
use stylegraph_kernels::sg3::Sg3Kind;
use stylegraph_kernels::{NoControl, NoiseMode};

/// Bytes requested by allocations (growth only, for `realloc`) since the start.
static REQUESTED: AtomicUsize = AtomicUsize::new(0);

struct Counting;

// SAFETY: every call goes to the system allocator unchanged; the counter is bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        REQUESTED.fetch_add(layout.size(), Relaxed);
        // SAFETY: the caller's contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        REQUESTED.fetch_add(new_size.saturating_sub(layout.size()), Relaxed);
        // SAFETY: the caller's contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Bytes allocated while `f` runs.
fn requested_by<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let before = REQUESTED.load(Relaxed);
    let out = f();
    (out, REQUESTED.load(Relaxed) - before)
}

/// Allowance beyond the result for the thread pool's job queues and the like.
const SLACK: usize = 64 * 1024;

/// Runs `forward` twice (the first call grows the kept buffers, the second settles them),
/// then checks what each of four more allocates. The forwards run in a pool of three threads
/// whatever the machine, so which thread runs which job differs from call to call: a buffer
/// kept per thread must not depend on that schedule.
fn check_steady_state(name: &str, forward: impl Fn(u32) -> Vec<f32> + Sync) {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(3)
        .build()
        .expect("thread pool");
    pool.install(|| {
        forward(1);
        forward(2);
        for call in 3..7 {
            let (image, bytes) = requested_by(|| forward(1 + call % 2));
            assert!(
                bytes <= 4 * image.len() + SLACK,
                "{name}: steady-state forward {call} allocated {bytes} bytes (image {} bytes)",
                4 * image.len()
            );
        }
    });
}

#[test]
fn steady_state_forwards_allocate_only_their_results() {
    for kind in [Sg3Kind::T, Sg3Kind::R] {
        let net = SmallSg3::new(kind, 3);
        let ws = [net.ws(1), net.ws(2)];
        check_steady_state(&format!("SG3-{kind:?} 64 px"), |seed| {
            let w = &ws[seed as usize - 1];
            net.synthesis.forward(w, 1, None, &NoControl).unwrap()
        });
    }

    let cfg = Sg2Config {
        img_resolution: 32,
        channel_base: 256,
        channel_max: 32,
        ..Sg2Config::stylegan2_1024()
    };
    let map = default_init(&cfg, 5).unwrap();
    let syn = Sg2Synthesis::from_tensors(&map, &cfg).unwrap();
    let ws = |seed: u32| -> Vec<f32> {
        (0..syn.num_ws() * syn.w_dim())
            .map(|i| ((i * 37 + seed as usize) % 11) as f32 / 5.0 - 1.0)
            .collect()
    };
    let ws = [ws(1), ws(2)];
    check_steady_state("SG2 32 px", |seed| {
        let w = &ws[seed as usize - 1];
        syn.forward(w, 1, NoiseMode::Const, &NoControl).unwrap()
    });
}
