//! Backends as Pingora peers: addresses resolved when a configuration
//! version is built (Pingora's `HttpPeer::new` would panic on a name it
//! cannot resolve) and again in the background ([`super::checks`]),
//! timeouts and TLS settings applied, endpoints taken in turn, ejected
//! addresses skipped.
//!
//! [`Upstream::pick`] runs for every request: it loads the address list
//! (an `ArcSwap`, no lock), takes the next address in turn and skips those
//! marked down (an atomic each). When every address is down it sends the
//! request anyway (fail open, counted): a health check that is wrong, or a
//! backend that is only partly broken, must not become a total outage made
//! by the proxy.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use pingora::upstreams::peer::{HttpPeer, Peer};
use pingora::utils::tls::{CertKey, WrappedX509};
use pingora::{Error, ErrorSource, ErrorType};
use prometheus::IntCounter;

use super::health::{AddressHealth, Transition, now_ms};
use crate::config::{Backend, Endpoint, HealthPolicy, UpstreamTls};

/// Resolves an endpoint's host to socket addresses. Done here, where
/// upstreams are built for serving, and by `check --resolve` on request, never
/// while a file is validated: `check` must work on a machine that cannot see
/// production DNS.
pub fn resolve_endpoint(endpoint: &Endpoint) -> Result<Vec<SocketAddr>, String> {
    if let Ok(ip) = endpoint.host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, endpoint.port)]);
    }
    let addrs: Vec<SocketAddr> = (endpoint.host.as_str(), endpoint.port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {}: {e}", endpoint.host))?
        .collect();
    if addrs.is_empty() {
        return Err(format!("{} resolves to no address", endpoint.host));
    }
    Ok(addrs)
}

/// One resolved address of a backend, with the peer every request to it
/// starts from and its health (shared with other versions of the table).
#[derive(Debug)]
pub struct Address {
    pub addr: SocketAddr,
    /// Index into the backend's endpoints (the URL it came from).
    pub endpoint: usize,
    peer: HttpPeer,
    pub health: Arc<AddressHealth>,
}

impl Address {
    /// The peer for this address, as a request uses it.
    pub fn peer(&self) -> &HttpPeer {
        &self.peer
    }
}

/// Peer settings of one backend, applied to every address.
#[derive(Debug)]
struct PeerTemplate {
    connect_timeout: Duration,
    read_timeout: Duration,
    write_timeout: Duration,
    idle_timeout: Duration,
    verify: bool,
    sni: Option<String>,
    ca: Option<Arc<pingora::protocols::tls::CaType>>,
    client: Option<Arc<CertKey>>,
}

impl PeerTemplate {
    fn new(backend: &Backend) -> PeerTemplate {
        let UpstreamTls { ca, client, sni } = &backend.tls;
        PeerTemplate {
            connect_timeout: backend.connect_timeout,
            read_timeout: backend.read_timeout,
            write_timeout: backend.write_timeout,
            idle_timeout: backend.idle_timeout,
            verify: backend.tls_verify,
            sni: sni.clone(),
            // The files were checked when the configuration was compiled
            // (with the parser Pingora uses), so these conversions, which
            // panic on bad input, are given good input.
            ca: ca.as_ref().map(|bundle| {
                let certs: Vec<WrappedX509> = bundle
                    .certificates
                    .iter()
                    .map(|der| WrappedX509::new(der.clone(), pingora::utils::tls::parse_x509))
                    .collect();
                Arc::from(certs.into_boxed_slice())
            }),
            client: client
                .as_ref()
                .map(|id| Arc::new(CertKey::new(id.chain.clone(), id.key.clone()))),
        }
    }

    fn peer(&self, addr: SocketAddr, endpoint: &Endpoint) -> HttpPeer {
        let sni = self.sni.clone().unwrap_or_else(|| endpoint.host.clone());
        let mut peer = HttpPeer::new(addr, endpoint.tls, sni);
        let o = &mut peer.options;
        o.connection_timeout = Some(self.connect_timeout);
        o.read_timeout = Some(self.read_timeout);
        o.write_timeout = Some(self.write_timeout);
        o.idle_timeout = Some(self.idle_timeout);
        o.verify_cert = self.verify;
        o.verify_hostname = self.verify;
        o.ca = self.ca.clone();
        peer.client_cert_key = self.client.clone();
        peer
    }
}

/// One backend, ready to hand out peers.
#[derive(Debug)]
pub struct Upstream {
    pub name: String,
    pub endpoints: Vec<Endpoint>,
    template: PeerTemplate,
    addresses: ArcSwap<Vec<Arc<Address>>>,
    next: AtomicUsize,
    pub read_timeout: Duration,
    pub connect_timeout: Duration,
    pub health: HealthPolicy,
    /// `strangler_backend_fail_open_total{backend}`.
    fail_open: IntCounter,
}

impl Upstream {
    /// Resolves every endpoint of `backend`; fails with a message naming the
    /// endpoint that could not be resolved. Addresses `previous` (the same
    /// backend in the table being replaced) also had keep their health.
    pub fn build(
        backend: &Backend,
        previous: Option<&Upstream>,
        fail_open: IntCounter,
    ) -> Result<Upstream, String> {
        let mut resolved = Vec::new();
        for (i, endpoint) in backend.endpoints.iter().enumerate() {
            for addr in resolve_endpoint(endpoint)? {
                resolved.push((i, addr));
            }
        }
        if resolved.is_empty() {
            return Err(format!("backend {} has no address", backend.name));
        }
        let upstream = Upstream {
            name: backend.name.to_string(),
            endpoints: backend.endpoints.clone(),
            template: PeerTemplate::new(backend),
            addresses: ArcSwap::from_pointee(Vec::new()),
            next: AtomicUsize::new(0),
            read_timeout: backend.read_timeout,
            connect_timeout: backend.connect_timeout,
            health: backend.health.clone(),
            fail_open,
        };
        let known = previous.map(|p| p.addresses.load_full());
        upstream.install_addresses(&resolved, known.as_deref().map(Vec::as_slice));
        Ok(upstream)
    }

    /// Builds the address list from `resolved` (endpoint index, address),
    /// keeping the health of those in `known`.
    fn install_addresses(&self, resolved: &[(usize, SocketAddr)], known: Option<&[Arc<Address>]>) {
        let mut list: Vec<Arc<Address>> = Vec::with_capacity(resolved.len());
        for &(endpoint, addr) in resolved {
            // Two URLs naming one address would be one address twice.
            if list.iter().any(|a| a.addr == addr) {
                continue;
            }
            let health = known
                .and_then(|k| k.iter().find(|a| a.addr == addr))
                .map(|a| a.health.clone())
                .unwrap_or_default();
            list.push(Arc::new(Address {
                addr,
                endpoint,
                peer: self.template.peer(addr, &self.endpoints[endpoint]),
                health,
            }));
        }
        self.addresses.store(Arc::new(list));
    }

    /// Replaces the addresses after a background resolution; those that stay
    /// keep their health. Returns true if the set of addresses changed.
    pub fn update_addresses(&self, resolved: &[(usize, SocketAddr)]) -> bool {
        let current = self.addresses.load_full();
        let mut before: Vec<SocketAddr> = current.iter().map(|a| a.addr).collect();
        let mut after: Vec<SocketAddr> = resolved.iter().map(|(_, a)| *a).collect();
        before.sort();
        after.sort();
        after.dedup();
        if before == after {
            return false;
        }
        self.install_addresses(resolved, Some(&current));
        true
    }

    /// The next address in turn that is up, or, if none is, the next one
    /// anyway (counted in `strangler_backend_fail_open_total`), as a peer
    /// of its own (Pingora's engine keeps it for the request).
    pub fn pick(&self) -> Box<HttpPeer> {
        self.pick_with(|a| Box::new(a.peer.clone()))
    }

    /// [`Upstream::pick`]'s choice, lent to `use_address` under the
    /// address list's guard rather than copied: a request that takes a
    /// pooled connection needs only the address and the peer's timeouts,
    /// and the peer (its name, options and TLS settings) is copied only
    /// for a new connection.
    pub fn pick_with<T>(&self, use_address: impl FnOnce(&Address) -> T) -> T {
        let addresses = self.addresses.load();
        let n = addresses.len();
        let start = if n == 1 {
            0
        } else {
            self.next.fetch_add(1, Ordering::Relaxed) % n
        };
        for i in 0..n {
            let a = &addresses[(start + i) % n];
            if a.health.is_up() {
                return use_address(a);
            }
        }
        self.fail_open.inc();
        use_address(&addresses[start])
    }

    /// How many addresses the backend has now.
    pub fn addresses(&self) -> usize {
        self.addresses.load().len()
    }

    /// The current addresses (for health checks and metrics).
    pub fn address_list(&self) -> Arc<Vec<Arc<Address>>> {
        self.addresses.load_full()
    }

    /// The address a peer from [`Upstream::pick`] connects to.
    pub fn address_of(peer: &HttpPeer) -> Option<SocketAddr> {
        peer.address().as_inet().copied()
    }

    /// Runs `f` on the health of `addr`, if it is still one of ours.
    fn with_health<T>(&self, addr: SocketAddr, f: impl FnOnce(&AddressHealth) -> T) -> Option<T> {
        let list = self.addresses.load();
        list.iter().find(|a| a.addr == addr).map(|a| f(&a.health))
    }

    /// A real request could not connect to `peer` (Pingora's
    /// `fail_to_connect`): a refused, failed or timed-out connect counts
    /// against the address. A TLS failure does not: it is a configuration
    /// or certificate problem of the whole backend, which ejection would
    /// not cure.
    pub fn connect_failed(&self, peer: &HttpPeer, e: &Error) {
        use ErrorType::*;
        let counts = matches!(
            e.etype(),
            ConnectRefused | ConnectTimedout | ConnectNoRoute | ConnectError | SocketError
        );
        if counts {
            self.failure_at(Self::address_of(peer));
        }
    }

    /// A real request to `addr` ended (Pingora's `logging`): an answer
    /// clears the address's failures; a timeout waiting for the backend
    /// counts against it. Connect failures were counted by
    /// [`Upstream::connect_failed`].
    pub fn request_ended(&self, addr: Option<SocketAddr>, e: Option<&Error>) {
        let Some(addr) = addr else { return };
        match e {
            None => {
                let t = self.with_health(addr, |h| h.request_succeeded(&self.health));
                if t == Some(Transition::Readmitted) {
                    log::info!(
                        "backend {}: {addr} answers again, back in service",
                        self.name
                    );
                }
            }
            Some(e)
                if e.esource() == &ErrorSource::Upstream
                    && matches!(
                        e.etype(),
                        ErrorType::ReadTimedout | ErrorType::WriteTimedout
                    ) =>
            {
                self.failure_at(Some(addr));
            }
            Some(_) => {}
        }
    }

    fn failure_at(&self, addr: Option<SocketAddr>) {
        let Some(addr) = addr else { return };
        let t = self.with_health(addr, |h| h.failure(&self.health, now_ms()));
        if t == Some(Transition::Ejected) {
            log::warn!(
                "backend {}: {addr} ejected after {} consecutive failures of real requests",
                self.name,
                self.health.unhealthy_after
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;

    fn upstream(yaml_backend: &str, previous: Option<&Upstream>) -> Upstream {
        let text = format!("version: 1\nbackends:\n  b: {yaml_backend}\ndefault: b\n");
        let config = parse(&text, "t.yaml").unwrap();
        let counter = IntCounter::new("fail_open_test", "test").unwrap();
        Upstream::build(&config.backends[0], previous, counter).unwrap()
    }

    fn peer_port(u: &Upstream) -> u16 {
        Upstream::address_of(&u.pick()).unwrap().port()
    }

    #[test]
    fn pick_takes_addresses_in_turn_and_skips_ejected_ones() {
        let u = upstream("{ urls: [http://127.0.0.1:1, http://127.0.0.1:2] }", None);
        let mut ports: Vec<u16> = (0..4).map(|_| peer_port(&u)).collect();
        ports.sort();
        assert_eq!(ports, vec![1, 1, 2, 2]);
        let first = u.address_list()[0].clone();
        for _ in 0..u.health.unhealthy_after {
            first.health.failure(&u.health, 0);
        }
        assert!((0..4).all(|_| peer_port(&u) == 2));
        assert_eq!(u.fail_open.get(), 0);
    }

    #[test]
    fn a_lent_address_is_the_one_pick_would_copy() {
        let u = upstream("{ urls: [http://127.0.0.1:1, http://127.0.0.1:2] }", None);
        // Both take the next address in the one turn order.
        let lent: Vec<u16> = (0..2).map(|_| u.pick_with(|a| a.addr.port())).collect();
        let copied: Vec<u16> = (0..2).map(|_| peer_port(&u)).collect();
        assert_eq!(lent, copied);
        assert_ne!(lent[0], lent[1]);
        u.pick_with(|a| assert_eq!(Upstream::address_of(a.peer()), Some(a.addr)));
    }

    #[test]
    fn peers_hold_answers_to_pingoras_length_rules() {
        // The fast path reads answers with a client session made without
        // the peer (`fast_path::attempt::upstream_session`), which is the
        // same only while no peer lets an invalid Content-Length through.
        let u = upstream("{ url: http://127.0.0.1:1 }", None);
        u.pick_with(|a| assert!(!a.peer().options.allow_h1_response_invalid_content_length));
    }

    #[test]
    fn with_every_address_down_requests_still_go_and_are_counted() {
        let u = upstream("{ urls: [http://127.0.0.1:1, http://127.0.0.1:2] }", None);
        for a in u.address_list().iter() {
            for _ in 0..u.health.unhealthy_after {
                a.health.failure(&u.health, 0);
            }
        }
        let mut ports: Vec<u16> = (0..4).map(|_| peer_port(&u)).collect();
        ports.sort();
        assert_eq!(ports, vec![1, 1, 2, 2]);
        assert_eq!(u.fail_open.get(), 4);
    }

    #[test]
    fn health_survives_a_rebuild_and_a_new_resolution_for_addresses_that_stay() {
        let old = upstream("{ urls: [http://127.0.0.1:1, http://127.0.0.1:2] }", None);
        let down = old.address_list()[0].clone();
        for _ in 0..old.health.unhealthy_after {
            down.health.failure(&old.health, 0);
        }
        let new = upstream(
            "{ urls: [http://127.0.0.1:1, http://127.0.0.1:3] }",
            Some(&old),
        );
        let list = new.address_list();
        assert!(!list[0].health.is_up(), "127.0.0.1:1 stays down");
        assert!(list[1].health.is_up(), "a new address starts up");

        let one: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let four: SocketAddr = "127.0.0.1:4".parse().unwrap();
        assert!(!new.update_addresses(&[(0, one), (1, "127.0.0.1:3".parse().unwrap())]));
        assert!(new.update_addresses(&[(0, one), (1, four)]));
        let list = new.address_list();
        assert_eq!(list[1].addr, four);
        assert!(!list[0].health.is_up());
    }

    #[test]
    fn connect_failures_eject_but_tls_failures_do_not() {
        let u = upstream("{ urls: [http://127.0.0.1:1, http://127.0.0.1:2] }", None);
        let peer = u.address_list()[0].peer().clone();
        let tls = Error::new(ErrorType::TLSHandshakeFailure);
        for _ in 0..5 {
            u.connect_failed(&peer, &tls);
        }
        assert!(u.address_list()[0].health.is_up());
        let refused = Error::new(ErrorType::ConnectRefused);
        for _ in 0..u.health.unhealthy_after {
            u.connect_failed(&peer, &refused);
        }
        assert!(!u.address_list()[0].health.is_up());
    }
}
