//! What `routes.yaml` means where it leaves a key out. Every value the
//! compiler fills in for an absent key is named here and nowhere else, so a
//! default is changed in one place and can be looked up in one place. The
//! data plane uses [`DEFAULT_MAX_REQUEST_BODY`] for unmatched traffic too,
//! which is why these live beside the model rather than inside the compiler.
//!
//! Two groups of defaults belong to other crates and are used from there:
//! a shadow block's report threshold (`max_diff_rate`, `min_samples`) is
//! [`shadow_diff::report::Threshold::default`], and an absent `compare`
//! block is [`shadow_diff::CompareRules::default`], because the diff report
//! and the comparison apply the same values when they run on their own.
//!
//! Limits a value must respect (the guard window's range, the highest host
//! label) are not defaults; they stay with the check that enforces them.

use std::time::Duration;

use http::Method;

use super::model::{Gate, OnFailure, RolloutStart, Sticky};
use super::units::{ByteSize, Percent};

// Listeners and the store.

pub const DEFAULT_LISTEN: &str = "0.0.0.0:8080";
/// Loopback, so that an admin listener nobody configured cannot be reached
/// from outside (changing routes from anywhere needs `admin.token_env`).
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9901";
pub const DEFAULT_STORE: &str = "sqlite://strangler.db";

// Backends.

pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Certificates are checked unless a backend opts out.
pub const DEFAULT_TLS_VERIFY: bool = true;

// Backend health (`backends.NAME.health`) and name resolution.

/// HAProxy's `option httpchk` default: every HTTP server answers `/`.
pub const DEFAULT_HEALTH_PATH: &str = "/";
pub const DEFAULT_HEALTH_INTERVAL: Duration = Duration::from_secs(5);
pub const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_secs(1);
/// Also the passive threshold of a backend without `health:`.
pub const DEFAULT_UNHEALTHY_AFTER: u32 = 3;
pub const DEFAULT_HEALTHY_AFTER: u32 = 2;
/// How long an address ejected by real requests stays out when no active
/// check can re-admit it (nginx's `fail_timeout` plays this part). It comes
/// back on probation: one more failure ejects it again.
pub const DEFAULT_PASSIVE_COOLDOWN: Duration = Duration::from_secs(10);
/// How often host names in `url`/`urls` are resolved again, in the
/// background, so that a service moving addresses is followed.
pub const DEFAULT_RESOLVE_INTERVAL: Duration = Duration::from_secs(30);

// Routes.

/// A new route sends nothing to the new side until its canary is raised.
pub const DEFAULT_CANARY: Percent = Percent::ZERO;
pub const DEFAULT_STICKY: Sticky = Sticky::Tenant;
/// Largest request body a route accepts unless it says otherwise.
pub const DEFAULT_MAX_REQUEST_BODY: ByteSize = ByteSize::bytes(100 << 20);
/// No attempt beyond the first unless a route asks (an idempotent request
/// whose pooled connection turns out dead is still tried again once on a
/// fresh one, as Pingora does).
pub const DEFAULT_RETRIES: u32 = 0;
/// The most `retries` a route may ask for.
pub const MAX_RETRIES: u32 = 5;

// Shadow blocks.

/// A shadow block with no percentage copies every request it may.
pub const DEFAULT_SHADOW_PERCENT: Percent = Percent::HUNDRED;
/// Only methods without side effects are copied unless the block lists more.
pub const DEFAULT_SHADOW_METHODS: [Method; 3] = [Method::GET, Method::HEAD, Method::OPTIONS];
pub const DEFAULT_SHADOW_ALLOW_WRITES: bool = false;
pub const DEFAULT_SHADOW_MAX_BODY: ByteSize = ByteSize::bytes(1 << 20);
pub const DEFAULT_SHADOW_TIMEOUT: Duration = Duration::from_secs(5);
/// In percent; a `Percent` cannot be built in a constant, the test below
/// checks that this one is valid.
pub const DEFAULT_NOISE_SAMPLE: f64 = 10.0;
/// Numbers in the two responses must be equal unless a tolerance is given.
pub const DEFAULT_NUMERIC_TOLERANCE: f64 = 0.0;

// Recording and replay.

/// Largest request or answer body kept with a recording.
pub const DEFAULT_RECORD_MAX_BODY: ByteSize = ByteSize::bytes(256 << 10);
/// Only methods without side effects are replayed unless the route says
/// `replay.allow_writes`.
pub const DEFAULT_REPLAY_ALLOW_WRITES: bool = false;

// Guards.

pub const DEFAULT_GUARD_WINDOW: Duration = Duration::from_secs(60);
pub const DEFAULT_GUARD_MIN_REQUESTS: u64 = 100;
/// As a fraction: the new side may fail 5 points more often than legacy.
pub const DEFAULT_GUARD_ERROR_RATE_MARGIN: f64 = 0.05;

// Rollouts.

pub const DEFAULT_ROLLOUT_PAUSE: Duration = Duration::from_secs(600);
/// Every gate: a route whose `guard:` or `shadow:` block is missing must say
/// which gates it wants.
pub const DEFAULT_ROLLOUT_REQUIRE: [Gate; 2] = [Gate::Guard, Gate::Report];
pub const DEFAULT_ROLLOUT_ON_FAILURE: OnFailure = OnFailure::Rollback;
pub const DEFAULT_ROLLOUT_START: RolloutStart = RolloutStart::Manual;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{PathMatch, parse};

    #[test]
    fn the_noise_sample_is_a_percentage() {
        assert!(Percent::new(DEFAULT_NOISE_SAMPLE).is_ok());
    }

    /// A file that leaves every optional key out compiles to the values
    /// named above.
    #[test]
    fn absent_keys_take_the_named_defaults() {
        let config = parse(
            r#"
version: 1
backends:
  monolith: { url: "http://127.0.0.1:1" }
  orders: { url: "https://orders.internal" }
default: monolith
routes:
  - name: orders
    match: { path: /api/orders }
    new: orders
    shadow: {}
    guard: {}
"#,
            "defaults.yaml",
        )
        .unwrap();
        assert_eq!(config.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(config.admin.listen.to_string(), DEFAULT_ADMIN_LISTEN);
        assert_eq!(config.admin.token_env, None);
        assert_eq!(config.store.as_str(), DEFAULT_STORE);
        assert!(config.tls.is_none());

        let backend = &config.backends[1];
        assert_eq!(backend.connect_timeout, DEFAULT_CONNECT_TIMEOUT);
        assert_eq!(backend.read_timeout, DEFAULT_READ_TIMEOUT);
        assert_eq!(backend.write_timeout, DEFAULT_WRITE_TIMEOUT);
        assert_eq!(backend.idle_timeout, DEFAULT_IDLE_TIMEOUT);
        assert_eq!(backend.tls_verify, DEFAULT_TLS_VERIFY);
        assert!(backend.tls.ca.is_none() && backend.tls.client.is_none());
        assert_eq!(backend.tls.sni, None);
        assert_eq!(backend.health.active, None);
        assert_eq!(backend.health.unhealthy_after, DEFAULT_UNHEALTHY_AFTER);
        assert_eq!(backend.health.healthy_after, DEFAULT_HEALTHY_AFTER);

        let route = &config.routes[0];
        assert!(matches!(&route.matcher.path, PathMatch::Prefix(p) if p == "/api/orders"));
        assert_eq!(route.legacy, config.default_backend);
        assert_eq!(route.canary, DEFAULT_CANARY);
        assert_eq!(route.sticky, DEFAULT_STICKY);
        assert!(route.pins.is_empty());
        assert_eq!(route.max_request_body, DEFAULT_MAX_REQUEST_BODY);

        let shadow = route.shadow.as_ref().unwrap();
        assert_eq!(shadow.percent, DEFAULT_SHADOW_PERCENT);
        assert_eq!(shadow.methods, DEFAULT_SHADOW_METHODS);
        assert_eq!(shadow.max_body, DEFAULT_SHADOW_MAX_BODY);
        assert_eq!(shadow.timeout, DEFAULT_SHADOW_TIMEOUT);
        assert_eq!(shadow.noise_sample.get(), DEFAULT_NOISE_SAMPLE);
        assert!(shadow.redact.is_empty());
        assert_eq!(shadow.threshold, shadow_diff::report::Threshold::default());
        assert_eq!(shadow.compare, shadow_diff::CompareRules::default());

        let guard = route.guard.as_ref().unwrap();
        assert_eq!(guard.window, DEFAULT_GUARD_WINDOW);
        assert_eq!(guard.min_requests, DEFAULT_GUARD_MIN_REQUESTS);
        assert_eq!(guard.error_rate_margin, DEFAULT_GUARD_ERROR_RATE_MARGIN);
        assert_eq!(guard.p99_margin, None);
        assert_eq!(guard.max_diff_rate, None);
    }
}
