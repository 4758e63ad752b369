//! The OpenAPI description in `docs/admin-openapi.yaml` against the running
//! admin server, both ways: every served endpoint is documented and every
//! documented one is served, with the documented answers, methods and
//! token rules; paths an admin API might grow stay 404 unless documented.

use std::collections::BTreeSet;
use std::path::PathBuf;

use http::Method;
use serde_json::Value;
use serde_yaml::Value as Yaml;
use strangler_e2e::admin::{BODY, CHANGES, header, send};
use strangler_e2e::{Backend, Http, Proxy, Reply};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

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
    ("GET", "/status"),
    ("GET", "/rollouts"),
    ("GET", "/rollouts/{name}"),
    ("POST", "/rollouts/{name}/start"),
    ("POST", "/rollouts/{name}/pause"),
    ("POST", "/rollouts/{name}/resume"),
    ("POST", "/rollouts/{name}/promote"),
    ("POST", "/rollouts/{name}/abort"),
    ("GET", "/replays"),
    ("POST", "/routes/{name}/replay"),
    ("GET", "/replays/{id}"),
    ("POST", "/replays/{id}/cancel"),
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
            let concrete = o.path.replace("{name}", "api").replace("{id}", "1-1");
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
