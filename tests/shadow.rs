//! Shadow traffic end to end: the real binary, a legacy and a new backend
//! that differ in known ways, then the store (SQLite, and PostgreSQL) holds
//! exactly the expected differences, with noise classed as noise.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use shadow_diff::{DiffAndHistoryStore, DiffQuery, FieldClass, Verdict};
use strangler_e2e::backend::{Answer, Script};
use strangler_e2e::{Backend, BlackHole, Http, Mode, Proxy, Seen, eventually};

static IDS: AtomicU64 = AtomicU64::new(1000);

fn json(status: u16, body: serde_json::Value) -> Answer {
    (
        status,
        vec![("content-type".into(), "application/json".into())],
        body.to_string().into_bytes(),
    )
}

/// Both sides put a fresh random-looking id in every answer.
fn id() -> u64 {
    IDS.fetch_add(7919, Ordering::SeqCst)
}

fn legacy_script() -> Script {
    Arc::new(|seen: &Seen| {
        let path = seen.path.split('?').next().unwrap_or_default().to_string();
        match path.as_str() {
            "/api/orders/renamed" => json(
                200,
                serde_json::json!({"id": id(), "status": "shipped", "total": 10}),
            ),
            "/api/orders/status" => json(200, serde_json::json!({"id": id(), "ok": true})),
            "/api/orders/reordered" => json(
                200,
                serde_json::json!({"a": 1, "b": {"x": 1, "y": [1, 2]}, "id": id()}),
            ),
            "/api/orders/secret" => {
                let mut a = json(
                    200,
                    serde_json::json!({"id": id(), "email": "ann@example.com", "name": "Ann"}),
                );
                a.1.push(("set-cookie".into(), "session=legacy-secret".into()));
                a
            }
            "/api/orders/big" => json(200, serde_json::json!({"pad": "x".repeat(4096)})),
            _ => json(200, serde_json::json!({"a": 1})),
        }
    })
}

fn new_script() -> Script {
    Arc::new(|seen: &Seen| {
        let path = seen.path.split('?').next().unwrap_or_default().to_string();
        match path.as_str() {
            "/api/orders/renamed" => json(
                200,
                serde_json::json!({"id": id(), "state": "shipped", "total": 10}),
            ),
            "/api/orders/status" => json(500, serde_json::json!({"id": id(), "ok": true})),
            // Same content, other key order and formatting.
            "/api/orders/reordered" => {
                let body = format!(
                    "{{\n  \"id\": {},\n  \"b\": {{ \"y\": [1, 2], \"x\": 1 }},\n  \"a\": 1\n}}",
                    id()
                );
                (
                    200,
                    vec![("content-type".into(), "application/json".into())],
                    body.into_bytes(),
                )
            }
            "/api/orders/secret" => {
                let mut a = json(
                    200,
                    serde_json::json!({"id": id(), "email": "bob@example.com", "name": "Bob"}),
                );
                a.1.push(("set-cookie".into(), "session=new-secret".into()));
                a
            }
            "/api/orders/big" => json(200, serde_json::json!({"pad": "y".repeat(4096)})),
            _ => json(200, serde_json::json!({"a": 1})),
        }
    })
}

fn config(legacy: &str, new: &str, extra_shadow: &str) -> String {
    format!(
        r#"
backends:
  legacy: {{ url: "{legacy}" }}
  new: {{ url: "{new}", connect_timeout: 1s }}
tenant:
  - header: X-Tenant-Id
default: legacy
routes:
  - name: orders
    match: {{ path: /api/orders }}
    new: new
    canary: 0
    shadow: {{ percent: 100, noise_sample: 100, timeout: 2s, redact: [/email]{extra_shadow} }}
"#
    )
}

async fn scripted_backends() -> (Backend, Backend) {
    let legacy = Backend::start("legacy").await;
    legacy.set_mode(Mode::Script(legacy_script()));
    let new = Backend::start("new").await;
    new.set_mode(Mode::Script(new_script()));
    (legacy, new)
}

async fn wait_stored(proxy: &Proxy, n: f64) {
    eventually(Duration::from_secs(20), || async {
        let m = proxy.metrics().await;
        (m.sum("strangler_shadow_stored_total", &[("route", "orders")]) >= n).then_some(())
    })
    .await
    .unwrap_or_else(|| panic!("{n} comparisons not stored; logs:\n{}", proxy.logs()));
}

fn fields(r: &shadow_diff::ComparisonRecord) -> Vec<(String, FieldClass)> {
    let mut f: Vec<(String, FieldClass)> = r
        .differences
        .iter()
        .map(|d| (d.difference.field.clone(), d.class))
        .collect();
    f.sort_by(|a, b| a.0.cmp(&b.0));
    f
}

/// The scenario on a given store: four requests, three stored differences.
async fn known_differences_are_stored(store: &str) {
    let (legacy, new) = scripted_backends().await;
    let proxy = Proxy::start_with_store(&config(&legacy.url(), &new.url(), ""), store).await;
    let http = Http::new();
    let mut ids = Vec::new();
    for path in ["renamed", "status", "reordered", "same"] {
        let r = http
            .get(
                &proxy.url(&format!("/api/orders/{path}")),
                &[("x-tenant-id", "acme")],
            )
            .await;
        // The client always gets the legacy (primary) answer.
        assert_eq!(r.status, 200, "{path}");
        ids.push(r.headers["x-request-id"].to_str().unwrap().to_string());
    }
    wait_stored(&proxy, 4.0).await;

    let m = proxy.metrics().await;
    assert_eq!(
        m.sum(
            "strangler_shadow_requests_total",
            &[("route", "orders"), ("outcome", "sent")]
        ),
        4.0
    );
    assert_eq!(
        m.sum("strangler_shadow_diffs_total", &[("verdict", "diff")]),
        2.0
    );
    assert_eq!(
        m.sum("strangler_shadow_diffs_total", &[("verdict", "noise")]),
        1.0
    );
    assert_eq!(
        m.sum("strangler_shadow_diffs_total", &[("verdict", "match")]),
        1.0
    );

    let db = DiffAndHistoryStore::connect(&proxy.store_url())
        .await
        .unwrap();
    let rows = db
        .diffs(&DiffQuery {
            route: Some("orders".into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        rows.len(),
        3,
        "only the three differing comparisons are rows: {rows:#?}"
    );
    let row = |suffix: &str| {
        rows.iter()
            .find(|r| r.request.path.ends_with(suffix))
            .unwrap_or_else(|| panic!("no row for {suffix}"))
    };

    let renamed = row("/renamed");
    assert_eq!(renamed.verdict, Verdict::Diff);
    assert_eq!(
        fields(renamed),
        vec![
            ("/id".into(), FieldClass::Noise),
            ("/state".into(), FieldClass::Real),
            ("/status".into(), FieldClass::Real)
        ]
    );
    assert_eq!(renamed.id, ids[0], "the row carries the request id");
    assert_eq!(renamed.config_version, 1);
    assert_eq!(renamed.tenant.as_deref(), Some("acme"));
    assert_eq!(renamed.primary_side, "legacy");

    let status = row("/status");
    assert_eq!(status.verdict, Verdict::Diff);
    assert_eq!(
        fields(status),
        vec![
            ("/id".into(), FieldClass::Noise),
            ("status".into(), FieldClass::Real)
        ]
    );
    let s = status
        .differences
        .iter()
        .find(|d| d.difference.field == "status")
        .unwrap();
    assert_eq!(
        (s.difference.legacy.as_deref(), s.difference.new.as_deref()),
        (Some("200"), Some("500"))
    );
    assert_eq!((status.legacy.status, status.new.status), (200, 500));

    let reordered = row("/reordered");
    assert_eq!(
        reordered.verdict,
        Verdict::Noise,
        "key order and formatting never count"
    );
    assert_eq!(fields(reordered), vec![("/id".into(), FieldClass::Noise)]);

    let counts = db
        .counts(shadow_diff::Source::Shadow, Some("orders"), None, None)
        .await
        .unwrap();
    let by = |v: Verdict| {
        counts
            .iter()
            .filter(|c| c.verdict == v)
            .map(|c| c.n)
            .sum::<i64>()
    };
    assert_eq!(
        (by(Verdict::Match), by(Verdict::Diff), by(Verdict::Noise)),
        (1, 2, 1)
    );

    // The copy was marked; the noise probe went to legacy; the request id
    // travelled with both.
    let copies = new.seen();
    assert_eq!(copies.len(), 4);
    assert!(
        copies
            .iter()
            .all(|s| s.header("x-strangler-shadow") == Some("1"))
    );
    assert!(
        copies
            .iter()
            .any(|s| s.header("x-request-id") == Some(ids[0].as_str()))
    );
    let probes = legacy
        .seen()
        .into_iter()
        .filter(|s| s.header("x-strangler-shadow") == Some("noise"))
        .count();
    assert_eq!(probes, 4);

    // Noise evidence is flushed to the store every few seconds.
    let noise = eventually(Duration::from_secs(10), || async {
        let models = db.noise_models().await.unwrap();
        models
            .get("orders")
            .filter(|m| m.comparisons >= 4)
            .cloned()
            .map(|m| (models.len(), m))
    })
    .await
    .expect("noise evidence stored")
    .1;
    assert_eq!(noise.legacy_pairs, 4);
    let noise = std::collections::HashMap::from([("orders".to_string(), noise)]);
    assert_eq!(noise["orders"].class_of("/id"), FieldClass::Noise);
    assert_eq!(noise["orders"].class_of("/status"), FieldClass::Real);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_differences_are_stored_in_sqlite() {
    known_differences_are_stored("sqlite://{dir}/strangler.db").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_differences_are_stored_in_postgres() {
    let url = shadow_diff::store::testing::fresh_postgres_url("e2e").await;
    known_differences_are_stored(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_redacted_before_storing() {
    let (legacy, new) = scripted_backends().await;
    let proxy = Proxy::start(&config(&legacy.url(), &new.url(), "")).await;
    let r = Http::new()
        .get(
            &proxy.url("/api/orders/secret?token=s3cr3t&page=2"),
            &[
                ("authorization", "Bearer top-secret"),
                ("cookie", "session=abc"),
            ],
        )
        .await;
    assert_eq!(r.status, 200);
    wait_stored(&proxy, 1.0).await;
    let db = DiffAndHistoryStore::connect(&proxy.store_url())
        .await
        .unwrap();
    let rows = db
        .diffs(&DiffQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    let stored = serde_json::to_string(&rows[0]).unwrap();
    for secret in [
        "top-secret",
        "session=abc",
        "s3cr3t",
        "legacy-secret",
        "new-secret",
        "ann@example.com",
        "bob@example.com",
    ] {
        assert!(!stored.contains(secret), "{secret} was stored: {stored}");
    }
    assert!(rows[0].request.path.contains("page=2"));
    let name = rows[0]
        .differences
        .iter()
        .find(|d| d.difference.field == "/name")
        .unwrap();
    assert_eq!(
        name.difference.new.as_deref(),
        Some("\"Bob\""),
        "what is not secret stays readable"
    );
    let email = rows[0]
        .differences
        .iter()
        .find(|d| d.difference.field == "/email")
        .unwrap();
    assert_eq!(email.difference.new.as_deref(), Some("[redacted]"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsafe_methods_and_large_bodies_are_skipped_and_counted() {
    let (legacy, new) = scripted_backends().await;
    let proxy = Proxy::start(&config(&legacy.url(), &new.url(), ", max_body: 1KiB")).await;
    let http = Http::new();
    assert_eq!(
        http.post(&proxy.url("/api/orders/renamed"), &[], b"{}")
            .await
            .status,
        200
    );
    assert_eq!(
        http.get(&proxy.url("/api/orders/big"), &[]).await.status,
        200
    );
    let big_request = vec![b'x'; 4096];
    let r = http
        .send(
            http::Method::GET,
            &proxy.url("/api/orders/same"),
            &[],
            &big_request,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let m = proxy.metrics().await;
    assert_eq!(
        m.sum(
            "strangler_shadow_dropped_total",
            &[("route", "orders"), ("reason", "method")]
        ),
        1.0
    );
    assert_eq!(
        m.sum(
            "strangler_shadow_dropped_total",
            &[("route", "orders"), ("reason", "too_large")]
        ),
        2.0
    );
    assert_eq!(
        m.sum(
            "strangler_shadow_requests_total",
            &[("route", "orders"), ("outcome", "skipped")]
        ),
        3.0
    );
    assert!(
        new.seen().is_empty(),
        "nothing reached the new side: {:?}",
        new.seen().iter().map(|s| &s.path).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_or_silent_shadow_target_never_fails_a_client_request() {
    let legacy = Backend::start("legacy").await;
    // Port 1 (tcpmux) has no listener and nothing else binds it: refused.
    let dead = "http://127.0.0.1:1".to_string();
    let proxy = Proxy::start(&config(&legacy.url(), &dead, "")).await;
    let http = Http::new();
    for i in 0..20 {
        assert_eq!(
            http.get(&proxy.url(&format!("/api/orders/{i}")), &[])
                .await
                .status,
            200
        );
    }
    let m = eventually(Duration::from_secs(10), || async {
        let m = proxy.metrics().await;
        (m.sum("strangler_shadow_requests_total", &[("outcome", "error")]) >= 20.0).then_some(m)
    })
    .await
    .expect("copies to a dead target are counted as errors");
    assert_eq!(
        m.sum(
            "strangler_requests_total",
            &[("route", "orders"), ("status_class", "2xx")]
        ),
        20.0
    );
    drop(proxy);

    let hole = BlackHole::start().await;
    let proxy = Proxy::start(
        &config(&legacy.url(), &hole.url(), "").replace("timeout: 2s", "timeout: 300ms"),
    )
    .await;
    for i in 0..5 {
        assert_eq!(
            http.get(&proxy.url(&format!("/api/orders/{i}")), &[])
                .await
                .status,
            200
        );
    }
    eventually(Duration::from_secs(10), || async {
        let m = proxy.metrics().await;
        (m.sum("strangler_shadow_requests_total", &[("outcome", "timeout")]) >= 5.0).then_some(())
    })
    .await
    .expect("copies to a silent target time out and are counted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_store_loses_nothing_but_diffs_and_counts_them() {
    let (legacy, new) = scripted_backends().await;
    // Nothing listens on port 9.
    let proxy = Proxy::start_with_store(
        &config(&legacy.url(), &new.url(), ""),
        "postgres://postgres@127.0.0.1:9/test",
    )
    .await;
    let http = Http::new();
    for _ in 0..10 {
        assert_eq!(
            http.get(&proxy.url("/api/orders/renamed"), &[])
                .await
                .status,
            200
        );
    }
    let m = eventually(Duration::from_secs(20), || async {
        let m = proxy.metrics().await;
        (m.sum("strangler_shadow_dropped_total", &[("reason", "store")]) >= 10.0).then_some(m)
    })
    .await
    .unwrap_or_else(|| panic!("store drops not counted; logs:\n{}", proxy.logs()));
    assert_eq!(m.sum("strangler_shadow_diffs_total", &[]), 10.0);
    assert_eq!(m.sum("strangler_shadow_stored_total", &[]), 0.0);
    // The books balance: every compared pair is stored or dropped.
    assert_eq!(
        m.sum("strangler_shadow_dropped_total", &[("reason", "store")]),
        10.0
    );
}

/// Only the proxy marks shadow copies: a client's `X-Strangler-Shadow` never
/// reaches a backend, on the primary request or its copy, while the proxy's
/// own marker still reaches the shadow side.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_cannot_pose_as_a_shadow_copy() {
    let legacy = Backend::start("legacy").await;
    let new = Backend::start("new").await;
    let proxy = Proxy::start(&format!(
        "backends:\n  legacy: {{ url: \"{}\" }}\n  new: {{ url: \"{}\" }}\ndefault: legacy\nroutes:\n  - name: orders\n    match: {{ path: /api/orders }}\n    new: new\n    shadow: {{ percent: 100 }}\n",
        legacy.url(),
        new.url()
    ))
    .await;
    let forged = "shadow-forged-by-client";
    let reply = Http::new()
        .get(
            &proxy.url("/api/orders/1"),
            &[("x-strangler-shadow", forged)],
        )
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.backend(), "legacy");
    let copy = eventually(Duration::from_secs(10), || async {
        new.seen().into_iter().find(|s| s.path == "/api/orders/1")
    })
    .await
    .expect("the shadow copy reached the new side");
    let primary = legacy
        .seen()
        .into_iter()
        .find(|s| s.path == "/api/orders/1")
        .expect("the primary request reached legacy");
    assert_eq!(
        primary.header("x-strangler-shadow"),
        None,
        "{:?}",
        primary.headers
    );
    let marker = copy.header("x-strangler-shadow");
    assert!(
        marker.is_some(),
        "the proxy marks its copy: {:?}",
        copy.headers
    );
    assert_ne!(marker, Some(forged), "{:?}", copy.headers);
    assert_eq!(
        copy.headers
            .iter()
            .filter(|(k, _)| k == "x-strangler-shadow")
            .count(),
        1
    );
}

/// The name and nice value in a `/proc/.../stat` line.
fn name_and_nice(stat: &str) -> (String, i64) {
    let (open, close) = (stat.find('(').unwrap(), stat.rfind(')').unwrap());
    // After the name, the state is stat's 3rd field and nice its 19th.
    let nice = stat[close + 2..]
        .split(' ')
        .nth(19 - 3)
        .and_then(|n| n.parse().ok())
        .expect("nice");
    (stat[open + 1..close].to_string(), nice)
}

/// Each thread of process `pid` as `ps -L` shows it: name and nice value.
fn threads_and_nice(pid: u32) -> Vec<(String, i64)> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("the proxy's threads")
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("stat")).ok())
        .map(|stat| name_and_nice(&stat))
        .collect()
}

/// What an operator sees in `top -H`: the shadow engine's thread at the
/// lowest priority (nice 19), the workers that serve clients at the
/// process's own, so copies and diffs take only the CPU the clients leave.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shadow_engine_runs_below_the_workers_priority() {
    let (legacy, new) = scripted_backends().await;
    let proxy = Proxy::start(&config(&legacy.url(), &new.url(), "")).await;
    let http = Http::new();
    assert_eq!(http.get(&proxy.url("/api/orders/1"), &[]).await.status, 200);
    wait_stored(&proxy, 1.0).await;

    let threads = threads_and_nice(proxy.pid());
    // Pingora names a background service's thread "BG " and the service's
    // name, and Linux cuts thread names at 15 bytes.
    let nice_of = |name: &str| -> Vec<i64> {
        threads
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, nice)| *nice)
            .collect()
    };
    assert_eq!(nice_of("BG strangler sh"), vec![19], "threads: {threads:?}");
    // The process's own priority is whatever it was started with (0 unless
    // the runner is niced); the workers keep it.
    let (_, own) = name_and_nice(
        &std::fs::read_to_string(format!("/proc/{}/stat", proxy.pid())).expect("the proxy's stat"),
    );
    assert!(
        own < 19,
        "the proxy was started at the lowest priority already"
    );
    let workers = nice_of("strangler proxy");
    assert!(!workers.is_empty(), "threads: {threads:?}");
    assert!(workers.iter().all(|n| *n == own), "threads: {threads:?}");
}
