//! History on SQLite and on the PostgreSQL server of this machine.

use super::*;
use shadow_diff::store::testing::fresh_postgres_url;

async fn both(tag: &str) -> Vec<(String, History, Option<std::path::PathBuf>)> {
    let dir = std::env::temp_dir().join(format!("rollback-history-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sqlite = DiffAndHistoryStore::connect(&format!("sqlite://{}/h.db", dir.display()))
        .await
        .unwrap();
    let pg = DiffAndHistoryStore::connect(&fresh_postgres_url(tag).await)
        .await
        .unwrap();
    vec![
        (
            "sqlite".into(),
            History::open(&sqlite).await.unwrap(),
            Some(dir),
        ),
        ("postgres".into(), History::open(&pg).await.unwrap(), None),
    ]
}

fn entry(source: ChangeSource, digest: &str) -> VersionEntry {
    VersionEntry {
        instance: "test:1".into(),
        actor: "alice".into(),
        source,
        reason: "because".into(),
        summary: "orders: canary 0".into(),
        digest: digest.into(),
    }
}

#[tokio::test]
async fn versions_are_numbered_and_kept() {
    for (name, h, dir) in both("versions").await {
        assert_eq!(h.latest_version().await.unwrap(), None);
        let v1 = h
            .record_version(&entry(ChangeSource::File, "d1"), "text one")
            .await
            .unwrap();
        let v2 = h
            .record_version(&entry(ChangeSource::Rollback, "d2"), "text two")
            .await
            .unwrap();
        assert_eq!((v1, v2), (1, 2), "{name}");
        assert_eq!(h.version_with_digest("d1").await.unwrap(), Some(1));
        assert_eq!(h.version_with_digest("nope").await.unwrap(), None);
        assert_eq!(h.config_of(2).await.unwrap().as_deref(), Some("text two"));
        let rows = h.versions(10).await.unwrap();
        assert_eq!(
            rows.iter().map(|r| r.version).collect::<Vec<_>>(),
            vec![2, 1]
        );
        assert_eq!(rows[0].entry.source, ChangeSource::Rollback);
        // The diff store's own migrations run again without complaint.
        if let Some(d) = dir {
            DiffAndHistoryStore::connect(&format!("sqlite://{}/h.db", d.display()))
                .await
                .unwrap();
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

#[tokio::test]
async fn concurrent_versions_get_distinct_numbers() {
    for (name, h, dir) in both("concurrent").await {
        let mut tasks = Vec::new();
        for i in 0..8 {
            let h = h.clone();
            tasks.push(tokio::spawn(async move {
                h.record_version(&entry(ChangeSource::File, &format!("d{i}")), "t")
                    .await
                    .unwrap()
            }));
        }
        let mut got: Vec<i64> = Vec::new();
        for t in tasks {
            got.push(t.await.unwrap());
        }
        got.sort_unstable();
        assert_eq!(got, (1..=8).collect::<Vec<_>>(), "{name}");
        if let Some(d) = dir {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

#[tokio::test]
async fn audit_and_fleet_changes() {
    for (name, h, dir) in both("audit").await {
        h.audit(&AuditEntry {
            instance: "test:1".into(),
            actor: "bob".into(),
            action: ChangeSource::Rollback,
            target: "orders".into(),
            reason: "errors".into(),
            detail: "canary 25 -> 0".into(),
            outcome: "applied".into(),
            version: Some(3),
        })
        .await
        .unwrap();
        let rows = h.audit_rows(10).await.unwrap();
        assert_eq!(rows.len(), 1, "{name}");
        assert_eq!(rows[0].entry.actor, "bob");
        assert_eq!(rows[0].entry.version, Some(3));

        let edits = vec![Edit::SetCanary {
            route: "orders".into(),
            percent: "0".into(),
        }];
        let id = h.record_change("test:1", "bob", 3, &edits).await.unwrap();
        assert_eq!(id, 1);
        let changes = h.changes(0, 0).await.unwrap();
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].edits, edits);
        assert!(h.changes(1, 0).await.unwrap().is_empty());
        assert!(h.changes(0, now_ms() + 1000).await.unwrap().is_empty());
        assert_eq!(h.last_change_id().await.unwrap(), 1);
        if let Some(d) = dir {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

#[test]
fn a_source_fills_its_column() {
    // `strangler history` lines its table up with `{:<8}`.
    assert_eq!(format!("{:<8}|", ChangeSource::File), "file    |");
    assert_eq!(format!("{:<8}|", ChangeSource::Rollback), "rollback|");
    for source in ChangeSource::ALL {
        assert_eq!(source.to_string().parse::<ChangeSource>().unwrap(), source);
    }
}
