//! Upstream faults and request hygiene: the right status, quickly, with a
//! body that names the backend; HTTP/2 and WebSocket pass through.

use std::time::{Duration, Instant};

use strangler_e2e::client::raw_exchange;
use strangler_e2e::{Backend, BlackHole, Http, Proxy, free_port};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn setup() -> (Proxy, Backend) {
    let ok = Backend::start("legacy").await;
    let hole = BlackHole::start().await;
    // Port 1 (tcpmux) has no listener and nothing else binds it: refused.
    let refused = "http://127.0.0.1:1".to_string();
    let proxy = Proxy::start(&format!(
        r#"
backends:
  legacy: {{ url: "{}" }}
  refused: {{ url: "{refused}", connect_timeout: 1s }}
  hole: {{ url: "{}", read_timeout: 1s }}
default: legacy
routes:
  - name: to-refused
    match: {{ path: /refused }}
    new: refused
    canary: 100
  - name: to-hole
    match: {{ path: /hole }}
    new: hole
    canary: 100
"#,
        ok.url(),
        hole.url()
    ))
    .await;
    (proxy, ok)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_is_a_quick_502_naming_the_backend() {
    let (proxy, _) = setup().await;
    let r = Http::new().get(&proxy.url("/refused"), &[]).await;
    assert_eq!(r.status, 502);
    assert!(
        r.text().contains("backend refused refused the connection"),
        "{}",
        r.text()
    );
    assert!(r.text().contains("route to-refused"), "{}", r.text());
    assert_eq!(r.headers["content-type"], "text/plain; charset=utf-8");
    // "Quickly" is shown by the kind: a refusal, not a connect timeout.
    let m = proxy.metrics_settled().await;
    assert_eq!(
        m.sum(
            "strangler_upstream_errors_total",
            &[
                ("route", "to-refused"),
                ("side", "new"),
                ("kind", "connect_refused")
            ]
        ),
        1.0
    );
    assert_eq!(
        m.sum(
            "strangler_requests_total",
            &[("route", "to-refused"), ("status_class", "5xx")]
        ),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_never_answers_is_a_504_at_its_read_timeout() {
    let (proxy, _) = setup().await;
    let started = Instant::now();
    let r = Http::new().get(&proxy.url("/hole"), &[]).await;
    let took = started.elapsed();
    assert_eq!(r.status, 504);
    assert!(
        r.text().contains("backend hole did not answer within 1s"),
        "{}",
        r.text()
    );
    // A lower bound only: the 504 must not come before the read timeout.
    assert!(
        took >= Duration::from_millis(950),
        "answered before the timeout: {took:?}"
    );
    let m = proxy.metrics_settled().await;
    assert_eq!(
        m.sum(
            "strangler_upstream_errors_total",
            &[("route", "to-hole"), ("kind", "read_timeout")]
        ),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_length_with_transfer_encoding_is_refused() {
    let (proxy, legacy) = setup().await;
    let request = b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
    let response = raw_exchange(&proxy.addr(), request, Duration::from_secs(3)).await;
    assert!(response.starts_with("HTTP/1.1 400"), "{response}");
    assert!(
        response.contains("both Content-Length and Transfer-Encoding"),
        "{response}"
    );
    assert_eq!(
        response.matches("HTTP/1.1").count(),
        1,
        "one answer, then close: {response}"
    );
    assert_eq!(legacy.requests(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_headers_get_431() {
    let (proxy, legacy) = setup().await;
    let big = "a".repeat(70 * 1024);
    let request = format!("GET / HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n");
    let response = raw_exchange(&proxy.addr(), request.as_bytes(), Duration::from_secs(3)).await;
    assert!(
        response.starts_with("HTTP/1.1 431"),
        "{}",
        &response[..response.len().min(200)]
    );
    let many: String = (0..120).map(|i| format!("X-H{i}: v\r\n")).collect();
    let request = format!("GET / HTTP/1.1\r\nHost: x\r\n{many}\r\n");
    let response = raw_exchange(&proxy.addr(), request.as_bytes(), Duration::from_secs(3)).await;
    assert!(response.starts_with("HTTP/1.1 431"), "{response}");
    assert_eq!(legacy.requests(), 0);
    // Just under the limits still passes.
    let fine = "a".repeat(60 * 1024);
    let r = Http::new().get(&proxy.url("/"), &[("x-big", &fine)]).await;
    assert_eq!(r.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_clients_are_served() {
    let (proxy, _) = setup().await;
    let r = Http::h2c().get(&proxy.url("/api/h2"), &[]).await;
    assert_eq!(r.status, 200);
    let json = r.json();
    assert_eq!(json["backend"], "legacy");
    assert_eq!(json["path"], "/api/h2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_upgrades_pass_through() {
    let (proxy, _) = setup().await;
    let mut s = tokio::net::TcpStream::connect(proxy.addr()).await.unwrap();
    s.write_all(
        b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await
    .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let head = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    s.write_all(b"ping-through-the-proxy").await.unwrap();
    let mut got = Vec::new();
    while got.len() < 22 {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(&got, b"ping-through-the-proxy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_connections_are_kept_alive_and_reused() {
    let (proxy, legacy) = setup().await;
    let http = Http::new();
    for _ in 0..200 {
        assert_eq!(http.get(&proxy.url("/x"), &[]).await.status, 200);
    }
    assert_eq!(legacy.requests(), 200);
    // One client connection, sequential requests: each proxy worker needs at
    // most one upstream connection.
    assert!(
        legacy.connections() <= 2,
        "{} upstream connections for 200 requests",
        legacy.connections()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_optional_tls_listener_serves_http1_and_http2() {
    if std::process::Command::new("openssl")
        .arg("version")
        .output()
        .is_err()
    {
        panic!("openssl(1) is needed to make a test certificate");
    }
    let legacy = Backend::start("legacy").await;
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let status = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let tls_port = free_port();
    let template = format!(
        "version: 1\nlisten: 127.0.0.1:{{listen}}\ntls: {{ listen: \"127.0.0.1:{tls_port}\", cert: \"{}\", key: \"{}\" }}\nadmin: {{ listen: \"127.0.0.1:{{admin}}\" }}\nbackends:\n  legacy: {{ url: \"{}\" }}\ndefault: legacy\n",
        cert.display(),
        key.display(),
        legacy.url()
    );
    let _proxy = Proxy::start_template(&template).await;
    for (flag, version) in [("--http1.1", "HTTP/1.1"), ("--http2", "HTTP/2")] {
        let out = std::process::Command::new("curl")
            .args([
                "-sk",
                flag,
                "-w",
                "\n%{http_version}",
                &format!("https://127.0.0.1:{tls_port}/secure"),
            ])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (body, got) = text.rsplit_once('\n').unwrap();
        assert_eq!(format!("HTTP/{got}"), version, "{text}");
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["backend"], "legacy");
        assert_eq!(json["headers"]["x-forwarded-proto"], "https", "{body}");
    }
}
