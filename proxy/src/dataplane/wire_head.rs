//! The heads the fast path writes itself, into one buffer: the upstream
//! request's, from the client's parsed header and the exchange's edits
//! ([`UpstreamEdits`](super::exchange::UpstreamEdits)), and the client's
//! answer's, from the upstream's parsed answer and the proxy's own fields
//! (the request id, `Date`, `Connection`). The engine's way to the same
//! bytes is a copy of the parsed header edited through Pingora's header API
//! and then serialised, which costs about four allocations for every header
//! it sets (each name is parsed and copied, then recorded again in the map
//! that keeps its case) and copies the whole header once more.
//!
//! The bytes are the engine's, exactly: fields come out in the order of
//! Pingora's header map, which groups repeated names at the place of their
//! first appearance, puts a set field in the place of the one it replaces
//! (or last), and fills the place of a removed name with the map's last
//! entry. Unit tests below hold both heads to Pingora's own serialisers.

use std::cell::{Cell, RefCell};

use pingora::http::{HeaderNameVariant, RequestHeader, ResponseHeader};
use pingora::{Error, ErrorType, Result};

use super::exchange::{EditValue, HeaderEdit};

/// One name's place in the head being written.
#[derive(Debug, Clone, Copy)]
enum Place {
    /// The parsed head's fields of one name: their lines in
    /// `Scratch::lines` (`from..to`), the name being the first `name_len`
    /// bytes.
    Parsed { from: u32, to: u32, name_len: u32 },
    /// Set by the edit of this index.
    Edited(u32),
}

/// Buffers kept per thread, so writing a head allocates only its output.
#[derive(Default)]
struct Scratch {
    lines: Vec<u8>,
    places: Vec<Place>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::default();
    static OUTPUT: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// An empty buffer to write a head into, this thread's own when it is free
/// (it is held across the write, so another exchange on the thread may find
/// it taken and get a new one). Give it back with [`give_back`].
pub(super) fn buffer() -> Vec<u8> {
    OUTPUT.take()
}

/// Returns a buffer from [`buffer`] for the thread's next head.
pub(super) fn give_back(mut buffer: Vec<u8>) {
    if buffer.capacity() <= 64 * 1024 {
        buffer.clear();
        OUTPUT.set(buffer);
    }
}

/// A parsed head whose fields (name and value) can be visited in the order
/// of Pingora's header map (request or answer).
pub(super) trait Fields {
    fn visit(&self, f: impl FnMut(&[u8], &[u8]));
}

/// Where one field of a head read in place lies in its buffer.
#[derive(Debug, Clone)]
pub(super) struct FieldAt {
    pub(super) name: std::ops::Range<usize>,
    pub(super) value: std::ops::Range<usize>,
}

/// Where `part`, a slice of `buffer` (or empty), lies in it. An empty
/// slice need not point into the buffer, so it is placed at `0..0`.
pub(super) fn place_of(buffer: &[u8], part: &[u8]) -> std::ops::Range<usize> {
    match part.len() {
        0 => 0..0,
        n => {
            let from = part.as_ptr() as usize - buffer.as_ptr() as usize;
            from..from + n
        }
    }
}

/// Visits the fields of a head read in place (`fields` into `bytes`) in
/// the order of Pingora's header map: each name at the place of its first
/// field, its later fields right after it.
pub(super) fn visit_in_map_order(
    bytes: &[u8],
    fields: &[FieldAt],
    mut f: impl FnMut(&[u8], &[u8]),
) {
    let name = |field: &FieldAt| &bytes[field.name.clone()];
    for (i, field) in fields.iter().enumerate() {
        let this = name(field);
        let seen = fields[..i]
            .iter()
            .any(|earlier| same_name(name(earlier), this));
        if seen {
            continue;
        }
        f(this, &bytes[field.value.clone()]);
        for later in &fields[i + 1..] {
            if same_name(name(later), this) {
                f(name(later), &bytes[later.value.clone()]);
            }
        }
    }
}

pub(super) fn same_name(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.eq_ignore_ascii_case(b)
}

/// A name of a Pingora header, in the case it was read.
fn name_bytes<'a>(name: HeaderNameVariant<'a>) -> &'a [u8] {
    match name {
        HeaderNameVariant::Case(case) => case.as_slice(),
        HeaderNameVariant::Titled(titled) => titled.as_bytes(),
    }
}

impl Fields for RequestHeader {
    fn visit(&self, mut f: impl FnMut(&[u8], &[u8])) {
        let _ = self.map(|name, value| {
            f(name_bytes(name), value.as_bytes());
            Ok(())
        });
    }
}

impl Fields for ResponseHeader {
    fn visit(&self, mut f: impl FnMut(&[u8], &[u8])) {
        let _ = self.map(|name, value| {
            f(name_bytes(name), value.as_bytes());
            Ok(())
        });
    }
}

/// A parsed request's head: its fields, method and version.
pub(super) trait RequestHead: Fields {
    fn method(&self) -> &[u8];
    fn version(&self) -> http::Version;
}

impl RequestHead for RequestHeader {
    fn method(&self) -> &[u8] {
        self.method.as_str().as_bytes()
    }

    fn version(&self) -> http::Version {
        self.version
    }
}

/// A parsed answer's head: its fields, status and reason phrase as
/// Pingora's session writes them, and its version.
pub(super) trait AnswerHead: Fields {
    fn status(&self) -> u16;
    fn reason(&self) -> &[u8];
    fn version(&self) -> http::Version;
}

impl AnswerHead for ResponseHeader {
    fn status(&self) -> u16 {
        self.status.as_u16()
    }

    fn reason(&self) -> &[u8] {
        self.get_reason_phrase().unwrap_or("").as_bytes()
    }

    fn version(&self) -> http::Version {
        self.version
    }
}

/// Appends to `out` the request head the upstream gets: `req`'s method,
/// `target` and version, its fields with `edits` applied in order, and the
/// blank line.
pub(super) fn write_request(
    req: &impl RequestHead,
    target: &[u8],
    edits: &[HeaderEdit<'_>],
    out: &mut Vec<u8>,
) -> Result<()> {
    // As Pingora's serialiser: these would end the request line early.
    if target
        .iter()
        .any(|&b| matches!(b, 0x00 | b'\n' | b'\r' | b' '))
    {
        return Error::e_explain(
            ErrorType::InvalidHTTPHeader,
            "request-line contains forbidden delimiter bytes or unsupported HTTP version",
        );
    }
    check_edits(edits)?;
    let version: &[u8] = match req.version() {
        http::Version::HTTP_10 => b"HTTP/1.0",
        http::Version::HTTP_11 => b"HTTP/1.1",
        _ => {
            return Error::e_explain(
                ErrorType::InvalidHTTPHeader,
                "the fast path writes HTTP/1 requests only",
            );
        }
    };
    let method = req.method();
    out.reserve(method.len() + target.len() + 256);
    out.extend_from_slice(method);
    out.push(b' ');
    out.extend_from_slice(target);
    out.push(b' ');
    out.extend_from_slice(version);
    out.extend_from_slice(b"\r\n");
    write_fields(req, edits, out);
    Ok(())
}

/// Appends to `out` the answer head the client gets: the status line as
/// Pingora writes it (`version`, the status, its reason phrase), `answer`'s
/// fields with `edits` applied in order, and the blank line. The edits'
/// values are the proxy's own (a request id, which is visible ASCII
/// whether made here or kept from a trusted peer, a date, fixed words), so
/// they are not checked again as the request's are.
pub(super) fn write_answer(
    answer: &impl AnswerHead,
    version: http::Version,
    edits: &[HeaderEdit<'_>],
    out: &mut Vec<u8>,
) -> Result<()> {
    let version: &[u8] = match version {
        http::Version::HTTP_09 => b"HTTP/0.9 ",
        http::Version::HTTP_10 => b"HTTP/1.0 ",
        http::Version::HTTP_11 => b"HTTP/1.1 ",
        _ => return Error::e_explain(ErrorType::WriteError, "serializing response header"),
    };
    let status = answer.status();
    if !(100..=999).contains(&status) {
        return Error::e_explain(ErrorType::WriteError, "serializing response header");
    }
    out.reserve(256);
    out.extend_from_slice(version);
    // Three digits, as `StatusCode::as_str`.
    out.extend_from_slice(&[
        b'0' + (status / 100) as u8,
        b'0' + (status / 10 % 10) as u8,
        b'0' + (status % 10) as u8,
    ]);
    out.push(b' ');
    out.extend_from_slice(answer.reason());
    out.extend_from_slice(b"\r\n");
    write_fields(answer, edits, out);
    Ok(())
}

/// As `HeaderValue::from_str`'s check, which the engine's insert of a text
/// makes (no control characters but tab).
fn check_edits(edits: &[HeaderEdit<'_>]) -> Result<()> {
    for edit in edits {
        if let HeaderEdit::Insert(_, EditValue::Text(value)) = edit {
            // Without an early exit, so the loop is vectorised: the values
            // are short and almost always valid.
            let visible = value
                .bytes()
                .fold(true, |ok, b| ok & (b >= 0x20 && b != 0x7f || b == b'\t'));
            if !visible {
                return Error::e_explain(
                    ErrorType::InvalidHTTPHeader,
                    "invalid value while insert",
                );
            }
        }
    }
    Ok(())
}

/// `head`'s fields with `edits` applied, then the blank line.
fn write_fields(head: &impl Fields, edits: &[HeaderEdit<'_>], out: &mut Vec<u8>) {
    SCRATCH.with_borrow_mut(|scratch| {
        let Scratch { lines, places } = scratch;
        lines.clear();
        places.clear();
        collect_fields(head, lines, places);
        for (i, edit) in edits.iter().enumerate() {
            let name = edit.name();
            let found = places
                .iter()
                .position(|p| name_of(*p, lines, edits).eq_ignore_ascii_case(name.as_bytes()));
            match (edit, found) {
                // The map's `remove` swaps its last entry into the gap.
                (HeaderEdit::Remove(_), Some(at)) => {
                    places.swap_remove(at);
                }
                (HeaderEdit::Remove(_), None) => {}
                (HeaderEdit::Insert(..), Some(at)) => places[at] = Place::Edited(i as u32),
                (HeaderEdit::Insert(..), None) => places.push(Place::Edited(i as u32)),
            }
        }
        out.reserve(lines.len() + 128);
        for place in places.iter() {
            match *place {
                Place::Parsed { from, to, .. } => {
                    out.extend_from_slice(&lines[from as usize..to as usize])
                }
                Place::Edited(i) => {
                    if let HeaderEdit::Insert(name, value) = edits[i as usize] {
                        out.extend_from_slice(name.as_bytes());
                        out.extend_from_slice(b": ");
                        out.extend_from_slice(value.as_bytes());
                        out.extend_from_slice(b"\r\n");
                    }
                }
            }
        }
        out.extend_from_slice(b"\r\n");
    });
}

/// The parsed head's fields as lines, one place per name in the map's
/// order (the fields of one name are visited one after another).
fn collect_fields(head: &impl Fields, lines: &mut Vec<u8>, places: &mut Vec<Place>) {
    head.visit(|name, value| {
        let from = lines.len() as u32;
        lines.extend_from_slice(name);
        lines.extend_from_slice(b": ");
        lines.extend_from_slice(value);
        lines.extend_from_slice(b"\r\n");
        let to = lines.len() as u32;
        let same_name = match places.last() {
            Some(&Place::Parsed { from, name_len, .. }) => {
                lines[from as usize..(from + name_len) as usize].eq_ignore_ascii_case(name)
            }
            _ => false,
        };
        match places.last_mut() {
            Some(Place::Parsed { to: last_to, .. }) if same_name => *last_to = to,
            _ => places.push(Place::Parsed {
                from,
                to,
                name_len: name.len() as u32,
            }),
        }
    });
}

fn name_of<'a>(place: Place, lines: &'a [u8], edits: &[HeaderEdit<'_>]) -> &'a [u8] {
    match place {
        Place::Parsed { from, name_len, .. } => &lines[from as usize..(from + name_len) as usize],
        Place::Edited(i) => edits[i as usize].name().as_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The engine's way to apply edits to a head (request or answer):
    /// Pingora's header API.
    macro_rules! edit_like_the_engine {
        ($head:expr, $edits:expr) => {
            for edit in $edits {
                match *edit {
                    HeaderEdit::Remove(name) => {
                        $head.remove_header(name);
                    }
                    HeaderEdit::Insert(name, EditValue::Text(v)) => {
                        $head.insert_header(name, v).unwrap()
                    }
                    HeaderEdit::Insert(name, EditValue::Header(v)) => {
                        $head.insert_header(name, v.clone()).unwrap()
                    }
                    HeaderEdit::Insert(name, EditValue::Id(id)) => {
                        $head.insert_header(name, id.as_str()).unwrap()
                    }
                }
            }
        };
    }

    /// A request header as Pingora's HTTP/1 parser gives it (case kept).
    fn parsed(fields: &[(&str, &str)]) -> RequestHeader {
        let mut h = RequestHeader::build("POST", b"/a?b=1", Some(fields.len())).unwrap();
        for (name, value) in fields {
            h.append_header(name.to_string(), *value).unwrap();
        }
        h
    }

    /// The engine's bytes for the same request and edits.
    fn engine(req: &RequestHeader, edits: &[HeaderEdit<'_>]) -> Vec<u8> {
        let mut copy = req.clone();
        edit_like_the_engine!(copy, edits);
        pingora::protocols::http::v1::client::http_req_header_to_wire(&copy)
            .unwrap()
            .to_vec()
    }

    fn owned(req: &RequestHeader, edits: &[HeaderEdit<'_>]) -> Vec<u8> {
        let mut out = Vec::new();
        write_request(req, req.raw_path(), edits, &mut out).unwrap();
        out
    }

    #[test]
    fn writes_the_engines_bytes_for_every_order_of_fields_and_edits() {
        let host = http::HeaderValue::from_static("shop.example");
        let id = crate::dataplane::ctx::RequestId::generate();
        let edits = [
            HeaderEdit::Remove("connection"),
            HeaderEdit::Insert("x-forwarded-for", EditValue::Text("10.0.0.1, 127.0.0.1")),
            HeaderEdit::Insert("x-forwarded-proto", EditValue::Text("http")),
            HeaderEdit::Insert("x-forwarded-host", EditValue::Header(&host)),
            HeaderEdit::Remove("x-strangler-shadow"),
            HeaderEdit::Insert("x-request-id", EditValue::Id(&id)),
            HeaderEdit::Insert("Host", EditValue::Text("backend.internal")),
        ];
        let fields: &[(&str, &str)] = &[
            ("Host", "shop.example"),
            ("User-Agent", "wrk"),
            ("Connection", "keep-alive"),
            ("X-Forwarded-For", "6.6.6.6"),
            ("accept", "*/*"),
            ("Set-Thing", "1"),
            ("set-thing", "2"),
            ("X-Request-Id", "spoofed"),
            ("X-Strangler-Shadow", "1"),
            ("Content-Length", "3"),
            ("x-forwarded-proto", "https"),
        ];
        // Every rotation of the fields, with every prefix of the edits:
        // removals from the middle, the end and the start of the map, and
        // sets that replace or append.
        for shift in 0..fields.len() {
            let mut rotated = fields.to_vec();
            rotated.rotate_left(shift);
            for n in 0..=edits.len() {
                for take in [fields.len(), fields.len() / 2, 1, 0] {
                    let req = parsed(&rotated[..take]);
                    assert_eq!(
                        String::from_utf8(owned(&req, &edits[..n])).unwrap(),
                        String::from_utf8(engine(&req, &edits[..n])).unwrap(),
                        "fields {:?}, edits {:?}",
                        &rotated[..take],
                        &edits[..n]
                    );
                }
            }
        }
    }

    #[test]
    fn a_header_without_case_is_written_titled_as_pingora_writes_it() {
        let mut req = RequestHeader::build_no_case("GET", b"/", None).unwrap();
        req.append_header("x-a", "1").unwrap();
        req.append_header(http::header::ACCEPT, "*/*").unwrap();
        let edits = [HeaderEdit::Insert("x-request-id", EditValue::Text("1"))];
        assert_eq!(owned(&req, &edits), engine(&req, &edits));
    }

    /// An answer as Pingora's client session gives it, and the bytes its
    /// server session writes for it after the same edits.
    fn answer_both_ways(fields: &[(&str, &str)], edits: &[HeaderEdit<'_>]) -> (String, String) {
        let mut answer = ResponseHeader::build(200, Some(fields.len())).unwrap();
        for (name, value) in fields {
            answer.append_header(name.to_string(), *value).unwrap();
        }
        let mut owned = Vec::new();
        write_answer(&answer, http::Version::HTTP_11, edits, &mut owned).unwrap();
        let mut copy = answer.clone();
        edit_like_the_engine!(copy, edits);
        let mut engine = bytes::BytesMut::from(&b"HTTP/1.1 200 OK\r\n"[..]);
        copy.header_to_h1_wire(&mut engine);
        engine.extend_from_slice(b"\r\n");
        (
            String::from_utf8(owned).unwrap(),
            String::from_utf8(engine.to_vec()).unwrap(),
        )
    }

    #[test]
    fn writes_the_engines_answer_head() {
        let date = http::HeaderValue::from_static("Sat, 05 Dec 2026 03:00:00 GMT");
        let edits = [
            HeaderEdit::Insert("Transfer-Encoding", EditValue::Text("chunked")),
            HeaderEdit::Insert("x-request-id", EditValue::Text("0123abcd")),
            HeaderEdit::Insert("Date", EditValue::Header(&date)),
            HeaderEdit::Insert("Connection", EditValue::Text("keep-alive")),
        ];
        let fields: &[(&str, &str)] = &[
            ("content-type", "application/json"),
            ("date", "Thu, 01 Jan 1970 00:00:00 GMT"),
            ("Set-Cookie", "a=1"),
            ("set-cookie", "b=2"),
            ("X-Request-Id", "upstream's"),
            ("connection", "close"),
            ("Content-Length", "3"),
        ];
        for shift in 0..fields.len() {
            let mut rotated = fields.to_vec();
            rotated.rotate_left(shift);
            for n in 0..=edits.len() {
                for take in [fields.len(), 2, 0] {
                    let (owned, engine) = answer_both_ways(&rotated[..take], &edits[n..]);
                    assert_eq!(owned, engine, "fields {:?}", &rotated[..take]);
                }
            }
        }
    }

    #[test]
    fn refuses_what_the_engine_refuses() {
        let req = parsed(&[("Host", "a")]);
        let mut out = Vec::new();
        assert!(write_request(&req, b"/a b", &[], &mut out).is_err());
        let bad = [HeaderEdit::Insert(
            "x-request-id",
            EditValue::Text("a\r\nb"),
        )];
        assert!(write_request(&req, b"/", &bad, &mut out).is_err());
        let mut copy = req.clone();
        assert!(copy.insert_header("x-request-id", "a\r\nb").is_err());
        // Every character, as the engine's insert of a text checks it.
        for c in (0u32..0x100).filter_map(char::from_u32) {
            let text = format!("a{c}b");
            let edit = [HeaderEdit::Insert("x-a", EditValue::Text(&text))];
            assert_eq!(
                check_edits(&edit).is_ok(),
                http::HeaderValue::from_str(&text).is_ok(),
                "{c:?}"
            );
        }
    }
}
