//! A route's `rollout` block: the canary steps a route takes by itself, how
//! long it stays at each, the gates that must hold meanwhile, and what a
//! failed gate does. A gate is only accepted where the route has what it
//! reads: `guard` needs the route's `guard:` block (its margins and
//! `min_requests` are the gate's), `report` its `shadow:` block (the report
//! compares shadow copies).

use super::values::{percent, positive_duration};
use crate::config::defaults::{
    DEFAULT_ROLLOUT_ON_FAILURE, DEFAULT_ROLLOUT_PAUSE, DEFAULT_ROLLOUT_REQUIRE,
    DEFAULT_ROLLOUT_START,
};
use crate::config::error::{ErrorSink, Place};
use crate::config::model::{Gate, OnFailure, Percent, RolloutPolicy, RolloutStart};
use crate::config::raw::RawRollout;

/// What the route offers the gates.
#[derive(Debug, Clone, Copy)]
pub(super) struct GateSources {
    pub(super) guarded: bool,
    pub(super) shadowed: bool,
}

pub(super) fn compile_rollout(
    sink: &mut ErrorSink,
    place: &Place,
    raw: &RawRollout,
    sources: GateSources,
) -> Option<RolloutPolicy> {
    let mark = sink.mark();
    let steps = compile_steps(sink, &place.key("steps"), raw.steps.as_deref());
    let pause = sink.optional(
        place,
        "pause",
        raw.pause.as_ref(),
        DEFAULT_ROLLOUT_PAUSE,
        positive_duration,
    );
    let require = compile_require(sink, place, raw.require.as_deref(), sources);
    let on_failure = sink.optional(
        place,
        "on_failure",
        raw.on_failure.as_deref(),
        DEFAULT_ROLLOUT_ON_FAILURE,
        |t| match t {
            "rollback" => Ok(OnFailure::Rollback),
            "hold" => Ok(OnFailure::Hold),
            other => Err(format!("{other:?} is not an action (use rollback or hold)")),
        },
    );
    let start = sink.optional(
        place,
        "start",
        raw.start.as_deref(),
        DEFAULT_ROLLOUT_START,
        |t| match t {
            "manual" => Ok(RolloutStart::Manual),
            "auto" => Ok(RolloutStart::Auto),
            other => Err(format!(
                "{other:?} is not a way to start (use manual: `strangler rollout start`, or auto: when the file is loaded)"
            )),
        },
    );
    let policy = RolloutPolicy {
        steps: steps?,
        pause: pause?,
        require: require?,
        on_failure: on_failure?,
        start: start?,
    };
    sink.clean_since(mark).then_some(policy)
}

fn compile_steps(
    sink: &mut ErrorSink,
    place: &Place,
    raw: Option<&[crate::config::raw::Scalar]>,
) -> Option<Vec<Percent>> {
    let Some(raw) = raw else {
        sink.push(
            place.clone(),
            "missing; list the canary percentages to take, in order (e.g. [1, 5, 25, 50, 100])",
        );
        return None;
    };
    if raw.is_empty() {
        sink.push(
            place.clone(),
            "is empty; list at least one canary percentage",
        );
        return None;
    }
    let mark = sink.mark();
    let mut steps: Vec<Percent> = Vec::with_capacity(raw.len());
    for (i, s) in raw.iter().enumerate() {
        let Some(step) = sink.check(&place.index(i), percent(s)) else {
            continue;
        };
        if step.get() == 0.0 {
            sink.push(
                place.index(i),
                "is 0; a step sends traffic to the new side (a rollout starts from the route's canary)",
            );
        } else if let Some(before) = steps.last().filter(|b| b.get() >= step.get()) {
            sink.push(
                place.index(i),
                format!("{step} does not rise above the step before it ({before}); steps go up"),
            );
        }
        steps.push(step);
    }
    sink.clean_since(mark).then_some(steps)
}

fn compile_require(
    sink: &mut ErrorSink,
    place: &Place,
    raw: Option<&[String]>,
    sources: GateSources,
) -> Option<Vec<Gate>> {
    let Some(raw) = raw else {
        // The default names every gate; each must still be possible here.
        let unavailable: Vec<&str> = DEFAULT_ROLLOUT_REQUIRE
            .iter()
            .filter(|g| !available(**g, sources))
            .map(|g| why_unavailable(*g))
            .collect();
        if !unavailable.is_empty() {
            sink.push(
                place.key("require"),
                format!(
                    "missing, and the default [guard, report] cannot apply: {}; say which gates hold the steps (require: [guard], [report], or [] for time alone)",
                    unavailable.join("; ")
                ),
            );
            return None;
        }
        return Some(DEFAULT_ROLLOUT_REQUIRE.to_vec());
    };
    let place = place.key("require");
    let mark = sink.mark();
    let mut gates = Vec::new();
    for (i, name) in raw.iter().enumerate() {
        let gate = match name.as_str() {
            "guard" => Gate::Guard,
            "report" => Gate::Report,
            other => {
                sink.push(
                    place.index(i),
                    format!("{other:?} is not a gate (use guard or report)"),
                );
                continue;
            }
        };
        if gates.contains(&gate) {
            sink.push(place.index(i), format!("{} is named twice", gate.as_str()));
        } else if !available(gate, sources) {
            sink.push(place.index(i), why_unavailable(gate));
        }
        gates.push(gate);
    }
    sink.clean_since(mark).then_some(gates)
}

fn available(gate: Gate, sources: GateSources) -> bool {
    match gate {
        Gate::Guard => sources.guarded,
        Gate::Report => sources.shadowed,
    }
}

fn why_unavailable(gate: Gate) -> &'static str {
    match gate {
        Gate::Guard => {
            "guard needs a guard: block on the route (its min_requests and margins are the gate's)"
        }
        Gate::Report => {
            "report needs a shadow: block on the route (the report compares shadow copies)"
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::config::{Gate, OnFailure, RolloutStart, parse};

    const HEAD: &str = "version: 1\nbackends:\n  legacy: { url: \"http://127.0.0.1:1\" }\n  new: { url: \"http://127.0.0.1:2\" }\ndefault: legacy\nroutes:\n  - name: orders\n    match: { path: /orders }\n    new: new\n";

    fn errors(route_tail: &str) -> String {
        match parse(&format!("{HEAD}{route_tail}"), "r.yaml") {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_full_block_compiles_to_its_policy() {
        let c = parse(
            &format!(
                "{HEAD}    guard: {{}}\n    shadow: {{}}\n    rollout: {{ steps: [1, 12.5, 100], pause: 30s, require: [report], on_failure: hold, start: auto }}\n"
            ),
            "r.yaml",
        )
        .unwrap();
        let r = c.routes[0].rollout.as_ref().unwrap();
        assert_eq!(
            r.steps.iter().map(|s| s.get()).collect::<Vec<_>>(),
            [1.0, 12.5, 100.0]
        );
        assert_eq!(r.pause, Duration::from_secs(30));
        assert_eq!(r.require, [Gate::Report]);
        assert_eq!(
            (r.on_failure, r.start),
            (OnFailure::Hold, RolloutStart::Auto)
        );
        assert_eq!(
            r.next_step(crate::config::Percent::ZERO).unwrap().get(),
            1.0
        );
        assert_eq!(
            r.next_step(crate::config::Percent::new(5.0).unwrap())
                .unwrap()
                .get(),
            12.5
        );
        assert!(r.next_step(crate::config::Percent::HUNDRED).is_none());
    }

    #[test]
    fn defaults_need_both_gates_possible() {
        let ok = parse(
            &format!(
                "{HEAD}    guard: {{}}\n    shadow: {{}}\n    rollout: {{ steps: [50, 100] }}\n"
            ),
            "r.yaml",
        )
        .unwrap();
        let r = ok.routes[0].rollout.as_ref().unwrap();
        assert_eq!(r.require, [Gate::Guard, Gate::Report]);
        assert_eq!(
            (r.on_failure, r.start),
            (OnFailure::Rollback, RolloutStart::Manual)
        );
        let e = errors("    guard: {}\n    rollout: { steps: [50] }\n");
        assert!(
            e.contains("routes[0].rollout.require: missing, and the default [guard, report] cannot apply: report needs a shadow: block"),
            "{e}"
        );
        assert_eq!(errors("    rollout: { steps: [50], require: [] }\n"), "");
    }

    #[test]
    fn every_mistake_is_reported_with_its_place() {
        let e = errors(
            "    rollout: { steps: [0, 5, 5, 130, x], pause: 0s, require: [guard, guard, canary], on_failure: panic, start: now }\n",
        );
        for needle in [
            "routes[0].rollout.steps[0]: is 0",
            "routes[0].rollout.steps[2]: 5 does not rise above the step before it (5)",
            "routes[0].rollout.steps[3]: 130 is over 100",
            "routes[0].rollout.steps[4]: \"x\" is not a percentage",
            "routes[0].rollout.pause: must be longer than 0",
            "routes[0].rollout.require[0]: guard needs a guard: block",
            "routes[0].rollout.require[1]: guard is named twice",
            "routes[0].rollout.require[2]: \"canary\" is not a gate",
            "routes[0].rollout.on_failure: \"panic\" is not an action",
            "routes[0].rollout.start: \"now\" is not a way to start",
        ] {
            assert!(e.contains(needle), "missing {needle:?} in\n{e}");
        }
        assert!(
            errors("    rollout: { pause: 1m, require: [] }\n")
                .contains("routes[0].rollout.steps: missing")
        );
        assert!(
            errors("    rollout: { steps: [], require: [] }\n")
                .contains("routes[0].rollout.steps: is empty")
        );
    }
}
