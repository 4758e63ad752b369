//! The Prometheus registry and the metric families named in the design brief.
//! Their names and labels are an interface: dashboards and alerts depend on
//! them. Label values come only from config names and fixed enums.
//!
//! On the request path nothing is looked up by label: [`RouteMetrics`] holds
//! the resolved counters of one route, built once per configuration version,
//! so counting a request is a few atomic additions.
//!
//! Every series a configuration makes possible exists at zero from the moment
//! the configuration is installed ([`series`]); the process's own health
//! (build, store, last reload, CPU, memory, descriptors) is in [`process`]
//! and the gauges here.

mod process;
mod series;

use prometheus::{
    Encoder, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::config::{Config, Side, Stage};
pub use series::RollbackTrigger;
use series::{Family, route_series};

/// Upper bounds of the request duration histogram, in seconds.
const DURATION_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

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
            shadow_diff::Kept::Comparison => {
                self.shadow_stored.with_label_values(&[route]).inc_by(n)
            }
            shadow_diff::Kept::Recording => self
                .record
                .with_label_values(&[route, RecordOutcome::Stored.as_str()])
                .inc_by(n),
        }
    }

    fn dropped(&self, kept: shadow_diff::Kept, route: &str, n: u64) {
        match kept {
            shadow_diff::Kept::Comparison => self
                .shadow_dropped
                .with_label_values(&[route, DropReason::Store.as_str()])
                .inc_by(n),
            shadow_diff::Kept::Recording => self
                .record
                .with_label_values(&[route, RecordOutcome::Store.as_str()])
                .inc_by(n),
        }
    }
}

/// All metric families of one process.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub duration: HistogramVec,
    pub upstream_errors: IntCounterVec,
    pub upstream_retries: IntCounterVec,
    pub canary_percent: GaugeVec,
    pub shadow_requests: IntCounterVec,
    pub shadow_dropped: IntCounterVec,
    pub shadow_diffs: IntCounterVec,
    pub shadow_stored: IntCounterVec,
    /// Sampled requests to record, by outcome.
    pub record: IntCounterVec,
    /// Recorded requests a replay run on this proxy took, by outcome.
    pub replay_requests: IntCounterVec,
    pub config_reloads: IntCounterVec,
    pub config_version: IntGauge,
    /// 1 when the last reload attempt succeeded (or none has failed since
    /// start), 0 while the file on disk is rejected.
    pub config_last_reload_successful: IntGauge,
    pub rollbacks: IntCounterVec,
    /// The step (canary percentage) each route's rollout stands at.
    pub rollout_step: GaugeVec,
    /// 1 for each rollout's current state.
    pub rollout_state: IntGaugeVec,
    /// Failed gates of each route's rollout, counted by the driving proxy.
    pub rollout_failures: IntCounterVec,
    /// 1 for each route's current stage.
    pub route_stage: IntGaugeVec,
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
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let requests = counter(
            "strangler_requests_total",
            "Requests answered, by route, backend, side and status class.",
            &["route", "backend", "side", "status_class"],
        );
        let upstream_errors = counter(
            "strangler_upstream_errors_total",
            "Failures talking to a backend, by route, side and kind.",
            &["route", "side", "kind"],
        );
        let upstream_retries = counter(
            "strangler_upstream_retries_total",
            "Further attempts of idempotent requests after an upstream error (a route's `retries`), by route and side.",
            &["route", "side"],
        );
        let shadow_requests = counter(
            "strangler_shadow_requests_total",
            "Shadow copies, by route and outcome.",
            &["route", "outcome"],
        );
        let shadow_dropped = counter(
            "strangler_shadow_dropped_total",
            "Shadow copies or diffs dropped, by route and reason.",
            &["route", "reason"],
        );
        let shadow_diffs = counter(
            "strangler_shadow_diffs_total",
            "Compared shadow pairs, by route and verdict.",
            &["route", "verdict"],
        );
        let shadow_stored = counter(
            "strangler_shadow_stored_total",
            "Compared shadow pairs written to the diff store, by route.",
            &["route"],
        );
        let record = counter(
            "strangler_record_total",
            "Requests sampled for recording (a route's `record:`), by route and outcome.",
            &["route", "outcome"],
        );
        let replay_requests = counter(
            "strangler_replay_requests_total",
            "Recorded requests taken by replay runs on this proxy, by route and outcome.",
            &["route", "outcome"],
        );
        let config_reloads = counter(
            "strangler_config_reloads_total",
            "Configuration reloads, by result.",
            &["result"],
        );
        let rollbacks = counter(
            "strangler_rollbacks_total",
            "Rollbacks, by route and trigger.",
            &["route", "trigger"],
        );
        let rollout_failures = counter(
            "strangler_rollout_failures_total",
            "Gates of a route's rollout that failed (a guard trip, a diff report reading not ready), counted by the proxy driving it.",
            &["route"],
        );
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "strangler_request_duration_seconds",
                "Time from request start to the end of the response, by route and side.",
            )
            .buckets(DURATION_BUCKETS.to_vec()),
            &["route", "side"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(duration.clone()))
            .expect("unique metric");
        let canary_percent = GaugeVec::new(
            Opts::new(
                "strangler_canary_percent",
                "Share of a route's traffic served by the new side, in percent.",
            ),
            &["route"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(canary_percent.clone()))
            .expect("unique metric");
        let rollout_step = GaugeVec::new(
            Opts::new(
                "strangler_rollout_step",
                "The canary percentage a route's rollout stands at.",
            ),
            &["route"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(rollout_step.clone()))
            .expect("unique metric");
        let labelled_gauge = |name: &str, help: &str, labels: &[&str]| {
            let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(g.clone()))
                .expect("unique metric");
            g
        };
        let rollout_state = labelled_gauge(
            "strangler_rollout_state",
            "1 for the current state of a route's rollout (idle, waiting, promoting, held, rolled_back, done).",
            &["route", "state"],
        );
        let route_stage = labelled_gauge(
            "strangler_route_stage",
            "1 for a route's current stage of the migration (legacy, shadow, canary, migrated).",
            &["route", "stage"],
        );
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
            requests,
            duration,
            upstream_errors,
            upstream_retries,
            canary_percent,
            shadow_requests,
            shadow_dropped,
            shadow_diffs,
            shadow_stored,
            record,
            replay_requests,
            config_reloads,
            config_version,
            config_last_reload_successful,
            rollbacks,
            rollout_step,
            rollout_state,
            rollout_failures,
            route_stage,
            store_up,
            process,
        }
    }

    /// Exports every series `current` makes possible (at zero if new) and
    /// removes those only `previous` made possible. Called once per
    /// installed configuration, before its table serves.
    pub fn apply_config(&self, current: &Config, previous: Option<&Config>) {
        let now = route_series(current);
        let before = previous.map(route_series).unwrap_or_default();
        let by_route: std::collections::HashMap<&str, &series::RouteSeries> =
            now.iter().map(|k| (k.route(), k)).collect();
        for gone in before.difference(&now) {
            // The route may still exist with other settings (a backend
            // renamed, shadowing added): keep every series it still has, or
            // the table just installed would count into removed series.
            let mut kept = std::collections::HashSet::new();
            if let Some(still) = by_route.get(gone.route()) {
                still.for_each(|family, labels| {
                    kept.insert((family, labels.join("\u{0}")));
                });
            }
            gone.for_each(|family, labels| {
                if !kept.contains(&(family, labels.join("\u{0}"))) {
                    self.remove(family, labels);
                }
            });
        }
        for added in now.difference(&before) {
            added.for_each(|family, labels| self.touch(family, labels));
        }
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
            for s in Stage::ALL {
                self.route_stage
                    .with_label_values(&[route.name.as_str(), s.as_str()])
                    .set((s == stage) as i64);
            }
        }
    }

    fn counters(&self, family: Family) -> Option<&IntCounterVec> {
        match family {
            Family::Requests => Some(&self.requests),
            Family::UpstreamErrors => Some(&self.upstream_errors),
            Family::UpstreamRetries => Some(&self.upstream_retries),
            Family::ShadowRequests => Some(&self.shadow_requests),
            Family::ShadowDropped => Some(&self.shadow_dropped),
            Family::ShadowDiffs => Some(&self.shadow_diffs),
            Family::ShadowStored => Some(&self.shadow_stored),
            Family::Record => Some(&self.record),
            Family::ReplayRequests => Some(&self.replay_requests),
            Family::Rollbacks => Some(&self.rollbacks),
            Family::RolloutFailures => Some(&self.rollout_failures),
            Family::Duration
            | Family::CanaryPercent
            | Family::RolloutStep
            | Family::RolloutState
            | Family::RouteStage => None,
        }
    }

    fn touch(&self, family: Family, labels: &[&str]) {
        match family {
            Family::Duration => {
                let _ = self.duration.with_label_values(labels);
            }
            Family::CanaryPercent => {
                let _ = self.canary_percent.with_label_values(labels);
            }
            Family::RolloutStep => {
                let _ = self.rollout_step.with_label_values(labels);
            }
            Family::RolloutState => {
                let _ = self.rollout_state.with_label_values(labels);
            }
            Family::RouteStage => {
                let _ = self.route_stage.with_label_values(labels);
            }
            _ => {
                if let Some(c) = self.counters(family) {
                    let _ = c.with_label_values(labels);
                }
            }
        }
    }

    fn remove(&self, family: Family, labels: &[&str]) {
        // A series that was never created is fine to "remove".
        let _ = match family {
            Family::Duration => self.duration.remove_label_values(labels),
            Family::CanaryPercent => self.canary_percent.remove_label_values(labels),
            Family::RolloutStep => self.rollout_step.remove_label_values(labels),
            Family::RolloutState => self.rollout_state.remove_label_values(labels),
            Family::RouteStage => self.route_stage.remove_label_values(labels),
            _ => match self.counters(family) {
                Some(c) => c.remove_label_values(labels),
                None => Ok(()),
            },
        };
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
        out
    }

    /// Resolves the handles one route uses on the request path.
    pub fn route(&self, route: &str, legacy_backend: &str, new_backend: &str) -> RouteMetrics {
        RouteMetrics {
            route: route.to_string(),
            sides: [
                SideMetrics::new(self, route, legacy_backend, Side::Legacy),
                SideMetrics::new(self, route, new_backend, Side::New),
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

#[derive(Debug, Clone)]
pub struct SideMetrics {
    by_status_class: [IntCounter; 6],
    duration: Histogram,
    upstream_errors: IntCounterVec,
    upstream_retries: IntCounterVec,
    route: String,
    side: Side,
}

impl SideMetrics {
    fn new(metrics: &Metrics, route: &str, backend: &str, side: Side) -> SideMetrics {
        let by_status_class = STATUS_CLASSES.map(|class| {
            metrics
                .requests
                .with_label_values(&[route, backend, side.as_str(), class])
        });
        SideMetrics {
            by_status_class,
            duration: metrics.duration.with_label_values(&[route, side.as_str()]),
            upstream_errors: metrics.upstream_errors.clone(),
            upstream_retries: metrics.upstream_retries.clone(),
            route: route.to_string(),
            side,
        }
    }

    pub fn observe(&self, status: u16, seconds: f64) {
        self.by_status_class[status_class_index(status)].inc();
        self.duration.observe(seconds);
    }

    /// Requests answered and those with a 5xx status, since start.
    pub fn totals(&self) -> (u64, u64) {
        let all = self.by_status_class.iter().map(|c| c.get()).sum();
        (all, self.by_status_class[4].get())
    }

    /// The duration histogram's cumulative bucket counts: (upper bound, count).
    pub fn latency_buckets(&self) -> Vec<(f64, u64)> {
        use prometheus::core::Metric;
        let m = self.duration.metric();
        let h = m.get_histogram();
        let mut out: Vec<(f64, u64)> = h
            .get_bucket()
            .iter()
            .map(|b| (b.upper_bound(), b.cumulative_count()))
            .collect();
        out.push((f64::INFINITY, h.get_sample_count()));
        out
    }

    /// Rare, so resolved by label when it happens.
    pub fn upstream_retry(&self) {
        self.upstream_retries
            .with_label_values(&[&self.route, self.side.as_str()])
            .inc();
    }

    /// Rare, so resolved by label when it happens.
    pub fn upstream_error(&self, kind: UpstreamErrorKind) {
        self.upstream_errors
            .with_label_values(&[&self.route, self.side.as_str(), kind.as_str()])
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendered_names_match_the_brief() {
        let m = Metrics::new();
        let r = m.route("orders-read", "monolith", "orders");
        r.side(Side::New).observe(200, 0.01);
        r.side(Side::Legacy)
            .upstream_error(UpstreamErrorKind::ConnectRefused);
        m.canary_percent
            .with_label_values(&["orders-read"])
            .set(12.5);
        m.config_version.set(3);
        let text = String::from_utf8(m.render()).unwrap();
        for needle in [
            r#"strangler_requests_total{backend="orders",route="orders-read",side="new",status_class="2xx"} 1"#,
            r#"strangler_request_duration_seconds_count{route="orders-read",side="new"} 1"#,
            r#"strangler_upstream_errors_total{kind="connect_refused",route="orders-read",side="legacy"} 1"#,
            r#"strangler_canary_percent{route="orders-read"} 12.5"#,
            r#"strangler_config_reloads_total{result="error"} 0"#,
            "strangler_config_version 3",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
    }

    #[test]
    fn status_classes() {
        assert_eq!(STATUS_CLASSES[status_class_index(204)], "2xx");
        assert_eq!(STATUS_CLASSES[status_class_index(504)], "5xx");
        assert_eq!(STATUS_CLASSES[status_class_index(0)], "none");
    }
}
