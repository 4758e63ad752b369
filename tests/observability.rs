//! The dashboards and alert rules against the metrics the proxy really
//! exports: every metric and label they use must exist on a running proxy
//! (so a renamed metric breaks the build), and every dashboard query must
//! evaluate on a real Prometheus scraping that proxy.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use strangler_e2e::prometheus::{Prometheus, alert_rules};
use strangler_e2e::proxy::run_cli;
use strangler_e2e::{Backend, Http, Mode, Proxy, Scrape, Seen, eventually};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Every PromQL expression of the dashboards (panels, annotations, variable
/// queries) and of the alert rules, with where it came from.
fn expressions() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for name in ["strangler-migration.json", "strangler-route.json"] {
        let text = std::fs::read_to_string(repo().join("grafana/dashboards").join(name)).unwrap();
        let d: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name} is not JSON: {e}"));
        assert!(
            d["uid"].is_string() && d["title"].is_string() && d["schemaVersion"].is_number(),
            "{name}"
        );
        for p in d["panels"].as_array().unwrap() {
            assert!(
                p["gridPos"]["w"].is_number(),
                "{name}: panel without a position"
            );
            for t in p["targets"].as_array().unwrap() {
                out.push((
                    format!("{name}: {}", p["title"]),
                    t["expr"].as_str().unwrap().to_string(),
                ));
            }
        }
        for a in d["annotations"]["list"].as_array().unwrap() {
            if let Some(e) = a["expr"].as_str() {
                out.push((format!("{name}: annotation {}", a["name"]), e.to_string()));
            }
        }
        for v in d["templating"]["list"].as_array().unwrap() {
            if let Some(q) = v["definition"].as_str() {
                // label_values(METRIC{...}, LABEL): check METRIC{...} and LABEL.
                let inner = q.trim_start_matches("label_values(").trim_end_matches(')');
                let (selector, label) = inner.rsplit_once(',').unwrap();
                out.push((
                    format!("{name}: variable {}", v["name"]),
                    format!("count by ({}) ({selector})", label.trim()),
                ));
            }
        }
    }
    let rules: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(repo().join("grafana/alerts.yml")).unwrap())
            .unwrap();
    for g in rules["groups"].as_sequence().unwrap() {
        for r in g["rules"].as_sequence().unwrap() {
            out.push((
                format!("alert {}", r["alert"].as_str().unwrap()),
                r["expr"].as_str().unwrap().to_string(),
            ));
        }
    }
    out
}

/// Scrape-time labels that Prometheus adds.
const ADDED_BY_PROMETHEUS: [&str; 2] = ["instance", "job"];

fn check_against(scrape: &Scrape, source: &str, expr: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let names = regex::Regex::new(r"(strangler_[a-z_]+)(\{([^}]*)\})?").unwrap();
    let by = regex::Regex::new(r"by \(([^)]*)\)").unwrap();
    let matcher = regex::Regex::new(r#"([a-z_]+)\s*(=~|!~|!=|=)\s*""#).unwrap();
    let mut labels_in_expr: BTreeSet<String> = BTreeSet::new();
    for m in names.captures_iter(expr) {
        let name = &m[1];
        let present: Vec<&strangler_e2e::metrics::Sample> =
            scrape.samples.iter().filter(|s| s.name == name).collect();
        if present.is_empty() {
            problems.push(format!("{source}: metric {name} is not exported"));
            continue;
        }
        let labels: BTreeSet<&str> = present
            .iter()
            .flat_map(|s| s.labels.keys().map(String::as_str))
            .collect();
        labels_in_expr.extend(labels.iter().map(|l| l.to_string()));
        if let Some(matchers) = m.get(3) {
            for l in matcher.captures_iter(matchers.as_str()) {
                let label = &l[1];
                if !labels.contains(label) && !ADDED_BY_PROMETHEUS.contains(&label) {
                    problems.push(format!("{source}: {name} has no label {label}"));
                }
            }
        }
    }
    for b in by.captures_iter(expr) {
        for label in b[1].split(',').map(str::trim).filter(|l| !l.is_empty()) {
            if !labels_in_expr.contains(label) && !ADDED_BY_PROMETHEUS.contains(&label) {
                problems.push(format!(
                    "{source}: no metric in the expression has label {label} (by clause)"
                ));
            }
        }
    }
    problems
}

/// A proxy with shadowing, failures, drops and a rollback, so that every
/// family has its series.
async fn busy_proxy() -> (Proxy, Backend, Backend) {
    let legacy = Backend::start("legacy").await;
    let new = Backend::start("new").await;
    new.set_mode(Mode::Script(Arc::new(|seen: &Seen| {
        let status = if seen.path.ends_with("/err") {
            500
        } else {
            200
        };
        (
            status,
            vec![("content-type".into(), "application/json".into())],
            format!("{{\"id\":\"{}\"}}", seen.path).into_bytes(),
        )
    })));
    let proxy = Proxy::start(&format!(
        r#"
backends:
  legacy: {{ url: "{}" }}
  new: {{ url: "{}" }}
  dead: {{ url: "http://127.0.0.1:1" }}
default: legacy
routes:
  - name: orders
    match: {{ path: /api/orders }}
    new: new
    canary: 50
    sticky: none
    shadow: {{ percent: 100, noise_sample: 50 }}
    guard: {{ window: 1m, min_requests: 100000 }}
    rollout: {{ steps: [60, 100], pause: 1h, require: [guard] }}
    record: {{ percent: 10 }}
  - name: gone
    match: {{ path: /gone }}
    new: dead
    canary: 100
"#,
        legacy.url(),
        new.url()
    ))
    .await;
    (proxy, legacy, new)
}

async fn traffic(proxy: &Proxy, n: usize) {
    let http = Http::new();
    for i in 0..n {
        let path = if i % 10 == 0 {
            "/api/orders/err".to_string()
        } else {
            format!("/api/orders/{i}")
        };
        http.get(&proxy.url(&path), &[]).await;
    }
    http.post(&proxy.url("/api/orders/1"), &[], b"{}").await;
    http.get(&proxy.url("/gone"), &[]).await;
    http.get(&proxy.url("/nowhere"), &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_and_label_of_the_dashboards_and_rules_is_exported() {
    let (proxy, ..) = busy_proxy().await;
    traffic(&proxy, 100).await;
    let config = proxy.config_path.display().to_string();
    let (code, out, err) = run_cli(&["rollback", "orders", "--no-verify", "--config", &config]);
    assert_eq!(code, 0, "{out}{err}");
    proxy.rewrite_body("this: is not valid\n");
    eventually(Duration::from_secs(10), || async {
        (proxy
            .metrics()
            .await
            .sum("strangler_config_reloads_total", &[("result", "error")])
            >= 1.0)
            .then_some(())
    })
    .await
    .expect("a failed reload is counted");
    eventually(Duration::from_secs(10), || async {
        (proxy
            .metrics()
            .await
            .series("strangler_shadow_stored_total")
            > 0)
        .then_some(())
    })
    .await
    .expect("diffs stored");
    let scrape = proxy.metrics().await;
    let exprs = expressions();
    assert!(exprs.len() > 30, "found only {} expressions", exprs.len());
    let problems: Vec<String> = exprs
        .iter()
        .flat_map(|(src, e)| check_against(&scrape, src, e))
        .collect();
    assert!(
        problems.is_empty(),
        "dashboards or rules use what the proxy does not export:\n{}",
        problems.join("\n")
    );

    // And the check itself catches a renamed metric.
    let renamed = check_against(&scrape, "test", "rate(strangler_request_total[5m])");
    assert_eq!(renamed.len(), 1, "{renamed:?}");
    let wrong_label = check_against(&scrape, "test", r#"strangler_requests_total{sides="new"}"#);
    assert_eq!(wrong_label.len(), 1, "{wrong_label:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_scrapes_the_proxy_and_evaluates_the_dashboards() {
    let (proxy, ..) = busy_proxy().await;
    let prometheus = Prometheus::start(proxy.admin_port, &alert_rules()).await;
    prometheus.wait_scraped().await;

    // A few seconds of traffic so that rates have samples.
    for _ in 0..6 {
        traffic(&proxy, 40).await;
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    let mut with_data = BTreeMap::new();
    for (source, expr) in expressions()
        .into_iter()
        .filter(|(s, _)| !s.starts_with("alert"))
    {
        let q = with_variables_set(&expr);
        let r = prometheus
            .query_raw(&q)
            .await
            .unwrap_or_else(|| panic!("{source}: no answer"));
        assert_eq!(r["status"], "success", "{source}: {q}\n{r}");
        with_data.insert(
            source,
            r["data"]["result"].as_array().map(|a| a.len()).unwrap_or(0),
        );
    }
    let share = with_data
        .iter()
        .find(|(s, _)| s.contains("Share of traffic on new"))
        .map(|(_, n)| *n)
        .unwrap();
    assert!(
        share > 0,
        "the share-on-new query returned no data: {with_data:#?}"
    );
    fast_path_share_is_what_the_traffic_took(&prometheus).await;
    let answered = with_data.values().filter(|n| **n > 0).count();
    println!(
        "{answered} of {} dashboard queries returned data",
        with_data.len()
    );
    // The rules loaded and evaluate: every rule of the file.
    let rules = prometheus.rules().await;
    let loaded = rules["data"]["groups"][0]["rules"]
        .as_array()
        .map(|a| a.len())
        .unwrap_or(0);
    let in_file = expressions()
        .iter()
        .filter(|(s, _)| s.starts_with("alert "))
        .count();
    assert_eq!(loaded, in_file, "{rules}");
    assert!(loaded >= 11, "{rules}");
    for rule in rules["data"]["groups"][0]["rules"].as_array().unwrap() {
        assert_eq!(rule["health"], "ok", "{rule}");
    }
}

/// A dashboard query as Prometheus can run it: Grafana's variables set to
/// a 30 s rate window, a 5 m range, and every instance and route.
fn with_variables_set(expr: &str) -> String {
    expr.replace("$__rate_interval", "30s")
        .replace("$__range", "5m")
        .replace("$instance", ".*")
        .replace("$route", ".*")
}

/// The dashboard's fast-path share, as a fresh Prometheus computes it from
/// [`traffic`]: the shadowed `orders` requests take the engine, `/gone` and
/// `/nowhere` the fast path, so the share is strictly between 0 and 1; with
/// the fast path off (`STRANGLER_FAST_PATH=false`, as CI's second run of the
/// suites) it is 0.
async fn fast_path_share_is_what_the_traffic_took(prometheus: &Prometheus) {
    let (source, expr) = expressions()
        .into_iter()
        .find(|(s, _)| s.contains("Share of requests on the fast path"))
        .expect("the migration dashboard has the fast-path share panel");
    let q = with_variables_set(&expr);
    let r = prometheus
        .query_raw(&q)
        .await
        .unwrap_or_else(|| panic!("{source}: no answer"));
    let shares: Vec<f64> = r["data"]["result"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .filter_map(|row| row["value"][1].as_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(shares.len(), 1, "one instance, one share: {r}");
    let fast_path_on = std::env::var("STRANGLER_FAST_PATH").map_or(true, |v| v != "false");
    if fast_path_on {
        assert!(
            shares[0] > 0.0 && shares[0] < 1.0,
            "plain requests to unshadowed routes take the fast path, shadowed ones the engine: {r}"
        );
    } else {
        assert_eq!(shares[0], 0.0, "the fast path is off: {r}");
    }
}

/// `orders` (shadowed and guarded) and `users`, between LEGACY and NEW.
const GUARDED: &str = r#"
backends:
  legacy: { url: "LEGACY" }
  new: { url: "NEW" }
default: legacy
routes:
  - name: orders
    match: { path: /api/orders }
    new: new
    canary: 50
    sticky: none
    shadow: { percent: 10 }
    guard: { window: 5s, min_requests: 30, error_rate_margin: 10 }
  - name: users
    match: { path: /api/users }
    new: new
"#;

/// A proxy on [`GUARDED`] whose new side answers 503; returns the body as
/// written (to derive reloads from).
async fn guarded_proxy() -> (Proxy, String, Backend, Backend) {
    let legacy = Backend::start("legacy").await;
    let new = Backend::start("new").await;
    new.set_mode(Mode::Status(503));
    let body = GUARDED
        .replace("LEGACY", &legacy.url())
        .replace("NEW", &new.url());
    let proxy = Proxy::start(&body).await;
    (proxy, body, legacy, new)
}

/// The labelled series of one route that the dashboards and alerts read,
/// as (family, labels) pairs, each of which must be exported.
fn route_series(route: &str, shadowed: bool) -> Vec<(&'static str, Vec<(&'static str, String)>)> {
    let r = || ("route", route.to_string());
    let mut out = Vec::new();
    for trigger in ["manual", "auto"] {
        out.push((
            "strangler_rollbacks_total",
            vec![r(), ("trigger", trigger.into())],
        ));
    }
    for side in ["legacy", "new"] {
        for kind in [
            "connect_refused",
            "connect_timeout",
            "connect_error",
            "tls",
            "read_timeout",
            "write_timeout",
            "reset",
            "protocol",
            "other",
        ] {
            out.push((
                "strangler_upstream_errors_total",
                vec![r(), ("side", side.into()), ("kind", kind.into())],
            ));
        }
        for class in ["1xx", "2xx", "3xx", "4xx", "5xx", "none"] {
            out.push((
                "strangler_requests_total",
                vec![r(), ("side", side.into()), ("status_class", class.into())],
            ));
        }
    }
    out.push(("strangler_canary_percent", vec![r()]));
    if shadowed {
        for reason in ["queue_full", "too_large", "method", "store"] {
            out.push((
                "strangler_shadow_dropped_total",
                vec![r(), ("reason", reason.into())],
            ));
        }
        for outcome in ["sent", "skipped", "error", "timeout"] {
            out.push((
                "strangler_shadow_requests_total",
                vec![r(), ("outcome", outcome.into())],
            ));
        }
        for verdict in ["match", "diff", "noise"] {
            out.push((
                "strangler_shadow_diffs_total",
                vec![r(), ("verdict", verdict.into())],
            ));
        }
        out.push(("strangler_shadow_stored_total", vec![r()]));
    }
    out
}

/// Waits (15 s at most) until the unlabelled gauge `name` reads `value`.
async fn wait_gauge(proxy: &Proxy, name: &str, value: f64) -> Option<()> {
    eventually(Duration::from_secs(15), || async {
        (proxy.metrics().await.sum(name, &[]) == value).then_some(())
    })
    .await
}

/// The samples of `family` whose labels include all of `labels`.
fn matching(scrape: &Scrape, family: &str, labels: &[(&str, String)]) -> Vec<f64> {
    scrape
        .samples
        .iter()
        .filter(|s| s.name == family)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(v.as_str()))
        })
        .map(|s| s.value)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_series_the_config_makes_possible_is_exported_at_zero_and_follows_reloads() {
    let (proxy, body, ..) = guarded_proxy().await;
    // No request yet: every series is already there, at zero.
    let scrape = proxy.metrics().await;
    for (route, shadowed) in [("orders", true), ("users", false)] {
        for (family, labels) in route_series(route, shadowed) {
            let values = matching(&scrape, family, &labels);
            assert_eq!(values.len(), 1, "{family} {labels:?} not exported once");
            if family != "strangler_canary_percent" {
                assert_eq!(values[0], 0.0, "{family} {labels:?}");
            }
        }
    }
    // Shadow families only where shadowing is configured.
    let users = vec![("route", "users".to_string())];
    assert!(matching(&scrape, "strangler_shadow_dropped_total", &users).is_empty());
    assert_eq!(
        matching(
            &scrape,
            "strangler_build_info",
            &[("version", env!("CARGO_PKG_VERSION").to_string())]
        ),
        vec![1.0]
    );
    for gauge in [
        "strangler_config_last_reload_successful",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
    ] {
        let v = matching(&scrape, gauge, &[]);
        assert!(v.len() == 1 && v[0] > 0.0, "{gauge}: {v:?}");
    }
    assert_eq!(matching(&scrape, "process_cpu_seconds_total", &[]).len(), 1);
    // The SQLite store answers: up within a check or two.
    wait_gauge(&proxy, "strangler_store_up", 1.0)
        .await
        .expect("strangler_store_up is 1 with a working store");

    // A reload that adds a route exports its series at zero; one that
    // removes a route removes its series.
    let v = proxy.version().await;
    let (kept, _users) = body.split_once("  - name: users").unwrap();
    let body = format!(
        "{kept}  - name: carts\n    match: {{ path: /api/carts }}\n    new: new\n    shadow: {{ percent: 5 }}\n"
    );
    proxy.rewrite_body(&body);
    proxy.wait_version(v + 1).await;
    let scrape = proxy.metrics().await;
    for (family, labels) in route_series("carts", true) {
        let values = matching(&scrape, family, &labels);
        assert_eq!(values.len(), 1, "{family} {labels:?} not exported once");
        if family != "strangler_canary_percent" {
            assert_eq!(values[0], 0.0, "{family} {labels:?}");
        }
    }
    assert!(
        scrape
            .samples
            .iter()
            .all(|s| s.labels.get("route").map(String::as_str) != Some("users")),
        "series of the removed route remain"
    );
    // The route that stayed kept its series.
    let orders = vec![
        ("route", "orders".to_string()),
        ("trigger", "auto".to_string()),
    ];
    assert_eq!(
        matching(&scrape, "strangler_rollbacks_total", &orders),
        vec![0.0]
    );

    // A rejected file: the gauge says so until the file is fixed.
    proxy.rewrite_body("this: is not valid\n");
    wait_gauge(&proxy, "strangler_config_last_reload_successful", 0.0)
        .await
        .expect("a rejected reload sets the gauge to 0");
    proxy.rewrite_body(&body.replace("percent: 5", "percent: 6"));
    wait_gauge(&proxy, "strangler_config_last_reload_successful", 1.0)
        .await
        .expect("a successful reload sets the gauge back to 1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_store_is_reported_down() {
    // A PostgreSQL URL where nothing listens: the proxy serves, the store
    // is down.
    let closed = strangler_e2e::free_port();
    let legacy = Backend::start("legacy").await;
    let proxy = Proxy::start_with_store(
        &format!(
            "backends:\n  legacy: {{ url: \"{}\" }}\n  new: {{ url: \"{}\" }}\ndefault: legacy\nroutes:\n  - name: orders\n    match: {{ path: /api/orders }}\n    new: new\n",
            legacy.url(),
            legacy.url()
        ),
        &format!("postgres://postgres@127.0.0.1:{closed}/test"),
    )
    .await;
    let reply = Http::new().get(&proxy.url("/api/orders/1"), &[]).await;
    assert_eq!(reply.status, 200);
    // Down from the start, and still down after a few checks.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let scrape = proxy.metrics().await;
    assert_eq!(matching(&scrape, "strangler_store_up", &[]), vec![0.0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_automatic_rollback_of_a_fresh_proxy_fires_the_alert() {
    let (proxy, ..) = guarded_proxy().await;
    let prometheus = Prometheus::start(proxy.admin_port, &alert_rules()).await;
    // Prometheus has seen the series at zero before anything happened.
    let series = r#"strangler_rollbacks_total{route="orders", trigger="auto"}"#;
    let seen_at_zero = eventually(Duration::from_secs(30), || async {
        (prometheus.value(series).await? == 0.0).then_some(())
    })
    .await;
    assert!(seen_at_zero.is_some(), "Prometheus never saw {series} at 0");
    assert!(
        prometheus
            .firing("StranglerAutomaticRollback")
            .await
            .is_empty()
    );

    // Traffic until the guard trips.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let worker = {
        let (url, stop) = (proxy.url("/api/orders/1"), stop.clone());
        tokio::spawn(async move {
            let http = Http::new();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let _ = http.send(http::Method::GET, &url, &[], b"").await;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let tripped = eventually(Duration::from_secs(30), || async {
        (proxy.metrics().await.sum(
            "strangler_rollbacks_total",
            &[("route", "orders"), ("trigger", "auto")],
        ) == 1.0)
            .then_some(())
    })
    .await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let _ = worker.await;
    assert!(
        tripped.is_some(),
        "the guard did not trip:\n{}",
        proxy.logs()
    );

    let fired = eventually(Duration::from_secs(30), || async {
        let alerts = prometheus.firing("StranglerAutomaticRollback").await;
        alerts
            .iter()
            .any(|a| a["route"] == "orders" && a["severity"] == "page")
            .then_some(alerts)
    })
    .await;
    assert!(
        fired.is_some(),
        "StranglerAutomaticRollback did not fire; {}",
        prometheus
            .query(&format!("{series}[1m]"))
            .await
            .unwrap_or_default()
    );
}
