//! Request checks made before routing: framing that could be read two ways,
//! oversized or too many headers. Each failure names the status to answer.

use pingora::protocols::http::ServerSession;

/// Largest request header block accepted.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Most header lines accepted.
pub const MAX_HEADER_LINES: usize = 100;

/// Why a request is refused before routing; also the `reason` label of
/// `strangler_rejected_requests_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    ConflictingLength,
    HeadersTooLarge,
    TooManyHeaders,
    BadPath,
    /// The header did not arrive whole within the deadline (408).
    HeaderTimeout,
    /// The body is over the route's `max_request_body` (413).
    BodyTooLarge,
    /// Too many requests in flight (503).
    Overloaded,
    /// The request line is not `METHOD SP target SP HTTP/x.y` (400): a
    /// space in the target, say, which lenient parsers would escape.
    BadRequestLine,
    /// An HTTP/1.1 request without `Host` (400, RFC 9112 section 3.2).
    MissingHost,
    /// On a PROXY-protocol listener: a connection from a peer that is not a
    /// trusted proxy, or one that does not start with a valid PROXY header.
    /// The connection is closed without an answer (there is no HTTP yet).
    ProxyProtocol,
}

impl Rejection {
    pub fn status(self) -> u16 {
        match self {
            Rejection::ConflictingLength
            | Rejection::BadPath
            | Rejection::BadRequestLine
            | Rejection::MissingHost => 400,
            Rejection::HeadersTooLarge | Rejection::TooManyHeaders => 431,
            Rejection::HeaderTimeout => 408,
            Rejection::BodyTooLarge => 413,
            Rejection::Overloaded => 503,
            Rejection::ProxyProtocol => 400,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Rejection::ConflictingLength => "conflicting_length",
            Rejection::HeadersTooLarge => "headers_too_large",
            Rejection::TooManyHeaders => "too_many_headers",
            Rejection::BadPath => "bad_path",
            Rejection::HeaderTimeout => "header_timeout",
            Rejection::BodyTooLarge => "body_too_large",
            Rejection::Overloaded => "overloaded",
            Rejection::BadRequestLine => "bad_request_line",
            Rejection::MissingHost => "missing_host",
            Rejection::ProxyProtocol => "proxy_protocol",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Rejection::ConflictingLength => "request has both Content-Length and Transfer-Encoding",
            Rejection::HeadersTooLarge => "request headers are larger than 64 KiB",
            Rejection::TooManyHeaders => "request has more than 100 header lines",
            Rejection::BadPath => "request path",
            Rejection::HeaderTimeout => "request header not received in time",
            Rejection::BodyTooLarge => "request body is larger than this route accepts",
            Rejection::Overloaded => "too many requests in flight; retry shortly",
            Rejection::BadRequestLine => "malformed request line",
            Rejection::MissingHost => "HTTP/1.1 request without Host",
            Rejection::ProxyProtocol => "PROXY protocol header missing, invalid or untrusted",
        }
    }

    pub const ALL: [Rejection; 10] = [
        Rejection::ConflictingLength,
        Rejection::HeadersTooLarge,
        Rejection::TooManyHeaders,
        Rejection::BadPath,
        Rejection::HeaderTimeout,
        Rejection::BodyTooLarge,
        Rejection::Overloaded,
        Rejection::BadRequestLine,
        Rejection::MissingHost,
        Rejection::ProxyProtocol,
    ];
}

/// True unless the first line of `head` is complete and is not exactly
/// `METHOD SP target SP HTTP/x.y`: one space between the three parts and no
/// other whitespace (RFC 9112 section 3).
pub fn request_line_ok(head: &[u8]) -> bool {
    let Some(end) = head.iter().position(|&b| b == b'\n') else {
        return true;
    };
    let line = head[..end].strip_suffix(b"\r").unwrap_or(&head[..end]);
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    !method.is_empty()
        && method.iter().all(|b| b.is_ascii_graphic())
        && !target.is_empty()
        && target.iter().all(|b| b.is_ascii_graphic())
        && version.len() == 8
        && version.starts_with(b"HTTP/")
}

pub fn check(session: &ServerSession) -> Result<(), Rejection> {
    let req = session.req_header();
    if req.headers.len() > MAX_HEADER_LINES {
        return Err(Rejection::TooManyHeaders);
    }
    if let Some(h1) = session.as_http1() {
        let raw = h1.get_headers_raw_bytes();
        if raw.len() > MAX_HEADER_BYTES {
            return Err(Rejection::HeadersTooLarge);
        }
        if req.version == http::Version::HTTP_11 && !req.headers.contains_key(http::header::HOST) {
            return Err(Rejection::MissingHost);
        }
        // Pingora drops Content-Length when Transfer-Encoding is present (RFC
        // 9112 allows that); we refuse such requests outright, as a request
        // framed two ways is the start of most smuggling attacks. The raw
        // header block still shows what the client sent.
        if req.headers.contains_key(http::header::TRANSFER_ENCODING)
            && has_raw_header(&raw, b"content-length")
        {
            return Err(Rejection::ConflictingLength);
        }
    } else {
        let size: usize = req
            .headers
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len() + 4)
            .sum();
        if size > MAX_HEADER_BYTES {
            return Err(Rejection::HeadersTooLarge);
        }
    }
    Ok(())
}

fn has_raw_header(raw: &[u8], name: &[u8]) -> bool {
    raw.split(|&b| b == b'\n').skip(1).any(|line| {
        let line = line.strip_prefix(b" ").unwrap_or(line);
        line.len() > name.len()
            && line[..name.len()].eq_ignore_ascii_case(name)
            && matches!(line[name.len()], b':' | b' ' | b'\t')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_header_lookup() {
        let raw = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(has_raw_header(raw, b"content-length"));
        assert!(!has_raw_header(
            b"GET /content-length: HTTP/1.1\r\nHost: x\r\n\r\n",
            b"content-length"
        ));
    }
}
