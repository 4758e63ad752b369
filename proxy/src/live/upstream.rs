//! Backends as Pingora peers: addresses resolved once per configuration
//! version (Pingora's `HttpPeer::new` would panic on a name it cannot
//! resolve), timeouts and TLS settings applied, endpoints taken in turn.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pingora::upstreams::peer::HttpPeer;

use crate::config::{Backend, Endpoint};

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

/// One backend, ready to hand out peers.
#[derive(Debug)]
pub struct Upstream {
    pub name: String,
    peers: Vec<HttpPeer>,
    next: AtomicUsize,
    pub read_timeout: Duration,
    pub connect_timeout: Duration,
}

impl Upstream {
    /// Resolves every endpoint of `backend`; fails with a message naming the
    /// endpoint that could not be resolved.
    pub fn build(backend: &Backend) -> Result<Upstream, String> {
        let mut peers = Vec::new();
        for endpoint in &backend.endpoints {
            let addrs: Vec<SocketAddr> = resolve_endpoint(endpoint)?;
            for addr in addrs {
                let mut peer = HttpPeer::new(addr, endpoint.tls, endpoint.host.clone());
                let o = &mut peer.options;
                o.connection_timeout = Some(backend.connect_timeout);
                o.read_timeout = Some(backend.read_timeout);
                o.write_timeout = Some(backend.write_timeout);
                o.idle_timeout = Some(backend.idle_timeout);
                o.verify_cert = backend.tls_verify;
                o.verify_hostname = backend.tls_verify;
                peers.push(peer);
            }
        }
        if peers.is_empty() {
            return Err(format!("backend {} has no address", backend.name));
        }
        Ok(Upstream {
            name: backend.name.to_string(),
            peers,
            next: AtomicUsize::new(0),
            read_timeout: backend.read_timeout,
            connect_timeout: backend.connect_timeout,
        })
    }

    /// The next peer in turn.
    pub fn pick(&self) -> Box<HttpPeer> {
        let n = if self.peers.len() == 1 {
            0
        } else {
            self.next.fetch_add(1, Ordering::Relaxed) % self.peers.len()
        };
        Box::new(self.peers[n].clone())
    }

    pub fn addresses(&self) -> usize {
        self.peers.len()
    }
}
