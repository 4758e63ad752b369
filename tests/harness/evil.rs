//! The evil backend of the upstream fault tests (`upstream_faults.rs`,
//! `upstream_reuse.rs`): a raw TCP server whose answer to a request is
//! chosen by its path (cut bodies, garbage, bad framing, connections closed,
//! reset or armed to fail on their next request) and which records every
//! request with the connection it came on; a raw HTTP/1.1 client that checks
//! the proxy's framing by hand; and the setup and checks those tests share.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::eventually;
use crate::metrics::Scrape;
use crate::proxy::Proxy;

/// A guard against a hung proxy; never a measure of anything.
pub const HANG: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------------------
// The evil backend
// ---------------------------------------------------------------------------

/// A request as the evil backend read it.
#[derive(Debug, Clone)]
pub struct Req {
    pub method: String,
    pub path: String,
    /// Id of the TCP connection it came on (1, 2, ... in accept order).
    pub conn: u64,
    /// How many requests that connection carried before this one: 0 on a
    /// fresh connection, more when the proxy reused a pooled one.
    pub nth: usize,
    pub body: Vec<u8>,
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
pub struct Evil {
    addr: SocketAddr,
    state: Arc<EvilState>,
}

impl Evil {
    pub async fn start() -> Evil {
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

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn reqs(&self) -> Vec<Req> {
        self.state.reqs.lock().unwrap().clone()
    }

    /// Every copy of `method path` the backend read, in order.
    pub fn copies(&self, method: &str, path: &str) -> Vec<Req> {
        self.reqs()
            .into_iter()
            .filter(|r| r.method == method && r.path == path)
            .collect()
    }

    pub fn killed_unread(&self) -> Vec<u64> {
        self.state.killed_unread.lock().unwrap().clone()
    }

    pub async fn wait_closed(&self, conn: u64) {
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

    pub async fn wait_junk_sent(&self, conn: u64) {
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
pub const CUT_DECLARED: usize = 10_000;
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
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The framing said the response is complete: all Content-Length bytes,
    /// or the terminating zero-size chunk.
    pub complete: bool,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

#[derive(Debug)]
pub struct RawConn {
    s: TcpStream,
    buf: Vec<u8>,
    eof: bool,
}

impl RawConn {
    pub async fn connect(proxy: &Proxy) -> RawConn {
        RawConn {
            s: TcpStream::connect(proxy.addr())
                .await
                .unwrap_or_else(|e| panic!("connect to the proxy: {e}; logs:\n{}", proxy.logs())),
            buf: Vec::new(),
            eof: false,
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
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
    pub async fn response(&mut self) -> Option<RawResponse> {
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
    pub async fn rest(&mut self) -> Vec<u8> {
        while self.fill().await {}
        std::mem::take(&mut self.buf)
    }
}

pub fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: evil.test\r\n\r\n").into_bytes()
}

pub fn with_body(method: &str, path: &str, body: &[u8]) -> Vec<u8> {
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

pub async fn setup() -> (Proxy, Evil) {
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
pub async fn listening(proxy: &Proxy) {
    eventually(HANG, || async {
        TcpStream::connect(proxy.addr()).await.ok().map(drop)
    })
    .await
    .unwrap_or_else(|| panic!("the proxy port never took a connection:\n{}", proxy.logs()));
}

pub fn errors(m: &Scrape, kind: &str) -> f64 {
    m.sum(
        "strangler_upstream_errors_total",
        &[("route", "default"), ("side", "legacy"), ("kind", kind)],
    )
}

/// The proxy's own 502: names the backend, short, the client connection is
/// then closed.
pub fn assert_502(r: &RawResponse, case: &str) {
    assert_eq!(r.status, 502, "{case}: {r:?}");
    assert!(r.complete, "{case}: {r:?}");
    assert!(r.text().contains("backend evil"), "{case}: {}", r.text());
    assert!(r.text().contains("route default"), "{case}: {}", r.text());
}

/// The first copy of `path` the backend read, for its connection id.
pub fn only_copy(evil: &Evil, method: &str, path: &str) -> Req {
    let copies = evil.copies(method, path);
    assert_eq!(copies.len(), 1, "{method} {path}: {copies:?}");
    copies[0].clone()
}

/// After a fault on the connections `broken`, a normal request succeeds and
/// reaches the backend on a connection that is not one of them (had a broken
/// one been pooled, it would be the only one there). Its own connection is
/// then closed by the backend, so the next case starts with an empty pool.
pub async fn next_request_on_a_new_connection(
    proxy: &Proxy,
    evil: &Evil,
    broken: &[u64],
    tag: &str,
) {
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
