//! Shared harness for the end-to-end tests: real HTTP backends on ephemeral
//! loopback ports, the real `strangler` binary, an HTTP client, and a reader
//! for the proxy's Prometheus metrics. No mocks: what a test observes is what
//! an operator would.

pub mod admin;
pub mod backend;
pub mod client;
pub mod evil;
pub mod haproxy;
pub mod health;
pub mod metrics;
pub mod prometheus;
pub mod proxy;
pub mod relay;
pub mod scenarios;
pub mod tls;
pub mod webdriver;

pub use backend::{Answer, Backend, BlackHole, Mode, Seen};
pub use client::{Http, Reply};
pub use metrics::Scrape;
pub use proxy::{Proxy, free_port};

use std::time::{Duration, Instant};

/// Polls `check` until it returns `Some` or `timeout` passes.
pub async fn eventually<T, F, Fut>(timeout: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
