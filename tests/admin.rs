//! The admin listener: health, readiness, metrics, routes, the token rules
//! for changes (every mutating endpoint, every way of getting the credential
//! wrong, and proof that a refused request changed nothing), and the OpenAPI
//! description in `docs/admin-openapi.yaml` against the running server.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine;
use http::Method;
use serde_json::Value;
use serde_yaml::Value as Yaml;
use strangler_e2e::proxy::{TOKEN, write_atomically};
use strangler_e2e::{Backend, Http, Proxy, Reply, eventually};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

async fn send(
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

fn header<'a>(r: &'a Reply, name: &str) -> &'a str {
    r.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_endpoints_answer_without_a_token() {
    let b = Backend::start("legacy").await;
    let n = Backend::start("new").await;
    let proxy = Proxy::start(&format!(
        "backends:\n  legacy: {{ url: \"{}\" }}\n  new: {{ url: \"{}\" }}\ndefault: legacy\nroutes:\n  - name: api\n    match: {{ path: /api, methods: [GET] }}\n    new: new\n    canary: 12.5\n    tenants: {{ acme: new }}\n",
        b.url(),
        n.url()
    ))
    .await;
    let http = Http::new();
    assert_eq!(
        http.get(&proxy.admin_url("/healthz"), &[]).await.status,
        200
    );
    assert_eq!(http.get(&proxy.admin_url("/readyz"), &[]).await.status, 200);
    let metrics = http.get(&proxy.admin_url("/metrics"), &[]).await;
    assert_eq!(metrics.status, 200);
    assert!(metrics.text().contains("strangler_config_version 1"));
    let routes = http.get(&proxy.admin_url("/routes"), &[]).await.json();
    assert_eq!(routes["version"], 1);
    assert_eq!(routes["default"], "legacy");
    let api = &routes["routes"][0];
    assert_eq!(api["name"], "api");
    assert_eq!(api["canary"], 12.5);
    assert_eq!(api["match"]["path"], "/api");
    assert_eq!(api["tenants"]["acme"], "new");
    assert_eq!(http.get(&proxy.admin_url("/nope"), &[]).await.status, 404);
}

// ---------------------------------------------------------------------------
// Mutating endpoints: the token rules, table-driven.
// ---------------------------------------------------------------------------

/// Every mutating endpoint of the admin API, with a body that would make a
/// change if it were accepted. `openapi_document_matches_the_server` checks
/// that every operation the OpenAPI file marks as secured is in this table.
const CHANGES: &[(&str, &str)] = &[
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
];

/// Methods other than POST, each of which must get 405 on a change endpoint.
const NOT_POST: &[&str] = &["GET", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS"];

/// One wrong way of presenting the credential.
struct BadCredential {
    what: &'static str,
    headers: Vec<(&'static str, String)>,
    /// Appended to the URL.
    query: String,
}

fn bad(what: &'static str, authorization: &str) -> BadCredential {
    BadCredential {
        what,
        headers: vec![("authorization", authorization.to_string())],
        query: String::new(),
    }
}

fn bad_credentials() -> Vec<BadCredential> {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let mut off_first = TOKEN.to_string();
    off_first.replace_range(0..1, "T");
    let mut off_last = TOKEN.to_string();
    off_last.pop();
    off_last.push('X');
    let right = format!("Bearer {TOKEN}");
    vec![
        BadCredential {
            what: "no Authorization header",
            headers: vec![],
            query: String::new(),
        },
        bad("wrong token", "Bearer wrong"),
        bad(
            "Basic, token as password",
            &format!("Basic {}", b64(&format!("admin:{TOKEN}"))),
        ),
        bad("Basic, token encoded", &format!("Basic {}", b64(TOKEN))),
        bad("Basic, token in clear", &format!("Basic {TOKEN}")),
        bad("other scheme", &format!("Token {TOKEN}")),
        bad("Digest scheme", &format!("Digest {TOKEN}")),
        bad("empty bearer", "Bearer "),
        bad("scheme alone", "Bearer"),
        bad("bearer of spaces", "Bearer     "),
        bad("empty header", ""),
        bad("token without a scheme", TOKEN),
        bad("no space after the scheme", &format!("Bearer{TOKEN}")),
        bad(
            "prefix of the token",
            &format!("Bearer {}", &TOKEN[..TOKEN.len() - 1]),
        ),
        bad(
            "first byte of the token",
            &format!("Bearer {}", &TOKEN[..1]),
        ),
        bad("token plus one byte", &format!("Bearer {TOKEN}x")),
        bad("token plus a word", &format!("Bearer {TOKEN}-and-more")),
        bad("token twice", &format!("Bearer {TOKEN}{TOKEN}")),
        bad("token, comma, token", &format!("Bearer {TOKEN},{TOKEN}")),
        bad("first byte off", &format!("Bearer {off_first}")),
        bad("last byte off", &format!("Bearer {off_last}")),
        bad(
            "token in upper case",
            &format!("Bearer {}", TOKEN.to_uppercase()),
        ),
        bad("token plus an escape", &format!("Bearer {TOKEN}%00")),
        BadCredential {
            what: "token in the query",
            headers: vec![],
            query: format!("?access_token={TOKEN}&token={TOKEN}"),
        },
        BadCredential {
            what: "token in other headers",
            headers: vec![
                ("x-admin-token", TOKEN.to_string()),
                ("proxy-authorization", right.clone()),
                ("cookie", format!("token={TOKEN}")),
            ],
            query: String::new(),
        },
        BadCredential {
            what: "two Authorization headers, the right one first",
            headers: vec![
                ("authorization", right.clone()),
                ("authorization", "Bearer wrong".to_string()),
            ],
            query: String::new(),
        },
        BadCredential {
            what: "two Authorization headers, the right one second",
            headers: vec![
                ("authorization", "Bearer wrong".to_string()),
                ("authorization", right.clone()),
            ],
            query: String::new(),
        },
        BadCredential {
            what: "two Authorization headers, both right",
            headers: vec![("authorization", right.clone()), ("authorization", right)],
            query: String::new(),
        },
    ]
}

const BODY: &str = r#"
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
  - name: web
    match: { path: /web }
    new: new
    canary: 30
"#;

/// A full template; `token_env` is the `admin.token_env` line, if any. The
/// file is only re-read on request (`--watch-interval 1h`), so a test can
/// put a different file on disk and see whether a refused reload read it.
async fn start(token_env: Option<&str>) -> (Proxy, Backend, Backend) {
    let legacy = Backend::start("legacy").await;
    let new = Backend::start("new").await;
    let token = token_env
        .map(|t| format!("  token_env: {t}\n"))
        .unwrap_or_default();
    let template = format!(
        "version: 1\nlisten: 127.0.0.1:{{listen}}\nadmin:\n  listen: 127.0.0.1:{{admin}}\n{token}store: sqlite://{{dir}}/strangler.db\n{}",
        BODY.replace("LEGACY", &legacy.url())
            .replace("NEW", &new.url())
    );
    let proxy = Proxy::start_with(&template, &["--watch-interval", "1h"]).await;
    history_recorded(&proxy).await;
    (proxy, legacy, new)
}

/// Waits until the store is connected and holds the starting version: both
/// happen in the background after `/readyz` turns 200, and would otherwise
/// look like an effect of the requests under test.
async fn history_recorded(proxy: &Proxy) {
    let http = Http::new();
    let url = proxy.admin_url("/history");
    let recorded = eventually(Duration::from_secs(10), || async {
        let r = http.get(&url, &[]).await;
        (r.status == 200
            && r.json()["versions"]
                .as_array()
                .is_some_and(|v| !v.is_empty()))
        .then_some(())
    })
    .await;
    assert!(
        recorded.is_some(),
        "version 1 never recorded:\n{}",
        proxy.logs()
    );
}

/// Everything a change could touch, as seen from outside.
#[derive(Debug, PartialEq)]
struct Observed {
    version: u64,
    digest: Value,
    routes: Value,
    file: String,
    reloads: f64,
    rollbacks: f64,
    versions: usize,
    audit: usize,
}

async fn observe(proxy: &Proxy) -> Observed {
    let http = Http::new();
    let table = proxy.routes().await;
    let metrics = proxy.metrics().await;
    let history = http.get(&proxy.admin_url("/history?limit=1000"), &[]).await;
    assert_eq!(history.status, 200, "{}", history.text());
    let history = history.json();
    Observed {
        version: table["version"].as_u64().expect("version"),
        digest: table["digest"].clone(),
        routes: table["routes"].clone(),
        file: std::fs::read_to_string(&proxy.config_path).expect("config file"),
        reloads: metrics.sum("strangler_config_reloads_total", &[]),
        rollbacks: metrics.sum("strangler_rollbacks_total", &[]),
        versions: history["versions"].as_array().map_or(0, Vec::len),
        audit: history["audit"].as_array().map_or(0, Vec::len),
    }
}

/// Puts a valid but different file on disk (api at 77 %), which a reload
/// would pick up.
fn change_file_on_disk(proxy: &Proxy) {
    let text = std::fs::read_to_string(&proxy.config_path).unwrap();
    assert!(text.contains("canary: 10"));
    write_atomically(
        &proxy.config_path,
        &text.replace("canary: 10", "canary: 77"),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_endpoint_refuses_bad_credentials_and_other_methods() {
    let (proxy, ..) = start(Some("STRANGLER_ADMIN_TOKEN")).await;
    let http = Http::new();
    change_file_on_disk(&proxy);
    let before = observe(&proxy).await;
    assert_eq!(before.version, 1);
    let credentials = bad_credentials();
    let mut checked = 0;
    for (path, body) in CHANGES {
        for c in &credentials {
            let url = proxy.admin_url(&format!("{path}{}", c.query));
            let headers: Vec<(&str, &str)> =
                c.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let r = send(&http, &Method::POST, &url, &headers, body.as_bytes()).await;
            let what = format!("POST {path} {body} with {}", c.what);
            assert_eq!(r.status, 401, "{what}: {}", r.text());
            assert_eq!(header(&r, "www-authenticate"), "Bearer", "{what}");
            assert_eq!(header(&r, "content-type"), "application/json", "{what}");
            assert!(r.json()["error"].is_string(), "{what}");
            checked += 1;
        }
        // A change is never made by another method, even with the token.
        let (k, v) = Proxy::auth_header();
        for m in NOT_POST {
            let method = Method::from_bytes(m.as_bytes()).unwrap();
            let r = send(&http, &method, &proxy.admin_url(path), &[(k, &v)], b"").await;
            assert_eq!(r.status, 405, "{m} {path}: {}", r.text());
            assert_eq!(header(&r, "allow"), "POST", "{m} {path}");
            checked += 1;
        }
        assert_eq!(
            observe(&proxy).await,
            before,
            "after the refusals on {path}"
        );
    }
    println!("{checked} refused requests, no effect");
    println!("suite: admin API change attempts without the token: {checked} vectors, lost 0");

    // The same observation does see a change that is let through: the
    // refusals above were refusals, not a blind spot.
    let (k, v) = Proxy::auth_header();
    let r = http
        .post(&proxy.admin_url("/reload"), &[(k, &v)], b"")
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["version"], 2);
    let after_reload = observe(&proxy).await;
    assert_eq!(after_reload.version, 2);
    assert_eq!(proxy.canary("api").await, 77.0);
    let r = http
        .post(
            &proxy.admin_url("/routes/api/canary"),
            &[(k, &v)],
            br#"{"percent": 50}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(proxy.canary("api").await, 50.0);
    let r = http
        .post(
            &proxy.admin_url("/rollback"),
            &[(k, &v)],
            br#"{"routes": ["api"]}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let after = observe(&proxy).await;
    assert_eq!(after.version, 4);
    assert!(after.rollbacks > before.rollbacks);
    assert!(after.audit > before.audit);
    assert_ne!(after.file, before.file);
}

/// With no token configured every change is refused with 403, whatever the
/// request presents, and nothing changes.
async fn changes_are_forbidden(proxy: &Proxy) {
    let http = Http::new();
    change_file_on_disk(proxy);
    let before = observe(proxy).await;
    let right = format!("Bearer {TOKEN}");
    let presented: [&[(&str, &str)]; 4] = [
        &[],
        &[("authorization", &right)],
        &[("authorization", "Bearer wrong")],
        &[("authorization", "Bearer ")],
    ];
    for (path, body) in CHANGES {
        for headers in presented {
            let r = send(
                &http,
                &Method::POST,
                &proxy.admin_url(path),
                headers,
                body.as_bytes(),
            )
            .await;
            assert_eq!(r.status, 403, "POST {path} with {headers:?}: {}", r.text());
            assert_eq!(header(&r, "content-type"), "application/json");
            assert!(r.text().contains("token_env"), "{}", r.text());
        }
        let r = send(
            &http,
            &Method::GET,
            &proxy.admin_url(path),
            &[("authorization", &right)],
            b"",
        )
        .await;
        assert_eq!(r.status, 405, "GET {path}");
        assert_eq!(header(&r, "allow"), "POST");
    }
    assert_eq!(observe(proxy).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_configured_token_changes_are_forbidden() {
    let (proxy, ..) = start(None).await;
    changes_are_forbidden(&proxy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_env_naming_an_unset_variable_forbids_changes() {
    let (proxy, ..) = start(Some("STRANGLER_ADMIN_TOKEN_THAT_IS_NOT_SET")).await;
    changes_are_forbidden(&proxy).await;
}

// ---------------------------------------------------------------------------
// docs/admin-openapi.yaml against the running server.
// ---------------------------------------------------------------------------

/// Every (method, path) the admin server serves. Kept by hand; the test also
/// scans the dispatcher in `proxy/src/admin/mod.rs` for path literals and
/// probes the server for paths that are not here, so an endpoint added
/// without documentation fails.
const SERVED: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/routes"),
    ("POST", "/reload"),
    ("POST", "/routes/{name}/canary"),
    ("POST", "/rollback"),
    ("GET", "/history"),
    ("GET", "/report"),
    ("GET", "/report/route/{name}"),
    ("GET", "/api/report"),
    ("GET", "/api/diffs"),
];

/// Paths an admin API might plausibly grow; each must stay a 404 unless
/// documented.
const PROBES: &[&str] = &[
    "/",
    "/admin",
    "/api",
    "/api/routes",
    "/api/history",
    "/api/reload",
    "/api/rollback",
    "/audit",
    "/backends",
    "/canary",
    "/config",
    "/debug",
    "/debug/pprof",
    "/fleet",
    "/guard",
    "/health",
    "/ready",
    "/report/route",
    "/routes/api",
    "/routes/api/rollback",
    "/routes/api/tenants",
    "/shadow",
    "/shutdown",
    "/status",
    "/stats",
    "/store",
    "/tenants",
    "/version",
    "/healthz/",
    "/reload/",
    "/rollback/",
];

const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"];

/// Follows a local `$ref` (`#/components/...`).
fn resolve<'a>(doc: &'a Yaml, v: &'a Yaml) -> &'a Yaml {
    let Some(r) = v.get("$ref").and_then(Yaml::as_str) else {
        return v;
    };
    let mut at = doc;
    for part in r.trim_start_matches("#/").split('/') {
        at = at.get(part).unwrap_or_else(|| panic!("dangling $ref {r}"));
    }
    resolve(doc, at)
}

fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

struct Operation<'a> {
    method: String,
    path: String,
    op: &'a Yaml,
}

fn operations(doc: &Yaml) -> Vec<Operation<'_>> {
    let mut out = Vec::new();
    let paths = doc["paths"].as_mapping().expect("paths");
    for (path, item) in paths {
        let path = path.as_str().expect("path").to_string();
        let item = item.as_mapping().expect("path item");
        for (method, op) in item {
            let method = method.as_str().unwrap();
            if METHODS.contains(&method.to_ascii_uppercase().as_str()) || method == "trace" {
                out.push(Operation {
                    method: method.to_ascii_uppercase(),
                    path: path.clone(),
                    op,
                });
            }
        }
    }
    out
}

fn secured(doc: &Yaml, op: &Yaml) -> bool {
    let security = op.get("security").or_else(|| doc.get("security"));
    security
        .and_then(Yaml::as_sequence)
        .is_some_and(|s| s.iter().any(|req| req.get("bearerAuth").is_some()))
}

/// The documented parameters of an operation (path-level ones included).
fn parameters<'a>(doc: &'a Yaml, item: &'a Yaml, op: &'a Yaml) -> Vec<&'a Yaml> {
    let mut out = Vec::new();
    for list in [item.get("parameters"), op.get("parameters")]
        .into_iter()
        .flatten()
    {
        for p in list.as_sequence().expect("parameters") {
            out.push(resolve(doc, p));
        }
    }
    out
}

fn yaml_to_json(v: &Yaml) -> Value {
    serde_json::to_value(v).expect("YAML example as JSON")
}

/// Checks an answer against the operation's documented responses.
fn check_answer(doc: &Yaml, what: &str, op: &Yaml, r: &Reply) {
    let responses = op["responses"].as_mapping().expect("responses");
    let documented: Vec<String> = responses
        .keys()
        .map(|k| match k {
            Yaml::String(s) => s.clone(),
            Yaml::Number(n) => n.to_string(),
            other => panic!("{what}: response key {other:?}"),
        })
        .collect();
    let status = r.status.to_string();
    let key = if documented.contains(&status) {
        status
    } else {
        assert!(
            documented.iter().any(|k| k == "default"),
            "{what}: answered {} which is not documented ({documented:?}): {}",
            r.status,
            r.text()
        );
        "default".to_string()
    };
    let response = resolve(doc, &op["responses"][key.as_str()]);
    assert!(
        response["description"].is_string(),
        "{what}: response {key} needs a description"
    );
    let got = media_type(header(r, "content-type"));
    match response.get("content").and_then(Yaml::as_mapping) {
        Some(content) => {
            let types: Vec<String> = content
                .keys()
                .map(|k| media_type(k.as_str().unwrap()))
                .collect();
            assert!(
                types.contains(&got),
                "{what}: {} answered with content type {got:?}, documented {types:?}",
                r.status
            );
            let media = &content[got.as_str()];
            if got == "application/json" {
                let body = r.json();
                let schema = media.get("schema").map(|s| resolve(doc, s));
                if let Some(required) = schema
                    .and_then(|s| s.get("required"))
                    .and_then(Yaml::as_sequence)
                {
                    for field in required {
                        let field = field.as_str().unwrap();
                        assert!(
                            body.get(field).is_some(),
                            "{what}: {} answer lacks documented field {field}: {body}",
                            r.status
                        );
                    }
                }
            }
        }
        None => assert!(r.body.is_empty(), "{what}: undocumented body"),
    }
    if let Some(headers) = response.get("headers").and_then(Yaml::as_mapping) {
        for name in headers.keys() {
            let name = name.as_str().unwrap();
            assert!(
                r.headers.contains_key(name.to_ascii_lowercase().as_str()),
                "{what}: {} answer lacks documented header {name}",
                r.status
            );
        }
    }
}

/// String literals that look like paths in the request dispatcher of
/// `proxy/src/admin/mod.rs`.
fn dispatched_path_literals() -> BTreeSet<String> {
    let source = std::fs::read_to_string(repo().join("proxy/src/admin/mod.rs")).unwrap();
    let start = source
        .find("impl ServeHttp for AdminApp")
        .expect("the dispatcher in proxy/src/admin/mod.rs");
    let block = &source[start..];
    let end = block.find("\nasync fn ").unwrap_or(block.len());
    let literal = regex::Regex::new(r#""(/[^"\s{}]*)""#).unwrap();
    literal
        .captures_iter(&block[..end])
        .map(|c| c[1].to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_matches_the_server() {
    let file = repo().join("docs/admin-openapi.yaml");
    let doc: Yaml = serde_yaml::from_str(&std::fs::read_to_string(&file).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.0")),
        "an OpenAPI 3.0 document"
    );
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    let scheme = &doc["components"]["securitySchemes"]["bearerAuth"];
    assert_eq!(scheme["type"].as_str(), Some("http"));
    assert_eq!(scheme["scheme"].as_str(), Some("bearer"));

    let ops = operations(&doc);
    let documented: BTreeSet<(String, String)> = ops
        .iter()
        .map(|o| (o.method.clone(), o.path.clone()))
        .collect();
    let served: BTreeSet<(String, String)> = SERVED
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    let undocumented: Vec<_> = served.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "served but not documented: {undocumented:?}"
    );
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(
        unserved.is_empty(),
        "documented but not in SERVED: {unserved:?}"
    );

    // Every path the dispatcher names belongs to a documented path.
    for literal in dispatched_path_literals() {
        assert!(
            documented.iter().any(|(_, p)| p.contains(&literal)),
            "proxy/src/admin/mod.rs dispatches {literal:?}, which no documented path contains"
        );
    }

    // Every secured operation is refused without the token, and is in the
    // CHANGES table of the credential tests; every operation that changes
    // something is secured.
    for o in &ops {
        let secured = secured(&doc, o.op);
        assert_eq!(
            secured,
            o.method != "GET",
            "{} {}: every change and only changes need the token",
            o.method,
            o.path
        );
        if secured {
            let concrete = o.path.replace("{name}", "api");
            assert!(
                CHANGES.iter().any(|(p, _)| *p == concrete),
                "{} {} is not in the CHANGES table",
                o.method,
                o.path
            );
            assert!(
                o.op["responses"].get("401").is_some() && o.op["responses"].get("403").is_some(),
                "{} {}: 401 and 403 documented",
                o.method,
                o.path
            );
        }
    }

    let legacy = Backend::start("legacy").await;
    let new = Backend::start("new").await;
    let proxy = Proxy::start(
        &BODY
            .replace("LEGACY", &legacy.url())
            .replace("NEW", &new.url()),
    )
    .await;
    let http = Http::new();
    let (k, v) = Proxy::auth_header();
    let paths = doc["paths"].as_mapping().unwrap();
    for o in &ops {
        let item = &paths[o.path.as_str()];
        let what = format!("{} {}", o.method, o.path);
        let mut path = o.path.clone();
        let mut query = Vec::new();
        for p in parameters(&doc, item, o.op) {
            let name = p["name"].as_str().expect("parameter name");
            let example = p.get("example").map(yaml_to_json);
            match p["in"].as_str() {
                Some("path") => {
                    assert_eq!(p["required"].as_bool(), Some(true), "{what}: {name}");
                    let example = example.unwrap_or_else(|| {
                        panic!("{what}: path parameter {name} needs an example")
                    });
                    let value = example.as_str().map_or(example.to_string(), str::to_string);
                    path = path.replace(&format!("{{{name}}}"), &value);
                }
                Some("query") => {
                    if let Some(e) = example {
                        let value = e.as_str().map_or(e.to_string(), str::to_string);
                        query.push(format!("{name}={value}"));
                    }
                }
                other => panic!("{what}: parameter {name} in {other:?}"),
            }
        }
        assert!(!path.contains('{'), "{what}: unresolved path parameter");
        let url = if query.is_empty() {
            proxy.admin_url(&path)
        } else {
            proxy.admin_url(&format!("{path}?{}", query.join("&")))
        };
        let body = match o.op.get("requestBody") {
            Some(rb) => {
                let rb = resolve(&doc, rb);
                let example = &rb["content"]["application/json"]["example"];
                assert!(!example.is_null(), "{what}: request body needs an example");
                serde_json::to_vec(&yaml_to_json(example)).unwrap()
            }
            None => Vec::new(),
        };
        let method = Method::from_bytes(o.method.as_bytes()).unwrap();
        let secured = secured(&doc, o.op);
        if secured {
            let r = send(&http, &method, &url, &[], &body).await;
            assert_eq!(r.status, 401, "{what} without the token: {}", r.text());
            check_answer(&doc, &format!("{what} without the token"), o.op, &r);
        }
        let headers: Vec<(&str, &str)> = if secured { vec![(k, &v)] } else { vec![] };
        let r = send(&http, &method, &url, &headers, &body).await;
        println!("{what} ({url}) -> {}", r.status);
        check_answer(&doc, &what, o.op, &r);
    }

    // Methods not documented for a path get 405 and an Allow header naming
    // exactly the documented ones.
    for (path, item) in paths {
        let template = path.as_str().unwrap();
        let concrete = template.replace("{name}", "api");
        let allowed: BTreeSet<String> = item
            .as_mapping()
            .unwrap()
            .keys()
            .map(|m| m.as_str().unwrap().to_ascii_uppercase())
            .filter(|m| METHODS.contains(&m.as_str()))
            .collect();
        for m in METHODS {
            if allowed.contains(*m) {
                continue;
            }
            let method = Method::from_bytes(m.as_bytes()).unwrap();
            let r = send(&http, &method, &proxy.admin_url(&concrete), &[(k, &v)], b"").await;
            assert_eq!(r.status, 405, "{m} {concrete}: {}", r.text());
            let allow: BTreeSet<String> = header(&r, "allow")
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
            assert_eq!(allow, allowed, "Allow of {m} {concrete}");
        }
    }

    // Paths that are not documented are not served, whatever the method.
    for probe in PROBES {
        assert!(
            !documented.iter().any(|(_, p)| p == probe),
            "{probe} is documented: remove it from PROBES"
        );
        for m in ["GET", "POST"] {
            let method = Method::from_bytes(m.as_bytes()).unwrap();
            let r = send(&http, &method, &proxy.admin_url(probe), &[(k, &v)], b"{}").await;
            assert_eq!(
                r.status,
                404,
                "{m} {probe} answers {} but is not in docs/admin-openapi.yaml: {}",
                r.status,
                r.text()
            );
        }
    }
}
