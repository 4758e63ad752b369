//! The decoding machinery under the file format's types: the [`Scalar`]
//! leaf, the order-keeping [`OrderedMap`], and [`Lenient`] elements with
//! [`decode_collecting`], which gathers every shape error of a value instead
//! of stopping at the first. Unknown keys get a "did you mean" from the keys
//! the type expects. [`decode_strict`] is the one-pass reading for a file
//! with no shape errors, tried first.
//!
//! The wrappers here decode more loosely than serde's derives would, so their
//! JSON Schemas are written by hand to say what they accept.

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{DeserializeOwned, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_yaml::Value;

use super::events;
use super::strict::TextOnly;
use crate::config::error::{ConfigError, Place, Step};

/// A leaf whose meaning `compile` decides: `10`, `12.5`, `"2s"`, `1MiB`.
/// Reading it as either a number or a text keeps "wrong unit" a semantic error
/// with a helpful message instead of a serde type error.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(untagged)]
#[schemars(description = "A number or a text; the key says which units it takes.")]
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
                let mut entries: Vec<(String, V)> = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, V>()? {
                    entries.push((k, v));
                }
                // Parsing into a YAML value refuses a repeated key; reading
                // straight from the parser must refuse it too.
                let mut seen = std::collections::HashSet::with_capacity(entries.len());
                if let Some((k, _)) = entries.iter().find(|(k, _)| !seen.insert(k.as_str())) {
                    return Err(serde::de::Error::custom(format!(
                        "duplicate entry with key {k:?}"
                    )));
                }
                Ok(OrderedMap(entries))
            }
        }
        deserializer.deserialize_map(MapVisitor(PhantomData))
    }
}

/// A mapping from names to `V`; an empty value (`key:` alone) reads as no
/// entries.
impl<V: JsonSchema> JsonSchema for OrderedMap<V> {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        format!("Map_of_{}", V::schema_name()).into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": ["object", "null"],
            "additionalProperties": generator.subschema_for::<V>(),
        })
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

/// Decoding one by one changes how errors are collected, not what is
/// accepted: the schema is `T`'s.
impl<T: JsonSchema> JsonSchema for Lenient<T> {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        T::schema_name()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        generator.subschema_for::<T>()
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if STRICT.get() {
            let value = T::deserialize(deserializer)?;
            return Ok(Lenient(Decoded {
                value: Some(value),
                errors: Vec::new(),
            }));
        }
        let value = Value::deserialize(deserializer)?;
        Ok(Lenient(decode_collecting(&value)))
    }
}

thread_local! {
    /// Set while [`decode_strict`] runs on this thread: a [`Lenient`] element
    /// then decodes straight from the parser and fails the whole reading at
    /// its first error, instead of taking a copy to collect errors from.
    static STRICT: Cell<bool> = const { Cell::new(false) };
}

/// Decodes YAML text straight into `T` in one pass, or gives `None` at the
/// first problem of any kind. A file with no shape errors (every reload of a
/// file that checks) then needs no YAML value, no copy of each element and
/// no vector of all the parser's events ([`events`]). A file with errors,
/// or with YAML the one-pass reading leaves alone (anchors, tags), is read
/// again through [`decode_collecting`], which finds every error and
/// accepts the same files (a test and the `config` fuzz target hold the two
/// to the same result).
pub fn decode_strict<T: DeserializeOwned>(text: &str) -> Option<T> {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            STRICT.set(self.0);
        }
    }
    let _restore = Restore(STRICT.replace(true));
    events::read(text, |reader| T::deserialize(TextOnly(reader))).ok()
}

/// Decodes `value` as `T`, collecting every shape error it can find.
///
/// serde stops at the first error, so this retries: an unknown key is removed
/// and decoding goes on; a value of the wrong type is recorded and removed. If
/// that leaves a required field missing, the follow-on "missing field" is not
/// reported again (the real cause already was) and the enclosing value is
/// given up.
pub fn decode_collecting<T: DeserializeOwned>(value: &Value) -> Decoded<T> {
    // Most values are well formed: read them in place, and copy one only
    // to take its bad parts out.
    let first = match serde_path_to_error::deserialize::<_, T>(value) {
        Ok(decoded) => {
            return Decoded {
                value: Some(decoded),
                errors: Vec::new(),
            };
        }
        Err(e) => e,
    };
    let mut value = value.clone();
    let mut errors = Vec::new();
    let mut removed: Vec<Place> = Vec::new();
    let mut pending = Some(first);
    // Each round removes one node, so the loop ends; the bound is a backstop.
    for _ in 0..256 {
        let error = match pending.take() {
            Some(e) => e,
            None => match serde_path_to_error::deserialize::<_, T>(&value) {
                Ok(decoded) => {
                    return Decoded {
                        value: Some(decoded),
                        errors,
                    };
                }
                Err(e) => e,
            },
        };
        let place = place_of(error.path());
        let raw_message = error.inner().to_string();
        let message = tidy_serde_message(&raw_message);
        let follow_on = raw_message
            .strip_prefix("missing field `")
            .and_then(|rest| rest.strip_suffix('`'))
            .is_some_and(|field| removed.contains(&place.key(field.to_owned())));
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
            if matches!(t.steps().last(), Some(Step::Index(_))) {
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
            let keys = expected
                .strip_prefix("one of ")
                .unwrap_or(&expected)
                .split(", ")
                .flat_map(|k| k.split(" or "))
                .map(str::trim);
            return match closest(field, keys) {
                Some(key) => format!("unknown key {field:?} (did you mean `{key}`?)"),
                None => format!("unknown key {field:?} (expected {expected})"),
            };
        }
    }
    message.replace('`', "\"")
}

/// The expected key `typed` was most likely meant to be, if one is close:
/// a slip of a letter or two (`canery`, `methdos`) by edit distance, or a
/// longer key begun right (`max_diff` for `max_diff_rate`) by Jaro-Winkler.
/// When nothing is that close, the caller lists every key instead, which
/// helps more than a wrong guess.
fn closest<'a>(typed: &str, expected: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let expected: Vec<&str> = expected.filter(|k| !k.is_empty()).collect();
    // Two edits turn a three-letter key into almost anything else.
    let max_edits = if typed.chars().count() <= 3 { 1 } else { 2 };
    let by_edits = expected
        .iter()
        .map(|k| (strsim::damerau_levenshtein(typed, k), *k))
        .filter(|(d, _)| *d <= max_edits)
        .min_by_key(|(d, _)| *d);
    if let Some((_, key)) = by_edits {
        return Some(key);
    }
    expected
        .iter()
        .map(|k| (strsim::jaro_winkler(typed, k), *k))
        .filter(|(s, _)| *s >= 0.9)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, key)| key)
}

fn remove_at(value: &mut Value, place: &Place) -> bool {
    let steps = place.steps();
    let Some((last, parents)) = steps.split_last() else {
        return false;
    };
    let mut node = value;
    for step in parents {
        node = match (step, node) {
            (Step::Key(k), Value::Mapping(m)) => match m.get_mut(k.as_ref()) {
                Some(v) => v,
                None => return false,
            },
            (Step::Index(i), Value::Sequence(s)) => match s.get_mut(*i) {
                Some(v) => v,
                None => return false,
            },
            (step, Value::Tagged(t)) => match (step, &mut t.value) {
                (Step::Key(k), Value::Mapping(m)) => match m.get_mut(k.as_ref()) {
                    Some(v) => v,
                    None => return false,
                },
                _ => return false,
            },
            _ => return false,
        };
    }
    match (last, node) {
        (Step::Key(k), Value::Mapping(m)) => m.remove(k.as_ref()).is_some(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::raw::{RawConfig, RawRoute, RawTls};

    fn errors_of<T: DeserializeOwned + fmt::Debug>(yaml: &str) -> Vec<String> {
        let value: Value = serde_yaml::from_str(yaml).unwrap();
        let decoded = decode_collecting::<T>(&value);
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
    fn near_misses_get_a_suggestion_and_far_ones_the_list() {
        let route_keys = ["name", "match", "legacy", "new", "canary", "shadow"];
        assert_eq!(closest("canery", route_keys.into_iter()), Some("canary"));
        assert_eq!(closest("nwe", route_keys.into_iter()), Some("new"));
        assert_eq!(closest("mach", route_keys.into_iter()), Some("match"));
        assert_eq!(closest("tls", route_keys.into_iter()), None);
        assert_eq!(closest("backends", route_keys.into_iter()), None);
        let shadow_keys = ["percent", "max_body", "max_diff_rate", "min_samples"];
        assert_eq!(
            closest("max_diff", shadow_keys.into_iter()),
            Some("max_diff_rate")
        );
        let message =
            tidy_serde_message("unknown field `canery`, expected one of `name`, `canary`");
        assert_eq!(message, "unknown key \"canery\" (did you mean `canary`?)");
        let message = tidy_serde_message("unknown field `zzz`, expected `name` or `canary`");
        assert_eq!(message, "unknown key \"zzz\" (expected name or canary)");
        let message = tidy_serde_message("unknown field `nme`, expected `name` or `canary`");
        assert_eq!(message, "unknown key \"nme\" (did you mean `name`?)");
    }

    #[test]
    fn scalars_keep_their_text() {
        assert_eq!(Scalar::Number(10.0).as_text(), "10");
        assert_eq!(Scalar::Number(2.5).as_text(), "2.5");
        assert_eq!(Scalar::Text("2s".into()).as_text(), "2s");
    }
}
