//! Real topology: the proxy behind a real HAProxy (`option forwardfor` and
//! `send-proxy-v2`), clients on several loopback addresses, and backends
//! with their own Host and path layout. What is checked is what a backend
//! receives, what a client gets, the access log's lines and the metrics.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use strangler_e2e::evil::{Evil, listening};
use strangler_e2e::haproxy::{HaProxy, Handoff, RawAnswer, get_request, request_from};
use strangler_e2e::proxy::run_cli;
use strangler_e2e::{Backend, Mode, Proxy, eventually};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// GET `path` from 127.0.0.1 straight to the proxy at `to`.
async fn local_get(to: SocketAddr, path: &str, host: &str, headers: &[(&str, &str)]) -> RawAnswer {
    request_from(ip("127.0.0.1"), to, b"", &get_request(path, host, headers))
        .await
        .expect("an answer")
}

fn seen_header(answer: &serde_json::Value, name: &str) -> Option<String> {
    answer["headers"][name].as_str().map(str::to_string)
}

/// Lines of the access log, once at least `n` are there.
async fn access_log_lines(proxy: &Proxy, n: usize) -> Vec<String> {
    let path = proxy.dir.path().join("access.log");
    eventually(Duration::from_secs(10), || async {
        let text = std::fs::read_to_string(&path).ok()?;
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        (lines.len() >= n).then_some(lines)
    })
    .await
    .unwrap_or_else(|| panic!("fewer than {n} access-log lines:\n{}", proxy.logs()))
}

/// Lines of a JSON access log, once at least `n` are there.
async fn access_log(proxy: &Proxy, n: usize) -> Vec<serde_json::Value> {
    access_log_lines(proxy, n)
        .await
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn line_for<'a>(lines: &'a [serde_json::Value], request_id: &str) -> &'a serde_json::Value {
    lines
        .iter()
        .find(|l| l["request_id"] == request_id)
        .unwrap_or_else(|| panic!("no access-log line for {request_id}: {lines:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_haproxy_the_client_address_is_believed_appended_and_sticky() {
    let legacy = Backend::start("legacy").await;
    let new = Backend::start("new").await;
    let proxy = Proxy::start(&format!(
        r#"
trusted_proxies: [127.0.0.1/32]
access_log: {{ path: "{{dir}}/access.log", format: json }}
backends:
  legacy: {{ url: "{}" }}
  new: {{ url: "{}" }}
default: legacy
routes:
  - name: by-ip
    match: {{ path: /api }}
    new: new
    canary: 50
    sticky: ip
"#,
        legacy.url(),
        new.url()
    ))
    .await;
    listening(&proxy).await;
    let lb = HaProxy::start(proxy.addr().parse().unwrap(), Handoff::ForwardFor).await;

    // Twenty clients, each from its own address, through the balancer; one
    // claims another address in its own X-Forwarded-For.
    let mut sides = std::collections::BTreeMap::new();
    for n in 2..22 {
        let client = format!("127.0.0.{n}");
        let spoof = [("X-Forwarded-For", "203.0.113.66")];
        let extra: &[(&str, &str)] = if n == 2 { &spoof } else { &[] };
        let r = request_from(
            ip(&client),
            lb.addr(),
            b"",
            &get_request("/api/x", "shop.test", extra),
        )
        .await
        .expect("an answer");
        assert_eq!(r.status, 200, "{}", r.head);
        let seen = r.json();
        let xff = seen_header(&seen, "x-forwarded-for").unwrap();
        let expected = if n == 2 {
            format!("203.0.113.66, {client}, 127.0.0.1")
        } else {
            format!("{client}, 127.0.0.1")
        };
        assert_eq!(
            xff, expected,
            "the balancer's list is kept and the peer appended"
        );
        // The same decision as `explain` for that client behind that peer.
        let (code, out, err) = run_cli(&[
            "explain",
            "--config",
            &proxy.config_path.display().to_string(),
            "GET",
            "http://shop.test/api/x",
            "--client-ip",
            "127.0.0.1",
            "-H",
            &format!("X-Forwarded-For: {client}"),
            "--json",
        ]);
        assert_eq!(code, 0, "{err}");
        let explained: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(explained["client"], client.as_str());
        assert_eq!(explained["backend"], seen["backend"], "client {client}");
        sides.insert(
            client.clone(),
            seen["backend"].as_str().unwrap().to_string(),
        );
        let id = r.header("x-request-id").unwrap();
        let lines = access_log(&proxy, n - 1).await;
        assert_eq!(line_for(&lines, &id)["client"], client.as_str());
    }
    // Distinct clients land in distinct buckets: both sides are used (with
    // the peer's address they would all share one).
    let used: std::collections::BTreeSet<&String> = sides.values().collect();
    assert_eq!(used.len(), 2, "{sides:?}");
    // And a client keeps its side.
    for (client, side) in &sides {
        let r = request_from(
            ip(client),
            lb.addr(),
            b"",
            &get_request("/api/y", "shop.test", &[]),
        )
        .await
        .unwrap();
        assert_eq!(r.json()["backend"], side.as_str(), "client {client}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_client_cannot_choose_its_address_request_id_or_scheme() {
    let legacy = Backend::start("legacy").await;
    let proxy = Proxy::start(&format!(
        r#"
trusted_proxies: [127.0.0.1/32]
backends:
  legacy: {{ url: "{}" }}
default: legacy
"#,
        legacy.url()
    ))
    .await;
    listening(&proxy).await;
    let forged = [
        ("X-Forwarded-For", "203.0.113.66"),
        ("X-Request-Id", "chosen-by-client"),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "evil.test"),
    ];
    let to = proxy.addr().parse().unwrap();
    let r = request_from(
        ip("127.0.0.9"),
        to,
        b"",
        &get_request("/x", "shop.test", &forged),
    )
    .await
    .unwrap();
    let seen = r.json();
    assert_eq!(seen_header(&seen, "x-forwarded-for").unwrap(), "127.0.0.9");
    assert_eq!(seen_header(&seen, "x-forwarded-proto").unwrap(), "http");
    assert_eq!(seen_header(&seen, "x-forwarded-host").unwrap(), "shop.test");
    let id = seen_header(&seen, "x-request-id").unwrap();
    assert_ne!(id, "chosen-by-client");
    assert_eq!(id.len(), 32);
    // The same headers from a trusted peer are kept.
    let r = local_get(to, "/x", "shop.test", &forged).await;
    let seen = r.json();
    assert_eq!(
        seen_header(&seen, "x-forwarded-for").unwrap(),
        "203.0.113.66, 127.0.0.1"
    );
    assert_eq!(
        seen_header(&seen, "x-request-id").unwrap(),
        "chosen-by-client"
    );
    assert_eq!(r.header("x-request-id").unwrap(), "chosen-by-client");
    assert_eq!(seen_header(&seen, "x-forwarded-proto").unwrap(), "https");
    assert_eq!(seen_header(&seen, "x-forwarded-host").unwrap(), "evil.test");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_protocol_from_haproxy_names_the_client_and_anything_else_is_refused() {
    let legacy = Backend::start("legacy").await;
    let proxy = Proxy::start(&format!(
        r#"
proxy_protocol: true
trusted_proxies: [127.0.0.1/32]
access_log: {{ path: "{{dir}}/access.log" }}
backends:
  legacy: {{ url: "{}" }}
default: legacy
"#,
        legacy.url()
    ))
    .await;
    let lb = HaProxy::start(proxy.addr().parse().unwrap(), Handoff::ProxyV2).await;
    let r = request_from(
        ip("127.0.0.7"),
        lb.addr(),
        b"",
        &get_request("/v2", "shop.test", &[]),
    )
    .await
    .expect("an answer through the balancer");
    assert_eq!(r.status, 200, "{}\n{}", r.head, proxy.logs());
    let seen = r.json();
    assert_eq!(seen_header(&seen, "x-forwarded-for").unwrap(), "127.0.0.7");
    let lines = access_log(&proxy, 1).await;
    let id = r.header("x-request-id").unwrap();
    assert_eq!(line_for(&lines, &id)["client"], "127.0.0.7");

    // Version 1, written by hand from the trusted address.
    let to = proxy.addr().parse().unwrap();
    let v1 = b"PROXY TCP4 198.51.100.7 127.0.0.1 40000 80\r\n";
    let r = request_from(
        ip("127.0.0.1"),
        to,
        v1,
        &get_request("/v1", "shop.test", &[]),
    )
    .await
    .expect("an answer after a v1 header");
    assert_eq!(
        seen_header(&r.json(), "x-forwarded-for").unwrap(),
        "198.51.100.7"
    );

    // Refused: an untrusted peer (even with a header), and a trusted one
    // without a header. No answer: the connection is closed.
    // (The harness's own readiness probe, a bare connect, counts too.)
    let refused = |m: strangler_e2e::Scrape| {
        m.sum(
            "strangler_rejected_requests_total",
            &[("reason", "proxy_protocol")],
        )
    };
    let before = refused(proxy.metrics_settled().await);
    let plain = get_request("/x", "shop.test", &[]);
    assert!(
        request_from(ip("127.0.0.9"), to, v1, &plain)
            .await
            .is_none()
    );
    assert!(
        request_from(ip("127.0.0.1"), to, b"", &plain)
            .await
            .is_none()
    );
    assert_eq!(refused(proxy.metrics_settled().await) - before, 2.0);
    assert_eq!(
        legacy.seen().len(),
        2,
        "refused connections reach no backend"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_new_side_gets_its_own_host_and_path_and_so_does_its_shadow_copy() {
    let legacy = Backend::start("legacy").await;
    let new = Backend::start("new").await;
    let proxy = Proxy::start(&format!(
        r#"
backends:
  legacy: {{ url: "{}" }}
  new: {{ url: "{}", host: backend }}
  items: {{ url: "{}", host: items.internal }}
tenant:
  - header: X-Tenant-Id
default: legacy
routes:
  - name: orders
    match: {{ path: /api/orders }}
    new: new
    canary: 100
    tenants: {{ initech: legacy }}
    rewrite: {{ strip_prefix: /api, add_prefix: /v2 }}
  - name: items
    match: {{ path_regex: "^/api/items/[0-9]+$" }}
    new: items
    canary: 100
    rewrite: {{ regex: "^/api/items/([0-9]+)$", to: "/catalog/item/$1" }}
  - name: shadowed
    match: {{ path: /api/carts }}
    new: new
    canary: 0
    rewrite: {{ strip_prefix: /api }}
    shadow: {{ percent: 100 }}
"#,
        legacy.url(),
        new.url(),
        new.url()
    ))
    .await;
    listening(&proxy).await;
    let to = proxy.addr().parse().unwrap();
    let r = local_get(to, "/api/orders/7?x=1", "shop.test", &[]).await;
    let seen = r.json();
    assert_eq!(seen["backend"], "new");
    assert_eq!(seen["path"], "/v2/orders/7?x=1");
    assert_eq!(seen_header(&seen, "host").unwrap(), new.addr.to_string());
    assert_eq!(seen_header(&seen, "x-forwarded-host").unwrap(), "shop.test");
    // Legacy gets the request as the client sent it.
    let pinned = [("X-Tenant-Id", "initech")];
    let r = local_get(to, "/api/orders/7?x=1", "shop.test", &pinned).await;
    let seen = r.json();
    assert_eq!(seen["backend"], "legacy");
    assert_eq!(seen["path"], "/api/orders/7?x=1");
    assert_eq!(seen_header(&seen, "host").unwrap(), "shop.test");
    // A regex rewrite and a literal Host.
    let r = local_get(to, "/api/items/42", "shop.test", &[]).await;
    let seen = r.json();
    assert_eq!(seen["path"], "/catalog/item/42");
    assert_eq!(seen_header(&seen, "host").unwrap(), "items.internal");
    // `explain` says what the backend receives.
    let (code, out, err) = run_cli(&[
        "explain",
        "--config",
        &proxy.config_path.display().to_string(),
        "GET",
        "http://shop.test/api/orders/7?x=1",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("upstream: /v2/orders/7?x=1, Host: {}", new.addr)),
        "{out}"
    );
    assert!(
        out.contains("rewrite: strip_prefix /api, add_prefix /v2"),
        "{out}"
    );

    // The shadow copy to the new side follows the new side's rules.
    let r = local_get(to, "/api/carts/3", "shop.test", &[]).await;
    assert_eq!(r.json()["path"], "/api/carts/3");
    let copy = eventually(Duration::from_secs(10), || async {
        new.seen()
            .into_iter()
            .find(|s| s.header("x-strangler-shadow").is_some())
    })
    .await
    .expect("a shadow copy reached the new side");
    assert_eq!(copy.path, "/carts/3");
    assert_eq!(copy.header("host"), Some(new.addr.to_string().as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_timeout_and_retries_on_fresh_connections_for_idempotent_methods_only() {
    let evil = Evil::start().await;
    let slow = Backend::start("slow").await;
    slow.set_mode(Mode::Delay(Duration::from_secs(5)));
    let proxy = Proxy::start(&format!(
        r#"
backends:
  evil: {{ url: "{}", read_timeout: 10s }}
  slow: {{ url: "{}", read_timeout: 30s }}
default: evil
routes:
  - name: retried
    match: {{ path: /close }}
    new: slow
    canary: 0
    retries: 2
  - name: hurried
    match: {{ path: /hurry }}
    new: slow
    canary: 100
    timeout: 300ms
"#,
        evil.url(),
        slow.url()
    ))
    .await;
    listening(&proxy).await;
    let to = proxy.addr().parse().unwrap();
    let local = ip("127.0.0.1");
    // The backend reads each request and closes without answering.
    let r = local_get(to, "/close/after-read", "t", &[]).await;
    assert_eq!(r.status, 502, "{}", r.head);
    let gets = evil.copies("GET", "/close/after-read");
    assert_eq!(gets.len(), 3, "the first attempt and two retries: {gets:?}");
    let conns: std::collections::BTreeSet<u64> = gets.iter().map(|g| g.conn).collect();
    assert_eq!(conns.len(), 3, "each attempt on its own connection");
    assert!(gets.iter().all(|g| g.nth == 0), "never a pooled connection");
    // A POST is not retried.
    let post = "POST /close/after-read HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi";
    let r = request_from(local, to, b"", post).await.unwrap();
    assert_eq!(r.status, 502);
    assert_eq!(evil.copies("POST", "/close/after-read").len(), 1);
    let m = proxy.metrics_settled().await;
    assert_eq!(
        m.sum(
            "strangler_upstream_retries_total",
            &[("route", "retried"), ("side", "legacy")]
        ),
        2.0
    );
    assert_eq!(
        m.sum(
            "strangler_upstream_retries_total",
            &[("route", "hurried"), ("side", "new")]
        ),
        0.0,
        "exported at zero"
    );
    // The route's timeout is over the backend's 30 s.
    let r = local_get(to, "/hurry", "t", &[]).await;
    assert_eq!(r.status, 504, "{}", r.head);
    let m = proxy.metrics_settled().await;
    assert_eq!(
        m.sum(
            "strangler_upstream_errors_total",
            &[
                ("route", "hurried"),
                ("side", "new"),
                ("kind", "read_timeout")
            ]
        ),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_log_has_a_json_line_per_request_with_the_briefs_keys() {
    let legacy = Backend::start("legacy").await;
    let proxy = Proxy::start(&format!(
        r#"
access_log: {{ path: "{{dir}}/access.log", format: json }}
backends:
  legacy: {{ url: "{}" }}
  down: {{ url: "http://127.0.0.1:1", connect_timeout: 1s }}
default: legacy
routes:
  - name: gone
    match: {{ path: /gone }}
    new: down
    canary: 100
  - name: copied
    match: {{ path: /copied }}
    new: down
    shadow: {{ percent: 100 }}
"#,
        legacy.url()
    ))
    .await;
    listening(&proxy).await;
    let to = proxy.addr().parse().unwrap();
    let ok = local_get(to, "/hello?secret=1", "t", &[]).await;
    let bad = local_get(to, "/gone/x", "t", &[]).await;
    let copied = local_get(to, "/copied", "t", &[]).await;
    let refused = local_get(to, "/a/%2e%2e/%2e%2e/etc", "t", &[]).await;
    assert_eq!(
        (ok.status, bad.status, copied.status, refused.status),
        (200, 502, 200, 400)
    );
    let lines = access_log(&proxy, 4).await;
    let keys: Vec<&String> = lines[0].as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "ts",
            "request_id",
            "client",
            "method",
            "path",
            "route",
            "side",
            "backend",
            "status",
            "duration_ms",
            "bytes_out",
            "upstream_error",
            "shadowed"
        ]
    );
    let l = line_for(&lines, &ok.header("x-request-id").unwrap());
    assert_eq!(l["path"], "/hello", "no query string: it may carry secrets");
    assert_eq!(l["route"], "default");
    assert_eq!(l["side"], "legacy");
    assert_eq!(l["backend"], "legacy");
    assert_eq!(l["status"], 200);
    assert_eq!(l["bytes_out"], ok.body.len());
    assert_eq!(l["upstream_error"], serde_json::Value::Null);
    assert_eq!(l["shadowed"], false);
    assert!(l["ts"].as_str().unwrap().ends_with('Z'));
    let l = line_for(&lines, &bad.header("x-request-id").unwrap());
    assert_eq!(l["route"], "gone");
    assert_eq!(l["side"], "new");
    assert_eq!(l["backend"], "down");
    assert_eq!(l["status"], 502);
    assert_eq!(l["upstream_error"], "connect_refused");
    let l = line_for(&lines, &copied.header("x-request-id").unwrap());
    assert_eq!(l["shadowed"], true);
    // Refused before routing: logged, with no backend.
    let l = line_for(&lines, &refused.header("x-request-id").unwrap());
    assert_eq!(l["status"], 400);
    assert_eq!(l["backend"], serde_json::Value::Null);
    assert_eq!(l["side"], serde_json::Value::Null);
    assert_eq!(l["client"], "127.0.0.1");
}

/// A log sink that cannot keep up (a pipe nobody reads) or fails (a full
/// disk: /dev/full) never fails a request; what is lost is counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_or_full_access_log_never_touches_a_request_and_drops_are_counted() {
    let legacy = Backend::start("legacy").await;
    for sink in ["fifo", "/dev/full"] {
        let dir = tempfile::tempdir().unwrap();
        let path = if sink == "fifo" {
            let p = dir.path().join("stalled");
            let ok = std::process::Command::new("mkfifo")
                .arg(&p)
                .status()
                .unwrap();
            assert!(ok.success());
            p.display().to_string()
        } else {
            sink.to_string()
        };
        let proxy = Proxy::start_with_args(
            &format!(
                r#"
access_log: {{ path: "{path}" }}
backends:
  legacy: {{ url: "{}" }}
default: legacy
"#,
                legacy.url()
            ),
            &["--access-log-queue", "4"],
        )
        .await;
        listening(&proxy).await;
        let to = proxy.addr().parse().unwrap();
        for _ in 0..40 {
            let r = local_get(to, "/x", "t", &[]).await;
            assert_eq!(r.status, 200, "{sink}");
        }
        let dropped = eventually(Duration::from_secs(10), || async {
            let m = proxy.metrics().await;
            let d = m.sum("strangler_access_log_dropped_total", &[]);
            (d >= 30.0).then_some(d)
        })
        .await;
        assert!(dropped.is_some(), "{sink}: drops not counted");
    }
}

/// On the `tls:` listener the PROXY header comes before the TLS handshake:
/// HAProxy passes the client's TLS through (TCP mode, `send-proxy-v2`) and
/// the proxy reads the header, then terminates TLS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_protocol_before_tls_on_the_tls_listener() {
    let legacy = Backend::start("legacy").await;
    let pki = strangler_e2e::tls::Pki::new();
    let (cert, key) = pki.issue("front", "IP:127.0.0.1,DNS:localhost", "serverAuth");
    let tls_port = strangler_e2e::free_port();
    let proxy = Proxy::start(&format!(
        r#"
proxy_protocol: true
trusted_proxies: [127.0.0.1/32]
tls: {{ listen: "127.0.0.1:{tls_port}", cert: "{}", key: "{}" }}
backends:
  legacy: {{ url: "{}" }}
default: legacy
"#,
        cert.display(),
        key.display(),
        legacy.url()
    ))
    .await;
    let tls_addr = format!("127.0.0.1:{tls_port}").parse().unwrap();
    let lb = HaProxy::start(tls_addr, Handoff::ProxyV2).await;
    let out = curl(vec![
        "-s".to_string(),
        "--max-time".to_string(),
        "10".to_string(),
        "--cacert".to_string(),
        pki.ca().display().to_string(),
        "--interface".to_string(),
        "127.0.0.7".to_string(),
        "--resolve".to_string(),
        format!("localhost:{}:127.0.0.1", lb.port),
        format!("https://localhost:{}/tls", lb.port),
    ])
    .await;
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "curl: {body}\n{}", proxy.logs());
    let seen: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(seen_header(&seen, "x-forwarded-for").unwrap(), "127.0.0.7");
    assert_eq!(seen_header(&seen, "x-forwarded-proto").unwrap(), "https");
    // Straight to the TLS listener, without the header: refused before any
    // handshake.
    let direct = curl(vec![
        "-s".to_string(),
        "--max-time".to_string(),
        "10".to_string(),
        "--cacert".to_string(),
        pki.ca().display().to_string(),
        "--resolve".to_string(),
        format!("localhost:{tls_port}:127.0.0.1"),
        format!("https://localhost:{tls_port}/tls"),
    ])
    .await;
    assert!(!direct.status.success());
    assert_eq!(legacy.seen().len(), 1);
}

/// Runs curl off the test's runtime threads, which serve the backends.
async fn curl(args: Vec<String>) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        std::process::Command::new("curl")
            .args(&args)
            .output()
            .expect("curl")
    })
    .await
    .unwrap()
}

/// Log rotation (logrotate's default: rename, then a new file) needs no
/// signal: the writer notices the path names another file and opens it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_access_log_is_followed_to_the_new_file() {
    let legacy = Backend::start("legacy").await;
    let proxy = Proxy::start(&format!(
        r#"
access_log: {{ path: "{{dir}}/access.log" }}
backends:
  legacy: {{ url: "{}" }}
default: legacy
"#,
        legacy.url()
    ))
    .await;
    listening(&proxy).await;
    let to = proxy.addr().parse().unwrap();
    let first = local_get(to, "/before", "t", &[]).await;
    access_log(&proxy, 1).await;
    let path = proxy.dir.path().join("access.log");
    let rotated = proxy.dir.path().join("access.log.1");
    std::fs::rename(&path, &rotated).unwrap();
    // Requests until one lands in a new file at the path.
    let landed = eventually(Duration::from_secs(15), || async {
        request_from(ip("127.0.0.1"), to, b"", &get_request("/after", "t", &[])).await?;
        let text = std::fs::read_to_string(&path).ok()?;
        text.contains("\"/after\"").then_some(())
    })
    .await;
    assert!(landed.is_some(), "no line in a new {}", path.display());
    let old = std::fs::read_to_string(&rotated).unwrap();
    assert!(old.contains(&first.header("x-request-id").unwrap()));
}

/// The combined format ends with the client's Referer and User-Agent as
/// sent: the first of repeated fields, `-` for one missing or with bytes
/// that are not visible text. A GET is read in place on the fast path and
/// a POST with a body through Pingora's session (CI runs this file with
/// the fast path off too: the engine's header map).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_combined_access_log_carries_the_referer_and_agent_sent() {
    let legacy = Backend::start("legacy").await;
    let proxy = Proxy::start(&format!(
        r#"
access_log: {{ path: "{{dir}}/access.log", format: combined }}
backends:
  legacy: {{ url: "{}" }}
default: legacy
"#,
        legacy.url()
    ))
    .await;
    let to: SocketAddr = proxy.addr().parse().unwrap();
    let requests = [
        get_request(
            "/page?q=1",
            "shop.test",
            &[
                ("Referer", "https://shop.test/cart?x=\"y\""),
                ("user-agent", "probe/1.0 (x)"),
                ("REFERER", "https://second.test/"),
            ],
        ),
        get_request("/bare", "shop.test", &[]),
        "POST /form HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\nContent-Length: 3\r\n\
         User-Agent: poster/2\r\nReferer: https://shop.test/form\r\n\r\nabc"
            .to_string(),
        "GET /odd HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\nUser-Agent: caf\u{e9}\r\n\r\n"
            .to_string(),
    ];
    // One at a time, so the lines come in this order.
    let mut lines = Vec::new();
    for (n, request) in requests.iter().enumerate() {
        let r = request_from(ip("127.0.0.1"), to, b"", request)
            .await
            .expect("an answer");
        assert_eq!(r.status, 200, "{}", r.head);
        lines = access_log_lines(&proxy, n + 1).await;
    }
    let text = lines.join("\n");
    let ends: Vec<&str> = lines
        .iter()
        .map(String::as_str)
        .map(|l| l.split_once("\" 200 ").map(|(_, rest)| rest).unwrap_or(l))
        .map(|rest| rest.split_once(' ').map(|(_, tail)| tail).unwrap_or(rest))
        .collect();
    assert_eq!(
        ends,
        [
            r#""https://shop.test/cart?x=\"y\"" "probe/1.0 (x)""#,
            r#""-" "-""#,
            r#""https://shop.test/form" "poster/2""#,
            r#""-" "-""#,
        ],
        "{text}"
    );
}
