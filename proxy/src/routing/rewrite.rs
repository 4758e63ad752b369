//! What a backend receives: the path after a route's `rewrite` (new side
//! only) and the `Host` its `host` setting asks for. Pure, shared by the data
//! plane, the shadow copy and `strangler explain`.

use std::borrow::Cow;

use crate::config::model::{PathMatch, Rewrite, Route, Side, UpstreamHost};
use crate::request_path::normalize_path;

/// The path (normal form, no query) that `side` of `route` receives for a
/// request routed on `path`. Legacy gets it unchanged. `None` when a regex
/// rewrite made something that is not a path (an empty group leaving `//`
/// is fine: it normalizes; a group holding `..` is not).
pub fn upstream_path<'a>(route: &Route, side: Side, path: &'a str) -> Option<Cow<'a, str>> {
    let rewrite = match (&route.rewrite, side) {
        (Some(r), Side::New) => r,
        _ => return Some(Cow::Borrowed(path)),
    };
    let out = apply(rewrite, path);
    if let Cow::Borrowed(_) = out {
        return Some(out);
    }
    match normalize_path(&out) {
        Ok(Cow::Borrowed(_)) => Some(out),
        Ok(Cow::Owned(normal)) => Some(Cow::Owned(normal)),
        Err(_) => None,
    }
}

fn apply<'a>(rewrite: &Rewrite, path: &'a str) -> Cow<'a, str> {
    match rewrite {
        Rewrite::Prefix { strip, add } => {
            let mut rest = Cow::Borrowed(path);
            if let Some(strip) = strip {
                if PathMatch::Prefix(strip.clone()).matches(path) {
                    let tail = &path[strip.len()..];
                    rest = Cow::Borrowed(if tail.is_empty() { "/" } else { tail });
                }
            }
            match add {
                None => rest,
                Some(add) if rest == "/" => Cow::Owned(add.clone()),
                Some(add) => Cow::Owned(format!("{add}{rest}")),
            }
        }
        Rewrite::Regex { regex, to } => match regex.captures(path) {
            None => Cow::Borrowed(path),
            Some(caps) => {
                let mut out = String::new();
                caps.expand(to, &mut out);
                Cow::Owned(out)
            }
        },
    }
}

/// A path with the request's query, if it had one: rewrites change the path
/// and keep the query.
pub fn with_query(path: &str, query: Option<&str>) -> String {
    match query {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    }
}

/// The `Host` header a backend gets: its `host` setting, or the client's.
pub fn upstream_host<'a>(
    setting: &'a UpstreamHost,
    client_host: Option<&'a str>,
) -> Option<&'a str> {
    setting.value().or(client_host)
}

#[cfg(test)]
mod tests {
    use super::*;
    use regex::Regex;

    fn prefix(strip: Option<&str>, add: Option<&str>) -> Rewrite {
        Rewrite::Prefix {
            strip: strip.map(str::to_string),
            add: add.map(str::to_string),
        }
    }

    #[test]
    fn prefixes_are_swapped_on_whole_segments() {
        let r = prefix(Some("/api"), Some("/v2"));
        assert_eq!(apply(&r, "/api/orders/7"), "/v2/orders/7");
        assert_eq!(apply(&r, "/api"), "/v2");
        // Not a whole segment: not stripped, still prefixed.
        assert_eq!(apply(&r, "/apix/1"), "/v2/apix/1");
        assert_eq!(apply(&prefix(Some("/api"), None), "/api"), "/");
        assert_eq!(apply(&prefix(None, Some("/v2")), "/"), "/v2");
    }

    #[test]
    fn regexes_replace_the_whole_path_with_groups() {
        let r = Rewrite::Regex {
            regex: Regex::new("^/api/orders/([0-9]+)$").unwrap(),
            to: "/orders/$1".to_string(),
        };
        assert_eq!(apply(&r, "/api/orders/42"), "/orders/42");
        assert_eq!(apply(&r, "/api/orders/x"), "/api/orders/x");
        let named = Rewrite::Regex {
            regex: Regex::new("^/u/(?P<id>[^/]+)/(.*)$").unwrap(),
            to: "/users/${id}/$2".to_string(),
        };
        assert_eq!(apply(&named, "/u/7/a/b"), "/users/7/a/b");
    }

    #[test]
    fn hosts() {
        let client = Some("shop.example.com");
        assert_eq!(upstream_host(&UpstreamHost::Preserve, client), client);
        let b = UpstreamHost::Backend("orders.internal:8443".into());
        assert_eq!(upstream_host(&b, client), Some("orders.internal:8443"));
    }
}
