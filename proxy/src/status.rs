//! Where each route stands: `strangler status` and `GET /status`. For every
//! route its stage (from the configuration), canary, rollout, guard state,
//! diff verdict over the report's default window, and the share of its
//! recent requests the new side served; then the total: how many routes are
//! migrated and how much of all traffic (unmatched requests included) the
//! new services serve.
//!
//! Request shares are this proxy's own: [`Traffic`] samples the request
//! counters every [`SAMPLE_EVERY`] and a share is read over the last
//! [`WINDOW`] (or since start, when the proxy is younger).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use shadow_diff::report::{VerdictScope, VerdictSummary};

use crate::config::Side;
use crate::guard::GuardBoard;
use crate::live::{Live, LiveTable};
use crate::rollout::Rollouts;

/// How far back a request share looks.
pub const WINDOW: Duration = Duration::from_secs(300);
/// How often the request counters are sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(30);
/// The report's default window, over which a route's verdict is read.
const VERDICT_WINDOW: Duration = Duration::from_secs(24 * 3600);
/// How long the store has to give every route's verdict.
const VERDICT_TIMEOUT: Duration = Duration::from_secs(3);

/// Requests per route and side (legacy, new) since start.
type Totals = HashMap<String, [u64; 2]>;

/// Samples of the request counters, oldest first.
#[derive(Debug, Default)]
pub struct Traffic(Mutex<VecDeque<(Instant, Totals)>>);

fn totals(table: &LiveTable) -> Totals {
    let mut out = Totals::with_capacity(table.route_metrics.len() + 1);
    let sides = |m: &crate::metrics::RouteMetrics| {
        [
            m.side(Side::Legacy).totals().0,
            m.side(Side::New).totals().0,
        ]
    };
    for m in table.route_metrics.iter().chain([&table.default_metrics]) {
        out.insert(m.route.clone(), sides(m));
    }
    out
}

impl Traffic {
    /// Takes a sample now; keeps one at or before the window's start.
    pub fn sample(&self, table: &LiveTable) {
        let now = Instant::now();
        let mut samples = self.0.lock().unwrap_or_else(|e| e.into_inner());
        samples.push_back((now, totals(table)));
        while samples.len() > 2 && now.duration_since(samples[1].0) >= WINDOW {
            samples.pop_front();
        }
    }

    /// Requests per route and side within the window (up to now), and how
    /// long that window really is.
    pub fn recent(&self, table: &LiveTable) -> (Totals, Duration) {
        let now_totals = totals(table);
        let samples = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let Some((at, old)) = samples.front() else {
            return (now_totals, Duration::ZERO);
        };
        let recent = now_totals
            .into_iter()
            .map(|(route, [l, n])| {
                let [l0, n0] = old.get(&route).copied().unwrap_or([0, 0]);
                (route, [l.saturating_sub(l0), n.saturating_sub(n0)])
            })
            .collect();
        (recent, at.elapsed())
    }

    /// Samples until the process exits.
    pub async fn run(self: Arc<Self>, live: Arc<Live>) {
        let mut tick = tokio::time::interval(SAMPLE_EVERY);
        loop {
            tick.tick().await;
            self.sample(&live.current());
        }
    }
}

/// What the admin server and the control plane share to say where routes
/// stand.
#[derive(Debug)]
pub struct Overview {
    pub rollouts: Arc<Rollouts>,
    pub guard: Arc<GuardBoard>,
    pub traffic: Arc<Traffic>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub version: u64,
    pub instance: String,
    pub routes: Vec<RouteStatus>,
    pub total: Total,
    /// Why verdicts or rollouts could not be read, if they could not.
    pub store_error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RouteStatus {
    pub route: String,
    pub stage: &'static str,
    pub canary: f64,
    pub rollout: Option<RolloutBrief>,
    /// off | gathering | healthy | tripped
    pub guard: &'static str,
    /// The diff verdict over the last 24 hours; absent for a route that does
    /// not shadow, or when the store could not say.
    pub report: Option<VerdictSummary>,
    /// Requests in the window, and the share the new side served.
    pub requests: u64,
    pub new_share: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RolloutBrief {
    pub state: rollback::rollouts::RolloutState,
    pub step: f64,
    pub next: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Total {
    pub routes: usize,
    pub migrated: usize,
    /// All requests in the window, unmatched ones included.
    pub requests: u64,
    pub on_new: u64,
    pub new_share: Option<f64>,
    pub window_seconds: u64,
}

fn share(legacy: u64, new: u64) -> Option<f64> {
    (legacy + new > 0).then(|| new as f64 / (legacy + new) as f64)
}

impl Overview {
    pub async fn status(&self, writer: &shadow_diff::StoreWriter) -> Status {
        let live = self.rollouts.changes().live();
        let table = live.current();
        let config = table.config();
        let (recent, window) = self.traffic.recent(&table);
        let verdicts = verdicts(writer, config).await;
        let rollouts: HashMap<String, crate::rollout::RolloutView> = self
            .rollouts
            .views()
            .into_iter()
            .map(|v| (v.route.clone(), v))
            .collect();
        let mut routes = Vec::with_capacity(config.routes.len());
        for r in &config.routes {
            let name = r.name.as_str();
            let [legacy, new] = recent.get(name).copied().unwrap_or([0, 0]);
            routes.push(RouteStatus {
                route: name.to_string(),
                stage: r.stage().as_str(),
                canary: r.canary.get(),
                rollout: rollouts.get(name).map(|v| RolloutBrief {
                    state: v.state,
                    step: v.step,
                    next: v.next,
                }),
                guard: match (&r.guard, self.guard.get(name)) {
                    (None, _) => "off",
                    (Some(_), None) => "gathering",
                    (Some(_), Some(s)) => s.as_str(),
                },
                report: verdicts.0.get(name).cloned(),
                requests: legacy + new,
                new_share: share(legacy, new),
            });
        }
        let (legacy, new) = recent
            .values()
            .fold((0, 0), |(l, n), [a, b]| (l + a, n + b));
        Status {
            version: table.version,
            instance: self.rollouts.changes().instance().to_string(),
            total: Total {
                routes: routes.len(),
                migrated: routes.iter().filter(|r| r.stage == "migrated").count(),
                requests: legacy + new,
                on_new: new,
                new_share: share(legacy, new),
                window_seconds: window.as_secs(),
            },
            routes,
            store_error: verdicts.1.or_else(|| self.rollouts.store_error()),
        }
    }
}

/// Every shadowed route's verdict over the report's default window, and why
/// the store could not give them, if it could not.
async fn verdicts(
    writer: &shadow_diff::StoreWriter,
    config: &crate::config::Config,
) -> (HashMap<String, VerdictSummary>, Option<String>) {
    let Some(store) = writer.store() else {
        return (HashMap::new(), Some("the store is not connected".into()));
    };
    let since = crate::report::now_ms() - VERDICT_WINDOW.as_millis() as i64;
    let all = async {
        let mut out = HashMap::new();
        for r in &config.routes {
            let Some(shadow) = &r.shadow else { continue };
            let scope = VerdictScope {
                route: r.name.as_str(),
                source: shadow_diff::Source::Shadow,
                since_ms: Some(since),
                min_config_version: None,
            };
            let v = shadow_diff::report::verdict(&store, scope, &shadow.threshold).await?;
            out.insert(r.name.to_string(), v);
        }
        Ok::<_, shadow_diff::StoreError>(out)
    };
    match tokio::time::timeout(VERDICT_TIMEOUT, all).await {
        Ok(Ok(v)) => (v, None),
        Ok(Err(e)) => (
            HashMap::new(),
            Some(format!("reading the diff store failed: {e}")),
        ),
        Err(_) => (
            HashMap::new(),
            Some(format!(
                "the diff store did not give the verdicts in {} s",
                VERDICT_TIMEOUT.as_secs()
            )),
        ),
    }
}
