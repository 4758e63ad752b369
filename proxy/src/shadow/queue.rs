//! The bounded hand-off from the request path to the engine (shadow jobs
//! and recordings alike): a queue with a length limit and a byte budget. Submitting never waits; what does not fit
//! is refused so the caller can count it (`queue_full`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::mpsc;

use super::job::EngineJob;

#[derive(Debug, Clone)]
pub struct ShadowQueue {
    tx: mpsc::Sender<EngineJob>,
    budget: Arc<Budget>,
}

/// Bytes held by queued and in-flight jobs.
#[derive(Debug)]
pub struct Budget {
    used: AtomicUsize,
    limit: usize,
}

impl Budget {
    pub fn release(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
    }

    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }
}

impl ShadowQueue {
    pub fn new(
        capacity: usize,
        memory_limit: usize,
    ) -> (ShadowQueue, mpsc::Receiver<EngineJob>, Arc<Budget>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let budget = Arc::new(Budget {
            used: AtomicUsize::new(0),
            limit: memory_limit,
        });
        (
            ShadowQueue {
                tx,
                budget: budget.clone(),
            },
            rx,
            budget,
        )
    }

    /// Queues the job, or gives it back when the queue or the byte budget is
    /// full.
    pub fn submit(&self, job: EngineJob) -> Result<(), Box<EngineJob>> {
        let weight = job.weight();
        let before = self.budget.used.fetch_add(weight, Ordering::AcqRel);
        if before + weight > self.budget.limit {
            self.budget.release(weight);
            return Err(Box::new(job));
        }
        self.tx.try_send(job).map_err(|e| {
            self.budget.release(weight);
            Box::new(match e {
                mpsc::error::TrySendError::Full(j) | mpsc::error::TrySendError::Closed(j) => j,
            })
        })
    }
}
