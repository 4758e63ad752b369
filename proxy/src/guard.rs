//! The automatic guard: once a second, for every route with a `guard:`
//! block, it takes the route's counters (requests, 5xx, latency histogram per
//! side; shadow verdicts) and compares the last `window` of them with
//! [`rollback::guard::evaluate`]. A trip rolls the route back (canary 0, pins
//! to legacy) like `strangler rollback` would, recorded with trigger `auto`.
//! The guard then stays quiet for that route until a person raises its
//! canary again, so it never flaps.
//!
//! A trip on a route with nothing on the new side (canary 0, no tenant
//! pinned to new: typically a shadowed route whose copies differ) is not a
//! rollback: nothing would change and nobody should be paged. What the guard
//! saw is recorded in the audit log instead, and it stays quiet the same way.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::{info, warn};
use rollback::guard::{Observation, SideStats, evaluate};

use crate::changes::{ChangeRequest, Requester};
use crate::config::Side;
use crate::live::{Live, LiveTable};

/// One side's counters: requests, 5xx, cumulative latency buckets.
type SideCounters = (u64, u64, Vec<(f64, u64)>);

/// Counters of one route at one moment (all since the process started).
#[derive(Debug, Clone, Default)]
struct Snapshot {
    sides: [SideCounters; 2],
    compared: u64,
    real_diffs: u64,
}

#[derive(Debug, Default)]
struct RouteGuard {
    history: VecDeque<(Instant, Snapshot)>,
    /// Set after a trip: the version the guard rolled back to.
    tripped_at: Option<u64>,
}

fn snapshot(live: &Live, table: &LiveTable, index: usize) -> Snapshot {
    let metrics = &table.route_metrics[index];
    let route = table.config().routes[index].name.as_str();
    let side = |s: Side| {
        let m = metrics.side(s);
        let (requests, errors) = m.totals();
        (requests, errors, m.latency_buckets())
    };
    let diffs = &live.metrics().shadow_diffs;
    let verdict = |v: &str| {
        diffs
            .get_metric_with_label_values(&[route, v])
            .map(|c| c.get())
            .unwrap_or(0)
    };
    Snapshot {
        sides: [side(Side::Legacy), side(Side::New)],
        compared: verdict("match") + verdict("diff") + verdict("noise"),
        real_diffs: verdict("diff"),
    }
}

/// What happened between `old` and `new`.
fn observation(old: &Snapshot, new: &Snapshot) -> Observation {
    let side = |i: usize| {
        let (r0, e0, b0) = &old.sides[i];
        let (r1, e1, b1) = &new.sides[i];
        // Cumulative buckets to per-bucket counts within the window.
        let mut latency = Vec::with_capacity(b1.len());
        let mut below = 0u64;
        for (k, (le, c1)) in b1.iter().enumerate() {
            let c0 = b0.get(k).map(|(_, c)| *c).unwrap_or(0);
            let cumulative = c1.saturating_sub(c0);
            latency.push((*le, cumulative.saturating_sub(below)));
            below = cumulative;
        }
        SideStats {
            requests: r1.saturating_sub(*r0),
            errors: e1.saturating_sub(*e0),
            latency,
        }
    };
    Observation {
        legacy: side(0),
        new: side(1),
        compared: new.compared.saturating_sub(old.compared),
        real_diffs: new.real_diffs.saturating_sub(old.real_diffs),
    }
}

/// Whether any request can reach the route's new side: only then is there
/// anything to roll back.
fn has_new_side(route: &crate::config::Route) -> bool {
    route.canary.get() > 0.0 || route.pins.iter().any(|(_, s)| *s == Side::New)
}

pub async fn run(live: Arc<Live>) {
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
            let g = guards.entry(name.clone()).or_default();
            if let Some(at) = g.tripped_at {
                // Re-armed only when a person gives the new side traffic again.
                if table.version > at && has_new_side(route) {
                    info!("guard for {name} re-armed (version {})", table.version);
                    g.tripped_at = None;
                    g.history.clear();
                } else {
                    continue;
                }
            }
            let snap = snapshot(&live, &table, index);
            g.history.push_back((now, snap.clone()));
            // Keep one snapshot at or before the window's start.
            while g.history.len() > 2 && now.duration_since(g.history[1].0) >= policy.window {
                g.history.pop_front();
            }
            let (start, old) = &g.history[0];
            if now.duration_since(*start) < Duration::from_secs(1) {
                continue;
            }
            if let Some(trip) = evaluate(policy, &observation(old, &snap)) {
                trips.push((name, trip.to_string(), policy.clone(), has_new_side(route)));
            }
        }
        for (name, why, policy, has_new) in trips {
            let who = Requester {
                actor: "guard".into(),
                reason: format!("{why} (window {:?})", policy.window),
                trigger: crate::metrics::RollbackTrigger::Auto,
            };
            if !has_new {
                warn!("guard: {name}: {why}; nothing on the new side to roll back");
                let (l, route, w) = (live.clone(), name.clone(), who.clone());
                let _ = tokio::task::spawn_blocking(move || l.record_guard_observation(&route, &w))
                    .await;
                // Quiet until a person gives the new side traffic.
                let g = guards.entry(name).or_default();
                g.tripped_at = Some(table.version);
                g.history.clear();
                continue;
            }
            warn!("guard: rolling back {name}: {why}");
            let request = ChangeRequest::Rollback {
                routes: vec![name.clone()],
                tenant: None,
            };
            let l = live.clone();
            let result =
                tokio::task::spawn_blocking(move || l.request_change(&request, &who)).await;
            let g = guards.entry(name.clone()).or_default();
            match result {
                Ok(Ok(outcome)) => {
                    g.tripped_at = Some(outcome.version);
                    g.history.clear();
                }
                Ok(Err(e)) => warn!("guard rollback of {name} failed: {e}"),
                Err(e) => warn!("guard rollback of {name} failed: {e}"),
            }
        }
    }
}
