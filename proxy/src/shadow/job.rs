//! A shadow job: everything the engine needs to send a copy and compare,
//! detached from the request that produced it.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method};
use pingora::upstreams::peer::HttpPeer;
use shadow_diff::{CompareRules, Redactor};

use crate::config::{Percent, Route, ShadowPolicy, Side};

/// A route's shadow settings, compiled once per configuration version.
#[derive(Debug)]
pub struct ShadowRuntime {
    pub route: String,
    pub compare: CompareRules,
    pub redactor: Redactor,
    pub timeout: Duration,
    pub max_body: usize,
    pub noise_sample: Percent,
}

impl ShadowRuntime {
    pub fn new(route: &Route, policy: &ShadowPolicy) -> ShadowRuntime {
        ShadowRuntime {
            route: route.name.to_string(),
            compare: policy.compare.clone(),
            // Validated when the config was compiled.
            redactor: Redactor::new(&policy.redact).unwrap_or_default(),
            timeout: policy.timeout,
            max_body: policy.max_body.get() as usize,
            noise_sample: policy.noise_sample,
        }
    }
}

pub use crate::capture::CapturedResponse;

/// The path (and query) and `Host` one backend gets, after its route's
/// `rewrite` and its `host` setting: the same rules as a primary request.
#[derive(Debug, Clone, Default)]
pub struct Addressed {
    pub path: String,
    /// `None`: the request had no Host and the backend sets none.
    pub host: Option<HeaderValue>,
}

#[derive(Debug)]
pub struct ShadowJob {
    pub runtime: std::sync::Arc<ShadowRuntime>,
    pub config_version: u64,
    pub request_id: String,
    pub tenant: Option<String>,
    pub received_at: SystemTime,
    pub method: Method,
    /// Path and query of the request (normalized, before any rewrite): what
    /// the diff record shows.
    pub path: String,
    /// What the copy's target is sent: its side's path and its backend's Host.
    pub copy: Addressed,
    /// What the noise probe (legacy again) is sent.
    pub probe: Addressed,
    /// Request headers as the primary upstream received them.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
    pub primary_side: Side,
    pub primary: CapturedResponse,
    /// Where the copy goes (the side that did not serve).
    pub target: HttpPeer,
    /// A legacy peer for the noise probe, when this job is sampled for it.
    pub noise_probe: Option<HttpPeer>,
}

impl ShadowJob {
    /// Bytes this job holds, charged against the shadow memory budget.
    pub fn weight(&self) -> usize {
        1024 + self.body.len() + self.primary.body.len()
    }
}

/// What the request path hands the engine.
#[derive(Debug)]
pub enum EngineJob {
    Shadow(Box<ShadowJob>),
    Record(Box<crate::record::RecordJob>),
}

impl EngineJob {
    pub fn weight(&self) -> usize {
        match self {
            EngineJob::Shadow(j) => j.weight(),
            EngineJob::Record(j) => j.weight(),
        }
    }
}
