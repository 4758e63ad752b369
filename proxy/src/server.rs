//! Assembles the process: the live table, the Pingora server with the proxy
//! and admin services, and the control plane. `strangler serve` calls
//! [`serve`], which runs until a shutdown signal.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use log::info;
use pingora::apps::http_app::HttpServer;
use pingora::listeners::TcpSocketOptions;
use pingora::server::Server;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::services::listening::Service;

use crate::admin::{AdminApp, Readiness};
use crate::changes::Changes;
use crate::control::ControlPlane;
use crate::dataplane::workers::{WorkerSettings, Workers};
use crate::live::Live;
use crate::metrics::Metrics;
use crate::shadow::{ShadowEngine, ShadowQueue, ShadowService, ShadowSettings};
use pingora::services::background::background_service;
use shadow_diff::{StoreWriter, WriterSettings};
use std::sync::Arc;

/// Settings of `strangler serve` that are not in `routes.yaml`: they belong to
/// the process, not to the routing.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub config: PathBuf,
    /// Worker threads of the proxy service.
    pub threads: usize,
    pub work_stealing: bool,
    /// Take over the listening sockets of a running instance (zero-downtime
    /// upgrade: start the new binary with this, then SIGQUIT the old one).
    pub upgrade: bool,
    pub pid_file: Option<PathBuf>,
    pub upgrade_sock: Option<PathBuf>,
    pub watch_interval: Duration,
    /// How often the store is polled for other proxies' changes.
    pub fleet_poll: Duration,
    /// Seconds between a SIGTERM and the final shutdown step.
    pub grace_period: u64,
    pub shutdown_timeout: u64,
    pub shadow: ShadowSettings,
    pub store: WriterSettings,
    pub listeners: crate::live::ListenerOverrides,
    /// From a request's first byte to the end of its header.
    pub header_timeout: Duration,
    /// Requests in flight above which new ones get a fast 503.
    pub max_inflight: usize,
    /// Access-log lines queued for the writer before new ones are dropped.
    pub access_log_queue: usize,
    /// Serve plain HTTP/1.1 exchanges on the owned fast path
    /// (`dataplane::fast_path`).
    pub fast_path: bool,
}

/// Where the pid file and upgrade socket go by default: derived from the
/// config file's absolute path, so two proxies on one machine do not collide
/// and an upgrade of the same instance finds its predecessor.
pub fn runtime_paths(config: &Path) -> (PathBuf, PathBuf) {
    let absolute = std::fs::canonicalize(config).unwrap_or_else(|_| config.to_path_buf());
    let key = crate::live::digest(&absolute.display().to_string());
    let dir = std::env::temp_dir();
    (
        dir.join(format!("strangler-{}.pid", &key[..12])),
        dir.join(format!("strangler-{}.sock", &key[..12])),
    )
}

/// The address worker `n` listens on, written so that it is a key of its own
/// in Pingora's table of listening sockets: worker 0 writes it plainly, worker
/// `n` with `n` zeros before the port (`127.0.0.1:08080`), which parses to the
/// same address.
///
/// Pingora keys the sockets it hands over in an upgrade by this text. Were all
/// workers to use the same text, they would all wrap the one file descriptor
/// stored under it, and each would close it on exit: a double close (an abort
/// in a debug build, and in a release build possibly the close of an unrelated
/// file opened meanwhile). With a key each, every worker owns its own
/// `SO_REUSEPORT` socket (the kernel spreads connections over them, like
/// nginx's `reuseport`), each is handed over separately, and a new process
/// with fewer workers closes the sockets it does not claim (Pingora's
/// `close_unclaimed`).
pub fn worker_listen_key(addr: std::net::SocketAddr, n: usize) -> String {
    match addr {
        std::net::SocketAddr::V4(a) => format!("{}:{}{}", a.ip(), "0".repeat(n), a.port()),
        std::net::SocketAddr::V6(a) => format!("[{}]:{}{}", a.ip(), "0".repeat(n), a.port()),
    }
}

/// `SO_REUSEPORT`, so each worker's socket can bind the same address.
pub fn reuseport() -> TcpSocketOptions {
    let mut options = TcpSocketOptions::default();
    options.so_reuseport = Some(true);
    options
}

/// This process in diff records: host name and proxy port.
fn instance_name(port: u16) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".to_string());
    format!("{host}:{port}")
}

pub fn serve(options: ServeOptions) -> Result<()> {
    // First, so that a SIGHUP from now on reloads instead of killing us.
    let control = ControlPlane::start().context("starting the control plane")?;

    let metrics = Metrics::new();
    let live = Live::load(&options.config, metrics, options.listeners)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    // The listen address with --listen applied: the fleet knows this
    // process by it.
    let instance = instance_name(live.startup().listen.port());
    let changes = Changes::new(live.clone(), instance.clone());
    let startup = live.startup().clone();
    {
        // Not held past this: `serve` runs as long as the process, and a
        // table kept here would keep every replaced one's memory too.
        let current = live.current();
        info!(
            "configuration version {} from {}: {} routes, {} backends",
            current.version,
            options.config.display(),
            current.config().routes.len(),
            current.config().backends.len()
        );
    }

    let (default_pid, default_sock) = runtime_paths(&options.config);
    let conf = ServerConf {
        threads: options.threads.max(1),
        work_stealing: options.work_stealing,
        pid_file: options
            .pid_file
            .clone()
            .unwrap_or(default_pid)
            .display()
            .to_string(),
        upgrade_sock: options
            .upgrade_sock
            .clone()
            .unwrap_or(default_sock)
            .display()
            .to_string(),
        grace_period_seconds: Some(options.grace_period),
        graceful_shutdown_timeout_seconds: Some(options.shutdown_timeout),
        ..ServerConf::default()
    };
    let opt = Opt {
        upgrade: options.upgrade,
        ..Opt::default()
    };
    let mut server = Server::new_with_opt_and_conf(opt, conf);
    server.bootstrap();
    let conf = server.configuration.clone();

    // One single-threaded proxy service per worker, all on the same listening
    // socket, like nginx workers: each has its own runtime and its own
    // upstream connection pool, so a request, its upstream connection and the
    // pool's idle watcher stay on one thread (no cross-thread wake-ups, which
    // were the largest cost in a shared multi-threaded runtime).
    // The diff store writer runs on the control runtime; the shadow engine
    // on a service thread of its own. Neither is on the request path.
    let writer = {
        let _runtime = control.enter();
        let events: Arc<dyn shadow_diff::WriterEvents> = Arc::new(live.metrics().clone());
        StoreWriter::spawn(
            startup.store.as_str().to_string(),
            options.store.clone(),
            events,
        )
    };
    let (shadow_queue, shadow_jobs, shadow_budget) =
        ShadowQueue::new(options.shadow.queue, options.shadow.memory);
    let engine = Arc::new(ShadowEngine::new(
        shadow_jobs,
        shadow_budget,
        options.shadow.clone(),
        live.metrics().clone(),
        writer.clone(),
        instance,
    ));
    let mut shadow_service = background_service("strangler shadow", ShadowService(engine));
    shadow_service.threads = Some(1);

    let workers = Workers::new(
        &live,
        shadow_queue,
        WorkerSettings {
            header_timeout: options.header_timeout,
            max_inflight: options.max_inflight,
            access_log_queue: options.access_log_queue,
        },
    );
    let mut services = Vec::new();
    for n in 0..options.threads.max(1) {
        let app = workers.app(&conf, options.fast_path);
        let mut proxy = Service::new(format!("strangler proxy {n}"), app);
        proxy.threads = Some(1);
        proxy.add_tcp_with_settings(&worker_listen_key(startup.listen, n), reuseport());
        if let Some(tls) = &startup.tls {
            let mut settings = pingora::listeners::tls::TlsSettings::intermediate(
                &tls.cert, &tls.key,
            )
            .map_err(|e| anyhow::anyhow!("tls: cannot load {} / {}: {e}", tls.cert, tls.key))?;
            settings.enable_h2();
            proxy.endpoints().set_pre_tls_callback(Arc::new(
                crate::dataplane::proxy_protocol::PreTlsProxyProtocol {
                    live: live.clone(),
                    deadline: options.header_timeout,
                    refused: workers.proxy_protocol_refused(),
                },
            ));
            proxy.add_tls_with_settings(
                &worker_listen_key(tls.listen, n),
                Some(reuseport()),
                settings,
            );
        }
        services.push(proxy);
    }

    let overview = Arc::new(crate::status::Overview {
        rollouts: crate::rollout::Rollouts::new(changes.clone(), writer.clone()),
        guard: Arc::default(),
        traffic: Arc::default(),
    });
    let ready = Readiness::default();
    let mut admin = Service::new(
        "strangler admin".to_string(),
        HttpServer::new_app(AdminApp::new(
            changes.clone(),
            overview.clone(),
            ready.clone(),
            writer.clone(),
        )),
    );
    admin.threads = Some(1);
    admin.add_tcp(&startup.admin_listen.to_string());

    for proxy in services {
        server.add_service(proxy);
    }
    server.add_service(admin);
    server.add_service(shadow_service);

    control.run(
        changes,
        overview,
        writer.clone(),
        crate::control::PollIntervals {
            file: options.watch_interval,
            fleet: options.fleet_poll,
        },
        server.watch_execution_phase(),
        ready,
        crate::control::ReadyAnnouncement {
            listen: startup.listen,
            pid_file: PathBuf::from(&conf.pid_file),
        },
    );
    info!(
        "listening on {} (admin {})",
        startup.listen, startup.admin_listen
    );
    server.run_forever();
}

#[cfg(test)]
mod tests {
    use super::worker_listen_key;
    use std::net::{SocketAddr, ToSocketAddrs};

    #[test]
    fn each_worker_has_its_own_key_for_the_same_address() {
        for addr in ["127.0.0.1:8080", "[::1]:443", "0.0.0.0:1"] {
            let addr: SocketAddr = addr.parse().unwrap();
            let keys: Vec<String> = (0..4).map(|n| worker_listen_key(addr, n)).collect();
            assert_eq!(keys[0], addr.to_string());
            for key in &keys {
                let parsed = key.to_socket_addrs().unwrap().next().unwrap();
                assert_eq!(parsed, addr, "{key}");
            }
            let mut unique = keys.clone();
            unique.dedup();
            assert_eq!(unique.len(), keys.len());
        }
    }
}
