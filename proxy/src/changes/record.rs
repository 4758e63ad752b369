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

/// How each record of a change went: `None` when there was nothing to
/// record or no store, else the store's answer (failures are also logged).
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

    /// The connected history, for reading it (`GET /history`).
    pub fn history(&self) -> Option<History> {
        self.link
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|l| l.history.clone())
    }

    pub fn is_connected(&self) -> bool {
        self.link
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    /// Runs a history call from blocking code, bounded by a timeout. `None`
    /// when there is no history store (yet).
    pub fn call<T, F, Fut>(&self, call: F) -> Option<Result<T, String>>
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

#[cfg(test)]
mod tests {
    use super::*;
    use shadow_diff::DiffAndHistoryStore;

    fn meta(source: ChangeSource) -> ChangeMeta {
        ChangeMeta {
            actor: "test".into(),
            source,
            reason: "unit test".into(),
            summary: "a change".into(),
        }
    }

    /// A recorder on a fresh SQLite file, and the runtime its calls run on.
    fn recorder(tag: &str) -> (Recorder, tokio::runtime::Runtime) {
        let dir = std::env::temp_dir().join(format!(
            "strangler-recorder-{tag}-{}-{}",
            std::process::id(),
            rollback::history::now_ms()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let history = runtime.block_on(async {
            let url = format!("sqlite://{}/h.db", dir.display());
            let store = DiffAndHistoryStore::connect(&url).await.unwrap();
            History::open(&store).await.unwrap()
        });
        let r = Recorder::new("test:1".into());
        r.connect(history, runtime.handle().clone());
        (r, runtime)
    }

    #[test]
    fn without_a_store_versions_are_numbered_locally() {
        let r = Recorder::new("test:1".into());
        let m = meta(ChangeSource::Canary);
        assert_eq!(r.number("a", "a", &m, Reuse::Never, 1), 2);
        assert_eq!(r.number("b", "b", &m, Reuse::Always, 2), 3);
        assert!(matches!(r.recorded_text(1), Err(ChangeError::NoHistory(_))));
    }

    #[test]
    fn numbers_are_reused_only_where_the_fleet_must_agree() {
        let (r, _runtime) = recorder("reuse");
        let file = meta(ChangeSource::File);
        let one = r.number("d1", "text one", &file, Reuse::Never, 0);
        let two = r.number("d2", "text two", &file, Reuse::Never, one);
        assert!(two > one);
        // The same text at start, or from the fleet: the recorded number.
        assert_eq!(r.number("d1", "text one", &file, Reuse::Always, two), one);
        // A reload of an older text while a newer one is served: new number.
        let three = r.number("d1", "text one", &file, Reuse::IfNewer, two);
        assert!(three > two);
        // ... but a text recorded with a newer number than served keeps it.
        assert_eq!(
            r.number("d1", "text one", &file, Reuse::IfNewer, two),
            three
        );
        assert_eq!(r.recorded_text(two as i64).unwrap(), "text two");
        assert!(matches!(
            r.recorded_text(99),
            Err(ChangeError::NoSuchVersion(99))
        ));
    }

    #[test]
    fn a_change_is_recorded_for_the_fleet_and_the_audit_log() {
        let (r, runtime) = recorder("record");
        let v = r.number("d1", "t", &meta(ChangeSource::Rollback), Reuse::Never, 0) as i64;
        let edits = vec![Edit::SetCanary {
            route: "orders".into(),
            percent: "0".into(),
        }];
        let base = ChangeRecord {
            source: ChangeSource::Rollback,
            actor: "sre".into(),
            reason: "errors".into(),
            target: "orders".into(),
            detail: "orders: canary 0".into(),
            outcome: "applied".into(),
            version: Some(v),
            fleet: Some(FleetRecord::Edits(edits.clone())),
        };
        let done = r.record(&base);
        assert!(matches!(done.fleet, Some(Ok(_))) && matches!(done.audit, Some(Ok(()))));
        // A restore is a fleet change with no edits; a rejected change
        // (no version) and a guard observation (no fleet) only audit.
        r.record(&ChangeRecord {
            source: ChangeSource::Restore,
            fleet: Some(FleetRecord::Restore),
            ..base.clone()
        });
        let rejected = r.record(&ChangeRecord {
            version: None,
            outcome: "rejected: no route".into(),
            ..base.clone()
        });
        assert!(rejected.fleet.is_none());
        let fleet = r.fleet_changes_after(0).unwrap();
        assert_eq!(fleet.len(), 2);
        assert_eq!(fleet[0].edits, edits);
        assert!(fleet[1].restores());
        assert_eq!(r.last_fleet_change(), Some(fleet[1].id));
        let history = r.link.lock().unwrap().clone().unwrap().history;
        let audit = runtime.block_on(history.audit_rows(10)).unwrap();
        assert_eq!(audit.len(), 3);
        assert!(audit.iter().all(|a| a.entry.instance == "test:1"));
        assert!(
            audit
                .iter()
                .any(|a| a.entry.action == ChangeSource::Restore && a.entry.version == Some(v))
        );
    }
}
