//! The report page in a real browser (Debian's headless Chromium through
//! chromedriver): load /report, follow a route's link, check what a person
//! sees (the charts of each route's interval against its threshold and of
//! its trend, its differences grouped by signature, times in local time on
//! request, an exported file that keeps the page's content-security
//! policy), and keep screenshots in tests/artifacts/.

use std::path::PathBuf;

use serde_json::{Value, json};
use strangler_e2e::Http;
use strangler_e2e::proxy::run_cli;
use strangler_e2e::scenarios::report_traffic_with_env;
use strangler_e2e::webdriver::Browser;

fn artifact(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("artifacts")
        .join(name)
}

fn pct(v: &Value) -> String {
    format!("{:.2}%", v.as_f64().unwrap() * 100.0)
}

/// A POSIX zone without daylight saving, five and a half hours east of
/// UTC: read without tzdata, and no machine's default.
const ZONE: &str = "IST-5:30";

/// The summary row's charts of `route`, as the browser lays them out.
const CHART_GEOMETRY: &str = r#"
const row = document.querySelector(`table.summary tr[data-route="${arguments[0]}"]`);
const box = sel => row.querySelector(sel).getBoundingClientRect();
const band = box('svg.ci .ci-band'), line = box('svg.ci .ci-threshold'), dot = box('svg.ci .ci-point');
return {
  ci_title: row.querySelector('svg.ci title').textContent,
  spark_title: row.querySelector('svg.spark title').textContent,
  spark_points: Number(row.querySelector('svg.spark').dataset.points),
  band_left: band.left, band_right: band.right, band_width: band.width,
  threshold_x: line.left + line.width / 2, dot_x: dot.left + dot.width / 2,
};"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_manager_reads_the_report_in_a_browser() {
    let (proxy, ..) = report_traffic_with_env(&[("TZ", ZONE)]).await;
    let browser = Browser::start().await;
    let http = Http::new();
    let api = http.get(&proxy.admin_url("/api/report"), &[]).await.json();
    let live = |name: &str| {
        api["routes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["route"] == name)
            .unwrap()
            .clone()
    };

    browser.goto(&proxy.admin_url("/report")).await;
    assert_eq!(browser.title().await, "Strangler diff report");
    let summary = browser.visible_text().await;
    for expected in [
        "May each route move on?",
        "orders",
        "ready",
        "users",
        "not ready",
        "tiny",
        "not enough data",
    ] {
        assert!(
            summary.contains(expected),
            "{expected:?} not on the page:\n{summary}"
        );
    }
    // Each route's interval against its threshold: the numbers in the
    // chart's title are the report's, and the browser draws the band on
    // the side of the threshold line that the verdict says.
    for name in ["orders", "users", "tiny"] {
        let r = live(name);
        let chart = browser.eval_with(CHART_GEOMETRY, json!([name])).await;
        let ci = r["real_diff_rate_ci95"].as_array().unwrap();
        assert_eq!(
            chart["ci_title"],
            format!(
                "Real-diff rate {}, 95% CI {}–{}, threshold {}",
                pct(&r["real_diff_rate"]),
                pct(&ci[0]),
                pct(&ci[1]),
                pct(&r["threshold"]["max_diff_rate"])
            ),
            "{name}"
        );
        let trend = r["trend"].as_array().unwrap();
        assert_eq!(chart["spark_points"], trend.len(), "{name}: {chart}");
        let first = &trend[0];
        let spark = chart["spark_title"].as_str().unwrap();
        assert!(
            spark.starts_with("Real-diff rate per hour")
                && spark.contains(&format!(
                    "first {} ({} of {}) at ",
                    pct(&json!(
                        first["real_diffs"].as_f64().unwrap() / first["compared"].as_f64().unwrap()
                    )),
                    first["real_diffs"],
                    first["compared"]
                ))
                && spark.contains("peak ")
                && spark.contains(&format!(
                    "threshold {}",
                    pct(&r["threshold"]["max_diff_rate"])
                )),
            "{name}: {spark}"
        );
        let at = |k: &str| chart[k].as_f64().unwrap();
        assert!(at("band_width") > 0.0, "{name}: {chart}");
        // Half a pixel for rounding: a rate of 0 sits on the band's edge.
        assert!(
            at("band_left") - 0.5 <= at("dot_x") && at("dot_x") <= at("band_right") + 0.5,
            "{name}: the rate lies in its interval: {chart}"
        );
        match r["verdict"].as_str().unwrap() {
            "ready" => assert!(at("band_right") < at("threshold_x"), "{name}: {chart}"),
            "not_ready" => assert!(at("threshold_x") < at("band_left"), "{name}: {chart}"),
            _ => assert!(
                at("band_left") <= at("threshold_x") && at("threshold_x") <= at("band_right"),
                "{name}: an undecided interval straddles the threshold: {chart}"
            ),
        }
    }
    browser.screenshot(&artifact("report-summary.png")).await;

    browser.click_link("orders").await;
    assert!(
        browser.url().await.ends_with("/report/route/orders"),
        "{}",
        browser.url().await
    );
    assert_eq!(browser.title().await, "orders · Strangler diff report");
    let detail = browser.visible_text().await;
    for expected in [
        "Route orders",
        "real-diff rate 30.00%",
        "Trend",
        "real-diff rate per hour over",
        "Fields that differ",
        "/status",
        "/state",
        "/nonce",
        "ignore_fields: [/nonce]",
        "Differences by signature",
        "45 comparisons with real differences, in 1 signature",
        "Signature 1:",
        "legacy · 200",
        "new · 200",
        "Stored comparisons",
    ] {
        assert!(
            detail.contains(expected),
            "{expected:?} not on the page:\n{detail}"
        );
    }
    // Every real diff of orders renamed `status` to `state`: one group of
    // 45, whatever the page of examples, with one example in full.
    let groups = browser
        .eval("return Array.from(document.querySelectorAll('table.signatures tr[data-count]')).map(r => [r.dataset.signature, Number(r.dataset.count)])")
        .await;
    assert_eq!(groups, json!([["/state + /status", 45]]));
    let examples = browser
        .eval("return document.querySelectorAll('div.signature div.example').length")
        .await;
    assert_eq!(examples, json!(1));
    // The differing lines are highlighted in the side-by-side bodies.
    let marked = browser
        .eval("return Array.from(document.querySelectorAll('.pane mark')).map(m => m.textContent).join('\\n')")
        .await;
    assert!(
        marked
            .as_str()
            .unwrap_or_default()
            .contains("\"status\": \"shipped\""),
        "{marked}"
    );
    // The route's large sparkline is drawn.
    let width = browser
        .eval("return document.querySelector('section.route svg.spark').getBoundingClientRect().width")
        .await;
    assert!(width.as_f64().unwrap() >= 400.0, "{width}");
    browser
        .screenshot(&artifact("report-route-orders.png"))
        .await;

    // The filter form narrows to one tenant.
    browser.goto(&proxy.admin_url("/report?tenant=acme")).await;
    assert!(browser.visible_text().await.contains("tenant acme"));
    let rows = browser
        .eval("return Array.from(document.querySelectorAll('table.summary tr[data-route]')).map(r => r.dataset.route)")
        .await;
    assert_eq!(rows, json!(["orders"]), "only orders has acme traffic");

    // Local time on request: the proxy's zone, with its offset; links keep
    // the choice.
    browser.goto(&proxy.admin_url("/report?time=local")).await;
    let meta = browser
        .eval("return document.querySelector('header .meta').textContent")
        .await;
    let local = regex::Regex::new(r"^Comparisons from \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+05:30 to \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+05:30 · generated \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+05:30$").unwrap();
    assert!(local.is_match(meta.as_str().unwrap()), "{meta}");
    let chosen = browser
        .eval("return document.querySelector('select[name=time]').value")
        .await;
    assert_eq!(chosen, "local");
    browser.click_link("orders").await;
    assert!(
        browser
            .url()
            .await
            .ends_with("/report/route/orders?time=local")
    );
    let detail = browser.visible_text().await;
    assert!(
        detail.contains("+05:30") && !detail.contains(" UTC"),
        "{detail}"
    );
    browser
        .screenshot(&artifact("report-route-orders-local-time.png"))
        .await;
    // UTC stays the default.
    let utc = http.get(&proxy.admin_url("/report"), &[]).await.text();
    assert!(utc.contains(" UTC to ") && !utc.contains("+05:30"), "{utc}");

    // The exported file carries the served page's policy, and the browser
    // enforces it: an injected inline script does not run.
    let served = http.get(&proxy.admin_url("/report"), &[]).await;
    let policy = served.headers["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("report.html");
    let config = proxy.config_path.display().to_string();
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
    browser.goto(&format!("file://{}", file.display())).await;
    let meta = browser
        .eval("return document.querySelector('meta[http-equiv=Content-Security-Policy]').content")
        .await;
    assert_eq!(meta, policy);
    let ran = browser
        .eval("const s = document.createElement('script'); s.textContent = 'window.ran = true'; document.head.appendChild(s); return window.ran === true")
        .await;
    assert_eq!(ran, json!(false), "the policy blocks inline scripts");
    let charts = browser
        .eval("return [document.querySelectorAll('svg.ci').length, document.querySelectorAll('table.signatures').length]")
        .await;
    assert_eq!(
        charts,
        json!([6, 2]),
        "summary and section charts; users and orders have real diffs"
    );
    browser.screenshot(&artifact("report-exported.png")).await;
}
