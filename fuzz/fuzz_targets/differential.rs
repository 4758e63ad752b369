//! The owned HTTP/1 fast path against Pingora's proxy engine, on generated
//! requests and generated upstream answers.
//!
//! One process holds two real proxy workers built as `strangler serve`
//! builds them (`dataplane::workers`), on the same table, each on its own
//! loopback port: one with the fast path, one without. Both forward to one
//! scripted backend, which reads a request, keeps its bytes, writes the
//! input's answer and closes. For each input the same request goes to each
//! proxy in turn, on a new connection.
//!
//! Input: the request bytes, then optionally the line `--answer--` and the
//! bytes the backend answers with (a 200 with a small body when absent).
//! The harness sends one request: the bytes up to the end of the first
//! request's framing (its header, ended with an empty line if it has none,
//! then a `Content-Length` body padded with `x` to the declared length, or
//! a chunked body up to its last chunk), so that no pipelined rest and no
//! cut body makes what reaches the backend depend on timing; a cut body is
//! the client going away, and a header that never ends meets the header
//! deadline, which the test suites cover (`upstream_faults`, `limits`). The
//! client never half-closes: both paths end an exchange when the client's
//! FIN comes before the answer (`tests/fast_path.rs` holds them to it), and
//! what reached the backend by then is timing.
//!
//! Property: for every request the fast path serves (its counter moved),
//! what the backend received and what the client received are the same
//! bytes on both paths, up to what each proxy makes its own: the request id
//! (header and error-page text), `Date`, and where a chunked body's chunks
//! break. A request the fast path leaves to the engine is the engine's on
//! both sides, before a byte is written, so it is only run (a panic is
//! still a crash): comparing it would compare the engine with itself, and
//! its timing (whether a request head reached the backend before a
//! malformed chunked body was found) is not the fast path's. A difference
//! is tried once more after a pause, and only a difference seen twice is a
//! crash: the engine learns that a pooled upstream connection was closed by
//! a background task, the fast path when it takes the connection, so one
//! exchange in very many can meet a closed connection on the engine alone.

#![no_main]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use pingora::server::Server;
use pingora::services::listening::Service;
use strangler::dataplane::workers::{WorkerSettings, Workers};
use strangler::live::{ListenerOverrides, Live};
use strangler::metrics::Metrics;
use strangler::shadow::ShadowQueue;

const MARKER: &[u8] = b"\n--answer--\n";
const DEFAULT_ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
/// Longest wait for a read; an exchange that waits this long is recorded
/// as such on both paths.
const WAIT: Duration = Duration::from_secs(3);
/// How long the backend's connections get to end after the client's
/// exchange (the total stays under libFuzzer's 20-second timeout when a
/// difference is tried again).
const SETTLE: Duration = Duration::from_secs(1);
/// The proxies' header deadline: well inside `WAIT`, so a header that
/// never ends gets its 408 before the client stops reading.
const HEADER_DEADLINE: Duration = Duration::from_secs(1);
/// Largest declared body the harness pads to.
const MAX_PADDED: usize = 1 << 20;

const ROUTES: &str = r#"
version: 1
backends:
  legacy: { url: "http://BACKEND" }
  new: { url: "http://BACKEND", host: backend }
default: legacy
routes:
  - name: api
    match: { path: /api }
    legacy: legacy
    new: new
    canary: 100
    rewrite: { strip_prefix: /api, add_prefix: /v2 }
  - name: exact
    match: { path_exact: /exact, methods: [GET, HEAD] }
    new: new
    canary: 100
  - name: tenant
    match: { path: /t, headers: { x-tenant-id: acme } }
    new: new
    canary: 100
  - name: limited
    match: { path: /limited }
    new: new
    canary: 0
    max_request_body: 64B
  - name: shadowed
    match: { path: /shadowed }
    new: new
    canary: 0
    shadow: { percent: 100 }
"#;

fuzz_target!(|data: &[u8]| {
    let harness = Harness::get();
    let (request, answer) = match find(data, MARKER) {
        Some(i) => (&data[..i], &data[i + MARKER.len()..]),
        None => (data, DEFAULT_ANSWER),
    };
    let request = one_request(request);
    let engine = harness.exchange(harness.engine, &request, answer);
    let (fast, served) = harness.exchange_fast(&request, answer);
    // What the fast path left to the engine was served by the engine on
    // both sides: the property is about what the fast path serves (and the
    // engine's own timing, e.g. whether a request head reached the backend
    // before a malformed chunked body was found, is not the fast path's).
    if !served || engine == fast {
        return;
    }
    std::thread::sleep(Duration::from_millis(100));
    let engine_again = harness.exchange(harness.engine, &request, answer);
    let (fast_again, _) = harness.exchange_fast(&request, answer);
    assert_eq!(
        engine_again,
        fast_again,
        "the fast path and the engine differ (twice) on request {:?} with answer {:?}",
        String::from_utf8_lossy(&request),
        String::from_utf8_lossy(answer)
    );
});

/// The two proxies and their backend, started once per process.
struct Harness {
    engine: SocketAddr,
    fast: SocketAddr,
    /// `strangler_fast_path_requests_total` of the fast worker.
    fast_served: prometheus::IntCounter,
    backend: Arc<Backend>,
}

/// What one exchange did, with what is each proxy's own taken out.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    /// Each request the backend read, in order of arrival.
    upstream: Vec<String>,
    /// What the client read, up to the end of the first answer.
    client: String,
}

impl Harness {
    fn get() -> &'static Harness {
        static HARNESS: OnceLock<Harness> = OnceLock::new();
        HARNESS.get_or_init(Harness::start)
    }

    fn start() -> Harness {
        let backend = Backend::start();
        let dir =
            std::env::temp_dir().join(format!("strangler-differential-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temporary directory");
        let file = dir.join("routes.yaml");
        std::fs::write(&file, ROUTES.replace("BACKEND", &backend.addr.to_string()))
            .expect("writing routes.yaml");
        let live = Live::load(&file, Metrics::new(), ListenerOverrides::default())
            .unwrap_or_else(|e| panic!("the harness's routes.yaml: {e}"));
        // Nothing drains the shadow queue: the shadowed route is there to
        // be handed to the engine by both, and its copies are dropped.
        let (shadow, _jobs, _budget) = ShadowQueue::new(16, 1 << 20);
        let workers = Workers::new(
            &live,
            shadow,
            WorkerSettings {
                header_timeout: HEADER_DEADLINE,
                max_inflight: 1024,
                access_log_queue: 1024,
            },
        );
        let engine = free_port();
        let fast = free_port();
        let mut server = Server::new(None).expect("pingora server");
        server.bootstrap();
        let conf = server.configuration.clone();
        for (name, addr, fast_path) in [("engine", engine, false), ("fast", fast, true)] {
            let mut service = Service::new(name.to_string(), workers.app(&conf, fast_path));
            service.threads = Some(1);
            service.add_tcp(&addr.to_string());
            server.add_service(service);
        }
        std::thread::spawn(move || {
            let _live = live;
            server.run_forever();
        });
        for addr in [engine, fast] {
            let start = Instant::now();
            while TcpStream::connect(addr).is_err() {
                assert!(
                    start.elapsed() < Duration::from_secs(30),
                    "proxy on {addr} never listened"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let harness = Harness {
            engine,
            fast,
            fast_served: workers.fast_path_counter(),
            backend,
        };
        harness.check_not_vacuous();
        harness
    }

    /// The property only speaks of what the fast path serves: if a change
    /// to the table or to what the fast path takes made it serve nothing,
    /// every input would pass untested. One plain request must be served by
    /// it, and the same way as by the engine, before any input runs.
    fn check_not_vacuous(&self) {
        let plain = b"GET /api/orders/1 HTTP/1.1\r\nHost: shop.example\r\n\r\n";
        let engine = self.exchange(self.engine, plain, DEFAULT_ANSWER);
        let (fast, served) = self.exchange_fast(plain, DEFAULT_ANSWER);
        assert!(
            served,
            "the fast path did not serve a plain GET: the target would compare nothing"
        );
        assert_eq!(engine, fast, "a plain GET differs between the two paths");
        assert_eq!(
            engine.upstream.len(),
            1,
            "a plain GET did not reach the backend: {engine:?}"
        );
    }

    /// An exchange with the fast worker, and whether the fast path served
    /// it.
    fn exchange_fast(&self, request: &[u8], answer: &[u8]) -> (Outcome, bool) {
        let before = self.fast_served.get();
        let outcome = self.exchange(self.fast, request, answer);
        (outcome, self.fast_served.get() > before)
    }

    fn exchange(&self, proxy: SocketAddr, request: &[u8], answer: &[u8]) -> Outcome {
        self.backend.script(answer);
        let head_request = method_is_head(request);
        let client = match TcpStream::connect(proxy) {
            Ok(mut stream) => {
                stream.set_read_timeout(Some(WAIT)).ok();
                // A proxy may answer and close before reading everything.
                let _ = stream.write_all(request);
                read_answer(&mut stream, head_request)
            }
            Err(e) => format!("<connect: {e}>").into_bytes(),
        };
        Outcome {
            upstream: self.backend.settle(),
            client: normalize(&client),
        }
    }
}

fn free_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding a loopback port");
    listener.local_addr().expect("its address")
}

/// The scripted backend.
struct Backend {
    addr: SocketAddr,
    state: Mutex<BackendState>,
    changed: Condvar,
}

#[derive(Default)]
struct BackendState {
    /// Which exchange this is: a connection belongs to the exchange during
    /// which it was accepted, and one left from an earlier exchange (its
    /// proxy still waiting on it) neither records nor is waited for.
    exchange: u64,
    answer: Vec<u8>,
    received: Vec<String>,
    /// Connections of this exchange still being served.
    open: usize,
}

impl Backend {
    fn start() -> Arc<Backend> {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the backend");
        let backend = Arc::new(Backend {
            addr: listener.local_addr().expect("its address"),
            state: Mutex::new(BackendState::default()),
            changed: Condvar::new(),
        });
        let serving = backend.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let exchange = {
                    let mut state = serving.lock();
                    state.open += 1;
                    state.exchange
                };
                let one = serving.clone();
                std::thread::spawn(move || {
                    one.serve(stream, exchange);
                    let mut state = one.lock();
                    if state.exchange == exchange {
                        state.open -= 1;
                    }
                    drop(state);
                    one.changed.notify_all();
                });
            }
        });
        backend
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BackendState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn script(&self, answer: &[u8]) {
        let mut state = self.lock();
        state.exchange += 1;
        state.open = 0;
        state.answer = answer.to_vec();
        state.received.clear();
    }

    /// What was received, once every connection has been served.
    fn settle(&self) -> Vec<String> {
        let deadline = Instant::now() + SETTLE;
        let mut state = self.lock();
        while state.open > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                state
                    .received
                    .push("<a backend connection stayed open>".to_string());
                break;
            }
            state = self
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        std::mem::take(&mut state.received)
    }

    /// One request, then the scripted answer and a close: no connection is
    /// ever good for a second request, so neither proxy's pool changes what
    /// the next input meets (see the module's comment for the one race).
    fn serve(&self, mut stream: TcpStream, exchange: u64) {
        // Longer than the client waits: a request the proxy never finishes
        // is the client's wait running out, on both paths alike.
        stream.set_read_timeout(Some(2 * WAIT)).ok();
        let mut buf = Vec::new();
        let complete = read_request(&mut stream, &mut buf);
        let mut text = normalize(&buf);
        if !complete {
            text.push_str("<cut>");
        }
        if buf.is_empty() {
            return;
        }
        let answer = {
            let mut state = self.lock();
            if state.exchange != exchange {
                return;
            }
            state.received.push(text);
            state.answer.clone()
        };
        if complete {
            let _ = stream.write_all(&answer);
        }
        let _ = stream.shutdown(std::net::Shutdown::Both);
    }
}

/// Reads one request into `buf`; false if the stream ended first.
fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    loop {
        if let Some(end) = request_end(buf) {
            buf.truncate(end);
            return true;
        }
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return false,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// The first request of `data`: a header cut short is ended with an empty
/// line (a header that never ends is the header deadline's business, which
/// the suites test), a short `Content-Length` body is padded; all of `data`
/// when its header does not parse.
fn one_request(data: &[u8]) -> Vec<u8> {
    if find(data, b"\r\n\r\n").is_none() && find(data, b"\n\n").is_none() {
        let mut whole = data.to_vec();
        whole.extend_from_slice(b"\r\n\r\n");
        return one_request(&whole);
    }
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    let head = match req.parse(data) {
        Ok(httparse::Status::Complete(head)) => head,
        // Partial with an empty line in it (bare CRs, say): as it is.
        Ok(httparse::Status::Partial) => return data.to_vec(),
        Err(_) => return data.to_vec(),
    };
    let body = &data[head..];
    match framing(req.headers) {
        Framing::Length(n) if n <= MAX_PADDED => {
            let mut out = data[..head].to_vec();
            out.extend_from_slice(&body[..n.min(body.len())]);
            out.resize(head + n, b'x');
            out
        }
        Framing::Chunked => match chunked_end(body) {
            Some(end) => data[..head + end].to_vec(),
            None => data.to_vec(),
        },
        Framing::None => data[..head].to_vec(),
        Framing::Length(_) | Framing::Odd => data.to_vec(),
    }
}

/// Where the request at the start of `buf` ends, once it is all there.
fn request_end(buf: &[u8]) -> Option<usize> {
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let mut req = httparse::Request::new(&mut headers);
    let head = match req.parse(buf) {
        Ok(httparse::Status::Complete(head)) => head,
        Ok(httparse::Status::Partial) => return None,
        // Not a request a proxy should send: keep all of it.
        Err(_) => return Some(buf.len()).filter(|&n| n > 0),
    };
    match framing(req.headers) {
        Framing::Length(n) => (buf.len() >= head + n).then_some(head + n),
        Framing::Chunked => chunked_end(&buf[head..]).map(|end| head + end),
        Framing::None | Framing::Odd => Some(head),
    }
}

enum Framing {
    None,
    Length(usize),
    Chunked,
    /// Both, several lengths, or one that is not a number.
    Odd,
}

fn framing(headers: &[httparse::Header<'_>]) -> Framing {
    let mut lengths = headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("content-length"));
    let chunked = headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("transfer-encoding")
            && String::from_utf8_lossy(h.value)
                .to_ascii_lowercase()
                .contains("chunked")
    });
    match (lengths.next(), lengths.next(), chunked) {
        (None, None, false) => Framing::None,
        (None, None, true) => Framing::Chunked,
        (Some(h), None, false) => std::str::from_utf8(h.value)
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .map_or(Framing::Odd, Framing::Length),
        _ => Framing::Odd,
    }
}

/// The length of a whole chunked body at the start of `body` (trailers
/// included), if it is all there.
fn chunked_end(body: &[u8]) -> Option<usize> {
    let mut at = 0;
    loop {
        let line = find(&body[at..], b"\r\n")?;
        let size = std::str::from_utf8(&body[at..at + line]).ok()?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        at += line + 2;
        if size == 0 {
            // Trailers, then an empty line.
            loop {
                let line = find(&body[at..], b"\r\n")?;
                at += line + 2;
                if line == 0 {
                    return Some(at);
                }
            }
        }
        at = at.checked_add(size)?.checked_add(2)?;
        if at > body.len() {
            return None;
        }
    }
}

fn method_is_head(request: &[u8]) -> bool {
    request.starts_with(b"HEAD ")
}

/// Reads the first final answer (after any 1xx but a 101), framed as a
/// client would frame it, or up to the close.
fn read_answer(stream: &mut TcpStream, head_request: bool) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut start = 0;
    loop {
        if let Some(end) = answer_end(&buf, &mut start, head_request) {
            buf.truncate(end);
            return buf;
        }
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk) {
            Ok(0) => return buf,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                buf.extend_from_slice(b"<no more within the wait>");
                return buf;
            }
            // A reset after an answer: what arrived is what counts.
            Err(_) => return buf,
        }
    }
}

/// Where the answer starting at `start` ends; `start` moves past 1xx
/// answers.
fn answer_end(buf: &[u8], start: &mut usize, head_request: bool) -> Option<usize> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 128];
        let mut res = httparse::Response::new(&mut headers);
        let head = match res.parse(&buf[*start..]) {
            Ok(httparse::Status::Complete(head)) => *start + head,
            // Partial, or not an answer: read on, to the close.
            _ => return None,
        };
        let code = res.code.unwrap_or(0);
        if (100..200).contains(&code) && code != 101 {
            *start = head;
            continue;
        }
        if code == 101 {
            return None;
        }
        if head_request || code == 204 || code == 304 {
            return Some(head);
        }
        return match framing(res.headers) {
            Framing::Length(n) => (buf.len() >= head + n).then_some(head + n),
            Framing::Chunked => chunked_end(&buf[head..]).map(|end| head + end),
            Framing::None | Framing::Odd => None,
        };
    }
}

/// The bytes as text with what each proxy makes its own replaced: the
/// values of `X-Request-Id` and `Date` (in every head, 1xx answers'
/// included), the request id quoted in an error page, and a whole chunked
/// body by its decoded bytes.
fn normalize(bytes: &[u8]) -> String {
    let mut rest = bytes;
    let mut out = String::new();
    let mut chunked = false;
    while let Some(i) = find(rest, b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&rest[..i + 4]);
        rest = &rest[i + 4..];
        for line in head.split_inclusive('\n') {
            match line.split_once(':') {
                Some((name, _))
                    if name.eq_ignore_ascii_case("x-request-id")
                        || name.eq_ignore_ascii_case("date") =>
                {
                    out.push_str(name);
                    out.push_str(": *\r\n");
                }
                _ => out.push_str(line),
            }
        }
        let status = head.split(' ').nth(1).unwrap_or("");
        let informational = head.starts_with("HTTP/") && status.starts_with('1') && status != "101";
        if !informational {
            chunked = head
                .to_ascii_lowercase()
                .contains("transfer-encoding: chunked");
            break;
        }
    }
    // Chunks are decoded from the bytes: a size counts bytes, not text.
    if chunked {
        out.push_str("<chunked>");
        out.push_str(&String::from_utf8_lossy(&dechunk(rest)));
    } else {
        out.push_str(&without_quoted_id(&String::from_utf8_lossy(rest)));
    }
    out
}

/// A chunked body's bytes, then `<end>` and what follows the last chunk;
/// or, for a body cut short or malformed, the bytes of its whole chunks,
/// then `<rest>` and the bytes from the first chunk that is not whole.
fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some((size, after)) = chunk_size(body) {
        if size == 0 {
            out.extend_from_slice(b"<end>");
            out.extend_from_slice(after);
            return out;
        }
        let Some(data) = after.get(..size) else {
            break;
        };
        let Some(next) = after[size..].strip_prefix(b"\r\n") else {
            break;
        };
        out.extend_from_slice(data);
        body = next;
    }
    out.extend_from_slice(b"<rest>");
    out.extend_from_slice(body);
    out
}

/// A chunk's size line: the size and what follows the line.
fn chunk_size(body: &[u8]) -> Option<(usize, &[u8])> {
    let line = find(body, b"\r\n")?;
    let size = std::str::from_utf8(&body[..line]).ok()?;
    let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
    Some((size, &body[line + 2..]))
}

/// Error answers quote the request id: "... (request id 0123abcd)".
fn without_quoted_id(body: &str) -> String {
    match body.find("request id ") {
        Some(i) => {
            let rest = &body[i + "request id ".len()..];
            let end = rest.find(')').unwrap_or(rest.len());
            format!("{}request id *{}", &body[..i], &rest[end..])
        }
        None => body.to_string(),
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
