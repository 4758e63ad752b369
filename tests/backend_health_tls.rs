//! The backend side of "Real topology": upstream TLS (a private CA, a
//! client certificate, SNI, `tls_verify: false` said loudly) and the health
//! of backend addresses (active checks, passive ejection, re-admission,
//! fail open, `strangler_backend_up`).
//!
//! HTTPS backends are HAProxy terminating TLS with certificates made by the
//! `openssl` CLI in the test (`harness/tls.rs`); a black-holed address is a
//! listener that accepts and never answers until the test lets it
//! (`harness/health.rs`). No timing is asserted: state is polled with
//! generous bounds.

use std::time::Duration;

use strangler_e2e::health::Switchable;
use strangler_e2e::proxy::run_cli;
use strangler_e2e::tls::{Pki, TlsFront};
use strangler_e2e::{Backend, BlackHole, Http, Mode, Proxy, Scrape, eventually};

const WAIT: Duration = Duration::from_secs(20);

fn up(m: &Scrape, backend: &str, address: &str) -> Option<f64> {
    m.samples
        .iter()
        .find(|s| {
            s.name == "strangler_backend_up"
                && s.labels.get("backend").map(String::as_str) == Some(backend)
                && s.labels.get("address").map(String::as_str) == Some(address)
        })
        .map(|s| s.value)
}

fn tls_errors(m: &Scrape) -> f64 {
    m.sum("strangler_upstream_errors_total", &[("kind", "tls")])
}

/// Polls until `backend`'s `address` has `strangler_backend_up` = `value`.
async fn wait_up(proxy: &Proxy, backend: &str, address: &str, value: f64) {
    let seen = eventually(WAIT, || async {
        let m = proxy.metrics().await;
        (up(&m, backend, address) == Some(value)).then_some(())
    })
    .await;
    assert!(
        seen.is_some(),
        "{backend} {address} never had up={value}:\n{}\n{}",
        proxy.metrics().await.text,
        proxy.logs()
    );
}

// ---------------------------------------------------------------------------
// Upstream TLS
// ---------------------------------------------------------------------------

/// With `tls.ca` the proxy trusts the private CA; without it the handshake
/// fails: a 502 naming the backend, counted as `kind="tls"`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_ca_is_trusted_with_tls_ca_and_refused_without() {
    let pki = Pki::new();
    let (cert, key) = pki.issue("server", "IP:127.0.0.1,DNS:localhost", "serverAuth");
    let plain = Backend::start("orders").await;
    let front = TlsFront::start(&cert, &key, None, &plain).await;
    let port = front.addr.port();

    let trusted = Proxy::start(&format!(
        "backends:\n  orders:\n    url: {}\n    tls: {{ ca: {} }}\ndefault: orders\n",
        front.url(),
        pki.ca().display()
    ))
    .await;
    let r = Http::new().get(&trusted.url("/api/x"), &[]).await;
    assert_eq!(r.status, 200, "{}\n{}", r.text(), trusted.logs());
    assert_eq!(r.backend(), "orders");
    let m = trusted.metrics().await;
    assert_eq!(tls_errors(&m), 0.0, "{}", m.text);
    // Exported from the start, up until shown otherwise.
    assert_eq!(up(&m, "orders", &format!("127.0.0.1:{port}")), Some(1.0));
    assert_eq!(
        m.sum(
            "strangler_backend_fail_open_total",
            &[("backend", "orders")]
        ),
        0.0
    );
    assert_eq!(
        m.series("strangler_backend_fail_open_total"),
        1,
        "{}",
        m.text
    );

    // Another CA than the one that signed the backend's certificate.
    let other = pki.other_ca("other-ca");
    let untrusting = Proxy::start(&format!(
        "backends:\n  orders:\n    url: {}\n    tls: {{ ca: {} }}\ndefault: orders\n",
        front.url(),
        other.display()
    ))
    .await;
    let before = plain.requests();
    let r = Http::new().get(&untrusting.url("/api/x"), &[]).await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(
        r.text().contains("backend orders"),
        "the body names the backend: {}",
        r.text()
    );
    assert_eq!(plain.requests(), before, "nothing reached the backend");
    let m = untrusting.metrics_settled().await;
    assert!(tls_errors(&m) >= 1.0, "{}", m.text);
    // A certificate problem is the whole backend's, not one address's: it
    // does not eject the address.
    assert_eq!(up(&m, "orders", &format!("127.0.0.1:{port}")), Some(1.0));
}

/// A backend that requires a client certificate: served with
/// `client_cert`/`client_key`, refused without. A shadow copy to it uses
/// the same certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_requiring_a_client_certificate_gets_one() {
    let pki = Pki::new();
    let (cert, key) = pki.issue("server", "IP:127.0.0.1", "serverAuth");
    let (client_cert, client_key) = pki.issue("proxy-client", "DNS:proxy", "clientAuth");
    let plain = Backend::start("orders").await;
    let legacy = Backend::start("legacy").await;
    let front = TlsFront::start(&cert, &key, Some(&pki.ca()), &plain).await;

    let with_cert = Proxy::start(&format!(
        r#"
backends:
  legacy: {{ url: "{legacy}" }}
  orders:
    url: {url}
    tls: {{ ca: {ca}, client_cert: {cc}, client_key: {ck} }}
default: legacy
routes:
  - name: orders
    match: {{ path: /orders }}
    new: orders
    canary: 100
  - name: orders-shadowed
    match: {{ path: /shadowed }}
    new: orders
    canary: 0
    shadow: {{ percent: 100 }}
"#,
        legacy = legacy.url(),
        url = front.url(),
        ca = pki.ca().display(),
        cc = client_cert.display(),
        ck = client_key.display(),
    ))
    .await;
    let r = Http::new().get(&with_cert.url("/orders/1"), &[]).await;
    assert_eq!(r.status, 200, "{}\n{}", r.text(), with_cert.logs());
    assert_eq!(r.backend(), "orders");
    let seen = plain.seen();
    assert_eq!(
        seen.last().and_then(|s| s.header("x-seen-client-cert")),
        Some("1"),
        "HAProxy saw the client certificate"
    );

    // The shadow copy goes to the same backend with the same TLS settings.
    let r = Http::new().get(&with_cert.url("/shadowed/1"), &[]).await;
    assert_eq!(r.backend(), "legacy");
    let copy = eventually(WAIT, || async {
        plain
            .seen()
            .into_iter()
            .find(|s| s.path == "/shadowed/1" && s.header("x-strangler-shadow").is_some())
    })
    .await;
    let copy = copy.unwrap_or_else(|| panic!("no shadow copy over mTLS:\n{}", with_cert.logs()));
    assert_eq!(copy.header("x-seen-client-cert"), Some("1"));

    let without = Proxy::start(&format!(
        "backends:\n  orders:\n    url: {}\n    tls: {{ ca: {} }}\ndefault: orders\n",
        front.url(),
        pki.ca().display()
    ))
    .await;
    let before = plain.requests();
    let r = Http::new().get(&without.url("/orders/1"), &[]).await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(r.text().contains("backend orders"), "{}", r.text());
    assert_eq!(plain.requests(), before, "nothing reached the backend");
}

/// `sni` is what the proxy sends and what the certificate is checked
/// against: a certificate valid only for that name is accepted for a URL
/// by IP address, and the backend sees the name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sni_is_sent_as_configured_and_the_certificate_checked_against_it() {
    let pki = Pki::new();
    let (cert, key) = pki.issue("orders", "DNS:orders.internal", "serverAuth");
    let plain = Backend::start("orders").await;
    let front = TlsFront::start(&cert, &key, None, &plain).await;

    let with_sni = Proxy::start(&format!(
        "backends:\n  orders:\n    url: {}\n    tls: {{ ca: {}, sni: orders.internal }}\ndefault: orders\n",
        front.url(),
        pki.ca().display()
    ))
    .await;
    let r = Http::new().get(&with_sni.url("/x"), &[]).await;
    assert_eq!(r.status, 200, "{}\n{}", r.text(), with_sni.logs());
    let seen = plain.seen();
    assert_eq!(
        seen.last().and_then(|s| s.header("x-seen-sni")),
        Some("orders.internal")
    );

    // Without it, the URL's host (an IP address) is checked: the
    // certificate does not cover it.
    let without = Proxy::start(&format!(
        "backends:\n  orders:\n    url: {}\n    tls: {{ ca: {} }}\ndefault: orders\n",
        front.url(),
        pki.ca().display()
    ))
    .await;
    let r = Http::new().get(&without.url("/x"), &[]).await;
    assert_eq!(r.status, 502, "{}", r.text());
    let m = without.metrics_settled().await;
    assert!(tls_errors(&m) >= 1.0, "{}", m.text);
}

/// `tls_verify: false` works but is said loudly, by `check` and `serve`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_verify_false_is_a_loud_warning_not_an_error() {
    let pki = Pki::new();
    let (cert, key) = pki.issue("server", "IP:127.0.0.1", "serverAuth");
    let plain = Backend::start("orders").await;
    let front = TlsFront::start(&cert, &key, None, &plain).await;
    let body = format!(
        "backends:\n  orders:\n    url: {}\n    tls_verify: false\ndefault: orders\n",
        front.url()
    );
    let proxy = Proxy::start(&body).await;
    let r = Http::new().get(&proxy.url("/x"), &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        proxy.logs().contains(
            "backends.orders.tls_verify: false: the certificate of backend orders is NOT checked"
        ),
        "{}",
        proxy.logs()
    );
    let (code, stdout, stderr) = run_cli(&["check", &proxy.config_path.display().to_string()]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    // A warning reads like a compiler's: file:line:column: warning: ...
    assert!(
        stderr.contains(": warning: backends.orders.tls_verify: false"),
        "{stderr}"
    );
}

// ---------------------------------------------------------------------------
// Health
// ---------------------------------------------------------------------------

/// A pool with one black-holed address: active checks eject it, requests
/// keep succeeding on the other; once it answers, passing checks re-admit
/// it and it serves again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_black_holed_address_is_ejected_and_readmitted_when_it_answers() {
    let good = Backend::start("good").await;
    let hole = Switchable::start_silent().await;
    let proxy = Proxy::start(&format!(
        r#"
backends:
  pool:
    urls: ["{}", "{}"]
    read_timeout: 2s
    health: {{ path: /healthz, interval: 200ms, timeout: 150ms, unhealthy_after: 2, healthy_after: 2 }}
default: pool
"#,
        good.url(),
        hole.url()
    ))
    .await;
    let good_addr = good.addr.to_string();
    let hole_addr = hole.addr.to_string();
    wait_up(&proxy, "pool", &hole_addr, 0.0).await;
    let m = proxy.metrics().await;
    assert_eq!(up(&m, "pool", &good_addr), Some(1.0), "{}", m.text);

    for i in 0..20 {
        let r = Http::new().get(&proxy.url(&format!("/req/{i}")), &[]).await;
        assert_eq!(r.status, 200, "request {i}: {}", r.text());
        assert_eq!(r.backend(), "good");
    }
    assert_eq!(
        proxy
            .metrics()
            .await
            .sum("strangler_backend_fail_open_total", &[("backend", "pool")]),
        0.0
    );

    hole.answer();
    wait_up(&proxy, "pool", &hole_addr, 1.0).await;
    let served = eventually(WAIT, || async {
        let r = Http::new().get(&proxy.url("/after"), &[]).await;
        assert_eq!(r.status, 200);
        (r.backend() == "switchable").then_some(())
    })
    .await;
    assert!(served.is_some(), "the re-admitted address never served");
    assert!(
        proxy.logs().contains("ejected"),
        "the ejection is logged:\n{}",
        proxy.logs()
    );
}

/// Without `health:`, real requests that time out on an address eject it
/// (passive ejection, on by default as in nginx); the pool keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_of_real_requests_eject_an_address_without_health_checks() {
    let good = Backend::start("good").await;
    let hole = BlackHole::start().await;
    let proxy = Proxy::start(&format!(
        "backends:\n  pool:\n    urls: [\"{}\", \"{}\"]\n    read_timeout: 300ms\ndefault: pool\n",
        good.url(),
        hole.url()
    ))
    .await;
    let hole_addr = hole.addr.to_string();
    let ejected = eventually(WAIT, || async {
        let _ = Http::new().get(&proxy.url("/x"), &[]).await;
        let m = proxy.metrics().await;
        (up(&m, "pool", &hole_addr) == Some(0.0)).then_some(())
    })
    .await;
    assert!(ejected.is_some(), "{}", proxy.logs());
    for i in 0..10 {
        let r = Http::new().get(&proxy.url(&format!("/ok/{i}")), &[]).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.backend(), "good");
    }
}

/// What was learnt about an address survives a reload that keeps it: an
/// ejected address stays out (its series stays 0) in the new version. The
/// check's timeout is long, so a version that forgot would show the
/// address up (and send it requests) for seconds before a check failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ejected_address_stays_ejected_across_a_reload() {
    let good = Backend::start("good").await;
    let hole = BlackHole::start().await;
    let body = |read_timeout: &str| {
        format!(
            "backends:\n  pool:\n    urls: [\"{}\", \"{}\"]\n    read_timeout: {read_timeout}\n    \
             health: {{ interval: 10s, timeout: 4s, unhealthy_after: 1 }}\ndefault: pool\n",
            good.url(),
            hole.url()
        )
    };
    let proxy = Proxy::start(&body("1s")).await;
    let hole_addr = hole.addr.to_string();
    wait_up(&proxy, "pool", &hole_addr, 0.0).await;
    let version = proxy.version().await;
    proxy.rewrite_body(&body("2s"));
    proxy.wait_version(version + 1).await;
    let m = proxy.metrics().await;
    assert_eq!(up(&m, "pool", &hole_addr), Some(0.0), "{}", m.text);
    assert_eq!(
        up(&m, "pool", &good.addr.to_string()),
        Some(1.0),
        "{}",
        m.text
    );
    for i in 0..6 {
        let r = Http::new()
            .get(&proxy.url(&format!("/after/{i}")), &[])
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.backend(), "good");
    }
}

/// Every address failing its checks: requests still go (fail open) and are
/// answered, counted in `strangler_backend_fail_open_total`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_with_every_address_down_still_gets_traffic() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    for backend in [&a, &b] {
        backend.set_mode(Mode::Script(std::sync::Arc::new(|seen| {
            if seen.path == "/healthz" {
                (503, vec![], b"down".to_vec())
            } else {
                (200, vec![], b"served anyway".to_vec())
            }
        })));
    }
    let proxy = Proxy::start(&format!(
        r#"
backends:
  pool:
    urls: ["{}", "{}"]
    health: {{ path: /healthz, interval: 200ms, timeout: 150ms, unhealthy_after: 1 }}
default: pool
"#,
        a.url(),
        b.url()
    ))
    .await;
    wait_up(&proxy, "pool", &a.addr.to_string(), 0.0).await;
    wait_up(&proxy, "pool", &b.addr.to_string(), 0.0).await;
    for i in 0..4 {
        let r = Http::new().get(&proxy.url(&format!("/x/{i}")), &[]).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.text(), "served anyway");
    }
    let m = proxy.metrics().await;
    assert!(
        m.sum("strangler_backend_fail_open_total", &[("backend", "pool")]) >= 4.0,
        "{}",
        m.text
    );
}

// ---------------------------------------------------------------------------
// Names resolved again
// ---------------------------------------------------------------------------

/// A backend named by host name moves to another address: the proxy finds
/// it by resolving the name again in the background (every 30 s), drops the
/// old address's series and serves from the new one. The proxy runs in a
/// mount namespace of its own with a private `/etc/hosts` the test edits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_name_that_moves_is_followed() {
    const NAME: &str = "strangler-moving.test";
    let first = Switchable::start_at("127.0.0.1:0", true, "first").await;
    let port = first.addr.port();
    let second = Switchable::start_at(&format!("127.0.0.2:{port}"), true, "second").await;
    let template = format!(
        "version: 1\nlisten: 127.0.0.1:{{listen}}\nadmin:\n  listen: 127.0.0.1:{{admin}}\n  \
         token_env: STRANGLER_ADMIN_TOKEN\nstore: sqlite://{{dir}}/strangler.db\n\
         backends:\n  moving: {{ url: \"http://{NAME}:{port}\" }}\ndefault: moving\n"
    );
    let hosts_setup = format!(
        "printf '127.0.0.1 {NAME}\\n' > {{dir}}/hosts && mount --bind {{dir}}/hosts /etc/hosts && exec \"$@\""
    );
    let proxy = Proxy::start_wrapped(
        &template,
        &[],
        &[
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            &hosts_setup,
            "strangler-in-namespace",
        ],
    )
    .await;
    let r = Http::new().get(&proxy.url("/x"), &[]).await;
    assert_eq!(r.backend(), "first", "{}", r.text());
    let old = format!("127.0.0.1:{port}");
    let new = format!("127.0.0.2:{port}");
    assert_eq!(up(&proxy.metrics().await, "moving", &old), Some(1.0));

    // Written in place: the bind mount follows the file, not its name.
    std::fs::write(
        proxy.dir.path().join("hosts"),
        format!("127.0.0.2 {NAME}\n"),
    )
    .unwrap();
    let moved = eventually(Duration::from_secs(90), || async {
        let m = proxy.metrics().await;
        (up(&m, "moving", &new) == Some(1.0) && up(&m, "moving", &old).is_none()).then_some(())
    })
    .await;
    assert!(
        moved.is_some(),
        "{}\n{}",
        proxy.metrics().await.text,
        proxy.logs()
    );
    for _ in 0..3 {
        let r = Http::new().get(&proxy.url("/x"), &[]).await;
        assert_eq!(r.backend(), "second", "{}", r.text());
    }
    assert!(second.requests() >= 3);
    assert!(
        proxy.logs().contains("addresses now 127.0.0.2"),
        "{}",
        proxy.logs()
    );
}
