//! A TCP relay that can cut and restore a connection path (a database that
//! goes away and comes back).
//!
//! A test points a client (here: the proxy's diff store) at the relay's
//! ephemeral loopback port instead of the real server. While the path is up
//! every accepted connection is forwarded byte for byte to the target. A
//! [`Relay::cut`] closes every connection that is open at that moment, as a
//! stopped server or a failed-over network would, and then treats new ones
//! according to a [`Cut`] mode until [`Relay::restore`]:
//!
//! - [`Cut::Refuse`]: a new connection is accepted and closed at once, so
//!   the client fails fast (what a stopped server does to a connect).
//! - [`Cut::Blackhole`]: a new connection is accepted and then never
//!   answered, so the client only finds out through its own timeouts (a
//!   partition, a firewall dropping packets). When the path is restored such
//!   a held connection is forwarded after all, as a healed network would
//!   deliver it late; a later cut closes it like any other.
//!
//! The relay keeps the same port for its whole life (it never rebinds), so a
//! client's configuration stays valid across cuts. It stops with the test's
//! runtime.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What a cut path does with new connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// Accept and close at once: the client sees the connection fail.
    Refuse,
    /// Accept and never answer: the client waits for its own timeout.
    Blackhole,
}

/// The state every connection watches: how many cuts there have been (a
/// connection opened before the latest one must close) and whether the path
/// is cut now.
#[derive(Debug, Clone, Copy)]
struct Path {
    cuts: u64,
    cut: Option<Cut>,
}

#[derive(Debug, Default)]
struct Counters {
    accepted: AtomicU64,
    forwarded: AtomicU64,
    refused: AtomicU64,
    held: AtomicU64,
    closed_by_cut: AtomicU64,
}

/// A running relay; see the module documentation.
#[derive(Debug, Clone)]
pub struct Relay {
    addr: SocketAddr,
    target: SocketAddr,
    path: Arc<watch::Sender<Path>>,
    counters: Arc<Counters>,
}

impl Relay {
    /// Listens on an ephemeral loopback port and forwards to `target`.
    pub async fn start(target: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind relay");
        let addr = listener.local_addr().expect("relay address");
        let (path, _) = watch::channel(Path { cuts: 0, cut: None });
        let relay = Relay {
            addr,
            target,
            path: Arc::new(path),
            counters: Arc::new(Counters::default()),
        };
        let r = relay.clone();
        tokio::spawn(async move {
            loop {
                // An accept error (e.g. out of descriptors) is transient;
                // the listener itself stays usable.
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                r.counters.accepted.fetch_add(1, Ordering::Relaxed);
                let now = *r.path.borrow();
                match now.cut {
                    Some(Cut::Refuse) => {
                        r.counters.refused.fetch_add(1, Ordering::Relaxed);
                        drop(client);
                    }
                    Some(Cut::Blackhole) => {
                        r.counters.held.fetch_add(1, Ordering::Relaxed);
                        tokio::spawn(r.clone().hold(client, now.cuts));
                    }
                    None => {
                        tokio::spawn(r.clone().forward(client, now.cuts));
                    }
                }
            }
        });
        relay
    }

    /// The address clients should use instead of the target's.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Closes every open connection and, until [`Relay::restore`], treats
    /// new ones as `mode` says.
    pub fn cut(&self, mode: Cut) {
        self.path.send_modify(|p| {
            p.cuts += 1;
            p.cut = Some(mode);
        });
    }

    /// Forwards new connections again (and held ones, after a blackhole).
    pub fn restore(&self) {
        self.path.send_modify(|p| p.cut = None);
    }

    /// Connections accepted so far, in any state of the path.
    pub fn accepted(&self) -> u64 {
        self.counters.accepted.load(Ordering::Relaxed)
    }

    /// Connections that reached the target.
    pub fn forwarded(&self) -> u64 {
        self.counters.forwarded.load(Ordering::Relaxed)
    }

    /// Connections closed on arrival during a [`Cut::Refuse`].
    pub fn refused(&self) -> u64 {
        self.counters.refused.load(Ordering::Relaxed)
    }

    /// Connections held unanswered during a [`Cut::Blackhole`].
    pub fn held(&self) -> u64 {
        self.counters.held.load(Ordering::Relaxed)
    }

    /// Open connections that a cut closed.
    pub fn closed_by_cut(&self) -> u64 {
        self.counters.closed_by_cut.load(Ordering::Relaxed)
    }

    /// A blackholed connection: nothing is read or answered until the path
    /// is restored (then it is forwarded) or cut again (then it is closed).
    async fn hold(self, client: TcpStream, cuts: u64) {
        let mut rx = self.path.subscribe();
        let woke = rx.wait_for(|p| p.cuts != cuts || p.cut.is_none()).await;
        match woke.map(|p| *p) {
            Ok(p) if p.cuts == cuts => self.forward(client, cuts).await,
            _ => {
                self.counters.closed_by_cut.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Pumps bytes both ways until either side closes or a cut comes.
    async fn forward(self, mut client: TcpStream, cuts: u64) {
        let mut rx = self.path.subscribe();
        let Ok(mut server) = TcpStream::connect(self.target).await else {
            // The target itself is down: the client sees a closed connection,
            // as it would connecting to the target directly.
            return;
        };
        // Small messages (database protocol round trips) go out at once.
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        self.counters.forwarded.fetch_add(1, Ordering::Relaxed);
        tokio::select! {
            _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
            _ = rx.wait_for(|p| p.cuts != cuts) => {
                self.counters.closed_by_cut.fetch_add(1, Ordering::Relaxed);
            }
        }
        // Dropping both streams closes them; a cut is seen by both ends.
    }
}
