//! A route's verdict alone, cheaply: what a rollout's report gate asks every
//! second and `strangler status` shows. It reads the same comparisons and
//! classes noise the same way as the full report ([`super::build`]), so the
//! two never disagree on one route and window, but from a few aggregates
//! (the comparisons made, the stored diffs with a real difference, the
//! route's noise knowledge) instead of fields, trends and examples.

use serde::{Deserialize, Serialize};

use super::{RouteVerdict, Threshold, route_verdict};
use crate::noise::FieldClass;
pub use crate::store::report_queries::VerdictScope;
use crate::store::{DiffAndHistoryStore, StoreError};

/// A route's verdict over a [`VerdictScope`], with the numbers it rests on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerdictSummary {
    /// Comparisons made in the scope.
    pub compared: u64,
    /// Comparisons with at least one real difference (today's noise
    /// knowledge).
    pub real_diffs: u64,
    pub verdict: RouteVerdict,
    /// Why, in words ([`route_verdict`]'s, as in the report's
    /// `verdict_reason`).
    pub reason: String,
}

/// The verdict of `scope.route` over `scope` against `threshold`. Equal to
/// the full report's `compared`, `real_diffs`, `verdict` and
/// `verdict_reason` for the same route when `since_ms` is the report's
/// window start and no version is set. A route without comparisons in the
/// scope has `compared` 0 and [`RouteVerdict::NotEnoughData`].
pub async fn verdict(
    store: &DiffAndHistoryStore,
    scope: VerdictScope<'_>,
    threshold: &Threshold,
) -> Result<VerdictSummary, StoreError> {
    let compared = store.compared_count(scope).await?;
    // Without comparisons there is no rate to read; the diffs (none: they
    // are written and pruned with their counts) need not be asked for.
    let real_diffs = if compared == 0 {
        0
    } else {
        // A stored diff is real if any of its fields is real in the route's
        // current model; binding the model's noise fields excludes exactly
        // the fields the report would class as noise (a field the model
        // does not know is real there too).
        let model = store.noise_model(scope.route).await?;
        let noise: Vec<&str> = model
            .fields
            .keys()
            .filter(|f| model.class_of(f) == FieldClass::Noise)
            .map(String::as_str)
            .collect();
        store.real_diff_count(scope, &noise).await?
    };
    // Clamped as the report clamps it, so that both give the same verdict
    // (the interval is only defined for at most `compared` real diffs).
    let (verdict, reason) = route_verdict(compared, real_diffs.min(compared), threshold);
    Ok(VerdictSummary {
        compared,
        real_diffs,
        verdict,
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_serializes_with_the_report_s_verdict_names() {
        let (verdict, reason) = route_verdict(0, 0, &Threshold::default());
        let s = VerdictSummary {
            compared: 0,
            real_diffs: 0,
            verdict,
            reason,
        };
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["verdict"], "not_enough_data");
        assert_eq!(json["compared"], 0);
        assert!(json["reason"].as_str().unwrap().contains("100 more"));
        let back: VerdictSummary = serde_json::from_value(json).unwrap();
        assert_eq!(back, s);
    }
}
