//! Upstream faults: resets, garbage, bad framing, stale pooled connections
//! and retries, against an "evil backend" that speaks raw TCP.
//!
//! `faults.rs` covers a refused connection (a quick 502) and a backend that
//! never answers (504 at `read_timeout`); this file covers what happens once
//! a backend has accepted the connection and then misbehaves:
//!
//! - a body cut short (FIN or RST) after the head was forwarded: the client
//!   never gets something that looks complete, and its connection is closed;
//! - garbage instead of a status line, or nothing at all: 502 naming the
//!   backend;
//! - a head the proxy cannot frame (bad or conflicting Content-Length): 502;
//! - a broken upstream connection is never used again;
//! - a non-idempotent request is never sent twice, also on a stale pooled
//!   connection; an idempotent one may be retried once on a fresh connection
//!   (Pingora's policy), and its body is then counted and copied once.
//!
//! What Pingora does was checked in its source (pingora-proxy 0.9.1
//! `proxy_h1.rs`/`lib.rs`, pingora-core `protocols/http/v1/client.rs`,
//! `connectors/mod.rs`); the tests pin that behaviour down end to end.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use strangler_e2e::{Backend, Http, Proxy, Scrape, eventually};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A guard against a hung proxy; never a measure of anything.
const HANG: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------------------
// The evil backend
// ---------------------------------------------------------------------------

/// A request as the evil backend read it.
#[derive(Debug, Clone)]
struct Req {
    method: String,
    path: String,
    /// Id of the TCP connection it came on (1, 2, ... in accept order).
    conn: u64,
    /// How many requests that connection carried before this one: 0 on a
    /// fresh connection, more when the proxy reused a pooled one.
    nth: usize,
    body: Vec<u8>,
}

#[derive(Debug, Default)]
struct EvilState {
    accepted: AtomicU64,
    reqs: Mutex<Vec<Req>>,
    /// Connections this backend closed (FIN or RST) itself.
    closed: Mutex<Vec<u64>>,
    /// Armed connections reset as soon as the next request began to arrive,
    /// before the backend read any of it.
    killed_unread: Mutex<Vec<u64>>,
    /// Connections on which an unsolicited response was written while idle.
    junk_sent: Mutex<Vec<u64>>,
}

/// What to do with a connection after answering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum After {
    /// Keep reading requests on it, as a keep-alive server would.
    KeepAlive,
    /// Close it (FIN).
    Fin,
    /// Abort it (SO_LINGER 0: RST, unsent data dropped).
    Rst,
    /// Arm it: read the next request, then close without answering (the
    /// backend's keep-alive timeout fired as the request arrived).
    ArmCloseAfterRead,
    /// Arm it: reset it as soon as the next request starts to arrive,
    /// without reading any of it.
    ArmRstUnread,
    /// Write an unsolicited response while the connection is idle.
    IdleJunk,
}

/// A raw TCP server whose answer is chosen by the request path.
#[derive(Debug, Clone)]
struct Evil {
    addr: SocketAddr,
    state: Arc<EvilState>,
}

impl Evil {
    async fn start() -> Evil {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind evil");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(EvilState::default());
        let st = state.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let id = st.accepted.fetch_add(1, Ordering::SeqCst) + 1;
                tokio::spawn(serve(st.clone(), stream, id));
            }
        });
        Evil { addr, state }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn reqs(&self) -> Vec<Req> {
        self.state.reqs.lock().unwrap().clone()
    }

    /// Every copy of `method path` the backend read, in order.
    fn copies(&self, method: &str, path: &str) -> Vec<Req> {
        self.reqs()
            .into_iter()
            .filter(|r| r.method == method && r.path == path)
            .collect()
    }

    fn killed_unread(&self) -> Vec<u64> {
        self.state.killed_unread.lock().unwrap().clone()
    }

    async fn wait_closed(&self, conn: u64) {
        eventually(HANG, || async {
            self.state
                .closed
                .lock()
                .unwrap()
                .contains(&conn)
                .then_some(())
        })
        .await
        .unwrap_or_else(|| panic!("evil backend never closed connection {conn}"));
    }

    async fn wait_junk_sent(&self, conn: u64) {
        eventually(HANG, || async {
            self.state
                .junk_sent
                .lock()
                .unwrap()
                .contains(&conn)
                .then_some(())
        })
        .await
        .unwrap_or_else(|| panic!("evil backend never wrote junk on connection {conn}"));
    }
}

fn response(status: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status}\r\n").into_bytes();
    for (k, v) in headers {
        out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

fn ok(body: &str) -> Vec<u8> {
    response(
        "200 OK",
        &[
            ("Content-Type", "text/plain"),
            ("Content-Length", &body.len().to_string()),
        ],
        body.as_bytes(),
    )
}

/// Declared length of the cut bodies, and how much of it is sent.
const CUT_DECLARED: usize = 10_000;
const CUT_SENT: usize = 3_000;
/// The unsolicited answer a desynchronized connection would deliver.
const POISON: &str = "poisoned";

fn chunk(data: &[u8]) -> Vec<u8> {
    let mut out = format!("{:x}\r\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    out
}

/// The evil backend's answer to `path`: the bytes to write and what to do
/// with the connection afterwards.
fn answer(path: &str) -> (Vec<u8>, After) {
    let p = path.split('?').next().unwrap_or(path);
    let cl_head = || {
        response(
            "200 OK",
            &[
                ("Content-Type", "application/octet-stream"),
                ("Content-Length", &CUT_DECLARED.to_string()),
            ],
            &[b'a'; CUT_SENT],
        )
    };
    let chunked_cut = || {
        let mut out = response("200 OK", &[("Transfer-Encoding", "chunked")], b"");
        for _ in 0..3 {
            out.extend_from_slice(&chunk(&[b'c'; 1000]));
        }
        out
    };
    let poison = || ok(POISON);
    match p {
        // Bodies cut short after the head.
        "/cut/cl" => (cl_head(), After::Fin),
        "/cut/cl-rst" => (cl_head(), After::Rst),
        "/cut/chunked" => (chunked_cut(), After::Fin),
        "/cut/chunked-rst" => (chunked_cut(), After::Rst),
        "/cut/chunk-garbage" => {
            let mut out = chunked_cut();
            out.extend_from_slice(b"zz\r\nnot a chunk\r\n");
            (out, After::KeepAlive)
        }
        // No usable head at all.
        "/garbage/status" => (
            b"HTTX/9 abc\r\nContent-Length: 2\r\n\r\nok".to_vec(),
            After::KeepAlive,
        ),
        "/garbage/binary" => {
            let mut out: Vec<u8> = (0u8..=255).rev().cycle().take(300).collect();
            out.extend_from_slice(b"\r\n\r\n");
            (out, After::KeepAlive)
        }
        "/garbage/partial-head" => (b"HTTP/1.1 200 OK\r\nContent-Le".to_vec(), After::Fin),
        "/garbage/empty" => (Vec::new(), After::Fin),
        "/garbage/rst" => (Vec::new(), After::Rst),
        // Heads that cannot be framed.
        "/framing/cl-abc" => (
            b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\nok".to_vec(),
            After::KeepAlive,
        ),
        "/framing/cl-twice" => (
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok".to_vec(),
            After::KeepAlive,
        ),
        "/framing/cl-list" => (
            b"HTTP/1.1 200 OK\r\nContent-Length: 2, 3\r\n\r\nok".to_vec(),
            After::KeepAlive,
        ),
        "/framing/cl-negative" => (
            b"HTTP/1.1 200 OK\r\nContent-Length: -2\r\n\r\nok".to_vec(),
            After::KeepAlive,
        ),
        // Framed twice: Transfer-Encoding wins (RFC 9112 section 6.3).
        "/framing/cl-te" => {
            let mut out =
                b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\nTransfer-Encoding: chunked\r\n\r\n"
                    .to_vec();
            out.extend_from_slice(&chunk(b"ok"));
            out.extend_from_slice(b"0\r\n\r\n");
            out.extend_from_slice(&poison());
            (out, After::KeepAlive)
        }
        // More bytes than declared: a second, unsolicited response.
        "/framing/overflow" => {
            let mut out = ok("ok");
            out.extend_from_slice(&poison());
            (out, After::KeepAlive)
        }
        "/idle/junk" => (ok("ok"), After::IdleJunk),
        "/idle/fin" => (ok("ok"), After::Fin),
        // Close after reading the request, without an answer.
        "/close/after-read" => (Vec::new(), After::Fin),
        "/close/after-read-rst" => (Vec::new(), After::Rst),
        "/arm/close-after-read" => (ok("armed"), After::ArmCloseAfterRead),
        "/arm/rst-unread" => (ok("armed"), After::ArmRstUnread),
        // A normal answer that ends the connection: nothing stays pooled.
        _ if p.starts_with("/ok/close") => (
            response(
                "200 OK",
                &[("Content-Length", "2"), ("Connection", "close")],
                b"ok",
            ),
            After::Fin,
        ),
        _ => (ok("ok"), After::KeepAlive),
    }
}

async fn serve(state: Arc<EvilState>, mut s: TcpStream, id: u64) {
    let mut buf = Vec::new();
    let mut nth = 0;
    let mut armed = After::KeepAlive;
    loop {
        if armed == After::ArmRstUnread {
            // Wait until the next request starts to arrive (peek: nothing is
            // consumed), then reset without reading it.
            let mut one = [0u8; 1];
            if matches!(s.peek(&mut one).await, Ok(n) if n > 0) {
                let _ = s.set_zero_linger();
                state.killed_unread.lock().unwrap().push(id);
            }
            state.closed.lock().unwrap().push(id);
            return;
        }
        let Some((method, path, body)) = read_request(&mut s, &mut buf).await else {
            return;
        };
        state.reqs.lock().unwrap().push(Req {
            method,
            path: path.clone(),
            conn: id,
            nth,
            body,
        });
        nth += 1;
        if armed == After::ArmCloseAfterRead {
            let _ = s.shutdown().await;
            state.closed.lock().unwrap().push(id);
            return;
        }
        let (bytes, after) = answer(&path);
        if !bytes.is_empty() && s.write_all(&bytes).await.is_err() {
            return;
        }
        match after {
            After::KeepAlive => {}
            After::Fin => {
                let _ = s.shutdown().await;
                state.closed.lock().unwrap().push(id);
                return;
            }
            After::Rst => {
                let _ = s.set_zero_linger();
                state.closed.lock().unwrap().push(id);
                return;
            }
            After::IdleJunk => {
                let _ = s.flush().await;
                let _ = s.write_all(&ok(POISON)).await;
                state.junk_sent.lock().unwrap().push(id);
            }
            After::ArmCloseAfterRead | After::ArmRstUnread => armed = after,
        }
    }
}

/// Reads one request (head and Content-Length or chunked body). `None` when
/// the connection ends first.
async fn read_request(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<(String, String, Vec<u8>)> {
    let head_end = loop {
        if let Some(i) = find(buf, b"\r\n\r\n") {
            break i + 4;
        }
        if !fill(s, buf).await {
            return None;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    buf.drain(..head_end);
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_string();
    let path = first.next()?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let body = if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(i) = find(buf, b"\r\n") {
                    break i;
                }
                if !fill(s, buf).await {
                    return None;
                }
            };
            let size_text = String::from_utf8_lossy(&buf[..line_end]).into_owned();
            let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
            buf.drain(..line_end + 2);
            if size == 0 {
                // Trailers (none expected) end with an empty line.
                while find(buf, b"\r\n").is_none() {
                    if !fill(s, buf).await {
                        return None;
                    }
                }
                let end = find(buf, b"\r\n")? + 2;
                buf.drain(..end);
                break body;
            }
            while buf.len() < size + 2 {
                if !fill(s, buf).await {
                    return None;
                }
            }
            body.extend_from_slice(&buf[..size]);
            buf.drain(..size + 2);
        }
    } else {
        let n: usize = header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        while buf.len() < n {
            if !fill(s, buf).await {
                return None;
            }
        }
        buf.drain(..n).collect()
    };
    Some((method, path, body))
}

async fn fill(s: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 8192];
    match s.read(&mut chunk).await {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            true
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

// ---------------------------------------------------------------------------
// A raw HTTP/1.1 client: one keep-alive connection, framing checked by hand
// ---------------------------------------------------------------------------

/// One response as read off the wire.
#[derive(Debug)]
struct RawResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// The framing said the response is complete: all Content-Length bytes,
    /// or the terminating zero-size chunk.
    complete: bool,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

#[derive(Debug)]
struct RawConn {
    s: TcpStream,
    buf: Vec<u8>,
    eof: bool,
}

impl RawConn {
    async fn connect(proxy: &Proxy) -> RawConn {
        RawConn {
            s: TcpStream::connect(proxy.addr())
                .await
                .unwrap_or_else(|e| panic!("connect to the proxy: {e}; logs:\n{}", proxy.logs())),
            buf: Vec::new(),
            eof: false,
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).await.expect("write to proxy");
    }

    /// Reads more; false at end of stream (or a reset, which is the same to
    /// a client).
    async fn fill(&mut self) -> bool {
        if self.eof {
            return false;
        }
        let mut chunk = [0u8; 16384];
        match tokio::time::timeout(HANG, self.s.read(&mut chunk)).await {
            Err(_) => panic!("the proxy neither answered nor closed the connection"),
            Ok(Ok(0)) | Ok(Err(_)) => {
                self.eof = true;
                false
            }
            Ok(Ok(n)) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    /// Reads one response as far as the connection allows. `None` when the
    /// connection ended before a complete head.
    async fn response(&mut self) -> Option<RawResponse> {
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            if !self.fill().await {
                return None;
            }
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
        self.buf.drain(..head_end);
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("not a status line: {head}"));
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let mut r = RawResponse {
            status,
            headers,
            body: Vec::new(),
            complete: false,
        };
        if r.header("transfer-encoding").is_some() {
            assert_eq!(
                r.header("transfer-encoding"),
                Some("chunked"),
                "{:?}",
                r.headers
            );
            assert!(
                r.header("content-length").is_none(),
                "both framings sent to the client: {:?}",
                r.headers
            );
            loop {
                let line_end = loop {
                    if let Some(i) = find(&self.buf, b"\r\n") {
                        break i;
                    }
                    if !self.fill().await {
                        return Some(r);
                    }
                };
                let text = String::from_utf8_lossy(&self.buf[..line_end]).into_owned();
                let size = usize::from_str_radix(text.trim(), 16)
                    .unwrap_or_else(|_| panic!("bad chunk size {text:?} sent to the client"));
                if size == 0 {
                    while find(&self.buf, b"\r\n\r\n") != Some(line_end) {
                        if !self.fill().await {
                            return Some(r);
                        }
                    }
                    self.buf.drain(..line_end + 4);
                    r.complete = true;
                    return Some(r);
                }
                while self.buf.len() < line_end + 2 + size + 2 {
                    if !self.fill().await {
                        let have = self.buf.len().saturating_sub(line_end + 2).min(size);
                        r.body
                            .extend_from_slice(&self.buf[line_end + 2..line_end + 2 + have]);
                        self.buf.clear();
                        return Some(r);
                    }
                }
                r.body
                    .extend_from_slice(&self.buf[line_end + 2..line_end + 2 + size]);
                self.buf.drain(..line_end + 2 + size + 2);
            }
        } else if let Some(cl) = r.header("content-length") {
            let cl: usize = cl.parse().expect("numeric Content-Length to the client");
            while self.buf.len() < cl {
                if !self.fill().await {
                    r.body = std::mem::take(&mut self.buf);
                    return Some(r);
                }
            }
            r.body = self.buf.drain(..cl).collect();
            r.complete = true;
            Some(r)
        } else {
            // A close-delimited answer: a client cannot tell it from a cut.
            while self.fill().await {}
            r.body = std::mem::take(&mut self.buf);
            Some(r)
        }
    }

    /// Whatever else arrives before the proxy closes the connection.
    async fn rest(&mut self) -> Vec<u8> {
        while self.fill().await {}
        std::mem::take(&mut self.buf)
    }
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: evil.test\r\n\r\n").into_bytes()
}

fn with_body(method: &str, path: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "{method} {path} HTTP/1.1\r\nHost: evil.test\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

// ---------------------------------------------------------------------------
// Setup and shared checks
// ---------------------------------------------------------------------------

async fn setup() -> (Proxy, Evil) {
    let evil = Evil::start().await;
    let proxy = Proxy::start(&format!(
        r#"
backends:
  evil: {{ url: "{}", read_timeout: 10s }}
default: evil
"#,
        evil.url()
    ))
    .await;
    listening(&proxy).await;
    (proxy, evil)
}

/// Waits until the proxy port takes connections: `/readyz` can say ready a
/// moment before every worker's listener is bound.
async fn listening(proxy: &Proxy) {
    eventually(HANG, || async {
        TcpStream::connect(proxy.addr()).await.ok().map(drop)
    })
    .await
    .unwrap_or_else(|| panic!("the proxy port never took a connection:\n{}", proxy.logs()));
}

fn errors(m: &Scrape, kind: &str) -> f64 {
    m.sum(
        "strangler_upstream_errors_total",
        &[("route", "default"), ("side", "legacy"), ("kind", kind)],
    )
}

/// The proxy's own 502: names the backend, short, the client connection is
/// then closed.
fn assert_502(r: &RawResponse, case: &str) {
    assert_eq!(r.status, 502, "{case}: {r:?}");
    assert!(r.complete, "{case}: {r:?}");
    assert!(r.text().contains("backend evil"), "{case}: {}", r.text());
    assert!(r.text().contains("route default"), "{case}: {}", r.text());
}

/// The first copy of `path` the backend read, for its connection id.
fn only_copy(evil: &Evil, method: &str, path: &str) -> Req {
    let copies = evil.copies(method, path);
    assert_eq!(copies.len(), 1, "{method} {path}: {copies:?}");
    copies[0].clone()
}

/// After a fault on the connections `broken`, a normal request succeeds and
/// reaches the backend on a connection that is not one of them (had a broken
/// one been pooled, it would be the only one there). Its own connection is
/// then closed by the backend, so the next case starts with an empty pool.
async fn next_request_on_a_new_connection(proxy: &Proxy, evil: &Evil, broken: &[u64], tag: &str) {
    let path = format!("/ok/close/after/{}", tag.replace(['/', '?', '&', '='], "_"));
    let mut c = RawConn::connect(proxy).await;
    c.send(&get(&path)).await;
    let r = c.response().await.expect("an answer");
    assert_eq!(r.status, 200, "{tag}: {r:?}");
    assert!(r.complete, "{tag}: {r:?}");
    assert_eq!(
        r.text(),
        "ok",
        "{tag}: a desynchronized connection answered"
    );
    let next = only_copy(evil, "GET", &path);
    assert!(
        !broken.contains(&next.conn),
        "{tag}: broken upstream connection {} was reused: {:?}",
        next.conn,
        evil.reqs()
    );
    // Each fault case ends here, once the proxy has shown it recovered.
    println!("suite: upstream faults: 1 faults, lost 0");
}

// ---------------------------------------------------------------------------
// Bodies cut short
// ---------------------------------------------------------------------------

/// A body cut after the head was forwarded cannot become a 502 any more: the
/// client must see it incomplete (fewer than Content-Length bytes, or no
/// terminating zero chunk) and its connection closed, with a request
/// pipelined behind it never answered nor forwarded. If the cut comes before
/// the proxy forwarded the head (an RST can make the proxy lose the buffered
/// bytes), the answer is the proxy's 502.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_cut_short_never_looks_complete_and_the_client_connection_closes() {
    let (proxy, evil) = setup().await;
    let cases = [
        ("/cut/cl", "reset"),
        ("/cut/cl-rst", "reset"),
        ("/cut/chunked", "reset"),
        ("/cut/chunked-rst", "reset"),
        // A malformed chunk size: the upstream connection stays open, but
        // what follows on it is not trusted.
        ("/cut/chunk-garbage", "protocol"),
    ];
    let mut expected = std::collections::BTreeMap::<&str, f64>::new();
    for (path, kind) in cases {
        // A keep-alive client that pipelines a second request behind it.
        let pipelined = format!("/ok/pipelined{path}");
        let mut c = RawConn::connect(&proxy).await;
        let mut both = get(path);
        both.extend_from_slice(&get(&pipelined));
        c.send(&both).await;
        let r = c
            .response()
            .await
            .unwrap_or_else(|| panic!("{path}: connection closed without a head"));
        if r.status == 502 {
            assert_502(&r, path);
        } else {
            assert_eq!(r.status, 200, "{path}: {r:?}");
            assert!(!r.complete, "{path}: a cut body looked complete: {r:?}");
            if let Some(cl) = r.header("content-length") {
                assert_eq!(cl, CUT_DECLARED.to_string(), "{path}");
                assert!(r.body.len() < CUT_DECLARED, "{path}: {}", r.body.len());
            } else {
                assert_eq!(r.header("transfer-encoding"), Some("chunked"), "{path}");
            }
        }
        let rest = c.rest().await;
        assert!(
            rest.is_empty(),
            "{path}: the client connection went on after the fault: {}",
            String::from_utf8_lossy(&rest)
        );
        assert!(
            evil.copies("GET", &pipelined).is_empty(),
            "{path}: the pipelined request was forwarded"
        );

        // A client library sees an error (or the 502), never a whole body.
        match Http::new()
            .send(http::Method::GET, &proxy.url(path), &[], b"")
            .await
        {
            Err(_) => {}
            Ok(r) => assert_eq!(r.status, 502, "{path}: {} bytes", r.body.len()),
        }
        *expected.entry(kind).or_default() += 2.0;

        let broken: Vec<u64> = evil.copies("GET", path).iter().map(|r| r.conn).collect();
        assert!(!broken.is_empty(), "{path} never reached the backend");
        next_request_on_a_new_connection(&proxy, &evil, &broken, path).await;
    }
    let m = proxy.metrics_settled().await;
    for (kind, n) in expected {
        assert_eq!(errors(&m, kind), n, "kind {kind}:\n{}", m.text);
    }
}

// ---------------------------------------------------------------------------
// No usable response head
// ---------------------------------------------------------------------------

/// Garbage, half a head or nothing at all: a 502 naming the backend. A GET
/// that failed before any answer on a *reused* connection is sent again once,
/// on a fresh connection (Pingora retries idempotent requests on errors of a
/// reused connection: `RetryType::ReusedOnly`); on a fresh connection it is
/// not. A garbled head is never retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_instead_of_a_response_is_a_502_naming_the_backend() {
    let (proxy, evil) = setup().await;
    let cases = [
        ("/garbage/status", "protocol", false),
        ("/garbage/binary", "protocol", false),
        ("/garbage/partial-head", "reset", true),
        ("/garbage/empty", "reset", true),
        ("/garbage/rst", "reset", true),
    ];
    let mut expected = std::collections::BTreeMap::<&str, f64>::new();
    for (path, kind, retried_on_reuse) in cases {
        for reused in [true, false] {
            let tag = format!("{path}?reused={reused}");
            let mut c = RawConn::connect(&proxy).await;
            if reused {
                // Leaves exactly one idle upstream connection in the pool; the
                // next request on this client connection is only read once the
                // previous one is finished, pool included.
                c.send(&get(&format!("/ok/warm{tag}"))).await;
                assert_eq!(c.response().await.expect("warm").status, 200);
            }
            c.send(&get(&tag)).await;
            let r = c.response().await.expect("an answer");
            assert_502(&r, &tag);
            assert!(c.rest().await.is_empty(), "{tag}: connection went on");
            *expected.entry(kind).or_default() += 1.0;

            let copies = evil.copies("GET", &tag);
            assert!(!copies.is_empty(), "{tag}");
            assert_eq!(copies[0].nth > 0, reused, "{tag}: {copies:?}");
            if reused && retried_on_reuse {
                assert_eq!(copies.len(), 2, "{tag}: {copies:?}");
                assert_eq!(copies[1].nth, 0, "{tag}: retried on a fresh connection");
            } else {
                assert_eq!(copies.len(), 1, "{tag}: {copies:?}");
            }
            let broken: Vec<u64> = copies.iter().map(|r| r.conn).collect();
            next_request_on_a_new_connection(&proxy, &evil, &broken, &tag).await;
        }
    }
    let m = proxy.metrics_settled().await;
    for (kind, n) in expected {
        assert_eq!(errors(&m, kind), n, "kind {kind}:\n{}", m.text);
    }
    assert_eq!(
        m.sum(
            "strangler_requests_total",
            &[("route", "default"), ("status_class", "5xx")]
        ),
        10.0
    );
}

// ---------------------------------------------------------------------------
// Heads that cannot be framed
// ---------------------------------------------------------------------------

/// A Content-Length that is not a number, or two that disagree: the proxy
/// cannot know where the body ends, so it answers 502 and drops the
/// connection (the backend would happily serve the next request on it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_the_proxy_cannot_frame_is_a_502() {
    let (proxy, evil) = setup().await;
    let cases = [
        "/framing/cl-abc",
        "/framing/cl-twice",
        "/framing/cl-list",
        "/framing/cl-negative",
    ];
    for path in cases {
        let mut c = RawConn::connect(&proxy).await;
        c.send(&get(path)).await;
        let r = c.response().await.expect("an answer");
        assert_502(&r, path);
        assert!(
            r.text().contains("sent an invalid response"),
            "{path}: {}",
            r.text()
        );
        let first = only_copy(&evil, "GET", path);
        next_request_on_a_new_connection(&proxy, &evil, &[first.conn], path).await;
    }
    let m = proxy.metrics_settled().await;
    assert_eq!(errors(&m, "protocol"), cases.len() as f64, "{}", m.text);
}

/// Content-Length and Transfer-Encoding together: Pingora follows RFC 9112
/// section 6.3 (Transfer-Encoding wins, Content-Length is removed before
/// forwarding), so this is framed safely and passed on, not a 502. The
/// client gets one framing only; bytes after the last chunk are never taken
/// for the next answer. Likewise for a body longer than its Content-Length:
/// the extra bytes are dropped with the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doubly_framed_or_overlong_answers_never_desynchronize_the_connection() {
    let (proxy, evil) = setup().await;
    for path in ["/framing/cl-te", "/framing/overflow"] {
        let mut c = RawConn::connect(&proxy).await;
        c.send(&get(path)).await;
        let r = c.response().await.expect("an answer");
        assert_eq!(r.status, 200, "{path}: {r:?}");
        assert!(r.complete, "{path}: {r:?}");
        assert_eq!(r.text(), "ok", "{path}");
        if path == "/framing/cl-te" {
            assert!(r.header("content-length").is_none(), "{:?}", r.headers);
        }
        let first = only_copy(&evil, "GET", path);
        next_request_on_a_new_connection(&proxy, &evil, &[first.conn], path).await;
        // And the client connection carries on normally.
        c.send(&get(&format!("/ok/same-client{path}"))).await;
        let again = c.response().await.expect("keep-alive answer");
        assert_eq!((again.status, again.text().as_str()), (200, "ok"), "{path}");
    }
    let m = proxy.metrics_settled().await;
    assert_eq!(m.sum("strangler_upstream_errors_total", &[]), 0.0);
}

// ---------------------------------------------------------------------------
// Idle pooled connections
// ---------------------------------------------------------------------------

/// A pooled connection the backend closed, or on which it wrote an answer
/// nobody asked for, is never used again: the next request goes on a new
/// connection and gets its own answer, not the stale one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pooled_connection_that_went_bad_while_idle_is_not_reused() {
    let (proxy, evil) = setup().await;
    let mut c = RawConn::connect(&proxy).await;
    c.send(&get("/idle/junk")).await;
    assert_eq!(c.response().await.expect("answer").text(), "ok");
    let junk = only_copy(&evil, "GET", "/idle/junk").conn;
    evil.wait_junk_sent(junk).await;
    c.send(&with_body("POST", "/after/junk", b"x=1")).await;
    let r = c.response().await.expect("answer");
    assert_eq!((r.status, r.text().as_str()), (200, "ok"), "{r:?}");
    let post = only_copy(&evil, "POST", "/after/junk");
    assert_ne!(post.conn, junk, "{:?}", evil.reqs());

    c.send(&get("/idle/fin")).await;
    assert_eq!(c.response().await.expect("answer").text(), "ok");
    let closed = only_copy(&evil, "GET", "/idle/fin").conn;
    evil.wait_closed(closed).await;
    c.send(&with_body("POST", "/after/fin", b"x=2")).await;
    let r = c.response().await.expect("answer");
    assert_eq!((r.status, r.text().as_str()), (200, "ok"), "{r:?}");
    let post = only_copy(&evil, "POST", "/after/fin");
    assert_ne!(post.conn, closed);
    assert_eq!(post.nth, 0, "{:?}", evil.reqs());
    let m = proxy.metrics_settled().await;
    assert_eq!(m.sum("strangler_upstream_errors_total", &[]), 0.0);
}

// ---------------------------------------------------------------------------
// Retries
// ---------------------------------------------------------------------------

/// A POST or PATCH whose connection is closed (FIN or RST) once the backend
/// has read it, without an answer: a 502, and the backend saw exactly one
/// copy, whether the connection was fresh or taken from the pool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_idempotent_request_is_never_sent_twice() {
    let (proxy, evil) = setup().await;
    let mut failures = 0.0;
    for method in ["POST", "PATCH"] {
        for close in ["/close/after-read", "/close/after-read-rst"] {
            for reused in [true, false] {
                let path = format!("{close}?method={method}&reused={reused}");
                let mut c = RawConn::connect(&proxy).await;
                if reused {
                    c.send(&get(&format!("/ok/warm{path}"))).await;
                    assert_eq!(c.response().await.expect("warm").status, 200);
                }
                c.send(&with_body(method, &path, b"{\"order\": 42}")).await;
                let r = c.response().await.expect("an answer");
                assert_502(&r, &path);
                failures += 1.0;
                let sent = only_copy(&evil, method, &path);
                assert_eq!(sent.body, b"{\"order\": 42}");
                assert_eq!(sent.nth > 0, reused, "{path}: {sent:?}");
                next_request_on_a_new_connection(&proxy, &evil, &[sent.conn], &path).await;
            }
        }
    }
    let m = proxy.metrics_settled().await;
    assert_eq!(errors(&m, "reset"), failures, "{}", m.text);
}

/// The backend's keep-alive timeout fires just as the proxy reuses the
/// pooled connection. Two ways it goes, both simulated deterministically by
/// arming the pooled connection:
///
/// - the backend read the request, then closed: a GET (or PUT) is sent once
///   more on a fresh connection and succeeds (so the backend sees it twice,
///   as RFC 9110 section 9.2.2 allows for idempotent methods); a POST or
///   PATCH is not sent again: 502, one copy;
/// - the connection was reset before the backend read anything: the GET is
///   retried and succeeds; the POST is still not retried (the proxy cannot
///   know that none of it was processed): 502, and the backend saw it at
///   most once (here: never).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_pooled_connection_never_duplicates_a_post() {
    let (proxy, evil) = setup().await;
    // Each case: arm the one pooled connection, then send on it.
    async fn armed(proxy: &Proxy, arm: &str, request: &[u8]) -> RawResponse {
        let mut c = RawConn::connect(proxy).await;
        c.send(&get(arm)).await;
        let r = c.response().await.expect("armed");
        assert_eq!(r.text(), "armed");
        c.send(request).await;
        c.response().await.expect("an answer")
    }
    let conn_of = |path: &str| {
        evil.copies("GET", path)
            .last()
            .map(|r| r.conn)
            .expect("armed request seen")
    };

    // Read, then closed.
    let r = armed(&proxy, "/arm/close-after-read", &get("/stale/get")).await;
    assert_eq!((r.status, r.text().as_str()), (200, "ok"), "{r:?}");
    let armed_conn = conn_of("/arm/close-after-read");
    let copies = evil.copies("GET", "/stale/get");
    assert_eq!(copies.len(), 2, "{copies:?}");
    assert_eq!((copies[0].conn, copies[0].nth), (armed_conn, 1));
    assert_eq!(copies[1].nth, 0, "the retry goes on a fresh connection");

    for method in ["POST", "PATCH"] {
        let path = format!("/stale/{method}");
        let r = armed(
            &proxy,
            "/arm/close-after-read",
            &with_body(method, &path, b"pay=1"),
        )
        .await;
        assert_502(&r, &path);
        let sent = only_copy(&evil, method, &path);
        assert_eq!(sent.conn, conn_of("/arm/close-after-read"));
        assert_eq!(sent.body, b"pay=1");
    }

    // Reset before anything was read.
    let r = armed(&proxy, "/arm/rst-unread", &get("/stale/get-unread")).await;
    assert_eq!((r.status, r.text().as_str()), (200, "ok"), "{r:?}");
    let retried = only_copy(&evil, "GET", "/stale/get-unread");
    assert_eq!(retried.nth, 0);
    assert_eq!(evil.killed_unread().len(), 1);

    let r = armed(
        &proxy,
        "/arm/rst-unread",
        &with_body("POST", "/stale/post-unread", b"pay=2"),
    )
    .await;
    assert_502(&r, "/stale/post-unread");
    assert_eq!(evil.killed_unread().len(), 2);
    assert!(
        evil.copies("POST", "/stale/post-unread").len() <= 1,
        "{:?}",
        evil.reqs()
    );
    assert!(evil.copies("POST", "/stale/post-unread").is_empty());

    let m = proxy.metrics_settled().await;
    // Only the requests that failed count; a retry that succeeded does not.
    assert_eq!(errors(&m, "reset"), 3.0, "{}", m.text);
    next_request_on_a_new_connection(&proxy, &evil, &[], "stale").await;
}

// An idempotent request retried after a stale pooled connection must be the
// same request the second time. Pingora re-runs `upstream_request_filter` and
// replays the body read so far through `request_body_filter` on every attempt.

/// A proxy whose default backend is the evil one, with a route limited to
/// 1 KiB of request body and a route whose PUTs are shadowed.
async fn retry_setup() -> (Proxy, Evil, Backend) {
    let evil = Evil::start().await;
    let shadow = Backend::start("shadow").await;
    let proxy = Proxy::start(&format!(
        r#"
backends:
  evil: {{ url: "{}", read_timeout: 10s }}
  shadow: {{ url: "{}" }}
default: evil
routes:
  - name: limited
    match: {{ path: /limited }}
    new: shadow
    canary: 0
    max_request_body: 1KiB
  - name: shadowed
    match: {{ path: /shadowed }}
    new: shadow
    canary: 0
    shadow: {{ percent: 100, methods: [PUT], allow_writes: true, timeout: 5s }}
"#,
        evil.url(),
        shadow.url()
    ))
    .await;
    listening(&proxy).await;
    (proxy, evil, shadow)
}

/// Sends `request` on the one pooled connection, armed to be closed once the
/// backend has read it: the request is answered by its retry.
async fn retried(proxy: &Proxy, request: &[u8]) -> RawResponse {
    let mut c = RawConn::connect(proxy).await;
    c.send(&get("/arm/close-after-read")).await;
    assert_eq!(c.response().await.expect("armed").text(), "armed");
    c.send(request).await;
    c.response().await.expect("an answer")
}

/// The retry is sent to the path that was routed on (normalized), not the
/// raw path of the request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_request_keeps_its_normalized_path() {
    let (proxy, evil, _) = retry_setup().await;
    let r = retried(&proxy, &get("/skip/../norm//get?q=1")).await;
    assert_eq!((r.status, r.text().as_str()), (200, "ok"), "{r:?}");
    let sent: Vec<(String, usize)> = evil
        .reqs()
        .into_iter()
        .filter(|r| r.path.contains("get?q=1"))
        .map(|r| (r.path, r.nth))
        .collect();
    assert_eq!(
        sent,
        [
            ("/norm/get?q=1".to_string(), 1),
            ("/norm/get?q=1".to_string(), 0)
        ]
    );
}

/// The replayed body counts once against the route's limit: 700 bytes under
/// a 1 KiB limit pass on the retry as on the first attempt, whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_request_body_counts_once_against_the_limit() {
    let (proxy, evil, _) = retry_setup().await;
    let body = vec![b'p'; 700];
    let r = retried(&proxy, &with_body("PUT", "/limited/doc", &body)).await;
    assert_eq!((r.status, r.text().as_str()), (200, "ok"), "{r:?}");
    let copies = evil.copies("PUT", "/limited/doc");
    assert_eq!(copies.len(), 2, "{copies:?}");
    assert!(copies.iter().all(|c| c.body == body));
    // Over the limit is still refused.
    let mut c = RawConn::connect(&proxy).await;
    c.send(&with_body("PUT", "/limited/big", &[b'p'; 1100]))
        .await;
    assert_eq!(c.response().await.expect("an answer").status, 413);
}

/// The shadow side gets the body once, not once per attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_request_body_is_shadowed_once() {
    let (proxy, evil, shadow) = retry_setup().await;
    let body = vec![b's'; 700];
    let r = retried(&proxy, &with_body("PUT", "/shadowed/doc", &body)).await;
    assert_eq!((r.status, r.text().as_str()), (200, "ok"), "{r:?}");
    assert_eq!(evil.copies("PUT", "/shadowed/doc").len(), 2);
    let copy = eventually(HANG, || async {
        shadow
            .seen()
            .into_iter()
            .find(|s| s.path == "/shadowed/doc")
    })
    .await
    .unwrap_or_else(|| panic!("no shadow copy; logs:\n{}", proxy.logs()));
    assert_eq!(copy.method, "PUT");
    assert_eq!(copy.body.len(), body.len(), "shadow copy body");
    assert_eq!(shadow.seen().len(), 1);
}
