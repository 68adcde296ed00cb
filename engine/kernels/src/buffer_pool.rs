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
        let pick = self
            .spare
            .iter()
            .enumerate()
            .filter(|(_, b)| b.capacity() >= len)
            .min_by_key(|(_, b)| b.capacity())
            .or_else(|| {
                self.spare
                    .iter()
                    .enumerate()
                    .max_by_key(|(_, b)| b.capacity())
            })
            .map(|(i, _)| i);
        let mut buf = match pick {
            Some(i) => self.spare.swap_remove(i),
            None => Vec::new(),
        };
        buf.resize(len, 0.0);
        buf
    }

    /// Gives a buffer back for reuse.
    pub fn put(&mut self, buf: Vec<f32>) {
        if buf.capacity() > 0 {
            self.spare.push(buf);
        }
    }
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
}
