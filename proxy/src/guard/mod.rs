//! The automatic guard. Where the judgement and the action live:
//!
//! - the judgement is here, beside the counters it reads: once a second,
//!   for every route with a `guard:` block, the runner below takes the
//!   route's counters (requests, 5xx, latency histogram per side; shadow
//!   verdicts), [`window`] keeps the last `window` of them and decides, and
//!   [`judge`] is the pure test of one window (error rate, p99, diff rate);
//! - the action is [`crate::changes`]: a trip asks for a rollback (canary 0,
//!   pins to legacy) exactly as `strangler rollback` does, with trigger
//!   `auto`, and is applied, written and recorded there.
//!
//! The guard then stays quiet for that route until a person raises its
//! canary again, so it never flaps. A trip on a route with nothing on the
//! new side (canary 0, no tenant pinned to new: typically a shadowed route
//! whose copies differ) is not a rollback: nothing would change and nobody
//! should be paged. What the guard saw is recorded in the audit log
//! instead, and it stays quiet the same way.

pub mod judge;
pub mod window;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use log::{info, warn};
use shadow_diff::Verdict;

use crate::changes::{ChangeRequest, Changes, Initiator, Requester};
use crate::config::{Route, Side};
use crate::live::{Live, LiveTable};
use window::{Decision, RouteGuard, Snapshot};

/// A route's counters now (all since the process started).
pub fn snapshot(live: &Live, table: &LiveTable, index: usize) -> Snapshot {
    let metrics = &table.route_metrics[index];
    let route = table.config().routes[index].name.as_str();
    let side = |s: Side| {
        let m = metrics.side(s);
        let (requests, errors) = m.totals();
        (requests, errors, m.latency_buckets())
    };
    let verdict = |v: Verdict| live.metrics().shadow_diffs(route, v);
    Snapshot {
        sides: [side(Side::Legacy), side(Side::New)],
        compared: verdict(Verdict::Match) + verdict(Verdict::Diff) + verdict(Verdict::Noise),
        real_diffs: verdict(Verdict::Diff),
    }
}

/// Whether any request can reach the route's new side: only then is there
/// anything to roll back.
pub fn has_new_side(route: &Route) -> bool {
    route.canary.get() > 0.0 || route.pins.iter().any(|(_, s)| *s == Side::New)
}

/// Each guarded route's state as of the last tick, for `strangler status`.
#[derive(Debug, Default)]
pub struct GuardBoard(Mutex<HashMap<String, GuardState>>);

/// What a route's guard is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GuardState {
    /// Less than a second of counters since start or re-arming.
    Gathering,
    Healthy,
    /// It tripped and stays quiet until a person gives the new side
    /// traffic again.
    Tripped,
}

impl GuardState {
    pub fn as_str(self) -> &'static str {
        match self {
            GuardState::Gathering => "gathering",
            GuardState::Healthy => "healthy",
            GuardState::Tripped => "tripped",
        }
    }
}

impl GuardBoard {
    pub fn get(&self, route: &str) -> Option<GuardState> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(route)
            .copied()
    }

    fn set(&self, route: &str, state: GuardState) {
        let mut board = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if board.get(route) != Some(&state) {
            board.insert(route.to_string(), state);
        }
    }
}

/// Judges every guarded route once a second and acts on trips, until the
/// process exits. Each route's state is posted on `board`.
pub async fn run(changes: Arc<Changes>, board: Arc<GuardBoard>) {
    let live = changes.live().clone();
    let mut guards: HashMap<String, RouteGuard> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let table = live.current();
        let now = Instant::now();
        let mut trips = Vec::new();
        for (index, route) in table.config().routes.iter().enumerate() {
            let Some(policy) = &route.guard else { continue };
            let name = route.name.to_string();
            let guard = guards.entry(name.clone()).or_default();
            let snap = snapshot(&live, &table, index);
            let decision = guard.tick(now, snap, policy, table.version, has_new_side(route));
            board.set(
                &name,
                match &decision {
                    Decision::Gathering | Decision::Rearmed => GuardState::Gathering,
                    Decision::Healthy => GuardState::Healthy,
                    Decision::Quiet | Decision::RollBack(_) | Decision::Observe(_) => {
                        GuardState::Tripped
                    }
                },
            );
            match decision {
                Decision::Rearmed => {
                    info!("guard for {name} re-armed (version {})", table.version)
                }
                Decision::RollBack(trip) => trips.push((name, trip.to_string(), policy, true)),
                Decision::Observe(trip) => trips.push((name, trip.to_string(), policy, false)),
                Decision::Quiet | Decision::Gathering | Decision::Healthy => {}
            }
        }
        for (name, why, policy, has_new) in trips {
            let who = Requester {
                actor: "guard".into(),
                reason: format!("{why} (window {:?})", policy.window),
                by: Initiator::Guard,
            };
            if !has_new {
                warn!("guard: {name}: {why}; nothing on the new side to roll back");
                let (c, route, w) = (changes.clone(), name.clone(), who.clone());
                let _ = tokio::task::spawn_blocking(move || c.record_guard_observation(&route, &w))
                    .await;
                guards.entry(name).or_default().tripped(table.version);
                continue;
            }
            warn!("guard: rolling back {name}: {why}");
            let request = ChangeRequest::Rollback {
                routes: vec![name.clone()],
                tenant: None,
            };
            let c = changes.clone();
            let result = tokio::task::spawn_blocking(move || c.request(&request, &who)).await;
            match result {
                Ok(Ok(outcome)) => guards.entry(name).or_default().tripped(outcome.version),
                Ok(Err(e)) => warn!("guard rollback of {name} failed: {e}"),
                Err(e) => warn!("guard rollback of {name} failed: {e}"),
            }
        }
    }
}
