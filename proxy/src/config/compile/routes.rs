//! `routes`: each route's name, backends, canary, sticky key, tenant pins and
//! body limit, and route names being unique. The parts with rules of their
//! own are checked by their modules (`match` in `matching`, `shadow` in
//! `shadow`, `guard` in `guard`, `rollout` in `rollout`, `record` and
//! `replay` in `record`); whether a route can be reached at all needs
//! every route and is checked in `reachability`.

use std::collections::HashSet;

use super::backends::KnownBackends;
use super::guard::compile_guard;
use super::matching::compile_match;
use super::record::{compile_record, compile_replay};
use super::rewrite::compile_rewrite;
use super::rollout::{GateSources, compile_rollout};
use super::shadow::compile_shadow;
use super::values::{byte_size, cookie_name, header_name, percent, positive_duration};
use crate::config::defaults::{
    DEFAULT_CANARY, DEFAULT_MAX_REQUEST_BODY, DEFAULT_RETRIES, DEFAULT_STICKY, MAX_RETRIES,
};
use crate::config::error::{ErrorSink, Place};
use crate::config::model::{BackendId, Route, RouteName, Side, Sticky};
use crate::config::raw::{Lenient, OrderedMap, RawRoute};

/// The routes that compiled, in file order, with the index each has in the
/// file's `routes` list: a route with errors is left out, so the two differ
/// and the whole-table checks need the file's index to report a place.
#[derive(Debug, Default)]
pub(super) struct CompiledRoutes {
    pub(super) routes: Vec<Route>,
    pub(super) file_indices: Vec<usize>,
}

pub(super) fn compile_routes(
    sink: &mut ErrorSink,
    raw: &[Lenient<RawRoute>],
    backends: &KnownBackends<'_>,
    default_backend: Option<BackendId>,
) -> CompiledRoutes {
    // Sized once: pushing 10,000 routes of 700 bytes each grows the vector
    // to 16,384 places and keeps the spare 4.5 MB for as long as the table.
    let mut compiled = CompiledRoutes {
        routes: Vec::with_capacity(raw.len()),
        file_indices: Vec::with_capacity(raw.len()),
    };
    let mut names = HashSet::with_capacity(raw.len());
    for (i, element) in raw.iter().enumerate() {
        let place = Place::root().key("routes").index(i);
        sink.push_under(&place, &element.0.errors);
        let Some(raw_route) = &element.0.value else {
            continue;
        };
        if let Some(name) = &raw_route.name {
            if !names.insert(name.clone()) {
                sink.push(place.key("name"), format!("duplicate route name {name:?}"));
            }
        }
        if let Some(route) = compile_route(sink, &place, raw_route, backends, default_backend) {
            compiled.routes.push(route);
            compiled.file_indices.push(i);
        }
    }
    compiled
}

fn compile_route(
    sink: &mut ErrorSink,
    place: &Place,
    raw: &RawRoute,
    backends: &KnownBackends<'_>,
    default_backend: Option<BackendId>,
) -> Option<Route> {
    let name = match &raw.name {
        None => {
            sink.push(place.key("name"), "missing; every route needs a name");
            None
        }
        Some(n) => sink.check(&place.key("name"), RouteName::new(n)),
    };
    let matcher = match &raw.matcher {
        None => {
            sink.push(
                place.key("match"),
                "missing; say which requests this route takes (path, path_exact, path_regex, methods, host or headers)",
            );
            None
        }
        Some(m) => compile_match(sink, &place.key("match"), m),
    };

    // Legacy is usually the monolith, which `default` already names.
    let legacy = match &raw.legacy {
        None => default_backend,
        Some(n) => backends.id_of(sink, &place.key("legacy"), n),
    };
    let new = match &raw.new {
        None => {
            sink.push(
                place.key("new"),
                "missing; name the backend traffic moves to",
            );
            None
        }
        Some(n) => backends.id_of(sink, &place.key("new"), n),
    };
    if let (Some(l), Some(n)) = (legacy, new) {
        if l == n {
            sink.push(
                place.key("new"),
                format!(
                    "is the same backend as legacy ({:?}); a route moves traffic between two backends",
                    backends.name(l)
                ),
            );
        }
    }

    let canary = sink.optional(
        place,
        "canary",
        raw.canary.as_ref(),
        DEFAULT_CANARY,
        percent,
    );
    let sticky = sink.optional(
        place,
        "sticky",
        raw.sticky.as_deref(),
        DEFAULT_STICKY,
        parse_sticky,
    );
    let pins = raw
        .tenants
        .as_ref()
        .map(|tenants| compile_pins(sink, &place.key("tenants"), tenants))
        .unwrap_or_default();
    let shadow = raw
        .shadow
        .as_ref()
        .map(|s| compile_shadow(sink, &place.key("shadow"), s));
    let guard = raw
        .guard
        .as_ref()
        .map(|g| compile_guard(sink, &place.key("guard"), g));
    let max_request_body = sink.optional(
        place,
        "max_request_body",
        raw.max_request_body.as_ref(),
        DEFAULT_MAX_REQUEST_BODY,
        byte_size,
    );

    let rewrite = raw.rewrite.as_ref().map(|r| {
        compile_rewrite(
            sink,
            &place.key("rewrite"),
            r,
            matcher.as_ref().map(|m| &m.path),
        )
    });
    let timeout = raw
        .timeout
        .as_ref()
        .map(|t| sink.check(&place.key("timeout"), positive_duration(t)));
    let rollout = raw.rollout.as_ref().map(|r| {
        compile_rollout(
            sink,
            &place.key("rollout"),
            r,
            GateSources {
                guarded: raw.guard.is_some(),
                shadowed: raw.shadow.is_some(),
            },
        )
    });
    let record = raw
        .record
        .as_ref()
        .map(|r| compile_record(sink, &place.key("record"), r));
    let replay = compile_replay(sink, &place.key("replay"), raw.replay.as_deref());
    let retries = sink.optional(
        place,
        "retries",
        raw.retries.as_ref(),
        DEFAULT_RETRIES,
        retry_count,
    );

    Some(Route {
        name: name?,
        matcher: matcher?,
        legacy: legacy?,
        new: new?,
        canary: canary?,
        sticky: sticky?,
        pins,
        // A block that was given but has errors fails the route; one that
        // was left out is simply off.
        shadow: match shadow {
            None => None,
            Some(s) => Some(s?),
        },
        guard: match guard {
            None => None,
            Some(g) => Some(g?),
        },
        max_request_body: max_request_body?,
        rewrite: match rewrite {
            None => None,
            Some(r) => Some(r?),
        },
        timeout: match timeout {
            None => None,
            Some(t) => Some(t?),
        },
        retries: retries?,
        rollout: match rollout {
            None => None,
            Some(r) => Some(r?),
        },
        record: match record {
            None => None,
            Some(r) => Some(r?),
        },
        replay: replay?,
    })
}

fn retry_count(raw: &crate::config::raw::Scalar) -> Result<u32, String> {
    let n = match raw {
        crate::config::raw::Scalar::Number(n) if n.fract() == 0.0 && *n >= 0.0 => *n as u64,
        other => {
            return Err(format!(
                "{} is not a number of retries (a whole number, 0 to {MAX_RETRIES})",
                other.as_text()
            ));
        }
    };
    if n > u64::from(MAX_RETRIES) {
        return Err(format!(
            "{n} is over {MAX_RETRIES}; retries multiply the load on a failing backend"
        ));
    }
    Ok(n as u32)
}

/// `tenants`: tenants pinned to a side whatever the canary says.
fn compile_pins(
    sink: &mut ErrorSink,
    place: &Place,
    tenants: &OrderedMap<String>,
) -> Vec<(String, Side)> {
    let mut pins = Vec::new();
    for (tenant, side) in &tenants.0 {
        let pin_place = place.key(tenant.clone());
        if tenant.is_empty() {
            sink.push(pin_place.clone(), "tenant name is empty");
        }
        if let Some(side) = sink.check(&pin_place, Side::parse(side)) {
            pins.push((tenant.clone(), side));
        }
    }
    pins
}

pub fn parse_sticky(text: &str) -> Result<Sticky, String> {
    match text {
        "tenant" => Ok(Sticky::Tenant),
        "ip" => Ok(Sticky::Ip),
        "none" => Ok(Sticky::None),
        other => {
            if let Some(h) = other.strip_prefix("header:") {
                header_name(h).map(Sticky::Header)
            } else if let Some(c) = other.strip_prefix("cookie:") {
                cookie_name(c).map(Sticky::Cookie)
            } else {
                Err(format!(
                    "{other:?} is not a sticky key (use tenant, header:NAME, cookie:NAME, ip or none)"
                ))
            }
        }
    }
}
