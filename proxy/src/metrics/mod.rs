//! The Prometheus registry and the metric families named in the design brief.
//! Their names and labels are an interface: dashboards and alerts depend on
//! them. Label values come only from config names and fixed enums.
//!
//! On the request path nothing is looked up by label: [`RouteMetrics`] holds
//! the cells of one route, resolved once per configuration version, so
//! counting a request is a few atomic additions. The per-route families are
//! kept compactly and written out by hand ([`route_cells`]); the others are
//! the Prometheus crate's.
//!
//! Every series a configuration makes possible exists at zero from the moment
//! the configuration is installed ([`series`]); the process's own health
//! (build, store, last reload, CPU, memory, descriptors) is in [`process`]
//! and the gauges here.

mod process;
mod route_cells;
mod series;

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use prometheus::{Encoder, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};

use crate::config::{Config, Side, Stage};
use rollback::rollouts::RolloutState;
pub use route_cells::DURATION_BUCKETS;
use route_cells::{RouteCells, RouteStore, slot};
pub use series::RollbackTrigger;
use series::{DROP_REASONS, SHADOW_OUTCOMES, UPSTREAM_ERROR_KINDS, VERDICTS, route_series};

/// Status classes used as the `status_class` label.
pub const STATUS_CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "none"];

fn status_class_index(status: u16) -> usize {
    match status {
        100..=199 => 0,
        200..=299 => 1,
        300..=399 => 2,
        400..=499 => 3,
        500..=599 => 4,
        _ => 5,
    }
}

/// Kinds of upstream failure, the `kind` label of `strangler_upstream_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamErrorKind {
    ConnectRefused,
    ConnectTimeout,
    Connect,
    Tls,
    ReadTimeout,
    WriteTimeout,
    Reset,
    Protocol,
    Other,
}

impl UpstreamErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            UpstreamErrorKind::ConnectRefused => "connect_refused",
            UpstreamErrorKind::ConnectTimeout => "connect_timeout",
            UpstreamErrorKind::Connect => "connect_error",
            UpstreamErrorKind::Tls => "tls",
            UpstreamErrorKind::ReadTimeout => "read_timeout",
            UpstreamErrorKind::WriteTimeout => "write_timeout",
            UpstreamErrorKind::Reset => "reset",
            UpstreamErrorKind::Protocol => "protocol",
            UpstreamErrorKind::Other => "other",
        }
    }
}

/// Outcomes of a shadow copy (`strangler_shadow_requests_total{outcome}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShadowOutcome {
    Sent,
    Skipped,
    Error,
    Timeout,
}

impl ShadowOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            ShadowOutcome::Sent => "sent",
            ShadowOutcome::Skipped => "skipped",
            ShadowOutcome::Error => "error",
            ShadowOutcome::Timeout => "timeout",
        }
    }
}

/// Why a shadow copy or its diff was dropped (`strangler_shadow_dropped_total{reason}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    QueueFull,
    TooLarge,
    Method,
    Store,
}

impl DropReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::QueueFull => "queue_full",
            DropReason::TooLarge => "too_large",
            DropReason::Method => "method",
            DropReason::Store => "store",
        }
    }
}

/// What became of a sampled request to record
/// (`strangler_record_total{outcome}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordOutcome {
    /// Written to the store.
    Stored,
    /// Request or answer over the route's `record.max_body`.
    TooLarge,
    /// The engine's queue or memory budget was full.
    QueueFull,
    /// The store was down, full or slow: the writer dropped it.
    Store,
    /// The client got no upstream answer (an error): nothing to replay against.
    Unanswered,
}

impl RecordOutcome {
    pub const ALL: [RecordOutcome; 5] = [
        RecordOutcome::Stored,
        RecordOutcome::TooLarge,
        RecordOutcome::QueueFull,
        RecordOutcome::Store,
        RecordOutcome::Unanswered,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RecordOutcome::Stored => "stored",
            RecordOutcome::TooLarge => "too_large",
            RecordOutcome::QueueFull => "queue_full",
            RecordOutcome::Store => "store",
            RecordOutcome::Unanswered => "unanswered",
        }
    }
}

/// What became of one recorded request in a replay
/// (`strangler_replay_requests_total{outcome}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayOutcome {
    Match,
    Diff,
    Noise,
    /// Not sent: a method with side effects without `replay.allow_writes`,
    /// or a redacted value with no replacement.
    Skipped,
    /// Sent, and no usable answer came.
    Failed,
}

impl ReplayOutcome {
    pub const ALL: [ReplayOutcome; 5] = [
        ReplayOutcome::Match,
        ReplayOutcome::Diff,
        ReplayOutcome::Noise,
        ReplayOutcome::Skipped,
        ReplayOutcome::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReplayOutcome::Match => "match",
            ReplayOutcome::Diff => "diff",
            ReplayOutcome::Noise => "noise",
            ReplayOutcome::Skipped => "skipped",
            ReplayOutcome::Failed => "failed",
        }
    }
}

impl shadow_diff::WriterEvents for Metrics {
    fn stored(&self, kept: shadow_diff::Kept, route: &str, n: u64) {
        match kept {
            shadow_diff::Kept::Comparison => self
                .routes
                .with(route, |c| _ = c.shadow_stored.fetch_add(n, Relaxed)),
            shadow_diff::Kept::Recording => self.count_record(route, RecordOutcome::Stored, n),
        }
    }

    fn dropped(&self, kept: shadow_diff::Kept, route: &str, n: u64) {
        match kept {
            shadow_diff::Kept::Comparison => self.count_shadow_dropped(route, DropReason::Store, n),
            shadow_diff::Kept::Recording => self.count_record(route, RecordOutcome::Store, n),
        }
    }
}

/// All metric families of one process.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// Every series labelled by route (see [`route_cells`]).
    routes: Arc<RouteStore>,
    pub config_reloads: IntCounterVec,
    pub config_version: IntGauge,
    /// 1 when the last reload attempt succeeded (or none has failed since
    /// start), 0 while the file on disk is rejected.
    pub config_last_reload_successful: IntGauge,
    /// 1 while the diff and history store answers, 0 while it does not.
    pub store_up: IntGauge,
    process: process::ProcessMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let config_reloads = IntCounterVec::new(
            Opts::new(
                "strangler_config_reloads_total",
                "Configuration reloads, by result.",
            ),
            &["result"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(config_reloads.clone()))
            .expect("unique metric");
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("valid metric");
            registry
                .register(Box::new(g.clone()))
                .expect("unique metric");
            g
        };
        let config_version = gauge(
            "strangler_config_version",
            "Version of the configuration being served.",
        );
        let config_last_reload_successful = gauge(
            "strangler_config_last_reload_successful",
            "1 if the last reload of the configuration succeeded, 0 if it was rejected.",
        );
        config_last_reload_successful.set(1);
        let store_up = gauge(
            "strangler_store_up",
            "1 while the diff and history store answers, 0 while it does not.",
        );
        let build_info = IntGaugeVec::new(
            Opts::new(
                "strangler_build_info",
                "Always 1; the version label is the running build's.",
            ),
            &["version"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(build_info.clone()))
            .expect("unique metric");
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        let process = process::ProcessMetrics::register(&registry);
        // Reload results are shown as zero before the first reload, so an
        // alert on the error rate has a series to evaluate.
        for result in ["ok", "error"] {
            config_reloads.with_label_values(&[result]);
        }
        Metrics {
            registry,
            routes: Arc::default(),
            config_reloads,
            config_version,
            config_last_reload_successful,
            store_up,
            process,
        }
    }

    /// Exports every series `current` makes possible (at zero if new) and
    /// removes those only `previous` made possible. Called once per
    /// installed configuration, before its table serves.
    pub fn apply_config(&self, current: &Config, previous: Option<&Config>) {
        self.routes.install(&route_series(current));
        self.set_stages(current, previous);
    }

    /// Sets `strangler_route_stage` of every route whose stage is new.
    fn set_stages(&self, current: &Config, previous: Option<&Config>) {
        let before: std::collections::HashMap<&str, Stage> = previous
            .map(|p| {
                p.routes
                    .iter()
                    .map(|r| (r.name.as_str(), r.stage()))
                    .collect()
            })
            .unwrap_or_default();
        for route in &current.routes {
            let stage = route.stage();
            if before.get(route.name.as_str()) == Some(&stage) {
                continue;
            }
            self.routes.with(route.name.as_str(), |c| {
                for (i, s) in Stage::ALL.iter().enumerate() {
                    c.stage[i].store((*s == stage) as u64, Relaxed);
                }
            });
        }
    }

    /// `strangler_canary_percent` of a route.
    pub fn set_canary_percent(&self, route: &str, percent: f64) {
        self.routes.with(route, |c| c.canary_percent.set(percent));
    }

    /// `strangler_rollout_step` and `strangler_rollout_state` of a route.
    pub fn set_rollout(&self, route: &str, step: f64, state: RolloutState) {
        self.routes.with(route, |c| {
            c.rollout_step.set(step);
            for (i, s) in RolloutState::ALL.iter().enumerate() {
                c.rollout_state[i].store((*s == state) as u64, Relaxed);
            }
        });
    }

    pub fn count_rollout_failure(&self, route: &str) {
        self.routes
            .with(route, |c| _ = c.rollout_failures.fetch_add(1, Relaxed));
    }

    pub fn count_rollback(&self, route: &str, trigger: RollbackTrigger) {
        let i = slot(&RollbackTrigger::ALL, &trigger);
        self.routes
            .with(route, |c| _ = c.rollbacks[i].fetch_add(1, Relaxed));
    }

    pub fn count_shadow(&self, route: &str, outcome: ShadowOutcome) {
        let i = slot(&SHADOW_OUTCOMES, &outcome);
        self.routes
            .with(route, |c| _ = c.shadow_requests[i].fetch_add(1, Relaxed));
    }

    pub fn count_shadow_dropped(&self, route: &str, reason: DropReason, n: u64) {
        let i = slot(&DROP_REASONS, &reason);
        self.routes
            .with(route, |c| _ = c.shadow_dropped[i].fetch_add(n, Relaxed));
    }

    pub fn count_shadow_diff(&self, route: &str, verdict: shadow_diff::Verdict) {
        let i = slot(&VERDICTS, &verdict);
        self.routes
            .with(route, |c| _ = c.shadow_diffs[i].fetch_add(1, Relaxed));
    }

    /// Compared pairs of a route by verdict, since start.
    pub fn shadow_diffs(&self, route: &str, verdict: shadow_diff::Verdict) -> u64 {
        let i = slot(&VERDICTS, &verdict);
        self.routes
            .get(route)
            .map_or(0, |c| c.shadow_diffs[i].load(Relaxed))
    }

    pub fn count_record(&self, route: &str, outcome: RecordOutcome, n: u64) {
        let i = slot(&RecordOutcome::ALL, &outcome);
        self.routes
            .with(route, |c| _ = c.record[i].fetch_add(n, Relaxed));
    }

    pub fn count_replay(&self, route: &str, outcome: ReplayOutcome) {
        let i = slot(&ReplayOutcome::ALL, &outcome);
        self.routes
            .with(route, |c| _ = c.replay[i].fetch_add(1, Relaxed));
    }

    /// Registers a family owned by another part of the proxy.
    pub fn register_extra(&self, collector: Box<dyn prometheus::core::Collector>) {
        if let Err(e) = self.registry.register(collector) {
            log::warn!("metric registered twice: {e}");
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> Vec<u8> {
        self.process.refresh();
        let mut out = Vec::with_capacity(16 * 1024);
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding does not fail");
        let mut routes = String::with_capacity(64 * 1024);
        self.routes.render(&mut routes);
        out.extend_from_slice(routes.as_bytes());
        out
    }

    /// Resolves the handles one route uses on the request path.
    /// The `backend` label each side counts under is the one the installed
    /// configuration gives the route ([`Metrics::apply_config`]).
    pub fn route(&self, route: &str) -> RouteMetrics {
        let cells = self.routes.cells_for(route);
        RouteMetrics {
            route: route.to_string(),
            sides: [
                SideMetrics {
                    cells: cells.clone(),
                    side: 0,
                },
                SideMetrics { cells, side: 1 },
            ],
        }
    }
}

/// The counters of one route, resolved once per configuration version.
#[derive(Debug, Clone)]
pub struct RouteMetrics {
    pub route: String,
    sides: [SideMetrics; 2],
}

impl RouteMetrics {
    pub fn side(&self, side: Side) -> &SideMetrics {
        match side {
            Side::Legacy => &self.sides[0],
            Side::New => &self.sides[1],
        }
    }
}

/// One side of a route's cells.
#[derive(Debug, Clone)]
pub struct SideMetrics {
    cells: Arc<RouteCells>,
    /// 0 legacy, 1 new.
    side: usize,
}

impl SideMetrics {
    pub fn observe(&self, status: u16, seconds: f64) {
        self.cells.requests[self.side][status_class_index(status)].fetch_add(1, Relaxed);
        self.cells.latency[self.side].observe(seconds);
    }

    /// Requests answered and those with a 5xx status, since start.
    pub fn totals(&self) -> (u64, u64) {
        let by_class = &self.cells.requests[self.side];
        let all = by_class.iter().map(|c| c.load(Relaxed)).sum();
        (all, by_class[4].load(Relaxed))
    }

    /// The duration histogram's cumulative bucket counts: (upper bound, count).
    pub fn latency_buckets(&self) -> Vec<(f64, u64)> {
        let counts = self.cells.latency[self.side].cumulative();
        DURATION_BUCKETS
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .zip(counts)
            .collect()
    }

    pub fn upstream_retry(&self) {
        self.cells.upstream_retries[self.side].fetch_add(1, Relaxed);
    }

    pub fn upstream_error(&self, kind: UpstreamErrorKind) {
        let i = slot(&UPSTREAM_ERROR_KINDS, &kind);
        self.cells.upstream_errors[self.side][i].fetch_add(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        crate::config::parse(
            "version: 1\nbackends:\n  monolith: { url: \"http://127.0.0.1:1\" }\n  orders: { url: \"http://127.0.0.1:2\" }\ndefault: monolith\nroutes:\n  - { name: orders-read, match: { path: /api/orders }, new: orders, shadow: { percent: 100 } }\n",
            "t.yaml",
        )
        .expect("valid")
    }

    #[test]
    fn rendered_names_match_the_brief() {
        let m = Metrics::new();
        let c = config();
        let r = m.route("orders-read");
        m.apply_config(&c, None);
        r.side(Side::New).observe(200, 0.01);
        r.side(Side::Legacy)
            .upstream_error(UpstreamErrorKind::ConnectRefused);
        m.set_canary_percent("orders-read", 12.5);
        m.count_shadow_diff("orders-read", shadow_diff::Verdict::Diff);
        m.config_version.set(3);
        let text = String::from_utf8(m.render()).unwrap();
        for needle in [
            "# TYPE strangler_requests_total counter",
            r#"strangler_requests_total{backend="orders",route="orders-read",side="new",status_class="2xx"} 1"#,
            r#"strangler_requests_total{backend="monolith",route="orders-read",side="legacy",status_class="2xx"} 0"#,
            r#"strangler_request_duration_seconds_bucket{route="orders-read",side="new",le="0.005"} 0"#,
            r#"strangler_request_duration_seconds_bucket{route="orders-read",side="new",le="0.01"} 1"#,
            r#"strangler_request_duration_seconds_bucket{route="orders-read",side="new",le="+Inf"} 1"#,
            r#"strangler_request_duration_seconds_sum{route="orders-read",side="new"} 0.01"#,
            r#"strangler_request_duration_seconds_count{route="orders-read",side="new"} 1"#,
            r#"strangler_upstream_errors_total{kind="connect_refused",route="orders-read",side="legacy"} 1"#,
            r#"strangler_canary_percent{route="orders-read"} 12.5"#,
            r#"strangler_shadow_diffs_total{route="orders-read",verdict="diff"} 1"#,
            r#"strangler_route_stage{route="orders-read",stage="shadow"} 1"#,
            r#"strangler_config_reloads_total{result="error"} 0"#,
            "strangler_config_version 3",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
        assert_eq!(m.shadow_diffs("orders-read", shadow_diff::Verdict::Diff), 1);
        assert_eq!(r.side(Side::New).totals(), (1, 0));
    }

    /// A reload that gives a side another backend starts that side's
    /// requests at zero under the new label; the other side keeps counting.
    #[test]
    fn a_new_backend_starts_at_zero_and_a_removed_route_is_gone() {
        let m = Metrics::new();
        let before = config();
        let r = m.route("orders-read");
        m.apply_config(&before, None);
        r.side(Side::New).observe(200, 0.01);
        r.side(Side::Legacy).observe(200, 0.01);
        let after = crate::config::parse(
            "version: 1\nbackends:\n  monolith: { url: \"http://127.0.0.1:1\" }\n  orders2: { url: \"http://127.0.0.1:2\" }\ndefault: monolith\nroutes:\n  - { name: orders-read, match: { path: /api/orders }, new: orders2 }\n",
            "t.yaml",
        )
        .unwrap();
        m.apply_config(&after, Some(&before));
        let text = String::from_utf8(m.render()).unwrap();
        assert!(text.contains(r#"strangler_requests_total{backend="orders2",route="orders-read",side="new",status_class="2xx"} 0"#), "{text}");
        assert!(text.contains(r#"strangler_requests_total{backend="monolith",route="orders-read",side="legacy",status_class="2xx"} 1"#), "{text}");
        assert!(!text.contains("backend=\"orders\""), "{text}");
        assert!(!text.contains("strangler_shadow_requests_total"), "{text}");
        let empty = crate::config::parse(
            "version: 1\nbackends:\n  monolith: { url: \"http://127.0.0.1:1\" }\ndefault: monolith\nroutes: []\n",
            "t.yaml",
        )
        .unwrap();
        m.apply_config(&empty, Some(&after));
        let text = String::from_utf8(m.render()).unwrap();
        assert!(!text.contains("route=\"orders-read\""), "{text}");
        assert!(text.contains("route=\"default\""), "{text}");
    }

    #[test]
    fn status_classes() {
        assert_eq!(STATUS_CLASSES[status_class_index(204)], "2xx");
        assert_eq!(STATUS_CLASSES[status_class_index(504)], "5xx");
        assert_eq!(STATUS_CLASSES[status_class_index(0)], "none");
    }
}
