//! A report over a store holding live and replayed comparisons, on both
//! dialects: the live part (and the verdict a rollout reads) comes from live
//! comparisons alone, the replay part from replayed ones alone, with the
//! route's noise knowledge and its replay runs; a source filter shows one
//! part; HTML and Markdown show the replay part and each example's source.

use super::*;
use crate::recording::{ReplayRun, RunCounts, RunState};
use crate::report::{RouteVerdict, Threshold, VerdictScope};

const T0: i64 = 1_800_000_000_000;
const MINUTE: i64 = 60_000;
const NOW: i64 = T0 + 30 * MINUTE;

fn threshold() -> Threshold {
    Threshold {
        max_diff_rate: 0.05,
        min_samples: 100,
    }
}

/// `/id` is noise on `orders`: it differed between two legacy answers.
fn id_is_noise() -> StoreItem {
    let mut model = NoiseModel::default();
    model.learn_legacy_pair(&[Difference {
        field: "/id".into(),
        kind: DiffKind::Changed,
        legacy: None,
        new: None,
    }]);
    StoreItem::Noise(NoiseDelta {
        route: "orders".into(),
        model,
    })
}

/// Live: 300 comparisons of `orders` from T0, one a second: every 100th a
/// real diff in `status` (1%), every 10th otherwise noise only (`/id`).
fn live() -> Vec<StoreItem> {
    (0..300)
        .map(|i| {
            let (id, at) = (format!("live{i}"), T0 + i * 1000);
            let r = if i % 100 == 0 {
                record(
                    &id,
                    "orders",
                    at,
                    Verdict::Diff,
                    &[("status", FieldClass::Real)],
                )
            } else if i % 10 == 0 {
                record(
                    &id,
                    "orders",
                    at,
                    Verdict::Noise,
                    &[("/id", FieldClass::Noise)],
                )
            } else {
                record(&id, "orders", at, Verdict::Match, &[])
            };
            StoreItem::Comparison(Box::new(r))
        })
        .collect()
}

/// Replayed: 40 comparisons of `orders` from T0 + 10 minutes: every 2nd a
/// real diff in `/total` (with `/id`, which is noise), every 5th otherwise
/// noise only.
fn replayed() -> Vec<StoreItem> {
    (0..40)
        .map(|i| {
            let (id, at) = (format!("rec{i}/run-1"), T0 + 10 * MINUTE + i * 1000);
            let mut r = if i % 2 == 0 {
                record(
                    &id,
                    "orders",
                    at,
                    Verdict::Diff,
                    &[("/total", FieldClass::Real), ("/id", FieldClass::Noise)],
                )
            } else if i % 5 == 0 {
                record(
                    &id,
                    "orders",
                    at,
                    Verdict::Noise,
                    &[("/id", FieldClass::Noise)],
                )
            } else {
                record(&id, "orders", at, Verdict::Match, &[])
            };
            r.source = Source::Replay;
            StoreItem::Comparison(Box::new(r))
        })
        .collect()
}

fn run(id: &str, route: &str, started: i64, finished: Option<i64>, state: RunState) -> ReplayRun {
    ReplayRun {
        id: id.into(),
        route: route.into(),
        target: format!("{route}-v2"),
        started_at_ms: started,
        finished_at_ms: finished,
        since_ms: started - 86_400_000,
        state,
        counts: RunCounts {
            read: 45,
            matched: 16,
            diff: 20,
            noise: 4,
            skipped: 3,
            failed: 2,
        },
        message: (state == RunState::Failed).then(|| "the target refused".to_string()),
        instance: "test".into(),
    }
}

/// The store of this file's tests: live and replayed comparisons, and three
/// runs: one of `orders` in the window, one of `users` (which has no
/// comparisons) in the window, one of `orders` over long before it.
async fn filled(name: &str, store: &DiffAndHistoryStore) -> [ReplayRun; 3] {
    let mut items = vec![id_is_noise()];
    items.extend(live());
    items.extend(replayed());
    store
        .write(&items)
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let runs = [
        run(
            "run-1",
            "orders",
            T0 + 10 * MINUTE,
            Some(T0 + 11 * MINUTE),
            RunState::Done,
        ),
        run("run-2", "users", T0 + 20 * MINUTE, None, RunState::Failed),
        run(
            "run-0",
            "orders",
            T0 - 3 * 86_400_000,
            Some(T0 - 2 * 86_400_000),
            RunState::Done,
        ),
    ];
    for r in &runs {
        store.put_replay_run(r).await.unwrap();
    }
    runs
}

async fn report_of(store: &DiffAndHistoryStore, source: Option<Source>) -> report::Report {
    let thresholds = HashMap::from([
        ("orders".to_string(), threshold()),
        ("users".to_string(), threshold()),
    ]);
    let filter = report::ReportFilter {
        source,
        since_ms: T0 - 3_600_000,
        until_ms: NOW + 1,
        ..Default::default()
    };
    report::build(store, &filter, &thresholds, Default::default(), NOW)
        .await
        .unwrap()
}

async fn verdict_of(store: &DiffAndHistoryStore, source: Source) -> report::VerdictSummary {
    report::verdict(
        store,
        VerdictScope {
            route: "orders",
            source,
            since_ms: Some(T0 - 3_600_000),
            min_config_version: None,
        },
        &threshold(),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn the_live_verdict_reads_live_comparisons_and_the_replay_part_replayed_ones() {
    for (name, store, _dir) in both("report_sources").await {
        let runs = filled(&name, &store).await;
        let report = report_of(&store, None).await;

        // Live: orders only (users was replayed, never shadowed), 300
        // comparisons, 3 real diffs: ready. Nothing replayed in it.
        assert_eq!(report.routes.len(), 1, "{name}: {:?}", report.routes);
        let live = &report.routes[0];
        assert_eq!(live.route, "orders");
        assert_eq!(live.source, Source::Shadow, "{name}");
        assert_eq!(
            (live.compared, live.real_diffs, live.noise_only),
            (300, 3, 27),
            "{name}"
        );
        assert_eq!(
            live.verdict,
            RouteVerdict::Ready,
            "{name}: {}",
            live.verdict_reason
        );
        assert!(live.fields.iter().all(|f| f.field != "/total"), "{name}");
        assert!(!live.examples.is_empty());
        assert!(
            live.examples.iter().all(|e| e.source == Source::Shadow),
            "{name}"
        );
        // The verdict a rollout gate reads is the live part's.
        let gate = verdict_of(&store, Source::Shadow).await;
        assert_eq!(
            (gate.compared, gate.real_diffs, gate.verdict),
            (live.compared, live.real_diffs, live.verdict),
            "{name}"
        );

        // Replay: orders with 40 replayed comparisons, 20 real diffs: not
        // ready; and users, with a run and no comparisons.
        let routes: Vec<&str> = report
            .replay
            .iter()
            .map(|r| r.comparisons.route.as_str())
            .collect();
        assert_eq!(routes, ["orders", "users"], "{name}");
        let orders = report.replayed("orders").unwrap();
        let r = &orders.comparisons;
        assert_eq!(r.source, Source::Replay, "{name}");
        assert_eq!(
            (r.compared, r.real_diffs, r.noise_only),
            (40, 20, 4),
            "{name}"
        );
        assert_eq!(
            r.verdict,
            RouteVerdict::NotReady,
            "{name}: {}",
            r.verdict_reason
        );
        assert_eq!(r.threshold, threshold(), "the route's threshold");
        let total = r.fields.iter().find(|f| f.field == "/total").unwrap();
        assert_eq!(
            (total.class, total.count, total.share),
            (FieldClass::Real, 20, 0.5),
            "{name}"
        );
        assert_eq!(total.examples.len(), 3, "{name}");
        // Noise is classed with the route's model, as for live traffic.
        let id = r.fields.iter().find(|f| f.field == "/id").unwrap();
        assert_eq!(id.class, FieldClass::Noise, "{name}");
        assert_eq!(id.suggestion.as_deref(), Some("ignore_fields: [/id]"));
        assert!(r.fields.iter().all(|f| f.field != "status"), "{name}");
        assert_eq!(r.stored_diffs, 24, "{name}");
        assert!(
            !r.examples.is_empty() && r.examples.iter().all(|e| e.source == Source::Replay),
            "{name}"
        );
        let replay_gate = verdict_of(&store, Source::Replay).await;
        assert_eq!(
            (
                replay_gate.compared,
                replay_gate.real_diffs,
                replay_gate.verdict
            ),
            (r.compared, r.real_diffs, r.verdict),
            "{name}"
        );
        // Its run in the window is one entry; the one long before is not.
        assert_eq!(orders.runs, vec![runs[0].clone()], "{name}");
        let users = report.replayed("users").unwrap();
        assert_eq!(users.comparisons.compared, 0, "{name}");
        assert_eq!(users.comparisons.verdict, RouteVerdict::NotEnoughData);
        assert_eq!(users.runs, vec![runs[1].clone()], "{name}");

        // In JSON: the replay entries have the live entries' fields, and runs.
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["routes"][0]["source"], "shadow", "{name}");
        assert_eq!(json["replay"][0]["source"], "replay", "{name}");
        assert_eq!(json["replay"][0]["compared"], 40, "{name}");
        assert_eq!(json["replay"][0]["verdict"], "not_ready", "{name}");
        assert_eq!(json["replay"][0]["runs"][0]["target"], "orders-v2");
        assert_eq!(json["replay"][0]["runs"][0]["counts"]["skipped"], 3);
        assert_eq!(json["replay"][1]["runs"][0]["state"], "failed");
        assert!(json["filter"].get("source").is_none(), "{json}");
    }
}

#[tokio::test]
async fn a_source_filter_shows_one_part_with_the_same_figures() {
    for (name, store, _dir) in both("report_source_filter").await {
        filled(&name, &store).await;
        let both_parts = report_of(&store, None).await;
        let live = report_of(&store, Some(Source::Shadow)).await;
        assert_eq!(live.routes, both_parts.routes, "{name}");
        assert!(live.replay.is_empty(), "{name}");
        let replay = report_of(&store, Some(Source::Replay)).await;
        assert!(replay.routes.is_empty(), "{name}");
        assert_eq!(replay.replay, both_parts.replay, "{name}");
        let json = serde_json::to_value(&replay).unwrap();
        assert_eq!(json["filter"]["source"], "replay", "{name}");
    }
}

#[tokio::test]
async fn html_and_markdown_show_the_replay_part_and_each_example_s_source() {
    for (name, store, _dir) in both("report_source_render").await {
        filled(&name, &store).await;
        let report = report_of(&store, None).await;

        let md = report::markdown::render(&report, report::Times::Utc);
        let (live, replay) = md.split_at(md.find("\n## Replayed traffic\n").expect(&md));
        assert!(
            live.contains("| `orders` | **ready** | 300 | 1.00% ("),
            "{name}: {live}"
        );
        assert!(
            live.contains("| live shadow | `GET /api/orders/1` | legacy 200 → new 404 |"),
            "{name}: {live}"
        );
        assert!(!live.contains("| replay |"), "{name}: {live}");
        assert!(
            replay.contains("| `orders` | **not ready** | 40 | 50.00% ("),
            "{name}: {replay}"
        );
        assert!(
            replay.contains("| `users` | **not enough data** | 0 |"),
            "{name}: {replay}"
        );
        assert!(
            replay.contains("| done | `orders-v2` |")
                && replay.contains("| 45 | 40 | 20 | 4 | 3 | 2 |"),
            "{name}: {replay}"
        );
        assert!(
            replay.contains("| failed: the target refused | `users-v2` |"),
            "{name}: {replay}"
        );
        assert!(
            replay.contains("| replay | `GET /api/orders/1` | recorded 200 → replayed 404 | `/total`, `/id` | `rec38/run-1` |"),
            "{name}: {replay}"
        );
        assert!(!replay.contains("| live shadow |"), "{name}: {replay}");

        let html = report::html::render(
            &report,
            &report::html::Links::Anchors,
            &[],
            "1h",
            report::Times::Utc,
        );
        assert!(html.contains(r#"<table class="replay-summary">"#), "{name}");
        let at = html.find(r#"<section id="replay-orders""#).expect(&html);
        let section = &html[at..];
        let section = &section[..section.find("</section>").unwrap()];
        assert!(
            section.contains(r#"<tr data-run="run-1" data-state="done">"#),
            "{name}: {section}"
        );
        assert!(!section.contains("run-0"), "{name}: {section}");
        assert!(
            section.contains("<h4>recorded · 200</h4>"),
            "{name}: {section}"
        );
        assert!(
            section.contains("<h4>replayed · 404</h4>"),
            "{name}: {section}"
        );
        assert!(
            section.contains(r#"<tr data-source="replay">"#),
            "{name}: {section}"
        );
        assert!(
            !section.contains(r#"data-source="shadow""#),
            "{name}: {section}"
        );
        let live_section = &html[html.find(r#"<section id="route-orders""#).unwrap()..at];
        assert!(
            live_section.contains(r#"<tr data-source="shadow">"#),
            "{name}"
        );
        assert!(!live_section.contains(r#"data-source="replay""#), "{name}");
        assert!(html.contains(r#"<section id="replay-users""#), "{name}");
        assert!(!html.contains(r#"<section id="route-users""#), "{name}");
    }
}
