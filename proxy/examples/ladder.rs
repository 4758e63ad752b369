//! The rungs of the per-request cost ladder (bench/ladder.sh): each a proxy
//! forwarding every request to one HTTP/1 upstream, with the worker setup
//! `strangler serve` uses (one single-threaded Pingora service per worker,
//! each with its own `SO_REUSEPORT` listener, mimalloc):
//!
//! - `bare`: Pingora's proxy engine (`HttpProxy`) with a `ProxyHttp` that
//!   only names the upstream: what any Pingora proxy pays per request;
//! - `guarded`: the same behind Strangler's connection loop
//!   (`dataplane::connection`: PROXY header admission, the h2c preface peek,
//!   the whole-header deadline);
//! - `owned`: a spike of an owned HTTP/1 forward loop on pingora-core's
//!   HTTP/1 sessions, without the proxy engine: read a request, write it to
//!   an upstream connection kept for the client connection's life, stream
//!   the answer back. No routing, hygiene, metrics or error answers: it
//!   says what the sessions cost, not what a finished fast path would.
//! - `raw`: a spike of the owned codec the fast path does not have yet:
//!   the same loop with no pingora-core HTTP session on either side, each
//!   head parsed in place from one reused buffer per side (`httparse`, as
//!   Pingora's sessions use), the request head written from the client's
//!   bytes plus one forwarding header, the answer's head from the
//!   upstream's bytes plus one request id, bodies framed by Content-Length
//!   only (anything else closes; CRLF line ends assumed). Pingora is only
//!   the shell (server, listeners, `Stream`): the ceiling of owning the
//!   exchange's codec, not a proxy.
//! - `raw+pool`, `raw+timers`, `raw+pool+timers`, `raw+cpuN`: the raw spike with one of
//!   the fast path's pieces added, to split what they cost in tail latency
//!   (not rungs of bench/ladder.sh; bench/raw-pieces.sh runs them):
//!   `pool` takes each request's upstream connection from a per-worker list
//!   and puts it back after the answer, as the fast path's upstream pool
//!   does, instead of keeping one per client connection; `timers` guards
//!   every read with a timer kept per connection and reset per request
//!   (`tokio::time::Sleep`), as the fast path's kept timers do; `cpuN`
//!   spends N µs in a busy loop per request.
//!
//! - `owned@N`, `raw…@N`: that rung on single-threaded tokio runtimes this
//!   example builds itself (one thread each, its own `SO_REUSEPORT`
//!   listener, accepted sockets with `TCP_NODELAY` as Pingora's), the
//!   runtime looking for ready sockets every N task polls (tokio's
//!   `event_interval`, 61 by default), which Pingora's runtimes do not let
//!   a service set. Not rungs of bench/ladder.sh; run them with
//!   bench/raw-pieces.sh's `VARIANTS`.
//!
//! The full proxy (the last rung) is `strangler serve` itself.
//!
//!   cargo run --release --example ladder -- MODE LISTEN UPSTREAM WORKERS [ROUTES_YAML]

use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::{Buf, BytesMut};
use pingora::apps::ServerApp;
use pingora::prelude::*;
use pingora::protocols::Stream;
use pingora::protocols::http::v1::client::HttpSession as UpstreamSession;
use pingora::protocols::http::v1::server::HttpSession as DownstreamSession;
use pingora::server::ShutdownWatch;
use pingora::server::configuration::ServerConf;
use pingora::services::listening::Service;
use strangler::dataplane::connection::{ConnectionLimits, ConnectionStats, GuardedApp};
use strangler::live::{ListenerOverrides, Live};
use strangler::metrics::Metrics;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A `ProxyHttp` that sends everything to one upstream.
struct Bare {
    upstream: SocketAddr,
}

#[async_trait]
impl ProxyHttp for Bare {
    type CTX = ();
    fn new_ctx(&self) -> Self::CTX {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.upstream, false, String::new())))
    }
}

/// The owned forward loop (spike).
struct Owned {
    upstream: SocketAddr,
}

impl Owned {
    async fn connect(&self) -> Option<UpstreamSession> {
        let tcp = tokio::net::TcpStream::connect(self.upstream).await.ok()?;
        tcp.set_nodelay(true).ok()?;
        let stream: Stream = Box::new(pingora::protocols::l4::stream::Stream::from(tcp));
        Some(UpstreamSession::new(stream))
    }

    /// One exchange; the upstream session back if it can carry another.
    async fn exchange(
        &self,
        down: &mut DownstreamSession,
        mut up: UpstreamSession,
    ) -> Option<UpstreamSession> {
        up.write_request_header(Box::new(down.req_header().clone()))
            .await
            .ok()?;
        while let Some(chunk) = down.read_body_bytes().await.ok()? {
            up.write_body(&chunk).await.ok()?;
        }
        up.finish_body().await.ok()?;
        up.read_response().await.ok()?;
        let answer = up.resp_header()?.clone();
        down.write_response_header(Box::new(answer)).await.ok()?;
        while let Some(chunk) = up.read_body_bytes().await.ok()? {
            down.write_body(&chunk).await.ok()?;
        }
        down.finish_body().await.ok()?;
        up.respect_keepalive();
        up.reuse().await.map(UpstreamSession::new)
    }
}

#[async_trait]
impl ServerApp for Owned {
    async fn process_new(
        self: &Arc<Self>,
        mut stream: Stream,
        _shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let mut upstream: Option<UpstreamSession> = None;
        let mut prefix = None;
        loop {
            let mut down = DownstreamSession::new(stream);
            if let Some(p) = prefix.take() {
                down.set_pipelined_prefix(p);
            }
            down.read_request().await.ok()??;
            let up = match upstream.take() {
                Some(up) => up,
                None => self.connect().await?,
            };
            upstream = self.exchange(&mut down, up).await;
            let (s, p) = down.reuse().await.ok()??.into_parts();
            stream = s;
            prefix = p;
        }
    }
}

/// The owned codec (spike).
struct Raw {
    upstream: SocketAddr,
    pieces: RawPieces,
}

/// The raw spike's optional pieces (see the module's doc).
#[derive(Default)]
struct RawPieces {
    pool: Option<std::sync::Mutex<Vec<Stream>>>,
    timers: bool,
    /// CPU time spent in a busy loop per request (`+cpuN`, N µs): what a
    /// heavier proxy's work alone does to the tail.
    cpu: std::time::Duration,
}

impl RawPieces {
    /// The pieces a mode names (`raw+pool+timers+cpu2`); `None` for a
    /// mode that is not the raw spike's or names an unknown piece.
    fn parse(mode: &str) -> Option<RawPieces> {
        let mut parts = mode.split('+');
        (parts.next()? == "raw").then_some(())?;
        let mut pieces = RawPieces::default();
        for part in parts {
            match part {
                "pool" => pieces.pool = Some(Default::default()),
                "timers" => pieces.timers = true,
                cpu => {
                    let micros = cpu.strip_prefix("cpu")?.parse().ok()?;
                    pieces.cpu = std::time::Duration::from_micros(micros);
                }
            }
        }
        Some(pieces)
    }
}

impl Raw {
    /// An upstream connection: from the pool if there is one, else new.
    async fn upstream(&self) -> Option<Stream> {
        if let Some(up) = self.pieces.pool.as_ref().and_then(|p| p.lock().ok()?.pop()) {
            return Some(up);
        }
        let tcp = tokio::net::TcpStream::connect(self.upstream).await.ok()?;
        tcp.set_nodelay(true).ok()?;
        Some(Box::new(pingora::protocols::l4::stream::Stream::from(tcp)))
    }
}

/// Reads into `buf`, within `deadline` when there is one (reset here, as a
/// kept timer is before each wait).
async fn read_within(
    stream: &mut Stream,
    buf: &mut BytesMut,
    deadline: Option<std::pin::Pin<&mut tokio::time::Sleep>>,
) -> Option<usize> {
    match deadline {
        None => stream.read_buf(buf).await.ok(),
        Some(mut sleep) => {
            sleep
                .as_mut()
                .reset(tokio::time::Instant::now() + std::time::Duration::from_secs(60));
            tokio::select! {
                biased;
                read = stream.read_buf(buf) => read.ok(),
                () = sleep => None,
            }
        }
    }
}

/// Where a head ends and how long the body after it is, once `buf` holds a
/// whole head; `Err` for anything the spike does not frame.
fn framing(headers: &[httparse::Header<'_>]) -> Result<usize, ()> {
    let mut length = 0;
    for h in headers {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(());
        }
        if h.name.eq_ignore_ascii_case("content-length") {
            length = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.parse().ok())
                .ok_or(())?;
        }
    }
    Ok(length)
}

/// Reads from `stream` until `buf` holds a whole head (a request's when
/// `request`, else an answer's): the head's length and its body's.
async fn read_head(
    stream: &mut Stream,
    buf: &mut BytesMut,
    request: bool,
    mut deadline: Option<std::pin::Pin<&mut tokio::time::Sleep>>,
) -> Option<(usize, usize)> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let parsed = if request {
            let mut req = httparse::Request::new(&mut headers);
            match req.parse(buf).ok()? {
                httparse::Status::Complete(n) => Some((n, framing(req.headers).ok()?)),
                httparse::Status::Partial => None,
            }
        } else {
            let mut resp = httparse::Response::new(&mut headers);
            match resp.parse(buf).ok()? {
                httparse::Status::Complete(n) => Some((n, framing(resp.headers).ok()?)),
                httparse::Status::Partial => None,
            }
        };
        if parsed.is_some() {
            return parsed;
        }
        if buf.len() >= 64 * 1024
            || read_within(stream, buf, deadline.as_mut().map(|d| d.as_mut())).await? == 0
        {
            return None;
        }
    }
}

/// Writes `head` (less its blank line) with `extra` appended, then `body`
/// bytes of body: those in `buf` after the head first, the rest as read
/// from `from`. `buf` keeps what followed the body.
async fn forward(
    from: &mut Stream,
    to: &mut Stream,
    buf: &mut BytesMut,
    out: &mut Vec<u8>,
    (head, body): (usize, usize),
    extra: &[u8],
) -> Option<()> {
    out.clear();
    out.extend_from_slice(&buf[..head - 2]);
    out.extend_from_slice(extra);
    out.extend_from_slice(b"\r\n");
    let held = body.min(buf.len() - head);
    out.extend_from_slice(&buf[head..head + held]);
    buf.advance(head + held);
    to.write_all(out).await.ok()?;
    let mut left = body - held;
    while left > 0 {
        if from.read_buf(buf).await.ok()? == 0 {
            return None;
        }
        let n = left.min(buf.len());
        to.write_all(&buf[..n]).await.ok()?;
        buf.advance(n);
        left -= n;
    }
    to.flush().await.ok()
}

#[async_trait]
impl ServerApp for Raw {
    async fn process_new(
        self: &Arc<Self>,
        mut down: Stream,
        _shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let mut kept = None;
        let mut down_buf = BytesMut::with_capacity(4096);
        let mut up_buf = BytesMut::with_capacity(4096);
        let mut out = Vec::with_capacity(4096);
        let mut id = 0u64;
        let idle = tokio::time::sleep(std::time::Duration::from_secs(60));
        let answer_due = tokio::time::sleep(std::time::Duration::from_secs(60));
        tokio::pin!(idle, answer_due);
        let timers = self.pieces.timers;
        loop {
            if !self.pieces.cpu.is_zero() {
                let until = std::time::Instant::now() + self.pieces.cpu;
                while std::time::Instant::now() < until {
                    std::hint::spin_loop();
                }
            }
            let request = read_head(
                &mut down,
                &mut down_buf,
                true,
                timers.then_some(idle.as_mut()),
            )
            .await?;
            let mut up = match kept.take() {
                Some(up) => up,
                None => self.upstream().await?,
            };
            let xff = b"X-Forwarded-For: 127.0.0.1\r\n";
            forward(&mut down, &mut up, &mut down_buf, &mut out, request, xff).await?;
            let answer = read_head(
                &mut up,
                &mut up_buf,
                false,
                timers.then_some(answer_due.as_mut()),
            )
            .await?;
            id += 1;
            let request_id = format!("x-request-id: {id:016x}\r\n");
            forward(
                &mut up,
                &mut down,
                &mut up_buf,
                &mut out,
                answer,
                request_id.as_bytes(),
            )
            .await?;
            // Put back only after a whole answer (the body was read to its end)
            // and with nothing of the next answer read ahead.
            match &self.pieces.pool {
                Some(pool) if up_buf.is_empty() => {
                    if let Ok(mut pool) = pool.lock() {
                        pool.push(up);
                    }
                }
                _ => kept = Some(up),
            }
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 5 {
        eprintln!(
            "usage: ladder bare|guarded|owned[@N]|raw[+pool][+timers][+cpuN][@N] LISTEN UPSTREAM WORKERS [ROUTES_YAML]"
        );
        std::process::exit(2);
    }
    let mode = args[1].as_str();
    let listen: SocketAddr = args[2].parse().expect("LISTEN is IP:PORT");
    let upstream: SocketAddr = args[3].parse().expect("UPSTREAM is IP:PORT");
    let workers: usize = args[4].parse().expect("WORKERS is a number");
    if let Some((rung, interval)) = mode.split_once('@') {
        let interval: u32 = interval.parse().expect("MODE@N: N is a number");
        match rung {
            "owned" => on_own_runtimes(|| Owned { upstream }, listen, workers, interval),
            // Parsed again for each worker: the pieces hold the worker's pool.
            _ if RawPieces::parse(rung).is_some() => {
                let raw = || Raw {
                    upstream,
                    pieces: RawPieces::parse(rung).expect("parsed above"),
                };
                on_own_runtimes(raw, listen, workers, interval)
            }
            other => {
                eprintln!("no rung {other:?} on own runtimes");
                std::process::exit(2);
            }
        }
        return;
    }

    // A bench's cleanup sends SIGTERM: the rungs stop at once instead of
    // Pingora's default 300 s grace period, which the scripts would wait out.
    let mut server = Server::new_with_opt_and_conf(
        None,
        ServerConf {
            grace_period_seconds: Some(0),
            graceful_shutdown_timeout_seconds: Some(1),
            ..ServerConf::default()
        },
    );
    server.bootstrap();
    let conf: Arc<ServerConf> = server.configuration.clone();
    // The guarded rung's loop reads PROXY-protocol settings from a live table.
    let live = (mode == "guarded").then(|| {
        let routes = args.get(5).expect("guarded needs ROUTES_YAML");
        Live::load(
            std::path::Path::new(routes),
            Metrics::new(),
            ListenerOverrides::default(),
        )
        .expect("valid routes.yaml")
    });
    for n in 0..workers {
        let address = strangler::server::worker_listen_key(listen, n);
        match (mode, &live) {
            ("bare", _) => {
                let app = pingora::proxy::http_proxy(&conf, Bare { upstream });
                add_worker(&mut server, format!("bare {n}"), app, &address);
            }
            ("guarded", Some(live)) => {
                let counter = || prometheus::IntCounter::new("unused", "unused").expect("counter");
                let stats = ConnectionStats {
                    header_timeouts: counter(),
                    headers_too_large: counter(),
                    bad_request_lines: counter(),
                    proxy_protocol: counter(),
                };
                let limits = ConnectionLimits {
                    header_deadline: std::time::Duration::from_secs(10),
                    keepalive: std::time::Duration::from_secs(60),
                };
                let app = GuardedApp::new(
                    pingora::proxy::http_proxy(&conf, Bare { upstream }),
                    limits,
                    true,
                    stats,
                    live.clone(),
                    None,
                );
                add_worker(&mut server, format!("guarded {n}"), app, &address);
            }
            (_, _) if let Some(pieces) = RawPieces::parse(mode) => {
                let raw = Raw { upstream, pieces };
                add_worker(&mut server, format!("{mode} {n}"), raw, &address);
            }
            ("owned", _) => add_worker(
                &mut server,
                format!("owned {n}"),
                Owned { upstream },
                &address,
            ),
            (other, _) => {
                eprintln!("unknown mode {other:?}");
                std::process::exit(2);
            }
        }
    }
    server.run_forever();
}

/// An app from `make` for each of `workers` single-threaded runtimes built
/// here (each worker its own, as on Pingora's runtimes, so that the raw
/// spike's pool stays per worker), each runtime looking for ready sockets
/// every `interval` task polls, each with its own `SO_REUSEPORT` listener;
/// runs until killed.
fn on_own_runtimes<A: ServerApp + Send + Sync + 'static>(
    make: impl Fn() -> A,
    listen: SocketAddr,
    workers: usize,
    interval: u32,
) {
    // Never signalled: the process ends when a bench kills it.
    let (_shutdown, watch) = tokio::sync::watch::channel(false);
    let threads: Vec<_> = (0..workers)
        .map(|_| {
            let (app, watch) = (Arc::new(make()), watch.clone());
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .event_interval(interval)
                    .build()
                    .expect("a runtime");
                runtime.block_on(accept_loop(app, listen, watch));
            })
        })
        .collect();
    for thread in threads {
        let _ = thread.join();
    }
}

async fn accept_loop<A: ServerApp + Send + Sync + 'static>(
    app: Arc<A>,
    listen: SocketAddr,
    watch: ShutdownWatch,
) {
    let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
    socket.set_reuseaddr(true).expect("SO_REUSEADDR");
    socket.set_reuseport(true).expect("SO_REUSEPORT");
    socket.bind(listen).expect("LISTEN free");
    let listener = socket.listen(1024).expect("listening");
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            // Out of descriptors, say: back off rather than spin, which
            // would take the CPU the rung is measured by.
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let (app, watch) = (app.clone(), watch.clone());
        tokio::spawn(async move {
            let stream: Stream = Box::new(pingora::protocols::l4::stream::Stream::from(tcp));
            let _ = app.process_new(stream, &watch).await;
        });
    }
}

/// One worker as `strangler serve` runs it: a single-threaded service on its
/// own `SO_REUSEPORT` socket.
fn add_worker<A: ServerApp + Send + Sync + 'static>(
    server: &mut Server,
    name: String,
    app: A,
    address: &str,
) {
    let mut service = Service::new(name, app);
    service.threads = Some(1);
    service.add_tcp_with_settings(address, strangler::server::reuseport());
    server.add_service(service);
}
