//! Requests -> `normalize_path`, `routing_path` and `RouteTable::decide`, as
//! the proxy's `request_filter` runs them.
//!
//! An input is a small text request, so that corpus files read as requests:
//!
//! ```text
//! GET /api/../admin?x=1
//! Host: acme.shop.example.com
//! X-Tenant-Id: acme
//! ```
//!
//! The first line is `METHOD TARGET` (the target is raw bytes up to the end of
//! the line; a line without a space is all target and the method is GET); the
//! other lines are `Name: value` headers (lines that are not a valid header are
//! skipped). The host is taken as the proxy takes it: the target's authority
//! (absolute form) or else the `Host` header.
//!
//! Properties, beyond never panicking:
//! - on any text, `normalize_path` is deterministic; an accepted path's normal
//!   form starts with `/`, has no empty, `.` or `..` segment, no backslash and
//!   no control character, normalizes to itself (without copying), and so
//!   does the routing path `routing_path` makes of it;
//! - equivalent spellings of a path (an unreserved character written as an
//!   escape or an escape of one decoded, an escape's hex digits in the other
//!   case, `//`, `/./` or `/x/../` for a `/`) normalize to the same normal
//!   form, or are all refused with the same error: a refused path cannot be
//!   smuggled past the check by spelling it differently;
//! - for a target that parses as an `http::Uri` (what Pingora hands over), an
//!   accepted path gives an upstream URI (`path?query`) that parses, whose
//!   path is the normal form, and that the backend's own normalization routes
//!   the same way (the route chosen for the client's path is the route chosen
//!   for the path the backend receives);
//! - a decoding backend's reading of the path it receives (every escape
//!   decoded twice, `\` as `/`, `;parameters` dropped, dot segments resolved)
//!   is routed to the same route as the proxy routed the request. This holds
//!   for route tables whose paths are written with unreserved characters and
//!   `/` only: see fuzz/README.md, "Known limitation";
//! - `decide` is deterministic, the route does not depend on the client
//!   address or the entropy, the backend is the route's legacy or new one (the
//!   default backend when no route matched), a shadow copy goes to the other
//!   side's backend, and a tenant id is never empty nor longer than 256 bytes.
//!
//! Two tables are used: a fixed one ([`TABLE`]) with every kind of condition,
//! and the same one with two routes made from the request's own path (an exact
//! route on it and a prefix route on its parent), so that deep paths meet a
//! route too.

#![no_main]

use std::borrow::Cow;
use std::sync::OnceLock;

use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use libfuzzer_sys::fuzz_target;
use strangler::config::defaults::DEFAULT_MAX_REQUEST_BODY;
use strangler::config::{
    self, BackendId, PathMatch, Percent, Route, RouteMatch, RouteName, Side, Sticky,
};
use strangler::routing::tenant::MAX_TENANT_LEN;
use strangler::routing::{
    Decision, RequestInfo, RouteTable, ShadowDecision, normalize_path, routing_path,
};

/// Route paths use unreserved characters and `/` only, and regexes are a
/// literal prefix followed by `(/|$)`, so the decoding backend's view below
/// can be matched against the same table (see the module comment).
const TABLE: &str = r#"
version: 1
backends:
  monolith: { url: "http://127.0.0.1:1" }
  orders: { url: "http://127.0.0.1:2" }
  search: { url: "http://127.0.0.1:3" }
  admin: { url: "http://127.0.0.1:4" }
tenant:
  - header: X-Tenant-Id
  - host_label: 0
  - cookie: tenant
  - jwt_claim: tid
default: monolith
routes:
  - name: orders-read
    match: { path: /api/orders, methods: [GET, HEAD] }
    new: orders
    canary: 10
    tenants: { acme: new, initech: legacy }
    shadow: { percent: 100 }
  - name: orders-write
    match: { path: /api/orders, methods: [POST, PUT, PATCH, DELETE] }
    new: orders
    canary: 0
    sticky: "header:X-User"
    shadow: { percent: 50, methods: [POST], allow_writes: true }
  - name: orders-export
    match: { path_exact: /api/orders/export }
    new: orders
    canary: 100
  - name: orders-deep
    match: { path: /api/orders/archive }
    new: orders
    canary: 33.3
    sticky: "cookie:session"
  - name: admin
    match: { path: /admin }
    new: admin
    canary: 100
  - name: admin-exact-slash
    match: { path_exact: /admin/ }
    legacy: monolith
    new: search
    canary: 0
  - name: search
    match: { path_regex: "^/search(/|$)" }
    new: search
    canary: 50
    sticky: none
  - name: beta
    match: { path: /api/orders, headers: { X-Beta: "1" } }
    new: search
    canary: 100
  - name: shop-host
    match: { host: "*.shop.example.com", path: /cart }
    new: search
    canary: 100
    sticky: ip
  - name: exact-host
    match: { host: api.example.com }
    new: orders
    canary: 50
    shadow: { percent: 10, methods: [GET, OPTIONS] }
  - name: dotted
    match: { path: /static/v1.2/~user_x-y }
    new: search
    canary: 75
  - name: options
    match: { methods: [OPTIONS, PROPFIND] }
    new: search
    canary: 5
"#;

fn fixed_table() -> &'static RouteTable {
    static TABLE_CELL: OnceLock<RouteTable> = OnceLock::new();
    TABLE_CELL.get_or_init(|| {
        let config = config::parse(TABLE, "router-table.yaml").unwrap_or_else(|e| panic!("{e}"));
        for route in &config.routes {
            if let PathMatch::Exact(p) | PathMatch::Prefix(p) = &route.matcher.path {
                assert!(decoded_alphabet(p), "route path {p} outside the alphabet");
            }
        }
        RouteTable::new(config)
    })
}

fuzz_target!(|data: &[u8]| {
    let Some(req) = Request::parse(data) else {
        return;
    };
    // Any text: a superset of what reaches the proxy.
    if let Ok(text) = std::str::from_utf8(req.target) {
        check_path(text, data);
    }
    // What the proxy sees: a target that Pingora could hand over as a URI.
    let Ok(uri) = Uri::try_from(req.target) else {
        return;
    };
    if Ok(uri.path()) != std::str::from_utf8(req.target) {
        check_path(uri.path(), data);
    }
    let host = uri.host().or_else(|| {
        req.headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
    });
    let normal = match normalize_path(uri.path()) {
        Ok(n) => n,
        // Refused (400) before routing, consistently: see check_path.
        Err(_) => return,
    };
    let route_on = routing_path(&normal);

    // What the upstream receives: the proxy rewrites the URI to `normal?query`
    // when the normal form differs, and fails the request (500) when that does
    // not parse.
    let upstream = if normal.as_ref() != uri.path() {
        let text = match uri.query() {
            Some(q) => format!("{normal}?{q}"),
            None => normal.to_string(),
        };
        let upstream = text
            .parse::<Uri>()
            .unwrap_or_else(|e| panic!("upstream URI {text:?} (for {uri:?}) does not parse: {e}"));
        assert_eq!(
            upstream.query(),
            uri.query(),
            "the upstream gets another query"
        );
        upstream
    } else {
        // Unchanged: the request goes up with the client's own URI.
        uri.clone()
    };
    assert_eq!(
        upstream.path(),
        normal.as_ref(),
        "the upstream gets another path"
    );
    // A backend that normalizes as the proxy does.
    let backend_normal = normalize_path(upstream.path()).expect("the upstream path is refused");
    let backend_route_on = routing_path(&backend_normal).into_owned();
    assert_eq!(backend_route_on, route_on.as_ref());
    // A decoding backend.
    let decoded = decoding_backend_view(&normal);

    let fixed = fixed_table();
    let probed = probe_table(fixed, &decoded);
    for table in [fixed, &probed] {
        let d = check_decide(table, &req, host, &route_on);
        let backend_d = check_decide(table, &req, host, &backend_route_on);
        assert_eq!(d, backend_d, "the backend's path routes elsewhere");
        let decoded_d = check_decide(table, &req, host, &decoded);
        assert_eq!(
            d.route,
            decoded_d.route,
            "path {:?}: the proxy routes {route_on:?}, a decoding backend reads {decoded:?}",
            uri.path()
        );
    }
});

/// The parsed fuzz input.
struct Request<'a> {
    method: Method,
    target: &'a [u8],
    headers: HeaderMap,
}

impl<'a> Request<'a> {
    fn parse(data: &'a [u8]) -> Option<Request<'a>> {
        let mut lines = data.split(|&b| b == b'\n');
        let first = lines.next()?;
        let first = first.strip_suffix(b"\r").unwrap_or(first);
        let (method, target) = match first.iter().position(|&b| b == b' ') {
            Some(i) => (Method::from_bytes(&first[..i]).ok()?, &first[i + 1..]),
            None => (Method::GET, first),
        };
        let mut headers = HeaderMap::new();
        for line in lines.take(64) {
            let Some(colon) = line.iter().position(|&b| b == b':') else {
                continue;
            };
            let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(line[..colon].trim_ascii()),
                HeaderValue::from_bytes(line[colon + 1..].trim_ascii()),
            ) else {
                continue;
            };
            headers.append(name, value);
        }
        Some(Request {
            method,
            target,
            headers,
        })
    }
}

/// Properties of `normalize_path` and `routing_path` on any text.
fn check_path(path: &str, data: &[u8]) {
    let first = normalize_path(path);
    assert_eq!(
        first,
        normalize_path(path),
        "normalize_path is not deterministic"
    );
    if let Ok(normal) = &first {
        check_normal_form(path, normal);
    }
    // Equivalent spellings: same normal form, or the same refusal.
    let mut rng = Rng::new(data);
    for _ in 0..4 {
        let variant = respell(path, &mut rng);
        let again = normalize_path(&variant);
        match (&first, &again) {
            (Ok(a), Ok(b)) => assert_eq!(
                a, b,
                "{path:?} and its respelling {variant:?} normalize differently"
            ),
            (Err(a), Err(b)) => assert_eq!(
                a, b,
                "{path:?} and its respelling {variant:?} are refused for different reasons"
            ),
            _ => panic!("{path:?} gives {first:?} but its respelling {variant:?} gives {again:?}"),
        }
    }
}

fn check_normal_form(path: &str, normal: &Cow<'_, str>) {
    assert!(normal.starts_with('/'), "{normal:?}");
    assert_eq!(
        matches!(normal, Cow::Borrowed(_)),
        normal.as_ref() == path,
        "{path:?}: borrowed exactly when already normal"
    );
    let body = normal.trim_end_matches('/');
    for segment in body.split('/').skip(1) {
        assert!(
            !segment.is_empty() && segment != "." && segment != "..",
            "{path:?} -> {normal:?} keeps an empty or dot segment"
        );
    }
    assert!(
        !normal.bytes().any(|b| b == b'\\' || b < 0x20 || b == 0x7f),
        "{path:?} -> {normal:?}: a backslash or control character"
    );
    let again = normalize_path(normal).unwrap_or_else(|e| panic!("{normal:?} refused: {e}"));
    assert!(
        matches!(again, Cow::Borrowed(_)),
        "{normal:?} normalized again changes"
    );
    let route_on = routing_path(normal);
    assert_eq!(
        normalize_path(&route_on).as_deref(),
        Ok(route_on.as_ref()),
        "{normal:?}: the routing path {route_on:?} is not in normal form"
    );
    assert_eq!(
        routing_path(&route_on),
        route_on.as_ref(),
        "routing_path is not stable"
    );
}

/// `decide` for one request, with its consistency properties; returns the
/// decision for the proxy's usual inputs (a client address, some entropy).
fn check_decide<'r>(
    table: &RouteTable,
    req: &'r Request<'_>,
    host: Option<&'r str>,
    path: &'r str,
) -> Decision<'r> {
    let info = RequestInfo {
        method: &req.method,
        host,
        path,
        headers: &req.headers,
        client_ip: Some("192.0.2.7".parse().unwrap()),
        entropy: 7,
    };
    let d = table.decide(&info);
    assert_eq!(d, table.decide(&info), "decide is not deterministic");
    let config = table.config();
    for (client_ip, entropy) in [(None, 0), (Some("2001:db8::1".parse().unwrap()), u64::MAX)] {
        let other = table.decide(&RequestInfo {
            client_ip,
            entropy,
            ..info
        });
        assert_eq!(
            d.route, other.route,
            "the route depends on the client or entropy"
        );
    }
    match d.route {
        None => {
            assert_eq!(d.backend, config.default_backend);
            assert_eq!(d.side, Side::Legacy);
            assert_eq!(d.shadow, ShadowDecision::Off);
        }
        Some(i) => {
            let route = &config.routes[i];
            assert_eq!(d.backend, route.backend_for(d.side));
            if let ShadowDecision::Copy { side, backend } = d.shadow {
                assert_eq!(side, d.side.other());
                assert_eq!(backend, route.backend_for(side));
                assert!(route.shadow.as_ref().unwrap().methods.contains(&req.method));
            }
        }
    }
    if let Some(t) = &d.tenant {
        assert!(!t.id.is_empty() && t.id.len() <= MAX_TENANT_LEN, "{t:?}");
        assert!(t.source < config.tenant.len());
    }
    d
}

/// How a decoding backend might read the path it receives: every escape
/// decoded twice, backslashes as slashes, `;parameters` dropped, dot segments
/// resolved (never above the root).
fn decoding_backend_view(path: &str) -> String {
    fn decode(b: &[u8]) -> Vec<u8> {
        let hex = |c: u8| (c as char).to_digit(16);
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%' && i + 2 < b.len() {
                if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
            }
            out.push(b[i]);
            i += 1;
        }
        out
    }
    let decoded = decode(&decode(path.as_bytes()));
    let decoded = String::from_utf8_lossy(&decoded).replace('\\', "/");
    let mut segments: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    for segment in decoded.trim_start_matches('/').split('/') {
        match segment.split(';').next().unwrap_or("") {
            "" | "." => trailing_slash = true,
            ".." => {
                segments.pop();
                trailing_slash = true;
            }
            s => {
                segments.push(s);
                trailing_slash = false;
            }
        }
    }
    let mut out = String::new();
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if out.is_empty() || trailing_slash {
        out.push('/');
    }
    out
}

/// Unreserved characters and `/`: a path written with these alone has one
/// spelling, so a decoding backend reads it as it is written.
fn decoded_alphabet(p: &str) -> bool {
    p.bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/'))
}

/// The fixed table plus an exact route on `decoded` and a prefix route on
/// its parent, when `decoded` is a path a route could be written with.
fn probe_table(fixed: &RouteTable, decoded: &str) -> RouteTable {
    let mut config = fixed.config().clone();
    let usable = decoded_alphabet(decoded)
        && normalize_path(decoded).as_deref() == Ok(decoded)
        && decoded.len() > 1;
    if usable {
        let probe = |name: &str, path: PathMatch| Route {
            name: RouteName::new(name).unwrap(),
            matcher: RouteMatch {
                path,
                methods: None,
                host: None,
                headers: Vec::new(),
            },
            legacy: BackendId(0),
            new: BackendId(1),
            canary: Percent::HUNDRED,
            sticky: Sticky::None,
            pins: Vec::new(),
            shadow: None,
            guard: None,
            max_request_body: DEFAULT_MAX_REQUEST_BODY,
            rewrite: None,
            timeout: None,
            retries: 0,
            rollout: None,
            record: None,
            replay: Default::default(),
        };
        config
            .routes
            .push(probe("probe-exact", PathMatch::Exact(decoded.to_string())));
        let trimmed = decoded.trim_end_matches('/');
        if let Some(i) = trimmed.rfind('/').filter(|&i| i > 0) {
            config.routes.push(probe(
                "probe-prefix",
                PathMatch::Prefix(trimmed[..i].to_string()),
            ));
        }
    }
    RouteTable::new(config)
}

/// A small deterministic generator seeded from the input, so that a crash
/// reproduces from its file alone.
struct Rng(u64);

impl Rng {
    fn new(data: &[u8]) -> Rng {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for &b in data {
            h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
        Rng(h | 1)
    }

    fn below(&mut self, n: usize) -> usize {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n.max(1)
    }
}

/// `path` with one to three equivalence-preserving edits.
fn respell(path: &str, rng: &mut Rng) -> String {
    let mut bytes = path.as_bytes().to_vec();
    for _ in 0..1 + rng.below(3) {
        bytes = respell_once(&bytes, rng);
    }
    // Every edit keeps ASCII text as ASCII and leaves other bytes alone.
    String::from_utf8(bytes).expect("a respelling stays UTF-8")
}

fn respell_once(bytes: &[u8], rng: &mut Rng) -> Vec<u8> {
    let hex = |b: u8| b.is_ascii_hexdigit();
    // Where escapes start: the bytes of a `%XY` are left alone, and so are
    // the two bytes after a `%` that does not start a valid escape.
    let mut in_escape = vec![false; bytes.len()];
    let mut escapes = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            for flag in in_escape.iter_mut().skip(i).take(3) {
                *flag = true;
            }
            if i + 2 < bytes.len() && hex(bytes[i + 1]) && hex(bytes[i + 2]) {
                escapes.push(i);
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    let unreserved: Vec<usize> = (0..bytes.len())
        .filter(|&i| {
            !in_escape[i]
                && (bytes[i].is_ascii_alphanumeric()
                    || matches!(bytes[i], b'-' | b'.' | b'_' | b'~'))
        })
        .collect();
    let slashes: Vec<usize> = (0..bytes.len()).filter(|&i| bytes[i] == b'/').collect();
    let unreserved_escapes: Vec<usize> = escapes
        .iter()
        .copied()
        .filter(|&i| {
            let v =
                u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap(), 16).unwrap();
            v.is_ascii_alphanumeric() || matches!(v, b'-' | b'.' | b'_' | b'~')
        })
        .collect();

    let mut out = bytes.to_vec();
    match rng.below(5) {
        // An unreserved character as an escape, in either case.
        0 if !unreserved.is_empty() => {
            let i = unreserved[rng.below(unreserved.len())];
            let escape = if rng.below(2) == 0 {
                format!("%{:02X}", bytes[i])
            } else {
                format!("%{:02x}", bytes[i])
            };
            out.splice(i..i + 1, escape.bytes());
        }
        // An escape of an unreserved character decoded.
        1 if !unreserved_escapes.is_empty() => {
            let i = unreserved_escapes[rng.below(unreserved_escapes.len())];
            let v =
                u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap(), 16).unwrap();
            out.splice(i..i + 3, [v]);
        }
        // An escape's hex digits in the other case.
        2 if !escapes.is_empty() => {
            let i = escapes[rng.below(escapes.len())];
            for b in &mut out[i + 1..i + 3] {
                *b = if b.is_ascii_uppercase() {
                    b.to_ascii_lowercase()
                } else {
                    b.to_ascii_uppercase()
                };
            }
        }
        // A `/` written as `//`, `/./` or `/x/../`.
        3 | 4 if !slashes.is_empty() => {
            let i = slashes[rng.below(slashes.len())];
            let with: &[u8] = match rng.below(3) {
                0 => b"//",
                1 => b"/./",
                _ => b"/x/../",
            };
            out.splice(i..i + 1, with.iter().copied());
        }
        _ => {}
    }
    out
}
