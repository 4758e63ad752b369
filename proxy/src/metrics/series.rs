//! Which labelled series a configuration makes possible, so that each is
//! exported at zero from the moment its route exists and goes away with it.
//!
//! A counter born at 1 is invisible to `increase()`: Prometheus sees no
//! change from "absent" to 1, so the first automatic rollback of a route
//! would never page. Every series a route can ever produce is therefore
//! created when the route is installed (at start-up or by a reload), and
//! removed when a reload removes the route or changes the backends its
//! labels name.
//!
//! The series of a route are derived from a small [`RouteSeries`] key; a
//! reload only touches routes whose key is new and only removes those whose
//! key is gone, so an unchanged 10,000-route table costs a set difference.

use std::collections::HashSet;

use super::{DropReason, ShadowOutcome, UpstreamErrorKind};
use crate::config::{self, Config, Side};

/// Who started a rollback: the `trigger` label of `strangler_rollbacks_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RollbackTrigger {
    /// A person (the CLI, the admin API).
    Manual,
    /// The automatic guard.
    Auto,
}

impl RollbackTrigger {
    pub const ALL: [RollbackTrigger; 2] = [RollbackTrigger::Manual, RollbackTrigger::Auto];

    pub fn as_str(self) -> &'static str {
        match self {
            RollbackTrigger::Manual => "manual",
            RollbackTrigger::Auto => "auto",
        }
    }
}

/// What decides the series of one route: its name, the backends its
/// `backend` label can take, and which optional parts it has.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct RouteSeries {
    route: String,
    /// The backend of each side, indexed like [`SIDES`] (legacy, new).
    backends: [String; 2],
    /// False for the `default` pseudo-route of unmatched traffic, which can
    /// be neither rolled back nor shadowed and has no canary.
    pub(super) configured: bool,
    pub(super) shadowed: bool,
    /// The route has a `rollout:` block.
    pub(super) rolled_out: bool,
    /// The route has a `record:` block (and so can be replayed).
    pub(super) recorded: bool,
}

pub(super) const SIDES: [Side; 2] = [Side::Legacy, Side::New];

pub(super) const UPSTREAM_ERROR_KINDS: [UpstreamErrorKind; 9] = [
    UpstreamErrorKind::ConnectRefused,
    UpstreamErrorKind::ConnectTimeout,
    UpstreamErrorKind::Connect,
    UpstreamErrorKind::Tls,
    UpstreamErrorKind::ReadTimeout,
    UpstreamErrorKind::WriteTimeout,
    UpstreamErrorKind::Reset,
    UpstreamErrorKind::Protocol,
    UpstreamErrorKind::Other,
];

pub(super) const SHADOW_OUTCOMES: [ShadowOutcome; 4] = [
    ShadowOutcome::Sent,
    ShadowOutcome::Skipped,
    ShadowOutcome::Error,
    ShadowOutcome::Timeout,
];

pub(super) const DROP_REASONS: [DropReason; 4] = [
    DropReason::QueueFull,
    DropReason::TooLarge,
    DropReason::Method,
    DropReason::Store,
];

pub(super) const VERDICTS: [shadow_diff::Verdict; 3] = [
    shadow_diff::Verdict::Match,
    shadow_diff::Verdict::Diff,
    shadow_diff::Verdict::Noise,
];

impl RouteSeries {
    pub(crate) fn route(&self) -> &str {
        &self.route
    }

    /// The backend the `backend` label names on side `side` (0 legacy, 1 new).
    pub(crate) fn backend(&self, side: usize) -> &str {
        &self.backends[side]
    }
}

/// The series keys of every route of `config`, plus the `default` route.
pub(crate) fn route_series(config: &Config) -> HashSet<RouteSeries> {
    let name = |id| config.backend(id).name.as_str().to_string();
    let default = name(config.default_backend);
    let mut keys: HashSet<RouteSeries> = config
        .routes
        .iter()
        .map(|r| RouteSeries {
            route: r.name.as_str().to_string(),
            backends: [name(r.legacy), name(r.new)],
            configured: true,
            shadowed: r.shadow.is_some(),
            rolled_out: r.rollout.is_some(),
            recorded: r.record.is_some(),
        })
        .collect();
    keys.insert(RouteSeries {
        route: config::DEFAULT_ROUTE_LABEL.to_string(),
        backends: [default.clone(), default],
        configured: false,
        shadowed: false,
        rolled_out: false,
        recorded: false,
    });
    keys
}

#[cfg(test)]
mod tests {
    use super::super::route_cells::RouteStore;
    use super::*;

    fn config(text: &str) -> Config {
        crate::config::parse(text, "test").expect("valid")
    }

    const BASE: &str = "version: 1\nlisten: 127.0.0.1:8080\nbackends:\n  monolith: { url: \"http://127.0.0.1:1\" }\n  orders: { url: \"http://127.0.0.1:2\" }\n  orders2: { url: \"http://127.0.0.1:3\" }\ndefault: monolith\n";

    /// The exposition lines of a family (its series, not HELP or TYPE).
    fn lines(keys: &HashSet<RouteSeries>, family: &str) -> Vec<String> {
        let store = RouteStore::default();
        store.install(keys);
        let mut text = String::new();
        store.render(&mut text);
        text.lines()
            .filter(|l| l.starts_with(&format!("{family}{{")))
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn every_route_gets_every_label_set_it_can_produce() {
        let c = config(&format!(
            "{BASE}routes:\n  - name: a\n    match: {{ path: /a }}\n    new: orders\n    shadow: {{ percent: 100 }}\n  - name: b\n    match: {{ path: /b }}\n    new: orders\n"
        ));
        let keys = route_series(&c);
        assert_eq!(keys.len(), 3, "two routes and default");
        assert_eq!(lines(&keys, "strangler_rollbacks_total").len(), 2 * 2);
        assert_eq!(
            lines(&keys, "strangler_upstream_errors_total").len(),
            3 * 2 * 9
        );
        assert_eq!(lines(&keys, "strangler_requests_total").len(), 3 * 2 * 6);
        assert_eq!(
            lines(&keys, "strangler_request_duration_seconds_bucket").len(),
            3 * 2 * 16
        );
        assert_eq!(
            lines(&keys, "strangler_shadow_dropped_total").len(),
            4,
            "only the shadowed route"
        );
        assert_eq!(lines(&keys, "strangler_shadow_diffs_total").len(), 3);
        assert_eq!(lines(&keys, "strangler_canary_percent").len(), 2);
        assert_eq!(lines(&keys, "strangler_rollout_step").len(), 0);
        let auto: Vec<String> = lines(&keys, "strangler_rollbacks_total")
            .into_iter()
            .filter(|l| l.contains("trigger=\"auto\""))
            .collect();
        assert_eq!(
            auto,
            [
                "strangler_rollbacks_total{route=\"a\",trigger=\"auto\"} 0",
                "strangler_rollbacks_total{route=\"b\",trigger=\"auto\"} 0"
            ]
        );
    }

    #[test]
    fn a_changed_backend_is_a_new_key() {
        let one = route_series(&config(&format!(
            "{BASE}routes:\n  - name: a\n    match: {{ path: /a }}\n    new: orders\n"
        )));
        let two = route_series(&config(&format!(
            "{BASE}routes:\n  - name: a\n    match: {{ path: /a }}\n    new: orders2\n"
        )));
        assert_eq!(one.difference(&two).count(), 1);
        assert!(one.difference(&two).all(|k| k.route == "a"));
    }
}
