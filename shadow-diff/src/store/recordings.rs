//! The queries on recorded traffic and replay runs: recordings written in
//! the writer's batches, read back page by page in recorded order for a
//! replay, pruned with the diffs; replay runs written as they progress and
//! listed for the report.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{DiffAndHistoryStore, Filter, StoreError};
use crate::recording::{Recording, ReplayRun, RunState};

/// Which recordings a replay reads: one route's, made at or after
/// `since_ms`, after the last one of the previous page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingPage {
    pub route: String,
    pub since_ms: i64,
    /// `(created_at_ms, id)` of the last recording already read.
    pub after: Option<(i64, String)>,
    pub limit: i64,
}

pub(super) async fn insert(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    r: &Recording,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO recordings (id, created_at, route, config_version, tenant, instance, served_by, method, path, \
         status, latency_ms, request, response, redacted) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) ON CONFLICT (id) DO NOTHING",
    )
    .bind(r.id.as_str())
    .bind(r.created_at_ms)
    .bind(r.route.as_str())
    .bind(r.config_version)
    .bind(r.tenant.clone().unwrap_or_default())
    .bind(r.instance.as_str())
    .bind(r.served_by.as_str())
    .bind(r.method.as_str())
    .bind(r.path.as_str())
    .bind(r.status as i64)
    .bind(r.latency_ms)
    .bind(serde_json::to_string(&r.request)?)
    .bind(serde_json::to_string(&r.response)?)
    .bind(serde_json::to_string(&r.redacted)?)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Deletes recordings made before `cutoff_ms` and beyond the newest
/// `max_rows`.
pub(super) async fn prune(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    cutoff_ms: i64,
    max_rows: i64,
) -> Result<(), StoreError> {
    let mut cutoff = cutoff_ms;
    let row =
        sqlx::query("SELECT created_at FROM recordings ORDER BY created_at DESC LIMIT 1 OFFSET $1")
            .bind(max_rows.max(0))
            .fetch_optional(&mut **tx)
            .await?;
    if let Some(row) = row {
        cutoff = cutoff.max(row.try_get::<i64, _>(0)? + 1);
    }
    sqlx::query("DELETE FROM recordings WHERE created_at < $1")
        .bind(cutoff)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

fn row_to_recording(r: &AnyRow) -> Result<Recording, StoreError> {
    let tenant: String = r.try_get(4)?;
    Ok(Recording {
        id: r.try_get(0)?,
        created_at_ms: r.try_get(1)?,
        route: r.try_get(2)?,
        config_version: r.try_get(3)?,
        tenant: (!tenant.is_empty()).then_some(tenant),
        instance: r.try_get(5)?,
        served_by: r.try_get(6)?,
        method: r.try_get(7)?,
        path: r.try_get(8)?,
        status: r.try_get::<i64, _>(9)? as u16,
        latency_ms: r.try_get(10)?,
        request: serde_json::from_str(&r.try_get::<String, _>(11)?)?,
        response: serde_json::from_str(&r.try_get::<String, _>(12)?)?,
        redacted: serde_json::from_str(&r.try_get::<String, _>(13)?)?,
    })
}

fn row_to_run(r: &AnyRow) -> Result<ReplayRun, StoreError> {
    Ok(ReplayRun {
        id: r.try_get(0)?,
        route: r.try_get(1)?,
        target: r.try_get(2)?,
        started_at_ms: r.try_get(3)?,
        finished_at_ms: r.try_get(4)?,
        since_ms: r.try_get(5)?,
        state: RunState::parse(&r.try_get::<String, _>(6)?).unwrap_or(RunState::Failed),
        counts: serde_json::from_str(&r.try_get::<String, _>(7)?)?,
        message: r.try_get(8)?,
        instance: r.try_get(9)?,
    })
}

impl DiffAndHistoryStore {
    /// One page of a route's recordings, oldest first (ties by id).
    pub async fn recordings(&self, page: &RecordingPage) -> Result<Vec<Recording>, StoreError> {
        let (after_at, after_id) = match &page.after {
            Some((at, id)) => (*at, id.as_str()),
            None => (i64::MIN, ""),
        };
        let sql = format!(
            "SELECT id, created_at, route, config_version, tenant, instance, served_by, method, path, status, \
             latency_ms, request, response, redacted FROM recordings \
             WHERE route = $1 AND created_at >= $2 AND (created_at > $3 OR (created_at = $3 AND id > $4)) \
             ORDER BY created_at, id LIMIT {}",
            page.limit.max(1)
        );
        let rows = sqlx::query(&sql)
            .bind(page.route.as_str())
            .bind(page.since_ms)
            .bind(after_at)
            .bind(after_id)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(row_to_recording).collect()
    }

    /// How many recordings a route has from `since_ms` on.
    pub async fn recording_count(&self, route: &str, since_ms: i64) -> Result<u64, StoreError> {
        let row = sqlx::query(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM recordings WHERE route = $1 AND created_at >= $2",
        )
        .bind(route)
        .bind(since_ms)
        .fetch_one(self.pool())
        .await?;
        Ok(row.try_get::<i64, _>(0)? as u64)
    }

    /// Writes a replay run as it stands (a new run, or one that moved on).
    pub async fn put_replay_run(&self, run: &ReplayRun) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO replay_runs (id, route, target, started_at, finished_at, since_ms, state, counts, message, instance) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (id) DO UPDATE SET \
             finished_at = excluded.finished_at, state = excluded.state, counts = excluded.counts, message = excluded.message",
        )
        .bind(run.id.as_str())
        .bind(run.route.as_str())
        .bind(run.target.as_str())
        .bind(run.started_at_ms)
        .bind(run.finished_at_ms)
        .bind(run.since_ms)
        .bind(run.state.as_str())
        .bind(serde_json::to_string(&run.counts)?)
        .bind(run.message.clone())
        .bind(run.instance.as_str())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Replay runs started at or after `since_ms`, of one route or all,
    /// newest first.
    pub async fn replay_runs(
        &self,
        route: Option<&str>,
        since_ms: i64,
    ) -> Result<Vec<ReplayRun>, StoreError> {
        let mut f = Filter::default();
        if let Some(r) = route {
            f.text("route = ?", r);
        }
        f.int("started_at >= ?", since_ms);
        let sql = format!(
            "SELECT id, route, target, started_at, finished_at, since_ms, state, counts, message, instance \
             FROM replay_runs{} ORDER BY started_at DESC, id",
            f.sql()
        );
        let rows = f.bind(sqlx::query(&sql)).fetch_all(self.pool()).await?;
        rows.iter().map(row_to_run).collect()
    }
}
