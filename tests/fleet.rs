//! A fleet: three proxies sharing one PostgreSQL store. A rollback made on
//! one is applied by the others (announced with LISTEN/NOTIFY), and a proxy
//! that starts later applies it too. So is a restore of a recorded version.
//!
//! The members poll the store only once an hour here, so what reaches them
//! within the test's waits came by NOTIFY: the test fails if announcing
//! stops working, instead of passing on the poll.

use std::time::{Duration, Instant};

use strangler_e2e::{Backend, Http, Proxy, eventually};

const BODY: &str = r#"
backends:
  legacy: { url: "LEGACY" }
  new: { url: "NEW" }
default: legacy
routes:
  - name: orders
    match: { path: /api/orders }
    new: new
    canary: 40
    tenants: { acme: new }
"#;

/// No poll within the test's time: changes arrive by NOTIFY or not at all.
const NOTIFY_ONLY: &[&str] = &["--fleet-poll", "1h"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_on_one_proxy_is_live_on_all() {
    let legacy = Backend::start("legacy").await;
    let new = Backend::start("new").await;
    let body = BODY
        .replace("LEGACY", &legacy.url())
        .replace("NEW", &new.url());
    let store = shadow_diff::store::testing::fresh_postgres_url("fleet").await;
    let mut fleet = Vec::new();
    for _ in 0..3 {
        fleet.push(Proxy::start_fleet_member_with(&body, &store, NOTIFY_ONLY).await);
    }
    let original = fleet[0].version().await;
    for p in &fleet {
        assert_eq!(p.version().await, original, "one file, one version number");
    }
    // Each proxy is connected to the history once its version is numbered.
    for p in &fleet {
        eventually(Duration::from_secs(15), || async {
            p.logs()
                .contains("listening for fleet changes")
                .then_some(())
        })
        .await
        .unwrap_or_else(|| panic!("not listening:\n{}", p.logs()));
    }

    let http = Http::new();
    let (k, v) = Proxy::auth_header();
    let started = Instant::now();
    let r = http
        .post(
            &fleet[0].admin_url("/rollback"),
            &[(k, &v)],
            br#"{"routes": ["orders"], "reason": "fleet test", "actor": "sre"}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    // A fleet member serves a change first and writes its file right after,
    // so both are waited for.
    for (i, p) in fleet.iter().enumerate() {
        eventually(Duration::from_secs(10), || async {
            applied(p, 0.0, "canary: 0").await.then_some(())
        })
        .await
        .unwrap_or_else(|| panic!("proxy {i} did not apply the rollback:\n{}", p.logs()));
        println!(
            "proxy {i}: rolled back {} ms after the request to proxy 0",
            started.elapsed().as_millis()
        );
    }
    // acme's pin moved too, on every proxy.
    for p in &fleet {
        let reply = http
            .get(&p.url("/api/orders/1"), &[("x-tenant-id", "acme")])
            .await;
        assert_eq!(reply.backend(), "legacy");
        assert!(
            std::fs::read_to_string(&p.config_path)
                .unwrap()
                .contains("canary: 0")
        );
    }

    let rolled_back = fleet[0].version().await;
    for p in &fleet {
        assert_eq!(
            p.version().await,
            rolled_back,
            "one change, one version number"
        );
    }

    // A proxy started later from the original file applies it as well.
    let late = Proxy::start_fleet_member_with(&body, &store, NOTIFY_ONLY).await;
    eventually(Duration::from_secs(15), || async {
        applied(&late, 0.0, "tenants: { acme: legacy }")
            .await
            .then_some(())
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "the late proxy did not apply the rollback:\n{}",
            late.logs()
        )
    });
    assert!(
        std::fs::read_to_string(&late.config_path)
            .unwrap()
            .contains("tenants: { acme: legacy }")
    );

    // `rollback --to` the original version on one proxy: every proxy of the
    // fleet serves it again, under the same number.
    let r = http
        .post(
            &fleet[1].admin_url("/rollback"),
            &[(k, &v)],
            format!(r#"{{"to_version": {original}, "reason": "fleet restore", "actor": "sre"}}"#)
                .as_bytes(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let restored = r.json()["version"].as_u64().expect("version");
    for (i, p) in fleet.iter().chain([&late]).enumerate() {
        eventually(Duration::from_secs(10), || async {
            applied(p, 40.0, "tenants: { acme: new }")
                .await
                .then_some(())
        })
        .await
        .unwrap_or_else(|| panic!("proxy {i} did not apply the restore:\n{}", p.logs()));
        assert_eq!(p.version().await, restored, "proxy {i}");
        assert!(
            std::fs::read_to_string(&p.config_path)
                .unwrap()
                .contains("tenants: { acme: new }"),
            "proxy {i} wrote the restored file"
        );
    }
}

/// Whether `p` serves `canary` on orders and its file holds `in_file`.
async fn applied(p: &Proxy, canary: f64, in_file: &str) -> bool {
    p.canary("orders").await == canary
        && std::fs::read_to_string(&p.config_path).is_ok_and(|t| t.contains(in_file))
}
