//! What the admin API tests (`admin.rs`, `admin_openapi.rs`) share: the
//! table of every mutating endpoint, the configuration both start the proxy
//! with, and two small helpers for sending a request and reading a header.

use http::Method;

use crate::client::{Http, Reply};

/// Sends a request; a transport error fails the test, naming the request.
pub async fn send(
    http: &Http,
    method: &Method,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    http.send(method.clone(), url, headers, body)
        .await
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"))
}

/// A header of the answer as text, empty when absent.
pub fn header<'a>(r: &'a Reply, name: &str) -> &'a str {
    r.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// Every mutating endpoint of the admin API, with a body that would make a
/// change if it were accepted. `openapi_document_matches_the_server`
/// (`admin_openapi.rs`) checks that every operation the OpenAPI file marks
/// as secured is in this table.
pub const CHANGES: &[(&str, &str)] = &[
    ("/reload", ""),
    (
        "/routes/api/canary",
        r#"{"percent": 50, "reason": "refused?"}"#,
    ),
    ("/routes/web/canary", r#"{"percent": 0}"#),
    ("/rollback", r#"{"routes": ["api"], "reason": "refused?"}"#),
    ("/rollback", r#"{"all": true}"#),
    ("/rollback", r#"{"routes": ["web"], "tenant": "acme"}"#),
    ("/rollback", r#"{"to_version": 1}"#),
    ("/rollouts/api/start", r#"{"reason": "refused?"}"#),
    ("/rollouts/api/pause", ""),
    ("/rollouts/api/resume", ""),
    ("/rollouts/api/promote", r#"{"reason": "refused?"}"#),
    ("/rollouts/api/abort", ""),
    ("/routes/api/replay", r#"{"to": "new", "rate": 0}"#),
    ("/replays/1-1/cancel", ""),
];

/// The configuration of the admin tests, without its listeners and store:
/// two routes (`api` with a tenant and a manual rollout, `web`) from `LEGACY` to `NEW`, URLs a
/// test puts in.
pub const BODY: &str = r#"
backends:
  legacy: { url: "LEGACY" }
  new: { url: "NEW" }
tenant:
  - header: X-Tenant-Id
default: legacy
routes:
  - name: api
    match: { path: /api }
    new: new
    canary: 10
    tenants: { acme: new }
    rollout: { steps: [50, 100], pause: 1h, require: [] }
    record: { percent: 100 }
  - name: web
    match: { path: /web }
    new: new
    canary: 30
"#;
