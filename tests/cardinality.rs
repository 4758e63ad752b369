//! Metrics cardinality under random paths and tenants: 100k requests with
//! random paths, query strings, tenants, hosts, methods and statuses must
//! leave the number of series bounded by the configuration (routes, sides
//! and fixed enums), and none of the random strings may reach `/metrics`.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use strangler_e2e::{Proxy, Scrape};
use tokio::net::{TcpListener, TcpStream};

const REQUESTS: u64 = 100_000;
const CONNECTIONS: u64 = 64;

/// Every random string starts with this marker (after lowercasing), which
/// occurs in no metric name, label name or configured name.
const MARKER: &str = "qz";

/// Length of the random tail of every random string.
const TAIL: usize = 12;

/// xorshift64*: deterministic per seed, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// `qz` + a kind letter + `TAIL` random lowercase letters and digits.
    fn token(&mut self, kind: char) -> String {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        let mut s = format!("{MARKER}{kind}");
        for _ in 0..TAIL {
            s.push(*self.pick(ALPHABET) as char);
        }
        s
    }
}

/// A fast backend that answers with the status the request asks for in
/// `x-want-status`, so every status class goes through the proxy.
async fn status_backend() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let service = service_fn(|req: Request<Incoming>| async move {
                    let status = req
                        .headers()
                        .get("x-want-status")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<u16>().ok())
                        .unwrap_or(200);
                    let _ = req.into_body().collect().await;
                    Ok::<_, Infallible>(
                        Response::builder()
                            .status(status)
                            .header("content-type", "text/plain")
                            .body(Full::new(Bytes::from_static(b"ok\n")))
                            .unwrap(),
                    )
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    format!("http://{addr}")
}

/// Route names of the configuration below, and the label the proxy uses for
/// unmatched traffic.
const ROUTES: &[&str] = &["orders", "users", "search", "shop"];
const DEFAULT_ROUTE: &str = "default";
const BACKENDS: &[&str] = &["legacy", "new", "orders-svc"];

fn config(legacy: &str, new: &str, orders: &str) -> String {
    format!(
        r#"
backends:
  legacy: {{ url: "{legacy}" }}
  new: {{ url: "{new}" }}
  orders-svc: {{ url: "{orders}" }}
tenant:
  - header: X-Tenant-Id
  - host_label: 0
default: legacy
routes:
  - name: orders
    match: {{ path: /api/orders }}
    new: orders-svc
    canary: 50
    sticky: tenant
    tenants: {{ acme: new, initech: legacy }}
    shadow:
      percent: 5
  - name: users
    match: {{ path: /api/users, methods: [GET, HEAD] }}
    new: new
    canary: 20
    sticky: none
  - name: search
    match: {{ path_regex: "^/search/[a-z0-9]+$" }}
    new: new
    canary: 100
  - name: shop
    match: {{ path: /, host: shop.example.com }}
    new: new
    canary: 10
    sticky: ip
"#
    )
}

/// What one request looked like.
struct Planned {
    method: Method,
    path_and_query: String,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

/// A random request; every random string it carries is added to `tokens`.
fn plan(rng: &mut Rng, tokens: &mut Vec<String>) -> Planned {
    let mut token = |rng: &mut Rng, kind: char| {
        let t = rng.token(kind);
        tokens.push(t.clone());
        t
    };
    let methods = [
        "GET", "GET", "GET", "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS",
    ];
    let method = if rng.chance(2) {
        // An extension method, upper case as methods are.
        Method::from_bytes(token(rng, 'm').to_uppercase().as_bytes()).unwrap()
    } else {
        Method::from_bytes(rng.pick(&methods).as_bytes()).unwrap()
    };
    let prefixes = [
        "/api/orders",
        "/api/users",
        "/search",
        "",
        "/static",
        "/api",
    ];
    let mut path = rng.pick(&prefixes).to_string();
    for _ in 0..rng.below(5) {
        let segment = token(rng, 'p');
        match rng.below(20) {
            // Escapes, dot segments and empty segments, which the proxy
            // normalizes (or refuses: an encoded slash is a 400).
            0 => path.push_str(&format!("/%61{segment}")),
            1 => path.push_str(&format!("/./{segment}/../{segment}")),
            2 => path.push_str(&format!("//{segment}")),
            3 => path.push_str(&format!("/{segment}%2f")),
            _ => path.push_str(&format!("/{segment}")),
        }
    }
    if path.is_empty() {
        path.push('/');
    }
    let pairs = rng.below(4);
    for i in 0..pairs {
        path.push(if i == 0 { '?' } else { '&' });
        let (k, v) = (token(rng, 'k'), token(rng, 'v'));
        path.push_str(&format!("{k}={v}"));
    }
    let mut headers = Vec::new();
    match rng.below(10) {
        0..=4 => headers.push(("x-tenant-id", token(rng, 't'))),
        5 => headers.push(("x-tenant-id", "acme".to_string())),
        6 => headers.push(("x-tenant-id", "initech".to_string())),
        _ => {}
    }
    match rng.below(5) {
        0 | 1 => headers.push(("host", format!("{}.shop.example.com", token(rng, 'h')))),
        2 => headers.push(("host", "shop.example.com".to_string())),
        3 => headers.push(("host", format!("{}.example", token(rng, 'h')))),
        _ => {}
    }
    let status = match rng.below(20) {
        0 => 404,
        1 => 500,
        2 => 302,
        3 => 204,
        4 => 429,
        _ => 200,
    };
    headers.push(("x-want-status", status.to_string()));
    let body = if matches!(method.as_str(), "POST" | "PUT" | "PATCH") {
        token(rng, 'b').into_bytes()
    } else {
        Vec::new()
    };
    Planned {
        method,
        path_and_query: path,
        headers,
        body,
    }
}

#[derive(Debug, Default)]
struct Totals {
    sent: AtomicU64,
    answered: AtomicU64,
    failed: AtomicU64,
}

/// The most series each family may have with this configuration: every
/// label comes from the routes (plus `default`), their backends, the two
/// sides and fixed enums. A family not listed here gets `UNKNOWN_FAMILY`
/// series at most, and its route/backend/side labels are still checked.
fn bounds() -> BTreeMap<&'static str, usize> {
    let routes = ROUTES.len() + 1; // + default
    let sides = 2;
    let status_classes = 6; // 1xx..5xx, none
    let buckets = 15 + 1; // the configured bounds + Inf
    let error_kinds = 9;
    BTreeMap::from([
        ("strangler_requests_total", routes * sides * status_classes),
        (
            "strangler_request_duration_seconds_bucket",
            routes * sides * buckets,
        ),
        ("strangler_request_duration_seconds_sum", routes * sides),
        ("strangler_request_duration_seconds_count", routes * sides),
        (
            "strangler_upstream_errors_total",
            routes * sides * error_kinds,
        ),
        ("strangler_canary_percent", ROUTES.len()),
        ("strangler_shadow_requests_total", routes * 4), // sent/skipped/error/timeout
        ("strangler_shadow_dropped_total", routes * 4),  // queue_full/too_large/method/store
        ("strangler_shadow_diffs_total", routes * 3),    // match/diff/noise
        ("strangler_shadow_stored_total", routes),
        ("strangler_config_reloads_total", 2), // ok/error
        ("strangler_config_version", 1),
        ("strangler_rollbacks_total", routes * 2), // manual/auto
        ("strangler_rejected_requests_total", 10), // Rejection::ALL
        ("strangler_upstream_retries_total", ROUTES.len() * sides),
        ("strangler_route_stage", ROUTES.len() * 4), // legacy/shadow/canary/migrated
        // Only routes with a rollout: block (at most all of them).
        ("strangler_rollout_step", ROUTES.len()),
        ("strangler_rollout_failures_total", ROUTES.len()),
        ("strangler_rollout_state", ROUTES.len() * 6), // RolloutState::ALL
        // One address per backend here (each has one loopback URL).
        ("strangler_backend_up", BACKENDS.len()),
        ("strangler_backend_fail_open_total", BACKENDS.len()),
    ])
}

const UNKNOWN_FAMILY: usize = (ROUTES.len() + 1) * 2 * 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_traffic_does_not_grow_the_series() {
    let legacy = status_backend().await;
    let new = status_backend().await;
    let orders = status_backend().await;
    let proxy = Proxy::start(&config(&legacy, &new, &orders)).await;
    let before = proxy.metrics().await;

    // Plan every request first, so the load loop only sends.
    let mut rng = Rng(0x5eed_cafe_f00d_0001);
    let mut tokens = Vec::new();
    let mut plans: Vec<Vec<Planned>> = (0..CONNECTIONS).map(|_| Vec::new()).collect();
    for i in 0..REQUESTS {
        plans[(i % CONNECTIONS) as usize].push(plan(&mut rng, &mut tokens));
    }

    let totals = Arc::new(Totals::default());
    let addr = proxy.addr();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for requests in plans {
        let totals = totals.clone();
        let addr = addr.clone();
        tasks.push(tokio::spawn(async move {
            // One keep-alive connection per task, opened again only when the
            // proxy closes it (after a refused request, say).
            let mut conn: Option<http1::SendRequest<Full<Bytes>>> = None;
            for p in requests {
                let mut req = Request::builder()
                    .method(p.method)
                    .uri(p.path_and_query)
                    .header("host", addr.as_str());
                for (k, v) in &p.headers {
                    if *k == "host" {
                        req.headers_mut().unwrap().remove("host");
                    }
                    req = req.header(*k, v.as_str());
                }
                let req = req.body(Full::new(Bytes::from(p.body))).unwrap();
                totals.sent.fetch_add(1, Ordering::Relaxed);
                let answer = tokio::time::timeout(Duration::from_secs(30), async {
                    let reusable = match conn.as_mut() {
                        Some(s) => s.ready().await.is_ok(),
                        None => false,
                    };
                    if !reusable {
                        let stream = TcpStream::connect(addr.as_str())
                            .await
                            .map_err(|e| e.to_string())?;
                        let (sender, connection) = http1::handshake(TokioIo::new(stream))
                            .await
                            .map_err(|e| e.to_string())?;
                        tokio::spawn(connection);
                        conn = Some(sender);
                    }
                    let sender = conn.as_mut().expect("connected");
                    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
                    let _ = resp.into_body().collect().await;
                    Ok::<_, String>(())
                })
                .await;
                match answer {
                    Ok(Ok(())) => totals.answered.fetch_add(1, Ordering::Relaxed),
                    _ => {
                        conn = None;
                        totals.failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
        }));
    }
    for t in tasks {
        t.await.expect("load task");
    }
    let elapsed = started.elapsed();
    let sent = totals.sent.load(Ordering::Relaxed);
    let answered = totals.answered.load(Ordering::Relaxed);
    let failed = totals.failed.load(Ordering::Relaxed);
    println!(
        "{sent} requests ({answered} answered, {failed} failed) on {CONNECTIONS} connections in {:.1} s ({:.0}/s)",
        elapsed.as_secs_f64(),
        sent as f64 / elapsed.as_secs_f64()
    );
    assert_eq!(sent, REQUESTS);
    assert!(
        answered * 100 >= sent * 99,
        "too many requests without an answer: {failed}"
    );

    let scrape = proxy.metrics_settled().await;
    let counted = scrape.sum("strangler_requests_total", &[])
        + scrape.sum("strangler_rejected_requests_total", &[])
        - before.sum("strangler_requests_total", &[])
        - before.sum("strangler_rejected_requests_total", &[]);
    println!("counted by the proxy: {counted} (requests_total + rejected_requests_total)");
    for class in ["2xx", "3xx", "4xx", "5xx"] {
        let n = scrape.sum("strangler_requests_total", &[("status_class", class)]);
        println!("  {class}: {n}");
    }
    for s in &scrape.samples {
        if s.name == "strangler_rejected_requests_total" && s.value > 0.0 {
            println!("  rejected ({}): {}", s.labels["reason"], s.value);
        }
    }
    assert!(
        counted >= answered as f64 * 0.99,
        "the proxy counted {counted} of {answered} answered requests"
    );
    check_series(&scrape);
    check_no_random_strings(&scrape, &tokens);
}

fn check_series(scrape: &Scrape) {
    let bounds = bounds();
    let mut per_family: BTreeMap<&str, usize> = BTreeMap::new();
    for s in &scrape.samples {
        *per_family.entry(s.name.as_str()).or_default() += 1;
    }
    let total = scrape.samples.len();
    let bound: usize = bounds.values().sum::<usize>()
        + UNKNOWN_FAMILY
            * per_family
                .keys()
                .filter(|f| !bounds.contains_key(*f))
                .count();
    println!("{total} series (bound {bound}):");
    for (family, n) in &per_family {
        let limit = bounds.get(family).copied().unwrap_or(UNKNOWN_FAMILY);
        println!("  {family}: {n} (at most {limit})");
        assert!(
            *n <= limit,
            "{family} has {n} series, over its bound {limit}"
        );
    }
    assert!(total <= bound, "{total} series, over the bound {bound}");

    // Labels come from configuration names and fixed enums only.
    let routes: BTreeSet<&str> = ROUTES.iter().copied().chain([DEFAULT_ROUTE]).collect();
    let backends: BTreeSet<&str> = BACKENDS.iter().copied().collect();
    for s in &scrape.samples {
        for (label, value) in &s.labels {
            let ok = match label.as_str() {
                "route" => routes.contains(value.as_str()),
                "backend" => backends.contains(value.as_str()),
                "side" => ["legacy", "new"].contains(&value.as_str()),
                "status_class" => {
                    ["1xx", "2xx", "3xx", "4xx", "5xx", "none"].contains(&value.as_str())
                }
                "le" => value == "+Inf" || value.parse::<f64>().is_ok(),
                // strangler_backend_up: a resolved backend address.
                "address" => value
                    .parse::<std::net::SocketAddr>()
                    .is_ok_and(|a| a.ip().is_loopback()),
                // strangler_build_info: the workspace's version, as built.
                "version" => value == env!("CARGO_PKG_VERSION"),
                _ => {
                    value.len() <= 32
                        && value
                            .bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                }
            };
            assert!(
                ok,
                "{}: label {label}={value:?} is not a configured name or enum",
                s.name
            );
        }
    }
    // Traffic did reach every route: the bound is not met by accident.
    for route in routes {
        assert!(
            scrape.sum("strangler_requests_total", &[("route", route)]) > 0.0,
            "no request counted on route {route}"
        );
    }
}

fn check_no_random_strings(scrape: &Scrape, tokens: &[String]) {
    let text = scrape.text.to_ascii_lowercase();
    assert!(
        !text.contains(MARKER),
        "a random string reached /metrics:\n{}",
        text.lines()
            .filter(|l| l.contains(MARKER))
            .take(10)
            .collect::<Vec<_>>()
            .join("\n")
    );
    // Also each random tail on its own, in case a label kept a string
    // without its beginning.
    let windows: HashSet<&[u8]> = text.as_bytes().windows(TAIL).collect();
    let mut checked = 0usize;
    for t in tokens {
        let tail = &t.as_bytes()[t.len() - TAIL..];
        assert!(
            !windows.contains(tail),
            "random string {t} reached /metrics"
        );
        checked += 1;
    }
    println!(
        "{checked} random strings (paths, query keys and values, tenants, hosts, methods, bodies) absent from /metrics"
    );
}
