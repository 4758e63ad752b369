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
//! [`Relay::cut_after`] arms a cut at an exact point of the conversation:
//! the first client message that contains a given byte string is forwarded
//! to the server, and the path is cut before any answer can come back (a
//! database that receives a `COMMIT` and is lost before it can say so, the
//! case where a client cannot know whether its transaction committed).
//!
//! The relay keeps the same port for its whole life (it never rebinds), so a
//! client's configuration stays valid across cuts. It stops with the test's
//! runtime.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
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
    tripped: AtomicU64,
}

/// The longest pattern [`Relay::cut_after`] finds split across reads.
const MAX_PATTERN: usize = 4096;

/// An armed [`Relay::cut_after`]: the bytes to look for and the cut to make.
#[derive(Debug)]
struct Trip {
    pattern: Vec<u8>,
    mode: Cut,
}

/// A running relay; see the module documentation.
#[derive(Debug, Clone)]
pub struct Relay {
    addr: SocketAddr,
    target: SocketAddr,
    path: Arc<watch::Sender<Path>>,
    counters: Arc<Counters>,
    trip: Arc<Mutex<Option<Trip>>>,
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
            trip: Arc::new(Mutex::new(None)),
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

    /// Arms a cut: the first client message (on any connection) that
    /// contains `pattern` is forwarded to the target in full, and then the
    /// path is cut as [`Relay::cut`] with `mode` does. Nothing the target
    /// sends on that connection after the message reaches the client. Fires
    /// once; see [`Relay::tripped`].
    pub fn cut_after(&self, pattern: &[u8], mode: Cut) {
        assert!(
            !pattern.is_empty() && pattern.len() <= MAX_PATTERN,
            "a pattern of 1 to {MAX_PATTERN} bytes"
        );
        *self.trip.lock().unwrap() = Some(Trip {
            pattern: pattern.to_vec(),
            mode,
        });
    }

    /// How many armed cuts ([`Relay::cut_after`]) have fired.
    pub fn tripped(&self) -> u64 {
        self.counters.tripped.load(Ordering::Relaxed)
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
    async fn forward(self, client: TcpStream, cuts: u64) {
        let mut rx = self.path.subscribe();
        let Ok(server) = TcpStream::connect(self.target).await else {
            // The target itself is down: the client sees a closed connection,
            // as it would connecting to the target directly.
            return;
        };
        // Small messages (database protocol round trips) go out at once.
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        self.counters.forwarded.fetch_add(1, Ordering::Relaxed);
        let (mut client_read, mut client_write) = client.into_split();
        let (mut server_read, mut server_write) = server.into_split();
        // Set once this connection carried the message of an armed cut:
        // from then on nothing goes back to the client.
        let tripped = AtomicBool::new(false);
        let up = async {
            let mut buf = vec![0u8; 64 * 1024];
            // The end of the previous read, for a pattern split across reads.
            let mut tail: Vec<u8> = Vec::new();
            loop {
                let n = match client_read.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let trip = self.take_trip(&tail, &buf[..n]);
                if trip.is_some() {
                    tripped.store(true, Ordering::SeqCst);
                }
                if server_write.write_all(&buf[..n]).await.is_err() {
                    break;
                }
                if let Some(mode) = trip {
                    self.counters.tripped.fetch_add(1, Ordering::Relaxed);
                    // Closes this connection too (the select below).
                    self.cut(mode);
                    std::future::pending::<()>().await;
                }
                tail.extend_from_slice(&buf[..n]);
                let keep = tail.len().min(MAX_PATTERN);
                tail.drain(..tail.len() - keep);
            }
            let _ = server_write.shutdown().await;
        };
        let down = async {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = match server_read.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                if tripped.load(Ordering::SeqCst) {
                    std::future::pending::<()>().await;
                }
                if client_write.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
            let _ = client_write.shutdown().await;
        };
        tokio::select! {
            _ = async { tokio::join!(up, down) } => {}
            _ = rx.wait_for(|p| p.cuts != cuts) => {
                self.counters.closed_by_cut.fetch_add(1, Ordering::Relaxed);
            }
        }
        // Dropping both streams closes them; a cut is seen by both ends.
    }

    /// The armed cut's mode if `chunk` (after `tail`, the end of the
    /// previous read) contains its pattern; disarms it.
    fn take_trip(&self, tail: &[u8], chunk: &[u8]) -> Option<Cut> {
        let mut armed = self.trip.lock().unwrap();
        let pattern = &armed.as_ref()?.pattern;
        let keep = tail.len().min(pattern.len().saturating_sub(1));
        let mut window = tail[tail.len() - keep..].to_vec();
        window.extend_from_slice(chunk);
        if window
            .windows(pattern.len())
            .any(|w| w == pattern.as_slice())
        {
            armed.take().map(|t| t.mode)
        } else {
            None
        }
    }
}

/// A fresh schema of the test database, and the same URL through a relay.
pub async fn postgres_through_relay(tag: &str) -> (String, String, Relay) {
    let direct = shadow_diff::store::testing::fresh_postgres_url(tag).await;
    let rest = direct.split_once("://").expect("URL scheme").1;
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    let with_port = if host_port.contains(':') {
        host_port.to_string()
    } else {
        format!("{host_port}:5432")
    };
    let target: SocketAddr = with_port
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .unwrap_or_else(|| panic!("cannot resolve {with_port} from {direct}"));
    let relay = Relay::start(target).await;
    let relayed = direct.replacen(host_port, &relay.addr().to_string(), 1);
    (direct, relayed, relay)
}
