//! The live configuration: the compiled table being served, behind an
//! `ArcSwap`, with the upstreams it owns ([`upstream`]), the health of their
//! addresses ([`health`], kept across versions, checked in the background by
//! [`checks`]), and installing a new one. What changes it (reloads, canary
//! changes, rollbacks, restores, fleet changes) is [`crate::changes`]; every
//! change ends in [`Live::install`].
//!
//! A new table is compiled and its backends resolved off the request path;
//! only a complete table is swapped in, atomically. Each request loads the
//! table once, so it sees one version from start to end. On any error the
//! old table keeps serving. Reading and building a table run on a thread
//! of their own ([`scratch`]), so the memory they pass through is given back.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;

use crate::config::{self, Config, ConfigError, ConfigErrors, Place};
pub mod checks;
pub mod health;
pub mod scratch;
pub mod upstream;

use crate::metrics::{Metrics, RouteMetrics};
use crate::record::RecordRuntime;
use crate::routing::RouteTable;
use crate::shadow::ShadowRuntime;
use checks::BackendHealthMetrics;
use upstream::Upstream;

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
    /// Indexed like `Config::routes`: compiled record settings, if any.
    pub record: Vec<Option<Arc<RecordRuntime>>>,
}

impl LiveTable {
    /// Resolves backends and metric handles for `config`. The addresses of
    /// `previous` (the table being replaced) that stay keep their health.
    pub fn build(
        config: Config,
        version: u64,
        text: Arc<str>,
        metrics: &Metrics,
        health: (&BackendHealthMetrics, Option<&LiveTable>),
        source_name: &str,
    ) -> Result<LiveTable, ConfigErrors> {
        let digest = digest(&text);
        let mut errors = Vec::new();
        let mut upstreams = Vec::new();
        let (health_metrics, previous) = health;
        for backend in &config.backends {
            let before =
                previous.and_then(|p| p.upstreams.iter().find(|u| u.name == backend.name.as_str()));
            let fail_open = health_metrics.fail_open(backend.name.as_str());
            match Upstream::build(backend, before, fail_open) {
                Ok(u) => upstreams.push(u),
                Err(e) => errors.push(ConfigError::new(
                    Place::root()
                        .key("backends")
                        .key(backend.name.as_str().to_owned()),
                    e,
                )),
            }
        }
        if !errors.is_empty() {
            // A backend that cannot be built (its name does not resolve) is
            // reported at its place in the file, like every other error.
            config::positions::Positions::of(&text).locate(&mut errors);
            // Counters made for backends this version would have added.
            health_metrics.forget_backends(
                config
                    .backends
                    .iter()
                    .map(|b| b.name.as_str())
                    .filter(|n| previous.is_none_or(|p| p.config().backend_id(n).is_none())),
            );
            return Err(ConfigErrors {
                source_name: source_name.to_string(),
                errors,
            });
        }
        let route_metrics = config
            .routes
            .iter()
            .map(|r| metrics.route(r.name.as_str()))
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
        let record = config
            .routes
            .iter()
            .map(|r| {
                r.record
                    .as_ref()
                    .map(|p| Arc::new(RecordRuntime::new(r, p)))
            })
            .collect();
        let default_metrics = metrics.route(config::DEFAULT_ROUTE_LABEL);
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
            record,
        })
    }

    pub fn config(&self) -> &Config {
        self.routes.config()
    }
}

/// The settings of the file that are read once, at start: the listeners
/// and the store. Kept on their own rather than as the whole first
/// configuration, which with thousands of routes is megabytes.
#[derive(Debug, Clone)]
pub struct StartupSettings {
    pub listen: std::net::SocketAddr,
    pub tls: Option<config::TlsListener>,
    pub admin_listen: std::net::SocketAddr,
    pub store: config::StoreUrl,
}

impl StartupSettings {
    fn of(config: &Config) -> StartupSettings {
        StartupSettings {
            listen: config.listen,
            tls: config.tls.clone(),
            admin_listen: config.admin.listen,
            store: config.store.clone(),
        }
    }
}

/// The live table and what it was loaded from.
#[derive(Debug)]
pub struct Live {
    table: ArcSwap<LiveTable>,
    config_path: PathBuf,
    metrics: Metrics,
    backend_health: BackendHealthMetrics,
    /// Settings read at start; changing them needs a restart.
    startup: StartupSettings,
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
        listeners: ListenerOverrides,
    ) -> Result<Arc<Live>, ConfigErrors> {
        let name = path.display().to_string();
        let backend_health = BackendHealthMetrics::register(&metrics);
        let (table, startup) = scratch::on_a_thread_of_its_own("strangler-load", || {
            let (config, text) = config::load(path)?;
            let config = listeners.apply(config);
            warn_about(&config, &name);
            let startup = StartupSettings::of(&config);
            let table = LiveTable::build(
                config,
                1,
                Arc::from(text),
                &metrics,
                (&backend_health, None),
                &name,
            )?;
            Ok::<_, ConfigErrors>((table, startup))
        })?;
        let live = Live {
            table: ArcSwap::from_pointee(table),
            config_path: path.to_path_buf(),
            metrics,
            backend_health,
            startup,
            listeners,
        };
        live.publish_gauges(None);
        Ok(Arc::new(live))
    }

    /// Parses a configuration text as this process serves it (with the
    /// command line's listeners).
    pub fn parse(&self, text: &str) -> Result<Config, ConfigErrors> {
        scratch::on_a_thread_of_its_own("strangler-parse", || {
            config::parse_file(text, &self.config_path).map(|c| self.listeners.apply(c))
        })
    }

    /// The table being served. Load it once per request.
    pub fn current(&self) -> Arc<LiveTable> {
        self.table.load_full()
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The backend health series (`strangler_backend_up`, fail-open).
    pub fn backend_health(&self) -> &BackendHealthMetrics {
        &self.backend_health
    }

    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// Settings fixed at start (listeners, store).
    pub fn startup(&self) -> &StartupSettings {
        &self.startup
    }

    /// Builds and swaps in `config` (from `text`), with the version number
    /// `number` gives it (from the text's digest). Returns that number.
    pub fn install(
        &self,
        config: Config,
        text: Arc<str>,
        number: impl FnOnce(&str) -> u64 + Send,
    ) -> Result<u64, ConfigErrors> {
        // Built, swapped in and the old table let go on one thread that
        // ends with the change ([`scratch`]).
        scratch::on_a_thread_of_its_own("strangler-install", || {
            let name = self.config_path.display().to_string();
            // Build first (DNS resolution can fail): a number is only taken
            // for a configuration that will serve.
            let before = self.current();
            let warn = config.backends.iter().any(|b| {
                let was = before.config().backend_id(b.name.as_str());
                !b.tls_verify && was.is_none_or(|id| before.config().backend(id).tls_verify)
            });
            if warn {
                warn_about(&config, &name);
            }
            let table = LiveTable::build(
                config,
                0,
                text.clone(),
                &self.metrics,
                (&self.backend_health, Some(&before)),
                &name,
            )?;
            drop(before);
            let version = number(&table.digest);
            let table = LiveTable { version, ..table };
            let previous = self.table.swap(Arc::new(table));
            self.publish_gauges(Some(&previous));
            Ok(version)
        })
    }

    fn publish_gauges(&self, previous: Option<&LiveTable>) {
        let current = self.current();
        self.backend_health.publish(&current);
        self.metrics
            .apply_config(current.config(), previous.map(|p| p.config()));
        self.metrics.config_version.set(current.version as i64);
        for route in &current.config().routes {
            self.metrics
                .set_canary_percent(route.name.as_str(), route.canary.get());
        }
    }
}

/// Settings that are valid but dangerous, said loudly at load (and when a
/// reload introduces them): the proxy serves, the operator is told.
fn warn_about(config: &Config, source_name: &str) {
    for w in config.warnings() {
        log::warn!("WARNING {source_name}: {w}");
    }
}
