//! The Pingora proxy service. The phases below run in this order for each
//! request:
//!
//! 1. [`new_ctx`](StranglerProxy::new_ctx): load the live table once;
//! 2. [`request_filter`](StranglerProxy::request_filter): hygiene checks, path
//!    normalization, the route decision (route, side, backend);
//! 3. [`upstream_peer`](StranglerProxy::upstream_peer): a peer of the chosen
//!    backend;
//! 4. [`upstream_request_filter`](StranglerProxy::upstream_request_filter):
//!    the normalized path and the forwarding headers;
//! 5. [`upstream_response_filter`](StranglerProxy::upstream_response_filter)
//!    and the body filters: keep the primary answer of a shadowed request;
//! 6. [`response_filter`](StranglerProxy::response_filter): the request id;
//! 7. on failure, [`fail_to_proxy`](StranglerProxy::fail_to_proxy): a 502/504
//!    that names the backend;
//! 8. [`logging`](StranglerProxy::logging): metrics, and the shadow job, queued
//!    once the client has its answer.

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

use super::ctx::{RequestCtx, fast_random};
use super::hygiene::{self, Rejection};
use super::respond;
use crate::live::Live;
use crate::metrics::{DropReason, ShadowOutcome};
use crate::routing::canary::selected;
use crate::routing::{RequestInfo, ShadowDecision, normalize_path, routing_path};
use crate::shadow::{ShadowCapture, ShadowQueue};
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
}

impl StranglerProxy {
    pub fn new(
        live: Arc<Live>,
        rejected: IntCounterVec,
        shadow: ShadowQueue,
        inflight: Arc<AtomicUsize>,
        max_inflight: usize,
    ) -> StranglerProxy {
        StranglerProxy {
            live,
            rejected,
            shadow,
            inflight,
            max_inflight,
        }
    }

    fn shadow_skipped(&self, route: &str, reason: Option<DropReason>) {
        let m = self.live.metrics();
        m.shadow_requests
            .with_label_values(&[route, ShadowOutcome::Skipped.as_str()])
            .inc();
        if let Some(reason) = reason {
            m.shadow_dropped
                .with_label_values(&[route, reason.as_str()])
                .inc();
        }
    }

    /// Queues the shadow job of a finished request, or counts why not.
    fn queue_shadow(&self, session: &Session, failed: bool, ctx: &mut RequestCtx) {
        let Some(capture) = ctx.shadow.take() else {
            return;
        };
        let route = ctx.route_name().to_string();
        if capture.too_large {
            self.shadow_skipped(&route, Some(DropReason::TooLarge));
            return;
        }
        if failed || !capture.has_response() {
            // No primary answer to compare with.
            self.shadow_skipped(&route, None);
            return;
        }
        let Some(route_index) = ctx.route else { return };
        let table = &ctx.table;
        let target = table.upstreams[capture.target_backend.0].pick();
        let legacy_backend = table.config().routes[route_index].legacy;
        let legacy = table.upstreams[legacy_backend.0].pick();
        let job = capture.into_job(
            session.req_header().method.clone(),
            ctx.request_id.as_str().to_string(),
            table.version,
            ctx.side,
            ctx.started.elapsed(),
            *target,
            *legacy,
        );
        if let Some(job) = job {
            if self.shadow.submit(job).is_err() {
                self.shadow_skipped(&route, Some(DropReason::QueueFull));
            }
        }
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
        let client_ip = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
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
        if path.as_ref() != req.uri.path() {
            ctx.upstream_path = Some(match req.uri.query() {
                Some(q) => format!("{path}?{q}"),
                None => path.into_owned(),
            });
        }
        Ok(false)
    }

    /// Enforces the route's body limit on bodies without a length (chunked),
    /// and keeps the request body of a shadowed request (up to `max_body`).
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
        if let (Some(capture), Some(chunk)) = (ctx.shadow.as_mut(), body.as_ref()) {
            capture.request_chunk(chunk);
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
        let peer = ctx.table.upstreams[ctx.backend.0].pick();
        ctx.upstream_addr = crate::live::upstream::Upstream::address_of(&peer);
        Ok(peer)
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
            // and reach the shadow side twice.
            ctx.body_bytes = 0;
            if let Some(old) = ctx.shadow.take() {
                ctx.shadow = Some(Box::new(ShadowCapture::new(
                    old.runtime,
                    old.target_side,
                    old.target_backend,
                    old.tenant,
                    old.noise_probe,
                )));
            }
        }
        // Not taken: a retried attempt must send the same normalized path.
        if let Some(path) = ctx.upstream_path.as_deref() {
            let uri: Uri = path.parse().map_err(|_| {
                Error::explain(ErrorType::InternalError, "normalized path is not a URI")
            })?;
            upstream_request.set_uri(uri);
        }
        if let Some(addr) = session.client_addr().and_then(|a| a.as_inet()) {
            upstream_request.insert_header("x-forwarded-for", addr.ip().to_string())?;
        } else {
            upstream_request.remove_header("x-forwarded-for");
        }
        // Only the proxy marks shadow copies: a client sending the marker
        // could make a backend treat a real request as a copy (skip its
        // side effects, or answer differently).
        upstream_request.remove_header(crate::shadow::SHADOW_HEADER);
        let tls = session.digest().is_some_and(|d| d.ssl_digest.is_some());
        upstream_request.insert_header("x-forwarded-proto", if tls { "https" } else { "http" })?;
        upstream_request.insert_header("x-request-id", ctx.request_id.as_str())?;
        if let Some(capture) = ctx.shadow.as_mut() {
            // The copy must look like what the primary upstream received.
            capture.headers = upstream_request
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            capture.path = upstream_request
                .uri
                .path_and_query()
                .map(|p| p.as_str().to_string())
                .unwrap_or_else(|| "/".to_string());
        }
        Ok(())
    }

    /// Keeps the primary answer's head of a shadowed request.
    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let Some(capture) = ctx.shadow.as_mut() {
            if !upstream_response.status.is_informational() {
                capture.response_head(upstream_response);
            }
        }
        Ok(())
    }

    /// Keeps the primary answer's body of a shadowed request (up to
    /// `max_body`); the client's copy is not touched.
    fn upstream_response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<Duration>> {
        if let (Some(capture), Some(chunk)) = (ctx.shadow.as_mut(), body.as_ref()) {
            capture.response_chunk(chunk);
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
        if ctx.rejected {
            return;
        }
        ctx.table.upstreams[ctx.backend.0].request_ended(ctx.upstream_addr, e);
        self.queue_shadow(session, e.is_some(), ctx);
        let status = session
            .response_written()
            .map(|r| r.status.as_u16())
            .unwrap_or(0);
        let side = ctx.route_metrics().side(ctx.side);
        side.observe(status, ctx.started.elapsed().as_secs_f64());
        if let Some(kind) = ctx.upstream_error {
            side.upstream_error(kind);
        }
    }
}
