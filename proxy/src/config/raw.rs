//! The `routes.yaml` (version 1) file format, mirrored one to one in serde
//! types with `deny_unknown_fields`. Nothing here is validated beyond its
//! shape: `compile` turns these into the checked model in `model`, so the file
//! format and the engine can evolve apart.
//!
//! Shape errors are collected, not just the first one: list elements and map
//! entries are decoded one by one ([`Lenient`]), and inside an element an
//! unknown key is set aside so the rest of the element is still checked.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{DeserializeOwned, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_yaml::Value;

use super::error::{ConfigError, Place};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub version: Option<Scalar>,
    pub listen: Option<String>,
    pub proxy_protocol: Option<bool>,
    pub trusted_proxies: Option<Vec<String>>,
    pub access_log: Option<RawAccessLog>,
    pub tls: Option<RawTls>,
    pub admin: Option<RawAdmin>,
    pub store: Option<String>,
    #[serde(default)]
    pub backends: OrderedMap<Lenient<RawBackend>>,
    #[serde(default)]
    pub tenant: Vec<Lenient<RawTenantSource>>,
    pub default: Option<String>,
    #[serde(default)]
    pub routes: Vec<Lenient<RawRoute>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub listen: String,
    pub cert: String,
    pub key: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAccessLog {
    pub path: Option<String>,
    pub format: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    pub listen: Option<String>,
    pub token_env: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBackend {
    pub url: Option<String>,
    pub urls: Option<Vec<String>>,
    pub connect_timeout: Option<Scalar>,
    pub read_timeout: Option<Scalar>,
    pub write_timeout: Option<Scalar>,
    pub idle_timeout: Option<Scalar>,
    pub tls_verify: Option<bool>,
    pub host: Option<String>,
    /// Upstream TLS settings (issue 12, backend side).
    pub tls: Option<RawUpstreamTls>,
    /// Health checks and ejection (issue 12, backend side).
    pub health: Option<RawHealth>,
}

/// `backends.NAME.tls`: how the proxy speaks TLS to that backend.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstreamTls {
    pub ca: Option<String>,
    pub client_cert: Option<String>,
    pub client_key: Option<String>,
    pub sni: Option<String>,
}

/// `backends.NAME.health`: active checks of each address.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealth {
    pub path: Option<String>,
    pub interval: Option<Scalar>,
    pub timeout: Option<Scalar>,
    pub unhealthy_after: Option<Scalar>,
    pub healthy_after: Option<Scalar>,
}

/// One way of finding a request's tenant; exactly one key is set.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTenantSource {
    pub header: Option<String>,
    pub host_label: Option<Scalar>,
    pub cookie: Option<String>,
    pub jwt_claim: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub name: Option<String>,
    #[serde(rename = "match")]
    pub matcher: Option<RawMatch>,
    pub legacy: Option<String>,
    pub new: Option<String>,
    pub canary: Option<Scalar>,
    pub sticky: Option<String>,
    pub tenants: Option<OrderedMap<String>>,
    pub shadow: Option<RawShadow>,
    pub guard: Option<RawGuard>,
    pub max_request_body: Option<Scalar>,
    pub rewrite: Option<RawRewrite>,
    pub timeout: Option<Scalar>,
    pub retries: Option<Scalar>,
    pub rollout: Option<RawRollout>,
    pub record: Option<RawRecord>,
    pub replay: Option<RawReplay>,
}

/// Sampled requests kept (redacted) with the answer their client got, for
/// `strangler replay`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRecord {
    pub percent: Option<Scalar>,
    pub max_body: Option<Scalar>,
    pub redact: Option<Vec<String>>,
}

/// How this route's recordings are replayed.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReplay {
    pub allow_writes: Option<bool>,
    pub headers: Option<OrderedMap<RawHeaderValue>>,
}

/// A header value written out, or read from the environment of the process
/// that runs the replay (`{ env: NAME }`), so that no credential sits in the
/// file.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawHeaderValue {
    Text(String),
    FromEnv(RawFromEnv),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFromEnv {
    pub env: String,
}

/// A route that promotes itself: canary steps taken one by one, each after
/// a pause during which the gates held.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRollout {
    pub steps: Option<Vec<Scalar>>,
    pub pause: Option<Scalar>,
    pub require: Option<Vec<String>>,
    pub on_failure: Option<String>,
    pub start: Option<String>,
}

/// What the new side receives instead of the request's path: either a
/// prefix swap or a regex with a replacement.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRewrite {
    pub strip_prefix: Option<String>,
    pub add_prefix: Option<String>,
    pub regex: Option<String>,
    pub to: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGuard {
    pub window: Option<Scalar>,
    pub min_requests: Option<Scalar>,
    pub error_rate_margin: Option<Scalar>,
    pub p99_margin: Option<Scalar>,
    pub max_diff_rate: Option<Scalar>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMatch {
    pub path: Option<String>,
    pub path_exact: Option<String>,
    pub path_regex: Option<String>,
    pub methods: Option<Vec<String>>,
    pub host: Option<String>,
    pub headers: Option<OrderedMap<Scalar>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawShadow {
    pub percent: Option<Scalar>,
    pub methods: Option<Vec<String>>,
    pub allow_writes: Option<bool>,
    pub max_body: Option<Scalar>,
    pub timeout: Option<Scalar>,
    pub noise_sample: Option<Scalar>,
    pub redact: Option<Vec<String>>,
    pub max_diff_rate: Option<Scalar>,
    pub min_samples: Option<Scalar>,
    pub compare: Option<RawCompare>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawCompare {
    #[serde(default)]
    pub ignore_headers: Vec<String>,
    #[serde(default)]
    pub ignore_fields: Vec<String>,
    #[serde(default)]
    pub unordered_arrays: Vec<String>,
    pub numeric_tolerance: Option<Scalar>,
}

/// A leaf whose meaning `compile` decides: `10`, `12.5`, `"2s"`, `1MiB`.
/// Reading it as either a number or a text keeps "wrong unit" a semantic error
/// with a helpful message instead of a serde type error.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Scalar {
    Number(f64),
    Text(String),
    Bool(bool),
}

impl Scalar {
    pub fn as_text(&self) -> String {
        match self {
            Scalar::Number(n) if n.fract() == 0.0 && n.abs() < 1e15 => format!("{}", *n as i64),
            Scalar::Number(n) => n.to_string(),
            Scalar::Text(t) => t.clone(),
            Scalar::Bool(b) => b.to_string(),
        }
    }
}

/// A mapping that keeps the file's order, so errors and listings follow it.
#[derive(Debug)]
pub struct OrderedMap<V>(pub Vec<(String, V)>);

impl<V> Default for OrderedMap<V> {
    fn default() -> Self {
        OrderedMap(Vec::new())
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for OrderedMap<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MapVisitor<V>(PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for MapVisitor<V> {
            type Value = OrderedMap<V>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
                Ok(OrderedMap(Vec::new()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, V>()? {
                    entries.push((k, v));
                }
                Ok(OrderedMap(entries))
            }
        }
        deserializer.deserialize_map(MapVisitor(PhantomData))
    }
}

/// The outcome of decoding one value: what could be decoded (with the bad
/// parts set aside) and the shape errors found, places relative to the value.
#[derive(Debug)]
pub struct Decoded<T> {
    pub value: Option<T>,
    pub errors: Vec<ConfigError>,
}

/// A list element or map entry decoded on its own: its shape errors are kept
/// instead of failing the whole file.
#[derive(Debug)]
pub struct Lenient<T>(pub Decoded<T>);

impl<'de, T: DeserializeOwned> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Ok(Lenient(decode_collecting(value)))
    }
}

/// Decodes `value` as `T`, collecting every shape error it can find.
///
/// serde stops at the first error, so this retries: an unknown key is removed
/// and decoding goes on; a value of the wrong type is recorded and removed. If
/// that leaves a required field missing, the follow-on "missing field" is not
/// reported again (the real cause already was) and the enclosing value is
/// given up.
pub fn decode_collecting<T: DeserializeOwned>(mut value: Value) -> Decoded<T> {
    let mut errors = Vec::new();
    let mut removed: Vec<Place> = Vec::new();
    // Each round removes one node, so the loop ends; the bound is a backstop.
    for _ in 0..256 {
        let error = match serde_path_to_error::deserialize::<_, T>(value.clone()) {
            Ok(decoded) => {
                return Decoded {
                    value: Some(decoded),
                    errors,
                };
            }
            Err(e) => e,
        };
        let place = place_of(error.path());
        let raw_message = error.inner().to_string();
        let message = tidy_serde_message(&raw_message);
        let follow_on = raw_message
            .strip_prefix("missing field `")
            .and_then(|rest| rest.strip_suffix('`'))
            .is_some_and(|field| removed.contains(&place.key(field)));
        if !follow_on {
            errors.push(ConfigError::new(place.clone(), message));
        }
        // A bad list element takes its list with it: removing only the element
        // would renumber the ones after it and misplace their errors.
        let mut target = if follow_on {
            place.parent()
        } else {
            Some(place)
        };
        if let Some(t) = &target {
            if matches!(t.steps().last(), Some(super::error::Step::Index(_))) {
                target = t.parent();
            }
        }
        match target {
            Some(t) if !t.is_root() && remove_at(&mut value, &t) => removed.push(t),
            _ => break,
        }
    }
    Decoded {
        value: None,
        errors,
    }
}

fn place_of(path: &serde_path_to_error::Path) -> Place {
    let mut place = Place::root();
    for segment in path.iter() {
        place = match segment {
            serde_path_to_error::Segment::Seq { index } => place.index(*index),
            serde_path_to_error::Segment::Map { key } => place.key(key.clone()),
            serde_path_to_error::Segment::Enum { variant } => place.key(variant.clone()),
            serde_path_to_error::Segment::Unknown => place,
        };
    }
    place
}

/// serde's messages name Rust types; say what the file needs instead.
fn tidy_serde_message(message: &str) -> String {
    let message = message
        .replace("untagged enum Scalar", "a number or text")
        .replace("struct RawRoute", "a route (a mapping)")
        .replace("struct RawBackend", "a backend (a mapping)")
        .replace("struct RawTenantSource", "a tenant rule (a mapping)")
        .replace("struct RawMatch", "a match block (a mapping)")
        .replace("struct RawShadow", "a shadow block (a mapping)")
        .replace("struct RawCompare", "a compare block (a mapping)")
        .replace("struct RawGuard", "a guard block (a mapping)")
        .replace("struct RawRollout", "a rollout block (a mapping)")
        .replace("struct RawRecord", "a record block (a mapping)")
        .replace("struct RawReplay", "a replay block (a mapping)")
        .replace(
            "data did not match any variant of untagged enum RawHeaderValue",
            "expected a header value: text, or { env: NAME }",
        )
        .replace("struct RawAdmin", "an admin block (a mapping)")
        .replace("struct RawTls", "a tls block (a mapping)")
        .replace("struct RawAccessLog", "an access_log block (a mapping)")
        .replace("struct RawRewrite", "a rewrite block (a mapping)")
        .replace("struct RawUpstreamTls", "a tls block (a mapping)")
        .replace("struct RawHealth", "a health block (a mapping)")
        .replace("struct RawConfig", "a mapping");
    if let Some(rest) = message.strip_prefix("unknown field `") {
        if let Some((field, expected)) = rest.split_once("`, expected ") {
            let expected = expected.replace('`', "");
            return format!("unknown key {field:?} (expected {expected})");
        }
    }
    message.replace('`', "\"")
}

fn remove_at(value: &mut Value, place: &Place) -> bool {
    use super::error::Step;
    let steps = place.steps();
    let Some((last, parents)) = steps.split_last() else {
        return false;
    };
    let mut node = value;
    for step in parents {
        node = match (step, node) {
            (Step::Key(k), Value::Mapping(m)) => match m.get_mut(k.as_str()) {
                Some(v) => v,
                None => return false,
            },
            (Step::Index(i), Value::Sequence(s)) => match s.get_mut(*i) {
                Some(v) => v,
                None => return false,
            },
            (step, Value::Tagged(t)) => match (step, &mut t.value) {
                (Step::Key(k), Value::Mapping(m)) => match m.get_mut(k.as_str()) {
                    Some(v) => v,
                    None => return false,
                },
                _ => return false,
            },
            _ => return false,
        };
    }
    match (last, node) {
        (Step::Key(k), Value::Mapping(m)) => m.remove(k.as_str()).is_some(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors_of<T: DeserializeOwned + fmt::Debug>(yaml: &str) -> Vec<String> {
        let value: Value = serde_yaml::from_str(yaml).unwrap();
        let decoded = decode_collecting::<T>(value);
        assert!(
            !decoded.errors.is_empty(),
            "expected errors, decoded {:?}",
            decoded.value
        );
        decoded.errors.iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn every_unknown_key_is_reported() {
        let errors = errors_of::<RawRoute>(
            "name: a\nmatch: {path: /a, methdos: [GET], hots: x}\nnew: b\ncanery: 5\n",
        );
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(
            errors[0].starts_with("match.methdos: unknown key \"methdos\""),
            "{errors:?}"
        );
        assert!(errors.iter().any(|e| e.starts_with("match.hots:")));
        assert!(errors.iter().any(|e| e.starts_with("canery:")));
    }

    #[test]
    fn a_bad_required_value_is_reported_once() {
        let errors = errors_of::<RawTls>("listen: [1, 2]\ncert: a\nkey: b\n");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].starts_with("listen: invalid type"), "{errors:?}");
    }

    #[test]
    fn elements_are_decoded_one_by_one() {
        let raw: RawConfig = serde_yaml::from_str(
            "version: 1\nroutes:\n  - name: a\n    bogus: 1\n  - name: b\n    new: x\n",
        )
        .unwrap();
        assert_eq!(raw.routes[0].0.errors.len(), 1);
        assert!(
            raw.routes[0].0.value.is_some(),
            "the rest of the route is still checked"
        );
        assert!(raw.routes[1].0.errors.is_empty());
    }

    #[test]
    fn scalars_keep_their_text() {
        assert_eq!(Scalar::Number(10.0).as_text(), "10");
        assert_eq!(Scalar::Number(2.5).as_text(), "2.5");
        assert_eq!(Scalar::Text("2s".into()).as_text(), "2s");
    }
}
