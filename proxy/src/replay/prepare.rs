//! What a recorded request becomes when it is replayed, decided without
//! I/O: whether it may be sent at all (a method with side effects needs
//! `replay.allow_writes`; every redacted place needs a replacement, which
//! only headers have, in `replay.headers`), and the request the target is
//! sent: its side's path (the route's rewrite), its backend's Host, the
//! recorded headers without those describing the old connection, the
//! route's replay headers, and the replay marker.

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method};
use shadow_diff::{Recording, RedactedPlace};

use crate::config::{Backend, ReplayPolicy, Route, Side};
use crate::routing::rewrite::{upstream_host, upstream_path};
use crate::shadow::SHADOW_HEADER;
use crate::shadow::client::HOP_BY_HOP;

/// The marker value replayed requests carry in [`SHADOW_HEADER`].
pub const REPLAY_MARKER: &str = "replay";

/// Recorded headers never sent again: besides those describing the
/// recorded connection and body framing (as for a shadow copy), those set
/// anew.
fn not_replayed(name: &str) -> bool {
    HOP_BY_HOP.contains(&name) || name == "host" || name == SHADOW_HEADER
}

/// Why a recorded request is not sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// A method with side effects on a route without `replay.allow_writes`.
    Method(String),
    /// A secret was replaced by the redaction marker and nothing replaces it.
    Redacted(RedactedPlace),
    /// What was recorded cannot be made into a request (a rewrite that no
    /// longer applies, a header that is no longer valid).
    Invalid(String),
}

impl std::fmt::Display for Skip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Skip::Method(m) => write!(
                f,
                "{m} can have side effects; the route's replay block needs allow_writes: true"
            ),
            Skip::Redacted(RedactedPlace::Header(h)) => write!(
                f,
                "header {h} was redacted when recorded; set replay.headers.{h} to send one"
            ),
            Skip::Redacted(RedactedPlace::Query(q)) => {
                write!(f, "query parameter {q} was redacted when recorded")
            }
            Skip::Redacted(RedactedPlace::Body) => {
                write!(f, "a body field was redacted when recorded")
            }
            Skip::Invalid(why) => f.write_str(why),
        }
    }
}

/// The request a target is sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    pub method: Method,
    /// Path and query for the target's side.
    pub path: String,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
}

/// `headers`: the route's `replay.headers`, their values resolved.
pub fn prepare(
    recording: &Recording,
    route: &Route,
    policy: &ReplayPolicy,
    headers: &[(HeaderName, HeaderValue)],
    target: &Backend,
    target_side: Side,
) -> Result<Prepared, Skip> {
    let method = Method::from_bytes(recording.method.as_bytes())
        .map_err(|_| Skip::Invalid(format!("{:?} is not a method", recording.method)))?;
    if !method.is_safe() && !policy.allow_writes {
        return Err(Skip::Method(method.to_string()));
    }
    for place in &recording.redacted {
        let replaced = match place {
            RedactedPlace::Header(name) => headers.iter().any(|(n, _)| n.as_str() == name),
            RedactedPlace::Query(_) | RedactedPlace::Body => false,
        };
        if !replaced {
            return Err(Skip::Redacted(place.clone()));
        }
    }
    let (path, query) = match recording.path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (recording.path.as_str(), None),
    };
    let path = upstream_path(route, target_side, path)
        .ok_or_else(|| Skip::Invalid("the route's rewrite does not apply to the path".into()))?;
    let path = crate::routing::rewrite::with_query(&path, query);

    let recorded_host = recording
        .request
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("host"))
        .map(|(_, v)| v.as_str());
    let mut out: Vec<(HeaderName, HeaderValue)> = Vec::new();
    if let Some(host) = upstream_host(&target.host, recorded_host) {
        let value = HeaderValue::from_str(host)
            .map_err(|_| Skip::Invalid(format!("{host:?} is not a Host")))?;
        out.push((http::header::HOST, value));
    }
    for (name, value) in &recording.request.headers {
        let lower = name.to_ascii_lowercase();
        if not_replayed(&lower) || headers.iter().any(|(n, _)| n.as_str() == lower) {
            continue;
        }
        let name = HeaderName::from_bytes(lower.as_bytes())
            .map_err(|_| Skip::Invalid(format!("{lower:?} is not a header name")))?;
        let value = HeaderValue::from_str(value)
            .map_err(|_| Skip::Invalid(format!("the recorded {name} is not a header value")))?;
        out.push((name, value));
    }
    out.extend(headers.iter().cloned());
    out.push((
        HeaderName::from_static(SHADOW_HEADER),
        HeaderValue::from_static(REPLAY_MARKER),
    ));
    Ok(Prepared {
        method,
        path,
        headers: out,
        body: Bytes::from(recording.request.body.bytes()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use shadow_diff::{RecordedBody, RecordedMessage};

    const FILE: &str = "version: 1\nlisten: 127.0.0.1:8080\nbackends:\n  monolith: { url: \"http://127.0.0.1:1\" }\n  orders: { url: \"http://127.0.0.1:2\", host: backend }\ndefault: monolith\nroutes:\n  - name: orders\n    match: { path: /api/orders }\n    new: orders\n    rewrite: { strip_prefix: /api }\n    record: { percent: 100 }\n";

    fn recording(method: &str, redacted: Vec<RedactedPlace>) -> Recording {
        Recording {
            id: "r1".into(),
            created_at_ms: 0,
            route: "orders".into(),
            config_version: 1,
            tenant: None,
            instance: "test".into(),
            served_by: "legacy".into(),
            method: method.into(),
            path: "/api/orders/7?x=1".into(),
            request: RecordedMessage {
                headers: vec![
                    ("host".into(), "shop.example".into()),
                    ("authorization".into(), "[redacted]".into()),
                    ("content-length".into(), "2".into()),
                    ("accept".into(), "application/json".into()),
                ],
                body: RecordedBody::Text("{}".into()),
            },
            status: 200,
            response: RecordedMessage::default(),
            latency_ms: 1.0,
            redacted,
        }
    }

    fn prepared(
        r: &Recording,
        allow_writes: bool,
        headers: &[(HeaderName, HeaderValue)],
    ) -> Result<Prepared, Skip> {
        let config = crate::config::parse(FILE, "test").unwrap();
        let route = config.route("orders").unwrap();
        let policy = ReplayPolicy {
            allow_writes,
            headers: vec![],
        };
        let target = config.backend(route.new);
        prepare(r, route, &policy, headers, target, Side::New)
    }

    #[test]
    fn a_redacted_header_is_sent_only_as_its_replacement() {
        let r = recording("GET", vec![RedactedPlace::Header("authorization".into())]);
        assert_eq!(
            prepared(&r, false, &[]),
            Err(Skip::Redacted(RedactedPlace::Header(
                "authorization".into()
            )))
        );
        let token = (
            http::header::AUTHORIZATION,
            HeaderValue::from_static("Bearer replay"),
        );
        let p = prepared(&r, false, std::slice::from_ref(&token)).unwrap();
        let auth: Vec<_> = p
            .headers
            .iter()
            .filter(|(n, _)| *n == http::header::AUTHORIZATION)
            .collect();
        assert_eq!(
            auth,
            vec![&token],
            "once, the replacement, never the marker"
        );
        assert!(!p.headers.iter().any(|(_, v)| v == "[redacted]"));
        // The new side's path and Host; the recorded framing is not kept.
        assert_eq!(p.path, "/orders/7?x=1");
        assert_eq!(
            p.headers[0],
            (http::header::HOST, HeaderValue::from_static("127.0.0.1:2"))
        );
        assert!(
            !p.headers
                .iter()
                .any(|(n, _)| *n == http::header::CONTENT_LENGTH)
        );
        assert!(
            p.headers
                .iter()
                .any(|(n, v)| n == SHADOW_HEADER && v == REPLAY_MARKER)
        );
    }

    #[test]
    fn writes_need_allow_writes_and_redacted_bodies_are_never_sent() {
        let post = recording("POST", vec![]);
        assert_eq!(
            prepared(&post, false, &[]),
            Err(Skip::Method("POST".into()))
        );
        assert!(prepared(&post, true, &[]).is_ok());
        let secret_body = recording("POST", vec![RedactedPlace::Body]);
        assert_eq!(
            prepared(&secret_body, true, &[]),
            Err(Skip::Redacted(RedactedPlace::Body))
        );
    }
}
