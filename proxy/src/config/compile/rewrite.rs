//! A route's `rewrite:` block: `strip_prefix` and/or `add_prefix`, or
//! `regex` with `to`. A rewrite whose result could not be a request path is
//! refused here: prefixes in normal form, `to` an absolute path in normal
//! form whose `$N` groups exist in the regex. A strip that the route's own
//! prefix could never start with is refused too, since it would never apply.

use super::matching::{path_regex, route_path};
use crate::config::error::{ErrorSink, Place};
use crate::config::model::{PathMatch, Rewrite};
use crate::config::raw::RawRewrite;

pub(super) fn compile_rewrite(
    sink: &mut ErrorSink,
    place: &Place,
    raw: &RawRewrite,
    path: Option<&PathMatch>,
) -> Option<Rewrite> {
    let mark = sink.mark();
    let prefix_keys = raw.strip_prefix.is_some() || raw.add_prefix.is_some();
    let regex_keys = raw.regex.is_some() || raw.to.is_some();
    let rewrite = match (prefix_keys, regex_keys) {
        (true, true) => {
            sink.push(
                place.clone(),
                "give strip_prefix/add_prefix or regex/to, not both",
            );
            None
        }
        (false, false) => {
            sink.push(
                place.clone(),
                "is empty; give strip_prefix and/or add_prefix, or regex with to",
            );
            None
        }
        (true, false) => prefix_rewrite(sink, place, raw, path),
        (false, true) => regex_rewrite(sink, place, raw),
    };
    if sink.clean_since(mark) {
        rewrite
    } else {
        None
    }
}

fn prefix(sink: &mut ErrorSink, place: &Place, text: Option<&String>) -> Option<String> {
    let text = text?;
    let normal = sink.check(place, route_path(text))?;
    if normal == "/" {
        sink.push(place.clone(), "is / (a prefix of every path; leave it out)");
        return None;
    }
    Some(normal.trim_end_matches('/').to_string())
}

fn prefix_rewrite(
    sink: &mut ErrorSink,
    place: &Place,
    raw: &RawRewrite,
    path: Option<&PathMatch>,
) -> Option<Rewrite> {
    let strip = prefix(sink, &place.key("strip_prefix"), raw.strip_prefix.as_ref());
    let add = prefix(sink, &place.key("add_prefix"), raw.add_prefix.as_ref());
    if let (Some(s), Some(PathMatch::Prefix(p) | PathMatch::Exact(p))) = (&strip, path) {
        let covers = PathMatch::Prefix(s.clone()).matches(p);
        if !covers {
            sink.push(
                place.key("strip_prefix"),
                format!("{s} is not a prefix of the route's path {p}, so it would never apply"),
            );
        }
    }
    Some(Rewrite::Prefix { strip, add })
}

fn regex_rewrite(sink: &mut ErrorSink, place: &Place, raw: &RawRewrite) -> Option<Rewrite> {
    let regex = match &raw.regex {
        None => {
            sink.push(place.key("regex"), "missing; `to` needs a regex to replace");
            None
        }
        Some(r) => sink.check(&place.key("regex"), path_regex(r)),
    };
    let to = match &raw.to {
        None => {
            sink.push(
                place.key("to"),
                "missing; say what the path becomes (e.g. /orders/$1)",
            );
            return None;
        }
        Some(t) => t,
    };
    let regex = regex?;
    // Groups stand for parts of a normalized path; the literal text around
    // them must be a normal path by itself.
    let groups = regex.captures_len() - 1;
    let mut literal = String::new();
    let mut rest = to.as_str();
    while let Some(i) = rest.find('$') {
        literal.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (reference, len) = if let Some(named) = after.strip_prefix('{') {
            match named.find('}') {
                Some(end) => (&named[..end], end + 2),
                None => {
                    sink.push(place.key("to"), format!("{to:?} has an unclosed ${{"));
                    return None;
                }
            }
        } else {
            let end = after
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(after.len());
            (&after[..end], end)
        };
        let known = match reference.parse::<usize>() {
            Ok(n) => n <= groups,
            Err(_) => {
                !reference.is_empty() && regex.capture_names().flatten().any(|n| n == reference)
            }
        };
        if !known {
            sink.push(
                place.key("to"),
                format!("{to:?} refers to group ${reference}, but the regex has {groups} group(s)"),
            );
            return None;
        }
        literal.push('x');
        rest = &after[len..];
    }
    literal.push_str(rest);
    if let Err(e) = route_path(&literal) {
        let message = e.replace(&format!("{literal:?}"), &format!("{to:?}"));
        sink.push(place.key("to"), message);
        return None;
    }
    Some(Rewrite::Regex {
        regex,
        to: to.clone(),
    })
}
