//! Configuration history, audit and fleet changes, in the same store as the
//! diffs (SQLite or PostgreSQL, one sqlx code path). Every applied
//! configuration is a numbered version with who, when, what changed and why;
//! every change asked for is an audit row; canary changes and rollbacks are
//! also fleet changes, which every proxy on the store applies (and is told
//! about by PostgreSQL `NOTIFY`).

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use shadow_diff::DiffAndHistoryStore;
use sqlx::{AnyPool, Row};

use crate::edit::Edit;

/// The PostgreSQL channel on which fleet changes are announced.
pub const CHANGES_CHANNEL: &str = "strangler_changes";

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored edits: {0}")]
    Document(#[from] serde_json::Error),
    #[error("unknown change source {0:?} in the history")]
    UnknownSource(String),
    #[error("unknown rollout state {0:?} in the store")]
    UnknownState(String),
}

/// Where a configuration change came from: a version's `source` and an
/// audit row's `action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeSource {
    /// The file was loaded (at start) or reloaded.
    File,
    /// A canary percentage was set (`strangler canary`, `POST /routes/R/canary`).
    Canary,
    /// A person rolled routes back.
    Rollback,
    /// The automatic guard rolled a route back (or saw a trip with nothing
    /// to roll back).
    Guard,
    /// A recorded version was served again (`strangler rollback --to`).
    Restore,
    /// Another proxy of the fleet made the change; this one applied it.
    Fleet,
    /// A route's rollout took a step (or rolled back on a failed gate), or a
    /// person moved it on with `strangler rollout promote`.
    Rollout,
}

impl ChangeSource {
    pub const ALL: [ChangeSource; 7] = [
        ChangeSource::File,
        ChangeSource::Canary,
        ChangeSource::Rollback,
        ChangeSource::Guard,
        ChangeSource::Restore,
        ChangeSource::Fleet,
        ChangeSource::Rollout,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ChangeSource::File => "file",
            ChangeSource::Canary => "canary",
            ChangeSource::Rollback => "rollback",
            ChangeSource::Guard => "guard",
            ChangeSource::Restore => "restore",
            ChangeSource::Fleet => "fleet",
            ChangeSource::Rollout => "rollout",
        }
    }
}

impl std::fmt::Display for ChangeSource {
    /// Honours width and alignment: `strangler history` prints it in a
    /// column (`{:<8}`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

impl std::str::FromStr for ChangeSource {
    type Err = HistoryError;

    fn from_str(s: &str) -> Result<Self, HistoryError> {
        ChangeSource::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| HistoryError::UnknownSource(s.to_string()))
    }
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// What a new version records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionEntry {
    pub instance: String,
    pub actor: String,
    pub source: ChangeSource,
    pub reason: String,
    /// What changed, in words.
    pub summary: String,
    pub digest: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionRow {
    pub version: i64,
    pub created_at_ms: i64,
    #[serde(flatten)]
    pub entry: VersionEntry,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub instance: String,
    pub actor: String,
    pub action: ChangeSource,
    /// The route(s) or version concerned.
    pub target: String,
    pub reason: String,
    pub detail: String,
    /// `applied`, `rejected: ...`, `applied; file not updated: ...`.
    pub outcome: String,
    pub version: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRow {
    pub id: String,
    pub created_at_ms: i64,
    #[serde(flatten)]
    pub entry: AuditEntry,
}

/// A canary change, rollback or restore for every proxy on the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetChange {
    pub id: i64,
    pub created_at_ms: i64,
    pub instance: String,
    pub actor: String,
    pub version: i64,
    /// The edits to make; none for a restore (see [`FleetChange::restores`]).
    pub edits: Vec<Edit>,
}

impl FleetChange {
    /// A restore (`strangler rollback --to`): every proxy serves the whole
    /// configuration recorded as `version`, rather than editing its own.
    /// Recorded by [`History::record_restore`] as a change with no edits,
    /// which no edit-based change ever is.
    pub fn restores(&self) -> bool {
        self.edits.is_empty()
    }
}

#[derive(Debug, Clone)]
pub struct History {
    pool: AnyPool,
    postgres: bool,
}

impl History {
    /// Uses the store's pool and brings the history tables up to date.
    pub async fn open(store: &DiffAndHistoryStore) -> Result<History, HistoryError> {
        let mut migrator = sqlx::migrate!("./migrations");
        // The diff tables' migrations share the bookkeeping table.
        migrator.set_ignore_missing(true);
        migrator.run(store.pool()).await?;
        Ok(History {
            pool: store.pool().clone(),
            postgres: store.dialect == shadow_diff::store::Dialect::Postgres,
        })
    }

    pub fn is_postgres(&self) -> bool {
        self.postgres
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Records a version; its number is one more than the highest so far
    /// (retried if another proxy took it at the same moment).
    pub async fn record_version(
        &self,
        e: &VersionEntry,
        config: &str,
    ) -> Result<i64, HistoryError> {
        let mut last_error = None;
        for _ in 0..10 {
            let result = sqlx::query(
                "INSERT INTO config_history (version, created_at, instance, actor, source, reason, summary, digest, config) \
                 SELECT COALESCE(MAX(version), 0) + 1, $1, $2, $3, $4, $5, $6, $7, $8 FROM config_history RETURNING version",
            )
            .bind(now_ms())
            .bind(e.instance.as_str())
            .bind(e.actor.as_str())
            .bind(e.source.as_str())
            .bind(e.reason.as_str())
            .bind(e.summary.as_str())
            .bind(e.digest.as_str())
            .bind(config)
            .fetch_one(&self.pool)
            .await;
            match result {
                Ok(row) => return Ok(row.try_get::<i64, _>(0)?),
                Err(sqlx::Error::Database(d)) if d.is_unique_violation() => {
                    last_error = Some(sqlx::Error::Database(d));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(last_error.expect("a failed attempt").into())
    }

    /// The newest version with this digest, if any.
    pub async fn version_with_digest(&self, digest: &str) -> Result<Option<i64>, HistoryError> {
        let row = sqlx::query("SELECT MAX(version) FROM config_history WHERE digest = $1")
            .bind(digest)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<Option<i64>, _>(0)?)
    }

    pub async fn latest_version(&self) -> Result<Option<i64>, HistoryError> {
        let row = sqlx::query("SELECT MAX(version) FROM config_history")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<Option<i64>, _>(0)?)
    }

    /// Newest first.
    pub async fn versions(&self, limit: i64) -> Result<Vec<VersionRow>, HistoryError> {
        let rows = sqlx::query(
            "SELECT version, created_at, instance, actor, source, reason, summary, digest FROM config_history \
             ORDER BY version DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(VersionRow {
                    version: r.try_get(0)?,
                    created_at_ms: r.try_get(1)?,
                    entry: VersionEntry {
                        instance: r.try_get(2)?,
                        actor: r.try_get(3)?,
                        source: r.try_get::<String, _>(4)?.parse()?,
                        reason: r.try_get(5)?,
                        summary: r.try_get(6)?,
                        digest: r.try_get(7)?,
                    },
                })
            })
            .collect()
    }

    /// The configuration text of a version.
    pub async fn config_of(&self, version: i64) -> Result<Option<String>, HistoryError> {
        let row = sqlx::query("SELECT config FROM config_history WHERE version = $1")
            .bind(version)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => Some(r.try_get(0)?),
            None => None,
        })
    }

    pub async fn audit(&self, e: &AuditEntry) -> Result<(), HistoryError> {
        let id = format!("{:x}-{:x}", now_ms(), rand_u64());
        sqlx::query(
            "INSERT INTO audit_log (id, created_at, instance, actor, action, target, reason, detail, outcome, version) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(id)
        .bind(now_ms())
        .bind(e.instance.as_str())
        .bind(e.actor.as_str())
        .bind(e.action.as_str())
        .bind(e.target.as_str())
        .bind(e.reason.as_str())
        .bind(e.detail.as_str())
        .bind(e.outcome.as_str())
        .bind(e.version)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Newest first.
    pub async fn audit_rows(&self, limit: i64) -> Result<Vec<AuditRow>, HistoryError> {
        let rows = sqlx::query(
            "SELECT id, created_at, instance, actor, action, target, reason, detail, outcome, version FROM audit_log \
             ORDER BY created_at DESC, id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AuditRow {
                    id: r.try_get(0)?,
                    created_at_ms: r.try_get(1)?,
                    entry: AuditEntry {
                        instance: r.try_get(2)?,
                        actor: r.try_get(3)?,
                        action: r.try_get::<String, _>(4)?.parse()?,
                        target: r.try_get(5)?,
                        reason: r.try_get(6)?,
                        detail: r.try_get(7)?,
                        outcome: r.try_get(8)?,
                        version: r.try_get(9)?,
                    },
                })
            })
            .collect()
    }

    /// Records a fleet change and announces it (PostgreSQL `NOTIFY`).
    pub async fn record_change(
        &self,
        instance: &str,
        actor: &str,
        version: i64,
        edits: &[Edit],
    ) -> Result<i64, HistoryError> {
        let edits_json = serde_json::to_string(edits)?;
        let mut last_error = None;
        for _ in 0..10 {
            let result = sqlx::query(
                "INSERT INTO fleet_changes (id, created_at, instance, actor, version, edits) \
                 SELECT COALESCE(MAX(id), 0) + 1, $1, $2, $3, $4, $5 FROM fleet_changes RETURNING id",
            )
            .bind(now_ms())
            .bind(instance)
            .bind(actor)
            .bind(version)
            .bind(edits_json.as_str())
            .fetch_one(&self.pool)
            .await;
            match result {
                Ok(row) => {
                    let id: i64 = row.try_get(0)?;
                    if self.postgres {
                        sqlx::query("SELECT pg_notify($1, $2)")
                            .bind(CHANGES_CHANNEL)
                            .bind(id.to_string())
                            .execute(&self.pool)
                            .await?;
                    }
                    return Ok(id);
                }
                Err(sqlx::Error::Database(d)) if d.is_unique_violation() => {
                    last_error = Some(sqlx::Error::Database(d));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(last_error.expect("a failed attempt").into())
    }

    /// Records a restore of the configuration recorded as `version`, for
    /// every proxy on the store, and announces it.
    pub async fn record_restore(
        &self,
        instance: &str,
        actor: &str,
        version: i64,
    ) -> Result<i64, HistoryError> {
        self.record_change(instance, actor, version, &[]).await
    }

    /// Fleet changes with an id above `after_id` or made after `since_ms`,
    /// oldest first.
    pub async fn changes(
        &self,
        after_id: i64,
        since_ms: i64,
    ) -> Result<Vec<FleetChange>, HistoryError> {
        let rows = sqlx::query(
            "SELECT id, created_at, instance, actor, version, edits FROM fleet_changes \
             WHERE id > $1 AND created_at > $2 ORDER BY id",
        )
        .bind(after_id)
        .bind(since_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(FleetChange {
                    id: r.try_get(0)?,
                    created_at_ms: r.try_get(1)?,
                    instance: r.try_get(2)?,
                    actor: r.try_get(3)?,
                    version: r.try_get(4)?,
                    edits: serde_json::from_str(&r.try_get::<String, _>(5)?)?,
                })
            })
            .collect()
    }

    pub async fn last_change_id(&self) -> Result<i64, HistoryError> {
        let row = sqlx::query("SELECT MAX(id) FROM fleet_changes")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<Option<i64>, _>(0)?.unwrap_or(0))
    }
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::Instant::now().elapsed().as_nanos());
    h.finish()
}

#[cfg(test)]
mod tests;
