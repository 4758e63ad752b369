//! A running rollout's next move, as a pure function of where it stands,
//! how long it has been there and what its gates read. No clock, store or
//! metrics here: [`super::driver`] gathers them, so every decision can be
//! replayed in a unit test.
//!
//! A step is earned, never taken on trust: the next step is taken only once
//! the pause has passed and every gate holds; a gate that fails ends the
//! step at once, pause or not; a gate that cannot tell yet (too few
//! requests, too few comparisons) keeps the rollout waiting.

use std::fmt;
use std::time::Duration;

use crate::config::units::format_duration;
use crate::config::{Gate, Percent, RolloutPolicy};

/// What one gate reads now, with its figures in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateReading {
    Holds(String),
    /// Not enough evidence yet either way.
    Waits(String),
    Fails(String),
}

impl GateReading {
    pub fn figures(&self) -> &str {
        match self {
            GateReading::Holds(f) | GateReading::Waits(f) | GateReading::Fails(f) => f,
        }
    }

    pub fn word(&self) -> &'static str {
        match self {
            GateReading::Holds(_) => "holds",
            GateReading::Waits(_) => "waits",
            GateReading::Fails(_) => "fails",
        }
    }
}

/// Every gate's reading, in the order `require` names them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Readings(pub Vec<(Gate, GateReading)>);

impl fmt::Display for Readings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("no gates (time alone)");
        }
        for (i, (gate, reading)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(
                f,
                "{}: {} ({})",
                gate.as_str(),
                reading.word(),
                reading.figures()
            )?;
        }
        Ok(())
    }
}

/// Where a running rollout stands.
#[derive(Debug, Clone)]
pub struct Situation<'a> {
    pub policy: &'a RolloutPolicy,
    /// The step (canary) it stands at.
    pub at: Percent,
    /// Time spent at that step.
    pub elapsed: Duration,
    pub readings: &'a Readings,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Stay at the step; the reason says what is waited for.
    Wait(String),
    /// Take the next step; the reason carries the gates' figures.
    Promote { to: Percent, reason: String },
    /// At (or above) the last step: the rollout is done.
    Finish,
    /// A gate failed: act as `on_failure` says.
    Fail(String),
}

pub fn decide(s: &Situation<'_>) -> Decision {
    let Some(next) = s.policy.next_step(s.at) else {
        return Decision::Finish;
    };
    let failed: Vec<String> = s
        .readings
        .0
        .iter()
        .filter(|(_, r)| matches!(r, GateReading::Fails(_)))
        .map(|(g, r)| format!("{} failed: {}", g.as_str(), r.figures()))
        .collect();
    if !failed.is_empty() {
        return Decision::Fail(format!("at {}%: {}", s.at, failed.join("; ")));
    }
    if s.elapsed < s.policy.pause {
        return Decision::Wait(format!(
            "pause {} of {} at {}%; {}",
            format_duration_coarse(s.elapsed),
            format_duration(s.policy.pause),
            s.at,
            s.readings
        ));
    }
    if s.readings
        .0
        .iter()
        .all(|(_, r)| matches!(r, GateReading::Holds(_)))
    {
        return Decision::Promote {
            to: next,
            reason: format!(
                "{}% -> {next}% after {} at {}%: {}",
                s.at,
                format_duration_coarse(s.elapsed),
                s.at,
                s.readings
            ),
        };
    }
    Decision::Wait(format!(
        "pause over at {}%, waiting for the gates: {}",
        s.at, s.readings
    ))
}

/// Whole seconds: a reason is read by people and stored only when it
/// changes, so sub-second precision would only make it change more.
fn format_duration_coarse(d: Duration) -> String {
    format_duration(Duration::from_secs(d.as_secs()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{OnFailure, RolloutStart};

    fn policy() -> RolloutPolicy {
        RolloutPolicy {
            steps: [1.0, 5.0, 100.0]
                .iter()
                .map(|p| Percent::new(*p).unwrap())
                .collect(),
            pause: Duration::from_secs(60),
            require: vec![Gate::Guard, Gate::Report],
            on_failure: OnFailure::Rollback,
            start: RolloutStart::Manual,
        }
    }

    fn readings(guard: GateReading, report: GateReading) -> Readings {
        Readings(vec![(Gate::Guard, guard), (Gate::Report, report)])
    }

    fn at(p: f64, secs: u64, r: &Readings, policy: &RolloutPolicy) -> Decision {
        decide(&Situation {
            policy,
            at: Percent::new(p).unwrap(),
            elapsed: Duration::from_secs(secs),
            readings: r,
        })
    }

    fn holds() -> GateReading {
        GateReading::Holds("fine".into())
    }

    #[test]
    fn a_step_is_taken_only_after_the_pause_with_every_gate_holding() {
        let p = policy();
        let good = readings(holds(), holds());
        assert!(matches!(at(0.0, 59, &good, &p), Decision::Wait(_)));
        match at(0.0, 60, &good, &p) {
            Decision::Promote { to, reason } => {
                assert_eq!(to.get(), 1.0);
                assert!(reason.contains("0% -> 1% after 1m"), "{reason}");
                assert!(
                    reason.contains("guard: holds (fine); report: holds (fine)"),
                    "{reason}"
                );
            }
            other => panic!("{other:?}"),
        }
        // From a canary between steps, the first step above it.
        assert!(matches!(at(3.0, 60, &good, &p), Decision::Promote { to, .. } if to.get() == 5.0));
    }

    #[test]
    fn a_gate_without_enough_evidence_keeps_it_waiting_past_the_pause() {
        let p = policy();
        let r = readings(holds(), GateReading::Waits("37 of 100 comparisons".into()));
        match at(1.0, 600, &r, &p) {
            Decision::Wait(why) => assert!(
                why.contains("report: waits (37 of 100 comparisons)"),
                "{why}"
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_failing_gate_ends_the_step_at_once() {
        let p = policy();
        let r = readings(GateReading::Fails("5xx 30% vs 0%".into()), holds());
        match at(5.0, 3, &r, &p) {
            Decision::Fail(why) => assert_eq!(why, "at 5%: guard failed: 5xx 30% vs 0%"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_last_step_is_the_end() {
        let p = policy();
        let r = readings(GateReading::Fails("x".into()), holds());
        assert_eq!(at(100.0, 0, &r, &p), Decision::Finish);
        let time_alone = RolloutPolicy {
            require: vec![],
            ..policy()
        };
        let none = Readings::default();
        assert!(
            matches!(at(5.0, 60, &none, &time_alone), Decision::Promote { to, .. } if to.get() == 100.0)
        );
        assert_eq!(none.to_string(), "no gates (time alone)");
    }
}
