//! The guard's judgement of one window, as a pure function: the new side's
//! error rate or p99 against legacy's, and the real-diff rate of shadow
//! comparisons. [`super::window`] turns the route's counters into the
//! [`Observation`] judged here; acting on a trip is [`crate::changes`]' job.

use std::fmt;

use crate::config::GuardPolicy;

/// One side's traffic in the window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SideStats {
    pub requests: u64,
    /// Answers with a 5xx status (including the proxy's own 502/504).
    pub errors: u64,
    /// Latency histogram: (upper bound in seconds, count in the window),
    /// ascending, not cumulative; the last bound may be infinite.
    pub latency: Vec<(f64, u64)>,
}

impl SideStats {
    pub fn error_rate(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.errors as f64 / self.requests as f64
        }
    }

    /// The 99th percentile, interpolated within its bucket; `None` without data.
    pub fn p99(&self) -> Option<f64> {
        let total: u64 = self.latency.iter().map(|(_, n)| n).sum();
        if total == 0 {
            return None;
        }
        let rank = (total as f64 * 0.99).ceil() as u64;
        let mut seen = 0u64;
        let mut lower = 0.0;
        for (upper, n) in &self.latency {
            if seen + n >= rank {
                if !upper.is_finite() {
                    return Some(lower);
                }
                let within = (rank - seen) as f64 / (*n).max(1) as f64;
                return Some(lower + (upper - lower) * within);
            }
            seen += n;
            lower = *upper;
        }
        Some(lower)
    }
}

/// Everything the guard looks at for one route.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observation {
    pub legacy: SideStats,
    pub new: SideStats,
    pub compared: u64,
    pub real_diffs: u64,
}

/// Why the guard rolled a route back.
#[derive(Debug, Clone, PartialEq)]
pub enum Trip {
    ErrorRate {
        new: f64,
        legacy: f64,
        margin: f64,
    },
    Latency {
        new_p99: f64,
        legacy_p99: f64,
        margin: f64,
    },
    DiffRate {
        rate: f64,
        compared: u64,
        max: f64,
    },
}

impl fmt::Display for Trip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Trip::ErrorRate {
                new,
                legacy,
                margin,
            } => write!(
                f,
                "new side 5xx rate {:.1}% exceeds legacy's {:.1}% by more than {:.1} points",
                new * 100.0,
                legacy * 100.0,
                margin * 100.0
            ),
            Trip::Latency {
                new_p99,
                legacy_p99,
                margin,
            } => write!(
                f,
                "new side p99 {:.1} ms exceeds legacy's {:.1} ms by more than {:.0}%",
                new_p99 * 1000.0,
                legacy_p99 * 1000.0,
                margin * 100.0
            ),
            Trip::DiffRate {
                rate,
                compared,
                max,
            } => write!(
                f,
                "real-diff rate {:.1}% over {compared} shadow comparisons exceeds {:.1}%",
                rate * 100.0,
                max * 100.0
            ),
        }
    }
}

/// Latencies under this are never a reason to roll back: at that scale a
/// ratio is noise.
const LATENCY_FLOOR_SECONDS: f64 = 0.005;

/// Judges one window. Nothing trips before the new side has
/// `min_requests`; with too little legacy traffic to compare with (a 100%
/// canary), the new side is held to the margin alone.
pub fn evaluate(policy: &GuardPolicy, o: &Observation) -> Option<Trip> {
    if o.new.requests >= policy.min_requests {
        let legacy_rate = if o.legacy.requests >= policy.min_requests / 4 {
            o.legacy.error_rate()
        } else {
            0.0
        };
        let new_rate = o.new.error_rate();
        if new_rate > legacy_rate + policy.error_rate_margin {
            return Some(Trip::ErrorRate {
                new: new_rate,
                legacy: legacy_rate,
                margin: policy.error_rate_margin,
            });
        }
        if let (Some(margin), Some(new_p99), Some(legacy_p99)) =
            (policy.p99_margin, o.new.p99(), o.legacy.p99())
        {
            if o.legacy.requests >= policy.min_requests / 4
                && new_p99 > LATENCY_FLOOR_SECONDS
                && new_p99 > legacy_p99 * (1.0 + margin)
            {
                return Some(Trip::Latency {
                    new_p99,
                    legacy_p99,
                    margin,
                });
            }
        }
    }
    if let Some(max) = policy.max_diff_rate {
        if o.compared >= policy.min_requests && o.compared > 0 {
            let rate = o.real_diffs as f64 / o.compared as f64;
            if rate > max {
                return Some(Trip::DiffRate {
                    rate,
                    compared: o.compared,
                    max,
                });
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn policy() -> GuardPolicy {
        GuardPolicy {
            window: Duration::from_secs(60),
            min_requests: 100,
            error_rate_margin: 0.05,
            p99_margin: Some(0.5),
            max_diff_rate: Some(0.1),
        }
    }

    fn side(requests: u64, errors: u64, fast: u64, slow: u64) -> SideStats {
        SideStats {
            requests,
            errors,
            latency: vec![(0.01, fast), (0.1, 0), (1.0, slow), (f64::INFINITY, 0)],
        }
    }

    #[test]
    fn a_failing_new_side_trips() {
        let o = Observation {
            legacy: side(1000, 5, 1000, 0),
            new: side(200, 30, 200, 0),
            ..Default::default()
        };
        let trip = evaluate(&policy(), &o).expect("trips");
        assert!(matches!(trip, Trip::ErrorRate { .. }));
        assert!(trip.to_string().contains("15.0%"), "{trip}");
    }

    #[test]
    fn too_few_requests_never_trip() {
        let o = Observation {
            legacy: side(1000, 0, 1000, 0),
            new: side(99, 99, 99, 0),
            ..Default::default()
        };
        assert_eq!(evaluate(&policy(), &o), None);
    }

    #[test]
    fn a_healthy_new_side_never_trips() {
        let o = Observation {
            legacy: side(1000, 10, 990, 10),
            new: side(500, 6, 495, 5),
            compared: 400,
            real_diffs: 4,
        };
        assert_eq!(evaluate(&policy(), &o), None);
    }

    #[test]
    fn slow_or_different_trips() {
        let slow = Observation {
            legacy: side(1000, 0, 1000, 0),
            new: side(200, 0, 150, 50),
            ..Default::default()
        };
        assert!(matches!(
            evaluate(&policy(), &slow),
            Some(Trip::Latency { .. })
        ));
        let different = Observation {
            legacy: side(1000, 0, 1000, 0),
            new: side(10, 0, 10, 0),
            compared: 200,
            real_diffs: 40,
        };
        assert!(matches!(
            evaluate(&policy(), &different),
            Some(Trip::DiffRate { .. })
        ));
    }

    #[test]
    fn p99_is_interpolated() {
        let s = side(100, 0, 100, 0);
        let p = s.p99().unwrap();
        assert!(p > 0.0 && p <= 0.01, "{p}");
        assert_eq!(SideStats::default().p99(), None);
    }
}
