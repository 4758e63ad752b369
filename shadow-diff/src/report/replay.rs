//! Replayed traffic in the report: per route, the same figures as for live
//! shadow traffic (comparisons, real-diff rate and interval, verdict against
//! the route's threshold, fields with their noise class from the route's
//! noise model, examples), computed from replayed comparisons alone, and the
//! replay runs of the window, one entry each (when, against what, how many).
//!
//! A replay compares the answer recorded then with the answer a target
//! gives now; its verdict says how the target would have answered that
//! traffic, never whether the route may move on, so it stays out of
//! [`super::Report::routes`] and of [`super::verdict()`].

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::RouteReport;
use super::sources::Sources;
use crate::record::Source;
use crate::recording::ReplayRun;
use crate::store::StoreError;

/// One route's replayed comparisons and replay runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplayReport {
    /// The figures, in the shape of a live route's (with `source`
    /// `replay`); in JSON, at the top level of the entry. `legacy` in its
    /// examples is the recorded answer, `new` the replayed one.
    #[serde(flatten)]
    pub comparisons: RouteReport,
    /// Runs that were going at some time in the window, newest first. Runs
    /// are not per tenant: a tenant filter leaves them all.
    pub runs: Vec<ReplayRun>,
}

/// Whether `run` was going at some time in `[since_ms, until_ms)`.
fn overlaps(run: &ReplayRun, since_ms: i64, until_ms: i64) -> bool {
    run.started_at_ms < until_ms && run.finished_at_ms.is_none_or(|f| f >= since_ms)
}

/// The replay part of a report: every route with replayed comparisons or a
/// run in the window, by name.
pub(super) async fn reports(on: &Sources<'_>) -> Result<Vec<ReplayReport>, StoreError> {
    let w = on.window;
    // Every run of the route (a run is one row per `strangler replay`), so
    // that one started before the window and still going in it counts.
    let runs: Vec<ReplayRun> = on
        .store
        .replay_runs(w.route.as_deref(), i64::MIN)
        .await?
        .into_iter()
        .filter(|r| overlaps(r, w.since_ms, w.until_ms))
        .collect();
    let with_runs: BTreeSet<String> = runs.iter().map(|r| r.route.clone()).collect();
    let figures = on.reports(Source::Replay, with_runs).await?;
    Ok(figures
        .into_iter()
        .map(|comparisons| ReplayReport {
            runs: runs
                .iter()
                .filter(|r| r.route == comparisons.route)
                .cloned()
                .collect(),
            comparisons,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::samples::{sample_report, sample_run as run};

    #[test]
    fn a_run_belongs_to_every_window_it_was_going_in() {
        let (since, until) = (1_000, 2_000);
        assert!(overlaps(&run(1_500, Some(1_600)), since, until));
        assert!(
            overlaps(&run(500, Some(1_000)), since, until),
            "ends at the start"
        );
        assert!(overlaps(&run(500, None), since, until), "still going");
        assert!(!overlaps(&run(500, Some(999)), since, until), "over before");
        assert!(!overlaps(&run(2_000, None), since, until), "after");
    }

    #[test]
    fn in_json_an_entry_is_a_route_s_figures_and_its_runs() {
        let mut figures = sample_report([None, None]).routes.remove(0);
        figures.source = Source::Replay;
        let entry = ReplayReport {
            comparisons: figures,
            runs: vec![run(1_800_000_000_000, None)],
        };
        let json = serde_json::to_value(&entry).unwrap();
        assert_eq!(json["route"], "orders");
        assert_eq!(json["source"], "replay");
        assert_eq!(json["compared"], 2000);
        assert_eq!(json["verdict"], "ready");
        assert_eq!(json["runs"][0]["target"], "orders-v2");
        assert_eq!(json["runs"][0]["state"], "running");
        let back: ReplayReport = serde_json::from_value(json).unwrap();
        assert_eq!(back, entry);
    }
}
