//! The `routes.yaml` (version 1) file format, mirrored one to one in serde
//! types with `deny_unknown_fields`. Nothing here is validated beyond its
//! shape: `compile` turns these into the checked model in `model`, so the file
//! format and the engine can evolve apart.
//!
//! Shape errors are collected, not just the first one: list elements and map
//! entries are decoded one by one ([`Lenient`]), and inside an element an
//! unknown key is set aside so the rest of the element is still checked.
//!
//! The same types derive the JSON Schema `strangler schema` prints, so their
//! doc comments are what an editor shows for each key: they say what a key
//! means and what leaving it out means (the values are in `defaults`).

mod backend;
mod decode;
mod events;
mod route;
mod strict;

use schemars::JsonSchema;
use serde::Deserialize;

pub use backend::{RawBackend, RawHealth, RawUpstreamTls};
pub use decode::{Decoded, Lenient, OrderedMap, Scalar, decode_collecting, decode_strict};
pub use route::{
    RawCompare, RawFromEnv, RawGuard, RawHeaderValue, RawMatch, RawRecord, RawReplay, RawRewrite,
    RawRollout, RawRoute, RawShadow,
};

/// A Strangler configuration (`routes.yaml`, format version 1): where the
/// proxy listens, the backends it knows, how a request's tenant is found,
/// where unmatched traffic goes, and the routes that move traffic from
/// legacy to new.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Strangler routes.yaml")]
pub struct RawConfig {
    /// The file format's version. Required; must be `1`.
    pub version: Option<Scalar>,
    /// Address the proxy serves plain HTTP on, a literal `IP:PORT` (host
    /// names are refused). Default `0.0.0.0:8080`.
    pub listen: Option<String>,
    /// `true` when a load balancer in front sends a PROXY protocol header
    /// (v1 or v2) on every connection. Needs `trusted_proxies`. Default
    /// `false`.
    pub proxy_protocol: Option<bool>,
    /// Addresses or CIDR ranges (`10.0.0.0/8`) of the load balancers whose
    /// `X-Forwarded-For` or PROXY header is believed for the client address.
    /// Default: none, the peer address is the client.
    pub trusted_proxies: Option<Vec<String>>,
    /// One line per request, to stdout or a file. Default: no access log.
    pub access_log: Option<RawAccessLog>,
    /// A second listener that terminates TLS. Default: none.
    pub tls: Option<RawTls>,
    /// The admin API: health, metrics, the route table, reloads and
    /// changes.
    pub admin: Option<RawAdmin>,
    /// Where diffs, recordings and configuration history are kept:
    /// `sqlite://FILE` (a relative path is taken from this file's directory)
    /// or `postgres://...` for a fleet of proxies. Default
    /// `sqlite://strangler.db`.
    pub store: Option<String>,
    /// The upstream services, by name: routes and `default` refer to these
    /// names. At least one is required.
    #[serde(default)]
    pub backends: OrderedMap<Lenient<RawBackend>>,
    /// How a request's tenant is found, tried in order; the first that finds
    /// one wins. Each entry names exactly one source. Default: none (no
    /// request has a tenant).
    #[serde(default)]
    pub tenant: Vec<Lenient<RawTenantSource>>,
    /// The backend that serves every request no route matches, and each
    /// route's `legacy` side unless it names another. Required.
    pub default: Option<String>,
    /// The routes, matched most specific first (exact path, then longest
    /// prefix, then regex; file order breaks ties). Default: none.
    #[serde(default)]
    pub routes: Vec<Lenient<RawRoute>>,
}

/// `tls`: a listener that terminates TLS with one certificate.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    /// Address of the TLS listener, a literal `IP:PORT`. Required.
    pub listen: String,
    /// Path of the PEM certificate chain, leaf first. Required.
    pub cert: String,
    /// Path of the PEM private key of `cert`. Required.
    pub key: String,
}

/// `access_log`: where request lines go and how they are written.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAccessLog {
    /// `stdout` (or `-`), or the path of a file to append to. Required in
    /// the block.
    pub path: Option<String>,
    /// `json` (one object per line) or `combined` (Apache/nginx combined
    /// log format). Default `json`.
    pub format: Option<String>,
}

/// `admin`: the admin API's listener and the token that guards changes.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    /// Address of the admin API, a literal `IP:PORT`. Anything but loopback
    /// needs `token_env`. Default `127.0.0.1:9901`.
    pub listen: Option<String>,
    /// Name of the environment variable holding the bearer token that
    /// every change through the admin API requires (`Authorization: Bearer
    /// <token>`). Default: none, and then changes are refused (403); reading
    /// stays open.
    pub token_env: Option<String>,
}

/// One way of finding a request's tenant; exactly one key is set.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTenantSource {
    /// A request header whose value is the tenant (e.g. `X-Tenant-Id`).
    pub header: Option<String>,
    /// Index of the host name's label that is the tenant, 0 the leftmost
    /// (`acme.shop.example.com` with 0 is `acme`); 0 to 16.
    pub host_label: Option<Scalar>,
    /// A cookie whose value is the tenant.
    pub cookie: Option<String>,
    /// A claim of the bearer JWT in `Authorization` (read, not verified:
    /// routing only, never authorization).
    pub jwt_claim: Option<String>,
}
