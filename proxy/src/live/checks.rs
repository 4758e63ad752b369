//! Backend health in the background, on the control plane: active checks
//! of every address, the passive cool-down, host names resolved again, and
//! the `strangler_backend_up` / `strangler_backend_fail_open_total` series.
//!
//! One loop looks at the table being served a few times a second and
//! starts what is due; each check and each resolution is a task of its own,
//! so a slow backend or a slow DNS server delays nothing else, and no
//! request ever waits for any of it. The loop follows reloads by reading
//! the current table each time; the schedule of checks lives in each
//! address's [`AddressHealth`], which a reload keeps.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pingora::connectors::http::Connector;
use pingora::http::RequestHeader;
use pingora::upstreams::peer::HttpPeer;
use prometheus::{IntCounterVec, IntGaugeVec, Opts};

use super::Live;
use super::LiveTable;
use super::health::{Transition, now_ms};
use super::upstream::{Address, Upstream, resolve_endpoint};
use crate::config::ActiveCheck;
use crate::config::defaults::{DEFAULT_PASSIVE_COOLDOWN, DEFAULT_RESOLVE_INTERVAL};

/// How often the loop looks for due work. Checks run at their own
/// interval; this only bounds how late one can start.
const TICK: Duration = Duration::from_millis(100);

/// The two metric families of backend health, and which series of them
/// exist, so that an address or backend that goes away takes its series
/// with it.
#[derive(Debug, Clone)]
pub struct BackendHealthMetrics {
    up: IntGaugeVec,
    fail_open: IntCounterVec,
    exported: Arc<Mutex<Exported>>,
}

#[derive(Debug, Default)]
struct Exported {
    up: HashMap<(String, String), i64>,
    backends: HashSet<String>,
}

impl BackendHealthMetrics {
    pub fn register(metrics: &crate::metrics::Metrics) -> BackendHealthMetrics {
        let up = IntGaugeVec::new(
            Opts::new(
                "strangler_backend_up",
                "1 while a backend address is in service, 0 while it is ejected.",
            ),
            &["backend", "address"],
        )
        .expect("valid metric");
        let fail_open = IntCounterVec::new(
            Opts::new(
                "strangler_backend_fail_open_total",
                "Requests sent to a backend whose addresses were all down.",
            ),
            &["backend"],
        )
        .expect("valid metric");
        metrics.register_extra(Box::new(up.clone()));
        metrics.register_extra(Box::new(fail_open.clone()));
        BackendHealthMetrics {
            up,
            fail_open,
            exported: Arc::default(),
        }
    }

    /// The fail-open counter of one backend (created at zero).
    pub fn fail_open(&self, backend: &str) -> prometheus::IntCounter {
        self.fail_open.with_label_values(&[backend])
    }

    /// Removes the fail-open series of backends that were never served
    /// (their version was refused).
    pub fn forget_backends<'a>(&self, names: impl Iterator<Item = &'a str>) {
        for name in names {
            let _ = self.fail_open.remove_label_values(&[name]);
        }
    }

    /// Makes the series match `table`: one `strangler_backend_up` per
    /// address with its state, none for addresses or backends that are
    /// gone. Cheap when nothing changed (a map lookup per address).
    pub fn publish(&self, table: &LiveTable) {
        let mut exported = self.exported.lock().unwrap_or_else(|e| e.into_inner());
        let mut now: HashMap<(String, String), i64> = HashMap::new();
        let mut backends = HashSet::new();
        for upstream in &table.upstreams {
            backends.insert(upstream.name.clone());
            for a in upstream.address_list().iter() {
                let key = (upstream.name.clone(), a.addr.to_string());
                now.insert(key, a.health.is_up() as i64);
            }
        }
        for (key, value) in &now {
            if exported.up.get(key) != Some(value) {
                self.up.with_label_values(&[&key.0, &key.1]).set(*value);
            }
        }
        for key in exported.up.keys() {
            if !now.contains_key(key) {
                let _ = self.up.remove_label_values(&[&key.0, &key.1]);
            }
        }
        for gone in exported.backends.difference(&backends) {
            let _ = self.fail_open.remove_label_values(&[gone]);
        }
        exported.up = now;
        exported.backends = backends;
    }
}

/// Runs until the process exits.
pub async fn run(live: Arc<Live>) {
    let connector = Arc::new(Connector::new(None));
    let mut resolve_due: HashMap<String, u64> = HashMap::new();
    let resolving: Arc<Mutex<HashSet<String>>> = Arc::default();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let table = live.current();
        let now = now_ms();
        for (index, upstream) in table.upstreams.iter().enumerate() {
            match &upstream.health.active {
                Some(check) => {
                    for address in upstream.address_list().iter() {
                        if address.health.claim_check(now) {
                            tokio::spawn(run_check(
                                live.clone(),
                                connector.clone(),
                                index,
                                upstream.name.clone(),
                                address.clone(),
                                check.clone(),
                                now,
                            ));
                        }
                    }
                }
                None => {
                    for address in upstream.address_list().iter() {
                        let t = address.health.cooldown(
                            &upstream.health,
                            DEFAULT_PASSIVE_COOLDOWN,
                            now,
                        );
                        if t == Transition::Readmitted {
                            log::info!(
                                "backend {}: {} back in service on probation after {} s out",
                                upstream.name,
                                address.addr,
                                DEFAULT_PASSIVE_COOLDOWN.as_secs()
                            );
                        }
                    }
                }
            }
            if needs_resolution(upstream) {
                let due = resolve_due
                    .entry(upstream.name.clone())
                    .or_insert(now + DEFAULT_RESOLVE_INTERVAL.as_millis() as u64);
                if now >= *due {
                    *due = now + DEFAULT_RESOLVE_INTERVAL.as_millis() as u64;
                    let claimed = resolving
                        .lock()
                        .map(|mut r| r.insert(upstream.name.clone()))
                        .unwrap_or(false);
                    if claimed {
                        tokio::spawn(resolve_again(
                            live.clone(),
                            index,
                            upstream.name.clone(),
                            resolving.clone(),
                        ));
                    }
                }
            }
        }
        live.backend_health().publish(&table);
    }
}

/// Only backends with a host name can move; IP literals never change.
fn needs_resolution(upstream: &Upstream) -> bool {
    upstream
        .endpoints
        .iter()
        .any(|e| e.host.parse::<std::net::IpAddr>().is_err())
}

/// The upstream at `index` of the current table, if it is still `name`
/// (a reload may have changed the table since the work started).
fn current_upstream(live: &Live, index: usize, name: &str) -> Option<(Arc<LiveTable>, usize)> {
    let table = live.current();
    let found = table.upstreams.get(index).is_some_and(|u| u.name == name);
    found.then_some((table, index))
}

async fn run_check(
    live: Arc<Live>,
    connector: Arc<Connector>,
    index: usize,
    backend: String,
    address: Arc<Address>,
    check: ActiveCheck,
    started: u64,
) {
    let result = tokio::time::timeout(
        check.timeout,
        probe(
            &connector,
            address.peer(),
            &check,
            host_of(&live, index, &backend, &address),
        ),
    )
    .await
    .unwrap_or_else(|_| {
        Err(format!(
            "no answer within {}",
            crate::config::units::format_duration(check.timeout)
        ))
    });
    // The policy of the table now served (thresholds may have been reloaded).
    let policy = match current_upstream(&live, index, &backend) {
        Some((table, i)) => table.upstreams[i].health.clone(),
        None => {
            address.health.check_done(started, check.interval);
            return;
        }
    };
    let transition = match &result {
        Ok(_) => address.health.check_passed(&policy),
        Err(_) => address.health.failure(&policy, now_ms()),
    };
    address.health.check_done(started, check.interval);
    log_transition(&backend, address.addr, transition, &result);
}

fn log_transition(
    backend: &str,
    addr: SocketAddr,
    transition: Transition,
    result: &Result<u16, String>,
) {
    match (transition, result) {
        (Transition::Ejected, Err(why)) => {
            log::warn!("backend {backend}: {addr} ejected, health check failing: {why}")
        }
        (Transition::Readmitted, _) => {
            log::info!("backend {backend}: {addr} passes its health checks, back in service")
        }
        _ => {}
    }
}

/// The Host header of a check: the one the backend's `host` setting sends
/// (a check has no client Host to preserve), else the URL's host (and port,
/// if not the scheme's default).
fn host_of(live: &Live, index: usize, backend: &str, address: &Address) -> String {
    let table = live.current();
    let Some(upstream) = table.upstreams.get(index).filter(|u| u.name == backend) else {
        return address.addr.to_string();
    };
    if let Some(host) = table
        .config()
        .backends
        .get(index)
        .and_then(|b| b.host.value())
    {
        return host.to_string();
    }
    match upstream.endpoints.get(address.endpoint) {
        Some(endpoint) => endpoint.authority(),
        None => address.addr.to_string(),
    }
}

/// One check: a GET of the path on a new connection (the connector's pool
/// is never given one back), with the backend's TLS settings. 2xx and 3xx
/// pass; the status or the error otherwise.
async fn probe(
    connector: &Connector,
    peer: &HttpPeer,
    check: &ActiveCheck,
    host: String,
) -> Result<u16, String> {
    let mut peer = peer.clone();
    peer.options.connection_timeout = Some(check.timeout);
    peer.options.total_connection_timeout = Some(check.timeout);
    peer.options.read_timeout = Some(check.timeout);
    peer.options.write_timeout = Some(check.timeout);
    let failed = |e: Box<pingora::Error>| e.to_string();
    let (mut session, _) = connector.get_http_session(&peer).await.map_err(failed)?;
    let mut request =
        RequestHeader::build("GET", check.path.as_bytes(), Some(3)).map_err(failed)?;
    request.insert_header("host", host).map_err(failed)?;
    request
        .insert_header(
            "user-agent",
            concat!("strangler-health/", env!("CARGO_PKG_VERSION")),
        )
        .map_err(failed)?;
    request
        .insert_header("connection", "close")
        .map_err(failed)?;
    session
        .write_request_header(Box::new(request))
        .await
        .map_err(failed)?;
    session.finish_request_body().await.map_err(failed)?;
    session.read_response_header().await.map_err(failed)?;
    let status = session
        .response_header()
        .map(|h| h.status.as_u16())
        .ok_or_else(|| "no response header".to_string())?;
    if (200..400).contains(&status) {
        Ok(status)
    } else {
        Err(format!("answered {status}"))
    }
}

/// Resolves a backend's host names again, off the control loop (the
/// system resolver blocks), and installs the result if it changed. A
/// failure keeps the addresses in use.
async fn resolve_again(
    live: Arc<Live>,
    index: usize,
    backend: String,
    resolving: Arc<Mutex<HashSet<String>>>,
) {
    let endpoints = match current_upstream(&live, index, &backend) {
        Some((table, i)) => table.upstreams[i].endpoints.clone(),
        None => Vec::new(),
    };
    let resolved = tokio::task::spawn_blocking(move || {
        let mut all = Vec::new();
        for (i, e) in endpoints.iter().enumerate() {
            for addr in resolve_endpoint(e)? {
                all.push((i, addr));
            }
        }
        Ok::<_, String>(all)
    })
    .await
    .unwrap_or_else(|e| Err(e.to_string()));
    match (resolved, current_upstream(&live, index, &backend)) {
        (Ok(resolved), Some((table, i))) if !resolved.is_empty() => {
            let upstream = &table.upstreams[i];
            if upstream.update_addresses(&resolved) {
                let list: Vec<String> = upstream
                    .address_list()
                    .iter()
                    .map(|a| a.addr.to_string())
                    .collect();
                log::info!("backend {backend}: addresses now {}", list.join(", "));
                live.backend_health().publish(&table);
            }
        }
        (Err(e), _) => {
            log::warn!("backend {backend}: {e}; keeping its addresses");
        }
        _ => {}
    }
    if let Ok(mut r) = resolving.lock() {
        r.remove(&backend);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;

    fn sample(metrics: &Metrics, family: &str, needle: &str) -> Option<String> {
        let text = String::from_utf8(metrics.render()).unwrap();
        text.lines()
            .find(|l| l.starts_with(family) && l.contains(needle))
            .map(|l| l.rsplit(' ').next().unwrap().to_string())
    }

    /// One `strangler_backend_up` series per address, 1 from the start,
    /// following ejection, gone with the address; fail-open at zero.
    #[test]
    fn series_follow_the_addresses() {
        let metrics = Metrics::new();
        let health = BackendHealthMetrics::register(&metrics);
        let text = "version: 1\nbackends:\n  b: { urls: [http://127.0.0.1:1, http://127.0.0.1:2] }\ndefault: b\n";
        let config = crate::config::parse(text, "t.yaml").unwrap();
        let table = LiveTable::build(
            config,
            1,
            Arc::from(text),
            &metrics,
            (&health, None),
            "t.yaml",
        )
        .unwrap();
        health.publish(&table);
        let up = |addr: &str| sample(&metrics, "strangler_backend_up{", addr);
        assert_eq!(up("127.0.0.1:1").as_deref(), Some("1"));
        assert_eq!(up("127.0.0.1:2").as_deref(), Some("1"));
        assert_eq!(
            sample(
                &metrics,
                "strangler_backend_fail_open_total{",
                "backend=\"b\""
            )
            .as_deref(),
            Some("0")
        );

        let upstream = &table.upstreams[0];
        let first = upstream.address_list()[0].clone();
        for _ in 0..upstream.health.unhealthy_after {
            first.health.failure(&upstream.health, 0);
        }
        health.publish(&table);
        assert_eq!(up("127.0.0.1:1").as_deref(), Some("0"));

        let one: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert!(upstream.update_addresses(&[(0, one)]));
        health.publish(&table);
        assert_eq!(up("127.0.0.1:1").as_deref(), Some("0"));
        assert_eq!(up("127.0.0.1:2"), None, "the series left with the address");
    }
}
