//! The report page in a real browser (Debian's headless Chromium through
//! chromedriver): load /report, follow a route's link, check what a person
//! sees, and keep screenshots in tests/artifacts/.

use std::path::PathBuf;

use strangler_e2e::scenarios::report_traffic;
use strangler_e2e::webdriver::Browser;

fn artifact(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("artifacts")
        .join(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_manager_reads_the_report_in_a_browser() {
    let (proxy, ..) = report_traffic().await;
    let browser = Browser::start().await;

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
        "Fields that differ",
        "/status",
        "/state",
        "/nonce",
        "ignore_fields: [/nonce]",
        "Examples",
        "legacy · 200",
        "new · 200",
    ] {
        assert!(
            detail.contains(expected),
            "{expected:?} not on the page:\n{detail}"
        );
    }
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
    browser
        .screenshot(&artifact("report-route-orders.png"))
        .await;

    // The filter form narrows to one tenant.
    browser.goto(&proxy.admin_url("/report?tenant=acme")).await;
    assert!(browser.visible_text().await.contains("tenant acme"));
    let rows = browser
        .eval("return Array.from(document.querySelectorAll('table.summary tr[data-route]')).map(r => r.dataset.route)")
        .await;
    assert_eq!(
        rows,
        serde_json::json!(["orders"]),
        "only orders has acme traffic"
    );
}
