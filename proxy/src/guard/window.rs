//! One route's guard between ticks, as plain state: the counters seen over
//! the last `window`, turned into the [`Observation`] that [`super::judge`]
//! judges, and whether the guard has tripped and waits for a person. No
//! clock and no metrics are read here: the runner passes the time and the
//! counters in, so every decision can be replayed in a unit test.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::judge::{Observation, SideStats, Trip, evaluate};
use crate::config::GuardPolicy;

/// One side's counters: requests, 5xx, cumulative latency buckets.
pub type SideCounters = (u64, u64, Vec<(f64, u64)>);

/// Counters of one route at one moment (all since the process started).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// Legacy, then new.
    pub sides: [SideCounters; 2],
    pub compared: u64,
    pub real_diffs: u64,
}

#[cfg(test)]
impl Snapshot {
    /// Counters after `legacy` and `new` (requests, 5xx) in total, every
    /// request under 10 ms and no shadow comparison: the tests' traffic.
    pub(crate) fn fast(legacy: (u64, u64), new: (u64, u64)) -> Snapshot {
        let buckets = |n: u64| vec![(0.01, n), (f64::INFINITY, n)];
        Snapshot {
            sides: [
                (legacy.0, legacy.1, buckets(legacy.0)),
                (new.0, new.1, buckets(new.0)),
            ],
            compared: 0,
            real_diffs: 0,
        }
    }
}

/// What the guard concludes for a route at one tick.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Tripped earlier; quiet until a person gives the new side traffic.
    Quiet,
    /// A person gave the new side traffic again after a trip: judging
    /// starts over from this tick.
    Rearmed,
    /// Less than a second of counters: nothing to judge yet.
    Gathering,
    Healthy,
    /// Roll the route back.
    RollBack(Trip),
    /// A trip with nothing on the new side to roll back: record it only.
    Observe(Trip),
}

/// The state of one route's guard.
#[derive(Debug, Default)]
pub struct RouteGuard {
    history: VecDeque<(Instant, Snapshot)>,
    /// Set after a trip: the version served when it was acted on.
    tripped_at: Option<u64>,
}

impl RouteGuard {
    /// One tick: the counters `snap` at `now`, with `version` served and
    /// `has_new_side` telling whether any request can reach the new side.
    pub fn tick(
        &mut self,
        now: Instant,
        snap: Snapshot,
        policy: &GuardPolicy,
        version: u64,
        has_new_side: bool,
    ) -> Decision {
        let mut rearmed = false;
        if let Some(at) = self.tripped_at {
            // Re-armed only when a person gives the new side traffic again.
            if version > at && has_new_side {
                self.tripped_at = None;
                self.history.clear();
                rearmed = true;
            } else {
                return Decision::Quiet;
            }
        }
        self.history.push_back((now, snap));
        // Keep one snapshot at or before the window's start.
        while self.history.len() > 2 && now.duration_since(self.history[1].0) >= policy.window {
            self.history.pop_front();
        }
        if rearmed {
            return Decision::Rearmed;
        }
        let (start, old) = &self.history[0];
        if now.duration_since(*start) < Duration::from_secs(1) {
            return Decision::Gathering;
        }
        let newest = &self.history[self.history.len() - 1].1;
        match evaluate(policy, &observation(old, newest)) {
            None => Decision::Healthy,
            Some(trip) if has_new_side => Decision::RollBack(trip),
            Some(trip) => Decision::Observe(trip),
        }
    }

    /// The trip was acted on, leaving `version` served: quiet from now on
    /// until re-armed.
    pub fn tripped(&mut self, version: u64) {
        self.tripped_at = Some(version);
        self.history.clear();
    }
}

/// What happened between `old` and `new`.
pub fn observation(old: &Snapshot, new: &Snapshot) -> Observation {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> GuardPolicy {
        GuardPolicy {
            window: Duration::from_secs(10),
            min_requests: 20,
            error_rate_margin: 0.05,
            p99_margin: None,
            max_diff_rate: None,
        }
    }

    /// Counters after `legacy` and `new` (requests, 5xx) in total.
    fn snap(legacy: (u64, u64), new: (u64, u64)) -> Snapshot {
        Snapshot::fast(legacy, new)
    }

    fn at(start: Instant, secs: u64) -> Instant {
        start + Duration::from_secs(secs)
    }

    #[test]
    fn nothing_is_judged_before_a_second_of_counters() {
        let (mut g, t0) = (RouteGuard::default(), Instant::now());
        let failing = snap((100, 0), (100, 100));
        assert_eq!(
            g.tick(t0, snap((0, 0), (0, 0)), &policy(), 1, true),
            Decision::Gathering
        );
        assert_eq!(
            g.tick(t0 + Duration::from_millis(500), failing, &policy(), 1, true),
            Decision::Gathering
        );
    }

    #[test]
    fn failures_within_the_window_roll_back_and_then_the_guard_is_quiet() {
        let (mut g, t0) = (RouteGuard::default(), Instant::now());
        g.tick(t0, snap((0, 0), (0, 0)), &policy(), 1, true);
        assert_eq!(
            g.tick(at(t0, 1), snap((50, 0), (50, 0)), &policy(), 1, true),
            Decision::Healthy
        );
        let d = g.tick(at(t0, 2), snap((100, 0), (100, 40)), &policy(), 1, true);
        assert!(
            matches!(d, Decision::RollBack(Trip::ErrorRate { .. })),
            "{d:?}"
        );
        g.tripped(2);
        // Still failing, same version or a later one with canary 0: quiet.
        for (version, has_new) in [(2, true), (3, false)] {
            assert_eq!(
                g.tick(
                    at(t0, 3),
                    snap((150, 0), (150, 90)),
                    &policy(),
                    version,
                    has_new
                ),
                Decision::Quiet
            );
        }
    }

    #[test]
    fn a_person_raising_the_canary_rearms_it_with_a_fresh_window() {
        let (mut g, t0) = (RouteGuard::default(), Instant::now());
        g.tick(t0, snap((0, 0), (0, 0)), &policy(), 1, true);
        g.tick(at(t0, 2), snap((100, 0), (100, 40)), &policy(), 1, true);
        g.tripped(2);
        assert_eq!(
            g.tick(at(t0, 3), snap((100, 0), (100, 40)), &policy(), 3, true),
            Decision::Rearmed
        );
        // The failures before the trip are not judged again.
        assert_eq!(
            g.tick(at(t0, 5), snap((150, 0), (150, 40)), &policy(), 3, true),
            Decision::Healthy
        );
    }

    #[test]
    fn failures_older_than_the_window_are_forgotten() {
        let (mut g, t0) = (RouteGuard::default(), Instant::now());
        g.tick(t0, snap((0, 0), (0, 0)), &policy(), 1, true);
        // 10 of 30 failed in the first second, then only successes.
        g.tick(at(t0, 1), snap((30, 0), (30, 10)), &policy(), 1, true);
        let mut last = Decision::Gathering;
        for s in 2..=12 {
            let n = 30 + 30 * s;
            last = g.tick(at(t0, s), snap((n, 0), (n, 10)), &policy(), 1, true);
        }
        assert_eq!(last, Decision::Healthy);
    }

    #[test]
    fn a_trip_with_nothing_on_the_new_side_is_only_observed() {
        let (mut g, t0) = (RouteGuard::default(), Instant::now());
        let p = GuardPolicy {
            max_diff_rate: Some(0.1),
            ..policy()
        };
        let mut differing = snap((100, 0), (0, 0));
        g.tick(t0, snap((0, 0), (0, 0)), &p, 1, false);
        differing.compared = 50;
        differing.real_diffs = 25;
        let d = g.tick(at(t0, 1), differing, &p, 1, false);
        assert!(
            matches!(d, Decision::Observe(Trip::DiffRate { .. })),
            "{d:?}"
        );
    }

    #[test]
    fn cumulative_buckets_become_counts_within_the_window() {
        let old = Snapshot {
            sides: [(10, 0, vec![(0.1, 5), (1.0, 10)]), Default::default()],
            ..Default::default()
        };
        let new = Snapshot {
            sides: [(30, 2, vec![(0.1, 15), (1.0, 30)]), Default::default()],
            compared: 4,
            real_diffs: 1,
        };
        let o = observation(&old, &new);
        assert_eq!(o.legacy.requests, 20);
        assert_eq!(o.legacy.errors, 2);
        assert_eq!(o.legacy.latency, vec![(0.1, 10), (1.0, 10)]);
        assert_eq!((o.compared, o.real_diffs), (4, 1));
    }
}
