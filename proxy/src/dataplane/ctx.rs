//! Per-request state carried through Pingora's phases.

use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::Instant;

use crate::config::{BackendId, Side};
use crate::live::LiveTable;
use crate::metrics::{RouteMetrics, UpstreamErrorKind};
use crate::record::RecordCapture;
use crate::routing::forwarded::Forwarded;
use crate::shadow::ShadowCapture;

/// Everything one request needs between phases. The live table is loaded
/// once, when the context is made, so a reload in the middle of a request
/// does not change what it sees.
#[derive(Debug)]
pub struct RequestCtx {
    pub table: Arc<LiveTable>,
    pub started: Instant,
    /// When the client had the whole answer: read once, by
    /// [`RequestCtx::ended`], for the latency and the upstream pool.
    ended: Option<Instant>,
    pub request_id: RequestId,
    /// Index into `Config::routes`; `None` for unmatched traffic.
    pub route: Option<usize>,
    pub side: Side,
    pub backend: BackendId,
    /// Path and query for the upstream when normalization changed the path.
    pub upstream_path: Option<String>,
    pub connect_attempts: usize,
    /// The backend address of the last attempt, for its health.
    pub upstream_addr: Option<std::net::SocketAddr>,
    pub upstream_error: Option<UpstreamErrorKind>,
    /// The request was answered by the proxy itself before routing.
    pub rejected: bool,
    /// Set when this request is shadowed: what is kept of it.
    pub shadow: Option<Box<ShadowCapture>>,
    /// Set when this request is recorded: what is kept of it.
    pub record: Option<Box<RecordCapture>>,
    /// Request body bytes seen so far (for the route's limit).
    pub body_bytes: u64,
    /// Why the proxy refused the request mid-way, if it did.
    pub refused: Option<crate::dataplane::hygiene::Rejection>,
    /// Holds a place in the in-flight count until the request is done.
    pub inflight: Option<InflightSlot>,
    /// Who sent the request, as far as it is believed (`None` before the
    /// request filter, or on a socket without an IP peer).
    pub forwarded: Option<Forwarded>,
    /// The `Host` the client sent (the upstream may get another).
    pub client_host: Option<http::HeaderValue>,
    /// The route's `retries` spent so far.
    pub retries_used: u32,
    /// The next upstream attempt must not take a pooled connection.
    pub fresh_connection: bool,
    /// A shadow copy of this request was queued.
    pub shadowed: bool,
}

/// One request's place in the in-flight count; released on drop.
#[derive(Debug)]
pub struct InflightSlot(pub Arc<std::sync::atomic::AtomicUsize>);

impl Drop for InflightSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

impl RequestCtx {
    pub fn new(table: Arc<LiveTable>) -> RequestCtx {
        let backend = table.config().default_backend;
        RequestCtx {
            table,
            started: Instant::now(),
            ended: None,
            request_id: RequestId::generate(),
            route: None,
            side: Side::Legacy,
            backend,
            upstream_path: None,
            connect_attempts: 0,
            upstream_addr: None,
            upstream_error: None,
            rejected: false,
            shadow: None,
            record: None,
            body_bytes: 0,
            refused: None,
            inflight: None,
            forwarded: None,
            client_host: None,
            retries_used: 0,
            fresh_connection: false,
            shadowed: false,
        }
    }

    /// When the request ended (the clock is read the first time this is
    /// asked, and that reading kept): the latency and the idle upstream
    /// connection's age are measured from one reading, not two.
    pub fn ended(&mut self) -> Instant {
        *self.ended.get_or_insert_with(Instant::now)
    }

    /// Keeps a chunk of the request body for the shadow copy and the
    /// recording, whichever this request has.
    pub fn keep_request_chunk(&mut self, chunk: &bytes::Bytes) {
        if let Some(capture) = self.shadow.as_mut() {
            capture.kept.request_chunk(chunk);
        }
        if let Some(capture) = self.record.as_mut() {
            capture.kept.request_chunk(chunk);
        }
    }

    /// Keeps the head of the primary answer (not a 1xx).
    pub fn keep_response_head(&mut self, header: &pingora::http::ResponseHeader) {
        if header.status.is_informational() {
            return;
        }
        if let Some(capture) = self.shadow.as_mut() {
            capture.kept.response_head(header);
        }
        if let Some(capture) = self.record.as_mut() {
            capture.kept.response_head(header);
        }
    }

    pub fn keep_response_chunk(&mut self, chunk: &bytes::Bytes) {
        if let Some(capture) = self.shadow.as_mut() {
            capture.kept.response_chunk(chunk);
        }
        if let Some(capture) = self.record.as_mut() {
            capture.kept.response_chunk(chunk);
        }
    }

    /// Another upstream attempt replays the body from the start: what was
    /// kept of it (and counted against the route's limit) starts again.
    pub fn restart_kept(&mut self) {
        self.body_bytes = 0;
        if let Some(old) = self.shadow.take() {
            self.shadow = Some(Box::new(old.restarted()));
        }
        if let Some(capture) = self.record.as_mut() {
            capture.restart();
        }
    }

    /// The largest request body the request's route accepts.
    pub fn body_limit(&self) -> u64 {
        match self.route {
            Some(i) => self.table.config().routes[i].max_request_body.get(),
            None => crate::config::defaults::DEFAULT_MAX_REQUEST_BODY.get(),
        }
    }

    pub fn route_metrics(&self) -> &RouteMetrics {
        match self.route {
            Some(i) => &self.table.route_metrics[i],
            None => &self.table.default_metrics,
        }
    }

    pub fn route_name(&self) -> &str {
        match self.route {
            Some(i) => self.table.config().routes[i].name.as_str(),
            None => crate::config::DEFAULT_ROUTE_LABEL,
        }
    }

    pub fn backend_name(&self) -> &str {
        self.table.config().backend(self.backend).name.as_str()
    }
}

/// A request's id: 128 random bits printed as 32 hex digits, or the id a
/// trusted proxy in front of us already gave the request (kept so that one
/// id follows the request through every hop).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestId {
    Generated([u8; 32]),
    Kept(Box<str>),
}

impl RequestId {
    pub fn generate() -> RequestId {
        let (a, b) = (fast_random(), fast_random());
        let mut out = [0u8; 32];
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for (i, byte) in a
            .to_be_bytes()
            .iter()
            .chain(b.to_be_bytes().iter())
            .enumerate()
        {
            out[2 * i] = HEX[(byte >> 4) as usize];
            out[2 * i + 1] = HEX[(byte & 15) as usize];
        }
        RequestId::Generated(out)
    }

    /// A trusted peer's id, if it is one we can pass on safely.
    pub fn kept(value: &[u8]) -> Option<RequestId> {
        if !crate::routing::forwarded::acceptable_request_id(value) {
            return None;
        }
        std::str::from_utf8(value)
            .ok()
            .map(|s| RequestId::Kept(s.into()))
    }

    pub fn as_str(&self) -> &str {
        match self {
            RequestId::Generated(hex) => std::str::from_utf8(hex).expect("hex is ASCII"),
            RequestId::Kept(id) => id,
        }
    }

    /// The id's bytes, as written in a header: without `as_str`'s UTF-8
    /// pass, which the fast path would make twice per request.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            RequestId::Generated(hex) => hex,
            RequestId::Kept(id) => id.as_bytes(),
        }
    }
}

thread_local! {
    static RNG: Cell<u64> = Cell::new({
        // Seeded from the OS-randomized hasher keys; never zero.
        let mut h = RandomState::new().build_hasher();
        h.write_u64(std::process::id() as u64);
        h.finish() | 1
    });
}

/// xorshift64*: fast, per thread, not for secrets. Used for request ids and
/// for `sticky: none` draws.
pub fn fast_random() -> u64 {
    RNG.with(|state| {
        let mut x = state.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        state.set(x);
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_hex_and_distinct() {
        let a = RequestId::generate();
        let b = RequestId::generate();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 32);
        assert!(a.as_str().bytes().all(|c| c.is_ascii_hexdigit()));
    }
}
