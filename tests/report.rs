//! Diff reports from a store filled by real shadow traffic: the CLI in every
//! format, the admin pages and the JSON API, filters, and the numbers a
//! release manager decides from.

use serde_json::Value;
use strangler_e2e::Http;
use strangler_e2e::proxy::run_cli;
use strangler_e2e::scenarios::report_traffic;

fn route<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["route"] == name)
        .unwrap_or_else(|| panic!("no route {name} in {report:#}"))
}

fn field<'a>(route: &'a Value, name: &str) -> &'a Value {
    route["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["field"] == name)
        .unwrap_or_else(|| panic!("no field {name} in {route:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_tell_each_route_whether_it_may_move_on() {
    let (proxy, ..) = report_traffic().await;
    let config = proxy.config_path.display().to_string();

    let (code, out, err) = run_cli(&[
        "report", "--config", &config, "--format", "json", "--since", "1h",
    ]);
    assert_eq!(code, 0, "{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["report_version"], 1);

    let orders = route(&report, "orders");
    assert_eq!(orders["compared"], 150);
    assert_eq!(orders["real_diffs"], 45);
    assert_eq!(orders["noise_only"], 45);
    assert_eq!(orders["verdict"], "ready", "{orders:#}");
    let ci = orders["real_diff_rate_ci95"].as_array().unwrap();
    assert!(ci[0].as_f64().unwrap() < 0.3 && 0.3 < ci[1].as_f64().unwrap());
    assert_eq!(orders["config_versions"], serde_json::json!([1]));
    assert_eq!(field(orders, "/status")["class"], "real");
    assert_eq!(field(orders, "/status")["count"], 45);
    assert_eq!(field(orders, "/state")["class"], "real");
    let nonce = field(orders, "/nonce");
    assert_eq!(nonce["class"], "noise");
    assert_eq!(nonce["suggestion"], "ignore_fields: [/nonce]");
    assert!(
        nonce["why"]
            .as_str()
            .unwrap()
            .contains("between two legacy answers")
    );
    let example = &field(orders, "/status")["examples"][0];
    assert_eq!(example["legacy"], "\"shipped\"");
    assert!(
        example["new"].is_null(),
        "the field is absent on the new side"
    );
    assert!(!orders["examples"].as_array().unwrap().is_empty());
    assert!(
        orders["trend"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["compared"].as_u64().unwrap())
            .sum::<u64>()
            == 150
    );

    let users = route(&report, "users");
    assert_eq!(
        (users["compared"].as_u64(), users["real_diffs"].as_u64()),
        (Some(40), Some(36))
    );
    assert_eq!(users["verdict"], "not_ready");
    assert_eq!(field(users, "status")["class"], "real");
    let tiny = route(&report, "tiny");
    assert_eq!(tiny["compared"], 5);
    assert_eq!(tiny["verdict"], "not_enough_data");

    // Filters: tenant and route.
    let (_, out, _) = run_cli(&[
        "report", "--config", &config, "--format", "json", "--tenant", "acme",
    ]);
    let acme: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(route(&acme, "orders")["compared"], 75);
    assert_eq!(
        acme["routes"].as_array().unwrap().len(),
        1,
        "only orders has acme traffic"
    );
    let (_, out, _) = run_cli(&[
        "report", "--config", &config, "--format", "json", "--route", "users",
    ]);
    let only: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(only["routes"].as_array().unwrap().len(), 1);
    // Source: nothing was replayed, so the replay part is empty, and the
    // live part is the same with or without the filter.
    assert_eq!(report["replay"], serde_json::json!([]));
    let (code, out, err) = run_cli(&[
        "report", "--config", &config, "--format", "json", "--source", "replay",
    ]);
    assert_eq!(code, 0, "{err}");
    let replayed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(replayed["filter"]["source"], "replay");
    assert_eq!(replayed["routes"], serde_json::json!([]));
    assert_eq!(replayed["replay"], serde_json::json!([]));
    let (_, out, _) = run_cli(&[
        "report", "--config", &config, "--format", "json", "--source", "shadow",
    ]);
    let live: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(route(&live, "orders")["compared"], 150);
    assert_eq!(route(&live, "orders")["source"], "shadow");
    // A wrong source is refused by the command line, before any work.
    let (code, _, err) = run_cli(&["report", "--config", &config, "--source", "live"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("possible values: shadow, replay"), "{err}");

    // Markdown for a ticket.
    let (code, md, _) = run_cli(&["report", "--config", &config, "--format", "md"]);
    assert_eq!(code, 0);
    assert!(
        md.contains("| `orders` | **ready** | shadow | 150 | 30.00% ("),
        "{md}"
    );
    assert!(
        md.contains("| `users` | **not ready** | shadow | 40 | 90.00% ("),
        "{md}"
    );
    assert!(md.contains("ignore_fields: [/nonce]"), "{md}");

    // One self-contained HTML file: no scripts, nothing from the network.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("report.html");
    let (code, _, err) = run_cli(&[
        "report",
        "--config",
        &config,
        "--format",
        "html",
        "--output",
        &file.display().to_string(),
    ]);
    assert_eq!(code, 0, "{err}");
    let html = std::fs::read_to_string(&file).unwrap();
    assert!(
        html.contains(r##"<a href="#route-orders">orders</a>"##),
        "links to details"
    );
    assert!(html.contains(r#"id="route-orders""#));
    assert!(
        !html.contains("<script")
            && !html.contains("src=")
            && !html.contains("https://")
            && !html.contains("<link")
    );

    // The store URL can be given without a config.
    let (code, out, err) = run_cli(&[
        "report",
        "--config",
        "/nonexistent.yaml",
        "--store",
        &proxy.store_url(),
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        route(&serde_json::from_str(&out).unwrap(), "orders")["compared"],
        150
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_server_serves_the_report_and_its_data() {
    let (proxy, ..) = report_traffic().await;
    let http = Http::new();
    let api = http
        .get(&proxy.admin_url("/api/report?since=1h"), &[])
        .await;
    assert_eq!(api.status, 200);
    let report = api.json();
    assert_eq!(route(&report, "orders")["real_diffs"], 45);
    assert_eq!(route(&report, "users")["verdict"], "not_ready");

    let page = http.get(&proxy.admin_url("/report"), &[]).await;
    assert_eq!(page.status, 200);
    assert_eq!(page.headers["content-type"], "text/html; charset=utf-8");
    assert!(
        page.headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'none'")
    );
    let html = page.text();
    assert!(
        html.contains(r#"<a href="/report/route/orders">orders</a>"#),
        "{html}"
    );
    assert!(html.contains(r#"data-verdict="not_ready""#));

    let detail = http
        .get(&proxy.admin_url("/report/route/orders?tenant=globex"), &[])
        .await;
    assert_eq!(detail.status, 200);
    let text = detail.text();
    assert!(
        text.contains("Route orders") && text.contains("tenant globex"),
        "{text}"
    );
    assert!(text.contains(r#"data-field="/status" data-class="real""#));
    assert!(text.contains("<mark>"), "differences are highlighted");
    assert_eq!(
        http.get(&proxy.admin_url("/report/route/nope"), &[])
            .await
            .status,
        404
    );
    assert_eq!(
        http.get(&proxy.admin_url("/report?since=soon"), &[])
            .await
            .status,
        400
    );
    // An unknown source is a 400 that says which ones exist.
    for path in [
        "/report?source=live",
        "/api/report?source=live",
        "/report/route/orders?source=live",
        "/api/diffs?source=live",
    ] {
        let r = http.get(&proxy.admin_url(path), &[]).await;
        assert_eq!(r.status, 400, "{path}: {}", r.text());
        assert!(
            r.json()["error"]
                .as_str()
                .unwrap()
                .contains("use shadow or replay"),
            "{path}"
        );
    }
    // Only live comparisons were made: every stored diff says so.
    let live = http
        .get(
            &proxy.admin_url("/api/diffs?route=orders&source=shadow&limit=5"),
            &[],
        )
        .await
        .json();
    assert_eq!(live["diffs"].as_array().unwrap().len(), 5);
    assert!(
        live["diffs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["source"] == "shadow")
    );
    let replayed = http
        .get(&proxy.admin_url("/api/diffs?source=replay"), &[])
        .await
        .json();
    assert_eq!(replayed["diffs"], serde_json::json!([]));
    let page = http
        .get(&proxy.admin_url("/report?source=replay"), &[])
        .await;
    assert_eq!(page.status, 200);
    assert!(
        page.text()
            .contains("No replayed comparisons and no replay runs in this window."),
        "{}",
        page.text()
    );

    let diffs = http
        .get(
            &proxy.admin_url("/api/diffs?route=orders&field=/state&limit=5"),
            &[],
        )
        .await
        .json();
    let rows = diffs["diffs"].as_array().unwrap();
    assert_eq!(rows.len(), 5);
    assert!(
        rows.iter()
            .all(|r| r["route"] == "orders" && r["verdict"] == "diff")
    );
    // Paging: page 2 of the examples is different from page 1.
    let p0 = http
        .get(&proxy.admin_url("/report/route/orders"), &[])
        .await
        .text();
    let p1 = http
        .get(&proxy.admin_url("/report/route/orders?page=1"), &[])
        .await
        .text();
    assert!(p0.contains("older →") && p1.contains("← newer"));
    assert_ne!(p0, p1);
}
