//! Traffic scenarios shared by several test files: real shadow traffic whose
//! outcome is known, so reports can be checked against it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::backend::{Answer, Backend, Mode, Seen};
use crate::client::Http;
use crate::proxy::Proxy;

static NONCE: AtomicU64 = AtomicU64::new(1);

fn json(status: u16, body: serde_json::Value) -> Answer {
    (
        status,
        vec![("content-type".into(), "application/json".into())],
        body.to_string().into_bytes(),
    )
}

fn number(seen: &Seen) -> u64 {
    seen.path
        .split('?')
        .next()
        .and_then(|p| p.rsplit('/').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Of every ten order numbers: 0-2 differ for real (a renamed field), 3-5
/// only by a random nonce (noise), 6-9 are identical.
fn legacy_answer(seen: &Seen) -> Answer {
    let i = number(seen);
    let noisy = (3..6).contains(&(i % 10));
    let nonce = if noisy {
        NONCE.fetch_add(1, Ordering::SeqCst)
    } else {
        0
    };
    if seen.path.starts_with("/api/users") {
        return json(200, serde_json::json!({"user": i}));
    }
    json(
        200,
        serde_json::json!({"id": i, "status": "shipped", "nonce": nonce}),
    )
}

fn new_answer(seen: &Seen) -> Answer {
    let i = number(seen);
    if seen.path.starts_with("/api/users") {
        // Nine in ten fail on the new side.
        return if i % 10 == 0 {
            json(200, serde_json::json!({"user": i}))
        } else {
            json(500, serde_json::json!({"error": "boom"}))
        };
    }
    let noisy = (3..6).contains(&(i % 10));
    let nonce = if noisy {
        NONCE.fetch_add(1, Ordering::SeqCst)
    } else {
        0
    };
    if i % 10 < 3 {
        json(
            200,
            serde_json::json!({"id": i, "state": "shipped", "nonce": nonce}),
        )
    } else {
        json(
            200,
            serde_json::json!({"id": i, "status": "shipped", "nonce": nonce}),
        )
    }
}

/// Routes `orders` (150 comparisons: 45 real diffs, 45 noise only, tenants
/// acme and globex), `users` (40 comparisons, 36 real diffs) and `tiny`
/// (5 comparisons). Returns when everything is stored.
pub async fn report_traffic() -> (Proxy, Backend, Backend) {
    report_traffic_with_env(&[]).await
}

/// [`report_traffic`] with variables added to the proxy's environment
/// (`TZ`, for the report's local times).
pub async fn report_traffic_with_env(env: &[(&str, &str)]) -> (Proxy, Backend, Backend) {
    let legacy = Backend::start("legacy").await;
    legacy.set_mode(Mode::Script(Arc::new(legacy_answer)));
    let new = Backend::start("new").await;
    new.set_mode(Mode::Script(Arc::new(new_answer)));
    let body = format!(
        r#"
backends:
  legacy: {{ url: "{}" }}
  new: {{ url: "{}" }}
tenant:
  - header: X-Tenant-Id
default: legacy
routes:
  - name: orders
    match: {{ path: /api/orders }}
    new: new
    shadow: {{ percent: 100, noise_sample: 100, max_diff_rate: 50, min_samples: 50 }}
  - name: users
    match: {{ path: /api/users }}
    new: new
    shadow: {{ percent: 100, noise_sample: 100, max_diff_rate: 10, min_samples: 20 }}
  - name: tiny
    match: {{ path: /api/tiny }}
    new: new
    shadow: {{ percent: 100, noise_sample: 100 }}
"#,
        legacy.url(),
        new.url()
    );
    let proxy = if env.is_empty() {
        Proxy::start(&body).await
    } else {
        Proxy::start_with_env(&body, "sqlite://{dir}/strangler.db", env).await
    };
    let http = Http::new();
    for i in 0..150u64 {
        let tenant = if i % 2 == 0 { "acme" } else { "globex" };
        let r = http
            .get(
                &proxy.url(&format!("/api/orders/{i}")),
                &[("x-tenant-id", tenant)],
            )
            .await;
        assert_eq!(r.status, 200);
    }
    for i in 0..40u64 {
        assert_eq!(
            http.get(&proxy.url(&format!("/api/users/{i}")), &[])
                .await
                .status,
            200
        );
    }
    for i in 0..5u64 {
        assert_eq!(
            http.get(&proxy.url(&format!("/api/tiny/{}", i * 10 + 7)), &[])
                .await
                .status,
            200
        );
    }
    let stored = crate::eventually(Duration::from_secs(30), || async {
        let m = proxy.metrics().await;
        let stored = m.sum("strangler_shadow_stored_total", &[]);
        // Noise evidence is flushed every 2 s after the comparisons.
        (stored >= 195.0).then_some(stored)
    })
    .await;
    assert!(
        stored.is_some(),
        "comparisons not stored; logs:\n{}",
        proxy.logs()
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    (proxy, legacy, new)
}
