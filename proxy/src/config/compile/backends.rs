//! `backends` and `default`: each backend's URLs, timeouts, TLS settings
//! ([`super::upstream_tls`]) and health policy ([`super::health`]), and the
//! names routes use to refer to backends ([`KnownBackends`]).
//!
//! A backend's host is kept as written, not resolved: resolving needs the
//! network the proxy will run in, so it happens where upstreams are built
//! (`live::upstream`), and `strangler check` works on any machine.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use super::health::compile_health;
use super::upstream_tls::compile_upstream_tls;
use super::values::positive_duration;
use crate::config::defaults::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_IDLE_TIMEOUT, DEFAULT_READ_TIMEOUT, DEFAULT_TLS_VERIFY,
    DEFAULT_WRITE_TIMEOUT,
};
use crate::config::error::{ErrorSink, Place};
use crate::config::model::{Backend, BackendId, BackendName, Endpoint, UpstreamHost};
use crate::config::raw::{Lenient, OrderedMap, RawBackend, Scalar};

/// Backend names as routes refer to them. A backend that is declared but has
/// its own errors is not reported again as "unknown" wherever it is used.
pub(super) struct KnownBackends<'a> {
    compiled: &'a [Backend],
    declared: Vec<&'a str>,
}

impl<'a> KnownBackends<'a> {
    pub(super) fn new(
        compiled: &'a [Backend],
        raw: &'a OrderedMap<Lenient<RawBackend>>,
    ) -> KnownBackends<'a> {
        KnownBackends {
            compiled,
            declared: raw.0.iter().map(|(k, _)| k.as_str()).collect(),
        }
    }

    pub(super) fn id_of(
        &self,
        sink: &mut ErrorSink,
        place: &Place,
        name: &str,
    ) -> Option<BackendId> {
        if let Some(i) = self.compiled.iter().position(|b| b.name.as_str() == name) {
            return Some(BackendId(i));
        }
        if !self.declared.contains(&name) {
            let message = if self.declared.is_empty() {
                format!("unknown backend {name:?} (no backends are declared)")
            } else {
                format!(
                    "unknown backend {name:?} (declared: {})",
                    self.declared.join(", ")
                )
            };
            sink.push(place.clone(), message);
        }
        None
    }

    pub(super) fn name(&self, id: BackendId) -> &str {
        self.compiled[id.0].name.as_str()
    }
}

pub(super) fn compile_backends(
    sink: &mut ErrorSink,
    raw: &OrderedMap<Lenient<RawBackend>>,
    base: &Path,
) -> Vec<Backend> {
    let place = Place::root().key("backends");
    if raw.0.is_empty() {
        sink.push(place.clone(), "no backends are declared");
    }
    let mut backends = Vec::new();
    for (name, element) in &raw.0 {
        let place = place.key(name.clone());
        sink.push_under(&place, &element.0.errors);
        let Some(raw_backend) = &element.0.value else {
            continue;
        };
        backends.extend(compile_backend(sink, &place, name, raw_backend, base));
    }
    backends
}

fn compile_backend(
    sink: &mut ErrorSink,
    place: &Place,
    name: &str,
    raw: &RawBackend,
    base: &Path,
) -> Option<Backend> {
    let name = sink.check(place, BackendName::new(name));
    let urls: Vec<(Place, &String)> = match (&raw.url, &raw.urls) {
        (Some(_), Some(_)) => {
            sink.push(place.clone(), "give either url or urls, not both");
            Vec::new()
        }
        (None, None) => {
            sink.push(place.clone(), "needs url (or urls: [...])");
            Vec::new()
        }
        (Some(u), None) => vec![(place.key("url"), u)],
        (None, Some(list)) => {
            if list.is_empty() {
                sink.push(place.key("urls"), "is empty");
            }
            list.iter()
                .enumerate()
                .map(|(i, u)| (place.key("urls").index(i), u))
                .collect()
        }
    };
    // A bad URL among several leaves the backend with the others, so the
    // routes that use it are still compiled and their own errors reported in
    // this run; the error recorded here refuses the file all the same.
    let mut endpoints = Vec::new();
    for (url_place, url) in urls {
        endpoints.extend(sink.check(&url_place, parse_endpoint(url)));
    }
    let mut timeout = |key: &'static str, raw: &Option<Scalar>, default: Duration| {
        sink.optional(place, key, raw.as_ref(), default, positive_duration)
    };
    let connect_timeout = timeout(
        "connect_timeout",
        &raw.connect_timeout,
        DEFAULT_CONNECT_TIMEOUT,
    );
    let read_timeout = timeout("read_timeout", &raw.read_timeout, DEFAULT_READ_TIMEOUT);
    let write_timeout = timeout("write_timeout", &raw.write_timeout, DEFAULT_WRITE_TIMEOUT);
    let idle_timeout = timeout("idle_timeout", &raw.idle_timeout, DEFAULT_IDLE_TIMEOUT);
    let https = (!endpoints.is_empty()).then(|| endpoints.iter().any(|e: &Endpoint| e.tls));
    let tls = compile_upstream_tls(sink, place, raw.tls.as_ref(), base, https);
    let health = compile_health(sink, place, raw.health.as_ref());
    if endpoints.is_empty() {
        return None;
    }
    let host = compile_upstream_host(sink, place, raw.host.as_deref(), &endpoints[0]);
    Some(Backend {
        name: name?,
        endpoints,
        connect_timeout: connect_timeout?,
        read_timeout: read_timeout?,
        write_timeout: write_timeout?,
        idle_timeout: idle_timeout?,
        tls_verify: raw.tls_verify.unwrap_or(DEFAULT_TLS_VERIFY),
        host: host?,
        tls,
        health: health?,
    })
}

/// `host`: `preserve` (the default), `backend` (the first URL's host) or a
/// name to send. A literal must be a valid `Host` value: a name or address,
/// with an optional port.
fn compile_upstream_host(
    sink: &mut ErrorSink,
    place: &Place,
    raw: Option<&str>,
    first: &Endpoint,
) -> Option<UpstreamHost> {
    let host = match raw {
        None | Some("preserve") => UpstreamHost::Preserve,
        Some("backend") => UpstreamHost::Backend(first.authority()),
        Some(name) => {
            let (h, port) = match name.rsplit_once(':') {
                Some((h, p)) if !h.ends_with(':') && !name.starts_with('[') => (h, Some(p)),
                _ => (name, None),
            };
            let h = h.trim_start_matches('[').trim_end_matches(']');
            let name_ok = !h.is_empty()
                && (h.parse::<IpAddr>().is_ok()
                    || h.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.'));
            let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0));
            if !(name_ok && port_ok) {
                sink.push(
                    place.key("host"),
                    format!(
                        "{name:?} is not a Host to send (use preserve, backend, or a name like orders.internal[:8443])"
                    ),
                );
                return None;
            }
            UpstreamHost::Literal(name.to_ascii_lowercase())
        }
    };
    Some(host)
}

/// `default`: the backend that serves traffic no route matched.
pub(super) fn compile_default_backend(
    sink: &mut ErrorSink,
    known: &KnownBackends<'_>,
    raw: Option<&str>,
) -> Option<BackendId> {
    let place = Place::root().key("default");
    match raw {
        None => {
            sink.push(
                place,
                "missing; name the backend that gets unmatched traffic (usually the monolith)",
            );
            None
        }
        Some(name) => known.id_of(sink, &place, name),
    }
}

/// `http://host:port` or `https://host[:port]`; a path, query or user name
/// would change what the backend sees and is refused.
pub fn parse_endpoint(url: &str) -> Result<Endpoint, String> {
    let (tls, rest) = if let Some(rest) = url.strip_prefix("http://") {
        (false, rest)
    } else if let Some(rest) = url.strip_prefix("https://") {
        (true, rest)
    } else {
        return Err(format!("{url:?} must start with http:// or https://"));
    };
    let (authority, path) = match rest.find(['/', '?', '#']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if !(path.is_empty() || path == "/") {
        return Err(format!(
            "{url:?} has a path; a backend is scheme://host:port (the request path is kept)"
        ));
    }
    if authority.contains('@') {
        return Err(format!(
            "{url:?} contains a user name; credentials do not belong in routes.yaml"
        ));
    }
    let default_port = if tls { 443 } else { 80 };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("{url:?} has an unterminated IPv6 address"))?;
        let port = match after.strip_prefix(':') {
            Some(p) => p
                .parse()
                .map_err(|_| format!("{url:?} has a bad port {p:?}"))?,
            None if after.is_empty() => default_port,
            None => return Err(format!("{url:?} is not a valid URL")),
        };
        (host.to_string(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (
                h.to_string(),
                p.parse::<u16>()
                    .map_err(|_| format!("{url:?} has a bad port {p:?}"))?,
            ),
            None => (authority.to_string(), default_port),
        }
    };
    if host.is_empty() {
        return Err(format!("{url:?} has no host"));
    }
    if port == 0 {
        return Err(format!("{url:?} has port 0"));
    }
    let host_ok = host.parse::<IpAddr>().is_ok()
        || host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if !host_ok {
        return Err(format!("{url:?} has an invalid host {host:?}"));
    }
    Ok(Endpoint {
        tls,
        host: host.to_ascii_lowercase(),
        port,
    })
}
