//! The upstream's side of a fast-path answer, read in place. After the
//! fast path has written a request upstream, the answer's head is parsed
//! where it was read, into a buffer kept per thread, with the parser and
//! the settings Pingora's client session uses (`httparse`, spaces after a
//! name and folded lines allowed), and its Content-Length body is read into
//! the same buffer: no `ResponseHeader`, no map of the fields' case, no
//! copy of the head, no session.
//!
//! Only the common answer is read here: HTTP/1.0 or 1.1, a final status
//! from 200 to 599, names of letters, digits, `-`, `_` and `.`, values on
//! one line, no `Transfer-Encoding`, at most one `Connection` (saying
//! `keep-alive` or `close`), and one Content-Length of digits (or none
//! after a 204 or 304). Anything else, and a head that does not fit the
//! buffer, is given back to Pingora's client session unread: its bytes are
//! put back at the head of the connection (`Stream::rewind`), and the
//! session reads, judges and refuses it as it always has. The errors of the
//! common answer (the connection closed or failing before the head is
//! whole, a read timing out, a body ending short) are Pingora's own, with
//! the same types and retry marks, since the retry of a stale pooled
//! connection and the failure's status depend on them.
//!
//! The connection goes back to the pool on the terms of Pingora's `reuse`:
//! the whole body read, nothing read past it, and the answer keeping the
//! connection alive (its `Connection`, else HTTP/1.1).

use std::cell::RefCell;
use std::ops::Range;
use std::time::Duration;

use pingora::protocols::Stream;
use pingora::protocols::l4::stream::Stream as TcpStream;
use pingora::{Error, ErrorType, Result, RetryType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::fast_answer::{Framing, plain_length};
use super::kept_timer::KeptTimer;
use super::wire_head::{AnswerHead, FieldAt, Fields, place_of, visit_in_map_order};

/// The buffer an answer is read into: its head, then each read of its
/// body. A head that does not fit is Pingora's to read. Pingora's body
/// reader reads 64 KB at a time too; with 16 KB, a 1 MB answer cost 1.2
/// times the CPU (`BACKEND_URL=… bench/ab.sh`).
const BUFFER: usize = 64 * 1024;
/// Fields parsed in place; a head with more is Pingora's (which takes 256).
const FIELDS: usize = 64;
/// Buffers kept per thread for the next answers.
const KEPT: usize = 64;

/// A buffer and the places of a head's fields in it.
struct Scratch {
    bytes: Vec<u8>,
    fields: Vec<FieldAt>,
}

thread_local! {
    static KEPT_SCRATCH: RefCell<Vec<Scratch>> = const { RefCell::new(Vec::new()) };
}

fn scratch() -> Scratch {
    KEPT_SCRATCH
        .with_borrow_mut(Vec::pop)
        .unwrap_or_else(|| Scratch {
            bytes: Vec::with_capacity(BUFFER),
            fields: Vec::with_capacity(16),
        })
}

fn keep(mut scratch: Scratch) {
    if scratch.bytes.capacity() != BUFFER {
        return;
    }
    scratch.bytes.clear();
    scratch.fields.clear();
    KEPT_SCRATCH.with_borrow_mut(|kept| {
        if kept.len() < KEPT {
            kept.push(scratch);
        }
    });
}

/// What reading the head gave.
pub(super) enum HeadRead {
    /// A common answer, read in place.
    InPlace(InPlaceAnswer),
    /// An answer for Pingora's client session: the connection, with what
    /// was read of it put back to be read again.
    Elsewhere(Stream),
}

/// A common answer whose head has been read in place, and the state of
/// reading its body.
pub(super) struct InPlaceAnswer {
    stream: Stream,
    scratch: Scratch,
    head: Head,
    /// Body bytes read with the head and not yet handed out.
    preread: Range<usize>,
    /// Body bytes still to read.
    left: usize,
    /// Whether more bytes than the body came (the connection is not kept).
    overread: bool,
    read_timeout: Option<Duration>,
}

impl std::fmt::Debug for InPlaceAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InPlaceAnswer")
            .field("status", &self.head.status)
            .field("framing", &self.head.framing)
            .field("left", &self.left)
            .finish_non_exhaustive()
    }
}

/// Reads the head of the answer on `stream`, each read within
/// `read_timeout` (on the client connection's kept `timer`: this wait is
/// made on nearly every request), with the errors Pingora's
/// `read_response` gives. The first read's limit is counted from `sent`,
/// a clock reading the caller took just before it wrote the request, when
/// it has one; the others' from their own start.
pub(super) async fn read_head(
    mut stream: Stream,
    read_timeout: Option<Duration>,
    timer: &mut KeptTimer,
    mut sent: Option<std::time::Instant>,
) -> Result<HeadRead> {
    if !stream.as_any().is::<TcpStream>() {
        // What is read could not be put back (the fast path's upstreams
        // are plain TCP, so this does not happen).
        return Ok(HeadRead::Elsewhere(stream));
    }
    let mut scratch = scratch();
    loop {
        if !scratch.bytes.is_empty() {
            match parse(&mut scratch) {
                Parsed::Partial => {}
                Parsed::Common(head) => {
                    return Ok(HeadRead::InPlace(InPlaceAnswer::new(
                        stream,
                        scratch,
                        head,
                        read_timeout,
                    )));
                }
                Parsed::Odd => return give_back(stream, scratch).map(HeadRead::Elsewhere),
            }
        }
        if scratch.bytes.len() == scratch.bytes.capacity() {
            return give_back(stream, scratch).map(HeadRead::Elsewhere);
        }
        let already_read = scratch.bytes.len();
        let read = timer
            .within_from(
                sent.take(),
                read_timeout,
                stream.read_buf(&mut scratch.bytes),
            )
            .await;
        match read {
            None => {
                keep(scratch);
                return Error::e_explain(ErrorType::ReadTimedout, "while reading response headers");
            }
            Some(Ok(0)) => {
                keep(scratch);
                let mut e = Error::explain(
                    ErrorType::ConnectionClosed,
                    format!("while reading response headers, bytes already read: {already_read}"),
                );
                e.retry = RetryType::ReusedOnly;
                return Err(e);
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                keep(scratch);
                // As Pingora: an error of the system's (a reset pooled
                // connection) may be tried again, one of TLS may not.
                let os_error = e.raw_os_error().is_some();
                let mut e = Error::because(
                    ErrorType::ReadError,
                    format!("while reading response headers, bytes already read: {already_read}"),
                    e,
                );
                if os_error {
                    e.retry = RetryType::ReusedOnly;
                }
                return Err(e);
            }
        }
    }
}

/// `read` within `limit`, if there is one; `None` when it timed out.
async fn with_timeout<T>(limit: Option<Duration>, read: impl Future<Output = T>) -> Option<T> {
    match limit {
        Some(t) => tokio::time::timeout(t, read).await.ok(),
        None => Some(read.await),
    }
}

/// The connection with what was read of it put back, for Pingora's client
/// session to read from the start ([`read_head`] reads only plain TCP).
fn give_back(stream: Stream, scratch: Scratch) -> Result<Stream> {
    let stream = if scratch.bytes.is_empty() {
        Ok(stream)
    } else {
        match stream.into_any().downcast::<TcpStream>() {
            Ok(mut tcp) => {
                tcp.rewind(&scratch.bytes);
                Ok(tcp as Stream)
            }
            Err(_) => Error::e_explain(
                ErrorType::InternalError,
                "answer read from a stream not TCP",
            ),
        }
    };
    keep(scratch);
    stream
}

/// What the parser made of the bytes read so far.
enum Parsed {
    Partial,
    Common(Head),
    Odd,
}

/// A parsed common head, its fields' places left in the scratch.
struct Head {
    /// Its length in the buffer; body bytes read with it follow.
    len: usize,
    status: u16,
    version: http::Version,
    reason: Range<usize>,
    framing: Framing,
    keepalive: bool,
}

/// Parses the head in `scratch.bytes` as Pingora's client session does,
/// recording its fields' places; `Odd` for any answer not read in place.
fn parse(scratch: &mut Scratch) -> Parsed {
    let Scratch { bytes, fields } = scratch;
    // Uninitialised, as `client_request::parse`'s: the same parse.
    let mut parsed = [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; FIELDS];
    let mut answer = httparse::Response::new(&mut []);
    let mut config = httparse::ParserConfig::default();
    config.allow_spaces_after_header_name_in_responses(true);
    config.allow_obsolete_multiline_headers_in_responses(true);
    let len = match config.parse_response_with_uninit_headers(&mut answer, bytes, &mut parsed) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        // Too many fields for here, or not HTTP: Pingora's to judge.
        Err(_) => return Parsed::Odd,
    };
    let version = match answer.version {
        Some(1) => http::Version::HTTP_11,
        Some(0) => http::Version::HTTP_10,
        _ => return Parsed::Odd,
    };
    let status = match answer.code {
        Some(code @ 200..=599) => code,
        _ => return Parsed::Odd,
    };
    let at = |part: &[u8]| place_of(bytes, part);
    let reason = match answer.reason {
        Some(r) => at(r.as_bytes()),
        // A complete head always has one; were it missing, Pingora would
        // write the status's own, which the writer cannot tell from "".
        None => return Parsed::Odd,
    };
    let (mut length, mut lengths, mut connection, mut connections) = (None, 0, None, 0);
    fields.clear();
    for field in answer.headers.iter() {
        let name = field.name.as_bytes();
        let plain_name = !name.is_empty()
            && name
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !plain_name || field.value.iter().any(|&b| b == b'\r' || b == b'\n') {
            return Parsed::Odd;
        }
        if name.eq_ignore_ascii_case(b"transfer-encoding") {
            return Parsed::Odd;
        } else if name.eq_ignore_ascii_case(b"content-length") {
            lengths += 1;
            length = plain_length(field.value);
        } else if name.eq_ignore_ascii_case(b"connection") {
            connections += 1;
            let value = field.value.trim_ascii();
            connection = if value.eq_ignore_ascii_case(b"keep-alive") {
                Some(true)
            } else if value.eq_ignore_ascii_case(b"close") {
                Some(false)
            } else {
                return Parsed::Odd;
            };
        }
        fields.push(FieldAt {
            name: at(name),
            value: at(field.value),
        });
    }
    if lengths > 1 || (lengths == 1 && length.is_none()) || connections > 1 {
        return Parsed::Odd;
    }
    let framing = match (status, length) {
        (204 | 304, _) => Framing::NoBody,
        (_, Some(n)) => Framing::Length(n),
        // Framed by the close of the connection.
        (_, None) => return Parsed::Odd,
    };
    Parsed::Common(Head {
        len,
        status,
        version,
        reason,
        framing,
        keepalive: connection.unwrap_or(version == http::Version::HTTP_11),
    })
}

impl InPlaceAnswer {
    fn new(
        stream: Stream,
        scratch: Scratch,
        head: Head,
        read_timeout: Option<Duration>,
    ) -> InPlaceAnswer {
        let preread = head.len..scratch.bytes.len();
        let (left, overread) = match head.framing {
            Framing::Length(n) => (n, false),
            // As Pingora's reader of a zero length: what came after the
            // head is read past the answer.
            _ => (0, !preread.is_empty()),
        };
        InPlaceAnswer {
            stream,
            scratch,
            head,
            preread,
            left,
            overread,
            read_timeout,
        }
    }

    /// How the client's copy is framed.
    pub(super) fn framing(&self) -> Framing {
        self.head.framing
    }

    /// The head, to be written to the client.
    pub(super) fn head(&self) -> InPlaceHead<'_> {
        InPlaceHead {
            bytes: &self.scratch.bytes[..self.head.len],
            fields: &self.scratch.fields,
            head: &self.head,
        }
    }

    pub(super) fn is_body_done(&self) -> bool {
        self.left == 0
    }

    /// The next bytes of the body (`None` once it is whole), as Pingora's
    /// Content-Length reader: what came with the head first, then each
    /// read, which may bring more than the body (kept as read past it).
    pub(super) async fn read_body(&mut self) -> Result<Option<&[u8]>> {
        if self.left == 0 {
            return Ok(None);
        }
        let (from, n) = if self.preread.is_empty() {
            let bytes = &mut self.scratch.bytes;
            bytes.clear();
            let read = with_timeout(self.read_timeout, self.stream.read_buf(bytes)).await;
            let n = match read {
                None => {
                    let t = self.read_timeout.unwrap_or_default();
                    return Error::e_explain(
                        ErrorType::ReadTimedout,
                        format!("reading body, timeout: {t:?}"),
                    );
                }
                Some(read) => {
                    read.map_err(|e| Error::because(ErrorType::ReadError, "when reading body", e))?
                }
            };
            if n == 0 {
                return Error::e_explain(
                    ErrorType::ConnectionClosed,
                    format!(
                        "Peer prematurely closed connection with {} bytes of body remaining to read",
                        self.left
                    ),
                );
            }
            (0, n)
        } else {
            let preread = std::mem::replace(&mut self.preread, 0..0);
            (preread.start, preread.len())
        };
        let taken = n.min(self.left);
        self.overread |= n > self.left;
        self.left -= taken;
        Ok(Some(&self.scratch.bytes[from..from + taken]))
    }

    /// The connection, for the pool, if the whole answer was read, nothing
    /// past it, and the answer keeps it alive (Pingora's `reuse`); else it
    /// is closed.
    pub(super) async fn reuse(mut self) -> Option<Stream> {
        if self.head.keepalive && self.left == 0 && !self.overread {
            let InPlaceAnswer {
                stream, scratch, ..
            } = self;
            keep(scratch);
            return Some(stream);
        }
        let _ = self.stream.shutdown().await;
        keep(self.scratch);
        None
    }
}

/// A head read in place, as the client's answer writer reads it.
pub(super) struct InPlaceHead<'a> {
    bytes: &'a [u8],
    fields: &'a [FieldAt],
    head: &'a Head,
}

impl Fields for InPlaceHead<'_> {
    /// The fields in the order of Pingora's header map: each name at the
    /// place of its first field, its later fields right after it.
    fn visit(&self, f: impl FnMut(&[u8], &[u8])) {
        visit_in_map_order(self.bytes, self.fields, f);
    }
}

impl AnswerHead for InPlaceHead<'_> {
    fn status(&self) -> u16 {
        self.head.status
    }

    fn reason(&self) -> &[u8] {
        &self.bytes[self.head.reason.clone()]
    }

    fn version(&self) -> http::Version {
        self.head.version
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::exchange::{EditValue, HeaderEdit};
    use crate::dataplane::kept_timer::a_minute_ago;
    use crate::dataplane::wire_head::write_answer;
    use pingora::protocols::http::v1::client::HttpSession as UpstreamSession;
    use tokio::io::AsyncWriteExt;

    /// A loopback connection whose far end writes `parts` (a pause between
    /// them), then closes its side if `close`, and then waits for the
    /// reader to close.
    async fn upstream(parts: &[&[u8]], close: bool) -> Stream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let parts: Vec<Vec<u8>> = parts.iter().map(|p| p.to_vec()).collect();
        tokio::spawn(async move {
            let (mut read_half, mut write_half) = server.into_split();
            for (i, part) in parts.iter().enumerate() {
                if i > 0 {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                let _ = write_half.write_all(part).await;
            }
            if close {
                let _ = write_half.shutdown().await;
            }
            let mut sink = Vec::new();
            let _ = read_half.read_to_end(&mut sink).await;
        });
        Box::new(pingora::protocols::l4::stream::Stream::from(client))
    }

    const EDITS: &[HeaderEdit<'static>] = &[
        HeaderEdit::Insert("x-request-id", EditValue::Text("r1")),
        HeaderEdit::Insert("Connection", EditValue::Text("keep-alive")),
    ];

    /// What a reader made of an answer: its head as the client gets it
    /// (or the error's type and retry mark), framing, body, reuse.
    #[derive(Debug, PartialEq)]
    enum Seen {
        Answer {
            head: String,
            framing: Option<Framing>,
            body: Vec<u8>,
            reused: bool,
        },
        Failed(String),
    }

    fn failed(e: &Error) -> Seen {
        Seen::Failed(format!("{:?} retry {:?}", e.etype(), e.retry))
    }

    /// Pingora's client session on `stream`, as the fast path used it.
    async fn by_pingora(stream: Stream) -> Seen {
        let mut session = UpstreamSession::new(stream);
        let mut head = Vec::new();
        // The heads of any 1xx answers, then the final one's.
        loop {
            if let Err(e) = session.read_response().await {
                return failed(&e);
            }
            let answer = session.resp_header().unwrap();
            write_answer(answer, answer.version, EDITS, &mut head).unwrap();
            if !answer.status.is_informational() {
                break;
            }
        }
        let done = session.is_body_done();
        let framing = Framing::of(session.resp_header().unwrap(), false, done);
        let mut body = Vec::new();
        while !session.is_body_done() {
            match session.read_body_ref().await {
                Ok(Some(data)) => body.extend_from_slice(data),
                Ok(None) => break,
                Err(e) => return failed(&e),
            }
        }
        session.respect_keepalive();
        let reused = session.reuse().await.is_some();
        Seen::Answer {
            head: head.escape_ascii().to_string(),
            framing,
            body,
            reused,
        }
    }

    /// Read in place, or given back and read by Pingora; which it was.
    async fn in_place(stream: Stream) -> (bool, Seen) {
        let mut answer = match read_head(stream, None, &mut KeptTimer::new(), None).await {
            Ok(HeadRead::InPlace(answer)) => answer,
            Ok(HeadRead::Elsewhere(stream)) => return (false, by_pingora(stream).await),
            Err(e) => return (true, failed(&e)),
        };
        let mut head = Vec::new();
        let parsed = answer.head();
        write_answer(&parsed, parsed.version(), EDITS, &mut head).unwrap();
        let framing = Some(answer.framing());
        let mut body = Vec::new();
        while !answer.is_body_done() {
            match answer.read_body().await {
                Ok(Some(data)) => body.extend_from_slice(data),
                Ok(None) => break,
                Err(e) => return (true, failed(&e)),
            }
        }
        let reused = answer.reuse().await.is_some();
        (
            true,
            Seen::Answer {
                head: head.escape_ascii().to_string(),
                framing,
                body,
                reused,
            },
        )
    }

    /// Each answer read both ways: the same head, framing, body, reuse or
    /// error, and read in place exactly when `expected`.
    async fn check(cases: &[(&[&[u8]], bool, bool)]) {
        for (parts, close, expected) in cases {
            let (read_here, here) = in_place(upstream(parts, *close).await).await;
            let pingora = by_pingora(upstream(parts, *close).await).await;
            let text = String::from_utf8_lossy(&parts.concat()).into_owned();
            assert_eq!(here, pingora, "{text:?}");
            assert_eq!(read_here, *expected, "read in place? {text:?}");
        }
    }

    #[tokio::test]
    async fn common_answers_are_read_in_place_as_pingora_reads_them() {
        check(&[
            (&[b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"], false, true),
            (
                &[b"HTTP/1.1 200 OK\r\nContent-Type: a\r\nX-A: 1\r\ncontent-type: b\r\nContent-Length: 3\r\nX-a: 2\r\nx-b: \xe9t\xe9\r\n\r\nabc"],
                false,
                true,
            ),
            (&[b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"], false, true),
            (
                &[b"HTTP/1.0 200 OK\r\nconnection: Keep-Alive\r\nContent-Length: 2\r\n\r\nok"],
                false,
                true,
            ),
            (
                &[b"HTTP/1.1 200 OK\r\nConnection: close \r\nContent-Length: 2\r\n\r\nok"],
                false,
                true,
            ),
            (&[b"HTTP/1.1 200 Fine\r\nContent-Length: 0\r\n\r\n"], false, true),
            (&[b"HTTP/1.1 299 \r\nContent-Length: 0\r\n\r\n"], false, true),
            (&[b"HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n"], false, true),
            (&[b"HTTP/1.1 404 Not Found\r\nContent-Length: 007\r\n\r\nmissing"], false, true),
            (&[b"HTTP/1.1 204 No Content\r\n\r\n"], false, true),
            (
                &[b"HTTP/1.1 304 Not Modified\r\nContent-Length: 1234\r\n\r\n"],
                false,
                true,
            ),
            // Read past the answer: not kept.
            (&[b"HTTP/1.1 204 No Content\r\n\r\nextra"], false, true),
            (&[b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA"], false, true),
            (
                &[b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", b"late"],
                false,
                true,
            ),
            (&[b"HTTP/1.1 200 OK\r\nName : v\r\nContent-Length: 2\r\n\r\nok"], false, true),
            (
                &[b"HTTP/1.1 200 OK\r\nX-Empty:\r\nX-Blank:   \r\nContent-Length: 2\r\n\r\nok"],
                false,
                true,
            ),
            (&[b"\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"], false, true),
            // Arriving in parts.
            (
                &[b"HTTP/1.1 200 OK\r\nContent-Le", b"ngth: 10\r\n\r\n01234", b"56789"],
                false,
                true,
            ),
            // The body cut short, the head cut short.
            (&[b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n01234"], true, true),
            (&[b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n"], true, true),
            (&[b""], true, true),
        ])
        .await;
    }

    #[tokio::test]
    async fn the_first_read_is_timed_from_the_request_sent() {
        let limit = Some(Duration::from_secs(30));
        let mut timer = KeptTimer::new();
        // Sent a minute ago: the 30 s read timeout has passed, and a
        // silent upstream fails the read at once (counted from now, it
        // would be waited on for 30 s).
        let long_ago = a_minute_ago();
        let read = tokio::time::timeout(
            Duration::from_secs(10),
            read_head(
                upstream(&[], false).await,
                limit,
                &mut timer,
                Some(long_ago),
            ),
        )
        .await
        .expect("the timeout counted from the request sent");
        assert!(matches!(read, Err(e) if e.etype() == &ErrorType::ReadTimedout));
        // Sent just now: the answer is read.
        let answer = upstream(&[b"HTTP/1.1 204 No Content\r\n\r\n"], false).await;
        let now = Some(std::time::Instant::now());
        let read = read_head(answer, limit, &mut timer, now).await;
        assert!(matches!(read, Ok(HeadRead::InPlace(_))));
    }

    #[tokio::test]
    async fn odd_answers_are_given_back_to_pingora_whole() {
        let many: Vec<u8> = (0..70)
            .map(|i| format!("x-{i}: {i}\r\n"))
            .collect::<String>()
            .into_bytes();
        let many = [
            b"HTTP/1.1 200 OK\r\n".as_slice(),
            &many,
            b"Content-Length: 0\r\n\r\n",
        ]
        .concat();
        let big = [
            b"HTTP/1.1 200 OK\r\nx-big: ".as_slice(),
            &vec![b'a'; BUFFER + 1000],
            b"\r\nContent-Length: 2\r\n\r\nok",
        ]
        .concat();
        check(&[
            (
                &[b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"],
                false,
                false,
            ),
            (&[b"HTTP/1.1 200 OK\r\n\r\nuntil close"], true, false),
            (
                &[b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok"],
                false,
                false,
            ),
            (
                &[b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok"],
                false,
                false,
            ),
            (
                &[b"HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok"],
                false,
                false,
            ),
            (
                &[b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"],
                false,
                false,
            ),
            (
                &[b"HTTP/1.1 200 OK\r\nX-Folded: a\r\n b\r\nContent-Length: 2\r\n\r\nok"],
                false,
                false,
            ),
            (
                &[b"HTTP/1.1 200 OK\r\nConnection: keep-alive, x\r\nContent-Length: 2\r\n\r\nok"],
                false,
                false,
            ),
            (
                &[b"HTTP/1.1 200 OK\r\nX!: 1\r\nContent-Length: 2\r\n\r\nok"],
                false,
                false,
            ),
            (
                &[b"HTTP/1.1 099 Low\r\nContent-Length: 2\r\n\r\nok"],
                false,
                false,
            ),
            (&[b"HTTP/1.1 abc\r\n\r\n"], false, false),
            (
                &[b"HTTP/2 200 OK\r\nContent-Length: 2\r\n\r\nok"],
                false,
                false,
            ),
            (&[&many], false, false),
            (&[&big], false, false),
        ])
        .await;
    }
}
