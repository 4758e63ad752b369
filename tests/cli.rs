//! `strangler check` and `strangler explain` as an operator runs them.

use strangler_e2e::proxy::run_cli;

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let p = dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

const GOOD: &str = r#"
version: 1
backends:
  monolith: { url: "http://10.0.0.5:8080" }
  orders: { url: "http://orders.internal:8080" }
tenant:
  - header: X-Tenant-Id
default: monolith
routes:
  - name: orders-read
    match: { path: /api/orders, methods: [GET, HEAD] }
    new: orders
    canary: 10
    tenants: { acme: new, initech: legacy }
    shadow: { percent: 100 }
"#;

#[test]
fn check_accepts_a_good_file_and_lists_every_error_of_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(&dir, "good.yaml", GOOD);
    let (code, out, _) = run_cli(&["check", &good]);
    assert_eq!(code, 0);
    assert!(out.contains("ok (1 route, 2 backends)"), "{out}");

    let bad = write(
        &dir,
        "bad.yaml",
        &GOOD
            .replace("canary: 10", "canary: 130")
            .replace("new: orders", "new: ordrs")
            .replace("methods:", "methdos:"),
    );
    let (code, _, err) = run_cli(&["check", &good, &bad]);
    assert_eq!(code, 1);
    for line in [
        "bad.yaml: 3 errors",
        "routes[0].match.methdos: unknown key",
        "routes[0].new: unknown backend \"ordrs\"",
        "routes[0].canary: 130 is over 100",
    ] {
        assert!(err.contains(line), "missing {line:?} in:\n{err}");
    }
}

#[test]
fn check_resolves_names_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        &dir,
        "r.yaml",
        &GOOD.replace("orders.internal", "no-such-host.invalid"),
    );
    assert_eq!(run_cli(&["check", &f]).0, 0);
    let (code, _, err) = run_cli(&["check", "--resolve", &f]);
    assert_eq!(code, 1);
    assert!(
        err.contains("backends.orders.url: cannot resolve no-such-host.invalid"),
        "{err}"
    );
}

#[test]
fn explain_names_route_backend_side_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(&dir, "r.yaml", GOOD);
    let (code, out, err) = run_cli(&[
        "explain",
        "--config",
        &f,
        "GET",
        "http://shop.example.com/api/orders/7",
        "-H",
        "X-Tenant-Id: acme",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("route:    orders-read"), "{out}");
    assert!(
        out.contains("tenant:   acme (from header x-tenant-id)"),
        "{out}"
    );
    assert!(out.contains("backend:  orders"), "{out}");
    assert!(out.contains("tenant acme is pinned to new"), "{out}");
    assert!(
        out.contains("shadow:   a copy goes to legacy (monolith)"),
        "{out}"
    );

    let (_, out, _) = run_cli(&[
        "explain",
        "--config",
        &f,
        "GET",
        "/api/orders",
        "-H",
        "X-Tenant-Id: someone",
    ]);
    assert!(out.contains("canary 10%: tenant hashes to bucket"), "{out}");

    let (_, out, _) = run_cli(&["explain", "--config", &f, "POST", "/api/orders"]);
    assert!(out.contains("route:    none matched"), "{out}");
    assert!(out.contains("backend:  monolith"), "{out}");

    let (_, out, _) = run_cli(&[
        "explain",
        "--config",
        &f,
        "--json",
        "GET",
        "/api/orders",
        "-H",
        "X-Tenant-Id: someone",
    ]);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["route"], "orders-read");
    assert_eq!(json["reason"], "canary");
    let bucket = json["bucket"].as_f64().unwrap();
    assert_eq!(json["side"], if bucket < 10.0 { "new" } else { "legacy" });

    let (_, out, _) = run_cli(&["explain", "--config", &f, "GET", "/api%2Forders"]);
    assert!(out.contains("400 Bad Request"), "{out}");
}

/// A relative `sqlite://` store is the config file's, as nginx takes paths
/// from its prefix: the proxy and every command find the same file wherever
/// they are started from.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relative_sqlite_store_is_next_to_the_config_file() {
    // A name of this run's own, so that a file left by another run (or by a
    // binary that put it in the working directory) cannot decide the test.
    let name = format!("relative-store-{}.db", std::process::id());
    let legacy = strangler_e2e::Backend::start("legacy").await;
    let proxy = strangler_e2e::Proxy::start_with_store(
        &format!(
            "backends:\n  legacy: {{ url: \"{}\" }}\n  new: {{ url: \"{}\" }}\ndefault: legacy\nroutes:\n  - name: orders\n    match: {{ path: /api/orders }}\n    new: new\n    shadow: {{ percent: 100 }}\n",
            legacy.url(),
            legacy.url()
        ),
        &format!("sqlite://{name}"),
    )
    .await;
    let here = std::env::current_dir().unwrap();
    assert_ne!(here, proxy.dir.path(), "the test runs elsewhere");
    assert!(
        proxy.dir.path().join(&name).is_file(),
        "the proxy made its store next to its config"
    );
    assert!(!here.join(&name).exists(), "not in the working directory");
    // Commands run from another directory read the same store.
    let config = proxy.config_path.display().to_string();
    let (code, out, err) = run_cli(&["history", "--config", &config]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("startup"), "{out}");
    // (It would be an error naming the path if it looked anywhere else.)
    let (code, _, err) = run_cli(&["report", "--config", &config, "--format", "json"]);
    assert_eq!(code, 0, "{err}");
}

/// `report` and `history` only read: a store that is not there is an error
/// naming the path looked at, and no empty database is left behind.
#[test]
fn read_only_commands_never_create_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        &dir,
        "routes.yaml",
        &GOOD.replace(
            "version: 1\n",
            "version: 1\nstore: sqlite://diffs/strangler.db\n",
        ),
    );
    std::fs::create_dir(dir.path().join("diffs")).unwrap();
    let expected = dir.path().join("diffs/strangler.db");
    for command in [&["report"][..], &["history"], &["history", "--audit"]] {
        let mut args = command.to_vec();
        args.extend(["--config", config.as_str()]);
        let (code, out, err) = run_cli(&args);
        assert_eq!(code, 1, "{command:?}: {out}{err}");
        assert!(
            err.contains(&expected.display().to_string()) && err.contains("no store"),
            "{command:?} does not name the path it looked at: {err}"
        );
        assert!(!expected.exists(), "{command:?} created the store");
    }
}
