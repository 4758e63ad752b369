//! The admin listener: health, readiness, metrics, routes, and the token
//! rules for changes (every mutating endpoint, every way of getting the
//! credential wrong, and proof that a refused request changed nothing).
//! The OpenAPI description is checked against the server in
//! `admin_openapi.rs`.

use std::time::Duration;

use base64::Engine;
use http::Method;
use serde_json::Value;
use strangler_e2e::admin::{BODY, CHANGES, header, send};
use strangler_e2e::proxy::{TOKEN, write_atomically};
use strangler_e2e::{Backend, Http, Proxy, eventually};

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
