//! Precedence between routes: the order in which the router tries them, and
//! when one route covers another so completely that the later one can never
//! be chosen. Pure functions of the checked model, kept apart from both the
//! router (which tries routes in this order) and the compiler (which refuses
//! a route that another always beats), so that neither depends on the other
//! and both are sure to agree.

use std::cmp::Reverse;

use super::model::{HostMatch, PathMatch, Route, RouteMatch};

/// How specific a route is; larger sorts first.
fn specificity(m: &RouteMatch) -> (u8, usize, usize) {
    let (rank, len) = match &m.path {
        PathMatch::Exact(p) => (3, p.len()),
        PathMatch::Prefix(p) => (2, p.len()),
        PathMatch::Regex(_) => (1, 0),
        PathMatch::Any => (0, 0),
    };
    let conditions = m.methods.is_some() as usize + m.host.is_some() as usize + m.headers.len();
    (rank, len, conditions)
}

/// Route indices, most specific first: exact before prefix before regex,
/// longer prefixes first, then routes with more conditions (host, methods,
/// headers); ties keep file order.
pub fn priority_order(routes: &[Route]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..routes.len()).collect();
    // Stable sort: equal keys keep file order.
    order.sort_by_key(|&i| Reverse(specificity(&routes[i].matcher)));
    order
}

/// True when `earlier` (tried first) matches every request `later` would
/// match, so `later` can never be chosen. Conservative for regexes: only an
/// identical regex is known to cover another.
pub fn shadowed_by(later: &Route, earlier: &Route) -> bool {
    let (l, e) = (&later.matcher, &earlier.matcher);
    let path_covered = match (&e.path, &l.path) {
        (PathMatch::Any, _) => true,
        (PathMatch::Exact(a), PathMatch::Exact(b)) => a == b,
        (PathMatch::Prefix(_), PathMatch::Exact(x) | PathMatch::Prefix(x)) => e.path.matches(x),
        // A catch-all prefix matches every path, so a route with no path
        // (host or headers only) or a regex route ranks below it and loses.
        (PathMatch::Prefix(p), PathMatch::Any | PathMatch::Regex(_)) if p == "/" => true,
        // Every path an anchored regex matches starts with its literal
        // prefix; when that prefix lies under the prefix route's path (on a
        // segment boundary), the prefix route sees each of those paths first.
        (PathMatch::Prefix(p), PathMatch::Regex(re)) => anchored_literal_prefix(re.as_str())
            .is_some_and(|lit| lit.len() > p.len() && e.path.matches(&lit)),
        (PathMatch::Regex(a), PathMatch::Regex(b)) => a.as_str() == b.as_str(),
        _ => false,
    };
    let methods_covered = match (&e.methods, &l.methods) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(em), Some(lm)) => lm.iter().all(|m| em.contains(m)),
    };
    let host_covered = match (&e.host, &l.host) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(HostMatch::Exact(a)), Some(HostMatch::Exact(b))) => a == b,
        (Some(HostMatch::Suffix(s)), Some(HostMatch::Exact(b))) => b.ends_with(s.as_str()),
        (Some(HostMatch::Suffix(a)), Some(HostMatch::Suffix(b))) => b.ends_with(a.as_str()),
        (Some(HostMatch::Exact(_)), Some(HostMatch::Suffix(_))) => false,
    };
    let headers_covered = e.headers.iter().all(|h| l.headers.contains(h));
    path_covered && methods_covered && host_covered && headers_covered
}

/// The text every match of `pattern` starts with, when the pattern is
/// anchored with `^` and nothing can make a match start otherwise: `None`
/// for an unanchored pattern, a leading flag group, or an alternation at the
/// top level (`^/a|/b`). Conservative: it stops at the first character that
/// is not plainly literal, before a literal that a quantifier may make
/// optional (`^/ab?` gives `/a`).
pub fn anchored_literal_prefix(pattern: &str) -> Option<String> {
    let rest = pattern.strip_prefix('^')?;
    if has_top_level_alternation(rest) {
        return None;
    }
    let mut literal = String::new();
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        let next = match c {
            '\\' => match chars.next() {
                Some(e) if e.is_ascii_punctuation() => e,
                _ => break,
            },
            '.' | '+' | '*' | '?' | '(' | ')' | '|' | '[' | ']' | '{' | '}' | '^' | '$' => break,
            c => c,
        };
        // `x*`, `x?` and `x{0,n}` may match without `x`.
        if matches!(chars.peek(), Some('*' | '?' | '{')) {
            break;
        }
        literal.push(next);
    }
    Some(literal)
}

fn has_top_level_alternation(pattern: &str) -> bool {
    let (mut depth, mut in_class, mut escaped) = (0usize, false, false);
    for c in pattern.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '[' => in_class = true,
            ']' => in_class = false,
            _ if in_class => {}
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            '|' if depth == 0 => return true,
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_prefixes_of_anchored_regexes() {
        let cases = [
            ("^/api/orders/[0-9]+$", Some("/api/orders/")),
            ("^/api/orders$", Some("/api/orders")),
            ("^/a\\.b/c", Some("/a.b/c")),
            ("^/ab?", Some("/a")),
            ("^/ab*c", Some("/a")),
            ("^/a+", Some("/a")),
            ("^/api/(v1|v2)/x", Some("/api/")),
            ("^/api\\d", Some("/api")),
            ("/api/orders", None),
            ("^/a|/b", None),
            ("(?i)^/api", None),
            ("^[/]api", Some("")),
        ];
        for (pattern, expected) in cases {
            assert_eq!(
                anchored_literal_prefix(pattern).as_deref(),
                expected,
                "{pattern}"
            );
        }
    }
}
