//! The control plane: the background tasks that are not requests, on their
//! own small runtime so that they work before, during and after Pingora's
//! services: SIGHUP and file changes trigger a reload ([`crate::changes`]),
//! the store is watched (`strangler_store_up`), other proxies' changes are
//! followed ([`crate::changes::fleet`]), the guard judges
//! ([`crate::guard`]), the rollouts move on ([`crate::rollout::driver`]),
//! request counters are sampled for `strangler status`
//! ([`crate::status::Traffic`]), backend addresses are checked and resolved again
//! ([`crate::live::checks`]), and the server's execution phase drives
//! readiness.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use log::{error, info, warn};
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::broadcast;

use crate::admin::Readiness;
use crate::changes::Changes;
use crate::changes::reload::ReloadTrigger;
use pingora::server::ExecutionPhase;
use shadow_diff::StoreWriter;

/// How often the control plane looks for changes it is not told about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollIntervals {
    /// The config file's metadata (`--watch-interval`).
    pub file: Duration,
    /// The store's fleet changes, behind LISTEN/NOTIFY (`--fleet-poll`).
    pub fleet: Duration,
}

/// The control plane's runtime and its SIGHUP registration.
#[derive(Debug)]
pub struct ControlPlane {
    runtime: tokio::runtime::Runtime,
    sighup: Signal,
}

impl ControlPlane {
    /// Registers the SIGHUP handler at once: from this call on, a SIGHUP (or a
    /// storm of them) triggers reloads instead of killing the process.
    pub fn start() -> std::io::Result<ControlPlane> {
        // Multi-threaded (one worker) so that blocking code elsewhere can run
        // store calls on it with `Handle::block_on`.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .thread_name("strangler-control")
            .build()?;
        let sighup = {
            let _guard = runtime.enter();
            signal(SignalKind::hangup())?
        };
        Ok(ControlPlane { runtime, sighup })
    }

    /// Enters the control runtime, so that tasks spawned now (the store
    /// writer) run on it once [`ControlPlane::run`] starts its thread.
    pub fn enter(&self) -> tokio::runtime::EnterGuard<'_> {
        self.runtime.enter()
    }

    /// Runs the watchers on a thread of their own until the process exits.
    #[allow(clippy::too_many_arguments)]
    pub fn run(
        self,
        changes: Arc<Changes>,
        overview: Arc<crate::status::Overview>,
        writer: StoreWriter,
        every: PollIntervals,
        phases: broadcast::Receiver<ExecutionPhase>,
        ready: Readiness,
        announce: ReadyAnnouncement,
    ) {
        let ControlPlane { runtime, sighup } = self;
        std::thread::Builder::new()
            .name("strangler-control".into())
            .spawn(move || {
                runtime.block_on(async move {
                    tokio::spawn(on_sighup(changes.clone(), sighup));
                    tokio::spawn(watch_file(changes.clone(), every.file));
                    tokio::spawn(watch_store(changes.clone(), writer.clone()));
                    tokio::spawn(crate::changes::fleet::follow(
                        changes.clone(),
                        writer,
                        every.fleet,
                    ));
                    tokio::spawn(crate::guard::run(changes.clone(), overview.guard.clone()));
                    tokio::spawn(crate::rollout::driver::run(overview.rollouts.clone()));
                    tokio::spawn(overview.traffic.clone().run(changes.live().clone()));
                    tokio::spawn(crate::live::checks::run(changes.live().clone()));
                    track_readiness(phases, ready, announce, changes.clone()).await;
                    // Keep reloading until the process exits.
                    std::future::pending::<()>().await;
                })
            })
            .expect("spawn the control thread");
    }
}

async fn reload(changes: &Arc<Changes>, trigger: ReloadTrigger) {
    let changes = changes.clone();
    if let Err(e) = tokio::task::spawn_blocking(move || changes.reload(trigger)).await {
        error!("reload task failed: {e}");
    }
}

/// Signals that arrive while a reload runs are coalesced by the stream, so a
/// storm costs at most one reload at a time.
async fn on_sighup(changes: Arc<Changes>, mut sighup: Signal) {
    while sighup.recv().await.is_some() {
        reload(&changes, ReloadTrigger::Signal).await;
    }
}

/// What identifies a version of the file on disk without reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

fn stamp(path: &Path) -> Option<FileStamp> {
    use std::os::unix::fs::MetadataExt;
    // Follow symlinks: Kubernetes config maps swap a link.
    let meta = std::fs::metadata(path).ok()?;
    Some(FileStamp {
        modified: meta.modified().ok(),
        len: meta.len(),
        inode: meta.ino(),
    })
}

/// Polls the file's metadata; robust to editors that replace the file and to
/// symlink swaps, which inotify-based watching misses. A change whose content
/// is the same as the served version does not create a version.
///
/// A change is read once the file has kept the same stamp for a whole
/// interval: a file still being written (an editor or `cp` writing in place)
/// is not read half-way. One written slowly enough to be caught anyway is
/// read like any other: if it does not validate, the old table keeps serving
/// and the completed file is read at the next change.
async fn watch_file(changes: Arc<Changes>, interval: Duration) {
    let path: PathBuf = changes.live().config_path().to_path_buf();
    let mut last = stamp(&path);
    let mut settling: Option<Option<FileStamp>> = None;
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let now = stamp(&path);
        if now == last {
            settling = None;
            continue;
        }
        if settling.as_ref() != Some(&now) {
            // Changed since the last look: wait for it to stay put.
            settling = Some(now);
            continue;
        }
        settling = None;
        if now.is_none() {
            warn!(
                "{} is gone; still serving the loaded version",
                path.display()
            );
        } else {
            reload(&changes, ReloadTrigger::FileChanged).await;
        }
        last = now;
    }
}

/// How often the store is asked whether it answers, and how long it has to.
const STORE_CHECK_EVERY: Duration = Duration::from_secs(5);
const STORE_CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// Keeps `strangler_store_up` true: 1 while the store answers a trivial
/// query within [`STORE_CHECK_TIMEOUT`], 0 while it is not connected yet,
/// refuses, errs or does not answer. A store going away or coming back is
/// logged once.
async fn watch_store(changes: Arc<Changes>, writer: StoreWriter) {
    let gauge = changes.live().metrics().store_up.clone();
    let mut tick = tokio::time::interval(STORE_CHECK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut was_up: Option<bool> = None;
    loop {
        tick.tick().await;
        let (up, why) = match writer.store() {
            None => (false, "not connected".to_string()),
            Some(store) => match tokio::time::timeout(STORE_CHECK_TIMEOUT, store.ping()).await {
                Ok(Ok(())) => (true, String::new()),
                Ok(Err(e)) => (false, e.to_string()),
                Err(_) => (
                    false,
                    format!("no answer in {} s", STORE_CHECK_TIMEOUT.as_secs()),
                ),
            },
        };
        gauge.set(up as i64);
        match (was_up, up) {
            (Some(false), true) => info!("the store answers again"),
            (Some(true), false) => {
                warn!("the store does not answer ({why}): diffs are dropped, changes not recorded")
            }
            _ => {}
        }
        was_up = Some(up);
    }
}

/// Where readiness is probed and announced: the proxy port a connection must
/// succeed on, and the pid file written once it does.
#[derive(Debug, Clone)]
pub struct ReadyAnnouncement {
    pub listen: std::net::SocketAddr,
    pub pid_file: std::path::PathBuf,
}

/// How long readiness waits for the history store at start.
const HISTORY_WAIT: Duration = Duration::from_secs(10);

/// `/readyz` follows the server's phases: ready once it runs, the proxy port
/// accepts connections and the history store is connected; not ready again
/// once it starts shutting down.
///
/// Pingora reports `Running` before every service has bound its listener,
/// so a load balancer (or a test) told "ready" at that moment could still be
/// refused: readiness waits until a connection to the port succeeds. A
/// change made before the history is connected would be applied but not
/// recorded, so readiness also waits for it, but not for long: an
/// unreachable database must not keep the proxy out of service.
async fn track_readiness(
    mut phases: broadcast::Receiver<ExecutionPhase>,
    ready: Readiness,
    announce: ReadyAnnouncement,
    changes: Arc<Changes>,
) {
    let listen = announce.listen;
    let probe = match listen.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => {
            std::net::SocketAddr::from(([127, 0, 0, 1], listen.port()))
        }
        ip if ip.is_unspecified() => {
            std::net::SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, listen.port()))
        }
        _ => listen,
    };
    tokio::spawn(async move {
        loop {
            match phases.recv().await {
                Ok(ExecutionPhase::Running) => {
                    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
                    while tokio::time::Instant::now() < deadline {
                        let connect = tokio::net::TcpStream::connect(probe);
                        if let Ok(Ok(_)) =
                            tokio::time::timeout(Duration::from_millis(500), connect).await
                        {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    let deadline = tokio::time::Instant::now() + HISTORY_WAIT;
                    while !changes.history_connected() {
                        if tokio::time::Instant::now() >= deadline {
                            warn!(
                                "ready without the history store (not connected after {} s): changes are applied but not recorded until it is",
                                HISTORY_WAIT.as_secs()
                            );
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    ready.set(true);
                    crate::service_manager::announce_ready(&announce.pid_file);
                    info!("ready: serving (pid {})", std::process::id());
                }
                Ok(ExecutionPhase::Setup | ExecutionPhase::Bootstrap) => {}
                Ok(_) => ready.set(false),
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
    });
}
