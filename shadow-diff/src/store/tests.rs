//! The same store tests on SQLite (a temporary file) and on the PostgreSQL
//! server of this machine (a fresh schema per test). Neither is skipped: a
//! missing PostgreSQL fails the test.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::*;
use crate::compare::{DiffKind, Difference};
use crate::noise::FieldClass;
use crate::record::{NoiseDelta, StoredRequest, StoredResponse};
use crate::report;
use crate::store::writer::{Kept, StoreWriter, WriterEvents, WriterSettings};

use super::testing::{fresh_postgres_url, system_time_nanos};

async fn both(tag: &str) -> Vec<(String, DiffAndHistoryStore, tempfile_dir::Dir)> {
    let dir = tempfile_dir::Dir::new(tag);
    let sqlite_url = format!("sqlite://{}/diffs.db", dir.path.display());
    let sqlite = DiffAndHistoryStore::connect(&sqlite_url)
        .await
        .expect("sqlite store");
    let pg_url = fresh_postgres_url(tag).await;
    let pg = DiffAndHistoryStore::connect(&pg_url)
        .await
        .expect("postgres store");
    vec![
        ("sqlite".to_string(), sqlite, dir),
        ("postgres".to_string(), pg, tempfile_dir::Dir::new("unused")),
    ]
}

/// A temporary directory without another dependency.
mod tempfile_dir {
    #[derive(Debug)]
    pub struct Dir {
        pub path: std::path::PathBuf,
    }
    impl Dir {
        pub fn new(tag: &str) -> Dir {
            let path = std::env::temp_dir().join(format!(
                "shadow-diff-{tag}-{}-{}",
                std::process::id(),
                super::system_time_nanos()
            ));
            std::fs::create_dir_all(&path).unwrap();
            Dir { path }
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

fn record(
    id: &str,
    route: &str,
    at: i64,
    verdict: Verdict,
    fields: &[(&str, FieldClass)],
) -> ComparisonRecord {
    ComparisonRecord {
        id: id.into(),
        created_at_ms: at,
        route: route.into(),
        config_version: 3,
        tenant: Some("acme".into()),
        instance: "test".into(),
        request: StoredRequest {
            method: "GET".into(),
            path: "/api/orders/1".into(),
            headers: vec![("authorization".into(), "[redacted]".into())],
            body: String::new(),
        },
        primary_side: "legacy".into(),
        verdict,
        legacy: StoredResponse {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: r#"{"status":"shipped"}"#.into(),
            latency_ms: 1.5,
        },
        new: StoredResponse {
            status: 404,
            headers: vec![],
            body: r#"{"state":"shipped"}"#.into(),
            latency_ms: 2.5,
        },
        differences: fields
            .iter()
            .map(|(f, class)| {
                let difference = Difference {
                    field: f.to_string(),
                    kind: DiffKind::Changed,
                    legacy: Some("1".into()),
                    new: Some("2".into()),
                };
                StoredDifference {
                    key: difference.field_key(),
                    difference,
                    class: *class,
                }
            })
            .collect(),
        more_differences: 0,
        source: Source::Shadow,
    }
}

#[tokio::test]
async fn comparisons_are_stored_and_read_back() {
    for (name, store, _dir) in both("rw").await {
        let t0 = 1_800_000_000_000;
        store
            .write(&[
                StoreItem::Comparison(Box::new(record(
                    "a",
                    "orders",
                    t0,
                    Verdict::Diff,
                    &[
                        ("status", FieldClass::Real),
                        ("/items/3/price", FieldClass::Real),
                    ],
                ))),
                StoreItem::Comparison(Box::new(record("b", "orders", t0 + 1, Verdict::Match, &[]))),
                StoreItem::Comparison(Box::new(record(
                    "c",
                    "orders",
                    t0 + 2,
                    Verdict::Noise,
                    &[("/id", FieldClass::Noise)],
                ))),
                StoreItem::Comparison(Box::new(record("d", "users", t0 + 3, Verdict::Match, &[]))),
            ])
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        // The same id again is not stored twice.
        store
            .write(&[StoreItem::Comparison(Box::new(record(
                "a",
                "orders",
                t0,
                Verdict::Diff,
                &[("status", FieldClass::Real)],
            )))])
            .await
            .unwrap();

        let all = store
            .diffs(&DiffQuery {
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(
            all.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            vec!["c", "a"],
            "{name}: only differing comparisons are rows"
        );
        let a = &all[1];
        assert_eq!(
            *a,
            record(
                "a",
                "orders",
                t0,
                Verdict::Diff,
                &[
                    ("status", FieldClass::Real),
                    ("/items/3/price", FieldClass::Real)
                ]
            ),
            "{name}"
        );
        assert_eq!(a.differences[1].key, "/items/*/price");

        let by_field = store
            .diffs(&DiffQuery {
                field: Some("/items/*/price".into()),
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(by_field.len(), 1, "{name}");
        let noise = store
            .diffs(&DiffQuery {
                verdict: Some(Verdict::Noise),
                route: Some("orders".into()),
                tenant: Some("acme".into()),
                since_ms: Some(t0),
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(noise.len(), 1, "{name}");
        assert!(
            store
                .diffs(&DiffQuery {
                    tenant: Some("other".into()),
                    limit: 10,
                    ..Default::default()
                })
                .await
                .unwrap()
                .is_empty()
        );

        let counts = store
            .counts(Source::Shadow, Some("orders"), None, None)
            .await
            .unwrap();
        let total: i64 = counts.iter().map(|c| c.n).sum();
        assert_eq!(
            total, 4,
            "{name}: every comparison is counted, the repeat too: {counts:?}"
        );
        assert!(counts.iter().all(|c| c.config_version == 3));
        let matches: i64 = counts
            .iter()
            .filter(|c| c.verdict == Verdict::Match)
            .map(|c| c.n)
            .sum();
        assert_eq!(matches, 1);
    }
}

#[tokio::test]
async fn noise_evidence_adds_up() {
    for (name, store, _dir) in both("noise").await {
        let mut model = NoiseModel::default();
        model.learn_legacy_pair(&[Difference {
            field: "/id".into(),
            kind: DiffKind::Changed,
            legacy: None,
            new: None,
        }]);
        model.record_comparison(&[Difference {
            field: "/name".into(),
            kind: DiffKind::Changed,
            legacy: None,
            new: None,
        }]);
        let delta = StoreItem::Noise(NoiseDelta {
            route: "orders".into(),
            model: model.clone(),
        });
        store.write(std::slice::from_ref(&delta)).await.unwrap();
        store.write(&[delta]).await.unwrap();
        let models = store.noise_models().await.unwrap();
        let m = &models["orders"];
        assert_eq!((m.legacy_pairs, m.comparisons), (2, 2), "{name}");
        assert_eq!(m.fields["/id"].legacy_differed, 2);
        assert_eq!(m.fields["/name"].new_differed, 2);
        assert_eq!(m.class_of("/id"), FieldClass::Noise);
    }
}

#[tokio::test]
async fn retention_by_age_and_row_count() {
    for (name, store, _dir) in both("prune").await {
        let now = 1_800_000_000_000i64;
        let day = 86_400_000i64;
        let mut items = Vec::new();
        for i in 0..10 {
            items.push(StoreItem::Comparison(Box::new(record(
                &format!("r{i}"),
                "orders",
                now - i * day,
                Verdict::Diff,
                &[("status", FieldClass::Real)],
            ))));
        }
        store.write(&items).await.unwrap();
        // Older than 7 days goes: r8, r9 (r7 is exactly 7 days old).
        assert_eq!(store.prune(now, 7 * day, 1000).await.unwrap(), 2, "{name}");
        // Keep the newest 4 of the remaining 8.
        assert_eq!(store.prune(now, 7 * day, 4).await.unwrap(), 4, "{name}");
        let left = store
            .diffs(&DiffQuery {
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(
            left.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            vec!["r0", "r1", "r2", "r3"]
        );
        let fields = store
            .diffs(&DiffQuery {
                field: Some("status".into()),
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(fields.len(), 4);
    }
}

/// `minutes` minutes of `orders` from `t0` at a steady rate, as the proxy
/// submits them: per minute 200 comparisons, one every 300 ms, of which 20
/// differ for real (`status`) and 10 only in noise (`/id`); plus the noise
/// evidence that makes `/id` noise.
fn steady_stream(t0: i64, minutes: i64) -> Vec<StoreItem> {
    let mut model = NoiseModel::default();
    model.learn_legacy_pair(&[Difference {
        field: "/id".into(),
        kind: DiffKind::Changed,
        legacy: None,
        new: None,
    }]);
    let mut items = vec![StoreItem::Noise(NoiseDelta {
        route: "orders".into(),
        model,
    })];
    for m in 0..minutes {
        for i in 0..200 {
            let (id, at) = (format!("s{m}-{i}"), t0 + m * 60_000 + i * 300);
            let r = if i % 10 == 0 {
                record(
                    &id,
                    "orders",
                    at,
                    Verdict::Diff,
                    &[("status", FieldClass::Real)],
                )
            } else if i % 20 == 5 {
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
            items.push(StoreItem::Comparison(Box::new(r)));
        }
    }
    items
}

/// The `orders` report over everything stored, with one trend bucket per
/// minute and a 5% threshold.
async fn orders_report(
    store: &DiffAndHistoryStore,
    since_ms: i64,
    now: i64,
) -> report::RouteReport {
    let thresholds = HashMap::from([(
        "orders".to_string(),
        report::Threshold {
            max_diff_rate: 0.05,
            min_samples: 100,
        },
    )]);
    let filter = report::ReportFilter {
        route: Some("orders".into()),
        tenant: None,
        since_ms,
        until_ms: now + 1,
        ..Default::default()
    };
    let limits = report::ReportLimits {
        bucket_ms: 60_000,
        ..Default::default()
    };
    let mut r = report::build(store, &filter, &thresholds, limits, now)
        .await
        .unwrap();
    assert_eq!(r.routes.len(), 1);
    r.routes.remove(0)
}

/// Writes [`steady_stream`] as the writer would, in batches.
async fn write_steady_stream(name: &str, store: &DiffAndHistoryStore, t0: i64, minutes: i64) {
    for chunk in steady_stream(t0, minutes).chunks(500) {
        store
            .write(chunk)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

/// Every trend bucket (a minute) shows the stream's 10% rate: its compared
/// and its real diffs cover the same comparisons.
fn assert_whole_minutes(name: &str, r: &report::RouteReport) {
    for t in &r.trend {
        assert_eq!(
            (t.compared, t.real_diffs),
            (200, 20),
            "{name}: minute at {} counts comparisons whose diffs are gone: {:?}",
            t.start_ms,
            r.trend
        );
    }
}

#[tokio::test]
async fn retention_by_row_count_keeps_the_real_diff_rate_and_the_verdict() {
    for (name, store, _dir) in both("prune_rows").await {
        let t0 = 1_800_000_000_000i64;
        let now = t0 + 10 * 60_000;
        write_steady_stream(&name, &store, t0, 10).await;
        let before = orders_report(&store, t0 - 3_600_000, now).await;
        assert_eq!((before.compared, before.real_diffs), (2000, 200), "{name}");
        assert_eq!(before.verdict, report::RouteVerdict::NotReady, "{name}");

        // 300 diff rows are stored (30 a minute); keep at most 100.
        store
            .prune(now, 14 * 86_400_000, 100)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let rows = store
            .diffs(&DiffQuery {
                limit: 1000,
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(rows.len() <= 100, "{name}: the cap holds: {}", rows.len());
        let after = orders_report(&store, t0 - 3_600_000, now).await;
        assert!(after.compared >= 100, "{name}: {after:?}");
        assert!(
            (after.real_diff_rate - 0.10).abs() < 0.01,
            "{name}: the real-diff rate is {} after pruning, 10% before ({} real in {}); \
             the verdict went from {:?} to {:?}",
            after.real_diff_rate,
            after.real_diffs,
            after.compared,
            before.verdict,
            after.verdict
        );
        assert!(
            (after.noise_rate - 0.05).abs() < 0.01,
            "{name}: noise rate {}",
            after.noise_rate
        );
        assert_eq!(
            after.verdict, before.verdict,
            "{name}: {}",
            after.verdict_reason
        );
        let status = after.fields.iter().find(|f| f.field == "status").unwrap();
        assert!((status.share - 0.10).abs() < 0.01, "{name}: {status:?}");
        assert_whole_minutes(&name, &after);
    }
}

#[tokio::test]
async fn retention_by_age_cuts_at_a_minute_boundary() {
    for (name, store, _dir) in both("prune_age").await {
        let t0 = 1_800_000_000_000i64;
        let now = t0 + 10 * 60_000;
        write_steady_stream(&name, &store, t0, 10).await;
        // The age limit falls in the middle of minute 3.
        let max_age = now - (t0 + 3 * 60_000 + 30_000);
        store
            .prune(now, max_age, 1_000_000)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let after = orders_report(&store, t0 - 3_600_000, now).await;
        assert_whole_minutes(&name, &after);
        assert!(
            (after.real_diff_rate - 0.10).abs() < 1e-9,
            "{name}: {}",
            after.real_diff_rate
        );
    }
}

#[tokio::test]
async fn the_report_window_covers_whole_minutes() {
    for (name, store, _dir) in both("window").await {
        let t0 = 1_800_000_000_000i64;
        let now = t0 + 2 * 60_000;
        write_steady_stream(&name, &store, t0, 2).await;
        // Counts are per minute: a window starting mid-minute counts the
        // whole first minute, so its diffs must be counted whole too.
        let r = orders_report(&store, t0 + 30_000, now).await;
        assert_whole_minutes(&name, &r);
        assert_eq!((r.compared, r.real_diffs), (400, 40), "{name}");
    }
}

#[derive(Default)]
struct Counting {
    stored: AtomicU64,
    dropped: AtomicU64,
}

impl WriterEvents for Counting {
    fn stored(&self, _kept: Kept, _route: &str, n: u64) {
        self.stored.fetch_add(n, Ordering::SeqCst);
    }
    fn dropped(&self, _kept: Kept, _route: &str, n: u64) {
        self.dropped.fetch_add(n, Ordering::SeqCst);
    }
}

async fn wait_total(events: &Counting, total: u64) {
    for _ in 0..200 {
        if events.stored.load(Ordering::SeqCst) + events.dropped.load(Ordering::SeqCst) >= total {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_writer_batches_and_counts_what_it_stores() {
    let dir = tempfile_dir::Dir::new("writer");
    for url in [
        format!("sqlite://{}/w.db", dir.path.display()),
        fresh_postgres_url("writer").await,
    ] {
        let events = Arc::new(Counting::default());
        let writer = StoreWriter::spawn(url.clone(), WriterSettings::default(), events.clone());
        writer
            .connected(std::time::Duration::from_secs(10))
            .await
            .expect("connects");
        for i in 0..1000 {
            writer.submit(StoreItem::Comparison(Box::new(record(
                &format!("w{i}"),
                "orders",
                1_800_000_000_000 + i,
                Verdict::Diff,
                &[("status", FieldClass::Real)],
            ))));
        }
        wait_total(&events, 1000).await;
        assert_eq!(events.stored.load(Ordering::SeqCst), 1000, "{url}");
        assert_eq!(events.dropped.load(Ordering::SeqCst), 0);
        let store = writer.store().unwrap();
        assert_eq!(
            store
                .diffs(&DiffQuery {
                    limit: 2000,
                    ..Default::default()
                })
                .await
                .unwrap()
                .len(),
            1000
        );
    }
}

#[tokio::test]
async fn an_unreachable_database_drops_and_counts_without_blocking() {
    // Nothing listens on port 9: connections are refused.
    let events = Arc::new(Counting::default());
    let settings = WriterSettings {
        capacity: 100,
        ..WriterSettings::default()
    };
    let writer = StoreWriter::spawn(
        "postgres://postgres@127.0.0.1:9/test".into(),
        settings,
        events.clone(),
    );
    let started = std::time::Instant::now();
    for i in 0..5000 {
        writer.submit(StoreItem::Comparison(Box::new(record(
            &format!("x{i}"),
            "orders",
            i,
            Verdict::Diff,
            &[],
        ))));
    }
    // Submitting 5000 records into a queue of 100 must not wait for anything.
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    wait_total(&events, 5000).await;
    assert_eq!(events.stored.load(Ordering::SeqCst), 0);
    assert_eq!(
        events.dropped.load(Ordering::SeqCst),
        5000,
        "every record is accounted for"
    );
    assert!(writer.store().is_none());
}

#[tokio::test]
async fn a_batch_in_doubt_is_settled_once_either_way() {
    for (name, store, _dir) in both("settle").await {
        let t0 = 1_800_000_000_000;
        let item = |id: &str| {
            StoreItem::Comparison(Box::new(record(
                id,
                "orders",
                t0,
                Verdict::Diff,
                &[("status", FieldClass::Real)],
            )))
        };
        // Committed (its answer lost, say): the marker says so, every time.
        let committing = std::sync::atomic::AtomicBool::new(false);
        store
            .write_batch(Some(("b1", t0)), &[item("x1")], &committing)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(committing.load(Ordering::SeqCst), "{name}");
        assert!(store.settle_batch("b1", t0).await.unwrap(), "{name}");
        assert!(store.settle_batch("b1", t0).await.unwrap(), "{name}");

        // Never arrived: settling says no, and fences the id off, so the
        // batch can no longer commit late.
        assert!(!store.settle_batch("b2", t0).await.unwrap(), "{name}");
        assert!(!store.settle_batch("b2", t0).await.unwrap(), "{name}");
        let committing = std::sync::atomic::AtomicBool::new(false);
        let late = store
            .write_batch(Some(("b2", t0)), &[item("x2")], &committing)
            .await
            .expect_err("a fenced batch cannot commit");
        assert!(late.is_refusal(), "{name}: {late}");
        assert!(
            !committing.load(Ordering::SeqCst),
            "{name}: refused before COMMIT"
        );
        let ids: Vec<String> = store
            .diffs(&DiffQuery {
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(ids, vec!["x1".to_string()], "{name}");

        // Markers go after a day; diffs are kept by their own retention.
        store
            .prune(t0 + super::BATCH_MARKER_AGE_MS + 1, i64::MAX / 4, 1_000_000)
            .await
            .unwrap();
        assert!(!store.settle_batch("b1", t0).await.unwrap(), "{name}");
    }
}

mod recordings;
mod report_sources;
mod signatures;
mod verdict;
