//! The client's request read in place: the fast path's reader of the
//! common request head, in the bytes the connection loop already read
//! (`connection::read_head` holds a request's head whole before anything
//! parses it). Parsed with httparse as Pingora's session parses it, but
//! with no `RequestHeader`, header map, case map or copy: routing, the
//! forwarding headers and the upstream head all read the fields where they
//! lie ([`RequestHeaders`], [`Fields`]).
//!
//! Only the common request is read here: HTTP/1.1; GET, POST, PUT,
//! DELETE, PATCH or OPTIONS; an origin-form target of plain URI bytes;
//! names of letters, digits, `-`, `_` and `.`; exactly one `Host`, with
//! no userinfo (`@`, which Pingora's reader refuses); no
//! body (no `Content-Length`, or one of zeros); at most one `Connection`,
//! saying `keep-alive` or `close`; none of the fields `plain_exchange`
//! turns away; at most 64 fields in at most `MAX_HEADER_BYTES`. So none of
//! the checks made before routing (`hygiene`) can fail for it. Anything
//! else is given back untouched, and Pingora's session reads it as before.

use std::cell::Cell;
use std::mem::MaybeUninit;
use std::net::IpAddr;
use std::ops::Range;

use bytes::BytesMut;
use http::{Method, Version};
use pingora::http::RequestHeader;

use super::exchange::{ClientRequest, LoggedFields, LoggedRequest};
use super::hygiene::MAX_HEADER_BYTES;
use super::wire_head::{FieldAt, Fields, RequestHead, place_of, same_name, visit_in_map_order};
use crate::routing::headers::RequestHeaders;

/// Fields read in place; a head with more is Pingora's.
const FIELDS: usize = 64;

/// A request head read in place, and the bytes it lies in.
#[derive(Debug)]
pub(super) struct InPlaceRequest {
    bytes: BytesMut,
    /// Where the head ends: bytes past it were sent before the answer.
    len: usize,
    method: Method,
    target: Range<usize>,
    /// Where the path ends in the target (at its `?`, or its end).
    path_end: usize,
    fields: Vec<FieldAt>,
    /// What the request's `Connection` (or its absence) asks.
    keepalive: bool,
}

impl InPlaceRequest {
    /// Reads the common request whose head `bytes` holds; any other comes
    /// back as it was.
    pub(super) fn read(bytes: BytesMut) -> Result<InPlaceRequest, BytesMut> {
        match parse(&bytes) {
            Some(mut parsed) => {
                parsed.bytes = bytes;
                Ok(parsed)
            }
            None => Err(bytes),
        }
    }

    /// The bytes read, for Pingora's session to read again.
    pub(super) fn into_bytes(mut self) -> BytesMut {
        std::mem::take(&mut self.bytes)
    }

    pub(super) fn method(&self) -> &Method {
        &self.method
    }

    /// The target as the client sent it.
    pub(super) fn target(&self) -> &[u8] {
        &self.bytes[self.target.clone()]
    }

    /// Whether the client asked to keep the connection.
    pub(super) fn keepalive(&self) -> bool {
        self.keepalive
    }

    /// Whether the client sent anything past this request before its
    /// answer (this proxy does not pipeline: the connection then closes
    /// after the answer, as Pingora's session does).
    pub(super) fn read_past(&self) -> bool {
        self.bytes.len() > self.len
    }

    /// What the access log and the queues read of it.
    pub(super) fn logged(&self) -> LoggedRequest<'_> {
        let view = self.view(None);
        LoggedRequest {
            method: view.method,
            path: view.path,
            version: view.version,
            fields: LoggedFields::InPlace(self),
        }
    }

    /// The request as the steps before the answer read it.
    pub(super) fn view(&self, peer: Option<IpAddr>) -> ClientRequest<'_, Self> {
        let target = text(self.target());
        let path_len = self.path_end - self.target.start;
        ClientRequest {
            method: &self.method,
            version: Version::HTTP_11,
            path: &target[..path_len],
            query: target
                .get(path_len + 1..)
                .filter(|_| path_len < target.len()),
            target_host: None,
            headers: self,
            peer,
            upgrade: false,
            hygiene: Ok(()),
        }
    }
}

/// The target's bytes as text: `parse` takes only ASCII targets.
fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap_or_default()
}

impl RequestHeaders for InPlaceRequest {
    fn values_of<'s>(&'s self, name: &str) -> impl Iterator<Item = &'s [u8]> {
        let bytes = &self.bytes[..];
        let name = name.as_bytes();
        self.fields
            .iter()
            .filter(move |f| same_name(&bytes[f.name.clone()], name))
            .map(move |f| &bytes[f.value.clone()])
    }
}

impl Fields for InPlaceRequest {
    fn visit(&self, f: impl FnMut(&[u8], &[u8])) {
        visit_in_map_order(&self.bytes, &self.fields, f);
    }
}

impl RequestHead for InPlaceRequest {
    fn method(&self) -> &[u8] {
        self.method.as_str().as_bytes()
    }

    fn version(&self) -> Version {
        Version::HTTP_11
    }
}

/// The fields `plain_exchange` turns away: hop-by-hop fields Pingora's
/// engine strips or treats specially, and ways of framing or waiting for a
/// body.
const TURNED_AWAY: [&[u8]; 10] = [
    b"transfer-encoding",
    b"expect",
    b"upgrade",
    b"keep-alive",
    b"proxy-connection",
    b"te",
    b"trailer",
    b"http2-settings",
    b"proxy-authenticate",
    b"proxy-authorization",
];

/// A target byte `http::Uri` takes as it is in a path or query, and that
/// needs no escaping: unreserved, sub-delims, `:`, `@`, `/`, `?` and `%`.
fn plain_target_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?%".contains(&b)
}

fn plain_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

thread_local! {
    /// A list of field places, free for the thread's next request (as
    /// `wire_head`'s buffers): taken by `parse`, given back when the
    /// request is dropped, so reading a request in place allocates nothing.
    static SPARE_FIELDS: Cell<Vec<FieldAt>> = const { Cell::new(Vec::new()) };
}

impl Drop for InPlaceRequest {
    fn drop(&mut self) {
        let mut fields = std::mem::take(&mut self.fields);
        fields.clear();
        SPARE_FIELDS.set(fields);
    }
}

/// Parses the head at the start of `bytes` as Pingora's session does, if
/// it is the common request; `None` otherwise. The result's `bytes` is
/// empty (the caller puts the buffer in).
fn parse(bytes: &[u8]) -> Option<InPlaceRequest> {
    // Uninitialised: httparse writes each field before it is read, and
    // filling 64 empty ones first costs more than the parse of a short
    // head. The parse is the same as `Request::parse`'s.
    let mut parsed = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; FIELDS];
    let mut request = httparse::Request::new(&mut []);
    let len = match request.parse_with_uninit_headers(bytes, &mut parsed) {
        Ok(httparse::Status::Complete(len)) if len <= MAX_HEADER_BYTES => len,
        _ => return None,
    };
    if request.version != Some(1) {
        return None;
    }
    let method = match request.method? {
        "GET" => Method::GET,
        "POST" => Method::POST,
        "PUT" => Method::PUT,
        "DELETE" => Method::DELETE,
        "PATCH" => Method::PATCH,
        "OPTIONS" => Method::OPTIONS,
        _ => return None,
    };
    let at = |part: &[u8]| place_of(bytes, part);
    let target_bytes = request.path?.as_bytes();
    if !target_bytes.starts_with(b"/") || !target_bytes.iter().all(|&b| plain_target_byte(b)) {
        return None;
    }
    let target = at(target_bytes);
    let path_end = target_bytes
        .iter()
        .position(|&b| b == b'?')
        .map_or(target.end, |i| target.start + i);
    let (mut hosts, mut lengths, mut connection) = (0, 0, None);
    // (A request given back below drops the list; the next allocates.)
    let mut fields = SPARE_FIELDS.take();
    for field in request.headers.iter() {
        let name = field.name.as_bytes();
        let value = field.value;
        if !plain_name(name) || value.iter().any(|&b| b == b'\r' || b == b'\n') {
            return None;
        }
        let is = |known: &[u8]| name.eq_ignore_ascii_case(known);
        if TURNED_AWAY.iter().any(|known| is(known)) {
            return None;
        } else if is(b"host") {
            // Pingora's reader refuses userinfo in the authority.
            if value.contains(&b'@') {
                return None;
            }
            hosts += 1;
        } else if is(b"content-length") {
            // A body is the session's to read.
            lengths += 1;
            if lengths > 1 || value.is_empty() || !value.iter().all(|&b| b == b'0') {
                return None;
            }
        } else if is(b"connection") {
            let v = value.trim_ascii();
            let keep = if v.eq_ignore_ascii_case(b"keep-alive") {
                true
            } else if v.eq_ignore_ascii_case(b"close") {
                false
            } else {
                return None;
            };
            if connection.replace(keep).is_some() {
                return None;
            }
        }
        fields.push(FieldAt {
            name: at(name),
            value: at(value),
        });
    }
    if hosts != 1 {
        return None;
    }
    Some(InPlaceRequest {
        bytes: BytesMut::new(),
        len,
        method,
        target,
        path_end,
        fields,
        keepalive: connection.unwrap_or(true),
    })
}

/// Whether a request is the common exchange the fast path owns: HTTP/1.1,
/// origin-form target, one Host, at most one Content-Length of digits, no
/// `Connection` but `keep-alive` or `close`, and none of the hop-by-hop
/// fields Pingora's engine strips or treats specially or the ways of
/// framing or waiting for a body other than Content-Length. One pass over
/// the fields (ten lookups by name cost 2,800 instructions a request).
pub(super) fn plain_exchange(req: &RequestHeader) -> bool {
    if req.version != http::Version::HTTP_11
        || req.method == http::Method::CONNECT
        || !req.raw_path().starts_with(b"/")
    {
        return false;
    }
    let (mut hosts, mut lengths, mut connections) = (0, 0, 0);
    for (name, value) in &req.headers {
        match name.as_str() {
            turned_away if TURNED_AWAY.contains(&turned_away.as_bytes()) => return false,
            "host" => hosts += 1,
            "content-length" => {
                let digits = value.as_bytes();
                if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                    return false;
                }
                lengths += 1;
            }
            "connection" => {
                let v = value.as_bytes().trim_ascii();
                if !(v.eq_ignore_ascii_case(b"keep-alive") || v.eq_ignore_ascii_case(b"close")) {
                    return false;
                }
                connections += 1;
            }
            _ => {}
        }
    }
    hosts == 1 && lengths <= 1 && connections <= 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::exchange::{EditValue, HeaderEdit};
    use crate::dataplane::wire_head::write_request;
    use pingora::protocols::http::ServerSession;

    use crate::dataplane::loopback::accepted_connection;

    const EDITS: &[HeaderEdit<'static>] = &[
        HeaderEdit::Remove("connection"),
        HeaderEdit::Insert("x-forwarded-for", EditValue::Text("10.0.0.1")),
        HeaderEdit::Insert("x-request-id", EditValue::Text("r1")),
    ];

    /// What the fast path reads of a request: the upstream head written
    /// from it, the path and query routed on, some fields by name, and
    /// whether it keeps the connection.
    #[derive(Debug, PartialEq)]
    struct Seen {
        upstream_head: String,
        path: String,
        query: Option<String>,
        lookups: Vec<Vec<Vec<u8>>>,
        keepalive: bool,
    }

    const LOOKED_UP: [&str; 5] = ["host", "cookie", "x-tenant-id", "x-forwarded-for", "absent"];

    fn seen_in_place(raw: &[u8]) -> Option<Seen> {
        let request = InPlaceRequest::read(BytesMut::from(raw)).ok()?;
        let mut head = Vec::new();
        write_request(&request, request.target(), EDITS, &mut head).unwrap();
        let view = request.view(None);
        Some(Seen {
            upstream_head: String::from_utf8_lossy(&head).into_owned(),
            path: view.path.to_string(),
            query: view.query.map(str::to_string),
            lookups: LOOKED_UP
                .iter()
                .map(|n| request.values_of(n).map(<[u8]>::to_vec).collect())
                .collect(),
            keepalive: request.keepalive(),
        })
    }

    async fn seen_by_pingora(raw: &[u8]) -> Seen {
        // The far end sends nothing: Pingora reads only the prefix.
        let (stream, _far) = accepted_connection().await;
        let mut session = ServerSession::new_http1(stream);
        session.set_pipelined_prefix(BytesMut::from(raw));
        assert!(session.read_request().await.unwrap(), "{raw:?}");
        let req = session.req_header();
        let mut head = Vec::new();
        write_request(req, req.raw_path(), EDITS, &mut head).unwrap();
        let view = ClientRequest::of_session(&session);
        Seen {
            upstream_head: String::from_utf8_lossy(&head).into_owned(),
            path: view.path.to_string(),
            query: view.query.map(str::to_string),
            lookups: LOOKED_UP
                .iter()
                .map(|n| req.headers.values_of(n).map(<[u8]>::to_vec).collect())
                .collect(),
            keepalive: session.as_http1().is_some_and(|h| h.will_keepalive()),
        }
    }

    #[tokio::test]
    async fn the_common_request_reads_as_pingora_reads_it() {
        let common: &[&[u8]] = &[
            b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET /api/orders/12345 HTTP/1.1\r\nHost: shop.example:8080\r\nX-Tenant-Id: umbrella-corp\r\nAccept: application/json\r\n\r\n",
            b"GET /a/b?c=d&e=%20f HTTP/1.1\r\nhost: a\r\nConnection: close\r\n\r\n",
            b"DELETE /x? HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nConnection: Keep-Alive\r\n\r\n",
            b"OPTIONS /x?y?z HTTP/1.1\r\nHost: a\r\n\r\n",
            // Repeated names, in other cases, interleaved: Pingora's map
            // groups them at the first.
            b"GET /c HTTP/1.1\r\nCookie: a=1\r\nHost: a\r\nX-Forwarded-For: 1.1.1.1\r\ncookie: b=2\r\nx-forwarded-for: 2.2.2.2, 3.3.3.3\r\n\r\n",
            // Empty and obs-text values, a bare LF head, leading CRLF.
            b"GET /d HTTP/1.1\r\nHost: a\r\nX-Empty:\r\nX-Obs: caf\xc3\xa9\r\n\r\n",
            b"GET /e HTTP/1.1\nHost: a\nX-Tenant-Id: t\n\n",
            b"\r\nGET /f HTTP/1.1\r\nHost: a\r\n\r\n",
            // Bytes after the head (pipelined): read, not part of it.
            b"GET /g HTTP/1.1\r\nHost: a\r\n\r\nGET /h HTTP/1.1\r\n",
        ];
        for raw in common {
            let in_place = seen_in_place(raw).unwrap_or_else(|| panic!("not read: {raw:?}"));
            assert_eq!(
                in_place,
                seen_by_pingora(raw).await,
                "{}",
                String::from_utf8_lossy(raw)
            );
        }
    }

    #[test]
    fn anything_else_is_given_back_untouched() {
        let odd: &[&[u8]] = &[
            b"GET / HTTP/1.0\r\nHost: a\r\n\r\n",
            b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n",
            b"CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: user@a\r\n\r\n",
            b"GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET /a\"b HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, x-secret\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\nConnection: close\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nTE: trailers\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nX~Odd: name\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\n",
        ];
        for raw in odd {
            let given_back = InPlaceRequest::read(BytesMut::from(*raw)).unwrap_err();
            assert_eq!(&given_back[..], *raw, "{}", String::from_utf8_lossy(raw));
        }
        let mut many = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
        for i in 0..FIELDS {
            many.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert!(InPlaceRequest::read(BytesMut::from(&many[..])).is_err());
    }

    #[test]
    fn bytes_past_the_head_are_seen() {
        let raw = &b"GET /g HTTP/1.1\r\nHost: a\r\n\r\nGET /h"[..];
        assert!(
            InPlaceRequest::read(BytesMut::from(raw))
                .unwrap()
                .read_past()
        );
        let raw = &b"GET /g HTTP/1.1\r\nHost: a\r\n\r\n"[..];
        assert!(
            !InPlaceRequest::read(BytesMut::from(raw))
                .unwrap()
                .read_past()
        );
    }

    /// A request header as a parser would give it, from its text.
    fn head(raw: &str) -> RequestHeader {
        let mut lines = raw.split("\r\n");
        let mut first = lines.next().unwrap().split(' ');
        let (method, path, version) = (
            first.next().unwrap(),
            first.next().unwrap(),
            first.next().unwrap(),
        );
        let mut h = RequestHeader::build(method, path.as_bytes(), None).unwrap();
        h.set_version(if version == "HTTP/1.1" {
            http::Version::HTTP_11
        } else {
            http::Version::HTTP_10
        });
        for line in lines.take_while(|l| !l.is_empty()) {
            let (name, value) = line.split_once(": ").unwrap();
            h.append_header(name.to_string(), value).unwrap();
        }
        h
    }

    #[test]
    fn only_the_common_exchange_is_plain() {
        let plain = [
            "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET /x?y HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n\r\n",
            "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nConnection: Close\r\n\r\n",
        ];
        for raw in plain {
            assert!(plain_exchange(&head(raw)), "{raw}");
        }
        let not_plain = [
            "GET / HTTP/1.0\r\nHost: a\r\n\r\n",
            "GET / HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            "GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, x-secret\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nTE: trailers\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nProxy-Authorization: x\r\n\r\n",
        ];
        for raw in not_plain {
            assert!(!plain_exchange(&head(raw)), "{raw}");
        }
    }
}
