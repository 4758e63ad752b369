//! The admin listener: health, readiness, metrics, routes, and the token
//! rules for changes.

use strangler_e2e::{Backend, Http, Proxy};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_need_the_token() {
    let b = Backend::start("legacy").await;
    let proxy = Proxy::start(&format!(
        "backends:\n  legacy: {{ url: \"{}\" }}\ndefault: legacy\n",
        b.url()
    ))
    .await;
    let http = Http::new();
    let url = proxy.admin_url("/reload");
    let r = http.post(&url, &[], b"").await;
    assert_eq!(r.status, 401);
    assert_eq!(r.headers["www-authenticate"], "Bearer");
    assert_eq!(
        http.post(&url, &[("authorization", "Bearer wrong")], b"")
            .await
            .status,
        401
    );
    assert_eq!(
        http.post(&url, &[("authorization", "Basic dGVzdA==")], b"")
            .await
            .status,
        401
    );
    let (k, v) = Proxy::auth_header();
    assert_eq!(http.post(&url, &[(k, &v)], b"").await.status, 200);
    // A change is never made by GET.
    let get = http.get(&url, &[(k, &v)]).await;
    assert_eq!(get.status, 405);
    assert_eq!(get.headers["allow"], "POST");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_configured_token_changes_are_forbidden() {
    let b = Backend::start("legacy").await;
    let template = format!(
        "version: 1\nlisten: 127.0.0.1:{{listen}}\nadmin: {{ listen: \"127.0.0.1:{{admin}}\" }}\nbackends:\n  legacy: {{ url: \"{}\" }}\ndefault: legacy\n",
        b.url()
    );
    let proxy = Proxy::start_template(&template).await;
    let (k, v) = Proxy::auth_header();
    let r = Http::new()
        .post(&proxy.admin_url("/reload"), &[(k, &v)], b"")
        .await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("token_env"));
}
