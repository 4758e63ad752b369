//! The PROXY protocol (HAProxy's, versions 1 and 2) on the listener: a load
//! balancer that forwards TCP says first who its client was. With
//! `proxy_protocol: true` every connection must come from a trusted proxy and
//! start with a valid header; anything else is closed and counted
//! (`strangler_rejected_requests_total{reason="proxy_protocol"}`). The
//! header's source address becomes the connection's peer address, so the
//! rest of the proxy (trusted proxies, `X-Forwarded-For`, sticky `ip`, the
//! access log) sees the client as if it had connected directly.
//!
//! The header is read with exact reads, never past its end, so the bytes
//! after it (a TLS ClientHello, an HTTP request) are left for what follows.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::protocols::GetSocketDigest;
use pingora::protocols::SocketDigest;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::live::Live;

const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// The longest version 1 line, CRLF included (the protocol's own bound).
const V1_MAX: usize = 107;
/// The most version 2 address and TLV bytes accepted.
const V2_MAX_BODY: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("the connection does not start with a PROXY header")]
    Missing,
    #[error("malformed PROXY header: {0}")]
    Malformed(&'static str),
    #[error("connection closed in the PROXY header, or it came too slowly")]
    Closed,
    #[error("a PROXY header is accepted only from trusted_proxies")]
    Untrusted,
}

/// What a header says: the client's address, or `None` when the balancer
/// speaks for itself (v2 `LOCAL`, v1 `UNKNOWN`: its own health checks), in
/// which case the socket's peer stands.
pub type Source = Option<SocketAddr>;

/// Reads one PROXY header (v1 or v2) from the start of `stream`.
pub async fn read_header<S: AsyncRead + Unpin>(stream: &mut S) -> Result<Source, HeaderError> {
    let mut start = [0u8; 5];
    stream
        .read_exact(&mut start)
        .await
        .map_err(|_| HeaderError::Closed)?;
    if &start == b"PROXY" {
        let mut line = start.to_vec();
        while !line.ends_with(b"\r\n") {
            if line.len() >= V1_MAX {
                return Err(HeaderError::Malformed(
                    "version 1 line longer than 107 bytes",
                ));
            }
            let mut byte = [0u8; 1];
            stream
                .read_exact(&mut byte)
                .await
                .map_err(|_| HeaderError::Closed)?;
            line.push(byte[0]);
        }
        return parse_v1(&line);
    }
    if start != V2_SIGNATURE[..5] {
        return Err(HeaderError::Missing);
    }
    let mut head = [0u8; 16];
    head[..5].copy_from_slice(&start);
    stream
        .read_exact(&mut head[5..])
        .await
        .map_err(|_| HeaderError::Closed)?;
    if head[..12] != V2_SIGNATURE {
        return Err(HeaderError::Missing);
    }
    let len = usize::from(u16::from_be_bytes([head[14], head[15]]));
    if len > V2_MAX_BODY {
        return Err(HeaderError::Malformed("version 2 header too long"));
    }
    let mut body = vec![0u8; len];
    stream
        .read_exact(&mut body)
        .await
        .map_err(|_| HeaderError::Closed)?;
    parse_v2(&head, &body)
}

/// `PROXY TCP4 src dst sport dport\r\n` (or TCP6, or UNKNOWN ...).
pub fn parse_v1(line: &[u8]) -> Result<Source, HeaderError> {
    let bad = HeaderError::Malformed;
    let text = std::str::from_utf8(line).map_err(|_| bad("version 1 line is not text"))?;
    let text = text
        .strip_suffix("\r\n")
        .ok_or(bad("version 1 line without CRLF"))?;
    let mut parts = text.split(' ');
    if parts.next() != Some("PROXY") {
        return Err(HeaderError::Missing);
    }
    let family = parts.next().ok_or(bad("version 1 line without a family"))?;
    if family == "UNKNOWN" {
        return Ok(None);
    }
    let fields: Vec<&str> = parts.collect();
    let [src, _dst, sport, _dport] = fields[..] else {
        return Err(bad("version 1 line needs four address fields"));
    };
    let ip: IpAddr = match family {
        "TCP4" => IpAddr::V4(src.parse().map_err(|_| bad("bad TCP4 source address"))?),
        "TCP6" => IpAddr::V6(src.parse().map_err(|_| bad("bad TCP6 source address"))?),
        _ => return Err(bad("version 1 family is not TCP4, TCP6 or UNKNOWN")),
    };
    let port: u16 = sport.parse().map_err(|_| bad("bad source port"))?;
    Ok(Some(SocketAddr::new(ip, port)))
}

/// The 16-byte fixed part and what follows it.
pub fn parse_v2(head: &[u8; 16], body: &[u8]) -> Result<Source, HeaderError> {
    let bad = HeaderError::Malformed;
    let version = head[12] >> 4;
    let command = head[12] & 0x0f;
    if version != 2 {
        return Err(bad("version 2 signature with another version"));
    }
    match command {
        0 => return Ok(None), // LOCAL
        1 => {}               // PROXY
        _ => return Err(bad("version 2 command is neither LOCAL nor PROXY")),
    }
    match head[13] >> 4 {
        // AF_INET
        1 => {
            if body.len() < 12 {
                return Err(bad("version 2 IPv4 addresses cut short"));
            }
            let ip = Ipv4Addr::new(body[0], body[1], body[2], body[3]);
            let port = u16::from_be_bytes([body[8], body[9]]);
            Ok(Some(SocketAddr::new(IpAddr::V4(ip), port)))
        }
        // AF_INET6
        2 => {
            if body.len() < 36 {
                return Err(bad("version 2 IPv6 addresses cut short"));
            }
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&body[..16]);
            let port = u16::from_be_bytes([body[32], body[33]]);
            Ok(Some(SocketAddr::new(
                IpAddr::V6(Ipv6Addr::from(octets)),
                port,
            )))
        }
        // AF_UNSPEC or AF_UNIX: nothing to say about an IP client.
        _ => Ok(None),
    }
}

/// What the listener makes of a new connection.
#[derive(Debug)]
pub enum Admission {
    /// The listener takes no PROXY header (`proxy_protocol` is off).
    NotExpected,
    /// A valid header from a trusted proxy; with a digest naming the client
    /// as the peer, to put on the stream, when the header named one.
    Accepted(Option<Box<SocketDigest>>),
}

/// The checks of a PROXY-protocol listener, on the live table: the socket's
/// `peer` must be a trusted proxy and the stream must start with a header
/// within `deadline`. `fd` is the socket's, for the new digest.
pub async fn admit<S: AsyncRead + Unpin>(
    stream: &mut S,
    peer: Option<IpAddr>,
    fd: i32,
    live: &Live,
    deadline: Duration,
) -> Result<Admission, HeaderError> {
    let table = live.current();
    let config = table.config();
    if !config.proxy_protocol {
        return Ok(Admission::NotExpected);
    }
    if !peer.is_some_and(|p| config.trusted_proxies.contains(p)) {
        return Err(HeaderError::Untrusted);
    }
    let source = tokio::time::timeout(deadline, read_header(stream))
        .await
        .map_err(|_| HeaderError::Closed)??;
    Ok(Admission::Accepted(source.map(|source| {
        let digest = SocketDigest::from_raw_fd(fd);
        let _ = digest
            .peer_addr
            .set(Some(pingora::protocols::l4::socket::SocketAddr::Inet(
                source,
            )));
        Box::new(digest)
    })))
}

/// The socket peer's IP, from a stream's digest.
pub fn peer_ip(digest: Option<Arc<SocketDigest>>) -> Option<IpAddr> {
    digest.and_then(|d| d.peer_addr().and_then(|a| a.as_inet()).map(|a| a.ip()))
}

/// The same checks before a TLS handshake: the header comes before the
/// ClientHello.
#[derive(Debug)]
pub struct PreTlsProxyProtocol {
    pub live: Arc<Live>,
    pub deadline: Duration,
    pub refused: prometheus::IntCounter,
}

#[async_trait]
impl pingora::listeners::PreTlsProcess for PreTlsProxyProtocol {
    async fn process(
        &self,
        stream: &mut pingora::protocols::l4::stream::Stream,
    ) -> pingora::Result<()> {
        use pingora::protocols::UniqueID;
        let peer = peer_ip(stream.get_socket_digest());
        let fd = stream.id();
        match admit(stream, peer, fd, &self.live, self.deadline).await {
            Ok(Admission::Accepted(Some(digest))) => {
                stream.set_socket_digest(*digest);
                Ok(())
            }
            Ok(_) => Ok(()),
            Err(e) => {
                self.refused.inc();
                Err(pingora::Error::explain(
                    pingora::ErrorType::ConnectProxyFailure,
                    e.to_string(),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn version_1_lines() {
        let mut input: &[u8] = b"PROXY TCP4 198.51.100.7 10.0.0.1 5555 80\r\nGET / HTTP/1.1\r\n";
        let src = read_header(&mut input).await.unwrap();
        assert_eq!(src, Some("198.51.100.7:5555".parse().unwrap()));
        // Nothing past the header was read.
        assert_eq!(input, b"GET / HTTP/1.1\r\n");
        let mut v6: &[u8] = b"PROXY TCP6 2001:db8::1 ::1 1 2\r\n";
        assert_eq!(
            read_header(&mut v6).await.unwrap(),
            Some("[2001:db8::1]:1".parse().unwrap())
        );
        let mut unknown: &[u8] = b"PROXY UNKNOWN\r\n";
        assert_eq!(read_header(&mut unknown).await.unwrap(), None);
        let mut bad: &[u8] = b"PROXY TCP4 nonsense 10.0.0.1 1 2\r\n";
        assert!(read_header(&mut bad).await.is_err());
        let mut http: &[u8] = b"GET / HTTP/1.1\r\n\r\n";
        assert_eq!(read_header(&mut http).await, Err(HeaderError::Missing));
        let long = [b"PROXY ".as_slice(), &[b'1'; 200]].concat();
        assert!(read_header(&mut long.as_slice()).await.is_err());
    }

    fn v2(command: u8, family: u8, body: &[u8]) -> Vec<u8> {
        let mut out = V2_SIGNATURE.to_vec();
        out.push(0x20 | command);
        out.push(family);
        out.extend_from_slice(&(body.len() as u16).to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    #[tokio::test]
    async fn version_2_headers() {
        let mut body = vec![198, 51, 100, 7, 10, 0, 0, 1];
        body.extend_from_slice(&5555u16.to_be_bytes());
        body.extend_from_slice(&80u16.to_be_bytes());
        // A TLV after the addresses is skipped.
        body.extend_from_slice(&[0x04, 0, 1, 0]);
        let mut wire = v2(1, 0x11, &body);
        wire.extend_from_slice(b"GET /");
        let mut input = wire.as_slice();
        assert_eq!(
            read_header(&mut input).await.unwrap(),
            Some("198.51.100.7:5555".parse().unwrap())
        );
        assert_eq!(input, b"GET /");
        let local = v2(0, 0x00, &[]);
        assert_eq!(read_header(&mut local.as_slice()).await.unwrap(), None);
        let short = v2(1, 0x11, &[1, 2, 3]);
        assert!(read_header(&mut short.as_slice()).await.is_err());
    }
}
