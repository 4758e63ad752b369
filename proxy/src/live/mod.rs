//! The live configuration: the compiled table being served, behind an
//! `ArcSwap`, and how it changes: [`Live::reload`] (file change, SIGHUP,
//! `POST /reload`) here, and canary changes, rollbacks, restores and fleet
//! changes in [`crate::changes`]. All of them go through [`Live::install`].
//!
//! A new table is parsed, validated, compiled and its backends resolved off
//! the request path; only a complete table is swapped in, atomically. Each
//! request loads the table once, so it sees one version from start to end. On
//! any error the old table keeps serving and the error is counted.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use log::{info, warn};

use crate::config::{self, Config, ConfigError, ConfigErrors, Place};
pub mod upstream;

use upstream::Upstream;
use crate::metrics::{Metrics, RouteMetrics};
use crate::routing::RouteTable;
use crate::shadow::ShadowRuntime;

/// One compiled configuration version, everything a request needs.
#[derive(Debug)]
pub struct LiveTable {
    pub version: u64,
    /// Hash of the text this version was built from.
    pub digest: String,
    /// The configuration text this version was built from (the file, plus
    /// any change that could not be written to it).
    pub text: Arc<str>,
    pub loaded_at: SystemTime,
    pub routes: RouteTable,
    /// Indexed by `BackendId`.
    pub upstreams: Vec<Upstream>,
    /// Indexed like `Config::routes`.
    pub route_metrics: Vec<RouteMetrics>,
    /// Counters for traffic no route matched.
    pub default_metrics: RouteMetrics,
    /// Indexed like `Config::routes`: compiled shadow settings, if any.
    pub shadow: Vec<Option<Arc<ShadowRuntime>>>,
}

impl LiveTable {
    /// Resolves backends and metric handles for `config`.
    pub fn build(
        config: Config,
        version: u64,
        text: Arc<str>,
        metrics: &Metrics,
        source_name: &str,
    ) -> Result<LiveTable, ConfigErrors> {
        let digest = digest(&text);
        let mut errors = Vec::new();
        let mut upstreams = Vec::new();
        for backend in &config.backends {
            match Upstream::build(backend) {
                Ok(u) => upstreams.push(u),
                Err(e) => errors.push(ConfigError::new(
                    Place::root().key("backends").key(backend.name.as_str()),
                    e,
                )),
            }
        }
        if !errors.is_empty() {
            return Err(ConfigErrors {
                source_name: source_name.to_string(),
                errors,
            });
        }
        let route_metrics = config
            .routes
            .iter()
            .map(|r| {
                metrics.route(
                    r.name.as_str(),
                    config.backend(r.legacy).name.as_str(),
                    config.backend(r.new).name.as_str(),
                )
            })
            .collect();
        let shadow = config
            .routes
            .iter()
            .map(|r| {
                r.shadow
                    .as_ref()
                    .map(|p| Arc::new(ShadowRuntime::new(r, p)))
            })
            .collect();
        let default_name = config.backend(config.default_backend).name.as_str();
        let default_metrics =
            metrics.route(config::DEFAULT_ROUTE_LABEL, default_name, default_name);
        Ok(LiveTable {
            version,
            digest,
            text,
            loaded_at: SystemTime::now(),
            routes: RouteTable::new(config),
            upstreams,
            route_metrics,
            default_metrics,
            shadow,
        })
    }

    pub fn config(&self) -> &Config {
        self.routes.config()
    }
}

/// What started a reload; logged and shown in `/routes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadTrigger {
    Startup,
    FileChanged,
    Signal,
    Admin,
}

impl ReloadTrigger {
    pub fn as_str(self) -> &'static str {
        match self {
            ReloadTrigger::Startup => "startup",
            ReloadTrigger::FileChanged => "file change",
            ReloadTrigger::Signal => "SIGHUP",
            ReloadTrigger::Admin => "POST /reload",
        }
    }
}

/// The result of a successful reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadOutcome {
    pub version: u64,
    /// False when the file was the same as the version being served.
    pub changed: bool,
    /// Settings that changed but only take effect after a restart.
    pub restart_required: Vec<String>,
}

/// Who made a change and why; recorded in history and audit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeMeta {
    pub actor: String,
    /// `file`, `canary`, `rollback`, `guard`, `restore` or `fleet`.
    pub source: String,
    pub reason: String,
    /// What changed, in words.
    pub summary: String,
}

/// A change made through the API that the file does not (yet) contain: it is
/// re-applied on every reload of a file older than the change, so a reload
/// cannot silently undo a rollback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    pub created_at_ms: i64,
    /// A whole text that replaces the file's (a restored version).
    pub text: Option<String>,
    pub edits: Vec<rollback::edit::Edit>,
}

/// The live table and what it was loaded from.
#[derive(Debug)]
pub struct Live {
    table: ArcSwap<LiveTable>,
    config_path: PathBuf,
    metrics: Metrics,
    /// Serializes reloads and changes: one new table is built at a time.
    pub(crate) change_lock: Mutex<()>,
    last_version: AtomicU64,
    /// Listener settings read at start; changing them needs a restart.
    startup: Config,
    /// This proxy in history and diff records (`host:port`).
    pub instance: String,
    /// The history store, once connected.
    pub(crate) history: Mutex<Option<rollback::history::History>>,
    /// Runs store calls from blocking code (the control plane's runtime).
    pub(crate) runtime: Mutex<Option<tokio::runtime::Handle>>,
    pub(crate) overrides: Mutex<Vec<Override>>,
    /// The newest fleet change applied (or seen) here.
    pub(crate) fleet_seen: AtomicI64,
    /// Listeners given on the command line, which win over the file's.
    listeners: ListenerOverrides,
}

/// `strangler serve --listen/--admin-listen`: one file for several
/// instances on one host (their listeners differ, their routing does not).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListenerOverrides {
    pub listen: Option<std::net::SocketAddr>,
    pub admin: Option<std::net::SocketAddr>,
}

impl ListenerOverrides {
    pub fn apply(&self, mut config: Config) -> Config {
        if let Some(l) = self.listen {
            config.listen = l;
        }
        if let Some(a) = self.admin {
            config.admin.listen = a;
        }
        config
    }
}

/// A cheap fingerprint of a text, to tell versions apart.
pub fn digest(text: &str) -> String {
    let h = crate::routing::canary::stable_hash(b"config", text.as_bytes());
    format!("{h:016x}")
}

/// Modification time of a file in unix milliseconds (0 when unknown).
pub fn mtime_ms(path: &Path) -> i64 {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Live {
    /// Loads and compiles the file for the first time (version 1 until the
    /// history store says otherwise).
    pub fn load(
        path: &Path,
        metrics: Metrics,
        instance: String,
        listeners: ListenerOverrides,
    ) -> Result<Arc<Live>, ConfigErrors> {
        let (config, text) = config::load(path)?;
        let config = listeners.apply(config);
        let name = path.display().to_string();
        let table = LiveTable::build(config.clone(), 1, Arc::from(text), &metrics, &name)?;
        let live = Live {
            table: ArcSwap::from_pointee(table),
            config_path: path.to_path_buf(),
            metrics,
            change_lock: Mutex::new(()),
            last_version: AtomicU64::new(1),
            startup: config,
            instance,
            history: Mutex::new(None),
            runtime: Mutex::new(None),
            overrides: Mutex::new(Vec::new()),
            fleet_seen: AtomicI64::new(0),
            listeners,
        };
        live.publish_gauges(None);
        Ok(Arc::new(live))
    }

    /// Parses a configuration text as this process serves it (with the
    /// command line's listeners).
    pub(crate) fn parse(&self, text: &str) -> Result<Config, ConfigErrors> {
        config::parse_file(text, &self.config_path).map(|c| self.listeners.apply(c))
    }

    /// The table being served. Load it once per request.
    pub fn current(&self) -> Arc<LiveTable> {
        self.table.load_full()
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// Settings fixed at start (listeners, store).
    pub fn startup_config(&self) -> &Config {
        &self.startup
    }

    /// Re-reads the configuration file and swaps it in if it is valid. Blocking
    /// (file I/O, DNS, the history store): call it from a blocking context.
    pub fn reload(&self, trigger: ReloadTrigger) -> Result<ReloadOutcome, ConfigErrors> {
        let _guard = self.change_lock.lock().unwrap_or_else(|e| e.into_inner());
        let result = self.reload_locked(trigger);
        match &result {
            Ok(outcome) => {
                self.metrics.config_reloads.with_label_values(&["ok"]).inc();
                self.metrics.config_last_reload_successful.set(1);
                if outcome.changed {
                    info!(
                        "configuration version {} loaded from {} ({})",
                        outcome.version,
                        self.config_path.display(),
                        trigger.as_str()
                    );
                }
                for setting in &outcome.restart_required {
                    warn!("{setting} changed; the new value takes effect after a restart");
                }
            }
            Err(errors) => {
                self.metrics
                    .config_reloads
                    .with_label_values(&["error"])
                    .inc();
                self.metrics.config_last_reload_successful.set(0);
                warn!(
                    "reload ({}) rejected, still serving version {}: {errors}",
                    trigger.as_str(),
                    self.current().version
                );
            }
        }
        result
    }

    /// The file's text with the changes it does not contain yet re-applied.
    pub(crate) fn effective_text(&self, file_text: &str) -> String {
        let file_time = mtime_ms(&self.config_path);
        let mut overrides = self.overrides.lock().unwrap_or_else(|e| e.into_inner());
        // A file written after a change already reflects it, or was edited
        // on purpose since: the file wins.
        overrides.retain(|o| o.created_at_ms > file_time);
        let mut text = file_text.to_string();
        overrides.retain(|o| {
            match rollback::edit::apply_all(o.text.as_deref().unwrap_or(&text), &o.edits) {
                Ok(t) => {
                    text = t;
                    true
                }
                Err(e) => {
                    warn!("a change not in the file no longer applies ({e}); dropped");
                    false
                }
            }
        });
        text
    }

    fn reload_locked(&self, trigger: ReloadTrigger) -> Result<ReloadOutcome, ConfigErrors> {
        let name = self.config_path.display().to_string();
        let file_text = std::fs::read_to_string(&self.config_path).map_err(|e| {
            ConfigErrors::single(&name, Place::root(), format!("cannot read the file: {e}"))
        })?;
        let text = self.effective_text(&file_text);
        let config = self.parse(&text)?;
        let current = self.current();
        if digest(&text) == current.digest {
            return Ok(ReloadOutcome {
                version: current.version,
                changed: false,
                restart_required: Vec::new(),
            });
        }
        let restart_required = self.restart_required(&config);
        let meta = ChangeMeta {
            actor: "file".into(),
            source: "file".into(),
            reason: trigger.as_str().to_string(),
            summary: format!("{} reloaded", self.config_path.display()),
        };
        let version = self.install(config, Arc::from(text), &meta)?;
        Ok(ReloadOutcome {
            version,
            changed: true,
            restart_required,
        })
    }

    /// Builds and swaps in `config` (from `text`), giving it a version
    /// number: the history store's when it is connected (reusing the number
    /// of an identical recorded configuration), else the next local one.
    pub(crate) fn install(
        &self,
        config: Config,
        text: Arc<str>,
        meta: &ChangeMeta,
    ) -> Result<u64, ConfigErrors> {
        let name = self.config_path.display().to_string();
        // Build first (DNS resolution can fail): a number is only taken for
        // a configuration that will serve.
        let table = LiveTable::build(config, 0, text.clone(), &self.metrics, &name)?;
        let version = self.next_version(&table.digest, &text, meta);
        let table = LiveTable { version, ..table };
        let previous = self.table.swap(Arc::new(table));
        self.publish_gauges(Some(&previous));
        Ok(version)
    }

    fn next_version(&self, digest: &str, text: &str, meta: &ChangeMeta) -> u64 {
        // The file a proxy starts with, or a fleet change applied here with
        // the same result, is a version already recorded. So is a reloaded
        // file that another proxy of the fleet loaded first (the same file
        // deployed to every host): it keeps that proxy's number, so the
        // fleet serves one version number, as long as that number is newer
        // than what is served here; a file reverted to an older text is a
        // new version. Any other change made while running is a new version.
        let startup = meta.source == "file" && meta.reason == "startup";
        let reloaded = meta.source == "file" && !startup;
        if meta.source == "fleet" || startup || reloaded {
            let digest = digest.to_string();
            if let Some(Ok(Some(v))) = self.with_history(|h| {
                let h = h.clone();
                async move { h.version_with_digest(&digest).await }
            }) {
                if !reloaded || v as u64 > self.current().version {
                    self.last_version.fetch_max(v as u64, Ordering::SeqCst);
                    return v as u64;
                }
            }
        }
        let recorded = self.with_history(|h| {
            let h = h.clone();
            let entry = rollback::history::VersionEntry {
                instance: self.instance.clone(),
                actor: meta.actor.clone(),
                source: meta.source.clone(),
                reason: meta.reason.clone(),
                summary: meta.summary.clone(),
                digest: digest.to_string(),
            };
            let text = text.to_string();
            async move { h.record_version(&entry, &text).await }
        });
        let version = match recorded {
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

    /// Whether the history store is connected (changes are recorded).
    pub fn history_connected(&self) -> bool {
        self.history
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    /// Runs a history call from blocking code, bounded by a timeout. `None`
    /// when there is no history store (yet).
    pub(crate) fn with_history<T, F, Fut>(&self, call: F) -> Option<Result<T, String>>
    where
        F: FnOnce(&rollback::history::History) -> Fut,
        Fut: std::future::Future<Output = Result<T, rollback::history::HistoryError>>,
    {
        let history = self
            .history
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()?;
        let runtime = self
            .runtime
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()?;
        let future = call(&history);
        Some(
            runtime
                .block_on(async {
                    tokio::time::timeout(std::time::Duration::from_secs(3), future).await
                })
                .map_err(|_| "the history store did not answer in 3 s".to_string())
                .and_then(|r| r.map_err(|e| e.to_string())),
        )
    }

    fn restart_required(&self, config: &Config) -> Vec<String> {
        let mut changed = Vec::new();
        if config.listen != self.startup.listen {
            changed.push("listen".to_string());
        }
        if config.tls != self.startup.tls {
            changed.push("tls".to_string());
        }
        if config.admin.listen != self.startup.admin.listen {
            changed.push("admin.listen".to_string());
        }
        if config.store != self.startup.store {
            changed.push("store".to_string());
        }
        changed
    }

    fn publish_gauges(&self, previous: Option<&LiveTable>) {
        let current = self.current();
        self.metrics
            .apply_config(current.config(), previous.map(|p| p.config()));
        self.metrics.config_version.set(current.version as i64);
        for route in &current.config().routes {
            self.metrics
                .canary_percent
                .with_label_values(&[route.name.as_str()])
                .set(route.canary.get());
        }
    }
}
