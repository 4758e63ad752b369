//! Progressive delivery: routes that promote themselves, step by step,
//! gated on the new side's health and on the diff report. Where each part
//! lives:
//!
//! - [`decide`]: the pure decision for a running rollout (wait, promote,
//!   finish, fail) from where it stands and what its gates read;
//! - [`gates`]: what the `guard` and `report` gates read, with figures;
//! - [`driver`]: the loop that drives every rollout once a second on the
//!   proxy holding the [`lease`], and keeps every proxy's metrics and view
//!   of the stored state up to date;
//! - [`commands`]: what people ask (`start`, `pause`, `resume`, `abort`,
//!   `promote`), through the admin API of any proxy.
//!
//! The state of each rollout is kept in the store
//! ([`rollback::rollouts`]), so a restart or another proxy continues from
//! the same step. Every step is a canary change made through
//! [`crate::changes`] like a person's, with source `rollout`: live, in the
//! file, in the history and audit log, and on every proxy of the fleet. A
//! person's own canary change or rollback on the route pauses its rollout
//! (the [`ChangeObserver`] below); the guard rolling the route back ends it.

pub mod commands;
pub mod decide;
pub mod driver;
pub mod gates;
pub mod lease;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use log::{info, warn};
use rollback::history::History;
use rollback::rollouts::{RolloutRecord, RolloutState};
use serde::Serialize;

use crate::changes::apply::ChangeObserver;
use crate::changes::{ChangeOutcome, ChangeRequest, Changes, Initiator, Requester};
use crate::config::units::format_duration;
use crate::config::{Config, Percent, RolloutPolicy, Route};
use decide::Readings;

/// How long one call to the store may take.
const STORE_CALL: Duration = Duration::from_secs(3);

/// The rollouts of one proxy: the stored state as last read, and the
/// right to act (one action at a time here; the store's revisions keep
/// proxies from overwriting each other).
#[derive(Debug)]
pub struct Rollouts {
    changes: Arc<Changes>,
    /// The diff store, for the report gate.
    writer: shadow_diff::StoreWriter,
    /// Held by the driver while it acts and by people's commands.
    busy: tokio::sync::Mutex<()>,
    seen: Mutex<Seen>,
    driving: AtomicBool,
}

/// What the driver last read and judged.
#[derive(Debug, Default)]
struct Seen {
    records: HashMap<String, RolloutRecord>,
    /// Whether the store answered the last read, and if not why.
    store_error: Option<String>,
    /// The gates' last readings, on the driving proxy.
    readings: HashMap<String, Readings>,
}

/// One route's rollout as `strangler rollout status` and `GET /rollouts`
/// show it.
#[derive(Debug, Clone, Serialize)]
pub struct RolloutView {
    pub route: String,
    pub state: RolloutState,
    /// The step (canary percentage) it stands at.
    pub step: f64,
    pub steps: Vec<f64>,
    /// The step it takes next, if any.
    pub next: Option<f64>,
    pub canary: f64,
    pub pause: String,
    pub require: Vec<&'static str>,
    pub on_failure: &'static str,
    pub start: &'static str,
    /// When the step (or state) began, unix ms; absent before it started.
    pub since_ms: Option<i64>,
    pub step_version: Option<i64>,
    pub reason: String,
    pub actor: Option<String>,
    /// The proxy that last wrote the state.
    pub written_by: Option<String>,
    /// The gates' current readings, when this proxy drives.
    pub gates: Vec<GateView>,
    /// Whether this proxy drives the rollouts.
    pub driven_here: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct GateView {
    pub gate: &'static str,
    pub reading: &'static str,
    pub figures: String,
}

impl Rollouts {
    pub fn new(changes: Arc<Changes>, writer: shadow_diff::StoreWriter) -> Arc<Rollouts> {
        let rollouts = Arc::new(Rollouts {
            changes: changes.clone(),
            writer,
            busy: tokio::sync::Mutex::new(()),
            seen: Mutex::new(Seen::default()),
            driving: AtomicBool::new(false),
        });
        changes.observe(Arc::new(PeopleFirst(rollouts.clone())));
        rollouts
    }

    pub fn changes(&self) -> &Arc<Changes> {
        &self.changes
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn is_driving(&self) -> bool {
        self.driving.load(Ordering::SeqCst)
    }

    /// Why the stored state could not be read last time, if it could not.
    pub fn store_error(&self) -> Option<String> {
        self.seen().store_error.clone()
    }

    /// Every route with a `rollout:` block, as it stands.
    pub fn views(&self) -> Vec<RolloutView> {
        let table = self.changes.live().current();
        table
            .config()
            .routes
            .iter()
            .filter_map(|r| r.rollout.as_ref().map(|p| self.view_of(r, p)))
            .collect()
    }

    pub fn view(&self, route: &str) -> Option<RolloutView> {
        let table = self.changes.live().current();
        let r = table.config().route(route)?;
        r.rollout.as_ref().map(|p| self.view_of(r, p))
    }

    fn view_of(&self, route: &Route, policy: &RolloutPolicy) -> RolloutView {
        let seen = self.seen();
        let record = seen.records.get(route.name.as_str());
        let step = record
            .and_then(|r| Percent::parse(&r.step).ok())
            .unwrap_or(route.canary);
        let gates = seen
            .readings
            .get(route.name.as_str())
            .filter(|_| record.is_some_and(|r| r.state == RolloutState::Waiting))
            .map(|r| {
                r.0.iter()
                    .map(|(g, reading)| GateView {
                        gate: g.as_str(),
                        reading: reading.word(),
                        figures: reading.figures().to_string(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        RolloutView {
            route: route.name.to_string(),
            state: record.map_or(RolloutState::Idle, |r| r.state),
            step: step.get(),
            steps: policy.steps.iter().map(|s| s.get()).collect(),
            next: policy.next_step(step).map(|s| s.get()),
            canary: route.canary.get(),
            pause: format_duration(policy.pause),
            require: policy.require.iter().map(|g| g.as_str()).collect(),
            on_failure: policy.on_failure.as_str(),
            start: policy.start.as_str(),
            since_ms: record.map(|r| r.since_ms),
            step_version: record.map(|r| r.step_version),
            reason: match record {
                Some(r) => r.reason.clone(),
                None => match policy.start {
                    crate::config::RolloutStart::Manual => {
                        "not started: `strangler rollout start` starts it".into()
                    }
                    crate::config::RolloutStart::Auto => {
                        "starts automatically once the store is connected".into()
                    }
                },
            },
            actor: record.map(|r| r.actor.clone()),
            written_by: record.map(|r| r.instance.clone()),
            gates,
            driven_here: self.is_driving(),
        }
    }

    /// Takes what was read from the store: the view, and every rollout
    /// metric of the routes `config` gives a rollout.
    fn saw(&self, records: Result<Vec<RolloutRecord>, String>, config: &Config) {
        let mut seen = self.seen();
        match records {
            Ok(rows) => {
                seen.records = rows.into_iter().map(|r| (r.route.clone(), r)).collect();
                seen.store_error = None;
            }
            Err(e) => {
                seen.store_error = Some(e);
                return;
            }
        }
        for route in config.routes.iter().filter(|r| r.rollout.is_some()) {
            let record = seen.records.get(route.name.as_str());
            self.export(route.name.as_str(), route.canary, record);
        }
    }

    /// Sets the route's rollout metrics from its stored record (none:
    /// idle, at the route's canary).
    fn export(&self, route: &str, canary: Percent, record: Option<&RolloutRecord>) {
        let metrics = self.changes.live().metrics();
        let state = record.map_or(RolloutState::Idle, |r| r.state);
        let step = record
            .and_then(|r| Percent::parse(&r.step).ok())
            .unwrap_or(canary);
        metrics.set_rollout(route, step.get(), state);
    }

    /// Keeps a record just written, so the view does not wait a tick.
    fn wrote(&self, record: RolloutRecord) {
        let table = self.changes.live().current();
        if let Some(route) = table.config().route(&record.route) {
            if route.rollout.is_some() {
                self.export(&record.route, route.canary, Some(&record));
            }
        }
        self.seen().records.insert(record.route.clone(), record);
    }

    fn judged(&self, route: &str, readings: Readings) {
        self.seen().readings.insert(route.to_string(), readings);
    }

    /// Stores `record` over revision `read`; on success keeps it (with its
    /// new revision) and returns true.
    async fn put(&self, history: &History, mut record: RolloutRecord, read: Option<i64>) -> bool {
        record.instance = self.changes.instance().to_string();
        match tokio::time::timeout(STORE_CALL, history.put_rollout(&record, read)).await {
            Ok(Ok(Some(revision))) => {
                record.revision = revision;
                record.updated_ms = rollback::history::now_ms();
                info!(
                    "rollout of {}: {} at {}% ({})",
                    record.route, record.state, record.step, record.reason
                );
                self.wrote(record);
                true
            }
            Ok(Ok(None)) => false,
            Ok(Err(e)) => {
                warn!("rollout of {}: state not stored: {e}", record.route);
                false
            }
            Err(_) => {
                warn!(
                    "rollout of {}: state not stored: the store did not answer in {} s",
                    record.route,
                    STORE_CALL.as_secs()
                );
                false
            }
        }
    }

    /// Applies a change for the rollout, off the async threads.
    async fn change(
        &self,
        request: ChangeRequest,
        who: Requester,
    ) -> Result<ChangeOutcome, String> {
        let changes = self.changes.clone();
        match tokio::task::spawn_blocking(move || changes.request(&request, &who)).await {
            Ok(Ok(o)) => Ok(o),
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// A fresh record for `route` at `step`, beginning now.
fn record_at(
    route: &str,
    state: RolloutState,
    step: Percent,
    version: u64,
    actor: &str,
    reason: String,
) -> RolloutRecord {
    RolloutRecord {
        route: route.to_string(),
        state,
        step: step.to_string(),
        target: None,
        since_ms: rollback::history::now_ms(),
        step_version: version as i64,
        reason,
        actor: actor.to_string(),
        instance: String::new(),
        revision: 0,
        updated_ms: 0,
    }
}

/// A person's own canary change or rollback on a route pauses its running
/// rollout (a person's decision wins); the guard rolling the route back ends
/// it as rolled back. Changes made by the rollouts themselves pass.
#[derive(Debug)]
struct PeopleFirst(Arc<Rollouts>);

impl ChangeObserver for PeopleFirst {
    fn applied(&self, request: &ChangeRequest, who: &Requester, outcome: &ChangeOutcome) {
        if who.by == Initiator::Rollout {
            return;
        }
        let changes = &self.0.changes;
        let table = changes.live().current();
        for name in request.routes() {
            let Some(canary) = table
                .config()
                .route(&name)
                .filter(|r| r.rollout.is_some())
                .map(|r| r.canary)
            else {
                continue;
            };
            let what = match (request, who.by) {
                (ChangeRequest::Canary { percent, .. }, _) => {
                    format!("set the canary to {percent}%")
                }
                (
                    ChangeRequest::Rollback {
                        tenant: Some(t), ..
                    },
                    _,
                ) => {
                    format!("pinned tenant {t} to legacy")
                }
                (ChangeRequest::Rollback { .. }, _) => "rolled the route back".to_string(),
            };
            for _ in 0..3 {
                let route = name.clone();
                let Some(Ok(Some(record))) =
                    changes.history_call(|h| async move { h.rollout(&route).await })
                else {
                    break;
                };
                if !record.state.is_running() {
                    break;
                }
                let (state, reason) = match who.by {
                    Initiator::Guard => {
                        changes.live().metrics().count_rollout_failure(&name);
                        (
                            RolloutState::RolledBack,
                            format!("the guard rolled the route back: {}", who.reason),
                        )
                    }
                    _ => (
                        RolloutState::Held,
                        format!(
                            "paused: {} {what} ({}); `strangler rollout resume {name}` continues from the canary then",
                            who.actor, who.reason
                        ),
                    ),
                };
                let read = record.revision;
                // It stands where the change left the route.
                let next = RolloutRecord {
                    state,
                    step: canary.to_string(),
                    step_version: outcome.version as i64,
                    target: None,
                    since_ms: rollback::history::now_ms(),
                    reason,
                    actor: who.actor.clone(),
                    instance: changes.instance().to_string(),
                    ..record
                };
                let written = next.clone();
                match changes
                    .history_call(|h| async move { h.put_rollout(&written, Some(read)).await })
                {
                    Some(Ok(Some(revision))) => {
                        info!("rollout of {name}: {} ({})", next.state, next.reason);
                        self.0.wrote(RolloutRecord { revision, ..next });
                        break;
                    }
                    // Someone wrote in between: read again.
                    Some(Ok(None)) => continue,
                    _ => {
                        warn!("rollout of {name}: could not record that it was paused");
                        break;
                    }
                }
            }
        }
    }
}
