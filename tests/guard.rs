//! The automatic guard: a new side that starts failing is rolled back by the
//! proxy itself, recorded as `trigger="auto"`, and stays rolled back until a
//! person raises the canary; a healthy new side is never rolled back.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use strangler_e2e::proxy::run_cli;
use strangler_e2e::{Backend, Http, Mode, Proxy, eventually};

async fn setup(new_mode: Mode) -> (Proxy, Backend, Backend) {
    let legacy = Backend::start("legacy").await;
    let new = Backend::start("new").await;
    new.set_mode(new_mode);
    let proxy = Proxy::start(&format!(
        r#"
backends:
  legacy: {{ url: "{}" }}
  new: {{ url: "{}" }}
default: legacy
routes:
  - name: orders
    match: {{ path: /api/orders }}
    new: new
    canary: 50
    sticky: none
    guard: {{ window: 5s, min_requests: 30, error_rate_margin: 10, p99_margin: 200 }}
"#,
        legacy.url(),
        new.url()
    ))
    .await;
    (proxy, legacy, new)
}

/// Steady traffic until `stop`; counts answers by status class.
fn traffic(
    proxy: &Proxy,
    stop: Arc<AtomicUsize>,
    five_xx: Arc<AtomicUsize>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..4)
        .map(|_| {
            let (url, stop, five_xx) = (proxy.url("/api/orders/1"), stop.clone(), five_xx.clone());
            tokio::spawn(async move {
                let http = Http::new();
                while stop.load(Ordering::SeqCst) == 0 {
                    if let Ok(r) = http.send(http::Method::GET, &url, &[], b"").await {
                        if r.status >= 500 {
                            five_xx.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
        })
        .collect()
}

async fn auto_rollbacks(proxy: &Proxy) -> f64 {
    proxy.metrics().await.sum(
        "strangler_rollbacks_total",
        &[("route", "orders"), ("trigger", "auto")],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_new_side_is_rolled_back_automatically_and_stays_so() {
    let (proxy, _legacy, _new) = setup(Mode::Status(503)).await;
    let (stop, five_xx) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let workers = traffic(&proxy, stop.clone(), five_xx.clone());

    eventually(Duration::from_secs(20), || async {
        (auto_rollbacks(&proxy).await >= 1.0).then_some(())
    })
    .await
    .unwrap_or_else(|| panic!("the guard did not trip; logs:\n{}", proxy.logs()));
    assert_eq!(proxy.canary("orders").await, 0.0);
    let errors_at_trip = five_xx.load(Ordering::SeqCst);
    assert!(errors_at_trip > 0);

    // It stays rolled back: no more errors, no second trip.
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(auto_rollbacks(&proxy).await, 1.0, "no flapping");
    let settled = five_xx.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        five_xx.load(Ordering::SeqCst),
        settled,
        "all traffic is on legacy"
    );

    // Recorded as the guard's doing.
    let config = proxy.config_path.display().to_string();
    let (_, out, _) = run_cli(&["history", "--audit", "--json", "--config", &config]);
    let h: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(h["versions"][0]["source"], "guard");
    assert_eq!(h["versions"][0]["actor"], "guard");
    assert!(
        h["versions"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("5xx rate"),
        "{}",
        h["versions"][0]
    );
    assert!(
        std::fs::read_to_string(&proxy.config_path)
            .unwrap()
            .contains("canary: 0")
    );
    assert!(proxy.logs().contains("guard: rolling back orders"));

    // A person raises the canary again: the guard is armed again, and the
    // still-failing new side trips it a second time.
    let (code, out, err) = run_cli(&[
        "canary", "orders", "50", "--reason", "fixed?", "--config", &config,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    eventually(Duration::from_secs(20), || async {
        (auto_rollbacks(&proxy).await >= 2.0).then_some(())
    })
    .await
    .expect("re-armed after a person raised the canary");
    stop.store(1, Ordering::SeqCst);
    for w in workers {
        w.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_new_side_is_never_rolled_back() {
    let (proxy, _legacy, new) = setup(Mode::Echo).await;
    let (stop, five_xx) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let workers = traffic(&proxy, stop.clone(), five_xx.clone());
    // Four windows of healthy traffic.
    tokio::time::sleep(Duration::from_secs(20)).await;
    stop.store(1, Ordering::SeqCst);
    for w in workers {
        w.await.unwrap();
    }
    assert!(
        new.requests() > 200,
        "the new side had real traffic: {}",
        new.requests()
    );
    assert_eq!(five_xx.load(Ordering::SeqCst), 0);
    assert_eq!(auto_rollbacks(&proxy).await, 0.0);
    assert_eq!(proxy.canary("orders").await, 50.0);
}

/// A shadowed route with nothing on the new side: its copies differ, the
/// guard's diff rate trips, but there is nothing to roll back. It must not
/// count (or page) as a rollback, nor make a version; the audit log says
/// what the guard saw.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_with_nothing_on_the_new_side_is_not_rolled_back() {
    let legacy = Backend::start("legacy").await;
    let new = Backend::start("new").await;
    let proxy = Proxy::start(&format!(
        r#"
backends:
  legacy: {{ url: "{}" }}
  new: {{ url: "{}" }}
default: legacy
routes:
  - name: orders
    match: {{ path: /api/orders }}
    new: new
    canary: 0
    shadow: {{ percent: 100 }}
    guard: {{ window: 5s, min_requests: 20, max_diff_rate: 10 }}
"#,
        legacy.url(),
        new.url()
    ))
    .await;
    let version = proxy.version().await;
    let (stop, five_xx) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let workers = traffic(&proxy, stop.clone(), five_xx.clone());
    let config = proxy.config_path.display().to_string();
    let audit = eventually(Duration::from_secs(30), || async {
        let (_, out, _) = run_cli(&["history", "--audit", "--json", "--config", &config]);
        let h: serde_json::Value = serde_json::from_str(&out).ok()?;
        h["audit"]
            .as_array()?
            .iter()
            .find(|a| a["action"] == "guard" && a["target"] == "orders")
            .cloned()
    })
    .await;
    // A moment more, in which a wrong rollback would be counted.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(1, Ordering::SeqCst);
    for w in workers {
        w.await.unwrap();
    }
    let audit = audit.unwrap_or_else(|| panic!("no guard audit row; logs:\n{}", proxy.logs()));
    assert!(
        audit["outcome"]
            .as_str()
            .unwrap()
            .contains("nothing on the new side"),
        "{audit}"
    );
    assert!(
        audit["reason"].as_str().unwrap().contains("real-diff rate"),
        "{audit}"
    );
    assert!(new.requests() > 20, "the shadow side was compared");
    assert_eq!(auto_rollbacks(&proxy).await, 0.0, "not a rollback");
    assert_eq!(proxy.version().await, version, "no new version");
    assert_eq!(proxy.canary("orders").await, 0.0);
    assert_eq!(five_xx.load(Ordering::SeqCst), 0);
}
