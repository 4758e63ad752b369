//! The dashboards and alert rules against the metrics the proxy really
//! exports: every metric and label they use must exist on a running proxy
//! (so a renamed metric breaks the build), and every dashboard query must
//! evaluate on a real Prometheus scraping that proxy.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use strangler_e2e::proxy::run_cli;
use strangler_e2e::{Backend, Http, Mode, Proxy, Scrape, Seen, eventually, free_port};

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
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\nscrape_configs:\n  - job_name: strangler\n    static_configs:\n      - targets: ['127.0.0.1:{}']\n",
            repo().join("grafana/alerts.yml").display(),
            proxy.admin_port
        ),
    )
    .unwrap();
    let mut prometheus = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus (Debian package `prometheus`) is needed; scripts/setup installs it");
    let http = Http::new();
    let api = format!("http://127.0.0.1:{port}/api/v1");
    let query = |q: &str| {
        let url = format!("{api}/query?query={}", strangler_e2e::client::encode(q));
        let http = http.clone();
        async move {
            // While Prometheus starts it answers 503 in plain text.
            http.send(http::Method::GET, &url, &[], b"")
                .await
                .ok()
                .filter(|r| r.status == 200)
                .map(|r| r.json())
        }
    };
    let up = eventually(Duration::from_secs(30), || async {
        let r = query("strangler_config_version").await?;
        (r["data"]["result"].as_array().map(|a| !a.is_empty()) == Some(true)).then_some(())
    })
    .await;
    assert!(up.is_some(), "Prometheus did not scrape the proxy");

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
        let q = expr
            .replace("$__rate_interval", "30s")
            .replace("$__range", "5m")
            .replace("$instance", ".*")
            .replace("$route", ".*");
        let r = query(&q)
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
    let answered = with_data.values().filter(|n| **n > 0).count();
    println!(
        "{answered} of {} dashboard queries returned data",
        with_data.len()
    );
    // The rules loaded and evaluate.
    let rules = http.get(&format!("{api}/rules"), &[]).await.json();
    let loaded = rules["data"]["groups"][0]["rules"]
        .as_array()
        .map(|a| a.len())
        .unwrap_or(0);
    assert_eq!(loaded, 6, "{rules}");
    let _ = prometheus.kill();
    let _ = prometheus.wait();
}
