//! Comparing two answers to the same request: status, headers (after ignore
//! rules) and bodies, by content type: JSON structurally, other text line by
//! line, anything else by length and hash. Each difference names its place
//! (`status`, `header:content-type`, `/items/3/price`, `body:line 12`) and
//! both values.

mod json;
mod text;

use serde::{Deserialize, Serialize};

use crate::exchange::Exchange;
use crate::rules::CompareRules;

/// At most this many differences are kept per comparison; the rest are
/// counted in [`Comparison::more`].
pub const MAX_DIFFERENCES: usize = 50;
/// Values are cut to this many characters when kept.
pub const MAX_VALUE_CHARS: usize = 300;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiffKind {
    /// Both sides have the field, with different values.
    Changed,
    /// Only the legacy answer has it.
    Missing,
    /// Only the new answer has it.
    Added,
}

/// One place where the answers differ.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Difference {
    pub field: String,
    pub kind: DiffKind,
    pub legacy: Option<String>,
    pub new: Option<String>,
}

impl Difference {
    /// The field generalized, so that the same field in different requests
    /// is counted as one: noise is learned per key, the store keeps it per
    /// differing field (`diff_fields`), reports group by it. Array indices
    /// become `*` (`/items/3/price` and `/items/7/price` are
    /// `/items/*/price`); a text hunk (`body:line 12`) is keyed by its
    /// normalized content on both sides, not by its line number
    /// (`body:text:1f2e3d4c <footer>Rendered #-#-# #:#:#</footer>`, see
    /// `compare/text.rs`); other fields are themselves.
    pub fn field_key(&self) -> String {
        if self.field.starts_with("body:line") {
            return text::key(self.legacy.as_deref(), self.new.as_deref());
        }
        generalize(&self.field)
    }
}

/// A JSON Pointer with its array indices as `*`; other fields unchanged.
fn generalize(field: &str) -> String {
    if !field.starts_with('/') {
        return field.to_string();
    }
    field
        .split('/')
        .map(|s| {
            if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
                "*"
            } else {
                s
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// How the bodies were compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BodyKind {
    Empty,
    Json,
    Text,
    Binary,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Comparison {
    pub differences: Vec<Difference>,
    /// Differences found beyond [`MAX_DIFFERENCES`].
    pub more: usize,
    pub body_kind: BodyKind,
}

impl Comparison {
    pub fn is_match(&self) -> bool {
        self.differences.is_empty()
    }
}

/// Collects differences up to the cap.
#[derive(Debug, Default)]
pub(crate) struct Collector {
    pub differences: Vec<Difference>,
    pub more: usize,
}

impl Collector {
    pub fn push(
        &mut self,
        field: String,
        kind: DiffKind,
        legacy: Option<String>,
        new: Option<String>,
    ) {
        if self.differences.len() >= MAX_DIFFERENCES {
            self.more += 1;
            return;
        }
        self.differences.push(Difference {
            field,
            kind,
            legacy: legacy.map(cut),
            new: new.map(cut),
        });
    }
}

pub(crate) fn cut(mut s: String) -> String {
    if s.chars().count() > MAX_VALUE_CHARS {
        s = s.chars().take(MAX_VALUE_CHARS).collect::<String>() + "…";
    }
    s
}

/// Compares the legacy answer with the new one under `rules`.
pub fn compare(rules: &CompareRules, legacy: &Exchange, new: &Exchange) -> Comparison {
    let mut out = Collector::default();
    if legacy.status != new.status {
        out.push(
            "status".into(),
            DiffKind::Changed,
            Some(legacy.status.to_string()),
            Some(new.status.to_string()),
        );
    }
    compare_headers(rules, legacy, new, &mut out);
    let body_kind = compare_bodies(rules, legacy, new, &mut out);
    Comparison {
        differences: out.differences,
        more: out.more,
        body_kind,
    }
}

fn compare_headers(rules: &CompareRules, legacy: &Exchange, new: &Exchange, out: &mut Collector) {
    let mut names: Vec<&str> = legacy
        .headers
        .iter()
        .chain(&new.headers)
        .map(|(k, _)| k.as_str())
        .filter(|k| !rules.header_ignored(k))
        .collect();
    names.sort_unstable();
    names.dedup();
    for name in names {
        let (a, b) = (legacy.header(name), new.header(name));
        let kind = match (&a, &b) {
            (Some(x), Some(y)) if x == y => continue,
            (Some(_), Some(_)) => DiffKind::Changed,
            (Some(_), None) => DiffKind::Missing,
            (None, Some(_)) => DiffKind::Added,
            (None, None) => continue,
        };
        out.push(format!("header:{name}"), kind, a, b);
    }
}

fn looks_like_json(exchange: &Exchange) -> bool {
    let ct = exchange.content_type();
    if ct.contains("json") {
        return true;
    }
    let first = exchange.body.iter().find(|b| !b.is_ascii_whitespace());
    ct.is_empty() && matches!(first, Some(b'{') | Some(b'['))
}

fn is_text(exchange: &Exchange) -> bool {
    let ct = exchange.content_type();
    ct.starts_with("text/")
        || ct.contains("xml")
        || ct.contains("javascript")
        || ct.contains("x-www-form-urlencoded")
        || (ct.is_empty() && std::str::from_utf8(&exchange.body).is_ok())
}

fn compare_bodies(
    rules: &CompareRules,
    legacy: &Exchange,
    new: &Exchange,
    out: &mut Collector,
) -> BodyKind {
    if legacy.body.is_empty() && new.body.is_empty() {
        return BodyKind::Empty;
    }
    if looks_like_json(legacy) || looks_like_json(new) {
        let parsed = (
            serde_json::from_slice::<serde_json::Value>(&legacy.body),
            serde_json::from_slice::<serde_json::Value>(&new.body),
        );
        if let (Ok(a), Ok(b)) = parsed {
            json::compare(rules, &a, &b, out);
            return BodyKind::Json;
        }
        // One side is not JSON after all (an HTML error page, say): compare
        // what was sent as text.
    }
    match (
        std::str::from_utf8(&legacy.body),
        std::str::from_utf8(&new.body),
    ) {
        (Ok(a), Ok(b))
            if is_text(legacy)
                || is_text(new)
                || looks_like_json(legacy)
                || looks_like_json(new) =>
        {
            text::compare(a, b, out);
            BodyKind::Text
        }
        _ => {
            if legacy.body != new.body {
                out.push(
                    "body".into(),
                    DiffKind::Changed,
                    Some(describe_binary(&legacy.body)),
                    Some(describe_binary(&new.body)),
                );
            }
            BodyKind::Binary
        }
    }
}

fn describe_binary(body: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let hash = Sha256::digest(body);
    let hex: String = hash.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("{} bytes, sha256 {hex}…", body.len())
}

#[cfg(test)]
mod tests;
