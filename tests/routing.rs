//! Routing end to end: the real binary picks routes, normalizes paths, sets
//! forwarding headers and refuses ambiguous requests.

use std::time::Duration;
use strangler_e2e::client::raw_exchange;
use strangler_e2e::{Backend, Http, Proxy};

async fn setup() -> (Proxy, Backend, Backend, Backend) {
    let monolith = Backend::start("monolith").await;
    let orders = Backend::start("orders").await;
    let search = Backend::start("search").await;
    let proxy = Proxy::start(&format!(
        r#"
backends:
  monolith: {{ url: "{}" }}
  orders: {{ url: "{}" }}
  search: {{ url: "{}" }}
default: monolith
routes:
  - name: orders-read
    match: {{ path: /api/orders, methods: [GET, HEAD] }}
    new: orders
    canary: 100
  - name: orders-export
    match: {{ path_exact: /api/orders/export }}
    new: search
    canary: 100
  - name: search
    match: {{ path_regex: "^/search(/|$)" }}
    new: search
    canary: 100
  - name: beta
    match: {{ path: /beta, headers: {{ X-Beta: "1" }} }}
    new: orders
    canary: 100
  - name: shop
    match: {{ path: /cart, host: "*.shop.example.com" }}
    new: orders
    canary: 100
"#,
        monolith.url(),
        orders.url(),
        search.url()
    ))
    .await;
    (proxy, monolith, orders, search)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_go_to_the_most_specific_route() {
    let (proxy, ..) = setup().await;
    let http = Http::new();
    type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
        ("GET", "/api/orders", &[], "orders"),
        ("GET", "/api/orders/17", &[], "orders"),
        ("HEAD", "/api/orders/17", &[], "orders"),
        ("POST", "/api/orders", &[], "monolith"),
        ("GET", "/api/ordersX", &[], "monolith"),
        ("GET", "/api/orders/export", &[], "search"),
        ("GET", "/search/q", &[], "search"),
        ("GET", "/searching", &[], "monolith"),
        ("GET", "/beta/x", &[("x-beta", "1")], "orders"),
        ("GET", "/beta/x", &[("x-beta", "2")], "monolith"),
        (
            "GET",
            "/cart",
            &[("host", "acme.shop.example.com")],
            "orders",
        ),
        ("GET", "/cart", &[("host", "shop.example.com")], "monolith"),
        ("GET", "/", &[], "monolith"),
    ];
    for (method, path, headers, expected) in cases {
        let method: http::Method = method.parse().unwrap();
        let reply = http
            .send(method.clone(), &proxy.url(path), headers, b"")
            .await
            .unwrap();
        assert_eq!(reply.status, 200, "{method} {path}");
        if method == http::Method::HEAD {
            continue;
        }
        assert_eq!(reply.backend(), *expected, "{method} {path} {headers:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upstream_receives_the_normalized_path_it_was_routed_on() {
    let (proxy, ..) = setup().await;
    // Raw requests: an HTTP client library would normalize these itself.
    let cases = [
        ("/static/../api/orders/5?x=1", "orders", "/api/orders/5?x=1"),
        ("/api/%6Frders/5", "orders", "/api/orders/5"),
        ("//api///orders", "orders", "/api/orders"),
        ("/api/./orders/./7", "orders", "/api/orders/7"),
        ("/api/orders/../../admin", "monolith", "/admin"),
    ];
    for (raw, backend, seen) in cases {
        let request = format!("GET {raw} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let response =
            raw_exchange(&proxy.addr(), request.as_bytes(), Duration::from_secs(5)).await;
        assert!(response.starts_with("HTTP/1.1 200"), "{raw}: {response}");
        let body = &response[response.find("\r\n\r\n").unwrap() + 4..];
        let json: serde_json::Value = serde_json::from_str(body.trim()).unwrap();
        assert_eq!(json["backend"], backend, "{raw}");
        assert_eq!(json["path"], seen, "{raw}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ambiguous_paths_are_refused_with_400() {
    let (proxy, monolith, orders, search) = setup().await;
    for raw in [
        "/api%2Forders",
        "/api%2forders",
        "/api/orders%5C..%5Cadmin",
        "/api/%252e%252e/admin",
        "/api/orders/..;/admin",
        "/api/%c0%ae%c0%ae/admin",
        "/../etc/passwd",
    ] {
        let request = format!("GET {raw} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let response =
            raw_exchange(&proxy.addr(), request.as_bytes(), Duration::from_secs(5)).await;
        assert!(response.starts_with("HTTP/1.1 400"), "{raw}: {response}");
        assert!(
            response.contains("strangler: request path"),
            "{raw}: {response}"
        );
    }
    assert_eq!(
        monolith.requests() + orders.requests() + search.requests(),
        0
    );
    let m = proxy.metrics().await;
    assert_eq!(
        m.sum(
            "strangler_rejected_requests_total",
            &[("reason", "bad_path")]
        ),
        7.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_headers_are_set_by_the_proxy() {
    let (proxy, ..) = setup().await;
    let reply = Http::new()
        .get(
            &proxy.url("/api/orders"),
            &[
                ("x-forwarded-for", "6.6.6.6"),
                ("x-forwarded-proto", "https"),
                ("x-request-id", "forged"),
            ],
        )
        .await;
    let json = reply.json();
    let h = &json["headers"];
    assert_eq!(h["x-forwarded-for"], "127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "http");
    let id = h["x-request-id"].as_str().unwrap();
    assert_eq!(id.len(), 32, "{id}");
    assert_ne!(id, "forged");
    // The client sees the same id.
    assert_eq!(reply.headers["x-request-id"], id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_by_route_backend_side_and_status() {
    let (proxy, ..) = setup().await;
    let http = Http::new();
    for _ in 0..3 {
        http.get(&proxy.url("/api/orders/1"), &[]).await;
    }
    http.get(&proxy.url("/nowhere"), &[]).await;
    let m = proxy.metrics_settled().await;
    let labels = [
        ("route", "orders-read"),
        ("backend", "orders"),
        ("side", "new"),
        ("status_class", "2xx"),
    ];
    assert_eq!(m.sum("strangler_requests_total", &labels), 3.0);
    assert_eq!(
        m.sum(
            "strangler_requests_total",
            &[
                ("route", "default"),
                ("backend", "monolith"),
                ("side", "legacy")
            ]
        ),
        1.0
    );
    assert_eq!(
        m.sum(
            "strangler_request_duration_seconds_count",
            &[("route", "orders-read"), ("side", "new")]
        ),
        3.0
    );
    assert_eq!(
        m.sum("strangler_canary_percent", &[("route", "orders-read")]),
        100.0
    );
    assert_eq!(m.sum("strangler_config_version", &[]), 1.0);
    // Labels come from config names only: no raw paths anywhere.
    assert!(!m.text.contains("/api/orders/1"));
}

/// Where the route table sends a request for `path` (GET, no headers), as
/// the backend that receives `path` would understand it. Backends are taken
/// to read paths the way servlet containers do, the most lenient common
/// reading: `;parameters` are not part of a segment (`/api;x/orders` is
/// `/api/orders`), which is also how the proxy routes.
fn expected_backend(path: &str) -> &'static str {
    let path = path.split('?').next().unwrap();
    let segments: Vec<&str> = path
        .split('/')
        .skip(1)
        .map(|s| s.split(';').next().unwrap())
        .collect();
    let mut stripped = String::new();
    for (i, seg) in segments.iter().enumerate() {
        // A segment that was only parameters disappears, except at the end.
        if seg.is_empty() && i + 1 < segments.len() {
            continue;
        }
        stripped.push('/');
        stripped.push_str(seg);
    }
    let path = stripped.as_str();
    let segment_prefix = |p: &str| path == p || path.starts_with(&format!("{p}/"));
    if path == "/api/orders/export" {
        "search"
    } else if segment_prefix("/api/orders") {
        "orders"
    } else if path == "/search" || path.starts_with("/search/") {
        "search"
    } else {
        "monolith"
    }
}

/// The path-normalization corpus through the real binary: every request is
/// either refused with 400, or served by exactly the backend that the path
/// it received would be routed to. Zero bypasses: no client path reaches a
/// backend the route table did not intend for the path that backend sees.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_path_reaches_a_backend_the_table_did_not_intend() {
    let (proxy, monolith, orders, search) = setup().await;
    let corpus = [
        "/api/orders/7",
        "/api/../admin",
        "/api/orders/../../admin",
        "/api/orders/../export",
        "/admin/../api/orders/1",
        "/api/%2e%2e/admin",
        "/api/orders/%2e%2e/%2e%2e/search",
        "/api/orders/%2E%2e/x",
        "/api/orders/.%2e/x",
        "/api%2Forders/1",
        "/api%2forders/1",
        "/api/orders%2F..%2Fadmin",
        "//api/orders/1",
        "/api//orders/1",
        "///search",
        "/api/orders/1//",
        "/api/orders/..;/admin",
        "/api/orders/.;/1",
        "/api;x/orders/1",
        "/api/orders;jsessionid=1/1",
        "/;/api/orders",
        "/api\\orders/1",
        "/api/orders\\..\\admin",
        "/api/orders%5C..%5Cadmin",
        "/api/%252e%252e/admin",
        "/api/orders/%252F",
        "/%2561pi/orders",
        "/api/%c0%ae%c0%ae/admin",
        "/api/orders/%c0%af",
        "/api/orders/%e0%80%ae",
        "/api/orders/%ff",
        "/%61pi/orders/1",
        "/api/%6Frders/1",
        "/api/orders/export",
        "/api/orders/export/",
        "/api/orders/%65xport",
        "/api/orders/./export",
        "/api/ordersX",
        "/api/orders.json",
        "/search",
        "/search/../api/orders",
        "/searchx",
        "/./search/x",
        "/../etc/passwd",
        "/a/b/c/../../../../etc",
        "/api/orders/%00",
        "/api/orders/%zz",
        "/api/orders/1?next=/../admin",
        "/api/orders/1?%2F..%2Fadmin",
        "/API/orders",
    ];
    let mut served = 0;
    let mut refused = 0;
    let mut bypasses = Vec::new();
    for raw in corpus {
        let request = format!("GET {raw} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let response =
            raw_exchange(&proxy.addr(), request.as_bytes(), Duration::from_secs(5)).await;
        if response.starts_with("HTTP/1.1 400") {
            refused += 1;
            continue;
        }
        assert!(response.starts_with("HTTP/1.1 200"), "{raw}: {response}");
        served += 1;
        let body = &response[response.find("\r\n\r\n").unwrap() + 4..];
        let echo: serde_json::Value = serde_json::from_str(body).unwrap();
        let backend = echo["backend"].as_str().unwrap();
        let seen = echo["path"].as_str().unwrap();
        if expected_backend(seen) != backend {
            bypasses.push(format!(
                "{raw}: served by {backend}, which saw {seen} (routes to {})",
                expected_backend(seen)
            ));
        }
    }
    let total = monolith.requests() + orders.requests() + search.requests();
    assert_eq!(total, served, "one backend request per served request");
    println!(
        "{} paths: {served} served, {refused} refused with 400",
        corpus.len()
    );
    println!(
        "suite: path normalization: {} vectors, lost {}",
        corpus.len(),
        bypasses.len()
    );
    assert!(bypasses.is_empty(), "bypasses:\n{}", bypasses.join("\n"));
}
