//! The validated configuration. Every value here was checked by `compile`;
//! the newtypes ([`RouteName`], [`BackendName`], [`Percent`]) cannot hold an
//! invalid value, and backends are referred to by [`BackendId`], so an unknown
//! backend cannot exist after validation.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use http::{HeaderName, Method};
use regex::Regex;

pub use super::topology::{
    AccessLogFormat, AccessLogSettings, AccessLogTarget, Cidr, Rewrite, TrustedProxies,
    UpstreamHost, canonical,
};
pub use super::units::{ByteSize, Percent};

/// Names of routes and backends: `[A-Za-z0-9._-]`, 1 to 64 characters. They
/// become metric label values, so their alphabet is kept small.
fn valid_name(kind: &str, name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!("{kind} name is empty"));
    }
    if name.len() > 64 {
        return Err(format!("{kind} name {name:?} is longer than 64 characters"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "{kind} name {name:?} contains {c:?} (use letters, digits, '.', '_' and '-')"
        ));
    }
    Ok(())
}

/// The label used for traffic no route matched. A route may not take it.
pub const DEFAULT_ROUTE_LABEL: &str = "default";

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RouteName(String);

impl RouteName {
    pub fn new(name: &str) -> Result<RouteName, String> {
        valid_name("route", name)?;
        if name == DEFAULT_ROUTE_LABEL {
            return Err(format!(
                "route name {name:?} is reserved for unmatched traffic in metrics and reports"
            ));
        }
        Ok(RouteName(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RouteName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BackendName(String);

impl BackendName {
    pub fn new(name: &str) -> Result<BackendName, String> {
        valid_name("backend", name)?;
        Ok(BackendName(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BackendName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Index of a backend in [`Config::backends`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BackendId(pub usize);

/// Which side of a migration served (or is shadowed to).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    Legacy,
    New,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Legacy => "legacy",
            Side::New => "new",
        }
    }

    pub fn other(self) -> Side {
        match self {
            Side::Legacy => Side::New,
            Side::New => Side::Legacy,
        }
    }

    pub fn parse(text: &str) -> Result<Side, String> {
        match text {
            "legacy" => Ok(Side::Legacy),
            "new" => Ok(Side::New),
            other => Err(format!("{other:?} is not a side (use legacy or new)")),
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// The listener expects a PROXY protocol (v1 or v2) header first, from
    /// trusted peers only.
    pub proxy_protocol: bool,
    pub trusted_proxies: TrustedProxies,
    pub access_log: Option<std::sync::Arc<AccessLogSettings>>,
    pub tls: Option<TlsListener>,
    pub admin: AdminSettings,
    pub store: StoreUrl,
    pub backends: Vec<Backend>,
    pub tenant: Vec<TenantSource>,
    pub default_backend: BackendId,
    /// In file order; the router tries them in [`super::precedence::priority_order`].
    pub routes: Vec<Route>,
}

impl Config {
    pub fn backend(&self, id: BackendId) -> &Backend {
        &self.backends[id.0]
    }

    pub fn backend_id(&self, name: &str) -> Option<BackendId> {
        self.backends
            .iter()
            .position(|b| b.name.as_str() == name)
            .map(BackendId)
    }

    pub fn route(&self, name: &str) -> Option<&Route> {
        self.routes.iter().find(|r| r.name.as_str() == name)
    }

    pub fn route_mut(&mut self, name: &str) -> Option<&mut Route> {
        self.routes.iter_mut().find(|r| r.name.as_str() == name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsListener {
    pub listen: SocketAddr,
    pub cert: String,
    pub key: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminSettings {
    pub listen: SocketAddr,
    /// Name of the environment variable holding the bearer token for changes.
    pub token_env: Option<String>,
}

/// Where diffs, history and audit records are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreUrl(String);

impl StoreUrl {
    pub fn new(url: &str) -> Result<StoreUrl, String> {
        let ok = url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://");
        if !ok {
            return Err(format!(
                "{url:?} is not a store URL (use sqlite://FILE or postgres://USER@HOST/DB)"
            ));
        }
        Ok(StoreUrl(url.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The same store with a relative SQLite file taken under `dir` (the
    /// configuration file's directory), so that every command and the proxy
    /// find one file wherever they are started from. Absolute paths,
    /// in-memory databases and PostgreSQL URLs are unchanged.
    pub fn relative_to(&self, dir: &std::path::Path) -> StoreUrl {
        match shadow_diff::store::sqlite_file(&self.0) {
            Some(file) if !file.starts_with('/') => {
                let query = self.0.find('?').map_or("", |i| &self.0[i..]);
                StoreUrl(format!("sqlite://{}{query}", dir.join(file).display()))
            }
            _ => self.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Backend {
    pub name: BackendName,
    pub endpoints: Vec<Endpoint>,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub write_timeout: Duration,
    pub idle_timeout: Duration,
    pub tls_verify: bool,
    /// The `Host` header this backend is sent.
    pub host: UpstreamHost,
    pub tls: UpstreamTls,
    pub health: HealthPolicy,
}

/// One `scheme://host:port` of a backend. The host is resolved when the table
/// is built for serving, not when a file is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub tls: bool,
    pub host: String,
    pub port: u16,
}

impl Endpoint {
    /// `host[:port]` as a `Host` header names it: the port only when it is not
    /// the scheme's default.
    pub fn authority(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let default_port = if self.tls { 443 } else { 80 };
        if self.port == default_port {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "https" } else { "http" };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}

/// How a request's tenant is found; the first source that yields one wins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantSource {
    Header(HeaderName),
    /// Zero-based label of the Host: `0` of `acme.shop.example.com` is `acme`.
    HostLabel(usize),
    Cookie(String),
    /// Read, not verified, from the payload of an `Authorization: Bearer` JWT.
    JwtClaim(String),
}

impl fmt::Display for TenantSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TenantSource::Header(h) => write!(f, "header {h}"),
            TenantSource::HostLabel(n) => write!(f, "host label {n}"),
            TenantSource::Cookie(c) => write!(f, "cookie {c}"),
            TenantSource::JwtClaim(c) => write!(f, "JWT claim {c}"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Route {
    pub name: RouteName,
    pub matcher: RouteMatch,
    pub legacy: BackendId,
    pub new: BackendId,
    pub canary: Percent,
    pub sticky: Sticky,
    /// Tenants pinned to a side; they beat the percentage.
    pub pins: Vec<(String, Side)>,
    pub shadow: Option<ShadowPolicy>,
    /// Automatic rollback when the new side misbehaves.
    pub guard: Option<GuardPolicy>,
    /// Largest request body accepted (413 above).
    pub max_request_body: ByteSize,
    /// The path the new side receives; `None`: the routed path.
    pub rewrite: Option<Rewrite>,
    /// Read timeout of this route's requests, over the backend's.
    pub timeout: Option<Duration>,
    /// Further attempts of an idempotent request after an upstream error,
    /// each on a fresh connection, never after the client got a byte.
    pub retries: u32,
    /// Canary steps taken by the proxy itself, gated on health and diffs.
    pub rollout: Option<RolloutPolicy>,
    /// Sampled requests kept for replay.
    pub record: Option<RecordPolicy>,
    /// How recorded requests are sent again (`strangler replay`).
    pub replay: ReplayPolicy,
}

/// A route's `record:` block, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordPolicy {
    /// Share of the route's requests (by sticky key) recorded.
    pub percent: Percent,
    /// Largest request or answer body recorded; larger exchanges are not.
    pub max_body: ByteSize,
    /// Extra header names and JSON Pointers redacted (besides the built-in
    /// secrets and the shadow block's `redact`).
    pub redact: Vec<String>,
}

/// A route's `replay:` block (defaults when absent): safe methods only, no
/// headers set.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ReplayPolicy {
    /// Methods with side effects are replayed too.
    pub allow_writes: bool,
    /// Set on every replayed request; a recorded header that was redacted
    /// is sent with its value from here, or the request is skipped.
    pub headers: Vec<(http::HeaderName, ReplayHeaderValue)>,
}

/// A `replay.headers` value.
#[derive(Debug, Clone, PartialEq)]
pub enum ReplayHeaderValue {
    Literal(http::HeaderValue),
    /// Read from this environment variable of the proxy running the replay.
    Env(String),
}

/// A route's `rollout:` block, validated: at least one step, steps rising,
/// each above 0; a gate is only named when the route has what it reads.
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutPolicy {
    /// Canary percentages, strictly increasing, each above 0.
    pub steps: Vec<Percent>,
    /// The least time spent at a step before the next one.
    pub pause: Duration,
    /// What must hold over the pause; no duplicates.
    pub require: Vec<Gate>,
    pub on_failure: OnFailure,
    pub start: RolloutStart,
}

impl RolloutPolicy {
    /// The first step above `canary`, if any.
    pub fn next_step(&self, canary: Percent) -> Option<Percent> {
        self.steps.iter().copied().find(|s| s.get() > canary.get())
    }

    pub fn requires(&self, gate: Gate) -> bool {
        self.require.contains(&gate)
    }
}

/// What a rollout checks before it takes a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Gate {
    /// The route's guard sees the new side healthy over the pause.
    Guard,
    /// The diff report reads `ready` over the step's comparisons.
    Report,
}

impl Gate {
    pub fn as_str(self) -> &'static str {
        match self {
            Gate::Guard => "guard",
            Gate::Report => "report",
        }
    }
}

/// What a rollout does when a gate fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFailure {
    /// Canary 0 and pins to legacy, exactly as `strangler rollback`.
    Rollback,
    /// Stay at the step and say why.
    Hold,
}

impl OnFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            OnFailure::Rollback => "rollback",
            OnFailure::Hold => "hold",
        }
    }
}

/// When a rollout starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RolloutStart {
    /// When a person runs `strangler rollout start`.
    Manual,
    /// As soon as a proxy serves the file (once; not again after it ended).
    Auto,
}

impl RolloutStart {
    pub fn as_str(self) -> &'static str {
        match self {
            RolloutStart::Manual => "manual",
            RolloutStart::Auto => "auto",
        }
    }
}

/// A route's `guard:` block, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct GuardPolicy {
    pub window: Duration,
    /// New-side requests needed in the window before the guard judges.
    pub min_requests: u64,
    /// How many percentage points the new side's 5xx rate may exceed
    /// legacy's (as a fraction: 0.05 = 5 points).
    pub error_rate_margin: f64,
    /// How much higher the new side's p99 may be, as a fraction of legacy's
    /// (0.5 = 50% higher). `None`: latency is not guarded.
    pub p99_margin: Option<f64>,
    /// Largest real-diff rate of shadow comparisons (fraction). `None`: not
    /// guarded.
    pub max_diff_rate: Option<f64>,
}

/// Where a route stands in its migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Everything on legacy, nothing copied.
    Legacy,
    /// Everything on legacy, copies to the new side compared.
    Shadow,
    /// Both sides serve: a canary between 0 and 100, or tenants pinned so.
    Canary,
    /// Everything on new: canary 100 and no tenant pinned to legacy.
    Migrated,
}

impl Stage {
    pub const ALL: [Stage; 4] = [Stage::Legacy, Stage::Shadow, Stage::Canary, Stage::Migrated];

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Legacy => "legacy",
            Stage::Shadow => "shadow",
            Stage::Canary => "canary",
            Stage::Migrated => "migrated",
        }
    }
}

impl Route {
    /// The route's stage, from its canary, pins and shadow block.
    pub fn stage(&self) -> Stage {
        let pinned = |side: Side| self.pins.iter().any(|(_, s)| *s == side);
        let canary = self.canary.get();
        if canary >= 100.0 && !pinned(Side::Legacy) {
            Stage::Migrated
        } else if canary > 0.0 || pinned(Side::New) {
            Stage::Canary
        } else if self.shadow.is_some() {
            Stage::Shadow
        } else {
            Stage::Legacy
        }
    }

    pub fn pin_for(&self, tenant: &str) -> Option<Side> {
        self.pins
            .iter()
            .find(|(t, _)| t == tenant)
            .map(|(_, side)| *side)
    }

    pub fn backend_for(&self, side: Side) -> BackendId {
        match side {
            Side::Legacy => self.legacy,
            Side::New => self.new,
        }
    }
}

#[derive(Debug, Clone)]
pub struct RouteMatch {
    pub path: PathMatch,
    /// `None` matches every method.
    pub methods: Option<Vec<Method>>,
    pub host: Option<HostMatch>,
    pub headers: Vec<(HeaderName, String)>,
}

#[derive(Debug, Clone)]
pub enum PathMatch {
    /// No path condition: the route is chosen by host, method or headers.
    Any,
    Exact(String),
    /// Prefix on whole segments: `/api/orders` matches `/api/orders/7`, not
    /// `/api/ordersX`. Stored without a trailing slash (except `/`).
    Prefix(String),
    Regex(Regex),
}

impl PathMatch {
    /// Whether a normalized routing path meets this condition.
    pub fn matches(&self, path: &str) -> bool {
        match self {
            PathMatch::Any => true,
            PathMatch::Exact(e) => path == e,
            PathMatch::Prefix(prefix) => {
                prefix == "/"
                    || (path.starts_with(prefix.as_str())
                        && matches!(path.as_bytes().get(prefix.len()), None | Some(b'/')))
            }
            PathMatch::Regex(re) => re.is_match(path),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            PathMatch::Any => "any path".to_string(),
            PathMatch::Exact(p) => format!("path_exact {p}"),
            PathMatch::Prefix(p) => format!("path {p}"),
            PathMatch::Regex(r) => format!("path_regex {}", r.as_str()),
        }
    }
}

/// An exact host, or `*.example.com` for any subdomain of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostMatch {
    Exact(String),
    Suffix(String),
}

impl fmt::Display for HostMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostMatch::Exact(h) => f.write_str(h),
            HostMatch::Suffix(s) => write!(f, "*{s}"),
        }
    }
}

/// What a sticky canary assignment hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sticky {
    Tenant,
    Header(HeaderName),
    Cookie(String),
    Ip,
    /// Every request is drawn anew.
    None,
}

impl fmt::Display for Sticky {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Sticky::Tenant => f.write_str("tenant"),
            Sticky::Header(h) => write!(f, "header:{h}"),
            Sticky::Cookie(c) => write!(f, "cookie:{c}"),
            Sticky::Ip => f.write_str("ip"),
            Sticky::None => f.write_str("none"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ShadowPolicy {
    /// Share of the route's requests (by sticky key) that are copied.
    pub percent: Percent,
    pub methods: Vec<Method>,
    /// Largest request or response body shadowed; larger ones are skipped.
    pub max_body: ByteSize,
    pub timeout: Duration,
    /// Share of shadowed safe requests also sent a second time to legacy, to
    /// learn which fields are noise.
    pub noise_sample: Percent,
    /// Extra header names and JSON Pointers removed before storing.
    pub redact: Vec<String>,
    /// When the diff report calls the route ready to move on.
    pub threshold: Threshold,
    pub compare: CompareRules,
}

pub use shadow_diff::report::Threshold;

pub use shadow_diff::CompareRules;

// Backend-side settings of issue 12 (upstream TLS, health), kept together
// so that they read as one part of a backend.

/// `backends.NAME.tls`, with its files read and checked when the file was
/// compiled: a backend whose CA or client certificate cannot be used is a
/// configuration error, not a failure at the first request.
#[derive(Debug, Clone, Default)]
pub struct UpstreamTls {
    /// Trust anchors from `ca`; `None` trusts the system's roots.
    pub ca: Option<std::sync::Arc<CertificateBundle>>,
    /// `client_cert` and `client_key`, for backends that require mTLS.
    pub client: Option<std::sync::Arc<ClientIdentity>>,
    /// The name sent in SNI and checked in the certificate, instead of the
    /// URL's host.
    pub sni: Option<String>,
}

/// Certificates read from a PEM file, in DER, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateBundle {
    /// As written in the file (for messages).
    pub path: String,
    pub certificates: Vec<Vec<u8>>,
}

/// A client certificate chain (leaf first) and its private key, in DER.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    pub cert_path: String,
    pub chain: Vec<Vec<u8>>,
    pub key: Vec<u8>,
}

impl fmt::Debug for ClientIdentity {
    /// The key is never printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientIdentity")
            .field("cert_path", &self.cert_path)
            .field("chain", &self.chain.len())
            .finish_non_exhaustive()
    }
}

/// How a backend's addresses are judged healthy. Passive ejection (after
/// `unhealthy_after` consecutive connect failures or timeouts of real
/// requests) is always on, as in nginx; active checks only with `health:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthPolicy {
    pub active: Option<ActiveCheck>,
    /// Consecutive failures (checks or real requests) that eject an address.
    pub unhealthy_after: u32,
    /// Consecutive passing checks that re-admit an ejected address.
    pub healthy_after: u32,
}

/// `backends.NAME.health`: a GET of `path` on a connection of its own, to
/// every address, every `interval`; 2xx and 3xx pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveCheck {
    /// Path and query, starting with `/`.
    pub path: String,
    pub interval: Duration,
    pub timeout: Duration,
}

impl Config {
    /// Settings that are valid but dangerous, each with its place, for
    /// `strangler check` and `serve` to print loudly (they do not fail).
    pub fn warnings(&self) -> Vec<String> {
        self.warnings_at().iter().map(|w| w.to_string()).collect()
    }

    /// [`Config::warnings`] with their places apart, so that `check` can give
    /// each one its line and column as it does errors.
    pub fn warnings_at(&self) -> Vec<super::ConfigError> {
        self.backends
            .iter()
            .filter(|b| !b.tls_verify && b.endpoints.iter().any(|e| e.tls))
            .map(|b| {
                super::ConfigError::new(
                    super::Place::root()
                        .key("backends")
                        .key(b.name.as_str().to_owned())
                        .key("tls_verify"),
                    format!(
                        "false: the certificate of backend {name} is NOT checked; anyone on the \
                         network path can impersonate it (for a private CA, give tls.ca instead)",
                        name = b.name
                    ),
                )
            })
            .collect()
    }
}
