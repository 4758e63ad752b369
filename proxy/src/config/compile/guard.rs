//! A route's `guard` block: the automatic rollback's window, how much
//! traffic it needs before it judges, and the margins by which the new side
//! may be worse than legacy.

use std::time::Duration;

use super::values::{count, fraction, positive_duration};
use crate::config::defaults::{
    DEFAULT_GUARD_ERROR_RATE_MARGIN, DEFAULT_GUARD_MIN_REQUESTS, DEFAULT_GUARD_WINDOW,
};
use crate::config::error::{ErrorSink, Place};
use crate::config::model::GuardPolicy;
use crate::config::raw::{RawGuard, Scalar};

/// The longest guard window (the guard keeps this much history).
const MAX_GUARD_WINDOW: Duration = Duration::from_secs(600);
/// The shortest guard window: in less time too few requests arrive to judge.
const MIN_GUARD_WINDOW: Duration = Duration::from_secs(5);

pub(super) fn compile_guard(
    sink: &mut ErrorSink,
    place: &Place,
    raw: &RawGuard,
) -> Option<GuardPolicy> {
    let window = match &raw.window {
        None => Some(DEFAULT_GUARD_WINDOW),
        Some(s) => sink
            .check(&place.key("window"), positive_duration(s))
            .and_then(|d| sink.check(&place.key("window"), window_in_range(d))),
    };
    let min_requests = sink.optional(
        place,
        "min_requests",
        raw.min_requests.as_ref(),
        DEFAULT_GUARD_MIN_REQUESTS,
        count,
    );
    let error_rate_margin = sink.optional(
        place,
        "error_rate_margin",
        raw.error_rate_margin.as_ref(),
        DEFAULT_GUARD_ERROR_RATE_MARGIN,
        fraction,
    );
    // Unlike a rate, a latency may grow by more than 100%.
    let p99_margin = match &raw.p99_margin {
        None => Some(None),
        Some(Scalar::Number(n)) if *n >= 0.0 && n.is_finite() => Some(Some(n / 100.0)),
        Some(other) => {
            sink.push(
                place.key("p99_margin"),
                format!("{} is not a percentage (0 or more)", other.as_text()),
            );
            None
        }
    };
    let max_diff_rate = match &raw.max_diff_rate {
        None => Some(None),
        Some(s) => sink
            .check(&place.key("max_diff_rate"), fraction(s))
            .map(Some),
    };
    Some(GuardPolicy {
        window: window?,
        min_requests: min_requests?,
        error_rate_margin: error_rate_margin?,
        p99_margin: p99_margin?,
        max_diff_rate: max_diff_rate?,
    })
}

fn window_in_range(window: Duration) -> Result<Duration, String> {
    if window > MAX_GUARD_WINDOW {
        Err("is longer than 10m (the guard keeps 10 minutes of history)".to_string())
    } else if window < MIN_GUARD_WINDOW {
        Err("is shorter than 5s (too few requests to judge)".to_string())
    } else {
        Ok(window)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::units::format_duration;

    /// The messages spell the bounds out; they must say what the constants do.
    #[test]
    fn window_bounds_are_the_ones_the_messages_name() {
        assert_eq!(format_duration(MAX_GUARD_WINDOW), "10m");
        assert_eq!(format_duration(MIN_GUARD_WINDOW), "5s");
        assert!(window_in_range(MAX_GUARD_WINDOW).is_ok());
        assert!(window_in_range(MIN_GUARD_WINDOW).is_ok());
        assert!(window_in_range(MAX_GUARD_WINDOW + Duration::from_millis(1)).is_err());
        assert!(window_in_range(MIN_GUARD_WINDOW - Duration::from_millis(1)).is_err());
        assert!(window_in_range(DEFAULT_GUARD_WINDOW).is_ok());
    }
}
