//! Feature-map buffers recycled between the layers of a forward pass and between calls, so a
//! steady-state forward neither allocates nor faults in fresh pages.

/// Spare f32 buffers.
#[derive(Default)]
pub(crate) struct BufferPool {
    spare: Vec<Vec<f32>>,
}

impl BufferPool {
    /// A buffer of `len` values (contents unspecified: the caller overwrites every value). The
    /// smallest spare one that is big enough, else the biggest one, grown.
    pub fn take(&mut self, len: usize) -> Vec<f32> {
        let mut buf = self.pick(len, Vec::capacity);
        buf.resize(len, 0.0);
        buf
    }

    /// A buffer of at least `len` values (use the first `len`; contents unspecified). Unlike
    /// [`BufferPool::take`] it never shrinks a buffer, so buffers that serve maps of varying
    /// size are zero-filled only when they outgrow their largest use, not each time a map is
    /// bigger than the one before (in SG3 that was tens of MB of zeroing per image).
    ///
    /// It picks by length, not capacity: the length is what has been written (so its pages
    /// are resident), while a capacity left by `Vec`'s doubling may not be. Picking a buffer of
    /// enough capacity but less length would fault in pages that a buffer already that long
    /// has (in SG3-T 1024 that was 116 MiB more peak memory).
    pub fn take_at_least(&mut self, len: usize) -> Vec<f32> {
        let mut buf = self.pick(len, Vec::len);
        grow(&mut buf, len);
        buf
    }

    /// The smallest spare buffer by `size` that holds `len` values, else the biggest one, else
    /// a new one.
    fn pick(&mut self, len: usize, size: fn(&Vec<f32>) -> usize) -> Vec<f32> {
        let pick = self
            .spare
            .iter()
            .enumerate()
            .filter(|(_, b)| size(b) >= len)
            .min_by_key(|(_, b)| size(b))
            .or_else(|| self.spare.iter().enumerate().max_by_key(|(_, b)| size(b)))
            .map(|(i, _)| i);
        match pick {
            Some(i) => self.spare.swap_remove(i),
            None => Vec::new(),
        }
    }

    /// Gives a buffer back for reuse.
    pub fn put(&mut self, buf: Vec<f32>) {
        if buf.capacity() > 0 {
            self.spare.push(buf);
        }
    }
}

/// The first `len` values of `buf`, grown (zero-filled) to `len` if shorter but never shrunk:
/// for scratch buffers whose used part is overwritten and that serve varying sizes, where
/// `resize` would zero the regrown part on every size change.
pub(crate) fn grow(buf: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
    &mut buf[..len]
}

/// The working memory a network keeps between calls: a call takes a set (or a fresh one when
/// another call holds it) and gives it back when done.
pub(crate) struct ScratchCache<T> {
    kept: std::sync::Mutex<Vec<T>>,
}

impl<T> Default for ScratchCache<T> {
    fn default() -> Self {
        ScratchCache {
            kept: std::sync::Mutex::new(Vec::new()),
        }
    }
}

impl<T: Default> ScratchCache<T> {
    pub fn take(&self) -> T {
        self.kept
            .lock()
            .ok()
            .and_then(|mut kept| kept.pop())
            .unwrap_or_default()
    }

    pub fn give_back(&self, scratch: T) {
        if let Ok(mut kept) = self.kept.lock() {
            // One set is enough for sequential use; concurrent callers allocate their own.
            if kept.is_empty() {
                kept.push(scratch);
            }
        }
    }

    /// Frees what is kept.
    pub fn clear(&self) {
        if let Ok(mut kept) = self.kept.lock() {
            kept.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_the_smallest_fitting_buffer_else_grows_the_biggest() {
        let mut pool = BufferPool::default();
        pool.put(Vec::with_capacity(100));
        pool.put(Vec::with_capacity(10));
        pool.put(Vec::with_capacity(50));
        let a = pool.take(40);
        assert_eq!((a.len(), a.capacity()), (40, 50));
        let b = pool.take(500);
        assert_eq!(b.len(), 500);
        assert_eq!(pool.spare.len(), 1);
        assert_eq!(pool.spare[0].capacity(), 10);
        pool.put(Vec::new());
        assert_eq!(pool.spare.len(), 1, "empty buffers are not kept");
    }

    #[test]
    fn take_at_least_picks_by_written_length() {
        // A buffer with spare capacity but a short written part must not be preferred to one
        // already written far enough: growing it would fault in fresh pages.
        let mut pool = BufferPool::default();
        let mut roomy = Vec::with_capacity(300);
        roomy.resize(60, 1.0f32);
        pool.put(roomy);
        pool.put(vec![2.0f32; 400]);
        let a = pool.take_at_least(150);
        assert_eq!((a.len(), a[0]), (400, 2.0));
        // none long enough: the longest is grown
        pool.put(vec![3.0f32; 100]);
        let b = pool.take_at_least(500);
        assert_eq!((b.len(), b[0]), (500, 3.0));
    }

    #[test]
    fn take_at_least_and_grow_never_shrink() {
        // A long buffer serving a short map keeps its length (and values), so serving a long
        // map again needs no zero-fill; a short one is grown with zeros.
        let mut pool = BufferPool::default();
        pool.put(vec![7.0; 100]);
        let a = pool.take_at_least(30);
        assert_eq!(a.len(), 100);
        assert!(a.iter().all(|&v| v == 7.0));
        pool.put(a);
        let b = pool.take_at_least(120);
        assert_eq!(b.len(), 120);
        assert!(b[..100].iter().all(|&v| v == 7.0) && b[100..].iter().all(|&v| v == 0.0));
        let mut c = vec![1.0f32; 8];
        assert_eq!(grow(&mut c, 3).len(), 3);
        assert_eq!(c.len(), 8, "grow does not shrink");
        assert_eq!(
            grow(&mut c, 10),
            &[1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0]
        );
    }
}
