//! The request's header fields as routing reads them: the values of a
//! field by its lowercase name, in the order the client sent them. Pingora's
//! engine routes on its parsed `http::HeaderMap`; the fast path routes on
//! the fields where they lie in the bytes it read (no map, no copy). Both
//! give routing the same answers, so a request routes the same on either
//! path.

use http::HeaderMap;

/// A request's header fields, looked up by lowercase name.
pub trait RequestHeaders {
    /// Each value of the field `name` (lowercase), in the order sent.
    fn values_of<'s>(&'s self, name: &str) -> impl Iterator<Item = &'s [u8]>;

    /// The first value of `name`.
    fn first<'s>(&'s self, name: &str) -> Option<&'s [u8]> {
        self.values_of(name).next()
    }

    /// Whether the request has a field `name`.
    fn contains(&self, name: &str) -> bool {
        self.values_of(name).next().is_some()
    }

    /// The first value of `name` as text, if it is visible ASCII (as
    /// `http::HeaderValue::to_str` judges).
    fn first_text<'s>(&'s self, name: &str) -> Option<&'s str> {
        self.first(name).and_then(visible_text)
    }
}

impl RequestHeaders for HeaderMap {
    fn values_of<'s>(&'s self, name: &str) -> impl Iterator<Item = &'s [u8]> {
        self.get_all(name).iter().map(|v| v.as_bytes())
    }
}

/// `value` as text when every byte is a tab or visible ASCII (space
/// included), the rule of `http::HeaderValue::to_str`; `None` otherwise.
pub fn visible_text(value: &[u8]) -> Option<&str> {
    if value
        .iter()
        .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b))
    {
        std::str::from_utf8(value).ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visible_text_is_header_value_to_str() {
        for bytes in [
            &b"plain"[..],
            b"with space\tand tab",
            b"caf\xc3\xa9",
            b"del\x7f",
            b"nul\x00",
            b"",
        ] {
            let expected = http::HeaderValue::from_bytes(bytes)
                .ok()
                .and_then(|v| v.to_str().ok().map(str::to_string));
            assert_eq!(
                visible_text(bytes).map(str::to_string),
                expected,
                "{bytes:?}"
            );
        }
    }

    #[test]
    fn a_map_gives_every_value_in_order() {
        let mut map = HeaderMap::new();
        map.append("cookie", "a=1".parse().unwrap());
        map.append("x-other", "z".parse().unwrap());
        map.append("cookie", "b=2".parse().unwrap());
        let values: Vec<_> = map.values_of("cookie").collect();
        assert_eq!(values, [&b"a=1"[..], b"b=2"]);
        assert_eq!(map.first_text("x-other"), Some("z"));
        assert!(!map.contains("host"));
    }
}
