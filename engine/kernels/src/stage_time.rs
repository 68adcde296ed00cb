//! Wall-clock totals per kernel stage of the SG3 layers, for `stylegraph bench` and profiling.
//!
//! Off by default: then a stage boundary costs one relaxed atomic load. When on (see
//! [`set_enabled`]), every [`Stage`] accumulates the wall time its sections took, over all
//! threads' sections (sections are the parallel regions themselves, so wall time, not CPU
//! time). The totals are process-wide: meaningful while one forward pass runs at a time.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

/// The parts of an SG3 layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Modulation, demodulation and the Winograd weight transform (per sample).
    Weights,
    /// Winograd input transform (or the im2col copy).
    InputTransform,
    /// The convolution's matrix products.
    Gemm,
    /// Winograd output transform.
    OutputTransform,
    /// Bias, up-filter, nonlinearity, down-filter.
    Filter,
}

impl Stage {
    pub const ALL: [Stage; 5] = [
        Stage::Weights,
        Stage::InputTransform,
        Stage::Gemm,
        Stage::OutputTransform,
        Stage::Filter,
    ];

    /// Short name for tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Weights => "weights",
            Stage::InputTransform => "input_transform",
            Stage::Gemm => "gemm",
            Stage::OutputTransform => "output_transform",
            Stage::Filter => "filter",
        }
    }
}

static ENABLED: AtomicBool = AtomicBool::new(false);
static TOTALS_NS: [AtomicU64; 5] = [const { AtomicU64::new(0) }; 5];

/// Turns the accounting on or off (the totals are kept).
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// The totals since the last call, in seconds per stage (in [`Stage::ALL`] order); resets them.
pub fn take() -> [f64; 5] {
    std::array::from_fn(|i| TOTALS_NS[i].swap(0, Ordering::Relaxed) as f64 * 1e-9)
}

/// Times a section: the elapsed time is added to `stage` when the guard drops.
pub(crate) struct Section {
    start: Option<(Instant, Stage)>,
}

/// Starts timing a section of `stage` (a no-op unless enabled).
#[inline]
pub(crate) fn section(stage: Stage) -> Section {
    Section {
        start: ENABLED
            .load(Ordering::Relaxed)
            .then(|| (Instant::now(), stage)),
    }
}

impl Drop for Section {
    fn drop(&mut self) {
        if let Some((t, stage)) = self.start {
            let i = Stage::ALL.iter().position(|&s| s == stage).unwrap_or(0);
            let ns = u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX);
            TOTALS_NS[i].fetch_add(ns, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_count_only_when_enabled() {
        // Other tests of this binary may time sections concurrently while the switch is on, so
        // only what this test adds is checked: a section started while off carries no start
        // time, and one started while on adds at least its own duration.
        set_enabled(false);
        assert!(section(Stage::Gemm).start.is_none());
        let before = take();
        set_enabled(true);
        {
            let s = section(Stage::Filter);
            assert!(s.start.is_some());
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        set_enabled(false);
        let t = take();
        assert!(t[4] >= 0.002, "{before:?} {t:?}");
    }
}
