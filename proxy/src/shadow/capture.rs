//! What the request path keeps of a shadowed (or recorded) request: its
//! body and the primary answer, each up to the route's `max_body`. Anything larger is
//! dropped at once (and counted `too_large`); nothing here can delay or
//! change what the client gets.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use http::{HeaderName, HeaderValue, Method};
use pingora::http::ResponseHeader;
use pingora::upstreams::peer::HttpPeer;

use super::job::{Addressed, CapturedResponse, ShadowJob, ShadowRuntime};
use crate::config::{BackendId, Side};

/// A request body and the answer to it, kept up to a size: what shadowing
/// and recording both keep of a request. Past the size, everything kept is
/// let go at once and `too_large` stays set.
#[derive(Debug)]
pub struct Kept {
    max_body: usize,
    body: BytesMut,
    response: Option<(u16, Vec<(String, String)>)>,
    response_body: BytesMut,
    pub too_large: bool,
}

impl Kept {
    pub fn new(max_body: usize) -> Kept {
        Kept {
            max_body,
            body: BytesMut::new(),
            response: None,
            response_body: BytesMut::new(),
            too_large: false,
        }
    }

    /// Nothing of the body or answer kept: for another upstream attempt,
    /// which replays the body from the start.
    pub fn restarted(&self) -> Kept {
        Kept::new(self.max_body)
    }

    fn fits(&mut self, have: usize, more: usize) -> bool {
        if have + more > self.max_body {
            self.too_large = true;
            self.body = BytesMut::new();
            self.response_body = BytesMut::new();
        }
        !self.too_large
    }

    pub fn request_chunk(&mut self, chunk: &Bytes) {
        if self.fits(self.body.len(), chunk.len()) {
            self.body.extend_from_slice(chunk);
        }
    }

    pub fn response_head(&mut self, header: &ResponseHeader) {
        let headers = header
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        self.response = Some((header.status.as_u16(), headers));
    }

    pub fn response_chunk(&mut self, chunk: &Bytes) {
        if self.fits(self.response_body.len(), chunk.len()) {
            self.response_body.extend_from_slice(chunk);
        }
    }

    pub fn has_response(&self) -> bool {
        self.response.is_some()
    }

    /// The request body and the answer, if an answer came.
    pub fn into_parts(self, latency: Duration) -> Option<(Bytes, CapturedResponse)> {
        let (status, headers) = self.response?;
        Some((
            self.body.freeze(),
            CapturedResponse {
                status,
                headers,
                body: self.response_body.freeze(),
                latency,
            },
        ))
    }
}

#[derive(Debug)]
pub struct ShadowCapture {
    pub runtime: Arc<ShadowRuntime>,
    pub target_side: Side,
    pub target_backend: BackendId,
    pub tenant: Option<String>,
    pub noise_probe: bool,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub path: String,
    pub copy: Addressed,
    pub probe: Addressed,
    pub kept: Kept,
}

impl ShadowCapture {
    pub fn new(
        runtime: Arc<ShadowRuntime>,
        target_side: Side,
        target_backend: BackendId,
        tenant: Option<String>,
        noise_probe: bool,
    ) -> ShadowCapture {
        let kept = Kept::new(runtime.max_body);
        ShadowCapture {
            runtime,
            target_side,
            target_backend,
            tenant,
            noise_probe,
            headers: Vec::new(),
            path: String::new(),
            copy: Addressed::default(),
            probe: Addressed::default(),
            kept,
        }
    }

    /// The same capture with nothing of the body or answer kept: for another
    /// upstream attempt, which replays the body from the start. What the
    /// copy is sent (path, Host) stays.
    pub fn restarted(self) -> ShadowCapture {
        ShadowCapture {
            path: self.path,
            copy: self.copy,
            probe: self.probe,
            ..ShadowCapture::new(
                self.runtime,
                self.target_side,
                self.target_backend,
                self.tenant,
                self.noise_probe,
            )
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn into_job(
        self,
        method: Method,
        request_id: String,
        config_version: u64,
        primary_side: Side,
        latency: Duration,
        target: HttpPeer,
        legacy: Option<HttpPeer>,
    ) -> Option<ShadowJob> {
        let (body, primary) = self.kept.into_parts(latency)?;
        Some(ShadowJob {
            runtime: self.runtime,
            config_version,
            request_id,
            tenant: self.tenant,
            received_at: SystemTime::now() - latency,
            method,
            path: self.path,
            copy: self.copy,
            probe: self.probe,
            headers: self.headers,
            body,
            primary_side,
            primary,
            target,
            noise_probe: legacy,
        })
    }
}
