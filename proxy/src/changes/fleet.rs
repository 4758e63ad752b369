//! The fleet: every proxy on one store applies the changes the others make.
//! Once the store is connected, the served configuration gets its number in
//! the history and the changes made while this proxy was not running are
//! applied; then new ones are applied as they are announced (PostgreSQL
//! `LISTEN`), with a poll (`--fleet-poll`) as a safety net and for SQLite.
//! Only what differs here is applied: a change this file already has is a
//! no-op, and one that no longer applies is logged and skipped.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use log::{info, warn};
use rollback::edit::{Edit, apply_all};
use rollback::history::{CHANGES_CHANNEL, ChangeSource, FleetChange, History};
use shadow_diff::StoreWriter;

use super::record::Reuse;
use super::{ChangeMeta, Changes};

/// Connects the history once the store writer has a store, then applies
/// fleet changes as they come, until the process exits.
pub async fn follow(changes: Arc<Changes>, writer: StoreWriter, poll_every: Duration) {
    let store = loop {
        if let Some(s) = writer.connected(Duration::from_secs(3600)).await {
            break s;
        }
    };
    let history = loop {
        match History::open(&store).await {
            Ok(h) => break h,
            Err(e) => {
                warn!("history tables unavailable: {e}");
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    };
    let postgres = history.is_postgres();
    let handle = tokio::runtime::Handle::current();
    {
        let changes = changes.clone();
        let _ = tokio::task::spawn_blocking(move || changes.connect_history(history, handle)).await;
    }
    let (wake_tx, mut wake) = tokio::sync::mpsc::channel::<()>(16);
    if postgres {
        let url = changes.live.startup().store.as_str().to_string();
        tokio::spawn(listen(url, wake_tx));
    }
    let mut poll = tokio::time::interval(poll_every);
    loop {
        tokio::select! {
            _ = poll.tick() => {}
            Some(()) = wake.recv() => {}
        }
        let changes = changes.clone();
        let _ = tokio::task::spawn_blocking(move || changes.sync_fleet()).await;
    }
}

/// Wakes the sync loop on every announced change; reconnects if the
/// connection drops.
async fn listen(url: String, wake: tokio::sync::mpsc::Sender<()>) {
    loop {
        match sqlx::postgres::PgListener::connect(&url).await {
            Ok(mut listener) => {
                if let Err(e) = listener.listen(CHANGES_CHANNEL).await {
                    warn!("LISTEN {CHANGES_CHANNEL} failed: {e}");
                } else {
                    info!("listening for fleet changes");
                    // Anything announced while not listening is caught now.
                    let _ = wake.try_send(());
                    while listener.recv().await.is_ok() {
                        let _ = wake.try_send(());
                    }
                }
            }
            Err(e) => warn!("fleet listener cannot connect: {e}"),
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

impl Changes {
    /// Called once the store is connected: gives the served configuration
    /// its number in the history, and applies the fleet changes made while
    /// this proxy was not running (those recorded after the version its file
    /// is).
    pub fn connect_history(&self, history: History, runtime: tokio::runtime::Handle) {
        self.recorder.connect(history, runtime);
        {
            let _one = self.one_at_a_time();
            let current = self.live.current();
            let meta = ChangeMeta {
                actor: "file".into(),
                source: ChangeSource::File,
                reason: "startup".into(),
                summary: format!("{} loaded", self.live.config_path().display()),
            };
            if let Err(e) = self.install(
                current.config().clone(),
                &current.text,
                &meta,
                Reuse::Always,
            ) {
                warn!("could not renumber the served configuration: {e}");
            }
        }
        // Changes made since the version this file is: a file the history
        // knows (the same text ran before) missed the changes recorded after
        // it; a text never seen is a newer edit and wins.
        let base = self.live.current().version as i64;
        if let Some(changes) = self.recorder.fleet_changes_after(0) {
            for c in changes.iter().filter(|c| c.version > base) {
                self.apply_fleet_change(c);
            }
        }
        if let Some(last) = self.recorder.last_fleet_change() {
            self.fleet_seen.fetch_max(last, Ordering::SeqCst);
        }
        info!(
            "history connected; serving version {}",
            self.live.current().version
        );
    }

    /// Applies the fleet changes recorded since the last one seen (made by
    /// other proxies). Returns how many were applied.
    pub fn sync_fleet(&self) -> usize {
        let after = self.fleet_seen.load(Ordering::SeqCst);
        let Some(changes) = self.recorder.fleet_changes_after(after) else {
            return 0;
        };
        let mut applied = 0;
        for c in changes {
            self.fleet_seen.fetch_max(c.id, Ordering::SeqCst);
            if c.instance != self.recorder.instance() && self.apply_fleet_change(&c) {
                applied += 1;
            }
        }
        applied
    }

    fn apply_fleet_change(&self, c: &FleetChange) -> bool {
        if c.restores() {
            return self.apply_fleet_restore(c);
        }
        let meta = ChangeMeta {
            actor: c.actor.clone(),
            source: ChangeSource::Fleet,
            reason: format!("change #{} from {}", c.id, c.instance),
            summary: super::describe(&c.edits),
        };
        let table = self.live.current();
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
        match self.apply_edits(&needed, &meta) {
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

    /// Another proxy restored a version: serve the same text, unless this
    /// proxy already does.
    fn apply_fleet_restore(&self, c: &FleetChange) -> bool {
        let applied = self.recorder.recorded_text(c.version).and_then(|text| {
            if crate::live::digest(&text) == self.live.current().digest {
                return Ok(None);
            }
            let meta = ChangeMeta {
                actor: c.actor.clone(),
                source: ChangeSource::Fleet,
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
}
