//! The health of one backend address: a small state machine fed by active
//! checks ([`super::checks`]) and by what real requests see, read by
//! [`super::upstream::Upstream::pick`] on every request.
//!
//! Everything is an atomic: the request path reads one `bool`, and the rare
//! writers (a failure, a check result) never take a lock. Two results racing
//! can at worst delay a transition by one result, which a threshold of
//! consecutive results tolerates by design.
//!
//! The rules, as in nginx and Envoy's outlier detection:
//! - an address is up until `unhealthy_after` consecutive failures (failed
//!   checks, or connect failures and timeouts of real requests) eject it;
//! - with active checks, `healthy_after` consecutive passing checks
//!   re-admit it;
//! - without them, nothing would ever test an ejected address, so it comes
//!   back after a cool-down, on probation (one more failure ejects it
//!   again); a real request it serves meanwhile (every address down, fail
//!   open) re-admits it at once.
//!
//! A [`AddressHealth`] is shared (`Arc`) by every table that has its
//! address, so a reload does not forget what was learnt.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::config::HealthPolicy;

/// What a result did to the address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Unchanged,
    Ejected,
    Readmitted,
}

/// Milliseconds since the first call, a clock atomics can hold.
pub fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

#[derive(Debug)]
pub struct AddressHealth {
    up: AtomicBool,
    failures: AtomicU32,
    passes: AtomicU32,
    /// When it was last ejected ([`now_ms`]), for the passive cool-down.
    ejected_at: AtomicU64,
    /// When the next active check is due ([`now_ms`]); 0 = at once.
    next_check: AtomicU64,
    /// A check of this address is running.
    checking: AtomicBool,
}

impl Default for AddressHealth {
    fn default() -> Self {
        AddressHealth::new()
    }
}

impl AddressHealth {
    /// A new address is up: it was just resolved from the configuration,
    /// and keeping it out until proven would turn a reload into an outage.
    pub fn new() -> AddressHealth {
        AddressHealth {
            up: AtomicBool::new(true),
            failures: AtomicU32::new(0),
            passes: AtomicU32::new(0),
            ejected_at: AtomicU64::new(0),
            next_check: AtomicU64::new(0),
            checking: AtomicBool::new(false),
        }
    }

    #[inline]
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// A failed check, or a connect failure or timeout of a real request.
    pub fn failure(&self, policy: &HealthPolicy, now: u64) -> Transition {
        self.passes.store(0, Ordering::Relaxed);
        let n = self
            .failures
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1);
        if n >= policy.unhealthy_after && self.set_up(false) {
            self.ejected_at.store(now, Ordering::Relaxed);
            return Transition::Ejected;
        }
        Transition::Unchanged
    }

    /// A passing check.
    pub fn check_passed(&self, policy: &HealthPolicy) -> Transition {
        self.failures.store(0, Ordering::Relaxed);
        let n = self
            .passes
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1);
        if n >= policy.healthy_after && self.set_up(true) {
            return Transition::Readmitted;
        }
        Transition::Unchanged
    }

    /// A real request that this address answered.
    pub fn request_succeeded(&self, policy: &HealthPolicy) -> Transition {
        // Read before writing: this runs for every request, and a store
        // would bounce the cache line between the workers.
        if self.failures.load(Ordering::Relaxed) != 0 {
            self.failures.store(0, Ordering::Relaxed);
        }
        // With active checks, only they re-admit: a request may succeed on
        // a path the check says is broken.
        if policy.active.is_none() && !self.is_up() && self.set_up(true) {
            return Transition::Readmitted;
        }
        Transition::Unchanged
    }

    /// Without active checks: re-admits an address ejected `cooldown` ago,
    /// on probation (its next failure ejects it again).
    pub fn cooldown(&self, policy: &HealthPolicy, cooldown: Duration, now: u64) -> Transition {
        if policy.active.is_some() || self.is_up() {
            return Transition::Unchanged;
        }
        let since = now.saturating_sub(self.ejected_at.load(Ordering::Relaxed));
        if since < cooldown.as_millis() as u64 {
            return Transition::Unchanged;
        }
        self.failures
            .store(policy.unhealthy_after.saturating_sub(1), Ordering::Relaxed);
        if self.set_up(true) {
            return Transition::Readmitted;
        }
        Transition::Unchanged
    }

    /// Claims the next active check if it is due; the caller runs it and
    /// then calls [`AddressHealth::check_done`].
    pub fn claim_check(&self, now: u64) -> bool {
        if now < self.next_check.load(Ordering::Relaxed) {
            return false;
        }
        self.checking
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    }

    /// The check claimed by [`AddressHealth::claim_check`] is over; the
    /// next one is due `interval` after it started.
    pub fn check_done(&self, started: u64, interval: Duration) {
        self.next_check
            .store(started + interval.as_millis() as u64, Ordering::Relaxed);
        self.checking.store(false, Ordering::Release);
    }

    /// Sets the state; true if it changed.
    fn set_up(&self, up: bool) -> bool {
        self.up
            .compare_exchange(!up, up, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ActiveCheck;

    fn policy(active: bool) -> HealthPolicy {
        HealthPolicy {
            active: active.then(|| ActiveCheck {
                path: "/".into(),
                interval: Duration::from_secs(1),
                timeout: Duration::from_secs(1),
            }),
            unhealthy_after: 3,
            healthy_after: 2,
        }
    }

    #[test]
    fn consecutive_failures_eject_and_a_success_in_between_resets_them() {
        let p = policy(true);
        let h = AddressHealth::new();
        assert!(h.is_up());
        assert_eq!(h.failure(&p, 0), Transition::Unchanged);
        assert_eq!(h.failure(&p, 0), Transition::Unchanged);
        h.request_succeeded(&p);
        assert_eq!(h.failure(&p, 0), Transition::Unchanged);
        assert_eq!(h.failure(&p, 0), Transition::Unchanged);
        assert_eq!(h.failure(&p, 5), Transition::Ejected);
        assert!(!h.is_up());
        // Further failures do not eject twice.
        assert_eq!(h.failure(&p, 6), Transition::Unchanged);
    }

    #[test]
    fn passing_checks_readmit_after_the_threshold_and_a_failure_restarts_the_count() {
        let p = policy(true);
        let h = AddressHealth::new();
        for _ in 0..3 {
            h.failure(&p, 0);
        }
        assert_eq!(h.check_passed(&p), Transition::Unchanged);
        h.failure(&p, 0);
        assert_eq!(h.check_passed(&p), Transition::Unchanged);
        assert_eq!(h.check_passed(&p), Transition::Readmitted);
        assert!(h.is_up());
    }

    #[test]
    fn with_active_checks_a_request_does_not_readmit() {
        let p = policy(true);
        let h = AddressHealth::new();
        for _ in 0..3 {
            h.failure(&p, 0);
        }
        assert_eq!(h.request_succeeded(&p), Transition::Unchanged);
        assert!(!h.is_up());
        assert_eq!(
            h.cooldown(&p, Duration::ZERO, 1_000_000),
            Transition::Unchanged
        );
        assert!(!h.is_up());
    }

    #[test]
    fn without_active_checks_a_cooldown_readmits_on_probation() {
        let p = policy(false);
        let h = AddressHealth::new();
        for _ in 0..3 {
            h.failure(&p, 1000);
        }
        let cooldown = Duration::from_secs(10);
        assert_eq!(h.cooldown(&p, cooldown, 5000), Transition::Unchanged);
        assert_eq!(h.cooldown(&p, cooldown, 11_000), Transition::Readmitted);
        assert!(h.is_up());
        // On probation: one failure is enough.
        assert_eq!(h.failure(&p, 12_000), Transition::Ejected);
    }

    #[test]
    fn without_active_checks_a_request_served_while_down_readmits() {
        let p = policy(false);
        let h = AddressHealth::new();
        for _ in 0..3 {
            h.failure(&p, 0);
        }
        assert_eq!(h.request_succeeded(&p), Transition::Readmitted);
        assert!(h.is_up());
    }

    #[test]
    fn one_check_at_a_time_and_the_next_after_the_interval() {
        let h = AddressHealth::new();
        assert!(h.claim_check(0));
        assert!(!h.claim_check(0), "already running");
        h.check_done(100, Duration::from_millis(500));
        assert!(!h.claim_check(599));
        assert!(h.claim_check(600));
    }
}
