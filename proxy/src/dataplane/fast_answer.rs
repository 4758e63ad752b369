//! The client's side of a fast-path answer, written by the fast path
//! itself once the upstream's final answer head has been read. Until then
//! the client's connection is Pingora's HTTP/1 session, which read the
//! request and its body and forwarded any 1xx answer; from then on the
//! connection is taken from it ([`OwnedAnswer::take`]) and the answer's
//! head is written from the upstream's parsed head (read in place by
//! `upstream_answer`, or by Pingora's client session) and the proxy's own
//! fields (`wire_head`), its body copied from the reader's buffer onto the
//! connection, with no copy of the head, no task and no allocation per
//! chunk.
//!
//! The bytes are those Pingora's session writes: the request id, `Date` and
//! `Connection` fields set in its order, an answer framed by the close of
//! the connection sent on chunked, no body after HEAD, 204 or 304, a
//! Content-Length body never written past its length and never finished
//! short, the connection kept only when the request allows it and nothing
//! was read past its body. An answer framed any other way
//! ([`Framing::of`] gives `None`: several lengths, a transfer coding other
//! than `chunked` alone) goes through Pingora's session as before.
//! `fuzz/fuzz_targets/differential.rs` holds both to the engine's bytes.

use std::fmt;

use http::header;
use pingora::apps::HttpPersistentSettings;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::protocols::Stream;
use pingora::protocols::http::ServerSession;
use pingora::protocols::http::date::get_cached_date;
use pingora::protocols::http::v1::client::HttpSession as UpstreamSession;
use pingora::{Error, ErrorType, OkOrErr, OrErr, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::ctx::RequestCtx;
use super::exchange::{Answered, EditValue, HeaderEdit, LoggedRequest};
use super::upstream_answer::InPlaceAnswer;
use super::wire_head::AnswerHead;

thread_local! {
    /// What the session is left holding when its request is taken: an
    /// empty request, built once (building one costs 2,500 instructions and
    /// allocations, a clone of it neither).
    static PLACEHOLDER: Option<RequestHeader> = RequestHeader::build_no_case("GET", b"/", Some(0)).ok();
}

/// How the client's copy of an answer's body is framed, when the fast path
/// writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    /// No body whatever the head says: the answer to HEAD, a 204, a 304.
    NoBody,
    /// A Content-Length body: this many bytes.
    Length(usize),
    /// Chunked as the upstream sent it.
    Chunked,
    /// Framed by the close of the upstream's connection: sent on chunked,
    /// so the client's connection can stay open (as Pingora's engine).
    CloseToChunked,
}

impl Framing {
    /// The framing of the final answer `answer`, read from an upstream
    /// session whose body reader says `done` already; `None` for anything
    /// the fast path leaves to Pingora's session writer.
    pub(super) fn of(answer: &ResponseHeader, head_request: bool, done: bool) -> Option<Framing> {
        if head_request || matches!(answer.status.as_u16(), 204 | 304) {
            return Some(Framing::NoBody);
        }
        let h = &answer.headers;
        let mut codings = h.get_all(header::TRANSFER_ENCODING).iter();
        if let Some(coding) = codings.next() {
            // Pingora's reader drops any Content-Length beside it.
            let chunked = coding
                .as_bytes()
                .trim_ascii()
                .eq_ignore_ascii_case(b"chunked");
            return (chunked && codings.next().is_none()).then_some(Framing::Chunked);
        }
        let mut lengths = h.get_all(header::CONTENT_LENGTH).iter();
        match lengths.next() {
            Some(length) if lengths.next().is_none() => {
                plain_length(length.as_bytes()).map(Framing::Length)
            }
            Some(_) => None,
            None if !done => Some(Framing::CloseToChunked),
            None => None,
        }
    }
}

/// An answer's Content-Length the fast path frames itself: 1 to 18 digits
/// (any other is left to Pingora, which reconciles lists and judges the
/// rest). Shared by [`Framing::of`] and the answer read in place.
pub(super) fn plain_length(digits: &[u8]) -> Option<usize> {
    if !(1..=18).contains(&digits.len()) || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        digits
            .iter()
            .fold(0usize, |n, d| n * 10 + usize::from(d - b'0')),
    )
}

/// The client's connection, taken from Pingora's session after the request
/// was read, and the state of the answer being written on it.
pub(super) struct OwnedAnswer {
    stream: Stream,
    /// The keep-alive settings the connection's next session gets (`None`:
    /// a request read in place, whose next session starts afresh).
    settings: Option<HttpPersistentSettings>,
    /// What the answer's `Connection` says: the request and the
    /// connection's keep-alive settings allow another request.
    keepalive: bool,
    /// Whether the connection can carry another request once the answer is
    /// written: it is kept alive and nothing was read past the request.
    reusable: bool,
    framing: Framing,
    /// Body bytes the framing still allows (`Framing::Length`).
    left: usize,
    /// The status of the answer head written (0 before).
    status: u16,
    body_bytes_sent: usize,
}

impl fmt::Debug for OwnedAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedAnswer")
            .field("framing", &self.framing)
            .field("keepalive", &self.keepalive)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

impl OwnedAnswer {
    /// Takes the client's connection from `session`, whose request and
    /// body have been read and which has written no final answer. On
    /// failure (which a session whose body is read cannot give) the
    /// connection is gone. The request comes back with it, to be logged.
    pub(super) async fn take(
        session: ServerSession,
        framing: Framing,
    ) -> std::result::Result<(OwnedAnswer, RequestHeader), (Box<Error>, Option<RequestHeader>)>
    {
        // Read before pipelining is switched on below for `reuse`: the
        // connection's next session must not inherit it.
        let settings = HttpPersistentSettings::for_session(&session);
        let ServerSession::H1(mut h1) = session else {
            let e = Error::explain(ErrorType::InternalError, "the fast path serves HTTP/1 only");
            return Err((e, None));
        };
        let keepalive = h1.will_keepalive();
        let placeholder = match PLACEHOLDER.with(Clone::clone) {
            Some(p) => p,
            None => {
                let e = Error::explain(ErrorType::InternalError, "no placeholder request");
                return Err((e, None));
            }
        };
        let request = std::mem::replace(h1.req_header_mut(), placeholder);
        let (stream, reusable) = if keepalive {
            // Pingora's session refuses to reuse a connection it read
            // past the request on (this proxy does not pipeline); with
            // pipelining on, `reuse` hands those bytes back instead, and
            // the connection is closed after the answer as it would be.
            h1.set_pipelining_enabled(true);
            match h1.reuse().await {
                Ok(Some(reused)) => {
                    let (stream, rest) = reused.into_parts();
                    (stream, rest.is_none())
                }
                Ok(None) => {
                    let e = Error::explain(ErrorType::InternalError, "session not reusable");
                    return Err((e, Some(request)));
                }
                Err(e) => return Err((e, Some(request))),
            }
        } else {
            (h1.into_inner(), false)
        };
        let mut answer = OwnedAnswer::on(stream, framing, keepalive, reusable);
        answer.settings = Some(settings);
        Ok((answer, request))
    }

    /// The answer on a client's connection the fast path read the request
    /// of itself (`client_request`): `keepalive` is what the answer's
    /// `Connection` says, `reusable` whether the connection then carries
    /// another request.
    pub(super) fn on(
        stream: Stream,
        framing: Framing,
        keepalive: bool,
        reusable: bool,
    ) -> OwnedAnswer {
        OwnedAnswer {
            stream,
            settings: None,
            keepalive,
            reusable,
            framing,
            left: match framing {
                Framing::Length(n) => n,
                _ => 0,
            },
            status: 0,
            body_bytes_sent: 0,
        }
    }

    /// What the shared end-of-request steps count and log, for `request`.
    pub(super) fn answered<'a>(&self, request: LoggedRequest<'a>) -> Answered<'a> {
        Answered {
            request,
            status: self.status,
            body_bytes_sent: self.body_bytes_sent,
        }
    }

    /// Writes the final answer Pingora's client session `up` has read, its
    /// body as it arrives, and the end of the body.
    pub(super) async fn relay_session(
        &mut self,
        up: &mut UpstreamSession,
        ctx: &RequestCtx,
    ) -> Result<()> {
        let answer = up
            .resp_header()
            .or_err(ErrorType::InternalError, "no answer read")?;
        self.write_head(answer, ctx)
            .await
            .map_err(|e| e.into_down())?;
        self.relay_body(up).await
    }

    /// Writes the final answer read in place (`upstream_answer`), its body
    /// as it arrives, and the end of the body.
    pub(super) async fn relay_in_place(
        &mut self,
        up: &mut InPlaceAnswer,
        ctx: &RequestCtx,
    ) -> Result<()> {
        self.write_head(&up.head(), ctx)
            .await
            .map_err(|e| e.into_down())?;
        self.relay_body(up).await
    }

    /// The body and its end. The client closing its side or sending more
    /// meanwhile ends the exchange (as the engine's `abort_on_close`).
    async fn relay_body(&mut self, up: &mut impl BodySource) -> Result<()> {
        while !up.body_done() {
            let read = tokio::select! {
                biased;
                read = up.next_body() => read.map_err(|e| e.into_up())?,
                gone = probe_idle(&mut self.stream) => return Err(gone.into_down()),
            };
            if let Some(data) = read {
                self.write_body(data).await.map_err(|e| e.into_down())?;
            }
        }
        self.finish_body().await.map_err(|e| e.into_down())
    }

    /// The answer's head: as the upstream sent it, with the request id, the
    /// date and the connection's fate set, and `Transfer-Encoding: chunked`
    /// (and HTTP/1.1) for an answer framed by the close of the connection.
    async fn write_head(&mut self, answer: &impl AnswerHead, ctx: &RequestCtx) -> Result<()> {
        let date = get_cached_date();
        let mut edits = [HeaderEdit::Remove(""); 4];
        let mut n = 0;
        let mut version = answer.version();
        if self.framing == Framing::CloseToChunked {
            version = http::Version::HTTP_11;
            edits[n] = HeaderEdit::Insert("Transfer-Encoding", EditValue::Text("chunked"));
            n += 1;
        }
        edits[n] = HeaderEdit::Insert("x-request-id", EditValue::Id(&ctx.request_id));
        edits[n + 1] = HeaderEdit::Insert("Date", EditValue::Header(&date));
        let connection = if self.keepalive {
            "keep-alive"
        } else {
            "close"
        };
        edits[n + 2] = HeaderEdit::Insert("Connection", EditValue::Text(connection));
        let mut head = super::wire_head::buffer();
        super::wire_head::write_answer(answer, version, &edits[..n + 3], &mut head)?;
        let written = self.stream.write_all(&head).await;
        super::wire_head::give_back(head);
        written.or_err(ErrorType::WriteError, "writing response header")?;
        // As Pingora: a head with no length, or with nothing to follow, is
        // sent at once; one with a length goes with its body.
        let flush = !matches!(self.framing, Framing::Length(n) if n > 0);
        if flush {
            self.flush().await?;
        }
        self.status = answer.status();
        Ok(())
    }

    async fn write_body(&mut self, data: &[u8]) -> Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        match self.framing {
            Framing::NoBody => {}
            Framing::Length(_) => {
                // Never past the length the client was told.
                let n = data.len().min(self.left);
                if n == 0 {
                    return Ok(());
                }
                self.stream
                    .write_all(&data[..n])
                    .await
                    .or_err(ErrorType::WriteError, "while writing body")?;
                self.left -= n;
                self.body_bytes_sent += n;
                if self.left == 0 {
                    self.flush().await?;
                }
            }
            Framing::Chunked | Framing::CloseToChunked => {
                let mut size = [0u8; 18];
                let size = chunk_size_line(data.len(), &mut size);
                let stream = &mut self.stream;
                let written = async {
                    stream.write_all(size).await?;
                    stream.write_all(data).await?;
                    stream.write_all(b"\r\n").await
                };
                written
                    .await
                    .or_err(ErrorType::WriteError, "while writing body")?;
                self.flush().await?;
                self.body_bytes_sent += data.len();
            }
        }
        Ok(())
    }

    /// The end of the body: the last chunk, or a check that a length was
    /// met, and a flush.
    async fn finish_body(&mut self) -> Result<()> {
        match self.framing {
            Framing::Chunked | Framing::CloseToChunked => {
                self.stream
                    .write_all(b"0\r\n\r\n")
                    .await
                    .or_err(ErrorType::WriteError, "while writing body")?;
            }
            Framing::Length(_) if self.left > 0 => {
                return Error::e_explain(
                    ErrorType::new("PrematureBodyEnd"),
                    "Content-length: body written short",
                );
            }
            Framing::Length(_) | Framing::NoBody => {}
        }
        self.flush().await
    }

    async fn flush(&mut self) -> Result<()> {
        self.stream
            .flush()
            .await
            .or_err(ErrorType::WriteError, "flushing body")
    }

    /// The connection, if it can carry another request, with its keep-alive
    /// settings; else it is closed.
    pub(super) async fn into_next(mut self) -> Option<(Stream, Option<HttpPersistentSettings>)> {
        if self.reusable {
            Some((self.stream, self.settings))
        } else {
            self.close().await;
            None
        }
    }

    /// Closes the connection (after a failure, or when it is not kept).
    pub(super) async fn close(&mut self) {
        let _ = self.stream.shutdown().await;
    }
}

/// Where the body of an answer being relayed is read from.
pub(super) trait BodySource {
    fn body_done(&mut self) -> bool;
    /// The next bytes of the body, `None` at its end.
    async fn next_body(&mut self) -> Result<Option<&[u8]>>;
}

impl BodySource for UpstreamSession {
    fn body_done(&mut self) -> bool {
        self.is_body_done()
    }

    async fn next_body(&mut self) -> Result<Option<&[u8]>> {
        self.read_body_ref().await
    }
}

impl BodySource for InPlaceAnswer {
    fn body_done(&mut self) -> bool {
        self.is_body_done()
    }

    async fn next_body(&mut self) -> Result<Option<&[u8]>> {
        self.read_body().await
    }
}

/// Waits for the client to do anything while its answer is written, as
/// Pingora's `read_body_or_idle` after the body: a close is the client
/// gone, and bytes are more than this proxy reads before answering (it
/// does not pipeline).
pub(super) async fn probe_idle(stream: &mut Stream) -> Box<Error> {
    let mut probe = [0u8; 1];
    match stream.read(&mut probe).await {
        Ok(0) => Error::explain(
            ErrorType::ConnectionClosed,
            "Prematurely before response body is complete",
        ),
        Ok(_) => Error::explain(ErrorType::ConnectError, "Sent data after end of body"),
        Err(e) => Error::because(ErrorType::ReadError, "during HTTP body-or-idle state", e),
    }
}

/// A chunk's size line as Pingora writes it: upper-case hex, CRLF.
fn chunk_size_line(len: usize, buf: &mut [u8; 18]) -> &[u8] {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut at = 16;
    let mut n = len;
    loop {
        at -= 1;
        buf[at] = HEX[n & 0xf];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    buf[16] = b'\r';
    buf[17] = b'\n';
    &buf[at..]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, fields: &[(&str, &str)]) -> ResponseHeader {
        let mut h = ResponseHeader::build(status, None).unwrap();
        for (name, value) in fields {
            h.append_header(name.to_string(), *value).unwrap();
        }
        h
    }

    #[test]
    fn chunk_size_lines_are_upper_case_hex() {
        for len in [0usize, 1, 9, 10, 15, 16, 255, 4096, 65535, 1 << 40] {
            let mut buf = [0u8; 18];
            assert_eq!(
                chunk_size_line(len, &mut buf),
                format!("{len:X}\r\n").as_bytes()
            );
        }
    }

    #[test]
    fn framing_of_the_common_answers_and_none_for_odd_ones() {
        use Framing::*;
        /// Status, fields, answer to HEAD, body done at the head, framing.
        type Case = (
            u16,
            &'static [(&'static str, &'static str)],
            bool,
            bool,
            Option<Framing>,
        );
        let cases: &[Case] = &[
            (
                200,
                &[("Content-Length", "12")],
                false,
                false,
                Some(Length(12)),
            ),
            (
                200,
                &[("content-length", "0")],
                false,
                true,
                Some(Length(0)),
            ),
            (
                200,
                &[("Transfer-Encoding", "Chunked")],
                false,
                false,
                Some(Chunked),
            ),
            (200, &[], false, false, Some(CloseToChunked)),
            (200, &[("Content-Length", "12")], true, true, Some(NoBody)),
            (204, &[], false, true, Some(NoBody)),
            (304, &[("Content-Length", "5")], false, true, Some(NoBody)),
            (200, &[("Content-Length", "5, 5")], false, false, None),
            (
                200,
                &[("Content-Length", "5"), ("Content-Length", "5")],
                false,
                false,
                None,
            ),
            (200, &[("Content-Length", "+5")], false, false, None),
            (
                200,
                &[("Transfer-Encoding", "gzip, chunked")],
                false,
                false,
                None,
            ),
            (
                200,
                &[
                    ("Transfer-Encoding", "chunked"),
                    ("Transfer-Encoding", "chunked"),
                ],
                false,
                false,
                None,
            ),
            (200, &[], false, true, None),
        ];
        for (status, fields, head, done, framing) in cases {
            assert_eq!(
                Framing::of(&answer(*status, fields), *head, *done),
                *framing,
                "{status} {fields:?} head {head} done {done}"
            );
        }
    }
}
