//! The per-route series, stored compactly and written out by hand.
//!
//! A route can produce about a hundred series (requests by side and status
//! class, a latency histogram per side, upstream errors by kind, shadow,
//! record, rollout and stage series), and every one of them must exist at
//! zero from the start ([`super::series`]). As children of the Prometheus
//! crate's labelled families each series costs hundreds of bytes (its own
//! copy of the family's description and label pairs), which made a
//! 10,000-route table cost over 300 MB. Here a route's series are one block
//! of plain atomics ([`RouteCells`], under a kilobyte) whose labels are
//! known from the route's [`RouteSeries`] key and fixed enums, and the
//! exposition text is written straight from the blocks.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, RwLock};

use super::series::{
    DROP_REASONS, RollbackTrigger, RouteSeries, SHADOW_OUTCOMES, SIDES, UPSTREAM_ERROR_KINDS,
    VERDICTS,
};
use super::{RecordOutcome, ReplayOutcome, STATUS_CLASSES};
use crate::config::Stage;
use rollback::rollouts::RolloutState;

/// Upper bounds of the request duration histogram, in seconds.
pub const DURATION_BUCKETS: [f64; 15] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// An `f64` gauge.
#[derive(Debug, Default)]
pub struct F64Cell(AtomicU64);

impl F64Cell {
    pub fn set(&self, value: f64) {
        self.0.store(value.to_bits(), Relaxed);
    }

    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Relaxed))
    }
}

/// One side's request duration histogram.
#[derive(Debug, Default)]
pub struct Latency {
    /// Observations per bucket (not cumulative); the last is above every
    /// bound (`+Inf`).
    buckets: [AtomicU64; DURATION_BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

impl Latency {
    pub fn observe(&self, seconds: f64) {
        // The first bound at or above the value: Prometheus buckets are `le`.
        let bucket = DURATION_BUCKETS.partition_point(|&bound| bound < seconds);
        self.buckets[bucket].fetch_add(1, Relaxed);
        self.sum_nanos
            .fetch_add((seconds.max(0.0) * 1e9) as u64, Relaxed);
    }

    /// Cumulative counts per bucket, `+Inf` (the count) last.
    pub fn cumulative(&self) -> [u64; DURATION_BUCKETS.len() + 1] {
        let mut total = 0;
        self.buckets.each_ref().map(|b| {
            total += b.load(Relaxed);
            total
        })
    }

    fn sum_seconds(&self) -> f64 {
        self.sum_nanos.load(Relaxed) as f64 / 1e9
    }
}

/// Every series one route can have, as atomics. Indexed by the position of
/// a label value in its enum's `ALL` list (sides: legacy, new).
#[derive(Debug, Default)]
pub struct RouteCells {
    pub requests: [[AtomicU64; STATUS_CLASSES.len()]; 2],
    pub latency: [Latency; 2],
    pub upstream_errors: [[AtomicU64; UPSTREAM_ERROR_KINDS.len()]; 2],
    pub upstream_retries: [AtomicU64; 2],
    pub canary_percent: F64Cell,
    pub rollbacks: [AtomicU64; RollbackTrigger::ALL.len()],
    pub stage: [AtomicU64; Stage::ALL.len()],
    pub rollout_step: F64Cell,
    pub rollout_state: [AtomicU64; RolloutState::ALL.len()],
    pub rollout_failures: AtomicU64,
    pub shadow_requests: [AtomicU64; SHADOW_OUTCOMES.len()],
    pub shadow_dropped: [AtomicU64; DROP_REASONS.len()],
    pub shadow_diffs: [AtomicU64; VERDICTS.len()],
    pub shadow_stored: AtomicU64,
    pub record: [AtomicU64; RecordOutcome::ALL.len()],
    pub replay: [AtomicU64; ReplayOutcome::ALL.len()],
}

/// Where a label value sits in its enum's `ALL` list.
pub fn slot<T: PartialEq>(all: &[T], value: &T) -> usize {
    all.iter()
        .position(|v| v == value)
        .expect("every value is in its ALL list")
}

fn zero(cells: &[AtomicU64]) {
    cells.iter().for_each(|c| c.store(0, Relaxed));
}

#[derive(Debug)]
struct RouteEntry {
    /// The labels and parts the installed configuration gives the route;
    /// `None` for cells handed out to a table not (yet) installed, which
    /// are not exported.
    series: Option<RouteSeries>,
    cells: Arc<RouteCells>,
}

/// The cells of every route, by route name.
#[derive(Debug, Default)]
pub struct RouteStore {
    routes: RwLock<BTreeMap<String, RouteEntry>>,
}

impl RouteStore {
    /// The cells of `route`, made (unexported) when the route is new, so a
    /// table being built can hold them before it is installed.
    pub fn cells_for(&self, route: &str) -> Arc<RouteCells> {
        if let Some(cells) = self.get(route) {
            return cells;
        }
        let mut routes = self.routes.write().expect("route cells lock");
        routes
            .entry(route.to_string())
            .or_insert_with(|| RouteEntry {
                series: None,
                cells: Arc::default(),
            })
            .cells
            .clone()
    }

    /// The cells of an installed or pending route; `None` for a route no
    /// table has (a late event for a route a reload removed: not counted,
    /// rather than brought back to life).
    pub fn get(&self, route: &str) -> Option<Arc<RouteCells>> {
        let routes = self.routes.read().expect("route cells lock");
        routes.get(route).map(|e| e.cells.clone())
    }

    /// Calls `f` with the cells of `route`, when some table has it.
    pub fn with(&self, route: &str, f: impl FnOnce(&RouteCells)) {
        let routes = self.routes.read().expect("route cells lock");
        if let Some(entry) = routes.get(route) {
            f(&entry.cells);
        }
    }

    /// Exports exactly the routes of `now`. A route whose key changed keeps
    /// the series it still has; a series it gains (a side's new backend, a
    /// shadow, rollout or record block added) starts at zero, as a new
    /// series must for `increase()` to see its first event.
    pub fn install(&self, now: &HashSet<RouteSeries>) {
        let mut routes = self.routes.write().expect("route cells lock");
        let mut next = BTreeMap::new();
        for key in now {
            let (cells, before) = match routes.remove(key.route()) {
                Some(entry) => (entry.cells, entry.series),
                None => (Arc::default(), None),
            };
            if let Some(before) = &before {
                reset_gained(&cells, before, key);
            }
            next.insert(
                key.route().to_string(),
                RouteEntry {
                    series: Some(key.clone()),
                    cells,
                },
            );
        }
        *routes = next;
    }

    /// Appends the exposition text of every exported route series.
    pub fn render(&self, out: &mut String) {
        let routes = self.routes.read().expect("route cells lock");
        let exported: Vec<(&RouteSeries, &RouteCells)> = routes
            .values()
            .filter_map(|e| e.series.as_ref().map(|s| (s, &*e.cells)))
            .collect();
        render_families(&exported, out);
    }
}

fn reset_gained(cells: &RouteCells, before: &RouteSeries, now: &RouteSeries) {
    for side in 0..2 {
        if before.backend(side) != now.backend(side) {
            zero(&cells.requests[side]);
        }
    }
    if now.shadowed && !before.shadowed {
        zero(&cells.shadow_requests);
        zero(&cells.shadow_dropped);
        zero(&cells.shadow_diffs);
        cells.shadow_stored.store(0, Relaxed);
    }
    if now.rolled_out && !before.rolled_out {
        cells.rollout_step.set(0.0);
        zero(&cells.rollout_state);
        cells.rollout_failures.store(0, Relaxed);
    }
    if now.recorded && !before.recorded {
        zero(&cells.record);
        zero(&cells.replay);
    }
}

/// A label value as the text format wants it.
fn escaped(value: &str) -> std::borrow::Cow<'_, str> {
    if value.contains(['\\', '"', '\n']) {
        value
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
            .into()
    } else {
        value.into()
    }
}

/// Writes one family: its HELP and TYPE lines, then `series` for each
/// route `exported` lets through (nothing at all when none does).
fn family(
    out: &mut String,
    routes: &[(&RouteSeries, &RouteCells)],
    (name, kind, help): (&str, &str, &str),
    exported: impl Fn(&RouteSeries) -> bool,
    mut series: impl FnMut(&mut String, &str, &RouteSeries, &RouteCells),
) {
    let mut header = false;
    for (key, cells) in routes.iter().filter(|(key, _)| exported(key)) {
        if !header {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            header = true;
        }
        series(out, &escaped(key.route()), key, cells);
    }
}

fn render_families(routes: &[(&RouteSeries, &RouteCells)], out: &mut String) {
    let all = |_: &RouteSeries| true;
    let configured = |k: &RouteSeries| k.configured;
    family(out, routes, REQUESTS, all, |out, route, key, cells| {
        for (s, side) in SIDES.iter().enumerate() {
            let backend = escaped(key.backend(s));
            for (c, class) in STATUS_CLASSES.iter().enumerate() {
                let v = cells.requests[s][c].load(Relaxed);
                let _ = writeln!(
                    out,
                    "{}{{backend=\"{backend}\",route=\"{route}\",side=\"{}\",status_class=\"{class}\"}} {v}",
                    REQUESTS.0,
                    side.as_str()
                );
            }
        }
    });
    family(out, routes, DURATION, all, |out, route, _, cells| {
        for (s, side) in SIDES.iter().enumerate() {
            let side = side.as_str();
            let counts = cells.latency[s].cumulative();
            let name = DURATION.0;
            for (bound, count) in DURATION_BUCKETS.iter().zip(counts) {
                let _ = writeln!(
                    out,
                    "{name}_bucket{{route=\"{route}\",side=\"{side}\",le=\"{bound}\"}} {count}"
                );
            }
            let count = counts[DURATION_BUCKETS.len()];
            let _ = writeln!(
                out,
                "{name}_bucket{{route=\"{route}\",side=\"{side}\",le=\"+Inf\"}} {count}\n\
                 {name}_sum{{route=\"{route}\",side=\"{side}\"}} {}\n\
                 {name}_count{{route=\"{route}\",side=\"{side}\"}} {count}",
                cells.latency[s].sum_seconds()
            );
        }
    });
    family(out, routes, UPSTREAM_ERRORS, all, |out, route, _, cells| {
        for (s, side) in SIDES.iter().enumerate() {
            for (k, kind) in UPSTREAM_ERROR_KINDS.iter().enumerate() {
                let v = cells.upstream_errors[s][k].load(Relaxed);
                let _ = writeln!(
                    out,
                    "{}{{kind=\"{}\",route=\"{route}\",side=\"{}\"}} {v}",
                    UPSTREAM_ERRORS.0,
                    kind.as_str(),
                    side.as_str()
                );
            }
        }
    });
    family(out, routes, RETRIES, configured, |out, route, _, cells| {
        for (s, side) in SIDES.iter().enumerate() {
            let v = cells.upstream_retries[s].load(Relaxed);
            let _ = writeln!(
                out,
                "{}{{route=\"{route}\",side=\"{}\"}} {v}",
                RETRIES.0,
                side.as_str()
            );
        }
    });
    family(out, routes, CANARY, configured, |out, route, _, cells| {
        let _ = writeln!(
            out,
            "{}{{route=\"{route}\"}} {}",
            CANARY.0,
            cells.canary_percent.get()
        );
    });
    family(
        out,
        routes,
        ROLLBACKS,
        configured,
        |out, route, _, cells| {
            by_enum(
                out,
                ROLLBACKS.0,
                "trigger",
                route,
                RollbackTrigger::ALL.iter().map(|t| t.as_str()),
                &cells.rollbacks,
            );
        },
    );
    family(out, routes, STAGE, configured, |out, route, _, cells| {
        by_enum(
            out,
            STAGE.0,
            "stage",
            route,
            Stage::ALL.iter().map(|s| s.as_str()),
            &cells.stage,
        );
    });
    let rolled_out = |k: &RouteSeries| k.rolled_out;
    family(
        out,
        routes,
        ROLLOUT_STEP,
        rolled_out,
        |out, route, _, cells| {
            let _ = writeln!(
                out,
                "{}{{route=\"{route}\"}} {}",
                ROLLOUT_STEP.0,
                cells.rollout_step.get()
            );
        },
    );
    family(
        out,
        routes,
        ROLLOUT_STATE,
        rolled_out,
        |out, route, _, cells| {
            by_enum(
                out,
                ROLLOUT_STATE.0,
                "state",
                route,
                RolloutState::ALL.iter().map(|s| s.as_str()),
                &cells.rollout_state,
            );
        },
    );
    family(
        out,
        routes,
        ROLLOUT_FAILURES,
        rolled_out,
        |out, route, _, cells| {
            let v = cells.rollout_failures.load(Relaxed);
            let _ = writeln!(out, "{}{{route=\"{route}\"}} {v}", ROLLOUT_FAILURES.0);
        },
    );
    let shadowed = |k: &RouteSeries| k.shadowed;
    family(
        out,
        routes,
        SHADOW_REQUESTS,
        shadowed,
        |out, route, _, cells| {
            by_enum(
                out,
                SHADOW_REQUESTS.0,
                "outcome",
                route,
                SHADOW_OUTCOMES.iter().map(|o| o.as_str()),
                &cells.shadow_requests,
            );
        },
    );
    family(
        out,
        routes,
        SHADOW_DROPPED,
        shadowed,
        |out, route, _, cells| {
            by_enum(
                out,
                SHADOW_DROPPED.0,
                "reason",
                route,
                DROP_REASONS.iter().map(|r| r.as_str()),
                &cells.shadow_dropped,
            );
        },
    );
    family(
        out,
        routes,
        SHADOW_DIFFS,
        shadowed,
        |out, route, _, cells| {
            by_enum(
                out,
                SHADOW_DIFFS.0,
                "verdict",
                route,
                VERDICTS.iter().map(|v| v.as_str()),
                &cells.shadow_diffs,
            );
        },
    );
    family(
        out,
        routes,
        SHADOW_STORED,
        shadowed,
        |out, route, _, cells| {
            let v = cells.shadow_stored.load(Relaxed);
            let _ = writeln!(out, "{}{{route=\"{route}\"}} {v}", SHADOW_STORED.0);
        },
    );
    let recorded = |k: &RouteSeries| k.recorded;
    family(out, routes, RECORD, recorded, |out, route, _, cells| {
        by_enum(
            out,
            RECORD.0,
            "outcome",
            route,
            RecordOutcome::ALL.iter().map(|o| o.as_str()),
            &cells.record,
        );
    });
    family(out, routes, REPLAY, recorded, |out, route, _, cells| {
        by_enum(
            out,
            REPLAY.0,
            "outcome",
            route,
            ReplayOutcome::ALL.iter().map(|o| o.as_str()),
            &cells.replay,
        );
    });
}

/// One series per value of a fixed enum, labelled with it and the route
/// (label names in alphabetical order, as in every family).
fn by_enum<'a>(
    out: &mut String,
    name: &str,
    label: &str,
    route: &str,
    values: impl Iterator<Item = &'a str>,
    cells: &[AtomicU64],
) {
    for (value, cell) in values.zip(cells) {
        let v = cell.load(Relaxed);
        let _ = if label < "route" {
            writeln!(out, "{name}{{{label}=\"{value}\",route=\"{route}\"}} {v}")
        } else {
            writeln!(out, "{name}{{route=\"{route}\",{label}=\"{value}\"}} {v}")
        };
    }
}

type FamilyName = (&'static str, &'static str, &'static str);

const REQUESTS: FamilyName = (
    "strangler_requests_total",
    "counter",
    "Requests answered, by route, backend, side and status class.",
);
const DURATION: FamilyName = (
    "strangler_request_duration_seconds",
    "histogram",
    "Time from request start to the end of the response, by route and side.",
);
const UPSTREAM_ERRORS: FamilyName = (
    "strangler_upstream_errors_total",
    "counter",
    "Failures talking to a backend, by route, side and kind.",
);
const RETRIES: FamilyName = (
    "strangler_upstream_retries_total",
    "counter",
    "Further attempts of idempotent requests after an upstream error (a route's `retries`), by route and side.",
);
const CANARY: FamilyName = (
    "strangler_canary_percent",
    "gauge",
    "Share of a route's traffic served by the new side, in percent.",
);
const ROLLBACKS: FamilyName = (
    "strangler_rollbacks_total",
    "counter",
    "Rollbacks, by route and trigger.",
);
const STAGE: FamilyName = (
    "strangler_route_stage",
    "gauge",
    "1 for a route's current stage of the migration (legacy, shadow, canary, migrated).",
);
const ROLLOUT_STEP: FamilyName = (
    "strangler_rollout_step",
    "gauge",
    "The canary percentage a route's rollout stands at.",
);
const ROLLOUT_STATE: FamilyName = (
    "strangler_rollout_state",
    "gauge",
    "1 for the current state of a route's rollout (idle, waiting, promoting, held, rolled_back, done).",
);
const ROLLOUT_FAILURES: FamilyName = (
    "strangler_rollout_failures_total",
    "counter",
    "Gates of a route's rollout that failed (a guard trip, a diff report reading not ready), counted by the proxy driving it.",
);
const SHADOW_REQUESTS: FamilyName = (
    "strangler_shadow_requests_total",
    "counter",
    "Shadow copies, by route and outcome.",
);
const SHADOW_DROPPED: FamilyName = (
    "strangler_shadow_dropped_total",
    "counter",
    "Shadow copies or diffs dropped, by route and reason.",
);
const SHADOW_DIFFS: FamilyName = (
    "strangler_shadow_diffs_total",
    "counter",
    "Compared shadow pairs, by route and verdict.",
);
const SHADOW_STORED: FamilyName = (
    "strangler_shadow_stored_total",
    "counter",
    "Compared shadow pairs written to the diff store, by route.",
);
const RECORD: FamilyName = (
    "strangler_record_total",
    "counter",
    "Requests sampled for recording (a route's `record:`), by route and outcome.",
);
const REPLAY: FamilyName = (
    "strangler_replay_requests_total",
    "counter",
    "Recorded requests taken by replay runs on this proxy, by route and outcome.",
);

#[cfg(test)]
mod tests {
    use super::*;

    /// The point of this module: a route's hundred series stay under a
    /// kilobyte, so 10,000 routes cost megabytes, not hundreds of them.
    #[test]
    fn a_routes_cells_fit_in_a_kilobyte() {
        assert!(
            std::mem::size_of::<RouteCells>() <= 1024,
            "{} bytes",
            std::mem::size_of::<RouteCells>()
        );
    }

    #[test]
    fn latency_buckets_are_le_and_cumulative() {
        let l = Latency::default();
        for s in [0.0005, 0.0006, 0.01, 100.0] {
            l.observe(s);
        }
        let c = l.cumulative();
        assert_eq!(c[0], 1, "0.0005 is in le=0.0005");
        assert_eq!(c[1], 2);
        assert_eq!(c[4], 3, "0.01 is in le=0.01");
        assert_eq!(c[DURATION_BUCKETS.len() - 1], 3);
        assert_eq!(c[DURATION_BUCKETS.len()], 4, "+Inf holds every observation");
        assert!((l.sum_seconds() - 100.0111).abs() < 1e-6);
    }
}
