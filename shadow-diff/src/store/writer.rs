//! Writes to the store off the request path: a bounded queue, batches, and a
//! connection that is retried in the background. A slow, full or unreachable
//! database never blocks the submitter; every record it cannot keep is
//! reported to [`WriterEvents::dropped`] so it can be counted.
//!
//! Each comparison is reported exactly once, as stored or as dropped, also
//! when the connection is lost while a batch commits: such a batch is held
//! "in doubt" (its records are not written again) until the writer, once
//! reconnected, finds out from the batch's marker whether it was committed
//! ([`DiffAndHistoryStore::settle_batch`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use log::{info, warn};
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{mpsc, watch};

use super::{DiffAndHistoryStore, StoreError};
use crate::record::StoreItem;

/// Batches in doubt kept for settling; beyond this the oldest is given up
/// (counted as dropped, with a warning that it may be in the store).
const MAX_IN_DOUBT: usize = 1000;

/// How the writer behaves; the defaults suit one proxy.
#[derive(Debug, Clone)]
pub struct WriterSettings {
    /// Records waiting to be written; beyond this they are dropped.
    pub capacity: usize,
    /// Most records per transaction.
    pub batch: usize,
    /// Longest a record waits for its batch to fill.
    pub linger: Duration,
    /// Longest one batch may take before it is given up.
    pub write_timeout: Duration,
    pub reconnect_every: Duration,
    pub retention_age: Duration,
    pub retention_rows: i64,
    pub prune_every: Duration,
}

impl Default for WriterSettings {
    fn default() -> Self {
        WriterSettings {
            capacity: 10_000,
            batch: 500,
            linger: Duration::from_millis(200),
            write_timeout: Duration::from_secs(5),
            reconnect_every: Duration::from_secs(2),
            retention_age: Duration::from_secs(14 * 86_400),
            retention_rows: 1_000_000,
            prune_every: Duration::from_secs(60),
        }
    }
}

/// What the writer accounts for, one by one (noise evidence is not counted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kept {
    Comparison,
    Recording,
}

/// What the writer tells its owner (the proxy turns these into metrics).
pub trait WriterEvents: Send + Sync {
    /// `n` comparisons (or recordings) of `route` were stored.
    fn stored(&self, kept: Kept, route: &str, n: u64);
    /// `n` comparisons (or recordings) of `route` could not be stored.
    fn dropped(&self, kept: Kept, route: &str, n: u64);
}

/// The submitting end; cheap to clone.
#[derive(Clone)]
pub struct StoreWriter {
    tx: mpsc::Sender<StoreItem>,
    events: Arc<dyn WriterEvents>,
    store: watch::Receiver<Option<DiffAndHistoryStore>>,
}

impl std::fmt::Debug for StoreWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreWriter").finish_non_exhaustive()
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl StoreWriter {
    /// Starts the writer task on the current runtime. It connects (and
    /// migrates) in the background and keeps trying while the database is
    /// unreachable.
    pub fn spawn(
        url: String,
        settings: WriterSettings,
        events: Arc<dyn WriterEvents>,
    ) -> StoreWriter {
        let (tx, rx) = mpsc::channel(settings.capacity.max(1));
        let (store_tx, store_rx) = watch::channel(None);
        tokio::spawn(run(url, settings, rx, store_tx, events.clone()));
        StoreWriter {
            tx,
            events,
            store: store_rx,
        }
    }

    /// Queues a record; never waits. A record that does not fit is dropped
    /// and reported.
    pub fn submit(&self, item: StoreItem) {
        if let Err(e) = self.tx.try_send(item) {
            let item = match e {
                mpsc::error::TrySendError::Full(i) | mpsc::error::TrySendError::Closed(i) => i,
            };
            if let Some(kept) = kept(&item) {
                self.events.dropped(kept, item.route(), 1);
            }
        }
    }

    /// The connected store, once there is one (reports read through it).
    pub fn store(&self) -> Option<DiffAndHistoryStore> {
        self.store.borrow().clone()
    }

    /// Waits until the store is connected, up to `timeout`.
    pub async fn connected(&self, timeout: Duration) -> Option<DiffAndHistoryStore> {
        let mut rx = self.store.clone();
        let wait = rx.wait_for(|s| s.is_some());
        match tokio::time::timeout(timeout, wait).await {
            Ok(Ok(s)) => s.clone(),
            _ => None,
        }
    }
}

async fn run(
    url: String,
    settings: WriterSettings,
    mut rx: mpsc::Receiver<StoreItem>,
    store_tx: watch::Sender<Option<DiffAndHistoryStore>>,
    events: Arc<dyn WriterEvents>,
) {
    let mut store: Option<DiffAndHistoryStore> = None;
    let mut last_attempt: Option<Instant> = None;
    let mut last_prune = Instant::now();
    let mut last_complaint: Option<Instant> = None;
    let mut ids = BatchIds::new();
    let mut in_doubt: Vec<InDoubt> = Vec::new();
    let mut last_settle: Option<Instant> = None;
    loop {
        if store.is_none() && last_attempt.is_none_or(|t| t.elapsed() >= settings.reconnect_every) {
            last_attempt = Some(Instant::now());
            match tokio::time::timeout(
                settings.write_timeout * 2,
                DiffAndHistoryStore::connect(&url),
            )
            .await
            {
                Ok(Ok(s)) => {
                    info!("diff store connected ({:?})", s.dialect);
                    store = Some(s.clone());
                    let _ = store_tx.send(Some(s));
                    last_settle = None;
                }
                Ok(Err(e)) => {
                    complain(&mut last_complaint, &format!("diff store unavailable: {e}"))
                }
                Err(_) => complain(
                    &mut last_complaint,
                    "diff store unavailable: connect timed out",
                ),
            }
        }

        if let Some(s) = &store {
            if !in_doubt.is_empty()
                && last_settle.is_none_or(|t| t.elapsed() >= settings.reconnect_every)
            {
                last_settle = Some(Instant::now());
                if let Err(e) = settle(s, &mut in_doubt, &settings, events.as_ref()).await {
                    complain(
                        &mut last_complaint,
                        &format!("diff store: settling a batch in doubt failed: {e}"),
                    );
                    disconnect(&mut store, &store_tx, &mut last_attempt);
                }
            }
        }

        let first = tokio::select! {
            item = rx.recv() => match item {
                Some(i) => Some(i),
                None => return,
            },
            _ = tokio::time::sleep(settings.linger.max(Duration::from_millis(10)) * 5) => None,
        };
        let mut batch: Vec<StoreItem> = first.into_iter().collect();
        if !batch.is_empty() {
            fill(&mut batch, &mut rx, &settings).await;
        }
        if !batch.is_empty() {
            let tally = tally(&batch);
            let id = ids.next();
            let outcome = match &store {
                None => Outcome::NotWritten("not connected".to_string()),
                Some(s) => {
                    let committing = AtomicBool::new(false);
                    let write = s.write_batch(Some((&id, now_ms())), &batch, &committing);
                    let result = tokio::time::timeout(settings.write_timeout, write).await;
                    Outcome::of(result, committing.load(Ordering::SeqCst))
                }
            };
            let failed = !matches!(outcome, Outcome::Written);
            match outcome {
                Outcome::Written => {
                    for (kept, route, n) in tally {
                        events.stored(kept, &route, n);
                    }
                }
                Outcome::NotWritten(e) => {
                    for (kept, route, n) in tally {
                        events.dropped(kept, &route, n);
                    }
                    complain(
                        &mut last_complaint,
                        &format!("diff store write failed, batch dropped: {e}"),
                    );
                }
                Outcome::InDoubt(e) => {
                    complain(
                        &mut last_complaint,
                        &format!(
                            "diff store connection lost while a batch committed ({e}); \
                             its comparisons are counted once the store tells whether it was committed"
                        ),
                    );
                    // Noise evidence alone has nothing to account for.
                    if !tally.is_empty() {
                        in_doubt.push(InDoubt { id, tally });
                    }
                    if in_doubt.len() > MAX_IN_DOUBT {
                        let oldest = in_doubt.remove(0);
                        warn!(
                            "diff store: gave up on batch {} in doubt: counted as dropped, though it may be stored",
                            oldest.id
                        );
                        for (kept, route, n) in oldest.tally {
                            events.dropped(kept, &route, n);
                        }
                    }
                }
            }
            if failed {
                // Re-establish: the pool may hold dead connections.
                disconnect(&mut store, &store_tx, &mut last_attempt);
            }
        }
        if let Some(s) = &store {
            if last_prune.elapsed() >= settings.prune_every {
                last_prune = Instant::now();
                let age = settings.retention_age.as_millis() as i64;
                match tokio::time::timeout(
                    settings.write_timeout,
                    s.prune(now_ms(), age, settings.retention_rows),
                )
                .await
                {
                    Ok(Ok(n)) if n > 0 => info!("retention: {n} old diffs deleted"),
                    Ok(Err(e)) => complain(&mut last_complaint, &format!("retention failed: {e}")),
                    _ => {}
                }
            }
        }
    }
}

/// While a batch fills, the writer looks at its queue this often instead of
/// being woken for each record: the shadow engine hands over a record per
/// shadowed request, and a wake-up per record costs a context switch on a
/// machine whose cores the data plane needs.
const FILL_EVERY: Duration = Duration::from_millis(10);

/// Adds queued records to `batch` until it is full or the first record has
/// waited `linger`.
async fn fill(
    batch: &mut Vec<StoreItem>,
    rx: &mut mpsc::Receiver<StoreItem>,
    settings: &WriterSettings,
) {
    let deadline = tokio::time::Instant::now() + settings.linger;
    loop {
        while batch.len() < settings.batch {
            match rx.try_recv() {
                Ok(item) => batch.push(item),
                Err(TryRecvError::Empty) => break,
                // Closed: what came is written now; the next receive ends the writer.
                Err(TryRecvError::Disconnected) => return,
            }
        }
        let now = tokio::time::Instant::now();
        if batch.len() >= settings.batch || now >= deadline {
            return;
        }
        tokio::time::sleep_until(deadline.min(now + FILL_EVERY)).await;
    }
}

/// Drops the connection (if any); the next reconnect comes after
/// `reconnect_every`.
fn disconnect(
    store: &mut Option<DiffAndHistoryStore>,
    store_tx: &watch::Sender<Option<DiffAndHistoryStore>>,
    last_attempt: &mut Option<Instant>,
) {
    if store.take().is_some() {
        let _ = store_tx.send(None);
        *last_attempt = Some(Instant::now());
    }
}

/// How a batch write ended.
#[derive(Debug)]
enum Outcome {
    Written,
    /// Certainly not in the store: it failed before its `COMMIT` was sent,
    /// or the database answered the `COMMIT` with an error.
    NotWritten(String),
    /// The `COMMIT` was sent and no answer came: it may be in the store.
    InDoubt(String),
}

impl Outcome {
    fn of(
        result: Result<Result<(), StoreError>, tokio::time::error::Elapsed>,
        committing: bool,
    ) -> Outcome {
        match result {
            Ok(Ok(())) => Outcome::Written,
            Ok(Err(e)) if !committing || e.is_refusal() => Outcome::NotWritten(e.to_string()),
            Ok(Err(e)) => Outcome::InDoubt(e.to_string()),
            Err(_) if committing => Outcome::InDoubt("timed out committing".to_string()),
            Err(_) => Outcome::NotWritten("write timed out".to_string()),
        }
    }
}

/// A batch whose `COMMIT` went unanswered, and its comparisons per route.
#[derive(Debug)]
struct InDoubt {
    id: String,
    tally: Vec<(Kept, String, u64)>,
}

/// Asks the store about each batch in doubt, oldest first, and reports its
/// comparisons as stored or dropped. A batch whose transaction the database
/// still holds open (the old connection not yet noticed gone) stays in doubt
/// for a later try; an error means the connection is unusable.
async fn settle(
    store: &DiffAndHistoryStore,
    in_doubt: &mut Vec<InDoubt>,
    settings: &WriterSettings,
    events: &dyn WriterEvents,
) -> Result<(), StoreError> {
    while let Some(batch) = in_doubt.first() {
        let asked = tokio::time::timeout(
            settings.write_timeout,
            store.settle_batch(&batch.id, now_ms()),
        )
        .await;
        let committed = match asked {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return Err(e),
            Err(_) => return Ok(()),
        };
        let batch = in_doubt.remove(0);
        info!(
            "diff store: batch {} in doubt was {}",
            batch.id,
            if committed {
                "committed"
            } else {
                "not committed"
            }
        );
        for (kept, route, n) in batch.tally {
            if committed {
                events.stored(kept, &route, n);
            } else {
                events.dropped(kept, &route, n);
            }
        }
    }
    Ok(())
}

/// Batch ids unique across processes and hosts sharing a store.
struct BatchIds {
    prefix: String,
    next: u64,
}

impl BatchIds {
    fn new() -> BatchIds {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_default();
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        BatchIds {
            prefix: format!("{host}/{}/{nanos}", std::process::id()),
            next: 0,
        }
    }

    fn next(&mut self) -> String {
        self.next += 1;
        format!("{}/{}", self.prefix, self.next)
    }
}

/// What an item is counted as, if it is counted.
fn kept(item: &StoreItem) -> Option<Kept> {
    match item {
        StoreItem::Comparison(_) => Some(Kept::Comparison),
        StoreItem::Recording(_) => Some(Kept::Recording),
        StoreItem::Noise(_) => None,
    }
}

/// Comparisons and recordings per route in a batch.
fn tally(batch: &[StoreItem]) -> Vec<(Kept, String, u64)> {
    let mut out: Vec<(Kept, String, u64)> = Vec::new();
    for item in batch {
        let Some(k) = kept(item) else { continue };
        match out
            .iter_mut()
            .find(|(kind, r, _)| *kind == k && r == item.route())
        {
            Some((_, _, n)) => *n += 1,
            None => out.push((k, item.route().to_string(), 1)),
        }
    }
    out
}

/// Logs at most every 10 s, so a dead database does not flood the log.
fn complain(last: &mut Option<Instant>, message: &str) {
    if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
        warn!("{message}");
        *last = Some(Instant::now());
    }
}
