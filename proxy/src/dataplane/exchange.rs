//! The steps of one exchange that both ways of proxying take: Pingora's
//! proxy engine (`service`, through its `ProxyHttp` hooks) and the owned
//! HTTP/1 fast path (`fast_path`, and `client_request` for a request read
//! in place). The steps before the answer work on a view of the client's
//! request both can make ([`ClientRequest`]: from Pingora's session, or
//! from the bytes the fast path read); what is counted, logged and queued
//! when a request ends works on [`Answered`]. So who the client is, the
//! routing decision and the refusals, the headers the upstream gets, and
//! the end of a request are written once.

use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use http::{HeaderMap, Method, Version};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::protocols::http::ServerSession;
use pingora::{Error, ErrorType, Result};

use super::client_request::InPlaceRequest;
use super::ctx::{RequestCtx, RequestId, fast_random};
use super::hygiene::{self, Rejection};
use super::service::StranglerProxy;
use crate::access_log::Entry;
use crate::metrics::{DropReason, RecordOutcome, ShadowOutcome};
use crate::record::{RecordCapture, RequestFacts};
use crate::routing::canary::selected;
use crate::routing::forwarded::forwarded;
use crate::routing::headers::RequestHeaders;
use crate::routing::rewrite::{upstream_host, upstream_path, with_query};
use crate::routing::{RequestInfo, ShadowDecision, normalize_path, routing_path};
use crate::shadow::{EngineJob, ShadowCapture};

/// The client's request as the steps before the answer read it. `H` holds
/// its header fields: Pingora's header map, or the fields where the fast
/// path read them.
#[derive(Debug)]
pub(super) struct ClientRequest<'a, H: ?Sized> {
    pub(super) method: &'a Method,
    pub(super) version: Version,
    /// The target's path and query, as `http::Uri` splits them.
    pub(super) path: &'a str,
    pub(super) query: Option<&'a str>,
    /// The host of an absolute-form target.
    pub(super) target_host: Option<&'a str>,
    pub(super) headers: &'a H,
    /// The connection's peer (the PROXY header's source, if one was taken).
    pub(super) peer: Option<IpAddr>,
    /// An upgrade (WebSocket): not a request to copy or record.
    pub(super) upgrade: bool,
    /// What the checks made before routing found (see `hygiene`).
    pub(super) hygiene: std::result::Result<(), Rejection>,
}

impl<'a> ClientRequest<'a, HeaderMap> {
    /// The request Pingora's session read.
    pub(super) fn of_session(session: &'a ServerSession) -> Self {
        let req = session.req_header();
        ClientRequest {
            method: &req.method,
            version: req.version,
            path: req.uri.path(),
            query: req.uri.query(),
            target_host: req.uri.host(),
            headers: &req.headers,
            peer: session
                .client_addr()
                .and_then(|a| a.as_inet())
                .map(|a| a.ip()),
            upgrade: session.is_upgrade_req(),
            hygiene: hygiene::check(session),
        }
    }
}

/// What is logged and queued of a finished request. Its fields are read
/// only when the access log asks (a log off costs no lookup).
#[derive(Debug, Clone, Copy)]
pub(super) struct LoggedRequest<'a> {
    pub(super) method: &'a Method,
    /// The target's path as the client sent it.
    pub(super) path: &'a str,
    pub(super) version: Version,
    pub(super) fields: LoggedFields<'a>,
}

/// Where a logged request's header fields are read from.
#[derive(Debug, Clone, Copy)]
pub(super) enum LoggedFields<'a> {
    /// Pingora's header map (the engine, the session fast path).
    Map(&'a HeaderMap),
    /// The fields read in place.
    InPlace(&'a InPlaceRequest),
}

impl<'a> LoggedFields<'a> {
    /// The first value of `name` (lowercase) as text, if visible ASCII.
    pub(super) fn first_text(self, name: &str) -> Option<&'a str> {
        match self {
            LoggedFields::Map(map) => map.first_text(name),
            LoggedFields::InPlace(request) => request.first_text(name),
        }
    }
}

impl<'a> From<&'a RequestHeader> for LoggedRequest<'a> {
    fn from(req: &'a RequestHeader) -> Self {
        LoggedRequest {
            method: &req.method,
            path: req.uri.path(),
            version: req.version,
            fields: LoggedFields::Map(&req.headers),
        }
    }
}

/// What a finished exchange is counted and logged by: the client's request
/// and what the client was sent. Borrowed from Pingora's session on the
/// engine's path and on the fast path until it owns the answer; from the
/// fast path's own answer writer after.
#[derive(Debug, Clone, Copy)]
pub(super) struct Answered<'a> {
    pub(super) request: LoggedRequest<'a>,
    /// The status of the last answer head written (0 for none).
    pub(super) status: u16,
    pub(super) body_bytes_sent: usize,
}

impl<'a> Answered<'a> {
    /// What Pingora's session wrote.
    pub(super) fn by_session(session: &'a ServerSession) -> Answered<'a> {
        Answered {
            request: session.req_header().into(),
            status: session.response_written().map_or(0, |r| r.status.as_u16()),
            body_bytes_sent: session.body_bytes_sent(),
        }
    }
}

/// What routing a request decided.
#[derive(Debug)]
pub(super) enum Routing {
    /// Send it to `ctx.backend`.
    Forward,
    /// Answer it with the rejection's status (and a detail for the body).
    Refuse(Rejection, String),
    /// Asked by the fast path: this request must take Pingora's proxy engine
    /// (see [`StranglerProxy::fast_path_serves`]). Nothing was counted.
    NotFast,
}

/// Which path asks for a routing decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DataPath {
    /// Pingora's proxy engine: it serves whatever is routed.
    Engine,
    /// The owned fast path: it serves only what
    /// [`StranglerProxy::fast_path_serves`] allows.
    Fast,
}

impl StranglerProxy {
    fn shadow_skipped(&self, route: &str, reason: Option<DropReason>) {
        let m = self.live.metrics();
        m.count_shadow(route, ShadowOutcome::Skipped);
        if let Some(reason) = reason {
            m.count_shadow_dropped(route, reason, 1);
        }
    }

    /// Queues the shadow job of a finished request, or counts why not.
    fn queue_shadow(&self, req: &LoggedRequest<'_>, failed: bool, ctx: &mut RequestCtx) {
        let Some(capture) = ctx.shadow.take() else {
            return;
        };
        let route = ctx.route_name().to_string();
        if capture.kept.too_large {
            self.shadow_skipped(&route, Some(DropReason::TooLarge));
            return;
        }
        if failed || !capture.kept.has_response() {
            // No primary answer to compare with.
            self.shadow_skipped(&route, None);
            return;
        }
        let Some(route_index) = ctx.route else { return };
        let latency = ctx.ended().saturating_duration_since(ctx.started);
        let table = &ctx.table;
        let target = table.upstreams[capture.target_backend.0].pick();
        // A legacy address only for a noise probe: picking one for every job
        // would move legacy's turn and count fail-opens for nothing.
        let legacy = capture.noise_probe.then(|| {
            let legacy_backend = table.config().routes[route_index].legacy;
            *table.upstreams[legacy_backend.0].pick()
        });
        let job = capture.into_job(
            req.method.clone(),
            ctx.request_id.as_str().to_string(),
            table.version,
            ctx.side,
            latency,
            *target,
            legacy,
        );
        if let Some(job) = job {
            match self.shadow.submit(EngineJob::Shadow(Box::new(job))) {
                Ok(()) => ctx.shadowed = true,
                Err(_) => self.shadow_skipped(&route, Some(DropReason::QueueFull)),
            }
        }
    }

    /// Queues the recording of a finished request, or counts why not (once
    /// queued, the store writer counts it stored or dropped).
    fn queue_record(&self, req: &LoggedRequest<'_>, failed: bool, ctx: &mut RequestCtx) {
        let Some(capture) = ctx.record.take() else {
            return;
        };
        let count = |outcome: RecordOutcome| {
            self.live
                .metrics()
                .count_record(capture.runtime.route.as_str(), outcome, 1)
        };
        if capture.kept.too_large {
            return count(RecordOutcome::TooLarge);
        }
        if failed || !capture.kept.has_response() {
            return count(RecordOutcome::Unanswered);
        }
        let latency = ctx.ended().saturating_duration_since(ctx.started);
        let facts = RequestFacts {
            request_id: ctx.request_id.as_str().to_string(),
            config_version: ctx.table.version,
            method: req.method.clone(),
            served_by: ctx.side,
            received_at: std::time::SystemTime::now() - latency,
            latency,
        };
        let route = capture.runtime.clone();
        if let Some(job) = capture.into_job(facts) {
            if self
                .shadow
                .submit(EngineJob::Record(Box::new(job)))
                .is_err()
            {
                self.live
                    .metrics()
                    .count_record(route.route.as_str(), RecordOutcome::QueueFull, 1);
            }
        }
    }

    /// Who sent the request (see `routing::forwarded`), the id a trusted
    /// proxy gave it, and the Host the client asked for.
    pub(super) fn identify_client<H: RequestHeaders + ?Sized>(
        req: &ClientRequest<'_, H>,
        ctx: &mut RequestCtx,
    ) {
        if let Some(peer) = req.peer {
            let who = forwarded(peer, req.headers, &ctx.table.config().trusted_proxies);
            if who.trusted_peer {
                if let Some(id) = req.headers.first("x-request-id").and_then(RequestId::kept) {
                    ctx.request_id = id;
                }
            }
            ctx.forwarded = Some(who);
        }
        // Already a valid value: both readers accept only those.
        ctx.client_host = req
            .headers
            .first("host")
            .and_then(|v| http::HeaderValue::from_bytes(v).ok());
    }

    /// One access-log line for the request, if the table asks for a log.
    /// Refused requests are logged too (with no side or backend when no
    /// backend was asked): they are what an
    /// operator looks for when a client reports an error.
    pub(super) fn write_access_log(
        &self,
        answered: &Answered<'_>,
        ctx: &RequestCtx,
        elapsed: Duration,
    ) {
        let Some(settings) = &ctx.table.config().access_log else {
            return;
        };
        let req = &answered.request;
        // Refused mid-body (413 on a chunked body) was already on its way
        // to the backend; every other refusal was answered before one.
        let sent = !ctx.rejected || ctx.refused.is_some();
        let entry = Entry {
            at: chrono::Utc::now(),
            request_id: ctx.request_id.as_str(),
            client: ctx.forwarded.as_ref().map(|f| f.client),
            method: req.method.as_str(),
            path: req.path,
            version: match req.version {
                http::Version::HTTP_10 => "HTTP/1.0",
                http::Version::HTTP_2 => "HTTP/2.0",
                _ => "HTTP/1.1",
            },
            route: ctx.route_name(),
            side: sent.then(|| ctx.side.as_str()),
            backend: sent.then(|| ctx.backend_name()),
            status: answered.status,
            duration_ms: elapsed.as_secs_f64() * 1000.0,
            bytes_out: answered.body_bytes_sent,
            upstream_error: ctx.upstream_error.map(|k| k.as_str()),
            shadowed: ctx.shadowed,
            referer: req.fields.first_text("referer"),
            user_agent: req.fields.first_text("user-agent"),
        };
        self.access_log.submit(settings, &entry);
    }

    /// Who the client is, hygiene, path normalization, the route decision,
    /// the body limit, what is kept for shadowing and recording, and the
    /// path the chosen side receives. For [`DataPath::Fast`], a request the
    /// fast path does not serve comes back as [`Routing::NotFast`] before
    /// anything is counted, so Pingora's engine can take it from the start.
    pub(super) fn route<H: RequestHeaders + ?Sized>(
        &self,
        req: &ClientRequest<'_, H>,
        ctx: &mut RequestCtx,
        asking: DataPath,
    ) -> Routing {
        // First, so that even a refused request is logged with its client
        // and the id the balancer gave it.
        Self::identify_client(req, ctx);
        // A fast 503 above the cap keeps an overload from becoming a pile-up.
        let before = self.inflight.fetch_add(1, Ordering::AcqRel);
        ctx.inflight = Some(super::ctx::InflightSlot(self.inflight.clone()));
        if before >= self.max_inflight {
            return Routing::Refuse(Rejection::Overloaded, String::new());
        }
        if let Err(r) = req.hygiene {
            return Routing::Refuse(r, String::new());
        }
        let path = match normalize_path(req.path) {
            Ok(p) => p,
            Err(e) => return Routing::Refuse(Rejection::BadPath, e.to_string()),
        };
        let host = req.target_host.or_else(|| req.headers.first_text("host"));
        let client_ip = ctx.forwarded.as_ref().map(|f| f.client);
        let route_on = routing_path(&path);
        let info = RequestInfo {
            method: req.method,
            host,
            path: &route_on,
            headers: req.headers,
            client_ip,
            entropy: fast_random(),
        };
        let decision = ctx.table.routes.decide(&info);
        if asking == DataPath::Fast && !self.fast_path_serves(ctx, decision.route) {
            return Routing::NotFast;
        }
        ctx.route = decision.route;
        ctx.side = decision.side;
        ctx.backend = decision.backend;
        let limit = ctx.body_limit();
        let declared = req
            .headers
            .first_text("content-length")
            .and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit) {
            return Routing::Refuse(Rejection::BodyTooLarge, String::new());
        }
        match decision.shadow {
            // An upgraded connection (WebSocket) is not a request to copy.
            ShadowDecision::Copy { side, backend } if !req.upgrade => {
                if let Some(runtime) = decision.route.and_then(|i| ctx.table.shadow[i].clone()) {
                    let safe = matches!(req.method.as_str(), "GET" | "HEAD" | "OPTIONS" | "TRACE");
                    let noise_probe = safe && selected(fast_random(), runtime.noise_sample);
                    let tenant = decision.tenant.as_ref().map(|t| t.id.to_string());
                    ctx.shadow = Some(Box::new(ShadowCapture::new(
                        runtime,
                        side,
                        backend,
                        tenant,
                        noise_probe,
                    )));
                }
            }
            ShadowDecision::MethodNotShadowed => {
                let route = ctx.route_name().to_string();
                self.shadow_skipped(&route, Some(DropReason::Method));
            }
            _ => {}
        }
        if decision.record && !req.upgrade {
            if let Some(runtime) = decision.route.and_then(|i| ctx.table.record[i].clone()) {
                let tenant = decision.tenant.as_ref().map(|t| t.id.to_string());
                ctx.record = Some(Box::new(RecordCapture::new(runtime, tenant)));
            }
        }
        let sent = match ctx.route {
            Some(i) => upstream_path(&ctx.table.config().routes[i], ctx.side, &path),
            None => Some(std::borrow::Cow::Borrowed(path.as_ref())),
        };
        let Some(sent) = sent else {
            let detail = "(the route's rewrite made it invalid)";
            return Routing::Refuse(Rejection::BadPath, detail.to_string());
        };
        if sent.as_ref() != req.path {
            ctx.upstream_path = Some(with_query(&sent, req.query));
        }
        if let Some(capture) = ctx.record.as_mut() {
            capture.path = with_query(&path, req.query);
        }
        if let Some(capture) = ctx.shadow.as_mut() {
            let route =
                &ctx.table.config().routes[ctx.route.expect("shadowed requests have a route")];
            capture.path = with_query(&path, req.query);
            let target_path = upstream_path(route, capture.target_side, &path);
            let legacy_path = upstream_path(route, crate::config::Side::Legacy, &path);
            match (target_path, legacy_path) {
                (Some(t), Some(l)) => {
                    capture.copy.path = with_query(&t, req.query);
                    capture.probe.path = with_query(&l, req.query);
                }
                // The copy's path cannot be made: nothing to compare.
                _ => ctx.shadow = None,
            }
        }
        Routing::Forward
    }

    /// The upstream sees the path that was routed on, and forwarding headers
    /// set by the proxy (a client's own values are replaced, not trusted).
    /// The engine's way: `upstream_request` is its copy of the client's
    /// header, edited through Pingora's header API.
    pub(super) fn forward_headers(
        tls: bool,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        Self::restart_if_retried(ctx);
        let edits = Self::upstream_edits(tls, &upstream_request.headers, ctx, DataPath::Engine)?;
        edits.apply(upstream_request)?;
        let config = ctx.table.config();
        let client_host = ctx.client_host.as_ref().and_then(|h| h.to_str().ok());
        if let Some(capture) = ctx.shadow.as_mut() {
            // The copy carries what the primary upstream received, with the
            // path and Host its own backend is sent.
            capture.headers = header_pairs(&upstream_request.headers);
            let host_of = |id: crate::config::BackendId| {
                upstream_host(&config.backend(id).host, client_host)
                    .and_then(|h| http::HeaderValue::from_str(h).ok())
            };
            capture.copy.host = host_of(capture.target_backend);
            let legacy = config.routes[ctx.route.expect("shadowed requests have a route")].legacy;
            capture.probe.host = host_of(legacy);
        }
        if let Some(capture) = ctx.record.as_mut() {
            // Replayed as the primary upstream received it.
            capture.headers = header_pairs(&upstream_request.headers);
        }
        Ok(())
    }

    /// Another attempt (after a failed connect, or an idempotent request
    /// retried after its pooled connection broke) replays the body read so
    /// far, so what was counted and kept of it starts again from nothing:
    /// otherwise the body would count twice against the route's limit and
    /// reach the shadow side (or the recording) twice.
    pub(super) fn restart_if_retried(ctx: &mut RequestCtx) {
        if ctx.connect_attempts > 1 {
            ctx.restart_kept();
        }
    }

    /// What the upstream request changes from the client's, in order: the
    /// target, when normalization or a rewrite changed the path, and (for
    /// the fast path, first) `Connection` removed, the forwarding headers,
    /// the request id and the Host. Decided here once;
    /// the engine applies it to its header copy ([`UpstreamEdits::apply`]),
    /// the fast path writes it straight into the upstream request's bytes
    /// (`upstream_head`). `present` is the header being edited, for the
    /// forwarding headers a trusted peer may have set; `tls`, whether the
    /// client's connection is.
    pub(super) fn upstream_edits<'a, H: RequestHeaders + ?Sized>(
        tls: bool,
        present: &H,
        ctx: &'a RequestCtx,
        path: DataPath,
    ) -> Result<UpstreamEdits<'a>> {
        let mut edits = UpstreamEdits::default();
        if path == DataPath::Fast {
            // Pingora's engine drops hop-by-hop headers itself; the fast path
            // takes requests whose only one is `Connection` (`plain_exchange`).
            edits.push(HeaderEdit::Remove("connection"));
        }
        // Not taken: a retried attempt must send the same normalized path.
        if let Some(path) = ctx.upstream_path.as_deref() {
            let uri: http::Uri = path.parse().map_err(|_| {
                Error::explain(ErrorType::InternalError, "normalized path is not a URI")
            })?;
            edits.target = Some(uri);
        }
        // Believed only from a trusted peer (see `routing::forwarded`).
        let trusted = ctx.forwarded.as_ref().is_some_and(|f| f.trusted_peer);
        match &ctx.forwarded {
            Some(f) => edits.push(HeaderEdit::Insert(
                "x-forwarded-for",
                EditValue::Text(f.forwarded_for.as_str()),
            )),
            None => edits.push(HeaderEdit::Remove("x-forwarded-for")),
        }
        if !(trusted && present.contains("x-forwarded-proto")) {
            let proto = if tls { "https" } else { "http" };
            edits.push(HeaderEdit::Insert(
                "x-forwarded-proto",
                EditValue::Text(proto),
            ));
        }
        if !(trusted && present.contains("x-forwarded-host")) {
            match &ctx.client_host {
                Some(h) => edits.push(HeaderEdit::Insert("x-forwarded-host", EditValue::Header(h))),
                None => edits.push(HeaderEdit::Remove("x-forwarded-host")),
            }
        }
        // Only the proxy marks shadow copies: a client sending the marker
        // could make a backend treat a real request as a copy (skip its
        // side effects, or answer differently).
        edits.push(HeaderEdit::Remove(crate::shadow::SHADOW_HEADER));
        edits.push(HeaderEdit::Insert(
            "x-request-id",
            EditValue::Id(&ctx.request_id),
        ));
        let config = ctx.table.config();
        let client_host = ctx.client_host.as_ref().and_then(|h| h.to_str().ok());
        if let Some(host) = upstream_host(&config.backend(ctx.backend).host, client_host) {
            if client_host != Some(host) {
                edits.push(HeaderEdit::Insert("Host", EditValue::Text(host)));
            }
        }
        Ok(edits)
    }

    /// Counts the request under its route, backend, side and status class,
    /// writes its access-log line, and queues its shadow job and recording
    /// now that the client has its answer.
    pub(super) fn request_done(
        &self,
        answered: &Answered<'_>,
        e: Option<&Error>,
        ctx: &mut RequestCtx,
    ) {
        let status = answered.status;
        let elapsed = ctx.ended().saturating_duration_since(ctx.started);
        if !ctx.rejected {
            ctx.table.upstreams[ctx.backend.0].request_ended(ctx.upstream_addr, e);
            self.queue_shadow(&answered.request, e.is_some(), ctx);
            self.queue_record(&answered.request, e.is_some(), ctx);
        }
        self.write_access_log(answered, ctx, elapsed);
        if ctx.rejected {
            return;
        }
        let side = ctx.route_metrics().side(ctx.side);
        side.observe(status, elapsed.as_secs_f64());
        if let Some(kind) = ctx.upstream_error {
            side.upstream_error(kind);
        }
    }
    /// Whether the owned HTTP/1 fast path may serve a request of `route`
    /// (`None`: no route matched). Decided from the route's settings only,
    /// never from a random draw: a request sent on to Pingora's engine is
    /// routed again there, and a draw taken twice would skew the canary.
    /// Shadowed and recorded routes keep their capture in the engine's
    /// filters; `retries` need its retry buffer; TLS upstreams its connector.
    pub(super) fn fast_path_serves(&self, ctx: &RequestCtx, route: Option<usize>) -> bool {
        let config = ctx.table.config();
        let plain =
            |id: crate::config::BackendId| config.backend(id).endpoints.iter().all(|e| !e.tls);
        match route {
            None => plain(config.default_backend),
            Some(i) => {
                let r = &config.routes[i];
                ctx.table.shadow[i].is_none()
                    && ctx.table.record[i].is_none()
                    && r.retries == 0
                    && plain(r.legacy)
                    && plain(r.new)
            }
        }
    }

    /// Headers the proxy adds to every answer: the request id, to quote in
    /// a report.
    pub(super) fn answer_headers(answer: &mut ResponseHeader, ctx: &RequestCtx) -> Result<()> {
        answer.insert_header("x-request-id", ctx.request_id.as_str())?;
        Ok(())
    }

    /// How a failure is answered (status, 0 for none, and the sentence
    /// for the body), with the upstream's part in it counted. Alone, for a
    /// failure after the client has the head of an answer.
    pub(super) fn classify_failure(e: &Error, ctx: &mut RequestCtx) -> (u16, String) {
        let (status, kind, what) = super::respond::classify(e, ctx);
        if kind.is_some() {
            ctx.upstream_error = kind;
        }
        (status, what)
    }

    /// Answers a request whose proxying failed: a short plain answer saying
    /// which backend failed and how (nothing when the client already has the
    /// head of an answer). Returns the status, 0 for none.
    pub(super) async fn answer_failure(
        session: &mut ServerSession,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> u16 {
        let (status, what) = Self::classify_failure(e, ctx);
        if status > 0 {
            let body = format!(
                "strangler: {what} (route {}, request id {})\n",
                ctx.route_name(),
                ctx.request_id.as_str()
            );
            super::respond::plain(session, status, body, ctx.request_id.as_str()).await;
        }
        status
    }
}

/// The most edits [`StranglerProxy::upstream_edits`] makes (seven now).
const MAX_EDITS: usize = 8;

/// One change to the client's header on its way upstream, with the name
/// as it is written (Pingora keeps the case it is given).
#[derive(Debug, Clone, Copy)]
pub(super) enum HeaderEdit<'a> {
    /// Every field of this name goes.
    Remove(&'static str),
    /// One field of this name replaces any the client sent, in the place
    /// of the first; appended when there was none.
    Insert(&'static str, EditValue<'a>),
}

impl HeaderEdit<'_> {
    pub(super) fn name(&self) -> &'static str {
        match self {
            HeaderEdit::Remove(name) | HeaderEdit::Insert(name, _) => name,
        }
    }
}

/// A value an edit sets.
#[derive(Debug, Clone, Copy)]
pub(super) enum EditValue<'a> {
    /// Made by the proxy; checked as a header value when written.
    Text(&'a str),
    /// A value the client sent (already a valid header value).
    Header(&'a http::HeaderValue),
    /// The request's id: a valid header value by construction (hex
    /// digits, or a trusted peer's id of visible characters), so the fast
    /// path writes its bytes with neither a check nor a UTF-8 pass.
    Id(&'a RequestId),
}

impl EditValue<'_> {
    pub(super) fn as_bytes(&self) -> &[u8] {
        match self {
            EditValue::Text(t) => t.as_bytes(),
            EditValue::Header(h) => h.as_bytes(),
            EditValue::Id(id) => id.as_bytes(),
        }
    }
}

/// What the upstream request changes from the client's (see
/// [`StranglerProxy::upstream_edits`]). Held inline: no allocation.
#[derive(Debug)]
pub(super) struct UpstreamEdits<'a> {
    /// The target to send instead of the client's.
    pub target: Option<http::Uri>,
    list: [HeaderEdit<'a>; MAX_EDITS],
    len: usize,
}

impl Default for UpstreamEdits<'_> {
    fn default() -> Self {
        UpstreamEdits {
            target: None,
            list: [HeaderEdit::Remove(""); MAX_EDITS],
            len: 0,
        }
    }
}

impl<'a> UpstreamEdits<'a> {
    fn push(&mut self, edit: HeaderEdit<'a>) {
        self.list[self.len] = edit;
        self.len += 1;
    }

    /// The header edits, in the order they apply.
    pub(super) fn headers(&self) -> &[HeaderEdit<'a>] {
        &self.list[..self.len]
    }

    /// Applies the edits to a copy of the client's header (the engine's
    /// way, and the fast path's for HEAD requests).
    pub(super) fn apply(self, request: &mut RequestHeader) -> Result<()> {
        for edit in self.headers() {
            match *edit {
                HeaderEdit::Remove(name) => {
                    request.remove_header(name);
                }
                HeaderEdit::Insert(name, EditValue::Text(value)) => {
                    request.insert_header(name, value)?
                }
                HeaderEdit::Insert(name, EditValue::Header(value)) => {
                    request.insert_header(name, value.clone())?
                }
                HeaderEdit::Insert(name, EditValue::Id(id)) => {
                    request.insert_header(name, id.as_str())?
                }
            }
        }
        if let Some(uri) = self.target {
            request.set_uri(uri);
        }
        Ok(())
    }
}

/// A header map as the name-value pairs a shadow copy or a recording keeps,
/// repeated names included.
fn header_pairs(headers: &http::HeaderMap) -> Vec<(http::HeaderName, http::HeaderValue)> {
    headers
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}
