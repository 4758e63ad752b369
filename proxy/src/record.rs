//! Recording: **where a sampled request is kept for replay.** On the request
//! path a recorded request's body and the answer its client got are kept
//! (bounded by the route's `record.max_body`, like a shadow capture); once
//! the client has its answer a [`RecordJob`] goes to the shadow engine's
//! queue without waiting. The engine (its own thread) decodes and redacts it
//! into a [`Recording`] and hands it to the store writer. Nothing here can
//! delay or change a client's answer; what is not kept is counted
//! (`strangler_record_total{outcome}`).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderName, HeaderValue, Method};
use shadow_diff::recording::Unredacted;
use shadow_diff::{Recording, Redactor, decode::decode_body};

use crate::capture::{CapturedResponse, Kept, header_texts};
use crate::config::{RecordPolicy, Route, Side};

/// A route's record settings, compiled once per configuration version.
#[derive(Debug)]
pub struct RecordRuntime {
    pub route: String,
    /// The built-in secrets, the shadow block's `redact` and the record
    /// block's own.
    pub redactor: Redactor,
    pub max_body: usize,
}

impl RecordRuntime {
    pub fn new(route: &Route, policy: &RecordPolicy) -> RecordRuntime {
        RecordRuntime {
            route: route.name.to_string(),
            redactor: recording_redactor(route),
            max_body: policy.max_body.get() as usize,
        }
    }
}

/// What a route's recordings are redacted with (and, so that both answers
/// compare alike, what a replay redacts the target's answer with): the
/// built-in secrets, the record block's `redact` and the shadow block's.
pub fn recording_redactor(route: &Route) -> Redactor {
    let mut redact = route
        .record
        .as_ref()
        .map(|r| r.redact.clone())
        .unwrap_or_default();
    if let Some(shadow) = &route.shadow {
        redact.extend(shadow.redact.iter().cloned());
    }
    // Validated when the config was compiled.
    Redactor::new(&redact).unwrap_or_default()
}

/// What the request path keeps of a recorded request.
#[derive(Debug)]
pub struct RecordCapture {
    pub runtime: Arc<RecordRuntime>,
    pub tenant: Option<String>,
    /// Normalized path and query, before any rewrite.
    pub path: String,
    /// The request headers as the primary upstream received them.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub kept: Kept,
}

impl RecordCapture {
    pub fn new(runtime: Arc<RecordRuntime>, tenant: Option<String>) -> RecordCapture {
        let kept = Kept::new(runtime.max_body);
        RecordCapture {
            runtime,
            tenant,
            path: String::new(),
            headers: Vec::new(),
            kept,
        }
    }

    /// Nothing of the body or answer kept, for another upstream attempt.
    pub fn restart(&mut self) {
        self.kept = self.kept.restarted();
    }

    /// The job for the engine; `None` when no answer came.
    pub fn into_job(self, request: RequestFacts) -> Option<RecordJob> {
        let (body, answer) = self.kept.into_parts(request.latency)?;
        Some(RecordJob {
            runtime: self.runtime,
            request,
            tenant: self.tenant,
            path: self.path,
            headers: self.headers,
            body,
            answer,
        })
    }
}

/// What the request path knows of a finished request.
#[derive(Debug, Clone)]
pub struct RequestFacts {
    pub request_id: String,
    pub config_version: u64,
    pub method: Method,
    pub served_by: Side,
    /// When the request came in.
    pub received_at: SystemTime,
    /// Until the answer was done.
    pub latency: Duration,
}

/// A recorded exchange on its way to the store, not yet redacted.
#[derive(Debug)]
pub struct RecordJob {
    pub runtime: Arc<RecordRuntime>,
    pub request: RequestFacts,
    pub tenant: Option<String>,
    pub path: String,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: bytes::Bytes,
    pub answer: CapturedResponse,
}

impl RecordJob {
    /// Bytes this job holds, charged against the shadow memory budget.
    pub fn weight(&self) -> usize {
        1024 + self.body.len() + self.answer.body.len()
    }

    /// The recording as it may be stored: the answer decoded (so that it
    /// compares like a shadowed one), everything redacted.
    pub fn into_recording(self, instance: &str) -> Recording {
        let request_headers = header_texts(self.headers.iter().map(|(k, v)| (k, v)));
        let encoding = self
            .answer
            .headers
            .iter()
            .find(|(k, _)| k == "content-encoding")
            .map(|(_, v)| v.as_str());
        let decoded = decode_body(encoding, &self.answer.body);
        let (response_body, response_headers) = match &decoded {
            // The body is stored decoded; its encoding headers no longer
            // describe it.
            Ok(body) if encoding.is_some() => (
                body.as_slice(),
                self.answer
                    .headers
                    .iter()
                    .filter(|(k, _)| k != "content-encoding" && k != "content-length")
                    .cloned()
                    .collect(),
            ),
            _ => (self.answer.body.as_ref(), self.answer.headers.clone()),
        };
        let (request, response, path, redacted) = self.runtime.redactor.recorded(&Unredacted {
            path: &self.path,
            request_headers: &request_headers,
            request_body: &self.body,
            response_headers: &response_headers,
            response_body,
        });
        Recording {
            id: self.request.request_id,
            created_at_ms: self
                .request
                .received_at
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0),
            route: self.runtime.route.clone(),
            config_version: self.request.config_version as i64,
            tenant: self.tenant,
            instance: instance.to_string(),
            served_by: self.request.served_by.as_str().to_string(),
            method: self.request.method.to_string(),
            path,
            request,
            status: self.answer.status,
            response,
            latency_ms: self.answer.latency.as_secs_f64() * 1000.0,
            redacted,
        }
    }
}
