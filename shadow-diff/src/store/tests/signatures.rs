//! Real differences grouped by signature, on both dialects: every stored
//! comparison of the window counts (not only a page of examples), noise
//! fields are left out of a signature by today's noise knowledge, a
//! signature's fields are a set (in whatever order they differed), and the
//! report keeps the largest groups, each with its newest comparison, and
//! counts the rest.

use super::*;
use crate::report::Threshold;
use crate::store::report_queries::{RouteWindow, SignatureCount};

const T0: i64 = 1_800_000_000_000;
const MINUTE: i64 = 60_000;

/// `/n` is noise on `orders`: it differed between two legacy answers.
fn n_is_noise() -> StoreItem {
    let mut model = NoiseModel::default();
    model.learn_legacy_pair(&[Difference {
        field: "/n".into(),
        kind: DiffKind::Changed,
        legacy: None,
        new: None,
    }]);
    StoreItem::Noise(NoiseDelta {
        route: "orders".into(),
        model,
    })
}

/// In the window: 6 comparisons differing in `/b`, `/a` and the noise
/// `/n`; 3 in `/a` alone; 1 in `/c`; 2 in `/n` alone (noise only); 4
/// matches. Before it: one more in `/a`.
fn items() -> Vec<StoreItem> {
    let mut items = vec![n_is_noise()];
    let mut at = T0;
    let mut add = |id: String, verdict: Verdict, fields: &[(&str, FieldClass)]| {
        at += 1000;
        items.push(StoreItem::Comparison(Box::new(record(
            &id, "orders", at, verdict, fields,
        ))));
    };
    for i in 0..6 {
        add(
            format!("ab-{i}"),
            Verdict::Diff,
            &[
                ("/b", FieldClass::Real),
                ("/a", FieldClass::Real),
                ("/n", FieldClass::Noise),
            ],
        );
    }
    for i in 0..3 {
        add(format!("a-{i}"), Verdict::Diff, &[("/a", FieldClass::Real)]);
    }
    add("c-0".into(), Verdict::Diff, &[("/c", FieldClass::Real)]);
    for i in 0..2 {
        add(
            format!("n-{i}"),
            Verdict::Noise,
            &[("/n", FieldClass::Noise)],
        );
    }
    for i in 0..4 {
        add(format!("m-{i}"), Verdict::Match, &[]);
    }
    items.push(StoreItem::Comparison(Box::new(record(
        "before",
        "orders",
        T0 - 10 * MINUTE,
        Verdict::Diff,
        &[("/a", FieldClass::Real)],
    ))));
    items
}

fn sig(fields: &[&str], count: u64, newest: &str) -> SignatureCount {
    SignatureCount {
        fields: fields.iter().map(|f| f.to_string()).collect(),
        count,
        newest_id: newest.into(),
    }
}

#[tokio::test]
async fn every_comparison_of_the_window_counts_in_its_signature() {
    for (name, store, _dir) in both("report_signatures").await {
        store
            .write(&items())
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let window = RouteWindow {
            route: "orders",
            source: Source::Shadow,
            tenant: None,
            since_ms: T0,
            until_ms: T0 + 5 * MINUTE,
        };
        let groups = store.signature_counts(window, &["/n"]).await.unwrap();
        assert_eq!(
            groups,
            vec![
                sig(&["/a", "/b"], 6, "ab-5"),
                sig(&["/a"], 3, "a-2"),
                sig(&["/c"], 1, "c-0"),
            ],
            "{name}"
        );
        // Without noise knowledge, `/n` is part of the signature and the
        // noise-only comparisons are a group of their own.
        let raw = store.signature_counts(window, &[]).await.unwrap();
        assert_eq!(raw[0], sig(&["/a", "/b", "/n"], 6, "ab-5"), "{name}");
        assert!(raw.contains(&sig(&["/n"], 2, "n-1")), "{name}: {raw:?}");
        // Another tenant has none.
        let other = RouteWindow {
            tenant: Some("globex"),
            ..window
        };
        assert!(store.signature_counts(other, &[]).await.unwrap().is_empty());

        // The report: the two largest groups, each with its newest
        // comparison in full; the third only counted.
        let filter = report::ReportFilter {
            route: Some("orders".into()),
            since_ms: T0,
            until_ms: T0 + 5 * MINUTE,
            ..Default::default()
        };
        let limits = report::ReportLimits {
            signatures: 2,
            ..Default::default()
        };
        let thresholds = HashMap::from([("orders".to_string(), Threshold::default())]);
        let r = report::build(&store, &filter, &thresholds, limits, T0 + 5 * MINUTE)
            .await
            .unwrap()
            .routes
            .remove(0);
        assert_eq!(
            (r.compared, r.real_diffs, r.noise_only),
            (16, 10, 2),
            "{name}"
        );
        let s = &r.signatures;
        let seen: Vec<(Vec<String>, u64, Option<&str>)> = s
            .groups
            .iter()
            .map(|g| {
                (
                    g.fields.clone(),
                    g.count,
                    g.example.as_ref().map(|e| e.id.as_str()),
                )
            })
            .collect();
        assert_eq!(
            seen,
            vec![
                (vec!["/a".to_string(), "/b".to_string()], 6, Some("ab-5")),
                (vec!["/a".to_string()], 3, Some("a-2")),
            ],
            "{name}"
        );
        assert_eq!((s.more_groups, s.more_comparisons), (1, 1), "{name}");
        // The groups and what is left out are every real diff.
        let grouped: u64 = s.groups.iter().map(|g| g.count).sum::<u64>() + s.more_comparisons;
        assert_eq!(grouped, r.real_diffs, "{name}");
        // The example is the stored comparison itself, noise and all.
        let example = s.groups[0].example.as_ref().unwrap();
        assert_eq!(example.differences.len(), 3, "{name}");
        assert_eq!(example.legacy.status, 200, "{name}");

        let html = report::html::render_route(
            &report::Report {
                report_version: report::REPORT_VERSION,
                generated_at_ms: T0 + 5 * MINUTE,
                filter: filter.clone(),
                routes: vec![r.clone()],
                replay: vec![],
            },
            "orders",
            0,
            "",
            report::Times::Utc,
        )
        .unwrap();
        assert!(
            html.contains(r#"<tr data-signature="/a + /b" data-count="6"><td><code>/a</code> + <code>/b</code></td><td class="num">6</td><td class="num">60.00%</td>"#),
            "{name}: {html}"
        );
        assert!(
            html.contains("And 1 more signature (1 comparison), not shown."),
            "{name}"
        );
        assert!(html.contains(r#"id="sig-route-orders-1""#), "{name}");
    }
}

#[tokio::test]
async fn diffs_are_read_by_id() {
    for (name, store, _dir) in both("report_diffs_by_id").await {
        store.write(&items()).await.unwrap();
        let read = store.diffs_by_id(&["a-0", "ab-3", "nope"]).await.unwrap();
        let ids: Vec<&str> = read.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(
            ids,
            ["a-0", "ab-3"],
            "{name}: newest first, unknown left out"
        );
        assert!(store.diffs_by_id(&[]).await.unwrap().is_empty());
    }
}
