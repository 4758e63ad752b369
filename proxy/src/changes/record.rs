//! The one place a change is recorded, for the proxy and the CLI alike: the
//! version number a configuration gets (reusing a recorded one where the
//! fleet must agree on it), the fleet change that other proxies on the store
//! apply, and the audit row. [`Recorder`] calls the history store from
//! blocking code through a runtime handle, each call bounded, so a store
//! that hangs delays a change by seconds at most and never fails it: a
//! change that cannot be recorded is applied and the loss logged.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use log::{info, warn};
use rollback::edit::Edit;
use rollback::history::{
    AuditEntry, ChangeSource, FleetChange, History, HistoryError, VersionEntry,
};

use super::{ChangeError, ChangeMeta};

/// How long one call to the history store may take.
const STORE_CALL_TIMEOUT: Duration = Duration::from_secs(3);

/// Whether a configuration may keep the number of an identical recorded
/// one, rather than get a new number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reuse {
    /// The file a proxy starts with, or a fleet change applied here with
    /// the same result: a version already recorded keeps its number.
    Always,
    /// A reloaded file that another proxy of the fleet loaded first keeps
    /// that number only if it is newer than what is served here: a file
    /// reverted to an older text is a new version.
    IfNewer,
    /// Any other change made while running is a new version.
    Never,
}

/// What other proxies of the fleet are to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FleetRecord {
    /// Make the same edits on their own configuration.
    Edits(Vec<Edit>),
    /// Serve the whole configuration recorded as the change's version.
    Restore,
}

/// What a change leaves in the store besides its version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeRecord {
    pub source: ChangeSource,
    pub actor: String,
    pub reason: String,
    /// The route(s) or version concerned.
    pub target: String,
    pub detail: String,
    /// `applied`, `rejected: ...`, `applied; file not updated: ...`.
    pub outcome: String,
    pub version: Option<i64>,
    /// `None` for what other proxies do not repeat (a rejected change, a
    /// fleet change applied here, a guard observation).
    pub fleet: Option<FleetRecord>,
}

/// What could not be recorded (each `None` when there was nothing to do or
/// no store).
#[derive(Debug, Default)]
pub struct Recorded {
    pub fleet: Option<Result<i64, String>>,
    pub audit: Option<Result<(), String>>,
}

#[derive(Debug, Clone)]
struct StoreLink {
    history: History,
    runtime: tokio::runtime::Handle,
}

/// Records changes of one proxy (or of the CLI) in the history store.
#[derive(Debug)]
pub struct Recorder {
    /// This proxy in history records (`host:port`), or `cli`.
    instance: String,
    link: Mutex<Option<StoreLink>>,
    /// The highest version number given here, for numbering without a store.
    last_version: AtomicU64,
}

impl Recorder {
    /// A recorder with no store yet: versions are numbered locally from 1.
    pub fn new(instance: String) -> Recorder {
        Recorder {
            instance,
            link: Mutex::new(None),
            last_version: AtomicU64::new(1),
        }
    }

    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// From now on, changes are recorded in `history`, whose calls run on
    /// `runtime` (a multi-threaded one: they are made with `block_on` from
    /// threads outside it).
    pub fn connect(&self, history: History, runtime: tokio::runtime::Handle) {
        *self.link.lock().unwrap_or_else(|e| e.into_inner()) = Some(StoreLink { history, runtime });
    }

    pub fn is_connected(&self) -> bool {
        self.link
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    /// Runs a history call from blocking code, bounded by a timeout. `None`
    /// when there is no history store (yet).
    fn call<T, F, Fut>(&self, call: F) -> Option<Result<T, String>>
    where
        F: FnOnce(History) -> Fut,
        Fut: std::future::Future<Output = Result<T, HistoryError>>,
    {
        let link = self
            .link
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()?;
        let future = call(link.history);
        Some(
            link.runtime
                .block_on(async { tokio::time::timeout(STORE_CALL_TIMEOUT, future).await })
                .map_err(|_| {
                    format!(
                        "the history store did not answer in {} s",
                        STORE_CALL_TIMEOUT.as_secs()
                    )
                })
                .and_then(|r| r.map_err(|e| e.to_string())),
        )
    }

    /// The number for a configuration about to be served (`served`: the
    /// number of the one served now). Never fails: without a store, or when
    /// it errs, the next local number.
    pub fn number(
        &self,
        digest: &str,
        text: &str,
        meta: &ChangeMeta,
        reuse: Reuse,
        served: u64,
    ) -> u64 {
        if reuse != Reuse::Never {
            let d = digest.to_string();
            if let Some(Ok(Some(v))) = self.call(|h| async move { h.version_with_digest(&d).await })
            {
                if reuse == Reuse::Always || v as u64 > served {
                    self.last_version.fetch_max(v as u64, Ordering::SeqCst);
                    return v as u64;
                }
            }
        }
        let version = match self.record_version(meta, digest, text) {
            Some(Ok(v)) => v as u64,
            Some(Err(e)) => {
                warn!("configuration history not recorded: {e}");
                self.last_version.load(Ordering::SeqCst) + 1
            }
            None => self.last_version.load(Ordering::SeqCst) + 1,
        };
        self.last_version.fetch_max(version, Ordering::SeqCst);
        version
    }

    /// Records `text` as a new version. `None` without a store.
    pub fn record_version(
        &self,
        meta: &ChangeMeta,
        digest: &str,
        text: &str,
    ) -> Option<Result<i64, String>> {
        let entry = VersionEntry {
            instance: self.instance.clone(),
            actor: meta.actor.clone(),
            source: meta.source,
            reason: meta.reason.clone(),
            summary: meta.summary.clone(),
            digest: digest.to_string(),
        };
        let text = text.to_string();
        self.call(|h| async move { h.record_version(&entry, &text).await })
    }

    /// Records a change: the fleet change first (announced to the other
    /// proxies), then the audit row. Failures are logged and returned.
    pub fn record(&self, r: &ChangeRecord) -> Recorded {
        let mut recorded = Recorded::default();
        if let (Some(fleet), Some(version)) = (&r.fleet, r.version) {
            let edits = match fleet {
                FleetRecord::Edits(e) => e.clone(),
                // A change with no edits is how a restore is recorded.
                FleetRecord::Restore => Vec::new(),
            };
            let (instance, actor) = (self.instance.clone(), r.actor.clone());
            recorded.fleet = self
                .call(|h| async move { h.record_change(&instance, &actor, version, &edits).await });
            if let Some(Err(e)) = &recorded.fleet {
                warn!("fleet change not recorded (other proxies will not apply it): {e}");
            }
        }
        info!(
            "{} of {} by {} ({}): {}",
            r.source, r.target, r.actor, r.reason, r.outcome
        );
        let entry = AuditEntry {
            instance: self.instance.clone(),
            actor: r.actor.clone(),
            action: r.source,
            target: r.target.clone(),
            reason: r.reason.clone(),
            detail: r.detail.clone(),
            outcome: r.outcome.clone(),
            version: r.version,
        };
        recorded.audit = self.call(|h| async move { h.audit(&entry).await });
        if let Some(Err(e)) = &recorded.audit {
            warn!("audit row not recorded: {e}");
        }
        recorded
    }

    /// The configuration text recorded as `version`.
    pub fn recorded_text(&self, version: i64) -> Result<String, ChangeError> {
        match self.call(|h| async move { h.config_of(version).await }) {
            None => Err(ChangeError::NoHistory("not connected".into())),
            Some(Err(e)) => Err(ChangeError::NoHistory(e)),
            Some(Ok(None)) => Err(ChangeError::NoSuchVersion(version)),
            Some(Ok(Some(t))) => Ok(t),
        }
    }

    /// Fleet changes with an id above `after`, oldest first; `None` when the
    /// store is not connected or does not answer.
    pub fn fleet_changes_after(&self, after: i64) -> Option<Vec<FleetChange>> {
        self.call(|h| async move { h.changes(after, 0).await })?
            .ok()
    }

    /// The id of the newest fleet change in the store.
    pub fn last_fleet_change(&self) -> Option<i64> {
        self.call(|h| async move { h.last_change_id().await })?.ok()
    }
}
