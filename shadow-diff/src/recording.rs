//! What is kept of a recorded request for replay (`record:` on a route),
//! and of a replay run: the request as the primary upstream received it and
//! the answer the client got, redacted by the same [`Redactor`] as diffs
//! before anything is stored. Unlike a diff's excerpt, a recording keeps
//! whole bodies (up to the route's `record.max_body`), byte for byte where
//! nothing was redacted, so that it can be sent again; and it notes every
//! place a secret was replaced, so that a replay never sends the marker.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use crate::redact::Redactor;

/// A body as stored: text as it is, anything else in base64.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordedBody {
    Text(String),
    Base64(String),
}

impl Default for RecordedBody {
    fn default() -> Self {
        RecordedBody::Text(String::new())
    }
}

impl RecordedBody {
    pub fn of(bytes: &[u8]) -> RecordedBody {
        match std::str::from_utf8(bytes) {
            Ok(text) => RecordedBody::Text(text.to_string()),
            Err(_) => RecordedBody::Base64(STANDARD.encode(bytes)),
        }
    }

    /// The bytes; a stored base64 text that does not decode gives nothing.
    pub fn bytes(&self) -> Vec<u8> {
        match self {
            RecordedBody::Text(t) => t.as_bytes().to_vec(),
            RecordedBody::Base64(b) => STANDARD.decode(b).unwrap_or_default(),
        }
    }
}

/// A request or an answer as recorded (answers with `content-encoding`
/// removed from the body, so the body is what compares).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RecordedMessage {
    pub headers: Vec<(String, String)>,
    pub body: RecordedBody,
}

/// Where the redaction marker replaced a value in a recorded request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "in", content = "name")]
pub enum RedactedPlace {
    /// A request header (lower-case name): a replay sends the route's
    /// `replay.headers` value instead, or skips the request.
    Header(String),
    /// A query parameter: no replacement exists, a replay skips it.
    Query(String),
    /// A field of the JSON body: no replacement exists, a replay skips it.
    Body,
}

/// One recorded request and the answer its client got, already redacted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recording {
    /// The request id.
    pub id: String,
    pub created_at_ms: i64,
    pub route: String,
    pub config_version: i64,
    pub tenant: Option<String>,
    pub instance: String,
    /// The side that served the client (`legacy` or `new`).
    pub served_by: String,
    pub method: String,
    /// Normalized path with query, before any rewrite (the route's own
    /// rewrite is applied again when it is replayed).
    pub path: String,
    pub request: RecordedMessage,
    pub status: u16,
    pub response: RecordedMessage,
    pub latency_ms: f64,
    pub redacted: Vec<RedactedPlace>,
}

/// What the request path kept, before redaction.
#[derive(Debug, Clone, Default)]
pub struct Unredacted<'a> {
    pub path: &'a str,
    pub request_headers: &'a [(String, String)],
    pub request_body: &'a [u8],
    pub response_headers: &'a [(String, String)],
    /// Decoded (no content-encoding).
    pub response_body: &'a [u8],
}

impl Redactor {
    /// Headers with secrets replaced, noting each replaced request header.
    fn headers_noted(
        &self,
        headers: &[(String, String)],
        noted: Option<&mut Vec<RedactedPlace>>,
    ) -> Vec<(String, String)> {
        let kept = self.headers(headers);
        if let Some(noted) = noted {
            for ((name, before), (_, after)) in headers.iter().zip(&kept) {
                let place = RedactedPlace::Header(name.to_ascii_lowercase());
                if before != after && !noted.contains(&place) {
                    noted.push(place);
                }
            }
        }
        kept
    }

    /// The body with secret JSON fields replaced; byte for byte when
    /// nothing was, or when it is not JSON. `true` when something was.
    pub fn whole_body(&self, body: &[u8]) -> (RecordedBody, bool) {
        if let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(body) {
            let before = v.clone();
            self.redact_value(&mut v);
            if v != before {
                let text = serde_json::to_string(&v).unwrap_or_default();
                return (RecordedBody::Text(text), true);
            }
        }
        (RecordedBody::of(body), false)
    }

    /// What may be stored of a recorded exchange, and where secrets were.
    pub fn recorded(
        &self,
        raw: &Unredacted<'_>,
    ) -> (RecordedMessage, RecordedMessage, String, Vec<RedactedPlace>) {
        let mut noted = Vec::new();
        let path = self.path(raw.path);
        if path != raw.path {
            for (before, after) in raw
                .path
                .split_once('?')
                .map(|(_, q)| q)
                .unwrap_or("")
                .split('&')
                .zip(
                    path.split_once('?')
                        .map(|(_, q)| q)
                        .unwrap_or("")
                        .split('&'),
                )
            {
                if before != after {
                    let name = before.split('=').next().unwrap_or("").to_string();
                    noted.push(RedactedPlace::Query(name));
                }
            }
        }
        let headers = self.headers_noted(raw.request_headers, Some(&mut noted));
        let (body, body_redacted) = self.whole_body(raw.request_body);
        if body_redacted {
            noted.push(RedactedPlace::Body);
        }
        let request = RecordedMessage { headers, body };
        let response = RecordedMessage {
            headers: self.headers_noted(raw.response_headers, None),
            body: self.whole_body(raw.response_body).0,
        };
        (request, response, path, noted)
    }
}

/// How a replay run ended, or that it is still going.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Running,
    Done,
    Failed,
    Cancelled,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Done => "done",
            RunState::Failed => "failed",
            RunState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<RunState> {
        [
            RunState::Running,
            RunState::Done,
            RunState::Failed,
            RunState::Cancelled,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }
}

/// What a replay run did, request by request, counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RunCounts {
    /// Recordings read from the store.
    pub read: u64,
    /// Sent and answered, then compared.
    pub matched: u64,
    pub diff: u64,
    pub noise: u64,
    /// Not sent: a method with side effects on a route without
    /// `replay.allow_writes`, or a redacted value with no replacement.
    pub skipped: u64,
    /// Sent, and no answer came (connection failed, timed out, too large).
    pub failed: u64,
}

impl RunCounts {
    pub fn compared(&self) -> u64 {
        self.matched + self.diff + self.noise
    }
}

/// One replay run: one entry in the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplayRun {
    pub id: String,
    pub route: String,
    /// The backend the requests were sent to.
    pub target: String,
    pub started_at_ms: i64,
    pub finished_at_ms: Option<i64>,
    /// The recordings replayed were made at or after this time.
    pub since_ms: i64,
    pub state: RunState,
    pub counts: RunCounts,
    /// Why it failed, or was cancelled.
    pub message: Option<String>,
    pub instance: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_replaced_and_their_places_noted_and_the_rest_kept_byte_for_byte() {
        let r = Redactor::new(&["/card".into()]).unwrap();
        let headers = vec![
            ("Authorization".to_string(), "Bearer live".to_string()),
            ("accept".to_string(), "*/*".to_string()),
        ];
        let raw = Unredacted {
            path: "/a?x=1&token=abc",
            request_headers: &headers,
            request_body: br#"{"card": "4111", "qty": 2}"#,
            response_headers: &[("set-cookie".into(), "s=1".into())],
            response_body: b"{ \"ok\" :  true }",
        };
        let (req, resp, path, noted) = r.recorded(&raw);
        assert_eq!(path, "/a?x=1&token=[redacted]");
        assert_eq!(req.headers[0].1, crate::redact::REDACTED);
        assert_eq!(req.headers[1].1, "*/*");
        let body = String::from_utf8(req.body.bytes()).unwrap();
        assert!(
            !body.contains("4111") && body.contains("\"qty\":2"),
            "{body}"
        );
        assert_eq!(resp.headers[0].1, crate::redact::REDACTED);
        // Nothing secret in it: kept as it came, spaces and all.
        assert_eq!(resp.body.bytes(), b"{ \"ok\" :  true }");
        assert_eq!(
            noted,
            vec![
                RedactedPlace::Query("token".into()),
                RedactedPlace::Header("authorization".into()),
                RedactedPlace::Body,
            ]
        );
    }

    #[test]
    fn binary_bodies_survive_the_round_trip() {
        let bytes = [0u8, 159, 146, 150, 255];
        let stored = RecordedBody::of(&bytes);
        assert!(matches!(stored, RecordedBody::Base64(_)));
        let json = serde_json::to_string(&stored).unwrap();
        let back: RecordedBody = serde_json::from_str(&json).unwrap();
        assert_eq!(back.bytes(), bytes);
    }
}
