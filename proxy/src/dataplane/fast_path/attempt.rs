//! One attempt on an upstream connection: the connection (a pooled one
//! when it is still good, else a new one), the waits the attempt is held
//! to, and the writes on it. The backend's address is chosen under the
//! address list's guard (`Upstream::pick_with`), and the peer, with its
//! name, options and TLS settings, is copied only to open a connection:
//! a request on a pooled connection copies none of it.

use std::future::Future;
use std::net::SocketAddr;
use std::task::Poll;
use std::time::Duration;

use pingora::protocols::Stream;
use pingora::protocols::http::v1::client::HttpSession as UpstreamSession;
use pingora::{Error, ErrorType, Result};
use tokio::io::AsyncWriteExt;

use super::FastPath;
use crate::dataplane::ctx::RequestCtx;
use crate::dataplane::service::MAX_CONNECT_ATTEMPTS;

/// An upstream connection for one attempt.
pub(super) struct Attempt {
    pub stream: Stream,
    pub addr: SocketAddr,
    pub timeouts: PeerTimeouts,
    pub reused: bool,
}

/// The waits of one attempt on its upstream connection: the backend's,
/// with the route's `timeout` for the answer if it has one.
#[derive(Debug, Clone, Copy)]
pub(super) struct PeerTimeouts {
    pub read: Option<Duration>,
    pub write: Option<Duration>,
}

impl FastPath {
    /// A connection to the chosen backend: a pooled one unless the last
    /// attempt's broke, else a new one, trying the backend's next address
    /// after a failed connect (nothing was sent, so any method may).
    pub(super) async fn connect(&self, ctx: &mut RequestCtx) -> Result<Attempt> {
        let route_timeout = ctx.route.and_then(|i| ctx.table.config().routes[i].timeout);
        loop {
            ctx.connect_attempts += 1;
            let fresh = std::mem::take(&mut ctx.fresh_connection);
            let upstream = &ctx.table.upstreams[ctx.backend.0];
            // A pooled connection needs only the chosen address and its
            // timeouts; the peer is copied only to open a new connection.
            let (addr, timeouts, pooled) = upstream.pick_with(|a| {
                let options = &a.peer().options;
                let timeouts = PeerTimeouts {
                    read: route_timeout.or(options.read_timeout),
                    write: options.write_timeout,
                };
                let pooled = match fresh {
                    false => self.pool.take(a.addr, options.idle_timeout, ctx.started),
                    true => None,
                };
                (
                    a.addr,
                    timeouts,
                    pooled.ok_or_else(|| Box::new(a.peer().clone())),
                )
            });
            ctx.upstream_addr = Some(addr);
            let (stream, reused) = match pooled {
                Ok(s) => (s, true),
                Err(peer) => match self.connector.new_stream(&*peer).await {
                    Ok(s) => (s, false),
                    Err(e) => {
                        upstream.connect_failed(&peer, &e);
                        let more =
                            ctx.connect_attempts < upstream.addresses().min(MAX_CONNECT_ATTEMPTS);
                        if more {
                            continue;
                        }
                        return Err(e);
                    }
                },
            };
            return Ok(Attempt {
                stream,
                addr,
                timeouts,
                reused,
            });
        }
    }
}

/// Writes and flushes `bytes` within the peer's write timeout, with the
/// error types Pingora's client session gives.
pub(super) async fn write_all(
    stream: &mut Stream,
    bytes: &[u8],
    timeout: Option<Duration>,
    what: &'static str,
) -> Result<()> {
    let write = async {
        stream.write_all(bytes).await?;
        stream.flush().await
    };
    let mut write = std::pin::pin!(write);
    // A head fits the socket's buffer at once nearly always: the clock is
    // read, and a timer made, only for a write that has to wait.
    let first = std::future::poll_fn(|cx| Poll::Ready(write.as_mut().poll(cx))).await;
    let written = match (first, timeout) {
        (Poll::Ready(written), _) => written,
        (Poll::Pending, Some(t)) => match tokio::time::timeout(t, write).await {
            Ok(written) => written,
            Err(_) => Err(std::io::Error::from(std::io::ErrorKind::TimedOut)),
        },
        (Poll::Pending, None) => write.await,
    };
    written.map_err(|e| {
        let kind = match e.kind() {
            std::io::ErrorKind::TimedOut => ErrorType::WriteTimedout,
            _ => ErrorType::WriteError,
        };
        Error::because(kind, what, e).into_up()
    })
}

/// A client session for reading the answer on `stream`, with the
/// attempt's timeouts. Of the peer's other options, Pingora's client
/// session reads only `allow_h1_response_invalid_content_length`, which
/// our peers leave off (`live::upstream`), as `UpstreamSession::new` does.
pub(super) fn upstream_session(stream: Stream, timeouts: PeerTimeouts) -> UpstreamSession {
    let mut session = UpstreamSession::new(stream);
    session.read_timeout = timeouts.read;
    session.write_timeout = timeouts.write;
    session
}
