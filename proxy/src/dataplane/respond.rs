//! Answers the proxy writes itself: short plain-text bodies that say what
//! failed and where, with the request id so a report can be traced.

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::protocols::http::ServerSession;
use pingora::{Error, ErrorSource, ErrorType};

use super::ctx::RequestCtx;
use crate::config::units::format_duration;
use crate::metrics::UpstreamErrorKind;

/// Writes `status` with a one-line plain body. The connection is not kept
/// alive: after an error its state is not worth trusting.
pub async fn plain(session: &mut ServerSession, status: u16, body: String, request_id: &str) {
    let body = Bytes::from(body);
    let mut resp = match ResponseHeader::build(status, Some(4)) {
        Ok(r) => r,
        Err(_) => return,
    };
    let _ = resp.insert_header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8");
    let _ = resp.insert_header(http::header::CONTENT_LENGTH, body.len().to_string());
    let _ = resp.insert_header(http::header::CACHE_CONTROL, "no-store");
    let _ = resp.insert_header("x-request-id", request_id);
    if let Err(e) = session.write_error_response(resp, body).await {
        log::debug!("could not write error response: {e}");
    }
}

/// How a proxying error is answered: status, metric kind (for upstream
/// failures) and the sentence for the body.
pub fn classify(e: &Error, ctx: &RequestCtx) -> (u16, Option<UpstreamErrorKind>, String) {
    let backend = ctx.backend_name();
    let upstream = &ctx.table.upstreams[ctx.backend.0];
    use ErrorType::*;
    let (status, kind, what) = match e.etype() {
        HTTPStatus(code) => (*code, None, format!("request refused ({code})")),
        ConnectRefused => (
            502,
            Some(UpstreamErrorKind::ConnectRefused),
            format!("backend {backend} refused the connection"),
        ),
        ConnectTimedout => (
            504,
            Some(UpstreamErrorKind::ConnectTimeout),
            format!(
                "backend {backend} did not accept a connection within {}",
                format_duration(upstream.connect_timeout)
            ),
        ),
        ConnectNoRoute | ConnectError | SocketError | BindError | ConnectProxyFailure => (
            502,
            Some(UpstreamErrorKind::Connect),
            format!("could not connect to backend {backend}"),
        ),
        TLSWantX509Lookup | TLSHandshakeFailure | TLSHandshakeTimedout | InvalidCert
        | HandshakeError => (
            502,
            Some(UpstreamErrorKind::Tls),
            format!("TLS handshake with backend {backend} failed"),
        ),
        ReadTimedout if e.esource() == &ErrorSource::Upstream => (
            504,
            Some(UpstreamErrorKind::ReadTimeout),
            format!(
                "backend {backend} did not answer within {}",
                format_duration(upstream.read_timeout)
            ),
        ),
        WriteTimedout if e.esource() == &ErrorSource::Upstream => (
            504,
            Some(UpstreamErrorKind::WriteTimeout),
            format!("backend {backend} did not take the request in time"),
        ),
        ConnectionClosed | ReadError | WriteError if e.esource() == &ErrorSource::Upstream => (
            502,
            Some(UpstreamErrorKind::Reset),
            format!("backend {backend} closed the connection before answering"),
        ),
        // A malformed chunk or trailer in the body (Pingora's own error
        // types for them are not exported, only their names).
        InvalidHTTPHeader
        | H1Error
        | H2Error
        | InvalidH2
        | H2Downgrade
        | Custom("InvalidChunk" | "InvalidTrailerEnd")
            if e.esource() == &ErrorSource::Upstream =>
        {
            (
                502,
                Some(UpstreamErrorKind::Protocol),
                format!("backend {backend} sent an invalid response"),
            )
        }
        _ => match e.esource() {
            ErrorSource::Upstream => (
                502,
                Some(UpstreamErrorKind::Other),
                format!("error talking to backend {backend}"),
            ),
            ErrorSource::Downstream => match e.etype() {
                // The client is gone; nothing can be written.
                ReadError | WriteError | ConnectionClosed | ReadTimedout | WriteTimedout => {
                    (0, None, String::new())
                }
                _ => (400, None, "malformed request".to_string()),
            },
            _ => (500, None, "internal error".to_string()),
        },
    };
    (status, kind, what)
}
