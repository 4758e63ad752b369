//! What each gate of a rollout reads, in words with its figures.
//!
//! - `guard`: the route's guard judgement ([`crate::guard::judge`]) over
//!   everything the new side served since this proxy began watching the
//!   step, with the guard's own `min_requests` and margins. At a canary of 0
//!   with no tenant pinned to new there is nothing to judge: it holds.
//! - `report`: the diff report's verdict for the route over the comparisons
//!   made from the step's configuration version on
//!   ([`shadow_diff::report::verdict`]): `ready` holds, `not ready` fails,
//!   `not enough data` waits. A store that does not answer waits too: a
//!   step is never taken on evidence nobody could read.

use shadow_diff::report::{RouteVerdict, VerdictSummary};

use super::decide::GateReading;
use crate::config::GuardPolicy;
use crate::guard::judge::evaluate;
use crate::guard::window::{Snapshot, observation};

/// The guard gate over the counters between `start` (when the step began
/// here) and `now`.
pub fn guard_reading(
    policy: &GuardPolicy,
    has_new_side: bool,
    start: &Snapshot,
    now: &Snapshot,
) -> GateReading {
    if !has_new_side {
        return GateReading::Holds("canary 0: nothing on the new side to judge".into());
    }
    let o = observation(start, now);
    if let Some(trip) = evaluate(policy, &o) {
        return GateReading::Fails(format!(
            "{trip} ({} requests on the new side)",
            o.new.requests
        ));
    }
    let figures = format!(
        "{} of {} requests on the new side, 5xx {:.1}% (legacy {:.1}%)",
        o.new.requests,
        policy.min_requests,
        o.new.error_rate() * 100.0,
        o.legacy.error_rate() * 100.0
    );
    if o.new.requests < policy.min_requests {
        GateReading::Waits(figures)
    } else {
        GateReading::Holds(figures)
    }
}

/// The report gate from the verdict over the step's comparisons (or why it
/// could not be read).
pub fn report_reading(verdict: Result<&VerdictSummary, &str>, since_version: i64) -> GateReading {
    let summary = match verdict {
        Ok(s) => s,
        Err(e) => return GateReading::Waits(format!("the diff store did not answer: {e}")),
    };
    let figures = format!(
        "{} over {} comparisons from version {since_version}: {}",
        summary.verdict.label(),
        summary.compared,
        summary.reason
    );
    match summary.verdict {
        RouteVerdict::Ready => GateReading::Holds(figures),
        RouteVerdict::NotReady => GateReading::Fails(figures),
        RouteVerdict::NotEnoughData => GateReading::Waits(figures),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn policy() -> GuardPolicy {
        GuardPolicy {
            window: Duration::from_secs(60),
            min_requests: 20,
            error_rate_margin: 0.05,
            p99_margin: None,
            max_diff_rate: None,
        }
    }

    fn snap(legacy: (u64, u64), new: (u64, u64)) -> Snapshot {
        Snapshot::fast(legacy, new)
    }

    #[test]
    fn the_guard_gate_needs_min_requests_and_fails_on_a_trip() {
        let start = snap((100, 0), (50, 40));
        // What happened before the step began does not count.
        let r = guard_reading(&policy(), true, &start, &snap((150, 0), (60, 40)));
        assert!(
            matches!(&r, GateReading::Waits(f) if f.starts_with("10 of 20 requests")),
            "{r:?}"
        );
        let r = guard_reading(&policy(), true, &start, &snap((200, 0), (80, 40)));
        assert!(
            matches!(&r, GateReading::Holds(f) if f.contains("5xx 0.0%")),
            "{r:?}"
        );
        let r = guard_reading(&policy(), true, &start, &snap((200, 0), (80, 50)));
        assert!(
            matches!(&r, GateReading::Fails(f) if f.contains("33.3%")),
            "{r:?}"
        );
        let r = guard_reading(&policy(), false, &start, &snap((200, 0), (80, 50)));
        assert!(matches!(r, GateReading::Holds(_)));
    }

    #[test]
    fn the_report_gate_follows_the_verdict() {
        let summary = |verdict| VerdictSummary {
            compared: 120,
            real_diffs: 0,
            verdict,
            reason: "r".into(),
        };
        assert!(matches!(
            report_reading(Ok(&summary(RouteVerdict::Ready)), 7),
            GateReading::Holds(f) if f == "ready over 120 comparisons from version 7: r"
        ));
        assert!(matches!(
            report_reading(Ok(&summary(RouteVerdict::NotReady)), 7),
            GateReading::Fails(_)
        ));
        assert!(matches!(
            report_reading(Ok(&summary(RouteVerdict::NotEnoughData)), 7),
            GateReading::Waits(_)
        ));
        assert!(matches!(
            report_reading(Err("timeout"), 7),
            GateReading::Waits(_)
        ));
    }
}
