//! The loop behind the rollouts, once a second on every proxy: read the
//! stored state (for this proxy's metrics and views), and, on the proxy
//! holding the [`Lease`], move each rollout on: start an automatic one,
//! judge a waiting one's gates and take its next step, finish a step that
//! was being applied when the last driver stopped.
//!
//! A step is applied in three writes, so that a restart in the middle
//! neither repeats nor skips it: the state says `promoting` to the target
//! first, then the canary change is applied (live, file, history, fleet),
//! then the state says `waiting` at the new step. A driver that finds
//! `promoting` finishes the step: it applies the target if the canary is
//! not there yet, and records it otherwise.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use log::{info, warn};
use rollback::history::{History, now_ms};
use rollback::rollouts::{RolloutRecord, RolloutState};

use super::decide::{Decision, GateReading, Readings, Situation, decide};
use super::gates::{guard_reading, report_reading};
use super::lease::Lease;
use super::{Rollouts, STORE_CALL, record_at};
use crate::changes::{ChangeRequest, Initiator, Requester};
use crate::config::{Gate, OnFailure, Percent, RolloutPolicy, RolloutStart, Route};
use crate::guard::window::Snapshot;
use crate::guard::{has_new_side, snapshot};
use crate::live::LiveTable;

/// How often a waiting rollout's reason (its gates' figures) is stored at
/// most, so that the state other proxies show stays fresh without a write
/// every second.
const REASON_EVERY_MS: i64 = 5_000;

/// How long a route's canary may differ from its rollout's step before the
/// rollout holds: a change made by a person or the guard is followed, a
/// moment later, by its own record of why (see `PeopleFirst`), which is
/// better than "changed outside the rollout".
const MISMATCH_GRACE: Duration = Duration::from_secs(5);

/// The counters at the moment this proxy began watching a step.
#[derive(Debug)]
struct StepWatch {
    /// The step's identity: when it began and at what.
    key: (i64, String),
    start: Snapshot,
    /// Since when the route's canary has not been the step, if it is not.
    mismatch: Option<std::time::Instant>,
}

/// Runs until the process exits.
pub async fn run(rollouts: Arc<Rollouts>) {
    let live = rollouts.changes.live().clone();
    let mut lease = Lease::for_store(live.startup().store.as_str());
    let mut watches: HashMap<String, StepWatch> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(history) = rollouts.changes.history() else {
            continue;
        };
        let table = live.current();
        if table.config().routes.iter().all(|r| r.rollout.is_none()) {
            continue;
        }
        let records = match tokio::time::timeout(STORE_CALL, history.rollouts()).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer in {} s", STORE_CALL.as_secs())),
        };
        let stored: HashMap<String, RolloutRecord> = records
            .as_ref()
            .map(|rows| rows.iter().map(|r| (r.route.clone(), r.clone())).collect())
            .unwrap_or_default();
        let readable = records.is_ok();
        rollouts.saw(records, table.config());
        let driving = readable && lease.hold().await;
        if rollouts.driving.swap(driving, Ordering::SeqCst) != driving && !driving {
            watches.clear();
        }
        if !driving {
            continue;
        }
        let _busy = rollouts.busy.lock().await;
        // The table may have changed while waiting for the lock.
        let table = live.current();
        for (index, route) in table.config().routes.iter().enumerate() {
            let Some(policy) = &route.rollout else {
                continue;
            };
            let record = stored.get(route.name.as_str());
            let step = Step {
                rollouts: &rollouts,
                history: &history,
                table: &table,
                index,
                route,
                policy,
            };
            match record {
                None if policy.start == RolloutStart::Auto => step.start_automatically(None).await,
                None => {}
                Some(r) => match r.state {
                    RolloutState::Idle if policy.start == RolloutStart::Auto => {
                        step.start_automatically(Some(r.revision)).await
                    }
                    RolloutState::Waiting => step.judge(r, &mut watches).await,
                    RolloutState::Promoting => step.finish_promotion(r).await,
                    _ => {}
                },
            }
        }
    }
}

/// One route's rollout at one tick.
struct Step<'a> {
    rollouts: &'a Rollouts,
    history: &'a History,
    table: &'a LiveTable,
    index: usize,
    route: &'a Route,
    policy: &'a RolloutPolicy,
}

impl Step<'_> {
    fn name(&self) -> &str {
        self.route.name.as_str()
    }

    async fn start_automatically(&self, read: Option<i64>) {
        let canary = self.route.canary;
        let (state, reason) = match self.policy.next_step(canary) {
            Some(_) => (
                RolloutState::Waiting,
                "started automatically (start: auto) when the file was loaded".to_string(),
            ),
            None => (
                RolloutState::Done,
                format!("start: auto, and the canary ({canary}%) is already at the last step"),
            ),
        };
        let record = record_at(
            self.name(),
            state,
            canary,
            self.table.version,
            "rollout",
            reason,
        );
        self.rollouts.put(self.history, record, read).await;
    }

    /// A waiting rollout: its canary must still be its step; then its
    /// gates are read and [`decide`] says what to do.
    async fn judge(&self, record: &RolloutRecord, watches: &mut HashMap<String, StepWatch>) {
        let Ok(at) = Percent::parse(&record.step) else {
            self.hold(
                record,
                format!("the stored step {:?} is not a percentage", record.step),
            )
            .await;
            return;
        };
        let key = (record.since_ms, record.step.clone());
        let now_counters = snapshot(self.rollouts.changes.live(), self.table, self.index);
        let watch = watches
            .entry(self.name().to_string())
            .or_insert_with(|| StepWatch {
                key: key.clone(),
                start: now_counters.clone(),
                mismatch: None,
            });
        if watch.key != key {
            *watch = StepWatch {
                key,
                start: now_counters.clone(),
                mismatch: None,
            };
        }
        let canary = self.route.canary;
        if canary != at {
            let since = *watch.mismatch.get_or_insert_with(std::time::Instant::now);
            if since.elapsed() < MISMATCH_GRACE {
                return;
            }
            self.hold(
                record,
                format!(
                    "paused: the canary is {canary}%, not the rollout's {at}% (changed outside the rollout: the file was edited, or a change was made without the store); `strangler rollout resume {}` continues from {canary}%",
                    self.name()
                ),
            )
            .await;
            return;
        }
        watch.mismatch = None;
        let readings = self.readings(record, &watch.start, &now_counters).await;
        self.rollouts.judged(self.name(), readings.clone());
        let elapsed = Duration::from_millis(now_ms().saturating_sub(record.since_ms).max(0) as u64);
        let decision = decide(&Situation {
            policy: self.policy,
            at,
            elapsed,
            readings: &readings,
        });
        match decision {
            Decision::Wait(reason) => {
                if reason != record.reason && now_ms() - record.updated_ms >= REASON_EVERY_MS {
                    let next = RolloutRecord {
                        reason,
                        ..record.clone()
                    };
                    self.rollouts
                        .put(self.history, next, Some(record.revision))
                        .await;
                }
            }
            Decision::Finish => {
                let next = RolloutRecord {
                    state: RolloutState::Done,
                    reason: format!("reached the last step ({at}%)"),
                    ..record.clone()
                };
                self.rollouts
                    .put(self.history, next, Some(record.revision))
                    .await;
            }
            Decision::Promote { to, reason } => {
                self.promote(record, to, reason).await;
            }
            Decision::Fail(reason) => self.fail(record, reason).await,
        }
    }

    async fn readings(&self, record: &RolloutRecord, start: &Snapshot, now: &Snapshot) -> Readings {
        let mut readings = Vec::new();
        for gate in &self.policy.require {
            let reading = match gate {
                Gate::Guard => match &self.route.guard {
                    Some(policy) => guard_reading(policy, has_new_side(self.route), start, now),
                    None => GateReading::Waits("the route has no guard: block".into()),
                },
                Gate::Report => self.report(record).await,
            };
            readings.push((*gate, reading));
        }
        Readings(readings)
    }

    async fn report(&self, record: &RolloutRecord) -> GateReading {
        let (Some(shadow), Some(store)) = (&self.route.shadow, self.rollouts.writer.store()) else {
            return report_reading(Err("the diff store is not connected"), record.step_version);
        };
        let scope = shadow_diff::report::VerdictScope {
            route: self.name(),
            source: shadow_diff::Source::Shadow,
            since_ms: None,
            min_config_version: Some(record.step_version),
        };
        let verdict = tokio::time::timeout(
            STORE_CALL,
            shadow_diff::report::verdict(&store, scope, &shadow.threshold),
        )
        .await;
        match verdict {
            Ok(Ok(summary)) => report_reading(Ok(&summary), record.step_version),
            Ok(Err(e)) => report_reading(Err(&e.to_string()), record.step_version),
            Err(_) => report_reading(
                Err(&format!("no answer in {} s", STORE_CALL.as_secs())),
                record.step_version,
            ),
        }
    }

    async fn hold(&self, record: &RolloutRecord, reason: String) {
        let next = RolloutRecord {
            state: RolloutState::Held,
            target: None,
            reason,
            actor: "rollout".into(),
            ..record.clone()
        };
        self.rollouts
            .put(self.history, next, Some(record.revision))
            .await;
    }

    /// A failed gate: counted, then rolled back or held as `on_failure`
    /// says. A rollback is applied before the state is stored: if the
    /// process stops in between, traffic is already safe, and the next
    /// driver finds the canary moved and holds.
    async fn fail(&self, record: &RolloutRecord, reason: String) {
        let name = self.name().to_string();
        self.rollouts
            .changes
            .live()
            .metrics()
            .count_rollout_failure(&name);
        warn!("rollout of {name}: {reason}");
        match self.policy.on_failure {
            OnFailure::Hold => {
                self.hold(record, format!("held (on_failure: hold): {reason}"))
                    .await
            }
            OnFailure::Rollback => {
                let request = ChangeRequest::Rollback {
                    routes: vec![name.clone()],
                    tenant: None,
                };
                let who = Requester {
                    actor: "rollout".into(),
                    reason: format!("rollout of {name}: {reason}"),
                    by: Initiator::Rollout,
                };
                match self.rollouts.change(request, who).await {
                    Ok(o) => {
                        let next = RolloutRecord {
                            state: RolloutState::RolledBack,
                            step: "0".into(),
                            target: None,
                            since_ms: now_ms(),
                            step_version: o.version as i64,
                            reason: format!("rolled back (on_failure: rollback): {reason}"),
                            actor: "rollout".into(),
                            ..record.clone()
                        };
                        self.rollouts
                            .put(self.history, next, Some(record.revision))
                            .await;
                    }
                    Err(e) => warn!("rollout of {name}: the rollback failed: {e}"),
                }
            }
        }
    }

    /// Takes the next step: `promoting` stored, the canary changed, then
    /// `waiting` (or `done`) at the new step.
    async fn promote(&self, record: &RolloutRecord, to: Percent, reason: String) {
        let promoting = RolloutRecord {
            state: RolloutState::Promoting,
            target: Some(to.to_string()),
            reason,
            actor: "rollout".into(),
            ..record.clone()
        };
        if !self
            .rollouts
            .put(self.history, promoting.clone(), Some(record.revision))
            .await
        {
            return;
        }
        let stored = self
            .rollouts
            .seen()
            .records
            .get(self.name())
            .cloned()
            .unwrap_or(promoting);
        self.finish_promotion(&stored).await;
    }

    /// Applies a stored promotion's target (unless the canary is there
    /// already) and records the new step.
    async fn finish_promotion(&self, record: &RolloutRecord) {
        let name = self.name().to_string();
        let Some(to) = record
            .target
            .as_deref()
            .and_then(|t| Percent::parse(t).ok())
        else {
            self.hold(
                record,
                "promoting, but the stored target is not a percentage".into(),
            )
            .await;
            return;
        };
        let version = if self.route.canary == to {
            self.table.version
        } else {
            let request = ChangeRequest::Canary {
                route: name.clone(),
                percent: to,
            };
            let who = Requester {
                actor: record.actor.clone(),
                reason: format!("rollout of {name}: {}", record.reason),
                by: Initiator::Rollout,
            };
            match self.rollouts.change(request, who).await {
                Ok(o) => o.version,
                Err(e) => {
                    let next = RolloutRecord {
                        reason: format!("could not apply {to}% ({e}); trying again"),
                        ..record.clone()
                    };
                    self.rollouts
                        .put(self.history, next, Some(record.revision))
                        .await;
                    return;
                }
            }
        };
        let (state, reason) = match self.policy.next_step(to) {
            Some(next) => (
                RolloutState::Waiting,
                format!("took the step to {to}% (next: {next}%): {}", record.reason),
            ),
            None => (
                RolloutState::Done,
                format!("took the last step, {to}%: {}", record.reason),
            ),
        };
        let next = RolloutRecord {
            state,
            step: to.to_string(),
            target: None,
            since_ms: now_ms(),
            step_version: version as i64,
            reason,
            ..record.clone()
        };
        if self
            .rollouts
            .put(self.history, next, Some(record.revision))
            .await
        {
            return;
        }
        // Someone wrote while the step was applied. If it was an abort, the
        // step just applied must not stand.
        if let Ok(Ok(Some(now))) =
            tokio::time::timeout(STORE_CALL, self.history.rollout(&name)).await
        {
            if now.state == RolloutState::RolledBack {
                info!("rollout of {name}: aborted while a step was applied; rolling back again");
                let request = ChangeRequest::Rollback {
                    routes: vec![name.clone()],
                    tenant: None,
                };
                let who = Requester {
                    actor: now.actor.clone(),
                    reason: format!("rollout of {name} aborted while {to}% was being applied"),
                    by: Initiator::Rollout,
                };
                if let Err(e) = self.rollouts.change(request, who).await {
                    warn!("rollout of {name}: the rollback failed: {e}");
                }
            }
        }
    }
}

/// How long ago `since_ms` was, for people.
pub fn age(since_ms: i64) -> Duration {
    Duration::from_millis(now_ms().saturating_sub(since_ms).max(0) as u64)
}
