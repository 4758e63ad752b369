//! The owned HTTP/1 fast path (`strangler serve`'s default) against
//! Pingora's proxy engine, byte for byte: two proxies on the same routes
//! file, one with the fast path and one without, each in front of its own
//! recording backend that answers by path (Content-Length, chunked, framed
//! by its close, no body, broken). For every request of the corpus, the
//! bytes the backend received and the bytes the client received must be the
//! same from both, up to the request id. The fast proxy's counter shows the
//! plain requests were its own, and that the others (chunked, Expect,
//! HTTP/1.0, a shadowed route) went to the engine.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use strangler_e2e::metrics::Scrape;
use strangler_e2e::{Proxy, eventually};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A guard against a hang; never a measure of anything.
const HANG: Duration = Duration::from_secs(10);

/// A backend that keeps the raw bytes of every request and answers by path.
#[derive(Clone)]
struct Recorder {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Vec<u8>>>>,
}

/// The raw answer for a request path; `None`: close without answering.
fn answer_for(path: &str) -> Option<&'static [u8]> {
    let last = path.rsplit('/').next().unwrap_or("");
    let last = last.split('?').next().unwrap_or("");
    Some(match last {
        "chunked" => b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Kind: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
        "close" => b"HTTP/1.1 200 OK\r\nConnection: close\r\nX-Kind: close\r\n\r\nuntil the end",
        "empty" => b"HTTP/1.1 204 No Content\r\nX-Kind: empty\r\n\r\n",
        "notmodified" => b"HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\n\r\n",
        "continue" => b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        "cookies" => b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nKeep-Alive: timeout=5\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok",
        "garbage" => b"HTTP/1.1 abc\r\n\r\n",
        "short" => b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
        "long" => b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcdef",
        "old" => b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\nX-Kind: old\r\n\r\nok",
        "reason" => b"HTTP/1.1 299 Fine Thanks\r\nContent-Length: 2\r\n\r\nok",
        "twolengths" => b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok",
        "gzipped" => b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
        // Read in place: a name again later, in another case; a value of
        // bytes above 0x7f; spaces after a name.
        "interleaved" => b"HTTP/1.1 200 OK\r\nContent-Type: a\r\nX-A: 1\r\ncontent-type: b\r\nX-a: 2\r\nX-Obs: \xe9t\xe9\r\nX-Spaced : s\r\nContent-Length: 2\r\n\r\nok",
        // Given back to Pingora's session: a folded line.
        "folded" => b"HTTP/1.1 200 OK\r\nX-Folded: a\r\n b\r\nContent-Length: 2\r\n\r\nok",
        "nothing" => return None,
        _ => b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nX-Kind: length\r\n\r\nhello",
    })
}

impl Recorder {
    async fn start() -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let rec = Recorder {
            addr,
            seen: seen.clone(),
        };
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, seen.clone()));
            }
        });
        rec
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn take(&self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.seen.lock().unwrap())
    }
}

/// Reads requests (header, then a Content-Length or chunked body) and
/// answers each; closes after an answer framed by its close.
async fn serve(mut stream: TcpStream, seen: Arc<Mutex<Vec<Vec<u8>>>>) {
    let mut buf = Vec::new();
    loop {
        let Some(end) = read_until_head(&mut stream, &mut buf).await else {
            return;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
        let mut total = end;
        if let Some(len) = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok())
        {
            total += len;
        } else if head.contains("transfer-encoding: chunked") {
            while !buf[end..].windows(5).any(|w| w == b"0\r\n\r\n") {
                if !read_more(&mut stream, &mut buf).await {
                    return;
                }
            }
            total = end
                + buf[end..]
                    .windows(5)
                    .position(|w| w == b"0\r\n\r\n")
                    .unwrap()
                + 5;
        }
        while buf.len() < total {
            if !read_more(&mut stream, &mut buf).await {
                return;
            }
        }
        let request: Vec<u8> = buf.drain(..total).collect();
        let path = head.split(' ').nth(1).unwrap_or("/").to_string();
        // Shadow copies come later, from the engine's background thread:
        // answered, not kept (what is compared is the client's request).
        if !head.contains("\r\nx-strangler-shadow:") {
            seen.lock().unwrap().push(request);
        }
        let Some(answer) = answer_for(&path) else {
            return;
        };
        if stream.write_all(answer).await.is_err() {
            return;
        }
        let framed_by_close = !answer.starts_with(b"HTTP/1.1 204")
            && !answer.starts_with(b"HTTP/1.1 304")
            && !head.starts_with("head ")
            && !String::from_utf8_lossy(answer)
                .to_lowercase()
                .contains("content-length")
            && !String::from_utf8_lossy(answer)
                .to_lowercase()
                .contains("chunked");
        if framed_by_close || path.ends_with("/short") || path.ends_with("/garbage") {
            return;
        }
    }
}

async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 4096];
    match stream.read(&mut chunk).await {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            true
        }
    }
}

async fn read_until_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<usize> {
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Some(i + 4);
        }
        if !read_more(stream, buf).await {
            return None;
        }
    }
}

/// Sends `request` on a new connection and reads until the proxy closes
/// (every request of the corpus asks for `Connection: close`, or is
/// answered with a close).
async fn exchange(proxy: &Proxy, request: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(proxy.addr()).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(HANG, stream.read_to_end(&mut out)).await;
    out
}

/// The bytes with what each proxy makes its own replaced: request ids by
/// `ID`, the `Date` by `DATE`, and a chunked body by its decoded bytes
/// (where the chunks break depends on how reads fell, not on the path).
fn without_ids(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut rest = &text[..];
    let mut out = String::new();
    let mut chunked = false;
    // Every head: 1xx answers come before the final one.
    while let Some(i) = rest.find("\r\n\r\n") {
        let head = &rest[..i + 4];
        rest = &rest[i + 4..];
        for line in head.split_inclusive('\n') {
            match line.split_once(':') {
                Some((name, _)) if name.eq_ignore_ascii_case("x-request-id") => {
                    out.push_str(name);
                    out.push_str(": ID\r\n");
                }
                Some((name, _)) if name.eq_ignore_ascii_case("date") => {
                    out.push_str(name);
                    out.push_str(": DATE\r\n");
                }
                _ => out.push_str(line),
            }
        }
        if !head.starts_with("HTTP/1.1 1") {
            chunked = head
                .to_ascii_lowercase()
                .contains("transfer-encoding: chunked");
            break;
        }
    }
    match (chunked, dechunk(rest)) {
        (true, Some(decoded)) => out.push_str(&format!("<chunked, whole>{decoded}")),
        _ => out.push_str(&normalize_body_id(rest)),
    }
    out
}

/// A chunked body's bytes, if it is whole.
fn dechunk(mut body: &str) -> Option<String> {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n")?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            return (rest == "\r\n").then_some(out);
        }
        out.push_str(rest.get(..size)?);
        body = rest.get(size..)?.strip_prefix("\r\n")?;
    }
}

/// Error answers quote the request id in their body too.
fn normalize_body_id(line: &str) -> String {
    match line.find("request id ") {
        Some(i) => {
            let rest = &line[i + "request id ".len()..];
            let end = rest.find(')').unwrap_or(rest.len());
            format!("{}request id ID{}", &line[..i], &rest[end..])
        }
        None => line.to_string(),
    }
}

const ROUTES: &str = r#"
backends:
  legacy: { url: "LEGACY" }
  new: { url: "LEGACY", host: backend }
routes:
  - name: api
    match: { path: /api }
    legacy: legacy
    new: new
    canary: 100
    rewrite: { strip_prefix: /api, add_prefix: /v2 }
  - name: shadowed
    match: { path: /shadowed }
    legacy: legacy
    new: new
    canary: 0
    shadow: { percent: 100 }
default: legacy
"#;

/// Requests the fast path serves, each with `Connection: close`.
fn plain_requests() -> Vec<String> {
    let mut out = Vec::new();
    for path in [
        "/",
        "/a/b?c=d&e",
        "/api/orders/chunked",
        "/api/x/close",
        "/empty",
        "/notmodified",
        "/continue",
        "/cookies",
        "/a/../b/./c",
        "/garbage",
        "/short",
        "/long",
        "/old",
        "/reason",
        "/twolengths",
        "/gzipped",
        "/interleaved",
        "/folded",
        "/nothing",
    ] {
        out.push(format!(
            "GET {path} HTTP/1.1\r\nHost: shop.example\r\nUser-Agent: t\r\nConnection: close\r\n\r\n"
        ));
    }
    out.push("HEAD /a HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n".into());
    out.push("HEAD /api/chunked HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n".into());
    out.push("DELETE /a/1 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n".into());
    out.push(
        "POST /api/orders HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\nContent-Length: 11\r\nConnection: close\r\n\r\n{\"id\": 42}\n"
            .into(),
    );
    out.push("PUT /a HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into());
    out.push(
        "GET /a HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 10.9.9.9\r\nX-Forwarded-Proto: https\r\nX-Request-Id: mine\r\nX-Strangler-Shadow: 1\r\nConnection: close\r\n\r\n"
            .into(),
    );
    out.push(
        "GET /a HTTP/1.1\r\nHost: h\r\nCookie: a=1\r\nCookie: b=2\r\nConnection: close\r\n\r\n"
            .into(),
    );
    // A second request sent before the first's answer: this proxy does not
    // pipeline, so the first is answered and the connection closed.
    out.push("GET /p HTTP/1.1\r\nHost: h\r\n\r\nGET /q HTTP/1.1\r\nHost: h\r\n\r\n".into());
    // Read in place: an empty length, a tenant and a query with a bare `?`.
    out.push(
        "OPTIONS /a? HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\nX-Tenant-Id: acme\r\nConnection: close\r\n\r\n"
            .into(),
    );
    out
}

/// Requests the fast path leaves to the engine.
fn engine_requests() -> Vec<String> {
    vec![
        "POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n".into(),
        "GET /a HTTP/1.0\r\nHost: h\r\n\r\n".into(),
        "GET /shadowed/x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n".into(),
        "GET /a HTTP/1.1\r\nHost: h\r\nConnection: close, x-private\r\nX-Private: 1\r\n\r\n".into(),
        "GET /a HTTP/1.1\r\nConnection: close\r\n\r\n".into(),
        "GET /%zz HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n".into(),
    ]
}

async fn fast_path_served(proxy: &Proxy) -> f64 {
    let scrape: Scrape = proxy.metrics().await;
    scrape.sum("strangler_fast_path_requests_total", &[])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fast_path_sends_and_answers_the_same_bytes_as_the_engine() {
    let engine_backend = Recorder::start().await;
    let fast_backend = Recorder::start().await;
    // Explicitly off: the fast path is the default.
    // One worker each: which pooled upstream connection a request finds
    // (and so whether a stale one is retried) must not depend on which
    // worker the kernel gave the client connection to.
    let engine = Proxy::start_with_env_and_args(
        &ROUTES.replace("LEGACY", &engine_backend.url()),
        "sqlite://{dir}/strangler.db",
        &[("STRANGLER_FAST_PATH", "false")],
        &["--threads", "1"],
    )
    .await;
    let fast = Proxy::start_with_args(
        &ROUTES.replace("LEGACY", &fast_backend.url()),
        &["--fast-path", "--threads", "1"],
    )
    .await;

    let plain = plain_requests();
    for (i, request) in plain.iter().chain(engine_requests().iter()).enumerate() {
        let from_engine = exchange(&engine, request.as_bytes()).await;
        let from_fast = exchange(&fast, request.as_bytes()).await;
        assert!(!from_engine.is_empty(), "no answer to {request:?}");
        assert_eq!(
            without_ids(&from_fast),
            without_ids(&from_engine),
            "answer to {request:?}"
        );
        // A request the proxy refuses never reaches the backend; a stale
        // pooled connection may make one reach it twice: the same on both.
        let seen = |b: &Recorder| b.seen.lock().unwrap().len();
        eventually(HANG, || async {
            (seen(&engine_backend) == seen(&fast_backend)).then_some(())
        })
        .await
        .unwrap_or_else(|| panic!("backends saw different counts after {request:?}"));
        // `host: backend` sends each its own address.
        let upstream = |b: &Recorder| -> Vec<String> {
            b.take()
                .iter()
                .map(|r| without_ids(r).replace(&b.addr.to_string(), "BACKEND"))
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect()
        };
        let upstream_engine = upstream(&engine_backend);
        let upstream_fast = upstream(&fast_backend);
        assert_eq!(
            upstream_fast, upstream_engine,
            "upstream bytes of request {i}: {request:?}"
        );
        if i + 1 == plain.len() {
            assert_eq!(
                fast_path_served(&fast).await,
                plain.len() as f64,
                "every plain request was the fast path's"
            );
        }
    }
    assert_eq!(
        fast_path_served(&fast).await,
        plain.len() as f64,
        "the engine's requests were not the fast path's"
    );
    assert_eq!(fast_path_served(&engine).await, 0.0);
}

/// Keep-alive: several requests on one client connection, among them an
/// answer the backend framed by closing its connection (sent on chunked, the
/// client's connection stays open) and a chunked one; every one reaches the
/// backend and is the fast path's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fast_path_keeps_connections_alive_on_both_sides() {
    let backend = Recorder::start().await;
    let fast =
        Proxy::start_with_args(&ROUTES.replace("LEGACY", &backend.url()), &["--fast-path"]).await;
    let mut stream = TcpStream::connect(fast.addr()).await.unwrap();
    let mut answers = Vec::new();
    for path in ["/one", "/api/close", "/two", "/api/chunked", "/three"] {
        let request = format!("GET {path} HTTP/1.1\r\nHost: h\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        // Read one answer: every one of these ends with "hello", "the end"
        // or a zero chunk, and the proxy frames each by length or chunks.
        let mut got = Vec::new();
        let done = tokio::time::timeout(HANG, async {
            let mut chunk = [0u8; 4096];
            loop {
                let n = stream.read(&mut chunk).await.unwrap();
                assert!(
                    n > 0,
                    "the proxy closed a kept-alive connection after {got:?}"
                );
                got.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&got);
                if text.ends_with("hello") || text.ends_with("0\r\n\r\n") {
                    break;
                }
            }
        })
        .await;
        assert!(done.is_ok(), "no whole answer to {path}: {got:?}");
        answers.push(String::from_utf8_lossy(&got).into_owned());
    }
    assert!(
        answers[1].contains("Transfer-Encoding: chunked"),
        "{}",
        answers[1]
    );
    assert_eq!(backend.take().len(), 5);
    assert_eq!(fast_path_served(&fast).await, 5.0);
}

/// A backend that reads a request's head and then never answers: it
/// reports when the proxy closes the connection.
async fn silent_backend() -> (SocketAddr, tokio::sync::mpsc::UnboundedReceiver<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (closed, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let closed = closed.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                if read_until_head(&mut stream, &mut buf).await.is_none() {
                    return;
                }
                // Anything but the close is a request the proxy should not
                // have sent.
                while read_more(&mut stream, &mut buf).await {}
                let _ = closed.send(());
            });
        }
    });
    (addr, rx)
}

/// A client that closes its side while its answer is awaited ends the
/// exchange on both paths (Pingora's `abort_on_close` on the engine): the
/// backend sees its connection closed, and the client gets no answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_closes_while_waiting_ends_the_exchange_on_both_paths() {
    let (addr, mut closed) = silent_backend().await;
    let routes = ROUTES.replace("LEGACY", &format!("http://{addr}"));
    for args in [
        &["--fast-path=false", "--threads", "1"][..],
        &["--fast-path", "--threads", "1"][..],
    ] {
        let proxy = Proxy::start_with_args(&routes, args).await;
        let mut stream = TcpStream::connect(proxy.addr()).await.unwrap();
        stream
            .write_all(b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n")
            .await
            .unwrap();
        stream.shutdown().await.unwrap();
        let gone = tokio::time::timeout(HANG, closed.recv()).await;
        assert!(
            matches!(gone, Ok(Some(()))),
            "{args:?}: the proxy kept waiting on the backend after the client left"
        );
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(HANG, stream.read_to_end(&mut answer)).await;
        assert!(
            answer.is_empty(),
            "{args:?}: {}",
            String::from_utf8_lossy(&answer)
        );
        let served = fast_path_served(&proxy).await;
        assert_eq!(
            served,
            if args[0] == "--fast-path" { 1.0 } else { 0.0 },
            "{args:?}"
        );
    }
}
