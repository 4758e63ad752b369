use super::*;

const FILE: &str = r#"# Strangler routes — owned by the platform team.
version: 1
backends:
  monolith: { url: "http://10.0.0.5:8080" }   # the old world
  orders: { url: "http://orders:8080" }
default: monolith
routes:
  - name: orders-read        # reads first
    match:
      path: /api/orders
    new: orders
    canary: 25               # ramping
    sticky: tenant
    tenants: { acme: new, "initech": legacy }
    shadow:
      percent: 100
  - name: orders-write
    match: { path: /api/orders, methods: [POST] }
    new: orders
    tenants:
      acme: new
  - { name: export, match: { path_exact: /export }, new: orders, canary: 100 }
  - { name: flowless, match: { path: /f }, new: orders }
  - name: bare
    match: { path: /bare }
    new: orders
"#;

fn canary(route: &str, p: &str) -> Edit {
    Edit::SetCanary {
        route: route.into(),
        percent: p.into(),
    }
}

fn pin(route: &str, tenant: &str, side: &str) -> Edit {
    Edit::SetPin {
        route: route.into(),
        tenant: tenant.into(),
        side: side.into(),
    }
}

/// The lines that differ between two texts.
fn changed_lines(a: &str, b: &str) -> Vec<(String, String)> {
    let (la, lb): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    assert_eq!(la.len(), lb.len(), "line count changed:\n{b}");
    la.iter()
        .zip(&lb)
        .filter(|(x, y)| x != y)
        .map(|(x, y)| (x.to_string(), y.to_string()))
        .collect()
}

#[test]
fn a_canary_change_touches_only_its_value() {
    let out = apply(FILE, &canary("orders-read", "0")).unwrap();
    assert_eq!(
        changed_lines(FILE, &out),
        vec![(
            "    canary: 25               # ramping".into(),
            "    canary: 0               # ramping".into()
        )]
    );
    let out = apply(FILE, &canary("export", "12.5")).unwrap();
    assert_eq!(
        changed_lines(FILE, &out),
        vec![(
            "  - { name: export, match: { path_exact: /export }, new: orders, canary: 100 }".into(),
            "  - { name: export, match: { path_exact: /export }, new: orders, canary: 12.5 }"
                .into()
        )]
    );
}

#[test]
fn a_missing_canary_is_inserted_in_the_mappings_style() {
    let out = apply(FILE, &canary("flowless", "0")).unwrap();
    assert!(
        out.contains("  - { name: flowless, match: { path: /f }, new: orders, canary: 0 }\n"),
        "{out}"
    );
    let out = apply(FILE, &canary("bare", "0")).unwrap();
    assert!(out.ends_with("    new: orders\n    canary: 0\n"), "{out}");
    let out = apply(FILE, &canary("orders-write", "5")).unwrap();
    assert!(
        out.contains("    tenants:\n      acme: new\n    canary: 5\n  - { name: export"),
        "{out}"
    );
}

#[test]
fn pins_are_set_or_added() {
    let out = apply(FILE, &pin("orders-read", "acme", "legacy")).unwrap();
    assert_eq!(
        changed_lines(FILE, &out),
        vec![(
            r#"    tenants: { acme: new, "initech": legacy }"#.into(),
            r#"    tenants: { acme: legacy, "initech": legacy }"#.into()
        )]
    );
    let out = apply(FILE, &pin("orders-read", "umbrella corp", "legacy")).unwrap();
    assert!(
        out.contains(r#"    tenants: { acme: new, "initech": legacy, "umbrella corp": legacy }"#),
        "{out}"
    );
    let out = apply(FILE, &pin("orders-write", "globex", "legacy")).unwrap();
    assert!(
        out.contains("    tenants:\n      acme: new\n      globex: legacy\n"),
        "{out}"
    );
    let out = apply(FILE, &pin("bare", "acme", "legacy")).unwrap();
    assert!(
        out.ends_with("    new: orders\n    tenants: { acme: legacy }\n"),
        "{out}"
    );
}

#[test]
fn edits_compose_and_the_result_parses() {
    let out = apply_all(
        FILE,
        &[
            canary("orders-read", "0"),
            pin("orders-read", "acme", "legacy"),
            canary("bare", "0"),
        ],
    )
    .unwrap();
    let (c, pins) = route_state(&out, "orders-read").unwrap();
    assert_eq!(c.as_deref(), Some("0"));
    assert_eq!(
        pins,
        vec![
            ("acme".into(), "legacy".into()),
            ("initech".into(), "legacy".into())
        ]
    );
    assert_eq!(
        route_names(&out).unwrap(),
        vec!["orders-read", "orders-write", "export", "flowless", "bare"]
    );
    // Comments survive.
    assert!(out.contains("# the old world") && out.contains("# reads first"));
}

#[test]
fn errors_are_clear() {
    assert_eq!(
        apply(FILE, &canary("nope", "0")),
        Err(EditError::NoRoute("nope".into()))
    );
    assert!(matches!(
        apply("routes: [", &canary("a", "0")),
        Err(EditError::Syntax(_))
    ));
    assert_eq!(
        apply("version: 1\n", &canary("a", "0")),
        Err(EditError::NoRoutes)
    );
    let weird = "routes:\n  - name: a\n    canary: [1]\n";
    assert!(matches!(
        apply(weird, &canary("a", "0")),
        Err(EditError::NotScalar(_))
    ));
}

#[test]
fn unicode_before_the_edit_keeps_offsets_right() {
    let text = "# café ☕ routes\nroutes:\n  - name: a # ünïcode\n    canary: 10\n";
    let out = apply(text, &canary("a", "0")).unwrap();
    assert_eq!(
        out,
        "# café ☕ routes\nroutes:\n  - name: a # ünïcode\n    canary: 0\n"
    );
}
