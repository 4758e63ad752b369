use super::*;
use crate::config::parse;
use http::HeaderValue;

const TABLE: &str = r#"
version: 1
backends:
  monolith: { url: "http://127.0.0.1:1" }
  orders: { url: "http://127.0.0.1:2" }
  search: { url: "http://127.0.0.1:3" }
tenant:
  - header: X-Tenant-Id
  - host_label: 0
default: monolith
routes:
  - name: orders-read
    match: { path: /api/orders, methods: [GET, HEAD] }
    new: orders
    canary: 10
    tenants: { acme: new, initech: legacy }
    shadow: { percent: 100 }
  - name: orders-export
    match: { path_exact: /api/orders/export }
    new: orders
    canary: 100
  - name: orders-deep
    match: { path: /api/orders/archive }
    new: orders
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
"#;

fn table() -> RouteTable {
    RouteTable::new(parse(TABLE, "t").unwrap())
}

fn req<'a>(
    method: &'a Method,
    path: &'a str,
    headers: &'a HeaderMap,
    host: Option<&'a str>,
) -> RequestInfo<'a> {
    RequestInfo {
        method,
        host,
        path,
        headers,
        client_ip: Some("192.0.2.7".parse().unwrap()),
        entropy: 7,
    }
}

fn route_name(t: &RouteTable, d: &Decision<'_>) -> String {
    d.route
        .map(|i| t.config().routes[i].name.to_string())
        .unwrap_or_else(|| "(default)".into())
}

#[test]
fn most_specific_route_wins() {
    let t = table();
    let h = HeaderMap::new();
    let cases = [
        ("/api/orders", "orders-read"),
        ("/api/orders/7", "orders-read"),
        ("/api/ordersX", "(default)"),
        ("/api/orders/export", "orders-export"),
        ("/api/orders/export/x", "orders-read"),
        ("/api/orders/archive/2020", "orders-deep"),
        ("/search", "search"),
        ("/search/q", "search"),
        ("/searching", "(default)"),
        ("/", "(default)"),
    ];
    for (path, expected) in cases {
        let d = t.decide(&req(&Method::GET, path, &h, None));
        assert_eq!(route_name(&t, &d), expected, "{path}");
    }
}

#[test]
fn methods_headers_and_hosts_narrow_a_route() {
    let t = table();
    let h = HeaderMap::new();
    let d = t.decide(&req(&Method::POST, "/api/orders", &h, None));
    assert_eq!(route_name(&t, &d), "(default)");
    assert_eq!(d.backend, t.config().default_backend);
    assert_eq!(d.reason, Reason::NoRouteMatched);

    let mut beta = HeaderMap::new();
    beta.insert("x-beta", HeaderValue::from_static("1"));
    let d = t.decide(&req(&Method::POST, "/api/orders", &beta, None));
    assert_eq!(route_name(&t, &d), "beta");

    let d = t.decide(&req(
        &Method::GET,
        "/cart",
        &h,
        Some("acme.shop.example.com:443"),
    ));
    assert_eq!(route_name(&t, &d), "shop-host");
    let d = t.decide(&req(&Method::GET, "/cart", &h, Some("shop.example.com")));
    assert_eq!(route_name(&t, &d), "(default)");
}

#[test]
fn tenant_pins_beat_the_percentage() {
    let t = table();
    let mut h = HeaderMap::new();
    h.insert("x-tenant-id", HeaderValue::from_static("acme"));
    let d = t.decide(&req(&Method::GET, "/api/orders", &h, None));
    assert_eq!((d.side, d.reason), (Side::New, Reason::TenantPinned));
    assert_eq!(d.tenant.as_ref().unwrap().id, "acme");
    // Shadow copies go to the side that did not serve.
    assert_eq!(
        d.shadow,
        ShadowDecision::Copy {
            side: Side::Legacy,
            backend: t.config().route("orders-read").unwrap().legacy
        }
    );

    // A tenant from a host label pins too.
    let h = HeaderMap::new();
    let d = t.decide(&req(
        &Method::GET,
        "/api/orders",
        &h,
        Some("initech.shop.example.com"),
    ));
    assert_eq!((d.side, d.reason), (Side::Legacy, Reason::TenantPinned));
}

#[test]
fn sticky_tenants_always_get_the_same_side() {
    let t = table();
    for i in 0..200 {
        let mut h = HeaderMap::new();
        h.insert(
            "x-tenant-id",
            HeaderValue::from_str(&format!("t{i}")).unwrap(),
        );
        let first = t.decide(&req(&Method::GET, "/api/orders", &h, None));
        let mut r = req(&Method::GET, "/api/orders/9", &h, None);
        r.entropy = 12345;
        r.client_ip = Some("198.51.100.1".parse().unwrap());
        let again = t.decide(&r);
        assert_eq!(first.side, again.side);
        assert!(matches!(
            first.reason,
            Reason::Canary {
                key: KeyKind::Tenant,
                fallback: false,
                ..
            }
        ));
    }
}

#[test]
fn a_missing_sticky_key_falls_back_to_the_client_address() {
    let t = table();
    let h = HeaderMap::new();
    let d = t.decide(&req(&Method::GET, "/api/orders", &h, None));
    assert!(matches!(
        d.reason,
        Reason::Canary {
            key: KeyKind::Ip,
            fallback: true,
            ..
        }
    ));
}

#[test]
fn canary_share_follows_the_setting() {
    let t = table();
    let mut new = 0;
    let n = 20_000;
    for i in 0..n {
        let mut h = HeaderMap::new();
        h.insert(
            "x-tenant-id",
            HeaderValue::from_str(&format!("tenant-{i}")).unwrap(),
        );
        if t.decide(&req(&Method::GET, "/api/orders", &h, None)).side == Side::New {
            new += 1;
        }
    }
    let share = new as f64 * 100.0 / n as f64;
    assert!((share - 10.0).abs() < 1.0, "share {share}");

    // sticky: none draws per request from the entropy.
    let h = HeaderMap::new();
    let mut new = 0;
    for i in 0..n {
        let mut r = req(&Method::GET, "/search", &h, None);
        r.entropy = i;
        if t.decide(&r).side == Side::New {
            new += 1;
        }
    }
    let share = new as f64 * 100.0 / n as f64;
    assert!((share - 50.0).abs() < 1.5, "share {share}");
}

#[test]
fn shadowing_follows_the_method_rules() {
    let t = table();
    let h = HeaderMap::new();
    let d = t.decide(&req(&Method::HEAD, "/api/orders", &h, None));
    assert!(matches!(d.shadow, ShadowDecision::Copy { .. }));
    let d = t.decide(&req(&Method::GET, "/search", &h, None));
    assert_eq!(d.shadow, ShadowDecision::Off);
}

#[test]
fn recording_samples_by_the_sticky_key_apart_from_shadowing() {
    let config = parse(
        &format!(
            "{}    record: {{ percent: 30 }}\n",
            TABLE.split("  - name: orders-export").next().unwrap()
        ),
        "t",
    )
    .unwrap();
    let t = RouteTable::new(config);
    let decide = |tenant: &str, entropy: u64| {
        let mut h = HeaderMap::new();
        h.insert("x-tenant-id", HeaderValue::from_str(tenant).unwrap());
        let mut r = req(&Method::POST, "/api/orders", &h, None);
        r.method = &Method::GET;
        r.entropy = entropy;
        t.decide(&r).record
    };
    let n = 20_000;
    let mut recorded = 0;
    for i in 0..n {
        let tenant = format!("tenant-{i}");
        let first = decide(&tenant, 1);
        // The same user, another request: the same answer.
        assert_eq!(first, decide(&tenant, 99), "{tenant}");
        recorded += first as u32;
    }
    let share = recorded as f64 * 100.0 / n as f64;
    assert!((share - 30.0).abs() < 1.5, "share {share}");
    // Routes without a record block record nothing.
    let h = HeaderMap::new();
    assert!(
        !table()
            .decide(&req(&Method::GET, "/api/orders", &h, None))
            .record
    );
}

/// How a lenient backend might read a path it receives: every escape decoded
/// twice, backslashes as slashes, `;parameters` dropped, dot segments resolved.
fn lenient_backend_view(path: &str) -> String {
    fn decode(s: &str) -> String {
        let b = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%' && i + 2 < b.len() {
                if let (Some(h), Some(l)) = (
                    (b[i + 1] as char).to_digit(16),
                    (b[i + 2] as char).to_digit(16),
                ) {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
            }
            out.push(b[i]);
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    let decoded = decode(&decode(path)).replace('\\', "/");
    let mut segments: Vec<&str> = Vec::new();
    for seg in decoded.split('/') {
        match seg.split(';').next().unwrap_or("") {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    format!("/{}", segments.join("/"))
}

mod backend_view {
    use super::*;
    use crate::request_path::{normalize_path, routing_path};
    use proptest::prelude::*;

    fn piece() -> impl Strategy<Value = &'static str> {
        prop_oneof![
            Just("api"),
            Just("orders"),
            Just("export"),
            Just("search"),
            Just("cart"),
            Just("/"),
            Just("//"),
            Just("."),
            Just(".."),
            Just("%2e"),
            Just("%2E%2e"),
            Just("%2f"),
            Just("%5c"),
            Just("\\"),
            Just("%25"),
            Just("%252e"),
            Just("%2561"),
            Just(";"),
            Just(";x=1"),
            Just("..;"),
            Just("%3b"),
            Just("%00"),
            Just("%c0%ae"),
            Just("%e2%80%ae"),
            Just("%61"),
            Just("%6F"),
            Just("x"),
            Just("~"),
            Just("%7e"),
            Just("?"),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]
        /// No bypass: the route the proxy chooses for a path is the route a
        /// lenient backend's reading of the path it receives would choose.
        #[test]
        fn the_route_is_the_one_the_backend_would_choose(parts in proptest::collection::vec(piece(), 1..8)) {
            let t = table();
            let h = HeaderMap::new();
            let raw = format!("/{}", parts.concat());
            let raw = raw.split('?').next().unwrap_or("/").to_string();
            if let Ok(normal) = normalize_path(&raw) {
                let proxy_route = route_name(&t, &t.decide(&req(&Method::GET, &routing_path(&normal), &h, None)));
                let seen = lenient_backend_view(&normal);
                let backend_route = route_name(&t, &t.decide(&req(&Method::GET, &seen, &h, None)));
                prop_assert_eq!(&proxy_route, &backend_route, "raw {} normal {} backend reads {}", raw, normal, seen);
                // And normal form is a fixed point.
                let again = normalize_path(&normal).unwrap();
                prop_assert_eq!(again.as_ref(), normal.as_ref());
            }
        }
    }
}

mod index_against_the_plain_scan {
    use super::*;
    use crate::config::path_index::random_tables::{matchers, request_path, valid_table};
    use proptest::prelude::*;

    /// What the router did before it had an index: every route in priority
    /// order, the first whose conditions all hold.
    fn plain_scan(t: &RouteTable, r: &RequestInfo<'_>) -> Option<usize> {
        let host = r.host.map(host_without_port);
        t.order().iter().copied().find(|&i| {
            let m = &t.config().routes[i].matcher;
            m.path.matches(r.path) && other_conditions_hold(m, r, host)
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        /// The indexed lookup chooses the route the plain scan chooses, for
        /// random tables and requests.
        #[test]
        fn chooses_what_the_plain_scan_chooses(
            table in matchers(24),
            requests in proptest::collection::vec(
                (request_path(), any::<bool>(), prop_oneof![Just(None), Just(Some("x.example.com")), Just(Some("q.example.com:8080")), Just(Some("y.example.com"))], any::<bool>()),
                1..40,
            ),
        ) {
            let t = RouteTable::new(valid_table(&table));
            for (path, post, host, beta) in &requests {
                let mut h = HeaderMap::new();
                if *beta {
                    h.insert("x-beta", HeaderValue::from_static("1"));
                }
                let method = if *post { Method::POST } else { Method::GET };
                let r = req(&method, path, &h, *host);
                prop_assert_eq!(t.match_route(&r), plain_scan(&t, &r), "{} {:?}", path, host);
            }
        }
    }
}
