//! The connection loop in front of Pingora's HTTP/1 handling. Pingora times
//! out each read of a request header, not the header as a whole, so a client
//! sending one byte every few seconds (slowloris) could hold a connection for
//! ever. Here the header of every request must arrive whole within a deadline
//! from its first byte; otherwise the connection gets 408 and is closed. The
//! bytes read are handed to Pingora, which parses them as usual.
//!
//! HTTP/2 (h2c preface or TLS ALPN) is handed to Pingora unchanged: its
//! frames have their own flow control and limits.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::BytesMut;
use pingora::apps::{HttpServerApp, ServerApp};
use pingora::protocols::http::ServerSession;
use pingora::protocols::{ALPN, Stream};
use pingora::server::ShutdownWatch;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use super::fast_path::{FastPath, Served, ServedInPlace};
use super::hygiene::{MAX_HEADER_BYTES, request_line_ok};
use super::kept_timer::KeptTimer;
use super::proxy_protocol::{Admission, admit, peer_ip};
use crate::live::Live;

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// How the loop waits.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// From the first byte of a request to the end of its header.
    pub header_deadline: Duration,
    /// Idle time allowed between requests on a kept-alive connection.
    pub keepalive: Duration,
}

/// Counters the loop keeps: `strangler_rejected_requests_total` with
/// reasons `header_timeout`, `headers_too_large` and `bad_request_line`.
#[derive(Debug, Clone)]
pub struct ConnectionStats {
    pub header_timeouts: prometheus::IntCounter,
    pub headers_too_large: prometheus::IntCounter,
    pub bad_request_lines: prometheus::IntCounter,
    pub proxy_protocol: prometheus::IntCounter,
}

/// Wraps Pingora's HTTP application (`HttpProxy`) with the header deadline;
/// with a fast path, HTTP/1 requests it owns are served there instead.
pub struct GuardedApp<A> {
    app: Arc<A>,
    fast: Option<FastPath>,
    /// Whether the fast path reads requests in place: only while no
    /// connection has a request limit (`keepalive_request_limit`), as it
    /// keeps no per-connection count (see `fast_path::in_place`).
    read_in_place: bool,
    limits: ConnectionLimits,
    h2c: bool,
    stats: ConnectionStats,
    /// For `proxy_protocol` and `trusted_proxies`, read per connection so a
    /// reload changes them.
    live: Arc<Live>,
}

impl<A> std::fmt::Debug for GuardedApp<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardedApp")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl<A: HttpServerApp> GuardedApp<A> {
    pub fn new(
        app: A,
        limits: ConnectionLimits,
        h2c: bool,
        stats: ConnectionStats,
        live: Arc<Live>,
        fast: Option<FastPath>,
    ) -> GuardedApp<A> {
        let read_in_place = app
            .server_options()
            .is_none_or(|o| o.keepalive_request_limit.is_none());
        GuardedApp {
            app: Arc::new(app),
            fast,
            read_in_place,
            limits,
            h2c,
            stats,
            live,
        }
    }
}

impl<A: HttpServerApp> GuardedApp<A> {
    /// The keep-alive settings a connection's next session gets: those the
    /// last one left, or the defaults for a new connection.
    fn configure(
        &self,
        session: &mut ServerSession,
        settings: Option<pingora::apps::HttpPersistentSettings>,
        shutdown: &ShutdownWatch,
    ) {
        match settings {
            Some(s) => s.apply_to_session(session),
            None => {
                session.set_keepalive(Some(self.limits.keepalive.as_secs().max(1)));
                session.set_keepalive_reuses_remaining(
                    self.app
                        .server_options()
                        .and_then(|o| o.keepalive_request_limit),
                );
            }
        }
        if *shutdown.borrow() {
            // Draining (upgrade or SIGTERM): answer this request, then
            // close, so that the client's next request opens a connection
            // to the new process instead of racing our exit.
            session.set_keepalive(None);
        }
    }
}

/// What reading one request header gave.
enum Head {
    /// Bytes up to (and maybe beyond) the end of the header.
    Complete(BytesMut),
    /// The client closed (or stayed idle past keep-alive) between requests.
    Gone,
    /// The header did not arrive whole in time.
    TimedOut,
    TooLarge,
}

/// Whether a cleartext connection opens with the HTTP/2 preface (h2c with
/// prior knowledge); `None` if it sends nothing in time or closes.
///
/// Peeks one byte more at a time, and only while the bytes so far are a
/// prefix of the preface: an HTTP/1 request differs within its first three
/// bytes (`GET`, `PUT`, `PROPFIND`). Peeking the whole 24-byte preface at
/// once would wait for 24 bytes, so a complete HTTP/1 request shorter than
/// that (`GET / HTTP/1.0` and its blank line) would hang, and a client could
/// hold a connection by sending 23 bytes. The first byte may take the idle
/// time; the rest of the preface is held to the header deadline.
async fn h2c_preface(stream: &mut Stream, limits: ConnectionLimits) -> Option<bool> {
    let mut buf = [0u8; H2_PREFACE.len()];
    match tokio::time::timeout(limits.keepalive, stream.try_peek(&mut buf[..1])).await {
        Ok(Ok(true)) => {}
        // A stream that cannot peek: leave it to HTTP/1.
        Ok(Ok(false)) => return Some(false),
        Ok(Err(_)) | Err(_) => return None,
    }
    let deadline = Instant::now() + limits.header_deadline;
    for n in 1..=H2_PREFACE.len() {
        if n > 1 {
            match tokio::time::timeout_at(deadline, stream.try_peek(&mut buf[..n])).await {
                Ok(Ok(true)) => {}
                Ok(Ok(false)) => return Some(false),
                Ok(Err(_)) | Err(_) => return None,
            }
        }
        if buf[n - 1] != H2_PREFACE[n - 1] {
            return Some(false);
        }
    }
    Some(true)
}

fn header_complete(buf: &[u8]) -> bool {
    // A client that sent one request and waits has sent a buffer that ends
    // with its header's end: known without scanning the header byte by byte.
    // httparse also accepts bare LF line ends: LF LF ends a header too.
    buf.ends_with(b"\r\n\r\n")
        || buf.windows(4).any(|w| w == b"\r\n\r\n")
        || buf.windows(2).any(|w| w == b"\n\n")
}

/// Reads one request header, starting with `carried`: bytes a client sent
/// past the end of its previous request (pipelined), or an empty buffer
/// to read into. The idle wait is on the connection's kept timer, `idle`,
/// counted from `answered`, the end of the last answer the fast path gave
/// (from now without one).
async fn read_head(
    stream: &mut Stream,
    limits: ConnectionLimits,
    carried: Option<BytesMut>,
    idle: &mut KeptTimer,
    answered: Option<std::time::Instant>,
) -> Head {
    let mut buf = match carried {
        Some(b) if !b.is_empty() => b,
        spare => {
            let mut buf = spare.unwrap_or_else(|| BytesMut::with_capacity(4096));
            // Idle between requests: the keep-alive timeout, from the last
            // answer's end when there was one; nothing is lost.
            match idle
                .within_from(answered, Some(limits.keepalive), stream.read_buf(&mut buf))
                .await
            {
                Some(Ok(0)) | Some(Err(_)) | None => return Head::Gone,
                Some(Ok(_)) => {}
            }
            buf
        }
    };
    // The header deadline starts when the first bytes are in; the clock is
    // read only for a header that did not come whole in one read.
    let mut deadline = None;
    loop {
        if header_complete(&buf) {
            return Head::Complete(buf);
        }
        if buf.len() > MAX_HEADER_BYTES + 1024 {
            return Head::TooLarge;
        }
        let deadline = *deadline.get_or_insert_with(|| Instant::now() + limits.header_deadline);
        match tokio::time::timeout_at(deadline, stream.read_buf(&mut buf)).await {
            // A close mid-header: let the parser see what there is.
            Ok(Ok(0)) | Ok(Err(_)) => return Head::Complete(buf),
            Ok(Ok(_)) => {}
            Err(_) => return Head::TimedOut,
        }
    }
}

/// Answers `status` and ends the connection. With `linger`, the client may
/// still be sending (the rest of a header over the limit): closing with its
/// bytes unread would make the kernel answer them with a reset, which can
/// destroy our answer before the client reads it. So stop writing first, then
/// read and discard for a short, bounded while (as nginx's lingering close).
async fn refuse(stream: &mut Stream, status: &str, linger: bool) {
    let response = format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = stream.write_all(response.as_bytes()).await;
        let _ = stream.flush().await;
    })
    .await;
    if !linger {
        return;
    }
    let _ = tokio::time::timeout(LINGER_TIME, async {
        let _ = stream.shutdown().await;
        let mut sink = [0u8; 8192];
        let mut drained = 0;
        while drained < LINGER_BYTES {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
    })
    .await;
}

/// How long, and how much, a refused client may go on sending before the
/// connection is closed anyway.
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 1 << 20;

#[async_trait]
impl<A> ServerApp for GuardedApp<A>
where
    A: HttpServerApp + Send + Sync + 'static,
{
    async fn process_new(
        self: &Arc<Self>,
        mut stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let tls = stream.get_ssl_digest().is_some();
        // On TLS the PROXY header came before the handshake (see
        // `proxy_protocol::PreTlsProxyProtocol`).
        if !tls {
            let peer = peer_ip(stream.get_socket_digest());
            let fd = stream.id();
            match admit(
                &mut stream,
                peer,
                fd,
                &self.live,
                self.limits.header_deadline,
            )
            .await
            {
                Ok(Admission::Accepted(Some(digest))) => stream.set_socket_digest(*digest),
                Ok(_) => {}
                Err(e) => {
                    log::debug!("connection refused: {e}");
                    self.stats.proxy_protocol.inc();
                    return None;
                }
            }
        }
        let mut h2 = matches!(stream.selected_alpn_proto(), Some(ALPN::H2));
        if !tls && self.h2c && !h2 {
            match h2c_preface(&mut stream, self.limits).await {
                Some(is_h2) => h2 = is_h2,
                None => return None,
            }
        }
        if h2 {
            return ServerApp::process_new(&self.app, stream, shutdown).await;
        }

        let mut settings = None;
        let mut carried = None;
        let mut answered = None;
        // The waits every request makes, on timers kept for the
        // connection's life (see `kept_timer`).
        let mut idle = KeptTimer::new();
        let mut answer = KeptTimer::new();
        loop {
            let head = read_head(
                &mut stream,
                self.limits,
                carried.take(),
                &mut idle,
                answered.take(),
            )
            .await;
            let prefix = match head {
                Head::Complete(b) if request_line_ok(&b) => b,
                Head::Complete(_) => {
                    self.stats.bad_request_lines.inc();
                    refuse(&mut stream, "400 Bad Request", true).await;
                    return None;
                }
                Head::Gone => return None,
                Head::TimedOut => {
                    self.stats.header_timeouts.inc();
                    // A client this slow gets no more time.
                    refuse(&mut stream, "408 Request Timeout", false).await;
                    return None;
                }
                Head::TooLarge => {
                    self.stats.headers_too_large.inc();
                    refuse(&mut stream, "431 Request Header Fields Too Large", true).await;
                    return None;
                }
            };
            let mut prefix = prefix;
            if let Some(fast) = &self.fast {
                // The common request is read where it lies; the rest by
                // Pingora's session, which the fast path may still serve.
                let mut session_path = true;
                if self.read_in_place {
                    match fast
                        .serve_in_place(stream, prefix, shutdown, &mut answer)
                        .await
                    {
                        ServedInPlace::Answered(Some(next)) => {
                            (stream, settings, carried, answered) = (
                                next.stream,
                                next.settings,
                                next.carried,
                                Some(next.answered),
                            );
                            continue;
                        }
                        ServedInPlace::Answered(None) => return None,
                        ServedInPlace::NotInPlace(s, bytes) => (stream, prefix) = (s, bytes),
                        ServedInPlace::ToEngine(s, bytes) => {
                            (stream, prefix) = (s, bytes);
                            session_path = false;
                        }
                    }
                }
                if session_path {
                    // Kept for the engine, should the fast path not serve it.
                    let header = prefix.clone();
                    let mut session = ServerSession::new_http1(stream);
                    self.configure(&mut session, settings.take(), shutdown);
                    session.set_pipelined_prefix(prefix);
                    match fast.serve(session, shutdown, &mut answer).await {
                        Served::Answered(Some(next)) => {
                            (stream, settings, carried, answered) = (
                                next.stream,
                                next.settings,
                                next.carried,
                                Some(next.answered),
                            );
                            continue;
                        }
                        Served::NotMine(s, persistent) => {
                            stream = s;
                            settings = Some(persistent);
                            prefix = header;
                        }
                        Served::Answered(None) | Served::Gone => return None,
                    }
                }
            }
            let mut session = ServerSession::new_http1(stream);
            self.configure(&mut session, settings.take(), shutdown);
            session.set_pipelined_prefix(prefix);
            let reused = self.app.process_new_http(session, shutdown).await?;
            let (s, persistent) = reused.consume();
            stream = s;
            settings = persistent;
        }
    }

    async fn cleanup(&self) {
        ServerApp::cleanup(self.app.as_ref()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::kept_timer::a_minute_ago;
    use crate::dataplane::loopback::accepted_connection;

    #[test]
    fn header_ends() {
        assert!(header_complete(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert!(header_complete(b"GET / HTTP/1.1\nHost: x\n\n"));
        assert!(!header_complete(b"GET / HTTP/1.1\r\nHost: x\r\n"));
        // Pipelined: the end is inside the buffer, not at its end.
        assert!(header_complete(
            b"GET / HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n"
        ));
        assert!(!header_complete(b"GET / HTTP/1.1\r\nHost: x\r\n\r"));
    }

    #[tokio::test]
    async fn the_idle_wait_is_counted_from_the_last_answer() {
        let limits = ConnectionLimits {
            header_deadline: Duration::from_secs(30),
            keepalive: Duration::from_secs(30),
        };
        let mut idle = KeptTimer::new();
        // The last answer ended a minute ago: the 30 s keep-alive has
        // passed, and a silent client is let go at once (counted from
        // now, it would be held for 30 s).
        let (mut stream, _client) = accepted_connection().await;
        let long_ago = a_minute_ago();
        let head = tokio::time::timeout(
            Duration::from_secs(10),
            read_head(&mut stream, limits, None, &mut idle, Some(long_ago)),
        )
        .await
        .expect("the keep-alive counted from the last answer");
        assert!(matches!(head, Head::Gone));
        // An answer just now: the next request is read.
        let (mut stream, mut client) = accepted_connection().await;
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .unwrap();
        let answered = Some(std::time::Instant::now());
        let head = read_head(&mut stream, limits, None, &mut idle, answered).await;
        assert!(matches!(head, Head::Complete(b) if b.ends_with(b"\r\n\r\n")));
    }

    #[test]
    fn request_lines() {
        assert!(request_line_ok(b"GET /a?b=c HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert!(request_line_ok(b"GET / HTTP/1.0\n\n"));
        assert!(request_line_ok(b"GET /partial"));
        assert!(!request_line_ok(b"GET /a b HTTP/1.1\r\n\r\n"));
        assert!(!request_line_ok(b"GET  /a HTTP/1.1\r\n\r\n"));
        assert!(!request_line_ok(b"GET /a\tb HTTP/1.1\r\n\r\n"));
        assert!(!request_line_ok(b"GET /a\r\n\r\n"));
        assert!(!request_line_ok(b"GET /a HTTP/1.1 \r\n\r\n"));
        assert!(!request_line_ok(b"GET /a HTTP/1.10\r\n\r\n"));
    }
}
