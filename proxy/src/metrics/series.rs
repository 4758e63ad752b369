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

use super::{
    DropReason, RecordOutcome, ReplayOutcome, STATUS_CLASSES, ShadowOutcome, UpstreamErrorKind,
};
use crate::config::{self, Config, Side, Stage};
use rollback::rollouts::RolloutState;

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

/// The labelled families whose series follow the routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Family {
    Requests,
    Duration,
    UpstreamErrors,
    UpstreamRetries,
    CanaryPercent,
    ShadowRequests,
    ShadowDropped,
    ShadowDiffs,
    ShadowStored,
    Record,
    ReplayRequests,
    Rollbacks,
    RolloutStep,
    RolloutState,
    RolloutFailures,
    RouteStage,
}

/// What decides the series of one route: its name, the backends its
/// `backend` label can take, and which optional parts it has.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct RouteSeries {
    route: String,
    /// The backend of each side, indexed like [`Side`] (legacy, new).
    backends: [String; 2],
    /// False for the `default` pseudo-route of unmatched traffic, which can
    /// be neither rolled back nor shadowed and has no canary.
    configured: bool,
    shadowed: bool,
    /// The route has a `rollout:` block.
    rolled_out: bool,
    /// The route has a `record:` block (and so can be replayed).
    recorded: bool,
}

const SIDES: [Side; 2] = [Side::Legacy, Side::New];

const UPSTREAM_ERROR_KINDS: [UpstreamErrorKind; 9] = [
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

const SHADOW_OUTCOMES: [ShadowOutcome; 4] = [
    ShadowOutcome::Sent,
    ShadowOutcome::Skipped,
    ShadowOutcome::Error,
    ShadowOutcome::Timeout,
];

const DROP_REASONS: [DropReason; 4] = [
    DropReason::QueueFull,
    DropReason::TooLarge,
    DropReason::Method,
    DropReason::Store,
];

const VERDICTS: [shadow_diff::Verdict; 3] = [
    shadow_diff::Verdict::Match,
    shadow_diff::Verdict::Diff,
    shadow_diff::Verdict::Noise,
];

impl RouteSeries {
    pub(crate) fn route(&self) -> &str {
        &self.route
    }

    /// Calls `each` with every (family, label values) this route exports,
    /// label values in the order the family declares its labels.
    pub(crate) fn for_each(&self, mut each: impl FnMut(Family, &[&str])) {
        let route = self.route.as_str();
        for side in SIDES {
            let (side_label, backend) = (side.as_str(), self.backends[side_index(side)].as_str());
            for class in STATUS_CLASSES {
                each(Family::Requests, &[route, backend, side_label, class]);
            }
            each(Family::Duration, &[route, side_label]);
            for kind in UPSTREAM_ERROR_KINDS {
                each(Family::UpstreamErrors, &[route, side_label, kind.as_str()]);
            }
        }
        if !self.configured {
            return;
        }
        each(Family::CanaryPercent, &[route]);
        for side in SIDES {
            each(Family::UpstreamRetries, &[route, side.as_str()]);
        }
        for trigger in RollbackTrigger::ALL {
            each(Family::Rollbacks, &[route, trigger.as_str()]);
        }
        for stage in Stage::ALL {
            each(Family::RouteStage, &[route, stage.as_str()]);
        }
        if self.rolled_out {
            each(Family::RolloutStep, &[route]);
            each(Family::RolloutFailures, &[route]);
            for state in RolloutState::ALL {
                each(Family::RolloutState, &[route, state.as_str()]);
            }
        }
        if self.shadowed {
            for outcome in SHADOW_OUTCOMES {
                each(Family::ShadowRequests, &[route, outcome.as_str()]);
            }
            for reason in DROP_REASONS {
                each(Family::ShadowDropped, &[route, reason.as_str()]);
            }
            for verdict in VERDICTS {
                each(Family::ShadowDiffs, &[route, verdict.as_str()]);
            }
            each(Family::ShadowStored, &[route]);
        }
        if self.recorded {
            for outcome in RecordOutcome::ALL {
                each(Family::Record, &[route, outcome.as_str()]);
            }
            for outcome in ReplayOutcome::ALL {
                each(Family::ReplayRequests, &[route, outcome.as_str()]);
            }
        }
    }
}

fn side_index(side: Side) -> usize {
    match side {
        Side::Legacy => 0,
        Side::New => 1,
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
    use super::*;

    fn config(text: &str) -> Config {
        crate::config::parse(text, "test").expect("valid")
    }

    const BASE: &str = "version: 1\nlisten: 127.0.0.1:8080\nbackends:\n  monolith: { url: \"http://127.0.0.1:1\" }\n  orders: { url: \"http://127.0.0.1:2\" }\n  orders2: { url: \"http://127.0.0.1:3\" }\ndefault: monolith\n";

    fn count(keys: &HashSet<RouteSeries>, family: Family) -> usize {
        let mut n = 0;
        for k in keys {
            k.for_each(|f, _| n += (f == family) as usize);
        }
        n
    }

    #[test]
    fn every_route_gets_every_label_set_it_can_produce() {
        let c = config(&format!(
            "{BASE}routes:\n  - name: a\n    match: {{ path: /a }}\n    new: orders\n    shadow: {{ percent: 100 }}\n  - name: b\n    match: {{ path: /b }}\n    new: orders\n"
        ));
        let keys = route_series(&c);
        assert_eq!(keys.len(), 3, "two routes and default");
        assert_eq!(count(&keys, Family::Rollbacks), 2 * 2);
        assert_eq!(count(&keys, Family::UpstreamErrors), 3 * 2 * 9);
        assert_eq!(count(&keys, Family::Requests), 3 * 2 * 6);
        assert_eq!(
            count(&keys, Family::ShadowDropped),
            4,
            "only the shadowed route"
        );
        assert_eq!(count(&keys, Family::ShadowDiffs), 3);
        assert_eq!(count(&keys, Family::CanaryPercent), 2);
        let mut auto = Vec::new();
        for k in &keys {
            k.for_each(|f, labels| {
                if f == Family::Rollbacks && labels[1] == "auto" {
                    auto.push(labels[0].to_string());
                }
            });
        }
        auto.sort();
        assert_eq!(auto, ["a", "b"]);
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
