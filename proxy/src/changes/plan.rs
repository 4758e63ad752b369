//! What a change request amounts to: the edits of the configuration text
//! that make it, decided from the checked configuration alone (no I/O). The
//! proxy plans on the table it serves, the CLI without a proxy on the file
//! it reads; both get the same edits.

use rollback::edit::Edit;

use super::{ChangeError, ChangeRequest};
use crate::config::{Config, Side};

/// The edits `request` makes to `config`, in order. An empty list means
/// there is nothing to change (a rollback of a route already on legacy).
/// A route the configuration does not have is an error, whatever else the
/// request names.
pub fn plan(config: &Config, request: &ChangeRequest) -> Result<Vec<Edit>, ChangeError> {
    match request {
        ChangeRequest::Canary { route, percent } => {
            config
                .route(route)
                .ok_or_else(|| ChangeError::UnknownRoute(route.clone()))?;
            Ok(vec![Edit::SetCanary {
                route: route.clone(),
                percent: percent.to_string(),
            }])
        }
        ChangeRequest::Rollback { routes, tenant } => {
            let mut edits = Vec::new();
            for name in routes {
                let route = config
                    .route(name)
                    .ok_or_else(|| ChangeError::UnknownRoute(name.clone()))?;
                match tenant {
                    Some(t) if route.pin_for(t) != Some(Side::Legacy) => {
                        edits.push(pin_to_legacy(name, t))
                    }
                    Some(_) => {}
                    None => {
                        if route.canary.get() != 0.0 {
                            edits.push(Edit::SetCanary {
                                route: name.clone(),
                                percent: "0".into(),
                            });
                        }
                        edits.extend(
                            route
                                .pins
                                .iter()
                                .filter(|(_, side)| *side == Side::New)
                                .map(|(t, _)| pin_to_legacy(name, t)),
                        );
                    }
                }
            }
            Ok(edits)
        }
    }
}

fn pin_to_legacy(route: &str, tenant: &str) -> Edit {
    Edit::SetPin {
        route: route.to_string(),
        tenant: tenant.to_string(),
        side: "legacy".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Percent, parse};

    const FILE: &str = r#"
version: 1
backends:
  legacy: { url: "http://127.0.0.1:1" }
  new: { url: "http://127.0.0.1:2" }
default: legacy
routes:
  - name: orders
    match: { path: /api/orders }
    new: new
    canary: 25
    tenants: { acme: new, globex: legacy, initech: new }
  - name: users
    match: { path: /api/users }
    new: new
"#;

    fn config() -> Config {
        parse(FILE, "plan test").expect("valid")
    }

    fn rollback(routes: &[&str], tenant: Option<&str>) -> ChangeRequest {
        ChangeRequest::Rollback {
            routes: routes.iter().map(|r| r.to_string()).collect(),
            tenant: tenant.map(str::to_string),
        }
    }

    #[test]
    fn a_canary_change_is_one_edit() {
        let request = ChangeRequest::Canary {
            route: "users".into(),
            percent: Percent::parse("12.5").unwrap(),
        };
        assert_eq!(
            plan(&config(), &request).unwrap(),
            vec![Edit::SetCanary {
                route: "users".into(),
                percent: "12.5".into()
            }]
        );
    }

    #[test]
    fn a_rollback_zeroes_the_canary_and_moves_every_pin_on_new() {
        assert_eq!(
            plan(&config(), &rollback(&["orders"], None)).unwrap(),
            vec![
                Edit::SetCanary {
                    route: "orders".into(),
                    percent: "0".into()
                },
                pin_to_legacy("orders", "acme"),
                pin_to_legacy("orders", "initech"),
            ]
        );
    }

    #[test]
    fn a_route_already_on_legacy_needs_nothing() {
        assert_eq!(
            plan(&config(), &rollback(&["users"], None)).unwrap(),
            Vec::new()
        );
    }

    #[test]
    fn a_tenant_rollback_pins_only_that_tenant() {
        let c = config();
        assert_eq!(
            plan(&c, &rollback(&["orders"], Some("acme"))).unwrap(),
            vec![pin_to_legacy("orders", "acme")]
        );
        // Already on legacy: nothing; not pinned yet: pinned.
        assert_eq!(
            plan(&c, &rollback(&["orders"], Some("globex"))).unwrap(),
            Vec::new()
        );
        assert_eq!(
            plan(&c, &rollback(&["users"], Some("hooli"))).unwrap(),
            vec![pin_to_legacy("users", "hooli")]
        );
    }

    #[test]
    fn an_unknown_route_is_refused_even_beside_known_ones() {
        for request in [
            rollback(&["orders", "nope"], None),
            ChangeRequest::Canary {
                route: "nope".into(),
                percent: Percent::parse("5").unwrap(),
            },
        ] {
            match plan(&config(), &request) {
                Err(ChangeError::UnknownRoute(r)) => assert_eq!(r, "nope"),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn the_planned_edits_make_a_valid_file_that_says_what_was_asked() {
        let c = config();
        let edits = plan(&c, &rollback(&["orders"], None)).unwrap();
        let text = rollback::edit::apply_all(FILE, &edits).unwrap();
        let after = parse(&text, "after").unwrap();
        let orders = after.route("orders").unwrap();
        assert_eq!(orders.canary.get(), 0.0);
        assert!(orders.pins.iter().all(|(_, s)| *s == Side::Legacy));
        // Planned again on the result: nothing left to do.
        assert_eq!(plan(&after, &rollback(&["orders"], None)).unwrap(), vec![]);
    }
}
