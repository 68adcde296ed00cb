//! A background thread that computes only the newest request.
//!
//! Interactive controls (a seed scrubbed with the mouse, a channel slider) can ask for work far
//! faster than it finishes. [`LatestWorker`] keeps at most one request waiting: a new request
//! replaces the waiting one, which is never computed. Each request gets a generation number, so
//! the receiver can drop a result that is older than one it already shows.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

struct Slot<Req> {
    pending: Option<(u64, Req)>,
    next_generation: u64,
    busy: bool,
    shutdown: bool,
    /// Requests replaced before they were started.
    dropped: u64,
}

struct Shared<Req> {
    slot: Mutex<Slot<Req>>,
    wake: Condvar,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The slot holds plain data; a panic elsewhere leaves it usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One worker thread running `job(generation, request)` for the newest request.
pub struct LatestWorker<Req: Send + 'static> {
    shared: Arc<Shared<Req>>,
    thread: Option<JoinHandle<()>>,
}

impl<Req: Send + 'static> LatestWorker<Req> {
    /// Starts the thread. `job` runs on it, one request at a time.
    pub fn spawn(name: &str, mut job: impl FnMut(u64, Req) + Send + 'static) -> Self {
        let shared = Arc::new(Shared {
            slot: Mutex::new(Slot {
                pending: None,
                next_generation: 1,
                busy: false,
                shutdown: false,
                dropped: 0,
            }),
            wake: Condvar::new(),
        });
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || loop {
                let (generation, req) = {
                    let mut slot = lock(&s.slot);
                    loop {
                        if slot.shutdown {
                            return;
                        }
                        if let Some(p) = slot.pending.take() {
                            slot.busy = true;
                            break p;
                        }
                        slot = s.wake.wait(slot).unwrap_or_else(|e| e.into_inner());
                    }
                };
                job(generation, req);
                lock(&s.slot).busy = false;
                s.wake.notify_all();
            })
            .ok();
        if thread.is_none() {
            tracing::error!("could not start the {name} thread");
        }
        LatestWorker { shared, thread }
    }

    /// Queues a request, replacing one still waiting. Returns its generation.
    pub fn submit(&self, req: Req) -> u64 {
        let mut slot = lock(&self.shared.slot);
        let generation = slot.next_generation;
        slot.next_generation += 1;
        if slot.pending.replace((generation, req)).is_some() {
            slot.dropped += 1;
        }
        drop(slot);
        self.shared.wake.notify_all();
        generation
    }

    /// Forgets a waiting request. Returns true if there was one.
    pub fn clear_pending(&self) -> bool {
        lock(&self.shared.slot).pending.take().is_some()
    }

    /// True while a request runs or waits.
    pub fn is_busy(&self) -> bool {
        let slot = lock(&self.shared.slot);
        slot.busy || slot.pending.is_some()
    }

    /// How many requests were replaced before they started.
    pub fn dropped(&self) -> u64 {
        lock(&self.shared.slot).dropped
    }

    /// Blocks until nothing runs or waits (for tests and shutdown).
    pub fn wait_idle(&self) {
        let mut slot = lock(&self.shared.slot);
        while slot.busy || slot.pending.is_some() {
            slot = self
                .shared
                .wake
                .wait(slot)
                .unwrap_or_else(|e| e.into_inner());
        }
    }
}

impl<Req: Send + 'static> Drop for LatestWorker<Req> {
    fn drop(&mut self) {
        {
            let mut slot = lock(&self.shared.slot);
            slot.shutdown = true;
            slot.pending = None;
        }
        self.shared.wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn only_the_newest_waiting_request_is_computed() {
        let (started_tx, started_rx) = mpsc::channel();
        let (gate_tx, gate_rx) = mpsc::channel::<()>();
        let (done_tx, done_rx) = mpsc::channel();
        let gate_rx = Mutex::new(gate_rx);
        let worker = LatestWorker::spawn("test", move |generation, req: u32| {
            started_tx.send(req).unwrap();
            // Hold the worker until the test lets it go.
            gate_rx.lock().unwrap().recv().unwrap();
            done_tx.send((generation, req)).unwrap();
        });
        worker.submit(0);
        assert_eq!(started_rx.recv().unwrap(), 0);
        // The worker is busy with 0: these pile up and replace each other.
        for i in 1..=50 {
            worker.submit(i);
        }
        gate_tx.send(()).unwrap();
        assert_eq!(started_rx.recv().unwrap(), 50);
        gate_tx.send(()).unwrap();
        worker.wait_idle();
        let done: Vec<(u64, u32)> = done_rx.try_iter().collect();
        assert_eq!(done, vec![(1, 0), (51, 50)]);
        assert_eq!(worker.dropped(), 49);
        assert!(!worker.is_busy());
    }

    #[test]
    fn clear_pending_drops_the_waiting_request() {
        let (gate_tx, gate_rx) = mpsc::channel::<()>();
        let (started_tx, started_rx) = mpsc::channel();
        let gate_rx = Mutex::new(gate_rx);
        let worker = LatestWorker::spawn("test", move |_, req: u32| {
            started_tx.send(req).unwrap();
            gate_rx.lock().unwrap().recv().unwrap();
        });
        worker.submit(1);
        assert_eq!(started_rx.recv().unwrap(), 1);
        worker.submit(2);
        assert!(worker.clear_pending());
        gate_tx.send(()).unwrap();
        worker.wait_idle();
        assert!(started_rx.try_recv().is_err(), "request 2 must not run");
    }
}
