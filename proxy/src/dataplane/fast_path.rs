//! The owned HTTP/1 fast path (`strangler serve --fast-path`). For the
//! common exchange, a plain HTTP/1.1 request with no body or a
//! Content-Length body, to a route with no shadow, recording, retries or TLS
//! upstream, the connection loop hands the request here instead of to
//! Pingora's proxy engine (`HttpProxy`), which costs a task pair, channels
//! and header copies per request. The common body-less request is read
//! in place (`client_request`) and served by
//! `in_place`; any other by pingora-core's HTTP/1 session, the one the
//! engine uses, here. The upstream request's head is
//! written from the client's header bytes and the exchange's edits
//! (`wire_head`) and its Content-Length body straight onto the connection.
//! The common answer is read in place
//! ([`upstream_answer`](super::upstream_answer)); any other is given back
//! unread to pingora-core's client session, as the engine's. The answer is
//! written by [`fast_answer`](super::fast_answer) on the connection taken
//! from the session once the final answer head is read. Every step of
//! Strangler's own (who the client is, hygiene, the route decision, rewrites,
//! forwarding headers, error answers, metrics and the access log) is the
//! one in [`exchange`](super::exchange).
//!
//! Anything else comes back as [`Served::NotMine`] before a byte is written
//! or anything counted, and the loop gives the connection to the engine with
//! the same header bytes.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use http::header;
use pingora::apps::HttpPersistentSettings;
use pingora::connectors::TransportConnector;
use pingora::http::RequestHeader;
use pingora::protocols::Stream;
use pingora::protocols::http::v1::client::HttpSession as UpstreamSession;
use pingora::protocols::http::{HttpTask, ServerSession};
use pingora::server::ShutdownWatch;
use pingora::{Error, ErrorType, OkOrErr, OrErr, Result, RetryType};
use tokio::io::AsyncWriteExt;

use super::client_request::plain_exchange;
use super::ctx::RequestCtx;
use super::exchange::{Answered, ClientRequest, DataPath, LoggedRequest, Routing, UpstreamEdits};
use super::fast_answer::{Framing, OwnedAnswer};
use super::kept_timer::KeptTimer;
use super::service::{MAX_CONNECT_ATTEMPTS, StranglerProxy};
use super::upstream_answer::{HeadRead, InPlaceAnswer, read_head};
use super::upstream_pool::UpstreamPool;
use super::wire_head::RequestHead;
use crate::routing::headers::RequestHeaders;

mod attempt;
mod in_place;

use attempt::{Attempt, upstream_session, write_all};

/// A connection after an answer that keeps it, ready for its next
/// request.
pub struct NextRequest {
    pub stream: Stream,
    /// Its keep-alive settings (`None` after a request read in place: the
    /// next session starts as on a new connection).
    pub settings: Option<HttpPersistentSettings>,
    /// Bytes read past the request just answered; or, after a request
    /// read in place, its buffer emptied, for the next head to be read
    /// into (a connection holds one head at a time, so it need not
    /// allocate a buffer per request).
    pub carried: Option<BytesMut>,
    /// When the client had the whole answer (the reading the request's
    /// latency is counted to): the keep-alive wait for the next request
    /// is counted from it, with no clock read of its own.
    pub answered: Instant,
}

/// What the fast path did with a request read by Pingora's session
/// ([`FastPath::serve`]).
pub enum Served {
    /// Answered; the connection, if it can carry another request.
    Answered(Option<NextRequest>),
    /// Not a request for the fast path: the connection and its keep-alive
    /// settings, with nothing written and nothing counted.
    NotMine(Stream, HttpPersistentSettings),
    /// The client closed, or sent no request, before a request was read.
    Gone,
}

/// What the fast path did with a request whose head the connection loop
/// read ([`FastPath::serve_in_place`]).
pub enum ServedInPlace {
    /// Answered; the connection, if it can carry another request.
    Answered(Option<NextRequest>),
    /// Not a request read in place: the connection and the bytes read, as
    /// they were, for Pingora's session to read.
    NotInPlace(Stream, BytesMut),
    /// Read in place, but routed where the fast path does not serve: as
    /// `NotInPlace`, for Pingora's engine, with nothing counted.
    ToEngine(Stream, BytesMut),
}

impl std::fmt::Debug for NextRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NextRequest")
            .field("carried", &self.carried.as_ref().map(BytesMut::len))
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Served {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Served::Answered(Some(_)) => "Answered(kept alive)",
            Served::Answered(None) => "Answered(closed)",
            Served::NotMine(..) => "NotMine",
            Served::Gone => "Gone",
        })
    }
}

impl std::fmt::Debug for ServedInPlace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ServedInPlace::Answered(Some(_)) => "Answered(kept alive)",
            ServedInPlace::Answered(None) => "Answered(closed)",
            ServedInPlace::NotInPlace(..) => "NotInPlace",
            ServedInPlace::ToEngine(..) => "ToEngine",
        })
    }
}

/// One worker's fast path: the proxy's shared state, and its own pool.
pub struct FastPath {
    proxy: StranglerProxy,
    /// `strangler_fast_path_requests_total`.
    served: prometheus::IntCounter,
    connector: TransportConnector,
    pool: UpstreamPool,
}

impl std::fmt::Debug for FastPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FastPath")
            .field("pool", &self.pool)
            .finish_non_exhaustive()
    }
}

/// An upstream connection whose final answer head has been read, and the
/// address it is pooled under.
struct Answering {
    from: AnswerFrom,
    addr: SocketAddr,
}

/// What read the final answer's head.
enum AnswerFrom {
    /// Read in place (`upstream_answer`): the common answer.
    InPlace(InPlaceAnswer),
    /// Pingora's client session: HEAD requests, 1xx answers and odd heads
    /// (boxed: the session is three times the size, and the rarer).
    Session(Box<UpstreamSession>),
}

impl Answering {
    /// How the fast path frames the client's copy when it writes the
    /// answer itself; `None` for an answer framed in a way it leaves to
    /// Pingora's session writer (see [`Framing::of`]).
    fn owned_framing(&mut self, head_request: bool) -> Option<Framing> {
        match &mut self.from {
            AnswerFrom::InPlace(answer) => Some(answer.framing()),
            AnswerFrom::Session(session) => {
                let done = session.is_body_done();
                session
                    .resp_header()
                    .and_then(|a| Framing::of(a, head_request, done))
            }
        }
    }
}

impl FastPath {
    pub fn new(proxy: StranglerProxy, served: prometheus::IntCounter) -> FastPath {
        FastPath {
            proxy,
            served,
            connector: TransportConnector::new(None),
            pool: UpstreamPool::default(),
        }
    }

    /// Serves the request whose header `session` holds (as its pipelined
    /// prefix), if it is one for the fast path. The answer is awaited on
    /// the client connection's kept `timer`.
    pub async fn serve(
        &self,
        mut session: ServerSession,
        shutdown: &ShutdownWatch,
        timer: &mut KeptTimer,
    ) -> Served {
        match session.read_request().await {
            Ok(true) => {}
            Ok(false) => return Served::Gone,
            // Let the engine read it again and answer as it does.
            Err(_) => return not_mine(session),
        }
        if *shutdown.borrow() {
            // As the engine, after the request is read (reading it sets
            // keep-alive from its headers): a draining process answers with
            // `Connection: close`.
            session.set_keepalive(None);
        }
        if !plain_exchange(session.req_header()) {
            return not_mine(session);
        }
        let mut ctx = RequestCtx::new(self.proxy.live.current());
        let routing = self.proxy.route(
            &ClientRequest::of_session(&session),
            &mut ctx,
            DataPath::Fast,
        );
        match routing {
            Routing::Forward => {}
            Routing::Refuse(..) | Routing::NotFast => return not_mine(session),
        }
        self.served.inc();
        let forwarded = self.forward(&mut session, &mut ctx, timer).await;
        Served::Answered(self.conclude(session, forwarded, ctx).await)
    }

    /// The rest of an exchange whose request `session` read, once the
    /// final answer's head is read (or the exchange failed): the answer,
    /// or the failure's, and the end of the request.
    async fn conclude(
        &self,
        mut session: ServerSession,
        forwarded: Result<Answering>,
        mut ctx: RequestCtx,
    ) -> Option<NextRequest> {
        let head_request = session.req_header().method == http::Method::HEAD;
        let failure = match forwarded {
            Ok(mut up) => match up.owned_framing(head_request) {
                Some(framing) => return self.answer_owned(session, up, framing, ctx).await,
                None => self
                    .answer_through_session(&mut session, up, &mut ctx)
                    .await
                    .err(),
            },
            Err(e) => Some(e),
        };
        if let Some(e) = &failure {
            // As the engine's `fail_to_proxy`: the failure is classified
            // (and counted) even when the client already has the head of an
            // answer, and nothing more is written then.
            StranglerProxy::answer_failure(&mut session, e, &mut ctx).await;
        }
        self.proxy.request_done(
            &Answered::by_session(&session),
            failure.as_deref(),
            &mut ctx,
        );
        let answered = ctx.ended();
        drop(ctx);
        if failure.is_some() {
            // Closed, never finished: finishing would end a chunked answer
            // cut short with its last chunk, and make it look complete.
            // After a failure the connection's state is not worth trusting.
            session.shutdown().await;
            return None;
        }
        let settings = HttpPersistentSettings::for_session(&session);
        let (stream, carried) = session.finish().await.ok()??.into_parts();
        Some(NextRequest {
            stream,
            settings: Some(settings),
            carried,
            answered,
        })
    }

    /// The common answer, written by the fast path itself
    /// ([`OwnedAnswer`]) on the connection taken from `session`.
    async fn answer_owned(
        &self,
        session: ServerSession,
        up: Answering,
        framing: Framing,
        mut ctx: RequestCtx,
    ) -> Option<NextRequest> {
        let (client, request) = match OwnedAnswer::take(session, framing).await {
            Ok(taken) => taken,
            // Nothing was written; the connection is gone with the session.
            Err((e, request)) => {
                StranglerProxy::classify_failure(&e, &mut ctx);
                if let Some(request) = &request {
                    let answered = Answered {
                        request: request.into(),
                        status: 0,
                        body_bytes_sent: 0,
                    };
                    self.proxy.request_done(&answered, Some(&e), &mut ctx);
                }
                return None;
            }
        };
        self.relay(client, up, (&request).into(), ctx).await
    }

    /// Writes the common answer on `client` (the fast path's own writer),
    /// pools the upstream connection after a whole answer, and ends the
    /// request: counted, logged, and the connection kept for the next one
    /// or closed.
    async fn relay(
        &self,
        mut client: OwnedAnswer,
        mut up: Answering,
        request: LoggedRequest<'_>,
        mut ctx: RequestCtx,
    ) -> Option<NextRequest> {
        let relayed = match &mut up.from {
            AnswerFrom::InPlace(answer) => client.relay_in_place(answer, &ctx).await,
            AnswerFrom::Session(session) => client.relay_session(session, &ctx).await,
        };
        let failure = relayed.err();
        match &failure {
            // The client has the head of the answer, or could not take it:
            // nothing more is written, the failure is counted.
            Some(e) => {
                StranglerProxy::classify_failure(e, &mut ctx);
            }
            None => self.pool_if_reusable(up, ctx.ended()).await,
        }
        self.proxy
            .request_done(&client.answered(request), failure.as_deref(), &mut ctx);
        let answered = ctx.ended();
        drop(ctx);
        if failure.is_some() {
            client.close().await;
            return None;
        }
        let (stream, settings) = client.into_next().await?;
        Some(NextRequest {
            stream,
            settings,
            carried: None,
            answered,
        })
    }

    /// An answer framed in a way the fast path leaves to Pingora's session
    /// writer (see [`Framing::of`]): its head, then its body as read.
    async fn answer_through_session(
        &self,
        down: &mut ServerSession,
        up: Answering,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let AnswerFrom::Session(mut session) = up.from else {
            return Error::e_explain(ErrorType::InternalError, "an answer read in place");
        };
        let mut answer = Box::new(
            session
                .resp_header()
                .or_err(ErrorType::InternalError, "no answer read")?
                .clone(),
        );
        let mut end = session.is_body_done();
        StranglerProxy::answer_headers(&mut answer, ctx)?;
        down.write_response_header(answer)
            .await
            .map_err(|e| e.into_down())?;
        if end {
            down.write_response_body(bytes::Bytes::new(), true)
                .await
                .map_err(|e| e.into_down())?;
        }
        while !end {
            let task = tokio::select! {
                biased;
                task = session.read_response_task() => task.map_err(|e| e.into_up())?,
                gone = down.read_body_or_idle(true) => return Err(client_gone(gone)),
            };
            end = task.is_end();
            match task {
                HttpTask::Body(data, last) => {
                    down.write_response_body(data.unwrap_or_default(), last)
                        .await
                        .map_err(|e| e.into_down())?;
                }
                HttpTask::Failed(e) => return Err(e.into_up()),
                // The head was read before; an upgraded body cannot follow
                // the 101 refused then.
                _ => {}
            }
        }
        self.pool_if_reusable(
            Answering {
                from: AnswerFrom::Session(session),
                addr: up.addr,
            },
            ctx.ended(),
        )
        .await;
        Ok(())
    }

    /// The upstream connection back to the pool after a whole, well-framed
    /// answer (Pingora's `reuse` decides, or the in-place reader on its
    /// terms).
    async fn pool_if_reusable(&self, up: Answering, ended: Instant) {
        let stream = match up.from {
            AnswerFrom::InPlace(answer) => answer.reuse().await,
            AnswerFrom::Session(mut session) => {
                session.respect_keepalive();
                session.reuse().await
            }
        };
        if let Some(stream) = stream {
            self.pool.put(up.addr, stream, ended);
        }
    }

    /// Sends the request upstream and reads the final answer's head,
    /// forwarding any 1xx answer before it. An attempt that failed on a
    /// pooled connection before any answer is tried again on a fresh one
    /// if the request is idempotent and its body, as far as it was read,
    /// is still held (the session's retry buffer, as the engine's).
    async fn forward(
        &self,
        down: &mut ServerSession,
        ctx: &mut RequestCtx,
        timer: &mut KeptTimer,
    ) -> Result<Answering> {
        let idempotent = down.req_header().method.is_idempotent();
        down.enable_retry_buffering();
        loop {
            let replayable = idempotent && !down.retry_buffer_truncated();
            let attempt = self.connect(ctx).await?;
            let reused = attempt.reused;
            match self.exchange(down, attempt, ctx, timer).await {
                Ok(up) => return Ok(up),
                // Pingora marks the errors a stale pooled connection
                // gives (closed or reset before the answer) as `ReusedOnly`.
                Err(e)
                    if reused
                        && replayable
                        && matches!(e.retry, RetryType::ReusedOnly)
                        && down.response_written().is_none()
                        && ctx.connect_attempts < MAX_CONNECT_ATTEMPTS =>
                {
                    ctx.fresh_connection = true;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// One attempt: the request, its body, and the answer's head.
    async fn exchange(
        &self,
        down: &mut ServerSession,
        attempt: Attempt,
        ctx: &mut RequestCtx,
        timer: &mut KeptTimer,
    ) -> Result<Answering> {
        let Attempt {
            stream,
            addr,
            timeouts,
            ..
        } = attempt;
        let head_request = down.req_header().method == http::Method::HEAD;
        let session = if head_request {
            // Pingora's client session frames the answer by the request it
            // wrote itself (a HEAD answer has no body whatever its length
            // says), so a HEAD request is written through it.
            let mut session = upstream_session(stream, timeouts);
            let request = upstream_request(down, ctx)?;
            session
                .write_request_header(request)
                .await
                .map_err(|e| e.into_up())?;
            send_body(down, &mut UpstreamBody::Session(&mut session), ctx).await?;
            session
        } else {
            let mut stream = stream;
            let timeout = timeouts.write;
            let req = down.req_header();
            let head = upstream_head(req, &req.headers, req.raw_path(), tls(down), ctx)?;
            let written =
                write_all(&mut stream, &head, timeout, "while writing request headers").await;
            super::wire_head::give_back(head);
            written?;
            let mut body = UpstreamBody::Raw {
                stream: &mut stream,
                left: content_length(down.req_header()),
                timeout,
            };
            send_body(down, &mut body, ctx).await?;
            // The common answer is read in place; anything else is given
            // back to Pingora's client session unread.
            let read = tokio::select! {
                biased;
                read = read_head(stream, timeouts.read, timer, None) => read.map_err(|e| e.into_up())?,
                gone = down.read_body_or_idle(true) => return Err(client_gone(gone)),
            };
            match read {
                HeadRead::InPlace(answer) => {
                    return Ok(Answering {
                        from: AnswerFrom::InPlace(answer),
                        addr,
                    });
                }
                HeadRead::Elsewhere(stream) => upstream_session(stream, timeouts),
            }
        };
        final_answer(down, session, addr, ctx).await
    }
}

/// The final answer's head, read by Pingora's client session `session`; a
/// 1xx answer before it goes to the client through the client's session
/// `down` (rare enough to copy its head).
async fn final_answer(
    down: &mut ServerSession,
    mut session: UpstreamSession,
    addr: SocketAddr,
    ctx: &mut RequestCtx,
) -> Result<Answering> {
    loop {
        tokio::select! {
            biased;
            read = session.read_response() => read.map_err(|e| e.into_up())?,
            // As the engine (Pingora's `abort_on_close`): a client that
            // closes its side, or sends more than its request, while
            // the answer is awaited ends the exchange, and the upstream
            // connection is dropped, not pooled.
            gone = down.read_body_or_idle(true) => return Err(client_gone(gone)),
        };
        let answer = session
            .resp_header()
            .or_err(ErrorType::InternalError, "no answer read")?;
        if answer.status.as_u16() == 101 {
            return Error::e_explain(
                ErrorType::InvalidHTTPHeader,
                "101 to a request that asked for no upgrade",
            )
            .map_err(|e| e.into_up());
        }
        if !answer.status.is_informational() {
            return Ok(Answering {
                from: AnswerFrom::Session(Box::new(session)),
                addr,
            });
        }
        let mut informational = Box::new(answer.clone());
        // On 1xx answers too, as the engine's `response_filter`.
        StranglerProxy::answer_headers(&mut informational, ctx)?;
        down.write_response_header(informational)
            .await
            .map_err(|e| e.into_down())?;
    }
}

/// What the upstream request changes from the client's
/// (`exchange::upstream_edits`); on another attempt, what was kept of the
/// body starts again first, since the attempt sends it again.
fn edits<'a>(
    present: &impl RequestHeaders,
    tls: bool,
    ctx: &'a mut RequestCtx,
) -> Result<UpstreamEdits<'a>> {
    StranglerProxy::restart_if_retried(ctx);
    StranglerProxy::upstream_edits(tls, present, ctx, DataPath::Fast)
}

/// Whether the client's connection is TLS.
fn tls(down: &ServerSession) -> bool {
    down.digest().is_some_and(|d| d.ssl_digest.is_some())
}

/// The request the upstream gets, as Pingora's client session writes it
/// (HEAD requests): the client's header copied and edited.
fn upstream_request(down: &ServerSession, ctx: &mut RequestCtx) -> Result<Box<RequestHeader>> {
    let mut request = Box::new(down.req_header().clone());
    edits(&down.req_header().headers, tls(down), ctx)?.apply(&mut request)?;
    Ok(request)
}

/// The same request's head as bytes, written from the client's head
/// (`req`, with its fields `present` and its `target`) and the edits
/// without copying the head (see `wire_head`).
fn upstream_head(
    req: &impl RequestHead,
    present: &impl RequestHeaders,
    target: &[u8],
    tls: bool,
    ctx: &mut RequestCtx,
) -> Result<Vec<u8>> {
    let edits = edits(present, tls, ctx)?;
    let target = match &edits.target {
        // As Pingora writes a target set from a URI (`raw_path`).
        Some(uri) => uri
            .path_and_query()
            .map_or(&b""[..], |p| p.as_str().as_bytes()),
        None => target,
    };
    let mut head = super::wire_head::buffer();
    super::wire_head::write_request(req, target, edits.headers(), &mut head)?;
    Ok(head)
}

/// The request body, after what an earlier attempt read of it.
async fn send_body(
    down: &mut ServerSession,
    up: &mut UpstreamBody<'_>,
    ctx: &mut RequestCtx,
) -> Result<()> {
    if ctx.connect_attempts > 1 {
        // Another attempt: what was read of the body before goes first.
        if let Some(read) = down.get_retry_buffer() {
            ctx.body_bytes += read.len() as u64;
            up.write(&read).await?;
        }
    }
    while let Some(chunk) = down.read_request_body().await.map_err(|e| e.into_down())? {
        ctx.body_bytes += chunk.len() as u64;
        up.write(&chunk).await?;
    }
    up.finish().await
}

/// Where a request body goes: through Pingora's client session (HEAD), or
/// straight onto the connection, framed by the request's Content-Length
/// (the only framing the fast path takes), as Pingora's body writer does.
enum UpstreamBody<'a> {
    Session(&'a mut UpstreamSession),
    Raw {
        stream: &'a mut Stream,
        left: usize,
        timeout: Option<Duration>,
    },
}

impl UpstreamBody<'_> {
    async fn write(&mut self, chunk: &[u8]) -> Result<()> {
        match self {
            UpstreamBody::Session(session) => {
                session.write_body(chunk).await.map_err(|e| e.into_up())?;
            }
            UpstreamBody::Raw {
                stream,
                left,
                timeout,
            } => {
                // Never more than the length the upstream was told.
                let n = chunk.len().min(*left);
                write_all(stream, &chunk[..n], *timeout, "while writing body").await?;
                *left -= n;
            }
        }
        Ok(())
    }

    async fn finish(&mut self) -> Result<()> {
        match self {
            UpstreamBody::Session(session) => {
                session.finish_body().await.map_err(|e| e.into_up())?;
            }
            UpstreamBody::Raw { stream, .. } => {
                stream
                    .flush()
                    .await
                    .or_err(ErrorType::WriteError, "flushing body")
                    .map_err(|e| e.into_up())?;
            }
        }
        Ok(())
    }
}

/// The request's body length, as Pingora's body writer reads it (a length
/// it cannot read frames an empty body; [`plain_exchange`] lets only one
/// length of digits through).
fn content_length(req: &RequestHeader) -> usize {
    req.headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| std::str::from_utf8(v.as_bytes()).ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The error for a client that closed its side, or sent more than its
/// request, while its answer was awaited or written (what Pingora's
/// `read_body_or_idle` gave).
fn client_gone(gone: Result<Option<bytes::Bytes>>) -> Box<Error> {
    match gone {
        Err(e) => e.into_down(),
        Ok(_) => Error::explain(ErrorType::ConnectionClosed, "client went away").into_down(),
    }
}

/// The connection back from a session that read a request it will not
/// serve, with its keep-alive settings.
fn not_mine(session: ServerSession) -> Served {
    let settings = HttpPersistentSettings::for_session(&session);
    match session {
        ServerSession::H1(s) => Served::NotMine(s.into_inner(), settings),
        // The loop only makes HTTP/1 sessions.
        _ => Served::Gone,
    }
}
