//! `routes.yaml` text -> `config::parse`, the function `strangler check` (and
//! every reload) runs after reading the file.
//!
//! Properties, beyond never panicking:
//! - a file accepted by the one-pass reading is read the same by the
//!   collecting one (see `one_pass_reading_agrees`);
//! - an error report is never empty, and each error has a message and a place
//!   that print as text (a line, when given, is 1-based);
//! - an accepted file builds a `RouteTable`, and every route whose conditions
//!   can be written down as a request (all but `path_regex` ones) is reachable:
//!   a request made of exactly its conditions (header values as an HTTP parser
//!   delivers them, without surrounding whitespace) is routed by some route,
//!   to a backend of the table, and `decide` gives the same answer twice.
//!   Route paths are in normal form, so the path the proxy routes on
//!   (`routing_path(normalize_path(p))`) is `p` itself, and a request can
//!   carry them (they parse as the `http::Uri` path Pingora hands over).

#![no_main]

use http::{HeaderMap, HeaderValue, Method};
use libfuzzer_sys::fuzz_target;
use strangler::config::{self, Config, HostMatch, PathMatch, RouteMatch, raw};
use strangler::routing::{RequestInfo, RouteTable, normalize_path, routing_path};

fuzz_target!(|data: &[u8]| {
    // `strangler check` reads the file with `read_to_string`: bytes that are
    // not UTF-8 are refused before parsing and never reach the parser.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = config::parse(text, "fuzz.yaml");
    one_pass_reading_agrees(text, parsed.is_ok());
    match parsed {
        Ok(config) => check_accepted(config),
        Err(errors) => {
            assert!(!errors.errors.is_empty(), "an empty error report");
            for e in &errors.errors {
                assert!(
                    !e.message.trim().is_empty(),
                    "an error without message: {e:?}"
                );
                assert!(
                    !e.place.to_string().is_empty(),
                    "an error without place: {e:?}"
                );
                assert!(e.line != Some(0), "lines are 1-based: {e:?}");
            }
            let report = errors.to_string();
            assert!(report.starts_with("fuzz.yaml: "), "{report}");
        }
    }
});

/// A file `parse` accepts through its one-pass reading (`decode_strict`) is
/// one the collecting reading (serde_yaml's `Value`, which finds and places
/// every error) reads the same way without an error: which reading took a
/// file never decides whether it is accepted, or how it is read. (The
/// one-pass reading may read more, e.g. an empty file as a configuration
/// with nothing set, as long as `parse` then refuses it.)
fn one_pass_reading_agrees(text: &str, accepted: bool) {
    if !accepted {
        return;
    }
    let Some(strict) = raw::decode_strict::<raw::RawConfig>(text) else {
        return;
    };
    let value: serde_yaml::Value = serde_yaml::from_str(text)
        .unwrap_or_else(|e| panic!("accepted in one pass, but serde_yaml refuses it: {e}"));
    assert!(
        value.is_mapping(),
        "accepted in one pass, but not a mapping"
    );
    let collected = raw::decode_collecting::<raw::RawConfig>(&value);
    assert!(
        collected.errors.is_empty(),
        "accepted in one pass, but the collecting reading finds errors: {:?}",
        collected.errors
    );
    assert_eq!(
        format!("{strict:?}"),
        format!("{:?}", collected.value.expect("decoded")),
        "the two readings differ"
    );
}

fn check_accepted(config: Config) {
    let table = RouteTable::new(config);
    let config = table.config();
    let mut order = table.order().to_vec();
    order.sort_unstable();
    assert!(
        order.iter().copied().eq(0..config.routes.len()),
        "the priority order is not a permutation of the routes"
    );
    assert!(config.default_backend.0 < config.backends.len());

    // A request no route asks for goes to the default backend.
    let no_headers = HeaderMap::new();
    let method = Method::GET;
    let d = table.decide(&request(&method, None, "/", &no_headers, 0));
    assert!(d.backend.0 < config.backends.len());

    for (i, route) in config.routes.iter().enumerate() {
        assert!(route.legacy.0 < config.backends.len());
        assert!(route.new.0 < config.backends.len());
        let Some((method, host, path, headers)) = request_for(&route.matcher, &route.name) else {
            continue;
        };
        for entropy in [0, u64::MAX] {
            let req = request(&method, host.as_deref(), &path, &headers, entropy);
            let d = table.decide(&req);
            let Some(r) = d.route else {
                panic!(
                    "route {i} ({}) matches no request made of its own conditions: {req:?}",
                    route.name
                );
            };
            let chosen = &config.routes[r];
            assert!(d.backend == chosen.legacy || d.backend == chosen.new);
            assert_eq!(d, table.decide(&req), "decide is not deterministic");
        }
    }
}

fn request<'a>(
    method: &'a Method,
    host: Option<&'a str>,
    path: &'a str,
    headers: &'a HeaderMap,
    entropy: u64,
) -> RequestInfo<'a> {
    RequestInfo {
        method,
        host,
        path,
        headers,
        client_ip: Some("192.0.2.7".parse().unwrap()),
        entropy,
    }
}

type Request = (Method, Option<String>, String, HeaderMap);

/// A request that meets every condition of `m`, or `None` for a regex path.
fn request_for(m: &RouteMatch, name: &impl std::fmt::Display) -> Option<Request> {
    let path = match &m.path {
        PathMatch::Any => "/".to_string(),
        PathMatch::Exact(p) | PathMatch::Prefix(p) => {
            let normal = normalize_path(p)
                .unwrap_or_else(|e| panic!("route {name}: path {p:?} accepted but refused: {e}"));
            assert_eq!(normal, p.as_str(), "route {name}: path not in normal form");
            assert_eq!(
                routing_path(&normal),
                p.as_str(),
                "route {name}: path changes under routing_path"
            );
            // The path as a client sends it: Pingora hands the proxy an
            // `http::Uri`, and a path that does not parse as one is refused.
            match http::uri::PathAndQuery::try_from(p.as_str()) {
                Ok(pq) if pq.path() == p && pq.query().is_none() => {}
                other => panic!(
                    "route {name}: path {p:?} accepted, but no request can carry it: {other:?}"
                ),
            }
            p.clone()
        }
        PathMatch::Regex(_) => return None,
    };
    let method = match &m.methods {
        Some(methods) => methods.first().expect("an empty methods list").clone(),
        None => Method::GET,
    };
    let host = m.host.as_ref().map(|h| match h {
        HostMatch::Exact(h) => h.clone(),
        HostMatch::Suffix(s) => format!("tenant{s}"),
    });
    let mut headers = HeaderMap::new();
    for (name_, value) in &m.headers {
        // As an HTTP parser hands the value over: without the whitespace
        // around it. A value with a control character cannot be sent at all.
        let value = HeaderValue::from_bytes(value.trim_matches([' ', '\t']).as_bytes())
            .unwrap_or_else(|e| {
                panic!("route {name}: header {name_} = {value:?} accepted, but no request can carry it: {e}")
            });
        headers.append(name_.clone(), value);
    }
    Some((method, host, path, headers))
}
