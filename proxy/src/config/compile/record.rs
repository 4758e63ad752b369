//! A route's `record:` block (which requests are kept for replay, up to
//! which body size, what else is redacted) and its `replay:` block (whether
//! methods with side effects may be sent again, and the headers a replay
//! sets, a credential for the target among them, which only the proxy's
//! environment may hold).

use shadow_diff::redact::SECRET_HEADERS;

use super::shadow::redactions;
use super::values::{byte_size, header_name, percent};
use crate::config::defaults::{DEFAULT_RECORD_MAX_BODY, DEFAULT_REPLAY_ALLOW_WRITES};
use crate::config::error::{ErrorSink, Place};
use crate::config::model::{RecordPolicy, ReplayHeaderValue, ReplayPolicy};
use crate::config::raw::{OrderedMap, RawHeaderValue, RawRecord, RawReplay};

pub(super) fn compile_record(
    sink: &mut ErrorSink,
    place: &Place,
    raw: &RawRecord,
) -> Option<RecordPolicy> {
    let mark = sink.mark();
    let share = match &raw.percent {
        Some(p) => sink.check(&place.key("percent"), percent(p)),
        None => {
            sink.push(
                place.key("percent"),
                "is required: the share of the route's requests to record (every one is a row in the store)",
            );
            None
        }
    };
    let max_body = sink.optional(
        place,
        "max_body",
        raw.max_body.as_ref(),
        DEFAULT_RECORD_MAX_BODY,
        byte_size,
    );
    let redact = redactions(sink, &place.key("redact"), raw.redact.as_deref());
    if !sink.clean_since(mark) {
        return None;
    }
    Some(RecordPolicy {
        percent: share?,
        max_body: max_body?,
        redact,
    })
}

pub(super) fn compile_replay(
    sink: &mut ErrorSink,
    place: &Place,
    raw: Option<&RawReplay>,
) -> Option<ReplayPolicy> {
    let Some(raw) = raw else {
        return Some(ReplayPolicy::default());
    };
    let mark = sink.mark();
    let headers = raw
        .headers
        .as_ref()
        .map(|h| replay_headers(sink, &place.key("headers"), h))
        .unwrap_or_default();
    sink.clean_since(mark).then(|| ReplayPolicy {
        allow_writes: raw.allow_writes.unwrap_or(DEFAULT_REPLAY_ALLOW_WRITES),
        headers,
    })
}

fn replay_headers(
    sink: &mut ErrorSink,
    place: &Place,
    raw: &OrderedMap<RawHeaderValue>,
) -> Vec<(http::HeaderName, ReplayHeaderValue)> {
    let mut headers = Vec::new();
    for (name, value) in &raw.0 {
        let at = place.key(name.clone());
        let Some(name) = sink.check(&at, header_name(name)) else {
            continue;
        };
        let value = match value {
            // The file is in git and its every version in the store's
            // history: a credential written here would be kept forever.
            RawHeaderValue::Text(_) if SECRET_HEADERS.contains(&name.as_str()) => {
                sink.push(
                    at,
                    format!(
                        "{name} carries a credential, which is never written in the file (it would be in git and in the store's history): read it from the proxy's environment with {{ env: NAME }}"
                    ),
                );
                continue;
            }
            RawHeaderValue::Text(t) => sink.check(
                &at,
                http::HeaderValue::from_str(t)
                    .map(ReplayHeaderValue::Literal)
                    .map_err(|_| format!("{t:?} is not a valid header value")),
            ),
            RawHeaderValue::FromEnv(e) => sink.check(&at.key("env"), env_name(&e.env)),
        };
        if let Some(value) = value {
            if headers.iter().any(|(n, _)| *n == name) {
                sink.push(at, format!("{name} is set twice"));
            } else {
                headers.push((name, value));
            }
        }
    }
    headers
}

fn env_name(name: &str) -> Result<ReplayHeaderValue, String> {
    let valid = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(ReplayHeaderValue::Env(name.to_string()))
    } else {
        Err(format!(
            "{name:?} is not an environment variable name (letters, digits and _)"
        ))
    }
}
