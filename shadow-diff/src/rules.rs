//! What a comparison ignores or relaxes: headers, JSON fields (JSON Pointers
//! with `*` for any one key or index), arrays compared as sets, and a
//! relative tolerance on numbers.

use std::fmt;

/// Headers that differ between any two servers or any two requests, and are
/// never compared: dates, server names, request ids and tracing, and the
/// framing of the body (which is compared decoded).
pub const DEFAULT_IGNORED_HEADERS: &[&str] = &[
    "date",
    "server",
    "x-request-id",
    "x-correlation-id",
    "x-trace-id",
    "traceparent",
    "tracestate",
    "x-amzn-trace-id",
    "via",
    "age",
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "content-encoding",
];

/// One step of a JSON Pointer pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Key(String),
    Any,
}

/// A JSON Pointer (RFC 6901) in which a `*` segment stands for any one key or
/// array index: `/items/*/etag`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPattern {
    text: String,
    segments: Vec<Segment>,
}

impl FieldPattern {
    pub fn parse(text: &str) -> Result<FieldPattern, String> {
        if text.is_empty() {
            return Ok(FieldPattern {
                text: String::new(),
                segments: Vec::new(),
            });
        }
        let Some(rest) = text.strip_prefix('/') else {
            return Err(format!(
                "{text:?} is not a JSON Pointer (it starts with /, e.g. /meta/generated_at)"
            ));
        };
        let segments = rest
            .split('/')
            .map(|s| match s {
                "*" => Segment::Any,
                s => Segment::Key(s.replace("~1", "/").replace("~0", "~")),
            })
            .collect();
        Ok(FieldPattern {
            text: text.to_string(),
            segments,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    fn segment_matches(pattern: &Segment, step: &str) -> bool {
        match pattern {
            Segment::Any => true,
            Segment::Key(k) => k == step,
        }
    }

    /// True when `path` is this field or inside it.
    pub fn covers(&self, path: &[String]) -> bool {
        self.segments.len() <= path.len()
            && self
                .segments
                .iter()
                .zip(path)
                .all(|(p, s)| Self::segment_matches(p, s))
    }

    /// True when `path` is exactly this field.
    pub fn is(&self, path: &[String]) -> bool {
        self.segments.len() == path.len() && self.covers(path)
    }
}

impl fmt::Display for FieldPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A route's comparison rules (its `shadow.compare` block).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CompareRules {
    /// Lower-case header names ignored in addition to the defaults.
    pub ignore_headers: Vec<String>,
    pub ignore_fields: Vec<FieldPattern>,
    pub unordered_arrays: Vec<FieldPattern>,
    /// Relative: numbers a and b are equal when |a-b| <= tolerance * max(|a|,|b|).
    pub numeric_tolerance: f64,
}

impl CompareRules {
    pub fn header_ignored(&self, name: &str) -> bool {
        DEFAULT_IGNORED_HEADERS.contains(&name) || self.ignore_headers.iter().any(|h| h == name)
    }

    pub fn field_ignored(&self, path: &[String]) -> bool {
        self.ignore_fields.iter().any(|p| p.covers(path))
    }

    pub fn unordered(&self, path: &[String]) -> bool {
        self.unordered_arrays.iter().any(|p| p.is(path))
    }

    pub fn numbers_equal(&self, a: f64, b: f64) -> bool {
        if a == b {
            return true;
        }
        let scale = a.abs().max(b.abs());
        (a - b).abs() <= self.numeric_tolerance * scale
    }
}

/// Escapes one key for a JSON Pointer.
pub fn escape_segment(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// The JSON Pointer of a path.
pub fn pointer(path: &[String]) -> String {
    let mut out = String::new();
    for s in path {
        out.push('/');
        out.push_str(&escape_segment(s));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn patterns() {
        let p = FieldPattern::parse("/items/*/etag").unwrap();
        assert!(p.covers(&path(&["items", "3", "etag"])));
        assert!(p.covers(&path(&["items", "3", "etag", "x"])));
        assert!(!p.covers(&path(&["items", "3"])));
        assert!(!p.is(&path(&["items", "3", "etag", "x"])));
        let escaped = FieldPattern::parse("/a~1b/c~0d").unwrap();
        assert!(escaped.is(&path(&["a/b", "c~d"])));
        assert!(FieldPattern::parse("meta").is_err());
        assert_eq!(pointer(&path(&["a/b", "0"])), "/a~1b/0");
    }

    #[test]
    fn tolerance_is_relative() {
        let r = CompareRules {
            numeric_tolerance: 0.001,
            ..CompareRules::default()
        };
        assert!(r.numbers_equal(1000.0, 1000.9));
        assert!(!r.numbers_equal(1000.0, 1002.0));
        assert!(r.numbers_equal(0.0, 0.0));
        assert!(!CompareRules::default().numbers_equal(1.0, 1.0000001));
    }
}
