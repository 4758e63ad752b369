//! The cheap verdict ([`report::verdict()`]) on both dialects: scoped by
//! config version and by time, with noise classed by the route's model, and
//! always the full report's verdict for the same route and window.

use super::*;
use crate::report::{RouteVerdict, Threshold, VerdictScope, VerdictSummary};

const T0: i64 = 1_800_000_000_000;
const MINUTE: i64 = 60_000;

fn threshold() -> Threshold {
    Threshold {
        max_diff_rate: 0.05,
        min_samples: 100,
    }
}

/// The noise evidence that makes `/id` noise on `route`.
fn id_is_noise(route: &str) -> StoreItem {
    let mut model = NoiseModel::default();
    model.learn_legacy_pair(&[Difference {
        field: "/id".into(),
        kind: DiffKind::Changed,
        legacy: None,
        new: None,
    }]);
    StoreItem::Noise(NoiseDelta {
        route: route.into(),
        model,
    })
}

/// `n` comparisons of `orders` at `version` from `at`, one a second, with
/// ids `{tag}{i}`: every `real_every`-th a real diff (`status` and `/id`:
/// real, since one of its fields is), every `noise_every`-th otherwise a
/// noise-only diff (`/id`), the rest matches. 0 means never.
fn comparisons(
    tag: &str,
    version: i64,
    at: i64,
    n: i64,
    real_every: i64,
    noise_every: i64,
) -> Vec<StoreItem> {
    (0..n)
        .map(|i| {
            let (id, at) = (format!("{tag}{i}"), at + i * 1000);
            let mut r = if real_every > 0 && i % real_every == 0 {
                record(
                    &id,
                    "orders",
                    at,
                    Verdict::Diff,
                    &[("status", FieldClass::Real), ("/id", FieldClass::Noise)],
                )
            } else if noise_every > 0 && i % noise_every == 0 {
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
            r.config_version = version;
            StoreItem::Comparison(Box::new(r))
        })
        .collect()
}

async fn verdict_of(
    store: &DiffAndHistoryStore,
    route: &str,
    since_ms: Option<i64>,
    min_config_version: Option<i64>,
) -> VerdictSummary {
    report::verdict(
        store,
        VerdictScope {
            route,
            source: crate::record::Source::Shadow,
            since_ms,
            min_config_version,
        },
        &threshold(),
    )
    .await
    .unwrap_or_else(|e| panic!("{route} since {since_ms:?} from v{min_config_version:?}: {e}"))
}

/// The cheap verdict from `since_ms` (all versions) is the full report's.
async fn assert_same_as_report(name: &str, store: &DiffAndHistoryStore, since_ms: i64, now: i64) {
    let cheap = verdict_of(store, "orders", Some(since_ms), None).await;
    let thresholds = HashMap::from([("orders".to_string(), threshold())]);
    let filter = report::ReportFilter {
        route: Some("orders".into()),
        tenant: None,
        since_ms,
        until_ms: now + 1,
        ..Default::default()
    };
    let full = report::build(store, &filter, &thresholds, Default::default(), now)
        .await
        .unwrap();
    let (compared, real_diffs, verdict, reason) = match full.routes.first() {
        Some(r) => (
            r.compared,
            r.real_diffs,
            r.verdict,
            r.verdict_reason.clone(),
        ),
        // The report leaves out a route without comparisons.
        None => {
            let (v, why) = report::route_verdict(0, 0, &threshold());
            (0, 0, v, why)
        }
    };
    assert_eq!(
        cheap,
        VerdictSummary {
            compared,
            real_diffs,
            verdict,
            reason
        },
        "{name}: from {since_ms}"
    );
}

#[tokio::test]
async fn scoping_by_config_version_leaves_the_old_version_s_diffs_behind() {
    for (name, store, _dir) in both("verdict_version").await {
        // Version 1, minutes 0-1: 100 comparisons, 20 real diffs (each also
        // differing in noise) and 7 noise-only ones: 20% real, not ready.
        let mut items = vec![id_is_noise("orders")];
        items.extend(comparisons("a", 1, T0, 100, 5, 12));
        // Another route's diffs are not this route's.
        items.push(StoreItem::Comparison(Box::new(record(
            "u1",
            "users",
            T0,
            Verdict::Diff,
            &[("status", FieldClass::Real)],
        ))));
        store
            .write(&items)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let old = verdict_of(&store, "orders", None, None).await;
        assert_eq!((old.compared, old.real_diffs), (100, 20), "{name}: {old:?}");
        assert_eq!(old.verdict, RouteVerdict::NotReady, "{name}: {old:?}");

        // Version 2 from minute 5: 60 comparisons, 5 of them noise only.
        let v2 = T0 + 5 * MINUTE;
        store
            .write(&comparisons("b", 2, v2, 60, 0, 12))
            .await
            .unwrap();
        let all = verdict_of(&store, "orders", None, None).await;
        assert_eq!((all.compared, all.real_diffs), (160, 20), "{name}: {all:?}");
        assert_eq!(all.verdict, RouteVerdict::NotReady, "{name}: {all:?}");
        let from_v1 = verdict_of(&store, "orders", None, Some(1)).await;
        assert_eq!(from_v1, all, "{name}: every version is >= 1");
        // The new version alone is clean, but 60 are fewer than 100.
        let new = verdict_of(&store, "orders", None, Some(2)).await;
        assert_eq!((new.compared, new.real_diffs), (60, 0), "{name}: {new:?}");
        assert_eq!(new.verdict, RouteVerdict::NotEnoughData, "{name}: {new:?}");
        assert!(new.reason.contains("40 more"), "{name}: {}", new.reason);

        // 60 more at version 2: 120 clean comparisons read ready, while
        // the whole history is still held back by version 1.
        store
            .write(&comparisons("c", 2, v2 + 2 * MINUTE, 60, 0, 0))
            .await
            .unwrap();
        let new = verdict_of(&store, "orders", None, Some(2)).await;
        assert_eq!((new.compared, new.real_diffs), (120, 0), "{name}: {new:?}");
        assert_eq!(new.verdict, RouteVerdict::Ready, "{name}: {new:?}");
        assert!(
            new.reason.contains("under the 5.00%"),
            "{name}: {}",
            new.reason
        );
        let all = verdict_of(&store, "orders", None, None).await;
        assert_eq!((all.compared, all.real_diffs), (220, 20), "{name}: {all:?}");
        assert_eq!(all.verdict, RouteVerdict::NotReady, "{name}: {all:?}");

        // No comparisons at a version not yet deployed, nor on a route
        // never shadowed.
        for v in [
            verdict_of(&store, "orders", None, Some(3)).await,
            verdict_of(&store, "nowhere", None, None).await,
        ] {
            assert_eq!((v.compared, v.real_diffs), (0, 0), "{name}: {v:?}");
            assert_eq!(v.verdict, RouteVerdict::NotEnoughData, "{name}: {v:?}");
        }
        // Both scopes at once.
        let both_scopes = verdict_of(&store, "orders", Some(v2 + 2 * MINUTE), Some(2)).await;
        assert_eq!(both_scopes.compared, 60, "{name}: {both_scopes:?}");

        assert_same_as_report(&name, &store, T0 - 3_600_000, T0 + 10 * MINUTE).await;
    }
}

#[tokio::test]
async fn scoping_by_time_reads_whole_minutes_like_the_report() {
    for (name, store, _dir) in both("verdict_since").await {
        // Minute 0: 50 comparisons, 25 real diffs. Minute 3: 50, of which
        // the first (in the minute's first second) is a real diff; 4
        // noise-only. Minutes 4-5: 100 matches.
        let mut items = vec![id_is_noise("orders")];
        items.extend(comparisons("a", 1, T0, 50, 2, 0));
        items.extend(comparisons("b", 1, T0 + 3 * MINUTE, 50, 1000, 10));
        items.extend(comparisons("c", 1, T0 + 4 * MINUTE, 100, 0, 0));
        store
            .write(&items)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let now = T0 + 6 * MINUTE;

        let all = verdict_of(&store, "orders", Some(T0), None).await;
        assert_eq!((all.compared, all.real_diffs), (200, 26), "{name}: {all:?}");
        assert_eq!(all.verdict, RouteVerdict::NotReady, "{name}: {all:?}");
        // From minute 3: minute 0's diffs are behind.
        let later = verdict_of(&store, "orders", Some(T0 + 3 * MINUTE), None).await;
        assert_eq!(
            (later.compared, later.real_diffs),
            (150, 1),
            "{name}: {later:?}"
        );
        // From the middle of minute 3: the minute is counted whole, its
        // first-second diff with it, as the report does.
        let mid = verdict_of(&store, "orders", Some(T0 + 3 * MINUTE + 30_000), None).await;
        assert_eq!(mid, later, "{name}");
        // From minute 4: only matches.
        let clean = verdict_of(&store, "orders", Some(T0 + 4 * MINUTE), None).await;
        assert_eq!(
            (clean.compared, clean.real_diffs),
            (100, 0),
            "{name}: {clean:?}"
        );
        assert_eq!(clean.verdict, RouteVerdict::Ready, "{name}: {clean:?}");
        // After the last comparison: nothing.
        let none = verdict_of(&store, "orders", Some(now), None).await;
        assert_eq!(none.compared, 0, "{name}: {none:?}");
        assert_eq!(
            none.verdict,
            RouteVerdict::NotEnoughData,
            "{name}: {none:?}"
        );

        for since in [
            T0 - 3_600_000,
            T0,
            T0 + 30_000,
            T0 + 3 * MINUTE,
            T0 + 3 * MINUTE + 30_000,
            T0 + 4 * MINUTE,
            now,
        ] {
            assert_same_as_report(&name, &store, since, now).await;
        }
    }
}

#[tokio::test]
async fn noise_is_classed_with_the_route_s_current_model() {
    for (name, store, _dir) in both("verdict_noise").await {
        // 100 comparisons, 10 of them differing only in `/id`, before
        // anything is known of its noise: real diffs, not ready.
        store
            .write(&comparisons("a", 1, T0, 100, 0, 10))
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let before = verdict_of(&store, "orders", None, None).await;
        assert_eq!(before.real_diffs, 10, "{name}: {before:?}");
        assert_eq!(before.verdict, RouteVerdict::NotReady, "{name}: {before:?}");
        assert_same_as_report(&name, &store, T0, T0 + MINUTE).await;
        // Legacy pairs show `/id` to be noise: the same stored diffs are
        // now noise only, in the verdict as in the report.
        store.write(&[id_is_noise("orders")]).await.unwrap();
        let after = verdict_of(&store, "orders", None, None).await;
        assert_eq!(
            (after.compared, after.real_diffs),
            (100, 0),
            "{name}: {after:?}"
        );
        assert_eq!(after.verdict, RouteVerdict::Ready, "{name}: {after:?}");
        assert_same_as_report(&name, &store, T0, T0 + MINUTE).await;
        // The route's model alone is the one all routes' models hold.
        assert_eq!(
            store.noise_model("orders").await.unwrap(),
            store.noise_models().await.unwrap()["orders"],
            "{name}"
        );
        assert!(store.noise_model("nowhere").await.unwrap().is_empty());
    }
}
