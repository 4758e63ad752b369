//! Where each route's rollout stands, kept in the store beside the history:
//! its state, the step (canary percentage) it stands at, since when, and the
//! configuration version the step began at. Every proxy of a fleet reads it
//! (for its metrics and `strangler status`); the one driving the rollouts and
//! the admin API of any proxy write it. A write names the revision it read,
//! so two writers never silently overwrite each other: the second is told
//! and reads again.

use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::history::{History, HistoryError, now_ms};

/// A rollout's state; the `state` label of `strangler_rollout_state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutState {
    /// Configured, not started.
    Idle,
    /// At a step: its pause is running or its gates do not hold yet.
    Waiting,
    /// The next step is being applied.
    Promoting,
    /// Stopped at its step: a gate failed (`on_failure: hold`), a person
    /// paused it, or a person changed the route's canary.
    Held,
    /// A gate failed (`on_failure: rollback`), the guard rolled the route
    /// back, or a person aborted the rollout: the canary is 0.
    RolledBack,
    /// The last step was reached.
    Done,
}

impl RolloutState {
    pub const ALL: [RolloutState; 6] = [
        RolloutState::Idle,
        RolloutState::Waiting,
        RolloutState::Promoting,
        RolloutState::Held,
        RolloutState::RolledBack,
        RolloutState::Done,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RolloutState::Idle => "idle",
            RolloutState::Waiting => "waiting",
            RolloutState::Promoting => "promoting",
            RolloutState::Held => "held",
            RolloutState::RolledBack => "rolled_back",
            RolloutState::Done => "done",
        }
    }

    pub fn parse(text: &str) -> Option<RolloutState> {
        RolloutState::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Whether the rollout moves on by itself from this state.
    pub fn is_running(self) -> bool {
        matches!(self, RolloutState::Waiting | RolloutState::Promoting)
    }
}

impl std::fmt::Display for RolloutState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// One route's rollout as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutRecord {
    pub route: String,
    pub state: RolloutState,
    /// The canary percentage the rollout stands at, as the file writes it.
    pub step: String,
    /// While promoting: the step being applied.
    pub target: Option<String>,
    /// When the current step (or state) began, unix ms.
    pub since_ms: i64,
    /// The configuration version the step began at.
    pub step_version: i64,
    /// Why it is in this state, in words.
    pub reason: String,
    /// Who put it there: a person, or `rollout` for the rollout itself.
    pub actor: String,
    /// The proxy that wrote it (`host:port`), or `cli`.
    pub instance: String,
    /// Bumped by every write.
    pub revision: i64,
    pub updated_ms: i64,
}

const COLUMNS: &str = "route, state, step, target, since, step_version, reason, actor, instance, revision, updated_at";

fn record(r: &sqlx::any::AnyRow) -> Result<RolloutRecord, HistoryError> {
    let state: String = r.try_get(1)?;
    Ok(RolloutRecord {
        route: r.try_get(0)?,
        state: RolloutState::parse(&state).ok_or(HistoryError::UnknownState(state))?,
        step: r.try_get(2)?,
        target: r.try_get(3)?,
        since_ms: r.try_get(4)?,
        step_version: r.try_get(5)?,
        reason: r.try_get(6)?,
        actor: r.try_get(7)?,
        instance: r.try_get(8)?,
        revision: r.try_get(9)?,
        updated_ms: r.try_get(10)?,
    })
}

impl History {
    /// Every stored rollout, by route name.
    pub async fn rollouts(&self) -> Result<Vec<RolloutRecord>, HistoryError> {
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM rollouts ORDER BY route"))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(record).collect()
    }

    pub async fn rollout(&self, route: &str) -> Result<Option<RolloutRecord>, HistoryError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM rollouts WHERE route = $1"))
            .bind(route)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(record).transpose()
    }

    /// Stores `r` if the stored row is still at revision `read` (`None`: if
    /// there is no row yet). Returns the new revision, or `None` when
    /// another writer came first (read again and decide again).
    pub async fn put_rollout(
        &self,
        r: &RolloutRecord,
        read: Option<i64>,
    ) -> Result<Option<i64>, HistoryError> {
        let revision = read.map_or(1, |n| n + 1);
        let now = now_ms();
        let sql = match read {
            None => format!(
                "INSERT INTO rollouts ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                 ON CONFLICT (route) DO NOTHING"
            ),
            Some(_) => "UPDATE rollouts SET state = $2, step = $3, target = $4, since = $5, step_version = $6, \
                 reason = $7, actor = $8, instance = $9, revision = $10, updated_at = $11 \
                 WHERE route = $1 AND revision = $12"
                .to_string(),
        };
        let q = sqlx::query(&sql)
            .bind(r.route.as_str())
            .bind(r.state.as_str())
            .bind(r.step.as_str())
            .bind(r.target.as_deref())
            .bind(r.since_ms)
            .bind(r.step_version)
            .bind(r.reason.as_str())
            .bind(r.actor.as_str())
            .bind(r.instance.as_str())
            .bind(revision)
            .bind(now);
        let q = match read {
            Some(n) => q.bind(n),
            None => q,
        };
        let done = q.execute(self.pool()).await?;
        Ok((done.rows_affected() == 1).then_some(revision))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shadow_diff::DiffAndHistoryStore;
    use shadow_diff::store::testing::fresh_postgres_url;

    fn waiting(route: &str, step: &str) -> RolloutRecord {
        RolloutRecord {
            route: route.into(),
            state: RolloutState::Waiting,
            step: step.into(),
            target: None,
            since_ms: 1_000,
            step_version: 7,
            reason: "started by alice".into(),
            actor: "alice".into(),
            instance: "test:1".into(),
            revision: 0,
            updated_ms: 0,
        }
    }

    #[tokio::test]
    async fn a_write_that_read_an_old_revision_is_refused() {
        let dir = std::env::temp_dir().join(format!("rollouts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let urls = [
            format!("sqlite://{}/r.db", dir.display()),
            fresh_postgres_url("rollouts").await,
        ];
        for url in urls {
            let store = DiffAndHistoryStore::connect(&url).await.unwrap();
            let h = History::open(&store).await.unwrap();
            assert!(h.rollouts().await.unwrap().is_empty(), "{url}");
            assert_eq!(
                h.put_rollout(&waiting("orders", "0"), None).await.unwrap(),
                Some(1)
            );
            // A second first write loses.
            assert_eq!(
                h.put_rollout(&waiting("orders", "5"), None).await.unwrap(),
                None
            );
            let stored = h.rollout("orders").await.unwrap().unwrap();
            assert_eq!((stored.step.as_str(), stored.revision), ("0", 1));
            let promoting = RolloutRecord {
                state: RolloutState::Promoting,
                target: Some("12.5".into()),
                ..stored.clone()
            };
            assert_eq!(h.put_rollout(&promoting, Some(1)).await.unwrap(), Some(2));
            // Someone who read revision 1 is too late now.
            assert_eq!(h.put_rollout(&stored, Some(1)).await.unwrap(), None);
            let now = h.rollout("orders").await.unwrap().unwrap();
            assert_eq!(now.state, RolloutState::Promoting);
            assert_eq!(now.target.as_deref(), Some("12.5"));
            assert_eq!(now.revision, 2);
            assert!(now.updated_ms > 0);
            assert_eq!(h.rollout("users").await.unwrap(), None);
            assert_eq!(h.rollouts().await.unwrap().len(), 1);
        }
    }

    #[test]
    fn states_round_trip_through_their_labels() {
        for s in RolloutState::ALL {
            assert_eq!(RolloutState::parse(s.as_str()), Some(s));
        }
        assert_eq!(RolloutState::parse("paused"), None);
        assert!(RolloutState::Waiting.is_running() && !RolloutState::Held.is_running());
    }
}
