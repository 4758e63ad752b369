//! A route's `match` block: its path condition (prefix, exact or regex), its
//! methods, host and header conditions. A condition that no request could
//! ever meet (a path not in normal form, a header value HTTP cannot carry)
//! is refused here, because requests are normalized before they are routed
//! and such a route would silently never match.

use http::{HeaderName, HeaderValue, Method};
use regex::Regex;

use super::values::{header_name, method};
use crate::config::error::{ErrorSink, Place};
use crate::config::model::{HostMatch, PathMatch, RouteMatch};
use crate::config::raw::{OrderedMap, RawMatch, Scalar};
use crate::request_path::normalize_path;

pub(super) fn compile_match(
    sink: &mut ErrorSink,
    place: &Place,
    raw: &RawMatch,
) -> Option<RouteMatch> {
    let mark = sink.mark();
    let path = path_condition(sink, place, raw);
    let methods = raw
        .methods
        .as_ref()
        .map(|list| method_condition(sink, &place.key("methods"), list));
    let host = raw
        .host
        .as_ref()
        .and_then(|h| sink.check(&place.key("host"), host_match(h)));
    let headers = raw
        .headers
        .as_ref()
        .map(|map| header_conditions(sink, &place.key("headers"), map))
        .unwrap_or_default();
    // Only a block without errors can be said to match everything: one whose
    // conditions were refused has said enough already.
    if !sink.clean_since(mark) {
        return None;
    }
    let matcher = RouteMatch {
        path: path?,
        methods,
        host,
        headers,
    };
    if matches!(matcher.path, PathMatch::Any)
        && matcher.methods.is_none()
        && matcher.host.is_none()
        && matcher.headers.is_empty()
    {
        sink.push(
            place.clone(),
            "matches every request; give a path, path_exact, path_regex, methods, host or headers (unmatched traffic already goes to `default`)",
        );
        return None;
    }
    Some(matcher)
}

/// At most one of `path`, `path_exact` and `path_regex`; none is
/// [`PathMatch::Any`]. `None` when the condition has an error.
fn path_condition(sink: &mut ErrorSink, place: &Place, raw: &RawMatch) -> Option<PathMatch> {
    let given: Vec<&str> = [
        ("path", raw.path.is_some()),
        ("path_exact", raw.path_exact.is_some()),
        ("path_regex", raw.path_regex.is_some()),
    ]
    .iter()
    .filter(|(_, set)| *set)
    .map(|(k, _)| *k)
    .collect();
    if given.len() > 1 {
        sink.push(
            place.clone(),
            format!(
                "give one of path, path_exact, path_regex (found {})",
                given.join(" and ")
            ),
        );
        None
    } else if let Some(p) = &raw.path {
        sink.check(&place.key("path"), route_path(p)).map(|p| {
            // A prefix matches whole segments, so `/api/` means what `/api`
            // does; the model keeps the one spelling (see `PathMatch::Prefix`).
            let trimmed = if p.len() > 1 {
                p.trim_end_matches('/')
            } else {
                &p
            };
            PathMatch::Prefix(trimmed.to_string())
        })
    } else if let Some(p) = &raw.path_exact {
        sink.check(&place.key("path_exact"), route_path(p))
            .map(PathMatch::Exact)
    } else if let Some(r) = &raw.path_regex {
        sink.check(&place.key("path_regex"), path_regex(r))
            .map(PathMatch::Regex)
    } else {
        Some(PathMatch::Any)
    }
}

pub(super) fn path_regex(text: &str) -> Result<Regex, String> {
    Regex::new(text).map_err(|e| {
        // The regex crate's message repeats the pattern with a caret under
        // it; its last line is the part that reads well after the place.
        let detail = e.to_string();
        let last = detail.lines().last().unwrap_or("").trim().to_string();
        format!("{text:?} is not a valid regex: {last}")
    })
}

/// The listed methods, each once. An empty list is refused rather than read
/// as "every method", which leaving the key out already says.
fn method_condition(sink: &mut ErrorSink, place: &Place, list: &[String]) -> Vec<Method> {
    if list.is_empty() {
        sink.push(
            place.clone(),
            "is empty (leave it out to match every method)",
        );
    }
    let mut methods: Vec<Method> = Vec::new();
    for (i, m) in list.iter().enumerate() {
        if let Some(m) = sink.check(&place.index(i), method(m)) {
            if !methods.contains(&m) {
                methods.push(m);
            }
        }
    }
    methods
}

fn header_conditions(
    sink: &mut ErrorSink,
    place: &Place,
    map: &OrderedMap<Scalar>,
) -> Vec<(HeaderName, String)> {
    let mut headers = Vec::new();
    for (name, value) in &map.0 {
        let condition =
            header_name(name).and_then(|h| Ok((h, header_condition(&value.as_text())?)));
        headers.extend(sink.check(&place.key(name.clone()), condition));
    }
    headers
}

/// The value a header condition asks for, if a request can carry it: HTTP
/// refuses control characters in a value and drops the whitespace around it,
/// so a route asking for either could never match.
fn header_condition(value: &str) -> Result<String, String> {
    if HeaderValue::from_str(value).is_err() {
        return Err(format!(
            "{value:?} contains a control character; no request can carry it, so this route could never match"
        ));
    }
    if value.starts_with([' ', '\t']) || value.ends_with([' ', '\t']) {
        return Err(format!(
            "{value:?} starts or ends with whitespace, which HTTP drops from header values; this route could never match"
        ));
    }
    Ok(value.to_string())
}

/// A path in a route must already be in normal form: a route written as
/// `/api//orders/` or `/api/./x` could never see a request, because requests
/// are normalized before they are routed.
pub(super) fn route_path(text: &str) -> Result<String, String> {
    if !text.starts_with('/') {
        return Err(format!("{text:?} must start with /"));
    }
    if text.contains(';') {
        return Err(format!(
            "{text:?} contains ';'; requests are routed without ;parameters, so this route could never match"
        ));
    }
    if text.contains('?') || text.contains('#') {
        return Err(format!(
            "{text:?} contains a query or fragment; routes match on the path only"
        ));
    }
    match normalize_path(text) {
        Ok(normal) if normal == text => sendable_path(text),
        Ok(normal) => Err(format!(
            "{text:?} is not in normal form; requests are normalized before routing, write {normal:?}"
        )),
        Err(e) => Err(format!("{text:?} {e}")),
    }
}

/// A route path a request can carry. Pingora hands the proxy the path as an
/// `http::Uri`, which refuses some characters as they are (a space, `<`, `>`,
/// a backtick): they only arrive percent-encoded, and normalization keeps
/// such escapes, so a route spelling them raw could never match.
fn sendable_path(text: &str) -> Result<String, String> {
    if text.parse::<http::uri::PathAndQuery>().is_ok() {
        return Ok(text.to_string());
    }
    let mut encoded = String::with_capacity(text.len());
    for c in text.chars() {
        if format!("/{c}").parse::<http::uri::PathAndQuery>().is_ok() {
            encoded.push(c);
        } else {
            let mut buf = [0; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                encoded.push_str(&format!("%{b:02X}"));
            }
        }
    }
    Err(format!(
        "{text:?} has characters a request cannot carry as they are, so this route could never match; write {encoded:?}"
    ))
}

fn host_match(text: &str) -> Result<HostMatch, String> {
    let lower = text.trim().to_ascii_lowercase();
    if lower.contains(':') {
        return Err(format!(
            "{text:?} has a port; hosts are matched without the port"
        ));
    }
    let (wildcard, name) = match lower.strip_prefix("*.") {
        Some(rest) => (true, rest.to_string()),
        None => (false, lower.clone()),
    };
    let ok = !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if !ok {
        return Err(format!(
            "{text:?} is not a host name (use e.g. shop.example.com or *.example.com)"
        ));
    }
    Ok(if wildcard {
        HostMatch::Suffix(format!(".{name}"))
    } else {
        HostMatch::Exact(name)
    })
}
