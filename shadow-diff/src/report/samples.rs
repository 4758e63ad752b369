//! Reports made up for the renderers' tests: two live routes, and a replay
//! part with an example and a run.

use super::*;
use crate::record::ComparisonRecord;

/// A report of two routes (`orders`, `users`) with the given stages,
/// for the renderers' tests.
pub(crate) fn sample_report(stages: [Option<&str>; 2]) -> Report {
    let t = Threshold::default();
    let route = |name: &str, compared: u64, real: u64, stage: Option<&str>| {
        let (verdict, verdict_reason) = route_verdict(compared, real, &t);
        RouteReport {
            route: name.to_string(),
            source: Source::Shadow,
            compared,
            real_diffs: real,
            noise_only: 0,
            real_diff_rate: real as f64 / compared as f64,
            real_diff_rate_ci95: wilson(real, compared),
            noise_rate: 0.0,
            threshold: t,
            verdict,
            verdict_reason,
            stage: stage.map(str::to_string),
            config_versions: vec![3],
            first_ms: Some(1_800_000_000_000),
            last_ms: Some(1_800_000_059_999),
            trend: vec![],
            fields: vec![],
            signatures: Signatures::default(),
            examples: vec![],
            stored_diffs: real,
        }
    };
    Report {
        report_version: REPORT_VERSION,
        generated_at_ms: 1_800_000_060_000,
        filter: ReportFilter {
            since_ms: 1_800_000_000_000,
            until_ms: 1_800_000_060_000,
            ..Default::default()
        },
        routes: vec![
            route("orders", 2000, 2, stages[0]),
            route("users", 2000, 200, stages[1]),
        ],
        replay: vec![],
    }
}

/// A replay run of `orders` against `orders-v2`: done when it has a
/// finish, else still going.
pub(crate) fn sample_run(started: i64, finished: Option<i64>) -> crate::recording::ReplayRun {
    use crate::recording::{ReplayRun, RunCounts, RunState};
    ReplayRun {
        id: format!("run-{started}"),
        route: "orders".into(),
        target: "orders-v2".into(),
        started_at_ms: started,
        finished_at_ms: finished,
        since_ms: started - 86_400_000,
        state: if finished.is_some() {
            RunState::Done
        } else {
            RunState::Running
        },
        counts: RunCounts {
            read: 12,
            matched: 7,
            diff: 3,
            noise: 1,
            skipped: 1,
            failed: 0,
        },
        message: None,
        instance: "test".into(),
    }
}

/// A stored comparison of `route` from `source` in which `/total`
/// differs, `"10"` against `"12"`.
pub(crate) fn sample_example(id: &str, route: &str, source: Source) -> ComparisonRecord {
    use crate::compare::{DiffKind, Difference};
    use crate::record::{StoredDifference, StoredRequest, StoredResponse};
    let difference = Difference {
        field: "/total".into(),
        kind: DiffKind::Changed,
        legacy: Some("10".into()),
        new: Some("12".into()),
    };
    let answer = |total: u32| StoredResponse {
        status: 200,
        headers: vec![],
        body: format!(r#"{{"total": {total}}}"#),
        latency_ms: 1.0,
    };
    ComparisonRecord {
        id: id.into(),
        created_at_ms: 1_800_000_030_000,
        route: route.into(),
        config_version: 3,
        tenant: None,
        instance: "test".into(),
        request: StoredRequest {
            method: "GET".into(),
            path: "/api/orders/7".into(),
            headers: vec![],
            body: String::new(),
        },
        primary_side: "legacy".into(),
        verdict: crate::noise::Verdict::Diff,
        legacy: answer(10),
        new: answer(12),
        differences: vec![StoredDifference {
            key: difference.field_key(),
            difference,
            class: FieldClass::Real,
        }],
        more_differences: 0,
        source,
    }
}

/// [`sample_report`] with a live example on `orders` and a replay part
/// for `orders`: 12 replayed comparisons, 3 real diffs in `/total`, one
/// example and one run.
pub(crate) fn sample_with_replay() -> Report {
    let mut report = sample_report([None, None]);
    let live = sample_example("live-1", "orders", Source::Shadow);
    report.routes[0].signatures = one_group(&live, 2);
    report.routes[0].examples = vec![live];
    let t = Threshold::default();
    let (verdict, verdict_reason) = route_verdict(12, 3, &t);
    let example = sample_example("replayed-1", "orders", Source::Replay);
    report.replay = vec![ReplayReport {
        comparisons: RouteReport {
            route: "orders".into(),
            source: Source::Replay,
            compared: 12,
            real_diffs: 3,
            noise_only: 1,
            real_diff_rate: 0.25,
            real_diff_rate_ci95: wilson(3, 12),
            noise_rate: 1.0 / 12.0,
            threshold: t,
            verdict,
            verdict_reason,
            stage: None,
            config_versions: vec![3],
            first_ms: Some(1_800_000_000_000),
            last_ms: Some(1_800_000_059_999),
            trend: vec![],
            fields: vec![FieldReport {
                field: "/total".into(),
                class: FieldClass::Real,
                why: "differed in 3 replayed comparisons".into(),
                count: 3,
                share: 0.25,
                examples: vec![FieldExample {
                    id: example.id.clone(),
                    legacy: Some("10".into()),
                    new: Some("12".into()),
                }],
                suggestion: None,
            }],
            signatures: one_group(&example, 3),
            examples: vec![example],
            stored_diffs: 4,
        },
        runs: vec![sample_run(1_800_000_000_000, Some(1_800_000_050_000))],
    }];
    report
}

/// One signature: the real fields of `example`, `count` comparisons.
pub(crate) fn one_group(example: &ComparisonRecord, count: u64) -> Signatures {
    let mut fields: Vec<String> = example
        .differences
        .iter()
        .filter(|d| d.class == FieldClass::Real)
        .map(|d| d.key.clone())
        .collect();
    fields.sort();
    fields.dedup();
    Signatures {
        groups: vec![SignatureGroup {
            fields,
            count,
            example: Some(example.clone()),
        }],
        more_groups: 0,
        more_comparisons: 0,
    }
}
