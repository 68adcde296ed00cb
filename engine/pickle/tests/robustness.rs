//! Damaged inputs never panic and never make the reader allocate out of proportion to them.
//!
//! Truncations and seeded random byte flips of a fixture network pickle, of the protocol-3
//! pickle and of a zip checkpoint must each give an `Err`, or an `Ok` for flips that keep the
//! file valid (then every network / the state dict is decoded too). A counting global
//! allocator measures, for every case, the peak of memory allocated beyond what was live
//! before the call and the largest single allocation.
//!
//! Everything runs in one `#[test]` so that no other test allocates at the same time.

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use stylegraph_pickle::{NetworkPickle, TorchCheckpoint};

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static LARGEST: AtomicUsize = AtomicUsize::new(0);

fn grew(size: usize) {
    let now = CURRENT.fetch_add(size, Relaxed) + size;
    PEAK.fetch_max(now, Relaxed);
    LARGEST.fetch_max(size, Relaxed);
}

// SAFETY: every call is forwarded to the system allocator unchanged; the counters are only
// bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        CURRENT.fetch_sub(layout.size(), Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        CURRENT.fetch_sub(layout.size(), Relaxed);
        grew(new_size);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Memory used by one case: (peak beyond the live memory at its start, largest allocation).
fn measured(f: impl FnOnce()) -> (usize, usize) {
    let base = CURRENT.load(Relaxed);
    PEAK.store(base, Relaxed);
    LARGEST.store(0, Relaxed);
    f();
    (PEAK.load(Relaxed) - base, LARGEST.load(Relaxed))
}

/// Deterministic pseudo-random numbers (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

/// Parses a network pickle and, if that works, decodes every network in it.
/// Returns whether everything succeeded.
fn read_all_networks(bytes: Vec<u8>) -> bool {
    match NetworkPickle::from_bytes(bytes, "mutated.pkl") {
        Err(e) => {
            assert!(e.to_string().starts_with("mutated.pkl"), "{e}");
            false
        }
        Ok(p) => {
            let mut ok = true;
            for name in p.networks() {
                if let Err(e) = p.network(name) {
                    assert!(e.to_string().starts_with("mutated.pkl"), "{e}");
                    ok = false;
                }
            }
            for key in p.keys() {
                if !p.networks().contains(&key) {
                    let _ = p.value(key);
                }
            }
            ok
        }
    }
}

fn read_checkpoint(bytes: Vec<u8>) -> bool {
    match TorchCheckpoint::from_bytes(bytes, "mutated.pt") {
        Err(e) => {
            assert!(e.to_string().starts_with("mutated.pt"), "{e}");
            false
        }
        Ok(ck) => {
            let tree = ck.tree().is_ok();
            tree & ck.state_dict(&["model"]).is_ok()
        }
    }
}

/// The cut points: every offset of the first 64 bytes and `spread` more evenly spread.
fn cuts(len: usize, spread: usize) -> Vec<usize> {
    let mut c: Vec<usize> = (0..64.min(len)).collect();
    c.extend((1..=spread).map(|i| i * (len - 1) / spread));
    c.dedup();
    c
}

/// Offsets of the legacy torch.save streams (tensor blobs) in a network pickle.
fn blob_starts(data: &[u8]) -> Vec<usize> {
    let magic = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19.";
    data.windows(magic.len())
        .enumerate()
        .filter(|(_, w)| *w == magic)
        .map(|(i, _)| i)
        .collect()
}

/// Byte flips per input.
const FLIPS: usize = 300;

#[test]
fn damaged_inputs_fail_cleanly_within_memory_bounds() {
    let mut rng = Rng(0x5eed_2024);
    let t0 = std::time::Instant::now();
    let mut report = Vec::new();

    // --- the SG3 network pickle (7.6 MB)
    let pkl = std::fs::read(
        root().join("../../tests/fixtures/stylegan3-t-tiny-16/network-snapshot-nosrc.pkl"),
    )
    .unwrap();
    let len = pkl.len();
    // Bounds: the whole decoded G, D and G_ema together are smaller than the file; the
    // reader's bookkeeping is budgeted at 8 MiB + the input size.
    let peak_limit = 2 * len + (16 << 20);
    let single_limit = len;
    let input = pkl.clone();
    let t1 = std::time::Instant::now();
    let (peak, largest) = measured(|| assert!(read_all_networks(input)));
    report.push(format!("one full read {:?}", t1.elapsed()));
    report.push(format!(
        "intact pickle: peak {peak} B, largest {largest} B (file {len} B)"
    ));
    assert!(peak <= peak_limit && largest <= single_limit);

    let mut worst = (0usize, 0usize);
    for cut in cuts(len, 200) {
        let input = pkl[..cut].to_vec();
        let (peak, largest) = measured(|| {
            assert!(
                !read_all_networks(input),
                "pickle cut at {cut} was accepted"
            );
        });
        assert!(peak <= peak_limit, "cut at {cut}: peak {peak}");
        assert!(
            largest <= single_limit,
            "cut at {cut}: allocation of {largest}"
        );
        worst = (worst.0.max(peak), worst.1.max(largest));
    }
    report.push(format!("{:?}", t0.elapsed()));
    report.push(format!(
        "truncations: worst peak {} B, largest {} B",
        worst.0, worst.1
    ));

    // Byte flips: a sixth anywhere (mostly tensor data, which stays valid), a third in the
    // top-level structure near the start, half in the headers of tensor blobs.
    let blobs = blob_starts(&pkl);
    assert!(blobs.len() > 100);
    let (mut failed, mut worst) = (0, (0usize, 0usize));
    for i in 0..FLIPS {
        let at = match i % 6 {
            0 => rng.below(len),
            1 | 2 => rng.below(60_000.min(len)),
            _ => (blobs[rng.below(blobs.len())] + rng.below(400)).min(len - 1),
        };
        let mut input = pkl.clone();
        input[at] ^= 1 << rng.below(8);
        let (peak, largest) = measured(|| {
            if !read_all_networks(input) {
                failed += 1;
            }
        });
        assert!(peak <= peak_limit, "flip at {at}: peak {peak}");
        assert!(
            largest <= single_limit,
            "flip at {at}: allocation of {largest}"
        );
        worst = (worst.0.max(peak), worst.1.max(largest));
    }
    report.push(format!("{:?}", t0.elapsed()));
    report.push(format!(
        "flips: {failed} of {FLIPS} rejected, worst peak {} B, largest {} B",
        worst.0, worst.1
    ));
    assert!(
        failed > FLIPS / 4,
        "structural flips must be detected: {failed}"
    );

    // --- the protocol-3 pickle (GLOBAL / BINPUT forms)
    let p3 =
        std::fs::read(root().join("tests/data/stylegan3-t-tiny-16-G_ema-protocol3.pkl")).unwrap();
    for cut in cuts(p3.len(), 50) {
        let input = p3[..cut].to_vec();
        let (peak, _) = measured(|| assert!(!read_all_networks(input)));
        assert!(peak <= 2 * p3.len() + (16 << 20));
    }

    // --- the zip checkpoint: every cut point, and flips anywhere
    let zip = std::fs::read(root().join("tests/data/detector-tiny.pt")).unwrap();
    let zlimit = 16 << 20;
    for cut in 0..zip.len() {
        let input = zip[..cut].to_vec();
        let (peak, _) = measured(|| assert!(!read_checkpoint(input), "zip cut at {cut} accepted"));
        assert!(peak <= zlimit, "zip cut at {cut}: peak {peak}");
    }
    let mut zfailed = 0;
    for _ in 0..FLIPS {
        let at = rng.below(zip.len());
        let mut input = zip.clone();
        input[at] ^= 1 << rng.below(8);
        let (peak, _) = measured(|| {
            if !read_checkpoint(input) {
                zfailed += 1;
            }
        });
        assert!(peak <= zlimit, "zip flip at {at}: peak {peak}");
    }
    report.push(format!("{:?}", t0.elapsed()));
    report.push(format!("zip flips: {zfailed} of {FLIPS} rejected"));
    // Every byte of a stored entry is covered by a CRC, the rest is structure; only flips in
    // unused fields (timestamps, the unused entries' CRC-covered data) may pass.
    assert!(zfailed > FLIPS / 2, "zip flips rejected: {zfailed}");

    // --- the legacy checkpoint
    let legacy = std::fs::read(root().join("tests/data/detector-tiny-legacy.pt")).unwrap();
    for cut in 0..legacy.len() {
        let input = legacy[..cut].to_vec();
        assert!(!read_checkpoint(input), "legacy cut at {cut} accepted");
    }
    eprintln!("{}", report.join("\n"));
}
