//! Tenants and canary shares through the real proxy.

use base64::Engine;
use strangler_e2e::{Backend, Http, Proxy};

async fn setup(canary: f64, sticky: &str) -> (Proxy, Backend, Backend) {
    let legacy = Backend::start("legacy").await;
    let new = Backend::start("new").await;
    let proxy = Proxy::start(&format!(
        r#"
backends:
  legacy: {{ url: "{}" }}
  new: {{ url: "{}" }}
tenant:
  - header: X-Tenant-Id
  - host_label: 0
  - cookie: tenant
  - jwt_claim: tid
default: legacy
routes:
  - name: api
    match: {{ path: /api }}
    new: new
    canary: {canary}
    sticky: {sticky}
    tenants: {{ acme: new, initech: legacy, umbrella: new, globex: new }}
"#,
        legacy.url(),
        new.url()
    ))
    .await;
    (proxy, legacy, new)
}

fn jwt(claims: &str) -> String {
    let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!(
        "Bearer {}.{}.c2ln",
        e.encode(r#"{"alg":"HS256"}"#),
        e.encode(claims)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tenant_source_pins() {
    // Canary 0: only a pin can send a request to `new`.
    let (proxy, ..) = setup(0.0, "tenant").await;
    let http = Http::new();
    let url = proxy.url("/api/x");
    assert_eq!(
        http.get(&url, &[("x-tenant-id", "acme")]).await.backend(),
        "new"
    );
    assert_eq!(
        http.get(&url, &[("host", "umbrella.shop.example.com")])
            .await
            .backend(),
        "new"
    );
    assert_eq!(
        http.get(&url, &[("cookie", "a=b; tenant=globex")])
            .await
            .backend(),
        "new"
    );
    let token = jwt(r#"{"tid":"acme","sub":"u1"}"#);
    assert_eq!(
        http.get(&url, &[("authorization", &token)]).await.backend(),
        "new"
    );
    // First hit wins: the header names initech (legacy) before the cookie's acme.
    let first = http
        .get(
            &url,
            &[("x-tenant-id", "initech"), ("cookie", "tenant=acme")],
        )
        .await;
    assert_eq!(first.backend(), "legacy");
    assert_eq!(
        http.get(&url, &[("x-tenant-id", "nobody")]).await.backend(),
        "legacy"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pins_beat_a_full_canary() {
    let (proxy, ..) = setup(100.0, "tenant").await;
    let http = Http::new();
    let url = proxy.url("/api/x");
    assert_eq!(
        http.get(&url, &[("x-tenant-id", "initech")])
            .await
            .backend(),
        "legacy"
    );
    assert_eq!(
        http.get(&url, &[("x-tenant-id", "someone")])
            .await
            .backend(),
        "new"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_share_follows_the_setting_and_tenants_are_sticky() {
    let (proxy, ..) = setup(25.0, "tenant").await;
    let http = Http::new();
    let url = proxy.url("/api/x");
    let n = 2000;
    let mut first = Vec::with_capacity(n);
    for i in 0..n {
        let t = format!("tenant-{i}");
        first.push(http.get(&url, &[("x-tenant-id", &t)]).await.backend());
    }
    let share = first.iter().filter(|b| *b == "new").count() as f64 * 100.0 / n as f64;
    // 2000 keys at 25%: the standard deviation is about 1 point.
    assert!((share - 25.0).abs() < 3.5, "share {share}");
    // The same tenant lands on the same side again.
    for (i, expected) in first.iter().enumerate().take(300) {
        let t = format!("tenant-{i}");
        assert_eq!(
            &http.get(&url, &[("x-tenant-id", &t)]).await.backend(),
            expected,
            "{t}"
        );
    }
    let m = proxy.metrics_settled().await;
    let new = m.sum(
        "strangler_requests_total",
        &[("route", "api"), ("side", "new")],
    );
    let all = m.sum("strangler_requests_total", &[("route", "api")]);
    assert_eq!(all, (n + 300) as f64);
    assert!(new > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_by_header_and_random_draws() {
    let (proxy, ..) = setup(50.0, "header:X-User").await;
    let http = Http::new();
    let url = proxy.url("/api/x");
    let a = http.get(&url, &[("x-user", "u-42")]).await.backend();
    for _ in 0..20 {
        assert_eq!(http.get(&url, &[("x-user", "u-42")]).await.backend(), a);
    }
    drop(proxy);

    let (proxy, ..) = setup(50.0, "none").await;
    let url = proxy.url("/api/x");
    let mut new = 0;
    for _ in 0..400 {
        if http.get(&url, &[("x-tenant-id", "same")]).await.backend() == "new" {
            new += 1;
        }
    }
    // sticky: none ignores the key: about half of the same tenant's requests.
    assert!((120..=280).contains(&new), "{new} of 400");
}
