//! [`Changes`]: the change state of one proxy and the way every change is
//! applied. One change at a time: a change is planned on the table being
//! served, validated like any file, installed live (so it is served from the
//! next request on), written to the file ([`super::file`]) and recorded
//! ([`super::record`]). A change that fails validation changes nothing.

use std::sync::atomic::AtomicI64;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use rollback::edit::{Edit, apply_all};
use rollback::history::ChangeSource;

use super::file::{Overrides, write_edits, write_whole};
use super::record::{ChangeRecord, FleetRecord, Recorder, Reuse};
use super::{
    ChangeError, ChangeMeta, ChangeOutcome, ChangeRequest, FileOutcome, Requester, now_ms, plan,
};
use crate::live::Live;

/// The change state of one proxy, beside the live table it changes.
#[derive(Debug)]
pub struct Changes {
    pub(super) live: Arc<Live>,
    /// Serializes reloads and changes: one new table is built at a time.
    lock: Mutex<()>,
    pub(super) recorder: Recorder,
    pub(super) overrides: Overrides,
    /// The newest fleet change applied (or seen) here.
    pub(super) fleet_seen: AtomicI64,
    /// Told of every request that changed the table (the rollouts, which
    /// pause when a person changes their route).
    observer: OnceLock<Arc<dyn ChangeObserver>>,
}

/// Something that must know of requested changes once they are applied.
/// Called on the thread that applied the change, after it is recorded.
pub trait ChangeObserver: Send + Sync + std::fmt::Debug {
    fn applied(&self, request: &ChangeRequest, who: &Requester, outcome: &ChangeOutcome);
}

impl Changes {
    /// `instance` names this proxy in the history (`host:port`).
    pub fn new(live: Arc<Live>, instance: String) -> Arc<Changes> {
        Arc::new(Changes {
            live,
            lock: Mutex::new(()),
            recorder: Recorder::new(instance),
            overrides: Overrides::default(),
            fleet_seen: AtomicI64::new(0),
            observer: OnceLock::new(),
        })
    }

    /// Registers the one observer of applied requests.
    pub fn observe(&self, observer: Arc<dyn ChangeObserver>) {
        if self.observer.set(observer).is_err() {
            log::warn!("a second change observer was ignored");
        }
    }

    /// This proxy's name in the history (`host:port`).
    pub fn instance(&self) -> &str {
        self.recorder.instance()
    }

    /// Runs a history call from blocking code (bounded; `None` without a
    /// store).
    pub fn history_call<T, F, Fut>(&self, call: F) -> Option<Result<T, String>>
    where
        F: FnOnce(rollback::history::History) -> Fut,
        Fut: std::future::Future<Output = Result<T, rollback::history::HistoryError>>,
    {
        self.recorder.call(call)
    }

    pub fn live(&self) -> &Arc<Live> {
        &self.live
    }

    /// The history changes are recorded in, once the store is connected.
    pub fn history(&self) -> Option<rollback::history::History> {
        self.recorder.history()
    }

    /// Whether the history store is connected (changes are recorded).
    pub fn history_connected(&self) -> bool {
        self.recorder.is_connected()
    }

    pub(super) fn one_at_a_time(&self) -> MutexGuard<'_, ()> {
        self.lock.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Parses, builds and serves `text`, numbered as `reuse` allows. The
    /// caller holds [`Changes::one_at_a_time`].
    pub(super) fn install_text(
        &self,
        text: &str,
        meta: &ChangeMeta,
        reuse: Reuse,
    ) -> Result<u64, ChangeError> {
        let config = self.live.parse(text).map_err(ChangeError::Invalid)?;
        self.install(config, text, meta, reuse)
            .map_err(ChangeError::Invalid)
    }

    /// Builds and serves `config` (from `text`), numbered as `reuse`
    /// allows. The caller holds [`Changes::one_at_a_time`].
    pub(super) fn install(
        &self,
        config: crate::config::Config,
        text: &str,
        meta: &ChangeMeta,
        reuse: Reuse,
    ) -> Result<u64, crate::config::ConfigErrors> {
        let served = self.live.current().version;
        self.live.install(config, Arc::from(text), |digest| {
            self.recorder.number(digest, text, meta, reuse, served)
        })
    }

    /// Plans and applies a request; records it for the fleet and the audit
    /// log, and counts a rollback that moved traffic.
    pub fn request(
        &self,
        request: &ChangeRequest,
        who: &Requester,
    ) -> Result<ChangeOutcome, ChangeError> {
        let source = request.source(who.by);
        let routes = request.routes();
        let mut fleet = None;
        let result = plan(self.live.current().config(), request).and_then(|edits| {
            let summary = if edits.is_empty() {
                "nothing to change".to_string()
            } else {
                super::describe(&edits)
            };
            let meta = ChangeMeta {
                actor: who.actor.clone(),
                source,
                reason: who.reason.clone(),
                summary,
            };
            let outcome = self.apply_edits(&edits, &meta)?;
            fleet = Some(FleetRecord::Edits(edits));
            Ok(outcome)
        });
        // Only a rollback that moved traffic counts (and pages when automatic);
        // one that found everything on legacy already changed nothing.
        if let (ChangeRequest::Rollback { routes, .. }, Ok(o)) = (request, &result) {
            for r in routes.iter().filter(|_| o.changed) {
                self.live.metrics().count_rollback(r, who.by.trigger());
            }
        }
        // The observer first: the change is live already, and what it
        // records (a paused rollout) should follow it as closely as can be.
        if let (Ok(o), Some(observer)) = (&result, self.observer.get()) {
            if o.changed {
                observer.applied(request, who, o);
            }
        }
        self.record(source, &routes.join(","), who, &result, fleet);
        result.map(|mut o| {
            o.routes = routes;
            o
        })
    }

    /// Serves a recorded version again (`strangler rollback --to VERSION`),
    /// on every proxy of the fleet.
    pub fn restore(&self, version: i64, who: &Requester) -> Result<ChangeOutcome, ChangeError> {
        let meta = ChangeMeta {
            actor: who.actor.clone(),
            source: ChangeSource::Restore,
            reason: who.reason.clone(),
            summary: format!("restored version {version}"),
        };
        let result = self
            .recorder
            .recorded_text(version)
            .and_then(|text| self.serve_text(&text, &meta, version));
        self.record(
            ChangeSource::Restore,
            &format!("version {version}"),
            who,
            &result,
            Some(FleetRecord::Restore),
        );
        result
    }

    /// Records what the guard saw on a route it did not roll back because
    /// nothing was on the new side (canary 0, no tenant pinned to new): a
    /// shadowed route whose copies differ is the report's business, not an
    /// incident, so it neither changes the route nor counts as a rollback.
    pub fn record_guard_observation(&self, route: &str, who: &Requester) {
        self.recorder.record(&ChangeRecord {
            source: ChangeSource::Guard,
            actor: who.actor.clone(),
            reason: who.reason.clone(),
            target: route.into(),
            detail: String::new(),
            outcome: "not rolled back: nothing on the new side (canary 0, no tenant pinned to new)"
                .into(),
            version: Some(self.live.current().version as i64),
            fleet: None,
        });
    }

    /// Records a request: the fleet change when it changed something (for
    /// the other proxies to repeat), and the audit row whatever happened.
    fn record(
        &self,
        source: ChangeSource,
        target: &str,
        who: &Requester,
        result: &Result<ChangeOutcome, ChangeError>,
        fleet: Option<FleetRecord>,
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
        // Not counted as seen: the fleet sync skips this proxy's own
        // changes anyway, and moving the mark past them could skip another
        // proxy's change recorded just before.
        self.recorder.record(&ChangeRecord {
            source,
            actor: who.actor.clone(),
            reason: who.reason.clone(),
            target: target.into(),
            detail,
            outcome,
            version,
            fleet: fleet.filter(|_| matches!(result, Ok(o) if o.changed)),
        });
    }

    /// Applies edits to the served configuration: live first, then the
    /// file.
    pub(super) fn apply_edits(
        &self,
        edits: &[Edit],
        meta: &ChangeMeta,
    ) -> Result<ChangeOutcome, ChangeError> {
        let _one = self.one_at_a_time();
        let current = self.live.current();
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
        let text = apply_all(&current.text, edits)?;
        let version = self.install_text(&text, meta, Reuse::for_source(meta.source))?;
        let applied_at_ms = now_ms();
        let file = write_edits(
            self.live.config_path(),
            &self.overrides,
            &current.digest,
            &text,
            edits,
        );
        Ok(ChangeOutcome {
            version,
            changed: true,
            edits: edit_texts,
            routes: Vec::new(),
            file,
            applied_at_ms,
        })
    }

    /// Serves a whole configuration text (a restored version): live, then
    /// the file (or an override when the file cannot be written).
    pub(super) fn serve_text(
        &self,
        text: &str,
        meta: &ChangeMeta,
        version: i64,
    ) -> Result<ChangeOutcome, ChangeError> {
        let _one = self.one_at_a_time();
        let new_version = self.install_text(text, meta, Reuse::for_source(meta.source))?;
        let file = write_whole(self.live.config_path(), &self.overrides, text);
        Ok(ChangeOutcome {
            version: new_version,
            changed: true,
            edits: vec![format!("restored version {version}")],
            routes: Vec::new(),
            file,
            applied_at_ms: now_ms(),
        })
    }
}

impl Reuse {
    /// How a change from `source` is numbered: a fleet change keeps the
    /// number the fleet gave it; a change made here is a new version.
    fn for_source(source: ChangeSource) -> Reuse {
        match source {
            ChangeSource::Fleet => Reuse::Always,
            _ => Reuse::Never,
        }
    }
}
