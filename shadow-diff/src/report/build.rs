//! Building a [`Report`] from the store: the window widened to whole
//! minutes, then each source's part ([`super::sources`]): live shadow
//! comparisons make [`Report::routes`]; replayed ones, with the runs,
//! [`Report::replay`] ([`super::replay`]).

use std::collections::{BTreeSet, HashMap};

use super::sources::Sources;
use super::{REPORT_VERSION, Report, ReportFilter, ReportLimits, Threshold, replay};
use crate::record::Source;
use crate::store::{DiffAndHistoryStore, StoreError};

/// Builds the report. `thresholds` gives each route's threshold (routes not
/// in it get the default), for live and replayed comparisons alike.
pub async fn build(
    store: &DiffAndHistoryStore,
    filter: &ReportFilter,
    thresholds: &HashMap<String, Threshold>,
    limits: ReportLimits,
    now_ms: i64,
) -> Result<Report, StoreError> {
    let noise = store.noise_models().await?;
    let window = whole_minutes(filter);
    let on = Sources {
        store,
        window: &window,
        noise: &noise,
        thresholds,
        limits,
    };
    let routes = if filter.includes(Source::Shadow) {
        on.reports(Source::Shadow, BTreeSet::new()).await?
    } else {
        Vec::new()
    };
    let replay = if filter.includes(Source::Replay) {
        replay::reports(&on).await?
    } else {
        Vec::new()
    };
    Ok(Report {
        report_version: REPORT_VERSION,
        generated_at_ms: now_ms,
        filter: filter.clone(),
        routes,
        replay,
    })
}

/// The filter widened to whole minutes. Comparisons are counted per minute,
/// so the counts of a window cover every minute it touches; the diffs it
/// reads must cover the same minutes, or a window starting mid-minute would
/// count that minute's comparisons without the diffs of its first part.
fn whole_minutes(filter: &ReportFilter) -> ReportFilter {
    let floor = |ms: i64| ms.saturating_sub(ms.rem_euclid(60_000));
    let until = floor(filter.until_ms);
    ReportFilter {
        since_ms: floor(filter.since_ms),
        until_ms: if until < filter.until_ms {
            until.saturating_add(60_000)
        } else {
            until
        },
        ..filter.clone()
    }
}
