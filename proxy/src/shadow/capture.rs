//! What the request path keeps of a shadowed request: its body and the
//! primary answer ([`Kept`], up to the route's `max_body`), and where its
//! copy goes. Anything larger is
//! dropped at once (and counted `too_large`); nothing here can delay or
//! change what the client gets.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::{HeaderName, HeaderValue, Method};
use pingora::upstreams::peer::HttpPeer;

use super::job::{Addressed, ShadowJob, ShadowRuntime};
use crate::capture::Kept;
use crate::config::{BackendId, Side};

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
