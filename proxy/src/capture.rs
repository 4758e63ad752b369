//! What the request path keeps of a request it shadows or records: the
//! request body and the answer the client got, each up to a size; past it,
//! everything kept is let go at once. Nothing here can delay or change what
//! the client gets.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use pingora::http::ResponseHeader;

/// Headers as text pairs (names lower case, values lossily decoded): how
/// kept requests and answers are compared, redacted and stored.
pub fn header_texts<'a>(
    headers: impl Iterator<Item = (&'a http::HeaderName, &'a http::HeaderValue)>,
) -> Vec<(String, String)> {
    headers
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

/// One primary answer, as the client received it (body not yet decoded).
#[derive(Debug, Clone, Default)]
pub struct CapturedResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    pub latency: Duration,
}

/// A request body and the answer to it, kept up to a size: what shadowing
/// and recording both keep of a request. Past the size, everything kept is
/// let go at once and `too_large` stays set.
#[derive(Debug)]
pub struct Kept {
    max_body: usize,
    body: BytesMut,
    response: Option<(u16, Vec<(String, String)>)>,
    response_body: BytesMut,
    pub too_large: bool,
}

impl Kept {
    pub fn new(max_body: usize) -> Kept {
        Kept {
            max_body,
            body: BytesMut::new(),
            response: None,
            response_body: BytesMut::new(),
            too_large: false,
        }
    }

    /// Nothing of the body or answer kept: for another upstream attempt,
    /// which replays the body from the start.
    pub fn restarted(&self) -> Kept {
        Kept::new(self.max_body)
    }

    fn fits(&mut self, have: usize, more: usize) -> bool {
        if have + more > self.max_body {
            self.too_large = true;
            self.body = BytesMut::new();
            self.response_body = BytesMut::new();
        }
        !self.too_large
    }

    pub fn request_chunk(&mut self, chunk: &Bytes) {
        if self.fits(self.body.len(), chunk.len()) {
            self.body.extend_from_slice(chunk);
        }
    }

    pub fn response_head(&mut self, header: &ResponseHeader) {
        self.response = Some((header.status.as_u16(), header_texts(header.headers.iter())));
    }

    pub fn response_chunk(&mut self, chunk: &Bytes) {
        if self.fits(self.response_body.len(), chunk.len()) {
            self.response_body.extend_from_slice(chunk);
        }
    }

    pub fn has_response(&self) -> bool {
        self.response.is_some()
    }

    /// The request body and the answer, if an answer came.
    pub fn into_parts(self, latency: Duration) -> Option<(Bytes, CapturedResponse)> {
        let (status, headers) = self.response?;
        Some((
            self.body.freeze(),
            CapturedResponse {
                status,
                headers,
                body: self.response_body.freeze(),
                latency,
            },
        ))
    }
}
