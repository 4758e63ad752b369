//! Changes made on purpose: a canary change, a rollback (by a person or by
//! the guard), a restore of a recorded version, and the same changes made by
//! another proxy of the fleet. Each one edits the configuration text without
//! disturbing its formatting, is validated like any file, goes live from the
//! next request on, is written back to `routes.yaml` atomically when the
//! file can be written (and otherwise kept as an override so a reload cannot
//! undo it), and is recorded: a history version, a fleet change, an audit row.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use log::{info, warn};
use rollback::atomic::{WriteError, write_atomically};
use rollback::edit::{Edit, EditError, apply_all};
use rollback::history::{AuditEntry, History};
use serde::Serialize;

use crate::config::{self, ConfigErrors, Percent, Side};
use crate::live::{ChangeMeta, Live, LiveTable, Override, digest};
use crate::metrics::RollbackTrigger;

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

/// Who asked, why, and whether a person or the guard did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requester {
    pub actor: String,
    pub reason: String,
    /// A person or the guard (the `trigger` label of `strangler_rollbacks_total`).
    pub trigger: RollbackTrigger,
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

fn now_ms() -> i64 {
    rollback::history::now_ms()
}

impl Live {
    /// The edits a request amounts to, from the configuration being served.
    pub fn plan(&self, request: &ChangeRequest) -> Result<Vec<Edit>, ChangeError> {
        let table = self.current();
        let config = table.config();
        let mut edits = Vec::new();
        match request {
            ChangeRequest::Canary { route, percent } => {
                config
                    .route(route)
                    .ok_or_else(|| ChangeError::UnknownRoute(route.clone()))?;
                edits.push(Edit::SetCanary {
                    route: route.clone(),
                    percent: percent.to_string(),
                });
            }
            ChangeRequest::Rollback { routes, tenant } => {
                for name in routes {
                    let route = config
                        .route(name)
                        .ok_or_else(|| ChangeError::UnknownRoute(name.clone()))?;
                    match tenant {
                        Some(t) => {
                            if route.pin_for(t) != Some(Side::Legacy) {
                                edits.push(Edit::SetPin {
                                    route: name.clone(),
                                    tenant: t.clone(),
                                    side: "legacy".into(),
                                });
                            }
                        }
                        None => {
                            if route.canary.get() != 0.0 {
                                edits.push(Edit::SetCanary {
                                    route: name.clone(),
                                    percent: "0".into(),
                                });
                            }
                            for (t, side) in &route.pins {
                                if *side == Side::New {
                                    edits.push(Edit::SetPin {
                                        route: name.clone(),
                                        tenant: t.clone(),
                                        side: "legacy".into(),
                                    });
                                }
                            }
                        }
                    }
                }
            }
        }
        Ok(edits)
    }

    /// Plans and applies a request; records it as a fleet change.
    pub fn request_change(
        &self,
        request: &ChangeRequest,
        who: &Requester,
    ) -> Result<ChangeOutcome, ChangeError> {
        let (source, routes) = match request {
            ChangeRequest::Canary { route, .. } => ("canary", vec![route.clone()]),
            ChangeRequest::Rollback { routes, .. } => (
                if who.trigger == RollbackTrigger::Auto {
                    "guard"
                } else {
                    "rollback"
                },
                routes.clone(),
            ),
        };
        let result = self.plan(request).and_then(|edits| {
            let summary = if edits.is_empty() {
                "nothing to change".to_string()
            } else {
                edits
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("; ")
            };
            let meta = ChangeMeta {
                actor: who.actor.clone(),
                source: source.into(),
                reason: who.reason.clone(),
                summary,
            };
            self.apply_edits(&edits, &meta, true)
        });
        // Only a rollback that moved traffic counts (and pages when automatic);
        // one that found everything on legacy already changed nothing.
        if let (ChangeRequest::Rollback { routes, .. }, Ok(o)) = (request, &result) {
            for r in routes.iter().filter(|_| o.changed) {
                self.metrics()
                    .rollbacks
                    .with_label_values(&[r, who.trigger.as_str()])
                    .inc();
            }
        }
        self.audit(source, &routes.join(","), who, &result);
        result.map(|mut o| {
            o.routes = routes;
            o
        })
    }

    /// Records what the guard saw on a route it did not roll back because
    /// nothing was on the new side (canary 0, no tenant pinned to new): a
    /// shadowed route whose copies differ is the report's business, not an
    /// incident, so it neither changes the route nor counts as a rollback.
    pub fn record_guard_observation(&self, route: &str, who: &Requester) {
        let outcome =
            "not rolled back: nothing on the new side (canary 0, no tenant pinned to new)";
        self.record_audit(AuditEntry {
            instance: self.instance.clone(),
            actor: who.actor.clone(),
            action: "guard".into(),
            target: route.into(),
            reason: who.reason.clone(),
            detail: String::new(),
            outcome: outcome.into(),
            version: Some(self.current().version as i64),
        });
    }

    fn audit(
        &self,
        action: &str,
        target: &str,
        who: &Requester,
        result: &Result<ChangeOutcome, ChangeError>,
    ) {
        let (detail, outcome, version) = match result {
            Ok(o) => (
                o.edits.join("; "),
                match &o.file {
                    FileOutcome::NotWritten(why) => format!("applied; file not updated: {why}"),
                    _ if !o.changed => "nothing to change".to_string(),
                    _ => "applied".to_string(),
                },
                Some(o.version as i64),
            ),
            Err(e) => (String::new(), format!("rejected: {e}"), None),
        };
        let entry = AuditEntry {
            instance: self.instance.clone(),
            actor: who.actor.clone(),
            action: action.into(),
            target: target.into(),
            reason: who.reason.clone(),
            detail,
            outcome,
            version,
        };
        self.record_audit(entry);
    }

    fn record_audit(&self, entry: AuditEntry) {
        info!(
            "{} of {} by {} ({}): {}",
            entry.action, entry.target, entry.actor, entry.reason, entry.outcome
        );
        if let Some(Err(e)) = self.with_history(|h| {
            let h = h.clone();
            let entry = entry.clone();
            async move { h.audit(&entry).await }
        }) {
            warn!("audit row not recorded: {e}");
        }
    }

    /// Applies edits to the served configuration: live first, then the file,
    /// then the records.
    pub(crate) fn apply_edits(
        &self,
        edits: &[Edit],
        meta: &ChangeMeta,
        record_fleet: bool,
    ) -> Result<ChangeOutcome, ChangeError> {
        let _guard = self.change_lock.lock().unwrap_or_else(|e| e.into_inner());
        let current = self.current();
        let edit_texts = edits.iter().map(|e| e.to_string()).collect();
        if edits.is_empty() {
            return Ok(ChangeOutcome {
                version: current.version,
                changed: false,
                edits: edit_texts,
                routes: Vec::new(),
                file: FileOutcome::Unchanged,
                applied_at_ms: now_ms(),
            });
        }
        let name = self.config_path().display().to_string();
        let text = apply_all(&current.text, edits)?;
        let config = self.parse(&text).map_err(ChangeError::Invalid)?;
        let version = self
            .install(config, Arc::from(text.clone()), meta)
            .map_err(ChangeError::Invalid)?;
        let applied_at_ms = now_ms();
        let file = self.write_file(&current, &text, edits);
        if let FileOutcome::NotWritten(why) = &file {
            warn!("change applied live but not written to {name}: {why}");
            self.overrides
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(Override {
                    created_at_ms: applied_at_ms,
                    text: None,
                    edits: edits.to_vec(),
                });
        }
        if record_fleet {
            let edits = edits.to_vec();
            let (instance, actor) = (self.instance.clone(), meta.actor.clone());
            match self.with_history(|h| {
                let h = h.clone();
                async move {
                    h.record_change(&instance, &actor, version as i64, &edits)
                        .await
                }
            }) {
                Some(Ok(id)) => {
                    self.fleet_seen.fetch_max(id, Ordering::SeqCst);
                }
                Some(Err(e)) => {
                    warn!("fleet change not recorded (other proxies will not apply it): {e}")
                }
                None => {}
            }
        }
        Ok(ChangeOutcome {
            version,
            changed: true,
            edits: edit_texts,
            routes: Vec::new(),
            file,
            applied_at_ms,
        })
    }

    /// Writes the change into the file on disk. When the disk no longer
    /// holds what is served (someone edited it since), the same edits are
    /// made on what is on disk, so nobody's work is overwritten.
    fn write_file(&self, served: &LiveTable, new_text: &str, edits: &[Edit]) -> FileOutcome {
        let path = self.config_path();
        if rollback::atomic::is_read_only(path) {
            return FileOutcome::NotWritten(format!("{} is read-only", path.display()));
        }
        let disk = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                return FileOutcome::NotWritten(format!("cannot read {}: {e}", path.display()));
            }
        };
        let target = if digest(&disk) == served.digest {
            new_text.to_string()
        } else {
            let pending: Vec<Edit> = self
                .overrides
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .flat_map(|o| o.edits.clone())
                .chain(edits.iter().cloned())
                .collect();
            match apply_all(&disk, &pending) {
                Ok(t) if config::parse(&t, "disk").is_ok() => t,
                Ok(_) => {
                    return FileOutcome::NotWritten(format!(
                        "{} on disk has errors; fix it, the change stays live meanwhile",
                        path.display()
                    ));
                }
                Err(e) => {
                    return FileOutcome::NotWritten(format!("cannot edit the file on disk: {e}"));
                }
            }
        };
        match write_atomically(path, &target) {
            Ok(_) => FileOutcome::Written,
            Err(WriteError::ReadOnly(p)) => {
                FileOutcome::NotWritten(format!("{} is read-only", p.display()))
            }
            Err(e) => FileOutcome::NotWritten(e.to_string()),
        }
    }

    /// Serves a recorded version again (`strangler rollback --to VERSION`).
    pub fn restore(&self, version: i64, who: &Requester) -> Result<ChangeOutcome, ChangeError> {
        let result = self.restore_inner(version, who);
        self.audit("restore", &format!("version {version}"), who, &result);
        result
    }

    fn restore_inner(&self, version: i64, who: &Requester) -> Result<ChangeOutcome, ChangeError> {
        let text = self.recorded_text(version)?;
        let meta = ChangeMeta {
            actor: who.actor.clone(),
            source: "restore".into(),
            reason: who.reason.clone(),
            summary: format!("restored version {version}"),
        };
        let outcome = self.serve_text(&text, &meta, version)?;
        // Every proxy on the store serves it too (the version it has here).
        let (instance, actor, served) = (
            self.instance.clone(),
            who.actor.clone(),
            outcome.version as i64,
        );
        match self.with_history(|h| {
            let h = h.clone();
            async move { h.record_restore(&instance, &actor, served).await }
        }) {
            Some(Ok(id)) => {
                self.fleet_seen.fetch_max(id, Ordering::SeqCst);
            }
            Some(Err(e)) => {
                warn!("fleet restore not recorded (other proxies will not apply it): {e}")
            }
            None => {}
        }
        Ok(outcome)
    }

    /// The configuration text recorded as `version`.
    fn recorded_text(&self, version: i64) -> Result<String, ChangeError> {
        match self.with_history(|h| {
            let h = h.clone();
            async move { h.config_of(version).await }
        }) {
            None => Err(ChangeError::NoHistory("not connected".into())),
            Some(Err(e)) => Err(ChangeError::NoHistory(e)),
            Some(Ok(None)) => Err(ChangeError::NoSuchVersion(version)),
            Some(Ok(Some(t))) => Ok(t),
        }
    }

    /// Serves a whole configuration text (a restored version): live, then
    /// the file (or an override when the file cannot be written).
    fn serve_text(
        &self,
        text: &str,
        meta: &ChangeMeta,
        version: i64,
    ) -> Result<ChangeOutcome, ChangeError> {
        let _guard = self.change_lock.lock().unwrap_or_else(|e| e.into_inner());
        let config = self.parse(text).map_err(ChangeError::Invalid)?;
        let new_version = self
            .install(config, Arc::from(text), meta)
            .map_err(ChangeError::Invalid)?;
        // The restored text is the whole file: earlier overrides are moot.
        self.overrides
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        let path = self.config_path();
        let file = match write_atomically(path, text) {
            Ok(_) => FileOutcome::Written,
            Err(e) => {
                self.overrides
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(Override {
                        created_at_ms: now_ms(),
                        text: Some(text.to_string()),
                        edits: Vec::new(),
                    });
                FileOutcome::NotWritten(e.to_string())
            }
        };
        Ok(ChangeOutcome {
            version: new_version,
            changed: true,
            edits: vec![format!("restored version {version}")],
            routes: Vec::new(),
            file,
            applied_at_ms: now_ms(),
        })
    }

    /// Called once the store is connected: gives the served configuration
    /// its number in the history, and applies the fleet changes made while
    /// this proxy was not running (those recorded after the version its file
    /// is).
    pub fn connect_history(&self, history: History, runtime: tokio::runtime::Handle) {
        *self.history.lock().unwrap_or_else(|e| e.into_inner()) = Some(history);
        *self.runtime.lock().unwrap_or_else(|e| e.into_inner()) = Some(runtime);
        {
            let _guard = self.change_lock.lock().unwrap_or_else(|e| e.into_inner());
            let current = self.current();
            let meta = ChangeMeta {
                actor: "file".into(),
                source: "file".into(),
                reason: "startup".into(),
                summary: format!("{} loaded", self.config_path().display()),
            };
            if let Err(e) = self.install(current.config().clone(), current.text.clone(), &meta) {
                warn!("could not renumber the served configuration: {e}");
            }
        }
        // Changes made since the version this file is: a file the history
        // knows (the same text ran before) missed the changes recorded after
        // it; a text never seen is a newer edit and wins.
        let base = self.current().version as i64;
        let changes = self.with_history(|h| {
            let h = h.clone();
            async move { h.changes(0, 0).await }
        });
        if let Some(Ok(changes)) = changes {
            for c in changes.iter().filter(|c| c.version > base) {
                self.apply_fleet_change(c);
            }
        }
        if let Some(Ok(last)) = self.with_history(|h| {
            let h = h.clone();
            async move { h.last_change_id().await }
        }) {
            self.fleet_seen.fetch_max(last, Ordering::SeqCst);
        }
        info!(
            "history connected; serving version {}",
            self.current().version
        );
    }

    /// Applies the fleet changes recorded since the last one seen (made by
    /// other proxies). Returns how many were applied.
    pub fn sync_fleet(&self) -> usize {
        let after = self.fleet_seen.load(Ordering::SeqCst);
        let changes = match self.with_history(|h| {
            let h = h.clone();
            async move { h.changes(after, 0).await }
        }) {
            Some(Ok(c)) => c,
            _ => return 0,
        };
        let mut applied = 0;
        for c in changes {
            self.fleet_seen.fetch_max(c.id, Ordering::SeqCst);
            if c.instance != self.instance && self.apply_fleet_change(&c) {
                applied += 1;
            }
        }
        applied
    }

    /// Another proxy restored a version: serve the same text, unless this
    /// proxy already does.
    fn apply_fleet_restore(&self, c: &rollback::history::FleetChange) -> bool {
        let applied = self.recorded_text(c.version).and_then(|text| {
            if digest(&text) == self.current().digest {
                return Ok(None);
            }
            let meta = ChangeMeta {
                actor: c.actor.clone(),
                source: "fleet".into(),
                reason: format!("change #{} from {}", c.id, c.instance),
                summary: format!("restored version {}", c.version),
            };
            self.serve_text(&text, &meta, c.version).map(Some)
        });
        match applied {
            Ok(Some(o)) => {
                info!(
                    "fleet restore #{} of version {} from {} applied: version {}",
                    c.id, c.version, c.instance, o.version
                );
                true
            }
            Ok(None) => false,
            Err(e) => {
                warn!(
                    "fleet restore #{} of version {} from {} not applied here: {e}",
                    c.id, c.version, c.instance
                );
                false
            }
        }
    }

    fn apply_fleet_change(&self, c: &rollback::history::FleetChange) -> bool {
        if c.restores() {
            return self.apply_fleet_restore(c);
        }
        let meta = ChangeMeta {
            actor: c.actor.clone(),
            source: "fleet".into(),
            reason: format!("change #{} from {}", c.id, c.instance),
            summary: c
                .edits
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("; "),
        };
        // Only what differs here is applied (a change this file already has
        // is a no-op).
        let table = self.current();
        let needed: Vec<Edit> = c
            .edits
            .iter()
            .filter(|e| match apply_all(&table.text, std::slice::from_ref(e)) {
                Ok(t) => t != *table.text,
                Err(_) => false,
            })
            .cloned()
            .collect();
        if needed.is_empty() {
            return false;
        }
        match self.apply_edits(&needed, &meta, false) {
            Ok(o) => {
                info!(
                    "fleet change #{} from {} applied: version {}",
                    c.id, c.instance, o.version
                );
                true
            }
            Err(e) => {
                warn!(
                    "fleet change #{} from {} not applied here: {e}",
                    c.id, c.instance
                );
                false
            }
        }
    }
}
