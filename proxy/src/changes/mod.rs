//! Every change of the served configuration, from whoever asks: a reload
//! of the file, a canary change, a rollback (by a person or by the guard), a
//! restore of a recorded version, and the same changes made by another proxy
//! of the fleet. The folder reads in the order a change goes through:
//!
//! - [`plan`]: what a request amounts to, as edits of the file's text; pure,
//!   and shared by the admin API, the guard and the CLI;
//! - [`apply`]: [`Changes`], which owns the change state (one change at a
//!   time, the overrides, the fleet position) and applies a change: live
//!   first (through [`crate::live::Live::install`]), then the file
//!   ([`file`]), then the records;
//! - [`record`]: the one place a change is recorded: its version number,
//!   the fleet change other proxies apply, the audit row;
//! - [`reload`]: the file read again (file watcher, SIGHUP, `POST /reload`);
//! - [`fleet`]: catching up with, and following, other proxies' changes.
//!
//! The guard ([`crate::guard`]) only judges; when it trips it asks for a
//! rollback here like a person would, with trigger `auto`. The `rollback`
//! crate supplies the mechanics (format-preserving edits, atomic writes, the
//! history tables) and knows nothing of the proxy.

pub mod apply;
pub mod file;
pub mod fleet;
pub mod plan;
pub mod record;
pub mod reload;

use rollback::edit::EditError;
use rollback::history::ChangeSource;
use serde::Serialize;

use crate::config::{ConfigErrors, Percent};
use crate::metrics::RollbackTrigger;

pub use apply::Changes;
pub use plan::plan;

/// What a person (or the guard) asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum ChangeRequest {
    Canary {
        route: String,
        percent: Percent,
    },
    /// All traffic of these routes to legacy: canary 0 and every pin on
    /// `new` moved to `legacy`; with a tenant, only that tenant's pin.
    Rollback {
        routes: Vec<String>,
        tenant: Option<String>,
    },
}

impl ChangeRequest {
    /// The routes the request names.
    pub fn routes(&self) -> Vec<String> {
        match self {
            ChangeRequest::Canary { route, .. } => vec![route.clone()],
            ChangeRequest::Rollback { routes, .. } => routes.clone(),
        }
    }

    /// Where the change comes from, for the history and the audit log.
    pub fn source(&self, by: Initiator) -> ChangeSource {
        match (self, by) {
            (_, Initiator::Rollout) => ChangeSource::Rollout,
            (ChangeRequest::Canary { .. }, _) => ChangeSource::Canary,
            (ChangeRequest::Rollback { .. }, Initiator::Person) => ChangeSource::Rollback,
            (ChangeRequest::Rollback { .. }, Initiator::Guard) => ChangeSource::Guard,
        }
    }
}

/// Which part of Strangler a change comes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Initiator {
    /// A person: the CLI or the admin API.
    Person,
    /// The automatic guard.
    Guard,
    /// A route's rollout: a step, a rollback on a failed gate, or a
    /// person's `strangler rollout promote` (the actor says who).
    Rollout,
}

impl Initiator {
    /// The `trigger` label of `strangler_rollbacks_total`.
    pub fn trigger(self) -> RollbackTrigger {
        match self {
            Initiator::Person => RollbackTrigger::Manual,
            Initiator::Guard | Initiator::Rollout => RollbackTrigger::Auto,
        }
    }
}

/// Who asked, why, and through what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requester {
    pub actor: String,
    pub reason: String,
    pub by: Initiator,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", content = "detail", rename_all = "snake_case")]
pub enum FileOutcome {
    /// The file now holds the change.
    Written,
    /// There was nothing to write (the change changed nothing).
    Unchanged,
    /// The change is live but not in the file; the reason says why.
    NotWritten(String),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChangeOutcome {
    pub version: u64,
    pub changed: bool,
    pub edits: Vec<String>,
    pub routes: Vec<String>,
    pub file: FileOutcome,
    pub applied_at_ms: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    #[error("no route named {0:?}")]
    UnknownRoute(String),
    #[error("cannot edit the configuration: {0}")]
    Edit(#[from] EditError),
    #[error("the changed configuration is not valid: {0}")]
    Invalid(ConfigErrors),
    #[error("version {0} is not in the history")]
    NoSuchVersion(i64),
    #[error("the history store is not available: {0}")]
    NoHistory(String),
}

/// Who made a change and why; recorded with its version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeMeta {
    pub actor: String,
    pub source: ChangeSource,
    pub reason: String,
    /// What changed, in words.
    pub summary: String,
}

/// Edits in words, as a version's summary and an audit row's detail show
/// them.
pub fn describe(edits: &[rollback::edit::Edit]) -> String {
    edits
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

fn now_ms() -> i64 {
    rollback::history::now_ms()
}
