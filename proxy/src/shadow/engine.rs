//! The shadow engine: a background service on its own thread that takes
//! jobs from the queue, sends copies (and noise probes) with a concurrency
//! cap and a timeout, has `shadow_diff`'s judge decide each verdict, keeps
//! the route's noise knowledge (adding what each judgement learned, flushing
//! it to the store, refreshing it from the store), counts verdicts and hands
//! redacted records to the store writer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, UNIX_EPOCH};

use async_trait::async_trait;
use log::{debug, warn};
use pingora::connectors::http::Connector;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use shadow_diff::{
    Answers, Compared, ComparisonRecord, Exchange, NoiseDelta, NoiseModel, StoreItem, StoreWriter,
    StoredRequest, StoredResponse, decode::decode_body,
};
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::time::MissedTickBehavior;

use super::client::{SendError, exchange, request_for};
use super::job::{CapturedResponse, EngineJob, ShadowJob};
use super::queue::Budget;
use crate::config::Side;
use crate::metrics::{DropReason, Metrics, ShadowOutcome};

/// Process-wide limits of the shadow path (`strangler serve` flags).
#[derive(Debug, Clone)]
pub struct ShadowSettings {
    pub queue: usize,
    pub concurrency: usize,
    pub memory: usize,
}

impl Default for ShadowSettings {
    fn default() -> Self {
        ShadowSettings {
            queue: 1024,
            concurrency: 64,
            memory: 64 << 20,
        }
    }
}

/// Noise knowledge: totals (from the store, plus what this process learned)
/// and what was learned since the last flush.
#[derive(Debug, Default)]
struct Noise {
    totals: HashMap<String, NoiseModel>,
    pending: HashMap<String, NoiseModel>,
}

impl Noise {
    /// Adds what one judgement of `route` learned to the totals and to what
    /// the next flush writes.
    fn learn(&mut self, route: &str, learned: &NoiseModel) {
        for models in [&mut self.totals, &mut self.pending] {
            models.entry(route.to_string()).or_default().merge(learned);
        }
    }
}

pub struct ShadowEngine {
    jobs: Mutex<Option<mpsc::Receiver<EngineJob>>>,
    budget: Arc<Budget>,
    settings: ShadowSettings,
    metrics: Metrics,
    writer: StoreWriter,
    instance: String,
    noise: Arc<Mutex<Noise>>,
}

impl std::fmt::Debug for ShadowEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShadowEngine")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

fn millis(t: std::time::SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn decoded(r: &CapturedResponse) -> Exchange {
    let encoding = r
        .headers
        .iter()
        .find(|(k, _)| k == "content-encoding")
        .map(|(_, v)| v.as_str());
    // A body that does not decode is compared as it came.
    let body = decode_body(encoding, &r.body).unwrap_or_else(|_| r.body.to_vec());
    Exchange {
        status: r.status,
        headers: r.headers.clone(),
        body,
    }
}

impl ShadowEngine {
    pub fn new(
        jobs: mpsc::Receiver<EngineJob>,
        budget: Arc<Budget>,
        settings: ShadowSettings,
        metrics: Metrics,
        writer: StoreWriter,
        instance: String,
    ) -> ShadowEngine {
        ShadowEngine {
            jobs: Mutex::new(Some(jobs)),
            budget,
            settings,
            metrics,
            writer,
            instance,
            noise: Arc::new(Mutex::new(Noise::default())),
        }
    }

    fn outcome(&self, route: &str, outcome: ShadowOutcome) {
        self.metrics.count_shadow(route, outcome);
    }

    async fn process(self: Arc<Self>, connector: Arc<Connector>, job: ShadowJob) {
        let rt = job.runtime.clone();
        let route = rt.route.as_str();
        let copy = async {
            let req = request_for(&job, &job.copy, "1")?;
            match tokio::time::timeout(
                rt.timeout,
                exchange(&connector, &job.target, req, job.body.clone(), rt.max_body),
            )
            .await
            {
                Ok(r) => r.map(Some),
                Err(_) => Ok(None),
            }
        };
        let probe = async {
            let Some(peer) = &job.noise_probe else {
                return None;
            };
            let req = request_for(&job, &job.probe, "noise").ok()?;
            tokio::time::timeout(
                rt.timeout,
                exchange(&connector, peer, req, job.body.clone(), rt.max_body),
            )
            .await
            .ok()?
            .ok()
        };
        let (copy, probe) = tokio::join!(copy, probe);
        let copy = match copy {
            Ok(Some(r)) => {
                self.outcome(route, ShadowOutcome::Sent);
                r
            }
            Ok(None) => {
                self.outcome(route, ShadowOutcome::Timeout);
                return;
            }
            Err(SendError::TooLarge) => {
                self.outcome(route, ShadowOutcome::Skipped);
                self.metrics
                    .count_shadow_dropped(route, DropReason::TooLarge, 1);
                return;
            }
            Err(SendError::Failed(e)) => {
                debug!("shadow copy for {route} failed: {e}");
                self.outcome(route, ShadowOutcome::Error);
                return;
            }
        };

        let primary = decoded(&job.primary);
        let other = decoded(&copy);
        let (legacy, new, legacy_raw, new_raw) = match job.primary_side {
            Side::Legacy => (&primary, &other, &job.primary, &copy),
            Side::New => (&other, &primary, &copy, &job.primary),
        };
        let second = probe.as_ref().map(decoded);
        let compared = Compared::of(
            &rt.compare,
            Answers {
                legacy,
                new,
                legacy_again: second.as_ref(),
            },
        );
        let judgement = {
            let mut noise = self.noise.lock().unwrap_or_else(|e| e.into_inner());
            let unknown = NoiseModel::default();
            let judgement = compared.judge(noise.totals.get(route).unwrap_or(&unknown));
            noise.learn(route, &judgement.learned);
            judgement
        };
        let verdict = judgement.verdict;
        self.metrics.count_shadow_diff(route, verdict);

        let stored = |r: &CapturedResponse, e: &Exchange| StoredResponse {
            status: r.status,
            headers: rt.redactor.headers(&r.headers),
            body: rt.redactor.body(&e.body),
            latency_ms: r.latency.as_secs_f64() * 1000.0,
        };
        let record = ComparisonRecord {
            id: job.request_id.clone(),
            created_at_ms: millis(job.received_at),
            route: route.to_string(),
            config_version: job.config_version as i64,
            tenant: job.tenant.clone(),
            instance: self.instance.clone(),
            request: StoredRequest {
                method: job.method.to_string(),
                path: rt.redactor.path(&job.path),
                headers: rt.redactor.headers(&crate::capture::header_texts(
                    job.headers.iter().map(|(k, v)| (k, v)),
                )),
                body: rt.redactor.body(&job.body),
            },
            primary_side: job.primary_side.as_str().to_string(),
            verdict,
            legacy: stored(legacy_raw, legacy),
            new: stored(new_raw, new),
            differences: judgement.stored_differences(&rt.redactor),
            more_differences: judgement.more_differences,
            source: shadow_diff::Source::Shadow,
        };
        self.writer.submit(StoreItem::Comparison(Box::new(record)));
    }

    /// Redacts a recorded exchange and hands it to the store writer, which
    /// counts it stored or dropped.
    fn record(&self, job: crate::record::RecordJob) {
        let recording = job.into_recording(&self.instance);
        self.writer
            .submit(StoreItem::Recording(Box::new(recording)));
    }

    fn flush_noise(&self) {
        let pending = {
            let mut noise = self.noise.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::take(&mut noise.pending)
        };
        for (route, model) in pending {
            if !model.is_empty() {
                self.writer
                    .submit(StoreItem::Noise(NoiseDelta { route, model }));
            }
        }
    }

    /// Totals from the store (shared by a fleet), plus what is not flushed.
    async fn refresh_noise(&self) {
        let Some(store) = self.writer.store() else {
            return;
        };
        let Ok(Ok(stored)) =
            tokio::time::timeout(Duration::from_secs(5), store.noise_models()).await
        else {
            return;
        };
        let mut noise = self.noise.lock().unwrap_or_else(|e| e.into_inner());
        let mut totals = stored;
        for (route, model) in &noise.pending {
            totals.entry(route.clone()).or_default().merge(model);
        }
        noise.totals = totals;
    }
}

/// While jobs keep coming, the engine looks at its queue this often instead
/// of being woken for each job: queuing then wakes no thread, which would
/// cost the worker that queued it a system call and the other core a
/// context switch per request.
const INTAKE_EVERY: Duration = Duration::from_millis(2);

/// Looks at an empty queue before the engine goes back to sleeping until a
/// job wakes it (100 ms at [`INTAKE_EVERY`]): jobs less than that apart
/// then wake nothing, and an idle proxy has no timer ticking.
const QUIET_LOOKS_BEFORE_SLEEP: u32 = 50;

/// A job and a concurrency permit for it, waiting for both. Cancel-safe:
/// dropping it returns the permit and loses no job.
async fn next_job(
    jobs: &mut mpsc::Receiver<EngineJob>,
    permits: &Arc<Semaphore>,
) -> Option<(EngineJob, OwnedSemaphorePermit)> {
    let permit = permits.clone().acquire_owned().await.ok()?;
    let job = jobs.recv().await?;
    Some((job, permit))
}

/// What a look at the queue found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Intake {
    /// No job.
    Nothing,
    /// Jobs, started or (every permit taken) still waiting.
    Jobs,
    /// The request path is gone: the process is stopping.
    Closed,
}

/// The engine as a Pingora background service (its own runtime thread).
#[derive(Debug)]
pub struct ShadowService(pub Arc<ShadowEngine>);

#[async_trait]
impl BackgroundService for ShadowService {
    async fn start(&self, shutdown: ShutdownWatch) {
        self.0.clone().run(shutdown).await
    }
}

impl ShadowEngine {
    async fn run(self: Arc<Self>, mut shutdown: ShutdownWatch) {
        // The service has one runtime thread (`threads = Some(1)`), this one:
        // every job below runs on it.
        if let Err(e) = super::priority::lower_this_thread() {
            warn!("shadow engine: its thread keeps the workers' CPU priority: {e}");
        }
        let Some(mut jobs) = self.jobs.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            return;
        };
        let connector = Arc::new(Connector::new(None));
        let permits = Arc::new(Semaphore::new(self.settings.concurrency.max(1)));
        let mut flush = tokio::time::interval(Duration::from_secs(2));
        let mut refresh = tokio::time::interval(Duration::from_secs(30));
        let mut refreshed_after_connect = false;
        let started = Instant::now();
        let mut intake = tokio::time::interval(INTAKE_EVERY);
        intake.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // Fewer quiet looks than the limit: jobs came lately, so the queue is
        // looked at on `intake` ticks; otherwise (as at start) the engine
        // sleeps until a job wakes it.
        let mut quiet_looks = QUIET_LOOKS_BEFORE_SLEEP;
        loop {
            tokio::select! {
                _ = shutdown.changed() => {
                    self.flush_noise();
                    return;
                }
                _ = flush.tick() => {
                    self.flush_noise();
                    if !refreshed_after_connect && self.writer.store().is_some() {
                        refreshed_after_connect = true;
                        self.refresh_noise().await;
                    }
                }
                _ = refresh.tick() => {
                    if started.elapsed() > Duration::from_secs(1) {
                        self.refresh_noise().await;
                    }
                }
                next = next_job(&mut jobs, &permits), if quiet_looks >= QUIET_LOOKS_BEFORE_SLEEP => {
                    let Some((job, permit)) = next else { return };
                    self.start(&connector, job, permit);
                    quiet_looks = 0;
                }
                _ = intake.tick(), if quiet_looks < QUIET_LOOKS_BEFORE_SLEEP => {
                    match self.take_queued(&mut jobs, &permits, &connector) {
                        Intake::Jobs => quiet_looks = 0,
                        Intake::Nothing => quiet_looks += 1,
                        Intake::Closed => return,
                    }
                }
            }
        }
    }

    /// Runs one job on its own task, holding its permit and its bytes of
    /// the budget until it ends.
    fn start(
        self: &Arc<Self>,
        connector: &Arc<Connector>,
        job: EngineJob,
        permit: OwnedSemaphorePermit,
    ) {
        let engine = self.clone();
        let connector = connector.clone();
        let budget = self.budget.clone();
        tokio::spawn(async move {
            let weight = job.weight();
            match job {
                EngineJob::Shadow(job) => engine.process(connector, *job).await,
                EngineJob::Record(job) => engine.record(*job),
            }
            budget.release(weight);
            drop(permit);
        });
    }

    /// Starts every queued job there is a permit for.
    fn take_queued(
        self: &Arc<Self>,
        jobs: &mut mpsc::Receiver<EngineJob>,
        permits: &Arc<Semaphore>,
        connector: &Arc<Connector>,
    ) -> Intake {
        let mut found = Intake::Nothing;
        loop {
            // With every permit taken the rest stay queued (the queue's bound
            // drops what does not fit, counted `queue_full`).
            let Ok(permit) = permits.clone().try_acquire_owned() else {
                return Intake::Jobs;
            };
            match jobs.try_recv() {
                Ok(job) => {
                    self.start(connector, job, permit);
                    found = Intake::Jobs;
                }
                Err(TryRecvError::Empty) => return found,
                Err(TryRecvError::Disconnected) => return Intake::Closed,
            }
        }
    }
}
