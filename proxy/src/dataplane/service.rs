//! The Pingora proxy service. The phases below run in this order for each
//! request:
//!
//! 1. [`new_ctx`](StranglerProxy::new_ctx): load the live table once;
//! 2. [`request_filter`](StranglerProxy::request_filter): hygiene checks, who
//!    the client is (trusted proxies), path normalization, the route decision
//!    (route, side, backend) and the path that side receives (rewrite);
//! 3. [`upstream_peer`](StranglerProxy::upstream_peer): a peer of the chosen
//!    backend, with the route's timeout; a fresh connection for a retry;
//! 4. [`upstream_request_filter`](StranglerProxy::upstream_request_filter):
//!    the path, the backend's Host and the forwarding headers;
//! 5. [`upstream_response_filter`](StranglerProxy::upstream_response_filter)
//!    and the body filters: keep the primary answer of a shadowed or
//!    recorded request;
//! 6. [`response_filter`](StranglerProxy::response_filter): the request id;
//! 7. on an upstream error, [`error_while_proxy`](StranglerProxy::error_while_proxy):
//!    whether the route's `retries` allow another attempt; on failure,
//!    [`fail_to_proxy`](StranglerProxy::fail_to_proxy): a 502/504 that names
//!    the backend;
//! 8. [`logging`](StranglerProxy::logging): metrics, the access log line, and
//!    the shadow job and the recording, queued once the client has its
//!    answer.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::Uri;
use pingora::ErrorType;
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;

use super::ctx::{RequestCtx, RequestId, fast_random};
use super::hygiene::{self, Rejection};
use super::respond;
use crate::access_log::{AccessLog, Entry};
use crate::live::Live;
use crate::metrics::{DropReason, RecordOutcome, ShadowOutcome};
use crate::record::{RecordCapture, RequestFacts};
use crate::routing::canary::selected;
use crate::routing::forwarded::forwarded;
use crate::routing::rewrite::{upstream_host, upstream_path, with_query};
use crate::routing::{RequestInfo, ShadowDecision, normalize_path, routing_path};
use crate::shadow::{EngineJob, ShadowCapture, ShadowQueue};
use prometheus::IntCounterVec;

/// Connect attempts per request, across a backend's addresses.
const MAX_CONNECT_ATTEMPTS: usize = 3;

/// Shared state of the proxy: the live table and the metrics it feeds.
#[derive(Debug)]
pub struct StranglerProxy {
    live: Arc<Live>,
    rejected: IntCounterVec,
    shadow: ShadowQueue,
    /// Requests in flight in this process (shared by all workers).
    inflight: Arc<AtomicUsize>,
    max_inflight: usize,
    access_log: AccessLog,
}

impl StranglerProxy {
    pub fn new(
        live: Arc<Live>,
        rejected: IntCounterVec,
        shadow: ShadowQueue,
        inflight: Arc<AtomicUsize>,
        max_inflight: usize,
        access_log: AccessLog,
    ) -> StranglerProxy {
        StranglerProxy {
            live,
            rejected,
            shadow,
            inflight,
            max_inflight,
            access_log,
        }
    }

    fn shadow_skipped(&self, route: &str, reason: Option<DropReason>) {
        let m = self.live.metrics();
        m.count_shadow(route, ShadowOutcome::Skipped);
        if let Some(reason) = reason {
            m.count_shadow_dropped(route, reason, 1);
        }
    }

    /// Queues the shadow job of a finished request, or counts why not.
    fn queue_shadow(&self, session: &Session, failed: bool, ctx: &mut RequestCtx) {
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
        let table = &ctx.table;
        let target = table.upstreams[capture.target_backend.0].pick();
        // A legacy address only for a noise probe: picking one for every job
        // would move legacy's turn and count fail-opens for nothing.
        let legacy = capture.noise_probe.then(|| {
            let legacy_backend = table.config().routes[route_index].legacy;
            *table.upstreams[legacy_backend.0].pick()
        });
        let job = capture.into_job(
            session.req_header().method.clone(),
            ctx.request_id.as_str().to_string(),
            table.version,
            ctx.side,
            ctx.started.elapsed(),
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
    fn queue_record(&self, session: &Session, failed: bool, ctx: &mut RequestCtx) {
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
        let latency = ctx.started.elapsed();
        let facts = RequestFacts {
            request_id: ctx.request_id.as_str().to_string(),
            config_version: ctx.table.version,
            method: session.req_header().method.clone(),
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
    fn identify_client(session: &Session, ctx: &mut RequestCtx) {
        let req = session.req_header();
        let peer = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        if let Some(peer) = peer {
            let who = forwarded(peer, &req.headers, &ctx.table.config().trusted_proxies);
            if who.trusted_peer {
                if let Some(id) = req
                    .headers
                    .get("x-request-id")
                    .and_then(|v| RequestId::kept(v.as_bytes()))
                {
                    ctx.request_id = id;
                }
            }
            ctx.forwarded = Some(who);
        }
        ctx.client_host = req.headers.get(http::header::HOST).cloned();
    }

    /// One access-log line for the request, if the table asks for a log.
    /// Refused requests are logged too (with no side or backend when no
    /// backend was asked): they are what an
    /// operator looks for when a client reports an error.
    fn write_access_log(
        &self,
        session: &Session,
        ctx: &RequestCtx,
        status: u16,
        elapsed: Duration,
    ) {
        let Some(settings) = &ctx.table.config().access_log else {
            return;
        };
        let req = session.req_header();
        let header =
            |name: http::header::HeaderName| req.headers.get(name).and_then(|v| v.to_str().ok());
        // Refused mid-body (413 on a chunked body) was already on its way
        // to the backend; every other refusal was answered before one.
        let sent = !ctx.rejected || ctx.refused.is_some();
        let entry = Entry {
            at: chrono::Utc::now(),
            request_id: ctx.request_id.as_str(),
            client: ctx.forwarded.as_ref().map(|f| f.client),
            method: req.method.as_str(),
            path: req.uri.path(),
            version: match req.version {
                http::Version::HTTP_10 => "HTTP/1.0",
                http::Version::HTTP_2 => "HTTP/2.0",
                _ => "HTTP/1.1",
            },
            route: ctx.route_name(),
            side: sent.then(|| ctx.side.as_str()),
            backend: sent.then(|| ctx.backend_name()),
            status,
            duration_ms: elapsed.as_secs_f64() * 1000.0,
            bytes_out: session.body_bytes_sent(),
            upstream_error: ctx.upstream_error.map(|k| k.as_str()),
            shadowed: ctx.shadowed,
            referer: header(http::header::REFERER),
            user_agent: header(http::header::USER_AGENT),
        };
        self.access_log.submit(settings, &entry);
    }

    /// `strangler_rejected_requests_total`, registered once and shared by
    /// every worker.
    pub fn rejected_counter(metrics: &crate::metrics::Metrics) -> IntCounterVec {
        let rejected = IntCounterVec::new(
            prometheus::Opts::new(
                "strangler_rejected_requests_total",
                "Requests the proxy refused before routing, by reason.",
            ),
            &["reason"],
        )
        .expect("valid metric");
        metrics.register_extra(Box::new(rejected.clone()));
        for r in Rejection::ALL {
            rejected.with_label_values(&[r.as_str()]);
        }
        rejected
    }

    /// Counts a refused request under its reason; it is then not counted as
    /// a request of its route (see `logging`).
    fn count_rejection(&self, ctx: &mut RequestCtx, r: Rejection) {
        self.rejected.with_label_values(&[r.as_str()]).inc();
        ctx.rejected = true;
    }

    async fn reject(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        r: Rejection,
        detail: &str,
    ) {
        self.count_rejection(ctx, r);
        let body = if detail.is_empty() {
            format!("strangler: {}\n", r.message())
        } else {
            format!("strangler: {} {detail}\n", r.message())
        };
        respond::plain(session, r.status(), body, ctx.request_id.as_str()).await;
    }
}

#[async_trait]
impl ProxyHttp for StranglerProxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::new(self.live.current())
    }

    /// Refuses ambiguous or oversized requests, normalizes the path and makes
    /// the routing decision. Everything after this uses the decision.
    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        // First, so that even a refused request is logged with its client
        // and the id the balancer gave it.
        Self::identify_client(session, ctx);
        // A fast 503 above the cap keeps an overload from becoming a pile-up.
        let before = self.inflight.fetch_add(1, Ordering::AcqRel);
        ctx.inflight = Some(super::ctx::InflightSlot(self.inflight.clone()));
        if before >= self.max_inflight {
            self.reject(session, ctx, Rejection::Overloaded, "").await;
            return Ok(true);
        }
        if let Err(r) = hygiene::check(session.as_downstream()) {
            self.reject(session, ctx, r, "").await;
            return Ok(true);
        }
        let req = session.req_header();
        let path = match normalize_path(req.uri.path()) {
            Ok(p) => p,
            Err(e) => {
                let detail = e.to_string();
                self.reject(session, ctx, Rejection::BadPath, &detail).await;
                return Ok(true);
            }
        };
        let host = req.uri.host().or_else(|| {
            req.headers
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
        });
        let client_ip = ctx.forwarded.as_ref().map(|f| f.client);
        let route_on = routing_path(&path);
        let info = RequestInfo {
            method: &req.method,
            host,
            path: &route_on,
            headers: &req.headers,
            client_ip,
            entropy: fast_random(),
        };
        let decision = ctx.table.routes.decide(&info);
        ctx.route = decision.route;
        ctx.side = decision.side;
        ctx.backend = decision.backend;
        let limit = ctx.body_limit();
        let declared = req
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit) {
            drop(decision);
            self.reject(session, ctx, Rejection::BodyTooLarge, "").await;
            return Ok(true);
        }
        match decision.shadow {
            // An upgraded connection (WebSocket) is not a request to copy.
            ShadowDecision::Copy { side, backend } if !session.is_upgrade_req() => {
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
        if decision.record && !session.is_upgrade_req() {
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
            self.reject(session, ctx, Rejection::BadPath, detail).await;
            return Ok(true);
        };
        let req = session.req_header();
        if sent.as_ref() != req.uri.path() {
            ctx.upstream_path = Some(with_query(&sent, req.uri.query()));
        }
        if let Some(capture) = ctx.record.as_mut() {
            capture.path = with_query(&path, req.uri.query());
        }
        if let Some(capture) = ctx.shadow.as_mut() {
            let route =
                &ctx.table.config().routes[ctx.route.expect("shadowed requests have a route")];
            capture.path = with_query(&path, req.uri.query());
            let target_path = upstream_path(route, capture.target_side, &path);
            let legacy_path = upstream_path(route, crate::config::Side::Legacy, &path);
            match (target_path, legacy_path) {
                (Some(t), Some(l)) => {
                    capture.copy.path = with_query(&t, req.uri.query());
                    capture.probe.path = with_query(&l, req.uri.query());
                }
                // The copy's path cannot be made: nothing to compare.
                _ => ctx.shadow = None,
            }
        }
        Ok(false)
    }

    /// Enforces the route's body limit on bodies without a length (chunked),
    /// and keeps the request body of a shadowed or recorded request (up to
    /// `max_body`).
    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let Some(chunk) = body.as_ref() {
            ctx.body_bytes += chunk.len() as u64;
            if ctx.body_bytes > ctx.body_limit() {
                ctx.refused = Some(Rejection::BodyTooLarge);
                // Refused like a declared length over the limit.
                self.count_rejection(ctx, Rejection::BodyTooLarge);
                return Err(Error::explain(
                    ErrorType::HTTPStatus(413),
                    "request body over the route's limit",
                ));
            }
        }
        if let Some(chunk) = body.as_ref() {
            ctx.keep_request_chunk(chunk);
        }
        Ok(())
    }

    /// A peer of the chosen backend; repeated calls (after a failed connect)
    /// take the backend's next address.
    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        ctx.connect_attempts += 1;
        let mut peer = ctx.table.upstreams[ctx.backend.0].pick();
        ctx.upstream_addr = crate::live::upstream::Upstream::address_of(&peer);
        if let Some(timeout) = ctx.route.and_then(|i| ctx.table.config().routes[i].timeout) {
            peer.options.read_timeout = Some(timeout);
        }
        if std::mem::take(&mut ctx.fresh_connection) {
            // The pool is keyed by the peer's hash, which includes the group
            // key: a key no pooled connection has makes Pingora connect anew.
            peer.group_key = fast_random();
        }
        Ok(peer)
    }

    /// After an upstream error: another attempt when the route has
    /// `retries` left, the method is idempotent, the body can be sent again
    /// and the client has not had a byte of the answer; on a fresh
    /// connection. Otherwise Pingora's own rule: an idempotent request whose
    /// pooled connection turned out dead is tried again.
    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut RequestCtx,
        client_reused: bool,
    ) -> Box<Error> {
        let mut e = e.more_context(format!("Peer: {peer}"));
        let replayable = session.req_header().method.is_idempotent()
            && !session.as_ref().retry_buffer_truncated()
            && session.response_written().is_none();
        let budget = ctx
            .route
            .map_or(0, |i| ctx.table.config().routes[i].retries);
        if !replayable {
            e.set_retry(false);
        } else if ctx.retries_used < budget {
            ctx.retries_used += 1;
            ctx.fresh_connection = true;
            ctx.route_metrics().side(ctx.side).upstream_retry();
            e.set_retry(true);
        } else {
            e.retry.decide_reuse(client_reused);
        }
        e
    }

    /// A refused or failed connect is tried on the backend's next address,
    /// if it has one: nothing was sent, so any method may be retried.
    fn fail_to_connect(
        &self,
        _session: &mut Session,
        peer: &HttpPeer,
        ctx: &mut RequestCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        ctx.table.upstreams[ctx.backend.0].connect_failed(peer, &e);
        let addresses = ctx.table.upstreams[ctx.backend.0].addresses();
        let retry = ctx.connect_attempts < addresses.min(MAX_CONNECT_ATTEMPTS);
        e.set_retry(retry);
        e
    }

    /// The upstream sees the path that was routed on, and forwarding headers
    /// set by the proxy (a client's own values are replaced, not trusted).
    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if ctx.connect_attempts > 1 {
            // Another attempt (after a failed connect, or an idempotent
            // request retried after its pooled connection broke). Pingora
            // replays the body read so far through `request_body_filter`, so
            // what was counted and kept of it starts again from nothing:
            // otherwise the body would count twice against the route's limit
            // and reach the shadow side (or the recording) twice.
            ctx.restart_kept();
        }
        // Not taken: a retried attempt must send the same normalized path.
        if let Some(path) = ctx.upstream_path.as_deref() {
            let uri: Uri = path.parse().map_err(|_| {
                Error::explain(ErrorType::InternalError, "normalized path is not a URI")
            })?;
            upstream_request.set_uri(uri);
        }
        // Believed only from a trusted peer (see `routing::forwarded`).
        let trusted = ctx.forwarded.as_ref().is_some_and(|f| f.trusted_peer);
        match &ctx.forwarded {
            Some(f) => {
                upstream_request.insert_header("x-forwarded-for", f.forwarded_for.as_str())?
            }
            None => {
                upstream_request.remove_header("x-forwarded-for");
            }
        }
        if !(trusted && upstream_request.headers.contains_key("x-forwarded-proto")) {
            let tls = session.digest().is_some_and(|d| d.ssl_digest.is_some());
            upstream_request
                .insert_header("x-forwarded-proto", if tls { "https" } else { "http" })?;
        }
        if !(trusted && upstream_request.headers.contains_key("x-forwarded-host")) {
            match &ctx.client_host {
                Some(h) => upstream_request.insert_header("x-forwarded-host", h.clone())?,
                None => {
                    upstream_request.remove_header("x-forwarded-host");
                }
            }
        }
        // Only the proxy marks shadow copies: a client sending the marker
        // could make a backend treat a real request as a copy (skip its
        // side effects, or answer differently).
        upstream_request.remove_header(crate::shadow::SHADOW_HEADER);
        upstream_request.insert_header("x-request-id", ctx.request_id.as_str())?;
        let config = ctx.table.config();
        let client_host = ctx.client_host.as_ref().and_then(|h| h.to_str().ok());
        if let Some(host) = upstream_host(&config.backend(ctx.backend).host, client_host) {
            if client_host != Some(host) {
                upstream_request.insert_header(http::header::HOST, host)?;
            }
        }
        if let Some(capture) = ctx.shadow.as_mut() {
            // The copy carries what the primary upstream received, with the
            // path and Host its own backend is sent.
            capture.headers = upstream_request
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
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
            capture.headers = upstream_request
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
        }
        Ok(())
    }

    /// Keeps the primary answer's head of a shadowed or recorded request.
    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        ctx.keep_response_head(upstream_response);
        Ok(())
    }

    /// Keeps the primary answer's body of a shadowed or recorded request (up
    /// to `max_body`); the client's copy is not touched.
    fn upstream_response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<Duration>> {
        if let Some(chunk) = body.as_ref() {
            ctx.keep_response_chunk(chunk);
        }
        Ok(None)
    }

    /// The client gets the request id, to quote in a report.
    async fn response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        upstream_response.insert_header("x-request-id", ctx.request_id.as_str())?;
        Ok(())
    }

    /// A short plain answer saying which backend failed and how.
    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let (status, kind, what) = respond::classify(e, ctx);
        if kind.is_some() {
            ctx.upstream_error = kind;
        }
        if status > 0 {
            let body = format!(
                "strangler: {what} (route {}, request id {})\n",
                ctx.route_name(),
                ctx.request_id.as_str()
            );
            respond::plain(session, status, body, ctx.request_id.as_str()).await;
        }
        FailToProxy {
            error_code: status,
            can_reuse_downstream: false,
        }
    }

    /// Counts the request under its route, backend, side and status class,
    /// and queues its shadow job now that the client has its answer.
    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        let status = session
            .response_written()
            .map(|r| r.status.as_u16())
            .unwrap_or(0);
        let elapsed = ctx.started.elapsed();
        if !ctx.rejected {
            ctx.table.upstreams[ctx.backend.0].request_ended(ctx.upstream_addr, e);
            self.queue_shadow(session, e.is_some(), ctx);
            self.queue_record(session, e.is_some(), ctx);
        }
        self.write_access_log(session, ctx, status, elapsed);
        if ctx.rejected {
            return;
        }
        let side = ctx.route_metrics().side(ctx.side);
        side.observe(status, elapsed.as_secs_f64());
        if let Some(kind) = ctx.upstream_error {
            side.upstream_error(kind);
        }
    }
}
