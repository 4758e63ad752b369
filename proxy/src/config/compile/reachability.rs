//! Whole-table reachability: a route that an earlier route (in the order the
//! router tries them) always beats can never be chosen. That is almost always
//! a mistake in ordering or a leftover, so it is refused rather than silently
//! ignored. The order and the covering relation are the router's own
//! ([`crate::config::precedence`]), so the two cannot disagree.

use super::routes::CompiledRoutes;
use crate::config::error::{ErrorSink, Place};
use crate::config::model::Route;
use crate::config::path_index::PathIndex;
use crate::config::precedence::{priority_order, shadowed_by};

pub(super) fn check_reachability(sink: &mut ErrorSink, compiled: &CompiledRoutes) {
    let routes = &compiled.routes;
    let file_index = &compiled.file_indices;
    let mut unreachable: Vec<(usize, String)> = covered_routes(routes)
        .into_iter()
        .map(|(later, earlier)| {
            (
                file_index[later],
                format!(
                    "route {:?} can never match: route {:?} (routes[{}]) matches every request it would",
                    routes[later].name.as_str(),
                    routes[earlier].name.as_str(),
                    file_index[earlier],
                ),
            )
        })
        .collect();
    // Reported in file order, not in the order the router tries routes.
    unreachable.sort_by_key(|(i, _)| *i);
    for (i, message) in unreachable {
        sink.push(Place::root().key("routes").index(i).key("match"), message);
    }
}

/// Each route that can never be chosen, with the first route in priority
/// order that covers it (one reason is enough to act on). Only routes the
/// path index offers can cover a route, so this grows with the table, not
/// with its square.
pub(crate) fn covered_routes(routes: &[Route]) -> Vec<(usize, usize)> {
    let order = priority_order(routes);
    let mut position = vec![0; routes.len()];
    for (pos, &i) in order.iter().enumerate() {
        position[i] = pos;
    }
    let index = PathIndex::new(routes, &order);
    order
        .iter()
        .enumerate()
        .filter_map(|(pos, &later)| {
            index
                .could_cover(&routes[later])
                .into_iter()
                .filter(|&earlier| position[earlier] < pos)
                .filter(|&earlier| shadowed_by(&routes[later], &routes[earlier]))
                .min_by_key(|&earlier| position[earlier])
                .map(|earlier| (later, earlier))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;
    use crate::config::path_index::random_tables::{matchers, valid_table};
    use proptest::prelude::*;

    /// The check before the index: every earlier route tried in turn.
    fn plain_scan(routes: &[Route]) -> Vec<(usize, usize)> {
        let order = priority_order(routes);
        order
            .iter()
            .enumerate()
            .filter_map(|(pos, &later)| {
                order[..pos]
                    .iter()
                    .find(|&&earlier| shadowed_by(&routes[later], &routes[earlier]))
                    .map(|&earlier| (later, earlier))
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        /// Two valid random tables put together cover each other's routes
        /// in many ways; the indexed check finds exactly the routes, and
        /// names exactly the covering routes, that the plain scan does.
        #[test]
        fn finds_what_the_plain_scan_finds(one in matchers(16), two in matchers(16)) {
            let mut routes = valid_table(&one).routes;
            routes.extend(valid_table(&two).routes);
            let mut indexed = covered_routes(&routes);
            indexed.sort();
            let mut plain = plain_scan(&routes);
            plain.sort();
            prop_assert_eq!(indexed, plain);
        }
    }

    fn errors(text: &str) -> Vec<String> {
        match parse(text, "t.yaml") {
            Ok(_) => panic!("expected errors"),
            Err(e) => e.errors.iter().map(|e| e.to_string()).collect(),
        }
    }

    const HEAD: &str = r#"
version: 1
backends:
  monolith: { url: "http://127.0.0.1:1" }
  orders: { url: "http://127.0.0.1:2" }
default: monolith
routes:
"#;

    /// The place and the earlier route are the file's, even where a route
    /// with errors in between was left out of the compiled table.
    #[test]
    fn reports_the_first_covering_route_in_file_terms() {
        let text = format!(
            "{HEAD}{}",
            r#"
  - name: all-orders
    match: { path: /api/orders }
    new: orders
  - name: broken
    match: { path: /api/broken }
    new: nowhere
  - name: order-by-id
    match: { path_regex: "^/api/orders/[0-9]+$" }
    new: orders
  - name: orders-again
    match: { path: /api/orders }
    new: orders
"#
        );
        assert_eq!(
            errors(&text),
            [
                "routes[1].new: unknown backend \"nowhere\" (declared: monolith, orders)",
                "routes[2].match: route \"order-by-id\" can never match: route \"all-orders\" (routes[0]) matches every request it would",
                "routes[3].match: route \"orders-again\" can never match: route \"all-orders\" (routes[0]) matches every request it would",
            ]
        );
    }

    /// A more specific route listed later is tried first, so it is not
    /// shadowed; the broader one is reachable too.
    #[test]
    fn a_more_specific_route_listed_later_is_reachable() {
        let text = format!(
            "{HEAD}{}",
            r#"
  - name: orders
    match: { path: /api/orders }
    new: orders
  - name: orders-export
    match: { path_exact: /api/orders/export }
    new: orders
"#
        );
        assert!(parse(&text, "t.yaml").is_ok());
    }
}
