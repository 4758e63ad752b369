//! Routes indexed by their path condition, so that finding the routes a path
//! can match costs a few hash lookups per path segment, however many routes
//! the table has. The candidates come out in the router's priority order
//! ([`super::precedence::priority_order`]): exact paths, then prefixes from
//! the longest to `/`, then regexes, then routes with no path condition.
//! Within one exact path or one prefix the routes keep that order (more
//! conditions first, then file order), so walking the candidates and taking
//! the first whose other conditions hold is the same decision as trying
//! every route in order.
//!
//! Pure and built once per configuration version; the router and the
//! whole-table reachability check both use it.
//!
//! The maps hash with foldhash (randomly seeded per process) rather than
//! std's SipHash, which cost a third of the route decision: every request
//! looks up its path and each of its segment prefixes. SipHash's strength
//! is against keys chosen to collide as they are inserted; these keys come
//! from the configuration, and a client's path only looks them up.

use std::collections::HashMap;

use regex::RegexSet;

use super::model::{HostMatch, PathMatch, Route};

/// A map keyed by the configuration, looked up per request.
type LookupMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Route indices by path condition, each list in priority order.
#[derive(Debug, Default)]
pub struct PathIndex {
    exact: LookupMap<Box<str>, Vec<usize>>,
    /// Prefixes as stored (no trailing slash), `/` included.
    prefix: LookupMap<Box<str>, Vec<usize>>,
    /// Regex routes in priority order, and one set of their patterns in the
    /// same order, so one pass over a path says which of them match.
    regex: Vec<usize>,
    regex_set: Option<RegexSet>,
    /// Routes with no path condition (host, methods or headers only).
    any: Vec<usize>,
    /// For [`PathIndex::could_cover`]: regex routes by pattern, and routes
    /// with no path condition split by whether they name one exact host
    /// (such a route covers only routes for that same host).
    regex_by_pattern: HashMap<Box<str>, Vec<usize>>,
    any_by_exact_host: HashMap<Box<str>, Vec<usize>>,
    any_without_exact_host: Vec<usize>,
}

impl PathIndex {
    /// `order` is the priority order of `routes`.
    pub fn new(routes: &[Route], order: &[usize]) -> PathIndex {
        let mut index = PathIndex::default();
        for &i in order {
            match &routes[i].matcher.path {
                PathMatch::Exact(p) => index.exact.entry(p.as_str().into()).or_default().push(i),
                PathMatch::Prefix(p) => index.prefix.entry(p.as_str().into()).or_default().push(i),
                PathMatch::Regex(re) => {
                    index.regex.push(i);
                    index
                        .regex_by_pattern
                        .entry(re.as_str().into())
                        .or_default()
                        .push(i);
                }
                PathMatch::Any => {
                    index.any.push(i);
                    match &routes[i].matcher.host {
                        Some(HostMatch::Exact(h)) => index
                            .any_by_exact_host
                            .entry(h.as_str().into())
                            .or_default()
                            .push(i),
                        _ => index.any_without_exact_host.push(i),
                    }
                }
            }
        }
        let patterns = index.regex.iter().map(|&i| match &routes[i].matcher.path {
            PathMatch::Regex(re) => re.as_str(),
            _ => unreachable!("only regex routes are listed"),
        });
        // A set too large for the regex crate's limits is left out; the
        // regex routes are then tried one by one, as before there was an
        // index.
        index.regex_set = RegexSet::new(patterns).ok();
        index
    }

    /// The first route, in priority order, whose path condition holds for
    /// `path` and for which `accept` (the route's other conditions) is true.
    pub fn find(
        &self,
        routes: &[Route],
        path: &str,
        mut accept: impl FnMut(usize) -> bool,
    ) -> Option<usize> {
        if let Some(found) = self
            .exact
            .get(path)
            .and_then(|list| first(list, &mut accept))
        {
            return Some(found);
        }
        for prefix in segment_prefixes(path) {
            if let Some(found) = self.prefix.get(prefix).and_then(|l| first(l, &mut accept)) {
                return Some(found);
            }
        }
        if !self.regex.is_empty() {
            let found = match &self.regex_set {
                Some(set) if !set.is_match(path) => None,
                Some(set) => {
                    let matched = set.matches(path);
                    self.regex
                        .iter()
                        .enumerate()
                        .filter(|&(k, _)| matched.matched(k))
                        .map(|(_, &i)| i)
                        .find(|&i| accept(i))
                }
                None => self
                    .regex
                    .iter()
                    .copied()
                    .find(|&i| routes[i].matcher.path.matches(path) && accept(i)),
            };
            if found.is_some() {
                return found;
            }
        }
        first(&self.any, &mut accept)
    }

    /// Every route whose conditions could cover `route`'s (match every
    /// request it matches): the only routes that can make it unreachable. A
    /// superset, in no particular order; [`super::precedence::shadowed_by`]
    /// decides.
    pub fn could_cover(&self, route: &Route) -> Vec<usize> {
        let mut found = Vec::new();
        let mut add = |list: Option<&Vec<usize>>| found.extend(list.into_iter().flatten().copied());
        let literal = match &route.matcher.path {
            PathMatch::Exact(p) => {
                add(self.exact.get(p.as_str()));
                Some(p.clone())
            }
            PathMatch::Prefix(p) => Some(p.clone()),
            PathMatch::Regex(re) => {
                add(self.regex_by_pattern.get(re.as_str()));
                super::precedence::anchored_literal_prefix(re.as_str())
            }
            PathMatch::Any => None,
        };
        match &literal {
            // `/` last among them, and so once.
            Some(lit) => segment_prefixes(lit).for_each(|p| add(self.prefix.get(p))),
            // `/` covers every path: a regex's and no path condition at all.
            None => add(self.prefix.get("/")),
        }
        add(Some(&self.any_without_exact_host));
        if let Some(HostMatch::Exact(host)) = &route.matcher.host {
            add(self.any_by_exact_host.get(host.as_str()));
        }
        found
    }
}

fn first(list: &[usize], accept: &mut impl FnMut(usize) -> bool) -> Option<usize> {
    list.iter().copied().find(|&i| accept(i))
}

/// Every prefix of `path` that a `path` route can match it on: the whole
/// path, each part before a `/`, longest first, and `/` last.
fn segment_prefixes(path: &str) -> impl Iterator<Item = &str> {
    let whole = (path != "/").then_some(path);
    let inner = path
        .char_indices()
        .rev()
        .filter(|&(i, c)| c == '/' && i > 1)
        .map(move |(i, _)| &path[..i]);
    whole.into_iter().chain(inner).chain(std::iter::once("/"))
}

/// Random route tables for the tests that hold the index to the plain scan
/// it replaces (here, in the router and in the reachability check).
#[cfg(test)]
pub(crate) mod random_tables {
    use proptest::prelude::*;

    use crate::config::{Config, parse};

    const SEGMENTS: [&str; 4] = ["a", "b", "ab", "7"];

    fn segments() -> impl Strategy<Value = String> {
        proptest::collection::vec(proptest::sample::select(&SEGMENTS[..]), 1..4)
            .prop_map(|s| format!("/{}", s.join("/")))
    }

    /// One route's `match:` block, as YAML flow text.
    fn matcher() -> impl Strategy<Value = String> {
        let path = prop_oneof![
            segments().prop_map(|p| format!("path_exact: {p}")),
            segments().prop_map(|p| format!("path: {p}")),
            Just("path: /".to_string()),
            segments().prop_map(|p| format!("path_regex: \"^{p}/[0-9]+$\"")),
            segments().prop_map(|p| format!("path_regex: \"^{p}(/|$)\"")),
            Just("path_regex: \"b$\"".to_string()),
            Just(String::new()),
        ];
        let methods = prop_oneof![
            Just(""),
            Just("methods: [GET]"),
            Just("methods: [GET, POST]")
        ];
        let host = prop_oneof![
            Just(""),
            Just("host: x.example.com"),
            Just("host: y.example.com"),
            Just("host: \"*.example.com\""),
        ];
        let headers = prop_oneof![Just(""), Just("headers: { X-Beta: \"1\" }")];
        (path, methods, host, headers).prop_map(|(p, m, h, hd)| {
            let parts: Vec<&str> = [p.as_str(), m, h, hd]
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect();
            if parts.is_empty() {
                "host: z.example.com".to_string()
            } else {
                parts.join(", ")
            }
        })
    }

    pub fn matchers(max: usize) -> impl Strategy<Value = Vec<String>> {
        proptest::collection::vec(matcher(), 1..max)
    }

    /// A request path made of the tables' segments, a number perhaps.
    pub fn request_path() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            proptest::sample::select(&["a", "b", "ab", "7", "12", "c"][..]),
            0..5,
        )
        .prop_map(|s| format!("/{}", s.join("/")))
    }

    /// The valid table made of these matchers: routes the checker refuses
    /// (covered by an earlier one) are left out until it accepts the rest.
    pub fn valid_table(matchers: &[String]) -> Config {
        let mut kept: Vec<(usize, &String)> = matchers.iter().enumerate().collect();
        loop {
            let mut text = String::from(
                "version: 1\nbackends:\n  monolith: { url: \"http://127.0.0.1:1\" }\n  orders: { url: \"http://127.0.0.1:2\" }\ndefault: monolith\nroutes:\n",
            );
            for (n, m) in &kept {
                text.push_str(&format!(
                    "  - {{ name: r{n}, match: {{ {m} }}, new: orders }}\n"
                ));
            }
            match parse(&text, "random.yaml") {
                Ok(config) => return config,
                Err(errors) => {
                    let refused: Vec<usize> = errors
                        .errors
                        .iter()
                        .filter_map(|e| {
                            let place = e.place.to_string();
                            let rest = place.strip_prefix("routes[")?;
                            rest[..rest.find(']')?].parse().ok()
                        })
                        .collect();
                    assert!(
                        !refused.is_empty(),
                        "a table error not about a route: {errors}"
                    );
                    kept = kept
                        .into_iter()
                        .enumerate()
                        .filter(|(i, _)| !refused.contains(i))
                        .map(|(_, r)| r)
                        .collect();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_prefixes_longest_first_root_last() {
        let all = |p| segment_prefixes(p).collect::<Vec<_>>();
        assert_eq!(all("/a/b/c"), ["/a/b/c", "/a/b", "/a", "/"]);
        assert_eq!(all("/a/b/"), ["/a/b/", "/a/b", "/a", "/"]);
        assert_eq!(all("/"), ["/"]);
        assert_eq!(all("/a"), ["/a", "/"]);
        assert_eq!(all("//a"), ["//a", "/"]);
    }
}
