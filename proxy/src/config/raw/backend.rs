//! `backends.NAME`: an upstream service's addresses, timeouts, Host header,
//! TLS towards it and health checks.

use schemars::JsonSchema;
use serde::Deserialize;

use super::Scalar;

/// `backends.NAME`: one upstream service. Give `url` or `urls`, not both.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawBackend {
    /// The service's URL, `http://` or `https://` with host and optional
    /// port (`http://10.0.0.5:8080`). Host names are resolved at start and
    /// again every 30s.
    pub url: Option<String>,
    /// Several URLs of one service, balanced between (instead of `url`);
    /// must not be empty.
    pub urls: Option<Vec<String>>,
    /// Longest wait for a TCP (and TLS) connection, a duration (`500ms`,
    /// `2s`, `1m`; a bare number is refused). Default `2s`.
    pub connect_timeout: Option<Scalar>,
    /// Longest wait between two reads of the answer, a duration. Default
    /// `30s`.
    pub read_timeout: Option<Scalar>,
    /// Longest wait between two writes of the request, a duration. Default
    /// `30s`.
    pub write_timeout: Option<Scalar>,
    /// How long an unused pooled connection is kept, a duration. Default
    /// `60s`.
    pub idle_timeout: Option<Scalar>,
    /// `false` sends requests without checking the backend's certificate
    /// (`check` warns; for a private CA give `tls.ca` instead). Default
    /// `true`.
    pub tls_verify: Option<bool>,
    /// The Host header sent: `preserve` (the client's), `backend` (the first
    /// URL's host) or a name such as `orders.internal[:8443]`. Default
    /// `preserve`.
    pub host: Option<String>,
    /// How the proxy speaks TLS to this backend (only for `https://` URLs).
    /// Default: the system's roots, the URL's host as SNI, no client
    /// certificate.
    pub tls: Option<RawUpstreamTls>,
    /// Active health checks of each address, and when an address is ejected
    /// and re-admitted. Default: no active checks; an address is still
    /// ejected after 3 connect failures or timeouts of real requests in a
    /// row, and tried again after 10s.
    pub health: Option<RawHealth>,
}

/// `backends.NAME.tls`: how the proxy speaks TLS to that backend.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawUpstreamTls {
    /// Path of a PEM bundle of CA certificates to trust instead of the
    /// system's (relative to this file's directory). Default: the system's
    /// roots.
    pub ca: Option<String>,
    /// Path of a PEM client certificate chain (leaf first) for mutual TLS;
    /// needs `client_key`. Default: none.
    pub client_cert: Option<String>,
    /// Path of the PEM private key of `client_cert`. Default: none.
    pub client_key: Option<String>,
    /// Name sent in SNI and checked against the certificate. Default: the
    /// URL's host.
    pub sni: Option<String>,
}

/// `backends.NAME.health`: active checks of each address. An empty block
/// (`health: {}`) turns them on with the defaults.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawHealth {
    /// Path requested by each check (`GET`); a 2xx or 3xx answer is healthy.
    /// Default `/`.
    pub path: Option<String>,
    /// Time between two checks of one address, a duration. Default `5s`.
    pub interval: Option<Scalar>,
    /// Longest wait for a check's answer, a duration. Default `1s`.
    pub timeout: Option<Scalar>,
    /// Failures in a row (checks or real requests) that eject an address, a
    /// whole number. Default `3`.
    pub unhealthy_after: Option<Scalar>,
    /// Passed checks in a row that re-admit an ejected address, a whole
    /// number. Default `2`.
    pub healthy_after: Option<Scalar>,
}
