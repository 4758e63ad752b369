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
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use pingora::ErrorType;
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;

use super::ctx::{RequestCtx, fast_random};
use super::exchange::{Answered, ClientRequest, DataPath, Routing};
use super::hygiene::Rejection;
use super::respond;
use crate::access_log::AccessLog;
use crate::live::Live;
use crate::shadow::ShadowQueue;
use prometheus::IntCounterVec;

/// Connect attempts per request, across a backend's addresses.
pub(super) const MAX_CONNECT_ATTEMPTS: usize = 3;

/// Shared state of the proxy: the live table and the metrics it feeds.
/// Cheap to clone (handles only): each worker's engine and fast path hold
/// one.
#[derive(Debug, Clone)]
pub struct StranglerProxy {
    pub(super) live: Arc<Live>,
    pub(super) rejected: IntCounterVec,
    pub(super) shadow: ShadowQueue,
    /// Requests in flight in this process (shared by all workers).
    pub(super) inflight: Arc<AtomicUsize>,
    pub(super) max_inflight: usize,
    pub(super) access_log: AccessLog,
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
    pub(super) fn count_rejection(&self, ctx: &mut RequestCtx, r: Rejection) {
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
        respond::plain(
            session.as_downstream_mut(),
            r.status(),
            body,
            ctx.request_id.as_str(),
        )
        .await;
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
        let request = ClientRequest::of_session(session.as_downstream());
        match self.route(&request, ctx, DataPath::Engine) {
            Routing::Forward => Ok(false),
            Routing::Refuse(r, detail) => {
                self.reject(session, ctx, r, &detail).await;
                Ok(true)
            }
            Routing::NotFast => unreachable!("only the fast path asks"),
        }
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
        let down = session.as_downstream();
        let tls = down.digest().is_some_and(|d| d.ssl_digest.is_some());
        Self::forward_headers(tls, upstream_request, ctx)
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
        Self::answer_headers(upstream_response, ctx)
    }

    /// A short plain answer saying which backend failed and how.
    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let status = Self::answer_failure(session.as_downstream_mut(), e, ctx).await;
        FailToProxy {
            error_code: status,
            can_reuse_downstream: false,
        }
    }

    /// Counts the request under its route, backend, side and status class,
    /// and queues its shadow job now that the client has its answer.
    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        self.request_done(&Answered::by_session(session.as_downstream()), e, ctx);
    }
}
