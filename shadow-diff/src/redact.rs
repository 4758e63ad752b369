//! Removing secrets before anything is stored: credentials in headers
//! (Authorization, Cookie, Set-Cookie, ...), secret-looking query parameters
//! and JSON keys, and whatever a route's `shadow.redact` names (header names
//! or JSON Pointers). Comparison runs on the real values in memory; only what
//! is kept is redacted.

use serde_json::Value;

use crate::compare::Difference;
use crate::rules::FieldPattern;

pub const REDACTED: &str = "[redacted]";

/// Headers that carry credentials.
pub const SECRET_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "x-auth-token",
    "x-csrf-token",
];

/// Query parameters and JSON keys (case-insensitive) treated as secrets.
pub const SECRET_NAMES: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "client_secret",
    "token",
    "access_token",
    "refresh_token",
    "id_token",
    "api_key",
    "apikey",
    "authorization",
    "signature",
    "card_number",
    "cvv",
    "ssn",
];

/// Largest body excerpt kept with a diff.
pub const MAX_STORED_BODY: usize = 32 * 1024;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Redactor {
    headers: Vec<String>,
    fields: Vec<FieldPattern>,
}

fn secret_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    SECRET_NAMES.contains(&lower.as_str())
}

impl Redactor {
    /// `extra`: a route's `shadow.redact` entries: JSON Pointers (starting
    /// with `/`) or header names.
    pub fn new(extra: &[String]) -> Result<Redactor, String> {
        let mut r = Redactor::default();
        for e in extra {
            if e.starts_with('/') {
                r.fields.push(FieldPattern::parse(e)?);
            } else {
                r.headers.push(e.to_ascii_lowercase());
            }
        }
        Ok(r)
    }

    pub fn header_secret(&self, name: &str) -> bool {
        let lower = name.to_ascii_lowercase();
        SECRET_HEADERS.contains(&lower.as_str()) || self.headers.contains(&lower)
    }

    pub fn headers(&self, headers: &[(String, String)]) -> Vec<(String, String)> {
        headers
            .iter()
            .map(|(k, v)| {
                if self.header_secret(k) {
                    (k.clone(), REDACTED.to_string())
                } else {
                    (k.clone(), v.clone())
                }
            })
            .collect()
    }

    /// The path with secret query parameter values replaced.
    pub fn path(&self, path: &str) -> String {
        let Some((base, query)) = path.split_once('?') else {
            return path.to_string();
        };
        let query: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, _)) if secret_name(k) => format!("{k}={REDACTED}"),
                _ => pair.to_string(),
            })
            .collect();
        format!("{base}?{}", query.join("&"))
    }

    fn path_secret(&self, path: &[String]) -> bool {
        path.last().is_some_and(|k| secret_name(k)) || self.fields.iter().any(|p| p.covers(path))
    }

    fn redact_json(&self, path: &mut Vec<String>, v: &mut Value) {
        if self.path_secret(path) {
            *v = Value::String(REDACTED.into());
            return;
        }
        match v {
            Value::Object(m) => {
                for (k, child) in m.iter_mut() {
                    path.push(k.clone());
                    self.redact_json(path, child);
                    path.pop();
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter_mut().enumerate() {
                    path.push(i.to_string());
                    self.redact_json(path, child);
                    path.pop();
                }
            }
            _ => {}
        }
    }

    /// A JSON document with its secret fields replaced.
    pub(crate) fn redact_value(&self, v: &mut Value) {
        self.redact_json(&mut Vec::new(), v);
    }

    /// A body as it may be stored: JSON with secrets replaced, other text cut
    /// to [`MAX_STORED_BODY`], binary described by its size only.
    pub fn body(&self, body: &[u8]) -> String {
        if let Ok(mut v) = serde_json::from_slice::<Value>(body) {
            self.redact_json(&mut Vec::new(), &mut v);
            let text = serde_json::to_string(&v).unwrap_or_default();
            return cut_bytes(text);
        }
        match std::str::from_utf8(body) {
            Ok(text) => cut_bytes(text.to_string()),
            Err(_) => format!("<{} bytes of binary data>", body.len()),
        }
    }

    /// A difference as it may be stored.
    pub fn difference(&self, d: &Difference) -> Difference {
        let secret = if let Some(h) = d.field.strip_prefix("header:") {
            self.header_secret(h)
        } else if d.field.starts_with('/') {
            let path: Vec<String> = d.field[1..]
                .split('/')
                .map(|s| s.replace("~1", "/").replace("~0", "~"))
                .collect();
            self.path_secret(&path)
        } else {
            false
        };
        if !secret {
            return d.clone();
        }
        Difference {
            field: d.field.clone(),
            kind: d.kind,
            legacy: d.legacy.as_ref().map(|_| REDACTED.to_string()),
            new: d.new.as_ref().map(|_| REDACTED.to_string()),
        }
    }
}

fn cut_bytes(mut text: String) -> String {
    if text.len() > MAX_STORED_BODY {
        let mut end = MAX_STORED_BODY;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::DiffKind;

    #[test]
    fn headers_query_and_json() {
        let r = Redactor::new(&["/user/email".into(), "X-Internal".into()]).unwrap();
        let h = r.headers(&[
            ("authorization".into(), "Bearer abc".into()),
            ("cookie".into(), "s=1".into()),
            ("x-internal".into(), "k".into()),
            ("accept".into(), "*/*".into()),
        ]);
        assert_eq!(h[0].1, REDACTED);
        assert_eq!(h[1].1, REDACTED);
        assert_eq!(h[2].1, REDACTED);
        assert_eq!(h[3].1, "*/*");
        assert_eq!(
            r.path("/a?x=1&token=abc&Password=p"),
            "/a?x=1&token=[redacted]&Password=[redacted]"
        );
        let body =
            r.body(br#"{"user": {"email": "a@b.c", "name": "A"}, "items": [{"Password": "p"}]}"#);
        assert!(!body.contains("a@b.c") && !body.contains("\"p\""), "{body}");
        assert!(body.contains("\"name\":\"A\""));
        assert_eq!(r.body(&[0xff, 0x00]), "<2 bytes of binary data>");
    }

    #[test]
    fn differences_in_secret_places_keep_no_value() {
        let r = Redactor::new(&["/user/email".into()]).unwrap();
        let d = |f: &str| Difference {
            field: f.into(),
            kind: DiffKind::Changed,
            legacy: Some("x".into()),
            new: Some("y".into()),
        };
        assert_eq!(
            r.difference(&d("header:set-cookie")).legacy.as_deref(),
            Some(REDACTED)
        );
        assert_eq!(
            r.difference(&d("/user/email")).new.as_deref(),
            Some(REDACTED)
        );
        assert_eq!(
            r.difference(&d("/session/token")).new.as_deref(),
            Some(REDACTED)
        );
        assert_eq!(r.difference(&d("/user/name")).new.as_deref(), Some("y"));
    }
}
