//! Rollback and canary control end to end: the real binary under load, the
//! CLI an SRE types, the file a platform team reviews, the history and audit
//! a release manager reads.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use strangler_e2e::proxy::run_cli;
use strangler_e2e::{Backend, Http, Proxy, eventually};

const BODY: &str = r#"
# Orders migration. Reviewed by the platform team.
backends:
  legacy: { url: "LEGACY" }   # the monolith
  new: { url: "NEW" }
tenant:
  - header: X-Tenant-Id
default: legacy
routes:
  - name: orders      # reads and writes
    match:
      path: /api/orders
    new: new
    canary: 50        # half of the traffic
    sticky: none
    tenants: { acme: new, initech: legacy }
  - name: users
    match: { path: /api/users }
    new: new
    canary: 100
"#;

async fn setup() -> (Proxy, Backend, Backend, String) {
    let legacy = Backend::start("legacy").await;
    let new = Backend::start("new").await;
    let body = BODY
        .replace("LEGACY", &legacy.url())
        .replace("NEW", &new.url());
    let proxy = Proxy::start(&body).await;
    let original = std::fs::read_to_string(&proxy.config_path).unwrap();
    (proxy, legacy, new, original)
}

fn changed_lines(a: &str, b: &str) -> Vec<(String, String)> {
    let (la, lb): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    assert_eq!(la.len(), lb.len(), "lines were added or removed:\n{b}");
    la.iter()
        .zip(&lb)
        .filter(|(x, y)| x != y)
        .map(|(x, y)| (x.to_string(), y.to_string()))
        .collect()
}

fn cli(proxy: &Proxy, args: &[&str]) -> (i32, String, String) {
    let config = proxy.config_path.display().to_string();
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--config", &config]);
    run_cli(&all)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_under_load_moves_everything_to_legacy_without_a_failed_request() {
    let (proxy, legacy, new, original) = setup().await;
    let stop = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for w in 0..8 {
        let (url, stop, failures) = (proxy.url("/api/orders/1"), stop.clone(), failures.clone());
        workers.push(tokio::spawn(async move {
            let http = Http::new();
            let tenant = if w % 2 == 0 { "acme" } else { "globex" };
            while stop.load(Ordering::SeqCst) == 0 {
                match http
                    .send(http::Method::GET, &url, &[("x-tenant-id", tenant)], b"")
                    .await
                {
                    Ok(r) if r.status == 200 => {}
                    other => {
                        eprintln!("failed: {other:?}");
                        failures.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(new.requests() > 0, "the new side had traffic before");

    let (code, out, err) = tokio::task::spawn_blocking({
        let config = proxy.config_path.display().to_string();
        move || {
            run_cli(&[
                "rollback",
                "orders",
                "--reason",
                "5xx on the new service",
                "--config",
                &config,
            ])
        }
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("rolled back orders (all traffic to legacy) live at version"),
        "{out}"
    );
    assert!(out.contains("routes.yaml updated"), "{out}");
    assert!(out.contains("verified: none since"), "{out}");
    println!("{out}");

    // From now on nothing reaches the new side on this route.
    let after = new.requests();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(1, Ordering::SeqCst);
    for w in workers {
        w.await.unwrap();
    }
    assert_eq!(failures.load(Ordering::SeqCst), 0, "no request failed");
    assert_eq!(
        new.requests(),
        after,
        "nothing reached the new side after the rollback"
    );
    assert!(legacy.requests() > 0);

    // The file: exactly the changed values, comments and layout kept.
    let now = std::fs::read_to_string(&proxy.config_path).unwrap();
    assert_eq!(
        changed_lines(&original, &now),
        vec![
            (
                "    canary: 50        # half of the traffic".into(),
                "    canary: 0        # half of the traffic".into()
            ),
            (
                "    tenants: { acme: new, initech: legacy }".into(),
                "    tenants: { acme: legacy, initech: legacy }".into()
            ),
        ]
    );
    let m = proxy.metrics_settled().await;
    assert_eq!(
        m.sum(
            "strangler_rollbacks_total",
            &[("route", "orders"), ("trigger", "manual")]
        ),
        1.0
    );
    assert_eq!(
        m.sum("strangler_canary_percent", &[("route", "orders")]),
        0.0
    );

    // History and audit.
    let (code, out, err) = cli(&proxy, &["history", "--audit", "--json"]);
    assert_eq!(code, 0, "{err}");
    let h: serde_json::Value = serde_json::from_str(&out).unwrap();
    let newest = &h["versions"][0];
    assert_eq!(newest["source"], "rollback");
    assert_eq!(newest["actor"], "tester");
    assert_eq!(newest["reason"], "5xx on the new service");
    assert_eq!(
        newest["summary"],
        "orders: canary 0; orders: tenant acme -> legacy"
    );
    let audit = &h["audit"][0];
    assert_eq!(
        (audit["action"].as_str(), audit["outcome"].as_str()),
        (Some("rollback"), Some("applied"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_the_rollback_and_versions_can_be_restored() {
    let (mut proxy, ..) = setup().await;
    let http = Http::new();
    let (code, out, err) = cli(&proxy, &["canary", "orders", "30", "--reason", "ramp"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(
            "orders: canary 30% live from the next request (version 2); routes.yaml updated"
        ),
        "{out}"
    );
    assert_eq!(proxy.canary("orders").await, 30.0);

    let (code, out, err) = cli(&proxy, &["rollback", "--all", "--reason", "incident 42"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(proxy.canary("orders").await, 0.0);
    assert_eq!(proxy.canary("users").await, 0.0);

    proxy.restart().await;
    assert_eq!(
        proxy.canary("orders").await,
        0.0,
        "a restart does not undo it"
    );
    assert_eq!(proxy.canary("users").await, 0.0);
    for _ in 0..50 {
        let r = http
            .get(&proxy.url("/api/users/1"), &[("x-tenant-id", "acme")])
            .await;
        assert_eq!(r.backend(), "legacy");
    }

    // Back to version 2 (canary 30, users 100).
    let (code, out, err) = cli(
        &proxy,
        &["rollback", "--to", "2", "--reason", "false alarm"],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("version 2 restored live as version"), "{out}");
    assert_eq!(proxy.canary("orders").await, 30.0);
    assert_eq!(proxy.canary("users").await, 100.0);
    assert!(
        std::fs::read_to_string(&proxy.config_path)
            .unwrap()
            .contains("canary: 30")
    );
    let (_, out, _) = cli(&proxy, &["history"]);
    assert!(out.contains("restored version 2 (false alarm)"), "{out}");
    let (code, _, err) = cli(&proxy, &["rollback", "--to", "999"]);
    assert_ne!(code, 0);
    assert!(err.contains("version 999 is not in the history"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_file_still_gets_the_live_rollback_and_a_reload_does_not_undo_it() {
    use std::os::unix::fs::PermissionsExt;
    let (proxy, ..) = setup().await;
    let original = std::fs::read_to_string(&proxy.config_path).unwrap();
    std::fs::set_permissions(&proxy.config_path, std::fs::Permissions::from_mode(0o444)).unwrap();
    let (code, out, err) = cli(&proxy, &["rollback", "orders", "--no-verify"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("routes.yaml NOT updated"), "{out}");
    assert!(out.contains("is read-only"), "{out}");
    assert_eq!(proxy.canary("orders").await, 0.0);
    assert_eq!(
        std::fs::read_to_string(&proxy.config_path).unwrap(),
        original
    );

    proxy.signal("HUP");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        proxy.canary("orders").await,
        0.0,
        "the reload keeps the rollback"
    );
    let (_, out, _) = cli(&proxy, &["history", "--audit"]);
    assert!(out.contains("applied; file not updated"), "{out}");
    std::fs::set_permissions(&proxy.config_path, std::fs::Permissions::from_mode(0o644)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_proxy_running_the_file_is_edited_alone() {
    let (mut proxy, ..) = setup().await;
    proxy.stop();
    let original = std::fs::read_to_string(&proxy.config_path).unwrap();
    let (code, out, err) = cli(
        &proxy,
        &[
            "rollback",
            "orders",
            "--tenant",
            "acme",
            "--reason",
            "acme complains",
        ],
    );
    // 3: only the file was edited (see tests/exit_codes.rs).
    assert_eq!(code, 3, "{out}{err}");
    assert!(out.contains("no proxy answered"), "{out}");
    assert!(out.contains("recorded as version"), "{out}");
    let now = std::fs::read_to_string(&proxy.config_path).unwrap();
    assert_eq!(
        changed_lines(&original, &now),
        vec![(
            "    tenants: { acme: new, initech: legacy }".into(),
            "    tenants: { acme: legacy, initech: legacy }".into()
        )]
    );
    let (code, out, _) = cli(&proxy, &["canary", "users", "12.5"]);
    assert_eq!(code, 3);
    assert!(out.contains("canary 12.5% written to"), "{out}");
    let (_, out, _) = cli(&proxy, &["history", "--audit"]);
    assert!(
        out.contains("applied to the file (no proxy running)"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_need_the_token_and_name_real_routes() {
    let (proxy, ..) = setup().await;
    let http = Http::new();
    let body = br#"{"percent": 10}"#;
    assert_eq!(
        http.post(&proxy.admin_url("/routes/orders/canary"), &[], body)
            .await
            .status,
        401
    );
    assert_eq!(
        http.post(&proxy.admin_url("/rollback"), &[], br#"{"all": true}"#)
            .await
            .status,
        401
    );
    assert_eq!(
        http.get(&proxy.admin_url("/rollback"), &[]).await.status,
        405
    );
    assert_eq!(
        http.get(&proxy.admin_url("/routes/orders/canary"), &[])
            .await
            .status,
        405
    );
    let (k, v) = Proxy::auth_header();
    assert_eq!(
        http.post(&proxy.admin_url("/routes/nope/canary"), &[(k, &v)], body)
            .await
            .status,
        404
    );
    assert_eq!(
        http.post(
            &proxy.admin_url("/routes/orders/canary"),
            &[(k, &v)],
            br#"{"percent": 130}"#
        )
        .await
        .status,
        400
    );
    let ok = http
        .post(&proxy.admin_url("/routes/orders/canary"), &[(k, &v)], body)
        .await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(proxy.canary("orders").await, 10.0);
    let (code, _, err) = cli(&proxy, &["rollback", "nope"]);
    assert_ne!(code, 0);
    assert!(err.contains("no route named \"nope\""), "{err}");
    // The history endpoint.
    let h = http.get(&proxy.admin_url("/history"), &[]).await.json();
    assert_eq!(h["versions"][0]["source"], "canary");
    let _ = eventually(Duration::from_secs(1), || async { Some(()) }).await;
}
