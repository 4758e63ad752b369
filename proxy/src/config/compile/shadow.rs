//! A route's `shadow` block: which requests are copied to the other side
//! (share, methods, body size, timeout), what is redacted before a diff is
//! stored, when the diff report calls the route ready, and the `compare`
//! rules that decide what counts as a difference.

use http::Method;
use shadow_diff::FieldPattern;

use super::values::{byte_size, count, fraction, header_name, method, percent, positive_duration};
use crate::config::defaults::{
    DEFAULT_NOISE_SAMPLE, DEFAULT_NUMERIC_TOLERANCE, DEFAULT_SHADOW_ALLOW_WRITES,
    DEFAULT_SHADOW_MAX_BODY, DEFAULT_SHADOW_METHODS, DEFAULT_SHADOW_PERCENT,
    DEFAULT_SHADOW_TIMEOUT,
};
use crate::config::error::{ErrorSink, Place};
use crate::config::model::{CompareRules, Percent, ShadowPolicy, Threshold};
use crate::config::raw::{RawCompare, RawShadow, Scalar};

/// Methods that change nothing on the server, so sending them a second time
/// (to the side that did not serve) cannot do harm.
const SIDE_EFFECT_FREE: [Method; 4] = [Method::GET, Method::HEAD, Method::OPTIONS, Method::TRACE];

pub(super) fn compile_shadow(
    sink: &mut ErrorSink,
    place: &Place,
    raw: &RawShadow,
) -> Option<ShadowPolicy> {
    let mark = sink.mark();
    let share = sink.optional(
        place,
        "percent",
        raw.percent.as_ref(),
        DEFAULT_SHADOW_PERCENT,
        percent,
    );
    let allow_writes = raw.allow_writes.unwrap_or(DEFAULT_SHADOW_ALLOW_WRITES);
    let methods = match &raw.methods {
        None => DEFAULT_SHADOW_METHODS.to_vec(),
        Some(list) => shadow_methods(sink, &place.key("methods"), list, allow_writes),
    };
    let max_body = sink.optional(
        place,
        "max_body",
        raw.max_body.as_ref(),
        DEFAULT_SHADOW_MAX_BODY,
        byte_size,
    );
    let timeout = sink.optional(
        place,
        "timeout",
        raw.timeout.as_ref(),
        DEFAULT_SHADOW_TIMEOUT,
        positive_duration,
    );
    let noise_sample = match &raw.noise_sample {
        None => Percent::new(DEFAULT_NOISE_SAMPLE).ok(),
        Some(s) => sink.check(&place.key("noise_sample"), percent(s)),
    };
    let redact = redactions(sink, &place.key("redact"), raw.redact.as_deref());
    let defaults = Threshold::default();
    let max_diff_rate = match &raw.max_diff_rate {
        None => Some(defaults.max_diff_rate),
        Some(s) => sink.check(&place.key("max_diff_rate"), fraction(s)),
    };
    let min_samples = match &raw.min_samples {
        None => Some(defaults.min_samples),
        Some(s) => sink.check(&place.key("min_samples"), count(s)),
    };
    let compare = compile_compare(sink, &place.key("compare"), raw.compare.as_ref());
    if !sink.clean_since(mark) {
        return None;
    }
    Some(ShadowPolicy {
        threshold: Threshold {
            max_diff_rate: max_diff_rate?,
            min_samples: min_samples?,
        },
        percent: share?,
        methods,
        max_body: max_body?,
        timeout: timeout?,
        noise_sample: noise_sample?,
        redact,
        compare: compare?,
    })
}

/// The listed methods, each once. A method that may change data on the
/// server is refused unless the block says `allow_writes`: the copy would
/// make the change a second time, on the other side.
fn shadow_methods(
    sink: &mut ErrorSink,
    place: &Place,
    list: &[String],
    allow_writes: bool,
) -> Vec<Method> {
    let mut methods = Vec::new();
    for (i, m) in list.iter().enumerate() {
        let Some(m) = sink.check(&place.index(i), method(m)) else {
            continue;
        };
        if !SIDE_EFFECT_FREE.contains(&m) && !allow_writes {
            sink.push(
                place.index(i),
                format!(
                    "{m} can have side effects; copying it to the other side needs `allow_writes: true` on this shadow block"
                ),
            );
        }
        if !methods.contains(&m) {
            methods.push(m);
        }
    }
    methods
}

/// `redact`: header names, or JSON Pointers (which start with `/`) into the
/// body. Checked here and kept as written.
pub(super) fn redactions(
    sink: &mut ErrorSink,
    place: &Place,
    raw: Option<&[String]>,
) -> Vec<String> {
    let mut redact = Vec::new();
    for (i, entry) in raw.into_iter().flatten().enumerate() {
        let valid = if entry.starts_with('/') {
            FieldPattern::parse(entry).is_ok()
        } else {
            header_name(entry).is_ok()
        };
        if valid {
            redact.push(entry.clone());
        } else {
            sink.push(
                place.index(i),
                format!("{entry:?} is neither a header name nor a JSON Pointer (/path/to/field)"),
            );
        }
    }
    redact
}

fn compile_compare(
    sink: &mut ErrorSink,
    place: &Place,
    raw: Option<&RawCompare>,
) -> Option<CompareRules> {
    let Some(raw) = raw else {
        return Some(CompareRules::default());
    };
    let mark = sink.mark();
    let mut ignore_headers = Vec::new();
    for (i, h) in raw.ignore_headers.iter().enumerate() {
        if let Some(name) = sink.check(&place.key("ignore_headers").index(i), header_name(h)) {
            ignore_headers.push(name.as_str().to_string());
        }
    }
    let ignore_fields = field_patterns(sink, &place.key("ignore_fields"), &raw.ignore_fields);
    let unordered_arrays =
        field_patterns(sink, &place.key("unordered_arrays"), &raw.unordered_arrays);
    let numeric_tolerance = match &raw.numeric_tolerance {
        None => DEFAULT_NUMERIC_TOLERANCE,
        Some(Scalar::Number(n)) if *n >= 0.0 && n.is_finite() => *n,
        Some(other) => {
            sink.push(
                place.key("numeric_tolerance"),
                format!(
                    "{} is not a tolerance (a number, 0 or more)",
                    other.as_text()
                ),
            );
            DEFAULT_NUMERIC_TOLERANCE
        }
    };
    sink.clean_since(mark).then_some(CompareRules {
        ignore_headers,
        ignore_fields,
        unordered_arrays,
        numeric_tolerance,
    })
}

fn field_patterns(sink: &mut ErrorSink, place: &Place, list: &[String]) -> Vec<FieldPattern> {
    list.iter()
        .enumerate()
        .filter_map(|(i, p)| sink.check(&place.index(i), FieldPattern::parse(p)))
        .collect()
}
