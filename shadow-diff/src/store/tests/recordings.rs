//! Recordings and replay runs on both dialects, and replayed comparisons
//! kept apart from live ones in every count a report or a verdict reads.

use super::*;
use crate::recording::{
    RecordedBody, RecordedMessage, Recording, RedactedPlace, ReplayRun, RunCounts, RunState,
};
use crate::report::VerdictScope;
use crate::store::recordings::RecordingPage;

const T0: i64 = 1_800_000_000_000;

fn recording(id: &str, at: i64) -> Recording {
    Recording {
        id: id.into(),
        created_at_ms: at,
        route: "orders".into(),
        config_version: 2,
        tenant: Some("acme".into()),
        instance: "test".into(),
        served_by: "legacy".into(),
        method: "POST".into(),
        path: "/api/orders?x=1".into(),
        request: RecordedMessage {
            headers: vec![("authorization".into(), "[redacted]".into())],
            body: RecordedBody::of(&[0, 1, 2, 255]),
        },
        status: 201,
        response: RecordedMessage {
            headers: vec![("content-type".into(), "application/json".into())],
            body: RecordedBody::of(br#"{"id": 7}"#),
        },
        latency_ms: 1.5,
        redacted: vec![RedactedPlace::Header("authorization".into())],
    }
}

#[tokio::test]
async fn recordings_are_read_back_in_order_page_by_page_and_pruned() {
    for (name, store, _dir) in both("recordings").await {
        // Two in the same millisecond: the page boundary falls between them.
        let items: Vec<StoreItem> = [("b", T0), ("a", T0 + 5), ("c", T0 + 5), ("d", T0 + 9)]
            .iter()
            .map(|(id, at)| StoreItem::Recording(Box::new(recording(id, *at))))
            .collect();
        store.write(&items).await.unwrap();
        let mut page = RecordingPage {
            route: "orders".into(),
            since_ms: T0,
            after: None,
            limit: 2,
        };
        let mut seen = Vec::new();
        loop {
            let got = store.recordings(&page).await.unwrap();
            let Some(last) = got.last() else { break };
            page.after = Some((last.created_at_ms, last.id.clone()));
            seen.extend(got);
        }
        let ids: Vec<&str> = seen.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["b", "a", "c", "d"], "{name}");
        assert_eq!(seen[0], recording("b", T0), "{name}: read back whole");
        assert_eq!(seen[0].request.body.bytes(), [0, 1, 2, 255], "{name}");
        assert_eq!(store.recording_count("orders", T0 + 1).await.unwrap(), 3);
        // Retention: older than the cutoff goes.
        store.prune(T0 + 6 + 1000, 1000, 1_000_000).await.unwrap();
        assert_eq!(
            store.recording_count("orders", 0).await.unwrap(),
            1,
            "{name}"
        );
    }
}

#[tokio::test]
async fn replay_runs_are_kept_as_they_move_on() {
    for (name, store, _dir) in both("replay_runs").await {
        let mut run = ReplayRun {
            id: "run-1".into(),
            route: "orders".into(),
            target: "orders-v2".into(),
            started_at_ms: T0,
            finished_at_ms: None,
            since_ms: T0 - 86_400_000,
            state: RunState::Running,
            counts: RunCounts::default(),
            message: None,
            instance: "test".into(),
        };
        store.put_replay_run(&run).await.unwrap();
        run.state = RunState::Done;
        run.finished_at_ms = Some(T0 + 500);
        run.counts.read = 10;
        run.counts.matched = 9;
        run.counts.diff = 1;
        store.put_replay_run(&run).await.unwrap();
        let runs = store.replay_runs(Some("orders"), T0 - 1).await.unwrap();
        assert_eq!(runs, vec![run.clone()], "{name}");
        assert!(
            store
                .replay_runs(Some("other"), 0)
                .await
                .unwrap()
                .is_empty()
        );
    }
}

#[tokio::test]
async fn replayed_comparisons_are_counted_apart_from_live_ones() {
    for (name, store, _dir) in both("sources").await {
        let mut replayed = record(
            "r1",
            "orders",
            T0,
            Verdict::Diff,
            &[("/total", FieldClass::Real)],
        );
        replayed.source = Source::Replay;
        let live = record("s1", "orders", T0, Verdict::Match, &[]);
        store
            .write(&[
                StoreItem::Comparison(Box::new(replayed)),
                StoreItem::Comparison(Box::new(live)),
            ])
            .await
            .unwrap();
        for (source, compared, real) in [(Source::Shadow, 1, 0), (Source::Replay, 1, 1)] {
            let scope = VerdictScope {
                route: "orders",
                source,
                since_ms: None,
                min_config_version: None,
            };
            assert_eq!(
                store.compared_count(scope).await.unwrap(),
                compared,
                "{name}"
            );
            assert_eq!(
                store.real_diff_count(scope, &[]).await.unwrap(),
                real,
                "{name}"
            );
        }
        let diffs = store
            .diffs(&DiffQuery {
                source: Some(Source::Replay),
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(diffs.len(), 1, "{name}");
        assert_eq!(diffs[0].source, Source::Replay, "{name}");
        let shadow_rows = store
            .counts(Source::Shadow, None, None, None)
            .await
            .unwrap();
        assert_eq!(shadow_rows.len(), 1, "{name}");
        assert_eq!(shadow_rows[0].verdict, Verdict::Match, "{name}");
    }
}
