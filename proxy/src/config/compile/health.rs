//! `backends.NAME.health`: active checks of each address and the thresholds
//! that eject and re-admit it. Without the block a backend still has passive
//! ejection, with the default thresholds (see [`HealthPolicy`]).

use std::time::Duration;

use super::values::{count, positive_duration};
use crate::config::defaults::{
    DEFAULT_HEALTH_INTERVAL, DEFAULT_HEALTH_PATH, DEFAULT_HEALTH_TIMEOUT, DEFAULT_HEALTHY_AFTER,
    DEFAULT_UNHEALTHY_AFTER,
};
use crate::config::error::{ErrorSink, Place};
use crate::config::model::{ActiveCheck, HealthPolicy};
use crate::config::raw::{RawHealth, Scalar};

/// More consecutive results than this would keep a dead address in service
/// (or a revived one out) for hours at any sensible interval.
const MAX_THRESHOLD: u64 = 100;

pub(super) fn compile_health(
    sink: &mut ErrorSink,
    place: &Place,
    raw: Option<&RawHealth>,
) -> Option<HealthPolicy> {
    let Some(raw) = raw else {
        return Some(HealthPolicy {
            active: None,
            unhealthy_after: DEFAULT_UNHEALTHY_AFTER,
            healthy_after: DEFAULT_HEALTHY_AFTER,
        });
    };
    let place = place.key("health");
    let path = sink.optional(
        &place,
        "path",
        raw.path.as_deref(),
        DEFAULT_HEALTH_PATH.to_string(),
        check_path,
    );
    let interval = sink.optional(
        &place,
        "interval",
        raw.interval.as_ref(),
        DEFAULT_HEALTH_INTERVAL,
        positive_duration,
    );
    let timeout = sink.optional(
        &place,
        "timeout",
        raw.timeout.as_ref(),
        DEFAULT_HEALTH_TIMEOUT,
        positive_duration,
    );
    let unhealthy_after = sink.optional(
        &place,
        "unhealthy_after",
        raw.unhealthy_after.as_ref(),
        DEFAULT_UNHEALTHY_AFTER,
        threshold,
    );
    let healthy_after = sink.optional(
        &place,
        "healthy_after",
        raw.healthy_after.as_ref(),
        DEFAULT_HEALTHY_AFTER,
        threshold,
    );
    let (interval, timeout) = (interval?, timeout?);
    check_timeout_fits(sink, &place, interval, timeout)?;
    Some(HealthPolicy {
        active: Some(ActiveCheck {
            path: path?,
            interval,
            timeout,
        }),
        unhealthy_after: unhealthy_after?,
        healthy_after: healthy_after?,
    })
}

/// A check still running when the next one is due would pile up.
fn check_timeout_fits(
    sink: &mut ErrorSink,
    place: &Place,
    interval: Duration,
    timeout: Duration,
) -> Option<()> {
    if timeout > interval {
        sink.push(
            place.key("timeout"),
            format!(
                "{} is longer than the interval ({}); a check must end before the next one",
                crate::config::units::format_duration(timeout),
                crate::config::units::format_duration(interval)
            ),
        );
        return None;
    }
    Some(())
}

fn threshold(raw: &Scalar) -> Result<u32, String> {
    let n = count(raw)?;
    if n > MAX_THRESHOLD {
        return Err(format!("{n} is over {MAX_THRESHOLD}"));
    }
    Ok(n as u32)
}

/// An origin-form request target: what goes on the request line.
fn check_path(path: &str) -> Result<String, String> {
    if !path.starts_with('/') {
        return Err(format!("{path:?} must start with /"));
    }
    if path.contains('#') || path.parse::<http::uri::PathAndQuery>().is_err() {
        return Err(format!("{path:?} is not a valid request path"));
    }
    Ok(path.to_string())
}

#[cfg(test)]
mod tests {
    use crate::config::parse;

    fn errors(health: &str) -> Vec<String> {
        let text = format!(
            "version: 1\nbackends:\n  b:\n    url: http://127.0.0.1:1\n    health: {health}\ndefault: b\n"
        );
        match parse(&text, "t.yaml") {
            Ok(_) => Vec::new(),
            Err(e) => e.errors.iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn an_empty_block_turns_on_active_checks_with_the_defaults() {
        let config = parse(
            "version: 1\nbackends:\n  b: { url: http://127.0.0.1:1, health: {} }\ndefault: b\n",
            "t.yaml",
        )
        .unwrap();
        let check = config.backends[0].health.active.clone().unwrap();
        assert_eq!(check.path, crate::config::defaults::DEFAULT_HEALTH_PATH);
        assert_eq!(
            check.interval,
            crate::config::defaults::DEFAULT_HEALTH_INTERVAL
        );
    }

    #[test]
    fn every_bad_value_is_reported_with_its_place() {
        let e = errors(
            "{ path: healthz, interval: 0s, unhealthy_after: 0, healthy_after: 1000, bogus: 1 }",
        );
        assert_eq!(
            e,
            vec![
                "backends.b.health.path: \"healthz\" must start with /",
                "backends.b.health.interval: must be longer than 0",
                "backends.b.health.unhealthy_after: 0 is not a count (a whole number, 1 or more)",
                "backends.b.health.healthy_after: 1000 is over 100",
                "backends.b.health.bogus: unknown key \"bogus\" (expected one of path, interval, timeout, unhealthy_after, healthy_after)",
            ],
        );
    }

    #[test]
    fn a_timeout_longer_than_the_interval_is_refused() {
        let e = errors("{ interval: 1s, timeout: 2s }");
        assert_eq!(
            e,
            vec![
                "backends.b.health.timeout: 2s is longer than the interval (1s); a check must end before the next one"
            ]
        );
    }
}
