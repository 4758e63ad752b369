//! Validation tests: each error names its place, and all are reported at once.

use super::*;

const GOOD: &str = r#"
version: 1
listen: 127.0.0.1:8080
admin:
  listen: 127.0.0.1:9901
  token_env: STRANGLER_ADMIN_TOKEN
backends:
  monolith:
    url: http://127.0.0.1:9000
    connect_timeout: 2s
    read_timeout: 30s
  orders:
    urls: [http://127.0.0.1:9001, "https://orders.internal"]
tenant:
  - header: X-Tenant-Id
  - host_label: 0
  - cookie: tenant
  - jwt_claim: tid
default: monolith
routes:
  - name: orders-read
    match:
      path: /api/orders
      methods: [GET, HEAD]
      host: shop.example.com
      headers: { X-Beta: "1" }
    legacy: monolith
    new: orders
    canary: 12.5
    sticky: tenant
    tenants: { acme: new, initech: legacy }
    shadow:
      percent: 100
      methods: [GET, HEAD, OPTIONS]
      max_body: 1MiB
      timeout: 5s
      compare:
        ignore_headers: [date, server, x-request-id]
        ignore_fields: [/meta/generated_at, /items/*/etag]
        unordered_arrays: [/tags]
        numeric_tolerance: 0.001
  - name: orders-exact
    match: { path_exact: /api/orders/export }
    new: orders
  - name: reports
    match: { path_regex: "^/reports/[0-9]+$" }
    new: orders
    sticky: header:X-User
"#;

fn errors(text: &str) -> Vec<String> {
    match parse(text, "test.yaml") {
        Ok(_) => panic!("expected errors"),
        Err(e) => e.errors.iter().map(|e| e.to_string()).collect(),
    }
}

#[test]
fn the_brief_example_is_accepted() {
    let config = parse(GOOD, "good.yaml").unwrap();
    assert_eq!(config.routes.len(), 3);
    let r = &config.routes[0];
    assert_eq!(r.canary.get(), 12.5);
    assert_eq!(r.pins.len(), 2);
    assert_eq!(config.backends[1].endpoints.len(), 2);
    assert_eq!(config.backends[1].endpoints[1].port, 443);
    let shadow = r.shadow.as_ref().unwrap();
    assert_eq!(shadow.max_body.get(), 1 << 20);
    assert_eq!(shadow.compare.numeric_tolerance, 0.001);
    assert_eq!(shadow.compare.ignore_fields[1].as_str(), "/items/*/etag");
    assert_eq!(shadow.noise_sample.get(), 10.0);
    assert!(matches!(config.routes[2].sticky, Sticky::Header(_)));
    assert_eq!(config.tenant.len(), 4);
}

#[test]
fn all_errors_are_reported_at_once_with_their_place() {
    let text = r#"
version: 1
backends:
  monolith: { url: http://127.0.0.1:9000, read_timeout: 30 }
  orders: { url: "ftp://x" }
default: monolith
routes:
  - name: a
    match: { path: /a }
    new: nowhere
    canary: 130
  - name: a
    match: { path_regex: "([a-" }
    new: monolith
  - name: c
    match: { path: /c, methdos: [GET] }
    new: orders
    shadow: { methods: [POST] }
"#;
    let errs = errors(text);
    let joined = errs.join("\n");
    for expected in [
        "backends.monolith.read_timeout: 30 needs a unit",
        "backends.orders.url: \"ftp://x\" must start with http:// or https://",
        "routes[0].new: unknown backend \"nowhere\"",
        "routes[0].canary: 130 is over 100",
        "routes[1].name: duplicate route name \"a\"",
        "routes[1].match.path_regex: \"([a-\" is not a valid regex",
        "routes[2].match.methdos: unknown key \"methdos\"",
    ] {
        assert!(
            joined.contains(expected),
            "missing {expected:?} in:\n{joined}"
        );
    }
    // A declared backend with its own error is not reported again where used.
    assert!(!joined.contains("unknown backend \"monolith\""), "{joined}");
    assert_eq!(errs.len(), 8, "{joined}");
}

#[test]
fn a_route_that_can_never_match_is_an_error() {
    let text = r#"
version: 1
backends: { a: { url: "http://127.0.0.1:1" }, b: { url: "http://127.0.0.1:2" } }
default: a
routes:
  - name: broad
    match: { path: /api }
    new: b
  - name: same
    match: { path: /api/ }
    new: b
  - name: narrower-methods
    match: { path: /api/x, methods: [GET] }
    new: b
  - name: exact-under-prefix
    match: { path_exact: /api/x/y, methods: [GET] }
    new: b
  - name: dup-of-narrower
    match: { path: /api/x, methods: [GET] }
    new: b
"#;
    let errs = errors(text);
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(
        errs[0].starts_with(
            "routes[1].match: route \"same\" can never match: route \"broad\" (routes[0])"
        ),
        "{errs:?}"
    );
    assert!(
        errs[1].starts_with(
            "routes[4].match: route \"dup-of-narrower\" can never match: route \"narrower-methods\""
        ),
        "{errs:?}"
    );
}

/// Prefix routes beat regex routes and a catch-all beats a route with no
/// path, so these never match either.
#[test]
fn regex_and_pathless_routes_under_a_broader_prefix_are_errors() {
    let text = r#"
version: 1
backends: { a: { url: "http://127.0.0.1:1" }, b: { url: "http://127.0.0.1:2" } }
default: a
routes:
  - name: orders
    match: { path: /api/orders }
    new: b
  - name: order-by-id
    match: { path_regex: "^/api/orders/[0-9]+$" }
    new: b
  - name: order-by-id-get
    match: { path_regex: "^/api/orders/[0-9]+$", methods: [GET] }
    new: b
  - name: ordersx
    match: { path_regex: "^/api/ordersx" }
    new: b
  - name: unanchored
    match: { path_regex: "/api/orders/[0-9]+" }
    new: b
"#;
    let errs = errors(text);
    let expected = [
        "routes[1].match: route \"order-by-id\" can never match: route \"orders\" (routes[0])",
        "routes[2].match: route \"order-by-id-get\" can never match: route \"orders\" (routes[0])",
    ];
    assert_eq!(errs.len(), expected.len(), "{errs:?}");
    for (e, want) in errs.iter().zip(expected) {
        assert!(e.starts_with(want), "{e} does not start with {want}");
    }

    let text = r#"
version: 1
backends: { a: { url: "http://127.0.0.1:1" }, b: { url: "http://127.0.0.1:2" } }
default: a
routes:
  - name: admin-host
    match: { host: admin.example.com }
    new: b
  - name: everything
    match: { path: / }
    new: b
  - name: search
    match: { path_regex: "/search" }
    new: b
  - name: beta-everywhere
    match: { path: /, headers: { X-Beta: "1" } }
    new: b
"#;
    let errs = errors(text);
    let expected = [
        "routes[0].match: route \"admin-host\" can never match: route \"everything\" (routes[1])",
        "routes[2].match: route \"search\" can never match: route \"everything\" (routes[1])",
    ];
    assert_eq!(errs.len(), expected.len(), "{errs:?}");
    for (e, want) in errs.iter().zip(expected) {
        assert!(e.starts_with(want), "{e} does not start with {want}");
    }
}

#[test]
fn more_specific_conditions_are_not_shadowed() {
    let text = r#"
version: 1
backends: { a: { url: "http://127.0.0.1:1" }, b: { url: "http://127.0.0.1:2" } }
default: a
routes:
  - name: broad
    match: { path: /api }
    new: b
  - name: beta-only
    match: { path: /api, headers: { X-Beta: "1" } }
    new: b
  - name: exact
    match: { path_exact: /api }
    new: b
"#;
    parse(text, "t").unwrap();
}

/// Found by fuzz/fuzz_targets/config.rs: a header condition no request can
/// carry (a newline in it, or whitespace around it, which HTTP parsers drop)
/// was accepted, and its route could never match.
#[test]
fn header_conditions_no_request_can_carry_are_errors() {
    let text = r#"
version: 1
backends: { a: { url: "http://127.0.0.1:1" }, b: { url: "http://127.0.0.1:2" } }
default: a
routes:
  - name: newline
    match: { headers: { X-Beta: "a\nb" } }
    new: b
  - name: padded
    match: { path: /p, headers: { X-Beta: " 1" } }
    new: b
  - name: fine
    match: { path: /f, headers: { X-Beta: "1 2", X-Empty: "", X-Utf8: "café" } }
    new: b
"#;
    let errs = errors(text);
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(
        errs[0]
            .starts_with("routes[0].match.headers.X-Beta: \"a\\nb\" contains a control character"),
        "{errs:?}"
    );
    assert!(
        errs[1]
            .starts_with("routes[1].match.headers.X-Beta: \" 1\" starts or ends with whitespace"),
        "{errs:?}"
    );
}

#[test]
fn syntax_errors_carry_a_line() {
    let errs = parse("version: 1\nroutes: [\n  - a\n", "t").unwrap_err();
    assert_eq!(errs.errors.len(), 1);
    assert!(errs.errors[0].message.starts_with("not valid YAML"));
    assert!(errs.errors[0].line.is_some());
}

#[test]
fn empty_and_non_mapping_files_are_explained() {
    assert!(errors("")[0].contains("the file is empty"));
    assert!(errors("- 1\n- 2\n")[0].contains("must be a mapping"));
}

#[test]
fn missing_essentials_are_named() {
    let errs = errors("version: 2\nroutes: []\n");
    let joined = errs.join("\n");
    assert!(joined.contains("version: 2 is not supported"), "{joined}");
    assert!(
        joined.contains("backends: no backends are declared"),
        "{joined}"
    );
    assert!(joined.contains("default: missing"), "{joined}");
}

#[test]
fn route_paths_must_be_normal() {
    let text = r#"
version: 1
backends: { a: { url: "http://127.0.0.1:1" }, b: { url: "http://127.0.0.1:2" } }
default: a
routes:
  - name: dots
    match: { path: /api/../admin }
    new: b
  - name: slashes
    match: { path: "/api//x" }
    new: b
  - name: relative
    match: { path: api }
    new: b
"#;
    let errs = errors(text);
    assert_eq!(errs.len(), 3, "{errs:?}");
    assert!(errs[0].contains("write \"/admin\""), "{errs:?}");
}

/// Found by fuzz/fuzz_targets/config.rs: a route path with a raw space was
/// accepted, but requests carry it as `%20`, which normalization keeps, so
/// the route could never match.
#[test]
fn route_paths_must_be_sendable() {
    let text = r#"
version: 1
backends: { a: { url: "http://127.0.0.1:1" }, b: { url: "http://127.0.0.1:2" } }
default: a
routes:
  - name: space
    match: { path: "/a b" }
    new: b
  - name: angle
    match: { path_exact: "/x<y>" }
    new: b
  - name: fine
    match: { path: "/a%20b/caf\u00e9/{id}" }
    new: b
"#;
    let errs = errors(text);
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(errs[0].ends_with("write \"/a%20b\""), "{errs:?}");
    assert!(errs[1].ends_with("write \"/x%3Cy%3E\""), "{errs:?}");
}

#[test]
fn unsafe_methods_need_an_opt_in_to_be_shadowed() {
    let base = r#"
version: 1
backends: { a: { url: "http://127.0.0.1:1" }, b: { url: "http://127.0.0.1:2" } }
default: a
routes:
  - name: w
    match: { path: /w }
    new: b
    shadow: { methods: [GET, POST] ALLOW }
"#;
    let refused = base.replace(" ALLOW", "");
    let errs = errors(&refused);
    assert!(
        errs[0].starts_with("routes[0].shadow.methods[1]: POST can have side effects"),
        "{errs:?}"
    );
    let allowed = base.replace(" ALLOW", ", allow_writes: true");
    parse(&allowed, "t").unwrap();
}

#[test]
fn admin_off_loopback_needs_a_token() {
    let text = r#"
version: 1
admin: { listen: "0.0.0.0:9901" }
backends: { a: { url: "http://127.0.0.1:1" } }
default: a
"#;
    assert!(errors(text)[0].starts_with("admin.listen: 0.0.0.0:9901 is not a loopback address"));
}

#[test]
fn tenant_rules_take_exactly_one_key() {
    let text = r#"
version: 1
backends: { a: { url: "http://127.0.0.1:1" } }
tenant:
  - { header: X-T, cookie: t }
  - { host_label: -1 }
  - { claim: tid }
default: a
"#;
    let errs = errors(text);
    assert_eq!(errs.len(), 3, "{errs:?}");
    assert!(errs[0].starts_with("tenant[0]: give exactly one"));
    assert!(errs[1].starts_with("tenant[1].host_label: -1 is not a label index"));
    assert!(errs[2].starts_with("tenant[2].claim: unknown key"));
}

#[test]
fn backend_urls_are_checked() {
    use compile::parse_endpoint;
    assert_eq!(parse_endpoint("http://10.0.0.5:8080").unwrap().port, 8080);
    assert_eq!(parse_endpoint("http://[::1]:81").unwrap().host, "::1");
    assert!(parse_endpoint("http://x:8080/base").is_err());
    assert!(parse_endpoint("http://user:pw@x").is_err());
    assert!(parse_endpoint("http://x:99999").is_err());
    assert!(parse_endpoint("http://").is_err());
}

#[test]
fn relative_sqlite_stores_are_taken_from_the_config_directory() {
    let dir = std::path::Path::new("/etc/strangler");
    for (url, expected) in [
        (
            "sqlite://strangler.db",
            "sqlite:///etc/strangler/strangler.db",
        ),
        (
            "sqlite:data/s.db?mode=rwc",
            "sqlite:///etc/strangler/data/s.db?mode=rwc",
        ),
        ("sqlite:///var/lib/s.db", "sqlite:///var/lib/s.db"),
        ("sqlite::memory:", "sqlite::memory:"),
        ("postgres://u@h/db", "postgres://u@h/db"),
    ] {
        let store = StoreUrl::new(url).unwrap().relative_to(dir);
        assert_eq!(store.as_str(), expected, "{url}");
    }
}

#[test]
fn a_route_s_stage_follows_its_canary_pins_and_shadow() {
    let stage = |route: &str| {
        let text = format!(
            "version: 1\nbackends:\n  l: {{ url: \"http://127.0.0.1:1\" }}\n  n: {{ url: \"http://127.0.0.1:2\" }}\ndefault: l\nroutes:\n  - name: r\n    match: {{ path: /r }}\n    new: n\n{route}"
        );
        parse(&text, "stage.yaml").unwrap().routes[0].stage()
    };
    assert_eq!(stage(""), Stage::Legacy);
    assert_eq!(stage("    shadow: {}\n"), Stage::Shadow);
    assert_eq!(stage("    canary: 0.5\n    shadow: {}\n"), Stage::Canary);
    assert_eq!(stage("    tenants: { acme: new }\n"), Stage::Canary);
    assert_eq!(stage("    canary: 100\n"), Stage::Migrated);
    assert_eq!(
        stage("    canary: 100\n    tenants: { initech: legacy }\n"),
        Stage::Canary,
        "a tenant still on legacy"
    );
}

/// The one-pass reading of a file (`decode_strict`) must accept exactly what
/// the collecting reading accepts without an error, and read it the same:
/// for every fixture, the example files and YAML's odd corners, either the
/// one-pass reading gives up or both give the same raw configuration.
#[test]
fn the_one_pass_reading_agrees_with_the_collecting_one() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    // (name, text, whether it is well formed and so must be read in one pass)
    let mut texts: Vec<(String, String, bool)> = Vec::new();
    for dir in ["tests/fixtures/valid", "tests/fixtures/invalid"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "yaml") {
                let text = std::fs::read_to_string(&path).unwrap();
                texts.push((path.display().to_string(), text, dir.ends_with("/valid")));
            }
        }
    }
    for file in ["routes.yaml", "packaging/routes.yaml"] {
        texts.push((
            file.into(),
            std::fs::read_to_string(root.join(file)).unwrap(),
            true,
        ));
    }
    let head =
        "version: 1\nbackends: { monolith: { url: \"http://127.0.0.1:1\" } }\ndefault: monolith\n";
    for corner in [
        "routes: [ { name: 5, match: { path: /a }, new: monolith } ]",
        "routes: [ { name: a, match: { path: /a }, new: monolith, canary: \"50\" } ]",
        "routes: [ { name: a, match: { path: /a }, new: monolith, canary: !!str 50 } ]",
        "routes: [ { name: !custom a, match: { path: /a }, new: monolith } ]",
        "routes: [ { name: true, match: { path: /a }, new: monolith } ]",
        "routes: [ { name: ~, match: { path: /a }, new: monolith } ]",
        "routes: [ { name: a, match: { path: /a, methods: [GET, 1] }, new: monolith } ]",
        "routes: [ { name: a, match: { path: /a }, new: monolith, tenants: { 1: new } } ]",
        "routes: [ { name: a, match: { path: /a }, new: monolith, tenants: { x: new, x: legacy } } ]",
        "routes: [ { name: a, name: b, match: { path: /a }, new: monolith } ]",
        "routes: [ { name: a, match: &m { path: /a }, new: monolith }, { name: b, match: *m, new: monolith } ]",
        "base: &b { new: monolith }\nroutes: [ { name: a, match: { path: /a }, <<: *b } ]",
        "routes: [ { name: a, match: { path: /a, headers: { X-A: { env: HOME } } }, new: monolith } ]",
        "routes: [ { name: a, match: { path: /a, headers: { X-A: 1 } }, new: monolith } ]",
        "routes:\n  - name: a\n    match: { path: /a }\n    new: monolith\n    shadow: { percent: 1e1 }",
        "routes: ~",
        "tenant: [ { host_label: \"0\" }, { header: [a] } ]",
        "listen: 8080\nroutes: []",
        "proxy_protocol: yes\nroutes: []",
    ] {
        texts.push((corner.into(), format!("{head}{corner}\n"), false));
    }
    let mut read_in_one_pass = 0;
    for (name, text, well_formed) in &texts {
        let Some(strict) = raw::decode_strict::<raw::RawConfig>(text) else {
            assert!(
                !well_formed,
                "{name}: well formed, but not read in one pass"
            );
            continue;
        };
        read_in_one_pass += 1;
        let value: serde_yaml::Value = serde_yaml::from_str(text)
            .unwrap_or_else(|e| panic!("{name}: read in one pass, but not valid YAML: {e}"));
        let collected = raw::decode_collecting::<raw::RawConfig>(&value);
        assert!(
            collected.errors.is_empty(),
            "{name}: {:?}",
            collected.errors
        );
        assert_eq!(
            format!("{strict:?}"),
            format!("{:?}", collected.value.expect("decoded")),
            "{name}"
        );
    }
    assert!(
        read_in_one_pass >= 8,
        "only {read_in_one_pass} read in one pass"
    );
}
