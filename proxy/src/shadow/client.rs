//! Sending a shadow copy (or a noise probe) with Pingora's connector: the
//! same peers, TLS settings and keep-alive pools as the proxy uses.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use pingora::connectors::http::Connector;
use pingora::http::RequestHeader;
use pingora::upstreams::peer::HttpPeer;

use super::job::{Addressed, CapturedResponse, ShadowJob};

/// Request headers never copied: they describe the client's connection, not
/// the request.
pub const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
];

#[derive(Debug)]
pub enum SendError {
    /// The response body is over the route's `max_body`.
    TooLarge,
    Failed(String),
}

/// The request for `job` as `to` is sent it, marked with `marker` in the
/// shadow header.
pub fn request_for(
    job: &ShadowJob,
    to: &Addressed,
    marker: &str,
) -> Result<RequestHeader, SendError> {
    let mut req = RequestHeader::build(
        job.method.clone(),
        to.path.as_bytes(),
        Some(job.headers.len() + 2),
    )
    .map_err(|e| SendError::Failed(e.to_string()))?;
    if let Some(host) = &to.host {
        req.insert_header(http::header::HOST, host.clone())
            .map_err(|e| SendError::Failed(e.to_string()))?;
    }
    for (name, value) in &job.headers {
        if HOP_BY_HOP.contains(&name.as_str()) || name == http::header::HOST {
            continue;
        }
        req.append_header(name.clone(), value.clone())
            .map_err(|e| SendError::Failed(e.to_string()))?;
    }
    if !job.body.is_empty() {
        req.insert_header(http::header::CONTENT_LENGTH, job.body.len().to_string())
            .map_err(|e| SendError::Failed(e.to_string()))?;
    }
    req.insert_header(super::SHADOW_HEADER, marker)
        .map_err(|e| SendError::Failed(e.to_string()))?;
    Ok(req)
}

/// Sends one request and reads the whole answer (up to `max_body`).
pub async fn exchange(
    connector: &Connector,
    peer: &HttpPeer,
    request: RequestHeader,
    body: Bytes,
    max_body: usize,
) -> Result<CapturedResponse, SendError> {
    let started = Instant::now();
    let failed = |e: Box<pingora::Error>| SendError::Failed(e.to_string());
    let (mut session, _reused) = connector.get_http_session(peer).await.map_err(failed)?;
    session
        .write_request_header(Box::new(request))
        .await
        .map_err(failed)?;
    if !body.is_empty() {
        session
            .write_request_body(body, true)
            .await
            .map_err(failed)?;
    }
    session.finish_request_body().await.map_err(failed)?;
    session.read_response_header().await.map_err(failed)?;
    let header = session
        .response_header()
        .ok_or_else(|| SendError::Failed("no response header".into()))?;
    let status = header.status.as_u16();
    let headers = crate::capture::header_texts(header.headers.iter());
    let mut buf = BytesMut::new();
    while let Some(chunk) = session.read_response_body().await.map_err(failed)? {
        if buf.len() + chunk.len() > max_body {
            // Dropped, not released: the rest of the body is still unread.
            return Err(SendError::TooLarge);
        }
        buf.extend_from_slice(&chunk);
    }
    let latency = started.elapsed();
    connector
        .release_http_session(session, peer, Some(Duration::from_secs(60)))
        .await;
    Ok(CapturedResponse {
        status,
        headers,
        body: buf.freeze(),
        latency,
    })
}
