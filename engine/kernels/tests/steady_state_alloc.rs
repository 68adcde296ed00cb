//! A forward pass in steady state (the synthesis already ran once) allocates nothing per
//! layer: its working memory is kept between layers and calls, so a long batch or an editor
//! re-running a graph neither reallocates nor faults in fresh pages for every layer.
//!
//! A counting global allocator adds up the bytes every allocation asks for while one forward
//! runs. What a forward must allocate is its result (the image); beyond that only a small
//! slack (the thread pool's job queues, a few per-image vectors of one value per channel).
//! Any per-layer or per-band buffer of these networks is more than the slack: a feature map
//! is hundreds of KB, a band's filter rows tens of KB per thread and layer. Everything runs in one `#[test]` so no other test allocates at
//! the same time.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use stylegraph_kernels::default_init::{sg3_state_dict, InitTuning};
use stylegraph_kernels::sg2::{default_init, Sg2Config, Sg2Synthesis};
use stylegraph_kernels::sg3::{Sg3Config, Sg3Kind, Sg3Synthesis};
use stylegraph_kernels::{MappingNetwork, NoControl, NoiseMode};

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

#[test]
fn steady_state_forwards_allocate_only_their_results() {
    for kind in [Sg3Kind::T, Sg3Kind::R] {
        let cfg = Sg3Config {
            img_resolution: 64,
            channel_base: 2048.0,
            channel_max: 64.0,
            ..Sg3Config::official(kind, 64)
        };
        let map = sg3_state_dict(&cfg, 3, &InitTuning::official()).unwrap();
        let syn = Sg3Synthesis::from_tensors(&map, &cfg).unwrap();
        let mapping = MappingNetwork::from_tensors(&map, &cfg.mapping_config()).unwrap();
        let ws = |seed| {
            let z = stylegraph_rng::z_from_seed(seed, cfg.z_dim);
            mapping.map(&z, None, 1, 1.0, None).unwrap()
        };
        let (w1, w2) = (ws(1), ws(2));
        // the first call grows the kept buffers; a second with other latents settles them
        syn.forward(&w1, 1, None, &NoControl).unwrap();
        syn.forward(&w2, 1, None, &NoControl).unwrap();
        let (image, bytes) = requested_by(|| syn.forward(&w1, 1, None, &NoControl).unwrap());
        assert!(
            bytes <= 4 * image.len() + SLACK,
            "SG3-{kind:?} 64 px: a steady-state forward allocated {bytes} bytes (image {} bytes)",
            4 * image.len()
        );
    }

    let cfg = Sg2Config {
        img_resolution: 32,
        channel_base: 256,
        channel_max: 32,
        ..Sg2Config::stylegan2_1024()
    };
    let map = default_init(&cfg, 5).unwrap();
    let syn = Sg2Synthesis::from_tensors(&map, &cfg).unwrap();
    let ws: Vec<f32> = (0..syn.num_ws() * syn.w_dim())
        .map(|i| ((i * 37) % 11) as f32 / 5.0 - 1.0)
        .collect();
    let noise = NoiseMode::Const;
    syn.forward(&ws, 1, noise, &NoControl).unwrap();
    syn.forward(&ws, 1, noise, &NoControl).unwrap();
    let (image, bytes) = requested_by(|| syn.forward(&ws, 1, noise, &NoControl).unwrap());
    assert!(
        bytes <= 4 * image.len() + SLACK,
        "SG2 32 px: a steady-state forward allocated {bytes} bytes (image {} bytes)",
        4 * image.len()
    );
}
