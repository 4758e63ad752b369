//! The one-pass reading's deserializer: serde straight over the YAML
//! parser's events, one at a time, for [`super::decode_strict`].
//!
//! serde_yaml collects every event of a document in one vector before it
//! decodes anything (145,000 events, about 14 MB, for 10,000 routes): that
//! vector, grown by copying, and its loader were a third of a reload. Here
//! the events come from libyaml-safer, a line-by-line port of the same
//! libyaml that serde_yaml runs, so both read one dialect, and each event is
//! decoded as it is parsed.
//!
//! Only the common shape is read: mappings, sequences and scalars without
//! anchors, aliases or tags, in one document without directives. Plain
//! scalars are resolved as serde_yaml resolves them (null, booleans,
//! integers, floats, else text), and where that resolution has corners (a
//! sign, a leading dot, `0x`, integers past 64 bits) this reader gives up
//! instead of copying them. Giving up is never an answer about the file: the
//! caller then reads it through serde_yaml's value, which finds and places
//! every error. Tests and the `config` fuzz target hold the two readings to
//! the same result.

use std::fmt;
use std::io::BufRead;

use libyaml_safer::{EventData, Parser, ScalarStyle};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// serde_yaml's own nesting limit, so that a file too deep for the
/// collecting reading is never read here.
const MAX_DEPTH: usize = 128;

/// Why the one-pass reading stopped: a shape error, a parse error, or a
/// part of YAML it leaves to the collecting reading. Only logged by tests.
#[derive(Debug)]
pub(super) struct GaveUp(String);

impl fmt::Display for GaveUp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for GaveUp {}

impl de::Error for GaveUp {
    fn custom<T: fmt::Display>(message: T) -> Self {
        GaveUp(message.to_string())
    }
}

fn gave_up(why: &str) -> GaveUp {
    GaveUp(why.to_string())
}

/// Reads `text` as one YAML document with `decode`, and checks that nothing
/// follows it.
///
/// libyaml-safer 0.3 panics on some input where the C libyaml reads the
/// zero padding after its buffer: text that ends without a line break in
/// a block scalar or a double-quoted escape (`a: |` then `  x` and the end
/// of the file; `"\\` and the end), and a tag before a comma in a flow
/// sequence (`[!a,]`), all found by the `config` fuzz target. Text that
/// could hold those (not ending in a line break, as files an editor writes
/// do; a `!` anywhere) is left to serde_yaml without parsing it here, and a
/// panic in the parser all the same is caught and is giving up, so that a
/// bad file gets serde_yaml's error and a reload goes on.
pub(super) fn read<'t, T>(
    text: &'t str,
    decode: impl FnOnce(&mut EventReader<&'t [u8]>) -> Result<T, GaveUp>,
) -> Result<T, GaveUp> {
    if !text.ends_with('\n') || text.contains('!') {
        return Err(gave_up("no line break at the end, or a tag"));
    }
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| read_document(text, decode)))
        .unwrap_or_else(|_| Err(gave_up("the parser panicked")))
}

fn read_document<'t, T>(
    text: &'t str,
    decode: impl FnOnce(&mut EventReader<&'t [u8]>) -> Result<T, GaveUp>,
) -> Result<T, GaveUp> {
    let mut parser = Parser::new();
    parser.set_input(text.as_bytes());
    let mut reader = EventReader {
        parser,
        peeked: None,
        depth: 0,
    };
    if !matches!(reader.next()?, EventData::StreamStart { .. }) {
        return Err(gave_up("no stream start"));
    }
    match reader.next()? {
        EventData::DocumentStart {
            version_directive: None,
            tag_directives,
            ..
        } if tag_directives.is_empty() => {}
        _ => return Err(gave_up("directives, or no document")),
    }
    let value = decode(&mut reader)?;
    if !matches!(reader.next()?, EventData::DocumentEnd { .. }) {
        return Err(gave_up("more after the document's value"));
    }
    // A second document is refused by serde_yaml; parsing on to the end of
    // the stream also finds a syntax error anywhere after the value.
    match reader.next()? {
        EventData::StreamEnd => Ok(value),
        _ => Err(gave_up("more than one document")),
    }
}

/// The parser and the one event looked at but not yet taken.
pub(super) struct EventReader<R> {
    parser: Parser<R>,
    peeked: Option<EventData>,
    depth: usize,
}

impl<R: BufRead> EventReader<R> {
    fn next(&mut self) -> Result<EventData, GaveUp> {
        match self.peeked.take() {
            Some(event) => Ok(event),
            None => self
                .parser
                .parse()
                .map(|event| event.data)
                .map_err(|e| GaveUp(e.to_string())),
        }
    }

    fn peek(&mut self) -> Result<&EventData, GaveUp> {
        if self.peeked.is_none() {
            self.peeked = Some(self.next()?);
        }
        Ok(self.peeked.as_ref().expect("just filled"))
    }

    /// Reads a collection's entries with `visit` (a visitor's `visit_seq`
    /// or `visit_map`), which must read up to the collection's end.
    fn entries<T>(
        &mut self,
        visit: impl FnOnce(&mut Entries<'_, R>) -> Result<T, GaveUp>,
    ) -> Result<T, GaveUp> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(gave_up("nested too deep"));
        }
        let mut entries = Entries {
            reader: self,
            ended: false,
        };
        let value = visit(&mut entries)?;
        if !entries.ended {
            return Err(gave_up("a collection not read to its end"));
        }
        self.depth -= 1;
        Ok(value)
    }
}

/// Whether a plain scalar is YAML's null, as serde_yaml reads it (an empty
/// value included).
fn is_null(text: &str) -> bool {
    matches!(text, "" | "~" | "null" | "Null" | "NULL")
}

/// A plain (unquoted) scalar as serde_yaml resolves one without a tag.
fn visit_plain<'de, V: Visitor<'de>>(visitor: V, text: String) -> Result<V::Value, GaveUp> {
    if is_null(&text) {
        return visitor.visit_unit();
    }
    match text.as_str() {
        "true" | "True" | "TRUE" => return visitor.visit_bool(true),
        "false" | "False" | "FALSE" => return visitor.visit_bool(false),
        _ => {}
    }
    let bytes = text.as_bytes();
    match bytes[0] {
        b'0'..=b'9' => {}
        // A sign or a leading dot may make a number (`-1`, `+5`, `.5`,
        // `.inf`): left to serde_yaml.
        b'+' | b'-' | b'.' => return Err(gave_up("a signed or dotted number")),
        // Not an integer in any base, and the only floats Rust parses from
        // a letter are infinities and NaN, which serde_yaml takes as text.
        _ => return visitor.visit_string(text),
    }
    if bytes.iter().all(u8::is_ascii_digit) {
        // YAML 1.2: a leading zero before more digits is text, not octal.
        if bytes.len() > 1 && bytes[0] == b'0' {
            return visitor.visit_string(text);
        }
        return match text.parse::<u64>() {
            Ok(n) => visitor.visit_u64(n),
            Err(_) => Err(gave_up("an integer beyond 64 bits")),
        };
    }
    if bytes.len() > 1 && bytes[0] == b'0' && matches!(bytes[1], b'x' | b'o' | b'b') {
        return Err(gave_up("an integer in another base"));
    }
    // Digits and more: no integer; a finite float if Rust reads one (as
    // serde_yaml decides), else text (`2s`, `1MiB`, `1e999`).
    match text.parse::<f64>() {
        Ok(f) if f.is_finite() => visitor.visit_f64(f),
        _ => visitor.visit_string(text),
    }
}

impl<'de, R: BufRead> Deserializer<'de> for &mut EventReader<R> {
    type Error = GaveUp;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, GaveUp> {
        match self.next()? {
            EventData::Scalar {
                anchor: None,
                tag: None,
                value,
                style,
                ..
            } => match style {
                ScalarStyle::Plain => visit_plain(visitor, value),
                _ => visitor.visit_string(value),
            },
            EventData::SequenceStart {
                anchor: None,
                tag: None,
                ..
            } => self.entries(|entries| visitor.visit_seq(entries)),
            EventData::MappingStart {
                anchor: None,
                tag: None,
                ..
            } => self.entries(|entries| visitor.visit_map(entries)),
            _ => Err(gave_up("an anchor, alias or tag")),
        }
    }

    /// An absent value (`key:`, `~`, `null`) is `None`, as in serde_yaml.
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, GaveUp> {
        let is_null = matches!(
            self.peek()?,
            EventData::Scalar {
                anchor: None,
                tag: None,
                style: ScalarStyle::Plain,
                value,
                ..
            } if is_null(value)
        );
        if is_null {
            self.next()?;
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, GaveUp> {
        visitor.visit_newtype_struct(self)
    }

    /// No type of the file format is an externally tagged enum.
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, GaveUp> {
        Err(gave_up("an enum"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map struct
        identifier ignored_any
    }
}

/// A sequence's elements or a mapping's entries, up to the collection's end.
struct Entries<'r, R> {
    reader: &'r mut EventReader<R>,
    ended: bool,
}

impl<R: BufRead> Entries<'_, R> {
    /// Whether the next event ends the collection (and takes it if so).
    fn at_end(&mut self) -> Result<bool, GaveUp> {
        if self.ended {
            return Ok(true);
        }
        if matches!(
            self.reader.peek()?,
            EventData::SequenceEnd | EventData::MappingEnd
        ) {
            self.reader.next()?;
            self.ended = true;
        }
        Ok(self.ended)
    }
}

impl<'de, R: BufRead> SeqAccess<'de> for &mut Entries<'_, R> {
    type Error = GaveUp;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, GaveUp> {
        if self.at_end()? {
            return Ok(None);
        }
        seed.deserialize(&mut *self.reader).map(Some)
    }
}

impl<'de, R: BufRead> MapAccess<'de> for &mut Entries<'_, R> {
    type Error = GaveUp;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, GaveUp> {
        if self.at_end()? {
            return Ok(None);
        }
        seed.deserialize(&mut *self.reader).map(Some)
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, GaveUp> {
        seed.deserialize(&mut *self.reader)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    fn value(text: &str) -> Result<serde_yaml::Value, GaveUp> {
        read(text, |reader| serde_yaml::Value::deserialize(reader))
    }

    /// Every plain scalar this reader resolves, it resolves as serde_yaml
    /// does; the ones it leaves are those with a sign, a dot or a base.
    #[test]
    fn plain_scalars_resolve_as_in_serde_yaml() {
        for text in [
            "",
            "~",
            "null",
            "Null",
            "NULL",
            "nULL",
            "true",
            "True",
            "TRUE",
            "tRUE",
            "false",
            "yes",
            "no",
            "on",
            "0",
            "7",
            "10",
            "007",
            "0.5",
            "12.5",
            "1e1",
            "1E3",
            "2s",
            "1MiB",
            "100MiB",
            "10m",
            "1.5.3",
            "1e999",
            "18446744073709551615",
            "inf",
            "nan",
            "infinity",
            "a",
            "/api/orders",
            "1_000",
            "1.",
            "0e0",
        ] {
            let yaml = format!("k: {text}\n");
            let ours = value(&yaml).unwrap_or_else(|e| panic!("{text:?}: {e}"));
            let theirs: serde_yaml::Value = serde_yaml::from_str(&yaml).unwrap();
            assert_eq!(ours, theirs, "{text:?}");
        }
        for text in [
            "-1",
            "+1",
            ".5",
            ".inf",
            "-.inf",
            ".nan",
            "0x1F",
            "0o17",
            "0b1",
            "18446744073709551616",
        ] {
            assert!(value(&format!("k: {text}\n")).is_err(), "{text:?}");
        }
    }

    #[test]
    fn quoted_and_block_scalars_are_text() {
        let yaml = "a: '5'\nb: \"true\"\nc: |\n  x\nd: >\n  y\n";
        let ours = value(yaml).unwrap();
        let theirs: serde_yaml::Value = serde_yaml::from_str(yaml).unwrap();
        assert_eq!(ours, theirs);
    }

    #[test]
    fn what_it_leaves_to_serde_yaml() {
        for yaml in [
            "a: &x 1\nb: *x\n",
            "a: !!str 1\n",
            "a: !custom x\n",
            "%YAML 1.1\n---\na: 1\n",
            "a: 1\n---\nb: 2\n",
            "a: [1, 2\n",
            "a: 1\n b: 2\n",
        ] {
            assert!(value(yaml).is_err(), "{yaml:?}");
        }
        let deep = format!("{}1{}\n", "[".repeat(200), "]".repeat(200));
        assert!(value(&deep).is_err());
        let deep_enough = format!("{}1{}\n", "[".repeat(100), "]".repeat(100));
        assert!(value(&deep_enough).is_ok());
    }

    /// Inputs on which libyaml-safer 0.3's parser panics: given up on
    /// before it runs, so neither a reload nor the fuzz target sees a panic.
    #[test]
    fn input_the_parser_would_panic_on_is_left_alone() {
        for yaml in [
            "\"\\",
            "k: \"a\\",
            "a: |\n  x",
            "a: >\n  x",
            ">\n :Q ",
            "[!a,]\n",
        ] {
            assert!(value(yaml).is_err(), "{yaml:?}");
        }
    }

    #[test]
    fn collections_and_options() {
        #[derive(Debug, Deserialize, PartialEq)]
        struct S {
            a: Option<Vec<u16>>,
            b: Option<String>,
            c: Option<String>,
        }
        let s: S = read("a: [1, 2]\nb:\nc: x\n", |r| S::deserialize(r)).unwrap();
        assert_eq!(
            s,
            S {
                a: Some(vec![1, 2]),
                b: None,
                c: Some("x".into())
            }
        );
    }
}
