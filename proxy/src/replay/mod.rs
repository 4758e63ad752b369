//! Replay: **where recorded traffic is sent again and judged.** A run is
//! asked of a proxy through its admin API (`POST /routes/{name}/replay`) (`strangler replay` does that and
//! prints the progress): the proxy checks the request against its live
//! table ([`Replays::start`]), then [`run`] sends the route's recordings to
//! the target and stores the comparisons as `source: replay`, which the
//! diff report shows apart from live shadow comparisons. What each recorded
//! request becomes on the wire is decided in [`prepare`], without I/O.
//! Runs are kept in memory while the proxy lives (the last
//! [`KEPT_RUNS`]) and in the store's `replay_runs` for the report.

pub mod prepare;
mod run;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderName, HeaderValue};
use pingora::upstreams::peer::HttpPeer;
use serde::{Deserialize, Serialize};
use shadow_diff::{Redactor, ReplayRun, RunCounts, RunState, StoreWriter};

use crate::config::{Backend, Route, Side, units::parse_duration};
use crate::live::Live;

/// Runs remembered by a proxy for `GET /replays`.
pub const KEPT_RUNS: usize = 50;
/// Recordings replayed when the request names no `since`.
pub const DEFAULT_SINCE: Duration = Duration::from_secs(86_400);
/// Requests per second when the request names no `rate`: gentle on a
/// target that has never taken traffic.
pub const DEFAULT_RATE: f64 = 50.0;
pub const DEFAULT_CONCURRENCY: usize = 4;
pub const MAX_CONCURRENCY: usize = 256;
/// A target's answer that takes longer is a failure, unless the route's
/// `timeout` or shadow timeout says otherwise.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest answer read when the route has no `record:` block any more.
const DEFAULT_MAX_BODY: usize = 1 << 20;

/// `POST /routes/{name}/replay`: what to replay and where.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReplayRequest {
    /// How far back recordings are taken (`24h`, `30m`).
    pub since: Option<String>,
    /// `new` (the default), `legacy`, or a backend's name.
    pub to: Option<String>,
    /// Requests per second; `0` for as fast as `concurrency` allows.
    pub rate: Option<f64>,
    /// At most this many recordings.
    pub limit: Option<u64>,
    pub concurrency: Option<usize>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("no route named {0:?}")]
    UnknownRoute(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("the diff store is not connected; recordings live there")]
    NoStore,
    #[error("{0}")]
    Unresolved(String),
    #[error("no replay run {0:?} on this proxy")]
    UnknownRun(String),
}

/// Everything a run needs, settled before it starts.
#[derive(Debug)]
pub(crate) struct RunPlan {
    pub run_id: String,
    pub route: Route,
    pub config_version: u64,
    pub target: Backend,
    pub target_side: Side,
    pub peer: Box<HttpPeer>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub redactor: Redactor,
    pub since_ms: i64,
    pub rate: Option<f64>,
    pub limit: Option<u64>,
    pub concurrency: usize,
    pub timeout: Duration,
    pub max_body: usize,
}

/// A run's progress, shared by the run and the admin API.
#[derive(Debug)]
pub struct RunHandle {
    run: Mutex<ReplayRun>,
    /// Recordings there are to read (at most `limit`), when it started.
    pub total: u64,
    pub cancel: AtomicBool,
}

impl RunHandle {
    pub fn snapshot(&self) -> ReplayRun {
        self.run.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn update(&self, change: impl FnOnce(&mut ReplayRun)) {
        change(&mut self.run.lock().unwrap_or_else(|e| e.into_inner()));
    }

    fn set(&self, run: ReplayRun) {
        *self.run.lock().unwrap_or_else(|e| e.into_inner()) = run;
    }

    /// The run as the admin API shows it.
    pub fn view(&self) -> RunView {
        let run = self.snapshot();
        let elapsed_ms = run.finished_at_ms.unwrap_or_else(now_ms) - run.started_at_ms;
        let done = run.counts.compared() + run.counts.failed;
        RunView {
            total: self.total,
            elapsed_s: elapsed_ms.max(0) as f64 / 1000.0,
            rate: if elapsed_ms > 0 {
                done as f64 * 1000.0 / elapsed_ms as f64
            } else {
                0.0
            },
            run,
        }
    }
}

/// `GET /replays/ID`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunView {
    #[serde(flatten)]
    pub run: ReplayRun,
    pub total: u64,
    pub elapsed_s: f64,
    /// Requests answered (or failed) per second so far.
    pub rate: f64,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The replay runs of this proxy.
#[derive(Debug)]
pub struct Replays {
    live: Arc<Live>,
    writer: StoreWriter,
    instance: String,
    runs: Mutex<VecDeque<(String, Arc<RunHandle>)>>,
}

impl Replays {
    pub fn new(live: Arc<Live>, writer: StoreWriter, instance: String) -> Replays {
        Replays {
            live,
            writer,
            instance,
            runs: Mutex::new(VecDeque::new()),
        }
    }

    /// Checks the request against the live table and starts the run on the
    /// current runtime.
    pub async fn start(
        &self,
        route_name: &str,
        request: &ReplayRequest,
    ) -> Result<RunView, ReplayError> {
        let table = self.live.current();
        let config = table.config();
        let route = config
            .route(route_name)
            .ok_or_else(|| ReplayError::UnknownRoute(route_name.to_string()))?;
        let (target_id, target_side) = match request.to.as_deref().unwrap_or("new") {
            "new" => (route.new, Side::New),
            "legacy" => (route.legacy, Side::Legacy),
            name => {
                let id = config.backend_id(name).ok_or_else(|| {
                    ReplayError::BadRequest(format!(
                        "no backend named {name:?} (to: new, legacy, or a backend of the file)"
                    ))
                })?;
                // A backend of neither side gets the new side's path.
                (
                    id,
                    if id == route.legacy {
                        Side::Legacy
                    } else {
                        Side::New
                    },
                )
            }
        };
        let since = match &request.since {
            None => DEFAULT_SINCE,
            Some(text) => {
                parse_duration(text).map_err(|e| ReplayError::BadRequest(format!("since: {e}")))?
            }
        };
        let rate = request.rate.unwrap_or(DEFAULT_RATE);
        if !(rate >= 0.0 && rate.is_finite()) {
            return Err(ReplayError::BadRequest(format!(
                "rate: {rate} is not a number of requests per second (above 0, or 0 for no limit)"
            )));
        }
        // 0: no pacing, only the concurrency bounds it.
        let rate = (rate > 0.0).then_some(rate);
        let concurrency = request.concurrency.unwrap_or(DEFAULT_CONCURRENCY);
        if concurrency == 0 || concurrency > MAX_CONCURRENCY {
            return Err(ReplayError::BadRequest(format!(
                "concurrency: {concurrency} is not 1 to {MAX_CONCURRENCY}"
            )));
        }
        let headers = run::resolve_headers(&route.replay).map_err(ReplayError::Unresolved)?;
        let store = self.writer.store().ok_or(ReplayError::NoStore)?;
        let since_ms = now_ms() - since.as_millis() as i64;
        let total = store
            .recording_count(route_name, since_ms)
            .await
            .map_err(|e| ReplayError::Unresolved(format!("reading the store failed: {e}")))?;
        let total = request.limit.map_or(total, |l| total.min(l));

        let run_id = format!(
            "{}-{:x}",
            now_ms(),
            crate::dataplane::ctx::fast_random() & 0xffff_ffff
        );
        // The route's own limits where it has them.
        let timeout = route
            .timeout
            .or(route.shadow.as_ref().map(|s| s.timeout))
            .unwrap_or(DEFAULT_TIMEOUT);
        let max_body = route
            .record
            .as_ref()
            .map(|r| r.max_body.get() as usize)
            .or(route.shadow.as_ref().map(|s| s.max_body.get() as usize))
            .unwrap_or(DEFAULT_MAX_BODY);
        let plan = RunPlan {
            run_id: run_id.clone(),
            route: route.clone(),
            config_version: table.version,
            target: config.backend(target_id).clone(),
            target_side,
            peer: table.upstreams[target_id.0].pick(),
            headers,
            redactor: crate::record::recording_redactor(route),
            since_ms,
            rate,
            limit: request.limit,
            concurrency,
            timeout,
            max_body,
        };
        let handle = Arc::new(RunHandle {
            run: Mutex::new(ReplayRun {
                id: run_id.clone(),
                route: route_name.to_string(),
                target: plan.target.name.to_string(),
                started_at_ms: now_ms(),
                finished_at_ms: None,
                since_ms,
                state: RunState::Running,
                counts: RunCounts::default(),
                message: None,
                instance: self.instance.clone(),
            }),
            total,
            cancel: AtomicBool::new(false),
        });
        {
            let mut runs = self.runs.lock().unwrap_or_else(|e| e.into_inner());
            runs.push_back((run_id, handle.clone()));
            while runs.len() > KEPT_RUNS {
                runs.pop_front();
            }
        }
        let view = handle.view();
        tokio::spawn(run::run(
            plan,
            store,
            handle,
            self.live.metrics().clone(),
            self.instance.clone(),
        ));
        Ok(view)
    }

    pub fn run(&self, id: &str) -> Option<Arc<RunHandle>> {
        let runs = self.runs.lock().unwrap_or_else(|e| e.into_inner());
        runs.iter().find(|(i, _)| i == id).map(|(_, h)| h.clone())
    }

    /// The runs this proxy remembers, newest first.
    pub fn views(&self) -> Vec<RunView> {
        let runs = self.runs.lock().unwrap_or_else(|e| e.into_inner());
        runs.iter().rev().map(|(_, h)| h.view()).collect()
    }

    /// Asks a run to stop after the requests in flight.
    pub fn cancel(&self, id: &str) -> Result<RunView, ReplayError> {
        let handle = self
            .run(id)
            .ok_or_else(|| ReplayError::UnknownRun(id.to_string()))?;
        handle.cancel.store(true, Ordering::SeqCst);
        Ok(handle.view())
    }
}
