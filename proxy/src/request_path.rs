//! Request path normalization. Routing and the upstream see the same path:
//! the normal form computed here. Anything that a backend could decode into a
//! different path than the one routed on is refused instead (encoded slashes
//! and backslashes, double encoding, dot segments with parameters, invalid
//! UTF-8 such as overlong encodings), so no request reaches a backend by a path
//! the route table did not intend.
//!
//! A leaf: it uses nothing else in the crate. The router routes on this normal
//! form and the configuration compiler refuses a route path not already in
//! it, so both depend on this module rather than one on the other.

use std::borrow::Cow;
use std::fmt;

/// Why a path was refused (answered with 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    NotAbsolute,
    EncodedSeparator,
    Backslash,
    DoubleEncoding,
    BadEscape,
    ControlCharacter,
    InvalidUtf8,
    DotSegmentParameter,
    EscapesRoot,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PathError::NotAbsolute => "does not start with /",
            PathError::EncodedSeparator => {
                "contains an encoded slash, backslash or semicolon (%2F, %5C, %3B)"
            }
            PathError::Backslash => "contains a backslash",
            PathError::DoubleEncoding => {
                "contains a double-encoded character (%25 followed by an escape)"
            }
            PathError::BadEscape => "contains a malformed percent escape",
            PathError::ControlCharacter => "contains a control character",
            PathError::InvalidUtf8 => "contains percent-encoded bytes that are not valid UTF-8",
            PathError::DotSegmentParameter => "contains a dot segment with a parameter (..;)",
            PathError::EscapesRoot => "climbs above the root with ..",
        })
    }
}

impl std::error::Error for PathError {}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn escape_at(bytes: &[u8], i: usize) -> Option<u8> {
    let hi = hex_value(*bytes.get(i + 1)?)?;
    let lo = hex_value(*bytes.get(i + 2)?)?;
    Some(hi << 4 | lo)
}

/// Returns the normal form of `path` (no query): unreserved characters
/// decoded, other escapes in upper case, empty and `.` segments removed, `..`
/// resolved. A path already in normal form is returned without copying.
pub fn normalize_path(path: &str) -> Result<Cow<'_, str>, PathError> {
    let bytes = path.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(PathError::NotAbsolute);
    }
    if is_plain(bytes) {
        return Ok(Cow::Borrowed(path));
    }

    // Step 1: escapes. Output stays ASCII: high bytes remain escaped.
    let mut decoded: Vec<u8> = Vec::with_capacity(bytes.len());
    let mut high_run: Vec<u8> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let v = escape_at(bytes, i).ok_or(PathError::BadEscape)?;
            if v >= 0x80 {
                high_run.push(v);
                decoded.extend_from_slice(format!("%{v:02X}").as_bytes());
                i += 3;
                continue;
            }
            check_utf8(&mut high_run)?;
            match v {
                b'/' | b'\\' | b';' => return Err(PathError::EncodedSeparator),
                0..=0x1f | 0x7f => return Err(PathError::ControlCharacter),
                b'%' => decoded.extend_from_slice(b"%25"),
                v if is_unreserved(v) => decoded.push(v),
                v => decoded.extend_from_slice(format!("%{v:02X}").as_bytes()),
            }
            i += 3;
            continue;
        }
        check_utf8(&mut high_run)?;
        match b {
            b'\\' => return Err(PathError::Backslash),
            0..=0x1f | 0x7f => return Err(PathError::ControlCharacter),
            _ => decoded.push(b),
        }
        i += 1;
    }
    check_utf8(&mut high_run)?;
    // `%25` followed by two hex digits decodes, a second time, to anything
    // at all: a backend that decodes twice would see another path than the
    // one routed. Checked on the decoded bytes, because decoding can create
    // the pair (`%25%61a` becomes `%25aa`).
    if decoded
        .windows(5)
        .any(|w| w.starts_with(b"%25") && hex_value(w[3]).is_some() && hex_value(w[4]).is_some())
    {
        return Err(PathError::DoubleEncoding);
    }
    // Raw bytes above 0x7f were copied as they are; the input was a &str, so
    // they are valid UTF-8 and the result is too.
    let decoded = String::from_utf8(decoded).map_err(|_| PathError::InvalidUtf8)?;

    // Step 2: segments (RFC 3986 section 5.2.4, but refusing to climb above /).
    let mut segments: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    let parts: Vec<&str> = decoded[1..].split('/').collect();
    let last = parts.len() - 1;
    for (n, segment) in parts.iter().enumerate() {
        let is_last = n == last;
        match *segment {
            "" => trailing_slash = is_last,
            "." => trailing_slash = is_last,
            ".." => {
                if segments.pop().is_none() {
                    return Err(PathError::EscapesRoot);
                }
                trailing_slash = is_last;
            }
            s if s.starts_with(".;") || s.starts_with("..;") => {
                return Err(PathError::DotSegmentParameter);
            }
            s => {
                segments.push(s);
                trailing_slash = false;
            }
        }
    }
    let mut out = String::with_capacity(decoded.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if out.is_empty() || trailing_slash {
        out.push('/');
    }
    if out == path {
        Ok(Cow::Borrowed(path))
    } else {
        Ok(Cow::Owned(out))
    }
}

/// True when nothing in `bytes` can change under normalization: no escape,
/// no backslash, no control character, no `//` and no segment starting with a
/// dot. This is the common case and costs one pass without allocating.
fn is_plain(bytes: &[u8]) -> bool {
    let mut prev = 0u8;
    for &b in bytes {
        if b == b'%' || b == b'\\' || b < 0x20 || b == 0x7f {
            return false;
        }
        if prev == b'/' && (b == b'/' || b == b'.') {
            return false;
        }
        prev = b;
    }
    true
}

fn check_utf8(run: &mut Vec<u8>) -> Result<(), PathError> {
    if !run.is_empty() {
        let ok = std::str::from_utf8(run).is_ok();
        run.clear();
        if !ok {
            return Err(PathError::InvalidUtf8);
        }
    }
    Ok(())
}

/// The path routes are matched on: the normal path without `;parameters`
/// in its segments (`/app;jsessionid=1/x` routes as `/app/x`), as servlet
/// containers read it. The backend still receives the parameters.
pub fn routing_path(normal: &str) -> Cow<'_, str> {
    if !normal.contains(';') {
        return Cow::Borrowed(normal);
    }
    // A segment that is only parameters (`/;x/search`) becomes empty, and
    // empty segments are dropped as normalization drops them.
    let mut out = String::with_capacity(normal.len());
    let mut trailing_slash = false;
    for segment in normal.trim_start_matches('/').split('/') {
        match segment.split(';').next().unwrap_or("") {
            "" => trailing_slash = true,
            s => {
                out.push('/');
                out.push_str(s);
                trailing_slash = false;
            }
        }
    }
    if out.is_empty() || trailing_slash {
        out.push('/');
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn norm(p: &str) -> Result<String, PathError> {
        normalize_path(p).map(|c| c.into_owned())
    }

    #[test]
    fn plain_paths_are_borrowed() {
        assert!(matches!(
            normalize_path("/api/orders/7"),
            Ok(Cow::Borrowed(_))
        ));
        assert!(matches!(normalize_path("/"), Ok(Cow::Borrowed(_))));
        assert!(matches!(normalize_path("/a.b/c."), Ok(Cow::Borrowed(_))));
    }

    #[test]
    fn dot_segments_and_slashes_are_resolved() {
        assert_eq!(norm("/api/../admin").unwrap(), "/admin");
        assert_eq!(norm("/api/./orders").unwrap(), "/api/orders");
        assert_eq!(norm("//api///orders").unwrap(), "/api/orders");
        assert_eq!(norm("/api/orders/").unwrap(), "/api/orders/");
        assert_eq!(norm("/api/orders/.").unwrap(), "/api/orders/");
        assert_eq!(norm("/api/x/..").unwrap(), "/api/");
        assert_eq!(norm("//").unwrap(), "/");
    }

    #[test]
    fn unreserved_escapes_are_decoded_others_uppercased() {
        assert_eq!(norm("/api/%6Frders").unwrap(), "/api/orders");
        assert_eq!(norm("/api/%2e%2e/admin").unwrap(), "/admin");
        assert_eq!(norm("/a%3fb").unwrap(), "/a%3Fb");
        assert_eq!(norm("/caf%C3%A9").unwrap(), "/caf%C3%A9");
    }

    #[test]
    fn ambiguous_paths_are_refused() {
        assert_eq!(norm("/api%2Fadmin"), Err(PathError::EncodedSeparator));
        assert_eq!(norm("/api%2fadmin"), Err(PathError::EncodedSeparator));
        assert_eq!(norm("/api%5Cadmin"), Err(PathError::EncodedSeparator));
        assert_eq!(norm("/api\\admin"), Err(PathError::Backslash));
        assert_eq!(
            norm("/api/%252e%252e/admin"),
            Err(PathError::DoubleEncoding)
        );
        assert_eq!(norm("/api/%252Fadmin"), Err(PathError::DoubleEncoding));
        assert_eq!(norm("/%25%61api"), Err(PathError::DoubleEncoding));
        assert_eq!(norm("/api/..;/admin"), Err(PathError::DotSegmentParameter));
        assert_eq!(
            norm("/api/%2e%2e;/admin"),
            Err(PathError::DotSegmentParameter)
        );
        assert_eq!(norm("/api/%c0%ae%c0%ae/admin"), Err(PathError::InvalidUtf8));
        assert_eq!(norm("/a%zz"), Err(PathError::BadEscape));
        assert_eq!(norm("/a%2"), Err(PathError::BadEscape));
        assert_eq!(norm("/a%00b"), Err(PathError::ControlCharacter));
        assert_eq!(norm("/a\tb"), Err(PathError::ControlCharacter));
        assert_eq!(norm("/../etc/passwd"), Err(PathError::EscapesRoot));
        assert_eq!(norm("api"), Err(PathError::NotAbsolute));
        assert_eq!(norm("*"), Err(PathError::NotAbsolute));
    }

    #[test]
    fn routing_path_drops_parameters_and_the_segments_they_empty() {
        assert_eq!(routing_path("/api/orders"), "/api/orders");
        assert!(matches!(routing_path("/api/orders"), Cow::Borrowed(_)));
        assert_eq!(routing_path("/app;jsessionid=1/x"), "/app/x");
        assert_eq!(routing_path("/;x/search"), "/search");
        assert_eq!(routing_path("/;/search"), "/search");
        assert_eq!(routing_path("/a;b/"), "/a/");
        assert_eq!(routing_path("/;"), "/");
    }

    proptest! {
        #[test]
        fn normalizing_twice_changes_nothing(path in "/[a-z./%25A-F0-9;~_-]{0,40}") {
            if let Ok(once) = normalize_path(&path) {
                let twice = normalize_path(&once).expect("a normal path stays valid");
                prop_assert_eq!(once.as_ref(), twice.as_ref());
            }
        }

        #[test]
        fn normal_paths_have_no_dot_or_empty_segments(path in "/[a-z./%2eE]{0,40}") {
            if let Ok(n) = normalize_path(&path) {
                let body = n.trim_end_matches('/');
                for seg in body.split('/').skip(1) {
                    prop_assert!(seg != "." && seg != ".." && !seg.is_empty(), "{n}");
                }
            }
        }
    }
}
