//! The fast path's idle upstream connections, one pool per worker. Pingora's
//! own pool keeps a task per idle connection to notice a close; here nothing
//! runs while a connection is idle. Instead a connection is looked at when it
//! is taken: one read that must find nothing waiting. A closed connection
//! (end of stream), one with unexpected bytes, or one idle past the
//! backend's `idle_timeout` is dropped then. A close that races a request
//! is the case every pool has; the fast path retries an idempotent request
//! once on a fresh connection, as Pingora's engine does.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use pingora::protocols::Stream;
use tokio::io::{AsyncRead, ReadBuf};

/// Idle connections kept per upstream address; beyond it the oldest goes.
pub const IDLE_PER_ADDRESS: usize = 128;

/// Idle upstream connections by address. Each worker has its own, used
/// only from its own thread; the lock is never contended. The addresses
/// are the configuration's, so they hash with foldhash rather than SipHash,
/// as `config::path_index` explains: the map is used twice per request.
#[derive(Default)]
pub struct UpstreamPool {
    idle: Mutex<HashMap<SocketAddr, Vec<Idle>, foldhash::fast::RandomState>>,
}

struct Idle {
    stream: Stream,
    since: Instant,
}

impl std::fmt::Debug for UpstreamPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let idle = self
            .idle
            .lock()
            .map(|m| m.values().map(Vec::len).sum::<usize>());
        f.debug_struct("UpstreamPool")
            .field("idle", &idle.unwrap_or(0))
            .finish()
    }
}

impl UpstreamPool {
    /// The most recently used live connection to `addr` idle for less than
    /// `max_idle` at `now`, if there is one. `now` is the caller's own
    /// reading of the clock (the request's start): the pool reads none.
    pub fn take(
        &self,
        addr: SocketAddr,
        max_idle: Option<Duration>,
        now: Instant,
    ) -> Option<Stream> {
        let mut idle = self.idle.lock().ok()?;
        let list = idle.get_mut(&addr)?;
        while let Some(mut conn) = list.pop() {
            let fresh = max_idle.is_none_or(|max| now.saturating_duration_since(conn.since) < max);
            if fresh && quiet(&mut conn.stream) {
                return Some(conn.stream);
            }
        }
        None
    }

    /// Keeps `stream` (a connection whose last answer was read whole) for
    /// the next request to `addr`, idle from `since` (the end of the
    /// request that used it).
    pub fn put(&self, addr: SocketAddr, stream: Stream, since: Instant) {
        let Ok(mut idle) = self.idle.lock() else {
            return;
        };
        let list = idle.entry(addr).or_default();
        if list.len() >= IDLE_PER_ADDRESS {
            list.remove(0);
        }
        list.push(Idle { stream, since });
    }
}

/// Whether an idle connection has nothing to read: no end of stream, no
/// error, no bytes the server sent unasked. One poll, never a wait.
fn quiet(stream: &mut Stream) -> bool {
    let mut byte = [0u8; 1];
    let mut buf = ReadBuf::new(&mut byte);
    let mut cx = Context::from_waker(Waker::noop());
    matches!(Pin::new(stream).poll_read(&mut cx, &mut buf), Poll::Pending)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    async fn pair() -> (Stream, tokio::net::TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let stream: Stream = Box::new(pingora::protocols::l4::stream::Stream::from(client));
        (stream, server)
    }

    #[tokio::test]
    async fn a_live_connection_comes_back_and_a_closed_one_does_not() {
        let pool = UpstreamPool::default();
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let now = Instant::now();
        let (live, _live_server) = pair().await;
        pool.put(addr, live, now);
        assert!(
            pool.take(addr, None, now).is_some(),
            "a quiet connection is reused"
        );
        assert!(pool.take(addr, None, now).is_none(), "taken once only");

        let (closed, server) = pair().await;
        drop(server);
        tokio::time::sleep(Duration::from_millis(50)).await;
        pool.put(addr, closed, now);
        assert!(
            pool.take(addr, None, now).is_none(),
            "a closed connection is dropped"
        );

        let (chatty, mut server) = pair().await;
        server
            .write_all(b"HTTP/1.1 408 Timeout\r\n\r\n")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        pool.put(addr, chatty, now);
        assert!(
            pool.take(addr, None, now).is_none(),
            "unasked bytes: dropped"
        );
    }

    #[tokio::test]
    async fn a_connection_idle_past_the_limit_is_dropped() {
        let pool = UpstreamPool::default();
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let limit = Some(Duration::from_secs(5));
        let put_at = Instant::now();
        let (young, _young_server) = pair().await;
        pool.put(addr, young, put_at);
        assert!(
            pool.take(addr, limit, put_at + Duration::from_secs(4))
                .is_some(),
            "idle 4 s of 5: reused"
        );
        let (old, _old_server) = pair().await;
        pool.put(addr, old, put_at);
        assert!(
            pool.take(addr, limit, put_at + Duration::from_secs(5))
                .is_none(),
            "idle 5 s of 5: dropped"
        );
        // A request that started before the connection was put back (its
        // clock read earlier) finds it idle for no time at all.
        let (fresh, _fresh_server) = pair().await;
        pool.put(addr, fresh, put_at + Duration::from_secs(1));
        assert!(pool.take(addr, limit, put_at).is_some());
    }
}
