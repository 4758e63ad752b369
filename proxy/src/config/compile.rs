//! Turns the raw file ([`RawConfig`]) into the validated model ([`Config`]),
//! reporting every problem at once, each with its place. Checks that need the
//! whole table (unknown backends, duplicate names, a route that another route
//! shadows) run here too, after each part was checked on its own.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Method};
use regex::Regex;

use super::error::{ConfigError, ErrorSink, Place};
use super::model::*;
use super::precedence::{priority_order, shadowed_by};
use super::raw::*;
use super::units::{ByteSize, Percent, parse_duration};
use crate::request_path::normalize_path;

pub const DEFAULT_LISTEN: &str = "0.0.0.0:8080";
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9901";
pub const DEFAULT_STORE: &str = "sqlite://strangler.db";
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
const DEFAULT_SHADOW_MAX_BODY: ByteSize = ByteSize::bytes(1 << 20);
const DEFAULT_SHADOW_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_NOISE_SAMPLE: f64 = 10.0;
/// Largest request body a route accepts unless it says otherwise.
pub const DEFAULT_MAX_REQUEST_BODY: ByteSize = ByteSize::bytes(100 << 20);

/// Compiles a decoded file. On failure every error found is returned.
pub fn compile(raw: RawConfig) -> Result<Config, Vec<ConfigError>> {
    let mut sink = ErrorSink::default();
    let root = Place::root();

    match &raw.version {
        None => sink.push(
            root.key("version"),
            "missing; this file format is version 1",
        ),
        Some(Scalar::Number(n)) if *n == 1.0 => {}
        Some(other) => sink.push(
            root.key("version"),
            format!(
                "{} is not supported (this strangler reads version 1)",
                other.as_text()
            ),
        ),
    }

    let listen = socket_addr(
        &mut sink,
        &root.key("listen"),
        raw.listen.as_deref().unwrap_or(DEFAULT_LISTEN),
    );
    let tls = raw.tls.as_ref().and_then(|t| {
        let place = root.key("tls");
        let listen = socket_addr(&mut sink, &place.key("listen"), &t.listen);
        for (key, path) in [("cert", &t.cert), ("key", &t.key)] {
            if path.trim().is_empty() {
                sink.push(place.key(key), "is empty (give the path of a PEM file)");
            }
        }
        Some(TlsListener {
            listen: listen?,
            cert: t.cert.clone(),
            key: t.key.clone(),
        })
    });
    let admin = compile_admin(&mut sink, raw.admin.as_ref());
    let store = sink.check(
        &root.key("store"),
        StoreUrl::new(raw.store.as_deref().unwrap_or(DEFAULT_STORE)),
    );

    let backends = compile_backends(&mut sink, &raw.backends);
    let known = KnownBackends {
        compiled: &backends,
        declared: raw.backends.0.iter().map(|(k, _)| k.as_str()).collect(),
    };
    let tenant = compile_tenant_sources(&mut sink, &raw.tenant);

    let default_backend = match raw.default.as_deref() {
        None => {
            sink.push(
                root.key("default"),
                "missing; name the backend that gets unmatched traffic (usually the monolith)",
            );
            None
        }
        Some(name) => known.lookup(&mut sink, &root.key("default"), name),
    };

    let mut routes = Vec::new();
    let mut names = HashSet::new();
    for (i, element) in raw.routes.iter().enumerate() {
        let place = root.key("routes").index(i);
        for e in &element.0.errors {
            sink.push_error(ConfigError::new(place.join(&e.place), e.message.clone()));
        }
        match &element.0.value {
            None => {}
            Some(raw_route) => {
                if let Some(name) = &raw_route.name {
                    if !names.insert(name.clone()) {
                        sink.push(place.key("name"), format!("duplicate route name {name:?}"));
                    }
                }
                if let Some(route) =
                    compile_route(&mut sink, &place, raw_route, &known, default_backend)
                {
                    routes.push((i, route));
                }
            }
        }
    }

    // A route that can never match is almost always a mistake in ordering or
    // a leftover; it is refused rather than silently ignored.
    let only_routes: Vec<Route> = routes.iter().map(|(_, r)| r.clone()).collect();
    let order = priority_order(&only_routes);
    let mut unreachable = Vec::new();
    for (pos, &later) in order.iter().enumerate() {
        for &earlier in &order[..pos] {
            if shadowed_by(&only_routes[later], &only_routes[earlier]) {
                let (file_index, route) = &routes[later];
                let (earlier_index, other) = &routes[earlier];
                unreachable.push((
                    *file_index,
                    format!(
                        "route {:?} can never match: route {:?} (routes[{earlier_index}]) matches every request it would",
                        route.name.as_str(),
                        other.name.as_str()
                    ),
                ));
                break;
            }
        }
    }
    unreachable.sort_by_key(|(i, _)| *i);
    for (i, message) in unreachable {
        sink.push(root.key("routes").index(i).key("match"), message);
    }

    if !sink.is_empty() {
        return Err(sink.into_errors());
    }
    Ok(Config {
        listen: listen.expect("checked"),
        tls,
        admin: admin.expect("checked"),
        store: store.expect("checked"),
        backends,
        tenant,
        default_backend: default_backend.expect("checked"),
        routes: routes.into_iter().map(|(_, r)| r).collect(),
    })
}

fn socket_addr(sink: &mut ErrorSink, place: &Place, text: &str) -> Option<SocketAddr> {
    let parsed = SocketAddr::from_str(text.trim()).map_err(|_| {
        format!("{text:?} is not an address to listen on (expected IP:PORT, e.g. 0.0.0.0:8080)")
    });
    sink.check(place, parsed)
}

fn compile_admin(sink: &mut ErrorSink, raw: Option<&RawAdmin>) -> Option<AdminSettings> {
    let place = Place::root().key("admin");
    let listen_text = raw
        .and_then(|a| a.listen.as_deref())
        .unwrap_or(DEFAULT_ADMIN_LISTEN);
    let listen = socket_addr(sink, &place.key("listen"), listen_text);
    let token_env = raw.and_then(|a| a.token_env.clone());
    if let Some(name) = &token_env {
        let ok = !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !name.starts_with(|c: char| c.is_ascii_digit());
        if !ok {
            sink.push(
                place.key("token_env"),
                format!("{name:?} is not an environment variable name"),
            );
        }
    }
    if let Some(addr) = listen {
        // Reading metrics from anywhere is harmless; changing routes is not.
        if !addr.ip().is_loopback() && token_env.is_none() {
            sink.push(
                place.key("listen"),
                format!(
                    "{addr} is not a loopback address; set admin.token_env so that changes need a token"
                ),
            );
        }
    }
    Some(AdminSettings {
        listen: listen?,
        token_env,
    })
}

/// Backend names as routes refer to them. A backend that is declared but has
/// its own errors is not reported again as "unknown" wherever it is used.
struct KnownBackends<'a> {
    compiled: &'a [Backend],
    declared: Vec<&'a str>,
}

impl KnownBackends<'_> {
    fn lookup(&self, sink: &mut ErrorSink, place: &Place, name: &str) -> Option<BackendId> {
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
}

fn compile_backends(sink: &mut ErrorSink, raw: &OrderedMap<Lenient<RawBackend>>) -> Vec<Backend> {
    let place = Place::root().key("backends");
    if raw.0.is_empty() {
        sink.push(place.clone(), "no backends are declared");
    }
    let mut backends: Vec<Backend> = Vec::new();
    for (name, element) in &raw.0 {
        let place = place.key(name.clone());
        for e in &element.0.errors {
            sink.push_error(ConfigError::new(place.join(&e.place), e.message.clone()));
        }
        let Some(raw_backend) = &element.0.value else {
            continue;
        };
        let name = sink.check(&place, BackendName::new(name));
        let urls: Vec<(Place, &String)> = match (&raw_backend.url, &raw_backend.urls) {
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
        let mut endpoints = Vec::new();
        for (url_place, url) in urls {
            if let Some(e) = sink.check(&url_place, parse_endpoint(url)) {
                endpoints.push(e);
            }
        }
        let mut timeout = |key: &str, raw: &Option<Scalar>, default: Duration| {
            raw.as_ref()
                .map(|s| sink.check(&place.key(key), positive_duration(s)))
                .unwrap_or(Some(default))
        };
        let connect_timeout = timeout(
            "connect_timeout",
            &raw_backend.connect_timeout,
            DEFAULT_CONNECT_TIMEOUT,
        );
        let read_timeout = timeout(
            "read_timeout",
            &raw_backend.read_timeout,
            DEFAULT_READ_TIMEOUT,
        );
        let write_timeout = timeout(
            "write_timeout",
            &raw_backend.write_timeout,
            DEFAULT_WRITE_TIMEOUT,
        );
        let idle_timeout = timeout(
            "idle_timeout",
            &raw_backend.idle_timeout,
            DEFAULT_IDLE_TIMEOUT,
        );
        if let (
            Some(name),
            Some(connect_timeout),
            Some(read_timeout),
            Some(write_timeout),
            Some(idle_timeout),
        ) = (
            name,
            connect_timeout,
            read_timeout,
            write_timeout,
            idle_timeout,
        ) {
            if !endpoints.is_empty() {
                backends.push(Backend {
                    name,
                    endpoints,
                    connect_timeout,
                    read_timeout,
                    write_timeout,
                    idle_timeout,
                    tls_verify: raw_backend.tls_verify.unwrap_or(true),
                });
            }
        }
    }
    backends
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

fn positive_duration(raw: &Scalar) -> Result<Duration, String> {
    let d = match raw {
        Scalar::Text(t) => parse_duration(t)?,
        other => parse_duration(&other.as_text())?,
    };
    if d.is_zero() {
        return Err("must be longer than 0".to_string());
    }
    Ok(d)
}

fn compile_tenant_sources(
    sink: &mut ErrorSink,
    raw: &[Lenient<RawTenantSource>],
) -> Vec<TenantSource> {
    let mut sources = Vec::new();
    for (i, element) in raw.iter().enumerate() {
        let place = Place::root().key("tenant").index(i);
        for e in &element.0.errors {
            sink.push_error(ConfigError::new(place.join(&e.place), e.message.clone()));
        }
        let Some(source) = &element.0.value else {
            continue;
        };
        let given = [
            source.header.is_some(),
            source.host_label.is_some(),
            source.cookie.is_some(),
            source.jwt_claim.is_some(),
        ]
        .iter()
        .filter(|x| **x)
        .count();
        if given != 1 {
            // An entry whose only key was unknown has been reported already.
            if given > 0 || element.0.errors.is_empty() {
                sink.push(
                    place,
                    "give exactly one of header, host_label, cookie, jwt_claim per entry",
                );
            }
            continue;
        }
        let compiled = if let Some(h) = &source.header {
            sink.check(&place.key("header"), header_name(h))
                .map(TenantSource::Header)
        } else if let Some(label) = &source.host_label {
            let parsed = match label {
                Scalar::Number(n) if n.fract() == 0.0 && (0.0..=16.0).contains(n) => {
                    Ok(*n as usize)
                }
                other => Err(format!(
                    "{} is not a label index (0 is the leftmost label, up to 16)",
                    other.as_text()
                )),
            };
            sink.check(&place.key("host_label"), parsed)
                .map(TenantSource::HostLabel)
        } else if let Some(c) = &source.cookie {
            sink.check(&place.key("cookie"), cookie_name(c))
                .map(TenantSource::Cookie)
        } else if let Some(claim) = &source.jwt_claim {
            if claim.is_empty() {
                sink.push(place.key("jwt_claim"), "is empty");
                None
            } else {
                Some(TenantSource::JwtClaim(claim.clone()))
            }
        } else {
            None
        };
        sources.extend(compiled);
    }
    sources
}

fn header_name(text: &str) -> Result<HeaderName, String> {
    HeaderName::from_bytes(text.as_bytes()).map_err(|_| format!("{text:?} is not a header name"))
}

fn cookie_name(text: &str) -> Result<String, String> {
    let ok = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_graphic() && !"()<>@,;:\\\"/[]?={}".contains(c));
    if ok {
        Ok(text.to_string())
    } else {
        Err(format!("{text:?} is not a cookie name"))
    }
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

    let legacy = match &raw.legacy {
        None => default_backend,
        Some(n) => backends.lookup(sink, &place.key("legacy"), n),
    };
    let new = match &raw.new {
        None => {
            sink.push(
                place.key("new"),
                "missing; name the backend traffic moves to",
            );
            None
        }
        Some(n) => backends.lookup(sink, &place.key("new"), n),
    };
    if let (Some(l), Some(n)) = (legacy, new) {
        if l == n {
            sink.push(
                place.key("new"),
                format!(
                    "is the same backend as legacy ({:?}); a route moves traffic between two backends",
                    backends.compiled[l.0].name.as_str()
                ),
            );
        }
    }

    let canary = match &raw.canary {
        None => Some(Percent::ZERO),
        Some(s) => sink.check(&place.key("canary"), percent(s)),
    };

    let sticky = match raw.sticky.as_deref() {
        None => Some(Sticky::Tenant),
        Some(text) => sink.check(&place.key("sticky"), parse_sticky(text)),
    };

    let mut pins = Vec::new();
    if let Some(tenants) = &raw.tenants {
        for (tenant, side) in &tenants.0 {
            let pin_place = place.key("tenants").key(tenant.clone());
            if tenant.is_empty() {
                sink.push(pin_place.clone(), "tenant name is empty");
            }
            if let Some(side) = sink.check(&pin_place, Side::parse(side)) {
                pins.push((tenant.clone(), side));
            }
        }
    }

    let shadow = raw
        .shadow
        .as_ref()
        .map(|s| compile_shadow(sink, &place.key("shadow"), s));
    let guard = raw
        .guard
        .as_ref()
        .map(|g| compile_guard(sink, &place.key("guard"), g));
    let max_request_body = match &raw.max_request_body {
        None => Some(DEFAULT_MAX_REQUEST_BODY),
        Some(s) => sink.check(
            &place.key("max_request_body"),
            ByteSize::parse(&s.as_text()),
        ),
    };

    Some(Route {
        name: name?,
        matcher: matcher?,
        legacy: legacy?,
        new: new?,
        canary: canary?,
        sticky: sticky?,
        pins,
        shadow: match shadow {
            None => None,
            Some(s) => Some(s?),
        },
        guard: match guard {
            None => None,
            Some(g) => Some(g?),
        },
        max_request_body: max_request_body?,
    })
}

/// The longest guard window (the guard keeps this much history).
pub const MAX_GUARD_WINDOW: Duration = Duration::from_secs(600);

fn compile_guard(sink: &mut ErrorSink, place: &Place, raw: &RawGuard) -> Option<GuardPolicy> {
    let window = match &raw.window {
        None => Some(Duration::from_secs(60)),
        Some(s) => {
            let d = sink.check(&place.key("window"), positive_duration(s));
            match d {
                Some(d) if d > MAX_GUARD_WINDOW => {
                    sink.push(
                        place.key("window"),
                        "is longer than 10m (the guard keeps 10 minutes of history)",
                    );
                    None
                }
                Some(d) if d < Duration::from_secs(5) => {
                    sink.push(
                        place.key("window"),
                        "is shorter than 5s (too few requests to judge)",
                    );
                    None
                }
                d => d,
            }
        }
    };
    let min_requests = match &raw.min_requests {
        None => Some(100),
        Some(Scalar::Number(n)) if n.fract() == 0.0 && *n >= 1.0 => Some(*n as u64),
        Some(other) => {
            sink.push(
                place.key("min_requests"),
                format!(
                    "{} is not a count (a whole number, 1 or more)",
                    other.as_text()
                ),
            );
            None
        }
    };
    let fraction = |sink: &mut ErrorSink, key: &str, raw: &Option<Scalar>| -> Option<Option<f64>> {
        match raw {
            None => Some(None),
            Some(s) => sink
                .check(&place.key(key), self::percent(s))
                .map(|p| Some(p.get() / 100.0)),
        }
    };
    let error_rate_margin = fraction(sink, "error_rate_margin", &raw.error_rate_margin);
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
    let max_diff_rate = fraction(sink, "max_diff_rate", &raw.max_diff_rate);
    Some(GuardPolicy {
        window: window?,
        min_requests: min_requests?,
        error_rate_margin: error_rate_margin?.unwrap_or(0.05),
        p99_margin: p99_margin?,
        max_diff_rate: max_diff_rate?,
    })
}

fn percent(raw: &Scalar) -> Result<Percent, String> {
    match raw {
        Scalar::Number(n) => Percent::new(*n),
        Scalar::Text(t) => Percent::parse(t),
        Scalar::Bool(b) => Err(format!(
            "{b} is not a percentage (expected a number from 0 to 100)"
        )),
    }
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

fn compile_match(sink: &mut ErrorSink, place: &Place, raw: &RawMatch) -> Option<RouteMatch> {
    let given: Vec<&str> = [
        ("path", raw.path.is_some()),
        ("path_exact", raw.path_exact.is_some()),
        ("path_regex", raw.path_regex.is_some()),
    ]
    .iter()
    .filter(|(_, set)| *set)
    .map(|(k, _)| *k)
    .collect();
    let mut ok = true;
    let path = if given.len() > 1 {
        sink.push(
            place.clone(),
            format!(
                "give one of path, path_exact, path_regex (found {})",
                given.join(" and ")
            ),
        );
        ok = false;
        PathMatch::Any
    } else if let Some(p) = &raw.path {
        match route_path(p) {
            Ok(p) => {
                let trimmed = if p.len() > 1 {
                    p.trim_end_matches('/')
                } else {
                    &p
                };
                PathMatch::Prefix(trimmed.to_string())
            }
            Err(e) => {
                sink.push(place.key("path"), e);
                ok = false;
                PathMatch::Any
            }
        }
    } else if let Some(p) = &raw.path_exact {
        match route_path(p) {
            Ok(p) => PathMatch::Exact(p),
            Err(e) => {
                sink.push(place.key("path_exact"), e);
                ok = false;
                PathMatch::Any
            }
        }
    } else if let Some(r) = &raw.path_regex {
        match Regex::new(r) {
            Ok(re) => PathMatch::Regex(re),
            Err(e) => {
                let detail = e.to_string();
                let last = detail.lines().last().unwrap_or("").trim().to_string();
                sink.push(
                    place.key("path_regex"),
                    format!("{r:?} is not a valid regex: {last}"),
                );
                ok = false;
                PathMatch::Any
            }
        }
    } else {
        PathMatch::Any
    };

    let methods = match &raw.methods {
        None => None,
        Some(list) => {
            if list.is_empty() {
                sink.push(
                    place.key("methods"),
                    "is empty (leave it out to match every method)",
                );
                ok = false;
            }
            let mut methods: Vec<Method> = Vec::new();
            for (i, m) in list.iter().enumerate() {
                match method(m) {
                    Ok(m) if !methods.contains(&m) => methods.push(m),
                    Ok(_) => {}
                    Err(e) => {
                        sink.push(place.key("methods").index(i), e);
                        ok = false;
                    }
                }
            }
            Some(methods)
        }
    };

    let host = match &raw.host {
        None => None,
        Some(h) => match host_match(h) {
            Ok(h) => Some(h),
            Err(e) => {
                sink.push(place.key("host"), e);
                ok = false;
                None
            }
        },
    };

    let mut headers = Vec::new();
    if let Some(map) = &raw.headers {
        for (name, value) in &map.0 {
            match header_name(name).and_then(|h| Ok((h, header_condition(&value.as_text())?))) {
                Ok(condition) => headers.push(condition),
                Err(e) => {
                    sink.push(place.key("headers").key(name.clone()), e);
                    ok = false;
                }
            }
        }
    }

    if matches!(path, PathMatch::Any)
        && methods.is_none()
        && host.is_none()
        && headers.is_empty()
        && ok
    {
        sink.push(
            place.clone(),
            "matches every request; give a path, path_exact, path_regex, methods, host or headers (unmatched traffic already goes to `default`)",
        );
        ok = false;
    }
    ok.then_some(RouteMatch {
        path,
        methods,
        host,
        headers,
    })
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
fn route_path(text: &str) -> Result<String, String> {
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

fn method(text: &str) -> Result<Method, String> {
    const KNOWN: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT",
    ];
    if KNOWN.contains(&text) {
        return Method::from_bytes(text.as_bytes()).map_err(|e| e.to_string());
    }
    if KNOWN.contains(&text.to_ascii_uppercase().as_str()) {
        return Err(format!(
            "{text:?}: methods are case-sensitive, write {:?}",
            text.to_ascii_uppercase()
        ));
    }
    // Extension methods (WebDAV and the like) are allowed if they are tokens.
    if !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_uppercase() || c == '-' || c == '_')
    {
        return Method::from_bytes(text.as_bytes()).map_err(|e| e.to_string());
    }
    Err(format!("{text:?} is not an HTTP method"))
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

fn compile_shadow(sink: &mut ErrorSink, place: &Place, raw: &RawShadow) -> Option<ShadowPolicy> {
    let percent = match &raw.percent {
        None => Some(Percent::HUNDRED),
        Some(s) => sink.check(&place.key("percent"), percent(s)),
    };
    let allow_writes = raw.allow_writes.unwrap_or(false);
    let mut ok = true;
    let methods = match &raw.methods {
        None => vec![Method::GET, Method::HEAD, Method::OPTIONS],
        Some(list) => {
            let mut methods = Vec::new();
            for (i, m) in list.iter().enumerate() {
                match method(m) {
                    Ok(m) => {
                        let safe = matches!(m.as_str(), "GET" | "HEAD" | "OPTIONS" | "TRACE");
                        if !safe && !allow_writes {
                            sink.push(
                                place.key("methods").index(i),
                                format!(
                                    "{m} can have side effects; copying it to the other side needs `allow_writes: true` on this shadow block"
                                ),
                            );
                            ok = false;
                        }
                        if !methods.contains(&m) {
                            methods.push(m);
                        }
                    }
                    Err(e) => {
                        sink.push(place.key("methods").index(i), e);
                        ok = false;
                    }
                }
            }
            methods
        }
    };
    let max_body = match &raw.max_body {
        None => Some(DEFAULT_SHADOW_MAX_BODY),
        Some(s) => sink.check(&place.key("max_body"), ByteSize::parse(&s.as_text())),
    };
    let timeout = match &raw.timeout {
        None => Some(DEFAULT_SHADOW_TIMEOUT),
        Some(s) => sink.check(&place.key("timeout"), positive_duration(s)),
    };
    let noise_sample = match &raw.noise_sample {
        None => Percent::new(DEFAULT_NOISE_SAMPLE).ok(),
        Some(s) => sink.check(&place.key("noise_sample"), self::percent(s)),
    };
    let mut redact = Vec::new();
    for (i, entry) in raw.redact.iter().flatten().enumerate() {
        let valid = if entry.starts_with('/') {
            shadow_diff::FieldPattern::parse(entry).map(|_| ())
        } else {
            header_name(entry).map(|_| ())
        };
        match valid {
            Ok(()) => redact.push(entry.clone()),
            Err(_) => {
                sink.push(
                    place.key("redact").index(i),
                    format!(
                        "{entry:?} is neither a header name nor a JSON Pointer (/path/to/field)"
                    ),
                );
                ok = false;
            }
        }
    }
    let defaults = Threshold::default();
    let max_diff_rate = match &raw.max_diff_rate {
        None => Some(defaults.max_diff_rate),
        Some(s) => sink
            .check(&place.key("max_diff_rate"), self::percent(s))
            .map(|p| p.get() / 100.0),
    };
    let min_samples = match &raw.min_samples {
        None => Some(defaults.min_samples),
        Some(Scalar::Number(n)) if n.fract() == 0.0 && *n >= 1.0 => Some(*n as u64),
        Some(other) => {
            sink.push(
                place.key("min_samples"),
                format!(
                    "{} is not a count (a whole number, 1 or more)",
                    other.as_text()
                ),
            );
            None
        }
    };
    let compare = compile_compare(sink, &place.key("compare"), raw.compare.as_ref());
    Some(ShadowPolicy {
        threshold: Threshold {
            max_diff_rate: max_diff_rate?,
            min_samples: min_samples?,
        },
        percent: percent?,
        methods: ok.then_some(methods)?,
        max_body: max_body?,
        timeout: timeout?,
        noise_sample: noise_sample?,
        redact,
        compare: compare?,
    })
}

fn compile_compare(
    sink: &mut ErrorSink,
    place: &Place,
    raw: Option<&RawCompare>,
) -> Option<CompareRules> {
    let Some(raw) = raw else {
        return Some(CompareRules::default());
    };
    let mut ok = true;
    let mut ignore_headers = Vec::new();
    for (i, h) in raw.ignore_headers.iter().enumerate() {
        match header_name(h) {
            Ok(name) => ignore_headers.push(name.as_str().to_string()),
            Err(e) => {
                sink.push(place.key("ignore_headers").index(i), e);
                ok = false;
            }
        }
    }
    let mut pointers = |key: &str, list: &[String]| {
        let mut out = Vec::new();
        for (i, p) in list.iter().enumerate() {
            match shadow_diff::FieldPattern::parse(p) {
                Ok(pattern) => out.push(pattern),
                Err(e) => {
                    sink.push(place.key(key).index(i), e);
                    ok = false;
                }
            }
        }
        out
    };
    let ignore_fields = pointers("ignore_fields", &raw.ignore_fields);
    let unordered_arrays = pointers("unordered_arrays", &raw.unordered_arrays);
    let numeric_tolerance = match &raw.numeric_tolerance {
        None => 0.0,
        Some(Scalar::Number(n)) if *n >= 0.0 && n.is_finite() => *n,
        Some(other) => {
            sink.push(
                place.key("numeric_tolerance"),
                format!(
                    "{} is not a tolerance (a number, 0 or more)",
                    other.as_text()
                ),
            );
            ok = false;
            0.0
        }
    };
    ok.then_some(CompareRules {
        ignore_headers,
        ignore_fields,
        unordered_arrays,
        numeric_tolerance,
    })
}
