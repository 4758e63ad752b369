//! Record and replay end to end: the real binary records real traffic
//! (redacted) into the real store, `strangler replay` sends it to a second
//! backend that differs in one field, and the store and the report show that
//! field as a replay difference, apart from live comparisons. Credentials
//! recorded as `[redacted]` reach the target only as the route's
//! `replay.headers` value; a store that stops answering while recording
//! never touches a client request. On SQLite and on PostgreSQL.

use std::sync::Arc;
use std::time::Duration;

use shadow_diff::{DiffAndHistoryStore, DiffQuery, FieldClass, Source, Verdict};
use strangler_e2e::backend::Answer;
use strangler_e2e::proxy::run_cli;
use strangler_e2e::relay::{Cut, postgres_through_relay};
use strangler_e2e::{Backend, Http, Mode, Proxy, Seen, eventually};

const LIVE_SECRET: &str = "Bearer live-secret-4f1c";
const REPLAY_CREDENTIAL: &str = "Bearer replay-credential";

/// An order; `total` is where the two versions differ.
fn orders(total: u64) -> Mode {
    Mode::Script(Arc::new(move |seen: &Seen| -> Answer {
        let (status, body) = match (seen.method.as_str(), seen.path.as_str()) {
            ("POST", _) => (201, serde_json::json!({"created": true})),
            (_, path) => {
                let id = path.rsplit('/').next().unwrap_or_default().to_string();
                (
                    200,
                    serde_json::json!({"id": id, "status": "shipped", "total": total}),
                )
            }
        };
        (
            status,
            vec![("content-type".into(), "application/json".into())],
            body.to_string().into_bytes(),
        )
    }))
}

/// `orders` is recorded and replayed with a credential; `carts` lets
/// writes be replayed; `profile` has a secret header and no replacement.
fn config(legacy: &str, v2: &str) -> String {
    format!(
        r#"
backends:
  monolith: {{ url: "{legacy}" }}
  orders-v1: {{ url: "{legacy}" }}
  orders-v2: {{ url: "{v2}" }}
tenant:
  - header: X-Tenant-Id
default: monolith
routes:
  - name: orders
    match: {{ path: /api/orders }}
    new: orders-v1
    record: {{ percent: 100 }}
    replay:
      headers: {{ Authorization: {{ env: ORDERS_REPLAY_TOKEN }}, X-Replayed-By: tests }}
  - name: carts
    match: {{ path: /api/carts }}
    new: orders-v1
    record: {{ percent: 100 }}
    replay: {{ allow_writes: true }}
  - name: profile
    match: {{ path: /api/profile }}
    new: orders-v1
    record: {{ percent: 100 }}
  - name: uploads
    match: {{ path: /api/uploads }}
    new: orders-v1
    record: {{ percent: 100, max_body: 1KiB }}
"#
    )
}

async fn wait_recorded(proxy: &Proxy, route: &str, n: f64) {
    let found = eventually(Duration::from_secs(30), || async {
        let m = proxy.metrics().await;
        let stored = m.sum(
            "strangler_record_total",
            &[("route", route), ("outcome", "stored")],
        );
        (stored >= n).then_some(())
    })
    .await;
    if found.is_none() {
        let m = proxy.metrics().await;
        let outcomes: Vec<(&str, f64)> =
            ["stored", "store", "queue_full", "too_large", "unanswered"]
                .into_iter()
                .map(|o| {
                    (
                        o,
                        m.sum(
                            "strangler_record_total",
                            &[("route", route), ("outcome", o)],
                        ),
                    )
                })
                .collect();
        panic!(
            "{n} recordings of {route} not stored: {outcomes:?}; logs:\n{}",
            proxy.logs()
        );
    }
}

fn replay(proxy: &Proxy, route: &str, to: &str) -> (i32, String, String) {
    let config = proxy.config_path.display().to_string();
    run_cli(&[
        "replay", "--route", route, "--since", "1h", "--to", to, "--rate", "200", "--config",
        &config,
    ])
}

async fn record_then_replay(store: &str) {
    let legacy = Backend::start("legacy").await;
    legacy.set_mode(orders(10));
    let v2 = Backend::start("v2").await;
    v2.set_mode(orders(12));
    // The credential is the proxy's to read, never written in the file.
    let proxy = Proxy::start_with_env(
        &config(&legacy.url(), &v2.url()),
        store,
        &[("ORDERS_REPLAY_TOKEN", REPLAY_CREDENTIAL)],
    )
    .await;
    let http = Http::new();
    for i in 0..10 {
        let r = http
            .get(
                &proxy.url(&format!("/api/orders/{i}")),
                &[("authorization", LIVE_SECRET), ("x-tenant-id", "acme")],
            )
            .await;
        assert_eq!(r.status, 200);
    }
    // A write on a route without allow_writes: recorded, never replayed.
    let r = http
        .post(&proxy.url("/api/orders"), &[], br#"{"item": 1}"#)
        .await;
    assert_eq!(r.status, 201);
    let r = http
        .post(&proxy.url("/api/carts"), &[], br#"{"item": 2}"#)
        .await;
    assert_eq!(r.status, 201);
    let r = http
        .get(&proxy.url("/api/profile/me"), &[("cookie", "session=live")])
        .await;
    assert_eq!(r.status, 200);
    // Over the route's record.max_body: served, not recorded, counted.
    let r = http
        .post(&proxy.url("/api/uploads"), &[], &[b'x'; 4096])
        .await;
    assert_eq!(r.status, 201);
    wait_recorded(&proxy, "orders", 11.0).await;
    wait_recorded(&proxy, "carts", 1.0).await;
    wait_recorded(&proxy, "profile", 1.0).await;

    // What was stored is redacted.
    let db = DiffAndHistoryStore::connect(&proxy.store_url())
        .await
        .unwrap();
    let page = shadow_diff::store::recordings::RecordingPage {
        route: "orders".into(),
        since_ms: 0,
        after: None,
        limit: 100,
    };
    let recorded = db.recordings(&page).await.unwrap();
    assert_eq!(recorded.len(), 11);
    let text = serde_json::to_string(&recorded).unwrap();
    assert!(
        !text.contains("live-secret"),
        "a credential was stored: {text}"
    );
    assert!(text.contains("[redacted]"));

    // Replayed to the second version: ten GETs compared, the POST skipped.
    let (code, out, err) = replay(&proxy, "orders", "orders-v2");
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        out.contains(
            "11 recordings read: 10 compared (0 match, 10 diff, 0 noise), 1 skipped, 0 failed"
        ),
        "{out}"
    );
    let seen = v2.seen();
    assert_eq!(seen.len(), 10, "only the safe requests reached the target");
    for s in &seen {
        assert_eq!(s.method, "GET");
        assert_eq!(s.header("authorization"), Some(REPLAY_CREDENTIAL), "{s:?}");
        assert_eq!(s.header("x-replayed-by"), Some("tests"));
        assert_eq!(s.header("x-strangler-shadow"), Some("replay"));
        assert!(
            s.headers.iter().all(|(_, v)| !v.contains("redacted")),
            "{s:?}"
        );
    }
    let mut paths: Vec<&str> = seen.iter().map(|s| s.path.as_str()).collect();
    paths.sort();
    assert_eq!(paths[0], "/api/orders/0");

    // The store keeps them as replay comparisons, the one field real.
    let replayed = db
        .diffs(&DiffQuery {
            route: Some("orders".into()),
            source: Some(Source::Replay),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(replayed.len(), 10);
    for d in &replayed {
        assert_eq!(d.verdict, Verdict::Diff);
        let fields: Vec<(&str, FieldClass)> = d
            .differences
            .iter()
            .map(|x| (x.difference.field.as_str(), x.class))
            .collect();
        assert_eq!(fields, vec![("/total", FieldClass::Real)], "{d:#?}");
        assert_eq!(d.legacy.status, 200);
        assert_eq!(d.primary_side, "legacy");
    }
    // Neither the live secret nor the replay credential is in what was stored.
    let stored = serde_json::to_string(&replayed).unwrap();
    assert!(
        !stored.contains("live-secret") && !stored.contains("replay-credential"),
        "{stored}"
    );
    if let Some(file) = proxy.store_url().strip_prefix("sqlite://") {
        for f in [file.to_string(), format!("{file}-wal")] {
            let bytes = std::fs::read(&f).unwrap_or_default();
            let text = String::from_utf8_lossy(&bytes);
            assert!(
                !text.contains("live-secret-4f1c"),
                "{f} holds the live credential"
            );
            assert!(
                !text.contains("replay-credential"),
                "{f} holds the replay credential"
            );
        }
    }
    let live = db
        .counts(Source::Shadow, Some("orders"), None, None)
        .await
        .unwrap();
    assert!(live.is_empty(), "no live comparison was made: {live:?}");

    let m = proxy.metrics().await;
    assert_eq!(
        m.sum(
            "strangler_record_total",
            &[("route", "uploads"), ("outcome", "too_large")]
        ),
        1.0
    );
    let replays = |outcome: &str| {
        m.sum(
            "strangler_replay_requests_total",
            &[("route", "orders"), ("outcome", outcome)],
        )
    };
    assert_eq!(
        (replays("diff"), replays("skipped"), replays("match")),
        (10.0, 1.0, 0.0)
    );

    // The report, as a release manager reads it: the field under replay,
    // apart from live traffic (which has none), the run as one entry.
    let config_path = proxy.config_path.display().to_string();
    let (code, out, err) = run_cli(&[
        "report",
        "--route",
        "orders",
        "--format",
        "json",
        "--config",
        &config_path,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let routes = report["routes"].as_array().unwrap();
    assert!(
        routes
            .iter()
            .all(|r| r["route"] != "orders" || r["compared"] == 0),
        "no live comparison of orders: {routes:?}"
    );
    let replayed_part = report["replay"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["route"] == "orders")
        .unwrap_or_else(|| panic!("no replay part for orders: {out}"));
    assert_eq!(replayed_part["source"], "replay");
    assert_eq!(replayed_part["compared"], 10);
    assert_eq!(replayed_part["real_diffs"], 10);
    assert_eq!(replayed_part["fields"][0]["field"], "/total");
    assert_eq!(replayed_part["fields"][0]["class"], "real");
    assert_eq!(replayed_part["runs"].as_array().unwrap().len(), 1);
    assert_eq!(replayed_part["runs"][0]["target"], "orders-v2");
    let (code, md, err) = run_cli(&[
        "report",
        "--route",
        "orders",
        "--source",
        "replay",
        "--format",
        "md",
        "--config",
        &config_path,
    ]);
    assert_eq!(code, 0, "{md}{err}");
    assert!(
        md.contains("Replayed traffic") && md.contains("/total"),
        "{md}"
    );

    // A write is replayed where the route allows it, with its body.
    let (code, out, err) = replay(&proxy, "carts", "orders-v2");
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let post = v2
        .seen()
        .into_iter()
        .find(|s| s.method == "POST")
        .expect("the write was replayed");
    assert_eq!(post.path, "/api/carts");
    assert_eq!(&post.body[..], br#"{"item": 2}"#);

    // A secret with no replacement: skipped, never sent with the marker.
    let before = v2.seen().len();
    let (code, out, _) = replay(&proxy, "profile", "orders-v2");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("1 recordings read: 0 compared"), "{out}");
    assert!(out.contains("1 skipped"), "{out}");
    assert_eq!(v2.seen().len(), before, "nothing was sent");

    // Each run is an entry, with what it did.
    let runs = db.replay_runs(None, 0).await.unwrap();
    assert_eq!(runs.len(), 3);
    let orders_run = runs.iter().find(|r| r.route == "orders").unwrap();
    assert_eq!(orders_run.target, "orders-v2");
    assert_eq!(orders_run.state, shadow_diff::RunState::Done);
    assert_eq!((orders_run.counts.read, orders_run.counts.diff), (11, 10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorded_traffic_replays_and_a_differing_field_shows_as_replay_on_sqlite() {
    record_then_replay("sqlite://{dir}/strangler.db").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorded_traffic_replays_and_a_differing_field_shows_as_replay_on_postgres() {
    let url = shadow_diff::store::testing::fresh_postgres_url("replay_e2e").await;
    record_then_replay(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_refuses_what_it_cannot_run_and_says_why() {
    let legacy = Backend::start("legacy").await;
    legacy.set_mode(orders(10));
    let proxy = Proxy::start(&config(&legacy.url(), &legacy.url())).await;
    let (code, _, err) = replay(&proxy, "nope", "new");
    assert_eq!(code, 1);
    assert!(err.contains("no route named \"nope\""), "{err}");
    let (code, _, err) = replay(&proxy, "orders", "nowhere");
    assert_eq!(code, 1);
    assert!(err.contains("no backend named \"nowhere\""), "{err}");
    // The route's credential is read from the proxy's environment, which
    // does not have it here: nothing is sent without it.
    let (code, _, err) = replay(&proxy, "orders", "new");
    assert_eq!(code, 1);
    assert!(
        err.contains("$ORDERS_REPLAY_TOKEN, which is not set in the proxy's environment"),
        "{err}"
    );
    // Without the token the proxy refuses to send traffic.
    let out = std::process::Command::new(strangler_e2e::proxy::binary())
        .args(["replay", "--route", "orders", "--config"])
        .arg(&proxy.config_path)
        .env_remove("STRANGLER_ADMIN_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    // No proxy at all: it cannot run.
    let mut proxy = proxy;
    proxy.stop();
    let (code, _, err) = replay(&proxy, "orders", "new");
    assert_eq!(code, 1);
    assert!(err.contains("no proxy answered"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_stops_answering_while_recording_touches_no_client_request() {
    let legacy = Backend::start("legacy").await;
    legacy.set_mode(orders(10));
    let (_, url, relay) = postgres_through_relay("record_store_down").await;
    let proxy = Proxy::start_with_store(&config(&legacy.url(), &legacy.url()), &url).await;
    let http = Http::new();
    let get = |i: u32| {
        let http = &http;
        let url = proxy.url(&format!("/api/orders/{i}"));
        async move { http.get(&url, &[]).await }
    };
    let r = get(0).await;
    assert_eq!(r.status, 200);
    wait_recorded(&proxy, "orders", 1.0).await;

    // The store black-holes every connection: clients see nothing of it.
    relay.cut(Cut::Blackhole);
    for i in 1..=30 {
        let r = get(i).await;
        assert_eq!(r.status, 200, "request {i}");
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["id"], i.to_string());
    }
    // What could not be stored is counted as such, none lost silently.
    let counted = eventually(Duration::from_secs(60), || async {
        let m = proxy.metrics().await;
        let of = |o: &str| {
            m.sum(
                "strangler_record_total",
                &[("route", "orders"), ("outcome", o)],
            )
        };
        (of("stored") + of("store") == 31.0).then(|| (of("stored"), of("store")))
    })
    .await
    .unwrap_or_else(|| panic!("recordings unaccounted for; logs:\n{}", proxy.logs()));
    assert!(
        counted.1 >= 1.0,
        "some were dropped while the store was gone: {counted:?}"
    );

    // Back again: once the writer has reconnected, recording goes on.
    relay.restore();
    let mut i = 100;
    let resumed = eventually(Duration::from_secs(60), || {
        i += 1;
        let request = get(i);
        async {
            assert_eq!(request.await.status, 200);
            let m = proxy.metrics().await;
            let stored = m.sum(
                "strangler_record_total",
                &[("route", "orders"), ("outcome", "stored")],
            );
            (stored > counted.0).then_some(())
        }
    })
    .await;
    assert!(
        resumed.is_some(),
        "nothing recorded after the store came back; logs:\n{}",
        proxy.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_cancels_a_run_after_the_requests_in_flight() {
    let legacy = Backend::start("legacy").await;
    legacy.set_mode(orders(10));
    let proxy = Proxy::start_with_env(
        &config(&legacy.url(), &legacy.url()),
        "sqlite://{dir}/strangler.db",
        &[("ORDERS_REPLAY_TOKEN", REPLAY_CREDENTIAL)],
    )
    .await;
    let http = Http::new();
    for i in 0..10 {
        assert_eq!(
            http.get(&proxy.url(&format!("/api/orders/{i}")), &[])
                .await
                .status,
            200
        );
    }
    wait_recorded(&proxy, "orders", 10.0).await;
    let sent_before = legacy.seen().len();
    // One request a second: the run is still going when it is interrupted.
    let child = std::process::Command::new(strangler_e2e::proxy::binary())
        .args([
            "replay", "--route", "orders", "--since", "1h", "--rate", "1", "--config",
        ])
        .arg(&proxy.config_path)
        .env("STRANGLER_ADMIN_TOKEN", strangler_e2e::proxy::TOKEN)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = eventually(Duration::from_secs(10), || async {
        let runs = http.get(&proxy.admin_url("/replays"), &[]).await.json();
        (runs["runs"].as_array().is_some_and(|r| !r.is_empty())).then_some(())
    })
    .await;
    assert!(started.is_some(), "the run did not start");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains(": cancelled in"), "{stdout}");
    assert!(stderr.contains("cancelling run"), "{stderr}");
    let runs = http.get(&proxy.admin_url("/replays"), &[]).await.json();
    let run = &runs["runs"][0];
    assert_eq!(run["state"], "cancelled");
    let read = run["counts"]["read"].as_u64().unwrap();
    assert!((1..10).contains(&read), "stopped part way: {run}");
    // Nothing is sent after the cancel.
    let sent = legacy.seen().len() - sent_before;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(legacy.seen().len() - sent_before, sent);
    assert_eq!(sent as u64, read, "every recording read was sent");
}
